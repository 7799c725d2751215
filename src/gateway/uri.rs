//! The parties' addresses as the gateway compares and rewrites them: a normaliser
//! (user and host, host case-insensitive, parameters and port dropped) and the
//! templates that build correlation keys and the other side's From, To and
//! Request-URI from them.
//!
//! # Normal form
//! `user@host`, or `host` for a URI without user part. The host is lower-cased
//! (RFC 3261 §19.1.4: host comparison is case-insensitive), the user kept as written
//! (it is case-sensitive there) except that `%XX` escapes of unreserved characters are
//! decoded (§19.1.4 compares after unescaping). The scheme (`sip:`, `sips:`, `im:`,
//! `tel:`...), the display name, URI and header parameters, `?headers`, a password and
//! the port are dropped: `"Alice" <sip:Alice@Example.COM:5060;transport=tcp>;tag=1`
//! is `Alice@example.com`.
//!
//! # Templates
//! Text with placeholders in braces: `{from}`, `{to}`, `{ruri}` (the normal form of
//! the From, To and Request-URI), `{from.user}`, `{from.host}` (and likewise for `to`
//! and `ruri`), and `{from.uri}` (the URI as written, without display name or header
//! parameters such as the tag). `{{` and `}}` are literal braces. Anything else in
//! braces is refused when the configuration is read.

use crate::sip::{NameAddr, Uri};

/// The normal form of a From/To value, a Request-URI or a bare URI; `None` when it is
/// not an address.
pub fn normalise(value: &str) -> Option<String> {
    let (user, host) = user_host(value)?;
    Some(match user {
        Some(u) if !u.is_empty() => format!("{u}@{host}"),
        _ => host,
    })
}

/// The URI of a From/To value (inside `<>` when bracketed), without display name and
/// header parameters; a bare Request-URI as it is.
pub fn uri_of(value: &str) -> Option<&str> {
    let v = value.trim();
    if v.is_empty() {
        return None;
    }
    match NameAddr::parse(v) {
        Ok(n) if n.uri != "*" => Some(n.uri),
        _ => Uri::parse(v).ok().map(|u| u.as_str()),
    }
}

/// User (unescaped) and host (lower-case, no port) of an address.
fn user_host(value: &str) -> Option<(Option<String>, String)> {
    let uri = uri_of(value)?;
    let u = Uri::parse(uri).ok()?;
    if u.is_sip() {
        if u.host().is_empty() {
            return None;
        }
        return Some((u.user().map(unescape), u.host().to_ascii_lowercase()));
    }
    // Any other scheme (im:, pres:, tel:...): what follows the colon, up to its
    // parameters or headers; `user@host` split like a SIP URI's.
    let rest = uri.split_once(':')?.1;
    let rest = rest.trim_start_matches("//");
    let end = rest.find([';', '?']).unwrap_or(rest.len());
    let rest = rest.get(..end)?;
    if rest.is_empty() {
        return None;
    }
    Some(match rest.split_once('@') {
        Some((user, host)) if !host.is_empty() => (
            Some(unescape(user.split(':').next().unwrap_or(user))),
            host.to_ascii_lowercase(),
        ),
        Some(_) => return None,
        None => (None, rest.to_ascii_lowercase()),
    })
}

/// Decodes `%XX` where it stands for an unreserved character (RFC 3261 §19.1.4,
/// §25.1 `unreserved`); other escapes stay as written, hex digits upper-cased.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let Some(hex) = s.get(i + 1..i + 3)
            && let Ok(v) = u8::from_str_radix(hex, 16)
        {
            if v.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&v) {
                out.push(v as char);
            } else {
                out.push('%');
                out.push_str(&hex.to_ascii_uppercase());
            }
            i += 3;
            continue;
        }
        // Safe: `i` is at a char boundary (escapes are ASCII).
        let ch = s[i..].chars().next().unwrap_or('\u{FFFD}');
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

/// Which party a placeholder names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Party {
    From,
    To,
    Ruri,
}

/// What of the party a placeholder takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// `user@host` ([`normalise`]).
    Normal,
    User,
    Host,
    /// The URI as written ([`uri_of`]).
    Uri,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Lit(String),
    Var(Party, Field),
}

/// A parsed template (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    text: String,
    pieces: Vec<Piece>,
}

/// The three addresses a template is rendered over: From and To header values and the
/// Request-URI, as the request carried them.
#[derive(Debug, Clone, Copy)]
pub struct Parties<'a> {
    pub from: &'a str,
    pub to: &'a str,
    pub ruri: &'a str,
}

impl Template {
    /// Parses `text`; the error says what is wrong with it.
    pub fn parse(text: &str) -> Result<Template, String> {
        let mut pieces = Vec::new();
        let mut lit = String::new();
        let mut rest = text;
        while let Some(i) = rest.find(['{', '}']) {
            lit.push_str(&rest[..i]);
            let after = &rest[i + 1..];
            if rest[i..].starts_with("{{") {
                lit.push('{');
                rest = &rest[i + 2..];
                continue;
            }
            if rest[i..].starts_with("}}") {
                lit.push('}');
                rest = &rest[i + 2..];
                continue;
            }
            if rest[i..].starts_with('}') {
                return Err("a '}' without its '{' (write }} for a literal one)".into());
            }
            let close = after
                .find('}')
                .ok_or_else(|| "a '{' without its '}' (write {{ for a literal one)".to_string())?;
            let name = &after[..close];
            let (party, field) = match name.split_once('.') {
                Some((p, f)) => (p, Some(f)),
                None => (name, None),
            };
            let party = match party {
                "from" => Party::From,
                "to" => Party::To,
                "ruri" => Party::Ruri,
                _ => {
                    return Err(format!(
                        "unknown placeholder {{{name}}}: use {{from}}, {{to}}, {{ruri}}, with .user, .host or .uri"
                    ));
                }
            };
            let field = match field {
                None => Field::Normal,
                Some("user") => Field::User,
                Some("host") => Field::Host,
                Some("uri") => Field::Uri,
                Some(_) => {
                    return Err(format!(
                        "unknown placeholder {{{name}}}: the fields are .user, .host and .uri"
                    ));
                }
            };
            if !lit.is_empty() {
                pieces.push(Piece::Lit(std::mem::take(&mut lit)));
            }
            pieces.push(Piece::Var(party, field));
            rest = &after[close + 1..];
        }
        lit.push_str(rest);
        if !lit.is_empty() {
            pieces.push(Piece::Lit(lit));
        }
        if pieces.is_empty() {
            return Err("empty".into());
        }
        Ok(Template {
            text: text.to_string(),
            pieces,
        })
    }

    /// A template that must parse (for the defaults written in this crate).
    pub(crate) fn fixed(text: &str) -> Template {
        match Template::parse(text) {
            Ok(t) => t,
            Err(_) => Template {
                text: text.to_string(),
                pieces: vec![Piece::Lit(text.to_string())],
            },
        }
    }

    /// The template as configured.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Renders over `p`; `None` when a placeholder's party is not an address. A
    /// missing user part renders empty.
    pub fn render(&self, p: &Parties<'_>) -> Option<String> {
        let mut out = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Lit(s) => out.push_str(s),
                Piece::Var(party, field) => {
                    let v = match party {
                        Party::From => p.from,
                        Party::To => p.to,
                        Party::Ruri => p.ruri,
                    };
                    match field {
                        // A Request-URI is a URI whole: its ;params are its own, not
                        // header parameters as after an addr-spec From or To.
                        Field::Uri if *party == Party::Ruri && Uri::parse(v.trim()).is_ok() => {
                            out.push_str(v.trim())
                        }
                        Field::Uri => out.push_str(uri_of(v)?),
                        Field::Normal => out.push_str(&normalise(v)?),
                        Field::User => out.push_str(&user_host(v)?.0.unwrap_or_default()),
                        Field::Host => out.push_str(&user_host(v)?.1),
                    }
                }
            }
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_forms() {
        for (v, want) in [
            ("sip:Alice@Example.COM;transport=tcp", "Alice@example.com"),
            ("<sip:alice@example.com>", "alice@example.com"),
            ("<sip:alice@EXAMPLE.com>;tag=abc", "alice@example.com"),
            (
                "\"Alice A.\" <sips:alice@Example.com:5061;transport=tls?Subject=x>;tag=9",
                "alice@example.com",
            ),
            ("Alice <sip:alice:secret@example.com>", "alice@example.com"),
            ("sip:alice@example.com;tag=x", "alice@example.com"),
            ("sip:%61lice@example.com", "alice@example.com"),
            ("sip:a%2fb@example.com", "a%2Fb@example.com"),
            ("sip:example.com:5060", "example.com"),
            ("sip:bob@[2001:DB8::1]:5060", "bob@[2001:db8::1]"),
            ("<im:Carol@Example.org>", "Carol@example.org"),
            ("tel:+1-555-0100;phone-context=example.com", "+1-555-0100"),
            ("  <sip:alice@example.com>  ", "alice@example.com"),
        ] {
            assert_eq!(normalise(v).as_deref(), Some(want), "{v}");
        }
        assert_eq!(
            normalise("sip:Alice@Example.COM;transport=tcp"),
            normalise("\"A\" <sip:Alice@example.com>;tag=1"),
            "the same party however written"
        );
        assert_ne!(
            normalise("sip:Alice@example.com"),
            normalise("sip:alice@example.com"),
            "user parts are case-sensitive (RFC 3261 §19.1.4)"
        );
        for bad in ["", "alice", "<>", "<sip:>", "*", "im:", "im:a@", "<sip:a@b"] {
            assert_eq!(normalise(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn uri_as_written() {
        assert_eq!(
            uri_of("\"A\" <sip:alice@example.com;transport=tcp>;tag=1"),
            Some("sip:alice@example.com;transport=tcp")
        );
        assert_eq!(
            uri_of("sip:alice@example.com;tag=1"),
            Some("sip:alice@example.com")
        );
        assert_eq!(uri_of("sip:bob@example.com"), Some("sip:bob@example.com"));
    }

    #[test]
    fn templates() {
        let p = Parties {
            from: "\"A\" <sip:Alice@Example.com>;tag=1",
            to: "<sip:bob@b.example;user=phone>",
            ruri: "sip:bob@10.0.0.1:5060;transport=udp",
        };
        let t = Template::parse("{from}|{to}").unwrap();
        assert_eq!(
            t.render(&p).as_deref(),
            Some("Alice@example.com|bob@b.example")
        );
        let t = Template::parse("sip:{to.user}@msrp.{from.host}").unwrap();
        assert_eq!(t.render(&p).as_deref(), Some("sip:bob@msrp.example.com"));
        let t = Template::parse("{ruri.uri}").unwrap();
        assert_eq!(
            t.render(&p).as_deref(),
            Some("sip:bob@10.0.0.1:5060;transport=udp")
        );
        let t = Template::parse("{{{ruri.host}}}").unwrap();
        assert_eq!(t.render(&p).as_deref(), Some("{10.0.0.1}"));
        assert_eq!(
            Template::parse("plain").unwrap().render(&p).as_deref(),
            Some("plain")
        );
        for bad in ["", "{", "}", "{from", "{who}", "{from.port}", "a}b"] {
            assert!(Template::parse(bad).is_err(), "{bad:?}");
        }
        let broken = Parties {
            from: "nonsense",
            ..p
        };
        assert_eq!(Template::parse("{from}").unwrap().render(&broken), None);
    }
}
