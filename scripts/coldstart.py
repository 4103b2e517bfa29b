#!/usr/bin/env python3
"""Cold start of the release functions, measured with a minimal Lambda Runtime API on
loopback (as in ../shared/RECIPES.md): per binary, the median over fresh processes of
  init         spawn -> first GET /invocation/next (clients, config, keys built)
  first invoke that request -> its response (first DynamoDB calls included)
  warm invoke  the median of the next 10 requests -> their responses
  peak RSS     VmHWM after the last response.
The functions talk to the local stack from the environment (run through `make bench`).

Processes start round-robin (each round starts every binary once), so drift on the machine
hits every binary alike. Each function is measured twice, interleaved: as built, and with METRICS_DISABLED=1 (the
EMF collector not installed, nothing flushed), to show what the metrics cost a cold start.

With --tls, DynamoDB, SQS and Redis are reached over TLS, as in AWS: a TLS terminator on
loopback (target/release/tls-front, rustls) with a throw-away CA that the binaries trust through
SSL_CERT_FILE (the system bundle plus that CA), so init + first invoke pay the root store,
the handshake and the entropy set-up that a first call pays in Lambda. Two references from
the same workspace are measured in the same run: a lambda_http hello world and a function
making one DynamoDB GetItem with the functions' SDK settings (the floor for a function
that must talk to DynamoDB). Cold overhead = init + first invoke - warm invoke.
"x shape" divides a function's cold overhead by that of the floor of its own I/O shape (the
floor binary making the function's first parallel reads: n connections and the Redis config,
SHAPE below), so what the function's code adds is told apart from what its connections cost.
"answers" is what the invokes answered (gRPC status): a row whose warm invokes answer
otherwise than its first compares different requests, and is flagged.

Next to each function: the same request's processor called in-process, warm, with the same
clients and endpoints (target/release/market-bench-inproc), and warm invoke / in-process (and
minus, in ms). The floors' requests are timed in-process too: their warm invoke over
in-process is what the harness (Runtime API, event) adds to a read that does nothing else.

usage: coldstart.py [--tls] [--no-metrics-cost] [runs] [function...]
"""
import asyncio, base64, json, os, ssl, statistics, subprocess, sys, tempfile, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse

FUNCTIONS = {  # binary -> gRPC method it serves
    "get-affiliate-stats": "GetAffiliateStats",
    "list-invite-codes": "ListInviteCodes",
    "create-invite-code": "CreateInviteCode",
    "delete-invite-code": "DeleteInviteCode",
    "withdraw-affiliate-reward": "WithdrawAffiliateReward",
    "list-reward-history": "ListRewardHistory",
    # Refused (the caller is no administrator) before any I/O: its warm invoke is the fixed
    # cost of an invoke through our stack (event, gRPC-Web, router, auth, metrics flush).
    "get-market-config": "MarketAdminService/GetMarketConfig",
}
# Warm invokes per process after the first; "warm" is their median.
WARM = 10
REFERENCES = {"coldstart-hello": "Hello", "coldstart-floor": "GetItem"}
FLOOR = "coldstart-floor"
# The floor of each function's I/O shape (the same binary, configured): n DynamoDB requests
# in parallel (n connections on a first invoke) and the config read from Redis, as the
# function's first invoke makes them. What a function pays over its shape's floor is ours.
SHAPE_FLOORS = {
    "floor-1+config": {"FLOOR_PARALLEL": "1", "FLOOR_CONFIG": "1"},
    "floor-2+config": {"FLOOR_PARALLEL": "2", "FLOOR_CONFIG": "1"},
    "floor-3+config": {"FLOOR_PARALLEL": "3", "FLOOR_CONFIG": "1"},
}
SHAPE = {  # function -> the floor of its first invoke's I/O (its processor's parallel reads)
    "get-affiliate-stats": "floor-3+config",        # stats+policy batch, codes, pending; config
    "withdraw-affiliate-reward": "floor-3+config",  # withdrawal for the key, stats, due; config
    "create-invite-code": "floor-2+config",         # policy, active codes; config (then a write)
    "delete-invite-code": "floor-1+config",         # config, then the deactivation
    "list-invite-codes": FLOOR,
    "list-reward-history": FLOOR,
}


def terminator(tmp, upstreams):
    """TLS on loopback in front of plain local services (target/release/tls-front: rustls,
    multi-threaded), with a throw-away CA it makes in `tmp` (ca.pem): the loopback port
    fronting each upstream, in order. The server key is RSA-2048, as DynamoDB's and SQS's
    certificates; COLDSTART_SERVER_KEY=ec makes it P-256, whose signature costs the
    terminator (which shares this machine's cores with the function, unlike AWS's servers)
    a fraction of RSA's."""
    key = "ec" if os.environ.get("COLDSTART_SERVER_KEY") == "ec" else "rsa"
    proc = subprocess.Popen([path_of("tls-front"), tmp, key, *upstreams], stdout=subprocess.PIPE, text=True)
    TERMINATORS.append(proc)
    return [int(proc.stdout.readline()) for _ in upstreams]


TERMINATORS = []


def tls_env(tmp):
    """The services behind TLS: the environment the measured processes get. They trust the
    system bundle plus the throw-away CA through SSL_CERT_FILE, as a Lambda function would
    trust its platform's bundle."""
    targets = {}  # variable -> (scheme, host:port)
    for var in ("AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_SQS"):
        if os.environ.get(var):
            u = urlparse(os.environ[var])
            targets[var] = ("https", f"{u.hostname}:{u.port}")
    if os.environ.get("REDIS_URL", "").startswith("redis://"):
        u = urlparse(os.environ["REDIS_URL"])
        targets["REDIS_URL"] = ("rediss", f"{u.hostname}:{u.port}")
    ports = terminator(tmp, [t for _, t in targets.values()])
    bundle = os.path.join(tmp, "bundle.pem")
    with open(bundle, "w") as out:
        for src in ("/etc/ssl/certs/ca-certificates.crt", os.path.join(tmp, "ca.pem")):
            if os.path.exists(src):
                out.write(open(src).read())
    env = {"SSL_CERT_FILE": bundle}
    for (var, (scheme, _)), port in zip(targets.items(), ports):
        env[var] = f"{scheme}://localhost:{port}"
    return env


def event(method, body, sub):
    path = f"/helium.market.v1.{method if '/' in method else 'MarketService/' + method}"
    return {
        "version": "2.0", "routeKey": f"POST {path}", "rawPath": path, "rawQueryString": "",
        "headers": {"content-type": "application/grpc-web+proto", "x-grpc-web": "1"},
        "requestContext": {
            "accountId": "123456789012", "apiId": "api", "domainName": "localhost", "requestId": "r",
            "routeKey": f"POST {path}", "stage": "$default", "time": "24/Nov/2026:12:00:00 +0000", "timeEpoch": 0,
            "http": {"method": "POST", "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "coldstart"},
            "authorizer": {"jwt": {"claims": {"sub": sub}, "scopes": None}},
        },
        "body": base64.b64encode(body).decode(), "isBase64Encoded": True,
    }


class Runtime(BaseHTTPRequestHandler):
    # Keep-alive, as Lambda's Runtime API: the runtime's client reuses one connection, so a
    # warm invoke does not pay a TCP connect and a server thread per request.
    protocol_version = "HTTP/1.1"
    # Headers and body go out as two writes: without TCP_NODELAY the second waits for the
    # client's delayed ACK (~40 ms) on a kept-alive connection.
    disable_nagle_algorithm = True

    def log_message(self, *a):
        pass

    def do_GET(self):
        st = self.server.state
        n = st["served"]
        st["marks"].append(("next", time.perf_counter()))
        if n >= 1 + WARM:
            st["done"].set()
            time.sleep(30)  # hold the next poll: the process is killed meanwhile
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
        body = self.rfile.read(length)
        self.server.state["marks"].append(("response" if "/response" in self.path else "error", time.perf_counter()))
        self.server.state["statuses"].append(grpc_status(body) if "/response" in self.path else "runtime error")
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()


GRPC_CODES = {0: "OK", 3: "INVALID_ARGUMENT", 5: "NOT_FOUND", 7: "PERMISSION_DENIED", 8: "RESOURCE_EXHAUSTED",
              9: "FAILED_PRECONDITION", 14: "UNAVAILABLE", 13: "INTERNAL", 16: "UNAUTHENTICATED"}


def is_reference(binary):
    return binary in REFERENCES or binary in EXTRA or binary in SHAPE_FLOORS


def grpc_status(payload):
    """The gRPC status of an invoke's response (API Gateway v2 JSON around gRPC-Web): from
    the headers (a trailers-only answer) or the body's trailer frame; for the hello world and
    the floor, the HTTP status. Kept so a row cannot silently measure refusals."""
    try:
        resp = json.loads(payload)
        headers = {k.lower(): v for k, v in (resp.get("headers") or {}).items()}
        if "grpc-status" in headers:
            code = int(headers["grpc-status"])
        else:
            raw = resp.get("body") or ""
            raw = base64.b64decode(raw) if resp.get("isBase64Encoded") else raw.encode()
            code, i = None, 0
            while i + 5 <= len(raw):
                flag, n = raw[i], int.from_bytes(raw[i + 1:i + 5], "big")
                if flag & 0x80:
                    for line in raw[i + 5:i + 5 + n].decode(errors="replace").split("\r\n"):
                        if line.lower().startswith("grpc-status:"):
                            code = int(line.split(":", 1)[1])
                i += 5 + n
            if code is None:
                return f"HTTP {resp.get('statusCode')}"
        return GRPC_CODES.get(code, str(code))
    except (ValueError, TypeError, AttributeError):
        return "unparsed"


# The measured processes' environment: this shell's (the stack's endpoints, tables, keys)
# without SSL_CERT_DIR, which Lambda does not set and some machines do (this one: the
# /etc/ssl/certs directory). With it, every root-store load (the SDK's, Redis's) also reads
# each of that directory's ~300 entries: milliseconds no Lambda pays.
LAMBDA_LIKE_ENV = {k: v for k, v in os.environ.items() if k != "SSL_CERT_DIR"}


def path_of(binary):
    """A binary of this build, or a reference built elsewhere (`label=path` in COLDSTART_EXTRA)."""
    if binary in SHAPE_FLOORS:
        binary = FLOOR
    return EXTRA.get(binary, f"target/release/{binary}")


# E.g. COLDSTART_EXTRA="floor-jitter-on=target/jitter-on/release/coldstart-floor": the floor
# built with aws-lc's CPU-jitter entropy on (AWS_LC_SYS_NO_JITTER_ENTROPY=0, its own target
# dir), measured in the same run.
EXTRA = dict(kv.split("=", 1) for kv in os.environ.get("COLDSTART_EXTRA", "").split(",") if "=" in kv)


def measure(binary, method, extra_env=None):
    body = b"\x00\x00\x00\x00\x00"  # an empty message in one gRPC frame
    if method == "WithdrawAffiliateReward":
        body = b"\x00\x00\x00\x00\x05\x08\x01\x12\x01k"  # amount 1, key "k"
    if method == "DeleteInviteCode":
        body = b"\x00\x00\x00\x00\x0a\x0a\x08ABCDEFGH"  # a well-formed code nobody owns
    # A caller of its own per process: each is a fresh user (CreateInviteCode never meets
    # the active-code limit however many runs), as market-bench-inproc's created codes are.
    sub = f"coldstart-{binary}-{time.monotonic_ns()}"
    server = ThreadingHTTPServer(("127.0.0.1", 0), Runtime)
    server.state = {"served": 0, "marks": [], "statuses": [], "done": threading.Event(), "event": event(method, body, sub)}
    threading.Thread(target=server.serve_forever, daemon=True).start()
    extra_env = dict(extra_env or {}, **SHAPE_FLOORS.get(binary, {}))
    env = dict(LAMBDA_LIKE_ENV, AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{server.server_address[1]}",
               AWS_LAMBDA_FUNCTION_NAME=binary, AWS_LAMBDA_FUNCTION_MEMORY_SIZE="128",
               AWS_LAMBDA_FUNCTION_VERSION="1", RUST_LOG="error", **extra_env)
    start = time.perf_counter()
    proc = subprocess.Popen([path_of(binary)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
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
    if len(nexts) < 1 + WARM or len(resps) < 1 + WARM:
        return None
    warm = statistics.median((r - n) * 1e3 for n, r in zip(nexts[1:], resps[1:]))
    st = server.state["statuses"]
    return (nexts[0] - start) * 1e3, (resps[0] - nexts[0]) * 1e3, warm, rss, st[0], st[1:1 + WARM]


def main():
    args = sys.argv[1:]
    tls = "--tls" in args
    metrics_cost = "--no-metrics-cost" not in args
    args = [a for a in args if not a.startswith("--")]
    runs = int(args[0]) if args else 10
    only = set(args[1:])
    base = {}
    if tls:
        base = tls_env(tempfile.mkdtemp(prefix="coldstart-tls-"))
    where = "DynamoDB, SQS and Redis over TLS (loopback terminator, throw-away CA)" if tls else "plain HTTP to the local services"
    print(f"\nCold start, release x86_64, minimal Runtime API on loopback, {where}, median of {runs} fresh processes")
    targets = (list(REFERENCES.items()) + [(label, "GetItem") for label in EXTRA] + [(label, "GetItem") for label in SHAPE_FLOORS]
               + [(b, m) for b, m in FUNCTIONS.items() if not only or b in only])
    built = [(b, m) for b, m in targets if os.path.exists(path_of(b))]
    samples = {b: ([], []) for b, _ in built}
    # Round-robin: each round starts every binary once (and each variant), so drift on the
    # machine (DynamoDB Local's JIT, other load) hits the functions and the floor alike.
    for _ in range(runs):
        for binary, method in built:
            with_cost = metrics_cost and not is_reference(binary)
            a = measure(binary, method, base)
            b = measure(binary, method, dict(base, METRICS_DISABLED="1")) if with_cost else None
            if a:
                samples[binary][0].append(a)
            if b:
                samples[binary][1].append(b)
    measured = [(b, *samples[b]) if b in samples else (b, None, None) for b, _ in targets]
    # The same requests in-process, warm, with the same clients and endpoints: what a warm
    # invoke would cost without the Runtime API, the event and the gRPC-Web framing. Run
    # after the processes, so DynamoDB Local's JVM is as warm for it as for the warm invokes.
    inproc = {}
    if os.path.exists(path_of("market-bench-inproc")):
        done = subprocess.run([path_of("market-bench-inproc")], env=dict(LAMBDA_LIKE_ENV, RUST_LOG="error", **base),
                              capture_output=True, text=True, timeout=300)
        inproc = json.loads(done.stdout) if done.returncode == 0 else {}
    print(f"{'function':<28}{'init':>9}{'first':>9}{'warm':>8}{'cold overhead':>15}{'x floor':>9}{'x shape':>9}{'peak RSS':>10}{'binary':>9}"
          f"{'in-proc':>9}{'warm/in-proc':>13}{'warm-in':>9}" + (f"{'metrics cost':>14}" if metrics_cost else "") + "  answers")
    floor = None
    overheads = {}
    mismatched = []
    figures = {}  # for bench.json (BENCH_OUT, set by scripts/bench.sh)
    for binary, results, bare in measured:
        if results is None:
            print(f"{binary:<28} not built")
            continue
        reference = is_reference(binary)
        with_cost = metrics_cost and not reference
        if not results or (with_cost and not bare):
            print(f"{binary:<28} failed")
            continue
        med = lambda rs, i: statistics.median(r[i] for r in rs)
        rss = statistics.median(r[3] for r in results if r[3]) if any(r[3] for r in results) else float("nan")
        size = os.path.getsize(path_of(binary)) / 1048576
        overhead = statistics.median(r[0] + r[1] - r[2] for r in results)
        overheads[binary] = overhead
        if binary == FLOOR:
            floor = overhead
        # Every row but the two references: x the one-GetItem floor (for the shape floors, what
        # their connections cost).
        x_floor = overhead / floor if floor and binary not in REFERENCES else None
        ratio = f"{x_floor:>8.2f}x" if x_floor else f"{'':>9}"
        shape = overheads.get(SHAPE.get(binary))
        x_shape = overhead / shape if shape else None
        line = (f"{binary:<28}{med(results, 0):>7.1f}ms{med(results, 1):>7.1f}ms{med(results, 2):>6.1f}ms{overhead:>13.1f}ms"
                f"{ratio}" + (f"{x_shape:>8.2f}x" if x_shape else f"{'':>9}") + f"{rss:>7.1f}MiB{size:>6.1f}MiB")
        warm_ratio = med(results, 2) / inproc[binary] if inproc.get(binary) else None
        # ...and in ms: the floor's own difference is what the harness adds to a plain read.
        line += (f"{inproc[binary]:>7.1f}ms{warm_ratio:>12.2f}x{med(results, 2) - inproc[binary]:>+9.1f}ms" if warm_ratio
                 else f"{'':>31}")
        # What the invokes answered: a warm invoke that answers other than the first (e.g. a
        # limit reached after the first) measures a different request; the row says so.
        first_status = sorted({r[4] for r in results})
        warm_status = sorted({s for r in results for s in r[5]})
        answers = "/".join(first_status) if warm_status == first_status else f"first {'/'.join(first_status)}, warm {'/'.join(warm_status)}"
        if warm_status != first_status:
            mismatched.append(binary)
        figures[binary] = {"answers": {"first": first_status, "warm": warm_status}, "init_ms": med(results, 0), "first_ms": med(results, 1), "warm_ms": med(results, 2),
                           "cold_overhead_ms": overhead, "x_floor": x_floor,
                           "shape_floor": SHAPE.get(binary), "x_shape_floor": x_shape,
                           "peak_rss_mib": rss if rss == rss else None, "binary_mib": size,
                           "in_process_ms": inproc.get(binary), "warm_vs_in_process": warm_ratio,
                           "warm_minus_in_process_ms": med(results, 2) - inproc[binary] if warm_ratio else None}
        if with_cost:
            cost = (med(results, 0) + med(results, 1)) - (med(bare, 0) + med(bare, 1))
            figures[binary]["metrics_cost_ms"] = cost
            line += f"{cost:>+12.2f}ms"
        print(f"{line}  {answers}")
    for proc in TERMINATORS:
        proc.kill()
    if mismatched:
        print(f"warning: warm invokes answered differently from the first for {', '.join(mismatched)}:"
              " their warm and cold-overhead figures compare different requests")
    # Every deployed function's binary (the template's Binary of each function = its crate).
    sizes = {name: os.path.getsize(path_of(name)) / 1048576 for name in sorted(os.listdir("functions"))
             if os.path.exists(path_of(name))}
    if sizes:
        over = {n: s for n, s in sizes.items() if s >= 8}
        largest = max(sizes, key=sizes.get)
        print(f"binaries: {len(sizes) - len(over)} of {len(sizes)} functions under 8 MiB "
              f"({min(sizes.values()):.2f}-{sizes[largest]:.2f} MiB, largest {largest})"
              + (f"; over: {', '.join(f'{n} {s:.2f}' for n, s in over.items())}" if over else ""))
    print("targets (issue 15): every RPC function's cold overhead <= 20 ms and <= 1.2x the floor over TLS"
          " (x shape: over the floor of its own I/O shape);"
          " warm invoke <= 1.2x in-process; peak RSS < 24 MiB; binary < 8 MiB")
    out = os.environ.get("BENCH_OUT")
    if out:
        os.makedirs(out, exist_ok=True)
        name = "coldstart_tls" if tls else "coldstart"
        with open(os.path.join(out, f"{name}.json"), "w") as f:
            json.dump({"runs": runs, "where": where, "functions": figures, "binary_mib": sizes}, f, indent=2)


if __name__ == "__main__":
    main()
