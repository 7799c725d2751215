#!/usr/bin/env bash
# SIP over UDP on the MSRP port: OPTIONS and MESSAGE transactions per second and server CPU
# per transaction, sipp (Debian's sip-tester) as the load generator, against
#   msrpd        msrpd --cores WORKERS --no-pin (its SIP UDP socket is the MSRP port number;
#                OPTIONS gets 200, MESSAGE its default --sip-reject 404, through its
#                per-core transaction table),
#   kam-sl       Kamailio, perf/kamailio-sip.cfg, stateless sl_send_reply() (200 / 404),
#   kam-tm       Kamailio, the same config with -A STATEFUL: t_newtran() + t_reply() (tm),
# CHILDREN Kamailio UDP workers, interleaved msrpd kam-sl kam-tm msrpd ... for RUNS rounds
# at each offered rate in RATES, for each method in METHODS. Every run starts its server
# afresh (msrpd keeps a completed non-INVITE UDP transaction for timer J, 64*T1 = 32 s;
# Kamailio's tm keeps it for its wait timer, 5 s: a server reused across runs would start
# with the previous run's table) and sends DURATION*RATE calls.
#
# One call is one transaction: the UAC sends OPTIONS (expects 200) or MESSAGE (expects 404),
# retransmits after 500 ms (T1) as UDP does, and fails on any other answer (a 503 from a
# full table, a wrong code) or no answer within RECV_TIMEOUT ms. sipp is bounded by -m,
# by -timeout (DURATION + 20 s, -timeout_error) and by timeout(1). Its final -trace_stat
# line gives the calls created, successful and failed and the retransmissions; calls
# created but neither successful nor failed when sipp stopped are "lost".
#
# Why these rates: this is a 2-core machine and sipp (one thread, one UDP socket with
# -t u1) shares the cores with the server, so the highest rate found is that of sipp and
# the server together, not of the server alone. RATE (default 5000/s) is a fixed load both
# servers should carry without failures, where CPU per transaction is comparable; RATES
# (e.g. "2000 5000 10000") is the search: the table's last section gives, per server and
# method, the highest rate with zero failed and zero lost calls in every run and a median
# achieved rate within 5 % of the offered one.
#
# How server CPU is counted: utime+stime (clock ticks, /proc/PID/stat fields 14 and 15,
# which cover every thread of a process) of every server process, read once the server
# answers a probe OPTIONS and again after sipp exits; the difference over the successful
# calls is the CPU per transaction. msrpd is one process (its worker threads are in its
# stat); for Kamailio it is the main process and all its children (pgrep -P: UDP workers,
# timers), summed. The window includes the server's idle work during the run (timers),
# which is small against DURATION*RATE transactions; ticks are 1/CLK_TCK s (10 ms), so keep
# DURATION*RATE in the thousands. sipp's own CPU is not counted.
#
# Note: sipp sends from one socket, so SO_REUSEPORT puts all of its datagrams on one msrpd
# worker (the kernel hashes the 4-tuple), while Kamailio's CHILDREN workers read one socket.
#
# Writes medians (runs listed) and msrpd / Kamailio ratios to perf/results/<date>-sip.md.
#
# Usage: perf/sip.sh              RUNS=3 DURATION=10 RATE=5000 perf/sip.sh
#        RATES="2000 5000 10000" perf/sip.sh            (find the highest clean rate)
#        RUNS=1 DURATION=2 RATE=500 BUILD=0 perf/sip.sh  (smoke run, no cargo build)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
DURATION=${DURATION:-10}
RATE=${RATE:-5000}
RATES=${RATES:-$RATE}
METHODS=${METHODS:-"OPTIONS MESSAGE"}
SERVERS=${SERVERS:-"msrpd kam-sl kam-tm"}
WORKERS=${WORKERS:-2}
CHILDREN=${CHILDREN:-2}
RECV_TIMEOUT=${RECV_TIMEOUT:-5000}
BUILD=${BUILD:-1}
OUT=${OUT:-perf/results/$(date +%F)-sip.md}

if ! command -v kamailio >/dev/null; then
  echo "installing kamailio"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kamailio >/dev/null
fi
command -v sipp >/dev/null || { echo "sipp missing: apt-get install sip-tester" >&2; exit 1; }
if [ "$BUILD" = 1 ]; then cargo build --release --quiet --bin msrpd; fi
[ -x target/release/msrpd ] || { echo "target/release/msrpd missing" >&2; exit 1; }

WORK=$(mktemp -d)
SERVER_PID=""
stop_server() {
  [ -n "$SERVER_PID" ] || return 0
  local kids
  kids=$(pgrep -P "$SERVER_PID" || true)
  kill "$SERVER_PID" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
  # shellcheck disable=SC2086 # pid list
  kill -9 "$SERVER_PID" $kids 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=""
}
KEEP=${KEEP:-0}   # KEEP=1: leave the work dir (sipp's stat.csv, sipp.out, errors.log per run)
trap 'stop_server; kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; if [ "$KEEP" = 1 ]; then echo "work dir kept: $WORK" >&2; else rm -rf "$WORK"; fi' EXIT

# A port free for both TCP (msrpd's MSRP listener) and UDP (SIP) on 127.0.0.1.
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
# Sends an OPTIONS over UDP until a response comes (5 s at most); prints its status line.
sip_probe() {
  python3 - "$1" <<'PY'
import socket, sys, time, random
port = int(sys.argv[1])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); s.settimeout(0.2)
lp = s.getsockname()[1]
deadline = time.time() + 5
while time.time() < deadline:
    b = "z9hG4bK%08x" % random.getrandbits(32)
    msg = (f"OPTIONS sip:probe@127.0.0.1:{port} SIP/2.0\r\n"
           f"Via: SIP/2.0/UDP 127.0.0.1:{lp};branch={b};rport\r\nMax-Forwards: 70\r\n"
           f"From: <sip:probe@127.0.0.1>;tag={b}\r\nTo: <sip:probe@127.0.0.1:{port}>\r\n"
           f"Call-ID: {b}@127.0.0.1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")
    s.sendto(msg.encode(), ("127.0.0.1", port))
    try:
        print(s.recv(65535).decode(errors="replace").split("\r\n", 1)[0]); sys.exit(0)
    except socket.timeout:
        pass
print("no answer", file=sys.stderr); sys.exit(1)
PY
}
# utime+stime of the given pids (comma-separated), in microseconds.
cpu_us() {
  python3 - "$1" <<'PY'
import os, sys
hz = os.sysconf("SC_CLK_TCK"); t = 0
for p in sys.argv[1].split(","):
    try:
        f = open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()
        t += int(f[11]) + int(f[12])   # fields 14, 15 (utime, stime); f[0] is field 3
    except (OSError, IndexError):
        pass
print(t * 1_000_000 // hz)
PY
}

# The scenarios: [..] are sipp's keywords.
HEAD='      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
      Max-Forwards: 70
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag[call_number]
      To: <sip:bench@[remote_ip]:[remote_port]>
      Call-ID: [call_id]'
cat >"$WORK/OPTIONS.xml" <<EOF
<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="OPTIONS 200">
  <send retrans="500">
    <![CDATA[
      OPTIONS sip:bench@[remote_ip]:[remote_port] SIP/2.0
$HEAD
      CSeq: 1 OPTIONS
      Contact: <sip:sipp@[local_ip]:[local_port]>
      Accept: application/sdp
      Content-Length: 0

    ]]>
  </send>
  <recv response="200"/>
</scenario>
EOF
cat >"$WORK/MESSAGE.xml" <<EOF
<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="MESSAGE 404">
  <send retrans="500">
    <![CDATA[
      MESSAGE sip:bench@[remote_ip]:[remote_port] SIP/2.0
$HEAD
      CSeq: 1 MESSAGE
      Content-Type: text/plain
      Content-Length: [len]

      hello from sipp, a short instant message of some sixty bytes
    ]]>
  </send>
  <recv response="404"/>
</scenario>
EOF

# One run: $1 server, $2 method, $3 rate, $4 round. Appends
# "server method rate round tps success failed lost retrans created cpu_us_per_txn sipp_rc".
one() {
  local server=$1 method=$2 rate=$3 round=$4 port sport pids c0 c1 rc calls dir
  port=$(free_port)
  dir="$WORK/$server-$method-$rate-$round"
  mkdir -p "$dir/run"
  case $server in
    msrpd)
      target/release/msrpd --listen 127.0.0.1:"$port" --cores "$WORKERS" --no-pin \
        --log-level warn --admin off >"$dir/server.log" 2>&1 &
      ;;
    kam-sl|kam-tm)
      local defs=(-A "SIP_CHILDREN=$CHILDREN")
      [ "$server" = kam-tm ] && defs+=(-A STATEFUL)
      kamailio -f perf/kamailio-sip.cfg -DD -E -Y "$dir/run" -m 512 -M 16 \
        -l udp:127.0.0.1:"$port" "${defs[@]}" >"$dir/server.log" 2>&1 &
      ;;
    *) echo "unknown server $server (msrpd, kam-sl, kam-tm)" >&2; exit 2 ;;
  esac
  SERVER_PID=$!
  if ! sip_probe "$port" >"$dir/probe" 2>&1; then
    echo "$server never answered on udp $port:" >&2; cat "$dir/server.log" >&2; exit 1
  fi
  sleep 0.3
  pids=$( (echo "$SERVER_PID"; pgrep -P "$SERVER_PID" || true) | paste -sd, -)
  sport=$(free_port)
  calls=$((rate * DURATION))
  c0=$(cpu_us "$pids")
  rc=0
  (cd "$dir" && timeout $((DURATION + 40)) sipp 127.0.0.1:"$port" -sf "$WORK/$method.xml" \
    -t u1 -i 127.0.0.1 -p "$sport" -r "$rate" -rp 1000 -m "$calls" \
    -timeout $((DURATION + 20))s -timeout_error -recv_timeout "$RECV_TIMEOUT" \
    -nostdin -trace_stat -stf stat.csv -fd 3600 -trace_err -error_file errors.log \
    >sipp.out 2>&1) || rc=$?
  c1=$(cpu_us "$pids")
  stop_server
  python3 - "$dir/stat.csv" "$server" "$method" "$rate" "$round" "$((c1 - c0))" "$rc" "$calls" <<'PY'
import csv, sys
path, server, method, rate, rnd, cpu, rc, offered = sys.argv[1:]
try:
    rows = [r for r in csv.reader(open(path), delimiter=";") if any(r)]
    d = dict(zip(rows[0], rows[-1]))
    epoch = lambda k: float(d[k].split("\t")[-1])
    elapsed = epoch("CurrentTime") - epoch("StartTime")
    ok, failed = int(d["SuccessfulCall(C)"]), int(d["FailedCall(C)"])
    created, retrans = int(d["TotalCallCreated"]), int(d["Retransmissions(C)"])
except (OSError, IndexError, KeyError, ValueError):
    elapsed, ok, failed, created, retrans = 1.0, 0, 0, 0, 0
lost = max(created - ok - failed, 0)
# sipp never started its calls (bind error...): every offered call is lost.
if created == 0:
    lost = int(offered)
per = int(cpu) / ok if ok else float("nan")
print(server, method, rate, rnd, f"{ok / elapsed:.0f}", ok, failed, lost, retrans, created,
      f"{per:.2f}", rc)
PY
}

raw="$WORK/raw.txt"
for rate in $RATES; do
  for r in $(seq "$RUNS"); do
    for method in $METHODS; do
      for server in $SERVERS; do
        echo "rate $rate round $r of $RUNS: $server $method" >&2
        one "$server" "$method" "$rate" "$r" | tee -a "$raw" >&2
      done
    done
  done
done

mkdir -p "$(dirname "$OUT")"
python3 - "$raw" "$DURATION" "$WORKERS" "$CHILDREN" "$(git rev-parse --short HEAD)" \
  "$(sipp -v 2>&1 | grep -o 'SIPp v[^ ]*' | head -1)" "$(kamailio -v | head -1)" >"$OUT" <<'PY'
import math, statistics, sys
raw, dur, workers, children, rev, sippv, kamv = sys.argv[1:]
runs = {}
for line in open(raw):
    server, method, rate, rnd, tps, ok, failed, lost, retrans, created, cpu, rc = line.split()
    runs.setdefault((int(rate), method, server), []).append(dict(
        tps=float(tps), ok=int(ok), failed=int(failed), lost=int(lost), retrans=int(retrans),
        cpu=float(cpu), rc=int(rc)))
def med(v):
    v = [x for x in v if not math.isnan(x)]
    return statistics.median(v) if v else float("nan")
rates = sorted({k[0] for k in runs})
methods = []
servers = []
for _, m, s in runs:
    if m not in methods: methods.append(m)
    if s not in servers: servers.append(s)
nruns = max(len(v) for v in runs.values())
print("# SIP over UDP: OPTIONS (200) and MESSAGE (404) transactions, msrpd against Kamailio\n")
print(f"commit {rev}; {sippv} (-t u1) on 127.0.0.1; msrpd --cores {workers} --no-pin; "
      f"{kamv}, perf/kamailio-sip.cfg, children={children} (kam-sl: sl_send_reply, kam-tm: "
      f"t_newtran + t_reply); {dur} s per run at each offered rate, {nruns} interleaved runs, "
      "each with a fresh server. CPU: utime+stime of every server process (/proc/PID/stat) "
      "over the run, per successful transaction (us), median with the runs listed. "
      "failed / lost / retrans: sums over the runs.\n")
print("| rate/s | method | server | achieved/s | failed | lost | retrans | CPU us/txn (runs) | msrpd / kam-tm | msrpd / kam-sl |")
print("|---|---|---|---|---|---|---|---|---|---|")
for rate in rates:
    for m in methods:
        for s in servers:
            v = runs.get((rate, m, s))
            if not v:
                continue
            c = med([x["cpu"] for x in v])
            ratio = ["", ""]
            if s == "msrpd":
                for i, o in enumerate(("kam-tm", "kam-sl")):
                    ov = runs.get((rate, m, o))
                    if ov:
                        ratio[i] = f"{c / med([x['cpu'] for x in ov]):.2f}x"
            print(f"| {rate} | {m} | {s} | {med([x['tps'] for x in v]):,.0f} | "
                  f"{sum(x['failed'] for x in v)} | {sum(x['lost'] for x in v)} | "
                  f"{sum(x['retrans'] for x in v)} | {c:.2f} "
                  "(" + ", ".join("%.2f" % x["cpu"] for x in v) + f") | {ratio[0]} | {ratio[1]} |")
print("\nHighest offered rate with no failed or lost call in any run and a median achieved "
      "rate within 5 % of it (of the rates tried):\n")
print("| method | " + " | ".join(servers) + " |")
print("|---|" + "---|" * len(servers))
for m in methods:
    cells = []
    for s in servers:
        best = None
        for rate in rates:
            v = runs.get((rate, m, s))
            if v and all(x["failed"] == 0 and x["lost"] == 0 for x in v) \
                    and med([x["tps"] for x in v]) >= 0.95 * rate:
                best = rate
        cells.append(f"{best}/s" if best else f"none (lowest tried {rates[0]}/s)")
    print(f"| {m} | " + " | ".join(cells) + " |")
bad = [f"{r} {m} {s} run {i + 1}: sipp exit {x['rc']}"
       for (r, m, s), v in runs.items() for i, x in enumerate(v) if x["rc"] not in (0,)]
print("\nsipp exit codes other than 0 (1: some call failed; 99: no call ran; 124: killed "
      "by timeout): " + ("; ".join(bad) if bad else "none"))
PY
cat "$OUT"
