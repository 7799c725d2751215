//! The page-mode gateway: SIP MESSAGE (RFC 3428, pager mode) <-> MSRP sessions (RFC
//! 4975, session mode), sans-I/O, one engine per core ([`Gateway`]). It never reads
//! the clock: time comes in as a parameter, every deadline sits in one ordered timer
//! set, so every rule here is tested on a virtual clock.
//!
//! # Sessions and keys
//! A session joins one MESSAGE-side conversation to one MSRP session of the user agent
//! ([`crate::ua::engine::Ua`]), by a correlation key rendered from a template over the
//! parties' addresses in their normal form ([`uri`]): `{from}|{to}` for MESSAGEs,
//! `{to}|{from}` for INVITEs by default, so that both directions of one conversation
//! meet. One key, one session: MESSAGEs for a key are routed to one core
//! ([`core_of`]) and a second MESSAGE for a key being set up joins its queue.
//!
//! # MESSAGE -> MSRP
//! [`config::MessageRule`]s pick the MESSAGEs (regular expressions on Request-URI,
//! From, To). A MESSAGE for a key without a session starts one
//! ([`GwAction::Originate`], From/To/R-URI mirrored by default) and is queued;
//! queued messages go in arrival order once the session is up, one handed to the user
//! agent at a time ([`GwAction::SendMsrp`], [`Gateway::handle_sent`]), so none is
//! lost, duplicated or reordered whatever arrives meanwhile. The queue is bounded in
//! count and bytes per session (503 with Retry-After beyond), the table in sessions.
//!
//! Delivery status: the MESSAGE is answered 200 when the MSRP side accepts the message
//! (its success REPORT) within the delivery wait (2 s by default), its mapped failure
//! when one is known within it ([`status::MSRP_TO_SIP`], [`status::SETUP_TO_SIP`]),
//! else 202 when the wait ends (RFC 3428 §7). A set-up that fails raises
//! `gateway.setup_failed`; messages already answered 202 and so not delivered are
//! told to their sender in a notice MESSAGE when the rule says `notify`.
//!
//! # MSRP -> MESSAGE
//! [`config::InviteRule`]s pick the INVITEs the user agent answers as gateway sessions
//! ([`Gateway::ua_rules`], [`Gateway::adopt`]). Every whole MSRP message received in a
//! gateway session becomes one MESSAGE ([`GwAction::SendMessage`]) with the session's
//! coordinates, one transaction at a time per session (RFC 3428 §8); a body over 1300
//! bytes is marked for TCP ([`UDP_MAX_BODY`], RFC 3428 §8) and refused with 413 when
//! the next hop is UDP-only. The MESSAGE's final response comes back as a REPORT
//! status ([`status::SIP_TO_MSRP`], [`GwAction::Report`]).
//!
//! # Lifecycle
//! A session ends 12 h after its last message either way or 2 h after its last
//! MESSAGE (lazily re-armed timers, no sweep), when either side ends it, or by
//! [`Gateway::end`] (the API's DELETE). Every MESSAGE taken is answered exactly once:
//! when its session ends, those never sent get [`ENDED_CODE`], those handed to the
//! MSRP side 202.
//!
//! # What the integration provides
//! - Each MESSAGE's server transaction handle (`T`), and an answer for every
//!   [`GwAction::Answer`]; results of [`GwAction::Originate`] and
//!   [`GwAction::SendMsrp`] back before the next turn.
//! - The user agent's events of gateway sessions ([`Gateway::handle_ua_event`]) and
//!   `ua.session.new` of sessions it answered ([`Gateway::adopt`]).
//! - For gateway sessions the user agent should hold the success REPORT of a received
//!   message until [`GwAction::Report`] (honest end-to-end status), and drop a
//!   Report the SEND did not ask for (Success-Report absent or `no`, Failure-Report
//!   `no`).

pub mod config;
pub mod engine;
pub mod status;
pub mod uri;

#[cfg(test)]
mod tests;

pub use config::{Config, GatewayFile, Hop, InviteRule, MessageRule};
pub use engine::{
    Answer, Coords, ENDED_CODE, Gateway, GatewayEvent, GwAction, Handled, MAX_KEY, OutMessage,
    SessionInfo, UDP_MAX_BODY, core_of,
};
