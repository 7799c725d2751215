//! Volume: a 100 MiB message through the `msrpd` binary with bounded relay memory
//! (streaming and backpressure), and 64 pairs over two workers with every byte checked
//! and deliveries on the same core and across cores.

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use common::*;
use msrpd::codec::{Event, Flag, Scanner};

const MIB: usize = 1 << 20;

/// Byte `i` of the big message: a period of 251 (prime, so it never lines up with the
/// 1 MiB writes), with CR, LF, NUL and '-' in it but never seven '-' in a row.
fn pattern_at(i: u64) -> u8 {
    (i % 251) as u8
}

/// A buffer from which any window of the pattern up to `len` bytes can be sliced:
/// bytes `off..off+n` of the message are `buf[off % 251..][..n]`.
fn pattern_buf(len: usize) -> Vec<u8> {
    (0..(len + 251) as u64).map(pattern_at).collect()
}

#[test]
fn hundred_mib_message_same_core_bounded_memory() {
    hundred_mib_message(false);
}

#[test]
fn hundred_mib_message_cross_core_bounded_memory() {
    hundred_mib_message(true);
}

/// A sends B one 100 MiB chunk through a two-worker `msrpd`; B's connection is on A's
/// worker or on the other one, as `cross` asks. B starts reading late, so the relay
/// must stop reading from A (backpressure) rather than buffer the message.
fn hundred_mib_message(cross: bool) {
    const TOTAL: usize = 100 * MIB;
    const WRITE: usize = MIB;
    const LIMIT_KIB: u64 = 64 * 1024;
    let started = Instant::now();
    let relay = RelayProcess::start(&["--cores", "2"]);
    let mut a = relay.connect(&peer_uri("alice", 1111));
    let ra = a.auth(&relay.uri());
    let (mut b, rb) = auth_on_worker(
        |me| relay.connect(me),
        &relay.uri(),
        &peer_uri("bob", 2222),
        |core| (core != core_of(&ra)) == cross,
    );
    let base_kib = relay.peak_rss_kib();
    assert!(base_kib > 0, "no VmHWM for pid {}", relay.pid());
    let pat = pattern_buf(WRITE);
    let to_b = format!("{ra} {rb} {}", b.me);

    // The sender streams the head, 100 writes of 1 MiB and the end-line from its own
    // thread, then reads the relay's 200.
    let sender = {
        let pat = pat.clone();
        std::thread::spawn(move || {
            let tid = "bigmsg0001";
            let head = format!(
                "MSRP {tid} SEND\r\nTo-Path: {to_b}\r\nFrom-Path: {}\r\nMessage-ID: big00001\r\n\
                 Byte-Range: 1-{TOTAL}/{TOTAL}\r\nContent-Type: application/octet-stream\r\n\r\n",
                a.me
            );
            a.send_raw(head.as_bytes());
            let mut off = 0usize;
            while off < TOTAL {
                let s = off % 251;
                a.stream.write_all(&pat[s..s + WRITE]).expect("write body");
                off += WRITE;
            }
            a.send_raw(format!("\r\n-------{tid}$\r\n").as_bytes());
            let ok = a.read_frame();
            assert_eq!((ok.tid(), ok.kind()), (tid, "200"), "{}", ok.head);
            a
        })
    };

    // B does not read for a while: the relay may hold only up to its high-water mark,
    // so A's writes block long before the message is through.
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        !sender.is_finished(),
        "the relay took the whole message while the receiver read nothing"
    );
    let stalled_kib = relay.peak_rss_kib();

    // The receiver checks each piece as it comes and keeps none of it.
    let mut stream = b.stream.try_clone().unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut sc = Scanner::default();
    let mut buf = BytesMut::with_capacity(256 * 1024);
    let mut tmp = vec![0u8; 256 * 1024];
    let mut got: u64 = 0;
    let mut head: Option<String> = None;
    let flag = 'read: loop {
        while let Some(ev) = sc.next(&mut buf).expect("relay output scans") {
            match ev {
                Event::Head(h) => {
                    assert!(head.is_none(), "one frame only");
                    head = Some(String::from_utf8_lossy(h.as_bytes()).into_owned());
                }
                Event::Body(piece) => {
                    for (i, part) in piece.chunks(WRITE).enumerate() {
                        let s = ((got + (i * WRITE) as u64) % 251) as usize;
                        assert!(
                            part == &pat[s..s + part.len()],
                            "body differs near byte {got}"
                        );
                    }
                    got += piece.len() as u64;
                }
                Event::End(f) => break 'read f,
            }
        }
        let n = stream.read(&mut tmp).expect("read from relay");
        assert!(n > 0, "relay closed after {got} body bytes");
        buf.extend_from_slice(&tmp[..n]);
    };
    assert_eq!(flag, Flag::Complete);
    assert_eq!(got, TOTAL as u64);
    let head = head.unwrap();
    assert!(
        // Passed on interruptible: range-end `*` (RFC 4975 §7.1.1).
        head.contains(&format!("\r\nByte-Range: 1-*/{TOTAL}\r\n")),
        "{head}"
    );
    assert!(head.contains("\r\nMessage-ID: big00001\r\n"), "{head}");
    let _a = sender.join().expect("sender thread");
    let tid = head.split(' ').nth(1).unwrap().to_string();
    let from = head
        .lines()
        .find_map(|l| l.strip_prefix("From-Path: "))
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .to_string();
    b.send_raw(
        format!(
            "MSRP {tid} 200 OK\r\nTo-Path: {from}\r\nFrom-Path: {}\r\n-------{tid}$\r\n",
            b.me
        )
        .as_bytes(),
    );
    // VmHWM is the high-water mark: the peak over the whole transfer.
    let peak = relay.peak_rss_kib().max(stalled_kib);
    eprintln!(
        "100 MiB through msrpd ({}): relay VmHWM {peak} KiB (at start {base_kib} KiB, \
         receiver stalled {stalled_kib} KiB), {:.1} s",
        if cross { "cross-core" } else { "same core" },
        started.elapsed().as_secs_f64()
    );
    assert!(
        peak < LIMIT_KIB,
        "relay peak RSS {peak} KiB, limit {LIMIT_KIB} KiB"
    );
}

/// Deterministic content of message `k` of pair `p`: different for every message.
fn content(p: usize, k: usize, len: usize) -> Vec<u8> {
    let mut x = (p as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (k as u64 + 1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

#[test]
fn sixty_four_pairs_over_two_workers() {
    const PAIRS: usize = 64;
    const LEN: usize = 48 * 1024;
    const CHUNKS: usize = 3;
    for driver in DRIVERS {
        let relay = Relay::start(2, driver, |_| {});
        let addr = relay.addr;
        let relay_uri = relay.uri();
        let threads: Vec<_> = (0..PAIRS)
            .map(|p| {
                let relay_uri = relay_uri.clone();
                std::thread::spawn(move || {
                    let mut a = Client::connect(addr, &peer_uri(&format!("a{p}"), 1000));
                    let mut b = Client::connect(addr, &peer_uri(&format!("b{p}"), 2000));
                    let ra = a.auth(&relay_uri);
                    let rb = b.auth(&relay_uri);
                    let paths = [format!("{ra} {rb} {}", b.me), format!("{rb} {ra} {}", a.me)];
                    let mut bytes = 0usize;
                    for (dir, to) in paths.iter().enumerate() {
                        let (tx, rx) = if dir == 0 {
                            (&mut a, &mut b)
                        } else {
                            (&mut b, &mut a)
                        };
                        let body = content(p, dir, LEN);
                        let mid = format!("p{p}d{dir}");
                        let step = LEN / CHUNKS;
                        let mut received = Vec::with_capacity(LEN);
                        for c in 0..CHUNKS {
                            let (s, e) =
                                (c * step, if c + 1 == CHUNKS { LEN } else { (c + 1) * step });
                            let range = format!("{}-{e}/{LEN}", s + 1);
                            let flag = if c + 1 == CHUNKS {
                                Flag::Complete
                            } else {
                                Flag::Continued
                            };
                            let tid = tx.send(
                                to,
                                &[("Message-ID", &mid), ("Byte-Range", &range)],
                                Some(&body[s..e]),
                                flag,
                            );
                            let ok = tx.read_frame();
                            assert_eq!((ok.tid(), ok.kind()), (tid.as_str(), "200"));
                            let got = rx.read_frame();
                            assert_eq!(got.header("Message-ID"), Some(mid.as_str()));
                            // Chunks over 2048 octets are passed on interruptible.
                            let fwd = if e - s > 2048 {
                                format!("{}-*/{LEN}", s + 1)
                            } else {
                                range.clone()
                            };
                            assert_eq!(got.header("Byte-Range"), Some(fwd.as_str()));
                            assert_eq!(got.flag, flag);
                            received.extend_from_slice(&got.body);
                            rx.respond(&got, 200);
                        }
                        assert!(received == body, "pair {p} direction {dir}: content");
                        bytes += received.len();
                    }
                    bytes
                })
            })
            .collect();
        let total: usize = threads
            .into_iter()
            .map(|t| t.join().expect("pair thread"))
            .sum();
        assert_eq!(total, PAIRS * 2 * LEN);
        // The receivers' responses settle the transactions; the clients have closed, so
        // their sessions and connections go.
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            let c = relay.counters();
            if c.transactions == 0 && c.sessions == 0 && c.connections_open == 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let c = relay.counters();
        let per_core = relay.handle.as_ref().unwrap().counters_per_core();
        assert_eq!(c.auth_ok, 2 * PAIRS as u64);
        assert_eq!(
            c.deliveries_same_core + c.deliveries_cross_core,
            (PAIRS * 2 * CHUNKS) as u64
        );
        assert!(
            c.deliveries_same_core > 0 && c.deliveries_cross_core > 0,
            "same core {} cross core {}",
            c.deliveries_same_core,
            c.deliveries_cross_core
        );
        assert!(
            per_core.iter().all(|k| k.connections_total > 0),
            "both workers got connections: {per_core:?}"
        );
        assert_eq!(c.reports_sent, 0);
        assert_eq!(c.transactions, 0);
        assert_eq!(c.sessions, 0);
        assert_eq!(c.connections_open, 0);
        assert_eq!(c.connections_total, 2 * PAIRS as u64);
    }
}

/// msrpd-bench sets up at most --setup-concurrency pairs per thread at once, so a
/// connection's AUTH follows its connect instead of waiting behind every other connect
/// (which outlasts the relay's probation on a slow host). Against a listener that never
/// answers, two connections per set-up pair are all it ever opens, and the pair's set-up
/// timeout ends the run with an error that says so.
#[test]
fn bench_sets_up_a_bounded_number_of_pairs_at_once() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    let accepting = std::thread::spawn(move || {
        let mut held = Vec::new();
        let end = std::time::Instant::now() + Duration::from_secs(4);
        while std::time::Instant::now() < end {
            match listener.accept() {
                Ok((s, _)) => held.push(s),
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
        held.len()
    });
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_msrpd-bench"))
        .args(["--relay", &addr.to_string(), "--threads", "1"])
        .args(["--pairs", "50", "--setup-concurrency", "3"])
        .args(["--setup-timeout", "1.5", "--warmup", "0"])
        .args(["--duration", "0.2"])
        .output()
        .unwrap();
    let accepted = accepting.join().unwrap();
    let err = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("setup timed out"), "{err}");
    // 3 pairs of 2 connections, plus at most one more pair per slot started between its
    // time-out and the run being given up.
    assert!(
        (6..=12).contains(&accepted),
        "{accepted} connections\n{err}"
    );
}
