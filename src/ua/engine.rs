//! The MSRP user agent's engine (RFC 4975 endpoints set up over SIP INVITE with SDP,
//! RFC 3264 and RFC 4975 §8): sans-I/O, one per core, in the quinn-proto shape of the
//! other engines (`handle_*(now, ..)` in; `poll_action()`, `poll_event()` and
//! `poll_timeout()` out).
//!
//! # What it owns
//! - Sessions, by session id: `u` + 4 hex digits of the owning core + 16 hex digits from
//!   the caller's CSPRNG ([`SessionKey`]), the session-id part of the MSRP URI we put in
//!   `a=path` (RFC 4975 §6, §8.2). The server routes every MSRP frame whose first To-Path
//!   URI carries such an id to this engine ([`is_session_id`]).
//! - The SIP side of each session: the INVITE server transaction it answered, the
//!   dialog (RFC 3261 §12), the ACK that makes it live, BYE. The SIP stack
//!   ([`crate::sip`]) carries it; this engine is the transaction user of the INVITEs its
//!   rules take and of requests inside its dialogs. It is lent the transaction table
//!   for each call, so every answer goes out through a server transaction.
//! - The MSRP side: the connection a session is bound to (as the answerer we are the
//!   passive side and the peer's first SEND binds it, RFC 4975 §5.4), reassembly of
//!   what arrives ([`super::reassembly`]), responses and REPORTs ([`super::report`]),
//!   and the SENDs of the messages the operator sends, with their transactions.
//!
//! - Originating ([`Ua::originate`]): our offer (RFC 3264 §5, `a=setup:actpass`,
//!   RFC 6135 §4.2.2, and `a=msrp-cema`, RFC 6714) in an INVITE the SIP layer's
//!   outbound side sends ([`Ua::poll_sip`]); its final response comes back through
//!   [`Ua::handle_invite_response`] or [`Ua::handle_invite_failed`]: a 2xx is ACKed
//!   (every retransmission of it too, RFC 3261 §13.2.2.4), a 2xx of a second fork is
//!   ACKed and ended with BYE, anything else fails the session.
//! - Connecting out: whichever side `a=setup` makes active connects (RFC 4975 §5.4,
//!   RFC 6135), to the first `a=path` URI or under CEMA to the `c=`/`m=` address
//!   (RFC 6714 §4.2). The engine asks with [`Ua::poll_connect`]; the server gives the
//!   connection an id ([`Ua::handle_connecting`]) and the engine binds it with an empty
//!   SEND (RFC 4975 §5.4) queued before the connection is up.
//!
//! - A relay (RFC 4976, [`Config::relay`]): one connection per core to it, opened
//!   when a session first needs it and AUTHed with digest
//!   ([`super::relay_client`]); every session then goes through it, sharing that
//!   connection. Our `a=path` is the Use-Path reversed then our session URI, the
//!   To-Path of what we send the Use-Path then the peer's `a=path` (§5.1), and our
//!   `c=` the relay's host (RFC 6714 §4.2). An INVITE that comes while the AUTH is
//!   under way is answered when it ends (503 if it fails); so is a session we start.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use rand::RngCore;

use crate::codec::{ByteRange, FailureReport, Flag, Head, RawHead, SuccessReport, encode};
use crate::conn::{Action, CloseReason, ConnId, Origin, Part};
use crate::sdp;
use crate::sip::dialog::{Dialog, DialogId};
use crate::sip::txn::{Transactions, TxId};
use crate::sip::write::response_to;
use crate::sip::{HeaderName, Message as SipMessage, Method as SipMethod, ids};

use super::reassembly::{self, Reassembler, Rendered};
use super::report;

/// How long a SEND we sent waits for its response before the message counts as failed
/// (RFC 4975 §7.1.1: 30 s is a reasonable value).
pub const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(30);

/// How many of a session's sent Message-IDs are kept for their REPORTs.
pub const SENT_IDS: usize = 256;

/// A session id made by this engine: owning core and a random key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionKey {
    pub core: u16,
    pub key: u64,
}

impl SessionKey {
    /// The session-id text: 21 characters, all `unreserved` (RFC 4975 §9).
    pub fn encode(&self) -> String {
        format!("u{:04x}{:016x}", self.core, self.key)
    }
    /// Parses an id made by [`SessionKey::encode`]; anything else is `None`.
    pub fn decode(sid: &str) -> Option<SessionKey> {
        let b = sid.as_bytes();
        if b.len() != 21
            || b[0] != b'u'
            || !b[1..]
                .iter()
                .all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
        {
            return None;
        }
        Some(SessionKey {
            core: u16::from_str_radix(sid.get(1..5)?, 16).ok()?,
            key: u64::from_str_radix(sid.get(5..)?, 16).ok()?,
        })
    }
}

/// Whether `sid` (the session-id part of a To-Path URI) is a user agent's.
pub fn is_session_id(sid: &str) -> bool {
    SessionKey::decode(sid).is_some()
}

/// Which INVITEs the user agent answers, and with what. The first rule that matches
/// wins; a missing pattern matches anything.
#[derive(Debug, Clone)]
pub struct Rule {
    pub ruri: Option<regex::Regex>,
    pub from: Option<regex::Regex>,
    pub to: Option<regex::Regex>,
    /// What we accept (`a=accept-types`, RFC 4975 §8.6).
    pub accept_types: Vec<String>,
    /// What we accept only inside a wrapper (`a=accept-wrapped-types`).
    pub accept_wrapped_types: Vec<String>,
}

impl Rule {
    /// A rule taking every INVITE with `accept_types`.
    pub fn any(accept_types: &[&str]) -> Rule {
        Rule {
            ruri: None,
            from: None,
            to: None,
            accept_types: accept_types.iter().map(|s| s.to_string()).collect(),
            accept_wrapped_types: Vec::new(),
        }
    }
    fn matches(&self, req: &SipMessage) -> bool {
        let m = |re: &Option<regex::Regex>, v: Option<&str>| {
            re.as_ref()
                .is_none_or(|re| v.is_some_and(|v| re.is_match(v)))
        };
        m(&self.ruri, Some(req.request_uri()))
            && m(&self.from, req.get(HeaderName::From))
            && m(&self.to, req.get(HeaderName::To))
    }
}

/// The engine's configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub core: u16,
    pub rules: Vec<Rule>,
    /// The host and port of our MSRP URIs and of the SDP `c=` line.
    pub host: String,
    pub port: u16,
    /// Our SIP Contact URI (`sip:msrpd@host:port`).
    pub contact: String,
    pub limits: reassembly::Limits,
    /// Sessions end this long after they start (`None`: never; default 12 h).
    pub max_duration: Option<Duration>,
    /// A session whose peer has not bound a connection this long after the ACK ends.
    pub connect_timeout: Duration,
    /// Sessions at once on this core; an INVITE beyond gets 486.
    pub max_sessions: usize,
    /// The relay every session goes through, if any.
    pub relay: Option<RelayConfig>,
}

/// The relay the user agent uses (RFC 4976), and its digest credentials.
#[derive(Clone)]
pub struct RelayConfig {
    /// `msrp://host:port;tcp` or `msrps://...`.
    pub uri: String,
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for RelayConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayConfig")
            .field("uri", &self.uri)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl Config {
    pub fn new(core: u16, host: &str, port: u16) -> Config {
        Config {
            core,
            rules: Vec::new(),
            host: host.to_string(),
            port,
            contact: format!("sip:msrpd@{host}:{port}"),
            limits: reassembly::Limits::default(),
            max_duration: Some(Duration::from_secs(12 * 3600)),
            connect_timeout: Duration::from_secs(30),
            max_sessions: 10_000,
            relay: None,
        }
    }
}

/// What the operator hears: the `ua.*` events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UaEvent {
    /// The ACK came: the session is up.
    SessionNew {
        session: String,
        from: String,
        to: String,
        ruri: String,
        peer_accept_types: Vec<String>,
    },
    /// The session never came up (cancelled, 2xx never ACKed).
    SessionFailed {
        session: String,
        code: u16,
        reason: String,
    },
    /// The session ended: `by` is `local` or `remote`.
    SessionEnd {
        session: String,
        by: &'static str,
        why: &'static str,
    },
    /// A whole message arrived.
    MessageReceived {
        session: String,
        message_id: String,
        content_type: String,
        body: Rendered,
        /// For `message/cpim` (RFC 3862) that parses: its headers and inner message.
        cpim: Option<CpimInfo>,
    },
    /// What became of a message we sent: a REPORT, an error response, or a local
    /// timeout (`source` says which).
    ReportReceived {
        session: String,
        message_id: String,
        status: u16,
        range: Option<ByteRange>,
        source: &'static str,
    },
}

/// What a `message/cpim` message says (RFC 3862 §3), for the event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpimInfo {
    pub from: Option<String>,
    pub to: Option<String>,
    pub date_time: Option<String>,
    pub content_type: String,
    pub body: Rendered,
}

impl CpimInfo {
    fn of(body: &Bytes) -> Option<CpimInfo> {
        let c = super::cpim::parse(body, &super::cpim::Limits::default()).ok()?;
        Some(CpimInfo {
            from: c.from().map(str::to_string),
            to: c.to().map(str::to_string),
            date_time: c.date_time().map(str::to_string),
            content_type: c.content_type_raw.to_string(),
            body: reassembly::render(&c.content_type, &c.body),
        })
    }
}

/// Why a command was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UaError {
    #[error("no such session")]
    NoSession,
    #[error("the session has no MSRP connection yet")]
    NotConnected,
    #[error("the peer does not accept that content type")]
    NotAccepted,
    #[error("message larger than the peer's a=max-size or our limit")]
    TooLarge,
    #[error("too many bytes sent in this session are still unanswered")]
    Busy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Our INVITE is out, no final response yet.
    Calling,
    /// 200 sent, waiting for the ACK.
    Answered,
    /// ACKed.
    Up,
}

#[derive(Debug)]
struct Session {
    phase: Phase,
    /// `None` while calling: the dialog comes with the 2xx.
    dialog: Option<Dialog>,
    /// The INVITE server transaction we answered (answering side).
    invite: Option<TxId>,
    /// The originating side: our offer, the INVITE as built, and the ACK we sent (for
    /// the 2xx's retransmissions).
    offer: Option<Box<Offering>>,
    from: String,
    to: String,
    ruri: String,
    local_uri: String,
    /// Our SDP answer, for re-INVITEs.
    sdp: Bytes,
    peer: sdp::Session,
    local: sdp::Local,
    conn: Option<ConnId>,
    /// The To-Path of what we send: the relay's Use-Path, then the peer's path.
    to_path: String,
    /// Through our relay: its connection is ours, shared, never closed for one session.
    via_relay: bool,
    rx: Reassembler,
    /// `rx`'s deadline as entered in [`Ua::rx_due`].
    rx_at: Option<Instant>,
    /// The Message-IDs of the last [`SENT_IDS`] messages we sent, for their REPORTs.
    sent_ids: VecDeque<String>,
    /// This session's entries in [`Ua::timers`].
    end_at: Option<Instant>,
    connect_at: Option<Instant>,
    started: Instant,
    msgs_in: u64,
    msgs_out: u64,
    bytes_in: u64,
    bytes_out: u64,
}

impl Session {
    /// A session's parts that do not depend on which side set it up; the caller
    /// fills in the rest (phase, dialog, transaction, parties, SDP).
    fn fresh(
        now: Instant,
        local_uri: String,
        local: sdp::Local,
        peer: sdp::Session,
        via_relay: bool,
        end_at: Option<Instant>,
        rx: Reassembler,
    ) -> Session {
        Session {
            phase: Phase::Calling,
            dialog: None,
            invite: None,
            offer: None,
            from: String::new(),
            to: String::new(),
            ruri: String::new(),
            local_uri,
            sdp: Bytes::new(),
            to_path: String::new(),
            via_relay,
            peer,
            local,
            conn: None,
            rx,
            rx_at: None,
            sent_ids: VecDeque::new(),
            end_at,
            connect_at: None,
            started: now,
            msgs_in: 0,
            msgs_out: 0,
            bytes_in: 0,
            bytes_out: 0,
        }
    }
}

/// What the originating side keeps until its INVITE is answered.
#[derive(Debug)]
struct Offering {
    offer: sdp::Offer,
    invite: SipMessage,
    ack: Option<SipMessage>,
    /// The operator ended the session before the answer: CANCEL sent.
    cancelled: bool,
}

/// A SEND of ours waiting for its response, by transaction id.
#[derive(Debug)]
struct Pending {
    session: String,
    message_id: String,
    range: ByteRange,
    deadline: Instant,
    /// Responses still owed: one per piece when the send queue interrupted the chunk
    /// (each piece is a transaction of its own, `TID.N`, RFC 4975 §7.1.1).
    owed: u32,
    /// `Failure-Report: partial`: only a failure is answered (§7.1.2), so silence until
    /// the deadline is success, not a timeout.
    partial: bool,
}

/// A SIP request the user agent wants sent, for the SIP layer's outbound side.
#[derive(Debug)]
pub enum UaSip {
    /// An in-dialog request (BYE) to its next hop (RFC 3261 §12.2.1.1).
    InDialog { msg: SipMessage, next_hop: String },
    /// The INVITE of session `session`, to the outbound proxy `proxy` if given (else
    /// the configured one, else the Request-URI's host).
    Invite {
        session: String,
        msg: SipMessage,
        proxy: Option<String>,
    },
    /// The ACK for the 2xx to `session`'s INVITE (§13.2.2.4).
    Ack { session: String, msg: SipMessage },
    /// CANCEL `session`'s INVITE (§9.1).
    Cancel { session: String },
}

/// Whom the server opens a connection for ([`Ua::poll_connect`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectFor {
    /// The peer of this session.
    Session(String),
    /// Our relay.
    Relay,
}

/// Our use of a relay.
struct RelayUse {
    client: super::relay_client::RelayClient<rand::rngs::StdRng>,
    endpoint: sdp::Endpoint,
    conn: Option<ConnId>,
    /// What waits for the AUTH to finish.
    waiting: VecDeque<Waiter>,
    /// Why the relay cannot be used now (the waiting fail with 503).
    down: Option<String>,
}

enum Waiter {
    Answer {
        id: TxId,
        req: SipMessage,
        rule: usize,
    },
    Offer {
        sid: String,
        o: Originate,
    },
}

/// What `POST /v1/ua/sessions` asks for.
#[derive(Debug, Clone)]
pub struct Originate {
    /// Our From (a SIP URI or name-addr); `None`: `sip:msrpd@<our host>`.
    pub from: Option<String>,
    pub to: String,
    pub ruri: String,
    /// What we accept; empty: `text/plain`.
    pub accept_types: Vec<String>,
    /// An outbound proxy for this INVITE instead of the configured one.
    pub proxy: Option<String>,
}

/// The frame being read on a connection, when it is a SEND of one of our sessions.
#[derive(Debug)]
struct Reading {
    session: String,
    head: RawHead,
    /// Refused at its head (a content type we do not take, RFC 4975 §7.3.1: 415): its
    /// body is not kept.
    refused: Option<u16>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    /// The peer has not bound a connection.
    Connect,
    /// The maximum duration.
    End,
}

/// One session as `GET /v1/ua/sessions` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    pub id: String,
    pub from: String,
    pub to: String,
    pub state: &'static str,
    /// Our MSRP URI in the session (the `a=path` of our SDP).
    pub local_path: String,
    pub peer_path: Vec<String>,
    pub msgs_in: u64,
    pub msgs_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub started: Instant,
}

/// The user agent of one core.
pub struct Ua {
    cfg: Config,
    /// Boxed: the map's spare capacity then costs a pointer per slot, not a session.
    sessions: HashMap<String, Box<Session>>,
    by_dialog: HashMap<DialogId, String>,
    by_invite: HashMap<TxId, String>,
    reading: HashMap<ConnId, Reading>,
    /// The session bound to each connection (one per connection in this cut).
    by_conn: HashMap<ConnId, String>,
    pending: HashMap<String, Pending>,
    /// The deadlines of `pending` and of the sessions' reassemblers, in order: the
    /// next deadline is found without a walk over every session.
    pending_due: BTreeSet<(Instant, String)>,
    rx_due: BTreeSet<(Instant, String)>,
    timers: BTreeSet<(Instant, Timer, String)>,
    actions: VecDeque<Action<()>>,
    events: VecDeque<UaEvent>,
    /// SIP requests to send.
    sip_out: VecDeque<UaSip>,
    /// Sessions whose side connects (or our relay), and where to.
    connects: VecDeque<(ConnectFor, sdp::Endpoint)>,
    relay: Option<RelayUse>,
    rng: Box<dyn RngCore>,
}

impl std::fmt::Debug for Ua {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ua")
            .field("core", &self.cfg.core)
            .field("sessions", &self.sessions.len())
            .finish_non_exhaustive()
    }
}

impl Ua {
    /// An engine with `cfg`; ids, tags and transaction ids come from `rng` (a CSPRNG).
    pub fn new(cfg: Config, mut rng: Box<dyn RngCore>) -> Ua {
        let relay = cfg.relay.as_ref().and_then(|r| {
            use rand::SeedableRng;
            let u = crate::codec::Uri::parse(&r.uri).ok()?;
            let endpoint = sdp::Endpoint {
                host: u
                    .host_str()
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_string(),
                port: u.port()?,
                tls: u.is_secure(),
            };
            let ours = SessionKey {
                core: cfg.core,
                key: rng.next_u64(),
            }
            .encode();
            let client = super::relay_client::RelayClient::new(
                super::relay_client::Config {
                    relay_uri: r.uri.clone(),
                    our_uri: format!("msrp://{}:{}/{ours};tcp", cfg.host, cfg.port),
                    username: r.username.clone(),
                    password: r.password.clone(),
                    expires: None,
                    algorithm: None,
                },
                rand::rngs::StdRng::from_rng(&mut rng),
            );
            Some(RelayUse {
                client,
                endpoint,
                conn: None,
                waiting: VecDeque::new(),
                down: None,
            })
        });
        Ua {
            relay,
            cfg,
            sessions: HashMap::new(),
            by_dialog: HashMap::new(),
            by_invite: HashMap::new(),
            reading: HashMap::new(),
            by_conn: HashMap::new(),
            pending: HashMap::new(),
            pending_due: BTreeSet::new(),
            rx_due: BTreeSet::new(),
            timers: BTreeSet::new(),
            actions: VecDeque::new(),
            events: VecDeque::new(),
            sip_out: VecDeque::new(),
            connects: VecDeque::new(),
            rng,
        }
    }

    pub fn len(&self) -> usize {
        self.sessions.len()
    }
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }
    pub fn poll_action(&mut self) -> Option<Action<()>> {
        self.actions.pop_front()
    }
    pub fn poll_event(&mut self) -> Option<UaEvent> {
        self.events.pop_front()
    }
    /// A SIP request to send through the outbound layer (which writes the Via).
    pub fn poll_sip(&mut self) -> Option<UaSip> {
        self.sip_out.pop_front()
    }

    /// A session whose side is active and where it connects: answer with
    /// [`Ua::handle_connecting`] (or [`Ua::handle_closed`] with the id when no
    /// connection can be had).
    pub fn poll_connect(&mut self) -> Option<(ConnectFor, sdp::Endpoint)> {
        self.connects.pop_front()
    }

    /// The earliest deadline: session timers, reassembly timeouts, our SENDs' responses.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let timers = self.timers.first().map(|(at, _, _)| *at);
        let pending = self.pending_due.first().map(|(at, _)| *at);
        let rx = self.rx_due.first().map(|(at, _)| *at);
        let relay = self.relay.as_ref().and_then(|r| r.client.poll_timeout());
        [timers, pending, rx, relay].into_iter().flatten().min()
    }

    /// Runs what is due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(r) = self.relay.as_mut()
            && r.client.poll_timeout().is_some_and(|t| t <= now)
        {
            r.client.handle_timeout(now);
            self.relay_flush(now);
        }
        while let Some((at, timer, sid)) = self.timers.first().cloned() {
            if at > now {
                break;
            }
            self.timers.pop_first();
            match timer {
                Timer::Connect => {
                    if self.sessions.get(&sid).is_some_and(|s| s.conn.is_none()) {
                        tracing::info!(session = %sid, "the peer never connected: session ends");
                        self.bye(&sid);
                        self.forget(now, &sid);
                        self.events.push_back(UaEvent::SessionFailed {
                            session: sid,
                            code: 408,
                            reason: "the peer never connected to our MSRP path".into(),
                        });
                    }
                }
                Timer::End => self.end(now, &sid, "local", "maximum duration"),
            }
        }
        while let Some((at, tid)) = self.pending_due.first().cloned() {
            if at > now {
                break;
            }
            self.pending_due.pop_first();
            if let Some(p) = self.pending.remove(&tid).filter(|p| !p.partial) {
                self.events.push_back(UaEvent::ReportReceived {
                    session: p.session,
                    message_id: p.message_id,
                    status: 408,
                    range: Some(p.range),
                    source: "timeout",
                });
            }
        }
        while let Some((at, sid)) = self.rx_due.first().cloned() {
            if at > now {
                break;
            }
            self.rx_due.pop_first();
            if let Some(s) = self.sessions.get_mut(&sid) {
                s.rx_at = None;
                s.rx.handle_timeout(now);
            }
            self.rx_touch(&sid);
        }
    }

    /// Enters session `sid`'s reassembly deadline anew after its reassembler changed.
    fn rx_touch(&mut self, sid: &str) {
        let Some(s) = self.sessions.get_mut(sid) else {
            return;
        };
        let due = s.rx.poll_timeout();
        if due == s.rx_at {
            return;
        }
        if let Some(old) = s.rx_at {
            self.rx_due.remove(&(old, sid.to_string()));
        }
        if let Some(at) = due {
            self.rx_due.insert((at, sid.to_string()));
        }
        s.rx_at = due;
    }

    /// The sessions, for the API.
    pub fn sessions(&self) -> Vec<SessionInfo> {
        let mut v: Vec<SessionInfo> = self
            .sessions
            .iter()
            .map(|(id, s)| SessionInfo {
                id: id.clone(),
                from: s.from.clone(),
                to: s.to.clone(),
                state: match (s.phase, s.conn) {
                    (Phase::Calling, _) => "calling",
                    (Phase::Answered, _) => "answered",
                    (Phase::Up, None) => "waiting_for_connection",
                    (Phase::Up, Some(_)) => "active",
                },
                local_path: s.local_uri.clone(),
                peer_path: s.peer.peer_path.clone(),
                msgs_in: s.msgs_in,
                msgs_out: s.msgs_out,
                bytes_in: s.bytes_in,
                bytes_out: s.bytes_out,
                started: s.started,
            })
            .collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }

    // ------------------------------------------------------------------ SIP side

    /// A new INVITE (server transaction `id`). `false` when it is not ours: no rule
    /// matches a dialog-creating one (the SIP layer answers it with its rejection). A
    /// re-INVITE of one of our dialogs is answered with the session's SDP unchanged
    /// (RFC 3264 §8: an offer that changes nothing); one of a dialog we do not know gets
    /// 481 (RFC 3261 §12.2.2).
    pub fn handle_invite(
        &mut self,
        now: Instant,
        txns: &mut Transactions,
        id: TxId,
        req: &SipMessage,
    ) -> bool {
        if req.to_tag().is_some() {
            let sid =
                DialogId::of_incoming_request(req).and_then(|d| self.by_dialog.get(&d).cloned());
            let contact = self.cfg.contact.clone();
            match sid.as_ref().and_then(|s| self.sessions.get_mut(s)) {
                Some(s) if s.dialog.is_some() => match check(s, req) {
                    Ok(()) => {
                        let body = s.sdp.clone();
                        respond(now, txns, id, req, 200, None, Some((&contact, &body)));
                    }
                    Err(e) => {
                        respond(now, txns, id, req, e.status(), None, None);
                    }
                },
                _ => {
                    respond(now, txns, id, req, 481, None, None);
                }
            }
            return true;
        }
        let Some(rule) = self.cfg.rules.iter().position(|r| r.matches(req)) else {
            return false;
        };
        // RFC 3261 §8.2.3: a body we do not understand gets 415 with what we take; an
        // INVITE without an offer would need ours in the 2xx, which we do not make.
        let ct = req.get(HeaderName::ContentType).unwrap_or("");
        let ct = ct.split(';').next().unwrap_or("").trim();
        if !req.body_bytes().is_empty() && !ct.eq_ignore_ascii_case("application/sdp") {
            let mut w = response_to(req, 415, None, None);
            w.header("Accept", "application/sdp");
            if let Ok(m) = w.into_message()
                && let Err(e) = txns.respond(now, id, m)
            {
                tracing::debug!(error = %e, "415 not sent");
            }
            return true;
        }
        if req.body_bytes().is_empty() {
            respond_because(
                now,
                txns,
                id,
                req,
                488,
                "no SDP offer (msrpd answers offers, it does not make them in a 2xx)",
            );
            return true;
        }
        if self.sessions.len() >= self.cfg.max_sessions {
            tracing::warn!(
                core = self.cfg.core,
                max = self.cfg.max_sessions,
                "user agent at its session limit: INVITE answered 486"
            );
            respond(now, txns, id, req, 486, None, None);
            return true;
        }
        if let Some(r) = self.relay.as_mut()
            && r.client.use_path().is_none()
        {
            // Our path needs the relay's Use-Path: answered when the AUTH ends.
            r.waiting.push_back(Waiter::Answer {
                id,
                req: req.clone(),
                rule,
            });
            self.relay_start(now);
            return true;
        }
        self.answer_new(now, txns, id, req, rule);
        true
    }

    /// Our path (RFC 4975 §8.2; through the relay, RFC 4976 §5.1: its Use-Path
    /// reversed, then our URI) and the address of our `c=` line (the relay's under
    /// RFC 6714 §4.2).
    fn local_path(&self, local_uri: &str) -> (Vec<String>, String, bool) {
        match self
            .relay
            .as_ref()
            .and_then(|r| Some((r, r.client.use_path()?)))
        {
            Some((r, up)) => {
                let mut p: Vec<String> = up.iter().rev().cloned().collect();
                p.push(local_uri.to_string());
                (p, r.endpoint.host.clone(), true)
            }
            None => (vec![local_uri.to_string()], self.cfg.host.clone(), false),
        }
    }

    /// Answers a dialog-creating INVITE that rule `rule` took (RFC 3264 §6).
    fn answer_new(
        &mut self,
        now: Instant,
        txns: &mut Transactions,
        id: TxId,
        req: &SipMessage,
        rule: usize,
    ) {
        let Some(rule) = self.cfg.rules.get(rule) else {
            return;
        };
        let sid = SessionKey {
            core: self.cfg.core,
            key: self.rng.next_u64(),
        }
        .encode();
        let local_uri = format!("msrp://{}:{}/{sid};tcp", self.cfg.host, self.cfg.port);
        let accept: Vec<&str> = rule.accept_types.iter().map(String::as_str).collect();
        let mut local = sdp::Local::new(&local_uri, &self.cfg.host, &accept);
        local.accept_wrapped_types = rule.accept_wrapped_types.clone();
        let (path, address, via_relay) = self.local_path(&local_uri);
        local.path = path;
        local.address = address;
        local.max_size = Some(self.cfg.limits.max_message);
        local.cema = true;
        let a = match sdp::answer(req.body_bytes(), &local) {
            Ok(a) => a,
            Err(e) => {
                tracing::info!(error = %e, status = e.status(), call_id = req.call_id().unwrap_or(""), "INVITE offer refused");
                respond_because(now, txns, id, req, e.status(), e.reason());
                return;
            }
        };
        let tag = ids::tag(self.cfg.core, &mut *self.rng);
        let contact = self.cfg.contact.clone();
        if respond(
            now,
            txns,
            id,
            req,
            200,
            Some(&tag),
            Some((&contact, &a.sdp)),
        )
        .is_none()
        {
            return;
        }
        let Ok(dialog) = Dialog::uas(req, 200, &tag, false) else {
            return;
        };
        self.by_dialog.insert(dialog.id.clone(), sid.clone());
        self.by_invite.insert(id, sid.clone());
        let rx = Reassembler::new(self.cfg.limits, Some(self.cfg.limits.max_message));
        let end_at = self.cfg.max_duration.map(|d| now + d);
        if let Some(at) = end_at {
            self.timers.insert((at, Timer::End, sid.clone()));
        }
        tracing::info!(session = %sid, from = req.get(HeaderName::From).unwrap_or(""), ruri = req.request_uri(), via_relay, "INVITE answered: user agent session");
        self.sessions.insert(
            sid,
            Box::new(Session {
                phase: Phase::Answered,
                dialog: Some(dialog),
                invite: Some(id),
                offer: None,
                from: req.get(HeaderName::From).unwrap_or("").to_string(),
                to: req.get(HeaderName::To).unwrap_or("").to_string(),
                ruri: req.request_uri().to_string(),
                sdp: a.sdp.clone(),
                ..Session::fresh(now, local_uri, local, a.session, via_relay, end_at, rx)
            }),
        );
    }

    /// What waited for the relay's AUTH, once it has ended: INVITEs answered (503 when
    /// the relay could not be used), INVITEs of ours sent or failed. The SIP layer
    /// calls this with its transaction table after every turn.
    pub fn answer_deferred(&mut self, now: Instant, txns: &mut Transactions) {
        let Some(r) = self.relay.as_mut() else {
            return;
        };
        if r.waiting.is_empty() {
            return;
        }
        let down = r.down.take();
        if down.is_none() && r.client.use_path().is_none() {
            return;
        }
        let waiting = std::mem::take(&mut r.waiting);
        for w in waiting {
            match (w, &down) {
                (Waiter::Answer { id, req, rule }, None) => {
                    self.answer_new(now, txns, id, &req, rule)
                }
                (Waiter::Answer { id, req, .. }, Some(why)) => {
                    respond_because(now, txns, id, &req, 503, &format!("MSRP relay: {why}"))
                }
                (Waiter::Offer { sid, o }, None) => {
                    if let Err(e) = self.start_invite(now, sid.clone(), o) {
                        self.events.push_back(UaEvent::SessionFailed {
                            session: sid,
                            code: 400,
                            reason: e,
                        });
                    }
                }
                (Waiter::Offer { sid, .. }, Some(why)) => {
                    self.events.push_back(UaEvent::SessionFailed {
                        session: sid,
                        code: 503,
                        reason: format!("MSRP relay: {why}"),
                    })
                }
            }
        }
    }

    /// Opens the relay connection if there is none (the AUTH starts once it is given
    /// an id, [`Ua::handle_connecting`]).
    fn relay_start(&mut self, _now: Instant) {
        if let Some(r) = self.relay.as_mut()
            && r.conn.is_none()
            && !self.connects.iter().any(|(f, _)| *f == ConnectFor::Relay)
        {
            tracing::info!(host = %r.endpoint.host, port = r.endpoint.port, "connecting to the user agent's MSRP relay");
            self.connects
                .push_back((ConnectFor::Relay, r.endpoint.clone()));
        }
    }

    /// Writes what the relay client has to send and takes in what it says.
    fn relay_flush(&mut self, now: Instant) {
        use super::relay_client::RelayEvent;
        let Some(r) = self.relay.as_mut() else {
            return;
        };
        let mut close = None;
        if let Some(conn) = r.conn {
            while let Some(b) = r.client.poll_transmit() {
                self.actions.push_back(Action::Write {
                    conn,
                    bytes: b,
                    part: Part::Whole,
                });
            }
        }
        while let Some(e) = r.client.poll_event() {
            match e {
                RelayEvent::Ready { use_path, expires } => {
                    tracing::info!(use_path = %use_path.join(" "), expires_s = expires.map(|d| d.as_secs()), "MSRP relay AUTH done")
                }
                RelayEvent::Refreshed { .. } => tracing::debug!("MSRP relay AUTH refreshed"),
                RelayEvent::Expired => {
                    tracing::warn!("MSRP relay grant expired before its refresh was answered")
                }
                RelayEvent::Failed { status, reason } => {
                    tracing::warn!(status, %reason, "MSRP relay AUTH failed");
                    r.down = Some(format!("AUTH failed: {status} {reason}"));
                    close = r.conn;
                }
            }
        }
        if let Some(conn) = close {
            self.actions.push_back(Action::Close {
                conn,
                reason: CloseReason::PeerClosed,
            });
        }
        let _ = now;
    }

    /// An ACK for our 2xx (RFC 3261 §13.3.1.4): the session is up.
    pub fn handle_ack(&mut self, now: Instant, req: &SipMessage) {
        let Some(sid) = self.dialog_of(req) else {
            return;
        };
        let Some(s) = self.sessions.get_mut(&sid) else {
            return;
        };
        if s.phase != Phase::Answered {
            return;
        }
        s.phase = Phase::Up;
        if let Some(d) = s.dialog.as_mut() {
            d.confirm();
        }
        if let Some(i) = s.invite {
            self.by_invite.remove(&i);
        }
        self.session_up(now, &sid);
    }

    /// The session is up (ACK sent or received): the event, and the connection made by
    /// whichever side is active (RFC 6135 §4.2.2), within the connect timeout.
    fn session_up(&mut self, now: Instant, sid: &str) {
        let relay = self
            .relay
            .as_ref()
            .and_then(|r| Some((r.conn?, r.client.use_path()?.to_vec())));
        let Some(s) = self.sessions.get_mut(sid) else {
            return;
        };
        s.to_path = s.peer.peer_path.join(" ");
        match relay.filter(|_| s.via_relay) {
            Some((conn, use_path)) => {
                // Through our relay (RFC 4976 §5.1): the To-Path starts with its
                // Use-Path, and its connection carries the session. The active side's
                // first SEND opens the way (RFC 4975 §5.4).
                s.to_path = format!("{} {}", use_path.join(" "), s.to_path);
                s.conn = Some(conn);
                if s.peer.active {
                    self.bind(sid, conn);
                }
            }
            None if s.conn.is_none() => {
                let at = now + self.cfg.connect_timeout;
                s.connect_at = Some(at);
                self.timers.insert((at, Timer::Connect, sid.to_string()));
                if let Some(ep) = s.peer.connect_to.clone().filter(|_| s.peer.active) {
                    tracing::info!(session = %sid, host = %ep.host, port = ep.port, tls = ep.tls, "connecting to the peer's MSRP path");
                    self.connects
                        .push_back((ConnectFor::Session(sid.to_string()), ep));
                }
            }
            None => {}
        }
        let Some(s) = self.sessions.get(sid) else {
            return;
        };
        self.events.push_back(UaEvent::SessionNew {
            session: sid.to_string(),
            from: s.from.clone(),
            to: s.to.clone(),
            ruri: s.ruri.clone(),
            peer_accept_types: s.peer.peer_accept_types.clone(),
        });
    }

    /// A request other than INVITE and ACK: `false` when it is not inside one of our
    /// dialogs. BYE ends the session (RFC 3261 §15.1.2); anything else is answered 405.
    pub fn handle_in_dialog(
        &mut self,
        now: Instant,
        txns: &mut Transactions,
        id: TxId,
        req: &SipMessage,
    ) -> bool {
        let Some(sid) = self.dialog_of(req) else {
            return false;
        };
        let Some(s) = self.sessions.get_mut(&sid) else {
            return false;
        };
        if let Err(e) = check(s, req) {
            respond(now, txns, id, req, e.status(), None, None);
            return true;
        }
        if req.method() == Some(SipMethod::Bye) {
            respond(now, txns, id, req, 200, None, None);
            self.end(now, &sid, "remote", "bye");
        } else {
            respond(now, txns, id, req, 405, None, None);
        }
        true
    }

    /// INVITE server transaction `invite` ended before its session came up: cancelled
    /// (487, RFC 3261 §9.2) or its 2xx never ACKed (timer L, RFC 6026).
    pub fn handle_invite_gone(&mut self, now: Instant, invite: TxId, code: u16, reason: &str) {
        let Some(sid) = self.by_invite.remove(&invite) else {
            return;
        };
        if self
            .sessions
            .get(&sid)
            .is_some_and(|s| s.phase == Phase::Answered)
        {
            // A peer may have bound its connection before its ACK (or instead of it).
            if let Some(conn) = self.forget(now, &sid) {
                self.actions.push_back(Action::Close {
                    conn,
                    reason: CloseReason::PeerClosed,
                });
            }
            self.events.push_back(UaEvent::SessionFailed {
                session: sid,
                code,
                reason: reason.to_string(),
            });
        }
    }

    fn dialog_of(&self, req: &SipMessage) -> Option<String> {
        DialogId::of_incoming_request(req).and_then(|d| self.by_dialog.get(&d).cloned())
    }

    // ----------------------------------------------------------------- MSRP side

    /// The connection is gone: the sessions bound to it end (RFC 4975 §5.4: the session
    /// has no other connection), and a chunk it was carrying is abandoned.
    pub fn handle_closed(&mut self, now: Instant, conn: ConnId) {
        self.reading.remove(&conn);
        if let Some(r) = self.relay.as_mut()
            && r.conn == Some(conn)
        {
            tracing::warn!("the user agent's MSRP relay connection closed: its sessions end");
            r.conn = None;
            r.client.handle_closed(now);
            if !r.waiting.is_empty() {
                r.down = Some("connection to the relay lost or not made".into());
            }
            let gone: Vec<String> = self
                .sessions
                .iter()
                .filter(|(_, s)| s.conn == Some(conn))
                .map(|(k, _)| k.clone())
                .collect();
            for sid in gone {
                if let Some(s) = self.sessions.get_mut(&sid) {
                    s.conn = None;
                    s.rx.abandon(now);
                }
                self.bye(&sid);
                self.end(now, &sid, "remote", "msrp relay connection closed");
            }
            return;
        }
        if let Some(sid) = self.by_conn.remove(&conn) {
            if let Some(s) = self.sessions.get_mut(&sid) {
                s.conn = None;
                s.rx.abandon(now);
            }
            // The session has no other connection (RFC 4975 §5.4): the dialog ends too.
            self.bye(&sid);
            self.end(now, &sid, "remote", "msrp connection closed");
        }
    }

    /// Whether `conn` carries one of our sessions (or a frame for one).
    pub fn knows_conn(&self, conn: ConnId) -> bool {
        self.by_conn.contains_key(&conn)
            || self.reading.contains_key(&conn)
            || self.relay.as_ref().is_some_and(|r| r.conn == Some(conn))
    }

    /// No connection could be had for session `sid` (asked by [`Ua::poll_connect`]):
    /// it ends as if its connection had failed.
    pub fn handle_connect_failed(&mut self, now: Instant, what: &ConnectFor) {
        let ConnectFor::Session(sid) = what else {
            if let Some(r) = self.relay.as_mut() {
                r.down = Some("no connection slot for the relay".into());
            }
            return;
        };
        if self.sessions.contains_key(sid) {
            self.end(now, sid, "local", "no msrp connection");
        }
    }

    /// A frame's head on `conn`, whose first To-Path URI names one of our session ids
    /// (or looks like one).
    pub fn handle_head(&mut self, now: Instant, conn: ConnId, raw: RawHead) {
        self.reading.remove(&conn);
        let Ok(head) = raw.parse() else {
            if raw.is_request() {
                let mut b = BytesMut::new();
                encode::response(
                    &mut b,
                    std::str::from_utf8(raw.tid()).unwrap_or("-"),
                    400,
                    Some(encode::reason(400)),
                    "",
                    "",
                    &[],
                );
                self.write(conn, b.freeze());
            }
            return;
        };
        if let Some(r) = self.relay.as_mut()
            && r.conn == Some(conn)
            && head.status_code().is_some()
            && r.client.handle_response(now, &head)
        {
            self.relay_flush(now);
            return;
        }
        let first = head.to_path().first();
        let sid = first
            .session_id()
            .filter(|s| self.sessions.contains_key(*s))
            .map(str::to_string);
        let Some(sid) = sid else {
            // RFC 4975 §7.3.1: a request for a session we do not know gets 481
            // (REPORTs are never answered, §7.1.2; nor is a SEND with
            // Failure-Report: no, §7.1.4).
            if head.is_request()
                && !is_report(&head)
                && !(raw.is_send() && head.failure_report() == FailureReport::No)
            {
                self.respond_msrp(conn, &head, 481, first.as_str());
            }
            return;
        };
        if let Some(code) = head.status_code() {
            self.handle_response(head.tid(), code);
            return;
        }
        let Some(s) = self.sessions.get_mut(&sid) else {
            return;
        };
        match s.conn {
            None => {
                // The passive side: the peer's first request binds the connection
                // (RFC 4975 §5.4).
                tracing::info!(session = %sid, "MSRP connection bound");
                s.conn = Some(conn);
                if self.relay.as_ref().is_none_or(|r| r.conn != Some(conn)) {
                    self.by_conn.insert(conn, sid.clone());
                }
            }
            Some(c) if c != conn => {
                let uri = s.local_uri.clone();
                self.respond_msrp(conn, &head, 403, &uri);
                return;
            }
            Some(_) => {}
        }
        if is_report(&head) {
            // RFC 4975 §7.1.2: a REPORT for a message we did not send is ignored.
            let mid = head.message_id().unwrap_or("");
            if !s.sent_ids.iter().any(|m| m == mid) {
                tracing::debug!(session = %sid, message_id = mid, "REPORT for a message we did not send: ignored");
                return;
            }
            self.events.push_back(UaEvent::ReportReceived {
                session: sid,
                message_id: head.message_id().unwrap_or("").to_string(),
                status: head.status().map_or(0, |st| st.code),
                range: head.byte_range(),
                source: "report",
            });
            return;
        }
        if !raw.is_send() {
            let uri = s.local_uri.clone();
            self.respond_msrp(conn, &head, 501, &uri);
            return;
        }
        // A type we do not take is refused at the head: nothing of it is kept.
        let refused = (raw.has_body()
            && !head
                .get("Content-Type")
                .and_then(|v| std::str::from_utf8(v).ok())
                .is_some_and(|ct| sdp::accepts(&s.local.accept_types, ct.trim())))
        .then_some(415);
        if refused.is_none() {
            let _ = s.rx.begin(now, &head, raw.has_body());
        } else if let Some(id) = head.message_id() {
            s.rx.forget(id);
        }
        self.rx_touch(&sid);
        self.reading.insert(
            conn,
            Reading {
                session: sid,
                head: raw,
                refused,
            },
        );
    }

    /// A piece of the body of the frame being read on `conn`.
    pub fn handle_body(&mut self, conn: ConnId, bytes: Bytes) {
        let Some(r) = self.reading.get(&conn).filter(|r| r.refused.is_none()) else {
            return;
        };
        if let Some(s) = self.sessions.get_mut(&r.session) {
            s.bytes_in += bytes.len() as u64;
            let _ = s.rx.body(bytes);
            let sid = r.session.clone();
            self.rx_touch(&sid);
        }
    }

    /// The end-line of the frame being read on `conn`: the SEND is answered, and a
    /// message it completed is checked against what we accept (415, RFC 4975 §7.3.1),
    /// raised as an event and reported on as asked (§7.1.2).
    pub fn handle_end(&mut self, now: Instant, conn: ConnId, flag: Flag) {
        let Some(r) = self.reading.remove(&conn) else {
            return;
        };
        let Some(s) = self.sessions.get_mut(&r.session) else {
            return;
        };
        let Ok(head) = r.head.parse() else {
            return;
        };
        if let Some(code) = r.refused {
            if report::responds(head.failure_report(), code) {
                let mut out = BytesMut::new();
                report::write_response(&mut out, &head, code, &s.local_uri);
                self.write(conn, out.freeze());
            }
            return;
        }
        let chunk = s.rx.end(now, flag);
        self.rx_touch(&r.session);
        let Some(s) = self.sessions.get_mut(&r.session) else {
            return;
        };
        let Some(chunk) = chunk else {
            return;
        };
        let mut status = chunk.status;
        // A completed message: its bytes once, and what a message/cpim wraps.
        let whole = chunk.message.as_ref().map(|m| {
            let bytes = m.body.to_bytes();
            let cpim = m
                .content_type()
                .filter(|ct| {
                    ct.media_type.eq_ignore_ascii_case("message")
                        && ct.subtype.eq_ignore_ascii_case("cpim")
                })
                .and_then(|_| CpimInfo::of(&bytes));
            (bytes, cpim)
        });
        if let (Some(m), Some((_, cpim))) = (&chunk.message, &whole)
            && status == 200
            && !accepts_received(&s.local, &m.content_type, cpim.as_ref())
        {
            status = 415;
        }
        let plan = report::plan(&chunk, status);
        let mut out = BytesMut::new();
        if let Some(code) = plan.response {
            report::write_response(&mut out, &head, code, &s.local_uri);
        }
        if let (Some(rep), Some(m)) = (plan.report, &chunk.message) {
            let tid = tid(&mut *self.rng);
            report::write_report(
                &mut out,
                &tid,
                head.from_path().as_str(),
                &s.local_uri,
                &m.message_id,
                &rep,
            );
        }
        if let (Some(m), Some((bytes, cpim))) = (chunk.message.filter(|_| status == 200), whole) {
            s.msgs_in += 1;
            let body = match m.content_type() {
                Some(ct) => reassembly::render(&ct, &bytes),
                None => Rendered::Base64(String::new()),
            };
            self.events.push_back(UaEvent::MessageReceived {
                session: r.session.clone(),
                message_id: m.message_id.clone(),
                content_type: m.content_type.clone(),
                body,
                cpim,
            });
        }
        if !out.is_empty() {
            self.write(conn, out.freeze());
        }
    }

    fn handle_response(&mut self, tid: &str, code: u16) {
        // An interrupted chunk's pieces come back as `tid.N` (crate::conn::queue).
        let base = tid.split_once('.').map_or(tid, |(b, _)| b);
        let Some(p) = self.pending.get_mut(base) else {
            return;
        };
        if code == 200 && p.owed > 1 {
            p.owed -= 1;
            return;
        }
        let Some(p) = self.pending.remove(base) else {
            return;
        };
        self.pending_due.remove(&(p.deadline, base.to_string()));
        if code != 200 {
            self.events.push_back(UaEvent::ReportReceived {
                session: p.session,
                message_id: p.message_id,
                status: code,
                range: Some(p.range),
                source: "response",
            });
        }
    }

    /// The send queue of `conn` interrupted the chunk with transaction id `tid`: its
    /// rest goes as another piece, owing one more response (RFC 4975 §7.1.1).
    pub fn handle_rechunked(&mut self, conn: ConnId, tid: &[u8]) {
        let Ok(t) = std::str::from_utf8(tid) else {
            return;
        };
        let base = t.split_once('.').map_or(t, |(b, _)| b);
        if let Some(p) = self.pending.get_mut(base)
            && self
                .sessions
                .get(&p.session)
                .is_some_and(|s| s.conn == Some(conn))
        {
            p.owed += 1;
        }
    }

    /// The connection the server opens for `sid` (asked by [`Ua::poll_connect`]): the
    /// session is bound to it and our empty SEND goes first (RFC 4975 §5.4: the active
    /// side sends at once, so the passive side can match the connection).
    pub fn handle_connecting(&mut self, now: Instant, what: &ConnectFor, conn: ConnId) {
        let sid = match what {
            ConnectFor::Relay => {
                if let Some(r) = self.relay.as_mut() {
                    r.conn = Some(conn);
                    r.client.start(now);
                }
                self.relay_flush(now);
                return;
            }
            ConnectFor::Session(sid) => sid.as_str(),
        };
        if !self.sessions.contains_key(sid) {
            self.actions.push_back(Action::Close {
                conn,
                reason: CloseReason::PeerClosed,
            });
            return;
        };
        if let Some(s) = self.sessions.get_mut(sid) {
            s.conn = Some(conn);
        }
        self.by_conn.insert(conn, sid.to_string());
        self.bind(sid, conn);
    }

    /// Our first SEND in session `sid` on `conn`, empty (RFC 4975 §5.4).
    fn bind(&mut self, sid: &str, conn: ConnId) {
        let Some(s) = self.sessions.get(sid) else {
            return;
        };
        let t = tid(&mut *self.rng);
        let mid = tid(&mut *self.rng);
        let mut b = BytesMut::with_capacity(256);
        encode::start_request(&mut b, &t, "SEND");
        encode::header(&mut b, "To-Path", s.to_path.as_bytes());
        encode::header(&mut b, "From-Path", s.local_uri.as_bytes());
        encode::header(&mut b, "Message-ID", mid.as_bytes());
        // No body: the end-line follows the header block directly (RFC 4975 §7.1.1).
        encode::end_line(&mut b, &t, Flag::Complete);
        self.write(conn, b.freeze());
    }

    // ------------------------------------------------------------------- commands

    /// Starts a session (RFC 3261 §13.2.1 with our SDP offer, RFC 3264 §5): the
    /// INVITE goes out through the SIP layer; the session's fate comes as
    /// `ua.session.new` (the 2xx ACKed) or `ua.session.failed`. Returns its id.
    pub fn originate(&mut self, now: Instant, o: Originate) -> Result<String, String> {
        self.check_originate(&o)?;
        let sid = SessionKey {
            core: self.cfg.core,
            key: self.rng.next_u64(),
        }
        .encode();
        if let Some(r) = self.relay.as_mut()
            && r.client.use_path().is_none()
        {
            // Our offer's path needs the relay's Use-Path: the INVITE waits for the AUTH.
            r.waiting.push_back(Waiter::Offer {
                sid: sid.clone(),
                o,
            });
            self.relay_start(now);
            return Ok(sid);
        }
        self.start_invite(now, sid.clone(), o)?;
        Ok(sid)
    }

    /// Checks what `POST /v1/ua/sessions` asks for; our From and the To as written.
    fn check_originate(&self, o: &Originate) -> Result<(String, String), String> {
        if self.sessions.len() >= self.cfg.max_sessions {
            return Err(format!(
                "at the limit of {} sessions on this core",
                self.cfg.max_sessions
            ));
        }
        crate::sip::outbound::check_uri(&o.ruri).map_err(|e| format!("ruri: {e}"))?;
        let name_addr = |what: &str, v: &str| -> Result<String, String> {
            let v = v.trim();
            let bare = v.trim_start_matches('<').trim_end_matches('>');
            if v.contains(";tag=") || v.contains(['\r', '\n']) {
                return Err(format!("{what}: a URI without tag"));
            }
            crate::sip::header::Uri::parse(bare)
                .map_err(|_| format!("{what}: not a SIP URI: {v:?}"))?;
            Ok(if v.starts_with('<') || v.contains('<') {
                v.to_string()
            } else {
                format!("<{v}>")
            })
        };
        let to = name_addr("to", &o.to)?;
        let from = match &o.from {
            Some(f) => name_addr("from", f)?,
            None => format!("<sip:msrpd@{}>", self.cfg.host),
        };
        if let Some(p) = &o.proxy {
            crate::sip::outbound::check_uri(p).map_err(|e| format!("proxy: {e}"))?;
        }
        let accept: Vec<&str> = if o.accept_types.is_empty() {
            vec!["text/plain"]
        } else {
            o.accept_types.iter().map(String::as_str).collect()
        };
        if let Some(bad) = accept
            .iter()
            .find(|t| t.contains(' ') || sdp::FormatEntry::parse(t).is_none())
        {
            return Err(format!("accept_types: not a media type: {bad:?}"));
        }
        Ok((from, to))
    }

    /// Builds and queues session `sid`'s INVITE with our offer.
    fn start_invite(&mut self, now: Instant, sid: String, o: Originate) -> Result<(), String> {
        let (from, to) = self.check_originate(&o)?;
        let accept: Vec<&str> = if o.accept_types.is_empty() {
            vec!["text/plain"]
        } else {
            o.accept_types.iter().map(String::as_str).collect()
        };
        let local_uri = format!("msrp://{}:{}/{sid};tcp", self.cfg.host, self.cfg.port);
        let mut local = sdp::Local::new(&local_uri, &self.cfg.host, &accept);
        let (path, address, via_relay) = self.local_path(&local_uri);
        local.path = path;
        local.address = address;
        local.max_size = Some(self.cfg.limits.max_message);
        local.cema = true;
        local.session_id = self.rng.next_u64() >> 1;
        let offer = sdp::offer(&local).map_err(|e| format!("offer: {e}"))?;
        let tag = ids::tag(self.cfg.core, &mut *self.rng);
        let call_id = ids::call_id(self.cfg.core, &self.cfg.host, &mut *self.rng);
        let mut w = crate::sip::write::Writer::request("INVITE", o.ruri.trim());
        w.header("Via", VIA_PLACEHOLDER);
        w.header("Max-Forwards", "70");
        w.header("From", &format!("{from};tag={tag}"));
        w.header("To", &to);
        w.header("Call-ID", &call_id);
        w.header("CSeq", "1 INVITE");
        // Over TCP, the Contact says so (RFC 3261 §8.1.1.8): the peer's BYE comes back
        // the way the INVITE went.
        let tcp = o.ruri.to_ascii_lowercase().contains(";transport=tcp");
        let t = if tcp { ";transport=tcp" } else { "" };
        w.header("Contact", &format!("<{}{t}>", self.cfg.contact));
        w.header("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS, MESSAGE");
        let invite = w
            .into_message_body(Some("application/sdp"), &offer.sdp)
            .map_err(|e| format!("INVITE not built: {e}"))?;
        self.sip_out.push_back(UaSip::Invite {
            session: sid.clone(),
            msg: invite.clone(),
            proxy: o.proxy.clone(),
        });
        let end_at = self.cfg.max_duration.map(|d| now + d);
        if let Some(at) = end_at {
            self.timers.insert((at, Timer::End, sid.clone()));
        }
        tracing::info!(session = %sid, to = %to, ruri = %o.ruri, "user agent INVITE");
        let rx = Reassembler::new(self.cfg.limits, Some(self.cfg.limits.max_message));
        self.sessions.insert(
            sid.clone(),
            Box::new(Session {
                phase: Phase::Calling,
                dialog: None,
                invite: None,
                offer: Some(Box::new(Offering {
                    offer,
                    invite,
                    ack: None,
                    cancelled: false,
                })),
                from,
                to,
                ruri: o.ruri.trim().to_string(),
                ..Session::fresh(now, local_uri, local, no_peer_yet(), via_relay, end_at, rx)
            }),
        );
        Ok(())
    }

    /// A response to session `sid`'s INVITE (`over_tls`: it came over TLS). A 2xx is
    /// ACKed and sets the session up with the SDP answer (RFC 3264 §7); an answer we
    /// cannot use is ACKed and ended with BYE (RFC 3261 §13.2.2.4 leaves no other
    /// way), as is the 2xx of a second fork. 3xx-6xx fail the session.
    pub fn handle_invite_response(
        &mut self,
        now: Instant,
        sid: &str,
        resp: &SipMessage,
        over_tls: bool,
    ) {
        let code = resp.status().unwrap_or(0);
        if code < 200 {
            return;
        }
        if code >= 300 {
            self.handle_invite_failed(now, sid, code, resp.reason());
            return;
        }
        let Some(s) = self.sessions.get_mut(sid) else {
            return;
        };
        let Some(o) = s.offer.as_mut() else {
            return;
        };
        let Ok(mut d) = Dialog::uac(&o.invite, resp, over_tls) else {
            tracing::info!(session = %sid, "2xx to our INVITE without To tag or Contact: ignored");
            return;
        };
        let invite_seq = o.invite.cseq().map_or(1, |c| c.seq);
        let ack = match d.ack(invite_seq, VIA_PLACEHOLDER).0.into_message() {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(session = %sid, error = %e, "ACK not built");
                return;
            }
        };
        let same = s.dialog.as_ref().map(|x| x.id == d.id);
        match same {
            // A retransmission of the 2xx we took: the same ACK again.
            Some(true) => {
                if let Some(a) = o.ack.clone() {
                    self.sip_out.push_back(UaSip::Ack {
                        session: sid.to_string(),
                        msg: a,
                    });
                }
                return;
            }
            // A second fork answered too: ACK it and end that dialog (§13.2.2.4).
            Some(false) => {
                tracing::info!(session = %sid, "2xx from a second fork: ACK and BYE");
                self.sip_out.push_back(UaSip::Ack {
                    session: sid.to_string(),
                    msg: ack,
                });
                let seq = invite_seq.wrapping_add(1);
                bye_in(&mut d, seq, sid, &mut self.sip_out);
                return;
            }
            None => {}
        }
        o.ack = Some(ack.clone());
        self.sip_out.push_back(UaSip::Ack {
            session: sid.to_string(),
            msg: ack,
        });
        let cancelled = o.cancelled;
        let taken = sdp::take_answer(&o.offer, resp.body_bytes());
        self.by_dialog.insert(d.id.clone(), sid.to_string());
        s.dialog = Some(d);
        s.phase = Phase::Up;
        match (taken, cancelled) {
            (Ok(peer), false) => {
                s.peer = peer;
                s.sdp = o.offer.sdp.clone();
                tracing::info!(session = %sid, peer_path = %s.peer.peer_path.join(" "), active = s.peer.active, "INVITE answered: session up");
                self.session_up(now, sid);
            }
            (Ok(_), true) => {
                // The 2xx crossed our CANCEL.
                self.bye(sid);
                self.forget(now, sid);
                self.events.push_back(UaEvent::SessionFailed {
                    session: sid.to_string(),
                    code: 487,
                    reason: "cancelled by the operator".into(),
                });
            }
            (Err(e), _) => {
                tracing::info!(session = %sid, error = %e, "the SDP answer is not usable: BYE");
                self.bye(sid);
                self.forget(now, sid);
                self.events.push_back(UaEvent::SessionFailed {
                    session: sid.to_string(),
                    code: e.status(),
                    reason: format!("unusable SDP answer: {}", e.reason()),
                });
            }
        }
    }

    /// Session `sid`'s INVITE failed: a 3xx-6xx, or no response (`code` 408 after
    /// timer B, 503 for a transport error, RFC 3261 §8.1.3.1).
    pub fn handle_invite_failed(&mut self, now: Instant, sid: &str, code: u16, reason: &str) {
        let calling = self
            .sessions
            .get(sid)
            .filter(|s| s.phase == Phase::Calling)
            .map(|s| s.offer.as_ref().is_some_and(|o| o.cancelled));
        let Some(cancelled) = calling else {
            return;
        };
        self.forget(now, sid);
        tracing::info!(session = %sid, code, %reason, "user agent INVITE failed");
        self.events.push_back(UaEvent::SessionFailed {
            session: sid.to_string(),
            code,
            reason: if cancelled {
                "cancelled by the operator".into()
            } else {
                reason.to_string()
            },
        });
    }

    /// Sends a whole message in session `sid` (RFC 4975 §7.1.1): one SEND, which the
    /// connection's send queue may interrupt and resume when other frames wait (§7.1.1).
    /// Its fate comes as [`UaEvent::ReportReceived`]: a success REPORT when asked for,
    /// an error response, a failure REPORT, or a local timeout.
    pub fn send_message(
        &mut self,
        now: Instant,
        sid: &str,
        content_type: &str,
        body: Bytes,
        success_report: SuccessReport,
        failure_report: FailureReport,
    ) -> Result<String, UaError> {
        let core = self.cfg.core;
        let max_unanswered = 2 * self.cfg.limits.max_message;
        let s = self.sessions.get_mut(sid).ok_or(UaError::NoSession)?;
        let conn = s.conn.ok_or(UaError::NotConnected)?;
        if !s.peer.may_send(content_type, None) {
            return Err(UaError::NotAccepted);
        }
        let total = body.len() as u64;
        if s.peer.peer_max_size.is_some_and(|m| total > m) || total > self.cfg.limits.max_message {
            return Err(UaError::TooLarge);
        }
        // Bytes sent and not yet answered bound what one session may queue: a peer that
        // does not read does not make us hold messages without end.
        let unanswered: u64 = self
            .pending
            .values()
            .filter(|p| p.session == sid)
            .map(|p| p.range.total.unwrap_or(0))
            .sum();
        if unanswered + total > max_unanswered {
            return Err(UaError::Busy);
        }
        let message_id = tid(&mut *self.rng);
        let t = tid(&mut *self.rng);
        let range = report::whole(total);
        let to_path = s.to_path.clone();
        // RFC 4975 §7.1.1: a SEND over 2048 octets must be interruptible, so its
        // Byte-Range end is `*` and the connection's send queue may cut it (and resume
        // it as `TID.N`) when responses, REPORTs or other sessions' frames wait.
        let resumable = total > 2048 && t.len() <= crate::conn::queue::MAX_RESUMABLE_TID;
        let mut head = BytesMut::with_capacity(256 + to_path.len() + s.local_uri.len());
        encode::start_request(&mut head, &t, "SEND");
        encode::header(&mut head, "To-Path", to_path.as_bytes());
        encode::header(&mut head, "From-Path", s.local_uri.as_bytes());
        encode::header(&mut head, "Message-ID", message_id.as_bytes());
        head.extend_from_slice(b"Byte-Range: ");
        let v0 = head.len();
        if resumable {
            head.extend_from_slice(format!("1-*/{total}").as_bytes());
        } else {
            head.extend_from_slice(format!("1-{total}/{total}").as_bytes());
        }
        let v1 = head.len();
        head.extend_from_slice(b"\r\n");
        if success_report == SuccessReport::Yes {
            encode::header(&mut head, "Success-Report", b"yes");
        }
        match failure_report {
            FailureReport::Yes => {}
            FailureReport::No => encode::header(&mut head, "Failure-Report", b"no"),
            FailureReport::Partial => encode::header(&mut head, "Failure-Report", b"partial"),
        }
        encode::header(&mut head, "Content-Type", content_type.as_bytes());
        encode::blank_line(&mut head);
        let mut end = BytesMut::new();
        encode::body_end_line(&mut end, &t, Flag::Complete);
        s.msgs_out += 1;
        s.bytes_out += total;
        if s.sent_ids.len() >= SENT_IDS {
            s.sent_ids.pop_front();
        }
        s.sent_ids.push_back(message_id.clone());
        if failure_report != FailureReport::No {
            self.pending_due
                .insert((now + TRANSACTION_TIMEOUT, t.clone()));
            self.pending.insert(
                t.clone(),
                Pending {
                    session: sid.to_string(),
                    message_id: message_id.clone(),
                    range,
                    deadline: now + TRANSACTION_TIMEOUT,
                    owed: 1,
                    partial: failure_report == FailureReport::Partial,
                },
            );
        }
        let origin = Origin::Internal(core);
        let t0 = "MSRP ".len();
        let resume = match (u16::try_from(v0), u16::try_from(v1)) {
            (Ok(a), Ok(z)) if resumable => Some(Box::new(crate::conn::Resumable {
                tid: (t0 as u16, (t0 + t.len()) as u16),
                range: (a, z),
                start: 1,
                total: Some(total),
            })),
            _ => None,
        };
        self.actions.push_back(Action::Write {
            conn,
            bytes: head.freeze(),
            part: Part::Start(origin, resume),
        });
        // The body in slices of the queue's urgent share (no copy): the writer takes
        // whole buffers, and a 10 MiB one would be on the wire, beyond the queue's
        // reach, until its last byte went.
        let mut at = 0;
        while at < body.len() {
            let n = (body.len() - at).min(crate::conn::queue::URGENT_SHARE as usize);
            self.actions.push_back(Action::Write {
                conn,
                bytes: body.slice(at..at + n),
                part: Part::Middle(origin),
            });
            at += n;
        }
        self.actions.push_back(Action::Write {
            conn,
            bytes: end.freeze(),
            part: Part::End(origin),
        });
        Ok(message_id)
    }

    /// Ends session `sid` from our side: BYE (when the outbound SIP layer carries it)
    /// and the connection closed. `false` when there is no such session.
    pub fn end_session(&mut self, now: Instant, sid: &str) -> bool {
        let Some(s) = self.sessions.get_mut(sid) else {
            return false;
        };
        if s.phase == Phase::Calling {
            // No answer yet: CANCEL (RFC 3261 §9.1); the INVITE's final response (487,
            // or a 2xx that crossed it) ends the session.
            if let Some(o) = s.offer.as_mut().filter(|o| !o.cancelled) {
                o.cancelled = true;
                self.sip_out.push_back(UaSip::Cancel {
                    session: sid.to_string(),
                });
            }
            return true;
        }
        self.end(now, sid, "local", "operator");
        true
    }

    // -------------------------------------------------------------------- helpers

    fn end(&mut self, now: Instant, sid: &str, by: &'static str, why: &'static str) {
        if by == "local" {
            self.bye(sid);
        }
        let relay_conn = self.relay.as_ref().and_then(|r| r.conn);
        if let Some(conn) = self.forget(now, sid).filter(|c| Some(*c) != relay_conn) {
            // A direct connection serves one session: close it. The relay's is shared.
            self.actions.push_back(Action::Close {
                conn,
                reason: CloseReason::PeerClosed,
            });
        }
        self.events.push_back(UaEvent::SessionEnd {
            session: sid.to_string(),
            by,
            why,
        });
    }

    /// Queues a BYE in session `sid`'s dialog (RFC 3261 §15.1.1), if it is confirmed
    /// (an unconfirmed one ends with its INVITE transaction).
    fn bye(&mut self, sid: &str) {
        let Some(s) = self.sessions.get_mut(sid) else {
            return;
        };
        if s.phase != Phase::Up {
            return;
        }
        let seq = (self.rng.next_u32() >> 1).max(1);
        if let Some(d) = s.dialog.as_mut() {
            bye_in(d, seq, sid, &mut self.sip_out);
        }
    }

    /// Drops every trace of session `sid`; the connection it was bound to.
    fn forget(&mut self, _now: Instant, sid: &str) -> Option<ConnId> {
        let s = self.sessions.remove(sid)?;
        if let Some(d) = &s.dialog {
            self.by_dialog.remove(&d.id);
        }
        if let Some(i) = s.invite {
            self.by_invite.remove(&i);
        }
        for (at, t) in [(s.end_at, Timer::End), (s.connect_at, Timer::Connect)] {
            if let Some(at) = at {
                self.timers.remove(&(at, t, sid.to_string()));
            }
        }
        let due = &mut self.pending_due;
        self.pending.retain(|t, p| {
            let keep = p.session != sid;
            if !keep {
                due.remove(&(p.deadline, t.clone()));
            }
            keep
        });
        if let Some(at) = s.rx_at {
            self.rx_due.remove(&(at, sid.to_string()));
        }
        if let Some(c) = s.conn {
            self.reading.remove(&c);
            self.by_conn.remove(&c);
        }
        s.conn
    }

    fn respond_msrp(&mut self, conn: ConnId, head: &Head<'_>, code: u16, own_uri: &str) {
        let mut b = BytesMut::new();
        report::write_response(&mut b, head, code, own_uri);
        self.write(conn, b.freeze());
    }

    fn write(&mut self, conn: ConnId, bytes: Bytes) {
        self.actions.push_back(Action::Write {
            conn,
            bytes,
            part: Part::Whole,
        });
    }
}

/// The placeholder Via of the requests we hand to the SIP layer, which writes its own.
const VIA_PLACEHOLDER: &str = "SIP/2.0/UDP 0.0.0.0;branch=z9hG4bK-0-0";

/// Checks an in-dialog request against session `s`'s dialog (§12.2.2).
fn check(s: &mut Session, req: &SipMessage) -> Result<(), crate::sip::dialog::DialogError> {
    match s.dialog.as_mut() {
        Some(d) => d.check_request(req),
        None => Err(crate::sip::dialog::DialogError::OtherDialog),
    }
}

/// Queues a BYE in dialog `d` (RFC 3261 §15.1.1).
fn bye_in(d: &mut Dialog, seq: u32, sid: &str, out: &mut VecDeque<UaSip>) {
    let (w, next_hop) = d.request("BYE", VIA_PLACEHOLDER, seq);
    match w.into_message() {
        Ok(msg) => out.push_back(UaSip::InDialog { msg, next_hop }),
        Err(e) => tracing::warn!(session = %sid, error = %e, "BYE not built"),
    }
}

/// Whether we take a message of `content_type` (RFC 4975 §8.6): the type in our
/// accept-types; for a message/cpim, its inner type in our accept-types or
/// accept-wrapped-types too (a CPIM that does not parse is refused).
fn accepts_received(local: &sdp::Local, content_type: &str, cpim: Option<&CpimInfo>) -> bool {
    if !sdp::accepts(&local.accept_types, content_type) {
        return false;
    }
    let is_cpim = crate::codec::ContentType::parse(content_type.as_bytes()).is_ok_and(|ct| {
        ct.media_type.eq_ignore_ascii_case("message") && ct.subtype.eq_ignore_ascii_case("cpim")
    });
    if !is_cpim {
        return true;
    }
    cpim.is_some_and(|c| {
        sdp::accepts(&local.accept_types, &c.content_type)
            || sdp::accepts(&local.accept_wrapped_types, &c.content_type)
    })
}

/// The peer of a session whose answer has not come yet.
fn no_peer_yet() -> sdp::Session {
    sdp::Session {
        media_index: 0,
        transport: sdp::Transport::Tcp,
        peer_path: Vec::new(),
        local_path: Vec::new(),
        peer_accept_types: Vec::new(),
        peer_accept_wrapped_types: Vec::new(),
        peer_max_size: None,
        active: false,
        cema: false,
        connect_to: None,
        direction: sdp::Direction::SendRecv,
    }
}

fn is_report(head: &Head<'_>) -> bool {
    head.method().is_some_and(|m| m.as_str() == "REPORT")
}

/// A transaction or message id: 16 hex digits, 64 bits from the CSPRNG (RFC 4975 §7.1).
fn tid(rng: &mut dyn RngCore) -> String {
    format!("{:016x}", rng.next_u64())
}

/// Answers server transaction `id` with `code` and `reason` as the reason phrase
/// (RFC 3261 §21: the phrase is free text; it tells the caller why).
fn respond_because(
    now: Instant,
    txns: &mut Transactions,
    id: TxId,
    req: &SipMessage,
    code: u16,
    reason: &str,
) {
    let Ok(m) = response_to(req, code, Some(reason), None).into_message() else {
        return;
    };
    if let Err(e) = txns.respond(now, id, m) {
        tracing::debug!(error = %e, code, "user agent response not sent");
    }
}

/// Answers server transaction `id` with `code`, a To tag when given, and for a 2xx to
/// an INVITE our Contact and SDP; the response as sent, `None` if it could not be.
fn respond(
    now: Instant,
    txns: &mut Transactions,
    id: TxId,
    req: &SipMessage,
    code: u16,
    tag: Option<&str>,
    sdp: Option<(&str, &Bytes)>,
) -> Option<SipMessage> {
    let mut w = response_to(req, code, None, tag);
    let m = match sdp {
        Some((contact, body)) => {
            w.header("Contact", &format!("<{contact}>"));
            w.into_message_body(Some("application/sdp"), body).ok()?
        }
        None => w.into_message().ok()?,
    };
    match txns.respond(now, id, m.clone()) {
        Ok(()) => Some(m),
        Err(e) => {
            tracing::debug!(error = %e, code, "user agent response not sent");
            None
        }
    }
}
