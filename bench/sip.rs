//! SIP parser micro-benchmarks (criterion, `Throughput::Bytes`): a datagram OPTIONS and
//! MESSAGE parsed and typed as the transaction table reads them, a stream of MESSAGEs
//! framed by Content-Length, and the answer the core writes for an OPTIONS.
//!
//! Run: `cargo bench --bench sip`.

use bytes::{Bytes, BytesMut};
use criterion::{Criterion, Throughput, black_box, criterion_group, criterion_main};
use msrpd::sip::core::{Policy, answer_stateless};
use msrpd::sip::{Frame, Limits, Message};

/// What sipp's default OPTIONS scenario sends (about 330 bytes).
const OPTIONS: &[u8] = b"OPTIONS sip:msrpd@127.0.0.1:2855 SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-1234-1-0\r\n\
From: sipp <sip:sipp@127.0.0.1:5061>;tag=1234SIPpTag001\r\n\
To: sut <sip:msrpd@127.0.0.1:2855>\r\n\
Call-ID: 1-1234@127.0.0.1\r\n\
CSeq: 1 OPTIONS\r\n\
Contact: sip:sipp@127.0.0.1:5061\r\n\
Max-Forwards: 70\r\n\
Subject: Performance Test\r\n\
Content-Length: 0\r\n\r\n";

/// A page-mode MESSAGE through two proxies, with a short text body.
const MESSAGE: &[u8] = b"MESSAGE sip:bob@example.com SIP/2.0\r\n\
Via: SIP/2.0/TCP proxy2.example.net:5060;branch=z9hG4bK7a8s6df;received=192.0.2.10\r\n\
Via: SIP/2.0/TCP proxy1.example.net:5060;branch=z9hG4bK77ef4c2312983.1\r\n\
Via: SIP/2.0/TCP alice-pc.example.com:5060;branch=z9hG4bK776sgdkse;rport=5060\r\n\
Max-Forwards: 68\r\n\
From: \"Alice\" <sip:alice@example.com>;tag=49583\r\n\
To: <sip:bob@example.com>\r\n\
Call-ID: asd88asd77a@1.2.3.4\r\n\
CSeq: 1 MESSAGE\r\n\
Route: <sip:proxy3.example.net;lr>\r\n\
Content-Type: text/plain\r\n\
Content-Length: 18\r\n\r\n\
Watson, come here.";

/// Parses and reads what a transaction and the core look at.
fn typed(m: &Message) -> usize {
    let via = m.top_via().map_or(0, |v| v.branch().map_or(0, str::len));
    let cseq = m.cseq().map_or(0, |c| c.seq as usize);
    via + cseq + m.call_id().map_or(0, str::len) + m.from_tag().map_or(0, str::len)
}

fn parse(c: &mut Criterion) {
    let mut g = c.benchmark_group("sip_datagram");
    for (name, msg) in [("options", OPTIONS), ("message", MESSAGE)] {
        let b = Bytes::from_static(msg);
        g.throughput(Throughput::Bytes(msg.len() as u64));
        g.bench_function(name, |bench| {
            bench.iter(|| {
                let m = Message::parse_datagram(black_box(b.clone()), &Limits::default()).unwrap();
                typed(&m)
            })
        });
    }
    g.finish();
    let mut g = c.benchmark_group("sip_stream");
    let stream: Vec<u8> = MESSAGE.repeat(64);
    g.throughput(Throughput::Bytes(stream.len() as u64));
    g.bench_function("message_x64", |bench| {
        bench.iter(|| {
            let mut buf = BytesMut::from(black_box(&stream[..]));
            let mut n = 0;
            while let Ok(Frame::Message(m)) = Message::parse_stream(&mut buf, &Limits::default()) {
                n += typed(&m);
            }
            n
        })
    });
    g.finish();
    let mut g = c.benchmark_group("sip_answer");
    let policy = Policy::default();
    let req = Message::parse_datagram(Bytes::from_static(OPTIONS), &Limits::default()).unwrap();
    g.throughput(Throughput::Bytes(OPTIONS.len() as u64));
    g.bench_function("options_200", |bench| {
        bench.iter(|| {
            let a = answer_stateless(black_box(&req), &policy).unwrap();
            a.write(&req, Some("m0-0123456789abcdef")).len()
        })
    });
    g.finish();
}

criterion_group!(benches, parse);
criterion_main!(benches);
