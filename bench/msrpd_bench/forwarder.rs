//! The ceiling: a plain loopback TCP forwarder with no MSRP parsing, driven by the same
//! harness (`msrpd-bench --no-auth --pair-hello` against `msrpd-bench --forwarder ADDR`).
//!
//! Each connection first sends one line `PAIR <id>\r\n`; the two connections with the
//! same id are joined and bytes are copied both ways, on `--threads` monoio threads.
//! This is what a relay costs with zero protocol work: the limit of the machine.
//!
//! `--placement cross` puts the two connections of a pair on two threads, and each
//! chunk read on one is handed to the other thread to be written (a bounded channel; the
//! wake-up crosses threads as msrpd's mesh does): the ceiling for a relay whose two ends
//! of a session live on different cores, which SO_REUSEPORT gives about half the pairs.
//! `--placement mixed` crosses every other pair: the like-for-like ceiling for a relay on
//! two cores.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::ExitCode;

use bytes::{Bytes, BytesMut};
use monoio::io::{AsyncReadRent, AsyncWriteRentExt, Splitable};

use crate::Placement;

/// What a forwarder thread is given: a whole pair, or one end of a pair whose other end
/// is on another thread.
enum Job {
    Pair(TcpStream, TcpStream),
    Half {
        conn: TcpStream,
        /// What the other end read, to write here.
        inbox: async_channel::Receiver<Bytes>,
        /// What this end reads, for the other end to write.
        outbox: async_channel::Sender<Bytes>,
    },
}

/// Chunks in flight from one end of a crossing pair to the other.
const CROSS_DEPTH: usize = 64;

/// Runs the forwarder until killed.
pub fn serve(addr: SocketAddr, threads: usize, placement: Placement) -> ExitCode {
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
        let (tx, rx) = async_channel::unbounded::<Job>();
        senders.push(tx);
        std::thread::Builder::new()
            .name(format!("fwd-{t}"))
            .spawn(move || {
                let serve = async move {
                    while let Ok(job) = rx.recv().await {
                        match job {
                            Job::Pair(a, b) => {
                                monoio::spawn(join(a, b));
                            }
                            Job::Half {
                                conn,
                                inbox,
                                outbox,
                            } => {
                                monoio::spawn(half(conn, inbox, outbox));
                            }
                        }
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
                let n = senders.len();
                // Mixed: pairs alternate crossing; each kind takes the threads in turn.
                let (cross, t) = match placement {
                    Placement::Same => (false, next),
                    Placement::Cross => (true, next),
                    Placement::Mixed => (next % 2 == 1, next / 2),
                };
                if cross && n > 1 {
                    let (a_tx, a_rx) = async_channel::bounded(CROSS_DEPTH);
                    let (b_tx, b_rx) = async_channel::bounded(CROSS_DEPTH);
                    let _ = senders[t % n].try_send(Job::Half {
                        conn: peer,
                        inbox: b_rx,
                        outbox: a_tx,
                    });
                    let _ = senders[(t + 1) % n].try_send(Job::Half {
                        conn,
                        inbox: a_rx,
                        outbox: b_tx,
                    });
                } else {
                    let _ = senders[t % n].try_send(Job::Pair(peer, conn));
                }
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

/// One end of a crossing pair: what it reads goes to the other thread, what the other
/// thread sends is written here.
async fn half(
    conn: TcpStream,
    inbox: async_channel::Receiver<Bytes>,
    outbox: async_channel::Sender<Bytes>,
) {
    let _ = conn.set_nonblocking(true);
    let Ok(conn) = monoio::net::TcpStream::from_std(conn) else {
        return;
    };
    let (mut r, mut w) = conn.into_split();
    monoio::spawn(async move {
        while let Ok(chunk) = inbox.recv().await {
            let (res, _) = w.write_all(chunk).await;
            if res.is_err() {
                return;
            }
        }
    });
    let mut buf = BytesMut::with_capacity(64 * 1024);
    loop {
        if buf.capacity() < 16 * 1024 {
            buf = BytesMut::with_capacity(64 * 1024);
        }
        let Some(b) = fill(&mut r, buf).await else {
            return;
        };
        buf = b;
        if outbox.send(buf.split().freeze()).await.is_err() {
            return;
        }
    }
}

/// Reads once into `buf`'s spare capacity; `None` at the end of the stream or an error.
async fn fill<R: AsyncReadRent>(r: &mut R, buf: BytesMut) -> Option<BytesMut> {
    let cap = buf.capacity();
    let (res, b) = r.read(monoio::buf::IoBufMut::slice_mut(buf, 0..cap)).await;
    match res {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(b.into_inner()),
    }
}

async fn copy<R: AsyncReadRent, W: AsyncWriteRentExt>(mut r: R, mut w: W) {
    let mut buf = BytesMut::with_capacity(64 * 1024);
    loop {
        buf.clear();
        let Some(full) = fill(&mut r, buf).await else {
            return;
        };
        let (res, b) = w.write_all(full).await;
        buf = b;
        if res.is_err() {
            return;
        }
    }
}
