//! msrpd's TLS stream (`src/server/tls_stream.rs`) on its own, on both monoio drivers:
//! a rustls client on a thread of its own talks to [`msrpd::server::tls::accept`] over
//! 127.0.0.1, the server echoing through the stream's reader and writer halves.
//!
//! - A megabyte in writes of odd sizes, read back into small buffers, with KeyUpdates
//!   from the client in the middle (RFC 8446 §4.6.3: our answer goes out with our next
//!   record) and a close_notify at the end (end-of-file for the reader).
//! - A record the server cannot decrypt after the handshake: the reader hands out what
//!   came before it, then fails with `InvalidData` (and so does the writer), and the
//!   client gets the server's alert (bad_record_mac) when the writer shuts down.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};
use msrpd::server::tls::{self, TlsContext, TlsFiles};
use rcgen::{CertificateParams, IsCa, KeyPair};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// A server configuration for 127.0.0.1 and a client configuration trusting it.
fn configs(tag: &str) -> (Arc<rustls::ServerConfig>, Arc<rustls::ClientConfig>) {
    let mut p = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    p.is_ca = IsCa::ExplicitNoCa;
    let key = KeyPair::generate().unwrap();
    let cert = p.self_signed(&key).unwrap().pem();
    let cert_file = common::temp_path(&format!("tls-stream-{tag}-cert.pem"));
    let key_file = common::temp_path(&format!("tls-stream-{tag}-key.pem"));
    std::fs::write(&cert_file, &cert).unwrap();
    std::fs::write(&key_file, key.serialize_pem()).unwrap();
    let ctx = TlsContext::load(&TlsFiles {
        cert: Some(cert_file),
        key: Some(key_file),
        ca: None,
    })
    .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(cert.as_bytes()).unwrap())
        .unwrap();
    let client = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    (ctx.server_config().unwrap(), Arc::new(client))
}

/// Runs `server` on a runtime of `legacy`'s kind with the accepted stream's halves, and
/// `client` on this thread against it; returns what the server returned.
fn run<T: 'static>(
    legacy: bool,
    tag: &str,
    client: impl FnOnce(rustls::StreamOwned<rustls::ClientConnection, TcpStream>) + Send + 'static,
    server: impl AsyncFnOnce(
        msrpd::server::tls_stream::TlsReader<monoio::net::TcpStream>,
        msrpd::server::tls_stream::TlsWriter<monoio::net::TcpStream>,
    ) -> T
    + 'static,
) -> T {
    let (scfg, ccfg) = configs(tag);
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let peer = std::thread::spawn(move || {
        let tcp = TcpStream::connect(addr).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let conn = rustls::ClientConnection::new(ccfg, name).unwrap();
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        while tls.conn.is_handshaking() {
            tls.conn.complete_io(&mut tls.sock).unwrap();
        }
        client(tls);
    });
    let fut = async move {
        let l = monoio::net::TcpListener::from_std(l).unwrap();
        let (s, _) = l.accept().await.unwrap();
        let (stream, relay) = tls::accept(scfg, s, "test client".into()).await.unwrap();
        assert!(relay.is_none(), "no client certificate: not a relay");
        let (rd, wr) = stream.into_split();
        server(rd, wr).await
    };
    let out = if legacy {
        monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .unwrap()
            .block_on(fut)
    } else {
        monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
            .enable_timer()
            .build()
            .unwrap()
            .block_on(fut)
    };
    peer.join().unwrap();
    out
}

#[test]
fn echo_of_odd_sizes_across_key_updates_then_close_notify() {
    const TOTAL: usize = 1 << 20;
    for legacy in [false, true] {
        let got = run(
            legacy,
            "echo",
            |mut tls| {
                let data: Vec<u8> = (0..TOTAL).map(|i| (i * 7 + i / 251) as u8).collect();
                let mut sent = 0;
                let mut back = Vec::with_capacity(TOTAL);
                let mut buf = vec![0u8; 70_000];
                let sizes = [1usize, 13, 1000, 16_384, 16_385, 40_000, 65_536, 3];
                for (i, &n) in sizes.iter().cycle().enumerate() {
                    if sent == TOTAL {
                        break;
                    }
                    let n = n.min(TOTAL - sent);
                    tls.write_all(&data[sent..sent + n]).unwrap();
                    sent += n;
                    if i % 5 == 4 {
                        // A KeyUpdate, answered with ours before the server's next record.
                        tls.conn.refresh_traffic_keys().unwrap();
                    }
                    // Read back what has come so far (the echo is not all there yet).
                    while back.len() + 16_384 < sent {
                        let k = tls.read(&mut buf).unwrap();
                        assert!(k > 0);
                        back.extend_from_slice(&buf[..k]);
                    }
                }
                while back.len() < TOTAL {
                    let k = tls.read(&mut buf).unwrap();
                    assert!(k > 0, "echo cut short at {}", back.len());
                    back.extend_from_slice(&buf[..k]);
                }
                assert!(back == data, "echo differs");
                tls.conn.send_close_notify();
                tls.flush().unwrap();
                // The server answers with its own close_notify: a clean end.
                assert_eq!(tls.read(&mut buf).unwrap(), 0);
            },
            async |mut rd, mut wr| {
                let mut total = 0;
                let mut round = 0usize;
                loop {
                    // Small and uneven reads: plaintext is handed out in pieces.
                    let cap = [1usize, 700, 5000, 20_000][round % 4];
                    round += 1;
                    let (r, buf) = rd.read(Vec::with_capacity(cap)).await;
                    let n = r.unwrap();
                    if n == 0 {
                        break; // close_notify
                    }
                    total += n;
                    // Echoed as a writev of up to three pieces, or a plain write.
                    let r = if buf.len() >= 3 && round % 2 == 0 {
                        let third = buf.len() / 3;
                        let parts = vec![
                            buf[..third].to_vec(),
                            buf[third..2 * third].to_vec(),
                            buf[2 * third..].to_vec(),
                        ];
                        wr.write_vectored_all(monoio::buf::VecBuf::from(parts))
                            .await
                            .0
                    } else {
                        wr.write_all(buf).await.0
                    };
                    r.unwrap();
                }
                wr.shutdown().await.unwrap();
                total
            },
        );
        assert_eq!(got, TOTAL, "legacy {legacy}");
    }
}

#[test]
fn undecryptable_record_fails_the_read_and_the_peer_gets_an_alert() {
    for legacy in [false, true] {
        let err = run(
            legacy,
            "garbage",
            |mut tls| {
                tls.write_all(b"hello").unwrap();
                tls.flush().unwrap();
                // An application-data record (TLS 1.3 outer type 23) of garbage.
                let mut rec = vec![23u8, 3, 3, 0, 64];
                rec.extend_from_slice(&[0x5a; 64]);
                tls.sock.write_all(&rec).unwrap();
                // The server's answer: its alert.
                let mut buf = [0u8; 64];
                let e = tls
                    .read(&mut buf)
                    .expect_err("an alert, not data or a clean close");
                let alert = e.to_string();
                assert!(alert.contains("BadRecordMac"), "{alert}");
            },
            async |mut rd, mut wr| {
                // What decrypted before the bad record is handed out first.
                let (r, buf) = rd.read(Vec::with_capacity(100)).await;
                assert_eq!((r.unwrap(), &buf[..]), (5, &b"hello"[..]));
                let (r, _) = rd.read(Vec::with_capacity(100)).await;
                let e = r.expect_err("garbage must fail the read");
                // And every read after it; writing fails too.
                let (r, _) = rd.read(Vec::with_capacity(100)).await;
                assert_eq!(r.unwrap_err().kind(), e.kind());
                let (r, _) = wr.write_all(b"late".to_vec()).await;
                assert_eq!(r.unwrap_err().kind(), std::io::ErrorKind::InvalidData);
                // The connection closes as it does in msrpd: the writer shuts down,
                // sending the alert rustls queued.
                let _ = wr.shutdown().await;
                e.kind()
            },
        );
        assert_eq!(err, std::io::ErrorKind::InvalidData, "legacy {legacy}");
    }
}
