//! Target `reassembly`: one user-agent session's `msrpd::ua::reassembly::Reassembler`
//! driven by a script of SEND chunks against a simple model.
//!
//! The model: four messages (Message-IDs `msg-0` .. `msg-3`), each with fixed true
//! contents of 0 to 300 bytes. Honest chunks are slices of the truth with truthful
//! Byte-Ranges (numeric or `*` range-ends, at or past the body's end; numeric or `*`
//! totals) and `$` only on a chunk that reaches the end, sent in any order, repeated or
//! overlapping, their bodies split into pieces at chosen points, sometimes aborted with
//! `#` or cut off (`abandon`). Hostile chunks carry random ranges, bytes and flags, and
//! taint their Message-ID for good. Other ops: bodiless SENDs, the clock advancing with
//! `handle_timeout`, a new `a=max-size`.
//!
//! Invariants: no panic; bytes held within `max_held` and messages in progress within
//! `max_in_progress` after every call; statuses are 200, 400 or 413; an honest chunk of
//! an untainted message is never answered 400; every completed message of an untainted
//! Message-ID equals its truth byte for byte; `poll_timeout` is never in the past after
//! `handle_timeout`; once the chunk in progress is abandoned and every message has timed
//! out, nothing is held and nothing is in progress.

use std::time::{Duration, Instant};

use bytes::Bytes;
use msrpd::codec::{Flag, Head};
use msrpd::ua::reassembly::{Chunk, Limits, Reassembler};

struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }
    fn or0(&mut self) -> u8 {
        self.byte().unwrap_or(0)
    }
    fn u16(&mut self) -> u16 {
        u16::from(self.or0()) << 8 | u16::from(self.or0())
    }
}

struct Model {
    r: Reassembler,
    limits: Limits,
    now: Instant,
    truth: [Vec<u8>; 4],
    tainted: [bool; 4],
    tid: u32,
    /// Completed messages compared with their truth.
    checked: usize,
}

impl Model {
    fn check(&self) {
        assert!(self.r.held() <= self.limits.max_held, "held {} over the bound", self.r.held());
        assert!(self.r.in_progress() <= self.limits.max_in_progress);
        if self.r.in_progress() == 0 && !self.r.in_chunk() {
            assert_eq!(self.r.held(), 0, "bytes held with nothing in progress");
        }
    }

    fn head(&mut self, mid: Option<usize>, br: Option<String>, body: bool, sr: u8) -> Vec<u8> {
        self.tid += 1;
        let mut h = format!(
            "MSRP t{:07} SEND\r\nTo-Path: msrp://b.example.com:7654/jshA7we;tcp\r\nFrom-Path: msrp://a.example.com:1/x;tcp\r\n",
            self.tid
        );
        if let Some(k) = mid {
            h.push_str(&format!("Message-ID: msg-{k}\r\n"));
        }
        if let Some(br) = br {
            h.push_str(&format!("Byte-Range: {br}\r\n"));
        }
        match sr % 4 {
            1 => h.push_str("Success-Report: yes\r\n"),
            2 => h.push_str("Failure-Report: partial\r\n"),
            3 => h.push_str("Failure-Report: no\r\n"),
            _ => {}
        }
        if body {
            h.push_str("Content-Type: text/plain\r\n");
        }
        h.into_bytes()
    }

    /// One chunk: head, body in pieces cut at `cuts`, then `flag` (`None`: abandoned).
    /// Returns the chunk's answer, or `None` if the head did not parse or was abandoned.
    fn chunk(&mut self, head: &[u8], body: &[u8], cuts: &[usize], flag: Option<Flag>) -> Option<Chunk> {
        let Ok(h) = Head::parse(head) else {
            return None;
        };
        self.r.begin(self.now, &h, true);
        self.check();
        // One shared buffer, sliced: the pieces are what the scanner would hand out.
        let all = Bytes::copy_from_slice(body);
        let mut at = 0;
        for &c in cuts.iter().chain(std::iter::once(&body.len())) {
            let c = c.clamp(at, body.len());
            if c > at {
                self.r.body(all.slice(at..c));
                self.check();
            }
            at = c;
        }
        let Some(flag) = flag else {
            if let Some(m) = self.r.abandon(self.now) {
                self.delivered(&m.message_id, &m.body.to_bytes());
            }
            self.check();
            return None;
        };
        let c = self.r.end(self.now, flag).expect("a chunk was in progress");
        self.check();
        assert!(matches!(c.status, 200 | 400 | 413), "status {}", c.status);
        if let Some(m) = &c.message {
            assert!(!m.body.is_empty(), "an empty message was delivered");
            assert_eq!(m.total(), m.body.to_bytes().len() as u64);
            self.delivered(&m.message_id, &m.body.to_bytes());
        }
        Some(c)
    }

    fn delivered(&mut self, id: &str, body: &[u8]) {
        let k: usize = id.strip_prefix("msg-").and_then(|n| n.parse().ok()).expect("one of ours");
        if !self.tainted[k] {
            assert!(body == &self.truth[k][..], "message {k} differs from the model");
            self.checked += 1;
        }
    }
}

/// See the module documentation. Returns how many completed messages were compared
/// with their truth (for replaying seeds by hand).
pub fn reassembly(data: &[u8]) -> usize {
    let mut inp = Input(data);
    let c0 = inp.or0();
    let c1 = inp.or0();
    let limits = Limits {
        max_message: 16 + u64::from(inp.u16() % 512),
        max_held: 1 + u64::from(inp.u16() % 1024),
        max_in_progress: 1 + usize::from(c0 % 6),
        idle_timeout: Duration::from_secs(1 + u64::from(c1 % 60)),
    };
    let max_size = (c0 & 0x80 != 0).then(|| u64::from(inp.or0()) * 2);
    let mut truth: [Vec<u8>; 4] = Default::default();
    for (k, t) in truth.iter_mut().enumerate() {
        let len = usize::from(inp.or0()) + usize::from(inp.or0() % 46);
        let seed = inp.or0();
        *t = (0..len).map(|i| seed.wrapping_add((i * 31 + k * 7) as u8)).collect();
    }
    let mut m = Model {
        r: Reassembler::new(limits, max_size),
        limits,
        now: Instant::now(),
        truth,
        tainted: [false; 4],
        tid: 0,
        checked: 0,
    };
    while let Some(op) = inp.byte() {
        let k = usize::from(op >> 6);
        match op & 7 {
            // Honest chunk: `+`/`$` (0, 1), `#` (2), abandoned (3).
            0..=3 => {
                let len = m.truth[k].len();
                let s = usize::from(inp.u16()) % (len + 1);
                let n = usize::from(inp.u16()) % (len - s + 1);
                let form = inp.or0();
                let extra = usize::from(inp.or0() % 4);
                let end = match form & 3 {
                    0 => "*".to_string(),
                    // A range-end at or past the body's (an interrupted chunk).
                    1 => (s + n + extra).min(len).max(s + n).to_string(),
                    _ => (s + n).to_string(),
                };
                let total = if form & 4 != 0 { "*".to_string() } else { len.to_string() };
                let br = (form & 8 == 0 || s != 0).then(|| format!("{}-{end}/{total}", s + 1));
                let flag = match op & 7 {
                    2 => Some(Flag::Aborted),
                    3 => None,
                    _ if s + n == len && form & 16 == 0 => Some(Flag::Complete),
                    _ => Some(Flag::Continued),
                };
                let cuts = [usize::from(inp.or0()), usize::from(inp.or0())];
                let mut cuts = cuts.map(|c| c % (n + 1));
                cuts.sort_unstable();
                let head = m.head(Some(k), br, true, form >> 5);
                let body = m.truth[k][s..s + n].to_vec();
                if let Some(c) = m.chunk(&head, &body, &cuts, flag)
                    && !m.tainted[k]
                {
                    assert_ne!(c.status, 400, "honest chunk of msg-{k} refused: {c:?}");
                }
            }
            // Hostile chunk: random range, bytes and flag; taints the message.
            4 => {
                let a = u64::from(inp.or0());
                let b = inp.or0();
                let t = inp.or0();
                let end = if b == 255 { "*".into() } else { b.to_string() };
                let total = if t == 255 { "*".into() } else { t.to_string() };
                let n = usize::from(inp.or0() % 64);
                let body: Vec<u8> = (0..n).map(|_| inp.or0()).collect();
                let flag = match inp.or0() % 4 {
                    0 => Some(Flag::Complete),
                    1 => Some(Flag::Continued),
                    2 => Some(Flag::Aborted),
                    _ => None,
                };
                m.tainted[k] = true;
                let head = m.head(Some(k), Some(format!("{a}-{end}/{total}")), true, t);
                m.chunk(&head, &body, &[n / 2], flag);
            }
            // A bodiless SEND, with or without a Message-ID.
            5 => {
                let head = m.head((op & 8 != 0).then_some(k), Some("1-0/0".into()), false, 0);
                if let Ok(h) = Head::parse(&head) {
                    m.r.begin(m.now, &h, false);
                    let c = m.r.end(m.now, Flag::Complete).expect("in a chunk");
                    assert_eq!((c.status, c.message.is_none()), (200, true));
                }
                m.check();
            }
            // The clock moves on.
            6 => {
                m.now += Duration::from_millis(u64::from(inp.u16()) * 16);
                if let Some(t) = m.r.poll_timeout()
                    && t <= m.now
                {
                    assert!(m.r.handle_timeout(m.now) > 0, "a due deadline dropped nothing");
                }
                m.r.handle_timeout(m.now);
                assert!(m.r.poll_timeout().is_none_or(|t| t > m.now));
                m.check();
            }
            // A new a=max-size.
            _ => {
                let v = inp.or0();
                m.r.set_max_size((v != 0).then(|| u64::from(v) * 2));
            }
        }
    }
    // Whatever is left: cut off, then timed out.
    if let Some(msg) = m.r.abandon(m.now) {
        m.delivered(&msg.message_id, &msg.body.to_bytes());
    }
    m.now += limits.idle_timeout;
    m.r.handle_timeout(m.now);
    assert_eq!((m.r.held(), m.r.in_progress()), (0, 0), "left behind");
    assert_eq!(m.r.poll_timeout(), None);
    m.checked
}
