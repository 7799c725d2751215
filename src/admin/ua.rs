//! The user agent's endpoints (as OpenSIPS's `msrp_ua` MI commands): list sessions,
//! send a message in one, end one. A session id names its core, so only that worker
//! is asked; what becomes of a sent message comes as `ua.report.received` events.
//!
//! - `GET /v1/ua/sessions`: every session (id, from, to, state, peer path, messages
//!   and bytes each way, started).
//! - `POST /v1/ua/sessions/{id}/messages` `{"content_type", "body" | "body_base64",
//!   "success_report": bool, "failure_report": "yes"|"no"|"partial"}`: `202
//!   {"message_id"}`.
//! - `POST /v1/ua/sessions` `{"from"?, "to", "ruri", "accept_types"?, "proxy"?}`:
//!   `202 {"session_id"}`; the INVITE goes out from the next worker in turn, and its
//!   outcome comes as `ua.session.new` or `ua.session.failed`.
//! - `DELETE /v1/ua/sessions/{id}`: the session ends (CANCEL while it is calling).

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::Path;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::api::{ASK_TIMEOUT, State, collect_until, error};
use super::event::rfc3339;
use crate::codec::{FailureReport, SuccessReport};
use crate::server::{Query, UaSend};
use crate::ua::engine::{Originate, SessionKey, UaError};

type St = axum::extract::State<Arc<State>>;

/// The largest request body of `POST .../messages`: a 16 MiB message in base64, with
/// room for the JSON around it.
pub const MAX_SEND_BODY: usize = 24 << 20;

#[derive(Serialize)]
struct SessionOut {
    id: String,
    core: u16,
    from: String,
    to: String,
    state: &'static str,
    local_path: String,
    peer_path: Vec<String>,
    messages_in: u64,
    messages_out: u64,
    bytes_in: u64,
    bytes_out: u64,
    started: String,
}

/// `GET /v1/ua/sessions`.
pub async fn sessions(axum::extract::State(s): St) -> Response {
    let deadline = tokio::time::Instant::now() + ASK_TIMEOUT;
    let rxs: Vec<_> = (0..s.ops.workers())
        .map(|core| (core, s.ops.ask(core, Query::UaSessions)))
        .collect();
    let (now_i, now_w) = (Instant::now(), SystemTime::now());
    let mut out = Vec::new();
    let mut missing = Vec::new();
    for (core, answer) in collect_until(deadline, rxs).await {
        let Some(v) = answer else {
            missing.push(core);
            continue;
        };
        for x in v {
            let started = now_w - now_i.saturating_duration_since(x.started);
            let since = started.duration_since(UNIX_EPOCH).unwrap_or_default();
            out.push(SessionOut {
                id: x.id,
                core: core as u16,
                from: x.from,
                to: x.to,
                state: x.state,
                local_path: x.local_path,
                peer_path: x.peer_path,
                messages_in: x.msgs_in,
                messages_out: x.msgs_out,
                bytes_in: x.bytes_in,
                bytes_out: x.bytes_out,
                started: rfc3339(since.as_secs(), since.subsec_millis()),
            });
        }
    }
    axum::Json(json!({ "sessions": out, "workers_missing": missing })).into_response()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OriginateBody {
    from: Option<String>,
    to: String,
    ruri: String,
    #[serde(default)]
    accept_types: Vec<String>,
    proxy: Option<String>,
}

const ORIGINATE_SHAPE: &str = r#"{"to": "sip:bob@example.com", "ruri": "sip:bob@example.com", "from"?: "sip:alice@example.com", "accept_types"?: ["text/plain"], "proxy"?: "sip:proxy.example.com"}"#;

/// `POST /v1/ua/sessions`: the workers take new sessions in turn.
pub async fn originate(
    axum::extract::State(s): St,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let raw = match body {
        Ok(b) => b,
        Err(r) => return error(r.status(), r.body_text()),
    };
    let b: OriginateBody = match serde_json::from_slice(&raw) {
        Ok(b) => b,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("bad JSON body: {e}; expected {ORIGINATE_SHAPE}"),
            );
        }
    };
    let core = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % s.ops.workers().max(1);
    let o = Originate {
        from: b.from,
        to: b.to,
        ruri: b.ruri,
        accept_types: b.accept_types,
        proxy: b.proxy,
    };
    let rx = s.ops.ask(core, |r| Query::UaOriginate(Box::new(o), r));
    match tokio::time::timeout(ASK_TIMEOUT, rx.recv()).await {
        Ok(Ok(Ok(id))) => (
            StatusCode::ACCEPTED,
            axum::Json(json!({ "session_id": id })),
        )
            .into_response(),
        Ok(Ok(Err(e))) if e.starts_with("at the limit") => {
            error(StatusCode::SERVICE_UNAVAILABLE, e)
        }
        Ok(Ok(Err(e))) => error(StatusCode::BAD_REQUEST, e),
        _ => no_answer(core),
    }
}

/// The core of session `id`, or the 404.
fn core_of(s: &State, id: &str) -> Result<usize, Response> {
    match SessionKey::decode(id) {
        Some(k) if usize::from(k.core) < s.ops.workers() => Ok(usize::from(k.core)),
        _ => Err(error(StatusCode::NOT_FOUND, format!("no session {id:?}"))),
    }
}

fn no_answer(core: usize) -> Response {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        format!(
            "worker {core} did not answer in {}s: the outcome is unknown; GET /v1/ua/sessions tells",
            ASK_TIMEOUT.as_secs()
        ),
    )
}

/// `DELETE /v1/ua/sessions/{id}`.
pub async fn end(axum::extract::State(s): St, Path(id): Path<String>) -> Response {
    let core = match core_of(&s, &id) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let rx = s.ops.ask(core, |r| Query::UaEnd(id.clone(), r));
    match tokio::time::timeout(ASK_TIMEOUT, rx.recv()).await {
        Ok(Ok(true)) => axum::Json(json!({ "ended": id })).into_response(),
        Ok(Ok(false)) => error(StatusCode::NOT_FOUND, format!("no session {id:?}")),
        _ => no_answer(core),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SendBody {
    content_type: String,
    body: Option<String>,
    body_base64: Option<String>,
    #[serde(default)]
    success_report: bool,
    failure_report: Option<String>,
}

const SHAPE: &str = r#"{"content_type": "text/plain", "body": "..." | "body_base64": "...", "success_report"?: bool, "failure_report"?: "yes"|"no"|"partial"}"#;

/// `POST /v1/ua/sessions/{id}/messages`.
pub async fn send(
    axum::extract::State(s): St,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let core = match core_of(&s, &id) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let raw = match body {
        Ok(b) => b,
        Err(r) => return error(r.status(), r.body_text()),
    };
    let b: SendBody = match serde_json::from_slice(&raw) {
        Ok(b) => b,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("bad JSON body: {e}; expected {SHAPE}"),
            );
        }
    };
    let ct = b.content_type.trim();
    let valid_ct = ct.split_once('/').is_some_and(|(t, st)| {
        !t.is_empty() && !st.is_empty() && !ct.contains('*') && !ct.contains(',')
    }) && !ct.bytes().any(|c| c < 0x20 || c == 0x7f);
    if !valid_ct || ct.len() > 256 {
        return error(
            StatusCode::BAD_REQUEST,
            format!("bad content_type {ct:?}: use a media type such as text/plain"),
        );
    }
    let payload = match (b.body, b.body_base64) {
        (Some(t), None) => Bytes::from(t),
        (None, Some(b64)) => {
            use base64::Engine as _;
            match base64::engine::general_purpose::STANDARD.decode(b64.as_bytes()) {
                Ok(v) => Bytes::from(v),
                Err(e) => {
                    return error(StatusCode::BAD_REQUEST, format!("bad body_base64: {e}"));
                }
            }
        }
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "give exactly one of body (text) and body_base64",
            );
        }
    };
    let failure_report = match b.failure_report.as_deref() {
        None | Some("yes") => FailureReport::Yes,
        Some("no") => FailureReport::No,
        Some("partial") => FailureReport::Partial,
        Some(v) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("bad failure_report {v:?}: use yes, no or partial"),
            );
        }
    };
    let m = UaSend {
        session: id.clone(),
        content_type: ct.to_string(),
        body: payload,
        success_report: if b.success_report {
            SuccessReport::Yes
        } else {
            SuccessReport::No
        },
        failure_report,
    };
    let rx = s.ops.ask(core, |r| Query::UaSend(Box::new(m), r));
    match tokio::time::timeout(ASK_TIMEOUT, rx.recv()).await {
        Ok(Ok(Ok(message_id))) => (
            StatusCode::ACCEPTED,
            axum::Json(json!({ "message_id": message_id })),
        )
            .into_response(),
        Ok(Ok(Err(e))) => {
            let status = match e {
                UaError::NoSession => StatusCode::NOT_FOUND,
                UaError::NotConnected => StatusCode::CONFLICT,
                UaError::NotAccepted => StatusCode::UNSUPPORTED_MEDIA_TYPE,
                UaError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
                UaError::Busy => StatusCode::SERVICE_UNAVAILABLE,
            };
            error(status, e.to_string())
        }
        _ => no_answer(core),
    }
}
