#!/usr/bin/env bash
# `make test`: install what is missing, start a private local stack, run every check and
# test against it, and stop exactly what was started — also on failure or Ctrl-C.
# `scripts/test.sh soak` (`make soak`): the same stack, only the chaos workload, long
# (SOAK_OPS operations, default 20000; SEED= replays a run).
set -euo pipefail
MODE="${1:-all}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
export SAM_CLI_TELEMETRY=0 AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}"
started=$SECONDS
phase() { echo "== $* (at $((SECONDS - started)) s)"; }

# The build is most of a fresh clone's time and needs nothing setup installs: start it now,
# so it overlaps the downloads and the stack's start. The same two commands as below (the
# functions' build, then the tests'), so each later one only finds its work done.
BUILD_LOG="$ROOT/target/test-build.log"
mkdir -p "$ROOT/target"
case "$MODE" in
  soak) TESTS=(-p market-tests --test chaos) ;;
  *) TESTS=(--workspace) ;;
esac
( cargo build --workspace --exclude market-bench --bins --locked --quiet && cargo test "${TESTS[@]}" --locked --no-run --quiet ) >"$BUILD_LOG" 2>&1 &
BUILD_PID=$!
stop_build() { pkill -TERM -P "$BUILD_PID" 2>/dev/null || true; kill "$BUILD_PID" 2>/dev/null || true; }
trap stop_build EXIT

phase setup
scripts/setup.sh

phase "template checks"
.local/venv/bin/cfn-lint infra/template.yaml
.local/venv/bin/sam validate --lint -t infra/template.yaml >/dev/null
# The security scan: any failed check fails the run; skips are listed with their reasons.
.local/checkov/bin/checkov -f infra/template.yaml --config-file infra/checkov.yaml

STACK="test-$$"
# Shorter redrive than the template's defaults, so a poison message reaches its DLQ in
# seconds (visibility 10 s, 3 receives), and a 2 s configuration cache (the tests wait for
# config changes); the definitions are otherwise the template's.
export LOCAL_PARAMETERS="MaxReceiveCount=3,ConfigCacheTtlMs=2000" LOCAL_QUEUE_VISIBILITY_TIMEOUT=10
trap 'stop_build; scripts/stack.sh down "$STACK"' EXIT
phase "stack up"
scripts/stack.sh up "$STACK"
phase "build (started at 0 s)"
if ! wait "$BUILD_PID"; then cat "$BUILD_LOG" >&2; echo "build failed" >&2; exit 1; fi
# The functions' configuration for the end-to-end tests (tests/tests/rpc.rs relies on it).
export MARKET_CONFIG_JSON='{"max_active_codes":5,"min_withdraw_amount":10,"currency":"USD"}'
export RUST_LOG="${TEST_RUST_LOG:-warn}"
phase "functions (cargo lambda watch)"
scripts/stack.sh functions "$STACK" --test
set -a; . ".local/stacks/$STACK/env"; set +a

# The chaos run writes its report here (cargo captures a passing test's output).
export CHAOS_REPORT="$ROOT/target/chaos-report.txt"
rm -f "$CHAOS_REPORT"
case "$MODE" in
  all)
    phase "cargo test"
    # The chaos run goes last, on its own: DynamoDB Local bounds it, and a fresh JVM serves
    # about half the calls per second a warm one does (C2 compiles for its first minutes).
    # `--workspace --test chaos` resolves features as the build did (no rebuild).
    CHAOS=a_seeded_workload_under_faults_keeps_every_invariant
    cargo test --workspace --locked -- --skip "$CHAOS"
    phase "chaos workload (short run)"
    cargo test --workspace --locked --test chaos -- --exact "$CHAOS"
    phase "web console in Chromium (Playwright)"
    npm --prefix web run --silent build >/dev/null
    scripts/stack.sh console "$STACK"
    set -a; . ".local/stacks/$STACK/env"; set +a
    # Screenshots and traces of the run: target/console-artifacts.
    MARKET_CLI="$ROOT/target/debug/market-cli" MARKET_STACK_ENV="$ROOT/.local/stacks/$STACK/env" \
      CONSOLE_ARTIFACTS="$ROOT/target/console-artifacts" npm --prefix web test --silent ;;
  soak)
    phase "soak: chaos workload, ${SOAK_OPS:-20000} operations"
    CHAOS_OPS="${SOAK_OPS:-20000}" cargo test --locked -p market-tests --test chaos -- --nocapture ;;
  *) echo "usage: $0 [all|soak]" >&2; exit 2 ;;
esac
[ -f "$CHAOS_REPORT" ] && { echo "== chaos report"; cat "$CHAOS_REPORT"; }
# Invariant 13: no function made a call its template policy denies (local-aws saw every
# DynamoDB and SQS call of the run); what each used of its grants.
phase "least privilege (local-aws)"
scripts/stack.sh iam-report "$STACK"
echo "== done in $((SECONDS - started)) s"
