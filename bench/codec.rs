//! Codec micro-benchmarks (criterion, `Throughput::Bytes`): scanning streams of 64 B,
//! 1 KiB and 64 KiB chunks, and parsing + typing a typical SEND head.
//!
//! Run: `cargo bench --bench codec`.

use bytes::BytesMut;
use criterion::{BenchmarkId, Criterion, Throughput, black_box, criterion_group, criterion_main};
use msrpd::codec::{Event, Head, Scanner, encode, scanner::Flag};

/// A typical SEND head through one relay: two-URI To-Path, From-Path, Message-ID,
/// Byte-Range, Content-Type (about 250 bytes).
const HEAD: &[u8] = b"MSRP 5a8d9f2c1b SEND\r\n\
To-Path: msrp://relay.example.net:2855/r7Hk2pQ9xZ;tcp msrp://bob.example.com:7654/jshA7weztas;tcp\r\n\
From-Path: msrp://alice.example.com:12763/kjhd37s2s20w2a;tcp\r\n\
Message-ID: 87652491aZq7\r\n\
Byte-Range: 1-1024/1024\r\n\
Content-Type: text/plain\r\n";

/// `n` frames, each with a body of `size` bytes of text-like content.
fn stream(size: usize, n: usize) -> Vec<u8> {
    let body: Vec<u8> = (0..size)
        .map(|i| b"abcdefghijklmnopqrstuvwxyz0123456789 .,\n"[i % 40])
        .collect();
    let mut out = BytesMut::new();
    for i in 0..n {
        let tid = format!("tx{i:08}q");
        encode::request(
            &mut out,
            &tid,
            "SEND",
            "msrp://relay.example.net:2855/r7Hk2pQ9xZ;tcp msrp://bob.example.com:7654/jshA7weztas;tcp",
            "msrp://alice.example.com:12763/kjhd37s2s20w2a;tcp",
            &[
                ("Message-ID", b"87652491aZq7"),
                ("Byte-Range", format!("1-{size}/{size}").as_bytes()),
            ],
            Some(("text/plain", &body)),
            Flag::Complete,
        );
    }
    out.to_vec()
}

fn scan(c: &mut Criterion) {
    let mut g = c.benchmark_group("scan");
    for (size, n) in [(64usize, 1024usize), (1024, 256), (65536, 16)] {
        let input = stream(size, n);
        g.throughput(Throughput::Bytes(input.len() as u64));
        g.bench_with_input(BenchmarkId::from_parameter(size), &input, |b, input| {
            b.iter(|| {
                // Arrives as 64 KiB reads, as from a socket.
                let mut sc = Scanner::default();
                let mut buf = BytesMut::with_capacity(128 * 1024);
                let mut body = 0usize;
                for piece in input.chunks(65536) {
                    buf.extend_from_slice(piece);
                    while let Some(ev) = sc.next(&mut buf).expect("valid stream") {
                        if let Event::Body(b) = ev {
                            body += b.len();
                        }
                    }
                }
                black_box(body)
            })
        });
    }
    g.finish();
}

fn head(c: &mut Criterion) {
    let mut g = c.benchmark_group("head");
    g.throughput(Throughput::Bytes(HEAD.len() as u64));
    g.bench_function("send_parse_typed", |b| {
        b.iter(|| {
            let h = Head::parse(black_box(HEAD)).expect("valid head");
            black_box((
                h.to_path().first().session_id(),
                h.from_path().len(),
                h.message_id(),
                h.byte_range(),
                h.content_type(),
                h.failure_report(),
            ))
        })
    });
    g.finish();
}

criterion_group!(benches, scan, head);
criterion_main!(benches);
