//! SIP on the MSRP ports: how a connection's first bytes pick its protocol, and the
//! per-core SIP state (one [`Transactions`] table, the [`Policy`] for requests nobody
//! owns). The worker feeds it: TCP/TLS messages framed with
//! [`Message::parse_stream`] (RFC 3261 §18.3, Content-Length framing; a CRLFCRLF ping
//! gets its CRLF pong, RFC 5626 §4.4.1), UDP datagrams whole (§18.1.1). Responses go
//! where §18.2.2 and RFC 3581 (`rport`) say, which the table decides.
//!
//! Packets that are neither SIP nor MSRP go to the nosip handler ([`crate::nosip`]).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::conn::ConnId;
use crate::sip::auth::RealmCredentials;
use crate::sip::core::{Policy, answer};
use crate::sip::outbound::{self, Hop, OutEvent, Outbound, ReqId};
use crate::sip::txn::{Config, Event, Peer, Timer, Transactions, Transport};
use crate::sip::{Limits, Message, Method, Writer, ids};
use crate::ua::engine::{Ua, UaEvent, UaSip};

/// At most this many bytes decide what a new connection speaks: a SIP request line
/// longer than this (method, Request-URI, version) is not taken for SIP.
pub const SNIFF_MAX: usize = 1024;

/// What a connection's (or datagram's) first bytes say it speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sniff {
    /// `MSRP ` (RFC 4975 §7.1).
    Msrp,
    /// A SIP request line (`METHOD SP Request-URI SP SIP/...`), a status line
    /// (`SIP/2.0 `) or a CRLF keepalive (RFC 5626 §4.4.1).
    Sip,
    /// `GET `: the seam of the HTTP/WebSocket upgrade (not served yet: closed).
    Http,
    /// Anything else: the nosip handler.
    Other,
    /// Too few bytes to tell.
    NeedMore,
}

fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

/// Tells MSRP, SIP, HTTP and anything else apart from the first bytes of a stream or a
/// whole datagram; decides within [`SNIFF_MAX`] bytes.
pub fn sniff(b: &[u8]) -> Sniff {
    let prefixes: [(&[u8], Sniff); 4] = [
        (b"MSRP ", Sniff::Msrp),
        (b"SIP/2.0 ", Sniff::Sip),
        (b"GET ", Sniff::Http),
        (b"\r\n", Sniff::Sip),
    ];
    for (p, s) in prefixes {
        let n = p.len().min(b.len());
        if b[..n] == p[..n] {
            // A prefix of `p`: more bytes decide (`GE` may still be `GET `).
            return if n == p.len() { s } else { Sniff::NeedMore };
        }
    }
    // METHOD SP
    let m = b.iter().take_while(|&&c| is_token(c)).count();
    if m == b.len() {
        return if m < 32 {
            Sniff::NeedMore
        } else {
            Sniff::Other
        };
    }
    if m == 0 || b[m] != b' ' {
        return Sniff::Other;
    }
    // Request-URI SP SIP/
    let line_end = b.iter().position(|&c| c == b'\r' || c == b'\n');
    let line = &b[..line_end.unwrap_or(b.len()).min(SNIFF_MAX)];
    if let Some(sp) = line.iter().rposition(|&c| c == b' ')
        && sp > m
        && line[sp + 1..].len() >= 4
    {
        return if line[sp + 1..sp + 5].eq_ignore_ascii_case(b"SIP/") {
            Sniff::Sip
        } else {
            Sniff::Other
        };
    }
    if line_end.is_none() && b.len() < SNIFF_MAX {
        Sniff::NeedMore
    } else {
        Sniff::Other
    }
}

/// SIP settings every core shares (`--sip-t1-ms` and friends, the outbound proxy and
/// the digest credentials).
#[derive(Debug, Clone)]
pub struct SipSettings {
    /// RFC 3261 timers (§17.1.1.1): T1, T2, T4.
    pub t1: Duration,
    pub t2: Duration,
    pub t4: Duration,
    /// `--sip-outbound-proxy`.
    pub proxy: Option<String>,
    /// `--sip-credentials`.
    pub credentials: Arc<RealmCredentials>,
    /// `host:port` of our Vias over UDP and TCP, and over TLS.
    pub sent_by: String,
    pub sent_by_tls: Option<String>,
}

impl Default for SipSettings {
    fn default() -> SipSettings {
        let t = Config::default();
        SipSettings {
            t1: t.t1,
            t2: t.t2,
            t4: t.t4,
            proxy: None,
            credentials: Arc::new(RealmCredentials::default()),
            sent_by: "127.0.0.1:5060".into(),
            sent_by_tls: None,
        }
    }
}

/// A request the admin API asks for (`POST /v1/sip/requests`), checked there.
#[derive(Debug, Clone, Default)]
pub struct ApiRequest {
    pub request_id: String,
    /// `OPTIONS` or `MESSAGE`.
    pub method: String,
    pub ruri: String,
    pub from: Option<String>,
    pub to: Option<String>,
    pub content_type: Option<String>,
    pub body: Option<String>,
    /// An outbound proxy for this request instead of the configured one.
    pub proxy: Option<String>,
}

/// How an API request ended (the `sip.request.done` event).
#[derive(Debug, Clone)]
pub struct RequestDone {
    pub request_id: String,
    pub method: String,
    pub ruri: String,
    /// The final response's code, or 408/503 made here (RFC 3261 §8.1.3.1).
    pub status: u16,
    pub reason: String,
    /// `UDP`, `TCP`, `TLS` (`None`: it never got that far).
    pub transport: Option<&'static str>,
    pub peer: Option<SocketAddr>,
    /// Whether no response came (timeout, transport, resolution).
    pub local: bool,
}

/// The SIP state of one core.
pub struct SipCore {
    pub txns: Transactions,
    pub policy: Policy,
    pub limits: Limits,
    /// Requests we send (the admin API's today, the user agent's next).
    pub outbound: Outbound,
    core: u16,
    rng: rand::rngs::ThreadRng,
    /// The admin API's requests in progress.
    api: HashMap<ReqId, ApiRequest>,
    done: VecDeque<RequestDone>,
    /// Responses for other cores' requests, and requests in other cores' dialogs:
    /// (core, from, message).
    handover: VecDeque<(u16, Peer, Message)>,
    /// The MSRP user agent: the transaction user of the INVITEs its rules take and of
    /// requests in its dialogs (and the engine of its sessions' MSRP frames).
    pub ua: Ua,
    /// Worker cores (the bound on a core named in a tag).
    cores: usize,
    /// Requests the user agent sent (BYE), whose outcome is only logged.
    ua_requests: std::collections::HashSet<ReqId>,
    /// The user agent's INVITEs: request to session, and back.
    ua_invites: HashMap<ReqId, String>,
    ua_invite_of: HashMap<String, ReqId>,
}

impl SipCore {
    pub fn new(
        core: u16,
        reject: u16,
        own_sent_by: Vec<String>,
        settings: &SipSettings,
        ua: crate::ua::engine::Config,
        cores: usize,
    ) -> SipCore {
        let limits = Limits::default();
        let cfg = Config {
            core,
            limits,
            t1: settings.t1,
            t2: settings.t2,
            t4: settings.t4,
            ..Config::default()
        };
        let policy = Policy {
            unowned: (reject, None),
            own_sent_by,
            server: Some(concat!("msrpd/", env!("CARGO_PKG_VERSION")).into()),
            ..Policy::default()
        };
        let ocfg = outbound::Config {
            core,
            proxy: settings.proxy.clone(),
            credentials: settings.credentials.clone(),
            sent_by: settings.sent_by.clone(),
            sent_by_tls: settings.sent_by_tls.clone(),
            ..outbound::Config::default()
        };
        SipCore {
            txns: Transactions::new(cfg),
            policy,
            limits,
            outbound: Outbound::new(ocfg, Box::new(rand::rng())),
            core,
            rng: rand::rng(),
            api: HashMap::new(),
            done: VecDeque::new(),
            handover: VecDeque::new(),
            ua: Ua::new(ua, Box::new(rand::rng())),
            cores,
            ua_requests: Default::default(),
            ua_invites: HashMap::new(),
            ua_invite_of: HashMap::new(),
        }
    }

    /// Whether `m` is a request inside a dialog another core owns (its To tag names
    /// that core, `sip::ids`): then it goes there (ARCHITECTURE.md: the kernel's
    /// SO_REUSEPORT hash may deliver it anywhere), and `true`.
    fn handed_over(&mut self, from: Peer, m: &Message) -> bool {
        let owner = m
            .is_request()
            .then(|| m.to_tag().and_then(ids::tag_core))
            .flatten();
        match owner {
            Some(c) if c != self.core && usize::from(c) < self.cores => {
                self.handover.push_back((c, from, m.clone()));
                true
            }
            _ => false,
        }
    }

    /// A datagram from `from` (already sniffed as SIP).
    pub fn datagram(&mut self, now: Instant, from: Peer, data: Bytes) {
        match Message::parse_datagram(data, &self.limits) {
            Ok(m) if self.handed_over(from, &m) => {}
            Ok(m) => self.txns.handle_message(now, from, m),
            // Counted by the table as every unparsable datagram is.
            Err(_) => self.txns.handle_datagram(now, from, Bytes::new()),
        }
        self.answer(now);
    }

    /// A message framed off a stream.
    pub fn message(&mut self, now: Instant, from: Peer, m: Message) {
        if !self.handed_over(from, &m) {
            self.txns.handle_message(now, from, m);
        }
        self.answer(now);
    }

    pub fn timeout(&mut self, now: Instant) {
        self.txns.handle_timeout(now);
        self.outbound.handle_timeout(now);
        if self.ua.poll_timeout().is_some_and(|t| t <= now) {
            self.ua.handle_timeout(now);
        }
        self.answer(now);
    }

    /// The next instant [`SipCore::timeout`] has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.txns.poll_timeout(),
            self.outbound.poll_timeout(),
            self.ua.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Hands the user agent's SIP requests to the outbound layer: BYEs (their outcome
    /// is only logged: the session is over whatever the answer), INVITEs (their
    /// responses go back to the user agent), ACKs for 2xx and CANCELs.
    pub fn send_ua_requests(&mut self, now: Instant) {
        self.ua.answer_deferred(now, &mut self.txns);
        let mut again = false;
        while let Some(r) = self.ua.poll_sip() {
            match r {
                UaSip::InDialog { msg, next_hop } => {
                    match self.outbound.send(now, msg, Hop::Direct(next_hop.clone())) {
                        Ok(id) => {
                            self.ua_requests.insert(id);
                        }
                        Err(e) => {
                            tracing::info!(next_hop = %next_hop, error = %e, "user agent BYE not sent")
                        }
                    }
                }
                UaSip::Invite {
                    session,
                    msg,
                    proxy,
                } => {
                    let hop = proxy.map_or(Hop::Default, Hop::Proxy);
                    match self.outbound.send(now, msg, hop) {
                        Ok(id) => {
                            self.ua_invites.insert(id, session.clone());
                            self.ua_invite_of.insert(session, id);
                        }
                        Err(e) => {
                            self.ua.handle_invite_failed(
                                now,
                                &session,
                                400,
                                &format!("INVITE not sent: {e}"),
                            );
                        }
                    }
                }
                UaSip::Ack { session, msg } => {
                    let sent = self
                        .ua_invite_of
                        .get(&session)
                        .ok_or(outbound::OutError::Unknown)
                        .and_then(|&req| self.outbound.send_ack(&mut self.txns, req, &msg));
                    if let Err(e) = sent {
                        tracing::info!(%session, error = %e, "user agent ACK not sent");
                    }
                }
                UaSip::Cancel { session } => {
                    if let Some(&req) = self.ua_invite_of.get(&session)
                        && let Err(e) = self.outbound.cancel(now, &mut self.txns, req)
                    {
                        tracing::info!(%session, error = %e, "user agent CANCEL not sent");
                    }
                    again = true;
                }
            }
        }
        if again {
            // A CANCEL of an INVITE not sent yet fails it at once.
            self.answer(now);
        }
    }

    /// Starts a user agent session (`POST /v1/ua/sessions`): its id, or why not.
    pub fn ua_originate(
        &mut self,
        now: Instant,
        o: crate::ua::engine::Originate,
    ) -> Result<String, String> {
        let r = self.ua.originate(now, o);
        self.send_ua_requests(now);
        self.answer(now);
        r
    }

    /// What the user agent asks of the server (MSRP writes and closes).
    pub fn poll_ua_action(&mut self) -> Option<crate::conn::Action<()>> {
        self.ua.poll_action()
    }

    /// What the user agent tells the operator.
    pub fn poll_ua_event(&mut self) -> Option<UaEvent> {
        self.ua.poll_event()
    }

    /// What the outbound layer needs from the I/O layer.
    pub fn poll_action(&mut self) -> Option<outbound::Action> {
        self.outbound.poll_action()
    }

    /// The answer to an [`outbound::Action::Resolve`].
    pub fn resolved(&mut self, now: Instant, req: ReqId, addrs: Vec<SocketAddr>) {
        self.outbound.handle_resolved(now, req, addrs);
        self.answer(now);
    }

    /// The answer to an [`outbound::Action::Open`].
    pub fn opened(&mut self, now: Instant, req: ReqId, peer: Result<Peer, String>) {
        self.outbound.handle_opened(now, &mut self.txns, req, peer);
        self.answer(now);
    }

    /// A SIP connection failed or closed.
    pub fn conn_closed(&mut self, now: Instant, conn: ConnId, why: &str) {
        self.outbound
            .handle_conn_closed(now, &mut self.txns, conn, why);
        self.answer(now);
    }

    /// A response another core's branch names, for that core.
    pub fn poll_handover(&mut self) -> Option<(u16, Peer, Message)> {
        self.handover.pop_front()
    }

    /// API requests that ended.
    pub fn poll_done(&mut self) -> Option<RequestDone> {
        self.done.pop_front()
    }

    /// Builds and starts an admin API request (RFC 3261 §8.1.1: From with our tag, To,
    /// a Call-ID of this core, CSeq 1, Max-Forwards 70).
    pub fn api_request(&mut self, now: Instant, r: ApiRequest) {
        let from = match &r.from {
            Some(f) if f.contains(";tag=") => f.clone(),
            Some(f) => format!("{f};tag={}", ids::tag(self.core, &mut self.rng)),
            None => format!(
                "<sip:msrpd@{}>;tag={}",
                self.outbound.config().sent_by,
                ids::tag(self.core, &mut self.rng)
            ),
        };
        let to = r.to.clone().unwrap_or_else(|| format!("<{}>", r.ruri));
        let host = self.outbound.config().sent_by.clone();
        let mut w = Writer::request(&r.method, &r.ruri);
        w.header("Max-Forwards", "70");
        w.header("From", &from);
        w.header("To", &to);
        w.header("Call-ID", &ids::call_id(self.core, &host, &mut self.rng));
        w.header("CSeq", &format!("1 {}", r.method));
        if let Some(s) = &self.policy.server {
            w.header("User-Agent", s);
        }
        let body = r.body.as_deref().unwrap_or("");
        let ct = match (&r.content_type, body.is_empty()) {
            (Some(ct), _) => Some(ct.as_str()),
            (None, false) => Some("text/plain"),
            (None, true) => None,
        };
        let hop = match &r.proxy {
            Some(p) => Hop::Proxy(p.clone()),
            None => Hop::Default,
        };
        let sent = w
            .into_message_body(ct, body.as_bytes())
            .map_err(|e| e.to_string())
            .and_then(|m| self.outbound.send(now, m, hop).map_err(|e| e.to_string()));
        match sent {
            Ok(id) => {
                self.api.insert(id, r);
            }
            Err(e) => self.done.push_back(RequestDone {
                request_id: r.request_id,
                method: r.method,
                ruri: r.ruri,
                status: 400,
                reason: format!("request not built: {e}"),
                transport: None,
                peer: None,
                local: true,
            }),
        }
        self.answer(now);
    }

    /// Answers every new request: nobody owns any yet (no user agent), so each gets
    /// [`answer`]'s response (482 for a merged request, §8.2.2.2, as the table tells),
    /// sent through its server transaction so that retransmissions are absorbed
    /// (§17.2). Client transaction events go to the outbound layer, whose outcomes
    /// for API requests become [`RequestDone`]s.
    fn answer(&mut self, now: Instant) {
        while let Some(e) = self.txns.poll_event() {
            if let Event::Request { id, msg, .. } = e {
                // The user agent first: INVITEs its rules take, requests in its dialogs.
                let taken = match msg.method() {
                    Some(Method::Invite) => self.ua.handle_invite(now, &mut self.txns, id, &msg),
                    _ if msg.to_tag().is_some() => {
                        self.ua.handle_in_dialog(now, &mut self.txns, id, &msg)
                    }
                    _ => false,
                };
                if taken {
                    continue;
                }
                let Some(a) = answer(&msg, &self.policy, self.txns.is_merged(id)) else {
                    continue;
                };
                let tag = (a.code > 100).then(|| ids::tag(self.core, &mut self.rng));
                let bytes = a.write(&msg, tag.as_deref());
                match Message::parse_own(bytes) {
                    Ok(resp) => {
                        if let Err(e) = self.txns.respond(now, id, resp) {
                            tracing::debug!(error = %e, "SIP response not sent");
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "own SIP response does not parse"),
                }
            } else if let Event::StrayResponse { msg, from } = e {
                // A response to another core's request (UDP: the kernel picks the
                // socket by its 4-tuple): handed to that core (ARCHITECTURE.md).
                let owner = msg
                    .top_via()
                    .and_then(|v| v.branch().and_then(ids::branch_core));
                if let Some(c) = owner.filter(|&c| c != self.core) {
                    self.handover.push_back((c, from, msg));
                }
            } else {
                match &e {
                    Event::Ack { msg, .. } => self.ua.handle_ack(now, msg),
                    Event::Cancelled { invite, .. } => {
                        self.ua
                            .handle_invite_gone(now, *invite, 487, "cancelled by the caller")
                    }
                    Event::Timeout {
                        id,
                        timer: Timer::L,
                    } => self
                        .ua
                        .handle_invite_gone(now, *id, 408, "no ACK for the 200"),
                    _ => {}
                }
                self.outbound.handle_txn_event(now, &mut self.txns, &e);
            }
        }
        while let Some(e) = self.outbound.poll_event() {
            // The user agent's INVITEs: their responses are its.
            let invite = match &e {
                OutEvent::Provisional { req, .. }
                | OutEvent::Final { req, .. }
                | OutEvent::Failed { req, .. }
                | OutEvent::Done { req } => self.ua_invites.get(req).cloned(),
            };
            if let Some(sid) = invite {
                match &e {
                    OutEvent::Final { msg, peer, .. } => {
                        let tls = peer.is_some_and(|p| p.transport == Transport::Tls);
                        self.ua.handle_invite_response(now, &sid, msg, tls);
                    }
                    OutEvent::Failed { failure, .. } => {
                        self.ua.handle_invite_failed(
                            now,
                            &sid,
                            failure.status(),
                            &failure.reason(),
                        );
                    }
                    OutEvent::Done { req } => {
                        self.ua_invites.remove(req);
                        if self.ua_invite_of.get(&sid) == Some(req) {
                            self.ua_invite_of.remove(&sid);
                        }
                    }
                    OutEvent::Provisional { .. } => {}
                }
                continue;
            }
            // The API's requests become events; the user agent's BYEs are logged.
            let (req, status, reason, local, peer) = match &e {
                OutEvent::Final { req, msg, peer } => (
                    *req,
                    msg.status().unwrap_or(0),
                    msg.reason().to_string(),
                    false,
                    *peer,
                ),
                OutEvent::Failed { req, failure, peer } => {
                    (*req, failure.status(), failure.reason(), true, *peer)
                }
                OutEvent::Provisional { .. } | OutEvent::Done { .. } => {
                    if let OutEvent::Done { req } = e {
                        self.ua_requests.remove(&req);
                        if let Some(r) = self.api.remove(&req) {
                            // Ended without an outcome (cannot happen: every request
                            // gets a final response or a failure first).
                            tracing::debug!(request_id = %r.request_id, "SIP request forgotten");
                        }
                    }
                    continue;
                }
            };
            if self.ua_requests.remove(&req) {
                tracing::info!(status, %reason, "user agent BYE answered");
                continue;
            }
            if let Some(r) = self.api.remove(&req) {
                self.done.push_back(RequestDone {
                    request_id: r.request_id,
                    method: r.method,
                    ruri: r.ruri,
                    status,
                    reason,
                    transport: peer.map(|p| p.transport.as_str()),
                    peer: peer.map(|p| p.addr),
                    local,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_bytes() {
        let cases: &[(&[u8], Sniff)] = &[
            (b"MSRP a SEND\r\n", Sniff::Msrp),
            (b"MSR", Sniff::NeedMore),
            (b"M", Sniff::NeedMore),
            (b"OPTIONS sip:a@b SIP/2.0\r\n", Sniff::Sip),
            (b"INVITE sip:a@b SIP/3.0\r\n", Sniff::Sip),
            (b"OPTIONS sip:a@b", Sniff::NeedMore),
            (b"OPTIONS sip:a@b HTTP/1.1\r\n", Sniff::Other),
            (b"SIP/2.0 200 OK\r\n", Sniff::Sip),
            (b"SIP/2", Sniff::NeedMore),
            (b"\r\n\r\n", Sniff::Sip),
            (b"\r", Sniff::NeedMore),
            (b"GET / HTTP/1.1\r\n", Sniff::Http),
            (b"hello world\r\n", Sniff::Other),
            (b"\x00\x01\x02", Sniff::Other),
            (b"resume", Sniff::NeedMore),
            (b"resume\r\n", Sniff::Other),
            (&[b'A'; 40], Sniff::Other),
        ];
        for (b, want) in cases {
            assert_eq!(sniff(b), *want, "{:?}", String::from_utf8_lossy(b));
        }
        assert_eq!(sniff(&[b'a'; 2000][..]), Sniff::Other);
    }
}
