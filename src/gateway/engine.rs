//! The gateway engine: sans-I/O, one per core, in the shape of the other engines
//! (`handle_*(now, ..)` in; `poll_action()`, `poll_event()`, `poll_timeout()` out).
//! See the module documentation of [`super`] for what it decides and why.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::fmt::Debug;
use std::hash::Hash;
use std::time::Instant;

use bytes::Bytes;

use crate::sip::{HeaderName, Message as SipMessage, Method};
use crate::ua::engine::{Originate, UaError, UaEvent};
use crate::ua::reassembly::Rendered;

use super::config::{Config, Hop};
use super::status::{self, MSRP_TO_SIP, SETUP_TO_SIP, SIP_TO_MSRP};
use super::uri::{Parties, uri_of};

/// RFC 3428 §8: a MESSAGE outside a media session over 1300 bytes must not cross a
/// congestion-unsafe link; RFC 3261 §18.1.1 sends a request over 1300 bytes (path MTU
/// unknown) over a congestion-controlled transport. A body over this many bytes is
/// marked [`OutMessage::tcp`] (the SIP layer still applies §18.1.1 to the whole
/// request); to a UDP-only next hop it does not go at all.
pub const UDP_MAX_BODY: usize = 1300;

/// The longest correlation key.
pub const MAX_KEY: usize = 512;

/// The code that answers a MESSAGE still waiting to go when its session ends (RFC
/// 3261 §21.4.18: the callee is not reachable now; the next MESSAGE may set up a new
/// session).
pub const ENDED_CODE: u16 = 480;

/// A final response for a MESSAGE's server transaction `tx`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer<T> {
    pub tx: T,
    pub code: u16,
    /// The reason phrase (RFC 3261 §21: free text; it tells the sender why).
    pub reason: String,
    /// Seconds, for 503 (RFC 3261 §20.33, §21.5.4).
    pub retry_after: Option<u32>,
    /// For 415 (RFC 3261 §21.4.13, §8.2.3): the types that would be taken.
    pub accept: Option<String>,
    /// For 415 over Content-Encoding (§8.2.3).
    pub accept_encoding: Option<String>,
}

/// From, To and Request-URI of one side of a session.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Coords {
    pub from: String,
    pub to: String,
    pub ruri: String,
}

/// A SIP MESSAGE for the SIP layer's outbound side to send (RFC 3428 §4). Its final
/// response (408 when none came) goes back with [`Gateway::handle_message_response`]
/// and `id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutMessage {
    /// 0 for a notice (no response expected back).
    pub id: u64,
    pub key: String,
    /// From and To as rendered (a URI or name-addr, no tag: the SIP layer adds one).
    pub from: String,
    pub to: String,
    pub ruri: String,
    /// The outbound proxy, if any (else the Request-URI's host).
    pub next_hop: Option<String>,
    pub content_type: String,
    pub body: Bytes,
    /// The body is over [`UDP_MAX_BODY`]: a congestion-controlled transport only
    /// (RFC 3428 §8).
    pub tcp: bool,
}

/// What the gateway asks of the server, in order.
#[derive(Debug, Clone)]
pub enum GwAction<T> {
    /// Answer a MESSAGE's server transaction (exactly once per transaction).
    Answer(Answer<T>),
    /// Start the MSRP-side session through the user agent ([`crate::ua::engine::Ua::originate`]);
    /// its result goes back with [`Gateway::handle_originated`] and `token`.
    Originate {
        token: u64,
        key: String,
        request: Originate,
    },
    /// Send a message in user agent session `ua_session`
    /// ([`crate::ua::engine::Ua::send_message`], Failure-Report `yes`, Success-Report
    /// `yes` when `success_report`); its result goes back with
    /// [`Gateway::handle_sent`] and `seq`, before the next action of that session.
    SendMsrp {
        seq: u64,
        ua_session: String,
        content_type: String,
        body: Bytes,
        success_report: bool,
    },
    /// The outcome of MSRP message `message_id` received in `ua_session` (RFC 4975
    /// §7.1.2): 200 for a success REPORT (send it only if the SEND asked, §7.1.3),
    /// anything else a failure REPORT with that status (unless Failure-Report was
    /// `no`, §7.1.4), or the SEND's response when it is still unanswered.
    Report {
        ua_session: String,
        message_id: String,
        status: u16,
    },
    /// A SIP MESSAGE to send.
    SendMessage(OutMessage),
    /// End user agent session `ua_session` ([`crate::ua::engine::Ua::end_session`]).
    EndSession { ua_session: String },
}

/// The `gateway.*` events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GatewayEvent {
    /// `gateway.session.new`: the MSRP side is up.
    SessionNew {
        key: String,
        ua_session: String,
        /// `message` (a MESSAGE started it) or `invite` (the MSRP side did).
        origin: &'static str,
        msrp: Coords,
        sip: Coords,
    },
    /// `gateway.session.end`.
    SessionEnd { key: String, why: String },
    /// `gateway.setup_failed`: the MSRP side's INVITE failed (code 408 on timeout).
    SetupFailed {
        key: String,
        from: String,
        to: String,
        ruri: String,
        code: u16,
        reason: String,
    },
}

/// Whether [`Gateway::handle_message`] took the MESSAGE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handled {
    /// Taken: it has been or will be answered through [`GwAction::Answer`].
    Taken,
    /// No rule matches (or it is inside a dialog): not the gateway's.
    NotOurs,
}

/// One session as `GET /v1/gateway/sessions` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    pub key: String,
    /// `starting` (INVITE not out yet), `calling`, `up`.
    pub state: &'static str,
    pub origin: &'static str,
    pub ua_session: Option<String>,
    /// The MESSAGEs the gateway sends in this session.
    pub sip: Coords,
    /// The MSRP side's INVITE.
    pub msrp: Coords,
    pub queued: usize,
    pub queued_bytes: usize,
    /// Sent messages whose MESSAGE waits for the MSRP side's acceptance.
    pub waiting: usize,
    pub to_msrp: u64,
    pub to_sip: u64,
    pub failed: u64,
    pub started: Instant,
    pub last_activity: Instant,
    pub last_message: Instant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// The Originate action is out; the user agent's session id not known yet.
    Starting,
    /// The user agent's INVITE is out.
    Calling,
    Up,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    Message,
    Invite,
}

impl Origin {
    fn as_str(self) -> &'static str {
        match self {
            Origin::Message => "message",
            Origin::Invite => "invite",
        }
    }
}

/// A message from the MESSAGE side waiting to go.
#[derive(Debug)]
struct Queued {
    seq: u64,
    content_type: String,
    body: Bytes,
}

/// An MSRP message waiting to go as a MESSAGE.
#[derive(Debug)]
struct Outgoing {
    message_id: String,
    content_type: String,
    body: Bytes,
}

#[derive(Debug)]
struct Session {
    key: String,
    origin: Origin,
    state: State,
    ua_session: Option<String>,
    sip: Coords,
    hop: Hop,
    msrp: Coords,
    peer_accept: Vec<String>,
    /// Notices go to the MESSAGE side's sender (message-origin sessions of a rule
    /// with `notify`).
    notify: bool,
    announced: bool,
    queue: VecDeque<Queued>,
    /// Bytes in `queue` and `sending`.
    queued_bytes: usize,
    /// The message handed to the user agent, its result not back yet.
    sending: Option<Queued>,
    retry_at: Option<Instant>,
    /// The MESSAGE transactions of this session not answered yet, by seq.
    txs: BTreeSet<u64>,
    waiting: usize,
    out: VecDeque<Outgoing>,
    out_inflight: Option<(u64, Outgoing)>,
    started: Instant,
    last_any: Instant,
    last_message: Instant,
    idle_at: Instant,
    to_msrp: u64,
    to_sip: u64,
    failed: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum TxState {
    Queued,
    Sending,
    /// Sent as MSRP message id ..., its acceptance awaited.
    Sent(String),
}

#[derive(Debug)]
struct Pending<T> {
    tx: T,
    session: u64,
    state: TxState,
    wait_at: Instant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    /// A MESSAGE's delivery wait (by seq).
    Wait(u64),
    /// A session's next try after NotConnected or Busy.
    Retry(u64),
    /// A session's idle deadline (checked lazily: moved on when it fires early).
    Idle(u64),
}

/// Why a session ends, and so what its waiting MESSAGEs get.
#[derive(Debug, Clone)]
enum Finish {
    SetupFailed { code: u16, reason: String },
    Ended { why: String, end_ua: bool },
}

/// The gateway of one core, generic over the caller's server transaction handle.
#[derive(Debug)]
pub struct Gateway<T> {
    cfg: Config,
    sessions: HashMap<u64, Session>,
    by_key: HashMap<String, u64>,
    by_ua: HashMap<String, u64>,
    /// MESSAGE transactions not answered yet, by seq.
    txs: HashMap<u64, Pending<T>>,
    /// MSRP message ids whose acceptance a MESSAGE waits for.
    by_mid: HashMap<String, u64>,
    /// Sends handed out, result not back: seq -> session.
    in_hand: HashMap<u64, u64>,
    /// Outgoing MESSAGEs awaiting their final response: id -> session.
    out_ids: HashMap<u64, u64>,
    /// Originate tokens whose session ended before the user agent's id came back.
    abandoned: HashSet<u64>,
    timers: BTreeSet<(Instant, Timer)>,
    actions: VecDeque<GwAction<T>>,
    events: VecDeque<GatewayEvent>,
    next_id: u64,
}

/// The owning core of `key` among `cores` (FNV-1a): MESSAGEs for one key must reach
/// one engine, so that one key makes one session.
pub fn core_of(key: &str, cores: usize) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h % cores.max(1) as u64) as usize
}

fn reason_of(code: u16) -> &'static str {
    crate::sip::reason_phrase(code)
}

impl<T: Copy + Eq + Hash + Debug> Gateway<T> {
    pub fn new(cfg: Config) -> Gateway<T> {
        Gateway {
            cfg,
            sessions: HashMap::new(),
            by_key: HashMap::new(),
            by_ua: HashMap::new(),
            txs: HashMap::new(),
            by_mid: HashMap::new(),
            in_hand: HashMap::new(),
            out_ids: HashMap::new(),
            abandoned: HashSet::new(),
            timers: BTreeSet::new(),
            actions: VecDeque::new(),
            events: VecDeque::new(),
            next_id: 1,
        }
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }
    pub fn len(&self) -> usize {
        self.sessions.len()
    }
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }
    /// MESSAGE transactions taken and not answered yet.
    pub fn unanswered(&self) -> usize {
        self.txs.len()
    }
    /// The user agent rules that answer the gateway's INVITEs (put them first).
    pub fn ua_rules(&self) -> Vec<crate::ua::engine::Rule> {
        self.cfg.invite_rules.iter().map(|r| r.ua_rule()).collect()
    }
    pub fn poll_action(&mut self) -> Option<GwAction<T>> {
        self.actions.pop_front()
    }
    pub fn poll_event(&mut self) -> Option<GatewayEvent> {
        self.events.pop_front()
    }
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.first().map(|(at, _)| *at)
    }

    fn id(&mut self) -> u64 {
        let i = self.next_id;
        self.next_id += 1;
        i
    }

    /// The key a MESSAGE would have, `None` when no rule takes it (for routing it to
    /// its core with [`core_of`] before [`Gateway::handle_message`]).
    pub fn key_of(&self, msg: &SipMessage) -> Option<String> {
        let (from, to, ruri) = parties(msg);
        let rule = self
            .cfg
            .message_rules
            .iter()
            .find(|r| r.matches(ruri, from, to))?;
        rule.key
            .render(&Parties { from, to, ruri })
            .filter(|k| !k.is_empty() && k.len() <= MAX_KEY)
    }

    // ------------------------------------------------------------ MESSAGE -> MSRP

    /// An out-of-dialog MESSAGE (server transaction `tx`, each transaction once; the
    /// SIP layer has checked it, [`SipMessage::check`]). Hostile or unacceptable ones
    /// are answered at once (RFC 3261 §8.2 in its order: headers, then content):
    /// - no From tag: 400 (§8.1.1.3: a UAC MUST add one);
    /// - From, To or Request-URI not an address, or no key: 400;
    /// - a Content-Encoding other than identity: 415 with Accept-Encoding (§8.2.3);
    /// - no body: 400 (RFC 3428 §3: the body is the message);
    /// - a body over the limit: 413 (§21.4.11, no Retry-After: it will not fit later);
    /// - no Content-Type (§20.15: MUST with a body) or one that does not parse: 400;
    /// - a type the rule (or, once up, the MSRP peer) does not accept: 415 with Accept
    ///   (§21.4.13, RFC 3428 §7: text/plain and message/cpim pass by default);
    /// - a new key beyond the session limit, or a full queue: 503 with Retry-After
    ///   (§21.5.4).
    ///
    /// Otherwise it is queued on its key's session, which is started through the
    /// user agent if there is none, and answered 200 once the MSRP side accepts it
    /// within the delivery wait, its mapped failure ([`MSRP_TO_SIP`], [`SETUP_TO_SIP`])
    /// if one is known within it, else 202 when the wait ends (RFC 3428 §7: a gateway
    /// SHOULD say 202 when delivery is not known).
    pub fn handle_message(&mut self, now: Instant, tx: T, msg: &SipMessage) -> Handled {
        if msg.method() != Some(Method::Message) || msg.to_tag().is_some() {
            return Handled::NotOurs;
        }
        let (from, to, ruri) = parties(msg);
        let Some(ri) = self
            .cfg
            .message_rules
            .iter()
            .position(|r| r.matches(ruri, from, to))
        else {
            return Handled::NotOurs;
        };
        if let Err(a) = self.check_message(msg, ri) {
            self.respond(tx, a);
            return Handled::Taken;
        }
        let p = Parties { from, to, ruri };
        let rule = &self.cfg.message_rules[ri];
        let Some(key) = rule
            .key
            .render(&p)
            .filter(|k| !k.is_empty() && k.len() <= MAX_KEY)
        else {
            self.respond(tx, plain(400, "no correlation key for this MESSAGE"));
            return Handled::Taken;
        };
        let content_type = msg.content_type().unwrap_or("").trim().to_string();
        let body = msg.body();
        let id = match self.by_key.get(&key).copied() {
            Some(id) => {
                let s = &self.sessions[&id];
                if s.state == State::Up
                    && !s.peer_accept.is_empty()
                    && !crate::sdp::accepts(&s.peer_accept, &content_type)
                {
                    let accept = s.peer_accept.join(", ");
                    self.respond(
                        tx,
                        Answer {
                            accept: Some(accept),
                            ..plain(415, "the MSRP side does not accept this type")
                        },
                    );
                    return Handled::Taken;
                }
                id
            }
            None => {
                if self.sessions.len() >= self.cfg.max_sessions {
                    tracing::warn!(
                        max = self.cfg.max_sessions,
                        "gateway at its session limit: MESSAGE answered 503"
                    );
                    let a = self.busy("gateway at its session limit");
                    self.respond(tx, a);
                    return Handled::Taken;
                }
                match self.start_session(now, ri, &key, &p) {
                    Ok(id) => id,
                    Err(why) => {
                        self.respond(tx, plain(500, &why));
                        return Handled::Taken;
                    }
                }
            }
        };
        let Some(s) = self.sessions.get_mut(&id) else {
            return Handled::Taken;
        };
        let held = s.queue.len() + usize::from(s.sending.is_some());
        if held >= self.cfg.max_queue || s.queued_bytes + body.len() > self.cfg.max_queue_bytes {
            let a = self.busy("the MSRP session's queue is full");
            self.respond(tx, a);
            return Handled::Taken;
        }
        s.last_message = now;
        s.last_any = now;
        s.queued_bytes += body.len();
        let seq = self.next_id;
        self.next_id += 1;
        s.queue.push_back(Queued {
            seq,
            content_type,
            body,
        });
        if self.cfg.delivery_wait.is_zero() {
            self.respond(tx, plain(202, "queued for the MSRP session"));
        } else {
            let wait_at = now + self.cfg.delivery_wait;
            s.txs.insert(seq);
            self.txs.insert(
                seq,
                Pending {
                    tx,
                    session: id,
                    state: TxState::Queued,
                    wait_at,
                },
            );
            self.timers.insert((wait_at, Timer::Wait(seq)));
        }
        self.flush(id);
        Handled::Taken
    }

    fn check_message(&self, msg: &SipMessage, ri: usize) -> Result<(), Answer<()>> {
        if msg.from_tag().is_none() {
            return Err(plain(400, "Missing From tag"));
        }
        let (from, to, ruri) = parties(msg);
        if super::uri::normalise(from).is_none()
            || super::uri::normalise(to).is_none()
            || super::uri::normalise(ruri).is_none()
        {
            return Err(plain(400, "From, To or Request-URI is not an address"));
        }
        if let Some(enc) = msg.get(HeaderName::ContentEncoding)
            && !enc.trim().is_empty()
            && !enc.trim().eq_ignore_ascii_case("identity")
        {
            return Err(Answer {
                accept_encoding: Some("identity".into()),
                ..plain(415, "Unsupported Content-Encoding")
            });
        }
        let body = msg.body_bytes();
        if body.is_empty() {
            return Err(plain(400, "MESSAGE without a body"));
        }
        if body.len() > self.cfg.max_body {
            return Err(plain(413, "Request Entity Too Large"));
        }
        let Some(ct) = msg.content_type() else {
            return Err(plain(400, "Missing Content-Type"));
        };
        if crate::codec::ContentType::parse(ct.trim().as_bytes()).is_err()
            || crate::sdp::msrp::media_type(ct).is_none()
        {
            return Err(plain(400, "Bad Content-Type"));
        }
        let rule = &self.cfg.message_rules[ri];
        if !crate::sdp::accepts(&rule.accept_types, ct) {
            return Err(Answer {
                accept: Some(rule.accept_types.join(", ")),
                ..plain(415, "Unsupported Media Type")
            });
        }
        Ok(())
    }

    /// 503 with our Retry-After.
    fn busy(&self, why: &str) -> Answer<()> {
        Answer {
            retry_after: Some(self.cfg.retry_after.as_secs().clamp(1, u64::from(u32::MAX)) as u32),
            ..plain(503, why)
        }
    }

    fn respond(&mut self, tx: T, a: Answer<()>) {
        self.actions.push_back(GwAction::Answer(Answer {
            tx,
            code: a.code,
            reason: a.reason,
            retry_after: a.retry_after,
            accept: a.accept,
            accept_encoding: a.accept_encoding,
        }));
    }

    /// A new message-origin session for `key` (rule `ri`), its Originate queued.
    fn start_session(
        &mut self,
        now: Instant,
        ri: usize,
        key: &str,
        p: &Parties<'_>,
    ) -> Result<u64, String> {
        let rule = &self.cfg.message_rules[ri];
        let render = |t: &super::uri::Template, what: &str| {
            t.render(p)
                .filter(|v| uri_of(v).is_some())
                .ok_or_else(|| format!("gateway rule: the INVITE's {what} is not an address"))
        };
        let msrp = Coords {
            from: render(&rule.invite_from, "From")?,
            to: render(&rule.invite_to, "To")?,
            ruri: render(&rule.invite_ruri, "Request-URI")?,
        };
        // Replies go back to the sender: From its To, To its From (no tags).
        let sip = Coords {
            from: format!("<{}>", uri_of(p.to).unwrap_or(p.to)),
            to: format!("<{}>", uri_of(p.from).unwrap_or(p.from)),
            ruri: uri_of(p.from).unwrap_or(p.from).to_string(),
        };
        let request = Originate {
            from: Some(msrp.from.clone()),
            to: msrp.to.clone(),
            ruri: msrp.ruri.clone(),
            accept_types: rule.accept_types.clone(),
            proxy: rule.invite_proxy.clone(),
        };
        let (hop, notify) = (rule.reply_hop.clone(), rule.notify);
        let id = self.id();
        self.insert_session(
            now,
            id,
            Session {
                key: key.to_string(),
                origin: Origin::Message,
                state: State::Starting,
                ua_session: None,
                sip,
                hop,
                msrp,
                peer_accept: Vec::new(),
                notify,
                ..fresh(now)
            },
        );
        tracing::info!(key, "gateway session: starting the MSRP side");
        self.actions.push_back(GwAction::Originate {
            token: id,
            key: key.to_string(),
            request,
        });
        Ok(id)
    }

    fn insert_session(&mut self, now: Instant, id: u64, s: Session) {
        let idle_at = self.idle_due(&s).max(now);
        self.timers.insert((idle_at, Timer::Idle(id)));
        self.by_key.insert(s.key.clone(), id);
        if let Some(u) = &s.ua_session {
            self.by_ua.insert(u.clone(), id);
        }
        self.sessions.insert(id, Session { idle_at, ..s });
    }

    /// When session `s` times out: 12 h (by default) after the last message either
    /// way, or 2 h after the last MESSAGE, whichever is first.
    fn idle_due(&self, s: &Session) -> Instant {
        (s.last_any + self.cfg.session_timeout).min(s.last_message + self.cfg.message_timeout)
    }

    /// What [`GwAction::Originate`] `token` gave: the user agent's session id, or why
    /// it refused (the set-up fails with 500).
    pub fn handle_originated(&mut self, now: Instant, token: u64, result: Result<String, String>) {
        if self.abandoned.remove(&token) {
            if let Ok(sid) = result {
                self.actions
                    .push_back(GwAction::EndSession { ua_session: sid });
            }
            return;
        }
        let Some(s) = self
            .sessions
            .get_mut(&token)
            .filter(|s| s.state == State::Starting)
        else {
            return;
        };
        match result {
            Ok(sid) => {
                s.state = State::Calling;
                s.ua_session = Some(sid.clone());
                self.by_ua.insert(sid, token);
            }
            Err(e) => self.finish(
                now,
                token,
                Finish::SetupFailed {
                    code: 500,
                    reason: format!("the user agent refused the set-up: {e}"),
                },
            ),
        }
    }

    /// Hands the next queued message of session `id` to the user agent, if it is up
    /// and nothing is in hand (one at a time: arrival order holds whatever the user
    /// agent answers).
    fn flush(&mut self, id: u64) {
        let Some(s) = self.sessions.get_mut(&id) else {
            return;
        };
        if s.state != State::Up || s.sending.is_some() || s.retry_at.is_some() {
            return;
        }
        let Some(sid) = s.ua_session.clone() else {
            return;
        };
        let Some(q) = s.queue.pop_front() else {
            return;
        };
        if let Some(p) = self.txs.get_mut(&q.seq) {
            p.state = TxState::Sending;
        }
        self.in_hand.insert(q.seq, id);
        self.actions.push_back(GwAction::SendMsrp {
            seq: q.seq,
            ua_session: sid,
            content_type: q.content_type.clone(),
            body: q.body.clone(),
            success_report: !self.cfg.delivery_wait.is_zero(),
        });
        s.sending = Some(q);
    }

    /// What [`GwAction::SendMsrp`] `seq` gave: the MSRP Message-ID, or the user
    /// agent's refusal. No connection yet or backpressure: tried again after the
    /// retry interval, first in line. Not accepted: 415 with the peer's types; too
    /// large: 413; no such session: the session ends.
    pub fn handle_sent(&mut self, now: Instant, seq: u64, result: Result<String, UaError>) {
        let Some(id) = self.in_hand.remove(&seq) else {
            return;
        };
        let Some(s) = self.sessions.get_mut(&id) else {
            return;
        };
        let Some(q) = s.sending.take_if(|q| q.seq == seq) else {
            return;
        };
        match result {
            Ok(mid) => {
                s.queued_bytes = s.queued_bytes.saturating_sub(q.body.len());
                s.to_msrp += 1;
                s.last_any = now;
                if self.txs.contains_key(&seq) {
                    if s.waiting >= self.cfg.max_waiting {
                        self.answer(seq, plain(202, "sent in the MSRP session"));
                    } else if let Some(p) = self.txs.get_mut(&seq) {
                        p.state = TxState::Sent(mid.clone());
                        s.waiting += 1;
                        self.by_mid.insert(mid, seq);
                    }
                }
                self.flush(id);
            }
            Err(UaError::NotConnected | UaError::Busy) => {
                s.queue.push_front(q);
                if let Some(p) = self.txs.get_mut(&seq) {
                    p.state = TxState::Queued;
                }
                let at = now + self.cfg.retry_interval;
                s.retry_at = Some(at);
                self.timers.insert((at, Timer::Retry(id)));
            }
            Err(e @ (UaError::NotAccepted | UaError::TooLarge)) => {
                s.queued_bytes = s.queued_bytes.saturating_sub(q.body.len());
                s.failed += 1;
                let a = if e == UaError::NotAccepted {
                    Answer {
                        accept: Some(s.peer_accept.join(", ")).filter(|a| !a.is_empty()),
                        ..plain(415, "the MSRP side does not accept this type")
                    }
                } else {
                    plain(413, "larger than the MSRP side takes")
                };
                self.answer(seq, a);
                self.flush(id);
            }
            Err(UaError::NoSession) => {
                s.queue.push_front(q);
                self.finish(
                    now,
                    id,
                    Finish::Ended {
                        why: "the user agent's session is gone".into(),
                        end_ua: false,
                    },
                );
            }
        }
    }

    /// Answers MESSAGE `seq` if it is still unanswered (never twice).
    fn answer(&mut self, seq: u64, a: Answer<()>) {
        let Some(p) = self.txs.remove(&seq) else {
            return;
        };
        self.timers.remove(&(p.wait_at, Timer::Wait(seq)));
        if let Some(s) = self.sessions.get_mut(&p.session) {
            s.txs.remove(&seq);
            if let TxState::Sent(mid) = &p.state {
                s.waiting = s.waiting.saturating_sub(1);
                self.by_mid.remove(mid);
            }
        } else if let TxState::Sent(mid) = &p.state {
            self.by_mid.remove(mid);
        }
        self.respond(p.tx, a);
    }

    // ---------------------------------------------------------- user agent events

    /// A user agent event. `true` when it is about one of the gateway's sessions
    /// (started by it, or taken with [`Gateway::adopt`]); `false` otherwise, and
    /// nothing changes.
    pub fn handle_ua_event(&mut self, now: Instant, ev: &UaEvent) -> bool {
        let sid = match ev {
            UaEvent::SessionNew { session, .. }
            | UaEvent::SessionFailed { session, .. }
            | UaEvent::SessionEnd { session, .. }
            | UaEvent::MessageReceived { session, .. }
            | UaEvent::ReportReceived { session, .. } => session,
        };
        let Some(id) = self.by_ua.get(sid).copied() else {
            return false;
        };
        match ev {
            UaEvent::SessionNew {
                peer_accept_types, ..
            } => {
                if let Some(s) = self.sessions.get_mut(&id)
                    && s.state == State::Calling
                {
                    s.state = State::Up;
                    s.peer_accept = peer_accept_types.clone();
                    s.last_any = now;
                    self.announce(id);
                    self.flush(id);
                }
            }
            UaEvent::SessionFailed { code, reason, .. } => self.finish(
                now,
                id,
                Finish::SetupFailed {
                    code: *code,
                    reason: reason.clone(),
                },
            ),
            UaEvent::SessionEnd { by, why, .. } => self.finish(
                now,
                id,
                Finish::Ended {
                    why: format!("{by}: {why}"),
                    end_ua: false,
                },
            ),
            UaEvent::MessageReceived {
                message_id,
                content_type,
                body,
                ..
            } => self.msrp_in(now, id, sid, message_id, content_type, body),
            UaEvent::ReportReceived {
                message_id, status, ..
            } => self.report_in(message_id, *status),
        }
        true
    }

    fn announce(&mut self, id: u64) {
        let Some(s) = self.sessions.get_mut(&id) else {
            return;
        };
        if s.announced {
            return;
        }
        s.announced = true;
        tracing::info!(key = %s.key, origin = s.origin.as_str(), "gateway session up");
        self.events.push_back(GatewayEvent::SessionNew {
            key: s.key.clone(),
            ua_session: s.ua_session.clone().unwrap_or_default(),
            origin: s.origin.as_str(),
            msrp: s.msrp.clone(),
            sip: s.sip.clone(),
        });
    }

    /// A `ua.session.new` of a session the user agent *answered* (not one the API
    /// started): it becomes a gateway session when an [`super::InviteRule`] matches
    /// its Request-URI, From and To. `true` when it is the gateway's now (or was
    /// refused by it and is being ended: no key, table full, the key's session already
    /// up). A MESSAGE-side session of the same key still setting up (both sides
    /// started at once) is replaced by this one: its queue goes here, its INVITE is
    /// ended.
    pub fn adopt(&mut self, now: Instant, ev: &UaEvent) -> bool {
        let UaEvent::SessionNew {
            session,
            from,
            to,
            ruri,
            peer_accept_types,
        } = ev
        else {
            return false;
        };
        if self.by_ua.contains_key(session) {
            return self.handle_ua_event(now, ev);
        }
        let Some(rule) = self
            .cfg
            .invite_rules
            .iter()
            .find(|r| r.matches(ruri, from, to))
        else {
            return false;
        };
        let p = Parties { from, to, ruri };
        let key = rule
            .key
            .render(&p)
            .filter(|k| !k.is_empty() && k.len() <= MAX_KEY);
        let sip = (|| {
            Some(Coords {
                from: rule.message_from.render(&p)?,
                to: rule.message_to.render(&p)?,
                ruri: rule.message_ruri.render(&p)?,
            })
        })();
        let hop = rule.hop.clone();
        let (Some(key), Some(sip)) = (key, sip) else {
            tracing::info!(session = %session, "gateway INVITE without a key or MESSAGE coordinates: ended");
            self.end_ua(session);
            return true;
        };
        let msrp = Coords {
            from: from.clone(),
            to: to.clone(),
            ruri: ruri.clone(),
        };
        match self.by_key.get(&key).copied() {
            Some(id) => {
                let Some(s) = self.sessions.get_mut(&id) else {
                    return true;
                };
                if s.state == State::Up {
                    tracing::info!(key = %key, session = %session, "gateway session for this key already up: the new one is ended");
                    self.end_ua(session);
                    return true;
                }
                // Glare: ours is still setting up; take theirs.
                match s.ua_session.take() {
                    Some(old) => {
                        self.by_ua.remove(&old);
                        self.actions
                            .push_back(GwAction::EndSession { ua_session: old });
                    }
                    None => {
                        self.abandoned.insert(id);
                    }
                }
                s.ua_session = Some(session.clone());
                s.state = State::Up;
                s.peer_accept = peer_accept_types.clone();
                s.msrp = msrp;
                s.last_any = now;
                self.by_ua.insert(session.clone(), id);
                self.announce(id);
                self.flush(id);
            }
            None => {
                if self.sessions.len() >= self.cfg.max_sessions {
                    tracing::warn!(
                        max = self.cfg.max_sessions,
                        "gateway at its session limit: INVITE session ended"
                    );
                    self.end_ua(session);
                    return true;
                }
                let id = self.id();
                self.insert_session(
                    now,
                    id,
                    Session {
                        key,
                        origin: Origin::Invite,
                        state: State::Up,
                        ua_session: Some(session.clone()),
                        sip,
                        hop,
                        msrp,
                        peer_accept: peer_accept_types.clone(),
                        notify: false,
                        ..fresh(now)
                    },
                );
                self.announce(id);
            }
        }
        true
    }

    fn end_ua(&mut self, sid: &str) {
        self.actions.push_back(GwAction::EndSession {
            ua_session: sid.to_string(),
        });
    }

    /// An MSRP message's outcome: 200 answers its MESSAGE 200; anything else its
    /// mapped failure ([`MSRP_TO_SIP`]). Too late (after the wait): nothing to do.
    fn report_in(&mut self, mid: &str, status: u16) {
        let Some(seq) = self.by_mid.get(mid).copied() else {
            return;
        };
        let Some(p) = self.txs.get(&seq) else {
            return;
        };
        let code = status::map(MSRP_TO_SIP, status);
        let a = if code == 200 {
            plain(200, "accepted by the MSRP side")
        } else {
            let s = self.sessions.get_mut(&p.session);
            let accept = s.as_ref().map(|s| s.peer_accept.join(", "));
            if let Some(s) = s {
                s.failed += 1;
            }
            Answer {
                accept: accept.filter(|a| code == 415 && !a.is_empty()),
                ..plain(
                    code,
                    &format!(
                        "MSRP side: {status} {}",
                        crate::codec::encode::reason(status)
                    ),
                )
            }
        };
        self.answer(seq, a);
    }

    // ------------------------------------------------------------ MSRP -> MESSAGE

    /// A whole MSRP message received in gateway session `id`: one MESSAGE with the
    /// session's coordinates and the message's content type (message/cpim passes as
    /// it is, RFC 3862). Refused with a REPORT 413 when over the body limit or when it
    /// is over [`UDP_MAX_BODY`] and the next hop is UDP-only (RFC 3428 §8), and 408
    /// (transient) when the session's outgoing queue is full.
    fn msrp_in(
        &mut self,
        now: Instant,
        id: u64,
        sid: &str,
        message_id: &str,
        content_type: &str,
        body: &Rendered,
    ) {
        let body = match body {
            Rendered::Text(t) => Bytes::from(t.clone().into_bytes()),
            Rendered::Base64(b) => {
                use base64::Engine as _;
                match base64::engine::general_purpose::STANDARD.decode(b) {
                    Ok(v) => Bytes::from(v),
                    Err(_) => Bytes::new(),
                }
            }
        };
        let Some(s) = self.sessions.get_mut(&id) else {
            return;
        };
        s.last_any = now;
        let refuse = if body.is_empty() || content_type.trim().is_empty() {
            Some(400)
        } else if body.len() > self.cfg.max_body || (body.len() > UDP_MAX_BODY && s.hop.udp_only) {
            Some(413)
        } else if s.out.len() >= self.cfg.max_out_queue {
            Some(408)
        } else {
            None
        };
        if let Some(status) = refuse {
            s.failed += 1;
            tracing::debug!(key = %s.key, status, len = body.len(), "MSRP message not turned into a MESSAGE");
            self.actions.push_back(GwAction::Report {
                ua_session: sid.to_string(),
                message_id: message_id.to_string(),
                status,
            });
            return;
        }
        s.out.push_back(Outgoing {
            message_id: message_id.to_string(),
            content_type: content_type.to_string(),
            body,
        });
        self.send_next(id);
    }

    /// The next MESSAGE of session `id`, when none is in flight (RFC 3428 §8: no new
    /// MESSAGE transaction to a URI while one is pending).
    fn send_next(&mut self, id: u64) {
        let Some(s) = self.sessions.get_mut(&id) else {
            return;
        };
        if s.out_inflight.is_some() {
            return;
        }
        let Some(o) = s.out.pop_front() else {
            return;
        };
        let out_id = self.next_id;
        self.next_id += 1;
        self.actions.push_back(GwAction::SendMessage(OutMessage {
            id: out_id,
            key: s.key.clone(),
            from: s.sip.from.clone(),
            to: s.sip.to.clone(),
            ruri: s.sip.ruri.clone(),
            next_hop: s.hop.proxy.clone(),
            content_type: o.content_type.clone(),
            body: o.body.clone(),
            tcp: o.body.len() > UDP_MAX_BODY,
        }));
        s.out_inflight = Some((out_id, o));
        self.out_ids.insert(out_id, id);
    }

    /// The final response to [`OutMessage`] `id` (408 when none came, RFC 3261
    /// §17.1.2.2 timer F; 503 for a transport error, §8.1.3.1): a REPORT for the MSRP
    /// message it carried, status by [`SIP_TO_MSRP`]. Provisional responses are
    /// ignored.
    pub fn handle_message_response(&mut self, now: Instant, id: u64, code: u16) {
        if code < 200 {
            return;
        }
        let Some(sess) = self.out_ids.remove(&id) else {
            return;
        };
        let Some(s) = self.sessions.get_mut(&sess) else {
            return;
        };
        let Some((_, o)) = s.out_inflight.take_if(|(i, _)| *i == id) else {
            return;
        };
        s.last_any = now;
        let status = status::map(SIP_TO_MSRP, code);
        if status == 200 {
            s.to_sip += 1;
        } else {
            s.failed += 1;
        }
        if let Some(sid) = s.ua_session.clone() {
            self.actions.push_back(GwAction::Report {
                ua_session: sid,
                message_id: o.message_id,
                status,
            });
        }
        self.send_next(sess);
    }

    // ------------------------------------------------------------- time and API

    /// Runs what is due at `now`: delivery waits (202), retries, idle sessions.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(&(at, timer)) = self.timers.first() {
            if at > now {
                break;
            }
            self.timers.pop_first();
            match timer {
                Timer::Wait(seq) => {
                    let a = match self.txs.get(&seq).map(|p| &p.state) {
                        Some(TxState::Sent(_)) => {
                            plain(202, "sent in the MSRP session, delivery not yet confirmed")
                        }
                        _ => plain(202, "queued for the MSRP session"),
                    };
                    self.answer(seq, a);
                }
                Timer::Retry(id) => {
                    if let Some(s) = self.sessions.get_mut(&id)
                        && s.retry_at == Some(at)
                    {
                        s.retry_at = None;
                        self.flush(id);
                    }
                }
                Timer::Idle(id) => {
                    let Some(s) = self.sessions.get(&id) else {
                        continue;
                    };
                    if s.idle_at != at {
                        continue;
                    }
                    let due = self.idle_due(s);
                    if due > now {
                        self.timers.insert((due, Timer::Idle(id)));
                        if let Some(s) = self.sessions.get_mut(&id) {
                            s.idle_at = due;
                        }
                        continue;
                    }
                    let why = if s.last_message + self.cfg.message_timeout <= now {
                        "message timeout"
                    } else {
                        "session timeout"
                    };
                    self.finish(
                        now,
                        id,
                        Finish::Ended {
                            why: why.into(),
                            end_ua: true,
                        },
                    );
                }
            }
        }
    }

    /// Ends the session of `key` (`DELETE /v1/gateway/sessions/{key}`): `false` when
    /// there is none. Its MESSAGEs still waiting are answered: 202 for those already
    /// handed to the MSRP side (they may yet be delivered), [`ENDED_CODE`] for those
    /// that never went; the user agent's session is ended.
    pub fn end(&mut self, now: Instant, key: &str) -> bool {
        let Some(id) = self.by_key.get(key).copied() else {
            return false;
        };
        self.finish(
            now,
            id,
            Finish::Ended {
                why: "operator".into(),
                end_ua: true,
            },
        );
        true
    }

    /// The sessions, for the API, by key.
    pub fn sessions(&self) -> Vec<SessionInfo> {
        let mut v: Vec<SessionInfo> = self
            .sessions
            .values()
            .map(|s| SessionInfo {
                key: s.key.clone(),
                state: match s.state {
                    State::Starting => "starting",
                    State::Calling => "calling",
                    State::Up => "up",
                },
                origin: s.origin.as_str(),
                ua_session: s.ua_session.clone(),
                sip: s.sip.clone(),
                msrp: s.msrp.clone(),
                queued: s.queue.len() + usize::from(s.sending.is_some()),
                queued_bytes: s.queued_bytes,
                waiting: s.waiting,
                to_msrp: s.to_msrp,
                to_sip: s.to_sip,
                failed: s.failed,
                started: s.started,
                last_activity: s.last_any,
                last_message: s.last_message,
            })
            .collect();
        v.sort_by(|a, b| a.key.cmp(&b.key));
        v
    }

    /// Session `id` is over: every MESSAGE of it still unanswered gets its answer,
    /// every trace of it goes, the events are raised.
    fn finish(&mut self, _now: Instant, id: u64, f: Finish) {
        let Some(mut s) = self.sessions.remove(&id) else {
            return;
        };
        self.by_key.remove(&s.key);
        if let Some(u) = &s.ua_session {
            self.by_ua.remove(u);
        }
        if s.state == State::Starting {
            self.abandoned.insert(id);
        }
        self.timers.remove(&(s.idle_at, Timer::Idle(id)));
        if let Some(at) = s.retry_at {
            self.timers.remove(&(at, Timer::Retry(id)));
        }
        if let Some((oid, _)) = &s.out_inflight {
            self.out_ids.remove(oid);
        }
        // Messages never handed over: put the one in hand back in line.
        if let Some(q) = s.sending.take() {
            self.in_hand.remove(&q.seq);
            s.queue.push_front(q);
        }
        let (code, reason) = match &f {
            Finish::SetupFailed { code, reason } => (
                status::map(SETUP_TO_SIP, *code),
                format!("MSRP session set-up failed: {code} {reason}"),
            ),
            Finish::Ended { why, .. } => (
                ENDED_CODE,
                format!("the MSRP session ended before the message went ({why})"),
            ),
        };
        let mut lost = 0usize;
        for q in std::mem::take(&mut s.queue) {
            if self.txs.contains_key(&q.seq) {
                self.answer_gone(q.seq, plain(code, &reason));
            } else {
                lost += 1;
            }
        }
        // Handed over, acceptance not known: 202 (they may still be delivered).
        for seq in std::mem::take(&mut s.txs) {
            self.answer_gone(
                seq,
                plain(202, "sent in the MSRP session, delivery not confirmed"),
            );
        }
        if let Finish::Ended { end_ua: true, .. } = &f
            && let Some(u) = &s.ua_session
        {
            self.actions.push_back(GwAction::EndSession {
                ua_session: u.clone(),
            });
        }
        match &f {
            Finish::SetupFailed { code, reason } => {
                tracing::info!(key = %s.key, code, %reason, "gateway session set-up failed");
                self.events.push_back(GatewayEvent::SetupFailed {
                    key: s.key.clone(),
                    from: s.msrp.from.clone(),
                    to: s.msrp.to.clone(),
                    ruri: s.msrp.ruri.clone(),
                    code: *code,
                    reason: reason.clone(),
                });
                if s.announced {
                    self.events.push_back(GatewayEvent::SessionEnd {
                        key: s.key.clone(),
                        why: format!("set-up failed: {code} {reason}"),
                    });
                }
            }
            Finish::Ended { why, .. } => {
                tracing::info!(key = %s.key, %why, "gateway session ended");
                self.events.push_back(GatewayEvent::SessionEnd {
                    key: s.key.clone(),
                    why: why.clone(),
                });
            }
        }
        if lost > 0 && s.notify {
            let body = format!(
                "{lost} message(s) to {} accepted by the gateway were not delivered: {reason}",
                s.msrp.to
            );
            self.actions.push_back(GwAction::SendMessage(OutMessage {
                id: 0,
                key: s.key.clone(),
                from: self.cfg.notice_from.clone().unwrap_or(s.sip.from.clone()),
                to: s.sip.to.clone(),
                ruri: s.sip.ruri.clone(),
                next_hop: s.hop.proxy.clone(),
                content_type: "text/plain;charset=utf-8".into(),
                tcp: body.len() > UDP_MAX_BODY,
                body: Bytes::from(body),
            }));
        }
    }

    /// [`Gateway::answer`] for a session already removed from the table.
    fn answer_gone(&mut self, seq: u64, a: Answer<()>) {
        if let Some(p) = self.txs.remove(&seq) {
            self.timers.remove(&(p.wait_at, Timer::Wait(seq)));
            if let TxState::Sent(mid) = &p.state {
                self.by_mid.remove(mid);
            }
            self.respond(p.tx, a);
        }
    }
}

/// From, To (header values as written) and the Request-URI of a request.
fn parties(msg: &SipMessage) -> (&str, &str, &str) {
    (
        msg.get(HeaderName::From).unwrap_or(""),
        msg.get(HeaderName::To).unwrap_or(""),
        msg.request_uri(),
    )
}

/// An answer with `code` and `reason` and nothing else.
fn plain(code: u16, reason: &str) -> Answer<()> {
    Answer {
        tx: (),
        code,
        reason: if reason.is_empty() {
            reason_of(code).to_string()
        } else {
            reason.to_string()
        },
        retry_after: None,
        accept: None,
        accept_encoding: None,
    }
}

/// A session's parts that every new one starts with.
fn fresh(now: Instant) -> Session {
    Session {
        key: String::new(),
        origin: Origin::Message,
        state: State::Starting,
        ua_session: None,
        sip: Coords::default(),
        hop: Hop::default(),
        msrp: Coords::default(),
        peer_accept: Vec::new(),
        notify: false,
        announced: false,
        queue: VecDeque::new(),
        queued_bytes: 0,
        sending: None,
        retry_at: None,
        txs: BTreeSet::new(),
        waiting: 0,
        out: VecDeque::new(),
        out_inflight: None,
        started: now,
        last_any: now,
        last_message: now,
        idle_at: now,
        to_msrp: 0,
        to_sip: 0,
        failed: 0,
    }
}
