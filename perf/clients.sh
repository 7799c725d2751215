#!/usr/bin/env bash
# How ordinary clients write, and what it costs the relay: msrpd against the raw forwarder
# (the ceiling), both driven by msrpd-bench in each client mode, interleaved
# msrpd forwarder msrpd forwarder ... for RUNS rounds:
#   batched        a chunk's head, body and end-line in one write; a read's 200s in one write
#   split          head, body and end-line in three writes; each 200 in a write of its own
#   nagle          batched, with Nagle's algorithm left on in the clients (no TCP_NODELAY)
#   split-nagle    split with Nagle on: what a naive client does
# PAIRS pairs, WINDOW messages in flight each, SIZE-byte messages. Relay CPU per delivered
# message from schedstat of every relay thread; medians and msrpd/forwarder ratios to
# perf/results/<date>-clients.md.
#
# Usage: perf/clients.sh        RUNS=3 DURATION=4 PAIRS=50 WINDOW=4 SIZE=1024 perf/clients.sh
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
DURATION=${DURATION:-4}
PAIRS=${PAIRS:-50}
WINDOW=${WINDOW:-4}
SIZE=${SIZE:-1024}
WORKERS=${WORKERS:-2}
MODES=${MODES:-"batched split nagle split-nagle"}
OUT=${OUT:-perf/results/$(date +%F)-clients.md}
cargo build --release --quiet --bin msrpd --bin msrpd-bench
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return; sleep 0.1; done; }
raw=$(mktemp)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -f "$raw"' EXIT

mode_flags() {
  case $1 in
    batched) echo "--writes batched" ;;
    split) echo "--writes split" ;;
    nagle) echo "--writes batched --nagle" ;;
    split-nagle) echo "--writes split --nagle" ;;
    *) echo "unknown mode $1 (batched, split, nagle, split-nagle)" >&2; exit 2 ;;
  esac
}

# One run: $1 mode, $2 msrpd|forwarder. Prints "mode relay cpu_us msg_per_s p50 p99 errors lost".
one() {
  local mode=$1 relay=$2 port pid json extra
  port=$(free_port)
  if [ "$relay" = msrpd ]; then
    target/release/msrpd --listen 127.0.0.1:"$port" --cores "$WORKERS" --no-pin \
      --log-level warn --admin off >/dev/null 2>&1 &
    extra=""
  else
    target/release/msrpd-bench --forwarder 127.0.0.1:"$port" --threads "$WORKERS" \
      --placement mixed >/dev/null 2>&1 &
    extra="--no-auth --pair-hello"
  fi
  pid=$!
  wait_port "$port"
  # shellcheck disable=SC2046,SC2086 # flag lists
  json=$(target/release/msrpd-bench --relay 127.0.0.1:"$port" --relay-pid "$pid" \
    --threads "$WORKERS" --duration "$DURATION" --warmup 1 --drain 5 --json --size "$SIZE" \
    --chunk 8192 --pairs "$PAIRS" --window "$WINDOW" $(mode_flags "$mode") $extra || true)
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  python3 -c '
import json, sys
d = json.loads(sys.argv[3]); l = d["send_to_200_us"]
print(sys.argv[1], sys.argv[2], d["relay_cpu_us_per_msg"], d["msgs_per_s"], l["p50"], l["p99"], d["errors"], d["lost"])
' "$mode" "$relay" "$json"
}

for r in $(seq "$RUNS"); do
  for mode in $MODES; do
    echo "run $r of $RUNS: $mode" >&2
    one "$mode" msrpd | tee -a "$raw" >&2
    one "$mode" forwarder | tee -a "$raw" >&2
  done
done

mkdir -p "$(dirname "$OUT")"
python3 - "$raw" "$PAIRS" "$WINDOW" "$SIZE" "$DURATION" "$WORKERS" "$(git rev-parse --short HEAD)" >"$OUT" <<'PY'
import statistics, sys
raw, pairs, window, size, dur, workers, rev = sys.argv[1:]
runs = {}
bad = []
for line in open(raw):
    mode, relay, cpu, mps, p50, p99, errors, lost = line.split()
    runs.setdefault((mode, relay), []).append((float(cpu), float(mps), float(p50), float(p99)))
    if int(errors) or int(lost):
        bad.append(f"{mode} {relay}: {errors} errors, {lost} lost")
def med(k, i):
    return statistics.median(r[i] for r in runs[k])
print(f"# Client write modes: msrpd ({workers} workers) against the raw forwarder (--placement mixed)\n")
print(f"commit {rev}; {pairs} pairs x window {window} of {size}-byte messages, {dur} s per run, "
      f"{len(next(iter(runs.values())))} interleaved runs; relay CPU per delivered message "
      "(us, schedstat of every relay thread), medians.\n")
print("| mode | msrpd us/msg (runs) | forwarder us/msg (runs) | msrpd / forwarder | msrpd msg/s | forwarder msg/s | msrpd p50/p99 us | forwarder p50/p99 us |")
print("|---|---|---|---|---|---|---|---|")
modes = []
for mode, _ in runs:
    if mode not in modes:
        modes.append(mode)
for mode in modes:
    m, f = (mode, "msrpd"), (mode, "forwarder")
    runs_of = lambda k: ", ".join(f"{r[0]:.2f}" for r in runs[k])
    print(f"| {mode} | {med(m,0):.2f} ({runs_of(m)}) | {med(f,0):.2f} ({runs_of(f)}) | "
          f"{med(m,0)/med(f,0):.2f}x | {med(m,1):,.0f} | {med(f,1):,.0f} | "
          f"{med(m,2):.0f} / {med(m,3):.0f} | {med(f,2):.0f} / {med(f,3):.0f} |")
print()
print("errors or lost: " + ("; ".join(bad) if bad else "none"))
PY
cat "$OUT"
