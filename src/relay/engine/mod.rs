//! The relay's decisions as a sans-I/O state machine (RFC 4976 §6), one per worker core.
//!
//! Inputs are `handle_*(now, ..)` calls made by the server as frames, timers and
//! connection events arrive; outputs are [`RelayAction`]s drained with
//! [`Relay::poll_action`]; [`Relay::poll_timeout`] says when the relay next needs
//! [`Relay::handle_timeout`]. Time is passed in, so every rule can be tested with a
//! virtual clock and no sockets.
//!
//! A frame is routed by the core that owns the session its first To-Path URI names: a
//! frame for another core's session continues there as a stream of [`RelayMsg`]s. Body
//! pieces are passed on as they arrive; the relay never holds a whole chunk.

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use hashbrown::HashMap;
use hashbrown::hash_map::Entry;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::codec::encode;
use crate::codec::scanner::StartInfo;
use crate::codec::{
    ByteRange, FailureReport, Flag, Head, HeadError, Method, Path, PathCache, RawHead, Uri,
};

use super::RelayAction;
use super::auth::{AuthResult, Authenticator};
use super::session::SessionKey;
use super::types::{RelayConfig, RelayEvent, RelayMsg, SessionEndReason};
use super::users::Users;
use crate::conn::{
    Action, CloseReason, ConnId, ConnKind, Counters, MSRP_PORT, Origin, Part, Resumable, Slots,
    Transport, bump, drop_by,
};

/// How often the idle scan runs at most (more often when the idle timeout is short).
const IDLE_SCAN_EVERY: Duration = Duration::from_secs(10);
/// Dead timer entries tolerated beyond twice the live ones before the heap is rebuilt.
const TIMER_SLACK: usize = 4096;

#[derive(Debug)]
struct Conn {
    generation: u32,
    kind: ConnKind,
    last_active: Instant,
    succeeded: bool,
    auth_failures: u32,
    session: Option<u64>,
    /// Requests we passed on over this connection, awaiting their responses, by our
    /// transaction id: a connection's close fails its own and looks at no other.
    txns: HashMap<u64, Txn>,
    /// Frame bytes read from it and passed on to it (heads and bodies), for the
    /// control plane's session and connection lists.
    bytes_in: u64,
    bytes_out: u64,
    /// Why the relay asked for its close, once it has (for the session-end event).
    closing: Option<CloseReason>,
}

#[derive(Debug)]
struct Session {
    slot: u32,
    generation: u32,
    expires: Instant,
    uri: String,
    /// Who authenticated it (`loopback` in protected mode).
    user: String,
    /// Host and port of the client's own URI (first From-Path URI of its AUTH): where a
    /// request from elsewhere must be going next (RFC 4976 §6.4); and the same as one
    /// `host[:port]` text, for a byte comparison first.
    client: (String, Option<u16>),
    client_authority: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dest {
    /// A connection of this core.
    Conn(ConnId),
    /// Routing continues on another core.
    Core(u16),
    /// Refused: body pieces are dropped.
    Discard,
}

mod auth_flow;
mod ops;
mod route;
mod txn;

pub use ops::{ConnInfo, SessionInfo};

pub use route::Handoff;
use route::*;
use txn::*;

/// A frame being passed through.
#[derive(Debug)]
struct Stream {
    dest: Dest,
    /// The connection whose write queue limits this stream (backpressure).
    bp: Option<(u16, u32)>,
    /// The transaction id we gave the frame passed on ([`Relay::new_tid`]).
    tid: u64,
    has_body: bool,
    /// The 200 owed to the previous hop once the chunk is in (§6.4.1).
    reply: Option<(ConnId, PrevHop)>,
    /// A transaction awaits the next hop's response, under `tid` on the destination.
    txn: bool,
}

impl Stream {
    /// The end-line for the frame passed on, with the CRLF that follows a body.
    fn end_line(&self, flag: Flag) -> Bytes {
        let text = TidText::of(self.tid);
        let tid = text.as_str();
        let mut b = BytesMut::with_capacity(tid.len() + 12);
        if self.has_body {
            encode::body_end_line(&mut b, tid, flag);
        } else {
            encode::end_line(&mut b, tid, flag);
        }
        b.freeze()
    }

    fn discard() -> Stream {
        Stream {
            dest: Dest::Discard,
            bp: None,
            tid: 0,
            has_body: false,
            reply: None,
            txn: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    Txn(u32, u64),
    Session(u64),
    Probation(u32, u32),
}

// Transient, on the stack only: boxing would cost an allocation per frame.
#[allow(clippy::large_enum_variant)]
enum Step {
    Done(Stream),
    Again(Bytes),
}

/// One core's relay.
pub struct Relay {
    cfg: RelayConfig,
    auth: Authenticator,
    protected: bool,
    rng: StdRng,
    counters: Arc<Counters>,
    /// This core's connection ids: the server's, shared so that the relay can name the
    /// outbound connections it asks for.
    slots: Rc<RefCell<Slots>>,
    /// Per-connection state by slot (the server's slots, so the table stays dense).
    conns: Vec<Option<Conn>>,
    sessions: HashMap<u64, Session>,
    streams: HashMap<Origin, Stream>,
    /// Open transactions on all connections (their entries live in each [`Conn`]).
    txn_count: usize,
    /// Transactions of chunks still streaming to a connection that closed, by tid:
    /// failed (481) when their chunk ends, as the sender then expects (the 200 first).
    orphans: HashMap<u64, Txn>,
    /// To-Paths and From-Paths seen lately: a session's frames all carry the same ones.
    paths: PathCache,
    outbound: HashMap<(String, u16, Transport), ConnId>,
    timers: BinaryHeap<Reverse<(Instant, Timer)>>,
    /// Transaction timers, in deadline order: they all run for `txn_timeout` from now, so
    /// a queue keeps them sorted at no cost (one is pushed per message). One that would
    /// not be last goes to `timers` instead.
    txn_timers: VecDeque<(Instant, u32, u64)>,
    last_idle_scan: Instant,
    /// The earliest deadline, see [`Relay::poll_timeout`].
    wake_at: Option<Instant>,
    actions: VecDeque<RelayAction>,
    /// Events for the control plane ([`Relay::poll_event`]); only kept once
    /// [`Relay::set_events`] turned them on.
    events: VecDeque<RelayEvent>,
    events_on: bool,
    base_uri: String,
    /// The 413 comment, naming the configured limit.
    too_large: String,
}

impl Relay {
    /// A relay core. `users` is `None` for protected mode (loopback-only AUTH). `secret`
    /// keys the digest nonces and must be the same on every core. `slots` are the core's
    /// connection ids, shared with the server's connection map.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        cfg: RelayConfig,
        users: Option<Arc<Users>>,
        secret: [u8; 32],
        seed: [u8; 32],
        counters: Arc<Counters>,
        slots: Rc<RefCell<Slots>>,
        now: Instant,
    ) -> Relay {
        let protected = users.is_none();
        let max_body = cfg.max_non_send_body;
        let auth = Authenticator::new(cfg.realm.clone(), users, secret, cfg.nonce_lifetime, now);
        // A relay listening on TLS only names itself with an msrps: URI.
        let (scheme, port) = match (cfg.ports.first(), cfg.tls_ports.first()) {
            (None, Some(&p)) => ("msrps", p),
            (p, _) => ("msrp", p.copied().unwrap_or(MSRP_PORT)),
        };
        let base_uri = format!(
            "{scheme}://{}:{port};tcp",
            cfg.hosts.first().map_or("localhost", String::as_str),
        );
        Relay {
            cfg,
            auth,
            protected,
            rng: StdRng::from_seed(seed),
            counters,
            slots,
            conns: Vec::new(),
            sessions: HashMap::new(),
            streams: HashMap::new(),
            txn_count: 0,
            orphans: HashMap::new(),
            paths: PathCache::new(),
            outbound: HashMap::new(),
            timers: BinaryHeap::new(),
            txn_timers: VecDeque::new(),
            last_idle_scan: now,
            wake_at: None,
            actions: VecDeque::new(),
            events: VecDeque::new(),
            events_on: false,
            base_uri,
            too_large: format!("body of a non-SEND request over {max_body} bytes"),
        }
    }

    /// Replaces the user database (SIGHUP). `None` switches to protected mode.
    pub fn set_users(&mut self, users: Option<Arc<Users>>) {
        self.protected = users.is_none();
        self.auth.set_users(users);
    }

    pub fn config(&self) -> &RelayConfig {
        &self.cfg
    }

    /// The next thing to do, if any.
    pub fn poll_action(&mut self) -> Option<RelayAction> {
        self.actions.pop_front()
    }

    /// When [`Relay::handle_timeout`] is next needed: the earliest timer, or the next idle
    /// scan while connections are open. `None`: nothing is pending.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.wake_at
    }

    /// [`Relay::poll_timeout`] worked out from the timers (kept in `wake_at`, which
    /// pushing a timer only lowers: the worker asks after every input).
    fn next_wake(&self) -> Option<Instant> {
        let heap = self.timers.peek().map(|Reverse((t, _))| *t);
        let fifo = self.txn_timers.front().map(|&(t, ..)| t);
        let idle = (self.open_conns() > 0).then(|| self.last_idle_scan + self.idle_scan_every());
        [heap, fifo, idle].into_iter().flatten().min()
    }

    fn idle_scan_every(&self) -> Duration {
        // At least ten times per idle timeout, so a short one is honoured too.
        IDLE_SCAN_EVERY.min(self.cfg.idle_timeout / 10)
    }

    fn open_conns(&self) -> usize {
        usize::try_from(
            self.counters
                .connections_open
                .load(std::sync::atomic::Ordering::Relaxed),
        )
        .unwrap_or(usize::MAX)
    }

    /// Number of live sessions, transactions, streams and connections on this core.
    pub fn table_sizes(&self) -> (usize, usize, usize, usize) {
        let conns = self.conns.iter().filter(|c| c.is_some()).count();
        (
            self.sessions.len(),
            self.txn_count + self.orphans.len(),
            self.streams.len(),
            conns,
        )
    }

    // ----- connections -----

    /// A connection of this core opened (accepted by the server, or made for an
    /// [`Action::Connect`] the relay asked for): from now on frames may arrive on it.
    pub fn handle_open(&mut self, now: Instant, id: ConnId, kind: ConnKind) {
        let inbound = !kind.is_outbound();
        let conn = Conn {
            generation: id.generation,
            kind,
            last_active: now,
            succeeded: false,
            auth_failures: 0,
            session: None,
            txns: HashMap::new(),
            bytes_in: 0,
            bytes_out: 0,
            closing: None,
        };
        let i = id.slot as usize;
        if self.conns.len() <= i {
            self.conns.resize_with(i + 1, || None);
        }
        self.conns[i] = Some(conn);
        if inbound {
            self.push_timer(
                now + self.cfg.probation,
                Timer::Probation(id.slot, id.generation),
            );
        }
        bump(&self.counters.connections_open, 1);
        bump(&self.counters.connections_total, 1);
        let scan = self.last_idle_scan + self.idle_scan_every();
        self.wake_at = Some(self.wake_at.map_or(scan, |w| w.min(scan)));
    }

    fn conn(&self, slot: u32, generation: u32) -> Option<&Conn> {
        self.conns
            .get(slot as usize)?
            .as_ref()
            .filter(|c| c.generation == generation)
    }

    fn conn_mut(&mut self, slot: u32, generation: u32) -> Option<&mut Conn> {
        self.conns
            .get_mut(slot as usize)?
            .as_mut()
            .filter(|c| c.generation == generation)
    }

    /// A connection of this core made a successful request (ends probation, §6.1).
    /// Origins on other cores are theirs to mark.
    fn mark_succeeded(&mut self, origin: Origin) {
        if let Origin::Conn(c) = origin
            && c.core == self.cfg.core
            && let Some(conn) = self.conn_mut(c.slot, c.generation)
        {
            conn.succeeded = true;
        }
    }

    fn is_alive(&self, id: ConnId) -> bool {
        id.core == self.cfg.core && self.conn(id.slot, id.generation).is_some()
    }

    /// A connection of this core is gone: drop its session, abort what it was sending,
    /// and fail what was waiting on it: a chunk it had taken whole, with 408 (no answer
    /// will come) now, one it was still being sent, with 481 once that chunk has come in
    /// whole and been answered 200 (RFC 4976 §6.4.1).
    pub fn handle_closed(&mut self, now: Instant, id: ConnId) {
        if self.conn(id.slot, id.generation).is_none() {
            return;
        }
        let Some(conn) = self.conns[id.slot as usize].take() else {
            return;
        };
        if let Some(key) = conn.session
            && let Some(session) = self.sessions.remove(&key)
        {
            drop_by(&self.counters.sessions, 1);
            let reason = match conn.closing {
                Some(r) => SessionEndReason::Closed(r),
                None => SessionEndReason::ConnectionClosed,
            };
            self.session_ended(key, &session, conn.kind.peer(), reason);
        }
        if let ConnKind::Outbound {
            host,
            port,
            transport,
        } = conn.kind
        {
            let k = (host, port, transport);
            if self.outbound.get(&k) == Some(&id) {
                self.outbound.remove(&k);
            }
        }
        drop_by(&self.counters.connections_open, 1);
        self.handle_abort(Origin::Conn(id));
        for (tid, t) in conn.txns {
            self.txn_count -= 1;
            drop_by(&self.counters.transactions, 1);
            if t.deadline.is_some() {
                self.fail_txn(now, t, 408);
            } else {
                self.orphans.insert(tid, t);
            }
        }
    }

    /// The connection whose queue the frame from `origin` is feeding, for backpressure.
    pub fn backpressure_target(&self, origin: ConnId) -> Option<(u16, u32)> {
        self.streams.get(&Origin::Conn(origin)).and_then(|s| s.bp)
    }

    // ----- frames -----

    /// The head of a frame received on connection `from` of this core.
    pub fn handle_head(&mut self, now: Instant, from: ConnId, raw: RawHead) {
        let (head, start, has_body) = raw.into_parts();
        if let Some(c) = self.conn_mut(from.slot, from.generation) {
            c.last_active = now;
            c.bytes_in += head.len() as u64;
        }
        bump(&self.counters.frames_in, 1);
        bump(&self.counters.bytes_in, head.len() as u64);
        if tracing::enabled!(tracing::Level::TRACE) {
            let line = head.split(|&c| c == b'\r').next().unwrap_or_default();
            tracing::trace!(core = from.core, slot = from.slot, start = %String::from_utf8_lossy(line), has_body, "frame in");
        }
        self.route(now, Origin::Conn(from), head, Some(start), has_body);
    }

    /// A body piece of the current frame from `origin`.
    pub fn handle_body(&mut self, origin: Origin, bytes: Bytes) {
        let n = bytes.len() as u64;
        if let Origin::Conn(c) = origin
            && c.core == self.cfg.core
        {
            bump(&self.counters.bytes_in, n);
            if let Some(conn) = self.conn_mut(c.slot, c.generation) {
                conn.bytes_in += n;
            }
        }
        let Some(s) = self.streams.get(&origin) else {
            return;
        };
        match s.dest {
            Dest::Conn(c) => {
                bump(&self.counters.bytes_out, n);
                if let Some(conn) = self.conn_mut(c.slot, c.generation) {
                    conn.bytes_out += n;
                }
                self.write_part(c, bytes, Part::Middle(origin));
            }
            Dest::Core(k) => self.mesh(k, RelayMsg::Body { origin, bytes }),
            Dest::Discard => {}
        }
    }

    /// The end-line of the current frame from `origin`.
    pub fn handle_end(&mut self, now: Instant, origin: Origin, flag: Flag) {
        if let Origin::Conn(c) = origin
            && c.core == self.cfg.core
            && let Some(conn) = self.conn_mut(c.slot, c.generation)
        {
            conn.last_active = now;
        }
        let Some(s) = self.streams.remove(&origin) else {
            return;
        };
        match s.dest {
            Dest::Conn(c) => {
                self.write_part(c, s.end_line(flag), Part::End(origin));
                bump(&self.counters.frames_out, 1);
                // The 200 for the chunk first, then any REPORT about its fate.
                if let Some((conn, p)) = s.reply {
                    let (tid, to, from) =
                        (p.bytes(p.tid), p.bytes(p.from_first), p.bytes(p.to_first));
                    let len = encode::response_len(tid, Some("OK"), to, from, &[]);
                    let mut b = BytesMut::with_capacity(len);
                    encode::response(&mut b, tid, 200, Some("OK"), to, from, &[]);
                    self.write(conn, b.freeze());
                }
                if s.txn {
                    // The whole chunk is passed on: its Failure-Report timer starts.
                    let deadline = now + self.cfg.txn_timeout;
                    if let Some(t) = self.txn_mut(c.slot, s.tid) {
                        t.deadline = Some(deadline);
                        self.push_timer(deadline, Timer::Txn(c.slot, s.tid));
                    } else if let Some(t) = self.orphans.remove(&s.tid) {
                        // The next hop went away while the chunk was coming in.
                        self.fail_txn(now, t, 481);
                    }
                }
            }
            Dest::Core(k) => self.mesh(k, RelayMsg::End { origin, flag }),
            Dest::Discard => {}
        }
    }

    /// The frame from `origin` stops in the middle (its connection closed): end what was
    /// passed on with `#` so the next hop stays in step (RFC 4975 §7.1). Its transaction
    /// is dropped: the sender abandoned the chunk, nothing is owed to it.
    pub fn handle_abort(&mut self, origin: Origin) {
        let Some(s) = self.streams.remove(&origin) else {
            return;
        };
        match s.dest {
            Dest::Conn(c) => {
                self.write_part(c, s.end_line(Flag::Aborted), Part::End(origin));
                if s.txn && self.remove_txn(c.slot, s.tid).is_none() {
                    self.orphans.remove(&s.tid);
                }
            }
            Dest::Core(k) => self.mesh(k, RelayMsg::Abort { origin }),
            Dest::Discard => {}
        }
    }

    /// The body of the current non-SEND request from connection `from` passed the
    /// RFC 4975 §7.1 limit (the scanner stopped; the stream cannot be resynced): what
    /// was passed on is ended with `#`, the request is answered with 413 when its head
    /// names a tid and a From-Path (never a REPORT, nor a request already refused at its
    /// head), and the connection is closed.
    pub fn handle_body_too_large(&mut self, from: ConnId, head: &[u8]) {
        // A request refused at its head has had its answer already.
        let refused = self
            .streams
            .get(&Origin::Conn(from))
            .is_none_or(|s| s.dest == Dest::Discard);
        self.handle_abort(Origin::Conn(from));
        let is_report = head
            .split(|&c| c == b'\r')
            .next()
            .is_some_and(|l| l.ends_with(b" REPORT"));
        if !is_report
            && !refused
            && let Some((tid, from_first, true)) = fallback_reply(head)
        {
            // Non-SEND requests are answered along their whole From-Path (§7.2).
            let to = match Head::parse(head) {
                Ok(h) => h.from_path().as_str(),
                Err(_) => from_first,
            };
            let mut b = BytesMut::with_capacity(160);
            encode::response(
                &mut b,
                tid,
                413,
                Some(&self.too_large),
                to,
                &self.base_uri,
                &[],
            );
            self.write(from, b.freeze());
        }
        if from.core == self.cfg.core {
            self.close(from.slot, from.generation, CloseReason::BodyTooLarge);
        }
    }

    /// A message from another core.
    pub fn handle_mesh(&mut self, now: Instant, msg: RelayMsg) {
        match msg {
            RelayMsg::Handoff(h) => {
                let origin = h.origin;
                let stream = self.take_handoff(now, *h);
                self.set_stream(origin, stream);
            }
            RelayMsg::Body { origin, bytes } => self.handle_body(origin, bytes),
            RelayMsg::End { origin, flag } => self.handle_end(now, origin, flag),
            RelayMsg::Abort { origin } => self.handle_abort(origin),
        }
    }

    /// The send queue of connection `conn` interrupted the chunk it carried with our
    /// transaction id `tid` (as written): its rest goes out as a new chunk that gets its
    /// own response (RFC 4976 §6.4.1, re-chunking), so the transaction owes one more.
    pub fn handle_rechunked(&mut self, conn: ConnId, tid: &[u8]) {
        let key = core::str::from_utf8(tid).map_or(0, tid_key);
        if let Some(t) = self
            .conn_mut(conn.slot, conn.generation)
            .and_then(|c| c.txns.get_mut(&key))
        {
            t.pieces += 1;
        }
    }

    fn txn_mut(&mut self, slot: u32, tid: u64) -> Option<&mut Txn> {
        self.conns
            .get_mut(slot as usize)?
            .as_mut()?
            .txns
            .get_mut(&tid)
    }

    fn has_txn(&self, slot: u32, tid: u64) -> bool {
        self.conns
            .get(slot as usize)
            .and_then(Option::as_ref)
            .is_some_and(|c| c.txns.contains_key(&tid))
    }

    /// A response for `tid` came on `slot`: the transaction it ends, in one lookup. A
    /// 200 for one piece of a chunk the send queue cut leaves it waiting for the others.
    fn answer_txn(&mut self, slot: u32, tid: u64, ok: bool) -> Answer {
        let Some(c) = self.conns.get_mut(slot as usize).and_then(Option::as_mut) else {
            return Answer::Unknown;
        };
        match c.txns.entry(tid) {
            Entry::Occupied(mut e) if ok && e.get().pieces > 1 => {
                e.get_mut().pieces -= 1;
                Answer::MoreOwed
            }
            Entry::Occupied(e) => {
                self.txn_count -= 1;
                drop_by(&self.counters.transactions, 1);
                Answer::Done(e.remove())
            }
            Entry::Vacant(_) => Answer::Unknown,
        }
    }

    fn remove_txn(&mut self, slot: u32, tid: u64) -> Option<Txn> {
        let t = self
            .conns
            .get_mut(slot as usize)?
            .as_mut()?
            .txns
            .remove(&tid)?;
        self.txn_count -= 1;
        drop_by(&self.counters.transactions, 1);
        Some(t)
    }

    /// Schedules `timer` at `at`. Call it after the state it refers to exists.
    ///
    /// Timers are not removed when what they guard ends early (a transaction answered,
    /// a session closed), they just find nothing when due. So that these dead entries
    /// cannot pile up (one per message for `txn_timeout`: 3 million at 100,000 msg/s),
    /// the heap is rebuilt with the live ones whenever dead ones clearly outnumber them;
    /// each rebuild follows at least as many pushes as it visits entries.
    fn push_timer(&mut self, at: Instant, timer: Timer) {
        self.wake_at = Some(self.wake_at.map_or(at, |w| w.min(at)));
        if let Timer::Txn(slot, tid) = timer
            && self.txn_timers.back().is_none_or(|&(last, ..)| last <= at)
        {
            self.txn_timers.push_back((at, slot, tid));
            if self.txn_timers.len() > 2 * self.txn_count + TIMER_SLACK {
                let mut q = std::mem::take(&mut self.txn_timers);
                q.retain(|&(_, slot, tid)| self.has_txn(slot, tid));
                self.txn_timers = q;
                self.txn_timers
                    .shrink_to(2 * self.txn_timers.len() + TIMER_SLACK);
            }
            return;
        }
        self.timers.push(Reverse((at, timer)));
        // Upper bound on live timers: one per transaction, session and connection slot.
        let live = self.txn_count + self.sessions.len() + self.conns.len();
        if self.timers.len() <= 2 * live + TIMER_SLACK {
            return;
        }
        let mut v = std::mem::take(&mut self.timers).into_vec();
        v.retain(|Reverse((_, t))| match *t {
            Timer::Txn(slot, tid) => self.has_txn(slot, tid),
            Timer::Session(key) => self.sessions.contains_key(&key),
            Timer::Probation(slot, generation) => {
                self.conn(slot, generation).is_some_and(|c| !c.succeeded)
            }
        });
        v.shrink_to(2 * v.len() + TIMER_SLACK);
        self.timers = BinaryHeap::from(v);
    }

    /// Number of timers (due or not, live or dead), for tests.
    pub fn timer_count(&self) -> usize {
        self.timers.len() + self.txn_timers.len()
    }

    /// Runs due timers: 408 REPORTs (§6.4.1), session expiry (§6.3), probation (§6.1)
    /// and idle connections (§6.5).
    pub fn handle_timeout(&mut self, now: Instant) {
        loop {
            // The earlier of the two sources' first timers, if it is due.
            let heap = self.timers.peek().map(|Reverse((t, _))| *t);
            let fifo = self.txn_timers.front().map(|&(t, ..)| t);
            let timer = match (heap, fifo) {
                (Some(h), f) if h <= now && f.is_none_or(|f| h <= f) => match self.timers.pop() {
                    Some(Reverse((_, timer))) => timer,
                    None => break,
                },
                (_, Some(f)) if f <= now => match self.txn_timers.pop_front() {
                    Some((_, slot, tid)) => Timer::Txn(slot, tid),
                    None => break,
                },
                _ => break,
            };
            match timer {
                Timer::Txn(slot, tid) => {
                    let due = self
                        .txn_mut(slot, tid)
                        .is_some_and(|x| x.deadline.is_some_and(|d| d <= now));
                    if due {
                        if let Some(txn) = self.remove_txn(slot, tid) {
                            if matches!(txn.kind, TxnKind::Send { .. }) {
                                bump(&self.counters.txn_timeouts, 1);
                                // The connection it went out on, which did not answer.
                                let peer = self
                                    .conns
                                    .get(slot as usize)
                                    .and_then(Option::as_ref)
                                    .and_then(|c| c.kind.peer())
                                    .map(tracing::field::display);
                                tracing::debug!(peer, slot, "transaction timed out");
                            }
                            self.fail_txn(now, txn, 408);
                        }
                    }
                }
                Timer::Session(key) => {
                    if let Some(s) = self.sessions.get(&key)
                        && s.expires <= now
                    {
                        let (slot, generation) = (s.slot, s.generation);
                        let peer = self.conn(slot, generation).and_then(|c| c.kind.peer());
                        tracing::info!(peer = peer.map(tracing::field::display), slot, uri = %s.uri, "session expired");
                        if let Some(session) = self.sessions.remove(&key) {
                            drop_by(&self.counters.sessions, 1);
                            self.session_ended(key, &session, peer, SessionEndReason::Expired);
                        }
                        if let Some(c) = self.conn_mut(slot, generation)
                            && c.session == Some(key)
                        {
                            c.session = None;
                        }
                    }
                }
                Timer::Probation(slot, generation) => {
                    if self.conn(slot, generation).is_some_and(|c| !c.succeeded) {
                        self.close(slot, generation, CloseReason::Probation);
                    }
                }
            }
        }
        if now.duration_since(self.last_idle_scan) >= self.idle_scan_every() {
            self.last_idle_scan = now;
            let idle = self.cfg.idle_timeout;
            let stale: Vec<(u32, u32)> = self
                .conns
                .iter()
                .enumerate()
                .filter_map(|(i, c)| c.as_ref().map(|c| (i as u32, c)))
                .filter(|(_, c)| now.duration_since(c.last_active) >= idle)
                .map(|(i, c)| (i, c.generation))
                .collect();
            for (slot, generation) in stale {
                self.close(slot, generation, CloseReason::Idle);
            }
        }
        self.wake_at = self.next_wake();
    }

    // ----- helpers -----

    /// `true` when `uri` names this relay: our host, transport tcp, and scheme msrp with
    /// one of our TCP ports, or msrps with one of our TLS ports (or no port). Without a
    /// TLS listener no msrps: URI is ours.
    fn is_ours(&self, uri: &Uri<'_>) -> bool {
        // Hosts as written usually match ours byte for byte; case is looked at only when
        // they do not.
        let host = uri.host_str();
        let ports = if uri.is_secure() {
            &self.cfg.tls_ports
        } else {
            &self.cfg.ports
        };
        !ports.is_empty()
            && uri.transport().eq_ignore_ascii_case("tcp")
            && uri.port().is_none_or(|p| ports.contains(&p))
            && self
                .cfg
                .hosts
                .iter()
                .any(|h| h.as_bytes() == host.as_bytes() || h.eq_ignore_ascii_case(host))
    }

    /// The connection to `host:port` over `transport`, opened (and announced to the
    /// relay itself) if there is none; `None` when the core has no free connection slot.
    fn outbound_conn(
        &mut self,
        now: Instant,
        host: String,
        port: u16,
        transport: Transport,
    ) -> Option<ConnId> {
        if let Some(id) = self.outbound.get(&(host.clone(), port, transport)).copied()
            && self.is_alive(id)
        {
            return Some(id);
        }
        let id = self.slots.borrow_mut().alloc()?;
        let kind = ConnKind::Outbound {
            host: host.clone(),
            port,
            transport,
        };
        self.handle_open(now, id, kind);
        tracing::info!(%host, port, transport = transport.name(), slot = id.slot, "opening outbound connection to next hop");
        self.outbound.insert((host.clone(), port, transport), id);
        self.actions.push_back(Action::Connect {
            conn: id,
            host,
            port,
            transport,
        });
        Some(id)
    }

    /// A fresh transaction id for a frame we send, as a number: on the wire it is
    /// [`TidText`], and a response's tid maps back to it by [`tid_key`]. Never 0, the
    /// key of tids we did not make.
    fn new_tid(&mut self) -> u64 {
        self.rng.random::<u64>().max(1)
    }

    /// Queues a whole frame for a connection, on this core or another.
    fn write(&mut self, conn: ConnId, bytes: Bytes) {
        self.write_part(conn, bytes, Part::Whole);
    }

    /// Queues one part of a frame for a connection, on this core or another (the server
    /// carries it there).
    fn write_part(&mut self, conn: ConnId, bytes: Bytes, part: Part) {
        self.actions.push_back(Action::Write { conn, bytes, part });
    }

    fn mesh(&mut self, core: u16, msg: RelayMsg) {
        self.actions.push_back(Action::ToCore { core, msg });
    }

    fn close(&mut self, slot: u32, generation: u32, reason: CloseReason) {
        if let Some(c) = self.conn_mut(slot, generation) {
            c.closing.get_or_insert(reason);
        }
        let conn = ConnId {
            core: self.cfg.core,
            slot,
            generation,
        };
        self.actions.push_back(Action::Close { conn, reason });
    }
}

/// What a response did to the transaction it names ([`Relay::answer_txn`]).
enum Answer {
    Done(Txn),
    MoreOwed,
    Unknown,
}

/// Our transaction id as it goes on the wire: 16 lower-case hex digits.
struct TidText([u8; 16]);

impl TidText {
    /// `v` in hex, all 16 digits at once (one per byte of a `u128`): this runs for
    /// every frame passed on.
    fn of(v: u64) -> TidText {
        // Nibble k of `v` into byte k of `x`.
        let mut x = u128::from(v);
        x = (x | x << 32) & 0x0000_0000_ffff_ffff_0000_0000_ffff_ffff;
        x = (x | x << 16) & 0x0000_ffff_0000_ffff_0000_ffff_0000_ffff;
        x = (x | x << 8) & 0x00ff_00ff_00ff_00ff_00ff_00ff_00ff_00ff;
        x = (x | x << 4) & bytes_of(0x0f);
        // 0..=9 to '0'..='9', 10..=15 to 'a'..='f' (no byte carries into the next).
        let letters = ((x + bytes_of(0x06)) >> 4) & bytes_of(0x01);
        TidText((x + bytes_of(b'0') + letters * 0x27).to_be_bytes())
    }
    fn as_str(&self) -> &str {
        // Hex digits only: always UTF-8.
        core::str::from_utf8(&self.0).unwrap_or_default()
    }
}

/// The transaction key of a tid we made (16 hex digits, [`TidText`], or `TID.N` for a
/// piece of a chunk the send queue interrupted); other tids map to 0, which we never use.
fn tid_key(tid: &str) -> u64 {
    let ours = match tid.as_bytes().get(16) {
        None => tid,
        Some(b'.') if tid.len() > 17 && tid.as_bytes()[17..].iter().all(u8::is_ascii_digit) => {
            &tid[..16]
        }
        Some(_) => return 0,
    };
    let Ok(b) = <[u8; 16]>::try_from(ours.as_bytes()) else {
        return 0;
    };
    // All 16 digits at once, the inverse of `TidText::of`.
    let x = u128::from_be_bytes(b);
    let high = bytes_of(0x80);
    // Per byte (all below 0x80): its high bit set when it lies in lo..=hi.
    let within = |lo: u8, hi: u8| (x + bytes_of(0x80 - lo)) & !(x + bytes_of(0x7f - hi)) & high;
    if x & high != 0 || within(b'0', b'9') | within(b'a', b'f') != high {
        return 0;
    }
    let mut n = (x & bytes_of(0x0f)) + ((x >> 6) & bytes_of(0x01)) * 9;
    n = (n | n >> 4) & 0x00ff_00ff_00ff_00ff_00ff_00ff_00ff_00ff;
    n = (n | n >> 8) & 0x0000_ffff_0000_ffff_0000_ffff_0000_ffff;
    n = (n | n >> 16) & 0x0000_0000_ffff_ffff_0000_0000_ffff_ffff;
    n = n | n >> 32;
    n as u64
}

/// `b` in each of the 16 bytes of a `u128`.
const fn bytes_of(b: u8) -> u128 {
    u128::from_ne_bytes([b; 16])
}

#[cfg(test)]
mod tests {
    use super::{TidText, tid_key};
    use rand::{Rng, SeedableRng};

    /// A response's tid finds the transaction it answers: the text we send maps back to
    /// the number we keyed it by, and no tid of another shape maps to a key we use.
    #[test]
    fn our_tids_map_back_to_their_keys() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(4976);
        let fixed = [1, 9, 0xa, 0xf0, u64::MAX, 0x0123_4567_89ab_cdef];
        for v in fixed
            .into_iter()
            .chain((0..100_000).map(|_| rng.random::<u64>().max(1)))
        {
            let hex = TidText::of(v);
            let text = hex.as_str();
            assert_eq!(text, format!("{v:016x}"));
            assert_eq!(tid_key(text), v, "{text}");
        }
        for other in [
            "",
            "abc",
            "0123456789abcdef0",
            "0123456789abcdeg",
            "x123456789abcdef",
            "0123456789ABCDEF",
            "0123456789abcde/",
            "0123456789abcde:",
            "`123456789abcdef",
            "0123456789abcdeG",
            "01234567\u{7f}9abcdef",
            "0123456\u{e9}9abcdef",
        ] {
            assert_eq!(tid_key(other), 0, "{other}");
        }
        // Any 16 ASCII bytes: a key exactly when all are lower-case hex digits, and then
        // the number they spell.
        for _ in 0..100_000 {
            let b: Vec<u8> = (0..16)
                .map(|_| match rng.random_range(0..4) {
                    0 => rng.random_range(0..128u8),
                    1 => b"/09:`afgAF"[rng.random_range(0..10)],
                    _ => b"0123456789abcdef"[rng.random_range(0..16)],
                })
                .collect();
            let text = std::str::from_utf8(&b).unwrap();
            let want = if b.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')) {
                u64::from_str_radix(text, 16).unwrap()
            } else {
                0
            };
            assert_eq!(tid_key(text), want, "{text:?}");
        }
    }
}
