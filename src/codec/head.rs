//! The head of an MSRP frame (RFC 4975 §9; RFC 4976 §7): start line and header block,
//! parsed into a borrowed [`Head`]. Header names compare case-insensitively; To-Path must
//! be the first header and From-Path the second, as the ABNF demands; unknown extension
//! headers are kept as they are. The headers the relay and user agent act on are typed
//! while parsing; the digest headers are typed on demand.

use super::chars::{ALPHA, TOKEN, all, all_text, find, find_ctrl, is};
use super::header::{
    AuthInfo, ByteRange, Challenge, ContentType, Credentials, FailureReport, HeaderKind, Path,
    PathCache, Status, SuccessReport, ValueError, parse_message_id_str, parse_seconds,
};
use super::scanner::{KnownMethod, ScanError, StartInfo, StartKind, parse_start};

/// The most header lines one frame may carry.
pub const MAX_HEADERS: usize = 32;

/// Why a head was refused. `Copy`, no allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    #[error("bad start line: {0}")]
    Start(ScanError),
    #[error("head is larger than 64 KiB")]
    TooLarge,
    #[error("header line without CRLF, name or colon")]
    BadHeaderLine,
    #[error("header value is not utf8text")]
    BadHeaderValue,
    #[error("more than {MAX_HEADERS} headers")]
    TooManyHeaders,
    #[error("To-Path is not the first header")]
    MissingToPath,
    #[error("From-Path is not the second header")]
    MissingFromPath,
    #[error("{0:?} appears twice")]
    Duplicate(HeaderKind),
    #[error("bad {0:?} value: {1}")]
    Value(HeaderKind, ValueError),
    #[error("a body without Content-Type")]
    MissingContentType,
}

/// A request method (RFC 4975 §9, RFC 4976 §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method<'a> {
    Send,
    Report,
    Auth,
    Nickname,
    Other(&'a str),
}

impl<'a> Method<'a> {
    /// The method named by `m` (upper-case letters, as the scanner admits).
    pub fn from_text(m: &'a str) -> Method<'a> {
        match m {
            "SEND" => Method::Send,
            "REPORT" => Method::Report,
            "AUTH" => Method::Auth,
            "NICKNAME" => Method::Nickname,
            _ => Method::Other(m),
        }
    }
    pub fn from_bytes(m: &'a [u8]) -> Method<'a> {
        match m {
            b"SEND" => Method::Send,
            b"REPORT" => Method::Report,
            b"AUTH" => Method::Auth,
            b"NICKNAME" => Method::Nickname,
            // The scanner admits only upper-case ASCII letters here.
            _ => Method::Other(core::str::from_utf8(m).unwrap_or("")),
        }
    }
    pub fn as_str(&self) -> &'a str {
        match self {
            Method::Send => "SEND",
            Method::Report => "REPORT",
            Method::Auth => "AUTH",
            Method::Nickname => "NICKNAME",
            Method::Other(m) => m,
        }
    }
}

/// The start line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartLine<'a> {
    Request {
        tid: &'a str,
        method: Method<'a>,
    },
    Response {
        tid: &'a str,
        code: u16,
        comment: Option<&'a str>,
    },
}

/// One header line: name as written, value with surrounding white space removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header<'a> {
    pub kind: HeaderKind,
    pub name: &'a str,
    pub value: &'a [u8],
}

/// A parsed head borrowing its bytes. Header lines are not indexed: the typed values are
/// kept, and [`Head::headers`] walks the (already validated) lines again when asked.
#[derive(Debug, Clone)]
pub struct Head<'a> {
    raw: &'a [u8],
    /// `raw` as text (a head that parses is UTF-8 throughout): accessors slice it
    /// without checking again.
    text: &'a str,
    start: StartInfo,
    rest_at: u16,
    to_path: Path<'a>,
    from_path: Path<'a>,
    use_path: Option<Path<'a>>,
    message_id: Option<&'a str>,
    byte_range: Option<ByteRange>,
    /// Where the Byte-Range value stands in `raw` (for a relay that edits it).
    byte_range_at: (u16, u16),
    content_type: Option<ContentType<'a>>,
    success_report: Option<SuccessReport>,
    failure_report: Option<FailureReport>,
    status: Option<Status<'a>>,
    expires: Option<u32>,
    min_expires: Option<u32>,
    max_expires: Option<u32>,
}

/// One header line of a validated head: name, value with surrounding white space
/// removed, and where the next line starts.
fn split_line(raw: &[u8], pos: usize) -> Option<(&[u8], &[u8], usize)> {
    let lf = find(raw, pos, b'\n')?;
    let line = raw.get(pos..lf.checked_sub(1)?)?;
    let colon = find(line, 0, b':')?;
    let (name, value) = (line.get(..colon)?, line.get(colon + 1..)?);
    Some((name, trim_ows(value), lf + 1))
}

/// `v` without leading and trailing SP and HTAB.
fn trim_ows(v: &[u8]) -> &[u8] {
    let is_ows = |c: &u8| matches!(c, b' ' | b'\t');
    let start = v.iter().position(|c| !is_ows(c)).unwrap_or(v.len());
    let end = v.iter().rposition(|c| !is_ows(c)).map_or(start, |e| e + 1);
    v.get(start..end).unwrap_or_default()
}

fn str_of(b: &[u8]) -> &str {
    // Callers pass bytes already checked to be ASCII or utf8text.
    core::str::from_utf8(b).unwrap_or("")
}

impl<'a> Head<'a> {
    /// Parses a whole head: start line and header lines, each ending in CRLF (the blank
    /// line or end-line that follows is not part of it).
    pub fn parse(raw: &'a [u8]) -> Result<Head<'a>, HeadError> {
        let lf = find(raw, 0, b'\n').ok_or(HeadError::Start(ScanError::BareLf))?;
        if lf == 0 || raw[lf - 1] != b'\r' {
            return Err(HeadError::Start(ScanError::BareLf));
        }
        let start = parse_start(&raw[..lf - 1]).map_err(HeadError::Start)?;
        Head::parse_after_start(raw, start)
    }

    pub(crate) fn parse_after_start(
        raw: &'a [u8],
        start: StartInfo,
    ) -> Result<Head<'a>, HeadError> {
        Head::parse_after_start_with(raw, start, None)
    }

    /// [`Head::parse_after_start`], with To-Path and From-Path looked up in `paths` first.
    pub(crate) fn parse_after_start_with(
        raw: &'a [u8],
        start: StartInfo,
        mut paths: Option<&mut PathCache>,
    ) -> Result<Head<'a>, HeadError> {
        let mut path = |v: &'a str| match paths.as_deref_mut() {
            Some(c) => c.parse(v),
            None => Path::parse(v),
        };
        if raw.len() > usize::from(u16::MAX) {
            return Err(HeadError::TooLarge);
        }
        let mut head = Head {
            raw,
            text: "",
            start,
            rest_at: 0,
            to_path: Path::EMPTY,
            from_path: Path::EMPTY,
            use_path: None,
            message_id: None,
            byte_range: None,
            byte_range_at: (0, 0),
            content_type: None,
            success_report: None,
            failure_report: None,
            status: None,
            expires: None,
            min_expires: None,
            max_expires: None,
        };
        let mut count = 0usize;
        let mut seen = 0u32;
        let mut pos = usize::from(start.headers_at);
        // One UTF-8 check of the whole head gives every value as text. Each line is found by
        // its first control byte: when that is the CR of the CRLF ending the line, no value
        // byte can fail the utf8text check and the per-value checks are skipped. Any other
        // line is taken apart step by step, so that the error is the same either way.
        let text: Option<&'a str> = core::str::from_utf8(raw).ok();
        while pos < raw.len() {
            let ctrl = find_ctrl(raw, pos);
            let plain =
                matches!(ctrl, Some(i) if raw.get(i + 1) == Some(&b'\n') && raw[i] == b'\r');
            let lf = match ctrl {
                Some(i) if plain => i + 1,
                _ => find(raw, pos, b'\n').ok_or(HeadError::BadHeaderLine)?,
            };
            if lf == pos || raw[lf - 1] != b'\r' {
                return Err(HeadError::BadHeaderLine);
            }
            let line = &raw[pos..lf - 1];
            // hname = ALPHA *token, up to the first colon. A known name is one; any other
            // is checked.
            let colon = find(line, 0, b':').ok_or(HeadError::BadHeaderLine)?;
            let name = &line[..colon];
            let kind = HeaderKind::classify(name);
            if kind == HeaderKind::Other
                && (!name.first().is_some_and(|&c| is(c, ALPHA)) || !all(name, TOKEN))
            {
                return Err(HeadError::BadHeaderLine);
            }
            let mut vs = colon + 1;
            let mut ve = line.len();
            while vs < ve && matches!(line[vs], b' ' | b'\t') {
                vs += 1;
            }
            while ve > vs && matches!(line[ve - 1], b' ' | b'\t') {
                ve -= 1;
            }
            let value = &line[vs..ve];
            if !(plain && text.is_some())
                && (!all_text(value) || (!value.is_ascii() && core::str::from_utf8(value).is_err()))
            {
                return Err(HeadError::BadHeaderValue);
            }
            if count == MAX_HEADERS {
                return Err(HeadError::TooManyHeaders);
            }
            let value_str = || match text {
                Some(t) => t.get(pos + vs..pos + ve).unwrap_or_default(),
                None => str_of(value),
            };
            let err = |e| HeadError::Value(kind, e);
            match (count, kind) {
                (0, HeaderKind::ToPath) => head.to_path = path(value_str()).map_err(err)?,
                (0, _) => return Err(HeadError::MissingToPath),
                (1, HeaderKind::FromPath) => {
                    head.from_path = path(value_str()).map_err(err)?;
                    head.rest_at = (lf + 1) as u16;
                }
                (1, _) => return Err(HeadError::MissingFromPath),
                _ => head.add(kind, value, value_str, &mut seen)?,
            }
            count += 1;
            pos = lf + 1;
        }
        match count {
            0 => Err(HeadError::MissingToPath),
            1 => Err(HeadError::MissingFromPath),
            _ => {
                // Every piece was checked, so this holds; the check is only reached if
                // the whole-head one above failed and the piecewise ones did not.
                head.text = match text {
                    Some(t) => t,
                    None => core::str::from_utf8(raw).map_err(|_| HeadError::BadHeaderValue)?,
                };
                Ok(head)
            }
        }
    }

    /// The head's raw bytes.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.raw
    }

    pub fn start_line(&self) -> StartLine<'a> {
        let tid = self.tid();
        match self.start.kind {
            StartKind::Request { .. } => StartLine::Request {
                tid,
                method: self.method().unwrap_or(Method::Other("")),
            },
            StartKind::Response { code, start, len } => StartLine::Response {
                tid,
                code,
                comment: (len > 0).then(|| self.slice(start, start + len)),
            },
        }
    }

    /// `text[start..end]` (offsets the parser found, so always in range).
    fn slice(&self, start: u16, end: u16) -> &'a str {
        self.text
            .get(usize::from(start)..usize::from(end))
            .unwrap_or_default()
    }

    pub fn tid(&self) -> &'a str {
        self.slice(5, 5 + u16::from(self.start.tid_len))
    }

    /// The method of a request, `None` for a response.
    pub fn method(&self) -> Option<Method<'a>> {
        match self.start.kind {
            StartKind::Request { start, len, known } => Some(match known {
                KnownMethod::Send => Method::Send,
                KnownMethod::Report => Method::Report,
                KnownMethod::Auth => Method::Auth,
                KnownMethod::Nickname => Method::Nickname,
                KnownMethod::Other => Method::Other(self.slice(start, start + len)),
            }),
            StartKind::Response { .. } => None,
        }
    }

    /// The status code of a response, `None` for a request.
    pub fn status_code(&self) -> Option<u16> {
        match self.start.kind {
            StartKind::Response { code, .. } => Some(code),
            StartKind::Request { .. } => None,
        }
    }

    pub fn is_request(&self) -> bool {
        matches!(self.start.kind, StartKind::Request { .. })
    }

    /// All header lines in order, To-Path and From-Path first.
    pub fn headers(&self) -> impl Iterator<Item = Header<'a>> + '_ {
        let raw = self.raw;
        let mut pos = usize::from(self.start.headers_at);
        core::iter::from_fn(move || {
            let (name, value, next) = split_line(raw, pos)?;
            pos = next;
            Some(Header {
                kind: HeaderKind::classify(name),
                name: str_of(name),
                value,
            })
        })
    }

    /// The first header with this name (case-insensitive).
    pub fn get(&self, name: &str) -> Option<&'a [u8]> {
        self.headers()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    }

    fn get_kind(&self, kind: HeaderKind) -> Option<&'a [u8]> {
        self.headers().find(|h| h.kind == kind).map(|h| h.value)
    }

    /// The raw header lines after To-Path and From-Path, CRLF-terminated: what a relay
    /// copies byte for byte.
    pub fn rest(&self) -> &'a [u8] {
        &self.raw[usize::from(self.rest_at)..]
    }

    pub fn to_path(&self) -> &Path<'a> {
        &self.to_path
    }
    pub fn from_path(&self) -> &Path<'a> {
        &self.from_path
    }
    pub fn use_path(&self) -> Option<&Path<'a>> {
        self.use_path.as_ref()
    }
    pub fn message_id(&self) -> Option<&'a str> {
        self.message_id
    }
    pub fn byte_range(&self) -> Option<ByteRange> {
        self.byte_range
    }
    /// Where the Byte-Range value stands in [`Head::rest`], if the head has one there.
    pub fn byte_range_span(&self) -> Option<(usize, usize)> {
        let (a, z) = self.byte_range_at;
        let r = self.rest_at;
        (self.byte_range.is_some() && a >= r && z > a)
            .then(|| (usize::from(a - r), usize::from(z - r)))
    }
    pub fn content_type(&self) -> Option<ContentType<'a>> {
        self.content_type
    }
    /// Success-Report; absent means `No` (RFC 4975 §7.1.1).
    pub fn success_report(&self) -> SuccessReport {
        self.success_report.unwrap_or_default()
    }
    /// Failure-Report; absent means `Yes` (RFC 4975 §7.1.1).
    pub fn failure_report(&self) -> FailureReport {
        self.failure_report.unwrap_or_default()
    }
    /// `true` when the frame carries a Success-Report or Failure-Report header.
    pub fn has_report_headers(&self) -> bool {
        self.success_report.is_some() || self.failure_report.is_some()
    }
    pub fn status(&self) -> Option<Status<'a>> {
        self.status
    }
    pub fn expires(&self) -> Option<u32> {
        self.expires
    }
    pub fn min_expires(&self) -> Option<u32> {
        self.min_expires
    }
    pub fn max_expires(&self) -> Option<u32> {
        self.max_expires
    }
    /// WWW-Authenticate, typed (RFC 4976 §7).
    pub fn www_authenticate(&self) -> Option<Result<Challenge<'a>, ValueError>> {
        self.get_kind(HeaderKind::WwwAuthenticate)
            .map(Challenge::parse)
    }
    /// Authorization, typed (RFC 4976 §7).
    pub fn authorization(&self) -> Option<Result<Credentials<'a>, ValueError>> {
        self.get_kind(HeaderKind::Authorization)
            .map(Credentials::parse)
    }
    /// Authentication-Info, typed (RFC 4976 §7).
    pub fn authentication_info(&self) -> Option<Result<AuthInfo<'a>, ValueError>> {
        self.get_kind(HeaderKind::AuthenticationInfo)
            .map(AuthInfo::parse)
    }
}

impl<'a> Head<'a> {
    /// Types one header; `s` gives the value as text (it is made only for the headers
    /// that need it).
    fn add(
        &mut self,
        kind: HeaderKind,
        v: &'a [u8],
        s: impl FnOnce() -> &'a str,
        seen: &mut u32,
    ) -> Result<(), HeadError> {
        if kind == HeaderKind::Other {
            return Ok(());
        }
        let bit = 1u32 << (kind as u8);
        // A relay may offer several digest challenges, one per algorithm (RFC 4976
        // §5.1, RFC 7616 §3.7): the first is the typed one, all are in `headers()`.
        if *seen & bit != 0 && kind == HeaderKind::WwwAuthenticate {
            return Ok(());
        }
        if *seen & bit != 0 || matches!(kind, HeaderKind::ToPath | HeaderKind::FromPath) {
            return Err(HeadError::Duplicate(kind));
        }
        *seen |= bit;
        let err = |e| HeadError::Value(kind, e);
        match kind {
            HeaderKind::UsePath => self.use_path = Some(Path::parse(s()).map_err(err)?),
            HeaderKind::MessageId => {
                self.message_id = Some(parse_message_id_str(s()).map_err(err)?)
            }
            HeaderKind::ByteRange => {
                self.byte_range = Some(ByteRange::parse(v).map_err(err)?);
                // Heads are under 64 KiB (the scanner's cap), so offsets fit in u16.
                let at = (v.as_ptr() as usize).wrapping_sub(self.raw.as_ptr() as usize);
                if let (Ok(a), Ok(z)) = (u16::try_from(at), u16::try_from(at + v.len())) {
                    self.byte_range_at = (a, z);
                }
            }
            HeaderKind::ContentType => {
                self.content_type = Some(ContentType::parse_str(s()).map_err(err)?)
            }
            HeaderKind::SuccessReport => {
                self.success_report = Some(SuccessReport::parse(v).map_err(err)?)
            }
            HeaderKind::FailureReport => {
                self.failure_report = Some(FailureReport::parse(v).map_err(err)?)
            }
            HeaderKind::Status => self.status = Some(Status::parse(v).map_err(err)?),
            HeaderKind::Expires => self.expires = Some(parse_seconds(v).map_err(err)?),
            HeaderKind::MinExpires => self.min_expires = Some(parse_seconds(v).map_err(err)?),
            HeaderKind::MaxExpires => self.max_expires = Some(parse_seconds(v).map_err(err)?),
            // Digest headers are typed on demand; ToPath/FromPath/Other handled above.
            _ => {}
        }
        Ok(())
    }
}
