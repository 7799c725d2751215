//! The answer to a request that no user agent or gateway rule owns (RFC 3261 §8.2, UAS
//! behaviour), as a pure function: [`answer_stateless`] takes a parsed request and a
//! [`Policy`] and gives the [`Answer`] (status, reason, extra headers), which
//! [`Answer::write`] turns into the response. ACK is never answered (§17.2.3: it has no
//! response).
//!
//! The checks, in the order §8.2 gives them, first match wins:
//! 1. larger than [`Policy::max_message`]: 513 (§21.5.14);
//! 2. [`Message::check`]: 505 for another SIP version, 400 for a missing or bad
//!    mandatory header, a CSeq method that is not the request's, a datagram shorter than
//!    its Content-Length; the reason phrase says which (§8.2.6.1 lets it);
//! 3. method (§8.2.1): unknown 501, known but not in [`Policy::allow`] 405 with Allow;
//! 4. Request-URI scheme not in [`Policy::schemes`]: 416 (§8.2.2.1);
//! 5. a loop: a Via with one of our sent-by values and a branch we made
//!    ([`super::ids::branch_core`]), i.e. a request we sent came back: 482 (§8.2.2.2,
//!    the §16.3 rule applied to a UA); or a merged request, which the caller tells
//!    [`answer`] (the transaction table knows: [`super::txn::Transactions::is_merged`],
//!    no To tag and the Call-ID, From tag and CSeq of another ongoing server
//!    transaction): 482 (§8.2.2.2);
//! 6. Max-Forwards 0: 483 (§16.3 item 3); an OPTIONS is answered anyway, as §16.3 lets
//!    the element it reached act as its final recipient;
//! 7. a Require (Proxy-Require is for proxies and ignored, §8.2.2.3) with a tag not in
//!    [`Policy::supported`]: 420 with Unsupported (not for CANCEL, §8.2.2.3);
//! 8. OPTIONS: 200 with Allow, Accept, Accept-Encoding, Accept-Language and Supported
//!    (§11.2);
//! 9. in a dialog (To tag) or CANCEL: 481 (§12.2.2, §9.2);
//! 10. anything else (INVITE, MESSAGE, ...): [`Policy::unowned`] (default 404).

use bytes::Bytes;

use super::header::Uri;
use super::msg::{Message, Method};
use super::write::{reason_phrase, response_to};

/// What the UAS core answers with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Methods we take (the Allow header).
    pub allow: Vec<String>,
    /// Body types we take (Accept).
    pub accept: Vec<String>,
    /// Option tags we support (Supported; anything else in Require gets 420).
    pub supported: Vec<String>,
    /// Request-URI schemes we take, lower case.
    pub schemes: Vec<String>,
    /// The answer to INVITE, MESSAGE and other requests nobody owns.
    pub unowned: (u16, Option<String>),
    /// `host:port` values we put in our Vias' sent-by (for loop detection); the port
    /// is compared as written, with 5060 for none.
    pub own_sent_by: Vec<String>,
    /// Requests larger than this many bytes get 513. Keep it below the parser's
    /// [`super::Limits`] (32 KiB of head by default): what the parser refuses cannot be
    /// answered, only dropped (UDP) or cut off (streams).
    pub max_message: usize,
    /// A Server header value, if any.
    pub server: Option<String>,
}

impl Default for Policy {
    fn default() -> Policy {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect();
        Policy {
            allow: s(&["INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "MESSAGE"]),
            accept: s(&["application/sdp", "text/plain", "message/cpim"]),
            supported: Vec::new(),
            schemes: s(&["sip", "sips"]),
            unowned: (404, None),
            own_sent_by: Vec::new(),
            max_message: 16 * 1024,
            server: None,
        }
    }
}

/// A decided response: status, reason phrase, headers to add.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub code: u16,
    pub reason: String,
    pub headers: Vec<(&'static str, String)>,
}

impl Answer {
    fn new(code: u16) -> Answer {
        Answer {
            code,
            reason: reason_phrase(code).to_string(),
            headers: Vec::new(),
        }
    }

    /// The response to `req` (§8.2.6): headers copied by
    /// [`super::write::response_to`], `to_tag` added, then this answer's headers.
    pub fn write(&self, req: &Message, to_tag: Option<&str>) -> Bytes {
        let mut w = response_to(req, self.code, Some(&self.reason), to_tag);
        for (n, v) in &self.headers {
            w.header(n, v);
        }
        w.finish()
    }
}

/// Whether `via`'s sent-by is one of `ours` (`host:port`, port 5060 when absent).
fn is_own_sent_by(host: &str, port: Option<u16>, ours: &[String]) -> bool {
    let port = port.unwrap_or(5060);
    ours.iter().any(|o| {
        let (h, p) = match super::header::parse_hostport(o) {
            Ok((h, p)) => (
                h.trim_start_matches('[').trim_end_matches(']'),
                p.unwrap_or(5060),
            ),
            Err(_) => return false,
        };
        h.eq_ignore_ascii_case(host) && p == port
    })
}

/// The answer to `req` when nobody owns it (module doc for the rules); `None` for ACK
/// and for responses. The request is taken as not merged (see [`answer`]).
pub fn answer_stateless(req: &Message, policy: &Policy) -> Option<Answer> {
    answer(req, policy, false)
}

/// [`answer_stateless`], told whether `req` is a merged request (§8.2.2.2).
pub fn answer(req: &Message, policy: &Policy, merged: bool) -> Option<Answer> {
    let method = req.method()?;
    if method == Method::Ack {
        return None;
    }
    if req.raw().len() > policy.max_message {
        return Some(Answer::new(513));
    }
    if let Err(e) = req.check() {
        let mut a = Answer::new(e.status());
        a.reason = e.reason();
        return Some(a);
    }
    let allow = policy.allow.join(", ");
    if method == Method::Other {
        return Some(Answer::new(501));
    }
    if !policy.allow.iter().any(|m| m == method.as_str()) {
        let mut a = Answer::new(405);
        a.headers.push(("Allow", allow));
        return Some(a);
    }
    let scheme_ok = Uri::parse(req.request_uri()).is_ok_and(|u| {
        policy
            .schemes
            .iter()
            .any(|s| s.eq_ignore_ascii_case(u.scheme()))
    });
    if !scheme_ok {
        return Some(Answer::new(416));
    }
    if req.vias().any(|v| {
        v.branch()
            .is_some_and(|b| super::ids::branch_core(b).is_some())
            && is_own_sent_by(
                v.host.trim_start_matches('[').trim_end_matches(']'),
                v.port,
                &policy.own_sent_by,
            )
    }) {
        return Some(Answer::new(482));
    }
    if merged {
        return Some(Answer::new(482));
    }
    if req.max_forwards() == Some(0) && method != Method::Options {
        return Some(Answer::new(483));
    }
    if method != Method::Cancel {
        let unsupported: Vec<&str> = req
            .require()
            .filter(|t| !policy.supported.iter().any(|s| s.eq_ignore_ascii_case(t)))
            .collect();
        if !unsupported.is_empty() {
            let mut a = Answer::new(420);
            a.headers.push(("Unsupported", unsupported.join(", ")));
            return Some(a);
        }
    }
    let mut a = if method == Method::Options {
        let mut a = Answer::new(200);
        a.headers.push(("Allow", allow));
        a.headers.push(("Accept", policy.accept.join(", ")));
        a.headers.push(("Accept-Encoding", "identity".into()));
        a.headers.push(("Accept-Language", "en".into()));
        a.headers.push(("Supported", policy.supported.join(", ")));
        a
    } else if req.to_tag().is_some() || method == Method::Cancel {
        Answer::new(481)
    } else {
        let (code, reason) = &policy.unowned;
        let mut a = Answer::new((*code).clamp(300, 699));
        if let Some(r) = reason {
            a.reason = r.clone();
        }
        a
    };
    if let Some(s) = &policy.server {
        a.headers.push(("Server", s.clone()));
    }
    Some(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "OPTIONS sip:msrpd@192.0.2.1 SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.7:5062;branch=z9hG4bK1;rport\r\n\
Max-Forwards: 70\r\n\
To: <sip:msrpd@192.0.2.1>\r\n\
From: <sip:sipp@192.0.2.7>;tag=1\r\n\
Call-ID: c1@192.0.2.7\r\n\
CSeq: 1 OPTIONS\r\n\
Content-Length: 0\r\n\r\n";

    fn policy() -> Policy {
        Policy {
            supported: vec!["path".into(), "100rel".into()],
            own_sent_by: vec!["192.0.2.1:5060".into(), "[2001:db8::1]:5070".into()],
            ..Policy::default()
        }
    }

    /// `BASE` with each `(from, to)` replacement applied.
    fn req(edits: &[(&str, &str)]) -> Message {
        let mut s = BASE.to_string();
        for (a, b) in edits {
            assert!(s.contains(a), "{a:?}");
            s = s.replacen(a, b, 1);
        }
        Message::parse_datagram(Bytes::from(s), &Default::default()).unwrap()
    }

    fn method(m: &str) -> Vec<(String, String)> {
        vec![
            ("OPTIONS sip:".into(), format!("{m} sip:")),
            ("1 OPTIONS".into(), format!("1 {m}")),
        ]
    }

    /// What, the edits to `BASE`, the answer expected.
    type Case<'a> = (&'a str, Vec<(String, String)>, Option<(u16, &'a str)>);

    #[test]
    fn decisions() {
        let big = "x".repeat(20_000);
        let cases: Vec<Case<'_>> = vec![
            ("options", vec![], Some((200, "OK"))),
            ("ack", method("ACK"), None),
            ("invite nobody", method("INVITE"), Some((404, "Not Found"))),
            ("message nobody", method("MESSAGE"), Some((404, "Not Found"))),
            ("unknown method", method("FOO"), Some((501, "Not Implemented"))),
            ("known, not allowed", method("SUBSCRIBE"), Some((405, "Method Not Allowed"))),
            ("bye in dialog", { let mut e = method("BYE"); e.push(("<sip:msrpd@192.0.2.1>".into(), "<sip:msrpd@192.0.2.1>;tag=x".into())); e }, Some((481, "Call/Transaction Does Not Exist"))),
            ("bye no dialog", method("BYE"), Some((404, "Not Found"))),
            ("cancel nobody", method("CANCEL"), Some((481, "Call/Transaction Does Not Exist"))),
            ("max-forwards 0", { let mut e = method("MESSAGE"); e.push(("Max-Forwards: 70".into(), "Max-Forwards: 0".into())); e }, Some((483, "Too Many Hops"))),
            ("max-forwards 0 options", vec![("Max-Forwards: 70".into(), "Max-Forwards: 0".into())], Some((200, "OK"))),
            ("tel scheme", vec![("OPTIONS sip:msrpd@192.0.2.1".into(), "OPTIONS tel:+123".into())], Some((416, "Unsupported URI Scheme"))),
            ("http scheme", vec![("OPTIONS sip:msrpd@192.0.2.1".into(), "OPTIONS http://x/".into())], Some((416, "Unsupported URI Scheme"))),
            ("loop", vec![("Via: SIP/2.0/UDP 192.0.2.7".into(), "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK-0-abc\r\nVia: SIP/2.0/UDP 192.0.2.7".into())], Some((482, "Loop Detected"))),
            ("loop v6", vec![("Via: SIP/2.0/UDP 192.0.2.7".into(), "Via: SIP/2.0/UDP [2001:db8::1]:5070;branch=z9hG4bK-3-abc\r\nVia: SIP/2.0/UDP 192.0.2.7".into())], Some((482, "Loop Detected"))),
            ("own host, foreign branch", vec![("Via: SIP/2.0/UDP 192.0.2.7".into(), "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKabc\r\nVia: SIP/2.0/UDP 192.0.2.7".into())], Some((200, "OK"))),
            ("our branch, other port", vec![("Via: SIP/2.0/UDP 192.0.2.7".into(), "Via: SIP/2.0/UDP 192.0.2.1:5070;branch=z9hG4bK-0-abc\r\nVia: SIP/2.0/UDP 192.0.2.7".into())], Some((200, "OK"))),
            ("require unknown", vec![("Max-Forwards: 70".into(), "Max-Forwards: 70\r\nRequire: path, foo".into())], Some((420, "Bad Extension"))),
            ("require known", vec![("Max-Forwards: 70".into(), "Max-Forwards: 70\r\nRequire: PATH\r\nProxy-Require: foo".into())], Some((200, "OK"))),
            ("cancel ignores require", { let mut e = method("CANCEL"); e.push(("Max-Forwards: 70".into(), "Max-Forwards: 70\r\nRequire: foo".into())); e }, Some((481, "Call/Transaction Does Not Exist"))),
            ("missing call-id", vec![("Call-ID: c1@192.0.2.7\r\n".into(), "".into())], Some((400, "Missing Call-ID"))),
            ("bad cseq", vec![("CSeq: 1 OPTIONS".into(), "CSeq: one OPTIONS".into())], Some((400, "Bad CSeq"))),
            ("cseq method", vec![("CSeq: 1 OPTIONS".into(), "CSeq: 1 INVITE".into())], Some((400, "CSeq Method Mismatch"))),
            ("version", vec![("OPTIONS sip:msrpd@192.0.2.1 SIP/2.0".into(), "OPTIONS sip:msrpd@192.0.2.1 SIP/2.1".into())], Some((505, "Version Not Supported"))),
            ("truncated", vec![("Content-Length: 0".into(), "Content-Length: 10".into())], Some((400, "Content-Length Larger Than Datagram"))),
            ("too big", vec![("Max-Forwards: 70".into(), format!("Max-Forwards: 70\r\nX-Pad: {big}"))], Some((513, "Message Too Large"))),
        ];
        for (what, edits, want) in cases {
            let edits: Vec<(&str, &str)> = edits
                .iter()
                .map(|(a, b)| (a.as_str(), b.as_str()))
                .collect();
            let m = req(&edits);
            let got = answer_stateless(&m, &policy());
            assert_eq!(
                got.as_ref().map(|a| (a.code, a.reason.as_str())),
                want,
                "{what}"
            );
        }
    }

    #[test]
    fn merged_requests_get_482_after_the_earlier_checks() {
        let p = policy();
        let merged = |m: &Message| answer(m, &p, true).map(|a| (a.code, a.reason));
        assert_eq!(merged(&req(&[])), Some((482, "Loop Detected".into())));
        let msg = req(&method("MESSAGE")
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect::<Vec<_>>());
        assert_eq!(merged(&msg).unwrap().0, 482);
        // §8.2.1 and §8.2.2.1 come first.
        let foo = req(&method("FOO")
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect::<Vec<_>>());
        assert_eq!(merged(&foo).unwrap().0, 501);
        let tel = req(&[("OPTIONS sip:msrpd@192.0.2.1", "OPTIONS tel:+1")]);
        assert_eq!(merged(&tel).unwrap().0, 416);
        assert_eq!(answer(&req(&[]), &p, false).unwrap().code, 200);
    }

    #[test]
    fn headers_of_answers() {
        let p = policy();
        let ok = answer_stateless(&req(&[]), &p).unwrap();
        assert_eq!(
            ok.headers,
            [
                (
                    "Allow",
                    "INVITE, ACK, CANCEL, BYE, OPTIONS, MESSAGE".to_string()
                ),
                (
                    "Accept",
                    "application/sdp, text/plain, message/cpim".to_string()
                ),
                ("Accept-Encoding", "identity".to_string()),
                ("Accept-Language", "en".to_string()),
                ("Supported", "path, 100rel".to_string()),
            ]
        );
        let m = req(&[
            ("OPTIONS sip:", "SUBSCRIBE sip:"),
            ("1 OPTIONS", "1 SUBSCRIBE"),
        ]);
        let a = answer_stateless(&m, &p).unwrap();
        assert_eq!(
            a.headers,
            [(
                "Allow",
                "INVITE, ACK, CANCEL, BYE, OPTIONS, MESSAGE".to_string()
            )]
        );
        let m = req(&[(
            "Max-Forwards: 70",
            "Max-Forwards: 70\r\nRequire: foo, path,bar",
        )]);
        assert_eq!(
            answer_stateless(&m, &p).unwrap().headers,
            [("Unsupported", "foo, bar".to_string())]
        );
        // A configured rejection and a Server header, written out.
        let p = Policy {
            unowned: (480, Some("Nobody Home".into())),
            server: Some("msrpd".into()),
            ..policy()
        };
        let m = req(&[("OPTIONS sip:", "MESSAGE sip:"), ("1 OPTIONS", "1 MESSAGE")]);
        let a = answer_stateless(&m, &p).unwrap();
        let out = a.write(&m, Some("m0-t"));
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            "SIP/2.0 480 Nobody Home\r\n\
Via: SIP/2.0/UDP 192.0.2.7:5062;branch=z9hG4bK1;rport\r\n\
From: <sip:sipp@192.0.2.7>;tag=1\r\n\
To: <sip:msrpd@192.0.2.1>;tag=m0-t\r\n\
Call-ID: c1@192.0.2.7\r\n\
CSeq: 1 MESSAGE\r\n\
Server: msrpd\r\n\
Content-Length: 0\r\n\r\n"
        );
        // Responses are not requests.
        let resp = Message::parse_own(out).unwrap();
        assert_eq!(answer_stateless(&resp, &p), None);
    }
}
