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
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::codec::encode;
use crate::codec::scanner::StartInfo;
use crate::codec::{
    ByteRange, FailureReport, Flag, Head, HeadError, Method, PathCache, RawHead, Uri,
};

use super::RelayAction;
use super::auth::{AuthResult, Authenticator};
use super::session::SessionKey;
use super::types::{RelayConfig, RelayMsg};
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
}

#[derive(Debug)]
struct Session {
    slot: u32,
    generation: u32,
    expires: Instant,
    uri: String,
    /// Host and port of the client's own URI (first From-Path URI of its AUTH): where a
    /// request from elsewhere must be going next (RFC 4976 §6.4).
    client: (String, Option<u16>),
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

/// How the previous hop addressed a frame: the head as it arrived at this relay (shared
/// with the read buffer, no copy) and where its parts are. Responses and REPORTs to the
/// previous hop and the sender are addressed from these (RFC 4975 §7.2, RFC 4976 §6.4.1).
/// One shared buffer, so passing it on costs one reference count, not one per part.
#[derive(Debug, Clone)]
struct PrevHop {
    raw: Bytes,
    tid: (u16, u16),
    from_first: (u16, u16),
    from_all: (u16, u16),
    to_first: (u16, u16),
    message_id: (u16, u16),
}

impl PrevHop {
    fn of(raw: &Bytes, head: &Head<'_>) -> PrevHop {
        PrevHop {
            raw: raw.clone(),
            tid: span_of(raw, head.tid()),
            from_first: span_of(raw, head.from_path().first().as_str()),
            from_all: span_of(raw, head.from_path().as_str()),
            to_first: span_of(raw, head.to_path().first().as_str()),
            message_id: head.message_id().map_or((0, 0), |m| span_of(raw, m)),
        }
    }
    fn part(&self, span: (u16, u16)) -> &str {
        core::str::from_utf8(self.bytes(span)).unwrap_or("")
    }
    /// A part as bytes, for writing out: no UTF-8 check (the head was checked whole).
    fn bytes(&self, (s, e): (u16, u16)) -> &[u8] {
        self.raw
            .get(usize::from(s)..usize::from(e))
            .unwrap_or_default()
    }
    /// The request's transaction id.
    fn tid(&self) -> &str {
        self.part(self.tid)
    }
    /// The first From-Path URI: the previous hop.
    fn prev_uri(&self) -> &str {
        self.part(self.from_first)
    }
    /// The whole From-Path: the way back to the sender.
    fn return_path(&self) -> &str {
        self.part(self.from_all)
    }
    /// The first To-Path URI: this relay as the previous hop addressed it.
    fn our_uri(&self) -> &str {
        self.part(self.to_first)
    }
    /// The Message-ID ("" when the request had none).
    fn message_id(&self) -> &str {
        self.part(self.message_id)
    }
}

/// Where `s`, a slice of `raw`, lies in it (heads are under 64 KiB: the codec refuses
/// larger ones).
fn span_of(raw: &[u8], s: &str) -> (u16, u16) {
    let start = (s.as_ptr() as usize).wrapping_sub(raw.as_ptr() as usize);
    match start.checked_add(s.len()) {
        Some(end) if end <= raw.len() => match (u16::try_from(start), u16::try_from(end)) {
            (Ok(a), Ok(b)) => (a, b),
            _ => (0, 0),
        },
        _ => (0, 0),
    }
}

#[derive(Debug)]
enum TxnKind {
    /// A SEND: on an error response or timeout, REPORT to the sender (§6.4.1, §6.4.3).
    Send {
        fr: FailureReport,
        range: Option<ByteRange>,
        prev: PrevHop,
    },
    /// Another request: its response goes back to `reply` with the original tid.
    Other { orig_tid: String },
}

/// What the relay does with a request once its route is known depends on these only:
/// taken from the parsed head where it is routed, so that a request handed to another
/// core need not be parsed there again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Request {
    kind: RequestKind,
    fr: FailureReport,
    range: Option<ByteRange>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RequestKind {
    Send,
    Report,
    /// AUTH, NICKNAME or another method: answered along the whole From-Path.
    Other,
}

impl Request {
    fn of(method: Method<'_>, head: &Head<'_>) -> Request {
        Request {
            kind: match method {
                Method::Send => RequestKind::Send,
                Method::Report => RequestKind::Report,
                _ => RequestKind::Other,
            },
            fr: head.failure_report(),
            range: head.byte_range(),
        }
    }
}

/// A request for a session of another core (see [`MeshMsg::Handoff`]): everything the
/// owning core needs to pass it on ([`Relay::deliver`]) or refuse it.
#[derive(Debug)]
pub struct Handoff {
    origin: Origin,
    slot: u32,
    key: u64,
    /// The To-Path ends at this relay: there is no next hop (481 once the session is
    /// found to exist, as on the owning core).
    no_next_hop: bool,
    req: Request,
    prev: PrevHop,
    /// The head for the next hop, with `tid`; empty when `no_next_hop`.
    fwd: Bytes,
    /// Where the send queue may edit `fwd` to interrupt the chunk.
    resume: Option<Resumable>,
    tid: u64,
    has_body: bool,
}

/// A request rewritten for its next hop, ready to be queued there.
struct Outgoing {
    dest: ConnId,
    tid: u64,
    fwd: Bytes,
    resume: Option<Resumable>,
    has_body: bool,
}

/// Why a request from elsewhere for a client's session is refused (RFC 4976 §6.4).
const NOT_TOWARD_CLIENT: &str = "next To-Path URI is not the client of this session";

#[derive(Debug)]
struct Txn {
    kind: TxnKind,
    /// The previous hop of the request (where responses and REPORTs go first).
    reply: Origin,
    /// Set once the whole chunk has been passed on: the Failure-Report timer runs from
    /// there (RFC 4976 §6.4.1). `None` while it is still streaming.
    deadline: Option<Instant>,
    /// Responses still owed: one per piece the send queue cut the chunk into.
    pieces: u32,
}

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
    actions: VecDeque<RelayAction>,
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
            actions: VecDeque::new(),
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
            && self.sessions.remove(&key).is_some()
        {
            drop_by(&self.counters.sessions, 1);
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
        if let Some(c) = self.conn_mut(from.slot, from.generation) {
            c.last_active = now;
        }
        let (head, start, has_body) = raw.into_parts();
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
        if let Origin::Conn(c) = origin
            && c.core == self.cfg.core
        {
            bump(&self.counters.bytes_in, bytes.len() as u64);
        }
        let Some(s) = self.streams.get(&origin) else {
            return;
        };
        match s.dest {
            Dest::Conn(c) => {
                bump(&self.counters.bytes_out, bytes.len() as u64);
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
                                tracing::debug!(slot, "transaction timed out");
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
                        tracing::info!(uri = %s.uri, "session expired");
                        self.sessions.remove(&key);
                        drop_by(&self.counters.sessions, 1);
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
    }

    // ----- routing -----

    /// Routes a frame whose head arrived at this relay as `orig`. `start` is its start
    /// line as the scanner parsed it, so it is not read twice. Each hop through this
    /// relay itself (§6.4.2) routes the head again with our URI moved; a hop to a session
    /// of another core ends here ([`MeshMsg::Handoff`]).
    fn route(
        &mut self,
        now: Instant,
        origin: Origin,
        orig: Bytes,
        start: Option<StartInfo>,
        has_body: bool,
    ) {
        let mut head: Option<Bytes> = None;
        let mut start = start;
        let mut prev = None;
        // Each local hop removes one URI from the To-Path, so this ends; the bound is
        // a guard.
        for _ in 0..crate::codec::header::MAX_PATH_URIS {
            let raw = head.as_ref().unwrap_or(&orig);
            match self.route_step(now, origin, raw, &orig, start.take(), &mut prev, has_body) {
                Step::Done(stream) => return self.set_stream(origin, stream),
                Step::Again(h) => head = Some(h),
            }
        }
        self.set_stream(origin, Stream::discard());
    }

    /// Where the rest of `origin`'s current frame goes. A frame that goes nowhere (every
    /// response, every refused request) gets no entry: the body pieces and end-line of
    /// an origin without one are dropped just the same, and the entry would be copied
    /// into the map and out again for nothing.
    fn set_stream(&mut self, origin: Origin, stream: Stream) {
        if stream.dest == Dest::Discard {
            self.streams.remove(&origin);
        } else {
            self.streams.insert(origin, stream);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn route_step(
        &mut self,
        now: Instant,
        origin: Origin,
        raw: &Bytes,
        orig: &Bytes,
        start: Option<StartInfo>,
        prev: &mut Option<PrevHop>,
        has_body: bool,
    ) -> Step {
        let parsed = match start {
            Some(start) => Head::parse_after_start_with(raw, start, Some(&mut self.paths)),
            None => Head::parse(raw),
        };
        let head = match parsed {
            Ok(h) if has_body && h.is_request() && h.content_type().is_none() => {
                self.malformed(origin, raw, HeadError::MissingContentType);
                return Step::Done(Stream::discard());
            }
            Ok(h) => h,
            Err(e) => {
                self.malformed(origin, raw, e);
                return Step::Done(Stream::discard());
            }
        };
        let Some(method) = head.method() else {
            self.handle_response(now, origin, &head);
            return Step::Done(Stream::discard());
        };
        let p = prev
            .get_or_insert_with(|| {
                if raw.as_ptr() == orig.as_ptr() {
                    PrevHop::of(raw, &head)
                } else {
                    match Head::parse(orig) {
                        Ok(o) => PrevHop::of(orig, &o),
                        Err(_) => PrevHop::of(raw, &head),
                    }
                }
            })
            .clone();
        let first = head.to_path().first();
        if !self.is_ours(&first) {
            tracing::warn!(
                to = first.as_str(),
                "first To-Path URI is not this relay; dropping the connection (RFC 4976 §6.2)"
            );
            if let Origin::Conn(c) = origin
                && c.core == self.cfg.core
            {
                self.close(c.slot, c.generation, CloseReason::NotAddressedToUs);
            }
            return Step::Done(Stream::discard());
        }
        if let Origin::Conn(c) = origin
            && let Some(Conn {
                kind: ConnKind::Inbound {
                    relay: Some(id), ..
                },
                ..
            }) = self
                .conn(c.slot, c.generation)
                .filter(|_| c.core == self.cfg.core)
            && !id.matches(head.from_path().first().host_str())
        {
            // A relay identified by its certificate speaks for its own host only
            // (RFC 4976 §6.1, §6.3).
            tracing::info!(
                from = head.from_path().first().as_str(),
                "From-Path host is not in the peer's certificate"
            );
            self.reject(
                now,
                origin,
                &head,
                &p,
                403,
                "From-Path host does not match the peer certificate",
            );
            return Step::Done(Stream::discard());
        }
        if method == Method::Send && head.message_id().is_none() {
            self.reject(now, origin, &head, &p, 400, "SEND without Message-ID");
            return Step::Done(Stream::discard());
        }
        let max_uris = self
            .cfg
            .max_path_uris
            .min(crate::codec::header::MAX_PATH_URIS);
        if head.to_path().len() > max_uris {
            self.reject(now, origin, &head, &p, 400, "To-Path has too many URIs");
            return Step::Done(Stream::discard());
        }
        if head.from_path().len() >= max_uris {
            // Forwarding adds our URI to From-Path; it would exceed the limit.
            self.reject(now, origin, &head, &p, 400, "From-Path too long to forward");
            return Step::Done(Stream::discard());
        }
        if self.cfg.block_unknown_methods && matches!(method, Method::Other(_)) {
            self.reject(now, origin, &head, &p, 501, "method not allowed here");
            return Step::Done(Stream::discard());
        }
        let Some(sid) = first.session_id() else {
            // Addressed to the relay itself.
            if method == Method::Auth && head.to_path().len() == 1 {
                self.handle_auth(now, origin, &head);
            } else {
                self.reject(now, origin, &head, &p, 403, "not a session of this relay");
            }
            return Step::Done(Stream::discard());
        };
        let Some(sk) = SessionKey::decode(sid) else {
            self.reject(now, origin, &head, &p, 481, "unknown session");
            return Step::Done(Stream::discard());
        };
        if sk.core != self.cfg.core {
            if sk.core >= self.cfg.cores {
                self.reject(now, origin, &head, &p, 481, "unknown session");
                return Step::Done(Stream::discard());
            }
            // The owning core decides the rest; for probation (§6.1) a request passed on
            // to one of our sessions counts as successful here, on the sender's core.
            self.mark_succeeded(origin);
            let no_next_hop = head.to_path().len() == 1;
            let tid = self.new_tid();
            let (fwd, resume) = match no_next_hop {
                true => (Bytes::new(), None),
                false => forward_bytes(&head, tid, has_body),
            };
            let handoff = Handoff {
                origin,
                slot: sk.slot,
                key: sk.key,
                no_next_hop,
                req: Request::of(method, &head),
                prev: p,
                fwd,
                resume,
                tid,
                has_body,
            };
            self.mesh(sk.core, RelayMsg::Handoff(Box::new(handoff)));
            return Step::Done(Stream {
                dest: Dest::Core(sk.core),
                bp: Some((sk.core, sk.slot)),
                ..Stream::discard()
            });
        }
        let Some(owner) = self.session_owner(now, sk.slot, sk.key) else {
            self.reject(now, origin, &head, &p, 481, "unknown or expired session");
            return Step::Done(Stream::discard());
        };
        if head.to_path().len() == 1 {
            if method == Method::Auth && origin == Origin::Conn(owner) {
                self.handle_auth(now, origin, &head);
            } else {
                self.reject(now, origin, &head, &p, 481, "no next hop after this relay");
            }
            return Step::Done(Stream::discard());
        }
        if origin != Origin::Conn(owner) {
            // From elsewhere: it may only go to the session's owner (§6.4), and only when
            // the next URI is that client's.
            if !self.leads_to_client(sk.key, head.to_path().uris().nth(1).as_ref()) {
                self.reject(now, origin, &head, &p, 403, NOT_TOWARD_CLIENT);
                return Step::Done(Stream::discard());
            }
            return Step::Done(self.deliver(now, origin, &head, p, owner, has_body));
        }
        // From the owner: on to the next URI.
        let Some(next) = head.to_path().uris().nth(1) else {
            return Step::Done(Stream::discard());
        };
        if self.is_ours(&next) {
            let mut b = BytesMut::with_capacity(raw.len() + 8);
            encode::forward_head(&mut b, &head, head.tid());
            return Step::Again(b.freeze());
        }
        let host = next.host().to_string().to_ascii_lowercase();
        let port = next.port().unwrap_or(MSRP_PORT);
        let transport = if next.is_secure() {
            Transport::Tls
        } else {
            Transport::Tcp
        };
        let Some(dest) = self.outbound_conn(now, host, port, transport) else {
            self.reject(now, origin, &head, &p, 403, "relay at its connection limit");
            return Step::Done(Stream::discard());
        };
        Step::Done(self.deliver(now, origin, &head, p, dest, has_body))
    }

    /// Passes the head on to `dest` (a connection of this core) with a new transaction id
    /// and our URI moved from To-Path to From-Path (§6.4.1, §6.4.2).
    fn deliver(
        &mut self,
        now: Instant,
        origin: Origin,
        head: &Head<'_>,
        prev: PrevHop,
        dest: ConnId,
        has_body: bool,
    ) -> Stream {
        let tid = self.new_tid();
        let (fwd, resume) = forward_bytes(head, tid, has_body);
        let method = head.method().unwrap_or(Method::Report);
        let out = Outgoing {
            dest,
            tid,
            fwd,
            resume,
            has_body,
        };
        self.pass_on(now, origin, Request::of(method, head), prev, out)
    }

    /// Whether a request from elsewhere for session `key` goes on to its client: the
    /// To-Path URI after ours has the host and port of the client's own URI (§6.4).
    fn leads_to_client(&self, key: u64, next: Option<&Uri<'_>>) -> bool {
        let (Some(s), Some(next)) = (self.sessions.get(&key), next) else {
            return false;
        };
        let port = |p: Option<u16>| p.unwrap_or(MSRP_PORT);
        port(next.port()) == port(s.client.1) && next.host_str().eq_ignore_ascii_case(&s.client.0)
    }

    /// The session `slot`/`key` of this core, if it exists and has not expired: the
    /// connection that owns it.
    fn session_owner(&self, now: Instant, slot: u32, key: u64) -> Option<ConnId> {
        match self.sessions.get(&key) {
            Some(s) if s.slot == slot && s.expires > now => Some(ConnId {
                core: self.cfg.core,
                slot: s.slot,
                generation: s.generation,
            }),
            _ => None,
        }
    }

    /// A request handed over by another core for one of our sessions: the checks that
    /// need the session, then on to its owner (§6.4), as [`Relay::route_step`] would.
    fn take_handoff(&mut self, now: Instant, h: Handoff) -> Stream {
        let (code, why) = match self.session_owner(now, h.slot, h.key) {
            None => (481, "unknown or expired session"),
            Some(_) if h.no_next_hop => (481, "no next hop after this relay"),
            Some(_) if !self.leads_to_client(h.key, next_uri(&h.fwd).as_ref()) => {
                (403, NOT_TOWARD_CLIENT)
            }
            Some(owner) => {
                let out = Outgoing {
                    dest: owner,
                    tid: h.tid,
                    fwd: h.fwd,
                    resume: h.resume,
                    has_body: h.has_body,
                };
                return self.pass_on(now, h.origin, h.req, h.prev, out);
            }
        };
        tracing::debug!(code, why, "request refused");
        self.refuse(now, h.origin, h.req, &h.prev, code, why);
        Stream::discard()
    }

    /// Queues the rewritten head for its destination and gives the stream for the rest
    /// of the frame, with the 200 it owes; opens the transaction that awaits the next
    /// hop's response.
    fn pass_on(
        &mut self,
        now: Instant,
        origin: Origin,
        req: Request,
        prev: PrevHop,
        out: Outgoing,
    ) -> Stream {
        let Outgoing {
            dest,
            tid,
            fwd,
            resume,
            has_body,
        } = out;
        bump(&self.counters.bytes_out, fwd.len() as u64);
        self.write_part(dest, fwd, Part::Start(origin, resume));
        let cross = matches!(origin, Origin::Conn(c) if c.core != self.cfg.core);
        if cross {
            bump(&self.counters.deliveries_cross_core, 1);
        } else {
            bump(&self.counters.deliveries_same_core, 1);
        }
        self.mark_succeeded(origin);
        let fr = req.fr;
        let (reply, txn) = match req.kind {
            RequestKind::Send => {
                let reply = match (fr, origin) {
                    (FailureReport::Yes, Origin::Conn(c)) => Some((c, prev.clone())),
                    _ => None,
                };
                let txn = (fr != FailureReport::No).then(|| {
                    (
                        TxnKind::Send {
                            fr,
                            range: req.range,
                            prev,
                        },
                        origin,
                    )
                });
                (reply, txn)
            }
            RequestKind::Report => (None, None),
            RequestKind::Other => (
                None,
                Some((
                    TxnKind::Other {
                        orig_tid: prev.tid().to_string(),
                    },
                    origin,
                )),
            ),
        };
        let opened = match txn {
            Some((kind, reply)) => {
                let t = Txn {
                    kind,
                    reply,
                    deadline: None,
                    pieces: 1,
                };
                match self.conn_mut(dest.slot, dest.generation) {
                    Some(c) => {
                        c.txns.insert(tid, t);
                        self.txn_count += 1;
                        bump(&self.counters.transactions, 1);
                        true
                    }
                    None => {
                        // The next hop is gone already: nothing will answer.
                        self.fail_txn(now, t, 481);
                        false
                    }
                }
            }
            None => false,
        };
        Stream {
            dest: Dest::Conn(dest),
            bp: Some((dest.core, dest.slot)),
            tid,
            has_body,
            reply,
            txn: opened,
        }
    }

    /// A response arriving on a connection we sent a request over (§6.4.3).
    fn handle_response(&mut self, now: Instant, origin: Origin, head: &Head<'_>) {
        let Origin::Conn(c) = origin else {
            return;
        };
        if !self.is_ours(&head.to_path().first()) {
            tracing::debug!("response not addressed to us, dropped (RFC 4976 §6.4.3)");
            return;
        }
        let key = tid_key(head.tid());
        let code = head.status_code().unwrap_or(200);
        // A 200 for one piece of a chunk the send queue cut: more are owed.
        if code == 200
            && let Some(t) = self.txn_mut(c.slot, key)
            && t.pieces > 1
        {
            t.pieces -= 1;
            return;
        }
        let Some(txn) = self.remove_txn(c.slot, key) else {
            tracing::debug!(tid = head.tid(), "response matches no transaction, dropped");
            return;
        };
        match &txn.kind {
            TxnKind::Send { .. } => {
                if code != 200 {
                    self.fail_txn(now, txn, code);
                }
            }
            TxnKind::Other { orig_tid } => {
                let Origin::Conn(reply) = txn.reply else {
                    return;
                };
                let mut b = BytesMut::with_capacity(head.as_bytes().len() + 64);
                if !encode::forward_head(&mut b, head, orig_tid) {
                    return;
                }
                // Both ends on this relay: our next URI leaves the To-Path too, as on
                // the request's way in (§6.4.3).
                loop {
                    let next = match Head::parse(&b) {
                        Ok(h) if h.to_path().len() > 1 && self.is_ours(&h.to_path().first()) => {
                            let mut nb = BytesMut::with_capacity(b.len() + 8);
                            encode::forward_head(&mut nb, &h, orig_tid);
                            nb
                        }
                        _ => break,
                    };
                    b = next;
                }
                encode::end_line(&mut b, orig_tid, Flag::Complete);
                self.write(reply, b.freeze());
            }
        }
    }

    /// A transaction failed with `code`: REPORT to the sender when its Failure-Report
    /// asks for one (§6.4.1). A timeout (408) is reported only for Failure-Report yes.
    fn fail_txn(&mut self, now: Instant, txn: Txn, code: u16) {
        let TxnKind::Send { fr, range, prev } = txn.kind else {
            return;
        };
        let wanted = match fr {
            FailureReport::Yes => true,
            FailureReport::Partial => code != 408,
            FailureReport::No => false,
        };
        if wanted {
            self.report(
                now,
                prev.return_path(),
                prev.our_uri(),
                prev.message_id(),
                range,
                code,
                txn.reply,
            );
        }
    }

    /// Sends a REPORT along `to_path`. When its first URI is ours it is routed like any
    /// frame; otherwise it goes to the previous hop `via`, which leads to the sender.
    #[allow(clippy::too_many_arguments)]
    fn report(
        &mut self,
        now: Instant,
        to_path: &str,
        from_path: &str,
        message_id: &str,
        range: Option<ByteRange>,
        code: u16,
        via: Origin,
    ) {
        let tid = TidText::of(self.new_tid());
        let mut b = BytesMut::with_capacity(256);
        encode::report(
            &mut b,
            tid.as_str(),
            to_path,
            from_path,
            message_id,
            range,
            code,
            Some(encode::reason(code)),
        );
        bump(&self.counters.reports_sent, 1);
        let first_ours = to_path
            .split(' ')
            .next()
            .and_then(|u| Uri::parse(u).ok())
            .is_some_and(|u| self.is_ours(&u));
        if first_ours {
            let me = Origin::Internal(self.cfg.core);
            self.route(now, me, b.freeze(), None, false);
            self.handle_end(now, me, Flag::Complete);
        } else if let Origin::Conn(c) = via {
            self.write(c, b.freeze());
        }
    }

    /// Refuses a request: an error response to the previous hop (unless Failure-Report
    /// is `no`) and, for SEND, a REPORT to the sender (§6.4.1). REPORTs are never answered.
    #[allow(clippy::too_many_arguments)]
    fn reject(
        &mut self,
        now: Instant,
        origin: Origin,
        head: &Head<'_>,
        prev: &PrevHop,
        code: u16,
        why: &str,
    ) {
        let Some(method) = head.method() else {
            return;
        };
        tracing::debug!(code, why, method = method.as_str(), "request refused");
        self.refuse(now, origin, Request::of(method, head), prev, code, why);
    }

    /// [`Relay::reject`] for a request known by what it carries.
    fn refuse(
        &mut self,
        now: Instant,
        origin: Origin,
        req: Request,
        prev: &PrevHop,
        code: u16,
        why: &str,
    ) {
        if req.kind == RequestKind::Report {
            return;
        }
        let fr = req.fr;
        let is_send = req.kind == RequestKind::Send;
        if (!is_send || fr != FailureReport::No)
            && let Origin::Conn(c) = origin
        {
            let to = if is_send {
                prev.prev_uri()
            } else {
                prev.return_path()
            };
            let (tid, from) = (prev.tid(), prev.our_uri());
            let mut b =
                BytesMut::with_capacity(encode::response_len(tid, Some(why), to, from, &[]));
            encode::response(&mut b, tid, code, Some(why), to, from, &[]);
            self.write(c, b.freeze());
        }
        if is_send && fr != FailureReport::No {
            let mid = match prev.message_id() {
                "" => "unknown0",
                m => m,
            };
            let (to, from) = (prev.return_path(), prev.our_uri());
            self.report(now, to, from, mid, req.range, code, origin);
        }
    }

    /// A head that does not parse: 400 when the start line and From-Path can be found,
    /// else the connection is closed.
    fn malformed(&mut self, origin: Origin, raw: &[u8], e: HeadError) {
        tracing::debug!(error = %e, "malformed frame");
        let Origin::Conn(c) = origin else {
            return;
        };
        if raw
            .split(|&b| b == b'\r')
            .next()
            .is_some_and(|l| l.ends_with(b" REPORT"))
        {
            // Never answered, not even when malformed (RFC 4975 §7.1.2): dropped.
            return;
        }
        let answer = fallback_reply(raw).filter(|(_, _, is_req)| *is_req);
        match answer {
            Some((tid, from, _)) => {
                let comment = e.to_string();
                let (why, us) = (Some(comment.as_str()), self.base_uri.as_str());
                let mut b = BytesMut::with_capacity(encode::response_len(tid, why, from, us, &[]));
                encode::response(&mut b, tid, 400, why, from, us, &[]);
                self.write(c, b.freeze());
            }
            None if raw.starts_with(b"MSRP ") && !fallback_is_request(raw) => {
                // A response we cannot parse is dropped (§6.4.3).
            }
            None => {
                if c.core == self.cfg.core {
                    self.close(c.slot, c.generation, CloseReason::Malformed);
                }
            }
        }
    }

    // ----- AUTH (RFC 4976 §5.1, §6.3, §9.1) -----

    fn handle_auth(&mut self, now: Instant, origin: Origin, head: &Head<'_>) {
        let Origin::Conn(c) = origin else {
            return;
        };
        let Some(conn) = self.conn(c.slot, c.generation) else {
            return;
        };
        let loopback = conn.kind.is_loopback();
        let secure = !conn.kind.is_outbound()
            && conn.kind.transport().is_secure()
            && !self.cfg.tls_ports.is_empty();
        let peer = conn.kind.peer().map(tracing::field::display);
        let our_uri = head.to_path().first().as_str();
        let auth_info: Option<String>;
        let user: String;
        if self.protected {
            if !loopback {
                bump(&self.counters.auth_failed, 1);
                tracing::info!(
                    peer,
                    slot = c.slot,
                    "AUTH refused: protected mode admits loopback clients only"
                );
                self.auth_respond(head, c, 403, "relay is in protected mode", &[]);
                self.count_auth_failure(c);
                return;
            }
            user = "loopback".into();
            auth_info = None;
        } else {
            let creds = match head.authorization() {
                None => {
                    let ch = self.auth.challenge(now, &mut self.rng, false);
                    self.auth_challenge(head, c, &ch);
                    return;
                }
                Some(Err(_)) => {
                    bump(&self.counters.auth_failed, 1);
                    tracing::info!(peer, slot = c.slot, "AUTH failed: bad Authorization");
                    self.auth_respond(head, c, 400, "bad Authorization", &[]);
                    self.count_auth_failure(c);
                    return;
                }
                Some(Ok(cr)) => cr,
            };
            let last = head.to_path().last();
            match self.auth.verify(now, &mut self.rng, &creds, last.as_str()) {
                AuthResult::Ok {
                    username,
                    authentication_info,
                } => {
                    user = username;
                    auth_info = Some(authentication_info);
                }
                AuthResult::Stale => {
                    let ch = self.auth.challenge(now, &mut self.rng, true);
                    self.auth_challenge(head, c, &ch);
                    return;
                }
                AuthResult::Failed(why) => {
                    bump(&self.counters.auth_failed, 1);
                    tracing::info!(peer, slot = c.slot, user = creds.username, reason = ?why, "AUTH failed");
                    // Answer first: the Close that the last allowed failure queues
                    // drops whatever is written after it.
                    let last = self.conn(c.slot, c.generation).is_some_and(|x| {
                        x.auth_failures.saturating_add(1) >= self.cfg.max_auth_failures
                    });
                    if last {
                        self.auth_respond(head, c, 403, "too many failed AUTH requests", &[]);
                    } else {
                        let ch = self.auth.challenge(now, &mut self.rng, false);
                        self.auth_challenge(head, c, &ch);
                    }
                    self.count_auth_failure(c);
                    return;
                }
            }
        }
        // Expires bounds (§6.3): 423 with Min-Expires or Max-Expires.
        let (min, max) = (self.cfg.expires_min, self.cfg.expires_max);
        let bound = match head.expires() {
            Some(e) if e < min => Some(("Min-Expires", min)),
            Some(e) if e > max => Some(("Max-Expires", max)),
            _ => None,
        };
        if let Some((name, limit)) = bound {
            let v = limit.to_string();
            self.auth_respond(
                head,
                c,
                423,
                "Interval Out-of-Bounds",
                &[(name, v.as_bytes())],
            );
            return;
        }
        let expires = head.expires().unwrap_or(self.cfg.expires_default);
        let expires_at = now + Duration::from_secs(u64::from(expires));
        let existing = self.conn(c.slot, c.generation).and_then(|x| x.session);
        let key = match existing.filter(|k| self.sessions.contains_key(k)) {
            Some(k) => k,
            None => {
                let mut k = self.rng.random::<u64>();
                while k == 0 || self.sessions.contains_key(&k) {
                    k = self.rng.random::<u64>();
                }
                let sid = SessionKey {
                    core: self.cfg.core,
                    slot: c.slot,
                    key: k,
                }
                .encode();
                // A client that came over TLS is handed an msrps: URI with our TLS port.
                let (scheme, port) = if secure {
                    ("msrps", self.cfg.tls_ports[0])
                } else {
                    ("msrp", self.cfg.ports.first().copied().unwrap_or(MSRP_PORT))
                };
                let client = head.from_path().first();
                let client = (client.host_str().to_ascii_lowercase(), client.port());
                let uri = format!(
                    "{scheme}://{}:{port}/{sid};tcp",
                    self.cfg.hosts.first().map_or("localhost", String::as_str),
                );
                self.sessions.insert(
                    k,
                    Session {
                        slot: c.slot,
                        generation: c.generation,
                        expires: expires_at,
                        uri,
                        client,
                    },
                );
                bump(&self.counters.sessions, 1);
                k
            }
        };
        let uri = match self.sessions.get_mut(&key) {
            Some(s) => {
                s.expires = expires_at;
                s.uri.clone()
            }
            None => return,
        };
        self.push_timer(expires_at, Timer::Session(key));
        if let Some(conn) = self.conn_mut(c.slot, c.generation) {
            conn.session = Some(key);
            conn.succeeded = true;
            conn.auth_failures = 0;
        }
        bump(&self.counters.auth_ok, 1);
        tracing::info!(peer, slot = c.slot, user = %user, uri = %uri, expires, "AUTH ok");
        let exp = expires.to_string();
        let mut hdrs: Vec<(&str, &[u8])> =
            vec![("Use-Path", uri.as_bytes()), ("Expires", exp.as_bytes())];
        if let Some(ai) = &auth_info {
            hdrs.push(("Authentication-Info", ai.as_bytes()));
        }
        let mut b = BytesMut::with_capacity(320);
        encode::response_for(&mut b, head, 200, Some("OK"), our_uri, &hdrs);
        self.write(c, b.freeze());
    }

    fn auth_challenge(&mut self, head: &Head<'_>, c: ConnId, challenges: &[String]) {
        let hdrs: Vec<(&str, &[u8])> = challenges
            .iter()
            .map(|v| ("WWW-Authenticate", v.as_bytes()))
            .collect();
        self.auth_respond(head, c, 401, "Unauthorized", &hdrs);
    }

    fn auth_respond(
        &mut self,
        head: &Head<'_>,
        c: ConnId,
        code: u16,
        comment: &str,
        hdrs: &[(&str, &[u8])],
    ) {
        let mut b = BytesMut::with_capacity(256);
        encode::response_for(
            &mut b,
            head,
            code,
            Some(comment),
            head.to_path().first().as_str(),
            hdrs,
        );
        self.write(c, b.freeze());
    }

    /// Counts a failed AUTH; at the limit the connection is closed. Returns `true` then.
    fn count_auth_failure(&mut self, c: ConnId) -> bool {
        let max = self.cfg.max_auth_failures;
        let Some(conn) = self.conn_mut(c.slot, c.generation) else {
            return false;
        };
        conn.auth_failures += 1;
        if conn.auth_failures >= max {
            let peer = conn.kind.peer().map(tracing::field::display);
            tracing::info!(
                peer,
                slot = c.slot,
                "closing connection after {max} failed AUTH requests"
            );
            self.close(c.slot, c.generation, CloseReason::AuthFailures);
            return true;
        }
        false
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
        let conn = ConnId {
            core: self.cfg.core,
            slot,
            generation,
        };
        self.actions.push_back(Action::Close { conn, reason });
    }
}

/// `head` rewritten for the next hop (RFC 4976 §6.4.1, §6.4.2) with our transaction id
/// `tid`, and the blank line when a body follows.
///
/// A SEND whose chunk may carry more than 2048 octets (its Byte-Range end is `*`, or
/// further than that from its start) goes out interruptible: its range-end becomes `*`
/// (RFC 4975 §7.1.1 allows interrupting only such chunks), and the send queue is told
/// where to edit the head to resume it ([`Resumable`]).
fn forward_bytes(head: &Head<'_>, tid: u64, has_body: bool) -> (Bytes, Option<Resumable>) {
    let tid = TidText::of(tid);
    let mut b = BytesMut::with_capacity(head.as_bytes().len() + 96);
    let range = match (head.method(), head.byte_range(), head.byte_range_span()) {
        (Some(Method::Send), Some(r), Some(span)) if has_body => r
            .end
            .is_none_or(|e| e.saturating_sub(r.start) >= 2048)
            .then_some((r, span)),
        _ => None,
    };
    let Some((r, span)) = range else {
        encode::forward_head(&mut b, head, tid.as_str());
        if has_body {
            encode::blank_line(&mut b);
        }
        return (b.freeze(), None);
    };
    let edited = encode::forward_head_with(&mut b, head, tid.as_str(), |b| {
        // The rest of the head as written, with the Byte-Range value made anew.
        let (s, e) = span;
        let rest = head.rest();
        b.extend_from_slice(&rest[..s]);
        let v0 = b.len();
        let mut n = itoa::Buffer::new();
        b.extend_from_slice(n.format(r.start).as_bytes());
        b.extend_from_slice(b"-*/");
        match r.total {
            Some(t) => b.extend_from_slice(n.format(t).as_bytes()),
            None => b.extend_from_slice(b"*"),
        }
        let v1 = b.len();
        b.extend_from_slice(&rest[e..]);
        (v0, v1)
    });
    let Some((v0, v1)) = edited else {
        return (b.freeze(), None);
    };
    encode::blank_line(&mut b);
    let t0 = "MSRP ".len();
    let resume = match (u16::try_from(v0), u16::try_from(v1)) {
        (Ok(a), Ok(z)) => Some(Resumable {
            tid: (t0 as u16, (t0 + tid.as_str().len()) as u16),
            range: (a, z),
            start: r.start,
            total: r.total,
        }),
        _ => None,
    };
    (b.freeze(), resume)
}

/// The first To-Path URI of a head we rewrote for the next hop ([`forward_bytes`]): the
/// URI after ours in the request as it came.
fn next_uri(fwd: &[u8]) -> Option<Uri<'_>> {
    let line = memchr::memmem::find(fwd, b"\r\nTo-Path: ")? + 11;
    let rest = &fwd[line..];
    let end = memchr::memchr2(b' ', b'\r', rest)?;
    Uri::parse(core::str::from_utf8(&rest[..end]).ok()?).ok()
}

/// Our transaction id as it goes on the wire: 16 lower-case hex digits.
struct TidText([u8; 16]);

impl TidText {
    fn of(v: u64) -> TidText {
        let mut b = [0u8; 16];
        for (i, d) in b.iter_mut().enumerate() {
            *d = b"0123456789abcdef"[(v >> (60 - 4 * i)) as usize & 15];
        }
        TidText(b)
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
    if ours.len() == 16 {
        crate::codec::hex_u64(ours.as_bytes()).unwrap_or(0)
    } else {
        0
    }
}

/// For a head that does not parse: its tid, the first From-Path URI (as text) and
/// whether it is a request, found leniently so a 400 can still be sent.
fn fallback_reply(raw: &[u8]) -> Option<(&str, &str, bool)> {
    // Line by line: invalid UTF-8 in another header does not hide the ones we need.
    let mut lines = raw
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .map(|l| core::str::from_utf8(l).unwrap_or(""));
    let start = lines.next()?;
    let mut parts = start.splitn(3, ' ');
    let (_, tid, rest) = (parts.next()?, parts.next()?, parts.next()?);
    let is_req = !rest.as_bytes().first()?.is_ascii_digit();
    let from_line =
        lines.find(|l| l.len() > 10 && l.as_bytes()[..10].eq_ignore_ascii_case(b"From-Path:"))?;
    let first = from_line[10..].trim().split(' ').next()?;
    Uri::parse(first).ok()?;
    Some((tid, first, is_req))
}

fn fallback_is_request(raw: &[u8]) -> bool {
    raw.split(|&c| c == b' ')
        .nth(2)
        .and_then(|m| m.first())
        .is_some_and(|c| !c.is_ascii_digit())
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
        ] {
            assert_eq!(tid_key(other), 0, "{other}");
        }
    }
}
