//! The hop-latency histogram measures frame in to frame written, on real sockets: alice
//! sends 8 MiB to bob, whose session is on the other worker, while bob does not read for
//! 700 ms. Frames read from alice wait in bob's send queue on bob's worker until bob reads,
//! so that worker's `msrpd_hop_latency_seconds` must hold samples longer than 262 ms (a
//! histogram of "read to queued" would show microseconds here). Everything on 127.0.0.1;
//! every wait is bounded.

mod common;

use std::thread;
use std::time::Duration;

use common::http;
use common::*;
use msrpd::admin::AdminConfig;
use msrpd::codec::Flag;
use msrpd::server::Driver;

const MESSAGES: usize = 8;
const SIZE: usize = 1 << 20;
const STALL: Duration = Duration::from_millis(700);

#[test]
fn frames_waiting_for_a_stalled_receiver_on_another_core_count_until_written() {
    let relay = Relay::start(2, Driver::Auto, |c| {
        c.admin = Some(AdminConfig::new("127.0.0.1:0".parse().unwrap()));
    });
    let api = admin_addr(&relay);
    let connect = |me: &str| relay.connect(me);
    let (mut a, ra) = auth_on_worker(connect, &relay.uri(), &peer_uri("alice", 1111), |_| true);
    let a_core = core_of(&ra);
    let (mut b, rb) = auth_on_worker(connect, &relay.uri(), &peer_uri("bob", 2222), |c| {
        c != a_core
    });
    let b_core = core_of(&rb);
    let before = http::get(api, "/metrics").text();

    let to_b = format!("{ra} {rb} {}", b.me);
    let sender = thread::spawn(move || {
        let body: Vec<u8> = (0..SIZE).map(|i| b'a' + (i % 26) as u8).collect();
        let range = format!("1-{SIZE}/{SIZE}");
        for n in 0..MESSAGES {
            let mid = format!("hop{n}");
            a.send(
                &to_b,
                &[("Message-ID", mid.as_str()), ("Byte-Range", range.as_str())],
                Some(&body),
                Flag::Complete,
            );
        }
        for _ in 0..MESSAGES {
            assert_eq!(a.read_frame().kind(), "200");
        }
        a
    });
    // Bob does not read: what alice sends piles up in his queue on his worker.
    thread::sleep(STALL);
    for _ in 0..MESSAGES {
        let got = b.read_frame();
        assert_eq!(got.body.len(), SIZE, "{}", got.head);
        b.respond(&got, 200);
    }
    let _a = sender.join().expect("alice sent everything");

    let after = http::get(api, "/metrics").text();
    let on = |text: &str, core: u16, what: &str| {
        metric(
            text,
            &format!("msrpd_hop_latency_seconds_{what}{{worker=\"{core}\"}}"),
        )
    };
    let slow = |text: &str, core: u16| {
        on(text, core, "count")
            - metric(
                text,
                &format!("msrpd_hop_latency_seconds_bucket{{worker=\"{core}\",le=\"0.262144\"}}"),
            )
    };
    // Buckets are cumulative: non-decreasing, ending at the count.
    for core in [a_core, b_core] {
        let buckets: Vec<f64> = after
            .lines()
            .filter(|l| {
                l.starts_with(&format!(
                    "msrpd_hop_latency_seconds_bucket{{worker=\"{core}\""
                ))
            })
            .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
            .collect();
        assert_eq!(buckets.len(), 22, "21 bounds and +Inf:\n{after}");
        assert!(buckets.windows(2).all(|w| w[0] <= w[1]), "{after}");
        assert_eq!(buckets[21], on(&after, core, "count"), "{after}");
    }
    let waited = slow(&after, b_core) - slow(&before, b_core);
    assert!(
        waited >= 1.0,
        "no sample on bob's worker {b_core} waited for him (alice on {a_core}):\n{after}"
    );
    assert!(
        on(&after, b_core, "sum") - on(&before, b_core, "sum") >= 0.25,
        "{after}"
    );
    // Alice's worker wrote nothing but 200s, which are not held up.
    assert_eq!(
        slow(&after, a_core),
        slow(&before, a_core),
        "a sample on alice's worker {a_core} waited:\n{after}"
    );
}
