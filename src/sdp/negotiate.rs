//! Offer/answer for MSRP (RFC 3264 §5-§7 with RFC 4975 §8, RFC 6135 and RFC 6714).
//!
//! # Answering ([`answer`])
//! RFC 3264 §6: the answer has as many `m=` lines as the offer, in the same order. The
//! first usable MSRP stream ([`MsrpMedia::from_sdp`], plus our transport, plus the CEMA
//! address check below, plus a common content type) is accepted; every other stream
//! (other media, a second MSRP stream, a wrong protocol, a malformed MSRP stream) is
//! answered with port 0. No usable stream: 488 ([`SdpError::NotAcceptable`] with the
//! first stream's reason, an `m=message` one preferred).
//!
//! # Who connects (RFC 4975 §8.5, RFC 6135 §4.2)
//! Without `a=setup` (or with `holdconn`, §4.2.1) the offerer connects. An offer's
//! `active` makes us passive, `passive` (not allowed in offers, accepted) makes us
//! active, `actpass` lets us choose: [`SetupPref::Passive`] answers `passive` (§4.2.2
//! SHOULD when not behind a NAT), [`SetupPref::Active`] answers `active`. Our SDP
//! always carries `a=setup` (§4.2.1 MUST); offers say `actpass` for
//! [`SetupPref::Passive`] (we are reachable) and `active` for [`SetupPref::Active`].
//! The `m=` port is always our path's port (RFC 4975 §8.1 MUST), also when we are
//! active (RFC 6135's "should be 9" is not followed).
//!
//! # CEMA (RFC 6714)
//! With [`Local::cema`] we put `a=msrp-cema` in offers (§4.2 step 1) and in answers to
//! offers that have it, unless §4.3 says to fall back (both sides use relays, the
//! offerer uses a relay and is active, we use a relay and the offer is `passive`).
//! With CEMA in effect the active side connects to the `c=`/`m=` address instead of the
//! first `a=path` URI (§4.2, §4.3). An offer without `a=msrp-cema` whose `c=`/`m=` does
//! not match its first path URI is refused (§4.3 MUST, port 0). The match (§4.4) is
//! decided only when both sides are addresses or both names: resolving a name is I/O,
//! and an undecided match counts as a match. On our side, the §4.2 re-offer without
//! CEMA after a mismatched answer is left to the user agent ([`Session::cema`] is then
//! false and it connects to the path).
//!
//! # Content types: "an answer never offers what the other side cannot take"
//! `accept-types` says what a side will *receive* (RFC 4975 §8.6); a sender MUST NOT
//! send a type the peer did not list, nor a top-level type listed only in
//! `accept-wrapped-types`. What we write:
//! - our `accept-types` are ours narrowed to the offer's ([`FormatEntry::meet`]: our
//!   `*` against their `text/plain` gives `text/plain`, our `text/*` against their
//!   `text/html` gives `text/html`): we never advertise a type the peer did not show it
//!   can handle, so it is never invited to send what it cannot produce, and every type
//!   we list can also go back to it. Empty: 488 (§8.6 SHOULD).
//! - our `accept-wrapped-types` likewise, narrowed to the offer's accept-types and
//!   accept-wrapped-types together; omitted when empty.
//! - what we may send is the peer's lists unchanged, in [`Session::may_send`].
//!
//! The same check applies to an answer to our offer: no common type is 488.

use bytes::Bytes;

use super::SdpError;
use super::msrp::{
    Direction, FormatEntry, MsrpMedia, Setup, Transport, Unusable, accepts, meet_lists, parse_list,
};
use super::parse::{Sdp, is_fqdn};
use super::write::{self, MsrpLines};
use crate::codec::{Host, Uri};

/// How we prefer the connection to be set up (RFC 6135 §4.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetupPref {
    /// We can take connections (not behind a NAT): offers say `actpass`, answers to
    /// `actpass` say `passive`.
    Passive,
    /// We cannot take connections: offers say `active`, answers to `actpass` say
    /// `active`.
    Active,
}

/// What we are and what we accept, for writing offers and answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Local {
    /// Our `a=path`: relays first, our session URI last (RFC 4975 §8.2, §8.3), with
    /// ports. `msrps` URIs mean `TCP/TLS/MSRP`; the `m=` port is the first URI's.
    pub path: Vec<String>,
    /// The `c=` and `o=` address (IP or FQDN): ours, or our relay's (RFC 6714 §4.2).
    pub address: String,
    pub accept_types: Vec<String>,
    pub accept_wrapped_types: Vec<String>,
    pub max_size: Option<u64>,
    pub setup: SetupPref,
    /// We support CEMA (RFC 6714).
    pub cema: bool,
    /// `o=` username (`-` when none, RFC 8866 §5.2).
    pub username: String,
    pub session_id: u64,
    pub session_version: u64,
}

impl Local {
    /// One path URI, an address and the types we accept; passive, no CEMA, no
    /// max-size, `o=- <id> 1`.
    pub fn new(path: &str, address: &str, accept_types: &[&str]) -> Local {
        Local {
            path: vec![path.to_owned()],
            address: address.to_owned(),
            accept_types: accept_types.iter().map(|s| (*s).to_owned()).collect(),
            accept_wrapped_types: Vec::new(),
            max_size: None,
            setup: SetupPref::Passive,
            cema: false,
            username: "-".to_owned(),
            session_id: 1,
            session_version: 1,
        }
    }

    /// Checks what we would write and gives our transport and `m=` port.
    fn check(&self) -> Result<(Transport, u16), SdpError> {
        let mut first = None;
        if self.path.is_empty() || self.path.len() > super::msrp::MAX_PATH {
            return Err(SdpError::Local("path must hold 1 to 8 URIs"));
        }
        for p in &self.path {
            let u = Uri::parse(p).map_err(|_| SdpError::Local("bad path URI"))?;
            let port = u.port().ok_or(SdpError::Local("path URI without port"))?;
            first.get_or_insert((u.is_secure(), port));
        }
        let (secure, port) = first.ok_or(SdpError::Local("empty path"))?;
        if port == 0 {
            return Err(SdpError::Local("path port 0"));
        }
        let a = self.address.as_str();
        if !(a.parse::<core::net::IpAddr>().is_ok() || is_fqdn(a)) {
            return Err(SdpError::Local("bad address"));
        }
        if !super::parse::is_token(&self.username) {
            return Err(SdpError::Local("bad username"));
        }
        for l in [&self.accept_types, &self.accept_wrapped_types] {
            if l.iter()
                .any(|t| t.contains(' ') || FormatEntry::parse(t).is_none())
            {
                return Err(SdpError::Local("bad accept type"));
            }
        }
        if self.accept_types.is_empty() {
            return Err(SdpError::Local("no accept types"));
        }
        let t = if secure {
            Transport::Tls
        } else {
            Transport::Tcp
        };
        Ok((t, port))
    }

    fn relayed(&self) -> bool {
        self.path.len() > 1
    }

    fn types(&self) -> (Vec<FormatEntry<'_>>, Vec<FormatEntry<'_>>) {
        fn p(l: &[String]) -> Vec<FormatEntry<'_>> {
            l.iter().filter_map(|t| FormatEntry::parse(t)).collect()
        }
        (p(&self.accept_types), p(&self.accept_wrapped_types))
    }
}

/// Where the active side connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// An IP address (IPv6 without brackets) or a name to resolve.
    pub host: String,
    pub port: u16,
    pub tls: bool,
}

/// The negotiated MSRP session, for the user agent: the same from [`answer`] and from
/// [`take_answer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The index of the MSRP `m=` line.
    pub media_index: usize,
    pub transport: Transport,
    /// The peer's `a=path` as written, leftmost (first hop) first: our To-Path
    /// (RFC 4975 §8.2).
    pub peer_path: Vec<String>,
    /// Our `a=path`: our From-Path.
    pub local_path: Vec<String>,
    /// What we may send (RFC 4975 §8.6), as the peer wrote it.
    pub peer_accept_types: Vec<String>,
    pub peer_accept_wrapped_types: Vec<String>,
    /// The peer's `a=max-size`, a hint (§8.6).
    pub peer_max_size: Option<u64>,
    /// We connect (and send the first SEND, RFC 6135 §4.2.2); else we wait for the peer.
    pub active: bool,
    /// CEMA in effect (RFC 6714): `connect_to` is the peer's `c=`/`m=` address.
    pub cema: bool,
    /// Where to connect when `active`: the `c=`/`m=` address under CEMA, else the
    /// first `a=path` URI (RFC 4975 §8.3). `None` when passive.
    pub connect_to: Option<Endpoint>,
    /// Our direction (RFC 8866 §6.7, RFC 4975 §8.9): whether we may send and receive
    /// SEND requests with regular payloads.
    pub direction: Direction,
}

impl Session {
    /// May we send `content_type` to the peer, at the top level (`wrapped: None`) or
    /// wrapping `wrapped` (e.g. `message/cpim` around `text/plain`)? RFC 4975 §8.6: the
    /// top-level type must be in the peer's accept-types; a wrapped type in its
    /// accept-types or accept-wrapped-types.
    pub fn may_send(&self, content_type: &str, wrapped: Option<&str>) -> bool {
        accepts(&self.peer_accept_types, content_type)
            && wrapped.is_none_or(|w| {
                accepts(&self.peer_accept_types, w) || accepts(&self.peer_accept_wrapped_types, w)
            })
    }
}

/// Our answer to an offer: the SDP to send and the session it sets up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub sdp: Bytes,
    pub session: Session,
}

/// Our offer: the SDP to send, and what [`take_answer`] needs to read the answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    pub sdp: Bytes,
    local: Local,
}

/// Answers an SDP offer (see the module doc for the rules). Errors: 400 when the
/// offer is not SDP, 488 when no stream is usable, 500 when `local` is bad.
pub fn answer(offer: &[u8], local: &Local) -> Result<Answer, SdpError> {
    let sdp = Sdp::parse(offer)?;
    answer_sdp(&sdp, local)
}

/// [`answer`] for an offer already parsed.
pub fn answer_sdp(offer: &Sdp<'_>, local: &Local) -> Result<Answer, SdpError> {
    let (transport, port) = local.check()?;
    let (our_types, our_wrapped) = local.types();
    let mut chosen: Option<(usize, Session, String)> = None;
    let mut first_err: Option<Unusable> = None;
    for (i, m) in offer.media.iter().enumerate() {
        if chosen.is_some() {
            continue;
        }
        match accept_stream(offer, i, local, transport, port, &our_types, &our_wrapped) {
            Ok((s, lines)) => chosen = Some((i, s, lines)),
            Err(e) => {
                let msrpish = m.media.eq_ignore_ascii_case("message");
                if first_err.is_none() || (msrpish && first_err == Some(Unusable::NotMessage)) {
                    first_err = Some(e);
                }
            }
        }
    }
    let Some((index, session, lines)) = chosen else {
        return Err(SdpError::NotAcceptable(
            first_err.unwrap_or(Unusable::NoMedia),
        ));
    };
    let mut out = String::with_capacity(512);
    write::session(
        &mut out,
        &local.username,
        local.session_id,
        local.session_version,
        &local.address,
    );
    for (i, m) in offer.media.iter().enumerate() {
        if i == index {
            out.push_str(&lines);
        } else {
            write::rejected(&mut out, m.media, m.proto, m.formats);
        }
    }
    Ok(Answer {
        sdp: Bytes::from(out),
        session,
    })
}

/// Accepts media section `i` or says why not; gives the session and the section's
/// lines for the answer.
fn accept_stream(
    offer: &Sdp<'_>,
    i: usize,
    local: &Local,
    transport: Transport,
    port: u16,
    our_types: &[FormatEntry<'_>],
    our_wrapped: &[FormatEntry<'_>],
) -> Result<(Session, String), Unusable> {
    let mm = MsrpMedia::from_sdp(offer, i)?;
    if mm.transport != transport {
        return Err(Unusable::Transport);
    }
    if !mm.cema && mm.address_matches_path() == Some(false) {
        return Err(Unusable::AddressMismatch);
    }
    let types = meet_lists(our_types, &mm.accept_types);
    if types.is_empty() {
        return Err(Unusable::NoCommonType);
    }
    let mut theirs_all = mm.accept_types.clone();
    theirs_all.extend_from_slice(&mm.accept_wrapped_types);
    let wrapped = meet_lists(our_wrapped, &theirs_all);
    // RFC 4975 §8.5 default and RFC 6135 §4.2.
    let active = match mm.setup {
        None | Some(Setup::Active) | Some(Setup::HoldConn) => false,
        Some(Setup::Passive) => true,
        Some(Setup::ActPass) => local.setup == SetupPref::Active,
    };
    let offerer_active = !active;
    // RFC 6714 §4.3 fallbacks.
    let cema = local.cema
        && mm.cema
        && !(mm.uses_relay() && local.relayed())
        && !(mm.uses_relay() && offerer_active)
        && !(local.relayed() && mm.setup == Some(Setup::Passive));
    let direction = mm.direction.reverse();
    let session = session_from(&mm, local, active, cema, direction);
    let t: Vec<&str> = types.iter().map(|e| e.raw).collect();
    let w: Vec<&str> = wrapped.iter().map(|e| e.raw).collect();
    let mut lines = String::new();
    write::msrp_media(
        &mut lines,
        &MsrpLines {
            port,
            transport,
            path: &local.path,
            accept_types: &t,
            accept_wrapped_types: &w,
            max_size: local.max_size,
            setup: if active {
                Setup::Active
            } else {
                Setup::Passive
            },
            cema,
            direction: (mm.explicit_direction || direction != Direction::SendRecv)
                .then_some(direction),
        },
    );
    Ok((session, lines))
}

fn session_from(
    mm: &MsrpMedia<'_>,
    local: &Local,
    active: bool,
    cema: bool,
    direction: Direction,
) -> Session {
    let tls = mm.transport == Transport::Tls;
    let connect_to = active.then(|| {
        if cema {
            Endpoint {
                host: mm.connection.address.to_owned(),
                port: mm.port,
                tls,
            }
        } else {
            let first = mm.path.first();
            Endpoint {
                host: first.map_or_else(String::new, |u| match u.host() {
                    Host::V6(a) => a.to_string(),
                    h => h.to_string(),
                }),
                port: first.and_then(|u| u.port()).unwrap_or(mm.port),
                tls,
            }
        }
    });
    let own = |l: &[FormatEntry<'_>]| l.iter().map(|e| e.raw.to_owned()).collect();
    Session {
        media_index: mm.index,
        transport: mm.transport,
        peer_path: mm.path.iter().map(|u| u.as_str().to_owned()).collect(),
        local_path: local.path.clone(),
        peer_accept_types: own(&mm.accept_types),
        peer_accept_wrapped_types: own(&mm.accept_wrapped_types),
        peer_max_size: mm.max_size,
        active,
        cema,
        connect_to,
        direction,
    }
}

/// Writes our offer: one `m=message` stream (RFC 3264 §5, RFC 4975 §8).
pub fn offer(local: &Local) -> Result<Offer, SdpError> {
    let (transport, port) = local.check()?;
    let t: Vec<&str> = local.accept_types.iter().map(String::as_str).collect();
    let w: Vec<&str> = local
        .accept_wrapped_types
        .iter()
        .map(String::as_str)
        .collect();
    let mut out = String::with_capacity(512);
    write::session(
        &mut out,
        &local.username,
        local.session_id,
        local.session_version,
        &local.address,
    );
    write::msrp_media(
        &mut out,
        &MsrpLines {
            port,
            transport,
            path: &local.path,
            accept_types: &t,
            accept_wrapped_types: &w,
            max_size: local.max_size,
            setup: match local.setup {
                SetupPref::Passive => Setup::ActPass,
                SetupPref::Active => Setup::Active,
            },
            cema: local.cema,
            direction: None,
        },
    );
    Ok(Offer {
        sdp: Bytes::from(out),
        local: local.clone(),
    })
}

/// Reads the answer to our offer (RFC 3264 §7). Errors: 400 when it is not SDP or has
/// not exactly our one `m=` line, 488 when it refused the stream (port 0), is not
/// usable MSRP, uses another transport, has no type in common with ours, or when both
/// sides would connect (our `active` answered `active`).
///
/// Who connects: the answer's `active` makes us passive; `passive`, no `a=setup`,
/// `holdconn` or an (invalid) `actpass` leave the offerer, us, active (RFC 4975 §8.5,
/// RFC 6135 §4.2). CEMA is in effect when both sides signalled it (RFC 6714 §4.2).
pub fn take_answer(offer: &Offer, answer: &[u8]) -> Result<Session, SdpError> {
    let sdp = Sdp::parse(answer)?;
    if sdp.media.len() != 1 {
        return Err(SdpError::AnswerMismatch);
    }
    let local = &offer.local;
    let (transport, _) = local.check()?;
    let mm = MsrpMedia::from_sdp(&sdp, 0).map_err(SdpError::NotAcceptable)?;
    if mm.transport != transport {
        return Err(SdpError::NotAcceptable(Unusable::Transport));
    }
    let active = match (local.setup, mm.setup) {
        (SetupPref::Active, Some(Setup::Active)) => {
            return Err(SdpError::NotAcceptable(Unusable::SetupConflict));
        }
        (SetupPref::Passive, Some(Setup::Active)) => false,
        _ => true,
    };
    let (ours, _) = local.types();
    if meet_lists(&ours, &mm.accept_types).is_empty() {
        return Err(SdpError::NotAcceptable(Unusable::NoCommonType));
    }
    let cema = local.cema && mm.cema;
    Ok(session_from(
        &mm,
        local,
        active,
        cema,
        mm.direction.reverse(),
    ))
}

/// Parses an accept-types value as written in SDP (for callers checking
/// configuration): `None` when it is not a valid list.
pub fn parse_accept_types(value: &str) -> Option<Vec<FormatEntry<'_>>> {
    parse_list(value)
}
