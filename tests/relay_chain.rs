//! Two `msrpd` processes in a chain (RFC 4976 §6.4, §6.4.2): A -> R1 -> R2 -> B and
//! back. A authenticates to R1 and B to R2; R1 reaches R2 over a TCP connection of its
//! own, and R2 reaches R1 the same way.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::*;
use msrpd::codec::Flag;

/// Socket inodes held open by process `pid`.
fn socket_inodes(pid: u32) -> HashSet<u64> {
    let mut out = HashSet::new();
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return out;
    };
    for e in dir.flatten() {
        if let Ok(target) = std::fs::read_link(e.path()) {
            let t = target.to_string_lossy();
            if let Some(n) = t.strip_prefix("socket:[").and_then(|r| r.strip_suffix(']')) {
                if let Ok(n) = n.parse() {
                    out.insert(n);
                }
            }
        }
    }
    out
}

/// Established IPv4 TCP connections of process `pid` whose remote end is 127.0.0.1:`port`.
fn connections_to(pid: u32, port: u16) -> usize {
    let mine = socket_inodes(pid);
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    let want = format!("0100007F:{port:04X}");
    table
        .lines()
        .skip(1)
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // sl local rem st ... uid timeout inode
            f.len() > 9
                && f[2] == want
                && f[3] == "01"
                && f[9].parse::<u64>().is_ok_and(|i| mine.contains(&i))
        })
        .count()
}

#[test]
fn two_relays_chained_both_directions() {
    // One relay on each driver.
    let r1 = RelayProcess::start(&["--cores", "2", "--driver", "io-uring"]);
    let r2 = RelayProcess::start(&["--cores", "2", "--driver", "epoll"]);
    let mut a = r1.connect(&peer_uri("alice", 1111));
    let mut b = r2.connect(&peer_uri("bob", 2222));
    let ra = a.auth(&r1.uri());
    let rb = b.auth(&r2.uri());
    assert!(ra.starts_with(&format!("{}/", r1.uri().trim_end_matches(";tcp"))));
    assert!(rb.starts_with(&format!("{}/", r2.uri().trim_end_matches(";tcp"))));
    assert_eq!(connections_to(r1.pid(), r2.addr.port()), 0);

    // A -> R1 -> R2 -> B.
    let to_b = format!("{ra} {rb} {}", b.me);
    let body: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 256) as u8).collect();
    let range = format!("1-{0}/{0}", body.len());
    let tid = a.send(
        &to_b,
        &[
            ("Message-ID", "chain001"),
            ("Byte-Range", &range),
            ("X-Extra", "kept  as\tis"),
        ],
        Some(&body),
        Flag::Complete,
    );
    let ok = a.read_frame();
    assert_eq!((ok.tid(), ok.kind()), (tid.as_str(), "200"));
    assert_eq!(ok.header("To-Path"), Some(a.me.as_str()));
    assert_eq!(ok.header("From-Path"), Some(ra.as_str()));
    let got = b.read_frame();
    assert_eq!(got.kind(), "SEND");
    assert_ne!(got.tid(), tid);
    assert!(got.body == body, "body through two relays");
    let start = format!("MSRP {} SEND", got.tid());
    // Over 2048 octets: passed on interruptible, its range-end `*` (RFC 4975 §7.1.1).
    let range = format!("1-*/{}", body.len());
    assert_eq!(
        got.head,
        format!(
            "{start}\r\nTo-Path: {}\r\nFrom-Path: {rb} {ra} {}\r\nMessage-ID: chain001\r\n\
             Byte-Range: {range}\r\nX-Extra: kept  as\tis\r\nContent-Type: text/plain\r\n",
            b.me, a.me
        )
    );
    b.respond(&got, 200);
    // R1 opened its own connection to R2 (relay to relay).
    assert_eq!(connections_to(r1.pid(), r2.addr.port()), 1);

    // A second message reuses that connection.
    let tid = a.send(
        &to_b,
        &[("Message-ID", "chain002")],
        Some(b"again"),
        Flag::Complete,
    );
    assert_eq!(a.read_frame().tid(), tid);
    let got = b.read_frame();
    assert_eq!(got.body, b"again");
    b.respond(&got, 200);
    assert_eq!(connections_to(r1.pid(), r2.addr.port()), 1);

    // B -> R2 -> R1 -> A, the path reversed.
    let to_a = format!("{rb} {ra} {}", a.me);
    let tid = b.send(
        &to_a,
        &[("Message-ID", "chain003"), ("Byte-Range", "1-5/5")],
        Some(b"hello"),
        Flag::Complete,
    );
    let ok = b.read_frame();
    assert_eq!((ok.tid(), ok.kind()), (tid.as_str(), "200"));
    assert_eq!(ok.header("From-Path"), Some(rb.as_str()));
    let got = a.read_frame();
    assert_eq!(got.body, b"hello");
    assert_eq!(got.header("To-Path"), Some(a.me.as_str()));
    assert_eq!(
        got.header("From-Path"),
        Some(format!("{ra} {rb} {}", b.me).as_str())
    );
    a.respond(&got, 200);
    assert_eq!(connections_to(r2.pid(), r1.addr.port()), 1);

    // B's success REPORT travels back along the From-Path it received.
    let rtid = b.tid();
    b.send_raw(
        format!(
            "MSRP {rtid} REPORT\r\nTo-Path: {rb} {ra} {}\r\nFrom-Path: {}\r\n\
             Message-ID: chain001\r\nByte-Range: {range}\r\nStatus: 000 200 OK\r\n\
             -------{rtid}$\r\n",
            a.me, b.me
        )
        .as_bytes(),
    );
    let rep = a.read_frame();
    assert_eq!(rep.kind(), "REPORT");
    assert_eq!(rep.header("To-Path"), Some(a.me.as_str()));
    assert_eq!(
        rep.header("From-Path"),
        Some(format!("{ra} {rb} {}", b.me).as_str())
    );
    assert_eq!(rep.header("Status"), Some("000 200 OK"));

    // B refuses a chunk: R2 reports the error to A through R1.
    let tid = a.send(
        &to_b,
        &[("Message-ID", "chain004"), ("Byte-Range", "1-4/4")],
        Some(b"nope"),
        Flag::Complete,
    );
    assert_eq!(a.read_frame().tid(), tid);
    let got = b.read_frame();
    b.respond(&got, 415);
    let rep = a.read_frame();
    assert_eq!(rep.kind(), "REPORT", "{}", rep.head);
    assert_eq!(rep.header("To-Path"), Some(a.me.as_str()));
    assert_eq!(rep.header("From-Path"), Some(format!("{ra} {rb}").as_str()));
    assert_eq!(rep.header("Message-ID"), Some("chain004"));
    assert_eq!(rep.header("Byte-Range"), Some("1-4/4"));
    assert!(
        rep.header("Status").unwrap().starts_with("000 415"),
        "{}",
        rep.head
    );
    for (c, who) in [(&mut a, "A"), (&mut b, "B")] {
        let r = c.try_read_frame(Duration::from_millis(300));
        assert!(r.is_err(), "{who}: unexpected {:?}", r.map(|f| f.head));
    }
}

#[test]
fn unreachable_next_relay_reports_failure() {
    // A next hop that is not a session of R1 and where nobody listens: R1 tries to
    // connect, fails, and reports to A (Failure-Report yes).
    let r1 = RelayProcess::start(&["--cores", "1", "--txn-timeout", "0.5"]);
    let mut a = r1.connect(&peer_uri("alice", 1111));
    let ra = a.auth(&r1.uri());
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = dead.local_addr().unwrap().port();
    drop(dead);
    let tid = a.send(
        &format!("{ra} msrp://127.0.0.1:{port}/x;tcp {}", a.me),
        &[("Message-ID", "nowhere1"), ("Byte-Range", "1-2/2")],
        Some(b"hi"),
        Flag::Complete,
    );
    let ok = a.read_frame();
    assert_eq!((ok.tid(), ok.kind()), (tid.as_str(), "200"));
    let rep = a.read_frame();
    assert_eq!(rep.kind(), "REPORT", "{}", rep.head);
    assert_eq!(rep.header("To-Path"), Some(a.me.as_str()));
    assert_eq!(rep.header("From-Path"), Some(ra.as_str()));
    assert_eq!(rep.header("Message-ID"), Some("nowhere1"));
    let status = rep.header("Status").unwrap();
    assert!(status.starts_with("000 408"), "{status}");
}
