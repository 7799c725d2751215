//! Outbound SIP on real sockets: `POST /v1/sip/requests` on the admin API, the
//! request's way out (UDP, TCP for a request over 1300 bytes, an outbound proxy, a
//! name resolved off the worker), digest retries (RFC 3261 §22.2, MD5 and SHA-256,
//! 401 and 407) checked against a digest computed here, and the `sip.request.done`
//! event: the final status, or 408 after timer F (64*T1, with T1 = 50 ms) and 503 for
//! a refused connection. sipp (Debian `sip-tester`) answers as a UAS over UDP and
//! TCP. Every socket has a timeout; every sipp run is bounded (`-m 1`, `-timeout`).

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::http::{Sse, request};
use common::*;
use msrpd::admin::AdminConfig;
use msrpd::server::{Driver, ServerConfig};

const WAIT: Duration = Duration::from_secs(15);
const T1: Duration = Duration::from_millis(50);

fn tune(c: &mut ServerConfig) {
    c.admin = Some(AdminConfig::new("127.0.0.1:0".parse().unwrap()));
    c.sip_t1 = T1;
    c.sip_t2 = Duration::from_millis(400);
    c.sip_t4 = Duration::from_millis(200);
}

fn start(workers: usize, more: impl FnOnce(&mut ServerConfig)) -> (Relay, SocketAddr, Sse) {
    let relay = Relay::start(workers, Driver::Auto, |c| {
        tune(c);
        more(c);
    });
    let api = admin_addr(&relay);
    let sse = Sse::open(api, "/v1/events?type=sip.request", &[]);
    (relay, api, sse)
}

/// POSTs a request; returns its id (asserts 202).
fn post(api: SocketAddr, body: serde_json::Value) -> String {
    let r = request(
        api,
        "POST",
        "/v1/sip/requests",
        &[("Content-Type", "application/json")],
        body.to_string().as_bytes(),
    );
    assert_eq!(r.status, 202, "{}", r.text());
    r.json()["request_id"].as_str().unwrap().to_string()
}

/// The `sip.request.done` event of request `id`.
fn done(sse: &mut Sse, id: &str) -> serde_json::Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "no sip.request.done for {id}");
        let (e, _) = sse.wait_for("sip.request.done", left);
        if e.data["request_id"] == id {
            return e.data;
        }
    }
}

fn udp_peer() -> (UdpSocket, u16) {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let port = s.local_addr().unwrap().port();
    (s, port)
}

/// One datagram and where it came from.
fn recv(s: &UdpSocket) -> (String, SocketAddr) {
    let mut b = vec![0u8; 65536];
    let (n, from) = s.recv_from(&mut b).expect("a SIP request");
    (String::from_utf8_lossy(&b[..n]).into_owned(), from)
}

fn hdr<'a>(m: &'a str, name: &str) -> Option<&'a str> {
    m.split("\r\n").take_while(|l| !l.is_empty()).find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

fn request_line(m: &str) -> &str {
    m.split("\r\n").next().unwrap()
}

/// A response to request `req` (its Vias, From, To with a tag, Call-ID, CSeq).
fn response(req: &str, code: u16, reason: &str, extra: &str) -> String {
    let mut out = format!("SIP/2.0 {code} {reason}\r\n");
    for l in req.split("\r\n").take_while(|l| !l.is_empty()).skip(1) {
        let n = l.split(':').next().unwrap().trim().to_ascii_lowercase();
        if n == "to" {
            out.push_str(&format!("{l};tag=peer\r\n"));
        } else if ["via", "from", "call-id", "cseq"].contains(&n.as_str()) {
            out.push_str(l);
            out.push_str("\r\n");
        }
    }
    out.push_str(extra);
    out.push_str("Content-Length: 0\r\n\r\n");
    out
}

fn credentials(text: &str) -> std::path::PathBuf {
    let p = temp_path("sip-credentials");
    std::fs::write(&p, text).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    p
}

fn param<'a>(v: &'a str, name: &str) -> Option<&'a str> {
    let v = v.strip_prefix("Digest ").unwrap_or(v);
    v.split(',')
        .filter_map(|p| p.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.trim_matches('"'))
}

/// Checks `Authorization` value `auth` against the digest computed here (RFC 2617
/// §3.2.2.1 with qop=auth; `sha256` for RFC 8760).
fn check_digest(
    auth: &str,
    method: &str,
    user: &str,
    realm: &str,
    pass: &str,
    nonce: &str,
    sha256: bool,
) {
    use sha2::Digest;
    let h = |s: String| {
        if sha256 {
            hex::encode(sha2::Sha256::digest(s.as_bytes()))
        } else {
            hex::encode(md5::Md5::digest(s.as_bytes()))
        }
    };
    assert_eq!(param(auth, "username"), Some(user), "{auth}");
    assert_eq!(param(auth, "realm"), Some(realm), "{auth}");
    assert_eq!(param(auth, "nonce"), Some(nonce), "{auth}");
    assert_eq!(param(auth, "qop"), Some("auth"), "{auth}");
    assert_eq!(
        param(auth, "algorithm"),
        Some(if sha256 { "SHA-256" } else { "MD5" })
    );
    let uri = param(auth, "uri").unwrap();
    let cnonce = param(auth, "cnonce").unwrap();
    let nc = param(auth, "nc").unwrap();
    let ha1 = h(format!("{user}:{realm}:{pass}"));
    let ha2 = h(format!("{method}:{uri}"));
    let want = h(format!("{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}"));
    assert_eq!(param(auth, "response"), Some(want.as_str()), "{auth}");
}

/// 401 (or 407) with `alg`, the retry checked and answered 200; then a request
/// challenged twice gets the second challenge as its outcome.
fn digest_case(code: u16, sha256: bool) {
    let creds = credentials("alice:test.realm:s3cret:x\n");
    let (_relay, api, mut sse) = start(1, |c| c.sip_credentials = Some(creds));
    let (peer, port) = udp_peer();
    let (chal, auth) = if code == 401 {
        ("WWW-Authenticate", "Authorization")
    } else {
        ("Proxy-Authenticate", "Proxy-Authorization")
    };
    let alg = if sha256 { "SHA-256" } else { "MD5" };
    let challenge = format!(
        "{chal}: Digest realm=\"test.realm\", nonce=\"n0nce\", qop=\"auth\", algorithm={alg}\r\n"
    );
    let ruri = format!("sip:bob@127.0.0.1:{port}");
    for twice in [false, true] {
        let id = post(
            api,
            serde_json::json!({"method": "MESSAGE", "ruri": ruri, "body": "hi"}),
        );
        let (first, from) = recv(&peer);
        assert!(hdr(&first, auth).is_none());
        peer.send_to(
            response(&first, code, "Challenge", &challenge).as_bytes(),
            from,
        )
        .unwrap();
        let (retry, from) = loop {
            let (m, f) = recv(&peer);
            if hdr(&m, auth).is_some() {
                break (m, f);
            }
        };
        assert_eq!(hdr(&retry, "Call-ID"), hdr(&first, "Call-ID"));
        assert_eq!(hdr(&retry, "CSeq"), Some("2 MESSAGE"));
        assert_ne!(hdr(&retry, "Via"), hdr(&first, "Via"), "a new branch");
        check_digest(
            hdr(&retry, auth).unwrap(),
            "MESSAGE",
            "alice",
            "test.realm",
            "s3cret:x",
            "n0nce",
            sha256,
        );
        let answer = if twice {
            response(&retry, code, "Challenge", &challenge)
        } else {
            response(&retry, 200, "OK", "")
        };
        peer.send_to(answer.as_bytes(), from).unwrap();
        let d = done(&mut sse, &id);
        assert_eq!(d["status"], if twice { code } else { 200 }, "{d}");
        assert_eq!(d["transport"], "UDP");
        assert_eq!(d["peer"], format!("127.0.0.1:{port}"));
    }
}

#[test]
fn a_401_md5_challenge_is_answered_once() {
    digest_case(401, false);
}

#[test]
fn a_401_sha256_challenge_is_answered_once() {
    digest_case(401, true);
}

#[test]
fn a_407_challenge_is_answered_with_proxy_authorization() {
    digest_case(407, false);
}

#[test]
fn without_credentials_the_challenge_is_the_outcome() {
    let (_relay, api, mut sse) = start(1, |_| {});
    let (peer, port) = udp_peer();
    let id = post(
        api,
        serde_json::json!({"method": "OPTIONS", "ruri": format!("sip:127.0.0.1:{port}")}),
    );
    let (req, from) = recv(&peer);
    let chal = "WWW-Authenticate: Digest realm=\"x\", nonce=\"n\"\r\n";
    peer.send_to(response(&req, 401, "Unauthorized", chal).as_bytes(), from)
        .unwrap();
    let d = done(&mut sse, &id);
    assert_eq!(d["status"], 401, "{d}");
    assert_eq!(d["reason"], "Unauthorized");
}

#[test]
fn an_outbound_proxy_gets_the_request_with_its_route() {
    let (proxy, pport) = udp_peer();
    let (_relay, api, mut sse) = start(1, |c| {
        c.sip_outbound_proxy = Some(format!("sip:127.0.0.1:{pport}"))
    });
    // The Request-URI's host is never resolved: the proxy is the next hop.
    let ruri = "sip:bob@example.invalid";
    let id = post(api, serde_json::json!({"method": "OPTIONS", "ruri": ruri}));
    let (req, from) = recv(&proxy);
    assert_eq!(request_line(&req), format!("OPTIONS {ruri} SIP/2.0"));
    assert_eq!(
        hdr(&req, "Route"),
        Some(format!("<sip:127.0.0.1:{pport};lr>").as_str())
    );
    let via = hdr(&req, "Via").unwrap();
    assert!(
        via.starts_with("SIP/2.0/UDP 127.0.0.1:") && via.contains(";rport"),
        "{via}"
    );
    assert!(via.contains("branch=z9hG4bK"), "{via}");
    assert_eq!(hdr(&req, "Max-Forwards"), Some("70"));
    proxy
        .send_to(response(&req, 200, "OK", "").as_bytes(), from)
        .unwrap();
    let d = done(&mut sse, &id);
    assert_eq!(d["status"], 200, "{d}");
    assert_eq!(d["ruri"], ruri);
    assert_eq!(d["method"], "OPTIONS");
    // A proxy given in the request itself wins over the configured one.
    let (other, oport) = udp_peer();
    let id = post(
        api,
        serde_json::json!({"method": "OPTIONS", "ruri": ruri, "proxy": format!("sip:127.0.0.1:{oport};lr")}),
    );
    let (req, from) = recv(&other);
    assert_eq!(
        hdr(&req, "Route"),
        Some(format!("<sip:127.0.0.1:{oport};lr>").as_str())
    );
    other
        .send_to(response(&req, 202, "Accepted", "").as_bytes(), from)
        .unwrap();
    assert_eq!(done(&mut sse, &id)["status"], 202);
}

#[test]
fn a_name_is_resolved_off_the_worker() {
    let (_relay, api, mut sse) = start(1, |_| {});
    let (peer, port) = udp_peer();
    let id = post(
        api,
        serde_json::json!({"method": "MESSAGE", "ruri": format!("sip:bob@localhost:{port}"), "body": "x", "content_type": "text/plain"}),
    );
    let (req, from) = recv(&peer);
    assert_eq!(hdr(&req, "Content-Type"), Some("text/plain"));
    peer.send_to(response(&req, 200, "OK", "").as_bytes(), from)
        .unwrap();
    let d = done(&mut sse, &id);
    assert_eq!(d["status"], 200, "{d}");
    assert_eq!(d["peer"], format!("127.0.0.1:{port}"));
}

#[test]
fn nobody_answering_is_a_408_after_timer_f() {
    let (_relay, api, mut sse) = start(1, |_| {});
    let (peer, port) = udp_peer();
    let t0 = Instant::now();
    let id = post(
        api,
        serde_json::json!({"method": "OPTIONS", "ruri": format!("sip:127.0.0.1:{port}")}),
    );
    let d = done(&mut sse, &id);
    let took = t0.elapsed();
    assert_eq!(d["status"], 408, "{d}");
    assert!(d["reason"].as_str().unwrap().contains("timed out"), "{d}");
    assert!(took >= 64 * T1, "408 after {took:?}, before timer F");
    // Timer E retransmitted it meanwhile (§17.1.2.2).
    let mut n = 0;
    peer.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut b = [0u8; 4096];
    while peer.recv_from(&mut b).is_ok() {
        n += 1;
    }
    assert!(n >= 3, "{n} transmissions");
}

#[test]
fn a_refused_tcp_connection_is_a_503_with_the_reason() {
    let (_relay, api, mut sse) = start(1, |_| {});
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let id = post(
        api,
        serde_json::json!({"method": "OPTIONS", "ruri": format!("sip:127.0.0.1:{port};transport=tcp")}),
    );
    let d = done(&mut sse, &id);
    assert_eq!(d["status"], 503, "{d}");
    assert_eq!(d["transport"], "TCP");
    let reason = d["reason"].as_str().unwrap();
    assert!(
        reason.contains("transport error") && reason.contains("refused"),
        "{d}"
    );
    // An unresolvable name is a 503 too, saying so.
    let id = post(
        api,
        serde_json::json!({"method": "OPTIONS", "ruri": "sip:nobody.invalid"}),
    );
    let d = done(&mut sse, &id);
    assert_eq!(d["status"], 503, "{d}");
    assert!(
        d["reason"]
            .as_str()
            .unwrap()
            .contains("cannot resolve nobody.invalid"),
        "{d}"
    );
}

#[test]
fn a_big_message_for_udp_goes_over_tcp() {
    let (_relay, api, mut sse) = start(1, |_| {});
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let udp = UdpSocket::bind(("127.0.0.1", port)).unwrap();
    udp.set_nonblocking(true).unwrap();
    let body = "b".repeat(2000);
    let id = post(
        api,
        serde_json::json!({"method": "MESSAGE", "ruri": format!("sip:bob@127.0.0.1:{port}"), "body": body}),
    );
    l.set_nonblocking(false).unwrap();
    let (mut s, _) = l.accept().unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = Vec::new();
    let req = loop {
        let mut b = [0u8; 4096];
        let n = s.read(&mut b).unwrap();
        assert!(n > 0, "closed");
        buf.extend_from_slice(&b[..n]);
        let t = String::from_utf8_lossy(&buf).into_owned();
        if let Some(end) = t.find("\r\n\r\n") {
            let cl: usize = hdr(&t, "Content-Length").unwrap().parse().unwrap();
            if buf.len() >= end + 4 + cl {
                break t;
            }
        }
    };
    assert!(
        hdr(&req, "Via").unwrap().starts_with("SIP/2.0/TCP "),
        "{req}"
    );
    assert_eq!(hdr(&req, "Content-Length"), Some("2000"));
    s.write_all(response(&req, 200, "OK", "").as_bytes())
        .unwrap();
    let d = done(&mut sse, &id);
    assert_eq!(d["status"], 200, "{d}");
    assert_eq!(d["transport"], "TCP");
    let mut b = [0u8; 100];
    assert!(udp.recv_from(&mut b).is_err(), "nothing came over UDP");
}

#[test]
fn bad_api_input_gets_400_with_the_reason() {
    let (_relay, api, _sse) = start(1, |_| {});
    for (body, want) in [
        ("not json", "bad JSON body"),
        (r#"{"ruri": "sip:a@b"}"#, "missing field `method`"),
        (
            r#"{"method": "INVITE", "ruri": "sip:a@b"}"#,
            "use OPTIONS or MESSAGE",
        ),
        (
            r#"{"method": "OPTIONS", "ruri": "http://a"}"#,
            "is not sip or sips",
        ),
        (
            r#"{"method": "OPTIONS", "ruri": "sip:a@b;transport=sctp"}"#,
            "not supported",
        ),
        (
            r#"{"method": "OPTIONS", "ruri": "sip:a@b", "from": "alice"}"#,
            "bad from",
        ),
        (
            r#"{"method": "OPTIONS", "ruri": "sip:a@b", "to": "<sip:b@c>\r\nX: y"}"#,
            "control character",
        ),
        (
            r#"{"method": "OPTIONS", "ruri": "sip:a@b", "content_type": "plain"}"#,
            "bad content_type",
        ),
        (
            r#"{"method": "OPTIONS", "ruri": "sip:a@b", "proxy": "mailto:x"}"#,
            "bad proxy",
        ),
        (
            r#"{"method": "OPTIONS", "ruri": "sip:a@b", "extra": 1}"#,
            "unknown field",
        ),
    ] {
        let r = request(api, "POST", "/v1/sip/requests", &[], body.as_bytes());
        assert_eq!(r.status, 400, "{body}: {}", r.text());
        let e = r.json()["error"].as_str().unwrap().to_string();
        assert!(e.contains(want), "{body}: {e}");
    }
    let big =
        serde_json::json!({"method": "MESSAGE", "ruri": "sip:a@b", "body": "x".repeat(40_000)});
    let r = request(
        api,
        "POST",
        "/v1/sip/requests",
        &[],
        big.to_string().as_bytes(),
    );
    assert_eq!(r.status, 400, "{}", r.text());
}

/// Runs the binary with `args`; it must exit (within 10 s) with an error naming `want`.
fn refused(args: &[&str], want: &str) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_msrpd"))
        .args(["--listen", "127.0.0.1:0", "--admin", "off", "--cores", "1"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{args:?} was not refused");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success(), "{args:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(want), "{args:?}: {err}");
}

#[test]
fn bad_sip_flags_are_refused_at_start() {
    refused(
        &["--sip-t1-ms", "0"],
        "sip-t1-ms must be between 1 and 10000",
    );
    refused(
        &["--sip-t2-ms", "60001"],
        "sip-t2-ms must be between 1 and 60000",
    );
    refused(
        &["--sip-t4-ms", "0"],
        "sip-t4-ms must be between 1 and 60000",
    );
    refused(
        &["--sip-t1-ms", "600", "--sip-t2-ms", "500"],
        "must be at least sip-t1-ms",
    );
    refused(
        &["--sip-outbound-proxy", "http://proxy"],
        "bad --sip-outbound-proxy",
    );
    refused(
        &["--sip-credentials", "/nonexistent/creds"],
        "cannot read SIP credentials file",
    );
    let bad = credentials("alice:realm:pw\nbroken line\n");
    refused(&["--sip-credentials", bad.to_str().unwrap()], "line 2");
}

// ---- sipp as the UAS ---------------------------------------------------------------

fn uas_scenario(method: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="msrpd outbound {method} UAS">
  <recv request="{method}"/>
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]>
  </send>
</scenario>
"#
    )
}

fn have_sipp() -> bool {
    have_tool("sipp", "-v", "sip-tester")
}

/// A port free on 127.0.0.1 for both UDP and TCP.
fn free_port() -> u16 {
    for _ in 0..50 {
        let t = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = t.local_addr().unwrap().port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port");
}

/// sipp answering one `method` over `transport` (`u1`, `t1`) on `port`, started.
fn sipp_uas(method: &str, transport: &str, port: u16) -> std::process::Child {
    let dir = scratch_dir().join(format!("sipp-uas-{method}-{transport}"));
    std::fs::create_dir_all(&dir).unwrap();
    let sf = dir.join("uas.xml");
    std::fs::write(&sf, uas_scenario(method)).unwrap();
    Command::new("sipp")
        .current_dir(&dir)
        .args(["-sf", sf.to_str().unwrap()])
        .args(["-t", transport, "-i", "127.0.0.1", "-p", &port.to_string()])
        .args(["-m", "1", "-timeout", "20s", "-timeout_error", "-nostdin"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sipp runs")
}

fn wait_exit(mut child: std::process::Child, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(25);
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            assert!(st.success(), "sipp {what}: {st:?}");
            return;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("sipp {what} did not end");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sipp_answers_options_and_message_over_udp_and_tcp() {
    if !have_sipp() {
        return;
    }
    // Two workers: a UDP response may reach the other core's socket and is handed over.
    let (_relay, api, mut sse) = start(2, |_| {});
    for (method, transport, param) in [
        ("OPTIONS", "u1", ""),
        ("MESSAGE", "u1", ""),
        ("OPTIONS", "t1", ";transport=tcp"),
        ("MESSAGE", "t1", ";transport=tcp"),
    ] {
        let port = free_port();
        let child = sipp_uas(method, transport, port);
        // Let sipp bind (UDP would be retransmitted anyway; TCP would be refused).
        std::thread::sleep(Duration::from_millis(700));
        let ruri = format!("sip:sipp@127.0.0.1:{port}{param}");
        let id = post(
            api,
            serde_json::json!({"method": method, "ruri": ruri, "body": "hello sipp"}),
        );
        let d = done(&mut sse, &id);
        assert_eq!(d["status"], 200, "{method} over {transport}: {d}");
        let want = if transport == "t1" { "TCP" } else { "UDP" };
        assert_eq!(d["transport"], want, "{d}");
        wait_exit(child, &format!("{method} over {transport}"));
    }
}
