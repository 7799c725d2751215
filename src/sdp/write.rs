//! Writing SDP (RFC 8866 §5 order; RFC 4975 §8.1-§8.6 attributes). Byte-exact: CRLF line
//! ends, one space between fields, attributes in the order of [`msrp_media`].

use core::fmt::Write;

use super::msrp::{Direction, Setup, Transport};

/// `v=`, `o=`, `s=-`, `c=`, `t=0 0` (RFC 8866 §5.1-§5.9; `t=0 0` is a session without
/// time bounds, as SIP uses it, RFC 3264 §5).
pub(crate) fn session(out: &mut String, user: &str, id: u64, version: u64, address: &str) {
    let at = addr_type(address);
    let _ = write!(
        out,
        "v=0\r\no={user} {id} {version} IN {at} {address}\r\ns=-\r\nc=IN {at} {address}\r\nt=0 0\r\n"
    );
}

/// `IP6` for an IPv6 literal, `IP4` for anything else (IPv4 or a domain name).
pub(crate) fn addr_type(address: &str) -> &'static str {
    if address.parse::<core::net::Ipv6Addr>().is_ok() {
        "IP6"
    } else {
        "IP4"
    }
}

/// What one accepted MSRP media section says.
pub(crate) struct MsrpLines<'a> {
    pub port: u16,
    pub transport: Transport,
    pub path: &'a [String],
    pub accept_types: &'a [&'a str],
    pub accept_wrapped_types: &'a [&'a str],
    pub max_size: Option<u64>,
    pub setup: Setup,
    pub cema: bool,
    /// Written when `Some`.
    pub direction: Option<Direction>,
}

/// `m=message <port> TCP/MSRP|TCP/TLS/MSRP *`, then `a=path`, `a=accept-types`,
/// `a=accept-wrapped-types` (when not empty), `a=max-size` (when set), `a=setup`
/// (always, RFC 6135 §4.2.1), `a=msrp-cema` (RFC 6714 §4.2, §4.3) and the direction.
pub(crate) fn msrp_media(out: &mut String, m: &MsrpLines<'_>) {
    let _ = write!(out, "m=message {} {} *\r\n", m.port, m.transport.proto());
    let _ = write!(out, "a=path:{}\r\n", m.path.join(" "));
    let _ = write!(out, "a=accept-types:{}\r\n", m.accept_types.join(" "));
    if !m.accept_wrapped_types.is_empty() {
        let _ = write!(
            out,
            "a=accept-wrapped-types:{}\r\n",
            m.accept_wrapped_types.join(" ")
        );
    }
    if let Some(n) = m.max_size {
        let _ = write!(out, "a=max-size:{n}\r\n");
    }
    let _ = write!(out, "a=setup:{}\r\n", m.setup.as_str());
    if m.cema {
        out.push_str("a=msrp-cema\r\n");
    }
    if let Some(d) = m.direction {
        let _ = write!(out, "a={}\r\n", d.as_str());
    }
}

/// A rejected stream: the offer's `m=` line with port 0 (RFC 3264 §6).
pub(crate) fn rejected(out: &mut String, media: &str, proto: &str, formats: &str) {
    let _ = write!(out, "m={media} 0 {proto} {formats}\r\n");
}
