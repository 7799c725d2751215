//! The gateway engine on a virtual clock: the caller's part (transactions, the user
//! agent's answers and events) is played by the test.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::config::{Config, Hop, InviteRule, MessageRule};
use super::engine::*;
use crate::sip::Message as SipMessage;
use crate::ua::engine::{Originate, UaError, UaEvent};
use crate::ua::reassembly::Rendered;

const ALICE: &str = "\"Alice\" <sip:alice@Sip.Example>";
const BOB: &str = "<sip:bob@gw.example>";
const BOB_RURI: &str = "sip:bob@gw.example";

fn cfg() -> Config {
    Config {
        message_rules: vec![MessageRule {
            ruri: Some(regex::Regex::new(r"@gw\.example").unwrap()),
            notify: true,
            ..MessageRule::any()
        }],
        invite_rules: vec![InviteRule::any()],
        ..Config::default()
    }
}

/// A MESSAGE as the SIP layer hands it over.
fn message_full(
    from: &str,
    from_tag: bool,
    to: &str,
    ruri: &str,
    ct: Option<&str>,
    extra: &str,
    body: &[u8],
) -> SipMessage {
    let mut s = format!(
        "MESSAGE {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-1\r\n\
         Max-Forwards: 70\r\nFrom: {from}{}\r\nTo: {to}\r\nCall-ID: c1@192.0.2.1\r\n\
         CSeq: 1 MESSAGE\r\n{extra}",
        if from_tag { ";tag=f1" } else { "" }
    );
    if let Some(ct) = ct {
        s.push_str(&format!("Content-Type: {ct}\r\n"));
    }
    s.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut b = s.into_bytes();
    b.extend_from_slice(body);
    SipMessage::parse_own(Bytes::from(b)).unwrap()
}

fn message(from: &str, body: &str) -> SipMessage {
    message_full(
        from,
        true,
        BOB,
        BOB_RURI,
        Some("text/plain;charset=utf-8"),
        "",
        body.as_bytes(),
    )
}

/// The test's side of the engine: what it asked for, collected.
struct H {
    gw: Gateway<u64>,
    now: Instant,
    t0: Instant,
    next_tx: u64,
    answers: HashMap<u64, Vec<Answer<u64>>>,
    originates: VecDeque<(u64, String, Originate)>,
    sends: VecDeque<(u64, String, Bytes, bool)>,
    reports: Vec<(String, String, u16)>,
    out: Vec<OutMessage>,
    ends: Vec<String>,
    events: Vec<GatewayEvent>,
}

impl H {
    fn new(cfg: Config) -> H {
        let t0 = origin();
        H {
            gw: Gateway::new(cfg),
            now: t0,
            t0,
            next_tx: 1,
            answers: HashMap::new(),
            originates: VecDeque::new(),
            sends: VecDeque::new(),
            reports: Vec::new(),
            out: Vec::new(),
            ends: Vec::new(),
            events: Vec::new(),
        }
    }
    fn drain(&mut self) {
        while let Some(a) = self.gw.poll_action() {
            match a {
                GwAction::Answer(a) => self.answers.entry(a.tx).or_default().push(a),
                GwAction::Originate {
                    token,
                    key,
                    request,
                } => self.originates.push_back((token, key, request)),
                GwAction::SendMsrp {
                    seq,
                    ua_session,
                    body,
                    success_report,
                    ..
                } => self
                    .sends
                    .push_back((seq, ua_session, body, success_report)),
                GwAction::Report {
                    ua_session,
                    message_id,
                    status,
                } => self.reports.push((ua_session, message_id, status)),
                GwAction::SendMessage(m) => self.out.push(m),
                GwAction::EndSession { ua_session } => self.ends.push(ua_session),
            }
        }
        while let Some(e) = self.gw.poll_event() {
            self.events.push(e);
        }
    }
    /// A MESSAGE in: its transaction id.
    fn msg(&mut self, m: &SipMessage) -> u64 {
        let tx = self.next_tx;
        self.next_tx += 1;
        assert_eq!(self.gw.handle_message(self.now, tx, m), Handled::Taken);
        self.drain();
        tx
    }
    fn code(&self, tx: u64) -> Option<u16> {
        let a = self.answers.get(&tx)?;
        assert_eq!(a.len(), 1, "transaction {tx} answered {} times", a.len());
        Some(a[0].code)
    }
    fn originated(&mut self, sid: &str) {
        let (token, _, _) = self.originates.pop_front().expect("an Originate");
        self.gw.handle_originated(self.now, token, Ok(sid.into()));
        self.drain();
    }
    fn ua(&mut self, ev: UaEvent) -> bool {
        let r = self.gw.handle_ua_event(self.now, &ev);
        self.drain();
        r
    }
    fn up(&mut self, sid: &str, accept: &[&str]) {
        assert!(self.ua(UaEvent::SessionNew {
            session: sid.into(),
            from: BOB.into(),
            to: ALICE.into(),
            ruri: BOB_RURI.into(),
            peer_accept_types: accept.iter().map(|s| s.to_string()).collect(),
        }));
    }
    /// Answers every pending send Ok (message ids `m<seq>`): the bodies, in order.
    fn accept_sends(&mut self) -> Vec<(u64, String, Bytes)> {
        let mut done = Vec::new();
        while let Some((seq, sid, body, _)) = self.sends.pop_front() {
            self.gw.handle_sent(self.now, seq, Ok(format!("m{seq}")));
            self.drain();
            done.push((seq, sid, body));
        }
        done
    }
    fn report(&mut self, sid: &str, seq: u64, status: u16) {
        self.ua(UaEvent::ReportReceived {
            session: sid.into(),
            message_id: format!("m{seq}"),
            status,
            range: None,
            source: "report",
        });
    }
    fn advance(&mut self, d: Duration) {
        self.now += d;
        while let Some(t) = self.gw.poll_timeout() {
            if t > self.now {
                break;
            }
            self.gw.handle_timeout(t.max(self.now - d));
            self.drain();
        }
        self.gw.handle_timeout(self.now);
        self.drain();
    }
    fn received(&mut self, sid: &str, mid: &str, ct: &str, body: &str) {
        assert!(self.ua(UaEvent::MessageReceived {
            session: sid.into(),
            message_id: mid.into(),
            content_type: ct.into(),
            body: Rendered::Text(body.into()),
            cpim: None,
        }));
    }
}

/// The tests' time origin; every other instant is `origin + offset` (a virtual
/// clock). The one read of the real clock under src/gateway, test-only; the spelling
/// keeps it clear of the layering grep, aimed at non-test code (as in src/relay).
fn origin() -> Instant {
    <Instant>::now()
}

#[test]
fn hundred_messages_during_setup_go_in_order_exactly_once() {
    let mut h = H::new(cfg());
    let mut txs = Vec::new();
    for i in 0..60 {
        txs.push(h.msg(&message(ALICE, &format!("msg {i}"))));
    }
    assert_eq!(h.originates.len(), 1, "one session for the key");
    let (_, key, o) = &h.originates[0];
    assert_eq!(key, "alice@sip.example|bob@gw.example");
    assert_eq!(o.to, "sip:bob@gw.example", "mirrored To");
    assert_eq!(
        o.from.as_deref(),
        Some("sip:alice@Sip.Example"),
        "mirrored From"
    );
    assert_eq!(o.ruri, "sip:bob@gw.example", "mirrored Request-URI");
    h.originated("u1");
    for i in 60..100 {
        h.now += Duration::from_millis(5);
        txs.push(h.msg(&message(ALICE, &format!("msg {i}"))));
    }
    assert!(h.sends.is_empty(), "nothing goes before the session is up");
    assert!(h.answers.is_empty(), "nothing answered before the wait");
    let info = &h.gw.sessions()[0];
    assert_eq!((info.state, info.queued), ("calling", 100));
    h.up("u1", &["text/plain"]);
    // The first try finds no connection bound yet: it waits its turn again.
    let (seq, ..) = h.sends.pop_front().unwrap();
    h.gw.handle_sent(h.now, seq, Err(UaError::NotConnected));
    h.drain();
    assert!(h.sends.is_empty(), "nothing else goes meanwhile");
    h.advance(Duration::from_millis(100));
    let sent = h.accept_sends();
    assert_eq!(sent.len(), 100);
    assert_eq!(sent[0].0, seq, "the refused one first");
    let bodies: Vec<String> = sent
        .iter()
        .map(|(_, _, b)| String::from_utf8(b.to_vec()).unwrap())
        .collect();
    let want: Vec<String> = (0..100).map(|i| format!("msg {i}")).collect();
    assert_eq!(bodies, want, "arrival order, each once");
    for (seq, sid, _) in &sent {
        assert_eq!(sid, "u1");
        h.report("u1", *seq, 200);
    }
    for tx in &txs {
        assert_eq!(h.code(*tx), Some(200), "accepted within the wait");
    }
    assert_eq!(h.gw.unanswered(), 0);
    assert!(
        matches!(&h.events[0], GatewayEvent::SessionNew { key, origin: "message", .. } if key == "alice@sip.example|bob@gw.example")
    );
}

#[test]
fn two_messages_for_a_new_key_make_one_session_however_written() {
    let mut h = H::new(cfg());
    let a = h.msg(&message("sip:alice@SIP.EXAMPLE;transport=tcp", "one"));
    let b = h.msg(&message("<sip:alice@sip.example>", "two"));
    assert_eq!(h.originates.len(), 1);
    assert_eq!(h.gw.len(), 1);
    h.originated("u1");
    h.up("u1", &["text/plain"]);
    let sent = h.accept_sends();
    assert_eq!(sent.len(), 2);
    assert_eq!(&sent[0].2[..], b"one");
    assert_eq!(&sent[1].2[..], b"two");
    for (seq, ..) in &sent {
        h.report("u1", *seq, 200);
    }
    assert_eq!((h.code(a), h.code(b)), (Some(200), Some(200)));
}

#[test]
fn setup_refused_gives_the_event_and_the_mapped_answer() {
    let mut h = H::new(cfg());
    let txs: Vec<u64> = (0..3)
        .map(|i| h.msg(&message(ALICE, &format!("{i}"))))
        .collect();
    h.originated("u1");
    assert!(h.ua(UaEvent::SessionFailed {
        session: "u1".into(),
        code: 486,
        reason: "Busy Here".into(),
    }));
    for tx in &txs {
        assert_eq!(h.code(*tx), Some(486));
    }
    assert_eq!(
        h.events,
        [GatewayEvent::SetupFailed {
            key: "alice@sip.example|bob@gw.example".into(),
            from: "sip:alice@Sip.Example".into(),
            to: "sip:bob@gw.example".into(),
            ruri: "sip:bob@gw.example".into(),
            code: 486,
            reason: "Busy Here".into(),
        }]
    );
    assert!(
        h.out.is_empty(),
        "every sender heard through its answer: no notice"
    );
    assert!(h.gw.is_empty());
    // The next MESSAGE tries again.
    h.msg(&message(ALICE, "again"));
    assert_eq!(h.originates.len(), 1);
}

#[test]
fn setup_timing_out_after_the_wait_gives_202_then_the_event_and_a_notice() {
    let mut h = H::new(cfg());
    let a = h.msg(&message(ALICE, "lost?"));
    h.originated("u1");
    h.advance(Duration::from_millis(1999));
    assert_eq!(h.code(a), None);
    h.advance(Duration::from_millis(1));
    assert_eq!(h.code(a), Some(202), "queued, delivery not known");
    // Timer B: the user agent says 408.
    h.now += Duration::from_secs(30);
    h.ua(UaEvent::SessionFailed {
        session: "u1".into(),
        code: 408,
        reason: "Request Timeout".into(),
    });
    assert!(matches!(
        h.events[..],
        [GatewayEvent::SetupFailed { code: 408, .. }]
    ));
    assert_eq!(h.code(a), Some(202), "answered once, not again");
    assert_eq!(h.out.len(), 1, "the sender is told");
    let n = &h.out[0];
    assert_eq!(n.id, 0);
    assert_eq!(n.to, "<sip:alice@Sip.Example>");
    assert_eq!(n.ruri, "sip:alice@Sip.Example");
    assert_eq!(n.from, "<sip:bob@gw.example>");
    assert!(String::from_utf8_lossy(&n.body).contains("1 message(s)"));
    // A failure within the wait is the mapped answer, not 202.
    let b = h.msg(&message(ALICE, "b"));
    h.originated("u2");
    h.ua(UaEvent::SessionFailed {
        session: "u2".into(),
        code: 408,
        reason: "Request Timeout".into(),
    });
    assert_eq!(h.code(b), Some(408));
}

#[test]
fn two_hundred_within_the_wait_and_202_after_it() {
    let mut h = H::new(cfg());
    let a = h.msg(&message(ALICE, "a"));
    h.originated("u1");
    h.up("u1", &["text/plain"]);
    let b = h.msg(&message(ALICE, "b"));
    let sent = h.accept_sends();
    assert!(sent.iter().all(|s| s.1 == "u1"));
    assert_eq!(sent.len(), 2);
    h.advance(Duration::from_millis(1500));
    h.report("u1", sent[0].0, 200);
    assert_eq!(h.code(a), Some(200));
    assert_eq!(h.code(b), None);
    h.advance(Duration::from_millis(500));
    assert_eq!(h.code(b), Some(202));
    // Its success REPORT after the wait changes nothing.
    h.report("u1", sent[1].0, 200);
    assert_eq!(h.code(b), Some(202));
    assert_eq!(h.gw.unanswered(), 0);
}

#[test]
fn a_failure_within_the_wait_is_mapped() {
    let mut h = H::new(cfg());
    h.msg(&message(ALICE, "x"));
    h.originated("u1");
    h.up("u1", &["text/plain", "message/cpim"]);
    let sent0 = h.accept_sends();
    h.report("u1", sent0[0].0, 200);
    let mut codes = Vec::new();
    for status in [408, 415, 481, 400, 413] {
        let tx = h.msg(&message(ALICE, "y"));
        let sent = h.accept_sends();
        h.report("u1", sent[0].0, status);
        codes.push(h.code(tx).unwrap());
        if status == 415 {
            assert_eq!(
                h.answers[&tx][0].accept.as_deref(),
                Some("text/plain, message/cpim")
            );
        }
    }
    assert_eq!(codes, [504, 415, 480, 502, 413]);
    // Refused by the user agent at once: 415 and 413.
    let tx = h.msg(&message(ALICE, "z"));
    let (seq, ..) = h.sends.pop_front().unwrap();
    h.gw.handle_sent(h.now, seq, Err(UaError::TooLarge));
    h.drain();
    assert_eq!(h.code(tx), Some(413));
}

#[test]
fn a_full_queue_gives_503_with_retry_after() {
    let mut h = H::new(Config {
        max_queue: 5,
        max_queue_bytes: 100,
        ..cfg()
    });
    let txs: Vec<u64> = (0..5)
        .map(|_| h.msg(&message(ALICE, "0123456789")))
        .collect();
    let sixth = h.msg(&message(ALICE, "x"));
    let a = &h.answers[&sixth][0];
    assert_eq!((a.code, a.retry_after), (503, Some(5)));
    assert!(txs.iter().all(|t| h.code(*t).is_none()));
    // Bytes bound too: a new key, 2 x 60 bytes against 100.
    let carol = "<sip:carol@sip.example>";
    let big = "x".repeat(60);
    let c1 = h.msg(&message(carol, &big));
    let c2 = h.msg(&message(carol, &big));
    assert_eq!(h.code(c1), None);
    assert_eq!(h.code(c2), Some(503));
    // The session table's bound.
    let mut h = H::new(Config {
        max_sessions: 1,
        ..cfg()
    });
    h.msg(&message(ALICE, "a"));
    let t = h.msg(&message(carol, "b"));
    assert_eq!(h.code(t), Some(503));
    assert_eq!(h.answers[&t][0].retry_after, Some(5));
}

#[test]
fn types_not_accepted_get_415_with_accept() {
    let mut h = H::new(cfg());
    let m = message_full(
        ALICE,
        true,
        BOB,
        BOB_RURI,
        Some("application/octet-stream"),
        "",
        b"\x00\x01",
    );
    let tx = h.msg(&m);
    let a = &h.answers[&tx][0];
    assert_eq!(a.code, 415);
    assert_eq!(a.accept.as_deref(), Some("text/plain, message/cpim"));
    assert!(h.originates.is_empty(), "refused before any session");
    // message/cpim passes the rule; once the peer is up with text/plain only, it does
    // not pass the peer.
    let cpim = "From: <sip:alice@sip.example>\r\nTo: <sip:bob@gw.example>\r\n\r\nContent-Type: text/plain\r\n\r\nhi";
    let m = message_full(
        ALICE,
        true,
        BOB,
        BOB_RURI,
        Some("message/cpim"),
        "",
        cpim.as_bytes(),
    );
    let first = h.msg(&m);
    assert_eq!(h.code(first), None, "queued");
    h.originated("u1");
    h.up("u1", &["text/plain"]);
    let (seq, ..) = h.sends.pop_front().unwrap();
    h.gw.handle_sent(h.now, seq, Err(UaError::NotAccepted));
    h.drain();
    assert_eq!(h.code(first), Some(415));
    assert_eq!(h.answers[&first][0].accept.as_deref(), Some("text/plain"));
    let second = h.msg(&m);
    assert_eq!(h.code(second), Some(415), "refused on arrival now");
    assert_eq!(h.answers[&second][0].accept.as_deref(), Some("text/plain"));
}

/// An MSRP-side session the user agent answered (an INVITE from bob to alice).
fn adopted(h: &mut H, sid: &str) {
    assert!(h.gw.adopt(
        h.now,
        &UaEvent::SessionNew {
            session: sid.into(),
            from: "<sip:bob@msrp.example>;tag=9".into(),
            to: "<sip:alice@sip.example>".into(),
            ruri: "sip:gw@msrpd.example".into(),
            peer_accept_types: vec!["text/plain".into()],
        }
    ));
    h.drain();
}

#[test]
fn msrp_messages_become_messages_large_ones_over_tcp() {
    let mut h = H::new(cfg());
    adopted(&mut h, "u9");
    assert!(
        matches!(&h.events[0], GatewayEvent::SessionNew { key, origin: "invite", .. } if key == "alice@sip.example|bob@msrp.example")
    );
    h.received("u9", "r1", "text/plain", "hello");
    let m = h.out.pop().unwrap();
    assert_eq!(
        (m.from.as_str(), m.to.as_str(), m.ruri.as_str()),
        (
            "sip:bob@msrp.example",
            "sip:alice@sip.example",
            "sip:alice@sip.example"
        )
    );
    assert!(!m.tcp);
    assert_eq!(&m.body[..], b"hello");
    h.gw.handle_message_response(h.now, m.id, 100);
    h.gw.handle_message_response(h.now, m.id, 200);
    h.drain();
    assert_eq!(h.reports, [("u9".into(), "r1".into(), 200)]);
    let big = "x".repeat(4096);
    h.received("u9", "r2", "text/plain", &big);
    let m = h.out.pop().unwrap();
    assert!(m.tcp, "a 4 KiB body is never sent over UDP (RFC 3428 §8)");
    assert_eq!(m.body.len(), 4096);
    // Exactly 1300 bytes may still go over UDP.
    h.gw.handle_message_response(h.now, m.id, 202);
    h.drain();
    h.received("u9", "r3", "text/plain", &"y".repeat(1300));
    assert!(!h.out.pop().unwrap().tcp);
}

#[test]
fn a_udp_only_next_hop_refuses_large_bodies_with_413() {
    let mut c = cfg();
    c.invite_rules[0].hop = Hop {
        proxy: Some("sip:proxy.example;transport=udp".into()),
        udp_only: true,
    };
    let mut h = H::new(c);
    adopted(&mut h, "u9");
    h.received("u9", "r1", "text/plain", &"x".repeat(4096));
    assert!(h.out.is_empty());
    assert_eq!(h.reports, [("u9".into(), "r1".into(), 413)]);
    h.received("u9", "r2", "text/plain", "small");
    let m = h.out.pop().unwrap();
    assert_eq!(
        m.next_hop.as_deref(),
        Some("sip:proxy.example;transport=udp")
    );
    assert!(!m.tcp);
}

#[test]
fn message_responses_map_back_to_reports_one_transaction_at_a_time() {
    let mut h = H::new(cfg());
    adopted(&mut h, "u9");
    for (i, _) in [486, 404, 408, 415, 503, 200].iter().enumerate() {
        h.received("u9", &format!("r{i}"), "text/plain", "x");
    }
    let mut got = Vec::new();
    for code in [486, 404, 408, 415, 503, 200] {
        assert_eq!(h.out.len(), 1, "RFC 3428 §8: one MESSAGE pending at a time");
        let m = h.out.pop().unwrap();
        h.gw.handle_message_response(h.now, m.id, code);
        h.drain();
        got.push(h.reports.last().unwrap().2);
    }
    assert_eq!(got, [408, 403, 408, 415, 408, 200]);
    let mids: Vec<&str> = h.reports.iter().map(|r| r.1.as_str()).collect();
    assert_eq!(mids, ["r0", "r1", "r2", "r3", "r4", "r5"]);
    assert!(h.out.is_empty());
    // An unknown or repeated response changes nothing.
    h.gw.handle_message_response(h.now, 12345, 200);
    h.drain();
    assert_eq!(h.reports.len(), 6);
}

#[test]
fn message_timeout_two_hours_after_the_last_message() {
    let mut h = H::new(cfg());
    h.msg(&message(ALICE, "a"));
    h.originated("u1");
    h.up("u1", &["text/plain"]);
    h.accept_sends();
    // The MSRP side keeps talking: not a MESSAGE.
    for i in 0..3 {
        h.advance(Duration::from_secs(1800));
        h.received("u1", &format!("r{i}"), "text/plain", "x");
        let m = h.out.pop().unwrap();
        h.gw.handle_message_response(h.now, m.id, 200);
        h.drain();
    }
    assert_eq!(h.gw.len(), 1);
    h.advance(Duration::from_secs(1800) - Duration::from_millis(1));
    assert_eq!(h.gw.len(), 1);
    h.advance(Duration::from_millis(1));
    assert!(h.gw.is_empty());
    assert_eq!(h.ends, ["u1"]);
    assert!(
        matches!(h.events.last(), Some(GatewayEvent::SessionEnd { why, .. }) if why == "message timeout")
    );
    assert_eq!(h.now - h.t0, Duration::from_secs(7200));
}

#[test]
fn session_timeout_twelve_hours_after_the_last_message_either_way() {
    let mut h = H::new(Config {
        message_timeout: Duration::from_secs(30 * 3600),
        ..cfg()
    });
    adopted(&mut h, "u9");
    h.advance(Duration::from_secs(6 * 3600));
    h.received("u9", "r1", "text/plain", "x");
    let m = h.out.pop().unwrap();
    h.gw.handle_message_response(h.now, m.id, 200);
    h.drain();
    // The first deadline (12 h) passes: re-armed, not ended.
    h.advance(Duration::from_secs(6 * 3600));
    assert_eq!(h.gw.len(), 1);
    assert!(h.gw.poll_timeout().unwrap() > h.now);
    h.advance(Duration::from_secs(6 * 3600));
    assert!(h.gw.is_empty());
    assert!(
        matches!(h.events.last(), Some(GatewayEvent::SessionEnd { why, .. }) if why == "session timeout")
    );
    assert_eq!(h.ends, ["u9"]);
    assert_eq!(h.gw.poll_timeout(), None, "no timer left behind");
}

#[test]
fn api_end_while_queued_answers_every_transaction() {
    let mut h = H::new(cfg());
    let a = h.msg(&message(ALICE, "a"));
    h.originated("u1");
    h.up("u1", &["text/plain"]);
    // a: sent, its acceptance awaited; b: in the user agent's hands; c: queued.
    let (seq_a, ..) = h.sends.pop_front().unwrap();
    h.gw.handle_sent(h.now, seq_a, Ok(format!("m{seq_a}")));
    h.drain();
    let b = h.msg(&message(ALICE, "b"));
    let c = h.msg(&message(ALICE, "c"));
    let (seq_b, ..) = h.sends.pop_front().unwrap();
    assert_eq!(h.gw.sessions()[0].queued, 2);
    assert!(h.gw.end(h.now, "alice@sip.example|bob@gw.example"));
    h.drain();
    assert_eq!(h.code(a), Some(202), "handed over: it may still arrive");
    assert_eq!(h.code(b), Some(ENDED_CODE));
    assert_eq!(h.code(c), Some(ENDED_CODE));
    assert_eq!(h.ends, ["u1"]);
    assert!(
        matches!(h.events.last(), Some(GatewayEvent::SessionEnd { why, .. }) if why == "operator")
    );
    assert_eq!(h.gw.unanswered(), 0);
    // What comes late is ignored; nothing is answered twice.
    h.gw.handle_sent(h.now, seq_b, Ok("late".into()));
    h.report("u1", seq_a, 200);
    assert!(!h.ua(UaEvent::SessionEnd {
        session: "u1".into(),
        by: "local",
        why: "operator",
    }));
    h.advance(Duration::from_secs(10));
    for t in [a, b, c] {
        h.code(t);
    }
    assert!(!h.gw.end(h.now, "alice@sip.example|bob@gw.example"));
    assert_eq!(h.gw.poll_timeout(), None);
    // Ended before the user agent even gave its id: that session is ended too.
    let d = h.msg(&message(ALICE, "d"));
    assert!(h.gw.end(h.now, "alice@sip.example|bob@gw.example"));
    h.drain();
    assert_eq!(h.code(d), Some(ENDED_CODE));
    h.originated("u2");
    assert_eq!(h.ends, ["u1", "u2"]);
}

#[test]
fn hostile_messages_get_their_errors_and_the_gateway_keeps_working() {
    let mut h = H::new(cfg());
    let ct = Some("text/plain");
    let cases: Vec<(SipMessage, u16)> = vec![
        (message_full(ALICE, true, BOB, BOB_RURI, ct, "", b""), 400),
        (
            message_full(ALICE, true, BOB, BOB_RURI, ct, "", &vec![b'x'; 1 << 20]),
            413,
        ),
        (
            message_full(ALICE, true, BOB, BOB_RURI, Some("text"), "", b"x"),
            400,
        ),
        (
            message_full(ALICE, true, BOB, BOB_RURI, Some("/;"), "", b"x"),
            400,
        ),
        (
            message_full(ALICE, true, BOB, BOB_RURI, None, "", b"x"),
            400,
        ),
        (message_full(ALICE, false, BOB, BOB_RURI, ct, "", b"x"), 400),
        (
            message_full(
                ALICE,
                true,
                BOB,
                BOB_RURI,
                ct,
                "Content-Encoding: gzip\r\n",
                b"x",
            ),
            415,
        ),
    ];
    for (m, want) in &cases {
        let tx = h.msg(m);
        assert_eq!(
            h.code(tx),
            Some(*want),
            "{:?}",
            String::from_utf8_lossy(m.head())
        );
    }
    let gz = h
        .answers
        .values()
        .find(|a| a[0].accept_encoding.is_some())
        .unwrap();
    assert_eq!(gz[0].accept_encoding.as_deref(), Some("identity"));
    assert!(h.originates.is_empty() && h.gw.is_empty());
    // Not ours: another Request-URI, or inside a dialog.
    let other = message_full(ALICE, true, BOB, "sip:bob@elsewhere", ct, "", b"x");
    assert_eq!(h.gw.handle_message(h.now, 99, &other), Handled::NotOurs);
    let in_dialog = message_full(
        ALICE,
        true,
        "<sip:bob@gw.example>;tag=t",
        BOB_RURI,
        ct,
        "",
        b"x",
    );
    assert_eq!(h.gw.handle_message(h.now, 98, &in_dialog), Handled::NotOurs);
    // Still working.
    let ok = h.msg(&message(ALICE, "fine"));
    assert_eq!(h.originates.len(), 1);
    h.originated("u1");
    h.up("u1", &["text/plain"]);
    let sent = h.accept_sends();
    h.report("u1", sent[0].0, 200);
    assert_eq!(h.code(ok), Some(200));
}

#[test]
fn glare_an_incoming_invite_replaces_a_setup_under_way() {
    let mut h = H::new(cfg());
    let a = h.msg(&message(ALICE, "a"));
    h.originated("u1");
    // bob's INVITE to alice arrives and is answered while ours is still calling.
    assert!(h.gw.adopt(
        h.now,
        &UaEvent::SessionNew {
            session: "u2".into(),
            from: "<sip:bob@gw.example>;tag=x".into(),
            to: "<sip:alice@sip.example>".into(),
            ruri: "sip:alice@msrpd.example".into(),
            peer_accept_types: vec!["text/plain".into()],
        }
    ));
    h.drain();
    assert_eq!(h.ends, ["u1"], "our INVITE is ended");
    assert_eq!(h.gw.len(), 1);
    let sent = h.accept_sends();
    assert_eq!(sent[0].1, "u2");
    h.report("u2", sent[0].0, 200);
    assert_eq!(h.code(a), Some(200));
    // u1's fate is no longer the gateway's.
    assert!(!h.ua(UaEvent::SessionFailed {
        session: "u1".into(),
        code: 487,
        reason: "cancelled".into(),
    }));
    // A third one for the same key, with the session up: ended.
    adopted_as(
        &mut h,
        "u3",
        "<sip:bob@gw.example>",
        "<sip:alice@sip.example>",
    );
    assert_eq!(h.ends, ["u1", "u3"]);
    // Not a gateway INVITE at all: not taken.
    let mut c = cfg();
    c.invite_rules[0].to = Some(regex::Regex::new("@sms").unwrap());
    let mut h2 = H::new(c);
    assert!(!h2.gw.adopt(
        h2.now,
        &UaEvent::SessionNew {
            session: "u5".into(),
            from: BOB.into(),
            to: ALICE.into(),
            ruri: BOB_RURI.into(),
            peer_accept_types: vec![],
        }
    ));
}

fn adopted_as(h: &mut H, sid: &str, from: &str, to: &str) {
    assert!(h.gw.adopt(
        h.now,
        &UaEvent::SessionNew {
            session: sid.into(),
            from: from.into(),
            to: to.into(),
            ruri: "sip:x@msrpd.example".into(),
            peer_accept_types: vec!["text/plain".into()],
        }
    ));
    h.drain();
}

#[test]
fn zero_wait_answers_202_on_queueing_and_asks_no_success_report() {
    let mut h = H::new(Config {
        delivery_wait: Duration::ZERO,
        ..cfg()
    });
    let a = h.msg(&message(ALICE, "a"));
    assert_eq!(h.code(a), Some(202));
    h.originated("u1");
    h.up("u1", &["*"]);
    let (_, _, _, success_report) = h.sends.pop_front().unwrap();
    assert!(!success_report);
}

#[test]
fn the_user_agent_refusing_the_setup_fails_it_with_500() {
    let mut h = H::new(cfg());
    let a = h.msg(&message(ALICE, "a"));
    let (token, ..) = h.originates.pop_front().unwrap();
    h.gw.handle_originated(h.now, token, Err("at the limit".into()));
    h.drain();
    assert_eq!(h.code(a), Some(500));
    assert!(matches!(
        h.events[..],
        [GatewayEvent::SetupFailed { code: 500, .. }]
    ));
}

#[test]
fn remote_end_after_up_answers_waiting_and_notifies_lost() {
    let mut h = H::new(Config {
        max_waiting: 1,
        ..cfg()
    });
    let a = h.msg(&message(ALICE, "a"));
    let b = h.msg(&message(ALICE, "b"));
    h.originated("u1");
    h.up("u1", &["text/plain"]);
    let (sa, ..) = h.sends.pop_front().unwrap();
    h.gw.handle_sent(h.now, sa, Ok("ma".into()));
    h.drain();
    // b: beyond max_waiting, answered 202 as soon as it is sent.
    let (sb, ..) = h.sends.pop_front().unwrap();
    h.gw.handle_sent(h.now, sb, Ok("mb".into()));
    h.drain();
    assert_eq!(h.code(b), Some(202));
    let c = h.msg(&message(ALICE, "c"));
    let (sc, ..) = h.sends.pop_front().unwrap();
    h.gw.handle_sent(h.now, sc, Err(UaError::Busy));
    h.drain();
    h.advance(Duration::from_secs(3));
    assert_eq!(h.code(c), Some(202), "queued behind backpressure: 202");
    // Its retry comes; the peer hangs up before the result.
    let (sc2, ..) = h.sends.pop_front().unwrap();
    assert_eq!(sc2, sc);
    assert!(h.ua(UaEvent::SessionEnd {
        session: "u1".into(),
        by: "remote",
        why: "bye",
    }));
    assert_eq!(h.code(a), Some(202));
    assert!(h.ends.is_empty(), "the user agent ended it itself");
    assert!(
        matches!(h.events.last(), Some(GatewayEvent::SessionEnd { why, .. }) if why == "remote: bye")
    );
    assert_eq!(h.out.len(), 1, "c was answered 202 and never went: notice");
}

#[test]
fn core_of_is_stable_and_in_range() {
    assert_eq!(core_of("k", 1), 0);
    let a = core_of("alice@sip.example|bob@gw.example", 4);
    assert_eq!(a, core_of("alice@sip.example|bob@gw.example", 4));
    assert!(a < 4);
    assert_eq!(core_of("x", 0), 0);
}

mod property {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        Msg(u8),
        Originated(bool),
        Up(u8),
        Fail(u8, u16),
        EndUa(u8),
        Sent(u8),
        Report(u8, bool),
        Advance(u16),
        ApiEnd(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (0u8..3).prop_map(Op::Msg),
            2 => any::<bool>().prop_map(Op::Originated),
            2 => (0u8..3).prop_map(Op::Up),
            1 => ((0u8..3), proptest::sample::select(vec![408u16, 486, 503, 603])).prop_map(|(k, c)| Op::Fail(k, c)),
            1 => (0u8..3).prop_map(Op::EndUa),
            5 => (0u8..4).prop_map(Op::Sent),
            3 => (any::<u8>(), any::<bool>()).prop_map(|(i, ok)| Op::Report(i, ok)),
            2 => (0u16..2500).prop_map(Op::Advance),
            1 => (0u8..3).prop_map(Op::ApiEnd),
        ]
    }

    fn from_of(k: u8) -> String {
        format!("<sip:user{k}@sip.example>")
    }
    fn key_of(k: u8) -> String {
        format!("user{k}@sip.example|bob@gw.example")
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        #[test]
        fn no_loss_no_duplicate_every_transaction_answered_once(ops in proptest::collection::vec(op(), 1..120)) {
            let mut h = H::new(Config { max_queue: 8, ..cfg() });
            // tx -> (key, body number); body numbers rise with arrival.
            let mut msgs: HashMap<u64, (u8, u64)> = HashMap::new();
            let mut arrival_step: HashMap<u64, usize> = HashMap::new();
            let mut arrived_at: HashMap<u64, Instant> = HashMap::new();
            let mut answered_at: HashMap<u64, Instant> = HashMap::new();
            let mut ua_of: HashMap<u8, String> = HashMap::new();
            let mut key_by_token: HashMap<u64, u8> = HashMap::new();
            let mut delivered: Vec<(String, u64)> = Vec::new();
            let mut sent_mids: Vec<(String, String)> = Vec::new();
            let mut finished: HashMap<u8, Vec<usize>> = HashMap::new();
            let mut n = 0u64;
            let mut next_sid = 0u32;
            let mut seen_events = 0;
            let mut step = 0usize;
            let pump = |h: &mut H, step: usize, finished: &mut HashMap<u8, Vec<usize>>, seen: &mut usize| {
                for e in &h.events[*seen..] {
                    let key = match e {
                        GatewayEvent::SetupFailed { key, .. } | GatewayEvent::SessionEnd { key, .. } => key,
                        _ => continue,
                    };
                    let k = (0..3u8).find(|k| key_of(*k) == *key).unwrap();
                    finished.entry(k).or_default().push(step);
                }
                *seen = h.events.len();
            };
            let all_ops = ops.into_iter().chain(std::iter::once(Op::Advance(0)));
            for o in all_ops {
                step += 1;
                match o {
                    Op::Msg(k) => {
                        n += 1;
                        let tx = h.msg(&message(&from_of(k), &format!("{n}")));
                        msgs.insert(tx, (k, n));
                        arrival_step.insert(tx, step);
                        arrived_at.insert(tx, h.now);
                        while let Some((token, key, _)) = h.originates.back().cloned() {
                            if key_by_token.contains_key(&token) { break; }
                            let k = (0..3u8).find(|k| key_of(*k) == key).unwrap();
                            key_by_token.insert(token, k);
                        }
                    }
                    Op::Originated(ok) => {
                        if let Some((token, _, _)) = h.originates.pop_front() {
                            let k = key_by_token[&token];
                            if ok {
                                next_sid += 1;
                                let sid = format!("u{next_sid}");
                                ua_of.insert(k, sid.clone());
                                h.gw.handle_originated(h.now, token, Ok(sid));
                            } else {
                                h.gw.handle_originated(h.now, token, Err("no".into()));
                            }
                            h.drain();
                        }
                    }
                    Op::Up(k) => {
                        if let Some(sid) = ua_of.get(&k).cloned() {
                            h.ua(UaEvent::SessionNew {
                                session: sid,
                                from: BOB.into(),
                                to: from_of(k),
                                ruri: BOB_RURI.into(),
                                peer_accept_types: vec!["text/plain".into()],
                            });
                        }
                    }
                    Op::Fail(k, code) => {
                        if let Some(sid) = ua_of.get(&k).cloned() {
                            h.ua(UaEvent::SessionFailed { session: sid, code, reason: "x".into() });
                        }
                    }
                    Op::EndUa(k) => {
                        if let Some(sid) = ua_of.get(&k).cloned() {
                            h.ua(UaEvent::SessionEnd { session: sid, by: "remote", why: "bye" });
                        }
                    }
                    Op::Sent(choice) => {
                        if let Some((seq, sid, body, _)) = h.sends.pop_front() {
                            let r = match choice {
                                0 | 1 => Ok(format!("m{seq}")),
                                2 => Err(UaError::NotConnected),
                                _ => Err(UaError::Busy),
                            };
                            if r.is_ok() {
                                let num: u64 = String::from_utf8(body.to_vec()).unwrap().parse().unwrap();
                                delivered.push((sid.clone(), num));
                                sent_mids.push((sid, format!("m{seq}")));
                            }
                            h.gw.handle_sent(h.now, seq, r);
                            h.drain();
                        }
                    }
                    Op::Report(i, ok) => {
                        if !sent_mids.is_empty() {
                            let (sid, mid) = sent_mids[i as usize % sent_mids.len()].clone();
                            h.ua(UaEvent::ReportReceived {
                                session: sid, message_id: mid,
                                status: if ok { 200 } else { 408 },
                                range: None, source: "report",
                            });
                        }
                    }
                    Op::Advance(ms) => h.advance(Duration::from_millis(u64::from(ms))),
                    Op::ApiEnd(k) => {
                        h.gw.end(h.now, &key_of(k));
                        h.drain();
                    }
                }
                pump(&mut h, step, &mut finished, &mut seen_events);
                for tx in h.answers.keys() {
                    answered_at.entry(*tx).or_insert(h.now);
                }
            }
            // Wind down: everything handed out is taken, every session ended.
            step += 1;
            while let Some((seq, sid, body, _)) = h.sends.pop_front() {
                let num: u64 = String::from_utf8(body.to_vec()).unwrap().parse().unwrap();
                delivered.push((sid, num));
                h.gw.handle_sent(h.now, seq, Ok(format!("m{seq}")));
                h.drain();
            }
            while let Some((token, _, _)) = h.originates.pop_front() {
                h.gw.handle_originated(h.now, token, Err("wind down".into()));
                h.drain();
            }
            for k in 0..3 {
                h.gw.end(h.now, &key_of(k));
                h.drain();
            }
            pump(&mut h, step, &mut finished, &mut seen_events);
            // Ending a session answers its MESSAGEs there and then, not at their wait.
            prop_assert_eq!(h.gw.unanswered(), 0);
            h.advance(Duration::from_secs(3));
            prop_assert!(h.gw.is_empty());
            prop_assert_eq!(h.gw.poll_timeout(), None);
            // Every transaction answered exactly once.
            for tx in msgs.keys() {
                let a = h.answers.get(tx).map_or(0, Vec::len);
                prop_assert_eq!(a, 1, "tx {} answered {} times", tx, a);
            }
            prop_assert_eq!(h.answers.len(), msgs.len());
            // Delivered at most once, in arrival order within a session.
            let mut seen = std::collections::HashSet::new();
            let mut last: HashMap<String, u64> = HashMap::new();
            for (sid, num) in &delivered {
                prop_assert!(seen.insert(*num), "message {} delivered twice", num);
                let l = last.entry(sid.clone()).or_insert(0);
                prop_assert!(*l < *num, "out of order in {}: {} after {}", sid, num, l);
                *l = *num;
            }
            // 200 means delivered; a 202 not delivered means its session ended after it
            // arrived (what the notice is for), never a silent drop.
            for (tx, (k, num)) in &msgs {
                let code = h.answers[tx][0].code;
                if code == 200 {
                    prop_assert!(seen.contains(num), "200 for undelivered {}", num);
                }
                // A message never handed to the MSRP side is answered 202 only when
                // its wait is over; before, its session's end gives its failure.
                if code == 202 && !seen.contains(num) && let Some(t) = answered_at.get(tx) {
                    prop_assert!(
                        *t - arrived_at[tx] >= h.gw.config().delivery_wait,
                        "202 for never-sent message {} before its wait", num
                    );
                }
                if code == 202 && !seen.contains(num) {
                    let at = arrival_step[tx];
                    prop_assert!(
                        finished.get(k).is_some_and(|v| v.iter().any(|s| *s >= at)),
                        "202 message {} lost without its session ending", num
                    );
                }
            }
        }
    }
}
