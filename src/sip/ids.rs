//! Identifiers this stack makes: Via branches (RFC 3261 §8.1.1.7: unique, starting with
//! the magic cookie `z9hG4bK`), From/To tags (§19.3: at least 32 bits of randomness) and
//! Call-IDs (§8.1.1.4).
//!
//! Each carries the worker core that owns the transaction or dialog, so that a response
//! or in-dialog request that the kernel's SO_REUSEPORT hash delivers to another core can
//! be handed to the owner (ARCHITECTURE.md). Formats, all lower-case hex:
//!
//! - branch `z9hG4bK-<core>-<16 hex random>`, e.g. `z9hG4bK-3-9f86d081884c7d65`;
//! - tag `m<core>-<16 hex random>`, e.g. `m3-9f86d081884c7d65`;
//! - Call-ID `m<core>-<24 hex random>@<host>` (the host part optional).
//!
//! [`branch_core`], [`tag_core`] and [`call_id_core`] read the core back; a value that
//! some other element made gives `None` (or, by chance, a number the caller must check
//! against its core count before trusting it).
//!
//! Randomness comes from the caller ([`rand::RngCore`]), never from a global source.

use rand::RngCore;

/// RFC 3261 §8.1.1.7.
pub const MAGIC_COOKIE: &str = "z9hG4bK";

fn hex_random(rng: &mut dyn RngCore, bytes: usize, out: &mut String) {
    let mut buf = [0u8; 16];
    let buf = &mut buf[..bytes.min(16)];
    rng.fill_bytes(buf);
    for b in buf.iter() {
        out.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        out.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
    }
}

/// A new branch for a request sent by `core`.
pub fn branch(core: u16, rng: &mut dyn RngCore) -> String {
    let mut s = format!("{MAGIC_COOKIE}-{core:x}-");
    hex_random(rng, 8, &mut s);
    s
}

/// A new tag for a dialog owned by `core`.
pub fn tag(core: u16, rng: &mut dyn RngCore) -> String {
    let mut s = format!("m{core:x}-");
    hex_random(rng, 8, &mut s);
    s
}

/// A new Call-ID for a dialog owned by `core`; `host` (if not empty) follows an `@`.
pub fn call_id(core: u16, host: &str, rng: &mut dyn RngCore) -> String {
    let mut s = format!("m{core:x}-");
    hex_random(rng, 12, &mut s);
    if !host.is_empty() {
        s.push('@');
        s.push_str(host);
    }
    s
}

/// `<hex core>-<hex>` at the start of `s`: the core.
fn core_then_random(s: &str) -> Option<u16> {
    let (core, random) = s.split_once('-')?;
    if core.is_empty()
        || core.len() > 4
        || random.is_empty()
        || !core.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return None;
    }
    u16::from_str_radix(core, 16).ok()
}

/// The core a branch made by [`branch`] names.
pub fn branch_core(branch: &str) -> Option<u16> {
    core_then_random(branch.strip_prefix(MAGIC_COOKIE)?.strip_prefix('-')?)
}

/// The core a tag made by [`tag`] names.
pub fn tag_core(tag: &str) -> Option<u16> {
    core_then_random(tag.strip_prefix('m')?)
}

/// The core a Call-ID made by [`call_id`] names.
pub fn call_id_core(call_id: &str) -> Option<u16> {
    let local = call_id.split('@').next().unwrap_or("");
    core_then_random(local.strip_prefix('m')?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn core_round_trips() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for core in [0u16, 1, 9, 10, 255, 4095, u16::MAX] {
            let b = branch(core, &mut rng);
            assert!(b.starts_with("z9hG4bK-"), "{b}");
            assert_eq!(
                b.len(),
                "z9hG4bK-".len() + format!("{core:x}").len() + 1 + 16
            );
            assert_eq!(branch_core(&b), Some(core));
            let t = tag(core, &mut rng);
            assert_eq!(tag_core(&t), Some(core));
            let c = call_id(core, "example.com", &mut rng);
            assert!(c.ends_with("@example.com"));
            assert_eq!(call_id_core(&c), Some(core));
            assert_eq!(call_id_core(&call_id(core, "", &mut rng)), Some(core));
        }
        assert_ne!(branch(1, &mut rng), branch(1, &mut rng));
    }

    #[test]
    fn foreign_values() {
        for b in [
            "z9hG4bK776asdhds",
            "z9hG4bK-",
            "z9hG4bK--1",
            "z9hG4bK-10000-ab",
            "z9hG4bK-A-ab",
            "z9hG4bK-3",
            "x-3-ab",
            "",
        ] {
            assert_eq!(branch_core(b), None, "{b}");
        }
        for t in ["1928301774", "a6c85cf", "m", "m-1", "mzz-1", "m1"] {
            assert_eq!(tag_core(t), None, "{t}");
        }
        assert_eq!(tag_core("m1f-x"), Some(0x1f));
        assert_eq!(call_id_core("a84b4c76e66710@pc33.atlanta.com"), None);
    }
}
