//! SDP for MSRP sessions: a small sans-IO codec and the offer/answer rules a user agent
//! needs to set up an MSRP chat over SIP INVITE.
//!
//! - [`parse`]: the RFC 8866 §5 line grammar into a [`Sdp`] that borrows its text, with
//!   [`Limits`] on size, lines and media sections. Unknown attributes are kept and
//!   ignored; what RFC 8866 makes mandatory (`v=0` first, then `o=`, `s=`, a `t=`, a `c=`
//!   for every media section) is enforced.
//! - [`msrp`]: the MSRP view of one `m=message` media section (RFC 4975 §8.1-§8.6:
//!   `a=path`, `a=accept-types`, `a=accept-wrapped-types`, `a=max-size`; RFC 6135
//!   `a=setup`; RFC 6714 `a=msrp-cema`; RFC 8866 §6.7 direction), and content-type
//!   matching ([`accepts`], RFC 4975 §8.6 and §9).
//! - [`negotiate`]: [`answer`] to an offer and [`offer`] / [`take_answer`] for our own
//!   (RFC 3264 §5, §6 and §7; RFC 4975 §8.5 with RFC 6135 for who connects; RFC 6714 §4
//!   for CEMA). Both directions end in the same [`Session`]: what the user agent needs
//!   to run the MSRP session.
//!
//! Errors are one `Copy` enum, [`SdpError`], whose [`SdpError::status`] is the SIP
//! status to answer an offer with (400 for an SDP that is not SDP, 488 for one with no
//! MSRP stream we can use) and [`SdpError::reason`] a short reason phrase.
//!
//! Typical use by the user agent, answering an INVITE:
//!
//! ```
//! use msrpd::sdp::{Local, SetupPref, answer};
//!
//! let offer = b"v=0\r\no=alice 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\n\
//! t=0 0\r\nm=message 7394 TCP/MSRP *\r\na=accept-types:text/plain\r\n\
//! a=path:msrp://192.0.2.1:7394/2s93i9ek2a;tcp\r\n";
//! let local = Local::new(
//!     "msrp://198.51.100.7:2855/s8d7f6g5;tcp",
//!     "198.51.100.7",
//!     &["text/plain", "message/cpim"],
//! );
//! let a = answer(offer, &local).unwrap();
//! assert!(!a.session.active); // the offerer connects (RFC 4975 §8.5)
//! assert_eq!(a.session.peer_path, ["msrp://192.0.2.1:7394/2s93i9ek2a;tcp"]);
//! assert!(a.session.may_send("text/plain", None));
//! assert!(std::str::from_utf8(&a.sdp).unwrap().contains("a=accept-types:text/plain\r\n"));
//! ```

pub mod msrp;
pub mod negotiate;
pub mod parse;
mod write;

pub use msrp::{Direction, FormatEntry, MsrpMedia, Setup, Transport, Unusable, accepts};
pub use negotiate::{
    Answer, Endpoint, Local, Offer, Session, SetupPref, answer, answer_sdp, offer,
    parse_accept_types, take_answer,
};
pub use parse::{AddrType, Attribute, Connection, Limits, Media, Origin, Sdp};

/// Why an SDP was refused, for the SIP status to answer with. `Copy`, no allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    /// Larger than [`Limits::max_size`] (a 64 KiB SDP is never a chat offer).
    #[error("SDP too large")]
    TooLarge,
    #[error("too many SDP lines")]
    TooManyLines,
    #[error("too many media sections")]
    TooManyMedia,
    #[error("SDP line too long")]
    LineTooLong,
    /// NUL or another control byte, a bare CR, or bytes that are not UTF-8 (RFC 8866 §5:
    /// the default charset is UTF-8, and no field may hold NUL, CR or LF).
    #[error("control byte or invalid UTF-8 in SDP")]
    BadText,
    /// Not `<type>=<value>` with a lowercase letter for the type (RFC 8866 §5).
    #[error("bad SDP line")]
    BadLine,
    /// A type letter RFC 8866 does not define (§5: such a description is ignored).
    #[error("unknown SDP line type")]
    UnknownType,
    /// A line where §5's order does not allow it (a second `v=`, `t=` in a media
    /// section, `v=`/`o=`/`s=` not first).
    #[error("SDP lines out of order")]
    Order,
    #[error("bad SDP version")]
    Version,
    #[error("bad o= line")]
    Origin,
    #[error("bad s= line")]
    SessionName,
    #[error("bad c= line")]
    Connection,
    #[error("bad or missing t= line")]
    Timing,
    #[error("bad m= line")]
    MediaLine,
    /// A media section without `c=` and no session-level `c=` (RFC 8866 §5.7).
    #[error("no c= line for a media section")]
    MissingConnection,
    /// The answer to our offer does not have as many `m=` lines (RFC 3264 §6).
    #[error("answer does not match the offer")]
    AnswerMismatch,
    /// No MSRP stream we can use: why the first MSRP stream (or the first stream) was
    /// not taken.
    #[error("no usable MSRP stream: {0}")]
    NotAcceptable(Unusable),
    /// What we were asked to write is not valid (our path, address or types).
    #[error("bad local SDP parameters: {0}")]
    Local(&'static str),
}

impl SdpError {
    /// The SIP status to answer an offer carrying this SDP with: 400 (RFC 3261 §21.4.1)
    /// when it is not a valid SDP, 488 (§21.4.26) when it is but offers nothing we can
    /// take, 500 when our own parameters are at fault.
    pub fn status(self) -> u16 {
        match self {
            SdpError::NotAcceptable(_) => 488,
            SdpError::Local(_) => 500,
            // §21.5.14: the request is well formed, only larger than we take.
            SdpError::TooLarge => 513,
            _ => 400,
        }
    }

    /// A short reason text (for a Warning header or a log line).
    pub fn reason(self) -> &'static str {
        match self {
            SdpError::TooLarge => "SDP too large",
            SdpError::TooManyLines => "too many SDP lines",
            SdpError::TooManyMedia => "too many media sections",
            SdpError::LineTooLong => "SDP line too long",
            SdpError::BadText => "bad bytes in SDP",
            SdpError::BadLine => "bad SDP line",
            SdpError::UnknownType => "unknown SDP line type",
            SdpError::Order => "SDP lines out of order",
            SdpError::Version => "bad SDP version",
            SdpError::Origin => "bad o= line",
            SdpError::SessionName => "bad s= line",
            SdpError::Connection => "bad c= line",
            SdpError::Timing => "bad or missing t= line",
            SdpError::MediaLine => "bad m= line",
            SdpError::MissingConnection => "missing c= line",
            SdpError::AnswerMismatch => "answer does not match offer",
            SdpError::NotAcceptable(u) => u.reason(),
            SdpError::Local(r) => r,
        }
    }
}
