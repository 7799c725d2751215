//! What arrives on the MSRP ports that is neither MSRP nor SIP (nor the HTTP `GET` of
//! the WebSocket seam): the decision of Kamailio's `nosip` module, sans-IO (the caller
//! passes the time). A packet is a UDP datagram, or the first bytes of a TCP/TLS
//! connection: what the first-bytes sniff had read when it decided (at most
//! [`crate::server::sip::SNIFF_MAX`] plus one read, about 3 KiB), or what came before the
//! peer closed or the head timeout struck. The connection is then closed: a stream that
//! starts wrong cannot be resynchronised (RFC 3261 §18.3 says the same of SIP), and one
//! kept open would hold a slot and a buffer for nothing.
//!
//! - Under [`NosipConfig::min_bytes`] (`--nosip-min-bytes`, default 32, Kamailio's
//!   limit): a NAT keepalive, dropped and counted ([`Decision::Short`]).
//! - Matching [`NosipConfig::skip`] (`--nosip-skip`), or not matching
//!   [`NosipConfig::matches`] (`--nosip-match`) when that is set: counted
//!   ([`Decision::Skipped`]).
//! - The rest: counted, logged at debug, and a `nosip.packet` event ([`NosipPacket`]:
//!   transport, source address and port, length, the first [`MAX_CONTENT`] bytes), at
//!   most [`PER_SOURCE`] per source address and [`PER_CORE`] per core in each
//!   [`WINDOW`], with at most [`MAX_SOURCES`] addresses remembered: a flood is counted
//!   and shed ([`Decision::Shed`]), never queued. The events then go through the
//!   worker's bounded event queue ([`crate::admin::event::QUEUE_CAPACITY`]), so a
//!   worker holds at most that many [`MAX_CONTENT`]-byte copies whatever comes in.
//!
//! The regexes are the `regex` crate's (on bytes, linear time in the packet, no
//! backtracking), compiled once at start; a pattern that does not compile is refused
//! there ([`crate::config`]).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::Bytes;

/// Content bytes an event carries at most.
pub const MAX_CONTENT: usize = 4096;
/// The rate window.
pub const WINDOW: Duration = Duration::from_secs(1);
/// Events per source address in a window.
pub const PER_SOURCE: u32 = 20;
/// Events per core in a window.
pub const PER_CORE: u32 = 1000;
/// Source addresses tracked in a window (more: shed).
pub const MAX_SOURCES: usize = 4096;

/// The handler's settings.
#[derive(Debug, Clone)]
pub struct NosipConfig {
    /// Shorter packets are dropped (default 32, as Kamailio).
    pub min_bytes: usize,
    /// Only matching packets become events (`None`: all).
    pub matches: Option<regex::bytes::Regex>,
    /// Matching packets never become events.
    pub skip: Option<regex::bytes::Regex>,
}

impl Default for NosipConfig {
    fn default() -> NosipConfig {
        NosipConfig {
            min_bytes: 32,
            matches: None,
            skip: None,
        }
    }
}

/// A packet handed to the event stream.
#[derive(Debug, Clone)]
pub struct NosipPacket {
    /// `udp`, `tcp` or `tls`.
    pub transport: &'static str,
    pub source: SocketAddr,
    /// The packet's whole length.
    pub len: usize,
    /// Its first [`MAX_CONTENT`] bytes.
    pub content: Bytes,
}

/// What became of a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Under the minimum size: a keepalive.
    Short,
    /// Left out by the skip or match regex.
    Skipped,
    /// Over the rate: counted only.
    Shed,
    /// Handled: logged and made an event.
    Event,
}

/// One core's handler.
#[derive(Debug)]
pub struct Nosip {
    cfg: NosipConfig,
    window_start: Option<Instant>,
    in_window: u32,
    sources: HashMap<IpAddr, u32>,
}

impl Nosip {
    pub fn new(cfg: NosipConfig) -> Nosip {
        Nosip {
            cfg,
            window_start: None,
            in_window: 0,
            sources: HashMap::new(),
        }
    }

    /// Decides about `data` from `from` at `now` (the rate windows run on it).
    pub fn decide(&mut self, now: Instant, from: IpAddr, data: &[u8]) -> Decision {
        if data.len() < self.cfg.min_bytes {
            return Decision::Short;
        }
        if self.cfg.skip.as_ref().is_some_and(|r| r.is_match(data))
            || self.cfg.matches.as_ref().is_some_and(|r| !r.is_match(data))
        {
            return Decision::Skipped;
        }
        if self
            .window_start
            .is_none_or(|t| now.saturating_duration_since(t) >= WINDOW)
        {
            self.window_start = Some(now);
            self.in_window = 0;
            self.sources.clear();
        }
        if self.in_window >= PER_CORE
            || (self.sources.len() >= MAX_SOURCES && !self.sources.contains_key(&from))
        {
            return Decision::Shed;
        }
        let n = self.sources.entry(from).or_insert(0);
        if *n >= PER_SOURCE {
            return Decision::Shed;
        }
        *n += 1;
        self.in_window += 1;
        Decision::Event
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions_and_shedding() {
        let re = |s: &str| Some(regex::bytes::Regex::new(s).unwrap());
        let mut n = Nosip::new(NosipConfig {
            min_bytes: 32,
            matches: re("^resume"),
            skip: re("ignore"),
        });
        let t = Instant::now();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let long = |s: &str| format!("{s}{}", "x".repeat(40));
        assert_eq!(n.decide(t, ip, b"resume"), Decision::Short);
        assert_eq!(n.decide(t, ip, long("hello").as_bytes()), Decision::Skipped);
        assert_eq!(
            n.decide(t, ip, long("resume ignore").as_bytes()),
            Decision::Skipped
        );
        for _ in 0..PER_SOURCE {
            assert_eq!(n.decide(t, ip, long("resume").as_bytes()), Decision::Event);
        }
        assert_eq!(n.decide(t, ip, long("resume").as_bytes()), Decision::Shed);
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        assert_eq!(
            n.decide(t, other, long("resume").as_bytes()),
            Decision::Event
        );
        assert_eq!(
            n.decide(t + WINDOW, ip, long("resume").as_bytes()),
            Decision::Event
        );
    }
}
