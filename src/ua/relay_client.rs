//! The client side of MSRP relay AUTH (RFC 4976 §5.1, §7, §9.1): a sans-I/O state
//! machine that gets the user agent a Use-Path from a relay and keeps it valid.
//!
//! The caller owns the connection to the relay. It calls [`RelayClient::start`], writes
//! every frame [`RelayClient::poll_transmit`] gives on that connection, feeds each
//! response read from it to [`RelayClient::handle_response`], calls
//! [`RelayClient::handle_timeout`] when [`RelayClient::poll_timeout`] is reached, and
//! drains [`RelayClient::poll_event`]. Nothing here reads a clock or touches a socket:
//! time comes in as `now`, randomness (transaction ids, cnonces) from the caller's
//! [`RngCore`].
//!
//! The flow (RFC 4976 §5.1):
//! - `AUTH` with To-Path the relay URI and From-Path ours, no credentials: the relay
//!   answers 401 with one or more WWW-Authenticate challenges.
//! - The first challenge we support (MD5 or SHA-256, `qop` offering `auth`; RFC 4976
//!   §9.1, RFC 7616 §3.7: the relay lists them in its order of preference) is answered
//!   once, with `qop=auth`, `nc` and a fresh `cnonce` (RFC 4976 §9.1). The digest-uri
//!   is the rightmost To-Path URI, the relay URI (RFC 4976 §9.1); it is also sent as
//!   the `uri` parameter, quoted (RFC 4976 §9.1 note on RFC 2617's BNF).
//! - A 200 carries Use-Path (kept: the URIs the user agent puts before its own in its
//!   `a=path`, reversed, RFC 4976 §5.1) and Expires (RFC 4976 §4.6, §6.3). Its
//!   Authentication-Info `rspauth` is checked (RFC 2617 §3.2.3: the relay proves it
//!   knows the password too) and its `nextnonce` kept for the next AUTH.
//! - A refresh AUTH goes out at 80% of the granted time, with credentials for the
//!   `nextnonce` (or the last nonce, `nc` + 1) so that no 401 round is needed; a relay
//!   that challenges it anyway is answered once more.
//! - 423 (RFC 4976 §5.1, §6.3, §10.3) is retried with the Min-Expires (or Max-Expires)
//!   it names; 401 after our answer (unless `stale=true`, RFC 2617 §3.2.1), 403 and any
//!   other status fail, and so does no response within 30 s (RFC 4975 §7.1.1: treated
//!   as a 408).
//!
//! One relay hop: To-Path is the single relay URI. (RFC 4976 §5.1's AUTH through an
//! inner relay to an outer one would prefix the inner Use-Path; not done here.)

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use rand::RngCore;

use crate::codec::header::unescape;
use crate::codec::{Challenge, Flag, Head, HeaderKind, encode};
use crate::sip::auth::{Algorithm, request_digest};

/// How long an AUTH waits for its response (RFC 4975 §7.1.1: 30 s, then as a 408).
pub const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(30);

/// The refresh goes out at `REFRESH_PERCENT` of the granted time.
pub const REFRESH_PERCENT: u32 = 80;

/// The earliest a refresh goes out after a grant, however short the grant.
const MIN_REFRESH_DELAY: Duration = Duration::from_secs(1);

/// `stale=true` challenges answered in one round before giving up (RFC 2617 §3.2.1: a
/// stale nonce is not a failure, but a relay that keeps saying so is broken).
const MAX_STALE_RETRIES: u8 = 2;

/// 423 answers retried in one round.
const MAX_INTERVAL_RETRIES: u8 = 2;

/// What the client needs to know about the relay and itself.
#[derive(Clone)]
pub struct Config {
    /// The relay's URI (`msrp://` or `msrps://`), the AUTH's To-Path and digest-uri.
    pub relay_uri: String,
    /// Our own URI, the AUTH's From-Path.
    pub our_uri: String,
    /// Digest user name and password (RFC 2617 §3.2.2).
    pub username: String,
    pub password: String,
    /// The Expires to ask for (RFC 4976 §5.1: "valid for no longer than"); `None`: the
    /// relay's default.
    pub expires: Option<u32>,
    /// Answer only challenges of this algorithm; `None`: the first MD5 or SHA-256
    /// challenge, in the relay's order (RFC 7616 §3.7).
    pub algorithm: Option<Algorithm>,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("relay_uri", &self.relay_uri)
            .field("our_uri", &self.our_uri)
            .field("username", &self.username)
            .field("expires", &self.expires)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

/// Where the client stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Not started, or the connection was lost ([`RelayClient::handle_closed`]).
    Idle,
    /// An AUTH is under way and no Use-Path is valid.
    Authenticating,
    /// The relay granted `use_path` until `expires_at` (`None`: the 200 had no
    /// Expires). A refresh may be in flight ([`RelayClient::is_refreshing`]).
    Ready {
        use_path: Vec<String>,
        expires_at: Option<Instant>,
    },
    /// Gave up: `status` is the relay's last status (408 for a timeout, RFC 4975
    /// §7.1.1), `reason` says why.
    Failed { status: u16, reason: String },
}

/// What the caller hears about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelayEvent {
    /// A Use-Path is valid (first grant, or again after [`RelayEvent::Expired`]).
    Ready {
        use_path: Vec<String>,
        expires: Option<Duration>,
    },
    /// A refresh succeeded; `use_path` is the relay's (usually the same URIs).
    Refreshed {
        use_path: Vec<String>,
        expires: Option<Duration>,
    },
    /// The granted time ran out while a refresh was still unanswered: the Use-Path is
    /// no longer valid (RFC 4976 §6.3); the refresh goes on.
    Expired,
    /// Gave up (see [`State::Failed`]). A new [`RelayClient::start`] tries again.
    Failed { status: u16, reason: String },
}

/// The digest state of the relay's protection space: the challenge being answered.
#[derive(Debug, Clone)]
struct Digest {
    algorithm: Algorithm,
    /// `realm`, `nonce` and `opaque` as written (escapes kept, echoed back verbatim).
    realm: String,
    nonce: String,
    opaque: Option<String>,
    /// The last nonce-count used with `nonce` (RFC 2617 §3.2.2).
    nc: u32,
}

/// What an AUTH in flight sent, to match its response and check `rspauth`.
#[derive(Debug)]
struct Txn {
    tid: String,
    deadline: Instant,
    /// `(nc, cnonce)` of the Authorization it carried, under `Digest`'s nonce.
    credentials: Option<(String, String)>,
}

/// Counters of one round: from a start or refresh to its 200 or failure.
#[derive(Debug, Default, Clone, Copy)]
struct Round {
    /// A 401 has been answered in this round.
    answered_401: bool,
    stale_retries: u8,
    interval_retries: u8,
}

/// RFC 4976 AUTH as a client, for one relay over one connection.
pub struct RelayClient<R> {
    cfg: Config,
    rng: R,
    state: State,
    /// The Expires asked for (the config's, or what a 423 said).
    expires: Option<u32>,
    digest: Option<Digest>,
    txn: Option<Txn>,
    round: Round,
    /// When the next refresh goes out (only while Ready with nothing in flight).
    refresh_at: Option<Instant>,
    transmit: VecDeque<Bytes>,
    events: VecDeque<RelayEvent>,
}

impl<R> fmt::Debug for RelayClient<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RelayClient")
            .field("cfg", &self.cfg)
            .field("state", &self.state)
            .field("expires", &self.expires)
            .field("txn", &self.txn.as_ref().map(|t| &t.tid))
            .field("refresh_at", &self.refresh_at)
            .finish_non_exhaustive()
    }
}

/// `"` and `\` escaped inside a quoted-string (RFC 2616 §2.2).
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Whether a qop-options list (`auth,auth-int`) offers `auth` (RFC 4976 §9.1).
fn offers_auth(qop: &str) -> bool {
    qop.split(',')
        .any(|q| q.trim().eq_ignore_ascii_case("auth"))
}

impl<R: RngCore> RelayClient<R> {
    /// A client that has not started ([`State::Idle`]).
    pub fn new(cfg: Config, rng: R) -> RelayClient<R> {
        let expires = cfg.expires;
        RelayClient {
            cfg,
            rng,
            state: State::Idle,
            expires,
            digest: None,
            txn: None,
            round: Round::default(),
            refresh_at: None,
            transmit: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    /// Sends the first AUTH (RFC 4976 §5.1), from [`State::Idle`] or
    /// [`State::Failed`]; does nothing while authenticating or ready.
    pub fn start(&mut self, now: Instant) {
        if matches!(self.state, State::Authenticating | State::Ready { .. }) {
            return;
        }
        self.state = State::Authenticating;
        self.expires = self.cfg.expires;
        self.digest = None;
        self.round = Round::default();
        self.refresh_at = None;
        self.send_auth(now);
    }

    /// The next whole frame to write on the relay connection.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        self.transmit.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<RelayEvent> {
        self.events.pop_front()
    }

    /// The Use-Path granted, while it is valid (RFC 4976 §5.1).
    pub fn use_path(&self) -> Option<&[String]> {
        match &self.state {
            State::Ready { use_path, .. } => Some(use_path),
            _ => None,
        }
    }

    /// Our `a=path` for the SDP while ready: the Use-Path reversed, then our own URI
    /// (RFC 4976 §5.1).
    pub fn sdp_path(&self) -> Option<Vec<String>> {
        let up = self.use_path()?;
        let mut p: Vec<String> = up.iter().rev().cloned().collect();
        p.push(self.cfg.our_uri.clone());
        Some(p)
    }

    /// Whether a refresh AUTH is in flight while the Use-Path is still valid.
    pub fn is_refreshing(&self) -> bool {
        matches!(self.state, State::Ready { .. }) && self.txn.is_some()
    }

    /// The next instant [`RelayClient::handle_timeout`] wants to run: the transaction
    /// timeout, the refresh, or the end of the grant while a refresh is in flight.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let expiry = match (&self.state, &self.txn) {
            (State::Ready { expires_at, .. }, Some(_)) => *expires_at,
            _ => None,
        };
        [self.txn.as_ref().map(|t| t.deadline), self.refresh_at, expiry]
            .into_iter()
            .flatten()
            .min()
    }

    /// Runs whatever is due at `now`: an expired grant, a transaction timeout, a refresh.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let (State::Ready { expires_at, .. }, Some(_)) = (&self.state, &self.txn) {
            if expires_at.is_some_and(|e| e <= now) {
                self.state = State::Authenticating;
                self.events.push_back(RelayEvent::Expired);
            }
        }
        if self.txn.as_ref().is_some_and(|t| t.deadline <= now) {
            self.fail(408, "no response to AUTH within 30 s (RFC 4975 §7.1.1)");
            return;
        }
        if self.refresh_at.is_some_and(|r| r <= now) {
            self.refresh_at = None;
            self.round = Round::default();
            self.send_auth(now);
        }
    }

    /// The relay connection is gone: whatever it granted is invalid (RFC 4976 §6.3),
    /// frames not yet written are dropped, and a new [`RelayClient::start`] (on a new
    /// connection) is needed.
    pub fn handle_closed(&mut self, _now: Instant) {
        self.state = State::Idle;
        self.txn = None;
        self.digest = None;
        self.refresh_at = None;
        self.round = Round::default();
        self.transmit.clear();
    }

    /// A response read from the relay connection. `true` if it answers our AUTH in
    /// flight (matched by transaction id, RFC 4975 §7.1.1); `false` leaves it to
    /// others.
    pub fn handle_response(&mut self, now: Instant, head: &Head<'_>) -> bool {
        let Some(code) = head.status_code() else {
            return false;
        };
        if self.txn.as_ref().is_none_or(|t| t.tid != head.tid()) {
            return false;
        }
        let Some(txn) = self.txn.take() else {
            return false;
        };
        match code {
            200 => self.on_ok(now, head, txn),
            401 => self.on_challenge(now, head),
            423 => self.on_interval(now, head),
            _ => {
                let reason = match head.start_line() {
                    crate::codec::StartLine::Response {
                        comment: Some(c), ..
                    } => c.to_string(),
                    _ => encode::reason(code).to_string(),
                };
                self.fail(code, &reason);
            }
        }
        true
    }

    /// 200: Use-Path, Expires, Authentication-Info (RFC 4976 §5.1, §9.1).
    fn on_ok(&mut self, now: Instant, head: &Head<'_>, txn: Txn) {
        let use_path: Vec<String> = head
            .use_path()
            .map(|p| p.iter().map(str::to_string).collect())
            .unwrap_or_default();
        if use_path.is_empty() {
            self.fail(200, "200 to AUTH without Use-Path (RFC 4976 §6.3)");
            return;
        }
        match head.authentication_info() {
            Some(Ok(ai)) => {
                if let (Some(rspauth), Some(d), Some((nc, cnonce))) =
                    (ai.rspauth, &self.digest, &txn.credentials)
                {
                    // RFC 2617 §3.2.3: as the request digest, with A2 = ":" digest-uri.
                    let want = self.digest_of(d, "", nc, cnonce);
                    if !want.eq_ignore_ascii_case(rspauth) {
                        self.fail(200, "relay's rspauth does not match (RFC 2617 §3.2.3)");
                        return;
                    }
                }
                if let (Some(next), Some(d)) = (ai.nextnonce, self.digest.as_mut()) {
                    d.nonce = next.to_string();
                    d.nc = 0;
                }
            }
            Some(Err(_)) => {
                self.fail(200, "malformed Authentication-Info");
                return;
            }
            None => {}
        }
        let expires = head.expires().map(|s| Duration::from_secs(u64::from(s)));
        let expires_at = expires.map(|e| now + e);
        self.refresh_at = expires.map(|e| {
            let at = e * REFRESH_PERCENT / 100;
            now + at.max(MIN_REFRESH_DELAY)
        });
        let was_ready = matches!(self.state, State::Ready { .. });
        self.state = State::Ready {
            use_path: use_path.clone(),
            expires_at,
        };
        self.round = Round::default();
        self.events.push_back(if was_ready {
            RelayEvent::Refreshed { use_path, expires }
        } else {
            RelayEvent::Ready { use_path, expires }
        });
    }

    /// 401: answer the first challenge we support, once per round (RFC 4976 §5.1);
    /// again only when the relay says our nonce was merely stale (RFC 2617 §3.2.1).
    fn on_challenge(&mut self, now: Instant, head: &Head<'_>) {
        let mut picked: Option<(Challenge<'_>, Algorithm)> = None;
        for h in head.headers() {
            if h.kind != HeaderKind::WwwAuthenticate {
                continue;
            }
            let Ok(c) = Challenge::parse(h.value) else {
                continue;
            };
            let Some(alg) = Algorithm::from_param(c.algorithm.map(|a| a.trim_matches('"')))
            else {
                continue;
            };
            if self.cfg.algorithm.is_some_and(|want| want != alg) {
                continue;
            }
            if !c.qop.is_some_and(offers_auth) {
                continue;
            }
            picked = Some((c, alg));
            break;
        }
        let Some((c, algorithm)) = picked else {
            self.fail(401, "no supported digest challenge (MD5 or SHA-256, qop=auth)");
            return;
        };
        if self.round.answered_401 {
            if !c.stale || self.round.stale_retries >= MAX_STALE_RETRIES {
                self.fail(401, "credentials refused");
                return;
            }
            self.round.stale_retries += 1;
        }
        self.round.answered_401 = true;
        self.digest = Some(Digest {
            algorithm,
            realm: c.realm.to_string(),
            nonce: c.nonce.to_string(),
            opaque: c.opaque.map(str::to_string),
            nc: 0,
        });
        self.send_auth(now);
    }

    /// 423: ask again with the bound the relay gave (RFC 4976 §5.1, §6.3).
    fn on_interval(&mut self, now: Instant, head: &Head<'_>) {
        if self.round.interval_retries >= MAX_INTERVAL_RETRIES {
            self.fail(423, "relay refused every Expires asked for");
            return;
        }
        let Some(e) = head.min_expires().or(head.max_expires()) else {
            self.fail(423, "423 without Min-Expires or Max-Expires");
            return;
        };
        self.round.interval_retries += 1;
        self.expires = Some(e);
        self.send_auth(now);
    }

    fn fail(&mut self, status: u16, reason: &str) {
        self.state = State::Failed {
            status,
            reason: reason.to_string(),
        };
        self.txn = None;
        self.refresh_at = None;
        self.digest = None;
        self.events.push_back(RelayEvent::Failed {
            status,
            reason: reason.to_string(),
        });
    }

    /// The request digest for `method` (`""` gives rspauth's A2 of ":" digest-uri,
    /// RFC 2617 §3.2.3) over the relay URI, the rightmost To-Path URI (RFC 4976 §9.1).
    fn digest_of(&self, d: &Digest, method: &str, nc: &str, cnonce: &str) -> String {
        request_digest(
            d.algorithm,
            &self.cfg.username,
            &unescape(&d.realm),
            &self.cfg.password,
            method,
            &self.cfg.relay_uri,
            &unescape(&d.nonce),
            Some((nc, cnonce)),
        )
    }

    /// Writes an AUTH (RFC 4976 §5.1): To-Path the relay, From-Path us, Expires if
    /// asked for, and credentials for the current nonce if we have one (next `nc`,
    /// fresh `cnonce`, RFC 4976 §9.1).
    fn send_auth(&mut self, now: Instant) {
        let tid = format!("{:016x}", self.rng.next_u64());
        let mut credentials = None;
        let mut authorization = None;
        if let Some(mut d) = self.digest.take() {
            d.nc = d.nc.wrapping_add(1).max(1);
            let nc = format!("{:08x}", d.nc);
            let cnonce = format!("{:016x}", self.rng.next_u64());
            let response = self.digest_of(&d, "AUTH", &nc, &cnonce);
            let mut v = format!(
                "Digest username={}, realm=\"{}\", nonce=\"{}\", uri={}, response=\"{response}\", \
                 algorithm={}, cnonce=\"{cnonce}\", nc={nc}, qop=auth",
                quote(&self.cfg.username),
                d.realm,
                d.nonce,
                quote(&self.cfg.relay_uri),
                d.algorithm.name(),
            );
            if let Some(o) = &d.opaque {
                v.push_str(&format!(", opaque=\"{o}\""));
            }
            authorization = Some(v);
            credentials = Some((nc, cnonce));
            self.digest = Some(d);
        }
        let expires = self.expires.map(|e| e.to_string());
        let mut headers: Vec<(&str, &[u8])> = Vec::with_capacity(2);
        if let Some(e) = &expires {
            headers.push(("Expires", e.as_bytes()));
        }
        if let Some(a) = &authorization {
            headers.push(("Authorization", a.as_bytes()));
        }
        let mut buf = BytesMut::with_capacity(256 + authorization.as_ref().map_or(0, String::len));
        encode::request(
            &mut buf,
            &tid,
            "AUTH",
            &self.cfg.relay_uri,
            &self.cfg.our_uri,
            &headers,
            None,
            Flag::Complete,
        );
        self.transmit.push_back(buf.freeze());
        self.txn = Some(Txn {
            tid,
            deadline: now + TRANSACTION_TIMEOUT,
            credentials,
        });
    }
}
