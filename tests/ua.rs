//! The MSRP user agent on real sockets: an INVITE over UDP offering MSRP is answered
//! with our path (RFC 4975 §8, RFC 3264), the ACK makes the session (`ua.session.new`),
//! the peer connects to our path and binds it with a SEND (RFC 4975 §5.4), messages go
//! both ways with their responses and REPORTs and come out as events, the admin API
//! lists, sends and ends, and BYE ends the session. Two workers: the INVITE and the
//! MSRP connection land on whichever core the kernel picks, so frames and in-dialog
//! requests cross cores (ARCHITECTURE.md). Every socket read has a timeout.

mod common;

use std::io::Read;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use common::http::{Sse, request};
use common::ua::*;
use common::*;
use msrpd::admin::AdminConfig;
use msrpd::server::Driver;
use msrpd::ua::engine::Rule;

const WAIT: Duration = Duration::from_secs(10);

fn start(workers: usize, rules: Vec<Rule>) -> (Relay, SocketAddr, Sse) {
    let relay = Relay::start(workers, Driver::Auto, |c| {
        c.admin = Some(AdminConfig::new("127.0.0.1:0".parse().unwrap()));
        c.ua_rules = rules;
    });
    let api = admin_addr(&relay);
    let sse = Sse::open(api, "/v1/events?type=ua", &[]);
    (relay, api, sse)
}

fn chat_rule() -> Rule {
    let mut r = Rule::any(&["text/plain", "message/cpim"]);
    r.ruri = Some(regex::Regex::new("^sip:chat@").unwrap());
    r
}

struct Peer {
    sip: UdpSocket,
    relay: SocketAddr,
    call: String,
    path: String,
}

impl Peer {
    fn new(relay: SocketAddr, call: &str) -> Peer {
        let sip = UdpSocket::bind("127.0.0.1:0").unwrap();
        sip.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let port = sip.local_addr().unwrap().port();
        Peer {
            sip,
            relay,
            call: call.to_string(),
            path: format!("msrp://127.0.0.1:{port}/{call}peer;tcp"),
        }
    }

    fn port(&self) -> u16 {
        self.sip.local_addr().unwrap().port()
    }

    fn send(&self, text: &str) {
        self.sip.send_to(text.as_bytes(), self.relay).unwrap();
    }

    /// The next SIP message that is not a 100 Trying.
    fn recv(&self) -> String {
        let mut b = vec![0u8; 65536];
        loop {
            let (n, _) = self
                .sip
                .recv_from(&mut b)
                .expect("a SIP message from msrpd");
            let m = String::from_utf8_lossy(&b[..n]).into_owned();
            if !m.starts_with("SIP/2.0 100 ") {
                return m;
            }
        }
    }

    fn invite(&self, ruri: &str, sdp: &str) -> String {
        let port = self.port();
        let call = &self.call;
        format!(
            "INVITE {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-{call}-inv;rport\r\n\
             Max-Forwards: 70\r\nFrom: <sip:alice@example.com>;tag=a-{call}\r\nTo: <{ruri}>\r\n\
             Call-ID: {call}\r\nCSeq: 1 INVITE\r\nContact: <sip:alice@127.0.0.1:{port}>\r\n\
             Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
            sdp.len()
        )
    }

    fn offer(&self) -> String {
        format!(
            "v=0\r\no=alice 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
             m=message {} TCP/MSRP *\r\na=accept-types:text/plain message/cpim\r\n\
             a=accept-wrapped-types:*\r\na=path:{}\r\n",
            self.port(),
            self.path
        )
    }

    fn in_dialog(&self, method: &str, to_tag: &str, seq: u32) -> String {
        let port = self.port();
        let call = &self.call;
        format!(
            "{method} sip:msrpd@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-{call}-{method}{seq};rport\r\n\
             Max-Forwards: 70\r\nFrom: <sip:alice@example.com>;tag=a-{call}\r\nTo: <sip:chat@example.com>;tag={to_tag}\r\n\
             Call-ID: {call}\r\nCSeq: {seq} {method}\r\nContent-Length: 0\r\n\r\n"
        )
    }
}

/// INVITE, 200, ACK and `ua.session.new`: (session id, our path, our To tag).
fn set_up(p: &Peer, sse: &mut Sse) -> (String, String, String) {
    p.send(&p.invite("sip:chat@example.com", &p.offer()));
    let ok = p.recv();
    assert_eq!(status(&ok), 200, "{ok}");
    assert_eq!(header(&ok, "Content-Type"), Some("application/sdp"));
    let path = answer_path(&ok);
    let tag = to_tag(&ok);
    p.send(&p.in_dialog("ACK", &tag, 1));
    let (e, _) = sse.wait_for("ua.session.new", WAIT);
    assert!(e.data["from"].as_str().unwrap().contains("alice"));
    let sid = e.data["session"].as_str().unwrap().to_string();
    assert!(path.contains(&sid), "{path} names {sid}");
    (sid, path, tag)
}

#[test]
fn a_chat_over_invite_both_ways_with_reports_then_bye() {
    let (relay, api, mut sse) = start(2, vec![chat_rule()]);
    // Four sessions: the INVITE's core and the MSRP connection's core vary.
    for i in 0..4 {
        let p = Peer::new(relay.addr, &format!("call{i}x"));
        let (sid, path, tag) = set_up(&p, &mut sse);
        let mut m = Msrp::connect(relay.addr);
        // Bind, and a message asking for a success report.
        m.send(&send_frame(
            &path,
            &p.path,
            "bind0001",
            "msg00001",
            "hello bob",
            "Success-Report: yes\r\n",
        ));
        let r = m.frame();
        assert!(r.starts_with("MSRP bind0001 200 OK\r\n"), "{r}");
        assert!(r.contains(&format!("To-Path: {}\r\n", p.path)), "{r}");
        let rep = m.frame();
        assert!(
            rep.contains(" REPORT\r\n") && rep.contains("Status: 000 200 OK"),
            "{rep}"
        );
        assert!(
            rep.contains("Message-ID: msg00001") && rep.contains("Byte-Range: 1-9/9"),
            "{rep}"
        );
        let (e, _) = sse.wait_for("ua.message.received", WAIT);
        assert_eq!(e.data["session"], sid.as_str());
        assert_eq!(e.data["body"], "hello bob");
        assert_eq!(e.data["encoding"], "text");
        // The operator answers through the API.
        let r = request(
            api,
            "POST",
            &format!("/v1/ua/sessions/{sid}/messages"),
            &[("Content-Type", "application/json")],
            br#"{"content_type": "text/plain", "body": "hello alice", "success_report": true}"#,
        );
        assert_eq!(r.status, 202, "{}", r.text());
        let mid = r.json()["message_id"].as_str().unwrap().to_string();
        let send = m.frame();
        assert!(send.contains(&format!("To-Path: {}\r\n", p.path)), "{send}");
        assert!(send.contains(&format!("From-Path: {path}\r\n")), "{send}");
        assert!(send.contains("\r\n\r\nhello alice\r\n"), "{send}");
        let tid = send.split_whitespace().nth(1).unwrap().to_string();
        m.send(&format!(
            "MSRP {tid} 200 OK\r\nTo-Path: {path}\r\nFrom-Path: {}\r\n-------{tid}$\r\n",
            p.path
        ));
        m.send(&format!(
            "MSRP rep{i}0001 REPORT\r\nTo-Path: {path}\r\nFrom-Path: {}\r\nMessage-ID: {mid}\r\nByte-Range: 1-11/11\r\nStatus: 000 200 OK\r\n-------rep{i}0001$\r\n",
            p.path
        ));
        let (e, _) = sse.wait_for("ua.report.received", WAIT);
        assert_eq!(e.data["message_id"], mid.as_str());
        assert_eq!(e.data["status"], 200);
        assert_eq!(e.data["source"], "report");
        let s = ua_session(api, &sid);
        assert_eq!(s["state"], "active");
        assert_eq!(
            (s["messages_in"].as_u64(), s["messages_out"].as_u64()),
            (Some(1), Some(1))
        );
        // BYE from the peer: 200, the event, the connection closed.
        p.send(&p.in_dialog("BYE", &tag, 2));
        let ok = p.recv();
        assert_eq!(status(&ok), 200, "{ok}");
        let (e, _) = sse.wait_for("ua.session.end", WAIT);
        assert_eq!(
            (e.data["session"].as_str(), e.data["by"].as_str()),
            (Some(sid.as_str()), Some("remote"))
        );
        assert!(m.closed_within(Duration::from_secs(5)));
    }
    let list = request(api, "GET", "/v1/ua/sessions", &[], b"").json();
    assert_eq!(list["sessions"].as_array().unwrap().len(), 0);
}

#[test]
fn what_the_user_agent_does_not_take() {
    let (relay, api, mut sse) = start(2, vec![chat_rule()]);
    // No rule for this Request-URI: the SIP layer's rejection (404).
    let p = Peer::new(relay.addr, "norule1");
    p.send(&p.invite("sip:someone@example.com", &p.offer()));
    assert_eq!(status(&p.recv()), 404);
    // No MSRP stream: 488; not SDP: 400.
    let p = Peer::new(relay.addr, "rtp00001");
    p.send(&p.invite(
        "sip:chat@example.com",
        "v=0\r\no=a 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n",
    ));
    assert_eq!(status(&p.recv()), 488);
    let p = Peer::new(relay.addr, "junk0001");
    p.send(&p.invite("sip:chat@example.com", "hello, this is not SDP\r\n"));
    let s = status(&p.recv());
    assert!(s == 400 || s == 488, "{s}");
    // MSRP to a session nobody has: 481.
    let mut m = Msrp::connect(relay.addr);
    m.send(&send_frame(
        &format!(
            "msrp://127.0.0.1:{}/u0000ffffffffffffffff;tcp",
            relay.addr.port()
        ),
        "msrp://127.0.0.1:9/x;tcp",
        "nobody01",
        "msg00001",
        "hi",
        "",
    ));
    assert!(m.frame().starts_with("MSRP nobody01 481 "));
    // The API on a session nobody has: 404, and bad bodies 400.
    let r = request(
        api,
        "POST",
        "/v1/ua/sessions/u0000ffffffffffffffff/messages",
        &[("Content-Type", "application/json")],
        br#"{"content_type":"text/plain","body":"x"}"#,
    );
    assert_eq!(r.status, 404, "{}", r.text());
    let p = Peer::new(relay.addr, "apibad01");
    let (sid, _, _) = set_up(&p, &mut sse);
    for bad in [
        r#"{"body":"x"}"#.to_string(),
        r#"{"content_type":"text","body":"x"}"#.to_string(),
        r#"{"content_type":"text/plain"}"#.to_string(),
        r#"{"content_type":"text/plain","body":"x","failure_report":"maybe"}"#.to_string(),
        r#"{"content_type":"text/plain","body_base64":"***"}"#.to_string(),
    ] {
        let r = request(
            api,
            "POST",
            &format!("/v1/ua/sessions/{sid}/messages"),
            &[("Content-Type", "application/json")],
            bad.as_bytes(),
        );
        assert_eq!(r.status, 400, "{bad}: {}", r.text());
    }
    // Not connected yet: 409.
    let r = request(
        api,
        "POST",
        &format!("/v1/ua/sessions/{sid}/messages"),
        &[("Content-Type", "application/json")],
        br#"{"content_type":"text/plain","body":"x"}"#,
    );
    assert_eq!(r.status, 409, "{}", r.text());
    // DELETE ends it, with a BYE to the peer's Contact.
    let r = request(api, "DELETE", &format!("/v1/ua/sessions/{sid}"), &[], b"");
    assert_eq!(r.status, 200, "{}", r.text());
    let (e, _) = sse.wait_for("ua.session.end", WAIT);
    assert_eq!(
        (e.data["by"].as_str(), e.data["reason"].as_str()),
        (Some("local"), Some("operator"))
    );
    let bye = p.recv();
    assert!(bye.starts_with("BYE sip:alice@127.0.0.1:"), "{bye}");
    assert_eq!(header(&bye, "Call-ID"), Some("apibad01"));
    assert!(
        header(&bye, "To").unwrap().contains("tag=a-apibad01"),
        "{bye}"
    );
    assert!(header(&bye, "CSeq").unwrap().ends_with(" BYE"), "{bye}");
    let r = request(api, "DELETE", &format!("/v1/ua/sessions/{sid}"), &[], b"");
    assert_eq!(r.status, 404, "gone: {}", r.text());
}

/// `n` bytes of printable, position-dependent text (so a misplaced piece shows).
fn payload(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| b'a' + ((i / 7 + usize::from(seed)) % 26) as u8)
        .collect()
}

#[test]
fn ten_mib_each_way_byte_exact_while_short_messages_flow() {
    let (relay, api, mut sse) = start(2, vec![chat_rule()]);
    let p = Peer::new(relay.addr, "bigmsg01");
    let (sid, path, _) = set_up(&p, &mut sse);
    // A small receive window: what msrpd sends waits in its queue, not in the kernel.
    let mut c = Client::connect_small(relay.addr, &p.path, 64 * 1024);
    let big = payload(10 << 20, 3);
    // In: four chunks of 2.5 MiB, a short message between the second and the third.
    let q = big.len() / 4;
    for k in 0..4 {
        let (a, z) = (k * q, if k == 3 { big.len() } else { (k + 1) * q });
        let tid = format!("inbig{k:03}");
        let flag = if k == 3 { '$' } else { '+' };
        let mut f = format!(
            "MSRP {tid} SEND\r\nTo-Path: {path}\r\nFrom-Path: {}\r\nMessage-ID: bigone01\r\nByte-Range: {}-{}/{}\r\nContent-Type: text/plain\r\n\r\n",
            p.path,
            a + 1,
            z,
            big.len()
        )
        .into_bytes();
        f.extend_from_slice(&big[a..z]);
        f.extend_from_slice(format!("\r\n-------{tid}{flag}\r\n").as_bytes());
        c.send_raw(&f);
        assert!(c.read_frame().head.starts_with(&format!("MSRP {tid} 200")));
        if k == 1 {
            c.send_raw(
                send_frame(&path, &p.path, "short001", "small001", "in between", "").as_bytes(),
            );
            assert!(c.read_frame().head.starts_with("MSRP short001 200"));
            let (e, _) = sse.wait_for("ua.message.received", WAIT);
            assert_eq!(e.data["body"], "in between", "the short one is whole first");
        }
    }
    let (e, _) = sse.wait_for("ua.message.received", WAIT);
    assert_eq!(e.data["message_id"], "bigone01");
    assert!(
        e.data["body"].as_str().unwrap().as_bytes() == big.as_slice(),
        "10 MiB in, byte-exact"
    );
    // Out: 10 MiB through the API. Nothing is read for a moment, so the send queue
    // holds most of it; then a short SEND from the peer must get its 200 before the big
    // message ends (RFC 4975 §7.1.1: the queue interrupts the chunk).
    let out = payload(10 << 20, 11);
    let body = serde_json::json!({"content_type": "text/plain", "body": String::from_utf8(out.clone()).unwrap()});
    let r = request(
        api,
        "POST",
        &format!("/v1/ua/sessions/{sid}/messages"),
        &[("Content-Type", "application/json")],
        body.to_string().as_bytes(),
    );
    assert_eq!(r.status, 202, "{}", r.text());
    std::thread::sleep(Duration::from_millis(200));
    c.send_raw(send_frame(&path, &p.path, "short002", "small002", "during", "").as_bytes());
    let mut got = vec![0u8; out.len()];
    let mut covered = 0usize;
    let mut short_answered_before_end = None;
    let mut pieces = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(Instant::now() < deadline, "the big message did not end");
        let f = c.read_frame();
        if f.head.starts_with("MSRP short002 ") {
            assert!(f.head.starts_with("MSRP short002 200"), "{}", f.head);
            short_answered_before_end.get_or_insert(true);
            continue;
        }
        assert_eq!(f.kind(), "SEND", "{}", f.head);
        let br = f.header("Byte-Range").unwrap().to_string();
        pieces += 1;
        let start: usize = br.split('-').next().unwrap().parse().unwrap();
        got[start - 1..start - 1 + f.body.len()].copy_from_slice(&f.body);
        covered += f.body.len();
        c.respond(&f, 200);
        if f.flag == msrpd::codec::Flag::Complete {
            short_answered_before_end.get_or_insert(false);
            break;
        }
    }
    assert_eq!(
        short_answered_before_end,
        Some(true),
        "the short SEND's 200 waited for the whole 10 MiB"
    );
    assert_eq!(covered, out.len());
    assert!(
        pieces >= 2,
        "the chunk was interrupted and resumed ({pieces} pieces)"
    );
    assert!(got == out, "10 MiB out, byte-exact from its pieces");
    let (e, _) = sse.wait_for("ua.message.received", WAIT);
    assert_eq!(e.data["body"], "during");
}

/// tshark's one-field-per-line output for `filter` over the capture, SIP and MSRP
/// decoded on the relay's port.
fn tshark(cap: &std::path::Path, port: u16, filter: &str, field: &str) -> String {
    let out = std::process::Command::new("tshark")
        .args(["-r", cap.to_str().unwrap()])
        .args(["-d", &format!("tcp.port=={port},msrp")])
        .args(["-d", &format!("udp.port=={port},sip")])
        .args(["-Y", filter, "-T", "fields", "-e", field])
        .output()
        .expect("tshark reads the capture");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A whole session captured on the loopback and decoded by tshark, an independent SIP
/// and MSRP parser: every frame we wrote decodes, none is malformed.
#[test]
fn a_captured_session_decodes_in_tshark_without_malformed_packets() {
    if !have_tool("tshark", "--version", "tshark") {
        return;
    }
    let (relay, api, mut sse) = start(1, vec![chat_rule()]);
    let port = relay.addr.port();
    let cap = scratch_dir().join("ua-session.pcapng");
    let mut dump = std::process::Command::new("tshark")
        .args(["-i", "lo", "-q", "-w", cap.to_str().unwrap()])
        .args(["-f", &format!("port {port}"), "-a", "duration:20"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("tshark captures");
    // Capturing once it says so.
    let mut err = dump.stderr.take().unwrap();
    let mut said = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !String::from_utf8_lossy(&said).contains("Capturing on") {
        assert!(
            Instant::now() < deadline,
            "tshark did not start: {}",
            String::from_utf8_lossy(&said)
        );
        let mut b = [0u8; 256];
        match err.read(&mut b) {
            Ok(0) | Err(_) => break,
            Ok(n) => said.extend_from_slice(&b[..n]),
        }
    }
    // dumpcap says so a moment before its filter is on the socket.
    std::thread::sleep(Duration::from_secs(2));
    let p = Peer::new(relay.addr, "capture1");
    let (sid, path, tag) = set_up(&p, &mut sse);
    let mut c = relay.connect(&p.path);
    c.send_raw(
        send_frame(
            &path,
            &p.path,
            "cap00001",
            "capmsg01",
            "captured",
            "Success-Report: yes\r\n",
        )
        .as_bytes(),
    );
    assert!(c.read_frame().head.starts_with("MSRP cap00001 200"));
    assert!(c.read_frame().head.contains(" REPORT\r\n"));
    let r = request(
        api,
        "POST",
        &format!("/v1/ua/sessions/{sid}/messages"),
        &[("Content-Type", "application/json")],
        br#"{"content_type": "text/plain", "body": "and back"}"#,
    );
    assert_eq!(r.status, 202);
    let f = c.read_frame();
    c.respond(&f, 200);
    p.send(&p.in_dialog("BYE", &tag, 2));
    assert_eq!(status(&p.recv()), 200);
    assert!(c.closed_within(Duration::from_secs(5)));
    std::thread::sleep(Duration::from_millis(500));
    // SIGINT: tshark writes what it has and exits.
    unsafe_free_kill(dump.id());
    let _ = dump.wait();
    let sip = tshark(
        &cap,
        port,
        "sip.Method || sip.Status-Code",
        "sip.CSeq.method",
    );
    for m in ["INVITE", "ACK", "BYE"] {
        assert!(sip.lines().any(|l| l == m), "tshark saw no {m}: {sip:?}");
    }
    let msrp = tshark(&cap, port, "msrp", "msrp.method");
    assert!(
        msrp.lines().filter(|l| *l == "SEND").count() >= 2,
        "tshark saw no SENDs both ways: {msrp:?}"
    );
    let codes = tshark(&cap, port, "msrp", "msrp.status.code");
    assert!(
        codes.lines().any(|l| l == "200"),
        "no MSRP 200 decoded: {codes:?}"
    );
    // Our 200 and the REPORT after it left in one segment, and tshark's MSRP dissector
    // reads one message per segment (the rest shows as text): the REPORT is there.
    let report = tshark(
        &cap,
        port,
        "msrp && frame contains \"REPORT\"",
        "frame.number",
    );
    assert!(!report.trim().is_empty(), "no REPORT on the wire");
    let bad = tshark(
        &cap,
        port,
        "_ws.malformed || _ws.expert.severity == error",
        "frame.number",
    );
    assert!(
        bad.trim().is_empty(),
        "malformed or erroneous frames: {bad}"
    );
}

/// Sends SIGINT to `pid` with the `kill` command (no libc in the tests).
fn unsafe_free_kill(pid: u32) {
    let _ = std::process::Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status();
}

/// A thousand sessions at once on two workers: each INVITEd over UDP, bound over TCP,
/// one message each way, listed, then ended with BYE; nothing left over.
#[test]
fn a_thousand_concurrent_sessions() {
    const N: usize = 1000;
    let (relay, api, mut sse) = start(2, vec![chat_rule()]);
    let mut calls = Vec::with_capacity(N);
    for i in 0..N {
        let p = Peer::new(relay.addr, &format!("many{i:05}"));
        p.send(&p.invite("sip:chat@example.com", &p.offer()));
        calls.push(p);
    }
    let mut up = Vec::with_capacity(N);
    for p in &calls {
        let ok = p.recv();
        assert_eq!(status(&ok), 200, "{ok}");
        let tag = to_tag(&ok);
        p.send(&p.in_dialog("ACK", &tag, 1));
        up.push((answer_path(&ok), tag));
    }
    let mut conns = Vec::with_capacity(N);
    for (p, (path, _)) in calls.iter().zip(&up) {
        let mut c = relay.connect(&p.path);
        c.send_raw(send_frame(path, &p.path, "many0001", "manymsg1", "hi", "").as_bytes());
        conns.push(c);
    }
    for c in conns.iter_mut() {
        assert!(c.read_frame().head.starts_with("MSRP many0001 200"));
    }
    // The ACKs went over UDP, the SENDs over TCP: a session may be bound before its
    // ACK is in. All are up and active soon.
    let deadline = Instant::now() + WAIT;
    loop {
        let list = request(api, "GET", "/v1/ua/sessions", &[], b"").json();
        let sessions = list["sessions"].as_array().unwrap();
        assert_eq!(sessions.len(), N);
        let active = sessions
            .iter()
            .filter(|s| s["state"] == "active" && s["messages_in"] == 1)
            .count();
        if active == N {
            break;
        }
        assert!(Instant::now() < deadline, "{active} of {N} sessions active");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The user agent's connections count as open connections, as the relay's do.
    let c = relay.counters();
    assert_eq!(
        (c.connections_open, c.connections_total),
        (N as u64, N as u64)
    );
    let mut received = 0;
    while received < N {
        let (e, _) = sse.wait_for("ua.message.received", WAIT);
        assert_eq!(e.data["body"], "hi");
        received += 1;
    }
    for (p, (_, tag)) in calls.iter().zip(&up) {
        p.send(&p.in_dialog("BYE", tag, 2));
    }
    for p in &calls {
        assert_eq!(status(&p.recv()), 200);
    }
    let deadline = Instant::now() + WAIT;
    loop {
        let list = request(api, "GET", "/v1/ua/sessions", &[], b"").json();
        if list["sessions"].as_array().unwrap().is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "sessions left after every BYE");
        std::thread::sleep(Duration::from_millis(50));
    }
    for c in conns.iter_mut() {
        assert!(c.closed_within(Duration::from_secs(5)));
    }
    relay.settle("no connection open", |c| c.connections_open == 0);
}
