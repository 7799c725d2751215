//! Digest client authentication (RFC 3261 §22.2 and §22.3 over RFC 2617 §3.2.2, with
//! SHA-256 from RFC 8760 / RFC 7616): when a request of ours is challenged with 401
//! (WWW-Authenticate) or 407 (Proxy-Authenticate), [`authorize`] builds the retry:
//! the same request with CSeq + 1 and a new branch (§22.2: a new transaction), and an
//! Authorization / Proxy-Authorization per challenged realm that the caller has
//! credentials for ([`Credentials`]).
//!
//! For each realm the first challenge we support is answered (RFC 7616 §3.7, RFC 8760
//! §2.4: servers list them in preference order): algorithm `MD5` (the default when none
//! is named) or `SHA-256`; `qop=auth` when offered (then `nc=00000001` and the caller's
//! cnonce: each challenge brings a fresh nonce), no qop when the challenge has none
//! (RFC 2069 compatibility, RFC 2617 §3.2.2.1). `-sess` algorithms and challenges that
//! offer only `auth-int` are skipped. The digest-uri is the Request-URI.
//!
//! Hashes come from the `md-5` and `sha2` crates already used by `relay::auth`.

use md5::Md5;
use sha2::{Digest, Sha256};

use super::msg::{Message, unfold};
use super::name::HeaderName;
use super::write::Writer;
use crate::codec::header::{Challenge, unescape};

/// A digest algorithm this client answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    Md5,
    Sha256,
}

impl Algorithm {
    /// `None` (no algorithm named) is MD5 (RFC 2617 §3.2.1); unknown names and `-sess`
    /// variants are not supported.
    pub fn from_param(p: Option<&str>) -> Option<Algorithm> {
        match p {
            None => Some(Algorithm::Md5),
            Some(a) if a.eq_ignore_ascii_case("MD5") => Some(Algorithm::Md5),
            Some(a) if a.eq_ignore_ascii_case("SHA-256") => Some(Algorithm::Sha256),
            Some(_) => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
        }
    }

    /// `H(parts joined by ':')` in lower-case hex.
    fn h(self, parts: &[&[u8]]) -> String {
        fn feed<D: Digest>(d: &mut D, parts: &[&[u8]]) {
            for (i, p) in parts.iter().enumerate() {
                if i > 0 {
                    d.update(b":");
                }
                d.update(p);
            }
        }
        match self {
            Algorithm::Md5 => {
                let mut d = Md5::new();
                feed(&mut d, parts);
                hex::encode(d.finalize())
            }
            Algorithm::Sha256 => {
                let mut d = Sha256::new();
                feed(&mut d, parts);
                hex::encode(d.finalize())
            }
        }
    }
}

/// The `request-digest` of RFC 2617 §3.2.2.1 (`qop` = `Some((nc, cnonce))` for
/// `qop=auth`, `None` for the RFC 2069 form). All inputs unescaped.
#[allow(clippy::too_many_arguments)]
pub fn request_digest(
    alg: Algorithm,
    username: &str,
    realm: &str,
    password: &str,
    method: &str,
    uri: &str,
    nonce: &str,
    qop: Option<(&str, &str)>,
) -> String {
    let ha1 = alg.h(&[username.as_bytes(), realm.as_bytes(), password.as_bytes()]);
    let ha2 = alg.h(&[method.as_bytes(), uri.as_bytes()]);
    match qop {
        Some((nc, cnonce)) => alg.h(&[
            ha1.as_bytes(),
            nonce.as_bytes(),
            nc.as_bytes(),
            cnonce.as_bytes(),
            b"auth",
            ha2.as_bytes(),
        ]),
        None => alg.h(&[ha1.as_bytes(), nonce.as_bytes(), ha2.as_bytes()]),
    }
}

/// Where usernames and passwords come from, by realm.
pub trait Credentials {
    /// `(username, password)` for `realm` (unescaped).
    fn lookup(&self, realm: &str) -> Option<(&str, &str)>;
}

/// A list of `(realm, username, password)`, matched exactly.
#[derive(Debug, Clone, Default)]
pub struct RealmCredentials {
    pub entries: Vec<(String, String, String)>,
}

impl Credentials for RealmCredentials {
    fn lookup(&self, realm: &str) -> Option<(&str, &str)> {
        self.entries
            .iter()
            .find(|(r, _, _)| r == realm)
            .map(|(_, u, p)| (u.as_str(), p.as_str()))
    }
}

/// Why no retry was built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("not a 401 or 407 with a challenge")]
    NotAChallenge,
    #[error("no supported digest challenge (algorithm or qop)")]
    Unsupported,
    #[error("no credentials for any challenged realm")]
    NoCredentials,
    #[error("the request cannot be rebuilt")]
    BadRequest,
}

/// `"` and `\` escaped for a quoted-string.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// One answered challenge: the header value to add, and its realm (as written).
fn answer(
    c: &Challenge<'_>,
    alg: Algorithm,
    creds: &dyn Credentials,
    method: &str,
    uri: &str,
    cnonce: &str,
) -> Option<String> {
    let realm = unescape(c.realm);
    let (user, pass) = creds.lookup(&realm)?;
    let nonce = unescape(c.nonce);
    let qop = c.qop.is_some().then_some(("00000001", cnonce));
    let response = request_digest(alg, user, &realm, pass, method, uri, &nonce, qop);
    let mut v = format!(
        "Digest username={}, realm=\"{}\", nonce=\"{}\", uri={}, response=\"{}\", algorithm={}",
        quote(user),
        c.realm,
        c.nonce,
        quote(uri),
        response,
        alg.name()
    );
    if qop.is_some() {
        v.push_str(&format!(
            ", cnonce={}, qop=auth, nc=00000001",
            quote(cnonce)
        ));
    }
    if let Some(o) = c.opaque {
        v.push_str(&format!(", opaque=\"{o}\""));
    }
    Some(v)
}

/// Whether a qop-options list (`"auth,auth-int"`) offers `auth`.
fn offers_auth(qop: &str) -> bool {
    qop.split(',')
        .any(|q| q.trim().eq_ignore_ascii_case("auth"))
}

/// The retry of `request` answering the 401/407 `challenge` (§22.2, §22.3): CSeq + 1,
/// top Via branch replaced by `branch`, credentials for every challenged realm we know
/// (earlier credentials for those realms are replaced, others kept), `cnonce` from the
/// caller's random source.
pub fn authorize(
    request: &Message,
    challenge: &Message,
    creds: &dyn Credentials,
    cnonce: &str,
    branch: &str,
) -> Result<Message, AuthError> {
    let (chal_name, auth_name) = match challenge.status() {
        Some(401) => (HeaderName::WwwAuthenticate, HeaderName::Authorization),
        Some(407) => (
            HeaderName::ProxyAuthenticate,
            HeaderName::ProxyAuthorization,
        ),
        _ => return Err(AuthError::NotAChallenge),
    };
    let method = request.method_str();
    let uri = request.request_uri();
    if method.is_empty() {
        return Err(AuthError::BadRequest);
    }
    let lines: Vec<_> = challenge.get_all(chal_name).map(unfold).collect();
    if lines.is_empty() {
        return Err(AuthError::NotAChallenge);
    }
    let mut answered: Vec<(String, String)> = Vec::new();
    let mut supported = false;
    for line in &lines {
        let Ok(c) = Challenge::parse(line.as_bytes()) else {
            continue;
        };
        let Some(alg) = Algorithm::from_param(c.algorithm) else {
            continue;
        };
        if c.qop.is_some_and(|q| !offers_auth(q)) {
            continue;
        }
        supported = true;
        let realm = unescape(c.realm).into_owned();
        if answered.iter().any(|(r, _)| *r == realm) {
            continue;
        }
        if let Some(v) = answer(&c, alg, creds, method, uri, cnonce) {
            answered.push((realm, v));
        }
    }
    if answered.is_empty() {
        return Err(if supported {
            AuthError::NoCredentials
        } else {
            AuthError::Unsupported
        });
    }
    // Rebuild the request.
    let cseq = request.cseq().ok_or(AuthError::BadRequest)?;
    let via = request.top_via().ok_or(AuthError::BadRequest)?;
    let mut w = Writer::request(method, uri);
    let mut first_via = true;
    for h in request.headers() {
        match h.name {
            HeaderName::Via if first_via => {
                first_via = false;
                let mut parts = super::header::split_list(h.value);
                let _top = parts.next();
                let mut v = via
                    .raw
                    .get(..via.raw.len() - via.params.as_str().len())
                    .unwrap_or("")
                    .trim_end()
                    .to_string();
                for (n, val) in via.params.iter() {
                    if n.eq_ignore_ascii_case("branch") {
                        continue;
                    }
                    v.push(';');
                    v.push_str(n);
                    if let Some(val) = val {
                        v.push('=');
                        v.push_str(val);
                    }
                }
                v.push_str(";branch=");
                v.push_str(branch);
                for rest in parts {
                    v.push_str(", ");
                    v.push_str(rest);
                }
                w.header("Via", &v);
            }
            HeaderName::CSeq => {
                w.header(
                    "CSeq",
                    &format!("{} {}", cseq.seq.saturating_add(1), cseq.method_str),
                );
            }
            HeaderName::ContentLength => {}
            n if n == auth_name => {
                let old = unfold(h.value);
                let realm = Challenge::parse(old.as_bytes())
                    .ok()
                    .map(|c| unescape(c.realm).into_owned());
                let replaced = realm.is_some_and(|r| answered.iter().any(|(a, _)| *a == r));
                if !replaced {
                    w.copy(n, h.value);
                }
            }
            HeaderName::Other => {
                w.header(h.name_str, h.value);
            }
            n => {
                w.copy(n, h.value);
            }
        }
    }
    for (_, v) in &answered {
        w.add(auth_name, v);
    }
    Message::parse_own(w.finish_body(None, request.body_bytes())).map_err(|_| AuthError::BadRequest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn digest_vectors() {
        // RFC 2617 §3.5 and RFC 7616 §3.9.1 (MD5 and SHA-256 with qop=auth).
        for (alg, user, realm, pass, nonce, cnonce, want) in [
            (
                Algorithm::Md5,
                "Mufasa",
                "testrealm@host.com",
                "Circle Of Life",
                "dcd98b7102dd2f0e8b11d0f600bfb0c093",
                "0a4f113b",
                "6629fae49393a05397450978507c4ef1",
            ),
            (
                Algorithm::Md5,
                "Mufasa",
                "http-auth@example.org",
                "Circle of Life",
                "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
                "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
                "8ca523f5e9506fed4657c9700eebdbec",
            ),
            (
                Algorithm::Sha256,
                "Mufasa",
                "http-auth@example.org",
                "Circle of Life",
                "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
                "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
                "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
            ),
        ] {
            let got = request_digest(
                alg,
                user,
                realm,
                pass,
                "GET",
                "/dir/index.html",
                nonce,
                Some(("00000001", cnonce)),
            );
            assert_eq!(got, want, "{alg:?} {realm}");
        }
        // RFC 2069 form (no qop): H(HA1:nonce:HA2).
        let ha1 = Algorithm::Md5.h(&[b"u", b"r", b"p"]);
        let ha2 = Algorithm::Md5.h(&[b"REGISTER", b"sip:r"]);
        let want = Algorithm::Md5.h(&[ha1.as_bytes(), b"n", ha2.as_bytes()]);
        assert_eq!(
            request_digest(
                Algorithm::Md5,
                "u",
                "r",
                "p",
                "REGISTER",
                "sip:r",
                "n",
                None
            ),
            want
        );
        assert_eq!(Algorithm::from_param(Some("md5")), Some(Algorithm::Md5));
        assert_eq!(Algorithm::from_param(Some("MD5-sess")), None);
        assert_eq!(Algorithm::from_param(Some("SHA-512-256")), None);
    }

    const REQ: &str = "MESSAGE sip:bob@biloxi.com SIP/2.0\r\n\
Via: SIP/2.0/TCP 192.0.2.1:5060;branch=z9hG4bK-0-old;rport, SIP/2.0/UDP x\r\n\
Max-Forwards: 70\r\n\
From: <sip:ms@atlanta.com>;tag=m0-1\r\n\
To: <sip:bob@biloxi.com>\r\n\
Call-ID: c1\r\n\
CSeq: 5 MESSAGE\r\n\
Proxy-Authorization: Digest username=\"old\", realm=\"proxy.example\", nonce=\"1\", uri=\"sip:bob@biloxi.com\", response=\"00\"\r\n\
Proxy-Authorization: Digest username=\"keep\", realm=\"other\", nonce=\"1\", uri=\"sip:bob@biloxi.com\", response=\"00\"\r\n\
X-Thing: 1\r\n\
Content-Type: text/plain\r\n\
Content-Length: 2\r\n\r\nhi";

    fn creds() -> RealmCredentials {
        RealmCredentials {
            entries: vec![
                ("biloxi.com".into(), "alice".into(), "secret".into()),
                ("proxy.example".into(), "al\"ice".into(), "pw".into()),
            ],
        }
    }

    fn challenge(code: &str, lines: &str) -> Message {
        Message::parse_own(Bytes::from(format!(
            "SIP/2.0 {code}\r\nVia: SIP/2.0/TCP 192.0.2.1:5060;branch=z9hG4bK-0-old\r\nFrom: <sip:ms@atlanta.com>;tag=m0-1\r\nTo: <sip:bob@biloxi.com>;tag=s\r\nCall-ID: c1\r\nCSeq: 5 MESSAGE\r\n{lines}Content-Length: 0\r\n\r\n"
        )))
        .unwrap()
    }

    #[test]
    fn retry_after_401() {
        let req = Message::parse_own(Bytes::from_static(REQ.as_bytes())).unwrap();
        let chal = challenge(
            "401 Unauthorized",
            "WWW-Authenticate: Digest realm=\"biloxi.com\", qop=\"auth,auth-int\", algorithm=SHA-256, nonce=\"n1\", opaque=\"o1\"\r\n\
WWW-Authenticate: Digest realm=\"biloxi.com\", qop=\"auth\", algorithm=MD5, nonce=\"n2\"\r\n",
        );
        let retry = authorize(&req, &chal, &creds(), "c0ffee", "z9hG4bK-0-new").unwrap();
        retry.check().unwrap();
        assert_eq!(retry.cseq().unwrap().seq, 6);
        let vias: Vec<_> = retry.vias().map(|v| v.raw).collect();
        assert_eq!(
            vias,
            [
                "SIP/2.0/TCP 192.0.2.1:5060;rport;branch=z9hG4bK-0-new",
                "SIP/2.0/UDP x"
            ]
        );
        assert_eq!(&retry.body()[..], b"hi");
        assert_eq!(retry.content_type(), Some("text/plain"));
        assert_eq!(retry.get_other("X-Thing").next(), Some("1"));
        // The 401 is answered in Authorization; Proxy-Authorization lines stay.
        assert_eq!(retry.proxy_authorization().count(), 2);
        let auth: Vec<_> = retry.authorization().collect();
        let want = request_digest(
            Algorithm::Sha256,
            "alice",
            "biloxi.com",
            "secret",
            "MESSAGE",
            "sip:bob@biloxi.com",
            "n1",
            Some(("00000001", "c0ffee")),
        );
        assert_eq!(
            auth,
            [format!(
                "Digest username=\"alice\", realm=\"biloxi.com\", nonce=\"n1\", uri=\"sip:bob@biloxi.com\", response=\"{want}\", algorithm=SHA-256, cnonce=\"c0ffee\", qop=auth, nc=00000001, opaque=\"o1\""
            )]
        );
        // What the server side of this repo parses, it parses back.
        let c = crate::codec::Credentials::parse(auth[0].as_bytes()).unwrap();
        assert_eq!(
            (c.username, c.realm, c.nonce, c.response),
            ("alice", "biloxi.com", "n1", want.as_str())
        );
    }

    #[test]
    fn retry_after_407_replaces_same_realm_only() {
        let req = Message::parse_own(Bytes::from_static(REQ.as_bytes())).unwrap();
        let chal = challenge(
            "407 Proxy Authentication Required",
            "Proxy-Authenticate: Digest realm=\"proxy.example\", nonce=\"p1\"\r\n",
        );
        let retry = authorize(&req, &chal, &creds(), "cn", "z9hG4bK-0-n2").unwrap();
        let pa: Vec<_> = retry.proxy_authorization().collect();
        assert_eq!(pa.len(), 2);
        assert!(pa[0].contains("username=\"keep\""), "{pa:?}");
        let want = request_digest(
            Algorithm::Md5,
            "al\"ice",
            "proxy.example",
            "pw",
            "MESSAGE",
            "sip:bob@biloxi.com",
            "p1",
            None,
        );
        assert_eq!(
            pa[1],
            format!(
                "Digest username=\"al\\\"ice\", realm=\"proxy.example\", nonce=\"p1\", uri=\"sip:bob@biloxi.com\", response=\"{want}\", algorithm=MD5"
            )
        );
    }

    #[test]
    fn refusals() {
        let req = Message::parse_own(Bytes::from_static(REQ.as_bytes())).unwrap();
        for (chal, want) in [
            (challenge("403 Forbidden", ""), AuthError::NotAChallenge),
            (challenge("401 Unauthorized", ""), AuthError::NotAChallenge),
            (
                challenge(
                    "401 Unauthorized",
                    "WWW-Authenticate: Digest realm=\"x\", nonce=\"n\", algorithm=MD5-sess\r\n",
                ),
                AuthError::Unsupported,
            ),
            (
                challenge(
                    "401 Unauthorized",
                    "WWW-Authenticate: Digest realm=\"x\", nonce=\"n\", qop=\"auth-int\"\r\n",
                ),
                AuthError::Unsupported,
            ),
            (
                challenge(
                    "401 Unauthorized",
                    "WWW-Authenticate: Basic realm=\"x\"\r\n",
                ),
                AuthError::Unsupported,
            ),
            (
                challenge(
                    "401 Unauthorized",
                    "WWW-Authenticate: Digest realm=\"nobody\", nonce=\"n\"\r\n",
                ),
                AuthError::NoCredentials,
            ),
            // 407 challenges in WWW-Authenticate do not count.
            (
                challenge(
                    "407 Proxy Authentication Required",
                    "WWW-Authenticate: Digest realm=\"biloxi.com\", nonce=\"n\"\r\n",
                ),
                AuthError::NotAChallenge,
            ),
        ] {
            assert_eq!(
                authorize(&req, &chal, &creds(), "c", "z9hG4bK-0-x").map(|_| ()),
                Err(want)
            );
        }
    }
}
