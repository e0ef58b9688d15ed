#!/usr/bin/env bash
# Benchmark the hello service beside a bare-axum control, release builds,
# with wrk (Debian package `wrk`), in one run, alternating the servers:
#   1. GET /ping                 (pym: request id, trace, context, metrics, access log)
#   2. GET /me with a bearer     (+ JWT HS256 verification; the control verifies the same token)
#   3. POST /signup with a token (+ body validation + a signed task XADDed to a real
#                                 redis-server and run by a `hello worker`; the control
#                                 parses the body and XADDs it)
# Each row gives req/s, p50, p99, req/s as a ratio to the control of the same round,
# and the server's CPU time per request (user + system, from /proc).
#
# Usage: examples/hello/bench/bench.sh [--help]
# Env:   DURATION=8s CONNS=50 THREADS=2 ROUNDS=2
#        PYM_LOG            hello's log filter (default: hello's own, info: one access line per request)
#        BASELINE_BIN=path  also run this hello binary (e.g. the previous commit's) as "baseline"
#        SKIP_BUILD=1       use target/release/{hello,bench-control} as they are
#        ONLY=ping,me,signup  endpoints to run
#        CALIBRATE_NS=N     also run the control with N ns of busy CPU added to each /ping
#                           ("control+Nns"): what N ns per request costs in req/s here
#        PROFILE=1          also record each server with perf (Debian package linux-perf)
#                           during its rows and print where its CPU goes, step by step
#                           (steps.py): share of samples × CPU per request. perf slows
#                           the server a little; compare rows of one run only.
set -euo pipefail
if [ "${1:-}" = --help ] || [ "${1:-}" = -h ]; then sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'; exit 0; fi
root="$(cd "$(dirname "$0")/../../.." && pwd)"
cd "$root"
command -v wrk >/dev/null || { echo "wrk is not installed: apt-get install -y wrk" >&2; exit 2; }
[ "${PROFILE:-}" != 1 ] || command -v perf >/dev/null || { echo "PROFILE=1 needs perf: apt-get install -y linux-perf" >&2; exit 2; }
command -v redis-server >/dev/null || { echo "redis-server is not installed: apt-get install -y redis-server" >&2; exit 2; }
DURATION=${DURATION:-8s}
CONNS=${CONNS:-50}
THREADS=${THREADS:-2}
ROUNDS=${ROUNDS:-2}
ONLY=${ONLY:-ping,me,signup}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

target="${CARGO_TARGET_DIR:-$root/target}"
[ "${SKIP_BUILD:-}" = 1 ] || cargo build --release -p hello -p bench-control >&2
HELLO_BIN="$target/release/hello"
CONTROL_BIN="$target/release/bench-control"
servers=(control hello)
[ -n "${BASELINE_BIN:-}" ] && servers+=(baseline)
[ -n "${CALIBRATE_NS:-}" ] && servers+=("control+${CALIBRATE_NS}ns")

tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

RPORT=$(free_port)
redis-server --port "$RPORT" --bind 127.0.0.1 --save "" --appendonly no >"$tmp/redis.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do redis-cli -p "$RPORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
export PYM_REDIS_URL="redis://127.0.0.1:$RPORT/0"
export PYM_JWT_SECRET="$(openssl rand -hex 32)"
export JWT_ISSUER=https://hello.example JWT_AUDIENCE=hello # hello's pym-config.yaml
TOKEN=$("$HELLO_BIN" token bench-user --claims '{"role":"bench"}')
cat >"$tmp/me.lua" <<LUA
wrk.headers["Authorization"] = "Bearer $TOKEN"
LUA
cat >"$tmp/signup.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"email":"bench@example.com","name":"Bench"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $TOKEN"
LUA
: >"$tmp/ping.lua"

# start <server>: its processes in the background, their pids in $running.
start() {
  local bin port
  port=$(free_port)
  running=()
  case $1 in
    control) "$CONTROL_BIN" "$port" >"$tmp/$1.log" 2>&1 & running+=($!) ;;
    control+*) BENCH_SPIN_NS=$CALIBRATE_NS "$CONTROL_BIN" "$port" >"$tmp/$1.log" 2>&1 & running+=($!) ;;
    hello | baseline)
      bin=$HELLO_BIN; [ "$1" = baseline ] && bin=$BASELINE_BIN
      PYM_WORKER_PORT=$(free_port) "$bin" worker >"$tmp/$1-worker.log" 2>&1 & running+=($!)
      PYM_PORT=$port "$bin" serve >"$tmp/$1.log" 2>&1 & running+=($!) ;;
  esac
  pids+=("${running[@]}")
  url="http://127.0.0.1:$port"
  for _ in $(seq 200); do curl -s -o /dev/null "$url/ping" && return; sleep 0.1; done
  echo "$1 did not start:" >&2; cat "$tmp/$1.log" >&2; exit 1
}

# CPU time of process $1 so far, in clock ticks (user + system).
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# row <round> <server> <endpoint>: wrk (under perf with PROFILE=1), then one
# result line. The server is the last process `start` ran.
row() {
  local out server_pid=${running[${#running[@]}-1]} before perf_pid=""
  before=$(ticks "$server_pid")
  if [ "${PROFILE:-}" = 1 ]; then
    perf record -q --call-graph dwarf,32768 -F 400 -p "$server_pid" -o "$tmp/perf.data" \
      -- sleep "${DURATION%s}" >/dev/null 2>&1 &
    perf_pid=$!
  fi
  out=$(wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency -s "$tmp/$3.lua" "$url/$3")
  local cpu=$(( $(ticks "$server_pid") - before ))
  python3 - "$1" "$2" "$3" "$out" "$cpu" "$(getconf CLK_TCK)" >>"$tmp/rows" <<'PY'
import re, sys
rnd, server, ep, out, cpu, hz = sys.argv[1:]
def ms(v):
    n, u = re.match(r"([\d.]+)(us|ms|s)", v).groups()
    return float(n) * {"us": 0.001, "ms": 1, "s": 1000}[u]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
p50 = ms(re.search(r"\s50%\s+(\S+)", out).group(1))
p99 = ms(re.search(r"\s99%\s+(\S+)", out).group(1))
bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
total = int(re.search(r"(\d+) requests in", out).group(1))
us = int(cpu) / int(hz) * 1e6 / max(total, 1)
print(rnd, server, ep, rps, p50, p99, bad.group(1) if bad else 0, f"{us:.1f}")
PY
  if [ -n "$perf_pid" ]; then
    wait "$perf_pid" || true
    { echo; echo "### $3, $2, round $1: where the server's CPU goes"; echo
      perf script -i "$tmp/perf.data" -F ip,sym 2>/dev/null \
        | python3 "$root/examples/hello/bench/steps.py" "$(tail -1 "$tmp/rows" | cut -d' ' -f8)"
    } >>"$tmp/steps"
  fi
}

echo "## $(nproc) cores; wrk -t$THREADS -c$CONNS -d$DURATION; hello PYM_LOG=${PYM_LOG:-<default>}; servers, worker, redis and wrk share the machine" >&2
: >"$tmp/rows"
for round in $(seq "$ROUNDS"); do
  for server in "${servers[@]}"; do
    start "$server"
    for ep in ${ONLY//,/ }; do
      echo "round $round: $server $ep" >&2
      row "$round" "$server" "$ep"
    done
    kill "${running[@]}" 2>/dev/null || true
    wait "${running[@]}" 2>/dev/null || true
    redis-cli -p "$RPORT" flushall >/dev/null
  done
done

python3 - "$tmp/rows" <<'PY'
import sys
rows = [l.split() for l in open(sys.argv[1])]
control = {(r[0], r[2]): float(r[3]) for r in rows if r[1] == "control"}
print("| endpoint | server | round | req/s | p50 ms | p99 ms | vs control | server CPU µs/req | non-2xx |")
print("|---|---|---|---|---|---|---|---|---|")
for ep in dict.fromkeys(r[2] for r in rows):
    for r in sorted((r for r in rows if r[2] == ep), key=lambda r: (r[1] != "control", r[1], r[0])):
        rnd, server, _, rps, p50, p99, bad, us = r
        ratio = float(rps) / control[(rnd, ep)] if (rnd, ep) in control else 0
        print(f"| {ep} | {server} | {rnd} | {float(rps):,.0f} | {float(p50):.2f} | {float(p99):.2f} | {ratio:.0%} | {us} | {bad} |")
PY
[ ! -f "$tmp/steps" ] || cat "$tmp/steps"
