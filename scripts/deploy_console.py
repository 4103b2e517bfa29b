#!/usr/bin/env python3
"""Deploys the web console to a SAM stack's bucket behind CloudFront.

    scripts/deploy_console.py --stack helium-market [--region eu-west-1] [--dry-run]
    scripts/deploy_console.py --outputs outputs.json --dry-run

Reads the stack's outputs (ConsoleBucketName, ConsoleDistributionId, ConsoleUrl, ApiUrl),
writes config.json (the API's URL and the pages the console links to) beside the built bundle
(web/dist, `npm --prefix web run build`), uploads everything with its content type -- hashed
assets cached for a year, index.html and config.json never -- and invalidates the two
uncached paths. Old assets stay, so a page loaded before the deploy keeps working. Uses the
usual AWS credentials (environment, profile, SSO).
"""

import argparse
import json
import mimetypes
import pathlib
import sys
import time

import console_headers

ROOT = pathlib.Path(__file__).resolve().parent.parent
DIST = ROOT / "web" / "dist"
UNCACHED = {"index.html", "config.json"}


def outputs_of(args):
    if args.outputs:
        items = json.loads(pathlib.Path(args.outputs).read_text())
    else:
        import boto3

        cfn = boto3.client("cloudformation", region_name=args.region)
        items = cfn.describe_stacks(StackName=args.stack)["Stacks"][0].get("Outputs", [])
    found = {o["OutputKey"]: o["OutputValue"] for o in items}
    missing = [k for k in ("ConsoleBucketName", "ConsoleDistributionId", "ConsoleUrl", "ApiUrl") if k not in found]
    if missing:
        sys.exit(f"the stack has no output {', '.join(missing)} (deploy infra/template.yaml first)")
    return found


def plan(outputs, args):
    """(key, bytes, content type, cache control) for every object to upload."""
    if not (DIST / "index.html").exists():
        sys.exit("web/dist is not built: npm --prefix web run build")
    config = {
        "apiUrl": outputs["ApiUrl"],
        "signupUrl": args.signup_url or outputs["ConsoleUrl"],
        "signInUrl": args.sign_in_url,
        "hostOrigin": args.host_origin,
    }
    objects = []
    for path in sorted(p for p in DIST.rglob("*") if p.is_file()):
        key = path.relative_to(DIST).as_posix()
        if key == "config.json":
            continue  # the placeholder from web/public; the stack's own is written below
        body = path.read_bytes()
        if key == "index.html":
            # The CSP naming this stack's API alone (console_headers.py; the header's allows
            # the region's execute-api hosts).
            body = console_headers.with_api_csp(body, outputs["ApiUrl"])
        objects.append((key, body))
    objects.append(("config.json", (json.dumps(config, indent=2) + "\n").encode()))
    out = []
    for key, body in objects:
        kind = mimetypes.guess_type(key)[0] or "application/octet-stream"
        if kind.startswith("text/") or kind in ("application/javascript", "application/json"):
            kind += "; charset=utf-8"
        cache = "no-cache" if key in UNCACHED else "public, max-age=31536000, immutable"
        out.append((key, body, kind, cache))
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--stack", help="the SAM stack's name")
    source.add_argument("--outputs", help="a JSON list of OutputKey/OutputValue instead of reading the stack")
    p.add_argument("--region")
    p.add_argument("--signup-url", default="", help="the signup page share links point to (default: the console's URL)")
    p.add_argument("--sign-in-url", default="", help="where 'sign in again' sends the user (the host application)")
    p.add_argument("--host-origin", default="", help="the host application's origin allowed to postMessage a token")
    p.add_argument("--dry-run", action="store_true", help="print what would be uploaded and invalidated, touch nothing")
    args = p.parse_args()

    outputs = outputs_of(args)
    objects = plan(outputs, args)
    bucket, distribution = outputs["ConsoleBucketName"], outputs["ConsoleDistributionId"]
    for key, body, kind, cache in objects:
        print(f"{'would put' if args.dry_run else 'put'} s3://{bucket}/{key}  {len(body)} B  {kind}  {cache}")
    print(f"{'would invalidate' if args.dry_run else 'invalidate'} /index.html /config.json on {distribution}")
    if args.dry_run:
        print(json.dumps(json.loads(objects[-1][1]), indent=2))
        return
    import boto3

    s3 = boto3.client("s3", region_name=args.region)
    for key, body, kind, cache in objects:
        s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType=kind, CacheControl=cache)
    cloudfront = boto3.client("cloudfront")
    cloudfront.create_invalidation(
        DistributionId=distribution,
        InvalidationBatch={"Paths": {"Quantity": 2, "Items": ["/index.html", "/config.json"]}, "CallerReference": str(time.time())},
    )
    print(f"console deployed: {outputs['ConsoleUrl']}")


if __name__ == "__main__":
    main()
