#!/usr/bin/env python3
"""Turns one `msrpd-bench --json` scale run into the Markdown of perf/results/*-scale*.md.

Usage: scale_report.py JSON LIMIT PAIRS RATE [WHERE]

WHERE replaces the default note after "loopback;" (the open-files limit that bounds the
pair count on this machine), e.g. to say the run was in a VM and why.
"""
import json
import sys


def main():
    d = json.loads(sys.argv[1])
    limit, pairs, rate = sys.argv[2:5]
    where = (sys.argv[5] if len(sys.argv) > 5 else
             f"open files limit {limit} per process (it bounds the pair count on this machine)")
    r = d["relay_rss_kib"]
    print(f"# msrpd scale run\n")
    print(f"{pairs} pairs ({r['connections']} authenticated connections) on one msrpd with 2 workers, loopback; "
          f"{where}.\n")
    print("| what | value |\n|---|---|")
    print(f"| relay RSS before the pairs connected | {r['before']} KiB |")
    print(f"| relay RSS with every connection idle | {r['idle']} KiB |")
    per = r["per_connection"]
    print(f"| relay RSS per idle authenticated connection | {'n/a' if per is None else f'{per:.2f} KiB'} |")
    print(f"| open-loop traffic over all pairs | {rate} msg/s offered, {d['msgs_per_s']:.0f} msg/s delivered |")
    print(f"| delivery latency p50 / p99 / max | {d['delivery_us']['p50']:.0f} / {d['delivery_us']['p99']:.0f} / {d['delivery_us']['max']:.0f} us |")
    cpu = d["relay_cpu_us_per_msg"]
    print(f"| relay CPU per delivered message | {'n/a' if cpu is None else f'{cpu:.2f} us'} |")
    print(f"| relay RSS when the bench had closed its connections (the relay may still be closing them) | {r['end']} KiB |")
    print(f"| errors / lost | {d['errors']} / {d['lost']} |")


if __name__ == "__main__":
    main()
