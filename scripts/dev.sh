#!/usr/bin/env bash
# `make dev`: the whole system locally, in the foreground; Ctrl-C stops everything.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
scripts/setup.sh
STACK=dev
trap 'scripts/stack.sh down "$STACK"' EXIT
trap 'exit 130' INT TERM
scripts/stack.sh up "$STACK"
scripts/stack.sh functions "$STACK"
npm --prefix web run --silent build >/dev/null
scripts/stack.sh console "$STACK"
CONSOLE_URL=$(sed -n 's/^CONSOLE_URL=//p' ".local/stacks/$STACK/env")
CLI=(target/debug/market-cli --env ".local/stacks/$STACK/env")
cat >&2 <<MSG

Helium Market runs locally.
Web console (the token is read from the fragment once, then removed from the address bar):
  as affiliate alice: ${CONSOLE_URL}#token=$("${CLI[@]}" token alice)
  as an administrator: ${CONSOLE_URL}#token=$("${CLI[@]}" admin-token ops)
  (tokens last 10 minutes; a fresh URL: make -s console-url AS=bob, or ADMIN=1)
From another shell:
  make cli ARGS="create-code alice"      # CreateInviteCode as user alice
  make cli ARGS="stats alice"            # GetAffiliateStats
  make cli ARGS="token alice"            # a bearer token for curl / your own client
  make cli ARGS="withdraw alice 100 k1"  # then: make cli ARGS="events" (affiliate.withdrawn)
  make cli ARGS="audit alice"            # admin: audit trail (also policy, config, ledger)
  set -a; . .local/stacks/$STACK/env; set +a   # the functions' environment
Press Ctrl-C to stop everything.
MSG
# `wait` (unlike a foreground sleep) lets the INT/TERM trap run at once.
sleep infinity &
wait $!
