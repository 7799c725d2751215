//! The MSRP user agent's reports and refusals, byte by byte on real sockets, checked
//! against the RFCs rather than against msrpd's code:
//!
//! 1. peer -> msrpd: every Success-Report x Failure-Report combination, for a message
//!    msrpd accepts, one it refuses (415), one in several chunks and one aborted with
//!    `#`: exactly which responses and REPORTs come back (RFC 4975 §7.1.1-§7.1.4, §7.2,
//!    §7.3.1);
//! 2. msrpd -> peer: every success_report x failure_report the API takes, the peer
//!    answering 200, an error, a success or failure REPORT, or nothing: the SEND's
//!    headers and the `ua.report.received` events (and that none come when none should);
//! 3. hostile SDP offers over SIP (UDP and TCP): 488 / 415 / 513, no session, and the
//!    server still answers a good INVITE after them (RFC 3261, RFC 3264, RFC 4975 §8);
//! 4. MSRP to a session id that does not exist, or does not parse: 481 (§7.3).
//!
//! "Nothing came" is never a bare sleep: after each step the peer sends a sentinel SEND
//! on the same connection and reads up to its 200, and waits for the sentinel's
//! `ua.message.received` on the event stream. msrpd handles a connection's frames in
//! order on one worker (these servers have one), so whatever the step caused is queued
//! before the sentinel's answer and its event. Every socket read has a timeout.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use common::http::{Sse, SseEvent, request};
use common::*;
use msrpd::admin::AdminConfig;
use msrpd::codec::Flag;
use msrpd::server::Driver;
use msrpd::ua::engine::Rule;

const WAIT: Duration = Duration::from_secs(10);

/// One worker: the INVITE, the session and its MSRP connection share it, so frames and
/// events keep their order (what the sentinels rely on).
fn start() -> (Relay, SocketAddr, Sse) {
    let relay = Relay::start(1, Driver::Auto, |c| {
        c.admin = Some(AdminConfig::new("127.0.0.1:0".parse().unwrap()));
        c.ua_rules = vec![chat_rule()];
    });
    let api = admin_addr(&relay);
    let sse = Sse::open(api, "/v1/events?type=ua", &[]);
    (relay, api, sse)
}

/// The rule: `sip:chat@...`, accepting text/plain and message/cpim (not
/// application/octet-stream, which the refused messages carry).
fn chat_rule() -> Rule {
    let mut r = Rule::any(&["text/plain", "message/cpim"]);
    r.ruri = Some(regex::Regex::new("^sip:chat@").unwrap());
    r
}

// ------------------------------------------------------------------------ SIP peer

/// A SIP peer over UDP (as in tests/ua.rs).
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

    /// The next SIP message that is not a 100 Trying (the socket's timeout bounds it).
    fn recv(&self) -> String {
        let mut b = vec![0u8; 65536];
        for _ in 0..16 {
            let (n, _) = self
                .sip
                .recv_from(&mut b)
                .expect("a SIP message from msrpd");
            let m = String::from_utf8_lossy(&b[..n]).into_owned();
            if !m.starts_with("SIP/2.0 100 ") {
                return m;
            }
        }
        panic!("only 100 Trying from msrpd");
    }

    /// An INVITE with `body` as `content_type` (none at all when `content_type` is
    /// empty), over `transport` from `sent_by`.
    fn invite_as(&self, transport: &str, sent_by: &str, content_type: &str, body: &str) -> String {
        let call = &self.call;
        let ct = if content_type.is_empty() {
            String::new()
        } else {
            format!("Content-Type: {content_type}\r\n")
        };
        format!(
            "INVITE sip:chat@example.com SIP/2.0\r\nVia: SIP/2.0/{transport} {sent_by};branch=z9hG4bK-{call}-inv;rport\r\n\
             Max-Forwards: 70\r\nFrom: <sip:alice@example.com>;tag=a-{call}\r\nTo: <sip:chat@example.com>\r\n\
             Call-ID: {call}\r\nCSeq: 1 INVITE\r\nContact: <sip:alice@{sent_by}>\r\n\
             {ct}Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
    }

    fn invite(&self, sdp: &str) -> String {
        self.invite_as(
            "UDP",
            &format!("127.0.0.1:{}", self.port()),
            "application/sdp",
            sdp,
        )
    }

    /// A good MSRP offer, `m=` line and attributes replaceable.
    fn offer_with(&self, m_line: &str, attrs: &str) -> String {
        format!(
            "v=0\r\no=alice 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n{m_line}\r\n{attrs}"
        )
    }

    fn offer(&self) -> String {
        self.offer_with(
            &format!("m=message {} TCP/MSRP *", self.port()),
            &format!(
                "a=accept-types:text/plain message/cpim\r\na=accept-wrapped-types:*\r\na=path:{}\r\n",
                self.path
            ),
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

    /// The ACK of a rejected INVITE: same branch, the response's To (RFC 3261 §17.1.1.3).
    fn ack_rejection(&self, resp: &str) -> String {
        let port = self.port();
        let call = &self.call;
        let to = header(resp, "To").unwrap_or("<sip:chat@example.com>");
        format!(
            "ACK sip:chat@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-{call}-inv;rport\r\n\
             Max-Forwards: 70\r\nFrom: <sip:alice@example.com>;tag=a-{call}\r\nTo: {to}\r\n\
             Call-ID: {call}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"
        )
    }
}

fn status(m: &str) -> u16 {
    m.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

fn header<'a>(m: &'a str, name: &str) -> Option<&'a str> {
    m.split("\r\n").find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

fn to_tag(m: &str) -> String {
    header(m, "To")
        .and_then(|t| t.split(";tag=").nth(1))
        .expect("a To tag")
        .to_string()
}

fn answer_path(m: &str) -> String {
    m.split("\r\n")
        .find_map(|l| l.strip_prefix("a=path:"))
        .expect("a=path in the answer")
        .to_string()
}

/// INVITE, 200, ACK and `ua.session.new`: (session id, our path, our To tag).
fn set_up(p: &Peer, sse: &mut Sse) -> (String, String, String) {
    p.send(&p.invite(&p.offer()));
    let ok = p.recv();
    assert_eq!(status(&ok), 200, "{ok}");
    let path = answer_path(&ok);
    let tag = to_tag(&ok);
    p.send(&p.in_dialog("ACK", &tag, 1));
    let (e, _) = sse.wait_for("ua.session.new", WAIT);
    let sid = e.data["session"].as_str().unwrap().to_string();
    assert!(path.contains(&sid), "{path} names {sid}");
    (sid, path, tag)
}

// ---------------------------------------------------------------------- MSRP frames

/// A SEND chunk: `range` is its Byte-Range value, `extra` more header lines (CRLF
/// each), `flag` `$`, `+` or `#`.
#[allow(clippy::too_many_arguments)]
fn chunk(
    to: &str,
    from: &str,
    tid: &str,
    mid: &str,
    range: &str,
    content_type: &str,
    extra: &str,
    body: &[u8],
    flag: char,
) -> Vec<u8> {
    let mut f = format!(
        "MSRP {tid} SEND\r\nTo-Path: {to}\r\nFrom-Path: {from}\r\nMessage-ID: {mid}\r\n\
         Byte-Range: {range}\r\n{extra}Content-Type: {content_type}\r\n\r\n"
    )
    .into_bytes();
    f.extend_from_slice(body);
    f.extend_from_slice(format!("\r\n-------{tid}{flag}\r\n").as_bytes());
    f
}

/// An established session: the server, its event stream, the SIP peer and its bound
/// MSRP connection.
struct Session {
    relay: Relay,
    api: SocketAddr,
    sse: Sse,
    peer: Peer,
    sid: String,
    /// Our (msrpd's) MSRP URI in the session.
    path: String,
    c: Client,
    sentinels: u32,
}

impl Session {
    fn new(call: &str) -> Session {
        let (relay, api, mut sse) = start();
        let peer = Peer::new(relay.addr, call);
        let (sid, path, _) = set_up(&peer, &mut sse);
        let c = relay.connect(&peer.path);
        let mut s = Session {
            relay,
            api,
            sse,
            peer,
            sid,
            path,
            c,
            sentinels: 0,
        };
        // The first SEND binds the connection (RFC 4975 §5.4); whatever it brings back
        // is the binding's, not a test step's.
        let _ = s.sentinel();
        s
    }

    fn send(&mut self, bytes: &[u8]) {
        self.c.send_raw(bytes);
    }

    /// Sends a sentinel SEND (default reports: a 200, no REPORT) and returns the frames
    /// that came before its 200 and the events that came before its
    /// `ua.message.received`: everything the steps before it caused.
    fn sentinel(&mut self) -> (Vec<Frame>, Vec<SseEvent>) {
        self.sentinels += 1;
        let n = self.sentinels;
        let tid = format!("sentinel{n:04}");
        let body = format!("sentinel {n}");
        let len = body.len();
        let f = chunk(
            &self.path,
            &self.peer.path,
            &tid,
            &format!("sentmsg{n:04}"),
            &format!("1-{len}/{len}"),
            "text/plain",
            "",
            body.as_bytes(),
            '$',
        );
        self.c.send_raw(&f);
        let mut frames = Vec::new();
        loop {
            let f = self.c.read_frame();
            if f.tid() == tid && f.is_response() {
                assert_eq!(f.kind(), "200", "the sentinel's answer: {}", f.head);
                break;
            }
            frames.push(f);
            assert!(
                frames.len() < 64,
                "no end of frames before the sentinel's 200"
            );
        }
        let mut events = Vec::new();
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let e = self.sse.next(left).unwrap_or_else(|| {
                panic!("no event for sentinel {n} within {WAIT:?}; got {events:?}")
            });
            if e.data["type"] == "ua.message.received" && e.data["body"] == body.as_str() {
                break;
            }
            events.push(e);
            assert!(events.len() < 64, "no end of events before the sentinel's");
        }
        (frames, events)
    }

    /// POSTs a message through the API; returns its message id.
    fn post(&self, body: &str, success_report: bool, failure_report: &str) -> String {
        let json = serde_json::json!({
            "content_type": "text/plain",
            "body": body,
            "success_report": success_report,
            "failure_report": failure_report,
        });
        let r = request(
            self.api,
            "POST",
            &format!("/v1/ua/sessions/{}/messages", self.sid),
            &[("Content-Type", "application/json")],
            json.to_string().as_bytes(),
        );
        assert_eq!(r.status, 202, "{}", r.text());
        r.json()["message_id"].as_str().unwrap().to_string()
    }

    /// The peer's response to msrpd's request `req` (To-Path: msrpd's URI, §7.2).
    fn respond(&mut self, req: &Frame, code: u16) {
        let tid = req.tid();
        let m = format!(
            "MSRP {tid} {code} Whatever\r\nTo-Path: {}\r\nFrom-Path: {}\r\n-------{tid}$\r\n",
            self.path, self.peer.path
        );
        self.c.send_raw(m.as_bytes());
    }

    /// A REPORT from the peer about message `mid` (§7.1.2).
    fn report(&mut self, tid: &str, mid: &str, range: &str, status: &str) {
        let m = format!(
            "MSRP {tid} REPORT\r\nTo-Path: {}\r\nFrom-Path: {}\r\nMessage-ID: {mid}\r\n\
             Byte-Range: {range}\r\nStatus: {status}\r\n-------{tid}$\r\n",
            self.path, self.peer.path
        );
        self.c.send_raw(m.as_bytes());
    }
}

// ---------------------------------------------- 1. peer -> msrpd: reports on the wire

/// Success-Report in the peer's SENDs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sr {
    Absent,
    Yes,
    No,
}

/// Failure-Report in the peer's SENDs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fr {
    Absent,
    Yes,
    No,
    Partial,
}

fn report_headers(sr: Sr, fr: Fr) -> String {
    let mut h = String::new();
    match sr {
        Sr::Absent => {}
        Sr::Yes => h.push_str("Success-Report: yes\r\n"),
        Sr::No => h.push_str("Success-Report: no\r\n"),
    }
    match fr {
        Fr::Absent => {}
        Fr::Yes => h.push_str("Failure-Report: yes\r\n"),
        Fr::No => h.push_str("Failure-Report: no\r\n"),
        Fr::Partial => h.push_str("Failure-Report: partial\r\n"),
    }
    h
}

/// What the peer sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// One whole text/plain SEND.
    Accepted,
    /// One whole SEND of a type the session does not accept.
    Refused,
    /// A text/plain message in three chunks, in Byte-Range order, the last with `$`.
    Chunked,
    /// A text/plain message in three chunks sent out of order (1, 3 with `$`, 2):
    /// whole only after the third one sent (RFC 4975 §7.3.1: any order).
    OutOfOrder,
    /// Two chunks of a message, the second ending with `#`: aborted.
    Aborted,
}

/// The expected table, from RFC 4975 (not from msrpd's code), for a SEND chunk an
/// endpoint receives. Absent Success-Report means `no`, absent Failure-Report means
/// `yes` (§7.1.1, §7.1.3).
///
/// | Failure-Report  | chunk accepted         | chunk refused (415)            |
/// |-----------------|------------------------|--------------------------------|
/// | absent / yes    | 200 response (§7.2)    | 415 response (§7.3.1, §7.1.4)  |
/// | partial         | nothing: no 200 (§7.1.4) | 415 response (§7.1.4 SHOULD, §7.3.1 MUST: "Failure-Report value is not no") |
/// | no              | nothing (§7.1.4)       | nothing: no response, no failure REPORT (§7.1.4 MUST NOT) |
///
/// Failure REPORTs: an endpoint that knows the error when it answers "SHOULD simply
/// include the appropriate error code in the transaction response" (§7.1.4); a
/// failure REPORT is for errors found later (a gateway). So none here, for any
/// Failure-Report value.
///
/// | Success-Report  | message complete and accepted | refused, aborted, incomplete |
/// |-----------------|-------------------------------|------------------------------|
/// | absent / no     | no REPORT (§7.1.3 MUST NOT)   | no REPORT                    |
/// | yes             | a success REPORT, whatever the Failure-Report (§7.1.3 MUST): To-Path the SEND's From-Path, From-Path our URI, the Message-ID, `Status: 000 200`, a Byte-Range, no Success-Report/Failure-Report headers (§7.1.2) | no success REPORT (nothing was delivered) |
///
/// §7.1.3 lets the receiver report per chunk or once per message; msrpd documents
/// (README) one REPORT for the whole message, `1-N/N`, once all of it is in: that is
/// what is asserted (any REPORT before the message is whole fails the test).
/// Each message that completes is one `ua.message.received`; refused and aborted
/// ones none.
fn inbound(kind: Kind, sr: Sr, fr: Fr) {
    let mut s = Session::new(&format!("in{kind:?}{sr:?}{fr:?}").to_lowercase());
    let body: &[u8] = b"one two three four five six seven eight nine";
    let n = body.len();
    let mid = "inmsg00000001";
    let (ct, refused) = match kind {
        Kind::Refused => ("application/octet-stream", true),
        _ => ("text/plain", false),
    };
    // (first byte, last byte, flag) of each chunk, in the order sent.
    let (a, b) = (15, 30);
    let pieces: Vec<(usize, usize, char)> = match kind {
        Kind::Accepted | Kind::Refused => vec![(1, n, '$')],
        Kind::Chunked => vec![(1, a, '+'), (a + 1, b, '+'), (b + 1, n, '$')],
        Kind::OutOfOrder => vec![(1, a, '+'), (b + 1, n, '$'), (a + 1, b, '+')],
        Kind::Aborted => vec![(1, a, '+'), (a + 1, b, '#')],
    };
    let hdrs = report_headers(sr, fr);
    let mut problems = Vec::new();
    for (k, &(first, last, flag)) in pieces.iter().enumerate() {
        let tid = format!("inchunk{k:04}");
        let f = chunk(
            &s.path,
            &s.peer.path,
            &tid,
            mid,
            &format!("{first}-{last}/{n}"),
            ct,
            &hdrs,
            &body[first - 1..last],
            flag,
        );
        s.send(&f);
        let (frames, events) = s.sentinel();
        let whole_now = !refused && kind != Kind::Aborted && k == pieces.len() - 1;
        // The response this chunk is owed.
        let want_response = match (fr, refused) {
            (Fr::Absent | Fr::Yes, false) => Some("200"),
            (Fr::Absent | Fr::Yes | Fr::Partial, true) => Some("415"),
            (Fr::Partial | Fr::No, false) | (Fr::No, true) => None,
        };
        let responses: Vec<&Frame> = frames.iter().filter(|f| f.is_response()).collect();
        match (want_response, responses.as_slice()) {
            (None, []) => {}
            (Some(code), [r]) if r.tid() == tid && r.kind() == code => {
                // §7.2: To-Path the first From-Path URI, From-Path our URI, `$`, no body.
                if r.header("To-Path") != Some(s.peer.path.as_str())
                    || r.header("From-Path") != Some(s.path.as_str())
                    || r.flag != Flag::Complete
                    || r.has_body
                {
                    problems.push(format!("chunk {k}: a malformed response {:?}", r.head));
                }
            }
            (want, got) => problems.push(format!(
                "chunk {k} ({first}-{last}/{n}{flag}): want response {want:?}, got {:?}",
                got.iter().map(|f| f.start()).collect::<Vec<_>>()
            )),
        }
        let reports: Vec<&Frame> = frames.iter().filter(|f| f.kind() == "REPORT").collect();
        let want_report = sr == Sr::Yes && whole_now;
        match (want_report, reports.as_slice()) {
            (false, []) => {}
            (true, [r]) => {
                let range = format!("1-{n}/{n}");
                let ok = r.header("To-Path") == Some(s.peer.path.as_str())
                    && r.header("From-Path") == Some(s.path.as_str())
                    && r.header("Message-ID") == Some(mid)
                    && r.header("Byte-Range") == Some(range.as_str())
                    && r.header("Status").is_some_and(|v| v.starts_with("000 200"))
                    && r.header("Success-Report").is_none()
                    && r.header("Failure-Report").is_none();
                if !ok {
                    problems.push(format!("chunk {k}: a wrong success REPORT {:?}", r.head));
                }
            }
            (want, got) => problems.push(format!(
                "chunk {k} ({first}-{last}/{n}{flag}): want {} REPORT, got {:?}",
                if want { "one success" } else { "no" },
                got.iter().map(|f| &f.head).collect::<Vec<_>>()
            )),
        }
        let others: Vec<&Frame> = frames
            .iter()
            .filter(|f| !f.is_response() && f.kind() != "REPORT")
            .collect();
        if !others.is_empty() {
            problems.push(format!("chunk {k}: unexpected frames {others:?}"));
        }
        let received: Vec<&SseEvent> = events
            .iter()
            .filter(|e| e.data["type"] == "ua.message.received")
            .collect();
        match (whole_now, received.as_slice()) {
            (false, []) => {}
            (true, [e])
                if e.data["message_id"] == mid
                    && e.data["session"] == s.sid.as_str()
                    && e.data["body"].as_str().map(str::as_bytes) == Some(body) => {}
            (want, got) => problems.push(format!(
                "chunk {k}: want {} ua.message.received, got {got:?}",
                if want { "one" } else { "no" }
            )),
        }
    }
    assert!(
        problems.is_empty(),
        "{kind:?}, Success-Report {sr:?}, Failure-Report {fr:?}:\n{}",
        problems.join("\n")
    );
}

/// One test per combination, so a defect is named by the tests it fails.
macro_rules! inbound_tests {
    ($($name:ident: $kind:ident $sr:ident $fr:ident $(, $why:literal)?;)*) => {$(
        #[test]
        $(#[ignore = $why])?
        fn $name() {
            inbound(Kind::$kind, Sr::$sr, Fr::$fr);
        }
    )*};
}

inbound_tests! {
    in_accepted_sr_absent_fr_absent: Accepted Absent Absent;
    in_accepted_sr_absent_fr_yes: Accepted Absent Yes;
    in_accepted_sr_absent_fr_no: Accepted Absent No;
    in_accepted_sr_absent_fr_partial: Accepted Absent Partial;
    in_accepted_sr_yes_fr_absent: Accepted Yes Absent;
    in_accepted_sr_yes_fr_yes: Accepted Yes Yes;
    in_accepted_sr_yes_fr_no: Accepted Yes No;
    in_accepted_sr_yes_fr_partial: Accepted Yes Partial;
    in_accepted_sr_no_fr_absent: Accepted No Absent;
    in_accepted_sr_no_fr_yes: Accepted No Yes;
    in_accepted_sr_no_fr_no: Accepted No No;
    in_accepted_sr_no_fr_partial: Accepted No Partial;

    in_refused_sr_absent_fr_absent: Refused Absent Absent;
    in_refused_sr_absent_fr_yes: Refused Absent Yes;
    in_refused_sr_absent_fr_no: Refused Absent No;
    in_refused_sr_absent_fr_partial: Refused Absent Partial;
    in_refused_sr_yes_fr_absent: Refused Yes Absent;
    in_refused_sr_yes_fr_yes: Refused Yes Yes;
    in_refused_sr_yes_fr_no: Refused Yes No;
    in_refused_sr_yes_fr_partial: Refused Yes Partial;
    in_refused_sr_no_fr_absent: Refused No Absent;
    in_refused_sr_no_fr_yes: Refused No Yes;
    in_refused_sr_no_fr_no: Refused No No;
    in_refused_sr_no_fr_partial: Refused No Partial;

    in_chunked_sr_absent_fr_absent: Chunked Absent Absent;
    in_chunked_sr_absent_fr_yes: Chunked Absent Yes;
    in_chunked_sr_absent_fr_no: Chunked Absent No;
    in_chunked_sr_absent_fr_partial: Chunked Absent Partial;
    in_chunked_sr_yes_fr_absent: Chunked Yes Absent;
    in_chunked_sr_yes_fr_yes: Chunked Yes Yes;
    in_chunked_sr_yes_fr_no: Chunked Yes No;
    in_chunked_sr_yes_fr_partial: Chunked Yes Partial;
    in_chunked_sr_no_fr_absent: Chunked No Absent;
    in_chunked_sr_no_fr_yes: Chunked No Yes;
    in_chunked_sr_no_fr_no: Chunked No No;
    in_chunked_sr_no_fr_partial: Chunked No Partial;

    in_out_of_order_sr_yes_fr_absent: OutOfOrder Yes Absent;
    in_out_of_order_sr_yes_fr_partial: OutOfOrder Yes Partial;
    in_out_of_order_sr_no_fr_yes: OutOfOrder No Yes;

    in_aborted_sr_absent_fr_absent: Aborted Absent Absent;
    in_aborted_sr_absent_fr_yes: Aborted Absent Yes;
    in_aborted_sr_absent_fr_no: Aborted Absent No;
    in_aborted_sr_absent_fr_partial: Aborted Absent Partial;
    in_aborted_sr_yes_fr_absent: Aborted Yes Absent;
    in_aborted_sr_yes_fr_yes: Aborted Yes Yes;
    in_aborted_sr_yes_fr_no: Aborted Yes No;
    in_aborted_sr_yes_fr_partial: Aborted Yes Partial;
    in_aborted_sr_no_fr_absent: Aborted No Absent;
    in_aborted_sr_no_fr_yes: Aborted No Yes;
    in_aborted_sr_no_fr_no: Aborted No No;
    in_aborted_sr_no_fr_partial: Aborted No Partial;
}

// --------------------------------------------------- 2. msrpd -> peer: what comes back

/// What the peer does with msrpd's SEND.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    /// `200 OK` (only for Failure-Report yes: partial and no forbid it, §7.1.4).
    Ok,
    /// An error response with this code (not for Failure-Report no, §7.1.4).
    Error(u16),
    /// A success REPORT for the whole message (after a 200 when Failure-Report is yes).
    SuccessReport,
    /// A failure REPORT `000 <code>` (after a 200 when Failure-Report is yes: an error
    /// found later, §7.1.4).
    FailureReport(u16),
    /// No response (the Failure-Report no and partial way of succeeding).
    Silence,
}

/// The expected events, from RFC 4975: the sender "MUST inform the user" of a
/// non-recoverable error response (Failure-Report yes or partial, §7.1.1); a REPORT's
/// `Status: 000 <code>` is read as that response code (§7.3.2), for the Message-ID it
/// names; a 200 response is a hop's acknowledgement, nothing to inform of, and no
/// response at all is how a Failure-Report no or partial SEND succeeds. In msrpd each
/// "inform" is one `ua.report.received` (README): `status`, `message_id`, `byte_range`,
/// `source` (`response` for a response, `report` for a REPORT, `timeout`).
/// msrpd's SEND: Message-ID the API's, Byte-Range `1-N/N` (short message, §7.1.1),
/// Success-Report `yes` exactly when asked (absent or `no` otherwise), Failure-Report
/// as asked (absent or `yes` for yes). msrpd answers no REPORT (§7.1.2).
fn outbound(success_report: bool, failure_report: &str, answer: Answer) {
    let mut s = Session::new(
        &format!("out{success_report}{failure_report}{answer:?}")
            .to_lowercase()
            .replace(['(', ')'], ""),
    );
    let text = format!("from msrpd: {answer:?}");
    let n = text.len();
    let mid = s.post(&text, success_report, failure_report);
    let send = s.c.read_frame();
    assert_eq!(send.kind(), "SEND", "{}", send.head);
    assert_eq!(send.header("To-Path"), Some(s.peer.path.as_str()));
    assert_eq!(send.header("From-Path"), Some(s.path.as_str()));
    assert_eq!(
        send.header("Message-ID"),
        Some(mid.as_str()),
        "{}",
        send.head
    );
    let range = format!("1-{n}/{n}");
    assert_eq!(
        send.header("Byte-Range"),
        Some(range.as_str()),
        "{}",
        send.head
    );
    assert_eq!(send.body, text.as_bytes());
    assert_eq!(send.flag, Flag::Complete);
    let sr = send.header("Success-Report");
    if success_report {
        assert_eq!(sr, Some("yes"), "{}", send.head);
    } else {
        assert!(sr.is_none() || sr == Some("no"), "{}", send.head);
    }
    let fr = send.header("Failure-Report");
    match failure_report {
        "yes" => assert!(fr.is_none() || fr == Some("yes"), "{}", send.head),
        other => assert_eq!(fr, Some(other), "{}", send.head),
    }
    assert_eq!(send.headers("Message-ID").len(), 1, "{}", send.head);
    let want: Option<(u16, &str)> = match answer {
        Answer::Ok | Answer::Silence => None,
        Answer::Error(code) => {
            s.respond(&send, code);
            Some((code, "response"))
        }
        Answer::SuccessReport => {
            if failure_report == "yes" {
                s.respond(&send, 200);
            }
            s.report("peerrep00001", &mid, &range, "000 200 OK");
            Some((200, "report"))
        }
        Answer::FailureReport(code) => {
            if failure_report == "yes" {
                s.respond(&send, 200);
            }
            s.report("peerrep00002", &mid, &range, &format!("000 {code} Failed"));
            Some((code, "report"))
        }
    };
    if answer == Answer::Ok {
        s.respond(&send, 200);
    }
    let (frames, events) = s.sentinel();
    assert!(
        frames.is_empty(),
        "msrpd sent more (REPORTs are never answered, §7.1.2): {frames:?}"
    );
    let reports: Vec<&SseEvent> = events
        .iter()
        .filter(|e| e.data["type"] == "ua.report.received")
        .collect();
    match (want, reports.as_slice()) {
        (None, []) => {}
        (Some((code, source)), [e]) => {
            assert_eq!(e.data["message_id"], mid.as_str(), "{e:?}");
            assert_eq!(e.data["session"], s.sid.as_str(), "{e:?}");
            assert_eq!(e.data["status"], code, "{e:?}");
            assert_eq!(e.data["source"], source, "{e:?}");
            assert_eq!(e.data["byte_range"], range.as_str(), "{e:?}");
        }
        (want, got) => panic!("want {want:?}, got events {got:?}"),
    }
}

macro_rules! outbound_tests {
    ($($name:ident: $sr:literal $fr:literal $answer:expr $(, $why:literal)?;)*) => {$(
        #[test]
        $(#[ignore = $why])?
        fn $name() {
            outbound($sr, $fr, $answer);
        }
    )*};
}

outbound_tests! {
    out_sr_no_fr_yes_ok: false "yes" Answer::Ok;
    out_sr_yes_fr_yes_ok: true "yes" Answer::Ok;
    out_sr_no_fr_yes_415: false "yes" Answer::Error(415);
    out_sr_yes_fr_yes_481: true "yes" Answer::Error(481);
    out_sr_yes_fr_yes_success_report: true "yes" Answer::SuccessReport;
    out_sr_no_fr_yes_failure_report: false "yes" Answer::FailureReport(415);
    out_sr_yes_fr_yes_failure_report: true "yes" Answer::FailureReport(486);

    out_sr_no_fr_partial_silence: false "partial" Answer::Silence;
    out_sr_yes_fr_partial_silence: true "partial" Answer::Silence;
    out_sr_no_fr_partial_415: false "partial" Answer::Error(415);
    out_sr_yes_fr_partial_481: true "partial" Answer::Error(481);
    out_sr_yes_fr_partial_success_report: true "partial" Answer::SuccessReport;
    out_sr_no_fr_partial_failure_report: false "partial" Answer::FailureReport(415);

    out_sr_no_fr_no_silence: false "no" Answer::Silence;
    out_sr_yes_fr_no_silence: true "no" Answer::Silence;
    out_sr_yes_fr_no_success_report: true "no" Answer::SuccessReport;
}

/// REPORTs msrpd cannot place: one for a Message-ID it never sent ("SHOULD silently
/// ignore", §7.1.1 and §7.1.2), and none of them answered (§7.1.2).
#[test]
fn out_report_for_an_unknown_message_id_is_ignored() {
    let mut s = Session::new("outunknownrep");
    s.report("peerrep00003", "nosuchmessage1", "1-5/5", "000 200 OK");
    s.report("peerrep00004", "nosuchmessage2", "1-5/5", "000 415 Nope");
    let (frames, events) = s.sentinel();
    assert!(frames.is_empty(), "REPORTs answered: {frames:?}");
    assert!(
        events.is_empty(),
        "events for REPORTs about messages msrpd never sent: {events:?}"
    );
}

/// A SEND nobody answers (RFC 4975 §7.1.1): with Failure-Report yes the sender runs a
/// 30 s timer and "MUST inform the user that the request probably failed" (here a
/// `ua.report.received` with source `timeout`); with `partial` it "does not have to run
/// a timer" and with `no` there is no response to wait for: a peer that succeeds says
/// nothing then, so a timeout report would be false. A SEND answered 200 does not time
/// out. All at once, so one 30 s wait covers them; every wait bounded.
#[test]
fn out_timeouts_only_for_failure_report_yes() {
    timeouts(&["yes", "no", "answered"]);
}

/// The `partial` half of the above: a partial SEND's peer never sends 200 (§7.1.4
/// "MUST NOT send a 200 transaction response"), so silence is its success, and the
/// sender "does not have to run a timer" (§7.1.1): a timeout report after 30 s tells
/// the user a delivered message failed.
#[test]
fn out_no_timeout_for_failure_report_partial() {
    timeouts(&["yes", "partial"]);
}

/// Posts one message per Failure-Report in `frs` (`answered`: yes, answered 200) with
/// each Success-Report, answers none but the `answered` ones, and checks that only the
/// `yes` ones time out.
fn timeouts(frs: &[&str]) {
    let mut s = Session::new(&format!("outtimeouts{}", frs.len()));
    let mut want = Vec::new();
    let mut quiet = Vec::new();
    let posted = Instant::now();
    for sr in [false, true] {
        for &fr in frs {
            let answered = fr == "answered";
            let text = format!("unanswered {sr} {fr}");
            let mid = s.post(&text, sr, if answered { "yes" } else { fr });
            let send = s.c.read_frame();
            assert_eq!(send.header("Message-ID"), Some(mid.as_str()));
            if answered {
                s.respond(&send, 200);
            }
            if fr == "yes" {
                want.push((mid, format!("1-{n}/{n}", n = text.len())));
            } else {
                quiet.push(mid);
            }
        }
    }
    let mut got = Vec::new();
    let mut extra = Vec::new();
    let deadline = posted + Duration::from_secs(40);
    while got.len() < want.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        let e = s
            .sse
            .next(left)
            .unwrap_or_else(|| panic!("timeouts for {want:?} within 40 s: got {got:?}, {extra:?}"));
        if e.data["type"] != "ua.report.received" {
            continue;
        }
        if let Some((_, range)) = want
            .iter()
            .find(|(m, _)| e.data["message_id"] == m.as_str())
        {
            assert_eq!(e.data["byte_range"], range.as_str(), "{e:?}");
            assert!(
                !got.iter()
                    .any(|g: &SseEvent| g.data["message_id"] == e.data["message_id"]),
                "two reports for one message: {e:?}"
            );
            got.push(e);
        } else {
            extra.push(e);
        }
    }
    let waited = posted.elapsed();
    assert!(
        waited >= Duration::from_secs(29),
        "timed out after {waited:?}, before 30 s"
    );
    for e in &got {
        assert_eq!(e.data["session"], s.sid.as_str(), "{e:?}");
        assert_eq!(e.data["status"], 408, "{e:?}");
        assert_eq!(e.data["source"], "timeout", "{e:?}");
    }
    // The others were posted at the same moment: had they a timer, it fires now.
    let (_, events) = s.sentinel();
    let until = Instant::now() + Duration::from_secs(2);
    while let Some(e) = s.sse.next(until.saturating_duration_since(Instant::now())) {
        extra.push(e);
    }
    extra.extend(events);
    let extra: Vec<&SseEvent> = extra
        .iter()
        .filter(|e| e.data["type"] == "ua.report.received")
        .collect();
    assert!(
        extra.is_empty(),
        "reports for {quiet:?}, which must not time out: {extra:?}"
    );
}

// ----------------------------------------------------------- 3. hostile SDP offers

/// Nothing of a session: no listing, and (checked at the end) no `ua.session.new`.
fn no_sessions(api: SocketAddr, after: &str) {
    let list = request(api, "GET", "/v1/ua/sessions", &[], b"").json();
    assert_eq!(
        list["sessions"].as_array().map(Vec::len),
        Some(0),
        "a session after {after}: {list}"
    );
}

/// After the hostile INVITEs a good one is still answered, and its `ua.session.new`
/// is the first such event the stream has seen.
fn still_serving(relay: &Relay, sse: &mut Sse) {
    let p = Peer::new(relay.addr, "goodafter01");
    p.send(&p.invite(&p.offer()));
    let ok = p.recv();
    assert_eq!(status(&ok), 200, "{ok}");
    p.send(&p.in_dialog("ACK", &to_tag(&ok), 1));
    let (e, before) = sse.wait_for("ua.session.new", WAIT);
    assert!(
        answer_path(&ok).contains(e.data["session"].as_str().unwrap()),
        "{e:?}"
    );
    assert!(
        before.iter().all(|e| !e.data["type"]
            .as_str()
            .unwrap_or("")
            .starts_with("ua.session")),
        "session events for the hostile INVITEs: {before:?}"
    );
}

/// An INVITE over UDP with `content_type` and `body`; returns the final response after
/// ACKing it.
fn udp_offer(relay: &Relay, call: &str, content_type: &str, body: &str) -> String {
    let p = Peer::new(relay.addr, call);
    let inv = p.invite_as(
        "UDP",
        &format!("127.0.0.1:{}", p.port()),
        content_type,
        body,
    );
    p.send(&inv);
    let r = p.recv();
    p.send(&p.ack_rejection(&r));
    r
}

/// Offers the user agent cannot use (RFC 3264 §6: no acceptable stream, "the answerer
/// MUST reject the offer ... 488"; RFC 3261 §21.4.26 488 Not Acceptable Here; RFC 4975
/// §8.2 a=path is mandatory, §8.6 accept-types).
#[test]
fn sdp_offers_msrpd_cannot_use_get_488() {
    let (relay, api, mut sse) = start();
    let probe = Peer::new(relay.addr, "probe");
    let port = probe.port();
    let path = probe.path.clone();
    let msrp_m = format!("m=message {port} TCP/MSRP *");
    let types = "a=accept-types:text/plain\r\n";
    let cases: Vec<(&str, String)> = vec![
        ("no a=path", probe.offer_with(&msrp_m, types)),
        (
            "RTP/AVP only",
            probe.offer_with("m=audio 4000 RTP/AVP 0", "a=rtpmap:0 PCMU/8000\r\n"),
        ),
        (
            "m=message over RTP/AVP",
            probe.offer_with(
                "m=message 4000 RTP/AVP *",
                &format!("{types}a=path:{path}\r\n"),
            ),
        ),
        (
            "port 0",
            probe.offer_with(
                "m=message 0 TCP/MSRP *",
                &format!("{types}a=path:{path}\r\n"),
            ),
        ),
        (
            "garbage accept-types",
            probe.offer_with(
                &msrp_m,
                &format!("a=accept-types:;;; @@/@@ // */ /* ,\r\na=path:{path}\r\n"),
            ),
        ),
        (
            "empty accept-types",
            probe.offer_with(&msrp_m, &format!("a=accept-types:\r\na=path:{path}\r\n")),
        ),
        (
            "no common accept-types",
            probe.offer_with(
                &msrp_m,
                &format!("a=accept-types:image/png\r\na=path:{path}\r\n"),
            ),
        ),
        (
            "garbage a=path",
            probe.offer_with(&msrp_m, &format!("{types}a=path:not a uri at all\r\n")),
        ),
    ];
    for (i, (what, sdp)) in cases.iter().enumerate() {
        let r = udp_offer(&relay, &format!("bad{i:02}sdp"), "application/sdp", sdp);
        assert_eq!(status(&r), 488, "{what}: {r}");
        no_sessions(api, what);
    }
    still_serving(&relay, &mut sse);
}

/// Accept-types with control bytes: RFC 8866 §9 lets an attribute value be any
/// `byte-string` (every octet but NUL, CR and LF; §5 says the same of text fields),
/// so this is valid SDP whose accept-types are MSRP garbage (RFC 4975 §8.6, §9): 488,
/// as for the printable garbage, not 400 (RFC 3261 §21.4.1: malformed syntax).
#[test]
fn control_bytes_in_accept_types_get_488() {
    let (relay, api, mut sse) = start();
    let probe = Peer::new(relay.addr, "probe");
    let sdp = probe.offer_with(
        &format!("m=message {} TCP/MSRP *", probe.port()),
        &format!(
            "a=accept-types:\x01\x02 \x7f/\x1b\r\na=path:{}\r\n",
            probe.path
        ),
    );
    let r = udp_offer(&relay, "ctlbytes01", "application/sdp", &sdp);
    assert_eq!(status(&r), 488, "{r}");
    no_sessions(api, "control bytes in accept-types");
    still_serving(&relay, &mut sse);
}

/// No offer at all (RFC 3261 §13.2.1 lets an INVITE leave the offer to the 200; msrpd
/// only answers offers): 488.
#[test]
fn an_invite_without_sdp_gets_488() {
    let (relay, api, mut sse) = start();
    let r = udp_offer(&relay, "nosdp0001", "", "");
    assert_eq!(status(&r), 488, "{r}");
    no_sessions(api, "an INVITE without a body");
    still_serving(&relay, &mut sse);
}

/// A body that is not SDP by its Content-Type, even when the bytes are an offer
/// (RFC 3261 §8.2.3: a body type the UAS does not understand gets 415, with an Accept
/// header listing what it does; §21.4.13).
#[test]
fn an_invite_with_a_non_sdp_body_gets_415_with_accept() {
    let (relay, api, mut sse) = start();
    let probe = Peer::new(relay.addr, "probe");
    for (i, ct) in ["text/plain", "application/json", "multipart/x-weird"]
        .iter()
        .enumerate()
    {
        let r = udp_offer(&relay, &format!("nonsdp{i:02}"), ct, &probe.offer());
        assert_eq!(status(&r), 415, "{ct}: {r}");
        assert!(
            header(&r, "Accept").is_some_and(|a| a.contains("application/sdp")),
            "{ct}: no Accept: application/sdp in {r}"
        );
        no_sessions(api, ct);
    }
    still_serving(&relay, &mut sse);
}

/// Bytes labelled SDP that are not SDP: 400 (README: "SDP that is not SDP gets 400";
/// RFC 3261 §21.4.1 a malformed request) or 488 (an offer that cannot be used).
#[test]
fn an_invite_whose_sdp_does_not_parse_gets_400_or_488() {
    let (relay, api, mut sse) = start();
    for (i, body) in [
        "hello, this is not SDP\r\n",
        "v=0\r\n\x00\x01\x02\r\n",
        "v=0\r\no=\r\nm=message\r\n",
    ]
    .iter()
    .enumerate()
    {
        let r = udp_offer(&relay, &format!("junk{i:02}sdp"), "application/sdp", body);
        assert!(matches!(status(&r), 400 | 488), "{body:?}: {r}");
        no_sessions(api, body);
    }
    still_serving(&relay, &mut sse);
}

/// An offer padded with `a=` lines to exactly `size` bytes.
fn big_offer(probe: &Peer, size: usize) -> String {
    let mut sdp = probe.offer();
    let line = format!("a=x-pad:{}\r\n", "p".repeat(100));
    while size - sdp.len() >= line.len() + 6 {
        sdp.push_str(&line);
    }
    let rest = size - sdp.len();
    sdp.push_str(&format!("a=y:{}\r\n", "q".repeat(rest - 6)));
    assert_eq!(sdp.len(), size);
    sdp
}

/// A huge offer over UDP (about 60 KiB, under the 65,507-byte datagram limit): over
/// the SIP layer's 16 KiB message limit, 513 Message Too Large (RFC 3261 §21.5.14;
/// 400 is for malformed syntax, §21.4.1, and the request is well formed). No session,
/// and the server serves on.
#[test]
fn a_60_kib_sdp_over_udp_gets_513() {
    let (relay, api, mut sse) = start();
    let probe = Peer::new(relay.addr, "probe");
    let r = udp_offer(
        &relay,
        "bigudp001",
        "application/sdp",
        &big_offer(&probe, 60 * 1024),
    );
    assert_eq!(status(&r), 513, "{}", &r[..r.len().min(300)]);
    no_sessions(api, "a 60 KiB offer over UDP");
    still_serving(&relay, &mut sse);
}

/// The same over TCP, where size is no transport limit: a 60 KiB and a full 64 KiB
/// offer get 513 (RFC 3261 §21.5.14) on the connection; no session; the server
/// serves on.
#[test]
fn a_64_kib_sdp_over_tcp_gets_513() {
    let (relay, api, mut sse) = start();
    let probe = Peer::new(relay.addr, "probe");
    let mut got = Vec::new();
    for size in [60 * 1024, 64 * 1024] {
        let mut t = common::sip::SipTcp::connect(relay.addr);
        let sent_by = t.local().to_string();
        let p = Peer::new(relay.addr, &format!("bigtcp{size}"));
        let inv = p.invite_as("TCP", &sent_by, "application/sdp", &big_offer(&probe, size));
        t.send(inv.as_bytes());
        let r = t.response();
        no_sessions(api, &format!("a {size}-byte offer over TCP"));
        got.push((
            size,
            r.as_deref().map(status),
            r.map(|r| r.lines().next().unwrap_or("").to_string()),
        ));
    }
    still_serving(&relay, &mut sse);
    assert!(
        got.iter().all(|(_, code, _)| *code == Some(513)),
        "want 513 for each: {got:?}"
    );
}

/// An offer just under the 16 KiB the SIP layer takes: not too large for SIP, and
/// still an MSRP offer msrpd can use (padding attributes are ignored, RFC 8866 §5.13):
/// answered 200. It shows the limit is where the 513 test says it is.
#[test]
fn a_15_kib_sdp_is_answered() {
    let (relay, api, mut sse) = start();
    let p = Peer::new(relay.addr, "mid15kib");
    p.send(&p.invite(&big_offer(&p, 15 * 1024)));
    let ok = p.recv();
    assert_eq!(status(&ok), 200, "{}", &ok[..ok.len().min(300)]);
    p.send(&p.in_dialog("ACK", &to_tag(&ok), 1));
    let (e, _) = sse.wait_for("ua.session.new", WAIT);
    assert!(answer_path(&ok).contains(e.data["session"].as_str().unwrap()));
    let _ = ua_session(api, e.data["session"].as_str().unwrap());
}

// -------------------------------------------------- 4. MSRP to sessions that do not exist

/// Session ids shaped like msrpd's user agent ids (`u` + 4 + 16 hex digits: core 0,
/// and cores that do not exist) and ids that do not parse as one.
/// (The ones naming a core this one-worker server does not have are in
/// [`NO_SUCH_CORE_IDS`].)
const UNKNOWN_IDS: [&str; 7] = [
    "u0000ffffffffffffffff",
    "u00000000000000000001",
    "u0000ffff",
    "U0000FFFFFFFFFFFFFFFF",
    "u0000ffffffffffffffff00",
    "nosuchsession",
    "u0000gggggggggggggggg",
];

/// User agent session ids, well formed, naming cores 0x00ff and 0xffff: no worker.
const NO_SUCH_CORE_IDS: [&str; 2] = ["u00ff0123456789abcdef", "uffffffffffffffffffff"];

/// RFC 4975 §7.3: a request whose To-Path does not map to an existing session gets
/// 481 (To-Path the request's From-Path, §7.2), on a connection bound to nothing.
#[test]
fn msrp_to_unknown_sessions_gets_481() {
    unknown_ids_get_481(&UNKNOWN_IDS);
}

/// The same for ids whose core part names a worker that does not exist: still no
/// such session, still 481 (§7.3), and the connection keeps working after.
#[test]
fn msrp_to_a_session_id_on_a_core_that_does_not_exist_gets_481() {
    unknown_ids_get_481(&NO_SUCH_CORE_IDS);
}

fn unknown_ids_get_481(ids: &[&str]) {
    let (relay, _api, _sse) = start();
    let port = relay.addr.port();
    let me = "msrp://127.0.0.1:9/unknownpeer;tcp";
    let mut c = relay.connect(me);
    // Last, one that does get its 481: the connection still works.
    let ids = ids.iter().chain(["u0000ffffffffffffffff"].iter());
    for (i, id) in ids.enumerate() {
        let to = format!("msrp://127.0.0.1:{port}/{id};tcp");
        let tid = format!("unk{i:04}a");
        let f = chunk(
            &to,
            me,
            &tid,
            "unkmsg01",
            "1-2/2",
            "text/plain",
            "",
            b"hi",
            '$',
        );
        c.send_raw(&f);
        let r = c
            .try_read_frame(Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("{id}: no answer: {e}"));
        assert_eq!(
            r.start().split(' ').take(3).collect::<Vec<_>>(),
            ["MSRP", tid.as_str(), "481"],
            "{id}: {}",
            r.head
        );
        assert_eq!(r.header("To-Path"), Some(me), "{id}: {}", r.head);
    }
    assert!(
        c.try_read_frame(Duration::from_millis(300)).is_err(),
        "more than the 481s came back"
    );
}

/// RFC 4975 §7.3: "if the Failure-Report header field had a value of \"no\", then no
/// error report would be sent" (and §7.1.4: with `no` the receiver "MUST NOT send a
/// transaction response"); a REPORT is never answered (§7.1.2). So a SEND with
/// Failure-Report no and a REPORT, each to an unknown session, get nothing; a SEND
/// after them (default Failure-Report) gets its 481, and is the first thing back.
#[test]
fn msrp_to_unknown_sessions_with_failure_report_no_gets_nothing() {
    let (relay, _api, _sse) = start();
    let port = relay.addr.port();
    let me = "msrp://127.0.0.1:9/unknownpeer;tcp";
    let mut c = relay.connect(me);
    let mut problems = Vec::new();
    for (i, id) in UNKNOWN_IDS.iter().enumerate() {
        let to = format!("msrp://127.0.0.1:{port}/{id};tcp");
        let fr_no = "Failure-Report: no\r\n";
        let (b, d) = (format!("unk{i:04}b"), format!("unk{i:04}d"));
        c.send_raw(&chunk(
            &to,
            me,
            &b,
            "unkmsg02",
            "1-2/2",
            "text/plain",
            fr_no,
            b"hi",
            '$',
        ));
        c.send_raw(
            format!(
                "MSRP unk{i:04}c REPORT\r\nTo-Path: {to}\r\nFrom-Path: {me}\r\nMessage-ID: unkmsg01\r\n\
                 Byte-Range: 1-2/2\r\nStatus: 000 200 OK\r\n-------unk{i:04}c$\r\n"
            )
            .as_bytes(),
        );
        c.send_raw(&chunk(
            &to,
            me,
            &d,
            "unkmsg03",
            "1-2/2",
            "text/plain",
            "",
            b"hi",
            '$',
        ));
        for _ in 0..4 {
            let r = c
                .try_read_frame(Duration::from_secs(5))
                .unwrap_or_else(|e| panic!("{id}: no 481 for {d}: {e}"));
            if r.tid() == d {
                assert_eq!(r.kind(), "481", "{id}: {}", r.head);
                break;
            }
            problems.push(format!("{id}: {}", r.start()));
        }
    }
    assert!(problems.is_empty(), "answered:\n{}", problems.join("\n"));
}

/// The same on a connection bound to a real session: a SEND to another (unknown) id
/// on it gets 481, and the session's own traffic goes on.
#[test]
fn msrp_to_an_unknown_session_on_a_bound_connection_gets_481() {
    let mut s = Session::new("unkbound01");
    let port = s.relay.addr.port();
    let me = s.peer.path.clone();
    for (i, id) in ["u0000ffffffffffffffff", "nosuchsession"]
        .iter()
        .enumerate()
    {
        let to = format!("msrp://127.0.0.1:{port}/{id};tcp");
        s.send(&chunk(
            &to,
            &me,
            &format!("unkb{i:04}"),
            "unkmsgbb",
            "1-2/2",
            "text/plain",
            "",
            b"hi",
            '$',
        ));
        let (frames, events) = s.sentinel();
        assert_eq!(frames.len(), 1, "{id}: {frames:?}");
        assert_eq!(frames[0].tid(), format!("unkb{i:04}"), "{id}");
        assert_eq!(frames[0].kind(), "481", "{id}: {}", frames[0].head);
        assert!(events.is_empty(), "{id}: {events:?}");
    }
}

/// A message over 2048 octets (RFC 4975 §7.1.1: such a chunk must be interruptible,
/// so its range-end "MUST take the value of \"*\""): msrpd's SEND says `1-*/N`, all
/// its pieces carry the one Message-ID and the asked report headers, and an error
/// response to it is reported on the whole message.
#[test]
fn out_a_long_message_is_interruptible_and_reported_whole() {
    let mut s = Session::new("outlong01");
    let text = "0123456789abcdef".repeat(200);
    let n = text.len();
    let mid = s.post(&text, true, "partial");
    let mut got = Vec::new();
    let mut first = None;
    for _ in 0..64 {
        let f = s.c.read_frame();
        assert_eq!(f.kind(), "SEND", "{}", f.head);
        assert_eq!(f.header("Message-ID"), Some(mid.as_str()), "{}", f.head);
        assert_eq!(f.header("Success-Report"), Some("yes"), "{}", f.head);
        assert_eq!(f.header("Failure-Report"), Some("partial"), "{}", f.head);
        let range = f.header("Byte-Range").unwrap().to_string();
        let start: usize = range.split('-').next().unwrap().parse().unwrap();
        assert_eq!(start, got.len() + 1, "pieces in order: {range}");
        assert!(range.ends_with(&format!("-*/{n}")), "{range}");
        got.extend_from_slice(&f.body);
        let done = f.flag == Flag::Complete;
        first.get_or_insert(f);
        if done {
            break;
        }
    }
    assert_eq!(got, text.as_bytes());
    let first = first.unwrap();
    s.respond(&first, 415);
    let (frames, events) = s.sentinel();
    assert!(frames.is_empty(), "{frames:?}");
    let reports: Vec<&SseEvent> = events
        .iter()
        .filter(|e| e.data["type"] == "ua.report.received")
        .collect();
    assert_eq!(reports.len(), 1, "{events:?}");
    assert_eq!(reports[0].data["message_id"], mid.as_str());
    assert_eq!(reports[0].data["status"], 415);
    assert_eq!(reports[0].data["source"], "response");
    assert_eq!(reports[0].data["byte_range"], format!("1-{n}/{n}").as_str());
}
