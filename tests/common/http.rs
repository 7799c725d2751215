//! A small blocking HTTP/1.1 client for the admin API tests (one request per
//! connection, chunked bodies decoded, a read timeout on every socket), an SSE reader,
//! and a test HTTP server that records the bodies POSTed to it (the webhook's target).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

/// How long any read of these helpers may block.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// A response: status, headers (names lower-cased), body.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    /// The body as JSON (panics with the body when it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.text()))
    }
}

/// Sends one request and reads the whole response.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    let mut s = TcpStream::connect(addr).expect("connect to admin API");
    s.set_read_timeout(Some(HTTP_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(HTTP_TIMEOUT)).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (n, v) in headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    // A server may answer (413) before reading a big body, and close: ignore that.
    let _ = s.write_all(body);
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    parse_response(&raw)
        .unwrap_or_else(|| panic!("bad HTTP response: {:?}", String::from_utf8_lossy(&raw)))
}

pub fn get(addr: SocketAddr, path: &str) -> Response {
    request(addr, "GET", path, &[], b"")
}

/// Status (0 for a request), headers and where the body starts.
type Head = (u16, Vec<(String, String)>, usize);

fn parse_head(raw: &[u8]) -> Option<Head> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    let mut lines = head.split("\r\n");
    // A response's status; 0 for a request (its second word is the path).
    let status = lines.next()?.split(' ').nth(1)?.parse().unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Some((status, headers, end + 4))
}

fn parse_response(raw: &[u8]) -> Option<Response> {
    let (status, headers, at) = parse_head(raw)?;
    let mut r = Response {
        status,
        headers,
        body: Vec::new(),
    };
    let rest = &raw[at..];
    r.body = if r
        .header("transfer-encoding")
        .is_some_and(|t| t.eq_ignore_ascii_case("chunked"))
    {
        let mut d = Dechunk::default();
        d.feed(rest);
        d.out
    } else {
        rest.to_vec()
    };
    Some(r)
}

/// Decodes a chunked body as it arrives.
#[derive(Default)]
struct Dechunk {
    pending: Vec<u8>,
    out: Vec<u8>,
}

impl Dechunk {
    fn feed(&mut self, b: &[u8]) {
        self.pending.extend_from_slice(b);
        loop {
            let Some(nl) = self.pending.windows(2).position(|w| w == b"\r\n") else {
                return;
            };
            let size_text = String::from_utf8_lossy(&self.pending[..nl]).to_string();
            let Ok(size) =
                usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            else {
                return;
            };
            if self.pending.len() < nl + 2 + size + 2 {
                return;
            }
            self.out
                .extend_from_slice(&self.pending[nl + 2..nl + 2 + size]);
            self.pending.drain(..nl + 2 + size + 2);
            if size == 0 {
                return;
            }
        }
    }
}

/// A `GET /v1/events` subscriber.
pub struct Sse {
    s: TcpStream,
    chunked: bool,
    dechunk: Dechunk,
    /// Decoded body text not yet split into events.
    text: String,
    pub status: u16,
}

/// One server-sent event.
#[derive(Debug, Clone)]
pub struct SseEvent {
    pub event: String,
    pub data: serde_json::Value,
}

impl Sse {
    /// Opens the stream and waits for its first bytes (the server's comment), so the
    /// subscription is in place when this returns.
    pub fn open(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Sse {
        let mut s = TcpStream::connect(addr).expect("connect to admin API");
        s.set_read_timeout(Some(HTTP_TIMEOUT)).unwrap();
        let mut req =
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n");
        for (n, v) in headers {
            req.push_str(&format!("{n}: {v}\r\n"));
        }
        req.push_str("\r\n");
        s.write_all(req.as_bytes()).unwrap();
        let mut raw = Vec::new();
        let mut buf = [0u8; 4096];
        let (status, headers, at) = loop {
            if let Some(h) = parse_head(&raw) {
                break h;
            }
            let n = s.read(&mut buf).expect("SSE response head");
            assert!(n > 0, "SSE stream closed before its head");
            raw.extend_from_slice(&buf[..n]);
        };
        let chunked = headers
            .iter()
            .any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
        let mut sse = Sse {
            s,
            chunked,
            dechunk: Dechunk::default(),
            text: String::new(),
            status,
        };
        sse.push(&raw[at..]);
        if status == 200 {
            // The hello comment.
            let deadline = Instant::now() + HTTP_TIMEOUT;
            while !sse.text.contains(": msrpd events") {
                assert!(
                    Instant::now() < deadline,
                    "no hello comment on the SSE stream"
                );
                sse.read_some(deadline);
            }
        }
        sse
    }

    fn push(&mut self, b: &[u8]) {
        if self.chunked {
            self.dechunk.feed(b);
            let out = std::mem::take(&mut self.dechunk.out);
            self.text.push_str(&String::from_utf8_lossy(&out));
        } else {
            self.text.push_str(&String::from_utf8_lossy(b));
        }
    }

    fn read_some(&mut self, deadline: Instant) -> bool {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        self.s.set_read_timeout(Some(left)).unwrap();
        let mut buf = [0u8; 8192];
        match self.s.read(&mut buf) {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.push(&buf[..n]);
                true
            }
        }
    }

    /// The next event (comments and keep-alives skipped), or `None` after `timeout`.
    pub fn next(&mut self, timeout: Duration) -> Option<SseEvent> {
        let deadline = Instant::now() + timeout;
        loop {
            while let Some(end) = self.text.find("\n\n") {
                let block: String = self.text.drain(..end + 2).collect();
                let mut event = String::new();
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        event = v.trim().to_string();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if data.is_empty() {
                    continue;
                }
                let data = serde_json::from_str(&data)
                    .unwrap_or_else(|e| panic!("SSE data is not JSON ({e}): {data:?}"));
                return Some(SseEvent { event, data });
            }
            if !self.read_some(deadline) {
                return None;
            }
        }
    }

    /// Waits for an event whose `type` is `kind` (others are collected and returned too).
    pub fn wait_for(&mut self, kind: &str, timeout: Duration) -> (SseEvent, Vec<SseEvent>) {
        let deadline = Instant::now() + timeout;
        let mut others = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let e = self
                .next(left)
                .unwrap_or_else(|| panic!("no {kind} event within {timeout:?}; got {others:?}"));
            if e.data["type"] == kind {
                return (e, others);
            }
            others.push(e);
        }
    }
}

/// A test HTTP server that answers every request with its status (200 unless set;
/// 0: never answers, a blackholed hook that accepts and reads) and records the bodies
/// of POSTs. [`HookServer::stop`] closes the listener and every open connection.
pub struct HookServer {
    pub addr: SocketAddr,
    pub bodies: mpsc::Receiver<String>,
    status: Arc<AtomicU16>,
    stop: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HookServer {
    pub fn start() -> HookServer {
        HookServer::answering(200)
    }

    /// A hook that answers `status` (0: accepts, reads, and never answers).
    pub fn answering(status: u16) -> HookServer {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        l.set_nonblocking(true).unwrap();
        let (tx, bodies) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let status = Arc::new(AtomicU16::new(status));
        let conns: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (st, cs, answer) = (stop.clone(), conns.clone(), status.clone());
        let thread = std::thread::spawn(move || {
            while !st.load(Ordering::SeqCst) {
                match l.accept() {
                    Ok((s, _)) => {
                        s.set_nonblocking(false).unwrap();
                        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                        cs.lock().unwrap().push(s.try_clone().unwrap());
                        let tx = tx.clone();
                        let answer = answer.clone();
                        std::thread::spawn(move || serve(s, tx, answer));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        HookServer {
            addr,
            bodies,
            status,
            stop,
            conns,
            thread: Some(thread),
        }
    }

    /// From now on requests are answered with `status` (0: not at all).
    pub fn set_status(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }

    /// Stops listening and closes every connection: the port refuses from now on.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        for c in self.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
    }
}

impl Drop for HookServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Serves requests on one keep-alive connection, answering each with `status` (none
/// when it is 0).
fn serve(mut s: TcpStream, tx: mpsc::Sender<String>, status: Arc<AtomicU16>) {
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        if let Some((_, headers, at)) = parse_head(&raw) {
            let len: usize = headers
                .iter()
                .find(|(n, _)| n == "content-length")
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0);
            if raw.len() >= at + len {
                let body = String::from_utf8_lossy(&raw[at..at + len]).into_owned();
                raw.drain(..at + len);
                let _ = tx.send(body);
                let code = status.load(Ordering::SeqCst);
                if code == 0 {
                    continue;
                }
                let answer = format!("HTTP/1.1 {code} Whatever\r\ncontent-length: 2\r\n\r\nok");
                if s.write_all(answer.as_bytes()).is_err() {
                    return;
                }
                continue;
            }
        }
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
        }
    }
}
