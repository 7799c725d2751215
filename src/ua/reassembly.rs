//! Whole-message reassembly for the user agent (RFC 4975 §7.3.1, §7.1.1, §5.1): SEND
//! chunks in, whole messages out, one [`Reassembler`] per session, sans-I/O, with the
//! clock passed in.
//!
//! # Feeding it
//! It is fed the way a worker sees a frame from the codec's [`Scanner`]: for a SEND of
//! the session, [`Reassembler::begin`] with the parsed head (the engine parses it anyway
//! to route it), [`Reassembler::body`] with each body piece as it arrives, and
//! [`Reassembler::end`] with the end-line's flag, which gives the chunk's [`Chunk`]:
//! the status to answer the SEND with, the report wishes of the SEND, the byte range
//! actually received, and the [`Message`] when this chunk completed one. A chunk cut off
//! by its connection's close goes to [`Reassembler::abandon`].
//!
//! One chunk is in progress at a time: a session is bound to one connection (RFC 4975
//! §7.3), whose frames the scanner hands out one after the other. A `begin` while a chunk
//! is in progress abandons that chunk first.
//!
//! # Rules (RFC 4975 §7.3.1 unless said otherwise)
//! - Chunks of one Message-ID are placed by their Byte-Range start, in any order and
//!   interleaved with other messages of the session. A SEND without Byte-Range starts at
//!   byte 1. The actual length of a chunk is its body's (a chunk may be shorter than its
//!   range-end says, as after an interruption; `*` range-ends and totals are fine).
//! - Overlapping or repeated data: the chunk received last wins, byte for byte. A chunk
//!   takes effect when its end-line arrives (or when it is abandoned), so "last received"
//!   is decided per chunk.
//! - The total is the first numeric total seen, or the end of the `$` chunk ("the chunk
//!   that has a termination character of `$` defines the total length"). A chunk that
//!   contradicts the known total (another total, data past it, a `$` ending elsewhere) or
//!   carries more data than its own range-end allows is answered 400 and discarded; the
//!   message keeps what it had.
//! - `#` (§7.1: the sender aborts the message and sends no more of it): the message and
//!   everything held for it are dropped. The chunk itself was received, so it is
//!   answered 200.
//! - Size (§10.5): a message whose declared or grown size passes the limit, the smaller
//!   of the session's `a=max-size` and [`Limits::max_message`], is answered 413 and
//!   dropped, and later chunks of the same Message-ID are answered 413 at once (a few
//!   such ids are remembered). So are chunks that would pass the session's bound on
//!   bytes held ([`Limits::max_held`]) or on messages in progress
//!   ([`Limits::max_in_progress`]). A refusal is known as soon as a piece passes the
//!   bound: [`Reassembler::begin`] and [`Reassembler::body`] return it then, so the
//!   engine may answer at once (§10.5: the sender interrupts the chunk).
//! - An incomplete message that no chunk touched for [`Limits::idle_timeout`] is dropped
//!   ([`Reassembler::poll_timeout`], [`Reassembler::handle_timeout`]).
//! - A SEND without a body (the one that binds a connection, §7.1) completes nothing,
//!   nor does a message of total 0: neither makes a [`Message`]. Both are answered 200.
//!
//! What the engine still decides: whether the message's Content-Type is accepted (415,
//! §7.3.1, §8.6; wrapped types for message/cpim, known once the message is whole, as
//! the CPIM headers lead its first chunk), and what the answer and reports are
//! ([`super::report::plan`]). A chunk it refuses at its head (415) it answers itself and
//! does not feed here; [`Reassembler::forget`] drops what was kept of that message.
//!
//! # Memory
//! Body pieces are kept as the scanner's [`Bytes`] (shared with the read buffer, never
//! copied); overlaps are trimmed with `Bytes::slice`. A completed message's [`Body`] is
//! a rope of those pieces in order; [`Body::to_bytes`] copies once, and only when there
//! is more than one piece. The bytes counted as held are the pieces' lengths; the read
//! buffers they share may be somewhat larger.
//!
//! [`Scanner`]: crate::codec::Scanner

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use crate::codec::{ByteRange, ContentType, FailureReport, Flag, Head, SuccessReport};

/// How many Message-IDs refused with 413 are remembered, so that their later chunks are
/// refused at once instead of starting the message again.
const REFUSED_REMEMBERED: usize = 16;

/// The bounds of one session's reassembly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The largest message accepted, whatever the session's `a=max-size` says.
    pub max_message: u64,
    /// Bytes held for the session's messages in progress, the chunk in progress included.
    pub max_held: u64,
    /// Messages in progress at once (incomplete ones, kept between chunks).
    pub max_in_progress: usize,
    /// An incomplete message no chunk touched for this long is dropped.
    pub idle_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message: 16 * 1024 * 1024,
            max_held: 32 * 1024 * 1024,
            max_in_progress: 16,
            idle_timeout: Duration::from_secs(120),
        }
    }
}

/// Why a chunk was not taken; each maps to the status to answer it with
/// ([`Refusal::status`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Refusal {
    /// No Message-ID on a SEND with a body (§7.1.1: every chunk carries it).
    #[error("SEND with a body but no Message-ID")]
    NoMessageId,
    /// Byte-Range or body length inconsistent with itself or the message's total.
    #[error("chunk inconsistent with its Byte-Range or the message's total")]
    BadRange,
    /// The message is larger than the limit (declared, grown, or refused before).
    #[error("message larger than the session's limit")]
    TooLarge,
    /// Taking the chunk would pass the session's bound on bytes held.
    #[error("session holds too many bytes in progress")]
    HeldBound,
    /// The chunk would start one message too many in progress.
    #[error("session has too many messages in progress")]
    InProgressBound,
}

impl Refusal {
    /// The status to answer the SEND with (RFC 4975 §7.3, §10.2, §10.5).
    pub fn status(self) -> u16 {
        match self {
            Refusal::NoMessageId | Refusal::BadRange => 400,
            Refusal::TooLarge | Refusal::HeldBound | Refusal::InProgressBound => 413,
        }
    }
}

/// What [`Reassembler::end`] says about one chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// The status to answer the SEND with: 200, or [`Refusal::status`].
    pub status: u16,
    /// Why the chunk was refused, when it was.
    pub refusal: Option<Refusal>,
    /// `true` when the refusal was already returned by `begin` or `body`.
    pub refused_early: bool,
    /// The SEND's Message-ID (empty for a bodiless SEND without one).
    pub message_id: String,
    /// The range this chunk's body actually covers (start and total as the SEND said,
    /// end from the body, §7.1.4); `None` for a bodiless SEND.
    pub range: Option<ByteRange>,
    /// This SEND's Success-Report (absent: no, §7.1.1).
    pub success_report: SuccessReport,
    /// This SEND's Failure-Report (absent: yes, §7.1.1).
    pub failure_report: FailureReport,
    /// `true` for a `#` chunk: its message was dropped.
    pub aborted: bool,
    /// The message this chunk completed.
    pub message: Option<Message>,
}

/// A whole message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub message_id: String,
    /// The Content-Type value of the message's first chunk received, as written.
    pub content_type: String,
    /// Success-Report and Failure-Report of the message's first chunk received (all
    /// chunks must carry the same, §7.1.1).
    pub success_report: SuccessReport,
    pub failure_report: FailureReport,
    pub body: Body,
}

impl Message {
    /// The message's size in bytes.
    pub fn total(&self) -> u64 {
        self.body.len()
    }
    /// The Content-Type parsed (it parsed when the head did).
    pub fn content_type(&self) -> Option<ContentType<'_>> {
        ContentType::parse(self.content_type.as_bytes()).ok()
    }
}

/// A message body: the received pieces in order, as a rope. A rope, not one `Bytes`,
/// because the pieces share the connection's read buffers and joining them is a copy
/// of the whole message that many consumers (a base64 encoder, a gateway writing the
/// pieces out) do not need; [`Body::to_bytes`] makes it when one is needed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Body {
    pieces: Vec<Bytes>,
    len: u64,
}

impl Body {
    fn new(pieces: Vec<Bytes>) -> Body {
        let len = pieces.iter().map(|p| p.len() as u64).sum();
        Body { pieces, len }
    }
    /// Length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// The pieces in order (none empty).
    pub fn pieces(&self) -> &[Bytes] {
        &self.pieces
    }
    /// The body as one `Bytes`: no copy for a body of one piece, one copy otherwise.
    pub fn to_bytes(&self) -> Bytes {
        match self.pieces.as_slice() {
            [] => Bytes::new(),
            [one] => one.clone(),
            many => {
                let mut b = BytesMut::with_capacity(usize::try_from(self.len).unwrap_or(0));
                for p in many {
                    b.extend_from_slice(p);
                }
                b.freeze()
            }
        }
    }
    /// The body for an event: text for a `text/*` type whose charset is UTF-8 (or
    /// US-ASCII, or not given) when the bytes are valid UTF-8, base64 otherwise.
    pub fn render(&self, content_type: &ContentType<'_>) -> Rendered {
        render(content_type, &self.to_bytes())
    }
}

/// A body as an event carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rendered {
    Text(String),
    Base64(String),
}

/// [`Body::render`] of contiguous bytes (a message/cpim's inner body, for one).
pub fn render(content_type: &ContentType<'_>, bytes: &[u8]) -> Rendered {
    use base64::Engine as _;
    if content_type.media_type.eq_ignore_ascii_case("text")
        && charset_is_utf8(content_type.params)
        && let Ok(s) = core::str::from_utf8(bytes)
    {
        return Rendered::Text(s.to_owned());
    }
    Rendered::Base64(base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// `true` unless the parameters name a charset other than UTF-8 or US-ASCII.
fn charset_is_utf8(params: &str) -> bool {
    for p in params.split(';') {
        let Some((n, v)) = p.split_once('=') else {
            continue;
        };
        if n.trim().eq_ignore_ascii_case("charset") {
            let v = v.trim().trim_matches('"');
            return v.eq_ignore_ascii_case("utf-8")
                || v.eq_ignore_ascii_case("utf8")
                || v.eq_ignore_ascii_case("us-ascii");
        }
    }
    true
}

/// What the reassembler has counted since it was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub chunks: u64,
    pub body_bytes: u64,
    pub completed: u64,
    /// Bodiless SENDs and messages of total 0.
    pub empty: u64,
    pub aborted: u64,
    pub timed_out: u64,
    pub abandoned_chunks: u64,
    pub no_message_id: u64,
    pub bad_range: u64,
    pub too_large: u64,
    pub held_bound: u64,
    pub in_progress_bound: u64,
}

/// An incomplete message.
#[derive(Debug)]
struct Partial {
    /// Received bytes by 0-based offset, never overlapping, none empty.
    pieces: BTreeMap<u64, Bytes>,
    /// Sum of the pieces' lengths.
    held: u64,
    /// The known total, once a numeric total or a `$` chunk gave it.
    total: Option<u64>,
    content_type: String,
    success_report: SuccessReport,
    failure_report: FailureReport,
    touched: Instant,
}

impl Partial {
    /// Places `data` at `at`, trimming what it overlaps (the newer data wins).
    fn insert(&mut self, at: u64, data: Bytes) {
        let len = data.len() as u64;
        if len == 0 {
            return;
        }
        let end = at + len;
        // A piece that starts before `at` and reaches into the new one.
        if let Some((&s, p)) = self.pieces.range(..at).next_back()
            && s + p.len() as u64 > at
        {
            let p = self.pieces.remove(&s).unwrap_or_default();
            let pe = s + p.len() as u64;
            self.held -= p.len() as u64;
            let head = p.slice(..(at - s) as usize);
            self.held += head.len() as u64;
            self.pieces.insert(s, head);
            if pe > end {
                let tail = p.slice((end - s) as usize..);
                self.held += tail.len() as u64;
                self.pieces.insert(end, tail);
            }
        }
        // Pieces that start inside the new one.
        while let Some((&s, _)) = self.pieces.range(at..end).next() {
            let p = self.pieces.remove(&s).unwrap_or_default();
            self.held -= p.len() as u64;
            let pe = s + p.len() as u64;
            if pe > end {
                let tail = p.slice((end - s) as usize..);
                self.held += tail.len() as u64;
                self.pieces.insert(end, tail);
            }
        }
        self.held += len;
        self.pieces.insert(at, data);
    }

    /// Drops whatever lies at or past `total`.
    fn truncate(&mut self, total: u64) {
        let past: Vec<u64> = self.pieces.range(total..).map(|(&s, _)| s).collect();
        for s in past {
            if let Some(p) = self.pieces.remove(&s) {
                self.held -= p.len() as u64;
            }
        }
        if let Some((&s, p)) = self.pieces.range_mut(..total).next_back()
            && s + p.len() as u64 > total
        {
            let keep = (total - s) as usize;
            self.held -= (p.len() - keep) as u64;
            p.truncate(keep);
        }
    }

    fn is_complete(&self) -> bool {
        // The pieces never overlap and never pass the total, so they cover it exactly
        // when their lengths add up to it.
        self.total == Some(self.held)
    }
}

/// The chunk in progress.
#[derive(Debug)]
struct Current {
    message_id: String,
    /// 0-based offset of the chunk's first byte.
    at: u64,
    /// The Byte-Range as the SEND gave it (start 1, `*`, `*` when it gave none).
    range: ByteRange,
    has_body: bool,
    content_type: String,
    success_report: SuccessReport,
    failure_report: FailureReport,
    /// Body pieces received so far, and their length.
    pieces: Vec<Bytes>,
    len: u64,
    /// Body bytes received, refused ones included (for the range reported).
    received: u64,
    refusal: Option<Refusal>,
    refused_early: bool,
}

/// One session's reassembly: see the module documentation for the rules.
#[derive(Debug)]
pub struct Reassembler {
    limits: Limits,
    /// The session's `a=max-size` (RFC 4975 §8.6), if it gave one.
    max_size: Option<u64>,
    messages: HashMap<String, Partial>,
    current: Option<Current>,
    /// Message-IDs refused with 413 and why, newest last.
    refused: VecDeque<(String, Refusal)>,
    /// Bytes held: the messages' pieces and the current chunk's.
    held: u64,
    counters: Counters,
}

impl Reassembler {
    /// A reassembler for a session whose SDP said `a=max-size:max_size` (if it did).
    pub fn new(limits: Limits, max_size: Option<u64>) -> Reassembler {
        Reassembler {
            limits,
            max_size,
            messages: HashMap::new(),
            current: None,
            refused: VecDeque::new(),
            held: 0,
            counters: Counters::default(),
        }
    }

    /// A new `a=max-size` (an updated offer, §8.4); it applies to chunks from now on.
    pub fn set_max_size(&mut self, max_size: Option<u64>) {
        self.max_size = max_size;
    }

    /// The largest message accepted: the smaller of `a=max-size` and the configured limit.
    pub fn max_message(&self) -> u64 {
        self.max_size
            .map_or(self.limits.max_message, |m| m.min(self.limits.max_message))
    }

    /// Bytes held for messages in progress and the chunk in progress.
    pub fn held(&self) -> u64 {
        self.held
    }

    /// Incomplete messages kept between chunks.
    pub fn in_progress(&self) -> usize {
        self.messages.len()
    }

    /// `true` between `begin` and `end` (or `abandon`).
    pub fn in_chunk(&self) -> bool {
        self.current.is_some()
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The head of a SEND of this session; `has_body` as the scanner said
    /// ([`crate::codec::RawHead::has_body`]). `Some(refusal)` when the chunk is refused
    /// already (its body still goes to [`Reassembler::body`], which discards it, and
    /// [`Reassembler::end`] gives the answer).
    pub fn begin(&mut self, now: Instant, head: &Head<'_>, has_body: bool) -> Option<Refusal> {
        if self.current.is_some() {
            self.abandon(now);
        }
        self.counters.chunks += 1;
        let range = head.byte_range().unwrap_or(ByteRange {
            start: 1,
            end: None,
            total: None,
        });
        let mut cur = Current {
            message_id: head.message_id().unwrap_or_default().to_owned(),
            at: range.start.saturating_sub(1),
            range,
            has_body,
            content_type: head
                .content_type()
                .map(|_| head_value(head, "Content-Type"))
                .unwrap_or_default(),
            success_report: head.success_report(),
            failure_report: head.failure_report(),
            pieces: Vec::new(),
            len: 0,
            received: 0,
            refusal: None,
            refused_early: false,
        };
        let refusal = if !has_body {
            None
        } else if cur.message_id.is_empty() {
            Some(Refusal::NoMessageId)
        } else if let Some((_, r)) = self.refused.iter().find(|(id, _)| *id == cur.message_id) {
            Some(*r)
        } else {
            self.check_declared(&cur)
        };
        if let Some(r) = refusal {
            self.refuse(&mut cur, r);
            cur.refused_early = true;
        }
        if let Some(p) = self.messages.get_mut(&cur.message_id) {
            p.touched = now;
        }
        self.current = Some(cur);
        refusal
    }

    /// What the head alone says is wrong with the chunk.
    fn check_declared(&self, cur: &Current) -> Option<Refusal> {
        let max = self.max_message();
        let r = cur.range;
        if r.total.is_some_and(|t| t > max) || r.end.is_some_and(|e| e > max) || cur.at > max {
            return Some(Refusal::TooLarge);
        }
        let known = self.messages.get(&cur.message_id).and_then(|p| p.total);
        if let (Some(k), Some(t)) = (known, r.total)
            && k != t
        {
            return Some(Refusal::BadRange);
        }
        if known.is_some_and(|k| cur.at > k) {
            return Some(Refusal::BadRange);
        }
        None
    }

    /// Marks the chunk refused and lets go of what it held; a 413 drops its message.
    fn refuse(&mut self, cur: &mut Current, r: Refusal) {
        if cur.refusal.is_some() {
            return;
        }
        cur.refusal = Some(r);
        self.held -= cur.len;
        cur.len = 0;
        cur.pieces = Vec::new();
        match r {
            Refusal::NoMessageId => self.counters.no_message_id += 1,
            Refusal::BadRange => self.counters.bad_range += 1,
            Refusal::TooLarge => self.counters.too_large += 1,
            Refusal::HeldBound => self.counters.held_bound += 1,
            Refusal::InProgressBound => self.counters.in_progress_bound += 1,
        }
        if r.status() == 413 {
            self.drop_message(&cur.message_id);
            if !self.refused.iter().any(|(id, _)| *id == cur.message_id) {
                if self.refused.len() == REFUSED_REMEMBERED {
                    self.refused.pop_front();
                }
                self.refused.push_back((cur.message_id.clone(), r));
            }
        }
    }

    fn drop_message(&mut self, id: &str) {
        if let Some(p) = self.messages.remove(id) {
            self.held -= p.held;
        }
    }

    /// A body piece of the chunk in progress. `Some(refusal)` the first time the chunk
    /// is refused (it passed a bound with this piece); the engine may answer at once.
    pub fn body(&mut self, bytes: Bytes) -> Option<Refusal> {
        let mut cur = self.current.take()?;
        let n = bytes.len() as u64;
        self.counters.body_bytes += n;
        cur.received = cur.received.saturating_add(n);
        let out = if cur.refusal.is_some() || n == 0 {
            None
        } else {
            let end = cur.at.saturating_add(cur.len).saturating_add(n);
            let known = self.messages.get(&cur.message_id).and_then(|p| p.total);
            let r = cur.range;
            let bound = if end > self.max_message() {
                Some(Refusal::TooLarge)
            } else if r.end.is_some_and(|e| end > e)
                || r.total.is_some_and(|t| end > t)
                || known.is_some_and(|k| end > k)
            {
                Some(Refusal::BadRange)
            } else if self.held + n > self.limits.max_held {
                Some(Refusal::HeldBound)
            } else {
                None
            };
            match bound {
                Some(b) => {
                    self.refuse(&mut cur, b);
                    cur.refused_early = true;
                    Some(b)
                }
                None => {
                    self.held += n;
                    cur.len += n;
                    cur.pieces.push(bytes);
                    None
                }
            }
        };
        self.current = Some(cur);
        out
    }

    /// The end-line of the chunk in progress: what to answer, and the message if this
    /// chunk completed one. `None` when no chunk is in progress.
    pub fn end(&mut self, now: Instant, flag: Flag) -> Option<Chunk> {
        let mut cur = self.current.take()?;
        let mut message = None;
        let aborted = flag == Flag::Aborted;
        if aborted {
            self.counters.aborted += 1;
            self.held -= cur.len;
            cur.len = 0;
            cur.pieces = Vec::new();
            if !cur.message_id.is_empty() {
                self.drop_message(&cur.message_id);
            }
        } else if !cur.has_body {
            self.counters.empty += 1;
        } else if cur.refusal.is_none() {
            match self.commit(now, &mut cur, flag == Flag::Complete) {
                Ok(m) => message = m,
                Err(r) => self.refuse(&mut cur, r),
            }
        }
        let status = cur.refusal.map_or(200, Refusal::status);
        let range = cur.has_body.then(|| ByteRange {
            start: cur.range.start,
            end: Some(cur.at.saturating_add(cur.received)),
            total: cur.range.total,
        });
        Some(Chunk {
            status,
            refusal: cur.refusal,
            refused_early: cur.refused_early,
            message_id: cur.message_id,
            range,
            success_report: cur.success_report,
            failure_report: cur.failure_report,
            aborted,
            message,
        })
    }

    /// The chunk in progress stops without its end-line (its connection closed): what
    /// arrived of it is kept, as for an interrupted chunk (§7.3.1), and nothing is owed
    /// for it. That may complete a message (its other chunks, `$` among them, came
    /// first): then it is returned, for its event and success report.
    pub fn abandon(&mut self, now: Instant) -> Option<Message> {
        let mut cur = self.current.take()?;
        self.counters.abandoned_chunks += 1;
        if cur.refusal.is_some() || !cur.has_body || cur.len == 0 {
            self.held -= cur.len;
            return None;
        }
        // Taken like a `+` chunk. A refusal here (too many messages in progress) just
        // lets the bytes go.
        match self.commit(now, &mut cur, false) {
            Ok(m) => m,
            Err(r) => {
                self.refuse(&mut cur, r);
                None
            }
        }
    }

    /// Puts the chunk's pieces into its message; the message if that completed it.
    fn commit(
        &mut self,
        now: Instant,
        cur: &mut Current,
        last: bool,
    ) -> Result<Option<Message>, Refusal> {
        let end = cur.at + cur.len;
        let exists = self.messages.contains_key(&cur.message_id);
        let known = self.messages.get(&cur.message_id).and_then(|p| p.total);
        let declared = cur.range.total;
        let total = match (known, declared, last) {
            (Some(k), _, true) if k != end => return Err(Refusal::BadRange),
            (None, Some(t), true) if t != end => return Err(Refusal::BadRange),
            (_, _, true) => Some(end),
            (k, d, false) => k.or(d),
        };
        // A whole message in one chunk, the usual case: no table entry.
        if !exists && cur.at == 0 && total == Some(end) {
            self.held -= cur.len;
            cur.len = 0;
            return Ok(self.finish(
                cur.message_id.clone(),
                cur.content_type.clone(),
                cur.success_report,
                cur.failure_report,
                std::mem::take(&mut cur.pieces),
            ));
        }
        if !exists && self.messages.len() >= self.limits.max_in_progress {
            return Err(Refusal::InProgressBound);
        }
        let p = self
            .messages
            .entry(cur.message_id.clone())
            .or_insert_with(|| Partial {
                pieces: BTreeMap::new(),
                held: 0,
                total: None,
                content_type: cur.content_type.clone(),
                success_report: cur.success_report,
                failure_report: cur.failure_report,
                touched: now,
            });
        p.touched = now;
        let before = p.held;
        let mut at = cur.at;
        for piece in std::mem::take(&mut cur.pieces) {
            let n = piece.len() as u64;
            p.insert(at, piece);
            at += n;
        }
        if p.total.is_none()
            && let Some(t) = total
        {
            p.total = Some(t);
            p.truncate(t);
        }
        // The chunk's bytes were counted as the chunk's; now they are the message's.
        self.held = self.held - cur.len - before + p.held;
        cur.len = 0;
        Ok(self.take_complete(&cur.message_id))
    }

    /// Removes the message if it is complete and makes its [`Message`].
    fn take_complete(&mut self, id: &str) -> Option<Message> {
        if !self.messages.get(id).is_some_and(Partial::is_complete) {
            return None;
        }
        let p = self.messages.remove(id)?;
        self.held -= p.held;
        self.finish(
            id.to_owned(),
            p.content_type,
            p.success_report,
            p.failure_report,
            p.pieces.into_values().collect(),
        )
    }

    fn finish(
        &mut self,
        message_id: String,
        content_type: String,
        success_report: SuccessReport,
        failure_report: FailureReport,
        pieces: Vec<Bytes>,
    ) -> Option<Message> {
        let body = Body::new(pieces.into_iter().filter(|p| !p.is_empty()).collect());
        if body.is_empty() {
            self.counters.empty += 1;
            return None;
        }
        self.counters.completed += 1;
        Some(Message {
            message_id,
            content_type,
            success_report,
            failure_report,
            body,
        })
    }

    /// When [`Reassembler::handle_timeout`] next has work: the earliest time an
    /// incomplete message falls idle.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let busy = self.current.as_ref().map(|c| c.message_id.as_str());
        self.messages
            .iter()
            .filter(|(id, _)| Some(id.as_str()) != busy)
            .map(|(_, p)| p.touched + self.limits.idle_timeout)
            .min()
    }

    /// Drops the incomplete messages idle since `now - idle_timeout` or longer (not the
    /// one whose chunk is in progress). Returns how many it dropped.
    pub fn handle_timeout(&mut self, now: Instant) -> usize {
        let idle = self.limits.idle_timeout;
        let busy = self.current.as_ref().map(|c| c.message_id.clone());
        let before = self.messages.len();
        let mut freed = 0;
        self.messages.retain(|id, p| {
            let keep = Some(id) == busy.as_ref() || p.touched + idle > now;
            if !keep {
                freed += p.held;
            }
            keep
        });
        self.held -= freed;
        let n = before - self.messages.len();
        self.counters.timed_out += n as u64;
        n
    }

    /// Drops the message in progress with this Message-ID, if there is one (the engine
    /// refused it, say for its Content-Type, §7.3.1); `true` when there was. A chunk the
    /// engine answers itself (415) is best not fed to [`Reassembler::begin`] at all.
    pub fn forget(&mut self, message_id: &str) -> bool {
        let had = self.messages.contains_key(message_id);
        self.drop_message(message_id);
        had
    }

    /// Drops everything (the session ends). Returns the bytes it let go.
    pub fn clear(&mut self) -> u64 {
        let held = self.held;
        self.messages.clear();
        self.current = None;
        self.held = 0;
        held
    }
}

/// A header value as written, from a head that parsed.
fn head_value(head: &Head<'_>, name: &str) -> String {
    head.get(name)
        .and_then(|v| core::str::from_utf8(v).ok())
        .unwrap_or_default()
        .to_owned()
}
