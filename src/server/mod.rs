//! The I/O layer: the only code that touches monoio, sockets and threads.
//!
//! [`start`] binds one SO_REUSEPORT listener per worker and listen address, spawns one
//! named thread per selected core (`msrpd-worker-N`), pins it with `core_affinity`, and
//! runs a monoio runtime on it (io_uring, or epoll where io_uring is unavailable). Each
//! worker owns a [`crate::relay::Relay`], its connection map and its counters; workers
//! talk only through the mesh channels (see [`mesh`]).

pub mod conn;
pub mod listener;
pub mod mesh;
pub mod runtime;
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
}

/// Commands the main thread sends to workers.
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
}

/// A running server.
pub struct ServerHandle {
    local_addrs: Vec<SocketAddr>,
    tls_addrs: Vec<SocketAddr>,
    tls_files: tls::TlsFiles,
    advertise: String,
    counters: Vec<Arc<Counters>>,
    control: Vec<mesh::MeshSender>,
    threads: Vec<JoinHandle<()>>,
    users_file: Option<PathBuf>,
    /// The digest realm, to check a reloaded users file against.
    realm: String,
}

impl ServerHandle {
    /// The bound addresses (ports resolved when 0 was asked for).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.local_addrs
    }

    /// The bound TLS addresses.
    pub fn tls_addrs(&self) -> &[SocketAddr] {
        &self.tls_addrs
    }

    /// Re-reads the certificate, key and CA files and hands them to every worker
    /// (SIGHUP). Open connections keep their session; new handshakes use the new files.
    /// On error the old ones stay in use.
    pub fn reload_tls(&self) -> Result<(), ServerError> {
        let ctx = Arc::new(tls::TlsContext::load(&self.tls_files)?);
        if !self.tls_addrs.is_empty() && !ctx.can_serve() {
            return Err(ServerError::TlsWithoutCert);
        }
        for c in &self.control {
            let _ = c.send(mesh::Envelope::Control(Control::Tls(ctx.clone())));
        }
        tracing::info!("TLS certificate and key reloaded");
        Ok(())
    }

    /// `host:port` used in the relay's own URIs.
    pub fn advertise(&self) -> &str {
        &self.advertise
    }

    /// Counters summed over all workers.
    pub fn counters(&self) -> CounterSnapshot {
        self.counters
            .iter()
            .map(|c| c.snapshot())
            .fold(CounterSnapshot::default(), |a, b| a + b)
    }

    /// Counters of each worker.
    pub fn counters_per_core(&self) -> Vec<CounterSnapshot> {
        self.counters.iter().map(|c| c.snapshot()).collect()
    }

    /// Re-reads the users file and hands it to every worker (SIGHUP).
    pub fn reload_users(&self) -> Result<(), ServerError> {
        let users = match &self.users_file {
            Some(p) => {
                let u = users_file::load(p)?;
                users_file::warn_on_realm_mismatch(&u, &self.realm, p);
                Some(Arc::new(u))
            }
            None => None,
        };
        for c in &self.control {
            let _ = c.send(mesh::Envelope::Control(Control::Users(users.clone())));
        }
        tracing::info!(
            users = users.as_ref().map_or(0, |u| u.len()),
            "users file reloaded"
        );
        Ok(())
    }

    /// Asks every worker to log its tables and queues.
    pub fn dump(&self) {
        for c in &self.control {
            let _ = c.send(mesh::Envelope::Control(Control::Dump));
        }
    }

    /// Asks every worker to shut down gracefully.
    pub fn shutdown(&self) {
        for c in &self.control {
            let _ = c.send(mesh::Envelope::Control(Control::Shutdown));
        }
    }

    /// Waits for every worker to finish.
    pub fn join(self) {
        for t in self.threads {
            let _ = t.join();
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
        };
        let senders = senders.clone();
        let gauges = gauges.clone();
        let counters = counters[i].clone();
        let ready = ready_tx.clone();
        let t = std::thread::Builder::new()
            .name(format!("msrpd-worker-{i}"))
            .spawn(move || worker::run(wcfg, listeners, rx, senders, gauges, counters, ready))
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
    Ok(ServerHandle {
        local_addrs,
        tls_addrs,
        tls_files: cfg.tls.clone(),
        advertise,
        counters,
        control: senders,
        threads,
        users_file: cfg.users_file.clone(),
        realm: cfg.relay.realm.clone(),
    })
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
