//! The engine boundary driven without sockets: two relay cores, their mesh messages,
//! connect actions and each connection's real send queue (`msrpd::conn::SendQueue`),
//! on a virtual clock. What a core writes for a connection of the other core is carried
//! there as the server does; writers take bytes only when a test says so, so frames can
//! be made to compete for a connection.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use msrpd::codec::{Event, Flag, Head, Scanner};
use msrpd::conn::{Action, ConnId, ConnKind, Counters, QueueEvent, SendQueue, Slots};
use msrpd::relay::session::SessionKey;
use msrpd::relay::{Relay, RelayConfig};

const HOST: &str = "relay.example.com";
const RELAY: &str = "msrp://relay.example.com:2855;tcp";

/// A frame as a peer received it.
#[derive(Debug, Clone)]
struct Frame {
    head: String,
    body: Vec<u8>,
    flag: Flag,
}

impl Frame {
    fn parsed(&self) -> Head<'_> {
        Head::parse(self.head.as_bytes()).expect("relay output parses")
    }
    fn header(&self, name: &str) -> Option<String> {
        self.parsed()
            .get(name)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }
}

#[derive(Default)]
struct Peer {
    queue: SendQueue,
    wire: BytesMut,
    scanner: Scanner,
    partial: Option<Frame>,
    got: Vec<Frame>,
    input: BytesMut,
    in_scanner: Scanner,
    closed: bool,
    /// `host:port` for connections the relay opened.
    dialed: Option<String>,
}

struct Sim {
    now: Instant,
    relays: Vec<Relay>,
    slots: Vec<Rc<RefCell<Slots>>>,
    peers: HashMap<ConnId, Peer>,
    counters: Vec<Arc<Counters>>,
    tid: u32,
}

impl Sim {
    fn new() -> Sim {
        let now = Instant::now();
        let mut relays = Vec::new();
        let mut slots = Vec::new();
        let mut counters = Vec::new();
        for core in 0..2u16 {
            let mut cfg = RelayConfig::new(HOST, 2855);
            cfg.core = core;
            cfg.cores = 2;
            let s = Rc::new(RefCell::new(Slots::new(core, 1024)));
            let c = Arc::new(Counters::default());
            relays.push(Relay::new(
                cfg,
                None,
                [7; 32],
                [core as u8 + 3; 32],
                c.clone(),
                s.clone(),
                now,
            ));
            slots.push(s);
            counters.push(c);
        }
        Sim {
            now,
            relays,
            slots,
            peers: HashMap::new(),
            counters,
            tid: 0,
        }
    }

    /// A loopback client connection accepted by `core`.
    fn open(&mut self, core: u16) -> ConnId {
        let id = self.slots[usize::from(core)].borrow_mut().alloc().unwrap();
        let kind = ConnKind::tcp_from(([127, 0, 0, 1], 40000 + id.slot as u16).into());
        self.relays[usize::from(core)].handle_open(self.now, id, kind);
        self.peers.insert(id, Peer::default());
        id
    }

    fn tid(&mut self) -> String {
        self.tid += 1;
        format!("sim{:05}", self.tid)
    }

    /// Bytes from the peer of `c`, scanned and handed to its core.
    fn feed(&mut self, c: ConnId, bytes: &[u8]) {
        let now = self.now;
        let p = self.peers.get_mut(&c).unwrap();
        p.input.extend_from_slice(bytes);
        let relay = &mut self.relays[usize::from(c.core)];
        while let Some(ev) = p.in_scanner.next(&mut p.input).expect("test input scans") {
            match ev {
                Event::Head(raw) => relay.handle_head(now, c, raw),
                Event::Body(b) => relay.handle_body(msrpd::conn::Origin::Conn(c), b),
                Event::End(f) => relay.handle_end(now, msrpd::conn::Origin::Conn(c), f),
            }
        }
        self.run();
    }

    /// Carries out every action of both cores, until there are none.
    fn run(&mut self) {
        loop {
            let mut any = false;
            for core in 0..self.relays.len() {
                while let Some(a) = self.relays[core].poll_action() {
                    any = true;
                    match a {
                        Action::Write { conn, bytes, part } => {
                            if let Some(p) = self.peers.get_mut(&conn).filter(|p| !p.closed) {
                                p.queue.push(bytes, part);
                            }
                        }
                        Action::ToCore { core, msg } => {
                            self.relays[usize::from(core)].handle_mesh(self.now, msg)
                        }
                        Action::Close { conn, .. } => self.close(conn),
                        Action::Connect {
                            conn, host, port, ..
                        } => {
                            let p = self.peers.entry(conn).or_default();
                            p.dialed = Some(format!("{host}:{port}"));
                        }
                    }
                }
            }
            if !any {
                return;
            }
        }
    }

    /// The peer of `c` goes away.
    fn close(&mut self, c: ConnId) {
        if let Some(p) = self.peers.get_mut(&c)
            && !p.closed
        {
            p.closed = true;
            p.queue.clear();
            self.relays[usize::from(c.core)].handle_closed(self.now, c);
            self.slots[usize::from(c.core)].borrow_mut().release(c);
            self.run();
        }
    }

    /// Lets the writer of `c` take up to `max` bytes (at least one buffer), and the peer
    /// read them; the queue's interruptions go back to the relay, as the server does.
    fn flush(&mut self, c: ConnId, max: usize) {
        let p = self.peers.get_mut(&c).unwrap();
        let mut v: Vec<Bytes> = Vec::new();
        let mut taken = 0;
        while taken < max && p.queue.has_work() {
            let before = v.len();
            p.queue.fill(&mut v, before + 1, usize::MAX);
            taken += v[before..].iter().map(Bytes::len).sum::<usize>();
        }
        for b in v {
            p.wire.extend_from_slice(&b);
        }
        for e in p.queue.take_events() {
            let QueueEvent::Interrupted { tid, .. } = e;
            self.relays[usize::from(c.core)].handle_rechunked(c, &tid);
        }
        while let Some(ev) = p.scanner.next(&mut p.wire).expect("relay output scans") {
            match ev {
                Event::Head(h) => {
                    p.partial = Some(Frame {
                        head: String::from_utf8(h.as_bytes().to_vec()).unwrap(),
                        body: Vec::new(),
                        flag: Flag::Complete,
                    })
                }
                Event::Body(b) => p.partial.as_mut().unwrap().body.extend_from_slice(&b),
                Event::End(f) => {
                    let mut fr = p.partial.take().unwrap();
                    fr.flag = f;
                    p.got.push(fr);
                }
            }
        }
        self.run();
    }

    /// Every connection's writer takes everything.
    fn flush_all(&mut self) {
        let ids: Vec<ConnId> = self.peers.keys().copied().collect();
        for c in ids {
            self.flush(c, usize::MAX);
        }
    }

    fn frames(&mut self, c: ConnId) -> Vec<Frame> {
        self.flush(c, usize::MAX);
        std::mem::take(&mut self.peers.get_mut(&c).unwrap().got)
    }

    fn tick(&mut self, secs: u64) {
        self.now += Duration::from_secs(secs);
        for r in &mut self.relays {
            r.handle_timeout(self.now);
        }
        self.run();
    }

    fn auth(&mut self, c: ConnId, me: &str) -> String {
        let tid = self.tid();
        self.feed(
            c,
            format!("MSRP {tid} AUTH\r\nTo-Path: {RELAY}\r\nFrom-Path: {me}\r\n-------{tid}$\r\n")
                .as_bytes(),
        );
        let f = self.frames(c).pop().expect("AUTH answered");
        f.header("Use-Path").expect("Use-Path")
    }

    fn send_head(&mut self, c: ConnId, to: &str, from: &str, id: &str, range: &str) -> String {
        let tid = self.tid();
        self.feed(
            c,
            format!(
                "MSRP {tid} SEND\r\nTo-Path: {to}\r\nFrom-Path: {from}\r\nMessage-ID: {id}\r\n\
                 Byte-Range: {range}\r\nContent-Type: text/plain\r\n\r\n"
            )
            .as_bytes(),
        );
        tid
    }

    fn respond(&mut self, c: ConnId, f: &Frame, code: u16, me: &str) {
        let h = f.parsed();
        let (tid, to) = (
            h.tid().to_string(),
            h.from_path().first().as_str().to_string(),
        );
        self.feed(
            c,
            format!("MSRP {tid} {code} X\r\nTo-Path: {to}\r\nFrom-Path: {me}\r\n-------{tid}$\r\n")
                .as_bytes(),
        );
    }

    fn transactions(&self) -> u64 {
        self.counters
            .iter()
            .map(|c| c.snapshot().transactions)
            .sum()
    }
}

const ALICE: &str = "msrp://alice.example.com:7001/a;tcp";
const BOB: &str = "msrp://bob.example.com:7002/b;tcp";
const CAROL: &str = "msrp://carol.example.com:7003/c;tcp";

/// A on core 0 sends to B's session on core 1: the request is handed over, delivered, and
/// B's silence makes core 1 write a 408 REPORT for A's connection on core 0 after 30 s.
#[test]
fn cross_core_delivery_and_a_timeout_report_back_across() {
    let mut s = Sim::new();
    let a = s.open(0);
    let b = s.open(1);
    let rb = s.auth(b, BOB);
    assert_eq!(
        SessionKey::decode(rb.split('/').nth(3).unwrap().trim_end_matches(";tcp"))
            .unwrap()
            .core,
        1
    );
    let tid = s.send_head(a, &format!("{rb} {BOB}"), ALICE, "m0000001", "1-5/5");
    s.feed(a, format!("hello\r\n-------{tid}$\r\n").as_bytes());
    let ok = s.frames(a);
    assert_eq!(ok.len(), 1);
    assert_eq!(ok[0].parsed().status_code(), Some(200));
    let got = s.frames(b);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body, b"hello");
    assert_eq!(got[0].header("From-Path").unwrap(), format!("{rb} {ALICE}"));
    assert_eq!(s.transactions(), 1, "core 1 waits for B's answer");
    s.tick(31);
    let rep = s.frames(a);
    assert_eq!(rep.len(), 1, "{rep:?}");
    assert_eq!(rep[0].parsed().method().map(|m| m.as_str()), Some("REPORT"));
    assert!(rep[0].header("Status").unwrap().starts_with("000 408"));
    assert_eq!(s.transactions(), 0);
}

/// A request for a foreign next hop makes the relay ask for a connection (an id of its
/// core, announced to itself); what it queues there goes out once the writer runs, the
/// next hop's 200 closes the transaction, and a next hop that goes away fails the next
/// one with a REPORT.
#[test]
fn connect_actions_open_next_hops_and_their_failure_is_reported() {
    let mut s = Sim::new();
    let a = s.open(0);
    let ra = s.auth(a, ALICE);
    let far = "msrp://far.example.com:9000/x;tcp";
    let tid = s.send_head(a, &format!("{ra} {far}"), ALICE, "m0000002", "1-2/2");
    s.feed(a, format!("hi\r\n-------{tid}$\r\n").as_bytes());
    let (&hop, _) = s
        .peers
        .iter()
        .find(|(_, p)| p.dialed.as_deref() == Some("far.example.com:9000"))
        .expect("a Connect for the next hop");
    assert_eq!(hop.core, 0);
    let out = s.frames(hop);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].body, b"hi");
    s.respond(hop, &out[0], 200, far);
    assert_eq!(s.transactions(), 0);
    // The next one finds the hop gone before it answers: 408 REPORT to A.
    let tid = s.send_head(a, &format!("{ra} {far}"), ALICE, "m0000003", "1-2/2");
    s.feed(a, format!("yo\r\n-------{tid}$\r\n").as_bytes());
    s.flush_all();
    s.close(hop);
    let got: Vec<String> = s
        .frames(a)
        .iter()
        .map(|f| f.header("Status").unwrap_or_default())
        .collect();
    assert!(got.iter().any(|st| st.starts_with("000 408")), "{got:?}");
    // An AUTH passed on to a next hop that goes away is answered, not left to time out
    // at the client: 408 back along its From-Path with the client's own tid.
    let tid = s.tid();
    s.feed(
        a,
        format!(
            "MSRP {tid} AUTH\r\nTo-Path: {ra} {far}\r\nFrom-Path: {ALICE}\r\n-------{tid}$\r\n"
        )
        .as_bytes(),
    );
    let hop2 = *s
        .peers
        .iter()
        .find(|(id, p)| p.dialed.is_some() && !p.closed && **id != hop)
        .expect("a new connection to the next hop")
        .0;
    assert_eq!(s.frames(hop2).len(), 1, "the AUTH went on");
    s.close(hop2);
    let answer = s.frames(a);
    assert_eq!(answer.len(), 1);
    let h = answer[0].parsed();
    assert_eq!((h.tid(), h.status_code()), (tid.as_str(), Some(408)));
    assert_eq!(h.to_path().as_str(), ALICE);
}

/// A's big chunk stalls half way to B while C's message waits: the queue interrupts A's
/// chunk, C's goes out, A resumes as `TID.1`. B answers every piece: the pieces' 200s are
/// absorbed and nothing is reported; had B refused a later piece, A would get a REPORT.
#[test]
fn interrupted_chunks_owe_a_response_per_piece() {
    for refuse_second in [false, true] {
        let mut s = Sim::new();
        let b = s.open(1);
        let rb = s.auth(b, BOB);
        let a = s.open(0);
        let c = s.open(1);
        let big = s.send_head(a, &format!("{rb} {BOB}"), ALICE, "big00001", "1-*/100000");
        s.feed(a, &[b'x'; 30_000]);
        s.flush(b, 20_000);
        let small = s.send_head(c, &format!("{rb} {BOB}"), CAROL, "small001", "1-3/3");
        s.feed(c, format!("abc\r\n-------{small}$\r\n").as_bytes());
        s.flush(b, usize::MAX);
        s.feed(a, &[b'x'; 70_000]);
        s.feed(a, format!("\r\n-------{big}$\r\n").as_bytes());
        let got = s.frames(b);
        let ids: Vec<(String, Flag)> = got
            .iter()
            .map(|f| (f.header("Message-ID").unwrap(), f.flag))
            .collect();
        assert_eq!(
            ids,
            [
                ("big00001".to_string(), Flag::Continued),
                ("small001".to_string(), Flag::Complete),
                ("big00001".to_string(), Flag::Complete),
            ],
            "C's message passes A's stalled chunk"
        );
        assert_eq!(got[0].body.len() + got[2].body.len(), 100_000);
        assert_eq!(
            got[2].header("Byte-Range").unwrap(),
            format!("{}-*/100000", got[0].body.len() + 1)
        );
        for (i, f) in got.iter().enumerate() {
            let code = if refuse_second && i == 2 { 413 } else { 200 };
            s.respond(b, f, code, BOB);
        }
        let to_a: Vec<Frame> = s.frames(a);
        let kinds: Vec<String> = to_a
            .iter()
            .map(|f| {
                let h = f.parsed();
                match h.method() {
                    Some(m) => format!("{} {}", m.as_str(), f.header("Status").unwrap()),
                    None => h.status_code().unwrap().to_string(),
                }
            })
            .collect();
        if refuse_second {
            assert_eq!(kinds.len(), 2, "{kinds:?}");
            assert_eq!(kinds[0], "200");
            assert!(kinds[1].starts_with("REPORT 000 413"), "{kinds:?}");
        } else {
            assert_eq!(kinds, ["200"], "one 200 for A's chunk, no REPORT");
        }
        assert_eq!(s.transactions(), 0, "every piece answered");
    }
}
