#!/usr/bin/env bash
# Container smoke test: builds the image with podman, runs it against a throwaway Redis and PostgreSQL on the
# host's loopback, posts a signed GitHub webhook, finds its row in PostgreSQL, then sends SIGTERM and requires a
# graceful exit (code 0) within the grace period. One line per check; the last line is "N passed, N failed";
# the exit code is non-zero on any failure. Containers, servers and temp files are removed on exit.
#
#   npm run test:container          (or: bash test/container/smoke.sh)
# Environment: HOOKSTREAM_IMAGE (tag to build, default localhost/hookstream:smoke), CONTAINERS_CONF (podman
# settings, written by build-base-image.sh), NPM_CA_FILE (CA bundle for npm inside the build, default
# $NODE_EXTRA_CA_CERTS when set), SMOKE_GRACE_SECONDS (default 40; the drain timeout is 30 s).
set -uo pipefail
cd "$(dirname "$0")/../.."

export CONTAINERS_CONF=${CONTAINERS_CONF:-/tmp/hookstream-containers.conf}
IMAGE=${HOOKSTREAM_IMAGE:-localhost/hookstream:smoke}
GRACE_SECONDS=${SMOKE_GRACE_SECONDS:-40}
CA_FILE=${NPM_CA_FILE:-${NODE_EXTRA_CA_CERTS:-}}
NAME=hookstream-smoke-$$
WORK=$(mktemp -d /tmp/hookstream-smoke.XXXXXX)
SECRET=$(node -e 'console.log(require("node:crypto").randomBytes(24).toString("hex"))')
CHECKS=(build ready healthcheck accepted stored "graceful exit")
passed=0 failed=0 servers_pid='' started=''

log() { printf '%s\n' "$*" >&2; }
pass() { passed=$((passed + 1)); printf 'ok    %s%s\n' "$1" "${2:+ ($2)}"; }
fail() { failed=$((failed + 1)); printf 'FAIL  %s%s\n' "$1" "${2:+ ($2)}"; }

cleanup() {
  trap - EXIT INT TERM
  if [ -n "$started" ]; then podman rm -f -t 0 "$NAME" >/dev/null 2>&1; fi
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
  log "---- container logs (last 40 lines) ----"
  timeout 20 podman logs --tail 40 "$NAME" >&2 2>&1 || true
  log "----"
}

# ---------------------------------------------------------------------------------------------- build
if [ ! -f "$CONTAINERS_CONF" ] || ! command -v podman >/dev/null || ! podman image exists docker.io/library/node:20-bookworm-slim; then
  log "building the base image node:20-bookworm-slim (cached afterwards)"
  if ! timeout 600 bash test/container/build-base-image.sh >"$WORK/base.log" 2>&1; then
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

# --network=host: the container reaches the loopback servers; unique ports keep parallel runs apart
if ! podman run -d --name "$NAME" --network=host \
    -e REDIS_URL="$REDIS_URL" -e DATABASE_URL="$DATABASE_URL" \
    -e HTTP_ADDR="127.0.0.1:$HTTP_PORT" -e HEALTH_ENDPOINT="127.0.0.1:$HEALTH_PORT" \
    -e HOOKSTREAM_CONFIG=/etc/hookstream/hookstream.yaml -e WORKER_CONSUMER_NAME="$NAME" -e LOG_LEVEL=info \
    -v "$WORK/hookstream.yaml:/etc/hookstream/hookstream.yaml:ro" \
    "$IMAGE" >"$WORK/run.log" 2>&1; then
  cat "$WORK/run.log" >&2
  fail ready "podman run failed"
  finish
fi
started=1

# ---------------------------------------------------------------------------------------------- ready
status=0 t0=$SECONDS
while [ $((SECONDS - t0)) -lt 60 ]; do
  status=$(http_status "http://127.0.0.1:$HEALTH_PORT/health/ready")
  [ "$status" = 200 ] && break
  [ "$(timeout 20 podman inspect -f '{{.State.Running}}' "$NAME" 2>/dev/null)" = true ] || break
  sleep 1
done
if [ "$status" = 200 ]; then
  pass ready "/health/ready 200 after $((SECONDS - t0)) s, user $(timeout 20 podman exec "$NAME" id -un 2>/dev/null)"
else
  show_logs
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
DELIVERY=$(node -e 'console.log(require("node:crypto").randomUUID())')
accepted=$(SECRET="$SECRET" DELIVERY="$DELIVERY" node -e '
  const { createHmac } = require("node:crypto")
  const body = JSON.stringify({ ref: "refs/heads/main", after: "0000000000000000000000000000000000000001",
    repository: { id: 1, full_name: "hookstream/smoke", name: "smoke" }, pusher: { name: "smoke" }, commits: [] })
  const signature = "sha256=" + createHmac("sha256", process.env.SECRET).update(body).digest("hex")
  fetch(process.argv[1], { method: "POST", body, signal: AbortSignal.timeout(10000), headers: {
    "content-type": "application/json", "x-github-event": "push", "x-github-delivery": process.env.DELIVERY,
    "x-hub-signature-256": signature } })
    .then(async (r) => console.log(r.status, (await r.text()).slice(0, 200)), (e) => console.log(0, e.message))
' "http://127.0.0.1:$HTTP_PORT/webhooks/smoke-github")
case "$accepted" in
  2[0-9][0-9]\ *) pass accepted "POST /webhooks/smoke-github → ${accepted%% *}" ;;
  *) show_logs; fail accepted "POST /webhooks/smoke-github → $accepted"; finish ;;
esac

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
  show_logs
  fail stored "no webhook_events row with id $DELIVERY within 30 s"
fi

# -------------------------------------------------------------------------------------- graceful exit
t0=$SECONDS
timeout 20 podman kill --signal TERM "$NAME" >/dev/null 2>&1
code=$(timeout "$GRACE_SECONDS" podman wait "$NAME" 2>/dev/null)
elapsed=$((SECONDS - t0))
if [ "$code" = 0 ]; then
  pass "graceful exit" "SIGTERM → exit 0 after ${elapsed} s (grace ${GRACE_SECONDS} s)"
else
  show_logs
  fail "graceful exit" "SIGTERM → exit code '${code:-still running}' after ${elapsed} s (grace ${GRACE_SECONDS} s)"
fi
finish
