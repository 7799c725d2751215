#!/usr/bin/env bash
# What the control plane costs the data path: one msrpd (WORKERS workers, the admin API on
# a free port) driven by msrpd-bench at PAIRS pairs x window WINDOW of SIZE-byte messages
# (compare.sh's 1 KiB / 50 pairs row), RUNS times without and RUNS times with an admin
# load (a client reading /v1/events and another scraping /metrics every second),
# interleaved. Relay CPU per delivered message and msg/s: medians, and the spread
# (max - min over median) of each side, to perf/results/<date>-admin-load.md.
#
# Usage: perf/admin-load.sh        RUNS=5 DURATION=5 perf/admin-load.sh
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
DURATION=${DURATION:-5}
PAIRS=${PAIRS:-50}
WINDOW=${WINDOW:-4}
SIZE=${SIZE:-1024}
WORKERS=${WORKERS:-2}
OUT=${OUT:-perf/results/$(date +%F)-admin-load.md}
cargo build --release --quiet --bin msrpd --bin msrpd-bench
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return; sleep 0.1; done; }
raw=$(mktemp)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -f "$raw"' EXIT

# One run: $1 off|on. Prints "load cpu_us msg_per_s scrapes errors lost".
one() {
  local load=$1 port admin pid json loaders=() scrapes=0
  port=$(free_port)
  admin=$(free_port)
  target/release/msrpd --listen 127.0.0.1:"$port" --cores "$WORKERS" --no-pin \
    --log-level warn --admin 127.0.0.1:"$admin" >/dev/null 2>&1 &
  pid=$!
  wait_port "$port"
  wait_port "$admin"
  if [ "$load" = on ]; then
    curl -sN "http://127.0.0.1:$admin/v1/events" >/dev/null &
    loaders+=($!)
    (while sleep 1; do curl -sf "http://127.0.0.1:$admin/metrics" >/dev/null && echo x; done) >"$raw.scrapes" &
    loaders+=($!)
  fi
  json=$(target/release/msrpd-bench --relay 127.0.0.1:"$port" --relay-pid "$pid" \
    --threads "$WORKERS" --duration "$DURATION" --warmup 1 --drain 5 --json --size "$SIZE" \
    --chunk 8192 --pairs "$PAIRS" --window "$WINDOW" || true)
  if [ "$load" = on ]; then
    kill "${loaders[@]}" 2>/dev/null || true
    wait "${loaders[@]}" 2>/dev/null || true
    scrapes=$(wc -l <"$raw.scrapes")
  fi
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  python3 -c '
import json, sys
d = json.loads(sys.argv[3])
print(sys.argv[1], d["relay_cpu_us_per_msg"], d["msgs_per_s"], sys.argv[2], d["errors"], d["lost"])
' "$load" "$scrapes" "$json"
}

for r in $(seq "$RUNS"); do
  echo "run $r of $RUNS" >&2
  one off | tee -a "$raw" >&2
  one on | tee -a "$raw" >&2
done

mkdir -p "$(dirname "$OUT")"
python3 - "$raw" "$PAIRS" "$WINDOW" "$SIZE" "$DURATION" "$WORKERS" "$(git rev-parse --short HEAD)" >"$OUT" <<'PY'
import statistics, sys
raw, pairs, window, size, dur, workers, rev = sys.argv[1:]
runs = {"off": [], "on": []}
bad = []
scrapes = []
for line in open(raw):
    load, cpu, mps, n, errors, lost = line.split()
    runs[load].append((float(cpu), float(mps)))
    if load == "on":
        scrapes.append(int(n))
    if int(errors) or int(lost):
        bad.append(f"{load}: {errors} errors, {lost} lost")
def stat(load, i):
    v = [r[i] for r in runs[load]]
    m = statistics.median(v)
    return m, (max(v) - min(v)) / m, v
print(f"# Admin load: msrpd ({workers} workers) with and without an event reader and a 1 s /metrics scrape\n")
print(f"commit {rev}; {pairs} pairs x window {window} of {size}-byte messages, {dur} s per run, "
      f"{len(runs['off'])} interleaved runs each; relay CPU per delivered message (us, schedstat "
      f"of every relay thread, the admin thread included); scrapes per loaded run: {scrapes}.\n")
print("| admin load | CPU us/msg (runs) | median | spread | msg/s median | msg/s spread |")
print("|---|---|---|---|---|---|")
for load in ("off", "on"):
    m, sp, v = stat(load, 0)
    mm, msp, _ = stat(load, 1)
    print(f"| {load} | {', '.join(f'{x:.2f}' for x in v)} | {m:.2f} | {sp*100:.0f} % | {mm:,.0f} | {msp*100:.0f} % |")
on, off = stat("on", 0)[0], stat("off", 0)[0]
print(f"\nwith / without: {on/off:.3f}x CPU per message\n")
print("errors or lost: " + ("; ".join(bad) if bad else "none"))
PY
rm -f "$raw.scrapes"
cat "$OUT"
