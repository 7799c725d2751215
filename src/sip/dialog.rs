//! SIP dialogs (RFC 3261 §12): the state two user agents share after a dialog-creating
//! request (INVITE; SUBSCRIBE/REFER work the same way) is answered with a 2xx or a
//! 101-199 with a To tag.
//!
//! - Creation: [`Dialog::uac`] from our request and its response (§12.1.2: route set =
//!   Record-Route of the response reversed, remote target = its Contact, local CSeq =
//!   the request's), [`Dialog::uas`] from the request we answer (§12.1.1: Record-Route in
//!   order, remote target = the request's Contact, remote CSeq = the request's).
//! - An early dialog becomes confirmed on the 2xx, whose Record-Route replaces the route
//!   set (§13.2.2.4); [`Dialog::refresh_target`] takes the Contact of a target refresh
//!   (re-INVITE, UPDATE, or their 2xx, §12.2.1.2 and §12.2.2).
//! - In-dialog requests we send: [`Dialog::request`] (§12.2.1.1: From/To with tags,
//!   Call-ID, CSeq + 1, Request-URI and Route from the remote target and route set,
//!   loose routing when the first route has `lr`, strict routing otherwise) and
//!   [`Dialog::ack`] for a 2xx (§13.2.2.4: the INVITE's CSeq number, a new branch).
//! - In-dialog requests we receive: [`Dialog::check_request`] (§12.2.2: a CSeq lower
//!   than the remote sequence number gets 500).
//!
//! Dialogs are found by [`DialogId`]: Call-ID, local tag, remote tag. Our local tags come
//! from [`super::ids::tag`] and so name the owning core.

use super::header::{NameAddr, Uri};
use super::msg::{Message, Method};
use super::name::HeaderName;
use super::write::Writer;

/// §12: Call-ID, local tag and remote tag (the remote tag is empty for an RFC 2543
/// peer that sent none).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DialogId {
    pub call_id: String,
    pub local_tag: String,
    pub remote_tag: String,
}

impl DialogId {
    /// The dialog a request we received belongs to (§12.2.2): local tag = To tag,
    /// remote tag = From tag. `None` without Call-ID or To tag.
    pub fn of_incoming_request(req: &Message) -> Option<DialogId> {
        Some(DialogId {
            call_id: req.call_id()?.to_string(),
            local_tag: req.to_tag()?.to_string(),
            remote_tag: req.from_tag().unwrap_or("").to_string(),
        })
    }

    /// The dialog a response to our request belongs to: local = From tag, remote = To
    /// tag. `None` without Call-ID, From tag or To tag.
    pub fn of_response(resp: &Message) -> Option<DialogId> {
        Some(DialogId {
            call_id: resp.call_id()?.to_string(),
            local_tag: resp.from_tag()?.to_string(),
            remote_tag: resp.to_tag()?.to_string(),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialogState {
    Early,
    Confirmed,
}

/// Why a dialog could not be made or a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DialogError {
    #[error("response does not create a dialog (needs 101-299 with a To tag)")]
    NotDialogCreating,
    #[error("missing or bad {0}")]
    Header(HeaderName),
    #[error("no Contact to take the remote target from")]
    NoContact,
    #[error("the message does not belong to this dialog")]
    OtherDialog,
    /// §12.2.2: CSeq lower than the remote sequence number; answer 500.
    #[error("CSeq out of order")]
    CSeqOutOfOrder,
}

impl DialogError {
    /// The status to answer an in-dialog request with.
    pub fn status(self) -> u16 {
        match self {
            DialogError::CSeqOutOfOrder => 500,
            DialogError::OtherDialog => 481,
            _ => 400,
        }
    }
}

/// One dialog's state (§12).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dialog {
    pub id: DialogId,
    pub state: DialogState,
    /// The local sequence number; `None` until we send a request (UAS side).
    pub local_seq: Option<u32>,
    /// The remote sequence number; `None` until the peer sends one (UAC side).
    pub remote_seq: Option<u32>,
    /// Our From/To value without its tag (the local URI, as a name-addr).
    pub local: String,
    /// The peer's From/To value without its tag.
    pub remote: String,
    /// Where in-dialog requests go: the URI of the peer's Contact.
    pub remote_target: String,
    /// Route values (name-addr with parameters) in the order our requests carry them.
    pub route_set: Vec<String>,
    /// §12.1.1 / §12.1.2: sips Request-URI over TLS.
    pub secure: bool,
}

/// `v` (a From or To value) without its `tag` parameter: the URI as a name-addr.
fn without_tag(v: &str) -> Result<String, ()> {
    let n = NameAddr::parse(v).map_err(|_| ())?;
    let mut out = String::new();
    if let Some(d) = n.display {
        out.push('"');
        out.push_str(d);
        out.push_str("\" ");
    }
    out.push('<');
    out.push_str(n.uri);
    out.push('>');
    for (name, value) in n.params.iter() {
        if name.eq_ignore_ascii_case("tag") {
            continue;
        }
        out.push(';');
        out.push_str(name);
        if let Some(v) = value {
            out.push('=');
            out.push_str(v);
        }
    }
    Ok(out)
}

fn first_contact(m: &Message) -> Option<String> {
    m.contacts()
        .find(|c| c.uri != "*")
        .map(|c| c.uri.to_string())
}

fn route_values(m: &Message) -> Vec<String> {
    m.values(HeaderName::RecordRoute)
        .map(|v| v.to_string())
        .collect()
}

impl Dialog {
    /// The UAC's dialog from its request and a 101-299 response with a To tag
    /// (§12.1.2). `secure`: the request went over TLS (sips Request-URI is checked
    /// here). A 1xx without Contact takes the Request-URI as remote target until the
    /// 2xx brings one.
    pub fn uac(req: &Message, resp: &Message, over_tls: bool) -> Result<Dialog, DialogError> {
        let code = resp.status().ok_or(DialogError::NotDialogCreating)?;
        if !(101..300).contains(&code) {
            return Err(DialogError::NotDialogCreating);
        }
        let remote_tag = resp.to_tag().ok_or(DialogError::NotDialogCreating)?;
        let call_id = req
            .call_id()
            .ok_or(DialogError::Header(HeaderName::CallId))?;
        let local_tag = req
            .from_tag()
            .ok_or(DialogError::Header(HeaderName::From))?;
        let cseq = req.cseq().ok_or(DialogError::Header(HeaderName::CSeq))?;
        let remote_target = match first_contact(resp) {
            Some(c) => c,
            None if code < 200 => req.request_uri().to_string(),
            None => return Err(DialogError::NoContact),
        };
        let mut route_set = route_values(resp);
        route_set.reverse();
        Ok(Dialog {
            id: DialogId {
                call_id: call_id.to_string(),
                local_tag: local_tag.to_string(),
                remote_tag: remote_tag.to_string(),
            },
            state: if code < 200 {
                DialogState::Early
            } else {
                DialogState::Confirmed
            },
            local_seq: Some(cseq.seq),
            remote_seq: None,
            local: req
                .get(HeaderName::From)
                .and_then(|v| without_tag(v).ok())
                .ok_or(DialogError::Header(HeaderName::From))?,
            remote: resp
                .get(HeaderName::To)
                .and_then(|v| without_tag(v).ok())
                .ok_or(DialogError::Header(HeaderName::To))?,
            remote_target,
            route_set,
            secure: over_tls && Uri::parse(req.request_uri()).is_ok_and(|u| u.is_sips()),
        })
    }

    /// The UAS's dialog from the request it answers with `code` (101-299) and
    /// `local_tag` in To (§12.1.1).
    pub fn uas(
        req: &Message,
        code: u16,
        local_tag: &str,
        over_tls: bool,
    ) -> Result<Dialog, DialogError> {
        if !(101..300).contains(&code) || local_tag.is_empty() {
            return Err(DialogError::NotDialogCreating);
        }
        let call_id = req
            .call_id()
            .ok_or(DialogError::Header(HeaderName::CallId))?;
        let cseq = req.cseq().ok_or(DialogError::Header(HeaderName::CSeq))?;
        Ok(Dialog {
            id: DialogId {
                call_id: call_id.to_string(),
                local_tag: local_tag.to_string(),
                remote_tag: req.from_tag().unwrap_or("").to_string(),
            },
            state: if code < 200 {
                DialogState::Early
            } else {
                DialogState::Confirmed
            },
            local_seq: None,
            remote_seq: Some(cseq.seq),
            local: req
                .get(HeaderName::To)
                .and_then(|v| without_tag(v).ok())
                .ok_or(DialogError::Header(HeaderName::To))?,
            remote: req
                .get(HeaderName::From)
                .and_then(|v| without_tag(v).ok())
                .ok_or(DialogError::Header(HeaderName::From))?,
            remote_target: first_contact(req).ok_or(DialogError::NoContact)?,
            route_set: route_values(req),
            secure: over_tls && Uri::parse(req.request_uri()).is_ok_and(|u| u.is_sips()),
        })
    }

    /// A later response to the dialog-creating request on the UAC side: a 2xx confirms
    /// an early dialog and recomputes its route set (§13.2.2.4); any 101-299 with a
    /// Contact refreshes the remote target.
    pub fn update_uac(&mut self, resp: &Message) -> Result<(), DialogError> {
        if DialogId::of_response(resp).as_ref() != Some(&self.id) {
            return Err(DialogError::OtherDialog);
        }
        let code = resp.status().unwrap_or(0);
        if (200..300).contains(&code) && self.state == DialogState::Early {
            self.state = DialogState::Confirmed;
            let mut rs = route_values(resp);
            rs.reverse();
            self.route_set = rs;
        }
        if (101..300).contains(&code) {
            self.refresh_target(resp);
        }
        Ok(())
    }

    /// The UAS sent its 2xx: the dialog is confirmed (§12.1.1).
    pub fn confirm(&mut self) {
        self.state = DialogState::Confirmed;
    }

    /// A target refresh (re-INVITE, UPDATE, or their 2xx): the Contact, if any,
    /// becomes the remote target (§12.2.1.2, §12.2.2). The route set does not change.
    pub fn refresh_target(&mut self, m: &Message) {
        if let Some(c) = first_contact(m) {
            self.remote_target = c;
        }
    }

    /// Checks a request the peer sent in this dialog (§12.2.2) and takes its CSeq as
    /// the remote sequence number. ACK and CANCEL carry the number of the request they
    /// belong to and are not checked. A lower CSeq is [`DialogError::CSeqOutOfOrder`]
    /// (answer 500); an INVITE or UPDATE refreshes the remote target.
    pub fn check_request(&mut self, req: &Message) -> Result<(), DialogError> {
        if DialogId::of_incoming_request(req).as_ref() != Some(&self.id) {
            return Err(DialogError::OtherDialog);
        }
        let cseq = req.cseq().ok_or(DialogError::Header(HeaderName::CSeq))?;
        let method = req.method().unwrap_or(Method::Other);
        if matches!(method, Method::Ack | Method::Cancel) {
            return Ok(());
        }
        if self.remote_seq.is_some_and(|r| cseq.seq < r) {
            return Err(DialogError::CSeqOutOfOrder);
        }
        self.remote_seq = Some(cseq.seq);
        if matches!(method, Method::Invite | Method::Update) {
            self.refresh_target(req);
        }
        Ok(())
    }

    /// Request-URI, Route values and next hop of an in-dialog request (§12.2.1.1).
    pub fn routing(&self) -> (String, Vec<String>, String) {
        let Some(first) = self.route_set.first() else {
            let t = self.remote_target.clone();
            return (t.clone(), Vec::new(), t);
        };
        let first_uri = NameAddr::parse(first).ok().and_then(|n| n.parsed_uri());
        match first_uri {
            Some(u) if u.lr() => (
                self.remote_target.clone(),
                self.route_set.clone(),
                u.as_str().to_string(),
            ),
            Some(u) => {
                // Strict router: it goes into the Request-URI (without headers, §19.1.1)
                // and the remote target becomes the last Route.
                let ruri = u.without_headers().to_string();
                let mut routes: Vec<String> = self.route_set.get(1..).unwrap_or_default().to_vec();
                routes.push(format!("<{}>", self.remote_target));
                (ruri.clone(), routes, ruri)
            }
            None => {
                let t = self.remote_target.clone();
                (t.clone(), Vec::new(), t)
            }
        }
    }

    /// An in-dialog request (§12.2.1.1): local CSeq + 1 (starting at `initial_seq` when
    /// empty, §8.1.1.5), `via` as the Via value (with a fresh branch), Route headers,
    /// Max-Forwards 70, From/To with tags, Call-ID. Returns the writer (add Contact for
    /// target refreshes, a body, then finish) and the next hop URI (§8.1.2: first Route,
    /// else the Request-URI) to resolve.
    pub fn request(&mut self, method: &str, via: &str, initial_seq: u32) -> (Writer, String) {
        let seq = match self.local_seq {
            Some(s) => s.wrapping_add(1) & 0x7FFF_FFFF,
            None => initial_seq & 0x7FFF_FFFF,
        };
        self.local_seq = Some(seq);
        self.write(method, via, seq)
    }

    /// The ACK for a 2xx to the INVITE with CSeq `invite_seq` (§13.2.2.4): same number,
    /// method ACK, routed like any in-dialog request; the CSeq state does not move.
    pub fn ack(&self, invite_seq: u32, via: &str) -> (Writer, String) {
        self.write("ACK", via, invite_seq)
    }

    fn write(&self, method: &str, via: &str, seq: u32) -> (Writer, String) {
        let (ruri, routes, next_hop) = self.routing();
        let mut w = Writer::request(method, &ruri);
        w.header("Via", via);
        w.header("Max-Forwards", "70");
        for r in &routes {
            w.header("Route", r);
        }
        w.header("From", &tagged(&self.local, &self.id.local_tag));
        w.header("To", &tagged(&self.remote, &self.id.remote_tag));
        w.header("Call-ID", &self.id.call_id);
        w.header("CSeq", &format!("{seq} {method}"));
        (w, next_hop)
    }
}

/// `v;tag=t`, or `v` when the tag is empty (§12.2.1.1: a null tag is omitted).
fn tagged(v: &str, tag: &str) -> String {
    if tag.is_empty() {
        v.to_string()
    } else {
        format!("{v};tag={tag}")
    }
}
