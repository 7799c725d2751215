//! Raw SIP for the tests: requests built as text, sent over UDP or TCP to 127.0.0.1,
//! responses read back whole (Content-Length framing) with timeouts.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

pub const WAIT: Duration = Duration::from_secs(5);

/// A request from `from` (whose port is in the Via, with rport).
pub fn request(method: &str, transport: &str, from: SocketAddr, n: u32, extra: &str) -> String {
    format!(
        "{method} sip:msrpd@127.0.0.1 SIP/2.0\r\n\
Via: SIP/2.0/{transport} {from};branch=z9hG4bKtest{n};rport\r\n\
Max-Forwards: 70\r\n\
To: <sip:msrpd@127.0.0.1>\r\n\
From: <sip:test@127.0.0.1>;tag=t{n}\r\n\
Call-ID: call{n}@127.0.0.1\r\n\
CSeq: {n} {method}\r\n\
{extra}Content-Length: 0\r\n\r\n"
    )
}

/// A UDP client socket on 127.0.0.1.
pub fn udp() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s
}

/// The next datagram, as text (`None` after `wait`).
pub fn recv_udp(s: &UdpSocket, wait: Duration) -> Option<String> {
    s.set_read_timeout(Some(wait)).unwrap();
    let mut b = vec![0u8; 65_536];
    match s.recv_from(&mut b) {
        Ok((n, _)) => Some(String::from_utf8_lossy(&b[..n]).into_owned()),
        Err(_) => None,
    }
}

/// Sends `req` over UDP to `to` and returns the first response. Like any SIP client
/// over UDP it retransmits (RFC 3261 §17.1.2.2, Timer E: 500 ms doubling to 4 s) until
/// Timer F (32 s): a datagram the kernel drops because the server's receive buffer is
/// full (a test that floods it) is lost on the wire, not by the server.
pub fn udp_exchange(to: SocketAddr, build: impl Fn(SocketAddr) -> String) -> String {
    let s = udp();
    let me = s.local_addr().unwrap();
    let req = build(me);
    let deadline = Instant::now() + Duration::from_secs(32);
    let mut e = Duration::from_millis(500);
    loop {
        s.send_to(req.as_bytes(), to).unwrap();
        if let Some(r) = recv_udp(&s, e) {
            return r;
        }
        assert!(Instant::now() < deadline, "a SIP response over UDP");
        e = (e * 2).min(Duration::from_secs(4));
    }
}

/// The status code of a response's status line.
pub fn status(resp: &str) -> u16 {
    assert!(resp.starts_with("SIP/2.0 "), "not a response: {resp:?}");
    resp[8..11].parse().unwrap()
}

/// A header's value (first one; exact name).
pub fn header<'a>(resp: &'a str, name: &str) -> Option<&'a str> {
    resp.split("\r\n")
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':').map(str::trim))
}

/// A TCP connection speaking SIP.
pub struct SipTcp {
    pub s: TcpStream,
    pub buf: Vec<u8>,
}

impl SipTcp {
    pub fn connect(to: SocketAddr) -> SipTcp {
        let s = TcpStream::connect(to).unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        s.set_nodelay(true).unwrap();
        SipTcp { s, buf: Vec::new() }
    }

    pub fn local(&self) -> SocketAddr {
        self.s.local_addr().unwrap()
    }

    pub fn send(&mut self, b: &[u8]) {
        let _ = self.s.write_all(b);
    }

    fn fill(&mut self, deadline: Instant) -> bool {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        self.s.set_read_timeout(Some(left)).unwrap();
        let mut b = [0u8; 65_536];
        match self.s.read(&mut b) {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&b[..n]);
                true
            }
        }
    }

    /// Reads exactly `n` bytes (or fewer on close/timeout).
    pub fn read_exact_bytes(&mut self, n: usize) -> Vec<u8> {
        let deadline = Instant::now() + WAIT;
        while self.buf.len() < n && self.fill(deadline) {}
        let n = n.min(self.buf.len());
        self.buf.drain(..n).collect()
    }

    /// The next whole response, or `None` (closed or timed out).
    pub fn response(&mut self) -> Option<String> {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buf[..end + 4]).into_owned();
                let cl: usize = header(&head, "Content-Length")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                if self.buf.len() >= end + 4 + cl {
                    let all: Vec<u8> = self.buf.drain(..end + 4 + cl).collect();
                    return Some(String::from_utf8_lossy(&all).into_owned());
                }
            }
            if !self.fill(deadline) {
                return None;
            }
        }
    }

    /// Whether the server closes the connection within `wait` (bytes before the close
    /// are kept).
    pub fn closed_within(&mut self, wait: Duration) -> bool {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            self.s.set_read_timeout(Some(left)).unwrap();
            let mut b = [0u8; 65_536];
            match self.s.read(&mut b) {
                Ok(0) => return true,
                Ok(n) => self.buf.extend_from_slice(&b[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
                Err(_) => return false,
            }
        }
    }
}
