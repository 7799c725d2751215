//! The relay core (RFC 4976 §6): what an MSRP relay decides, as plain state machines.
//!
//! - [`engine`]: per-core routing, AUTH handling, transactions, timers and REPORTs;
//!   inputs are `handle_*(now, ..)`, outputs are [`Action`]s.
//! - [`auth`]: HTTP Digest (RFC 4976 §9.1) with stateless nonces.
//! - [`users`]: the htdigest-format user database.
//! - [`session`]: the session ids handed out in Use-Path (RFC 4976 §6.3).
//! - [`types`]: the relay's configuration and its cross-core messages.
//!
//! Ids, connection kinds, actions, close reasons and counters are shared by every engine
//! and live in [`crate::conn`].
//!
//! Nothing here touches sockets, threads or the clock.

pub mod auth;
pub mod engine;
pub mod session;
pub mod types;
pub mod users;

pub use crate::conn::PeerIdentity;
pub use engine::Relay;
pub use engine::{ConnInfo, SessionInfo};
pub use types::{AuthRefusal, RelayConfig, RelayEvent, RelayMsg, SessionEndReason};

/// What the relay asks the server to do.
pub type RelayAction = crate::conn::Action<RelayMsg>;
