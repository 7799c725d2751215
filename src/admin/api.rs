//! The admin HTTP API (axum, on the control thread). Every answer is JSON except
//! `/metrics` (Prometheus text) and `/v1/events` (server-sent events); errors are
//! `{"error": "..."}` with their status. With a token configured every request,
//! unknown paths included, needs `Authorization: Bearer TOKEN` or gets 401.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Query as QueryArgs, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use futures_util::Stream;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::sync::mpsc;

use super::event::Event;
use super::webhook::Webhook;
use crate::server::{Ops, Query, ReloadOutcome};

/// How long a query waits for a worker's answer.
pub(crate) const ASK_TIMEOUT: Duration = Duration::from_secs(2);
/// Events an SSE subscriber may fall behind by. One more and it is disconnected (the
/// event it missed is counted, and it is told why in the log): a consumer that stopped
/// reading costs at most this much memory and is never waited for.
const SUBSCRIBER_CAPACITY: usize = 1024;

/// One `/v1/events` stream: the events of the types it asked for go into its queue.
struct Subscription {
    prefix: String,
    tx: mpsc::Sender<Arc<Rendered>>,
    peer: String,
}

/// An event as sent: its type and its JSON text, made once for every consumer.
#[derive(Debug)]
pub struct Rendered {
    pub kind: &'static str,
    pub json: String,
}

/// What the handlers share.
pub struct State {
    pub ops: Ops,
    token: Option<[u8; 32]>,
    /// The SSE subscribers (touched only on the control thread's one runtime thread).
    subs: std::sync::Mutex<Vec<Subscription>>,
    subscribers: AtomicUsize,
    /// Events SSE subscribers missed because they fell behind (each is disconnected at
    /// its first miss).
    pub sse_dropped: AtomicU64,
    pub webhook: Option<Arc<Webhook>>,
    pub started: SystemTime,
    /// Held by the `POST /v1/reload` being carried out.
    reloading: tokio::sync::Mutex<()>,
}

impl State {
    /// The state, with one task per worker queue moving its events to the subscribers
    /// and the webhook. Call on the control thread's runtime.
    pub fn new(
        ops: Ops,
        token: Option<String>,
        webhook: Option<(hyper::Uri, Duration)>,
        queues: Vec<async_channel::Receiver<Event>>,
    ) -> Arc<State> {
        let webhook = webhook.map(|(u, timeout)| Arc::new(Webhook::start(u, timeout)));
        let s = State {
            ops,
            token: token.map(|t| Sha256::digest(t.as_bytes()).into()),
            subs: std::sync::Mutex::new(Vec::new()),
            subscribers: AtomicUsize::new(0),
            sse_dropped: AtomicU64::new(0),
            webhook,
            started: SystemTime::now(),
            reloading: tokio::sync::Mutex::new(()),
        };
        s.update_wanted();
        let s = Arc::new(s);
        for rx in queues {
            let state = s.clone();
            let hook = s.webhook.clone();
            tokio::spawn(async move {
                while let Ok(e) = rx.recv().await {
                    let r = Arc::new(Rendered {
                        kind: e.kind(),
                        json: e.to_json().to_string(),
                    });
                    if let Some(h) = &hook {
                        h.offer(r.clone());
                    }
                    state.publish(&r);
                }
            });
        }
        s
    }

    /// Hands an event to every subscriber that asked for its type. A subscriber whose
    /// queue is full has stopped reading (or reads slower than events come): it misses
    /// this event, which is counted, and is disconnected, so that it knows.
    fn publish(&self, r: &Arc<Rendered>) {
        let mut subs = self
            .subs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        subs.retain(|sub| {
            if !r.kind.starts_with(sub.prefix.as_str()) {
                return !sub.tx.is_closed();
            }
            match sub.tx.try_send(r.clone()) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    self.sse_dropped.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        peer = %sub.peer,
                        queued = SUBSCRIBER_CAPACITY,
                        "event subscriber too slow: disconnected (it missed an event)"
                    );
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            }
        });
    }

    /// Tells the workers whether anyone takes events.
    fn update_wanted(&self) {
        let on = self.webhook.is_some() || self.subscribers.load(Ordering::SeqCst) > 0;
        self.ops.event_stats().wanted.store(on, Ordering::Relaxed);
    }

    /// Sends `make` to every worker and collects the answers. One deadline for all: a
    /// worker that has not answered [`ASK_TIMEOUT`] after the questions went out is left
    /// out (`None`), and said so, however many there are.
    pub async fn ask_all<T: Send + 'static>(
        &self,
        make: impl Fn(crate::server::Reply<T>) -> Query,
    ) -> Vec<(usize, Option<T>)> {
        let deadline = tokio::time::Instant::now() + ASK_TIMEOUT;
        let rxs: Vec<_> = (0..self.ops.workers())
            .map(|i| (i, self.ops.ask(i, &make)))
            .collect();
        collect_until(deadline, rxs).await
    }
}

/// The answers on `rxs` that come before `deadline`, in order.
pub(crate) async fn collect_until<T>(
    deadline: tokio::time::Instant,
    rxs: Vec<(usize, async_channel::Receiver<T>)>,
) -> Vec<(usize, Option<T>)> {
    let mut out = Vec::with_capacity(rxs.len());
    for (i, rx) in rxs {
        out.push((i, ask_until(deadline, i, rx).await));
    }
    out
}

/// The answer on `rx`, if it comes before `deadline` (else warned about and `None`).
async fn ask_until<T>(
    deadline: tokio::time::Instant,
    worker: usize,
    rx: async_channel::Receiver<T>,
) -> Option<T> {
    match tokio::time::timeout_at(deadline, rx.recv()).await {
        Ok(Ok(v)) => Some(v),
        _ => {
            tracing::warn!(worker, "worker did not answer the admin query");
            None
        }
    }
}

/// The router with every endpoint, the token check around all of them (the fallbacks
/// too) and the body limit.
pub fn router(state: Arc<State>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/v1/relay/connections", get(connections))
        .route("/v1/relay/sessions", get(sessions))
        .route("/v1/relay/sessions/{id}", delete(end_session))
        .route("/v1/events", get(events))
        .route("/v1/reload", post(reload))
        .route("/v1/sip/requests", post(super::sip_requests::post))
        .route(
            "/v1/ua/sessions",
            get(super::ua::sessions).post(super::ua::originate),
        )
        .route("/v1/ua/sessions/{id}", delete(super::ua::end))
        .route(
            "/v1/ua/sessions/{id}/messages",
            post(super::ua::send).layer(DefaultBodyLimit::max(super::ua::MAX_SEND_BODY)),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(super::MAX_BODY))
        .layer(middleware::from_fn_with_state(state.clone(), require_token))
        .with_state(state)
}

type St = axum::extract::State<Arc<State>>;

/// `{"error": msg}` with `status`.
pub fn error(status: StatusCode, msg: impl Into<String>) -> Response {
    (status, axum::Json(json!({ "error": msg.into() }))).into_response()
}

async fn require_token(axum::extract::State(s): St, req: Request, next: Next) -> Response {
    if let Some(want) = &s.token {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer_token)
            .map(|t| <[u8; 32]>::from(Sha256::digest(t.as_bytes())));
        // Hashes compared in constant time: neither the token nor its length leaks.
        let ok = given.is_some_and(|g| bool::from(g.ct_eq(want)));
        if !ok {
            let mut r = error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return r;
        }
    }
    next.run(req).await
}

/// The token of `Authorization: Bearer TOKEN` (RFC 6750 §2.1). The scheme is
/// case-insensitive (RFC 9110 §11.1): `bearer` and `BEARER` are `Bearer`.
fn bearer_token(v: &str) -> Option<&str> {
    let (scheme, token) = v.trim_start().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "no such endpoint")
}

async fn method_not_allowed() -> Response {
    error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed here")
}

async fn healthz() -> Response {
    axum::Json(json!({ "status": "ok" })).into_response()
}

async fn readyz(axum::extract::State(s): St) -> Response {
    let (plain, tls) = s.ops.listen_addrs();
    let running = s.ops.workers_running();
    let workers = s.ops.workers();
    if s.ops.stopping() {
        return error(StatusCode::SERVICE_UNAVAILABLE, "shutting down");
    }
    if running < workers {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{running} of {workers} workers running"),
        );
    }
    axum::Json(json!({
        "status": "ready",
        "workers": workers,
        "listen": plain.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "listen_tls": tls.iter().map(ToString::to_string).collect::<Vec<_>>(),
    }))
    .into_response()
}

async fn metrics(axum::extract::State(s): St) -> Response {
    let stats = s.ask_all(Query::Stats).await;
    match super::metrics::render(&s, stats) {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

fn unix(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

/// Entries a list page has when `?limit=` is not given.
pub const PAGE_DEFAULT: usize = 1000;
/// The largest `?limit=`.
pub const PAGE_MAX: usize = 10_000;

/// `?limit=N&after=CURSOR` of the list endpoints (as text: a bad value gets a 400 that
/// says what is valid, not serde's words).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PageArgs {
    limit: Option<String>,
    after: Option<String>,
}

/// The page size asked for, checked.
fn page_limit(v: Option<&str>) -> Result<usize, Response> {
    let Some(v) = v else {
        return Ok(PAGE_DEFAULT);
    };
    match v.parse::<usize>() {
        Ok(n) if (1..=PAGE_MAX).contains(&n) => Ok(n),
        _ => Err(error(
            StatusCode::BAD_REQUEST,
            format!(
                "bad limit {v:?}: use a whole number from 1 to {PAGE_MAX} (default {PAGE_DEFAULT})"
            ),
        )),
    }
}

/// The query string's `after` and checked `limit`, or the 400 naming what is valid.
fn page_args(
    args: Result<QueryArgs<PageArgs>, axum::extract::rejection::QueryRejection>,
) -> Result<(Option<String>, usize), Response> {
    let a = args.map(|QueryArgs(a)| a).map_err(|e| {
        error(
            StatusCode::BAD_REQUEST,
            format!(
                "{}; the parameters are limit (1 to {PAGE_MAX}, default {PAGE_DEFAULT}) and after (the \"next\" of the page before)",
                e.body_text()
            ),
        )
    })?;
    Ok((a.after, page_limit(a.limit.as_deref())?))
}

/// One entry of `GET /v1/relay/sessions`.
#[derive(Serialize)]
struct SessionOut {
    id: String,
    uri: String,
    user: String,
    peer: Option<String>,
    core: u16,
    slot: u32,
    expires_in: u64,
    expires_at: String,
    bytes_in: u64,
    bytes_out: u64,
}

#[derive(Serialize)]
struct SessionsPage {
    sessions: Vec<SessionOut>,
    /// The `after` of the next page; `null` on the last one.
    next: Option<String>,
    workers_missing: Vec<usize>,
}

/// `GET /v1/relay/sessions[?limit=N][&after=ID]`: sessions in id order (core, slot,
/// key), at most `limit`, from the first after session id `after` on. Each worker
/// builds at most `limit` entries, and those on cores before the cursor's none.
async fn sessions(
    axum::extract::State(s): St,
    args: Result<QueryArgs<PageArgs>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let (after, limit) = match page_args(args) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let after = match after.as_deref() {
        None => None,
        Some(a) => match crate::relay::session::SessionKey::decode(a) {
            Some(k) => Some(k),
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "bad after {a:?}: use a session id (28 lower-case hex digits), the \"next\" of the page before"
                    ),
                );
            }
        },
    };
    let first = after.map_or(0, |k| usize::from(k.core));
    let now = SystemTime::now();
    let deadline = tokio::time::Instant::now() + ASK_TIMEOUT;
    let rxs: Vec<_> = (first..s.ops.workers())
        .map(|core| {
            let cursor = after
                .filter(|k| usize::from(k.core) == core)
                .map(|k| (k.slot, k.key));
            let rx = s.ops.ask(core, |reply| Query::Sessions {
                after: cursor,
                limit,
                reply,
            });
            (core, rx)
        })
        .collect();
    let mut page = SessionsPage {
        sessions: Vec::new(),
        next: None,
        workers_missing: Vec::new(),
    };
    let mut more = false;
    for (core, answer) in collect_until(deadline, rxs).await {
        let Some(v) = answer else {
            page.workers_missing.push(core);
            continue;
        };
        // Cores answer in order, each in id order: the first `limit` are the page.
        more |= v.len() >= limit;
        for x in v {
            if page.sessions.len() == limit {
                more = true;
                break;
            }
            page.sessions.push(SessionOut {
                expires_at: super::event::rfc3339(unix(now + x.expires_in) as u64, 0),
                expires_in: x.expires_in.as_secs(),
                peer: x.peer.map(|p| p.to_string()),
                id: x.id,
                uri: x.uri,
                user: x.user,
                core: x.core,
                slot: x.slot,
                bytes_in: x.bytes_in,
                bytes_out: x.bytes_out,
            });
        }
    }
    if more {
        page.next = page.sessions.last().map(|x| x.id.clone());
    }
    axum::Json(page).into_response()
}

/// One entry of `GET /v1/relay/connections`.
#[derive(Serialize)]
struct ConnOut {
    /// `CORE:SLOT`, the cursor of the next page.
    id: String,
    core: u16,
    slot: u32,
    peer: Option<String>,
    next_hop: Option<String>,
    direction: &'static str,
    transport: &'static str,
    succeeded: bool,
    session: Option<String>,
    transactions: usize,
    idle_s: f64,
    bytes_in: u64,
    bytes_out: u64,
    queued_bytes: usize,
}

#[derive(Serialize)]
struct ConnectionsPage {
    connections: Vec<ConnOut>,
    /// The `after` of the next page; `null` on the last one.
    next: Option<String>,
    workers_missing: Vec<usize>,
}

/// `GET /v1/relay/connections[?limit=N][&after=CORE:SLOT]`: connections in (core,
/// slot) order, at most `limit`, from the first after `after` on.
async fn connections(
    axum::extract::State(s): St,
    args: Result<QueryArgs<PageArgs>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let (after, limit) = match page_args(args) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let after = match after.as_deref() {
        None => None,
        Some(a) => match a
            .split_once(':')
            .and_then(|(c, s)| Some((c.parse::<usize>().ok()?, s.parse::<u32>().ok()?)))
        {
            Some(c) => Some(c),
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "bad after {a:?}: use a connection id CORE:SLOT (such as 1:17), the \"next\" of the page before"
                    ),
                );
            }
        },
    };
    let first = after.map_or(0, |(core, _)| core);
    let deadline = tokio::time::Instant::now() + ASK_TIMEOUT;
    let rxs: Vec<_> = (first..s.ops.workers())
        .map(|core| {
            let cursor = after.filter(|&(c, _)| c == core).map(|(_, slot)| slot);
            let rx = s.ops.ask(core, |reply| Query::Connections {
                after: cursor,
                limit,
                reply,
            });
            (core, rx)
        })
        .collect();
    let mut page = ConnectionsPage {
        connections: Vec::new(),
        next: None,
        workers_missing: Vec::new(),
    };
    let mut more = false;
    for (core, answer) in collect_until(deadline, rxs).await {
        let Some(v) = answer else {
            page.workers_missing.push(core);
            continue;
        };
        more |= v.len() >= limit;
        for c in v {
            if page.connections.len() == limit {
                more = true;
                break;
            }
            let r = c.relay;
            page.connections.push(ConnOut {
                id: format!("{}:{}", r.id.core, r.id.slot),
                core: r.id.core,
                slot: r.id.slot,
                peer: r.peer.map(|p| p.to_string()),
                direction: if r.next_hop.is_some() {
                    "outbound"
                } else {
                    "inbound"
                },
                next_hop: r.next_hop,
                transport: r.transport.name(),
                succeeded: r.succeeded,
                session: r.session,
                transactions: r.transactions,
                idle_s: r.idle.as_secs_f64(),
                bytes_in: r.bytes_in,
                bytes_out: r.bytes_out,
                queued_bytes: c.queued,
            });
        }
    }
    if more {
        page.next = page.connections.last().map(|x| x.id.clone());
    }
    axum::Json(page).into_response()
}

async fn end_session(axum::extract::State(s): St, Path(id): Path<String>) -> Response {
    // The session id names its core: only that worker is asked.
    let Some(key) = crate::relay::session::SessionKey::decode(&id) else {
        return error(StatusCode::NOT_FOUND, format!("no session {id:?}"));
    };
    let core = usize::from(key.core);
    if core >= s.ops.workers() {
        return error(StatusCode::NOT_FOUND, format!("no session {id:?}"));
    }
    let rx = s.ops.ask(core, |r| Query::EndSession(id.clone(), r));
    match tokio::time::timeout(ASK_TIMEOUT, rx.recv()).await {
        Ok(Ok(true)) => axum::Json(json!({ "ended": id, "core": core })).into_response(),
        Ok(Ok(false)) => error(StatusCode::NOT_FOUND, format!("no session {id:?}")),
        _ => error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "worker {core} did not answer in {}s: the outcome is unknown (the session may still end); GET /v1/relay/sessions tells",
                ASK_TIMEOUT.as_secs()
            ),
        ),
    }
}

/// `POST /v1/reload` body, all optional: what to reload (default both).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReloadArgs {
    users: Option<bool>,
    tls: Option<bool>,
}

async fn reload(axum::extract::State(s): St, body: Result<Bytes, BytesRejection>) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(r) => return error(r.status(), r.body_text()),
    };
    let args: ReloadArgs = if body.iter().all(u8::is_ascii_whitespace) {
        ReloadArgs::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(a) => a,
            Err(e) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("bad JSON body: {e}; expected {{\"users\": bool, \"tls\": bool}}"),
                );
            }
        }
    };
    // One reload at a time from the API: a POST waits here (as a task, not a thread)
    // while another one runs; `Ops::reload` also keeps it apart from SIGHUP.
    let _one = s.reloading.lock().await;
    let ops = s.ops.clone();
    // Reading files and waiting for the workers blocks: off the runtime's thread.
    let r = tokio::task::spawn_blocking(move || {
        ops.reload(args.users.unwrap_or(true), args.tls.unwrap_or(true))
    })
    .await;
    let report = match r {
        Ok(Ok(report)) => report,
        Ok(Err(refused)) => return error(StatusCode::SERVICE_UNAVAILABLE, refused.to_string()),
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let parts = [("users", &report.users), ("tls", &report.tls)];
    let reloaded: Vec<&str> = parts
        .iter()
        .filter(|(_, o)| matches!(o, ReloadOutcome::Reloaded))
        .map(|(n, _)| *n)
        .collect();
    let mut status = StatusCode::OK;
    let mut errors = Vec::new();
    for (name, o) in parts {
        match o {
            ReloadOutcome::Failed(e) => {
                status = StatusCode::INTERNAL_SERVER_ERROR;
                errors.push(match name {
                    "users" => format!("users file not reloaded: {e}"),
                    _ => format!("TLS files not reloaded: {e}"),
                });
            }
            ReloadOutcome::Unconfirmed(w) => {
                if status == StatusCode::OK {
                    status = StatusCode::SERVICE_UNAVAILABLE;
                }
                errors.push(format!(
                    "{name}: sent, but workers {w:?} did not confirm in {}s; they take the new files when they get to them",
                    crate::server::RELOAD_CONFIRM.as_secs()
                ));
            }
            _ => {}
        }
    }
    let mut body = json!({
        "users": report.users.as_str(),
        "tls": report.tls.as_str(),
        "reloaded": reloaded,
    });
    if !errors.is_empty() {
        body["error"] = errors.join("; ").into();
    }
    (status, axum::Json(body)).into_response()
}

#[derive(Debug, Deserialize)]
struct EventsArgs {
    #[serde(rename = "type")]
    kind: Option<String>,
}

/// Counts an SSE subscriber while its stream lives.
struct Subscriber(Arc<State>);

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.0.subscribers.fetch_sub(1, Ordering::SeqCst);
        self.0.update_wanted();
    }
}

async fn events(
    axum::extract::State(s): St,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<std::net::SocketAddr>,
    args: Result<QueryArgs<EventsArgs>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let prefix = match args {
        Ok(QueryArgs(a)) => a.kind.unwrap_or_default(),
        Err(e) => return error(StatusCode::BAD_REQUEST, e.body_text()),
    };
    // A typo would otherwise be a stream that never carries anything.
    if !super::event::KINDS.iter().any(|k| k.starts_with(&prefix)) {
        return error(
            StatusCode::BAD_REQUEST,
            format!(
                "no event type starts with {prefix:?}; the types are {}",
                super::event::KINDS.join(", ")
            ),
        );
    }
    let (tx, rx) = mpsc::channel(SUBSCRIBER_CAPACITY);
    let peer = peer.to_string();
    tracing::info!(%peer, types = %prefix, "event subscriber connected");
    s.subs
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push(Subscription { prefix, tx, peer });
    s.subscribers.fetch_add(1, Ordering::SeqCst);
    s.update_wanted();
    let guard = Subscriber(s.clone());
    let mut r = Sse::new(event_stream(rx, guard))
        .keep_alive(KeepAlive::default())
        .into_response();
    // A stream that ends (a subscriber too slow) ends its connection too.
    r.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    r
}

fn event_stream(
    rx: mpsc::Receiver<Arc<Rendered>>,
    guard: Subscriber,
) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    // A comment first: the headers go out now, so the subscriber knows it is on.
    let hello =
        futures_util::stream::once(async { Ok(SseEvent::default().comment("msrpd events")) });
    // Ends when the subscription is dropped (too slow, or the API stops).
    let rest = futures_util::stream::unfold((rx, guard), |(mut rx, guard)| async move {
        let r = rx.recv().await?;
        let ev = SseEvent::default().event(r.kind).data(r.json.as_str());
        Some((Ok(ev), (rx, guard)))
    });
    futures_util::StreamExt::chain(hello, rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Workers that never answer cost one deadline together, not one each in turn.
    #[test]
    fn silent_workers_share_one_deadline() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let mut keep = Vec::new();
        let mut rxs = Vec::new();
        for i in 0..6 {
            let (tx, rx) = async_channel::bounded::<u32>(1);
            if i == 2 {
                tx.try_send(7).unwrap();
            }
            keep.push(tx);
            rxs.push((i, rx));
        }
        let t = std::time::Instant::now();
        let wait = Duration::from_millis(300);
        let got = rt.block_on(collect_until(tokio::time::Instant::now() + wait, rxs));
        let took = t.elapsed();
        assert!(took >= wait, "{took:?}");
        assert!(
            took < wait * 2,
            "each silent worker waited for in turn: {took:?}"
        );
        let answered: Vec<_> = got.iter().filter_map(|(i, v)| v.map(|v| (*i, v))).collect();
        assert_eq!(answered, vec![(2, 7)]);
        assert_eq!(got.len(), 6);
        drop(keep);
    }
}
