//! Outbound requests (sans-IO): what a transaction user (the user agent, the admin
//! API's `POST /v1/sip/requests`) hands over to be sent, and what it hears back, keyed
//! by a [`ReqId`] of its own.
//!
//! - Next hop (RFC 3261 §8.1.2): the configured outbound proxy, as a preloaded route
//!   (the request then carries `Route: <proxy;lr>` first), else the first Route,
//!   else the Request-URI; an in-dialog request names its own next hop
//!   ([`Hop::Direct`], what [`super::dialog::Dialog::request`] returns).
//! - Transport (§18.1.1, a subset of RFC 3263 §4.1): the next hop URI's `transport=`
//!   (`udp`, `tcp`, `tls`), `sips:` gives TLS, else UDP; a request over 1300 bytes
//!   that would go over UDP goes over TCP (§18.1.1). Port: the URI's, else 5060
//!   (5061 for TLS). Only A/AAAA records are used: no NAPTR, no SRV (RFC 3263 §4.2),
//!   no `maddr`.
//! - Resolution: an IP literal at once; a name is handed to the I/O layer
//!   ([`Action::Resolve`]), at most [`Config::max_resolving`] at once, each failed
//!   after [`Config::resolve_timeout`] (the answer that comes later is dropped).
//! - The I/O layer turns addresses into a [`Peer`] ([`Action::Open`]: a UDP socket,
//!   an open SIP connection, or a new one) and the client transaction starts
//!   ([`Transactions::send_request`]).
//! - Outcomes ([`OutEvent`]): provisional and final responses; a timeout (timer B or
//!   F) is a 408, a transport error or an unresolvable host a 503 (§8.1.3.1,
//!   §18.1.1), both generated here ([`Failure`]).
//! - Digest (§22.2, §22.3): a 401/407 whose challenge names a realm we have
//!   credentials for is answered once ([`super::auth::authorize`]: same Call-ID,
//!   CSeq + 1, new branch); a second challenge, or one we cannot answer, goes to the
//!   TU as the final response.
//! - INVITE: the ACK for a 2xx goes outside the transaction to the INVITE's next hop
//!   ([`Outbound::send_ack`], §13.2.2.4, with a branch of its own), CANCEL through
//!   [`Outbound::cancel`] (§9.1; held until the first provisional response).
//!
//! Our Via: `SIP/2.0/<T> <sent-by>;branch=<ids::branch>;rport` (§8.1.1.7, RFC 3581 §3).

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use core::net::{IpAddr, SocketAddr};
use rand::RngCore;

use super::auth::{self, RealmCredentials};
use super::header::{NameAddr, Uri};
use super::ids;
use super::msg::{Message, Method, ParseError};
use super::name::HeaderName;
use super::txn::{Event, Peer, Transactions, Transport, TxError, TxId};
use super::write::Writer;
use crate::conn::ConnId;

/// §18.1.1: a request larger than this that would go over UDP goes over TCP.
pub const UDP_MAX: usize = 1300;

/// Settings of one core's outbound layer.
#[derive(Debug, Clone)]
pub struct Config {
    /// The owning core, in our branches (see [`ids`]).
    pub core: u16,
    /// The outbound proxy URI (`--sip-outbound-proxy`), checked with [`check_uri`].
    pub proxy: Option<String>,
    /// Digest credentials by realm (`--sip-credentials`).
    pub credentials: Arc<RealmCredentials>,
    /// `host:port` of our Vias over UDP and TCP.
    pub sent_by: String,
    /// `host:port` of our Vias over TLS (the plain one when there is no TLS listener).
    pub sent_by_tls: Option<String>,
    /// Names being resolved at once; a request beyond fails with 503.
    pub max_resolving: usize,
    /// A resolution taking longer fails its request with 503.
    pub resolve_timeout: Duration,
    /// Requests held at once (resolving, opening or in a transaction).
    pub max_requests: usize,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            core: 0,
            proxy: None,
            credentials: Arc::new(RealmCredentials::default()),
            sent_by: "127.0.0.1:5060".into(),
            sent_by_tls: None,
            max_resolving: 64,
            resolve_timeout: Duration::from_secs(5),
            max_requests: 16_384,
        }
    }
}

/// A request's handle, never reused by one [`Outbound`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReqId(pub u64);

/// Where a request goes first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hop {
    /// [`Config::proxy`] if set (with a Route for it), else the first Route, else the
    /// Request-URI.
    Default,
    /// This outbound proxy instead of the configured one (with a Route for it).
    Proxy(String),
    /// This URI, nothing added (an in-dialog request's next hop, §12.2.1.1).
    Direct(String),
}

/// What the I/O layer must do for the outbound layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Resolve `host` (A/AAAA) off the core; answer with [`Outbound::handle_resolved`].
    Resolve { req: ReqId, host: String, port: u16 },
    /// Find or open the way to one of `addrs` (in order) over `transport`; answer at
    /// once with [`Outbound::handle_opened`]. For TLS the certificate must be valid
    /// for `host`. A new connection that fails later is reported with
    /// [`Outbound::handle_conn_closed`].
    Open {
        req: ReqId,
        transport: Transport,
        addrs: Vec<SocketAddr>,
        host: String,
    },
}

/// Why a request got no response: the TU treats it as a response with
/// [`Failure::status`] (§8.1.3.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Timer B or F fired (408).
    Timeout,
    /// The next hop's name has no address (503).
    Unresolvable(String),
    /// Resolving the next hop took longer than [`Config::resolve_timeout`] (503).
    ResolveTimeout(String),
    /// [`Config::max_resolving`] names are being resolved (503).
    ResolverBusy,
    /// The transport failed: no socket, connection refused or closed (503).
    Transport(String),
    /// The transaction table or [`Config::max_requests`] is full (503).
    Full,
    /// The next hop URI cannot be used (416 for another scheme, 503 otherwise).
    BadTarget(String),
    /// Cancelled by the TU before it was sent (487).
    Cancelled,
}

impl Failure {
    pub fn status(&self) -> u16 {
        match self {
            Failure::Timeout => 408,
            Failure::Cancelled => 487,
            Failure::BadTarget(r) if r.starts_with("scheme") => 416,
            _ => 503,
        }
    }

    /// What happened, for the TU, logs and events.
    pub fn reason(&self) -> String {
        match self {
            Failure::Timeout => "no response before the transaction timed out".into(),
            Failure::Unresolvable(h) => format!("cannot resolve {h}"),
            Failure::ResolveTimeout(h) => format!("resolving {h} timed out"),
            Failure::ResolverBusy => "too many names being resolved".into(),
            Failure::Transport(r) => format!("transport error: {r}"),
            Failure::Full => "too many requests in progress".into(),
            Failure::BadTarget(r) => format!("unusable next hop: {r}"),
            Failure::Cancelled => "cancelled before it was sent".into(),
        }
    }
}

/// What the TU hears about its requests.
#[derive(Debug, Clone)]
pub enum OutEvent {
    /// A 1xx.
    Provisional { req: ReqId, msg: Message },
    /// A final response (for an INVITE, every 2xx: send the ACK for each), and
    /// where the request went.
    Final {
        req: ReqId,
        msg: Message,
        peer: Option<Peer>,
    },
    /// No response will come; treat as a `failure.status()` response. `peer`: where
    /// the request went, if it got that far.
    Failed {
        req: ReqId,
        failure: Failure,
        peer: Option<Peer>,
    },
    /// The request is forgotten; its id will not come again.
    Done { req: ReqId },
}

/// Why the TU's call was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OutError {
    #[error("not a request")]
    NotARequest,
    #[error("ACK goes with send_ack")]
    IsAck,
    #[error("no such request")]
    Unknown,
    #[error("not possible for this request now")]
    WrongState,
    #[error("the message cannot be rebuilt: {0}")]
    Parse(ParseError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Resolving,
    Opening,
    Sent,
}

#[derive(Debug)]
struct Out {
    /// The request as sent (our Via, the proxy Route).
    request: Message,
    method: Method,
    transport: Transport,
    host: String,
    stage: Stage,
    tx: Option<TxId>,
    peer: Option<Peer>,
    authed: bool,
    final_seen: bool,
    cancel_wanted: bool,
    /// Why the connection failed, for the next transport error.
    fail_reason: Option<String>,
    resolve_deadline: Option<Instant>,
}

/// A next hop: transport, host (as written, brackets kept) and port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub transport: Transport,
    pub host: String,
    pub port: u16,
}

/// Reads a next hop URI (§18.1.1, RFC 3263 §4.1 without NAPTR/SRV): `sip:`/`sips:`,
/// `transport=` udp/tcp/tls, `sips:` TLS, default port 5060 (5061 for TLS). Accepts
/// a bare URI or a name-addr (`<sip:..;lr>`, as a Route carries it).
pub fn target(uri: &str) -> Result<Target, Failure> {
    // A bare URI's `;params` are its own; only `<...>` makes it a name-addr (whose
    // params after `>` are the header's, §20.10).
    let na = uri
        .contains('<')
        .then(|| NameAddr::parse(uri.trim()).ok())
        .flatten();
    let u = match na.and_then(|n| n.parsed_uri()) {
        Some(u) => u,
        None => Uri::parse(uri.trim())
            .map_err(|_| Failure::BadTarget(format!("{uri:?} is not a URI")))?,
    };
    if !u.is_sip() {
        return Err(Failure::BadTarget(format!(
            "scheme {:?} is not sip or sips",
            u.scheme()
        )));
    }
    if u.host().is_empty() {
        return Err(Failure::BadTarget(format!("{uri:?} has no host")));
    }
    let transport = match u.transport() {
        _ if u.is_sips() => Transport::Tls,
        None => Transport::Udp,
        Some(t) if t.eq_ignore_ascii_case("udp") => Transport::Udp,
        Some(t) if t.eq_ignore_ascii_case("tcp") => Transport::Tcp,
        Some(t) if t.eq_ignore_ascii_case("tls") => Transport::Tls,
        Some(t) => {
            return Err(Failure::BadTarget(format!(
                "transport {t:?} is not supported (udp, tcp, tls)"
            )));
        }
    };
    let port = u.port().unwrap_or(if transport == Transport::Tls {
        5061
    } else {
        5060
    });
    Ok(Target {
        transport,
        host: u.host().to_string(),
        port,
    })
}

/// Checks a configured or API-given proxy URI; `Err` says why it cannot be used.
pub fn check_uri(uri: &str) -> Result<(), String> {
    target(uri).map(|_| ()).map_err(|f| f.reason())
}

/// The Route value for a preloaded outbound proxy (§8.1.2): `<uri;lr>`.
fn proxy_route(uri: &str) -> String {
    let bare = uri.trim().trim_start_matches('<').trim_end_matches('>');
    match Uri::parse(bare) {
        Ok(u) if u.lr() => format!("<{bare}>"),
        Ok(u) => {
            // ;lr goes before any ?headers.
            let base = u.without_headers();
            format!("<{base};lr{}>", u.headers())
        }
        Err(_) => format!("<{bare}>"),
    }
}

/// `msg` with `via` on top (any Via it had is dropped), `route` before its Routes,
/// Max-Forwards 70 when it has none (§8.1.1.6), Content-Length recomputed.
fn rebuild(msg: &Message, via: &str, route: Option<&str>) -> Result<Message, ParseError> {
    let mut w = Writer::request(msg.method_str(), msg.request_uri());
    w.header("Via", via);
    if msg.get(HeaderName::MaxForwards).is_none() {
        w.header("Max-Forwards", "70");
    }
    if let Some(r) = route {
        w.header("Route", r);
    }
    for h in msg.headers() {
        match h.name {
            HeaderName::Via | HeaderName::ContentLength => {}
            HeaderName::Other => {
                w.header(h.name_str, h.value);
            }
            n => {
                w.copy(n, h.value);
            }
        }
    }
    Message::parse_own(w.finish_body(None, msg.body_bytes()))
}

/// The outbound requests of one core.
pub struct Outbound {
    cfg: Config,
    rng: Box<dyn RngCore>,
    next_id: u64,
    reqs: HashMap<ReqId, Out>,
    by_tx: HashMap<TxId, ReqId>,
    /// CANCEL transactions we started (their responses are nobody's business).
    cancels: HashMap<TxId, ReqId>,
    /// Resolutions handed out and not answered yet (timed out ones included: their
    /// threads still run, so they still count).
    resolving: usize,
    deadlines: BTreeSet<(Instant, ReqId)>,
    actions: VecDeque<Action>,
    events: VecDeque<OutEvent>,
    auth_retries: u64,
}

impl std::fmt::Debug for Outbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbound")
            .field("requests", &self.reqs.len())
            .field("resolving", &self.resolving)
            .finish()
    }
}

impl Outbound {
    /// `rng` makes branches and cnonces.
    pub fn new(cfg: Config, rng: Box<dyn RngCore>) -> Outbound {
        Outbound {
            cfg,
            rng,
            next_id: 1,
            reqs: HashMap::new(),
            by_tx: HashMap::new(),
            cancels: HashMap::new(),
            resolving: 0,
            deadlines: BTreeSet::new(),
            actions: VecDeque::new(),
            events: VecDeque::new(),
            auth_retries: 0,
        }
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }
    /// Requests held now.
    pub fn len(&self) -> usize {
        self.reqs.len()
    }
    pub fn is_empty(&self) -> bool {
        self.reqs.is_empty()
    }
    /// Requests retried with credentials so far.
    pub fn auth_retries(&self) -> u64 {
        self.auth_retries
    }
    /// The request as last sent (our Via; after a digest retry, the retry).
    pub fn request(&self, req: ReqId) -> Option<&Message> {
        self.reqs.get(&req).map(|o| &o.request)
    }
    /// Where the request went (once opened).
    pub fn peer(&self, req: ReqId) -> Option<Peer> {
        self.reqs.get(&req).and_then(|o| o.peer)
    }
    /// The transport chosen for the request.
    pub fn transport(&self, req: ReqId) -> Option<Transport> {
        self.reqs.get(&req).map(|o| o.transport)
    }

    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }
    pub fn poll_event(&mut self) -> Option<OutEvent> {
        self.events.pop_front()
    }
    /// The next resolution deadline.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadlines.first().map(|(at, _)| *at)
    }

    /// Our Via for `transport`, with a new branch.
    pub fn via(&mut self, transport: Transport) -> String {
        let sent_by = match transport {
            Transport::Tls | Transport::Wss => {
                self.cfg.sent_by_tls.as_deref().unwrap_or(&self.cfg.sent_by)
            }
            _ => &self.cfg.sent_by,
        };
        let branch = ids::branch(self.cfg.core, &mut *self.rng);
        format!(
            "SIP/2.0/{} {sent_by};branch={branch};rport",
            transport.as_str()
        )
    }

    /// Starts sending `msg` (a request other than ACK, with or without a Via: ours
    /// replaces it). Every outcome, failures included, comes as an [`OutEvent`].
    pub fn send(&mut self, now: Instant, msg: Message, hop: Hop) -> Result<ReqId, OutError> {
        let method = msg.method().ok_or(OutError::NotARequest)?;
        if method == Method::Ack {
            return Err(OutError::IsAck);
        }
        let id = ReqId(self.next_id);
        self.next_id += 1;
        let (uri, route) = match &hop {
            Hop::Direct(u) => (u.clone(), None),
            Hop::Proxy(p) => (p.clone(), Some(proxy_route(p))),
            Hop::Default => match &self.cfg.proxy {
                Some(p) => (p.clone(), Some(proxy_route(p))),
                None => match msg
                    .get(HeaderName::Route)
                    .and_then(|r| super::header::split_list(r).next().map(str::to_string))
                {
                    Some(first) => (first, None),
                    None => (msg.request_uri().to_string(), None),
                },
            },
        };
        let fail = |s: &mut Outbound, f: Failure| {
            s.events.push_back(OutEvent::Failed {
                req: id,
                failure: f,
                peer: None,
            });
            s.events.push_back(OutEvent::Done { req: id });
            Ok(id)
        };
        if self.reqs.len() >= self.cfg.max_requests {
            return fail(self, Failure::Full);
        }
        let t = match target(&uri) {
            Ok(t) => t,
            Err(f) => return fail(self, f),
        };
        let mut transport = t.transport;
        let via = self.via(transport);
        let mut request = rebuild(&msg, &via, route.as_deref()).map_err(OutError::Parse)?;
        if transport == Transport::Udp && request.raw().len() > UDP_MAX {
            transport = Transport::Tcp;
            let via = self.via(transport);
            request = rebuild(&msg, &via, route.as_deref()).map_err(OutError::Parse)?;
        }
        let literal = t.host.trim_start_matches('[').trim_end_matches(']');
        let mut out = Out {
            request,
            method,
            transport,
            host: t.host.clone(),
            stage: Stage::Opening,
            tx: None,
            peer: None,
            authed: false,
            final_seen: false,
            cancel_wanted: false,
            fail_reason: None,
            resolve_deadline: None,
        };
        if let Ok(ip) = literal.parse::<IpAddr>() {
            self.actions.push_back(Action::Open {
                req: id,
                transport,
                addrs: vec![SocketAddr::new(ip, t.port)],
                host: t.host,
            });
        } else {
            if self.resolving >= self.cfg.max_resolving {
                return fail(self, Failure::ResolverBusy);
            }
            self.resolving += 1;
            let at = now + self.cfg.resolve_timeout;
            out.stage = Stage::Resolving;
            out.resolve_deadline = Some(at);
            self.deadlines.insert((at, id));
            self.actions.push_back(Action::Resolve {
                req: id,
                host: t.host,
                port: t.port,
            });
        }
        self.reqs.insert(id, out);
        Ok(id)
    }

    /// The addresses of a [`Action::Resolve`] (empty: none). Each resolution handed
    /// out must be answered once, late or not.
    pub fn handle_resolved(&mut self, _now: Instant, req: ReqId, addrs: Vec<SocketAddr>) {
        self.resolving = self.resolving.saturating_sub(1);
        let Some(o) = self
            .reqs
            .get_mut(&req)
            .filter(|o| o.stage == Stage::Resolving)
        else {
            return;
        };
        if let Some(at) = o.resolve_deadline.take() {
            self.deadlines.remove(&(at, req));
        }
        if addrs.is_empty() {
            let f = Failure::Unresolvable(o.host.clone());
            self.fail(req, f);
            return;
        }
        o.stage = Stage::Opening;
        let (transport, host) = (o.transport, o.host.clone());
        self.actions.push_back(Action::Open {
            req,
            transport,
            addrs,
            host,
        });
    }

    /// The way to the next hop of an [`Action::Open`], or why there is none: the
    /// client transaction starts.
    pub fn handle_opened(
        &mut self,
        now: Instant,
        txns: &mut Transactions,
        req: ReqId,
        peer: Result<Peer, String>,
    ) {
        let Some(o) = self
            .reqs
            .get_mut(&req)
            .filter(|o| o.stage == Stage::Opening)
        else {
            return;
        };
        let peer = match peer {
            Ok(p) => p,
            Err(why) => return self.fail(req, Failure::Transport(why)),
        };
        o.peer = Some(peer);
        o.stage = Stage::Sent;
        match txns.send_request(now, peer, o.request.clone()) {
            Ok(tx) => {
                o.tx = Some(tx);
                self.by_tx.insert(tx, req);
            }
            Err(TxError::Full) => self.fail(req, Failure::Full),
            Err(e) => self.fail(req, Failure::Transport(e.to_string())),
        }
    }

    /// Connection `conn` failed or closed (`why`): requests waiting on it that have no
    /// final response fail with 503 (§8.1.3.1).
    pub fn handle_conn_closed(
        &mut self,
        now: Instant,
        txns: &mut Transactions,
        conn: ConnId,
        why: &str,
    ) {
        let hit: Vec<(ReqId, TxId)> = self
            .reqs
            .iter()
            .filter(|(_, o)| !o.final_seen && o.peer.is_some_and(|p| p.conn == Some(conn)))
            .filter_map(|(id, o)| Some((*id, o.tx?)))
            .collect();
        for (id, tx) in hit {
            if let Some(o) = self.reqs.get_mut(&id) {
                o.fail_reason = Some(why.to_string());
            }
            txns.handle_transport_error(now, tx);
        }
    }

    /// Resolutions past their deadline fail.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(&(at, id)) = self.deadlines.first() {
            if at > now {
                break;
            }
            self.deadlines.pop_first();
            let host = match self.reqs.get_mut(&id) {
                Some(o) if o.stage == Stage::Resolving => {
                    o.resolve_deadline = None;
                    o.host.clone()
                }
                _ => continue,
            };
            self.fail(id, Failure::ResolveTimeout(host));
        }
    }

    /// A transaction event: `true` when it was one of ours (consumed).
    pub fn handle_txn_event(&mut self, now: Instant, txns: &mut Transactions, e: &Event) -> bool {
        match e {
            Event::Response { id, msg } => {
                if self.cancels.contains_key(id) {
                    return true;
                }
                let Some(&req) = self.by_tx.get(id) else {
                    return false;
                };
                self.on_response(now, txns, req, *id, msg);
                true
            }
            Event::Timeout { id, .. } | Event::TransportError { id } => {
                if self.cancels.contains_key(id) {
                    return true;
                }
                let Some(&req) = self.by_tx.get(id) else {
                    return false;
                };
                let Some(o) = self.reqs.get_mut(&req) else {
                    return true;
                };
                if o.tx != Some(*id) || o.final_seen {
                    return true;
                }
                o.final_seen = true;
                let failure = match e {
                    Event::Timeout { .. } => Failure::Timeout,
                    _ => Failure::Transport(
                        o.fail_reason
                            .take()
                            .unwrap_or_else(|| "the message could not be sent".into()),
                    ),
                };
                let peer = o.peer;
                self.events
                    .push_back(OutEvent::Failed { req, failure, peer });
                true
            }
            Event::Terminated { id } => {
                if self.cancels.remove(id).is_some() {
                    return true;
                }
                let Some(req) = self.by_tx.remove(id) else {
                    return false;
                };
                if self.reqs.get(&req).is_some_and(|o| o.tx == Some(*id)) {
                    self.reqs.remove(&req);
                    self.events.push_back(OutEvent::Done { req });
                }
                true
            }
            _ => false,
        }
    }

    fn on_response(
        &mut self,
        now: Instant,
        txns: &mut Transactions,
        req: ReqId,
        tx: TxId,
        msg: &Message,
    ) {
        let Some(o) = self.reqs.get_mut(&req) else {
            return;
        };
        if o.tx != Some(tx) {
            return;
        }
        let code = msg.status().unwrap_or(0);
        if code < 200 {
            self.events.push_back(OutEvent::Provisional {
                req,
                msg: msg.clone(),
            });
            if o.cancel_wanted && o.method == Method::Invite {
                o.cancel_wanted = false;
                if let Ok(c) = txns.cancel(now, tx) {
                    self.cancels.insert(c, req);
                }
            }
            return;
        }
        if (code == 401 || code == 407) && !o.authed && !o.final_seen {
            let mut cnonce = [0u8; 8];
            self.rng.fill_bytes(&mut cnonce);
            let branch = ids::branch(self.cfg.core, &mut *self.rng);
            let retry = auth::authorize(
                &o.request,
                msg,
                &*self.cfg.credentials,
                &hex::encode(cnonce),
                &branch,
            );
            if let (Ok(retry), Some(peer)) = (retry, o.peer) {
                o.authed = true;
                // A full table: the TU gets the challenge.
                if let Ok(new_tx) = txns.send_request(now, peer, retry.clone()) {
                    self.auth_retries += 1;
                    o.request = retry;
                    o.tx = Some(new_tx);
                    self.by_tx.insert(new_tx, req);
                    // The challenged transaction ends on its own; its Terminated
                    // only drops its mapping.
                    return;
                }
            }
        }
        o.final_seen = true;
        let peer = o.peer;
        self.events.push_back(OutEvent::Final {
            req,
            msg: msg.clone(),
            peer,
        });
    }

    /// Fails a request that has no transaction (or whose transaction could not start).
    fn fail(&mut self, req: ReqId, failure: Failure) {
        if let Some(o) = self.reqs.remove(&req) {
            if let Some(at) = o.resolve_deadline {
                self.deadlines.remove(&(at, req));
            }
            if let Some(tx) = o.tx {
                self.by_tx.remove(&tx);
            }
            self.events.push_back(OutEvent::Failed {
                req,
                failure,
                peer: o.peer,
            });
            self.events.push_back(OutEvent::Done { req });
        }
    }

    /// Sends the ACK for a 2xx to INVITE `req` (§13.2.2.4): `ack` as the dialog
    /// built it (its Via is replaced by ours with a new branch), outside any
    /// transaction, to the INVITE's next hop.
    pub fn send_ack(
        &mut self,
        txns: &mut Transactions,
        req: ReqId,
        ack: &Message,
    ) -> Result<(), OutError> {
        let (peer, transport) = match self.reqs.get(&req) {
            Some(o) if o.method == Method::Invite => {
                (o.peer.ok_or(OutError::WrongState)?, o.transport)
            }
            Some(_) => return Err(OutError::WrongState),
            None => return Err(OutError::Unknown),
        };
        if ack.method() != Some(Method::Ack) {
            return Err(OutError::WrongState);
        }
        let via = self.via(transport);
        let m = rebuild(ack, &via, None).map_err(OutError::Parse)?;
        txns.send_raw(peer, m.raw().clone());
        Ok(())
    }

    /// Cancels INVITE `req` (§9.1): a CANCEL once a provisional response came (at once
    /// if one has; else when the first does); one not sent yet fails with 487 here.
    /// The INVITE's own final response (487, or a 2xx that crossed) comes as usual.
    pub fn cancel(
        &mut self,
        now: Instant,
        txns: &mut Transactions,
        req: ReqId,
    ) -> Result<(), OutError> {
        let o = self.reqs.get_mut(&req).ok_or(OutError::Unknown)?;
        if o.method != Method::Invite || o.final_seen {
            return Err(OutError::WrongState);
        }
        let Some(tx) = o.tx.filter(|_| o.stage == Stage::Sent) else {
            self.fail(req, Failure::Cancelled);
            return Ok(());
        };
        match txns.cancel(now, tx) {
            Ok(c) => {
                self.cancels.insert(c, req);
                Ok(())
            }
            Err(TxError::NoProvisional) => {
                o.cancel_wanted = true;
                Ok(())
            }
            Err(_) => Err(OutError::WrongState),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        let t = target("sip:a@10.0.0.1").unwrap();
        assert_eq!(
            (t.transport, t.host.as_str(), t.port),
            (Transport::Udp, "10.0.0.1", 5060)
        );
        let t = target("sips:a@example.com").unwrap();
        assert_eq!((t.transport, t.port), (Transport::Tls, 5061));
        let t = target("<sip:p.example;transport=TCP;lr>").unwrap();
        assert_eq!((t.transport, t.port), (Transport::Tcp, 5060));
        let t = target("sip:[::1]:5070;transport=tls").unwrap();
        assert_eq!(
            (t.transport, t.host.as_str(), t.port),
            (Transport::Tls, "[::1]", 5070)
        );
        assert_eq!(target("tel:+123").unwrap_err().status(), 416);
        assert_eq!(target("sip:a@b;transport=sctp").unwrap_err().status(), 503);
        assert_eq!(proxy_route("sip:p:5070"), "<sip:p:5070;lr>");
        assert_eq!(proxy_route("<sip:p;lr>"), "<sip:p;lr>");
    }
}
