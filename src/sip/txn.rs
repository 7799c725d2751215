//! SIP transactions (RFC 3261 §17): a sans-IO table of client and server transactions,
//! INVITE and non-INVITE, on a clock the caller passes in.
//!
//! Inputs are `handle_*(now, ..)`: [`Transactions::handle_datagram`] /
//! [`Transactions::handle_message`] for what the network brought,
//! [`Transactions::send_request`], [`Transactions::respond`] and
//! [`Transactions::cancel`] from the transaction user (TU), and
//! [`Transactions::handle_timeout`]. Outputs are drained with
//! [`Transactions::poll_transmit`] (bytes and where they go) and
//! [`Transactions::poll_event`] (what the TU must know);
//! [`Transactions::poll_timeout`] is the next instant the table needs the clock.
//!
//! # The four machines
//! - INVITE client (§17.1.1, figure 5): Calling → Proceeding → Completed → Terminated.
//!   Timer A (T1, doubling, unreliable transports only) retransmits the INVITE; timer B
//!   (64·T1) gives up in Calling (and, set again by [`Transactions::cancel`], 64·T1
//!   after a CANCEL, §9.1). A 300-699 response is answered with the ACK this
//!   machine builds (§17.1.1.3) and absorbed when retransmitted (the ACK is sent
//!   again); timer D (32 s unreliable, 0 reliable) ends Completed. Timer C (§16.6, a
//!   proxy's) is not implemented: a UA that wants to give up on a ringing call sends
//!   CANCEL.
//! - non-INVITE client (§17.1.2, figure 6): Trying → Proceeding → Completed. Timer E
//!   retransmits at T1, 2·T1, 4·T1... capped at T2 (at T2 once in Proceeding), unreliable
//!   only; timer F (64·T1) times out; timer K (T4 unreliable, 0 reliable) ends
//!   Completed.
//! - INVITE server (§17.2.1, figure 7): Proceeding → Completed → Confirmed. A 100
//!   Trying goes out when the TU has not answered within [`Config::trying_after`]
//!   (200 ms by default, §17.2.1; `Duration::ZERO` sends it at once), and at once when
//!   the INVITE is retransmitted before any response. Timer G retransmits a 300-699
//!   response (T1 doubling, capped at T2, unreliable only), timer H (64·T1) gives up
//!   waiting for the ACK, timer I (T4 unreliable, 0 reliable) ends Confirmed.
//! - non-INVITE server (§17.2.2, figure 8): Trying → Proceeding → Completed; timer J
//!   (64·T1 unreliable, 0 reliable) ends Completed.
//!
//! A retransmitted request is absorbed: the server transaction sends its last response
//! again (nothing in INVITE Confirmed or non-INVITE Trying) and the TU never sees it.
//!
//! # 2xx to INVITE: the RFC 6026 Accepted state and §13.3.1.4
//! RFC 3261 ends both INVITE machines on a 2xx and leaves the rest to the TU; RFC 6026
//! (which updates §17) keeps them in an Accepted state for 64·T1 so that retransmitted
//! INVITEs and 2xx responses still match. Both are done here:
//! - INVITE client Accepted (timer M = 64·T1): each 2xx, first or retransmitted, goes to
//!   the TU as [`Event::Response`], which sends the ACK for it (the dialog layer builds
//!   it; [`Transactions::send_raw`] carries it).
//! - INVITE server Accepted (timer L = 64·T1): retransmitted INVITEs are absorbed. The
//!   table does the UAS core's §13.3.1.4 duty for the TU: it retransmits the 2xx at
//!   T1, 2·T1... capped at T2 on every transport (the hop after the next may be UDP)
//!   until the ACK arrives (matched by Call-ID, CSeq number and From tag, since it has
//!   a branch of its own), then hands the ACK to the TU as [`Event::Ack`]. If none came
//!   within 64·T1, the TU gets [`Event::Timeout`] with [`Timer::L`] and should end the
//!   session (BYE, §13.3.1.4).
//!
//! # CANCEL (§9.2)
//! A CANCEL is answered by the table: 200 when it matches an INVITE server transaction
//! (same key as the INVITE, §9.2), and then, if that one is still Proceeding, 487 to
//! the INVITE and [`Event::Cancelled`] to the TU; 481 when nothing matches. The To tag
//! of both is the one the TU used in a provisional response, else one derived from
//! the INVITE's branch (so the two agree, §9.2). [`Transactions::cancel`] sends a
//! CANCEL for a client INVITE that has had a provisional response (§9.1 forbids one
//! before).
//!
//! # Matching
//! Responses: top Via branch and CSeq method (§17.1.3). Requests: branch, sent-by and
//! method, ACK matching INVITE (§17.2.3); a request whose branch lacks the magic
//! cookie is matched by Call-ID, From tag, CSeq number and top Via (the §17.2.3
//! fallback for RFC 2543 peers, without Request-URI and To tag).
//!
//! # Where responses go (§18.2.2, RFC 3581)
//! On a reliable transport, back over the connection the request came on
//! ([`Peer::conn`]). On UDP, to the source address, at the source port when the top
//! Via has `rport`, else at the sent-by port (5060 if none). `maddr` (multicast) is not
//! supported.
//!
//! Limits: at most [`Config::max_transactions`] at once, and at most
//! [`Config::max_bytes`] held by them. A live transaction is charged [`held_cost`]:
//! twice its request's size, for it and its response, plus bookkeeping. Once it has its
//! final response (Completed, Confirmed) a transaction only absorbs retransmissions:
//! it drops the request and keeps its keys and the last message it sent, and its
//! charge falls to [`completed_cost`]. Without the byte limit a flood of 64 KiB
//! datagrams, each kept for timer J's 32 s, could hold gigabytes.
//!
//! When a new request finds the table full, the oldest Completed non-INVITE server
//! transaction over UDP that has lingered at least T4 (5 s; Kamailio keeps finished
//! transactions 5 s) is ended early ([`Stats::evicted`]): a late retransmission of its
//! request would be taken for a new one, which is better than refusing new requests
//! while timer J's 64·T1 runs. Only when none is that old is the new request answered
//! 503 without a transaction ([`Stats::overload`]); [`Transactions::send_request`]
//! fails with [`TxError::Full`].

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use core::net::SocketAddr;

use super::header::Via;
use super::msg::{Limits, Message, Method};
use super::write::{Writer, ack_for, cancel_for, response_to};
use crate::conn::ConnId;

/// Timer values (§17.1.1.1, table 4) and limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// RTT estimate (default 500 ms).
    pub t1: Duration,
    /// Longest retransmit interval of non-INVITE requests and INVITE responses (4 s).
    pub t2: Duration,
    /// Longest time a message stays in the network (5 s).
    pub t4: Duration,
    /// How long an INVITE server transaction waits for the TU before it sends 100
    /// Trying itself (§17.2.1; 200 ms). `Duration::ZERO`: at once.
    pub trying_after: Duration,
    /// Transactions at once.
    pub max_transactions: usize,
    /// Bytes of requests (as [`held_cost`] counts them) the transactions hold at once
    /// (default 32 MiB).
    pub max_bytes: usize,
    /// The owning core, used in the To tags the table makes for CANCEL.
    pub core: u16,
    /// Limits for [`Transactions::handle_datagram`].
    pub limits: Limits,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
            trying_after: Duration::from_millis(200),
            max_transactions: 65_536,
            max_bytes: 32 << 20,
            core: 0,
            limits: Limits::default(),
        }
    }
}

/// What a transaction holding `req` is charged against [`Config::max_bytes`]: the
/// request, a response about as large (ours copy its Vias, §8.2.6.2), and 512 bytes of
/// keys and timers.
pub fn held_cost(req: &Message) -> usize {
    2 * req.raw().len() + BOOKKEEPING
}

/// What a transaction is charged once it has dropped its request (Completed or
/// Confirmed): the last message it sent (response or ACK), kept for retransmission,
/// and its keys and timers.
pub fn completed_cost(last: Option<&Bytes>) -> usize {
    last.map_or(0, Bytes::len) + BOOKKEEPING
}

/// Bytes charged for a transaction's keys, timers and table entries.
const BOOKKEEPING: usize = 512;

/// Timer D on unreliable transports (§17.1.1.2: at least 32 s).
pub const TIMER_D: Duration = Duration::from_secs(32);

/// The transport a message came or goes over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
    Tls,
    Ws,
    Wss,
}

impl Transport {
    /// Reliable transports get no retransmissions and zero wait timers (§17).
    pub fn is_reliable(self) -> bool {
        !matches!(self, Transport::Udp)
    }
    /// The Via transport token (§20.42; RFC 7118 for WS/WSS).
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
            Transport::Ws => "WS",
            Transport::Wss => "WSS",
        }
    }
}

/// The other end of a message: transport, address and, on a connection, the
/// connection it came on or should go on (the server's [`ConnId`]; `None` on UDP, or
/// when a new connection to `addr` is needed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Peer {
    pub transport: Transport,
    pub addr: SocketAddr,
    pub conn: Option<ConnId>,
}

/// Bytes to send, where, and for which transaction (`None` for the TU's raw sends and
/// stateless answers); report a failure with [`Transactions::handle_transport_error`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub to: Peer,
    pub bytes: Bytes,
    pub txn: Option<TxId>,
}

/// A transaction's handle, never reused by one table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TxId(pub u64);

/// The §17 timers, the RFC 6026 ones (L, M), the 100 Trying delay and the §13.3.1.4
/// 2xx retransmission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Timer {
    A,
    B,
    D,
    E,
    F,
    G,
    H,
    I,
    J,
    K,
    L,
    M,
    Trying,
    Retransmit2xx,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    InviteClient,
    NonInviteClient,
    InviteServer,
    NonInviteServer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    Calling,
    Trying,
    Proceeding,
    Completed,
    Confirmed,
    Accepted,
}

/// What the transaction user must hear about.
#[derive(Debug, Clone)]
pub enum Event {
    /// A new request (never a retransmission, an ACK or a CANCEL): answer it with
    /// [`Transactions::respond`].
    Request { id: TxId, msg: Message, from: Peer },
    /// An ACK for a 2xx: `id` is the INVITE server transaction it confirms (its 2xx
    /// retransmission has stopped), `None` when no transaction knows it (an ACK the
    /// dialog layer must judge, §13.3.1.4).
    Ack {
        id: Option<TxId>,
        msg: Message,
        from: Peer,
    },
    /// A CANCEL ended INVITE server transaction `invite` with 487 (§9.2).
    Cancelled { invite: TxId, cancel: Message },
    /// A response for a client transaction (provisional, final, and every 2xx to an
    /// INVITE while Accepted; retransmissions of non-2xx finals are absorbed).
    Response { id: TxId, msg: Message },
    /// A response no client transaction matches (§17.1.3), e.g. a 2xx after timer M.
    StrayResponse { msg: Message, from: Peer },
    /// Timer B, F, H or L fired (see the module doc for L).
    Timeout { id: TxId, timer: Timer },
    /// [`Transactions::handle_transport_error`] was called for the transaction.
    TransportError { id: TxId },
    /// The transaction is gone; its id will not come again.
    Terminated { id: TxId },
}

/// Why the TU's call was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    #[error("transaction table full")]
    Full,
    #[error("not a request")]
    NotARequest,
    #[error("not a response")]
    NotAResponse,
    #[error("ACK is not sent in a transaction")]
    IsAck,
    #[error("top Via has no RFC 3261 branch")]
    NoBranch,
    #[error("a transaction with that branch and method exists")]
    Duplicate,
    #[error("no such transaction")]
    Unknown,
    #[error("not possible in this transaction's kind or state")]
    WrongState,
    #[error("no provisional response yet (RFC 3261 §9.1)")]
    NoProvisional,
}

/// Counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Datagrams that did not parse, requests without a usable top Via.
    pub dropped: u64,
    /// Retransmitted requests and responses absorbed.
    pub absorbed: u64,
    /// Responses without a transaction.
    pub stray: u64,
    /// Requests answered 503 because the table was full.
    pub overload: u64,
    /// Completed non-INVITE server transactions ended before timer J to make room.
    pub evicted: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ClientKey {
    branch: Box<str>,
    method: Box<str>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ServerKey {
    branch: Box<str>,
    sent_by: Box<str>,
    method: Box<str>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct AckKey {
    call_id: Box<str>,
    cseq: u32,
    from_tag: Box<str>,
}

#[derive(Debug, Clone)]
enum Key {
    Client(ClientKey),
    Server(ServerKey),
}

#[derive(Debug)]
struct Txn {
    kind: Kind,
    state: State,
    peer: Peer,
    /// The request, until the transaction has its final response.
    request: Option<Message>,
    /// What the transaction is charged against [`Config::max_bytes`].
    charge: usize,
    /// The §8.2.2.2 key it is registered under in [`Transactions::merge`] (server).
    merge: Option<MergeKey>,
    key: Key,
    /// Server: the last response sent. INVITE client: the ACK sent.
    last: Option<Bytes>,
    /// The To tag of the TU's responses (server side).
    to_tag: Option<Box<str>>,
    interval: Duration,
    timers: Vec<(Timer, Instant)>,
    ack_key: Option<AckKey>,
    acked: bool,
}

/// The transaction table of one core.
#[derive(Debug)]
pub struct Transactions {
    cfg: Config,
    next_id: u64,
    txns: HashMap<TxId, Txn>,
    client: HashMap<ClientKey, TxId>,
    server: HashMap<ServerKey, TxId>,
    acks: HashMap<AckKey, TxId>,
    /// Server transactions of requests without a To tag by Call-ID, From tag and CSeq
    /// (the first one of each), for [`Transactions::is_merged`] (§8.2.2.2).
    merge: HashMap<MergeKey, TxId>,
    /// The sum of the live transactions' charges.
    held: usize,
    /// Completed non-INVITE server transactions over UDP, oldest first, with when
    /// they completed: the candidates for eviction (stale ids are skipped).
    completed: VecDeque<(Instant, TxId)>,
    timers: BTreeSet<(Instant, TxId, Timer)>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    stats: Stats,
}

/// What §8.2.2.2 compares to tell a merged request: Call-ID, From tag, CSeq number and
/// method, of a request outside a dialog (no To tag).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct MergeKey {
    call_id: Box<str>,
    from_tag: Box<str>,
    seq: u32,
    method: Box<str>,
}

fn merge_key(msg: &Message) -> Option<MergeKey> {
    if msg.to_tag().is_some() {
        return None;
    }
    let cseq = msg.cseq()?;
    Some(MergeKey {
        call_id: msg.call_id()?.into(),
        from_tag: msg.from_tag()?.into(),
        seq: cseq.seq,
        method: cseq.method_str.into(),
    })
}

/// The §17.2.3 key of a request (ACK looks for its INVITE); `method` overrides the
/// request's (CANCEL looks for the INVITE it cancels).
fn server_key(msg: &Message, via: &Via<'_>, method: Option<&str>) -> Option<ServerKey> {
    let method = match (method, msg.method()) {
        (Some(m), _) => m,
        (None, Some(Method::Ack)) => "INVITE",
        (None, _) => msg.method_str(),
    };
    if via.is_rfc3261() {
        let mut sent_by = via.host.to_ascii_lowercase();
        if let Some(p) = via.port {
            sent_by.push(':');
            sent_by.push_str(&p.to_string());
        }
        Some(ServerKey {
            branch: via.branch()?.into(),
            sent_by: sent_by.into(),
            method: method.into(),
        })
    } else {
        // RFC 2543 peers (§17.2.3 fallback).
        let legacy = format!(
            "{}|{}|{}|{}",
            msg.call_id()?,
            msg.from_tag().unwrap_or(""),
            msg.cseq()?.seq,
            via.raw
        );
        Some(ServerKey {
            branch: legacy.into(),
            sent_by: "".into(),
            method: method.into(),
        })
    }
}

fn ack_key(msg: &Message) -> Option<AckKey> {
    Some(AckKey {
        call_id: msg.call_id()?.into(),
        cseq: msg.cseq()?.seq,
        from_tag: msg.from_tag().unwrap_or("").into(),
    })
}

/// Where responses to a request from `from` with top Via `via` go (§18.2.2, RFC 3581).
fn response_peer(from: Peer, via: &Via<'_>) -> Peer {
    if from.transport.is_reliable() || via.rport().is_some() {
        return from;
    }
    let mut to = from;
    to.addr.set_port(via.port.unwrap_or(5060));
    to
}

/// A To tag for responses the table makes itself (CANCEL handling): FNV-1a of the
/// INVITE's branch and Call-ID, in the [`super::ids::tag`] format.
fn derived_tag(core: u16, req: &Message) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let branch = req.top_via().and_then(|v| v.branch()).unwrap_or("");
    for b in branch
        .bytes()
        .chain(core::iter::once(0))
        .chain(req.call_id().unwrap_or("").bytes())
    {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("m{core:x}-{h:016x}")
}

impl Transactions {
    /// A table with `cfg` (T1, T2, T4 below 1 ms are raised to 1 ms, so no timer is due
    /// the instant it is set).
    pub fn new(mut cfg: Config) -> Transactions {
        let ms = Duration::from_millis(1);
        cfg.t1 = cfg.t1.max(ms);
        cfg.t2 = cfg.t2.max(cfg.t1);
        cfg.t4 = cfg.t4.max(ms);
        Transactions {
            cfg,
            next_id: 1,
            txns: HashMap::new(),
            client: HashMap::new(),
            server: HashMap::new(),
            acks: HashMap::new(),
            merge: HashMap::new(),
            held: 0,
            completed: VecDeque::new(),
            timers: BTreeSet::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            stats: Stats::default(),
        }
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Whether server transaction `id`'s request is a merged request (RFC 3261
    /// §8.2.2.2): no To tag, and the same Call-ID, From tag and CSeq as another
    /// ongoing server transaction it does not match (a request that forked and came
    /// back by another path). The UAS core answers it 482 (Loop Detected).
    pub fn is_merged(&self, id: TxId) -> bool {
        let Some(t) = self.txns.get(&id) else {
            return false;
        };
        if !matches!(t.kind, Kind::InviteServer | Kind::NonInviteServer) {
            return false;
        }
        t.merge
            .as_ref()
            .and_then(|k| self.merge.get(k))
            .is_some_and(|&first| first != id)
    }
    /// Bytes the live transactions are charged ([`held_cost`], [`Config::max_bytes`]).
    pub fn held_bytes(&self) -> usize {
        self.held
    }
    /// Live transactions.
    pub fn len(&self) -> usize {
        self.txns.len()
    }
    pub fn is_empty(&self) -> bool {
        self.txns.is_empty()
    }
    pub fn state(&self, id: TxId) -> Option<State> {
        self.txns.get(&id).map(|t| t.state)
    }
    pub fn kind(&self, id: TxId) -> Option<Kind> {
        self.txns.get(&id).map(|t| t.kind)
    }
    /// The request that made transaction `id`, until the transaction has its final
    /// response (then only keys and the last message are kept).
    pub fn request(&self, id: TxId) -> Option<&Message> {
        self.txns.get(&id)?.request.as_ref()
    }
    /// When `timer` of transaction `id` fires, if it is set.
    pub fn deadline(&self, id: TxId, timer: Timer) -> Option<Instant> {
        self.txns
            .get(&id)?
            .timers
            .iter()
            .find(|(t, _)| *t == timer)
            .map(|(_, at)| *at)
    }
    /// Timers set across the table (bounded by a few per transaction).
    pub fn timer_count(&self) -> usize {
        self.timers.len()
    }

    /// The next instant [`Transactions::handle_timeout`] has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.first().map(|(at, _, _)| *at)
    }
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// A datagram from `from`: parsed with [`Config::limits`] and handled; one that
    /// does not parse is dropped and counted (there is nothing to answer).
    pub fn handle_datagram(&mut self, now: Instant, from: Peer, data: Bytes) {
        match Message::parse_datagram(data, &self.cfg.limits) {
            Ok(m) => self.handle_message(now, from, m),
            Err(_) => self.stats.dropped += 1,
        }
    }

    /// A parsed message from `from` (a stream's messages come this way).
    pub fn handle_message(&mut self, now: Instant, from: Peer, mut msg: Message) {
        if msg.is_request() {
            msg.set_source(Some(from.addr));
            self.on_request(now, from, msg);
        } else {
            self.on_response(now, from, msg);
        }
    }

    /// Sending a request failed for transaction `id` (§17.1.4, §17.2.4): the TU hears
    /// [`Event::TransportError`] and the transaction ends.
    pub fn handle_transport_error(&mut self, _now: Instant, id: TxId) {
        if self.txns.contains_key(&id) {
            self.events.push_back(Event::TransportError { id });
            self.terminate(id);
        }
    }

    /// Runs every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(&(at, id, timer)) = self.timers.first() {
            if at > now {
                break;
            }
            self.timers.pop_first();
            if let Some(t) = self.txns.get_mut(&id) {
                t.timers.retain(|(k, _)| *k != timer);
            }
            self.on_timer(now, id, timer);
        }
    }

    /// Bytes the TU sends outside any transaction (the ACK for a 2xx, §13.2.2.4).
    pub fn send_raw(&mut self, to: Peer, bytes: Bytes) {
        self.transmits.push_back(Transmit {
            to,
            bytes,
            txn: None,
        });
    }

    /// Starts a client transaction for `req` (not ACK) towards `to`. The top Via must
    /// carry an RFC 3261 branch ([`super::ids::branch`]).
    pub fn send_request(&mut self, now: Instant, to: Peer, req: Message) -> Result<TxId, TxError> {
        let method = req.method().ok_or(TxError::NotARequest)?;
        if method == Method::Ack {
            return Err(TxError::IsAck);
        }
        let via = req.top_via().ok_or(TxError::NoBranch)?;
        if !via.is_rfc3261() {
            return Err(TxError::NoBranch);
        }
        let key = ClientKey {
            branch: via.branch().unwrap_or("").into(),
            method: req.method_str().into(),
        };
        if self.client.contains_key(&key) {
            return Err(TxError::Duplicate);
        }
        let charge = held_cost(&req);
        if !self.make_room(now, charge) {
            return Err(TxError::Full);
        }
        self.held += charge;
        let id = self.new_id();
        let invite = method == Method::Invite;
        let bytes = req.raw().clone();
        self.client.insert(key.clone(), id);
        self.txns.insert(
            id,
            Txn {
                kind: if invite {
                    Kind::InviteClient
                } else {
                    Kind::NonInviteClient
                },
                state: if invite {
                    State::Calling
                } else {
                    State::Trying
                },
                peer: to,
                request: Some(req),
                charge,
                merge: None,
                key: Key::Client(key),
                last: None,
                to_tag: None,
                interval: self.cfg.t1,
                timers: Vec::new(),
                ack_key: None,
                acked: false,
            },
        );
        self.emit(id, bytes);
        let t1 = self.cfg.t1;
        if !to.transport.is_reliable() {
            self.arm(id, if invite { Timer::A } else { Timer::E }, now + t1);
        }
        self.arm(id, if invite { Timer::B } else { Timer::F }, now + 64 * t1);
        Ok(id)
    }

    /// Sends a CANCEL for client INVITE transaction `invite` (§9.1), in a client
    /// transaction of its own whose id is returned. Only once a provisional response
    /// came (Proceeding); before, [`TxError::NoProvisional`]: try again on the first
    /// provisional [`Event::Response`]. The INVITE transaction then gets timer B
    /// again (unless a first CANCEL set it already): no final response within 64·T1
    /// ends it (§9.1), whether or not this CANCEL could be sent.
    pub fn cancel(&mut self, now: Instant, invite: TxId) -> Result<TxId, TxError> {
        let t = self.txns.get(&invite).ok_or(TxError::Unknown)?;
        if t.kind != Kind::InviteClient {
            return Err(TxError::WrongState);
        }
        match t.state {
            State::Proceeding => {}
            State::Calling => return Err(TxError::NoProvisional),
            _ => return Err(TxError::WrongState),
        }
        let peer = t.peer;
        let req = t.request.as_ref().ok_or(TxError::WrongState)?;
        let cancel = Message::parse_own(cancel_for(req)).map_err(|_| TxError::WrongState)?;
        // §9.1: without a final response 64*T1 after the CANCEL, the INVITE
        // transaction is given up (timer B reused: Event::Timeout with Timer::B). Set
        // even when the CANCEL cannot be sent (table full), so that the INVITE
        // transaction cannot outlive the TU's wish to end it.
        if self.deadline(invite, Timer::B).is_none() {
            self.arm(invite, Timer::B, now + 64 * self.cfg.t1);
        }
        self.send_request(now, peer, cancel)
    }

    /// The TU's response `resp` in server transaction `id`.
    pub fn respond(&mut self, now: Instant, id: TxId, resp: Message) -> Result<(), TxError> {
        let code = resp.status().ok_or(TxError::NotAResponse)?;
        let cfg = self.cfg;
        let t = self.txns.get_mut(&id).ok_or(TxError::Unknown)?;
        let reliable = t.peer.transport.is_reliable();
        if code != 100 {
            if let Some(tag) = resp.to_tag() {
                t.to_tag = Some(tag.into());
            }
        }
        let bytes = resp.raw().clone();
        match (t.kind, t.state) {
            (Kind::InviteServer, State::Proceeding) => {
                t.last = Some(bytes.clone());
                self.disarm(id, Timer::Trying);
                self.emit(id, bytes);
                if code >= 300 {
                    self.set_state(id, State::Completed);
                    if !reliable {
                        self.set_interval(id, cfg.t1);
                        self.arm(id, Timer::G, now + cfg.t1);
                    }
                    self.arm(id, Timer::H, now + 64 * cfg.t1);
                    self.compact(id);
                } else if code >= 200 {
                    self.set_state(id, State::Accepted);
                    self.set_interval(id, cfg.t1);
                    self.arm(id, Timer::Retransmit2xx, now + cfg.t1);
                    self.arm(id, Timer::L, now + 64 * cfg.t1);
                    if let Some(t) = self.txns.get_mut(&id) {
                        if let Some(k) = t.request.as_ref().and_then(ack_key) {
                            t.ack_key = Some(k.clone());
                            self.acks.insert(k, id);
                        }
                    }
                }
                Ok(())
            }
            (Kind::InviteServer, State::Accepted) if (200..300).contains(&code) => {
                t.last = Some(bytes.clone());
                self.emit(id, bytes);
                Ok(())
            }
            (Kind::NonInviteServer, State::Trying | State::Proceeding) => {
                t.last = Some(bytes.clone());
                self.emit(id, bytes);
                if code >= 200 {
                    self.set_state(id, State::Completed);
                    self.wait_or_end(id, Timer::J, !reliable, now + 64 * cfg.t1);
                    if self.compact(id) {
                        self.completed.push_back((now, id));
                    }
                } else {
                    self.set_state(id, State::Proceeding);
                }
                Ok(())
            }
            _ => Err(TxError::WrongState),
        }
    }

    // ---------------------------------------------------------------------------------

    fn new_id(&mut self) -> TxId {
        let id = TxId(self.next_id);
        self.next_id += 1;
        id
    }

    fn emit(&mut self, id: TxId, bytes: Bytes) {
        if let Some(t) = self.txns.get(&id) {
            self.transmits.push_back(Transmit {
                to: t.peer,
                bytes,
                txn: Some(id),
            });
        }
    }

    fn set_state(&mut self, id: TxId, s: State) {
        if let Some(t) = self.txns.get_mut(&id) {
            t.state = s;
        }
    }

    fn set_interval(&mut self, id: TxId, d: Duration) {
        if let Some(t) = self.txns.get_mut(&id) {
            t.interval = d;
        }
    }

    fn arm(&mut self, id: TxId, timer: Timer, at: Instant) {
        self.disarm(id, timer);
        if let Some(t) = self.txns.get_mut(&id) {
            t.timers.push((timer, at));
            self.timers.insert((at, id, timer));
        }
    }

    fn disarm(&mut self, id: TxId, timer: Timer) {
        if let Some(t) = self.txns.get_mut(&id) {
            if let Some(i) = t.timers.iter().position(|(k, _)| *k == timer) {
                let (_, at) = t.timers.swap_remove(i);
                self.timers.remove(&(at, id, timer));
            }
        }
    }

    /// A wait timer (D, I, J, K): set on unreliable transports, zero (the transaction
    /// ends now) on reliable ones.
    fn wait_or_end(&mut self, id: TxId, timer: Timer, unreliable: bool, at: Instant) {
        if unreliable {
            self.arm(id, timer, at);
        } else {
            self.terminate(id);
        }
    }

    fn terminate(&mut self, id: TxId) {
        let Some(t) = self.txns.remove(&id) else {
            return;
        };
        self.held = self.held.saturating_sub(t.charge);
        for (timer, at) in t.timers {
            self.timers.remove(&(at, id, timer));
        }
        match t.key {
            Key::Client(k) => {
                self.client.remove(&k);
            }
            Key::Server(k) => {
                self.server.remove(&k);
                if let Some(m) = t.merge
                    && self.merge.get(&m) == Some(&id)
                {
                    self.merge.remove(&m);
                }
            }
        }
        if let Some(k) = t.ack_key {
            if self.acks.get(&k) == Some(&id) {
                self.acks.remove(&k);
            }
        }
        while let Some(&(_, front)) = self.completed.front()
            && !self.txns.contains_key(&front)
        {
            self.completed.pop_front();
        }
        self.events.push_back(Event::Terminated { id });
    }

    /// Drops the request of transaction `id`, which has its final response (or, an
    /// INVITE client, has sent its ACK): retransmissions are answered from
    /// [`Txn::last`]. Its charge falls to [`completed_cost`]. False if `id` is gone.
    fn compact(&mut self, id: TxId) -> bool {
        let Some(t) = self.txns.get_mut(&id) else {
            return false;
        };
        t.request = None;
        let charge = completed_cost(t.last.as_ref());
        self.held = (self.held + charge).saturating_sub(t.charge);
        t.charge = charge;
        true
    }

    /// Whether a transaction charged `charge` fits, after ending Completed non-INVITE
    /// server transactions that have lingered at least T4 if it would not (oldest
    /// first; see the module doc).
    fn make_room(&mut self, now: Instant, charge: usize) -> bool {
        loop {
            if self.txns.len() < self.cfg.max_transactions
                && self.held + charge <= self.cfg.max_bytes
            {
                return true;
            }
            let Some(&(at, id)) = self.completed.front() else {
                return false;
            };
            if !self.txns.contains_key(&id) {
                self.completed.pop_front();
                continue;
            }
            if now < at + self.cfg.t4 {
                return false;
            }
            self.completed.pop_front();
            self.stats.evicted += 1;
            self.terminate(id);
        }
    }

    fn retransmit_last(&mut self, id: TxId) {
        if let Some(b) = self.txns.get(&id).and_then(|t| t.last.clone()) {
            self.emit(id, b);
        }
    }

    fn on_timer(&mut self, now: Instant, id: TxId, timer: Timer) {
        let cfg = self.cfg;
        let Some(t) = self.txns.get_mut(&id) else {
            return;
        };
        let state = t.state;
        match timer {
            Timer::A | Timer::E => {
                let next = match (timer, state) {
                    (Timer::A, State::Calling) => t.interval * 2,
                    (Timer::E, State::Trying) => (t.interval * 2).min(cfg.t2),
                    (Timer::E, State::Proceeding) => cfg.t2,
                    _ => return,
                };
                t.interval = next;
                if let Some(bytes) = t.request.as_ref().map(|r| r.raw().clone()) {
                    self.emit(id, bytes);
                }
                self.arm(id, timer, now + next);
            }
            Timer::G | Timer::Retransmit2xx => {
                if (timer == Timer::G && state != State::Completed)
                    || (timer == Timer::Retransmit2xx && (state != State::Accepted || t.acked))
                {
                    return;
                }
                let next = (t.interval * 2).min(cfg.t2);
                t.interval = next;
                self.retransmit_last(id);
                self.arm(id, timer, now + next);
            }
            Timer::Trying => {
                if state == State::Proceeding && t.last.is_none() {
                    self.send_trying(id);
                }
            }
            Timer::B | Timer::F | Timer::H => {
                self.events.push_back(Event::Timeout { id, timer });
                self.terminate(id);
            }
            Timer::L => {
                if !t.acked {
                    self.events.push_back(Event::Timeout { id, timer });
                }
                self.terminate(id);
            }
            Timer::D | Timer::I | Timer::J | Timer::K | Timer::M => self.terminate(id),
        }
    }

    fn send_trying(&mut self, id: TxId) {
        let Some(t) = self.txns.get_mut(&id) else {
            return;
        };
        let Some(req) = &t.request else {
            return;
        };
        let trying = response_to(req, 100, None, None).finish();
        t.last = Some(trying.clone());
        self.disarm(id, Timer::Trying);
        self.emit(id, trying);
    }

    fn on_request(&mut self, now: Instant, from: Peer, msg: Message) {
        let Some(via) = msg.top_via() else {
            self.stats.dropped += 1;
            return;
        };
        let Some(key) = server_key(&msg, &via, None) else {
            self.stats.dropped += 1;
            return;
        };
        let peer = response_peer(from, &via);
        let method = msg.method();
        if method == Some(Method::Ack) {
            self.on_ack(now, from, key, msg);
            return;
        }
        if let Some(&id) = self.server.get(&key) {
            self.on_retransmitted_request(id);
            return;
        }
        let charge = held_cost(&msg);
        if !self.make_room(now, charge) {
            self.stats.overload += 1;
            let mut w = response_to(&msg, 503, None, None);
            w.header("Retry-After", "5");
            self.transmits.push_back(Transmit {
                to: peer,
                bytes: w.finish(),
                txn: None,
            });
            return;
        }
        let id = self.new_id();
        let invite = method == Some(Method::Invite);
        self.held += charge;
        self.server.insert(key.clone(), id);
        let merge = merge_key(&msg);
        if let Some(m) = &merge {
            self.merge.entry(m.clone()).or_insert(id);
        }
        self.txns.insert(
            id,
            Txn {
                kind: if invite {
                    Kind::InviteServer
                } else {
                    Kind::NonInviteServer
                },
                state: if invite {
                    State::Proceeding
                } else {
                    State::Trying
                },
                peer,
                request: Some(msg.clone()),
                charge,
                merge,
                key: Key::Server(key),
                last: None,
                to_tag: None,
                interval: self.cfg.t1,
                timers: Vec::new(),
                ack_key: None,
                acked: false,
            },
        );
        if method == Some(Method::Cancel) {
            self.on_cancel(now, id, msg);
            return;
        }
        if invite {
            if self.cfg.trying_after.is_zero() {
                self.send_trying(id);
            } else {
                self.arm(id, Timer::Trying, now + self.cfg.trying_after);
            }
        }
        self.events.push_back(Event::Request { id, msg, from });
    }

    fn on_retransmitted_request(&mut self, id: TxId) {
        self.stats.absorbed += 1;
        let Some(t) = self.txns.get(&id) else {
            return;
        };
        match (t.kind, t.state) {
            (Kind::InviteServer, State::Proceeding) if t.last.is_none() => self.send_trying(id),
            (Kind::InviteServer, State::Proceeding | State::Completed)
            | (Kind::NonInviteServer, State::Proceeding | State::Completed) => {
                self.retransmit_last(id)
            }
            _ => {}
        }
    }

    fn on_ack(&mut self, now: Instant, from: Peer, key: ServerKey, msg: Message) {
        let cfg = self.cfg;
        if let Some(&id) = self.server.get(&key) {
            let Some(t) = self.txns.get_mut(&id) else {
                return;
            };
            match t.state {
                State::Completed => {
                    let unreliable = !t.peer.transport.is_reliable();
                    t.state = State::Confirmed;
                    self.disarm(id, Timer::G);
                    self.disarm(id, Timer::H);
                    self.wait_or_end(id, Timer::I, unreliable, now + cfg.t4);
                    self.stats.absorbed += 1;
                    return;
                }
                State::Accepted => {}
                _ => {
                    self.stats.absorbed += 1;
                    return;
                }
            }
        }
        let id = ack_key(&msg).and_then(|k| self.acks.get(&k).copied());
        if let Some(id) = id {
            let Some(t) = self.txns.get_mut(&id) else {
                return;
            };
            if t.acked {
                self.stats.absorbed += 1;
                return;
            }
            t.acked = true;
            // Accepted and ACKed: retransmitted INVITEs are absorbed without a
            // response (RFC 6026 §7.1), so neither the request nor the 2xx is needed
            // until timer L; only the keys stay (a set-up costs its bookkeeping, not
            // its messages, for those 64·T1).
            t.last = None;
            self.disarm(id, Timer::Retransmit2xx);
            self.compact(id);
        }
        self.events.push_back(Event::Ack { id, msg, from });
    }

    fn on_cancel(&mut self, now: Instant, cancel_id: TxId, msg: Message) {
        let invite = msg
            .top_via()
            .and_then(|via| server_key(&msg, &via, Some("INVITE")))
            .and_then(|k| self.server.get(&k).copied());
        let Some(invite) = invite.filter(|i| self.kind(*i) == Some(Kind::InviteServer)) else {
            let r = response_to(&msg, 481, None, None);
            if let Ok(r) = r.into_message() {
                let _ = self.respond(now, cancel_id, r);
            }
            return;
        };
        let (tag, inv_req) = match self.txns.get(&invite) {
            Some(t) => (
                t.to_tag
                    .as_deref()
                    .map(str::to_string)
                    .or_else(|| t.request.as_ref().map(|r| derived_tag(self.cfg.core, r))),
                // Only a Proceeding INVITE still has its request; one that has its
                // final response is not cancelled (§9.2).
                t.request.clone().filter(|_| t.state == State::Proceeding),
            ),
            None => return,
        };
        let tag = tag.unwrap_or_default();
        if let Ok(ok) = response_to(&msg, 200, None, Some(&tag)).into_message() {
            let _ = self.respond(now, cancel_id, ok);
        }
        if let Some(inv_req) = inv_req {
            if let Ok(r) = response_to(&inv_req, 487, None, Some(&tag)).into_message() {
                let _ = self.respond(now, invite, r);
            }
            self.events.push_back(Event::Cancelled {
                invite,
                cancel: msg,
            });
        }
    }

    fn on_response(&mut self, now: Instant, from: Peer, msg: Message) {
        let cfg = self.cfg;
        let (Some(code), Some(via), Some(cseq)) = (msg.status(), msg.top_via(), msg.cseq()) else {
            self.stats.dropped += 1;
            return;
        };
        let key = ClientKey {
            branch: via.branch().unwrap_or("").into(),
            method: cseq.method_str.into(),
        };
        let Some(&id) = self.client.get(&key) else {
            self.stats.stray += 1;
            self.events.push_back(Event::StrayResponse { msg, from });
            return;
        };
        let Some(t) = self.txns.get_mut(&id) else {
            return;
        };
        let unreliable = !t.peer.transport.is_reliable();
        match (t.kind, t.state) {
            (Kind::InviteClient, State::Calling | State::Proceeding) => {
                if code < 200 {
                    // From Calling only: in Proceeding, B is the §9.1 CANCEL limit.
                    if t.state == State::Calling {
                        t.state = State::Proceeding;
                        self.disarm(id, Timer::A);
                        self.disarm(id, Timer::B);
                    }
                    self.events.push_back(Event::Response { id, msg });
                } else if code < 300 {
                    t.state = State::Accepted;
                    self.disarm(id, Timer::A);
                    self.disarm(id, Timer::B);
                    self.arm(id, Timer::M, now + 64 * cfg.t1);
                    self.events.push_back(Event::Response { id, msg });
                } else {
                    let Some(req) = &t.request else {
                        return;
                    };
                    let ack = ack_for(req, &msg);
                    t.last = Some(ack.clone());
                    t.state = State::Completed;
                    self.disarm(id, Timer::A);
                    self.disarm(id, Timer::B);
                    self.emit(id, ack);
                    self.events.push_back(Event::Response { id, msg });
                    self.wait_or_end(id, Timer::D, unreliable, now + TIMER_D);
                    self.compact(id);
                }
            }
            (Kind::InviteClient, State::Completed) => {
                self.stats.absorbed += 1;
                if code >= 300 {
                    self.retransmit_last(id);
                }
            }
            (Kind::InviteClient, State::Accepted) => {
                if (200..300).contains(&code) {
                    self.events.push_back(Event::Response { id, msg });
                } else {
                    self.stats.absorbed += 1;
                }
            }
            (Kind::NonInviteClient, State::Trying | State::Proceeding) => {
                if code < 200 {
                    t.state = State::Proceeding;
                    self.events.push_back(Event::Response { id, msg });
                } else {
                    t.state = State::Completed;
                    self.disarm(id, Timer::E);
                    self.disarm(id, Timer::F);
                    self.events.push_back(Event::Response { id, msg });
                    self.wait_or_end(id, Timer::K, unreliable, now + cfg.t4);
                    self.compact(id);
                }
            }
            _ => self.stats.absorbed += 1,
        }
    }
}

/// A request line plus the headers every request needs, for tests and simple TUs:
/// `Via: SIP/2.0/<transport> <sent_by>;branch=<branch>;rport`, Max-Forwards 70, From,
/// To, Call-ID, CSeq. Add headers, then finish.
#[allow(clippy::too_many_arguments)]
pub fn request_writer(
    method: &str,
    uri: &str,
    transport: Transport,
    sent_by: &str,
    branch: &str,
    from: &str,
    to: &str,
    call_id: &str,
    cseq: u32,
) -> Writer {
    let mut w = Writer::request(method, uri);
    w.header(
        "Via",
        &format!(
            "SIP/2.0/{} {sent_by};branch={branch};rport",
            transport.as_str()
        ),
    );
    w.header("Max-Forwards", "70");
    w.header("From", from);
    w.header("To", to);
    w.header("Call-ID", call_id);
    w.header("CSeq", &format!("{cseq} {method}"));
    w
}
