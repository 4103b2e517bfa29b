#!/usr/bin/env bash
# `make bench`: release functions on a private local stack; prints figures, asserts nothing.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
scripts/setup.sh
STACK="bench-$$"
trap 'scripts/stack.sh down "$STACK"' EXIT
scripts/stack.sh up "$STACK"
export MARKET_CONFIG_JSON='{"max_active_codes":50,"min_withdraw_amount":1,"currency":"USD"}' RUST_LOG=warn
scripts/stack.sh functions "$STACK" --bench
set -a; . ".local/stacks/$STACK/env"; set +a
cargo run --release -q -p market-tests --bin market-bench
cargo run --release -q -p market-tests --bin market-bench-events
python3 scripts/coldstart.py 10
