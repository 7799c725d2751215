//! AUTH on the wire (RFC 4976 §5.1, §6.3, §9.1): a real relay on 127.0.0.1:0, raw MSRP
//! bytes, and digest responses computed here from the RFC 2617 formulas (qop=auth),
//! independently of the relay's own digest code.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use md5::Md5;
use msrpd::server::Driver;
use sha2::{Digest, Sha256};

const REALM: &str = "test.realm";

/// `H(s)` in lowercase hex (RFC 2617 §3.2.1; RFC 7616 §3.4.2 for SHA-256).
fn h(alg: &str, s: &str) -> String {
    match alg {
        "SHA-256" => hex::encode(Sha256::digest(s.as_bytes())),
        "MD5" => hex::encode(Md5::digest(s.as_bytes())),
        _ => panic!("algorithm {alg}"),
    }
}

/// What a client puts in its Authorization header (RFC 2617 §3.2.2, RFC 4976 §9.1).
struct Creds<'a> {
    alg: &'a str,
    user: &'a str,
    password: &'a str,
    nonce: &'a str,
    nc: u32,
    cnonce: &'a str,
    /// The digest-uri: the rightmost To-Path URI of the AUTH.
    uri: &'a str,
    /// Whether the `uri` parameter is sent at all.
    send_uri: bool,
    /// The `opaque` returned, if any (RFC 2617 §3.2.2).
    opaque: Option<&'a str>,
}

impl Creds<'_> {
    fn kd(&self, a2: &str) -> String {
        let ha1 = h(
            self.alg,
            &format!("{}:{REALM}:{}", self.user, self.password),
        );
        let ha2 = h(self.alg, a2);
        h(
            self.alg,
            &format!(
                "{ha1}:{}:{:08x}:{}:auth:{ha2}",
                self.nonce, self.nc, self.cnonce
            ),
        )
    }

    /// request-digest with A2 = "AUTH" ":" digest-uri.
    fn response(&self) -> String {
        self.kd(&format!("AUTH:{}", self.uri))
    }

    /// rspauth of Authentication-Info: A2 = ":" digest-uri (RFC 2617 §3.2.3).
    fn rspauth(&self) -> String {
        self.kd(&format!(":{}", self.uri))
    }

    fn header(&self) -> String {
        let uri = if self.send_uri {
            format!(", uri=\"{}\"", self.uri)
        } else {
            String::new()
        };
        let opaque = match self.opaque {
            Some(o) => format!(", opaque=\"{o}\""),
            None => String::new(),
        };
        format!(
            "Digest username=\"{}\", realm=\"{REALM}\", nonce=\"{}\"{uri}, response=\"{}\", \
             algorithm={}, cnonce=\"{}\", nc={:08x}, qop=auth{opaque}",
            self.user,
            self.nonce,
            self.response(),
            self.alg,
            self.cnonce,
            self.nc
        )
    }
}

fn is_lower_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
}

/// The value of `name=...` in a digest header, quotes removed.
fn param<'a>(v: &'a str, name: &str) -> &'a str {
    let v = v.strip_prefix("Digest ").unwrap_or(v);
    v.split(", ")
        .filter_map(|p| p.split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.trim_matches('"'))
        .unwrap_or_else(|| panic!("no {name} in {v}"))
}

/// Checks a 401 exactly (two challenges, SHA-256 then MD5, one nonce, one opaque,
/// qop="auth", stale=true when `stale`) and returns the nonce.
fn challenge(r: &Frame, c: &Client, relay_uri: &str, stale: bool) -> String {
    let ch = r.headers("WWW-Authenticate");
    assert_eq!(ch.len(), 2, "{}", r.head);
    let nonce = param(ch[0], "nonce").to_string();
    assert!(is_lower_hex(&nonce, 56), "nonce {nonce}");
    let opaque = param(ch[0], "opaque").to_string();
    assert!(is_lower_hex(&opaque, 32), "opaque {opaque}");
    let s = if stale { ", stale=true" } else { "" };
    let expect = |alg: &str| {
        format!(
            "Digest realm=\"{REALM}\", nonce=\"{nonce}\", opaque=\"{opaque}\", qop=\"auth\", \
             algorithm={alg}{s}"
        )
    };
    assert_eq!(
        r.head,
        format!(
            "MSRP {} 401 Unauthorized\r\nTo-Path: {}\r\nFrom-Path: {relay_uri}\r\n\
             WWW-Authenticate: {}\r\nWWW-Authenticate: {}\r\n",
            r.tid(),
            c.me,
            expect("SHA-256"),
            expect("MD5"),
        )
    );
    nonce
}

/// `msrp://127.0.0.1:PORT/<28 lowercase hex>;tcp`.
fn check_use_path(u: &str, port: u16) {
    let sid = u
        .strip_prefix(&format!("msrp://127.0.0.1:{port}/"))
        .and_then(|r| r.strip_suffix(";tcp"))
        .unwrap_or_else(|| panic!("Use-Path form: {u}"));
    assert!(is_lower_hex(sid, 28), "session id {sid}");
}

/// Checks a 200 to an AUTH exactly; returns its Use-Path. `creds` gives the expected
/// Authentication-Info (digest mode) or says there is none (protected mode).
fn accepted(
    r: &Frame,
    c: &Client,
    relay_uri: &str,
    port: u16,
    exp: u32,
    creds: Option<&Creds>,
) -> String {
    assert_eq!(r.kind(), "200", "{}", r.head);
    let up = r.header("Use-Path").expect("Use-Path").to_string();
    check_use_path(&up, port);
    let mut want = format!(
        "MSRP {} 200 OK\r\nTo-Path: {}\r\nFrom-Path: {relay_uri}\r\nUse-Path: {up}\r\nExpires: {exp}\r\n",
        r.tid(),
        c.me
    );
    if let Some(cr) = creds {
        let ai = r
            .header("Authentication-Info")
            .expect("Authentication-Info");
        let next = param(ai, "nextnonce");
        assert!(is_lower_hex(next, 56), "nextnonce {next}");
        want.push_str(&format!(
            "Authentication-Info: nextnonce=\"{next}\", rspauth=\"{}\", cnonce=\"{}\", nc={:08x}, qop=auth\r\n",
            cr.rspauth(),
            cr.cnonce,
            cr.nc
        ));
    }
    assert_eq!(r.head, want);
    up
}

/// A users file with `users` in REALM, written with the crate's `set_password`.
fn users_file(name: &str, users: &[(&str, &str)]) -> std::path::PathBuf {
    let p = temp_path(name);
    let _ = std::fs::remove_file(&p);
    for (u, pw) in users {
        msrpd::server::users_file::set_password(&p, REALM, u, pw).unwrap();
    }
    p
}

fn digest_relay(
    driver: Driver,
    file: &Path,
    tune: impl FnOnce(&mut msrpd::server::ServerConfig),
) -> Relay {
    let file = file.to_path_buf();
    Relay::start(1, driver, move |cfg| {
        cfg.users_file = Some(file);
        cfg.relay.realm = REALM.into();
        tune(cfg);
    })
}

/// AUTH without credentials; returns the challenge's nonce.
fn get_nonce(c: &mut Client, relay_uri: &str) -> String {
    get_challenge(c, relay_uri).0
}

/// AUTH without credentials; returns the challenge's nonce and opaque.
fn get_challenge(c: &mut Client, relay_uri: &str) -> (String, String) {
    let r = c.auth_with(relay_uri, &[]);
    let nonce = challenge(&r, c, relay_uri, false);
    let opaque = param(r.header("WWW-Authenticate").unwrap(), "opaque").to_string();
    (nonce, opaque)
}

#[test]
fn protected_mode_loopback_auth_needs_no_challenge() {
    for driver in DRIVERS {
        let relay = Relay::start(1, driver, |_| {});
        let mut a = relay.connect(&peer_uri("alice", 1111));
        let r = a.auth_with(&relay.uri(), &[]);
        accepted(&r, &a, &relay.uri(), relay.addr.port(), 600, None);
        assert!(r.header("WWW-Authenticate").is_none());
        assert_eq!(relay.counters().auth_ok, 1);
    }
}

#[test]
fn digest_auth_challenge_then_success_both_algorithms() {
    let file = users_file("digest-ok", &[("alice", "wonderland"), ("bob", "builder")]);
    for driver in DRIVERS {
        let relay = digest_relay(driver, &file, |_| {});
        let ru = relay.uri();
        let port = relay.addr.port();
        // SHA-256 with the uri parameter.
        let mut a = relay.connect(&peer_uri("alice", 1111));
        let nonce = get_nonce(&mut a, &ru);
        let cr = Creds {
            alg: "SHA-256",
            user: "alice",
            password: "wonderland",
            nonce: &nonce,
            nc: 1,
            cnonce: "0a4f113b",
            uri: &ru,
            send_uri: true,
            opaque: None,
        };
        let r = a.auth_with(&ru, &[("Authorization", &cr.header())]);
        let ua = accepted(&r, &a, &ru, port, 600, Some(&cr));
        // MD5 without the uri parameter: the rightmost To-Path URI is the digest-uri.
        let mut b = relay.connect(&peer_uri("bob", 2222));
        let nonce = get_nonce(&mut b, &ru);
        let cr = Creds {
            alg: "MD5",
            user: "bob",
            password: "builder",
            nonce: &nonce,
            nc: 1,
            cnonce: "c0ffee00",
            uri: &ru,
            send_uri: false,
            opaque: None,
        };
        let r = b.auth_with(&ru, &[("Authorization", &cr.header())]);
        let ub = accepted(&r, &b, &ru, port, 600, Some(&cr));
        assert_ne!(ua, ub);
        let c = relay.counters();
        assert_eq!((c.auth_ok, c.auth_failed), (2, 0));
    }
    let _ = std::fs::remove_file(&file);
}

/// What AG Projects' msrplib (Blink, Sylk) does: it needs an `opaque` in the challenge
/// and returns it, and sends no `uri` (RFC 4976 §7's digest-response has none; the
/// digest-uri is the rightmost To-Path URI, RFC 4976 §9.1). The opaque stays valid with
/// the nextnonce of Authentication-Info (RFC 2617 §3.2.3).
#[test]
fn opaque_returned_and_no_uri_authenticates_msrplib_style() {
    let file = users_file("digest-opaque", &[("alice", "wonderland")]);
    for driver in DRIVERS {
        let relay = digest_relay(driver, &file, |_| {});
        let ru = relay.uri();
        let port = relay.addr.port();
        let mut a = relay.connect(&peer_uri("alice", 1111));
        let (nonce, opaque) = get_challenge(&mut a, &ru);
        for alg in ["MD5", "SHA-256"] {
            let cr = Creds {
                alg,
                user: "alice",
                password: "wonderland",
                nonce: &nonce,
                nc: if alg == "MD5" { 1 } else { 2 },
                cnonce: "b1a7b1a7",
                uri: &ru,
                send_uri: false,
                opaque: Some(&opaque),
            };
            let r = a.auth_with(&ru, &[("Authorization", &cr.header())]);
            accepted(&r, &a, &ru, port, 600, Some(&cr));
            // The next AUTH on a new connection, with the nextnonce and the same opaque.
            let next = param(r.header("Authentication-Info").unwrap(), "nextnonce").to_string();
            let mut b = relay.connect(&peer_uri("alice", 1112));
            let cr = Creds {
                nonce: &next,
                nc: 1,
                ..cr
            };
            let r = b.auth_with(&ru, &[("Authorization", &cr.header())]);
            accepted(&r, &b, &ru, port, 600, Some(&cr));
        }
        // A second connection's challenge carries the same opaque (no per-client state).
        let mut c = relay.connect(&peer_uri("alice", 1113));
        assert_eq!(get_challenge(&mut c, &ru).1, opaque);
        let cnt = relay.counters();
        assert_eq!((cnt.auth_ok, cnt.auth_failed), (4, 0));
    }
    let _ = std::fs::remove_file(&file);
}

/// An opaque that is not the challenge's fails the AUTH (a 401 with a fresh challenge,
/// counted as a failure); one left out does not (RFC 4976 §9.1 does not require it).
#[test]
fn wrong_opaque_fails_and_omitted_opaque_passes() {
    let file = users_file("digest-bad-opaque", &[("alice", "wonderland")]);
    for driver in DRIVERS {
        let relay = digest_relay(driver, &file, |_| {});
        let ru = relay.uri();
        let mut a = relay.connect(&peer_uri("alice", 1111));
        let (nonce, opaque) = get_challenge(&mut a, &ru);
        let wrong = format!("{}0", &opaque[..opaque.len() - 1]);
        let wrong = if wrong == opaque {
            format!("{}1", &opaque[..opaque.len() - 1])
        } else {
            wrong
        };
        let cr = Creds {
            alg: "SHA-256",
            user: "alice",
            password: "wonderland",
            nonce: &nonce,
            nc: 1,
            cnonce: "0pa9e000",
            uri: &ru,
            send_uri: true,
            opaque: Some(&wrong),
        };
        let r = a.auth_with(&ru, &[("Authorization", &cr.header())]);
        let nonce = challenge(&r, &a, &ru, false);
        assert_eq!(relay.counters().auth_failed, 1);
        // The same digest without an opaque, and with no uri either, passes.
        let cr = Creds {
            nonce: &nonce,
            opaque: None,
            send_uri: false,
            ..cr
        };
        let r = a.auth_with(&ru, &[("Authorization", &cr.header())]);
        accepted(&r, &a, &ru, relay.addr.port(), 600, Some(&cr));
        let cnt = relay.counters();
        assert_eq!((cnt.auth_ok, cnt.auth_failed), (1, 1));
    }
    let _ = std::fs::remove_file(&file);
}

#[test]
fn wrong_password_gets_401_and_the_third_failure_closes_the_connection() {
    let file = users_file("digest-bad", &[("alice", "wonderland")]);
    for driver in DRIVERS {
        let relay = digest_relay(driver, &file, |_| {});
        let ru = relay.uri();
        let mut a = relay.connect(&peer_uri("alice", 1111));
        let mut nonce = get_nonce(&mut a, &ru);
        for attempt in 1..=3u32 {
            let cr = Creds {
                alg: "SHA-256",
                user: "alice",
                password: "looking-glass",
                nonce: &nonce,
                nc: 1,
                cnonce: "deadbeef",
                uri: &ru,
                send_uri: true,
                opaque: None,
            };
            let r = a.auth_with(&ru, &[("Authorization", &cr.header())]);
            if attempt < 3 {
                // A fresh challenge, not stale: a failure in RFC 4976 §6.3's sense.
                nonce = challenge(&r, &a, &ru, false);
            } else {
                assert_eq!(
                    r.head,
                    format!(
                        "MSRP {} 403 too many failed AUTH requests\r\nTo-Path: {}\r\nFrom-Path: {ru}\r\n",
                        r.tid(),
                        a.me
                    )
                );
            }
        }
        assert!(a.closed_within(Duration::from_secs(3)), "connection closed");
        assert_eq!(relay.counters().auth_failed, 3);
        assert_eq!(relay.counters().auth_ok, 0);
    }
    let _ = std::fs::remove_file(&file);
}

#[test]
fn unknown_user_and_wrong_realm_are_refused() {
    let file = users_file("digest-unknown", &[("alice", "wonderland")]);
    let relay = digest_relay(Driver::Auto, &file, |_| {});
    let ru = relay.uri();
    let mut a = relay.connect(&peer_uri("mallory", 1111));
    let nonce = get_nonce(&mut a, &ru);
    let cr = Creds {
        alg: "MD5",
        user: "mallory",
        password: "wonderland",
        nonce: &nonce,
        nc: 1,
        cnonce: "deadbeef",
        uri: &ru,
        send_uri: true,
        opaque: None,
    };
    let r = a.auth_with(&ru, &[("Authorization", &cr.header())]);
    let nonce = challenge(&r, &a, &ru, false);
    let cr = Creds {
        user: "alice",
        nonce: &nonce,
        ..cr
    };
    let other_realm = cr.header().replace(REALM, "other.realm");
    let r = a.auth_with(&ru, &[("Authorization", &other_realm)]);
    challenge(&r, &a, &ru, false);
    assert_eq!(relay.counters().auth_failed, 2);
    let _ = std::fs::remove_file(&file);
}

#[test]
fn stale_nonce_gets_401_with_stale_true() {
    let file = users_file("digest-stale", &[("alice", "wonderland")]);
    // Both drivers at once: the wait is the same.
    std::thread::scope(|s| {
        for driver in DRIVERS {
            let file = &file;
            s.spawn(move || {
                let relay = digest_relay(driver, file, |cfg| {
                    cfg.relay.nonce_lifetime = Duration::from_secs(1);
                });
                let ru = relay.uri();
                let mut a = relay.connect(&peer_uri("alice", 1111));
                let nonce = get_nonce(&mut a, &ru);
                // Nonce ages count in whole seconds: 2 s is past a 1 s lifetime.
                std::thread::sleep(Duration::from_millis(2100));
                let cr = Creds {
                    alg: "SHA-256",
                    user: "alice",
                    password: "wonderland",
                    nonce: &nonce,
                    nc: 1,
                    cnonce: "1234abcd",
                    uri: &ru,
                    send_uri: true,
                    opaque: None,
                };
                let r = a.auth_with(&ru, &[("Authorization", &cr.header())]);
                let fresh = challenge(&r, &a, &ru, true);
                assert_ne!(fresh, nonce);
                // Not a failure: the retry with the new nonce succeeds.
                let cr = Creds {
                    nonce: &fresh,
                    ..cr
                };
                let r = a.auth_with(&ru, &[("Authorization", &cr.header())]);
                accepted(&r, &a, &ru, relay.addr.port(), 600, Some(&cr));
                assert_eq!(relay.counters().auth_failed, 0);
            });
        }
    });
    let _ = std::fs::remove_file(&file);
}

#[test]
fn replayed_nonce_count_is_refused_and_reauth_refreshes() {
    let file = users_file("digest-replay", &[("alice", "wonderland")]);
    for driver in DRIVERS {
        let relay = digest_relay(driver, &file, |_| {});
        let ru = relay.uri();
        let port = relay.addr.port();
        let mut a = relay.connect(&peer_uri("alice", 1111));
        let nonce = get_nonce(&mut a, &ru);
        let cr = |nc| Creds {
            alg: "SHA-256",
            user: "alice",
            password: "wonderland",
            nonce: &nonce,
            nc,
            cnonce: "feedface",
            uri: &ru,
            send_uri: true,
            opaque: None,
        };
        let r = a.auth_with(&ru, &[("Authorization", &cr(1).header())]);
        let up = accepted(&r, &a, &ru, port, 600, Some(&cr(1)));
        // The same nonce-count again: refused with a fresh (not stale) challenge.
        let r = a.auth_with(&ru, &[("Authorization", &cr(1).header())]);
        challenge(&r, &a, &ru, false);
        // A higher count on the same nonce is fine, and a re-AUTH on the same
        // connection refreshes the same URI.
        let r = a.auth_with(&ru, &[("Authorization", &cr(2).header())]);
        assert_eq!(accepted(&r, &a, &ru, port, 600, Some(&cr(2))), up);
        // Refreshing through the session URI itself: the digest-uri is then that URI.
        let cr3 = Creds { uri: &up, ..cr(3) };
        let r = a.auth_with(&up, &[("Authorization", &cr3.header())]);
        assert_eq!(accepted(&r, &a, &up, port, 600, Some(&cr3)), up);
        // A second connection gets a URI of its own.
        let mut b = relay.connect(&peer_uri("alice2", 1112));
        let nonce2 = get_nonce(&mut b, &ru);
        let crb = Creds {
            nonce: &nonce2,
            ..cr(1)
        };
        let r = b.auth_with(&ru, &[("Authorization", &crb.header())]);
        assert_ne!(accepted(&r, &b, &ru, port, 600, Some(&crb)), up);
        let c = relay.counters();
        assert_eq!((c.auth_ok, c.auth_failed), (4, 1));
    }
    let _ = std::fs::remove_file(&file);
}

#[test]
fn expires_bounds_give_423_with_min_or_max_expires() {
    let file = users_file("digest-expires", &[("alice", "wonderland")]);
    for driver in DRIVERS {
        // Defaults (600, 60, 3600), digest mode.
        let relay = digest_relay(driver, &file, |_| {});
        let ru = relay.uri();
        let port = relay.addr.port();
        let mut a = relay.connect(&peer_uri("alice", 1111));
        let nonce = get_nonce(&mut a, &ru);
        let cr = |nc| Creds {
            alg: "MD5",
            user: "alice",
            password: "wonderland",
            nonce: &nonce,
            nc,
            cnonce: "0badcafe",
            uri: &ru,
            send_uri: true,
            opaque: None,
        };
        let cases: [(&str, &str); 2] = [("59", "Min-Expires: 60"), ("3601", "Max-Expires: 3600")];
        for (i, (asked, bound)) in cases.into_iter().enumerate() {
            let hdr = cr(i as u32 + 1).header();
            let r = a.auth_with(&ru, &[("Authorization", &hdr), ("Expires", asked)]);
            assert_eq!(
                r.head,
                format!(
                    "MSRP {} 423 Interval Out-of-Bounds\r\nTo-Path: {}\r\nFrom-Path: {ru}\r\n{bound}\r\n",
                    r.tid(),
                    a.me
                )
            );
        }
        for (nc, asked) in [(3, 60), (4, 3600), (5, 1234)] {
            let hdr = cr(nc).header();
            let e = asked.to_string();
            let r = a.auth_with(&ru, &[("Authorization", &hdr), ("Expires", &e)]);
            accepted(&r, &a, &ru, port, asked, Some(&cr(nc)));
        }
        drop(a);
        drop(relay);

        // Configured bounds, protected mode.
        let relay = Relay::start(1, driver, |cfg| {
            cfg.relay.expires_default = 15;
            cfg.relay.expires_min = 10;
            cfg.relay.expires_max = 20;
        });
        let ru = relay.uri();
        let port = relay.addr.port();
        let mut a = relay.connect(&peer_uri("alice", 1111));
        for (asked, bound) in [("9", "Min-Expires: 10"), ("21", "Max-Expires: 20")] {
            let r = a.auth_with(&ru, &[("Expires", asked)]);
            assert_eq!(
                r.head,
                format!(
                    "MSRP {} 423 Interval Out-of-Bounds\r\nTo-Path: {}\r\nFrom-Path: {ru}\r\n{bound}\r\n",
                    r.tid(),
                    a.me
                )
            );
        }
        let r = a.auth_with(&ru, &[]);
        accepted(&r, &a, &ru, port, 15, None);
        let r = a.auth_with(&ru, &[("Expires", "20")]);
        accepted(&r, &a, &ru, port, 20, None);
    }
    let _ = std::fs::remove_file(&file);
}

/// AUTHs as `user` on a fresh connection; `true` on 200.
fn try_login(relay: &Relay, user: &str, password: &str) -> bool {
    let ru = relay.uri();
    let mut c = relay.connect(&peer_uri(user, 3333));
    let nonce = get_nonce(&mut c, &ru);
    let cr = Creds {
        alg: "SHA-256",
        user,
        password,
        nonce: &nonce,
        nc: 1,
        cnonce: "5eed5eed",
        uri: &ru,
        send_uri: true,
        opaque: None,
    };
    let r = c.auth_with(&ru, &[("Authorization", &cr.header())]);
    match r.kind() {
        "200" => {
            accepted(&r, &c, &ru, relay.addr.port(), 600, Some(&cr));
            true
        }
        "401" => {
            challenge(&r, &c, &ru, false);
            false
        }
        other => panic!("unexpected {other}: {}", r.head),
    }
}

#[test]
fn reload_users_makes_a_new_user_work() {
    let file = users_file("digest-reload", &[("alice", "wonderland")]);
    for driver in DRIVERS {
        let relay = digest_relay(driver, &file, |_| {});
        assert!(try_login(&relay, "alice", "wonderland"));
        assert!(!try_login(&relay, "carol", "hunter2"));
        msrpd::server::users_file::set_password(&file, REALM, "carol", "hunter2").unwrap();
        // Not before the reload.
        assert!(!try_login(&relay, "carol", "hunter2"));
        relay.handle.as_ref().unwrap().reload_users().unwrap();
        // Returned once every worker has the new file: at once.
        assert!(
            try_login(&relay, "carol", "hunter2"),
            "carol refused after reload"
        );
        assert!(try_login(&relay, "alice", "wonderland"));
        // Put the file back for the next driver.
        let _ = std::fs::remove_file(&file);
        msrpd::server::users_file::set_password(&file, REALM, "alice", "wonderland").unwrap();
    }
    let _ = std::fs::remove_file(&file);
}

#[test]
fn passwd_command_writes_a_file_the_relay_accepts() {
    let file = temp_path("passwd-cmd");
    let _ = std::fs::remove_file(&file);
    let mut child = Command::new(env!("CARGO_BIN_EXE_msrpd"))
        .args(["passwd", "--users"])
        .arg(&file)
        .args(["--realm", REALM, "dave"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("msrpd passwd runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"correct horse\n")
        .unwrap();
    assert!(child.wait().unwrap().success());
    // htdigest lines, one per algorithm, HA1 = H(user:realm:password).
    let text = std::fs::read_to_string(&file).unwrap();
    assert_eq!(
        text,
        format!(
            "dave:{REALM}:{}\ndave:{REALM}:{}\n",
            h("MD5", &format!("dave:{REALM}:correct horse")),
            h("SHA-256", &format!("dave:{REALM}:correct horse")),
        )
    );

    let p = file.to_str().unwrap();
    let relay = RelayProcess::start(&["--users", p, "--realm", REALM, "--cores", "1"]);
    let ru = relay.uri();
    for (alg, ok) in [("MD5", true), ("SHA-256", true), ("SHA-256", false)] {
        let mut c = relay.connect(&peer_uri("dave", 4444));
        let r = c.auth_with(&ru, &[]);
        let nonce = challenge(&r, &c, &ru, false);
        let cr = Creds {
            alg,
            user: "dave",
            password: if ok { "correct horse" } else { "wrong horse" },
            nonce: &nonce,
            nc: 1,
            cnonce: "abcdef01",
            uri: &ru,
            send_uri: true,
            opaque: None,
        };
        let r = c.auth_with(&ru, &[("Authorization", &cr.header())]);
        if ok {
            accepted(&r, &c, &ru, relay.addr.port(), 600, Some(&cr));
        } else {
            challenge(&r, &c, &ru, false);
        }
    }
    drop(relay);
    let _ = std::fs::remove_file(&file);
}

#[test]
fn probation_and_idle_timeout_close_connections() {
    // Both drivers at once: the waits are the same.
    std::thread::scope(|s| {
        for driver in DRIVERS {
            s.spawn(move || {
                let relay = Relay::start(1, driver, |cfg| {
                    cfg.relay.probation = Duration::from_millis(200);
                    cfg.relay.idle_timeout = Duration::from_millis(1200);
                });
                let t0 = Instant::now();
                // Speaks MSRP but never succeeds (a SEND to no session, 481): closed by
                // probation, long before the idle timeout. (One that sends nothing at all
                // is not MSRP yet and falls to the head timeout, see tests/limits.rs.)
                let mut silent = relay.connect(&peer_uri("silent", 1));
                let to = format!("{}/nosuchsession;tcp", relay.uri().trim_end_matches(";tcp"));
                silent.send(
                    &format!("{to} {}", silent.me),
                    &[("Message-ID", "probe0001"), ("Byte-Range", "1-2/2")],
                    Some(b"hi"),
                    msrpd::codec::Flag::Complete,
                );
                let r = silent.read_frame();
                assert_eq!(r.kind(), "481", "{}", r.head);
                // AUTHs at once: survives probation, then is closed when idle.
                let mut good = relay.connect(&peer_uri("good", 2));
                good.auth(&relay.uri());
                assert!(silent.closed_within(Duration::from_secs(3)), "probation");
                let t_silent = t0.elapsed();
                assert!(good.closed_within(Duration::from_secs(3)), "idle timeout");
                let t_good = t0.elapsed();
                assert!(
                    t_silent >= Duration::from_millis(200)
                        && t_silent < Duration::from_millis(1000),
                    "probation close after {t_silent:?}"
                );
                assert!(
                    t_good >= Duration::from_millis(1200) && t_good < Duration::from_millis(2500),
                    "idle close after {t_good:?}"
                );
            });
        }
    });
}
