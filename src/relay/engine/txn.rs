//! Transactions and reports (RFC 4976 §6.4.1, §6.4.3, RFC 4975 §7.1.2): responses from
//! the next hop, REPORTs to senders, refusals and answers to malformed requests.

use super::*;

#[derive(Debug)]
pub(super) enum TxnKind {
    /// A SEND: on an error response or timeout, REPORT to the sender (§6.4.1, §6.4.3).
    Send {
        fr: FailureReport,
        range: Option<ByteRange>,
        prev: PrevHop,
    },
    /// Another request: its response goes back to `reply` with the original tid; if the
    /// next hop fails it, an error response goes back along its From-Path instead.
    Other { prev: PrevHop },
}

#[derive(Debug)]
pub(super) struct Txn {
    pub(super) kind: TxnKind,
    /// The previous hop of the request (where responses and REPORTs go first).
    pub(super) reply: Origin,
    /// Set once the whole chunk has been passed on: the Failure-Report timer runs from
    /// there (RFC 4976 §6.4.1). `None` while it is still streaming.
    pub(super) deadline: Option<Instant>,
    /// Responses still owed: one per piece the send queue cut the chunk into.
    pub(super) pieces: u32,
}

impl Relay {
    /// A response arriving on a connection we sent a request over (§6.4.3).
    pub(super) fn handle_response(&mut self, now: Instant, origin: Origin, head: &Head<'_>) {
        let Origin::Conn(c) = origin else {
            return;
        };
        if !self.is_ours(&head.to_path().first()) {
            tracing::debug!("response not addressed to us, dropped (RFC 4976 §6.4.3)");
            return;
        }
        let key = tid_key(head.tid());
        let code = head.status_code().unwrap_or(200);
        let txn = match self.answer_txn(c.slot, key, code == 200) {
            Answer::Done(t) => t,
            Answer::MoreOwed => return,
            Answer::Unknown => {
                tracing::debug!(tid = head.tid(), "response matches no transaction, dropped");
                return;
            }
        };
        match &txn.kind {
            TxnKind::Send { .. } => {
                if code != 200 {
                    self.fail_txn(now, txn, code);
                }
            }
            TxnKind::Other { prev } => {
                let orig_tid = prev.tid();
                let Origin::Conn(reply) = txn.reply else {
                    return;
                };
                let mut b = BytesMut::with_capacity(head.as_bytes().len() + 64);
                if !encode::forward_head(&mut b, head, orig_tid) {
                    return;
                }
                // Both ends on this relay: our next URI leaves the To-Path too, as on
                // the request's way in (§6.4.3).
                loop {
                    let next = match Head::parse(&b) {
                        Ok(h) if h.to_path().len() > 1 && self.is_ours(&h.to_path().first()) => {
                            let mut nb = BytesMut::with_capacity(b.len() + 8);
                            encode::forward_head(&mut nb, &h, orig_tid);
                            nb
                        }
                        _ => break,
                    };
                    b = next;
                }
                encode::end_line(&mut b, orig_tid, Flag::Complete);
                self.write(reply, b.freeze());
            }
        }
    }

    /// A transaction failed with `code`: REPORT to the sender when its Failure-Report
    /// asks for one (§6.4.1). A timeout (408) is reported only for Failure-Report yes.
    pub(super) fn fail_txn(&mut self, now: Instant, txn: Txn, code: u16) {
        let (fr, range, prev) = match txn.kind {
            TxnKind::Send { fr, range, prev } => (fr, range, prev),
            TxnKind::Other { prev } => {
                // No answer will come from the next hop (it went away, or the timer ran
                // out): the previous hop hears it from us, as a response along the whole
                // From-Path (RFC 4975 §7.2), not silence.
                if let Origin::Conn(c) = txn.reply {
                    let (tid, to, from) = (prev.tid(), prev.return_path(), prev.our_uri());
                    let why = Some(encode::reason(code));
                    let mut b =
                        BytesMut::with_capacity(encode::response_len(tid, why, to, from, &[]));
                    encode::response(&mut b, tid, code, why, to, from, &[]);
                    self.write(c, b.freeze());
                }
                return;
            }
        };
        let wanted = match fr {
            FailureReport::Yes => true,
            FailureReport::Partial => code != 408,
            FailureReport::No => false,
        };
        if wanted {
            self.report(
                now,
                prev.return_path(),
                prev.our_uri(),
                prev.message_id(),
                range,
                code,
                txn.reply,
            );
        }
    }

    /// Sends a REPORT along `to_path`. When its first URI is ours it is routed like any
    /// frame; otherwise it goes to the previous hop `via`, which leads to the sender.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn report(
        &mut self,
        now: Instant,
        to_path: &str,
        from_path: &str,
        message_id: &str,
        range: Option<ByteRange>,
        code: u16,
        via: Origin,
    ) {
        let tid = TidText::of(self.new_tid());
        let mut b = BytesMut::with_capacity(256);
        encode::report(
            &mut b,
            tid.as_str(),
            to_path,
            from_path,
            message_id,
            range,
            code,
            Some(encode::reason(code)),
        );
        self.counters.count_report(code);
        let first_ours = to_path
            .split(' ')
            .next()
            .and_then(|u| Uri::parse(u).ok())
            .is_some_and(|u| self.is_ours(&u));
        if first_ours {
            let me = Origin::Internal(self.cfg.core);
            self.route(now, me, b.freeze(), None, false);
            self.handle_end(now, me, Flag::Complete);
        } else if let Origin::Conn(c) = via {
            self.write(c, b.freeze());
        }
    }

    /// Refuses a request: an error response to the previous hop (unless Failure-Report
    /// is `no`) and, for SEND, a REPORT to the sender (§6.4.1). REPORTs are never answered.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn reject(
        &mut self,
        now: Instant,
        origin: Origin,
        head: &Head<'_>,
        prev: &PrevHop,
        code: u16,
        why: &str,
    ) {
        let Some(method) = head.method() else {
            return;
        };
        tracing::debug!(code, why, method = method.as_str(), "request refused");
        self.refuse(now, origin, Request::of(method, head), prev, code, why);
    }

    /// [`Relay::reject`] for a request known by what it carries.
    pub(super) fn refuse(
        &mut self,
        now: Instant,
        origin: Origin,
        req: Request,
        prev: &PrevHop,
        code: u16,
        why: &str,
    ) {
        if req.kind == RequestKind::Report {
            return;
        }
        let fr = req.fr;
        let is_send = req.kind == RequestKind::Send;
        if (!is_send || fr != FailureReport::No)
            && let Origin::Conn(c) = origin
        {
            let to = if is_send {
                prev.prev_uri()
            } else {
                prev.return_path()
            };
            let (tid, from) = (prev.tid(), prev.our_uri());
            let mut b =
                BytesMut::with_capacity(encode::response_len(tid, Some(why), to, from, &[]));
            encode::response(&mut b, tid, code, Some(why), to, from, &[]);
            self.write(c, b.freeze());
        }
        if is_send && fr != FailureReport::No {
            let mid = match prev.message_id() {
                "" => "unknown0",
                m => m,
            };
            let (to, from) = (prev.return_path(), prev.our_uri());
            self.report(now, to, from, mid, req.range, code, origin);
        }
    }

    /// A head that does not parse: 400 when the start line and From-Path can be found,
    /// else the connection is closed.
    pub(super) fn malformed(&mut self, origin: Origin, raw: &[u8], e: HeadError) {
        tracing::debug!(error = %e, "malformed frame");
        let Origin::Conn(c) = origin else {
            return;
        };
        if raw
            .split(|&b| b == b'\r')
            .next()
            .is_some_and(|l| l.ends_with(b" REPORT"))
        {
            // Never answered, not even when malformed (RFC 4975 §7.1.2): dropped.
            return;
        }
        let answer = fallback_reply(raw).filter(|(_, _, is_req)| *is_req);
        match answer {
            Some((tid, from, _)) => {
                let comment = e.to_string();
                let (why, us) = (Some(comment.as_str()), self.base_uri.as_str());
                let mut b = BytesMut::with_capacity(encode::response_len(tid, why, from, us, &[]));
                encode::response(&mut b, tid, 400, why, from, us, &[]);
                self.write(c, b.freeze());
            }
            None if raw.starts_with(b"MSRP ") && !fallback_is_request(raw) => {
                // A response we cannot parse is dropped (§6.4.3).
            }
            None => {
                if c.core == self.cfg.core {
                    self.close(c.slot, c.generation, CloseReason::Malformed);
                }
            }
        }
    }
}

/// For a head that does not parse: its tid, the first From-Path URI (as text) and
/// whether it is a request, found leniently so a 400 can still be sent.
pub(super) fn fallback_reply(raw: &[u8]) -> Option<(&str, &str, bool)> {
    // Line by line: invalid UTF-8 in another header does not hide the ones we need.
    let mut lines = raw
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .map(|l| core::str::from_utf8(l).unwrap_or(""));
    let start = lines.next()?;
    let mut parts = start.splitn(3, ' ');
    let (_, tid, rest) = (parts.next()?, parts.next()?, parts.next()?);
    let is_req = !rest.as_bytes().first()?.is_ascii_digit();
    let from_line =
        lines.find(|l| l.len() > 10 && l.as_bytes()[..10].eq_ignore_ascii_case(b"From-Path:"))?;
    let first = from_line[10..].trim().split(' ').next()?;
    Uri::parse(first).ok()?;
    Some((tid, first, is_req))
}

pub(super) fn fallback_is_request(raw: &[u8]) -> bool {
    raw.split(|&c| c == b' ')
        .nth(2)
        .and_then(|m| m.first())
        .is_some_and(|c| !c.is_ascii_digit())
}
