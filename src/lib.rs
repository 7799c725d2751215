//! msrpd: an MSRP (RFC 4975) relay (RFC 4976), built thread-per-core on io_uring.
//!
//! Layers: [`codec`] is the wire format and nothing else.

pub mod codec;
pub mod relay;
