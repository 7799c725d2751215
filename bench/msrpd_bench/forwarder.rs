//! The ceiling: a plain loopback TCP forwarder with no MSRP parsing, driven by the same
//! harness (`msrpd-bench --no-auth --pair-hello` against `msrpd-bench --forwarder ADDR`).
//!
//! Each connection first sends one line `PAIR <id>\r\n`; the two connections with the
//! same id are joined and bytes are copied both ways, on `--threads` monoio threads.
//! This is what a relay costs with zero protocol work: the limit of the machine.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::ExitCode;

use bytes::BytesMut;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt, Splitable};

/// Runs the forwarder until killed.
pub fn serve(addr: SocketAddr, threads: usize) -> ExitCode {
    let listener = match TcpListener::bind(addr) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("msrpd-bench forwarder: cannot listen on {addr}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let local = listener.local_addr().map_or(addr, |a| a);
    println!("forwarder listening on {local}");
    let mut senders = Vec::new();
    for t in 0..threads.max(1) {
        let (tx, rx) = async_channel::unbounded::<(TcpStream, TcpStream)>();
        senders.push(tx);
        std::thread::Builder::new()
            .name(format!("fwd-{t}"))
            .spawn(move || {
                let serve = async move {
                    while let Ok((a, b)) = rx.recv().await {
                        monoio::spawn(join(a, b));
                    }
                };
                // The same ring set-up as msrpd's workers, so the ceiling stays a ceiling.
                let res = if monoio::utils::detect_uring() {
                    msrpd::server::runtime::uring_runtime(
                        4096,
                        msrpd::server::runtime::modes_from_env(),
                    )
                    .map(|(mut rt, _)| rt.block_on(serve))
                } else {
                    monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
                        .build()
                        .map(|mut rt| rt.block_on(serve))
                };
                if let Err(e) = res {
                    eprintln!("forwarder runtime: {e}");
                }
            })
            .expect("spawn forwarder thread");
    }
    let mut waiting: HashMap<String, TcpStream> = HashMap::new();
    let mut next = 0usize;
    for conn in listener.incoming() {
        let Ok(conn) = conn else { continue };
        let _ = conn.set_nodelay(true);
        // Read the hello line byte by byte so nothing after it is consumed here.
        let mut line = String::new();
        let mut r = BufReader::with_capacity(1, &conn);
        if r.read_line(&mut line).is_err() {
            continue;
        }
        let id = line.trim().strip_prefix("PAIR ").unwrap_or("").to_string();
        match waiting.remove(&id) {
            Some(peer) => {
                let _ = senders[next % senders.len()].try_send((peer, conn));
                next += 1;
            }
            None => {
                waiting.insert(id, conn);
            }
        }
    }
    ExitCode::SUCCESS
}

async fn join(a: TcpStream, b: TcpStream) {
    let _ = a.set_nonblocking(true);
    let _ = b.set_nonblocking(true);
    let (Ok(a), Ok(b)) = (
        monoio::net::TcpStream::from_std(a),
        monoio::net::TcpStream::from_std(b),
    ) else {
        return;
    };
    let (ar, aw) = a.into_split();
    let (br, bw) = b.into_split();
    monoio::spawn(copy(ar, bw));
    copy(br, aw).await;
}

async fn copy<R: AsyncReadRent, W: AsyncWriteRentExt>(mut r: R, mut w: W) {
    let mut buf = BytesMut::with_capacity(64 * 1024);
    loop {
        buf.clear();
        let cap = buf.capacity();
        let (res, b) = r.read(monoio::buf::IoBufMut::slice_mut(buf, 0..cap)).await;
        buf = b.into_inner();
        match res {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let (res, b) = w.write_all(buf).await;
        buf = b;
        if res.is_err() {
            return;
        }
    }
}
