//! Target `relay`: the sans-I/O relay core (`msrpd::relay::Relay`, two cores joined by
//! their mesh messages) driven by a script of connection opens and closes, raw frames,
//! templated AUTH/SEND/REPORT frames and responses, and timer ticks on a virtual clock.
//!
//! Each connection's writes go through the server's own send queue
//! (`msrpd::conn::SendQueue`), drained as a writer would, and the chunks it interrupts
//! are reported back to the relay, as the server does.
//!
//! Invariants: no panic; every connection's output, scanned with a fresh `Scanner` (no
//! size limits), scans, and every head in it parses with `Head::parse`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use msrpd::codec::{Event, Head, ScanLimits, Scanner};
use msrpd::conn::{Action, ConnId, ConnKind, Counters, Origin, QueueEvent, SendQueue, Slots};
use msrpd::relay::{Relay, RelayAction, RelayConfig};

const HOST: &str = "relay.example.com";

struct In {
    id: ConnId,
    scanner: Scanner,
    buf: BytesMut,
}

#[derive(Default)]
struct Out {
    scanner: Option<Scanner>,
    buf: BytesMut,
    /// The last request seen on this connection: tid, first From-Path URI, is SEND.
    last_req: Option<(String, String)>,
    /// The connection's send queue, as the server has it.
    queue: SendQueue,
}

struct World {
    relays: Vec<Relay>,
    slots: Vec<Rc<RefCell<Slots>>>,
    now: Instant,
    conns: Vec<In>,
    out: HashMap<(u16, u32, u32), Out>,
    /// Use-Path URIs handed out in AUTH responses.
    sessions: Vec<String>,
    tid: u32,
}

struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }
    fn take(&mut self, n: usize) -> &[u8] {
        let n = n.min(self.0.len());
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        a
    }
}

const PEERS: [&str; 4] = [
    "msrp://alice.example.com:7001/a1s;tcp",
    "msrp://bob.example.com:7002/b2s;tcp",
    "msrp://relay2.example.com:2855;tcp",
    "msrps://far.example.com:9/x;tcp",
];

impl World {
    fn new() -> World {
        let now = Instant::now();
        let slots: Vec<_> = (0..2u16)
            .map(|core| Rc::new(RefCell::new(Slots::new(core, 1 << 12))))
            .collect();
        let relays = (0..2u16)
            .map(|core| {
                let mut cfg = RelayConfig::new(HOST, 2855);
                cfg.core = core;
                cfg.cores = 2;
                cfg.max_auth_failures = 2;
                Relay::new(
                    cfg,
                    None,
                    [7; 32],
                    [core as u8 + 1; 32],
                    Arc::new(Counters::default()),
                    slots[usize::from(core)].clone(),
                    now,
                )
            })
            .collect();
        World {
            relays,
            slots,
            now,
            conns: Vec::new(),
            out: HashMap::new(),
            sessions: Vec::new(),
            tid: 0,
        }
    }

    fn uri_pick(&self, b: u8) -> String {
        let n = self.sessions.len();
        match b % 8 {
            0 | 1 | 2 if n > 0 => self.sessions[usize::from(b / 8) % n].clone(),
            3 => format!("msrp://{HOST}:2855;tcp"),
            4 => format!("msrp://{HOST}:2855/zzzzzzzzzzzz;tcp"),
            k => PEERS[usize::from(k) % PEERS.len()].to_string(),
        }
    }

    fn feed(&mut self, i: usize, bytes: &[u8]) {
        let now = self.now;
        let Some(c) = self.conns.get_mut(i) else {
            return;
        };
        let id = c.id;
        c.buf.extend_from_slice(bytes);
        let relay = &mut self.relays[usize::from(id.core)];
        let mut bad = false;
        loop {
            match c.scanner.next(&mut c.buf) {
                Ok(Some(Event::Head(raw))) => {
                    relay.handle_head(now, id, raw)
                }
                Ok(Some(Event::Body(b))) => relay.handle_body(Origin::Conn(id), b),
                Ok(Some(Event::End(f))) => relay.handle_end(now, Origin::Conn(id), f),
                Ok(None) => break,
                Err(_) => {
                    bad = true;
                    break;
                }
            }
        }
        if bad {
            self.close(i);
        }
        self.drain();
    }

    fn close(&mut self, i: usize) {
        if i >= self.conns.len() {
            return;
        }
        let c = self.conns.swap_remove(i);
        self.out.remove(&(c.id.core, c.id.slot, c.id.generation));
        self.relays[usize::from(c.id.core)].handle_closed(self.now, c.id);
        self.slots[usize::from(c.id.core)].borrow_mut().release(c.id);
    }

    fn close_id(&mut self, core: u16, slot: u32, generation: u32) {
        if let Some(i) = self
            .conns
            .iter()
            .position(|c| c.id.core == core && c.id.slot == slot && c.id.generation == generation)
        {
            self.close(i);
        }
    }

    fn drain(&mut self) {
        for _ in 0..10_000 {
            let mut any = false;
            for core in 0..self.relays.len() {
                while let Some(a) = self.relays[core].poll_action() {
                    any = true;
                    self.act(core as u16, a);
                }
            }
            if !any {
                return;
            }
        }
        panic!("relays keep producing actions");
    }

    fn act(&mut self, core: u16, a: RelayAction) {
        if std::env::var_os("RELAY_TRACE").is_some() {
            match &a {
                Action::Write { conn, bytes, .. } => eprintln!(
                    "core {core} write {conn:?}: {:?}",
                    String::from_utf8_lossy(bytes)
                ),
                other => eprintln!("core {core} {other:?}"),
            }
        }
        match a {
            Action::Write { conn, bytes, part } => {
                if !self.conns.iter().any(|c| c.id == conn) {
                    return;
                }
                let o = self
                    .out
                    .entry((conn.core, conn.slot, conn.generation))
                    .or_default();
                o.queue.push(bytes, part);
                // A writer that takes everything at once, one buffer at a time.
                let mut v = Vec::new();
                while o.queue.has_work() {
                    let before = v.len();
                    o.queue.fill(&mut v, before + 1, usize::MAX);
                    assert!(v.len() > before, "the queue said it had work and gave none");
                }
                for piece in v {
                    o.buf.extend_from_slice(&piece);
                }
                for e in o.queue.take_events() {
                    let QueueEvent::Interrupted { tid, .. } = e;
                    self.relays[usize::from(conn.core)].handle_rechunked(conn, &tid);
                }
                let o = self
                    .out
                    .get_mut(&(conn.core, conn.slot, conn.generation))
                    .expect("just made");
                let sc = o.scanner.get_or_insert_with(|| {
                    Scanner::new(ScanLimits {
                        max_head: usize::MAX,
                        max_non_send_body: None,
                    })
                });
                loop {
                    match sc.next(&mut o.buf) {
                        Ok(Some(Event::Head(raw))) => {
                            let h = Head::parse(raw.as_bytes()).unwrap_or_else(|e| {
                                panic!(
                                    "relay wrote a head that does not parse ({e}): {:?}",
                                    String::from_utf8_lossy(raw.as_bytes())
                                )
                            });
                            if let Some(up) = h.get("Use-Path") {
                                let up = String::from_utf8_lossy(up).into_owned();
                                if !self.sessions.contains(&up) && self.sessions.len() < 16 {
                                    self.sessions.push(up);
                                }
                            }
                            if h.is_request() {
                                o.last_req =
                                    Some((h.tid().to_string(), h.from_path().as_str().to_string()));
                            }
                        }
                        Ok(Some(_)) => {}
                        Ok(None) => break,
                        Err(e) => panic!(
                            "relay output does not scan: {e}; pending {:?}",
                            String::from_utf8_lossy(&o.buf)
                        ),
                    }
                }
            }
            Action::ToCore { core: to, msg } => {
                let now = self.now;
                if let Some(r) = self.relays.get_mut(usize::from(to)) {
                    r.handle_mesh(now, msg);
                }
            }
            Action::Close { conn, .. } => self.close_id(conn.core, conn.slot, conn.generation),
            Action::Connect { conn, .. } => {
                // The connection is made at once; a later op may refuse it (close).
                self.conns.push(In {
                    id: conn,
                    scanner: Scanner::default(),
                    buf: BytesMut::new(),
                });
            }
        }
    }

    fn next_tid(&mut self) -> String {
        self.tid += 1;
        format!("f{:05}", self.tid)
    }
}

/// Runs one script. Each op is a byte; see the match arms.
pub fn relay(data: &[u8]) {
    let mut w = World::new();
    let mut d = Bytes(data);
    while let Some(op) = d.byte() {
        let arg = d.byte().unwrap_or(0);
        let pick = |w: &World| {
            if w.conns.is_empty() {
                None
            } else {
                Some(usize::from(arg) % w.conns.len())
            }
        };
        match op % 10 {
            0 => {
                if w.conns.len() < 32 {
                    let core = u16::from(arg & 1);
                    let now = w.now;
                    let ip = if arg & 2 == 0 { [127, 0, 0, 1] } else { [192, 0, 2, 1] };
                    let Some(id) = w.slots[usize::from(core)].borrow_mut().alloc() else {
                        continue;
                    };
                    w.relays[usize::from(core)]
                        .handle_open(now, id, ConnKind::tcp_from((ip, 5000).into()));
                    w.conns.push(In {
                        id,
                        scanner: Scanner::default(),
                        buf: BytesMut::new(),
                    });
                }
            }
            1 => {
                if let Some(i) = pick(&w) {
                    w.close(i);
                    w.drain();
                }
            }
            2 => {
                let step = u64::from(arg) * u64::from(arg) * 10;
                w.now += Duration::from_millis(step);
                let now = w.now;
                for r in &mut w.relays {
                    r.handle_timeout(now);
                }
                w.drain();
            }
            3 => {
                // Raw bytes.
                let n = usize::from(d.byte().unwrap_or(0));
                let bytes = d.take(n).to_vec();
                if let Some(i) = pick(&w) {
                    w.feed(i, &bytes);
                }
            }
            4 | 5 | 6 => {
                // A templated request.
                let Some(i) = pick(&w) else { continue };
                let sel = d.byte().unwrap_or(0);
                let u1 = d.byte().unwrap_or(0);
                let u2 = d.byte().unwrap_or(0);
                let tid = w.next_tid();
                let method = ["AUTH", "SEND", "REPORT", "NICKNAME"][usize::from(sel & 3)];
                let mut to = w.uri_pick(u1);
                if sel & 4 != 0 {
                    to.push(' ');
                    to.push_str(&w.uri_pick(u2));
                }
                if sel & 8 != 0 {
                    to.push(' ');
                    to.push_str(PEERS[usize::from(u2) % 2]);
                }
                let from = PEERS[usize::from(u1 >> 4) % 2];
                let mut m =
                    format!("MSRP {tid} {method}\r\nTo-Path: {to}\r\nFrom-Path: {from}\r\n");
                if sel & 16 != 0 {
                    m.push_str("Message-ID: m1\r\n");
                }
                match (sel >> 5) & 3 {
                    0 => m.push_str("Failure-Report: yes\r\n"),
                    1 => m.push_str("Failure-Report: no\r\n"),
                    2 => m.push_str("Failure-Report: partial\r\n"),
                    _ => {}
                }
                if method == "REPORT" {
                    m.push_str("Status: 000 200 OK\r\nByte-Range: 1-2/2\r\n");
                }
                let flag = ['$', '+', '#', '$'][usize::from(u2 & 3)];
                if sel & 128 != 0 {
                    let n = usize::from(d.byte().unwrap_or(0));
                    let body = d.take(n).to_vec();
                    m.push_str("Byte-Range: 1-*/*\r\nContent-Type: text/plain\r\n\r\n");
                    let mut b = m.into_bytes();
                    b.extend_from_slice(&body);
                    b.extend_from_slice(format!("\r\n-------{tid}{flag}\r\n").as_bytes());
                    // Split the frame in two, to leave a frame in flight for a close.
                    let cut = usize::from(u2) % (b.len() + 1);
                    w.feed(i, &b[..cut]);
                    if op % 10 != 6 {
                        w.feed(i, &b[cut..]);
                    }
                } else {
                    m.push_str(&format!("-------{tid}{flag}\r\n"));
                    w.feed(i, m.as_bytes());
                }
            }
            7 | 8 => {
                // A response to the last request the relay sent on this connection.
                let Some(i) = pick(&w) else { continue };
                let code = [200u16, 400, 403, 408, 413, 481, 500, 501]
                    [usize::from(op & 1) * 4 + usize::from(d.byte().unwrap_or(0) & 3)];
                let id = w.conns[i].id;
                let Some((tid, from)) = w
                    .out
                    .get(&(id.core, id.slot, id.generation))
                    .and_then(|o| o.last_req.clone())
                else {
                    continue;
                };
                let me = PEERS[usize::from(arg >> 4) % 3];
                let m = format!(
                    "MSRP {tid} {code} X\r\nTo-Path: {from}\r\nFrom-Path: {me}\r\n-------{tid}$\r\n"
                );
                w.feed(i, m.as_bytes());
            }
            _ => {
                // End of input on a connection with a frame half sent.
                if let Some(i) = pick(&w) {
                    w.feed(i, b"MSRP half SEND\r\nTo-Path: ");
                    w.close(i);
                    w.drain();
                }
            }
        }
    }
    // Everything closes: the tables must empty.
    while !w.conns.is_empty() {
        w.close(0);
        w.drain();
    }
    w.now += Duration::from_secs(7200);
    let now = w.now;
    for r in &mut w.relays {
        r.handle_timeout(now);
    }
    w.drain();
    for r in &w.relays {
        let (sessions, txns, streams, conns) = r.table_sizes();
        assert_eq!(
            (sessions, txns, streams, conns),
            (0, 0, 0, 0),
            "tables not empty after every connection closed"
        );
    }
}
