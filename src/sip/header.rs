//! Typed views of the header values the transaction, dialog and authentication layers
//! act on (RFC 3261 §20, grammar in §25.1): SIP URIs (§19.1), name-addr / addr-spec with
//! parameters (From, To, Contact, Route, Record-Route), Via (§20.42, RFC 3581 `rport`),
//! CSeq (§20.16), comma-separated lists (§7.3.1). All borrow the message's text.
//!
//! Values may come folded (§7.3.1): the parser only lets CR and LF into a value as
//! `CRLF 1*WSP`, so every parser here counts CR and LF as linear white space.

use super::chars::{DIGIT, HOST, SCHEME, TOKEN, all, is, is_lws, trim};
use super::msg::Method;

/// Why a header value did not parse. `Copy`, no allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error("syntax")]
    Syntax,
    #[error("number out of range")]
    Range,
}

/// Splits a comma-separated header value (RFC 3261 §7.3.1) into its elements, ignoring
/// commas inside quoted strings and `<...>`; empty elements are skipped. Elements are
/// trimmed of linear white space.
pub fn split_list(s: &str) -> ListIter<'_> {
    ListIter { rest: s }
}

/// Iterator of [`split_list`].
#[derive(Debug, Clone)]
pub struct ListIter<'a> {
    rest: &'a str,
}

impl<'a> Iterator for ListIter<'a> {
    type Item = &'a str;
    fn next(&mut self) -> Option<&'a str> {
        loop {
            if self.rest.is_empty() {
                return None;
            }
            let b = self.rest.as_bytes();
            let (mut quoted, mut angle, mut esc) = (false, false, false);
            let mut cut = b.len();
            for (i, &c) in b.iter().enumerate() {
                if quoted {
                    if esc {
                        esc = false;
                    } else if c == b'\\' {
                        esc = true;
                    } else if c == b'"' {
                        quoted = false;
                    }
                    continue;
                }
                match c {
                    b'"' => quoted = true,
                    b'<' => angle = true,
                    b'>' => angle = false,
                    b',' if !angle => {
                        cut = i;
                        break;
                    }
                    _ => {}
                }
            }
            let item = trim(self.rest.get(..cut).unwrap_or(""));
            self.rest = self.rest.get(cut + 1..).unwrap_or("");
            if !item.is_empty() {
                return Some(item);
            }
        }
    }
}

/// The end of a quoted string starting at `s[0] == '"'`: the index just past the
/// closing quote, honouring `\` escapes (§25.1 quoted-pair).
fn quoted_end(s: &[u8]) -> Option<usize> {
    let mut esc = false;
    for (i, &c) in s.iter().enumerate().skip(1) {
        if esc {
            esc = false;
        } else if c == b'\\' {
            esc = true;
        } else if c == b'"' {
            return Some(i + 1);
        }
    }
    None
}

/// The parameters `;name[=value]...` of a URI or header (§19.1.1, §25.1 `generic-param`),
/// as written; iterate with [`Params::iter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Params<'a>(pub &'a str);

impl<'a> Params<'a> {
    /// `(name, value)` pairs; a quoted value keeps its quotes off, its escapes on.
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, Option<&'a str>)> + 'a {
        ParamIter { rest: self.0 }
    }

    /// The value of parameter `name` (case-insensitive): `None` when absent,
    /// `Some(None)` when present without a value.
    pub fn get(&self, name: &str) -> Option<Option<&'a str>> {
        self.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    pub fn as_str(&self) -> &'a str {
        self.0
    }
}

struct ParamIter<'a> {
    rest: &'a str,
}

impl<'a> Iterator for ParamIter<'a> {
    type Item = (&'a str, Option<&'a str>);
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let s = trim(self.rest);
            let s = s.strip_prefix(';').unwrap_or(s);
            if s.is_empty() {
                self.rest = "";
                return None;
            }
            let b = s.as_bytes();
            // The end of this parameter: the next ';' outside a quoted string.
            let mut end = b.len();
            let mut i = 0;
            while i < b.len() {
                match b[i] {
                    b'"' => match quoted_end(b.get(i..).unwrap_or_default()) {
                        Some(e) => i += e,
                        None => i = b.len(),
                    },
                    b';' => {
                        end = i;
                        break;
                    }
                    _ => i += 1,
                }
            }
            let p = s.get(..end).unwrap_or("");
            self.rest = s.get(end..).unwrap_or("");
            let (name, value) = match p.find('=') {
                Some(eq) => {
                    let v = trim(p.get(eq + 1..).unwrap_or(""));
                    let v = v
                        .strip_prefix('"')
                        .and_then(|v| v.strip_suffix('"'))
                        .unwrap_or(v);
                    (trim(p.get(..eq).unwrap_or("")), Some(v))
                }
                None => (trim(p), None),
            };
            if !name.is_empty() {
                return Some((name, value));
            }
        }
    }
}

/// `host [":" port]` (§25.1 hostport): a host name, IPv4 address or bracketed IPv6
/// reference, and an optional port.
pub fn parse_hostport(s: &str) -> Result<(&str, Option<u16>), ValueError> {
    let b = s.as_bytes();
    let (host, rest) = if b.first() == Some(&b'[') {
        let close = s.find(']').ok_or(ValueError::Syntax)?;
        let inner = s.get(1..close).ok_or(ValueError::Syntax)?;
        if inner.is_empty()
            || !inner
                .bytes()
                .all(|c| c.is_ascii_hexdigit() || c == b':' || c == b'.')
        {
            return Err(ValueError::Syntax);
        }
        (
            s.get(..close + 1).ok_or(ValueError::Syntax)?,
            s.get(close + 1..).unwrap_or(""),
        )
    } else {
        let end = s.find(':').unwrap_or(s.len());
        let h = s.get(..end).ok_or(ValueError::Syntax)?;
        if !all(h.as_bytes(), HOST) {
            return Err(ValueError::Syntax);
        }
        (h, s.get(end..).unwrap_or(""))
    };
    let port = match rest.strip_prefix(':') {
        None if rest.is_empty() => None,
        None => return Err(ValueError::Syntax),
        Some(p) => Some(parse_port(p)?),
    };
    Ok((host, port))
}

fn parse_port(p: &str) -> Result<u16, ValueError> {
    if !all(p.as_bytes(), DIGIT) || p.len() > 5 {
        return Err(ValueError::Syntax);
    }
    p.parse::<u16>().map_err(|_| ValueError::Range)
}

/// A 32-bit decimal (1*DIGIT); more than ten digits or a value above `u32::MAX` is
/// [`ValueError::Range`].
pub fn parse_u32(s: &str) -> Result<u32, ValueError> {
    let s = trim(s);
    if !all(s.as_bytes(), DIGIT) {
        return Err(ValueError::Syntax);
    }
    s.parse::<u32>().map_err(|_| ValueError::Range)
}

/// A URI (RFC 3261 §19.1): `sip:` and `sips:` are parsed into user, host, port,
/// parameters and headers; any other scheme (`tel:`, `urn:`...) keeps only its scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Uri<'a> {
    raw: &'a str,
    scheme: &'a str,
    user: Option<&'a str>,
    host: &'a str,
    port: Option<u16>,
    params: Params<'a>,
    headers: &'a str,
}

impl<'a> Uri<'a> {
    pub fn parse(s: &'a str) -> Result<Uri<'a>, ValueError> {
        let colon = s.find(':').ok_or(ValueError::Syntax)?;
        let scheme = s.get(..colon).ok_or(ValueError::Syntax)?;
        let sb = scheme.as_bytes();
        if !sb.first().is_some_and(u8::is_ascii_alphabetic) || !all(sb, SCHEME) {
            return Err(ValueError::Syntax);
        }
        let rest = s.get(colon + 1..).unwrap_or("");
        if rest.is_empty() || rest.bytes().any(|c| c <= b' ' || c == 0x7F) {
            return Err(ValueError::Syntax);
        }
        let mut uri = Uri {
            raw: s,
            scheme,
            user: None,
            host: "",
            port: None,
            params: Params(""),
            headers: "",
        };
        if !uri.is_sip() {
            return Ok(uri);
        }
        let (userinfo, hostpart) = match rest.find('@') {
            Some(at) => (rest.get(..at), rest.get(at + 1..).unwrap_or("")),
            None => (None, rest),
        };
        if let Some(ui) = userinfo {
            let user = ui.split(':').next().unwrap_or("");
            if user.is_empty() {
                return Err(ValueError::Syntax);
            }
            uri.user = Some(user);
        }
        let (hostpart, headers) = match hostpart.find('?') {
            Some(q) => (
                hostpart.get(..q).unwrap_or(""),
                hostpart.get(q..).unwrap_or(""),
            ),
            None => (hostpart, ""),
        };
        let (hp, params) = match hostpart.find(';') {
            Some(p) => (
                hostpart.get(..p).unwrap_or(""),
                hostpart.get(p..).unwrap_or(""),
            ),
            None => (hostpart, ""),
        };
        let (host, port) = parse_hostport(hp)?;
        uri.host = host;
        uri.port = port;
        uri.params = Params(params);
        uri.headers = headers;
        Ok(uri)
    }

    pub fn as_str(&self) -> &'a str {
        self.raw
    }
    pub fn scheme(&self) -> &'a str {
        self.scheme
    }
    /// `sip:` or `sips:` (case-insensitive).
    pub fn is_sip(&self) -> bool {
        self.scheme.eq_ignore_ascii_case("sip") || self.scheme.eq_ignore_ascii_case("sips")
    }
    pub fn is_sips(&self) -> bool {
        self.scheme.eq_ignore_ascii_case("sips")
    }
    pub fn user(&self) -> Option<&'a str> {
        self.user
    }
    /// The host as written (`[..]` kept around IPv6); empty for non-SIP schemes.
    pub fn host(&self) -> &'a str {
        self.host
    }
    pub fn port(&self) -> Option<u16> {
        self.port
    }
    pub fn params(&self) -> Params<'a> {
        self.params
    }
    /// The `?headers` part, `?` included, or `""`.
    pub fn headers(&self) -> &'a str {
        self.headers
    }
    /// The `lr` parameter: a loose router (§16.12, §19.1.1).
    pub fn lr(&self) -> bool {
        self.params.has("lr")
    }
    pub fn transport(&self) -> Option<&'a str> {
        self.params.get("transport").flatten()
    }
    pub fn maddr(&self) -> Option<&'a str> {
        self.params.get("maddr").flatten()
    }
    /// The URI with its `?headers` part removed (§12.2.1.1: a Request-URI taken from a
    /// strict route "MUST NOT" carry headers... and §19.1.1 forbids them there).
    pub fn without_headers(&self) -> &'a str {
        self.raw
            .get(..self.raw.len() - self.headers.len())
            .unwrap_or(self.raw)
    }
}

/// `name-addr` or `addr-spec` followed by header parameters (§20.10, §20.20, §20.39...),
/// the shape of From, To, Contact, Route and Record-Route values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NameAddr<'a> {
    /// The display name, quotes removed (escapes kept).
    pub display: Option<&'a str>,
    /// The URI text (inside `<>` when it was bracketed); `*` for a wildcard Contact.
    pub uri: &'a str,
    /// Header parameters after the address (`;tag=...`), as written.
    pub params: Params<'a>,
    /// The whole value as written.
    pub raw: &'a str,
}

impl<'a> NameAddr<'a> {
    pub fn parse(s: &'a str) -> Result<NameAddr<'a>, ValueError> {
        let raw = trim(s);
        if raw == "*" {
            return Ok(NameAddr {
                display: None,
                uri: raw,
                params: Params(""),
                raw,
            });
        }
        let b = raw.as_bytes();
        let (display, rest) = if b.first() == Some(&b'"') {
            let end = quoted_end(b).ok_or(ValueError::Syntax)?;
            let d = raw.get(1..end - 1).ok_or(ValueError::Syntax)?;
            let rest = trim(raw.get(end..).unwrap_or(""));
            if !rest.starts_with('<') {
                return Err(ValueError::Syntax);
            }
            (Some(d), rest)
        } else if let Some(lt) = raw.find('<') {
            let d = trim(raw.get(..lt).unwrap_or(""));
            // A display name without quotes is a run of tokens (§25.1 display-name).
            if !d.bytes().all(|c| is(c, TOKEN) || is_lws(c)) {
                return Err(ValueError::Syntax);
            }
            ((!d.is_empty()).then_some(d), raw.get(lt..).unwrap_or(""))
        } else {
            // addr-spec: the URI ends at the first ';' (header parameters follow).
            let end = raw.find(';').unwrap_or(raw.len());
            let uri = trim(raw.get(..end).unwrap_or(""));
            Uri::parse(uri)?;
            return Ok(NameAddr {
                display: None,
                uri,
                params: Params(raw.get(end..).unwrap_or("")),
                raw,
            });
        };
        let inner = rest.strip_prefix('<').ok_or(ValueError::Syntax)?;
        let gt = inner.find('>').ok_or(ValueError::Syntax)?;
        let uri = inner.get(..gt).ok_or(ValueError::Syntax)?;
        Uri::parse(uri)?;
        let params = trim(inner.get(gt + 1..).unwrap_or(""));
        if !params.is_empty() && !params.starts_with(';') {
            return Err(ValueError::Syntax);
        }
        Ok(NameAddr {
            display,
            uri,
            params: Params(params),
            raw,
        })
    }

    /// The `tag` parameter (§19.3).
    pub fn tag(&self) -> Option<&'a str> {
        self.params.get("tag").flatten().filter(|t| !t.is_empty())
    }

    /// The URI, parsed ([`NameAddr::parse`] has checked it does).
    pub fn parsed_uri(&self) -> Option<Uri<'a>> {
        Uri::parse(self.uri).ok()
    }
}

/// A Via value (§20.42): `SIP/2.0/<transport> sent-by *(;param)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Via<'a> {
    /// The transport token as written (`UDP`, `TCP`, `TLS`, `WS`...).
    pub transport: &'a str,
    /// The sent-by host as written (IPv6 in brackets).
    pub host: &'a str,
    pub port: Option<u16>,
    pub params: Params<'a>,
    pub raw: &'a str,
}

impl<'a> Via<'a> {
    pub fn parse(s: &'a str) -> Result<Via<'a>, ValueError> {
        let raw = trim(s);
        // sent-protocol: name SLASH version SLASH transport, SLASH = SWS "/" SWS.
        let mut rest = raw;
        let mut parts = [""; 3];
        for (i, part) in parts.iter_mut().enumerate() {
            let r = trim(rest);
            let end = r.bytes().position(|c| !is(c, TOKEN)).unwrap_or(r.len());
            *part = r.get(..end).unwrap_or("");
            if part.is_empty() {
                return Err(ValueError::Syntax);
            }
            let after = r.get(end..).unwrap_or("");
            rest = if i < 2 {
                trim(after).strip_prefix('/').ok_or(ValueError::Syntax)?
            } else {
                after
            };
        }
        if !parts[0].eq_ignore_ascii_case("SIP") {
            return Err(ValueError::Syntax);
        }
        if !rest.starts_with(|c: char| c.is_ascii() && is_lws(c as u8)) {
            return Err(ValueError::Syntax);
        }
        let rest = trim(rest);
        let end = rest
            .bytes()
            .position(|c| c == b';' || is_lws(c))
            .unwrap_or(rest.len());
        let (host, port) = parse_hostport(rest.get(..end).unwrap_or(""))?;
        let params = trim(rest.get(end..).unwrap_or(""));
        if !params.is_empty() && !params.starts_with(';') {
            return Err(ValueError::Syntax);
        }
        Ok(Via {
            transport: parts[2],
            host,
            port,
            params: Params(params),
            raw,
        })
    }

    pub fn branch(&self) -> Option<&'a str> {
        self.params
            .get("branch")
            .flatten()
            .filter(|b| !b.is_empty())
    }
    pub fn received(&self) -> Option<&'a str> {
        self.params.get("received").flatten()
    }
    /// RFC 3581 `rport`: `None` absent, `Some(None)` present without a value (a request
    /// asking for it), `Some(Some(p))` filled in.
    pub fn rport(&self) -> Option<Option<u16>> {
        self.params
            .get("rport")
            .map(|v| v.and_then(|p| parse_port(p).ok()))
    }
    pub fn maddr(&self) -> Option<&'a str> {
        self.params.get("maddr").flatten()
    }
    pub fn ttl(&self) -> Option<u8> {
        self.params
            .get("ttl")
            .flatten()
            .and_then(|t| t.parse().ok())
    }
    /// Whether the branch carries the RFC 3261 magic cookie (§8.1.1.7).
    pub fn is_rfc3261(&self) -> bool {
        self.branch()
            .is_some_and(|b| b.starts_with(super::ids::MAGIC_COOKIE))
    }
    /// Whether two sent-by values are equal (§17.2.3): host case-insensitively and the
    /// port as written (absent equals absent only).
    pub fn same_sent_by(&self, other: &Via<'_>) -> bool {
        self.host.eq_ignore_ascii_case(other.host) && self.port == other.port
    }
}

/// A CSeq value (§20.16).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CSeq<'a> {
    pub seq: u32,
    pub method: Method,
    pub method_str: &'a str,
}

impl<'a> CSeq<'a> {
    /// `1*DIGIT LWS Method`; the number must be below 2**31 (§8.1.1.5).
    pub fn parse(s: &'a str) -> Result<CSeq<'a>, ValueError> {
        let s = trim(s);
        let sp = s.bytes().position(is_lws).ok_or(ValueError::Syntax)?;
        let seq = parse_u32(s.get(..sp).unwrap_or(""))?;
        if seq >= 1 << 31 {
            return Err(ValueError::Range);
        }
        let m = trim(s.get(sp..).unwrap_or(""));
        if !all(m.as_bytes(), TOKEN) {
            return Err(ValueError::Syntax);
        }
        Ok(CSeq {
            seq,
            method: Method::from_str(m),
            method_str: m,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists() {
        for (v, want) in [
            ("a, b ,c", &["a", "b", "c"][..]),
            ("a,,b,", &["a", "b"]),
            (
                "\"Doe, John\" <sip:j@x>, <sip:a,b@y>;q=1",
                &["\"Doe, John\" <sip:j@x>", "<sip:a,b@y>;q=1"],
            ),
            ("\"a\\\",b\" <sip:x>", &["\"a\\\",b\" <sip:x>"]),
            (
                "SIP/2.0/UDP a;branch=1,\r\n SIP/2.0/TCP b",
                &["SIP/2.0/UDP a;branch=1", "SIP/2.0/TCP b"],
            ),
            ("", &[]),
            (" , ", &[]),
        ] {
            assert_eq!(split_list(v).collect::<Vec<_>>(), want, "{v:?}");
        }
    }

    #[test]
    fn params() {
        let p = Params(";tag=1928301774 ; lr;X=\"a;b\";maddr=239.255.255.1;=x;;");
        assert_eq!(
            p.iter().collect::<Vec<_>>(),
            [
                ("tag", Some("1928301774")),
                ("lr", None),
                ("X", Some("a;b")),
                ("maddr", Some("239.255.255.1")),
            ]
        );
        assert_eq!(p.get("x"), Some(Some("a;b")));
        assert_eq!(p.get("LR"), Some(None));
        assert_eq!(p.get("ttl"), None);
    }

    #[test]
    fn uris() {
        let u =
            Uri::parse("sip:alice;day=tue:pw@atlanta.com:5060;transport=TCP;lr?subject=x").unwrap();
        assert_eq!(u.scheme(), "sip");
        assert_eq!(u.user(), Some("alice;day=tue"));
        assert_eq!(u.host(), "atlanta.com");
        assert_eq!(u.port(), Some(5060));
        assert_eq!(u.transport(), Some("TCP"));
        assert!(u.lr());
        assert_eq!(u.headers(), "?subject=x");
        assert_eq!(
            u.without_headers(),
            "sip:alice;day=tue:pw@atlanta.com:5060;transport=TCP;lr"
        );
        let v6 = Uri::parse("SIPS:[2001:db8::1]:5061").unwrap();
        assert!(v6.is_sips());
        assert_eq!((v6.host(), v6.port()), ("[2001:db8::1]", Some(5061)));
        let tel = Uri::parse("tel:+1-201-555-0123").unwrap();
        assert!(!tel.is_sip());
        assert_eq!(tel.scheme(), "tel");
        for bad in [
            "",
            "sip",
            ":x",
            "1sip:x",
            "sip:",
            "sip:a b",
            "sip:@host",
            "sip:host:99999",
            "sip:host:",
            "sip:[::1",
            "sip:[]",
            "sip:ho$t",
            "sip:host:5x",
            "s%p:x",
        ] {
            assert!(Uri::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(Uri::parse("sip:h:65536"), Err(ValueError::Range));
    }

    #[test]
    fn name_addrs() {
        for (v, display, uri, tag) in [
            (
                "Bob <sip:bob@biloxi.com>;tag=a6c85cf",
                Some("Bob"),
                "sip:bob@biloxi.com",
                Some("a6c85cf"),
            ),
            (
                "\"A. G. Bell\" <sip:agb@bell-telephone.com> ;tag=a48s",
                Some("A. G. Bell"),
                "sip:agb@bell-telephone.com",
                Some("a48s"),
            ),
            (
                "sip:+12125551212@server.phone2net.com;tag=887s",
                None,
                "sip:+12125551212@server.phone2net.com",
                Some("887s"),
            ),
            ("<sip:a@b;lr>", None, "sip:a@b;lr", None),
            (
                "Anonymous <sip:c8oqz84zk7z@privacy.org>;tag=hyh8",
                Some("Anonymous"),
                "sip:c8oqz84zk7z@privacy.org",
                Some("hyh8"),
            ),
            ("*", None, "*", None),
            ("<sip:x@y>;tag=", None, "sip:x@y", None),
            (
                "\"\\\"q\\\"\" <tel:123>",
                Some("\\\"q\\\""),
                "tel:123",
                None,
            ),
        ] {
            let n = NameAddr::parse(v).unwrap_or_else(|e| panic!("{v:?}: {e}"));
            assert_eq!((n.display, n.uri, n.tag()), (display, uri, tag), "{v:?}");
        }
        for bad in [
            "",
            "Bob",
            "<sip:x",
            "\"Bob <sip:x>",
            "\"Bob\" sip:x",
            "<sip:x> junk",
            "Bo@b <sip:x>",
            "<nocolon>",
        ] {
            assert!(NameAddr::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn vias() {
        let v = Via::parse(
            "SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK776asdhds ;received=192.0.2.1;rport=5066",
        )
        .unwrap();
        assert_eq!(
            (v.transport, v.host, v.port),
            ("UDP", "pc33.atlanta.com", None)
        );
        assert_eq!(v.branch(), Some("z9hG4bK776asdhds"));
        assert_eq!(v.received(), Some("192.0.2.1"));
        assert_eq!(v.rport(), Some(Some(5066)));
        assert!(v.is_rfc3261());
        let v = Via::parse("SIP / 2.0 / TCP\r\n [2001:db8::9]:5070;rport;maddr=x;ttl=16").unwrap();
        assert_eq!(
            (v.transport, v.host, v.port),
            ("TCP", "[2001:db8::9]", Some(5070))
        );
        assert_eq!(v.rport(), Some(None));
        assert_eq!((v.maddr(), v.ttl()), (Some("x"), Some(16)));
        assert!(!v.is_rfc3261());
        assert_eq!(v.branch(), None);
        let w = Via::parse("SIP/2.0/UDP [2001:DB8::9]:5070").unwrap();
        assert!(v.same_sent_by(&w));
        assert!(!v.same_sent_by(&Via::parse("SIP/2.0/TCP [2001:db8::9]").unwrap()));
        for bad in [
            "",
            "SIP/2.0",
            "SIP/2.0/UDP",
            "SIP/2.0/UDP ",
            "HTTP/1.1/TCP h",
            "SIP/2.0/UDPh",
            "SIP/2.0/UDP h junk",
            "SIP/2.0/UDP h:x",
            "SIP//UDP h",
        ] {
            assert!(Via::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn cseqs() {
        let c = CSeq::parse(" 314159 INVITE ").unwrap();
        assert_eq!(
            (c.seq, c.method, c.method_str),
            (314159, Method::Invite, "INVITE")
        );
        let c = CSeq::parse("1\r\n\tFOO").unwrap();
        assert_eq!((c.method, c.method_str), (Method::Other, "FOO"));
        assert_eq!(CSeq::parse("2147483648 BYE"), Err(ValueError::Range));
        assert_eq!(CSeq::parse("99999999999 BYE"), Err(ValueError::Range));
        for bad in ["", "1", "INVITE", "x INVITE", "1 IN@VITE", "-1 BYE"] {
            assert!(CSeq::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(parse_u32(" 70 "), Ok(70));
        assert_eq!(parse_u32("4294967296"), Err(ValueError::Range));
        assert_eq!(parse_u32("7 0"), Err(ValueError::Syntax));
    }
}
