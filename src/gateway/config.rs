//! The gateway's rules and limits, and the `[gateway]` tables of the configuration file
//! they are read from (`[[gateway.message]]`, `[[gateway.invite]]`), checked once at
//! start like the user agent's `[[ua_answer]]` tables.
//!
//! ```toml
//! [gateway]
//! delivery_wait = 2.0          # seconds a MESSAGE waits for its 200 (else 202)
//! session_timeout = 43200      # seconds since the last message either way
//! message_timeout = 7200       # seconds since the last MESSAGE
//!
//! [[gateway.message]]          # which MESSAGEs go to an MSRP session
//! ruri = "^sip:.*@msrp\\.example\\.com"
//! key = "{from}|{to}"          # the default
//! invite_ruri = "sip:{to.user}@chat.example.com"   # mirrored when absent
//! accept_types = ["text/plain", "message/cpim"]
//! notify = true                # tell the sender when a set-up fails after its 202
//!
//! [[gateway.invite]]           # which INVITEs are gateway sessions
//! to = "@sms\\.example\\.com"
//! key = "{to}|{from}"          # the default: a MESSAGE from To to From finds it
//! next_hop = "sip:proxy.example.com;transport=udp"
//! udp_only = true
//! ```

use std::time::Duration;

use serde::Deserialize;

use super::uri::Template;

/// Where the MESSAGEs of a session go: an outbound proxy (else the Request-URI's
/// host), and whether it can only be reached over UDP (RFC 3428 §8: then a body over
/// [`super::UDP_MAX_BODY`] bytes cannot go at all).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hop {
    pub proxy: Option<String>,
    pub udp_only: bool,
}

/// Which MESSAGEs go to MSRP (`msrp_gw`'s `msg_to_msrp`). The first rule that matches
/// the Request-URI, From and To (regular expressions on the values as written; a
/// missing one matches anything) takes the MESSAGE.
#[derive(Debug, Clone)]
pub struct MessageRule {
    pub ruri: Option<regex::Regex>,
    pub from: Option<regex::Regex>,
    pub to: Option<regex::Regex>,
    /// The correlation key (default `{from}|{to}`).
    pub key: Template,
    /// The MSRP side's INVITE: From, To, Request-URI. Mirrored by default: the
    /// MESSAGE's From URI, To URI and Request-URI.
    pub invite_from: Template,
    pub invite_to: Template,
    pub invite_ruri: Template,
    /// An outbound proxy for that INVITE instead of the user agent's.
    pub invite_proxy: Option<String>,
    /// What the MESSAGE side may send, and what the INVITE offers (RFC 4975 §8.6).
    pub accept_types: Vec<String>,
    /// Where the MSRP side's replies go as MESSAGEs (to the MESSAGE's sender).
    pub reply_hop: Hop,
    /// Send the sender a notice MESSAGE when messages already answered 202 are not
    /// delivered (set-up failed, session ended before they went).
    pub notify: bool,
}

/// Which INVITEs the user agent answers as gateway sessions (`msrp_gw_answer`), and
/// the MESSAGEs their messages become.
#[derive(Debug, Clone)]
pub struct InviteRule {
    pub ruri: Option<regex::Regex>,
    pub from: Option<regex::Regex>,
    pub to: Option<regex::Regex>,
    /// The correlation key (default `{to}|{from}`, so that the page-mode party's
    /// MESSAGEs back, under a rule keyed `{from}|{to}`, find the session).
    pub key: Template,
    /// The MESSAGEs' From, To and Request-URI (default: the INVITE's From URI, To
    /// URI, and the To URI as Request-URI).
    pub message_from: Template,
    pub message_to: Template,
    pub message_ruri: Template,
    pub hop: Hop,
    /// What the user agent accepts in these sessions.
    pub accept_types: Vec<String>,
}

fn matches(re: &Option<regex::Regex>, v: &str) -> bool {
    re.as_ref().is_none_or(|re| re.is_match(v))
}

impl MessageRule {
    /// A rule taking every MESSAGE, with the defaults.
    pub fn any() -> MessageRule {
        MessageRule {
            ruri: None,
            from: None,
            to: None,
            key: Template::fixed("{from}|{to}"),
            invite_from: Template::fixed("{from.uri}"),
            invite_to: Template::fixed("{to.uri}"),
            invite_ruri: Template::fixed("{ruri.uri}"),
            invite_proxy: None,
            accept_types: DEFAULT_ACCEPT.iter().map(|s| s.to_string()).collect(),
            reply_hop: Hop::default(),
            notify: false,
        }
    }
    pub fn matches(&self, ruri: &str, from: &str, to: &str) -> bool {
        matches(&self.ruri, ruri) && matches(&self.from, from) && matches(&self.to, to)
    }
}

impl InviteRule {
    /// A rule taking every INVITE, with the defaults.
    pub fn any() -> InviteRule {
        InviteRule {
            ruri: None,
            from: None,
            to: None,
            key: Template::fixed("{to}|{from}"),
            message_from: Template::fixed("{from.uri}"),
            message_to: Template::fixed("{to.uri}"),
            message_ruri: Template::fixed("{to.uri}"),
            hop: Hop::default(),
            accept_types: DEFAULT_ACCEPT.iter().map(|s| s.to_string()).collect(),
        }
    }
    pub fn matches(&self, ruri: &str, from: &str, to: &str) -> bool {
        matches(&self.ruri, ruri) && matches(&self.from, from) && matches(&self.to, to)
    }
    /// The user agent rule that answers these INVITEs (put before the UA's own).
    pub fn ua_rule(&self) -> crate::ua::engine::Rule {
        crate::ua::engine::Rule {
            ruri: self.ruri.clone(),
            from: self.from.clone(),
            to: self.to.clone(),
            accept_types: self.accept_types.clone(),
            accept_wrapped_types: Vec::new(),
        }
    }
}

/// The types that pass through when a rule names none (RFC 3428 §7: text/plain is a
/// MUST; message/cpim, RFC 3862, a may).
pub const DEFAULT_ACCEPT: [&str; 2] = ["text/plain", "message/cpim"];

/// The engine's configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub message_rules: Vec<MessageRule>,
    pub invite_rules: Vec<InviteRule>,
    /// How long a MESSAGE's answer waits for the MSRP side's acceptance (200); after
    /// it, 202. Zero: 202 as soon as the message is handed to the session, and no
    /// success REPORT is asked for.
    pub delivery_wait: Duration,
    /// Sessions at once on this core; a MESSAGE for a new key beyond gets 503.
    pub max_sessions: usize,
    /// Messages held per session before they go (set-up, connection not bound yet,
    /// MSRP backpressure): count and bytes; beyond, 503 with Retry-After.
    pub max_queue: usize,
    pub max_queue_bytes: usize,
    /// Sent messages per session whose MESSAGE still waits for its 200; beyond, a
    /// sent message's MESSAGE is answered 202 at once.
    pub max_waiting: usize,
    /// The largest body either way (a MESSAGE beyond gets 413; an MSRP message beyond
    /// a failure REPORT 413).
    pub max_body: usize,
    /// MSRP messages waiting per session to go as MESSAGEs (RFC 3428 §8: one
    /// MESSAGE transaction at a time to a destination); beyond, REPORT 413.
    pub max_out_queue: usize,
    pub session_timeout: Duration,
    pub message_timeout: Duration,
    /// The Retry-After of a 503 (whole seconds).
    pub retry_after: Duration,
    /// How soon a send the session could not take yet (no connection bound, MSRP
    /// backpressure) is tried again.
    pub retry_interval: Duration,
    /// The From of notice MESSAGEs; `None`: the original MESSAGE's To.
    pub notice_from: Option<String>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            message_rules: Vec::new(),
            invite_rules: Vec::new(),
            delivery_wait: Duration::from_secs(2),
            max_sessions: 10_000,
            max_queue: 128,
            max_queue_bytes: 1 << 20,
            max_waiting: 256,
            max_body: 64 * 1024,
            max_out_queue: 64,
            session_timeout: Duration::from_secs(12 * 3600),
            message_timeout: Duration::from_secs(2 * 3600),
            retry_after: Duration::from_secs(5),
            retry_interval: Duration::from_millis(100),
            notice_from: None,
        }
    }
}

/// One `[[gateway.message]]` table.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageFile {
    pub ruri: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub key: Option<String>,
    pub invite_from: Option<String>,
    pub invite_to: Option<String>,
    pub invite_ruri: Option<String>,
    pub invite_proxy: Option<String>,
    pub accept_types: Option<Vec<String>>,
    pub reply_proxy: Option<String>,
    pub reply_udp_only: Option<bool>,
    pub notify: Option<bool>,
}

/// One `[[gateway.invite]]` table.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InviteFile {
    pub ruri: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub key: Option<String>,
    pub message_from: Option<String>,
    pub message_to: Option<String>,
    pub message_ruri: Option<String>,
    pub next_hop: Option<String>,
    pub udp_only: Option<bool>,
    pub accept_types: Option<Vec<String>>,
}

/// The `[gateway]` table.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayFile {
    pub message: Option<Vec<MessageFile>>,
    pub invite: Option<Vec<InviteFile>>,
    /// Seconds (fractions allowed).
    pub delivery_wait: Option<f64>,
    pub max_sessions: Option<usize>,
    pub max_queue: Option<usize>,
    pub max_queue_bytes: Option<usize>,
    pub max_waiting: Option<usize>,
    pub max_body: Option<usize>,
    pub max_out_queue: Option<usize>,
    /// Seconds.
    pub session_timeout: Option<u64>,
    pub message_timeout: Option<u64>,
    pub retry_after: Option<u64>,
    pub notice_from: Option<String>,
}

/// What is wrong with a `[gateway]` table.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GatewayConfigError {
    #[error("bad {what} {value:?}: {reason}")]
    Rule {
        /// `gateway.message.key` and the like.
        what: String,
        value: String,
        reason: String,
    },
    #[error("gateway.{0} must be between {1} and {2}")]
    Range(&'static str, u64, u64),
}

fn bad(what: &str, value: &str, reason: impl Into<String>) -> GatewayConfigError {
    GatewayConfigError::Rule {
        what: what.to_string(),
        value: value.to_string(),
        reason: reason.into(),
    }
}

fn regex(what: &str, p: &Option<String>) -> Result<Option<regex::Regex>, GatewayConfigError> {
    let Some(p) = p else {
        return Ok(None);
    };
    regex::RegexBuilder::new(p)
        .size_limit(1 << 20)
        .build()
        .map(Some)
        .map_err(|e| {
            bad(
                what,
                p,
                format!("not a regular expression the regex crate takes:\n{e}"),
            )
        })
}

fn template(
    what: &str,
    t: &Option<String>,
    dflt: &Template,
) -> Result<Template, GatewayConfigError> {
    match t {
        None => Ok(dflt.clone()),
        Some(s) => Template::parse(s).map_err(|e| bad(what, s, e)),
    }
}

fn media_types(what: &str, v: &Option<Vec<String>>) -> Result<Vec<String>, GatewayConfigError> {
    let Some(list) = v else {
        return Ok(DEFAULT_ACCEPT.iter().map(|s| s.to_string()).collect());
    };
    if list.is_empty() {
        return Err(bad(what, "[]", "a rule must accept at least one type"));
    }
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    for t in list {
        let ok = t == "*"
            || t.split_once('/')
                .is_some_and(|(a, b)| token(a) && (b == "*" || token(b)));
        if !ok {
            return Err(bad(
                what,
                t,
                "use a media type such as text/plain, text/* or *",
            ));
        }
    }
    Ok(list.clone())
}

fn proxy(what: &str, p: &Option<String>) -> Result<Option<String>, GatewayConfigError> {
    match p {
        None => Ok(None),
        Some(u) => crate::sip::outbound::check_uri(u)
            .map(|()| Some(u.trim().to_string()))
            .map_err(|e| bad(what, u, e)),
    }
}

/// Checks the `[gateway]` table and builds the engine's configuration (its rules in
/// the file's order).
pub fn resolve(f: &GatewayFile) -> Result<Config, GatewayConfigError> {
    let mut c = Config::default();
    let m0 = MessageRule::any();
    for t in f.message.as_deref().unwrap_or_default() {
        c.message_rules.push(MessageRule {
            ruri: regex("gateway.message.ruri", &t.ruri)?,
            from: regex("gateway.message.from", &t.from)?,
            to: regex("gateway.message.to", &t.to)?,
            key: template("gateway.message.key", &t.key, &m0.key)?,
            invite_from: template(
                "gateway.message.invite_from",
                &t.invite_from,
                &m0.invite_from,
            )?,
            invite_to: template("gateway.message.invite_to", &t.invite_to, &m0.invite_to)?,
            invite_ruri: template(
                "gateway.message.invite_ruri",
                &t.invite_ruri,
                &m0.invite_ruri,
            )?,
            invite_proxy: proxy("gateway.message.invite_proxy", &t.invite_proxy)?,
            accept_types: media_types("gateway.message.accept_types", &t.accept_types)?,
            reply_hop: Hop {
                proxy: proxy("gateway.message.reply_proxy", &t.reply_proxy)?,
                udp_only: t.reply_udp_only.unwrap_or(false),
            },
            notify: t.notify.unwrap_or(false),
        });
    }
    let i0 = InviteRule::any();
    for t in f.invite.as_deref().unwrap_or_default() {
        c.invite_rules.push(InviteRule {
            ruri: regex("gateway.invite.ruri", &t.ruri)?,
            from: regex("gateway.invite.from", &t.from)?,
            to: regex("gateway.invite.to", &t.to)?,
            key: template("gateway.invite.key", &t.key, &i0.key)?,
            message_from: template(
                "gateway.invite.message_from",
                &t.message_from,
                &i0.message_from,
            )?,
            message_to: template("gateway.invite.message_to", &t.message_to, &i0.message_to)?,
            message_ruri: template(
                "gateway.invite.message_ruri",
                &t.message_ruri,
                &i0.message_ruri,
            )?,
            hop: Hop {
                proxy: proxy("gateway.invite.next_hop", &t.next_hop)?,
                udp_only: t.udp_only.unwrap_or(false),
            },
            accept_types: media_types("gateway.invite.accept_types", &t.accept_types)?,
        });
    }
    if let Some(w) = f.delivery_wait {
        if !(0.0..=30.0).contains(&w) {
            return Err(GatewayConfigError::Range("delivery_wait", 0, 30));
        }
        c.delivery_wait = Duration::from_secs_f64(w);
    }
    let range = |name: &'static str, v: Option<usize>, lo: u64, hi: u64, into: &mut usize| {
        if let Some(v) = v {
            if (v as u64) < lo || v as u64 > hi {
                return Err(GatewayConfigError::Range(name, lo, hi));
            }
            *into = v;
        }
        Ok(())
    };
    range(
        "max_sessions",
        f.max_sessions,
        1,
        10_000_000,
        &mut c.max_sessions,
    )?;
    range("max_queue", f.max_queue, 1, 100_000, &mut c.max_queue)?;
    range(
        "max_queue_bytes",
        f.max_queue_bytes,
        1,
        1 << 30,
        &mut c.max_queue_bytes,
    )?;
    range("max_waiting", f.max_waiting, 0, 100_000, &mut c.max_waiting)?;
    range("max_body", f.max_body, 1, 16 << 20, &mut c.max_body)?;
    range(
        "max_out_queue",
        f.max_out_queue,
        1,
        100_000,
        &mut c.max_out_queue,
    )?;
    let secs = |name: &'static str, v: Option<u64>, lo: u64, hi: u64, into: &mut Duration| {
        if let Some(v) = v {
            if v < lo || v > hi {
                return Err(GatewayConfigError::Range(name, lo, hi));
            }
            *into = Duration::from_secs(v);
        }
        Ok(())
    };
    secs(
        "session_timeout",
        f.session_timeout,
        1,
        30 * 86_400,
        &mut c.session_timeout,
    )?;
    secs(
        "message_timeout",
        f.message_timeout,
        1,
        30 * 86_400,
        &mut c.message_timeout,
    )?;
    secs("retry_after", f.retry_after, 1, 3600, &mut c.retry_after)?;
    if let Some(n) = &f.notice_from {
        if super::uri::uri_of(n).is_none() {
            return Err(bad("gateway.notice_from", n, "not a SIP URI or name-addr"));
        }
        c.notice_from = Some(n.clone());
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_tables() {
        let c = resolve(&GatewayFile::default()).unwrap();
        assert!(c.message_rules.is_empty() && c.invite_rules.is_empty());
        assert_eq!(c.delivery_wait, Duration::from_secs(2));
        assert_eq!(c.session_timeout, Duration::from_secs(43_200));
        assert_eq!(c.message_timeout, Duration::from_secs(7_200));
        let f: GatewayFile = toml::from_str(
            "delivery_wait = 0.5\nmessage_timeout = 60\n\
             [[message]]\nruri = \"@msrp\\\\.example\"\ninvite_ruri = \"sip:{to.user}@chat.example\"\nnotify = true\n\
             [[invite]]\nto = \"@sms\"\nnext_hop = \"sip:proxy.example.com\"\nudp_only = true\naccept_types = [\"text/*\"]\n",
        )
        .unwrap();
        let c = resolve(&f).unwrap();
        assert_eq!(c.delivery_wait, Duration::from_millis(500));
        assert_eq!(c.message_timeout, Duration::from_secs(60));
        let m = &c.message_rules[0];
        assert!(m.matches("sip:bob@msrp.example", "<sip:a@b>", "<sip:bob@x>"));
        assert!(!m.matches("sip:bob@other", "<sip:a@b>", "<sip:bob@x>"));
        assert_eq!(m.key.as_str(), "{from}|{to}");
        assert_eq!(m.invite_ruri.as_str(), "sip:{to.user}@chat.example");
        assert_eq!(m.invite_from.as_str(), "{from.uri}", "mirrored by default");
        assert_eq!(m.accept_types, DEFAULT_ACCEPT);
        assert!(m.notify);
        let i = &c.invite_rules[0];
        assert_eq!(i.key.as_str(), "{to}|{from}");
        assert_eq!(i.hop.proxy.as_deref(), Some("sip:proxy.example.com"));
        assert!(i.hop.udp_only);
        assert_eq!(i.ua_rule().accept_types, ["text/*"]);
    }

    #[test]
    fn refused() {
        for bad in [
            "[[message]]\nruri = \"(\"",
            "[[message]]\nkey = \"{who}\"",
            "[[message]]\nkey = \"\"",
            "[[message]]\ninvite_to = \"{to\"",
            "[[message]]\naccept_types = []",
            "[[message]]\naccept_types = [\"text\"]",
            "[[message]]\ninvite_proxy = \"http://x\"",
            "[[invite]]\nfrom = \"[a-\"",
            "[[invite]]\nmessage_ruri = \"{ruri.port}\"",
            "[[invite]]\nnext_hop = \"proxy\"",
            "delivery_wait = -1.0",
            "delivery_wait = 31.0",
            "max_queue = 0",
            "session_timeout = 0",
            "notice_from = \"nobody\"",
        ] {
            let f: GatewayFile = toml::from_str(bad).unwrap();
            assert!(resolve(&f).is_err(), "{bad}");
        }
        assert!(toml::from_str::<GatewayFile>("[[message]]\nkeys = \"x\"").is_err());
    }
}
