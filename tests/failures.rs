//! Failure paths on real sockets (RFC 4975 §7.1, RFC 4976 §6.4.1): a receiver killed in
//! the middle of a message, a relay-to-relay connection dropped in the middle of a chunk,
//! and a next hop that refuses connections. The sender gets what its Failure-Report asks
//! for, and afterwards no session, transaction or connection is left behind
//! (`ServerHandle::counters()`).

mod common;

use std::thread;
use std::time::Duration;

use common::*;
use msrpd::codec::Flag;
use msrpd::conn::CounterSnapshot;
use msrpd::server::Driver;

fn settle(relay: &Relay, what: &str, f: impl Fn(&CounterSnapshot) -> bool) {
    relay.settle(what, f)
}

/// A SEND head with a body of `len` bytes to come (Failure-Report as given).
fn send_head(tid: &str, to: &str, from: &str, id: &str, len: usize, fr: &str) -> String {
    format!(
        "MSRP {tid} SEND\r\nTo-Path: {to}\r\nFrom-Path: {from}\r\nMessage-ID: {id}\r\nByte-Range: 1-{len}/{len}\r\nFailure-Report: {fr}\r\nContent-Type: text/plain\r\n\r\n"
    )
}

#[test]
fn receiver_killed_in_the_middle_of_a_message() {
    for driver in DRIVERS {
        let relay = Relay::start(2, driver, |_| {});
        let ru = relay.uri();
        let mut a = relay.connect(&peer_uri("alice", 1111));
        let mut b = relay.connect(&peer_uri("bob", 2222));
        let ra = a.auth(&ru);
        let rb = b.auth(&ru);
        let to = format!("{ra} {rb} {}", b.me);
        let body = vec![b'k'; 20_000];
        let tid = a.tid();
        a.send_raw(send_head(&tid, &to, &a.me.clone(), "killed01", body.len(), "yes").as_bytes());
        a.send_raw(&body[..5_000]);
        // B sees the chunk start, then dies.
        thread::sleep(Duration::from_millis(100));
        drop(b);
        settle(&relay, "B's connection and session gone", |c| {
            c.connections_open == 1 && c.sessions == 1
        });
        a.send_raw(&body[5_000..]);
        a.send_raw(format!("\r\n-------{tid}$\r\n").as_bytes());
        // The chunk was received: 200 to the previous hop; it could not be delivered:
        // a REPORT with 481 to the sender (Failure-Report yes, RFC 4976 §6.4.1).
        let ok = a.read_frame();
        assert_eq!((ok.tid(), ok.kind()), (tid.as_str(), "200"));
        let rep = a.read_frame();
        assert_eq!(rep.kind(), "REPORT", "{}", rep.head);
        assert_eq!(rep.header("To-Path"), Some(a.me.as_str()));
        assert_eq!(rep.header("From-Path"), Some(ra.as_str()));
        assert_eq!(rep.header("Message-ID"), Some("killed01"));
        assert_eq!(rep.header("Byte-Range"), Some("1-20000/20000"));
        assert!(
            rep.header("Status").unwrap().starts_with("000 481"),
            "{}",
            rep.head
        );
        // Failure-Report partial gets the same 481; no gets nothing (and no 200).
        let tid2 = a.send(
            &to,
            &[("Message-ID", "killed02"), ("Failure-Report", "partial")],
            Some(b"x"),
            Flag::Complete,
        );
        let rep = a.read_frame();
        assert_eq!(rep.kind(), "481", "{}", rep.head);
        assert_eq!(rep.tid(), tid2);
        let rep = a.read_frame();
        assert_eq!(rep.kind(), "REPORT");
        assert!(rep.header("Status").unwrap().starts_with("000 481"));
        a.send(
            &to,
            &[("Message-ID", "killed03"), ("Failure-Report", "no")],
            Some(b"x"),
            Flag::Complete,
        );
        assert!(
            a.try_read_frame(Duration::from_millis(300)).is_err(),
            "nothing for Failure-Report no"
        );
        drop(a);
        settle(&relay, "every table empty", |c| {
            c.connections_open == 0 && c.sessions == 0 && c.transactions == 0
        });
    }
}

#[test]
fn relay_to_relay_connection_dropped_mid_chunk() {
    let r1 = Relay::start(1, Driver::IoUring, |c| {
        c.relay.txn_timeout = Duration::from_millis(500)
    });
    let r2 = Relay::start(1, Driver::Legacy, |_| {});
    let mut a = r1.connect(&peer_uri("alice", 1111));
    let mut b = r2.connect(&peer_uri("bob", 2222));
    let ra = a.auth(&r1.uri());
    let rb = b.auth(&r2.uri());
    let to = format!("{ra} {rb} {}", b.me);
    // One whole message first: R1 opens its connection to R2.
    let t0 = a.send(
        &to,
        &[("Message-ID", "first001")],
        Some(b"hello"),
        Flag::Complete,
    );
    let got = b.read_frame();
    assert_eq!(got.body, b"hello");
    b.respond(&got, 200);
    assert_eq!(a.read_frame().tid(), t0);
    settle(&r1, "R1: A and its connection to R2", |c| {
        c.connections_open == 2 && c.transactions == 0
    });
    // A chunk starts; R2 goes away in the middle of it.
    let tid = a.tid();
    let body = vec![b'z'; 40_000];
    a.send_raw(send_head(&tid, &to, &a.me.clone(), "dropped1", body.len(), "yes").as_bytes());
    a.send_raw(&body[..10_000]);
    let part = b.try_read_frame(Duration::from_millis(300));
    assert!(part.is_err(), "the chunk is not complete yet");
    drop(r2);
    settle(&r1, "R1 sees its connection to R2 close", |c| {
        c.connections_open == 1
    });
    a.send_raw(&body[10_000..]);
    a.send_raw(format!("\r\n-------{tid}$\r\n").as_bytes());
    let ok = a.read_frame();
    assert_eq!((ok.tid(), ok.kind()), (tid.as_str(), "200"));
    let rep = a.read_frame();
    assert_eq!(rep.kind(), "REPORT", "{}", rep.head);
    assert_eq!(rep.header("Message-ID"), Some("dropped1"));
    assert!(
        rep.header("Status").unwrap().starts_with("000 481"),
        "{}",
        rep.head
    );
    drop(a);
    settle(&r1, "R1's tables empty", |c| {
        c.connections_open == 0 && c.sessions == 0 && c.transactions == 0
    });
}

#[test]
fn next_hop_refusing_connections() {
    let relay = Relay::start(1, Driver::IoUring, |c| {
        c.relay.txn_timeout = Duration::from_millis(500)
    });
    let mut a = relay.connect(&peer_uri("alice", 1111));
    let ra = a.auth(&relay.uri());
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = dead.local_addr().unwrap().port();
    drop(dead);
    let to = format!("{ra} msrp://127.0.0.1:{port}/x;tcp {}", a.me);
    for (fr, want) in [("yes", Some("408")), ("partial", None), ("no", None)] {
        let tid = a.send(
            &to,
            &[
                ("Message-ID", "nowhere1"),
                ("Failure-Report", fr),
                ("Byte-Range", "1-2/2"),
            ],
            Some(b"hi"),
            Flag::Complete,
        );
        if fr == "yes" {
            let ok = a.read_frame();
            assert_eq!((ok.tid(), ok.kind()), (tid.as_str(), "200"));
        }
        match want {
            Some(code) => {
                let rep = a.read_frame();
                assert_eq!(rep.kind(), "REPORT", "{}", rep.head);
                assert_eq!(rep.header("Message-ID"), Some("nowhere1"));
                assert!(
                    rep.header("Status")
                        .unwrap()
                        .starts_with(&format!("000 {code}")),
                    "{}",
                    rep.head
                );
            }
            None => assert!(
                a.try_read_frame(Duration::from_millis(800)).is_err(),
                "Failure-Report {fr}: nothing"
            ),
        }
        settle(&relay, "transaction and outbound connection gone", |c| {
            c.connections_open == 1 && c.transactions == 0
        });
    }
    drop(a);
    settle(&relay, "every table empty", |c| {
        c.connections_open == 0 && c.sessions == 0 && c.transactions == 0
    });
}

/// A next hop that never answers the connect (its listener's accept queue is full, so
/// the kernel drops our SYNs): after --connect-timeout the relay gives up, counts it,
/// and the sender gets its REPORT (408) at once instead of the 30 s transaction timer.
#[test]
fn a_next_hop_that_never_accepts_fails_after_the_connect_timeout() {
    use socket2::{Domain, Socket, Type};
    // A listener with an accept queue of one, filled by a connection it never accepts.
    let hole = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    hole.bind(
        &"127.0.0.1:0"
            .parse::<std::net::SocketAddr>()
            .unwrap()
            .into(),
    )
    .unwrap();
    hole.listen(0).unwrap();
    let hole_addr = hole.local_addr().unwrap().as_socket().unwrap();
    let _filler = std::net::TcpStream::connect(hole_addr).unwrap();
    let _filler2 = std::net::TcpStream::connect_timeout(&hole_addr, Duration::from_millis(200));
    for driver in DRIVERS {
        let relay = Relay::start(1, driver, |cfg| {
            cfg.connect_timeout = Duration::from_millis(500);
        });
        let mut a = relay.connect(&peer_uri("alice", 1111));
        let ra = a.auth(&relay.uri());
        let far = format!("msrp://127.0.0.1:{}/far;tcp", hole_addr.port());
        let tid = a.send(
            &format!("{ra} {far}"),
            &[("Message-ID", "nowhere1")],
            Some(b"is anyone there"),
            Flag::Complete,
        );
        let started = std::time::Instant::now();
        let ok = a.read_frame();
        assert_eq!((ok.tid(), ok.kind()), (tid.as_str(), "200"));
        let rep = a.read_frame();
        assert_eq!(rep.kind(), "REPORT", "{}", rep.head);
        assert_eq!(rep.header("Message-ID"), Some("nowhere1"));
        assert!(rep.header("Status").unwrap().starts_with("000 408"));
        // The connect hung (it was not refused) until the timeout, and no longer.
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(400) && waited < Duration::from_secs(10),
            "the connect timeout, not a refusal nor the 30 s transaction timer: {waited:?}"
        );
        settle(&relay, "connect failure counted, nothing left", |c| {
            c.connect_failures == 1 && c.transactions == 0 && c.connections_open == 1
        });
    }
}
