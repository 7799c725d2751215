#!/usr/bin/env bash
# Sparse traffic: RATE msg/s of 1 KiB spread over PAIRS idle pairs (the scale.sh pattern:
# 9,800 pairs, 19,600 authenticated connections, 5,000 msg/s), relay CPU per message for
#   msrpd with WORKERS workers, msrpd with 1 worker,
#   the forwarder with both ends of a pair on one thread (--placement same: nothing crosses),
#   the forwarder with the two ends on two threads (--placement cross: every chunk crosses,
#   as in msrpd for the pairs SO_REUSEPORT splits over two cores),
#   the forwarder with every other pair crossing (--placement mixed: SO_REUSEPORT's split on
#   two cores, the like-for-like ceiling for msrpd with two workers),
# interleaved RUNS times; medians, ratios and send-to-200 latency (p50, p99 of the median
# run) to perf/results/<date>-sparse.md.
#
# Usage: perf/sparse.sh            RUNS=3 PAIRS=9800 RATE=5000 DURATION=8 perf/sparse.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
PAIRS=${PAIRS:-9800}
RATE=${RATE:-5000}
DURATION=${DURATION:-8}
RUNS=${RUNS:-3}
WORKERS=${WORKERS:-2}
OUT=${OUT:-perf/results/$(date +%F)-sparse.md}
cargo build --release --quiet --bin msrpd --bin msrpd-bench
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return; sleep 0.1; done; }
raw=$(mktemp)
trap 'rm -f "$raw"' EXIT

# One run: $1 label, $2 workers/threads, $3 msrpd|same|cross|mixed.
# Prints "label cpu_us errors lost msg_per_s p50_us p99_us".
one() {
  local label=$1 n=$2 what=$3 port pid json flags
  port=$(free_port)
  WORKERS=$n
  # shellcheck source=perf/scale_args.sh
  . perf/scale_args.sh
  if [ "$what" = msrpd ]; then
    # shellcheck disable=SC2086 # flag lists
    target/release/msrpd --listen 127.0.0.1:"$port" $RELAY_FLAGS >/dev/null 2>&1 &
    flags=$BENCH_FLAGS
  else
    target/release/msrpd-bench --forwarder 127.0.0.1:"$port" --threads "$n" --placement "$what" >/dev/null 2>&1 &
    flags=${BENCH_FLAGS/--topology full/--pair-hello}
  fi
  pid=$!
  wait_port "$port"
  sleep 0.5
  # shellcheck disable=SC2086
  json=$(target/release/msrpd-bench --relay 127.0.0.1:"$port" --relay-pid "$pid" $flags || true)
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  python3 -c 'import json,sys; d=json.loads(sys.argv[2]); l=d["send_to_200_us"]; print(sys.argv[1], d["relay_cpu_us_per_msg"], d["errors"], d["lost"], d["msgs_per_s"], l["p50"], l["p99"])' "$label" "$json"
}

for r in $(seq "$RUNS"); do
  echo "run $r of $RUNS" >&2
  one "msrpd-${WORKERS}w" "$WORKERS" msrpd | tee -a "$raw" >&2
  one "forwarder-same" "$WORKERS" same | tee -a "$raw" >&2
  one "forwarder-cross" "$WORKERS" cross | tee -a "$raw" >&2
  one "forwarder-mixed" "$WORKERS" mixed | tee -a "$raw" >&2
  one "msrpd-1w" 1 msrpd | tee -a "$raw" >&2
done

mkdir -p "$(dirname "$OUT")"
python3 - "$raw" "$PAIRS" "$RATE" "$DURATION" "$WORKERS" "$(git rev-parse --short HEAD)" >"$OUT" <<'PY'
import statistics, sys
raw, pairs, rate, dur, workers, rev = sys.argv[1:]
runs = {}
lat = {}
bad = []
for line in open(raw):
    label, cpu, errors, lost, mps, p50, p99 = line.split()
    runs.setdefault(label, []).append(float(cpu))
    lat.setdefault(label, []).append((float(cpu), float(p50), float(p99)))
    if int(errors) or int(lost):
        bad.append(f"{label}: {errors} errors, {lost} lost")
med = {k: statistics.median(v) for k, v in runs.items()}
# The latency of the run whose CPU is the median one.
mlat = {k: sorted(v)[len(v) // 2][1:] for k, v in lat.items()}
print(f"# Sparse traffic: {rate} msg/s of 1 KiB over {pairs} pairs ({int(pairs)*2} idle connections)\n")
print(f"commit {rev}, {dur} s per run, {len(next(iter(runs.values())))} interleaved runs; relay CPU per delivered message (us, schedstat of every thread); send-to-200 latency of the median run.\n")
print("| relay | runs (us/msg) | median | / forwarder-same | / forwarder-cross | / forwarder-mixed | p50 us | p99 us |")
print("|---|---|---|---|---|---|---|---|")
for k in runs:
    print(f"| {k} | {', '.join(f'{x:.1f}' for x in runs[k])} | {med[k]:.1f} | {med[k]/med['forwarder-same']:.2f}x | {med[k]/med['forwarder-cross']:.2f}x | {med[k]/med['forwarder-mixed']:.2f}x | {mlat[k][0]:.0f} | {mlat[k][1]:.0f} |")
print()
print("errors or lost: " + ("; ".join(bad) if bad else "none"))
PY
cat "$OUT"
