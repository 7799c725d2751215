//! SIP on the MSRP ports: how a connection's first bytes pick its protocol, and the
//! per-core SIP state (one [`Transactions`] table, the [`Policy`] for requests nobody
//! owns). The worker feeds it: TCP/TLS messages framed with
//! [`Message::parse_stream`] (RFC 3261 §18.3, Content-Length framing; a CRLFCRLF ping
//! gets its CRLF pong, RFC 5626 §4.4.1), UDP datagrams whole (§18.1.1). Responses go
//! where §18.2.2 and RFC 3581 (`rport`) say, which the table decides.
//!
//! Packets that are neither SIP nor MSRP go to the nosip handler ([`crate::nosip`]).

use std::time::Instant;

use bytes::Bytes;

use crate::sip::core::{Policy, answer};
use crate::sip::txn::{Config, Event, Peer, Transactions};
use crate::sip::{Limits, Message, ids};

/// At most this many bytes decide what a new connection speaks: a SIP request line
/// longer than this (method, Request-URI, version) is not taken for SIP.
pub const SNIFF_MAX: usize = 1024;

/// What a connection's (or datagram's) first bytes say it speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sniff {
    /// `MSRP ` (RFC 4975 §7.1).
    Msrp,
    /// A SIP request line (`METHOD SP Request-URI SP SIP/...`), a status line
    /// (`SIP/2.0 `) or a CRLF keepalive (RFC 5626 §4.4.1).
    Sip,
    /// `GET `: the seam of the HTTP/WebSocket upgrade (not served yet: closed).
    Http,
    /// Anything else: the nosip handler.
    Other,
    /// Too few bytes to tell.
    NeedMore,
}

fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

/// Tells MSRP, SIP, HTTP and anything else apart from the first bytes of a stream or a
/// whole datagram; decides within [`SNIFF_MAX`] bytes.
pub fn sniff(b: &[u8]) -> Sniff {
    let prefixes: [(&[u8], Sniff); 4] = [
        (b"MSRP ", Sniff::Msrp),
        (b"SIP/2.0 ", Sniff::Sip),
        (b"GET ", Sniff::Http),
        (b"\r\n", Sniff::Sip),
    ];
    for (p, s) in prefixes {
        let n = p.len().min(b.len());
        if b[..n] == p[..n] {
            // A prefix of `p`: more bytes decide (`GE` may still be `GET `).
            return if n == p.len() { s } else { Sniff::NeedMore };
        }
    }
    // METHOD SP
    let m = b.iter().take_while(|&&c| is_token(c)).count();
    if m == b.len() {
        return if m < 32 {
            Sniff::NeedMore
        } else {
            Sniff::Other
        };
    }
    if m == 0 || b[m] != b' ' {
        return Sniff::Other;
    }
    // Request-URI SP SIP/
    let line_end = b.iter().position(|&c| c == b'\r' || c == b'\n');
    let line = &b[..line_end.unwrap_or(b.len()).min(SNIFF_MAX)];
    if let Some(sp) = line.iter().rposition(|&c| c == b' ')
        && sp > m
        && line[sp + 1..].len() >= 4
    {
        return if line[sp + 1..sp + 5].eq_ignore_ascii_case(b"SIP/") {
            Sniff::Sip
        } else {
            Sniff::Other
        };
    }
    if line_end.is_none() && b.len() < SNIFF_MAX {
        Sniff::NeedMore
    } else {
        Sniff::Other
    }
}

/// The SIP state of one core.
pub struct SipCore {
    pub txns: Transactions,
    pub policy: Policy,
    pub limits: Limits,
    core: u16,
    rng: rand::rngs::ThreadRng,
}

impl SipCore {
    pub fn new(core: u16, reject: u16, own_sent_by: Vec<String>) -> SipCore {
        let limits = Limits::default();
        let cfg = Config {
            core,
            limits,
            ..Config::default()
        };
        let policy = Policy {
            unowned: (reject, None),
            own_sent_by,
            server: Some(concat!("msrpd/", env!("CARGO_PKG_VERSION")).into()),
            ..Policy::default()
        };
        SipCore {
            txns: Transactions::new(cfg),
            policy,
            limits,
            core,
            rng: rand::rng(),
        }
    }

    /// A datagram from `from` (already sniffed as SIP).
    pub fn datagram(&mut self, now: Instant, from: Peer, data: Bytes) {
        self.txns.handle_datagram(now, from, data);
        self.answer(now);
    }

    /// A message framed off a stream.
    pub fn message(&mut self, now: Instant, from: Peer, m: Message) {
        self.txns.handle_message(now, from, m);
        self.answer(now);
    }

    pub fn timeout(&mut self, now: Instant) {
        self.txns.handle_timeout(now);
        self.answer(now);
    }

    /// Answers every new request: nobody owns any yet (no user agent), so each gets
    /// [`answer`]'s response (482 for a merged request, §8.2.2.2, as the table tells),
    /// sent through its server transaction so that retransmissions are absorbed
    /// (§17.2).
    fn answer(&mut self, now: Instant) {
        while let Some(e) = self.txns.poll_event() {
            if let Event::Request { id, msg, .. } = e
                && let Some(a) = answer(&msg, &self.policy, self.txns.is_merged(id))
            {
                let tag = (a.code > 100).then(|| ids::tag(self.core, &mut self.rng));
                let bytes = a.write(&msg, tag.as_deref());
                match Message::parse_own(bytes) {
                    Ok(resp) => {
                        if let Err(e) = self.txns.respond(now, id, resp) {
                            tracing::debug!(error = %e, "SIP response not sent");
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "own SIP response does not parse"),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_bytes() {
        let cases: &[(&[u8], Sniff)] = &[
            (b"MSRP a SEND\r\n", Sniff::Msrp),
            (b"MSR", Sniff::NeedMore),
            (b"M", Sniff::NeedMore),
            (b"OPTIONS sip:a@b SIP/2.0\r\n", Sniff::Sip),
            (b"INVITE sip:a@b SIP/3.0\r\n", Sniff::Sip),
            (b"OPTIONS sip:a@b", Sniff::NeedMore),
            (b"OPTIONS sip:a@b HTTP/1.1\r\n", Sniff::Other),
            (b"SIP/2.0 200 OK\r\n", Sniff::Sip),
            (b"SIP/2", Sniff::NeedMore),
            (b"\r\n\r\n", Sniff::Sip),
            (b"\r", Sniff::NeedMore),
            (b"GET / HTTP/1.1\r\n", Sniff::Http),
            (b"hello world\r\n", Sniff::Other),
            (b"\x00\x01\x02", Sniff::Other),
            (b"resume", Sniff::NeedMore),
            (b"resume\r\n", Sniff::Other),
            (&[b'A'; 40], Sniff::Other),
        ];
        for (b, want) in cases {
            assert_eq!(sniff(b), *want, "{:?}", String::from_utf8_lossy(b));
        }
        assert_eq!(sniff(&[b'a'; 2000][..]), Sniff::Other);
    }
}
