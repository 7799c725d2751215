//! Plain data shared by the relay core and the server: connection ids, configuration,
//! the actions the core asks for, the messages that cross cores, and counters.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;

use crate::codec::Flag;

/// A connection anywhere in the process: the worker core that owns it, its slot in that
/// core's table, and the slot's generation (slots are reused; generations are not).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnId {
    pub core: u16,
    pub slot: u32,
    pub generation: u32,
}

/// Where a frame came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Origin {
    /// Received on a connection (possibly owned by another core).
    Conn(ConnId),
    /// Made by the relay core with this index (a REPORT). Internal frames are complete
    /// when made, so one key per core is enough.
    Internal(u16),
}

/// What kind of peer a connection leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnKind {
    /// Accepted from a client or a relay. `loopback` enables protected-mode AUTH;
    /// `secure` means the connection is TLS (its clients get `msrps:` URIs); `relay` is
    /// set when the peer presented a client certificate that verified against our roots
    /// (RFC 4976 §6.1: the peer is a relay, identified by its certificate).
    Inbound {
        loopback: bool,
        secure: bool,
        relay: Option<PeerIdentity>,
    },
    /// Opened by this relay to a next hop (`secure`: over TLS, for `msrps:` URIs).
    Outbound {
        host: String,
        port: u16,
        secure: bool,
    },
}

/// The identity of a peer that presented a verified certificate: tells whether a host
/// name (or address) is one its certificate's subjectAltName covers. Made by the I/O
/// layer, which knows certificates; the relay only asks.
#[derive(Clone)]
pub struct PeerIdentity(Arc<dyn Fn(&str) -> bool + Send + Sync>);

impl PeerIdentity {
    pub fn new(matches: impl Fn(&str) -> bool + Send + Sync + 'static) -> PeerIdentity {
        PeerIdentity(Arc::new(matches))
    }

    /// `true` when the certificate is valid for `host`.
    pub fn matches(&self, host: &str) -> bool {
        (self.0)(host)
    }
}

impl std::fmt::Debug for PeerIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PeerIdentity(..)")
    }
}

impl PartialEq for PeerIdentity {
    fn eq(&self, other: &PeerIdentity) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for PeerIdentity {}

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
        }
    }
}

/// Why the relay closes a connection (for the log line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The first To-Path URI was not ours (RFC 4976 §6.2).
    NotAddressedToUs,
    /// Too many failed AUTH requests (RFC 4976 §6.3).
    AuthFailures,
    /// No successful request during probation (RFC 4976 §6.1).
    Probation,
    /// No traffic for the idle timeout (RFC 4976 §6.5).
    Idle,
    /// A malformed frame that cannot be answered.
    Malformed,
    /// A non-SEND request body over the limit (RFC 4975 §7.1), answered with 413.
    BodyTooLarge,
}

/// Which part of a frame a write carries. A connection's writer never lets two frames
/// interleave: while a frame is being streamed to it (between its `Start` and `End`),
/// writes for any other frame are held and follow once it ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// A whole frame (responses, REPORTs made by the relay).
    Whole,
    /// The head of a frame streamed from this origin.
    Start(Origin),
    /// A body piece of that frame.
    Middle(Origin),
    /// Its end-line.
    End(Origin),
}

/// What the relay core asks the I/O layer to do.
#[derive(Debug)]
pub enum Action {
    /// Queue bytes on a connection of this core.
    Write {
        slot: u32,
        generation: u32,
        bytes: Bytes,
        part: Part,
    },
    /// Hand a message to another core.
    Mesh { core: u16, msg: MeshMsg },
    /// Close a connection of this core (after what is already queued).
    Close {
        slot: u32,
        generation: u32,
        reason: CloseReason,
    },
    /// Open the outbound connection that has been given `slot` (`secure`: with TLS,
    /// verifying the certificate against `host`).
    Connect {
        slot: u32,
        generation: u32,
        host: String,
        port: u16,
        secure: bool,
    },
}

/// A message between cores. Frames continue their routing on the core that owns the
/// session they address; bytes for a connection go to the core that owns it.
#[derive(Debug)]
pub enum MeshMsg {
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
    /// Bytes for a connection of the receiving core (responses, REPORTs).
    Write {
        conn: ConnId,
        bytes: Bytes,
        part: Part,
    },
}

/// Per-core counters, shared with the server for reporting.
#[derive(Debug, Default)]
pub struct Counters {
    pub connections_open: AtomicU64,
    pub connections_total: AtomicU64,
    pub frames_in: AtomicU64,
    pub frames_out: AtomicU64,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    pub auth_ok: AtomicU64,
    pub auth_failed: AtomicU64,
    pub deliveries_same_core: AtomicU64,
    pub deliveries_cross_core: AtomicU64,
    pub reports_sent: AtomicU64,
    pub txn_timeouts: AtomicU64,
    pub sessions: AtomicU64,
    pub transactions: AtomicU64,
    /// Connections refused at accept (total or per-address limit).
    pub connections_refused: AtomicU64,
    /// Connections closed because their write queue passed the hard cap.
    pub queue_overflows: AtomicU64,
    /// Connections closed because a header block took too long to arrive.
    pub head_timeouts: AtomicU64,
    /// Connections closed because the body of their frame stopped arriving.
    pub body_timeouts: AtomicU64,
}

/// A point-in-time copy of [`Counters`], summed over cores with `+`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CounterSnapshot {
    pub connections_open: u64,
    pub connections_total: u64,
    pub frames_in: u64,
    pub frames_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub auth_ok: u64,
    pub auth_failed: u64,
    pub deliveries_same_core: u64,
    pub deliveries_cross_core: u64,
    pub reports_sent: u64,
    pub txn_timeouts: u64,
    pub sessions: u64,
    pub transactions: u64,
    pub connections_refused: u64,
    pub queue_overflows: u64,
    pub head_timeouts: u64,
    pub body_timeouts: u64,
}

macro_rules! counter_fields {
    ($m:ident) => {
        $m!(
            connections_open,
            connections_total,
            frames_in,
            frames_out,
            bytes_in,
            bytes_out,
            auth_ok,
            auth_failed,
            deliveries_same_core,
            deliveries_cross_core,
            reports_sent,
            txn_timeouts,
            sessions,
            transactions,
            connections_refused,
            queue_overflows,
            head_timeouts,
            body_timeouts
        )
    };
}

/// Adds `n` to a counter (relaxed: counters are statistics, not synchronisation).
pub fn bump(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

/// Subtracts `n` from a gauge-like counter.
pub fn drop_by(c: &AtomicU64, n: u64) {
    c.fetch_sub(n, Ordering::Relaxed);
}

impl Counters {
    pub fn snapshot(&self) -> CounterSnapshot {
        macro_rules! snap {
            ($($f:ident),*) => {
                CounterSnapshot { $($f: self.$f.load(Ordering::Relaxed)),* }
            };
        }
        counter_fields!(snap)
    }
}

impl core::ops::Add for CounterSnapshot {
    type Output = CounterSnapshot;
    fn add(self, o: CounterSnapshot) -> CounterSnapshot {
        macro_rules! sum {
            ($($f:ident),*) => {
                CounterSnapshot { $($f: self.$f + o.$f),* }
            };
        }
        counter_fields!(sum)
    }
}

/// Shared handle to one core's counters.
pub type SharedCounters = Arc<Counters>;
