#!/usr/bin/env bash
# Fair sending, measured: how long small messages wait behind a huge chunk on a shared
# connection. Starts one msrpd (2 workers, unpinned) on loopback and runs msrpd-fairness
# against it at each receiver rate in RATES (MB/s; 0 = no cap), RUNS times each,
# interleaved. While each run streams, `ss -tmi` samples the relay's socket towards the
# receiver (Send-Q, skmem tb = its SO_SNDBUF) and the receiver's (Recv-Q, rb). Writes the
# medians over the runs to OUT, with the raw JSON lines.
#
# Usage: perf/fairness.sh                   (RUNS=3 RATES="20 100 0" BIG_MIB=256)
#        RUNS=1 RATES=100 perf/fairness.sh  (quick look)
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-3}
RATES=${RATES:-"20 100 0"}
BIG_MIB=${BIG_MIB:-256}
INTERVAL=${INTERVAL:-10}
DURATION=${DURATION:-60}
OUT=${OUT:-perf/results/2026-12-06-fairness.md}
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT

cargo build --release --quiet --bin msrpd --bin msrpd-fairness
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 never opened" >&2; return 1; }

PORT=$(free_port)
target/release/msrpd --listen 127.0.0.1:"$PORT" --cores 2 --no-pin --admin off --log-level "${LOG_LEVEL:-warn}" \
  >"$WORK/msrpd.out" 2>"$WORK/msrpd.err" &
PID=$!
wait_port "$PORT"
sleep 0.3
echo "msrpd pid $PID on 127.0.0.1:$PORT; code $(git rev-parse --short HEAD)"

failed=0
for run in $(seq "$RUNS"); do
  for rate in $RATES; do
    args=(--relay 127.0.0.1:"$PORT" --big-mib "$BIG_MIB" --interval-ms "$INTERVAL" --duration "$DURATION" --json)
    [ "$rate" != 0 ] && args+=(--rate-mbps "$rate")
    target/release/msrpd-fairness "${args[@]}" >"$WORK/run.json" 2>"$WORK/run.err" &
    bench=$!
    : >"$WORK/ss.txt"
    while kill -0 "$bench" 2>/dev/null; do
      ss -tmi state established "( sport = :$PORT or dport = :$PORT )" >>"$WORK/ss.txt" 2>/dev/null || true
      sleep 0.1
    done
    if ! wait "$bench"; then
      failed=1
      echo "  rate $rate run $run: FAILED: $(head -c 600 "$WORK/run.err") $(head -c 600 "$WORK/run.json")" >&2
      cat "$WORK/run.err" "$WORK/msrpd.err" >>"$OUT.failures.log" 2>/dev/null || true
    fi
    # The socket pair relay -> B is the one with the deepest queues.
    ssj=$(python3 - "$PORT" "$WORK/ss.txt" <<'PY'
import json, re, sys
port, path = sys.argv[1], sys.argv[2]
lines = open(path).read().splitlines()
best = {"relay_send_q": 0, "relay_sndbuf": 0, "relay_recv_q_from_b": 0, "b_recv_q": 0, "b_rcvbuf": 0}
for i, l in enumerate(lines):
    f = l.split()
    if len(f) < 4 or not f[0].isdigit():
        continue
    recvq, sendq, local, peer = int(f[0]), int(f[1]), f[2], f[3]
    info = lines[i + 1] if i + 1 < len(lines) else ""
    m = re.search(r"skmem:\(r\d+,rb(\d+),t\d+,tb(\d+)", info)
    rb, tb = (int(m.group(1)), int(m.group(2))) if m else (0, 0)
    if local.endswith(":" + port):
        best["relay_send_q"] = max(best["relay_send_q"], sendq)
        if sendq > 0:
            best["relay_sndbuf"] = max(best["relay_sndbuf"], tb)
        if sendq > 65536:  # the relay's socket to B (the one the big message fills)
            best["relay_recv_q_from_b"] = max(best["relay_recv_q_from_b"], recvq)
    elif peer.endswith(":" + port):
        best["b_recv_q"] = max(best["b_recv_q"], recvq)
        if recvq > 0:
            best["b_rcvbuf"] = max(best["b_rcvbuf"], rb)
print(json.dumps(best))
PY
)
    echo "$rate $run $ssj $(cat "$WORK/run.json")" >>"$WORK/results.txt"
    python3 - "$rate" "$run" "$WORK/run.json" <<'PY' || true
import json, sys
d = json.load(open(sys.argv[3]))
print("  rate %s run %s: %.0f MB/s, %d pieces; C->B wait p50 %.1f ms p99 %.1f ms; B 200 p50 %.1f ms; ahead p50 %.0f KiB, expected %.1f ms; ok %s"
      % (sys.argv[1], sys.argv[2], d["big_mbps"], d["big_pieces"], d["c_to_b"]["wait_ms"]["p50"],
         d["c_to_b"]["wait_ms"]["p99"], d["b_own_200"]["wait_ms"]["p50"],
         d["kernel_ahead_bytes"]["p50"] / 1024, d["expected_wait_ms"], d["ok"]))
PY
  done
done

python3 - "$WORK/results.txt" "$OUT" "$RUNS" "$BIG_MIB" "$INTERVAL" "$(git rev-parse --short HEAD)" <<'PY'
import json, statistics, sys
path, out, runs, big, interval, code = sys.argv[1:]
rows = {}
for line in open(path):
    rate, run, rest = line.split(" ", 2)
    dec = json.JSONDecoder()
    ss, i = dec.raw_decode(rest)
    try:
        d = json.loads(rest[i:].strip())
    except ValueError:
        d = None
    rows.setdefault(rate, []).append((ss, d, line.strip()))
med = lambda xs: statistics.median(xs) if xs else float("nan")
o = open(out, "w")
o.write("# Fair sending: small messages behind a %s MiB chunk (`perf/fairness.sh`)\n\n" % big)
o.write("Code %s. One msrpd (`--cores 2 --no-pin`), msrpd-fairness on the same 2-core shared VM. "
        "C sends B 1 KiB every %s ms and B sends A 1 KiB every %s ms while A's single-chunk SEND "
        "streams to B, which reads at the given rate. Medians of %s runs (each value is the median "
        "over the runs that passed of that run's statistic; failed runs are in the raw lines below).\n\n" % (code, interval, interval, runs))
o.write("| B reads at | MB/s | pieces | C->B wait p50 / p99 / max ms | big KiB ahead of C p50 | B's 200 wait p50 / p99 / max ms | big KiB ahead of 200 p50 | kernel KiB relay->B p50 | expected ms | B's bytes unread by the relay p50 / max KiB | runs ok |\n")
o.write("|---|---|---|---|---|---|---|---|---|---|---|\n")
for rate in rows:
    # Medians over the runs that passed; a failed run is counted in the last column.
    ds = [d for _, d, _ in rows[rate] if d and d.get("ok")]
    ok = len(ds)
    g = lambda f: med([f(d) for d in ds])
    o.write("| %s | %.0f | %.0f | %.1f / %.1f / %.1f | %.0f | %.1f / %.1f / %.1f | %.0f | %.0f | %.1f | %.0f / %.0f | %d/%d |\n" % (
        ("%s MB/s" % rate) if rate != "0" else "no cap",
        g(lambda d: d["big_mbps"]), g(lambda d: d["big_pieces"]),
        g(lambda d: d["c_to_b"]["wait_ms"]["p50"]), g(lambda d: d["c_to_b"]["wait_ms"]["p99"]), g(lambda d: d["c_to_b"]["wait_ms"]["max"]),
        g(lambda d: d["c_to_b"]["big_bytes_between"]["p50"]) / 1024,
        g(lambda d: d["b_own_200"]["wait_ms"]["p50"]), g(lambda d: d["b_own_200"]["wait_ms"]["p99"]), g(lambda d: d["b_own_200"]["wait_ms"]["max"]),
        g(lambda d: d["b_own_200"]["big_bytes_between"]["p50"]) / 1024,
        g(lambda d: d["kernel_ahead_bytes"]["p50"]) / 1024,
        g(lambda d: d["expected_wait_ms"]),
        g(lambda d: d["relay_unread_from_b_bytes"]["p50"]) / 1024, g(lambda d: d["relay_unread_from_b_bytes"]["max"]) / 1024,
        ok, len(rows[rate])))
o.write("\nSocket buffers seen by `ss -tmi` (largest over each run's 100 ms samples, median over runs):\n\n")
o.write("| B reads at | relay Send-Q to B KiB | relay SO_SNDBUF (tb) KiB | B Recv-Q KiB | B SO_RCVBUF (rb) KiB | relay Recv-Q from B KiB (B's bytes not read yet) |\n|---|---|---|---|---|---|\n")
for rate in rows:
    ss = [s for s, _, _ in rows[rate]]
    g = lambda k: med([s[k] for s in ss]) / 1024
    o.write("| %s | %.0f | %.0f | %.0f | %.0f | %.0f |\n" % (("%s MB/s" % rate) if rate != "0" else "no cap",
            g("relay_send_q"), g("relay_sndbuf"), g("b_recv_q"), g("b_rcvbuf"), g("relay_recv_q_from_b")))
any_d = next((d for r in rows.values() for _, d, _ in r if d), None)
if any_d:
    o.write("\ntcp_wmem `%s`, tcp_rmem `%s`. URGENT_SHARE 16 KiB, FAIR_SHARE 64 KiB (src/conn/queue.rs).\n" % (any_d["tcp_wmem"], any_d["tcp_rmem"]))
o.write("\nEach run (waits in ms; big MiB = big-message bytes B received between a small message's write and its receipt):\n\n")
o.write("| B reads at | run | pieces | C wait p50 / p99 / max | C big MiB p99 | 200 wait p50 / p99 / max | 200 big MiB p99 | B's bytes unread by the relay max KiB | ok |\n|---|---|---|---|---|---|---|---|---|\n")
for rate in rows:
    for i, (_, d, _) in enumerate(rows[rate], 1):
        if not d:
            o.write("| %s | %d | no result |||||||\n" % (rate, i))
            continue
        c, b = d["c_to_b"], d["b_own_200"]
        o.write("| %s | %d | %d | %.1f / %.1f / %.1f | %.1f | %.1f / %.1f / %.1f | %.1f | %.0f | %s |\n" % (
            ("%s MB/s" % rate) if rate != "0" else "no cap", i, d["big_pieces"],
            c["wait_ms"]["p50"], c["wait_ms"]["p99"], c["wait_ms"]["max"], c["big_bytes_between"]["p99"] / 2**20,
            b["wait_ms"]["p50"], b["wait_ms"]["p99"], b["wait_ms"]["max"], b["big_bytes_between"]["p99"] / 2**20,
            d["relay_unread_from_b_bytes"]["max"] / 1024,
            "yes" if d["ok"] else "**no**: " + "; ".join(d["errors"])[:160]))
o.write("\nRaw: `rate run ss-json msrpd-fairness-json` per line.\n\n```\n")
for rate in rows:
    for _, _, line in rows[rate]:
        o.write(line + "\n")
o.write("```\n")
o.close()
print("wrote", out)
PY
exit $failed
