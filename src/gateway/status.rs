//! How the gateway translates outcomes between the two sides: `const` tables, first
//! matching row wins, each row with the reason the README prints.
//!
//! - [`SIP_TO_MSRP`]: the final response to a MESSAGE the gateway sent (or 408 when
//!   none came) becomes the Status of the REPORT sent back for the MSRP message it
//!   carried (RFC 4975 §7.1.2, §10; RFC 3428 §7).
//! - [`MSRP_TO_SIP`]: what became of a message the gateway sent in an MSRP session (an
//!   error response, a failure REPORT, a local timeout) becomes the final response of
//!   the MESSAGE that carried it, when known within the delivery wait.
//! - [`SETUP_TO_SIP`]: the final response to the MSRP side's INVITE, when the session
//!   could not be set up, becomes the final response of the MESSAGEs waiting for it.

/// One row: SIP or MSRP codes `lo..=hi` map to `code` (0: the same code).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Row {
    pub lo: u16,
    pub hi: u16,
    pub code: u16,
    pub why: &'static str,
}

const fn row(lo: u16, hi: u16, code: u16, why: &'static str) -> Row {
    Row { lo, hi, code, why }
}

/// SIP final response of a MESSAGE we sent -> MSRP REPORT status.
pub const SIP_TO_MSRP: &[Row] = &[
    // RFC 3428 §7: 200 delivered, 202 accepted by a store-and-forward or gateway; both
    // are all MSRP can say (a success REPORT, RFC 4975 §7.1.3).
    row(
        200,
        299,
        200,
        "2xx: accepted downstream (RFC 3428 §7; 202 is the best a store-and-forward hop can say)",
    ),
    // No final response before timer F, or a downstream 408: the transaction did not
    // complete in time, which is what MSRP 408 says (RFC 4975 §10.4).
    row(
        408,
        408,
        408,
        "408 or no response (timer F): a downstream transaction that did not complete in time (RFC 4975 §10.4)",
    ),
    // The body was too large for the next hop: stop sending this message (§10.5).
    row(
        413,
        413,
        413,
        "413 Request Entity Too Large: the receiver does not want this message (RFC 4975 §10.5)",
    ),
    row(
        513,
        513,
        413,
        "513 Message Too Large: likewise (RFC 4975 §10.5)",
    ),
    // The recipient does not take the content type: MSRP 415 (§10.6) tells the sender
    // not to use it again in this session.
    row(
        415,
        415,
        415,
        "415 Unsupported Media Type: MSRP 415, do not send this type again (RFC 4975 §10.6)",
    ),
    row(
        488,
        488,
        415,
        "488 Not Acceptable Here: the recipient cannot take this body; MSRP 415 (RFC 4975 §10.6)",
    ),
    row(606, 606, 415, "606 Not Acceptable: likewise, everywhere"),
    // Transient SIP failures: MSRP has no transient code but 408, which the sender
    // treats as a local timeout (§10.4) and may retry; MSRP 481 would end the session.
    row(
        480,
        480,
        408,
        "480 Temporarily Unavailable: transient; MSRP's only transient code is 408 (RFC 4975 §10.4)",
    ),
    row(486, 486, 408, "486 Busy Here: transient, as 480"),
    row(
        500,
        599,
        408,
        "5xx: a server failure downstream, transient (503 asks to retry later); 408 as 480",
    ),
    row(600, 600, 408, "600 Busy Everywhere: transient, as 480"),
    // Everything else (3xx not followed, 401/407 we cannot answer, 403, 404, 603...):
    // permanent, do not retry (§10.3). Never 481: that tells the sender to end the
    // MSRP session (§10.8), which one refused MESSAGE is no reason for.
    row(
        0,
        999,
        403,
        "anything else (3xx not followed, 4xx, 6xx): permanent, MSRP 403 do not retry (RFC 4975 §10.3); never 481, which would end the session (§10.8)",
    ),
];

/// MSRP outcome of a message we sent (error response, failure REPORT status, 408 for a
/// local timeout) -> final response of the MESSAGE it came in.
pub const MSRP_TO_SIP: &[Row] = &[
    row(
        200,
        200,
        200,
        "200: the MSRP peer accepted the message (its success REPORT): 200 OK (RFC 3428 §7)",
    ),
    // The peer could not parse what the gateway wrote: the gateway's fault, or the
    // peer's, not the sender's: 502 (RFC 3261 §21.5.3).
    row(
        400,
        400,
        502,
        "400: the peer could not parse the SEND the gateway wrote: 502 Bad Gateway (RFC 3261 §21.5.3)",
    ),
    row(
        403,
        403,
        403,
        "403: the peer refuses the message: 403 Forbidden",
    ),
    // No response or REPORT within 30 s (RFC 4975 §7.1.1), or a relay's 408: the
    // downstream did not answer in time, 504 (RFC 3261 §21.5.5).
    row(
        408,
        408,
        504,
        "408 or local timeout (30 s, RFC 4975 §7.1.1): 504 Server Time-out (RFC 3261 §21.5.5)",
    ),
    row(
        413,
        413,
        413,
        "413: the peer wants no more of this message (too large): 413 Request Entity Too Large",
    ),
    // 415 is answered with Accept: the peer's accept-types (RFC 3261 §21.4.13).
    row(
        415,
        415,
        415,
        "415: the peer does not take the type: 415 Unsupported Media Type with Accept (RFC 3261 §21.4.13)",
    ),
    // The session is gone on the MSRP side; the next MESSAGE may set up another.
    row(
        481,
        481,
        480,
        "481: the MSRP session does not exist any more: 480 Temporarily Unavailable",
    ),
    row(
        0,
        999,
        502,
        "anything else (423, 501, 506...): a failure of the MSRP side the sender cannot act on: 502 Bad Gateway",
    ),
];

/// Final response of the MSRP side's INVITE (or 408 on set-up timeout) -> final
/// response of the MESSAGEs waiting for the session.
pub const SETUP_TO_SIP: &[Row] = &[
    // The UA follows no redirect: for the MESSAGE sender the recipient is not
    // reachable this way now.
    row(
        300,
        399,
        480,
        "3xx: redirects are not followed: 480 Temporarily Unavailable",
    ),
    // A challenge the gateway could not answer is not the sender's to fix.
    row(
        401,
        401,
        403,
        "401: the MSRP side wants credentials the gateway does not have: 403 Forbidden",
    ),
    row(407, 407, 403, "407: likewise for a proxy: 403 Forbidden"),
    row(
        408,
        408,
        408,
        "408 (timer B, no answer to the INVITE; the set-up timeout): 408 Request Timeout",
    ),
    row(
        487,
        487,
        480,
        "487: the set-up was cancelled (the session was ended meanwhile): 480 Temporarily Unavailable",
    ),
    // The callee's own answer is the recipient's answer: 404, 480, 486, 488, 603...
    // mean to the MESSAGE sender what they mean to a caller.
    row(
        400,
        699,
        0,
        "any other 4xx-6xx: the callee's answer, passed on as it is (404, 480, 486, 603...)",
    ),
    row(0, 999, 500, "anything else: 500 Server Internal Error"),
];

/// Looks `code` up in `table` (first matching row; 0 in a row keeps the code).
pub fn map(table: &[Row], code: u16) -> u16 {
    match table.iter().find(|r| r.lo <= code && code <= r.hi) {
        Some(r) if r.code == 0 => code,
        Some(r) => r.code,
        None => 500,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sip_to_msrp() {
        for (sip, msrp) in [
            (200, 200),
            (202, 200),
            (408, 408),
            (413, 413),
            (513, 413),
            (415, 415),
            (488, 415),
            (606, 415),
            (480, 408),
            (486, 408),
            (503, 408),
            (600, 408),
            (404, 403),
            (403, 403),
            (302, 403),
            (407, 403),
            (603, 403),
        ] {
            assert_eq!(map(SIP_TO_MSRP, sip), msrp, "{sip}");
        }
        // Never a code that ends the MSRP session.
        for c in 100..700 {
            assert_ne!(map(SIP_TO_MSRP, c), 481);
        }
    }

    #[test]
    fn msrp_to_sip() {
        for (msrp, sip) in [
            (200, 200),
            (400, 502),
            (403, 403),
            (408, 504),
            (413, 413),
            (415, 415),
            (481, 480),
            (423, 502),
            (501, 502),
            (506, 502),
        ] {
            assert_eq!(map(MSRP_TO_SIP, msrp), sip, "{msrp}");
        }
    }

    #[test]
    fn setup_to_sip() {
        for (inv, msg) in [
            (302, 480),
            (401, 403),
            (407, 403),
            (408, 408),
            (487, 480),
            (404, 404),
            (486, 486),
            (488, 488),
            (503, 503),
            (603, 603),
            (0, 500),
            (200, 500),
        ] {
            assert_eq!(map(SETUP_TO_SIP, inv), msg, "{inv}");
        }
    }

    #[test]
    fn every_row_explained_and_reachable() {
        for t in [SIP_TO_MSRP, MSRP_TO_SIP, SETUP_TO_SIP] {
            assert!(t.iter().all(|r| !r.why.is_empty() && r.lo <= r.hi));
            let last = t.last().unwrap();
            assert_eq!((last.lo, last.hi), (0, 999), "a catch-all last row");
        }
    }
}
