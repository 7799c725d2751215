//! MSRP URIs: `msrp://[userinfo@]host[:port][/session-id];transport[;param]*`.
//!
//! Syntax from RFC 4975 §9 (with the authority of RFC 3986), comparison exactly as
//! RFC 4975 §6.1 defines it. Parsing borrows from the input; nothing is allocated.

use core::fmt;
use core::net::{Ipv4Addr, Ipv6Addr};

use super::chars::{
    ALNUM, DIGIT, DIGIT_DOT, HEX, HEX_VALUE, REGNAME, REGNAME_PLAIN, SESSION, USERINFO, all,
    contains, digits, is, is_token, span,
};

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

/// A parsed MSRP URI borrowing the text it was parsed from. Its parts are kept as
/// offsets into that text (a small `Copy` value) and sliced out when asked for.
#[derive(Clone, Copy)]
pub struct Uri<'a> {
    raw: &'a str,
    /// Start and end of the host as written; the userinfo, if any, ends one byte before.
    host_at: (usize, usize),
    /// The session-id; empty when absent (a present one is never empty).
    session_at: (usize, usize),
    /// The transport; the parameters follow it.
    transport_at: (usize, usize),
    host: HostKind,
    port: Option<u16>,
    secure: bool,
}

/// What the host is. A name is sliced from the URI when asked for; whether it is a
/// dotted-quad IPv4 address is decided then too ([`Uri::host`]), not while parsing:
/// digits and dots are also a valid reg-name, so the answer never decides whether a URI
/// parses, and a relay routing on the session-id does not need it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HostKind {
    /// A reg-name or an IPv4 address.
    Name,
    V6(Ipv6Addr),
}

impl<'a> Uri<'a> {
    /// A placeholder, never handed out (an empty path's stand-in before parsing).
    pub(crate) const EMPTY: Uri<'static> = Uri {
        raw: "",
        host_at: (0, 0),
        session_at: (0, 0),
        transport_at: (0, 0),
        host: HostKind::Name,
        port: None,
        secure: false,
    };

    /// This URI without its text: the offsets and values parsing found, for
    /// [`Uri::attach`] to put back on the same bytes later.
    pub(crate) fn detach(&self) -> (Uri<'static>, usize) {
        (Uri { raw: "", ..*self }, self.raw.len())
    }

    /// A detached URI on `raw`, which must hold the bytes it was parsed from.
    pub(crate) fn attach<'b>(&self, raw: &'b str) -> Uri<'b> {
        Uri { raw, ..*self }
    }

    /// Parses one MSRP URI (RFC 4975 §9 `MSRP-URI`). The whole input must be the URI.
    ///
    /// One pass from left to right: each part is scanned with the byte-class table up to
    /// the first byte outside its class, which must then be the delimiter that ends it.
    pub fn parse(raw: &'a str) -> Result<Uri<'a>, UriError> {
        match Uri::parse_fast(raw, 0) {
            Some((u, end)) if end == raw.len() => Ok(u),
            _ => Uri::parse_full(raw),
        }
    }

    /// The usual URI in one tight pass: `msrp[s]://host[:port][/session-id];transport`
    /// with a host name (no percent-escape) or IPv4 address, no userinfo and no
    /// parameters, from `s[start..]` up to a space or the end of `s`. Gives the URI and
    /// where it ends, or `None` for anything else, which [`Uri::parse_full`] then decides.
    /// Where this succeeds, the full parser gives the same URI.
    #[inline]
    pub(crate) fn parse_fast(s: &'a str, start: usize) -> Option<(Uri<'a>, usize)> {
        let t = s.as_bytes().get(start..)?;
        let secure = scheme(t).ok()?;
        let host_start = if secure { 8 } else { 7 };
        let mut pos = span(t, host_start, REGNAME_PLAIN);
        let host = t.get(host_start..pos).filter(|h| !h.is_empty())?;
        let mut port = None;
        if t.get(pos) == Some(&b':') {
            let (v, end) = digits(t, pos + 1)?;
            if end - (pos + 1) > 5 {
                return None;
            }
            port = Some(u16::try_from(v).ok()?);
            pos = end;
        }
        let mut session_at = (0, 0);
        if t.get(pos) == Some(&b'/') {
            let end = span(t, pos + 1, SESSION);
            if end == pos + 1 {
                return None;
            }
            session_at = (pos + 1, end);
            pos = end;
        }
        if t.get(pos) != Some(&b';') {
            return None;
        }
        let tend = span(t, pos + 1, ALNUM);
        if tend == pos + 1 || !matches!(t.get(tend), None | Some(b' ')) {
            return None;
        }
        let raw = s.get(start..start + tend)?;
        let uri = Uri {
            raw,
            host_at: (host_start, host_start + host.len()),
            session_at,
            transport_at: (pos + 1, tend),
            host: HostKind::Name,
            port,
            secure,
        };
        Some((uri, start + tend))
    }

    /// The whole grammar, for what [`Uri::parse_fast`] leaves.
    #[cold]
    #[inline(never)]
    fn parse_full(raw: &'a str) -> Result<Uri<'a>, UriError> {
        let b = raw.as_bytes();
        let secure = scheme(b)?;
        let start = if secure { 8 } else { 7 };
        // '@' is legal only in userinfo: neither host, port, session-id nor parameters may
        // hold it, so a URI that parses without userinfo holds none. Only when that fails
        // and there is an '@' is everything before the first '@' taken as userinfo.
        let e = match Uri::parse_authority(raw, secure, start) {
            Ok(u) => return Ok(u),
            Err(e) => e,
        };
        let after_scheme = b.get(start..).unwrap_or_default();
        let Some(at) = memchr::memchr(b'@', after_scheme) else {
            return Err(e);
        };
        let ui = b.get(start..start + at).unwrap_or_default();
        if !all(ui, USERINFO) || (contains(ui, b'%') && !pct_ok(ui)) {
            return Err(UriError::Userinfo);
        }
        Uri::parse_authority(raw, secure, start + at + 1)
    }

    /// Parses from the host (at `pos`) to the end.
    fn parse_authority(raw: &'a str, secure: bool, mut pos: usize) -> Result<Uri<'a>, UriError> {
        let b = raw.as_bytes();
        // Host: ends at ':' (port), '/' (session-id), ';' (transport) or the end.
        let host_start = pos;
        let host = if b.get(pos) == Some(&b'[') {
            let rest = b.get(pos..).unwrap_or_default();
            let close = pos + memchr::memchr(b']', rest).ok_or(UriError::Host)?;
            let addr: Ipv6Addr = sub(raw, pos + 1, close)
                .parse()
                .map_err(|_| UriError::Host)?;
            pos = close + 1;
            HostKind::V6(addr)
        } else {
            // Names without percent-escapes are the rule; a '%' sends the scan on with the
            // escapes checked.
            let mut end = span(b, pos, REGNAME_PLAIN);
            let escaped = b.get(end) == Some(&b'%');
            if escaped {
                end = span(b, end, REGNAME);
            }
            if end == pos || !matches!(b.get(end), None | Some(b':' | b'/' | b';')) {
                return Err(UriError::Host);
            }
            let name = b.get(pos..end).unwrap_or_default();
            if escaped && !pct_ok(name) {
                return Err(UriError::Host);
            }
            pos = end;
            HostKind::Name
        };
        let host_at = (host_start, pos);
        let mut port = None;
        if b.get(pos) == Some(&b':') {
            let start = pos + 1;
            let (v, end) = digits(b, start).ok_or(UriError::Port)?;
            if end - start > 5 || !matches!(b.get(end), None | Some(b'/' | b';')) {
                return Err(UriError::Port);
            }
            port = Some(u16::try_from(v).map_err(|_| UriError::Port)?);
            pos = end;
        }
        let mut session_at = (0, 0);
        if b.get(pos) == Some(&b'/') {
            let start = pos + 1;
            let end = span(b, start, SESSION);
            if end == start || !matches!(b.get(end), None | Some(b';')) {
                return Err(UriError::SessionId);
            }
            session_at = (start, end);
            pos = end;
        }
        if b.get(pos) != Some(&b';') {
            return Err(if pos == b.len() {
                UriError::MissingTransport
            } else {
                UriError::Host
            });
        }
        let tstart = pos + 1;
        let tend = span(b, tstart, ALNUM);
        if tend == tstart || !matches!(b.get(tend), None | Some(b';')) {
            return Err(UriError::Transport);
        }
        if let Some(list) = raw.get(tend + 1..) {
            for p in list.split(';') {
                let (name, value) = match p.split_once('=') {
                    Some((n, v)) => (n, Some(v)),
                    None => (p, None),
                };
                if !is_token(name.as_bytes()) || value.is_some_and(|v| !is_token(v.as_bytes())) {
                    return Err(UriError::Param);
                }
            }
        }
        Ok(Uri {
            raw,
            host_at,
            session_at,
            transport_at: (tstart, tend),
            host,
            port,
            secure,
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
        let scheme_len = if self.secure { 8 } else { 7 };
        (self.host_at.0 > scheme_len).then(|| sub(self.raw, scheme_len, self.host_at.0 - 1))
    }
    pub fn host(&self) -> Host<'a> {
        match self.host {
            HostKind::Name => {
                // A dotted quad is an address; anything else made of digits and dots is
                // a name.
                let name = self.host_str();
                let b = name.as_bytes();
                match b.first().is_some_and(|&c| is(c, DIGIT)) && all(b, DIGIT_DOT) {
                    true => dotted_quad(b).map_or(Host::Name(name), Host::V4),
                    false => Host::Name(name),
                }
            }
            HostKind::V6(a) => Host::V6(a),
        }
    }
    /// The host as written (brackets kept for IPv6).
    pub fn host_str(&self) -> &'a str {
        sub(self.raw, self.host_at.0, self.host_at.1)
    }
    pub fn port(&self) -> Option<u16> {
        self.port
    }
    pub fn session_id(&self) -> Option<&'a str> {
        let (s, e) = self.session_at;
        (e > s).then(|| sub(self.raw, s, e))
    }
    /// The transport parameter (`tcp`, `ws`, or another token).
    pub fn transport(&self) -> &'a str {
        sub(self.raw, self.transport_at.0, self.transport_at.1)
    }
    /// Parameters after the transport, raw, each introduced by `;` (empty when none).
    pub fn params(&self) -> &'a str {
        self.raw.get(self.transport_at.1..).unwrap_or_default()
    }
    /// Iterates the parameters after the transport as `(name, value)`.
    pub fn param_iter(&self) -> impl Iterator<Item = (&'a str, Option<&'a str>)> + 'a {
        let p = self.params();
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

impl fmt::Debug for Uri<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Uri")
            .field("raw", &self.raw)
            .field("secure", &self.secure)
            .field("userinfo", &self.userinfo())
            .field("host", &self.host())
            .field("port", &self.port)
            .field("session_id", &self.session_id())
            .field("transport", &self.transport())
            .field("params", &self.params())
            .finish()
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
            && self.session_id() == other.session_id()
            && self.transport().eq_ignore_ascii_case(other.transport())
            && match (self.host(), other.host()) {
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

/// A dotted quad exactly as `Ipv4Addr::from_str` takes one (four decimal octets of one to
/// three digits, no leading zero, none over 255), without going through its general
/// parser: every URI of a path has its host looked at, on every frame.
pub(crate) fn dotted_quad(b: &[u8]) -> Option<Ipv4Addr> {
    let mut out = [0u8; 4];
    let mut i = 0;
    for (n, octet) in out.iter_mut().enumerate() {
        if n > 0 {
            if b.get(i) != Some(&b'.') {
                return None;
            }
            i += 1;
        }
        let start = i;
        let mut v = 0u16;
        while let Some(&c) = b.get(i) {
            if !c.is_ascii_digit() || i - start == 3 {
                break;
            }
            v = v * 10 + u16::from(c - b'0');
            i += 1;
        }
        let len = i - start;
        if len == 0 || (len > 1 && b.get(start) == Some(&b'0')) {
            return None;
        }
        *octet = u8::try_from(v).ok()?;
    }
    (i == b.len()).then_some(Ipv4Addr::from(out))
}

fn hex_val(c: u8) -> u8 {
    match HEX_VALUE[usize::from(c)] {
        0xFF => 0,
        v => v,
    }
}

/// Matches `msrp://` (`false`) or `msrps://` (`true`), the letters in any case. With
/// eight bytes or more, one word compare: `| 0x20` folds case exactly on the letters
/// (only 'M' and 'm' give 'm'), and the other bytes are compared as they are.
#[inline(always)]
fn scheme(b: &[u8]) -> Result<bool, UriError> {
    const MSRP: u64 = u64::from_le_bytes(*b"msrp://\0");
    const MSRPS: u64 = u64::from_le_bytes(*b"msrps://");
    if let Some(w) = b.get(..8).and_then(|s| <[u8; 8]>::try_from(s).ok()) {
        let w = u64::from_le_bytes(w);
        if (w | 0x2020_2020) & 0x00FF_FFFF_FFFF_FFFF == MSRP {
            return Ok(false);
        }
        if w | 0x20_2020_2020 == MSRPS {
            return Ok(true);
        }
        return Err(UriError::Scheme);
    }
    if b.eq_ignore_ascii_case(b"msrp://") {
        Ok(false)
    } else {
        Err(UriError::Scheme)
    }
}

/// `raw[a..b]`, or "" where that is no slice of `raw` (callers pass offsets of ASCII
/// delimiters, so it always is).
#[inline]
fn sub(raw: &str, a: usize, b: usize) -> &str {
    raw.get(a..b).unwrap_or_default()
}

/// Every `%` is followed by two hex digits.
fn pct_ok(b: &[u8]) -> bool {
    let mut i = 0;
    while let Some(off) = b.get(i..).and_then(|r| memchr::memchr(b'%', r)) {
        let at = i + off;
        match b.get(at + 1..at + 3) {
            Some(&[h, l]) if is(h, HEX) && is(l, HEX) => i = at + 3,
            _ => return false,
        }
    }
    true
}

fn is_unreserved(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~')
}

#[cfg(test)]
mod tests {
    /// The dotted-quad shortcut agrees with the standard library's parser on random
    /// strings of digits and dots (and on the edge cases spelled out).
    #[test]
    fn dotted_quad_agrees_with_std() {
        use rand::{Rng, SeedableRng};
        let fixed = [
            "0.0.0.0",
            "255.255.255.255",
            "256.1.1.1",
            "01.1.1.1",
            "1.1.1",
            "1.1.1.1.",
            "1..1.1",
            "1.1.1.1000",
            "127.0.0.1",
            "00.0.0.0",
            "1.2.3.04",
            "",
            ".",
            "1.2.3.4.5",
        ];
        let mut rng = rand::rngs::StdRng::seed_from_u64(4975);
        let random = (0..200_000).map(|_| {
            let n = rng.random_range(0..17);
            (0..n)
                .map(|_| {
                    if rng.random_range(0..4) == 0 {
                        '.'
                    } else {
                        char::from(b'0' + rng.random_range(0..10u8))
                    }
                })
                .collect::<String>()
        });
        for s in fixed.iter().map(|s| s.to_string()).chain(random) {
            assert_eq!(
                super::dotted_quad(s.as_bytes()),
                s.parse::<core::net::Ipv4Addr>().ok(),
                "{s:?}"
            );
        }
    }

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
            ("msrp:/", Scheme),
            ("msrp://", Host),
            ("MSRPS://", Host),
            ("msrp:///s;tcp", Host),
            ("msrq://h:1/s;tcp", Scheme),
            ("msrps:/h:1/s;tcp", Scheme),
            ("-srp://h:1/s;tcp", Scheme),
            ("mSrP:\x2f/h:1/s;\x74cp;", Param),
            ("msrP:/\x0f/h:1/s;tcp", Scheme),
            ("msrs://h:1/s;tcp", Scheme),
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
