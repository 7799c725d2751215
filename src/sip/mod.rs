//! A sans-IO SIP stack (RFC 3261, with RFC 3581 `rport` and the RFC 5626 §4.4.1 CRLF
//! keepalive): messages, transactions, dialogs, digest client authentication and the
//! answers to requests nobody owns. Nothing here touches a socket, a thread or the
//! clock: time comes in as an argument, bytes go out through `poll_*` calls.
//!
//! - [`msg`]: parsing datagrams and streams into [`Message`]s (borrowed views over one
//!   `Bytes`), with [`Limits`], compact forms, folding and list headers (§7, §18.3, §25).
//! - [`header`]: typed views: URIs, name-addr, Via, CSeq, parameters (§19, §20).
//! - [`write`]: building messages, responses (§8.2.6), the non-2xx ACK (§17.1.1.3) and
//!   CANCEL (§9.1).
//! - [`ids`]: branches, tags and Call-IDs that carry the owning core.
//! - [`txn`]: the transaction table, all four §17 state machines and their timers.
//! - [`dialog`]: §12 dialogs.
//! - [`auth`]: digest answers to 401/407 (§22.2, §22.3; RFC 2617, RFC 8760).
//! - [`outbound`]: sending requests: next hop, transport, resolution handed to the I/O
//!   layer, digest retries (§8.1.2, §18.1.1, §22.2).
//! - [`core`]: the stateless answer to a request no user agent owns (§8.2).

pub mod auth;
mod chars;
pub mod core;
pub mod dialog;
pub mod header;
pub mod ids;
pub mod msg;
pub mod name;
pub mod outbound;
pub mod txn;
pub mod write;

pub use header::{CSeq, NameAddr, Params, Uri, ValueError, Via};
pub use msg::{Frame, Header, Invalid, Limits, Message, Method, ParseError};
pub use name::HeaderName;
pub use write::{Writer, reason_phrase, response_to};
