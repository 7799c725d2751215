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
cargo build --release --quiet --bin msrpd --bin msrpd-bench
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
target/release/msrpd --listen 127.0.0.1:"$port" --cores "$WORKERS" --log-level warn \
  --max-connections 1000000 --max-connections-per-ip 1000000 >/dev/null 2>&1 &
relay=$!
trap 'kill $relay 2>/dev/null || true' EXIT
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break; sleep 0.1; done
sleep 0.5
json=$(target/release/msrpd-bench --relay 127.0.0.1:"$port" --relay-pid "$relay" --threads "$WORKERS" \
  --pairs "$PAIRS" --rate "$RATE" --size 1024 --hold 2 --warmup 1 --duration "$DURATION" --drain 10 --json)
mkdir -p "$(dirname "$OUT")"
python3 - "$json" "$limit" "$PAIRS" "$RATE" >"$OUT" <<'PY'
import json, sys
d = json.loads(sys.argv[1]); limit, pairs, rate = sys.argv[2:5]
r = d["relay_rss_kib"]
print(f"# msrpd scale run\n")
print(f"{pairs} pairs ({r['connections']} authenticated connections) on one msrpd with 2 workers, loopback; "
      f"open files limit {limit} per process (it bounds the pair count on this machine).\n")
print("| what | value |\n|---|---|")
print(f"| relay RSS before the pairs connected | {r['before']} KiB |")
print(f"| relay RSS with every connection idle | {r['idle']} KiB |")
print(f"| relay RSS per idle authenticated connection | {r['per_connection']:.2f} KiB |")
print(f"| open-loop traffic over all pairs | {rate} msg/s offered, {d['msgs_per_s']:.0f} msg/s delivered |")
print(f"| delivery latency p50 / p99 / max | {d['delivery_us']['p50']:.0f} / {d['delivery_us']['p99']:.0f} / {d['delivery_us']['max']:.0f} us |")
print(f"| relay CPU per delivered message | {d['relay_cpu_us_per_msg']:.2f} us |")
print(f"| relay RSS at the end | {r['end']} KiB |")
print(f"| errors / lost | {d['errors']} / {d['lost']} |")
PY
cat "$OUT"
