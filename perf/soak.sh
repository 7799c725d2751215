#!/usr/bin/env bash
# Soak: SOAK_SECS (default 600) of mixed traffic through one msrpd on loopback, relay RSS
# sampled every 10 s. Mixed: chat (many pairs, small messages, open loop), 10 MiB
# transfers (64 KiB chunks), and clients connecting and disconnecting (short bench runs
# back to back). Fails if any bench reports errors or loss, or RSS keeps growing.
# Writes perf/results/<date>-soak.md with the RSS curve as a table.
set -euo pipefail
cd "$(dirname "$0")/.."
SOAK_SECS=${SOAK_SECS:-600}
OUT=${OUT:-perf/results/$(date +%F)-soak.md}
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT
cargo build --release --quiet --bin msrpd --bin msrpd-bench
BENCH=target/release/msrpd-bench
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
target/release/msrpd --listen 127.0.0.1:"$port" --cores 2 --no-pin --log-level warn --admin off --max-connections-per-ip 100000 \
  --expires-max "$((SOAK_SECS + 600))" >"$WORK/msrpd.log" 2>&1 &
relay=$!
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break; sleep 0.1; done
# msrpd-bench does not refresh its sessions: ask for ones that outlive the run.
common=(--relay 127.0.0.1:"$port" --threads 1 --warmup 0 --drain 10 --json --expires "$((SOAK_SECS + 300))")

"$BENCH" "${common[@]}" --pairs 200 --size 200 --rate 2000 --duration "$SOAK_SECS" >"$WORK/chat.json" 2>&1 &
chat=$!
"$BENCH" "${common[@]}" --pairs 2 --size 10485760 --chunk 65536 --window 1 --duration "$SOAK_SECS" >"$WORK/files.json" 2>&1 &
files=$!
(
  end=$((SECONDS + SOAK_SECS))
  n=0
  while [ $SECONDS -lt $end ]; do
    "$BENCH" "${common[@]}" --pairs 20 --size 1024 --window 2 --duration 2 >"$WORK/churn-$n.json" 2>&1 || echo "churn run $n failed" >>"$WORK/churn-failures"
    n=$((n + 1))
  done
  echo "$n" >"$WORK/churn-runs"
) &
churn=$!

echo "seconds,rss_kib" >"$WORK/rss.csv"
start=$SECONDS
while kill -0 $chat 2>/dev/null || kill -0 $files 2>/dev/null; do
  rss=$(awk '/^VmRSS:/ {print $2}' /proc/$relay/status)
  echo "$((SECONDS - start)),$rss" >>"$WORK/rss.csv"
  sleep 10
done
wait $chat || true; wait $files || true; wait $churn || true
rss=$(awk '/^VmRSS:/ {print $2}' /proc/$relay/status); echo "$((SECONDS - start)),$rss" >>"$WORK/rss.csv"

mkdir -p "$(dirname "$OUT")"
python3 - "$WORK" "$SOAK_SECS" >"$OUT" <<'PY'
import glob, json, os, sys
work, secs = sys.argv[1], sys.argv[2]
def load(p):
    try:
        return json.loads(open(p).read().strip().splitlines()[-1])
    except Exception as e:
        return {"errors": 1, "lost": 0, "delivered": 0, "error_samples": [f"no result: {e}"]}
chat, files = load(f"{work}/chat.json"), load(f"{work}/files.json")
churn = [load(p) for p in sorted(glob.glob(f"{work}/churn-*.json"))]
rows = [l.strip().split(",") for l in open(f"{work}/rss.csv")][1:]
print(f"# msrpd soak ({secs} s of mixed traffic, 2 workers, loopback)\n")
print("| traffic | delivered | errors | lost |\n|---|---|---|---|")
print(f"| chat: 200 pairs, 200 B, 2000 msg/s open loop | {chat['delivered']} | {chat['errors']} | {chat['lost']} |")
print(f"| files: 2 pairs, 10 MiB in 64 KiB chunks | {files['delivered']} | {files['errors']} | {files['lost']} |")
print(f"| churn: {len(churn)} runs of 20 pairs connecting, 2 s, disconnecting | {sum(c['delivered'] for c in churn)} | {sum(c['errors'] for c in churn)} | {sum(c['lost'] for c in churn)} |")
for name, d in [("chat", chat), ("files", files)] + [(f"churn {i}", c) for i, c in enumerate(churn)]:
    for e in d.get("error_samples", [])[:5]:
        print(f"- {name}: {e}")
print("\nRelay RSS every 10 s (KiB):\n")
print("| s | RSS KiB |\n|---|---|")
for s, r in rows:
    print(f"| {s} | {r} |")
errors = chat["errors"] + chat["lost"] + files["errors"] + files["lost"] + sum(c["errors"] + c["lost"] for c in churn)
rss = [int(r) for _, r in rows if r]
half = rss[len(rss) // 2:] if rss else []
print(f"\nerrors+lost: {errors}; RSS first {rss[0] if rss else 'n/a'} KiB, max {max(rss) if rss else 'n/a'} KiB, "
      f"second-half range {min(half) if half else 'n/a'}-{max(half) if half else 'n/a'} KiB")
PY
cat "$OUT"
grep -q "errors+lost: 0;" "$OUT"
