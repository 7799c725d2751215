//! What an endpoint sends back for a SEND it received: the transaction response (RFC 4975
//! §7.2) and success and failure REPORTs (§7.1.2, §7.1.3, §7.1.4), decided in one place
//! ([`plan`], [`late_failure`]) and written over the codec's writer ([`write_response`],
//! [`write_report`]).
//!
//! The rules, by the SEND's report headers (absent Success-Report is `no`, absent
//! Failure-Report is `yes`, §7.1.1):
//! - Failure-Report `yes`: every SEND gets a response, 200 or the error (§7.2).
//! - Failure-Report `partial`: no 200 response; an error gets its response (§7.1.4).
//! - Failure-Report `no`: no response and no failure REPORT at all (§7.1.4).
//! - An error known when the chunk is answered goes in the response, not in a REPORT
//!   (§7.1.4: "SHOULD simply include the appropriate error code in the transaction
//!   response"). A failure REPORT is for an error found after the 200 went out, such as
//!   a gateway's downstream failure ([`late_failure`]); it carries the range reported on.
//! - Success-Report `yes`: once the message is complete and accepted, one success REPORT
//!   covering the whole message, `1-total/total` (§7.1.3 allows that instead of
//!   incremental ones). None for a message refused or dropped, nor for `no` (§7.1.3).
//! - A REPORT is never answered and never reported on (§7.1.2): that is the engine's.

use bytes::BufMut;

use crate::codec::encode;
use crate::codec::{ByteRange, FailureReport, Head, SuccessReport};

use super::reassembly::Chunk;

/// A REPORT to send: its status code (namespace `000`, §7.1.3) and the range reported on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    pub code: u16,
    pub range: ByteRange,
}

/// What to send for one received chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// The response's status code, when a response is owed.
    pub response: Option<u16>,
    /// A success REPORT for the message this chunk completed.
    pub report: Option<Report>,
}

/// Whether a SEND whose Failure-Report is `fr` gets a response with status `status`
/// (§7.2, §7.1.4).
pub fn responds(fr: FailureReport, status: u16) -> bool {
    match fr {
        FailureReport::Yes => true,
        FailureReport::Partial => status != 200,
        FailureReport::No => false,
    }
}

/// What to send for `chunk` (from [`super::reassembly::Reassembler::end`]) when the
/// engine answers it with `status`: the chunk's own status, or the engine's verdict on
/// the message it completed (415 for a content type not accepted, §7.3.1). A success
/// REPORT only when the status is 200 and the chunk completed a message whose SEND
/// asked for one.
pub fn plan(chunk: &Chunk, status: u16) -> Plan {
    let report = match &chunk.message {
        Some(m) if status == 200 && m.success_report == SuccessReport::Yes => Some(Report {
            code: 200,
            range: whole(m.total()),
        }),
        _ => None,
    };
    Plan {
        response: responds(chunk.failure_report, status).then_some(status),
        report,
    }
}

/// A failure REPORT for an error found after the chunk or message was answered 200
/// (§7.1.4), `None` when its Failure-Report is `no`. `range` is what is reported on:
/// the chunk's [`Chunk::range`], or [`whole`] for a whole message.
pub fn late_failure(fr: FailureReport, code: u16, range: ByteRange) -> Option<Report> {
    (fr != FailureReport::No && code != 200).then_some(Report { code, range })
}

/// The Byte-Range of a whole message of `total` bytes: `1-total/total`.
pub fn whole(total: u64) -> ByteRange {
    ByteRange {
        start: 1,
        end: Some(total),
        total: Some(total),
    }
}

/// Writes the response to the SEND `send` (§7.2): its transaction id, To-Path the first
/// From-Path URI (the previous hop), From-Path `own_uri` (our URI in the session), the
/// usual reason phrase.
pub fn write_response(buf: &mut impl BufMut, send: &Head<'_>, code: u16, own_uri: &str) {
    encode::response_for(buf, send, code, Some(encode::reason(code)), own_uri, &[]);
}

/// Writes a REPORT about a received message (§7.1.2, §7.1.3): transaction id `tid` (new,
/// with 64 bits of randomness, §7.1), To-Path the SEND's whole From-Path as it was
/// received, From-Path `own_uri`, the SEND's Message-ID, the range reported on, and
/// `Status: 000 <code> <reason>`; no Success-Report or Failure-Report (§7.1.2), no body.
///
/// The From-Path is copied, not reversed: its leftmost URI is the previous hop, so it is
/// already the path back, in the order To-Path lists the hops (§7.1, §7.1.3).
pub fn write_report(
    buf: &mut impl BufMut,
    tid: &str,
    send_from_path: &str,
    own_uri: &str,
    message_id: &str,
    report: &Report,
) {
    encode::report(
        buf,
        tid,
        send_from_path,
        own_uri,
        message_id,
        Some(report.range),
        report.code,
        Some(encode::reason(report.code)),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{Event, Scanner};
    use crate::ua::reassembly::{Limits, Reassembler};
    use bytes::BytesMut;
    use std::time::Instant;

    const BODY: &[u8] = b"<html><body>\r\n<p>Here is that important link...\r\n<a href=\"http://www.example.com/foobar\">foobar</a>\r\n</p>\r\n</body></html>";

    /// RFC 4975 §11.6's SEND (its Byte-Range made to match the body) through a scanner
    /// and a reassembler; the head bytes and the chunk.
    fn receive(from_path: &str, reports: &str) -> (Vec<u8>, Chunk) {
        let mut f = format!(
            "MSRP d93kswow SEND\r\nTo-Path: msrp://bob.example.com:8888/9di4eae923wzd;tcp\r\nFrom-Path: {from_path}\r\nMessage-ID: 12339sdqwer\r\nByte-Range: 1-121/121\r\n{reports}Content-Type: text/html\r\n\r\n"
        )
        .into_bytes();
        f.extend_from_slice(BODY);
        f.extend_from_slice(b"\r\n-------d93kswow$\r\n");
        let mut sc = Scanner::default();
        let mut buf = BytesMut::from(&f[..]);
        let mut r = Reassembler::new(Limits::default(), None);
        let mut head = Vec::new();
        let now = Instant::now();
        while let Some(ev) = sc.next(&mut buf).unwrap() {
            match ev {
                Event::Head(h) => {
                    head = h.as_bytes().to_vec();
                    r.begin(now, &h.parse().unwrap(), h.has_body());
                }
                Event::Body(b) => {
                    r.body(b);
                }
                Event::End(flag) => return (head, r.end(now, flag).unwrap()),
            }
        }
        panic!("no end-line")
    }

    /// Scans `bytes` as one frame: its head, and that nothing else is there.
    fn scan_one(bytes: &[u8]) -> Vec<u8> {
        let mut sc = Scanner::default();
        let mut buf = BytesMut::from(bytes);
        let Some(Event::Head(h)) = sc.next(&mut buf).unwrap() else {
            panic!("no head")
        };
        assert!(!h.has_body());
        assert_eq!(
            sc.next(&mut buf).unwrap(),
            Some(Event::End(crate::codec::Flag::Complete))
        );
        assert!(sc.is_idle(&buf));
        h.as_bytes().to_vec()
    }

    #[test]
    fn success_report_as_in_rfc_4975_11_6() {
        let alice = "msrp://alicepc.example.com:7777/iau39soe2843z;tcp";
        let bob = "msrp://bob.example.com:8888/9di4eae923wzd;tcp";
        let (_, chunk) = receive(alice, "Success-Report: yes\r\nFailure-Report: no\r\n");
        let m = chunk.message.as_ref().unwrap();
        assert_eq!(&m.body.to_bytes()[..], BODY);
        let p = plan(&chunk, 200);
        // Failure-Report: no, so no response (§7.1.4); one success REPORT (§7.1.3).
        assert_eq!(p.response, None);
        let report = p.report.unwrap();
        assert_eq!(
            report,
            Report {
                code: 200,
                range: whole(121)
            }
        );
        let mut out = BytesMut::new();
        write_report(&mut out, "dkei38sd", alice, bob, &m.message_id, &report);
        let want = format!(
            "MSRP dkei38sd REPORT\r\nTo-Path: {alice}\r\nFrom-Path: {bob}\r\nMessage-ID: 12339sdqwer\r\nByte-Range: 1-121/121\r\nStatus: 000 200 OK\r\n-------dkei38sd$\r\n"
        );
        assert_eq!(String::from_utf8_lossy(&out), want);
        // Read back with the crate's own scanner and head parser.
        let head = scan_one(&out);
        let h = Head::parse(&head).unwrap();
        assert_eq!(h.method(), Some(crate::codec::Method::Report));
        assert_eq!(h.to_path().as_str(), alice);
        assert_eq!(h.from_path().as_str(), bob);
        assert_eq!(h.message_id(), Some("12339sdqwer"));
        assert_eq!(h.byte_range(), Some(whole(121)));
        let st = h.status().unwrap();
        assert_eq!((st.namespace, st.code, st.comment), (0, 200, Some("OK")));
        assert!(!h.has_report_headers());
    }

    #[test]
    fn through_a_relay_report_and_response_paths() {
        // From-Path as received through a relay: previous hop first (RFC 4976 §6.4).
        let from = "msrp://relay.example.net:2855/aXk3;tcp msrp://alicepc.example.com:7777/iau39soe2843z;tcp";
        let bob = "msrp://bob.example.com:8888/9di4eae923wzd;tcp";
        let (head, chunk) = receive(from, "Success-Report: yes\r\n");
        let send = Head::parse(&head).unwrap();
        let p = plan(&chunk, 200);
        assert_eq!(p.response, Some(200));
        // The response goes to the previous hop only (§7.2).
        let mut out = BytesMut::new();
        write_response(&mut out, &send, 200, bob);
        assert_eq!(
            String::from_utf8_lossy(&out),
            format!(
                "MSRP d93kswow 200 OK\r\nTo-Path: msrp://relay.example.net:2855/aXk3;tcp\r\nFrom-Path: {bob}\r\n-------d93kswow$\r\n"
            )
        );
        scan_one(&out);
        // The REPORT goes the whole way back: the From-Path as it came (§7.1.3).
        let mut out = BytesMut::new();
        write_report(
            &mut out,
            "abcd9876",
            send.from_path().as_str(),
            bob,
            "12339sdqwer",
            &p.report.unwrap(),
        );
        let head = scan_one(&out);
        assert_eq!(Head::parse(&head).unwrap().to_path().as_str(), from);
        // A 415 decided by the engine: answered, no success REPORT.
        assert_eq!(
            plan(&chunk, 415),
            Plan {
                response: Some(415),
                report: None
            }
        );
    }

    #[test]
    fn responses_and_failure_reports_by_failure_report() {
        use FailureReport as F;
        assert!(responds(F::Yes, 200) && responds(F::Yes, 413));
        assert!(!responds(F::Partial, 200) && responds(F::Partial, 415));
        assert!(!responds(F::No, 200) && !responds(F::No, 400));
        let (_, partial) = receive(
            "msrp://a.example.com:1/x;tcp",
            "Failure-Report: partial\r\n",
        );
        assert_eq!(
            plan(&partial, 200),
            Plan {
                response: None,
                report: None
            }
        );
        assert_eq!(plan(&partial, 413).response, Some(413));
        let range = partial.range.unwrap();
        assert_eq!(range, whole(121));
        assert_eq!(
            late_failure(F::Partial, 415, range),
            Some(Report { code: 415, range })
        );
        assert_eq!(late_failure(F::Yes, 408, range).unwrap().code, 408);
        assert_eq!(late_failure(F::No, 415, range), None);
        assert_eq!(late_failure(F::Yes, 200, range), None);
        // A failure REPORT's bytes: range end from the body, total as the SEND said.
        let mut out = BytesMut::new();
        let r = Report {
            code: 413,
            range: ByteRange {
                start: 5,
                end: Some(9),
                total: None,
            },
        };
        write_report(
            &mut out,
            "abcd9876",
            "msrp://a.example.com:1/x;tcp",
            "msrp://b.example.com:2/y;tcp",
            "m123",
            &r,
        );
        assert_eq!(
            &out[..],
            b"MSRP abcd9876 REPORT\r\nTo-Path: msrp://a.example.com:1/x;tcp\r\nFrom-Path: msrp://b.example.com:2/y;tcp\r\nMessage-ID: m123\r\nByte-Range: 5-9/*\r\nStatus: 000 413 Message Too Large\r\n-------abcd9876$\r\n"
        );
        let head = scan_one(&out);
        assert_eq!(Head::parse(&head).unwrap().status().unwrap().code, 413);
    }
}
