//! `msrpd-fairness`: how long small messages wait behind a huge chunk on a shared
//! connection (RFC 4975 §7.1.1, RFC 4976 §6.4.1), against a running relay.
//!
//! Three clients connect to `--relay` (plain TCP, loopback only) and AUTH (protected
//! mode: no credentials from loopback). A streams one single-chunk SEND of `--big-mib`
//! MiB (`Byte-Range: 1-*/N`) to B as fast as the relay takes it. B reads at most
//! `--rate-mbps` MB/s (a token bucket; no cap without it), answers every SEND piece with
//! 200 and checks the big body byte by byte against its position (byte i is `i % 251`)
//! without holding it. Once a MiB of the big message has arrived, C sends B a 1 KiB
//! message every `--interval-ms`, and B sends A one (the relay answers it with 200 on B's
//! connection, behind the big message). For each C message the tool measures the time
//! from C's write to B's receipt and how many big-message bytes B received in between;
//! the same for B's 200s. It also samples the bytes the kernel holds between the relay
//! and B (the relay socket's send queue plus B's receive queue, from /proc/net/tcp): a
//! small message can wait behind those plus one share of the relay's queue, so the
//! expected wait is about (those bytes) / (B's rate).
//!
//! Senders stop when 7/8 of the big message has arrived (so every sample waited behind
//! it). A answers B's messages only after its own chunk has ended (a chunk cannot be
//! interrupted by its sender), so a run must end within the relay's transaction timeout
//! (30 s by default) or the relay reports 408s to B, which count as errors.
//!
//! Exits non-zero on any error, unexpected frame, loss, a body that differs, a big
//! message that does not reassemble, or a run longer than `--duration`.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use clap::Parser;
use hdrhistogram::Histogram;
use msrpd::codec::{Event, Flag, RawHead, Scanner};

/// How small-message latency behaves behind a huge chunk through an MSRP relay.
#[derive(Debug, Parser)]
#[command(
    name = "msrpd-fairness",
    version,
    about = "Measures how long small MSRP messages and responses wait behind a huge chunk on a shared relay connection"
)]
struct Args {
    /// Relay address (loopback only).
    #[arg(long, default_value = "127.0.0.1:2855")]
    relay: SocketAddr,
    /// Size of the big message in MiB (one chunk, `Byte-Range: 1-*/N`).
    #[arg(long, default_value_t = 256)]
    big_mib: u64,
    /// B's read rate in MB/s (10^6 bytes a second); absent or 0: no cap.
    #[arg(long)]
    rate_mbps: Option<f64>,
    /// Milliseconds between C's messages (and between B's own messages).
    #[arg(long, default_value_t = 10)]
    interval_ms: u64,
    /// Seconds the whole run may take; longer is an error.
    #[arg(long, default_value_t = 60.0)]
    duration: f64,
    /// Seconds a connection may go without bytes while some are due.
    #[arg(long, default_value_t = 10.0)]
    read_timeout: f64,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
}

/// Bytes of a small message's body.
const SMALL: usize = 1024;
/// The big body is written in pieces of this size.
const PIECE: usize = 1 << 20;
/// B's reads: at most this much at once.
const READ_BUF: usize = 256 * 1024;
/// Short reads let a thread look at the deadline and the abort flag.
const POLL: Duration = Duration::from_millis(100);
const BIG_MID: &str = "bigmsg0001";

/// A small message's send: when it was written, and how much of the big body B had.
#[derive(Clone, Copy)]
struct Sent {
    at: Instant,
    big_at: u64,
}

struct Shared {
    deadline: Instant,
    read_timeout: Duration,
    interval: Duration,
    big: u64,
    /// Big-body bytes B has received and checked.
    big_got: AtomicU64,
    /// Small senders stop.
    stop: AtomicBool,
    /// Small senders that have finished (2 when both have).
    senders_done: AtomicU64,
    abort: AtomicBool,
    errors: Mutex<Vec<String>>,
    c_sent: Mutex<HashMap<String, Sent>>,
    b_sent: Mutex<HashMap<String, Sent>>,
    c_count: AtomicU64,
    b_count: AtomicU64,
    /// B's messages that reached A, and C's 200s.
    a_got: AtomicU64,
    c_ok: AtomicU64,
    big_ok: AtomicBool,
    /// Kernel bytes between the relay and B, sampled while the small messages flow.
    ahead: Mutex<Histogram<u64>>,
    /// Bytes from B the relay had not read yet, sampled likewise.
    unread: Mutex<Histogram<u64>>,
}

impl Shared {
    /// Records an error and stops the run. Errors after the first are marked: they are
    /// mostly the others noticing the sockets closed.
    fn fail(&self, msg: String) {
        let first = !self.abort.swap(true, Ordering::SeqCst);
        let mut e = self.errors.lock().unwrap();
        if first {
            e.insert(0, msg);
        } else {
            e.push(format!("then: {msg}"));
        }
    }
    fn aborted(&self) -> bool {
        self.abort.load(Ordering::SeqCst)
    }
    fn late(&self) -> bool {
        Instant::now() > self.deadline
    }
    fn senders_finished(&self) -> bool {
        self.senders_done.load(Ordering::SeqCst) == 2
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 1 << 40, 3).expect("histogram bounds")
}

/// One whole frame (body joined): only for the small frames.
struct Frame {
    head: RawHead,
    body: Vec<u8>,
    flag: Flag,
}

/// A client connection to the relay.
struct Peer {
    name: &'static str,
    me: String,
    stream: TcpStream,
    scanner: Scanner,
    buf: BytesMut,
    pending_head: Option<RawHead>,
    body: Vec<u8>,
}

impl Peer {
    fn connect(relay: SocketAddr, name: &'static str, port: u16) -> io::Result<Peer> {
        let stream = TcpStream::connect_timeout(&relay, Duration::from_secs(5))?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(POLL))?;
        Ok(Peer {
            name,
            me: format!("msrp://127.0.0.1:{port}/{name}{};tcp", std::process::id()),
            stream,
            scanner: Scanner::default(),
            buf: BytesMut::with_capacity(64 * 1024),
            pending_head: None,
            body: Vec::new(),
        })
    }

    /// The next whole frame; `Ok(None)` after a quiet `POLL` (the caller decides whether
    /// to wait on).
    fn poll_frame(&mut self) -> Result<Option<Frame>, String> {
        loop {
            while let Some(ev) = self
                .scanner
                .next(&mut self.buf)
                .map_err(|e| format!("{}: relay output does not scan: {e}", self.name))?
            {
                match ev {
                    Event::Head(h) => {
                        self.body.clear();
                        self.pending_head = Some(h);
                    }
                    Event::Body(b) => self.body.extend_from_slice(&b),
                    Event::End(flag) => {
                        let head = self
                            .pending_head
                            .take()
                            .ok_or_else(|| format!("{}: end-line without head", self.name))?;
                        return Ok(Some(Frame {
                            head,
                            body: std::mem::take(&mut self.body),
                            flag,
                        }));
                    }
                }
            }
            let mut tmp = [0u8; 16 * 1024];
            match self.stream.read(&mut tmp) {
                Ok(0) => return Err(format!("{}: the relay closed the connection", self.name)),
                Ok(n) => self.buf.extend_from_slice(&tmp[..n]),
                Err(e) if is_timeout(&e) => return Ok(None),
                Err(e) => return Err(format!("{}: read: {e}", self.name)),
            }
        }
    }

    /// Reads frames until one comes, within `timeout`.
    fn read_frame(&mut self, timeout: Duration) -> Result<Frame, String> {
        let until = Instant::now() + timeout;
        loop {
            if let Some(f) = self.poll_frame()? {
                return Ok(f);
            }
            if Instant::now() > until {
                return Err(format!("{}: no frame within {timeout:?}", self.name));
            }
        }
    }

    /// Protected-mode AUTH; returns the Use-Path.
    fn auth(&mut self, relay_uri: &str) -> Result<String, String> {
        let tid = format!("auth{}", self.name);
        let m = format!(
            "MSRP {tid} AUTH\r\nTo-Path: {relay_uri}\r\nFrom-Path: {}\r\n-------{tid}$\r\n",
            self.me
        );
        self.stream
            .write_all(m.as_bytes())
            .map_err(|e| format!("{}: write AUTH: {e}", self.name))?;
        let f = self.read_frame(Duration::from_secs(5))?;
        let h = f
            .head
            .parse()
            .map_err(|e| format!("{}: AUTH response: {e}", self.name))?;
        if h.tid() != tid || h.status_code() != Some(200) {
            return Err(format!(
                "{}: AUTH answered {}",
                self.name,
                String::from_utf8_lossy(f.head.as_bytes())
                    .lines()
                    .next()
                    .unwrap_or("")
            ));
        }
        h.get("Use-Path")
            .map(|u| String::from_utf8_lossy(u).trim().to_string())
            .ok_or_else(|| format!("{}: AUTH 200 without Use-Path", self.name))
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

fn response(tid: &str, to: &str, me: &str) -> String {
    format!("MSRP {tid} 200 OK\r\nTo-Path: {to}\r\nFrom-Path: {me}\r\n-------{tid}$\r\n")
}

fn small_send(tid: &str, mid: &str, to: &str, me: &str, fill: u8) -> Vec<u8> {
    let mut m = format!(
        "MSRP {tid} SEND\r\nTo-Path: {to}\r\nFrom-Path: {me}\r\nMessage-ID: {mid}\r\n\
         Byte-Range: 1-{SMALL}/{SMALL}\r\nContent-Type: text/plain\r\n\r\n"
    )
    .into_bytes();
    m.extend_from_slice(&[fill; SMALL]);
    m.extend_from_slice(format!("\r\n-------{tid}$\r\n").as_bytes());
    m
}

/// The bytes `i % 251` for i in 0..PIECE+251: any window of the big body is a slice.
fn pattern() -> Vec<u8> {
    (0..PIECE + 251).map(|i| (i % 251) as u8).collect()
}

/// A writes its one big chunk, then the responses it owes B (it cannot put them inside
/// its own chunk), then answers directly.
struct AOut {
    /// `None` while the big chunk is being written.
    stream: Option<TcpStream>,
    owed: Vec<String>,
}

fn a_writer(sh: &Shared, mut s: TcpStream, head: String, end: String, out: &Mutex<AOut>) {
    let pat = pattern();
    let mut go = || -> io::Result<()> {
        s.write_all(head.as_bytes())?;
        let mut off = 0u64;
        while off < sh.big {
            if sh.aborted() {
                return Ok(());
            }
            let n = (sh.big - off).min(PIECE as u64) as usize;
            let at = (off % 251) as usize;
            s.write_all(&pat[at..at + n])?;
            off += n as u64;
        }
        s.write_all(end.as_bytes())
    };
    if let Err(e) = go() {
        sh.fail(format!("A: writing the big chunk: {e}"));
        return;
    }
    let mut o = out.lock().unwrap();
    for r in o.owed.drain(..) {
        if let Err(e) = s.write_all(r.as_bytes()) {
            sh.fail(format!("A: write: {e}"));
            return;
        }
    }
    o.stream = Some(s);
}

/// A's reader: the relay's 200 for the big chunk, and B's messages (answered).
fn a_reader(sh: &Shared, mut a: Peer, big_tid: &str, out: &Mutex<AOut>) {
    loop {
        if sh.aborted() {
            return;
        }
        if sh.big_ok.load(Ordering::SeqCst)
            && sh.senders_finished()
            && sh.a_got.load(Ordering::SeqCst) == sh.b_count.load(Ordering::SeqCst)
        {
            return;
        }
        if sh.late() {
            return sh.fail("A: the run's --duration passed before A got everything".into());
        }
        let f = match a.poll_frame() {
            Ok(Some(f)) => f,
            // Quiet is normal while B is still taking the big message in.
            Ok(None) => continue,
            Err(e) => return sh.fail(e),
        };
        let h = match f.head.parse() {
            Ok(h) => h,
            Err(e) => return sh.fail(format!("A: head does not parse: {e}")),
        };
        match (h.status_code(), h.method().map(|m| m.as_str())) {
            (Some(200), _) if h.tid() == big_tid => sh.big_ok.store(true, Ordering::SeqCst),
            (Some(code), _) => return sh.fail(format!("A: response {code} for {}", h.tid())),
            (None, Some("SEND")) if h.message_id().is_some_and(|m| m.starts_with("bm")) => {
                if f.body != [b'b'; SMALL] || f.flag != Flag::Complete {
                    return sh.fail(format!("A: B's message {} differs", h.tid()));
                }
                let r = response(h.tid(), h.from_path().first().as_str(), &a.me);
                let mut o = out.lock().unwrap();
                match o.stream.as_mut() {
                    Some(s) => {
                        if let Err(e) = s.write_all(r.as_bytes()) {
                            return sh.fail(format!("A: write: {e}"));
                        }
                    }
                    None => o.owed.push(r),
                }
                sh.a_got.fetch_add(1, Ordering::SeqCst);
            }
            (None, m) => {
                let st = String::from_utf8_lossy(h.as_bytes());
                return sh.fail(format!(
                    "A: unexpected {m:?}: {}",
                    st.lines().take(6).collect::<Vec<_>>().join(" | ")
                ));
            }
        }
    }
}

/// C's reader: the relay's 200s for C's messages.
fn c_reader(sh: &Shared, mut c: Peer) {
    loop {
        if sh.aborted() {
            return;
        }
        if sh.senders_finished()
            && sh.c_ok.load(Ordering::SeqCst) == sh.c_count.load(Ordering::SeqCst)
        {
            return;
        }
        if sh.late() {
            return sh.fail("C: the run's --duration passed before C got its 200s".into());
        }
        let f = match c.poll_frame() {
            Ok(Some(f)) => f,
            Ok(None) => continue,
            Err(e) => return sh.fail(e),
        };
        let (tid, status) = (
            String::from_utf8_lossy(f.head.tid()).into_owned(),
            f.head.status(),
        );
        if status != Some(200) || !sh.c_sent.lock().unwrap().contains_key(&tid) {
            let st = String::from_utf8_lossy(f.head.as_bytes()).into_owned();
            return sh.fail(format!(
                "C: unexpected frame: {}",
                st.lines().take(6).collect::<Vec<_>>().join(" | ")
            ));
        }
        sh.c_ok.fetch_add(1, Ordering::SeqCst);
    }
}

/// A small sender: one message every interval while the big message flows.
fn small_sender(
    sh: &Shared,
    prefix: char,
    to: &str,
    me: &str,
    sent: &Mutex<HashMap<String, Sent>>,
    count: &AtomicU64,
    mut write: impl FnMut(&[u8]) -> io::Result<()>,
) {
    let start = loop {
        if sh.aborted() || sh.stop.load(Ordering::SeqCst) || sh.late() {
            sh.senders_done.fetch_add(1, Ordering::SeqCst);
            return;
        }
        if sh.big_got.load(Ordering::SeqCst) >= (PIECE as u64).min(sh.big / 8) {
            break Instant::now();
        }
        thread::sleep(Duration::from_millis(1));
    };
    let mut seq = 0u32;
    while !sh.aborted() && !sh.stop.load(Ordering::SeqCst) && !sh.late() {
        let tid = format!("{prefix}{seq:07}");
        let m = small_send(&tid, &format!("{prefix}m{seq:07}"), to, me, prefix as u8);
        // Recorded before the write, so the receipt always finds it.
        sent.lock().unwrap().insert(
            tid.clone(),
            Sent {
                at: Instant::now(),
                big_at: sh.big_got.load(Ordering::SeqCst),
            },
        );
        if let Err(e) = write(&m) {
            sh.fail(format!("{prefix}: write: {e}"));
            break;
        }
        count.fetch_add(1, Ordering::SeqCst);
        seq += 1;
        let next = start + sh.interval * seq;
        let now = Instant::now();
        if next > now {
            thread::sleep(next - now);
        }
    }
    sh.senders_done.fetch_add(1, Ordering::SeqCst);
}

/// Bytes the kernel holds between the relay and B: the relay socket's send queue plus
/// B's receive queue (ahead of anything the relay queues for B), and the relay socket's
/// receive queue (what B sent that the relay has not read yet), from /proc/net/tcp
/// (ESTABLISHED sockets on loopback).
fn kernel_queues(relay: SocketAddr, b_local: SocketAddr) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/net/tcp").ok()?;
    let port_of = |a: &str| {
        a.split(':')
            .nth(1)
            .and_then(|p| u16::from_str_radix(p, 16).ok())
    };
    let mut tx = None;
    let mut rx = None;
    let mut unread = None;
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 5 || f[3] != "01" {
            continue;
        }
        let (l, r) = (port_of(f[1]), port_of(f[2]));
        let (t, q) = f[4].split_once(':')?;
        let (t, q) = (
            u64::from_str_radix(t, 16).ok()?,
            u64::from_str_radix(q, 16).ok()?,
        );
        if l == Some(relay.port()) && r == Some(b_local.port()) {
            tx = Some(t);
            unread = Some(q);
        } else if l == Some(b_local.port()) && r == Some(relay.port()) {
            rx = Some(q);
        }
    }
    Some((tx? + rx?, unread?))
}

fn sampler(sh: &Shared, relay: SocketAddr, b_local: SocketAddr) {
    while !sh.aborted() && !sh.late() && !sh.senders_finished() {
        thread::sleep(Duration::from_millis(50));
        if sh.senders_done.load(Ordering::SeqCst) > 0 || sh.c_count.load(Ordering::SeqCst) == 0 {
            continue;
        }
        if let Some((ahead, unread)) = kernel_queues(relay, b_local) {
            let _ = sh.ahead.lock().unwrap().record(ahead.max(1));
            let _ = sh.unread.lock().unwrap().record(unread.max(1));
        }
    }
}

/// B's read rate limit.
struct Bucket {
    rate: f64,
    tokens: f64,
    burst: f64,
    last: Instant,
}

impl Bucket {
    const MIN_READ: f64 = 16.0 * 1024.0;

    fn new(rate: f64) -> Bucket {
        // Bursts of 2 ms (at least 64 KiB): a late wake-up on a busy host loses little.
        let burst = (rate * 0.002).max(64.0 * 1024.0);
        Bucket {
            rate,
            tokens: 0.0,
            burst,
            last: Instant::now(),
        }
    }

    /// Waits until a read is allowed; returns how many bytes it may take.
    fn grant(&mut self) -> usize {
        loop {
            let now = Instant::now();
            self.tokens =
                (self.tokens + (now - self.last).as_secs_f64() * self.rate).min(self.burst);
            self.last = now;
            if self.tokens >= Self::MIN_READ {
                return (self.tokens as usize).min(READ_BUF);
            }
            thread::sleep(Duration::from_secs_f64(
                (Self::MIN_READ - self.tokens) / self.rate,
            ));
        }
    }

    fn spend(&mut self, n: usize) {
        self.tokens -= n as f64;
    }
}

/// What B's current frame is.
enum Kind {
    Big { tid: String, from: String },
    FromC { tid: String, from: String },
    Own200(Sent),
}

/// B's results.
struct BStats {
    c_wait: Histogram<u64>,
    c_bytes: Histogram<u64>,
    b_wait: Histogram<u64>,
    b_bytes: Histogram<u64>,
    pieces: u64,
    piece_bytes: Histogram<u64>,
    big_first: Option<Instant>,
    big_last: Option<Instant>,
    big_got: u64,
    c_got: u64,
    b_got: u64,
}

/// B's reader: the big message (checked in place), C's messages, and the relay's 200s
/// for B's own; answers every SEND piece.
fn b_reader(
    sh: &Shared,
    mut b: TcpStream,
    me: &str,
    out: &Mutex<TcpStream>,
    rate: Option<f64>,
) -> BStats {
    let pat = pattern();
    let mut st = BStats {
        c_wait: histogram(),
        c_bytes: histogram(),
        b_wait: histogram(),
        b_bytes: histogram(),
        pieces: 0,
        piece_bytes: histogram(),
        big_first: None,
        big_last: None,
        big_got: 0,
        c_got: 0,
        b_got: 0,
    };
    let mut bucket = rate.map(Bucket::new);
    let mut sc = Scanner::default();
    let mut buf = BytesMut::with_capacity(READ_BUF * 2);
    let mut tmp = vec![0u8; READ_BUF];
    let mut cur: Option<Kind> = None;
    let mut small_body = 0usize;
    let mut piece_start = 0u64;
    let mut got = 0u64;
    let mut big_done = false;
    let mut c_got = 0u64;
    let mut b_got = 0u64;
    let mut quiet_since = Instant::now();
    let answer = |tid: &str, to: &str| -> Result<(), String> {
        out.lock()
            .unwrap()
            .write_all(response(tid, to, me).as_bytes())
            .map_err(|e| format!("B: write: {e}"))
    };
    let mut step = || -> Result<bool, String> {
        if big_done
            && sh.senders_finished()
            && c_got == sh.c_count.load(Ordering::SeqCst)
            && b_got == sh.b_count.load(Ordering::SeqCst)
        {
            return Ok(true);
        }
        if sh.aborted() {
            return Ok(true);
        }
        if sh.late() {
            return Err(format!(
                "B: --duration passed with {got} of {} big bytes, {c_got} of C's messages, {b_got} 200s",
                sh.big
            ));
        }
        let lim = match bucket.as_mut() {
            Some(bk) => bk.grant(),
            None => READ_BUF,
        };
        let n = match b.read(&mut tmp[..lim]) {
            Ok(0) => return Err("B: the relay closed the connection".into()),
            Ok(n) => n,
            Err(e) if is_timeout(&e) => {
                if quiet_since.elapsed() > sh.read_timeout {
                    return Err(format!(
                        "B: nothing from the relay for {:?} ({got} of {} big bytes)",
                        sh.read_timeout, sh.big
                    ));
                }
                return Ok(false);
            }
            Err(e) => return Err(format!("B: read: {e}")),
        };
        quiet_since = Instant::now();
        if let Some(bk) = bucket.as_mut() {
            bk.spend(n);
        }
        buf.extend_from_slice(&tmp[..n]);
        while let Some(ev) = sc
            .next(&mut buf)
            .map_err(|e| format!("B: relay output does not scan: {e}"))?
        {
            match ev {
                Event::Head(h) => {
                    let p = h
                        .parse()
                        .map_err(|e| format!("B: head does not parse: {e}"))?;
                    let tid = p.tid().to_string();
                    let kind = match (p.method().map(|m| m.as_str()), p.message_id()) {
                        (Some("SEND"), Some(BIG_MID)) => {
                            let r = p.byte_range().ok_or("B: big piece without Byte-Range")?;
                            if r.start != got + 1 || r.end.is_some() || r.total != Some(sh.big) {
                                return Err(format!(
                                    "B: big piece {tid} has Byte-Range {}-{:?}/{:?} after {got} bytes",
                                    r.start, r.end, r.total
                                ));
                            }
                            st.big_first.get_or_insert_with(Instant::now);
                            st.pieces += 1;
                            piece_start = got;
                            Kind::Big {
                                tid: tid.clone(),
                                from: p.from_path().first().as_str().to_string(),
                            }
                        }
                        (Some("SEND"), Some(m)) if m.starts_with("cm") => Kind::FromC {
                            tid: format!("c{}", &m[2..]),
                            from: p.from_path().first().as_str().to_string(),
                        },
                        (None, _) if p.status_code() == Some(200) => {
                            let s = sh.b_sent.lock().unwrap().get(&tid).copied();
                            Kind::Own200(s.ok_or_else(|| format!("B: 200 for unknown {tid}"))?)
                        }
                        _ => {
                            let t = String::from_utf8_lossy(h.as_bytes()).into_owned();
                            return Err(format!(
                                "B: unexpected frame: {}",
                                t.lines().take(8).collect::<Vec<_>>().join(" | ")
                            ));
                        }
                    };
                    // The C message's key is its tid on C's side (c0000001); the relay
                    // gives it a tid of its own towards B.
                    cur = Some(match kind {
                        Kind::FromC { tid: key, from } => {
                            small_body = 0;
                            Kind::FromC {
                                tid: format!("{tid} {key}"),
                                from,
                            }
                        }
                        k => k,
                    });
                }
                Event::Body(piece) => match cur.as_ref() {
                    Some(Kind::Big { .. }) => {
                        let mut off = 0;
                        while off < piece.len() {
                            let at = ((got + off as u64) % 251) as usize;
                            let n = (piece.len() - off).min(PIECE);
                            if piece[off..off + n] != pat[at..at + n] {
                                return Err(format!(
                                    "B: big body differs near byte {}",
                                    got + off as u64
                                ));
                            }
                            off += n;
                        }
                        got += piece.len() as u64;
                        sh.big_got.store(got, Ordering::SeqCst);
                    }
                    Some(Kind::FromC { .. }) => {
                        if piece.iter().any(|&x| x != b'c') {
                            return Err("B: C's message body differs".into());
                        }
                        small_body += piece.len();
                    }
                    _ => return Err("B: body outside a SEND".into()),
                },
                Event::End(flag) => {
                    let now = Instant::now();
                    match cur.take() {
                        Some(Kind::Big { tid, from }) => {
                            st.piece_bytes.record((got - piece_start).max(1)).ok();
                            answer(&tid, &from)?;
                            match flag {
                                Flag::Complete => {
                                    if got != sh.big {
                                        return Err(format!(
                                            "B: the big message ended after {got} of {} bytes",
                                            sh.big
                                        ));
                                    }
                                    big_done = true;
                                    st.big_last = Some(now);
                                    sh.stop.store(true, Ordering::SeqCst);
                                }
                                Flag::Continued => {}
                                Flag::Aborted => {
                                    return Err("B: the big message was aborted".into());
                                }
                            }
                            if got >= sh.big - sh.big / 8 {
                                sh.stop.store(true, Ordering::SeqCst);
                            }
                        }
                        Some(Kind::FromC { tid, from }) => {
                            let (relay_tid, key) = tid.split_once(' ').unwrap_or((&tid, ""));
                            if small_body != SMALL || flag != Flag::Complete {
                                return Err(format!(
                                    "B: C's message {key} arrived short or unfinished"
                                ));
                            }
                            let s = sh.c_sent.lock().unwrap().get(key).copied();
                            let s =
                                s.ok_or_else(|| format!("B: C's message {key} was never sent"))?;
                            st.c_wait.record(micros(now - s.at)).ok();
                            st.c_bytes.record((got - s.big_at).max(1)).ok();
                            c_got += 1;
                            answer(relay_tid, &from)?;
                        }
                        Some(Kind::Own200(s)) => {
                            st.b_wait.record(micros(now - s.at)).ok();
                            st.b_bytes.record((got - s.big_at).max(1)).ok();
                            b_got += 1;
                        }
                        None => return Err("B: end-line without head".into()),
                    }
                }
            }
        }
        Ok(false)
    };
    loop {
        match step() {
            Ok(true) => break,
            Ok(false) => {}
            Err(e) => {
                sh.fail(e);
                break;
            }
        }
    }
    (st.big_got, st.c_got, st.b_got) = (got, c_got, b_got);
    st
}

fn micros(d: Duration) -> u64 {
    (d.as_micros() as u64).max(1)
}

fn main() -> ExitCode {
    let args = Args::parse();
    if !args.relay.ip().is_loopback() {
        eprintln!(
            "msrpd-fairness: --relay must be a loopback address, not {}",
            args.relay
        );
        return ExitCode::from(2);
    }
    if args.big_mib == 0 || args.interval_ms == 0 {
        eprintln!("msrpd-fairness: --big-mib and --interval-ms must be above 0");
        return ExitCode::from(2);
    }
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("msrpd-fairness: {e}");
            ExitCode::FAILURE
        }
    }
}

fn read_sysctl(name: &str) -> String {
    std::fs::read_to_string(format!("/proc/sys/net/ipv4/{name}"))
        .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Quantiles of a histogram: p50, p99, max.
fn q3(h: &Histogram<u64>) -> [u64; 3] {
    if h.is_empty() {
        return [0; 3];
    }
    [h.value_at_quantile(0.5), h.value_at_quantile(0.99), h.max()]
}

fn run(args: &Args) -> Result<bool, String> {
    let relay_uri = format!("msrp://{};tcp", args.relay);
    let big = args.big_mib << 20;
    let rate = args.rate_mbps.filter(|r| *r > 0.0).map(|r| r * 1e6);
    let read_timeout = Duration::from_secs_f64(args.read_timeout);
    let connect = |name, port| {
        Peer::connect(args.relay, name, port)
            .map_err(|e| format!("{name}: connect {}: {e}", args.relay))
    };
    let mut b = connect("bob", 2222)?;
    let rb = b.auth(&relay_uri)?;
    let mut a = connect("alice", 1111)?;
    let ra = a.auth(&relay_uri)?;
    let mut c = connect("carol", 3333)?;
    c.auth(&relay_uri)?;
    if !b.buf.is_empty() {
        return Err("B: bytes after the AUTH response".into());
    }
    let b_local = b.stream.local_addr().map_err(|e| e.to_string())?;
    let clone = |p: &Peer| -> Result<TcpStream, String> {
        let s = p.stream.try_clone().map_err(|e| e.to_string())?;
        s.set_write_timeout(Some(read_timeout))
            .map_err(|e| e.to_string())?;
        Ok(s)
    };
    let (a_w, mut c_w, b_w) = (clone(&a)?, clone(&c)?, clone(&b)?);
    let stoppers = [clone(&a)?, clone(&b)?, clone(&c)?];

    let big_tid = "bigchunk01";
    let head = format!(
        "MSRP {big_tid} SEND\r\nTo-Path: {rb} {}\r\nFrom-Path: {}\r\nMessage-ID: {BIG_MID}\r\n\
         Byte-Range: 1-*/{big}\r\nContent-Type: application/octet-stream\r\n\r\n",
        b.me, a.me
    );
    let end = format!("\r\n-------{big_tid}$\r\n");
    let (to_b, to_a) = (format!("{rb} {}", b.me), format!("{ra} {}", a.me));
    let (b_me, c_me) = (b.me.clone(), c.me.clone());
    let sh = Shared {
        deadline: Instant::now() + Duration::from_secs_f64(args.duration),
        read_timeout,
        interval: Duration::from_millis(args.interval_ms),
        big,
        big_got: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        senders_done: AtomicU64::new(0),
        abort: AtomicBool::new(false),
        errors: Mutex::new(Vec::new()),
        c_sent: Mutex::new(HashMap::new()),
        b_sent: Mutex::new(HashMap::new()),
        c_count: AtomicU64::new(0),
        b_count: AtomicU64::new(0),
        a_got: AtomicU64::new(0),
        c_ok: AtomicU64::new(0),
        big_ok: AtomicBool::new(false),
        ahead: Mutex::new(histogram()),
        unread: Mutex::new(histogram()),
    };
    let out_a = Mutex::new(AOut {
        stream: None,
        owed: Vec::new(),
    });
    let out_b = Mutex::new(b_w);
    let b_stream = b.stream.try_clone().map_err(|e| e.to_string())?;
    let st = thread::scope(|s| {
        s.spawn(|| a_writer(&sh, a_w, head, end, &out_a));
        s.spawn(|| a_reader(&sh, a, big_tid, &out_a));
        s.spawn(|| c_reader(&sh, c));
        s.spawn(|| {
            small_sender(&sh, 'c', &to_b, &c_me, &sh.c_sent, &sh.c_count, |m| {
                c_w.write_all(m)
            })
        });
        s.spawn(|| {
            small_sender(&sh, 'b', &to_a, &b_me, &sh.b_sent, &sh.b_count, |m| {
                out_b.lock().unwrap().write_all(m)
            })
        });
        s.spawn(|| sampler(&sh, args.relay, b_local));
        let st = b_reader(&sh, b_stream, &b_me, &out_b, rate);
        if sh.aborted() {
            // Unblock the others at once.
            for x in &stoppers {
                let _ = x.shutdown(std::net::Shutdown::Both);
            }
        }
        st
    });
    drop(b);

    let b_rcvbuf = socket2::SockRef::from(&*out_b.lock().unwrap())
        .recv_buffer_size()
        .unwrap_or(0);
    let errors = sh.errors.lock().unwrap().clone();
    let (c_sent, b_sent) = (
        sh.c_count.load(Ordering::SeqCst),
        sh.b_count.load(Ordering::SeqCst),
    );
    let lost = (c_sent - st.c_got.min(c_sent)) + (b_sent - st.b_got.min(b_sent));
    let big_secs = match (st.big_first, st.big_last) {
        (Some(f), Some(l)) => (l - f).as_secs_f64(),
        _ => 0.0,
    };
    let big_rate = if big_secs > 0.0 {
        big as f64 / big_secs
    } else {
        0.0
    };
    let ahead = sh.ahead.lock().unwrap().clone();
    let [ahead50, _, ahead_max] = q3(&ahead);
    let unread = sh.unread.lock().unwrap().clone();
    let [unread50, _, unread_max] = q3(&unread);
    // What a small message should wait: the kernel's bytes ahead of it, drained at B's rate.
    let expect_ms = if big_rate > 0.0 {
        ahead50 as f64 / big_rate * 1e3
    } else {
        0.0
    };
    let (cw, cb, bw, bb) = (
        q3(&st.c_wait),
        q3(&st.c_bytes),
        q3(&st.b_wait),
        q3(&st.b_bytes),
    );
    let ok = errors.is_empty() && lost == 0 && st.big_got == big && st.pieces >= 1;
    let ms = |us: u64| us as f64 / 1e3;
    let kib = |b: u64| b as f64 / 1024.0;
    if args.json {
        let lat = |w: [u64; 3], b: [u64; 3], n: u64| {
            serde_json::json!({
                "n": n,
                "wait_ms": {"p50": ms(w[0]), "p99": ms(w[1]), "max": ms(w[2])},
                "big_bytes_between": {"p50": b[0], "p99": b[1], "max": b[2]},
            })
        };
        let j = serde_json::json!({
            "relay": args.relay.to_string(),
            "big_bytes": big,
            "big_received": st.big_got,
            "rate_cap_mbps": args.rate_mbps.filter(|r| *r > 0.0),
            "big_mbps": big_rate / 1e6,
            "big_secs": big_secs,
            "big_pieces": st.pieces,
            "piece_bytes_p50": q3(&st.piece_bytes)[0],
            "interval_ms": args.interval_ms,
            "c_to_b": lat(cw, cb, st.c_got),
            "b_own_200": lat(bw, bb, st.b_got),
            "kernel_ahead_bytes": {"p50": ahead50, "max": ahead_max, "samples": ahead.len()},
            "relay_unread_from_b_bytes": {"p50": unread50, "max": unread_max},
            "b_so_rcvbuf": b_rcvbuf,
            "tcp_rmem": read_sysctl("tcp_rmem"),
            "tcp_wmem": read_sysctl("tcp_wmem"),
            "expected_wait_ms": expect_ms,
            "c_sent": c_sent,
            "b_sent": b_sent,
            "lost": lost,
            "errors": errors,
            "ok": ok,
        });
        println!("{j}");
    } else {
        let cap = match args.rate_mbps.filter(|r| *r > 0.0) {
            Some(r) => format!("{r} MB/s"),
            None => "no cap".into(),
        };
        println!(
            "{} MiB to B ({cap}): {:.1} MB/s, {big_secs:.2} s, {} pieces (median {:.0} KiB)",
            args.big_mib,
            big_rate / 1e6,
            st.pieces,
            kib(q3(&st.piece_bytes)[0])
        );
        println!(
            "{:<22} {:>6} {:>10} {:>10} {:>10} {:>12} {:>12} {:>12}",
            "", "n", "wait p50", "p99", "max", "big KiB p50", "p99", "max"
        );
        for (name, n, w, b) in [
            ("C -> B, 1 KiB", st.c_got, cw, cb),
            ("B's SEND -> its 200", st.b_got, bw, bb),
        ] {
            println!(
                "{name:<22} {n:>6} {:>8.2}ms {:>8.2}ms {:>8.2}ms {:>12.0} {:>12.0} {:>12.0}",
                ms(w[0]),
                ms(w[1]),
                ms(w[2]),
                kib(b[0]),
                kib(b[1]),
                kib(b[2])
            );
        }
        println!(
            "kernel bytes relay -> B (relay Send-Q + B Recv-Q, {} samples): p50 {:.0} KiB, max {:.0} KiB; B SO_RCVBUF {:.0} KiB; tcp_wmem {}; tcp_rmem {}",
            ahead.len(),
            kib(ahead50),
            kib(ahead_max),
            kib(b_rcvbuf as u64),
            read_sysctl("tcp_wmem"),
            read_sysctl("tcp_rmem")
        );
        println!(
            "bytes from B the relay had not read yet (its Recv-Q): p50 {unread50} B, max {unread_max} B"
        );
        println!("expected wait (kernel bytes p50 / B's rate): {expect_ms:.2} ms");
        println!("sent: C {c_sent}, B {b_sent}; lost {lost}");
        for e in &errors {
            println!("error: {e}");
        }
    }
    if !ok {
        eprintln!(
            "msrpd-fairness: FAILED ({} errors, {lost} lost, big message {} of {big} bytes)",
            errors.len(),
            st.big_got
        );
    }
    Ok(ok)
}
