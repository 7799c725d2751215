//! Byte classes of the MSRP grammar (RFC 4975 §9, RFC 3986 for URI parts) as one
//! `static [u16; 256]` table of class bits, and the loops that test them.
//!
//! Whole-string tests fold over every byte instead of stopping at the first miss: the
//! strings are short, and a loop without a data-dependent exit has no mispredicted branch
//! (and where the test is arithmetic rather than a table lookup, LLVM vectorises it).

/// RFC 4975 §9 `token`: %x21 / %x23-27 / %x2A-2B / %x2D-2E / %x30-39 / %x41-5A / %x5E-7E.
pub(crate) const TOKEN: u16 = 1 << 0;
/// RFC 4975 §9 `ident-char`: ALPHANUM / "." / "-" / "+" / "%" / "=".
pub(crate) const IDENT: u16 = 1 << 1;
/// ALPHA / DIGIT.
pub(crate) const ALNUM: u16 = 1 << 2;
/// RFC 3986 reg-name bytes (unreserved / pct-encoded / sub-delims), minus ';' which in an
/// MSRP URI always starts the transport.
pub(crate) const REGNAME: u16 = 1 << 3;
/// RFC 4975 §9 session-id: unreserved / "+" / "=" / "/".
pub(crate) const SESSION: u16 = 1 << 4;
/// [`REGNAME`] without '%': a host name with no percent-escape.
pub(crate) const REGNAME_PLAIN: u16 = 1 << 12;
/// RFC 3986 userinfo: unreserved / pct-encoded / sub-delims / ":".
pub(crate) const USERINFO: u16 = 1 << 5;
pub(crate) const DIGIT: u16 = 1 << 6;
pub(crate) const HEX: u16 = 1 << 7;
/// Bytes allowed in `utf8text`: HTAB, %x20-7E and any non-ASCII byte (which must then
/// form valid UTF-8; that is checked separately).
pub(crate) const TEXT: u16 = 1 << 8;
pub(crate) const UPPER: u16 = 1 << 9;
pub(crate) const ALPHA: u16 = 1 << 10;
/// DIGIT / "." (a dotted-quad candidate).
pub(crate) const DIGIT_DOT: u16 = 1 << 11;

const fn token(c: u8) -> bool {
    matches!(c, 0x21 | 0x23..=0x27 | 0x2A..=0x2B | 0x2D..=0x2E | 0x30..=0x39 | 0x41..=0x5A | 0x5E..=0x7E)
}

const fn unreserved(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~')
}

const fn sub_delim(c: u8) -> bool {
    matches!(
        c,
        b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'='
    )
}

const fn class(c: u8) -> u16 {
    let mut k = 0;
    if token(c) {
        k |= TOKEN;
    }
    if c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'+' | b'%' | b'=') {
        k |= IDENT;
    }
    if c.is_ascii_alphanumeric() {
        k |= ALNUM;
    }
    if (unreserved(c) || sub_delim(c) || c == b'%') && c != b';' {
        k |= REGNAME;
    }
    if unreserved(c) || matches!(c, b'+' | b'=' | b'/') {
        k |= SESSION;
    }
    if (unreserved(c) || sub_delim(c)) && c != b';' {
        k |= REGNAME_PLAIN;
    }
    if unreserved(c) || sub_delim(c) || c == b'%' || c == b':' {
        k |= USERINFO;
    }
    if c.is_ascii_digit() {
        k |= DIGIT | DIGIT_DOT;
    }
    if c == b'.' {
        k |= DIGIT_DOT;
    }
    if c.is_ascii_hexdigit() {
        k |= HEX;
    }
    if c == b'\t' || (c >= 0x20 && c != 0x7F) {
        k |= TEXT;
    }
    if c.is_ascii_uppercase() {
        k |= UPPER;
    }
    if c.is_ascii_alphabetic() {
        k |= ALPHA;
    }
    k
}

pub(crate) static CLASS: [u16; 256] = {
    let mut t = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = class(i as u8);
        i += 1;
    }
    t
};

/// The class bits of one byte.
#[inline(always)]
pub(crate) fn class_of(c: u8) -> u16 {
    CLASS[usize::from(c)]
}

/// `true` when `c` has class bit(s) `k`.
#[inline(always)]
pub(crate) fn is(c: u8, k: u16) -> bool {
    class_of(c) & k != 0
}

/// `true` when every byte of `s` has class bit `k` (also for an empty `s`).
#[inline]
pub(crate) fn all(s: &[u8], k: u16) -> bool {
    s.iter().fold(k, |acc, &c| acc & class_of(c)) == k
}

/// The index of the first byte at or after `from` that lacks class bit `k`, or `s.len()`
/// (or `from` when that is past the end). Four bytes a step while all four belong (one
/// test for the four), then byte by byte.
#[inline(always)]
pub(crate) fn span(s: &[u8], from: usize, k: u16) -> usize {
    let Some(t) = s.get(from..) else {
        return from;
    };
    let mut i = 0;
    while let Some(&[a, b, c, d]) = t.get(i..i + 4) {
        if class_of(a) & class_of(b) & class_of(c) & class_of(d) & k == 0 {
            break;
        }
        i += 4;
    }
    while let Some(&c) = t.get(i) {
        if !is(c, k) {
            break;
        }
        i += 1;
    }
    from + i
}

/// Reads `1*20DIGIT` at `s[from..]`: the value and where the digits end. `None` when there
/// is no digit, more than 20 of them, or the value overflows u64.
#[inline(always)]
pub(crate) fn digits(s: &[u8], from: usize) -> Option<(u64, usize)> {
    let tail = s.get(from..)?;
    let mut v: u64 = 0;
    let mut n = 0;
    for &c in tail {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            break;
        }
        // Wraps only past 19 digits, which are checked again below.
        v = v.wrapping_mul(10).wrapping_add(u64::from(d));
        n += 1;
    }
    match n {
        1..=19 => Some((v, from + n)),
        20 => Some((parse_u64(tail.get(..20)?)?, from + 20)),
        _ => None,
    }
}

/// `true` when `s` holds byte `x`; a vectorisable fold, for short strings where a miss is
/// the common case.
#[inline]
pub(crate) fn contains(s: &[u8], x: u8) -> bool {
    s.iter().fold(0u8, |acc, &c| acc | u8::from(c == x)) != 0
}

/// The index of the first `x` in `s` at or after `from`. Eight bytes at a time with the
/// SWAR zero-byte test, for the short haystacks of a head where a call to `memchr`
/// costs more than it saves.
#[inline]
pub(crate) fn find(s: &[u8], from: usize, x: u8) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let pattern = LO * u64::from(x);
    let mut i = from;
    while let Some(chunk) = s.get(i..i + 8) {
        let Ok(word) = <[u8; 8]>::try_from(chunk) else {
            break;
        };
        let v = u64::from_le_bytes(word) ^ pattern;
        // The lowest byte flagged is the first zero byte (borrows only run upwards).
        let hit = v.wrapping_sub(LO) & !v & HI;
        if hit != 0 {
            return Some(i + (hit.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    s.get(i..)?.iter().position(|&c| c == x).map(|p| i + p)
}

/// `true` when every byte of `s` is `utf8text` by byte class (HTAB, %x20-7E, or non-ASCII),
/// computed arithmetically so that LLVM vectorises it.
#[inline]
pub(crate) fn all_text(s: &[u8]) -> bool {
    s.iter().fold(0u8, |bad, &c| {
        bad | u8::from((c < 0x20) & (c != b'\t')) | u8::from(c == 0x7F)
    }) == 0
}

/// The index of the first byte at or after `from` that is a control byte other than HTAB
/// (so CR and LF among them), or DEL; `None` when there is none. Eight bytes at a time
/// with the SWAR "has a byte below n" and "has a zero byte" tests: the lowest byte either
/// flags is exact (borrows only run upwards). In a well-formed header line the first such
/// byte is the CR of its CRLF, so one scan finds the line's end and shows that the bytes
/// before it are `utf8text` by class.
pub(crate) fn find_ctrl(s: &[u8], from: usize) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let mut i = from;
    while let Some(word) = s.get(i..i + 8).and_then(|c| <[u8; 8]>::try_from(c).ok()) {
        let x = u64::from_le_bytes(word);
        let below_space = x.wrapping_sub(LO * 0x20) & !x & HI;
        let y = x ^ (LO * 0x7F);
        let del = y.wrapping_sub(LO) & !y & HI;
        let m = below_space | del;
        if m != 0 {
            i += (m.trailing_zeros() / 8) as usize;
            break;
        }
        i += 8;
    }
    // Byte by byte from the flagged byte (going on past an HTAB), or through the last few.
    s.get(i..)?
        .iter()
        .position(|&c| (c < 0x20 && c != b'\t') || c == 0x7F)
        .map(|p| i + p)
}

/// RFC 4975 §9 `ident = ALPHANUM 3*31ident-char` (transaction ids and Message-IDs).
#[inline]
pub(crate) fn is_ident(s: &[u8]) -> bool {
    match s.first() {
        Some(&c) => (4..=32).contains(&s.len()) && is(c, ALNUM) && all(s, IDENT),
        None => false,
    }
}

/// A token (RFC 4975 §9), non-empty.
#[inline]
pub(crate) fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && all(s, TOKEN)
}

/// Up to 16 hex digits (either case) as a number; `None` for any other byte. The relay
/// reads session ids and its own transaction ids with it on every frame.
pub fn hex_u64(b: &[u8]) -> Option<u64> {
    if b.len() > 16 {
        return None;
    }
    let mut v = 0u64;
    for &c in b {
        let d = HEX_VALUE[usize::from(c)];
        if d > 15 {
            return None;
        }
        v = v << 4 | u64::from(d);
    }
    Some(v)
}

/// The value of each hex digit; 0xFF for every other byte.
pub(crate) static HEX_VALUE: [u8; 256] = {
    let mut t = [0xFFu8; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        t[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t
};

/// Parses `1*DIGIT` into a u64, refusing overflow and more than 20 digits.
pub(crate) fn parse_u64(d: &[u8]) -> Option<u64> {
    if d.is_empty() || d.len() > 20 || !all(d, DIGIT) {
        return None;
    }
    if d.len() < 20 {
        // At most 19 digits: cannot overflow.
        return Some(d.iter().fold(0u64, |v, &c| v * 10 + u64::from(c - b'0')));
    }
    let mut v: u64 = 0;
    for &c in d {
        v = v.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_match_the_grammar() {
        for c in 0..=255u8 {
            assert_eq!(is(c, TOKEN), token(c), "{c}");
            assert_eq!(
                is(c, TEXT),
                c == b'\t' || (0x20..0x7F).contains(&c) || c >= 0x80,
                "{c}"
            );
            assert_eq!(is(c, HEX), c.is_ascii_hexdigit(), "{c}");
            assert_eq!(all_text(&[c]), is(c, TEXT), "{c}");
        }
        assert!(!is(b';', REGNAME) && is(b';', USERINFO) && is(b'/', SESSION));
        assert!(!is(b':', REGNAME) && !is(b'/', REGNAME) && !is(b' ', REGNAME));
    }

    #[test]
    fn helpers() {
        assert!(all(b"", TOKEN) && all(b"abc", TOKEN) && !all(b"a c", TOKEN));
        assert_eq!(span(b"abc:d", 0, TOKEN), 3);
        assert_eq!(span(b"abc:d", 4, TOKEN), 5);
        assert_eq!(span(b"abc", 7, TOKEN), 7);
        for n in 0..12 {
            let mut v = b"abcdefghijkl".to_vec();
            if n < v.len() {
                v[n] = b' ';
            }
            for from in 0..=v.len() {
                assert_eq!(
                    span(&v, from, TOKEN),
                    if from <= n { n.min(12) } else { 12 }
                );
            }
        }
        assert_eq!(digits(b"x1234/", 1), Some((1234, 5)));
        assert_eq!(digits(b"x/", 1), None);
        assert_eq!(digits(b"18446744073709551615", 0), Some((u64::MAX, 20)));
        assert_eq!(digits(b"18446744073709551616", 0), None);
        assert_eq!(digits(b"99999999999999999999", 0), None);
        assert_eq!(digits(b"000000000000000000001", 0), None);
        assert_eq!(
            digits(b"9999999999999999999-", 0),
            Some((9_999_999_999_999_999_999, 19))
        );
        assert!(contains(b"a@b", b'@') && !contains(b"ab", b'@'));
        let hay = b"0123456789abcdef\n0123456789\n";
        for from in 0..hay.len() + 2 {
            let want = hay
                .get(from..)
                .and_then(|r| r.iter().position(|&c| c == b'\n'))
                .map(|p| from + p);
            assert_eq!(find(hay, from, b'\n'), want, "{from}");
        }
        for x in 0..=255u8 {
            let mut v = vec![x.wrapping_add(1); 20];
            assert_eq!(find(&v, 0, x), None);
            v[13] = x;
            v[17] = x;
            assert_eq!(find(&v, 0, x), Some(13), "{x}");
            assert_eq!(find(&v, 14, x), Some(17), "{x}");
        }
        let line = b"Message-ID: a\tb\xc3\xa4cdefghijklmnop\r\nX: y\r\n";
        assert_eq!(find_ctrl(line, 0), Some(31));
        assert_eq!(find_ctrl(line, 33), Some(37));
        assert_eq!(find_ctrl(line, 39), None);
        assert_eq!(find_ctrl(b"\t\t\t\t\t\t\t\t\t\t", 0), None);
        for n in 0..20 {
            for bad in [0u8, 1, 0x0A, 0x0D, 0x1F, 0x7F] {
                let mut v = vec![b'a'; 20];
                v[n] = bad;
                if n + 1 < v.len() {
                    v[n + 1] = 0x01;
                }
                assert_eq!(find_ctrl(&v, 0), Some(n), "{n} {bad}");
                assert_eq!(find_ctrl(&v, n + 2), None, "{n} {bad}");
            }
            let mut v = vec![0xFFu8; 20];
            v[n] = b'\t';
            assert_eq!(find_ctrl(&v, 0), None);
            v[n] = 0x20;
            assert_eq!(find_ctrl(&v, 0), None);
        }
        assert!(is_ident(b"a.-+") && !is_ident(b".abc") && !is_ident(b"abc"));
        assert_eq!(parse_u64(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_u64(b"18446744073709551616"), None);
        assert_eq!(parse_u64(b"99999999999999999999"), None);
        assert_eq!(
            parse_u64(b"9999999999999999999"),
            Some(9_999_999_999_999_999_999)
        );
        assert_eq!(parse_u64(b"000000000000000000001"), None);
        assert_eq!(parse_u64(b"+1"), None);
        assert_eq!(parse_u64(b""), None);
    }
}
