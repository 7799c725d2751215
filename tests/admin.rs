//! The admin API on real sockets: every endpoint, the token rule, SSE delivery of AUTH
//! and session-end events while MSRP clients AUTH and one is ended through the API (its
//! connection closed, its in-flight message reported), the webhook (delivered, then
//! down while the relay keeps relaying), `promtool check metrics` on a real scrape, and
//! bad input (404, 405, 400, 413, unknown session) with the relay relaying throughout,
//! HEAD and `Allow`, `/readyz` while stopping, a reload that changes who can AUTH, and a
//! worker that does not answer. Everything on 127.0.0.1; every wait is bounded.

mod common;

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use common::http::{self, HookServer, Sse};
use common::*;
use msrpd::admin::AdminConfig;
use msrpd::codec::Flag;
use msrpd::server::{Driver, ServerConfig};

const WAIT: Duration = Duration::from_secs(10);

fn with_admin(cfg: &mut ServerConfig) -> &mut AdminConfig {
    cfg.admin = Some(AdminConfig::new("127.0.0.1:0".parse().unwrap()));
    cfg.admin.as_mut().unwrap()
}

/// Two AUTHed clients and their Use-Path URIs.
fn pair(relay: &Relay) -> (Client, String, Client, String) {
    let mut a = relay.connect(&peer_uri("alice", 1111));
    let mut b = relay.connect(&peer_uri("bob", 2222));
    let ra = a.auth(&relay.uri());
    let rb = b.auth(&relay.uri());
    (a, ra, b, rb)
}

#[test]
fn every_endpoint_and_bad_input_while_relaying() {
    let relay = Relay::start(2, Driver::Auto, |c| {
        with_admin(c);
    });
    let api = admin_addr(&relay);
    let (mut a, ra, mut b, rb) = pair(&relay);
    message(&mut a, &ra, &mut b, &rb, 1);

    let r = http::get(api, "/healthz");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.json()["status"], "ok");

    let r = http::get(api, "/readyz");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["workers"], 2);
    assert_eq!(r.json()["listen"][0], relay.addr.to_string());

    let r = http::get(api, "/metrics");
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/plain"));
    let m = r.text();
    assert!(m.contains("msrpd_auth_total{outcome=\"ok\"} 2"), "{m}");
    assert!(m.contains("msrpd_sessions 2"), "{m}");

    let r = http::get(api, "/v1/relay/sessions");
    assert_eq!(r.status, 200);
    let s = r.json();
    let list = s["sessions"].as_array().unwrap();
    assert_eq!(list.len(), 2, "{s}");
    let uris: Vec<&str> = list.iter().map(|x| x["uri"].as_str().unwrap()).collect();
    assert!(
        uris.contains(&ra.as_str()) && uris.contains(&rb.as_str()),
        "{s}"
    );
    for x in list {
        assert_eq!(x["user"], "loopback");
        assert!(x["peer"].as_str().unwrap().starts_with("127.0.0.1:"));
        assert!(x["expires_in"].as_u64().unwrap() > 500, "{x}");
        assert!(x["bytes_in"].as_u64().unwrap() > 0, "{x}");
        assert!(x["core"].as_u64().unwrap() < 2);
        assert_eq!(x["id"].as_str().unwrap().len(), 28);
    }

    let r = http::get(api, "/v1/relay/connections");
    assert_eq!(r.status, 200);
    let c = r.json();
    let conns = c["connections"].as_array().unwrap();
    assert_eq!(conns.len(), 2, "{c}");
    assert!(
        conns
            .iter()
            .all(|x| x["direction"] == "inbound" && x["transport"] == "tcp")
    );
    assert!(conns.iter().all(|x| x["session"].is_string()), "{c}");

    // No users file and no TLS files: nothing is said to be reloaded.
    let r = http::request(api, "POST", "/v1/reload", &[], b"");
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["reloaded"], serde_json::json!([]), "{v}");
    assert_eq!(v["users"], "not configured", "{v}");
    assert_eq!(v["tls"], "not configured", "{v}");
    let r = http::request(api, "POST", "/v1/reload", &[], br#"{"tls": false}"#);
    let v = r.json();
    assert_eq!(v["users"], "not configured", "{v}");
    assert_eq!(v["tls"], "not asked", "{v}");

    // Bad input: each with its status and a JSON error.
    let bad: Vec<(&str, &str, Vec<u8>, u16)> = vec![
        ("GET", "/nope", vec![], 404),
        ("GET", "/v1/relay/sessions/x/y", vec![], 404),
        ("POST", "/healthz", vec![], 405),
        ("GET", "/v1/reload", vec![], 405),
        ("PUT", "/v1/relay/sessions", vec![], 405),
        ("POST", "/v1/reload", b"{not json".to_vec(), 400),
        ("POST", "/v1/reload", br#"{"users": "yes"}"#.to_vec(), 400),
        ("POST", "/v1/reload", br#"{"unknown": true}"#.to_vec(), 400),
        ("POST", "/v1/reload", vec![b'x'; 1 << 20], 413),
        (
            "DELETE",
            "/v1/relay/sessions/0000000000000000000000000000",
            vec![],
            404,
        ),
        ("DELETE", "/v1/relay/sessions/not-a-session", vec![], 404),
        (
            "DELETE",
            "/v1/relay/sessions/ffff00000000aaaaaaaaaaaaaaaa",
            vec![],
            404,
        ),
    ];
    for (i, (method, path, body, want)) in bad.into_iter().enumerate() {
        let r = http::request(api, method, path, &[], &body);
        assert_eq!(r.status, want, "{method} {path}: {}", r.text());
        assert!(
            r.json()["error"].is_string(),
            "{method} {path}: {}",
            r.text()
        );
        message(&mut a, &ra, &mut b, &rb, 10 + i);
    }
    // An unknown session of a real core: found by nobody.
    let fake = format!(
        "{}{}",
        &rb.rsplit('/').next().unwrap()[..12],
        "0123456789abcdef"
    );
    let r = http::request(
        api,
        "DELETE",
        &format!("/v1/relay/sessions/{fake}"),
        &[],
        b"",
    );
    assert_eq!(r.status, 404, "{}", r.text());
    // Both sessions still there, and relaying.
    let s = http::get(api, "/v1/relay/sessions").json();
    assert_eq!(s["sessions"].as_array().unwrap().len(), 2);
    message(&mut a, &ra, &mut b, &rb, 99);
}

#[test]
fn a_token_is_needed_when_configured_and_non_loopback_needs_one() {
    let relay = Relay::start(1, Driver::Auto, |c| {
        with_admin(c).token = Some("s3cret-token".into());
    });
    let api = admin_addr(&relay);
    for path in ["/healthz", "/metrics", "/v1/relay/sessions", "/nope"] {
        let r = http::get(api, path);
        assert_eq!(r.status, 401, "{path} without a token: {}", r.text());
        assert!(r.json()["error"].is_string());
        assert_eq!(r.header("www-authenticate"), Some("Bearer"));
        for wrong in [
            "Bearer nope",
            "Bearer s3cret-toke",
            "Bearer s3cret-token2",
            "Basic s3cret-token",
            "s3cret-token",
        ] {
            let r = http::request(api, "GET", path, &[("Authorization", wrong)], b"");
            assert_eq!(r.status, 401, "{path} with {wrong:?}");
        }
    }
    let ok = [("Authorization", "Bearer s3cret-token")];
    assert_eq!(http::request(api, "GET", "/healthz", &ok, b"").status, 200);
    // The scheme is case-insensitive (RFC 9110 §11.1); the token is not.
    for v in [
        "bearer s3cret-token",
        "BEARER s3cret-token",
        "BeArEr  s3cret-token",
    ] {
        let r = http::request(api, "GET", "/healthz", &[("Authorization", v)], b"");
        assert_eq!(r.status, 200, "{v:?}: {}", r.text());
    }
    let r = http::request(
        api,
        "GET",
        "/healthz",
        &[("Authorization", "bearer S3CRET-TOKEN")],
        b"",
    );
    assert_eq!(r.status, 401);
    assert_eq!(http::request(api, "GET", "/metrics", &ok, b"").status, 200);
    assert_eq!(http::request(api, "GET", "/nope", &ok, b"").status, 404);
    let sse = Sse::open(api, "/v1/events", &[]);
    assert_eq!(sse.status, 401);
    let sse = Sse::open(api, "/v1/events", &ok);
    assert_eq!(sse.status, 200);

    // Not on loopback without a token: refused at start.
    let mut cfg = ServerConfig::new("127.0.0.1:0".parse().unwrap());
    cfg.cpus = vec![0];
    cfg.pin = false;
    cfg.admin = Some(AdminConfig::new("0.0.0.0:0".parse().unwrap()));
    let e = msrpd::server::start(cfg).err().expect("refused");
    assert!(e.to_string().contains("--admin-token-file"), "{e}");
}

/// A SEND from A to B that B never answers, then B's session ended through the API:
/// B's connection is closed and A gets its REPORT (408: no answer will come); the SSE
/// stream carries both AUTHs and the session end; a second stream filtered by type
/// gets the session end alone.
#[test]
fn sse_events_and_ending_a_session() {
    let relay = Relay::start(2, Driver::Auto, |c| {
        with_admin(c);
    });
    let api = admin_addr(&relay);
    let mut all = Sse::open(api, "/v1/events", &[]);
    let mut ends = Sse::open(api, "/v1/events?type=relay.session", &[]);
    assert_eq!((all.status, ends.status), (200, 200));
    let (mut a, ra, mut b, rb) = pair(&relay);
    let mut auths = Vec::new();
    for _ in 0..2 {
        let (e, _) = all.wait_for("relay.auth", WAIT);
        auths.push(e);
    }
    for e in &auths {
        assert!(msrpd::admin::event::KINDS.contains(&e.event.as_str()));
        assert_eq!(e.event, "relay.auth");
        assert_eq!(e.data["result"], "ok");
        assert_eq!(e.data["user"], "loopback");
        assert!(e.data["peer"].as_str().unwrap().starts_with("127.0.0.1:"));
        assert!(e.data["timestamp"].as_f64().unwrap() > 1e9);
        assert!(e.data["time"].as_str().unwrap().ends_with('Z'));
    }
    let b_sid = rb
        .rsplit('/')
        .next()
        .unwrap()
        .trim_end_matches(";tcp")
        .to_string();
    assert!(auths.iter().any(|e| e.data["session"] == b_sid.as_str()));
    message(&mut a, &ra, &mut b, &rb, 1);

    // In flight: B reads the SEND and does not answer.
    let to_b = format!("{ra} {rb} {}", b.me);
    a.send(
        &to_b,
        &[
            ("Message-ID", "inflight1"),
            ("Byte-Range", "1-4/4"),
            ("Failure-Report", "yes"),
        ],
        Some(b"ping"),
        Flag::Complete,
    );
    assert_eq!(a.read_frame().kind(), "200", "the relay took the chunk");
    assert_eq!(b.read_frame().body, b"ping");

    let r = http::request(
        api,
        "DELETE",
        &format!("/v1/relay/sessions/{b_sid}"),
        &[],
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["ended"], b_sid.as_str());
    assert!(b.closed_within(WAIT), "B's connection is closed");
    let report = a.read_frame();
    assert_eq!(report.kind(), "REPORT", "{}", report.head);
    assert_eq!(report.header("Message-ID"), Some("inflight1"));
    assert!(
        report.header("Status").unwrap().contains("408"),
        "{}",
        report.head
    );

    let (end, _) = all.wait_for("relay.session.end", WAIT);
    assert!(msrpd::admin::event::KINDS.contains(&end.event.as_str()));
    assert_eq!(end.event, "relay.session.end");
    assert_eq!(end.data["session"], b_sid.as_str());
    assert_eq!(end.data["reason"], "admin");
    assert_eq!(end.data["user"], "loopback");
    let first = ends
        .next(WAIT)
        .expect("the filtered stream gets the session end");
    assert_eq!(first.data["type"], "relay.session.end");
    assert_eq!(first.data["session"], b_sid.as_str());

    // B's session is gone, A's is not; the same id again is unknown.
    let s = http::get(api, "/v1/relay/sessions").json();
    let list = s["sessions"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{s}");
    assert_eq!(list[0]["uri"], ra.as_str());
    let r = http::request(
        api,
        "DELETE",
        &format!("/v1/relay/sessions/{b_sid}"),
        &[],
        b"",
    );
    assert_eq!(r.status, 404);
    // A new B relays again.
    let mut b2 = relay.connect(&peer_uri("bob", 2222));
    let rb2 = b2.auth(&relay.uri());
    message(&mut a, &ra, &mut b2, &rb2, 2);
    let m = http::get(api, "/metrics").text();
    assert!(m.contains("msrpd_reports_total{status=\"408\"} 1"), "{m}");
}

/// The webhook gets each event; once it is down the relay relays on (no slower than
/// with it up) and the events are dropped and counted.
#[test]
fn webhook_delivers_then_drops_while_the_relay_relays() {
    let mut hook = HookServer::start();
    let url: msrpd::admin::AdminConfig = {
        let mut c = AdminConfig::new("127.0.0.1:0".parse().unwrap());
        c.webhook = Some(format!("http://{}/events", hook.addr).parse().unwrap());
        c
    };
    let relay = Relay::start(2, Driver::Auto, move |c| c.admin = Some(url));
    let api = admin_addr(&relay);
    let (mut a, ra, mut b, rb) = pair(&relay);
    let mut got = Vec::new();
    while got.len() < 2 {
        let body = hook.bodies.recv_timeout(WAIT).expect("webhook POST");
        got.push(serde_json::from_str::<serde_json::Value>(&body).unwrap());
    }
    assert!(
        got.iter()
            .all(|e| e["type"] == "relay.auth" && e["result"] == "ok"),
        "{got:?}"
    );
    let t = Instant::now();
    for i in 0..200 {
        message(&mut a, &ra, &mut b, &rb, i);
    }
    let up = t.elapsed();

    hook.stop();
    // Events while the hook is down: AUTHs of new connections.
    let mut extra = Vec::new();
    for i in 0..5 {
        let mut c = relay.connect(&peer_uri(&format!("carol{i}"), 3333));
        c.auth(&relay.uri());
        extra.push(c);
    }
    let t = Instant::now();
    for i in 0..200 {
        message(&mut a, &ra, &mut b, &rb, 1000 + i);
    }
    let down = t.elapsed();
    // A coarse bound: the tight comparison is in the blackholed-hook test.
    assert!(
        down < up * 3 + Duration::from_millis(500),
        "relaying slowed down with the hook down: {down:?} against {up:?}"
    );
    // The first event is tried 4 times over about 0.7 s, then dropped and counted; the
    // hook is down, and the others are dropped untried.
    let deadline = Instant::now() + WAIT;
    loop {
        let m = http::get(api, "/metrics").text();
        let dropped = metric(&m, "msrpd_events_dropped_total{where=\"webhook\"}");
        if dropped >= 1.0 {
            assert!(metric(&m, "msrpd_webhook_delivered_total") >= 2.0, "{m}");
            assert!(
                metric(&m, "msrpd_webhook_failed_attempts_total") >= 4.0,
                "{m}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "no webhook drop counted:\n{m}");
        std::thread::sleep(Duration::from_millis(100));
    }
    message(&mut a, &ra, &mut b, &rb, 5000);
}

#[test]
fn metrics_pass_promtool() {
    let relay = Relay::start(2, Driver::Auto, |c| {
        with_admin(c);
    });
    let api = admin_addr(&relay);
    let (mut a, ra, mut b, rb) = pair(&relay);
    for i in 0..50 {
        message(&mut a, &ra, &mut b, &rb, i);
    }
    let m = http::get(api, "/metrics").text();
    for want in [
        "msrpd_frames_in_total ",
        "msrpd_worker_frames_in_total{worker=\"0\"} ",
        "msrpd_worker_frames_in_total{worker=\"1\"} ",
        "msrpd_connections_open 2",
        "msrpd_auth_total{outcome=\"ok\"} 2",
        "msrpd_reports_total{status=\"408\"} 0",
        "msrpd_queue_overflows_total 0",
        "msrpd_hop_latency_seconds_bucket{worker=\"0\",le=\"+Inf\"}",
        "msrpd_events_dropped_total{where=\"worker_queue\"} 0",
        "process_resident_memory_bytes ",
        "process_open_fds ",
        "process_cpu_seconds_total ",
    ] {
        assert!(m.contains(want), "no {want:?} in\n{m}");
    }
    assert!(metric(&m, "msrpd_frames_in_total") >= 100.0, "{m}");
    let hops: f64 = (0..2)
        .map(|w| {
            metric(
                &m,
                &format!("msrpd_hop_latency_seconds_count{{worker=\"{w}\"}}"),
            )
        })
        .sum();
    assert!(hops >= 1.0, "one read in 16 is sampled: {m}");
    promtool_check(&m);
}

/// The example config passes `check-config`, names every flag as a key, and the
/// operator's mistakes are refused with what to do.
#[test]
fn check_config_takes_the_example_and_refuses_mistakes() {
    let bin = env!("CARGO_BIN_EXE_msrpd");
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/msrpd.toml");
    let out = Command::new(bin)
        .args(["check-config", "--config", example])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("admin = \"127.0.0.1:8665\""), "{stdout}");
    assert!(stdout.contains("listen = ["), "{stdout}");
    // Every flag of --help is a key of the example (set, or commented out).
    let help = Command::new(bin).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for h in [
        "Listeners:",
        "TLS:",
        "AUTH:",
        "Limits:",
        "Timeouts:",
        "Admin:",
        "Signals:",
        "SIGHUP",
    ] {
        assert!(help.contains(h), "--help has no {h:?}:\n{help}");
    }
    let text = std::fs::read_to_string(example).unwrap();
    let mut flags = 0;
    for word in help.split_whitespace() {
        let Some(flag) = word.strip_prefix("--") else {
            continue;
        };
        let flag = flag.trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
        if flag.is_empty()
            || ["help", "version", "config"].contains(&flag)
            || !help.contains(&format!("  --{flag}"))
        {
            continue;
        }
        flags += 1;
        let key = flag.replace('-', "_");
        assert!(
            text.lines().any(|l| l
                .trim_start_matches(['#', ' '])
                .starts_with(&format!("{key} ="))),
            "examples/msrpd.toml has no key {key}"
        );
    }
    assert!(flags > 30, "{flags} flags found in --help");
    for (args, says) in [
        (vec!["--admin", "0.0.0.0:8665"], "--admin-token-file"),
        (vec!["--admin", "nowhere"], "or off"),
        (vec!["--log-format", "yaml"], "text or json"),
        (vec!["--events-webhook", "ftp://x/"], "http://"),
        (
            vec![
                "--events-webhook",
                "http://hookuser:s3cr3tpw@127.0.0.1:9/events",
            ],
            "user name or password in the URL",
        ),
        (
            vec!["--events-webhook", "http://s3cr3tpw@127.0.0.1:9/"],
            "never sent",
        ),
        (
            vec!["--admin", "off", "--events-webhook", "http://127.0.0.1:9/"],
            "--admin off",
        ),
        (
            vec!["--admin-token-file", "/nonexistent/token"],
            "admin token file",
        ),
        (vec!["--users", "/nonexistent/users"], "users"),
    ] {
        let out = Command::new(bin)
            .arg("check-config")
            .args(&args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} accepted");
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(
            !err.contains("s3cr3tpw"),
            "a webhook password printed: {err}"
        );
    }
    // Words are case-insensitive: JSON like json, OFF like off.
    for (args, says) in [
        (vec!["--log-format", "JSON"], "log_format = \"json\""),
        (vec!["--log-format", "Text"], "log_format = \"text\""),
        (vec!["--admin", "OFF"], "admin = \"off\""),
    ] {
        let out = Command::new(bin)
            .arg("check-config")
            .args(&args)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{args:?} refused: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains(says), "{args:?}: {text}");
    }
}

/// `?type=` must be the prefix of some event type: a typo gets 400 naming the types,
/// not a stream that never carries anything.
#[test]
fn an_event_type_filter_matching_no_type_is_refused() {
    let relay = Relay::start(1, Driver::Auto, |c| {
        with_admin(c);
    });
    let api = admin_addr(&relay);
    for q in [
        "",
        "?type=",
        "?type=relay",
        "?type=relay.auth",
        "?type=relay.session.end",
        "?type=sip.request",
    ] {
        let sse = Sse::open(api, &format!("/v1/events{q}"), &[]);
        assert_eq!(sse.status, 200, "{q}");
    }
    for q in [
        "?type=relay.sesion",
        "?type=sipx",
        "?type=relay.auth.x",
        "?type=RELAY",
    ] {
        let r = http::get(api, &format!("/v1/events{q}"));
        assert_eq!(r.status, 400, "{q}: {}", r.text());
        let e = r.json()["error"].as_str().unwrap().to_string();
        assert!(
            e.contains("relay.auth") && e.contains("relay.session.end"),
            "{q}: {e}"
        );
    }
}

/// An `/v1/events` subscriber that stays connected does not hold up the relay's stop.
#[test]
fn a_connected_subscriber_does_not_hold_up_shutdown() {
    let relay = Relay::start(1, Driver::Auto, |c| {
        with_admin(c);
    });
    let sse = Sse::open(admin_addr(&relay), "/v1/events", &[]);
    assert_eq!(sse.status, 200);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        drop(relay);
        let _ = tx.send(());
    });
    rx.recv_timeout(WAIT)
        .expect("the relay stopped with a subscriber connected");
    drop(sse);
}

/// An `/v1/events` subscriber that stops reading: its queue fills, it misses an event
/// (counted in `msrpd_events_dropped_total{where="sse"}`) and is disconnected, while
/// the relay goes on answering AUTHs at full rate and a new subscriber is served.
#[test]
fn a_subscriber_that_stops_reading_is_counted_and_disconnected() {
    use std::io::{Read, Write};
    let relay = Relay::start(1, Driver::Auto, |c| {
        with_admin(c);
    });
    let api = admin_addr(&relay);
    // It never reads until the end: the socket's buffers fill (their first size: a
    // receiver that does not read does not grow them), then its queue.
    let mut lazy = std::net::TcpStream::connect(api).unwrap();
    lazy.write_all(
        format!("GET /v1/events HTTP/1.1\r\nHost: {api}\r\nAccept: text/event-stream\r\n\r\n")
            .as_bytes(),
    )
    .unwrap();
    // Many AUTHs (one relay.auth event each), pipelined a batch at a time.
    let ru = relay.uri();
    let mut c = relay.connect(&peer_uri("many", 3333));
    let dropped = || {
        let m = http::get(api, "/metrics").text();
        metric(&m, "msrpd_events_dropped_total{where=\"sse\"}")
    };
    let mut sent = 0;
    let t0 = Instant::now();
    while dropped() == 0.0 {
        assert!(
            sent < 100_000 && t0.elapsed() < Duration::from_secs(60),
            "no drop after {sent} events"
        );
        let batch: String = (0..2000)
            .map(|i| {
                let t = format!("au{:08}", sent + i);
                format!(
                    "MSRP {t} AUTH\r\nTo-Path: {ru}\r\nFrom-Path: {}\r\n-------{t}$\r\n",
                    c.me
                )
            })
            .collect();
        c.send_raw(batch.as_bytes());
        for _ in 0..2000 {
            assert_eq!(c.read_frame().kind(), "200");
        }
        sent += 2000;
    }
    eprintln!("{sent} events before the first drop");
    // Disconnected: what was in its socket and queue, then the end of the stream.
    lazy.set_read_timeout(Some(WAIT)).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match lazy.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => panic!(
                "the slow subscriber was not disconnected: {e} (after {} bytes: {:?})",
                got.len(),
                String::from_utf8_lossy(&got[got.len().saturating_sub(300)..])
            ),
        }
    }
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.starts_with("HTTP/1.1 200"),
        "{}",
        &text[..text.len().min(200)]
    );
    assert!(text.matches("event: relay.auth").count() >= 1);
    // It missed one event and left: the count stays there.
    assert_eq!(dropped(), 1.0);
    // The relay and the event stream still serve.
    let mut fresh = Sse::open(api, "/v1/events", &[]);
    c.auth(&ru);
    let (e, _) = fresh.wait_for("relay.auth", WAIT);
    assert_eq!(e.data["result"], "ok");
}

/// Connections that never finish their request's header block are closed after the
/// header timeout, and those past the connection limit at once; meanwhile and after,
/// requests are answered.
#[test]
fn slow_and_surplus_admin_connections_are_closed() {
    use std::io::{Read, Write};
    let relay = Relay::start(1, Driver::Auto, |c| {
        let a = with_admin(c);
        a.max_connections = 8;
        a.header_timeout = Duration::from_millis(800);
    });
    let api = admin_addr(&relay);
    let t0 = Instant::now();
    let mut slow: Vec<std::net::TcpStream> = (0..8)
        .map(|_| {
            let mut s = std::net::TcpStream::connect(api).unwrap();
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
                .unwrap();
            s.set_read_timeout(Some(WAIT)).unwrap();
            s
        })
        .collect();
    // The ninth is over the limit: closed without an answer.
    let mut over = std::net::TcpStream::connect(api).unwrap();
    over.set_read_timeout(Some(WAIT)).unwrap();
    let _ = over.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut buf = [0u8; 1024];
    assert!(matches!(over.read(&mut buf), Ok(0) | Err(_)));
    // The slow ones: closed once the header timeout has passed (hyper may answer 408).
    for s in &mut slow {
        let mut got = Vec::new();
        loop {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) => panic!("a connection with an unfinished head stayed open: {e}"),
            }
        }
        let text = String::from_utf8_lossy(&got);
        assert!(
            text.is_empty() || text.starts_with("HTTP/1.1 408"),
            "{text}"
        );
    }
    let took = t0.elapsed();
    assert!(took >= Duration::from_millis(700), "closed after {took:?}");
    assert!(took < Duration::from_secs(5), "closed after {took:?}");
    // Their places are free again.
    assert_eq!(http::get(api, "/healthz").status, 200);
}

/// Every entry of a paged list (`?limit=`, then `?after=` the `next` of each page).
fn all_pages(api: SocketAddr, path: &str, field: &str, limit: usize) -> Vec<Vec<String>> {
    let mut pages = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..100 {
        let q = match &after {
            Some(a) => format!("{path}?limit={limit}&after={a}"),
            None => format!("{path}?limit={limit}"),
        };
        let r = http::get(api, &q);
        assert_eq!(r.status, 200, "{q}: {}", r.text());
        let v = r.json();
        assert_eq!(v["workers_missing"], serde_json::json!([]), "{v}");
        let ids: Vec<String> = v[field]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["id"].as_str().unwrap().to_string())
            .collect();
        assert!(ids.len() <= limit, "{q}: {} entries", ids.len());
        pages.push(ids);
        match v["next"].as_str() {
            Some(n) => after = Some(n.to_string()),
            None => return pages,
        }
    }
    panic!("more than 100 pages");
}

/// With more sessions and connections than `?limit=`, the pages are disjoint, in id
/// order, and cover every one; bad `limit`/`after` values (and unknown parameters) get
/// 400 with what is valid.
#[test]
fn session_and_connection_lists_come_in_pages() {
    let relay = Relay::start(2, Driver::Auto, |c| {
        with_admin(c);
    });
    let api = admin_addr(&relay);
    let mut clients = Vec::new();
    let mut uris = Vec::new();
    for i in 0..7 {
        let mut c = relay.connect(&peer_uri(&format!("u{i}"), 4000 + i));
        uris.push(c.auth(&relay.uri()));
        clients.push(c);
    }
    let everything = http::get(api, "/v1/relay/sessions").json();
    assert_eq!(everything["sessions"].as_array().unwrap().len(), 7);
    assert_eq!(everything["next"], serde_json::Value::Null);
    for (path, field) in [
        ("/v1/relay/sessions", "sessions"),
        ("/v1/relay/connections", "connections"),
    ] {
        for limit in [1, 2, 3, 7] {
            let pages = all_pages(api, path, field, limit);
            let flat: Vec<String> = pages.concat();
            assert_eq!(flat.len(), 7, "{path} limit {limit}: {pages:?}");
            let mut sorted = flat.clone();
            sorted.sort_by_key(|id| order_key(id));
            sorted.dedup();
            assert_eq!(
                sorted, flat,
                "{path} limit {limit}: not disjoint or not in order"
            );
            assert!(
                pages[..pages.len() - 1].iter().all(|p| p.len() == limit),
                "{path} limit {limit}: {pages:?}"
            );
        }
    }
    // Every session is on a page (ids are the Use-Path's last segment).
    let flat = all_pages(api, "/v1/relay/sessions", "sessions", 3).concat();
    for u in &uris {
        let sid = u.rsplit('/').next().unwrap().trim_end_matches(";tcp");
        assert!(flat.iter().any(|x| x == sid), "{sid} in no page");
    }
    for (q, says) in [
        ("/v1/relay/sessions?limit=0", "1 to 10000"),
        ("/v1/relay/sessions?limit=10001", "1 to 10000"),
        ("/v1/relay/sessions?limit=ten", "1 to 10000"),
        ("/v1/relay/sessions?after=xyz", "session id"),
        ("/v1/relay/sessions?colour=red", "limit"),
        ("/v1/relay/connections?limit=-1", "1 to 10000"),
        ("/v1/relay/connections?after=3", "CORE:SLOT"),
        ("/v1/relay/connections?user=x", "after"),
    ] {
        let r = http::get(api, q);
        assert_eq!(r.status, 400, "{q}: {}", r.text());
        let e = r.json()["error"].as_str().unwrap().to_string();
        assert!(e.contains(says), "{q}: {e}");
    }
    assert_eq!(http::get(api, "/v1/relay/sessions?limit=10000").status, 200);
}

/// Sorts session ids (fixed-width hex: text order) and `CORE:SLOT` connection ids.
fn order_key(id: &str) -> (u64, u64, String) {
    match id.split_once(':') {
        Some((c, s)) => (c.parse().unwrap(), s.parse().unwrap(), String::new()),
        None => (0, 0, id.to_string()),
    }
}

/// A known sequence of AUTHs, and `msrpd_auth_total` counts each once: a failed digest
/// that is challenged again is `failed`, not also `challenged`; the three outcomes add
/// up to the AUTHs sent; the `_ok/_failed/_challenges` families agree.
#[test]
fn auth_outcomes_are_disjoint() {
    const REALM: &str = "metrics.realm";
    let file = temp_path("auth-outcomes-users");
    let _ = std::fs::remove_file(&file);
    msrpd::server::users_file::set_password(&file, REALM, "alice", "wonderland").unwrap();
    let relay = Relay::start(1, Driver::Auto, |c| {
        with_admin(c);
        c.users_file = Some(file.clone());
        c.relay.realm = REALM.into();
    });
    let api = admin_addr(&relay);
    let ru = relay.uri();
    let mut c = relay.connect(&peer_uri("alice", 1111));
    // 1: no credentials -> 401 (challenged).
    let ch = c.auth_with(&ru, &[]);
    assert_eq!(ch.kind(), "401");
    // 2: a wrong password -> 401 with a new challenge (failed).
    let r = digest_answer(&mut c, &ru, &ch, REALM, "alice", "wrong");
    assert_eq!(r.kind(), "401", "{}", r.head);
    // 3: the right one, answering that new challenge -> 200 (ok).
    let r = digest_answer(&mut c, &ru, &r, REALM, "alice", "wonderland");
    assert_eq!(r.kind(), "200", "{}", r.head);
    // 4: a malformed Authorization -> 400 (failed).
    let r = c.auth_with(&ru, &[("Authorization", "Digest ,,,")]);
    assert_eq!(r.kind(), "400", "{}", r.head);
    let m = http::get(api, "/metrics").text();
    let ok = metric(&m, "msrpd_auth_total{outcome=\"ok\"}");
    let failed = metric(&m, "msrpd_auth_total{outcome=\"failed\"}");
    let challenged = metric(&m, "msrpd_auth_total{outcome=\"challenged\"}");
    assert_eq!((ok, failed, challenged), (1.0, 2.0, 1.0), "{m}");
    assert_eq!(ok + failed + challenged, 4.0, "one outcome per AUTH");
    assert_eq!(metric(&m, "msrpd_auth_ok_total"), ok);
    assert_eq!(metric(&m, "msrpd_auth_failed_total"), failed);
    assert_eq!(metric(&m, "msrpd_auth_challenges_total"), challenged);
    assert!(
        m.contains("# HELP msrpd_auth_ok_total") && m.contains("sum of msrpd_worker_auth_ok"),
        "{m}"
    );
    let _ = std::fs::remove_file(&file);
}

/// Runs the `msrpd` binary with `args` until it has said where it listens, stops it
/// and returns what it logged.
fn start_binary_log(args: &[&str]) -> String {
    use std::io::{BufRead, Read};
    let mut child = Command::new(env!("CARGO_BIN_EXE_msrpd"))
        .args(["--listen", "127.0.0.1:0", "--no-pin", "--cores", "1"])
        .args(["--log-level", "warn"])
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                return;
            }
        }
    });
    let started = rx
        .recv_timeout(WAIT)
        .is_ok_and(|l| l.contains("listening on"));
    let _ = child.kill();
    let _ = child.wait();
    let mut err = String::new();
    let _ = child.stderr.take().unwrap().read_to_string(&mut err);
    assert!(started, "msrpd did not start: {err}");
    err
}

/// A token file the group or others can read gets a warning at start naming its mode
/// and `chmod 600`; a 0600 one none. An API without a token gets its own warning.
#[test]
fn loose_token_files_and_tokenless_apis_are_warned_about() {
    use std::os::unix::fs::PermissionsExt;
    let token = temp_path("loose-token");
    std::fs::write(&token, "t0ken\n").unwrap();
    let t = token.to_str().unwrap();
    for (mode, warned) in [(0o644, true), (0o640, true), (0o600, false)] {
        std::fs::set_permissions(&token, std::fs::Permissions::from_mode(mode)).unwrap();
        let err = start_binary_log(&["--admin", "127.0.0.1:0", "--admin-token-file", t]);
        assert_eq!(
            err.contains("chmod 600") && err.contains(&format!("mode {mode:04o}")),
            warned,
            "mode {mode:o}: {err}"
        );
        assert!(!err.contains("without a token"), "{err}");
    }
    let err = start_binary_log(&["--admin", "127.0.0.1:0"]);
    assert_eq!(err.matches("admin API without a token").count(), 1, "{err}");
    let err = start_binary_log(&["--admin", "off"]);
    assert!(!err.contains("without a token"), "{err}");
    let _ = std::fs::remove_file(&token);
}

/// Every GET endpoint answers HEAD (headers, no body); a method a path does not take
/// gets 405 with `Allow` naming those it does (RFC 9110 §15.5.6), as JSON.
#[test]
fn head_is_answered_and_405_says_what_is_allowed() {
    let relay = Relay::start(1, Driver::Auto, |c| {
        with_admin(c);
    });
    let api = admin_addr(&relay);
    for path in [
        "/healthz",
        "/readyz",
        "/metrics",
        "/v1/relay/sessions",
        "/v1/relay/connections",
    ] {
        let get = http::get(api, path);
        let head = http::request(api, "HEAD", path, &[], b"");
        assert_eq!(head.status, 200, "HEAD {path}");
        assert!(head.body.is_empty(), "HEAD {path}: {:?}", head.text());
        assert_eq!(
            head.header("content-type"),
            get.header("content-type"),
            "HEAD {path}"
        );
    }
    for (method, path, allow) in [
        ("POST", "/healthz", "GET,HEAD"),
        ("DELETE", "/metrics", "GET,HEAD"),
        ("PUT", "/v1/relay/sessions", "GET,HEAD"),
        ("POST", "/v1/events", "GET,HEAD"),
        ("GET", "/v1/reload", "POST"),
        (
            "GET",
            "/v1/relay/sessions/0000000000000000000000000000",
            "DELETE",
        ),
    ] {
        let r = http::request(api, method, path, &[], b"");
        assert_eq!(r.status, 405, "{method} {path}: {}", r.text());
        assert_eq!(r.header("allow"), Some(allow), "{method} {path}");
        assert!(r.json()["error"].is_string(), "{method} {path}");
    }
}

/// Once a shutdown is asked for, `/readyz` says 503 "shutting down" (a load balancer
/// stops sending) while `/healthz` still says the process lives.
#[test]
fn readyz_is_503_while_stopping() {
    let relay = Relay::start(2, Driver::Auto, |c| {
        with_admin(c);
    });
    let api = admin_addr(&relay);
    assert_eq!(http::get(api, "/readyz").status, 200);
    relay.handle.as_ref().unwrap().shutdown();
    let r = http::get(api, "/readyz");
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.json()["error"], "shutting down");
    assert_eq!(http::get(api, "/healthz").status, 200);
    // Nor is anything reloaded (the workers are going).
    let r = http::request(api, "POST", "/v1/reload", &[], b"");
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap()
            .contains("shutting down"),
        "{}",
        r.text()
    );
}

/// `POST /v1/reload` reads the users file again: a user added to it can AUTH once the
/// answer has come, and a file that no longer parses is refused (500 saying why) with
/// the old users still in force.
#[test]
fn reload_through_the_api_reads_the_changed_users_file() {
    const REALM: &str = "reload.realm";
    let file = temp_path("reload-api-users");
    let _ = std::fs::remove_file(&file);
    msrpd::server::users_file::set_password(&file, REALM, "alice", "wonderland").unwrap();
    let relay = Relay::start(2, Driver::Auto, |c| {
        with_admin(c);
        c.users_file = Some(file.clone());
        c.relay.realm = REALM.into();
    });
    let api = admin_addr(&relay);
    let ru = relay.uri();
    let login = |user: &str, password: &str| {
        let mut c = relay.connect(&peer_uri(user, 1111));
        digest_login(&mut c, &ru, REALM, user, password)
            .kind()
            .to_string()
    };
    assert_eq!(login("alice", "wonderland"), "200");
    assert_ne!(login("bob", "builder"), "200", "bob is not in the file yet");

    msrpd::server::users_file::set_password(&file, REALM, "bob", "builder").unwrap();
    let r = http::request(api, "POST", "/v1/reload", &[], br#"{"tls": false}"#);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["users"], "reloaded", "{}", r.text());
    assert_eq!(r.json()["reloaded"], serde_json::json!(["users"]));
    // Answered once applied: at once, on several connections (with two workers, both
    // must have the new file).
    for _ in 0..6 {
        assert_eq!(login("bob", "builder"), "200");
    }
    assert_eq!(login("alice", "wonderland"), "200");

    let good = std::fs::read(&file).unwrap();
    std::fs::write(&file, "this line is not user:realm:hash\n").unwrap();
    let r = http::request(api, "POST", "/v1/reload", &[], br#"{"tls": false}"#);
    assert_eq!(r.status, 500, "{}", r.text());
    let e = r.json()["error"].as_str().unwrap().to_string();
    assert!(e.contains("users file not reloaded"), "{e}");
    assert_eq!(r.json()["users"], "failed");
    for _ in 0..4 {
        assert_eq!(
            login("bob", "builder"),
            "200",
            "the old users stay in force"
        );
    }
    std::fs::write(&file, good).unwrap();
    let _ = std::fs::remove_file(&file);
}

/// A worker that cannot answer (its thread blocked writing a log line to a pipe
/// nobody reads): lists come back after the query deadline without it, naming it in
/// `workers_missing`, `/metrics` counts it in `msrpd_workers_unanswered`, and once it
/// runs again it is in the answers again.
#[test]
fn a_worker_that_does_not_answer_is_named_and_counted() {
    use std::io::{BufRead, Read};
    // Only the relay engine logs (warn): the admin thread writes nothing to stderr, so
    // it is not blocked with the worker.
    let users = temp_path("wedged-users");
    let _ = std::fs::remove_file(&users);
    msrpd::server::users_file::set_password(&users, "wedge.realm", "alice", "pw").unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_msrpd"))
        .args(["--listen", "127.0.0.1:0", "--no-pin", "--cores", "1"])
        .args([
            "--admin",
            "127.0.0.1:0",
            "--log-level",
            "off,msrpd::relay=warn",
        ])
        .args(["--realm", "wedge.realm", "--users", users.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let out = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let _child = Kill(child);
    let mut lines = std::io::BufReader::new(out).lines();
    let (mut relay, mut api) = (None, None);
    while api.is_none() {
        let l = lines.next().expect("msrpd said where it listens").unwrap();
        if let Some(r) = l.strip_prefix("msrpd listening on ") {
            relay = r.split_whitespace().next().map(|a| a.parse().unwrap());
        }
        if let Some(a) = l.strip_prefix("msrpd admin API on http://") {
            api = Some(a.parse::<SocketAddr>().unwrap());
        }
    }
    let (relay, api): (SocketAddr, SocketAddr) = (relay.unwrap(), api.unwrap());
    let page = http::get(api, "/v1/relay/sessions").json();
    assert_eq!(page["workers_missing"], serde_json::json!([]), "{page}");

    // Requests for another relay, each a warn line of about 2 KiB on the worker, until
    // the pipe is full and the worker stops (no longer drops those connections).
    let foreign = format!(
        "msrp://elsewhere.example.net:2855/{};tcp {}",
        "s".repeat(2000),
        peer_uri("bob", 2222)
    );
    let mut wedged = false;
    for _ in 0..20_000 {
        let mut c = Client::connect(relay, &peer_uri("wedge", 1111));
        c.send(
            &foreign,
            &[("Message-ID", "wedge0001")],
            Some(b"x"),
            Flag::Complete,
        );
        if !c.closed_within(Duration::from_secs(2)) {
            wedged = true;
            break;
        }
    }
    assert!(wedged, "the worker never blocked on its log pipe");

    let t = Instant::now();
    let page = http::get(api, "/v1/relay/sessions").json();
    let took = t.elapsed();
    assert_eq!(page["workers_missing"], serde_json::json!([0]), "{page}");
    assert_eq!(page["sessions"], serde_json::json!([]), "{page}");
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_secs(5),
        "answered in {took:?}"
    );
    let m = http::get(api, "/metrics");
    assert_eq!(m.status, 200);
    assert_eq!(
        metric(&m.text(), "msrpd_workers_unanswered"),
        1.0,
        "{}",
        m.text()
    );
    let r = http::request(
        api,
        "DELETE",
        "/v1/relay/sessions/0000000000000000000000000000",
        &[],
        b"",
    );
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap()
            .contains("outcome is unknown"),
        "{}",
        r.text()
    );

    // A reload is read and sent, but not said to be done: the worker did not take it.
    let t = Instant::now();
    let r = http::request(api, "POST", "/v1/reload", &[], b"");
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.json()["users"], "unconfirmed", "{}", r.text());
    assert_eq!(r.json()["reloaded"], serde_json::json!([]), "{}", r.text());
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap()
            .contains("did not confirm"),
        "{}",
        r.text()
    );
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());

    // Read the pipe: the worker runs again and answers.
    std::thread::spawn(move || {
        let mut buf = [0u8; 65536];
        while matches!(stderr.read(&mut buf), Ok(n) if n > 0) {}
    });
    let deadline = Instant::now() + WAIT;
    loop {
        let page = http::get(api, "/v1/relay/sessions").json();
        if page["workers_missing"] == serde_json::json!([]) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the worker never answered again: {page}"
        );
    }
    let r = http::request(api, "POST", "/v1/reload", &[], b"");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["users"], "reloaded", "{}", r.text());
    let mut c = Client::connect(relay, &peer_uri("alice", 1111));
    let ru = format!("msrp://{relay};tcp");
    let ok = digest_login(&mut c, &ru, "wedge.realm", "alice", "pw");
    assert_eq!(ok.kind(), "200", "{}", ok.head);
    let page = http::get(api, "/v1/relay/sessions").json();
    assert_eq!(page["sessions"].as_array().unwrap().len(), 1, "{page}");
    let _ = std::fs::remove_file(&users);
}

/// Reloads through the API and through [`msrpd::server::Ops::reload`] (what SIGHUP
/// calls) at once, while the users file changes under them: each is answered, and
/// afterwards every worker has the same file (one at a time: no worker keeps a file
/// another reload has replaced on the others).
#[test]
fn concurrent_reloads_leave_every_worker_with_the_same_users() {
    const REALM: &str = "many.realm";
    let file = temp_path("concurrent-reload-users");
    let write = |with_bob: bool| {
        let tmp = temp_path("concurrent-reload-users.new");
        let _ = std::fs::remove_file(&tmp);
        msrpd::server::users_file::set_password(&tmp, REALM, "alice", "a").unwrap();
        if with_bob {
            msrpd::server::users_file::set_password(&tmp, REALM, "bob", "b").unwrap();
        }
        std::fs::rename(&tmp, &file).unwrap();
    };
    write(false);
    let relay = Relay::start(2, Driver::Auto, |c| {
        with_admin(c);
        c.users_file = Some(file.clone());
        c.relay.realm = REALM.into();
    });
    let api = admin_addr(&relay);
    let ops = relay.handle.as_ref().unwrap().ops().clone();
    let ru = relay.uri();
    for round in 0..4 {
        let threads: Vec<_> = (0..6)
            .map(|i| {
                let ops = ops.clone();
                std::thread::spawn(move || {
                    for _ in 0..3 {
                        if i % 2 == 0 {
                            let r = http::request(api, "POST", "/v1/reload", &[], b"");
                            assert_eq!(r.status, 200, "{}", r.text());
                            assert_eq!(r.json()["users"], "reloaded");
                        } else {
                            let r = ops.reload(true, true).unwrap();
                            assert_eq!(r.users.as_str(), "reloaded");
                            assert_eq!(r.tls.as_str(), "not configured");
                        }
                    }
                })
            })
            .collect();
        for k in 0..12 {
            write((round + k) % 2 == 0);
            std::thread::sleep(Duration::from_millis(2));
        }
        for t in threads {
            t.join().unwrap();
        }
        // Whatever file the last reload read, every worker has it.
        let outcomes: Vec<String> = (0..16)
            .map(|_| {
                let mut c = relay.connect(&peer_uri("bob", 2222));
                digest_login(&mut c, &ru, REALM, "bob", "b")
                    .kind()
                    .to_string()
            })
            .collect();
        assert!(
            outcomes.iter().all(|o| *o == outcomes[0]),
            "round {round}: workers disagree on bob: {outcomes:?}"
        );
    }
    let _ = std::fs::remove_file(&file);
}

/// `n` AUTHs on `c`, pipelined 200 at a time (one `relay.auth` event each).
fn auths(c: &mut Client, ru: &str, n: usize) {
    let mut sent = 0;
    while sent < n {
        let k = (n - sent).min(200);
        let batch: String = (0..k)
            .map(|i| {
                let t = format!("ah{:08}", sent + i);
                format!(
                    "MSRP {t} AUTH\r\nTo-Path: {ru}\r\nFrom-Path: {}\r\n-------{t}$\r\n",
                    c.me
                )
            })
            .collect();
        c.send_raw(batch.as_bytes());
        for _ in 0..k {
            assert_eq!(c.read_frame().kind(), "200");
        }
        sent += k;
    }
}

/// Polls `/metrics` until `f` holds for it (at most WAIT); the scrape.
fn metrics_until(api: SocketAddr, what: &str, f: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let m = http::get(api, "/metrics").text();
        if f(&m) {
            return m;
        }
        assert!(Instant::now() < deadline, "{what}:\n{m}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Messages A -> B -> A answered in `window`, with an AUTH (an event) every 10.
fn messages_in(window: Duration, r: &mut (Relay, Client, String, Client, String, Client)) -> usize {
    let (relay, a, ra, b, rb, c) = r;
    let ru = relay.uri();
    let t = Instant::now();
    let mut n = 0;
    while t.elapsed() < window {
        message(a, ra, b, rb, n);
        n += 1;
        if n % 10 == 0 {
            c.auth(&ru);
        }
    }
    n
}

/// A hook that accepts connections and never answers: once its queue is full the
/// events are dropped and counted as the webhook's (not the workers'), every AUTH is
/// answered, and the relay relays as fast as with a hook that answers (best of three
/// interleaved windows each, within 1.3x).
#[test]
fn a_blackholed_webhook_drops_its_events_and_costs_the_relay_nothing() {
    let blackhole = HookServer::answering(0);
    let answering = HookServer::start();
    let start = |hook: SocketAddr| {
        let relay = Relay::start(1, Driver::Auto, move |c| {
            with_admin(c).webhook = Some(format!("http://{hook}/events").parse().unwrap());
        });
        let (a, ra, b, rb) = pair(&relay);
        let c = relay.connect(&peer_uri("carol", 3333));
        (relay, a, ra, b, rb, c)
    };
    let mut down = start(blackhole.addr);
    let mut up = start(answering.addr);
    let flood = 1200;
    for r in [&mut down, &mut up] {
        let ru = r.0.uri();
        auths(&mut r.5, &ru, flood);
    }
    // 2 + 1200 events; one is being tried, 1,024 wait: the rest are dropped at once.
    let api = admin_addr(&down.0);
    let least = (flood + 2 - 1024 - 1) as f64;
    let m = metrics_until(api, "the webhook's queue-full drops", |m| {
        metric(m, "msrpd_events_dropped_total{where=\"webhook\"}") >= least
    });
    assert_eq!(
        metric(&m, "msrpd_events_dropped_total{where=\"worker_queue\"}"),
        0.0,
        "{m}"
    );
    assert_eq!(metric(&m, "msrpd_webhook_delivered_total"), 0.0, "{m}");
    let m = http::get(admin_addr(&up.0), "/metrics").text();
    assert_eq!(
        metric(&m, "msrpd_events_dropped_total{where=\"worker_queue\"}"),
        0.0,
        "{m}"
    );

    let window = Duration::from_millis(400);
    let (mut best_down, mut best_up) = (0, 0);
    for _ in 0..3 {
        best_down = best_down.max(messages_in(window, &mut down));
        best_up = best_up.max(messages_in(window, &mut up));
    }
    eprintln!("messages in {window:?}: hook down {best_down}, hook up {best_up}");
    assert!(
        best_down as f64 * 1.3 >= best_up as f64,
        "relaying slower with the hook blackholed: {best_down} against {best_up} in {window:?}"
    );
    // The events meanwhile were dropped too, not queued without bound.
    let m = http::get(api, "/metrics").text();
    assert!(
        metric(&m, "msrpd_events_dropped_total{where=\"webhook\"}") >= least,
        "{m}"
    );
}

/// A hook that does not answer costs each try its timeout; once an event has failed
/// every try the hook is down and events are dropped untried (one probe per period);
/// when it answers again, events are delivered again; a 4xx refusal is not tried
/// again.
#[test]
fn a_webhook_that_is_down_is_probed_not_retried() {
    let hook = HookServer::answering(0);
    let addr = hook.addr;
    let relay = Relay::start(1, Driver::Auto, move |c| {
        let a = with_admin(c);
        a.webhook = Some(format!("http://{addr}/events").parse().unwrap());
        a.webhook_timeout = Duration::from_millis(200);
    });
    let api = admin_addr(&relay);
    let ru = relay.uri();
    let mut c = relay.connect(&peer_uri("alice", 1111));
    let dropped = |m: &str| metric(m, "msrpd_events_dropped_total{where=\"webhook\"}");
    let failed = |m: &str| metric(m, "msrpd_webhook_failed_attempts_total");
    let delivered = |m: &str| metric(m, "msrpd_webhook_delivered_total");

    // One event: four tries, each ended by the timeout (4 x 200 ms + 700 ms backoff).
    let t = Instant::now();
    c.auth(&ru);
    let m = metrics_until(api, "the first event dropped", |m| dropped(m) == 1.0);
    assert_eq!(failed(&m), 4.0, "{m}");
    assert!(
        t.elapsed() >= Duration::from_millis(1400),
        "{:?}",
        t.elapsed()
    );

    // Down: thirty more are dropped without being tried (a probe at most).
    auths(&mut c, &ru, 30);
    let m = metrics_until(api, "thirty more dropped", |m| dropped(m) == 31.0);
    assert!(
        failed(&m) <= 5.0,
        "events tried while the hook is down: {m}"
    );

    // It answers again: a probe gets through, and the hook is up.
    hook.set_status(204);
    let deadline = Instant::now() + WAIT;
    while delivered(&http::get(api, "/metrics").text()) < 1.0 {
        assert!(Instant::now() < deadline, "never delivered again");
        c.auth(&ru);
        std::thread::sleep(Duration::from_millis(100));
    }
    let m = http::get(api, "/metrics").text();
    let (d0, f0) = (dropped(&m), failed(&m));
    c.auth(&ru);
    metrics_until(api, "delivered while up", |m| delivered(m) >= 2.0);

    // A refusal (400): one try, dropped, not tried again.
    hook.set_status(400);
    c.auth(&ru);
    metrics_until(api, "the refused event dropped", |m| dropped(m) == d0 + 1.0);
    std::thread::sleep(Duration::from_millis(500));
    let m = http::get(api, "/metrics").text();
    assert_eq!(failed(&m), f0 + 1.0, "a 400 was tried again: {m}");
    // Refused is not down: the next event is tried at once.
    hook.set_status(200);
    c.auth(&ru);
    metrics_until(api, "delivered after a refusal", |m| delivered(m) >= 3.0);
}
