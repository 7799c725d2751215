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
