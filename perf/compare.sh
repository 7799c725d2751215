#!/usr/bin/env bash
# Side-by-side performance: msrpd vs Kamailio's msrp module vs a raw TCP forwarder (the
# ceiling), all on loopback, all driven by msrpd-bench in the same run, interleaved
# A B C A B C for ROUNDS rounds. Writes perf/results/<date>-compare.md (medians with
# min-max, and msrpd/Kamailio ratios).
#
# Usage: perf/compare.sh            (ROUNDS=3 DURATION=5 WARMUP=1 by default)
#        ROUNDS=1 DURATION=2 perf/compare.sh   (quick look)
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
WORKERS=${WORKERS:-2}
BENCH_THREADS=${BENCH_THREADS:-2}
CHUNK=${CHUNK:-8192}   # Kamailio drops frames over ~11 KB: compare with 8 KiB chunks.
SIZES=${SIZES:-"64 1024 16384 1048576"}
LOADS=${LOADS:-"1:1 50:4"}   # pairs:window
OUT=${OUT:-perf/results/$(date +%F)-compare.md}
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT

if ! command -v kamailio >/dev/null; then
  echo "installing kamailio (Debian package, ships msrp.so)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kamailio >/dev/null
fi
cargo build --release --quiet --bin msrpd --bin msrpd-bench
BENCH=target/release/msrpd-bench
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 never opened" >&2; return 1; }

# --- start the three relays -------------------------------------------------------
P_MSRPD=$(free_port); P_KAM=$(free_port); P_FWD=$(free_port); P_TLS=$(free_port); P_ONE=$(free_port)
# A self-signed certificate for the TLS row (msrpd-bench --tls --insecure).
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 \
  -addext subjectAltName=IP:127.0.0.1 -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null
# Unpinned, like Kamailio's processes: msrpd-bench shares these 2 cores, and a worker
# pinned to a core the load generator is using must wait for it (pin on a dedicated host).
target/release/msrpd --listen 127.0.0.1:"$P_MSRPD" --listen-tls 127.0.0.1:"$P_TLS" \
  --cert "$WORK/cert.pem" --key "$WORK/key.pem" --cores "$WORKERS" --no-pin --log-level warn --admin off >"$WORK/msrpd.out" 2>"$WORK/msrpd.err" &
PID_MSRPD=$!
# The same relay with one worker: every delivery stays on one core, so the 1 KiB rows
# show what passing frames between cores costs.
target/release/msrpd --listen 127.0.0.1:"$P_ONE" --cores 1 --no-pin --log-level warn --admin off >"$WORK/msrpd1.out" 2>"$WORK/msrpd1.err" &
PID_ONE=$!
sed -e "s/MSRP_PORT/$P_KAM/g" -e "s/MSRP_CHILDREN/$WORKERS/" perf/kamailio-msrp.cfg >"$WORK/kamailio.cfg"
kamailio -f "$WORK/kamailio.cfg" -DD -E -m 512 -M 64 >"$WORK/kamailio.log" 2>&1 &
PID_KAM=$!
"$BENCH" --forwarder 127.0.0.1:"$P_FWD" --threads "$WORKERS" >"$WORK/fwd.out" 2>&1 &
PID_FWD=$!
wait_port "$P_MSRPD"; wait_port "$P_KAM"; wait_port "$P_FWD"; wait_port "$P_ONE"
sleep 0.5
KAM_PIDS=$( (echo "$PID_KAM"; pgrep -P "$PID_KAM" || true) | paste -sd, -)
echo "msrpd pid $PID_MSRPD port $P_MSRPD | kamailio pids $KAM_PIDS port $P_KAM | forwarder pid $PID_FWD port $P_FWD"

run() { # name port pids extra-args...
  local name=$1 port=$2 pids=$3; shift 3
  local json
  if ! json=$("$BENCH" --relay 127.0.0.1:"$port" --relay-pid "$pids" --threads "$BENCH_THREADS" \
        --duration "$DURATION" --warmup "$WARMUP" --drain 5 --json "$@" 2>/dev/null); then
    echo "  $name: bench reported errors: $(echo "$json" | head -c 300)" >&2
  fi
  echo "$name $* $json" >>"$WORK/results.txt"
  echo "  $name: $(echo "$json" | python3 -c 'import json,sys; d=json.load(sys.stdin); print("%.0f msg/s, delivery p99 %.0f us, relay CPU %s us/msg, errors %d, lost %d" % (d["msgs_per_s"], d["delivery_us"]["p99"], d["relay_cpu_us_per_msg"], d["errors"], d["lost"]))' 2>/dev/null || echo "no result")"
}

for round in $(seq "$ROUNDS"); do
  for size in $SIZES; do
    for load in $LOADS; do
      pairs=${load%%:*}; window=${load##*:}
      echo "round $round size $size pairs $pairs window $window"
      args=(--size "$size" --chunk "$CHUNK" --pairs "$pairs" --window "$window")
      run msrpd "$P_MSRPD" "$PID_MSRPD" "${args[@]}"
      run kamailio "$P_KAM" "$KAM_PIDS" "${args[@]}"
      run forwarder "$P_FWD" "$PID_FWD" --pair-hello "${args[@]}"
      if [ "$size" = 1024 ]; then run msrpd-1w "$P_ONE" "$PID_ONE" "${args[@]}"; fi
    done
  done
  # msrpd over TLS (msrps), same load as the 1 KiB / 50 pairs row: TLS vs TCP.
  echo "round $round msrpd over TLS, 1 KiB, 50 pairs"
  run msrpd-tls "$P_TLS" "$PID_MSRPD" --tls --insecure --size 1024 --chunk "$CHUNK" --pairs 50 --window 4
  # msrpd's large-transfer target: 1 MiB messages in 64 KiB chunks, 10 pairs.
  echo "round $round 1 MiB / 64 KiB chunks / 10 pairs"
  run msrpd "$P_MSRPD" "$PID_MSRPD" --size 1048576 --chunk 65536 --pairs 10 --window 2
  run forwarder "$P_FWD" "$PID_FWD" --pair-hello --size 1048576 --chunk 65536 --pairs 10 --window 2
done

mkdir -p "$(dirname "$OUT")"
python3 perf/summarize.py "$WORK/results.txt" "$ROUNDS" "$DURATION" "$WORKERS" "$BENCH_THREADS" >"$OUT"
cat "$OUT"
echo "written to $OUT"
