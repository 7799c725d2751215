//! `POST /v1/sip/requests`: the operator sends one SIP request (OPTIONS or MESSAGE)
//! through msrpd's outbound path, as Kamailio's `tm.t_uac_start` RPC does. The body
//! is checked here, the request goes to a worker (round robin) and the answer is at
//! once `202 {"request_id"}`; the outcome comes later as a `sip.request.done` event
//! (the final status, or 408/503 made by msrpd when no response came, RFC 3261
//! §8.1.3.1).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::api::{State, error};
use crate::server::sip::ApiRequest;
use crate::sip::header::NameAddr;
use crate::sip::outbound;

/// The largest `body` (bytes): a request must fit the SIP parser's limits everywhere.
pub const MAX_SIP_BODY: usize = 32 * 1024;
/// The largest Request-URI, From, To, proxy or Content-Type value.
pub const MAX_FIELD: usize = 1024;

/// The methods the API sends (the user agent sends INVITE and the rest itself).
pub const METHODS: [&str; 2] = ["OPTIONS", "MESSAGE"];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    method: String,
    ruri: String,
    from: Option<String>,
    to: Option<String>,
    content_type: Option<String>,
    body: Option<String>,
    proxy: Option<String>,
}

const SHAPE: &str = r#"{"method": "OPTIONS"|"MESSAGE", "ruri": "sip:...", "from"?, "to"?, "content_type"?, "body"?, "proxy"?}"#;

/// Checks one text field: length and no control characters (a header value cannot
/// hold CR or LF).
fn field(name: &str, v: &str, max: usize) -> Result<(), String> {
    if v.len() > max {
        return Err(format!("{name} is longer than {max} bytes"));
    }
    if v.bytes().any(|c| c < 0x20 || c == 0x7f) {
        return Err(format!("{name} holds a control character (CR, LF...)"));
    }
    Ok(())
}

/// A From or To value: a SIP name-addr or addr-spec.
fn address(name: &str, v: &str) -> Result<(), String> {
    field(name, v, MAX_FIELD)?;
    match NameAddr::parse(v).ok().and_then(|n| n.parsed_uri()) {
        Some(u) if u.is_sip() => Ok(()),
        _ => Err(format!(
            "bad {name} {v:?}: use a SIP address such as <sip:alice@example.com>"
        )),
    }
}

fn check(b: &Body) -> Result<(), String> {
    if !METHODS.contains(&b.method.as_str()) {
        return Err(format!(
            "bad method {:?}: use OPTIONS or MESSAGE (upper case)",
            b.method
        ));
    }
    field("ruri", &b.ruri, MAX_FIELD)?;
    if b.ruri.contains('<') || b.ruri.contains(' ') {
        return Err(format!(
            "bad ruri {:?}: give the bare URI, no <> or spaces",
            b.ruri
        ));
    }
    outbound::target(&b.ruri).map_err(|f| format!("bad ruri {:?}: {}", b.ruri, f.reason()))?;
    if let Some(f) = &b.from {
        address("from", f)?;
    }
    if let Some(t) = &b.to {
        address("to", t)?;
    }
    if let Some(ct) = &b.content_type {
        field("content_type", ct, MAX_FIELD)?;
        let ok = ct.split_once('/').is_some_and(|(t, s)| {
            !t.trim().is_empty() && !s.trim().is_empty() && !ct.contains(',')
        });
        if !ok {
            return Err(format!(
                "bad content_type {ct:?}: use a media type such as text/plain"
            ));
        }
    }
    if let Some(body) = &b.body
        && body.len() > MAX_SIP_BODY
    {
        return Err(format!("body is longer than {MAX_SIP_BODY} bytes"));
    }
    if let Some(p) = &b.proxy {
        field("proxy", p, MAX_FIELD)?;
        outbound::check_uri(p).map_err(|e| format!("bad proxy {p:?}: {e}"))?;
    }
    Ok(())
}

/// The worker the next request goes to.
static NEXT_WORKER: AtomicUsize = AtomicUsize::new(0);

pub async fn post(
    axum::extract::State(s): axum::extract::State<Arc<State>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(r) => return error(r.status(), r.body_text()),
    };
    let b: Body = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("bad JSON body: {e}; expected {SHAPE}"),
            );
        }
    };
    if let Err(e) = check(&b) {
        return error(StatusCode::BAD_REQUEST, e);
    }
    if s.ops.stopping() {
        return error(StatusCode::SERVICE_UNAVAILABLE, "shutting down");
    }
    let workers = s.ops.workers().max(1);
    let core = NEXT_WORKER.fetch_add(1, Ordering::Relaxed) % workers;
    let request_id = format!("{:016x}", rand::random::<u64>());
    tracing::info!(%request_id, method = %b.method, ruri = %b.ruri, core, "SIP request from the admin API");
    let r = ApiRequest {
        request_id: request_id.clone(),
        method: b.method,
        ruri: b.ruri,
        from: b.from,
        to: b.to,
        content_type: b.content_type,
        body: b.body,
        proxy: b.proxy,
    };
    if !s.ops.sip_request(core, r) {
        return error(StatusCode::SERVICE_UNAVAILABLE, "worker gone");
    }
    (
        StatusCode::ACCEPTED,
        axum::Json(json!({ "request_id": request_id })),
    )
        .into_response()
}
