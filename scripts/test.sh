#!/usr/bin/env bash
# `make test`: install what is missing, start a private local stack, run every check and
# test against it, and stop exactly what was started — also on failure or Ctrl-C.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
export SAM_CLI_TELEMETRY=0 AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}"
started=$SECONDS

scripts/setup.sh

echo "== template checks"
.local/venv/bin/cfn-lint infra/template.yaml
.local/venv/bin/sam validate --lint -t infra/template.yaml >/dev/null

STACK="test-$$"
# Shorter redrive than the template's defaults, so a poison message reaches its DLQ in
# seconds (visibility 10 s, 3 receives), and a 2 s configuration cache (the tests wait for
# config changes); the definitions are otherwise the template's.
export LOCAL_PARAMETERS="MaxReceiveCount=3,ConfigCacheTtlMs=2000" LOCAL_QUEUE_VISIBILITY_TIMEOUT=10
trap 'scripts/stack.sh down "$STACK"' EXIT
scripts/stack.sh up "$STACK"
# The functions' configuration for the end-to-end tests (tests/tests/rpc.rs relies on it).
export MARKET_CONFIG_JSON='{"max_active_codes":5,"min_withdraw_amount":10,"currency":"USD"}'
export RUST_LOG="${TEST_RUST_LOG:-warn}"
echo "== functions (cargo lambda watch)"
scripts/stack.sh functions "$STACK" --test
set -a; . ".local/stacks/$STACK/env"; set +a

echo "== cargo test"
cargo test --workspace --locked
echo "== done in $((SECONDS - started)) s"
