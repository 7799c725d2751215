//! Writes MSRP frames into a `BufMut` (RFC 4975 §7.1, §7.2, §9): start lines, headers,
//! end-lines, responses and REPORTs, and the relay's rewrite path (RFC 4976 §6.4), which
//! re-emits a parsed head with a new transaction id and new To-Path/From-Path while
//! copying every other header byte for byte.
//!
//! The encoder trusts its inputs: values must be valid for their header (no CR or LF),
//! which holds for anything taken from a parsed [`Head`] or made by msrpd itself.

use bytes::BufMut;

use super::head::{Head, Method, StartLine};
use super::header::ByteRange;
use super::scanner::Flag;

fn num(buf: &mut impl BufMut, n: u64) {
    let mut b = itoa::Buffer::new();
    buf.put_slice(b.format(n).as_bytes());
}

/// `MSRP tid METHOD CRLF`.
pub fn start_request(buf: &mut impl BufMut, tid: &str, method: &str) {
    buf.put_slice(b"MSRP ");
    buf.put_slice(tid.as_bytes());
    buf.put_u8(b' ');
    buf.put_slice(method.as_bytes());
    buf.put_slice(b"\r\n");
}

/// `MSRP tid code [comment] CRLF`.
pub fn start_response(
    buf: &mut impl BufMut,
    tid: impl AsRef<[u8]>,
    code: u16,
    comment: Option<&str>,
) {
    buf.put_slice(b"MSRP ");
    buf.put_slice(tid.as_ref());
    buf.put_u8(b' ');
    put_code(buf, code);
    if let Some(c) = comment {
        buf.put_u8(b' ');
        buf.put_slice(c.as_bytes());
    }
    buf.put_slice(b"\r\n");
}

fn put_code(buf: &mut impl BufMut, code: u16) {
    let code = code.min(999);
    buf.put_slice(&[
        b'0' + (code / 100) as u8,
        b'0' + (code / 10 % 10) as u8,
        b'0' + (code % 10) as u8,
    ]);
}

/// `Name: value CRLF`.
pub fn header(buf: &mut impl BufMut, name: &str, value: &[u8]) {
    debug_assert!(!value.contains(&b'\r') && !value.contains(&b'\n'));
    buf.put_slice(name.as_bytes());
    buf.put_slice(b": ");
    buf.put_slice(value);
    buf.put_slice(b"\r\n");
}

/// A header whose value is a number (Expires, Min-Expires, Max-Expires).
pub fn header_num(buf: &mut impl BufMut, name: &str, value: u64) {
    buf.put_slice(name.as_bytes());
    buf.put_slice(b": ");
    num(buf, value);
    buf.put_slice(b"\r\n");
}

/// A path header from URIs given in order: `Name: u1 u2 ... CRLF`.
pub fn path_header<'u>(buf: &mut impl BufMut, name: &str, uris: impl IntoIterator<Item = &'u str>) {
    buf.put_slice(name.as_bytes());
    buf.put_slice(b": ");
    for (i, u) in uris.into_iter().enumerate() {
        if i > 0 {
            buf.put_u8(b' ');
        }
        buf.put_slice(u.as_bytes());
    }
    buf.put_slice(b"\r\n");
}

/// `Byte-Range: start-end/total CRLF`.
pub fn byte_range(buf: &mut impl BufMut, br: ByteRange) {
    buf.put_slice(b"Byte-Range: ");
    num(buf, br.start);
    buf.put_u8(b'-');
    match br.end {
        Some(e) => num(buf, e),
        None => buf.put_u8(b'*'),
    }
    buf.put_u8(b'/');
    match br.total {
        Some(t) => num(buf, t),
        None => buf.put_u8(b'*'),
    }
    buf.put_slice(b"\r\n");
}

/// The blank line that separates headers (ending with Content-Type) from a body.
pub fn blank_line(buf: &mut impl BufMut) {
    buf.put_slice(b"\r\n");
}

/// The end-line of a frame without a body: `-------tid<flag> CRLF`.
pub fn end_line(buf: &mut impl BufMut, tid: impl AsRef<[u8]>, flag: Flag) {
    buf.put_slice(b"-------");
    buf.put_slice(tid.as_ref());
    buf.put_u8(flag.as_byte());
    buf.put_slice(b"\r\n");
}

/// The end-line after a body, with the CRLF that precedes it (RFC 4975 §7.1).
pub fn body_end_line(buf: &mut impl BufMut, tid: &str, flag: Flag) {
    buf.put_slice(b"\r\n");
    end_line(buf, tid, flag);
}

/// A whole request. `headers` go after the paths; `body` is `(content_type, bytes)`.
#[allow(clippy::too_many_arguments)]
pub fn request(
    buf: &mut impl BufMut,
    tid: &str,
    method: &str,
    to_path: &str,
    from_path: &str,
    headers: &[(&str, &[u8])],
    body: Option<(&str, &[u8])>,
    flag: Flag,
) {
    start_request(buf, tid, method);
    header(buf, "To-Path", to_path.as_bytes());
    header(buf, "From-Path", from_path.as_bytes());
    for (n, v) in headers {
        header(buf, n, v);
    }
    match body {
        Some((ct, data)) => {
            header(buf, "Content-Type", ct.as_bytes());
            blank_line(buf);
            buf.put_slice(data);
            body_end_line(buf, tid, flag);
        }
        None => end_line(buf, tid, flag),
    }
}

/// A whole response (responses have no body and always end with `$`). The transaction id
/// and paths are taken as bytes too, as a relay keeps them from the request's head.
pub fn response(
    buf: &mut impl BufMut,
    tid: impl AsRef<[u8]>,
    code: u16,
    comment: Option<&str>,
    to_path: impl AsRef<[u8]>,
    from_path: impl AsRef<[u8]>,
    headers: &[(&str, &[u8])],
) {
    let tid = tid.as_ref();
    start_response(buf, tid, code, comment);
    header(buf, "To-Path", to_path.as_ref());
    header(buf, "From-Path", from_path.as_ref());
    for (n, v) in headers {
        header(buf, n, v);
    }
    end_line(buf, tid, Flag::Complete);
}

/// How many bytes [`response`] writes for the same arguments, so that callers can
/// allocate once.
pub fn response_len(
    tid: impl AsRef<[u8]>,
    comment: Option<&str>,
    to_path: impl AsRef<[u8]>,
    from_path: impl AsRef<[u8]>,
    headers: &[(&str, &[u8])],
) -> usize {
    let (tid, to_path, from_path) = (tid.as_ref(), to_path.as_ref(), from_path.as_ref());
    // "MSRP " tid " " code [" " comment] CRLF; "To-Path: " .. CRLF; "From-Path: " .. CRLF;
    // each "Name: value" CRLF; "-------" tid "$" CRLF.
    let start = 5 + tid.len() + 1 + 3 + comment.map_or(0, |c| 1 + c.len()) + 2;
    let paths = 9 + to_path.len() + 2 + 11 + from_path.len() + 2;
    let extra: usize = headers.iter().map(|(n, v)| n.len() + 2 + v.len() + 2).sum();
    start + paths + extra + 7 + tid.len() + 1 + 2
}

/// The To-Path of a response to `req` (RFC 4975 §7.2): the first From-Path URI for a
/// SEND (responses go to the previous hop only), the whole From-Path otherwise.
pub fn response_to_path<'a>(req: &Head<'a>) -> &'a str {
    let from = req.from_path();
    match req.method() {
        Some(Method::Send) => from.first().as_str(),
        _ => from.as_str(),
    }
}

/// A response to `req` from `own_uri` (RFC 4975 §7.2).
pub fn response_for(
    buf: &mut impl BufMut,
    req: &Head<'_>,
    code: u16,
    comment: Option<&str>,
    own_uri: &str,
    headers: &[(&str, &[u8])],
) {
    response(
        buf,
        req.tid(),
        code,
        comment,
        response_to_path(req),
        own_uri,
        headers,
    );
}

/// The usual reason phrase for a status code (RFC 4975 §10, RFC 4976 §10.3).
pub fn reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        408 => "Request Timeout",
        413 => "Message Too Large",
        415 => "Unsupported Media Type",
        423 => "Interval Out-of-Bounds",
        481 => "Session Does Not Exist",
        501 => "Not Implemented",
        506 => "Wrong Session",
        _ => "Error",
    }
}

/// A REPORT (RFC 4975 §7.1.2, §7.1.4): `Status: 000 code comment`, no body.
#[allow(clippy::too_many_arguments)]
pub fn report(
    buf: &mut impl BufMut,
    tid: &str,
    to_path: &str,
    from_path: &str,
    message_id: &str,
    range: Option<ByteRange>,
    code: u16,
    comment: Option<&str>,
) {
    start_request(buf, tid, "REPORT");
    header(buf, "To-Path", to_path.as_bytes());
    header(buf, "From-Path", from_path.as_bytes());
    header(buf, "Message-ID", message_id.as_bytes());
    if let Some(br) = range {
        byte_range(buf, br);
    }
    buf.put_slice(b"Status: 000 ");
    put_code(buf, code);
    if let Some(c) = comment {
        buf.put_u8(b' ');
        buf.put_slice(c.as_bytes());
    }
    buf.put_slice(b"\r\n");
    end_line(buf, tid, Flag::Complete);
}

/// Re-emits `head` with a new transaction id and new paths, copying every other header
/// line byte for byte. The blank line (for a body) or end-line is the caller's.
pub fn rewrite_head(
    buf: &mut impl BufMut,
    head: &Head<'_>,
    new_tid: &str,
    to_path: &str,
    from_path: &str,
) {
    match head.start_line() {
        StartLine::Request { method, .. } => start_request(buf, new_tid, method.as_str()),
        StartLine::Response { code, comment, .. } => start_response(buf, new_tid, code, comment),
    }
    header(buf, "To-Path", to_path.as_bytes());
    header(buf, "From-Path", from_path.as_bytes());
    buf.put_slice(head.rest());
}

/// The relay rewrite of RFC 4976 §6.4.1-§6.4.3: moves the first To-Path URI (the relay's
/// own) to the front of From-Path and re-emits the head with `new_tid`. Returns `false`,
/// writing nothing, when the To-Path holds no further hop.
pub fn forward_head(buf: &mut impl BufMut, head: &Head<'_>, new_tid: &str) -> bool {
    forward_head_with(buf, head, new_tid, |buf| buf.put_slice(head.rest())).is_some()
}

/// [`forward_head`] with the header lines after From-Path written by `rest` instead of
/// copied (a relay that edits one of them); `None`, with nothing written, when the
/// To-Path has no URI after the first.
pub fn forward_head_with<B: BufMut, R>(
    buf: &mut B,
    head: &Head<'_>,
    new_tid: &str,
    rest: impl FnOnce(&mut B) -> R,
) -> Option<R> {
    let to = head.to_path();
    let rest_uris = to.rest()?;
    match head.start_line() {
        StartLine::Request { method, .. } => start_request(buf, new_tid, method.as_str()),
        StartLine::Response { code, comment, .. } => start_response(buf, new_tid, code, comment),
    }
    header(buf, "To-Path", rest_uris.as_bytes());
    buf.put_slice(b"From-Path: ");
    buf.put_slice(to.first().as_str().as_bytes());
    buf.put_u8(b' ');
    buf.put_slice(head.from_path().as_str().as_bytes());
    buf.put_slice(b"\r\n");
    Some(rest(buf))
}
