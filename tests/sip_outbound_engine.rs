//! The outbound layer (`msrpd::sip::outbound`) on a virtual clock with a real
//! transaction table: next hop and Via, the bound and deadline on resolutions, TCP for
//! big requests, the one digest retry, CANCEL held until a provisional response, the
//! ACK for a 2xx, and a connection that closes under a request (503).

use std::sync::Arc;
use std::time::{Duration, Instant};

use msrpd::conn::ConnId;
use msrpd::sip::HeaderName;
use msrpd::sip::Message;
use msrpd::sip::auth::RealmCredentials;
use msrpd::sip::outbound::{Action, Config, Failure, Hop, OutEvent, Outbound, ReqId};
use msrpd::sip::txn::{Config as TxConfig, Peer, Transactions, Transport};

fn msg(s: &str) -> Message {
    Message::parse_own(bytes::Bytes::from(s.replace('\n', "\r\n"))).unwrap()
}

fn options(ruri: &str, extra: &str) -> Message {
    msg(&format!(
        "OPTIONS {ruri} SIP/2.0\nFrom: <sip:a@b>;tag=1\nTo: <{ruri}>\nCall-ID: c1\nCSeq: 1 OPTIONS\n{extra}Content-Length: 0\n\n"
    ))
}

fn invite(ruri: &str) -> Message {
    msg(&format!(
        "INVITE {ruri} SIP/2.0\nFrom: <sip:a@b>;tag=1\nTo: <{ruri}>\nCall-ID: i1\nCSeq: 1 INVITE\nContact: <sip:a@127.0.0.1>\nContent-Length: 0\n\n"
    ))
}

fn ob_with(proxy: Option<&str>, max_resolving: usize) -> Outbound {
    let cfg = Config {
        proxy: proxy.map(str::to_string),
        credentials: Arc::new(RealmCredentials {
            entries: vec![("r".into(), "u".into(), "p".into())],
        }),
        max_resolving,
        ..Config::default()
    };
    Outbound::new(cfg, Box::new(rand::rng()))
}

fn ob(proxy: Option<&str>) -> Outbound {
    ob_with(proxy, 64)
}

fn tcp_peer(slot: u32) -> Peer {
    Peer {
        transport: Transport::Tcp,
        addr: "127.0.0.1:5060".parse().unwrap(),
        conn: Some(ConnId {
            core: 0,
            slot,
            generation: 1,
        }),
    }
}

/// Moves every transaction event to the outbound layer.
fn pump(now: Instant, o: &mut Outbound, txns: &mut Transactions) {
    while let Some(e) = txns.poll_event() {
        o.handle_txn_event(now, txns, &e);
    }
}

/// Sends `m` to a literal next hop and opens it on `peer`.
fn sent(now: Instant, o: &mut Outbound, txns: &mut Transactions, m: Message, peer: Peer) -> ReqId {
    let id = o.send(now, m, Hop::Default).unwrap();
    assert!(matches!(o.poll_action(), Some(Action::Open { .. })));
    o.handle_opened(now, txns, id, Ok(peer));
    id
}

fn reply(req: &Message, code: u16) -> Message {
    msrpd::sip::response_to(req, code, None, Some("t"))
        .into_message()
        .unwrap()
}

#[test]
fn literal_opens_at_once_with_our_via_and_the_proxy_route() {
    let now = Instant::now();
    let mut o = ob(Some("sip:127.0.0.1:5070"));
    let id = o
        .send(now, options("sip:x@example.com", ""), Hop::Default)
        .unwrap();
    let Some(Action::Open {
        addrs, transport, ..
    }) = o.poll_action()
    else {
        panic!("no open")
    };
    assert_eq!(transport, Transport::Udp);
    assert_eq!(addrs, vec!["127.0.0.1:5070".parse().unwrap()]);
    let r = o.request(id).unwrap();
    assert_eq!(r.request_uri(), "sip:x@example.com");
    assert_eq!(r.get(HeaderName::Route), Some("<sip:127.0.0.1:5070;lr>"));
    let via = r.top_via().unwrap();
    assert!(via.is_rfc3261() && via.rport().is_some());
    assert_eq!(r.max_forwards(), Some(70));
}

#[test]
fn names_resolve_with_a_bound_and_a_deadline() {
    let now = Instant::now();
    let mut o = ob_with(None, 1);
    let a = o
        .send(now, options("sip:x@example.com", ""), Hop::Default)
        .unwrap();
    assert!(matches!(
        o.poll_action(),
        Some(Action::Resolve { port: 5060, .. })
    ));
    let b = o
        .send(now, options("sip:y@example.com", ""), Hop::Default)
        .unwrap();
    assert!(matches!(
        o.poll_event(),
        Some(OutEvent::Failed { req, failure: Failure::ResolverBusy, .. }) if req == b
    ));
    assert!(matches!(o.poll_event(), Some(OutEvent::Done { .. })));
    o.handle_timeout(o.poll_timeout().unwrap());
    assert!(matches!(
        o.poll_event(),
        Some(OutEvent::Failed { req, failure: Failure::ResolveTimeout(_), .. }) if req == a
    ));
    // Still busy until the late answer comes.
    o.send(now, options("sip:z@example.com", ""), Hop::Default)
        .unwrap();
    assert!(o.poll_action().is_none());
    o.handle_resolved(now, a, vec![]);
    o.send(now, options("sip:z@example.com", ""), Hop::Default)
        .unwrap();
    while o.poll_event().is_some() {}
    assert!(matches!(o.poll_action(), Some(Action::Resolve { .. })));
}

#[test]
fn big_udp_requests_go_over_tcp() {
    let body = "x".repeat(2000);
    let m = msg(&format!(
        "MESSAGE sip:a@127.0.0.1 SIP/2.0\nFrom: <sip:a@b>;tag=1\nTo: <sip:a@127.0.0.1>\nCall-ID: c\nCSeq: 1 MESSAGE\nContent-Type: text/plain\nContent-Length: 2000\n\n{body}"
    ));
    let mut o = ob(None);
    let id = o.send(Instant::now(), m, Hop::Default).unwrap();
    assert_eq!(o.transport(id), Some(Transport::Tcp));
    assert!(
        o.request(id)
            .unwrap()
            .top_via()
            .unwrap()
            .raw
            .starts_with("SIP/2.0/TCP")
    );
    assert_eq!(o.request(id).unwrap().body_bytes().len(), 2000);
}

#[test]
fn a_challenge_is_answered_once_then_given_to_the_tu() {
    let now = Instant::now();
    let mut txns = Transactions::new(TxConfig::default());
    let mut o = ob(None);
    let id = o
        .send(now, options("sip:x@127.0.0.1", ""), Hop::Default)
        .unwrap();
    let peer = Peer {
        transport: Transport::Udp,
        addr: "127.0.0.1:5060".parse().unwrap(),
        conn: None,
    };
    o.poll_action();
    o.handle_opened(now, &mut txns, id, Ok(peer));
    let challenge = |req: &Message| {
        let mut w = msrpd::sip::response_to(req, 401, None, Some("t"));
        w.header(
            "WWW-Authenticate",
            "Digest realm=\"r\", nonce=\"n\", qop=\"auth\"",
        );
        w.into_message().unwrap()
    };
    let pump = |o: &mut Outbound, txns: &mut Transactions| {
        while let Some(e) = txns.poll_event() {
            o.handle_txn_event(now, txns, &e);
        }
    };
    let first = o.request(id).unwrap().clone();
    txns.handle_message(now, peer, challenge(&first));
    pump(&mut o, &mut txns);
    assert!(
        o.poll_event().is_none(),
        "the first 401 is answered, not passed on"
    );
    let retry = o.request(id).unwrap().clone();
    assert_eq!(retry.cseq().unwrap().seq, 2);
    assert_eq!(retry.call_id(), first.call_id());
    assert_ne!(
        retry.top_via().unwrap().branch(),
        first.top_via().unwrap().branch()
    );
    assert!(
        retry
            .get(HeaderName::Authorization)
            .unwrap()
            .contains("username=\"u\"")
    );
    txns.handle_message(now, peer, challenge(&retry));
    pump(&mut o, &mut txns);
    assert!(
        matches!(o.poll_event(), Some(OutEvent::Final { msg, .. }) if msg.status() == Some(401))
    );
}

#[test]
fn cancel_waits_for_the_first_provisional_and_the_2xx_gets_its_ack() {
    let now = Instant::now();
    let mut txns = Transactions::new(TxConfig::default());
    let mut o = ob(None);
    let peer = tcp_peer(3);
    let id = sent(
        now,
        &mut o,
        &mut txns,
        invite("sip:b@127.0.0.1;transport=tcp"),
        peer,
    );
    while txns.poll_transmit().is_some() {}
    o.cancel(now, &mut txns, id).unwrap();
    assert!(
        txns.poll_transmit().is_none(),
        "no CANCEL before a provisional (§9.1)"
    );
    let inv = o.request(id).unwrap().clone();
    txns.handle_message(now, peer, reply(&inv, 180));
    pump(now, &mut o, &mut txns);
    assert!(matches!(o.poll_event(), Some(OutEvent::Provisional { .. })));
    let c = txns.poll_transmit().expect("the CANCEL");
    assert!(c.bytes.starts_with(b"CANCEL "));
    // A 2xx crossed the CANCEL: the TU's ACK goes outside the transaction, new branch.
    txns.handle_message(now, peer, reply(&inv, 200));
    pump(now, &mut o, &mut txns);
    assert!(
        matches!(o.poll_event(), Some(OutEvent::Final { msg, .. }) if msg.status() == Some(200))
    );
    let ack = msg(
        "ACK sip:b@127.0.0.1 SIP/2.0\nFrom: <sip:a@b>;tag=1\nTo: <sip:b@127.0.0.1>;tag=t\nCall-ID: i1\nCSeq: 1 ACK\nContent-Length: 0\n\n",
    );
    o.send_ack(&mut txns, id, &ack).unwrap();
    let t = txns.poll_transmit().expect("the ACK");
    assert_eq!(t.to, peer);
    assert_eq!(t.txn, None);
    let sent_ack = Message::parse_own(t.bytes).unwrap();
    let b = sent_ack.top_via().unwrap().branch().unwrap().to_string();
    assert_ne!(Some(b.as_str()), inv.top_via().unwrap().branch());
}

#[test]
fn cancel_before_sending_fails_with_487() {
    let now = Instant::now();
    let mut o = ob(None);
    let id = o
        .send(now, invite("sip:b@example.com"), Hop::Default)
        .unwrap();
    o.cancel(now, &mut Transactions::new(TxConfig::default()), id)
        .unwrap();
    assert!(matches!(
        o.poll_event(),
        Some(OutEvent::Failed {
            failure: Failure::Cancelled,
            ..
        })
    ));
    assert_eq!(Failure::Cancelled.status(), 487);
}

#[test]
fn a_closed_connection_fails_its_requests_with_503() {
    let now = Instant::now();
    let mut txns = Transactions::new(TxConfig::default());
    let mut o = ob(None);
    let peer = tcp_peer(7);
    let id = sent(
        now,
        &mut o,
        &mut txns,
        options("sip:b@127.0.0.1;transport=tcp", ""),
        peer,
    );
    o.handle_conn_closed(
        now,
        &mut txns,
        peer.conn.unwrap(),
        "connection to 127.0.0.1:5060 refused",
    );
    pump(now, &mut o, &mut txns);
    match o.poll_event() {
        Some(OutEvent::Failed {
            req,
            failure,
            peer: p,
        }) => {
            assert_eq!(req, id);
            assert_eq!(failure.status(), 503);
            assert!(failure.reason().contains("refused"), "{}", failure.reason());
            assert_eq!(p, Some(peer));
        }
        e => panic!("{e:?}"),
    }
    assert!(matches!(o.poll_event(), Some(OutEvent::Done { .. })));
    assert!(o.is_empty());
}

#[test]
fn timer_f_is_a_408() {
    let now = Instant::now();
    let mut txns = Transactions::new(TxConfig {
        t1: Duration::from_millis(10),
        ..TxConfig::default()
    });
    let mut o = ob(None);
    let peer = Peer {
        transport: Transport::Udp,
        addr: "127.0.0.1:5060".parse().unwrap(),
        conn: None,
    };
    sent(now, &mut o, &mut txns, options("sip:b@127.0.0.1", ""), peer);
    txns.handle_timeout(now + Duration::from_millis(640));
    pump(now, &mut o, &mut txns);
    assert!(matches!(
        o.poll_event(),
        Some(OutEvent::Failed {
            failure: Failure::Timeout,
            ..
        })
    ));
}
