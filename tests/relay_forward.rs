//! Forwarding through one relay (RFC 4976 §6.4): two clients, both directions, on both
//! drivers. Bodiless SENDs, chunks and their flags, binary bodies, REPORTs routed back,
//! Failure-Report yes/no/partial, 408 on timeout, non-SEND methods, and the ownership
//! rules (§6.2, §6.4): unknown, expired and orphaned sessions, foreign first URIs.

mod common;

use std::time::{Duration, Instant};

use common::*;
use msrpd::codec::Flag;
use msrpd::server::Driver;

/// How long to wait for something that must not arrive.
const QUIET: Duration = Duration::from_millis(400);

/// A and B, both authenticated: (a, b, A's relay URI, B's relay URI).
fn pair(relay: &Relay) -> (Client, Client, String, String) {
    let mut a = relay.connect(&peer_uri("alice", 1111));
    let mut b = relay.connect(&peer_uri("bob", 2222));
    let ra = a.auth(&relay.uri());
    let rb = b.auth(&relay.uri());
    assert_ne!(ra, rb);
    (a, b, ra, rb)
}

/// Asserts that nothing arrives on `c` within `QUIET`.
fn assert_quiet(c: &mut Client, what: &str) {
    match c.try_read_frame(QUIET) {
        Ok(f) => panic!("{what}: unexpected frame {:?}", f.head),
        Err(e) => assert!(
            e.contains("timed out") || e.contains("temporarily unavailable"),
            "{what}: expected silence, got {e}"
        ),
    }
}

/// The head the relay must emit for a frame it forwards: new tid, paths rewritten,
/// every other header line copied byte for byte.
fn expected_head(start: &str, to: &str, from: &str, rest: &[&str]) -> String {
    let mut h = format!("{start}\r\nTo-Path: {to}\r\nFrom-Path: {from}\r\n");
    for l in rest {
        h.push_str(l);
        h.push_str("\r\n");
    }
    h
}

/// A response with a full To-Path (for non-SEND requests, RFC 4975 §7.2).
fn respond_full(c: &mut Client, req: &Frame, code: u16) {
    let from = req.header("From-Path").unwrap().to_string();
    let m = format!(
        "MSRP {} {code} OK\r\nTo-Path: {from}\r\nFrom-Path: {}\r\n-------{}$\r\n",
        req.tid(),
        c.me,
        req.tid()
    );
    c.send_raw(m.as_bytes());
}

/// A request with raw headers and an optional body, built by hand.
fn raw_request(
    tid: &str,
    method: &str,
    headers: &[String],
    body: Option<&[u8]>,
    flag: Flag,
) -> Vec<u8> {
    let mut m = format!("MSRP {tid} {method}\r\n").into_bytes();
    for h in headers {
        m.extend_from_slice(h.as_bytes());
        m.extend_from_slice(b"\r\n");
    }
    match body {
        Some(b) => {
            m.extend_from_slice(b"\r\n");
            m.extend_from_slice(b);
            m.extend_from_slice(format!("\r\n-------{tid}").as_bytes());
        }
        None => m.extend_from_slice(format!("-------{tid}").as_bytes()),
    }
    m.push(flag.as_byte());
    m.extend_from_slice(b"\r\n");
    m
}

#[test]
fn empty_binding_send_both_directions() {
    for driver in DRIVERS {
        let relay = Relay::start(2, driver, |_| {});
        let (mut a, mut b, ra, rb) = pair(&relay);
        // A -> B: no body, no Content-Type, end-line right after the headers (§7.1, §5.4).
        let to_b = format!("{ra} {rb} {}", b.me);
        let tid = a.send(
            &to_b,
            &[("Message-ID", "bind0001"), ("Byte-Range", "1-0/0")],
            None,
            Flag::Complete,
        );
        let ok = a.read_frame();
        assert_eq!(ok.tid(), tid);
        assert_eq!(ok.kind(), "200");
        assert_eq!(ok.header("To-Path"), Some(a.me.as_str()));
        assert_eq!(ok.header("From-Path"), Some(ra.as_str()));
        let got = b.read_frame();
        assert_eq!(got.kind(), "SEND");
        assert_ne!(got.tid(), tid);
        assert!(!got.has_body, "a bodiless SEND stays bodiless");
        assert!(got.body.is_empty());
        assert_eq!(got.flag, Flag::Complete);
        let start = format!("MSRP {} SEND", got.tid());
        assert_eq!(
            got.head,
            expected_head(
                &start,
                &b.me,
                &format!("{rb} {ra} {}", a.me),
                &["Message-ID: bind0001", "Byte-Range: 1-0/0"]
            )
        );
        b.respond(&got, 200);
        // B -> A through both relay URIs.
        let to_a = format!("{rb} {ra} {}", a.me);
        let tid = b.send(&to_a, &[("Message-ID", "bind0002")], None, Flag::Complete);
        let ok = b.read_frame();
        assert_eq!((ok.tid(), ok.kind()), (tid.as_str(), "200"));
        assert_eq!(ok.header("From-Path"), Some(rb.as_str()));
        let got = a.read_frame();
        assert!(!got.has_body);
        let start = format!("MSRP {} SEND", got.tid());
        assert_eq!(
            got.head,
            expected_head(
                &start,
                &a.me,
                &format!("{ra} {rb} {}", b.me),
                &["Message-ID: bind0002"]
            )
        );
        a.respond(&got, 200);
        assert_quiet(&mut a, "A after the exchange");
        assert_quiet(&mut b, "B after the exchange");
        let c = relay.counters();
        assert_eq!(c.deliveries_same_core + c.deliveries_cross_core, 2);
        assert_eq!(c.reports_sent, 0);
    }
}

#[test]
fn chunks_keep_flags_and_byte_ranges() {
    for driver in DRIVERS {
        let relay = Relay::start(2, driver, |_| {});
        let (mut a, mut b, ra, rb) = pair(&relay);
        for (from_a, to_path) in [
            (true, format!("{ra} {rb} {}", b.me)),
            (false, format!("{rb} {ra} {}", a.me)),
        ] {
            let (tx, rx) = if from_a {
                (&mut a, &mut b)
            } else {
                (&mut b, &mut a)
            };
            // A message in three chunks, one with an unknown end and total, and an
            // aborted message.
            let chunks: [(&str, &str, &[u8], Flag); 5] = [
                ("chunked1", "1-4/10", b"abcd", Flag::Continued),
                ("chunked1", "5-8/10", b"efgh", Flag::Continued),
                ("chunked1", "9-10/10", b"ij", Flag::Complete),
                ("chunked2", "1-*/*", b"first part", Flag::Continued),
                ("chunked2", "11-15/*", b"gone!", Flag::Aborted),
            ];
            for (mid, range, body, flag) in chunks {
                let tid = tx.send(
                    &to_path,
                    &[("Message-ID", mid), ("Byte-Range", range)],
                    Some(body),
                    flag,
                );
                let ok = tx.read_frame();
                assert_eq!((ok.tid(), ok.kind()), (tid.as_str(), "200"), "{range}");
                let got = rx.read_frame();
                assert_eq!(got.kind(), "SEND");
                assert_eq!(got.flag, flag, "flag of {mid} {range}");
                assert_eq!(got.header("Byte-Range"), Some(range));
                assert_eq!(got.header("Message-ID"), Some(mid));
                assert_eq!(got.body, body);
                assert_eq!(got.header("To-Path"), Some(rx.me.as_str()));
                rx.respond(&got, 200);
            }
            assert_quiet(tx, "sender after its chunks");
        }
        let c = relay.counters();
        assert_eq!(c.deliveries_same_core + c.deliveries_cross_core, 10);
        assert_eq!(c.reports_sent, 0);
    }
}

/// Deterministic pseudo-random bytes (xorshift64*).
fn noise(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
        })
        .collect()
}

#[test]
fn binary_bodies_cross_intact() {
    for driver in DRIVERS {
        let relay = Relay::start(2, driver, |_| {});
        let (mut a, mut b, ra, rb) = pair(&relay);
        // The tid the sender will use for its next request (the client counts up).
        let mut probe = a.tid();
        probe = format!("t{:07}x", probe[1..8].parse::<u64>().unwrap() + 1);
        let mut tricky = Vec::new();
        tricky.extend_from_slice(b"\0\0\r\n\r\n\n\r");
        tricky.extend_from_slice(b"\r\n-------t0000099x$\r\n");
        tricky.extend_from_slice(b"\r\n-------someothertid+\r\nMSRP x SEND\r\n\r\n");
        tricky.extend_from_slice(b"\r\n-------");
        tricky.extend_from_slice(probe.as_bytes());
        tricky.extend_from_slice(b"Z\r\n"); // the sender's tid without a flag: body
        tricky.extend_from_slice(b"\r\n-------");
        tricky.extend_from_slice(probe.as_bytes());
        tricky.extend_from_slice(b"$X\r\n"); // a flag, but no CRLF after it: body
        tricky.extend((0..=255u8).cycle().take(1024));
        tricky.extend_from_slice(b"\r\n-------");
        tricky.extend_from_slice(b"\0\r\n");
        let big = noise(7, 700 * 1024);
        let to_b = format!("{ra} {rb} {}", b.me);
        let to_a = format!("{rb} {ra} {}", a.me);
        for (i, body) in [tricky.clone(), big.clone(), b"\r\n".to_vec(), vec![0u8]]
            .iter()
            .enumerate()
        {
            let mid = format!("binary{i:02}");
            let len = body.len();
            let range = format!("1-{len}/{len}");
            let tid = a.send(
                &to_b,
                &[("Message-ID", &mid), ("Byte-Range", &range)],
                Some(body),
                Flag::Complete,
            );
            if i == 0 {
                assert_eq!(tid, probe, "the probe guessed the sender's tid");
            }
            assert_eq!(a.read_frame().kind(), "200");
            let got = b.read_frame();
            assert_eq!(got.body.len(), len, "{mid} length");
            assert!(got.body == *body, "{mid} content");
            assert_eq!(got.flag, Flag::Complete);
            b.respond(&got, 200);
            // And back, the body written in small pieces.
            let tid = b.tid();
            let msg = raw_request(
                &tid,
                "SEND",
                &[
                    format!("To-Path: {to_a}"),
                    format!("From-Path: {}", b.me),
                    format!("Message-ID: {mid}b"),
                    format!("Byte-Range: {range}"),
                    "Content-Type: application/octet-stream".into(),
                ],
                Some(body),
                Flag::Complete,
            );
            for piece in msg.chunks(4093) {
                b.send_raw(piece);
            }
            let ok = b.read_frame();
            assert_eq!((ok.tid(), ok.kind()), (tid.as_str(), "200"));
            let got = a.read_frame();
            assert!(got.body == *body, "{mid} content, B to A");
            assert_eq!(got.header("Content-Type"), Some("application/octet-stream"));
            a.respond(&got, 200);
        }
        assert_quiet(&mut a, "A");
        assert_eq!(relay.counters().reports_sent, 0);
    }
}

#[test]
fn success_report_routed_back_to_sender() {
    for driver in DRIVERS {
        let relay = Relay::start(2, driver, |_| {});
        let (mut a, mut b, ra, rb) = pair(&relay);
        let tid = a.send(
            &format!("{ra} {rb} {}", b.me),
            &[
                ("Message-ID", "report01"),
                ("Byte-Range", "1-5/5"),
                ("Success-Report", "yes"),
            ],
            Some(b"hello"),
            Flag::Complete,
        );
        assert_eq!(a.read_frame().tid(), tid);
        let got = b.read_frame();
        assert_eq!(got.header("Success-Report"), Some("yes"));
        b.respond(&got, 200);
        // B reports success: To-Path is the From-Path it received (RFC 4975 §7.1.2).
        let back = got.header("From-Path").unwrap().to_string();
        assert_eq!(back, format!("{rb} {ra} {}", a.me));
        let rtid = b.tid();
        let report = raw_request(
            &rtid,
            "REPORT",
            &[
                format!("To-Path: {back}"),
                format!("From-Path: {}", b.me),
                "Message-ID: report01".into(),
                "Byte-Range: 1-5/5".into(),
                "Status: 000 200 OK".into(),
            ],
            None,
            Flag::Complete,
        );
        b.send_raw(&report);
        let rep = a.read_frame();
        assert_eq!(rep.kind(), "REPORT");
        assert_ne!(rep.tid(), rtid);
        let start = format!("MSRP {} REPORT", rep.tid());
        assert_eq!(
            rep.head,
            expected_head(
                &start,
                &a.me,
                &format!("{ra} {rb} {}", b.me),
                &[
                    "Message-ID: report01",
                    "Byte-Range: 1-5/5",
                    "Status: 000 200 OK"
                ]
            )
        );
        // REPORTs are never answered (RFC 4975 §7.1.2): not by the relay either.
        assert_quiet(&mut b, "B after its REPORT");
        assert_quiet(&mut a, "A after the REPORT");
        assert_eq!(relay.counters().reports_sent, 0);
    }
}

/// Sends one SEND from A to B with `fr` (None: header absent) and returns the frame B got.
fn send_with_fr(
    a: &mut Client,
    b: &mut Client,
    to_b: &str,
    mid: &str,
    fr: Option<&str>,
) -> (String, Frame) {
    let mut extra = vec![("Message-ID", mid), ("Byte-Range", "1-5/5")];
    if let Some(v) = fr {
        extra.push(("Failure-Report", v));
    }
    let tid = a.send(to_b, &extra, Some(b"hello"), Flag::Complete);
    let got = b.read_frame();
    assert_eq!(got.kind(), "SEND");
    assert_eq!(got.header("Failure-Report"), fr);
    (tid, got)
}

/// Asserts `rep` is the relay's failure REPORT for message `mid` with `code`.
fn assert_failure_report(rep: &Frame, a: &Client, ra: &str, mid: &str, code: u16) {
    assert_eq!(rep.kind(), "REPORT", "{}", rep.head);
    assert_eq!(rep.header("To-Path"), Some(a.me.as_str()));
    assert_eq!(rep.header("From-Path"), Some(ra));
    assert_eq!(rep.header("Message-ID"), Some(mid));
    assert_eq!(rep.header("Byte-Range"), Some("1-5/5"));
    let status = rep.header("Status").unwrap();
    assert!(
        status.starts_with(&format!("000 {code}")),
        "Status {status:?}, want 000 {code}"
    );
    assert!(!rep.has_body);
}

#[test]
fn failure_report_yes_no_partial() {
    for driver in DRIVERS {
        let relay = Relay::start(2, driver, |_| {});
        let (mut a, mut b, ra, rb) = pair(&relay);
        let to_b = format!("{ra} {rb} {}", b.me);

        // Absent (means yes) and yes: 200 at once, before B answers; B's error -> REPORT.
        for (mid, fr) in [("fr-absent", None), ("fr-yes01", Some("yes"))] {
            let (tid, got) = send_with_fr(&mut a, &mut b, &to_b, mid, fr);
            let ok = a.read_frame();
            assert_eq!((ok.tid(), ok.kind()), (tid.as_str(), "200"));
            b.respond(&got, 415);
            let rep = a.read_frame();
            assert_failure_report(&rep, &a, &ra, mid, 415);
            assert_quiet(&mut b, "B: a REPORT to A is not sent to B");
        }
        // yes, and B says 200: nothing more.
        let (tid, got) = send_with_fr(&mut a, &mut b, &to_b, "fr-yes02", Some("yes"));
        assert_eq!(a.read_frame().tid(), tid);
        b.respond(&got, 200);
        assert_quiet(&mut a, "A after a 200 from B");

        // no: no 200, and no REPORT even when B answers with an error.
        let (_, got) = send_with_fr(&mut a, &mut b, &to_b, "fr-no001", Some("no"));
        b.respond(&got, 415);
        assert_quiet(&mut a, "A with Failure-Report no");

        // partial: no 200; an error response becomes a REPORT; a 200 does not.
        let (_, got) = send_with_fr(&mut a, &mut b, &to_b, "fr-part1", Some("partial"));
        b.respond(&got, 200);
        assert_quiet(&mut a, "A with Failure-Report partial, B said 200");
        let (_, got) = send_with_fr(&mut a, &mut b, &to_b, "fr-part2", Some("partial"));
        b.respond(&got, 403);
        let rep = a.read_frame();
        assert_failure_report(&rep, &a, &ra, "fr-part2", 403);
        assert_quiet(&mut a, "A after the partial REPORT");
        assert_eq!(relay.counters().reports_sent, 3);
        assert_eq!(relay.counters().transactions, 0);
    }
}

#[test]
fn no_answer_from_receiver_gives_408_report() {
    for driver in DRIVERS {
        let relay = Relay::start(2, driver, |cfg| {
            cfg.relay.txn_timeout = Duration::from_millis(300);
        });
        let (mut a, mut b, ra, rb) = pair(&relay);
        let to_b = format!("{ra} {rb} {}", b.me);
        let (tid, _) = send_with_fr(&mut a, &mut b, &to_b, "timeout1", Some("yes"));
        let sent = Instant::now();
        let ok = a.read_frame();
        assert_eq!((ok.tid(), ok.kind()), (tid.as_str(), "200"));
        let rep = a.read_frame();
        let waited = sent.elapsed();
        assert_failure_report(&rep, &a, &ra, "timeout1", 408);
        assert!(
            waited >= Duration::from_millis(250) && waited < Duration::from_secs(3),
            "408 after {waited:?}"
        );
        assert_eq!(relay.counters().txn_timeouts, 1);
        // partial: errors other than timeouts only (RFC 4975 §5.3).
        let _ = send_with_fr(&mut a, &mut b, &to_b, "timeout2", Some("partial"));
        std::thread::sleep(Duration::from_millis(400));
        assert_quiet(&mut a, "A with partial after a timeout");
        // A late answer after the timeout is dropped quietly.
        let (tid, got) = send_with_fr(&mut a, &mut b, &to_b, "timeout3", None);
        assert_eq!(a.read_frame().tid(), tid);
        let rep = a.read_frame();
        assert_failure_report(&rep, &a, &ra, "timeout3", 408);
        b.respond(&got, 200);
        assert_quiet(&mut a, "A after a late 200");
        let c = relay.counters();
        assert_eq!(c.txn_timeouts, 3);
        assert_eq!(c.reports_sent, 2);
        assert_eq!(c.transactions, 0);
    }
}

#[test]
fn nickname_and_unknown_methods_forwarded_like_report() {
    for driver in DRIVERS {
        let relay = Relay::start(2, driver, |_| {});
        let (mut a, mut b, ra, rb) = pair(&relay);
        let to_b = format!("{ra} {rb} {}", b.me);
        for method in ["NICKNAME", "FROBNICATE"] {
            let tid = a.tid();
            let req = raw_request(
                &tid,
                method,
                &[
                    format!("To-Path: {to_b}"),
                    format!("From-Path: {}", a.me),
                    "Use-Nickname: \"alice\"".into(),
                ],
                None,
                Flag::Complete,
            );
            a.send_raw(&req);
            let got = b.read_frame();
            assert_eq!(got.kind(), method);
            assert_ne!(got.tid(), tid);
            let start = format!("MSRP {} {method}", got.tid());
            assert_eq!(
                got.head,
                expected_head(
                    &start,
                    &b.me,
                    &format!("{rb} {ra} {}", a.me),
                    &["Use-Nickname: \"alice\""]
                )
            );
            assert_quiet(&mut a, "no relay response to a non-SEND request");
            // B's response goes back along the full path with A's tid (§6.4.3).
            respond_full(&mut b, &got, 200);
            let r = a.read_frame();
            assert_eq!((r.tid(), r.kind()), (tid.as_str(), "200"), "{}", r.head);
            assert_eq!(r.header("To-Path"), Some(a.me.as_str()));
            assert_eq!(
                r.header("From-Path"),
                Some(format!("{ra} {rb} {}", b.me).as_str())
            );
        }
        assert_quiet(&mut b, "B");
        assert_eq!(relay.counters().transactions, 0);
    }
}

/// A SEND from `a` to `to_path` that the relay must refuse with 481: a 481 response
/// and, for Failure-Report yes, a 481 REPORT to A.
fn expect_481(a: &mut Client, to_path: &str, mid: &str) {
    let first = to_path.split(' ').next().unwrap().to_string();
    let tid = a.send(
        to_path,
        &[("Message-ID", mid), ("Byte-Range", "1-5/5")],
        Some(b"hello"),
        Flag::Complete,
    );
    let r = a.read_frame();
    assert_eq!((r.tid(), r.kind()), (tid.as_str(), "481"), "{}", r.head);
    assert_eq!(r.header("To-Path"), Some(a.me.as_str()));
    assert_eq!(r.header("From-Path"), Some(first.as_str()));
    let rep = a.read_frame();
    assert_failure_report(&rep, a, &first, mid, 481);
    // Failure-Report no: discarded silently.
    a.send(
        to_path,
        &[("Message-ID", mid), ("Failure-Report", "no")],
        Some(b"hello"),
        Flag::Complete,
    );
    assert_quiet(a, "481 with Failure-Report no");
}

#[test]
fn unknown_session_is_481() {
    for driver in DRIVERS {
        let relay = Relay::start(2, driver, |_| {});
        let (mut a, mut b, ra, rb) = pair(&relay);
        let port = relay.addr.port();
        // Session ids the relay never made: not in its format, a forged random key, a
        // core that does not exist.
        let sid = rb.rsplit('/').next().unwrap().trim_end_matches(";tcp");
        assert_eq!(sid.len(), 28);
        let flipped = format!(
            "{}{}",
            &sid[..27],
            if sid.ends_with('0') { '1' } else { '0' }
        );
        let bad_core = format!("00ff{}", &sid[4..]);
        for (i, s) in ["nosuchsession", flipped.as_str(), bad_core.as_str()]
            .iter()
            .enumerate()
        {
            let uri = format!("msrp://127.0.0.1:{port}/{s};tcp");
            expect_481(&mut a, &format!("{uri} {}", b.me), &format!("unknown{i}"));
            // Also as the second hop, after A's own session.
            expect_481(
                &mut a,
                &format!("{ra} {uri} {}", b.me),
                &format!("unkno2{i}"),
            );
        }
        assert_quiet(&mut b, "B gets none of it");
        // The relay still works for A and B.
        let tid = a.send(
            &format!("{ra} {rb} {}", b.me),
            &[("Message-ID", "stillok1")],
            Some(b"ok"),
            Flag::Complete,
        );
        assert_eq!(a.read_frame().tid(), tid);
        assert_eq!(b.read_frame().body, b"ok");
    }
}

#[test]
fn expired_session_is_481() {
    let relay = Relay::start(2, Driver::Auto, |cfg| {
        cfg.relay.expires_min = 1;
    });
    let mut a = relay.connect(&peer_uri("alice", 1111));
    let mut b = relay.connect(&peer_uri("bob", 2222));
    let ra = a.auth(&relay.uri());
    let r = b.auth_with(&relay.uri(), &[("Expires", "1")]);
    assert_eq!(r.kind(), "200");
    assert_eq!(r.header("Expires"), Some("1"));
    let rb = b.use_path.clone().unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    expect_481(&mut a, &format!("{ra} {rb} {}", b.me), "expired1");
    expect_481(&mut a, &format!("{rb} {}", b.me), "expired2");
    assert_quiet(&mut b, "B's session expired");
}

#[test]
fn session_of_closed_connection_is_481() {
    for driver in DRIVERS {
        let relay = Relay::start(2, driver, |_| {});
        let (mut a, b, ra, rb) = pair(&relay);
        let b_me = b.me.clone();
        assert_eq!(relay.counters().sessions, 2);
        drop(b);
        let deadline = Instant::now() + Duration::from_secs(5);
        while relay.counters().sessions != 1 {
            assert!(
                Instant::now() < deadline,
                "B's session outlived its connection"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        expect_481(&mut a, &format!("{ra} {rb} {b_me}"), "orphan01");
        expect_481(&mut a, &format!("{rb} {b_me}"), "orphan02");
        // A new connection never inherits B's old session.
        let mut b2 = relay.connect(&b_me);
        let rb2 = b2.auth(&relay.uri());
        assert_ne!(rb2, rb);
        expect_481(&mut a, &format!("{ra} {rb} {b_me}"), "orphan03");
        assert_quiet(&mut b2, "B2 gets nothing sent to B's old session");
    }
}

#[test]
fn first_uri_not_ours_drops_the_connection() {
    for driver in DRIVERS {
        let relay = Relay::start(2, driver, |_| {});
        let (mut a, mut b, ra, rb) = pair(&relay);
        let port = relay.addr.port();
        let other_port = if port == 1 { 2 } else { port - 1 };
        let foreign = [
            "msrp://127.0.0.9:1/x;tcp".to_string(),
            format!(
                "msrp://127.0.0.1:{other_port}/{};tcp",
                &rb[rb.rfind('/').unwrap() + 1..rb.len() - 4]
            ),
            format!("msrps://127.0.0.1:{port}/x;tcp"),
        ];
        for uri in &foreign {
            // On a fresh connection and on an authenticated one.
            let mut c = relay.connect(&peer_uri("carol", 3333));
            c.send(
                &format!("{uri} {rb} {}", b.me),
                &[("Message-ID", "foreign1")],
                Some(b"x"),
                Flag::Complete,
            );
            assert_eq!(
                c.try_read_frame(Duration::from_secs(3)).err().as_deref(),
                Some("connection closed"),
                "{uri}"
            );
        }
        a.send(
            &format!("{} {rb} {}", foreign[0], b.me),
            &[("Message-ID", "foreign2")],
            Some(b"x"),
            Flag::Complete,
        );
        assert_eq!(
            a.try_read_frame(Duration::from_secs(3)).err().as_deref(),
            Some("connection closed")
        );
        assert_quiet(&mut b, "B gets nothing");
        // B's session is unaffected.
        let mut a2 = relay.connect(&peer_uri("alice2", 1112));
        let ra2 = a2.auth(&relay.uri());
        assert_ne!(ra2, ra);
        a2.send(
            &format!("{ra2} {rb} {}", b.me),
            &[("Message-ID", "after001")],
            Some(b"still here"),
            Flag::Complete,
        );
        assert_eq!(a2.read_frame().kind(), "200");
        assert_eq!(b.read_frame().body, b"still here");
    }
}

#[test]
fn a_session_uri_leads_only_to_its_owner() {
    for driver in DRIVERS {
        let relay = Relay::start(2, driver, |_| {});
        let (mut a, mut b, ra, rb) = pair(&relay);
        let mut c = relay.connect(&peer_uri("carol", 3333));
        let rc = c.auth(&relay.uri());
        // C names A's session first, then something other than A: RFC 4976 §6.4 lets
        // A's URI lead only to A, so the request is refused (403), with a REPORT to C
        // (Failure-Report yes), and neither A nor B sees it.
        let tid = c.send(
            &format!("{ra} {rb} {}", b.me),
            &[("Message-ID", "hijack01")],
            Some(b"x"),
            Flag::Complete,
        );
        let refused = c.read_frame();
        assert_eq!((refused.tid(), refused.kind()), (tid.as_str(), "403"));
        let report = c.read_frame();
        assert_eq!(report.kind(), "REPORT");
        assert_eq!(report.header("Message-ID"), Some("hijack01"));
        assert!(report.header("Status").unwrap().starts_with("000 403"));
        assert_quiet(&mut a, "A never sees a frame that does not lead to it");
        assert_quiet(&mut b, "B never sees C's frame through A's session");
        // Addressed to A itself, the same frame goes through.
        let tid = c.send(
            &format!("{ra} {}", a.me),
            &[("Message-ID", "toalice1")],
            Some(b"x"),
            Flag::Complete,
        );
        assert_eq!(c.read_frame().tid(), tid);
        let got = a.read_frame();
        assert_eq!(got.header("To-Path"), Some(a.me.as_str()));
        assert_eq!(
            got.header("From-Path"),
            Some(format!("{ra} {}", c.me).as_str())
        );
        // An unauthenticated connection may still reach an owner through its URI.
        let mut d = relay.connect(&peer_uri("dave", 4444));
        let tid = d.send(
            &format!("{rc} {}", c.me),
            &[("Message-ID", "direct01")],
            Some(b"to carol"),
            Flag::Complete,
        );
        assert_eq!(d.read_frame().tid(), tid);
        assert_eq!(c.read_frame().body, b"to carol");
    }
}

/// A request for a session of the other worker is parsed and checked where it comes in
/// and handed over; the owner only checks the session. Every outcome must be what the
/// same request gets when both ends share a worker: delivery, 481 for an unknown
/// session of that worker, 481 when the To-Path ends at the relay.
#[test]
fn session_on_the_other_worker_same_outcomes() {
    for driver in DRIVERS {
        let relay = Relay::start(2, driver, |_| {});
        let mut a = relay.connect(&peer_uri("alice", 1111));
        let ra = a.auth(&relay.uri());
        for cross in [true, false] {
            let (mut b, rb) = auth_on_worker(
                |me| relay.connect(me),
                &relay.uri(),
                &peer_uri("bob", 2222),
                |core| (core != core_of(&ra)) == cross,
            );
            let before = relay.counters();
            let tid = a.send(
                &format!("{ra} {rb} {}", b.me),
                &[("Message-ID", "handoff1"), ("Byte-Range", "1-5/5")],
                Some(b"hello"),
                Flag::Complete,
            );
            assert_eq!(a.read_frame().tid(), tid, "cross {cross}");
            let got = b.read_frame();
            assert_eq!(got.body, b"hello", "cross {cross}");
            assert_eq!(
                got.header("From-Path"),
                Some(format!("{rb} {ra} {}", a.me).as_str())
            );
            b.respond(&got, 200);
            let after = relay.counters();
            let (same, other) = (
                after.deliveries_same_core - before.deliveries_same_core,
                after.deliveries_cross_core - before.deliveries_cross_core,
            );
            assert_eq!((same, other), if cross { (0, 1) } else { (1, 0) });

            // A session id of B's worker that the relay never made.
            let sid = rb.rsplit('/').next().unwrap().trim_end_matches(";tcp");
            let forged = format!(
                "{}{}",
                &sid[..27],
                if sid.ends_with('0') { '1' } else { '0' }
            );
            let uri = rb.replace(sid, &forged);
            expect_481(&mut a, &format!("{uri} {}", b.me), "handoff2");
            expect_481(&mut a, &format!("{ra} {uri} {}", b.me), "handoff3");
            // B's own session, but nothing after it.
            let tid = a.send(
                &rb,
                &[("Message-ID", "handoff4"), ("Byte-Range", "1-5/5")],
                Some(b"hello"),
                Flag::Complete,
            );
            let r = a.read_frame();
            assert_eq!(
                r.start(),
                format!("MSRP {tid} 481 no next hop after this relay"),
                "cross {cross}"
            );
            let rep = a.read_frame();
            assert_failure_report(&rep, &a, &rb, "handoff4", 481);
            assert_quiet(&mut b, "B gets none of the refused ones");
            let deadline = Instant::now() + Duration::from_secs(5);
            while relay.counters().transactions != 0 {
                assert!(Instant::now() < deadline, "a transaction is left over");
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}
