#!/usr/bin/env bash
# `make dev`: the whole system locally, in the foreground; Ctrl-C stops everything.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
scripts/setup.sh
STACK=dev
trap 'scripts/stack.sh down "$STACK"' EXIT INT TERM
scripts/stack.sh up "$STACK"
cat >&2 <<MSG

Helium Market local stack is up. Use it from another shell with:
  set -a; . .local/stacks/$STACK/env; set +a
Press Ctrl-C to stop it.
MSG
while sleep 3600; do :; done
