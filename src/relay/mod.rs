//! The relay core (RFC 4976 §6): sans-I/O state, authentication and the user database.

pub mod auth;
pub mod users;
