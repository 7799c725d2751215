//! Byte classes of the SIP grammar (RFC 3261 §25.1) as one `static [u8; 256]` table of
//! class bits, in the style of `codec::chars`.

/// RFC 3261 §25.1 `token`: alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~".
pub(crate) const TOKEN: u8 = 1 << 0;
/// Bytes that may stand in a header value line: HTAB, %x20-7E and any byte >= 0x80
/// (UTF-8 is checked separately).
pub(crate) const TEXT: u8 = 1 << 1;
/// RFC 3261 §25.1 URI scheme characters after the first: ALPHA / DIGIT / "+" / "-" / ".".
pub(crate) const SCHEME: u8 = 1 << 2;
/// Bytes of a Request-URI: any visible ASCII (the URI grammar is checked per scheme by
/// the typed parser; the start line only needs it to be one word).
pub(crate) const URIC: u8 = 1 << 3;
pub(crate) const DIGIT: u8 = 1 << 4;
/// Host name / IPv4 characters: ALPHA / DIGIT / "-" / "." / "_" (lenient: "_" occurs).
pub(crate) const HOST: u8 = 1 << 5;

const fn class(c: u8) -> u8 {
    let mut k = 0;
    if c.is_ascii_alphanumeric()
        || matches!(
            c,
            b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
        )
    {
        k |= TOKEN;
    }
    if c == b'\t' || (c >= 0x20 && c != 0x7F) {
        k |= TEXT;
    }
    if c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.') {
        k |= SCHEME;
    }
    if c > 0x20 && c < 0x7F {
        k |= URIC;
    }
    if c.is_ascii_digit() {
        k |= DIGIT;
    }
    if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_') {
        k |= HOST;
    }
    k
}

static CLASSES: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = class(i as u8);
        i += 1;
    }
    t
};

#[inline]
pub(crate) fn is(c: u8, k: u8) -> bool {
    CLASSES[usize::from(c)] & k != 0
}

/// Every byte of `s` is in class `k` (and `s` is not empty).
#[inline]
pub(crate) fn all(s: &[u8], k: u8) -> bool {
    !s.is_empty() && s.iter().fold(true, |acc, &c| acc & is(c, k))
}

/// Linear white space inside a (possibly folded) header value: SP, HTAB, and the CR LF
/// of a fold (the parser admits CR and LF in a value only as `CRLF 1*WSP`).
#[inline]
pub(crate) fn is_lws(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

/// `s` without leading and trailing linear white space.
pub(crate) fn trim(s: &str) -> &str {
    s.trim_matches(|c: char| c.is_ascii() && is_lws(c as u8))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        for (c, k, want) in [
            (b'a', TOKEN, true),
            (b'~', TOKEN, true),
            (b'`', TOKEN, true),
            (b'@', TOKEN, false),
            (b':', TOKEN, false),
            (b' ', TOKEN, false),
            (b'\t', TEXT, true),
            (0u8, TEXT, false),
            (b'\r', TEXT, false),
            (0x7F, TEXT, false),
            (0xC3, TEXT, true),
            (b'+', SCHEME, true),
            (b':', SCHEME, false),
            (b' ', URIC, false),
            (b'<', URIC, true),
            (b'7', DIGIT, true),
            (b'_', HOST, true),
            (b':', HOST, false),
        ] {
            assert_eq!(is(c, k), want, "{c:#x} in {k:#b}");
        }
        assert!(all(b"INVITE", TOKEN));
        assert!(!all(b"", TOKEN));
        assert!(!all(b"IN VITE", TOKEN));
        assert_eq!(trim(" \t\r\n x y \r\n\t"), "x y");
    }
}
