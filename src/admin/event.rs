//! Events from the workers to the control thread: what they are ([`Event`]), the
//! bounded queue each worker pushes into ([`EventSink`], never waiting: a full queue
//! drops the event and counts it), and how they look as JSON (made on the control
//! thread, not on the worker).
//!
//! Adding an engine's events: a variant of [`EventBody`] and its arm in
//! [`Event::to_json`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::relay::RelayEvent;

/// Events each worker's queue holds at most; more are dropped and counted.
pub const QUEUE_CAPACITY: usize = 4096;

/// Every event type [`Event::kind`] gives (a `/v1/events?type=` prefix must match one).
pub const KINDS: &[&str] = &[
    "relay.auth",
    "relay.session.end",
    "nosip.packet",
    "sip.request.done",
];

/// One event: when it happened and what.
#[derive(Debug, Clone)]
pub struct Event {
    pub at: SystemTime,
    pub body: EventBody,
}

/// What happened, as the engine said it (no formatting on the worker).
#[derive(Debug, Clone)]
pub enum EventBody {
    Relay(RelayEvent),
    /// A packet or connection that was neither MSRP nor SIP ([`crate::nosip`]).
    Nosip(crate::nosip::NosipPacket),
    /// An outbound SIP request of the admin API ended (`POST /v1/sip/requests`).
    SipRequestDone(crate::server::sip::RequestDone),
}

impl Event {
    /// The event type: `relay.auth`, `relay.session.end`.
    pub fn kind(&self) -> &'static str {
        match &self.body {
            EventBody::Relay(RelayEvent::Auth { .. }) => "relay.auth",
            EventBody::Relay(RelayEvent::SessionEnd { .. }) => "relay.session.end",
            EventBody::Nosip(_) => "nosip.packet",
            EventBody::SipRequestDone(_) => "sip.request.done",
        }
    }

    /// The JSON object: `type`, `time` (RFC 3339, UTC), `timestamp` (Unix seconds with
    /// fractions) and the event's own fields.
    pub fn to_json(&self) -> Value {
        let since = self.at.duration_since(UNIX_EPOCH).unwrap_or_default();
        let mut v = json!({
            "type": self.kind(),
            "time": rfc3339(since.as_secs(), since.subsec_millis()),
            "timestamp": since.as_secs_f64(),
        });
        let fields = match &self.body {
            EventBody::Relay(RelayEvent::Auth {
                core,
                peer,
                user,
                code,
                reason,
                session,
            }) => json!({
                "result": if *code == 200 { "ok" } else { "failed" },
                "code": code,
                "user": user,
                "peer": peer.map(|p| p.to_string()),
                "core": core,
                "reason": reason.map(|r| r.name()),
                "session": session,
            }),
            EventBody::Relay(RelayEvent::SessionEnd {
                core,
                session,
                user,
                peer,
                reason,
            }) => json!({
                "session": session,
                "user": user,
                "peer": peer.map(|p| p.to_string()),
                "core": core,
                "reason": reason.name(),
            }),
            EventBody::Nosip(p) => {
                use base64::Engine as _;
                let (encoding, content) = match std::str::from_utf8(&p.content) {
                    Ok(t) => ("text", t.to_string()),
                    Err(_) => (
                        "base64",
                        base64::engine::general_purpose::STANDARD.encode(&p.content),
                    ),
                };
                json!({
                    "transport": p.transport,
                    "source": p.source.ip().to_string(),
                    "port": p.source.port(),
                    "length": p.len,
                    "truncated": p.len > p.content.len(),
                    "encoding": encoding,
                    "content": content,
                })
            }
            EventBody::SipRequestDone(d) => json!({
                "request_id": d.request_id,
                "method": d.method,
                "ruri": d.ruri,
                "status": d.status,
                "reason": d.reason,
                "transport": d.transport,
                "peer": d.peer.map(|p| p.to_string()),
            }),
        };
        if let (Value::Object(m), Value::Object(f)) = (&mut v, fields) {
            m.extend(f);
        }
        v
    }
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` for a Unix time.
pub fn rfc3339(secs: u64, millis: u32) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Counts shared by the workers' sinks and the control thread.
#[derive(Debug)]
pub struct EventStats {
    /// Whether anyone takes events now (a `/v1/events` subscriber or a webhook): when
    /// not, workers drop them without queueing.
    pub wanted: AtomicBool,
    /// Events dropped because a worker's queue was full, per worker.
    pub dropped: Vec<AtomicU64>,
    /// Events queued, per worker.
    pub queued: Vec<AtomicU64>,
}

/// A worker's end of its event queue.
#[derive(Debug)]
pub struct EventSink {
    core: usize,
    tx: async_channel::Sender<Event>,
    stats: Arc<EventStats>,
}

impl EventSink {
    /// Whether anyone takes events now.
    #[inline]
    pub fn wanted(&self) -> bool {
        self.stats.wanted.load(Ordering::Relaxed)
    }

    /// Queues an event; drops and counts it when the queue is full. Never waits.
    pub fn push(&self, e: Event) {
        match self.tx.try_send(e) {
            Ok(()) => {
                if let Some(c) = self.stats.queued.get(self.core) {
                    c.fetch_add(1, Ordering::Relaxed);
                }
            }
            Err(_) => {
                if let Some(c) = self.stats.dropped.get(self.core) {
                    c.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}

/// One bounded queue per worker: the sinks (`None` each when `enabled` is false), the
/// receiving ends for the control thread and the shared counts.
#[allow(clippy::type_complexity)]
pub fn queues(
    workers: usize,
    enabled: bool,
) -> (
    Vec<Option<EventSink>>,
    Vec<async_channel::Receiver<Event>>,
    Arc<EventStats>,
) {
    let stats = Arc::new(EventStats {
        wanted: AtomicBool::new(false),
        dropped: (0..workers).map(|_| AtomicU64::new(0)).collect(),
        queued: (0..workers).map(|_| AtomicU64::new(0)).collect(),
    });
    if !enabled {
        return ((0..workers).map(|_| None).collect(), Vec::new(), stats);
    }
    let mut sinks = Vec::with_capacity(workers);
    let mut rxs = Vec::with_capacity(workers);
    for core in 0..workers {
        let (tx, rx) = async_channel::bounded(QUEUE_CAPACITY);
        sinks.push(Some(EventSink {
            core,
            tx,
            stats: stats.clone(),
        }));
        rxs.push(rx);
    }
    (sinks, rxs, stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400, 5), "2000-02-29T00:00:00.005Z");
        assert_eq!(rfc3339(1_700_000_000, 123), "2023-11-14T22:13:20.123Z");
    }

    #[test]
    fn full_queue_drops_and_counts() {
        let (sinks, rxs, stats) = queues(1, true);
        let sink = sinks.into_iter().next().flatten().unwrap();
        let e = Event {
            at: SystemTime::now(),
            body: EventBody::Relay(RelayEvent::SessionEnd {
                core: 0,
                session: "s".into(),
                user: "u".into(),
                peer: None,
                reason: crate::relay::SessionEndReason::Expired,
            }),
        };
        for _ in 0..QUEUE_CAPACITY + 5 {
            sink.push(e.clone());
        }
        assert_eq!(stats.dropped[0].load(Ordering::Relaxed), 5);
        assert_eq!(rxs[0].len(), QUEUE_CAPACITY);
        let j = e.to_json();
        assert_eq!(j["type"], "relay.session.end");
        assert_eq!(j["reason"], "expired");
    }
}
