//! The RFC 3261 §17 transaction machines on a virtual clock: every state, every timer
//! (A B D E F G H I J K, and RFC 6026's L and M), retransmission schedules at exact
//! instants, absorbed duplicates, the ACK for non-2xx, CANCEL (§9), the §13.3.1.4 2xx
//! retransmission until ACK, response routing (§18.2.2, RFC 3581) and the table limit.

use std::time::{Duration, Instant};

use bytes::Bytes;
use msrpd::conn::ConnId;
use msrpd::sip::txn::{
    Config, Event, Kind, Peer, State, Timer, Transactions, Transmit, Transport, TxError, TxId,
    completed_cost, held_cost, request_writer,
};
use msrpd::sip::write::{ack_for, cancel_for, response_to};
use msrpd::sip::{HeaderName, Message};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn udp(port: u16) -> Peer {
    Peer {
        transport: Transport::Udp,
        addr: format!("192.0.2.7:{port}").parse().unwrap(),
        conn: None,
    }
}

fn tcp(port: u16) -> Peer {
    Peer {
        transport: Transport::Tcp,
        addr: format!("192.0.2.7:{port}").parse().unwrap(),
        conn: Some(ConnId {
            core: 1,
            slot: 4,
            generation: 9,
        }),
    }
}

/// A request from "alice" as a peer sends it (sent-by port 5062, rport only if asked).
fn request(method: &str, branch: &str, transport: Transport, rport: bool) -> Message {
    let mut w = msrpd::sip::Writer::request(method, "sip:bob@192.0.2.1");
    let t = transport.as_str();
    let rp = if rport { ";rport" } else { "" };
    w.header(
        "Via",
        &format!("SIP/2.0/{t} 192.0.2.7:5062;branch={branch}{rp}"),
    );
    w.header("Max-Forwards", "70");
    w.header("From", "<sip:alice@example.com>;tag=af1");
    w.header("To", "<sip:bob@example.com>");
    w.header("Call-ID", "call-1@example.com");
    w.header("CSeq", &format!("7 {method}"));
    w.into_message().unwrap()
}

/// Our own request (what a TU would send).
fn own(method: &str, branch: &str, transport: Transport) -> Message {
    request_writer(
        method,
        "sip:bob@192.0.2.7",
        transport,
        "192.0.2.1:5060",
        branch,
        "<sip:ms@192.0.2.1>;tag=m0-1",
        "<sip:bob@192.0.2.7>",
        "m0-abc@192.0.2.1",
        1,
    )
    .into_message()
    .unwrap()
}

fn reply(req: &Message, code: u16, tag: Option<&str>) -> Message {
    response_to(req, code, None, tag).into_message().unwrap()
}

/// The ACK a UAC sends for a 2xx: a new branch, same Call-ID, CSeq number and From tag.
fn ack_2xx(req: &Message, branch: &str) -> Message {
    let mut w = msrpd::sip::Writer::request("ACK", req.request_uri());
    w.header(
        "Via",
        &format!("SIP/2.0/UDP 192.0.2.7:5062;branch={branch}"),
    );
    w.header("Max-Forwards", "70");
    w.copy_all(req, HeaderName::From);
    w.header("To", "<sip:bob@example.com>;tag=b1");
    w.copy_all(req, HeaderName::CallId);
    w.header("CSeq", &format!("{} ACK", req.cseq().unwrap().seq));
    w.into_message().unwrap()
}

struct H {
    t: Transactions,
    start: Instant,
    now: Instant,
}

impl H {
    fn new(cfg: Config) -> H {
        let start = Instant::now();
        H {
            t: Transactions::new(cfg),
            start,
            now: start,
        }
    }
    fn udp() -> H {
        H::new(Config::default())
    }
    fn at(&self, d: Duration) -> Instant {
        self.start + d
    }
    /// Moves the clock to `start + d` and runs the timers due.
    fn go(&mut self, d: Duration) {
        self.now = self.start + d;
        self.t.handle_timeout(self.now);
        if let Some(next) = self.t.poll_timeout() {
            assert!(next > self.now, "a timer in the past after handle_timeout");
        }
    }
    fn tx(&mut self) -> Vec<Transmit> {
        std::iter::from_fn(|| self.t.poll_transmit()).collect()
    }
    fn ev(&mut self) -> Vec<Event> {
        std::iter::from_fn(|| self.t.poll_event()).collect()
    }
    fn recv(&mut self, from: Peer, m: &Message) {
        self.t.handle_message(self.now, from, m.clone());
    }
    /// Runs timers one deadline at a time until `end`, recording when each transmit
    /// went out (relative to start).
    fn run_until(&mut self, end: Duration) -> Vec<(Duration, Transmit)> {
        let mut out = Vec::new();
        while let Some(next) = self.t.poll_timeout() {
            if next > self.start + end {
                break;
            }
            self.go(next - self.start);
            for t in self.tx() {
                out.push((next - self.start, t));
            }
        }
        out
    }
}

fn the_request_id(evs: &[Event]) -> TxId {
    match evs {
        [Event::Request { id, .. }] => *id,
        other => panic!("expected one Request event, got {other:?}"),
    }
}

fn codes(tx: &[Transmit]) -> Vec<String> {
    tx.iter()
        .map(|t| {
            let m = Message::parse_own(t.bytes.clone()).unwrap();
            match m.status() {
                Some(c) => c.to_string(),
                None => m.method_str().to_string(),
            }
        })
        .collect()
}

fn secs(v: &[(Duration, Transmit)]) -> Vec<u64> {
    v.iter().map(|(d, _)| d.as_millis() as u64).collect()
}

// ------------------------------------------------------------------------------------
// INVITE client (§17.1.1)

#[test]
fn invite_client_calling_timer_a_doubles_until_timer_b() {
    let mut h = H::udp();
    let inv = own("INVITE", "z9hG4bK-0-a1", Transport::Udp);
    let id = h.t.send_request(h.now, udp(5062), inv.clone()).unwrap();
    assert_eq!(h.t.kind(id), Some(Kind::InviteClient));
    assert_eq!(h.t.state(id), Some(State::Calling));
    let first = h.tx();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].bytes, *inv.raw());
    assert_eq!(first[0].to, udp(5062));
    assert_eq!(first[0].txn, Some(id));
    assert_eq!(h.t.deadline(id, Timer::A), Some(h.at(ms(500))));
    assert_eq!(h.t.deadline(id, Timer::B), Some(h.at(ms(32_000))));
    let sent = h.run_until(ms(40_000));
    // A at T1, then 2T1, 4T1, ... (no cap for INVITE): 0.5, 1.5, 3.5, 7.5, 15.5, 31.5 s.
    assert_eq!(secs(&sent), [500, 1500, 3500, 7500, 15_500, 31_500]);
    assert!(sent.iter().all(|(_, t)| t.bytes == *inv.raw()));
    let evs = h.ev();
    assert!(
        matches!(evs[..], [Event::Timeout { id: a, timer: Timer::B }, Event::Terminated { id: b }] if a == id && b == id),
        "{evs:?}"
    );
    assert!(h.t.is_empty());
    assert_eq!(h.t.poll_timeout(), None);
    assert_eq!(h.t.timer_count(), 0);
}

#[test]
fn invite_client_reliable_sends_once_and_times_out_with_b() {
    let mut h = H::udp();
    let id =
        h.t.send_request(
            h.now,
            tcp(5062),
            own("INVITE", "z9hG4bK-0-a2", Transport::Tcp),
        )
        .unwrap();
    assert_eq!(h.tx().len(), 1);
    assert_eq!(h.t.deadline(id, Timer::A), None);
    assert_eq!(h.t.poll_timeout(), Some(h.at(ms(32_000))));
    assert!(h.run_until(ms(31_999)).is_empty());
    assert_eq!(h.t.state(id), Some(State::Calling));
    h.go(ms(32_000));
    assert!(h.tx().is_empty());
    assert!(matches!(
        h.ev()[..],
        [
            Event::Timeout {
                timer: Timer::B,
                ..
            },
            Event::Terminated { .. }
        ]
    ));
}

#[test]
fn invite_client_proceeding_completed_ack_and_timer_d() {
    let mut h = H::udp();
    let inv = own("INVITE", "z9hG4bK-0-a3", Transport::Udp);
    let id = h.t.send_request(h.now, udp(5062), inv.clone()).unwrap();
    h.tx();
    h.go(ms(100));
    let ringing = reply(&inv, 180, Some("b1"));
    h.recv(udp(5062), &ringing);
    assert_eq!(h.t.state(id), Some(State::Proceeding));
    assert!(
        matches!(&h.ev()[..], [Event::Response { id: i, msg }] if *i == id && msg.status() == Some(180))
    );
    // No retransmission, no timeout in Proceeding (timer C is not implemented).
    assert_eq!(h.t.poll_timeout(), None);
    h.go(ms(60_000));
    let busy = reply(&inv, 486, Some("b1"));
    h.recv(udp(5062), &busy);
    assert_eq!(h.t.state(id), Some(State::Completed));
    let tx = h.tx();
    assert_eq!(tx.len(), 1);
    assert_eq!(tx[0].bytes, ack_for(&inv, &busy));
    assert_eq!(
        std::str::from_utf8(&tx[0].bytes).unwrap(),
        "ACK sip:bob@192.0.2.7 SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-0-a3;rport\r\n\
Max-Forwards: 70\r\n\
From: <sip:ms@192.0.2.1>;tag=m0-1\r\n\
To: <sip:bob@192.0.2.7>;tag=b1\r\n\
Call-ID: m0-abc@192.0.2.1\r\n\
CSeq: 1 ACK\r\n\
Content-Length: 0\r\n\r\n"
    );
    assert!(matches!(&h.ev()[..], [Event::Response { msg, .. }] if msg.status() == Some(486)));
    assert_eq!(h.t.deadline(id, Timer::D), Some(h.at(ms(92_000))));
    // A retransmitted 486 gets the ACK again and is not passed up.
    h.go(ms(61_000));
    h.recv(udp(5062), &busy);
    assert_eq!(h.tx()[0].bytes, ack_for(&inv, &busy));
    assert!(h.ev().is_empty());
    assert_eq!(h.t.stats().absorbed, 1);
    h.go(ms(91_999));
    assert_eq!(h.t.state(id), Some(State::Completed));
    h.go(ms(92_000));
    assert!(matches!(h.ev()[..], [Event::Terminated { .. }]));
    assert!(h.t.is_empty());
}

#[test]
fn invite_client_reliable_timer_d_is_zero() {
    let mut h = H::udp();
    let inv = own("INVITE", "z9hG4bK-0-a4", Transport::Tcp);
    let id = h.t.send_request(h.now, tcp(5062), inv.clone()).unwrap();
    h.tx();
    h.recv(tcp(5062), &reply(&inv, 603, Some("b1")));
    assert_eq!(codes(&h.tx()), ["ACK"]);
    assert!(
        matches!(&h.ev()[..], [Event::Response { .. }, Event::Terminated { id: t }] if *t == id)
    );
    assert_eq!(h.t.state(id), None);
}

#[test]
fn invite_client_2xx_accepted_until_timer_m() {
    let mut h = H::udp();
    let inv = own("INVITE", "z9hG4bK-0-a5", Transport::Udp);
    let id = h.t.send_request(h.now, udp(5062), inv.clone()).unwrap();
    h.tx();
    h.go(ms(700));
    assert_eq!(h.tx().len(), 1, "timer A fired once at 500 ms");
    let ok = reply(&inv, 200, Some("b1"));
    h.recv(udp(5062), &ok);
    assert_eq!(h.t.state(id), Some(State::Accepted));
    assert!(h.tx().is_empty(), "the ACK for a 2xx is the TU's");
    assert!(matches!(&h.ev()[..], [Event::Response { msg, .. }] if msg.status() == Some(200)));
    assert_eq!(h.t.deadline(id, Timer::A), None);
    assert_eq!(h.t.deadline(id, Timer::B), None);
    assert_eq!(h.t.deadline(id, Timer::M), Some(h.at(ms(32_700))));
    // Retransmitted 2xx: passed up each time so the TU re-sends its ACK.
    h.go(ms(1200));
    h.recv(udp(5062), &ok);
    assert!(matches!(&h.ev()[..], [Event::Response { .. }]));
    // A late 487 is absorbed.
    h.recv(udp(5062), &reply(&inv, 487, Some("b1")));
    assert!(h.ev().is_empty() && h.tx().is_empty());
    h.go(ms(32_700));
    assert!(matches!(h.ev()[..], [Event::Terminated { .. }]));
    h.recv(udp(5062), &ok);
    assert!(matches!(&h.ev()[..], [Event::StrayResponse { .. }]));
    assert_eq!(h.t.stats().stray, 1);
}

// ------------------------------------------------------------------------------------
// non-INVITE client (§17.1.2)

#[test]
fn non_invite_client_timer_e_capped_at_t2_then_timer_f() {
    let mut h = H::udp();
    let msg = own("MESSAGE", "z9hG4bK-0-b1", Transport::Udp);
    let id = h.t.send_request(h.now, udp(5062), msg.clone()).unwrap();
    assert_eq!(h.t.state(id), Some(State::Trying));
    assert_eq!(h.tx().len(), 1);
    let sent = h.run_until(ms(40_000));
    // T1, 2T1, 4T1, then T2 = 4 s: 0.5, 1.5, 3.5, 7.5, 11.5, ... 31.5.
    assert_eq!(
        secs(&sent),
        [
            500, 1500, 3500, 7500, 11_500, 15_500, 19_500, 23_500, 27_500, 31_500
        ]
    );
    assert!(sent.iter().all(|(_, t)| t.bytes == *msg.raw()));
    assert!(matches!(
        h.ev()[..],
        [
            Event::Timeout {
                timer: Timer::F,
                ..
            },
            Event::Terminated { .. }
        ]
    ));
}

#[test]
fn non_invite_client_proceeding_retransmits_at_t2_completed_timer_k() {
    let mut h = H::udp();
    let msg = own("MESSAGE", "z9hG4bK-0-b2", Transport::Udp);
    let id = h.t.send_request(h.now, udp(5062), msg.clone()).unwrap();
    h.tx();
    h.go(ms(500)); // E fires: retransmit, next in 1 s
    assert_eq!(h.tx().len(), 1);
    h.go(ms(700));
    h.recv(udp(5062), &reply(&msg, 100, None));
    assert_eq!(h.t.state(id), Some(State::Proceeding));
    assert!(matches!(&h.ev()[..], [Event::Response { msg, .. }] if msg.status() == Some(100)));
    let sent = h.run_until(ms(10_000));
    // The E already set fires at 1.5 s; from Proceeding on it is reset to T2.
    assert_eq!(secs(&sent), [1500, 5500, 9500]);
    h.go(ms(10_000));
    let ok = reply(&msg, 202, Some("b9"));
    h.recv(udp(5062), &ok);
    assert_eq!(h.t.state(id), Some(State::Completed));
    assert!(matches!(&h.ev()[..], [Event::Response { msg, .. }] if msg.status() == Some(202)));
    assert_eq!(h.t.deadline(id, Timer::E), None);
    assert_eq!(h.t.deadline(id, Timer::F), None);
    assert_eq!(h.t.deadline(id, Timer::K), Some(h.at(ms(15_000))));
    h.recv(udp(5062), &ok);
    assert!(
        h.ev().is_empty() && h.tx().is_empty(),
        "retransmitted final absorbed"
    );
    h.go(ms(14_999));
    assert_eq!(h.t.state(id), Some(State::Completed));
    h.go(ms(15_000));
    assert!(matches!(h.ev()[..], [Event::Terminated { .. }]));
}

#[test]
fn non_invite_client_reliable_no_e_and_k_zero() {
    let mut h = H::udp();
    let msg = own("OPTIONS", "z9hG4bK-0-b3", Transport::Tcp);
    let id = h.t.send_request(h.now, tcp(5062), msg.clone()).unwrap();
    h.tx();
    assert_eq!(h.t.deadline(id, Timer::E), None);
    assert_eq!(h.t.deadline(id, Timer::F), Some(h.at(ms(32_000))));
    h.go(ms(31_000));
    assert!(h.tx().is_empty());
    h.recv(tcp(5062), &reply(&msg, 200, Some("x")));
    assert!(matches!(
        &h.ev()[..],
        [Event::Response { .. }, Event::Terminated { .. }]
    ));
    assert!(h.t.is_empty());
}

#[test]
fn non_invite_client_timer_f_on_reliable() {
    let mut h = H::udp();
    h.t.send_request(
        h.now,
        tcp(5062),
        own("OPTIONS", "z9hG4bK-0-b4", Transport::Tcp),
    )
    .unwrap();
    h.tx();
    h.go(ms(32_000));
    assert!(matches!(
        h.ev()[..],
        [
            Event::Timeout {
                timer: Timer::F,
                ..
            },
            Event::Terminated { .. }
        ]
    ));
}

// ------------------------------------------------------------------------------------
// INVITE server (§17.2.1)

#[test]
fn invite_server_trying_after_200ms_then_completed_g_h_confirmed_i() {
    let mut h = H::udp();
    let inv = request("INVITE", "z9hG4bK776", Transport::Udp, false);
    h.recv(udp(40_000), &inv);
    let id = the_request_id(&h.ev());
    assert_eq!(h.t.kind(id), Some(Kind::InviteServer));
    assert_eq!(h.t.state(id), Some(State::Proceeding));
    assert!(h.tx().is_empty());
    assert_eq!(h.t.deadline(id, Timer::Trying), Some(h.at(ms(200))));
    h.go(ms(200));
    let trying = h.tx();
    assert_eq!(trying.len(), 1);
    let mut src = inv.clone();
    src.set_source(Some(udp(40_000).addr));
    assert_eq!(trying[0].bytes, response_to(&src, 100, None, None).finish());
    // No rport: the response goes to the source address at the sent-by port (§18.2.2).
    assert_eq!(trying[0].to, udp(5062));
    // A retransmitted INVITE gets the 100 again, and the TU does not see it.
    h.go(ms(300));
    h.recv(udp(40_000), &inv);
    assert_eq!(h.tx()[0].bytes, trying[0].bytes);
    assert!(h.ev().is_empty());
    // The TU's 180, then the INVITE again: the 180 again.
    let ringing = reply(&src, 180, Some("m0-t"));
    h.t.respond(h.now, id, ringing.clone()).unwrap();
    assert_eq!(h.tx()[0].bytes, *ringing.raw());
    h.recv(udp(40_000), &inv);
    assert_eq!(h.tx()[0].bytes, *ringing.raw());
    // 486: Completed, G at T1 (unreliable), H at 64*T1.
    h.go(ms(1000));
    let busy = reply(&src, 486, Some("m0-t"));
    h.t.respond(h.now, id, busy.clone()).unwrap();
    assert_eq!(h.t.state(id), Some(State::Completed));
    assert_eq!(h.tx()[0].bytes, *busy.raw());
    assert_eq!(h.t.deadline(id, Timer::G), Some(h.at(ms(1500))));
    assert_eq!(h.t.deadline(id, Timer::H), Some(h.at(ms(33_000))));
    let sent = h.run_until(ms(9000));
    // G: T1, 2T1, 4T1, then capped at T2: +0.5, +1.5, +3.5, +7.5.
    assert_eq!(secs(&sent), [1500, 2500, 4500, 8500]);
    assert!(sent.iter().all(|(_, t)| t.bytes == *busy.raw()));
    // The INVITE again in Completed: the 486 again.
    h.recv(udp(40_000), &inv);
    assert_eq!(h.tx()[0].bytes, *busy.raw());
    // ACK: Confirmed, G and H stop, I = T4.
    h.go(ms(10_000));
    let ack = Message::parse_own(ack_for(&inv, &busy)).unwrap();
    h.recv(udp(40_000), &ack);
    assert_eq!(h.t.state(id), Some(State::Confirmed));
    assert!(
        h.ev().is_empty(),
        "the ACK for a non-2xx stays in the transaction"
    );
    assert_eq!(h.t.deadline(id, Timer::G), None);
    assert_eq!(h.t.deadline(id, Timer::H), None);
    assert_eq!(h.t.deadline(id, Timer::I), Some(h.at(ms(15_000))));
    // More ACKs and INVITEs are absorbed silently.
    h.recv(udp(40_000), &ack);
    h.recv(udp(40_000), &inv);
    assert!(h.tx().is_empty() && h.ev().is_empty());
    h.go(ms(15_000));
    assert!(matches!(h.ev()[..], [Event::Terminated { .. }]));
    assert!(h.t.is_empty());
}

#[test]
fn invite_server_timer_h_when_no_ack() {
    let mut h = H::udp();
    let inv = request("INVITE", "z9hG4bK777", Transport::Udp, true);
    h.recv(udp(40_000), &inv);
    let id = the_request_id(&h.ev());
    let busy = reply(&inv, 404, Some("m0-t"));
    h.t.respond(h.now, id, busy).unwrap();
    let first = h.tx();
    // rport: to the source port (RFC 3581 §4).
    assert_eq!(first[0].to, udp(40_000));
    let sent = h.run_until(ms(40_000));
    assert_eq!(
        secs(&sent),
        [
            500, 1500, 3500, 7500, 11_500, 15_500, 19_500, 23_500, 27_500, 31_500
        ]
    );
    let evs = h.ev();
    assert!(
        matches!(
            evs[..],
            [
                Event::Timeout {
                    timer: Timer::H,
                    ..
                },
                Event::Terminated { .. }
            ]
        ),
        "{evs:?}"
    );
}

#[test]
fn invite_server_reliable_no_g_and_i_zero() {
    let mut h = H::udp();
    let inv = request("INVITE", "z9hG4bK778", Transport::Tcp, false);
    h.recv(tcp(40_000), &inv);
    let id = the_request_id(&h.ev());
    let busy = reply(&inv, 486, Some("m0-t"));
    h.t.respond(h.now, id, busy.clone()).unwrap();
    let tx = h.tx();
    // Reliable: back on the connection it came on.
    assert_eq!(tx[0].to, tcp(40_000));
    assert_eq!(h.t.deadline(id, Timer::G), None);
    assert_eq!(h.t.deadline(id, Timer::H), Some(h.at(ms(32_000))));
    h.recv(
        tcp(40_000),
        &Message::parse_own(ack_for(&inv, &busy)).unwrap(),
    );
    assert!(matches!(h.ev()[..], [Event::Terminated { .. }]));
}

#[test]
fn invite_server_trying_at_once_or_not_at_all() {
    let mut h = H::new(Config {
        trying_after: Duration::ZERO,
        ..Config::default()
    });
    let inv = request("INVITE", "z9hG4bK779", Transport::Udp, true);
    h.recv(udp(40_000), &inv);
    assert_eq!(codes(&h.tx()), ["100"]);
    // The default delay: a TU answering within 200 ms means no 100 at all.
    let mut h = H::udp();
    h.recv(udp(40_000), &inv);
    let id = the_request_id(&h.ev());
    h.go(ms(150));
    h.t.respond(h.now, id, reply(&inv, 480, Some("t"))).unwrap();
    assert_eq!(h.t.deadline(id, Timer::Trying), None);
    assert_eq!(codes(&h.tx()), ["480"]);
    h.go(ms(200));
    assert!(h.tx().is_empty());
}

#[test]
fn invite_server_2xx_retransmitted_until_ack() {
    let mut h = H::udp();
    let inv = request("INVITE", "z9hG4bK780", Transport::Udp, true);
    h.recv(udp(40_000), &inv);
    let id = the_request_id(&h.ev());
    let ok = reply(&inv, 200, Some("b1"));
    h.t.respond(h.now, id, ok.clone()).unwrap();
    assert_eq!(h.t.state(id), Some(State::Accepted));
    assert_eq!(h.tx()[0].bytes, *ok.raw());
    assert_eq!(h.t.deadline(id, Timer::L), Some(h.at(ms(32_000))));
    let sent = h.run_until(ms(8000));
    // §13.3.1.4: T1 doubling up to T2.
    assert_eq!(secs(&sent), [500, 1500, 3500, 7500]);
    assert!(sent.iter().all(|(_, t)| t.bytes == *ok.raw()));
    // A retransmitted INVITE is absorbed in Accepted (RFC 6026) and not re-answered.
    h.recv(udp(40_000), &inv);
    assert!(h.tx().is_empty() && h.ev().is_empty());
    // The ACK (its own branch) stops the retransmissions and goes to the TU.
    h.go(ms(9000));
    let ack = ack_2xx(&inv, "z9hG4bKack1");
    h.recv(udp(40_000), &ack);
    let evs = h.ev();
    assert!(
        matches!(&evs[..], [Event::Ack { id: Some(i), msg, .. }] if *i == id && msg.method_str() == "ACK"),
        "{evs:?}"
    );
    assert_eq!(h.t.deadline(id, Timer::Retransmit2xx), None);
    // The same ACK again is absorbed.
    h.recv(udp(40_000), &ack);
    assert!(h.ev().is_empty());
    assert!(h.run_until(ms(31_999)).is_empty());
    h.go(ms(32_000));
    assert!(
        matches!(h.ev()[..], [Event::Terminated { .. }]),
        "no timeout: the 2xx was ACKed"
    );
}

#[test]
fn invite_server_2xx_never_acked_times_out_with_l_also_on_tcp() {
    let mut h = H::udp();
    let inv = request("INVITE", "z9hG4bK781", Transport::Tcp, false);
    h.recv(tcp(40_000), &inv);
    let id = the_request_id(&h.ev());
    h.t.respond(h.now, id, reply(&inv, 200, Some("b1")))
        .unwrap();
    h.tx();
    let sent = h.run_until(ms(40_000));
    // The 2xx is retransmitted on reliable transports too (§13.3.1.4 is end to end).
    assert_eq!(
        secs(&sent),
        [
            500, 1500, 3500, 7500, 11_500, 15_500, 19_500, 23_500, 27_500, 31_500
        ]
    );
    assert!(sent.iter().all(|(_, t)| t.to == tcp(40_000)));
    assert!(matches!(
        h.ev()[..],
        [
            Event::Timeout {
                timer: Timer::L,
                ..
            },
            Event::Terminated { .. }
        ]
    ));
}

#[test]
fn acks_nobody_knows_go_to_the_tu() {
    let mut h = H::udp();
    let inv = request("INVITE", "z9hG4bK782", Transport::Udp, true);
    h.recv(udp(40_000), &ack_2xx(&inv, "z9hG4bKlost"));
    assert!(matches!(&h.ev()[..], [Event::Ack { id: None, .. }]));
    assert!(h.t.is_empty());
}

// ------------------------------------------------------------------------------------
// non-INVITE server (§17.2.2)

#[test]
fn non_invite_server_trying_proceeding_completed_timer_j() {
    let mut h = H::udp();
    let m = request("MESSAGE", "z9hG4bK900", Transport::Udp, true);
    h.recv(udp(40_000), &m);
    let id = the_request_id(&h.ev());
    assert_eq!(
        (h.t.kind(id), h.t.state(id)),
        (Some(Kind::NonInviteServer), Some(State::Trying))
    );
    // Retransmission in Trying: nothing to send, not passed up.
    h.recv(udp(40_000), &m);
    assert!(h.tx().is_empty() && h.ev().is_empty());
    assert_eq!(h.t.poll_timeout(), None, "no timer in Trying");
    let trying = reply(&m, 100, None);
    h.t.respond(h.now, id, trying.clone()).unwrap();
    assert_eq!(h.t.state(id), Some(State::Proceeding));
    h.tx();
    h.recv(udp(40_000), &m);
    assert_eq!(h.tx()[0].bytes, *trying.raw());
    h.go(ms(2000));
    let ok = reply(&m, 200, Some("m0-x"));
    h.t.respond(h.now, id, ok.clone()).unwrap();
    assert_eq!(h.t.state(id), Some(State::Completed));
    h.tx();
    assert_eq!(h.t.deadline(id, Timer::J), Some(h.at(ms(34_000))));
    h.recv(udp(40_000), &m);
    assert_eq!(h.tx()[0].bytes, *ok.raw());
    assert_eq!(h.t.respond(h.now, id, ok), Err(TxError::WrongState));
    h.go(ms(33_999));
    assert!(h.ev().is_empty());
    h.go(ms(34_000));
    assert!(matches!(h.ev()[..], [Event::Terminated { .. }]));
    // After J the same request is a new transaction again.
    h.recv(udp(40_000), &m);
    assert!(matches!(h.ev()[..], [Event::Request { .. }]));
}

#[test]
fn non_invite_server_reliable_j_zero() {
    let mut h = H::udp();
    let m = request("OPTIONS", "z9hG4bK901", Transport::Tcp, false);
    h.recv(tcp(40_000), &m);
    let id = the_request_id(&h.ev());
    h.t.respond(h.now, id, reply(&m, 200, Some("t"))).unwrap();
    assert_eq!(h.tx()[0].to, tcp(40_000));
    assert!(matches!(h.ev()[..], [Event::Terminated { .. }]));
    assert!(h.t.is_empty());
}

#[test]
fn legacy_branch_still_matches_retransmissions() {
    let mut h = H::udp();
    let m = request("MESSAGE", "1234", Transport::Udp, false);
    h.recv(udp(40_000), &m);
    let id = the_request_id(&h.ev());
    h.t.respond(h.now, id, reply(&m, 200, Some("t"))).unwrap();
    h.tx();
    h.recv(udp(40_000), &m);
    assert_eq!(codes(&h.tx()), ["200"]);
    assert!(h.ev().is_empty());
}

// ------------------------------------------------------------------------------------
// CANCEL (§9)

#[test]
fn cancel_server_side_200_and_487() {
    let mut h = H::udp();
    let inv = request("INVITE", "z9hG4bK555", Transport::Udp, true);
    h.recv(udp(40_000), &inv);
    let id = the_request_id(&h.ev());
    h.t.respond(h.now, id, reply(&inv, 180, Some("m0-t1")))
        .unwrap();
    h.tx();
    let cancel = Message::parse_own(cancel_for(&inv)).unwrap();
    h.recv(udp(40_000), &cancel);
    let tx = h.tx();
    assert_eq!(codes(&tx), ["200", "487"]);
    for t in &tx {
        let m = Message::parse_own(t.bytes.clone()).unwrap();
        assert_eq!(m.to_tag(), Some("m0-t1"), "the same To tag in both (§9.2)");
        assert_eq!(t.to, udp(40_000));
    }
    let c200 = Message::parse_own(tx[0].bytes.clone()).unwrap();
    assert_eq!(c200.cseq().unwrap().method_str, "CANCEL");
    let evs = h.ev();
    assert!(
        matches!(&evs[..], [Event::Cancelled { invite, cancel }] if *invite == id && cancel.method_str() == "CANCEL"),
        "{evs:?}"
    );
    assert_eq!(h.t.state(id), Some(State::Completed));
    // The CANCEL retransmitted: its 200 again, nothing new.
    h.recv(udp(40_000), &cancel);
    assert_eq!(codes(&h.tx()), ["200"]);
    assert!(h.ev().is_empty());
    // The ACK for the 487 confirms the INVITE transaction.
    let r487 = Message::parse_own(tx[1].bytes.clone()).unwrap();
    h.recv(
        udp(40_000),
        &Message::parse_own(ack_for(&inv, &r487)).unwrap(),
    );
    assert_eq!(h.t.state(id), Some(State::Confirmed));
}

#[test]
fn cancel_server_side_without_match_or_after_final() {
    let mut h = H::udp();
    let inv = request("INVITE", "z9hG4bK556", Transport::Udp, true);
    h.recv(udp(40_000), &Message::parse_own(cancel_for(&inv)).unwrap());
    assert_eq!(codes(&h.tx()), ["481"]);
    // The CANCEL's own transaction stays for timer J; nothing for the TU.
    assert!(h.ev().is_empty());
    // After the final response: 200 to the CANCEL, no 487, no event.
    let mut h = H::udp();
    h.recv(udp(40_000), &inv);
    let id = the_request_id(&h.ev());
    h.t.respond(h.now, id, reply(&inv, 486, Some("t"))).unwrap();
    h.tx();
    h.recv(udp(40_000), &Message::parse_own(cancel_for(&inv)).unwrap());
    let tx = h.tx();
    assert_eq!(codes(&tx), ["200"]);
    // The To tag the TU used in its final response.
    let tag = Message::parse_own(tx[0].bytes.clone())
        .unwrap()
        .to_tag()
        .unwrap()
        .to_string();
    assert_eq!(tag, "t");
    assert!(h.ev().is_empty());
}

#[test]
fn cancel_server_side_derives_a_tag_when_none_was_sent() {
    let mut h = H::udp();
    let inv = request("INVITE", "z9hG4bK557", Transport::Udp, true);
    h.recv(udp(40_000), &inv);
    h.ev();
    h.recv(udp(40_000), &Message::parse_own(cancel_for(&inv)).unwrap());
    let tx = h.tx();
    assert_eq!(codes(&tx), ["200", "487"]);
    let tags: Vec<String> = tx
        .iter()
        .map(|t| {
            Message::parse_own(t.bytes.clone())
                .unwrap()
                .to_tag()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(tags[0], tags[1]);
    assert!(
        tags[0].starts_with("m0-") && tags[0].len() == 3 + 16,
        "{}",
        tags[0]
    );
    assert_eq!(msrpd::sip::ids::tag_core(&tags[0]), Some(0));
}

#[test]
fn cancel_client_side() {
    let mut h = H::udp();
    let inv = own("INVITE", "z9hG4bK-0-c1", Transport::Udp);
    let id = h.t.send_request(h.now, udp(5062), inv.clone()).unwrap();
    h.tx();
    // §9.1: not before a provisional response.
    assert_eq!(h.t.cancel(h.now, id), Err(TxError::NoProvisional));
    h.recv(udp(5062), &reply(&inv, 180, Some("b1")));
    h.ev();
    let cid = h.t.cancel(h.now, id).unwrap();
    assert_eq!(h.t.kind(cid), Some(Kind::NonInviteClient));
    let tx = h.tx();
    assert_eq!(tx.len(), 1);
    assert_eq!(tx[0].bytes, cancel_for(&inv));
    assert_eq!(tx[0].to, udp(5062));
    // Its own timer E; and the INVITE gives up 64*T1 after the CANCEL (§9.1).
    assert_eq!(h.t.deadline(cid, Timer::E), Some(h.at(ms(500))));
    assert_eq!(h.t.deadline(id, Timer::B), Some(h.at(ms(32_000))));
    let cancel = Message::parse_own(tx[0].bytes.clone()).unwrap();
    h.recv(udp(5062), &reply(&cancel, 200, Some("b1")));
    assert!(
        matches!(&h.ev()[..], [Event::Response { id: i, msg }] if *i == cid && msg.status() == Some(200))
    );
    h.recv(udp(5062), &reply(&inv, 487, Some("b1")));
    assert_eq!(codes(&h.tx()), ["ACK"]);
    assert!(
        matches!(&h.ev()[..], [Event::Response { id: i, msg }] if *i == id && msg.status() == Some(487))
    );
    assert_eq!(h.t.cancel(h.now, id), Err(TxError::WrongState));
}

// ------------------------------------------------------------------------------------
// The table

#[test]
fn cancelled_invite_without_final_times_out() {
    let mut h = H::udp();
    let inv = own("INVITE", "z9hG4bK-0-c2", Transport::Tcp);
    let id = h.t.send_request(h.now, tcp(5062), inv.clone()).unwrap();
    h.recv(tcp(5062), &reply(&inv, 183, Some("b1")));
    h.go(ms(1000));
    let cid = h.t.cancel(h.now, id).unwrap();
    h.recv(
        tcp(5062),
        &Message::parse_own(cancel_for(&inv))
            .map(|c| reply(&c, 200, Some("b1")))
            .unwrap(),
    );
    h.tx();
    h.ev();
    assert_eq!(h.t.state(cid), None, "CANCEL done (K = 0 on TCP)");
    // Another provisional response does not lift the limit.
    h.go(ms(2000));
    h.recv(tcp(5062), &reply(&inv, 180, Some("b1")));
    assert_eq!(h.t.deadline(id, Timer::B), Some(h.at(ms(33_000))));
    h.go(ms(32_999));
    assert_eq!(h.t.state(id), Some(State::Proceeding));
    h.ev();
    h.go(ms(33_000));
    assert!(
        matches!(h.ev()[..], [Event::Timeout { id: a, timer: Timer::B }, Event::Terminated { .. }] if a == id)
    );
    assert!(h.t.is_empty());
}

#[test]
fn cancel_on_a_full_table_still_limits_the_invite() {
    let mut h = H::new(Config {
        max_transactions: 1,
        ..Config::default()
    });
    let inv = own("INVITE", "z9hG4bK-0-c3", Transport::Udp);
    let id = h.t.send_request(h.now, udp(5062), inv.clone()).unwrap();
    h.recv(udp(5062), &reply(&inv, 180, Some("b1")));
    h.go(ms(5000));
    assert_eq!(h.t.cancel(h.now, id), Err(TxError::Full));
    assert_eq!(h.t.deadline(id, Timer::B), Some(h.at(ms(37_000))));
}

#[test]
fn tu_errors() {
    let mut h = H::udp();
    let inv = own("INVITE", "z9hG4bK-0-d1", Transport::Udp);
    h.t.send_request(h.now, udp(5062), inv.clone()).unwrap();
    assert_eq!(
        h.t.send_request(h.now, udp(5062), inv.clone()),
        Err(TxError::Duplicate)
    );
    assert_eq!(
        h.t.send_request(h.now, udp(5062), own("ACK", "z9hG4bK-0-d2", Transport::Udp)),
        Err(TxError::IsAck)
    );
    assert_eq!(
        h.t.send_request(h.now, udp(5062), own("BYE", "nocookie", Transport::Udp)),
        Err(TxError::NoBranch)
    );
    assert_eq!(
        h.t.send_request(h.now, udp(5062), reply(&inv, 200, None)),
        Err(TxError::NotARequest)
    );
    assert_eq!(
        h.t.respond(h.now, TxId(999), reply(&inv, 200, None)),
        Err(TxError::Unknown)
    );
    assert_eq!(
        h.t.respond(h.now, TxId(1), inv.clone()),
        Err(TxError::NotAResponse)
    );
    assert_eq!(
        h.t.respond(h.now, TxId(1), reply(&inv, 200, None)),
        Err(TxError::WrongState)
    );
    assert_eq!(h.t.cancel(h.now, TxId(999)), Err(TxError::Unknown));
}

#[test]
fn transport_error_ends_the_transaction() {
    let mut h = H::udp();
    let id =
        h.t.send_request(
            h.now,
            tcp(5062),
            own("OPTIONS", "z9hG4bK-0-e1", Transport::Tcp),
        )
        .unwrap();
    h.t.handle_transport_error(h.now, id);
    assert!(
        matches!(h.ev()[..], [Event::TransportError { id: a }, Event::Terminated { id: b }] if a == id && b == id)
    );
    assert!(h.t.is_empty() && h.t.timer_count() == 0);
}

#[test]
fn full_table_answers_503_statelessly() {
    let mut h = H::new(Config {
        max_transactions: 2,
        ..Config::default()
    });
    for b in ["z9hG4bK1", "z9hG4bK2", "z9hG4bK3"] {
        h.recv(udp(40_000), &request("MESSAGE", b, Transport::Udp, true));
    }
    assert_eq!(h.t.len(), 2);
    let tx = h.tx();
    assert_eq!(codes(&tx), ["503"]);
    assert_eq!(tx[0].txn, None);
    assert_eq!(h.t.stats().overload, 1);
    assert_eq!(
        h.t.send_request(
            h.now,
            udp(5062),
            own("OPTIONS", "z9hG4bK-0-f", Transport::Udp)
        ),
        Err(TxError::Full)
    );
}

#[test]
fn held_bytes_are_limited_and_given_back() {
    let one = msrpd::sip::txn::held_cost(&request("MESSAGE", "z9hG4bKb1", Transport::Udp, true));
    let mut h = H::new(Config {
        max_bytes: 2 * one + one / 2,
        ..Config::default()
    });
    for b in ["z9hG4bKb1", "z9hG4bKb2", "z9hG4bKb3"] {
        h.recv(udp(40_000), &request("MESSAGE", b, Transport::Udp, true));
    }
    assert_eq!(h.t.len(), 2, "the third is over the byte budget");
    assert_eq!(h.t.held_bytes(), 2 * one);
    assert_eq!(codes(&h.tx()), ["503"]);
    assert_eq!(h.t.stats().overload, 1);
    assert_eq!(
        h.t.send_request(
            h.now,
            udp(5062),
            own("OPTIONS", "z9hG4bK-0-g", Transport::Udp)
        ),
        Err(TxError::Full)
    );
    // Answered and past timer J: the bytes come back.
    let ids: Vec<TxId> = h
        .ev()
        .iter()
        .filter_map(|e| match e {
            Event::Request { id, .. } => Some(*id),
            _ => None,
        })
        .collect();
    for id in ids {
        let req = h.t.request(id).unwrap().clone();
        h.t.respond(h.now, id, reply(&req, 404, Some("t"))).unwrap();
    }
    h.go(ms(64 * 500 + 1));
    assert!(h.t.is_empty());
    assert_eq!(h.t.held_bytes(), 0);
    h.recv(
        udp(40_000),
        &request("MESSAGE", "z9hG4bKb4", Transport::Udp, true),
    );
    assert_eq!(h.t.len(), 1);
}

#[test]
fn datagrams_and_junk() {
    let mut h = H::udp();
    h.t.handle_datagram(h.now, udp(1), Bytes::from_static(b"hello"));
    h.t.handle_datagram(
        h.now,
        udp(1),
        Bytes::from_static(b"OPTIONS sip:a@b SIP/2.0\r\nTo: x\r\n\r\n"),
    );
    assert_eq!(h.t.stats().dropped, 2);
    assert!(h.ev().is_empty() && h.t.is_empty());
    let m = request("OPTIONS", "z9hG4bK42", Transport::Udp, true);
    h.t.handle_datagram(h.now, udp(40_000), m.raw().clone());
    match &h.ev()[..] {
        [Event::Request { msg, from, .. }] => {
            assert_eq!(msg.raw(), m.raw());
            assert_eq!(msg.source(), Some(udp(40_000).addr));
            assert_eq!(*from, udp(40_000));
        }
        other => panic!("{other:?}"),
    }
    // A response for nobody.
    h.t.handle_message(h.now, udp(1), reply(&m, 200, None));
    assert!(matches!(h.ev()[..], [Event::StrayResponse { .. }]));
}

#[test]
fn configured_timers() {
    let mut h = H::new(Config {
        t1: ms(100),
        t2: ms(300),
        t4: ms(1000),
        ..Config::default()
    });
    let id =
        h.t.send_request(
            h.now,
            udp(5062),
            own("OPTIONS", "z9hG4bK-0-g", Transport::Udp),
        )
        .unwrap();
    h.tx();
    let sent = h.run_until(ms(2000));
    assert_eq!(secs(&sent), [100, 300, 600, 900, 1200, 1500, 1800]);
    assert_eq!(h.t.state(id), Some(State::Trying));
    h.go(ms(6400));
    assert!(matches!(
        h.ev()[..],
        [
            Event::Timeout {
                timer: Timer::F,
                ..
            },
            Event::Terminated { .. }
        ]
    ));
}

// ------------------------------------------------------------------------------------
// Merged requests (§8.2.2.2)

#[test]
fn merged_request_is_told_apart_until_the_first_transaction_ends() {
    let mut h = H::udp();
    let first = request("MESSAGE", "z9hG4bKpathA", Transport::Udp, true);
    h.recv(udp(5062), &first);
    let a = the_request_id(&h.ev());
    assert!(!h.t.is_merged(a));
    // The same request by another path: another branch, same Call-ID, From tag, CSeq.
    let other = request("MESSAGE", "z9hG4bKpathB", Transport::Udp, true);
    h.recv(udp(5062), &other);
    let b = the_request_id(&h.ev());
    assert_ne!(a, b);
    assert!(h.t.is_merged(b), "a merged request");
    assert!(!h.t.is_merged(a), "the first one is not");
    // A retransmission of the first is absorbed, not merged.
    h.recv(udp(5062), &first);
    assert!(h.ev().is_empty());
    // Another CSeq method (a CANCEL-like case) is not the same request.
    let bye = request("BYE", "z9hG4bKpathC", Transport::Udp, true);
    h.recv(udp(5062), &bye);
    let c = the_request_id(&h.ev());
    assert!(!h.t.is_merged(c));
    // Once the first transaction is over, the same key is a fresh request.
    h.t.respond(h.now, a, reply(&first, 404, Some("x")))
        .unwrap();
    h.t.respond(h.now, b, reply(&other, 482, Some("y")))
        .unwrap();
    h.go(ms(64 * 500 + 1)); // timer J
    let _ = h.ev();
    assert_eq!(h.t.len(), 1, "only the BYE is left");
    let again = request("MESSAGE", "z9hG4bKpathD", Transport::Udp, true);
    h.recv(udp(5062), &again);
    let d = the_request_id(&h.ev());
    assert!(!h.t.is_merged(d));
    // In a dialog (To tag) nothing is merged.
    let mut w = msrpd::sip::Writer::request("MESSAGE", "sip:bob@192.0.2.1");
    w.header("Via", "SIP/2.0/UDP 192.0.2.7:5062;branch=z9hG4bKpathE");
    w.header("From", "<sip:alice@example.com>;tag=af1");
    w.header("To", "<sip:bob@example.com>;tag=bt");
    w.header("Call-ID", "call-1@example.com");
    w.header("CSeq", "7 MESSAGE");
    let m = w.into_message().unwrap();
    h.recv(udp(5062), &m);
    let e = the_request_id(&h.ev());
    assert!(!h.t.is_merged(e));
}

#[test]
fn completed_transactions_keep_their_response_not_their_request_and_make_room_after_t4() {
    let mut h = H::new(Config {
        max_transactions: 2,
        ..Config::default()
    });
    let reqs: Vec<Message> = ["z9hG4bKc1", "z9hG4bKc2", "z9hG4bKc3", "z9hG4bKc4"]
        .iter()
        .map(|b| request("MESSAGE", b, Transport::Udp, true))
        .collect();
    let mut ids = Vec::new();
    for r in &reqs[..2] {
        h.recv(udp(40_000), r);
        let id = the_request_id(&h.ev());
        let before: usize = ids.iter().map(|(_, l)| l + completed_cost(None)).sum();
        assert_eq!(h.t.held_bytes(), before + held_cost(r));
        let ok = reply(r, 200, Some("t"));
        let len = ok.raw().len();
        h.t.respond(h.now, id, ok).unwrap();
        // Completed: the request is dropped, the charge is the response and the keys.
        assert!(h.t.request(id).is_none());
        assert_eq!(h.t.state(id), Some(State::Completed));
        ids.push((id, len));
    }
    let charged: usize = ids.iter().map(|(_, l)| l + completed_cost(None)).sum();
    assert_eq!(h.t.held_bytes(), charged);
    assert_eq!(codes(&h.tx()), ["200", "200"]);
    // A retransmission is still absorbed and answered from the kept response.
    h.recv(udp(40_000), &reqs[0]);
    assert_eq!(codes(&h.tx()), ["200"]);
    assert!(h.ev().is_empty());
    // Full, and nothing has lingered T4 (5 s) yet: 503.
    h.go(ms(4_999));
    h.recv(udp(40_000), &reqs[2]);
    assert_eq!(codes(&h.tx()), ["503"]);
    assert_eq!((h.t.stats().overload, h.t.stats().evicted), (1, 0));
    // At T4 the oldest Completed one makes room; the other stays until timer J.
    h.go(ms(5_000));
    h.recv(udp(40_000), &reqs[3]);
    let evs = h.ev();
    let id4 = match evs[..] {
        [Event::Terminated { id }, Event::Request { id: id4, .. }] if id == ids[0].0 => id4,
        _ => panic!("{evs:?}"),
    };
    h.t.respond(h.now, id4, reply(&reqs[3], 200, Some("t")))
        .unwrap();
    assert_eq!(h.t.stats().evicted, 1);
    assert_eq!(h.t.state(ids[1].0), Some(State::Completed));
    // Timer J (64*T1) ends the rest; every byte comes back.
    assert_eq!(h.t.len(), 2);
    h.go(ms(5_000 + 64 * 500 + 1));
    assert!(h.t.is_empty(), "{} left", h.t.len());
    assert_eq!(h.t.held_bytes(), 0);
}

#[test]
fn an_invite_server_transaction_drops_its_request_with_its_final_response() {
    let mut h = H::udp();
    let inv = request("INVITE", "z9hG4bKi9", Transport::Udp, true);
    h.recv(udp(40_000), &inv);
    let id = the_request_id(&h.ev());
    assert_eq!(h.t.held_bytes(), held_cost(&inv));
    let busy = reply(&inv, 486, Some("t"));
    let len = busy.raw().len();
    h.t.respond(h.now, id, busy).unwrap();
    assert!(h.t.request(id).is_none());
    assert_eq!(h.t.held_bytes(), len + completed_cost(None));
    // Timer G still retransmits the kept 486 until the ACK.
    let sent = h.run_until(ms(600));
    assert_eq!(
        codes(&sent.into_iter().map(|(_, t)| t).collect::<Vec<_>>()),
        ["486", "486"]
    );
}
