//! A hostile SIP corpus against the `msrpd` binary on 127.0.0.1, over UDP and TCP. Every
//! case is generated here (a table, no binary files) and gets exactly what RFC 3261 says
//! a UAS answers (§8.2: 400, 405, 416, 420, 482, 483, 501, 505, 513; §8.2.2.2 merged
//! requests and loops 482; §16.3 Max-Forwards), or, when there is nothing that can be
//! answered (no message can be framed, no Via to send a response to), a clean close of
//! the TCP connection and, over UDP, no datagram back and the input counted in
//! `msrpd_sip_malformed_total`. Input that is not SIP at all goes to the nosip handler.
//! An MSRP session on the same port keeps chatting throughout; afterwards the server
//! still answers a well-formed OPTIONS with 200, holds only the MSRP connections, and
//! its memory has not grown by more than a few MiB. Every wait is bounded.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use common::http;
use common::sip::*;
use common::*;

/// What a case must get.
#[derive(Debug, Clone, PartialEq)]
enum Want {
    /// These responses, in order (one per message the case sends that is answered).
    Status(Vec<u16>),
    /// These responses, then the connection is closed (TCP); nothing more comes back.
    ThenClose(Vec<u16>),
    /// Nothing can be answered: TCP closed with nothing written; UDP: no datagram back,
    /// counted as malformed SIP.
    Close,
    /// Not answered by design (a stray response, an ACK): nothing back, a TCP
    /// connection stays open and answers the next request.
    Silent,
    /// Not SIP: the nosip handler's (TCP closed, UDP nothing back).
    Nosip,
}
use Want::*;

fn st(code: u16) -> Want {
    Status(vec![code])
}

/// What a case is built from.
struct Ctx {
    /// Our address (the Via's sent-by).
    me: SocketAddr,
    /// The server's.
    server: SocketAddr,
    /// `UDP` or `TCP`.
    tp: &'static str,
    /// Unique per case and transport: branch, tag, Call-ID.
    n: u32,
}

impl Ctx {
    /// A well-formed request from us.
    fn req(&self, method: &str) -> String {
        request(method, self.tp, self.me, self.n, "")
    }
    /// `method`'s request with each `(from, to)` replacement applied once.
    fn edit(&self, method: &str, edits: &[(&str, &str)]) -> Vec<u8> {
        let mut s = self.req(method);
        for (a, b) in edits {
            assert!(s.contains(a), "no {a:?} in {s}");
            s = s.replacen(a, b, 1);
        }
        s.into_bytes()
    }
    /// An extra header line (or lines) before Content-Length.
    fn with(&self, method: &str, lines: &str) -> Vec<u8> {
        self.edit(
            method,
            &[(
                "Content-Length: 0\r\n",
                &format!("{lines}Content-Length: 0\r\n"),
            )],
        )
    }
    /// A request with `body` and its Content-Length.
    fn body(&self, method: &str, body: &[u8], cl: &str) -> Vec<u8> {
        let mut v = self.edit(
            method,
            &[(
                "Content-Length: 0\r\n",
                &format!("Content-Type: text/plain\r\nContent-Length: {cl}\r\n"),
            )],
        );
        v.extend_from_slice(body);
        v
    }
}

/// An `X-Pad` header line of about `n` bytes.
fn pad(n: usize) -> String {
    format!("X-Pad: {}\r\n", "p".repeat(n))
}

/// Replaces the first `from` in `v` by `to`.
fn bytes_edit(mut v: Vec<u8>, from: &[u8], to: &[u8]) -> Vec<u8> {
    let at = v
        .windows(from.len())
        .position(|w| w == from)
        .expect("edit target");
    v.splice(at..at + from.len(), to.iter().copied());
    v
}

/// How a case's bytes go out on TCP.
#[derive(Clone, Copy, PartialEq)]
enum Write {
    /// All messages in one write (pipelined when several).
    Whole,
    /// In pieces of this many bytes, 5 ms apart.
    Torn(usize),
    /// Whole, then our write side is shut (a peer that stops half way).
    ThenShutdown,
}

type Make = Box<dyn Fn(&Ctx) -> Vec<Vec<u8>>>;

struct Case {
    name: &'static str,
    make: Make,
    /// `None`: not run over UDP (stream-only behaviour).
    udp: Option<Want>,
    /// `None`: not run over TCP (datagram-only behaviour).
    tcp: Option<Want>,
    write: Write,
}

fn case(
    name: &'static str,
    udp: Option<Want>,
    tcp: Option<Want>,
    make: impl Fn(&Ctx) -> Vec<u8> + 'static,
) -> Case {
    Case {
        name,
        make: Box::new(move |c| vec![make(c)]),
        udp,
        tcp,
        write: Write::Whole,
    }
}

/// The same answer on both transports.
fn both(name: &'static str, want: Want, make: impl Fn(&Ctx) -> Vec<u8> + 'static) -> Case {
    case(name, Some(want.clone()), Some(want), make)
}

fn many(
    name: &'static str,
    udp: Option<Want>,
    tcp: Option<Want>,
    write: Write,
    make: impl Fn(&Ctx) -> Vec<Vec<u8>> + 'static,
) -> Case {
    Case {
        name,
        make: Box::new(make),
        udp,
        tcp,
        write,
    }
}

fn corpus() -> Vec<Case> {
    vec![
        // ---- baseline
        both("well-formed OPTIONS", st(200), |c| {
            c.req("OPTIONS").into_bytes()
        }),
        both(
            "MESSAGE nobody owns: the configured rejection",
            st(404),
            |c| c.body("MESSAGE", b"hello", "5"),
        ),
        both("INVITE nobody owns", st(404), |c| {
            c.req("INVITE").into_bytes()
        }),
        // ---- start line (§7.1, §8.2.1, §8.2.2.1)
        both("unknown method: 501", st(501), |c| {
            c.req("FOO").into_bytes()
        }),
        both("known method we do not allow: 405", st(405), |c| {
            c.req("SUBSCRIBE").into_bytes()
        }),
        both("REGISTER (not a registrar): 405", st(405), |c| {
            c.req("REGISTER").into_bytes()
        }),
        both("lower-case method is another method: 501", st(501), |c| {
            c.req("options").into_bytes()
        }),
        both("SIP/3.0: 505", st(505), |c| {
            c.edit("OPTIONS", &[("SIP/2.0\r\n", "SIP/3.0\r\n")])
        }),
        both("SIP/2.00: 505", st(505), |c| {
            c.edit("OPTIONS", &[("SIP/2.0\r\n", "SIP/2.00\r\n")])
        }),
        both("no version: not SIP", Nosip, |c| {
            c.edit("OPTIONS", &[(" SIP/2.0\r\n", "\r\n")])
        }),
        both("HTTP version: not SIP", Nosip, |c| {
            c.edit("OPTIONS", &[("SIP/2.0\r\n", "HTTP/1.1\r\n")])
        }),
        both("empty Request-URI", Close, |c| {
            c.edit("OPTIONS", &[("sip:msrpd@127.0.0.1 ", " ")])
        }),
        both("Request-URI with a space", Close, |c| {
            c.edit(
                "OPTIONS",
                &[("sip:msrpd@127.0.0.1", "sip:ms rpd@127.0.0.1")],
            )
        }),
        both("Request-URI without a scheme: no start line", Close, |c| {
            c.edit(
                "OPTIONS",
                &[("OPTIONS sip:msrpd@127.0.0.1", "OPTIONS msrpd")],
            )
        }),
        both("tel: URI: 416", st(416), |c| {
            c.edit(
                "MESSAGE",
                &[("MESSAGE sip:msrpd@127.0.0.1", "MESSAGE tel:+15551234")],
            )
        }),
        both("http: URI: 416", st(416), |c| {
            c.edit(
                "MESSAGE",
                &[("MESSAGE sip:msrpd@127.0.0.1", "MESSAGE http://x/y")],
            )
        }),
        both("im: URI: 416", st(416), |c| {
            c.edit(
                "MESSAGE",
                &[("MESSAGE sip:msrpd@127.0.0.1", "MESSAGE im:a@b")],
            )
        }),
        both("sips: URI is taken", st(200), |c| {
            c.edit("OPTIONS", &[("OPTIONS sip:", "OPTIONS sips:")])
        }),
        both(
            "Request-URI over the sniff's 1 KiB: not taken for SIP",
            Nosip,
            |c| {
                let long = format!("OPTIONS sip:{}@127.0.0.1", "u".repeat(1100));
                c.edit("OPTIONS", &[("OPTIONS sip:msrpd@127.0.0.1", &long)])
            },
        ),
        // ---- Max-Forwards (§16.3 item 3, §8.1.1.6)
        both("Max-Forwards 0 MESSAGE: 483", st(483), |c| {
            c.edit("MESSAGE", &[("Max-Forwards: 70", "Max-Forwards: 0")])
        }),
        both("Max-Forwards 0 INVITE: 483", st(483), |c| {
            c.edit("INVITE", &[("Max-Forwards: 70", "Max-Forwards: 0")])
        }),
        both("Max-Forwards 0 OPTIONS: answered", st(200), |c| {
            c.edit("OPTIONS", &[("Max-Forwards: 70", "Max-Forwards: 0")])
        }),
        both("Max-Forwards garbage: 400", st(400), |c| {
            c.edit("OPTIONS", &[("Max-Forwards: 70", "Max-Forwards: seventy")])
        }),
        both("Max-Forwards negative: 400", st(400), |c| {
            c.edit("OPTIONS", &[("Max-Forwards: 70", "Max-Forwards: -1")])
        }),
        both("Max-Forwards 2^40: 400", st(400), |c| {
            c.edit(
                "OPTIONS",
                &[("Max-Forwards: 70", "Max-Forwards: 1099511627776")],
            )
        }),
        both("two Max-Forwards: 400", st(400), |c| {
            c.edit(
                "OPTIONS",
                &[("Max-Forwards: 70", "Max-Forwards: 70\r\nMax-Forwards: 69")],
            )
        }),
        both("no Max-Forwards is allowed", st(200), |c| {
            c.edit("OPTIONS", &[("Max-Forwards: 70\r\n", "")])
        }),
        // ---- Require (§8.2.2.3)
        both("unknown Require: 420", st(420), |c| {
            c.with("OPTIONS", "Require: foo\r\n")
        }),
        both("200 unknown Require tags: 420", st(420), |c| {
            let tags: Vec<String> = (0..200).map(|i| format!("ext{i}")).collect();
            c.with("MESSAGE", &format!("Require: {}\r\n", tags.join(", ")))
        }),
        both("Require on CANCEL is not checked: 481", st(481), |c| {
            c.with("CANCEL", "Require: foo\r\n")
        }),
        both("Proxy-Require is for proxies: ignored", st(200), |c| {
            c.with("OPTIONS", "Proxy-Require: foo\r\n")
        }),
        // ---- mandatory headers (§8.1.1)
        both("no To: 400", st(400), |c| {
            c.edit("OPTIONS", &[("To: <sip:msrpd@127.0.0.1>\r\n", "")])
        }),
        both("no From: 400", st(400), |c| {
            let from = format!("From: <sip:test@127.0.0.1>;tag=t{}\r\n", c.n);
            c.edit("OPTIONS", &[(&from, "")])
        }),
        both("no Call-ID: 400", st(400), |c| {
            let id = format!("Call-ID: call{}@127.0.0.1\r\n", c.n);
            c.edit("OPTIONS", &[(&id, "")])
        }),
        both("no CSeq: 400", st(400), |c| {
            let cseq = format!("CSeq: {} OPTIONS\r\n", c.n);
            c.edit("OPTIONS", &[(&cseq, "")])
        }),
        both("no Via: nothing to answer to", Close, |c| {
            let mut s = c.req("OPTIONS");
            let start = s.find("Via:").unwrap();
            let end = start + s[start..].find("\r\n").unwrap() + 2;
            s.replace_range(start..end, "");
            s.into_bytes()
        }),
        both("Via garbage: nothing to answer to", Close, |c| {
            let mut s = c.req("OPTIONS");
            let start = s.find("Via:").unwrap();
            let end = start + s[start..].find("\r\n").unwrap();
            s.replace_range(start..end, "Via: this is not a via");
            s.into_bytes()
        }),
        both("From garbage: 400", st(400), |c| {
            let from = format!("From: <sip:test@127.0.0.1>;tag=t{}", c.n);
            c.edit("OPTIONS", &[(&from, "From: <<<")])
        }),
        both("To *: 400", st(400), |c| {
            c.edit("OPTIONS", &[("To: <sip:msrpd@127.0.0.1>", "To: *")])
        }),
        both("two Call-IDs: 400", st(400), |c| {
            c.with("OPTIONS", "Call-ID: another@127.0.0.1\r\n")
        }),
        both("Call-ID with a space: 400", st(400), |c| {
            let id = format!("Call-ID: call{}@127.0.0.1", c.n);
            c.edit("OPTIONS", &[(&id, "Call-ID: a b")])
        }),
        // ---- CSeq (§8.1.1.5)
        both("CSeq negative: 400", st(400), |c| {
            let cseq = format!("CSeq: {} OPTIONS", c.n);
            c.edit("OPTIONS", &[(&cseq, "CSeq: -1 OPTIONS")])
        }),
        both("CSeq garbage: 400", st(400), |c| {
            let cseq = format!("CSeq: {} OPTIONS", c.n);
            c.edit("OPTIONS", &[(&cseq, "CSeq: one OPTIONS")])
        }),
        both("CSeq 2^31: 400", st(400), |c| {
            let cseq = format!("CSeq: {} OPTIONS", c.n);
            c.edit("OPTIONS", &[(&cseq, "CSeq: 2147483648 OPTIONS")])
        }),
        both("CSeq 2^64: 400", st(400), |c| {
            let cseq = format!("CSeq: {} OPTIONS", c.n);
            c.edit("OPTIONS", &[(&cseq, "CSeq: 18446744073709551616 OPTIONS")])
        }),
        both("CSeq without method: 400", st(400), |c| {
            let cseq = format!("CSeq: {} OPTIONS", c.n);
            c.edit("OPTIONS", &[(&cseq, "CSeq: 1")])
        }),
        both("CSeq method not the request's: 400", st(400), |c| {
            let cseq = format!("CSeq: {} OPTIONS", c.n);
            c.edit("OPTIONS", &[(&cseq, "CSeq: 1 INVITE")])
        }),
        both("two CSeqs: 400", st(400), |c| {
            c.with("OPTIONS", "CSeq: 99 OPTIONS\r\n")
        }),
        // ---- header syntax (§7.3)
        both("compact forms", st(200), |c| {
            let s = c.req("OPTIONS");
            let s = s
                .replacen("Via:", "v:", 1)
                .replacen("To:", "t:", 1)
                .replacen("From:", "f:", 1)
                .replacen("Call-ID:", "i:", 1)
                .replacen("Content-Length:", "l:", 1);
            s.into_bytes()
        }),
        both("lower-case header names", st(200), |c| {
            let s = c.req("OPTIONS");
            s.replacen("Call-ID:", "call-id:", 1)
                .replacen("CSeq:", "cseq:", 1)
                .replacen("Max-Forwards:", "max-forwards:", 1)
                .into_bytes()
        }),
        both("white space before the colon", st(200), |c| {
            let id = format!("Call-ID: call{}@127.0.0.1", c.n);
            let spaced = format!("Call-ID  \t: call{}@127.0.0.1", c.n);
            c.edit("OPTIONS", &[(&id, &spaced)])
        }),
        both("folded header (line continuation)", st(200), |c| {
            c.with(
                "OPTIONS",
                "Subject: a subject\r\n  folded onto\r\n\tthree lines\r\n",
            )
        }),
        both("folded To", st(200), |c| {
            c.edit(
                "OPTIONS",
                &[("To: <sip:msrpd@127.0.0.1>", "To:\r\n <sip:msrpd@127.0.0.1>")],
            )
        }),
        both("continuation before any header", Close, |c| {
            c.edit(
                "OPTIONS",
                &[("SIP/2.0\r\nVia:", "SIP/2.0\r\n folded\r\nVia:")],
            )
        }),
        both("header line without a colon", Close, |c| {
            c.with("OPTIONS", "This is no header\r\n")
        }),
        both("header with an empty name", Close, |c| {
            c.with("OPTIONS", ": value\r\n")
        }),
        both("UTF-8 display name", st(200), |c| {
            c.edit("OPTIONS", &[("To: <sip:", "To: \"Zoë Ω\" <sip:")])
        }),
        // ---- bytes that may not be there (§25.1)
        both("NUL in a header value", Close, |c| {
            c.with("OPTIONS", "Subject: a\0b\r\n")
        }),
        both("NUL in the start line", Close, |c| {
            bytes_edit(c.req("OPTIONS").into_bytes(), b"msrpd@", b"ms\0rpd@")
        }),
        both("bell in a header value", Close, |c| {
            c.with("OPTIONS", "Subject: \x07\r\n")
        }),
        both("invalid UTF-8 in a header value", Close, |c| {
            bytes_edit(
                c.with("OPTIONS", "Subject: ab\r\n"),
                b"ab\r\n",
                b"\xff\xfe\r\n",
            )
        }),
        both("bare LF line ends", Close, |c| {
            c.req("OPTIONS").replace("\r\n", "\n").into_bytes()
        }),
        both("bare CR in a value", Close, |c| {
            c.with("OPTIONS", "Subject: a\rb\r\n")
        }),
        // ---- size (§18.1.1, §20.14, §21.5.14) and framing (§18.3)
        both("20 KiB head: 513", st(513), move |c| {
            c.with("OPTIONS", &pad(20_000))
        }),
        both("40 KiB head: over the parser's limit", Close, |c| {
            c.with("OPTIONS", &pad(40_000))
        }),
        both("200 headers: over the header count", Close, |c| {
            let lines: String = (0..200).map(|i| format!("X-H{i}: {i}\r\n")).collect();
            c.with("OPTIONS", &lines)
        }),
        both("1,000 Via lines", Close, |c| {
            let vias: String = (0..1000)
                .map(|i| {
                    format!(
                        "Via: SIP/2.0/UDP 192.0.2.{}:5060;branch=z9hG4bK{i}\r\n",
                        i % 250
                    )
                })
                .collect();
            c.with("OPTIONS", &vias)
        }),
        both(
            "300 Vias in one header: answered with them all",
            st(200),
            |c| {
                let vias: Vec<String> = (0..300)
                    .map(|i| format!("SIP/2.0/UDP 192.0.2.{}:5060;branch=z9hG4bK{i}", i % 250))
                    .collect();
                c.with("OPTIONS", &format!("Via: {}\r\n", vias.join(",")))
            },
        ),
        both("Content-Length negative", Close, |c| {
            c.body("MESSAGE", b"hi", "-2")
        }),
        both("Content-Length garbage", Close, |c| {
            c.body("MESSAGE", b"hi", "two")
        }),
        both("Content-Length 2^64", Close, |c| {
            c.body("MESSAGE", b"hi", "18446744073709551616")
        }),
        case(
            "Content-Length 10^9: over the body limit",
            Some(Close),
            Some(Close),
            |c| c.body("MESSAGE", b"hi", "1000000000"),
        ),
        case(
            "Content-Length larger than what came",
            Some(st(400)),
            None,
            |c| c.body("MESSAGE", b"hi", "10"),
        ),
        both(
            "two different Content-Lengths: no framing to trust",
            Close,
            |c| {
                c.edit(
                    "MESSAGE",
                    &[(
                        "Content-Length: 0\r\n",
                        "Content-Length: 0\r\nContent-Length: 5\r\n",
                    )],
                )
            },
        ),
        case(
            "no Content-Length: UDP takes the datagram, a stream cannot frame it",
            Some(st(404)),
            Some(Close),
            |c| c.edit("MESSAGE", &[("Content-Length: 0\r\n\r\n", "\r\nhello")]),
        ),
        case(
            "body longer than Content-Length: the rest is dropped (UDP), the next message (TCP)",
            Some(st(404)),
            Some(ThenClose(vec![404])),
            |c| c.body("MESSAGE", b"hello, and garbage after\r\n\r\n", "5"),
        ),
        case(
            "a 65,000-byte datagram (64 KiB body): 513",
            Some(st(513)),
            None,
            |c| {
                let body = vec![b'b'; 64_000];
                c.body("MESSAGE", &body, &body.len().to_string())
            },
        ),
        case(
            "a 65,507-byte datagram of headers",
            Some(Close),
            None,
            |c| {
                let v = c.with("OPTIONS", &pad(65_507));
                let cut = 65_507usize;
                let mut v = v;
                v.truncate(cut);
                v
            },
        ),
        case("1 MiB of header on a stream", None, Some(Close), |c| {
            c.with("OPTIONS", &pad(1 << 20))
        }),
        // ---- loops and merged requests (§8.2.2.2)
        both("our own Via came back: 482", st(482), |c| {
            // Below the sender's: a request we sent has come back to us.
            let own = format!(
                ";rport\r\nVia: SIP/2.0/UDP {};branch=z9hG4bK-0-0123456789abcdef\r\n",
                c.server
            );
            c.edit("MESSAGE", &[(";rport\r\n", &own)])
        }),
        case(
            "top Via is the server itself: the UDP answer goes there and is dropped as stray",
            Some(Silent),
            Some(st(200)),
            |c| {
                let top = format!(
                    "Via: SIP/2.0/{} {};branch=z9hG4bKself{}\r\nVia: ",
                    c.tp, c.server, c.n
                );
                c.edit("OPTIONS", &[("Via: ", &top)])
            },
        ),
        many(
            "merged request: same Call-ID, From tag and CSeq, another branch: 482",
            Some(Status(vec![404, 482])),
            Some(Status(vec![404, 482])),
            Write::Whole,
            |c| {
                // INVITE: its server transaction waits for the ACK on TCP too.
                let m = if c.tp == "UDP" { "MESSAGE" } else { "INVITE" };
                let a = c.req(m);
                let b = a.replacen(
                    &format!("branch=z9hG4bKtest{}", c.n),
                    &format!("branch=z9hG4bKpath2x{}", c.n),
                    1,
                );
                vec![a.into_bytes(), b.into_bytes()]
            },
        ),
        many(
            "the same request again (a retransmission) is absorbed, answered the same",
            Some(Status(vec![404, 404])),
            None,
            Write::Whole,
            |c| vec![c.req("MESSAGE").into_bytes(), c.req("MESSAGE").into_bytes()],
        ),
        // ---- dialogs and transactions that do not exist (§12.2.2, §9.2, §17.2.3)
        both("in-dialog request nobody has: 481", st(481), |c| {
            c.edit(
                "MESSAGE",
                &[(
                    "To: <sip:msrpd@127.0.0.1>",
                    "To: <sip:msrpd@127.0.0.1>;tag=zz",
                )],
            )
        }),
        both("CANCEL of nothing: 481", st(481), |c| {
            c.req("CANCEL").into_bytes()
        }),
        both("BYE outside a dialog: the rejection", st(404), |c| {
            c.req("BYE").into_bytes()
        }),
        both("ACK of nothing: never answered", Silent, |c| {
            c.req("ACK").into_bytes()
        }),
        both("stray response: dropped", Silent, |c| {
            format!(
                "SIP/2.0 200 OK\r\nVia: SIP/2.0/{} {};branch=z9hG4bK-0-feedfacefeedface\r\n\
To: <sip:a@127.0.0.1>;tag=x\r\nFrom: <sip:b@127.0.0.1>;tag=y\r\nCall-ID: stray{}\r\n\
CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
                c.tp, c.server, c.n
            )
            .into_bytes()
        }),
        both("status line with a 3-digit code out of range", Close, |c| {
            format!(
                "SIP/2.0 999 Nine\r\nVia: SIP/2.0/{} {};branch=z9hG4bKx\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
                c.tp, c.me
            )
            .into_bytes()
        }),
        both("Via without rport: answered to its sent-by", st(200), |c| {
            c.edit("OPTIONS", &[(";rport", "")])
        }),
        // ---- streams: pipelining, torn and cut-off messages (§18.3)
        many(
            "three requests in one write",
            Some(Status(vec![200, 404, 501])),
            Some(Status(vec![200, 404, 501])),
            Write::Whole,
            |c| {
                let mut v = vec![c.req("OPTIONS").into_bytes()];
                let c2 = Ctx {
                    n: c.n + 100_000,
                    ..*c
                };
                v.push(c2.req("MESSAGE").into_bytes());
                let c3 = Ctx {
                    n: c.n + 200_000,
                    ..*c
                };
                v.push(c3.req("FOO").into_bytes());
                v
            },
        ),
        many(
            "good, garbage, good in one write: the first answered, then closed",
            Some(Status(vec![200, 200])),
            Some(ThenClose(vec![200])),
            Write::Whole,
            |c| {
                let c2 = Ctx {
                    n: c.n + 100_000,
                    ..*c
                };
                vec![
                    c.req("OPTIONS").into_bytes(),
                    b"OPTIONS sip:x SIP/2.0\r\nBroken header line\r\n\r\n".to_vec(),
                    c2.req("OPTIONS").into_bytes(),
                ]
            },
        ),
        many(
            "keepalive CRLFs between pipelined requests",
            None,
            Some(Status(vec![200, 200])),
            Write::Whole,
            |c| {
                let c2 = Ctx {
                    n: c.n + 100_000,
                    ..*c
                };
                vec![
                    b"\r\n".to_vec(),
                    c.req("OPTIONS").into_bytes(),
                    b"\r\n".to_vec(),
                    c2.req("OPTIONS").into_bytes(),
                ]
            },
        ),
        many(
            "a message torn into 7-byte writes",
            None,
            Some(st(200)),
            Write::Torn(7),
            |c| vec![c.body("OPTIONS", b"a torn body", "11")],
        ),
        many(
            "head cut off, then the peer closes",
            None,
            Some(Close),
            Write::ThenShutdown,
            |c| {
                let mut v = c.req("OPTIONS").into_bytes();
                v.truncate(v.len() / 2);
                vec![v]
            },
        ),
        many(
            "body cut off, then the peer closes",
            None,
            Some(Close),
            Write::ThenShutdown,
            |c| vec![c.body("MESSAGE", b"only part", "100")],
        ),
        many(
            "one answered, the next cut off, then the peer closes",
            None,
            Some(ThenClose(vec![200])),
            Write::ThenShutdown,
            |c| {
                let mut b = c.req("MESSAGE").into_bytes();
                b.truncate(30);
                vec![c.req("OPTIONS").into_bytes(), b]
            },
        ),
        many(
            "a head that never ends: the head timeout closes it",
            None,
            Some(Close),
            Write::Whole,
            |_| {
                vec![
                    b"OPTIONS sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bKslow\r\n"
                        .to_vec(),
                ]
            },
        ),
        many(
            "a lone CR, then the peer closes: not SIP after all",
            None,
            Some(Nosip),
            Write::ThenShutdown,
            |_| vec![b"\r".to_vec()],
        ),
    ]
}

/// The next SIP response on `s` (`None` after `wait`).
fn udp_response(s: &UdpSocket, wait: Duration) -> Option<String> {
    recv_udp(s, wait)
}

/// What came back over UDP after the case's datagrams: the responses, read until a
/// well-formed OPTIONS sent after them (a marker, `n + 900000`) is answered. Processing
/// on one socket is in order, so whatever the case produced arrives before the
/// marker's 200.
fn run_udp(server: SocketAddr, n: u32, case: &Case) -> Vec<u16> {
    let s = udp();
    let me = s.local_addr().unwrap();
    let c = Ctx {
        me,
        server,
        tp: "UDP",
        n,
    };
    for d in (case.make)(&c) {
        s.send_to(&d, server).unwrap();
    }
    let marker_n = n + 900_000;
    s.send_to(
        request("OPTIONS", "UDP", me, marker_n, "").as_bytes(),
        server,
    )
    .unwrap();
    let marker = format!("call{marker_n}@");
    let mut got = Vec::new();
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let r = udp_response(&s, left)
            .unwrap_or_else(|| panic!("{}: the marker OPTIONS was not answered", case.name));
        if header(&r, "Call-ID").is_some_and(|v| v.starts_with(&marker)) {
            assert_eq!(status(&r), 200, "{}: marker {r}", case.name);
            return got;
        }
        got.push(status(&r));
    }
}

/// Reads the next response, skipping keepalive pongs.
fn tcp_response(t: &mut SipTcp) -> Option<String> {
    while t.buf.starts_with(b"\r\n") {
        t.buf.drain(..2);
    }
    if t.buf.is_empty() || t.buf == b"\r" {
        // Pongs may be all there is so far.
        let r = t.response()?;
        let r = r.trim_start_matches("\r\n").to_string();
        return Some(r);
    }
    t.response()
        .map(|r| r.trim_start_matches("\r\n").to_string())
}

fn run_tcp(server: SocketAddr, n: u32, case: &Case, want: &Want) {
    let mut t = SipTcp::connect(server);
    let c = Ctx {
        me: t.local(),
        server,
        tp: "TCP",
        n,
    };
    let all: Vec<u8> = (case.make)(&c).concat();
    match case.write {
        Write::Whole => t.send(&all),
        Write::ThenShutdown => {
            t.send(&all);
            t.s.shutdown(std::net::Shutdown::Write).unwrap();
        }
        Write::Torn(k) => {
            for piece in all.chunks(k) {
                t.send(piece);
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
    let name = case.name;
    let expect_statuses = |t: &mut SipTcp, codes: &[u16]| {
        for &code in codes {
            let r = tcp_response(t).unwrap_or_else(|| panic!("{name}: no response (want {code})"));
            assert_eq!(status(&r), code, "{name}: {r}");
        }
    };
    match want {
        Status(codes) | ThenClose(codes) => expect_statuses(&mut t, codes),
        _ => {}
    }
    match want {
        Status(_) | Silent => {
            // Open, and nothing else was written: the next response is the marker's.
            let me = t.local();
            let marker_n = n + 900_000;
            t.send(request("OPTIONS", "TCP", me, marker_n, "").as_bytes());
            let r = tcp_response(&mut t)
                .unwrap_or_else(|| panic!("{name}: the connection does not answer a marker"));
            assert_eq!(status(&r), 200, "{name}: {r}");
            assert!(
                header(&r, "Call-ID")
                    .unwrap()
                    .starts_with(&format!("call{marker_n}@")),
                "{name}: something else came before the marker's answer: {r}"
            );
        }
        ThenClose(_) | Close | Nosip => {
            assert!(t.closed_within(WAIT), "{name}: not closed");
            let left: Vec<u8> = t
                .buf
                .iter()
                .copied()
                .filter(|&b| b != b'\r' && b != b'\n')
                .collect();
            assert!(
                left.is_empty(),
                "{name}: bytes before the close: {:?}",
                String::from_utf8_lossy(&t.buf)
            );
        }
    }
}

/// Two MSRP clients AUTHed through the relay.
fn msrp_pair(p: &RelayProcess) -> (Client, String, Client, String) {
    let mut a = p.connect(&peer_uri("alice", 1111));
    let mut b = p.connect(&peer_uri("bob", 2222));
    let ra = a.auth(&p.uri());
    let rb = b.auth(&p.uri());
    (a, ra, b, rb)
}

#[test]
fn hostile_corpus_over_udp_and_tcp() {
    let cases = corpus();
    let runs: usize = cases
        .iter()
        .map(|c| usize::from(c.udp.is_some()) + usize::from(c.tcp.is_some()))
        .sum();
    assert!(cases.len() >= 60, "{} cases", cases.len());
    let api = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let api_arg = api.to_string();
    let p = RelayProcess::start(&["--cores", "2", "--admin", &api_arg, "--head-timeout", "1"]);
    let (mut a, ra, mut b, rb) = msrp_pair(&p);
    message(&mut a, &ra, &mut b, &rb, 0);
    let rss_start = proc_status_kib(p.pid(), "RssAnon:");
    let mut rss_before = 0;
    let mut closes = 0;
    let mut nosips = 0;
    let mut failed = Vec::new();
    // Five times, each pass with new Call-IDs and branches. The first passes warm the
    // allocator up (the heap grows in 2 MiB steps while each worker's arena finds its
    // shape: about 14 MiB over three passes here, then flat); the last two must not
    // grow it by more than two such steps. The transaction table holds what the
    // passes sent for up to 32 s, within its byte budget (`Config::max_bytes`).
    const PASSES: u32 = 5;
    for (pass, (i, case)) in (0..PASSES).flat_map(|p| cases.iter().enumerate().map(move |c| (p, c)))
    {
        if pass == PASSES - 2 && i == 0 {
            rss_before = proc_status_kib(p.pid(), "RssAnon:");
        }
        let n = 1000 + pass * 500_000 + i as u32 * 2;
        // Each run on its own: every case that goes wrong is listed at the end.
        let mut run = |what: &str, f: &mut dyn FnMut()| {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
            if r.is_err() {
                failed.push(format!("{what} {}", case.name));
            }
        };
        if let Some(want) = &case.udp {
            run("UDP", &mut || {
                let got = run_udp(p.addr, n, case);
                let expect: Vec<u16> = match want {
                    Status(v) | ThenClose(v) => v.clone(),
                    _ => Vec::new(),
                };
                assert_eq!(got, expect, "UDP {}: want {want:?}", case.name);
            });
            closes += usize::from(*want == Close);
            nosips += usize::from(*want == Nosip);
        }
        if let Some(want) = &case.tcp {
            run("TCP", &mut || run_tcp(p.addr, n + 1, case, want));
            closes += usize::from(*want == Close || matches!(want, ThenClose(_)));
            nosips += usize::from(*want == Nosip);
        }
        // The MSRP session on the same port keeps chatting.
        if i % 8 == 7 {
            message(&mut a, &ra, &mut b, &rb, pass as usize * 1000 + i + 1);
        }
    }
    assert!(
        failed.is_empty(),
        "{} runs failed:\n{}",
        failed.len(),
        failed.join("\n")
    );
    // The heap after the passes, before the checks below (the metrics scrape allocates
    // on the admin thread, which can take a fresh 4 MiB allocator segment).
    let rss_after = proc_status_kib(p.pid(), "RssAnon:");
    eprintln!("{} cases, {runs} runs a pass, {PASSES} passes", cases.len());
    message(&mut a, &ra, &mut b, &rb, 10_000);

    // Still answering, on both transports.
    let r = udp_exchange(p.addr, |me| request("OPTIONS", "UDP", me, 1, ""));
    assert_eq!(status(&r), 200);
    let mut t = SipTcp::connect(p.addr);
    let me = t.local();
    t.send(request("OPTIONS", "TCP", me, 2, "").as_bytes());
    assert_eq!(status(&t.response().unwrap()), 200);
    drop(t);

    // Counters: every case that could not be answered is counted; only the two MSRP
    // connections are left open.
    let deadline = Instant::now() + Duration::from_secs(5);
    let m = loop {
        let m = http::get(api, "/metrics").text();
        if metric(&m, "msrpd_connections_open") == 2.0 || Instant::now() > deadline {
            break m;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(metric(&m, "msrpd_connections_open"), 2.0, "{m}");
    let malformed = metric(&m, "msrpd_sip_malformed_total");
    // Stream cut-offs (the peer closing mid-message) and the head timeout are not
    // malformed input.
    assert!(
        malformed >= (closes - PASSES as usize * 6) as f64,
        "{malformed} malformed for {closes} closes"
    );
    let nosip = metric(&m, "msrpd_nosip_packets_total")
        + metric(&m, "msrpd_nosip_short_total")
        + metric(&m, "msrpd_nosip_shed_total");
    assert_eq!(nosip, nosips as f64, "{m}");
    assert!(metric(&m, "msrpd_sip_messages_in_total") >= f64::from(PASSES) * runs as f64);
    eprintln!(
        "anonymous RSS {rss_start} KiB at start, {rss_before} KiB before the last two passes, {rss_after} KiB after"
    );
    assert!(
        rss_after <= rss_before + 4 * 1024,
        "the heap grew from {rss_before} to {rss_after} KiB in the last two passes"
    );
    assert!(
        rss_after < rss_start + 32 * 1024,
        "the heap grew from {rss_start} to {rss_after} KiB"
    );
}
