//! Every limit of the "Limits" section of the README on a real socket: header block
//! size, URIs per path, non-SEND body size (413), connections in total and per source
//! address, AUTH failures, the write queue's hard cap, the time to finish a header block,
//! and probation / idle / head timeouts given as `msrpd` flags.

mod common;

use std::io::{Read, Write};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use msrpd::codec::Flag;
use msrpd::server::Driver;

/// Reads until EOF; `Err` with what arrived when the deadline passes first.
fn read_to_close(c: &mut Client, within: Duration) -> Result<Vec<u8>, Vec<u8>> {
    let deadline = Instant::now() + within;
    let mut got = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(got);
        }
        c.stream.set_read_timeout(Some(left)).unwrap();
        let mut tmp = [0u8; 65536];
        match c.stream.read(&mut tmp) {
            Ok(0) => return Ok(got),
            Ok(n) => got.extend_from_slice(&tmp[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Ok(got),
            Err(_) => return Err(got),
        }
    }
}

/// Waits until `f` holds (counters settle after closes), at most 3 s.
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(3);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn header_block_over_max_head_closes_without_answer() {
    let relay = Relay::start(1, Driver::IoUring, |c| c.max_head = 1024);
    let me = peer_uri("alice", 1111);
    // About 900 bytes of head: accepted (403: addressed to the relay, not a session).
    let mut ok = relay.connect(&me);
    let pad = "x".repeat(800);
    ok.send_raw(
        format!(
            "MSRP h1tidx NICKNAME\r\nTo-Path: {}\r\nFrom-Path: {me}\r\nX-Pad: {pad}\r\n-------h1tidx$\r\n",
            relay.uri()
        )
        .as_bytes(),
    );
    let r = ok.read_frame();
    assert_eq!((r.tid(), r.kind()), ("h1tidx", "403"));
    // 1025 bytes before the blank line / end-line: closed, nothing written back.
    let mut big = relay.connect(&me);
    let pad = "x".repeat(1100);
    big.send_raw(
        format!(
            "MSRP h2tidx NICKNAME\r\nTo-Path: {}\r\nFrom-Path: {me}\r\nX-Pad: {pad}\r\n",
            relay.uri()
        )
        .as_bytes(),
    );
    assert_eq!(
        read_to_close(&mut big, Duration::from_secs(3)),
        Ok(Vec::new())
    );
    eventually("connections_open back to 1", || {
        relay.counters().connections_open == 1
    });
}

#[test]
fn paths_over_max_path_uris_get_400() {
    let relay = Relay::start(1, Driver::IoUring, |c| c.relay.max_path_uris = 4);
    let me = peer_uri("alice", 1111);
    let mut a = relay.connect(&me);
    let ru = relay.uri();
    let hop = |i: u32| format!("msrp://h{i}.example.com:2855/s{i};tcp");
    // To-Path of 5 URIs.
    let to5 = format!("{ru} {} {} {} {}", hop(1), hop(2), hop(3), hop(4));
    a.send_raw(
        format!("MSRP p1tidx NICKNAME\r\nTo-Path: {to5}\r\nFrom-Path: {me}\r\n-------p1tidx$\r\n")
            .as_bytes(),
    );
    let r = a.read_frame();
    assert_eq!(
        r.head,
        format!(
            "MSRP p1tidx 400 To-Path has too many URIs\r\nTo-Path: {me}\r\nFrom-Path: {ru}\r\n"
        )
    );
    // From-Path of 4 URIs: no room for ours.
    let from4 = format!("{} {} {} {me}", hop(1), hop(2), hop(3));
    a.send_raw(
        format!(
            "MSRP p2tidx NICKNAME\r\nTo-Path: {ru}\r\nFrom-Path: {from4}\r\n-------p2tidx$\r\n"
        )
        .as_bytes(),
    );
    let r = a.read_frame();
    assert_eq!(
        r.head,
        format!(
            "MSRP p2tidx 400 From-Path too long to forward\r\nTo-Path: {from4}\r\nFrom-Path: {ru}\r\n"
        )
    );
    // Within the limits: refused for another reason (not a session), connection kept.
    a.send_raw(
        format!(
            "MSRP p3tidx NICKNAME\r\nTo-Path: {ru} {}\r\nFrom-Path: {} {me}\r\n-------p3tidx$\r\n",
            hop(1),
            hop(2)
        )
        .as_bytes(),
    );
    assert_eq!(a.read_frame().kind(), "403");
}

/// The 413 names the limit in force, not RFC 4975's 10240.
#[test]
fn the_413_names_the_configured_limit() {
    let relay = Relay::start(1, msrpd::server::Driver::Auto, |cfg| {
        cfg.max_non_send_body = 100;
    });
    let ru = relay.uri();
    let mut a = relay.connect(&peer_uri("alice", 1111));
    let mut b = relay.connect(&peer_uri("bob", 2222));
    let ra = a.auth(&ru);
    let rb = b.auth(&ru);
    let mut m = format!(
        "MSRP c1tidx NICKNAME\r\nTo-Path: {ra} {rb} {}\r\nFrom-Path: {}\r\nContent-Type: text/plain\r\n\r\n",
        b.me, a.me
    )
    .into_bytes();
    m.extend(std::iter::repeat_n(b'n', 101));
    m.extend_from_slice(b"\r\n-------c1tidx$\r\n");
    a.send_raw(&m);
    let r = a.read_frame();
    assert_eq!(
        r.start(),
        "MSRP c1tidx 413 body of a non-SEND request over 100 bytes"
    );
}

#[test]
fn non_send_body_over_10240_gets_413_then_close() {
    for driver in DRIVERS {
        let relay = Relay::start(1, driver, |_| {});
        let ru = relay.uri();
        let mut a = relay.connect(&peer_uri("alice", 1111));
        let mut b = relay.connect(&peer_uri("bob", 2222));
        let ra = a.auth(&ru);
        let rb = b.auth(&ru);
        let (am, bm) = (a.me.clone(), b.me.clone());
        let req = |tid: &str, to: &str, n: usize| {
            let mut m = format!(
                "MSRP {tid} NICKNAME\r\nTo-Path: {to}\r\nFrom-Path: {am}\r\nContent-Type: text/plain\r\n\r\n"
            )
            .into_bytes();
            m.extend(std::iter::repeat_n(b'n', n));
            m.extend_from_slice(format!("\r\n-------{tid}$\r\n").as_bytes());
            m
        };
        let to_b = format!("{ra} {rb} {bm}");
        // Exactly 10240 bytes: forwarded whole.
        a.send_raw(&req("b1tidx", &to_b, 10240));
        let got = b.read_frame();
        assert_eq!(
            (got.kind(), got.body.len(), got.flag),
            ("NICKNAME", 10240, Flag::Complete)
        );
        // 10241: B gets what was passed on, ended with '#'; A gets 413, then the close.
        a.send_raw(&req("b2tidx", &to_b, 10241));
        let got = b.read_frame();
        assert_eq!(got.kind(), "NICKNAME");
        assert_eq!(got.flag, Flag::Aborted);
        assert!(got.body.len() <= 10240, "{}", got.body.len());
        let r = a.read_frame();
        assert_eq!(
            r.head,
            format!(
                "MSRP b2tidx 413 body of a non-SEND request over 10240 bytes\r\nTo-Path: {am}\r\nFrom-Path: {ru}\r\n"
            )
        );
        assert_eq!(
            read_to_close(&mut a, Duration::from_secs(3)),
            Ok(Vec::new())
        );
        // Already refused at its head (403: not a session): not answered twice, closed.
        let mut c = relay.connect(&peer_uri("carol", 3333));
        c.send_raw(&req("b3tidx", &ru, 10241));
        let r = c.read_frame();
        assert_eq!((r.tid(), r.kind()), ("b3tidx", "403"));
        assert_eq!(
            read_to_close(&mut c, Duration::from_secs(3)),
            Ok(Vec::new())
        );
        // A REPORT is never answered (RFC 4975 §7.1.2): just closed.
        let mut d = relay.connect(&peer_uri("dave", 4444));
        let mut m = format!(
            "MSRP b4tidx REPORT\r\nTo-Path: {ru}\r\nFrom-Path: {}\r\nMessage-ID: msg00001\r\nStatus: 000 200 OK\r\nContent-Type: text/plain\r\n\r\n",
            d.me
        )
        .into_bytes();
        m.extend(std::iter::repeat_n(b'r', 20000));
        d.send_raw(&m);
        assert_eq!(
            read_to_close(&mut d, Duration::from_secs(3)),
            Ok(Vec::new())
        );
        drop(b);
        eventually("no connection open", || {
            relay.counters().connections_open == 0
        });
    }
}

#[test]
fn connections_over_the_limits_are_refused() {
    // Per source address.
    let relay = Relay::start(2, Driver::IoUring, |c| c.max_connections_per_ip = 3);
    let ru = relay.uri();
    let mut kept: Vec<Client> = (0..3)
        .map(|i| {
            let mut c = relay.connect(&peer_uri(&format!("p{i}"), 1000 + i));
            c.auth(&ru);
            c
        })
        .collect();
    let mut extra = relay.connect(&peer_uri("p9", 1009));
    assert_eq!(
        read_to_close(&mut extra, Duration::from_secs(3)),
        Ok(Vec::new())
    );
    let c = relay.counters();
    assert_eq!((c.connections_refused, c.connections_open), (1, 3));
    // One leaves: a new one is admitted.
    drop(kept.pop());
    eventually("connections_open 2", || {
        relay.counters().connections_open == 2
    });
    let mut again = relay.connect(&peer_uri("p8", 1008));
    again.auth(&ru);
    assert_eq!(relay.counters().connections_refused, 1);
    drop(relay);

    // In total.
    let relay = Relay::start(1, Driver::Legacy, |c| c.max_connections = 2);
    let ru = relay.uri();
    let mut a = relay.connect(&peer_uri("a", 1));
    let mut b = relay.connect(&peer_uri("b", 2));
    a.auth(&ru);
    b.auth(&ru);
    let mut c3 = relay.connect(&peer_uri("c", 3));
    assert_eq!(
        read_to_close(&mut c3, Duration::from_secs(3)),
        Ok(Vec::new())
    );
    assert_eq!(relay.counters().connections_refused, 1);
}

#[test]
fn auth_failures_limit_closes_the_connection() {
    let p = temp_path("limits-users");
    let _ = std::fs::remove_file(&p);
    msrpd::server::users_file::set_password(&p, "limits", "alice", "pw").unwrap();
    let file = p.clone();
    let relay = Relay::start(1, Driver::IoUring, move |c| {
        c.users_file = Some(file);
        c.relay.realm = "limits".into();
        c.relay.max_auth_failures = 1;
    });
    let ru = relay.uri();
    let mut a = relay.connect(&peer_uri("alice", 1));
    let r = a.auth_with(&ru, &[("Authorization", "Digest garbage")]);
    assert_eq!(r.kind(), "400");
    assert_eq!(
        read_to_close(&mut a, Duration::from_secs(3)),
        Ok(Vec::new())
    );
    assert_eq!(relay.counters().auth_failed, 1);
    let _ = std::fs::remove_file(&p);
}

#[test]
fn a_peer_that_never_reads_is_closed_at_the_queue_cap() {
    let relay = Relay::start(1, Driver::IoUring, |c| {
        c.high_water = 4096;
        c.max_queue = 8192;
    });
    let ru = relay.uri();
    let mut a = relay.connect(&peer_uri("alice", 1111));
    let mut b = relay.connect(&peer_uri("bob", 2222));
    let ra = a.auth(&ru);
    let rb = b.auth(&ru);
    // A streams one huge chunk to B, who never reads. Kernel buffers fill first, then
    // the relay's queue for B passes 8192 bytes and B is cut off.
    let to = format!("{ra} {rb} {}", b.me);
    let mut w = a.stream.try_clone().unwrap();
    w.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    let me = a.me.clone();
    let writer = thread::spawn(move || {
        let head = format!(
            "MSRP big1 SEND\r\nTo-Path: {to}\r\nFrom-Path: {me}\r\nMessage-ID: bigmsg01\r\nFailure-Report: no\r\nByte-Range: 1-*/*\r\nContent-Type: text/plain\r\n\r\n"
        );
        if w.write_all(head.as_bytes()).is_err() {
            return;
        }
        let block = vec![b'q'; 1 << 16];
        let deadline = Instant::now() + Duration::from_secs(8);
        while Instant::now() < deadline {
            if w.write_all(&block).is_err() {
                return;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(8);
    while relay.counters().queue_overflows == 0 {
        assert!(
            Instant::now() < deadline,
            "B was never cut off: {:?}",
            relay.counters()
        );
        thread::sleep(Duration::from_millis(20));
    }
    // B finds its connection closed after what was in flight.
    assert!(read_to_close(&mut b, Duration::from_secs(5)).is_ok());
    assert_eq!(relay.counters().queue_overflows, 1);
    drop(a);
    writer.join().unwrap();
    eventually("no connection open", || {
        relay.counters().connections_open == 0
    });
}

#[test]
fn a_header_block_unfinished_for_too_long_is_closed() {
    let relay = Relay::start(1, Driver::Legacy, |c| {
        c.head_timeout = Duration::from_secs(1)
    });
    let ru = relay.uri();
    // A quiet connection with nothing pending stays.
    let mut quiet = relay.connect(&peer_uri("q", 1));
    quiet.auth(&ru);
    // A slowloris: half a head, then a byte now and then.
    let mut slow = relay.connect(&peer_uri("s", 2));
    let t0 = Instant::now();
    slow.send_raw(b"MSRP slow SEND\r\nTo-Path: ");
    for _ in 0..3 {
        thread::sleep(Duration::from_millis(300));
        let _ = slow.stream.write_all(b"m");
    }
    assert_eq!(
        read_to_close(&mut slow, Duration::from_secs(4)),
        Ok(Vec::new())
    );
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_millis(2500),
        "closed after {took:?}"
    );
    assert_eq!(relay.counters().head_timeouts, 1);
    assert!(!quiet.closed_within(Duration::from_millis(300)));
    quiet.auth(&ru);
    // One that never sends a byte: its protocol is never known (MSRP, SIP or else, see
    // the first-bytes sniffing), so the head timeout closes it, counted as one.
    let mut mute = relay.connect(&peer_uri("m", 3));
    assert_eq!(
        read_to_close(&mut mute, Duration::from_secs(4)),
        Ok(Vec::new())
    );
    assert_eq!(relay.counters().head_timeouts, 2);
}

/// The head timeout also holds for the first connection of a core that has been idle:
/// there the timer sleeps without the stall check (until an engine deadline up to the
/// idle scan's 10 s away), and a new connection must wake it.
#[test]
fn a_header_block_unfinished_on_an_idle_core_is_closed_in_time() {
    let relay = Relay::start(1, Driver::IoUring, |c| {
        c.head_timeout = Duration::from_millis(300)
    });
    let ru = relay.uri();
    // One connection opens and closes: the relay keeps its idle-scan deadline.
    let mut first = relay.connect(&peer_uri("f", 1));
    first.auth(&ru);
    drop(first);
    // Past a stall check with no connection open: the timer now sleeps without it.
    thread::sleep(Duration::from_millis(1500));
    let mut slow = relay.connect(&peer_uri("s", 2));
    let t0 = Instant::now();
    slow.send_raw(b"MSRP slow0001 SEND\r\n");
    assert_eq!(
        read_to_close(&mut slow, Duration::from_secs(5)),
        Ok(Vec::new())
    );
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_millis(2500),
        "closed after {took:?}"
    );
    assert_eq!(relay.counters().head_timeouts, 1);
}

/// A sender that stops in the middle of a body would hold every other frame for that
/// receiver (frames never interleave on a connection). After the body timeout the relay
/// ends the stalled frame with `#`, closes the sender, and the held frames flow again.
#[test]
fn a_frame_body_that_stops_arriving_is_aborted() {
    let relay = Relay::start(1, Driver::IoUring, |c| {
        c.body_timeout = Duration::from_secs(1)
    });
    let ru = relay.uri();
    let mut bob = relay.connect(&peer_uri("bob", 1));
    let rb = bob.auth(&ru);
    let mut alice = relay.connect(&peer_uri("alice", 2));
    let ra = alice.auth(&ru);
    let mut stall = relay.connect(&peer_uri("stall", 3));
    let to_bob = format!("{rb} {}", bob.me);
    // 60 bytes of a 100-byte body, then nothing.
    let body: Vec<u8> = (0..60u8).map(|i| b'a' + i % 26).collect();
    let t0 = Instant::now();
    let mut m = format!(
        "MSRP st000001 SEND\r\nTo-Path: {to_bob}\r\nFrom-Path: {}\r\nMessage-ID: stalled1\r\n\
         Byte-Range: 1-100/100\r\nContent-Type: text/plain\r\n\r\n",
        stall.me
    )
    .into_bytes();
    m.extend_from_slice(&body);
    stall.send_raw(&m);
    thread::sleep(Duration::from_millis(100));
    // Alice's message to Bob waits behind the stalled frame...
    let tid = alice.send(
        &format!("{ra} {rb} {}", bob.me),
        &[("Message-ID", "fromalice"), ("Byte-Range", "1-2/2")],
        Some(b"hi"),
        Flag::Complete,
    );
    // ...which reaches Bob cut short with `#` once the body timeout has passed.
    let cut = bob.read_frame();
    let took = t0.elapsed();
    assert_eq!(cut.header("Message-ID"), Some("stalled1"));
    // What was passed on (the scanner keeps back a tail that could begin an end-line).
    assert_eq!(cut.flag, Flag::Aborted);
    assert!(
        !cut.body.is_empty() && body.starts_with(&cut.body),
        "{:?}",
        cut.body
    );
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "aborted after {took:?}"
    );
    let next = bob.read_frame();
    assert_eq!((next.kind(), next.body.as_slice()), ("SEND", &b"hi"[..]));
    bob.respond(&next, 200);
    let ok = alice.read_frame();
    assert_eq!((ok.tid(), ok.kind()), (tid.as_str(), "200"));
    assert!(stall.closed_within(Duration::from_secs(2)));
    assert_eq!(relay.counters().body_timeouts, 1);
    // A connection waiting between frames is not touched.
    assert!(!alice.closed_within(Duration::from_millis(1500)));
}

#[test]
fn timeouts_and_limits_as_msrpd_flags() {
    let p = RelayProcess::start(&[
        "--cores",
        "1",
        "--probation",
        "0.5",
        "--idle-timeout",
        "1.5",
        "--head-timeout",
        "0.5",
        "--max-connections-per-ip",
        "3",
        "--max-path-uris",
        "3",
    ]);
    let ru = p.uri();
    // A silent connection goes after 0.5 s (the head timeout: it never said what it
    // speaks; probation counts from its first MSRP bytes).
    let mut silent = p.connect(&peer_uri("s", 1));
    let t0 = Instant::now();
    assert!(silent.closed_within(Duration::from_secs(3)));
    assert!(
        t0.elapsed() < Duration::from_millis(1500),
        "{:?}",
        t0.elapsed()
    );
    // Idle: an authenticated connection goes after 1.5 s without traffic.
    let mut idle = p.connect(&peer_uri("i", 2));
    idle.auth(&ru);
    let t0 = Instant::now();
    assert!(idle.closed_within(Duration::from_secs(4)));
    assert!(
        t0.elapsed() >= Duration::from_millis(1000),
        "{:?}",
        t0.elapsed()
    );
    // Head timeout.
    let mut half = p.connect(&peer_uri("h", 3));
    half.auth(&ru);
    half.send_raw(b"MSRP x1 SEND\r\nTo-Path:");
    assert!(half.closed_within(Duration::from_secs(2)));
    // URIs per path.
    let mut a = p.connect(&peer_uri("a", 4));
    a.send_raw(
        format!(
            "MSRP u1tidx NICKNAME\r\nTo-Path: {ru} msrp://x.example.com:1/a;tcp msrp://y.example.com:1/b;tcp msrp://z.example.com:1/c;tcp\r\nFrom-Path: {}\r\n-------u1tidx$\r\n",
            a.me
        )
        .as_bytes(),
    );
    assert_eq!(a.read_frame().kind(), "400");
    // Per-address limit: three open (a and two more, authenticated so that probation
    // leaves them alone), the fourth is refused.
    a.auth(&ru);
    let mut b = p.connect(&peer_uri("b", 5));
    b.auth(&ru);
    let mut c = p.connect(&peer_uri("c", 6));
    c.auth(&ru);
    let mut d = p.connect(&peer_uri("d", 7));
    assert_eq!(
        read_to_close(&mut d, Duration::from_secs(2)),
        Ok(Vec::new())
    );
}
