//! The control plane: one thread beside the workers (`msrpd-admin`), never on them,
//! running a current-thread tokio runtime with an axum HTTP API. tokio lives here and
//! only here; the workers stay on monoio.
//!
//! - [`api`]: the endpoints (`/healthz`, `/readyz`, `/metrics`, `/v1/relay/...`,
//!   `/v1/events`, `/v1/reload`), the bearer-token check and JSON errors.
//! - [`event`]: the events workers push into bounded queues (dropped and counted when
//!   full), and their JSON.
//! - [`metrics`]: the Prometheus text exposition, read at scrape time from the workers'
//!   counters, their answers to a `Stats` query and `/proc/self`.
//! - [`webhook`]: `--events-webhook`, an HTTP POST per event with retries, bounded.
//!
//! Workers are reached through [`crate::server::Ops`]: commands travel over the mesh
//! as [`crate::server::Control::Query`] with a reply channel. A slow or absent consumer
//! never slows a worker: the worker only ever `try_send`s.
//!
//! Adding an engine's endpoints: a handler in [`api`] that asks the workers with a new
//! [`crate::server::Query`] variant, and one `.route(..)` line.

pub mod api;
pub mod event;
pub mod metrics;
pub mod sip_requests;
pub mod ua;
pub mod webhook;

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::server::Ops;

/// The admin listener's address when none is configured.
pub const DEFAULT_ADDR: &str = "127.0.0.1:8665";

/// How long requests in progress may take to finish when the API stops.
const STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(1);
/// [`AdminConfig::max_connections`] by default.
const MAX_CONNECTIONS: usize = 64;
/// [`AdminConfig::header_timeout`] by default.
const HEADER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Largest request body the API reads; more gets 413.
pub const MAX_BODY: usize = 64 * 1024;

/// How the control thread is set up.
#[derive(Clone)]
pub struct AdminConfig {
    pub addr: SocketAddr,
    /// The address was asked for (flag or file): failing to bind it stops the start.
    /// The default address in use by someone else only gives a warning.
    pub explicit: bool,
    /// The bearer token every request must carry (`--admin-token-file`).
    pub token: Option<String>,
    /// The file the token was read from (its mode is checked at start).
    pub token_file: Option<std::path::PathBuf>,
    /// Where each event is POSTed (`--events-webhook`, `http://` only).
    pub webhook: Option<hyper::Uri>,
    /// One POST to the webhook (its answer included) taking longer has failed.
    pub webhook_timeout: std::time::Duration,
    /// Connections open at once (one more is closed at accept, and logged): the API
    /// shares the process's descriptors with the MSRP listeners and must not eat them.
    pub max_connections: usize,
    /// A request whose header block has not arrived in this time loses its connection.
    pub header_timeout: std::time::Duration,
}

impl std::fmt::Debug for AdminConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminConfig")
            .field("addr", &self.addr)
            .field("explicit", &self.explicit)
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .field("token_file", &self.token_file)
            .field("webhook", &self.webhook)
            .field("webhook_timeout", &self.webhook_timeout)
            .field("max_connections", &self.max_connections)
            .field("header_timeout", &self.header_timeout)
            .finish()
    }
}

impl AdminConfig {
    /// An API on `addr` without token or webhook.
    pub fn new(addr: SocketAddr) -> AdminConfig {
        AdminConfig {
            addr,
            explicit: true,
            token: None,
            token_file: None,
            webhook: None,
            webhook_timeout: webhook::TIMEOUT,
            max_connections: MAX_CONNECTIONS,
            header_timeout: HEADER_TIMEOUT,
        }
    }
}

/// Why the control thread did not start.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot start the admin thread: {0}")]
    Thread(std::io::Error),
    #[error("cannot build the admin runtime: {0}")]
    Runtime(std::io::Error),
    #[error(
        "admin address {0} is not a loopback address: give --admin-token-file FILE (a bearer token every request must carry)"
    )]
    TokenRequired(SocketAddr),
}

/// The running control thread.
pub struct AdminHandle {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl AdminHandle {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops the API and waits for its thread.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for AdminHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// What is wrong with the token file's permissions, if anything: a token the group or
/// others may read is no secret on a shared host.
pub fn token_file_warning(cfg: &AdminConfig) -> Option<String> {
    let path = cfg.token_file.as_ref()?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Some(format!(
                "admin token file {} has mode {mode:04o}: the group or others can read the token (chmod 600 {}, or 640 with the relay's group)",
                path.display(),
                path.display()
            ));
        }
    }
    None
}

/// Binds the admin listener and starts the control thread. `queues` are the workers'
/// event queues. `Ok(None)`: the default address was taken by another process (warned,
/// the relay runs without the API).
pub fn start(
    cfg: AdminConfig,
    ops: Ops,
    queues: Vec<async_channel::Receiver<event::Event>>,
) -> Result<Option<AdminHandle>, AdminError> {
    if !cfg.addr.ip().is_loopback() && cfg.token.is_none() {
        return Err(AdminError::TokenRequired(cfg.addr));
    }
    let std_listener = match bind(cfg.addr) {
        Ok(l) => l,
        Err(source) if !cfg.explicit && source.kind() == std::io::ErrorKind::AddrInUse => {
            tracing::warn!(addr = %cfg.addr, "admin API not started: its default address is in use (give --admin ADDR, or --admin off)");
            return Ok(None);
        }
        Err(source) => {
            return Err(AdminError::Bind {
                addr: cfg.addr,
                source,
            });
        }
    };
    let addr = std_listener
        .local_addr()
        .map_err(|source| AdminError::Bind {
            addr: cfg.addr,
            source,
        })?;
    match &cfg.token {
        None => tracing::warn!(
            %addr,
            "admin API without a token: every local user and process can list sessions and end them (give --admin-token-file FILE)"
        ),
        Some(_) => {
            if let Some(w) = token_file_warning(&cfg) {
                tracing::warn!("{w}");
            }
        }
    }
    // With a webhook every event is wanted from now on, not only once the control
    // thread has set up (workers already run: their first events would be lost).
    if cfg.webhook.is_some() {
        ops.event_stats()
            .wanted
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(AdminError::Runtime)?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
    let thread = std::thread::Builder::new()
        .name("msrpd-admin".into())
        .spawn(move || {
            rt.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(std_listener) {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::error!(error = %e, "admin listener");
                        return;
                    }
                };
                let (max, header_timeout) = (cfg.max_connections, cfg.header_timeout);
                let state = api::State::new(
                    ops,
                    cfg.token,
                    cfg.webhook.map(|u| (u, cfg.webhook_timeout)),
                    queues,
                );
                tracing::info!(%addr, "admin API listening");
                let app = api::router(state);
                serve(listener, app, stop_rx, max, header_timeout).await;
            });
        })
        .map_err(AdminError::Thread)?;
    Ok(Some(AdminHandle {
        addr,
        stop: Some(stop_tx),
        thread: Some(thread),
    }))
}

/// A non-blocking listener on `addr` that no other process shares (no SO_REUSEPORT).
fn bind(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let domain = socket2::Domain::for_address(addr);
    let s = socket2::Socket::new(domain, socket2::Type::STREAM, Some(socket2::Protocol::TCP))?;
    s.set_reuse_address(true)?;
    s.bind(&addr.into())?;
    s.listen(128)?;
    s.set_nonblocking(true)?;
    Ok(s.into())
}

/// Serves `app` on `listener` until `stop`: at most `max` connections at once, each
/// closed if a request's header block takes longer than `header_timeout`. On stop,
/// requests in progress get [`STOP_GRACE`]; streams that never end (an `/v1/events`
/// subscriber) are cut when the runtime is dropped.
async fn serve(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    mut stop: tokio::sync::oneshot::Receiver<()>,
    max: usize,
    header_timeout: std::time::Duration,
) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    let slots = Arc::new(tokio::sync::Semaphore::new(max));
    let mut refused = 0u64;
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "admin accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = &mut stop => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            refused += 1;
            // The first refusal, then one line per hundred: a flood does not flood the log.
            if refused % 100 == 1 {
                tracing::warn!(%peer, limit = max, refused, "admin connection refused: too many open");
            }
            continue;
        };
        let app = app
            .clone()
            .layer(axum::Extension(axum::extract::ConnectInfo(peer)));
        tokio::spawn(async move {
            let service = hyper_util::service::TowerToHyperService::new(app);
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .serve_connection(TokioIo::new(stream), service);
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "admin connection ended");
            }
            drop(slot);
        });
    }
    let all = u32::try_from(max).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(STOP_GRACE, slots.acquire_many(all)).await;
}
