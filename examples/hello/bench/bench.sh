#!/usr/bin/env bash
# Benchmark the hello service, release build, with wrk (Debian package `wrk`):
#   1. GET /ping                      (routing, middleware, metrics)
#   2. GET /me with a bearer token    (JWT verification)
#   3. POST /signup with a token      (JWT + body validation + spawn: a signed
#                                      envelope XADDed to a real redis-server,
#                                      run by a `hello worker` process)
# Usage: examples/hello/bench/bench.sh   (env: DURATION=10s CONNS=64 THREADS=2 PYM_LOG=warn SKIP_BUILD=1)
set -euo pipefail
root="$(cd "$(dirname "$0")/../../.." && pwd)"
cd "$root"
command -v wrk >/dev/null || { echo "wrk is not installed: apt-get install -y wrk" >&2; exit 2; }
command -v redis-server >/dev/null || { echo "redis-server is not installed: apt-get install -y redis-server" >&2; exit 2; }
DURATION=${DURATION:-10s}
CONNS=${CONNS:-64}
THREADS=${THREADS:-2}
export PYM_LOG=${PYM_LOG:-warn}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
RPORT=$(free_port); APORT=$(free_port); WPORT=$(free_port)

[ "${SKIP_BUILD:-}" = 1 ] || cargo build --release -p hello >&2
BIN="$root/target/release/hello"
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

redis-server --port "$RPORT" --bind 127.0.0.1 --save "" --appendonly no >"$tmp/redis.log" 2>&1 &
pids+=($!)
export PYM_REDIS_URL="redis://127.0.0.1:$RPORT/0"
export PYM_JWT_SECRET="$(openssl rand -hex 32)"
export PYM_PORT="$APORT" PYM_WORKER_PORT="$WPORT"
for _ in $(seq 100); do redis-cli -p "$RPORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
"$BIN" worker >"$tmp/worker.log" 2>&1 &
pids+=($!)
"$BIN" serve >"$tmp/api.log" 2>&1 &
pids+=($!)
for _ in $(seq 200); do curl -sf "http://127.0.0.1:$APORT/readyz" >/dev/null && break; sleep 0.1; done

TOKEN=$("$BIN" token bench-user --claims '{"role":"bench"}')
cat >"$tmp/me.lua" <<LUA
wrk.headers["Authorization"] = "Bearer $TOKEN"
LUA
cat >"$tmp/signup.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"email":"bench@example.com","name":"Bench"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $TOKEN"
done = function(summary, latency, requests)
  io.write(string.format("non-2xx/3xx: %d\n", summary.errors.status))
end
LUA

echo "## $(nproc) cores; wrk -t$THREADS -c$CONNS -d$DURATION; PYM_LOG=$PYM_LOG; server, worker, redis and wrk share the machine"
echo "### GET /ping"
wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency "http://127.0.0.1:$APORT/ping"
echo "### GET /me (JWT HS256 verified)"
wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency -s "$tmp/me.lua" "http://127.0.0.1:$APORT/me"
echo "### POST /signup (JWT + validation + task spawned to Redis, run by the worker)"
wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency -s "$tmp/signup.lua" "http://127.0.0.1:$APORT/signup"
echo "### queue right after the signup run"
"$BIN" stats --queue default
start=$(date +%s.%N)
for _ in $(seq 600); do
  work=$("$BIN" stats --queue default --json | python3 -c 'import json,sys; s=json.load(sys.stdin)[0]; print(s["ready"]+s["in_flight"]+s["delayed_due"])')
  [ "$work" = 0 ] && break
  sleep 0.1
done
echo "worker drained the backlog $(python3 -c "print(round($(date +%s.%N)-$start,2))") s after wrk ended"
curl -s "http://127.0.0.1:$WPORT/metrics" | grep -E '^pym_tasks_(succeeded|failed|dead_lettered)_total' || true
