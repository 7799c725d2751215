//! The relay's own plain data: its configuration and the messages its instances on
//! different cores send each other. What every engine shares lives in [`crate::conn`].

use std::time::Duration;

use bytes::Bytes;

use core::net::SocketAddr;

use super::auth::AuthFailure;
use crate::codec::Flag;
use crate::conn::{CloseReason, Origin};

/// Relay policy and limits. One copy per worker core.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// This worker's core index (0-based) and the number of workers.
    pub core: u16,
    pub cores: u16,
    /// Host names or addresses that mean "this relay" in a URI. The first one is used in
    /// the URIs the relay makes (Use-Path, From-Path of its REPORTs).
    pub hosts: Vec<String>,
    /// Ports this relay listens on; the first is advertised.
    pub ports: Vec<u16>,
    /// Ports this relay listens on with TLS (`msrps:` URIs); the first is advertised
    /// to clients that AUTH over TLS. Empty: no `msrps:` URI is ours.
    pub tls_ports: Vec<u16>,
    /// Digest realm.
    pub realm: String,
    /// AUTH Expires default, minimum and maximum in seconds (RFC 4976 §6.3).
    pub expires_default: u32,
    pub expires_min: u32,
    pub expires_max: u32,
    /// Failure-Report timer (RFC 4976 §6.4.1: 30 s).
    pub txn_timeout: Duration,
    /// A connection must make a successful request within this time (RFC 4976 §6.1).
    pub probation: Duration,
    /// Connections without traffic for this long are closed (RFC 4976 §6.5).
    pub idle_timeout: Duration,
    /// Failed AUTHs tolerated on one connection before it is closed.
    pub max_auth_failures: u32,
    /// Refuse methods other than SEND, REPORT, AUTH and NICKNAME with 501 (§6.4.2).
    pub block_unknown_methods: bool,
    /// Nonce lifetime for digest challenges.
    pub nonce_lifetime: Duration,
    /// Most URIs accepted in a To-Path or From-Path (at most the codec's
    /// `MAX_PATH_URIS`); longer paths get 400. A From-Path must leave room for our URI.
    pub max_path_uris: usize,
    /// Body cap of a non-SEND request (RFC 4975 §7.1: at most 10240); the scanner
    /// enforces it, the relay names it in its 413.
    pub max_non_send_body: u64,
}

impl RelayConfig {
    /// Defaults for a relay reachable as `host:port`.
    pub fn new(host: &str, port: u16) -> RelayConfig {
        RelayConfig {
            core: 0,
            cores: 1,
            hosts: vec![host.to_string()],
            ports: vec![port],
            tls_ports: Vec::new(),
            realm: host.to_string(),
            expires_default: 600,
            expires_min: 60,
            expires_max: 3600,
            txn_timeout: Duration::from_secs(30),
            probation: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(3600),
            max_auth_failures: 3,
            block_unknown_methods: false,
            nonce_lifetime: Duration::from_secs(30),
            max_path_uris: crate::codec::header::MAX_PATH_URIS,
            max_non_send_body: 10240,
        }
    }
}

/// A message between the relay instances of two cores (wrapped by the server in its
/// engine-neutral envelope). Frames continue their routing on the core that owns the
/// session they address; bytes for a connection go through the server, not through this.
#[derive(Debug)]
pub enum RelayMsg {
    /// A request for a session of the receiving core, parsed, checked and rewritten for
    /// the next hop on the core it came in on: the owner checks the session and passes
    /// it on, or refuses it, without parsing it again.
    Handoff(Box<super::engine::Handoff>),
    /// A body piece of the frame from `origin`.
    Body { origin: Origin, bytes: Bytes },
    /// The end of the frame from `origin`.
    End { origin: Origin, flag: Flag },
    /// The origin connection closed in the middle of its frame.
    Abort { origin: Origin },
}

impl RelayMsg {
    /// Bytes this message will queue on a connection of the receiving core (counted
    /// while it is between cores, for backpressure).
    pub fn payload_len(&self) -> usize {
        match self {
            RelayMsg::Handoff(h) => h.payload_len(),
            RelayMsg::Body { bytes, .. } => bytes.len(),
            RelayMsg::End { .. } | RelayMsg::Abort { .. } => 0,
        }
    }
}

/// Something the control plane may want to hear of (`relay.auth`, `relay.session.end`),
/// drained with [`crate::relay::Relay::poll_event`]. Plain data without a time: the
/// server stamps and formats it, off the data path where it can.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelayEvent {
    /// An AUTH was decided: granted (`code` 200), or refused with `code`: 400 (bad
    /// Authorization), 401 (a digest that failed, answered with a fresh challenge while
    /// tries are left) or 403 (protected mode, or the last allowed failure). A 401 to an
    /// AUTH without credentials or with a stale nonce only challenges: no event.
    Auth {
        core: u16,
        peer: Option<SocketAddr>,
        /// The user the AUTH named or proved, when it named one.
        user: Option<String>,
        code: u16,
        /// Why it was refused (`None` when granted).
        reason: Option<AuthRefusal>,
        /// The session id handed out in Use-Path, when granted.
        session: Option<String>,
    },
    /// A session ended.
    SessionEnd {
        core: u16,
        session: String,
        user: String,
        peer: Option<SocketAddr>,
        reason: SessionEndReason,
    },
}

/// Why an AUTH was refused, for [`RelayEvent::Auth`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthRefusal {
    /// Protected mode (no users file) and the client is not on loopback.
    ProtectedMode,
    /// The Authorization header does not parse.
    BadAuthorization,
    /// The credentials did not verify.
    Credentials(AuthFailure),
}

impl AuthRefusal {
    /// A short `snake_case` token.
    pub fn name(self) -> &'static str {
        match self {
            AuthRefusal::ProtectedMode => "protected_mode",
            AuthRefusal::BadAuthorization => "bad_authorization",
            AuthRefusal::Credentials(f) => match f {
                AuthFailure::UnsupportedAlgorithm => "unsupported_algorithm",
                AuthFailure::WrongRealm => "wrong_realm",
                AuthFailure::MissingQop => "missing_qop",
                AuthFailure::UnsupportedQop => "unsupported_qop",
                AuthFailure::MissingCnonce => "missing_cnonce",
                AuthFailure::MissingNonceCount => "missing_nonce_count",
                AuthFailure::BadNonce => "bad_nonce",
                AuthFailure::NoUsers => "no_users",
                AuthFailure::UnknownUser => "unknown_user",
                AuthFailure::BadResponse => "bad_response",
                AuthFailure::BadOpaque => "bad_opaque",
                AuthFailure::ReplayedNonceCount => "replayed_nonce_count",
            },
        }
    }
}

/// Why a session ended, for [`RelayEvent::SessionEnd`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionEndReason {
    /// Its Expires ran out without a new AUTH (RFC 4976 §6.3).
    Expired,
    /// An operator ended it (the control plane's `end_session`).
    Admin,
    /// Its connection closed, for this reason of the relay's.
    Closed(CloseReason),
    /// Its connection closed for a reason the relay did not decide (the peer closed it,
    /// or the server did: a timeout, a full queue, shutdown).
    ConnectionClosed,
}

impl SessionEndReason {
    /// A short `snake_case` token.
    pub fn name(self) -> &'static str {
        match self {
            SessionEndReason::Expired => "expired",
            SessionEndReason::Admin => "admin",
            SessionEndReason::Closed(r) => r.name(),
            SessionEndReason::ConnectionClosed => "connection_closed",
        }
    }
}
