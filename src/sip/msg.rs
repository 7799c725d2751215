//! SIP messages (RFC 3261 §7, grammar §25): parsing a datagram (§18.3: the datagram is
//! the message, Content-Length optional) or a byte stream (§18.3: Content-Length frames
//! each message, and a stream without it cannot be framed), into a [`Message`] that
//! owns one [`Bytes`] and an index of its header lines. Every value handed out is a
//! `&str` into those bytes; [`Message::body`] is a zero-copy slice.
//!
//! Accepted on input: header names in any case and in compact form (§7.3.3), line
//! folding (§7.3.1: a line starting with SP or HTAB continues the previous one),
//! repeated and comma-separated headers (§7.3.1), white space before the colon, CRLFs
//! before the start line (§7.5) and the CRLF keepalives of RFC 5626 §4.4.1 between
//! messages on a stream. Refused: a bare LF or CR, NUL and other control bytes, invalid
//! UTF-8 in the head, heads and bodies over the [`Limits`], more headers than the limit.
//!
//! Two levels of error, so the caller knows whether it can answer:
//! - [`ParseError`]: the bytes are not a message (nothing to build a response from):
//!   drop the datagram, close the stream. [`ParseError::status`] says what it would
//!   have been (400 or 513) for counters and logs.
//! - [`Message::check`] on a message that parsed: [`Invalid`] names what is wrong
//!   (missing or bad mandatory header, CSeq method, SIP version, Content-Length larger
//!   than the datagram) and the status to answer with (400, 505), with a reason phrase.
//!   The 416 and 513 decisions are policy and live in [`super::core`].

use bytes::{Bytes, BytesMut};
use memchr::memmem;

use super::chars::{DIGIT, TEXT, TOKEN, URIC, all, is, trim};
use super::header::{CSeq, NameAddr, Uri, Via, parse_u32, split_list};
use super::name::HeaderName;

/// Limits on what one message may hold. The defaults fit any real SIP message (a UDP
/// datagram is at most 64 KiB anyway) and bound what a hostile peer can make us hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Start line and headers, the blank line included.
    pub max_head: usize,
    /// Header lines (a folded line counts once).
    pub max_headers: usize,
    /// The body (Content-Length).
    pub max_body: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_head: 32 * 1024,
            max_headers: 128,
            max_body: 64 * 1024,
        }
    }
}

impl Limits {
    /// For messages this stack wrote itself.
    pub const OWN: Limits = Limits {
        max_head: u32::MAX as usize / 2,
        max_headers: 1 << 16,
        max_body: u32::MAX as usize / 2,
    };
}

/// Why bytes are not a SIP message. `Copy`, no allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("empty message")]
    Empty,
    #[error("the head does not end in a blank line")]
    Incomplete,
    #[error("bad start line")]
    BadStartLine,
    #[error("bad method")]
    BadMethod,
    #[error("bad Request-URI")]
    BadRequestUri,
    #[error("bad SIP version")]
    BadVersion,
    #[error("bad status code")]
    BadStatus,
    #[error("bare CR or LF")]
    BareCrLf,
    #[error("header line without name or colon")]
    BadHeaderLine,
    #[error("continuation line before any header")]
    BadFolding,
    #[error("control byte or invalid UTF-8 in the head")]
    BadText,
    #[error("head larger than the limit")]
    HeadTooLarge,
    #[error("more headers than the limit")]
    TooManyHeaders,
    #[error("body larger than the limit")]
    BodyTooLarge,
    #[error("no Content-Length on a stream")]
    MissingContentLength,
    #[error("bad Content-Length")]
    BadContentLength,
}

impl ParseError {
    /// The status a server would answer with had it a message to answer (RFC 3261
    /// §21.4.1 400, §21.5.14 513).
    pub fn status(self) -> u16 {
        match self {
            ParseError::HeadTooLarge | ParseError::TooManyHeaders | ParseError::BodyTooLarge => 513,
            _ => 400,
        }
    }
}

/// What is wrong with a message that parsed (RFC 3261 §8.1.1 mandatory headers, §8.2.2
/// checks, §18.3 datagram framing). `Copy`; [`Invalid::status`] and
/// [`Invalid::reason`] give the response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    #[error("SIP version not supported")]
    Version,
    #[error("missing {0}")]
    Missing(HeaderName),
    #[error("bad {0}")]
    Bad(HeaderName),
    #[error("bad Request-URI")]
    RequestUri,
    #[error("CSeq method does not match")]
    CSeqMethod,
    #[error("Content-Length larger than the datagram")]
    Truncated,
}

impl Invalid {
    /// 505 for the version (§21.5.6), 400 for the rest.
    pub fn status(self) -> u16 {
        match self {
            Invalid::Version => 505,
            _ => 400,
        }
    }

    /// A reason phrase that says what was wrong, e.g. `Missing Call-ID`.
    pub fn reason(self) -> String {
        match self {
            Invalid::Version => "Version Not Supported".into(),
            Invalid::Missing(h) => format!("Missing {}", h.as_str()),
            Invalid::Bad(h) => format!("Bad {}", h.as_str()),
            Invalid::RequestUri => "Bad Request-URI".into(),
            Invalid::CSeqMethod => "CSeq Method Mismatch".into(),
            Invalid::Truncated => "Content-Length Larger Than Datagram".into(),
        }
    }
}

impl core::fmt::Display for HeaderName {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A request method (RFC 3261 §7.1, §27.4; methods are case-sensitive). Extension
/// methods are [`Method::Other`]; their text is in the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    Invite,
    Ack,
    Bye,
    Cancel,
    Options,
    Register,
    Prack,
    Subscribe,
    Notify,
    Publish,
    Info,
    Refer,
    Message,
    Update,
    Other,
}

const METHODS: [(Method, &str); 14] = [
    (Method::Invite, "INVITE"),
    (Method::Ack, "ACK"),
    (Method::Bye, "BYE"),
    (Method::Cancel, "CANCEL"),
    (Method::Options, "OPTIONS"),
    (Method::Register, "REGISTER"),
    (Method::Prack, "PRACK"),
    (Method::Subscribe, "SUBSCRIBE"),
    (Method::Notify, "NOTIFY"),
    (Method::Publish, "PUBLISH"),
    (Method::Info, "INFO"),
    (Method::Refer, "REFER"),
    (Method::Message, "MESSAGE"),
    (Method::Update, "UPDATE"),
];

impl Method {
    #[allow(clippy::should_implement_trait)]
    pub fn from_str(m: &str) -> Method {
        METHODS
            .iter()
            .find(|(_, s)| *s == m)
            .map_or(Method::Other, |(k, _)| *k)
    }

    /// The name (`""` for [`Method::Other`]).
    pub fn as_str(self) -> &'static str {
        METHODS
            .iter()
            .find(|(k, _)| *k == self)
            .map_or("", |(_, s)| s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Span {
    at: u32,
    len: u32,
}

impl Span {
    fn new(at: usize, end: usize) -> Span {
        // Callers stay within a head bounded by `Limits`, far below u32::MAX.
        Span {
            at: at as u32,
            len: end.saturating_sub(at) as u32,
        }
    }
    fn range(self) -> core::ops::Range<usize> {
        self.at as usize..(self.at as usize + self.len as usize)
    }
}

#[derive(Debug, Clone, Copy)]
enum Start {
    Request {
        method: Method,
        method_at: Span,
        uri: Span,
        version: Span,
    },
    Response {
        code: u16,
        reason: Span,
        version: Span,
    },
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    name: HeaderName,
    name_at: Span,
    value: Span,
}

/// One header line: the name as written, its kind, the value trimmed (a folded value
/// keeps its inner CRLF + white space; [`Header::unfolded`] removes them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header<'a> {
    pub name: HeaderName,
    pub name_str: &'a str,
    pub value: &'a str,
}

impl<'a> Header<'a> {
    /// The value with each fold (CRLF and the white space around it) replaced by one
    /// space (§7.3.1).
    pub fn unfolded(&self) -> std::borrow::Cow<'a, str> {
        unfold(self.value)
    }
}

/// `v` with each fold replaced by one SP; borrowed when there is none.
pub fn unfold(v: &str) -> std::borrow::Cow<'_, str> {
    if !v.contains('\r') {
        return std::borrow::Cow::Borrowed(v);
    }
    let mut out = String::with_capacity(v.len());
    for (i, line) in v.split("\r\n").enumerate() {
        if i == 0 {
            out.push_str(line.trim_end_matches([' ', '\t']));
        } else {
            out.push(' ');
            out.push_str(line.trim_matches([' ', '\t']));
        }
    }
    std::borrow::Cow::Owned(out)
}

/// A parsed SIP message over one [`Bytes`]: cloning it is cheap (a reference count and
/// the header index).
#[derive(Debug, Clone)]
pub struct Message {
    raw: Bytes,
    start: Start,
    headers: Vec<Entry>,
    head_len: u32,
    body: Span,
    content_length: Option<u32>,
    truncated: bool,
    source: Option<core::net::SocketAddr>,
}

/// What [`Message::parse_stream`] found at the front of a stream's buffer.
#[derive(Debug, Clone)]
pub enum Frame {
    /// A whole message, split off the buffer.
    Message(Message),
    /// Not enough bytes yet: read more and call again (nothing was consumed).
    Partial,
    /// A CRLF CRLF keepalive ping (RFC 5626 §4.4.1), consumed: answer with one CRLF.
    Ping,
    /// A single CRLF (a keepalive pong, or the CRLFs §7.5 says to ignore), consumed.
    Crlf,
}

const CRLF2: &[u8] = b"\r\n\r\n";

impl Message {
    /// Parses a whole datagram (RFC 3261 §18.3): leading CRLFs are skipped, the head
    /// must end in a blank line, Content-Length may be absent (the body is the rest).
    /// Bytes past Content-Length are dropped; a Content-Length larger than what
    /// arrived leaves the message [`Invalid::Truncated`] (a 400 case, §18.3), its
    /// body the bytes that came.
    pub fn parse_datagram(data: Bytes, limits: &Limits) -> Result<Message, ParseError> {
        let skip = data.chunks(2).take_while(|c| *c == b"\r\n").count() * 2;
        let data = data.slice(skip..);
        if data.is_empty() {
            return Err(ParseError::Empty);
        }
        let end = find_head_end(&data, limits)?.ok_or(ParseError::Incomplete)?;
        let mut m = parse_head(&data, end, limits)?;
        let avail = data.len() - end;
        let len = match m.content_length {
            Some(cl) if cl as usize > avail => {
                m.truncated = true;
                avail
            }
            Some(cl) => cl as usize,
            None => avail,
        };
        if len > limits.max_body {
            return Err(ParseError::BodyTooLarge);
        }
        m.body = Span::new(end, end + len);
        m.raw = data.slice(..end + len);
        Ok(m)
    }

    /// Parses the front of a stream's buffer (RFC 3261 §18.3; RFC 5626 §4.4.1): a whole
    /// message is split off `buf` (no copy) and returned; keepalive CRLFs are consumed
    /// and reported; [`Frame::Partial`] leaves `buf` untouched. An error means the
    /// stream cannot be framed any more: close it.
    pub fn parse_stream(buf: &mut BytesMut, limits: &Limits) -> Result<Frame, ParseError> {
        let b = &buf[..];
        if b.starts_with(b"\r") || b.starts_with(b"\n") {
            if b.starts_with(CRLF2) {
                let _ = buf.split_to(4);
                return Ok(Frame::Ping);
            }
            if CRLF2.starts_with(b) {
                return Ok(Frame::Partial);
            }
            if b.starts_with(b"\r\n") {
                let _ = buf.split_to(2);
                return Ok(Frame::Crlf);
            }
            return Err(ParseError::BareCrLf);
        }
        // Refuse a bad start line as soon as it is complete, not after max_head bytes.
        if let Some(lf) = memchr::memchr(b'\n', b.get(..limits.max_head.min(b.len())).unwrap_or(b))
        {
            if lf == 0 || b.get(lf - 1) != Some(&b'\r') {
                return Err(ParseError::BareCrLf);
            }
            parse_start(b, lf - 1)?;
        }
        let Some(end) = find_head_end(b, limits)? else {
            return Ok(Frame::Partial);
        };
        let m = parse_head(b, end, limits)?;
        let cl = m.content_length.ok_or(ParseError::MissingContentLength)? as usize;
        if cl > limits.max_body {
            return Err(ParseError::BodyTooLarge);
        }
        if b.len() < end + cl {
            return Ok(Frame::Partial);
        }
        let raw = buf.split_to(end + cl).freeze();
        Ok(Frame::Message(Message {
            raw,
            body: Span::new(end, end + cl),
            ..m
        }))
    }

    /// Parses a message this stack wrote (a datagram without limits).
    pub fn parse_own(data: Bytes) -> Result<Message, ParseError> {
        Message::parse_datagram(data, &Limits::OWN)
    }

    /// The message bytes (head and body; for a datagram, without anything past
    /// Content-Length).
    pub fn raw(&self) -> &Bytes {
        &self.raw
    }
    /// Start line and headers, up to and including the blank line.
    pub fn head(&self) -> &[u8] {
        self.raw.get(..self.head_len as usize).unwrap_or_default()
    }
    /// The body (zero-copy).
    pub fn body(&self) -> Bytes {
        self.raw.slice(self.body.range())
    }
    pub fn body_bytes(&self) -> &[u8] {
        self.raw.get(self.body.range()).unwrap_or_default()
    }
    /// Content-Length as written, if it was.
    pub fn content_length(&self) -> Option<u32> {
        self.content_length
    }
    /// Where the message came from (set by the transport or the transaction table);
    /// [`super::write::response_to`] stamps `received`/`rport` from it.
    pub fn source(&self) -> Option<core::net::SocketAddr> {
        self.source
    }
    pub fn set_source(&mut self, source: Option<core::net::SocketAddr>) {
        self.source = source;
    }
    /// A datagram whose Content-Length exceeds what arrived (§18.3).
    pub fn is_truncated(&self) -> bool {
        self.truncated
    }

    fn text(&self, s: Span) -> &str {
        // The head was checked to be UTF-8 and spans end on ASCII bytes.
        self.raw
            .get(s.range())
            .and_then(|b| core::str::from_utf8(b).ok())
            .unwrap_or("")
    }

    pub fn is_request(&self) -> bool {
        matches!(self.start, Start::Request { .. })
    }
    pub fn is_response(&self) -> bool {
        !self.is_request()
    }
    /// The request method (`None` for a response).
    pub fn method(&self) -> Option<Method> {
        match self.start {
            Start::Request { method, .. } => Some(method),
            Start::Response { .. } => None,
        }
    }
    /// The request method as written (`""` for a response).
    pub fn method_str(&self) -> &str {
        match self.start {
            Start::Request { method_at, .. } => self.text(method_at),
            Start::Response { .. } => "",
        }
    }
    /// The Request-URI as written (`""` for a response).
    pub fn request_uri(&self) -> &str {
        match self.start {
            Start::Request { uri, .. } => self.text(uri),
            Start::Response { .. } => "",
        }
    }
    /// The status code (`None` for a request).
    pub fn status(&self) -> Option<u16> {
        match self.start {
            Start::Response { code, .. } => Some(code),
            Start::Request { .. } => None,
        }
    }
    /// The reason phrase (`""` for a request).
    pub fn reason(&self) -> &str {
        match self.start {
            Start::Response { reason, .. } => self.text(reason),
            Start::Request { .. } => "",
        }
    }
    /// The SIP-Version as written.
    pub fn version(&self) -> &str {
        match self.start {
            Start::Request { version, .. } | Start::Response { version, .. } => self.text(version),
        }
    }

    /// Every header line, in order.
    pub fn headers(&self) -> impl Iterator<Item = Header<'_>> + '_ {
        self.headers.iter().map(|e| Header {
            name: e.name,
            name_str: self.text(e.name_at),
            value: self.text(e.value),
        })
    }
    pub fn header_count(&self) -> usize {
        self.headers.len()
    }
    /// The value of each line of header `name`, in order.
    pub fn get_all(&self, name: HeaderName) -> impl Iterator<Item = &str> + '_ {
        self.headers
            .iter()
            .filter(move |e| e.name == name)
            .map(|e| self.text(e.value))
    }
    /// The first line of header `name`.
    pub fn get(&self, name: HeaderName) -> Option<&str> {
        self.get_all(name).next()
    }
    /// The lines of an extension header, by name (case-insensitive).
    pub fn get_other<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'s str> + 's {
        self.headers()
            .filter(move |h| h.name_str.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    }
    /// Every element of a list header (§7.3.1): each line split at its commas.
    pub fn values(&self, name: HeaderName) -> impl Iterator<Item = &str> + '_ {
        self.get_all(name).flat_map(split_list)
    }

    /// The topmost Via value, parsed.
    pub fn top_via(&self) -> Option<Via<'_>> {
        self.values(HeaderName::Via)
            .next()
            .and_then(|v| Via::parse(v).ok())
    }
    /// Every Via value in order (those that do not parse are skipped; [`Message::check`]
    /// refuses a message with one).
    pub fn vias(&self) -> impl Iterator<Item = Via<'_>> + '_ {
        self.values(HeaderName::Via)
            .filter_map(|v| Via::parse(v).ok())
    }
    pub fn from(&self) -> Option<NameAddr<'_>> {
        self.get(HeaderName::From)
            .and_then(|v| NameAddr::parse(v).ok())
    }
    pub fn to(&self) -> Option<NameAddr<'_>> {
        self.get(HeaderName::To)
            .and_then(|v| NameAddr::parse(v).ok())
    }
    pub fn from_tag(&self) -> Option<&str> {
        self.from().and_then(|f| f.tag())
    }
    pub fn to_tag(&self) -> Option<&str> {
        self.to().and_then(|t| t.tag())
    }
    pub fn call_id(&self) -> Option<&str> {
        self.get(HeaderName::CallId)
            .map(trim)
            .filter(|c| valid_call_id(c))
    }
    pub fn cseq(&self) -> Option<CSeq<'_>> {
        self.get(HeaderName::CSeq).and_then(|v| CSeq::parse(v).ok())
    }
    pub fn max_forwards(&self) -> Option<u32> {
        self.get(HeaderName::MaxForwards)
            .and_then(|v| parse_u32(v).ok())
    }
    pub fn expires(&self) -> Option<u32> {
        self.get(HeaderName::Expires)
            .and_then(|v| parse_u32(v).ok())
    }
    pub fn content_type(&self) -> Option<&str> {
        self.get(HeaderName::ContentType).map(trim)
    }
    pub fn contacts(&self) -> impl Iterator<Item = NameAddr<'_>> + '_ {
        self.values(HeaderName::Contact)
            .filter_map(|v| NameAddr::parse(v).ok())
    }
    pub fn routes(&self) -> impl Iterator<Item = NameAddr<'_>> + '_ {
        self.values(HeaderName::Route)
            .filter_map(|v| NameAddr::parse(v).ok())
    }
    pub fn record_routes(&self) -> impl Iterator<Item = NameAddr<'_>> + '_ {
        self.values(HeaderName::RecordRoute)
            .filter_map(|v| NameAddr::parse(v).ok())
    }
    /// Option tags of Require (§20.32).
    pub fn require(&self) -> impl Iterator<Item = &str> + '_ {
        self.values(HeaderName::Require)
    }
    pub fn proxy_require(&self) -> impl Iterator<Item = &str> + '_ {
        self.values(HeaderName::ProxyRequire)
    }
    pub fn supported(&self) -> impl Iterator<Item = &str> + '_ {
        self.values(HeaderName::Supported)
    }
    pub fn allow(&self) -> impl Iterator<Item = &str> + '_ {
        self.values(HeaderName::Allow)
    }
    /// WWW-Authenticate challenges, one per line (§20.44; not split at commas).
    pub fn www_authenticate(&self) -> impl Iterator<Item = &str> + '_ {
        self.get_all(HeaderName::WwwAuthenticate)
    }
    pub fn proxy_authenticate(&self) -> impl Iterator<Item = &str> + '_ {
        self.get_all(HeaderName::ProxyAuthenticate)
    }
    pub fn authorization(&self) -> impl Iterator<Item = &str> + '_ {
        self.get_all(HeaderName::Authorization)
    }
    pub fn proxy_authorization(&self) -> impl Iterator<Item = &str> + '_ {
        self.get_all(HeaderName::ProxyAuthorization)
    }

    /// Checks what a transaction, dialog or UAS needs of a message (RFC 3261 §8.1.1:
    /// To, From, CSeq, Call-ID and Via in every message; the Request-URI and the CSeq
    /// method of a request; §18.3 datagram length; §8.2.2 version). Max-Forwards may
    /// be absent (§8.2 lets a UAS take a request without it) but must parse if present.
    pub fn check(&self) -> Result<(), Invalid> {
        if !self.version().eq_ignore_ascii_case("SIP/2.0") {
            return Err(Invalid::Version);
        }
        let mut vias = self.values(HeaderName::Via).peekable();
        if vias.peek().is_none() {
            return Err(Invalid::Missing(HeaderName::Via));
        }
        if vias.any(|v| Via::parse(v).is_err()) {
            return Err(Invalid::Bad(HeaderName::Via));
        }
        for (h, single) in [
            (HeaderName::From, true),
            (HeaderName::To, true),
            (HeaderName::CallId, true),
            (HeaderName::CSeq, true),
            (HeaderName::MaxForwards, false),
        ] {
            let mut lines = self.get_all(h);
            match (lines.next(), lines.next()) {
                (None, _) if single => return Err(Invalid::Missing(h)),
                (None, _) => {}
                (Some(_), Some(_)) => return Err(Invalid::Bad(h)),
                (Some(v), None) => {
                    let ok = match h {
                        HeaderName::From | HeaderName::To => {
                            NameAddr::parse(v).is_ok_and(|n| n.uri != "*")
                        }
                        HeaderName::CallId => valid_call_id(trim(v)),
                        HeaderName::CSeq => CSeq::parse(v).is_ok(),
                        _ => parse_u32(v).is_ok(),
                    };
                    if !ok {
                        return Err(Invalid::Bad(h));
                    }
                }
            }
        }
        if let Start::Request { method, .. } = self.start {
            if Uri::parse(self.request_uri()).is_err() {
                return Err(Invalid::RequestUri);
            }
            let cseq = self.cseq().ok_or(Invalid::Bad(HeaderName::CSeq))?;
            if cseq.method != method || cseq.method_str != self.method_str() {
                return Err(Invalid::CSeqMethod);
            }
        }
        if self.truncated {
            return Err(Invalid::Truncated);
        }
        Ok(())
    }
}

/// `callid = word [ "@" word ]` (§25.1), leniently: visible ASCII, no white space.
fn valid_call_id(c: &str) -> bool {
    !c.is_empty() && c.len() <= 256 && c.bytes().all(|b| is(b, URIC))
}

/// Where the head ends (just past its blank line), `None` when not yet; an error when
/// the limit is passed without one.
fn find_head_end(b: &[u8], limits: &Limits) -> Result<Option<usize>, ParseError> {
    let window = b.get(..limits.max_head.min(b.len())).unwrap_or(b);
    match memmem::find(window, CRLF2) {
        Some(at) => Ok(Some(at + 4)),
        None if b.len() >= limits.max_head => Err(ParseError::HeadTooLarge),
        None => Ok(None),
    }
}

/// The start line `b[..cr]` (§7.1 Request-Line, §7.2 Status-Line).
fn parse_start(b: &[u8], cr: usize) -> Result<Start, ParseError> {
    let line = b.get(..cr).ok_or(ParseError::BadStartLine)?;
    let mut words = line.splitn(3, |&c| c == b' ');
    let (w0, w1, w2) = (words.next(), words.next(), words.next());
    let (Some(w0), Some(w1)) = (w0, w1) else {
        return Err(ParseError::BadStartLine);
    };
    let sp1 = w0.len();
    if is_version_word(w0) {
        check_version(w0)?;
        let code = parse_code(w1)?;
        let reason_at = sp1 + 1 + w1.len() + 1;
        let reason = w2.unwrap_or_default();
        if !reason.iter().all(|&c| is(c, TEXT)) {
            return Err(ParseError::BadStartLine);
        }
        return Ok(Start::Response {
            code,
            reason: Span::new(reason_at.min(cr), cr),
            version: Span::new(0, sp1),
        });
    }
    let w2 = w2.ok_or(ParseError::BadStartLine)?;
    if !all(w0, TOKEN) {
        return Err(ParseError::BadMethod);
    }
    if !all(w1, URIC) || !w1.contains(&b':') {
        return Err(ParseError::BadRequestUri);
    }
    if !is_version_word(w2) {
        return Err(ParseError::BadVersion);
    }
    check_version(w2)?;
    let method = Method::from_str(core::str::from_utf8(w0).unwrap_or(""));
    let uri_at = sp1 + 1;
    let ver_at = uri_at + w1.len() + 1;
    Ok(Start::Request {
        method,
        method_at: Span::new(0, sp1),
        uri: Span::new(uri_at, uri_at + w1.len()),
        version: Span::new(ver_at, cr),
    })
}

fn is_version_word(w: &[u8]) -> bool {
    w.len() >= 4 && w[..4].eq_ignore_ascii_case(b"SIP/")
}

/// `"SIP" "/" 1*DIGIT "." 1*DIGIT` (§25.1); any version parses, only 2.0 passes
/// [`Message::check`].
fn check_version(w: &[u8]) -> Result<(), ParseError> {
    let rest = w.get(4..).unwrap_or_default();
    let mut parts = rest.splitn(2, |&c| c == b'.');
    match (parts.next(), parts.next()) {
        (Some(a), Some(b)) if all(a, DIGIT) && all(b, DIGIT) && a.len() <= 3 && b.len() <= 3 => {
            Ok(())
        }
        _ => Err(ParseError::BadVersion),
    }
}

fn parse_code(w: &[u8]) -> Result<u16, ParseError> {
    match w {
        [a @ b'1'..=b'6', b @ b'0'..=b'9', c @ b'0'..=b'9'] => {
            Ok(u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0'))
        }
        _ => Err(ParseError::BadStatus),
    }
}

/// Parses `b[..end]`, a head ending in CRLF CRLF, into a message without body.
fn parse_head(b: &[u8], end: usize, limits: &Limits) -> Result<Message, ParseError> {
    let head = b.get(..end).ok_or(ParseError::Incomplete)?;
    if core::str::from_utf8(head).is_err() {
        return Err(ParseError::BadText);
    }
    let lf0 = memchr::memchr(b'\n', head).ok_or(ParseError::Incomplete)?;
    if lf0 == 0 || head[lf0 - 1] != b'\r' {
        return Err(ParseError::BareCrLf);
    }
    let start = parse_start(head, lf0 - 1)?;
    let mut headers: Vec<Entry> = Vec::new();
    let mut pos = lf0 + 1;
    // The last line of `head` is the blank one, at end - 2.
    while pos < end - 2 {
        let lf = memchr::memchr(b'\n', head.get(pos..).unwrap_or_default())
            .map(|i| pos + i)
            .ok_or(ParseError::Incomplete)?;
        if lf == pos || head[lf - 1] != b'\r' {
            return Err(ParseError::BareCrLf);
        }
        let line = &head[pos..lf - 1];
        if line.iter().any(|&c| !is(c, TEXT)) {
            return Err(if line.contains(&b'\r') {
                ParseError::BareCrLf
            } else {
                ParseError::BadText
            });
        }
        if matches!(line.first(), Some(b' ' | b'\t')) {
            // A fold: the previous value now runs to the end of this line.
            let last = headers.last_mut().ok_or(ParseError::BadFolding)?;
            let value_end = pos + trimmed_len(line);
            if value_end > pos {
                if last.value.len == 0 {
                    let first = line
                        .iter()
                        .position(|&c| c != b' ' && c != b'\t')
                        .unwrap_or(0);
                    last.value = Span::new(pos + first, value_end);
                } else {
                    last.value = Span::new(last.value.at as usize, value_end);
                }
            }
        } else {
            let colon = memchr::memchr(b':', line).ok_or(ParseError::BadHeaderLine)?;
            let name = trim_ws_end(&line[..colon]);
            if !all(name, TOKEN) {
                return Err(ParseError::BadHeaderLine);
            }
            if headers.len() >= limits.max_headers {
                return Err(ParseError::TooManyHeaders);
            }
            let vstart = colon
                + 1
                + line[colon + 1..]
                    .iter()
                    .take_while(|&&c| c == b' ' || c == b'\t')
                    .count();
            let vend = trimmed_len(line).max(vstart);
            headers.push(Entry {
                name: HeaderName::from_bytes(name),
                name_at: Span::new(pos, pos + name.len()),
                value: Span::new(pos + vstart, pos + vend),
            });
        }
        pos = lf + 1;
    }
    let mut content_length = None;
    for e in headers
        .iter()
        .filter(|e| e.name == HeaderName::ContentLength)
    {
        let v = head
            .get(e.value.range())
            .and_then(|v| core::str::from_utf8(v).ok())
            .unwrap_or("");
        let n = match parse_u32(v) {
            Ok(n) => n,
            Err(super::header::ValueError::Range) => return Err(ParseError::BodyTooLarge),
            Err(_) => return Err(ParseError::BadContentLength),
        };
        if content_length.is_some_and(|c| c != n) {
            return Err(ParseError::BadContentLength);
        }
        content_length = Some(n);
    }
    if content_length.is_some_and(|c| c as usize > limits.max_body) {
        return Err(ParseError::BodyTooLarge);
    }
    Ok(Message {
        raw: Bytes::new(),
        start,
        headers,
        head_len: end as u32,
        body: Span::default(),
        content_length,
        truncated: false,
        source: None,
    })
}

/// Length of `line` without trailing SP / HTAB.
fn trimmed_len(line: &[u8]) -> usize {
    line.iter()
        .rposition(|&c| c != b' ' && c != b'\t')
        .map_or(0, |i| i + 1)
}

fn trim_ws_end(b: &[u8]) -> &[u8] {
    &b[..trimmed_len(b)]
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPTIONS: &str = "OPTIONS sip:carol@chicago.com SIP/2.0\r\n\
Via: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bKhjhs8ass877\r\n\
Max-Forwards: 70\r\n\
To: <sip:carol@chicago.com>\r\n\
From: Alice <sip:alice@atlanta.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710\r\n\
CSeq: 63104 OPTIONS\r\n\
Contact: <sip:alice@pc33.atlanta.com>\r\n\
Accept: application/sdp\r\n\
Content-Length: 0\r\n\r\n";

    fn dgram(s: &str) -> Result<Message, ParseError> {
        Message::parse_datagram(Bytes::copy_from_slice(s.as_bytes()), &Limits::default())
    }

    #[test]
    fn parses_a_request() {
        let m = dgram(OPTIONS).unwrap();
        m.check().unwrap();
        assert!(m.is_request());
        assert_eq!(m.method(), Some(Method::Options));
        assert_eq!(m.method_str(), "OPTIONS");
        assert_eq!(m.request_uri(), "sip:carol@chicago.com");
        assert_eq!(m.version(), "SIP/2.0");
        assert_eq!(m.header_count(), 9);
        assert_eq!(m.call_id(), Some("a84b4c76e66710"));
        assert_eq!(
            m.cseq().map(|c| (c.seq, c.method)),
            Some((63104, Method::Options))
        );
        assert_eq!(m.max_forwards(), Some(70));
        assert_eq!(m.from_tag(), Some("1928301774"));
        assert_eq!(m.to_tag(), None);
        assert_eq!(m.top_via().unwrap().branch(), Some("z9hG4bKhjhs8ass877"));
        assert_eq!(
            m.contacts().next().unwrap().uri,
            "sip:alice@pc33.atlanta.com"
        );
        assert_eq!(m.content_length(), Some(0));
        assert!(m.body().is_empty());
        assert_eq!(m.head().len(), OPTIONS.len());
        // Zero-copy: values point into the message's bytes.
        let raw = m.raw().as_ptr() as usize;
        let v = m.call_id().unwrap().as_ptr() as usize;
        assert!(v > raw && v < raw + m.raw().len());
    }

    #[test]
    fn compact_forms_folding_and_lists() {
        let s = "INVITE sips:bob@biloxi.com SIP/2.0\r\n\
v: SIP/2.0/TLS a.example.com;branch=z9hG4bK1,SIP/2.0/UDP b.example.com;branch=z9hG4bK2\r\n\
V  : SIP/2.0/UDP c.example.com\r\n\t ;branch=z9hG4bK3\r\n\
f: <sip:alice@atlanta.com>;tag=88\r\n\
t: Bob\r\n <sip:bob@biloxi.com>\r\n\
i: abc@x\r\n\
CSEQ: 1 INVITE\r\n\
m: <sip:a@1.2.3.4>, <sip:b@5.6.7.8>;q=0.5\r\n\
k: 100rel\r\nk: timer, path\r\n\
Require:\r\n  foo\r\n\
c: text/plain\r\n\
l: 5\r\n\r\nhello";
        let m = dgram(s).unwrap();
        m.check().unwrap();
        let vias: Vec<_> = m
            .vias()
            .map(|v| (v.transport, v.host, v.branch()))
            .collect();
        assert_eq!(
            vias,
            [
                ("TLS", "a.example.com", Some("z9hG4bK1")),
                ("UDP", "b.example.com", Some("z9hG4bK2")),
                ("UDP", "c.example.com", Some("z9hG4bK3")),
            ]
        );
        let to = m.headers().find(|h| h.name == HeaderName::To).unwrap();
        assert_eq!(to.value, "Bob\r\n <sip:bob@biloxi.com>");
        assert_eq!(to.unfolded(), "Bob <sip:bob@biloxi.com>");
        assert_eq!(to.name_str, "t");
        assert_eq!(m.to().unwrap().display, Some("Bob"));
        assert_eq!(m.call_id(), Some("abc@x"));
        assert_eq!(m.contacts().count(), 2);
        assert_eq!(
            m.supported().collect::<Vec<_>>(),
            ["100rel", "timer", "path"]
        );
        assert_eq!(m.require().collect::<Vec<_>>(), ["foo"]);
        assert_eq!(m.content_type(), Some("text/plain"));
        assert_eq!(&m.body()[..], b"hello");
    }

    #[test]
    fn parses_a_response() {
        let m = dgram("SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\r\nTo: <sip:b@h>;tag=2\r\nFrom: <sip:a@h>;tag=1\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n\r\n").unwrap();
        m.check().unwrap();
        assert_eq!((m.status(), m.reason()), (Some(180), "Ringing"));
        assert_eq!(m.method(), None);
        assert_eq!(m.content_length(), None);
        for (line, code, reason) in [
            ("SIP/2.0 200 OK", 200, "OK"),
            ("SIP/2.0 200 ", 200, ""),
            ("SIP/2.0 200", 200, ""),
            ("sip/2.0 404 Not  Found ", 404, "Not  Found "),
            ("SIP/2.0 699 \u{e9}t\u{e9}", 699, "\u{e9}t\u{e9}"),
        ] {
            let m = dgram(&format!("{line}\r\n\r\n")).unwrap();
            assert_eq!((m.status(), m.reason()), (Some(code), reason), "{line:?}");
        }
    }

    #[test]
    fn datagram_errors() {
        for (s, want) in [
            ("", ParseError::Empty),
            ("\r\n\r\n", ParseError::Empty),
            (
                "OPTIONS sip:a@b SIP/2.0\r\nVia: x\r\n",
                ParseError::Incomplete,
            ),
            (
                "OPTIONS sip:a@b SIP/2.0\nVia: x\r\n\r\n",
                ParseError::BareCrLf,
            ),
            (
                "OPTIONS sip:a@b SIP/2.0\r\nVia: x\n\r\n\r\n",
                ParseError::BareCrLf,
            ),
            (
                "OPTIONS sip:a@b SIP/2.0\r\nVia: a\rb\r\n\r\n",
                ParseError::BareCrLf,
            ),
            (
                "OPTIONS sip:a@b SIP/2.0\r\nVia: a\0b\r\n\r\n",
                ParseError::BadText,
            ),
            (
                "OPTIONS sip:a@b SIP/2.0\r\n folded\r\n\r\n",
                ParseError::BadFolding,
            ),
            (
                "OPTIONS sip:a@b SIP/2.0\r\nNoColon\r\n\r\n",
                ParseError::BadHeaderLine,
            ),
            (
                "OPTIONS sip:a@b SIP/2.0\r\nBad Name: x\r\n\r\n",
                ParseError::BadHeaderLine,
            ),
            (
                "OPTIONS sip:a@b SIP/2.0\r\n: x\r\n\r\n",
                ParseError::BadHeaderLine,
            ),
            (
                "OPTIONS sip:a@b SIP/2.0\r\nl: x\r\n\r\n",
                ParseError::BadContentLength,
            ),
            (
                "OPTIONS sip:a@b SIP/2.0\r\nl: 1\r\nl: 2\r\n\r\nab",
                ParseError::BadContentLength,
            ),
            (
                "OPTIONS sip:a@b SIP/2.0\r\nl: 99999999999\r\n\r\n",
                ParseError::BodyTooLarge,
            ),
            (
                "OPTIONS sip:a@b SIP/2.0\r\nl: 70000\r\n\r\n",
                ParseError::BodyTooLarge,
            ),
            ("OPTIONS sip:a@b\r\n\r\n", ParseError::BadStartLine),
            ("OPTIONS\r\n\r\n", ParseError::BadStartLine),
            (
                "OPTIONS  sip:a@b SIP/2.0\r\n\r\n",
                ParseError::BadRequestUri,
            ),
            ("OPTIONS sip:a@b SIP/2.0 \r\n\r\n", ParseError::BadVersion),
            ("OPT(ONS sip:a@b SIP/2.0\r\n\r\n", ParseError::BadMethod),
            ("OPTIONS nocolon SIP/2.0\r\n\r\n", ParseError::BadRequestUri),
            ("OPTIONS sip:a@b HTTP/1.1\r\n\r\n", ParseError::BadVersion),
            ("OPTIONS sip:a@b SIP/2\r\n\r\n", ParseError::BadVersion),
            ("SIP/2.0 2000 OK\r\n\r\n", ParseError::BadStatus),
            ("SIP/2.0 099 OK\r\n\r\n", ParseError::BadStatus),
            ("SIP/2.0 700 OK\r\n\r\n", ParseError::BadStatus),
            ("SIP/x.0 200 OK\r\n\r\n", ParseError::BadVersion),
            ("SIP/2.0 200 O\tK\x01\r\n\r\n", ParseError::BadStartLine),
            ("GET / HTTP/1.1\r\n\r\n", ParseError::BadRequestUri),
            ("MSRP a786hjs2 SEND\r\n\r\n", ParseError::BadRequestUri),
        ] {
            assert_eq!(dgram(s).map(|_| ()), Err(want), "{s:?}");
        }
        let bad_utf8 = Bytes::from_static(b"OPTIONS sip:a@b SIP/2.0\r\nVia: \xff\r\n\r\n");
        assert_eq!(
            Message::parse_datagram(bad_utf8, &Limits::default()).map(|_| ()),
            Err(ParseError::BadText)
        );
        assert_eq!(ParseError::TooManyHeaders.status(), 513);
        assert_eq!(ParseError::BadText.status(), 400);
    }

    #[test]
    fn datagram_framing() {
        // §18.3: bytes past Content-Length are dropped; more than arrived is a 400 case.
        let base = OPTIONS.replace("Content-Length: 0", "Content-Length: 3");
        let m = dgram(&format!("{base}abcdef")).unwrap();
        assert_eq!(&m.body()[..], b"abc");
        assert_eq!(m.raw().len(), base.len() + 3);
        let m = dgram(&format!("{base}a")).unwrap();
        assert!(m.is_truncated());
        assert_eq!(&m.body()[..], b"a");
        assert_eq!(m.check(), Err(Invalid::Truncated));
        let no_cl = OPTIONS.replace("Content-Length: 0\r\n", "");
        let m = dgram(&format!("{no_cl}xyz")).unwrap();
        assert_eq!(&m.body()[..], b"xyz");
        // Leading CRLFs are ignored (§7.5).
        let m = dgram(&format!("\r\n\r\n{OPTIONS}")).unwrap();
        assert_eq!(m.method(), Some(Method::Options));
    }

    #[test]
    fn limits() {
        let small = Limits {
            max_head: 200,
            max_headers: 5,
            max_body: 10,
        };
        let p = |s: &str| {
            Message::parse_datagram(Bytes::copy_from_slice(s.as_bytes()), &small).map(|_| ())
        };
        assert_eq!(p(OPTIONS), Err(ParseError::HeadTooLarge));
        let six = "OPTIONS sip:a@b SIP/2.0\r\na: 1\r\nb: 1\r\nc: 1\r\nd: 1\r\ne: 1\r\nf: 1\r\n\r\n";
        assert_eq!(p(six), Err(ParseError::TooManyHeaders));
        assert_eq!(p(&six.replace("f: 1\r\n", "")), Ok(()));
        assert_eq!(p(&six.replace("f: 1\r\n", " folded\r\n")), Ok(()));
        assert_eq!(
            p("OPTIONS sip:a@b SIP/2.0\r\n\r\n12345678901"),
            Err(ParseError::BodyTooLarge)
        );
        assert_eq!(p("OPTIONS sip:a@b SIP/2.0\r\n\r\n1234567890"), Ok(()));
    }

    #[test]
    fn stream_framing() {
        let two = format!(
            "\r\n\r\n\r\n{}{}",
            OPTIONS.replace("Content-Length: 0", "l: 4"),
            "body"
        ) + OPTIONS;
        // Fed one byte at a time, the stream gives: ping, crlf, message, message.
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for &b in two.as_bytes() {
            buf.extend_from_slice(&[b]);
            loop {
                match Message::parse_stream(&mut buf, &Limits::default()).unwrap() {
                    Frame::Partial => break,
                    Frame::Ping => got.push("ping".to_string()),
                    Frame::Crlf => got.push("crlf".to_string()),
                    Frame::Message(m) => got.push(format!(
                        "{} {:?}",
                        m.method_str(),
                        std::str::from_utf8(m.body_bytes()).unwrap()
                    )),
                }
            }
        }
        assert_eq!(got, ["ping", "crlf", "OPTIONS \"body\"", "OPTIONS \"\""]);
        assert!(buf.is_empty());
        // Errors on a stream.
        for (s, want) in [
            (
                OPTIONS.replace("Content-Length: 0\r\n", ""),
                ParseError::MissingContentLength,
            ),
            ("\r\rX".to_string(), ParseError::BareCrLf),
            ("\nX".to_string(), ParseError::BareCrLf),
            ("HELLO WORLD\r\n".to_string(), ParseError::BadStartLine),
            (
                "OPTIONS sip:a@b SIP/2.0\n".to_string(),
                ParseError::BareCrLf,
            ),
            ("x".repeat(40_000), ParseError::HeadTooLarge),
        ] {
            let mut buf = BytesMut::from(s.as_bytes());
            let r = Message::parse_stream(&mut buf, &Limits::default());
            assert_eq!(r.map(|_| ()).unwrap_err(), want, "{s:.40?}");
        }
        // A partial body is Partial and consumes nothing.
        let mut buf = BytesMut::from(
            OPTIONS
                .replace("Content-Length: 0", "Content-Length: 9")
                .as_bytes(),
        );
        let len = buf.len();
        assert!(matches!(
            Message::parse_stream(&mut buf, &Limits::default()),
            Ok(Frame::Partial)
        ));
        assert_eq!(buf.len(), len);
    }

    #[test]
    fn check_names_what_is_wrong() {
        let drop = |h: &str| {
            let s: String = OPTIONS
                .split_inclusive("\r\n")
                .filter(|l| !l.starts_with(h))
                .collect();
            dgram(&s).unwrap().check()
        };
        assert_eq!(drop("Via"), Err(Invalid::Missing(HeaderName::Via)));
        assert_eq!(drop("From"), Err(Invalid::Missing(HeaderName::From)));
        assert_eq!(drop("To"), Err(Invalid::Missing(HeaderName::To)));
        assert_eq!(drop("Call-ID"), Err(Invalid::Missing(HeaderName::CallId)));
        assert_eq!(drop("CSeq"), Err(Invalid::Missing(HeaderName::CSeq)));
        assert_eq!(drop("Max-Forwards"), Ok(()));
        let sub = |a: &str, b: &str| dgram(&OPTIONS.replace(a, b)).unwrap().check();
        assert_eq!(
            sub("SIP/2.0\r\nVia", "SIP/3.0\r\nVia"),
            Err(Invalid::Version)
        );
        assert_eq!(
            sub("UDP pc33", "UDP pc33 x"),
            Err(Invalid::Bad(HeaderName::Via))
        );
        assert_eq!(
            sub("63104 OPTIONS", "63104 INVITE"),
            Err(Invalid::CSeqMethod)
        );
        assert_eq!(sub("63104", "x"), Err(Invalid::Bad(HeaderName::CSeq)));
        assert_eq!(
            sub("Max-Forwards: 70", "Max-Forwards: -1"),
            Err(Invalid::Bad(HeaderName::MaxForwards))
        );
        assert_eq!(
            sub("Call-ID: a84b4c76e66710", "Call-ID: a b"),
            Err(Invalid::Bad(HeaderName::CallId))
        );
        assert_eq!(
            sub("To: <sip:carol@chicago.com>", "To: carol"),
            Err(Invalid::Bad(HeaderName::To))
        );
        assert_eq!(
            sub("Call-ID: a84b4c76e66710", "Call-ID: a\r\ni: b"),
            Err(Invalid::Bad(HeaderName::CallId))
        );
        assert_eq!(
            sub("OPTIONS sip:carol@chicago.com", "OPTIONS sip:"),
            Err(Invalid::RequestUri)
        );
        assert_eq!(
            Invalid::Missing(HeaderName::CallId).reason(),
            "Missing Call-ID"
        );
        assert_eq!(Invalid::Version.status(), 505);
        assert_eq!(Invalid::Bad(HeaderName::CSeq).status(), 400);
    }
}
