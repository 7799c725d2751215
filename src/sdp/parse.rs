//! The SDP line grammar (RFC 8866 §5): `<type>=<value>` lines ended by CRLF or LF, a
//! session section (`v=`, `o=`, `s=`, then optional lines, at least one `t=`) and media
//! sections each starting with `m=` (§5.14).
//!
//! Strict where RFC 8866 is: `v=0` is the first line and `o=`, `s=` follow in that
//! order (§5); no whitespace on either side of `=`, the type is one lowercase letter,
//! and a letter §5 does not define refuses the whole description (§5: a parser must
//! ignore a description with a type letter it does not understand); at least one `t=`
//! (§5.9); every media section has a `c=` or inherits the session's (§5.7). No NUL,
//! bare CR or other control byte, and the text is UTF-8 (§5, §6.10 default charset).
//! Tolerant where it can be: attributes (`a=`) of any name are kept and ignored unless
//! asked for (§5.13), extra blank lines at the very end are skipped, and so is a last
//! line without its newline.
//!
//! Everything borrows the input; only the line index (vectors bounded by [`Limits`])
//! is allocated.

use core::net::{Ipv4Addr, Ipv6Addr};

use super::SdpError;

/// Limits on what one SDP may hold. The defaults are far above any chat offer (a few
/// hundred bytes) and bound what a hostile peer can make us index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Total bytes.
    pub max_size: usize,
    /// Lines, blank trailing lines included.
    pub max_lines: usize,
    /// One line's bytes, without its line end.
    pub max_line: usize,
    /// `m=` sections.
    pub max_media: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_size: 16 * 1024,
            max_lines: 256,
            max_line: 4096,
            max_media: 16,
        }
    }
}

/// The `o=` line (RFC 8866 §5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin<'a> {
    pub username: &'a str,
    /// A numeric string (digits only, any length).
    pub session_id: &'a str,
    /// A numeric string (digits only, any length).
    pub session_version: &'a str,
    pub net_type: &'a str,
    pub addr_type: &'a str,
    pub address: &'a str,
}

/// The address type of a `c=` line (RFC 8866 §5.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddrType {
    Ip4,
    Ip6,
    /// Another token (kept, never matched).
    Other,
}

/// A `c=` line (RFC 8866 §5.7): `<nettype> <addrtype> <connection-address>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Connection<'a> {
    pub net_type: &'a str,
    pub addr_type: AddrType,
    /// The address or FQDN, without a multicast `/ttl` or `/count` suffix.
    pub address: &'a str,
}

impl Connection<'_> {
    /// `true` for `IN IP4` and `IN IP6` (the only ones an MSRP peer can use).
    pub fn is_internet(&self) -> bool {
        self.net_type == "IN" && self.addr_type != AddrType::Other
    }
}

/// An `a=` line (RFC 8866 §5.13): `<name>` or `<name>:<value>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attribute<'a> {
    pub name: &'a str,
    pub value: Option<&'a str>,
}

/// One media section (RFC 8866 §5.14): the `m=` line and what follows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Media<'a> {
    pub media: &'a str,
    pub port: u16,
    /// The `/<number of ports>` suffix, if any.
    pub port_count: Option<u16>,
    pub proto: &'a str,
    /// The format list as written (at least one format).
    pub formats: &'a str,
    /// The first `c=` of this section.
    pub connection: Option<Connection<'a>>,
    pub attributes: Vec<Attribute<'a>>,
}

impl<'a> Media<'a> {
    /// The first attribute with this name (names compare case-sensitively, §5.13).
    pub fn attribute(&self, name: &str) -> Option<Attribute<'a>> {
        self.attributes.iter().copied().find(|a| a.name == name)
    }
    /// How many attributes have this name.
    pub fn count(&self, name: &str) -> usize {
        self.attributes.iter().filter(|a| a.name == name).count()
    }
}

/// A parsed session description borrowing its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sdp<'a> {
    pub text: &'a str,
    pub origin: Origin<'a>,
    pub session_name: &'a str,
    /// The session-level `c=`.
    pub connection: Option<Connection<'a>>,
    /// Session-level attributes.
    pub attributes: Vec<Attribute<'a>>,
    pub media: Vec<Media<'a>>,
}

/// Which part of the description a line is in.
#[derive(Clone, Copy, PartialEq, Eq)]
enum At {
    Start,
    Version,
    Origin,
    Session,
    Media,
}

impl<'a> Sdp<'a> {
    /// Parses with the default [`Limits`].
    pub fn parse(input: &'a [u8]) -> Result<Sdp<'a>, SdpError> {
        Sdp::parse_with(input, Limits::default())
    }

    /// Parses a session description (RFC 8866 §5, §9 grammar).
    pub fn parse_with(input: &'a [u8], limits: Limits) -> Result<Sdp<'a>, SdpError> {
        if input.len() > limits.max_size {
            return Err(SdpError::TooLarge);
        }
        let text = core::str::from_utf8(input).map_err(|_| SdpError::BadText)?;
        let mut at = At::Start;
        let mut origin = None;
        let mut session_name = "";
        let mut connection = None;
        let mut attributes = Vec::new();
        let mut media: Vec<Media<'a>> = Vec::new();
        let mut timing = false;
        // Lines: split on LF, strip one CR before it. The piece after the last LF is a
        // last line without newline (or empty).
        let body = text.trim_end_matches(['\r', '\n']);
        if body.is_empty() {
            return Err(SdpError::Version);
        }
        // What follows is line ends only; a CR there must come right before an LF.
        let tail = text.get(body.len()..).unwrap_or_default();
        if tail.contains("\r\r") || tail.ends_with('\r') {
            return Err(SdpError::BadText);
        }
        let mut lines = 0usize;
        for raw in body.split('\n') {
            lines += 1;
            if lines > limits.max_lines {
                return Err(SdpError::TooManyLines);
            }
            let line = raw.strip_suffix('\r').unwrap_or(raw);
            if line.len() > limits.max_line {
                return Err(SdpError::LineTooLong);
            }
            // Attribute values are `byte-string` (RFC 8866 §9: any octet but NUL, CR
            // and LF); what we read from them is checked by its own grammar (an
            // accept-types entry with control bytes is unusable: 488, not 400). Other
            // lines stay printable.
            let bad = |b: u8| {
                if line.starts_with("a=") {
                    b == 0
                } else {
                    (b < 0x20 && b != b'\t') || b == 0x7f
                }
            };
            if line.bytes().any(bad) {
                return Err(SdpError::BadText);
            }
            let b = line.as_bytes();
            let (ty, value) = match b {
                [t, b'=', ..] if t.is_ascii_lowercase() => (*t, line.get(2..).unwrap_or_default()),
                _ => return Err(SdpError::BadLine),
            };
            if value.starts_with([' ', '\t']) && ty != b's' && ty != b'i' {
                return Err(SdpError::BadLine);
            }
            if !b"vosiuepcbtrzkam".contains(&ty) {
                return Err(SdpError::UnknownType);
            }
            at = match (at, ty) {
                (At::Start, b'v') => {
                    if value != "0" {
                        return Err(SdpError::Version);
                    }
                    At::Version
                }
                (At::Start, _) => return Err(SdpError::Version),
                (At::Version, b'o') => {
                    origin = Some(parse_origin(value)?);
                    At::Origin
                }
                (At::Origin, b's') => {
                    if value.is_empty() {
                        return Err(SdpError::SessionName);
                    }
                    session_name = value;
                    At::Session
                }
                (At::Version | At::Origin, _) => return Err(SdpError::Order),
                (At::Session, b'i' | b'u' | b'e' | b'p' | b'b' | b'r' | b'z' | b'k') => At::Session,
                (At::Session, b'c') => {
                    if connection.is_some() {
                        return Err(SdpError::Order);
                    }
                    connection = Some(parse_connection(value)?);
                    At::Session
                }
                (At::Session, b't') => {
                    parse_timing(value)?;
                    timing = true;
                    At::Session
                }
                (At::Session, b'a') => {
                    attributes.push(parse_attribute(value)?);
                    At::Session
                }
                (At::Session | At::Media, b'm') => {
                    if !timing {
                        return Err(SdpError::Timing);
                    }
                    if media.len() >= limits.max_media {
                        return Err(SdpError::TooManyMedia);
                    }
                    media.push(parse_media(value)?);
                    At::Media
                }
                (At::Media, b'i' | b'b' | b'k') => At::Media,
                (At::Media, b'c') => {
                    let c = parse_connection(value)?;
                    if let Some(m) = media.last_mut() {
                        m.connection.get_or_insert(c);
                    }
                    At::Media
                }
                (At::Media, b'a') => {
                    let a = parse_attribute(value)?;
                    if let Some(m) = media.last_mut() {
                        m.attributes.push(a);
                    }
                    At::Media
                }
                (At::Session | At::Media, _) => return Err(SdpError::Order),
            };
        }
        if matches!(at, At::Start | At::Version) {
            return Err(SdpError::Origin);
        }
        if at == At::Origin {
            return Err(SdpError::SessionName);
        }
        if !timing {
            return Err(SdpError::Timing);
        }
        if connection.is_none() && media.iter().any(|m| m.connection.is_none()) {
            return Err(SdpError::MissingConnection);
        }
        let origin = origin.ok_or(SdpError::Origin)?;
        Ok(Sdp {
            text,
            origin,
            session_name,
            connection,
            attributes,
            media,
        })
    }

    /// The `c=` that applies to media section `i`: its own, else the session's (§5.7).
    pub fn connection_for(&self, i: usize) -> Option<Connection<'a>> {
        self.media
            .get(i)
            .and_then(|m| m.connection)
            .or(self.connection)
    }

    /// The first session-level attribute with this name.
    pub fn attribute(&self, name: &str) -> Option<Attribute<'a>> {
        self.attributes.iter().copied().find(|a| a.name == name)
    }
}

/// `true` for RFC 8866's `token` (§9, the same as RFC 4566's).
pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_token_char)
}

pub(crate) fn is_token_char(c: u8) -> bool {
    matches!(c, b'!' | b'#'..=b'\'' | b'*' | b'+' | b'-' | b'.' | b'0'..=b'9' | b'A'..=b'Z' | b'^'..=b'~')
}

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit())
}

/// Exactly `n` fields separated by single spaces.
fn fields<const N: usize>(value: &str) -> Option<[&str; N]> {
    let mut out = [""; N];
    let mut it = value.split(' ');
    for slot in out.iter_mut() {
        *slot = it.next().filter(|f| !f.is_empty())?;
    }
    it.next().is_none().then_some(out)
}

/// `o=<username> <sess-id> <sess-version> <nettype> <addrtype> <unicast-address>`
/// (§5.2).
fn parse_origin(value: &str) -> Result<Origin<'_>, SdpError> {
    let [
        username,
        session_id,
        session_version,
        net_type,
        addr_type,
        address,
    ] = fields::<6>(value).ok_or(SdpError::Origin)?;
    if !is_digits(session_id) || !is_digits(session_version) {
        return Err(SdpError::Origin);
    }
    if !is_token(net_type) || !is_token(addr_type) {
        return Err(SdpError::Origin);
    }
    Ok(Origin {
        username,
        session_id,
        session_version,
        net_type,
        addr_type,
        address,
    })
}

/// `c=<nettype> <addrtype> <connection-address>` (§5.7). For `IN IP4` and `IN IP6`
/// the address must be an address of that family (a multicast `/ttl[/count]` suffix is
/// cut off) or a domain name; other types are kept as written.
fn parse_connection(value: &str) -> Result<Connection<'_>, SdpError> {
    let [net_type, addr_type, address] = fields::<3>(value).ok_or(SdpError::Connection)?;
    if !is_token(net_type) || !is_token(addr_type) {
        return Err(SdpError::Connection);
    }
    let addr_type = match addr_type {
        "IP4" => AddrType::Ip4,
        "IP6" => AddrType::Ip6,
        _ => AddrType::Other,
    };
    let address = address.split('/').next().unwrap_or_default();
    let ok = match addr_type {
        AddrType::Ip4 => address.parse::<Ipv4Addr>().is_ok() || is_fqdn(address),
        AddrType::Ip6 => address.parse::<Ipv6Addr>().is_ok() || is_fqdn(address),
        AddrType::Other => !address.is_empty(),
    };
    if !ok {
        return Err(SdpError::Connection);
    }
    Ok(Connection {
        net_type,
        addr_type,
        address,
    })
}

/// A domain name: letters, digits, `-` and `.`, not all digits and dots.
pub(crate) fn is_fqdn(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 255
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'.')
        && s.bytes().any(|c| c.is_ascii_alphabetic() || c == b'-')
}

/// `t=<start-time> <stop-time>` (§5.9): two decimal numbers.
fn parse_timing(value: &str) -> Result<(), SdpError> {
    let [start, stop] = fields::<2>(value).ok_or(SdpError::Timing)?;
    if !is_digits(start) || !is_digits(stop) {
        return Err(SdpError::Timing);
    }
    Ok(())
}

/// `a=<attribute-name>[:<attribute-value>]` (§5.13); the name is a token.
fn parse_attribute(value: &str) -> Result<Attribute<'_>, SdpError> {
    let (name, value) = match value.split_once(':') {
        Some((n, v)) => (n, Some(v)),
        None => (value, None),
    };
    if !is_token(name) {
        return Err(SdpError::BadLine);
    }
    Ok(Attribute { name, value })
}

/// `m=<media> <port>[/<number of ports>] <proto> <fmt> ...` (§5.14).
fn parse_media(value: &str) -> Result<Media<'_>, SdpError> {
    let mut it = value.splitn(4, ' ');
    let media = it.next().unwrap_or_default();
    let port = it.next().unwrap_or_default();
    let proto = it.next().unwrap_or_default();
    let formats = it.next().unwrap_or_default();
    if !is_token(media)
        || proto.is_empty()
        || !proto.split('/').all(is_token)
        || formats.is_empty()
        || !formats.split(' ').all(is_token)
    {
        return Err(SdpError::MediaLine);
    }
    let (port, port_count) = match port.split_once('/') {
        Some((p, n)) => (p, Some(parse_u16(n).ok_or(SdpError::MediaLine)?)),
        None => (port, None),
    };
    let port = parse_u16(port).ok_or(SdpError::MediaLine)?;
    Ok(Media {
        media,
        port,
        port_count,
        proto,
        formats,
        connection: None,
        attributes: Vec::new(),
    })
}

fn parse_u16(s: &str) -> Option<u16> {
    if !is_digits(s) || s.len() > 5 {
        return None;
    }
    s.parse().ok()
}
