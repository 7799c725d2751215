//! `GET /metrics`: the Prometheus text format (0.0.4), made with `prometheus-client`
//! at each scrape from what the workers already keep: their [`Counters`] atomics (each
//! once summed as `msrpd_NAME` and once per worker as `msrpd_worker_NAME{worker="N"}`),
//! their answers to a `Stats` query (queued bytes, streams, the hop-latency histogram),
//! the event queues' counts, and the process's own figures from `/proc/self`.
//!
//! [`Counters`]: crate::conn::Counters

use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::time::UNIX_EPOCH;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use super::api::State;
use crate::conn::CounterSnapshot;
use crate::server::WorkerStats;
use crate::server::hop::HopSnapshot;

/// Help text and type of each counter field; a field missing here is a counter with a
/// generic help (a unit test keeps the table whole).
const COUNTERS: &[(&str, MetricType, &str)] = &[
    (
        "connections_open",
        MetricType::Gauge,
        "Connections open now (accepted and outbound).",
    ),
    (
        "connections_total",
        MetricType::Counter,
        "Connections opened (accepted and outbound).",
    ),
    (
        "frames_in",
        MetricType::Counter,
        "MSRP frames read (requests and responses).",
    ),
    (
        "frames_out",
        MetricType::Counter,
        "MSRP frames passed on to a next hop or client.",
    ),
    (
        "bytes_in",
        MetricType::Counter,
        "Frame bytes read (heads and bodies).",
    ),
    ("bytes_out", MetricType::Counter, "Frame bytes passed on."),
    (
        "auth_ok",
        MetricType::Counter,
        "AUTH requests granted a session (the same as msrpd_auth_total{outcome=\"ok\"}).",
    ),
    (
        "auth_failed",
        MetricType::Counter,
        "AUTH requests refused: bad credentials (answered 401 with a new challenge, or 403 at the last try), protected mode, bad Authorization (the same as msrpd_auth_total{outcome=\"failed\"}).",
    ),
    (
        "auth_challenges",
        MetricType::Counter,
        "AUTH requests without credentials or with a stale nonce, answered with a digest challenge (401); a failed digest challenged again counts as failed only (the same as msrpd_auth_total{outcome=\"challenged\"}).",
    ),
    (
        "deliveries_same_core",
        MetricType::Counter,
        "Requests passed on to a connection of the core they arrived on.",
    ),
    (
        "deliveries_cross_core",
        MetricType::Counter,
        "Requests passed on to a connection of another core.",
    ),
    (
        "reports_sent",
        MetricType::Counter,
        "REPORTs the relay sent (failure reports, RFC 4976 6.4.1): the sum of msrpd_reports_total over status.",
    ),
    (
        "txn_timeouts",
        MetricType::Counter,
        "SENDs whose next hop did not answer in time (408).",
    ),
    (
        "sessions",
        MetricType::Gauge,
        "Relay sessions (AUTHed Use-Path URIs) now.",
    ),
    (
        "transactions",
        MetricType::Gauge,
        "Requests passed on that await their response now.",
    ),
    (
        "connections_refused",
        MetricType::Counter,
        "Connections refused at accept (max-connections, max-connections-per-ip).",
    ),
    (
        "queue_overflows",
        MetricType::Counter,
        "Connections closed because their write queue passed max-queue (a peer that does not read).",
    ),
    (
        "head_timeouts",
        MetricType::Counter,
        "Connections closed because a header block took longer than head-timeout.",
    ),
    (
        "body_timeouts",
        MetricType::Counter,
        "Connections closed because a frame body stalled longer than body-timeout.",
    ),
    (
        "chunks_interrupted",
        MetricType::Counter,
        "Chunks the send queues cut to let other frames go first (RFC 4975 7.1.1).",
    ),
    (
        "reads_parked",
        MetricType::Counter,
        "Reads given up on connections idle for a second, so that an idle connection holds no read buffer.",
    ),
    (
        "connect_failures",
        MetricType::Counter,
        "Outbound connections to next hops that could not be made.",
    ),
    (
        "sip_messages_in",
        MetricType::Counter,
        "SIP messages read on the MSRP ports (TCP, TLS, UDP).",
    ),
    (
        "sip_malformed",
        MetricType::Counter,
        "SIP input that did not parse (datagrams dropped, connections closed).",
    ),
    (
        "sip_pings",
        MetricType::Counter,
        "SIP CRLFCRLF keepalives answered (RFC 5626 4.4.1).",
    ),
    (
        "sip_overload",
        MetricType::Counter,
        "New SIP requests answered 503 because the transaction table was full.",
    ),
    (
        "sip_evicted",
        MetricType::Counter,
        "Completed SIP transactions ended early (after T4, before timer J) to make room for new ones.",
    ),
    (
        "nosip_packets",
        MetricType::Counter,
        "Packets and connections that were neither MSRP nor SIP, handled by nosip (logged, a nosip.packet event).",
    ),
    (
        "nosip_short",
        MetricType::Counter,
        "nosip packets under the minimum size, dropped as keepalives.",
    ),
    (
        "nosip_skipped",
        MetricType::Counter,
        "nosip packets left out by nosip-skip or nosip-match.",
    ),
    (
        "nosip_shed",
        MetricType::Counter,
        "nosip packets over the per-source or per-core event rate (a flood), not queued.",
    ),
    (
        "sip_out_success",
        MetricType::Counter,
        "Outbound SIP requests (POST /v1/sip/requests) answered 2xx.",
    ),
    (
        "sip_out_rejected",
        MetricType::Counter,
        "Outbound SIP requests answered 300-699 (a second digest challenge included).",
    ),
    (
        "sip_out_timeouts",
        MetricType::Counter,
        "Outbound SIP requests that got no final response before timer B or F (408).",
    ),
    (
        "sip_out_unreachable",
        MetricType::Counter,
        "Outbound SIP requests not delivered: next hop unresolvable, or transport error (503).",
    ),
];

/// One family: name (without `_total`, which the encoder adds to counters), help,
/// type and samples (labels, value).
#[derive(Debug)]
struct Fam {
    name: String,
    help: String,
    kind: MetricType,
    samples: Vec<(Vec<(&'static str, String)>, f64)>,
}

/// A histogram family.
#[derive(Debug)]
struct Hist {
    name: &'static str,
    help: &'static str,
    samples: Vec<(Vec<(&'static str, String)>, HopSnapshot)>,
}

/// Everything one scrape shows, gathered before encoding.
#[derive(Debug, Default)]
struct Scrape {
    fams: Vec<Fam>,
    hists: Vec<Hist>,
}

impl Scrape {
    fn add(&mut self, name: &str, help: &str, kind: MetricType, v: f64) {
        self.fams.push(Fam {
            name: name.into(),
            help: help.into(),
            kind,
            samples: vec![(Vec::new(), v)],
        });
    }

    fn add_labeled(
        &mut self,
        name: &str,
        help: &str,
        kind: MetricType,
        samples: Vec<(Vec<(&'static str, String)>, f64)>,
    ) {
        self.fams.push(Fam {
            name: name.into(),
            help: help.into(),
            kind,
            samples,
        });
    }
}

impl Collector for Scrape {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for f in &self.fams {
            let mut me = enc.encode_descriptor(&f.name, &f.help, None, f.kind)?;
            for (labels, v) in &f.samples {
                let counter = matches!(f.kind, MetricType::Counter);
                if labels.is_empty() {
                    value(&mut me, counter, v)?;
                } else {
                    value(&mut me.encode_family(labels)?, counter, v)?;
                }
            }
        }
        for h in &self.hists {
            let mut me = enc.encode_descriptor(h.name, h.help, None, MetricType::Histogram)?;
            for (labels, snap) in &h.samples {
                let mut e = me.encode_family(labels)?;
                let buckets = snap.per_bound();
                e.encode_histogram::<NoLabelSet>(
                    snap.sum_ns as f64 / 1e9,
                    snap.count,
                    &buckets,
                    None,
                )?;
            }
        }
        Ok(())
    }
}

fn value(
    m: &mut prometheus_client::encoding::MetricEncoder<'_>,
    counter: bool,
    v: &f64,
) -> Result<(), std::fmt::Error> {
    if counter {
        m.encode_counter::<NoLabelSet, f64, u64>(v, None)
    } else {
        m.encode_gauge(v)
    }
}

/// The text of one scrape. `stats` are the workers' answers to `Stats` (`None`: no
/// answer in time).
pub fn render(s: &State, stats: Vec<(usize, Option<WorkerStats>)>) -> Result<String, String> {
    let ops = &s.ops;
    let per: Vec<CounterSnapshot> = ops.counters().iter().map(|c| c.snapshot()).collect();
    let total = per.iter().fold(CounterSnapshot::default(), |a, &b| a + b);
    let mut sc = Scrape::default();
    sc.add(
        "msrpd_workers",
        "Worker threads (one per core).",
        MetricType::Gauge,
        ops.workers() as f64,
    );
    sc.add(
        "msrpd_workers_running",
        "Worker threads running now.",
        MetricType::Gauge,
        ops.workers_running() as f64,
    );
    for (i, (name, v)) in total.fields().into_iter().enumerate() {
        let (kind, help) = COUNTERS
            .iter()
            .find(|(n, ..)| *n == name)
            .map_or((MetricType::Counter, "A relay counter."), |(_, k, h)| {
                (*k, *h)
            });
        // The encoder adds `_total` to counters.
        let name = name.strip_suffix("_total").unwrap_or(name);
        sc.add(
            &format!("msrpd_{name}"),
            &format!("{help} The sum of msrpd_worker_{name} over the workers."),
            kind,
            v as f64,
        );
        let samples = per
            .iter()
            .enumerate()
            .map(|(w, c)| (vec![("worker", w.to_string())], c.fields()[i].1 as f64))
            .collect();
        sc.add_labeled(
            &format!("msrpd_worker_{name}"),
            &format!("{help} Per worker (msrpd_{name} is their sum)."),
            kind,
            samples,
        );
    }
    sc.add_labeled(
        "msrpd_auth",
        "AUTH requests by outcome, disjoint (each AUTH counts once): ok (granted), failed (refused, including a failed digest challenged again), challenged (no credentials or a stale nonce: 401 with a challenge).",
        MetricType::Counter,
        vec![
            (vec![("outcome", "ok".into())], total.auth_ok as f64),
            (vec![("outcome", "failed".into())], total.auth_failed as f64),
            (
                vec![("outcome", "challenged".into())],
                total.auth_challenges as f64,
            ),
        ],
    );
    let mut by_status: Vec<(Option<u16>, u64)> = Vec::new();
    for c in ops.counters() {
        for (i, (code, n)) in c.reports_by_status().into_iter().enumerate() {
            match by_status.get_mut(i) {
                Some(e) => e.1 += n,
                None => by_status.push((code, n)),
            }
        }
    }
    sc.add_labeled(
        "msrpd_reports",
        "REPORTs sent by status code (other: any code not listed).",
        MetricType::Counter,
        by_status
            .into_iter()
            .map(|(code, n)| {
                let l = code.map_or_else(|| "other".to_string(), |c| c.to_string());
                (vec![("status", l)], n as f64)
            })
            .collect(),
    );
    // Gauges the workers answered with.
    let answered: Vec<(usize, WorkerStats)> = stats
        .into_iter()
        .filter_map(|(i, s)| s.map(|s| (i, s)))
        .collect();
    sc.add(
        "msrpd_workers_unanswered",
        "Workers that did not answer this scrape in time (their gauges are missing).",
        MetricType::Gauge,
        (ops.workers() - answered.len()) as f64,
    );
    type Field = fn(&WorkerStats) -> u64;
    let gauges: [(&str, &str, Field); 3] = [
        (
            "queued_bytes",
            "Bytes queued on connections for writing.",
            |w| w.queued_bytes,
        ),
        ("streams", "Frames being passed through now.", |w| w.streams),
        (
            "connection_handles",
            "Connections in the workers' maps (including ones being opened or closed).",
            |w| w.connections,
        ),
    ];
    for (name, help, f) in gauges {
        let sum: u64 = answered.iter().map(|(_, w)| f(w)).sum();
        sc.add(
            &format!("msrpd_{name}"),
            &format!("{help} The sum of msrpd_worker_{name} over the workers that answered."),
            MetricType::Gauge,
            sum as f64,
        );
        sc.add_labeled(
            &format!("msrpd_worker_{name}"),
            &format!("{help} Per worker (msrpd_{name} is their sum)."),
            MetricType::Gauge,
            answered
                .iter()
                .map(|(i, w)| (vec![("worker", i.to_string())], f(w) as f64))
                .collect(),
        );
    }
    sc.hists.push(Hist {
        name: "msrpd_hop_latency_seconds",
        help: "Frame in to frame written: from a read completing to the writev that hands its first frame's last byte to the kernel, on the core owning the outgoing connection; one read in 16 (or the next that writes) is sampled.",
        samples: answered
            .iter()
            .map(|(i, w)| (vec![("worker", i.to_string())], w.hop.clone()))
            .collect(),
    });
    // Events.
    let es = ops.event_stats();
    let queue_drops: u64 = es.dropped.iter().map(|d| d.load(Ordering::Relaxed)).sum();
    let queued: u64 = es.queued.iter().map(|d| d.load(Ordering::Relaxed)).sum();
    sc.add(
        "msrpd_events",
        "Events the workers queued for the control thread.",
        MetricType::Counter,
        queued as f64,
    );
    let mut drops = vec![
        (
            vec![("where", "worker_queue".to_string())],
            queue_drops as f64,
        ),
        (
            vec![("where", "sse".to_string())],
            s.sse_dropped.load(Ordering::Relaxed) as f64,
        ),
    ];
    if let Some(h) = &s.webhook {
        drops.push((
            vec![("where", "webhook".to_string())],
            h.stats.dropped.load(Ordering::Relaxed) as f64,
        ));
    }
    sc.add_labeled(
        "msrpd_events_dropped",
        "Events dropped: a worker's queue full (worker_queue), an SSE subscriber too slow (sse), the webhook's queue full or every try failed (webhook).",
        MetricType::Counter,
        drops,
    );
    if let Some(h) = &s.webhook {
        sc.add(
            "msrpd_webhook_delivered",
            "Events the webhook accepted (2xx).",
            MetricType::Counter,
            h.stats.delivered.load(Ordering::Relaxed) as f64,
        );
        sc.add(
            "msrpd_webhook_failed_attempts",
            "POSTs to the webhook that failed (retried with backoff).",
            MetricType::Counter,
            h.stats.failed_attempts.load(Ordering::Relaxed) as f64,
        );
    }
    sc.add(
        "msrpd_admin_start_time_seconds",
        "When the admin API started, Unix time.",
        MetricType::Gauge,
        s.started
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64(),
    );
    if let Some(p) = process() {
        sc.add(
            "process_cpu_seconds",
            "User and system CPU time spent in seconds.",
            MetricType::Counter,
            p.cpu_seconds,
        );
        sc.add(
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            MetricType::Gauge,
            p.rss_bytes,
        );
        sc.add(
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes.",
            MetricType::Gauge,
            p.vsize_bytes,
        );
        sc.add(
            "process_start_time_seconds",
            "Start time of the process since the Unix epoch in seconds.",
            MetricType::Gauge,
            p.start_time,
        );
        sc.add(
            "process_open_fds",
            "Number of open file descriptors.",
            MetricType::Gauge,
            p.open_fds,
        );
        sc.add(
            "process_max_fds",
            "Maximum number of open file descriptors.",
            MetricType::Gauge,
            p.max_fds,
        );
        sc.add(
            "process_threads",
            "Number of OS threads in the process.",
            MetricType::Gauge,
            p.threads,
        );
    }
    let mut reg = Registry::default();
    reg.register_collector(Box::new(sc));
    let mut out = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut out, &reg)
        .map_err(|e| format!("cannot encode metrics: {e}"))?;
    // The 0.0.4 text format ends without a terminator; keep a final newline.
    if !out.ends_with('\n') {
        let _ = writeln!(out);
    }
    Ok(out)
}

/// The process's figures.
#[derive(Debug)]
struct Process {
    cpu_seconds: f64,
    rss_bytes: f64,
    vsize_bytes: f64,
    start_time: f64,
    open_fds: f64,
    max_fds: f64,
    threads: f64,
}

/// Reads `/proc/self/stat`, `/proc/stat` (boot time), `/proc/self/fd` and the fd limit.
fn process() -> Option<Process> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // f[0] is field 3 (state): field n is f[n - 3].
    let num = |n: usize| f.get(n - 3).and_then(|v| v.parse::<f64>().ok());
    // SAFETY: sysconf only reads configuration values.
    let (ticks, page) = unsafe {
        (
            libc::sysconf(libc::_SC_CLK_TCK) as f64,
            libc::sysconf(libc::_SC_PAGESIZE) as f64,
        )
    };
    let ticks = if ticks > 0.0 { ticks } else { 100.0 };
    let btime = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| {
            l.strip_prefix("btime ")
                .and_then(|v| v.trim().parse::<f64>().ok())
        })?;
    let open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count() as f64;
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct we pass.
    let max_fds = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 {
        lim.rlim_cur as f64
    } else {
        0.0
    };
    Some(Process {
        cpu_seconds: (num(14)? + num(15)?) / ticks,
        threads: num(20)?,
        start_time: btime + num(22)? / ticks,
        vsize_bytes: num(23)?,
        rss_bytes: num(24)? * page,
        open_fds,
        max_fds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_counter_has_its_help() {
        for (name, _) in CounterSnapshot::default().fields() {
            assert!(
                COUNTERS.iter().any(|(n, ..)| *n == name),
                "{name} has no entry in COUNTERS"
            );
        }
    }

    #[test]
    fn process_figures_are_read() {
        let p = process().expect("/proc/self readable");
        assert!(p.rss_bytes > 0.0 && p.open_fds > 0.0 && p.threads >= 1.0);
        assert!(p.start_time > 1e9);
    }
}
