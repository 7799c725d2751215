//! What the control plane asks of a relay core and hears from it: the session and
//! connection lists, ending a session, and the events ([`RelayEvent`]) it gives out.
//! Plain data in and out, like the rest of the engine: the server carries the
//! questions and answers between the control thread and the worker.

use super::*;

/// Events kept at most while nobody drains them (the worker drains after every input,
/// so this only bounds a misuse).
const MAX_EVENTS: usize = 4096;

/// One session of a core, for `GET /v1/relay/sessions`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    /// The session id of its Use-Path URI ([`SessionKey`]).
    pub id: String,
    pub uri: String,
    pub user: String,
    pub core: u16,
    /// The connection that AUTHed it.
    pub slot: u32,
    pub peer: Option<core::net::SocketAddr>,
    /// Time left until it expires.
    pub expires_in: Duration,
    /// Frame bytes read from and passed on to its connection.
    pub bytes_in: u64,
    pub bytes_out: u64,
}

/// One connection of a core as the relay sees it, for `GET /v1/relay/connections`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnInfo {
    pub id: ConnId,
    /// Accepted from this address (`None`: opened by us to `next_hop`).
    pub peer: Option<core::net::SocketAddr>,
    pub next_hop: Option<String>,
    pub transport: Transport,
    /// Whether it made a successful request (out of probation, RFC 4976 §6.1).
    pub succeeded: bool,
    /// The session id it AUTHed, if any.
    pub session: Option<String>,
    /// Requests passed on over it that await their responses.
    pub transactions: usize,
    pub idle: Duration,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

impl Relay {
    /// Turns event output on or off (off by default: an engine nobody drains keeps none).
    pub fn set_events(&mut self, on: bool) {
        self.events_on = on;
        if !on {
            self.events.clear();
        }
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<RelayEvent> {
        self.events.pop_front()
    }

    /// Whether events are wanted (callers skip building one otherwise).
    pub(super) fn events_wanted(&self) -> bool {
        self.events_on && self.events.len() < MAX_EVENTS
    }

    pub(super) fn emit(&mut self, e: RelayEvent) {
        if self.events_wanted() {
            self.events.push_back(e);
        }
    }

    /// The session-end event of `session` (already removed from the table).
    pub(super) fn session_ended(
        &mut self,
        key: u64,
        session: &Session,
        peer: Option<core::net::SocketAddr>,
        reason: SessionEndReason,
    ) {
        if !self.events_wanted() {
            return;
        }
        let id = SessionKey {
            core: self.cfg.core,
            slot: session.slot,
            key,
        }
        .encode();
        self.emit(RelayEvent::SessionEnd {
            core: self.cfg.core,
            session: id,
            user: session.user.clone(),
            peer,
            reason,
        });
    }

    /// The sessions of this core in id order (slot, then key), at most `limit`, from
    /// the first after `after` (a `(slot, key)` of an earlier page) on: only the ones
    /// answered are built, so a page costs the core `limit` entries whatever its size.
    pub fn sessions(
        &self,
        now: Instant,
        after: Option<(u32, u64)>,
        limit: usize,
    ) -> Vec<SessionInfo> {
        // The `limit` smallest ids past the cursor: a max-heap of at most `limit`.
        let mut heap = std::collections::BinaryHeap::with_capacity(limit.min(4096) + 1);
        for (&key, s) in &self.sessions {
            let id = (s.slot, key);
            if after.is_some_and(|a| id <= a) {
                continue;
            }
            if heap.len() < limit {
                heap.push(id);
            } else if heap.peek().is_some_and(|&top| id < top) {
                heap.pop();
                heap.push(id);
            }
        }
        heap.into_sorted_vec()
            .into_iter()
            .filter_map(|(_, key)| self.sessions.get(&key).map(|s| (key, s)))
            .map(|(key, s)| {
                let conn = self.conn(s.slot, s.generation);
                SessionInfo {
                    id: SessionKey {
                        core: self.cfg.core,
                        slot: s.slot,
                        key,
                    }
                    .encode(),
                    uri: s.uri.clone(),
                    user: s.user.clone(),
                    core: self.cfg.core,
                    slot: s.slot,
                    peer: conn.and_then(|c| c.kind.peer()),
                    expires_in: s.expires.saturating_duration_since(now),
                    bytes_in: conn.map_or(0, |c| c.bytes_in),
                    bytes_out: conn.map_or(0, |c| c.bytes_out),
                }
            })
            .collect()
    }

    /// The connections of this core in slot order, at most `limit`, from the first
    /// slot after `after` on.
    pub fn connections(&self, now: Instant, after: Option<u32>, limit: usize) -> Vec<ConnInfo> {
        let from = after.map_or(0, |a| a as usize + 1);
        self.conns
            .iter()
            .enumerate()
            .skip(from)
            .filter_map(|(slot, c)| c.as_ref().map(|c| (slot as u32, c)))
            .take(limit)
            .map(|(slot, c)| ConnInfo {
                id: ConnId {
                    core: self.cfg.core,
                    slot,
                    generation: c.generation,
                },
                peer: c.kind.peer(),
                next_hop: match &c.kind {
                    ConnKind::Outbound { host, port, .. } => Some(format!("{host}:{port}")),
                    ConnKind::Inbound { .. } => None,
                },
                transport: c.kind.transport(),
                succeeded: c.succeeded,
                session: c
                    .session
                    .filter(|k| self.sessions.contains_key(k))
                    .map(|key| {
                        SessionKey {
                            core: self.cfg.core,
                            slot,
                            key,
                        }
                        .encode()
                    }),
                transactions: c.txns.len(),
                idle: now.saturating_duration_since(c.last_active),
                bytes_in: c.bytes_in,
                bytes_out: c.bytes_out,
            })
            .collect()
    }

    /// Ends the session with id `sid` (an operator's order): it is gone at once, its
    /// connection is closed ([`CloseReason::Admin`], after what is already queued on
    /// it), and when the server reports that connection closed
    /// ([`Relay::handle_closed`]) what was in flight over it fails as on any close:
    /// REPORTs to the senders. `false` when this core has no such session.
    pub fn end_session(&mut self, sid: &str) -> bool {
        let Some(k) = SessionKey::decode(sid) else {
            return false;
        };
        if k.core != self.cfg.core {
            return false;
        }
        let Some(s) = self.sessions.get(&k.key).filter(|s| s.slot == k.slot) else {
            return false;
        };
        let (slot, generation) = (s.slot, s.generation);
        let peer = self.conn(slot, generation).and_then(|c| c.kind.peer());
        tracing::info!(peer = peer.map(tracing::field::display), slot, uri = %s.uri, user = %s.user, "session ended by an operator");
        let Some(session) = self.sessions.remove(&k.key) else {
            return false;
        };
        drop_by(&self.counters.sessions, 1);
        self.session_ended(k.key, &session, peer, SessionEndReason::Admin);
        if let Some(c) = self.conn_mut(slot, generation) {
            if c.session == Some(k.key) {
                c.session = None;
            }
            self.close(slot, generation, CloseReason::Admin);
        }
        true
    }
}
