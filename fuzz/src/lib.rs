//! Fuzz harnesses for the MSRP codec (`msrpd::codec`). Each `pub fn` here is the body of
//! one cargo-fuzz target in `fuzz_targets/`; keeping them in a library lets the targets
//! share the head checks.
//!
//! Every harness panics (and so makes libFuzzer report a crash) when an invariant listed
//! in its doc comment does not hold.

// `u == u`, `a == b && b == a`: reflexivity and symmetry of `PartialEq` are what is tested.
#![allow(clippy::eq_op, clippy::nonminimal_bool)]

pub mod reassembly;
pub mod relay;
pub mod sdp;
pub mod sip;

use bytes::{Bytes, BytesMut};
use memchr::memmem;
use msrpd::codec::encode;
use msrpd::codec::header::{DigestParams, unescape};
use msrpd::codec::{
    AuthInfo, ByteRange, Challenge, ContentType, Credentials, Event, FailureReport, Flag, Head,
    HeadError, HeaderKind, Host, Method, Path, PathCache, RawHead, ScanError, ScanLimits, Scanner, StartLine,
    Status, SuccessReport, Uri,
};

/// `true` when `inner` lies inside `outer` (same allocation, by address).
fn within(outer: &[u8], inner: &[u8]) -> bool {
    let o = outer.as_ptr() as usize;
    let i = inner.as_ptr() as usize;
    inner.is_empty() || (i >= o && i + inner.len() <= o + outer.len())
}

// ---------------------------------------------------------------------------------------
// URIs and paths

/// Every accessor of a URI, with the cross-checks that must hold for any parsed URI.
pub fn check_uri(u: &Uri<'_>) {
    let raw = u.as_str();
    assert!(u == u, "URI not equal to itself: {raw:?}");
    for part in [u.host_str(), u.transport(), u.params()] {
        assert!(within(raw.as_bytes(), part.as_bytes()));
    }
    if let Some(ui) = u.userinfo() {
        assert!(within(raw.as_bytes(), ui.as_bytes()));
    }
    if let Some(sid) = u.session_id() {
        assert!(!sid.is_empty() && within(raw.as_bytes(), sid.as_bytes()));
    }
    assert!(!u.transport().is_empty());
    assert!(u.params().is_empty() || u.params().starts_with(';'));
    for (n, v) in u.param_iter() {
        assert!(!n.is_empty());
        assert!(v.is_none_or(|v| !v.is_empty()));
    }
    let host = u.host();
    let _ = host.is_ip();
    let shown = host.to_string();
    match host {
        Host::Name(n) => assert_eq!(n, u.host_str()),
        Host::V4(a) => assert_eq!(shown, a.to_string()),
        Host::V6(_) => assert!(shown.starts_with('[') && shown.ends_with(']')),
    }
    // Display round-trips.
    let s = u.to_string();
    assert_eq!(s, raw);
    let again = Uri::parse(&s).expect("Display output of a URI must parse");
    assert!(again == *u && *u == again);
    // A spelling that differs only where RFC 4975 §6.1 says it does not matter (scheme,
    // host and transport case; userinfo and extra parameters dropped; the port written
    // without leading zeros) must parse and compare equal.
    let mut alt = String::new();
    alt.push_str(if u.is_secure() { "MSRPS://" } else { "MSRP://" });
    match host {
        Host::Name(n) => alt.push_str(&n.to_ascii_uppercase()),
        _ => alt.push_str(&u.host_str().to_ascii_uppercase()),
    }
    if let Some(p) = u.port() {
        alt.push(':');
        alt.push_str(&p.to_string());
    }
    if let Some(sid) = u.session_id() {
        alt.push('/');
        alt.push_str(sid);
    }
    alt.push(';');
    alt.push_str(&u.transport().to_ascii_uppercase());
    let alt_u = Uri::parse(&alt).unwrap_or_else(|e| panic!("{alt:?} (from {raw:?}): {e}"));
    assert!(alt_u == *u && *u == alt_u, "{alt:?} != {raw:?}");
}

pub fn check_path(p: &Path<'_>) {
    let s = p.as_str();
    assert!(!p.is_empty());
    assert_ne!(p.len(), 0);
    assert_eq!(p.iter().count(), p.len(), "{s:?}");
    let uris: Vec<Uri<'_>> = p.uris().collect();
    assert_eq!(
        uris.len(),
        p.len(),
        "every URI of a parsed path parses: {s:?}"
    );
    assert_eq!(uris[0].as_str(), p.first().as_str());
    assert_eq!(uris[uris.len() - 1].as_str(), p.last().as_str());
    for u in &uris {
        check_uri(u);
    }
    match p.rest() {
        None => assert_eq!(p.len(), 1),
        Some(r) => {
            let rp = Path::parse(r).expect("the rest of a path is a path");
            assert_eq!(rp.len(), p.len() - 1);
        }
    }
    let again = Path::parse(s).expect("a path reparses");
    assert_eq!(again.len(), p.len());
}

// ---------------------------------------------------------------------------------------
// Heads

/// All typed accessors of a parsed head, each checked against a reparse of its raw header.
pub fn check_head(h: &Head<'_>) {
    let raw = h.as_bytes();
    // Start line.
    let tid = h.tid();
    assert!((4..=32).contains(&tid.len()), "{tid:?}");
    match h.start_line() {
        StartLine::Request { tid: t, method } => {
            assert_eq!(t, tid);
            assert!(h.is_request());
            assert_eq!(h.method(), Some(method));
            assert_eq!(h.status_code(), None);
            let m = method.as_str();
            assert!(
                !m.is_empty() && m.bytes().all(|c| c.is_ascii_uppercase()),
                "{m:?}"
            );
            assert_eq!(Method::from_bytes(m.as_bytes()), method);
        }
        StartLine::Response {
            tid: t,
            code,
            comment,
        } => {
            assert_eq!(t, tid);
            assert!(!h.is_request());
            assert_eq!(h.method(), None);
            assert_eq!(h.status_code(), Some(code));
            assert!(code <= 999);
            if let Some(c) = comment {
                assert!(!c.is_empty());
            }
        }
    }
    // Header lines.
    let headers: Vec<_> = h.headers().collect();
    assert!(headers.len() >= 2 && headers.len() <= msrpd::codec::head::MAX_HEADERS);
    assert_eq!(headers[0].kind, HeaderKind::ToPath);
    assert_eq!(headers[1].kind, HeaderKind::FromPath);
    for (i, hd) in headers.iter().enumerate() {
        assert_eq!(HeaderKind::classify(hd.name.as_bytes()), hd.kind);
        assert!(within(raw, hd.name.as_bytes()) && within(raw, hd.value));
        assert!(!hd.value.contains(&b'\r') && !hd.value.contains(&b'\n'));
        let first = headers
            .iter()
            .position(|o| o.name.eq_ignore_ascii_case(hd.name))
            .unwrap();
        assert!(first <= i);
        assert_eq!(h.get(hd.name), Some(headers[first].value));
        if hd.kind != HeaderKind::Other {
            let _ = hd.kind.name();
            if i >= 2 && hd.kind != HeaderKind::WwwAuthenticate {
                // Known headers other than the paths appear at most once; a 401 may
                // carry several challenges (RFC 4976 §5.1), the first one typed.
                assert_eq!(first, i, "duplicate {:?} accepted", hd.kind);
            }
        }
    }
    let rest = h.rest();
    assert!(raw.ends_with(rest));
    assert!(rest.is_empty() || rest.ends_with(b"\r\n"));
    let value = |k: HeaderKind| headers.iter().find(|x| x.kind == k).map(|x| x.value);
    let as_str = |v: &[u8]| core::str::from_utf8(v).unwrap().to_owned();

    // Paths.
    check_path(h.to_path());
    check_path(h.from_path());
    assert_eq!(h.to_path().as_str(), as_str(headers[0].value));
    assert_eq!(h.from_path().as_str(), as_str(headers[1].value));
    match (h.use_path(), value(HeaderKind::UsePath)) {
        (Some(p), Some(v)) => {
            check_path(p);
            assert_eq!(p.as_str(), as_str(v));
        }
        (None, None) => {}
        _ => panic!("Use-Path accessor disagrees with the header lines"),
    }
    // Scalar headers: the typed value equals a fresh parse of the raw value.
    assert_eq!(
        h.message_id(),
        value(HeaderKind::MessageId).map(|v| msrpd::codec::header::parse_message_id(v).unwrap())
    );
    let br = h.byte_range();
    assert_eq!(
        br,
        value(HeaderKind::ByteRange).map(|v| ByteRange::parse(v).unwrap())
    );
    if let Some(br) = br {
        let s = br.to_string();
        assert_eq!(ByteRange::parse(s.as_bytes()), Ok(br), "{s:?}");
        assert!(br.start >= 1);
    }
    let ct = h.content_type();
    assert_eq!(
        ct,
        value(HeaderKind::ContentType).map(|v| ContentType::parse(v).unwrap())
    );
    if let Some(ct) = ct {
        assert!(ct.is(ct.media_type, ct.subtype));
        assert!(ct.is(
            &ct.media_type.to_ascii_uppercase(),
            &ct.subtype.to_ascii_lowercase()
        ));
        assert!(ct.params.is_empty() || ct.params.starts_with(';'));
    }
    assert_eq!(
        h.success_report(),
        value(HeaderKind::SuccessReport)
            .map_or(SuccessReport::No, |v| SuccessReport::parse(v).unwrap())
    );
    assert_eq!(
        h.failure_report(),
        value(HeaderKind::FailureReport)
            .map_or(FailureReport::Yes, |v| FailureReport::parse(v).unwrap())
    );
    assert_eq!(
        h.has_report_headers(),
        value(HeaderKind::SuccessReport).is_some() || value(HeaderKind::FailureReport).is_some()
    );
    let st = h.status();
    assert_eq!(
        st,
        value(HeaderKind::Status).map(|v| Status::parse(v).unwrap())
    );
    if let Some(st) = st {
        assert!(st.namespace <= 999 && st.code <= 999);
    }
    let secs = msrpd::codec::header::parse_seconds;
    assert_eq!(
        h.expires(),
        value(HeaderKind::Expires).map(|v| secs(v).unwrap())
    );
    assert_eq!(
        h.min_expires(),
        value(HeaderKind::MinExpires).map(|v| secs(v).unwrap())
    );
    assert_eq!(
        h.max_expires(),
        value(HeaderKind::MaxExpires).map(|v| secs(v).unwrap())
    );
    // Digest headers, typed on demand.
    assert_eq!(
        h.www_authenticate().is_some(),
        value(HeaderKind::WwwAuthenticate).is_some()
    );
    if let Some(Ok(c)) = h.www_authenticate() {
        check_challenge(&c);
    }
    assert_eq!(
        h.authorization().is_some(),
        value(HeaderKind::Authorization).is_some()
    );
    if let Some(Ok(c)) = h.authorization() {
        check_credentials(&c);
    }
    assert_eq!(
        h.authentication_info().is_some(),
        value(HeaderKind::AuthenticationInfo).is_some()
    );
    if let Some(Ok(a)) = h.authentication_info() {
        check_auth_info(&a);
    }
    // Response helpers must not panic either.
    let to = encode::response_to_path(h);
    assert!(Path::parse(to).is_ok());
}

/// The parts of a reparsed head that a relay rewrite must leave unchanged.
fn same_rest(a: &Head<'_>, b: &Head<'_>) {
    assert_eq!(a.rest(), b.rest());
    assert_eq!(a.method(), b.method());
    assert_eq!(a.status_code(), b.status_code());
    if let (StartLine::Response { comment: ca, .. }, StartLine::Response { comment: cb, .. }) =
        (a.start_line(), b.start_line())
    {
        assert_eq!(ca, cb);
    }
    assert_eq!(a.message_id(), b.message_id());
    assert_eq!(a.byte_range(), b.byte_range());
    assert_eq!(a.content_type(), b.content_type());
    assert_eq!(a.status(), b.status());
    assert_eq!(a.expires(), b.expires());
    assert_eq!(
        a.use_path().map(|p| p.as_str()),
        b.use_path().map(|p| p.as_str())
    );
}

/// A new transaction id as long as `old` (so that only the paths change the head's size).
fn new_tid(old: &str) -> &'static str {
    const IDS: &str = "fz7Q.x-+%=0123456789abcdefghijkl";
    &IDS[..old.len().clamp(4, 32)]
}

/// `forward_head` and `rewrite_head` on a parsed head, and a reparse of what they wrote
/// (through `Head::parse` and through a fresh `Scanner`).
pub fn check_reencode(h: &Head<'_>, has_body: bool) {
    let tid = new_tid(h.tid());
    let mut buf = BytesMut::new();
    let fwd = encode::forward_head(&mut buf, h, tid);
    assert_eq!(fwd, h.to_path().len() > 1);
    // A From-Path already at the codec's cap cannot take the relay's URI: the output would
    // hold one URI too many. The relay refuses such requests with 400 before it forwards
    // (`engine.rs`, "From-Path too long to forward"; tests/relay_basic.rs), so that case
    // is not a round trip.
    if fwd && h.from_path().len() < msrpd::codec::header::MAX_PATH_URIS {
        let out = Head::parse(&buf).unwrap_or_else(|e| {
            panic!(
                "forward_head output does not parse: {e}\n{:?}",
                String::from_utf8_lossy(&buf)
            )
        });
        assert_eq!(out.tid(), tid);
        assert_eq!(Some(out.to_path().as_str()), h.to_path().rest());
        assert_eq!(out.from_path().len(), h.from_path().len() + 1);
        assert_eq!(
            out.from_path().first().as_str(),
            h.to_path().first().as_str()
        );
        assert_eq!(out.from_path().rest(), Some(h.from_path().as_str()));
        same_rest(h, &out);
        rescan(&buf, tid, has_body);
    } else if !fwd {
        assert!(
            buf.is_empty(),
            "forward_head returned false but wrote bytes"
        );
    }

    // The relay's other rewrite: new tid, paths given by the caller (here swapped).
    let mut buf = BytesMut::new();
    let to = h.from_path().as_str();
    let from = h.to_path().as_str();
    encode::rewrite_head(&mut buf, h, tid, to, from);
    let out = Head::parse(&buf).unwrap_or_else(|e| {
        panic!(
            "rewrite_head output does not parse: {e}\n{:?}",
            String::from_utf8_lossy(&buf)
        )
    });
    assert_eq!(out.to_path().as_str(), to);
    assert_eq!(out.from_path().as_str(), from);
    same_rest(h, &out);
    rescan(&buf, tid, has_body);
}

/// Scans `head` followed by an empty body or an end-line; it must come back as one Head
/// event with the same bytes, then End.
fn rescan(head: &[u8], tid: &str, has_body: bool) {
    let mut input = head.to_vec();
    if has_body {
        input.extend_from_slice(b"\r\n\r\n");
    }
    input.extend_from_slice(b"-------");
    input.extend_from_slice(tid.as_bytes());
    input.extend_from_slice(b"$\r\n");
    let mut sc = Scanner::new(ScanLimits {
        max_head: usize::from(u16::MAX),
        max_non_send_body: None,
    });
    let mut buf = BytesMut::from(&input[..]);
    match sc.next(&mut buf) {
        Ok(Some(Event::Head(rh))) => {
            assert_eq!(rh.as_bytes(), head);
            assert_eq!(rh.has_body(), has_body);
            assert_eq!(rh.tid(), tid.as_bytes());
        }
        other => panic!("re-encoded head does not scan: {other:?}"),
    }
    assert_eq!(sc.next(&mut buf), Ok(Some(Event::End(Flag::Complete))));
    assert!(sc.is_idle(&buf));
}

/// RawHead accessors, `RawHead::parse` against `Head::parse` on the same bytes, and on
/// success every typed accessor and the re-encoders.
pub fn check_raw_head(rh: &RawHead) {
    let bytes = rh.as_bytes();
    assert_eq!(rh.bytes().as_ref(), bytes);
    assert!(bytes.starts_with(b"MSRP ") && bytes.ends_with(b"\r\n"));
    assert_eq!(rh.is_request(), rh.method().is_some());
    assert_eq!(rh.is_request(), rh.status().is_none());
    let parsed = rh.parse();
    let direct = Head::parse(bytes);
    match (&parsed, &direct) {
        (Ok(_), Ok(_)) => {}
        (Err(HeadError::MissingContentType), Ok(d)) => {
            assert!(rh.has_body() && d.content_type().is_none());
        }
        (Err(a), Err(b)) => assert_eq!(a, b),
        _ => panic!("RawHead::parse {parsed:?} vs Head::parse {direct:?}"),
    }
    if let Ok(h) = parsed {
        assert_eq!(h.as_bytes(), bytes);
        assert_eq!(h.tid().as_bytes(), rh.tid());
        assert_eq!(h.is_request(), rh.is_request());
        assert_eq!(h.status_code(), rh.status());
        assert_eq!(h.method().map(|m| m.as_str().as_bytes()), rh.method());
        if rh.has_body() {
            assert!(h.content_type().is_some());
        }
        check_head(&h);
        check_reencode(&h, rh.has_body());
    }
}

// ---------------------------------------------------------------------------------------
// Scanner

#[derive(Debug, Clone, PartialEq, Eq)]
enum Ev {
    Head(Bytes, bool),
    Body(Vec<u8>),
    End(Flag),
}

struct Run {
    events: Vec<Ev>,
    result: Result<(), ScanError>,
    consumed: usize,
}

/// Feeds `input` to a scanner in pieces whose lengths cycle through `lens` (all of it at
/// once when `lens` is empty or all zero; a zero length is a call with nothing new).
/// Checks, after every event, that the events account exactly for the bytes consumed.
fn run(input: &[u8], lens: &[u8], limits: ScanLimits, deep: bool) -> Run {
    let whole = lens.iter().all(|&l| l == 0);
    let mut sc = Scanner::new(limits);
    let mut buf = BytesMut::new();
    let mut fed = 0usize;
    let mut i = 0usize;
    let mut events: Vec<Ev> = Vec::new();
    // What the events say the consumed input was: head, framing, body, end-lines.
    let mut recon: Vec<u8> = Vec::new();
    // The current frame (tid, has_body, is a SEND) and its body so far.
    let mut frame: Option<(Vec<u8>, bool, bool)> = None;
    let mut body: Vec<u8> = Vec::new();
    let mut result = Ok(());
    'feed: loop {
        let n = if whole {
            input.len() - fed
        } else {
            let l = usize::from(lens[i % lens.len()]);
            i += 1;
            l.min(input.len() - fed)
        };
        buf.extend_from_slice(&input[fed..fed + n]);
        fed += n;
        loop {
            let before = buf.len();
            match sc.next(&mut buf) {
                Ok(None) => {
                    assert_eq!(buf.len(), before, "Ok(None) consumed bytes");
                    break;
                }
                Err(e) => {
                    // Errors are sticky.
                    assert_eq!(sc.next(&mut buf), Err(e));
                    assert_eq!(sc.next(&mut buf), Err(e));
                    result = Err(e);
                    break 'feed;
                }
                Ok(Some(ev)) => {
                    let consumed = fed - buf.len();
                    assert!(consumed <= input.len());
                    match ev {
                        Event::Head(rh) => {
                            assert!(frame.is_none(), "Head inside a frame");
                            assert!(!sc.in_body() || rh.has_body());
                            recon.extend_from_slice(rh.as_bytes());
                            if rh.has_body() {
                                recon.extend_from_slice(b"\r\n");
                                assert_eq!(recon, &input[..consumed]);
                                assert!(sc.in_body());
                            } else {
                                // The end-line was consumed with the head; its flag
                                // comes with the End event.
                                assert!(input[..consumed].starts_with(&recon));
                                assert!(!sc.in_body());
                            }
                            if deep {
                                check_raw_head(&rh);
                            }
                            frame = Some((
                                rh.tid().to_vec(),
                                rh.has_body(),
                                rh.method() == Some(b"SEND"),
                            ));
                            body.clear();
                            events.push(Ev::Head(rh.bytes().clone(), rh.has_body()));
                        }
                        Event::Body(b) => {
                            assert!(!b.is_empty(), "empty Body event");
                            assert!(matches!(frame, Some((_, true, _))), "Body outside a body");
                            recon.extend_from_slice(&b);
                            assert_eq!(recon, &input[..consumed]);
                            body.extend_from_slice(&b);
                            if let (Some(lim), Some((_, _, false))) =
                                (limits.max_non_send_body, &frame)
                            {
                                assert!(body.len() as u64 <= lim, "non-SEND body over its limit");
                            }
                            match events.last_mut() {
                                Some(Ev::Body(v)) => v.extend_from_slice(&b),
                                _ => events.push(Ev::Body(b.to_vec())),
                            }
                        }
                        Event::End(flag) => {
                            let (tid, has_body, _) = frame.take().expect("End outside a frame");
                            let mut end = Vec::new();
                            if has_body {
                                end.extend_from_slice(b"\r\n");
                            }
                            end.extend_from_slice(b"-------");
                            end.extend_from_slice(&tid);
                            end.push(flag.as_byte());
                            end.extend_from_slice(b"\r\n");
                            recon.extend_from_slice(&end);
                            assert_eq!(recon, &input[..consumed]);
                            if has_body {
                                // The body holds no end-line of its own transaction.
                                let mut s = body.clone();
                                s.extend_from_slice(&end);
                                let needle: Vec<u8> = [&b"\r\n-------"[..], &tid].concat();
                                let first = memmem::find_iter(&s, &needle)
                                    .find(|&at| {
                                        let f = at + needle.len();
                                        s.len() >= f + 3
                                            && Flag::from_byte(s[f]).is_some()
                                            && &s[f + 1..f + 3] == b"\r\n"
                                    })
                                    .unwrap();
                                assert_eq!(first, body.len(), "body contains its end-line");
                            }
                            assert!(!sc.in_body());
                            assert_eq!(sc.is_idle(&buf), buf.is_empty());
                            events.push(Ev::End(flag));
                        }
                    }
                }
            }
        }
        if fed == input.len() {
            break;
        }
    }
    let consumed = fed - buf.len();
    assert!(recon.len() <= consumed);
    assert!(input[..consumed].starts_with(&recon[..recon.len().min(consumed)]));
    Run {
        events,
        result,
        consumed,
    }
}

/// Drops trailing Body events (a body cut short by an error).
fn trim_body(ev: &[Ev]) -> (&[Ev], &[u8]) {
    match ev.split_last() {
        Some((Ev::Body(b), rest)) => (rest, b),
        _ => (ev, &[]),
    }
}

/// Target `scanner`. Input: `cfg`, `k`, `k` piece lengths, then the stream.
///
/// `cfg` bit 0 picks small limits (derived from the other bits) instead of the defaults.
/// Invariants: no panic; events follow Head (Body* if it has a body) End; head, framing
/// and body bytes reproduce the consumed input exactly; feeding in pieces gives the same
/// events (body pieces joined), the same error and the same consumption as feeding the
/// whole input at once; every head is parsed and typed and re-encoded (see
/// [`check_raw_head`]).
pub fn scanner(data: &[u8]) {
    let [cfg, k, rest @ ..] = data else { return };
    let k = usize::from(k % 16);
    if rest.len() < k {
        return;
    }
    let (lens, input) = rest.split_at(k);
    let limits = if cfg & 1 == 0 {
        ScanLimits::default()
    } else {
        ScanLimits {
            max_head: 16 + usize::from(cfg >> 1) * 24,
            max_non_send_body: (cfg & 0x80 == 0).then(|| u64::from(cfg >> 1) * 8),
        }
    };
    let chunked = run(input, lens, limits, true);
    let whole = run(input, &[], limits, false);
    match (chunked.result, whole.result) {
        (Ok(()), Ok(())) => {
            assert_eq!(chunked.events, whole.events);
            assert_eq!(chunked.consumed, whole.consumed);
        }
        (Err(a), Err(b)) => {
            assert_eq!(a, b, "chunked vs whole input");
            let (ea, ba) = trim_body(&chunked.events);
            let (eb, bb) = trim_body(&whole.events);
            assert_eq!(ea, eb);
            assert!(ba.starts_with(bb) || bb.starts_with(ba));
        }
        (a, b) => panic!(
            "chunked {a:?} after {} events, whole input {b:?} after {} events",
            chunked.events.len(),
            whole.events.len()
        ),
    }
}

// ---------------------------------------------------------------------------------------
// Other targets

/// Target `head`: `Head::parse` on arbitrary bytes. On success: every accessor, the
/// re-encoders, and the scanner must agree (the head followed by an end-line scans back
/// to the same bytes).
pub fn head(data: &[u8]) {
    let Ok(h) = Head::parse(data) else { return };
    check_head(&h);
    check_reencode(&h, false);
    if h.is_request() {
        // Only requests may carry a body.
        check_reencode(&h, true);
    }
    rescan(data, h.tid(), false);
}

/// Target `uri`: the input (UTF-8) is split at its first two `\n` into up to three URIs.
/// Each one that parses gets [`check_uri`]; equality must be symmetric and transitive.
pub fn uri(data: &[u8]) {
    let Ok(s) = core::str::from_utf8(data) else {
        return;
    };
    let mut parts = s.splitn(3, '\n');
    let us: Vec<Option<Uri<'_>>> = (0..3)
        .map(|_| parts.next().and_then(|p| Uri::parse(p).ok()))
        .collect();
    for u in us.iter().flatten() {
        check_uri(u);
    }
    for a in us.iter().flatten() {
        for b in us.iter().flatten() {
            assert_eq!(a == b, b == a, "{a:?} vs {b:?}");
            for c in us.iter().flatten() {
                if a == b && b == c {
                    assert!(a == c, "not transitive: {a:?} {b:?} {c:?}");
                }
            }
        }
    }
    // The same text as a path.
    if let Ok(p) = Path::parse(s.split('\n').next().unwrap_or("")) {
        check_path(&p);
    }
    // Every line as a path through the relay's path cache, which lives across inputs (so
    // that earlier inputs' paths are in it), twice (so that the second is a hit when the
    // first parsed): each answer must be Path::parse's.
    PATHS.with(|cache| {
        let mut cache = cache.borrow_mut();
        for line in s.split('\n') {
            let want = format!("{:?}", Path::parse(line));
            for _ in 0..2 {
                let got = cache.parse(line);
                assert_eq!(format!("{got:?}"), want, "path cache differs on {line:?}");
                if let Ok(p) = got {
                    check_path(&p);
                }
            }
        }
    });
}

thread_local! {
    static PATHS: std::cell::RefCell<PathCache> = std::cell::RefCell::new(PathCache::new());
}

fn check_params(p: &DigestParams<'_>, input: &[u8], scheme: bool) {
    assert!(!p.is_empty() && p.len() == p.iter().count());
    assert!(p.len() <= msrpd::codec::header::MAX_DIGEST_PARAMS);
    let mut canon = String::from(if scheme { "Digest " } else { "" });
    for (i, dp) in p.iter().enumerate() {
        assert!(within(input, dp.name.as_bytes()) && within(input, dp.value.as_bytes()));
        assert!(!dp.name.is_empty());
        assert!(dp.quoted || !dp.value.is_empty());
        let first = p
            .iter()
            .find(|o| o.name.eq_ignore_ascii_case(dp.name))
            .unwrap();
        assert_eq!(p.get(dp.name), Some(first.value));
        let _ = unescape(dp.value);
        if i > 0 {
            canon.push_str(", ");
        }
        canon.push_str(dp.name);
        canon.push('=');
        if dp.quoted {
            canon.push('"');
            canon.push_str(dp.value);
            canon.push('"');
        } else {
            canon.push_str(dp.value);
        }
    }
    // Written back in canonical form, the parameters parse to the same list.
    let again = DigestParams::parse(canon.as_bytes(), scheme)
        .unwrap_or_else(|e| panic!("canonical form {canon:?} does not parse: {e}"));
    assert!(again.iter().eq(p.iter()), "{canon:?}");
}

fn check_credentials(c: &Credentials<'_>) {
    assert!(!c.response.is_empty() && c.response.bytes().all(|b| b.is_ascii_hexdigit()));
    if c.qop.is_some() {
        assert!(c.cnonce.is_some() && c.nc.is_some());
    }
    for v in [c.username, c.realm, c.nonce] {
        let _ = unescape(v);
    }
}

fn check_challenge(c: &Challenge<'_>) {
    let _ = (
        unescape(c.realm),
        unescape(c.nonce),
        c.opaque,
        c.stale,
        c.algorithm,
        c.qop,
    );
}

fn check_auth_info(a: &AuthInfo<'_>) {
    let _ = (a.nextnonce, a.qop, a.rspauth, a.cnonce, a.nc);
}

/// Target `digest`: `DigestParams::parse` (with and without the scheme),
/// `Credentials::parse`, `Challenge::parse`, `AuthInfo::parse`. Typed values must equal
/// what the generic parameter list says, and the list must survive a canonical rewrite.
pub fn digest(data: &[u8]) {
    let with = DigestParams::parse(data, true);
    let without = DigestParams::parse(data, false);
    if let Ok(p) = &with {
        check_params(p, data, true);
    }
    if let Ok(p) = &without {
        check_params(p, data, false);
    }
    let cred = Credentials::parse(data);
    if let Ok(c) = &cred {
        let p = with
            .as_ref()
            .expect("Credentials parsed but DigestParams did not");
        assert_eq!(Some(c.username), p.get("username"));
        assert_eq!(Some(c.realm), p.get("realm"));
        assert_eq!(Some(c.nonce), p.get("nonce"));
        assert_eq!(Some(c.response), p.get("response"));
        assert_eq!(c.uri, p.get("uri"));
        assert_eq!(c.cnonce, p.get("cnonce"));
        assert_eq!(c.qop, p.get("qop"));
        assert_eq!(c.opaque, p.get("opaque"));
        assert_eq!(c.algorithm, p.get("algorithm"));
        assert_eq!(c.nc.is_some(), p.get("nc").is_some());
        check_credentials(c);
    }
    if let Ok(c) = Challenge::parse(data) {
        let p = with
            .as_ref()
            .expect("Challenge parsed but DigestParams did not");
        assert_eq!(Some(c.realm), p.get("realm"));
        assert_eq!(Some(c.nonce), p.get("nonce"));
        check_challenge(&c);
    } else if let Ok(p) = &with {
        assert!(p.get("realm").is_none() || p.get("nonce").is_none());
    }
    match AuthInfo::parse(data) {
        Ok(a) => {
            let p = without
                .as_ref()
                .expect("AuthInfo parsed but DigestParams did not");
            assert_eq!(a.nextnonce, p.get("nextnonce"));
            assert_eq!(a.rspauth, p.get("rspauth"));
            check_auth_info(&a);
        }
        Err(_) => assert!(without.is_err()),
    }
}
