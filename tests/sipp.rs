//! sipp (Debian's `sip-tester`) against the `msrpd` binary on 127.0.0.1: OPTIONS over
//! UDP and TCP answered 200 with the Allow list; INVITE answered with the configured
//! rejection and ACKed (the ACK absorbed by the INVITE server transaction: no 4xx
//! retransmission reaches sipp during the pause after it, RFC 3261 §17.2.1); MESSAGE
//! answered with the default rejection (404); and UDP with sipp losing a fifth of the
//! packets, so that its retransmissions (timer E, timer A) and our answers to them
//! (absorbed duplicates, §17.2.2) are exercised. The user agent both ways: sipp calls
//! it, and sipp (as a UAS, `sipp_uas`) answers the INVITE of `POST /v1/ua/sessions`,
//! the test playing sipp's MSRP side. Scenarios are written to a temp dir
//! from the strings here. Every run is bounded (`-m`, `-timeout 20s -timeout_error`,
//! `-recv_timeout`).
//!
//! Without sipp: fails when `CI` is set, else prints a skip line (as the promtool check
//! in tests/admin.rs). Not here: SIP over TLS, since Debian's sipp 3.6 is built without
//! TLS (`-t l1` is not in its `-h`).

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;

use common::*;

/// The start of every scenario's request: `[..]` are sipp's keywords.
const HEAD: &str = r#"Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
      Max-Forwards: 70
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag[call_number]
      To: <sip:msrpd@[remote_ip]:[remote_port]>
      Call-ID: [call_id]"#;

fn options_scenario() -> String {
    format!(
        r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="msrpd OPTIONS">
  <send retrans="500">
    <![CDATA[
      OPTIONS sip:msrpd@[remote_ip]:[remote_port] SIP/2.0
      {HEAD}
      CSeq: 1 OPTIONS
      Contact: <sip:sipp@[local_ip]:[local_port];transport=[transport]>
      Accept: application/sdp
      Content-Length: 0

    ]]>
  </send>
  <recv response="200">
    <action>
      <ereg regexp="INVITE, ACK, CANCEL, BYE, OPTIONS, MESSAGE" search_in="hdr"
            header="Allow:" check_it="true" assign_to="allow"/>
    </action>
  </recv>
  <Reference variables="allow"/>
</scenario>
"#
    )
}

/// INVITE with SDP, an optional 100, the final `code`, the ACK (the INVITE's branch,
/// `[branch-3]` as sipp counts messages: a non-2xx ACK belongs to the INVITE's
/// transaction, §17.1.1.3), then a pause in which a retransmitted final response (timer
/// G, had the ACK not matched) would show in sipp's Retrans column.
fn invite_scenario(code: u16) -> String {
    format!(
        r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="msrpd INVITE rejected">
  <send retrans="500">
    <![CDATA[
      INVITE sip:msrpd@[remote_ip]:[remote_port] SIP/2.0
      {HEAD}
      CSeq: 1 INVITE
      Contact: <sip:sipp@[local_ip]:[local_port];transport=[transport]>
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=sipp 1 1 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=message 7394 TCP/MSRP *
      a=accept-types:text/plain
      a=path:msrp://[local_ip]:7394/sipp;tcp

    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="{code}"/>
  <send>
    <![CDATA[
      ACK sip:msrpd@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch-3];rport
      Max-Forwards: 70
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag[call_number]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Content-Length: 0

    ]]>
  </send>
  <pause milliseconds="1200"/>
</scenario>
"#
    )
}

fn message_scenario(code: u16) -> String {
    format!(
        r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="msrpd MESSAGE">
  <send retrans="500">
    <![CDATA[
      MESSAGE sip:msrpd@[remote_ip]:[remote_port] SIP/2.0
      {HEAD}
      CSeq: 1 MESSAGE
      Content-Type: text/plain
      Content-Length: [len]

      hello from sipp
    ]]>
  </send>
  <recv response="{code}"/>
</scenario>
"#
    )
}

/// A port free on 127.0.0.1 for both UDP and TCP (sipp binds both with `-t t1`).
fn free_port() -> u16 {
    for _ in 0..50 {
        let t = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = t.local_addr().unwrap().port();
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port");
}

fn have_sipp() -> bool {
    have_tool("sipp", "-v", "sip-tester")
}

/// Runs `scenario` with sipp against `to` over `transport` (`u1` or `t1`) for `calls`
/// calls; extra arguments after. Panics with sipp's output and error log unless every
/// call succeeded; returns sipp's final screen.
fn sipp(
    to: SocketAddr,
    name: &str,
    scenario: &str,
    transport: &str,
    calls: u32,
    extra: &[&str],
) -> String {
    run_sipp(
        Some(to),
        free_port(),
        name,
        scenario,
        transport,
        calls,
        extra,
    )
}

/// sipp as a server (UAS): `scenario` starts with a `recv`, sipp listens on `port` (no
/// remote host) over `transport` and exits after one call. As [`sipp`] otherwise.
fn sipp_uas(port: u16, name: &str, scenario: &str, transport: &str, extra: &[&str]) -> String {
    run_sipp(None, port, name, scenario, transport, 1, extra)
}

/// sipp on 127.0.0.1:`port`, calling `to` if given, else answering.
fn run_sipp(
    to: Option<SocketAddr>,
    port: u16,
    name: &str,
    scenario: &str,
    transport: &str,
    calls: u32,
    extra: &[&str],
) -> String {
    let dir: PathBuf = scratch_dir().join(format!("sipp-{name}-{transport}"));
    std::fs::create_dir_all(&dir).unwrap();
    let sf = dir.join(format!("{name}.xml"));
    std::fs::write(&sf, scenario).unwrap();
    let errors = dir.join("errors.log");
    let port = port.to_string();
    let calls = calls.to_string();
    let out = Command::new("sipp")
        .current_dir(&dir)
        .args(to.map(|a| a.to_string()))
        .args(["-sf", sf.to_str().unwrap()])
        .args(["-t", transport, "-i", "127.0.0.1", "-p", &port])
        .args(["-m", &calls, "-r", "20", "-l", "10"])
        .args([
            "-timeout",
            "20s",
            "-timeout_error",
            "-recv_timeout",
            "12000",
        ])
        .args([
            "-nostdin",
            "-trace_err",
            "-error_file",
            errors.to_str().unwrap(),
        ])
        .args(extra)
        .output()
        .expect("sipp runs");
    let code = out.status.code();
    if code != Some(0) {
        let err_log = std::fs::read_to_string(&errors).unwrap_or_default();
        panic!(
            "sipp {name} over {transport}: exit {code:?} (0: every call succeeded)\n--- stdout\n{}\n--- stderr\n{}\n--- errors\n{err_log}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
    }
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// sipp's final screen: (messages, retransmissions) of the first request line.
fn sent_and_retransmitted(screen: &str) -> (u64, u64) {
    let line = screen
        .lines()
        .rev()
        .find(|l| l.contains("---------->"))
        .unwrap_or_else(|| panic!("no message table in\n{screen}"));
    let mut n = line
        .split("---------->")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .map(|v| v.parse::<u64>().unwrap());
    (n.next().unwrap(), n.next().unwrap())
}

/// sipp's final screen: retransmissions of the response `code` it received.
fn received_retrans(screen: &str, code: u16) -> u64 {
    let line = screen
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with(&format!("{code} <----------")))
        .unwrap_or_else(|| panic!("no {code} line in\n{screen}"));
    line.split("<----------")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap()
}

fn start(extra: &[&str]) -> RelayProcess {
    let mut args = vec!["--cores", "2", "--admin", "off"];
    args.extend_from_slice(extra);
    RelayProcess::start(&args)
}

#[test]
fn sipp_options_over_udp_and_tcp_get_200() {
    if !have_sipp() {
        return;
    }
    let p = start(&[]);
    sipp(p.addr, "options", &options_scenario(), "u1", 20, &[]);
    sipp(p.addr, "options", &options_scenario(), "t1", 20, &[]);
}

#[test]
fn sipp_invite_gets_the_configured_rejection_and_its_ack_is_absorbed() {
    if !have_sipp() {
        return;
    }
    let p = start(&["--sip-reject", "480"]);
    for transport in ["u1", "t1"] {
        let screen = sipp(p.addr, "invite", &invite_scenario(480), transport, 5, &[]);
        assert_eq!(
            received_retrans(&screen, 480),
            0,
            "the ACK did not stop the 480 (over {transport}):\n{screen}"
        );
    }
}

#[test]
fn sipp_message_gets_the_default_404() {
    if !have_sipp() {
        return;
    }
    let p = start(&[]);
    sipp(p.addr, "message", &message_scenario(404), "u1", 10, &[]);
    sipp(p.addr, "message", &message_scenario(404), "t1", 10, &[]);
}

/// sipp drops 10% of what it sends and receives: its retransmissions (every 500 ms,
/// doubling) bring every request through, and each retransmitted request is answered
/// again by its server transaction (§17.2.2).
#[test]
fn sipp_over_lossy_udp_still_completes_every_call() {
    if !have_sipp() {
        return;
    }
    let p = start(&[]);
    for (name, scenario) in [
        ("options-lost", options_scenario()),
        ("message-lost", message_scenario(404)),
    ] {
        let screen = sipp(p.addr, name, &scenario, "u1", 40, &["-lost", "10"]);
        let (sent, retrans) = sent_and_retransmitted(&screen);
        assert_eq!(sent, 40, "{screen}");
        assert!(retrans > 0, "no retransmission with 10% lost:\n{screen}");
    }
}

/// sipp as the caller of msrpd's user agent: INVITE offering MSRP (its own port as the
/// MSRP port, as RFC 4975 §8.1 wants the m= port to match the path), ACK, a pause in
/// which this test is the MSRP side, then BYE.
fn ua_call_scenario() -> String {
    r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="msrpd user agent answers">
  <send retrans="500">
    <![CDATA[
      INVITE sip:chat@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
      Max-Forwards: 70
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag[call_number]
      To: <sip:chat@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:sipp@[local_ip]:[local_port];transport=[transport]>
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=sipp 1 1 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [local_ip]
      t=0 0
      m=message [local_port] TCP/MSRP *
      a=accept-types:text/plain
      a=path:msrp://[local_ip]:[local_port]/sipp[call_number];tcp

    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="200" rtd="true">
    <action>
      <ereg regexp="a=path:msrp://[^ ]+;tcp" search_in="body" check_it="true" assign_to="path"/>
    </action>
  </recv>
  <send>
    <![CDATA[
      ACK sip:chat@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
      Max-Forwards: 70
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag[call_number]
      To: <sip:chat@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Content-Length: 0

    ]]>
  </send>
  <pause milliseconds="2500"/>
  <send retrans="500">
    <![CDATA[
      BYE sip:chat@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
      Max-Forwards: 70
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag[call_number]
      To: <sip:chat@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 2 BYE
      Content-Length: 0

    ]]>
  </send>
  <recv response="200"/>
  <Reference variables="path"/>
</scenario>
"#
    .to_string()
}

#[test]
fn sipp_calls_the_user_agent_and_chats_over_udp_and_tcp() {
    use common::http::{Sse, request};
    if !have_sipp() {
        return;
    }
    let admin = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let a = admin.to_string();
    let p = RelayProcess::start(&["--cores", "2", "--admin", &a, "--ua-answer", "^sip:chat@"]);
    let mut sse = Sse::open(admin, "/v1/events?type=ua", &[]);
    for transport in ["u1", "t1"] {
        let to = p.addr;
        let caller =
            std::thread::spawn(move || sipp(to, "ua-call", &ua_call_scenario(), transport, 1, &[]));
        let (e, _) = sse.wait_for("ua.session.new", std::time::Duration::from_secs(10));
        let sid = e.data["session"].as_str().unwrap().to_string();
        let s = ua_session(admin, &sid);
        let ours = s["local_path"].as_str().unwrap().to_string();
        let theirs = s["peer_path"][0].as_str().unwrap().to_string();
        // The MSRP side of the call, as the offerer: connect and bind with a SEND.
        let mut c = p.connect(&theirs);
        let body = format!("hello over {transport}");
        c.send_raw(
            format!(
                "MSRP sippmsg1 SEND\r\nTo-Path: {ours}\r\nFrom-Path: {theirs}\r\nMessage-ID: sippmsg1\r\nByte-Range: 1-{n}/{n}\r\nContent-Type: text/plain\r\n\r\n{body}\r\n-------sippmsg1$\r\n",
                n = body.len()
            )
            .as_bytes(),
        );
        assert!(c.read_frame().head.starts_with("MSRP sippmsg1 200 OK"));
        let (e, _) = sse.wait_for("ua.message.received", std::time::Duration::from_secs(5));
        assert_eq!(e.data["body"], body.as_str());
        let r = request(
            admin,
            "POST",
            &format!("/v1/ua/sessions/{sid}/messages"),
            &[("Content-Type", "application/json")],
            br#"{"content_type": "text/plain", "body": "hello sipp"}"#,
        );
        assert_eq!(r.status, 202, "{}", r.text());
        let f = c.read_frame();
        assert_eq!(f.body, b"hello sipp");
        c.respond(&f, 200);
        // sipp hangs up after its pause: 200 to its BYE, the session ends, the MSRP
        // connection closes.
        caller.join().expect("sipp's call completed");
        let (e, _) = sse.wait_for("ua.session.end", std::time::Duration::from_secs(10));
        assert_eq!(e.data["by"], "remote");
        assert!(c.closed_within(std::time::Duration::from_secs(5)));
    }
}

/// sipp as the callee of msrpd's user agent: the INVITE's offer checked (`actpass`,
/// RFC 6135; an MSRP m= line), 180, 200 with the answer (the test's MSRP listener as
/// `[path]` and `[msrp_port]`, given with `-key`; `passive`, so msrpd connects),
/// retransmitted until the ACK; then msrpd's BYE, answered 200.
fn ua_callee_scenario() -> String {
    include_str!("../examples/sipp/ua-callee.xml").to_string()
}

/// Whether a socket is bound to `port` on this host: a UDP one for `u1`, a listening
/// TCP one for `t1` (read from /proc/net, so that no probe of ours takes the port).
fn listening(port: u16, transport: &str) -> bool {
    let (file, listen) = match transport {
        "t1" => ("/proc/net/tcp", Some("0A")),
        _ => ("/proc/net/udp", None),
    };
    let port = format!(":{port:04X}");
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .skip(1)
        .any(|l| {
            let mut f = l.split_whitespace();
            let local = f.nth(1).unwrap_or("");
            let state = f.nth(1).unwrap_or("");
            local.ends_with(&port) && listen.is_none_or(|s| s == state)
        })
}

#[test]
fn sipp_answers_msrpds_invite_and_chats_over_udp_and_tcp() {
    use common::http::{Sse, request};
    use common::ua::{Msrp, send_frame};
    use std::io::Read;
    use std::net::TcpListener;
    use std::time::{Duration, Instant};
    const WAIT: Duration = Duration::from_secs(10);
    if !have_sipp() {
        return;
    }
    let admin = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let a = admin.to_string();
    let _msrpd = RelayProcess::start(&["--cores", "2", "--admin", &a]);
    let mut sse = Sse::open(admin, "/v1/events?type=ua", &[]);
    for (transport, param) in [("u1", ""), ("t1", ";transport=tcp")] {
        // The MSRP side of the callee: the answer's path.
        let msrp = TcpListener::bind("127.0.0.1:0").unwrap();
        msrp.set_nonblocking(true).unwrap();
        let msrp_port = msrp.local_addr().unwrap().port();
        let theirs = format!("msrp://127.0.0.1:{msrp_port}/sippside;tcp");
        let port = free_port();
        let callee = {
            let (path, msrp_port) = (theirs.clone(), msrp_port.to_string());
            std::thread::spawn(move || {
                let keys = ["-key", "path", &path, "-key", "msrp_port", &msrp_port];
                sipp_uas(port, "ua-callee", &ua_callee_scenario(), transport, &keys)
            })
        };
        let deadline = Instant::now() + WAIT;
        while !listening(port, transport) {
            assert!(
                !callee.is_finished() && Instant::now() < deadline,
                "sipp is not listening on {port} ({transport})"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        let ruri = format!("sip:sipp@127.0.0.1:{port}{param}");
        let r = request(
            admin,
            "POST",
            "/v1/ua/sessions",
            &[("Content-Type", "application/json")],
            format!(
                r#"{{"from": "sip:alice@example.com", "to": "{ruri}", "ruri": "{ruri}", "accept_types": ["text/plain"]}}"#
            )
            .as_bytes(),
        );
        assert_eq!(r.status, 202, "{}", r.text());
        let sid = r.json()["session_id"].as_str().unwrap().to_string();
        let (e, _) = sse.wait_for("ua.session.new", WAIT);
        assert_eq!(e.data["session"], sid.as_str(), "{transport}");
        let s = ua_session(admin, &sid);
        let ours = s["local_path"].as_str().unwrap().to_string();
        // The answer said passive: msrpd connects to the path and binds with an empty SEND.
        let deadline = Instant::now() + WAIT;
        let stream = loop {
            match msrp.accept() {
                Ok((s, _)) => break s,
                Err(e) => {
                    assert!(
                        Instant::now() < deadline,
                        "msrpd never connected to {theirs} ({transport}): {e}"
                    );
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        };
        stream.set_nonblocking(false).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut m = Msrp {
            s: stream,
            buf: Vec::new(),
        };
        let bind = m.frame();
        assert!(
            bind.starts_with("MSRP ") && bind.contains(" SEND\r\n"),
            "{bind}"
        );
        assert!(bind.contains(&format!("To-Path: {theirs}\r\n")), "{bind}");
        assert!(bind.contains(&format!("From-Path: {ours}\r\n")), "{bind}");
        assert!(!bind.contains("Content-Type"), "an empty SEND: {bind}");
        let ok = |tid: &str| {
            format!(
                "MSRP {tid} 200 OK\r\nTo-Path: {ours}\r\nFrom-Path: {theirs}\r\n-------{tid}$\r\n"
            )
        };
        let tid = bind.split_whitespace().nth(1).unwrap().to_string();
        m.send(&ok(&tid));
        // A message to msrpd: its 200 and the event.
        let body = format!("hello msrpd over {transport}");
        m.send(&send_frame(&ours, &theirs, "sipps1", "sippm1", &body, ""));
        let r = m.frame();
        assert!(r.starts_with("MSRP sipps1 200 OK\r\n"), "{r}");
        let (e, _) = sse.wait_for("ua.message.received", WAIT);
        assert_eq!(
            (e.data["session"].as_str(), e.data["body"].as_str()),
            (Some(sid.as_str()), Some(body.as_str()))
        );
        // One from msrpd, answered.
        let r = request(
            admin,
            "POST",
            &format!("/v1/ua/sessions/{sid}/messages"),
            &[("Content-Type", "application/json")],
            br#"{"content_type": "text/plain", "body": "hello sipp"}"#,
        );
        assert_eq!(r.status, 202, "{}", r.text());
        let send = m.frame();
        assert!(send.contains(" SEND\r\n"), "{send}");
        assert!(send.contains(&format!("To-Path: {theirs}\r\n")), "{send}");
        assert!(send.contains("\r\n\r\nhello sipp\r\n"), "{send}");
        m.send(&ok(send.split_whitespace().nth(1).unwrap()));
        // DELETE: msrpd's BYE, sipp's 200, sipp done with its call; the session ends
        // and the MSRP connection closes.
        let r = request(admin, "DELETE", &format!("/v1/ua/sessions/{sid}"), &[], b"");
        assert_eq!(r.status, 200, "{}", r.text());
        // sipp got the BYE, answered it and exited 0 (else its panic, with its screen).
        callee
            .join()
            .unwrap_or_else(|e| std::panic::resume_unwind(e));
        let (e, _) = sse.wait_for("ua.session.end", WAIT);
        assert_eq!(
            (e.data["session"].as_str(), e.data["by"].as_str()),
            (Some(sid.as_str()), Some("local"))
        );
        m.s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut rest = Vec::new();
        let closed = m.s.read_to_end(&mut rest);
        assert!(
            closed.is_ok() && m.buf.is_empty(),
            "the MSRP connection is still open ({closed:?}) or had more: {:?}",
            String::from_utf8_lossy(&[&m.buf[..], &rest[..]].concat())
        );
    }
}
