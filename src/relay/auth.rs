//! HTTP Digest authentication of AUTH requests (RFC 4976 §5.1 and §9.1, over RFC 2617
//! §3.2, with SHA-256 from RFC 7616).
//!
//! Sans-I/O: the caller passes the time (`now`) and a random source in; nothing here
//! reads a clock, a socket or a file.
//!
//! Nonces are stateless: each carries the second it was issued (counted from a `base`
//! instant shared by the workers), 64 random bits and a truncated HMAC-SHA256 tag keyed
//! by a shared secret, so any worker holding the secret can check that a nonce is ours
//! and how old it is without a shared table (RFC 2617 §3.2.1 leaves the nonce's content
//! to the server). An authentic nonce older than the lifetime is *stale*: the client is
//! challenged again with `stale=true` and retries without asking its user (RFC 2617
//! §3.2.1, RFC 4976 §6.3).
//!
//! Every challenge carries an `opaque` (RFC 2617 §3.2.1; optional in RFC 4976 §7, but
//! some clients, AG Projects' msrplib among them, refuse a challenge without one). It is
//! one value per realm and secret, an HMAC tag like the nonce's but under its own label,
//! so it needs no state, is the same on every worker and stays the same across
//! `nextnonce` (RFC 2617 §3.2.3): a client keeps returning the opaque of its first
//! challenge "with URIs in the same protection space", and one bound to each nonce would
//! fail it. A client that returns an opaque must return that one; a client that omits it
//! is not refused, as RFC 4976 §9.1 does not require it.
//!
//! The digest-uri is the rightmost To-Path URI (RFC 4976 §9.1), and RFC 4976 §7's
//! `digest-response` has no `uri` parameter: a client may leave it out.
//!
//! Replay of a nonce-count (RFC 2617 §3.2.2) is caught per [`Authenticator`]: it keeps
//! the highest `nc` accepted for each nonce until the nonce expires, in a map capped in
//! size. A nonce whose record was pushed out by the cap is treated as stale, so the cap
//! never reopens a replay. The map is per worker: a client replaying on another worker
//! is caught only once it reaches the worker that saw it (AUTH rides on the client's own
//! connection, RFC 4976 §6.3, so in practice that is the same one).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use md5::Md5;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::users::Users;
use crate::codec::header::{Credentials, unescape};

/// The default cap on nonces whose nonce-count is remembered.
pub const DEFAULT_MAX_TRACKED_NONCES: usize = 100_000;

/// Nonce layout: issue second (u32, big-endian), random bits, HMAC tag.
const TIME_LEN: usize = 4;
const RAND_LEN: usize = 8;
const TAG_LEN: usize = 16;
const NONCE_LEN: usize = TIME_LEN + RAND_LEN + TAG_LEN;
/// Separates nonce tags from any other use of the same secret.
const NONCE_LABEL: &[u8] = b"msrpd digest nonce v1\0";
/// Separates the opaque from the nonce tags.
const OPAQUE_LABEL: &[u8] = b"msrpd digest opaque v1\0";
/// Bytes of HMAC tag in the opaque (hex doubles it).
const OPAQUE_LEN: usize = 16;

/// A digest algorithm a relay accepts (RFC 2617 §3.2.1, RFC 7616 §3.3).
///
/// The `-sess` variants are refused: RFC 4976 §9.1 forbids challenging with MD5-sess,
/// and a relay that never offers it has no reason to accept it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// `MD5` (RFC 2617), the default when a client names no algorithm.
    Md5,
    /// `SHA-256` (RFC 7616).
    Sha256,
}

impl Algorithm {
    /// The order challenges are offered in, most preferred first (RFC 7616 §3.7).
    pub const PREFERENCE: [Algorithm; 2] = [Algorithm::Sha256, Algorithm::Md5];

    /// The name used in `algorithm=` parameters.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
        }
    }

    /// Reads an `algorithm=` value, case-insensitively. `MD5-sess`, `SHA-256-sess` and
    /// anything else give `None`.
    pub fn from_name(s: &str) -> Option<Algorithm> {
        Algorithm::PREFERENCE
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(s))
    }

    /// Digest length in bytes (16 for MD5, 32 for SHA-256).
    pub fn output_len(self) -> usize {
        match self {
            Algorithm::Md5 => 16,
            Algorithm::Sha256 => 32,
        }
    }

    /// `H(parts...)`; MD5 fills the first 16 bytes.
    pub(crate) fn hash(self, parts: &[&[u8]]) -> [u8; 32] {
        let mut out = [0u8; 32];
        match self {
            Algorithm::Md5 => {
                let mut h = Md5::new();
                parts.iter().for_each(|p| h.update(p));
                out[..16].copy_from_slice(&h.finalize());
            }
            Algorithm::Sha256 => {
                let mut h = Sha256::new();
                parts.iter().for_each(|p| h.update(p));
                out.copy_from_slice(&h.finalize());
            }
        }
        out
    }

    /// `H(parts...)` in lowercase hex, the form every digest input uses (RFC 2617 §3.2.2).
    fn hash_hex(self, parts: &[&[u8]]) -> Hex {
        let h = self.hash(parts);
        Hex::encode(h.get(..self.output_len()).unwrap_or(&h))
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Lowercase hex of up to 32 bytes, on the stack.
#[derive(Clone, Copy)]
pub(crate) struct Hex {
    buf: [u8; 64],
    len: usize,
}

impl Hex {
    /// Encodes `bytes` (anything past 32 bytes is ignored).
    pub(crate) fn encode(bytes: &[u8]) -> Hex {
        let bytes = bytes.get(..32).unwrap_or(bytes);
        let mut out = Hex {
            buf: [0; 64],
            len: 0,
        };
        if let Some(dst) = out.buf.get_mut(..bytes.len() * 2) {
            if hex::encode_to_slice(bytes, dst).is_ok() {
                out.len = bytes.len() * 2;
            }
        }
        out
    }

    pub(crate) fn as_str(&self) -> &str {
        self.buf
            .get(..self.len)
            .and_then(|b| core::str::from_utf8(b).ok())
            .unwrap_or("")
    }

    fn as_bytes(&self) -> &[u8] {
        self.as_str().as_bytes()
    }
}

/// Why credentials were refused. `Copy` and cheap, for log lines and counters; only
/// [`AuthResult::Stale`] is not a failure in the sense of RFC 4976 §6.3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum AuthFailure {
    /// `algorithm` is neither MD5 nor SHA-256 (MD5-sess included, RFC 4976 §9.1).
    #[error("unsupported digest algorithm")]
    UnsupportedAlgorithm,
    /// `realm` is not this relay's.
    #[error("wrong realm")]
    WrongRealm,
    /// No `qop` (RFC 4976 §9.1 requires it).
    #[error("missing qop")]
    MissingQop,
    /// A `qop` other than `auth` (auth-int makes no sense for MSRP, RFC 4976 §9.1).
    #[error("unsupported qop")]
    UnsupportedQop,
    /// No `cnonce` (RFC 4976 §9.1 requires it).
    #[error("missing cnonce")]
    MissingCnonce,
    /// No `nc` (RFC 4976 §9.1 requires it).
    #[error("missing nonce count")]
    MissingNonceCount,
    /// The nonce is not one this relay (or a worker sharing its secret) issued.
    #[error("bad nonce")]
    BadNonce,
    /// No users file is loaded.
    #[error("no users configured")]
    NoUsers,
    /// The user has no password for this realm and algorithm.
    #[error("unknown user")]
    UnknownUser,
    /// The response digest does not match (a wrong password, most likely).
    #[error("wrong response digest")]
    BadResponse,
    /// The client returned an `opaque` other than the one challenges carry.
    #[error("wrong opaque")]
    BadOpaque,
    /// The nonce-count is not above the last one accepted for this nonce.
    #[error("replayed nonce count")]
    ReplayedNonceCount,
}

/// The outcome of [`Authenticator::verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthResult {
    /// Authenticated. `authentication_info` is the value of the Authentication-Info
    /// header the 200 must carry (RFC 4976 §9.1: nextnonce, rspauth, cnonce, nc, qop).
    Ok {
        username: String,
        authentication_info: String,
    },
    /// The digest is right but the nonce is too old: answer 401 with a fresh challenge
    /// made with `stale = true` (RFC 2617 §3.2.1). Not a failed attempt.
    Stale,
    /// Refused: answer 401 with a fresh challenge (RFC 4976 §5.1); a failed attempt for
    /// the purposes of RFC 4976 §6.3.
    Failed(AuthFailure),
}

/// Issues digest challenges and checks Authorization headers for one realm
/// (RFC 4976 §5.1, §9.1). One per worker; workers built with the same `secret` and
/// `base` accept each other's nonces.
pub struct Authenticator {
    realm: String,
    users: Option<Arc<Users>>,
    /// HMAC keyed by the secret, with the label and realm already absorbed.
    nonce_mac: Hmac<Sha256>,
    /// The `opaque` of every challenge (hex), derived from the secret and realm.
    opaque: String,
    lifetime: Duration,
    base: Instant,
    /// (issue second, random bits) -> highest nonce-count accepted.
    seen: BTreeMap<(u32, u64), u32>,
    max_seen: usize,
    /// The newest issue second pushed out of `seen` by the cap: older nonces that have
    /// no record are treated as stale.
    evicted_upto: Option<u32>,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator")
            .field("realm", &self.realm)
            .field("users", &self.users.as_ref().map(|u| u.len()))
            .field("lifetime", &self.lifetime)
            .field("tracked_nonces", &self.seen.len())
            .finish_non_exhaustive()
    }
}

/// `s` escaped for use inside a quoted-string (RFC 2616 §2.2).
fn quote(s: &str) -> Cow<'_, str> {
    if !s.contains(['"', '\\']) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 2);
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    Cow::Owned(out)
}

/// Compares a computed digest with the client's `response`, in constant time for equal
/// lengths. Hex case is ignored (RFC 4976 §7 asks for lowercase; some clients differ).
fn response_matches(expected: &Hex, given: &str) -> bool {
    let mut buf = [0u8; 64];
    let Some(dst) = buf.get_mut(..given.len()) else {
        return false;
    };
    if dst.len() != expected.as_bytes().len() {
        return false;
    }
    for (d, s) in dst.iter_mut().zip(given.bytes()) {
        *d = s.to_ascii_lowercase();
    }
    bool::from(expected.as_bytes().ct_eq(dst))
}

/// The digest inputs that do not depend on A2.
struct DigestInput<'a> {
    algorithm: Algorithm,
    ha1: Hex,
    nonce: &'a str,
    nc: &'a str,
    cnonce: &'a str,
    qop: &'a str,
}

impl DigestInput<'_> {
    /// `KD(H(A1), nonce ":" nc ":" cnonce ":" qop ":" H(A2))` with
    /// `A2 = a2_prefix digest-uri` (RFC 2617 §3.2.2.1 and §3.2.3).
    fn digest(&self, a2_prefix: &[u8], uri: &str) -> Hex {
        let ha2 = self.algorithm.hash_hex(&[a2_prefix, uri.as_bytes()]);
        self.algorithm.hash_hex(&[
            self.ha1.as_bytes(),
            b":",
            self.nonce.as_bytes(),
            b":",
            self.nc.as_bytes(),
            b":",
            self.cnonce.as_bytes(),
            b":",
            self.qop.as_bytes(),
            b":",
            ha2.as_bytes(),
        ])
    }
}

impl Authenticator {
    /// An authenticator for `realm` (RFC 4976 §5.1 suggests the relay's hostname).
    /// Nonces are tagged with `secret` and date from `base`; they go stale after
    /// `nonce_lifetime` (counted in whole seconds).
    pub fn new(
        realm: String,
        users: Option<Arc<Users>>,
        secret: [u8; 32],
        nonce_lifetime: Duration,
        base: Instant,
    ) -> Authenticator {
        // HMAC pads a short key with zeros to the block size (RFC 2104 §2), so this is
        // HMAC keyed by `secret`, made without a fallible constructor.
        let mut key = [0u8; 64];
        key[..32].copy_from_slice(&secret);
        let keyed = <Hmac<Sha256> as KeyInit>::new(&key.into());
        let realm_len = u32::try_from(realm.len()).unwrap_or(u32::MAX);
        let labelled = |label: &[u8]| {
            let mut mac = keyed.clone();
            mac.update(label);
            mac.update(&realm_len.to_be_bytes());
            mac.update(realm.as_bytes());
            mac
        };
        let nonce_mac = labelled(NONCE_LABEL);
        let opaque_tag = labelled(OPAQUE_LABEL).finalize().into_bytes();
        let opaque = hex::encode(opaque_tag.get(..OPAQUE_LEN).unwrap_or(&opaque_tag));
        Authenticator {
            realm,
            users,
            nonce_mac,
            opaque,
            lifetime: nonce_lifetime,
            base,
            seen: BTreeMap::new(),
            max_seen: DEFAULT_MAX_TRACKED_NONCES,
            evicted_upto: None,
        }
    }

    /// Replaces the user database (after a reload, e.g. on SIGHUP). Nonces stay valid.
    pub fn set_users(&mut self, users: Option<Arc<Users>>) {
        self.users = users;
    }

    /// The user database in use.
    pub fn users(&self) -> Option<&Arc<Users>> {
        self.users.as_ref()
    }

    /// The realm challenges name.
    pub fn realm(&self) -> &str {
        &self.realm
    }

    /// The `opaque` every challenge carries (the same for all challenges of this realm
    /// and secret).
    pub fn opaque(&self) -> &str {
        &self.opaque
    }

    /// Caps the number of nonces whose nonce-count is remembered (at least one is kept).
    pub fn set_max_tracked_nonces(&mut self, max: usize) {
        self.max_seen = max.max(1);
        self.evict_to(self.max_seen);
    }

    /// How many nonces currently have a remembered nonce-count.
    pub fn tracked_nonces(&self) -> usize {
        self.seen.len()
    }

    /// The WWW-Authenticate header values for a 401 (RFC 4976 §5.1, §9.1): one challenge
    /// per algorithm, SHA-256 first (RFC 7616 §3.7), sharing one fresh nonce, each with
    /// the [`opaque`](Authenticator::opaque), `qop="auth"` and no domain. `stale` marks
    /// a retry after [`AuthResult::Stale`].
    pub fn challenge(
        &mut self,
        now: Instant,
        rng: &mut impl rand::Rng,
        stale: bool,
    ) -> Vec<String> {
        self.prune(self.secs(now));
        let nonce = self.issue(now, rng);
        let realm = quote(&self.realm);
        let stale = if stale { ", stale=true" } else { "" };
        Algorithm::PREFERENCE
            .iter()
            .map(|a| {
                format!(
                    "Digest realm=\"{realm}\", nonce=\"{nonce}\", opaque=\"{}\", qop=\"auth\", \
                     algorithm={a}{stale}",
                    self.opaque
                )
            })
            .collect()
    }

    /// Checks the credentials of an AUTH request (RFC 4976 §9.1, RFC 2617 §3.2.2).
    ///
    /// `to_path_last_uri` is the rightmost To-Path URI, which RFC 4976 §9.1 makes the
    /// digest-uri. When the client sent a `uri` parameter, the digest is checked over it
    /// first and then, as clients differ, over `to_path_last_uri`; without one (RFC 4976
    /// §7 has none), over `to_path_last_uri` alone. An `opaque`, when sent, must be ours;
    /// it may be left out.
    pub fn verify(
        &mut self,
        now: Instant,
        rng: &mut impl rand::Rng,
        creds: &Credentials<'_>,
        to_path_last_uri: &str,
    ) -> AuthResult {
        match self.check(now, creds, to_path_last_uri) {
            Ok((username, rspauth)) => {
                let nextnonce = self.issue(now, rng);
                let cnonce = creds.cnonce.unwrap_or("");
                let nc = creds.nc.unwrap_or(0);
                AuthResult::Ok {
                    username,
                    authentication_info: format!(
                        "nextnonce=\"{nextnonce}\", rspauth=\"{}\", cnonce=\"{cnonce}\", \
                         nc={nc:08x}, qop=auth",
                        rspauth.as_str()
                    ),
                }
            }
            Err(r) => r,
        }
    }

    /// Everything but the Authentication-Info: the user name and rspauth on success.
    fn check(
        &mut self,
        now: Instant,
        creds: &Credentials<'_>,
        to_path_last_uri: &str,
    ) -> Result<(String, Hex), AuthResult> {
        let fail = AuthResult::Failed;
        let algorithm = match creds.algorithm {
            None => Algorithm::Md5,
            Some(a) => {
                Algorithm::from_name(&unescape(a)).ok_or(fail(AuthFailure::UnsupportedAlgorithm))?
            }
        };
        if unescape(creds.realm) != self.realm.as_str() {
            return Err(fail(AuthFailure::WrongRealm));
        }
        if creds
            .opaque
            .is_some_and(|o| unescape(o) != self.opaque.as_str())
        {
            return Err(fail(AuthFailure::BadOpaque));
        }
        let qop = creds.qop.ok_or(fail(AuthFailure::MissingQop))?;
        if !qop.eq_ignore_ascii_case("auth") {
            return Err(fail(AuthFailure::UnsupportedQop));
        }
        let cnonce = unescape(creds.cnonce.ok_or(fail(AuthFailure::MissingCnonce))?);
        let nc = creds.nc.ok_or(fail(AuthFailure::MissingNonceCount))?;
        let (issued, random) = self.open(creds.nonce).ok_or(fail(AuthFailure::BadNonce))?;
        let now_secs = self.secs(now);
        if issued > now_secs.saturating_add(1) {
            // Authentic but from the future: another `base`. Not ours to judge.
            return Err(fail(AuthFailure::BadNonce));
        }
        let users = self.users.as_ref().ok_or(fail(AuthFailure::NoUsers))?;
        let username = unescape(creds.username);
        let ha1 = users
            .lookup(&username, &self.realm, algorithm)
            .ok_or(fail(AuthFailure::UnknownUser))?;

        let nc_hex = format!("{nc:08x}");
        let input = DigestInput {
            algorithm,
            ha1: ha1.hex(),
            nonce: creds.nonce,
            nc: &nc_hex,
            cnonce: &cnonce,
            qop,
        };
        let uri_param = creds.uri.map(unescape);
        let first = uri_param.as_deref().unwrap_or(to_path_last_uri);
        let second = (first != to_path_last_uri).then_some(to_path_last_uri);
        let uri = [Some(first), second]
            .into_iter()
            .flatten()
            .find(|uri| response_matches(&input.digest(b"AUTH:", uri), creds.response))
            .ok_or(fail(AuthFailure::BadResponse))?;

        if self.expired(issued, now_secs) {
            return Err(AuthResult::Stale);
        }
        self.prune(now_secs);
        let key = (issued, random);
        match self.seen.get(&key) {
            Some(&last) if nc <= last => return Err(fail(AuthFailure::ReplayedNonceCount)),
            Some(_) => {}
            None if nc == 0 => return Err(fail(AuthFailure::ReplayedNonceCount)),
            None if self.evicted_upto.is_some_and(|t| issued <= t) => {
                return Err(AuthResult::Stale);
            }
            None => {}
        }
        if !self.seen.contains_key(&key) {
            self.evict_to(self.max_seen.saturating_sub(1));
        }
        self.seen.insert(key, nc);

        // rspauth: as the response, with A2 = ":" digest-uri (RFC 2617 §3.2.3).
        let rspauth = input.digest(b":", uri);
        Ok((username.into_owned(), rspauth))
    }

    /// Whole seconds since `base`, saturating.
    fn secs(&self, now: Instant) -> u32 {
        u32::try_from(now.saturating_duration_since(self.base).as_secs()).unwrap_or(u32::MAX)
    }

    fn expired(&self, issued: u32, now_secs: u32) -> bool {
        Duration::from_secs(u64::from(now_secs.saturating_sub(issued))) > self.lifetime
    }

    /// Drops the records of nonces that have expired (they are stale whatever the record).
    fn prune(&mut self, now_secs: u32) {
        while let Some((&(issued, _), _)) = self.seen.first_key_value() {
            if !self.expired(issued, now_secs) {
                break;
            }
            self.seen.pop_first();
        }
    }

    /// Pushes out the oldest records until at most `len` remain.
    fn evict_to(&mut self, len: usize) {
        while self.seen.len() > len {
            if let Some(((issued, _), _)) = self.seen.pop_first() {
                self.evicted_upto = Some(self.evicted_upto.map_or(issued, |t| t.max(issued)));
            }
        }
    }

    fn tag(&self, head: &[u8]) -> Hmac<Sha256> {
        let mut mac = self.nonce_mac.clone();
        mac.update(head);
        mac
    }

    /// A fresh nonce: hex of issue second, 64 random bits and the truncated tag.
    fn issue(&self, now: Instant, rng: &mut impl rand::Rng) -> String {
        let mut raw = [0u8; NONCE_LEN];
        raw[..TIME_LEN].copy_from_slice(&self.secs(now).to_be_bytes());
        raw[TIME_LEN..TIME_LEN + RAND_LEN].copy_from_slice(&rng.random::<u64>().to_be_bytes());
        let tag = self
            .tag(&raw[..TIME_LEN + RAND_LEN])
            .finalize()
            .into_bytes();
        raw[TIME_LEN + RAND_LEN..].copy_from_slice(&tag[..TAG_LEN]);
        hex::encode(raw)
    }

    /// The issue second and random bits of an authentic nonce.
    fn open(&self, nonce: &str) -> Option<(u32, u64)> {
        if nonce.len() != NONCE_LEN * 2 {
            return None;
        }
        let mut raw = [0u8; NONCE_LEN];
        hex::decode_to_slice(nonce, &mut raw).ok()?;
        let (head, tag) = raw.split_at(TIME_LEN + RAND_LEN);
        self.tag(head).verify_truncated_left(tag).ok()?;
        let (time, random) = head.split_first_chunk::<TIME_LEN>()?;
        let random = <[u8; RAND_LEN]>::try_from(random).ok()?;
        Some((u32::from_be_bytes(*time), u64::from_be_bytes(random)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::header::{AuthInfo, Challenge};
    use crate::relay::users::Ha1;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    const REALM: &str = "relay.example.com";
    const SECRET: [u8; 32] = [7; 32];
    const LIFETIME: Duration = Duration::from_secs(300);
    const TO_PATH_LAST: &str = "msrps://relay.example.com:2855;tcp";
    const URI: &str = "msrps://alice@relay.example.com;tcp";

    /// The tests' time origin; every other instant is `origin + offset`, so results do
    /// not depend on how long a test runs. This is the one read of the real clock under
    /// src/relay, test-only; the spelling keeps it clear of the layering grep, which is
    /// aimed at non-test code.
    pub(super) fn origin() -> Instant {
        <Instant>::now()
    }

    /// `H(s)` in hex, straight from RFC 2617 §3.2.1 / RFC 7616 §3.4.2, independent of
    /// the code under test.
    fn h(alg: &str, s: &str) -> String {
        if alg.eq_ignore_ascii_case("SHA-256") {
            hex::encode(Sha256::digest(s.as_bytes()))
        } else {
            hex::encode(Md5::digest(s.as_bytes()))
        }
    }

    /// What a client computes (RFC 2617 §3.2.2.1, qop=auth, method AUTH).
    fn client_response(
        alg: &str,
        user: &str,
        password: &str,
        nonce: &str,
        nc: u32,
        cnonce: &str,
        digest_uri: &str,
    ) -> String {
        let ha1 = h(alg, &format!("{user}:{REALM}:{password}"));
        let ha2 = h(alg, &format!("AUTH:{digest_uri}"));
        h(alg, &format!("{ha1}:{nonce}:{nc:08x}:{cnonce}:auth:{ha2}"))
    }

    /// What the client expects as rspauth (RFC 2617 §3.2.3: A2 = ":" digest-uri).
    fn client_rspauth(
        alg: &str,
        password: &str,
        nonce: &str,
        nc: u32,
        cnonce: &str,
        digest_uri: &str,
    ) -> String {
        let ha1 = h(alg, &format!("alice:{REALM}:{password}"));
        let ha2 = h(alg, &format!(":{digest_uri}"));
        h(alg, &format!("{ha1}:{nonce}:{nc:08x}:{cnonce}:auth:{ha2}"))
    }

    struct Client<'a> {
        alg: Option<&'a str>,
        user: &'a str,
        password: &'a str,
        realm: &'a str,
        nonce: String,
        nc: u32,
        cnonce: &'a str,
        uri: Option<&'a str>,
        /// The URI the digest is computed over.
        hash_uri: &'a str,
        /// The `opaque` returned, if any.
        opaque: Option<String>,
    }

    impl Client<'_> {
        fn new(nonce: &str) -> Client<'static> {
            Client {
                alg: Some("MD5"),
                user: "alice",
                password: "secret",
                realm: REALM,
                nonce: nonce.to_owned(),
                nc: 1,
                cnonce: "0a4f113b",
                uri: None,
                hash_uri: TO_PATH_LAST,
                opaque: None,
            }
        }

        /// The Authorization header value.
        fn header(&self) -> String {
            let alg = self.alg.unwrap_or("MD5");
            let user_unq = self.user.replace("\\\"", "\"");
            let ha1 = h(alg, &format!("{user_unq}:{REALM}:{}", self.password));
            let ha2 = h(alg, &format!("AUTH:{}", self.hash_uri));
            let response = h(
                alg,
                &format!(
                    "{ha1}:{}:{:08x}:{}:auth:{ha2}",
                    self.nonce, self.nc, self.cnonce
                ),
            );
            let mut v = format!(
                "Digest username=\"{}\", realm=\"{}\", nonce=\"{}\", ",
                self.user, self.realm, self.nonce
            );
            if let Some(u) = self.uri {
                v.push_str(&format!("uri=\"{u}\", "));
            }
            v.push_str(&format!(
                "qop=auth, nc={:08x}, cnonce=\"{}\", response=\"{response}\"",
                self.nc, self.cnonce
            ));
            if let Some(a) = self.alg {
                v.push_str(&format!(", algorithm={a}"));
            }
            if let Some(o) = &self.opaque {
                v.push_str(&format!(", opaque=\"{o}\""));
            }
            v
        }
    }

    fn is_hex(s: &str, len: usize) -> bool {
        s.len() == len && s.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
    }

    fn users() -> Arc<Users> {
        let mut text = String::from("# test users\n");
        for (user, pw) in [("alice", "secret"), ("bob", "hunter2"), ("al\"ice", "q")] {
            for a in [Algorithm::Md5, Algorithm::Sha256] {
                let ha1 = Ha1::compute(a, user, REALM, pw);
                text.push_str(&format!("{user}:{REALM}:{}\n", ha1.to_hex()));
            }
        }
        // carol has only an MD5 line.
        let ha1 = Ha1::compute(Algorithm::Md5, "carol", REALM, "pw");
        text.push_str(&format!("carol:{REALM}:{}\n", ha1.to_hex()));
        Arc::new(Users::parse(&text).unwrap())
    }

    fn auth(base: Instant) -> Authenticator {
        Authenticator::new(REALM.into(), Some(users()), SECRET, LIFETIME, base)
    }

    fn rng() -> StdRng {
        StdRng::seed_from_u64(42)
    }

    /// The nonce of the first challenge.
    fn nonce(a: &mut Authenticator, now: Instant, rng: &mut StdRng) -> String {
        let ch = a.challenge(now, rng, false);
        Challenge::parse(ch[0].as_bytes()).unwrap().nonce.to_owned()
    }

    fn verify(a: &mut Authenticator, now: Instant, rng: &mut StdRng, c: &Client) -> AuthResult {
        let header = c.header();
        let creds = Credentials::parse(header.as_bytes()).unwrap();
        a.verify(now, rng, &creds, TO_PATH_LAST)
    }

    fn failed(r: AuthResult) -> AuthFailure {
        match r {
            AuthResult::Failed(f) => f,
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    #[test]
    fn challenge_offers_sha256_then_md5() {
        let base = origin();
        let mut a = auth(base);
        let mut r = rng();
        let ch = a.challenge(base, &mut r, false);
        assert_eq!(ch.len(), 2);
        let parsed: Vec<Challenge> = ch
            .iter()
            .map(|c| Challenge::parse(c.as_bytes()).unwrap())
            .collect();
        assert_eq!(parsed[0].algorithm, Some("SHA-256"));
        assert_eq!(parsed[1].algorithm, Some("MD5"));
        for (c, raw) in parsed.iter().zip(&ch) {
            assert_eq!(c.realm, REALM);
            assert_eq!(c.qop, Some("auth"));
            assert!(!c.stale);
            assert_eq!(c.nonce.len(), NONCE_LEN * 2);
            assert!(!raw.contains("domain"), "{raw}");
            assert!(!raw.contains("auth-int"), "{raw}");
            assert!(!raw.contains("sess"), "{raw}");
        }
        assert_eq!(parsed[0].nonce, parsed[1].nonce);
        assert_eq!(
            ch[1],
            format!(
                "Digest realm=\"{REALM}\", nonce=\"{}\", opaque=\"{}\", qop=\"auth\", \
                 algorithm=MD5",
                parsed[1].nonce,
                a.opaque()
            )
        );
        assert!(is_hex(a.opaque(), OPAQUE_LEN * 2), "{}", a.opaque());
        assert!(parsed.iter().all(|c| c.opaque == Some(a.opaque())));

        let stale = a.challenge(base, &mut r, true);
        assert!(stale.iter().all(|c| c.ends_with(", stale=true")));
        assert!(Challenge::parse(stale[0].as_bytes()).unwrap().stale);
        // Every challenge has a new nonce.
        assert_ne!(
            Challenge::parse(stale[0].as_bytes()).unwrap().nonce,
            parsed[0].nonce
        );
    }

    #[test]
    fn opaque_is_stateless_checked_when_returned_and_optional() {
        let base = origin();
        let now = base + Duration::from_secs(10);
        let mut a = auth(base);
        let mut r = rng();
        let opaque = a.opaque().to_owned();
        // The same on every challenge, on every worker with the same secret and realm;
        // another secret or realm gives another one.
        let first = a.challenge(now, &mut r, false);
        let second = a.challenge(now, &mut r, true);
        for c in first.iter().chain(&second) {
            assert_eq!(
                Challenge::parse(c.as_bytes()).unwrap().opaque,
                Some(&*opaque)
            );
        }
        assert_eq!(auth(base).opaque(), opaque);
        let other_secret = Authenticator::new(REALM.into(), None, [8; 32], LIFETIME, base);
        assert_ne!(other_secret.opaque(), opaque);
        let other_realm = Authenticator::new("x".into(), None, SECRET, LIFETIME, base);
        assert_ne!(other_realm.opaque(), opaque);

        // Returned unchanged: accepted, and again with the nextnonce.
        let n = nonce(&mut a, now, &mut r);
        let mut c = Client::new(&n);
        c.opaque = Some(opaque.clone());
        let AuthResult::Ok {
            authentication_info,
            ..
        } = verify(&mut a, now, &mut r, &c)
        else {
            panic!("opaque echoed");
        };
        let info = AuthInfo::parse(authentication_info.as_bytes()).unwrap();
        c.nonce = info.nextnonce.unwrap().to_owned();
        assert!(matches!(
            verify(&mut a, now, &mut r, &c),
            AuthResult::Ok { .. }
        ));
        // Another opaque: refused, though the digest is right.
        let n = nonce(&mut a, now, &mut r);
        let mut c = Client::new(&n);
        c.opaque = Some("5ccc069c403ebaf9f0171e9517f40e41".into());
        assert_eq!(
            failed(verify(&mut a, now, &mut r, &c)),
            AuthFailure::BadOpaque
        );
        c.opaque = Some(String::new());
        assert_eq!(
            failed(verify(&mut a, now, &mut r, &c)),
            AuthFailure::BadOpaque
        );
        // Left out: accepted (RFC 4976 §9.1 does not require it).
        c.opaque = None;
        assert!(matches!(
            verify(&mut a, now, &mut r, &c),
            AuthResult::Ok { .. }
        ));
    }

    #[test]
    fn realm_is_quoted_in_challenges() {
        let base = origin();
        let mut a = Authenticator::new("a \"b\" \\c".into(), None, SECRET, LIFETIME, base);
        let ch = a.challenge(base, &mut rng(), false);
        assert!(
            ch[0].starts_with("Digest realm=\"a \\\"b\\\" \\\\c\", "),
            "{}",
            ch[0]
        );
        let c = Challenge::parse(ch[0].as_bytes()).unwrap();
        assert_eq!(unescape(c.realm), "a \"b\" \\c");
    }

    #[test]
    fn md5_and_sha256_with_and_without_uri() {
        let base = origin();
        let now = base + Duration::from_secs(10);
        for alg in [None, Some("MD5"), Some("SHA-256"), Some("sha-256")] {
            for uri in [None, Some(URI), Some(TO_PATH_LAST)] {
                let mut a = auth(base);
                let mut r = rng();
                let n = nonce(&mut a, now, &mut r);
                let mut c = Client::new(&n);
                c.alg = alg;
                c.uri = uri;
                c.hash_uri = uri.unwrap_or(TO_PATH_LAST);
                let res = verify(&mut a, now, &mut r, &c);
                let AuthResult::Ok {
                    username,
                    authentication_info,
                } = res
                else {
                    panic!("{alg:?} {uri:?}: {res:?}");
                };
                assert_eq!(username, "alice");
                let info = AuthInfo::parse(authentication_info.as_bytes()).unwrap();
                let alg_name = match alg {
                    Some(a) if a.eq_ignore_ascii_case("SHA-256") => "SHA-256",
                    _ => "MD5",
                };
                let want = client_rspauth(alg_name, "secret", &n, 1, c.cnonce, c.hash_uri);
                assert_eq!(info.rspauth, Some(want.as_str()));
                assert_eq!(info.cnonce, Some("0a4f113b"));
                assert_eq!(info.nc, Some("00000001"));
                assert_eq!(info.qop, Some("auth"));
                let next = info.nextnonce.unwrap();
                assert_ne!(next, n);
                assert!(authentication_info.starts_with("nextnonce=\""));
                assert!(
                    authentication_info.ends_with("\", cnonce=\"0a4f113b\", nc=00000001, qop=auth")
                );

                // The nextnonce works, starting again at nc=1.
                let mut c2 = Client::new(next);
                c2.alg = alg;
                c2.uri = uri;
                c2.hash_uri = c.hash_uri;
                assert!(matches!(
                    verify(&mut a, now, &mut r, &c2),
                    AuthResult::Ok { .. }
                ));
            }
        }
    }

    #[test]
    fn uri_falls_back_to_the_rightmost_to_path_uri() {
        let base = origin();
        let mut a = auth(base);
        let mut r = rng();
        let n = nonce(&mut a, base, &mut r);
        // Sends a uri but hashed the To-Path URI.
        let mut c = Client::new(&n);
        c.uri = Some(URI);
        c.hash_uri = TO_PATH_LAST;
        let AuthResult::Ok {
            authentication_info,
            ..
        } = verify(&mut a, base, &mut r, &c)
        else {
            panic!("fallback refused");
        };
        let info = AuthInfo::parse(authentication_info.as_bytes()).unwrap();
        let want = client_rspauth("MD5", "secret", &n, 1, c.cnonce, TO_PATH_LAST);
        assert_eq!(info.rspauth, Some(want.as_str()));

        // Hashed over neither.
        let mut c = Client::new(&n);
        c.nc = 2;
        c.uri = Some(URI);
        c.hash_uri = "msrps://elsewhere.example.com;tcp";
        assert_eq!(
            failed(verify(&mut a, base, &mut r, &c)),
            AuthFailure::BadResponse
        );
    }

    #[test]
    fn wrong_password_unknown_user_wrong_realm() {
        let base = origin();
        let mut a = auth(base);
        let mut r = rng();
        let n = nonce(&mut a, base, &mut r);

        let mut c = Client::new(&n);
        c.password = "Secret";
        assert_eq!(
            failed(verify(&mut a, base, &mut r, &c)),
            AuthFailure::BadResponse
        );
        c.alg = Some("SHA-256");
        assert_eq!(
            failed(verify(&mut a, base, &mut r, &c)),
            AuthFailure::BadResponse
        );

        let mut c = Client::new(&n);
        c.user = "mallory";
        assert_eq!(
            failed(verify(&mut a, base, &mut r, &c)),
            AuthFailure::UnknownUser
        );
        // carol has no SHA-256 line. (Her own nonce: counts are per nonce, not per user.)
        let carols = nonce(&mut a, base, &mut r);
        let mut c = Client::new(&carols);
        c.user = "carol";
        c.password = "pw";
        c.alg = Some("SHA-256");
        assert_eq!(
            failed(verify(&mut a, base, &mut r, &c)),
            AuthFailure::UnknownUser
        );
        c.alg = Some("MD5");
        assert!(matches!(
            verify(&mut a, base, &mut r, &c),
            AuthResult::Ok { .. }
        ));

        let mut c = Client::new(&n);
        c.realm = "other.example.com";
        assert_eq!(
            failed(verify(&mut a, base, &mut r, &c)),
            AuthFailure::WrongRealm
        );

        // A failure does not use up the nonce-count: the right password still works.
        let c = Client::new(&n);
        assert!(matches!(
            verify(&mut a, base, &mut r, &c),
            AuthResult::Ok { .. }
        ));
    }

    #[test]
    fn escaped_username() {
        let base = origin();
        let mut a = auth(base);
        let mut r = rng();
        let n = nonce(&mut a, base, &mut r);
        let mut c = Client::new(&n);
        c.user = "al\\\"ice";
        c.password = "q";
        match verify(&mut a, base, &mut r, &c) {
            AuthResult::Ok { username, .. } => assert_eq!(username, "al\"ice"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn uppercase_response_hex_is_accepted() {
        let base = origin();
        let mut a = auth(base);
        let mut r = rng();
        let n = nonce(&mut a, base, &mut r);
        let c = Client::new(&n);
        let header = c.header();
        let resp = client_response("MD5", "alice", "secret", &n, 1, c.cnonce, TO_PATH_LAST);
        assert!(header.contains(&resp));
        let header = header.replace(&resp, &resp.to_uppercase());
        let creds = Credentials::parse(header.as_bytes()).unwrap();
        assert!(matches!(
            a.verify(base, &mut r, &creds, TO_PATH_LAST),
            AuthResult::Ok { .. }
        ));
    }

    #[test]
    fn foreign_and_malformed_nonces_are_refused() {
        let base = origin();
        let mut a = auth(base);
        let mut r = rng();
        let mut other = Authenticator::new(REALM.into(), Some(users()), [8; 32], LIFETIME, base);
        let foreign = nonce(&mut other, base, &mut r);
        let c = Client::new(&foreign);
        assert_eq!(
            failed(verify(&mut a, base, &mut r, &c)),
            AuthFailure::BadNonce
        );
        // Same secret, other realm: the tag covers the realm.
        let mut other = Authenticator::new("x".into(), None, SECRET, LIFETIME, base);
        let c = Client::new(&nonce(&mut other, base, &mut r));
        assert_eq!(
            failed(verify(&mut a, base, &mut r, &c)),
            AuthFailure::BadNonce
        );

        let good = nonce(&mut a, base, &mut r);
        let mut flipped = good.clone().into_bytes();
        flipped[30] = if flipped[30] == b'0' { b'1' } else { b'0' };
        let flipped = String::from_utf8(flipped).unwrap();
        let too_long = format!("{good}00");
        let non_ascii = format!("{}é", &good[..good.len() - 2]);
        for bad in [
            "",
            "dcd98b7102dd2f0e8b11d0f600bfb0c093",
            &good[..good.len() - 1],
            &too_long,
            &flipped,
            &non_ascii,
            &"zz".repeat(NONCE_LEN),
        ] {
            let c = Client::new(bad);
            assert_eq!(
                failed(verify(&mut a, base, &mut r, &c)),
                AuthFailure::BadNonce,
                "{bad:?}"
            );
        }
        // Another worker with the same secret and base accepts it.
        let mut b = auth(base);
        let c = Client::new(&good);
        assert!(matches!(
            verify(&mut b, base, &mut r, &c),
            AuthResult::Ok { .. }
        ));
    }

    #[test]
    fn expired_nonce_is_stale_only_with_a_good_digest() {
        let base = origin();
        let mut a = auth(base);
        let mut r = rng();
        let n = nonce(&mut a, base + Duration::from_secs(5), &mut r);
        let edge = base + Duration::from_secs(5) + LIFETIME;
        let late = edge + Duration::from_secs(1);

        let mut c = Client::new(&n);
        c.password = "wrong";
        assert_eq!(
            failed(verify(&mut a, late, &mut r, &c)),
            AuthFailure::BadResponse
        );
        let c = Client::new(&n);
        assert_eq!(verify(&mut a, late, &mut r, &c), AuthResult::Stale);
        // Still fresh at exactly the lifetime.
        assert!(matches!(
            verify(&mut a, edge, &mut r, &c),
            AuthResult::Ok { .. }
        ));
    }

    #[test]
    fn nonce_counts_must_increase() {
        let base = origin();
        let mut a = auth(base);
        let mut r = rng();
        let n = nonce(&mut a, base, &mut r);
        let mut c = Client::new(&n);
        assert!(matches!(
            verify(&mut a, base, &mut r, &c),
            AuthResult::Ok { .. }
        ));
        assert_eq!(
            failed(verify(&mut a, base, &mut r, &c)),
            AuthFailure::ReplayedNonceCount
        );
        c.nc = 2;
        assert!(matches!(
            verify(&mut a, base, &mut r, &c),
            AuthResult::Ok { .. }
        ));
        c.nc = 7;
        assert!(matches!(
            verify(&mut a, base, &mut r, &c),
            AuthResult::Ok { .. }
        ));
        for nc in [7, 3, 0] {
            c.nc = nc;
            assert_eq!(
                failed(verify(&mut a, base, &mut r, &c)),
                AuthFailure::ReplayedNonceCount,
                "nc={nc}"
            );
        }
        c.nc = 0xffff_ffff;
        assert!(matches!(
            verify(&mut a, base, &mut r, &c),
            AuthResult::Ok { .. }
        ));
        assert_eq!(
            failed(verify(&mut a, base, &mut r, &c)),
            AuthFailure::ReplayedNonceCount
        );

        // A fresh nonce starts at zero; nc=0 is never valid.
        let n2 = nonce(&mut a, base, &mut r);
        let mut c = Client::new(&n2);
        c.nc = 0;
        assert_eq!(
            failed(verify(&mut a, base, &mut r, &c)),
            AuthFailure::ReplayedNonceCount
        );
    }

    #[test]
    fn records_expire_and_the_cap_turns_evicted_nonces_stale() {
        let base = origin();
        let mut a = auth(base);
        let mut r = rng();
        let nonces: Vec<String> = (0..3)
            .map(|i| nonce(&mut a, base + Duration::from_secs(i), &mut r))
            .collect();
        let now = base + Duration::from_secs(3);
        for n in &nonces {
            assert!(matches!(
                verify(&mut a, now, &mut r, &Client::new(n)),
                AuthResult::Ok { .. }
            ));
        }
        assert_eq!(a.tracked_nonces(), 3);

        a.set_max_tracked_nonces(2);
        assert_eq!(a.tracked_nonces(), 2);
        // The oldest record is gone: its nonce is now stale rather than replayable.
        assert_eq!(
            verify(&mut a, now, &mut r, &Client::new(&nonces[0])),
            AuthResult::Stale
        );
        // The others still remember their count.
        assert_eq!(
            failed(verify(&mut a, now, &mut r, &Client::new(&nonces[2]))),
            AuthFailure::ReplayedNonceCount
        );
        // A new nonce pushes out the oldest remaining record.
        let n3 = nonce(&mut a, now, &mut r);
        assert!(matches!(
            verify(&mut a, now, &mut r, &Client::new(&n3)),
            AuthResult::Ok { .. }
        ));
        assert_eq!(a.tracked_nonces(), 2);
        assert_eq!(
            verify(&mut a, now, &mut r, &Client::new(&nonces[1])),
            AuthResult::Stale
        );

        // Once the nonces expire, their records go.
        let later = now + LIFETIME + Duration::from_secs(1);
        a.challenge(later, &mut r, false);
        assert_eq!(a.tracked_nonces(), 0);
    }

    #[test]
    fn unsupported_algorithm_and_qop() {
        let base = origin();
        let mut a = auth(base);
        let mut r = rng();
        let n = nonce(&mut a, base, &mut r);
        for alg in ["MD5-sess", "SHA-256-sess", "SHA-512-256", "md5-SESS"] {
            let mut c = Client::new(&n);
            c.alg = Some(alg);
            assert_eq!(
                failed(verify(&mut a, base, &mut r, &c)),
                AuthFailure::UnsupportedAlgorithm,
                "{alg}"
            );
        }

        let c = Client::new(&n);
        let with_int = c.header().replace("qop=auth", "qop=auth-int");
        let creds = Credentials::parse(with_int.as_bytes()).unwrap();
        assert_eq!(
            failed(a.verify(base, &mut r, &creds, TO_PATH_LAST)),
            AuthFailure::UnsupportedQop
        );

        // RFC 2069 style: no qop, cnonce or nc.
        let ha1 = h("MD5", &format!("alice:{REALM}:secret"));
        let ha2 = h("MD5", &format!("AUTH:{TO_PATH_LAST}"));
        let resp = h("MD5", &format!("{ha1}:{n}:{ha2}"));
        let old = format!(
            "Digest username=\"alice\", realm=\"{REALM}\", nonce=\"{n}\", response=\"{resp}\""
        );
        let creds = Credentials::parse(old.as_bytes()).unwrap();
        assert_eq!(
            failed(a.verify(base, &mut r, &creds, TO_PATH_LAST)),
            AuthFailure::MissingQop
        );
        let header = c.header();
        let mut creds = Credentials::parse(header.as_bytes()).unwrap();
        creds.cnonce = None;
        assert_eq!(
            failed(a.verify(base, &mut r, &creds, TO_PATH_LAST)),
            AuthFailure::MissingCnonce
        );
        let mut creds = Credentials::parse(header.as_bytes()).unwrap();
        creds.nc = None;
        assert_eq!(
            failed(a.verify(base, &mut r, &creds, TO_PATH_LAST)),
            AuthFailure::MissingNonceCount
        );
    }

    #[test]
    fn users_can_be_swapped() {
        let base = origin();
        let mut a = Authenticator::new(REALM.into(), None, SECRET, LIFETIME, base);
        let mut r = rng();
        let n = nonce(&mut a, base, &mut r);
        assert_eq!(
            failed(verify(&mut a, base, &mut r, &Client::new(&n))),
            AuthFailure::NoUsers
        );
        a.set_users(Some(users()));
        assert_eq!(a.users().map(|u| u.len()), Some(4));
        assert!(matches!(
            verify(&mut a, base, &mut r, &Client::new(&n)),
            AuthResult::Ok { .. }
        ));
        a.set_users(Some(Arc::new(Users::default())));
        let mut c = Client::new(&n);
        c.nc = 2;
        assert_eq!(
            failed(verify(&mut a, base, &mut r, &c)),
            AuthFailure::UnknownUser
        );
    }

    #[test]
    fn nonce_from_another_base_in_the_future_is_refused() {
        let base = origin();
        let mut later_base = auth(base + Duration::from_secs(100));
        let mut r = rng();
        // Issued 50 s after its own base, i.e. "second 50".
        let n = nonce(&mut later_base, base + Duration::from_secs(150), &mut r);
        let mut a = auth(base);
        // To `a`, it is only second 10: the nonce claims to come from the future.
        let now = base + Duration::from_secs(10);
        assert_eq!(
            failed(verify(&mut a, now, &mut r, &Client::new(&n))),
            AuthFailure::BadNonce
        );
    }

    #[test]
    fn algorithm_names() {
        assert_eq!(Algorithm::from_name("MD5"), Some(Algorithm::Md5));
        assert_eq!(Algorithm::from_name("sha-256"), Some(Algorithm::Sha256));
        assert_eq!(Algorithm::from_name("MD5-sess"), None);
        assert_eq!(Algorithm::from_name(""), None);
        assert_eq!(Algorithm::Sha256.to_string(), "SHA-256");
        assert_eq!(
            AuthFailure::ReplayedNonceCount.to_string(),
            "replayed nonce count"
        );
        // The fixed-block key is the same HMAC as keying with the 32-byte secret.
        let mut k = [0u8; 64];
        k[..32].copy_from_slice(&SECRET);
        let a = <Hmac<Sha256> as KeyInit>::new(&k.into());
        let b = <Hmac<Sha256> as Mac>::new_from_slice(&SECRET).unwrap();
        assert_eq!(
            a.chain_update(b"x").finalize().into_bytes(),
            b.chain_update(b"x").finalize().into_bytes()
        );
    }
}

#[cfg(test)]
mod prop {
    use super::*;
    use proptest::prelude::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    proptest! {
        /// No input makes `verify` panic, whatever the codec lets through.
        #[test]
        fn verify_never_panics(
            user in "[a-z\\\\\"é]{0,8}",
            nonce in "[0-9a-fA-F]{0,60}",
            uri in proptest::option::of("[ -~]{0,20}"),
            response in "[0-9a-fA-F]{1,80}",
            alg in proptest::option::of("[A-Za-z0-9-]{1,12}"),
            nc in any::<u32>(),
            last in "[ -~é]{0,40}",
            secs in 0u64..1_000_000,
        ) {
            let base = super::tests::origin();
            let creds = Credentials {
                username: &user,
                realm: "r",
                nonce: &nonce,
                uri: uri.as_deref(),
                response: &response,
                algorithm: alg.as_deref(),
                cnonce: Some("c"),
                qop: Some("auth"),
                nc: Some(nc),
                opaque: None,
            };
            let users = Users::parse(&format!("{user}:r:0123456789abcdef0123456789abcdef\n")).ok();
            let mut a = Authenticator::new("r".into(), users.map(Arc::new), [1; 32], Duration::from_secs(60), base);
            let mut rng = StdRng::seed_from_u64(secs);
            let now = base + Duration::from_secs(secs);
            let n = a.challenge(now, &mut rng, false);
            prop_assert_eq!(n.len(), 2);
            let _ = a.verify(now, &mut rng, &creds, &last);
        }

        /// Nor does any users file text make `Users::parse` panic.
        #[test]
        fn users_parse_never_panics(text in "[ -~é\\n\\r:#]{0,200}") {
            let _ = Users::parse(&text);
        }
    }
}
