//! `msrpd-bench`: load harness for MSRP relays (msrpd, Kamailio's msrp module, any
//! RFC 4976 relay).
//!
//! Opens `--pairs` sender/receiver pairs through a relay. Every endpoint AUTHs (digest
//! when `--user`/`--password` are given) and uses its Use-Path; `--topology one` puts
//! only the receiver's relay URI in the To-Path, `--topology full` both relays' URIs
//! (RFC 4976 §3). Senders send `--size` byte messages in `--chunk` byte chunks, closed
//! loop (`--window` undelivered messages per pair) or open loop (`--rate` messages per
//! second in total, latency measured from the intended send time, so there is no
//! coordinated omission). Receivers answer 200 and verify every byte and the chunk order;
//! any mismatch or loss is counted and makes the exit status non-zero.
//!
//! `--ua` drives msrpd's user agent instead (see `ua.rs`): `--pairs` sessions, each set
//! up with an INVITE over UDP and bound with an empty SEND, then sending `text/plain`
//! messages to msrpd itself; it reports the set-up rate and time, msrpd's CPU per
//! message and its memory per idle session.
//!
//! Thread-per-core like the relay: `--threads N` or `--cpus LIST`, one monoio runtime
//! per thread, pairs spread over the threads.

mod forwarder;
mod pair;
mod stream;
mod ua;

use std::io::IsTerminal;
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Where the forwarder runs the two connections of a pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Placement {
    /// Both connections of every pair on one thread: nothing crosses.
    Same,
    /// The two connections of every pair on two threads: every chunk crosses.
    Cross,
    /// Every other pair crosses: what SO_REUSEPORT gives a relay on two cores (each
    /// connection lands on either, so half the pairs are split).
    Mixed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Topology {
    /// Only the receiver's relay URI in the To-Path (the sender connects directly).
    One,
    /// Both endpoints AUTH; To-Path = own relay URI, peer's relay URI, peer.
    Full,
}

/// How the bench's peers put frames on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Writes {
    /// A chunk's head, body and end-line in one write; the 200s for everything one read
    /// brought in one write (what a careful client does, and what flatters a relay).
    Batched,
    /// As many simple clients do: head, body and end-line in three writes, each 200 in a
    /// write of its own, so the relay sees more, smaller reads and writes.
    Split,
}

/// Load harness for MSRP relays.
#[derive(Debug, Parser)]
#[command(
    name = "msrpd-bench",
    version,
    about = "Load generator for MSRP relays: sender/receiver pairs through a relay, closed or open loop, with latency histograms and the relay's CPU per message"
)]
pub struct Args {
    /// Relay address.
    #[arg(long, default_value = "127.0.0.1:2855")]
    pub relay: SocketAddr,
    /// Host to put in the relay URI of AUTH requests [default: the relay address].
    #[arg(long)]
    pub relay_host: Option<String>,
    /// Source addresses to connect from, comma-separated, used round-robin (e.g.
    /// 127.0.0.1,127.0.0.2): one address has only about 28,000 ephemeral ports towards
    /// the relay's one port [default: the address the kernel picks].
    #[arg(long, value_name = "IP[,IP..]", value_delimiter = ',')]
    pub local_addrs: Vec<IpAddr>,
    /// Worker threads (one monoio runtime each).
    #[arg(long, default_value_t = 1, conflicts_with = "cpus")]
    pub threads: usize,
    /// CPUs to run threads on, pinned, e.g. 1 or 0,2-3 (one thread per CPU).
    #[arg(long)]
    pub cpus: Option<String>,
    /// Sender/receiver pairs.
    #[arg(long, default_value_t = 1)]
    pub pairs: usize,
    #[arg(long, value_enum, default_value = "one")]
    pub topology: Topology,
    /// Message size in bytes.
    #[arg(long, default_value_t = 1024)]
    pub size: usize,
    /// Chunk size in bytes (messages larger than this are sent in several SENDs).
    #[arg(long, default_value_t = 8192)]
    pub chunk: usize,
    /// Closed loop: undelivered messages allowed per pair.
    #[arg(long, default_value_t = 1)]
    pub window: usize,
    /// Open loop: messages per second over all pairs (overrides --window).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Measured seconds.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Seconds of load before measuring.
    #[arg(long, default_value_t = 2.0)]
    pub warmup: f64,
    /// Seconds to wait at the end for messages still in flight (then they count as lost).
    #[arg(long, default_value_t = 10.0)]
    pub drain: f64,
    /// Digest user for AUTH.
    #[arg(long, requires = "password")]
    pub user: Option<String>,
    /// Digest password for AUTH.
    #[arg(long, requires = "user")]
    pub password: Option<String>,
    /// PID(s) of the relay, comma-separated, to report its CPU time per delivered
    /// message (all threads of each process, from /proc).
    #[arg(long, value_name = "PID[,PID..]", value_delimiter = ',')]
    pub relay_pid: Vec<u32>,
    /// Seconds to hold all pairs connected and idle before traffic (memory is sampled
    /// after it).
    #[arg(long, default_value_t = 0.0)]
    pub hold: f64,
    /// Seconds for all pairs to connect and AUTH before the run gives up; each pair gets
    /// two thirds of it (so a slow pair is reported as such first).
    #[arg(long, value_name = "SECS", default_value_t = 30.0)]
    pub setup_timeout: f64,
    /// Pairs each bench thread sets up at once (connect, then AUTH). Bounded so that a
    /// connection's first request follows its connect closely, as a real client's does.
    #[arg(long, value_name = "N", default_value_t = 256)]
    pub setup_concurrency: usize,
    /// Print one JSON object instead of the text report.
    #[arg(long)]
    pub json: bool,
    /// MSRP over TLS (msrps): connect with TLS; the relay certificate is verified
    /// against --relay-host (or the relay address) with --ca or the Mozilla roots.
    #[arg(long)]
    pub tls: bool,
    /// Trust anchors (PEM) for the relay certificate with --tls.
    #[arg(long, value_name = "FILE")]
    pub ca: Option<std::path::PathBuf>,
    /// With --tls, accept any relay certificate (self-signed test certificates).
    #[arg(long)]
    pub insecure: bool,
    /// Skip AUTH (for relays that route without it, and the forwarder).
    #[arg(long)]
    pub no_auth: bool,
    /// Session lifetime to ask for in AUTH (RFC 4976 §5.1 Expires); msrpd-bench does not
    /// refresh its sessions, so runs longer than the relay's default lifetime need this
    /// (and a relay that allows it) [default: none, the relay's default].
    #[arg(long, value_name = "SECS")]
    pub expires: Option<u32>,
    /// Start each connection with `PAIR <id>` (for the forwarder; implies --no-auth).
    #[arg(long)]
    pub pair_hello: bool,
    /// Run the raw TCP forwarder (the ceiling) on this address instead of a benchmark.
    #[arg(long, value_name = "ADDR")]
    pub forwarder: Option<SocketAddr>,
    /// Where the forwarder puts the two connections of a pair: both on one thread
    /// (`same`, nothing ever crosses threads), on two threads (`cross`, every chunk
    /// is handed to the other thread, as msrpd must when SO_REUSEPORT puts the two ends
    /// of a session on different cores), or every other pair crossing (`mixed`).
    #[arg(long, value_enum, default_value = "same")]
    pub placement: Placement,
    /// How frames are written: batched (default) or split as simple clients do.
    #[arg(long, value_enum, default_value = "batched")]
    pub writes: Writes,
    /// Leave Nagle's algorithm on in the clients (no TCP_NODELAY), as clients that never
    /// set it do: small writes wait for the previous segment's ACK and go out coalesced.
    #[arg(long)]
    pub nagle: bool,
    /// Drive msrpd's MSRP user agent instead of a relay: `--pairs` sessions, each an
    /// INVITE over UDP to --relay answered 200 with msrpd's a=path, an ACK, a TCP
    /// connection to that path bound with an empty SEND; then text/plain messages to
    /// msrpd, each answered 200 (msrpd must run with --ua-answer matching --ua-ruri).
    #[arg(long, conflicts_with_all = ["tls", "pair_hello", "forwarder"])]
    pub ua: bool,
    /// With --ua: the Request-URI of the INVITEs.
    #[arg(long, value_name = "URI", default_value = "sip:bench@127.0.0.1")]
    pub ua_ruri: String,
    /// With --ua: SIP UDP sockets per bench thread, used round-robin by the sessions
    /// (the kernel picks msrpd's core by the datagram's addresses, so one socket would
    /// put every session on one core).
    #[arg(long, value_name = "N", default_value_t = 8)]
    pub sip_sockets: usize,
}

/// What every thread shares.
pub struct Shared {
    pub args: Args,
    pub relay_uri: String,
    /// TLS settings with --tls.
    pub tls: Option<stream::Tls>,
    pub pattern: Vec<u8>,
    /// Printable text of the same length (the user agent's text/plain bodies).
    pub text: Vec<u8>,
    pub stop: AtomicBool,
    pub delivered: AtomicU64,
    pub delivered_bytes: AtomicU64,
    pub errors: AtomicU64,
    pub ready_pairs: AtomicU64,
    /// A short session lifetime has been warned about once.
    pub expiry_warned: AtomicBool,
}

impl Args {
    /// The source address of the bench's `n`th connection (round-robin over
    /// `--local-addrs`), or `None` to let the kernel pick.
    pub fn local_addr(&self, n: usize) -> Option<IpAddr> {
        let l = &self.local_addrs;
        (!l.is_empty()).then(|| l[n % l.len()])
    }
}

/// Per-thread results.
pub struct Stats {
    pub send_to_200: Histogram<u64>,
    /// With --ua: INVITE sent to the bind's 200, per session.
    pub setup: Histogram<u64>,
    pub delivery: Histogram<u64>,
    pub delivered: u64,
    pub delivered_bytes: u64,
    pub errors: u64,
    pub lost: u64,
    pub error_samples: Vec<String>,
}

impl Stats {
    pub fn new() -> Stats {
        Stats {
            send_to_200: Histogram::new_with_bounds(1, 60_000_000_000, 3)
                .expect("histogram bounds"),
            delivery: Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("histogram bounds"),
            setup: Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("histogram bounds"),
            delivered: 0,
            delivered_bytes: 0,
            errors: 0,
            lost: 0,
            error_samples: Vec::new(),
        }
    }

    fn merge(&mut self, o: &Stats) {
        let _ = self.send_to_200.add(&o.send_to_200);
        let _ = self.delivery.add(&o.delivery);
        let _ = self.setup.add(&o.setup);
        self.delivered += o.delivered;
        self.delivered_bytes += o.delivered_bytes;
        self.errors += o.errors;
        self.lost += o.lost;
        for e in &o.error_samples {
            if self.error_samples.len() < 10 {
                self.error_samples.push(e.clone());
            }
        }
    }
}

impl Default for Stats {
    fn default() -> Self {
        Stats::new()
    }
}

fn parse_cpus(s: &str) -> Option<Vec<usize>> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                out.extend(a.trim().parse::<usize>().ok()?..=b.trim().parse::<usize>().ok()?)
            }
            None => out.push(part.parse().ok()?),
        }
    }
    (!out.is_empty()).then_some(out)
}

/// Resident memory of the processes `pids` in KiB (VmRSS).
fn process_rss_kib(pids: &[u32]) -> Option<u64> {
    if pids.is_empty() {
        return None;
    }
    let mut total = 0;
    for pid in pids {
        let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        total += s
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
    }
    Some(total)
}

/// Total CPU time of all threads of the processes `pids`, in nanoseconds (schedstat).
fn process_cpu_ns(pids: &[u32]) -> Option<u64> {
    if pids.is_empty() {
        return None;
    }
    let mut total = 0u64;
    for pid in pids {
        let dir = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
        for t in dir.flatten() {
            let s = std::fs::read_to_string(t.path().join("schedstat")).unwrap_or_default();
            total += s
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    Some(total)
}

fn main() -> ExitCode {
    let mut args = Args::parse();
    // Every pair holds two descriptors: use the whole hard limit.
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
    if let Some(addr) = args.forwarder {
        return forwarder::serve(addr, args.threads, args.placement);
    }
    args.no_auth |= args.pair_hello;
    if !(args.setup_timeout > 0.0 && args.setup_timeout < 1e9) {
        eprintln!("msrpd-bench: --setup-timeout must be a positive number of seconds");
        return ExitCode::from(2);
    }
    if args.size == 0
        || args.chunk == 0
        || args.pairs == 0
        || args.window == 0
        || args.setup_concurrency == 0
    {
        eprintln!(
            "msrpd-bench: --size, --chunk, --pairs, --window and --setup-concurrency must be at least 1"
        );
        return ExitCode::from(2);
    }
    let cpus: Option<Vec<usize>> = match &args.cpus {
        Some(c) => match parse_cpus(c) {
            Some(v) => Some(v),
            None => {
                eprintln!("msrpd-bench: bad --cpus {c:?}");
                return ExitCode::from(2);
            }
        },
        None => None,
    };
    let threads = cpus.as_ref().map_or(args.threads.max(1), Vec::len);
    let host = args.relay_host.clone().unwrap_or_else(|| match args.relay {
        SocketAddr::V4(a) => a.ip().to_string(),
        SocketAddr::V6(a) => format!("[{}]", a.ip()),
    });
    let scheme = if args.tls { "msrps" } else { "msrp" };
    let relay_uri = format!("{scheme}://{host}:{};tcp", args.relay.port());
    let tls = if args.tls {
        match stream::Tls::new(&host, args.ca.as_deref(), args.insecure) {
            Ok(t) => Some(t),
            Err(e) => {
                eprintln!("msrpd-bench: {e}");
                return ExitCode::from(2);
            }
        }
    } else {
        None
    };
    // Deterministic body content, long enough for any message plus the per-message shift.
    let pattern: Vec<u8> = (0..args.size + 4096)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).rotate_right(13) as u8)
        .map(|b| if b == b'-' { b'+' } else { b })
        .collect();
    let text: Vec<u8> = (0..args.size + 4096)
        .map(|i| {
            b"abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ.0123456789"
                [(i * 7 + i / 64) % 64]
        })
        .collect();
    let setup_budget = Duration::from_secs_f64(args.setup_timeout);
    let shared = Arc::new(Shared {
        relay_uri,
        tls,
        pattern,
        text,
        stop: AtomicBool::new(false),
        delivered: AtomicU64::new(0),
        delivered_bytes: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        ready_pairs: AtomicU64::new(0),
        expiry_warned: AtomicBool::new(false),
        args,
    });
    let rss_before = process_rss_kib(&shared.args.relay_pid);
    let setup_start = Instant::now();
    let start_gate = Arc::new(std::sync::Barrier::new(threads + 1));
    let times: Arc<std::sync::Mutex<Option<(Instant, Instant)>>> =
        Arc::new(std::sync::Mutex::new(None));
    let mut handles = Vec::new();
    for t in 0..threads {
        let shared = shared.clone();
        let gate = start_gate.clone();
        let times = times.clone();
        let cpu = cpus.as_ref().map(|c| c[t]);
        let pairs: Vec<usize> = (0..shared.args.pairs)
            .filter(|p| p % threads == t)
            .collect();
        handles.push(
            std::thread::Builder::new()
                .name(format!("bench-{t}"))
                .spawn(move || {
                    if shared.args.ua {
                        ua::thread_main(shared, pairs, cpu, gate, times)
                    } else {
                        pair::thread_main(shared, pairs, cpu, gate, times)
                    }
                })
                .expect("spawn bench thread"),
        );
    }
    // Wait until every pair has connected and AUTHed, then fix the measurement window.
    let setup_deadline = setup_start + setup_budget;
    while shared.ready_pairs.load(Ordering::Acquire) < shared.args.pairs as u64
        && Instant::now() < setup_deadline
        && shared.errors.load(Ordering::Relaxed) == 0
    {
        std::thread::sleep(Duration::from_millis(10));
    }
    let ready = shared.ready_pairs.load(Ordering::Acquire);
    let setup_s = setup_start.elapsed().as_secs_f64();
    if ready < shared.args.pairs as u64 {
        eprintln!(
            "msrpd-bench: only {ready} of {} {} could be set up",
            shared.args.pairs,
            if shared.args.ua { "sessions" } else { "pairs" }
        );
        shared.stop.store(true, Ordering::Release);
    }
    // Relay memory with every pair connected and AUTHed, before any traffic.
    if shared.args.hold > 0.0 {
        std::thread::sleep(Duration::from_secs_f64(shared.args.hold));
    }
    let rss_idle = process_rss_kib(&shared.args.relay_pid);
    let t0 = Instant::now();
    let from = t0 + Duration::from_secs_f64(shared.args.warmup);
    let to = from + Duration::from_secs_f64(shared.args.duration);
    *times.lock().expect("times lock") = Some((from, to));
    start_gate.wait();

    let tty = std::io::stderr().is_terminal() && !shared.args.json;
    let mut cpu_from = None;
    let mut last = (Instant::now(), 0u64);
    while Instant::now() < to && !shared.stop.load(Ordering::Acquire) {
        std::thread::sleep(
            Duration::from_millis(100).min(to.saturating_duration_since(Instant::now())),
        );
        let now = Instant::now();
        if cpu_from.is_none() && now >= from {
            cpu_from = process_cpu_ns(&shared.args.relay_pid).map(|c| (c, now));
        }
        if tty && now.duration_since(last.0) >= Duration::from_secs(1) {
            let d = shared.delivered.load(Ordering::Relaxed);
            let rate = (d - last.1) as f64 / now.duration_since(last.0).as_secs_f64();
            eprintln!(
                "[{:5.1}s] {:>10.0} msg/s  delivered {d}  errors {}",
                now.duration_since(t0).as_secs_f64(),
                rate,
                shared.errors.load(Ordering::Relaxed)
            );
            last = (now, d);
        }
    }
    let cpu_to = process_cpu_ns(&shared.args.relay_pid).map(|c| (c, Instant::now()));
    shared.stop.store(true, Ordering::Release);
    let mut total = Stats::new();
    for h in handles {
        match h.join() {
            Ok(s) => total.merge(&s),
            Err(_) => {
                total.errors += 1;
                total.error_samples.push("a bench thread panicked".into());
            }
        }
    }
    let rss = Rss {
        before: rss_before,
        idle: rss_idle,
        end: process_rss_kib(&shared.args.relay_pid),
        // One MSRP connection per user agent session, two per relay pair.
        connections: if shared.args.ua { ready } else { 2 * ready },
    };
    report(&shared, &total, setup_s, cpu_from, cpu_to, rss)
}

/// Relay memory: before the pairs connected, with all pairs idle, at the end (KiB).
struct Rss {
    before: Option<u64>,
    idle: Option<u64>,
    end: Option<u64>,
    connections: u64,
}

impl Rss {
    /// KiB per connection held, from the growth between `before` and `idle`.
    fn per_connection(&self) -> Option<f64> {
        match (self.before, self.idle) {
            (Some(b), Some(i)) if self.connections > 0 => {
                Some(i.saturating_sub(b) as f64 / self.connections as f64)
            }
            _ => None,
        }
    }
}

fn report(
    shared: &Shared,
    s: &Stats,
    setup_s: f64,
    cpu_from: Option<(u64, Instant)>,
    cpu_to: Option<(u64, Instant)>,
    rss: Rss,
) -> ExitCode {
    let a = &shared.args;
    let secs = a.duration;
    let msgs = s.delivered as f64 / secs;
    let mib = s.delivered_bytes as f64 / secs / (1024.0 * 1024.0);
    let cpu_us_per_msg = match (cpu_from, cpu_to) {
        (Some((c0, _)), Some((c1, _))) if s.delivered > 0 => {
            Some((c1 - c0) as f64 / 1000.0 / s.delivered as f64)
        }
        _ => None,
    };
    let q = |h: &Histogram<u64>, p: f64| h.value_at_quantile(p) as f64 / 1000.0;
    let ok = s.errors == 0 && s.lost == 0 && s.delivered > 0;
    // Set-ups per second: every session (or pair) set up over the set-up phase's wall time.
    let setups_per_s = (s.setup.len() as f64 / setup_s.max(1e-9)).round();
    if a.json {
        let v = serde_json::json!({
            "pairs": a.pairs, "size": a.size, "chunk": a.chunk, "window": a.window,
            "rate": a.rate, "topology": format!("{:?}", a.topology).to_lowercase(),
            "writes": format!("{:?}", a.writes).to_lowercase(), "nagle": a.nagle,
            "setup_s": setup_s, "duration_s": secs, "delivered": s.delivered, "msgs_per_s": msgs, "mib_per_s": mib,
            "errors": s.errors, "lost": s.lost,
            "send_to_200_us": { "p50": q(&s.send_to_200, 0.5), "p90": q(&s.send_to_200, 0.9),
                "p99": q(&s.send_to_200, 0.99), "p999": q(&s.send_to_200, 0.999), "max": s.send_to_200.max() as f64 / 1000.0 },
            "delivery_us": { "p50": q(&s.delivery, 0.5), "p90": q(&s.delivery, 0.9),
                "p99": q(&s.delivery, 0.99), "p999": q(&s.delivery, 0.999), "max": s.delivery.max() as f64 / 1000.0 },
            "mode": if a.ua { "ua" } else { "relay" },
            "setups": s.setup.len(), "setups_per_s": if a.ua { Some(setups_per_s) } else { None },
            "setup_us": { "p50": q(&s.setup, 0.5), "p90": q(&s.setup, 0.9),
                "p99": q(&s.setup, 0.99), "max": s.setup.max() as f64 / 1000.0 },
            "relay_cpu_us_per_msg": cpu_us_per_msg,
            "relay_rss_kib": { "before": rss.before, "idle": rss.idle, "end": rss.end,
                "connections": rss.connections, "per_connection": rss.per_connection() },
            "error_samples": s.error_samples,
        });
        println!("{v}");
    } else {
        println!(
            "pairs {} size {} chunk {} {}  topology {:?}",
            a.pairs,
            a.size,
            a.chunk,
            match a.rate {
                Some(r) => format!("rate {r}/s"),
                None => format!("window {}", a.window),
            },
            a.topology
        );
        println!(
            "delivered {} msgs in {secs:.1} s: {msgs:.0} msg/s, {mib:.1} MiB/s",
            s.delivered
        );
        for (name, h) in [("SEND->200", &s.send_to_200), ("delivery ", &s.delivery)] {
            println!(
                "{name} us  p50 {:.0}  p90 {:.0}  p99 {:.0}  p99.9 {:.0}  max {:.0}",
                q(h, 0.5),
                q(h, 0.9),
                q(h, 0.99),
                q(h, 0.999),
                h.max() as f64 / 1000.0
            );
        }
        if a.ua {
            println!(
                "{} sessions set up in {setup_s:.2} s ({setups_per_s:.0}/s); INVITE to bound us  p50 {:.0}  p99 {:.0}  max {:.0}",
                s.setup.len(),
                q(&s.setup, 0.5),
                q(&s.setup, 0.99),
                s.setup.max() as f64 / 1000.0
            );
        }
        if let Some(c) = cpu_us_per_msg {
            println!("relay CPU {c:.2} us per delivered message");
        }
        if let (Some(b), Some(i), Some(e), Some(per)) =
            (rss.before, rss.idle, rss.end, rss.per_connection())
        {
            println!(
                "relay RSS KiB: {b} before, {i} with {} connections idle ({per:.2} KiB each), {e} at the end",
                rss.connections
            );
        }
        println!("errors {}  lost {}", s.errors, s.lost);
        for e in &s.error_samples {
            println!("  error: {e}");
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_addrs_round_robin() {
        let a = Args::parse_from(["msrpd-bench", "--local-addrs", "127.0.0.1,127.0.0.2"]);
        let got: Vec<String> = (0..5)
            .map(|n| a.local_addr(n).unwrap().to_string())
            .collect();
        assert_eq!(
            got,
            [
                "127.0.0.1",
                "127.0.0.2",
                "127.0.0.1",
                "127.0.0.2",
                "127.0.0.1"
            ]
        );
        let a = Args::parse_from(["msrpd-bench"]);
        assert_eq!(a.local_addr(0), None);
    }
}
