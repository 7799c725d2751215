//! Header field names (RFC 3261 §7.3 and §20): case-insensitive, with the compact forms
//! of §7.3.3 (and the ones later RFCs registered) mapped to their long names.

/// The header fields this stack reads or writes; anything else is [`HeaderName::Other`]
/// (its spelling is in the message).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HeaderName {
    Accept,
    AcceptEncoding,
    AcceptLanguage,
    AllowEvents,
    Allow,
    AuthenticationInfo,
    Authorization,
    CallId,
    Contact,
    ContentDisposition,
    ContentEncoding,
    ContentLength,
    ContentType,
    CSeq,
    Event,
    Expires,
    From,
    MaxForwards,
    MinExpires,
    ProxyAuthenticate,
    ProxyAuthorization,
    ProxyRequire,
    RecordRoute,
    ReferTo,
    ReferredBy,
    Require,
    Route,
    Server,
    SessionExpires,
    Subject,
    Supported,
    Timestamp,
    To,
    Unsupported,
    UserAgent,
    Via,
    WwwAuthenticate,
    Other,
}

/// Long name, then the compact form if it has one (RFC 3261 §7.3.3 for c e f i k l m s
/// t v; RFC 6665 o and u; RFC 3515 r; RFC 3892 b; RFC 4028 x).
const NAMES: &[(HeaderName, &str, Option<u8>)] = &[
    (HeaderName::Accept, "Accept", None),
    (HeaderName::AcceptEncoding, "Accept-Encoding", None),
    (HeaderName::AcceptLanguage, "Accept-Language", None),
    (HeaderName::AllowEvents, "Allow-Events", Some(b'u')),
    (HeaderName::Allow, "Allow", None),
    (HeaderName::AuthenticationInfo, "Authentication-Info", None),
    (HeaderName::Authorization, "Authorization", None),
    (HeaderName::CallId, "Call-ID", Some(b'i')),
    (HeaderName::Contact, "Contact", Some(b'm')),
    (HeaderName::ContentDisposition, "Content-Disposition", None),
    (HeaderName::ContentEncoding, "Content-Encoding", Some(b'e')),
    (HeaderName::ContentLength, "Content-Length", Some(b'l')),
    (HeaderName::ContentType, "Content-Type", Some(b'c')),
    (HeaderName::CSeq, "CSeq", None),
    (HeaderName::Event, "Event", Some(b'o')),
    (HeaderName::Expires, "Expires", None),
    (HeaderName::From, "From", Some(b'f')),
    (HeaderName::MaxForwards, "Max-Forwards", None),
    (HeaderName::MinExpires, "Min-Expires", None),
    (HeaderName::ProxyAuthenticate, "Proxy-Authenticate", None),
    (HeaderName::ProxyAuthorization, "Proxy-Authorization", None),
    (HeaderName::ProxyRequire, "Proxy-Require", None),
    (HeaderName::RecordRoute, "Record-Route", None),
    (HeaderName::ReferTo, "Refer-To", Some(b'r')),
    (HeaderName::ReferredBy, "Referred-By", Some(b'b')),
    (HeaderName::Require, "Require", None),
    (HeaderName::Route, "Route", None),
    (HeaderName::Server, "Server", None),
    (HeaderName::SessionExpires, "Session-Expires", Some(b'x')),
    (HeaderName::Subject, "Subject", Some(b's')),
    (HeaderName::Supported, "Supported", Some(b'k')),
    (HeaderName::Timestamp, "Timestamp", None),
    (HeaderName::To, "To", Some(b't')),
    (HeaderName::Unsupported, "Unsupported", None),
    (HeaderName::UserAgent, "User-Agent", None),
    (HeaderName::Via, "Via", Some(b'v')),
    (HeaderName::WwwAuthenticate, "WWW-Authenticate", None),
];

impl HeaderName {
    /// The name written as `n` (long or compact, any case).
    pub fn from_bytes(n: &[u8]) -> HeaderName {
        if let [c] = n {
            let c = c.to_ascii_lowercase();
            return NAMES
                .iter()
                .find(|(_, _, short)| *short == Some(c))
                .map_or(HeaderName::Other, |(h, _, _)| *h);
        }
        NAMES
            .iter()
            .find(|(_, long, _)| long.len() == n.len() && long.as_bytes().eq_ignore_ascii_case(n))
            .map_or(HeaderName::Other, |(h, _, _)| *h)
    }

    /// The long form, as this stack writes it (`""` for [`HeaderName::Other`]).
    pub fn as_str(self) -> &'static str {
        NAMES
            .iter()
            .find(|(h, _, _)| *h == self)
            .map_or("", |(_, long, _)| long)
    }

    /// Whether the header's grammar is a comma-separated list (RFC 3261 §7.3.1), so
    /// that several values may share one line and lines may repeat. The digest
    /// challenge and credential headers are not: their parameters are comma-separated.
    pub fn is_list(self) -> bool {
        matches!(
            self,
            HeaderName::Accept
                | HeaderName::AcceptEncoding
                | HeaderName::AcceptLanguage
                | HeaderName::AllowEvents
                | HeaderName::Allow
                | HeaderName::Contact
                | HeaderName::ContentEncoding
                | HeaderName::ProxyRequire
                | HeaderName::RecordRoute
                | HeaderName::Require
                | HeaderName::Route
                | HeaderName::Supported
                | HeaderName::Unsupported
                | HeaderName::Via
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_compact_forms() {
        for (written, want) in [
            (&b"Via"[..], HeaderName::Via),
            (b"v", HeaderName::Via),
            (b"V", HeaderName::Via),
            (b"VIA", HeaderName::Via),
            (b"i", HeaderName::CallId),
            (b"call-id", HeaderName::CallId),
            (b"m", HeaderName::Contact),
            (b"e", HeaderName::ContentEncoding),
            (b"l", HeaderName::ContentLength),
            (b"f", HeaderName::From),
            (b"s", HeaderName::Subject),
            (b"k", HeaderName::Supported),
            (b"t", HeaderName::To),
            (b"c", HeaderName::ContentType),
            (b"o", HeaderName::Event),
            (b"u", HeaderName::AllowEvents),
            (b"r", HeaderName::ReferTo),
            (b"b", HeaderName::ReferredBy),
            (b"x", HeaderName::SessionExpires),
            (b"cseq", HeaderName::CSeq),
            (b"www-authenticate", HeaderName::WwwAuthenticate),
            (b"z", HeaderName::Other),
            (b"X-Foo", HeaderName::Other),
            (b"Vias", HeaderName::Other),
            (b"", HeaderName::Other),
        ] {
            assert_eq!(HeaderName::from_bytes(written), want, "{written:?}");
        }
        for (h, long, _) in NAMES {
            assert_eq!(h.as_str(), *long);
            assert_eq!(HeaderName::from_bytes(long.as_bytes()), *h);
        }
        assert!(HeaderName::Via.is_list());
        assert!(!HeaderName::WwwAuthenticate.is_list());
        assert!(!HeaderName::CallId.is_list());
    }
}
