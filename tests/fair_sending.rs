//! Fair sending on a shared connection, on real sockets (RFC 4975 §7.1.1, RFC 4976
//! §6.4.1): a 256 MiB single-chunk SEND (`Byte-Range: 1-*/N`) streams to a receiver that
//! reads slowly. Meanwhile the receiver's own SEND gets its 200 and a third client's
//! 1 KiB message reaches it, long before the big message ends (asserted by order: how
//! much of the big body had arrived, never by time), and the receiver reassembles the big
//! message byte-exact from the pieces the relay cut it into.

mod common;

use std::io::Read;
use std::thread;
use std::time::Duration;

use bytes::BytesMut;
use common::{Relay, peer_uri};
use msrpd::codec::{Event, Flag, Head, Scanner};
use msrpd::server::Driver;

const BIG: usize = 256 << 20;
const PIECE: usize = 1 << 20;

fn pattern() -> Vec<u8> {
    (0..PIECE + 251).map(|i| (i % 251) as u8).collect()
}

/// A frame as the slow reader sees it: its head and how its body checked out.
struct Seen {
    head: Vec<u8>,
    body: Vec<u8>,
    flag: Flag,
}

#[test]
fn a_huge_chunk_to_a_slow_receiver_lets_responses_and_other_messages_through() {
    let relay = Relay::start(2, Driver::Auto, |_| {});
    let mut b = relay.connect(&peer_uri("bob", 2222));
    let rb = b.auth(&relay.uri());
    let mut a = relay.connect(&peer_uri("alice", 1111));
    let ra = a.auth(&relay.uri());
    let mut c = relay.connect(&peer_uri("carol", 3333));
    let to_b = format!("{rb} {}", b.me);
    let to_a = format!("{ra} {}", a.me);

    // A streams one 256 MiB chunk as fast as the relay takes it.
    let big_tid = a.tid();
    let head = format!(
        "MSRP {big_tid} SEND\r\nTo-Path: {to_b}\r\nFrom-Path: {}\r\nMessage-ID: huge0001\r\n\
         Byte-Range: 1-*/{BIG}\r\nContent-Type: application/octet-stream\r\n\r\n",
        a.me
    );
    let writer = thread::spawn(move || {
        let pat = pattern();
        a.send_raw(head.as_bytes());
        let mut off = 0;
        while off < BIG {
            a.send_raw(&pat[off % 251..][..PIECE]);
            off += PIECE;
        }
        a.send_raw(format!("\r\n-------{big_tid}$\r\n").as_bytes());
        a
    });

    let pat = pattern();
    let mut sc = Scanner::default();
    let mut buf = BytesMut::new();
    let mut tmp = vec![0u8; 64 * 1024];
    let mut current: Option<Seen> = None;
    // Body bytes of the big message received so far, and where its next piece starts.
    let mut big_got = 0usize;
    let mut own_tid = None;
    let mut own_ok_at = None;
    let mut carol_at = None;
    let mut big_pieces = 0;
    let mut big_done = false;
    while !big_done {
        let slow = own_ok_at.is_none() || carol_at.is_none();
        if slow {
            // A slow receiver: 64 KiB a millisecond at most.
            thread::sleep(Duration::from_millis(1));
        }
        let n = b.stream.read(&mut tmp).expect("B reads");
        assert!(n > 0, "relay closed B's connection");
        buf.extend_from_slice(&tmp[..n]);
        while let Some(ev) = sc.next(&mut buf).expect("relay output scans") {
            match ev {
                Event::Head(h) => {
                    current = Some(Seen {
                        head: h.as_bytes().to_vec(),
                        body: Vec::new(),
                        flag: Flag::Complete,
                    })
                }
                Event::Body(piece) => {
                    let f = current.as_mut().expect("body after head");
                    let h = Head::parse(&f.head).expect("head parses");
                    if h.message_id() == Some("huge0001") {
                        // Checked in place: the big body is never held whole.
                        let at = big_got % 251;
                        assert!(
                            piece[..] == pat[at..at + piece.len()],
                            "big body differs near {big_got}"
                        );
                        big_got += piece.len();
                    } else {
                        f.body.extend_from_slice(&piece);
                    }
                }
                Event::End(flag) => {
                    let mut f = current.take().expect("end after head");
                    f.flag = flag;
                    let h = Head::parse(&f.head).expect("head parses");
                    let tid = h.tid().to_string();
                    let from = h.from_path().first().as_str().to_string();
                    match (h.method(), h.message_id()) {
                        (None, _) if Some(&tid) == own_tid.as_ref() => {
                            assert_eq!(h.status_code(), Some(200));
                            own_ok_at = Some(big_got);
                        }
                        (None, _) => panic!("unexpected response {tid}"),
                        (Some(_), Some("huge0001")) => {
                            big_pieces += 1;
                            let range = h.byte_range().expect("each piece has a Byte-Range");
                            assert_eq!(range.end, None, "interruptible: range-end *");
                            assert_eq!(range.total, Some(BIG as u64));
                            big_done = f.flag == Flag::Complete;
                            respond(&mut b, &tid, &from);
                        }
                        (Some(_), Some("carol001")) => {
                            assert_eq!(f.body, vec![b'c'; 1024]);
                            carol_at = Some(big_got);
                            respond(&mut b, &tid, &from);
                        }
                        (_, other) => panic!("unexpected frame {other:?}"),
                    }
                }
            }
            // Once a megabyte of the big message is in, B sends its own message and C
            // sends one to B.
            if own_tid.is_none() && big_got >= PIECE {
                own_tid = Some(b.send(
                    &to_a,
                    &[("Message-ID", "bob00001")],
                    Some(b"while the file streams"),
                    Flag::Complete,
                ));
                c.send(
                    &to_b,
                    &[("Message-ID", "carol001")],
                    Some(&[b'c'; 1024]),
                    Flag::Complete,
                );
            }
        }
    }
    let (own_ok_at, carol_at) = (own_ok_at.unwrap(), carol_at.unwrap());
    eprintln!(
        "B's 200 after {own_ok_at} bytes, C's message after {carol_at} bytes of the big one; {big_pieces} pieces"
    );
    // Ahead of them only what the kernel's socket buffers and one write batch held:
    // a few MiB. B's own 200 used to wait much longer when B's queue, full of the big
    // message, also held back the reading of B's requests.
    assert!(
        own_ok_at < 24 << 20 && carol_at < 24 << 20,
        "B's 200 after {own_ok_at} and C's message after {carol_at} bytes of {BIG}"
    );
    assert_eq!(big_got, BIG, "the big message reassembled whole");
    assert!(big_pieces >= 2, "the big chunk was interrupted");
    let mut a = writer.join().expect("writer thread");
    // A: the hop's 200 for its chunk, and B's message (answered).
    let mut ok = false;
    let mut from_b = false;
    while !(ok && from_b) {
        let f = a.read_frame();
        if f.is_response() {
            assert_eq!(f.kind(), "200");
            ok = true;
        } else {
            assert_eq!(f.header("Message-ID"), Some("bob00001"));
            a.respond(&f, 200);
            from_b = true;
        }
    }
    assert_eq!(c.read_frame().kind(), "200");
    relay.settle("every piece answered", |c| {
        c.transactions == 0 && c.chunks_interrupted >= 1 && c.reports_sent == 0
    });
}

fn respond(b: &mut common::Client, tid: &str, to: &str) {
    let m = format!(
        "MSRP {tid} 200 OK\r\nTo-Path: {to}\r\nFrom-Path: {}\r\n-------{tid}$\r\n",
        b.me
    );
    b.send_raw(m.as_bytes());
}
