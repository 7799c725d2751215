//! msrpd: an MSRP (RFC 4975) relay (RFC 4976), built thread-per-core on io_uring; the
//! house its user agent, page-mode gateway, SIP stack and WebSocket transport move into.
//!
//! # Layers, bottom up
//! - [`codec`]: the MSRP wire format and nothing else (no I/O, no clock).
//! - [`conn`]: the boundary between the server and its engines: connection ids and
//!   kinds, the [`conn::Action`]s an engine asks for, close reasons, counters, and the
//!   per-connection send queue ([`conn::SendQueue`]) that decides what goes out next.
//! - Engines, sans-I/O state machines: [`relay`] (RFC 4976) and the MSRP user agent
//!   [`ua`] (RFC 4975 endpoints over SIP INVITE); a gateway next, its own module.
//! - [`sdp`]: SDP for MSRP sessions (RFC 8866, RFC 4975 §8), offer and answer.
//! - [`nosip`]: what is neither MSRP nor SIP on our ports (counted, shed, events).
//! - [`sip`]: a sans-I/O SIP stack (RFC 3261): messages, transactions, dialogs, digest
//!   client authentication, the answers to requests nobody owns.
//! - [`server`]: threads, monoio runtimes, sockets, TLS, the cross-core mesh.
//! - [`admin`]: the control thread beside the workers (tokio and axum there only): the
//!   management API, the event stream, webhooks and Prometheus metrics.
//! - [`config`]: command line and configuration file.
//!
//! # Who owns what
//! - The **server** owns connections. Each worker's [`conn::Slots`] hands out the
//!   [`conn::ConnId`]s (core, slot, generation); an engine is told of a connection with
//!   `handle_open(now, id, kind)` and of its end with `handle_closed(now, id)`. An engine
//!   that needs an outbound connection takes an id from the same `Slots` and asks for it
//!   with [`conn::Action::Connect`].
//! - The server reads each connection's bytes, decides its protocol by its first bytes
//!   (MSRP today; SIP, HTTP upgrades and a handler for anything else plug in at the
//!   reader's first read in `server::worker`), scans MSRP frames with the codec and routes
//!   each to the engine that owns its first To-Path URI: a connection whose first frame
//!   names a user agent session id ([`ua::engine::is_session_id`]) is the user agent's,
//!   as is an outbound connection it opened (to a peer or to its relay); any other the
//!   relay's.
//! - An **engine** takes input with `handle_*(now, ..)`, gives output with
//!   `poll_action()` and says when it next needs the clock with `poll_timeout()`: the
//!   worker sleeps until the earliest deadline of all its engines. Time is always passed
//!   in, so every rule is testable with a virtual clock (`tests/relay_engine.rs` for one
//!   core, `tests/engine_cores.rs` for two cores with their mesh and send queues).
//! - What an engine writes goes to a connection's [`conn::SendQueue`], on its core or,
//!   through the server's mesh, on another: bytes of one frame in order, responses and
//!   REPORTs never stuck behind a big chunk (RFC 4975 §7.1.1 interruption), frames of
//!   different senders alternating, memory bounded by the readers' backpressure. An
//!   engine's own cross-core messages (the relay's [`relay::RelayMsg`]) travel in the
//!   server's engine-neutral envelope.
//!
//! # Adding an engine (the relay as the worked example)
//! 1. A module with the engine's state machine: `handle_open`, `handle_closed`, frame
//!    inputs (`handle_head`, `handle_body`, `handle_end`), `handle_timeout`,
//!    `poll_action() -> Option<conn::Action<M>>` and `poll_timeout()`, where `M` is its
//!    cross-core message ([`relay::Relay`], [`relay::RelayMsg`]).
//! 2. A variant for `M` in the server's mesh envelope, and a field for the engine in
//!    the worker, whose `dispatch` drains its actions like the relay's.
//! 3. A rule in the worker's routing that sends it the frames (or connections) it owns:
//!    the relay owns the URIs it handed out in Use-Path, whose session ids name their
//!    core ([`relay::session`]); a user agent owns its session URIs, likewise.
//!
//! Codecs, `conn` and engines never name monoio, rustls, sockets, files or
//! `Instant::now()`; `.ci/run` greps for it.

pub mod admin;
pub mod codec;
pub mod config;
pub mod conn;
pub mod gateway;
pub mod nosip;
pub mod relay;
pub mod sdp;
pub mod server;
pub mod sip;
pub mod ua;
