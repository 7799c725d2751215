//! AUTH at this relay (RFC 4976 §5.1, §6.3, §9.1): challenges, credentials, Expires
//! bounds and the session URIs handed out in Use-Path.

use super::*;
use crate::relay::types::AuthRefusal;

impl Relay {
    /// An AUTH addressed to this relay from connection `origin`: who it is, then the
    /// session it gets.
    pub(super) fn handle_auth(&mut self, now: Instant, origin: Origin, head: &Head<'_>) {
        let Origin::Conn(c) = origin else {
            return;
        };
        if let Some((user, auth_info)) = self.authenticate(now, c, head) {
            self.grant_session(now, c, head, &user, auth_info);
        }
    }

    /// Who sent the AUTH: `loopback` in protected mode, else the user whose digest
    /// credentials verify. Anything else is answered here (401 with a challenge, 400, 403)
    /// and gives `None`.
    fn authenticate(
        &mut self,
        now: Instant,
        c: ConnId,
        head: &Head<'_>,
    ) -> Option<(String, Option<String>)> {
        let conn = self.conn(c.slot, c.generation)?;
        let loopback = conn.kind.is_loopback();
        let peer = conn.kind.peer().map(tracing::field::display);
        let auth_info: Option<String>;
        let user: String;
        if self.protected {
            if !loopback {
                bump(&self.counters.auth_failed, 1);
                tracing::info!(
                    peer,
                    slot = c.slot,
                    "AUTH refused: protected mode admits loopback clients only"
                );
                self.auth_respond(head, c, 403, "relay is in protected mode", &[]);
                self.auth_refused(c, None, 403, AuthRefusal::ProtectedMode);
                self.count_auth_failure(c);
                return None;
            }
            user = "loopback".into();
            auth_info = None;
        } else {
            let creds = match head.authorization() {
                None => {
                    let ch = self.auth.challenge(now, &mut self.rng, false);
                    self.auth_challenge(head, c, &ch);
                    return None;
                }
                Some(Err(_)) => {
                    bump(&self.counters.auth_failed, 1);
                    tracing::info!(peer, slot = c.slot, "AUTH failed: bad Authorization");
                    self.auth_respond(head, c, 400, "bad Authorization", &[]);
                    self.auth_refused(c, None, 400, AuthRefusal::BadAuthorization);
                    self.count_auth_failure(c);
                    return None;
                }
                Some(Ok(cr)) => cr,
            };
            let last = head.to_path().last();
            match self.auth.verify(now, &mut self.rng, &creds, last.as_str()) {
                AuthResult::Ok {
                    username,
                    authentication_info,
                } => {
                    user = username;
                    auth_info = Some(authentication_info);
                }
                AuthResult::Stale => {
                    let ch = self.auth.challenge(now, &mut self.rng, true);
                    self.auth_challenge(head, c, &ch);
                    return None;
                }
                AuthResult::Failed(why) => {
                    bump(&self.counters.auth_failed, 1);
                    tracing::info!(peer, slot = c.slot, user = creds.username, reason = ?why, "AUTH failed");
                    // Answer first: the Close that the last allowed failure queues
                    // drops whatever is written after it.
                    let last = self.conn(c.slot, c.generation).is_some_and(|x| {
                        x.auth_failures.saturating_add(1) >= self.cfg.max_auth_failures
                    });
                    let code = if last {
                        self.auth_respond(head, c, 403, "too many failed AUTH requests", &[]);
                        403
                    } else {
                        // Counted as failed, not also as challenged: the AUTH
                        // outcomes stay disjoint.
                        let ch = self.auth.challenge(now, &mut self.rng, false);
                        self.send_challenge(head, c, &ch);
                        401
                    };
                    if self.events_wanted() {
                        let user = Some(creds.username.to_string());
                        self.auth_refused(c, user, code, AuthRefusal::Credentials(why));
                    }
                    self.count_auth_failure(c);
                    return None;
                }
            }
        }
        Some((user, auth_info))
    }

    /// An authenticated AUTH: its Expires within bounds (else 423), then the session
    /// URI for this connection, new or renewed, in a 200 with Use-Path (RFC 4976 §6.3).
    fn grant_session(
        &mut self,
        now: Instant,
        c: ConnId,
        head: &Head<'_>,
        user: &str,
        auth_info: Option<String>,
    ) {
        let Some(conn) = self.conn(c.slot, c.generation) else {
            return;
        };
        let secure = !conn.kind.is_outbound()
            && conn.kind.transport().is_secure()
            && !self.cfg.tls_ports.is_empty();
        let peer = conn.kind.peer().map(tracing::field::display);
        let our_uri = head.to_path().first().as_str();
        // Expires bounds (§6.3): 423 with Min-Expires or Max-Expires.
        let (min, max) = (self.cfg.expires_min, self.cfg.expires_max);
        let bound = match head.expires() {
            Some(e) if e < min => Some(("Min-Expires", min)),
            Some(e) if e > max => Some(("Max-Expires", max)),
            _ => None,
        };
        if let Some((name, limit)) = bound {
            let v = limit.to_string();
            self.auth_respond(
                head,
                c,
                423,
                "Interval Out-of-Bounds",
                &[(name, v.as_bytes())],
            );
            return;
        }
        let expires = head.expires().unwrap_or(self.cfg.expires_default);
        let expires_at = now + Duration::from_secs(u64::from(expires));
        let existing = self.conn(c.slot, c.generation).and_then(|x| x.session);
        let key = match existing.filter(|k| self.sessions.contains_key(k)) {
            Some(k) => k,
            None => {
                let mut k = self.rng.random::<u64>();
                while k == 0 || self.sessions.contains_key(&k) {
                    k = self.rng.random::<u64>();
                }
                let sid = SessionKey {
                    core: self.cfg.core,
                    slot: c.slot,
                    key: k,
                }
                .encode();
                // A client that came over TLS is handed an msrps: URI with our TLS port.
                let (scheme, port) = if secure {
                    ("msrps", self.cfg.tls_ports[0])
                } else {
                    ("msrp", self.cfg.ports.first().copied().unwrap_or(MSRP_PORT))
                };
                let client = route::authority(head.from_path().first().as_str())
                    .map(|(h, p)| (h.to_string(), p))
                    .unwrap_or_default();
                let uri = format!(
                    "{scheme}://{}:{port}/{sid};tcp",
                    self.cfg.hosts.first().map_or("localhost", String::as_str),
                );
                self.sessions.insert(
                    k,
                    Session {
                        user: user.to_string(),
                        slot: c.slot,
                        generation: c.generation,
                        expires: expires_at,
                        uri,
                        client_authority: match client.1 {
                            Some(p) => format!("{}:{p}", client.0),
                            None => client.0.clone(),
                        },
                        client,
                    },
                );
                bump(&self.counters.sessions, 1);
                k
            }
        };
        let uri = match self.sessions.get_mut(&key) {
            Some(s) => {
                s.expires = expires_at;
                s.uri.clone()
            }
            None => return,
        };
        self.push_timer(expires_at, Timer::Session(key));
        if let Some(conn) = self.conn_mut(c.slot, c.generation) {
            conn.session = Some(key);
            conn.succeeded = true;
            conn.auth_failures = 0;
        }
        bump(&self.counters.auth_ok, 1);
        tracing::info!(peer, slot = c.slot, user = %user, uri = %uri, expires, "AUTH ok");
        if self.events_wanted() {
            let session = SessionKey {
                core: self.cfg.core,
                slot: c.slot,
                key,
            }
            .encode();
            let peer = self.conn(c.slot, c.generation).and_then(|x| x.kind.peer());
            self.emit(RelayEvent::Auth {
                core: self.cfg.core,
                peer,
                user: Some(user.to_string()),
                code: 200,
                reason: None,
                session: Some(session),
            });
        }
        let exp = expires.to_string();
        let mut hdrs: Vec<(&str, &[u8])> =
            vec![("Use-Path", uri.as_bytes()), ("Expires", exp.as_bytes())];
        if let Some(ai) = &auth_info {
            hdrs.push(("Authentication-Info", ai.as_bytes()));
        }
        let mut b = BytesMut::with_capacity(320);
        encode::response_for(&mut b, head, 200, Some("OK"), our_uri, &hdrs);
        self.write(c, b.freeze());
    }

    /// The event of a refused AUTH.
    fn auth_refused(&mut self, c: ConnId, user: Option<String>, code: u16, why: AuthRefusal) {
        if !self.events_wanted() {
            return;
        }
        let peer = self.conn(c.slot, c.generation).and_then(|x| x.kind.peer());
        self.emit(RelayEvent::Auth {
            core: self.cfg.core,
            peer,
            user,
            code,
            reason: Some(why),
            session: None,
        });
    }

    /// A 401 with `challenges` to an AUTH that gave no credentials or a stale nonce,
    /// counted in `auth_challenges` (a failed digest that is challenged again counts in
    /// `auth_failed` alone: [`Relay::send_challenge`]).
    pub(super) fn auth_challenge(&mut self, head: &Head<'_>, c: ConnId, challenges: &[String]) {
        bump(&self.counters.auth_challenges, 1);
        self.send_challenge(head, c, challenges);
    }

    /// A 401 with `challenges`, not counted.
    fn send_challenge(&mut self, head: &Head<'_>, c: ConnId, challenges: &[String]) {
        let hdrs: Vec<(&str, &[u8])> = challenges
            .iter()
            .map(|v| ("WWW-Authenticate", v.as_bytes()))
            .collect();
        self.auth_respond(head, c, 401, "Unauthorized", &hdrs);
    }

    pub(super) fn auth_respond(
        &mut self,
        head: &Head<'_>,
        c: ConnId,
        code: u16,
        comment: &str,
        hdrs: &[(&str, &[u8])],
    ) {
        let mut b = BytesMut::with_capacity(256);
        encode::response_for(
            &mut b,
            head,
            code,
            Some(comment),
            head.to_path().first().as_str(),
            hdrs,
        );
        self.write(c, b.freeze());
    }

    /// Counts a failed AUTH; at the limit the connection is closed. Returns `true` then.
    pub(super) fn count_auth_failure(&mut self, c: ConnId) -> bool {
        let max = self.cfg.max_auth_failures;
        let Some(conn) = self.conn_mut(c.slot, c.generation) else {
            return false;
        };
        conn.auth_failures += 1;
        if conn.auth_failures >= max {
            let peer = conn.kind.peer().map(tracing::field::display);
            tracing::info!(
                peer,
                slot = c.slot,
                "closing connection after {max} failed AUTH requests"
            );
            self.close(c.slot, c.generation, CloseReason::AuthFailures);
            return true;
        }
        false
    }
}
