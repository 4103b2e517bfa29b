#!/usr/bin/env bash
# `make bench`: release functions on a private local stack; prints figures, asserts nothing.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
scripts/setup.sh
STACK="bench-$$"
# Every benchmark writes its figures as a section here; merged into bench.json at the end
# (also when one fails: what was measured is kept).
export BENCH_OUT="$ROOT/target/bench"
rm -rf "$BENCH_OUT"; mkdir -p "$BENCH_OUT"
merge() {
  python3 - "$BENCH_OUT" <<'PY'
import json, os, sys, datetime
out = sys.argv[1]
doc = {"measured_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
for name in sorted(os.listdir(out)):
    if name.endswith(".json") and name != "bench.json":
        with open(os.path.join(out, name)) as f:
            doc[name[:-5]] = json.load(f)
with open(os.path.join(out, "bench.json"), "w") as f:
    json.dump(doc, f, indent=2)
print(f"figures: {os.path.join(out, 'bench.json')}")
PY
}
trap 'merge; scripts/stack.sh down "$STACK"' EXIT
scripts/stack.sh up "$STACK"
export MARKET_CONFIG_JSON='{"max_active_codes":50,"min_withdraw_amount":1,"currency":"USD"}' RUST_LOG=warn
scripts/stack.sh functions "$STACK" --bench
set -a; . ".local/stacks/$STACK/env"; set +a
# Built first, then run as plain processes: a `cargo run` would hold the target directory's
# lock that `cargo lambda watch` needs to (re)start a function.
# (--workspace: the features resolve as for the functions' build, so only the bench compiles)
cargo build --release -q --workspace --bins
target/release/market-bench
target/release/market-bench-events
BENCH_HOT_LIFECYCLE_EVENTS=0 target/release/market-bench-hot
# The same with lifecycle events on: one inviter's rewards serialize on its event sequence.
BENCH_HOT_LIFECYCLE_EVENTS=1 target/release/market-bench-hot
python3 scripts/coldstart.py 10
# Again as AWS pays it: DynamoDB, SQS and Redis over TLS, next to a hello world and a
# one-GetItem floor built from this workspace.
python3 scripts/coldstart.py --tls --no-metrics-cost 10
# The web console: bundle size gzipped, time to first meaningful render in Chromium.
npm --prefix web run --silent build >/dev/null
scripts/stack.sh console "$STACK"
CONSOLE_URL=$(sed -n 's/^CONSOLE_URL=//p' ".local/stacks/$STACK/env") node web/scripts/render-bench.mjs 10
# Last (the heaviest): LOAD_CLIENTS clients (200) for
# LOAD_SECONDS (60) mixing every user RPC; p50/p99 per RPC; fails on INTERNAL or a hang.
target/release/market-load
