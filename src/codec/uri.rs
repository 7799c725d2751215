//! MSRP URIs: `msrp://[userinfo@]host[:port][/session-id];transport[;param]*`.
//!
//! Syntax from RFC 4975 §9 (with the authority of RFC 3986), comparison exactly as
//! RFC 4975 §6.1 defines it. Parsing borrows from the input; nothing is allocated.

use core::fmt;
use core::net::{Ipv4Addr, Ipv6Addr};

use super::chars::{ALPHANUM, TOKEN, is_hex};

/// Why a URI was refused. `Copy`, no allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UriError {
    #[error("URI scheme is not msrp or msrps")]
    Scheme,
    #[error("URI has a bad userinfo part")]
    Userinfo,
    #[error("URI has a bad host")]
    Host,
    #[error("URI has a bad port")]
    Port,
    #[error("URI has a bad session-id")]
    SessionId,
    #[error("URI has no transport parameter")]
    MissingTransport,
    #[error("URI has a bad transport parameter")]
    Transport,
    #[error("URI has a bad parameter")]
    Param,
}

/// The host part of an authority.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Host<'a> {
    /// A registered name (DNS name), as written (may contain percent-escapes).
    Name(&'a str),
    V4(Ipv4Addr),
    V6(Ipv6Addr),
}

impl Host<'_> {
    pub fn is_ip(&self) -> bool {
        !matches!(self, Host::Name(_))
    }
}

impl fmt::Display for Host<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Name(n) => f.write_str(n),
            Host::V4(a) => write!(f, "{a}"),
            Host::V6(a) => write!(f, "[{a}]"),
        }
    }
}

/// A parsed MSRP URI borrowing the text it was parsed from.
#[derive(Debug, Clone, Copy)]
pub struct Uri<'a> {
    raw: &'a str,
    secure: bool,
    userinfo: Option<&'a str>,
    host_raw: &'a str,
    host: Host<'a>,
    port: Option<u16>,
    session_id: Option<&'a str>,
    transport: &'a str,
    params: &'a str,
}

impl<'a> Uri<'a> {
    /// Parses one MSRP URI (RFC 4975 §9 `MSRP-URI`). The whole input must be the URI.
    pub fn parse(raw: &'a str) -> Result<Uri<'a>, UriError> {
        let b = raw.as_bytes();
        let (secure, rest_at) = if b.len() >= 7 && b[..7].eq_ignore_ascii_case(b"msrp://") {
            (false, 7)
        } else if b.len() >= 8 && b[..8].eq_ignore_ascii_case(b"msrps://") {
            (true, 8)
        } else {
            return Err(UriError::Scheme);
        };
        let rest = &raw[rest_at..];
        // '@' is legal only in userinfo: neither session-id nor parameters may hold it.
        let (userinfo, hostport_at) = match memchr::memchr(b'@', rest.as_bytes()) {
            Some(at) => {
                let ui = &rest[..at];
                if !ui.bytes().all(is_userinfo_byte) || !pct_ok(ui) {
                    return Err(UriError::Userinfo);
                }
                (Some(ui), at + 1)
            }
            None => (None, 0),
        };
        let hp = &rest[hostport_at..];
        let hpb = hp.as_bytes();
        // Host ends at ':' (port), '/' (session-id) or ';' (transport).
        let (host, host_raw, after_host) = if hpb.first() == Some(&b'[') {
            let close = memchr::memchr(b']', hpb).ok_or(UriError::Host)?;
            let inner = &hp[1..close];
            let addr: Ipv6Addr = inner.parse().map_err(|_| UriError::Host)?;
            (Host::V6(addr), &hp[..close + 1], close + 1)
        } else {
            let end = hpb
                .iter()
                .position(|&c| c == b':' || c == b'/' || c == b';')
                .unwrap_or(hpb.len());
            let name = &hp[..end];
            if name.is_empty() || !name.bytes().all(is_regname_byte) || !pct_ok(name) {
                return Err(UriError::Host);
            }
            let host = match parse_ipv4(name) {
                Some(a) => Host::V4(a),
                None => Host::Name(name),
            };
            (host, name, end)
        };
        let mut pos = after_host;
        let mut port = None;
        if hpb.get(pos) == Some(&b':') {
            let start = pos + 1;
            let end = hpb[start..]
                .iter()
                .position(|&c| c == b'/' || c == b';')
                .map_or(hpb.len(), |e| start + e);
            let digits = &hpb[start..end];
            port = Some(parse_port(digits).ok_or(UriError::Port)?);
            pos = end;
        }
        let mut session_id = None;
        if hpb.get(pos) == Some(&b'/') {
            let start = pos + 1;
            let end = memchr::memchr(b';', &hpb[start..]).map_or(hpb.len(), |e| start + e);
            let sid = &hp[start..end];
            if sid.is_empty() || !sid.bytes().all(is_session_id_byte) {
                return Err(UriError::SessionId);
            }
            session_id = Some(sid);
            pos = end;
        }
        if hpb.get(pos) != Some(&b';') {
            return Err(if pos == hpb.len() {
                UriError::MissingTransport
            } else {
                UriError::Host
            });
        }
        let tstart = pos + 1;
        let tend = memchr::memchr(b';', &hpb[tstart..]).map_or(hpb.len(), |e| tstart + e);
        let transport = &hp[tstart..tend];
        if transport.is_empty() || !transport.bytes().all(|c| ALPHANUM[c as usize]) {
            return Err(UriError::Transport);
        }
        let params = &hp[tend..];
        if !params.is_empty() {
            for p in params[1..].split(';') {
                let (name, value) = match p.split_once('=') {
                    Some((n, v)) => (n, Some(v)),
                    None => (p, None),
                };
                let tok = |s: &str| !s.is_empty() && s.bytes().all(|c| TOKEN[c as usize]);
                if !tok(name) || value.is_some_and(|v| !tok(v)) {
                    return Err(UriError::Param);
                }
            }
        }
        Ok(Uri {
            raw,
            secure,
            userinfo,
            host_raw,
            host,
            port,
            session_id,
            transport,
            params,
        })
    }

    /// The URI exactly as it was written.
    pub fn as_str(&self) -> &'a str {
        self.raw
    }
    /// `true` for the `msrps` scheme (TLS required, RFC 4975 §6).
    pub fn is_secure(&self) -> bool {
        self.secure
    }
    pub fn userinfo(&self) -> Option<&'a str> {
        self.userinfo
    }
    pub fn host(&self) -> Host<'a> {
        self.host
    }
    /// The host as written (brackets kept for IPv6).
    pub fn host_str(&self) -> &'a str {
        self.host_raw
    }
    pub fn port(&self) -> Option<u16> {
        self.port
    }
    pub fn session_id(&self) -> Option<&'a str> {
        self.session_id
    }
    /// The transport parameter (`tcp`, `ws`, or another token).
    pub fn transport(&self) -> &'a str {
        self.transport
    }
    /// Parameters after the transport, raw, each introduced by `;` (empty when none).
    pub fn params(&self) -> &'a str {
        self.params
    }
    /// Iterates the parameters after the transport as `(name, value)`.
    pub fn param_iter(&self) -> impl Iterator<Item = (&'a str, Option<&'a str>)> + 'a {
        let p = self.params;
        p.get(1..)
            .unwrap_or("")
            .split(';')
            .filter(|s| !s.is_empty())
            .map(|s| match s.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (s, None),
            })
    }
}

impl PartialEq for Uri<'_> {
    /// RFC 4975 §6.1: scheme (case-insensitive), host (addresses by value, names
    /// case-insensitively after percent-decoding unreserved characters), port (an explicit
    /// port never equals an absent one), session-id (case-sensitive, absent never equals
    /// present) and transport (case-insensitive) must all match; userinfo and other
    /// parameters are ignored.
    fn eq(&self, other: &Self) -> bool {
        self.secure == other.secure
            && self.port == other.port
            && self.session_id == other.session_id
            && self.transport.eq_ignore_ascii_case(other.transport)
            && match (self.host, other.host) {
                (Host::V4(a), Host::V4(b)) => a == b,
                (Host::V6(a), Host::V6(b)) => a == b,
                (Host::Name(a), Host::Name(b)) => names_equal(a, b),
                _ => false,
            }
    }
}

impl fmt::Display for Uri<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.raw)
    }
}

/// Compares reg-names case-insensitively after decoding percent-escaped unreserved
/// characters (RFC 4975 §6.1, RFC 3986 §6.2.2.2). Other escapes stay escapes: `%21` is
/// not `!`, and `%2f` equals `%2F` by the case-insensitive comparison.
fn names_equal(a: &str, b: &str) -> bool {
    if !a.contains('%') && !b.contains('%') {
        return a.eq_ignore_ascii_case(b);
    }
    let mut ia = Decoded(a.as_bytes());
    let mut ib = Decoded(b.as_bytes());
    loop {
        match (ia.next(), ib.next()) {
            (None, None) => return true,
            (Some(x), Some(y)) if x.eq_ignore_ascii_case(&y) => {}
            _ => return false,
        }
    }
}

/// Iterator over bytes with `%XX` escapes of unreserved characters decoded (input already
/// validated by `pct_ok`); any other escape comes out as its three bytes.
struct Decoded<'a>(&'a [u8]);

impl Iterator for Decoded<'_> {
    type Item = u8;
    fn next(&mut self) -> Option<u8> {
        let (&c, rest) = self.0.split_first()?;
        if let (b'%', [h, l, tail @ ..]) = (c, rest) {
            let v = hex_val(*h) << 4 | hex_val(*l);
            if is_unreserved(v) {
                self.0 = tail;
                return Some(v);
            }
        }
        self.0 = rest;
        Some(c)
    }
}

fn hex_val(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        b'A'..=b'F' => c - b'A' + 10,
        _ => 0,
    }
}

/// Every `%` is followed by two hex digits.
fn pct_ok(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while let Some(off) = memchr::memchr(b'%', &b[i..]) {
        let at = i + off;
        if at + 2 >= b.len() || !(is_hex(b[at + 1]) && is_hex(b[at + 2])) {
            return false;
        }
        i = at + 3;
    }
    true
}

fn is_unreserved(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~')
}

fn is_sub_delim(c: u8) -> bool {
    matches!(
        c,
        b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'='
    )
}

/// RFC 3986 userinfo: unreserved / pct-encoded / sub-delims / ":".
fn is_userinfo_byte(c: u8) -> bool {
    is_unreserved(c) || is_sub_delim(c) || c == b'%' || c == b':'
}

/// RFC 3986 reg-name bytes, minus ';' which in an MSRP URI always starts the transport.
fn is_regname_byte(c: u8) -> bool {
    (is_unreserved(c) || is_sub_delim(c) || c == b'%') && c != b';'
}

/// RFC 4975 §9 session-id: unreserved / "+" / "=" / "/".
fn is_session_id_byte(c: u8) -> bool {
    is_unreserved(c) || matches!(c, b'+' | b'=' | b'/')
}

fn parse_port(d: &[u8]) -> Option<u16> {
    if d.is_empty() || d.len() > 5 || !d.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let v = d.iter().fold(0u32, |a, &c| a * 10 + u32::from(c - b'0'));
    u16::try_from(v).ok()
}

/// Dotted-quad IPv4 (RFC 3986 `IPv4address`): four decimal octets, no leading zeros.
fn parse_ipv4(s: &str) -> Option<Ipv4Addr> {
    let b = s.as_bytes();
    if !b.first()?.is_ascii_digit() || !b.iter().all(|&c| c.is_ascii_digit() || c == b'.') {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_typical() {
        let u = Uri::parse("msrp://host.example.com:8493/asfd34;tcp").unwrap();
        assert!(!u.is_secure());
        assert_eq!(u.host(), Host::Name("host.example.com"));
        assert_eq!(u.port(), Some(8493));
        assert_eq!(u.session_id(), Some("asfd34"));
        assert_eq!(u.transport(), "tcp");
        assert_eq!(u.params(), "");
    }

    #[test]
    fn parses_ipv6_userinfo_params() {
        let u = Uri::parse("msrps://bob@[2001:db8::1]:2855/a/b=+;ws;x=y;z").unwrap();
        assert!(u.is_secure());
        assert_eq!(u.userinfo(), Some("bob"));
        assert_eq!(u.host(), Host::V6("2001:db8::1".parse().unwrap()));
        assert_eq!(u.host_str(), "[2001:db8::1]");
        assert_eq!(u.session_id(), Some("a/b=+"));
        assert_eq!(u.transport(), "ws");
        let p: Vec<_> = u.param_iter().collect();
        assert_eq!(p, vec![("x", Some("y")), ("z", None)]);
    }

    #[test]
    fn relay_uri_without_session() {
        let u = Uri::parse("msrps://relay.example.com;tcp").unwrap();
        assert_eq!(u.port(), None);
        assert_eq!(u.session_id(), None);
    }

    #[test]
    fn comparison_rules() {
        let eq = |a: &str, b: &str| Uri::parse(a).unwrap() == Uri::parse(b).unwrap();
        assert!(eq(
            "MSRP://Host.Example:1/s;TCP",
            "msrp://host.example:1/s;tcp"
        ));
        assert!(eq("msrp://a@h:1/s;tcp", "msrp://b@h:1/s;tcp"));
        assert!(eq("msrp://%68ost:1/s;tcp", "msrp://HOST:1/s;tcp"));
        assert!(eq("msrp://a%2eb:1/s;tcp", "msrp://A.b:1/s;tcp"));
        assert!(eq("msrp://a%2cb:1/s;tcp", "msrp://a%2Cb:1/s;tcp"));
        // Regression: reserved characters were decoded too, so `%21` equalled `!`.
        assert!(!eq("msrp://a%21b:1/s;tcp", "msrp://a!b:1/s;tcp"));
        assert!(!eq("msrp://a%2Cb:1/s;tcp", "msrp://a,b:1/s;tcp"));
        assert!(eq("msrp://[::1]:1/s;tcp", "msrp://[0:0::1]:1/s;tcp"));
        assert!(eq("msrp://h:1/s;tcp;a=b", "msrp://h:1/s;tcp"));
        assert!(!eq("msrp://h:1/S;tcp", "msrp://h:1/s;tcp"));
        assert!(!eq("msrp://h/s;tcp", "msrp://h:2855/s;tcp"));
        assert!(!eq("msrp://h:1;tcp", "msrp://h:1/s;tcp"));
        assert!(!eq("msrp://h:1/s;ws", "msrp://h:1/s;tcp"));
        assert!(!eq("msrps://h:1/s;tcp", "msrp://h:1/s;tcp"));
        assert!(!eq("msrp://127.0.0.1:1/s;tcp", "msrp://localhost:1/s;tcp"));
    }

    #[test]
    fn rejects() {
        use UriError::*;
        let cases = [
            ("http://h:1/s;tcp", Scheme),
            ("msrp:/h:1/s;tcp", Scheme),
            ("msrp://h:1/s", MissingTransport),
            ("msrp://h:99999/s;tcp", Port),
            ("msrp://h:/s;tcp", Port),
            ("msrp://h:1/;tcp", SessionId),
            ("msrp://h:1/a b;tcp", SessionId),
            ("msrp://h:1/s;", Transport),
            ("msrp://h:1/s;t-c", Transport),
            ("msrp://h:1/s;tcp;", Param),
            ("msrp://h:1/s;tcp;a=", Param),
            ("msrp://:1/s;tcp", Host),
            ("msrp://[::1:1/s;tcp", Host),
            ("msrp://[zz]:1/s;tcp", Host),
            ("msrp://h%zz:1/s;tcp", Host),
            ("msrp://u%@h:1/s;tcp", Userinfo),
            ("msrp://h a:1/s;tcp", Host),
        ];
        for (s, e) in cases {
            assert_eq!(Uri::parse(s).unwrap_err(), e, "{s}");
        }
    }
}
