#!/usr/bin/env python3
"""Cold start of the release functions, measured with a minimal Lambda Runtime API on
loopback (as in ../shared/RECIPES.md): per binary, the median over fresh processes of
  init         spawn -> first GET /invocation/next (clients, config, keys built)
  first invoke that request -> its response (first DynamoDB calls included)
  warm invoke  a second request -> its response
  peak RSS     VmHWM after the second response.
The functions talk to the local stack from the environment (run through `make bench`).

Each function is measured twice, interleaved: as built, and with METRICS_DISABLED=1 (the
EMF collector not installed, nothing flushed), to show what the metrics cost a cold start.

usage: coldstart.py [runs] [function...]
"""
import base64, json, os, statistics, subprocess, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FUNCTIONS = {  # binary -> gRPC method it serves
    "get-affiliate-stats": "GetAffiliateStats",
    "list-invite-codes": "ListInviteCodes",
    "create-invite-code": "CreateInviteCode",
    "delete-invite-code": "DeleteInviteCode",
    "withdraw-affiliate-reward": "WithdrawAffiliateReward",
    "list-reward-history": "ListRewardHistory",
}


def event(method, body):
    path = f"/helium.market.v1.MarketService/{method}"
    return {
        "version": "2.0", "routeKey": f"POST {path}", "rawPath": path, "rawQueryString": "",
        "headers": {"content-type": "application/grpc-web+proto", "x-grpc-web": "1"},
        "requestContext": {
            "accountId": "123456789012", "apiId": "api", "domainName": "localhost", "requestId": "r",
            "routeKey": f"POST {path}", "stage": "$default", "time": "24/Nov/2026:12:00:00 +0000", "timeEpoch": 0,
            "http": {"method": "POST", "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "coldstart"},
            "authorizer": {"jwt": {"claims": {"sub": "coldstart-user"}, "scopes": None}},
        },
        "body": base64.b64encode(body).decode(), "isBase64Encoded": True,
    }


class Runtime(BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def do_GET(self):
        st = self.server.state
        n = st["served"]
        st["marks"].append(("next", time.perf_counter()))
        if n >= 2:
            st["done"].set()
            time.sleep(30)  # hold the third poll: the process is killed meanwhile
            return
        st["served"] += 1
        payload = json.dumps(st["event"]).encode()
        self.send_response(200)
        self.send_header("Lambda-Runtime-Aws-Request-Id", f"req-{n}")
        self.send_header("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + 10000))
        self.send_header("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:123456789012:function:f")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_POST(self):
        length = int(self.headers.get("Content-Length", 0))
        self.rfile.read(length)
        self.server.state["marks"].append(("response" if "/response" in self.path else "error", time.perf_counter()))
        self.send_response(202)
        self.end_headers()


def measure(binary, method, extra_env=None):
    body = b"\x00\x00\x00\x00\x00"  # an empty message in one gRPC frame
    if method == "WithdrawAffiliateReward":
        body = b"\x00\x00\x00\x00\x05\x08\x01\x12\x01k"  # amount 1, key "k"
    server = ThreadingHTTPServer(("127.0.0.1", 0), Runtime)
    server.state = {"served": 0, "marks": [], "done": threading.Event(), "event": event(method, body)}
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = dict(os.environ, AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{server.server_address[1]}",
               AWS_LAMBDA_FUNCTION_NAME=binary, AWS_LAMBDA_FUNCTION_MEMORY_SIZE="128",
               AWS_LAMBDA_FUNCTION_VERSION="1", RUST_LOG="error", **(extra_env or {}))
    start = time.perf_counter()
    proc = subprocess.Popen([f"target/release/{binary}"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server.state["done"].wait(20)
    rss = None
    try:
        with open(f"/proc/{proc.pid}/status") as f:
            rss = next(int(l.split()[1]) for l in f if l.startswith("VmHWM")) / 1024
    except Exception:
        pass
    proc.kill(); proc.wait()
    server.shutdown()
    m = server.state["marks"]
    nexts = [t for k, t in m if k == "next"]
    resps = [t for k, t in m if k in ("response", "error")]
    if len(nexts) < 2 or len(resps) < 2:
        return None
    return (nexts[0] - start) * 1e3, (resps[0] - nexts[0]) * 1e3, (resps[1] - nexts[1]) * 1e3, rss


def main():
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    only = set(sys.argv[2:])
    print(f"\nCold start, release x86_64, minimal Runtime API on loopback, median of {runs} fresh processes")
    print(f"{'function':<28}{'init':>10}{'first invoke':>15}{'warm invoke':>14}{'peak RSS':>11}{'binary':>10}"
          f"{'metrics cost (init+first)':>28}")
    for binary, method in FUNCTIONS.items():
        if only and binary not in only:
            continue
        # Interleaved, so drift on the machine hits both variants alike.
        pairs = [(measure(binary, method), measure(binary, method, {"METRICS_DISABLED": "1"})) for _ in range(runs)]
        results = [a for a, _ in pairs if a]
        bare = [b for _, b in pairs if b]
        if not results or not bare:
            print(f"{binary:<28} failed")
            continue
        med = lambda rs, i: statistics.median(r[i] for r in rs)
        rss = statistics.median(r[3] for r in results if r[3]) if any(r[3] for r in results) else float("nan")
        size = os.path.getsize(f"target/release/{binary}") / 1048576
        cost = (med(results, 0) + med(results, 1)) - (med(bare, 0) + med(bare, 1))
        print(f"{binary:<28}{med(results, 0):>8.1f}ms{med(results, 1):>13.1f}ms{med(results, 2):>12.1f}ms{rss:>8.1f}MiB"
              f"{size:>7.1f}MiB{cost:>+26.2f}ms")


if __name__ == "__main__":
    main()
