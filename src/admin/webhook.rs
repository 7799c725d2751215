//! `--events-webhook URL`: every event POSTed as JSON to an HTTP endpoint, from the
//! control thread. The client is hyper's (hyper-util's pooled client over tokio), the
//! HTTP stack axum already brings, so no second one comes in; `http://` only (a
//! collector beside the relay; TLS would bring a connector for an endpoint that is
//! usually local). Events wait in a bounded queue ([`QUEUE`]); each is tried up to
//! [`ATTEMPTS`] times with doubling backoff, each try bounded in time; 4xx other than
//! 408/429 is not tried again. A hook that failed every try of an event is down: its
//! events are dropped untried but for one probe per period. What cannot be queued or
//! delivered is dropped and counted, and the workers never know.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::StatusCode;
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::api::Rendered;

/// Events waiting for the hook at most.
pub const QUEUE: usize = 1024;
/// Tries per event while the hook is up.
pub const ATTEMPTS: u32 = 4;
/// Wait before the second try; doubled for each further one.
const BACKOFF: Duration = Duration::from_millis(100);
/// One POST (the answer's body included) taking longer counts as failed.
pub const TIMEOUT: Duration = Duration::from_secs(5);
/// While the hook is down, one event in this period is tried (once): the probe. The
/// period doubles after each failed probe, up to [`PROBE_MAX`].
const PROBE_FIRST: Duration = Duration::from_secs(1);
const PROBE_MAX: Duration = Duration::from_secs(30);
/// The most of an answer's body read (and thrown away, so that the connection can
/// carry the next POST); a longer one costs its connection.
const BODY_LIMIT: usize = 64 * 1024;

/// Delivery counts, for `/metrics`.
#[derive(Debug, Default)]
pub struct WebhookStats {
    pub delivered: AtomicU64,
    /// Events given up on: queue full, every try failed, refused (4xx), or dropped
    /// untried while the hook is down.
    pub dropped: AtomicU64,
    /// Tries that failed (connection refused, timeout, a status other than 2xx).
    pub failed_attempts: AtomicU64,
}

/// The running hook.
pub struct Webhook {
    tx: mpsc::Sender<Arc<Rendered>>,
    pub stats: Arc<WebhookStats>,
}

impl Webhook {
    /// Starts the delivery task (on the current tokio runtime); each POST may take
    /// `timeout`.
    pub fn start(uri: hyper::Uri, timeout: Duration) -> Webhook {
        let (tx, rx) = mpsc::channel(QUEUE);
        let stats = Arc::new(WebhookStats::default());
        tokio::spawn(deliver(uri, timeout, rx, stats.clone()));
        Webhook { tx, stats }
    }

    /// Queues an event for the hook, or drops and counts it when the queue is full.
    pub fn offer(&self, e: Arc<Rendered>) {
        if self.tx.try_send(e).is_err() {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// What one POST came to.
#[derive(Debug, PartialEq, Eq)]
enum Tried {
    Delivered,
    /// Worth another try: no connection, no answer in time, 5xx, 408, 429.
    Failed,
    /// The hook refused this event (any other status): another try would get the same.
    Refused,
}

/// The answer to a POST, read whole: 2xx is delivered; 408 (RFC 9110 §15.5.9), 429
/// (RFC 6585 §4) and 5xx are passing troubles; the rest refuse the event itself.
fn judge(status: StatusCode) -> Tried {
    if status.is_success() {
        Tried::Delivered
    } else if status.is_server_error()
        || status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
    {
        Tried::Failed
    } else {
        Tried::Refused
    }
}

/// POSTs `e` once, within `timeout` for the answer and its body.
async fn post(
    client: &Client<HttpConnector, Full<Bytes>>,
    uri: &hyper::Uri,
    timeout: Duration,
    e: &Rendered,
) -> Tried {
    let req = hyper::Request::post(uri.clone())
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header("X-Msrpd-Event", e.kind)
        .body(Full::new(Bytes::from(e.json.clone())));
    let Ok(req) = req else {
        return Tried::Refused;
    };
    let exchange = async {
        let resp = client.request(req).await.map_err(|e| e.to_string())?;
        let status = resp.status();
        // Read the body (bounded) so the pooled connection can be used again.
        Limited::new(resp.into_body(), BODY_LIMIT)
            .collect()
            .await
            .map_err(|e| e.to_string())?;
        Ok::<_, String>(status)
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(Ok(status)) => {
            let t = judge(status);
            if t != Tried::Delivered {
                tracing::debug!(%status, "webhook did not take an event");
            }
            t
        }
        Ok(Err(err)) => {
            tracing::debug!(error = %err, "webhook not reached");
            Tried::Failed
        }
        Err(_) => {
            tracing::debug!(?timeout, "webhook timed out");
            Tried::Failed
        }
    }
}

/// Up: each event is tried up to [`ATTEMPTS`] times with backoff. An event whose every
/// try failed puts the hook down: from then on events are dropped untried, except one
/// per probe period, tried once; the first that is delivered puts it up again. So a
/// blackholed hook costs one timeout per probe period, not four per event.
async fn deliver(
    uri: hyper::Uri,
    timeout: Duration,
    mut rx: mpsc::Receiver<Arc<Rendered>>,
    stats: Arc<WebhookStats>,
) {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    // While down: when the next probe may go, and the period after it.
    let mut down: Option<(Instant, Duration)> = None;
    while let Some(e) = rx.recv().await {
        let mut outcome = Tried::Failed;
        let tries = match down {
            None => ATTEMPTS,
            Some((at, _)) if Instant::now() >= at => 1,
            Some(_) => 0,
        };
        for attempt in 0..tries {
            if attempt > 0 {
                tokio::time::sleep(BACKOFF * 2u32.pow(attempt - 1)).await;
            }
            outcome = post(&client, &uri, timeout, &e).await;
            if outcome != Tried::Delivered {
                stats.failed_attempts.fetch_add(1, Ordering::Relaxed);
            }
            if outcome != Tried::Failed {
                break;
            }
        }
        match outcome {
            Tried::Delivered => {
                stats.delivered.fetch_add(1, Ordering::Relaxed);
                if down.take().is_some() {
                    tracing::info!(%uri, "events webhook reachable again");
                }
            }
            Tried::Refused => {
                stats.dropped.fetch_add(1, Ordering::Relaxed);
                // It answered: it is up, and did not want this event.
                if down.take().is_some() {
                    tracing::info!(%uri, "events webhook reachable again");
                }
            }
            Tried::Failed => {
                stats.dropped.fetch_add(1, Ordering::Relaxed);
                down = match down {
                    None => {
                        tracing::warn!(%uri, "events webhook down: events are dropped (counted in msrpd_events_dropped_total), one tried every {}s", PROBE_FIRST.as_secs());
                        Some((Instant::now() + PROBE_FIRST, PROBE_FIRST))
                    }
                    // A failed probe: the next one later.
                    Some((_, every)) if tries == 1 => {
                        let every = (every * 2).min(PROBE_MAX);
                        Some((Instant::now() + every, every))
                    }
                    untried => untried,
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_passing_troubles_are_tried_again() {
        for (code, want) in [
            (200, Tried::Delivered),
            (204, Tried::Delivered),
            (408, Tried::Failed),
            (429, Tried::Failed),
            (500, Tried::Failed),
            (503, Tried::Failed),
            (400, Tried::Refused),
            (401, Tried::Refused),
            (404, Tried::Refused),
            (413, Tried::Refused),
            (301, Tried::Refused),
        ] {
            assert_eq!(judge(StatusCode::from_u16(code).unwrap()), want, "{code}");
        }
    }
}
