//! Writing SIP messages (RFC 3261 §7): a [`Writer`] for requests and responses, the
//! response a UAS builds from a request (§8.2.6), the ACK a client INVITE transaction
//! sends for a non-2xx final response (§17.1.1.3) and a CANCEL built from an INVITE
//! (§9.1). Content-Length is always written (§20.14: mandatory on streams, harmless on
//! datagrams).

use bytes::{BufMut, Bytes, BytesMut};

use super::header::Via;
use super::msg::{Message, ParseError};
use super::name::HeaderName;

/// The default reason phrase of a status code (§21).
pub fn reason_phrase(code: u16) -> &'static str {
    match code {
        100 => "Trying",
        180 => "Ringing",
        181 => "Call Is Being Forwarded",
        182 => "Queued",
        183 => "Session Progress",
        200 => "OK",
        202 => "Accepted",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Moved Temporarily",
        305 => "Use Proxy",
        380 => "Alternative Service",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        410 => "Gone",
        413 => "Request Entity Too Large",
        414 => "Request-URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        420 => "Bad Extension",
        421 => "Extension Required",
        423 => "Interval Too Brief",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        483 => "Too Many Hops",
        484 => "Address Incomplete",
        485 => "Ambiguous",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        491 => "Request Pending",
        493 => "Undecipherable",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Server Time-out",
        505 => "Version Not Supported",
        513 => "Message Too Large",
        600 => "Busy Everywhere",
        603 => "Decline",
        604 => "Does Not Exist Anywhere",
        606 => "Not Acceptable",
        _ => match code / 100 {
            1 => "Provisional",
            2 => "Success",
            3 => "Redirection",
            4 => "Client Error",
            5 => "Server Error",
            _ => "Global Failure",
        },
    }
}

/// Builds one message: start line, header lines, then Content-Length and the body.
/// Values written with [`Writer::header`] have CR, LF and NUL replaced by SP, so no
/// caller-supplied text can start a header line of its own.
#[derive(Debug)]
pub struct Writer {
    buf: BytesMut,
}

fn put_clean(buf: &mut BytesMut, s: &str) {
    for &c in s.as_bytes() {
        buf.put_u8(if matches!(c, b'\r' | b'\n' | 0) {
            b' '
        } else {
            c
        });
    }
}

impl Writer {
    /// `<method> <uri> SIP/2.0`.
    pub fn request(method: &str, uri: &str) -> Writer {
        let mut buf = BytesMut::with_capacity(512);
        put_clean(&mut buf, method);
        buf.put_u8(b' ');
        put_clean(&mut buf, uri);
        buf.put_slice(b" SIP/2.0\r\n");
        Writer { buf }
    }

    /// `SIP/2.0 <code> <reason>`; the reason defaults to [`reason_phrase`].
    pub fn response(code: u16, reason: Option<&str>) -> Writer {
        let mut buf = BytesMut::with_capacity(512);
        buf.put_slice(b"SIP/2.0 ");
        let mut b = itoa::Buffer::new();
        buf.put_slice(b.format(code.clamp(100, 699)).as_bytes());
        buf.put_u8(b' ');
        put_clean(&mut buf, reason.unwrap_or(reason_phrase(code)));
        buf.put_slice(b"\r\n");
        Writer { buf }
    }

    /// Adds `name: value`.
    pub fn header(&mut self, name: &str, value: &str) -> &mut Writer {
        put_clean(&mut self.buf, name);
        self.buf.put_slice(b": ");
        put_clean(&mut self.buf, value);
        self.buf.put_slice(b"\r\n");
        self
    }

    /// Adds a header by kind, in its long form.
    pub fn add(&mut self, name: HeaderName, value: &str) -> &mut Writer {
        self.header(name.as_str(), value)
    }

    /// Copies a value taken from a parsed message as it is (its folds, `CRLF 1*WSP`,
    /// stay valid folds).
    pub fn copy(&mut self, name: HeaderName, value: &str) -> &mut Writer {
        self.buf.put_slice(name.as_str().as_bytes());
        self.buf.put_slice(b": ");
        self.buf.put_slice(value.as_bytes());
        self.buf.put_slice(b"\r\n");
        self
    }

    /// Copies every line of `name` from `m`.
    pub fn copy_all(&mut self, m: &Message, name: HeaderName) -> &mut Writer {
        for v in m.get_all(name) {
            self.copy(name, v);
        }
        self
    }

    /// Ends the head with `Content-Length: 0`.
    pub fn finish(self) -> Bytes {
        self.finish_body(None, &[])
    }

    /// Ends the head with Content-Type (when given), Content-Length and the body.
    pub fn finish_body(mut self, content_type: Option<&str>, body: &[u8]) -> Bytes {
        if let Some(ct) = content_type {
            self.header("Content-Type", ct);
        }
        let mut b = itoa::Buffer::new();
        self.buf.put_slice(b"Content-Length: ");
        self.buf.put_slice(b.format(body.len()).as_bytes());
        self.buf.put_slice(b"\r\n\r\n");
        self.buf.put_slice(body);
        self.buf.freeze()
    }

    /// [`Writer::finish`], parsed.
    pub fn into_message(self) -> Result<Message, ParseError> {
        Message::parse_own(self.finish())
    }

    /// [`Writer::finish_body`], parsed.
    pub fn into_message_body(
        self,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<Message, ParseError> {
        Message::parse_own(self.finish_body(content_type, body))
    }
}

/// The top Via as a response carries it (RFC 3261 §18.2.1: `received` when the sent-by
/// host is not the source address; RFC 3581 §4: `rport` filled in with the source port
/// when the request asked for it, `received` then always).
fn stamped_via(v: &str, source: Option<core::net::SocketAddr>) -> String {
    let Some(src) = source else {
        return v.to_string();
    };
    let Ok(via) = Via::parse(v) else {
        return v.to_string();
    };
    let ip = src.ip().to_string();
    let host = via.host.trim_start_matches('[').trim_end_matches(']');
    let wants_rport = via.rport() == Some(None);
    let mut out = String::with_capacity(v.len() + 48);
    // Rewrite the parameters, dropping an empty rport and any received we replace.
    let head_len = via.raw.len() - via.params.as_str().len();
    out.push_str(via.raw.get(..head_len).unwrap_or(via.raw).trim_end());
    let add_received = wants_rport || !host.eq_ignore_ascii_case(&ip);
    for (n, val) in via.params.iter() {
        if (n.eq_ignore_ascii_case("rport") && wants_rport)
            || (n.eq_ignore_ascii_case("received") && add_received)
        {
            continue;
        }
        out.push(';');
        out.push_str(n);
        if let Some(val) = val {
            out.push('=');
            out.push_str(val);
        }
    }
    if add_received {
        out.push_str(";received=");
        out.push_str(&ip);
    }
    if wants_rport {
        out.push_str(";rport=");
        out.push_str(&src.port().to_string());
    }
    out
}

/// The start of a response to `req` (RFC 3261 §8.2.6.2): the Via lines (the top one
/// stamped with `received`/`rport` from the request's [`Message::source`]), From, To
/// (with `to_tag` added when To has none and the code is not 100, §8.2.6.2), Call-ID
/// and CSeq copied; for a 101-299 response to an INVITE, Record-Route too (§12.1.1).
/// Add headers, then finish.
pub fn response_to(req: &Message, code: u16, reason: Option<&str>, to_tag: Option<&str>) -> Writer {
    let mut w = Writer::response(code, reason);
    let mut first = true;
    for line in req.get_all(HeaderName::Via) {
        if first {
            // Only the topmost value is stamped; a line may carry several.
            let mut parts = super::header::split_list(line);
            if let Some(top) = parts.next() {
                let mut v = stamped_via(top, req.source());
                for rest in parts {
                    v.push_str(", ");
                    v.push_str(rest);
                }
                w.copy(HeaderName::Via, &v);
            }
            first = false;
        } else {
            w.copy(HeaderName::Via, line);
        }
    }
    w.copy_all(req, HeaderName::From);
    match req.get(HeaderName::To) {
        Some(to) if code != 100 && req.to_tag().is_none() => {
            if let Some(tag) = to_tag {
                let v = format!("{};tag={}", to.trim_end(), tag);
                w.header("To", &v);
            } else {
                w.copy(HeaderName::To, to);
            }
        }
        Some(to) => {
            w.copy(HeaderName::To, to);
        }
        None => {}
    }
    w.copy_all(req, HeaderName::CallId);
    w.copy_all(req, HeaderName::CSeq);
    if (101..300).contains(&code) && req.method() == Some(super::msg::Method::Invite) {
        w.copy_all(req, HeaderName::RecordRoute);
    }
    w
}

/// The ACK for a non-2xx final response to `invite` (§17.1.1.3): the INVITE's
/// Request-URI, top Via (same branch), From, Call-ID, CSeq number and Route headers;
/// the response's To (with its tag); CSeq method ACK.
pub fn ack_for(invite: &Message, response: &Message) -> Bytes {
    short_request("ACK", invite, response.get(HeaderName::To))
}

/// A CANCEL for `invite` (§9.1): Request-URI, Call-ID, To, From, CSeq number, top Via
/// and Route headers of the INVITE; CSeq method CANCEL.
pub fn cancel_for(invite: &Message) -> Bytes {
    short_request("CANCEL", invite, invite.get(HeaderName::To))
}

fn short_request(method: &str, invite: &Message, to: Option<&str>) -> Bytes {
    let mut w = Writer::request(method, invite.request_uri());
    if let Some(top) = invite.values(HeaderName::Via).next() {
        w.copy(HeaderName::Via, top);
    }
    w.header("Max-Forwards", "70");
    w.copy_all(invite, HeaderName::From);
    if let Some(to) = to {
        w.copy(HeaderName::To, to);
    }
    w.copy_all(invite, HeaderName::CallId);
    let seq = invite.cseq().map_or(0, |c| c.seq);
    w.header("CSeq", &format!("{seq} {method}"));
    w.copy_all(invite, HeaderName::Route);
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &[u8] = b"INVITE sip:bob@biloxi.com SIP/2.0\r\n\
Via: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bKnashds8;rport\r\n\
Via: SIP/2.0/UDP proxy.example.com;branch=z9hG4bK1, SIP/2.0/TCP p2.example.com;branch=z9hG4bK2\r\n\
Max-Forwards: 70\r\n\
To: Bob <sip:bob@biloxi.com>\r\n\
From: Alice <sip:alice@atlanta.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710\r\n\
CSeq: 314159 INVITE\r\n\
Record-Route: <sip:p1.example.com;lr>\r\n\
Route: <sip:p1.example.com;lr>\r\n\
Contact: <sip:alice@pc33.atlanta.com>\r\n\
Content-Length: 0\r\n\r\n";

    #[test]
    fn response_copies_and_tags() {
        let mut req = Message::parse_own(Bytes::from_static(INVITE)).unwrap();
        req.set_source(Some("192.0.2.4:5066".parse().unwrap()));
        let mut w = response_to(&req, 180, None, Some("m1-abc"));
        w.header("Contact", "<sip:bob@192.0.2.9>");
        let got = w.finish();
        assert_eq!(
            std::str::from_utf8(&got).unwrap(),
            "SIP/2.0 180 Ringing\r\n\
Via: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bKnashds8;received=192.0.2.4;rport=5066\r\n\
Via: SIP/2.0/UDP proxy.example.com;branch=z9hG4bK1, SIP/2.0/TCP p2.example.com;branch=z9hG4bK2\r\n\
From: Alice <sip:alice@atlanta.com>;tag=1928301774\r\n\
To: Bob <sip:bob@biloxi.com>;tag=m1-abc\r\n\
Call-ID: a84b4c76e66710\r\n\
CSeq: 314159 INVITE\r\n\
Record-Route: <sip:p1.example.com;lr>\r\n\
Contact: <sip:bob@192.0.2.9>\r\n\
Content-Length: 0\r\n\r\n"
        );
        // 100 Trying gets no tag (§8.2.6.1) and no Record-Route is needed for 4xx.
        let t = response_to(&req, 100, None, Some("m1-abc")).finish();
        let t = Message::parse_own(t).unwrap();
        assert_eq!(t.to_tag(), None);
        assert_eq!(t.status(), Some(100));
        let r =
            Message::parse_own(response_to(&req, 486, Some("Busy\r\nX: y"), Some("t")).finish())
                .unwrap();
        assert_eq!(r.reason(), "Busy  X: y");
        assert_eq!(r.get(HeaderName::RecordRoute), None);
        assert_eq!(r.to_tag(), Some("t"));
        r.check().unwrap();
    }

    #[test]
    fn via_stamping() {
        let src = Some("10.0.0.1:4000".parse().unwrap());
        for (via, want) in [
            (
                "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKa",
                "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKa",
            ),
            (
                "SIP/2.0/UDP h;branch=z9hG4bKa",
                "SIP/2.0/UDP h;branch=z9hG4bKa;received=10.0.0.1",
            ),
            (
                "SIP/2.0/UDP 10.0.0.1;rport;branch=z9hG4bKa",
                "SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKa;received=10.0.0.1;rport=4000",
            ),
            (
                "SIP/2.0/UDP h;received=1.2.3.4",
                "SIP/2.0/UDP h;received=10.0.0.1",
            ),
            (
                "SIP/2.0/UDP h;rport=9",
                "SIP/2.0/UDP h;rport=9;received=10.0.0.1",
            ),
        ] {
            assert_eq!(stamped_via(via, src), want);
        }
        assert_eq!(stamped_via("SIP/2.0/UDP h", None), "SIP/2.0/UDP h");
        let v6 = stamped_via(
            "SIP/2.0/TCP [2001:db8::1];rport",
            Some("[2001:db8::1]:7".parse().unwrap()),
        );
        assert_eq!(v6, "SIP/2.0/TCP [2001:db8::1];received=2001:db8::1;rport=7");
    }

    #[test]
    fn ack_and_cancel() {
        let req = Message::parse_own(Bytes::from_static(INVITE)).unwrap();
        let resp = Message::parse_own(response_to(&req, 486, None, Some("xyz")).finish()).unwrap();
        let ack = ack_for(&req, &resp);
        assert_eq!(
            std::str::from_utf8(&ack).unwrap(),
            "ACK sip:bob@biloxi.com SIP/2.0\r\n\
Via: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bKnashds8;rport\r\n\
Max-Forwards: 70\r\n\
From: Alice <sip:alice@atlanta.com>;tag=1928301774\r\n\
To: Bob <sip:bob@biloxi.com>;tag=xyz\r\n\
Call-ID: a84b4c76e66710\r\n\
CSeq: 314159 ACK\r\n\
Route: <sip:p1.example.com;lr>\r\n\
Content-Length: 0\r\n\r\n"
        );
        let cancel = Message::parse_own(cancel_for(&req)).unwrap();
        cancel.check().unwrap();
        assert_eq!(cancel.method_str(), "CANCEL");
        assert_eq!(cancel.request_uri(), "sip:bob@biloxi.com");
        assert_eq!(cancel.top_via().unwrap().branch(), Some("z9hG4bKnashds8"));
        assert_eq!(cancel.vias().count(), 1);
        assert_eq!(cancel.to_tag(), None);
        assert_eq!(cancel.cseq().unwrap().seq, 314159);
    }

    #[test]
    fn header_injection_is_neutralised() {
        let mut w = Writer::request("OPTIONS", "sip:a@b");
        w.header("Subject", "hi\r\nVia: evil\0");
        let m = Message::parse_own(w.finish()).unwrap();
        assert_eq!(m.header_count(), 2);
        assert_eq!(m.get(HeaderName::Subject), Some("hi  Via: evil"));
        assert_eq!(reason_phrase(299), "Success");
        assert_eq!(reason_phrase(699), "Global Failure");
    }
}
