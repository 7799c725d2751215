//! msrpd: an MSRP (RFC 4975) relay (RFC 4976), built thread-per-core on io_uring.
//!
//! Layers, bottom up:
//! - [`codec`]: the MSRP wire format and nothing else.
//! - [`relay`]: what an RFC 4976 relay decides, as sans-I/O state machines.
//! - [`server`]: threads, monoio runtimes and sockets.
//! - [`config`]: command line and configuration file.

pub mod codec;
pub mod config;
pub mod conn;
pub mod relay;
pub mod server;
