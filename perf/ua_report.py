#!/usr/bin/env python3
"""perf/ua.sh's report: its raw lines ("label exit-code json") to a markdown page."""
import json
import math
import statistics
import sys

(raw, rev, runs, dur, workers, sessions, rate, window, idle, conc, sparse, sipp_dur,
 small, long_dur, sippv) = sys.argv[1:]

data = {}
for line in open(raw):
    label, rc, js = line.split(" ", 2)
    d = json.loads(js)
    d["rc"] = int(rc)
    data.setdefault(label, []).append(d)


def med(v):
    v = [x for x in v if x is not None and not math.isnan(x)]
    return statistics.median(v) if v else float("nan")


def col(label, key, sub=None):
    out = []
    for d in data.get(label, []):
        v = d.get(key)
        if sub is not None:
            v = (v or {}).get(sub)
        out.append(v)
    return out


def fmt(v, spec=".1f"):
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def runs_of(v, spec=".1f"):
    return ", ".join(fmt(x, spec) for x in v)


bad = []
for label, v in data.items():
    for i, d in enumerate(v):
        e, lost = d.get("errors", 0), d.get("lost", 0)
        failed = d.get("failed", 0)
        if d["rc"] or e or lost or failed:
            bad.append(f"{label} run {i + 1}: exit {d['rc']}, errors {e}, lost {lost}"
                       + (f", failed {failed}" if failed else "")
                       + ("; " + "; ".join(d.get("error_samples", [])[:3])
                          if d.get("error_samples") else ""))

print("# The MSRP user agent under load (perf/ua.sh)\n")
print(f"commit {rev}; {runs} runs, each with fresh msrpd processes (`--cores {workers} "
      f"--no-pin --admin off --ua-answer '^sip:bench@'`), msrpd-bench `--threads {workers}` "
      f"on the same cores; {dur} s measured after 1 s of warm-up. CPU: schedstat of every "
      "msrpd thread (msrpd-bench --relay-pid) over the measured window, per message "
      "(user agent: SENDs msrpd answered 200; relay: messages the receiver got).\n")

print(f"## CPU per 1 KiB message: user agent against relay, {sessions} sessions / pairs\n")
print("| load | relay us/msg (runs) | user agent us/msg (runs) | UA / relay, per run | "
      "UA / relay, medians | relay msg/s | UA msg/s |")
print("|---|---|---|---|---|---|---|")
ratios = {}
for kind, what in (("open", f"open loop, {int(float(rate)):,} msg/s"),
                   ("closed", f"closed loop, window {window}")):
    rc = col(f"relay-{kind}", "relay_cpu_us_per_msg")
    uc = col(f"ua-{kind}", "relay_cpu_us_per_msg")
    per = [u / r if u and r else None for u, r in zip(uc, rc)]
    ratios[kind] = med(uc) / med(rc)
    print(f"| {what} | {fmt(med(rc), '.2f')} ({runs_of(rc, '.2f')}) | "
          f"{fmt(med(uc), '.2f')} ({runs_of(uc, '.2f')}) | {runs_of(per, '.2f')} | "
          f"**{fmt(ratios[kind], '.2f')}x** | {fmt(med(col(f'relay-{kind}', 'msgs_per_s')), ',.0f')} | "
          f"{fmt(med(col(f'ua-{kind}', 'msgs_per_s')), ',.0f')} |")
print()

print(f"## {int(idle):,} idle sessions: memory and set-up rate\n")
print(f"msrpd-bench --ua --pairs {idle} --setup-concurrency {conc} (per bench thread): every "
      "session INVITEd over UDP, ACKed, connected and bound with an empty SEND; held idle "
      f"2 s, then {int(float(sparse)):,} msg/s spread over all of them for {dur} s.\n")
print("| run | sessions | set-up s | set-ups/s | INVITE to bound p50 / p99 / max ms | "
      "RSS before / idle MiB | KiB per session | CPU us/msg at "
      f"{int(float(sparse)):,} msg/s |")
print("|---|---|---|---|---|---|---|---|")
mem = data.get("ua-idle", [])
for i, d in enumerate(mem):
    r = d.get("relay_rss_kib") or {}
    s = d.get("setup_us") or {}
    print(f"| {i + 1} | {d.get('setups', '-')} | {fmt(d.get('setup_s'), '.2f')} | "
          f"{fmt(d.get('setups_per_s'), ',.0f')} | {fmt((s.get('p50') or 0) / 1000, '.1f')} / "
          f"{fmt((s.get('p99') or 0) / 1000, '.1f')} / {fmt((s.get('max') or 0) / 1000, '.1f')} | "
          f"{fmt((r.get('before') or 0) / 1024, '.1f')} / {fmt((r.get('idle') or 0) / 1024, '.1f')} | "
          f"{fmt(r.get('per_connection'), '.2f')} | {fmt(d.get('relay_cpu_us_per_msg'), '.2f')} |")
if mem:
    print(f"| **median** | | {fmt(med(col('ua-idle', 'setup_s')), '.2f')} | "
          f"**{fmt(med(col('ua-idle', 'setups_per_s')), ',.0f')}** | "
          f"{fmt(med(col('ua-idle', 'setup_us', 'p50')) / 1000, '.1f')} / "
          f"{fmt(med(col('ua-idle', 'setup_us', 'p99')) / 1000, '.1f')} / | | "
          f"**{fmt(med(col('ua-idle', 'relay_rss_kib', 'per_connection')), '.2f')}** | "
          f"{fmt(med(col('ua-idle', 'relay_cpu_us_per_msg')), '.2f')} |")
print()

print(f"## Sparse traffic: {int(float(sparse)):,} msg/s spread over many idle sessions or "
      "connections\n")
print("| load | connections held | msrpd RSS KiB per connection (runs) | CPU us/msg (runs) | "
      "/ relay |")
print("|---|---|---|---|---|")
relay_sparse = med(col("relay-idle", "relay_cpu_us_per_msg"))
for label, what in ((f"ua-small", f"user agent, {int(small):,} sessions"),
                    ("ua-idle", f"user agent, {int(idle):,} sessions"),
                    ("relay-idle", f"relay, {int(idle) // 2:,} pairs (--topology full)")):
    if label not in data:
        continue
    c = col(label, "relay_cpu_us_per_msg")
    k = col(label, "relay_rss_kib", "per_connection")
    conns = med(col(label, "relay_rss_kib", "connections"))
    print(f"| {what} | {fmt(conns, ',.0f')} | {fmt(med(k), '.2f')} ({runs_of(k, '.2f')}) | "
          f"{fmt(med(c), '.1f')} ({runs_of(c, '.1f')}) | {fmt(med(c) / relay_sparse, '.2f')}x |")
print()

sipp = sorted((k for k in data if k.startswith("sipp-")), key=lambda k: int(k[5:]))
if sipp:
    print(f"## SIP set-ups with sipp ({sippv}, -t un)\n")
    print(f"INVITE (MSRP offer), 200 (msrpd's answer), ACK, BYE, 200 per call, over UDP, "
          f"{sipp_dur} s per rate; no MSRP connection. CPU: msrpd's utime+stime "
          "(/proc/PID/stat, 10 ms ticks) over sipp's run, per successful call.\n")
    print("| offered calls/s | achieved (runs) | failed | lost | retrans | msrpd CPU us/call (runs) |")
    print("|---|---|---|---|---|---|")
    for k in sipp:
        v = data[k]
        print(f"| {int(k[5:]):,} | {fmt(med(col(k, 'calls_per_s')), ',.0f')} "
              f"({runs_of(col(k, 'calls_per_s'), '.0f')}) | {sum(d.get('failed', 0) for d in v)} | "
              f"{sum(d.get('lost', 0) for d in v)} | {sum(d.get('retrans', 0) for d in v)} | "
              f"{fmt(med(col(k, 'cpu_us_per_call')), '.1f')} ({runs_of(col(k, 'cpu_us_per_call'), '.1f')}) |")
    print()
longs = sorted((k for k in data if k.startswith("sipplong-")), key=lambda k: int(k[9:]))
if longs:
    print(f"Sustained, {long_dur} s per rate (first run only), longer than the 32 s an INVITE "
          "server transaction stays Accepted after its 2xx:\n")
    print("| offered calls/s | achieved | ok | failed | lost | msrpd CPU us/call |")
    print("|---|---|---|---|---|---|")
    for k in longs:
        for d in data[k]:
            print(f"| {int(k[9:]):,} | {fmt(d.get('calls_per_s'), ',.0f')} | {d.get('ok')} | "
                  f"{d.get('failed')} | {d.get('lost')} | {fmt(d.get('cpu_us_per_call'), '.1f')} |")
    print()

print("errors, losses or failures: " + ("; ".join(bad) if bad else "none"))
