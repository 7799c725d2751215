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
# Set-up budget: msrpd-bench's 30 s default (9,800 pairs take about 6 s here), one second
# per 250 pairs above 10,000. msrpd closes a connection that has made no successful request
# within its probation (RFC 4976 §6.1, 30 s), and the senders make their first one only
# once traffic starts (up to PAIRS/RATE s after the hold): a longer set-up needs a longer
# probation, or the relay closes the pairs it is meant to hold.
SETUP_TIMEOUT=${SETUP_TIMEOUT:-$(( PAIRS > 10000 ? PAIRS / 250 : 30 ))}
if [ "$SETUP_TIMEOUT" -gt 30 ]; then
  PROBATION=${PROBATION:-$(( SETUP_TIMEOUT + PAIRS / ${RATE%.*} + 60 ))}
fi
PROBATION=${PROBATION:-}
# One source address per 25,000 connections (127.0.0.1, 127.0.0.2, ...): one address has
# only about 28,000 ephemeral ports towards the relay's one port.
sources=$(( (2 * PAIRS + 24999) / 25000 ))
local_addrs=$(seq -s, -f '127.0.0.%g' 1 "$sources")
cargo build --release --quiet --bin msrpd --bin msrpd-bench
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
target/release/msrpd --listen 127.0.0.1:"$port" --cores "$WORKERS" --log-level warn \
  --max-connections 1000000 --max-connections-per-ip 1000000 ${PROBATION:+--probation "$PROBATION"} >/dev/null 2>&1 &
relay=$!
trap 'kill $relay 2>/dev/null || true' EXIT
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break; sleep 0.1; done
sleep 0.5
json=$(target/release/msrpd-bench --relay 127.0.0.1:"$port" --relay-pid "$relay" --threads "$WORKERS" \
  --pairs "$PAIRS" --rate "$RATE" --size 1024 --hold 2 --warmup 1 --duration "$DURATION" --drain 10 --local-addrs "$local_addrs" \
  --setup-timeout "$SETUP_TIMEOUT" --json)
mkdir -p "$(dirname "$OUT")"
python3 perf/scale_report.py "$json" "$limit" "$PAIRS" "$RATE" >"$OUT"
cat "$OUT"
