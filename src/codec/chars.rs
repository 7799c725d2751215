//! Byte classes of the MSRP grammar (RFC 4975 §9) as `static [bool; 256]` tables.

macro_rules! table {
    ($f:ident) => {{
        let mut t = [false; 256];
        let mut i = 0;
        while i < 256 {
            t[i] = $f(i as u8);
            i += 1;
        }
        t
    }};
}

const fn alphanum(c: u8) -> bool {
    c.is_ascii_alphanumeric()
}

/// RFC 4975 §9 `token`: %x21 / %x23-27 / %x2A-2B / %x2D-2E / %x30-39 / %x41-5A / %x5E-7E.
const fn token(c: u8) -> bool {
    matches!(c, 0x21 | 0x23..=0x27 | 0x2A..=0x2B | 0x2D..=0x2E | 0x30..=0x39 | 0x41..=0x5A | 0x5E..=0x7E)
}

/// RFC 4975 §9 `ident-char`: ALPHANUM / "." / "-" / "+" / "%" / "=".
const fn ident_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'+' | b'%' | b'=')
}

/// Bytes allowed in `utf8text` (HTAB, %x20-7E and any non-ASCII byte, which must then
/// form valid UTF-8; that is checked separately).
const fn text(c: u8) -> bool {
    c == b'\t' || (c >= 0x20 && c != 0x7F)
}

pub(crate) static ALPHANUM: [bool; 256] = table!(alphanum);
pub(crate) static TOKEN: [bool; 256] = table!(token);
pub(crate) static IDENT: [bool; 256] = table!(ident_char);
pub(crate) static TEXT: [bool; 256] = table!(text);

pub(crate) fn is_hex(c: u8) -> bool {
    c.is_ascii_hexdigit()
}

/// RFC 4975 §9 `ident = ALPHANUM 3*31ident-char` (transaction ids and Message-IDs).
pub(crate) fn is_ident(s: &[u8]) -> bool {
    (4..=32).contains(&s.len()) && ALPHANUM[s[0] as usize] && s.iter().all(|&c| IDENT[c as usize])
}

/// A token (RFC 4975 §9), non-empty.
pub(crate) fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&c| TOKEN[c as usize])
}

/// Parses `1*DIGIT` into a u64, refusing overflow (at most 19 digits are always safe,
/// more are checked).
pub(crate) fn parse_u64(d: &[u8]) -> Option<u64> {
    if d.is_empty() || d.len() > 20 {
        return None;
    }
    let mut v: u64 = 0;
    for &c in d {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
    }
    Some(v)
}
