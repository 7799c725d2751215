//! Two clients through one relay, both directions, on both drivers.

mod common;

use common::*;
use msrpd::codec::Flag;
use std::time::{Duration, Instant};

#[test]
fn two_clients_both_directions_both_drivers() {
    for driver in DRIVERS {
        let relay = Relay::start(2, driver, |_| {});
        let mut a = relay.connect(&peer_uri("alice", 1111));
        let mut b = relay.connect(&peer_uri("bob", 2222));
        let ra = a.auth(&relay.uri());
        let rb = b.auth(&relay.uri());
        assert_ne!(ra, rb);
        // A -> B, full topology: To-Path = A's relay URI, B's relay URI, B.
        let to_b = format!("{ra} {rb} {}", b.me);
        let tid = a.send(
            &to_b,
            &[("Message-ID", "msg00001"), ("Byte-Range", "1-5/5")],
            Some(b"hello"),
            Flag::Complete,
        );
        let ok = a.read_frame();
        assert_eq!(ok.tid(), tid);
        assert_eq!(ok.kind(), "200");
        assert_eq!(ok.header("To-Path"), Some(a.me.as_str()));
        assert_eq!(ok.header("From-Path"), Some(ra.as_str()));
        let got = b.read_frame();
        assert_eq!(got.kind(), "SEND");
        assert_ne!(got.tid(), tid, "a relay uses a new transaction id per hop");
        assert_eq!(got.body, b"hello");
        assert_eq!(got.header("To-Path"), Some(b.me.as_str()));
        assert_eq!(
            got.header("From-Path"),
            Some(format!("{rb} {ra} {}", a.me).as_str())
        );
        assert_eq!(got.header("Message-ID"), Some("msg00001"));
        assert_eq!(got.header("Byte-Range"), Some("1-5/5"));
        b.respond(&got, 200);
        // B -> A, topology one: only A's relay URI.
        let to_a = format!("{ra} {}", a.me);
        b.send(
            &to_a,
            &[("Message-ID", "msg00002"), ("Byte-Range", "1-3/3")],
            Some(b"hey"),
            Flag::Complete,
        );
        assert_eq!(b.read_frame().kind(), "200");
        let got = a.read_frame();
        assert_eq!(got.body, b"hey");
        assert_eq!(
            got.header("From-Path"),
            Some(format!("{ra} {}", b.me).as_str())
        );
        a.respond(&got, 200);
        let c = relay.counters();
        assert_eq!(c.auth_ok, 2);
        assert_eq!(c.deliveries_same_core + c.deliveries_cross_core, 2);
    }
}

/// Forwarding adds a URI to From-Path; a From-Path already at the limit is refused
/// with 400 instead of producing a frame the next hop cannot parse.
#[test]
fn from_path_at_the_limit_is_refused() {
    let relay = Relay::start(1, msrpd::server::Driver::Auto, |_| {});
    let mut a = relay.connect(&peer_uri("alice", 1111));
    let mut b = relay.connect(&peer_uri("bob", 2222));
    a.auth(&relay.uri());
    let rb = b.auth(&relay.uri());
    let long: Vec<String> = (0..32)
        .map(|i| format!("msrp://h{i}.example.com:2855/s{i};tcp"))
        .collect();
    a.me = long.join(" ");
    let tid = a.send(
        &format!("{rb} {}", b.me),
        &[("Message-ID", "msg00009"), ("Failure-Report", "no")],
        Some(b"x"),
        Flag::Complete,
    );
    let _ = tid;
    // Failure-Report no: nothing comes back, and B receives nothing either.
    assert!(
        b.try_read_frame(std::time::Duration::from_millis(300))
            .is_err()
    );
    a.me = peer_uri("alice", 1111);
    let long_from = long.join(" ");
    let tid = a.tid();
    a.send_raw(
        format!(
            "MSRP {tid} SEND\r\nTo-Path: {rb} {}\r\nFrom-Path: {long_from}\r\nMessage-ID: msg0000a\r\nContent-Type: text/plain\r\n\r\nx\r\n-------{tid}$\r\n",
            b.me
        )
        .as_bytes(),
    );
    let r = a.read_frame();
    assert_eq!(r.tid(), tid);
    assert_eq!(r.kind(), "400");
    assert_eq!(
        r.header("To-Path"),
        Some("msrp://h0.example.com:2855/s0;tcp")
    );
}

/// Two senders stream chunks to the same receiver at once. A's big chunk (over 2048
/// octets, so interruptible, RFC 4975 §7.1.1) stalls half way; C's chunk does not wait
/// for it: the relay ends A's piece with `+`, passes C's on, then resumes A as a new
/// chunk (`TID.1`, Byte-Range from the first byte not sent). B reassembles A byte-exact,
/// every piece's 200 is absorbed by the relay, and each sender gets its one 200. On one
/// worker and across workers.
#[test]
fn a_stalled_big_chunk_is_interrupted_for_another_sender() {
    for workers in [1, 2] {
        let relay = Relay::start(workers, msrpd::server::Driver::Auto, |_| {});
        let mut b = relay.connect(&peer_uri("bob", 2222));
        let rb = b.auth(&relay.uri());
        let mut a = relay.connect(&peer_uri("alice", 1111));
        let mut c = relay.connect(&peer_uri("carol", 3333));
        let to_b = format!("{rb} {}", b.me);
        let body_a: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let body_c = vec![b'c'; 50_000];
        // A starts its chunk: head and half the body.
        let tid_a = a.tid();
        a.send_raw(
            format!(
                "MSRP {tid_a} SEND\r\nTo-Path: {to_b}\r\nFrom-Path: {}\r\nMessage-ID: msgA0001\r\nByte-Range: 1-200000/200000\r\nContent-Type: application/octet-stream\r\n\r\n",
                a.me
            )
            .as_bytes(),
        );
        a.send_raw(&body_a[..100_000]);
        std::thread::sleep(std::time::Duration::from_millis(100));
        // C sends a whole chunk meanwhile.
        c.send(
            &to_b,
            &[("Message-ID", "msgC0001")],
            Some(&body_c),
            Flag::Complete,
        );
        // C's chunk reaches B while A's is still unfinished.
        let mut got_a = vec![0u8; 200_000];
        let mut filled = 0;
        let mut pieces = Vec::new();
        let mut got_c = None;
        while got_c.is_none() {
            let f = b.read_frame();
            b.respond(&f, 200);
            match f.header("Message-ID") {
                Some("msgC0001") => got_c = Some(f),
                Some("msgA0001") => pieces.push(f),
                other => panic!("unexpected frame {other:?}"),
            }
        }
        assert_eq!(got_c.unwrap().body, body_c, "workers {workers}");
        assert_eq!(pieces.len(), 1, "A's first piece came before C's chunk");
        assert_eq!(pieces[0].flag, Flag::Continued, "interrupted with +");
        // A finishes; the rest comes as the next piece.
        a.send_raw(&body_a[100_000..]);
        a.send_raw(format!("\r\n-------{tid_a}$\r\n").as_bytes());
        loop {
            let f = b.read_frame();
            b.respond(&f, 200);
            assert_eq!(f.header("Message-ID"), Some("msgA0001"));
            let done = f.flag == Flag::Complete;
            pieces.push(f);
            if done {
                break;
            }
        }
        for (i, p) in pieces.iter().enumerate() {
            let range = p
                .header("Byte-Range")
                .expect("every piece has a Byte-Range");
            let start: usize = range.split('-').next().unwrap().parse().unwrap();
            assert!(range.ends_with("-*/200000"), "{range}");
            assert_eq!(start, filled + 1, "piece {i} starts where the last ended");
            if i > 0 {
                assert_eq!(p.tid(), format!("{}.{i}", pieces[0].tid()), "piece tid");
            }
            got_a[filled..filled + p.body.len()].copy_from_slice(&p.body);
            filled += p.body.len();
        }
        assert_eq!(filled, body_a.len());
        assert!(got_a == body_a, "A's message reassembled byte-exact");
        // One 200 each; the pieces' 200s are absorbed, no REPORT follows.
        assert_eq!(a.read_frame().kind(), "200");
        assert_eq!(c.read_frame().kind(), "200");
        assert!(
            a.try_read_frame(std::time::Duration::from_millis(300))
                .is_err()
        );
        relay.settle("transactions answered", |c| {
            c.transactions == 0 && c.chunks_interrupted >= 1
        });
    }
}

/// A sender that never AUTHs but whose SENDs reach a session on another worker has made
/// successful requests: probation (RFC 4976 §6.1) must not close it.
#[test]
fn probation_counts_requests_routed_to_another_core() {
    let relay = Relay::start(2, msrpd::server::Driver::Auto, |cfg| {
        cfg.relay.probation = std::time::Duration::from_millis(500);
    });
    let mut b = relay.connect(&peer_uri("bob", 2222));
    let rb = b.auth(&relay.uri());
    let to_b = format!("{rb} {}", b.me);
    // Ten senders: SO_REUSEPORT puts some of them on the other worker.
    let mut senders: Vec<Client> = (0..10)
        .map(|i| relay.connect(&peer_uri(&format!("s{i}"), 3000 + i)))
        .collect();
    for round in 0..2 {
        for (i, s) in senders.iter_mut().enumerate() {
            let mid = format!("m{round}x{i:04}");
            s.send(
                &to_b,
                &[("Message-ID", mid.as_str())],
                Some(b"hi"),
                Flag::Complete,
            );
            assert_eq!(s.read_frame().kind(), "200", "round {round} sender {i}");
            let got = b.read_frame();
            assert_eq!(got.header("Message-ID"), Some(mid.as_str()));
            b.respond(&got, 200);
        }
        // Past probation before the second round.
        std::thread::sleep(std::time::Duration::from_millis(900));
    }
}

/// A connection idle for a second gives up its pending read and its buffer (see
/// `PARK_AFTER` in src/server/worker.rs) and waits on a few bytes instead. Nothing may
/// be lost by that: a message sent to a parked connection, its head and body arriving
/// apart, is delivered whole, and so is one sent from it; the same again after the
/// connections park a second time. Both drivers.
#[test]
fn parked_idle_connections_lose_nothing() {
    for driver in DRIVERS {
        let relay = Relay::start(1, driver, |_| {});
        let mut a = relay.connect(&peer_uri("alice", 1111));
        let mut b = relay.connect(&peer_uri("bob", 2222));
        let ra = a.auth(&relay.uri());
        let rb = b.auth(&relay.uri());
        for round in 1..=2u64 {
            let deadline = Instant::now() + Duration::from_secs(6);
            // Both park after their AUTH; after the first message b parks again (its
            // reads are still few), a may not: its last read followed a quick one
            // (the body in several reads), and such reads are not given up.
            while relay.counters().reads_parked < round + 1 {
                assert!(
                    Instant::now() < deadline,
                    "{driver:?}: {:?}",
                    relay.counters()
                );
                std::thread::sleep(Duration::from_millis(20));
            }
            let body: Vec<u8> = (0..10_000u32).map(|i| b'a' + (i % 26) as u8).collect();
            let tid = a.tid();
            let head = format!(
                "MSRP {tid} SEND\r\nTo-Path: {ra} {rb} {}\r\nFrom-Path: {}\r\nMessage-ID: idle{round}\r\nByte-Range: 1-10000/10000\r\nContent-Type: text/plain\r\n\r\n",
                b.me, a.me
            );
            // The head in two writes, the first shorter than a parked read's buffer.
            // The pauses are longer than QUIET_GAP: a's reads stay ones it can give up.
            a.send_raw(&head.as_bytes()[..20]);
            std::thread::sleep(Duration::from_millis(120));
            a.send_raw(&head.as_bytes()[20..]);
            std::thread::sleep(Duration::from_millis(120));
            let mut rest = body.clone();
            rest.extend_from_slice(format!("\r\n-------{tid}$\r\n").as_bytes());
            a.send_raw(&rest);
            let ok = a.read_frame();
            assert_eq!((ok.kind(), ok.tid()), ("200", tid.as_str()), "{driver:?}");
            let got = b.read_frame();
            assert_eq!(got.kind(), "SEND");
            assert!(
                got.body == body,
                "{driver:?} round {round}: delivered whole"
            );
            b.respond(&got, 200);
        }
        assert_eq!(relay.counters().deliveries_same_core, 2);
    }
}
