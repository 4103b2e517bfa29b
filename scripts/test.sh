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
trap 'scripts/stack.sh down "$STACK"' EXIT
scripts/stack.sh up "$STACK"
set -a; . ".local/stacks/$STACK/env"; set +a
export RUST_LOG="${TEST_RUST_LOG:-warn}"

echo "== cargo test"
cargo test --workspace --locked
echo "== done in $((SECONDS - started)) s"
