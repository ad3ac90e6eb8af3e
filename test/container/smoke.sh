#!/usr/bin/env bash
# Container smoke test: builds the image with podman, runs it against a throwaway Redis and PostgreSQL on the
# host's loopback, posts a signed GitHub webhook and finds its row in PostgreSQL, then sends SIGTERM in the middle
# of a burst of webhooks and requires a graceful exit (code 0) within the grace period, and finally starts a second
# container and requires every accepted delivery to be stored (nothing lost across the restart). One line per
# check; the last line is "N passed, N failed"; the exit code is non-zero on any failure. Containers, servers and
# temp files are removed on exit; every wait has a timeout.
#
#   npm run test:container          (or: bash test/container/smoke.sh)
# Environment: HOOKSTREAM_IMAGE (tag to build, default localhost/hookstream:smoke), CONTAINERS_CONF (podman
# settings, written by build-base-image.sh), NPM_CA_FILE (CA bundle for npm inside the build, default
# $NODE_EXTRA_CA_CERTS when set), SMOKE_GRACE_SECONDS (default 40; the drain timeout is 30 s), SMOKE_BURST
# (webhooks in the burst, default 300).
set -uo pipefail
cd "$(dirname "$0")/../.."

export CONTAINERS_CONF=${CONTAINERS_CONF:-/tmp/hookstream-containers.conf}
IMAGE=${HOOKSTREAM_IMAGE:-localhost/hookstream:smoke}
GRACE_SECONDS=${SMOKE_GRACE_SECONDS:-40}
CA_FILE=${NPM_CA_FILE:-${NODE_EXTRA_CA_CERTS:-}}
# behind an intercepting proxy its CA is usually in the system bundle; npm in the build needs it too
if [ -z "$CA_FILE" ] && [ -f /etc/ssl/certs/ca-certificates.crt ]; then CA_FILE=/etc/ssl/certs/ca-certificates.crt; fi
NAME=hookstream-smoke-$$
WORK=$(mktemp -d /tmp/hookstream-smoke.XXXXXX)
SECRET=$(node -e 'console.log(require("node:crypto").randomBytes(24).toString("hex"))')
BURST=${SMOKE_BURST:-300}
CHECKS=(build ready healthcheck accepted stored "graceful exit" "no loss after restart")
passed=0 failed=0 servers_pid=''
containers=()

log() { printf '%s\n' "$*" >&2; }
pass() { passed=$((passed + 1)); printf 'ok    %s%s\n' "$1" "${2:+ ($2)}"; }
fail() { failed=$((failed + 1)); printf 'FAIL  %s%s\n' "$1" "${2:+ ($2)}"; }

cleanup() {
  trap - EXIT INT TERM
  local c
  for c in "${containers[@]}"; do timeout 30 podman rm -f -t 0 "$c" >/dev/null 2>&1; done
  if [ -n "$servers_pid" ]; then kill -TERM "$servers_pid" 2>/dev/null; wait "$servers_pid" 2>/dev/null; fi
  rm -rf "$WORK"
}

# Ends the run; checks that did not get to run count as failed (each check reports once, in order).
finish() {
  local i
  for ((i = passed + failed; i < ${#CHECKS[@]}; i++)); do fail "${CHECKS[$i]}" "not run"; done
  cleanup
  echo "${passed} passed, ${failed} failed"
  if [ "$failed" -eq 0 ]; then exit 0; else exit 1; fi
}
trap 'finish' EXIT
trap 'log "interrupted"; exit 130' INT TERM

# Prints the HTTP status of GET $1 (0 when nothing answers).
http_status() {
  node -e 'fetch(process.argv[1], { signal: AbortSignal.timeout(3000) }).then((r) => console.log(r.status), () => console.log(0))' "$1"
}

free_port() {
  node -e 'const s = require("node:net").createServer(); s.listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close() })'
}

show_logs() {
  log "---- $1 logs (last 40 lines) ----"
  timeout 20 podman logs --tail 40 "$1" >&2 2>&1 || true
  log "----"
}

# ---------------------------------------------------------------------------------------------- build
# the Dockerfile's base, node:<major>-bookworm-slim, is built from the Node binary this script runs on (the Node 24
# that .ci/run puts first on PATH); build-base-image.sh reads it from NODE_BIN
BASE_TAG=$(sed -n 's/^FROM \(node:[0-9]*-bookworm-slim\).*/\1/p' Dockerfile | head -n1)
NODE_BIN=$(command -v node)
NODE_MAJOR=$("$NODE_BIN" -p 'process.versions.node.split(".")[0]')
if [ "$BASE_TAG" != "node:${NODE_MAJOR}-bookworm-slim" ]; then
  fail build "the Dockerfile builds FROM ${BASE_TAG:-(none)} but this script runs on Node ${NODE_MAJOR} ($NODE_BIN); put Node ${BASE_TAG//[^0-9]/} first on PATH"
  finish
fi
if [ ! -f "$CONTAINERS_CONF" ] || ! command -v podman >/dev/null || ! podman image exists "docker.io/library/$BASE_TAG"; then
  log "building the base image $BASE_TAG from $NODE_BIN (cached afterwards)"
  if ! NODE_BIN=$NODE_BIN timeout 600 bash test/container/build-base-image.sh >"$WORK/base.log" 2>&1; then
    tail -20 "$WORK/base.log" >&2
    fail build "base image: test/container/build-base-image.sh failed"
    finish
  fi
fi

build_args=(--pull=never --network=host --format docker -t "$IMAGE")
if [ -n "$CA_FILE" ] && [ -f "$CA_FILE" ]; then build_args+=(--secret "id=npm_ca,src=$CA_FILE"); fi
t0=$SECONDS
if timeout 900 podman build "${build_args[@]}" . >"$WORK/build.log" 2>&1; then
  size=$(podman image inspect "$IMAGE" --format '{{.Size}}' | awk '{ printf "%.0f MB", $1 / 1000000 }')
  pass build "$IMAGE, $size, $((SECONDS - t0)) s"
else
  tail -30 "$WORK/build.log" >&2
  fail build "podman build failed; log above"
  finish
fi

# -------------------------------------------------------------------------------------- servers + run
node --import tsx test/container/smoke-servers.ts $$ >"$WORK/servers.env" 2>"$WORK/servers.log" &
servers_pid=$!
for _ in $(seq 1 120); do
  grep -q '^READY$' "$WORK/servers.env" && break
  kill -0 "$servers_pid" 2>/dev/null || break
  sleep 0.5
done
if ! grep -q '^READY$' "$WORK/servers.env"; then
  cat "$WORK/servers.log" >&2
  fail ready "Redis/PostgreSQL did not start (test/container/smoke-servers.ts)"
  finish
fi
REDIS_URL=$(sed -n 's/^REDIS_URL=//p' "$WORK/servers.env")
DATABASE_URL=$(sed -n 's/^DATABASE_URL=//p' "$WORK/servers.env")
HTTP_PORT=$(free_port)
HEALTH_PORT=$(free_port)
while [ "$HEALTH_PORT" = "$HTTP_PORT" ]; do HEALTH_PORT=$(free_port); done

cat >"$WORK/hookstream.yaml" <<YAML
tools:
  - id: smoke-github
    provider: github
    secret: ${SECRET}
    processing_mode: store
YAML
chmod 644 "$WORK/hookstream.yaml"

# Starts the image as container $1. --network=host: it reaches the loopback servers; unique ports keep
# parallel runs apart; the consumer name stays the same across containers, as a restarted pod's would.
# Read-only root, no capabilities, no privilege escalation: the securityContext of deploy/kubernetes.
start_container() {
  podman run -d --name "$1" --network=host --read-only --cap-drop=ALL --security-opt=no-new-privileges \
    -e REDIS_URL="$REDIS_URL" -e DATABASE_URL="$DATABASE_URL" \
    -e HTTP_ADDR="127.0.0.1:$HTTP_PORT" -e HEALTH_ENDPOINT="127.0.0.1:$HEALTH_PORT" \
    -e HOOKSTREAM_CONFIG=/etc/hookstream/hookstream.yaml -e WORKER_CONSUMER_NAME="smoke-$$" -e LOG_LEVEL=info \
    -v "$WORK/hookstream.yaml:/etc/hookstream/hookstream.yaml:ro" \
    "$IMAGE" >"$WORK/run.log" 2>&1 || { cat "$WORK/run.log" >&2; return 1; }
  containers+=("$1")
}

# Waits up to 60 s for /health/ready of container $1 to answer 200; prints the last status.
wait_ready() {
  local status=0 t0=$SECONDS
  while [ $((SECONDS - t0)) -lt 60 ]; do
    status=$(http_status "http://127.0.0.1:$HEALTH_PORT/health/ready")
    [ "$status" = 200 ] && break
    [ "$(timeout 20 podman inspect -f '{{.State.Running}}' "$1" 2>/dev/null)" = true ] || break
    sleep 1
  done
  echo "$status"
}

# Sends SIGTERM to container $1 and prints its exit code, or nothing when it outlives the grace period.
stop_container() {
  timeout 20 podman kill --signal TERM "$1" >/dev/null 2>&1
  timeout "$GRACE_SECONDS" podman wait "$1" 2>/dev/null
}

# Counts the webhook_events rows whose id is one of the lines of file $1.
count_rows() {
  local ids
  ids=$(paste -sd, "$1")
  timeout 10 psql "$DATABASE_URL" -tAqc "SELECT count(*) FROM webhook_events WHERE id = ANY(string_to_array('$ids', ','))" 2>/dev/null || echo 0
}

# ---------------------------------------------------------------------------------------------- ready
t0=$SECONDS
if ! start_container "$NAME"; then
  fail ready "podman run failed"
  finish
fi
status=$(wait_ready "$NAME")
if [ "$status" = 200 ]; then
  pass ready "/health/ready 200 after $((SECONDS - t0)) s, user $(timeout 20 podman exec "$NAME" id -un 2>/dev/null)"
else
  show_logs "$NAME"
  fail ready "/health/ready answered $status (0 = nothing listening) within 60 s"
  finish
fi

# the image's HEALTHCHECK (node + fetch on /health/live), run by podman inside the container
if timeout 20 podman healthcheck run "$NAME" >"$WORK/hc.log" 2>&1; then
  pass healthcheck "podman healthcheck run: healthy"
else
  fail healthcheck "podman healthcheck run: $(tr '\n' ' ' <"$WORK/hc.log")"
fi

# ------------------------------------------------------------------------------------------- accepted
INGEST="http://127.0.0.1:$HTTP_PORT/webhooks/smoke-github"
# webhooks TIMEOUT_SECONDS ACCEPTED_FILE COUNT CONCURRENCY
webhooks() { SMOKE_SECRET="$SECRET" timeout "$1" node --import tsx test/container/smoke-webhooks.ts "$INGEST" "${@:2}"; }
accepted=$(webhooks 30 "$WORK/first.txt" 1 1)
case "$accepted" in
  2[0-9][0-9]\ *) pass accepted "POST /webhooks/smoke-github → ${accepted%% *}" ;;
  *) show_logs "$NAME"; fail accepted "POST /webhooks/smoke-github → $accepted"; finish ;;
esac
DELIVERY=$(head -n1 "$WORK/first.txt")

# --------------------------------------------------------------------------------------------- stored
count=0 t0=$SECONDS
while [ $((SECONDS - t0)) -lt 30 ]; do
  count=$(timeout 10 psql "$DATABASE_URL" -tAqc "SELECT count(*) FROM webhook_events WHERE id = '$DELIVERY'" 2>/dev/null || echo 0)
  [ "$count" = 1 ] && break
  sleep 0.5
done
if [ "$count" = 1 ]; then
  row=$(psql "$DATABASE_URL" -tAqc "SELECT tool_id || ' ' || event_type || ' ' || repository FROM webhook_events WHERE id = '$DELIVERY'")
  pass stored "webhook_events row $DELIVERY: $row, after $((SECONDS - t0)) s"
else
  show_logs "$NAME"
  fail stored "no webhook_events row with id $DELIVERY within 30 s"
fi

# -------------------------------------------------------------------------------------- graceful exit
# SIGTERM lands mid-burst: ingest stops taking requests, the worker drains what it holds and exits 0
: >"$WORK/burst.txt"
webhooks 120 "$WORK/burst.txt" "$BURST" 16 >"$WORK/burst.out" 2>&1 &
burst_pid=$!
for _ in $(seq 1 100); do
  [ "$(wc -l <"$WORK/burst.txt")" -ge $((BURST / 4)) ] && break
  kill -0 "$burst_pid" 2>/dev/null || break
  sleep 0.1
done
t0=$SECONDS
code=$(stop_container "$NAME")
elapsed=$((SECONDS - t0))
wait "$burst_pid"
if [ "$code" = 0 ]; then
  pass "graceful exit" "SIGTERM during a burst → exit 0 after ${elapsed} s (grace ${GRACE_SECONDS} s); $(cat "$WORK/burst.out")"
else
  show_logs "$NAME"
  fail "graceful exit" "SIGTERM → exit code '${code:-still running}' after ${elapsed} s (grace ${GRACE_SECONDS} s)"
fi

# ------------------------------------------------------------------------------ no loss after restart
# every accepted delivery is stored, by the first container or, from the stream, by its successor
cat "$WORK/first.txt" "$WORK/burst.txt" >"$WORK/all.txt"
want=$(wc -l <"$WORK/all.txt")
before=$(count_rows "$WORK/all.txt")
got=0
if start_container "$NAME-2" && [ "$(wait_ready "$NAME-2")" = 200 ]; then
  t0=$SECONDS
  while [ $((SECONDS - t0)) -lt 30 ]; do
    got=$(count_rows "$WORK/all.txt")
    [ "$got" = "$want" ] && break
    sleep 0.5
  done
  code=$(stop_container "$NAME-2")
else
  code=''
fi
if [ "$got" = "$want" ] && [ "$code" = 0 ]; then
  pass "no loss after restart" "$got of $want accepted deliveries stored ($before before the restart); second container exit 0"
else
  show_logs "$NAME-2"
  fail "no loss after restart" "$got of $want accepted deliveries stored ($before before the restart); second container exit '${code:-none}'"
fi
finish
