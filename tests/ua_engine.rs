//! The user agent's engine on a virtual clock (src/ua/engine.rs): an INVITE offering
//! MSRP answered through a real transaction table, the ACK, MSRP frames scanned by the
//! codec's scanner, the responses, REPORTs and events that come out, BYE, timers.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use msrpd::codec::{Event as ScanEvent, FailureReport, ScanLimits, Scanner, SuccessReport};
use msrpd::conn::{Action, ConnId, Part};
use msrpd::sip::txn::{Config as TxConfig, Event, Peer, Transactions, Transport};
use msrpd::sip::{HeaderName, Message, Writer};
use msrpd::ua::engine::{Config, Rule, Ua, UaEvent, UaSip};
use msrpd::ua::reassembly::Rendered;
use rand::SeedableRng;

const PEER_PATH: &str = "msrp://192.0.2.7:7394/peer1;tcp";

fn peer() -> Peer {
    Peer {
        transport: Transport::Udp,
        addr: "192.0.2.7:5062".parse().unwrap(),
        conn: None,
    }
}

fn conn(slot: u32) -> ConnId {
    ConnId {
        core: 0,
        slot,
        generation: 1,
    }
}

fn offer(accept: &str) -> String {
    format!(
        "v=0\r\no=alice 1 1 IN IP4 192.0.2.7\r\ns=-\r\nc=IN IP4 192.0.2.7\r\nt=0 0\r\n\
         m=message 7394 TCP/MSRP *\r\na=accept-types:{accept}\r\na=path:{PEER_PATH}\r\n"
    )
}

fn invite(call: &str, body: &str) -> Message {
    let mut w = Writer::request("INVITE", "sip:chat@192.0.2.1");
    w.header(
        "Via",
        &format!("SIP/2.0/UDP 192.0.2.7:5062;branch=z9hG4bK-{call};rport"),
    );
    w.header("Max-Forwards", "70");
    w.header("From", "<sip:alice@example.com>;tag=af1");
    w.header("To", "<sip:chat@example.com>");
    w.header("Call-ID", call);
    w.header("CSeq", "1 INVITE");
    w.header("Contact", "<sip:alice@192.0.2.7:5062>");
    w.into_message_body(Some("application/sdp"), body.as_bytes())
        .unwrap()
}

/// An in-dialog request from the peer (ACK or BYE) with our To tag.
fn in_dialog(method: &str, call: &str, to_tag: &str, seq: u32, branch: &str) -> Message {
    let mut w = Writer::request(method, "sip:msrpd@127.0.0.1:2855");
    w.header(
        "Via",
        &format!("SIP/2.0/UDP 192.0.2.7:5062;branch=z9hG4bK-{branch}"),
    );
    w.header("Max-Forwards", "70");
    w.header("From", "<sip:alice@example.com>;tag=af1");
    w.header("To", &format!("<sip:chat@example.com>;tag={to_tag}"));
    w.header("Call-ID", call);
    w.header("CSeq", &format!("{seq} {method}"));
    w.into_message().unwrap()
}

struct H {
    txns: Transactions,
    ua: Ua,
    now: Instant,
    scanners: std::collections::HashMap<ConnId, Scanner>,
}

impl H {
    fn new() -> H {
        let mut cfg = Config::new(0, "127.0.0.1", 2855);
        cfg.rules.push(Rule::any(&["text/plain", "message/cpim"]));
        H {
            txns: Transactions::new(TxConfig::default()),
            ua: Ua::new(cfg, Box::new(rand::rngs::StdRng::seed_from_u64(7))),
            now: Instant::now(),
            scanners: Default::default(),
        }
    }

    /// Feeds a SIP message to the table and the engine; the responses sent.
    fn sip(&mut self, m: &Message) -> Vec<Message> {
        self.txns.handle_message(self.now, peer(), m.clone());
        while let Some(e) = self.txns.poll_event() {
            match e {
                Event::Request { id, msg, .. } => {
                    let taken = if msg.method() == Some(msrpd::sip::Method::Invite) {
                        self.ua.handle_invite(self.now, &mut self.txns, id, &msg)
                    } else {
                        self.ua.handle_in_dialog(self.now, &mut self.txns, id, &msg)
                    };
                    assert!(taken, "the engine did not take {}", msg.method_str());
                }
                Event::Ack { msg, .. } => self.ua.handle_ack(self.now, &msg),
                _ => {}
            }
        }
        std::iter::from_fn(|| self.txns.poll_transmit())
            .map(|t| Message::parse_own(t.bytes).unwrap())
            .collect()
    }

    /// Feeds MSRP bytes read on `c` through the scanner to the engine.
    fn msrp(&mut self, c: ConnId, bytes: &[u8]) {
        let sc = self
            .scanners
            .entry(c)
            .or_insert_with(|| Scanner::new(ScanLimits::default()));
        let mut buf = BytesMut::from(bytes);
        while let Some(ev) = sc.next(&mut buf).unwrap() {
            match ev {
                ScanEvent::Head(h) => self.ua.handle_head(self.now, c, h),
                ScanEvent::Body(b) => self.ua.handle_body(c, b),
                ScanEvent::End(f) => self.ua.handle_end(self.now, c, f),
            }
        }
    }

    fn writes(&mut self) -> Vec<(ConnId, String)> {
        let mut v: Vec<(ConnId, String)> = Vec::new();
        // A frame written in parts (head, body, end-line) comes back as one.
        while let Some(a) = self.ua.poll_action() {
            if let Action::Write { conn, bytes, part } = a {
                let text = String::from_utf8_lossy(&bytes).into_owned();
                match part {
                    Part::Middle(_) | Part::End(_) => v.last_mut().unwrap().1.push_str(&text),
                    Part::Whole | Part::Start(..) => v.push((conn, text)),
                }
            }
        }
        v
    }

    fn events(&mut self) -> Vec<UaEvent> {
        std::iter::from_fn(|| self.ua.poll_event()).collect()
    }

    fn go(&mut self, d: Duration) {
        self.now += d;
        self.txns.handle_timeout(self.now);
        self.ua.handle_timeout(self.now);
    }

    /// INVITE answered and ACKed: the session id, our MSRP URI and our To tag.
    fn session(&mut self, call: &str) -> (String, String, String) {
        let resp = self.sip(&invite(call, &offer("text/plain")));
        let ok = resp.iter().find(|m| m.status() == Some(200)).expect("200");
        let sdp = String::from_utf8(ok.body_bytes().to_vec()).unwrap();
        let uri = sdp
            .lines()
            .find_map(|l| l.strip_prefix("a=path:"))
            .expect("a=path")
            .to_string();
        let tag = ok.to_tag().unwrap().to_string();
        self.sip(&in_dialog("ACK", call, &tag, 1, &format!("{call}-ack")));
        let sid = match self.events().as_slice() {
            [UaEvent::SessionNew { session, .. }] => session.clone(),
            e => panic!("{e:?}"),
        };
        (sid, uri, tag)
    }
}

fn send(to: &str, tid: &str, mid: &str, body: &str, extra: &str) -> String {
    format!(
        "MSRP {tid} SEND\r\nTo-Path: {to}\r\nFrom-Path: {PEER_PATH}\r\nMessage-ID: {mid}\r\n\
         Byte-Range: 1-{n}/{n}\r\n{extra}Content-Type: text/plain\r\n\r\n{body}\r\n-------{tid}$\r\n",
        n = body.len()
    )
}

#[test]
fn an_invite_is_answered_with_our_path_and_the_ack_makes_the_session() {
    let mut h = H::new();
    let resp = h.sip(&invite("c1", &offer("text/plain")));
    let ok = resp
        .iter()
        .find(|m| m.status() == Some(200))
        .expect("a 200");
    assert_eq!(ok.get(HeaderName::ContentType), Some("application/sdp"));
    assert!(
        ok.get(HeaderName::Contact)
            .unwrap()
            .contains("sip:msrpd@127.0.0.1:2855")
    );
    let sdp = String::from_utf8(ok.body_bytes().to_vec()).unwrap();
    assert!(sdp.contains("m=message 2855 TCP/MSRP *"), "{sdp}");
    assert!(sdp.contains("a=path:msrp://127.0.0.1:2855/u0000"), "{sdp}");
    assert!(h.events().is_empty(), "no event before the ACK");
    let tag = ok.to_tag().unwrap().to_string();
    h.sip(&in_dialog("ACK", "c1", &tag, 1, "c1-ack"));
    match h.events().as_slice() {
        [
            UaEvent::SessionNew {
                from,
                peer_accept_types,
                ..
            },
        ] => {
            assert!(from.contains("alice"));
            assert_eq!(peer_accept_types, &["text/plain"]);
        }
        e => panic!("{e:?}"),
    }
    assert_eq!(h.ua.len(), 1);
}

#[test]
fn an_offer_without_msrp_gets_488_and_no_session() {
    let mut h = H::new();
    let rtp = "v=0\r\no=a 1 1 IN IP4 192.0.2.7\r\ns=-\r\nc=IN IP4 192.0.2.7\r\nt=0 0\r\n\
               m=audio 4000 RTP/AVP 0\r\n";
    let resp = h.sip(&invite("c2", rtp));
    assert!(resp.iter().any(|m| m.status() == Some(488)), "{resp:?}");
    assert!(h.ua.is_empty());
}

#[test]
fn a_message_is_answered_reported_and_raised_whole() {
    let mut h = H::new();
    let (sid, uri, _) = h.session("c3");
    // The empty SEND that binds the connection (RFC 4975 §7.1).
    h.msrp(
        conn(1),
        format!("MSRP bind0 SEND\r\nTo-Path: {uri}\r\nFrom-Path: {PEER_PATH}\r\nMessage-ID: msg0000\r\nByte-Range: 1-0/0\r\n-------bind0$\r\n").as_bytes(),
    );
    let w = h.writes();
    assert_eq!(w.len(), 1);
    assert!(
        w[0].1
            .starts_with("MSRP bind0 200 OK\r\nTo-Path: msrp://192.0.2.7:7394/peer1;tcp\r\n"),
        "{}",
        w[0].1
    );
    assert!(h.events().is_empty(), "an empty SEND makes no event");
    // Two chunks, the second asking for a success report.
    let c1 = "MSRP tx001 SEND\r\nTo-Path: URI\r\nFrom-Path: PEER\r\nMessage-ID: msg0001\r\nByte-Range: 1-6/11\r\nSuccess-Report: yes\r\nContent-Type: text/plain\r\n\r\nhello \r\n-------tx001+\r\n"
        .replace("URI", &uri)
        .replace("PEER", PEER_PATH);
    h.msrp(conn(1), c1.as_bytes());
    assert!(h.events().is_empty());
    let c2 = "MSRP tx002 SEND\r\nTo-Path: URI\r\nFrom-Path: PEER\r\nMessage-ID: msg0001\r\nByte-Range: 7-11/11\r\nSuccess-Report: yes\r\nContent-Type: text/plain\r\n\r\nworld\r\n-------tx002$\r\n"
        .replace("URI", &uri)
        .replace("PEER", PEER_PATH);
    h.msrp(conn(1), c2.as_bytes());
    let w: Vec<String> = h.writes().into_iter().map(|(_, s)| s).collect();
    assert!(w[0].starts_with("MSRP tx001 200 OK"), "{w:?}");
    assert!(w[1].starts_with("MSRP tx002 200 OK"), "{w:?}");
    assert!(
        w[1].contains(" REPORT\r\n")
            && w[1].contains("Status: 000 200 OK")
            && w[1].contains("Byte-Range: 1-11/11"),
        "{w:?}"
    );
    match h.events().as_slice() {
        [
            UaEvent::MessageReceived {
                session,
                message_id,
                content_type,
                body,
                cpim,
            },
        ] => {
            assert!(cpim.is_none());
            assert_eq!(
                (session, message_id.as_str(), content_type.as_str()),
                (&sid, "msg0001", "text/plain")
            );
            assert_eq!(body, &Rendered::Text("hello world".into()));
        }
        e => panic!("{e:?}"),
    }
}

#[test]
fn unknown_sessions_get_481_and_types_not_accepted_415() {
    let mut h = H::new();
    let (_, uri, _) = h.session("c4");
    h.msrp(
        conn(1),
        send(
            "msrp://127.0.0.1:2855/u0000ffffffffffffffff;tcp",
            "xx001",
            "msg0001",
            "hi",
            "",
        )
        .as_bytes(),
    );
    let w = h.writes();
    assert!(w[0].1.starts_with("MSRP xx001 481 "), "{}", w[0].1);
    let html = send(&uri, "xx002", "msg0002", "<b>hi</b>", "").replace("text/plain", "text/html");
    h.msrp(conn(1), html.as_bytes());
    let w = h.writes();
    assert!(w[0].1.starts_with("MSRP xx002 415 "), "{}", w[0].1);
    assert!(h.events().is_empty());
}

#[test]
fn a_second_connection_for_a_bound_session_is_refused() {
    let mut h = H::new();
    let (_, uri, _) = h.session("c5");
    h.msrp(conn(1), send(&uri, "aa001", "msg0001", "hi", "").as_bytes());
    h.writes();
    h.events();
    h.msrp(conn(2), send(&uri, "aa002", "msg0002", "hi", "").as_bytes());
    let w = h.writes();
    assert_eq!(w[0].0, conn(2));
    assert!(w[0].1.starts_with("MSRP aa002 403 "), "{}", w[0].1);
}

#[test]
fn messages_we_send_and_what_becomes_of_them() {
    let mut h = H::new();
    let (sid, uri, _) = h.session("c6");
    assert!(
        h.ua.send_message(
            h.now,
            &sid,
            "text/plain",
            Bytes::from_static(b"x"),
            SuccessReport::No,
            FailureReport::Yes
        )
        .is_err(),
        "no connection yet"
    );
    h.msrp(conn(1), send(&uri, "aa001", "msg0001", "hi", "").as_bytes());
    h.writes();
    h.events();
    assert!(
        h.ua.send_message(
            h.now,
            &sid,
            "text/html",
            Bytes::from_static(b"<b>"),
            SuccessReport::No,
            FailureReport::Yes
        )
        .is_err(),
        "the peer accepts text/plain only"
    );
    let mid =
        h.ua.send_message(
            h.now,
            &sid,
            "text/plain",
            Bytes::from_static(b"hello bob"),
            SuccessReport::Yes,
            FailureReport::Yes,
        )
        .unwrap();
    let w = h.writes();
    let frame = &w[0].1;
    assert!(
        frame.contains(&format!("To-Path: {PEER_PATH}\r\n")),
        "{frame}"
    );
    assert!(frame.contains(&format!("From-Path: {uri}\r\n")), "{frame}");
    assert!(frame.contains(&format!("Message-ID: {mid}\r\n")));
    assert!(frame.contains("Byte-Range: 1-9/9\r\n") && frame.contains("Success-Report: yes\r\n"));
    assert!(frame.contains("\r\n\r\nhello bob\r\n-------"));
    let tid = frame.split_whitespace().nth(1).unwrap().to_string();
    // A 200 is silent; a failure response is reported.
    h.msrp(
        conn(1),
        format!(
            "MSRP {tid} 200 OK\r\nTo-Path: {uri}\r\nFrom-Path: {PEER_PATH}\r\n-------{tid}$\r\n"
        )
        .as_bytes(),
    );
    assert!(h.events().is_empty());
    let mid2 =
        h.ua.send_message(
            h.now,
            &sid,
            "text/plain",
            Bytes::from_static(b"again"),
            SuccessReport::No,
            FailureReport::Yes,
        )
        .unwrap();
    let frame = h.writes().remove(0).1;
    let tid2 = frame.split_whitespace().nth(1).unwrap().to_string();
    h.msrp(conn(1), format!("MSRP {tid2} 413 too big\r\nTo-Path: {uri}\r\nFrom-Path: {PEER_PATH}\r\n-------{tid2}$\r\n").as_bytes());
    match h.events().as_slice() {
        [
            UaEvent::ReportReceived {
                message_id,
                status: 413,
                source: "response",
                ..
            },
        ] => assert_eq!(message_id, &mid2),
        e => panic!("{e:?}"),
    }
    // A success REPORT from the peer.
    h.msrp(conn(1), format!("MSRP rr009 REPORT\r\nTo-Path: {uri}\r\nFrom-Path: {PEER_PATH}\r\nMessage-ID: {mid}\r\nByte-Range: 1-9/9\r\nStatus: 000 200 OK\r\n-------rr009$\r\n").as_bytes());
    assert!(h.writes().is_empty(), "a REPORT is never answered");
    match h.events().as_slice() {
        [
            UaEvent::ReportReceived {
                message_id,
                status: 200,
                source: "report",
                ..
            },
        ] => assert_eq!(message_id, &mid),
        e => panic!("{e:?}"),
    }
    // No response at all: a local timeout after 30 s.
    let mid3 =
        h.ua.send_message(
            h.now,
            &sid,
            "text/plain",
            Bytes::from_static(b"lost"),
            SuccessReport::No,
            FailureReport::Yes,
        )
        .unwrap();
    h.writes();
    let at = h.ua.poll_timeout().unwrap();
    assert_eq!(at - h.now, Duration::from_secs(30));
    h.go(Duration::from_secs(30));
    match h.events().as_slice() {
        [
            UaEvent::ReportReceived {
                message_id,
                status: 408,
                source: "timeout",
                ..
            },
        ] => assert_eq!(message_id, &mid3),
        e => panic!("{e:?}"),
    }
}

#[test]
fn bye_ends_the_session_and_closes_its_connection() {
    let mut h = H::new();
    let (sid, uri, tag) = h.session("c7");
    h.msrp(conn(1), send(&uri, "aa001", "msg0001", "hi", "").as_bytes());
    h.writes();
    h.events();
    let resp = h.sip(&in_dialog("BYE", "c7", &tag, 2, "c7-bye"));
    assert!(resp.iter().any(|m| m.status() == Some(200)));
    match h.events().as_slice() {
        [
            UaEvent::SessionEnd {
                session,
                by: "remote",
                why: "bye",
            },
        ] => assert_eq!(session, &sid),
        e => panic!("{e:?}"),
    }
    let mut closed = false;
    while let Some(a) = h.ua.poll_action() {
        closed |= matches!(a, Action::Close { conn: c, .. } if c == conn(1));
    }
    assert!(closed);
    assert!(h.ua.is_empty());
    // The dialog is gone: another BYE is not ours.
    h.txns
        .handle_message(h.now, peer(), in_dialog("BYE", "c7", &tag, 3, "c7-bye2"));
    if let Some(Event::Request { id, msg, .. }) = h.txns.poll_event() {
        assert!(!h.ua.handle_in_dialog(h.now, &mut h.txns, id, &msg));
    }
}

#[test]
fn a_peer_that_never_connects_ends_the_session() {
    let mut h = H::new();
    let (sid, _, tag) = h.session("c8");
    h.go(Duration::from_secs(29));
    assert!(h.events().is_empty());
    h.go(Duration::from_secs(1));
    match h.events().as_slice() {
        [
            UaEvent::SessionFailed {
                session, code: 408, ..
            },
        ] => assert_eq!(session, &sid),
        e => panic!("{e:?}"),
    }
    assert!(h.ua.is_empty());
    // The dialog is ended with a BYE to the peer's Contact (RFC 3261 §15.1.1).
    let Some(UaSip::InDialog {
        msg: bye,
        next_hop: hop,
    }) = h.ua.poll_sip()
    else {
        panic!("a BYE");
    };
    assert_eq!(bye.method_str(), "BYE");
    assert_eq!(hop, "sip:alice@192.0.2.7:5062");
    assert_eq!(bye.call_id(), Some("c8"));
    assert_eq!(bye.from_tag(), Some(tag.as_str()));
    assert_eq!(bye.to_tag(), Some("af1"));
}

#[test]
fn a_reinvite_gets_the_same_sdp_and_an_unknown_dialog_481() {
    let mut h = H::new();
    let first = h.sip(&invite("c9", &offer("text/plain")));
    let ok = first
        .iter()
        .find(|m| m.status() == Some(200))
        .unwrap()
        .clone();
    let tag = ok.to_tag().unwrap().to_string();
    h.sip(&in_dialog("ACK", "c9", &tag, 1, "c9-ack"));
    h.events();
    let mut re = Writer::request("INVITE", "sip:msrpd@127.0.0.1:2855");
    re.header("Via", "SIP/2.0/UDP 192.0.2.7:5062;branch=z9hG4bK-c9-re");
    re.header("Max-Forwards", "70");
    re.header("From", "<sip:alice@example.com>;tag=af1");
    re.header("To", &format!("<sip:chat@example.com>;tag={tag}"));
    re.header("Call-ID", "c9");
    re.header("CSeq", "2 INVITE");
    let re = re
        .into_message_body(Some("application/sdp"), offer("text/plain").as_bytes())
        .unwrap();
    let resp = h.sip(&re);
    let ok2 = resp.iter().find(|m| m.status() == Some(200)).unwrap();
    assert_eq!(ok2.body_bytes(), ok.body_bytes());
    let mut stray = Writer::request("INVITE", "sip:msrpd@127.0.0.1:2855");
    stray.header("Via", "SIP/2.0/UDP 192.0.2.7:5062;branch=z9hG4bK-zz");
    stray.header("Max-Forwards", "70");
    stray.header("From", "<sip:alice@example.com>;tag=af1");
    stray.header("To", "<sip:chat@example.com>;tag=nobody");
    stray.header("Call-ID", "zz");
    stray.header("CSeq", "2 INVITE");
    let resp = h.sip(&stray.into_message().unwrap());
    assert!(resp.iter().any(|m| m.status() == Some(481)));
}
