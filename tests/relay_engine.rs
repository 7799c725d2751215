//! The sans-I/O relay core driven directly with a virtual clock: no sockets, no threads,
//! no sleeping. Frames go in through the crate's own scanner (as the server feeds them);
//! what comes out is every [`Action`], with Write bytes parsed back with `msrpd::codec`
//! and compared exactly.
//!
//! Covers RFC 4976 §6.1 (probation), §6.3 (protected mode, AUTH sessions and their
//! expiry), §6.4.1 / §6.4.3 (Failure-Report timers and REPORTs) and §6.5 (idle close).

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use msrpd::codec::{Event, Flag, Head, Scanner};
use msrpd::conn::{Action, CloseReason, ConnId, ConnKind, Counters, Origin, Slots, Transport};
use msrpd::relay::session::SessionKey;
use msrpd::relay::{Relay, RelayConfig};

const HOST: &str = "relay.example.com";
const RELAY: &str = "msrp://relay.example.com:2855;tcp";
const ALICE: &str = "msrp://alice.example.com:7001/a1s;tcp";
const BOB: &str = "msrp://bob.example.com:7002/b2s;tcp";

/// A frame the relay wrote on one connection, or a connection it closed.
#[derive(Debug, Clone, PartialEq)]
enum Out {
    Frame {
        to: (u32, u32),
        head: String,
        body: Vec<u8>,
        has_body: bool,
        flag: Flag,
    },
    Close {
        to: (u32, u32),
        reason: CloseReason,
    },
}

/// Buffers and scanners for one connection's byte stream.
#[derive(Default)]
struct Stream {
    scanner: Scanner,
    buf: BytesMut,
    /// Head and body of a frame whose end-line has not been seen yet.
    partial: Option<(String, bool, Vec<u8>)>,
}

struct Harness {
    relay: Relay,
    slots: Rc<RefCell<Slots>>,
    t0: Instant,
    inbound: HashMap<(u32, u32), Stream>,
    outbound: HashMap<(u32, u32), Stream>,
    next_tid: u32,
}

fn key(c: ConnId) -> (u32, u32) {
    (c.slot, c.generation)
}

impl Harness {
    fn new(cfg: RelayConfig) -> Harness {
        let t0 = Instant::now();
        let slots = Rc::new(RefCell::new(Slots::new(0, 1 << 16)));
        let relay = Relay::new(
            cfg,
            None,
            [7; 32],
            [9; 32],
            Arc::new(Counters::default()),
            slots.clone(),
            t0,
        );
        Harness {
            relay,
            slots,
            t0,
            inbound: HashMap::new(),
            outbound: HashMap::new(),
            next_tid: 0,
        }
    }

    /// The virtual instant `secs` after the start.
    fn at(&self, secs: f64) -> Instant {
        self.t0 + Duration::from_secs_f64(secs)
    }

    fn open(&mut self, secs: f64, loopback: bool) -> ConnId {
        let ip = if loopback {
            [127, 0, 0, 1]
        } else {
            [192, 0, 2, 1]
        };
        self.open_kind(secs, ConnKind::tcp_from((ip, 40000).into()))
    }

    /// A connection of any kind, given its id as the server would.
    fn open_kind(&mut self, secs: f64, kind: ConnKind) -> ConnId {
        let now = self.at(secs);
        let id = self.slots.borrow_mut().alloc().expect("a free slot");
        self.relay.handle_open(now, id, kind);
        id
    }

    fn tid(&mut self) -> String {
        self.next_tid += 1;
        format!("tx{:06}", self.next_tid)
    }

    /// Bytes arriving on connection `c` at `secs`, scanned as the server would.
    fn feed(&mut self, secs: f64, c: ConnId, bytes: &[u8]) {
        let now = self.at(secs);
        let Harness { relay, inbound, .. } = self;
        let s = inbound.entry(key(c)).or_default();
        s.buf.extend_from_slice(bytes);
        while let Some(ev) = s.scanner.next(&mut s.buf).expect("test input scans") {
            match ev {
                Event::Head(raw) => relay.handle_head(now, c, raw),
                Event::Body(b) => relay.handle_body(Origin::Conn(c), b),
                Event::End(f) => relay.handle_end(now, Origin::Conn(c), f),
            }
        }
    }

    fn tick(&mut self, secs: f64) -> Vec<Out> {
        let now = self.at(secs);
        self.relay.handle_timeout(now);
        self.drain()
    }

    /// Every action so far: complete frames (Write bytes parsed back), and closes.
    fn drain(&mut self) -> Vec<Out> {
        let mut out = Vec::new();
        while let Some(a) = self.relay.poll_action() {
            match a {
                Action::Write { conn, bytes, .. } => {
                    let to = key(conn);
                    let s = self.outbound.entry(to).or_default();
                    s.buf.extend_from_slice(&bytes);
                    while let Some(ev) = s.scanner.next(&mut s.buf).expect("relay output scans") {
                        match ev {
                            Event::Head(raw) => {
                                raw.parse().expect("relay output head parses");
                                Head::parse(raw.as_bytes()).expect("relay output head parses");
                                let head = String::from_utf8(raw.as_bytes().to_vec()).unwrap();
                                s.partial = Some((head, raw.has_body(), Vec::new()));
                            }
                            Event::Body(b) => {
                                s.partial.as_mut().expect("body after head").2.extend(&b)
                            }
                            Event::End(flag) => {
                                let (head, has_body, body) =
                                    s.partial.take().expect("end after head");
                                out.push(Out::Frame {
                                    to,
                                    head,
                                    body,
                                    has_body,
                                    flag,
                                });
                            }
                        }
                    }
                }
                Action::Close { conn, reason } => out.push(Out::Close {
                    to: key(conn),
                    reason,
                }),
                other => panic!("unexpected action {other:?}"),
            }
        }
        out
    }

    /// A protected-mode AUTH from loopback connection `c`; returns the Use-Path URI.
    fn auth(&mut self, secs: f64, c: ConnId, me: &str, expires: Option<u32>) -> String {
        let tid = self.tid();
        let exp = expires.map_or(String::new(), |e| format!("Expires: {e}\r\n"));
        let m = format!(
            "MSRP {tid} AUTH\r\nTo-Path: {RELAY}\r\nFrom-Path: {me}\r\n{exp}-------{tid}$\r\n"
        );
        self.feed(secs, c, m.as_bytes());
        let out = self.drain();
        assert_eq!(out.len(), 1, "{out:?}");
        let head = frame_to(&out[0], c);
        let use_path = header(head, "Use-Path").expect("Use-Path").to_string();
        check_use_path(&use_path, c);
        let granted = expires.unwrap_or(600);
        assert_eq!(
            head,
            format!(
                "MSRP {tid} 200 OK\r\nTo-Path: {me}\r\nFrom-Path: {RELAY}\r\n\
                 Use-Path: {use_path}\r\nExpires: {granted}\r\n"
            )
        );
        use_path
    }

    /// A SEND from `c`; `fr` is the Failure-Report value (or none). Returns its tid.
    fn send(
        &mut self,
        secs: f64,
        c: ConnId,
        to_path: &str,
        from: &str,
        mid: &str,
        fr: Option<&str>,
    ) -> String {
        let tid = self.tid();
        let m = send_bytes(&tid, to_path, from, mid, fr, b"hello");
        self.feed(secs, c, &m);
        tid
    }
}

fn send_bytes(
    tid: &str,
    to_path: &str,
    from: &str,
    mid: &str,
    fr: Option<&str>,
    body: &[u8],
) -> Vec<u8> {
    let fr = fr.map_or(String::new(), |v| format!("Failure-Report: {v}\r\n"));
    let mut m = format!(
        "MSRP {tid} SEND\r\nTo-Path: {to_path}\r\nFrom-Path: {from}\r\nMessage-ID: {mid}\r\n\
         Byte-Range: 1-{n}/{n}\r\n{fr}Content-Type: text/plain\r\n\r\n",
        n = body.len()
    )
    .into_bytes();
    m.extend_from_slice(body);
    m.extend_from_slice(format!("\r\n-------{tid}$\r\n").as_bytes());
    m
}

/// The head of a frame written to `c` (asserts it is one, complete with `$`).
fn frame_to(o: &Out, c: ConnId) -> &str {
    match o {
        Out::Frame { to, head, flag, .. } => {
            assert_eq!(*to, key(c), "frame went to the wrong connection: {head}");
            assert_eq!(*flag, Flag::Complete);
            head
        }
        other => panic!("expected a frame, got {other:?}"),
    }
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.split("\r\n")
        .skip(1)
        .filter_map(|l| l.split_once(": "))
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

/// The transaction id of a head, checked to be one the relay made (16 lowercase hex).
fn relay_tid(head: &str) -> &str {
    let tid = head.split(' ').nth(1).unwrap();
    assert!(
        tid.len() == 16 && tid.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')),
        "relay tid {tid:?}"
    );
    tid
}

/// `msrp://relay.example.com:2855/<28 hex>;tcp` naming core 0 and `c`'s slot.
fn check_use_path(u: &str, c: ConnId) {
    let sid = u
        .strip_prefix("msrp://relay.example.com:2855/")
        .and_then(|r| r.strip_suffix(";tcp"))
        .unwrap_or_else(|| panic!("Use-Path form: {u}"));
    let k = SessionKey::decode(sid).unwrap_or_else(|| panic!("session id {sid}"));
    assert_eq!((k.core, k.slot), (0, c.slot));
    assert_ne!(k.key, 0);
}

fn config() -> RelayConfig {
    RelayConfig::new(HOST, 2855)
}

#[test]
fn protected_mode_refuses_non_loopback_clients_with_403() {
    let mut h = Harness::new(config());
    let remote = h.open(0.0, false);
    for attempt in 1..=3 {
        let tid = h.tid();
        let m = format!(
            "MSRP {tid} AUTH\r\nTo-Path: {RELAY}\r\nFrom-Path: {ALICE}\r\n-------{tid}$\r\n"
        );
        h.feed(0.5, remote, m.as_bytes());
        let out = h.drain();
        assert_eq!(
            out[0],
            Out::Frame {
                to: key(remote),
                head: format!(
                    "MSRP {tid} 403 relay is in protected mode\r\nTo-Path: {ALICE}\r\nFrom-Path: {RELAY}\r\n"
                ),
                body: vec![],
                has_body: false,
                flag: Flag::Complete,
            }
        );
        if attempt < 3 {
            assert_eq!(out.len(), 1, "{out:?}");
        } else {
            // The third failure closes the connection, after the 403 (RFC 4976 §6.3).
            assert_eq!(
                out[1..],
                [Out::Close {
                    to: key(remote),
                    reason: CloseReason::AuthFailures
                }]
            );
        }
    }
    // A loopback client on the same relay is let in without a challenge.
    let local = h.open(1.0, true);
    let up = h.auth(1.0, local, BOB, None);
    assert_ne!(up, RELAY);
    assert_eq!(h.relay.table_sizes().0, 1);
}

#[test]
fn probation_closes_connections_without_a_successful_request() {
    let mut cfg = config();
    cfg.probation = Duration::from_secs(30);
    let mut h = Harness::new(cfg);
    let silent = h.open(0.0, true);
    let failing = h.open(0.0, true);
    let good = h.open(0.0, true);
    // A SEND to a session that does not exist is not a success.
    let tid = h.tid();
    let bogus = "msrp://relay.example.com:2855/000000000000deadbeefdeadbeef;tcp";
    let m = send_bytes(
        &tid,
        &format!("{bogus} {BOB}"),
        ALICE,
        "m0000001",
        None,
        b"hi",
    );
    h.feed(1.0, failing, &m);
    let out = h.drain();
    assert_eq!(out.len(), 2, "481 response and REPORT: {out:?}");
    assert!(frame_to(&out[0], failing).starts_with(&format!("MSRP {tid} 481 ")));
    h.auth(2.0, good, BOB, None);

    assert_eq!(h.tick(29.999), []);
    let mut closed = h.tick(30.0);
    closed.sort_by_key(|o| format!("{o:?}"));
    assert_eq!(
        closed,
        [
            Out::Close {
                to: key(silent),
                reason: CloseReason::Probation
            },
            Out::Close {
                to: key(failing),
                reason: CloseReason::Probation
            },
        ]
    );
    assert_eq!(h.tick(100.0), [], "the AUTH'd connection stays");
}

#[test]
fn idle_connections_are_closed_after_the_idle_timeout() {
    let mut cfg = config();
    cfg.probation = Duration::from_secs(5);
    cfg.idle_timeout = Duration::from_secs(25);
    let mut h = Harness::new(cfg);
    let quiet = h.open(0.0, true);
    let busy = h.open(0.0, true);
    h.auth(0.0, quiet, ALICE, None);
    h.auth(0.0, busy, BOB, None);
    // Any request counts as traffic: a refresh at 20 s.
    h.auth(20.0, busy, BOB, None);
    // The server ticks every 100 ms; do the same in virtual time.
    let mut closed_at = HashMap::new();
    for i in 1..=1000 {
        let t = f64::from(i) / 10.0;
        for o in h.tick(t) {
            match o {
                Out::Close { to, reason } => {
                    assert_eq!(reason, CloseReason::Idle);
                    assert!(closed_at.insert(to, t).is_none(), "closed twice");
                    // The server then tells the relay the connection is gone.
                    let id = [quiet, busy].into_iter().find(|c| key(*c) == to).unwrap();
                    h.relay.handle_closed(h.at(t), id);
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    // Not before the timeout, and not much after it (within a tenth of it).
    let q = closed_at[&key(quiet)];
    let b = closed_at[&key(busy)];
    assert!((25.0..=27.5).contains(&q), "quiet connection closed at {q}");
    assert!((45.0..=47.5).contains(&b), "busy connection closed at {b}");
    assert_eq!(h.relay.table_sizes(), (0, 0, 0, 0));
}

#[test]
fn auth_session_expires_and_dies_with_its_connection() {
    let mut h = Harness::new(config());
    let a = h.open(0.0, true);
    let b = h.open(0.0, true);
    let ua = h.auth(0.0, a, ALICE, Some(60));
    let ub = h.auth(0.0, b, BOB, None);
    assert_ne!(ua, ub);

    // Before expiry: B -> A over A's URI reaches A's connection.
    let to_a = format!("{ua} {ALICE}");
    h.send(59.0, b, &to_a, BOB, "m0000001", Some("no"));
    let out = h.drain();
    assert_eq!(out.len(), 1, "{out:?}");
    let head = frame_to(&out[0], a);
    let t = relay_tid(head);
    assert_eq!(
        head,
        format!(
            "MSRP {t} SEND\r\nTo-Path: {ALICE}\r\nFrom-Path: {ua} {BOB}\r\nMessage-ID: m0000001\r\n\
             Byte-Range: 1-5/5\r\nFailure-Report: no\r\nContent-Type: text/plain\r\n"
        )
    );
    assert!(matches!(&out[0], Out::Frame { body, .. } if body == b"hello"));

    // Only the owner's connection may AUTH on that URI.
    let tid = h.tid();
    let m = format!("MSRP {tid} AUTH\r\nTo-Path: {ua}\r\nFrom-Path: {BOB}\r\n-------{tid}$\r\n");
    h.feed(59.5, b, m.as_bytes());
    let out = h.drain();
    assert_eq!(out.len(), 1);
    assert_eq!(
        frame_to(&out[0], b),
        format!(
            "MSRP {tid} 481 no next hop after this relay\r\nTo-Path: {BOB}\r\nFrom-Path: {ua}\r\n"
        )
    );

    // Expiry is silent; afterwards the URI is unknown: 481 and a REPORT (Failure-Report
    // absent means yes).
    assert_eq!(h.tick(60.0), []);
    assert_eq!(h.relay.table_sizes().0, 1);
    let tid = h.send(60.0, b, &to_a, BOB, "m0000002", None);
    let out = h.drain();
    assert_eq!(out.len(), 2, "{out:?}");
    assert_eq!(
        frame_to(&out[0], b),
        format!(
            "MSRP {tid} 481 unknown or expired session\r\nTo-Path: {BOB}\r\nFrom-Path: {ua}\r\n"
        )
    );
    let head = frame_to(&out[1], b);
    let t = relay_tid(head);
    assert_eq!(
        head,
        format!(
            "MSRP {t} REPORT\r\nTo-Path: {BOB}\r\nFrom-Path: {ua}\r\nMessage-ID: m0000002\r\n\
             Byte-Range: 1-5/5\r\nStatus: 000 481 Session Does Not Exist\r\n"
        )
    );

    // B's session lives on; when B's connection closes, its URI dies with it.
    let c = h.open(61.0, true);
    h.auth(61.0, c, ALICE, None);
    h.send(
        62.0,
        c,
        &format!("{ub} {BOB}"),
        ALICE,
        "m0000003",
        Some("no"),
    );
    let out = h.drain();
    assert_eq!(out.len(), 1);
    frame_to(&out[0], b);
    h.relay.handle_closed(h.at(63.0), b);
    let tid = h.send(
        63.0,
        c,
        &format!("{ub} {BOB}"),
        ALICE,
        "m0000004",
        Some("partial"),
    );
    let out = h.drain();
    assert_eq!(out.len(), 2, "{out:?}");
    assert!(frame_to(&out[0], c).starts_with(&format!("MSRP {tid} 481 ")));
    assert!(frame_to(&out[1], c).contains("Status: 000 481 "));
}

#[test]
fn reauth_refreshes_the_session() {
    let mut h = Harness::new(config());
    let a = h.open(0.0, true);
    let b = h.open(0.0, true);
    let ua = h.auth(0.0, a, ALICE, Some(60));
    h.auth(0.0, b, BOB, None);
    // Refresh at 50 s, addressed to the session URI itself this time.
    let tid = h.tid();
    let m = format!(
        "MSRP {tid} AUTH\r\nTo-Path: {ua}\r\nFrom-Path: {ALICE}\r\nExpires: 60\r\n-------{tid}$\r\n"
    );
    h.feed(50.0, a, m.as_bytes());
    let out = h.drain();
    assert_eq!(
        frame_to(&out[0], a),
        format!(
            "MSRP {tid} 200 OK\r\nTo-Path: {ALICE}\r\nFrom-Path: {ua}\r\nUse-Path: {ua}\r\nExpires: 60\r\n"
        )
    );
    assert_eq!(h.auth(51.0, a, ALICE, Some(60)), ua, "same URI on refresh");
    // The first expiry time has passed; the session is still there until 111 s.
    assert_eq!(h.tick(100.0), []);
    h.send(
        110.9,
        b,
        &format!("{ua} {ALICE}"),
        BOB,
        "m0000001",
        Some("no"),
    );
    let out = h.drain();
    assert_eq!(out.len(), 1);
    frame_to(&out[0], a);
    assert_eq!(h.tick(111.0), []);
    h.send(
        111.0,
        b,
        &format!("{ua} {ALICE}"),
        BOB,
        "m0000002",
        Some("no"),
    );
    assert_eq!(h.drain(), [], "Failure-Report no: the 481 is silent");
    assert_eq!(h.relay.table_sizes().0, 1);
}

/// A and B, both AUTH'd on one relay; A sends to B through it (full topology:
/// To-Path = A's relay URI, B's relay URI, B).
struct Pair {
    h: Harness,
    a: ConnId,
    b: ConnId,
    ua: String,
    ub: String,
}

fn pair(txn_timeout: Duration) -> Pair {
    let mut cfg = config();
    cfg.txn_timeout = txn_timeout;
    let mut h = Harness::new(cfg);
    let a = h.open(0.0, true);
    let b = h.open(0.0, true);
    let ua = h.auth(0.0, a, ALICE, None);
    let ub = h.auth(0.0, b, BOB, None);
    Pair { h, a, b, ua, ub }
}

impl Pair {
    /// A sends "hello" with Failure-Report `fr`: head and body at `start`, the end-line
    /// at `end`. Returns (A's tid, the tid of the copy B got). Checks the forwarded frame
    /// and, for `yes`, the immediate 200 to A.
    fn send(&mut self, fr: &str, start: f64, end: f64) -> (String, String) {
        let Pair { h, a, b, ua, ub } = self;
        let tid = h.tid();
        let m = send_bytes(
            &tid,
            &format!("{ua} {ub} {BOB}"),
            ALICE,
            "m0000001",
            Some(fr),
            b"hello",
        );
        let cut = m.len() - (tid.len() + 12);
        h.feed(start, *a, &m[..cut]);
        assert_eq!(h.drain(), [], "nothing complete before the end-line");
        h.feed(end, *a, &m[cut..]);
        let out = h.drain();
        let head = frame_to(&out[0], *b);
        let fwd = relay_tid(head).to_string();
        assert_eq!(
            head,
            format!(
                "MSRP {fwd} SEND\r\nTo-Path: {BOB}\r\nFrom-Path: {ub} {ua} {ALICE}\r\n\
                 Message-ID: m0000001\r\nByte-Range: 1-5/5\r\nFailure-Report: {fr}\r\n\
                 Content-Type: text/plain\r\n"
            )
        );
        assert!(matches!(&out[0], Out::Frame { body, has_body: true, .. } if body == b"hello"));
        if fr == "yes" {
            // RFC 4976 §6.4.1: a 200 to the previous hop at once.
            assert_eq!(out.len(), 2, "{out:?}");
            assert_eq!(
                frame_to(&out[1], *a),
                format!("MSRP {tid} 200 OK\r\nTo-Path: {ALICE}\r\nFrom-Path: {ua}\r\n")
            );
        } else {
            assert_eq!(out.len(), 1, "no response for Failure-Report {fr}: {out:?}");
        }
        (tid, fwd)
    }

    /// B answers the forwarded SEND with `code`.
    fn respond(&mut self, secs: f64, fwd: &str, code: u16, comment: &str) {
        let m = format!(
            "MSRP {fwd} {code} {comment}\r\nTo-Path: {}\r\nFrom-Path: {BOB}\r\n-------{fwd}$\r\n",
            self.ub
        );
        self.h.feed(secs, self.b, m.as_bytes());
    }

    fn expect_report(&self, out: &[Out], status: &str) {
        assert_eq!(out.len(), 1, "{out:?}");
        let head = frame_to(&out[0], self.a);
        let t = relay_tid(head);
        assert_eq!(
            head,
            format!(
                "MSRP {t} REPORT\r\nTo-Path: {ALICE}\r\nFrom-Path: {}\r\nMessage-ID: m0000001\r\n\
                 Byte-Range: 1-5/5\r\nStatus: 000 {status}\r\n",
                self.ua
            )
        );
    }
}

#[test]
fn failure_report_yes_times_out_with_a_408_report() {
    let mut p = pair(Duration::from_secs(30));
    // The timer runs from the last byte sent: the end-line goes out at 5 s.
    let (_, fwd) = p.send("yes", 1.0, 5.0);
    assert_eq!(p.h.relay.table_sizes().1, 1);
    assert_eq!(p.h.tick(34.999), []);
    let out = p.h.tick(35.0);
    p.expect_report(&out, "408 Request Timeout");
    assert_eq!(p.h.relay.table_sizes().1, 0);
    // A late answer matches nothing and is dropped.
    p.respond(36.0, &fwd, 200, "OK");
    assert_eq!(p.h.drain(), []);
    assert_eq!(p.h.tick(100.0), []);
}

#[test]
fn failure_report_yes_answered_in_time_gets_no_report() {
    let mut p = pair(Duration::from_secs(30));
    let (_, fwd) = p.send("yes", 1.0, 1.0);
    p.respond(30.9, &fwd, 200, "OK");
    assert_eq!(p.h.drain(), []);
    assert_eq!(p.h.relay.table_sizes().1, 0);
    assert_eq!(p.h.tick(100.0), []);
}

#[test]
fn failure_report_no_and_partial_get_no_timeout_report() {
    for fr in ["no", "partial"] {
        let mut p = pair(Duration::from_secs(30));
        p.send(fr, 1.0, 2.0);
        let pending = usize::from(fr == "partial");
        assert_eq!(p.h.relay.table_sizes().1, pending, "{fr}");
        assert_eq!(p.h.tick(32.0), [], "{fr}");
        assert_eq!(p.h.tick(200.0), [], "{fr}");
        assert_eq!(p.h.relay.table_sizes().1, 0, "{fr}");
    }
}

#[test]
fn error_response_from_the_next_hop_is_reported_for_yes_and_partial() {
    for fr in ["yes", "partial", "no"] {
        let mut p = pair(Duration::from_secs(30));
        let (_, fwd) = p.send(fr, 1.0, 1.0);
        p.respond(2.0, &fwd, 415, "Unsupported Media Type");
        let out = p.h.drain();
        if fr == "no" {
            assert_eq!(out, [], "Failure-Report no: no REPORT");
        } else {
            p.expect_report(&out, "415 Unsupported Media Type");
        }
        // The transaction is over: no 408 later.
        assert_eq!(p.h.tick(100.0), [], "{fr}");
        assert_eq!(p.h.relay.table_sizes().1, 0, "{fr}");
    }
}

/// Answered transactions leave their timers behind; they must not pile up
/// (one per message for the whole txn timeout), and the rebuild that drops them must
/// keep the live ones: a SEND left unanswered through it still gets its 408.
#[test]
fn answered_transactions_do_not_pile_up_timers() {
    let mut p = pair(Duration::from_secs(30));
    let (_, pending) = p.send("yes", 1.0, 1.0);
    let mut peak = 0;
    for i in 0..20_000 {
        let t = 1.0 + f64::from(i) * 0.0001;
        let (_, fwd) = p.send("yes", t, t);
        p.respond(t, &fwd, 200, "OK");
        assert_eq!(p.h.drain(), []);
        peak = peak.max(p.h.relay.timer_count());
    }
    // Live: at most 2 transactions, 2 sessions, 2 connections; 20,001 timers were pushed.
    assert_eq!(p.h.relay.table_sizes().1, 1);
    assert!(peak <= 2 * 6 + 4096 + 1, "timer heap grew to {peak}");
    assert!(p.h.relay.timer_count() < 4200);
    // The unanswered SEND sent first still times out at 31 s.
    assert_eq!(p.h.tick(30.9), []);
    let out = p.h.tick(31.0);
    p.expect_report(&out, "408 Request Timeout");
    p.respond(31.5, &pending, 200, "OK");
    assert_eq!(p.h.drain(), []);
}

#[test]
fn next_hop_connection_closing_fails_pending_sends() {
    let mut p = pair(Duration::from_secs(30));
    p.send("yes", 1.0, 1.0);
    let (b, at) = (p.b, p.h.at(3.0));
    p.h.relay.handle_closed(at, b);
    let out = p.h.drain();
    p.expect_report(&out, "408 Request Timeout");
    assert_eq!(p.h.tick(100.0), []);
}

/// With a TLS port configured, a client on a secure connection is handed an msrps: URI
/// with the TLS port, and that URI routes to it; msrps with the TCP port is foreign.
#[test]
fn tls_clients_get_msrps_use_path_on_the_tls_port() {
    let mut cfg = config();
    cfg.tls_ports = vec![2856];
    let mut h = Harness::new(cfg);
    let secure = h.open_kind(
        0.0,
        ConnKind::Inbound {
            peer: ([127, 0, 0, 1], 40001).into(),
            transport: Transport::Tls,
            relay: None,
        },
    );
    let plain = h.open(0.0, true);
    let tls_relay = "msrps://relay.example.com:2856;tcp";
    let tid = h.tid();
    let m =
        format!("MSRP {tid} AUTH\r\nTo-Path: {tls_relay}\r\nFrom-Path: {BOB}\r\n-------{tid}$\r\n");
    h.feed(0.1, secure, m.as_bytes());
    let out = h.drain();
    assert_eq!(out.len(), 1, "{out:?}");
    let head = frame_to(&out[0], secure);
    let ub = header(head, "Use-Path").unwrap().to_string();
    let sid = ub
        .strip_prefix("msrps://relay.example.com:2856/")
        .and_then(|r| r.strip_suffix(";tcp"))
        .unwrap_or_else(|| panic!("Use-Path form: {ub}"));
    let k = SessionKey::decode(sid).unwrap();
    assert_eq!((k.core, k.slot), (0, secure.slot));
    assert_eq!(
        head,
        format!(
            "MSRP {tid} 200 OK\r\nTo-Path: {BOB}\r\nFrom-Path: {tls_relay}\r\n\
             Use-Path: {ub}\r\nExpires: 600\r\n"
        )
    );
    // A plain client still gets msrp: with the TCP port.
    let ua = h.auth(0.2, plain, ALICE, None);
    let tid = h.send(
        0.3,
        plain,
        &format!("{ua} {ub} {BOB}"),
        ALICE,
        "msg00001",
        Some("no"),
    );
    let out = h.drain();
    assert_eq!(out.len(), 1, "{out:?}");
    let fwd = frame_to(&out[0], secure);
    assert_eq!(
        header(fwd, "From-Path"),
        Some(format!("{ub} {ua} {ALICE}").as_str())
    );
    assert_ne!(relay_tid(fwd), tid);
    // msrps: with our TCP port is not ours: the connection is dropped (§6.2).
    let foreign = format!("msrps://relay.example.com:2855/{sid};tcp");
    h.send(
        0.4,
        plain,
        &format!("{foreign} {BOB}"),
        ALICE,
        "msg00002",
        Some("no"),
    );
    assert_eq!(
        h.drain(),
        vec![Out::Close {
            to: key(plain),
            reason: CloseReason::NotAddressedToUs
        }]
    );
}

/// A peer identified by a certificate (RFC 4976 §6.1) may only send with a first
/// From-Path URI whose host the certificate covers; otherwise 403.
#[test]
fn relay_identified_by_certificate_speaks_for_its_host_only() {
    let mut h = Harness::new(config());
    let b = h.open(0.0, true);
    let ub = h.auth(0.1, b, BOB, None);
    let peer = h.open_kind(
        0.2,
        ConnKind::Inbound {
            peer: ([192, 0, 2, 7], 40002).into(),
            transport: Transport::Tls,
            relay: Some(msrpd::conn::PeerIdentity::new(|host| {
                host == "r1.example.com"
            })),
        },
    );
    let other = "msrp://other.example.com:2855/x;tcp";
    let tid = h.send(
        0.3,
        peer,
        &format!("{ub} {BOB}"),
        other,
        "msg00001",
        Some("partial"),
    );
    let out = h.drain();
    assert_eq!(out.len(), 2, "{out:?}");
    assert_eq!(
        frame_to(&out[0], peer),
        format!(
            "MSRP {tid} 403 From-Path host does not match the peer certificate\r\n\
             To-Path: {other}\r\nFrom-Path: {ub}\r\n"
        )
    );
    // Failure-Report partial: the sender also gets a REPORT (§6.4.1).
    let rep = frame_to(&out[1], peer);
    let rtid = relay_tid(rep);
    assert_eq!(
        rep,
        format!(
            "MSRP {rtid} REPORT\r\nTo-Path: {other}\r\nFrom-Path: {ub}\r\n\
             Message-ID: msg00001\r\nByte-Range: 1-5/5\r\nStatus: 000 403 Forbidden\r\n"
        )
    );
    let r1 = "msrp://r1.example.com:2855/x;tcp";
    h.send(
        0.4,
        peer,
        &format!("{ub} {BOB}"),
        r1,
        "msg00002",
        Some("no"),
    );
    let out = h.drain();
    assert_eq!(out.len(), 1, "{out:?}");
    let fwd = frame_to(&out[0], b);
    assert_eq!(
        header(fwd, "From-Path"),
        Some(format!("{ub} {r1}").as_str())
    );
}
