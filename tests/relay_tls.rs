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

/// R1 presents a certificate that verifies at R2 but names another host than the one
/// in the From-Path R1 forwards with: R2 answers 403 and the sender gets a REPORT.
#[test]
fn relay_certificate_not_covering_the_from_path_host_gets_403() {
    let ca = Ca::new();
    let ca_file = write("mtls-ca.pem", &ca.pem);
    let (c1, k1) = ca.leaf(&["relay1.example.com"], false);
    let (c1, k1) = (
        write("mtls-r1-cert.pem", &c1),
        write("mtls-r1-key.pem", &k1),
    );
    let r1 = Relay::start(1, Driver::Auto, |c| {
        c.tls.cert = Some(c1);
        c.tls.key = Some(k1);
        c.tls.ca = Some(ca_file.clone());
    });
    let (r2, tls_port) = {
        let (c2, k2) = ca.leaf(&["127.0.0.1"], false);
        let (c2, k2) = (
            write("mtls-r2-cert.pem", &c2),
            write("mtls-r2-key.pem", &k2),
        );
        let r2 = Relay::start(1, Driver::Auto, |c| {
            c.listen_tls = vec!["127.0.0.1:0".parse().unwrap()];
            c.tls.cert = Some(c2);
            c.tls.key = Some(k2);
            c.tls.ca = Some(ca_file.clone());
        });
        let port = r2.handle.as_ref().unwrap().tls_addrs()[0].port();
        (r2, port)
    };
    let r2_tls = std::net::SocketAddr::from(([127, 0, 0, 1], tls_port));
    let mut a = r1.connect(&peer_uri("alice", 1111));
    let mut b = Client::connect_tls(
        r2_tls,
        "msrps://127.0.0.1:2222/bob;tcp",
        client_config(&ca),
        "127.0.0.1",
    );
    let ra = a.auth(&r1.uri());
    let rb = b.auth(&format!("msrps://127.0.0.1:{tls_port};tcp"));
    let tid = a.send(
        &format!("{ra} {rb} {}", b.me),
        &[("Message-ID", "mtls0001"), ("Byte-Range", "1-2/2")],
        Some(b"hi"),
        Flag::Complete,
    );
    let ok = a.read_frame();
    assert_eq!((ok.tid(), ok.kind()), (tid.as_str(), "200"));
    let rep = a.read_frame();
    assert_eq!(rep.kind(), "REPORT", "{}", rep.head);
    assert_eq!(rep.header("Message-ID"), Some("mtls0001"));
    let status = rep.header("Status").unwrap();
    assert!(status.starts_with("000 403"), "{status}");
    let r = b.try_read_frame(Duration::from_millis(300));
    assert!(r.is_err(), "B must get nothing: {:?}", r.map(|f| f.head));
    assert_eq!(r2.counters().deliveries_same_core, 0);
}

/// New certificate files and a reload (what SIGHUP does): new handshakes get the new
/// certificate, a connection made before keeps working.
#[test]
fn reload_swaps_the_certificate_for_new_handshakes_only() {
    let old_ca = Ca::new();
    let new_ca = Ca::new();
    let (cert, key) = old_ca.leaf(&["127.0.0.1"], false);
    let cert_file = write("reload-cert.pem", &cert);
    let key_file = write("reload-key.pem", &key);
    let relay = Relay::start(1, Driver::Auto, |c| {
        c.listen_tls = vec!["127.0.0.1:0".parse().unwrap()];
        c.tls.cert = Some(cert_file.clone());
        c.tls.key = Some(key_file.clone());
    });
    let addr = relay.handle.as_ref().unwrap().tls_addrs()[0];
    let relay_uri = format!("msrps://127.0.0.1:{};tcp", addr.port());
    let mut a = Client::connect_tls(
        addr,
        "msrps://127.0.0.1:1111/alice;tcp",
        client_config(&old_ca),
        "127.0.0.1",
    );
    let ra = a.auth(&relay_uri);
    // A broken file is refused and the old certificate stays.
    std::fs::write(&cert_file, "not a certificate").unwrap();
    assert!(relay.handle.as_ref().unwrap().reload_tls().is_err());
    let (cert, key) = new_ca.leaf(&["127.0.0.1"], false);
    std::fs::write(&cert_file, cert).unwrap();
    std::fs::write(&key_file, key).unwrap();
    relay.handle.as_ref().unwrap().reload_tls().unwrap();
    // The reload reaches the workers through their mesh channel; wait for it.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let mut b = loop {
        let tcp = std::net::TcpStream::connect(addr).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let mut conn = rustls::ClientConnection::new(client_config(&new_ca), name).unwrap();
        let mut sock = tcp;
        let ok = (|| {
            while conn.is_handshaking() {
                conn.complete_io(&mut sock)?;
            }
            Ok::<(), std::io::Error>(())
        })();
        if ok.is_ok() {
            break Client::connect_tls(
                addr,
                "msrps://127.0.0.1:2222/bob;tcp",
                client_config(&new_ca),
                "127.0.0.1",
            );
        }
        assert!(
            std::time::Instant::now() < deadline,
            "new certificate not served"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let rb = b.auth(&relay_uri);
    // The old connection still carries frames both ways.
    a.send(
        &format!("{ra} {rb} {}", b.me),
        &[("Message-ID", "reload01")],
        Some(b"still here"),
        Flag::Complete,
    );
    assert_eq!(a.read_frame().kind(), "200");
    let got = b.read_frame();
    assert_eq!(got.body, b"still here");
    b.respond(&got, 200);
    // A client that trusts only the old CA is now refused.
    let tcp = std::net::TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut conn = rustls::ClientConnection::new(client_config(&old_ca), name).unwrap();
    let mut sock = tcp;
    let mut res = Ok((0, 0));
    while conn.is_handshaking() && res.is_ok() {
        res = conn.complete_io(&mut sock);
    }
    assert!(res.is_err(), "old certificate still served");
}

/// `msrpd --listen-tls` without a usable certificate refuses to start, saying why.
#[test]
fn listen_tls_without_usable_certificate_refuses_to_start() {
    let bad = write("startup-bad.pem", "not a certificate");
    let runs: [(&[&str], &str); 3] = [
        (
            &["--listen-tls", "127.0.0.1:0"],
            "--listen-tls needs --cert",
        ),
        (
            &[
                "--listen-tls",
                "127.0.0.1:0",
                "--cert",
                "/nonexistent/c.pem",
                "--key",
                "/nonexistent/k.pem",
            ],
            "cannot read /nonexistent/c.pem",
        ),
        (
            &[
                "--listen-tls",
                "127.0.0.1:0",
                "--cert",
                bad.to_str().unwrap(),
                "--key",
                bad.to_str().unwrap(),
            ],
            "no certificate found",
        ),
    ];
    for (args, want) in runs {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_msrpd"))
            .args(["--no-pin", "--cores", "1", "--admin", "off"])
            .args(args)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{args:?}: {err}");
    }
}

/// `msrpd-bench --tls` against a TLS listener: with `--ca`, with `--insecure`, and with
/// its connections made from other source addresses (`--local-addrs`).
#[test]
fn bench_runs_over_tls() {
    let ca = Ca::new();
    let ca_file = write("bench-ca.pem", &ca.pem);
    let (relay, tls_port) = tls_relay(2, Driver::Auto, "bench", &ca, &["127.0.0.1"]);
    for trust in [
        &["--ca", ca_file.to_str().unwrap()][..],
        &["--insecure"][..],
        &["--insecure", "--local-addrs", "127.0.0.2,127.0.0.3"][..],
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_msrpd-bench"))
            .args(["--relay", &format!("127.0.0.1:{tls_port}"), "--tls"])
            .args(trust)
            .args([
                "--pairs",
                "4",
                "--threads",
                "1",
                "--size",
                "3000",
                "--chunk",
                "1024",
            ])
            .args([
                "--duration",
                "0.5",
                "--warmup",
                "0",
                "--drain",
                "2",
                "--json",
            ])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{trust:?}: {text} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        assert!(v["delivered"].as_u64().unwrap() > 0, "{text}");
        assert_eq!(v["errors"].as_u64(), Some(0), "{text}");
        assert_eq!(v["lost"].as_u64(), Some(0), "{text}");
    }
    // Without a trust anchor for the test CA the handshake fails and the bench says so.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_msrpd-bench"))
        .args(["--relay", &format!("127.0.0.1:{tls_port}"), "--tls"])
        .args([
            "--pairs",
            "1",
            "--duration",
            "0.2",
            "--warmup",
            "0",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    drop(relay);
}

/// The relay closes TLS connections from outside as it does plain ones (shutdown(2)
/// on the socket under the TLS stream): a first To-Path URI that is not ours drops
/// the connection (RFC 4976 §6.2). With a TLS listener, an msrps: URI is ours only
/// with a TLS port: msrps with our TCP port, or msrp with our TLS port, is foreign.
#[test]
fn foreign_first_uri_closes_a_tls_connection() {
    let ca = Ca::new();
    let cfg = client_config(&ca);
    let (relay, tls_port) = tls_relay(1, Driver::Auto, "foreign", &ca, &["127.0.0.1"]);
    let tcp_port = relay.addr.port();
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], tls_port));
    let mut b = Client::connect_tls(
        addr,
        "msrps://127.0.0.1:2222/bob;tcp",
        cfg.clone(),
        "127.0.0.1",
    );
    let rb = b.auth(&format!("msrps://127.0.0.1:{tls_port};tcp"));
    let sid = &rb[rb.rfind('/').unwrap() + 1..rb.len() - 4];
    for uri in [
        format!("msrps://127.0.0.1:{tcp_port}/{sid};tcp"),
        format!("msrp://127.0.0.1:{tls_port}/{sid};tcp"),
        "msrps://127.0.0.9:1/x;tcp".to_string(),
    ] {
        let mut c = Client::connect_tls(
            addr,
            "msrps://127.0.0.1:3333/carol;tcp",
            cfg.clone(),
            "127.0.0.1",
        );
        c.send(
            &format!("{uri} {}", b.me),
            &[("Message-ID", "foreign1")],
            Some(b"x"),
            Flag::Complete,
        );
        let r = c.try_read_frame(Duration::from_secs(3));
        assert!(
            r.as_ref().err().map(String::as_str) == Some("connection closed"),
            "{uri}: {:?}",
            r.map(|f| f.head)
        );
    }
    // B's connection is untouched and its session works.
    let mut a = relay.connect(&peer_uri("alice", 1111));
    let ra = a.auth(&relay.uri());
    a.send(
        &format!("{ra} {rb} {}", b.me),
        &[("Message-ID", "foreign2")],
        Some(b"ok"),
        Flag::Complete,
    );
    assert_eq!(a.read_frame().kind(), "200");
    assert_eq!(b.read_frame().body, b"ok");
}

/// `msrpd --listen-tls` alone (no TCP listener) hands out msrps: URIs, and SIGHUP
/// reloads the certificate: new handshakes get the new one, an open connection stays.
#[test]
fn msrpd_process_tls_only_reloads_certificate_on_sighup() {
    use std::io::Read;
    let old_ca = Ca::new();
    let new_ca = Ca::new();
    let (cert, key) = old_ca.leaf(&["127.0.0.1"], false);
    let cert_file = write("hup-cert.pem", &cert);
    let key_file = write("hup-key.pem", &key);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_msrpd"))
        .args(["--listen-tls", "127.0.0.1:0", "--no-pin", "--cores", "1"])
        .args(["--admin", "off"])
        .args(["--log-level", "warn", "--cert", cert_file.to_str().unwrap()])
        .args(["--key", key_file.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut out = child.stdout.take().unwrap();
    let child = Kill(child);
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while !line.ends_with(b"\n") && out.read(&mut byte).unwrap_or(0) == 1 {
        line.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&line).into_owned();
    assert!(text.contains("(TLS)"), "{text}");
    let addr: std::net::SocketAddr = text.split_whitespace().nth(3).unwrap().parse().unwrap();
    let relay_uri = format!("msrps://127.0.0.1:{};tcp", addr.port());
    let mut a = Client::connect_tls(
        addr,
        "msrps://127.0.0.1:1111/alice;tcp",
        client_config(&old_ca),
        "127.0.0.1",
    );
    let (cert, key) = new_ca.leaf(&["127.0.0.1"], false);
    std::fs::write(&cert_file, cert).unwrap();
    std::fs::write(&key_file, key).unwrap();
    // SAFETY: sending a signal to our own child process.
    unsafe {
        libc::kill(child.0.id() as i32, libc::SIGHUP);
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let tcp = std::net::TcpStream::connect(addr).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let mut conn = rustls::ClientConnection::new(client_config(&new_ca), name).unwrap();
        let mut sock = tcp;
        let mut res = Ok((0, 0));
        while conn.is_handshaking() && res.is_ok() {
            res = conn.complete_io(&mut sock);
        }
        if res.is_ok() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "new certificate not served after SIGHUP"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The connection made before the reload still works.
    let ra = a.auth(&relay_uri);
    assert!(
        ra.starts_with(&format!("msrps://127.0.0.1:{}/", addr.port())),
        "{ra}"
    );
}

/// A TLS handshake is bounded: a peer that connects to the TLS port and says nothing
/// (or stalls mid-handshake) is disconnected after the handshake timeout, by shutdown(2)
/// from outside; the listener keeps serving.
#[test]
fn silent_peer_on_the_tls_port_is_dropped_after_the_handshake_timeout() {
    use std::io::{Read, Write};
    let ca = Ca::new();
    let (cert, key) = ca.leaf(&["127.0.0.1"], false);
    let (cert, key) = (
        write("silent-cert.pem", &cert),
        write("silent-key.pem", &key),
    );
    for driver in DRIVERS {
        let relay = Relay::start(1, driver, |c| {
            c.listen_tls = vec!["127.0.0.1:0".parse().unwrap()];
            c.tls.cert = Some(cert.clone());
            c.tls.key = Some(key.clone());
            c.tls_handshake_timeout = Duration::from_millis(300);
        });
        let addr = relay.handle.as_ref().unwrap().tls_addrs()[0];
        let mut silent = std::net::TcpStream::connect(addr).unwrap();
        // Half a ClientHello record header, then nothing.
        let mut stalled = std::net::TcpStream::connect(addr).unwrap();
        stalled.write_all(&[0x16, 0x03, 0x01]).unwrap();
        let t0 = std::time::Instant::now();
        for s in [&mut silent, &mut stalled] {
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut b = [0u8; 64];
            let n = s.read(&mut b);
            assert!(matches!(n, Ok(0)) || n.is_err(), "{driver:?}: {n:?}");
        }
        let took = t0.elapsed();
        assert!(
            took >= Duration::from_millis(250) && took < Duration::from_secs(3),
            "{driver:?}: closed after {took:?}"
        );
        let mut c = Client::connect_tls(
            addr,
            "msrps://127.0.0.1:1111/alice;tcp",
            client_config(&ca),
            "127.0.0.1",
        );
        c.auth(&format!("msrps://127.0.0.1:{};tcp", addr.port()));
    }
}

/// A rustls client configuration trusting `ca` and presenting `cert`/`key` (PEM).
fn client_config_with_cert(ca: &Ca, cert: &str, key: &str) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from_pem_slice(ca.pem.as_bytes()).unwrap())
        .unwrap();
    let chain = vec![rustls::pki_types::CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()];
    let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_client_auth_cert(chain, key)
    .unwrap();
    Arc::new(cfg)
}

/// How the client's TLS handshake went.
fn handshake_kind(c: &Client) -> Option<rustls::HandshakeKind> {
    match &c.stream {
        Stream::Tls(s) => s.conn.handshake_kind(),
        Stream::Tcp(_) => None,
    }
}

/// One rustls ClientConfig (with its default in-memory resumption store) connecting
/// twice to one TLS listener: the second handshake resumes, because the relay keeps one
/// ServerConfig (and ticket key) per TLS context instead of one per connection. A relay
/// identified by its client certificate is still identified on a resumed connection.
#[test]
fn second_connection_from_one_client_config_is_resumed() {
    use rustls::HandshakeKind::{Full, Resumed};
    let ca = Ca::new();
    let ca_file = write("resume-ca.pem", &ca.pem);
    for driver in DRIVERS {
        let (cert, key) = ca.leaf(&["127.0.0.1"], false);
        let cert = write("resume-cert.pem", &cert);
        let key = write("resume-key.pem", &key);
        let relay = Relay::start(2, driver, |c| {
            c.listen_tls = vec!["127.0.0.1:0".parse().unwrap()];
            c.tls.cert = Some(cert);
            c.tls.key = Some(key);
            c.tls.ca = Some(ca_file.clone());
        });
        let addr = relay.handle.as_ref().unwrap().tls_addrs()[0];
        let relay_uri = format!("msrps://127.0.0.1:{};tcp", addr.port());

        // An ordinary client: full handshake, then resumed.
        let cfg = client_config(&ca);
        let mut a = Client::connect_tls(
            addr,
            "msrps://127.0.0.1:1111/a;tcp",
            cfg.clone(),
            "127.0.0.1",
        );
        assert_eq!(handshake_kind(&a), Some(Full), "{driver:?}");
        // Reading the answer takes in the session tickets sent after the handshake.
        let ra = a.auth(&relay_uri);
        let mut b = Client::connect_tls(
            addr,
            "msrps://127.0.0.1:2222/b;tcp",
            cfg.clone(),
            "127.0.0.1",
        );
        assert_eq!(handshake_kind(&b), Some(Resumed), "{driver:?}");
        let rb = b.auth(&relay_uri);
        b.send(
            &format!("{rb} {ra} {}", a.me),
            &[("Message-ID", "resume01")],
            Some(b"resumed"),
            Flag::Complete,
        );
        assert_eq!(b.read_frame().kind(), "200");
        let got = a.read_frame();
        assert_eq!(got.body, b"resumed");
        a.respond(&got, 200);

        // A relay with a certificate for relay1.example.com speaks for that host only:
        // a From-Path on 127.0.0.1 gets 403, on the full and on the resumed connection.
        let (rc, rk) = ca.leaf(&["relay1.example.com"], false);
        let rcfg = client_config_with_cert(&ca, &rc, &rk);
        for want in [Full, Resumed] {
            let mut r =
                Client::connect_tls(addr, "msrps://127.0.0.1:9/r;tcp", rcfg.clone(), "127.0.0.1");
            assert_eq!(handshake_kind(&r), Some(want), "{driver:?}");
            let tid = r.send(
                &format!("{ra} {}", a.me),
                &[("Message-ID", "resume02")],
                Some(b"x"),
                Flag::Complete,
            );
            let resp = r.read_frame();
            assert_eq!((resp.tid(), resp.kind()), (tid.as_str(), "403"), "{want:?}");
            assert!(
                resp.head.contains("does not match the peer certificate"),
                "{want:?}: {}",
                resp.head
            );
        }
    }
}

/// Runs `openssl ARGS` in `dir`; `false` (and says why) when openssl is not installed.
fn openssl(dir: &std::path::Path, args: &[&str]) {
    // .ci/run installs openssl: a test of the README's recipes that skips itself would
    // prove nothing.
    let o = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("openssl is needed for the README recipes test: {e}"));
    assert!(
        o.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// `openssl req -x509` with a new P-256 key, as README.md's recipes run it.
fn req_x509(dir: &std::path::Path, subj: &str, days: &str, extra: &[&str], key: &str, cert: &str) {
    let mut args = vec![
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-days",
        days,
        "-subj",
        subj,
    ];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["-keyout", key, "-out", cert]);
    openssl(dir, &args);
}

/// R1 (no certificate, trusting `ca`) sends to R2 (serving `cert`/`key`) over msrps:
/// `true` when the SEND reaches R2's client, `false` when R1 reports 408 (the
/// handshake failed). With `mutual`, R1 presents `cert`/`key` too.
fn chain_over_tls(
    tag: &str,
    ca: &std::path::Path,
    cert: &std::path::Path,
    key: &std::path::Path,
    mutual: bool,
) -> bool {
    let r1 = Relay::start(1, Driver::Auto, |c| {
        c.tls.ca = Some(ca.to_path_buf());
        if mutual {
            c.tls.cert = Some(cert.to_path_buf());
            c.tls.key = Some(key.to_path_buf());
        }
        c.relay.txn_timeout = Duration::from_millis(500);
    });
    let r2 = Relay::start(1, Driver::Auto, |c| {
        c.listen_tls = vec!["127.0.0.1:0".parse().unwrap()];
        c.tls.cert = Some(cert.to_path_buf());
        c.tls.key = Some(key.to_path_buf());
        c.tls.ca = Some(ca.to_path_buf());
    });
    let r2_tls = r2.handle.as_ref().unwrap().tls_addrs()[0];
    let mut a = r1.connect(&peer_uri("alice", 1111));
    let mut b = r2.connect(&peer_uri("bob", 2222));
    let ra = a.auth(&r1.uri());
    let rb = b.auth(&r2.uri());
    // R2's session URI, reached on its TLS port.
    let rb_tls = rb.replace("msrp://", "msrps://").replace(
        &format!(":{}/", r2.addr.port()),
        &format!(":{}/", r2_tls.port()),
    );
    let mid = format!("recipe{tag}");
    a.send(
        &format!("{ra} {rb_tls} {}", b.me),
        &[("Message-ID", mid.as_str()), ("Byte-Range", "1-2/2")],
        Some(b"hi"),
        Flag::Complete,
    );
    assert_eq!(a.read_frame().kind(), "200", "{tag}");
    match b.try_read_frame(Duration::from_secs(3)) {
        Ok(got) => {
            assert_eq!(got.body, b"hi", "{tag}");
            true
        }
        Err(_) => {
            let rep = a.read_frame();
            assert_eq!(rep.kind(), "REPORT", "{tag}: {}", rep.head);
            assert!(
                rep.header("Status").unwrap().starts_with("000 408"),
                "{tag}"
            );
            false
        }
    }
}

/// README's recipes, run with the real openssl: a self-signed leaf with
/// basicConstraints CA:FALSE works between relays (and as its own trust anchor), and so
/// does a leaf signed by a small CA, both ways (mutual TLS); the `openssl req -x509`
/// default (CA:TRUE) is refused by the peer (webpki's CaUsedAsEndEntity), and the relay
/// serving it is warned at load.
#[test]
fn openssl_recipes_from_the_readme_work_between_relays() {
    let dir = temp_path("openssl-recipes");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let p = |n: &str| dir.join(n);
    let san = "subjectAltName=DNS:relay.example.com,IP:127.0.0.1";
    // 1. The self-signed one-liner of README.md (with 127.0.0.1 for the test).
    req_x509(
        &dir,
        "/CN=relay.example.com",
        "825",
        &[
            "-addext",
            san,
            "-addext",
            "basicConstraints=critical,CA:FALSE",
            "-addext",
            "extendedKeyUsage=serverAuth,clientAuth",
        ],
        "self-key.pem",
        "self-cert.pem",
    );
    let files = |cert: &str, key: &str| msrpd::server::tls::TlsFiles {
        cert: Some(p(cert)),
        key: Some(p(key)),
        ca: None,
    };
    let ctx =
        msrpd::server::tls::TlsContext::load(&files("self-cert.pem", "self-key.pem")).unwrap();
    assert!(ctx.warnings().is_empty(), "{:?}", ctx.warnings());
    assert!(chain_over_tls(
        "self",
        &p("self-cert.pem"),
        &p("self-cert.pem"),
        &p("self-key.pem"),
        false
    ));

    // 2. The `openssl req -x509` default: a CA certificate. Warned, and refused.
    req_x509(
        &dir,
        "/CN=relay.example.com",
        "825",
        &["-addext", san],
        "ca-true-key.pem",
        "ca-true-cert.pem",
    );
    let ctx = msrpd::server::tls::TlsContext::load(&files("ca-true-cert.pem", "ca-true-key.pem"))
        .unwrap();
    assert_eq!(ctx.warnings().len(), 1);
    assert!(
        ctx.warnings()[0].contains("CaUsedAsEndEntity"),
        "{:?}",
        ctx.warnings()
    );
    assert!(!chain_over_tls(
        "catrue",
        &p("ca-true-cert.pem"),
        &p("ca-true-cert.pem"),
        &p("ca-true-key.pem"),
        false
    ));

    // 3. A small CA and a leaf it signs (README.md), used both ways.
    req_x509(&dir, "/CN=msrpd relays CA", "3650", &[], "ca.key", "ca.pem");
    openssl(
        &dir,
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            "/CN=relay.example.com",
            "-keyout",
            "key.pem",
            "-out",
            "relay.csr",
        ],
    );
    std::fs::write(
        p("relay.ext"),
        format!(
            "{san}\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n\
             extendedKeyUsage=serverAuth,clientAuth\n"
        ),
    )
    .unwrap();
    openssl(
        &dir,
        &[
            "x509",
            "-req",
            "-in",
            "relay.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "825",
            "-extfile",
            "relay.ext",
            "-out",
            "cert.pem",
        ],
    );
    let ctx = msrpd::server::tls::TlsContext::load(&files("cert.pem", "key.pem")).unwrap();
    assert!(ctx.warnings().is_empty(), "{:?}", ctx.warnings());
    assert!(chain_over_tls(
        "ca",
        &p("ca.pem"),
        &p("cert.pem"),
        &p("key.pem"),
        true
    ));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A self-signed certificate for 127.0.0.1, a CA certificate (basicConstraints CA:TRUE)
/// or an end entity; returns the PEM files.
fn self_signed_files(tag: &str, ca: bool) -> (PathBuf, PathBuf, String) {
    let mut p = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    p.is_ca = if ca {
        IsCa::Ca(BasicConstraints::Unconstrained)
    } else {
        IsCa::ExplicitNoCa
    };
    let key = KeyPair::generate().unwrap();
    let cert = p.self_signed(&key).unwrap().pem();
    let c = write(&format!("{tag}-cert.pem"), &cert);
    let k = write(&format!("{tag}-key.pem"), &key.serialize_pem());
    (c, k, cert)
}

/// A next hop refuses our client certificate with an alert right after a TLS 1.3
/// handshake (R1's certificate is a CA certificate: CaUsedAsEndEntity at R2), while our
/// writer is sending on the new connection (an AUTH and a 256 KiB SEND, pipelined). The
/// connection closes, the sender is answered, and the worker lives on: the next client
/// is served. With monoio-rustls's split stream the read half wrote its alert through
/// the buffer the writer task was using and the worker panicked (`buffer ref expected`)
/// about one round in two or three; 20 rounds on each driver here.
#[test]
fn peer_alert_while_writing_closes_the_connection_not_the_worker() {
    let (c1, k1, pem1) = self_signed_files("alert-r1", true);
    let (c2, k2, pem2) = self_signed_files("alert-r2", false);
    let both = write("alert-both.pem", &format!("{pem1}{pem2}"));
    let body = vec![b'x'; 256 * 1024];
    for driver in [Driver::Auto, Driver::Legacy] {
        let r1 = Relay::start(1, driver, |c| {
            c.tls.ca = Some(both.clone());
            c.tls.cert = Some(c1.clone());
            c.tls.key = Some(k1.clone());
            c.relay.txn_timeout = Duration::from_millis(500);
        });
        let r2 = Relay::start(1, driver, |c| {
            c.listen_tls = vec!["127.0.0.1:0".parse().unwrap()];
            c.tls.cert = Some(c2.clone());
            c.tls.key = Some(k2.clone());
            c.tls.ca = Some(both.clone());
        });
        let port = r2.handle.as_ref().unwrap().tls_addrs()[0].port();
        for round in 0..20 {
            let mut a = r1.connect(&peer_uri(&format!("alice{round}"), 1111));
            let ra = a.auth(&r1.uri());
            let hop = format!("{ra} msrps://127.0.0.1:{port}/x;tcp");
            let tid = a.tid();
            a.send_raw(
                format!(
                    "MSRP {tid} AUTH\r\nTo-Path: {hop}\r\nFrom-Path: {}\r\n-------{tid}$\r\n",
                    a.me
                )
                .as_bytes(),
            );
            let mid = format!("alert{round}");
            let len = body.len();
            a.send(
                &hop,
                &[
                    ("Message-ID", mid.as_str()),
                    ("Byte-Range", &format!("1-{len}/{len}")),
                ],
                Some(&body),
                Flag::Complete,
            );
            // Whatever else comes back, the AUTH is answered (the hop failed).
            let deadline = std::time::Instant::now() + Duration::from_secs(8);
            loop {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                let f = a.try_read_frame(left).unwrap_or_else(|e| {
                    panic!("{driver:?} round {round}: no answer to the AUTH (worker gone?): {e}")
                });
                if f.tid() == tid {
                    assert!(f.is_response(), "{driver:?} round {round}: {}", f.head);
                    break;
                }
            }
        }
        // The worker still serves: a new client is authenticated.
        let mut b = r1.connect(&peer_uri("bob", 2222));
        b.auth(&r1.uri());
        // R2 refused every handshake: no frame reached it.
        assert_eq!(r2.counters().frames_in, 0, "{driver:?}");
    }
}
