//! `msrpd-bench --ua`: load for msrpd's MSRP user agent (README, "The MSRP user agent").
//!
//! Each of `--pairs` sessions is set up as a peer does it: an INVITE over UDP offering
//! MSRP (RFC 4975 §8) to `--ua-ruri`, the 200's SDP answer read for msrpd's `a=path`,
//! the ACK, a TCP connection to that path and an empty SEND that binds it (§5.4), whose
//! 200 ends the set-up. The set-up time (INVITE sent to the bind's 200) goes into a
//! histogram. Then every session sends `--size` byte `text/plain` messages in `--chunk`
//! byte SENDs, closed loop (`--window`) or open loop (`--rate` in total), and counts the
//! 200s: msrpd is the far end, so a message is delivered when the 200 to its last chunk
//! is in. Anything else msrpd sends on a session's connection is an error.
//!
//! SIP goes over `--sip-sockets` UDP sockets per thread (the kernel picks msrpd's core
//! for a datagram by its 4-tuple, so one socket would put every session on one core);
//! responses are matched by Call-ID. INVITEs are retransmitted on RFC 3261's Timer A
//! (500 ms, doubling) and a retransmitted 200 is ACKed again (§13.2.2.4).

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::future::poll_fn;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Barrier};
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt, Splitable};
use monoio::net::udp::UdpSocket;
use msrpd::codec::{Event, Head, Scanner};

use crate::pair::{Window, error, in_window, on_runtime, read_head};
use crate::stream::Conn;
use crate::{Shared, Stats};

/// Runs one bench thread of `--ua`: set up its sessions, wait for the start, drive them.
pub fn thread_main(
    shared: Arc<Shared>,
    sessions: Vec<usize>,
    cpu: Option<usize>,
    gate: Arc<Barrier>,
    times: Window,
) -> Stats {
    let fut = thread_async(shared, sessions, gate.clone(), times);
    on_runtime(cpu, gate, fut)
}

/// Where a call's INVITE transaction is.
#[derive(Default)]
struct Call {
    /// The final response, once in.
    answer: Option<String>,
    waker: Option<Waker>,
    /// The ACK sent, to send again when the 200 comes again.
    ack: Option<(Vec<u8>, Rc<UdpSocket>)>,
}

type Calls = Rc<RefCell<HashMap<String, Call>>>;

/// A SIP socket and its local port.
struct Sip {
    sock: Rc<UdpSocket>,
    port: u16,
}

struct Session {
    idx: usize,
    conn: Conn,
    /// msrpd's path (the To-Path of our SENDs) and ours.
    path: String,
    me: String,
}

async fn thread_async(
    shared: Arc<Shared>,
    sessions: Vec<usize>,
    gate: Arc<Barrier>,
    times: Window,
) -> Stats {
    let stats = Rc::new(RefCell::new(Stats::new()));
    let calls: Calls = Rc::new(RefCell::new(HashMap::new()));
    let mut sips = Vec::new();
    for _ in 0..shared.args.sip_sockets.max(1) {
        match sip_socket(&shared) {
            Ok(s) => {
                monoio::spawn(sip_reader(shared.clone(), s.sock.clone(), calls.clone()));
                sips.push(s);
            }
            Err(e) => {
                error(&shared, &stats, format!("SIP socket: {e}"));
                gate.wait();
                return stats.take();
            }
        }
    }
    let sips = Rc::new(sips);
    let per_session = Duration::from_secs_f64(shared.args.setup_timeout * 2.0 / 3.0);
    let queue = Rc::new(RefCell::new(sessions.into_iter()));
    let mut setups = Vec::new();
    for _ in 0..shared.args.setup_concurrency {
        let (sh, queue, stats, calls, sips) = (
            shared.clone(),
            queue.clone(),
            stats.clone(),
            calls.clone(),
            sips.clone(),
        );
        setups.push(monoio::spawn(async move {
            let mut ready = Vec::new();
            while !sh.stop.load(Ordering::Acquire) {
                let next = queue.borrow_mut().next();
                let Some(idx) = next else { break };
                let sip = &sips[idx % sips.len()];
                let t0 = Instant::now();
                match monoio::time::timeout(per_session, set_up(&sh, idx, sip, &calls)).await {
                    Ok(Ok(s)) => {
                        let _ = stats
                            .borrow_mut()
                            .setup
                            .record(t0.elapsed().as_nanos().max(1) as u64);
                        sh.ready_pairs.fetch_add(1, Ordering::AcqRel);
                        ready.push(s);
                    }
                    Ok(Err(e)) => error(&sh, &stats, format!("session {idx}: {e}")),
                    Err(_) => error(&sh, &stats, format!("session {idx}: set-up timed out")),
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
    for s in ready {
        runs.push(monoio::spawn(run_session(
            shared.clone(),
            s,
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

fn sip_socket(sh: &Shared) -> std::io::Result<Sip> {
    let ip = sh
        .args
        .local_addr(0)
        .unwrap_or(std::net::Ipv4Addr::LOCALHOST.into());
    let std_sock = std::net::UdpSocket::bind(SocketAddr::new(ip, 0))?;
    // Room for a burst of 200s while the thread is busy elsewhere.
    let _ = socket2::SockRef::from(&std_sock).set_recv_buffer_size(4 << 20);
    let port = std_sock.local_addr()?.port();
    Ok(Sip {
        sock: Rc::new(UdpSocket::from_std(std_sock)?),
        port,
    })
}

/// The value of SIP header `name` (or its compact form) in `m`.
fn header<'a>(m: &'a str, name: &str, compact: &str) -> Option<&'a str> {
    let head = m.split("\r\n\r\n").next()?;
    head.split("\r\n").skip(1).find_map(|l| {
        let (n, v) = l.split_once(':')?;
        let n = n.trim();
        (n.eq_ignore_ascii_case(name) || n.eq_ignore_ascii_case(compact)).then(|| v.trim())
    })
}

/// Reads SIP responses off `sock` and hands final ones to their calls.
async fn sip_reader(sh: Arc<Shared>, sock: Rc<UdpSocket>, calls: Calls) {
    let mut buf = vec![0u8; 65536];
    loop {
        let (r, b) = sock.recv_from(buf).await;
        buf = b;
        let Ok((n, _)) = r else {
            if sh.stop.load(Ordering::Acquire) {
                return;
            }
            continue;
        };
        let m = String::from_utf8_lossy(&buf[..n]).into_owned();
        let Some(code) = m
            .strip_prefix("SIP/2.0 ")
            .and_then(|r| r.get(..3))
            .and_then(|c| c.parse::<u16>().ok())
        else {
            // A request (a BYE when a session ends): not part of the measurement.
            continue;
        };
        if code < 200 {
            continue;
        }
        let Some(cid) = header(&m, "Call-ID", "i") else {
            continue;
        };
        let again = {
            let mut c = calls.borrow_mut();
            let Some(call) = c.get_mut(cid) else { continue };
            match &call.ack {
                Some((ack, s)) if (200..300).contains(&code) => Some((ack.clone(), s.clone())),
                Some(_) => None,
                None => {
                    call.answer.get_or_insert(m.clone());
                    if let Some(w) = call.waker.take() {
                        w.wake();
                    }
                    None
                }
            }
        };
        if let Some((ack, s)) = again {
            let _ = s.send_to(ack, sh.args.relay).await;
        }
    }
}

/// INVITE, 200, ACK, connect, bind: one session, ready for traffic.
async fn set_up(sh: &Shared, idx: usize, sip: &Sip, calls: &Calls) -> Result<Session, String> {
    let a = &sh.args;
    let port = sip.port;
    let call = format!("ub{idx:06x}{:08x}", rand::random::<u32>());
    let ruri = &a.ua_ruri;
    let me = format!("msrp://127.0.0.1:{port}/p{idx:06x};tcp");
    let sdp = format!(
        "v=0\r\no=bench 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=message {port} TCP/MSRP *\r\na=accept-types:text/plain\r\na=path:{me}\r\n"
    );
    let invite = format!(
        "INVITE {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-{call}-i;rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:bench@127.0.0.1>;tag=f-{call}\r\nTo: <{ruri}>\r\n\
         Call-ID: {call}\r\nCSeq: 1 INVITE\r\nContact: <sip:bench@127.0.0.1:{port}>\r\n\
         Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    )
    .into_bytes();
    calls.borrow_mut().insert(call.clone(), Call::default());
    let res = invite_and_ack(sh, sip, calls, &call, invite).await;
    let path = match res {
        Ok(p) => p,
        Err(e) => {
            calls.borrow_mut().remove(&call);
            return Err(e);
        }
    };
    // msrp://host:port/session;tcp
    let addr: SocketAddr = path
        .strip_prefix("msrp://")
        .and_then(|r| r.split('/').next())
        .and_then(|hp| hp.parse().ok())
        .ok_or_else(|| format!("a=path {path:?} is not msrp://IP:PORT/..."))?;
    let mut conn = Conn::connect(addr, None, a.local_addr(idx), !a.nagle).await?;
    let tid = format!("bind{idx:08x}");
    let bind = format!(
        "MSRP {tid} SEND\r\nTo-Path: {path}\r\nFrom-Path: {me}\r\nMessage-ID: bind{idx:08x}\r\n\
         Byte-Range: 1-0/0\r\n-------{tid}$\r\n"
    );
    let (r, _) = conn.write_all(bind.into_bytes()).await;
    r.map_err(|e| format!("write bind SEND: {e}"))?;
    let mut buf = BytesMut::with_capacity(4096);
    let mut sc = Scanner::default();
    let raw = read_head(&mut conn, &mut buf, &mut sc).await?;
    let head = Head::parse(&raw).map_err(|e| format!("bad response to the bind: {e}"))?;
    match head.status_code() {
        Some(200) if buf.is_empty() => {}
        Some(200) => return Err("msrpd sent more than the 200 to the bind".into()),
        Some(c) => return Err(format!("bind SEND answered {c}")),
        None => return Err("a request instead of the 200 to the bind".into()),
    }
    Ok(Session {
        idx,
        conn,
        path,
        me,
    })
}

/// Sends the INVITE until its final response (Timer A), ACKs a 200, and returns msrpd's
/// a=path from the answer.
async fn invite_and_ack(
    sh: &Shared,
    sip: &Sip,
    calls: &Calls,
    call: &str,
    invite: Vec<u8>,
) -> Result<String, String> {
    let mut t1 = Duration::from_millis(500);
    let answer = loop {
        let (r, _) = sip.sock.send_to(invite.clone(), sh.args.relay).await;
        r.map_err(|e| format!("send INVITE: {e}"))?;
        let wait = poll_fn(|cx| {
            let mut c = calls.borrow_mut();
            let slot = c.get_mut(call).expect("call registered");
            match slot.answer.take() {
                Some(m) => Poll::Ready(m),
                None => {
                    slot.waker = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        });
        match monoio::time::timeout(t1, wait).await {
            Ok(m) => break m,
            Err(_) => t1 = (t1 * 2).min(Duration::from_secs(4)),
        }
    };
    let code = answer
        .get(8..11)
        .and_then(|c| c.parse::<u16>().ok())
        .unwrap_or(0);
    if code != 200 {
        let line = answer.lines().next().unwrap_or("").to_string();
        return Err(format!("INVITE answered {line:?}"));
    }
    let to = header(&answer, "To", "t").ok_or("200 without To")?;
    let port = sip.port;
    let ack = format!(
        "ACK sip:msrpd@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-{call}-a;rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:bench@127.0.0.1>;tag=f-{call}\r\nTo: {to}\r\n\
         Call-ID: {call}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"
    )
    .into_bytes();
    let path = answer
        .split("\r\n")
        .find_map(|l| l.strip_prefix("a=path:"))
        .map(|p| p.trim().to_string())
        .ok_or("200 without a=path")?;
    if let Some(c) = calls.borrow_mut().get_mut(call) {
        c.ack = Some((ack.clone(), sip.sock.clone()));
    }
    let (r, _) = sip.sock.send_to(ack, sh.args.relay).await;
    r.map_err(|e| format!("send ACK: {e}"))?;
    Ok(path)
}

/// What one session's sender and reader share.
struct State {
    /// Per undelivered message: its (intended) send time.
    inflight: RefCell<VecDeque<Instant>>,
    /// Per chunk awaiting its 200: its send time and whether it ends its message.
    chunks: RefCell<VecDeque<(Instant, bool)>>,
    waker: RefCell<Option<Waker>>,
    dead: Cell<bool>,
}

impl State {
    fn wake(&self) {
        if let Some(w) = self.waker.borrow_mut().take() {
            w.wake();
        }
    }
}

async fn run_session(
    sh: Arc<Shared>,
    s: Session,
    from: Instant,
    to: Instant,
    stats: Rc<RefCell<Stats>>,
) {
    let st = Rc::new(State {
        inflight: RefCell::new(VecDeque::new()),
        chunks: RefCell::new(VecDeque::new()),
        waker: RefCell::new(None),
        dead: Cell::new(false),
    });
    let Session {
        idx,
        conn,
        path,
        me,
    } = s;
    let fd = conn.as_raw_fd();
    let (rd, mut wr) = conn.into_split();
    monoio::spawn(responses(
        sh.clone(),
        idx,
        rd,
        st.clone(),
        stats.clone(),
        from,
        to,
    ));
    sender(&sh, (idx, &path, &me), &mut wr, &st, &stats).await;
    let deadline = Instant::now() + Duration::from_secs_f64(sh.args.drain);
    while !st.inflight.borrow().is_empty() && !st.dead.get() && Instant::now() < deadline {
        monoio::time::sleep(Duration::from_millis(10)).await;
    }
    let lost = st.inflight.borrow().len() as u64;
    if lost > 0 {
        let mut x = stats.borrow_mut();
        x.lost += lost;
        if x.error_samples.len() < 10 {
            x.error_samples
                .push(format!("session {idx}: {lost} messages not answered"));
        }
        sh.errors.fetch_add(1, Ordering::Relaxed);
    }
    st.dead.set(true);
    // SAFETY: the socket is still open: its read half is held by the responses task,
    // which only ends after this wakes it.
    unsafe {
        libc::shutdown(fd, libc::SHUT_RDWR);
    }
}

/// Body bytes of message `seq`: printable text (the sessions accept text/plain), shifted
/// per message.
fn body_of(sh: &Shared, seq: u64) -> &[u8] {
    let shift = (seq.wrapping_mul(7) % 4096) as usize;
    &sh.text[shift..shift + sh.args.size]
}

async fn sender<W: AsyncWriteRentExt>(
    sh: &Shared,
    (idx, path, me): (usize, &str, &str),
    wr: &mut W,
    st: &State,
    stats: &Rc<RefCell<Stats>>,
) {
    let a = &sh.args;
    let interval = a.rate.map(|r| Duration::from_secs_f64(a.pairs as f64 / r));
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
                        format!("session {idx}: over 100000 messages unanswered"),
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
                    continue;
                }
                Instant::now()
            }
        };
        st.inflight.borrow_mut().push_back(t_send);
        let body = body_of(sh, seq);
        let mut off = 0;
        buf.clear();
        while off < a.size {
            let end = (off + a.chunk).min(a.size);
            tid_n += 1;
            let tid = format!("u{idx:05x}{tid_n:010x}");
            let last = end == a.size;
            buf.extend_from_slice(
                format!(
                    "MSRP {tid} SEND\r\nTo-Path: {}\r\nFrom-Path: {}\r\nMessage-ID: m{idx:05x}{seq:010x}\r\nByte-Range: {}-{end}/{}\r\nContent-Type: text/plain\r\n\r\n",
                    path,
                    me,
                    off + 1,
                    a.size
                )
                .as_bytes(),
            );
            buf.extend_from_slice(&body[off..end]);
            buf.extend_from_slice(format!("\r\n-------{tid}").as_bytes());
            buf.extend_from_slice(if last { b"$\r\n" } else { b"+\r\n" });
            st.chunks.borrow_mut().push_back((Instant::now(), last));
            off = end;
            // A big message goes out a chunk at a time; small ones in one write.
            if buf.len() >= 64 * 1024 || last {
                let (r, b) = wr.write_all(std::mem::take(&mut buf)).await;
                buf = b;
                buf.clear();
                if let Err(e) = r {
                    error(sh, stats, format!("session {idx}: write: {e}"));
                    st.dead.set(true);
                    return;
                }
            }
        }
        seq += 1;
    }
}

/// Reads msrpd's responses on a session's connection.
async fn responses<R: AsyncReadRent>(
    sh: Arc<Shared>,
    idx: usize,
    mut rd: R,
    st: Rc<State>,
    stats: Rc<RefCell<Stats>>,
    from: Instant,
    to: Instant,
) {
    let size = sh.args.size as u64;
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
                    error(
                        &sh,
                        &stats,
                        format!("session {idx}: msrpd closed the connection"),
                    );
                }
                st.dead.set(true);
                st.wake();
                return;
            }
            Ok(_) => {}
        }
        loop {
            let ev = match sc.next(&mut buf) {
                Ok(Some(ev)) => ev,
                Ok(None) => break,
                Err(e) => {
                    error(&sh, &stats, format!("session {idx}: bad frame: {e}"));
                    st.dead.set(true);
                    st.wake();
                    return;
                }
            };
            let Event::Head(raw) = ev else { continue };
            match raw.status() {
                Some(200) => {
                    let now = Instant::now();
                    let Some((t, last)) = st.chunks.borrow_mut().pop_front() else {
                        error(&sh, &stats, format!("session {idx}: a 200 to nothing"));
                        continue;
                    };
                    let counted = in_window(now, from, to);
                    if counted {
                        let _ = stats
                            .borrow_mut()
                            .send_to_200
                            .record(now.duration_since(t).as_nanos().max(1) as u64);
                    }
                    if last {
                        let sent = st.inflight.borrow_mut().pop_front();
                        if let Some(t) = sent
                            && counted
                        {
                            let mut x = stats.borrow_mut();
                            let _ = x
                                .delivery
                                .record(now.duration_since(t).as_nanos().max(1) as u64);
                            x.delivered += 1;
                            x.delivered_bytes += size;
                            sh.delivered.fetch_add(1, Ordering::Relaxed);
                        }
                        st.wake();
                    }
                }
                Some(code) => {
                    st.chunks.borrow_mut().pop_front();
                    error(&sh, &stats, format!("session {idx}: SEND answered {code}"));
                }
                None => error(
                    &sh,
                    &stats,
                    format!("session {idx}: msrpd sent a request on the session"),
                ),
            }
        }
    }
}
