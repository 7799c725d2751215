//! The MSRP view of a media section (RFC 4975 §8.1-§8.6 and §9; RFC 6135 §4.2 for
//! `a=setup`; RFC 6714 §4 for `a=msrp-cema`; RFC 8866 §6.7 for the direction), and
//! content-type matching against `accept-types` lists (RFC 4975 §8.6).

use core::fmt;

use super::parse::{Connection, Media, Sdp, is_token, is_token_char};
use crate::codec::Uri;

/// Most URIs one `a=path` may list (the peer plus relays; RFC 4976 chains are short).
pub const MAX_PATH: usize = 8;
/// Most entries one `accept-types` or `accept-wrapped-types` list may hold.
pub const MAX_TYPES: usize = 64;

/// MSRP over TCP (`TCP/MSRP`, `msrp:` URIs) or TLS (`TCP/TLS/MSRP`, `msrps:` URIs)
/// (RFC 4975 §8.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Tcp,
    Tls,
}

impl Transport {
    /// The `m=` protocol field.
    pub fn proto(self) -> &'static str {
        match self {
            Transport::Tcp => "TCP/MSRP",
            Transport::Tls => "TCP/TLS/MSRP",
        }
    }
    /// From the `m=` protocol field (ASCII case ignored).
    pub fn from_proto(proto: &str) -> Option<Transport> {
        if proto.eq_ignore_ascii_case("TCP/MSRP") {
            Some(Transport::Tcp)
        } else if proto.eq_ignore_ascii_case("TCP/TLS/MSRP") {
            Some(Transport::Tls)
        } else {
            None
        }
    }
}

/// The `a=setup` values (RFC 4145 §4, as RFC 6135 §4.2 uses them for MSRP).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setup {
    Active,
    Passive,
    ActPass,
    /// Received only: RFC 6135 §4.2.1 says to process the SDP as if it had no `a=setup`.
    HoldConn,
}

impl Setup {
    pub fn as_str(self) -> &'static str {
        match self {
            Setup::Active => "active",
            Setup::Passive => "passive",
            Setup::ActPass => "actpass",
            Setup::HoldConn => "holdconn",
        }
    }
    fn parse(s: &str) -> Option<Setup> {
        Some(match s {
            "active" => Setup::Active,
            "passive" => Setup::Passive,
            "actpass" => Setup::ActPass,
            "holdconn" => Setup::HoldConn,
            _ => return None,
        })
    }
}

/// The direction attribute of a stream (RFC 8866 §6.7; RFC 4975 §8.9: it governs SEND
/// requests carrying regular message payloads only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }
    fn parse(s: &str) -> Option<Direction> {
        Some(match s {
            "sendrecv" => Direction::SendRecv,
            "sendonly" => Direction::SendOnly,
            "recvonly" => Direction::RecvOnly,
            "inactive" => Direction::Inactive,
            _ => return None,
        })
    }
    /// The same stream seen from the other side (RFC 3264 §6.1: a sendonly offer is
    /// answered recvonly and the other way round).
    pub fn reverse(self) -> Direction {
        match self {
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            d => d,
        }
    }
    /// May this side send SEND requests with regular payloads?
    pub fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }
    /// May this side receive them?
    pub fn receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }
}

/// Why a media section is not an MSRP stream we can take (the answer gives it port 0;
/// when no stream is left, the offer gets 488). `Copy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Unusable {
    #[error("no media sections")]
    NoMedia,
    #[error("media is not message")]
    NotMessage,
    #[error("protocol is not TCP/MSRP or TCP/TLS/MSRP")]
    Protocol,
    /// The offer uses the other transport than the one we listen on.
    #[error("transport not offered by us")]
    Transport,
    #[error("port 0")]
    PortZero,
    #[error("format list is not *")]
    Formats,
    #[error("c= is not IN IP4 or IN IP6")]
    Connection,
    #[error("no a=path")]
    NoPath,
    #[error("bad a=path")]
    BadPath,
    /// RFC 4975 §8.2: URIs in an SDP MUST carry explicit ports.
    #[error("a=path URI without port")]
    PathPort,
    /// The first URI's scheme does not fit the protocol (msrps for TCP/TLS/MSRP,
    /// msrp for TCP/MSRP) or a transport is not tcp.
    #[error("a=path URI does not fit the protocol")]
    PathTransport,
    #[error("no a=accept-types")]
    NoAcceptTypes,
    #[error("bad a=accept-types")]
    BadAcceptTypes,
    #[error("bad a=accept-wrapped-types")]
    BadWrappedTypes,
    #[error("bad a=max-size")]
    BadMaxSize,
    #[error("bad a=setup")]
    BadSetup,
    /// RFC 6714 §4.3: no `a=msrp-cema` and c=/m= do not match the path: a middlebox
    /// changed the address without anchoring MSRP.
    #[error("c=/m= address does not match a=path without CEMA")]
    AddressMismatch,
    /// Both sides want to connect, or both to listen (RFC 6135 §4.2).
    #[error("a=setup conflict")]
    SetupConflict,
    /// RFC 4975 §8.6: none of the offered types is one we accept.
    #[error("no common accept-types")]
    NoCommonType,
}

impl Unusable {
    /// A short reason text.
    pub fn reason(self) -> &'static str {
        match self {
            Unusable::NoMedia => "no media",
            Unusable::NotMessage => "no message media",
            Unusable::Protocol => "protocol not supported",
            Unusable::Transport => "transport not supported",
            Unusable::PortZero => "stream rejected",
            Unusable::Formats => "format list not *",
            Unusable::Connection => "bad connection address",
            Unusable::NoPath => "no a=path",
            Unusable::BadPath => "bad a=path",
            Unusable::PathPort => "a=path URI without port",
            Unusable::PathTransport => "a=path URI does not fit protocol",
            Unusable::NoAcceptTypes => "no a=accept-types",
            Unusable::BadAcceptTypes => "bad a=accept-types",
            Unusable::BadWrappedTypes => "bad a=accept-wrapped-types",
            Unusable::BadMaxSize => "bad a=max-size",
            Unusable::BadSetup => "bad a=setup",
            Unusable::AddressMismatch => "c= does not match a=path",
            Unusable::SetupConflict => "a=setup conflict",
            Unusable::NoCommonType => "no common accept-types",
        }
    }
}

/// One `format-entry` of an accept-types list (RFC 4975 §8.6):
/// `*`, `type/*` or `type/subtype`, each with optional `;param=value`s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FormatEntry<'a> {
    /// The entry as written.
    pub raw: &'a str,
    /// `*` for the `*` entry.
    pub ty: &'a str,
    /// `*` for `type/*` and for the `*` entry.
    pub subtype: &'a str,
    /// The parameters as written, from the first `;` (empty when none).
    pub params: &'a str,
}

impl fmt::Display for FormatEntry<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.raw)
    }
}

impl<'a> FormatEntry<'a> {
    /// Parses one entry by the §8.6 grammar (`type-param = parm-attribute "="
    /// parm-value`, value a token or quoted-string).
    pub fn parse(raw: &'a str) -> Option<FormatEntry<'a>> {
        if raw == "*" {
            return Some(FormatEntry {
                raw,
                ty: "*",
                subtype: "*",
                params: "",
            });
        }
        let (main, params) = match raw.find(';') {
            Some(i) => (raw.get(..i)?, raw.get(i..)?),
            None => (raw, ""),
        };
        let (ty, subtype) = main.split_once('/')?;
        if !is_token(ty) || ty == "*" || !is_token(subtype) {
            return None;
        }
        if !params.is_empty() && !params_ok(params) {
            return None;
        }
        Some(FormatEntry {
            raw,
            ty,
            subtype,
            params,
        })
    }

    /// `true` for `*`.
    pub fn is_any(&self) -> bool {
        self.ty == "*"
    }

    /// Does this entry admit a content of `ty/subtype`? `*` admits everything, `t/*`
    /// every subtype of `t`, and types compare case-insensitively (RFC 4975 §9: token
    /// is compared case-insensitive). Parameters never narrow the match (§8.6: "a
    /// format-entry with one or more parameters is assumed to match the same
    /// format-entry with no parameters"), on either side.
    pub fn admits(&self, ty: &str, subtype: &str) -> bool {
        self.is_any()
            || (self.ty.eq_ignore_ascii_case(ty)
                && (self.subtype == "*" || self.subtype.eq_ignore_ascii_case(subtype)))
    }

    /// The narrower of two entries when they overlap, for an answer that lists only
    /// what both sides can handle: `*` and `x` give `x`, `t/*` and `t/s` give `t/s`,
    /// equal entries give `self` (our spelling and parameters). `None` when disjoint.
    pub fn meet(&self, other: &FormatEntry<'a>) -> Option<FormatEntry<'a>> {
        if self.is_any() {
            return Some(*other);
        }
        if other.is_any() {
            return Some(*self);
        }
        if !self.ty.eq_ignore_ascii_case(other.ty) {
            return None;
        }
        match (self.subtype == "*", other.subtype == "*") {
            (true, _) => Some(*other),
            (false, true) => Some(*self),
            (false, false) => self
                .subtype
                .eq_ignore_ascii_case(other.subtype)
                .then_some(*self),
        }
    }

    /// Same entry, ignoring case of type and subtype and the parameters.
    fn same(&self, other: &FormatEntry<'_>) -> bool {
        self.ty.eq_ignore_ascii_case(other.ty) && self.subtype.eq_ignore_ascii_case(other.subtype)
    }
}

/// `*( ";" parm-attribute "=" parm-value )`, starting at a `;`.
fn params_ok(p: &str) -> bool {
    let b = p.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b.get(i) != Some(&b';') {
            return false;
        }
        i += 1;
        let start = i;
        while b.get(i).is_some_and(|&c| is_token_char(c)) {
            i += 1;
        }
        if i == start || b.get(i) != Some(&b'=') {
            return false;
        }
        i += 1;
        if b.get(i) == Some(&b'"') {
            match quoted_end(b, i) {
                Some(end) => i = end,
                None => return false,
            }
        } else {
            let vstart = i;
            while b.get(i).is_some_and(|&c| is_token_char(c)) {
                i += 1;
            }
            if i == vstart {
                return false;
            }
        }
    }
    true
}

/// The index after the quoted-string that starts at `b[i] == '"'` (§9 `qdtext` and
/// `qd-esc`).
fn quoted_end(b: &[u8], mut i: usize) -> Option<usize> {
    i += 1;
    loop {
        match *b.get(i)? {
            b'"' => return Some(i + 1),
            b'\\' => {
                if !matches!(b.get(i + 1)?, b'\\' | b'"') {
                    return None;
                }
                i += 2;
            }
            c if c == b' ' || c == b'\t' || c >= 0x21 => i += 1,
            _ => return None,
        }
    }
}

/// Splits a `format-list` at the spaces outside quoted-strings.
fn split_list(s: &str) -> Option<Vec<&str>> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < b.len() {
        match b.get(i) {
            Some(b' ') => {
                if i > start {
                    out.push(s.get(start..i)?);
                }
                i += 1;
                start = i;
            }
            Some(b'"') => i = quoted_end(b, i)?,
            _ => i += 1,
        }
        if out.len() > MAX_TYPES {
            return None;
        }
    }
    if i > start {
        out.push(s.get(start..)?);
    }
    (out.len() <= MAX_TYPES).then_some(out)
}

/// Parses an `accept-types` / `accept-wrapped-types` value: at least one valid entry,
/// every entry valid, at most [`MAX_TYPES`].
pub(crate) fn parse_list(value: &str) -> Option<Vec<FormatEntry<'_>>> {
    let list = split_list(value)?
        .into_iter()
        .map(FormatEntry::parse)
        .collect::<Option<Vec<_>>>()?;
    (!list.is_empty()).then_some(list)
}

/// `type` and `subtype` of a Content-Type value (`type/subtype *(";" param)`, RFC 4975
/// §9 `media-type`; white space around `;` tolerated). `None` when not a media type.
pub fn media_type(content_type: &str) -> Option<(&str, &str)> {
    let main = content_type.split(';').next().unwrap_or_default().trim();
    let (ty, sub) = main.split_once('/')?;
    (is_token(ty) && is_token(sub)).then_some((ty, sub))
}

/// Does an accept-types list (entries as written in SDP) admit `content_type`?
///
/// RFC 4975 §8.6: `*` admits any type, `type/*` any subtype of `type`, types and
/// subtypes compare case-insensitively (§9), and parameters are ignored on both sides:
/// `text/plain` admits `text/plain;charset=utf-8`, and `text/plain;charset=utf-8`
/// admits `text/plain` ("a format-entry with one or more parameters is assumed to
/// match the same format-entry with no parameters"). An entry that is not a valid
/// format-entry admits nothing. The list alone does not say whether a type may be sent
/// at the top level or only wrapped: see [`Session::may_send`] for that rule.
///
/// [`Session::may_send`]: super::Session::may_send
pub fn accepts<S: AsRef<str>>(list: &[S], content_type: &str) -> bool {
    let Some((ty, sub)) = media_type(content_type) else {
        return false;
    };
    list.iter()
        .filter_map(|e| FormatEntry::parse(e.as_ref()))
        .any(|e| e.admits(ty, sub))
}

/// The entries of `ours` that `theirs` also covers, each narrowed to the more specific
/// of the two ([`FormatEntry::meet`]), in our order, without repeats.
pub(crate) fn meet_lists<'a>(
    ours: &[FormatEntry<'a>],
    theirs: &[FormatEntry<'a>],
) -> Vec<FormatEntry<'a>> {
    let mut out: Vec<FormatEntry<'a>> = Vec::new();
    for o in ours {
        for t in theirs {
            if let Some(m) = o.meet(t) {
                if !out.iter().any(|x| x.same(&m)) && out.len() < MAX_TYPES {
                    out.push(m);
                }
            }
        }
    }
    out
}

/// One `m=message` stream as MSRP sees it (RFC 4975 §8.1-§8.6).
#[derive(Debug, Clone)]
pub struct MsrpMedia<'a> {
    /// The index of its `m=` line.
    pub index: usize,
    pub transport: Transport,
    /// The `m=` port (never 0 here).
    pub port: u16,
    /// The media `c=`, else the session `c=` (RFC 8866 §5.7).
    pub connection: Connection<'a>,
    /// `a=path`, leftmost first: the first URI is the hop to connect to, the last the
    /// peer's session URI (RFC 4975 §8.2, §8.3).
    pub path: Vec<Uri<'a>>,
    /// The `a=path` value as written.
    pub path_raw: &'a str,
    pub accept_types: Vec<FormatEntry<'a>>,
    pub accept_wrapped_types: Vec<FormatEntry<'a>>,
    pub max_size: Option<u64>,
    /// `a=setup`, `None` when absent (RFC 6135 §4.2.1: `holdconn` counts as absent).
    pub setup: Option<Setup>,
    /// `a=msrp-cema` present (RFC 6714 §4).
    pub cema: bool,
    pub direction: Direction,
    /// Whether a direction attribute was written (media or session level).
    pub explicit_direction: bool,
}

impl<'a> MsrpMedia<'a> {
    /// The MSRP view of media section `index`, or why it cannot be used.
    ///
    /// Checks, in order: `m=message` (§8.1), protocol `TCP/MSRP` or `TCP/TLS/MSRP`,
    /// port not 0 (RFC 3264 §6: a rejected stream), format list `*`, an `IN IP4`/`IN
    /// IP6` connection, exactly one `a=path` of at most [`MAX_PATH`] MSRP URIs, each
    /// with a port (§8.2) and transport `tcp`, the first one `msrps` exactly when the
    /// protocol is TLS; exactly one valid `a=accept-types` (§8.6), at most one valid
    /// `a=accept-wrapped-types` and `a=max-size`; at most one `a=setup` with a known
    /// value (RFC 6135 §4.2).
    pub fn from_sdp(sdp: &Sdp<'a>, index: usize) -> Result<MsrpMedia<'a>, Unusable> {
        let m: &Media<'a> = sdp.media.get(index).ok_or(Unusable::NoMedia)?;
        if !m.media.eq_ignore_ascii_case("message") {
            return Err(Unusable::NotMessage);
        }
        let transport = Transport::from_proto(m.proto).ok_or(Unusable::Protocol)?;
        if m.port == 0 {
            return Err(Unusable::PortZero);
        }
        if m.formats != "*" {
            return Err(Unusable::Formats);
        }
        let connection = sdp
            .connection_for(index)
            .filter(|c| c.is_internet())
            .ok_or(Unusable::Connection)?;
        let path_raw = match m.count("path") {
            0 => return Err(Unusable::NoPath),
            1 => m
                .attribute("path")
                .and_then(|a| a.value)
                .ok_or(Unusable::BadPath)?,
            _ => return Err(Unusable::BadPath),
        };
        let mut path = Vec::new();
        for u in path_raw.split(' ').filter(|s| !s.is_empty()) {
            if path.len() >= MAX_PATH {
                return Err(Unusable::BadPath);
            }
            let uri = Uri::parse(u).map_err(|_| Unusable::BadPath)?;
            if uri.port().is_none() {
                return Err(Unusable::PathPort);
            }
            if !uri.transport().eq_ignore_ascii_case("tcp") {
                return Err(Unusable::PathTransport);
            }
            path.push(uri);
        }
        let first = path.first().ok_or(Unusable::BadPath)?;
        if first.is_secure() != (transport == Transport::Tls) {
            return Err(Unusable::PathTransport);
        }
        let accept_types = match m.count("accept-types") {
            0 => return Err(Unusable::NoAcceptTypes),
            1 => m
                .attribute("accept-types")
                .and_then(|a| a.value)
                .and_then(parse_list)
                .ok_or(Unusable::BadAcceptTypes)?,
            _ => return Err(Unusable::BadAcceptTypes),
        };
        let accept_wrapped_types = match m.count("accept-wrapped-types") {
            0 => Vec::new(),
            1 => m
                .attribute("accept-wrapped-types")
                .and_then(|a| a.value)
                .and_then(parse_list)
                .ok_or(Unusable::BadWrappedTypes)?,
            _ => return Err(Unusable::BadWrappedTypes),
        };
        let max_size = match m.count("max-size") {
            0 => None,
            1 => Some(
                m.attribute("max-size")
                    .and_then(|a| a.value)
                    .filter(|v| {
                        !v.is_empty() && v.len() <= 19 && v.bytes().all(|c| c.is_ascii_digit())
                    })
                    .and_then(|v| v.parse::<u64>().ok())
                    .ok_or(Unusable::BadMaxSize)?,
            ),
            _ => return Err(Unusable::BadMaxSize),
        };
        let setup = match m.count("setup") {
            0 => None,
            1 => match m
                .attribute("setup")
                .and_then(|a| a.value)
                .and_then(Setup::parse)
            {
                Some(Setup::HoldConn) => None,
                Some(s) => Some(s),
                None => return Err(Unusable::BadSetup),
            },
            _ => return Err(Unusable::BadSetup),
        };
        let cema = m.count("msrp-cema") > 0;
        let media_dir = m
            .attributes
            .iter()
            .filter(|a| a.value.is_none())
            .find_map(|a| Direction::parse(a.name));
        let session_dir = sdp
            .attributes
            .iter()
            .filter(|a| a.value.is_none())
            .find_map(|a| Direction::parse(a.name));
        let explicit_direction = media_dir.is_some() || session_dir.is_some();
        let direction = media_dir.or(session_dir).unwrap_or(Direction::SendRecv);
        Ok(MsrpMedia {
            index,
            transport,
            port: m.port,
            connection,
            path,
            path_raw,
            accept_types,
            accept_wrapped_types,
            max_size,
            setup,
            cema,
            direction,
            explicit_direction,
        })
    }

    /// Does the `c=`/`m=` address match the first `a=path` URI (RFC 6714 §4.4)?
    /// `Some(true)`/`Some(false)` when both are IP addresses, or both names (compared
    /// case-insensitively), `None` when one is a name and the other an address: that
    /// takes DNS, which this sans-IO module does not do, and the caller treats it as a
    /// match.
    pub fn address_matches_path(&self) -> Option<bool> {
        let first = self.path.first()?;
        if first.port() != Some(self.port) {
            return Some(false);
        }
        use crate::codec::Host;
        use core::net::{Ipv4Addr, Ipv6Addr};
        let c = self.connection.address;
        match first.host() {
            Host::V4(a) => c
                .parse::<Ipv4Addr>()
                .ok()
                .map(|b| a == b)
                .or_else(|| (c.parse::<Ipv6Addr>().is_ok()).then_some(false)),
            Host::V6(a) => c
                .parse::<Ipv6Addr>()
                .ok()
                .map(|b| a == b)
                .or_else(|| (c.parse::<Ipv4Addr>().is_ok()).then_some(false)),
            Host::Name(n) => {
                if c.parse::<Ipv4Addr>().is_ok() || c.parse::<Ipv6Addr>().is_ok() {
                    None
                } else {
                    Some(n.eq_ignore_ascii_case(c))
                }
            }
        }
    }

    /// Does the peer's path go through relays (more than one URI; RFC 6714 §4.3 rule 1)?
    pub fn uses_relay(&self) -> bool {
        self.path.len() > 1
    }
}
