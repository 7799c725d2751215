//! The `msrpd` binary as an operator meets it: what it refuses at start (a log level it
//! does not know), what it logs (RUST_LOG, a users file with nobody in the relay's
//! realm, a CA certificate given as `--cert`, at start and again on SIGHUP; JSON lines
//! naming peer and core), what it tells systemd (`READY=1`, `STOPPING=1`), and what
//! `msrpd passwd` does on a fresh machine. Every wait is bounded.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use msrpd::codec::Flag;

const WAIT: Duration = Duration::from_secs(10);

/// A running `msrpd` whose stderr is collected (killed when dropped).
struct Proc {
    child: Child,
    stderr: Arc<Mutex<String>>,
    /// The first plain listen address, when there is one.
    addr: Option<std::net::SocketAddr>,
}

impl Proc {
    /// Starts `msrpd ARGS` with `env` and waits for its listen lines on stdout.
    fn start(args: &[&str], env: &[(&str, &str)]) -> Proc {
        let mut cmd = msrpd(env, Stdio::null(), Stdio::piped());
        cmd.args(["--cores", "1", "--no-pin"]).args(args);
        // No admin API unless asked for: no race for its default port.
        if !args.contains(&"--admin") {
            cmd.args(["--admin", "off"]);
        }
        let mut child = cmd.spawn().expect("msrpd binary starts");
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err = child.stderr.take().unwrap();
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        // "msrpd listening on ADDR as HOST:PORT" (plain) or "... ADDR (TLS) as ...".
        let (tx, rx) = std::sync::mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut p = Proc {
            child,
            stderr,
            addr: None,
        };
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix("msrpd listening on ") {
                        if !rest.contains("(TLS)") {
                            p.addr = rest.split_whitespace().next().and_then(|a| a.parse().ok());
                        }
                        // The lines come together; one is enough to know it runs.
                        std::thread::sleep(Duration::from_millis(50));
                        return p;
                    }
                }
                Err(_) => panic!("msrpd did not start; stderr:\n{}", p.stderr()),
            }
        }
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits until stderr holds `needle` at least `n` times; the stderr text.
    fn wait_for(&self, needle: &str, n: usize) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let s = self.stderr();
            if s.matches(needle).count() >= n {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "no {n}x {needle:?} in stderr:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn sighup(&self) {
        // SAFETY: kill(2) with a child's pid and a signal number touches no memory.
        let rc = unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGHUP) };
        assert_eq!(rc, 0);
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The msrpd binary with `env` only (no inherited RUST_LOG) and stderr piped.
fn msrpd(env: &[(&str, &str)], stdin: Stdio, stdout: Stdio) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_msrpd"));
    cmd.env_remove("RUST_LOG")
        .stdin(stdin)
        .stdout(stdout)
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// Runs `msrpd ARGS` (with `env` and `stdin`) to its end, within WAIT; (success, stderr).
fn run(args: &[&str], env: &[(&str, &str)], stdin: &[u8]) -> (bool, String) {
    let mut child = msrpd(env, Stdio::piped(), Stdio::null())
        .args(args)
        .spawn()
        .expect("msrpd binary starts");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("msrpd {args:?} still running after {WAIT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (status.success(), err)
}

/// A fresh directory for one test, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p = temp_path(&format!("operator-{tag}"));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

const LISTEN: [&str; 2] = ["--listen", "127.0.0.1:0"];

/// Flags, environment, and what stderr must say.
type Run<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);
const VALID: &str = "error, warn, info, debug, trace, off";

#[test]
fn an_unknown_log_level_is_refused_naming_the_valid_ones() {
    let dir = TempDir::new("loglevel");
    let cfg = dir.join("msrpd.toml");
    std::fs::write(&cfg, "log_level = \"warning\"\n").unwrap();
    let cfg = cfg.to_str().unwrap();
    let runs: [Run; 4] = [
        (
            &["--log-level", "warning"],
            &[],
            "bad --log-level \"warning\"",
        ),
        (
            &["--log-level", "msrpd=loud"],
            &[],
            "bad --log-level \"msrpd=loud\"",
        ),
        (&["--config", cfg], &[], "bad log_level \"warning\""),
        (&[], &[("RUST_LOG", "warning")], "bad RUST_LOG \"warning\""),
    ];
    for (args, env, want) in runs {
        let mut all = vec!["--listen", "127.0.0.1:0", "--cores", "1", "--no-pin"];
        all.extend_from_slice(args);
        let (ok, err) = run(&all, env, b"");
        assert!(!ok, "{args:?} {env:?} started: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
        assert!(err.contains(VALID), "{args:?}: {err}");
        assert!(err.contains("msrpd=debug,info"), "{args:?}: {err}");
    }
    // --help says what is accepted and that RUST_LOG is read.
    let out = Command::new(env!("CARGO_BIN_EXE_msrpd"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("RUST_LOG"), "{help}");
    assert!(
        help.contains("error, warn, info, debug, trace or off"),
        "{help}"
    );
}

/// A request the relay refuses with 481, which it logs at debug level.
fn provoke_a_debug_line(addr: std::net::SocketAddr) {
    let mut c = Client::connect(addr, &peer_uri("alice", 1111));
    let tid = c.send(
        &format!("msrp://{addr}/nosuchsession;tcp {}", peer_uri("bob", 2222)),
        &[("Message-ID", "debug001")],
        Some(b"x"),
        Flag::Complete,
    );
    let r = c.read_frame();
    assert_eq!((r.tid(), r.kind()), (tid.as_str(), "481"));
}

#[test]
fn rust_log_decides_without_the_flag_and_the_flag_wins() {
    let p = Proc::start(&LISTEN, &[("RUST_LOG", "debug")]);
    provoke_a_debug_line(p.addr.unwrap());
    let err = p.wait_for("request refused", 1);
    assert!(err.contains("DEBUG"), "{err}");
    assert!(err.contains("msrpd relay started"), "info too: {err}");
    drop(p);

    let p = Proc::start(
        &["--listen", "127.0.0.1:0", "--log-level", "warn"],
        &[("RUST_LOG", "debug")],
    );
    provoke_a_debug_line(p.addr.unwrap());
    std::thread::sleep(Duration::from_millis(300));
    let err = p.stderr();
    assert!(!err.contains("DEBUG") && !err.contains(" INFO "), "{err}");

    // Directives as tracing users write them.
    let p = Proc::start(&LISTEN, &[("RUST_LOG", "warn,msrpd::relay=debug")]);
    provoke_a_debug_line(p.addr.unwrap());
    let err = p.wait_for("request refused", 1);
    assert!(!err.contains("msrpd relay started"), "{err}");
}

#[test]
fn passwd_creates_a_missing_directory_and_says_so() {
    let root = TempDir::new("passwd");
    let dir = root.join("etc").join("msrpd");
    let file = dir.join("users");
    let (ok, err) = run(
        &[
            "passwd",
            "--users",
            file.to_str().unwrap(),
            "--realm",
            "r.example",
            "alice",
        ],
        &[],
        b"s3cret\n",
    );
    assert!(ok, "{err}");
    assert!(
        err.contains(&format!("created directory {} (mode 0750)", dir.display())),
        "{err}"
    );
    assert!(err.contains("chgrp msrpd"), "{err}");
    assert_eq!(mode(&dir), 0o750);
    // Parents made on the way: the umask decides, but never group-write or others.
    assert_eq!(
        mode(&root.join("etc")) & 0o027,
        0,
        "{:o}",
        mode(&root.join("etc"))
    );
    assert_eq!(mode(&file), 0o640);
    let users = msrpd::server::users_file::load(&file).unwrap();
    assert_eq!(users.count_in_realm("r.example"), 1);
    // Again: nothing to create, nothing said about it.
    let (ok, err) = run(
        &[
            "passwd",
            "--users",
            file.to_str().unwrap(),
            "--realm",
            "r.example",
            "bob",
        ],
        &[],
        b"s3cret\n",
    );
    assert!(ok, "{err}");
    assert!(!err.contains("created directory"), "{err}");
    assert!(!err.contains("chgrp"), "{err}");

    // A directory that cannot be made is named (here its parent is a plain file).
    let blocker = root.join("plain-file");
    std::fs::write(&blocker, "").unwrap();
    let file = blocker.join("msrpd").join("users");
    let (ok, err) = run(
        &[
            "passwd",
            "--users",
            file.to_str().unwrap(),
            "--realm",
            "r",
            "alice",
        ],
        &[],
        b"pw\n",
    );
    assert!(!ok);
    assert!(
        err.contains(&format!(
            "cannot create directory {}",
            blocker.join("msrpd").display()
        )),
        "{err}"
    );
    assert!(!err.contains(".tmp-"), "{err}");
}

#[test]
fn users_with_no_one_in_the_relay_realm_are_warned_at_start_and_on_sighup() {
    let dir = TempDir::new("realm");
    let file = dir.join("users");
    for (u, realm) in [
        ("alice", "old.example"),
        ("bob", "old.example"),
        ("carol", "b.example"),
    ] {
        msrpd::server::users_file::set_password(&file, realm, u, "pw").unwrap();
    }
    let f = file.to_str().unwrap();
    let want = "users file has 3 users, none in realm \"relay.example.com\" \
                (realms in the file: \"b.example\" (1), \"old.example\" (2))";
    let p = Proc::start(
        &[
            "--listen",
            "127.0.0.1:0",
            "--users",
            f,
            "--realm",
            "relay.example.com",
        ],
        &[],
    );
    p.wait_for(want, 1);
    p.sighup();
    p.wait_for(want, 2);
    p.wait_for("users file reloaded", 1);
    drop(p);

    // A realm the file has: no warning, at start or on reload.
    let p = Proc::start(
        &[
            "--listen",
            "127.0.0.1:0",
            "--users",
            f,
            "--realm",
            "old.example",
        ],
        &[],
    );
    p.sighup();
    let err = p.wait_for("users file reloaded", 1);
    assert!(!err.contains("none in realm"), "{err}");
}

/// A self-signed certificate made by rcgen, CA:TRUE or not, for 127.0.0.1.
fn self_signed(dir: &TempDir, tag: &str, is_ca: rcgen::IsCa) -> (String, String) {
    let mut p = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    p.is_ca = is_ca;
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = p.self_signed(&key).unwrap();
    let (c, k) = (
        dir.join(&format!("{tag}-cert.pem")),
        dir.join(&format!("{tag}-key.pem")),
    );
    std::fs::write(&c, cert.pem()).unwrap();
    std::fs::write(&k, key.serialize_pem()).unwrap();
    (
        c.to_string_lossy().into_owned(),
        k.to_string_lossy().into_owned(),
    )
}

#[test]
fn a_ca_certificate_as_cert_is_warned_at_start_and_on_sighup() {
    let dir = TempDir::new("ca-leaf");
    let ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let (c, k) = self_signed(&dir, "ca", ca);
    let args = [
        "--listen-tls",
        "127.0.0.1:0",
        "--cert",
        &c,
        "--key",
        &k,
        "--log-level",
        "warn",
    ];
    let p = Proc::start(&args, &[]);
    let err = p.wait_for("CaUsedAsEndEntity", 1);
    assert!(
        err.contains(&format!("certificate {c}: its leaf is a CA certificate")),
        "{err}"
    );
    assert!(err.contains("basicConstraints=critical,CA:FALSE"), "{err}");
    p.sighup();
    p.wait_for("CaUsedAsEndEntity", 2);
    drop(p);

    for (tag, is_ca) in [
        ("noca", rcgen::IsCa::ExplicitNoCa),
        ("plain", rcgen::IsCa::NoCa),
    ] {
        let (c, k) = self_signed(&dir, tag, is_ca);
        let args = ["--listen-tls", "127.0.0.1:0", "--cert", &c, "--key", &k];
        let p = Proc::start(&args, &[]);
        p.sighup();
        let err = p.wait_for("TLS certificate and key reloaded", 1);
        assert!(!err.contains("CaUsedAsEndEntity"), "{tag}: {err}");
    }
}

/// AUTH log lines name the peer's address and port (for fail2ban-style monitoring):
/// an AUTH that succeeds and one with an Authorization header that does not parse.
#[test]
fn auth_log_lines_name_the_peer() {
    let p = Proc::start(&LISTEN, &[]);
    let addr = p.addr.unwrap();
    let mut c = Client::connect(addr, &peer_uri("alice", 1111));
    let me = c.stream.try_clone().unwrap().local_addr().unwrap();
    c.auth(&format!("msrp://{addr};tcp"));
    let err = p.wait_for("AUTH ok", 1);
    let line = err.lines().find(|l| l.contains("AUTH ok")).unwrap();
    assert!(line.contains(&format!("peer={me}")), "{line}");
    drop(p);

    // With a users file, a broken Authorization header is a failed AUTH, logged with
    // the peer too.
    let dir = TempDir::new("authlog");
    let users = dir.join("users");
    std::fs::write(&users, "").unwrap();
    let users = users.to_str().unwrap().to_string();
    let p = Proc::start(&["--listen", "127.0.0.1:0", "--users", &users], &[]);
    let addr = p.addr.unwrap();
    let mut c = Client::connect(addr, &peer_uri("alice", 1111));
    let me = c.stream.try_clone().unwrap().local_addr().unwrap();
    let r = c.auth_with(
        &format!("msrp://{addr};tcp"),
        &[("Authorization", "Digest this is not, a credential")],
    );
    assert_eq!(r.kind(), "400");
    let err = p.wait_for("AUTH failed", 1);
    let line = err.lines().find(|l| l.contains("AUTH failed")).unwrap();
    assert!(line.contains(&format!("peer={me}")), "{line}");
}

/// `--log-format json`: every line on stderr is one JSON object with a timestamp, a
/// level and a message; the lines about a connection (an AUTH, a request for another
/// relay that drops the connection) name its peer address and, from the worker's span,
/// its core.
#[test]
fn json_log_lines_are_objects_naming_peer_and_core() {
    let p = Proc::start(
        &[
            "--listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
            "--log-level",
            "info",
        ],
        &[],
    );
    let addr = p.addr.unwrap();
    let mut c = Client::connect(addr, &peer_uri("alice", 1111));
    let me = c.stream.try_clone().unwrap().local_addr().unwrap();
    c.auth(&format!("msrp://{addr};tcp"));
    let mut d = Client::connect(addr, &peer_uri("dave", 4444));
    let other = d.stream.try_clone().unwrap().local_addr().unwrap();
    d.send(
        &format!(
            "msrp://elsewhere.example.net:2855/abc;tcp {}",
            peer_uri("bob", 2222)
        ),
        &[("Message-ID", "json0001")],
        Some(b"x"),
        Flag::Complete,
    );
    assert!(
        d.closed_within(WAIT),
        "a request for another relay drops it"
    );
    p.wait_for("not this relay", 1);
    p.sighup();
    let err = p.wait_for("reload finished", 1);
    let lines: Vec<serde_json::Value> = err
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(lines.len() >= 3, "{err}");
    for l in &lines {
        assert!(l["timestamp"].is_string(), "{l}");
        assert!(l["level"].is_string(), "{l}");
        assert!(l["fields"]["message"].is_string(), "{l}");
    }
    let find = |needle: &str| {
        lines
            .iter()
            .find(|l| l["fields"]["message"].as_str().unwrap().contains(needle))
            .unwrap_or_else(|| panic!("no {needle:?} line in {err}"))
    };
    for (needle, peer) in [("AUTH ok", me), ("not this relay", other)] {
        let l = find(needle);
        assert_eq!(l["fields"]["peer"], peer.to_string(), "{l}");
        assert_eq!(l["span"]["name"], "worker", "{l}");
        assert_eq!(l["span"]["core"], 0, "{l}");
    }
    assert_eq!(find("not this relay")["level"], "WARN");
}

/// With `NOTIFY_SOCKET` set (as systemd does for Type=notify), the relay sends
/// `READY=1` once it listens, and `STOPPING=1` on SIGTERM.
#[test]
fn sd_notify_says_ready_once_listening_and_stopping_on_sigterm() {
    let dir = TempDir::new("notify");
    let sock_path = dir.join("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(WAIT)).unwrap();
    let mut p = Proc::start(&LISTEN, &[("NOTIFY_SOCKET", sock_path.to_str().unwrap())]);
    let mut buf = [0u8; 4096];
    let n = sock.recv(&mut buf).expect("a notification within WAIT");
    let msg = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(msg.lines().any(|l| l == "READY=1"), "{msg:?}");
    // Ready means served.
    let addr = p.addr.unwrap();
    let mut c = Client::connect(addr, &peer_uri("alice", 1111));
    c.auth(&format!("msrp://{addr};tcp"));
    // SAFETY: kill(2) with a child's pid and a signal number touches no memory.
    let rc = unsafe { libc::kill(p.child.id() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(rc, 0);
    let n = sock.recv(&mut buf).expect("a notification on SIGTERM");
    let msg = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(msg.lines().any(|l| l == "STOPPING=1"), "{msg:?}");
    let deadline = Instant::now() + WAIT;
    while p.child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "msrpd did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
}
