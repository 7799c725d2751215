#!/usr/bin/env python3
"""Turns the lines perf/compare.sh collected into a Markdown table.

Each input line: `<relay> <bench args...> <json>`. Rows are grouped by the bench
arguments; each cell is the median over rounds with min-max beside it.
"""
import json
import statistics
import subprocess
import sys
from collections import defaultdict
from datetime import date


def cell(vals, fmt="{:.0f}"):
    vals = [v for v in vals if v is not None]
    if not vals:
        return "n/a"
    med = statistics.median(vals)
    if len(vals) == 1:
        return fmt.format(med)
    return f"{fmt.format(med)} ({fmt.format(min(vals))}-{fmt.format(max(vals))})"


def med(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def main():
    path, rounds, duration, workers, bench_threads = sys.argv[1:6]
    runs = defaultdict(lambda: defaultdict(list))
    for line in open(path):
        line = line.strip()
        if not line:
            continue
        brace = line.find("{")
        head, body = line[:brace].split(), line[brace:] if brace >= 0 else "{}"
        relay, args = head[0], " ".join(a for a in head[1:] if a not in ("--pair-hello", "--tls", "--insecure"))
        try:
            d = json.loads(body)
        except json.JSONDecodeError:
            d = {}
        runs[args][relay].append(d)

    def g(ds, *keys):
        out = []
        for d in ds:
            v = d
            for k in keys:
                v = v.get(k) if isinstance(v, dict) else None
            out.append(v)
        return out

    cpu = subprocess.run(["sh", "-c", "lscpu | sed -n 's/^Model name: *//p'"], capture_output=True, text=True).stdout.strip()
    print(f"# msrpd vs Kamailio msrp vs raw TCP forwarder ({date.today()})\n")
    print(f"Machine: {cpu or 'unknown CPU'}, 2 cores, loopback. Relays with {workers} workers "
          f"(Kamailio: {workers} TCP children), both unpinned; msrpd-bench with {bench_threads} threads on the same "
          f"cores. {rounds} rounds, interleaved msrpd, Kamailio, forwarder; {duration} s measured per run. "
          "Cells: median (min-max). Chunks of 8 KiB unless the row says otherwise. "
          "CPU = relay CPU time (all threads and processes, from /proc schedstat) per delivered message. "
          "msrpd-1w: msrpd with one worker, where no frame crosses cores.\n")
    print("| load | relay | msgs/s | MiB/s | delivery p50 us | delivery p99 us | relay CPU us/msg | errors+lost | msrpd/Kamailio msgs/s | Kamailio/msrpd CPU | msrpd/forwarder msgs/s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for args, by_relay in runs.items():
        m = by_relay.get("msrpd", [])
        k = by_relay.get("kamailio", [])
        f = by_relay.get("forwarder", [])
        for relay in ("msrpd", "msrpd-tls", "msrpd-1w", "kamailio", "forwarder"):
            ds = by_relay.get(relay)
            if not ds:
                continue
            ratio_k = ratio_cpu = ratio_f = ""
            if relay == "msrpd":
                mm, km, fm = med(g(m, "msgs_per_s")), med(g(k, "msgs_per_s")), med(g(f, "msgs_per_s"))
                mc, kc = med(g(m, "relay_cpu_us_per_msg")), med(g(k, "relay_cpu_us_per_msg"))
                if mm and km:
                    ratio_k = f"{mm / km:.2f}x"
                if mc and kc:
                    ratio_cpu = f"{kc / mc:.1f}x"
                if mm and fm:
                    ratio_f = f"{100 * mm / fm:.0f} %"
            if relay == "msrpd-1w":
                om, mm = med(g(ds, "msgs_per_s")), med(g(m, "msgs_per_s"))
                if om and mm:
                    ratio_f = f"1 worker/2 workers {100 * om / mm:.0f} %"
            if relay == "msrpd-tls":
                tm, mm = med(g(by_relay.get("msrpd-tls", []), "msgs_per_s")), med(g(m, "msgs_per_s"))
                if tm and mm:
                    ratio_f = f"TLS/TCP {100 * tm / mm:.0f} %"
            errs = sum((d.get("errors") or 0) + (d.get("lost") or 0) for d in ds)
            print(f"| {args} | {relay} | {cell(g(ds, 'msgs_per_s'))} | {cell(g(ds, 'mib_per_s'), '{:.1f}')} | "
                  f"{cell(g(ds, 'delivery_us', 'p50'))} | {cell(g(ds, 'delivery_us', 'p99'))} | "
                  f"{cell(g(ds, 'relay_cpu_us_per_msg'), '{:.2f}')} | {errs} | {ratio_k} | {ratio_cpu} | {ratio_f} |")


if __name__ == "__main__":
    main()
