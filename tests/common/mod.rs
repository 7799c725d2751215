//! Test harness: a real relay on 127.0.0.1:0 (in this process, or as the `msrpd`
//! binary) and a blocking MSRP client that speaks raw bytes and reads frames back with
//! the crate's own scanner. Every socket has a read timeout, so no test can hang.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use msrpd::codec::{Event, Flag, Scanner};
use msrpd::server::{self, Driver, ServerConfig, ServerHandle};

/// How long any single read may block.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Both drivers, for tests that run on each.
pub const DRIVERS: [Driver; 2] = [Driver::IoUring, Driver::Legacy];

/// A relay in this process.
pub struct Relay {
    pub handle: Option<ServerHandle>,
    pub addr: SocketAddr,
}

impl Relay {
    /// Waits until `f` holds for the relay's counters, at most 3 s.
    pub fn settle(&self, what: &str, f: impl Fn(&msrpd::conn::CounterSnapshot) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            let c = self.counters();
            if f(&c) {
                return;
            }
            assert!(Instant::now() < deadline, "{what}: {c:?}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Starts a relay with `workers` workers, letting `tune` adjust the config.
    pub fn start(workers: usize, driver: Driver, tune: impl FnOnce(&mut ServerConfig)) -> Relay {
        let mut cfg = ServerConfig::new("127.0.0.1:0".parse().unwrap());
        cfg.cpus = (0..workers).collect();
        cfg.pin = false;
        cfg.driver = driver;
        cfg.shutdown_grace = Duration::from_millis(200);
        tune(&mut cfg);
        let handle = server::start(cfg).expect("relay starts");
        let addr = handle.local_addrs()[0];
        Relay {
            handle: Some(handle),
            addr,
        }
    }

    /// The relay's own URI (no session), as a client puts it in an AUTH To-Path.
    pub fn uri(&self) -> String {
        format!("msrp://127.0.0.1:{};tcp", self.addr.port())
    }

    pub fn counters(&self) -> msrpd::conn::CounterSnapshot {
        self.handle.as_ref().unwrap().counters()
    }

    pub fn connect(&self, me: &str) -> Client {
        Client::connect(self.addr, me)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            h.shutdown();
            h.join();
        }
    }
}

/// The `msrpd` binary as a child process (killed when dropped).
pub struct RelayProcess {
    pub child: Child,
    pub addr: SocketAddr,
}

impl RelayProcess {
    /// Starts `msrpd --listen 127.0.0.1:0 ARGS` and reads its listen line. Without
    /// `--admin` in `ARGS` the admin API is off (`--admin off`): test relays do not race
    /// each other, or a real msrpd, for its default port.
    pub fn start(args: &[&str]) -> RelayProcess {
        let admin_off: &[&str] = if args.contains(&"--admin") {
            &[]
        } else {
            &["--admin", "off"]
        };
        let mut child = Command::new(env!("CARGO_BIN_EXE_msrpd"))
            .args(["--listen", "127.0.0.1:0", "--no-pin", "--log-level", "warn"])
            .args(admin_off)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("msrpd binary starts");
        let mut out = child.stdout.take().unwrap();
        let mut line = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut byte = [0u8; 1];
        while !line.ends_with(b"\n") && Instant::now() < deadline {
            match out.read(&mut byte) {
                Ok(1) => line.push(byte[0]),
                _ => break,
            }
        }
        let text = String::from_utf8_lossy(&line);
        // "msrpd listening on 127.0.0.1:PORT as HOST:PORT"
        let addr = text
            .split_whitespace()
            .nth(3)
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no listen line from msrpd: {text:?}"));
        RelayProcess { child, addr }
    }

    pub fn uri(&self) -> String {
        format!("msrp://127.0.0.1:{};tcp", self.addr.port())
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Peak resident memory (VmHWM) in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        proc_status_kib(self.pid(), "VmHWM:")
    }

    pub fn connect(&self, me: &str) -> Client {
        Client::connect(self.addr, me)
    }
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A field of /proc/PID/status in KiB.
pub fn proc_status_kib(pid: u32, field: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// One frame as received: head text, body bytes, flag.
#[derive(Debug, Clone)]
pub struct Frame {
    pub head: String,
    pub body: Vec<u8>,
    pub flag: Flag,
    pub has_body: bool,
}

impl Frame {
    /// The start line.
    pub fn start(&self) -> &str {
        self.head.lines().next().unwrap_or("")
    }
    pub fn tid(&self) -> &str {
        self.start().split(' ').nth(1).unwrap_or("")
    }
    /// Method of a request or status code of a response.
    pub fn kind(&self) -> &str {
        self.start().split(' ').nth(2).unwrap_or("")
    }
    pub fn is_response(&self) -> bool {
        self.kind()
            .as_bytes()
            .first()
            .is_some_and(u8::is_ascii_digit)
    }
    /// A header value by name (case-insensitive), the first one.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers(name).into_iter().next()
    }
    /// Every value of a header.
    pub fn headers(&self, name: &str) -> Vec<&str> {
        self.head
            .lines()
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
            .collect()
    }
}

/// A client's connection: plain TCP, or TLS over TCP (rustls, blocking).
pub enum Stream {
    Tcp(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Stream {
    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Tcp(s) => s,
            Stream::Tls(s) => &s.sock,
        }
    }
    pub fn set_read_timeout(&self, t: Option<Duration>) -> std::io::Result<()> {
        self.tcp().set_read_timeout(t)
    }
    /// A second handle on a plain TCP connection.
    pub fn try_clone(&self) -> std::io::Result<TcpStream> {
        match self {
            Stream::Tcp(s) => s.try_clone(),
            Stream::Tls(_) => Err(std::io::Error::other("a TLS stream cannot be cloned")),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Tcp(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

/// A blocking MSRP peer over TCP or TLS.
pub struct Client {
    pub stream: Stream,
    /// This client's own URI (its From-Path).
    pub me: String,
    buf: BytesMut,
    scanner: Scanner,
    /// Use-Path from the last successful AUTH.
    pub use_path: Option<String>,
    next_tid: u64,
}

impl Client {
    pub fn connect(addr: SocketAddr, me: &str) -> Client {
        let stream = TcpStream::connect(addr).expect("connect to relay");
        stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        Client::over(Stream::Tcp(stream), me)
    }

    /// A plain client whose socket receive buffer is about `rcvbuf` bytes (set before
    /// connecting, so the window stays small): a slow reader the kernel cannot hide.
    pub fn connect_small(addr: SocketAddr, me: &str, rcvbuf: usize) -> Client {
        let s = socket2::Socket::new(
            socket2::Domain::for_address(addr),
            socket2::Type::STREAM,
            None,
        )
        .unwrap();
        s.set_recv_buffer_size(rcvbuf).unwrap();
        s.connect(&addr.into()).expect("connect to relay");
        let stream: TcpStream = s.into();
        stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        Client::over(Stream::Tcp(stream), me)
    }

    /// A client over TLS to `addr`, verifying the relay's certificate for `name` with
    /// `config`. The handshake completes before this returns.
    pub fn connect_tls(
        addr: SocketAddr,
        me: &str,
        config: std::sync::Arc<rustls::ClientConfig>,
        name: &str,
    ) -> Client {
        let tcp = TcpStream::connect(addr).expect("connect to relay");
        tcp.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        tcp.set_write_timeout(Some(READ_TIMEOUT)).unwrap();
        tcp.set_nodelay(true).unwrap();
        let name = rustls::pki_types::ServerName::try_from(name.to_string()).unwrap();
        let conn = rustls::ClientConnection::new(config, name).expect("TLS client");
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        while tls.conn.is_handshaking() {
            tls.conn
                .complete_io(&mut tls.sock)
                .expect("TLS handshake with the relay");
        }
        Client::over(Stream::Tls(Box::new(tls)), me)
    }

    fn over(stream: Stream, me: &str) -> Client {
        Client {
            stream,
            me: me.to_string(),
            buf: BytesMut::with_capacity(64 * 1024),
            scanner: Scanner::default(),
            use_path: None,
            next_tid: 1,
        }
    }

    /// A fresh transaction id.
    pub fn tid(&mut self) -> String {
        self.next_tid += 1;
        format!("t{:07}x", self.next_tid)
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write to relay");
    }

    /// Reads the next whole frame (body pieces joined). Panics on timeout.
    pub fn read_frame(&mut self) -> Frame {
        self.try_read_frame(READ_TIMEOUT)
            .unwrap_or_else(|e| panic!("{}: no frame from relay: {e}", self.me))
    }

    /// Reads the next whole frame, or says why not (timeout, closed, malformed).
    pub fn try_read_frame(&mut self, timeout: Duration) -> Result<Frame, String> {
        self.stream.set_read_timeout(Some(timeout)).unwrap();
        let mut head: Option<(String, bool)> = None;
        let mut body = Vec::new();
        loop {
            while let Some(ev) = self
                .scanner
                .next(&mut self.buf)
                .map_err(|e| e.to_string())?
            {
                match ev {
                    Event::Head(h) => {
                        head = Some((
                            String::from_utf8_lossy(h.as_bytes()).into_owned(),
                            h.has_body(),
                        ))
                    }
                    Event::Body(b) => body.extend_from_slice(&b),
                    Event::End(flag) => {
                        let (head, has_body) = head.take().ok_or("end without head")?;
                        self.stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
                        return Ok(Frame {
                            head,
                            body,
                            flag,
                            has_body,
                        });
                    }
                }
            }
            let mut tmp = [0u8; 65536];
            match self.stream.read(&mut tmp) {
                Ok(0) => return Err("connection closed".into()),
                Ok(n) => self.buf.extend_from_slice(&tmp[..n]),
                Err(e) => return Err(e.to_string()),
            }
        }
    }

    /// `true` when the relay closed the connection (EOF within `timeout`).
    pub fn closed_within(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            self.stream.set_read_timeout(Some(left)).unwrap();
            let mut tmp = [0u8; 4096];
            match self.stream.read(&mut tmp) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
                Err(_) => return false,
            }
        }
    }

    /// Sends an AUTH to `to_path` with extra headers; returns the response.
    pub fn auth_with(&mut self, to_path: &str, extra: &[(&str, &str)]) -> Frame {
        let tid = self.tid();
        let mut m = format!(
            "MSRP {tid} AUTH\r\nTo-Path: {to_path}\r\nFrom-Path: {}\r\n",
            self.me
        );
        for (n, v) in extra {
            m.push_str(&format!("{n}: {v}\r\n"));
        }
        m.push_str(&format!("-------{tid}$\r\n"));
        self.send_raw(m.as_bytes());
        let r = self.read_frame();
        assert_eq!(r.tid(), tid, "AUTH response tid");
        if r.kind() == "200" {
            self.use_path = r.header("Use-Path").map(str::to_string);
        }
        r
    }

    /// Protected-mode AUTH (loopback, no users file); asserts success; returns Use-Path.
    pub fn auth(&mut self, relay_uri: &str) -> String {
        let r = self.auth_with(relay_uri, &[]);
        assert_eq!(r.kind(), "200", "AUTH refused: {}", r.head);
        self.use_path.clone().unwrap()
    }

    /// Sends a SEND with `body` and extra headers (Message-ID and Byte-Range are the
    /// caller's, in `extra`). Returns its tid.
    pub fn send(
        &mut self,
        to_path: &str,
        extra: &[(&str, &str)],
        body: Option<&[u8]>,
        flag: Flag,
    ) -> String {
        let tid = self.tid();
        let mut m = format!(
            "MSRP {tid} SEND\r\nTo-Path: {to_path}\r\nFrom-Path: {}\r\n",
            self.me
        )
        .into_bytes();
        for (n, v) in extra {
            m.extend_from_slice(format!("{n}: {v}\r\n").as_bytes());
        }
        match body {
            Some(b) => {
                m.extend_from_slice(b"Content-Type: text/plain\r\n\r\n");
                m.extend_from_slice(b);
                m.extend_from_slice(format!("\r\n-------{tid}").as_bytes());
            }
            None => m.extend_from_slice(format!("-------{tid}").as_bytes()),
        }
        m.push(flag.as_byte());
        m.extend_from_slice(b"\r\n");
        self.send_raw(&m);
        tid
    }

    /// Answers a request frame with `code` (To-Path: first From-Path URI, RFC 4975 §7.2).
    pub fn respond(&mut self, req: &Frame, code: u16) {
        let from = req.header("From-Path").unwrap();
        let prev = from.split(' ').next().unwrap();
        let m = format!(
            "MSRP {} {code} X\r\nTo-Path: {prev}\r\nFrom-Path: {}\r\n-------{}$\r\n",
            req.tid(),
            self.me,
            req.tid()
        );
        self.send_raw(m.as_bytes());
    }
}

/// A client URI for test peer `name`.
pub fn peer_uri(name: &str, port: u16) -> String {
    format!("msrp://127.0.0.1:{port}/{name};tcp")
}

/// A temporary file path unique to this test process, in [`scratch_dir`].
pub fn temp_path(name: &str) -> PathBuf {
    scratch_dir().join(name)
}

/// This test process's scratch directory, `msrpd-test-<pid>` in the temp dir, removed
/// when the process exits (an `atexit` handler: the test harness exits through `exit`,
/// failed tests included). Directories of test processes that died without it (killed)
/// are swept on first use.
pub fn scratch_dir() -> &'static std::path::Path {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    extern "C" fn remove_scratch() {
        if let Some(d) = DIR.get() {
            let _ = std::fs::remove_dir_all(d);
        }
    }
    DIR.get_or_init(|| {
        let tmp = std::env::temp_dir();
        sweep_dead_scratch(&tmp);
        let d = tmp.join(format!("msrpd-test-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("cannot create the test scratch directory");
        // SAFETY: registers a plain `extern "C" fn` with no arguments, as atexit wants.
        unsafe { libc::atexit(remove_scratch) };
        d
    })
}

/// Removes `msrpd-test-<pid>…` entries of processes that no longer exist.
fn sweep_dead_scratch(tmp: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(tmp) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix("msrpd-test-")) else {
            continue;
        };
        let pid: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let Ok(pid) = pid.parse::<i32>() else {
            continue;
        };
        // SAFETY: signal 0 only checks that the process exists.
        let gone = unsafe { libc::kill(pid, 0) } != 0
            && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
        if gone {
            let p = e.path();
            let _ = std::fs::remove_dir_all(&p).or_else(|_| std::fs::remove_file(&p));
        }
    }
}

/// The worker core that owns a session: the first 4 hex digits of its session id.
pub fn core_of(use_path: &str) -> u16 {
    let sid = use_path
        .rsplit('/')
        .next()
        .unwrap()
        .trim_end_matches(";tcp");
    u16::from_str_radix(&sid[..4], 16).unwrap()
}

/// A client for `me`, opened by `connect` and AUTHed at `relay_uri`, with its Use-Path
/// URI, whose session is on a worker `want` accepts: SO_REUSEPORT picks the worker, so
/// this reconnects up to 64 times.
pub fn auth_on_worker(
    connect: impl Fn(&str) -> Client,
    relay_uri: &str,
    me: &str,
    want: impl Fn(u16) -> bool,
) -> (Client, String) {
    (0..64)
        .map(|_| {
            let mut c = connect(me);
            let use_path = c.auth(relay_uri);
            (c, use_path)
        })
        .find(|(_, use_path)| want(core_of(use_path)))
        .expect("no connection landed on the wanted worker in 64 tries")
}
pub mod http;

/// The admin API's address of an in-process relay started with `admin` set.
pub fn admin_addr(r: &Relay) -> SocketAddr {
    r.handle
        .as_ref()
        .unwrap()
        .admin_addr()
        .expect("admin API runs")
}

/// `a` sends `b` message number `n` through the relay (To-Path: `ra`, `rb`, `b`): the
/// relay's 200 comes back, `b` gets the body whole and answers 200.
pub fn message(a: &mut Client, ra: &str, b: &mut Client, rb: &str, n: usize) {
    let body = format!("message {n}");
    let to_b = format!("{ra} {rb} {}", b.me);
    let mid = format!("m{n:08}");
    let range = format!("1-{}/{}", body.len(), body.len());
    a.send(
        &to_b,
        &[("Message-ID", mid.as_str()), ("Byte-Range", range.as_str())],
        Some(body.as_bytes()),
        Flag::Complete,
    );
    assert_eq!(a.read_frame().kind(), "200");
    let got = b.read_frame();
    assert_eq!(got.body, body.as_bytes());
    b.respond(&got, 200);
}

/// Two fresh clients (named after `n`) AUTH at `relay` and exchange one [`message`].
pub fn msrp_roundtrip(relay: &Relay, n: u32) {
    let mut a = relay.connect(&peer_uri(&format!("alice{n}"), 1111));
    let mut b = relay.connect(&peer_uri(&format!("bob{n}"), 2222));
    let ra = a.auth(&relay.uri());
    let rb = b.auth(&relay.uri());
    message(&mut a, &ra, &mut b, &rb, n as usize);
}

/// The value of the sample line `name value` in a Prometheus scrape (0 when absent).
pub fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0.0)
}

/// Whether `tool` runs here (`tool ARG` starts; the exit code does not matter): in CI
/// (`CI` set, `.ci/run` installs `package`) a missing one fails the test, elsewhere it
/// is skipped with a line saying so.
pub fn have_tool(tool: &str, arg: &str, package: &str) -> bool {
    match Command::new(tool).arg(arg).output() {
        Ok(_) => true,
        Err(e) if std::env::var_os("CI").is_none() => {
            eprintln!("SKIPPED {tool} tests: {tool} not runnable ({e}); apt-get install {package}");
            false
        }
        Err(e) => panic!("{tool} is needed in CI (.ci/run installs {package}): {e}"),
    }
}

/// The entry of user agent session `sid` in `GET /v1/ua/sessions`.
pub fn ua_session(api: SocketAddr, sid: &str) -> serde_json::Value {
    let list = http::request(api, "GET", "/v1/ua/sessions", &[], b"").json();
    list["sessions"]
        .as_array()
        .expect("a session list")
        .iter()
        .find(|s| s["id"] == sid)
        .unwrap_or_else(|| panic!("session {sid} is not listed: {list}"))
        .clone()
}

/// `promtool check metrics` on `text`; fails without promtool in CI (`.ci/run` installs
/// it), skips (saying so) elsewhere.
pub fn promtool_check(text: &str) {
    let path = temp_path("metrics.prom");
    std::fs::write(&path, text).unwrap();
    let out = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(&path).unwrap())
        .output();
    let _ = std::fs::remove_file(&path);
    match out {
        Ok(o) => assert!(
            o.status.success(),
            "promtool check metrics failed:\n{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) if std::env::var_os("CI").is_none() => {
            eprintln!(
                "SKIPPED promtool check: promtool not runnable ({e}); apt-get install prometheus"
            )
        }
        Err(e) => panic!("promtool is needed in CI (.ci/run installs it): {e}"),
    }
}

/// The value of `name=...` in a `WWW-Authenticate: Digest ...` header, quotes removed.
pub fn digest_param<'a>(v: &'a str, name: &str) -> Option<&'a str> {
    let v = v.strip_prefix("Digest ").unwrap_or(v);
    v.split(", ")
        .filter_map(|p| p.split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.trim_matches('"'))
}

/// A digest AUTH (SHA-256, qop=auth, RFC 2617 / RFC 7616 formulas computed here) for
/// `user` with `password` in `realm`, answering the 401 `challenge`; returns the
/// relay's response to it.
pub fn digest_answer(
    c: &mut Client,
    relay_uri: &str,
    challenge: &Frame,
    realm: &str,
    user: &str,
    password: &str,
) -> Frame {
    use sha2::Digest;
    let h = |s: String| hex::encode(sha2::Sha256::digest(s.as_bytes()));
    let ch = challenge
        .headers("WWW-Authenticate")
        .into_iter()
        .find(|v| v.contains("SHA-256"))
        .unwrap_or_else(|| panic!("no SHA-256 challenge: {}", challenge.head));
    let nonce = digest_param(ch, "nonce").expect("a nonce");
    let ha1 = h(format!("{user}:{realm}:{password}"));
    let ha2 = h(format!("AUTH:{relay_uri}"));
    let cnonce = "0a4f113b";
    let response = h(format!("{ha1}:{nonce}:00000001:{cnonce}:auth:{ha2}"));
    let header = format!(
        "Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{relay_uri}\", \
         response=\"{response}\", algorithm=SHA-256, cnonce=\"{cnonce}\", nc=00000001, qop=auth"
    );
    c.auth_with(relay_uri, &[("Authorization", &header)])
}

/// AUTH without credentials, then with `user`'s `password`: the final response (200 on
/// success, 401 or 403 on failure).
pub fn digest_login(
    c: &mut Client,
    relay_uri: &str,
    realm: &str,
    user: &str,
    password: &str,
) -> Frame {
    let ch = c.auth_with(relay_uri, &[]);
    assert_eq!(ch.kind(), "401", "no challenge: {}", ch.head);
    digest_answer(c, relay_uri, &ch, realm, user, password)
}
pub mod sip;
pub mod ua;
