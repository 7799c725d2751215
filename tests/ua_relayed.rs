//! The user agent through a relay (RFC 4976), here msrpd's own relay in the same
//! process: the first session makes the user agent connect to the relay and AUTH with
//! digest (a 401, then the answer, then a Use-Path); its `a=path` is then the Use-Path
//! followed by its session URI (§5.1), and the peer's frames reach it through the
//! relay, ours reach the peer through it (the relay opens the connection to the peer's
//! path). Later sessions on that core share the relay connection (one AUTH per core). Wrong credentials: the INVITE
//! gets 503 and no session is made. Every read has a timeout.

mod common;

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::time::Duration;

use common::http::{Sse, request};
use common::ua::*;
use common::*;
use msrpd::admin::AdminConfig;
use msrpd::server::Driver;
use msrpd::ua::engine::{RelayConfig, Rule};

const WAIT: Duration = Duration::from_secs(10);
const REALM: &str = "ua.realm";

fn free_port() -> u16 {
    for _ in 0..50 {
        let t = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = t.local_addr().unwrap().port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port");
}

/// msrpd as relay and user agent at once; the user agent AUTHs as alice with
/// `password`.
fn start(name: &str, password: &str) -> (Relay, SocketAddr, Sse) {
    let users = temp_path(name);
    let _ = std::fs::remove_file(&users);
    msrpd::server::users_file::set_password(&users, REALM, "alice", "wonderland").unwrap();
    let port = free_port();
    let password = password.to_string();
    let relay = Relay::start(2, Driver::Auto, move |c| {
        c.listen = vec![SocketAddr::from(([127, 0, 0, 1], port))];
        c.admin = Some(AdminConfig::new("127.0.0.1:0".parse().unwrap()));
        c.users_file = Some(users);
        c.relay.realm = REALM.into();
        let mut r = Rule::any(&["text/plain"]);
        r.ruri = Some(regex::Regex::new("^sip:chat@").unwrap());
        c.ua_rules = vec![r];
        c.ua_relay = Some(RelayConfig {
            uri: format!("msrp://127.0.0.1:{port};tcp"),
            username: "alice".into(),
            password,
        });
    });
    let api = admin_addr(&relay);
    let sse = Sse::open(api, "/v1/events?type=ua", &[]);
    (relay, api, sse)
}

/// A caller: SIP over UDP, and an MSRP listener at its path (the relay connects to it).
struct Caller {
    sip: UdpSocket,
    msrp: TcpListener,
    to: SocketAddr,
    call: String,
}

impl Caller {
    fn new(to: SocketAddr, call: &str) -> Caller {
        let sip = UdpSocket::bind("127.0.0.1:0").unwrap();
        sip.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let msrp = TcpListener::bind("127.0.0.1:0").unwrap();
        msrp.set_nonblocking(true).unwrap();
        Caller {
            sip,
            msrp,
            to,
            call: call.into(),
        }
    }

    fn path(&self) -> String {
        format!(
            "msrp://127.0.0.1:{}/{}peer;tcp",
            self.msrp.local_addr().unwrap().port(),
            self.call
        )
    }

    fn recv(&self) -> String {
        recv_sip(&self.sip, &["SIP/2.0 100 "])
    }

    /// INVITE with our offer (we are active: no a=setup), the final response.
    fn invite(&self) -> String {
        let port = self.sip.local_addr().unwrap().port();
        let sdp = format!(
            "v=0\r\no=a 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
             m=message {} TCP/MSRP *\r\na=accept-types:text/plain\r\na=path:{}\r\n",
            self.msrp.local_addr().unwrap().port(),
            self.path()
        );
        let call = &self.call;
        let m = format!(
            "INVITE sip:chat@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-{call}-inv;rport\r\n\
             Max-Forwards: 70\r\nFrom: <sip:carol@example.com>;tag=c-{call}\r\nTo: <sip:chat@example.com>\r\n\
             Call-ID: {call}\r\nCSeq: 1 INVITE\r\nContact: <sip:carol@127.0.0.1:{port}>\r\n\
             Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
            sdp.len()
        );
        self.sip.send_to(m.as_bytes(), self.to).unwrap();
        self.recv()
    }

    fn ack(&self, ok: &str) {
        let port = self.sip.local_addr().unwrap().port();
        let call = &self.call;
        let to = header(ok, "To").unwrap();
        let m = format!(
            "ACK sip:msrpd@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-{call}-ack;rport\r\n\
             Max-Forwards: 70\r\nFrom: <sip:carol@example.com>;tag=c-{call}\r\nTo: {to}\r\n\
             Call-ID: {call}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"
        );
        self.sip.send_to(m.as_bytes(), self.to).unwrap();
    }

    /// The relay's connection to our path.
    fn accept(&self) -> Msrp {
        accept_msrp(&self.msrp)
    }
}

#[test]
fn sessions_go_through_msrpds_own_relay_with_digest_auth() {
    let (relay, api, mut sse) = start("ua-relayed-users", "wonderland");
    let port = relay.addr.port();
    let before = relay.counters();
    let mut inbound: Option<Msrp> = None;
    for i in 0..4 {
        let c = Caller::new(relay.addr, &format!("relayed{i}"));
        let ok = c.invite();
        assert_eq!(status(&ok), 200, "{ok}");
        let path = answer_path(&ok);
        let uris: Vec<&str> = path.split(' ').collect();
        assert_eq!(
            uris.len(),
            2,
            "the relay's Use-Path, then the session: {path}"
        );
        assert!(
            uris[0].starts_with(&format!("msrp://127.0.0.1:{port}/")),
            "{path}"
        );
        assert!(ok.contains(&format!("m=message {port} TCP/MSRP")), "{ok}");
        c.ack(&ok);
        let (e, _) = sse.wait_for("ua.session.new", WAIT);
        let sid = e.data["session"].as_str().unwrap().to_string();
        assert!(uris[1].contains(&sid), "{path}");
        // We connect to the first URI of its path (the relay) and send.
        let mut m = Msrp::connect(relay.addr);
        m.send(&send_frame(
            &path,
            &c.path(),
            &format!("rsend{i}"),
            &format!("rmsg{i}"),
            "through the relay",
            "",
        ));
        let r = m.frame();
        assert!(r.starts_with(&format!("MSRP rsend{i} 200 OK\r\n")), "{r}");
        let (e, _) = sse.wait_for("ua.message.received", WAIT);
        assert_eq!(
            (e.data["session"].as_str(), e.data["body"].as_str()),
            (Some(sid.as_str()), Some("through the relay"))
        );
        // And back: the relay opens a connection to our path (once: the second
        // session's SEND goes to another listener of ours, so another connection).
        let r = request(
            api,
            "POST",
            &format!("/v1/ua/sessions/{sid}/messages"),
            &[("Content-Type", "application/json")],
            br#"{"content_type": "text/plain", "body": "and back", "failure_report": "yes"}"#,
        );
        assert_eq!(r.status, 202, "{}", r.text());
        let mut back = c.accept();
        let send = back.frame();
        assert!(
            send.contains(&format!("To-Path: {}\r\n", c.path())),
            "{send}"
        );
        let from = header(&send, "From-Path").unwrap();
        assert!(
            from.starts_with(&format!("msrp://127.0.0.1:{port}/")) && from.ends_with(uris[1]),
            "the relay in the From-Path, then the session: {from}"
        );
        assert!(send.contains("\r\n\r\nand back\r\n"), "{send}");
        let tid = send.split_whitespace().nth(1).unwrap().to_string();
        back.send(&format!(
            "MSRP {tid} 200 OK\r\nTo-Path: {from}\r\nFrom-Path: {}\r\n-------{tid}$\r\n",
            c.path()
        ));
        assert_eq!(ua_session(api, &sid)["state"], "active");
        inbound = Some(m);
    }
    drop(inbound);
    // One AUTH per core whose user agent took an INVITE (two workers), not one per
    // session: the relay connection is shared.
    let after = relay.counters();
    let (challenges, ok) = (
        after.auth_challenges - before.auth_challenges,
        after.auth_ok - before.auth_ok,
    );
    assert!((1..=2).contains(&ok), "{ok} AUTHs for 4 sessions");
    assert_eq!(challenges, ok, "each AUTH: a 401, then the answer");
}

#[test]
fn wrong_relay_credentials_refuse_the_invite_with_503() {
    let (relay, api, _sse) = start("ua-relayed-bad", "not-the-password");
    let c = Caller::new(relay.addr, "badcreds");
    let r = c.invite();
    assert_eq!(status(&r), 503, "{r}");
    assert!(r.to_ascii_lowercase().contains("relay"), "{r}");
    let list = request(api, "GET", "/v1/ua/sessions", &[], b"").json();
    assert_eq!(list["sessions"].as_array().unwrap().len(), 0);
}
