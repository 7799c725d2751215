//! Relay session ids (RFC 4976 §6.3): the session-id part of the URIs handed out in
//! Use-Path. It carries at least 64 bits from a CSPRNG, so it cannot be guessed, and
//! encodes the worker core and connection slot that own it, so any core can tell where
//! a frame must go without a shared table.
//!
//! Form: 4 hex digits of core, 8 of slot, 16 of random key (28 characters, all
//! `unreserved`, as the URI grammar requires).

/// What a session id says: owning core, connection slot and the random key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionKey {
    pub core: u16,
    pub slot: u32,
    pub key: u64,
}

use crate::codec::hex_u64;

impl SessionKey {
    /// The session-id text.
    pub fn encode(&self) -> String {
        format!("{:04x}{:08x}{:016x}", self.core, self.slot, self.key)
    }

    /// Parses a session id made by [`SessionKey::encode`]; anything else is `None`.
    pub fn decode(sid: &str) -> Option<SessionKey> {
        let b = sid.as_bytes();
        if b.len() != 28 {
            return None;
        }
        // hex_u64 takes hex digits of either case; ours are lower-case. Among hex digits
        // exactly the upper-case letters have bit 5 clear, so one AND over all bytes
        // tells (the compiler does it a vector at a time).
        let key = SessionKey {
            core: u16::try_from(hex_u64(&b[..4])?).ok()?,
            slot: u32::try_from(hex_u64(&b[4..12])?).ok()?,
            key: hex_u64(&b[12..])?,
        };
        (b.iter().fold(0xFF, |a, &c| a & c) & 0x20 != 0).then_some(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rejects() {
        let k = SessionKey {
            core: 3,
            slot: 0xdead_beef,
            key: 0x0123_4567_89ab_cdef,
        };
        let s = k.encode();
        assert_eq!(s, "0003deadbeef0123456789abcdef");
        assert_eq!(SessionKey::decode(&s), Some(k));
        assert_eq!(SessionKey::decode("0003deadbeef0123456789abcdeF"), None);
        assert_eq!(SessionKey::decode("0003DEADBEEF0123456789abcdef"), None);
        assert_eq!(SessionKey::decode("0003deadbeef0123456789abcdeg"), None);
        assert_eq!(SessionKey::decode("0003deadbeef0123456789abcd:f"), None);
        assert_eq!(SessionKey::decode("0003deadbeef0123456789abcd"), None);
        assert_eq!(SessionKey::decode("jshA7we"), None);
        assert_eq!(hex_u64(b"00ff00FF"), Some(0x00ff_00ff));
        assert_eq!(hex_u64(b"ffffffffffffffff"), Some(u64::MAX));
        assert_eq!(hex_u64(b"1ffffffffffffffff"), None);
        assert_eq!(hex_u64(b"+1"), None);
        assert_eq!(hex_u64(b""), Some(0));
    }
}
