#!/usr/bin/env bash
# Scale: hold many authenticated pairs on one msrpd (loopback), sample the relay's RSS
# with every connection idle, then push open-loop traffic through all of them.
# Writes perf/results/<date>-scale.md.
#
# Usage: perf/scale.sh                 (PAIRS defaults to what RLIMIT_NOFILE allows, at most 50000)
#        PAIRS=5000 RATE=5000 perf/scale.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
limit=$(ulimit -n)
# Each pair is two connections: two descriptors in the relay and two in the bench.
max_pairs=$(( (limit - 256) / 2 ))
PAIRS=${PAIRS:-$(( max_pairs < 50000 ? max_pairs : 50000 ))}
RATE=${RATE:-5000}
DURATION=${DURATION:-5}
WORKERS=${WORKERS:-2}
OUT=${OUT:-perf/results/$(date +%F)-scale.md}
. perf/scale_args.sh
cargo build --release --quiet --bin msrpd --bin msrpd-bench
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
# shellcheck disable=SC2086 # RELAY_FLAGS and BENCH_FLAGS are lists of arguments
target/release/msrpd --listen 127.0.0.1:"$port" $RELAY_FLAGS >/dev/null 2>&1 &
relay=$!
trap 'kill $relay 2>/dev/null || true' EXIT
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break; sleep 0.1; done
sleep 0.5
# shellcheck disable=SC2086
json=$(target/release/msrpd-bench --relay 127.0.0.1:"$port" --relay-pid "$relay" $BENCH_FLAGS)
mkdir -p "$(dirname "$OUT")"
python3 perf/scale_report.py "$json" "$limit" "$PAIRS" "$RATE" >"$OUT"
cat "$OUT"
