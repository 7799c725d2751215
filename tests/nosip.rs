//! The nosip handler on real sockets (127.0.0.1): what is neither MSRP nor SIP on the
//! MSRP port. A UDP datagram and a TCP connection matching `--nosip-match` become
//! `nosip.packet` events on `/v1/events` with their source; a skipped one and a 20-byte
//! one do not, and are counted; the TCP connection is closed after its first bytes; a
//! flood is shed per source and leaves the process responsive with its memory flat; the
//! counters pass `promtool check metrics`; a bad regex is refused at start. Every wait is
//! bounded.

mod common;

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use common::http::{self, Sse};
use common::sip::*;
use common::*;
use msrpd::admin::AdminConfig;
use msrpd::server::{Driver, ServerConfig};

const EVENT_WAIT: Duration = Duration::from_secs(10);

fn re(s: &str) -> Option<regex::bytes::Regex> {
    Some(regex::bytes::Regex::new(s).unwrap())
}

/// A relay with the admin API on 127.0.0.1:0, nosip matching `^resume ` and skipping
/// `ignore`.
fn start(workers: usize, tune: impl FnOnce(&mut ServerConfig)) -> (Relay, SocketAddr) {
    let relay = Relay::start(workers, Driver::Auto, |c| {
        c.admin = Some(AdminConfig::new("127.0.0.1:0".parse().unwrap()));
        c.nosip.matches = re("^resume ");
        c.nosip.skip = re("ignore");
        tune(c);
    });
    let api = relay.handle.as_ref().unwrap().admin_addr().unwrap();
    (relay, api)
}

#[test]
fn matched_udp_and_tcp_become_events_short_and_skipped_do_not() {
    let (relay, api) = start(2, |_| {});
    let mut sse = Sse::open(api, "/v1/events?type=nosip", &[]);
    assert_eq!(sse.status, 200);

    let s = udp();
    let me = s.local_addr().unwrap();
    // 20 bytes: a keepalive (under 32), even though it matches.
    s.send_to(b"resume 0123456789abc", relay.addr).unwrap();
    // Skipped: matches --nosip-skip.
    s.send_to(
        b"resume transaction 1 but ignore this one please",
        relay.addr,
    )
    .unwrap();
    // Skipped: does not match --nosip-match.
    s.send_to(b"hello there, this is not a resume at all, no", relay.addr)
        .unwrap();
    relay.settle("short and skipped", |c| {
        c.nosip_short == 1 && c.nosip_skipped == 2
    });
    // Matched.
    let text = "resume transaction 12345 on core 0, please\r\n";
    s.send_to(text.as_bytes(), relay.addr).unwrap();
    let (e, others) = sse.wait_for("nosip.packet", EVENT_WAIT);
    assert!(others.is_empty(), "only the matched packet: {others:?}");
    assert_eq!(e.event, "nosip.packet");
    assert_eq!(e.data["transport"], "udp");
    assert_eq!(e.data["source"], "127.0.0.1");
    assert_eq!(e.data["port"], me.port());
    assert_eq!(e.data["length"], text.len());
    assert_eq!(e.data["encoding"], "text");
    assert_eq!(e.data["content"], text);
    assert_eq!(e.data["truncated"], false);
    assert!(e.data["timestamp"].as_f64().unwrap() > 1e9);

    // Not UTF-8: base64.
    let mut bin = b"resume ".to_vec();
    bin.extend((0..40u8).map(|i| 0x80 | i));
    s.send_to(&bin, relay.addr).unwrap();
    let (e, _) = sse.wait_for("nosip.packet", EVENT_WAIT);
    assert_eq!(e.data["encoding"], "base64");
    use base64::Engine as _;
    let got = base64::engine::general_purpose::STANDARD
        .decode(e.data["content"].as_str().unwrap())
        .unwrap();
    assert_eq!(got, bin);

    // Over TCP: the first bytes go to the handler, the connection is closed.
    let mut t = SipTcp::connect(relay.addr);
    let tcp_me = t.local();
    let text = "resume transaction 777 over a stream, thanks\r\n";
    t.send(text.as_bytes());
    assert!(t.closed_within(WAIT), "closed after its first bytes");
    assert!(t.buf.is_empty(), "nothing written back: {:?}", t.buf);
    let (e, _) = sse.wait_for("nosip.packet", EVENT_WAIT);
    assert_eq!(e.data["transport"], "tcp");
    assert_eq!(e.data["port"], tcp_me.port());
    assert_eq!(e.data["content"], text);

    // A TCP peer that sends a few bytes that cannot decide (a token) and closes: still
    // handed over (short here, so counted).
    let mut t = SipTcp::connect(relay.addr);
    t.send(b"resume");
    t.s.shutdown(std::net::Shutdown::Write).unwrap();
    assert!(t.closed_within(WAIT));
    // A skipped TCP connection: counted, closed, no event.
    let mut t = SipTcp::connect(relay.addr);
    t.send(b"resume: please ignore this connection entirely\r\n");
    assert!(t.closed_within(WAIT));
    relay.settle("tcp short and skipped", |c| {
        c.nosip_short == 2 && c.nosip_skipped == 3 && c.nosip_packets == 3
    });
    assert!(sse.next(Duration::from_millis(300)).is_none());

    // The counters on /metrics, and promtool takes the page.
    let m = http::get(api, "/metrics").text();
    assert_eq!(metric(&m, "msrpd_nosip_packets_total"), 3.0, "{m}");
    assert_eq!(metric(&m, "msrpd_nosip_short_total"), 2.0, "{m}");
    assert_eq!(metric(&m, "msrpd_nosip_skipped_total"), 3.0, "{m}");
    assert_eq!(metric(&m, "msrpd_nosip_shed_total"), 0.0, "{m}");
    assert!(m.contains("# TYPE msrpd_nosip_shed_total counter"), "{m}");
    promtool_check(&m);

    // SIP and MSRP on the same port still work.
    let r = udp_exchange(relay.addr, |me| request("OPTIONS", "UDP", me, 1, ""));
    assert_eq!(status(&r), 200);
    msrp_roundtrip(&relay, 0);
}

#[test]
fn without_a_match_regex_everything_long_enough_is_an_event_capped() {
    let (relay, api) = start(1, |c| {
        c.nosip.matches = None;
        c.nosip.skip = None;
        c.nosip.min_bytes = 8;
    });
    let mut sse = Sse::open(api, "/v1/events", &[]);
    let s = udp();
    s.send_to(b"1234567", relay.addr).unwrap(); // 7 < 8
    s.send_to(b"12345678", relay.addr).unwrap();
    let (e, _) = sse.wait_for("nosip.packet", EVENT_WAIT);
    assert_eq!(e.data["content"], "12345678");
    // A big datagram: the event carries the first 4 KiB and says so.
    let big = vec![b'z'; 20_000];
    s.send_to(&big, relay.addr).unwrap();
    let (e, _) = sse.wait_for("nosip.packet", EVENT_WAIT);
    assert_eq!(e.data["length"], 20_000);
    assert_eq!(e.data["truncated"], true);
    assert_eq!(
        e.data["content"].as_str().unwrap().len(),
        msrpd::nosip::MAX_CONTENT
    );
    relay.settle("counted", |c| c.nosip_short == 1 && c.nosip_packets == 2);
}

#[test]
fn events_per_source_are_rate_limited_and_shed_counted() {
    let (relay, api) = start(1, |_| {});
    let mut sse = Sse::open(api, "/v1/events?type=nosip", &[]);
    let s = udp();
    let n = 200u32;
    let t0 = Instant::now();
    for i in 0..n {
        s.send_to(
            format!("resume transaction {i:06} of a burst from one source").as_bytes(),
            relay.addr,
        )
        .unwrap();
    }
    let windows = t0.elapsed().as_secs() as u32 + 2;
    relay.settle("all seen", |c| c.nosip_packets + c.nosip_shed == n as u64);
    let c = relay.counters();
    let cap = msrpd::nosip::PER_SOURCE * windows;
    assert!(c.nosip_packets as u32 <= cap, "{c:?}");
    assert!(c.nosip_packets as u32 >= msrpd::nosip::PER_SOURCE, "{c:?}");
    assert!(c.nosip_shed as u32 >= n - cap, "{c:?}");
    let mut got = 0;
    while sse.next(Duration::from_millis(500)).is_some() {
        got += 1;
    }
    assert_eq!(got, c.nosip_packets, "one event per handled packet");
    // A new window takes events from that source again.
    std::thread::sleep(msrpd::nosip::WINDOW);
    s.send_to(b"resume transaction after the window, fine", relay.addr)
        .unwrap();
    let (e, _) = sse.wait_for("nosip.packet", EVENT_WAIT);
    assert_eq!(
        e.data["content"],
        "resume transaction after the window, fine"
    );
}

/// An OPTIONS over UDP, sent again every 500 ms (as timer E would) until answered: a
/// flood may fill the socket's buffer, and the kernel drops what does not fit.
fn options_resent(to: SocketAddr, n: u32) -> String {
    let s = udp();
    let opt = request("OPTIONS", "UDP", s.local_addr().unwrap(), n, "");
    (0..10)
        .find_map(|_| {
            s.send_to(opt.as_bytes(), to).unwrap();
            recv_udp(&s, Duration::from_millis(500))
        })
        .expect("OPTIONS answered")
}

/// 100,000 matching datagrams at the `msrpd` binary with a webhook that is down (events
/// wanted, so each handled one is queued): the flood is shed, the process answers SIP
/// and MSRP, and its peak memory grows by less than 8 MiB.
#[test]
fn flood_of_100k_datagrams_leaves_memory_flat_and_the_process_responsive() {
    // A free port for the admin API (the child prints its address on a line
    // RelayProcess does not read).
    let api = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let api_arg = api.to_string();
    let p = RelayProcess::start(&[
        "--cores",
        "1",
        "--admin",
        &api_arg,
        "--events-webhook",
        "http://127.0.0.1:9/",
        "--nosip-match",
        "^resume ",
    ]);
    let s = udp();
    let datagram = |i: u32| format!("resume transaction {i:08} flooding the port, {:0>200}", i);
    // Warm up: allocations made once (buffers, tables) are not the flood's.
    for i in 0..5_000 {
        let _ = s.send_to(datagram(i).as_bytes(), p.addr);
    }
    assert_eq!(status(&options_resent(p.addr, 1)), 200);
    let before = p.peak_rss_kib();
    let t0 = Instant::now();
    for i in 0..100_000 {
        let _ = s.send_to(datagram(i).as_bytes(), p.addr);
    }
    eprintln!("100k datagrams sent in {:?}", t0.elapsed());
    // Responsive: SIP over UDP (sent again as a UA would, RFC 3261 §17.1.2.2 timer E:
    // the flood may still fill the socket's buffer and the kernel drop the first try),
    // TCP, MSRP.
    assert_eq!(status(&options_resent(p.addr, 2)), 200);
    let mut t = SipTcp::connect(p.addr);
    let me = t.local();
    t.send(request("OPTIONS", "TCP", me, 3, "").as_bytes());
    assert_eq!(status(&t.response().unwrap()), 200);
    let mut a = p.connect(&peer_uri("alice", 1111));
    let ra = a.auth(&p.uri());
    assert!(ra.starts_with("msrp://"), "{ra}");
    let m = http::get(api, "/metrics").text();
    let handled = metric(&m, "msrpd_nosip_packets_total");
    let shed = metric(&m, "msrpd_nosip_shed_total");
    eprintln!("handled {handled}, shed {shed}");
    let secs = t0.elapsed().as_secs_f64().ceil() + 2.0;
    assert!(
        handled <= f64::from(msrpd::nosip::PER_SOURCE) * secs,
        "{handled} handled in {secs} s"
    );
    assert!(shed > 10_000.0, "the flood is shed: {shed}");
    promtool_check(&m);
    let after = p.peak_rss_kib();
    eprintln!("peak RSS {before} KiB before the flood, {after} KiB after");
    assert!(before > 0, "no /proc status for the child");
    assert!(
        after < before + 8 * 1024,
        "peak RSS grew from {before} to {after} KiB"
    );
}

#[test]
fn a_bad_regex_is_refused_at_start() {
    for (flag, pattern) in [
        ("--nosip-match", "(resume"),
        ("--nosip-skip", "[z-a]"),
        ("--nosip-match", "\\p{NotAClass}"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_msrpd"))
            .args(["--listen", "127.0.0.1:0", "--admin", "off", flag, pattern])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{flag} {pattern} accepted");
        assert!(
            err.contains(&format!("bad {flag} {pattern:?}")),
            "{flag} {pattern}: {err}"
        );
        assert!(
            out.stdout.is_empty(),
            "never listened: {:?}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    let out = Command::new(env!("CARGO_BIN_EXE_msrpd"))
        .args(["--listen", "127.0.0.1:0", "--nosip-min-bytes", "70000"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("nosip-min-bytes"),
        "{out:?}"
    );
    // check-config says the same and prints the settings when they are good.
    let out = Command::new(env!("CARGO_BIN_EXE_msrpd"))
        .args([
            "check-config",
            "--nosip-match",
            "^resume ",
            "--admin",
            "off",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("nosip_match = Some(\"^resume \")"), "{text}");
}
