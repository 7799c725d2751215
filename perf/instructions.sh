#!/usr/bin/env bash
# Instructions the relay executes per delivered message, under callgrind: unlike wall-clock
# rates these do not move with the load on a shared machine, so they show what a change to
# the per-message path is worth. One msrpd worker, 1 KiB messages, open loop at a low rate
# (callgrind runs the relay about 50 times slower), counted after a warm-up so that start-up
# and AUTH are left out. Prints the total per message and the heaviest functions
# (inclusive) per message.
#
# Usage: perf/instructions.sh              (RATE=2000 DURATION=5 SIZE=1024 PAIRS=10)
#        CG_OUT=/tmp/cg.out perf/instructions.sh   (keeps the callgrind profile for
#        `callgrind_annotate --auto=yes /tmp/cg.out` line by line)
#        MSRPD=/tmp/msrpd-old perf/instructions.sh   (another msrpd binary, for A/B)
#        WORKERS=2 ADMIN_LOAD=1 perf/instructions.sh (two workers; the admin API on, an
#        event reader and a 1 s /metrics scrape running)
set -euo pipefail
cd "$(dirname "$0")/.."

RATE=${RATE:-2000}
DURATION=${DURATION:-5}
SIZE=${SIZE:-1024}
PAIRS=${PAIRS:-10}
TOP=${TOP:-15}
WORKERS=${WORKERS:-1}

if ! command -v valgrind >/dev/null; then
  echo "installing valgrind (Debian package)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >/dev/null
fi
cargo build --release --quiet --bin msrpd --bin msrpd-bench
MSRPD=${MSRPD:-target/release/msrpd}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# No admin API (it would race other relays for 127.0.0.1:8665); a binary from before
# the API has no --admin flag. ADMIN_LOAD=1: the API on a free port, with a client
# reading /v1/events and another scraping /metrics every second while it counts.
admin=(); "$MSRPD" --help | grep -q -- '--admin ' && admin=(--admin off)
if [ "${ADMIN_LOAD:-0}" = 1 ]; then
  admin_port=$(free_port)
  admin=(--admin 127.0.0.1:"$admin_port")
fi
WORK=$(mktemp -d)
port=$(free_port)
valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$WORK/cg.out" \
  "$MSRPD" --listen 127.0.0.1:"$port" --cores "$WORKERS" --no-pin --log-level warn "${admin[@]}" \
  >"$WORK/relay.log" 2>&1 &
vg=$!
trap 'kill $(jobs -p) 2>/dev/null || true; kill -9 $vg 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT
for _ in $(seq 300); do (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break; sleep 0.1; done
if [ "${ADMIN_LOAD:-0}" = 1 ]; then
  for _ in $(seq 300); do (exec 3<>/dev/tcp/127.0.0.1/"$admin_port") 2>/dev/null && break; sleep 0.1; done
  curl -sN "http://127.0.0.1:$admin_port/v1/events" >/dev/null &
  (while sleep 1; do curl -s "http://127.0.0.1:$admin_port/metrics" >/dev/null; done) &
fi

bench() {
  target/release/msrpd-bench --relay 127.0.0.1:"$port" --threads 1 --warmup 0 --json \
    --size "$SIZE" --pairs "$PAIRS" "$@"
}
bench --duration 1 --rate $((RATE / 2)) >/dev/null   # warm-up, not counted
callgrind_control -i on "$vg" >/dev/null 2>&1
delivered=$(bench --duration "$DURATION" --rate "$RATE" |
  python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["errors"]+d["lost"]==0, d; print(d["delivered"])')
callgrind_control -d "$vg" >/dev/null 2>&1
sleep 1
out=$(ls -t "$WORK"/cg.out.* | head -1)
total=$(callgrind_annotate "$out" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",","",$1); print $1}')
if [ -n "${CG_OUT:-}" ]; then cp "$out" "$CG_OUT"; fi
echo "messages delivered: $delivered"
echo "instructions per delivered message: $((total / delivered))"
echo "heaviest msrpd functions, inclusive, instructions per message:"
callgrind_annotate --inclusive=yes "$out" 2>/dev/null |
  grep -E '^ *[0-9,]+ +\([ 0-9.]+%\) +/[^ ]*/src/(codec|conn|relay|server)/[a-z_/]+\.rs:msrpd::' |
  awk -v n="$delivered" -v top="$TOP" 'NR <= top { v = $1; gsub(",", "", v); sub(/^.*:msrpd::/, "msrpd::", $NF); printf "%8d  %s\n", v / n, $NF }'
