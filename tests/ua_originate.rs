//! The user agent as the caller, on real sockets: `POST /v1/ua/sessions` sends an
//! INVITE with our SDP offer (RFC 3264 §5: `a=setup:actpass`, RFC 6135; `a=msrp-cema`,
//! RFC 6714) to the Request-URI's host, here a UDP socket of the test playing the
//! callee. Its 2xx is ACKed (RFC 3261 §13.2.2.4) and `ua.session.new` raised; whichever
//! side the answer's `a=setup` makes active connects (RFC 4975 §5.4) and binds with a
//! SEND; messages flow; BYE either way, the MSRP connection failing (BYE from us), a
//! refusal, and DELETE while ringing (CANCEL, RFC 3261 §9.1) each end it with the
//! right event. Two workers: the API picks the INVITE's core in turn, and the peer's
//! UDP requests reach whichever core the kernel picks. Every read has a timeout.

mod common;

use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::time::Duration;

use common::http::{Sse, request};
use common::ua::*;
use common::*;
use msrpd::admin::AdminConfig;
use msrpd::server::Driver;

const WAIT: Duration = Duration::from_secs(10);

fn start() -> (Relay, SocketAddr, Sse) {
    let relay = Relay::start(2, Driver::Auto, |c| {
        c.admin = Some(AdminConfig::new("127.0.0.1:0".parse().unwrap()));
    });
    let api = admin_addr(&relay);
    let sse = Sse::open(api, "/v1/events?type=ua", &[]);
    (relay, api, sse)
}

/// The callee: a SIP UDP socket and an MSRP listener.
struct Callee {
    sip: UdpSocket,
    msrp: TcpListener,
    /// Where msrpd's requests come from (its SIP socket), for our requests back.
    msrpd: SocketAddr,
}

impl Callee {
    fn new(msrpd: SocketAddr) -> Callee {
        let sip = UdpSocket::bind("127.0.0.1:0").unwrap();
        sip.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let msrp = TcpListener::bind("127.0.0.1:0").unwrap();
        msrp.set_nonblocking(true).unwrap();
        Callee { sip, msrp, msrpd }
    }

    fn uri(&self) -> String {
        format!("sip:bob@{}", self.sip.local_addr().unwrap())
    }

    fn path(&self) -> String {
        format!(
            "msrp://127.0.0.1:{}/bobsession;tcp",
            self.msrp.local_addr().unwrap().port()
        )
    }

    /// The next SIP message msrpd sends (retransmissions of `skip` start lines are
    /// passed over).
    fn recv(&self, skip: &[&str]) -> String {
        recv_sip(&self.sip, skip)
    }

    fn send(&self, text: &str) {
        self.sip.send_to(text.as_bytes(), self.msrpd).unwrap();
    }

    /// A response to `req`: its Via, From, Call-ID and CSeq, To with `tag`.
    fn reply(&self, req: &str, code: u16, reason: &str, tag: &str, body: Option<&str>) {
        let mut r = format!("SIP/2.0 {code} {reason}\r\n");
        for l in req.split("\r\n").skip(1) {
            let name = l.split(':').next().unwrap_or("").to_ascii_lowercase();
            match name.as_str() {
                "via" | "from" | "call-id" | "cseq" => r.push_str(&format!("{l}\r\n")),
                "to" if l.contains(";tag=") || tag.is_empty() => r.push_str(&format!("{l}\r\n")),
                "to" => r.push_str(&format!("{l};tag={tag}\r\n")),
                _ => {}
            }
        }
        r.push_str(&format!("Contact: <{}>\r\n", self.uri()));
        match body {
            Some(b) => r.push_str(&format!(
                "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{b}",
                b.len()
            )),
            None => r.push_str("Content-Length: 0\r\n\r\n"),
        }
        self.send(&r);
    }

    fn answer_sdp(&self, setup: &str) -> String {
        format!(
            "v=0\r\no=bob 7 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
             m=message {} TCP/MSRP *\r\na=accept-types:text/plain\r\na=path:{}\r\na=setup:{setup}\r\n",
            self.msrp.local_addr().unwrap().port(),
            self.path()
        )
    }

    /// msrpd's connection to our MSRP listener.
    fn accept(&self) -> Msrp {
        accept_msrp(&self.msrp)
    }

    /// An in-dialog request from us (the callee): From is msrpd's To, To msrpd's From.
    fn in_dialog(&self, method: &str, invite: &str, our_tag: &str, seq: u32) -> String {
        let from = header(invite, "From").unwrap();
        let to = header(invite, "To").unwrap();
        let call = header(invite, "Call-ID").unwrap();
        let target = header(invite, "Contact")
            .unwrap()
            .trim_matches(|c| c == '<' || c == '>')
            .to_string();
        let me = self.sip.local_addr().unwrap();
        format!(
            "{method} {target} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-bob-{method}{seq};rport\r\n\
             Max-Forwards: 70\r\nFrom: {to};tag={our_tag}\r\nTo: {from}\r\nCall-ID: {call}\r\n\
             CSeq: {seq} {method}\r\nContent-Length: 0\r\n\r\n"
        )
    }
}

fn originate(api: SocketAddr, body: &str) -> (u16, serde_json::Value) {
    let r = request(
        api,
        "POST",
        "/v1/ua/sessions",
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    );
    let j = r.json();
    (r.status, j)
}

fn call(api: SocketAddr, c: &Callee) -> String {
    let (code, j) = originate(
        api,
        &format!(
            r#"{{"from": "sip:alice@example.com", "to": "{0}", "ruri": "{0}", "accept_types": ["text/plain"]}}"#,
            c.uri()
        ),
    );
    assert_eq!(code, 202, "{j}");
    j["session_id"].as_str().unwrap().to_string()
}

/// The INVITE, checked; then 180 and 200 with our answer (`setup`), and the ACK.
fn answer(c: &Callee, sid: &str, relay: &Relay, setup: &str) -> String {
    let inv = c.recv(&[]);
    assert!(
        inv.starts_with(&format!("INVITE {} SIP/2.0\r\n", c.uri())),
        "{inv}"
    );
    assert!(
        header(&inv, "From")
            .unwrap()
            .starts_with("<sip:alice@example.com>;tag=m")
    );
    assert_eq!(header(&inv, "CSeq"), Some("1 INVITE"));
    assert_eq!(header(&inv, "Content-Type"), Some("application/sdp"));
    let ours = format!("msrp://127.0.0.1:{}/{sid};tcp", relay.addr.port());
    for line in [
        format!("m=message {} TCP/MSRP *", relay.addr.port()),
        format!("a=path:{ours}"),
        "a=setup:actpass".to_string(),
        "a=msrp-cema".to_string(),
        "a=accept-types:text/plain".to_string(),
    ] {
        assert!(inv.contains(&format!("\r\n{line}\r\n")), "{line} in {inv}");
    }
    c.reply(&inv, 180, "Ringing", "bobtag", None);
    c.reply(&inv, 200, "OK", "bobtag", Some(&c.answer_sdp(setup)));
    let ack = c.recv(&["INVITE "]);
    assert!(
        ack.starts_with(&format!("ACK {} SIP/2.0\r\n", c.uri())),
        "{ack}"
    );
    assert_eq!(header(&ack, "CSeq"), Some("1 ACK"));
    assert!(
        header(&ack, "To").unwrap().ends_with(";tag=bobtag"),
        "{ack}"
    );
    inv
}

/// A SEND from us to msrpd's path and its 200.
fn say(m: &mut Msrp, ours: &str, theirs: &str, n: u32, body: &str) {
    let tid = format!("bobsend{n}");
    m.send(&send_frame(
        ours,
        theirs,
        &tid,
        &format!("bobmsg{n}"),
        body,
        "",
    ));
    let r = m.frame();
    assert!(r.starts_with(&format!("MSRP {tid} 200 OK\r\n")), "{r}");
}

#[test]
fn msrpd_calls_out_connects_as_the_active_side_and_chats() {
    let (relay, api, mut sse) = start();
    for i in 0..2 {
        let c = Callee::new(relay.addr);
        let sid = call(api, &c);
        assert_eq!(ua_session(api, &sid)["state"], "calling");
        let inv = answer(&c, &sid, &relay, "passive");
        let (e, _) = sse.wait_for("ua.session.new", WAIT);
        assert_eq!(e.data["session"], sid.as_str());
        assert_eq!(e.data["accept_types"][0], "text/plain");
        // We answered passive: msrpd connects to our path and binds with an empty SEND.
        let mut m = c.accept();
        let bind = m.frame();
        let ours = format!("msrp://127.0.0.1:{}/{sid};tcp", relay.addr.port());
        assert!(
            bind.starts_with("MSRP ") && bind.contains(" SEND\r\n"),
            "{bind}"
        );
        assert!(
            bind.contains(&format!("To-Path: {}\r\n", c.path())),
            "{bind}"
        );
        assert!(bind.contains(&format!("From-Path: {ours}\r\n")), "{bind}");
        assert!(!bind.contains("Content-Type"), "an empty SEND: {bind}");
        let tid = bind.split_whitespace().nth(1).unwrap().to_string();
        m.send(&format!(
            "MSRP {tid} 200 OK\r\nTo-Path: {ours}\r\nFrom-Path: {}\r\n-------{tid}$\r\n",
            c.path()
        ));
        assert_eq!(ua_session(api, &sid)["state"], "active");
        // Both ways.
        say(&mut m, &ours, &c.path(), i, "hello alice");
        let (e, _) = sse.wait_for("ua.message.received", WAIT);
        assert_eq!(
            (e.data["session"].as_str(), e.data["body"].as_str()),
            (Some(sid.as_str()), Some("hello alice"))
        );
        let r = request(
            api,
            "POST",
            &format!("/v1/ua/sessions/{sid}/messages"),
            &[("Content-Type", "application/json")],
            br#"{"content_type": "text/plain", "body": "hello bob", "failure_report": "yes"}"#,
        );
        assert_eq!(r.status, 202, "{}", r.text());
        let send = m.frame();
        assert!(send.contains("\r\n\r\nhello bob\r\n"), "{send}");
        let tid = send.split_whitespace().nth(1).unwrap().to_string();
        m.send(&format!(
            "MSRP {tid} 200 OK\r\nTo-Path: {ours}\r\nFrom-Path: {}\r\n-------{tid}$\r\n",
            c.path()
        ));
        if i == 0 {
            // BYE from the callee: 200, the end event, the connection closed.
            c.send(&c.in_dialog("BYE", &inv, "bobtag", 1));
            let ok = c.recv(&["ACK "]);
            assert_eq!(status(&ok), 200, "{ok}");
            let (e, _) = sse.wait_for("ua.session.end", WAIT);
            assert_eq!(
                (e.data["by"].as_str(), e.data["reason"].as_str()),
                (Some("remote"), Some("bye"))
            );
            assert!(m.closed_within(Duration::from_secs(5)));
        } else {
            // DELETE: msrpd's BYE to our Contact, in the dialog.
            let r = request(api, "DELETE", &format!("/v1/ua/sessions/{sid}"), &[], b"");
            assert_eq!(r.status, 200, "{}", r.text());
            let bye = c.recv(&["ACK "]);
            assert!(
                bye.starts_with(&format!("BYE {} SIP/2.0\r\n", c.uri())),
                "{bye}"
            );
            assert_eq!(header(&bye, "Call-ID"), header(&inv, "Call-ID"));
            assert!(
                header(&bye, "To").unwrap().ends_with(";tag=bobtag"),
                "{bye}"
            );
            c.reply(&bye, 200, "OK", "", None);
            let (e, _) = sse.wait_for("ua.session.end", WAIT);
            assert_eq!(e.data["by"], "local");
            assert!(m.closed_within(Duration::from_secs(5)));
        }
    }
}

#[test]
fn an_answer_saying_active_makes_the_callee_connect() {
    let (relay, api, mut sse) = start();
    let c = Callee::new(relay.addr);
    let sid = call(api, &c);
    answer(&c, &sid, &relay, "active");
    sse.wait_for("ua.session.new", WAIT);
    // msrpd waits for us: nothing connects to our listener.
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        c.msrp.accept().is_err(),
        "msrpd connected although the answer said active"
    );
    let ours = format!("msrp://127.0.0.1:{}/{sid};tcp", relay.addr.port());
    let mut m = Msrp {
        s: TcpStream::connect(relay.addr).unwrap(),
        buf: Vec::new(),
    };
    m.s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    say(&mut m, &ours, &c.path(), 1, "I connected");
    let (e, _) = sse.wait_for("ua.message.received", WAIT);
    assert_eq!(e.data["body"], "I connected");
    assert_eq!(ua_session(api, &sid)["state"], "active");
}

#[test]
fn a_lost_msrp_connection_ends_the_session_with_bye() {
    let (relay, api, mut sse) = start();
    let c = Callee::new(relay.addr);
    let sid = call(api, &c);
    let inv = answer(&c, &sid, &relay, "passive");
    sse.wait_for("ua.session.new", WAIT);
    let mut m = c.accept();
    let _bind = m.frame();
    drop(m);
    let bye = c.recv(&["ACK "]);
    assert!(
        bye.starts_with(&format!("BYE {} SIP/2.0\r\n", c.uri())),
        "{bye}"
    );
    assert_eq!(header(&bye, "Call-ID"), header(&inv, "Call-ID"));
    c.reply(&bye, 200, "OK", "", None);
    let (e, _) = sse.wait_for("ua.session.end", WAIT);
    assert_eq!(e.data["session"], sid.as_str());
    assert_eq!(e.data["reason"], "msrp connection closed");
    let list = request(api, "GET", "/v1/ua/sessions", &[], b"").json();
    assert_eq!(list["sessions"].as_array().unwrap().len(), 0);
}

#[test]
fn refusals_cancels_and_bad_requests() {
    let (relay, api, mut sse) = start();
    // 486: the session fails with the callee's code; msrpd ACKs the 486 (§17.1.1.3).
    let c = Callee::new(relay.addr);
    let sid = call(api, &c);
    let inv = c.recv(&[]);
    c.reply(&inv, 486, "Busy Here", "bobtag", None);
    let ack = c.recv(&["INVITE "]);
    assert!(ack.starts_with("ACK "), "{ack}");
    let (e, _) = sse.wait_for("ua.session.failed", WAIT);
    assert_eq!(
        (e.data["session"].as_str(), e.data["code"].as_u64()),
        (Some(sid.as_str()), Some(486))
    );
    // DELETE while ringing: CANCEL, our 487, the session fails as cancelled.
    let c = Callee::new(relay.addr);
    let sid = call(api, &c);
    let inv = c.recv(&[]);
    c.reply(&inv, 180, "Ringing", "bobtag", None);
    std::thread::sleep(Duration::from_millis(100));
    let r = request(api, "DELETE", &format!("/v1/ua/sessions/{sid}"), &[], b"");
    assert_eq!(r.status, 200, "{}", r.text());
    let cancel = c.recv(&["INVITE "]);
    assert!(
        cancel.starts_with(&format!("CANCEL {} SIP/2.0\r\n", c.uri())),
        "{cancel}"
    );
    assert_eq!(header(&cancel, "CSeq"), Some("1 CANCEL"));
    assert_eq!(
        header(&cancel, "Via"),
        header(&inv, "Via"),
        "same branch (§9.1)"
    );
    c.reply(&cancel, 200, "OK", "bobtag", None);
    c.reply(&inv, 487, "Request Terminated", "bobtag", None);
    let ack = c.recv(&["CANCEL ", "INVITE "]);
    assert!(ack.starts_with("ACK "), "{ack}");
    let (e, _) = sse.wait_for("ua.session.failed", WAIT);
    assert_eq!(
        (e.data["session"].as_str(), e.data["code"].as_u64()),
        (Some(sid.as_str()), Some(487))
    );
    // A 200 whose SDP we cannot use: ACK, then BYE, and the session fails with 488.
    let c = Callee::new(relay.addr);
    let sid = call(api, &c);
    let inv = c.recv(&[]);
    let rtp = "v=0\r\no=bob 7 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=message 0 TCP/MSRP *\r\n";
    c.reply(&inv, 200, "OK", "bobtag", Some(rtp));
    let ack = c.recv(&["INVITE "]);
    assert!(ack.starts_with("ACK "), "{ack}");
    let bye = c.recv(&["INVITE ", "ACK "]);
    assert!(bye.starts_with("BYE "), "{bye}");
    c.reply(&bye, 200, "OK", "", None);
    let (e, _) = sse.wait_for("ua.session.failed", WAIT);
    assert_eq!(
        (e.data["session"].as_str(), e.data["code"].as_u64()),
        (Some(sid.as_str()), Some(488))
    );
    // Requests the API refuses, with the reason.
    for (body, why) in [
        (r#"{"to": "sip:bob@127.0.0.1"}"#, "ruri"),
        (
            r#"{"to": "sip:bob@127.0.0.1", "ruri": "tel:+1234"}"#,
            "ruri",
        ),
        (r#"{"to": "bob", "ruri": "sip:bob@127.0.0.1"}"#, "to"),
        (
            r#"{"to": "sip:bob@127.0.0.1", "ruri": "sip:bob@127.0.0.1", "accept_types": ["text plain"]}"#,
            "accept_types",
        ),
        (
            r#"{"to": "sip:bob@127.0.0.1", "ruri": "sip:bob@127.0.0.1", "colour": 1}"#,
            "colour",
        ),
    ] {
        let (code, j) = originate(api, body);
        assert_eq!(code, 400, "{body}: {j}");
        assert!(j["error"].as_str().unwrap().contains(why), "{body}: {j}");
    }
    let list = request(api, "GET", "/v1/ua/sessions", &[], b"").json();
    assert_eq!(list["sessions"].as_array().unwrap().len(), 0);
}
