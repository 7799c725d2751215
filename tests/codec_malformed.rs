//! Malformed input: each case with the exact error it must produce. Every case is fed
//! through the [`Scanner`] in 1-byte and 7-byte pieces and whole, and each head it yields
//! goes through `RawHead::parse`; the first error met must be the expected one, at every
//! split size. Digest headers are typed on demand, so their errors are checked with
//! `Head::{www_authenticate, authorization, authentication_info}` after a clean parse.

use bytes::BytesMut;
use msrpd::codec::{
    Event, Head, HeadError, HeaderKind, ScanError, ScanLimits, Scanner, UriError, ValueError,
};

/// The first error a stream produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Every frame scanned and parsed: the stream is valid.
    Valid,
    Scan(ScanError),
    Head(HeadError),
    /// A digest header refused when typed on demand.
    Lazy(HeaderKind, ValueError),
}

use Outcome::{Head as H, Lazy, Scan as S};

const TP: &str = "To-Path: msrp://h.example.com:1/s;tcp\r\n";
const FP: &str = "From-Path: msrp://h.example.com:2/t;tcp\r\n";

/// A bodiless SEND with tid `abcd`, the two paths, then `extra` header lines.
fn req(extra: &str) -> Vec<u8> {
    format!("MSRP abcd SEND\r\n{TP}{FP}{extra}-------abcd$\r\n").into_bytes()
}

/// A bodiless request whose header block is exactly `headers`.
fn raw_headers(headers: &str) -> Vec<u8> {
    format!("MSRP abcd SEND\r\n{headers}-------abcd$\r\n").into_bytes()
}

/// A request with method `m`, the paths, Content-Type and `body`.
fn with_body(m: &str, body: &[u8]) -> Vec<u8> {
    let mut v = format!("MSRP abcd {m}\r\n{TP}{FP}Content-Type: text/plain\r\n\r\n").into_bytes();
    v.extend_from_slice(body);
    v.extend_from_slice(b"\r\n-------abcd$\r\n");
    v
}

/// A path header with `uri` as its only URI, the rest valid.
fn to_path(uri: &str) -> Vec<u8> {
    raw_headers(&format!("To-Path: {uri}\r\n{FP}"))
}

/// One header line with raw bytes for its value.
fn header_bytes(name: &str, value: &[u8]) -> Vec<u8> {
    let mut v = format!("MSRP abcd SEND\r\n{TP}{FP}{name}: ").into_bytes();
    v.extend_from_slice(value);
    v.extend_from_slice(b"\r\n-------abcd$\r\n");
    v
}

fn uri_err(kind: HeaderKind, e: UriError) -> Outcome {
    H(HeadError::Value(kind, ValueError::Uri(e)))
}

fn val(kind: HeaderKind, e: ValueError) -> Outcome {
    H(HeadError::Value(kind, e))
}

fn cases() -> Vec<(&'static str, Vec<u8>, Outcome)> {
    use HeaderKind as K;
    use ScanError::*;
    use UriError as U;
    use ValueError as V;
    let b = |s: &str| s.as_bytes().to_vec();
    let tid33 = "a".repeat(33);
    let many_uris = vec!["msrp://h:1/s;tcp"; 33].join(" ");
    // The two paths, 30 of these and X-Last make 33 headers.
    let many_headers: String = (0..30).map(|i| format!("X-H{i}: v\r\n")).collect();
    let many_params = (0..17)
        .map(|i| format!("p{i}=\"v\""))
        .collect::<Vec<_>>()
        .join(", ");
    let long_comment = format!("MSRP abcd 200 {}\r\n", "x".repeat(1100));
    let mut v = vec![
        // --- Start line -------------------------------------------------------------
        ("not MSRP at all", b("GET / HTTP/1.1\r\n\r\n"), S(NotMsrp)),
        ("lower-case MSRP", b("msrp abcd SEND\r\n"), S(NotMsrp)),
        (
            "blank line before start",
            b("\r\nMSRP abcd SEND\r\n"),
            S(NotMsrp),
        ),
        ("MSRP without space", b("MSRPabcd SEND\r\n"), S(NotMsrp)),
        // Regression: fed whole these gave BareLf and HeadTooLarge, in pieces NotMsrp.
        ("junk ending in bare LF", b("X\n"), S(NotMsrp)),
        (
            "junk line over max_head",
            format!("GET {}\r\n", "a".repeat(20000)).into_bytes(),
            S(NotMsrp),
        ),
        (
            "two spaces before tid",
            b("MSRP  abcd SEND\r\n"),
            S(BadTransactionId),
        ),
        ("tid of 3", b("MSRP abc SEND\r\n"), S(BadTransactionId)),
        (
            "tid of 33",
            format!("MSRP {tid33} SEND\r\n").into_bytes(),
            S(BadTransactionId),
        ),
        ("tid with _", b("MSRP ab_cd SEND\r\n"), S(BadTransactionId)),
        (
            "tid starts with .",
            b("MSRP .abcd SEND\r\n"),
            S(BadTransactionId),
        ),
        (
            "tid with NUL",
            b("MSRP ab\0cd SEND\r\n"),
            S(BadTransactionId),
        ),
        ("no method", b("MSRP abcd\r\n"), S(BadTransactionId)),
        ("empty method", b("MSRP abcd \r\n"), S(BadStartLine)),
        (
            "lower-case method",
            b("MSRP abcd send\r\n"),
            S(BadStartLine),
        ),
        (
            "mixed-case method",
            b("MSRP abcd Send\r\n"),
            S(BadStartLine),
        ),
        (
            "method with digit",
            b("MSRP abcd SEND2\r\n"),
            S(BadStartLine),
        ),
        (
            "method then space",
            b("MSRP abcd SEND \r\n"),
            S(BadStartLine),
        ),
        (
            "CR inside start line",
            b("MSRP abcd SEND\r\r\n"),
            S(BadStartLine),
        ),
        (
            "status of 2 digits",
            b("MSRP abcd 20 OK\r\n"),
            S(BadStartLine),
        ),
        (
            "status of 4 digits",
            b("MSRP abcd 2000\r\n"),
            S(BadStartLine),
        ),
        (
            "status glued to comment",
            b("MSRP abcd 200OK\r\n"),
            S(BadStartLine),
        ),
        (
            "status with letter",
            b("MSRP abcd 2x0 OK\r\n"),
            S(BadStartLine),
        ),
        (
            "control char in comment",
            b("MSRP abcd 200 O\x01K\r\n"),
            S(BadStartLine),
        ),
        (
            "invalid UTF-8 in comment",
            b"MSRP abcd 200 \xffOK\r\n".to_vec(),
            S(BadStartLine),
        ),
        (
            "start line over 1024",
            long_comment.into_bytes(),
            S(BadStartLine),
        ),
        // --- Line endings -------------------------------------------------------------
        ("bare LF after start", b("MSRP abcd SEND\n"), S(BareLf)),
        (
            "bare LF after a header",
            format!("MSRP abcd SEND\r\n{TP}From-Path: msrp://h:2/t;tcp\n").into_bytes(),
            S(BareLf),
        ),
        (
            "bare LF as blank line",
            format!("MSRP abcd SEND\r\n{TP}{FP}\n").into_bytes(),
            S(BareLf),
        ),
        // --- End-line after the headers ------------------------------------------------
        (
            "end-line with other tid",
            format!("MSRP abcd SEND\r\n{TP}{FP}-------abce$\r\n").into_bytes(),
            S(BadEndLine),
        ),
        (
            "end-line with a prefix of the tid",
            format!("MSRP abcd SEND\r\n{TP}{FP}-------abc$\r\n").into_bytes(),
            S(BadEndLine),
        ),
        (
            "end-line with bad flag",
            format!("MSRP abcd SEND\r\n{TP}{FP}-------abcd!\r\n").into_bytes(),
            S(BadEndLine),
        ),
        (
            "end-line without flag",
            format!("MSRP abcd SEND\r\n{TP}{FP}-------abcd\r\n").into_bytes(),
            S(BadEndLine),
        ),
        (
            "end-line with trailing byte",
            format!("MSRP abcd SEND\r\n{TP}{FP}-------abcd$ \r\n").into_bytes(),
            S(BadEndLine),
        ),
        // --- Responses with a body, sizes -------------------------------------------------
        (
            "response with body",
            format!("MSRP abcd 200 OK\r\n{TP}{FP}\r\nhi\r\n-------abcd$\r\n").into_bytes(),
            S(ResponseWithBody),
        ),
        (
            "response with blank line at once",
            b("MSRP abcd 200\r\n\r\n"),
            S(ResponseWithBody),
        ),
        (
            "header line over max_head",
            format!("MSRP abcd SEND\r\n{TP}{FP}X: {}\r\n", "a".repeat(20000)).into_bytes(),
            S(HeadTooLarge),
        ),
        (
            "head over max_head without LF",
            format!("MSRP abcd SEND\r\n{TP}X: {}", "a".repeat(20000)).into_bytes(),
            S(HeadTooLarge),
        ),
        (
            "start line over max_head",
            format!("MSRP abcd SEND{}", "A".repeat(20000)).into_bytes(),
            S(HeadTooLarge),
        ),
        (
            "many short headers over max_head",
            req(&"X: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n".repeat(400)),
            S(HeadTooLarge),
        ),
        (
            "REPORT body over 10240",
            with_body("REPORT", &[b'r'; 10241]),
            S(BodyTooLarge),
        ),
        (
            "AUTH body over 10240",
            with_body("AUTH", &[0u8; 20000]),
            S(BodyTooLarge),
        ),
        (
            "unknown method body over 10240",
            with_body("FOO", &[b'\n'; 10241]),
            S(BodyTooLarge),
        ),
        // --- Header block structure ----------------------------------------------------------
        ("no headers", raw_headers(""), H(HeadError::MissingToPath)),
        (
            "first header not To-Path",
            raw_headers(&format!("Message-ID: abcd\r\n{TP}{FP}")),
            H(HeadError::MissingToPath),
        ),
        (
            "paths swapped",
            raw_headers(&format!("{FP}{TP}")),
            H(HeadError::MissingToPath),
        ),
        (
            "To-Path only",
            raw_headers(TP),
            H(HeadError::MissingFromPath),
        ),
        (
            "second header not From-Path",
            raw_headers(&format!("{TP}Message-ID: abcd\r\n{FP}")),
            H(HeadError::MissingFromPath),
        ),
        ("To-Path twice", req(TP), H(HeadError::Duplicate(K::ToPath))),
        (
            "From-Path twice (lower case)",
            req("from-path: msrp://h:3/u;tcp\r\n"),
            H(HeadError::Duplicate(K::FromPath)),
        ),
        (
            "Message-ID twice",
            req("Message-ID: abcd\r\nMESSAGE-ID: efgh\r\n"),
            H(HeadError::Duplicate(K::MessageId)),
        ),
        (
            "Byte-Range twice",
            req("Byte-Range: 1-2/2\r\nByte-Range: 1-2/2\r\n"),
            H(HeadError::Duplicate(K::ByteRange)),
        ),
        (
            "Expires twice",
            req("Expires: 1\r\nexpires: 2\r\n"),
            H(HeadError::Duplicate(K::Expires)),
        ),
        (
            "Use-Path twice",
            req("Use-Path: msrp://h:1/s;tcp\r\nUse-Path: msrp://h:1/s;tcp\r\n"),
            H(HeadError::Duplicate(K::UsePath)),
        ),
        (
            "Content-Type twice",
            with_body_headers("Content-Type: text/html\r\n"),
            H(HeadError::Duplicate(K::ContentType)),
        ),
        (
            "33 headers",
            req(&format!("{many_headers}X-Last: v\r\n")),
            H(HeadError::TooManyHeaders),
        ),
        (
            "empty header name",
            req(": v\r\n"),
            H(HeadError::BadHeaderLine),
        ),
        (
            "header name starts with digit",
            req("1X: v\r\n"),
            H(HeadError::BadHeaderLine),
        ),
        (
            "header name starts with -",
            req("-X: v\r\n"),
            H(HeadError::BadHeaderLine),
        ),
        (
            "space in header name",
            req("X Y: v\r\n"),
            H(HeadError::BadHeaderLine),
        ),
        (
            "space before colon",
            req("X : v\r\n"),
            H(HeadError::BadHeaderLine),
        ),
        (
            "( in header name",
            req("X(: v\r\n"),
            H(HeadError::BadHeaderLine),
        ),
        (
            "header without colon",
            req("Xyz\r\n"),
            H(HeadError::BadHeaderLine),
        ),
        (
            "non-ASCII header name",
            header_bytes("X\u{e9}", b"v"),
            H(HeadError::BadHeaderLine),
        ),
        (
            "control char in value",
            header_bytes("X", b"a\x01b"),
            H(HeadError::BadHeaderValue),
        ),
        (
            "NUL in value",
            header_bytes("X", b"a\0b"),
            H(HeadError::BadHeaderValue),
        ),
        (
            "DEL in value",
            header_bytes("X", b"a\x7fb"),
            H(HeadError::BadHeaderValue),
        ),
        (
            "bare CR in value",
            header_bytes("X", b"a\rb"),
            H(HeadError::BadHeaderValue),
        ),
        (
            "invalid UTF-8 byte in value",
            header_bytes("X", b"a\xffb"),
            H(HeadError::BadHeaderValue),
        ),
        (
            "overlong UTF-8 in value",
            header_bytes("X", b"a\xc0\x80b"),
            H(HeadError::BadHeaderValue),
        ),
        (
            "truncated UTF-8 in value",
            header_bytes("X", b"a\xe2\x82"),
            H(HeadError::BadHeaderValue),
        ),
        (
            "UTF-16 surrogate in value",
            header_bytes("X", b"\xed\xa0\x80"),
            H(HeadError::BadHeaderValue),
        ),
        (
            "bad value in a path header",
            header_bytes("Use-Path", b"msrp://h:1/s;tcp\x00"),
            H(HeadError::BadHeaderValue),
        ),
        // --- URIs: every UriError, and path errors ---------------------------------------
        (
            "scheme http",
            to_path("http://h:1/s;tcp"),
            uri_err(K::ToPath, U::Scheme),
        ),
        (
            "scheme without //",
            to_path("msrp:/h:1/s;tcp"),
            uri_err(K::ToPath, U::Scheme),
        ),
        (
            "scheme sip",
            to_path("sip:bob@h;tcp"),
            uri_err(K::ToPath, U::Scheme),
        ),
        (
            "bad escape in userinfo",
            to_path("msrp://u%@h:1/s;tcp"),
            uri_err(K::ToPath, U::Userinfo),
        ),
        (
            "space in userinfo",
            to_path("msrp://a\tb@h:1/s;tcp"),
            uri_err(K::ToPath, U::Userinfo),
        ),
        (
            "@ in session-id",
            to_path("msrp://h:1/a@b;tcp"),
            uri_err(K::ToPath, U::Userinfo),
        ),
        (
            "empty host",
            to_path("msrp://:1/s;tcp"),
            uri_err(K::ToPath, U::Host),
        ),
        (
            "unclosed IPv6",
            to_path("msrp://[::1:1/s;tcp"),
            uri_err(K::ToPath, U::Host),
        ),
        (
            "bad IPv6",
            to_path("msrp://[zz]:1/s;tcp"),
            uri_err(K::ToPath, U::Host),
        ),
        (
            "junk after IPv6",
            to_path("msrp://[::1]x:1/s;tcp"),
            uri_err(K::ToPath, U::Host),
        ),
        (
            "bad escape in host",
            to_path("msrp://h%zz:1/s;tcp"),
            uri_err(K::ToPath, U::Host),
        ),
        (
            "< in host",
            to_path("msrp://h<x:1/s;tcp"),
            uri_err(K::ToPath, U::Host),
        ),
        (
            "port too big",
            to_path("msrp://h:65536/s;tcp"),
            uri_err(K::ToPath, U::Port),
        ),
        (
            "empty port",
            to_path("msrp://h:/s;tcp"),
            uri_err(K::ToPath, U::Port),
        ),
        (
            "port with letter",
            to_path("msrp://h:8o/s;tcp"),
            uri_err(K::ToPath, U::Port),
        ),
        (
            "empty session-id",
            to_path("msrp://h:1/;tcp"),
            uri_err(K::ToPath, U::SessionId),
        ),
        (
            "? in session-id",
            to_path("msrp://h:1/a?b;tcp"),
            uri_err(K::ToPath, U::SessionId),
        ),
        (
            "no transport",
            to_path("msrp://h:1/s"),
            uri_err(K::ToPath, U::MissingTransport),
        ),
        (
            "no transport, no session",
            to_path("msrp://h:1"),
            uri_err(K::ToPath, U::MissingTransport),
        ),
        (
            "empty transport",
            to_path("msrp://h:1/s;"),
            uri_err(K::ToPath, U::Transport),
        ),
        (
            "transport with -",
            to_path("msrp://h:1/s;t-p"),
            uri_err(K::ToPath, U::Transport),
        ),
        (
            "empty parameter",
            to_path("msrp://h:1/s;tcp;"),
            uri_err(K::ToPath, U::Param),
        ),
        (
            "parameter without name",
            to_path("msrp://h:1/s;tcp;=x"),
            uri_err(K::ToPath, U::Param),
        ),
        (
            "parameter with empty value",
            to_path("msrp://h:1/s;tcp;a="),
            uri_err(K::ToPath, U::Param),
        ),
        (
            "parameter with space",
            to_path("msrp://h:1/s;tcp;a=b c"),
            uri_err(K::ToPath, U::Scheme),
        ),
        (
            "parameter with quote",
            to_path("msrp://h:1/s;tcp;a=\"b\""),
            uri_err(K::ToPath, U::Param),
        ),
        ("empty To-Path", to_path(""), val(K::ToPath, V::EmptyPath)),
        (
            "two spaces between URIs",
            to_path("msrp://h:1/s;tcp  msrp://h:2/s;tcp"),
            uri_err(K::ToPath, U::Scheme),
        ),
        (
            "33 URIs in a path",
            to_path(&many_uris),
            val(K::ToPath, V::PathTooLong),
        ),
        (
            "bad From-Path URI",
            raw_headers(&format!("{TP}From-Path: msrp://[::1/s;tcp\r\n")),
            uri_err(K::FromPath, U::Host),
        ),
        (
            "bad Use-Path URI",
            req("Use-Path: msrp://h:1/s;tcp msrp://h:70000/s;tcp\r\n"),
            uri_err(K::UsePath, U::Port),
        ),
        // --- Byte-Range -------------------------------------------------------------------
        (
            "Byte-Range start 0",
            req("Byte-Range: 0-1/1\r\n"),
            val(K::ByteRange, V::ByteRange),
        ),
        (
            "Byte-Range end < start-1",
            req("Byte-Range: 5-3/10\r\n"),
            val(K::ByteRange, V::ByteRange),
        ),
        (
            "Byte-Range end > total",
            req("Byte-Range: 1-11/10\r\n"),
            val(K::ByteRange, V::ByteRange),
        ),
        (
            "Byte-Range start past total",
            req("Byte-Range: 12-*/10\r\n"),
            val(K::ByteRange, V::ByteRange),
        ),
        (
            "Byte-Range end overflows",
            req("Byte-Range: 1-99999999999999999999999/*\r\n"),
            val(K::ByteRange, V::ByteRange),
        ),
        (
            "Byte-Range start is u64::MAX + 1",
            req("Byte-Range: 18446744073709551616-*/*\r\n"),
            val(K::ByteRange, V::ByteRange),
        ),
        (
            "Byte-Range without total",
            req("Byte-Range: 1-2\r\n"),
            val(K::ByteRange, V::ByteRange),
        ),
        (
            "Byte-Range start *",
            req("Byte-Range: *-2/3\r\n"),
            val(K::ByteRange, V::ByteRange),
        ),
        (
            "Byte-Range with spaces",
            req("Byte-Range: 1 - 2/3\r\n"),
            val(K::ByteRange, V::ByteRange),
        ),
        (
            "Byte-Range negative",
            req("Byte-Range: -1/2\r\n"),
            val(K::ByteRange, V::ByteRange),
        ),
        (
            "Byte-Range signed",
            req("Byte-Range: +1-2/3\r\n"),
            val(K::ByteRange, V::ByteRange),
        ),
        // --- Message-ID ---------------------------------------------------------------------
        (
            "Message-ID of 3",
            req("Message-ID: abc\r\n"),
            val(K::MessageId, V::MessageId),
        ),
        (
            "Message-ID of 33",
            req(&format!("Message-ID: {tid33}\r\n")),
            val(K::MessageId, V::MessageId),
        ),
        (
            "Message-ID with _",
            req("Message-ID: abc_d\r\n"),
            val(K::MessageId, V::MessageId),
        ),
        (
            "Message-ID with space",
            req("Message-ID: ab cd\r\n"),
            val(K::MessageId, V::MessageId),
        ),
        // --- Reports, Status, Expires --------------------------------------------------------
        (
            "Success-Report maybe",
            req("Success-Report: maybe\r\n"),
            val(K::SuccessReport, V::Report),
        ),
        (
            "Success-Report partial",
            req("Success-Report: partial\r\n"),
            val(K::SuccessReport, V::Report),
        ),
        (
            "Success-Report empty",
            req("Success-Report:\r\n"),
            val(K::SuccessReport, V::Report),
        ),
        (
            "Failure-Report sometimes",
            req("Failure-Report: sometimes\r\n"),
            val(K::FailureReport, V::Report),
        ),
        (
            "Failure-Report two values",
            req("Failure-Report: yes no\r\n"),
            val(K::FailureReport, V::Report),
        ),
        (
            "Status without namespace",
            req("Status: 200 OK\r\n"),
            val(K::Status, V::Status),
        ),
        (
            "Status with short code",
            req("Status: 000 20 OK\r\n"),
            val(K::Status, V::Status),
        ),
        (
            "Status with dash",
            req("Status: 000-200\r\n"),
            val(K::Status, V::Status),
        ),
        (
            "Status with 4-digit namespace",
            req("Status: 0000 200\r\n"),
            val(K::Status, V::Status),
        ),
        (
            "Status glued to comment",
            req("Status: 000 200OK\r\n"),
            val(K::Status, V::Status),
        ),
        (
            "Status with letters",
            req("Status: abc 200\r\n"),
            val(K::Status, V::Status),
        ),
        (
            "Expires not a number",
            req("Expires: soon\r\n"),
            val(K::Expires, V::Number),
        ),
        (
            "Expires negative",
            req("Expires: -1\r\n"),
            val(K::Expires, V::Number),
        ),
        (
            "Expires empty",
            req("Expires:\r\n"),
            val(K::Expires, V::Number),
        ),
        (
            "Expires fraction",
            req("Expires: 1.5\r\n"),
            val(K::Expires, V::Number),
        ),
        (
            "Expires over u32",
            req("Expires: 4294967296\r\n"),
            val(K::Expires, V::Number),
        ),
        (
            "Min-Expires not a number",
            req("Min-Expires: x\r\n"),
            val(K::MinExpires, V::Number),
        ),
        (
            "Max-Expires overflows u64",
            req("Max-Expires: 99999999999999999999999\r\n"),
            val(K::MaxExpires, V::Number),
        ),
        // --- Content-Type and bodies -----------------------------------------------------------
        (
            "SEND body without Content-Type",
            format!("MSRP abcd SEND\r\n{TP}{FP}\r\nhi\r\n-------abcd$\r\n").into_bytes(),
            H(HeadError::MissingContentType),
        ),
        (
            "empty body without Content-Type",
            format!("MSRP abcd SEND\r\n{TP}{FP}\r\n\r\n-------abcd$\r\n").into_bytes(),
            H(HeadError::MissingContentType),
        ),
        (
            "Content-Type without /",
            req("Content-Type: text\r\n"),
            val(K::ContentType, V::ContentType),
        ),
        (
            "Content-Type without type",
            req("Content-Type: /plain\r\n"),
            val(K::ContentType, V::ContentType),
        ),
        (
            "Content-Type without subtype",
            req("Content-Type: text/\r\n"),
            val(K::ContentType, V::ContentType),
        ),
        (
            "Content-Type with space in type",
            req("Content-Type: te xt/plain\r\n"),
            val(K::ContentType, V::ContentType),
        ),
        (
            "Content-Type with @",
            req("Content-Type: text/pl@in\r\n"),
            val(K::ContentType, V::ContentType),
        ),
        // --- Digest headers, typed on demand ------------------------------------------------------
        (
            "Authorization Basic",
            req("Authorization: Basic YWxhZGRpbjpvcGVuc2VzYW1l\r\n"),
            Lazy(K::Authorization, V::Digest),
        ),
        (
            "Authorization scheme only",
            req("Authorization: Digest\r\n"),
            Lazy(K::Authorization, V::Digest),
        ),
        (
            "Authorization without username",
            req("Authorization: Digest realm=\"r\", nonce=\"n\", response=\"0a\"\r\n"),
            Lazy(K::Authorization, V::Digest),
        ),
        (
            "Authorization without response",
            req("Authorization: Digest username=\"u\", realm=\"r\", nonce=\"n\"\r\n"),
            Lazy(K::Authorization, V::Digest),
        ),
        (
            "Authorization non-hex response",
            req(
                "Authorization: Digest username=\"u\", realm=\"r\", nonce=\"n\", response=\"zz\"\r\n",
            ),
            Lazy(K::Authorization, V::Digest),
        ),
        (
            "Authorization qop without cnonce",
            req(
                "Authorization: Digest username=\"u\", realm=\"r\", nonce=\"n\", qop=auth, nc=00000001, response=\"0a\"\r\n",
            ),
            Lazy(K::Authorization, V::Digest),
        ),
        (
            "Authorization nc of 7",
            req(
                "Authorization: Digest username=\"u\", realm=\"r\", nonce=\"n\", nc=0000001, response=\"0a\"\r\n",
            ),
            Lazy(K::Authorization, V::Digest),
        ),
        (
            // Regression: u32::from_str_radix took the sign.
            "Authorization signed nc",
            req(
                "Authorization: Digest username=\"u\", realm=\"r\", nonce=\"n\", nc=+0000001, response=\"0a\"\r\n",
            ),
            Lazy(K::Authorization, V::Digest),
        ),
        (
            "Authorization unterminated quote",
            req("Authorization: Digest username=\"u, realm=\"r\"\r\n"),
            Lazy(K::Authorization, V::Digest),
        ),
        (
            "Authorization escaped closing quote",
            req("Authorization: Digest username=\"u\\\"\r\n"),
            Lazy(K::Authorization, V::Digest),
        ),
        (
            "Authorization parameter without =",
            req("Authorization: Digest username\r\n"),
            Lazy(K::Authorization, V::Digest),
        ),
        (
            "Authorization missing comma",
            req("Authorization: Digest username=\"u\" realm=\"r\"\r\n"),
            Lazy(K::Authorization, V::Digest),
        ),
        (
            "Authorization empty token value",
            req("Authorization: Digest username=, realm=\"r\"\r\n"),
            Lazy(K::Authorization, V::Digest),
        ),
        (
            "Authorization trailing comma",
            req("Authorization: Digest username=\"u\",\r\n"),
            Lazy(K::Authorization, V::Digest),
        ),
        (
            "Authorization 17 parameters",
            req(&format!("Authorization: Digest {many_params}\r\n")),
            Lazy(K::Authorization, V::Digest),
        ),
        (
            "WWW-Authenticate without nonce",
            req("WWW-Authenticate: Digest realm=\"r\", qop=\"auth\"\r\n"),
            Lazy(K::WwwAuthenticate, V::Digest),
        ),
        (
            "WWW-Authenticate other scheme",
            req("WWW-Authenticate: Bearer realm=\"r\", nonce=\"n\"\r\n"),
            Lazy(K::WwwAuthenticate, V::Digest),
        ),
        (
            "Authentication-Info without =",
            req("Authentication-Info: nextnonce\r\n"),
            Lazy(K::AuthenticationInfo, V::Digest),
        ),
        (
            "Authentication-Info ; for ,",
            req("Authentication-Info: nextnonce=\"a\"; qop=auth\r\n"),
            Lazy(K::AuthenticationInfo, V::Digest),
        ),
    ];
    // Malformed bytes after a valid frame are found just as well.
    let mut two = req("");
    two.extend_from_slice(b"MSRP efgh send\r\n");
    v.push(("bad second frame", two, S(BadStartLine)));
    // A body that looks like an end-line with a bad flag is body; the real end-line that
    // follows ends it, so the error is in the next frame's start line.
    let mut fake = with_body("SEND", b"x\r\n-------abcd!\r\n");
    fake.extend_from_slice(b"GET /\r\n");
    v.push(("junk after a body with a fake end-line", fake, S(NotMsrp)));
    v
}

/// A SEND with Content-Type and a body, and `extra` header lines before the blank line.
fn with_body_headers(extra: &str) -> Vec<u8> {
    format!(
        "MSRP abcd SEND\r\n{TP}{FP}Content-Type: text/plain\r\n{extra}\r\nhi\r\n-------abcd$\r\n"
    )
    .into_bytes()
}

/// Feeds `input` in pieces of `step` bytes; returns the first error met.
fn run(input: &[u8], step: usize, limits: ScanLimits) -> Outcome {
    let mut sc = Scanner::new(limits);
    let mut buf = BytesMut::new();
    for piece in input.chunks(step.max(1)) {
        buf.extend_from_slice(piece);
        loop {
            match sc.next(&mut buf) {
                Ok(None) => break,
                Ok(Some(Event::Head(h))) => {
                    let head = match h.parse() {
                        Ok(head) => head,
                        Err(e) => {
                            // The stand-alone parser agrees (it cannot know about the
                            // body, so MissingContentType is the scanner head's alone).
                            if e != HeadError::MissingContentType {
                                assert_eq!(Head::parse(h.as_bytes()).err(), Some(e));
                            }
                            return H(e);
                        }
                    };
                    if let Some(Err(e)) = head.www_authenticate() {
                        return Lazy(HeaderKind::WwwAuthenticate, e);
                    }
                    if let Some(Err(e)) = head.authorization() {
                        return Lazy(HeaderKind::Authorization, e);
                    }
                    if let Some(Err(e)) = head.authentication_info() {
                        return Lazy(HeaderKind::AuthenticationInfo, e);
                    }
                }
                Ok(Some(_)) => {}
                Err(e) => {
                    // Errors are sticky: the stream cannot be resynchronised.
                    assert_eq!(sc.next(&mut buf), Err(e));
                    buf.extend_from_slice(b"MSRP abcd SEND\r\n");
                    assert_eq!(sc.next(&mut buf), Err(e));
                    return S(e);
                }
            }
        }
    }
    assert!(sc.is_idle(&buf), "valid input must end idle");
    Outcome::Valid
}

#[test]
fn malformed_corpus() {
    let cases = cases();
    assert!(cases.len() >= 40, "{} cases", cases.len());
    let mut names = std::collections::HashSet::new();
    for (name, input, want) in &cases {
        assert!(names.insert(*name), "duplicate case name {name}");
        for step in [1, 7, input.len()] {
            let got = run(input, step, ScanLimits::default());
            assert_eq!(
                got,
                *want,
                "{name}, step {step}: {:?}",
                String::from_utf8_lossy(input)
            );
        }
    }
    eprintln!("{} malformed cases", cases.len());
}

/// Boundaries just inside the limits of the malformed cases are accepted.
#[test]
fn limits_inside_are_valid() {
    let tid32 = format!("a{}", "b".repeat(31));
    let uris32 = vec!["msrp://h:1/s;tcp"; 32].join(" ");
    // The two paths, 29 of these and X-Last make 32 headers.
    let many_headers: String = (0..29).map(|i| format!("X-H{i}: v\r\n")).collect();
    let ok: Vec<(&str, Vec<u8>)> = vec![
        (
            "tid of 4",
            b"MSRP abcd 200\r\n"
                .iter()
                .chain(TP.as_bytes())
                .chain(FP.as_bytes())
                .chain(b"-------abcd$\r\n")
                .copied()
                .collect(),
        ),
        (
            "tid of 32",
            format!("MSRP {tid32} SEND\r\n{TP}{FP}-------{tid32}$\r\n").into_bytes(),
        ),
        (
            "tid with all ident chars",
            format!("MSRP 9a.-+%= SEND\r\n{TP}{FP}-------9a.-+%=$\r\n").into_bytes(),
        ),
        ("32 headers", req(&format!("{many_headers}X-Last: v\r\n"))),
        ("32 URIs", to_path(&uris32)),
        ("REPORT body of 10240", with_body("REPORT", &[b'r'; 10240])),
        ("SEND body of 100000", with_body("SEND", &[b'-'; 100000])),
        ("empty body with Content-Type", with_body("SEND", b"")),
        ("Byte-Range empty body", req("Byte-Range: 1-0/0\r\n")),
        (
            "Byte-Range u64::MAX",
            req("Byte-Range: 18446744073709551615-*/*\r\n"),
        ),
        ("Expires u32::MAX", req("Expires: 4294967295\r\n")),
        (
            "report values in capitals",
            req("Success-Report: YES\r\nFailure-Report: Partial\r\n"),
        ),
        (
            "status comment empty",
            format!("MSRP abcd 200 \r\n{TP}{FP}-------abcd$\r\n").into_bytes(),
        ),
        (
            "status 000",
            format!("MSRP abcd 000\r\n{TP}{FP}-------abcd$\r\n").into_bytes(),
        ),
        ("UTF-8 in value and comment", {
            let mut v = "MSRP abcd 200 Gr\u{fc}\u{df}e \u{1f600}\r\n"
                .as_bytes()
                .to_vec();
            v.extend_from_slice(
                format!("{TP}{FP}X-Name: Z\u{fc}rich \u{4e2d}\r\n-------abcd$\r\n").as_bytes(),
            );
            v
        }),
        (
            "tabs and spaces around values",
            req("Message-ID: \t abcd \t\r\nX-Empty:\r\n"),
        ),
        (
            "header names in any case",
            raw_headers("tO-pAtH: msrp://h:1/s;tcp\r\nFROM-PATH: msrp://h:2/s;tcp\r\n"),
        ),
    ];
    for (name, input) in &ok {
        for step in [1, 7, input.len()] {
            assert_eq!(
                run(input, step, ScanLimits::default()),
                Outcome::Valid,
                "{name}, step {step}"
            );
        }
    }
}

/// `ScanLimits` are honoured: a smaller head cap, and no cap on non-SEND bodies.
#[test]
fn custom_limits() {
    let small = ScanLimits {
        max_head: 100,
        max_non_send_body: Some(4),
    };
    let head = req("");
    assert!(head.len() > 100);
    for step in [1, 7, head.len()] {
        assert_eq!(run(&head, step, small), S(ScanError::HeadTooLarge));
        assert_eq!(
            run(
                &with_body("REPORT", b"12345"),
                step,
                ScanLimits {
                    max_head: 1000,
                    ..small
                }
            ),
            S(ScanError::BodyTooLarge)
        );
        assert_eq!(
            run(
                &with_body("REPORT", b"1234"),
                step,
                ScanLimits {
                    max_head: 1000,
                    ..small
                }
            ),
            Outcome::Valid
        );
        let unlimited = ScanLimits {
            max_head: 16 * 1024,
            max_non_send_body: None,
        };
        assert_eq!(
            run(&with_body("REPORT", &[0; 30000]), step.min(4096), unlimited),
            Outcome::Valid
        );
    }
}

/// Errors only the stand-alone `Head::parse` can produce.
#[test]
fn head_parse_only() {
    let big = format!("MSRP abcd SEND\r\n{TP}{FP}X: {}\r\n", "a".repeat(70000));
    let cases: Vec<(Vec<u8>, HeadError)> = vec![
        (
            b"MSRP abcd SEND".to_vec(),
            HeadError::Start(ScanError::BareLf),
        ),
        (
            b"\nMSRP abcd SEND\r\n".to_vec(),
            HeadError::Start(ScanError::BareLf),
        ),
        (
            b"MSRP abcd SEND\n".to_vec(),
            HeadError::Start(ScanError::BareLf),
        ),
        (
            b"HTTP abcd SEND\r\n".to_vec(),
            HeadError::Start(ScanError::NotMsrp),
        ),
        (
            b"MSRP abc SEND\r\n".to_vec(),
            HeadError::Start(ScanError::BadTransactionId),
        ),
        (
            b"MSRP abcd Send\r\n".to_vec(),
            HeadError::Start(ScanError::BadStartLine),
        ),
        (big.into_bytes(), HeadError::TooLarge),
        (
            format!("MSRP abcd SEND\r\n{TP}From-Path: msrp://h:2/t;tcp").into_bytes(),
            HeadError::BadHeaderLine,
        ),
        (
            format!("MSRP abcd SEND\r\n{TP}{FP}X: y\n").into_bytes(),
            HeadError::BadHeaderLine,
        ),
        (
            format!("MSRP abcd SEND\r\n{TP}{FP}\r\n").into_bytes(),
            HeadError::BadHeaderLine,
        ),
    ];
    for (input, e) in cases {
        assert_eq!(
            Head::parse(&input).err(),
            Some(e),
            "{:?}",
            String::from_utf8_lossy(&input[..input.len().min(80)])
        );
    }
}
