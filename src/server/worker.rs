//! One worker: a pinned thread running a monoio runtime with this core's relay, its
//! connection map and its tasks (accept loops, a reader and a writer per connection,
//! the mesh receiver and a timer tick).

use std::cell::{Cell, Ref, RefCell};
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use hashbrown::HashMap;
use monoio::io::{AsyncReadRent, AsyncWriteRent, Split, Splitable};
use monoio::net::{TcpListener, TcpStream};

use super::ConnLimiter;
use super::conn::{ConnHandle, write_loop};
use super::mesh::{Envelope, Gauges, MeshReceiver, MeshSender};
use super::tls::{self, TlsContext};
use super::{Control, Driver};
use crate::codec::{Event, ScanError, ScanLimits, Scanner};
use crate::relay::types::bump;
use crate::relay::users::Users;
use crate::relay::{Action, CloseReason, ConnId, ConnKind, Counters, Origin, Relay, RelayConfig};

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
/// Timer resolution of the relay's timeouts.
const TICK: Duration = Duration::from_millis(100);

/// What one worker is given.
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
    pub secret: [u8; 32],
    pub high_water: usize,
    pub max_head: usize,
    pub max_non_send_body: u64,
    pub head_timeout: Duration,
    pub body_timeout: Duration,
    pub max_queue: usize,
    pub limiter: Arc<ConnLimiter>,
    pub shutdown_grace: Duration,
}

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
    let fut = worker_main(
        cfg.clone_parts(),
        listeners,
        rx,
        senders,
        gauges,
        counters,
        ready.clone(),
    );
    match cfg.driver {
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
                    if cfg.index == 0 {
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

/// The parts of a [`WorkerConfig`] the async side keeps.
struct Parts {
    index: usize,
    relay: RelayConfig,
    users: Option<Arc<Users>>,
    tls: Arc<TlsContext>,
    tls_handshake_timeout: Duration,
    secret: [u8; 32],
    high_water: usize,
    max_head: usize,
    max_non_send_body: u64,
    head_timeout: Duration,
    body_timeout: Duration,
    max_queue: usize,
    limiter: Arc<ConnLimiter>,
    shutdown_grace: Duration,
}

impl WorkerConfig {
    fn clone_parts(&self) -> Parts {
        Parts {
            index: self.index,
            relay: self.relay.clone(),
            users: self.users.clone(),
            tls: self.tls.clone(),
            tls_handshake_timeout: self.tls_handshake_timeout,
            secret: self.secret,
            high_water: self.high_water,
            max_head: self.max_head,
            max_non_send_body: self.max_non_send_body,
            head_timeout: self.head_timeout,
            body_timeout: self.body_timeout,
            max_queue: self.max_queue,
            limiter: self.limiter.clone(),
            shutdown_grace: self.shutdown_grace,
        }
    }
}

/// This core's state, shared by its tasks.
pub struct Worker {
    core: u16,
    relay: RefCell<Relay>,
    conns: RefCell<HashMap<u32, Rc<ConnHandle>>>,
    mesh: Vec<MeshSender>,
    gauges: Arc<Gauges>,
    high_water: usize,
    max_queue: usize,
    head_timeout: Duration,
    body_timeout: Duration,
    limiter: Arc<ConnLimiter>,
    counters: Arc<Counters>,
    limits: ScanLimits,
    listener_fds: RefCell<Vec<RawFd>>,
    stopping: Cell<bool>,
    shutdown_grace: Duration,
    /// Certificates for new handshakes (replaced on SIGHUP).
    tls: RefCell<Arc<TlsContext>>,
    tls_handshake_timeout: Duration,
}

async fn worker_main(
    p: Parts,
    listeners: Vec<Listener>,
    rx: MeshReceiver,
    senders: Vec<MeshSender>,
    gauges: Arc<Gauges>,
    counters: Arc<Counters>,
    ready: mpsc::Sender<Result<(), String>>,
) {
    let mut seed = [0u8; 32];
    rand::fill(&mut seed);
    let relay = Relay::new(
        p.relay,
        p.users,
        p.secret,
        seed,
        counters.clone(),
        Instant::now(),
    );
    let w = Rc::new(Worker {
        core: p.index as u16,
        relay: RefCell::new(relay),
        conns: RefCell::new(HashMap::new()),
        mesh: senders,
        gauges,
        high_water: p.high_water,
        max_queue: p.max_queue,
        head_timeout: p.head_timeout,
        body_timeout: p.body_timeout,
        limiter: p.limiter,
        counters,
        limits: ScanLimits {
            max_head: p.max_head,
            max_non_send_body: Some(p.max_non_send_body),
        },
        listener_fds: RefCell::new(Vec::new()),
        stopping: Cell::new(false),
        shutdown_grace: p.shutdown_grace,
        tls: RefCell::new(p.tls),
        tls_handshake_timeout: p.tls_handshake_timeout,
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

async fn timer_loop(w: Rc<Worker>) {
    let mut ticks = 0u32;
    while !w.stopping.get() {
        monoio::time::sleep(TICK).await;
        w.relay.borrow_mut().handle_timeout(Instant::now());
        w.dispatch();
        ticks = ticks.wrapping_add(1);
        if ticks % 5 == 0 {
            w.close_stalled(Instant::now());
        }
    }
}

/// Receives what other cores (and the main thread) send: waits on the doorbell, then
/// drains the channel.
async fn mesh_loop(w: Rc<Worker>, rx: MeshReceiver) {
    let mut bell = match rx
        .bell_rx
        .try_clone()
        .and_then(monoio::net::UnixStream::from_std)
    {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(core = w.core, error = %e, "cannot wait on the mesh doorbell");
            return;
        }
    };
    let mut buf = vec![0u8; 256];
    loop {
        rx.rearm();
        let now = Instant::now();
        while let Some(env) = rx.try_recv() {
            match env {
                Envelope::Mesh(m) => w.relay.borrow_mut().handle_mesh(now, m),
                Envelope::Control(Control::Users(u)) => w.relay.borrow_mut().set_users(u),
                Envelope::Control(Control::Dump) => w.dump(),
                Envelope::Control(Control::Tls(t)) => *w.tls.borrow_mut() = t,
                Envelope::Control(Control::Shutdown) => {
                    w.dispatch();
                    w.shutdown(&rx).await;
                    return;
                }
            }
        }
        w.dispatch();
        let (r, b) = bell.read(buf).await;
        buf = b;
        if matches!(r, Ok(0) | Err(_)) {
            return;
        }
    }
}

impl Worker {
    /// Takes a place under the connection limits for `peer`, or says why not (the
    /// caller drops the stream: a clean close).
    fn admit(&self, peer: SocketAddr) -> bool {
        match self.limiter.acquire(peer.ip()) {
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
        let kind = ConnKind::Inbound {
            loopback: peer.ip().is_loopback(),
            secure: false,
            relay: None,
        };
        let fd = stream.as_raw_fd();
        self.open_inbound(kind, peer, fd, stream, false);
    }

    /// Registers an accepted connection with the relay and starts its tasks.
    fn open_inbound<S>(
        self: &Rc<Self>,
        kind: ConnKind,
        peer: SocketAddr,
        fd: RawFd,
        stream: S,
        tls: bool,
    ) where
        S: Split + AsyncReadRent + AsyncWriteRent + 'static,
    {
        let id = self.relay.borrow_mut().open_conn(Instant::now(), kind);
        if id.slot as usize >= self.gauges.capacity() {
            tracing::warn!(%peer, "connection table full, refusing connection");
            self.relay.borrow_mut().handle_closed(Instant::now(), id);
            self.limiter.release(peer.ip());
            return;
        }
        tracing::info!(%peer, core = self.core, slot = id.slot, "connection opened");
        let h = Rc::new(ConnHandle::new(id, peer.to_string()));
        h.limit_ip.set(Some(peer.ip()));
        self.conns.borrow_mut().insert(id.slot, h.clone());
        self.spawn_io(h, fd, stream, tls);
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
            self.limiter.release(peer.ip());
            return;
        };
        let fd = stream.as_raw_fd();
        let w = self.clone();
        monoio::spawn(async move {
            let done = handshake_guard(fd, w.tls_handshake_timeout);
            let r = tls::accept(cfg, stream).await;
            // The stream (and its fd) is either ours again or already closed: the guard
            // must not touch the descriptor from here on.
            done.set(true);
            match r {
                Ok((s, relay)) if !w.stopping.get() => {
                    let kind = ConnKind::Inbound {
                        loopback: peer.ip().is_loopback(),
                        secure: true,
                        relay,
                    };
                    w.open_inbound(kind, peer, fd, s, true);
                }
                Ok(_) => w.limiter.release(peer.ip()),
                Err(e) => {
                    w.limiter.release(peer.ip());
                    tracing::info!(%peer, error = %e, "TLS handshake failed");
                }
            }
        });
    }

    /// Splits the stream and starts the reader and writer tasks. `fd` is the socket
    /// under it, for closing from outside; `tls` makes the writer gather small pieces.
    fn spawn_io<S>(self: &Rc<Self>, h: Rc<ConnHandle>, fd: RawFd, stream: S, tls: bool)
    where
        S: Split + AsyncReadRent + AsyncWriteRent + 'static,
    {
        h.attach(fd);
        let (rd, mut wr) = stream.into_split();
        monoio::spawn(read_loop(self.clone(), h.clone(), rd));
        let gauges = self.gauges.clone();
        monoio::spawn(async move {
            write_loop(&h, &gauges, &mut wr, tls).await;
            drop(wr);
            h.half_done();
        });
    }

    /// Opens an outbound connection for a slot the relay has already given out. Bytes
    /// queue on it while the connection is being made.
    fn connect(self: &Rc<Self>, id: ConnId, host: String, port: u16, secure: bool) {
        let h = Rc::new(ConnHandle::new(id, format!("{host}:{port}")));
        self.conns.borrow_mut().insert(id.slot, h.clone());
        let w = self.clone();
        monoio::spawn(async move {
            let addrs: Vec<SocketAddr> = match (host.as_str(), port).to_socket_addrs() {
                Ok(a) => a.collect(),
                Err(e) => {
                    tracing::warn!(%host, port, error = %e, "cannot resolve next hop");
                    Vec::new()
                }
            };
            let mut stream = None;
            for a in addrs {
                match TcpStream::connect_addr(a).await {
                    Ok(s) => {
                        stream = Some(s);
                        break;
                    }
                    Err(e) => tracing::warn!(addr = %a, error = %e, "outbound connection failed"),
                }
            }
            match stream {
                Some(s) if !h.is_closing() => {
                    let _ = s.set_nodelay(true);
                    let fd = s.as_raw_fd();
                    if !secure {
                        tracing::info!(peer = %h.peer, core = w.core, slot = id.slot, "outbound connection open");
                        w.spawn_io(h, fd, s, false);
                        return;
                    }
                    // msrps: the certificate must be valid for the URI host.
                    let Some(name) = tls::server_name(&host) else {
                        tracing::warn!(%host, "next hop host is not a valid TLS name");
                        h.abort();
                        w.finish_conn(&h);
                        return;
                    };
                    let connector =
                        monoio_rustls::TlsConnector::from(w.tls.borrow().client.clone());
                    let done = handshake_guard(fd, w.tls_handshake_timeout);
                    let r = connector.connect(name, s).await;
                    done.set(true);
                    match r {
                        Ok(t) if !h.is_closing() => {
                            tracing::info!(peer = %h.peer, core = w.core, slot = id.slot, "outbound TLS connection open");
                            w.spawn_io(h, fd, t, true);
                        }
                        r => {
                            if let Err(e) = r {
                                // The io::Error form says which check failed.
                                let e = std::io::Error::from(e);
                                tracing::warn!(peer = %h.peer, error = %e, "outbound TLS handshake failed");
                            }
                            h.abort();
                            w.finish_conn(&h);
                        }
                    }
                }
                _ => {
                    h.abort();
                    w.finish_conn(&h);
                }
            }
        });
    }

    /// The relay forgets the connection and its map entry goes.
    fn finish_conn(self: &Rc<Self>, h: &ConnHandle) {
        if let Some(ip) = h.limit_ip.take() {
            self.limiter.release(ip);
        }
        self.relay.borrow_mut().handle_closed(Instant::now(), h.id);
        if self.conn(h.id.slot, h.id.generation).is_some() {
            self.conns.borrow_mut().remove(&h.id.slot);
        }
        h.reader_done();
        self.dispatch();
    }

    /// The connection in `slot` if it is still the one of that generation (borrowed from
    /// the map: no reference count is touched on the per-frame path).
    fn conn(&self, slot: u32, generation: u32) -> Option<Ref<'_, ConnHandle>> {
        Ref::filter_map(self.conns.borrow(), |m| {
            m.get(&slot)
                .filter(|h| h.id.generation == generation)
                .map(|h| &**h)
        })
        .ok()
    }

    /// Carries out what the relay asked for.
    fn dispatch(self: &Rc<Self>) {
        loop {
            let Some(a) = self.relay.borrow_mut().poll_action() else {
                break;
            };
            match a {
                Action::Write {
                    slot,
                    generation,
                    bytes,
                    part,
                } => {
                    if let Some(h) = self.conn(slot, generation) {
                        if h.queued() + h.held() + bytes.len() > self.max_queue {
                            if !h.is_closing() {
                                bump(&self.counters.queue_overflows, 1);
                                tracing::info!(peer = %h.peer, slot, queued = h.queued(), max_queue = self.max_queue, "write queue over its hard cap: peer does not read, closing");
                            }
                            h.abort();
                        } else {
                            h.push(&self.gauges, bytes, part);
                        }
                    }
                }
                Action::Mesh { core, msg } => {
                    if let Some(tx) = self.mesh.get(usize::from(core)) {
                        // Unbounded: never full; fails only when that worker is gone.
                        let _ = tx.send(Envelope::Mesh(msg));
                    }
                }
                Action::Close {
                    slot,
                    generation,
                    reason,
                } => {
                    if let Some(h) = self.conn(slot, generation) {
                        tracing::info!(peer = %h.peer, slot, reason = ?reason, "closing connection");
                        h.close();
                    }
                }
                Action::Connect {
                    slot,
                    generation,
                    host,
                    port,
                    secure,
                } => {
                    let id = ConnId {
                        core: self.core,
                        slot,
                        generation,
                    };
                    self.connect(id, host, port, secure);
                }
            }
        }
    }

    /// Handles the frames other cores sent (control messages are dropped: the worker
    /// is stopping).
    fn drain_mesh(self: &Rc<Self>, rx: &MeshReceiver) {
        while let Some(env) = rx.try_recv() {
            if let Envelope::Mesh(m) = env {
                self.relay.borrow_mut().handle_mesh(Instant::now(), m);
            }
        }
        self.dispatch();
    }

    /// Closes connections whose header block has been incomplete for too long, and
    /// those whose frame body stopped arriving: a frame being passed on holds back every
    /// other frame for its receiver (they never interleave), so a sender that stalls in
    /// the middle of one must not hold that receiver for the whole idle timeout. The
    /// receiver gets the frame ended with `#` (RFC 4975 §7.1, aborted).
    fn close_stalled(&self, now: Instant) {
        for h in self.conns.borrow().values() {
            let checks = [
                (
                    &h.body_wait_since,
                    self.body_timeout,
                    &self.counters.body_timeouts,
                    "frame body stalled, aborting it and closing",
                ),
                (
                    &h.head_since,
                    self.head_timeout,
                    &self.counters.head_timeouts,
                    "header block not finished in time, closing",
                ),
            ];
            for (since, limit, counter, what) in checks {
                if let Some(t) = since.get()
                    && now.duration_since(t) >= limit
                    && !h.is_closing()
                {
                    bump(counter, 1);
                    tracing::info!(peer = %h.peer, slot = h.id.slot, "{what}");
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
        let deadline = Instant::now() + self.shutdown_grace;
        // Idle for three checks in a row: a frame that just ended here may still owe a
        // response that another core is about to send back (as a mesh message).
        let mut quiet = 0;
        while Instant::now() < deadline {
            self.drain_mesh(rx);
            let (_, _, streams, _) = self.relay.borrow().table_sizes();
            let queued: usize = self
                .conns
                .borrow()
                .values()
                .map(|h| h.queued() + h.held())
                .sum();
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

async fn read_loop<R: AsyncReadRent>(w: Rc<Worker>, h: Rc<ConnHandle>, mut rd: R) {
    let mut buf = BytesMut::with_capacity(IDLE_READ_BUF);
    // The buffer grows to READ_BUF when a read fills it, and shrinks back once drained
    // after SHRINK_AFTER small reads in a row.
    let mut busy = false;
    let mut small_reads = 0u32;
    let mut sc = Scanner::new(w.limits);
    let id = h.id;
    let origin = Origin::Conn(id);
    // The head of the non-SEND frame being read (for a 413 when its body is too large;
    // a SEND's body has no such limit, so SEND heads, the common case, are not kept).
    let mut last_head: Option<bytes::Bytes> = None;
    let why = 'outer: loop {
        // Backpressure: our own queue (responses to this peer) and the queue our current
        // frame is feeding must be below the high-water mark before we read more.
        w.gauges
            .wait_below(w.core, id.core, id.slot, w.high_water, None)
            .await;
        let target = w.relay.borrow().backpressure_target(id);
        if let Some((core, slot)) = target {
            w.gauges
                .wait_below(w.core, core, slot, w.high_water, Some(origin))
                .await;
        }
        if h.is_closing() {
            break "closed by relay";
        }
        if buf.is_empty() && !busy && small_reads >= SHRINK_AFTER && buf.capacity() > IDLE_READ_BUF
        {
            buf = BytesMut::with_capacity(IDLE_READ_BUF);
        }
        if buf.capacity() - buf.len() < MIN_READ
            || (busy && buf.capacity() - buf.len() < READ_BUF / 2)
        {
            buf.reserve(if busy { READ_BUF } else { IDLE_READ_BUF });
        }
        let (len, cap) = (buf.len(), buf.capacity());
        // Waiting inside a frame's body: the body timeout runs (backpressure waits
        // above do not count, the peer is not the one holding things up then).
        if sc.in_body() {
            h.body_wait_since.set(Some(Instant::now()));
        }
        let (res, slice) = rd
            .read(monoio::buf::IoBufMut::slice_mut(buf, len..cap))
            .await;
        h.body_wait_since.set(None);
        buf = slice.into_inner();
        match res {
            Ok(0) => break "closed by peer",
            Err(_) => break "read error",
            Ok(n) => {
                busy = n == cap - len;
                small_reads = if n <= IDLE_READ_BUF / 2 {
                    small_reads.saturating_add(1)
                } else {
                    0
                };
            }
        }
        let now = Instant::now();
        loop {
            match sc.next(&mut buf) {
                Ok(Some(ev)) => {
                    let mut relay = w.relay.borrow_mut();
                    match ev {
                        Event::Head(raw) => {
                            if raw.method() != Some(b"SEND") {
                                last_head = Some(raw.bytes().clone());
                            }
                            relay.handle_head(now, id, raw)
                        }
                        Event::Body(b) => relay.handle_body(origin, b),
                        Event::End(f) => relay.handle_end(now, origin, f),
                    }
                }
                Ok(None) => break,
                Err(ScanError::BodyTooLarge) => {
                    tracing::info!(peer = %h.peer, "non-SEND body over its limit: 413, closing connection");
                    let head = last_head.take().unwrap_or_default();
                    w.relay.borrow_mut().handle_body_too_large(now, id, &head);
                    w.dispatch();
                    break 'outer "non-SEND body too large";
                }
                Err(e) => {
                    tracing::info!(peer = %h.peer, error = %e, "malformed input, closing connection");
                    break 'outer "malformed input";
                }
            }
        }
        // A header block in progress: the head timeout runs from its first byte.
        if !buf.is_empty() && !sc.in_body() {
            if h.head_since.get().is_none() {
                h.head_since.set(Some(now));
            }
        } else {
            h.head_since.set(None);
        }
        w.dispatch();
    };
    tracing::info!(peer = %h.peer, core = id.core, slot = id.slot, reason = why, "connection closed");
    drop(rd);
    h.half_done();
    w.finish_conn(&h);
}

/// Summary used in logs and tests.
pub fn describe(reason: CloseReason) -> &'static str {
    match reason {
        CloseReason::NotAddressedToUs => "first To-Path URI is not this relay",
        CloseReason::AuthFailures => "too many failed AUTH requests",
        CloseReason::Probation => "no successful request during probation",
        CloseReason::Idle => "idle",
        CloseReason::Malformed => "malformed frame",
        CloseReason::BodyTooLarge => "non-SEND body over its limit",
    }
}
