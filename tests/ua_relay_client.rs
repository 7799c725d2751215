//! The user agent's relay client (`msrpd::ua::relay_client`, RFC 4976 §5.1, §9.1)
//! against msrpd's real relay: an in-process server on 127.0.0.1:0 with a users file
//! and a realm, a std TcpStream, the frames `poll_transmit` gives written as they are
//! and the relay's answers read back with the codec's scanner (tests/common's Client)
//! and fed to `handle_response_bytes`. Every read has a timeout.

mod common;

use std::time::{Duration, Instant};

use common::*;
use msrpd::server::Driver;
use msrpd::sip::auth::Algorithm;
use msrpd::ua::relay_client::{Config, RelayClient, RelayEvent, State};
use rand::SeedableRng;
use rand::rngs::StdRng;

const REALM: &str = "test.realm";

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
    name: &str,
    tune: impl FnOnce(&mut msrpd::server::ServerConfig),
) -> Relay {
    let file = users_file(name, &[("alice", "wonderland"), ("bob", "builder")]);
    Relay::start(1, driver, move |cfg| {
        cfg.users_file = Some(file);
        cfg.relay.realm = REALM.into();
        tune(cfg);
    })
}

fn relay_client(
    relay: &Relay,
    conn: &Client,
    user: &str,
    password: &str,
    expires: Option<u32>,
    algorithm: Option<Algorithm>,
) -> RelayClient<StdRng> {
    RelayClient::new(
        Config {
            relay_uri: relay.uri(),
            our_uri: conn.me.clone(),
            username: user.into(),
            password: password.into(),
            expires,
            algorithm,
        },
        StdRng::seed_from_u64(u64::from(relay.addr.port())),
    )
}

/// Writes what the client has to send and feeds it the relay's responses until it
/// reports an event; returns the event and how many responses it took.
fn drive(c: &mut RelayClient<StdRng>, conn: &mut Client) -> (RelayEvent, usize) {
    let mut responses = 0;
    loop {
        while let Some(frame) = c.poll_transmit() {
            conn.send_raw(&frame);
        }
        if let Some(ev) = c.poll_event() {
            return (ev, responses);
        }
        assert!(responses < 10, "no event after {responses} responses");
        let f = conn.read_frame();
        assert!(f.is_response(), "{}", f.head);
        assert!(
            c.handle_response_bytes(Instant::now(), f.head.as_bytes()),
            "not ours: {}",
            f.head
        );
        responses += 1;
    }
}

/// `msrp://127.0.0.1:PORT/<session>;tcp`, the form msrpd's relay hands out.
fn check_use_path(use_path: &[String], relay: &Relay) {
    assert_eq!(use_path.len(), 1, "{use_path:?}");
    let prefix = format!("msrp://127.0.0.1:{}/", relay.addr.port());
    assert!(
        use_path[0].starts_with(&prefix) && use_path[0].ends_with(";tcp"),
        "{use_path:?}"
    );
}

#[test]
fn ready_with_the_relays_use_path_on_each_algorithm_and_driver() {
    for driver in DRIVERS {
        let relay = digest_relay(driver, "uarc-ok", |_| {});
        for alg in [None, Some(Algorithm::Sha256), Some(Algorithm::Md5)] {
            let mut conn = relay.connect(&peer_uri("alice", 1111));
            let mut c = relay_client(&relay, &conn, "alice", "wonderland", None, alg);
            c.start(Instant::now());
            let (ev, responses) = drive(&mut c, &mut conn);
            let RelayEvent::Ready { use_path, expires } = ev else {
                panic!("{alg:?}: {ev:?}");
            };
            assert_eq!(responses, 2, "401 then 200");
            check_use_path(&use_path, &relay);
            assert_eq!(expires, Some(Duration::from_secs(600)), "relay default");
            assert_eq!(c.use_path(), Some(&use_path[..]));
            assert!(matches!(c.state(), State::Ready { .. }));
            assert!(c.poll_timeout().is_some(), "a refresh is scheduled");
        }
        assert_eq!(relay.counters().auth_ok, 3);
        assert_eq!(relay.counters().auth_failed, 0);
    }
}

#[test]
fn the_use_path_carries_a_message() {
    let relay = digest_relay(Driver::Legacy, "uarc-msg", |_| {});
    let mut a = relay.connect(&peer_uri("alice", 1111));
    let mut b = relay.connect(&peer_uri("bob", 2222));
    let mut ca = relay_client(&relay, &a, "alice", "wonderland", None, None);
    let mut cb = relay_client(&relay, &b, "bob", "builder", None, None);
    ca.start(Instant::now());
    cb.start(Instant::now());
    assert!(matches!(drive(&mut ca, &mut a).0, RelayEvent::Ready { .. }));
    assert!(matches!(drive(&mut cb, &mut b).0, RelayEvent::Ready { .. }));
    // RFC 4976 §5.1: a=path is the Use-Path reversed, then our URI.
    let pa = ca.sdp_path().unwrap();
    assert_eq!(pa.last(), Some(&a.me));
    let ra = ca.use_path().unwrap()[0].clone();
    let rb = cb.use_path().unwrap()[0].clone();
    message(&mut a, &ra, &mut b, &rb, 1);
}

#[test]
fn wrong_password_fails_401_then_403_when_failures_run_out() {
    let relay = digest_relay(Driver::Legacy, "uarc-bad", |_| {});
    let mut conn = relay.connect(&peer_uri("alice", 1111));
    let mut c = relay_client(&relay, &conn, "alice", "looking-glass", None, None);
    c.start(Instant::now());
    let (ev, responses) = drive(&mut c, &mut conn);
    assert!(
        matches!(ev, RelayEvent::Failed { status: 401, .. }),
        "{ev:?}"
    );
    assert_eq!(responses, 2, "one answer to one challenge, then gives up");
    assert_eq!(c.use_path(), None);
    assert_eq!(relay.counters().auth_failed, 1);

    // A relay that allows one failure answers the wrong password with 403.
    let relay = digest_relay(Driver::Legacy, "uarc-bad1", |cfg| {
        cfg.relay.max_auth_failures = 1
    });
    let mut conn = relay.connect(&peer_uri("alice", 1111));
    let mut c = relay_client(&relay, &conn, "alice", "looking-glass", None, None);
    c.start(Instant::now());
    let (ev, _) = drive(&mut c, &mut conn);
    assert!(
        matches!(ev, RelayEvent::Failed { status: 403, .. }),
        "{ev:?}"
    );

    // An unknown user too.
    let relay = digest_relay(Driver::Legacy, "uarc-who", |_| {});
    let mut conn = relay.connect(&peer_uri("carol", 1111));
    let mut c = relay_client(&relay, &conn, "carol", "x", None, None);
    c.start(Instant::now());
    let (ev, _) = drive(&mut c, &mut conn);
    assert!(
        matches!(ev, RelayEvent::Failed { status: 401, .. }),
        "{ev:?}"
    );
}

#[test]
fn too_brief_expires_is_retried_with_min_expires() {
    let relay = digest_relay(Driver::Legacy, "uarc-423", |cfg| {
        cfg.relay.expires_default = 15;
        cfg.relay.expires_min = 10;
    });
    let mut conn = relay.connect(&peer_uri("alice", 1111));
    let mut c = relay_client(&relay, &conn, "alice", "wonderland", Some(2), None);
    c.start(Instant::now());
    let (ev, responses) = drive(&mut c, &mut conn);
    let RelayEvent::Ready { use_path, expires } = ev else {
        panic!("{ev:?}");
    };
    assert_eq!(responses, 3, "401, 423, 200");
    check_use_path(&use_path, &relay);
    assert_eq!(expires, Some(Duration::from_secs(10)));

    // And Max-Expires the other way.
    let mut conn = relay.connect(&peer_uri("alice", 1111));
    let mut c = relay_client(&relay, &conn, "alice", "wonderland", Some(99_999), None);
    c.start(Instant::now());
    let (ev, _) = drive(&mut c, &mut conn);
    assert!(
        matches!(ev, RelayEvent::Ready { expires: Some(e), .. } if e == Duration::from_secs(3600)),
        "{ev:?}"
    );
}

#[test]
fn short_expires_is_refreshed_with_nextnonce() {
    let relay = digest_relay(Driver::Legacy, "uarc-refresh", |cfg| {
        cfg.relay.expires_min = 1;
    });
    let mut conn = relay.connect(&peer_uri("alice", 1111));
    let mut c = relay_client(&relay, &conn, "alice", "wonderland", Some(2), None);
    c.start(Instant::now());
    let (ev, _) = drive(&mut c, &mut conn);
    let RelayEvent::Ready { use_path, .. } = ev else {
        panic!("{ev:?}");
    };
    for round in 0..2 {
        let due = c.poll_timeout().expect("refresh scheduled");
        let left = due.saturating_duration_since(Instant::now());
        assert!(left <= Duration::from_secs(2), "refresh in {left:?}");
        std::thread::sleep(left);
        c.handle_timeout(Instant::now());
        assert!(c.is_refreshing(), "round {round}");
        let (ev, responses) = drive(&mut c, &mut conn);
        assert_eq!(
            ev,
            RelayEvent::Refreshed {
                use_path: use_path.clone(),
                expires: Some(Duration::from_secs(2)),
            },
            "round {round}: the same session, renewed"
        );
        assert_eq!(responses, 1, "the nextnonce saves a 401 round");
    }
    assert_eq!(relay.counters().auth_ok, 3);
    assert_eq!(relay.counters().auth_failed, 0);
}

#[test]
fn closed_connection_needs_a_new_start() {
    let relay = digest_relay(Driver::Legacy, "uarc-closed", |_| {});
    let mut conn = relay.connect(&peer_uri("alice", 1111));
    let mut c = relay_client(&relay, &conn, "alice", "wonderland", None, None);
    c.start(Instant::now());
    let (ev, _) = drive(&mut c, &mut conn);
    let RelayEvent::Ready {
        use_path: first, ..
    } = ev
    else {
        panic!("{ev:?}");
    };
    drop(conn);
    c.handle_closed(Instant::now());
    assert_eq!(c.state(), &State::Idle);
    let mut conn = relay.connect(&peer_uri("alice", 1111));
    c.start(Instant::now());
    let (ev, responses) = drive(&mut c, &mut conn);
    let RelayEvent::Ready { use_path, .. } = ev else {
        panic!("{ev:?}");
    };
    assert_eq!(responses, 2);
    assert_ne!(use_path, first, "a new connection gets a new session URI");
}
