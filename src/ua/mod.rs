//! The MSRP user agent (an endpoint, RFC 4975): the sans-I/O receive side, whole-message
//! reassembly ([`reassembly`]), the endpoint's responses and REPORTs ([`report`]) and
//! the message/cpim parser for its events ([`cpim`], RFC 3862), and AUTH with a relay
//! that carries its sessions ([`relay_client`], RFC 4976 §5.1).

pub mod cpim;
pub mod engine;
pub mod reassembly;
pub mod relay_client;
pub mod report;
