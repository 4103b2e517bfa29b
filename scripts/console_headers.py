#!/usr/bin/env python3
"""The web console's security headers, from the one place they are defined: the template's
ConsoleResponseHeaders (CloudFront's response headers policy). Used twice:

- by scripts/stack.sh to serve the built console locally with the same headers, the API's
  origins being the local gateway's (so the Playwright tests run under the deployed CSP):

      scripts/console_headers.py serve DIR PORT API_URL

- by scripts/deploy_console.py (`with_api_csp`): index.html gets a second CSP naming this
  stack's API alone in connect-src (the header can only allow the region's execute-api
  hosts; a page obeys both policies).
"""

import http.server
import pathlib
import re
import sys
import urllib.parse

import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "infra" / "template.yaml"


class _Loader(yaml.SafeLoader):
    """Reads CloudFormation's short forms (!Sub, !Ref, ...) as {"Fn::...": value}."""


def _tag(loader, suffix, node):
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


_Loader.add_multi_constructor("!", _tag)


def origin(url):
    u = urllib.parse.urlsplit(url)
    return f"{u.scheme}://{u.netloc}"


def headers(api_url, template=TEMPLATE):
    """The policy's headers, with the local API's origin for the API's, and no extra sources
    or host applications beyond the console itself (locally its own origin stands in)."""
    doc = yaml.load(pathlib.Path(template).read_text(), Loader=_Loader)
    config = doc["Resources"]["ConsoleResponseHeaders"]["Properties"]["ResponseHeadersPolicyConfig"]["SecurityHeadersConfig"]
    sub = config["ContentSecurityPolicy"]["ContentSecurityPolicy"]["Fn::Sub"]
    text = sub[0] if isinstance(sub, list) else sub
    local = {"ApiOrigins": origin(api_url)}
    csp = re.sub(r"\$\{(\w+)\}", lambda m: local.get(m.group(1), ""), text)
    csp = re.sub(r" +", " ", csp).replace(" ;", ";")
    hsts = config["StrictTransportSecurity"]
    out = {
        "Content-Security-Policy": csp,
        "Strict-Transport-Security": f"max-age={hsts['AccessControlMaxAgeSec']}" + ("; includeSubDomains" if hsts.get("IncludeSubdomains") else ""),
        "Referrer-Policy": config["ReferrerPolicy"]["ReferrerPolicy"],
    }
    if "ContentTypeOptions" in config:
        out["X-Content-Type-Options"] = "nosniff"
    return out


def with_api_csp(index_html: bytes, api_url: str) -> bytes:
    """index.html with a CSP meta element allowing connections to the console itself and the
    API alone (frame-ancestors cannot be set by a meta element: the header does that)."""
    meta = f'<meta http-equiv="Content-Security-Policy" content="connect-src \'self\' {origin(api_url)}">'
    html = index_html.decode()
    if "http-equiv=\"Content-Security-Policy\"" in html:
        return index_html
    return re.sub(r"(<head[^>]*>)", lambda m: m.group(1) + meta, html, count=1).encode()


def serve(directory, port, api_url):
    extra = headers(api_url)

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=directory, **kw)

        def end_headers(self):
            for name, value in extra.items():
                self.send_header(name, value)
            super().end_headers()

        def log_message(self, *a):
            pass

    http.server.ThreadingHTTPServer(("127.0.0.1", int(port)), Handler).serve_forever()


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "serve":
        serve(sys.argv[2], sys.argv[3], sys.argv[4])
    elif len(sys.argv) == 3 and sys.argv[1] == "headers":
        for k, v in headers(sys.argv[2]).items():
            print(f"{k}: {v}")
    else:
        sys.exit(__doc__)
