//! One bench thread and its sender/receiver pairs.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::poll_fn;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Barrier, Mutex};
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use md5::Digest;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt, Splitable};
use msrpd::codec::{Challenge, Event, Flag, Head, Method, Scanner};

use crate::stream::Conn;
use crate::{Shared, Stats, Topology};

pub type Window = Arc<Mutex<Option<(Instant, Instant)>>>;

/// Runs one bench thread: set up its pairs, wait for the start, drive them, return stats.
pub fn thread_main(
    shared: Arc<Shared>,
    pairs: Vec<usize>,
    cpu: Option<usize>,
    gate: Arc<Barrier>,
    times: Window,
) -> Stats {
    let fut = thread_async(shared, pairs, gate.clone(), times);
    on_runtime(cpu, gate, fut)
}

/// Runs `fut` (one bench thread's work) on a monoio runtime of its own, pinned to `cpu`
/// when given; a runtime that cannot start is reported as an error (after passing the
/// start gate, so the other threads are not held).
pub fn on_runtime(
    cpu: Option<usize>,
    gate: Arc<Barrier>,
    fut: impl std::future::Future<Output = Stats>,
) -> Stats {
    if let Some(c) = cpu {
        core_affinity::set_for_current(core_affinity::CoreId { id: c });
    }
    let res = if monoio::utils::detect_uring()
        && std::env::var_os("MONOIO_FORCE_LEGACY_DRIVER").is_none()
    {
        msrpd::server::runtime::uring_runtime(4096, msrpd::server::runtime::modes_from_env())
            .map(|(mut rt, _)| rt.block_on(fut))
    } else {
        monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .map(|mut rt| rt.block_on(fut))
    };
    match res {
        Ok(s) => s,
        Err(e) => {
            gate.wait();
            let mut s = Stats::new();
            s.errors = 1;
            s.error_samples.push(format!("runtime: {e}"));
            s
        }
    }
}

struct Pair {
    idx: usize,
    sender: Conn,
    receiver: Conn,
    to_path: String,
    me_r: String,
}

/// State one pair's three tasks share.
struct PairState {
    /// Send (or intended send) times of undelivered messages, oldest first.
    inflight: RefCell<VecDeque<Instant>>,
    /// Send times of chunks awaiting their 200, oldest first.
    chunks: RefCell<VecDeque<Instant>>,
    waker: RefCell<Option<Waker>>,
    dead: Cell<bool>,
    /// Where the receiver is: message number and byte offset (for loss reports).
    at: Cell<(u64, usize)>,
}

impl PairState {
    fn wake(&self) {
        if let Some(w) = self.waker.borrow_mut().take() {
            w.wake();
        }
    }
}

async fn thread_async(
    shared: Arc<Shared>,
    pairs: Vec<usize>,
    gate: Arc<Barrier>,
    times: Window,
) -> Stats {
    let stats = Rc::new(RefCell::new(Stats::new()));
    let per_pair = Duration::from_secs_f64(shared.args.setup_timeout * 2.0 / 3.0);
    // At most --setup-concurrency pairs per thread set up at once, so each connection
    // AUTHs soon after it connects: with every connect issued first, a slow host (a
    // 100k-connection run under emulation) takes longer than the relay's probation
    // (RFC 4976 §6.1, 30 s) to get round to the first AUTH, and the relay rightly closes
    // every connection.
    let queue = Rc::new(RefCell::new(pairs.into_iter()));
    let mut setups = Vec::new();
    for _ in 0..shared.args.setup_concurrency {
        let (sh, queue, stats) = (shared.clone(), queue.clone(), stats.clone());
        setups.push(monoio::spawn(async move {
            let mut ready = Vec::new();
            // No new pairs once the run is given up (a setup error or the budget spent).
            while !sh.stop.load(Ordering::Acquire) {
                let next = queue.borrow_mut().next();
                let Some(idx) = next else { break };
                match monoio::time::timeout(per_pair, setup_pair(&sh, idx)).await {
                    Ok(Ok(p)) => {
                        sh.ready_pairs.fetch_add(1, Ordering::AcqRel);
                        ready.push(p);
                    }
                    Ok(Err(e)) => error(&sh, &stats, e),
                    Err(_) => error(&sh, &stats, format!("pair {idx}: setup timed out")),
                }
            }
            ready
        }));
    }
    let mut ready = Vec::new();
    for s in setups {
        ready.extend(s.await);
    }
    gate.wait();
    let Some((from, to)) = *times.lock().expect("times lock") else {
        return stats.take();
    };
    let mut runs = Vec::new();
    for p in ready {
        runs.push(monoio::spawn(run_pair(
            shared.clone(),
            p,
            from,
            to,
            stats.clone(),
        )));
    }
    for r in runs {
        r.await;
    }
    stats.take()
}

pub fn error(shared: &Shared, stats: &Rc<RefCell<Stats>>, e: String) {
    shared.errors.fetch_add(1, Ordering::Relaxed);
    let mut s = stats.borrow_mut();
    s.errors += 1;
    if s.error_samples.len() < 10 {
        s.error_samples.push(e);
    }
}

async fn setup_pair(sh: &Shared, idx: usize) -> Result<Pair, String> {
    let a = &sh.args;
    let me_r = format!("msrp://127.0.0.1:9/r{idx:06x};tcp");
    let me_s = format!("msrp://127.0.0.1:9/s{idx:06x};tcp");
    let mut receiver =
        Conn::connect(a.relay, sh.tls.as_ref(), a.local_addr(2 * idx), !a.nagle).await?;
    if a.pair_hello {
        hello(&mut receiver, idx).await?;
    }
    let mut sender = Conn::connect(
        a.relay,
        sh.tls.as_ref(),
        a.local_addr(2 * idx + 1),
        !a.nagle,
    )
    .await?;
    if a.pair_hello {
        hello(&mut sender, idx).await?;
    }
    let to_path = if a.no_auth {
        format!("{} {me_r}", sh.relay_uri)
    } else {
        let r_path = auth(sh, &mut receiver, &me_r).await?;
        match a.topology {
            Topology::One => format!("{r_path} {me_r}"),
            Topology::Full => {
                let s_path = auth(sh, &mut sender, &me_s).await?;
                format!("{s_path} {r_path} {me_r}")
            }
        }
    };
    Ok(Pair {
        idx,
        sender,
        receiver,
        to_path,
        me_r,
    })
}

async fn hello(s: &mut Conn, idx: usize) -> Result<(), String> {
    let (r, _) = s.write_all(format!("PAIR {idx}\r\n").into_bytes()).await;
    r.map(|_| ()).map_err(|e| format!("hello: {e}"))
}

/// Reads one whole bodiless frame (an AUTH response) during setup.
pub async fn read_head(
    s: &mut Conn,
    buf: &mut BytesMut,
    sc: &mut Scanner,
) -> Result<bytes::Bytes, String> {
    let mut head = None;
    loop {
        while let Some(ev) = sc
            .next(buf)
            .map_err(|e| format!("bad frame from relay: {e}"))?
        {
            match ev {
                Event::Head(h) => head = Some(h.bytes().clone()),
                Event::Body(_) => {}
                Event::End(_) => return head.ok_or_else(|| "end without head".to_string()),
            }
        }
        buf.reserve(4096);
        let (len, cap) = (buf.len(), buf.capacity());
        let (r, b) = s
            .read(monoio::buf::IoBufMut::slice_mut(
                std::mem::take(buf),
                len..cap,
            ))
            .await;
        *buf = b.into_inner();
        match r {
            Ok(0) => return Err("relay closed the connection during AUTH".into()),
            Ok(_) => {}
            Err(e) => return Err(format!("read: {e}")),
        }
    }
}

fn hex(d: &[u8]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

fn digest(alg: &str, s: &str) -> String {
    if alg.eq_ignore_ascii_case("SHA-256") {
        hex(&sha2::Sha256::digest(s.as_bytes()))
    } else {
        hex(&md5::Md5::digest(s.as_bytes()))
    }
}

/// AUTH (RFC 4976 §5.1), answering a digest challenge when credentials are given.
async fn auth(sh: &Shared, s: &mut Conn, me: &str) -> Result<String, String> {
    let mut buf = BytesMut::with_capacity(4096);
    let mut sc = Scanner::default();
    let mut authz: Option<String> = None;
    for attempt in 0..2u64 {
        let tid = format!("auth{attempt:04x}{:08x}", rand::random::<u32>());
        let mut m = format!(
            "MSRP {tid} AUTH\r\nTo-Path: {}\r\nFrom-Path: {me}\r\n",
            sh.relay_uri
        );
        if let Some(a) = &authz {
            m.push_str(&format!("Authorization: {a}\r\n"));
        }
        if let Some(e) = sh.args.expires {
            m.push_str(&format!("Expires: {e}\r\n"));
        }
        m.push_str(&format!("-------{tid}$\r\n"));
        let (r, _) = s.write_all(m.into_bytes()).await;
        r.map_err(|e| format!("write AUTH: {e}"))?;
        let raw = read_head(s, &mut buf, &mut sc).await?;
        let head = Head::parse(&raw).map_err(|e| format!("bad AUTH response: {e}"))?;
        match head.status_code() {
            Some(200) => {
                // The session dies at its expiry (we never refresh): say so up front
                // instead of failing with 481s at the end of a long run.
                let run = sh.args.warmup + sh.args.duration + sh.args.drain;
                if let Some(granted) = head.expires()
                    && f64::from(granted) < run
                    && !sh.expiry_warned.swap(true, Ordering::Relaxed)
                {
                    eprintln!(
                        "msrpd-bench: warning: the relay granted sessions of {granted} s, shorter than this run ({run:.0} s); messages after that get 481 (ask for more with --expires)"
                    );
                }
                return head
                    .use_path()
                    .map(|p| p.as_str().to_string())
                    .ok_or_else(|| "200 to AUTH without Use-Path".to_string());
            }
            Some(401) if authz.is_none() => {
                let (Some(user), Some(pass)) = (&sh.args.user, &sh.args.password) else {
                    return Err("relay wants digest credentials: give --user and --password".into());
                };
                // Prefer MD5 when offered (every relay has it), else SHA-256.
                let mut chosen: Option<Challenge<'_>> = None;
                for h in head
                    .headers()
                    .filter(|h| h.name.eq_ignore_ascii_case("WWW-Authenticate"))
                {
                    if let Ok(c) = Challenge::parse(h.value) {
                        let md5 = c.algorithm.is_none_or(|a| a.eq_ignore_ascii_case("MD5"));
                        if chosen.is_none() || md5 {
                            chosen = Some(c);
                        }
                    }
                }
                let c = chosen.ok_or("401 without a usable WWW-Authenticate")?;
                let alg = c.algorithm.unwrap_or("MD5");
                let cnonce = format!("{:016x}", rand::random::<u64>());
                let nc = "00000001";
                let ha1 = digest(alg, &format!("{user}:{}:{pass}", c.realm));
                let ha2 = digest(alg, &format!("AUTH:{}", sh.relay_uri));
                let resp = digest(alg, &format!("{ha1}:{}:{nc}:{cnonce}:auth:{ha2}", c.nonce));
                authz = Some(format!(
                    "Digest username=\"{user}\", realm=\"{}\", nonce=\"{}\", uri=\"{}\", qop=auth, nc={nc}, cnonce=\"{cnonce}\", response=\"{resp}\", algorithm={alg}",
                    c.realm, c.nonce, sh.relay_uri
                ));
            }
            Some(code) => return Err(format!("AUTH refused with {code}")),
            None => return Err("a request instead of the AUTH response".into()),
        }
    }
    Err("AUTH refused after the digest answer".into())
}

pub fn in_window(t: Instant, from: Instant, to: Instant) -> bool {
    t >= from && t < to
}

async fn run_pair(sh: Arc<Shared>, p: Pair, from: Instant, to: Instant, stats: Rc<RefCell<Stats>>) {
    let st = Rc::new(PairState {
        inflight: RefCell::new(VecDeque::new()),
        chunks: RefCell::new(VecDeque::new()),
        waker: RefCell::new(None),
        dead: Cell::new(false),
        at: Cell::new((0, 0)),
    });
    let s_fd = p.sender.as_raw_fd();
    let r_fd = p.receiver.as_raw_fd();
    let (s_rd, s_wr) = p.sender.into_split();
    let (r_rd, r_wr) = p.receiver.into_split();
    monoio::spawn(receiver(
        sh.clone(),
        p.idx,
        p.me_r.clone(),
        r_rd,
        r_wr,
        st.clone(),
        stats.clone(),
        from,
        to,
    ));
    monoio::spawn(acks(sh.clone(), s_rd, st.clone(), stats.clone(), from, to));
    // The write half stays open through the drain: dropping it would half-close.
    let mut s_wr = s_wr;
    sender(&sh, p.idx, &p.to_path, &mut s_wr, &st, &stats).await;
    // Drain: wait for messages in flight.
    let deadline = Instant::now() + Duration::from_secs_f64(sh.args.drain);
    while !st.inflight.borrow().is_empty() && !st.dead.get() && Instant::now() < deadline {
        monoio::time::sleep(Duration::from_millis(10)).await;
    }
    let lost = st.inflight.borrow().len() as u64;
    if lost > 0 {
        let mut s = stats.borrow_mut();
        s.lost += lost;
        if s.error_samples.len() < 10 {
            let (seq, off) = st.at.get();
            s.error_samples.push(format!(
                "pair {}: {lost} messages not delivered (receiver at message {seq}, byte {off})",
                p.idx
            ));
        }
        sh.errors.fetch_add(1, Ordering::Relaxed);
    }
    st.dead.set(true);
    for fd in [s_fd, r_fd] {
        // SAFETY: both sockets are still open: their read halves are held by the
        // receiver and ack tasks, which only end after this wakes them.
        unsafe {
            libc::shutdown(fd, libc::SHUT_RDWR);
        }
    }
}

/// Body bytes of message `seq`: the shared pattern, shifted per message.
fn body_of(sh: &Shared, seq: u64) -> &[u8] {
    let shift = (seq.wrapping_mul(7) % 4096) as usize;
    &sh.pattern[shift..shift + sh.args.size]
}

async fn sender<W: AsyncWriteRentExt>(
    sh: &Shared,
    idx: usize,
    to_path: &str,
    wr: &mut W,
    st: &PairState,
    stats: &Rc<RefCell<Stats>>,
) {
    let a = &sh.args;
    let me = format!("msrp://127.0.0.1:9/s{idx:06x};tcp");
    let interval = a.rate.map(|r| Duration::from_secs_f64(a.pairs as f64 / r));
    // Spread the pairs' send times over one interval instead of bursting together.
    let mut next_at = Instant::now()
        + interval.map_or(Duration::ZERO, |iv| iv.mul_f64(idx as f64 / a.pairs as f64));
    let mut buf: Vec<u8> = Vec::with_capacity(a.chunk.min(a.size) + 512);
    let mut seq: u64 = 0;
    let mut tid_n: u64 = 0;
    while !sh.stop.load(Ordering::Acquire) && !st.dead.get() {
        let t_send = match interval {
            Some(iv) => {
                let now = Instant::now();
                if next_at > now {
                    monoio::time::sleep(next_at - now).await;
                }
                let t = next_at;
                next_at += iv;
                if st.inflight.borrow().len() > 100_000 {
                    error(
                        sh,
                        stats,
                        format!(
                            "pair {idx}: over 100000 messages undelivered, relay cannot keep up"
                        ),
                    );
                    return;
                }
                t
            }
            None => {
                let wait = poll_fn(|cx| {
                    if st.inflight.borrow().len() < a.window || st.dead.get() {
                        Poll::Ready(())
                    } else {
                        *st.waker.borrow_mut() = Some(cx.waker().clone());
                        Poll::Pending
                    }
                });
                if monoio::time::timeout(Duration::from_millis(100), wait)
                    .await
                    .is_err()
                {
                    continue; // recheck stop
                }
                Instant::now()
            }
        };
        st.inflight.borrow_mut().push_back(t_send);
        let body = body_of(sh, seq);
        let mut off = 0;
        while off < a.size {
            let end = (off + a.chunk).min(a.size);
            tid_n += 1;
            let tid = format!("b{idx:05x}{tid_n:010x}");
            let flag = if end == a.size {
                Flag::Complete
            } else {
                Flag::Continued
            };
            buf.clear();
            buf.extend_from_slice(
                format!(
                    "MSRP {tid} SEND\r\nTo-Path: {to_path}\r\nFrom-Path: {me}\r\nMessage-ID: m{idx:05x}{seq:010x}\r\nByte-Range: {}-{end}/{}\r\nContent-Type: application/octet-stream\r\n\r\n",
                    off + 1,
                    a.size
                )
                .as_bytes(),
            );
            let head_len = buf.len();
            buf.extend_from_slice(&body[off..end]);
            let body_end = buf.len();
            buf.extend_from_slice(format!("\r\n-------{tid}").as_bytes());
            buf.push(flag.as_byte());
            buf.extend_from_slice(b"\r\n");
            st.chunks.borrow_mut().push_back(Instant::now());
            // Split: the same bytes in three writes (head, body, end-line).
            let cuts = match a.writes {
                crate::Writes::Batched => vec![buf.len()],
                crate::Writes::Split => vec![head_len, body_end, buf.len()],
            };
            let mut from = 0;
            for cut in cuts {
                let piece = buf[from..cut].to_vec();
                from = cut;
                if piece.is_empty() {
                    continue;
                }
                let (r, _) = wr.write_all(piece).await;
                if let Err(e) = r {
                    error(sh, stats, format!("pair {idx}: write: {e}"));
                    st.dead.set(true);
                    return;
                }
            }
            off = end;
        }
        seq += 1;
    }
}

#[allow(clippy::too_many_arguments)]
async fn receiver<R: AsyncReadRent, W: AsyncWriteRentExt>(
    sh: Arc<Shared>,
    idx: usize,
    me: String,
    mut rd: R,
    mut wr: W,
    st: Rc<PairState>,
    stats: Rc<RefCell<Stats>>,
    from: Instant,
    to: Instant,
) {
    let size = sh.args.size;
    // Small while quiet, 256 KiB while reads fill it (many idle pairs stay cheap).
    let mut buf = BytesMut::with_capacity(8 * 1024);
    let mut busy = false;
    let mut sc = Scanner::default();
    let mut out: Vec<u8> = Vec::with_capacity(4096);
    let mut seq: u64 = 0;
    let mut off: usize = 0;
    let mut cur: Option<(String, String)> = None;
    let fail = |e: String| error(&sh, &stats, format!("pair {idx} receiver: {e}"));
    loop {
        if buf.is_empty() && !busy && buf.capacity() > 8 * 1024 {
            buf = BytesMut::with_capacity(8 * 1024);
        }
        if buf.capacity() - buf.len() < 4 * 1024 || (busy && buf.capacity() - buf.len() < 64 * 1024)
        {
            buf.reserve(if busy { 256 * 1024 } else { 8 * 1024 });
        }
        let (len, cap) = (buf.len(), buf.capacity());
        let (r, b) = rd
            .read(monoio::buf::IoBufMut::slice_mut(buf, len..cap))
            .await;
        buf = b.into_inner();
        match r {
            Ok(0) | Err(_) => {
                if !st.dead.get() && !sh.stop.load(Ordering::Acquire) {
                    fail("relay closed the connection".into());
                }
                st.dead.set(true);
                st.wake();
                return;
            }
            Ok(n) => busy = n == cap - len,
        }
        loop {
            let ev = match sc.next(&mut buf) {
                Ok(Some(ev)) => ev,
                Ok(None) => break,
                Err(e) => {
                    fail(format!("malformed frame: {e}"));
                    st.dead.set(true);
                    st.wake();
                    return;
                }
            };
            match ev {
                Event::Head(raw) => {
                    let head = match raw.parse() {
                        Ok(h) => h,
                        Err(e) => {
                            fail(format!("bad head: {e}"));
                            continue;
                        }
                    };
                    match head.method() {
                        Some(Method::Send) => {}
                        Some(m) => {
                            fail(format!(
                                "unexpected {} (status {:?})",
                                m.as_str(),
                                head.status().map(|s| s.code)
                            ));
                            continue;
                        }
                        None => continue,
                    }
                    let want = format!("m{idx:05x}{seq:010x}");
                    if head.message_id() != Some(want.as_str()) {
                        fail(format!(
                            "expected Message-ID {want}, got {:?}",
                            head.message_id()
                        ));
                    }
                    let start = head.byte_range().map_or(0, |r| r.start);
                    if start != off as u64 + 1 {
                        fail(format!(
                            "chunk out of order: Byte-Range start {start}, expected {}",
                            off + 1
                        ));
                    }
                    cur = Some((
                        head.tid().to_string(),
                        head.from_path().first().as_str().to_string(),
                    ));
                }
                Event::Body(b) => {
                    let expect = body_of(&sh, seq);
                    if off + b.len() > size || b[..] != expect[off..off + b.len()] {
                        fail(format!("body mismatch at offset {off} of message {seq}"));
                    }
                    off += b.len();
                    st.at.set((seq, off));
                }
                Event::End(flag) => {
                    if let Some((tid, prev)) = cur.take() {
                        out.extend_from_slice(
                            format!("MSRP {tid} 200 OK\r\nTo-Path: {prev}\r\nFrom-Path: {me}\r\n-------{tid}$\r\n").as_bytes(),
                        );
                        // Split: each 200 in a write of its own.
                        if sh.args.writes == crate::Writes::Split
                            && !flush_responses(&mut wr, &mut out, &st).await
                        {
                            return;
                        }
                    }
                    match flag {
                        Flag::Complete => {
                            if off != size {
                                fail(format!("message {seq} ended at {off} of {size} bytes"));
                            }
                            let now = Instant::now();
                            let sent = st.inflight.borrow_mut().pop_front();
                            if let Some(t) = sent
                                && in_window(now, from, to)
                            {
                                let mut s = stats.borrow_mut();
                                let _ = s
                                    .delivery
                                    .record(now.duration_since(t).as_nanos().max(1) as u64);
                                s.delivered += 1;
                                s.delivered_bytes += size as u64;
                                sh.delivered.fetch_add(1, Ordering::Relaxed);
                            }
                            seq += 1;
                            off = 0;
                            st.wake();
                        }
                        Flag::Aborted => fail(format!("message {seq} aborted by the relay")),
                        Flag::Continued => {}
                    }
                }
            }
        }
        if !out.is_empty() && !flush_responses(&mut wr, &mut out, &st).await {
            return;
        }
    }
}

/// Writes the responses gathered in `out`; `false` (and the pair marked dead) when the
/// connection failed.
async fn flush_responses<W: AsyncWriteRentExt>(
    wr: &mut W,
    out: &mut Vec<u8>,
    st: &PairState,
) -> bool {
    let (r, b) = wr.write_all(std::mem::take(out)).await;
    *out = b;
    out.clear();
    if r.is_err() {
        st.dead.set(true);
        st.wake();
        return false;
    }
    true
}

async fn acks<R: AsyncReadRent>(
    sh: Arc<Shared>,
    mut rd: R,
    st: Rc<PairState>,
    stats: Rc<RefCell<Stats>>,
    from: Instant,
    to: Instant,
) {
    let mut buf = BytesMut::with_capacity(4 * 1024);
    let mut sc = Scanner::default();
    loop {
        if buf.capacity() - buf.len() < 4096 {
            buf.reserve(16 * 1024);
        }
        let (len, cap) = (buf.len(), buf.capacity());
        let (r, b) = rd
            .read(monoio::buf::IoBufMut::slice_mut(buf, len..cap))
            .await;
        buf = b.into_inner();
        match r {
            Ok(0) | Err(_) => {
                if !st.dead.get() && !sh.stop.load(Ordering::Acquire) {
                    error(&sh, &stats, "relay closed the sender's connection".into());
                }
                st.dead.set(true);
                st.wake();
                return;
            }
            Ok(_) => {}
        }
        while let Ok(Some(ev)) = sc.next(&mut buf) {
            let Event::Head(raw) = ev else { continue };
            match raw.status() {
                Some(200) => {
                    let now = Instant::now();
                    if let Some(t) = st.chunks.borrow_mut().pop_front()
                        && in_window(now, from, to)
                    {
                        let _ = stats
                            .borrow_mut()
                            .send_to_200
                            .record(now.duration_since(t).as_nanos().max(1) as u64);
                    }
                }
                Some(code) => {
                    st.chunks.borrow_mut().pop_front();
                    error(&sh, &stats, format!("SEND answered {code}"));
                }
                None => {
                    let what = raw
                        .parse()
                        .ok()
                        .and_then(|h| h.status().map(|s| s.code))
                        .map_or("a request".to_string(), |c| {
                            format!("a REPORT with status {c}")
                        });
                    error(&sh, &stats, format!("sender received {what}"));
                }
            }
        }
    }
}
