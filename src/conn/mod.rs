//! The boundary between the server and its engines: what every engine and the I/O layer
//! share, and nothing that belongs to one of them.
//!
//! - [`ConnId`]: a connection anywhere in the process. Ids are made by the server's
//!   connection map ([`Slots`]); an engine is told of a new connection with its id and
//!   [`ConnKind`] and never allocates one.
//! - [`ConnKind`] and [`Transport`]: which way a connection was made, over what, and who
//!   is on the other end.
//! - [`Action`]: what an engine asks the server to do (write, close, connect, hand a
//!   message to another core). Engines drain their actions with `poll_action()`, take
//!   input with `handle_*(now, ..)` and say when they next need the clock with
//!   `poll_timeout()` (the quinn-proto shape), so each is testable with a virtual clock.
//! - [`CloseReason`] and [`Side`]: why a connection closes and whose fault it was.
//! - [`Counters`]: per-core statistics, readable from any thread.
//! - [`queue`]: the per-connection send queue, the one place that decides what goes out
//!   on a connection next (RFC 4975 §7.1.1 interruption and fairness).
//!
//! Like the codec and the engines, this module does no I/O and reads no clock; a peer's
//! address is plain data here.

pub mod queue;

use core::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;

pub use queue::{QueueEvent, Resumable, SendQueue};

/// The MSRP port when a URI names none (RFC 4975 §15.5 registers 2855 for `msrp:` and
/// `msrps:` alike).
pub const MSRP_PORT: u16 = 2855;

/// A connection anywhere in the process: the worker core that owns it, its slot in that
/// core's table, and the slot's generation (slots are reused; generations are not).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnId {
    pub core: u16,
    pub slot: u32,
    pub generation: u32,
}

/// Hands out connection ids for one core: a slot (reused once freed) and a generation
/// (never reused while it could still be in flight), so a stale id never matches the
/// connection that took its slot later.
#[derive(Debug)]
pub struct Slots {
    core: u16,
    free: Vec<u32>,
    next_slot: u32,
    next_generation: u32,
    capacity: u32,
}

impl Slots {
    /// Ids for `core`, at most `capacity` connections open at once.
    pub fn new(core: u16, capacity: usize) -> Slots {
        Slots {
            core,
            free: Vec::new(),
            next_slot: 0,
            next_generation: 1,
            capacity: u32::try_from(capacity).unwrap_or(u32::MAX),
        }
    }

    /// A fresh id, or `None` when every slot is taken.
    pub fn alloc(&mut self) -> Option<ConnId> {
        let slot = match self.free.pop() {
            Some(s) => s,
            None if self.next_slot < self.capacity => {
                self.next_slot += 1;
                self.next_slot - 1
            }
            None => return None,
        };
        let generation = self.next_generation;
        self.next_generation = self.next_generation.wrapping_add(1).max(1);
        Some(ConnId {
            core: self.core,
            slot,
            generation,
        })
    }

    /// Gives `id`'s slot back. Call once per id.
    pub fn release(&mut self, id: ConnId) {
        debug_assert_eq!(id.core, self.core);
        self.free.push(id.slot);
    }
}

/// What carries a connection's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Tcp,
    Tls,
    /// MSRP over WebSocket (RFC 7977), later.
    Ws,
    /// MSRP over secure WebSocket (RFC 7977), later.
    Wss,
}

impl Transport {
    /// `true` for the transports whose clients get `msrps:` URIs.
    pub fn is_secure(self) -> bool {
        matches!(self, Transport::Tls | Transport::Wss)
    }

    pub fn name(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
            Transport::Ws => "ws",
            Transport::Wss => "wss",
        }
    }
}

/// Which way a connection was made and who is on the other end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnKind {
    /// Accepted from `peer`. `relay` is set when the peer presented a client certificate
    /// that verified against our roots (RFC 4976 §6.1: the peer is a relay, identified by
    /// its certificate).
    Inbound {
        peer: SocketAddr,
        transport: Transport,
        relay: Option<PeerIdentity>,
    },
    /// Opened by this server to `host:port` (a next hop).
    Outbound {
        host: String,
        port: u16,
        transport: Transport,
    },
}

impl ConnKind {
    /// An accepted plain TCP connection from `peer`.
    pub fn tcp_from(peer: SocketAddr) -> ConnKind {
        ConnKind::Inbound {
            peer,
            transport: Transport::Tcp,
            relay: None,
        }
    }

    pub fn transport(&self) -> Transport {
        match self {
            ConnKind::Inbound { transport, .. } | ConnKind::Outbound { transport, .. } => {
                *transport
            }
        }
    }

    /// The address of an accepted connection's peer.
    pub fn peer(&self) -> Option<SocketAddr> {
        match self {
            ConnKind::Inbound { peer, .. } => Some(*peer),
            ConnKind::Outbound { .. } => None,
        }
    }

    /// An accepted connection from a loopback address (protected-mode AUTH).
    pub fn is_loopback(&self) -> bool {
        self.peer().is_some_and(|p| p.ip().is_loopback())
    }

    pub fn is_outbound(&self) -> bool {
        matches!(self, ConnKind::Outbound { .. })
    }

    /// Who is on the other end, for log lines: the peer's address, or the next hop's
    /// `host:port`.
    pub fn who(&self) -> Who<'_> {
        Who(self)
    }
}

/// See [`ConnKind::who`].
pub struct Who<'a>(&'a ConnKind);

impl std::fmt::Display for Who<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            ConnKind::Inbound { peer, .. } => write!(f, "{peer}"),
            ConnKind::Outbound { host, port, .. } => write!(f, "{host}:{port}"),
        }
    }
}

/// The identity of a peer that presented a verified certificate: tells whether a host
/// name (or address) is one its certificate's subjectAltName covers. Made by the I/O
/// layer, which knows certificates; engines only ask.
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

/// Where a frame came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Origin {
    /// Received on a connection (possibly owned by another core).
    Conn(ConnId),
    /// Made by an engine of the core with this index (a REPORT). Internal frames are
    /// complete when made, so one key per core is enough.
    Internal(u16),
}

/// Which part of a frame a write carries. Frames made whole (responses, REPORTs) are
/// [`Part::Whole`]; frames passed on as they arrive come as `Start`, any number of
/// `Middle`s and an `End`, all with the same origin. The send queue keeps each frame's
/// bytes in order and decides how frames share the connection ([`queue`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// A whole frame.
    Whole,
    /// The head of a frame streamed from this origin; `Some` when the frame is a SEND
    /// whose chunk the queue may interrupt and resume (RFC 4975 §7.1.1); boxed, as
    /// only big chunks have one and every write carries a `Part`.
    Start(Origin, Option<Box<Resumable>>),
    /// A body piece of that frame.
    Middle(Origin),
    /// Its end-line.
    End(Origin),
}

/// Which side of a connection failed or ended it (as pingora's error sources do): the
/// peer that connected to us, the peer we connected to, or msrpd itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The peer of an accepted connection (a client, or a relay that connected to us).
    Inbound,
    /// The peer of a connection we opened (a next hop).
    Outbound,
    /// This server: a limit of its own, shutdown, an internal failure.
    Internal,
}

impl Side {
    pub fn name(self) -> &'static str {
        match self {
            Side::Inbound => "inbound",
            Side::Outbound => "outbound",
            Side::Internal => "internal",
        }
    }
}

/// Why a connection closes (for the log line and the close-reason counters).
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
    /// The peer stopped reading and its write queue passed the hard cap.
    QueueOverflow,
    /// A header block took too long to arrive.
    HeadTimeout,
    /// A frame's body stopped arriving.
    BodyTimeout,
    /// The next hop could not be resolved, connected to or its TLS handshake failed.
    ConnectFailed,
    /// The peer closed the connection or it failed under us.
    PeerClosed,
    /// The server is stopping.
    Shutdown,
    /// An operator ended the connection's session (admin API).
    Admin,
}

impl CloseReason {
    /// Whose doing the close is, for a connection that is outbound or not.
    pub fn side(self, outbound: bool) -> Side {
        match self {
            CloseReason::Shutdown | CloseReason::Admin => Side::Internal,
            _ if outbound => Side::Outbound,
            _ => Side::Inbound,
        }
    }

    /// The words for the log line.
    pub fn describe(self) -> &'static str {
        match self {
            CloseReason::NotAddressedToUs => "first To-Path URI is not this relay",
            CloseReason::AuthFailures => "too many failed AUTH requests",
            CloseReason::Probation => "no successful request during probation",
            CloseReason::Idle => "idle",
            CloseReason::Malformed => "malformed frame",
            CloseReason::BodyTooLarge => "non-SEND body over its limit",
            CloseReason::QueueOverflow => "peer does not read: write queue over its hard cap",
            CloseReason::HeadTimeout => "header block not finished in time",
            CloseReason::BodyTimeout => "frame body stalled",
            CloseReason::ConnectFailed => "next hop unreachable",
            CloseReason::PeerClosed => "closed by peer",
            CloseReason::Shutdown => "server shutting down",
            CloseReason::Admin => "session ended by an operator",
        }
    }

    /// A short token for events and metrics labels (`snake_case`).
    pub fn name(self) -> &'static str {
        match self {
            CloseReason::NotAddressedToUs => "not_addressed_to_us",
            CloseReason::AuthFailures => "auth_failures",
            CloseReason::Probation => "probation",
            CloseReason::Idle => "idle",
            CloseReason::Malformed => "malformed",
            CloseReason::BodyTooLarge => "body_too_large",
            CloseReason::QueueOverflow => "queue_overflow",
            CloseReason::HeadTimeout => "head_timeout",
            CloseReason::BodyTimeout => "body_timeout",
            CloseReason::ConnectFailed => "connect_failed",
            CloseReason::PeerClosed => "peer_closed",
            CloseReason::Shutdown => "shutdown",
            CloseReason::Admin => "admin",
        }
    }
}

/// What an engine asks the server to do. `M` is the engine's own cross-core message: the
/// server wraps it in its envelope and hands it to the engine of the same kind on `core`.
#[derive(Debug)]
pub enum Action<M> {
    /// Queue bytes on a connection (of this core or another: the server routes them).
    Write {
        conn: ConnId,
        bytes: Bytes,
        part: Part,
    },
    /// Close a connection of this core after what is already queued.
    Close { conn: ConnId, reason: CloseReason },
    /// Open the outbound connection `conn` (announced to the engine as
    /// [`ConnKind::Outbound`] already) to `host:port`; with TLS, the certificate must be
    /// valid for `host`. Bytes written to it queue until it is up; if it cannot be made
    /// it is closed with [`CloseReason::ConnectFailed`].
    Connect {
        conn: ConnId,
        host: String,
        port: u16,
        transport: Transport,
    },
    /// Hand `msg` to this engine's instance on `core`.
    ToCore { core: u16, msg: M },
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
    /// Chunks the send queues interrupted to let other frames go first (RFC 4975 §7.1.1).
    pub chunks_interrupted: AtomicU64,
    /// Reads given up on idle connections so that they hold no read buffer while idle.
    pub reads_parked: AtomicU64,
    /// Outbound connections that could not be made (resolution, connect, TLS).
    pub connect_failures: AtomicU64,
    /// AUTH requests answered with a challenge (401, the first leg of digest AUTH).
    pub auth_challenges: AtomicU64,
    /// SIP messages read (TCP, TLS and UDP; RFC 3261).
    pub sip_messages_in: AtomicU64,
    /// SIP input that did not parse (datagrams dropped, connections closed).
    pub sip_malformed: AtomicU64,
    /// CRLFCRLF keepalive pings answered with CRLF (RFC 5626 §4.4.1).
    pub sip_pings: AtomicU64,
    /// New SIP requests answered 503 because the transaction table was full.
    pub sip_overload: AtomicU64,
    /// Completed SIP transactions ended before timer J to make room (RFC 3261 §17.2.2).
    pub sip_evicted: AtomicU64,
    /// Packets and connections that were neither MSRP nor SIP (nosip).
    pub nosip_packets: AtomicU64,
    /// nosip packets under the minimum size, dropped as keepalives.
    pub nosip_short: AtomicU64,
    /// nosip packets --nosip-skip (or a missed --nosip-match) left out.
    pub nosip_skipped: AtomicU64,
    /// nosip packets over the per-source or per-core event rate: counted, not queued.
    pub nosip_shed: AtomicU64,
    /// Outbound SIP requests (the admin API's) answered 2xx.
    pub sip_out_success: AtomicU64,
    /// Outbound SIP requests answered 300-699.
    pub sip_out_rejected: AtomicU64,
    /// Outbound SIP requests that got no response in time (408, RFC 3261 §8.1.3.1).
    pub sip_out_timeouts: AtomicU64,
    /// Outbound SIP requests not delivered: unresolvable, transport error (503).
    pub sip_out_unreachable: AtomicU64,
    /// REPORTs sent, by status: one counter per code of [`REPORT_STATUSES`], then one
    /// for any other code.
    pub reports_by_status: [AtomicU64; REPORT_STATUSES.len() + 1],
}

/// The REPORT status codes counted one by one in [`Counters::reports_by_status`]
/// (the ones this relay sends, RFC 4975 §7.1.2 and RFC 4976 §6.4.1); others share
/// the last counter.
pub const REPORT_STATUSES: [u16; 10] = [400, 403, 404, 408, 413, 415, 423, 481, 501, 506];

impl Counters {
    /// Counts a REPORT sent with `code` (and in [`Counters::reports_sent`]).
    pub fn count_report(&self, code: u16) {
        bump(&self.reports_sent, 1);
        let i = REPORT_STATUSES
            .iter()
            .position(|&c| c == code)
            .unwrap_or(REPORT_STATUSES.len());
        bump(&self.reports_by_status[i], 1);
    }

    /// REPORTs sent by status code; `None` is every code not in [`REPORT_STATUSES`].
    pub fn reports_by_status(&self) -> Vec<(Option<u16>, u64)> {
        self.reports_by_status
            .iter()
            .enumerate()
            .map(|(i, c)| (REPORT_STATUSES.get(i).copied(), c.load(Ordering::Relaxed)))
            .collect()
    }
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
    pub chunks_interrupted: u64,
    pub reads_parked: u64,
    pub connect_failures: u64,
    pub auth_challenges: u64,
    pub sip_messages_in: u64,
    pub sip_malformed: u64,
    pub sip_pings: u64,
    pub sip_overload: u64,
    pub sip_evicted: u64,
    pub nosip_packets: u64,
    pub nosip_short: u64,
    pub nosip_skipped: u64,
    pub nosip_shed: u64,
    pub sip_out_success: u64,
    pub sip_out_rejected: u64,
    pub sip_out_timeouts: u64,
    pub sip_out_unreachable: u64,
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
            body_timeouts,
            chunks_interrupted,
            reads_parked,
            connect_failures,
            auth_challenges,
            sip_messages_in,
            sip_malformed,
            sip_pings,
            sip_overload,
            sip_evicted,
            nosip_packets,
            nosip_short,
            nosip_skipped,
            nosip_shed,
            sip_out_success,
            sip_out_rejected,
            sip_out_timeouts,
            sip_out_unreachable
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

impl CounterSnapshot {
    /// Every counter by its field name, in declaration order.
    pub fn fields(&self) -> Vec<(&'static str, u64)> {
        macro_rules! named {
            ($($f:ident),*) => {
                vec![$((stringify!($f), self.$f)),*]
            };
        }
        counter_fields!(named)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_reuse_with_new_generations_and_stop_at_capacity() {
        let mut s = Slots::new(3, 2);
        let a = s.alloc().unwrap();
        let b = s.alloc().unwrap();
        assert_eq!((a.core, a.slot, b.slot), (3, 0, 1));
        assert_eq!(s.alloc(), None, "capacity 2");
        s.release(a);
        let c = s.alloc().unwrap();
        assert_eq!(c.slot, a.slot);
        assert_ne!(
            c.generation, a.generation,
            "a reused slot has a new generation"
        );
    }
}
