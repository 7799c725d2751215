//! The I/O layer: the only code that touches monoio, sockets and threads.
//!
//! [`start`] binds one SO_REUSEPORT listener per worker and listen address, spawns one
//! named thread per selected core (`msrpd-worker-N`), pins it with `core_affinity`, and
//! runs a monoio runtime on it (io_uring, or epoll where io_uring is unavailable). Each
//! worker owns a [`crate::relay::Relay`], its connection map and its counters; workers
//! talk only through the mesh channels (see [`mesh`]).
//!
//! Beside the workers, [`crate::admin`] runs the control thread (when configured): it
//! reaches the workers through [`Ops`], whose commands travel as [`Control`] messages
//! with a [`Reply`] channel, and it hears their events through [`crate::admin::event`].

pub mod conn;
pub mod credentials;
pub mod hop;
pub mod listener;
pub mod mesh;
pub mod runtime;
pub mod sip;
pub mod tls;
pub mod tls_stream;
pub mod users_file;
pub mod worker;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::conn::{CounterSnapshot, Counters, MSRP_PORT};
use crate::relay::RelayConfig;
use crate::relay::users::Users;

/// Which monoio driver the workers run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Driver {
    /// io_uring when the kernel offers it, else epoll (said once at start).
    #[default]
    Auto,
    IoUring,
    /// The epoll-based driver.
    Legacy,
}

/// Everything the server needs to start.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: Vec<SocketAddr>,
    /// Addresses for MSRP over TLS (`msrps:`); they need `tls.cert` and `tls.key`.
    pub listen_tls: Vec<SocketAddr>,
    /// Certificate, key and extra trust anchors (reloaded on SIGHUP).
    pub tls: tls::TlsFiles,
    /// A TLS handshake (inbound or outbound) taking longer closes the connection.
    pub tls_handshake_timeout: Duration,
    /// Resolving and connecting to a next hop (TLS handshake included) taking longer
    /// fails the connection; what waits on it is reported to its senders.
    pub connect_timeout: Duration,
    /// Host for the relay's own URIs; `None`: derived from the listen address.
    pub advertise_host: Option<String>,
    pub advertise_port: Option<u16>,
    /// Further names that mean this relay in a To-Path URI.
    pub aliases: Vec<String>,
    /// CPUs to run workers on (one worker each).
    pub cpus: Vec<usize>,
    pub pin: bool,
    pub users_file: Option<PathBuf>,
    /// Template for each worker's relay policy (hosts, ports and core are filled in).
    pub relay: RelayConfig,
    /// Per-connection write queue high-water mark in bytes.
    pub high_water: usize,
    /// Header block cap for the scanner.
    pub max_head: usize,
    /// Body cap of a non-SEND request (RFC 4975 §7.1: at most 10240).
    pub max_non_send_body: u64,
    /// A header block still incomplete after this long closes its connection.
    pub head_timeout: Duration,
    /// A frame whose body gets no new byte for this long, while the relay is waiting
    /// for one, is aborted and its connection closed.
    pub body_timeout: Duration,
    /// Hard cap of one connection's write queue in bytes: a peer that stops reading
    /// and lets its queue pass it is disconnected.
    pub max_queue: usize,
    /// Accepted connections open at once, over all workers; more are refused.
    pub max_connections: usize,
    /// Accepted connections open at once from one source address.
    pub max_connections_per_ip: usize,
    /// Connection slots per worker.
    pub max_conns_per_core: usize,
    pub driver: Driver,
    /// How long a graceful shutdown waits for frames in flight.
    pub shutdown_grace: Duration,
    /// The control thread (HTTP API, events, metrics); `None`: none.
    pub admin: Option<crate::admin::AdminConfig>,
    /// SIP over UDP on the plain listeners' ports (one socket per worker).
    pub sip_udp: bool,
    /// The status INVITE, MESSAGE and other requests nobody owns get (300-699,
    /// RFC 3261 §8.2; 404 by default).
    pub sip_reject: u16,
    /// What is neither MSRP nor SIP ([`crate::nosip`]).
    pub nosip: crate::nosip::NosipConfig,
    /// SIP timers T1, T2 and T4 (RFC 3261 §17.1.1.1, table 4).
    pub sip_t1: Duration,
    pub sip_t2: Duration,
    pub sip_t4: Duration,
    /// Every outbound SIP request goes to this proxy (RFC 3261 §8.1.2, a preloaded
    /// Route).
    pub sip_outbound_proxy: Option<String>,
    /// `user:realm:password` lines for digest answers to 401/407 ([`credentials`]).
    pub sip_credentials: Option<PathBuf>,
    /// The user agent's answer rules (`--ua-answer`, `[[ua_answer]]`); none: the user
    /// agent answers nothing and every INVITE gets `sip_reject`.
    pub ua_rules: Vec<crate::ua::engine::Rule>,
    /// A user agent session ends this long after it starts (`None`: never).
    pub ua_max_duration: Option<Duration>,
    /// The largest message the user agent receives (413 beyond, RFC 4975 §7.3.1).
    pub ua_max_message: u64,
    /// The relay the user agent's sessions go through (RFC 4976).
    pub ua_relay: Option<crate::ua::engine::RelayConfig>,
}

impl ServerConfig {
    /// Defaults: one worker per available CPU, listen on `addr`.
    pub fn new(addr: SocketAddr) -> ServerConfig {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        ServerConfig {
            listen: vec![addr],
            listen_tls: Vec::new(),
            tls: tls::TlsFiles::default(),
            tls_handshake_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            advertise_host: None,
            advertise_port: None,
            aliases: Vec::new(),
            cpus: (0..n).collect(),
            pin: true,
            users_file: None,
            relay: RelayConfig::new("localhost", MSRP_PORT),
            high_water: 1 << 20,
            max_head: 16 * 1024,
            max_non_send_body: 10240,
            head_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            max_queue: 16 << 20,
            max_connections: 100_000,
            max_connections_per_ip: 1_000,
            max_conns_per_core: 1 << 18,
            driver: Driver::Auto,
            shutdown_grace: Duration::from_secs(5),
            admin: None,
            sip_udp: true,
            sip_reject: 404,
            nosip: crate::nosip::NosipConfig::default(),
            sip_t1: Duration::from_millis(500),
            sip_t2: Duration::from_secs(4),
            sip_t4: Duration::from_secs(5),
            sip_outbound_proxy: None,
            sip_credentials: None,
            ua_rules: Vec::new(),
            ua_max_duration: Some(Duration::from_secs(12 * 3600)),
            ua_max_message: 16 << 20,
            ua_relay: None,
        }
    }
}

/// Failures to start, each saying what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("another process already holds {0}; stop it or choose another --listen address")]
    PortInUse(SocketAddr),
    #[error("cannot read users file: {0}")]
    Users(#[from] crate::relay::users::UsersError),
    #[error("TLS: {0}")]
    Tls(#[from] tls::TlsError),
    #[error("--listen-tls needs --cert FILE and --key FILE (PEM)")]
    TlsWithoutCert,
    #[error("nothing to listen on: give --listen or --listen-tls")]
    NoListeners,
    #[error("no worker cores selected")]
    NoCores,
    #[error("cannot start worker thread: {0}")]
    Thread(std::io::Error),
    #[error("worker {0} failed to start: {1}")]
    Worker(usize, String),
    #[error("{0}")]
    SipCredentials(#[from] credentials::CredentialsError),
    #[error("bad SIP outbound proxy {0:?}: {1}")]
    SipProxy(String, String),
    #[error("admin API: {0}")]
    Admin(#[from] crate::admin::AdminError),
    #[error("reload: {0}")]
    ReloadRefused(ReloadRefused),
    #[error(
        "reload: workers {0:?} did not confirm in time; they take the new files when they get to them"
    )]
    ReloadUnconfirmed(Vec<usize>),
}

/// Commands the main thread and the control thread send to workers.
#[derive(Debug)]
pub enum Control {
    /// Stop accepting, finish frames in flight (up to the grace period), close.
    Shutdown,
    /// A reloaded users file (SIGHUP).
    Users(Option<Arc<Users>>),
    /// Log each worker's tables and queues (SIGUSR1).
    Dump,
    /// Reloaded certificate and key (SIGHUP): new handshakes use them.
    Tls(Arc<tls::TlsContext>),
    /// A question from the control thread, answered on its reply channel.
    Query(Query),
    /// An outbound SIP request from the admin API (its outcome is an event).
    SipRequest(Box<sip::ApiRequest>),
}

/// What the control thread asks a worker. Each carries the channel for the answer; the
/// worker answers at once from its own tables, never waiting. A new engine's queries
/// are a variant here and an arm in the worker's `answer`.
#[derive(Debug)]
pub enum Query {
    /// The relay sessions of the worker in id order: at most `limit`, from the first
    /// after `after` (slot, key) on.
    Sessions {
        after: Option<(u32, u64)>,
        limit: usize,
        reply: Reply<Vec<crate::relay::SessionInfo>>,
    },
    /// The worker's connections in slot order: at most `limit`, from the first slot
    /// after `after` on.
    Connections {
        after: Option<u32>,
        limit: usize,
        reply: Reply<Vec<WorkerConn>>,
    },
    /// End the relay session with this id, if the worker has it.
    EndSession(String, Reply<bool>),
    /// Gauges and the hop-latency histogram, for a scrape.
    Stats(Reply<WorkerStats>),
    /// The user agent's sessions on the worker.
    UaSessions(Reply<Vec<crate::ua::engine::SessionInfo>>),
    /// Send a message in a user agent session of the worker.
    UaSend(
        Box<UaSend>,
        Reply<Result<String, crate::ua::engine::UaError>>,
    ),
    /// End a user agent session of the worker.
    UaEnd(String, Reply<bool>),
    /// Start a user agent session (`POST /v1/ua/sessions`): its id, or why not.
    UaOriginate(
        Box<crate::ua::engine::Originate>,
        Reply<Result<String, String>>,
    ),
}

/// A message for [`Query::UaSend`], checked by the API.
#[derive(Debug)]
pub struct UaSend {
    pub session: String,
    pub content_type: String,
    pub body: bytes::Bytes,
    pub success_report: crate::codec::SuccessReport,
    pub failure_report: crate::codec::FailureReport,
}

/// The answer channel of a [`Query`]: any thread may send (once, never blocking) and
/// any runtime may wait on the other end.
#[derive(Debug)]
pub struct Reply<T>(async_channel::Sender<T>);

impl<T> Reply<T> {
    /// A reply channel and the end to wait on.
    pub fn channel() -> (Reply<T>, async_channel::Receiver<T>) {
        let (tx, rx) = async_channel::bounded(1);
        (Reply(tx), rx)
    }

    /// Answers; dropped silently when the asker stopped waiting.
    pub fn send(self, v: T) {
        let _ = self.0.try_send(v);
    }

    /// `true` when the asker stopped waiting: nobody reads an answer.
    pub fn is_closed(&self) -> bool {
        self.0.is_closed()
    }
}

impl Query {
    /// `true` when nobody waits for the answer of a question that only reads (an
    /// [`Query::EndSession`] is carried out all the same: the operator asked for it).
    pub fn asker_gone(&self) -> bool {
        match self {
            Query::Sessions { reply, .. } => reply.is_closed(),
            Query::Connections { reply, .. } => reply.is_closed(),
            Query::Stats(reply) => reply.is_closed(),
            Query::UaSessions(reply) => reply.is_closed(),
            // Carried out whether or not the asker still waits.
            Query::EndSession(..)
            | Query::UaSend(..)
            | Query::UaEnd(..)
            | Query::UaOriginate(..) => false,
        }
    }
}

/// One connection of a worker: what the relay knows of it, and its send queue.
#[derive(Debug, Clone)]
pub struct WorkerConn {
    pub relay: crate::relay::ConnInfo,
    /// Bytes queued for it (or being written).
    pub queued: usize,
}

/// A worker's gauges at a scrape.
#[derive(Debug, Clone, Default)]
pub struct WorkerStats {
    /// Bytes queued on the worker's connections.
    pub queued_bytes: u64,
    /// Frames being passed through.
    pub streams: u64,
    /// Connections in its map.
    pub connections: u64,
    /// Frame in to frame written, sampled (see [`hop`]).
    pub hop: hop::HopSnapshot,
}

/// What the control thread may do with a running server: ask the workers, reload, read
/// counters. Cheap to clone; every method works from any thread.
#[derive(Clone)]
pub struct Ops {
    inner: Arc<OpsInner>,
}

struct OpsInner {
    control: Vec<mesh::MeshSender>,
    counters: Vec<Arc<Counters>>,
    tls_files: tls::TlsFiles,
    serves_tls: bool,
    users_file: Option<PathBuf>,
    /// The digest realm, to check a reloaded users file against.
    realm: String,
    local_addrs: Vec<SocketAddr>,
    tls_addrs: Vec<SocketAddr>,
    /// Workers whose thread is still running.
    running: Arc<std::sync::atomic::AtomicUsize>,
    stopping: std::sync::atomic::AtomicBool,
    events: Arc<crate::admin::event::EventStats>,
    /// Held by a reload from reading the files until every worker has them.
    reload: std::sync::Mutex<()>,
}

/// Counts a worker thread as running while it lives.
struct Running(Arc<std::sync::atomic::AtomicUsize>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Ops {
    /// Number of workers.
    pub fn workers(&self) -> usize {
        self.inner.control.len()
    }

    /// The bound plain and TLS addresses.
    pub fn listen_addrs(&self) -> (&[SocketAddr], &[SocketAddr]) {
        (&self.inner.local_addrs, &self.inner.tls_addrs)
    }

    /// Workers whose thread is running.
    pub fn workers_running(&self) -> usize {
        self.inner.running.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// `true` once a shutdown was asked for.
    pub fn stopping(&self) -> bool {
        self.inner
            .stopping
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The counters of each worker.
    pub fn counters(&self) -> &[Arc<Counters>] {
        &self.inner.counters
    }

    /// The event queues' statistics (drops per worker).
    pub fn event_stats(&self) -> &Arc<crate::admin::event::EventStats> {
        &self.inner.events
    }

    /// Sends `make(reply)` to worker `core`; the answer comes on the returned receiver
    /// (closed without one when the worker is gone).
    pub fn ask<T>(
        &self,
        core: usize,
        make: impl FnOnce(Reply<T>) -> Query,
    ) -> async_channel::Receiver<T> {
        let (tx, rx) = Reply::channel();
        if let Some(c) = self.inner.control.get(core) {
            let _ = c.send(mesh::Envelope::Control(Control::Query(make(tx))));
        }
        rx
    }

    /// Hands an outbound SIP request to worker `core`; `false` when it is gone.
    pub fn sip_request(&self, core: usize, r: sip::ApiRequest) -> bool {
        self.inner.control.get(core).is_some_and(|c| {
            c.send(mesh::Envelope::Control(Control::SipRequest(Box::new(r))))
                .is_ok()
        })
    }

    /// Re-reads the certificate, key and CA files and hands them to every worker
    /// (see [`Ops::reload`]). `Ok` once every worker uses them, or when there are none.
    pub fn reload_tls(&self) -> Result<(), ServerError> {
        self.reload(false, true)?.tls.into_result()
    }

    /// Re-reads the users file and hands it to every worker (see [`Ops::reload`]).
    /// `Ok` once every worker uses it, or when there is none.
    pub fn reload_users(&self) -> Result<(), ServerError> {
        self.reload(true, false)?.users.into_result()
    }

    /// What SIGHUP and `POST /v1/reload` do: re-read the users file (`users`) and the
    /// TLS files (`tls`), hand what was read to every worker, and wait until each has
    /// it in use (at most [`RELOAD_CONFIRM`]). A file that cannot be read or used
    /// leaves the old one in use. One reload at a time: a second waits for the first,
    /// so every worker ends up with the same files. Refused once a shutdown was asked
    /// for. Each outcome is logged.
    pub fn reload(&self, users: bool, tls: bool) -> Result<ReloadReport, ReloadRefused> {
        if self.stopping() {
            return Err(ReloadRefused::Stopping);
        }
        let _one_at_a_time = self
            .inner
            .reload
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if self.stopping() {
            return Err(ReloadRefused::Stopping);
        }
        let mut report = ReloadReport {
            users: ReloadOutcome::NotAsked,
            tls: ReloadOutcome::NotAsked,
        };
        let mut sent = (false, false);
        if users {
            report.users = match self.load_users() {
                Ok(None) => ReloadOutcome::NotConfigured,
                Ok(Some(u)) => {
                    let n = u.len();
                    self.to_workers(|| Control::Users(Some(u.clone())));
                    sent.0 = true;
                    tracing::info!(users = n, "users file reloaded");
                    ReloadOutcome::Reloaded
                }
                Err(e) => {
                    tracing::error!(error = %e, "users file not reloaded; keeping the old one");
                    ReloadOutcome::Failed(e)
                }
            };
        }
        if tls {
            report.tls = match self.load_tls() {
                Ok(None) => ReloadOutcome::NotConfigured,
                Ok(Some(ctx)) => {
                    self.to_workers(|| Control::Tls(ctx.clone()));
                    sent.1 = true;
                    tracing::info!("TLS certificate and key reloaded");
                    ReloadOutcome::Reloaded
                }
                Err(e) => {
                    tracing::error!(error = %e, "TLS files not reloaded; keeping the old ones");
                    ReloadOutcome::Failed(e)
                }
            };
        }
        if sent.0 || sent.1 {
            let missing = self.confirm(RELOAD_CONFIRM);
            if !missing.is_empty() {
                tracing::warn!(
                    workers = ?missing,
                    "reload: workers did not confirm in time; they take the new files when they get to them"
                );
                if sent.0 {
                    report.users = ReloadOutcome::Unconfirmed(missing.clone());
                }
                if sent.1 {
                    report.tls = ReloadOutcome::Unconfirmed(missing);
                }
            }
        }
        tracing::info!(users = %report.users, tls = %report.tls, "reload finished");
        Ok(report)
    }

    /// The users file, read and checked; `None` when there is none.
    fn load_users(&self) -> Result<Option<Arc<Users>>, ServerError> {
        let Some(p) = &self.inner.users_file else {
            return Ok(None);
        };
        let u = users_file::load(p)?;
        users_file::warn_on_realm_mismatch(&u, &self.inner.realm, p);
        Ok(Some(Arc::new(u)))
    }

    /// The TLS files, read and checked; `None` when none are configured.
    fn load_tls(&self) -> Result<Option<Arc<tls::TlsContext>>, ServerError> {
        let f = &self.inner.tls_files;
        if f.cert.is_none() && f.key.is_none() && f.ca.is_none() {
            return Ok(None);
        }
        let ctx = tls::TlsContext::load(f)?;
        if self.inner.serves_tls && !ctx.can_serve() {
            return Err(ServerError::TlsWithoutCert);
        }
        Ok(Some(Arc::new(ctx)))
    }

    /// Sends `make()` to every worker.
    fn to_workers(&self, make: impl Fn() -> Control) {
        for c in &self.inner.control {
            let _ = c.send(mesh::Envelope::Control(make()));
        }
    }

    /// Waits until every worker has handled what was sent to it before this call: each
    /// worker takes its control messages in order, so its answer to a question sent
    /// now means it has. Returns the workers that did not answer within `wait` (or
    /// are gone).
    fn confirm(&self, wait: Duration) -> Vec<usize> {
        let deadline = std::time::Instant::now() + wait;
        let asked: Vec<_> = (0..self.workers())
            .map(|i| (i, self.ask(i, Query::Stats)))
            .collect();
        let mut missing = Vec::new();
        for (i, rx) in asked {
            loop {
                match rx.try_recv() {
                    Ok(_) => break,
                    Err(async_channel::TryRecvError::Closed) => {
                        missing.push(i);
                        break;
                    }
                    Err(async_channel::TryRecvError::Empty) => {
                        if std::time::Instant::now() >= deadline {
                            missing.push(i);
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
            }
        }
        missing
    }
}

/// How long a reload waits for every worker to say it has the new files in use.
pub const RELOAD_CONFIRM: Duration = Duration::from_secs(2);

/// Why a reload was not even tried.
#[derive(Debug, thiserror::Error)]
pub enum ReloadRefused {
    #[error("shutting down: nothing reloaded")]
    Stopping,
}

/// What a reload did with one kind of file.
#[derive(Debug)]
pub enum ReloadOutcome {
    /// Not asked for.
    NotAsked,
    /// None configured: nothing to read.
    NotConfigured,
    /// Read, and every worker has it in use.
    Reloaded,
    /// Read and sent, but these workers did not confirm in time: each uses the new
    /// files once it gets to them (unless it is gone).
    Unconfirmed(Vec<usize>),
    /// Not read or not usable; the old ones stay in use.
    Failed(ServerError),
}

impl ReloadOutcome {
    /// The outcome in a word or two (`reloaded`, `not configured`, ...).
    pub fn as_str(&self) -> &'static str {
        match self {
            ReloadOutcome::NotAsked => "not asked",
            ReloadOutcome::NotConfigured => "not configured",
            ReloadOutcome::Reloaded => "reloaded",
            ReloadOutcome::Unconfirmed(_) => "unconfirmed",
            ReloadOutcome::Failed(_) => "failed",
        }
    }

    /// `Ok` unless it failed or is unconfirmed.
    fn into_result(self) -> Result<(), ServerError> {
        match self {
            ReloadOutcome::Failed(e) => Err(e),
            ReloadOutcome::Unconfirmed(w) => Err(ServerError::ReloadUnconfirmed(w)),
            _ => Ok(()),
        }
    }
}

impl std::fmt::Display for ReloadOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What [`Ops::reload`] did with the users file and with the TLS files.
#[derive(Debug)]
pub struct ReloadReport {
    pub users: ReloadOutcome,
    pub tls: ReloadOutcome,
}

impl From<ReloadRefused> for ServerError {
    fn from(e: ReloadRefused) -> ServerError {
        ServerError::ReloadRefused(e)
    }
}

/// A running server.
pub struct ServerHandle {
    ops: Ops,
    advertise: String,
    threads: Vec<JoinHandle<()>>,
    admin: Option<crate::admin::AdminHandle>,
}

impl ServerHandle {
    /// The bound addresses (ports resolved when 0 was asked for).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.ops.inner.local_addrs
    }

    /// The bound TLS addresses.
    pub fn tls_addrs(&self) -> &[SocketAddr] {
        &self.ops.inner.tls_addrs
    }

    /// Where the admin API listens, when it runs.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().map(|a| a.addr())
    }

    /// What the control thread uses: queries, reloads, counters.
    pub fn ops(&self) -> &Ops {
        &self.ops
    }

    /// Re-reads the certificate, key and CA files (see [`Ops::reload_tls`]).
    pub fn reload_tls(&self) -> Result<(), ServerError> {
        self.ops.reload_tls()
    }

    /// `host:port` used in the relay's own URIs.
    pub fn advertise(&self) -> &str {
        &self.advertise
    }

    /// Counters summed over all workers.
    pub fn counters(&self) -> CounterSnapshot {
        self.ops
            .inner
            .counters
            .iter()
            .map(|c| c.snapshot())
            .fold(CounterSnapshot::default(), |a, b| a + b)
    }

    /// Counters of each worker.
    pub fn counters_per_core(&self) -> Vec<CounterSnapshot> {
        self.ops
            .inner
            .counters
            .iter()
            .map(|c| c.snapshot())
            .collect()
    }

    /// Re-reads the users file (see [`Ops::reload_users`]).
    pub fn reload_users(&self) -> Result<(), ServerError> {
        self.ops.reload_users()
    }

    /// Asks every worker to log its tables and queues.
    pub fn dump(&self) {
        for c in &self.ops.inner.control {
            let _ = c.send(mesh::Envelope::Control(Control::Dump));
        }
    }

    /// Asks every worker to shut down gracefully.
    pub fn shutdown(&self) {
        self.ops
            .inner
            .stopping
            .store(true, std::sync::atomic::Ordering::SeqCst);
        for c in &self.ops.inner.control {
            let _ = c.send(mesh::Envelope::Control(Control::Shutdown));
        }
    }

    /// Waits for every worker to finish, then stops the control thread.
    pub fn join(self) {
        for t in self.threads {
            let _ = t.join();
        }
        if let Some(a) = self.admin {
            a.stop();
        }
    }
}

/// Counts accepted connections over all workers, in total and per source address.
/// Taken only on accept and close, never per frame.
#[derive(Debug)]
pub struct ConnLimiter {
    max_total: usize,
    max_per_ip: usize,
    open: std::sync::Mutex<(usize, std::collections::HashMap<std::net::IpAddr, usize>)>,
}

impl ConnLimiter {
    pub fn new(max_total: usize, max_per_ip: usize) -> ConnLimiter {
        ConnLimiter {
            max_total,
            max_per_ip,
            open: std::sync::Mutex::new((0, std::collections::HashMap::new())),
        }
    }

    /// Takes a place for a connection from `ip`; `Err` says which limit is reached.
    pub fn acquire(&self, ip: std::net::IpAddr) -> Result<(), &'static str> {
        let mut g = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if g.0 >= self.max_total {
            return Err("max-connections");
        }
        let n = g.1.entry(ip).or_insert(0);
        if *n >= self.max_per_ip {
            return Err("max-connections-per-ip");
        }
        *n += 1;
        g.0 += 1;
        Ok(())
    }

    /// Gives back the place taken for a connection from `ip`.
    pub fn release(&self, ip: std::net::IpAddr) {
        let mut g = self.open.lock().unwrap_or_else(|e| e.into_inner());
        g.0 = g.0.saturating_sub(1);
        if let Some(n) = g.1.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                g.1.remove(&ip);
            }
        }
    }
}

/// Raises the soft open-files limit to the hard one: every connection is a descriptor.
fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            let want = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
    }
    tracing::info!(max_connections = lim.rlim_cur, "open-files limit");
}

/// Checks what [`start`] would load (users file, TLS files) without binding anything,
/// and describes the settings in force, one `key = value` line each.
pub fn check(cfg: &ServerConfig) -> Result<Vec<String>, ServerError> {
    if cfg.cpus.is_empty() {
        return Err(ServerError::NoCores);
    }
    if cfg.listen.is_empty() && cfg.listen_tls.is_empty() {
        return Err(ServerError::NoListeners);
    }
    let users = match &cfg.users_file {
        Some(p) => {
            let u = users_file::load(p)?;
            users_file::warn_on_realm_mismatch(&u, &cfg.relay.realm, p);
            Some(u.len())
        }
        None => None,
    };
    let tls_ctx = tls::TlsContext::load(&cfg.tls)?;
    if !cfg.listen_tls.is_empty() && !tls_ctx.can_serve() {
        return Err(ServerError::TlsWithoutCert);
    }
    if let Some(p) = &cfg.sip_credentials {
        credentials::load(p)?;
    }
    let list = |v: &[SocketAddr]| {
        v.iter()
            .map(|a| format!("{:?}", a.to_string()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let path = |p: &Option<PathBuf>| {
        p.as_ref().map_or("(none)".to_string(), |p| {
            format!("{:?}", p.display().to_string())
        })
    };
    let r = &cfg.relay;
    let mut out = vec![
        format!("listen = [{}]", list(&cfg.listen)),
        format!("listen_tls = [{}]", list(&cfg.listen_tls)),
        format!("cert = {}", path(&cfg.tls.cert)),
        format!("key = {}", path(&cfg.tls.key)),
        format!("ca = {}", path(&cfg.tls.ca)),
        format!(
            "advertise = {:?}",
            match (&cfg.advertise_host, cfg.advertise_port) {
                (Some(h), Some(p)) => format!("{h}:{p}"),
                (Some(h), None) => h.clone(),
                _ => "(from the listen address)".into(),
            }
        ),
        format!("alias = {:?}", cfg.aliases),
        format!("cpus = {:?}", cfg.cpus),
        format!("no_pin = {}", !cfg.pin),
        format!("driver = {:?}", format!("{:?}", cfg.driver).to_lowercase()),
        match users {
            Some(n) => format!("users = {} # {n} entries", path(&cfg.users_file)),
            None => "users = (none) # protected mode: loopback clients only".into(),
        },
        format!("realm = {:?}", r.realm),
        format!("expires_default = {}", r.expires_default),
        format!("expires_min = {}", r.expires_min),
        format!("expires_max = {}", r.expires_max),
        format!("nonce_lifetime = {}", r.nonce_lifetime.as_secs_f64()),
        format!("max_auth_failures = {}", r.max_auth_failures),
        format!("txn_timeout = {}", r.txn_timeout.as_secs_f64()),
        format!("probation = {}", r.probation.as_secs_f64()),
        format!("idle_timeout = {}", r.idle_timeout.as_secs_f64()),
        format!("head_timeout = {}", cfg.head_timeout.as_secs_f64()),
        format!("body_timeout = {}", cfg.body_timeout.as_secs_f64()),
        format!(
            "tls_handshake_timeout = {}",
            cfg.tls_handshake_timeout.as_secs_f64()
        ),
        format!("connect_timeout = {}", cfg.connect_timeout.as_secs_f64()),
        format!("block_unknown_methods = {}", r.block_unknown_methods),
        format!("high_water = {}", cfg.high_water),
        format!("max_head = {}", cfg.max_head),
        format!("max_non_send_body = {}", cfg.max_non_send_body),
        format!("max_path_uris = {}", r.max_path_uris),
        format!("max_connections = {}", cfg.max_connections),
        format!("max_connections_per_ip = {}", cfg.max_connections_per_ip),
        format!("max_queue = {}", cfg.max_queue),
        format!("sip_udp = {}", cfg.sip_udp),
        format!("sip_reject = {}", cfg.sip_reject),
        format!("sip_t1_ms = {}", cfg.sip_t1.as_millis()),
        format!("sip_t2_ms = {}", cfg.sip_t2.as_millis()),
        format!("sip_t4_ms = {}", cfg.sip_t4.as_millis()),
        format!(
            "sip_outbound_proxy = {}",
            cfg.sip_outbound_proxy
                .as_ref()
                .map_or("(none)".to_string(), |p| format!("{p:?}"))
        ),
        format!("sip_credentials = {}", path(&cfg.sip_credentials)),
        format!("nosip_min_bytes = {}", cfg.nosip.min_bytes),
        format!(
            "nosip_match = {:?}",
            cfg.nosip.matches.as_ref().map(|r| r.as_str())
        ),
        format!(
            "nosip_skip = {:?}",
            cfg.nosip.skip.as_ref().map(|r| r.as_str())
        ),
    ];
    match &cfg.admin {
        Some(a) => {
            out.push(format!("admin = {:?}", a.addr.to_string()));
            out.push(format!(
                "admin_token = {}",
                if a.token.is_some() { "(set)" } else { "(none)" }
            ));
            out.push(format!(
                "events_webhook = {}",
                a.webhook
                    .as_ref()
                    .map_or("(none)".to_string(), |u| format!("{:?}", u.to_string()))
            ));
        }
        None => out.push("admin = \"off\"".into()),
    }
    Ok(out)
}

/// Binds the listeners and starts the workers.
pub fn start(cfg: ServerConfig) -> Result<ServerHandle, ServerError> {
    if cfg.cpus.is_empty() {
        return Err(ServerError::NoCores);
    }
    raise_fd_limit();
    let workers = cfg.cpus.len();
    let users = match &cfg.users_file {
        Some(p) => {
            let u = users_file::load(p)?;
            users_file::warn_on_realm_mismatch(&u, &cfg.relay.realm, p);
            Some(Arc::new(u))
        }
        None => None,
    };
    match &users {
        Some(u) => tracing::info!(users = u.len(), "digest authentication enabled"),
        None => tracing::warn!(
            "no --users file: protected mode, AUTH succeeds for loopback clients only and every other client gets 403"
        ),
    }
    let sip_credentials = match &cfg.sip_credentials {
        Some(p) => {
            let c = credentials::load(p)?;
            tracing::info!(realms = c.entries.len(), "SIP digest credentials loaded");
            Arc::new(c)
        }
        None => Arc::new(crate::sip::auth::RealmCredentials::default()),
    };
    if let Some(p) = &cfg.sip_outbound_proxy {
        crate::sip::outbound::check_uri(p).map_err(|e| ServerError::SipProxy(p.clone(), e))?;
    }
    let tls_ctx = Arc::new(tls::TlsContext::load(&cfg.tls)?);
    if !cfg.listen_tls.is_empty() && !tls_ctx.can_serve() {
        return Err(ServerError::TlsWithoutCert);
    }
    if cfg.listen.is_empty() && cfg.listen_tls.is_empty() {
        return Err(ServerError::NoListeners);
    }
    let bound = listener::bind_all(&cfg.listen, workers)?;
    let bound_tls = listener::bind_all(&cfg.listen_tls, workers)?;
    let local_addrs: Vec<SocketAddr> = bound.iter().map(|b| b.addr).collect();
    let mut udp = if cfg.sip_udp {
        listener::bind_udp(&local_addrs, workers)?
    } else {
        (0..workers).map(|_| Vec::new()).collect()
    }
    .into_iter();
    let tls_addrs: Vec<SocketAddr> = bound_tls.iter().map(|b| b.addr).collect();
    let all_addrs: Vec<SocketAddr> = local_addrs.iter().chain(&tls_addrs).copied().collect();
    let (host, hosts) = advertised_hosts(&cfg, &all_addrs);
    // The advertised port is the first plain one (or the first TLS one on a TLS-only
    // relay); --advertise's port replaces it.
    let mut ports = Vec::new();
    let mut tls_ports = Vec::new();
    for a in &local_addrs {
        if !ports.contains(&a.port()) {
            ports.push(a.port());
        }
    }
    for a in &tls_addrs {
        if !tls_ports.contains(&a.port()) {
            tls_ports.push(a.port());
        }
    }
    let port = match cfg.advertise_port {
        Some(p) if local_addrs.is_empty() => {
            tls_ports.insert(0, p);
            p
        }
        Some(p) => {
            ports.insert(0, p);
            p
        }
        None => ports
            .first()
            .or(tls_ports.first())
            .copied()
            .unwrap_or(MSRP_PORT),
    };
    // Our Via sent-by (RFC 3261 §18.1.1): the first plain and TLS listen address, the
    // advertised host where one is the wildcard.
    let sent_by_of = |a: &SocketAddr| {
        if a.ip().is_unspecified() {
            format!("{host}:{}", a.port())
        } else {
            a.to_string()
        }
    };
    let sip_settings = sip::SipSettings {
        t1: cfg.sip_t1,
        t2: cfg.sip_t2,
        t4: cfg.sip_t4,
        proxy: cfg.sip_outbound_proxy.clone(),
        credentials: sip_credentials,
        sent_by: local_addrs
            .first()
            .or(tls_addrs.first())
            .map(sent_by_of)
            .unwrap_or_default(),
        sent_by_tls: tls_addrs.first().map(sent_by_of),
    };
    // The user agent's MSRP URIs and SDP c= name the first plain listen address (the
    // advertised host where it is the wildcard), its Contact our Via sent-by.
    let ua_host = match local_addrs.first().or(tls_addrs.first()) {
        Some(a) if !a.ip().is_unspecified() => match a.ip() {
            std::net::IpAddr::V6(v6) => format!("[{v6}]"),
            ip => ip.to_string(),
        },
        _ => host.to_string(),
    };
    let ua_port = local_addrs
        .first()
        .or(tls_addrs.first())
        .map_or(port, SocketAddr::port);
    let driver = resolve_driver(cfg.driver);
    let mut secret = [0u8; 32];
    rand::fill(&mut secret);
    let (senders, receivers) = mesh::channels(workers).map_err(ServerError::Thread)?;
    let gauges = Arc::new(mesh::Gauges::new(workers, cfg.max_conns_per_core));
    let limiter = Arc::new(ConnLimiter::new(
        cfg.max_connections,
        cfg.max_connections_per_ip,
    ));
    let counters: Vec<Arc<Counters>> = (0..workers)
        .map(|_| Arc::new(Counters::default()))
        .collect();
    let (event_sinks, event_queues, event_stats) =
        crate::admin::event::queues(workers, cfg.admin.is_some());
    let running = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut listeners_per_worker: Vec<Vec<(std::net::TcpListener, bool)>> =
        (0..workers).map(|_| Vec::new()).collect();
    for (b, secure) in bound
        .into_iter()
        .map(|b| (b, false))
        .chain(bound_tls.into_iter().map(|b| (b, true)))
    {
        for (i, l) in b.listeners.into_iter().enumerate() {
            listeners_per_worker[i].push((l, secure));
        }
    }
    let mut threads = Vec::with_capacity(workers);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), String>>();
    let mut event_sinks = event_sinks.into_iter();
    for (i, (listeners, rx)) in listeners_per_worker.into_iter().zip(receivers).enumerate() {
        let mut relay_cfg = cfg.relay.clone();
        relay_cfg.core = i as u16;
        relay_cfg.cores = workers as u16;
        relay_cfg.hosts = hosts.clone();
        relay_cfg.ports = ports.clone();
        relay_cfg.tls_ports = tls_ports.clone();
        relay_cfg.max_non_send_body = cfg.max_non_send_body.min(10240);
        let wcfg = worker::WorkerConfig {
            index: i,
            cpu: cfg.cpus[i],
            pin: cfg.pin,
            driver,
            relay: relay_cfg,
            users: users.clone(),
            tls: tls_ctx.clone(),
            tls_handshake_timeout: cfg.tls_handshake_timeout,
            connect_timeout: cfg.connect_timeout,
            secret,
            high_water: cfg.high_water,
            max_head: cfg.max_head,
            head_timeout: cfg.head_timeout,
            body_timeout: cfg.body_timeout,
            max_queue: cfg.max_queue.max(cfg.high_water),
            max_conns: cfg.max_conns_per_core,
            limiter: limiter.clone(),
            shutdown_grace: cfg.shutdown_grace,
            events: event_sinks.next().flatten(),
            udp: udp.next().unwrap_or_default(),
            sip_reject: cfg.sip_reject,
            nosip: cfg.nosip.clone(),
            sip_sent_by: all_addrs.iter().map(|a| a.to_string()).collect(),
            sip: sip_settings.clone(),
            ua: {
                let mut u = crate::ua::engine::Config::new(i as u16, &ua_host, ua_port);
                u.contact = format!("sip:msrpd@{}", sip_settings.sent_by);
                u.rules = cfg.ua_rules.clone();
                u.max_duration = cfg.ua_max_duration;
                u.limits.max_message = cfg.ua_max_message;
                u.limits.max_held = u.limits.max_held.max(cfg.ua_max_message);
                u.relay = cfg.ua_relay.clone();
                u
            },
            cores: workers,
        };
        let senders = senders.clone();
        let gauges = gauges.clone();
        let counters = counters[i].clone();
        let ready = ready_tx.clone();
        running.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let alive = Running(running.clone());
        let t = std::thread::Builder::new()
            .name(format!("msrpd-worker-{i}"))
            .spawn(move || {
                let _alive = alive;
                worker::run(wcfg, listeners, rx, senders, gauges, counters, ready)
            })
            .map_err(ServerError::Thread)?;
        threads.push(t);
    }
    for i in 0..workers {
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(ServerError::Worker(i, e)),
            Err(_) => return Err(ServerError::Worker(i, "exited early".into())),
        }
    }
    let advertise = format!("{host}:{port}");
    tracing::info!(
        listen = ?local_addrs,
        listen_tls = ?tls_addrs,
        advertise = %advertise,
        workers,
        driver = ?driver,
        "msrpd relay started"
    );
    let ops = Ops {
        inner: Arc::new(OpsInner {
            control: senders,
            counters,
            tls_files: cfg.tls.clone(),
            serves_tls: !tls_addrs.is_empty(),
            users_file: cfg.users_file.clone(),
            realm: cfg.relay.realm.clone(),
            local_addrs,
            tls_addrs,
            running,
            stopping: std::sync::atomic::AtomicBool::new(false),
            events: event_stats,
            reload: std::sync::Mutex::new(()),
        }),
    };
    let mut handle = ServerHandle {
        ops: ops.clone(),
        advertise,
        threads,
        admin: None,
    };
    if let Some(a) = cfg.admin {
        match crate::admin::start(a, ops, event_queues) {
            Ok(h) => handle.admin = h,
            Err(e) => {
                handle.shutdown();
                handle.join();
                return Err(e.into());
            }
        }
    }
    Ok(handle)
}

/// Picks the driver, saying once when io_uring is not available.
fn resolve_driver(d: Driver) -> Driver {
    match d {
        Driver::Auto => {
            if std::env::var_os("MONOIO_FORCE_LEGACY_DRIVER").is_some() {
                tracing::info!("MONOIO_FORCE_LEGACY_DRIVER set: using the epoll driver");
                Driver::Legacy
            } else if monoio::utils::detect_uring() {
                Driver::IoUring
            } else {
                tracing::warn!("io_uring is not available on this kernel: using the epoll driver");
                Driver::Legacy
            }
        }
        d => d,
    }
}

/// The advertised host and every name that means this relay.
fn advertised_hosts(cfg: &ServerConfig, addrs: &[SocketAddr]) -> (String, Vec<String>) {
    let ip_text = |a: &SocketAddr| match a {
        SocketAddr::V4(v) => v.ip().to_string(),
        SocketAddr::V6(v) => format!("[{}]", v.ip()),
    };
    let mut hosts = Vec::new();
    let host = match &cfg.advertise_host {
        Some(h) => h.clone(),
        None => {
            let a = addrs[0];
            if a.ip().is_unspecified() {
                hostname().unwrap_or_else(|| "localhost".into())
            } else {
                ip_text(&a)
            }
        }
    };
    hosts.push(host.clone());
    for a in addrs {
        if a.ip().is_unspecified() {
            for h in ["127.0.0.1", "[::1]", "localhost"] {
                hosts.push(h.to_string());
            }
            if let Some(h) = hostname() {
                hosts.push(h);
            }
        } else {
            hosts.push(ip_text(a));
        }
    }
    hosts.extend(cfg.aliases.iter().cloned());
    let mut seen = Vec::new();
    hosts.retain(|h| {
        let k = h.to_ascii_lowercase();
        let new = !seen.contains(&k);
        seen.push(k);
        new
    });
    (host, hosts)
}

fn hostname() -> Option<String> {
    let h = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let h = h.trim();
    (!h.is_empty()).then(|| h.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// Ops over two fake workers whose control channels the test reads and answers.
    fn fake_ops(users: PathBuf) -> (Ops, Vec<mesh::MeshReceiver>) {
        let (control, receivers) = mesh::channels(2).unwrap();
        let ops = Ops {
            inner: Arc::new(OpsInner {
                control,
                counters: Vec::new(),
                tls_files: tls::TlsFiles::default(),
                serves_tls: false,
                users_file: Some(users),
                realm: "fake.realm".into(),
                local_addrs: Vec::new(),
                tls_addrs: Vec::new(),
                running: Arc::new(std::sync::atomic::AtomicUsize::new(2)),
                stopping: std::sync::atomic::AtomicBool::new(false),
                events: Arc::new(crate::admin::event::EventStats {
                    wanted: std::sync::atomic::AtomicBool::new(false),
                    dropped: Vec::new(),
                    queued: Vec::new(),
                }),
                reload: std::sync::Mutex::new(()),
            }),
        };
        (ops, receivers)
    }

    /// The next control message on `rx` within `wait`.
    fn next(rx: &mesh::MeshReceiver, wait: Duration) -> Option<Control> {
        let deadline = Instant::now() + wait;
        loop {
            if let Some(mesh::Envelope::Control(c)) = rx.try_recv() {
                return Some(c);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// What a worker does with a reload: takes the users, then answers the question
    /// behind them. Returns the number of users it got.
    fn take_reload(rx: &mesh::MeshReceiver) -> usize {
        let n = match next(rx, Duration::from_secs(5)) {
            Some(Control::Users(Some(u))) => u.len(),
            other => panic!("expected users, got {other:?}"),
        };
        match next(rx, Duration::from_secs(5)) {
            Some(Control::Query(Query::Stats(reply))) => reply.send(WorkerStats::default()),
            other => panic!("expected the confirming question, got {other:?}"),
        }
        n
    }

    /// A second reload (SIGHUP while an API reload runs, say) sends nothing until the
    /// first has been confirmed by every worker; each is reported done only then.
    #[test]
    fn reloads_run_one_at_a_time_and_end_when_confirmed() {
        let file = std::env::temp_dir().join(format!("msrpd-reload-unit-{}", std::process::id()));
        let _ = std::fs::remove_file(&file);
        users_file::set_password(&file, "fake.realm", "alice", "a").unwrap();
        let (ops, rxs) = fake_ops(file.clone());
        let first = {
            let ops = ops.clone();
            std::thread::spawn(move || ops.reload(true, true))
        };
        // Worker 0 gets the file and the question; it does not answer yet.
        let users = match next(&rxs[0], Duration::from_secs(5)) {
            Some(Control::Users(Some(u))) => u.len(),
            other => panic!("expected users, got {other:?}"),
        };
        assert_eq!(users, 1);
        let held = match next(&rxs[0], Duration::from_secs(5)) {
            Some(Control::Query(Query::Stats(reply))) => reply,
            other => panic!("expected the confirming question, got {other:?}"),
        };
        // The file changes and a second reload starts: it waits for the first.
        users_file::set_password(&file, "fake.realm", "bob", "b").unwrap();
        let second = {
            let ops = ops.clone();
            std::thread::spawn(move || ops.reload(true, false))
        };
        assert_eq!(take_reload(&rxs[1]), 1, "worker 1: the first reload's file");
        std::thread::sleep(Duration::from_millis(200));
        assert!(!first.is_finished(), "reported before worker 0 confirmed");
        for rx in &rxs {
            assert!(
                next(rx, Duration::from_millis(50)).is_none(),
                "the second reload sent while the first was unconfirmed"
            );
        }
        held.send(WorkerStats::default());
        let r = first.join().unwrap().unwrap();
        assert_eq!(r.users.as_str(), "reloaded");
        assert_eq!(r.tls.as_str(), "not configured");
        // Now the second: both workers get the new file.
        assert_eq!(take_reload(&rxs[0]), 2);
        assert_eq!(take_reload(&rxs[1]), 2);
        let r = second.join().unwrap().unwrap();
        assert_eq!(r.users.as_str(), "reloaded");
        assert_eq!(r.tls.as_str(), "not asked");

        // Once stopping, nothing is read or sent.
        ops.inner
            .stopping
            .store(true, std::sync::atomic::Ordering::SeqCst);
        assert!(matches!(
            ops.reload(true, true),
            Err(ReloadRefused::Stopping)
        ));
        assert!(next(&rxs[0], Duration::from_millis(50)).is_none());
        let _ = std::fs::remove_file(&file);
    }
}
