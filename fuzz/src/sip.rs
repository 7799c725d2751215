//! Targets `sip_msg` and `sip_txn`: the SIP parser (`msrpd::sip::Message`, datagram and
//! stream entry points) and the sans-IO transaction table (`msrpd::sip::txn`).

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use msrpd::sip::core::{Policy, answer_stateless};
use msrpd::sip::dialog::{Dialog, DialogId};
use msrpd::sip::txn::{Config, Event, Peer, Transactions, Transport, TxId, request_writer};
use msrpd::sip::write::{ack_for, cancel_for, response_to};
use msrpd::sip::{Frame, HeaderName, Limits, Message, NameAddr, ParseError, Uri, Via};

/// `true` when `inner` lies inside `outer` (by address).
fn within(outer: &[u8], inner: &[u8]) -> bool {
    let o = outer.as_ptr() as usize;
    let i = inner.as_ptr() as usize;
    inner.is_empty() || (i >= o && i + inner.len() <= o + outer.len())
}

/// Every accessor of a parsed message, and what must follow from it.
fn check_message(m: &Message, limits: &Limits) {
    let raw = m.raw().clone();
    assert_eq!(m.head().len() + m.body_bytes().len(), raw.len());
    assert!(m.head().ends_with(b"\r\n\r\n"));
    assert!(m.header_count() <= limits.max_headers);
    assert!(m.head().len() <= limits.max_head);
    assert!(m.body_bytes().len() <= limits.max_body);
    if let Some(cl) = m.content_length() {
        assert!(m.is_truncated() || cl as usize == m.body_bytes().len());
    }
    for h in m.headers() {
        assert!(within(&raw, h.name_str.as_bytes()) && within(&raw, h.value.as_bytes()));
        assert!(!h.name_str.is_empty());
        assert_eq!(HeaderName::from_bytes(h.name_str.as_bytes()), h.name);
        let _ = h.unfolded();
    }
    assert!(within(&raw, m.request_uri().as_bytes()));
    assert!(within(&raw, m.reason().as_bytes()));
    assert_eq!(m.is_request(), m.method().is_some());
    assert_eq!(m.is_request(), m.status().is_none());
    for v in m.vias() {
        let again = Via::parse(v.raw).expect("a Via that parsed parses again");
        assert_eq!(again, v);
        let _ = (
            v.branch(),
            v.received(),
            v.rport(),
            v.maddr(),
            v.ttl(),
            v.is_rfc3261(),
        );
    }
    for n in m
        .contacts()
        .chain(m.routes())
        .chain(m.record_routes())
        .chain(m.from())
        .chain(m.to())
    {
        assert!(within(&raw, n.uri.as_bytes()));
        let _ = (
            n.tag(),
            n.parsed_uri()
                .map(|u| (u.lr(), u.transport(), u.maddr(), u.without_headers())),
        );
        assert_eq!(NameAddr::parse(n.raw), Ok(n));
    }
    if let Ok(u) = Uri::parse(m.request_uri()) {
        assert_eq!(Uri::parse(u.as_str()), Ok(u));
    }
    let _ = (
        m.call_id(),
        m.cseq(),
        m.max_forwards(),
        m.expires(),
        m.content_type(),
    );
    let _ = m
        .require()
        .chain(m.supported())
        .chain(m.proxy_require())
        .chain(m.allow())
        .count();
    let _ = m.www_authenticate().chain(m.proxy_authenticate()).count();
    let valid = m.check().is_ok();
    if m.is_request() {
        // Whatever the core answers must parse back, with the request's identifiers.
        if let Some(a) = answer_stateless(m, &Policy::default()) {
            let out = a.write(m, Some("m0-fuzz"));
            let r = Message::parse_own(out).expect("an answer parses");
            assert_eq!(r.status(), Some(a.code));
            assert_eq!(r.call_id(), m.call_id());
            if valid {
                r.check().expect("the answer to a valid request is valid");
            }
        }
        if valid {
            let ack = Message::parse_own(ack_for(m, m)).expect("ACK parses");
            assert_eq!(ack.method_str(), "ACK");
            let cancel = Message::parse_own(cancel_for(m)).expect("CANCEL parses");
            cancel
                .check()
                .expect("a CANCEL of a valid request is valid");
            let _ = Dialog::uas(m, 200, "m0-t", false);
        }
    } else if valid {
        let _ = DialogId::of_response(m);
    }
}

/// Target `sip_msg`. Input: `cfg`, then bytes. `cfg` bit 0: small limits (from the other
/// bits); bits 1-7: the piece length the stream is fed in (0 = all at once).
///
/// Invariants: no panic; a datagram that parses passes [`check_message`]; the stream
/// gives the same frames whether fed whole or in pieces, each message's bytes are a
/// copy of the input at that point, and each one parses as a datagram to the same
/// header count and body.
pub fn sip_msg(data: &[u8]) {
    let [cfg, input @ ..] = data else { return };
    let limits = if cfg & 1 == 0 {
        Limits::default()
    } else {
        Limits {
            max_head: 24 + usize::from(cfg >> 1) * 8,
            max_headers: usize::from(cfg >> 4),
            max_body: usize::from(cfg >> 1),
        }
    };
    if let Ok(m) = Message::parse_datagram(Bytes::copy_from_slice(input), &limits) {
        check_message(&m, &limits);
    }
    let piece = usize::from(cfg >> 1);
    let whole = stream(input, input.len().max(1), &limits);
    let pieces = stream(input, piece.max(1), &limits);
    assert_eq!(
        whole.0, pieces.0,
        "frames differ fed whole vs in pieces of {piece}"
    );
    // An error in pieces may come later than whole (a bad start line needs its LF) but
    // must be the same once all bytes are in.
    assert_eq!(whole.1, pieces.1);
}

/// Frames (as `(kind, bytes)`) and the final error, feeding `piece` bytes at a time.
fn stream(input: &[u8], piece: usize, limits: &Limits) -> (Vec<(u8, Vec<u8>)>, Option<ParseError>) {
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut fed = 0;
    let mut consumed = 0;
    loop {
        let end = (fed + piece).min(input.len());
        buf.extend_from_slice(&input[fed..end]);
        fed = end;
        loop {
            match Message::parse_stream(&mut buf, limits) {
                Ok(Frame::Partial) => break,
                Ok(Frame::Ping) => {
                    assert_eq!(&input[consumed..consumed + 4], b"\r\n\r\n");
                    consumed += 4;
                    out.push((1, Vec::new()));
                }
                Ok(Frame::Crlf) => {
                    assert_eq!(&input[consumed..consumed + 2], b"\r\n");
                    consumed += 2;
                    out.push((2, Vec::new()));
                }
                Ok(Frame::Message(m)) => {
                    let raw = m.raw().to_vec();
                    assert_eq!(&input[consumed..consumed + raw.len()], &raw[..]);
                    consumed += raw.len();
                    assert_eq!(
                        m.content_length().map(|c| c as usize),
                        Some(m.body_bytes().len())
                    );
                    check_message(&m, limits);
                    let d = Message::parse_datagram(m.raw().clone(), limits)
                        .expect("a stream message parses as a datagram");
                    assert_eq!(d.header_count(), m.header_count());
                    assert_eq!(d.body_bytes(), m.body_bytes());
                    out.push((0, raw));
                }
                Err(e) => return (out, Some(e)),
            }
        }
        assert_eq!(consumed + buf.len(), fed);
        if fed == input.len() {
            return (out, None);
        }
    }
}

// ---------------------------------------------------------------------------------------
// sip_txn

struct Script<'a>(&'a [u8]);

impl Script<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }
    fn take(&mut self, n: usize) -> &[u8] {
        let n = n.min(self.0.len());
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        a
    }
}

const METHODS: [&str; 8] = [
    "INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "MESSAGE", "FOO", "INVITE",
];
const BRANCHES: [&str; 4] = ["z9hG4bK1", "z9hG4bK2", "z9hG4bKx", "legacy1"];
const CODES: [u16; 8] = [100, 180, 200, 202, 404, 487, 503, 603];
const MAX: usize = 12;

fn peer(tcp: bool, port: u16) -> Peer {
    Peer {
        transport: if tcp { Transport::Tcp } else { Transport::Udp },
        addr: core::net::SocketAddr::from(([192, 0, 2, 7], port)),
        conn: None,
    }
}

fn peer_request(method: &str, branch: &str, tcp: bool, to_tag: bool, seq: u32) -> Message {
    let t = if tcp { "TCP" } else { "UDP" };
    let tag = if to_tag { ";tag=b1" } else { "" };
    let mut w = msrpd::sip::Writer::request(method, "sip:ms@192.0.2.1");
    w.header(
        "Via",
        &format!("SIP/2.0/{t} 192.0.2.7:5062;branch={branch};rport"),
    );
    w.header("From", "<sip:a@example.com>;tag=af");
    w.header("To", &format!("<sip:ms@example.com>{tag}"));
    w.header("Call-ID", "c1");
    w.header(
        "CSeq",
        &format!("{seq} {}", if method == "ACK" { "INVITE" } else { method }),
    );
    w.into_message().expect("template parses")
}

struct World {
    t: Transactions,
    now: Instant,
    start: Instant,
    server: Vec<TxId>,
    client: Vec<(TxId, Message)>,
    sent: u32,
}

impl World {
    fn drain(&mut self) {
        while let Some(tx) = self.t.poll_transmit() {
            Message::parse_own(tx.bytes.clone()).expect("every transmit parses");
        }
        while let Some(ev) = self.t.poll_event() {
            match ev {
                Event::Request { id, msg, .. } => {
                    assert!(msg.method_str() != "ACK" && msg.method_str() != "CANCEL");
                    self.server.push(id);
                }
                Event::Terminated { id } => {
                    assert!(self.t.state(id).is_none());
                    self.server.retain(|s| *s != id);
                    self.client.retain(|(c, _)| *c != id);
                }
                _ => {}
            }
        }
        assert!(self.t.len() <= MAX, "table over its limit");
        assert!(self.t.timer_count() <= 3 * self.t.len(), "timers leak");
    }

    fn tick(&mut self, d: Duration) {
        self.now += d;
        self.t.handle_timeout(self.now);
        if let Some(next) = self.t.poll_timeout() {
            assert!(
                next > self.now,
                "poll_timeout in the past after handle_timeout"
            );
        }
    }
}

/// Target `sip_txn`: a script of two-byte ops on one transaction table (limit 12) on a
/// virtual clock: time steps, templated peer requests (8 methods, 4 branches, UDP/TCP,
/// with/without To tag), responses to our requests, TU responses, TU requests, CANCELs,
/// raw datagrams, transport errors.
///
/// Invariants: no panic; every transmit parses; after `handle_timeout(now)` the next
/// deadline is after `now`; the table stays within its limit and keeps at most three
/// timers per transaction; Terminated ids are gone; once the TU answers everything
/// and an hour passes, the table and its timers are empty.
pub fn sip_txn(data: &[u8]) {
    let start = Instant::now();
    let mut w = World {
        t: Transactions::new(Config {
            max_transactions: MAX,
            ..Config::default()
        }),
        now: start,
        start,
        server: Vec::new(),
        client: Vec::new(),
        sent: 0,
    };
    let mut s = Script(data);
    let mut steps = 0;
    while let (Some(op), Some(arg)) = (s.byte(), s.byte()) {
        steps += 1;
        if steps > 400 {
            break;
        }
        let now = w.now;
        match op % 8 {
            0 => w.tick(Duration::from_millis(u64::from(arg) * 50)),
            1 => {
                let m = peer_request(
                    METHODS[usize::from(arg % 8)],
                    BRANCHES[usize::from((arg >> 3) % 4)],
                    arg & 0x20 != 0,
                    arg & 0x40 != 0,
                    7,
                );
                w.t.handle_message(now, peer(arg & 0x20 != 0, 5062), m);
            }
            2 if !w.client.is_empty() => {
                let (_, req) = &w.client[usize::from(arg) % w.client.len()];
                let code = CODES[usize::from(arg >> 5)];
                let r = response_to(req, code, None, Some("b1"))
                    .into_message()
                    .expect("response parses");
                let tcp = req.top_via().is_some_and(|v| v.transport == "TCP");
                w.t.handle_message(now, peer(tcp, 5062), r);
            }
            3 if !w.server.is_empty() => {
                let id = w.server[usize::from(arg) % w.server.len()];
                if let Some(req) = w.t.request(id).cloned() {
                    let code = CODES[usize::from(arg >> 5)];
                    let r = response_to(&req, code, None, Some("m0-t"))
                        .into_message()
                        .expect("response parses");
                    let _ = w.t.respond(now, id, r);
                }
            }
            4 => {
                let method = ["INVITE", "MESSAGE", "OPTIONS", "BYE"][usize::from(arg % 4)];
                let tcp = arg & 4 != 0;
                w.sent += 1;
                let branch = format!("z9hG4bK-0-{}", w.sent % 16);
                let req = request_writer(
                    method,
                    "sip:b@192.0.2.7",
                    if tcp { Transport::Tcp } else { Transport::Udp },
                    "192.0.2.1:5060",
                    &branch,
                    "<sip:ms@192.0.2.1>;tag=m0-1",
                    "<sip:b@192.0.2.7>",
                    "m0-c",
                    w.sent,
                )
                .into_message()
                .expect("request parses");
                if let Ok(id) = w.t.send_request(now, peer(tcp, 5062), req.clone()) {
                    w.client.push((id, req));
                }
            }
            5 if !w.client.is_empty() => {
                let id = w.client[usize::from(arg) % w.client.len()].0;
                if let Ok(c) = w.t.cancel(now, id) {
                    if let Some(req) = w.t.request(c).cloned() {
                        w.client.push((c, req));
                    }
                }
            }
            6 => {
                let raw = s.take(usize::from(arg % 128)).to_vec();
                w.t.handle_datagram(now, peer(false, 5062), Bytes::from(raw));
            }
            7 => {
                let ids: Vec<TxId> = w
                    .server
                    .iter()
                    .copied()
                    .chain(w.client.iter().map(|c| c.0))
                    .collect();
                if !ids.is_empty() {
                    w.t.handle_transport_error(now, ids[usize::from(arg) % ids.len()]);
                }
            }
            _ => {}
        }
        w.drain();
    }
    // The TU answers what is pending and cancels what rings; then time passes.
    for id in w.server.clone() {
        if let Some(req) = w.t.request(id).cloned() {
            if let Ok(r) = response_to(&req, 500, None, Some("m0-t")).into_message() {
                let _ = w.t.respond(w.now, id, r);
            }
        }
    }
    for (id, _) in w.client.clone() {
        let _ = w.t.cancel(w.now, id);
    }
    w.drain();
    for _ in 0..60 {
        w.tick(Duration::from_secs(60));
        w.drain();
    }
    assert!(
        w.t.is_empty(),
        "transactions left after an hour: {}",
        w.t.len()
    );
    assert_eq!(w.t.timer_count(), 0);
    assert_eq!(w.t.held_bytes(), 0, "bytes charged to no transaction");
    assert!(w.now >= w.start);
}
