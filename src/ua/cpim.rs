//! A small message/cpim parser (RFC 3862) for the user agent's events: the message
//! headers (§2.2, §3: From, To, cc, DateTime, Subject, NS, Require and namespaced
//! `prefix.Name` extensions, kept in order), then the encapsulated MIME object's content
//! headers (§2.4: Content-Type required) and its body, a zero-copy slice of the input.
//!
//! In MSRP the outer MIME header is the SEND's own Content-Type (RFC 4975 §11.4), so the
//! body handed in starts with the message headers. Message header names are
//! case-sensitive (§3); content header names are MIME's, case-insensitive. Lines end in
//! CRLF. Values are borrowed as written, escapes included ([`unescape`] undoes them,
//! §2.3). Sizes are bounded by [`Limits`]; every refusal is a [`CpimError`].

use std::borrow::Cow;

use bytes::Bytes;

use crate::codec::ContentType;

/// Bounds on what is parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Message headers plus content headers (and their blank lines), in bytes.
    pub max_head_bytes: usize,
    /// Message headers.
    pub max_headers: usize,
    /// Content header lines (continuation lines included).
    pub max_content_headers: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_head_bytes: 16 * 1024,
            max_headers: 64,
            max_content_headers: 32,
        }
    }
}

/// Why a message/cpim body was refused. `Copy`, no allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CpimError {
    #[error("header section without its blank line")]
    Truncated,
    #[error("a line ends with a bare LF or CR")]
    BareLf,
    #[error("bad message header name")]
    BadHeaderName,
    #[error("message header value is not UTF-8 without control characters")]
    BadHeaderValue,
    #[error("bad content header line")]
    BadContentHeader,
    #[error("more headers than the limit")]
    TooManyHeaders,
    #[error("headers larger than the limit")]
    HeadersTooLarge,
    #[error("no Content-Type in the encapsulated object")]
    MissingContentType,
    #[error("bad inner Content-Type")]
    BadContentType,
}

/// One message header (§3.6): `Name:` then parameters such as `;lang=fr` (as written,
/// from the first `;`, empty when none), a space, and the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpimHeader<'a> {
    /// The name as written, namespace prefix included (`MyFeatures.Option`).
    pub name: &'a str,
    pub params: &'a str,
    pub value: &'a str,
}

impl<'a> CpimHeader<'a> {
    /// The namespace prefix, when the name has one (§3.4).
    pub fn prefix(&self) -> Option<&'a str> {
        self.name.split_once('.').map(|(p, _)| p)
    }
}

/// A parsed message/cpim body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cpim<'a> {
    /// All message headers in order (§2.2: order matters and is kept).
    pub headers: Vec<CpimHeader<'a>>,
    /// The inner Content-Type (§2.4).
    pub content_type: ContentType<'a>,
    /// The inner Content-Type value as written.
    pub content_type_raw: &'a str,
    /// The encapsulated content, sharing the input.
    pub body: Bytes,
}

impl<'a> Cpim<'a> {
    /// The first header named exactly `name` (§3: names are case-sensitive).
    pub fn get(&self, name: &str) -> Option<&'a str> {
        self.headers
            .iter()
            .find(|h| h.name == name)
            .map(|h| h.value)
    }
    /// Every header named exactly `name` (To and cc may repeat, §4.2, §4.3).
    pub fn all<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'a str> + 's {
        self.headers
            .iter()
            .filter(move |h| h.name == name)
            .map(|h| h.value)
    }
    /// From (§4.1).
    pub fn from(&self) -> Option<&'a str> {
        self.get("From")
    }
    /// The first To (§4.2).
    pub fn to(&self) -> Option<&'a str> {
        self.get("To")
    }
    /// DateTime (§4.4), as written.
    pub fn date_time(&self) -> Option<&'a str> {
        self.get("DateTime")
    }
    /// The first Subject (§4.5); several may differ by `;lang=`.
    pub fn subject(&self) -> Option<&'a str> {
        self.get("Subject")
    }
}

/// Parses `msg`, a message/cpim body.
pub fn parse<'a>(msg: &'a Bytes, limits: &Limits) -> Result<Cpim<'a>, CpimError> {
    let b: &'a [u8] = msg;
    let max = limits.max_head_bytes.min(b.len());
    let mut pos = 0;
    let mut headers = Vec::new();
    // Message headers, up to the blank line (§2).
    loop {
        let (line, next) = line(b, pos, max)?;
        pos = next;
        if line.is_empty() {
            break;
        }
        if headers.len() == limits.max_headers {
            return Err(CpimError::TooManyHeaders);
        }
        headers.push(message_header(line)?);
    }
    // Content headers of the encapsulated object, up to its blank line (§2.4, RFC 2045).
    let mut content_type_raw = None;
    let mut count = 0;
    let mut in_content_type = false;
    loop {
        let (line, next) = line(b, pos, max)?;
        let at = pos;
        pos = next;
        if line.is_empty() {
            break;
        }
        count += 1;
        if count > limits.max_content_headers {
            return Err(CpimError::TooManyHeaders);
        }
        if matches!(line.first(), Some(b' ' | b'\t')) {
            // A folded continuation line: part of the header before it.
            if count == 1 {
                return Err(CpimError::BadContentHeader);
            }
            if in_content_type && let Some((start, _)) = content_type_raw {
                content_type_raw = Some((start, at + line.len()));
            }
            continue;
        }
        let colon = memchr::memchr(b':', line).ok_or(CpimError::BadContentHeader)?;
        let name = &line[..colon];
        if name.is_empty() || !name.iter().all(|&c| c.is_ascii_graphic()) {
            return Err(CpimError::BadContentHeader);
        }
        in_content_type = name.eq_ignore_ascii_case(b"Content-Type");
        if in_content_type {
            if content_type_raw.is_some() {
                return Err(CpimError::BadContentHeader);
            }
            content_type_raw = Some((at + colon + 1, at + line.len()));
        }
    }
    let (start, end) = content_type_raw.ok_or(CpimError::MissingContentType)?;
    let raw = b.get(start..end).ok_or(CpimError::BadContentType)?;
    let raw = core::str::from_utf8(raw)
        .map_err(|_| CpimError::BadContentType)?
        .trim_matches([' ', '\t']);
    let content_type = ContentType::parse(raw.as_bytes()).map_err(|_| CpimError::BadContentType)?;
    let body = msg.slice(pos..);
    Ok(Cpim {
        headers,
        content_type,
        content_type_raw: raw,
        body,
    })
}

/// The line at `b[pos..]` without its CRLF, and where the next one starts. The whole
/// line must lie within `b[..max]`.
fn line(b: &[u8], pos: usize, max: usize) -> Result<(&[u8], usize), CpimError> {
    let rest = b.get(pos..max).unwrap_or_default();
    let Some(lf) = memchr::memchr(b'\n', rest) else {
        return Err(if max < b.len() {
            CpimError::HeadersTooLarge
        } else {
            CpimError::Truncated
        });
    };
    if lf == 0 || rest[lf - 1] != b'\r' {
        return Err(CpimError::BareLf);
    }
    let line = &rest[..lf - 1];
    if memchr::memchr(b'\r', line).is_some() {
        return Err(CpimError::BareLf);
    }
    Ok((line, pos + lf + 1))
}

/// NAMECHAR of RFC 3862 §3.6: US-ASCII but CTLs, SEPARATORS and `.`.
fn is_namechar(c: u8) -> bool {
    c.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}.".contains(&c)
}

/// `[ Name-prefix "." ] Name ":" *( ";" Parameter ) SP Header-value` (§3.6). A missing
/// space after the colon and parameters is tolerated.
fn message_header(line: &[u8]) -> Result<CpimHeader<'_>, CpimError> {
    let colon = memchr::memchr(b':', line).ok_or(CpimError::BadHeaderName)?;
    let name = &line[..colon];
    let parts = match memchr::memchr(b'.', name) {
        Some(d) => [&name[..d], &name[d + 1..]],
        None => [name, b"x".as_slice()],
    };
    if parts
        .iter()
        .any(|p| p.is_empty() || !p.iter().all(|&c| is_namechar(c)))
    {
        return Err(CpimError::BadHeaderName);
    }
    let rest = &line[colon + 1..];
    // Parameters run from a leading ';' to the first space (a String parameter value
    // holding a space is not supported: such a header's value starts early).
    let (params, value) = if rest.first() == Some(&b';') {
        match memchr::memchr(b' ', rest) {
            Some(sp) => (&rest[..sp], &rest[sp + 1..]),
            None => (rest, &rest[rest.len()..]),
        }
    } else {
        (&rest[..0], rest.strip_prefix(b" ").unwrap_or(rest))
    };
    Ok(CpimHeader {
        // The name is ASCII (checked above).
        name: core::str::from_utf8(name).map_err(|_| CpimError::BadHeaderName)?,
        params: text(params)?,
        value: text(value)?,
    })
}

/// A header value or parameters: UTF-8 without control characters (§2.2, §3.6).
fn text(v: &[u8]) -> Result<&str, CpimError> {
    if v.iter().any(|&c| c < 0x20 || c == 0x7f) {
        return Err(CpimError::BadHeaderValue);
    }
    core::str::from_utf8(v).map_err(|_| CpimError::BadHeaderValue)
}

/// `[ Formal-name ] "<" URI ">"` (From, To, cc, §4.1-§4.3): the name (quotes removed,
/// escapes kept, `None` when absent) and the URI. `None` when there are no angle
/// brackets around a URI at the end.
pub fn name_addr(v: &str) -> Option<(Option<&str>, &str)> {
    let v = v.trim_end();
    let inner = v.strip_suffix('>')?;
    let lt = inner.rfind('<')?;
    let uri = &inner[lt + 1..];
    if uri.is_empty() {
        return None;
    }
    let name = inner[..lt].trim();
    let name = name
        .strip_prefix('"')
        .and_then(|n| n.strip_suffix('"'))
        .unwrap_or(name);
    Some(((!name.is_empty()).then_some(name), uri))
}

/// Undoes the escapes of §2.3: `\uXXXX`, `\\`, `\"`, `\'`, `\b`, `\t`, `\n`, `\r`; any
/// other escaped character stands for itself, a backslash at the end is dropped. A
/// `\uXXXX` that is no Unicode scalar (a lone surrogate) becomes U+FFFD. Borrows when
/// there is nothing to undo.
pub fn unescape(v: &str) -> Cow<'_, str> {
    if !v.contains('\\') {
        return Cow::Borrowed(v);
    }
    let mut out = String::with_capacity(v.len());
    let mut it = v.chars();
    while let Some(c) = it.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match it.next() {
            None => {}
            Some('b') => out.push('\u{8}'),
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('u') => {
                let hex: String = it.clone().take(4).collect();
                match (hex.len() == 4)
                    .then(|| u32::from_str_radix(&hex, 16).ok())
                    .flatten()
                    .filter(|_| hex.bytes().all(|c| c.is_ascii_hexdigit()))
                {
                    Some(n) => {
                        out.push(char::from_u32(n).unwrap_or('\u{FFFD}'));
                        for _ in 0..4 {
                            it.next();
                        }
                    }
                    None => out.push('u'),
                }
            }
            Some(other) => out.push(other),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &[u8]) -> Result<Cpim<'static>, CpimError> {
        let b: &'static Bytes = Box::leak(Box::new(Bytes::copy_from_slice(s)));
        parse(b, &Limits::default())
    }

    /// RFC 3862 §5.1, without the outer MIME header (MSRP carries it, RFC 4975 §11.4).
    const RFC3862: &[u8] = b"From: MR SANDERS <im:piglet@100akerwood.com>\r\nTo: Depressed Donkey <im:eeyore@100akerwood.com>\r\nDateTime: 2000-12-13T13:40:00-08:00\r\nSubject: the weather will be fine today\r\nSubject:;lang=fr beau temps prevu pour aujourd'hui\r\nNS: MyFeatures <mid:MessageFeatures@id.foo.com>\r\nRequire: MyFeatures.VitalMessageOption\r\nMyFeatures.VitalMessageOption: Confirmation-requested\r\nMyFeatures.WackyMessageOption: Use-silly-font\r\n\r\nContent-type: text/xml; charset=utf-8\r\nContent-ID: <1234567890@foo.com>\r\n\r\n<body>\r\nHere is the text of my message.\r\n</body>\r\n";

    #[test]
    fn rfc_3862_example() {
        let c = p(RFC3862).unwrap();
        assert_eq!(c.from(), Some("MR SANDERS <im:piglet@100akerwood.com>"));
        assert_eq!(
            name_addr(c.from().unwrap()),
            Some((Some("MR SANDERS"), "im:piglet@100akerwood.com"))
        );
        assert_eq!(c.to(), Some("Depressed Donkey <im:eeyore@100akerwood.com>"));
        assert_eq!(c.date_time(), Some("2000-12-13T13:40:00-08:00"));
        assert_eq!(c.subject(), Some("the weather will be fine today"));
        let fr = c.headers[4];
        assert_eq!(
            (fr.name, fr.params, fr.value),
            ("Subject", ";lang=fr", "beau temps prevu pour aujourd'hui")
        );
        assert_eq!(c.headers.len(), 9);
        assert_eq!(c.headers[7].prefix(), Some("MyFeatures"));
        assert_eq!(
            c.get("MyFeatures.WackyMessageOption"),
            Some("Use-silly-font")
        );
        assert!(c.content_type.is("text", "xml"));
        assert_eq!(c.content_type_raw, "text/xml; charset=utf-8");
        assert_eq!(
            &c.body[..],
            b"<body>\r\nHere is the text of my message.\r\n</body>\r\n"
        );
        // Names are case-sensitive (§3).
        assert_eq!(c.get("from"), None);
    }

    #[test]
    fn body_is_a_zero_copy_slice() {
        let b = Bytes::from_static(RFC3862);
        let c = parse(&b, &Limits::default()).unwrap();
        let off = c.body.as_ptr() as usize - b.as_ptr() as usize;
        assert_eq!(&b[off..], &c.body[..]);
    }

    #[test]
    fn hostile_and_odd_inputs() {
        let e = |s: &[u8]| p(s).unwrap_err();
        let ok = b"\r\nContent-Type: text/plain\r\n\r\n";
        assert_eq!(p(ok).unwrap().headers.len(), 0);
        assert!(p(ok).unwrap().body.is_empty());
        assert_eq!(e(b""), CpimError::Truncated);
        assert_eq!(e(b"From: <a:b>\r\n"), CpimError::Truncated);
        assert_eq!(
            e(b"From: <a:b>\r\n\r\nContent-Type: text/plain\r\n"),
            CpimError::Truncated
        );
        assert_eq!(
            e(b"From: <a:b>\n\r\nContent-Type: a/b\r\n\r\n"),
            CpimError::BareLf
        );
        assert_eq!(
            e(b"From: <a\rb>\r\n\r\nContent-Type: a/b\r\n\r\n"),
            CpimError::BareLf
        );
        assert_eq!(e(b"\r\nContent-Type: a/b\n\n"), CpimError::BareLf);
        assert_eq!(
            e(b"From <a:b>\r\n\r\nContent-Type: a/b\r\n\r\n"),
            CpimError::BadHeaderName
        );
        assert_eq!(
            e(b" From: <a:b>\r\n\r\nContent-Type: a/b\r\n\r\n"),
            CpimError::BadHeaderName
        );
        assert_eq!(
            e(b"a.b.c: x\r\n\r\nContent-Type: a/b\r\n\r\n"),
            CpimError::BadHeaderName
        );
        assert_eq!(
            e(b".b: x\r\n\r\nContent-Type: a/b\r\n\r\n"),
            CpimError::BadHeaderName
        );
        assert_eq!(
            e(b"X: a\x01b\r\n\r\nContent-Type: a/b\r\n\r\n"),
            CpimError::BadHeaderValue
        );
        assert_eq!(
            e(b"X: a\tb\r\n\r\nContent-Type: a/b\r\n\r\n"),
            CpimError::BadHeaderValue
        );
        assert_eq!(
            e(b"X: \xff\r\n\r\nContent-Type: a/b\r\n\r\n"),
            CpimError::BadHeaderValue
        );
        assert_eq!(
            e(b"\r\nContent-ID: <x>\r\n\r\nbody"),
            CpimError::MissingContentType
        );
        assert_eq!(
            e(b"\r\nContent-Type: nonsense\r\n\r\n"),
            CpimError::BadContentType
        );
        assert_eq!(
            e(b"\r\nContent-Type: a/b\r\nContent-Type: c/d\r\n\r\n"),
            CpimError::BadContentHeader
        );
        assert_eq!(e(b"\r\n continued\r\n\r\n"), CpimError::BadContentHeader);
        assert_eq!(e(b"\r\nno colon\r\n\r\n"), CpimError::BadContentHeader);
        // A folded Content-Type, a missing space after the colon, non-ASCII values.
        let c = p("X:y\r\nSubject: ☃ «neige»\r\n\r\ncontent-type: text/plain;\r\n charset=utf-8\r\n\r\nhi".as_bytes()).unwrap();
        assert_eq!(c.get("X"), Some("y"));
        assert_eq!(c.subject(), Some("☃ «neige»"));
        assert!(c.content_type.is("text", "plain"));
        assert!(c.content_type.params.contains("charset=utf-8"));
        assert_eq!(&c.body[..], b"hi");
        // Limits.
        let many = "X: y\r\n".repeat(65) + "\r\nContent-Type: a/b\r\n\r\n";
        assert_eq!(e(many.as_bytes()), CpimError::TooManyHeaders);
        let long = format!("X: {}\r\n\r\nContent-Type: a/b\r\n\r\n", "y".repeat(20000));
        assert_eq!(e(long.as_bytes()), CpimError::HeadersTooLarge);
        let lim = Limits {
            max_content_headers: 1,
            ..Limits::default()
        };
        let b = Bytes::from_static(b"\r\nContent-Type: a/b\r\nX: y\r\n\r\n");
        assert_eq!(parse(&b, &lim).unwrap_err(), CpimError::TooManyHeaders);
        // A body larger than the header limit is fine: only headers are bounded.
        let big = [&b"\r\nContent-Type: a/b\r\n\r\n"[..], &vec![0u8; 100_000]].concat();
        assert_eq!(p(&big).unwrap().body.len(), 100_000);
    }

    #[test]
    fn names_and_escapes() {
        assert_eq!(
            name_addr("<im:tigger@100akerwood.com>"),
            Some((None, "im:tigger@100akerwood.com"))
        );
        assert_eq!(
            name_addr("\"Winnie the Pooh\" <im:pooh@x>"),
            Some((Some("Winnie the Pooh"), "im:pooh@x"))
        );
        assert_eq!(name_addr("im:pooh@x"), None);
        assert_eq!(name_addr("<>"), None);
        assert_eq!(unescape("plain"), Cow::Borrowed("plain"));
        assert_eq!(
            unescape(r#"a\\b\"c\'d\te\nf\rg\bh"#),
            "a\\b\"c'd\te\nf\rg\u{8}h"
        );
        assert_eq!(unescape(r"\u00e9\u0041\uZZZZ\q\"), "éAuZZZZq");
        assert_eq!(unescape(r"\ud800x"), "\u{FFFD}x");
        assert_eq!(unescape(r"\u00"), "u00");
    }
}
