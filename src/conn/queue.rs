//! The per-connection send queue: the one place that decides what goes out on a
//! connection next. Sans-IO: engines push frame parts ([`Part`]) as they make or pass
//! them on, the connection's writer takes bytes with [`SendQueue::fill`].
//!
//! Rules (RFC 4975 §7.1.1, RFC 4976 §6.4.1):
//! - The bytes of one frame go out in order, and a frame ends only at its own end-line.
//!   Frames of one origin go out in the order they came.
//! - Whole frames (responses and REPORTs made here) go first at every frame boundary.
//! - A SEND that arrived as [`Part::Start`] with a [`Resumable`] may be interrupted: when
//!   whole frames wait, or another frame could go, and the piece on the wire has carried
//!   its share ([`URGENT_SHARE`], [`FAIR_SHARE`]), or has stalled, the queue ends it with
//!   the `+` flag and resumes it later as a new chunk of the same message: the same head
//!   with the transaction id `TID.N` (N = 1, 2, ..) and a Byte-Range starting at the
//!   first byte not yet sent. RFC 4976 §6.4.1 lets relays re-chunk. Each interruption is
//!   reported as a [`QueueEvent`], so that the engine expects a response for the new
//!   chunk too. Pieces are never shorter than [`MIN_PIECE`] unless their sender stalls.
//! - Frames that may not be interrupted (non-SEND requests, small SENDs, SENDs without a
//!   Byte-Range) hold everything else until they end, as RFC 4975 §7.1 requires. One that
//!   comes when nothing waits is committed to the wire order at once (the queue's lane):
//!   whole frames that come after it wait for its end, as they would once it was on the
//!   wire.
//!
//! Memory is bounded by the readers, not here: a reader feeding a connection reads on only
//! while that connection's queue is under its high-water mark, except the reader of the
//! frame on the wire, which is bounded by its own bytes ([`SendQueue::active`]), so that a
//! frame that holds the others can always finish.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

use super::{Origin, Part};

/// A piece of an interrupted chunk carries at least this much body (RFC 4975 §7.1.1:
/// chunks under 2048 octets only at the end of a message), unless its sender stalls.
pub const MIN_PIECE: u64 = 2048;
/// Body bytes a piece carries before the queue lets waiting whole frames (responses,
/// REPORTs) go: small enough that they never wait long, large enough that a busy peer's
/// responses do not cut a file into 2 KiB chunks.
pub const URGENT_SHARE: u64 = 16 * 1024;
/// Body bytes a piece carries before another waiting frame gets its turn.
pub const FAIR_SHARE: u64 = 64 * 1024;

/// Where a resumable SEND's head names its transaction id and Byte-Range (offsets into
/// the head bytes of its [`Part::Start`]), and the chunk's range-start and total. Its
/// range-end must be `*` (RFC 4975 §7.1.1: only such chunks may be interrupted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resumable {
    pub tid: (u16, u16),
    pub range: (u16, u16),
    pub start: u64,
    /// `None` for `*`.
    pub total: Option<u64>,
}

/// Longest transaction id a resumable chunk may have: room for `.N` within the 32
/// characters RFC 4975 §9 allows.
pub const MAX_RESUMABLE_TID: usize = 20;

/// What the queue did that its engine must know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueEvent {
    /// The chunk whose head carried transaction id `tid` was interrupted; the rest goes
    /// out as piece `piece` with transaction id `tid.piece`, which will get its own
    /// response.
    Interrupted { tid: Bytes, piece: u32 },
}

#[derive(Debug)]
struct Flow {
    origin: Origin,
    /// The head, until it is written.
    head: Option<Bytes>,
    /// The head again, and where to edit it, when the chunk may be interrupted.
    resume: Option<(Bytes, Resumable)>,
    bufs: VecDeque<Bytes>,
    /// The end-line, once it came.
    end: Option<Bytes>,
    /// Bytes of this frame still in the queue.
    pending: usize,
    /// Interruptions so far: the piece on the wire or next to go.
    piece: u32,
    /// Body bytes written in the current piece, and in all pieces.
    piece_body: u64,
    sent_body: u64,
}

impl Flow {
    /// Has something to write if it were put on the wire now.
    fn can_start(&self) -> bool {
        self.head.is_some() || !self.bufs.is_empty() || self.end.is_some()
    }

    fn stalled(&self) -> bool {
        self.bufs.is_empty() && self.end.is_none()
    }

    /// Whether the piece on the wire gives way: only resumable chunks, only to something
    /// that waits, and only after their share (or when their sender stalled).
    fn yields(&self, urgent: bool, other: bool) -> bool {
        // Only the end-line left: finish rather than send an empty piece.
        if self.resume.is_none()
            || !(urgent || other)
            || (self.bufs.is_empty() && self.end.is_some())
        {
            return false;
        }
        let share = if urgent { URGENT_SHARE } else { FAIR_SHARE };
        self.piece_body >= share.max(MIN_PIECE) || (self.stalled() && self.piece_body > 0)
    }

    /// The transaction id of the piece `piece`: the head's own, then `tid.N`.
    fn piece_tid(&self, out: &mut BytesMut, piece: u32) {
        if let Some((head, r)) = &self.resume {
            out.extend_from_slice(&head[usize::from(r.tid.0)..usize::from(r.tid.1)]);
            if piece > 0 {
                out.extend_from_slice(b".");
                out.extend_from_slice(itoa::Buffer::new().format(piece).as_bytes());
            }
        }
    }

    /// `CRLF "-------" tid flag CRLF` for the current piece.
    fn end_line(&self, flag: u8) -> Bytes {
        let mut b = BytesMut::with_capacity(48);
        b.extend_from_slice(b"\r\n-------");
        self.piece_tid(&mut b, self.piece);
        b.extend_from_slice(&[flag, b'\r', b'\n']);
        b.freeze()
    }

    /// The head of the current piece (after an interruption): the first head with the
    /// piece's transaction id and a Byte-Range from the first byte not yet sent.
    fn resume_head(&self) -> Bytes {
        let Some((head, r)) = &self.resume else {
            return Bytes::new();
        };
        let (t0, t1) = (usize::from(r.tid.0), usize::from(r.tid.1));
        let (r0, r1) = (usize::from(r.range.0), usize::from(r.range.1));
        let mut b = BytesMut::with_capacity(head.len() + 24);
        b.extend_from_slice(&head[..t0]);
        self.piece_tid(&mut b, self.piece);
        b.extend_from_slice(&head[t1..r0]);
        let mut n = itoa::Buffer::new();
        b.extend_from_slice(n.format(r.start + self.sent_body).as_bytes());
        b.extend_from_slice(b"-*/");
        match r.total {
            Some(t) => b.extend_from_slice(n.format(t).as_bytes()),
            None => b.extend_from_slice(b"*"),
        }
        b.extend_from_slice(&head[r1..]);
        b.freeze()
    }
}

/// A frame that may not be interrupted, put straight in [`SendQueue`]'s lane because
/// nothing else was waiting: everything else waits for its end, as RFC 4975 §7.1 requires.
#[derive(Debug, Clone, Copy)]
struct Direct {
    origin: Origin,
    /// Its bytes still in the lane.
    pending: usize,
    /// Its end-line came.
    ended: bool,
}

/// One connection's queue of frames to send.
#[derive(Debug, Default)]
pub struct SendQueue {
    /// Bytes that go out next, in this order. A frame that may not be interrupted comes
    /// here whole or in parts (its head when nothing else waits, then each part as it
    /// arrives) instead of becoming a [`Flow`]: the common case of a small SEND and its
    /// response costs a push and a pop per buffer.
    lane: VecDeque<Bytes>,
    /// Bytes in `lane` of frames that have ended and are no longer `direct`.
    lane_done: usize,
    /// The last frame put in the lane, until its bytes are all taken.
    direct: Option<Direct>,
    whole: VecDeque<Bytes>,
    /// Bytes in `whole`.
    whole_bytes: usize,
    /// Frames arriving in parts, in the order they are served; while `on_wire`, the
    /// front one is being written (its head is out, its end-line not yet).
    flows: VecDeque<Flow>,
    on_wire: bool,
    queued: usize,
    events: Vec<QueueEvent>,
}

impl SendQueue {
    pub fn new() -> SendQueue {
        SendQueue::default()
    }

    /// Bytes pushed and not yet taken by [`SendQueue::fill`].
    pub fn queued(&self) -> usize {
        self.queued
    }

    /// Bytes of whole frames (made for this peer: responses, REPORTs) not yet taken: what
    /// a peer that does not read its answers piles up, whatever else it receives.
    pub fn whole_bytes(&self) -> usize {
        self.whole_bytes
    }

    /// The frame on the wire and its bytes still queued: its reader is bounded by these
    /// alone (see the module doc).
    pub fn active(&self) -> Option<(Origin, usize)> {
        if let Some(d) = &self.direct {
            return Some((d.origin, d.pending));
        }
        self.flows
            .front()
            .filter(|_| self.on_wire)
            .map(|f| (f.origin, f.pending))
    }

    /// A frame in the lane waits for more of its bytes: nothing may pass it.
    fn holding(&self) -> bool {
        self.direct.is_some_and(|d| !d.ended)
    }

    /// Whether [`SendQueue::take_events`] has anything.
    pub fn has_events(&self) -> bool {
        !self.events.is_empty()
    }

    /// Takes what happened since the last call.
    pub fn take_events(&mut self) -> Vec<QueueEvent> {
        std::mem::take(&mut self.events)
    }

    /// `true` when [`SendQueue::fill`] would give something.
    pub fn has_work(&self) -> bool {
        if !self.lane.is_empty() {
            return true;
        }
        if self.holding() {
            return false;
        }
        if !self.on_wire {
            return !self.whole.is_empty() || self.flows.iter().any(Flow::can_start);
        }
        let Some(f) = self.flows.front() else {
            return false;
        };
        !f.stalled()
            || (f.resume.is_some() && f.yields(!self.whole.is_empty(), self.others_can_start()))
    }

    /// Whether a frame of another origin could go if the one on the wire gave way. A later
    /// frame of the same origin could not (it goes after this one in any case), so it
    /// never makes the queue cut a chunk.
    fn others_can_start(&self) -> bool {
        let Some(front) = self.flows.front() else {
            return false;
        };
        self.flows
            .iter()
            .skip(1)
            .any(|g| g.origin != front.origin && g.can_start())
    }

    /// Queues one part of a frame. Returns `false` (and drops the bytes) for a `Middle`
    /// or `End` of a frame whose `Start` never came here.
    pub fn push(&mut self, bytes: Bytes, part: Part) -> bool {
        let n = bytes.len();
        let end = matches!(part, Part::End(_));
        match part {
            // Nothing waits and this frame may not be interrupted: straight to the lane.
            Part::Start(origin, None)
                if self.flows.is_empty() && self.whole.is_empty() && !self.holding() =>
            {
                if let Some(d) = self.direct.take() {
                    self.lane_done += d.pending;
                }
                self.lane.push_back(bytes);
                self.direct = Some(Direct {
                    origin,
                    pending: n,
                    ended: false,
                });
            }
            Part::Middle(o) | Part::End(o)
                if self.direct.is_some_and(|d| d.origin == o && !d.ended) =>
            {
                if n > 0 {
                    self.lane.push_back(bytes);
                }
                if let Some(d) = &mut self.direct {
                    d.pending += n;
                    d.ended = end;
                    if end && d.pending == 0 {
                        self.direct = None;
                    }
                }
            }
            Part::Whole => {
                if n > 0 {
                    self.whole.push_back(bytes);
                    self.whole_bytes += n;
                }
            }
            Part::Start(origin, resume) => self.flows.push_back(Flow {
                origin,
                resume: resume.map(|r| (bytes.clone(), *r)),
                head: Some(bytes),
                bufs: VecDeque::new(),
                end: None,
                pending: n,
                piece: 0,
                piece_body: 0,
                sent_body: 0,
            }),
            Part::Middle(o) | Part::End(o) => {
                let Some(f) = self
                    .flows
                    .iter_mut()
                    .rev()
                    .find(|f| f.origin == o && f.end.is_none())
                else {
                    return false;
                };
                f.pending += n;
                if end {
                    f.end = Some(bytes);
                } else if n > 0 {
                    f.bufs.push_back(bytes);
                }
            }
        }
        self.queued += n;
        true
    }

    /// Appends what goes out next to `out`, until `out` holds `max_bufs` buffers (those
    /// already in it included) or this call added at least `max_bytes`; returns how many
    /// of the pushed bytes it took (heads and end-lines it made for re-chunked pieces are
    /// not counted). Whenever [`SendQueue::has_work`] says so, it adds something.
    pub fn fill(&mut self, out: &mut Vec<Bytes>, max_bufs: usize, max_bytes: usize) -> usize {
        let mut taken = 0;
        let mut size = 0;
        while out.len() < max_bufs && size < max_bytes {
            let b = if let Some(b) = self.lane.pop_front() {
                self.took_from_lane(b.len());
                taken += b.len();
                b
            } else if self.holding() {
                break;
            } else if self.on_wire {
                match self.next_on_wire(&mut taken) {
                    Some(b) => b,
                    None => break,
                }
            } else if let Some(b) = self.whole.pop_front() {
                taken += b.len();
                self.whole_bytes -= b.len();
                b
            } else {
                let Some(i) = self.flows.iter().position(Flow::can_start) else {
                    break;
                };
                // Flows before `i` cannot start, so none of them is an earlier frame of
                // the same origin (that would have ended, and could): order holds.
                if i > 0
                    && let Some(f) = self.flows.remove(i)
                {
                    self.flows.push_front(f);
                }
                let Some(f) = self.flows.front_mut() else {
                    break;
                };
                self.on_wire = true;
                match f.head.take() {
                    Some(h) => {
                        f.pending -= h.len();
                        taken += h.len();
                        h
                    }
                    None => f.resume_head(),
                }
            };
            size += b.len();
            out.push(b);
        }
        self.queued -= taken;
        taken
    }

    /// `n` bytes left the lane: those of ended frames first, then the last frame's.
    fn took_from_lane(&mut self, n: usize) {
        let done = n.min(self.lane_done);
        self.lane_done -= done;
        if let Some(d) = &mut self.direct {
            d.pending -= n - done;
            if d.ended && d.pending == 0 {
                self.direct = None;
            }
        }
    }

    /// The next buffer of the frame on the wire: its body, its end-line, or the `+`
    /// end-line of an interruption. `None` while it waits for more.
    fn next_on_wire(&mut self, taken: &mut usize) -> Option<Bytes> {
        // Only a resumable chunk ever gives way: the others need not be looked at.
        if self.flows.front()?.resume.is_some() {
            let urgent = !self.whole.is_empty();
            let other = self.others_can_start();
            if self.flows.front().is_some_and(|f| f.yields(urgent, other)) {
                return Some(self.interrupt());
            }
        }
        let f = self.flows.front_mut()?;
        if let Some(b) = f.bufs.pop_front() {
            let n = b.len();
            f.pending -= n;
            f.piece_body += n as u64;
            f.sent_body += n as u64;
            *taken += n;
            return Some(b);
        }
        let e = f.end.take()?;
        f.pending -= e.len();
        *taken += e.len();
        let line = if f.piece == 0 {
            e
        } else {
            // `[CRLF] "-------" tid flag CRLF`: the flag is the third byte from the end.
            let flag = e.len().checked_sub(3).map_or(b'$', |i| e[i]);
            f.end_line(flag)
        };
        self.flows.pop_front();
        self.on_wire = false;
        Some(line)
    }

    /// Ends the piece on the wire with `+` and puts its frame back in line, after the
    /// others but before any later frame of its own origin.
    fn interrupt(&mut self) -> Bytes {
        self.on_wire = false;
        let Some(mut f) = self.flows.pop_front() else {
            return Bytes::new();
        };
        let line = f.end_line(b'+');
        f.piece += 1;
        f.piece_body = 0;
        if let Some((head, r)) = &f.resume {
            let tid = head.slice(usize::from(r.tid.0)..usize::from(r.tid.1));
            self.events.push(QueueEvent::Interrupted {
                tid,
                piece: f.piece,
            });
        }
        let at = self
            .flows
            .iter()
            .position(|g| g.origin == f.origin)
            .unwrap_or(self.flows.len());
        self.flows.insert(at, f);
        line
    }

    /// Drops everything (the connection is gone); returns the bytes dropped.
    pub fn clear(&mut self) -> usize {
        self.lane.clear();
        self.lane_done = 0;
        self.direct = None;
        self.whole.clear();
        self.whole_bytes = 0;
        self.flows.clear();
        self.on_wire = false;
        std::mem::take(&mut self.queued)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conn::ConnId;

    fn origin(slot: u32) -> Origin {
        Origin::Conn(ConnId {
            core: 0,
            slot,
            generation: 1,
        })
    }

    /// A resumable SEND head with transaction id `tid` and `Byte-Range: 1-*/total`.
    fn send_head(tid: &str, total: u64) -> (Bytes, Resumable) {
        let pre = format!("MSRP {tid} SEND\r\nTo-Path: msrp://b/s;tcp\r\nByte-Range: ");
        let range = format!("1-*/{total}");
        let text = format!("{pre}{range}\r\nContent-Type: text/plain\r\n\r\n");
        let r = Resumable {
            tid: (5, 5 + tid.len() as u16),
            range: (pre.len() as u16, (pre.len() + range.len()) as u16),
            start: 1,
            total: Some(total),
        };
        (Bytes::from(text), r)
    }

    fn drain(q: &mut SendQueue) -> Vec<u8> {
        let mut out = Vec::new();
        let mut v = Vec::new();
        while q.has_work() {
            q.fill(&mut v, 4, usize::MAX);
            for b in v.drain(..) {
                out.extend_from_slice(&b);
            }
        }
        out
    }

    #[test]
    fn whole_frames_wait_for_a_frame_that_cannot_be_interrupted() {
        let mut q = SendQueue::new();
        q.push(Bytes::from_static(b"H1"), Part::Start(origin(1), None));
        q.push(Bytes::from(vec![b'x'; 100_000]), Part::Middle(origin(1)));
        let mut v = Vec::new();
        q.fill(&mut v, 64, usize::MAX);
        assert_eq!(v.len(), 2, "head and body");
        q.push(Bytes::from_static(b"W"), Part::Whole);
        assert!(!q.has_work(), "nothing may pass the open frame");
        q.push(Bytes::from_static(b"E1"), Part::End(origin(1)));
        let rest = drain(&mut q);
        assert_eq!(rest, b"E1W");
        assert_eq!(q.queued(), 0);
    }

    #[test]
    fn a_resumable_chunk_lets_responses_through_and_resumes_byte_exact() {
        let mut q = SendQueue::new();
        let (head, r) = send_head("0123456789abcdef", 100_000);
        q.push(head, Part::Start(origin(1), Some(Box::new(r))));
        for _ in 0..10 {
            q.push(Bytes::from(vec![b'z'; 10_000]), Part::Middle(origin(1)));
        }
        // Head and two reads on the wire, then a response comes.
        let mut v = Vec::new();
        q.fill(&mut v, 3, usize::MAX);
        let mut out: Vec<u8> = v.iter().flat_map(|b| b.to_vec()).collect();
        q.push(Bytes::from_static(b"RESP"), Part::Whole);
        q.push(
            Bytes::from_static(b"\r\n-------0123456789abcdef$\r\n"),
            Part::End(origin(1)),
        );
        out.extend(drain(&mut q));
        let out = String::from_utf8(out).unwrap();
        // The first piece carries URGENT_SHARE (16 KiB, two 10,000-byte reads), then
        // the response, then the rest as piece 1 from byte 20,001.
        let first_end = out
            .find("\r\n-------0123456789abcdef+\r\n")
            .expect("interrupted");
        let resp = out.find("RESP").unwrap();
        assert!(first_end < resp);
        assert_eq!(out[..first_end].matches('z').count(), 20_000);
        let second = &out[resp + 4..];
        assert!(second.starts_with("MSRP 0123456789abcdef.1 SEND\r\n"));
        assert!(second.contains("Byte-Range: 20001-*/100000\r\n"));
        assert!(second.ends_with("\r\n-------0123456789abcdef.1$\r\n"));
        assert_eq!(second.matches('z').count(), 80_000);
        assert_eq!(
            q.take_events(),
            vec![QueueEvent::Interrupted {
                tid: Bytes::from_static(b"0123456789abcdef"),
                piece: 1
            }]
        );
    }

    #[test]
    fn concurrent_chunks_alternate_and_a_small_frame_passes_a_big_one() {
        let mut q = SendQueue::new();
        let (head, r) = send_head("bigbigbigbigbig0", 10 << 20);
        q.push(head, Part::Start(origin(1), Some(Box::new(r))));
        for _ in 0..100 {
            q.push(Bytes::from(vec![b'b'; 8192]), Part::Middle(origin(1)));
        }
        q.push(
            Bytes::from_static(b"SMALLHEAD"),
            Part::Start(origin(2), None),
        );
        q.push(Bytes::from_static(b"smallbody"), Part::Middle(origin(2)));
        q.push(Bytes::from_static(b"SMALLEND"), Part::End(origin(2)));
        let mut v = Vec::new();
        let mut seen = 0usize;
        let mut small_at = None;
        while small_at.is_none() && q.has_work() {
            q.fill(&mut v, 1, usize::MAX);
            for b in v.drain(..) {
                if &b[..] == b"SMALLEND" {
                    small_at = Some(seen);
                }
                seen += b.len();
            }
        }
        let at = small_at.expect("the small frame went out before the big one ended");
        assert!(at < 80 * 1024, "small frame after {at} bytes");
        assert_eq!(q.take_events().len(), 1);
    }

    #[test]
    fn frames_of_one_origin_keep_their_order_across_interruptions() {
        let mut q = SendQueue::new();
        let (head, r) = send_head("firstfirstfirst1", 1 << 20);
        q.push(head, Part::Start(origin(1), Some(Box::new(r))));
        q.push(Bytes::from(vec![b'1'; 70_000]), Part::Middle(origin(1)));
        q.push(
            Bytes::from_static(b"\r\n-------firstfirstfirst1+\r\n"),
            Part::End(origin(1)),
        );
        q.push(Bytes::from_static(b"SECOND"), Part::Start(origin(1), None));
        q.push(Bytes::from_static(b"-END2"), Part::End(origin(1)));
        q.push(Bytes::from_static(b"OTHER"), Part::Start(origin(2), None));
        q.push(Bytes::from(vec![b'2'; 70_000]), Part::Middle(origin(2)));
        q.push(Bytes::from_static(b"-ENDO"), Part::End(origin(2)));
        let out = drain(&mut q);
        let pos = |s: &[u8]| out.windows(s.len()).position(|w| w == s).unwrap();
        assert!(pos(b"firstfirstfirst1+") < pos(b"SECOND"));
        assert!(pos(b"SECOND") < pos(b"-END2"));
    }

    #[test]
    fn a_later_chunk_of_the_same_sender_does_not_cut_the_one_on_the_wire() {
        let mut q = SendQueue::new();
        let (head, r) = send_head("samesamesame0001", 1 << 20);
        q.push(head, Part::Start(origin(1), Some(Box::new(r))));
        q.push(Bytes::from(vec![b'1'; 100_000]), Part::Middle(origin(1)));
        let mut v = Vec::new();
        q.fill(&mut v, 2, usize::MAX);
        // The sender's next chunk is queued before this one has ended.
        q.push(Bytes::from(vec![b'1'; 100_000]), Part::Middle(origin(1)));
        q.push(
            Bytes::from_static(b"\r\n-------samesamesame0001+\r\n"),
            Part::End(origin(1)),
        );
        q.push(Bytes::from_static(b"NEXT"), Part::Start(origin(1), None));
        q.push(Bytes::from_static(b"-END"), Part::End(origin(1)));
        drain(&mut q);
        assert!(
            q.take_events().is_empty(),
            "no interruption for the same sender"
        );
    }

    /// A frame that may not be interrupted goes straight to the lane when nothing waits:
    /// it is the frame on the wire from its head on (its reader is bounded by its own
    /// bytes) until its last byte is taken, and what comes after it waits for its end.
    #[test]
    fn a_frame_in_the_lane_is_on_the_wire_until_its_last_byte_is_taken() {
        let mut q = SendQueue::new();
        q.push(Bytes::from_static(b"H1"), Part::Start(origin(1), None));
        assert_eq!(q.active(), Some((origin(1), 2)));
        q.push(Bytes::from_static(b"body"), Part::Middle(origin(1)));
        assert_eq!(q.active(), Some((origin(1), 6)));
        // Another sender's frame and a response wait for this one's end.
        q.push(Bytes::from_static(b"H2"), Part::Start(origin(2), None));
        q.push(Bytes::from_static(b"E2"), Part::End(origin(2)));
        q.push(Bytes::from_static(b"W"), Part::Whole);
        let mut v = Vec::new();
        assert_eq!(q.fill(&mut v, 64, usize::MAX), 6);
        assert_eq!(q.active(), Some((origin(1), 0)));
        assert!(!q.has_work(), "nothing passes a frame that has not ended");
        q.push(Bytes::from_static(b"E1"), Part::End(origin(1)));
        assert_eq!(q.active(), Some((origin(1), 2)));
        let mut out = Vec::new();
        v.clear();
        q.fill(&mut v, 1, usize::MAX);
        assert_eq!(&v[0][..], b"E1");
        assert_eq!(q.active(), None, "ended and taken: off the wire");
        out.extend(drain(&mut q));
        assert_eq!(out, b"WH2E2");
        assert_eq!(q.queued(), 0);
        assert_eq!(q.whole_bytes(), 0);
    }

    /// Frames that follow one another through the lane keep their order and their own
    /// counts: the first one's bytes still queued are not the second one's.
    #[test]
    fn frames_following_each_other_through_the_lane_keep_order_and_counts() {
        let mut q = SendQueue::new();
        q.push(Bytes::from_static(b"A-"), Part::Start(origin(1), None));
        q.push(Bytes::from_static(b"a$"), Part::End(origin(1)));
        q.push(Bytes::from_static(b"B--"), Part::Start(origin(2), None));
        assert_eq!(q.active(), Some((origin(2), 3)));
        let mut v = Vec::new();
        q.fill(&mut v, 2, usize::MAX);
        assert_eq!(q.active(), Some((origin(2), 3)), "A's bytes went first");
        q.fill(&mut v, 3, usize::MAX);
        assert_eq!(q.active(), Some((origin(2), 0)));
        // A resumable chunk that comes while B is open waits for B's end.
        let (head, r) = send_head("resumeresume0001", 100_000);
        q.push(head, Part::Start(origin(3), Some(Box::new(r))));
        assert!(!q.has_work());
        q.push(Bytes::from_static(b"b$"), Part::End(origin(2)));
        let out: Vec<u8> = v
            .iter()
            .flat_map(|b| b.to_vec())
            .chain(drain(&mut q))
            .collect();
        assert!(out.starts_with(b"A-a$B--b$MSRP resumeresume0001 SEND"));
        assert_eq!(q.active(), Some((origin(3), 0)), "the chunk is on the wire");
    }

    #[test]
    fn stray_pieces_are_refused_and_clear_settles_the_count() {
        let mut q = SendQueue::new();
        assert!(!q.push(Bytes::from_static(b"x"), Part::Middle(origin(9))));
        q.push(Bytes::from_static(b"H"), Part::Start(origin(1), None));
        q.push(Bytes::from_static(b"body"), Part::Middle(origin(1)));
        assert_eq!(q.queued(), 5);
        assert_eq!(q.clear(), 5);
        assert_eq!(q.queued(), 0);
        assert!(!q.has_work());
    }
}
