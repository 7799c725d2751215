//! Routing (RFC 4976 §6.4): where a frame goes, how its head is rewritten for the next
//! hop, and the hand-over of a request for a session of another core.

use super::*;

/// How the previous hop addressed a frame: the head as it arrived at this relay (shared
/// with the read buffer, no copy) and where its parts are. Responses and REPORTs to the
/// previous hop and the sender are addressed from these (RFC 4975 §7.2, RFC 4976 §6.4.1).
/// One shared buffer, so passing it on costs one reference count, not one per part.
#[derive(Debug, Clone)]
pub(super) struct PrevHop {
    pub(super) raw: Bytes,
    pub(super) tid: (u16, u16),
    pub(super) from_first: (u16, u16),
    pub(super) from_all: (u16, u16),
    pub(super) to_first: (u16, u16),
    pub(super) message_id: (u16, u16),
}

impl PrevHop {
    pub(super) fn of(raw: &Bytes, head: &Head<'_>) -> PrevHop {
        PrevHop {
            raw: raw.clone(),
            tid: span_of(raw, head.tid()),
            from_first: span_of(raw, head.from_path().first().as_str()),
            from_all: span_of(raw, head.from_path().as_str()),
            to_first: span_of(raw, head.to_path().first().as_str()),
            message_id: head.message_id().map_or((0, 0), |m| span_of(raw, m)),
        }
    }
    pub(super) fn part(&self, span: (u16, u16)) -> &str {
        core::str::from_utf8(self.bytes(span)).unwrap_or("")
    }
    /// A part as bytes, for writing out: no UTF-8 check (the head was checked whole).
    pub(super) fn bytes(&self, (s, e): (u16, u16)) -> &[u8] {
        self.raw
            .get(usize::from(s)..usize::from(e))
            .unwrap_or_default()
    }
    /// The request's transaction id.
    pub(super) fn tid(&self) -> &str {
        self.part(self.tid)
    }
    /// The first From-Path URI: the previous hop.
    pub(super) fn prev_uri(&self) -> &str {
        self.part(self.from_first)
    }
    /// The whole From-Path: the way back to the sender.
    pub(super) fn return_path(&self) -> &str {
        self.part(self.from_all)
    }
    /// The first To-Path URI: this relay as the previous hop addressed it.
    pub(super) fn our_uri(&self) -> &str {
        self.part(self.to_first)
    }
    /// The Message-ID ("" when the request had none).
    pub(super) fn message_id(&self) -> &str {
        self.part(self.message_id)
    }
}

/// Where `s`, a slice of `raw`, lies in it (heads are under 64 KiB: the codec refuses
/// larger ones).
pub(super) fn span_of(raw: &[u8], s: &str) -> (u16, u16) {
    let start = (s.as_ptr() as usize).wrapping_sub(raw.as_ptr() as usize);
    match start.checked_add(s.len()) {
        Some(end) if end <= raw.len() => match (u16::try_from(start), u16::try_from(end)) {
            (Ok(a), Ok(b)) => (a, b),
            _ => (0, 0),
        },
        _ => (0, 0),
    }
}

/// What the relay does with a request once its route is known depends on these only:
/// taken from the parsed head where it is routed, so that a request handed to another
/// core need not be parsed there again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Request {
    pub(super) kind: RequestKind,
    pub(super) fr: FailureReport,
    pub(super) range: Option<ByteRange>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RequestKind {
    Send,
    Report,
    /// AUTH, NICKNAME or another method: answered along the whole From-Path.
    Other,
}

impl Request {
    pub(super) fn of(method: Method<'_>, head: &Head<'_>) -> Request {
        Request {
            kind: match method {
                Method::Send => RequestKind::Send,
                Method::Report => RequestKind::Report,
                _ => RequestKind::Other,
            },
            fr: head.failure_report(),
            range: head.byte_range(),
        }
    }
}

/// A request for a session of another core (see [`MeshMsg::Handoff`]): everything the
/// owning core needs to pass it on ([`Relay::deliver`]) or refuse it.
#[derive(Debug)]
pub struct Handoff {
    pub(super) origin: Origin,
    pub(super) slot: u32,
    pub(super) key: u64,
    /// The To-Path ends at this relay: there is no next hop (481 once the session is
    /// found to exist, as on the owning core).
    pub(super) no_next_hop: bool,
    pub(super) req: Request,
    pub(super) prev: PrevHop,
    /// The head for the next hop, with `tid`; empty when `no_next_hop`.
    pub(super) fwd: Bytes,
    /// Where the send queue may edit `fwd` to interrupt the chunk.
    pub(super) resume: Option<Box<Resumable>>,
    pub(super) tid: u64,
    pub(super) has_body: bool,
}

/// Why [`Relay::check_request`] stops a request: dropped (the connection is being
/// closed), or refused with a status.
pub(super) enum Refusal {
    Drop,
    Reject(u16, &'static str),
}

impl Handoff {
    /// The bytes it queues on the owner's connection.
    pub fn payload_len(&self) -> usize {
        self.fwd.len()
    }
}

/// A request rewritten for its next hop, ready to be queued there.
pub(super) struct Outgoing {
    pub(super) dest: ConnId,
    pub(super) tid: u64,
    pub(super) fwd: Bytes,
    pub(super) resume: Option<Box<Resumable>>,
    pub(super) has_body: bool,
}

/// Why a request from elsewhere for a client's session is refused (RFC 4976 §6.4).
pub(super) const NOT_TOWARD_CLIENT: &str = "next To-Path URI is not the client of this session";

impl Relay {
    // ----- routing -----

    /// Routes a frame whose head arrived at this relay as `orig`. `start` is its start
    /// line as the scanner parsed it, so it is not read twice. Each hop through this
    /// relay itself (§6.4.2) routes the head again with our URI moved; a hop to a session
    /// of another core ends here ([`MeshMsg::Handoff`]).
    pub(super) fn route(
        &mut self,
        now: Instant,
        origin: Origin,
        orig: Bytes,
        start: Option<StartInfo>,
        has_body: bool,
    ) {
        let mut head: Option<Bytes> = None;
        let mut start = start;
        let mut prev = None;
        // Each local hop removes one URI from the To-Path, so this ends; the bound is
        // a guard.
        for _ in 0..crate::codec::header::MAX_PATH_URIS {
            let raw = head.as_ref().unwrap_or(&orig);
            match self.route_step(now, origin, raw, &orig, start.take(), &mut prev, has_body) {
                Step::Done(stream) => return self.set_stream(origin, stream),
                Step::Again(h) => head = Some(h),
            }
        }
        self.set_stream(origin, Stream::discard());
    }

    /// Where the rest of `origin`'s current frame goes. A frame that goes nowhere (every
    /// response, every refused request) gets no entry: the body pieces and end-line of
    /// an origin without one are dropped just the same, and the entry would be copied
    /// into the map and out again for nothing.
    pub(super) fn set_stream(&mut self, origin: Origin, stream: Stream) {
        if stream.dest == Dest::Discard {
            self.streams.remove(&origin);
        } else {
            self.streams.insert(origin, stream);
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn route_step(
        &mut self,
        now: Instant,
        origin: Origin,
        raw: &Bytes,
        orig: &Bytes,
        start: Option<StartInfo>,
        prev: &mut Option<PrevHop>,
        has_body: bool,
    ) -> Step {
        let parsed = match start {
            Some(start) => Head::parse_after_start_with(raw, start, Some(&mut self.paths)),
            None => Head::parse(raw),
        };
        let head = match parsed {
            Ok(h) if has_body && h.is_request() && h.content_type().is_none() => {
                self.malformed(origin, raw, HeadError::MissingContentType);
                return Step::Done(Stream::discard());
            }
            Ok(h) => h,
            Err(e) => {
                self.malformed(origin, raw, e);
                return Step::Done(Stream::discard());
            }
        };
        let Some(method) = head.method() else {
            self.handle_response(now, origin, &head);
            return Step::Done(Stream::discard());
        };
        let p = prev
            .get_or_insert_with(|| {
                if raw.as_ptr() == orig.as_ptr() {
                    PrevHop::of(raw, &head)
                } else {
                    match Head::parse(orig) {
                        Ok(o) => PrevHop::of(orig, &o),
                        Err(_) => PrevHop::of(raw, &head),
                    }
                }
            })
            .clone();
        if let Err(refusal) = self.check_request(origin, &head, method) {
            if let Refusal::Reject(code, why) = refusal {
                self.reject(now, origin, &head, &p, code, why);
            }
            return Step::Done(Stream::discard());
        }
        let first = head.to_path().first();
        let Some(sid) = first.session_id() else {
            // Addressed to the relay itself.
            if method == Method::Auth && head.to_path().len() == 1 {
                self.handle_auth(now, origin, &head);
            } else {
                self.reject(now, origin, &head, &p, 403, "not a session of this relay");
            }
            return Step::Done(Stream::discard());
        };
        let Some(sk) = SessionKey::decode(sid) else {
            self.reject(now, origin, &head, &p, 481, "unknown session");
            return Step::Done(Stream::discard());
        };
        if sk.core != self.cfg.core {
            if sk.core >= self.cfg.cores {
                self.reject(now, origin, &head, &p, 481, "unknown session");
                return Step::Done(Stream::discard());
            }
            return Step::Done(self.hand_off(origin, &head, method, p, sk, has_body));
        }
        // One look-up for the owner and, for a request from elsewhere, whether it goes
        // on to the owner's client (§6.4).
        let found = self.live_session(now, sk.slot, sk.key).map(|s| {
            let owner = ConnId {
                core: self.cfg.core,
                slot: s.slot,
                generation: s.generation,
            };
            let from_owner = origin == Origin::Conn(owner);
            (
                owner,
                from_owner || toward_client(s, next_uri_text(head.to_path())),
            )
        });
        let Some((owner, toward)) = found else {
            self.reject(now, origin, &head, &p, 481, "unknown or expired session");
            return Step::Done(Stream::discard());
        };
        if head.to_path().len() == 1 {
            if method == Method::Auth && origin == Origin::Conn(owner) {
                self.handle_auth(now, origin, &head);
            } else {
                self.reject(now, origin, &head, &p, 481, "no next hop after this relay");
            }
            return Step::Done(Stream::discard());
        }
        if origin != Origin::Conn(owner) {
            // From elsewhere: it may only go to the session's owner (§6.4), and only when
            // the next URI is that client's.
            if !toward {
                self.reject(now, origin, &head, &p, 403, NOT_TOWARD_CLIENT);
                return Step::Done(Stream::discard());
            }
            return Step::Done(self.deliver(now, origin, &head, p, owner, has_body));
        }
        // From the owner: on to the next URI.
        let Some(next) = head.to_path().uris().nth(1) else {
            return Step::Done(Stream::discard());
        };
        if self.is_ours(&next) {
            let mut b = BytesMut::with_capacity(raw.len() + 8);
            encode::forward_head(&mut b, &head, head.tid());
            return Step::Again(b.freeze());
        }
        let host = next.host().to_string().to_ascii_lowercase();
        let port = next.port().unwrap_or(MSRP_PORT);
        let transport = if next.is_secure() {
            Transport::Tls
        } else {
            Transport::Tcp
        };
        let Some(dest) = self.outbound_conn(now, host, port, transport) else {
            self.reject(now, origin, &head, &p, 403, "relay at its connection limit");
            return Step::Done(Stream::discard());
        };
        Step::Done(self.deliver(now, origin, &head, p, dest, has_body))
    }

    /// The checks every request passes before it is routed (RFC 4976 §6.1, §6.2, §6.4):
    /// addressed to us, from a relay only for its own host, a SEND with a Message-ID,
    /// paths within their limits, and (if configured) a method we pass on.
    fn check_request(
        &mut self,
        origin: Origin,
        head: &Head<'_>,
        method: Method<'_>,
    ) -> Result<(), Refusal> {
        let first = head.to_path().first();
        if !self.is_ours(&first) {
            let peer = match origin {
                Origin::Conn(c) if c.core == self.cfg.core => {
                    self.conn(c.slot, c.generation).and_then(|x| x.kind.peer())
                }
                _ => None,
            };
            tracing::warn!(
                peer = peer.map(tracing::field::display),
                to = first.as_str(),
                "first To-Path URI is not this relay; dropping the connection (RFC 4976 §6.2)"
            );
            if let Origin::Conn(c) = origin
                && c.core == self.cfg.core
            {
                self.close(c.slot, c.generation, CloseReason::NotAddressedToUs);
            }
            return Err(Refusal::Drop);
        }
        if let Origin::Conn(c) = origin
            && let Some(Conn {
                kind: ConnKind::Inbound {
                    relay: Some(id), ..
                },
                ..
            }) = self
                .conn(c.slot, c.generation)
                .filter(|_| c.core == self.cfg.core)
            && !id.matches(head.from_path().first().host_str())
        {
            // A relay identified by its certificate speaks for its own host only
            // (RFC 4976 §6.1, §6.3).
            tracing::info!(
                from = head.from_path().first().as_str(),
                "From-Path host is not in the peer's certificate"
            );
            return Err(Refusal::Reject(
                403,
                "From-Path host does not match the peer certificate",
            ));
        }
        if method == Method::Send && head.message_id().is_none() {
            return Err(Refusal::Reject(400, "SEND without Message-ID"));
        }
        let max_uris = self
            .cfg
            .max_path_uris
            .min(crate::codec::header::MAX_PATH_URIS);
        if head.to_path().len() > max_uris {
            return Err(Refusal::Reject(400, "To-Path has too many URIs"));
        }
        if head.from_path().len() >= max_uris {
            // Forwarding adds our URI to From-Path; it would exceed the limit.
            return Err(Refusal::Reject(400, "From-Path too long to forward"));
        }
        if self.cfg.block_unknown_methods && matches!(method, Method::Other(_)) {
            return Err(Refusal::Reject(501, "method not allowed here"));
        }
        Ok(())
    }

    /// A request for a session of core `sk.core`: rewritten here for the next hop and
    /// handed over ([`RelayMsg::Handoff`]); the owner checks the session and passes it on.
    fn hand_off(
        &mut self,
        origin: Origin,
        head: &Head<'_>,
        method: Method<'_>,
        p: PrevHop,
        sk: SessionKey,
        has_body: bool,
    ) -> Stream {
        // The owning core decides the rest; for probation (§6.1) a request passed on
        // to one of our sessions counts as successful here, on the sender's core.
        self.mark_succeeded(origin);
        let no_next_hop = head.to_path().len() == 1;
        let tid = self.new_tid();
        let (fwd, resume) = match no_next_hop {
            true => (Bytes::new(), None),
            false => forward_bytes(head, tid, has_body),
        };
        let handoff = Handoff {
            origin,
            slot: sk.slot,
            key: sk.key,
            no_next_hop,
            req: Request::of(method, head),
            prev: p,
            fwd,
            resume,
            tid,
            has_body,
        };
        self.mesh(sk.core, RelayMsg::Handoff(Box::new(handoff)));
        Stream {
            dest: Dest::Core(sk.core),
            bp: Some((sk.core, sk.slot)),
            ..Stream::discard()
        }
    }

    /// Passes the head on to `dest` (a connection of this core) with a new transaction id
    /// and our URI moved from To-Path to From-Path (§6.4.1, §6.4.2).
    pub(super) fn deliver(
        &mut self,
        now: Instant,
        origin: Origin,
        head: &Head<'_>,
        prev: PrevHop,
        dest: ConnId,
        has_body: bool,
    ) -> Stream {
        let tid = self.new_tid();
        let (fwd, resume) = forward_bytes(head, tid, has_body);
        let method = head.method().unwrap_or(Method::Report);
        let out = Outgoing {
            dest,
            tid,
            fwd,
            resume,
            has_body,
        };
        self.pass_on(now, origin, Request::of(method, head), prev, out)
    }

    /// Whether a request from elsewhere for session `key` goes on to its client: the
    /// To-Path URI after ours has the host and port of the client's own URI (§6.4).
    pub(super) fn leads_to_client(&self, key: u64, next: Option<&str>) -> bool {
        self.sessions
            .get(&key)
            .is_some_and(|s| toward_client(s, next))
    }

    /// The session `slot`/`key` of this core, if it exists and has not expired.
    fn live_session(&self, now: Instant, slot: u32, key: u64) -> Option<&Session> {
        self.sessions
            .get(&key)
            .filter(|s| s.slot == slot && s.expires > now)
    }

    /// The session `slot`/`key` of this core, if it exists and has not expired: the
    /// connection that owns it.
    pub(super) fn session_owner(&self, now: Instant, slot: u32, key: u64) -> Option<ConnId> {
        match self.sessions.get(&key) {
            Some(s) if s.slot == slot && s.expires > now => Some(ConnId {
                core: self.cfg.core,
                slot: s.slot,
                generation: s.generation,
            }),
            _ => None,
        }
    }

    /// A request handed over by another core for one of our sessions: the checks that
    /// need the session, then on to its owner (§6.4), as [`Relay::route_step`] would.
    pub(super) fn take_handoff(&mut self, now: Instant, h: Handoff) -> Stream {
        let (code, why) = match self.session_owner(now, h.slot, h.key) {
            None => (481, "unknown or expired session"),
            Some(_) if h.no_next_hop => (481, "no next hop after this relay"),
            Some(_) if !self.leads_to_client(h.key, next_uri(&h.fwd)) => (403, NOT_TOWARD_CLIENT),
            Some(owner) => {
                let out = Outgoing {
                    dest: owner,
                    tid: h.tid,
                    fwd: h.fwd,
                    resume: h.resume,
                    has_body: h.has_body,
                };
                return self.pass_on(now, h.origin, h.req, h.prev, out);
            }
        };
        tracing::debug!(code, why, "request refused");
        self.refuse(now, h.origin, h.req, &h.prev, code, why);
        Stream::discard()
    }

    /// Queues the rewritten head for its destination and gives the stream for the rest
    /// of the frame, with the 200 it owes; opens the transaction that awaits the next
    /// hop's response.
    pub(super) fn pass_on(
        &mut self,
        now: Instant,
        origin: Origin,
        req: Request,
        prev: PrevHop,
        out: Outgoing,
    ) -> Stream {
        let Outgoing {
            dest,
            tid,
            fwd,
            resume,
            has_body,
        } = out;
        bump(&self.counters.bytes_out, fwd.len() as u64);
        if dest.core == self.cfg.core
            && let Some(conn) = self.conn_mut(dest.slot, dest.generation)
        {
            conn.bytes_out += fwd.len() as u64;
        }
        self.write_part(dest, fwd, Part::Start(origin, resume));
        let cross = matches!(origin, Origin::Conn(c) if c.core != self.cfg.core);
        if cross {
            bump(&self.counters.deliveries_cross_core, 1);
        } else {
            bump(&self.counters.deliveries_same_core, 1);
        }
        self.mark_succeeded(origin);
        let fr = req.fr;
        let (reply, txn) = match req.kind {
            RequestKind::Send => {
                let reply = match (fr, origin) {
                    (FailureReport::Yes, Origin::Conn(c)) => Some((c, prev.clone())),
                    _ => None,
                };
                let txn = (fr != FailureReport::No).then(|| {
                    (
                        TxnKind::Send {
                            fr,
                            range: req.range,
                            prev,
                        },
                        origin,
                    )
                });
                (reply, txn)
            }
            RequestKind::Report => (None, None),
            RequestKind::Other => (None, Some((TxnKind::Other { prev }, origin))),
        };
        let opened = match txn {
            Some((kind, reply)) => {
                let t = Txn {
                    kind,
                    reply,
                    deadline: None,
                    pieces: 1,
                };
                match self.conn_mut(dest.slot, dest.generation) {
                    Some(c) => {
                        c.txns.insert(tid, t);
                        self.txn_count += 1;
                        bump(&self.counters.transactions, 1);
                        true
                    }
                    None => {
                        // The next hop is gone already: nothing will answer.
                        self.fail_txn(now, t, 481);
                        false
                    }
                }
            }
            None => false,
        };
        Stream {
            dest: Dest::Conn(dest),
            bp: Some((dest.core, dest.slot)),
            tid,
            has_body,
            reply,
            txn: opened,
        }
    }
}

/// `head` rewritten for the next hop (RFC 4976 §6.4.1, §6.4.2) with our transaction id
/// `tid`, and the blank line when a body follows.
///
/// A SEND whose chunk may carry more than 2048 octets (its Byte-Range end is `*`, or
/// further than that from its start) goes out interruptible: its range-end becomes `*`
/// (RFC 4975 §7.1.1 allows interrupting only such chunks), and the send queue is told
/// where to edit the head to resume it ([`Resumable`]).
pub(super) fn forward_bytes(
    head: &Head<'_>,
    tid: u64,
    has_body: bool,
) -> (Bytes, Option<Box<Resumable>>) {
    let tid = TidText::of(tid);
    let mut b = BytesMut::with_capacity(head.as_bytes().len() + 96);
    let range = match (head.method(), head.byte_range(), head.byte_range_span()) {
        (Some(Method::Send), Some(r), Some(span)) if has_body => r
            .end
            .is_none_or(|e| e.saturating_sub(r.start) >= 2048)
            .then_some((r, span)),
        _ => None,
    };
    let Some((r, span)) = range else {
        encode::forward_head(&mut b, head, tid.as_str());
        if has_body {
            encode::blank_line(&mut b);
        }
        return (b.freeze(), None);
    };
    let edited = encode::forward_head_with(&mut b, head, tid.as_str(), |b| {
        // The rest of the head as written, with the Byte-Range value made anew.
        let (s, e) = span;
        let rest = head.rest();
        b.extend_from_slice(&rest[..s]);
        let v0 = b.len();
        let mut n = itoa::Buffer::new();
        b.extend_from_slice(n.format(r.start).as_bytes());
        b.extend_from_slice(b"-*/");
        match r.total {
            Some(t) => b.extend_from_slice(n.format(t).as_bytes()),
            None => b.extend_from_slice(b"*"),
        }
        let v1 = b.len();
        b.extend_from_slice(&rest[e..]);
        (v0, v1)
    });
    let Some((v0, v1)) = edited else {
        return (b.freeze(), None);
    };
    encode::blank_line(&mut b);
    let t0 = "MSRP ".len();
    let resume = match (u16::try_from(v0), u16::try_from(v1)) {
        (Ok(a), Ok(z)) => Some(Box::new(Resumable {
            tid: (t0 as u16, (t0 + tid.as_str().len()) as u16),
            range: (a, z),
            start: r.start,
            total: r.total,
        })),
        _ => None,
    };
    (b.freeze(), resume)
}

/// Whether `next`, the To-Path URI after ours, leads to the client of session `s`: its
/// host and port are the client's (RFC 4976 §6.4).
fn toward_client(s: &Session, next: Option<&str>) -> bool {
    let Some(next) = next else {
        return false;
    };
    // Nearly always the client's URI names its authority exactly as its AUTH did:
    // compare the bytes; anything else (case, user info, a default port written out) is
    // parsed and compared as RFC 4975 §6.1 says.
    let b = next.as_bytes();
    let after = match b.get(4) {
        Some(b':') => 7,
        Some(b's' | b'S') => 8,
        _ => 0,
    };
    let a = s.client_authority.as_bytes();
    if let Some(rest) = b.get(after..)
        && rest.len() > a.len()
        && rest[..a.len()] == *a
        && matches!(rest[a.len()], b'/' | b';')
    {
        return true;
    }
    let Some((host, p)) = authority(next) else {
        return false;
    };
    let port = |p: Option<u16>| p.unwrap_or(MSRP_PORT);
    port(p) == port(s.client.1) && host.eq_ignore_ascii_case(&s.client.0)
}

/// The first To-Path URI of a head we rewrote for the next hop ([`forward_bytes`]): the
/// URI after ours in the request as it came.
pub(super) fn next_uri(fwd: &[u8]) -> Option<&str> {
    let line = memchr::memmem::find(fwd, b"\r\nTo-Path: ")? + 11;
    let rest = &fwd[line..];
    let end = memchr::memchr2(b' ', b'\r', rest)?;
    core::str::from_utf8(&rest[..end]).ok()
}

/// The second URI of a path, as written (the path was validated whole when parsed).
fn next_uri_text<'a>(path: &Path<'a>) -> Option<&'a str> {
    let text = path.as_str();
    let b = text.as_bytes();
    let start = memchr::memchr(b' ', b)? + 1;
    let end = memchr::memchr(b' ', &b[start..]).map_or(b.len(), |i| start + i);
    text.get(start..end)
}

/// Host and port of an MSRP URI (RFC 4975 §9), found without parsing the rest: what
/// the §6.4 check compares, on every request from elsewhere.
pub(super) fn authority(uri: &str) -> Option<(&str, Option<u16>)> {
    let (scheme, rest) = uri.split_once("://")?;
    if !(scheme.eq_ignore_ascii_case("msrp") || scheme.eq_ignore_ascii_case("msrps")) {
        return None;
    }
    let end = rest.find(['/', ';']).unwrap_or(rest.len());
    let auth = &rest[..end];
    let hostport = auth.rsplit_once('@').map_or(auth, |(_, h)| h);
    let (host, port) = match hostport.rfind([':', ']']) {
        Some(i) if hostport.as_bytes()[i] == b':' => (&hostport[..i], Some(&hostport[i + 1..])),
        _ => (hostport, None),
    };
    let port = match port {
        Some(p) => Some(p.parse().ok()?),
        None => None,
    };
    Some((host, port))
}

#[cfg(test)]
mod tests {
    use super::authority;

    #[test]
    fn authority_of_msrp_uris() {
        let cases = [
            (
                "msrp://a.example.com:7001/x;tcp",
                Some(("a.example.com", Some(7001))),
            ),
            (
                "msrps://u@[2001:db8::1]:2856/s;tcp",
                Some(("[2001:db8::1]", Some(2856))),
            ),
            ("msrp://[::1]/s;tcp", Some(("[::1]", None))),
            ("MSRP://Host;tcp", Some(("Host", None))),
            ("msrp://h:99999/s;tcp", None),
            ("sip:alice@example.com", None),
        ];
        for (uri, want) in cases {
            assert_eq!(authority(uri), want, "{uri}");
        }
    }
}
