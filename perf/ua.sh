#!/usr/bin/env bash
# The MSRP user agent under load (issue 16), each run with fresh msrpd processes, RUNS runs:
#
# 1. CPU per message, user agent against relay, same binary, same load shape, in the same
#    run: SESSIONS sessions (--ua: INVITE over UDP, ACK, TCP to msrpd's a=path, bound with
#    an empty SEND) against SESSIONS relay pairs (--topology one: the receiver AUTHs, the
#    sender sends through it), 1 KiB text messages in one chunk each, first open loop at
#    RATE msg/s in total, then closed loop with WINDOW messages in flight per session or
#    pair. msrpd's CPU (schedstat of all its threads, as msrpd-bench --relay-pid reads it)
#    over DURATION s, per message answered 200 by msrpd (user agent) or delivered to the
#    receiver (relay). A relayed message is two frames in and two out for msrpd (the SEND
#    and its 200 through the relay); a received one is one in, one out plus reassembly and
#    the ua.message.received event (built and dropped: --admin off, nobody subscribed).
# 2. Memory per idle session: IDLE sessions set up (SETUP_CONCURRENCY at once per bench
#    thread) and held idle 2 s; msrpd's VmRSS then, minus before the first INVITE, over
#    IDLE. The same run gives the set-up rate (INVITE to the bind's 200, every session over
#    the set-up phase's wall time) and its latency, then sends SPARSE_RATE msg/s spread
#    over all IDLE sessions for DURATION s (CPU per message at that scale). The same for
#    the relay with IDLE/2 pairs (--topology full: IDLE authenticated connections, as
#    perf/scale.sh holds them), and for the user agent with SMALL sessions, at the same
#    rate (how CPU per message moves with the number of sessions).
# 3. SIP set-ups with sipp (which cannot speak MSRP): INVITE with an MSRP offer, 200 with
#    msrpd's answer, ACK, BYE, 200 over UDP (-t un: one socket per call, so calls spread
#    over msrpd's cores like the bench's), at each rate in SIPP_RATES for SIPP_DURATION s;
#    calls/s achieved, failed calls, msrpd CPU (utime+stime, /proc/PID/stat) per call.
#    A sipp call is set-up plus teardown without the MSRP connection; the bench's set-up
#    rate in (2) is the INVITE-to-bound figure. In the first run only, also each rate in
#    SIPP_LONG_RATES for SIPP_LONG_DURATION s: longer than the 64*T1 = 32 s an INVITE
#    server transaction stays Accepted after its 2xx (RFC 6026), so what the per-core
#    SIP transaction table holds (65,536 transactions, 32 MiB) caps the sustained rate.
#
# msrpd: --cores WORKERS --no-pin (msrpd-bench and sipp share the same cores), --admin
# off, --ua-answer '^sip:bench@'. msrpd-bench: --threads WORKERS.
#
# Usage: perf/ua.sh                RUNS=3 perf/ua.sh
#        RUNS=1 DURATION=2 IDLE=1000 SIPP_RATES=500 BUILD=0 perf/ua.sh   (smoke run)
# Writes medians (runs listed) to perf/results/<date>-ua.md (OUT=FILE for another).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
DURATION=${DURATION:-5}
WORKERS=${WORKERS:-2}
SESSIONS=${SESSIONS:-50}
RATE=${RATE:-10000}
WINDOW=${WINDOW:-4}
IDLE=${IDLE:-10000}
SETUP_CONCURRENCY=${SETUP_CONCURRENCY:-64}
SPARSE_RATE=${SPARSE_RATE:-2000}
SMALL=${SMALL:-1000}
SIPP_RATES=${SIPP_RATES:-"1000 2000"}
SIPP_DURATION=${SIPP_DURATION:-5}
SIPP_LONG_RATES=${SIPP_LONG_RATES:-"1000 2000"}
SIPP_LONG_DURATION=${SIPP_LONG_DURATION:-40}
BUILD=${BUILD:-1}
OUT=${OUT:-perf/results/$(date +%F)-ua.md}
T=${CARGO_TARGET_DIR:-target}
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
command -v sipp >/dev/null || { echo "sipp missing: apt-get install sip-tester" >&2; exit 1; }
if [ "$BUILD" = 1 ]; then cargo build --release --quiet --bin msrpd --bin msrpd-bench; fi
MSRPD=$T/release/msrpd
BENCH=$T/release/msrpd-bench
[ -x "$MSRPD" ] && [ -x "$BENCH" ] || { echo "$MSRPD or $BENCH missing" >&2; exit 1; }

WORK=$(mktemp -d)
PID=""
stop_msrpd() {
  [ -n "$PID" ] || return 0
  kill "$PID" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$PID" 2>/dev/null || true
  wait "$PID" 2>/dev/null || true
  PID=""
}
trap 'stop_msrpd; rm -rf "$WORK"' EXIT

# A port free for both TCP (MSRP) and UDP (SIP) on 127.0.0.1.
free_port() {
  python3 -c '
import socket
for _ in range(100):
    t = socket.socket(); t.bind(("127.0.0.1", 0)); p = t.getsockname()[1]
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        u.bind(("127.0.0.1", p))
    except OSError:
        continue
    print(p); break
'
}
wait_port() { for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 never opened" >&2; return 1; }
# utime+stime of process $1, in microseconds (fields 14 and 15 of /proc/PID/stat).
cpu_us() {
  python3 - "$1" <<'PY'
import os, sys
f = open(f"/proc/{sys.argv[1]}/stat").read().rsplit(")", 1)[1].split()
print((int(f[11]) + int(f[12])) * 1_000_000 // os.sysconf("SC_CLK_TCK"))
PY
}
start_msrpd() { # $1 port, $2 log
  "$MSRPD" --listen 127.0.0.1:"$1" --cores "$WORKERS" --no-pin --log-level warn --admin off \
    --ua-answer '^sip:bench@' --max-connections 1000000 --max-connections-per-ip 1000000 \
    --expires-default 3600 >"$2" 2>&1 &
  PID=$!
  wait_port "$1"
  sleep 0.3
}

# One msrpd-bench run on a fresh msrpd: $1 label, then msrpd-bench's flags. Appends
# "label json" to $raw.
bench() {
  local label=$1 port json rc=0; shift
  port=$(free_port)
  start_msrpd "$port" "$WORK/$label.log"
  json=$("$BENCH" --relay 127.0.0.1:"$port" --relay-pid "$PID" --threads "$WORKERS" \
    --size 1024 --warmup 1 --duration "$DURATION" --drain 5 --json "$@" 2>"$WORK/$label.err") || rc=$?
  stop_msrpd
  [ -n "$json" ] || json='{}'
  echo "$label $rc $json" >>"$raw"
  python3 -c 'import json,sys; d=json.loads(sys.argv[2]); print("  %s: %.0f msg/s, msrpd CPU %s us/msg, setups/s %s, RSS/conn %s KiB, errors %s, lost %s" % (sys.argv[1], d.get("msgs_per_s", 0), d.get("relay_cpu_us_per_msg"), d.get("setups_per_s"), (d.get("relay_rss_kib") or {}).get("per_connection"), d.get("errors"), d.get("lost")))' "$label" "$json" >&2 || true
  if [ "$rc" != 0 ]; then echo "  $label: msrpd-bench exit $rc: $(head -c 400 "$WORK/$label.err")" >&2; fi
}

# sipp's UAC: INVITE offering MSRP, 200 (msrpd's answer), ACK, BYE, 200.
cat >"$WORK/invite.xml" <<'EOF'
<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="MSRP INVITE ACK BYE">
  <send retrans="500">
    <![CDATA[
      INVITE sip:bench@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
      Max-Forwards: 70
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag[call_number]
      To: <sip:bench@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:sipp@[local_ip]:[local_port]>
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=sipp 1 1 IN IP4 [local_ip]
      s=-
      c=IN IP4 [local_ip]
      t=0 0
      m=message [local_port] TCP/MSRP *
      a=accept-types:text/plain
      a=path:msrp://[local_ip]:[local_port]/s[call_number];tcp

    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="200" rtd="true"/>
  <send>
    <![CDATA[
      ACK sip:msrpd@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
      Max-Forwards: 70
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag[call_number]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Content-Length: 0

    ]]>
  </send>
  <send retrans="500">
    <![CDATA[
      BYE sip:msrpd@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
      Max-Forwards: 70
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag[call_number]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 2 BYE
      Content-Length: 0

    ]]>
  </send>
  <recv response="200" crlf="true"/>
  <ResponseTimeRepartition value="1, 2, 5, 10, 20, 50, 100, 200, 500"/>
</scenario>
EOF

# One sipp run on a fresh msrpd: $1 rate, $2 seconds, $3 label. Appends
# "LABEL-RATE rc json" to $raw.
sipp_run() {
  local rate=$1 secs=$2 label=$3 port c0 c1 rc=0 dir calls
  port=$(free_port)
  dir="$WORK/$label-$rate-$RANDOM"
  mkdir -p "$dir"
  start_msrpd "$port" "$dir/msrpd.log"
  calls=$((rate * secs))
  c0=$(cpu_us "$PID")
  (cd "$dir" && timeout $((secs + 40)) sipp 127.0.0.1:"$port" -sf "$WORK/invite.xml" \
    -t un -i 127.0.0.1 -r "$rate" -rp 1000 -m "$calls" -max_socket 15000 \
    -timeout $((secs + 20))s -timeout_error -recv_timeout 5000 \
    -nostdin -trace_stat -stf stat.csv -fd 3600 \
    >sipp.out 2>&1) || rc=$?
  c1=$(cpu_us "$PID")
  stop_msrpd
  python3 - "$dir/stat.csv" "$rate" "$((c1 - c0))" "$rc" "$calls" "$label" >>"$raw" <<'PY'
import csv, json, sys
path, rate, cpu, rc, offered, label = sys.argv[1:]
try:
    rows = [r for r in csv.reader(open(path), delimiter=";") if any(r)]
    d = dict(zip(rows[0], rows[-1]))
    epoch = lambda k: float(d[k].split("\t")[-1])
    elapsed = epoch("CurrentTime") - epoch("StartTime")
    ok, failed = int(d["SuccessfulCall(C)"]), int(d["FailedCall(C)"])
    created, retrans = int(d["TotalCallCreated"]), int(d["Retransmissions(C)"])
except (OSError, IndexError, KeyError, ValueError):
    elapsed, ok, failed, created, retrans = 1.0, 0, 0, 0, 0
lost = max(created - ok - failed, 0) if created else int(offered)
print(f"{label}-{rate}", rc, json.dumps({"calls_per_s": ok / elapsed, "ok": ok, "failed": failed,
      "lost": lost, "retrans": retrans, "cpu_us_per_call": int(cpu) / ok if ok else None}))
PY
  tail -n1 "$raw" | sed 's/^/  /' >&2
}

raw="$WORK/raw.txt"
for r in $(seq "$RUNS"); do
  echo "run $r of $RUNS" >&2
  bench relay-open --pairs "$SESSIONS" --rate "$RATE"
  bench ua-open --ua --pairs "$SESSIONS" --rate "$RATE"
  bench relay-closed --pairs "$SESSIONS" --window "$WINDOW"
  bench ua-closed --ua --pairs "$SESSIONS" --window "$WINDOW"
  bench ua-idle --ua --pairs "$IDLE" --rate "$SPARSE_RATE" --hold 2 \
    --setup-concurrency "$SETUP_CONCURRENCY" --setup-timeout 90
  bench relay-idle --pairs $((IDLE / 2)) --topology full --rate "$SPARSE_RATE" --hold 2 \
    --setup-concurrency "$SETUP_CONCURRENCY" --setup-timeout 90
  bench ua-small --ua --pairs "$SMALL" --rate "$SPARSE_RATE" --hold 2 \
    --setup-concurrency "$SETUP_CONCURRENCY"
  for rate in $SIPP_RATES; do sipp_run "$rate" "$SIPP_DURATION" sipp; done
  if [ "$r" = 1 ]; then
    for rate in $SIPP_LONG_RATES; do sipp_run "$rate" "$SIPP_LONG_DURATION" sipplong; done
  fi
done

mkdir -p "$(dirname "$OUT")"
python3 perf/ua_report.py "$raw" "$(git rev-parse --short HEAD)" "$RUNS" "$DURATION" "$WORKERS" \
  "$SESSIONS" "$RATE" "$WINDOW" "$IDLE" "$SETUP_CONCURRENCY" "$SPARSE_RATE" "$SIPP_DURATION" "$SMALL" "$SIPP_LONG_DURATION" \
  "$(sipp -v 2>&1 | grep -o 'SIPp v[^ ]*' | head -1)" >"$OUT"
cat "$OUT"
