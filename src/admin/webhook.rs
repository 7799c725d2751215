//! `--events-webhook URL`: every event POSTed as JSON to an HTTP endpoint, from the
//! control thread. The client is hyper's (hyper-util's pooled client over tokio), the
//! HTTP stack axum already brings, so no second one comes in; `http://` only (a
//! collector beside the relay; TLS would bring a connector for an endpoint that is
//! usually local). Events wait in a bounded queue; each is tried up to
//! [`ATTEMPTS`] times with doubling backoff; what cannot be queued or delivered is
//! dropped and counted, and the workers never know.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::sync::mpsc;

use super::api::Rendered;

/// Events waiting for the hook at most.
pub const QUEUE: usize = 1024;
/// Tries per event.
pub const ATTEMPTS: u32 = 4;
/// Wait before the second try; doubled for each further one.
const BACKOFF: Duration = Duration::from_millis(100);
/// One POST taking longer counts as failed.
const TIMEOUT: Duration = Duration::from_secs(5);

/// Delivery counts, for `/metrics`.
#[derive(Debug, Default)]
pub struct WebhookStats {
    pub delivered: AtomicU64,
    /// Events given up on: queue full, or every try failed.
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
    /// Starts the delivery task (on the current tokio runtime).
    pub fn start(uri: hyper::Uri) -> Webhook {
        let (tx, rx) = mpsc::channel(QUEUE);
        let stats = Arc::new(WebhookStats::default());
        tokio::spawn(deliver(uri, rx, stats.clone()));
        Webhook { tx, stats }
    }

    /// Queues an event for the hook, or drops and counts it when the queue is full.
    pub fn offer(&self, e: Arc<Rendered>) {
        if self.tx.try_send(e).is_err() {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

async fn deliver(uri: hyper::Uri, mut rx: mpsc::Receiver<Arc<Rendered>>, stats: Arc<WebhookStats>) {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut down = false;
    while let Some(e) = rx.recv().await {
        let mut ok = false;
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(BACKOFF * 2u32.pow(attempt - 1)).await;
            }
            let req = hyper::Request::post(uri.clone())
                .header(hyper::header::CONTENT_TYPE, "application/json")
                .header("X-Msrpd-Event", e.kind)
                .body(Full::new(Bytes::from(e.json.clone())));
            let Ok(req) = req else { break };
            match tokio::time::timeout(TIMEOUT, client.request(req)).await {
                Ok(Ok(resp)) if resp.status().is_success() => {
                    ok = true;
                    break;
                }
                Ok(Ok(resp)) => {
                    stats.failed_attempts.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(status = %resp.status(), "webhook refused an event");
                }
                Ok(Err(err)) => {
                    stats.failed_attempts.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(error = %err, "webhook not reached");
                }
                Err(_) => {
                    stats.failed_attempts.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!("webhook timed out");
                }
            }
        }
        if ok {
            stats.delivered.fetch_add(1, Ordering::Relaxed);
            if down {
                tracing::info!(%uri, "events webhook reachable again");
                down = false;
            }
        } else {
            stats.dropped.fetch_add(1, Ordering::Relaxed);
            if !down {
                tracing::warn!(%uri, "events webhook down: events are dropped (counted in msrpd_events_dropped_total)");
                down = true;
            }
        }
    }
}
