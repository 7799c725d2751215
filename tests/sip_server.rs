//! SIP on the MSRP port, on real sockets: stateless answers over UDP, TCP and TLS (RFC 3261
//! §8.2), the CRLF keepalive (RFC 5626 §4.4.1), MSRP on the same port meanwhile, and
//! what is neither (nosip).

mod common;

use std::time::Duration;

use common::sip::*;
use common::*;

/// A relay on one or two workers; `tune` adjusts it.
fn start(workers: usize, tune: impl FnOnce(&mut msrpd::server::ServerConfig)) -> Relay {
    Relay::start(workers, msrpd::server::Driver::Auto, tune)
}

#[test]
fn options_udp_and_tcp_get_200_with_allow() {
    for driver in DRIVERS {
        let relay = Relay::start(2, driver, |_| {});
        let r = udp_exchange(relay.addr, |me| request("OPTIONS", "UDP", me, 1, ""));
        assert_eq!(status(&r), 200, "{r}");
        assert_eq!(
            header(&r, "Allow"),
            Some("INVITE, ACK, CANCEL, BYE, OPTIONS, MESSAGE")
        );
        assert!(header(&r, "Accept").is_some());
        assert!(header(&r, "Supported").is_some());
        // RFC 3581: received and rport filled in.
        let via = header(&r, "Via").unwrap();
        assert!(via.contains("received=127.0.0.1"), "{via}");
        assert!(via.contains(";rport="), "{via}");
        let mut t = SipTcp::connect(relay.addr);
        let me = t.local();
        t.send(request("OPTIONS", "TCP", me, 2, "").as_bytes());
        let r = t.response().expect("a response over TCP");
        assert_eq!(status(&r), 200, "{r}");
        assert!(header(&r, "Allow").is_some());
        // The connection stays open for more.
        t.send(request("OPTIONS", "TCP", me, 3, "").as_bytes());
        assert_eq!(status(&t.response().unwrap()), 200);
    }
}

#[test]
fn invite_and_message_rejected_404_or_as_configured() {
    let relay = start(1, |_| {});
    for m in ["INVITE", "MESSAGE"] {
        let r = udp_exchange(relay.addr, |me| request(m, "UDP", me, 1, ""));
        assert_eq!(status(&r), 404, "{r}");
        assert!(header(&r, "To").unwrap().contains(";tag="), "{r}");
        let mut t = SipTcp::connect(relay.addr);
        let me = t.local();
        t.send(request(m, "TCP", me, 2, "").as_bytes());
        assert_eq!(status(&t.response().unwrap()), 404);
    }
    drop(relay);
    let relay = start(1, |c| c.sip_reject = 480);
    for m in ["INVITE", "MESSAGE"] {
        let r = udp_exchange(relay.addr, |me| request(m, "UDP", me, 1, ""));
        assert_eq!(status(&r), 480, "{r}");
    }
}

#[test]
fn rfc_answers_over_udp() {
    let relay = start(1, |_| {});
    let cases: &[(&str, &str, u16)] = &[
        ("MESSAGE", "Max-Forwards: 0\r\n", 483),
        ("FOO", "", 501),
        ("SUBSCRIBE", "", 405),
        ("OPTIONS", "Require: foo\r\n", 420),
    ];
    for (m, extra, want) in cases {
        let r = udp_exchange(relay.addr, |me| {
            request(m, "UDP", me, 1, "")
                .replace(
                    "Max-Forwards: 70\r\n",
                    &format!("Max-Forwards: 70\r\n{extra}"),
                )
                .replace(
                    "Max-Forwards: 70\r\nMax-Forwards: 0\r\n",
                    "Max-Forwards: 0\r\n",
                )
        });
        assert_eq!(status(&r), *want, "{m} {extra:?}: {r}");
    }
    let r = udp_exchange(relay.addr, |me| {
        request("MESSAGE", "UDP", me, 1, "")
            .replace("MESSAGE sip:msrpd@127.0.0.1", "MESSAGE tel:+1234")
    });
    assert_eq!(status(&r), 416, "{r}");
}

#[test]
fn retransmitted_udp_request_gets_the_same_answer() {
    let relay = start(1, |_| {});
    let s = udp();
    let me = s.local_addr().unwrap();
    let req = request("MESSAGE", "UDP", me, 7, "");
    s.send_to(req.as_bytes(), relay.addr).unwrap();
    let first = recv_udp(&s, WAIT).unwrap();
    s.send_to(req.as_bytes(), relay.addr).unwrap();
    let again = recv_udp(&s, WAIT).unwrap();
    assert_eq!(first, again, "absorbed by the server transaction (§17.2.2)");
}

#[test]
fn crlf_ping_gets_crlf_pong() {
    let relay = start(1, |_| {});
    let mut t = SipTcp::connect(relay.addr);
    t.send(b"\r\n\r\n");
    assert_eq!(t.read_exact_bytes(2), b"\r\n");
    // And SIP still works on it.
    let me = t.local();
    t.send(request("OPTIONS", "TCP", me, 1, "").as_bytes());
    assert_eq!(status(&t.response().unwrap()), 200);
    t.send(b"\r\n\r\n");
    assert_eq!(t.read_exact_bytes(2), b"\r\n");
    relay.settle("pings", |c| c.sip_pings == 2);
}

#[test]
fn msrp_keeps_chatting_while_sip_flows() {
    let relay = start(2, |_| {});
    let addr = relay.addr;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let s2 = stop.clone();
    let sip = std::thread::spawn(move || {
        let mut n = 0u32;
        let mut t = SipTcp::connect(addr);
        let me = t.local();
        while !s2.load(std::sync::atomic::Ordering::Relaxed) && n < 2000 {
            n += 1;
            let r = udp_exchange(addr, |me| request("OPTIONS", "UDP", me, n, ""));
            assert_eq!(status(&r), 200);
            t.send(request("MESSAGE", "TCP", me, n, "").as_bytes());
            assert_eq!(status(&t.response().unwrap()), 404);
        }
        n
    });
    for i in 0..5 {
        msrp_roundtrip(&relay, i);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let n = sip.join().unwrap();
    assert!(n > 0);
}

#[test]
fn neither_msrp_nor_sip_is_closed_and_counted() {
    let relay = start(1, |_| {});
    let mut t = SipTcp::connect(relay.addr);
    t.send(b"resume transaction 12345 please, this is longer than 32 bytes\r\n");
    assert!(t.closed_within(WAIT));
    let mut t = SipTcp::connect(relay.addr);
    t.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(t.closed_within(WAIT), "the HTTP seam: closed for now");
    let s = udp();
    s.send_to(b"0123456789abcdefghij", relay.addr).unwrap(); // 20 bytes
    s.send_to(&[b'x'; 64], relay.addr).unwrap();
    relay.settle("nosip", |c| c.nosip_packets >= 2 && c.nosip_short == 1);
    msrp_roundtrip(&relay, 0);
}

#[test]
fn udp_flood_leaves_msrp_responsive() {
    let relay = start(1, |_| {});
    let s = udp();
    let junk = [0u8; 16];
    for _ in 0..100_000 {
        let _ = s.send_to(&junk, relay.addr);
    }
    msrp_roundtrip(&relay, 0);
    let r = udp_exchange(relay.addr, |me| request("OPTIONS", "UDP", me, 1, ""));
    assert_eq!(status(&r), 200);
    assert!(relay.counters().nosip_short > 0);
    let _ = Duration::ZERO;
}

/// SIP over TLS on the TLS listener (RFC 3261 §26.2, the `sips` scheme's transport): the
/// first bytes after the handshake are sniffed as on TCP; OPTIONS gets 200 on the same
/// connection, a CRLF ping its pong, and MSRP over TLS still works beside it.
#[test]
fn options_over_tls_get_200() {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    use rustls::pki_types::pem::PemObject;
    use std::io::{Read, Write};
    // A CA and a leaf for 127.0.0.1, made here.
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().unwrap();
    let ca_pem = p.self_signed(&ca_key).unwrap().pem();
    let issuer = Issuer::new(p, ca_key);
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = leaf.signed_by(&key, &issuer).unwrap();
    let cert_path = temp_path("sip-tls-cert.pem");
    let key_path = temp_path("sip-tls-key.pem");
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    let relay = start(1, |c| {
        c.listen_tls = vec!["127.0.0.1:0".parse().unwrap()];
        c.tls.cert = Some(cert_path);
        c.tls.key = Some(key_path);
    });
    let tls_addr = relay.handle.as_ref().unwrap().tls_addrs()[0];
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap())
        .unwrap();
    let cfg = std::sync::Arc::new(
        rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth(),
    );
    let mut c = Client::connect_tls(tls_addr, "msrps://x", cfg, "127.0.0.1");
    // Any sent-by: over TLS the response goes back on the connection (§18.2.2).
    let me: std::net::SocketAddr = "127.0.0.1:5061".parse().unwrap();
    let read_response = |c: &mut Client| -> String {
        let mut buf = Vec::new();
        let mut b = [0u8; 4096];
        loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end + 4]).into_owned();
                let cl: usize = header(&head, "Content-Length")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                if buf.len() >= end + 4 + cl {
                    return String::from_utf8_lossy(&buf[..end + 4 + cl]).into_owned();
                }
            }
            let n = c.stream.read(&mut b).expect("a response over TLS");
            assert!(n > 0, "closed: {:?}", String::from_utf8_lossy(&buf));
            buf.extend_from_slice(&b[..n]);
        }
    };
    c.stream
        .write_all(request("OPTIONS", "TLS", me, 1, "").as_bytes())
        .unwrap();
    let r = read_response(&mut c);
    assert_eq!(status(&r), 200, "{r}");
    assert!(header(&r, "Via").unwrap().starts_with("SIP/2.0/TLS"), "{r}");
    c.stream
        .write_all(request("MESSAGE", "TLS", me, 2, "").as_bytes())
        .unwrap();
    assert_eq!(status(&read_response(&mut c)), 404);
    c.stream.write_all(b"\r\n\r\n").unwrap();
    let mut pong = [0u8; 2];
    c.stream.read_exact(&mut pong).unwrap();
    assert_eq!(&pong, b"\r\n");
    relay.settle("TLS SIP", |s| s.sip_messages_in == 2 && s.sip_pings == 1);
    msrp_roundtrip(&relay, 9);
}
