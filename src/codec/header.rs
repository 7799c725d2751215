//! Typed header values of RFC 4975 §9 and RFC 4976 §7: URI paths, Message-ID, Byte-Range,
//! Content-Type, report preferences, Status, the Expires family and HTTP Digest parameters.
//! Every parser borrows its input and returns a `Copy` error; none allocates.

use core::fmt;

use super::chars::{TOKEN, digits, find, is, is_ident, is_token, parse_u64, span};
use super::uri::{Uri, UriError};

/// Headers the codec knows by name (names compare case-insensitively).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum HeaderKind {
    ToPath,
    FromPath,
    MessageId,
    ByteRange,
    ContentType,
    SuccessReport,
    FailureReport,
    Status,
    Expires,
    MinExpires,
    MaxExpires,
    UsePath,
    WwwAuthenticate,
    Authorization,
    AuthenticationInfo,
    /// Any other header, kept as it is.
    Other,
}

impl HeaderKind {
    /// Canonical spelling.
    pub fn name(self) -> &'static str {
        KNOWN
            .iter()
            .find(|(_, k)| *k == self)
            .map_or("", |(n, _)| n)
    }

    /// Classifies a header name, case-insensitively: length and first letter pick the
    /// one candidate (two for the Expires pair), then one comparison decides.
    pub fn classify(name: &[u8]) -> HeaderKind {
        use HeaderKind as K;
        let Some(&first) = name.first() else {
            return K::Other;
        };
        let (canon, kind): (&[u8], HeaderKind) = match (name.len(), first | 0x20) {
            (7, b't') => (b"To-Path", K::ToPath),
            (9, b'f') => (b"From-Path", K::FromPath),
            (10, b'm') => (b"Message-ID", K::MessageId),
            (10, b'b') => (b"Byte-Range", K::ByteRange),
            (12, b'c') => (b"Content-Type", K::ContentType),
            (14, b's') => (b"Success-Report", K::SuccessReport),
            (14, b'f') => (b"Failure-Report", K::FailureReport),
            (6, b's') => (b"Status", K::Status),
            (7, b'e') => (b"Expires", K::Expires),
            (11, b'm') => match name.get(1).map(|c| c | 0x20) {
                Some(b'i') => (b"Min-Expires", K::MinExpires),
                _ => (b"Max-Expires", K::MaxExpires),
            },
            (8, b'u') => (b"Use-Path", K::UsePath),
            (16, b'w') => (b"WWW-Authenticate", K::WwwAuthenticate),
            (13, b'a') => (b"Authorization", K::Authorization),
            (19, b'a') => (b"Authentication-Info", K::AuthenticationInfo),
            _ => return K::Other,
        };
        if same_name(name, canon) {
            kind
        } else {
            K::Other
        }
    }
}

/// Compares a header name with a canonical one (letters and '-'), ignoring case, a word
/// at a time: bytes may differ in bit 5 only where the canonical byte is a letter (bit 6
/// set; '-' has it clear), so this is exactly `eq_ignore_ascii_case`. Names of 8 bytes
/// or more are compared in 8-byte words (the last one overlapping), shorter ones in two
/// overlapping 4-byte words; all canonical names have at least 6 bytes.
#[inline]
fn same_name(name: &[u8], canon: &[u8]) -> bool {
    let n = name.len();
    if n != canon.len() {
        return false;
    }
    let eq8 = |i: usize| match (
        name.get(i..i + 8).and_then(|s| <[u8; 8]>::try_from(s).ok()),
        canon
            .get(i..i + 8)
            .and_then(|s| <[u8; 8]>::try_from(s).ok()),
    ) {
        (Some(a), Some(b)) => {
            let (a, b) = (u64::from_le_bytes(a), u64::from_le_bytes(b));
            (a ^ b) & !((b & 0x4040_4040_4040_4040) >> 1) == 0
        }
        _ => false,
    };
    let eq4 = |i: usize| match (
        name.get(i..i + 4).and_then(|s| <[u8; 4]>::try_from(s).ok()),
        canon
            .get(i..i + 4)
            .and_then(|s| <[u8; 4]>::try_from(s).ok()),
    ) {
        (Some(a), Some(b)) => {
            let (a, b) = (u32::from_le_bytes(a), u32::from_le_bytes(b));
            (a ^ b) & !((b & 0x4040_4040) >> 1) == 0
        }
        _ => false,
    };
    if n >= 8 {
        let mut eq = true;
        let mut i = 0;
        while i + 8 < n {
            eq &= eq8(i);
            i += 8;
        }
        eq & eq8(n - 8)
    } else if n >= 4 {
        eq4(0) & eq4(n - 4)
    } else {
        name.eq_ignore_ascii_case(canon)
    }
}

const KNOWN: &[(&str, HeaderKind)] = &[
    ("To-Path", HeaderKind::ToPath),
    ("From-Path", HeaderKind::FromPath),
    ("Message-ID", HeaderKind::MessageId),
    ("Byte-Range", HeaderKind::ByteRange),
    ("Content-Type", HeaderKind::ContentType),
    ("Success-Report", HeaderKind::SuccessReport),
    ("Failure-Report", HeaderKind::FailureReport),
    ("Status", HeaderKind::Status),
    ("Expires", HeaderKind::Expires),
    ("Min-Expires", HeaderKind::MinExpires),
    ("Max-Expires", HeaderKind::MaxExpires),
    ("Use-Path", HeaderKind::UsePath),
    ("WWW-Authenticate", HeaderKind::WwwAuthenticate),
    ("Authorization", HeaderKind::Authorization),
    ("Authentication-Info", HeaderKind::AuthenticationInfo),
];

/// A header value that does not follow its grammar. `Copy`, no allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error("bad URI in path: {0}")]
    Uri(UriError),
    #[error("empty path")]
    EmptyPath,
    #[error("too many URIs in path")]
    PathTooLong,
    #[error("bad Message-ID")]
    MessageId,
    #[error("bad Byte-Range")]
    ByteRange,
    #[error("bad Content-Type")]
    ContentType,
    #[error("bad report value")]
    Report,
    #[error("bad Status")]
    Status,
    #[error("bad number")]
    Number,
    #[error("bad digest parameters")]
    Digest,
}

/// The most URIs a path may hold (also bounds the work per frame).
pub const MAX_PATH_URIS: usize = 32;

/// A space-separated list of MSRP URIs: To-Path, From-Path, Use-Path (RFC 4975 §9,
/// RFC 4976 §7). Validated when made; the first URI is kept parsed.
#[derive(Debug, Clone, Copy)]
pub struct Path<'a> {
    raw: &'a str,
    len: u8,
    first: Uri<'a>,
}

impl<'a> Path<'a> {
    /// A placeholder for a head under construction; never handed out.
    pub(crate) const EMPTY: Path<'static> = Path {
        raw: "",
        len: 0,
        first: Uri::EMPTY,
    };

    /// Parses `MSRP-URI *(SP MSRP-URI)`: single spaces, at most [`MAX_PATH_URIS`]. Each
    /// URI is read where it starts and ends at the next space (in one pass for the usual
    /// ones); an error is the first URI's that fails, as if the path were split first.
    pub fn parse(raw: &'a str) -> Result<Path<'a>, ValueError> {
        let b = raw.as_bytes();
        if b.first().is_none_or(|&c| c == b' ') {
            return Err(ValueError::EmptyPath);
        }
        let mut first = Uri::EMPTY;
        let mut len = 0usize;
        let mut pos = 0;
        loop {
            let (uri, end) = match Uri::parse_fast(raw, pos) {
                Some(found) => found,
                None => {
                    let end = find(b, pos, b' ').unwrap_or(b.len());
                    let piece = raw.get(pos..end).unwrap_or_default();
                    (Uri::parse(piece).map_err(ValueError::Uri)?, end)
                }
            };
            len += 1;
            if len == 1 {
                first = uri;
            } else if len > MAX_PATH_URIS {
                return Err(ValueError::PathTooLong);
            }
            // b[end] is a space, or the path ends.
            if end >= b.len() {
                break;
            }
            pos = end + 1;
        }
        Ok(Path {
            raw,
            len: len as u8,
            first,
        })
    }

    /// The path as written.
    pub fn as_str(&self) -> &'a str {
        self.raw
    }
    /// Number of URIs (at least one).
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }
    /// Always `false`: a path holds at least one URI.
    pub fn is_empty(&self) -> bool {
        false
    }
    /// The leftmost URI (the next hop in a To-Path, the previous hop in a From-Path).
    pub fn first(&self) -> Uri<'a> {
        self.first
    }
    /// The rightmost URI.
    pub fn last(&self) -> Uri<'a> {
        self.uris().last().unwrap_or(self.first)
    }
    /// The URIs as written, left to right.
    pub fn iter(&self) -> impl Iterator<Item = &'a str> + 'a {
        self.raw.split(' ')
    }
    /// The URIs parsed, left to right.
    pub fn uris(&self) -> impl Iterator<Item = Uri<'a>> + 'a {
        self.raw.split(' ').filter_map(|s| Uri::parse(s).ok())
    }
    /// The path without its first URI (`None` when it held only one).
    pub fn rest(&self) -> Option<&'a str> {
        self.raw.split_once(' ').map(|(_, r)| r)
    }
}

/// Paths parsed recently, by their exact bytes: a relay sees the same To-Path and
/// From-Path on every frame of a session, and finding the bytes here costs a hash and a
/// comparison instead of parsing each URI again. Two slots per hash bucket, the one not
/// used last giving way to a new path, so the size is fixed; only paths that parsed are
/// kept, so a hit gives exactly what [`Path::parse`] would.
pub struct PathCache {
    slots: Box<[CachedPath]>,
}

/// Paths longer than this are parsed each time.
const CACHED_PATH_MAX: usize = 128;
/// Buckets in a [`PathCache`] (a power of two), of two slots each.
const CACHE_BUCKETS: usize = 512;

#[derive(Clone, Copy)]
struct CachedPath {
    /// Length of `key`; 0 for an empty slot (an empty path never parses).
    len: u8,
    /// Whether this slot, rather than the other one of its bucket, was used last.
    recent: bool,
    uris: u8,
    first_len: u16,
    key: [u8; CACHED_PATH_MAX],
    first: Uri<'static>,
}

impl Default for PathCache {
    fn default() -> Self {
        PathCache::new()
    }
}

impl PathCache {
    pub fn new() -> PathCache {
        let empty = CachedPath {
            len: 0,
            recent: false,
            uris: 0,
            first_len: 0,
            key: [0; CACHED_PATH_MAX],
            first: Uri::EMPTY,
        };
        PathCache {
            slots: vec![empty; 2 * CACHE_BUCKETS].into_boxed_slice(),
        }
    }

    /// [`Path::parse`], from the cache when these bytes parsed before.
    pub fn parse<'a>(&mut self, raw: &'a str) -> Result<Path<'a>, ValueError> {
        let b = raw.as_bytes();
        if b.is_empty() || b.len() > CACHED_PATH_MAX {
            return Path::parse(raw);
        }
        let at = 2 * bucket_of(b);
        let Some([s0, s1]) = self.slots.get_mut(at..at + 2) else {
            return Path::parse(raw);
        };
        let holds = |s: &CachedPath| s.key.get(..usize::from(s.len)) == Some(b);
        let found = if holds(s0) {
            Some((&mut *s0, &mut *s1))
        } else if holds(s1) {
            Some((&mut *s1, &mut *s0))
        } else {
            None
        };
        if let Some((hit, other)) = found {
            hit.recent = true;
            other.recent = false;
            let first = raw.get(..usize::from(hit.first_len)).unwrap_or_default();
            return Ok(Path {
                raw,
                len: hit.uris,
                first: hit.first.attach(first),
            });
        }
        let path = Path::parse(raw)?;
        let (slot, other) = if s0.recent { (s1, s0) } else { (s0, s1) };
        let (first, first_len) = path.first.detach();
        slot.len = b.len() as u8;
        slot.recent = true;
        other.recent = false;
        slot.uris = path.len;
        slot.first_len = first_len as u16;
        slot.key[..b.len()].copy_from_slice(b);
        slot.first = first;
        Ok(path)
    }
}

/// The cache bucket for `b` (1 to [`CACHED_PATH_MAX`] bytes): a multiply-rotate hash
/// over 8-byte words, the last one overlapping, with the length mixed in.
fn bucket_of(b: &[u8]) -> usize {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let word = |i: usize| {
        b.get(i..i + 8)
            .and_then(|w| <[u8; 8]>::try_from(w).ok())
            .map_or(0, u64::from_le_bytes)
    };
    let mut h = b.len() as u64;
    if b.len() < 8 {
        for &c in b {
            h = (h.rotate_left(8) ^ u64::from(c)).wrapping_mul(K);
        }
    } else {
        let mut i = 0;
        while i + 8 < b.len() {
            h = (h.rotate_left(23) ^ word(i)).wrapping_mul(K);
            i += 8;
        }
        h = (h.rotate_left(23) ^ word(b.len() - 8)).wrapping_mul(K);
    }
    (h >> 32) as usize & (CACHE_BUCKETS - 1)
}

/// Message-ID (RFC 4975 §9: `ident`).
pub fn parse_message_id(v: &[u8]) -> Result<&str, ValueError> {
    if !is_ident(v) {
        return Err(ValueError::MessageId);
    }
    core::str::from_utf8(v).map_err(|_| ValueError::MessageId)
}

/// [`parse_message_id`] of a value known to be text.
pub(crate) fn parse_message_id_str(v: &str) -> Result<&str, ValueError> {
    if is_ident(v.as_bytes()) {
        Ok(v)
    } else {
        Err(ValueError::MessageId)
    }
}

/// Byte-Range (RFC 4975 §7.1.1, §9): `range-start "-" range-end "/" total`, with `*` for an
/// unknown end or total. Positions are 1-based; "1-0/0" is an empty body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    pub start: u64,
    /// `None` for `*` (unknown, or an interruptible chunk).
    pub end: Option<u64>,
    /// `None` for `*` (total size unknown).
    pub total: Option<u64>,
}

impl ByteRange {
    pub fn parse(v: &[u8]) -> Result<ByteRange, ValueError> {
        // range-start "-" range-end "/" total, each a number or (but the first) "*",
        // read in one pass.
        let (start, at) = number(v, 0).ok_or(ValueError::ByteRange)?;
        let start = start.ok_or(ValueError::ByteRange)?;
        if v.get(at) != Some(&b'-') {
            return Err(ValueError::ByteRange);
        }
        let (end, at) = number(v, at + 1).ok_or(ValueError::ByteRange)?;
        if v.get(at) != Some(&b'/') {
            return Err(ValueError::ByteRange);
        }
        let (total, at) = number(v, at + 1).ok_or(ValueError::ByteRange)?;
        if at != v.len() {
            return Err(ValueError::ByteRange);
        }
        if start == 0 {
            return Err(ValueError::ByteRange);
        }
        if let Some(e) = end
            && e < start - 1
        {
            return Err(ValueError::ByteRange);
        }
        if let Some(t) = total {
            if end.is_some_and(|e| e > t) || start - 1 > t {
                return Err(ValueError::ByteRange);
            }
        }
        Ok(ByteRange { start, end, total })
    }
}

/// Reads `1*DIGIT` (at most 20 digits, no overflow) or `*` at `v[at..]`: the value
/// (`None` for `*`) and where it ends. `None` when there is neither.
#[inline(always)]
fn number(v: &[u8], at: usize) -> Option<(Option<u64>, usize)> {
    if v.get(at) == Some(&b'*') {
        return Some((None, at + 1));
    }
    digits(v, at).map(|(n, end)| (Some(n), end))
}

impl fmt::Display for ByteRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-", self.start)?;
        match self.end {
            Some(e) => write!(f, "{e}/")?,
            None => f.write_str("*/")?,
        }
        match self.total {
            Some(t) => write!(f, "{t}"),
            None => f.write_str("*"),
        }
    }
}

/// Success-Report (RFC 4975 §7.1.1). Absent means `No`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SuccessReport {
    Yes,
    #[default]
    No,
}

impl SuccessReport {
    /// `"yes" / "no"`; ABNF literals are case-insensitive (RFC 4234 §2.3).
    pub fn parse(v: &[u8]) -> Result<SuccessReport, ValueError> {
        if v.eq_ignore_ascii_case(b"yes") {
            Ok(SuccessReport::Yes)
        } else if v.eq_ignore_ascii_case(b"no") {
            Ok(SuccessReport::No)
        } else {
            Err(ValueError::Report)
        }
    }
}

/// Failure-Report (RFC 4975 §7.1.1). Absent means `Yes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FailureReport {
    #[default]
    Yes,
    No,
    Partial,
}

impl FailureReport {
    /// `"yes" / "no" / "partial"`; ABNF literals are case-insensitive (RFC 4234 §2.3).
    pub fn parse(v: &[u8]) -> Result<FailureReport, ValueError> {
        if v.eq_ignore_ascii_case(b"yes") {
            Ok(FailureReport::Yes)
        } else if v.eq_ignore_ascii_case(b"no") {
            Ok(FailureReport::No)
        } else if v.eq_ignore_ascii_case(b"partial") {
            Ok(FailureReport::Partial)
        } else {
            Err(ValueError::Report)
        }
    }
}

/// Status (RFC 4975 §9): `namespace SP status-code [SP comment]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status<'a> {
    pub namespace: u16,
    pub code: u16,
    pub comment: Option<&'a str>,
}

impl<'a> Status<'a> {
    pub fn parse(v: &'a [u8]) -> Result<Status<'a>, ValueError> {
        let three = |d: &[u8]| -> Option<u16> {
            (d.len() == 3 && d.iter().all(u8::is_ascii_digit))
                .then(|| d.iter().fold(0u16, |a, &c| a * 10 + u16::from(c - b'0')))
        };
        if v.len() < 7 || v[3] != b' ' {
            return Err(ValueError::Status);
        }
        let namespace = three(&v[..3]).ok_or(ValueError::Status)?;
        let code = three(&v[4..7]).ok_or(ValueError::Status)?;
        let comment = match v.get(7) {
            None => None,
            Some(b' ') => Some(core::str::from_utf8(&v[8..]).map_err(|_| ValueError::Status)?),
            Some(_) => return Err(ValueError::Status),
        };
        Ok(Status {
            namespace,
            code,
            comment,
        })
    }
}

/// Expires, Min-Expires, Max-Expires (RFC 4976 §7): `1*DIGIT` seconds. Values beyond
/// u32 are refused rather than wrapped.
pub fn parse_seconds(v: &[u8]) -> Result<u32, ValueError> {
    parse_u64(v)
        .and_then(|n| u32::try_from(n).ok())
        .ok_or(ValueError::Number)
}

/// Content-Type (RFC 4975 §9): `type "/" subtype *( ";" gen-param )`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContentType<'a> {
    pub media_type: &'a str,
    pub subtype: &'a str,
    /// Parameters as written, starting at the first `;` (empty when none).
    pub params: &'a str,
}

impl<'a> ContentType<'a> {
    pub fn parse(v: &'a [u8]) -> Result<ContentType<'a>, ValueError> {
        let s = core::str::from_utf8(v).map_err(|_| ValueError::ContentType)?;
        ContentType::parse_str(s)
    }

    pub(crate) fn parse_str(s: &'a str) -> Result<ContentType<'a>, ValueError> {
        // The usual form, `token "/" token` then parameters or the end, in one scan.
        let b = s.as_bytes();
        let slash = span(b, 0, TOKEN);
        if slash > 0 && b.get(slash) == Some(&b'/') {
            let end = span(b, slash + 1, TOKEN);
            if end > slash + 1
                && matches!(b.get(end), None | Some(b';'))
                && let (Some(media_type), Some(subtype), Some(params)) =
                    (s.get(..slash), s.get(slash + 1..end), s.get(end..))
            {
                return Ok(ContentType {
                    media_type,
                    subtype,
                    params,
                });
            }
        }
        // Anything else: white space before the parameters, or an error.
        let (mt, rest) = s.split_once('/').ok_or(ValueError::ContentType)?;
        let (sub, params) = match rest.find(';') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let sub = sub.trim_end();
        if !is_token(mt.as_bytes()) || !is_token(sub.as_bytes()) {
            return Err(ValueError::ContentType);
        }
        Ok(ContentType {
            media_type: mt,
            subtype: sub,
            params,
        })
    }
    /// `true` when type and subtype match, case-insensitively.
    pub fn is(&self, media_type: &str, subtype: &str) -> bool {
        self.media_type.eq_ignore_ascii_case(media_type)
            && self.subtype.eq_ignore_ascii_case(subtype)
    }
}

/// The most parameters a digest header may carry.
pub const MAX_DIGEST_PARAMS: usize = 16;

/// One `name=value` of a digest header; `value` has its quotes removed but escapes kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DigestParam<'a> {
    pub name: &'a str,
    pub value: &'a str,
    pub quoted: bool,
}

/// Digest parameters of WWW-Authenticate, Authorization or Authentication-Info
/// (RFC 4976 §7, after RFC 2617). Commas may be followed by any white space, as clients
/// in the field differ.
#[derive(Debug, Clone, Copy)]
pub struct DigestParams<'a> {
    params: [DigestParam<'a>; MAX_DIGEST_PARAMS],
    len: usize,
}

impl<'a> DigestParams<'a> {
    /// Parses `Digest SP param *("," param)` (`scheme` true) or bare `param *("," param)`
    /// (Authentication-Info).
    pub fn parse(v: &'a [u8], scheme: bool) -> Result<DigestParams<'a>, ValueError> {
        let s = core::str::from_utf8(v).map_err(|_| ValueError::Digest)?;
        let mut s = if scheme {
            let (sch, rest) = s.split_once(' ').ok_or(ValueError::Digest)?;
            if !sch.eq_ignore_ascii_case("Digest") {
                return Err(ValueError::Digest);
            }
            rest
        } else {
            s
        };
        let empty = DigestParam {
            name: "",
            value: "",
            quoted: false,
        };
        let mut out = DigestParams {
            params: [empty; MAX_DIGEST_PARAMS],
            len: 0,
        };
        loop {
            s = s.trim_start_matches([' ', '\t']);
            let eq = s.find('=').ok_or(ValueError::Digest)?;
            let name = s[..eq].trim_end_matches([' ', '\t']);
            if !is_token(name.as_bytes()) {
                return Err(ValueError::Digest);
            }
            s = s[eq + 1..].trim_start_matches([' ', '\t']);
            let (value, quoted, rest) = if let Some(q) = s.strip_prefix('"') {
                let end = quoted_end(q.as_bytes()).ok_or(ValueError::Digest)?;
                (&q[..end], true, &q[end + 1..])
            } else {
                let end = s
                    .bytes()
                    .position(|c| !is(c, TOKEN) || c == b',')
                    .unwrap_or(s.len());
                if end == 0 {
                    return Err(ValueError::Digest);
                }
                (&s[..end], false, &s[end..])
            };
            if out.len == MAX_DIGEST_PARAMS {
                return Err(ValueError::Digest);
            }
            out.params[out.len] = DigestParam {
                name,
                value,
                quoted,
            };
            out.len += 1;
            let rest = rest.trim_start_matches([' ', '\t']);
            if rest.is_empty() {
                return Ok(out);
            }
            s = rest.strip_prefix(',').ok_or(ValueError::Digest)?;
        }
    }
    /// The value of parameter `name` (case-insensitive), quotes removed, escapes kept.
    pub fn get(&self, name: &str) -> Option<&'a str> {
        self.iter()
            .find(|p| p.name.eq_ignore_ascii_case(name))
            .map(|p| p.value)
    }
    pub fn iter(&self) -> impl Iterator<Item = DigestParam<'a>> + '_ {
        self.params[..self.len].iter().copied()
    }
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Index of the closing quote of a quoted-string body, honouring `\` escapes.
fn quoted_end(b: &[u8]) -> Option<usize> {
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'"' => return Some(i),
            _ => i += 1,
        }
    }
    None
}

/// Removes quoted-string escapes (`\"`, `\\`); borrows when there are none.
pub fn unescape(v: &str) -> std::borrow::Cow<'_, str> {
    if !v.contains('\\') {
        return std::borrow::Cow::Borrowed(v);
    }
    let mut out = String::with_capacity(v.len());
    let mut it = v.chars();
    while let Some(c) = it.next() {
        if c == '\\' {
            if let Some(n) = it.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Authorization credentials (RFC 4976 §7 `credentials`). `uri` is optional: clients in
/// the field differ on whether they send it.
#[derive(Debug, Clone, Copy)]
pub struct Credentials<'a> {
    pub username: &'a str,
    pub realm: &'a str,
    pub nonce: &'a str,
    pub uri: Option<&'a str>,
    pub response: &'a str,
    pub algorithm: Option<&'a str>,
    pub cnonce: Option<&'a str>,
    pub qop: Option<&'a str>,
    /// Nonce count (`nc`, 8 hex digits).
    pub nc: Option<u32>,
    pub opaque: Option<&'a str>,
}

impl<'a> Credentials<'a> {
    pub fn parse(v: &'a [u8]) -> Result<Credentials<'a>, ValueError> {
        let p = DigestParams::parse(v, true)?;
        let req = |n: &str| p.get(n).ok_or(ValueError::Digest);
        // `nc-value = 8LHEX`; `from_str_radix` alone would also take a sign ("+0000001").
        let nc = match p.get("nc") {
            Some(h) if h.len() == 8 && h.bytes().all(|c| c.is_ascii_hexdigit()) => {
                Some(u32::from_str_radix(h, 16).map_err(|_| ValueError::Digest)?)
            }
            Some(_) => return Err(ValueError::Digest),
            None => None,
        };
        let response = req("response")?;
        if response.is_empty() || !response.bytes().all(|c| c.is_ascii_hexdigit()) {
            return Err(ValueError::Digest);
        }
        let c = Credentials {
            username: req("username")?,
            realm: req("realm")?,
            nonce: req("nonce")?,
            uri: p.get("uri"),
            response,
            algorithm: p.get("algorithm"),
            cnonce: p.get("cnonce"),
            qop: p.get("qop"),
            nc,
            opaque: p.get("opaque"),
        };
        if c.qop.is_some() && (c.cnonce.is_none() || c.nc.is_none()) {
            return Err(ValueError::Digest);
        }
        Ok(c)
    }
}

/// A digest challenge (WWW-Authenticate, RFC 4976 §7).
#[derive(Debug, Clone, Copy)]
pub struct Challenge<'a> {
    pub realm: &'a str,
    pub nonce: &'a str,
    pub opaque: Option<&'a str>,
    pub stale: bool,
    pub algorithm: Option<&'a str>,
    /// The qop-options list as written (e.g. `auth` or `auth,auth-int`).
    pub qop: Option<&'a str>,
}

impl<'a> Challenge<'a> {
    pub fn parse(v: &'a [u8]) -> Result<Challenge<'a>, ValueError> {
        let p = DigestParams::parse(v, true)?;
        Ok(Challenge {
            realm: p.get("realm").ok_or(ValueError::Digest)?,
            nonce: p.get("nonce").ok_or(ValueError::Digest)?,
            opaque: p.get("opaque"),
            stale: p
                .get("stale")
                .is_some_and(|s| s.eq_ignore_ascii_case("true")),
            algorithm: p.get("algorithm"),
            qop: p.get("qop"),
        })
    }
}

/// Authentication-Info (RFC 4976 §7 `ainfo`).
#[derive(Debug, Clone, Copy)]
pub struct AuthInfo<'a> {
    pub nextnonce: Option<&'a str>,
    pub qop: Option<&'a str>,
    pub rspauth: Option<&'a str>,
    pub cnonce: Option<&'a str>,
    pub nc: Option<&'a str>,
}

impl<'a> AuthInfo<'a> {
    pub fn parse(v: &'a [u8]) -> Result<AuthInfo<'a>, ValueError> {
        let p = DigestParams::parse(v, false)?;
        Ok(AuthInfo {
            nextnonce: p.get("nextnonce"),
            qop: p.get("qop"),
            rspauth: p.get("rspauth"),
            cnonce: p.get("cnonce"),
            nc: p.get("nc"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_cache_evicts_and_still_agrees() {
        // Far more paths than slots, so buckets fill, evict and refill; each answer must
        // still be Path::parse's. Lengths up to past the cacheable limit.
        let text = |i: usize| {
            let pad = "x".repeat(i % 150);
            format!(
                "msrp://h{i}{pad}.example.com:{}/s{i};tcp msrp://r.example.com;tcp",
                i % 65536
            )
        };
        let mut cache = PathCache::new();
        for round in 0..3 {
            for i in (0..3000).map(|i| (i * 7 + round) % 3000) {
                let t = text(i);
                let want = Path::parse(&t).unwrap();
                let got = cache.parse(&t).unwrap();
                assert_eq!(format!("{want:?}"), format!("{got:?}"));
                assert_eq!(got.first().as_str(), want.first().as_str());
                assert_eq!(got.len(), 2);
            }
        }
        // A path that fails is not kept: it fails again, the same way.
        let bad = "msrp://h;tcp msrp://";
        assert_eq!(cache.parse(bad).unwrap_err(), Path::parse(bad).unwrap_err());
        assert_eq!(cache.parse(bad).unwrap_err(), Path::parse(bad).unwrap_err());
        assert!(cache.parse("").is_err());
    }

    #[test]
    fn byte_ranges() {
        let br = |s: &str| ByteRange::parse(s.as_bytes());
        assert_eq!(
            br("1-*/8"),
            Ok(ByteRange {
                start: 1,
                end: None,
                total: Some(8)
            })
        );
        assert_eq!(
            br("1-0/0"),
            Ok(ByteRange {
                start: 1,
                end: Some(0),
                total: Some(0)
            })
        );
        assert_eq!(br("5-8/*").unwrap().to_string(), "5-8/*");
        for bad in [
            "0-1/1",
            "1-2/1",
            "3-1/5",
            "1-2",
            "1/2-3",
            "a-1/1",
            "1--1/1",
            "-1/2",
            "1-/2",
            "1-1/",
            "99999999999999999999999-1/1",
            "7-*/5",
        ] {
            assert!(br(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn digest_credentials() {
        let v = br#"Digest username="Alice", realm="intra.example.com", nonce="7a8f3b", qop=auth, nc=00000001, cnonce="0a4f113b", response="6629fae49393a05397450978507c4ef1", opaque="5ccc069c""#;
        let c = Credentials::parse(v).unwrap();
        assert_eq!(c.username, "Alice");
        assert_eq!(c.nc, Some(1));
        assert_eq!(c.uri, None);
        assert_eq!(c.opaque, Some("5ccc069c"));
        assert!(
            Credentials::parse(
                b"Digest username=\"a\", realm=\"r\", nonce=\"n\", qop=auth, response=\"00\""
            )
            .is_err()
        );
        assert!(Credentials::parse(b"Basic abc").is_err());
        // Regression: a signed nonce count was taken by `from_str_radix`.
        for nc in ["+0000001", "-0000001", "0000000g", "0000001", "000000001"] {
            let v = format!(
                "Digest username=\"a\", realm=\"r\", nonce=\"n\", qop=auth, nc={nc}, cnonce=\"c\", response=\"00\""
            );
            assert_eq!(
                Credentials::parse(v.as_bytes()).map(|c| c.nc),
                Err(ValueError::Digest),
                "{nc}"
            );
        }
        assert_eq!(unescape(r#"a\"b\\c"#), r#"a"b\c"#);
    }

    #[test]
    fn report_values_are_case_insensitive() {
        // Regression: "Yes" and "NO" were refused; ABNF quoted strings ignore case.
        assert_eq!(SuccessReport::parse(b"Yes"), Ok(SuccessReport::Yes));
        assert_eq!(SuccessReport::parse(b"NO"), Ok(SuccessReport::No));
        assert_eq!(FailureReport::parse(b"Partial"), Ok(FailureReport::Partial));
        assert_eq!(FailureReport::parse(b"yES"), Ok(FailureReport::Yes));
        assert_eq!(SuccessReport::parse(b"partial"), Err(ValueError::Report));
        assert_eq!(FailureReport::parse(b"ye"), Err(ValueError::Report));
    }

    #[test]
    fn header_names() {
        assert_eq!(HeaderKind::classify(b"to-path"), HeaderKind::ToPath);
        assert_eq!(
            HeaderKind::classify(b"WWW-AUTHENTICATE"),
            HeaderKind::WwwAuthenticate
        );
        assert_eq!(HeaderKind::classify(b"X-Foo"), HeaderKind::Other);
        // Every spelling of every known name in any case, and near misses.
        for (n, k) in KNOWN {
            let lower = n.to_ascii_lowercase();
            let upper = n.to_ascii_uppercase();
            for v in [n.to_string(), lower, upper] {
                assert_eq!(HeaderKind::classify(v.as_bytes()), *k, "{v}");
            }
            for i in 0..n.len() {
                for x in [b'\r', b'\0', b'_', b'm', b'@', b'`', 0x0D, 0xAD, 0xED] {
                    let mut v = n.as_bytes().to_vec();
                    if v[i].eq_ignore_ascii_case(&x) {
                        continue;
                    }
                    v[i] = x;
                    assert_eq!(HeaderKind::classify(&v), HeaderKind::Other, "{v:?}");
                }
            }
            let mut longer = n.as_bytes().to_vec();
            longer.push(b'x');
            assert_eq!(HeaderKind::classify(&longer), HeaderKind::Other);
            assert_eq!(HeaderKind::classify(&n.as_bytes()[1..]), HeaderKind::Other);
        }
        assert_eq!(HeaderKind::MessageId.name(), "Message-ID");
    }
}
