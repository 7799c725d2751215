//! The `msrpd` binary as an operator runs it: refusing a port another process holds,
//! stopping cleanly on SIGTERM with a frame in flight finished, re-reading users on SIGHUP.

mod common;

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use msrpd::codec::Flag;

#[test]
fn refuses_a_port_another_process_holds() {
    let holder = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = holder.local_addr().unwrap().port();
    let out = Command::new(env!("CARGO_BIN_EXE_msrpd"))
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--cores",
            "1",
            "--no-pin",
            "--admin",
            "off",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("another process already holds"), "{err}");
    // The in-process API says the same.
    let mut cfg = msrpd::server::ServerConfig::new(format!("127.0.0.1:{port}").parse().unwrap());
    cfg.cpus = vec![0];
    cfg.pin = false;
    match msrpd::server::start(cfg) {
        Err(msrpd::server::ServerError::PortInUse(a)) => assert_eq!(a.port(), port),
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("started on a held port"),
    }
}

#[test]
fn sigterm_finishes_the_frame_in_flight_then_exits() {
    let mut relay = RelayProcess::start(&["--cores", "2"]);
    let mut a = relay.connect(&peer_uri("alice", 1111));
    let mut b = relay.connect(&peer_uri("bob", 2222));
    let ra = a.auth(&relay.uri());
    let rb = b.auth(&relay.uri());
    // Start a chunk: head and half the body, then SIGTERM, then the rest.
    let tid = a.tid();
    let body = vec![b'x'; 64 * 1024];
    let head = format!(
        "MSRP {tid} SEND\r\nTo-Path: {ra} {rb} {}\r\nFrom-Path: {}\r\nMessage-ID: msg00042\r\nByte-Range: 1-{}/{}\r\nContent-Type: text/plain\r\n\r\n",
        b.me,
        a.me,
        body.len(),
        body.len()
    );
    a.send_raw(head.as_bytes());
    a.send_raw(&body[..32 * 1024]);
    std::thread::sleep(Duration::from_millis(100));
    // SAFETY: sending a signal to our own child process.
    unsafe {
        libc::kill(relay.pid() as i32, libc::SIGTERM);
    }
    std::thread::sleep(Duration::from_millis(100));
    a.send_raw(&body[32 * 1024..]);
    a.send_raw(format!("\r\n-------{tid}$\r\n").as_bytes());
    let got = b.read_frame();
    assert_eq!(got.kind(), "SEND");
    assert_eq!(got.body.len(), body.len());
    assert_eq!(got.flag, Flag::Complete);
    assert_eq!(a.read_frame().kind(), "200");
    // Then the relay closes everything and exits 0 within its grace period.
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = relay.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "msrpd did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "exit status {status}");
    assert!(b.closed_within(Duration::from_secs(2)));
}
