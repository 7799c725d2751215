//! Raw SIP text and MSRP frames for the user agent tests: status lines, headers, tags,
//! the SDP answer's path, and a small MSRP reader over a TCP stream. Every read has a
//! timeout.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(10);

pub fn status(m: &str) -> u16 {
    m.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

pub fn header<'a>(m: &'a str, name: &str) -> Option<&'a str> {
    m.split("\r\n").find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

pub fn to_tag(m: &str) -> String {
    header(m, "To")
        .and_then(|t| t.split(";tag=").nth(1))
        .expect("a To tag")
        .to_string()
}

/// The a=path of an SDP answer in a SIP message.
pub fn answer_path(m: &str) -> String {
    m.split("\r\n")
        .find_map(|l| l.strip_prefix("a=path:"))
        .expect("a=path in the answer")
        .to_string()
}

/// Reads MSRP frames off a stream (enough of a parser for this test: heads end at a
/// blank line or an end-line; bodies are short and end at the end-line).
pub struct Msrp {
    pub s: TcpStream,
    pub buf: Vec<u8>,
}

impl Msrp {
    pub fn connect(to: SocketAddr) -> Msrp {
        let s = TcpStream::connect(to).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        Msrp { s, buf: Vec::new() }
    }

    pub fn send(&mut self, f: &str) {
        self.s.write_all(f.as_bytes()).unwrap();
    }

    /// The next whole frame as text.
    pub fn frame(&mut self) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(end) = frame_end(&self.buf) {
                let f: Vec<u8> = self.buf.drain(..end).collect();
                return String::from_utf8_lossy(&f).into_owned();
            }
            assert!(
                Instant::now() < deadline,
                "no whole frame: {:?}",
                String::from_utf8_lossy(&self.buf)
            );
            let mut b = [0u8; 65536];
            match self.s.read(&mut b) {
                Ok(0) => panic!("closed; had {:?}", String::from_utf8_lossy(&self.buf)),
                Ok(n) => self.buf.extend_from_slice(&b[..n]),
                Err(e) => panic!("read: {e}"),
            }
        }
    }

    pub fn closed_within(&mut self, t: Duration) -> bool {
        self.s.set_read_timeout(Some(t)).unwrap();
        let mut b = [0u8; 1024];
        matches!(self.s.read(&mut b), Ok(0) | Err(_))
    }
}

/// Where the first frame in `b` ends (after its end-line's CRLF).
pub fn frame_end(b: &[u8]) -> Option<usize> {
    let text = std::str::from_utf8(b).ok()?;
    let tid = text.strip_prefix("MSRP ")?.split(' ').next()?;
    let end = format!("-------{tid}");
    let at = text.find(&end)?;
    let rest = &text[at + end.len()..];
    (rest.len() >= 3).then(|| at + end.len() + 3)
}

pub fn send_frame(to: &str, from: &str, tid: &str, mid: &str, body: &str, extra: &str) -> String {
    format!(
        "MSRP {tid} SEND\r\nTo-Path: {to}\r\nFrom-Path: {from}\r\nMessage-ID: {mid}\r\n\
         Byte-Range: 1-{n}/{n}\r\n{extra}Content-Type: text/plain\r\n\r\n{body}\r\n-------{tid}$\r\n",
        n = body.len()
    )
}

/// The next SIP message on `sock` whose start line begins with none of `skip` (100
/// Trying and retransmissions); at most 32 messages, each within the socket's timeout.
pub fn recv_sip(sock: &std::net::UdpSocket, skip: &[&str]) -> String {
    let mut b = vec![0u8; 65536];
    for _ in 0..32 {
        let (n, _) = sock.recv_from(&mut b).expect("a SIP message from msrpd");
        let m = String::from_utf8_lossy(&b[..n]).into_owned();
        if !skip.iter().any(|s| m.starts_with(s)) {
            return m;
        }
    }
    panic!("only {skip:?} from msrpd");
}

/// The connection msrpd (or its relay) makes to a listener of the test's, which must be
/// non-blocking; within [`WAIT`].
pub fn accept_msrp(l: &std::net::TcpListener) -> Msrp {
    let deadline = Instant::now() + WAIT;
    loop {
        match l.accept() {
            Ok((s, _)) => {
                s.set_nonblocking(false).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                return Msrp { s, buf: Vec::new() };
            }
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => panic!("msrpd never connected to our path: {e}"),
        }
    }
}
