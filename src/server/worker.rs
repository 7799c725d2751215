//! One worker: a pinned thread running a monoio runtime with this core's engines (the
//! relay today), its connection map and its tasks (accept loops, a reader and a writer
//! per connection, the mesh receiver and one timer task that sleeps until the earliest
//! deadline any engine or connection has).

use std::cell::{Cell, Ref, RefCell};
use std::collections::HashMap;
use std::future::poll_fn;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use monoio::buf::IoBufMut;
use monoio::io::{
    AsyncReadRent, AsyncWriteRent, CancelHandle, CancelableAsyncReadRent, OwnedReadHalf,
    OwnedWriteHalf, Splitable,
};
use monoio::net::{TcpListener, TcpStream};

use super::ConnLimiter;
use super::conn::{ConnHandle, write_loop};
use super::hop::HopHistogram;
use super::mesh::{Envelope, Gauges, MeshReceiver, MeshSender, UaMsg};
use super::tls::{self, TlsContext};
use super::tls_stream::{TlsReader, TlsStream, TlsWriter};
use super::{Control, Driver, Query, WorkerConn, WorkerStats};
use crate::admin::event::{Event as OpsEvent, EventBody, EventSink};
use crate::codec::{Event, ScanError, ScanLimits, Scanner};
use crate::conn::{
    Action, CloseReason, ConnId, ConnKind, Counters, Origin, Part, QueueEvent, Slots, Transport,
    bump, drop_by,
};
use crate::relay::users::Users;
use crate::relay::{Relay, RelayAction, RelayConfig};
use crate::sip::outbound::Action as SipAction;
use crate::sip::txn::{Peer as SipPeer, Transport as SipTransport};

/// Read buffer of a busy connection.
const READ_BUF: usize = 64 * 1024;
/// Read buffer of a quiet connection: an idle connection holds only this much.
const IDLE_READ_BUF: usize = 2 * 1024;
/// Below this much free space the read buffer is grown before reading.
const MIN_READ: usize = 1024;
/// A big read buffer goes back to [`IDLE_READ_BUF`] after this many reads in a row that
/// the small one would have held. Shrinking at the first such read made a connection
/// under steady load swap sizes every other read, each swap a fresh 64 KiB allocation and
/// an extra read (relay CPU per 1 KiB message at 50 pairs: 9.49 us that way, 8.07 us
/// this way, interleaved A/B). The price: a connection that falls silent right after a
/// burst keeps its 64 KiB until it reads again (the read in flight owns the buffer, and
/// in-flight reads are never cancelled here). One that only ever carries small reads,
/// as chat does, stays at 2 KiB.
const SHRINK_AFTER: u32 = 64;

/// A connection whose reader has waited this long on an empty buffer gives the buffer
/// up ([`ConnHandle::park`]) and waits on [`PARKED_READ_BUF`] bytes instead: an idle
/// connection then holds no read buffer (2 KiB, or 64 KiB right after a burst), which
/// is most of what an idle connection costs. Waking from there costs one more read.
const PARK_AFTER: Duration = Duration::from_secs(1);
/// A read that can be given up costs more than a plain one (monoio's cancel handle is a
/// hashed set per read: 7 % more instructions per relayed message at 50 pairs, measured
/// with perf/instructions.sh). So only reads likely to wait long are made so: a
/// connection's first [`EARLY_READS`] (a session bound and then idle) and those after a
/// read that waited at least this long. A busy connection's reads stay plain; one that
/// falls silent right after a burst keeps its buffer until its next read, as before.
const QUIET_GAP: Duration = Duration::from_millis(50);
const EARLY_READS: u32 = 4;
/// What a parked reader waits on: the first bytes of the next frame; the buffer grows
/// for the rest with the next read.
const PARKED_READ_BUF: usize = 64;

/// Reads shorter than this that end inside a frame are acknowledged at once (see
/// `ConnHandle::ack_now`): two full-sized loopback or Ethernet segments are longer.
const QUICKACK_BELOW: usize = 4096;

/// How often connections are checked for a stalled header block or body (the head and
/// body timeouts are enforced to within this).
const STALL_CHECK: Duration = Duration::from_secs(1);

/// What one worker is given. Kept whole by the worker: the one copy of its settings.
pub struct WorkerConfig {
    pub index: usize,
    pub cpu: usize,
    pub pin: bool,
    pub driver: Driver,
    pub relay: RelayConfig,
    pub users: Option<Arc<Users>>,
    pub tls: Arc<TlsContext>,
    /// A TLS handshake taking longer closes the connection.
    pub tls_handshake_timeout: Duration,
    /// Resolving and connecting to a next hop taking longer fails the connection.
    pub connect_timeout: Duration,
    pub secret: [u8; 32],
    pub high_water: usize,
    pub max_head: usize,
    pub head_timeout: Duration,
    pub body_timeout: Duration,
    pub max_queue: usize,
    /// Connection slots of this worker.
    pub max_conns: usize,
    pub limiter: Arc<ConnLimiter>,
    pub shutdown_grace: Duration,
    /// Where this worker's events go (`None`: no control thread).
    pub events: Option<EventSink>,
    /// This worker's SIP UDP sockets, one per plain listen address (same port).
    pub udp: Vec<std::net::UdpSocket>,
    /// The status INVITE and MESSAGE for nobody get (RFC 3261 §8.2; 404 by default).
    pub sip_reject: u16,
    /// `host:port` values our Vias would carry (SIP loop detection, §8.2.2.2).
    pub sip_sent_by: Vec<String>,
    /// The nosip handler's settings.
    pub nosip: crate::nosip::NosipConfig,
    /// SIP timers, outbound proxy, credentials and our Via sent-by.
    pub sip: super::sip::SipSettings,
    /// The user agent of this core.
    pub ua: crate::ua::engine::Config,
    /// Worker cores in the process.
    pub cores: usize,
}

/// A UDP socket of this worker as the SIP table's `Peer::conn`: its index in the slot,
/// a generation no connection has.
const UDP_GENERATION: u32 = u32::MAX;

/// A listening socket and whether its connections speak TLS.
pub type Listener = (std::net::TcpListener, bool);

/// The thread body: pin, build the runtime, run until shut down.
pub fn run(
    cfg: WorkerConfig,
    listeners: Vec<Listener>,
    rx: MeshReceiver,
    senders: Vec<MeshSender>,
    gauges: Arc<Gauges>,
    counters: Arc<Counters>,
    ready: mpsc::Sender<Result<(), String>>,
) {
    if cfg.pin && !core_affinity::set_for_current(core_affinity::CoreId { id: cfg.cpu }) {
        tracing::warn!(
            worker = cfg.index,
            cpu = cfg.cpu,
            "could not pin worker to its CPU"
        );
    }
    let (driver, index) = (cfg.driver, cfg.index);
    // Every log line of this thread names its core (text and JSON alike).
    let span = tracing::info_span!("worker", core = index);
    let _entered = span.enter();
    let fut = worker_main(cfg, listeners, rx, senders, gauges, counters, ready.clone());
    match driver {
        Driver::Legacy => match monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
        {
            Ok(mut rt) => rt.block_on(fut),
            Err(e) => {
                let _ = ready.send(Err(format!("epoll runtime: {e}")));
            }
        },
        Driver::IoUring | Driver::Auto => {
            match super::runtime::uring_runtime(4096, super::runtime::modes_from_env()) {
                Ok((mut rt, mode)) => {
                    if index == 0 {
                        tracing::info!(mode = mode.name(), "io_uring ring set up");
                    }
                    rt.block_on(fut)
                }
                Err(e) => {
                    let _ = ready.send(Err(format!("io_uring runtime: {e}")));
                }
            }
        }
    }
}

/// This core's open connections by slot: slots are small and reused ([`Slots`]), so a
/// vector indexed by slot finds one without hashing, on every frame written.
#[derive(Default)]
struct ConnTable {
    by_slot: Vec<Option<Rc<ConnHandle>>>,
    len: usize,
}

impl ConnTable {
    fn insert(&mut self, slot: u32, h: Rc<ConnHandle>) {
        let i = slot as usize;
        if i >= self.by_slot.len() {
            self.by_slot.resize(i + 1, None);
        }
        if self.by_slot[i].replace(h).is_none() {
            self.len += 1;
        }
    }

    fn remove(&mut self, slot: u32) {
        if let Some(e) = self.by_slot.get_mut(slot as usize)
            && e.take().is_some()
        {
            self.len -= 1;
        }
    }

    fn get(&self, slot: u32) -> Option<&Rc<ConnHandle>> {
        self.by_slot.get(slot as usize)?.as_ref()
    }

    fn values(&self) -> impl Iterator<Item = &Rc<ConnHandle>> {
        self.by_slot.iter().flatten()
    }

    fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn len(&self) -> usize {
        self.len
    }
}

/// This core's state, shared by its tasks.
pub struct Worker {
    core: u16,
    cfg: WorkerConfig,
    relay: RefCell<Relay>,
    /// Connection ids of this core, shared with the engines (they name the outbound
    /// connections they ask for).
    slots: Rc<RefCell<Slots>>,
    conns: RefCell<ConnTable>,
    mesh: Vec<MeshSender>,
    gauges: Arc<Gauges>,
    counters: Arc<Counters>,
    limits: ScanLimits,
    listener_fds: RefCell<Vec<RawFd>>,
    stopping: Cell<bool>,
    /// Certificates for new handshakes (replaced on SIGHUP).
    tls: RefCell<Arc<TlsContext>>,
    /// The deadline the timer task sleeps until, and its waker, so that an earlier one
    /// can wake it.
    timer_at: Cell<Option<Instant>>,
    /// Whether the timer's current sleep includes the stall check (it does not while
    /// the core has no connections).
    stall_armed: Cell<bool>,
    /// Set by [`Worker::rearm_timer`] to end the timer's current sleep.
    timer_kick: Cell<bool>,
    timer_waker: RefCell<Option<Waker>>,
    /// Frame in to frame written, sampled (see [`super::hop`]).
    hop: HopHistogram,
    /// While the actions of a sampled read (or envelope) are carried out: when that read
    /// completed. The first frame they queue or hand to another core takes it.
    hop_sampling: Cell<Option<Instant>>,
    /// A [`Envelope::HopMark`] came from another core: the next envelope carries the
    /// sampled frame.
    hop_incoming: Cell<Option<Instant>>,
    /// A read was picked for sampling and has not yet queued a frame to take it.
    hop_armed: Cell<bool>,
    /// SIP on this core's ports (transactions and stateless answers).
    sip: RefCell<super::sip::SipCore>,
    /// The UDP sockets, for sending (non-blocking; a full socket buffer drops the
    /// datagram, which SIP's retransmissions cover, RFC 3261 §17).
    udp: Vec<std::net::UdpSocket>,
    nosip: RefCell<crate::nosip::Nosip>,
    /// Open SIP connections (inbound and outbound, TCP and TLS) by peer address, for
    /// outbound requests to reuse (RFC 3261 §18.1.1), and the other way round.
    sip_conns: RefCell<HashMap<(SocketAddr, SipTransport), ConnId>>,
    sip_conn_keys: RefCell<HashMap<ConnId, (SocketAddr, SipTransport)>>,
    /// Why an outbound SIP connection failed, for the requests waiting on it.
    sip_conn_failed: RefCell<HashMap<ConnId, String>>,
    /// Names being resolved for SIP right now (bounded by the outbound layer too).
    sip_resolving: Cell<usize>,
    /// Connections of this core whose frames went to another core's user agent, and
    /// which core (told when the connection ends).
    ua_remote: RefCell<HashMap<ConnId, u16>>,
}

async fn worker_main(
    cfg: WorkerConfig,
    listeners: Vec<Listener>,
    rx: MeshReceiver,
    senders: Vec<MeshSender>,
    gauges: Arc<Gauges>,
    counters: Arc<Counters>,
    ready: mpsc::Sender<Result<(), String>>,
) {
    let mut seed = [0u8; 32];
    rand::fill(&mut seed);
    let core = cfg.index as u16;
    let slots = Rc::new(RefCell::new(Slots::new(core, cfg.max_conns)));
    let mut relay = Relay::new(
        cfg.relay.clone(),
        cfg.users.clone(),
        cfg.secret,
        seed,
        counters.clone(),
        slots.clone(),
        Instant::now(),
    );
    relay.set_events(cfg.events.is_some());
    let limits = ScanLimits {
        max_head: cfg.max_head,
        max_non_send_body: Some(cfg.relay.max_non_send_body),
    };
    let mut cfg = cfg;
    let udp_std = std::mem::take(&mut cfg.udp);
    let mut udp_send = Vec::new();
    let mut udp_recv = Vec::new();
    for u in udp_std {
        match u
            .try_clone()
            .and_then(|c| Ok((c, monoio::net::udp::UdpSocket::from_std(u)?)))
        {
            Ok((c, r)) => {
                udp_send.push(c);
                udp_recv.push(r);
            }
            Err(e) => {
                let _ = ready.send(Err(format!("UDP socket: {e}")));
                return;
            }
        }
    }
    let sip = super::sip::SipCore::new(
        core,
        cfg.sip_reject,
        cfg.sip_sent_by.clone(),
        &cfg.sip,
        cfg.ua.clone(),
        cfg.cores,
    );
    let w = Rc::new(Worker {
        sip: RefCell::new(sip),
        udp: udp_send,
        nosip: RefCell::new(crate::nosip::Nosip::new(cfg.nosip.clone())),
        sip_conns: RefCell::new(HashMap::new()),
        sip_conn_keys: RefCell::new(HashMap::new()),
        sip_conn_failed: RefCell::new(HashMap::new()),
        sip_resolving: Cell::new(0),
        ua_remote: RefCell::new(HashMap::new()),
        core,
        tls: RefCell::new(cfg.tls.clone()),
        cfg,
        relay: RefCell::new(relay),
        slots,
        conns: RefCell::new(ConnTable::default()),
        mesh: senders,
        gauges,
        counters,
        limits,
        listener_fds: RefCell::new(Vec::new()),
        stopping: Cell::new(false),
        timer_at: Cell::new(None),
        stall_armed: Cell::new(false),
        timer_kick: Cell::new(false),
        timer_waker: RefCell::new(None),
        hop: HopHistogram::default(),
        hop_sampling: Cell::new(None),
        hop_incoming: Cell::new(None),
        hop_armed: Cell::new(false),
    });
    for (l, secure) in listeners {
        match TcpListener::from_std(l) {
            Ok(l) => {
                w.listener_fds.borrow_mut().push(l.as_raw_fd());
                monoio::spawn(accept_loop(w.clone(), l, secure));
            }
            Err(e) => {
                let _ = ready.send(Err(format!("listener: {e}")));
                return;
            }
        }
    }
    for (i, u) in udp_recv.into_iter().enumerate() {
        monoio::spawn(udp_loop(w.clone(), u, i as u32));
    }
    let _ = ready.send(Ok(()));
    drop(ready);
    monoio::spawn(timer_loop(w.clone()));
    mesh_loop(w, rx).await;
}

async fn accept_loop(w: Rc<Worker>, l: TcpListener, secure: bool) {
    loop {
        match l.accept().await {
            Ok((stream, peer)) => {
                if w.stopping.get() {
                    break;
                }
                if secure {
                    w.start_tls_inbound(stream, peer);
                } else {
                    w.start_inbound(stream, peer);
                }
            }
            Err(e) => {
                if w.stopping.get() {
                    break;
                }
                tracing::warn!(error = %e, "accept failed");
                // Out of descriptors and the like: back off instead of spinning.
                monoio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// The one timer of the core: sleeps until the earliest deadline of its engines (and
/// the stall check while connections are open), runs what is due, and sleeps again. An
/// engine that gets an earlier deadline wakes it ([`Worker::rearm_timer`]).
async fn timer_loop(w: Rc<Worker>) {
    let mut next_stall = Instant::now() + STALL_CHECK;
    while !w.stopping.get() {
        let now = Instant::now();
        let engine = w.next_deadline();
        let stall = (!w.conns.borrow().is_empty()).then_some(next_stall);
        let at = [engine, stall].into_iter().flatten().min();
        w.timer_at.set(at);
        w.stall_armed.set(stall.is_some());
        w.timer_kick.set(false);
        let wait = at.map(|t| t.saturating_duration_since(now));
        // Wakes when rearmed; no deadline at all: sleeps until rearmed.
        let rearmed = poll_fn(|cx| {
            if w.timer_kick.get() {
                Poll::Ready(())
            } else {
                *w.timer_waker.borrow_mut() = Some(cx.waker().clone());
                Poll::Pending
            }
        });
        match wait {
            Some(d) => {
                monoio::select! {
                    _ = monoio::time::sleep(d) => {}
                    _ = rearmed => {}
                }
            }
            None => rearmed.await,
        }
        let now = Instant::now();
        if w.relay.borrow().poll_timeout().is_some_and(|t| t <= now) {
            w.relay.borrow_mut().handle_timeout(now);
            w.dispatch();
        }
        if w.sip.borrow().poll_timeout().is_some_and(|t| t <= now) {
            w.sip.borrow_mut().timeout(now);
            w.sip_flush();
        }
        if now >= next_stall {
            next_stall = now + STALL_CHECK;
            w.close_stalled(now);
        }
    }
}

/// Receives what other cores, the main thread and the control thread send: waits for
/// the doorbell, then drains the channel.
async fn mesh_loop(w: Rc<Worker>, rx: MeshReceiver) {
    loop {
        rx.rearm();
        let now = Instant::now();
        while let Some(env) = rx.try_recv() {
            match env {
                Envelope::Control(Control::Users(u)) => w.relay.borrow_mut().set_users(u),
                Envelope::Control(Control::Dump) => w.dump(),
                Envelope::Control(Control::Tls(t)) => *w.tls.borrow_mut() = t,
                Envelope::Control(Control::SipRequest(r)) => {
                    w.sip.borrow_mut().api_request(now, *r);
                    w.sip_flush();
                }
                Envelope::Control(Control::Query(q)) => w.answer(now, q),
                Envelope::Control(Control::Shutdown) => {
                    w.dispatch();
                    w.shutdown(&rx).await;
                    return;
                }
                env => w.receive(now, env),
            }
        }
        w.dispatch();
        poll_fn(|cx| rx.poll_rung(cx)).await;
    }
}

impl Worker {
    /// Takes a place under the connection limits for `peer`, or says why not (the
    /// caller drops the stream: a clean close).
    fn admit(&self, peer: SocketAddr) -> bool {
        match self.cfg.limiter.acquire(peer.ip()) {
            Ok(()) => true,
            Err(limit) => {
                bump(&self.counters.connections_refused, 1);
                tracing::info!(%peer, limit, "connection refused: limit reached");
                false
            }
        }
    }

    fn start_inbound(self: &Rc<Self>, stream: TcpStream, peer: SocketAddr) {
        if !self.admit(peer) {
            return;
        }
        let _ = stream.set_nodelay(true);
        let fd = stream.as_raw_fd();
        self.open_inbound(ConnKind::tcp_from(peer), peer, fd, stream);
    }

    /// Gives an accepted connection its id, announces it to the engines and starts its
    /// tasks. Its first bytes decide its protocol: MSRP today (SIP, HTTP upgrades and
    /// the handler for anything else plug in at [`read_loop`]'s first read).
    fn open_inbound<S>(self: &Rc<Self>, kind: ConnKind, peer: SocketAddr, fd: RawFd, stream: S)
    where
        S: IntoHalves,
    {
        let Some(id) = self.slots.borrow_mut().alloc() else {
            tracing::warn!(%peer, side = "internal", "connection table full, refusing connection");
            self.cfg.limiter.release(peer.ip());
            return;
        };
        tracing::info!(%peer, core = self.core, slot = id.slot, "connection opened");
        let h = Rc::new(ConnHandle::new(id, peer.to_string(), false));
        h.limit_ip.set(Some(peer.ip()));
        // Its first bytes must come within the head timeout (the stall check).
        h.head_since.set(Some(Instant::now()));
        self.conns.borrow_mut().insert(id.slot, h.clone());
        self.spawn_io(h, fd, stream, Some((kind, peer)));
        self.rearm_timer();
    }

    /// Runs the TLS handshake of an accepted connection in its own task, then starts
    /// the connection like a plain one. A verified client certificate makes the peer a
    /// relay identified by it (RFC 4976 §6.1).
    fn start_tls_inbound(self: &Rc<Self>, stream: TcpStream, peer: SocketAddr) {
        if !self.admit(peer) {
            return;
        }
        let _ = stream.set_nodelay(true);
        let Some(cfg) = self.tls.borrow().server_config() else {
            self.cfg.limiter.release(peer.ip());
            return;
        };
        let fd = stream.as_raw_fd();
        let w = self.clone();
        monoio::spawn(async move {
            let done = handshake_guard(fd, w.cfg.tls_handshake_timeout);
            let r = tls::accept(cfg, stream, peer.to_string()).await;
            // The stream (and its fd) is either ours again or already closed: the guard
            // must not touch the descriptor from here on.
            done.set(true);
            match r {
                Ok((s, relay)) if !w.stopping.get() => {
                    let kind = ConnKind::Inbound {
                        peer,
                        transport: Transport::Tls,
                        relay,
                    };
                    w.open_inbound(kind, peer, fd, s);
                }
                Ok(_) => w.cfg.limiter.release(peer.ip()),
                Err(e) => {
                    w.cfg.limiter.release(peer.ip());
                    tracing::info!(%peer, side = "inbound", error = %e, "TLS handshake failed");
                }
            }
        });
    }

    /// Splits the stream and starts the reader and writer tasks. `fd` is the socket
    /// under it, for closing from outside.
    fn spawn_io<S: IntoHalves>(
        self: &Rc<Self>,
        h: Rc<ConnHandle>,
        fd: RawFd,
        stream: S,
        sniff: Option<(ConnKind, SocketAddr)>,
    ) {
        h.attach(fd);
        let (rd, wr) = stream.into_halves();
        monoio::spawn(read_loop(self.clone(), h.clone(), rd, sniff));
        self.spawn_writer(h, wr);
    }

    /// Starts the writer of a connection: its send queue to the socket, until closed.
    fn spawn_writer<W: AsyncWriteRent + 'static>(self: &Rc<Self>, h: Rc<ConnHandle>, mut wr: W) {
        let w = self.clone();
        monoio::spawn(async move {
            let id = h.id;
            let on_events = |events: Vec<QueueEvent>| w.queue_events(id, events);
            write_loop(&h, &w.gauges, &w.hop, &mut wr, &on_events).await;
            drop(wr);
            h.half_done();
        });
    }

    /// What a connection's send queue did: each interrupted chunk owes one more response.
    fn queue_events(self: &Rc<Self>, id: ConnId, events: Vec<QueueEvent>) {
        for e in events {
            match e {
                QueueEvent::Interrupted { tid, .. } => {
                    bump(&self.counters.chunks_interrupted, 1);
                    self.relay.borrow_mut().handle_rechunked(id, &tid);
                    self.sip.borrow_mut().ua.handle_rechunked(id, &tid);
                }
            }
        }
        self.dispatch();
    }

    /// Opens an outbound connection for an id an engine has already given out. Bytes
    /// queue on it while the connection is being made. The host is resolved off the
    /// core, and the whole of resolving, connecting and the TLS handshake must finish
    /// within the connect timeout, or the connection is closed as failed: the engines
    /// then fail what waits on it (REPORTs to the senders).
    fn connect(self: &Rc<Self>, id: ConnId, host: String, port: u16, transport: Transport) {
        let h = Rc::new(ConnHandle::new(id, format!("{host}:{port}"), true));
        self.conns.borrow_mut().insert(id.slot, h.clone());
        let w = self.clone();
        let timeout = self.cfg.connect_timeout;
        // Enforced from outside: nothing in flight is cancelled (see ARCHITECTURE.md).
        let guard = {
            let (w, h) = (self.clone(), h.clone());
            let up = Rc::new(Cell::new(false));
            let done = up.clone();
            monoio::spawn(async move {
                monoio::time::sleep(timeout).await;
                if !done.get() {
                    tracing::warn!(peer = %h.peer, side = "outbound", timeout_s = timeout.as_secs_f64(), "next hop not reached in time");
                    w.connect_failed(&h);
                }
            });
            up
        };
        monoio::spawn(async move {
            let addrs = resolve(&host, port).await;
            let mut stream = None;
            for a in addrs {
                if h.is_closing() {
                    break;
                }
                match TcpStream::connect_addr(a).await {
                    Ok(s) => {
                        stream = Some(s);
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(addr = %a, side = "outbound", error = %e, "outbound connection failed")
                    }
                }
            }
            let Some(s) = stream.filter(|_| !h.is_closing()) else {
                guard.set(true);
                w.connect_failed(&h);
                return;
            };
            let _ = s.set_nodelay(true);
            let fd = s.as_raw_fd();
            if transport == Transport::Tcp {
                guard.set(true);
                tracing::info!(peer = %h.peer, core = w.core, slot = id.slot, "outbound connection open");
                w.spawn_io(h, fd, s, None);
                return;
            }
            // msrps: the certificate must be valid for the URI host.
            let r = w.tls_connect(&host, s, fd, h.peer.clone()).await;
            guard.set(true);
            match r {
                Ok(t) if !h.is_closing() => {
                    tracing::info!(peer = %h.peer, core = w.core, slot = id.slot, "outbound TLS connection open");
                    w.spawn_io(h, fd, t, None);
                }
                r => {
                    if let Err(e) = r {
                        tracing::warn!(peer = %h.peer, side = "outbound", error = %e, "outbound TLS failed");
                    }
                    w.connect_failed(&h);
                }
            }
        });
    }

    /// The client side of TLS on an outbound connection (`msrps:` and `sips:`): the
    /// certificate must be valid for `host`, the handshake done within the handshake
    /// timeout.
    async fn tls_connect(
        &self,
        host: &str,
        s: TcpStream,
        fd: RawFd,
        peer: String,
    ) -> Result<super::tls_stream::TlsStream<TcpStream>, String> {
        let Some(name) = tls::server_name(host) else {
            return Err(format!("{host:?} is not a valid TLS name"));
        };
        let cfg = self.tls.borrow().client.clone();
        let done = handshake_guard(fd, self.cfg.tls_handshake_timeout);
        let r = tls::connect(cfg, name, s, peer).await;
        done.set(true);
        r.map_err(|e| format!("handshake failed: {e}"))
    }

    fn connect_failed(self: &Rc<Self>, h: &ConnHandle) {
        if !h.is_closing() {
            bump(&self.counters.connect_failures, 1);
        }
        h.abort();
        self.finish_conn(h);
    }

    /// Counts a user agent's MSRP connection in `connections_open` and
    /// `connections_total`, as the relay counts its own.
    fn count_ua_conn(&self, h: &ConnHandle) {
        if !h.ua_counted.replace(true) {
            bump(&self.counters.connections_open, 1);
            bump(&self.counters.connections_total, 1);
        }
    }

    /// The engines forget the connection, its map entry goes and its slot is free again.
    /// Runs once per connection, whoever calls it first.
    fn finish_conn(self: &Rc<Self>, h: &ConnHandle) {
        if !h.finish() {
            return;
        }
        if let Some(ip) = h.limit_ip.take() {
            self.cfg.limiter.release(ip);
        }
        self.relay.borrow_mut().handle_closed(Instant::now(), h.id);
        if h.ua_counted.replace(false) {
            drop_by(&self.counters.connections_open, 1);
        }
        let ua = h.for_ua.get() || self.sip.borrow().ua.knows_conn(h.id);
        self.sip.borrow_mut().ua.handle_closed(Instant::now(), h.id);
        let remote = self.ua_remote.borrow_mut().remove(&h.id);
        if let Some(core) = remote {
            self.send_to(core, Envelope::Ua(UaMsg::Closed(h.id)));
        }
        self.sip_conn_gone(h.id);
        if self.conn(h.id.slot, h.id.generation).is_some() {
            self.conns.borrow_mut().remove(h.id.slot);
        }
        self.slots.borrow_mut().release(h.id);
        h.reader_done();
        self.dispatch();
        if ua {
            // The session's BYE and its end event.
            self.sip_flush();
        }
    }

    /// The connection in `slot` if it is still the one of that generation (borrowed from
    /// the map: no reference count is touched on the per-frame path).
    fn conn(&self, slot: u32, generation: u32) -> Option<Ref<'_, ConnHandle>> {
        Ref::filter_map(self.conns.borrow(), |m| {
            m.get(slot)
                .filter(|h| h.id.generation == generation)
                .map(|h| &**h)
        })
        .ok()
    }

    /// Queues bytes on a connection of this core, closing it when its queue passes the
    /// hard cap (a peer that does not read).
    fn write_local(&self, conn: ConnId, bytes: Bytes, part: Part, mark: Option<Instant>) {
        let Some(h) = self.conn(conn.slot, conn.generation) else {
            return;
        };
        let mark = mark.or_else(|| self.hop_sampling.take());
        if h.queued() + bytes.len() > self.cfg.max_queue {
            if !h.is_closing() {
                bump(&self.counters.queue_overflows, 1);
                let r = CloseReason::QueueOverflow;
                tracing::info!(peer = %h.peer, slot = conn.slot, queued = h.queued(), max_queue = self.cfg.max_queue, side = r.side(h.outbound).name(), reason = r.describe(), "closing connection");
            }
            h.abort();
        } else {
            h.push(&self.gauges, bytes, part);
            if let Some(at) = mark {
                h.mark_hop(at);
            }
        }
    }

    /// Carries out what the engines asked for.
    fn dispatch(self: &Rc<Self>) {
        loop {
            let Some(a) = self.relay.borrow_mut().poll_action() else {
                break;
            };
            self.carry_out(a);
        }
        if let Some(sink) = &self.cfg.events {
            loop {
                let Some(e) = self.relay.borrow_mut().poll_event() else {
                    break;
                };
                if sink.wanted() {
                    sink.push(OpsEvent {
                        at: std::time::SystemTime::now(),
                        body: EventBody::Relay(e),
                    });
                }
            }
        }
        self.rearm_timer();
    }

    /// Answers a question of the control thread from this core's tables (at once:
    /// nothing here waits).
    fn answer(self: &Rc<Self>, now: Instant, q: Query) {
        if q.asker_gone() {
            return;
        }
        match q {
            Query::Sessions {
                after,
                limit,
                reply,
            } => reply.send(self.relay.borrow().sessions(now, after, limit)),
            Query::Connections {
                after,
                limit,
                reply,
            } => {
                let conns = self.conns.borrow();
                let list = self
                    .relay
                    .borrow()
                    .connections(now, after, limit)
                    .into_iter()
                    .map(|c| WorkerConn {
                        queued: conns
                            .get(c.id.slot)
                            .filter(|h| h.id.generation == c.id.generation)
                            .map_or(0, |h| h.queued()),
                        relay: c,
                    })
                    .collect();
                reply.send(list);
            }
            Query::EndSession(id, reply) => {
                let found = self.relay.borrow_mut().end_session(&id);
                reply.send(found);
                self.dispatch();
            }
            Query::UaSessions(reply) => reply.send(self.sip.borrow().ua.sessions()),
            Query::UaSend(m, reply) => {
                let r = self.sip.borrow_mut().ua.send_message(
                    now,
                    &m.session,
                    &m.content_type,
                    m.body.clone(),
                    m.success_report,
                    m.failure_report,
                );
                reply.send(r);
                self.sip_flush();
            }
            Query::UaEnd(id, reply) => {
                let found = self.sip.borrow_mut().ua.end_session(now, &id);
                reply.send(found);
                self.sip_flush();
            }
            Query::UaOriginate(o, reply) => {
                let r = self.sip.borrow_mut().ua_originate(now, *o);
                reply.send(r);
                self.sip_flush();
            }
            Query::Stats(reply) => {
                let (_, _, streams, _) = self.relay.borrow().table_sizes();
                let conns = self.conns.borrow();
                reply.send(WorkerStats {
                    queued_bytes: conns.values().map(|h| h.queued() as u64).sum(),
                    streams: streams as u64,
                    connections: conns.len() as u64,
                    hop: self.hop.snapshot(),
                });
            }
        }
    }

    fn carry_out(self: &Rc<Self>, a: RelayAction) {
        match a {
            Action::Write { conn, bytes, part } if conn.core == self.core => {
                self.write_local(conn, bytes, part, None)
            }
            Action::Write { conn, bytes, part } => {
                self.send_hop_mark(conn.core);
                self.send_to(conn.core, Envelope::Write { conn, bytes, part })
            }
            Action::ToCore { core, msg } => {
                self.send_hop_mark(core);
                self.send_to(core, Envelope::Relay(msg))
            }
            Action::Close { conn, reason } => {
                if let Some(h) = self.conn(conn.slot, conn.generation) {
                    tracing::info!(peer = %h.peer, slot = conn.slot, side = reason.side(h.outbound).name(), reason = reason.describe(), "closing connection");
                    h.close();
                }
            }
            Action::Connect {
                conn,
                host,
                port,
                transport,
            } => self.connect(conn, host, port, transport),
        }
    }

    /// The sampled frame of a read goes to another core: its read instant goes first.
    fn send_hop_mark(&self, core: u16) {
        if let Some(at) = self.hop_sampling.take() {
            self.send_to(core, Envelope::HopMark(at));
        }
    }

    /// Hands `env` to another core, counting the bytes it will queue there until that
    /// core has handled it (see `Gauges::add_transit`).
    fn send_to(&self, core: u16, env: Envelope) {
        if let Some(tx) = self.mesh.get(usize::from(core)) {
            let n = env.payload_len();
            self.gauges.add_transit(core, n);
            // Unbounded: never full; fails only when that worker is gone.
            if tx.send(env).is_err() {
                self.gauges.sub_transit(core, n);
            }
        }
    }

    /// Handles an envelope from another core (control messages excepted).
    fn receive(self: &Rc<Self>, now: Instant, env: Envelope) {
        self.gauges.sub_transit(self.core, env.payload_len());
        let mark = self.hop_incoming.take();
        match env {
            Envelope::Write { conn, bytes, part } => self.write_local(conn, bytes, part, mark),
            Envelope::Relay(m) if mark.is_some() => {
                // Carry out what earlier envelopes asked for first, so that the mark
                // goes to a frame of this one.
                self.dispatch();
                self.relay.borrow_mut().handle_mesh(now, m);
                self.hop_sampling.set(mark);
                self.dispatch();
                self.hop_sampling.set(None);
            }
            Envelope::Relay(m) => self.relay.borrow_mut().handle_mesh(now, m),
            Envelope::HopMark(at) => self.hop_incoming.set(Some(at)),
            Envelope::Sip(m) => {
                let (from, msg) = *m;
                self.sip.borrow_mut().message(now, from, msg);
                self.sip_flush();
            }
            Envelope::Ua(m) => {
                {
                    let mut sip = self.sip.borrow_mut();
                    match m {
                        UaMsg::Head { conn, head } => sip.ua.handle_head(now, conn, head),
                        UaMsg::Body { conn, bytes } => sip.ua.handle_body(conn, bytes),
                        UaMsg::End { conn, flag } => sip.ua.handle_end(now, conn, flag),
                        UaMsg::Closed(conn) => sip.ua.handle_closed(now, conn),
                        UaMsg::Close(conn, reason) => {
                            drop(sip);
                            if let Some(h) = self.conn(conn.slot, conn.generation) {
                                tracing::info!(peer = %h.peer, slot = conn.slot, reason = reason.describe(), "closing user agent connection");
                                h.close();
                            }
                            return;
                        }
                    }
                }
                self.sip_flush();
            }
            Envelope::Control(_) => {}
        }
    }

    /// Wakes the timer task when an engine's next deadline is earlier than the one it
    /// sleeps until.
    fn rearm_timer(&self) {
        let next = self.next_deadline();
        let armed = self.timer_at.get();
        let earlier = match (next, armed) {
            (Some(n), Some(a)) => n < a,
            (Some(_), None) => true,
            _ => false,
        };
        // The first connection of an idle core: the timer may be asleep until a far
        // engine deadline (or none) without the stall check, which must now run.
        let stall_missing = !self.stall_armed.get() && !self.conns.borrow().is_empty();
        if (earlier || stall_missing) && !self.timer_kick.replace(true) {
            if earlier {
                self.timer_at.set(next);
            }
            if let Some(w) = self.timer_waker.borrow_mut().take() {
                w.wake();
            }
        }
    }

    /// The earliest deadline of this core's engines.
    fn next_deadline(&self) -> Option<Instant> {
        let relay = self.relay.borrow().poll_timeout();
        let sip = self.sip.borrow().poll_timeout();
        [relay, sip].into_iter().flatten().min()
    }

    /// Sends what the SIP table has to send: datagrams with `sendto` on the socket the
    /// request came in on, stream messages on their connection's send queue. A
    /// response whose connection is gone is dropped (opening one to the Via's sent-by,
    /// §18.2.2, is left for the user agent work).
    fn sip_flush(self: &Rc<Self>) {
        self.sip.borrow_mut().send_ua_requests(Instant::now());
        loop {
            let Some(t) = self.sip.borrow_mut().txns.poll_transmit() else {
                break;
            };
            match t.to.conn {
                Some(c) if c.generation == UDP_GENERATION => {
                    if let Some(u) = self.udp.get(c.slot as usize)
                        && let Err(e) = u.send_to(&t.bytes, t.to.addr)
                    {
                        tracing::debug!(to = %t.to.addr, error = %e, "SIP datagram not sent");
                    }
                }
                Some(c) if c.core != self.core => self.send_to(
                    c.core,
                    Envelope::Write {
                        conn: c,
                        bytes: t.bytes,
                        part: Part::Whole,
                    },
                ),
                Some(c) => self.write_local(c, t.bytes, Part::Whole, None),
                None => {
                    tracing::debug!(to = %t.to.addr, "SIP message for a connection that is gone dropped")
                }
            }
        }
        let s = self.sip.borrow().txns.stats();
        let c = &self.counters;
        let old = c.sip_overload.load(Ordering::Relaxed);
        // The first refusal, then one line per thousand.
        if s.overload > old && (old == 0 || s.overload / 1000 > old / 1000) {
            tracing::warn!(
                core = self.core,
                refused = s.overload,
                evicted = s.evicted,
                "SIP transaction table full: new requests answered 503"
            );
        }
        c.sip_overload.store(s.overload, Ordering::Relaxed);
        c.sip_evicted.store(s.evicted, Ordering::Relaxed);
        self.sip_outbound();
        self.ua_flush();
        self.rearm_timer();
    }

    /// Carries out what the user agent asked for (MSRP writes and closes) and passes
    /// its events on.
    fn ua_flush(self: &Rc<Self>) {
        // Sessions whose side connects (RFC 6135): an outbound connection each, which
        // the user agent binds with its first SEND (queued until it is up).
        loop {
            let Some((sid, ep)) = self.sip.borrow_mut().ua.poll_connect() else {
                break;
            };
            let Some(id) = self.slots.borrow_mut().alloc() else {
                tracing::warn!(what = ?sid, "no connection slot for the user agent's MSRP connection");
                self.sip
                    .borrow_mut()
                    .ua
                    .handle_connect_failed(Instant::now(), &sid);
                continue;
            };
            let transport = if ep.tls {
                Transport::Tls
            } else {
                Transport::Tcp
            };
            self.connect(id, ep.host, ep.port, transport);
            if let Some(h) = self.conns.borrow().get(id.slot) {
                h.for_ua.set(true);
                self.count_ua_conn(h);
            }
            self.sip
                .borrow_mut()
                .ua
                .handle_connecting(Instant::now(), &sid, id);
        }
        loop {
            let Some(a) = self.sip.borrow_mut().poll_ua_action() else {
                break;
            };
            match a {
                Action::Write { conn, bytes, part } if conn.core == self.core => {
                    self.write_local(conn, bytes, part, None)
                }
                Action::Write { conn, bytes, part } => {
                    self.send_to(conn.core, Envelope::Write { conn, bytes, part })
                }
                Action::Close { conn, reason } if conn.core == self.core => {
                    if let Some(h) = self.conn(conn.slot, conn.generation) {
                        tracing::info!(peer = %h.peer, slot = conn.slot, reason = reason.describe(), "closing user agent connection");
                        h.close();
                    }
                }
                Action::Close { conn, reason } => {
                    self.send_to(conn.core, Envelope::Ua(UaMsg::Close(conn, reason)))
                }
                Action::Connect { .. } | Action::ToCore { .. } => {}
            }
        }
        loop {
            let Some(e) = self.sip.borrow_mut().poll_ua_event() else {
                break;
            };
            log_ua_event(self.core, &e);
            if let Some(sink) = &self.cfg.events
                && sink.wanted()
            {
                sink.push(OpsEvent {
                    at: std::time::SystemTime::now(),
                    body: EventBody::Ua(e),
                });
            }
        }
    }

    /// What is neither MSRP nor SIP (Kamailio's `nosip`, see [`crate::nosip`]): short
    /// ones dropped, skipped ones counted, the rest counted, logged and, unless shed,
    /// a `nosip.packet` event.
    fn nosip(&self, data: &[u8], transport: &'static str, from: SocketAddr) {
        use crate::nosip::Decision;
        let d = self
            .nosip
            .borrow_mut()
            .decide(Instant::now(), from.ip(), data);
        let c = &self.counters;
        match d {
            Decision::Short => bump(&c.nosip_short, 1),
            Decision::Skipped => bump(&c.nosip_skipped, 1),
            Decision::Shed => bump(&c.nosip_shed, 1),
            Decision::Event => {
                bump(&c.nosip_packets, 1);
                tracing::debug!(transport, %from, len = data.len(), "nosip packet");
                if let Some(sink) = &self.cfg.events
                    && sink.wanted()
                {
                    let n = data.len().min(crate::nosip::MAX_CONTENT);
                    sink.push(OpsEvent {
                        at: std::time::SystemTime::now(),
                        body: EventBody::Nosip(crate::nosip::NosipPacket {
                            transport,
                            source: from,
                            len: data.len(),
                            content: Bytes::copy_from_slice(&data[..n]),
                        }),
                    });
                }
            }
        }
    }

    /// Handles the frames other cores sent (control messages are dropped: the worker
    /// is stopping).
    fn drain_mesh(self: &Rc<Self>, rx: &MeshReceiver) {
        let now = Instant::now();
        while let Some(env) = rx.try_recv() {
            self.receive(now, env);
        }
        self.dispatch();
    }

    /// Closes connections whose header block has been incomplete for too long, and
    /// those whose frame body stopped arriving: a frame being passed on may hold back
    /// other frames for its receiver, so a sender that stalls in the middle of one must
    /// not hold that receiver for the whole idle timeout. The receiver gets the frame
    /// ended with `#` (RFC 4975 §7.1, aborted).
    fn close_stalled(&self, now: Instant) {
        for h in self.conns.borrow().values() {
            let checks = [
                (
                    &h.body_wait_since,
                    self.cfg.body_timeout,
                    &self.counters.body_timeouts,
                    CloseReason::BodyTimeout,
                ),
                (
                    &h.head_since,
                    self.cfg.head_timeout,
                    &self.counters.head_timeouts,
                    CloseReason::HeadTimeout,
                ),
            ];
            if let Some(t) = h.idle_since.get()
                && now.duration_since(t) >= PARK_AFTER
            {
                h.park();
            }
            for (since, limit, counter, reason) in checks {
                if let Some(t) = since.get()
                    && now.duration_since(t) >= limit
                    && !h.is_closing()
                {
                    bump(counter, 1);
                    tracing::info!(peer = %h.peer, slot = h.id.slot, side = reason.side(h.outbound).name(), reason = reason.describe(), "closing connection");
                    since.set(None);
                    h.abort();
                }
            }
        }
    }

    /// Logs this worker's tables and every connection with queued bytes.
    fn dump(&self) {
        let (sessions, txns, streams, conns) = self.relay.borrow().table_sizes();
        tracing::info!(
            core = self.core,
            sessions,
            txns,
            streams,
            conns,
            "worker tables"
        );
        for h in self.conns.borrow().values() {
            if h.queued() > 0 || h.is_closing() {
                tracing::info!(
                    core = self.core,
                    slot = h.id.slot,
                    peer = %h.peer,
                    queued = h.queued(),
                    gauge = self.gauges.get(h.id.core, h.id.slot),
                    closing = h.is_closing(),
                    "connection queue"
                );
            }
        }
    }

    /// Graceful stop: no new connections, frames in flight get up to the grace period,
    /// then every connection is closed.
    ///
    /// The mesh is still drained meanwhile: a frame in flight from a connection of
    /// another core arrives here as mesh messages, and must be able to finish.
    async fn shutdown(self: &Rc<Self>, rx: &MeshReceiver) {
        self.stopping.set(true);
        for fd in self.listener_fds.borrow().iter() {
            // SAFETY: the listener sockets stay open while their accept tasks hold them;
            // shutdown only wakes the pending accept, it does not close the descriptor.
            unsafe {
                libc::shutdown(*fd, libc::SHUT_RDWR);
            }
        }
        let deadline = Instant::now() + self.cfg.shutdown_grace;
        // Idle for three checks in a row: a frame that just ended here may still owe a
        // response that another core is about to send back (as a mesh message).
        let mut quiet = 0;
        while Instant::now() < deadline {
            self.drain_mesh(rx);
            let (_, _, streams, _) = self.relay.borrow().table_sizes();
            let queued: usize = self.conns.borrow().values().map(|h| h.queued()).sum();
            if streams == 0 && queued == 0 {
                quiet += 1;
                if quiet >= 3 {
                    break;
                }
            } else {
                quiet = 0;
            }
            monoio::time::sleep(Duration::from_millis(20)).await;
        }
        let conns: Vec<Rc<ConnHandle>> = self.conns.borrow().values().cloned().collect();
        for h in conns {
            h.close();
        }
        // Let the writers flush and the readers see end-of-file.
        let deadline = Instant::now() + Duration::from_millis(500);
        while !self.conns.borrow().is_empty() && Instant::now() < deadline {
            monoio::time::sleep(Duration::from_millis(10)).await;
        }
        tracing::info!(core = self.core, "worker stopped");
    }
}

/// At most this many SIP resolutions run at once per core (each on a thread of its
/// own); the outbound layer's own bound ([`crate::sip::outbound::Config::max_resolving`])
/// is the one that answers 503, this one only backs it up.
const SIP_MAX_RESOLVING: usize = 64;

/// Outbound SIP (RFC 3261 §18.1.1): resolving next hops off the core, finding or
/// opening the socket or connection a request goes on, and telling the operator.
impl Worker {
    /// Carries out what the outbound layer asks for, and reports the admin API's
    /// requests that ended.
    fn sip_outbound(self: &Rc<Self>) {
        let mut opened = false;
        loop {
            let Some(a) = self.sip.borrow_mut().poll_action() else {
                break;
            };
            match a {
                SipAction::Resolve { req, host, port } => {
                    if self.sip_resolving.get() >= SIP_MAX_RESOLVING {
                        self.sip
                            .borrow_mut()
                            .resolved(Instant::now(), req, Vec::new());
                        continue;
                    }
                    self.sip_resolving.set(self.sip_resolving.get() + 1);
                    let w = self.clone();
                    monoio::spawn(async move {
                        let addrs = resolve(&host, port).await;
                        w.sip_resolving.set(w.sip_resolving.get().saturating_sub(1));
                        tracing::debug!(%host, port, addrs = ?addrs, "SIP next hop resolved");
                        w.sip.borrow_mut().resolved(Instant::now(), req, addrs);
                        w.sip_flush();
                    });
                }
                SipAction::Open {
                    req,
                    transport,
                    addrs,
                    host,
                } => {
                    let peer = self.sip_open(transport, &addrs, &host);
                    if let Err(why) = &peer {
                        tracing::info!(%host, transport = transport.as_str(), side = "outbound", reason = %why, "SIP request not sent");
                    }
                    self.sip.borrow_mut().opened(Instant::now(), req, peer);
                    opened = true;
                }
            }
        }
        loop {
            let Some((core, from, msg)) = self.sip.borrow_mut().poll_handover() else {
                break;
            };
            if usize::from(core) < self.mesh.len() {
                self.send_to(core, Envelope::Sip(Box::new((from, msg))));
            }
        }
        loop {
            let Some(d) = self.sip.borrow_mut().poll_done() else {
                break;
            };
            let c = &self.counters;
            let counter = match d.status {
                _ if d.local && d.status == 408 => &c.sip_out_timeouts,
                _ if d.local => &c.sip_out_unreachable,
                200..=299 => &c.sip_out_success,
                _ => &c.sip_out_rejected,
            };
            bump(counter, 1);
            tracing::info!(
                request_id = %d.request_id,
                method = %d.method,
                ruri = %d.ruri,
                status = d.status,
                reason = %d.reason,
                transport = d.transport.unwrap_or("-"),
                peer = %d.peer.map_or_else(|| "-".to_string(), |p| p.to_string()),
                "SIP request done"
            );
            if let Some(sink) = &self.cfg.events
                && sink.wanted()
            {
                sink.push(OpsEvent {
                    at: std::time::SystemTime::now(),
                    body: EventBody::SipRequestDone(d),
                });
            }
        }
        if opened {
            // Requests whose way is now open have bytes to send (no more actions
            // come of that, so this goes one level deep).
            self.sip_flush();
        }
    }

    /// The way to one of `addrs` over `transport`: a UDP socket of the address's
    /// family, an open SIP connection to it, or a new connection (bytes queue on it
    /// while it is being made; a failure comes back through [`Worker::finish_conn`]).
    fn sip_open(
        self: &Rc<Self>,
        transport: SipTransport,
        addrs: &[SocketAddr],
        host: &str,
    ) -> Result<SipPeer, String> {
        if transport == SipTransport::Udp {
            for a in addrs {
                let found = self
                    .udp
                    .iter()
                    .position(|u| u.local_addr().is_ok_and(|l| l.is_ipv4() == a.is_ipv4()));
                if let Some(i) = found {
                    return Ok(SipPeer {
                        transport,
                        addr: *a,
                        conn: Some(ConnId {
                            core: self.core,
                            slot: i as u32,
                            generation: UDP_GENERATION,
                        }),
                    });
                }
            }
            return Err(if self.udp.is_empty() {
                "no SIP UDP socket (--no-sip-udp)".to_string()
            } else {
                format!("no SIP UDP socket of the family of {addrs:?}")
            });
        }
        for a in addrs {
            let id = self.sip_conns.borrow().get(&(*a, transport)).copied();
            if let Some(id) = id
                && self
                    .conn(id.slot, id.generation)
                    .is_some_and(|h| !h.is_closing())
            {
                return Ok(SipPeer {
                    transport,
                    addr: *a,
                    conn: Some(id),
                });
            }
        }
        let Some(&first) = addrs.first() else {
            return Err("no address".into());
        };
        let Some(id) = self.slots.borrow_mut().alloc() else {
            return Err("connection table full".into());
        };
        self.sip_connect(id, first, transport, host.to_string());
        Ok(SipPeer {
            transport,
            addr: first,
            conn: Some(id),
        })
    }

    /// Opens an outbound SIP connection for `id` (as [`Worker::connect`] does for
    /// MSRP: the connect timeout covers connecting and the TLS handshake, whose
    /// certificate must be valid for the URI host); once up, it is read as SIP.
    fn sip_connect(
        self: &Rc<Self>,
        id: ConnId,
        addr: SocketAddr,
        transport: SipTransport,
        host: String,
    ) {
        let h = Rc::new(ConnHandle::new(id, addr.to_string(), true));
        self.conns.borrow_mut().insert(id.slot, h.clone());
        self.sip_conn_add(addr, transport, id);
        self.rearm_timer();
        let timeout = self.cfg.connect_timeout;
        let up = Rc::new(Cell::new(false));
        {
            let (w, h, up) = (self.clone(), h.clone(), up.clone());
            monoio::spawn(async move {
                monoio::time::sleep(timeout).await;
                if !up.get() && !h.is_closing() {
                    let why = format!(
                        "connection to {} not made within {} s",
                        h.peer,
                        timeout.as_secs_f64()
                    );
                    tracing::warn!(peer = %h.peer, side = "outbound", "{why}");
                    w.sip_conn_failed.borrow_mut().insert(h.id, why);
                    w.connect_failed(&h);
                }
            });
        }
        let w = self.clone();
        monoio::spawn(async move {
            let s = match TcpStream::connect_addr(addr).await {
                Ok(s) if !h.is_closing() => s,
                Ok(_) => return,
                Err(e) => {
                    up.set(true);
                    let why = format!("connection to {addr} failed: {e}");
                    tracing::warn!(peer = %addr, side = "outbound", "SIP {why}");
                    w.sip_conn_failed.borrow_mut().insert(id, why);
                    w.connect_failed(&h);
                    return;
                }
            };
            let _ = s.set_nodelay(true);
            let fd = s.as_raw_fd();
            if transport != SipTransport::Tls {
                up.set(true);
                tracing::info!(peer = %addr, core = w.core, slot = id.slot, "outbound SIP connection open");
                w.spawn_sip_io(h, fd, s, addr, transport);
                return;
            }
            let r = w.tls_connect(&host, s, fd, h.peer.clone()).await;
            up.set(true);
            match r {
                Ok(t) if !h.is_closing() => {
                    tracing::info!(peer = %addr, core = w.core, slot = id.slot, "outbound SIP TLS connection open");
                    w.spawn_sip_io(h, fd, t, addr, transport);
                }
                r => {
                    let why = match r {
                        Err(e) => format!("TLS with {host} ({addr}): {e}"),
                        Ok(_) => "closed during the TLS handshake".into(),
                    };
                    tracing::warn!(peer = %addr, side = "outbound", "SIP {why}");
                    w.sip_conn_failed.borrow_mut().insert(id, why);
                    w.connect_failed(&h);
                }
            }
        });
    }

    /// Starts the reader (as SIP, [`sip_read_loop`]) and writer of an outbound SIP
    /// connection.
    fn spawn_sip_io<S: IntoHalves>(
        self: &Rc<Self>,
        h: Rc<ConnHandle>,
        fd: RawFd,
        stream: S,
        peer: SocketAddr,
        transport: SipTransport,
    ) {
        h.attach(fd);
        let (mut rd, wr) = stream.into_halves();
        let (w, hr) = (self.clone(), h.clone());
        monoio::spawn(async move {
            let why = sip_read_loop(&w, &hr, &mut rd, BytesMut::new(), peer, transport).await;
            end_read(w, hr, rd, why);
        });
        self.spawn_writer(h, wr);
    }

    /// Remembers a SIP connection for reuse.
    fn sip_conn_add(&self, peer: SocketAddr, transport: SipTransport, id: ConnId) {
        self.sip_conns.borrow_mut().insert((peer, transport), id);
        self.sip_conn_keys
            .borrow_mut()
            .insert(id, (peer, transport));
    }

    /// A connection closed: if it was a SIP one, it is forgotten, and requests
    /// waiting on it fail (503, RFC 3261 §8.1.3.1).
    fn sip_conn_gone(self: &Rc<Self>, id: ConnId) {
        let Some(key) = self.sip_conn_keys.borrow_mut().remove(&id) else {
            return;
        };
        {
            let mut m = self.sip_conns.borrow_mut();
            if m.get(&key) == Some(&id) {
                m.remove(&key);
            }
        }
        let why = self
            .sip_conn_failed
            .borrow_mut()
            .remove(&id)
            .unwrap_or_else(|| format!("connection to {} closed", key.0));
        self.sip.borrow_mut().conn_closed(Instant::now(), id, &why);
        self.sip_flush();
    }
}

/// A connected stream, split into independent halves for the connection's reader and
/// writer tasks: plain TCP (monoio's halves of the socket) or TLS ([`TlsStream`]: the
/// socket's halves plus one rustls connection they share).
trait IntoHalves: 'static {
    type Read: ConnRead;
    type Write: AsyncWriteRent + 'static;
    fn into_halves(self) -> (Self::Read, Self::Write);
}

/// The read half of a connection: reads, and a read on an empty buffer that the
/// worker can give up while the connection is idle ([`ConnHandle::park`]).
trait ConnRead: AsyncReadRent + 'static {
    /// Whether [`ConnRead::read_idle`] can be given up (TLS keeps its own buffers).
    const PARKS: bool;
    fn read_idle<T: IoBufMut>(
        &mut self,
        buf: T,
        c: CancelHandle,
    ) -> impl std::future::Future<Output = monoio::BufResult<usize, T>>;
}

impl ConnRead for OwnedReadHalf<TcpStream> {
    const PARKS: bool = true;
    fn read_idle<T: IoBufMut>(
        &mut self,
        buf: T,
        c: CancelHandle,
    ) -> impl std::future::Future<Output = monoio::BufResult<usize, T>> {
        self.cancelable_read(buf, c)
    }
}

impl ConnRead for TlsReader<TcpStream> {
    const PARKS: bool = false;
    fn read_idle<T: IoBufMut>(
        &mut self,
        buf: T,
        _: CancelHandle,
    ) -> impl std::future::Future<Output = monoio::BufResult<usize, T>> {
        self.read(buf)
    }
}

impl IntoHalves for TcpStream {
    type Read = OwnedReadHalf<TcpStream>;
    type Write = OwnedWriteHalf<TcpStream>;
    fn into_halves(self) -> (Self::Read, Self::Write) {
        self.into_split()
    }
}

impl IntoHalves for TlsStream<TcpStream> {
    type Read = TlsReader<TcpStream>;
    type Write = TlsWriter<TcpStream>;
    fn into_halves(self) -> (Self::Read, Self::Write) {
        self.into_split()
    }
}

/// Shuts the socket down if a TLS handshake is still running after
/// `timeout` (the handshake's pending read then fails; nothing is
/// cancelled). The caller sets the returned flag as soon as the handshake returns.
fn handshake_guard(fd: RawFd, timeout: Duration) -> Rc<Cell<bool>> {
    let done = Rc::new(Cell::new(false));
    let d = done.clone();
    monoio::spawn(async move {
        monoio::time::sleep(timeout).await;
        if !d.get() {
            // SAFETY: the handshake has not returned, so the stream that owns `fd` is
            // alive and the descriptor open; shutdown does not close it.
            unsafe {
                libc::shutdown(fd, libc::SHUT_RDWR);
            }
        }
    });
    done
}

/// The operator's log line for a user agent event (messages at debug: they are many).
fn log_ua_event(core: u16, e: &crate::ua::engine::UaEvent) {
    use crate::ua::engine::UaEvent as U;
    match e {
        U::SessionNew {
            session, from, to, ..
        } => {
            tracing::info!(core, %session, %from, %to, "user agent session up")
        }
        U::SessionFailed {
            session,
            code,
            reason,
        } => {
            tracing::info!(core, %session, code, %reason, "user agent session failed")
        }
        U::SessionEnd { session, by, why } => {
            tracing::info!(core, %session, by, reason = why, "user agent session ended")
        }
        U::MessageReceived {
            session,
            message_id,
            content_type,
            ..
        } => {
            tracing::debug!(core, %session, %message_id, %content_type, "user agent message received")
        }
        U::ReportReceived {
            session,
            message_id,
            status,
            source,
            ..
        } => {
            tracing::debug!(core, %session, %message_id, status, source, "user agent report")
        }
    }
}

/// Which engine an MSRP connection's frames go to: the user agent when the first
/// frame's first To-Path URI names one of its sessions
/// ([`crate::ua::engine::is_session_id`]), else the relay (ARCHITECTURE.md: frames go to
/// the engine that owns the first To-Path URI). Decided once per connection: a
/// connection carries one engine's sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    Relay,
    Ua,
}

impl Owner {
    fn of(raw: &crate::codec::RawHead) -> Owner {
        let ua = raw.parse().ok().is_some_and(|h| {
            h.to_path()
                .first()
                .session_id()
                .is_some_and(crate::ua::engine::is_session_id)
        });
        if ua { Owner::Ua } else { Owner::Relay }
    }

    /// The core that owns the user agent session a frame is for.
    fn ua_core(raw: &crate::codec::RawHead) -> Option<u16> {
        let h = raw.parse().ok()?;
        let sid = h.to_path().first().session_id()?;
        crate::ua::engine::SessionKey::decode(sid).map(|k| k.core)
    }
}

async fn read_loop<R: ConnRead>(
    w: Rc<Worker>,
    h: Rc<ConnHandle>,
    mut rd: R,
    sniff: Option<(ConnKind, SocketAddr)>,
) {
    let mut buf = BytesMut::with_capacity(IDLE_READ_BUF);
    // An accepted MSRP connection goes to the engine its first frame is for (see
    // `Owner`); an outbound one belongs to the relay, which opened it.
    let mut unowned: Option<ConnKind> = None;
    // An outbound connection of the user agent's is its own from the start.
    let mut owner = if h.for_ua.get() {
        Owner::Ua
    } else {
        Owner::Relay
    };
    // The core whose user agent the current frame is for.
    let mut ua_core = w.core;
    if let Some((kind, peer)) = sniff {
        use super::sip::Sniff;
        // An accepted connection: its first bytes say what it speaks.
        let what = loop {
            let s = super::sip::sniff(&buf);
            if s != Sniff::NeedMore {
                break Ok(s);
            }
            if let Err(why) = read_more(&mut rd, &mut buf).await {
                break Err(why);
            }
        };
        match what {
            Ok(Sniff::Msrp) => unowned = Some(kind),
            Ok(Sniff::Sip) => {
                h.head_since.set(None);
                let transport = match kind.transport() {
                    Transport::Tls => crate::sip::txn::Transport::Tls,
                    _ => crate::sip::txn::Transport::Tcp,
                };
                w.sip_conn_add(peer, transport, h.id);
                let why = sip_read_loop(&w, &h, &mut rd, buf, peer, transport).await;
                return end_read(w, h, rd, why);
            }
            // The seam of the WebSocket upgrade: not nosip, not served yet.
            Ok(Sniff::Http) => return end_read(w, h, rd, "HTTP is not served on this port"),
            // Neither MSRP nor SIP: what the sniff read (at most SNIFF_MAX plus one read)
            // goes to the nosip handler and the connection is closed. A stream that
            // starts wrong cannot be resynchronised, and keeping it open would let a
            // peer hold a slot and a buffer for nothing.
            Ok(_) => {
                w.nosip(&buf, stream_transport(&kind), peer);
                return end_read(w, h, rd, "neither MSRP nor SIP");
            }
            // Closed (or timed out by the head timeout) before the first bytes decided:
            // what came is still the peer's packet, for the handler.
            Err(why) => {
                if !buf.is_empty() {
                    w.nosip(&buf, stream_transport(&kind), peer);
                }
                return end_read(w, h, rd, why);
            }
        }
    }
    // The buffer grows to READ_BUF when a read fills it, and shrinks back once drained
    // after SHRINK_AFTER small reads in a row.
    let mut busy = false;
    let mut small_reads = 0u32;
    let mut read_len = 0;
    let mut sc = Scanner::new(w.limits);
    let id = h.id;
    let origin = Origin::Conn(id);
    // The head of the non-SEND frame being read (for a 413 when its body is too large;
    // a SEND's body has no such limit, so SEND heads, the common case, are not kept).
    let mut last_head: Option<bytes::Bytes> = None;
    // Bytes the sniff already read are scanned before the first read.
    let mut sniffed = !buf.is_empty();
    // Given up while idle (see `PARK_AFTER`): the next read waits on a tiny buffer.
    let mut parked = false;
    // When the last read completed: an idle wait's start.
    let mut last_read = Instant::now();
    // How long the last read waited (about: completion to completion), and how many
    // reads there were: only a read that follows a slow one, or one of a connection's
    // first reads, can be given up (see `QUIET_GAP`).
    let mut last_gap = Duration::ZERO;
    let mut reads = 0u32;
    let why = 'outer: loop {
        // Backpressure: our own queue (responses to this peer) and the queue our current
        // frame is feeding must be below the high-water mark before we read more.
        // A user agent connection's queue also holds the messages the user agent sends
        // (at most twice its message limit unanswered, see `Ua::send_message`): only
        // what is beyond them holds the reader, or the peer's SENDs and responses would
        // wait behind our own big message (RFC 4975 §7.1.1).
        let own_cap = match owner {
            Owner::Relay => w.cfg.high_water,
            Owner::Ua => w.cfg.high_water.saturating_add(
                usize::try_from(2 * w.cfg.ua.limits.max_message).unwrap_or(usize::MAX),
            ),
        };
        w.gauges
            .wait_below(w.core, id.core, id.slot, own_cap, None)
            .await;
        let target = match owner {
            Owner::Relay => w.relay.borrow().backpressure_target(id),
            Owner::Ua => None,
        };
        if let Some((core, slot)) = target {
            w.gauges
                .wait_below(w.core, core, slot, w.cfg.high_water, Some(origin))
                .await;
        }
        // Frames for another core's user agent: what is on its way there is bounded too.
        if owner == Owner::Ua && ua_core != w.core {
            w.gauges.wait_transit_below(ua_core, w.cfg.high_water).await;
        }
        if h.is_closing() {
            break "closed by relay";
        }
        if std::mem::take(&mut sniffed) {
            // Straight to the scanner below.
        } else {
            // Nothing of a frame held: the wait may be given up if it goes on.
            let idle = R::PARKS
                && buf.is_empty()
                && !sc.in_body()
                && (reads < EARLY_READS || last_gap >= QUIET_GAP);
            if std::mem::take(&mut parked) {
                buf = BytesMut::with_capacity(PARKED_READ_BUF);
            } else {
                if buf.is_empty()
                    && !busy
                    && small_reads >= SHRINK_AFTER
                    && buf.capacity() > IDLE_READ_BUF
                {
                    buf = BytesMut::with_capacity(IDLE_READ_BUF);
                }
                if buf.capacity() - buf.len() < MIN_READ
                    || (busy && buf.capacity() - buf.len() < READ_BUF / 2)
                {
                    buf.reserve(if busy { READ_BUF } else { IDLE_READ_BUF });
                }
            }
            let (len, cap) = (buf.len(), buf.capacity());
            // Waiting inside a frame's body: the body timeout runs (backpressure waits
            // above do not count, the peer is not the one holding things up then).
            if sc.in_body() {
                h.body_wait_since.set(Some(Instant::now()));
            }
            let slice = IoBufMut::slice_mut(buf, len..cap);
            let (res, slice) = if idle && cap > PARKED_READ_BUF {
                h.idle_since.set(Some(last_read));
                let r = rd.read_idle(slice, h.park_handle()).await;
                h.idle_since.set(None);
                r
            } else {
                rd.read(slice).await
            };
            h.body_wait_since.set(None);
            buf = slice.into_inner();
            match res {
                Ok(0) => break "closed by peer",
                Err(e) if e.raw_os_error() == Some(libc::ECANCELED) => {
                    // Parked (see PARK_AFTER): the buffer goes, nothing was read.
                    bump(&w.counters.reads_parked, 1);
                    buf = BytesMut::new();
                    parked = true;
                    continue 'outer;
                }
                Err(_) => break "read error",
                Ok(n) => {
                    read_len = n;
                    busy = n == cap - len;
                    small_reads = if n <= IDLE_READ_BUF / 2 {
                        small_reads.saturating_add(1)
                    } else {
                        0
                    };
                }
            }
        }
        let now = Instant::now();
        last_gap = now.saturating_duration_since(last_read);
        last_read = now;
        reads = reads.saturating_add(1);
        loop {
            match sc.next(&mut buf) {
                Ok(Some(ev)) => {
                    if let (Event::Head(raw), Some(kind)) = (&ev, &unowned) {
                        owner = Owner::of(raw);
                        if owner == Owner::Relay {
                            w.relay.borrow_mut().handle_open(now, id, kind.clone());
                            // The relay's own head timeout takes over from here.
                            h.head_since.set(None);
                        } else {
                            tracing::info!(peer = %h.peer, core = w.core, slot = id.slot, "MSRP connection for the user agent");
                            w.count_ua_conn(&h);
                        }
                        unowned = None;
                    }
                    if owner == Owner::Ua {
                        if let Event::Head(raw) = &ev {
                            // A core we do not have: this one answers (481).
                            ua_core = Owner::ua_core(raw)
                                .filter(|&c| usize::from(c) < w.cfg.cores)
                                .unwrap_or(w.core);
                            if ua_core != w.core {
                                w.ua_remote.borrow_mut().insert(id, ua_core);
                            }
                        }
                        if ua_core != w.core {
                            let m = match ev {
                                Event::Head(head) => UaMsg::Head { conn: id, head },
                                Event::Body(bytes) => UaMsg::Body { conn: id, bytes },
                                Event::End(flag) => UaMsg::End { conn: id, flag },
                            };
                            w.send_to(ua_core, Envelope::Ua(m));
                            continue;
                        }
                        let mut sip = w.sip.borrow_mut();
                        match ev {
                            Event::Head(raw) => sip.ua.handle_head(now, id, raw),
                            Event::Body(b) => sip.ua.handle_body(id, b),
                            Event::End(f) => sip.ua.handle_end(now, id, f),
                        }
                        continue;
                    }
                    let mut relay = w.relay.borrow_mut();
                    match ev {
                        Event::Head(raw) => {
                            if !raw.is_send() {
                                last_head = Some(raw.bytes().clone());
                            }
                            relay.handle_head(now, id, raw)
                        }
                        Event::Body(b) => relay.handle_body(origin, b),
                        Event::End(f) => relay.handle_end(now, origin, f),
                    }
                }
                Ok(None) => break,
                Err(ScanError::BodyTooLarge) if owner == Owner::Ua => {
                    tracing::info!(peer = %h.peer, "non-SEND body over its limit, closing connection");
                    break 'outer "non-SEND body too large";
                }
                Err(ScanError::BodyTooLarge) => {
                    tracing::info!(peer = %h.peer, "non-SEND body over its limit: 413, closing connection");
                    let head = last_head.take().unwrap_or_default();
                    w.relay.borrow_mut().handle_body_too_large(id, &head);
                    w.dispatch();
                    break 'outer "non-SEND body too large";
                }
                Err(e) => {
                    tracing::info!(peer = %h.peer, error = %e, "malformed input, closing connection");
                    break 'outer "malformed input";
                }
            }
        }
        // One read in 16 is sampled; when it queues nothing (a response the relay
        // consumes), the next read that does takes the sample.
        if w.hop.sample() {
            w.hop_armed.set(true);
        }
        if w.hop_armed.get() {
            w.hop_sampling.set(Some(now));
        }
        // A small read that ended inside a frame: acknowledge it at once, or a sender
        // with Nagle on waits for our delayed ACK before sending the rest (see
        // `ConnHandle::ack_now`). Large reads need not: the kernel acknowledges every
        // second full segment anyway, and Nagle holds back only small writes.
        if (sc.in_body() || !buf.is_empty()) && read_len < QUICKACK_BELOW {
            h.ack_now();
        }
        // A header block in progress: the head timeout runs from its first byte.
        if !buf.is_empty() && !sc.in_body() {
            if h.head_since.get().is_none() {
                h.head_since.set(Some(now));
            }
        } else {
            h.head_since.set(None);
        }
        if owner == Owner::Ua {
            w.sip_flush();
        }
        w.dispatch();
        if w.hop_sampling.take().is_none() {
            w.hop_armed.set(false);
        }
    };
    end_read(w, h, rd, why);
}

/// `tcp` or `tls`, as a nosip event names a stream's transport.
fn stream_transport(kind: &ConnKind) -> &'static str {
    match kind.transport() {
        Transport::Tls => "tls",
        _ => "tcp",
    }
}

fn end_read<R>(w: Rc<Worker>, h: Rc<ConnHandle>, rd: R, why: &str) {
    tracing::info!(peer = %h.peer, core = h.id.core, slot = h.id.slot, reason = why, "connection closed");
    drop(rd);
    h.half_done();
    w.finish_conn(&h);
}

/// Appends one read to `buf` (at most [`IDLE_READ_BUF`] more bytes).
async fn read_more<R: AsyncReadRent>(rd: &mut R, buf: &mut BytesMut) -> Result<(), &'static str> {
    if buf.capacity() - buf.len() < MIN_READ {
        buf.reserve(IDLE_READ_BUF);
    }
    let (len, cap) = (buf.len(), buf.capacity());
    let b = std::mem::take(buf);
    let (res, slice) = rd.read(monoio::buf::IoBufMut::slice_mut(b, len..cap)).await;
    *buf = slice.into_inner();
    match res {
        Ok(0) => Err("closed by peer"),
        Err(_) => Err("read error"),
        Ok(_) => Ok(()),
    }
}

/// A SIP connection (TCP or TLS): messages framed by Content-Length (RFC 3261 §18.3)
/// go to the core's transaction table; a CRLFCRLF ping gets a CRLF pong (RFC 5626
/// §4.4.1). Input that is not a SIP message, or is larger than the parser's limits,
/// closes the connection: a stream cannot be resynchronised (§18.3). Returns why it
/// ended.
async fn sip_read_loop<R: AsyncReadRent>(
    w: &Rc<Worker>,
    h: &Rc<ConnHandle>,
    rd: &mut R,
    mut buf: BytesMut,
    peer: SocketAddr,
    transport: crate::sip::txn::Transport,
) -> &'static str {
    use crate::sip::{Frame, Message};
    let from = crate::sip::txn::Peer {
        transport,
        addr: peer,
        conn: Some(h.id),
    };
    let limits = w.sip.borrow().limits;
    loop {
        loop {
            match Message::parse_stream(&mut buf, &limits) {
                Ok(Frame::Message(m)) => {
                    bump(&w.counters.sip_messages_in, 1);
                    let before = w.sip.borrow().txns.stats().dropped;
                    w.sip.borrow_mut().message(Instant::now(), from, m);
                    w.sip_flush();
                    // A request without a usable top Via (or a response without Via
                    // or CSeq) cannot be answered (§8.2.6.2 copies the Vias): on a
                    // stream that is a broken peer, closed like malformed input.
                    if w.sip.borrow().txns.stats().dropped != before {
                        bump(&w.counters.sip_malformed, 1);
                        tracing::info!(peer = %h.peer, "SIP message without a usable Via, closing connection");
                        h.close();
                        return "unanswerable SIP";
                    }
                }
                Ok(Frame::Ping) => {
                    bump(&w.counters.sip_pings, 1);
                    w.write_local(h.id, Bytes::from_static(b"\r\n"), Part::Whole, None);
                }
                Ok(Frame::Crlf) => {}
                Ok(Frame::Partial) => break,
                Err(e) => {
                    bump(&w.counters.sip_malformed, 1);
                    tracing::info!(peer = %h.peer, error = %e, status = e.status(), "malformed SIP input, closing connection");
                    h.close();
                    return "malformed SIP";
                }
            }
        }
        // A message in progress must be complete within the head timeout.
        if buf.is_empty() {
            h.head_since.set(None);
        } else if h.head_since.get().is_none() {
            h.head_since.set(Some(Instant::now()));
        }
        if h.is_closing() {
            return "closed";
        }
        if let Err(why) = read_more(rd, &mut buf).await {
            return why;
        }
    }
}

/// Receives SIP datagrams on one UDP socket of this worker (socket `index`): each is
/// sniffed, SIP goes to the transaction table whole (RFC 3261 §18.1.1), the rest to
/// the nosip handler.
async fn udp_loop(w: Rc<Worker>, sock: monoio::net::udp::UdpSocket, index: u32) {
    let mut buf = Vec::with_capacity(65_536);
    while !w.stopping.get() {
        buf.clear();
        let (res, b) = sock.recv_from(buf).await;
        buf = b;
        let Ok((n, from)) = res else {
            monoio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let data = &buf[..n.min(buf.len())];
        match super::sip::sniff(data) {
            super::sip::Sniff::Sip => {
                bump(&w.counters.sip_messages_in, 1);
                let peer = crate::sip::txn::Peer {
                    transport: crate::sip::txn::Transport::Udp,
                    addr: from,
                    conn: Some(ConnId {
                        core: w.core,
                        slot: index,
                        generation: UDP_GENERATION,
                    }),
                };
                let data = Bytes::copy_from_slice(data);
                let before = w.sip.borrow().txns.stats().dropped;
                w.sip.borrow_mut().datagram(Instant::now(), peer, data);
                if w.sip.borrow().txns.stats().dropped != before {
                    bump(&w.counters.sip_malformed, 1);
                    tracing::debug!(%from, len = n, "SIP datagram dropped: it does not parse, or has no usable Via to answer to");
                }
                w.sip_flush();
            }
            _ => w.nosip(data, "udp", from),
        }
    }
}

/// The addresses of `host:port`: an IP literal at once, a name resolved on a thread of
/// its own (`getaddrinfo` blocks, and must not block the core).
async fn resolve(host: &str, port: u16) -> Vec<SocketAddr> {
    let literal = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = literal.parse::<IpAddr>() {
        return vec![SocketAddr::new(ip, port)];
    }
    let (tx, rx) = async_channel::bounded(1);
    let name = host.to_string();
    let spawned = std::thread::Builder::new()
        .name("msrpd-resolve".into())
        .spawn(move || {
            let r = (name.as_str(), port)
                .to_socket_addrs()
                .map(Iterator::collect);
            let _ = tx.send_blocking(r);
        });
    if let Err(e) = spawned {
        tracing::warn!(%host, error = %e, "cannot start a resolver thread");
        return Vec::new();
    }
    match rx.recv().await {
        Ok(Ok(a)) => a,
        Ok(Err(e)) => {
            tracing::warn!(%host, port, side = "outbound", error = %e, "cannot resolve next hop");
            Vec::new()
        }
        Err(_) => Vec::new(),
    }
}
