//! MSRP over TLS (RFC 4975 §14, RFC 4976 §6.1, §6.3) with certificates made in the
//! test: AUTH and exchange over TLS (`msrps:` Use-Path), a TCP client talking to a TLS
//! client through one relay, two relays chained over TLS with mutual certificates, and
//! next-hop certificates the relay must refuse (untrusted, wrong host, expired).

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use msrpd::codec::Flag;
use msrpd::server::Driver;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

/// A certificate authority made for one test.
struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

impl Ca {
    fn new() -> Ca {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = KeyPair::generate().unwrap();
        let pem = p.self_signed(&key).unwrap().pem();
        Ca {
            issuer: Issuer::new(p, key),
            pem,
        }
    }

    /// A leaf for `names` (host names or addresses), valid now unless `expired`.
    fn leaf(&self, names: &[&str], expired: bool) -> (String, String) {
        let mut p = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .unwrap();
        if expired {
            p.not_before = rcgen::date_time_ymd(2020, 1, 1);
            p.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let key = KeyPair::generate().unwrap();
        let cert = p.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

/// Writes PEM text to a temporary file.
fn write(name: &str, pem: &str) -> PathBuf {
    let p = temp_path(name);
    std::fs::write(&p, pem).unwrap();
    p
}

/// A rustls client configuration trusting `ca` only.
fn client_config(ca: &Ca) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    let der = rustls::pki_types::CertificateDer::from_pem_slice(ca.pem.as_bytes()).unwrap();
    roots.add(der).unwrap();
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    Arc::new(cfg)
}

use rustls::pki_types::pem::PemObject;

/// A relay with one TCP and one TLS listener on 127.0.0.1, serving `cert`/`key`.
fn tls_relay(workers: usize, driver: Driver, tag: &str, ca: &Ca, names: &[&str]) -> (Relay, u16) {
    let (cert, key) = ca.leaf(names, false);
    let cert = write(&format!("{tag}-cert.pem"), &cert);
    let key = write(&format!("{tag}-key.pem"), &key);
    let relay = Relay::start(workers, driver, |c| {
        c.listen_tls = vec!["127.0.0.1:0".parse().unwrap()];
        c.tls.cert = Some(cert);
        c.tls.key = Some(key);
    });
    let port = relay.handle.as_ref().unwrap().tls_addrs()[0].port();
    (relay, port)
}

#[test]
fn auth_and_exchange_over_tls_both_drivers() {
    let ca = Ca::new();
    let cfg = client_config(&ca);
    for driver in DRIVERS {
        let (relay, tls_port) = tls_relay(2, driver, "x", &ca, &["127.0.0.1", "localhost"]);
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], tls_port));
        let relay_uri = format!("msrps://127.0.0.1:{tls_port};tcp");
        let mut a = Client::connect_tls(
            addr,
            "msrps://127.0.0.1:1111/alice;tcp",
            cfg.clone(),
            "127.0.0.1",
        );
        let mut b = Client::connect_tls(
            addr,
            "msrps://127.0.0.1:2222/bob;tcp",
            cfg.clone(),
            "localhost",
        );
        let ra = a.auth(&relay_uri);
        let rb = b.auth(&relay_uri);
        for u in [&ra, &rb] {
            assert!(
                u.starts_with(&format!("msrps://127.0.0.1:{tls_port}/")) && u.ends_with(";tcp"),
                "TLS clients get msrps: URIs with the TLS port: {u}"
            );
        }
        let tid = a.send(
            &format!("{ra} {rb} {}", b.me),
            &[("Message-ID", "tls00001"), ("Byte-Range", "1-5/5")],
            Some(b"hello"),
            Flag::Complete,
        );
        let ok = a.read_frame();
        assert_eq!((ok.tid(), ok.kind()), (tid.as_str(), "200"));
        let got = b.read_frame();
        assert_eq!(got.kind(), "SEND");
        assert_eq!(got.body, b"hello");
        assert_eq!(
            got.header("From-Path"),
            Some(format!("{rb} {ra} {}", a.me).as_str())
        );
        b.respond(&got, 200);
        // A large body crosses in many TLS records.
        let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        b.send(
            &format!("{rb} {ra} {}", a.me),
            &[("Message-ID", "tls00002"), ("Failure-Report", "no")],
            Some(&big),
            Flag::Complete,
        );
        let got = a.read_frame();
        assert_eq!(got.body, big);
        assert_eq!(got.header("Message-ID"), Some("tls00002"));
        assert_eq!(relay.counters().auth_ok, 2);
    }
}

#[test]
fn tcp_client_and_tls_client_talk_through_the_relay() {
    let ca = Ca::new();
    let (relay, tls_port) = tls_relay(2, Driver::Auto, "bridge", &ca, &["127.0.0.1"]);
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], tls_port));
    let mut a = relay.connect(&peer_uri("alice", 1111));
    let mut b = Client::connect_tls(
        addr,
        "msrps://127.0.0.1:2222/bob;tcp",
        client_config(&ca),
        "127.0.0.1",
    );
    let ra = a.auth(&relay.uri());
    let rb = b.auth(&format!("msrps://127.0.0.1:{tls_port};tcp"));
    assert!(
        ra.starts_with(&format!("msrp://127.0.0.1:{}/", relay.addr.port())),
        "{ra}"
    );
    assert!(
        rb.starts_with(&format!("msrps://127.0.0.1:{tls_port}/")),
        "{rb}"
    );
    a.send(
        &format!("{ra} {rb} {}", b.me),
        &[("Message-ID", "bridge01")],
        Some(b"over tcp"),
        Flag::Complete,
    );
    assert_eq!(a.read_frame().kind(), "200");
    let got = b.read_frame();
    assert_eq!(got.body, b"over tcp");
    assert_eq!(got.header("To-Path"), Some(b.me.as_str()));
    b.respond(&got, 200);
    b.send(
        &format!("{rb} {ra} {}", a.me),
        &[("Message-ID", "bridge02")],
        Some(b"over tls"),
        Flag::Complete,
    );
    assert_eq!(b.read_frame().kind(), "200");
    let got = a.read_frame();
    assert_eq!(got.body, b"over tls");
    assert_eq!(
        got.header("From-Path"),
        Some(format!("{ra} {rb} {}", b.me).as_str())
    );
    a.respond(&got, 200);
}

/// A -(TCP)- R1 -(TLS, both sides with certificates)- R2 -(TLS)- B, and back.
#[test]
fn two_relays_chained_over_tls() {
    let ca = Ca::new();
    let ca_file = write("chain-ca.pem", &ca.pem);
    let (c1, k1) = ca.leaf(&["127.0.0.1"], false);
    let (c1, k1) = (
        write("chain-r1-cert.pem", &c1),
        write("chain-r1-key.pem", &k1),
    );
    let (c2, k2) = ca.leaf(&["127.0.0.1"], false);
    let (c2, k2) = (
        write("chain-r2-cert.pem", &c2),
        write("chain-r2-key.pem", &k2),
    );
    let r1 = Relay::start(2, Driver::IoUring, |c| {
        c.listen_tls = vec!["127.0.0.1:0".parse().unwrap()];
        c.tls.cert = Some(c1);
        c.tls.key = Some(k1);
        c.tls.ca = Some(ca_file.clone());
    });
    let r2 = Relay::start(2, Driver::Legacy, |c| {
        c.listen_tls = vec!["127.0.0.1:0".parse().unwrap()];
        c.tls.cert = Some(c2);
        c.tls.key = Some(k2);
        c.tls.ca = Some(ca_file.clone());
    });
    let r2_tls = r2.handle.as_ref().unwrap().tls_addrs()[0];
    let mut a = r1.connect(&peer_uri("alice", 1111));
    let mut b = Client::connect_tls(
        r2_tls,
        "msrps://127.0.0.1:2222/bob;tcp",
        client_config(&ca),
        "127.0.0.1",
    );
    let ra = a.auth(&r1.uri());
    let rb = b.auth(&format!("msrps://127.0.0.1:{};tcp", r2_tls.port()));
    let tid = a.send(
        &format!("{ra} {rb} {}", b.me),
        &[("Message-ID", "chain001"), ("Byte-Range", "1-5/5")],
        Some(b"hello"),
        Flag::Complete,
    );
    let ok = a.read_frame();
    assert_eq!((ok.tid(), ok.kind()), (tid.as_str(), "200"));
    let got = b.read_frame();
    assert_eq!(got.body, b"hello");
    assert_eq!(
        got.header("From-Path"),
        Some(format!("{rb} {ra} {}", a.me).as_str())
    );
    b.respond(&got, 200);
    // Back: R2 reaches R1's msrp: URI over plain TCP.
    b.send(
        &format!("{rb} {ra} {}", a.me),
        &[("Message-ID", "chain002")],
        Some(b"back"),
        Flag::Complete,
    );
    assert_eq!(b.read_frame().kind(), "200");
    let got = a.read_frame();
    assert_eq!(got.body, b"back");
    a.respond(&got, 200);
}

/// R1 trusts only the test CA; the next hop R2 serves a certificate R1 must refuse.
/// The sender gets its 200 and then a REPORT with 408 (the hop cannot be reached).
#[test]
fn next_hop_certificates_untrusted_wrong_host_expired_are_refused() {
    let ca = Ca::new();
    let other = Ca::new();
    let ca_file = write("refuse-ca.pem", &ca.pem);
    let cases: [(&str, &Ca, &[&str], bool); 3] = [
        ("untrusted", &other, &["127.0.0.1"], false),
        ("wronghost", &ca, &["wrong.example.com"], false),
        ("expired", &ca, &["127.0.0.1"], true),
    ];
    let r1 = Relay::start(1, Driver::Auto, |c| {
        c.tls.ca = Some(ca_file.clone());
        c.relay.txn_timeout = Duration::from_millis(500);
    });
    let mut a = r1.connect(&peer_uri("alice", 1111));
    let ra = a.auth(&r1.uri());
    for (what, issuer, names, expired) in cases {
        let (cert, key) = issuer.leaf(names, expired);
        let cert = write(&format!("refuse-{what}-cert.pem"), &cert);
        let key = write(&format!("refuse-{what}-key.pem"), &key);
        let r2 = Relay::start(1, Driver::Auto, |c| {
            c.listen_tls = vec!["127.0.0.1:0".parse().unwrap()];
            c.tls.cert = Some(cert);
            c.tls.key = Some(key);
        });
        let port = r2.handle.as_ref().unwrap().tls_addrs()[0].port();
        let mid = format!("refuse{what}");
        let tid = a.send(
            &format!("{ra} msrps://127.0.0.1:{port}/x;tcp {}", a.me),
            &[("Message-ID", mid.as_str()), ("Byte-Range", "1-2/2")],
            Some(b"hi"),
            Flag::Complete,
        );
        let ok = a.read_frame();
        assert_eq!((ok.tid(), ok.kind()), (tid.as_str(), "200"), "{what}");
        let rep = a.read_frame();
        assert_eq!(rep.kind(), "REPORT", "{what}: {}", rep.head);
        assert_eq!(rep.header("To-Path"), Some(a.me.as_str()));
        assert_eq!(rep.header("Message-ID"), Some(mid.as_str()));
        let status = rep.header("Status").unwrap();
        assert!(status.starts_with("000 408"), "{what}: {status}");
        // Nothing reached R2's side: it never saw a request.
        assert_eq!(r2.counters().frames_in, 0, "{what}");
    }
}
