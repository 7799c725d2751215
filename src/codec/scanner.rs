//! Streaming MSRP frame scanner (RFC 4975 §5.1, §7.1, §9).
//!
//! The scanner reads from a `BytesMut` that the caller keeps appending to, and hands out:
//! the head (start line and header block) as one [`RawHead`], then the body in pieces as
//! [`Bytes`] that share the read buffer (no copy), then the end of the chunk with its
//! continuation flag. A chunk of any size streams through with bounded memory: only the
//! header block is buffered whole, and it has a cap ([`ScanLimits::max_head`]).
//!
//! The end-line `-------<transact-id><flag>CRLF` is found with `memchr::memmem`; the
//! transaction id is known from the start line, so body bytes that look like an end-line
//! with another id, a partial one, or a bad flag are passed through as body. The CRLF that
//! precedes an end-line after a body is not part of the body (RFC 4975 §7.1).
//!
//! Contract: between calls the caller only appends to the buffer; bytes are removed from
//! its front by the scanner alone.

use std::sync::LazyLock;

use bytes::{Buf, Bytes, BytesMut};
use memchr::memmem;

use super::chars::{ALNUM, IDENT, UPPER, all, all_text, is, span};
use super::head::{Head, HeadError};

/// The continuation flag of an end-line (RFC 4975 §7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Flag {
    /// `$`: this chunk ends the message.
    Complete,
    /// `+`: more chunks of this message follow.
    Continued,
    /// `#`: the sender aborted the message.
    Aborted,
}

impl Flag {
    pub fn from_byte(b: u8) -> Option<Flag> {
        match b {
            b'$' => Some(Flag::Complete),
            b'+' => Some(Flag::Continued),
            b'#' => Some(Flag::Aborted),
            _ => None,
        }
    }
    pub fn as_byte(self) -> u8 {
        match self {
            Flag::Complete => b'$',
            Flag::Continued => b'+',
            Flag::Aborted => b'#',
        }
    }
}

/// Malformed input. `Copy`, no allocation. After an error the stream cannot be resynced:
/// the scanner keeps returning the same error and the connection should be closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ScanError {
    #[error("start line does not begin with \"MSRP \"")]
    NotMsrp,
    #[error("bad transaction id in start line")]
    BadTransactionId,
    #[error("bad method or status code in start line")]
    BadStartLine,
    #[error("a line ends with a bare LF")]
    BareLf,
    #[error("header block exceeds its size limit")]
    HeadTooLarge,
    #[error("end-line does not match the transaction id or has no valid flag")]
    BadEndLine,
    #[error("a response carries a body")]
    ResponseWithBody,
    #[error("non-SEND body exceeds its size limit")]
    BodyTooLarge,
}

/// Size limits enforced while scanning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanLimits {
    /// Bytes of start line plus header block (default 16 KiB).
    pub max_head: usize,
    /// Body bytes of a non-SEND request (RFC 4975 §7.1: 10240). `None`: no limit.
    pub max_non_send_body: Option<u64>,
}

impl Default for ScanLimits {
    fn default() -> Self {
        ScanLimits {
            max_head: 16 * 1024,
            max_non_send_body: Some(10240),
        }
    }
}

/// What the scanner found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Start line and header block of a request or response (without the blank line or
    /// end-line that terminates it).
    Head(RawHead),
    /// A piece of body, sharing the read buffer.
    Body(Bytes),
    /// The end-line: the frame is complete.
    End(Flag),
}

/// What the start line says, kept as offsets into the head bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StartKind {
    /// Method at `head[start..start+len]`, recognised once by the parser.
    Request {
        start: u16,
        len: u16,
        known: KnownMethod,
    },
    /// Status code; comment at `head[start..start+len]` (empty when absent).
    Response { code: u16, start: u16, len: u16 },
}

/// The methods the relay treats apart, told from the others when the start line is
/// parsed, so that asking a head for its method compares no text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KnownMethod {
    Send,
    Report,
    Auth,
    Nickname,
    Other,
}

impl KnownMethod {
    fn of(m: &[u8]) -> KnownMethod {
        match m {
            b"SEND" => KnownMethod::Send,
            b"REPORT" => KnownMethod::Report,
            b"AUTH" => KnownMethod::Auth,
            b"NICKNAME" => KnownMethod::Nickname,
            _ => KnownMethod::Other,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StartInfo {
    /// Transaction id at `head[5..5+tid_len]`.
    pub(crate) tid_len: u8,
    pub(crate) kind: StartKind,
    /// Offset of the first header line.
    pub(crate) headers_at: u16,
}

/// The head of one frame: start line plus header lines, each ending in CRLF.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawHead {
    bytes: Bytes,
    start: StartInfo,
    has_body: bool,
}

impl RawHead {
    /// The raw bytes (start line and header lines, CRLF-terminated).
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
    /// The raw bytes as a shared `Bytes` (cheap clone).
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }
    /// The transaction id.
    pub fn tid(&self) -> &[u8] {
        &self.bytes[5..5 + usize::from(self.start.tid_len)]
    }
    /// The method for a request, `None` for a response.
    pub fn method(&self) -> Option<&[u8]> {
        match self.start.kind {
            StartKind::Request { start, len, .. } => {
                Some(&self.bytes[usize::from(start)..usize::from(start + len)])
            }
            StartKind::Response { .. } => None,
        }
    }
    /// The status code for a response, `None` for a request.
    pub fn status(&self) -> Option<u16> {
        match self.start.kind {
            StartKind::Response { code, .. } => Some(code),
            StartKind::Request { .. } => None,
        }
    }
    pub fn is_request(&self) -> bool {
        matches!(self.start.kind, StartKind::Request { .. })
    }
    /// `true` for a SEND request.
    pub fn is_send(&self) -> bool {
        matches!(
            self.start.kind,
            StartKind::Request {
                known: KnownMethod::Send,
                ..
            }
        )
    }
    /// `true` when a blank line followed the headers (the request has a body, perhaps empty).
    pub fn has_body(&self) -> bool {
        self.has_body
    }
    /// The raw bytes, the parsed start line and whether a body follows, for parsing the
    /// head later without reading the start line again.
    pub(crate) fn into_parts(self) -> (Bytes, StartInfo, bool) {
        (self.bytes, self.start, self.has_body)
    }
    /// Parses the header lines into a borrowed, typed [`Head`].
    /// A body requires Content-Type (RFC 4975 §7.1).
    pub fn parse(&self) -> Result<Head<'_>, HeadError> {
        let head = Head::parse_after_start(&self.bytes, self.start)?;
        if self.has_body && head.content_type().is_none() {
            return Err(HeadError::MissingContentType);
        }
        Ok(head)
    }
}

/// The longest start line accepted (method names and comments are short).
const MAX_START_LINE: usize = 1024;

/// The longest needle: CRLF, seven hyphens and a 32-byte transaction id.
const NEEDLE_MAX: usize = 2 + 7 + 32;

/// What every end-line after a body begins with (RFC 4975 §7.1).
const END_LINE_FIXED: &[u8] = b"\r\n-------";

/// The searcher for [`END_LINE_FIXED`], built once.
static END_LINE: LazyLock<memmem::Finder<'static>> =
    LazyLock::new(|| memmem::Finder::new(END_LINE_FIXED));

#[derive(Debug, Clone, Copy)]
enum State {
    /// Reading the head; `line` is the offset of the next line to read, and the bytes
    /// from there up to `scanned` are known to hold no LF (so that a head arriving a few
    /// bytes at a time is searched once, not once per read).
    Head {
        line: usize,
        start: Option<StartInfo>,
        scanned: usize,
    },
    /// Reading a body: looking for `CRLF -------tid`.
    Body {
        needle: [u8; NEEDLE_MAX],
        needle_len: u8,
        body_len: u64,
        limit: Option<u64>,
    },
    /// A bodiless frame's head was handed out; its end-line is consumed already.
    End(Flag),
    Failed(ScanError),
}

/// Incremental frame scanner. One per connection.
#[derive(Debug, Clone)]
pub struct Scanner {
    limits: ScanLimits,
    state: State,
}

impl Default for Scanner {
    fn default() -> Self {
        Scanner::new(ScanLimits::default())
    }
}

impl Scanner {
    pub fn new(limits: ScanLimits) -> Scanner {
        Scanner {
            limits: ScanLimits {
                // Head offsets are kept in u16.
                max_head: limits.max_head.min(usize::from(u16::MAX)),
                ..limits
            },
            state: State::Head {
                line: 0,
                start: None,
                scanned: 0,
            },
        }
    }

    /// `true` between frames with nothing of the next frame seen yet in `buf`.
    pub fn is_idle(&self, buf: &[u8]) -> bool {
        matches!(self.state, State::Head { start: None, .. }) && buf.is_empty()
    }

    /// `true` while body pieces of a frame are being handed out.
    pub fn in_body(&self) -> bool {
        matches!(self.state, State::Body { .. })
    }

    /// The next event, `Ok(None)` when more input is needed.
    pub fn next(&mut self, buf: &mut BytesMut) -> Result<Option<Event>, ScanError> {
        let r = match self.state {
            State::Head { .. } => self.head(buf),
            State::Body { .. } => self.body(buf),
            State::End(flag) => {
                self.state = State::Head {
                    line: 0,
                    start: None,
                    scanned: 0,
                };
                Ok(Some(Event::End(flag)))
            }
            State::Failed(e) => Err(e),
        };
        if let Err(e) = r {
            self.state = State::Failed(e);
        }
        r
    }

    fn head(&mut self, buf: &mut BytesMut) -> Result<Option<Event>, ScanError> {
        let State::Head {
            mut line,
            mut start,
            scanned,
        } = self.state
        else {
            unreachable!("head() is called in the Head state only")
        };
        let max = self.limits.max_head;
        loop {
            let b = &buf[..];
            let from = scanned.max(line).min(b.len());
            let Some(off) = memchr::memchr(b'\n', &b[from..]) else {
                // A start line is never shorter than "MSRP " + 4-byte id; reject junk early.
                if start.is_none() {
                    check_magic(b)?;
                }
                if b.len() > max {
                    return Err(ScanError::HeadTooLarge);
                }
                self.state = State::Head {
                    line,
                    start,
                    scanned: b.len(),
                };
                return Ok(None);
            };
            let lf = from + off;
            if start.is_none() {
                // The same check on the same bytes as above, so that the error does not
                // depend on how the input was split.
                check_magic(&b[..lf])?;
            }
            if lf >= max {
                return Err(ScanError::HeadTooLarge);
            }
            if lf == line || b[lf - 1] != b'\r' {
                return Err(ScanError::BareLf);
            }
            let text = &b[line..lf - 1];
            let Some(si) = start else {
                start = Some(parse_start(text)?);
                line = lf + 1;
                continue;
            };
            let tid_len = usize::from(si.tid_len);
            if text.is_empty() {
                // Blank line: a body follows (RFC 4975 §7.1).
                let limit = match si.kind {
                    StartKind::Response { .. } => return Err(ScanError::ResponseWithBody),
                    StartKind::Request {
                        known: KnownMethod::Send,
                        ..
                    } => None,
                    StartKind::Request { .. } => self.limits.max_non_send_body,
                };
                let mut needle = [0u8; NEEDLE_MAX];
                needle[..9].copy_from_slice(b"\r\n-------");
                needle[9..9 + tid_len].copy_from_slice(&b[5..5 + tid_len]);
                let head = buf.split_to(line).freeze();
                buf.advance(2);
                self.state = State::Body {
                    needle,
                    needle_len: (9 + tid_len) as u8,
                    body_len: 0,
                    limit,
                };
                return Ok(Some(Event::Head(RawHead {
                    bytes: head,
                    start: si,
                    has_body: true,
                })));
            }
            if text.starts_with(b"-------") {
                // End-line right after the headers: no body.
                let tid = &b[5..5 + tid_len];
                let ok_len = text.len() == 7 + tid_len + 1;
                let flag = if ok_len && &text[7..7 + tid_len] == tid {
                    Flag::from_byte(text[7 + tid_len])
                } else {
                    None
                };
                let Some(flag) = flag else {
                    return Err(ScanError::BadEndLine);
                };
                let head = buf.split_to(line).freeze();
                buf.advance(lf + 1 - line);
                self.state = State::End(flag);
                return Ok(Some(Event::Head(RawHead {
                    bytes: head,
                    start: si,
                    has_body: false,
                })));
            }
            line = lf + 1;
        }
    }

    fn body(&mut self, buf: &mut BytesMut) -> Result<Option<Event>, ScanError> {
        let State::Body {
            needle,
            needle_len,
            body_len,
            limit,
        } = &mut self.state
        else {
            unreachable!("body() is called in the Body state only")
        };
        let needle = &needle[..usize::from(*needle_len)];
        let n = needle.len();
        let hay = &buf[..];
        let mut from = 0;
        // How many leading bytes are certainly body. The search is for the fixed part of
        // the needle, CRLF and seven hyphens, with a searcher built once; the transaction
        // id is compared where that is found. (Building a searcher for each frame's own
        // needle cost more than searching a 1 KiB body.)
        let emit = loop {
            match END_LINE.find(&hay[from..]) {
                Some(off) => {
                    let i = from + off;
                    let after = i + n;
                    if hay.len() < after + 3 {
                        break i; // cannot tell yet whether this is the end-line
                    }
                    if hay[i + END_LINE_FIXED.len()..after] != needle[END_LINE_FIXED.len()..] {
                        from = i + 1; // body bytes that merely look like an end-line
                        continue;
                    }
                    let flag = Flag::from_byte(hay[after]);
                    if let Some(flag) = flag
                        && hay[after + 1] == b'\r'
                        && hay[after + 2] == b'\n'
                    {
                        if i == 0 {
                            buf.advance(after + 3);
                            self.state = State::Head {
                                line: 0,
                                start: None,
                                scanned: 0,
                            };
                            return Ok(Some(Event::End(flag)));
                        }
                        break i;
                    }
                    from = i + 1; // body bytes that merely look like an end-line
                }
                // A needle may begin in the last n-1 bytes: keep them back.
                None => break hay.len().saturating_sub(n - 1),
            }
        };
        if emit == 0 {
            return Ok(None);
        }
        *body_len += emit as u64;
        if limit.is_some_and(|l| *body_len > l) {
            return Err(ScanError::BodyTooLarge);
        }
        Ok(Some(Event::Body(buf.split_to(emit).freeze())))
    }
}

/// Refuses a first line that does not begin with `MSRP ` (or a prefix of it, when that is
/// all there is so far).
fn check_magic(b: &[u8]) -> Result<(), ScanError> {
    let n = b.len().min(5);
    if b[..n] == b"MSRP "[..n] {
        Ok(())
    } else {
        Err(ScanError::NotMsrp)
    }
}

/// Parses `MSRP SP transact-id SP (method / status-code [SP comment])` (RFC 4975 §9).
pub(crate) fn parse_start(line: &[u8]) -> Result<StartInfo, ScanError> {
    if line.len() < 5 || &line[..5] != b"MSRP " {
        return Err(ScanError::NotMsrp);
    }
    if line.len() > MAX_START_LINE {
        return Err(ScanError::BadStartLine);
    }
    let rest = &line[5..];
    // The id ends at the first byte that is no ident-char, which must be the space.
    let sp = span(rest, 0, IDENT);
    let tid = &rest[..sp];
    // Every byte of `tid` is an ident-char (the span); `ident` also wants 4 to 32 of them
    // and an ALPHANUM first.
    if rest.get(sp) != Some(&b' ')
        || !(4..=32).contains(&tid.len())
        || !tid.first().is_some_and(|&c| is(c, ALNUM))
    {
        return Err(ScanError::BadTransactionId);
    }
    let at = 5 + sp + 1;
    let tail = &line[at..];
    let kind = if tail.len() >= 3 && tail[..3].iter().all(u8::is_ascii_digit) {
        let code = tail[..3]
            .iter()
            .fold(0u16, |a, &c| a * 10 + u16::from(c - b'0'));
        match tail.get(3) {
            None => StartKind::Response {
                code,
                start: (at + 3) as u16,
                len: 0,
            },
            Some(b' ') => {
                let comment = &tail[4..];
                if !all_text(comment)
                    || (!comment.is_ascii() && core::str::from_utf8(comment).is_err())
                {
                    return Err(ScanError::BadStartLine);
                }
                StartKind::Response {
                    code,
                    start: (at + 4) as u16,
                    len: comment.len() as u16,
                }
            }
            Some(_) => return Err(ScanError::BadStartLine),
        }
    } else if !tail.is_empty() && all(tail, UPPER) {
        StartKind::Request {
            start: at as u16,
            len: tail.len() as u16,
            known: KnownMethod::of(tail),
        }
    } else {
        return Err(ScanError::BadStartLine);
    };
    Ok(StartInfo {
        tid_len: tid.len() as u8,
        kind,
        headers_at: (line.len() + 2) as u16,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in pieces of `step` bytes and collects the events, with body pieces
    /// joined.
    fn run(input: &[u8], step: usize) -> Result<Vec<(String, Vec<u8>)>, ScanError> {
        let mut sc = Scanner::default();
        let mut buf = BytesMut::new();
        let mut out: Vec<(String, Vec<u8>)> = Vec::new();
        for piece in input.chunks(step.max(1)) {
            buf.extend_from_slice(piece);
            while let Some(ev) = sc.next(&mut buf)? {
                match ev {
                    Event::Head(h) => out.push(("head".into(), h.as_bytes().to_vec())),
                    Event::Body(b) => match out.last_mut() {
                        Some((k, v)) if k == "body" => v.extend_from_slice(&b),
                        _ => out.push(("body".into(), b.to_vec())),
                    },
                    Event::End(f) => out.push(("end".into(), vec![f.as_byte()])),
                }
            }
        }
        assert!(sc.is_idle(&buf), "leftover: {buf:?}");
        Ok(out)
    }

    const SEND: &[u8] = b"MSRP a786hjs2 SEND\r\nTo-Path: msrp://b.example.com:7654/jshA7we;tcp\r\nFrom-Path: msrp://a.example.com:12763/kjhd37s2s20w2a;tcp\r\nMessage-ID: 87652491\r\nByte-Range: 1-25/25\r\nContent-Type: text/plain\r\n\r\nHey Bob, are you there?\r\n-------a786hjs2$\r\n";

    #[test]
    fn send_any_split() {
        let whole = run(SEND, SEND.len()).unwrap();
        assert_eq!(whole.len(), 3);
        assert_eq!(whole[1].1, b"Hey Bob, are you there?");
        assert_eq!(whole[2].1, b"$");
        for step in 1..SEND.len() {
            assert_eq!(run(SEND, step).unwrap(), whole, "step {step}");
        }
    }

    #[test]
    fn fake_end_lines_in_body() {
        let msg = b"MSRP abcd SEND\r\nTo-Path: msrp://h:1/s;tcp\r\nFrom-Path: msrp://h:2/t;tcp\r\nContent-Type: x/y\r\n\r\n\r\n-------abcde$\r\n\r\n-------abcd!\r\n\r\n-------abcd$xy-------abcd$\r\n\r\n-------abc\r\n-------abcd+\r\n";
        for step in [1, 2, 3, 7, 1000] {
            let ev = run(msg, step).unwrap();
            assert_eq!(ev.len(), 3);
            assert_eq!(
                ev[1].1,
                b"\r\n-------abcde$\r\n\r\n-------abcd!\r\n\r\n-------abcd$xy-------abcd$\r\n\r\n-------abc".to_vec()
            );
            assert_eq!(ev[2].1, b"+");
        }
    }

    #[test]
    fn bodiless_and_response() {
        let msg = b"MSRP abcd SEND\r\nTo-Path: msrp://h:1/s;tcp\r\nFrom-Path: msrp://h:2/t;tcp\r\n-------abcd$\r\nMSRP abcd 200 OK\r\nTo-Path: msrp://h:2/t;tcp\r\nFrom-Path: msrp://h:1/s;tcp\r\n-------abcd$\r\n";
        for step in [1, 5, 1000] {
            let ev = run(msg, step).unwrap();
            let kinds: Vec<_> = ev.iter().map(|e| e.0.as_str()).collect();
            assert_eq!(kinds, ["head", "end", "head", "end"]);
        }
    }

    #[test]
    fn errors() {
        let cases: &[(&[u8], ScanError)] = &[
            (b"GET / HTTP/1.1\r\n", ScanError::NotMsrp),
            (b"MSRP ab SEND\r\n", ScanError::BadTransactionId),
            (b"MSRP abcd send\r\n", ScanError::BadStartLine),
            (b"MSRP abcd SEND\n", ScanError::BareLf),
            (
                b"MSRP abcd 200 OK\r\nTo-Path: msrp://h:1/s;tcp\r\n\r\n",
                ScanError::ResponseWithBody,
            ),
            (
                b"MSRP abcd SEND\r\nTo-Path: x\r\n-------abce$\r\n",
                ScanError::BadEndLine,
            ),
        ];
        for (input, e) in cases {
            assert_eq!(
                run(input, 1).unwrap_err(),
                *e,
                "{:?}",
                String::from_utf8_lossy(input)
            );
            assert_eq!(run(input, 1000).unwrap_err(), *e);
        }
        let big = [b"MSRP abcd SEND\r\nX: ".as_slice(), &[b'a'; 20000]].concat();
        assert_eq!(run(&big, 4096).unwrap_err(), ScanError::HeadTooLarge);
    }
}
