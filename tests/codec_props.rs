//! Properties of the codec (proptest):
//!
//! 1. `split_invariance`: a generated stream of valid frames (random transaction ids,
//!    binary bodies with NUL, CR, LF and fake end-lines: other ids, bad flags, a flag not
//!    followed by CRLF, a cut-off id) gives the events of its model, whatever the pieces
//!    it arrives in.
//! 2. `mutated_streams_split_invariance`: the same streams with a few bytes changed, added
//!    or removed: no panic, and the same frames and the same first error for any split.
//! 3. `request_round_trip`, `response_round_trip`, `report_round_trip`: what
//!    `encode::{request, response, report}` write scans and parses back to equal typed
//!    values.
//! 4. `uri_round_trip`: an MSRP URI made from parts parses back to those parts, and
//!    compares by the rules of RFC 4975 §6.1.
//! 5. `forward_head_moves_one_uri`: `encode::forward_head` moves the first To-Path URI to
//!    the front of From-Path and copies every other header line byte for byte.
//!
//! Case counts are kept small enough for a debug `cargo test` to take seconds.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};

use bytes::BytesMut;
use msrpd::codec::{
    ByteRange, ContentType, Credentials, Event, FailureReport, Flag, Head, Host, Path, PathCache,
    ScanError, Scanner, StartLine, Status, SuccessReport, Uri, encode,
};
use proptest::prelude::*;
use proptest::sample::Index;

// ---------------------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------------------

fn tid() -> impl Strategy<Value = String> {
    "[A-Za-z0-9][A-Za-z0-9.+%=-]{3,31}"
}

fn flag() -> impl Strategy<Value = Flag> {
    prop_oneof![
        Just(Flag::Complete),
        Just(Flag::Continued),
        Just(Flag::Aborted)
    ]
}

fn flag_byte() -> impl Strategy<Value = u8> {
    prop::sample::select(b"$+#".to_vec())
}

/// An MSRP URI made from parts.
#[derive(Debug, Clone)]
struct UriSpec {
    secure: bool,
    userinfo: Option<String>,
    host: HostSpec,
    port: Option<u16>,
    session: Option<String>,
    transport: String,
    params: Vec<(String, Option<String>)>,
}

#[derive(Debug, Clone)]
enum HostSpec {
    Name(String),
    V4(Ipv4Addr),
    V6(Ipv6Addr),
}

impl std::fmt::Display for UriSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.secure { "msrps://" } else { "msrp://" })?;
        if let Some(u) = &self.userinfo {
            write!(f, "{u}@")?;
        }
        match &self.host {
            HostSpec::Name(n) => f.write_str(n)?,
            HostSpec::V4(a) => write!(f, "{a}")?,
            HostSpec::V6(a) => write!(f, "[{a}]")?,
        }
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        if let Some(s) = &self.session {
            write!(f, "/{s}")?;
        }
        write!(f, ";{}", self.transport)?;
        for (n, v) in &self.params {
            match v {
                Some(v) => write!(f, ";{n}={v}")?,
                None => write!(f, ";{n}")?,
            }
        }
        Ok(())
    }
}

fn uri_spec() -> impl Strategy<Value = UriSpec> {
    let host = prop_oneof![
        3 => "[a-zA-Z][a-zA-Z0-9-]{0,12}(\\.[a-z]{2,6}){0,3}".prop_map(HostSpec::Name),
        1 => "[a-z0-9]{1,6}(%[0-9A-F]{2}[a-z]{0,3}){1,2}".prop_map(HostSpec::Name),
        1 => any::<[u8; 4]>().prop_map(|a| HostSpec::V4(a.into())),
        1 => any::<[u16; 8]>().prop_map(|a| HostSpec::V6(a.into())),
    ];
    (
        any::<bool>(),
        prop::option::of("[a-zA-Z0-9._~!$&'()*+,;=:-]{1,10}"),
        host,
        prop::option::of(any::<u16>()),
        prop::option::of("[A-Za-z0-9._~+=/-]{1,24}"),
        prop_oneof![
            3 => Just("tcp".to_string()),
            1 => Just("ws".to_string()),
            1 => "[A-Za-z0-9]{1,6}"
        ],
        prop::collection::vec(
            (
                "[a-z][a-z0-9-]{0,5}",
                prop::option::of("[A-Za-z0-9!.+-]{1,6}"),
            ),
            0..3,
        ),
    )
        .prop_map(
            |(secure, userinfo, host, port, session, transport, params)| UriSpec {
                secure,
                userinfo,
                host,
                port,
                session,
                transport,
                params,
            },
        )
}

fn path(max: usize) -> impl Strategy<Value = Vec<UriSpec>> {
    prop::collection::vec(uri_spec(), 1..=max)
}

fn join(p: &[UriSpec]) -> String {
    p.iter()
        .map(|u| u.to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Makes a header name's case random-looking but deterministic from `seed`.
fn recase(name: &str, seed: u32) -> String {
    name.chars()
        .enumerate()
        .map(|(i, c)| {
            if seed >> (i % 32) & 1 == 1 {
                c.to_ascii_lowercase()
            } else {
                c.to_ascii_uppercase()
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// 1 and 2: streams of frames and their model
// ---------------------------------------------------------------------------------------

/// A piece of body, some of it built to look like an end-line.
#[derive(Debug, Clone)]
enum Seg {
    /// Random bytes, rich in CR, LF, NUL, '-' and flag bytes.
    Bytes(Vec<u8>),
    /// A complete end-line of another transaction.
    OtherTid(String, u8),
    /// This transaction's end-line with a byte that is not a flag.
    BadFlag(u8),
    /// This transaction's end-line whose flag is not followed by CRLF.
    NoCrlf(u8, &'static str),
    /// CRLF, hyphens and the first `n` bytes of the id.
    Cut(usize),
    /// Six hyphens instead of seven.
    SixHyphens(u8),
}

fn seg() -> impl Strategy<Value = Seg> {
    let byte = prop_oneof![
        3 => any::<u8>(),
        2 => prop::sample::select(b"\r\n-\0$+#".to_vec()),
    ];
    prop_oneof![
        4 => prop::collection::vec(byte, 0..48).prop_map(Seg::Bytes),
        1 => (tid(), flag_byte()).prop_map(|(t, f)| Seg::OtherTid(t, f)),
        1 => any::<u8>()
            .prop_filter("not a flag", |b| !b"$+#".contains(b))
            .prop_map(Seg::BadFlag),
        1 => (
            flag_byte(),
            prop::sample::select(vec!["x", "\rx", "\n", "\r\r\n", " \r\n"])
        )
            .prop_map(|(f, t)| Seg::NoCrlf(f, t)),
        1 => (0usize..40).prop_map(Seg::Cut),
        1 => flag_byte().prop_map(Seg::SixHyphens),
    ]
}

fn build_body(tid: &str, segs: &[Seg]) -> Vec<u8> {
    let mut b = Vec::new();
    for s in segs {
        match s {
            Seg::Bytes(v) => b.extend_from_slice(v),
            Seg::OtherTid(t, f) => {
                // Make sure it is another id (a longer one that starts with ours is fine).
                let t = if t == tid { format!("{t}x") } else { t.clone() };
                b.extend_from_slice(format!("\r\n-------{t}").as_bytes());
                b.push(*f);
                b.extend_from_slice(b"\r\n");
            }
            Seg::BadFlag(x) => {
                b.extend_from_slice(format!("\r\n-------{tid}").as_bytes());
                b.push(*x);
                b.extend_from_slice(b"\r\n");
            }
            Seg::NoCrlf(f, tail) => {
                b.extend_from_slice(format!("\r\n-------{tid}").as_bytes());
                b.push(*f);
                b.extend_from_slice(tail.as_bytes());
            }
            Seg::Cut(n) => {
                b.extend_from_slice(b"\r\n-------");
                b.extend_from_slice(&tid.as_bytes()[..*n % tid.len()]);
            }
            Seg::SixHyphens(f) => {
                b.extend_from_slice(format!("\r\n------{tid}").as_bytes());
                b.push(*f);
                b.extend_from_slice(b"\r\n");
            }
        }
    }
    b
}

/// Where the first end-line of `tid` starts in `bytes` (the CRLF before it included),
/// by a naive search: the oracle for generated bodies.
fn first_end_line(bytes: &[u8], tid: &str) -> Option<usize> {
    let needle = format!("\r\n-------{tid}");
    let n = needle.len();
    (0..bytes.len()).find(|&i| {
        bytes.len() >= i + n + 3
            && &bytes[i..i + n] == needle.as_bytes()
            && b"$+#".contains(&bytes[i + n])
            && &bytes[i + n + 1..i + n + 3] == b"\r\n"
    })
}

#[derive(Debug, Clone)]
enum FrameSpec {
    Request {
        tid: String,
        method: String,
        extra: Vec<(String, String)>,
        body: Option<Vec<Seg>>,
        flag: Flag,
    },
    Response {
        tid: String,
        code: u16,
        comment: Option<String>,
        extra: Vec<(String, String)>,
    },
}

fn extra_headers() -> impl Strategy<Value = Vec<(String, String)>> {
    prop::collection::vec(
        (
            "X-[A-Za-z0-9-]{1,10}",
            "[ -~]{0,30}".prop_map(|s| s.trim().to_string()),
        ),
        0..3,
    )
}

fn method() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => Just("SEND".to_string()),
        1 => Just("REPORT".to_string()),
        1 => Just("AUTH".to_string()),
        1 => "[A-Z]{1,10}",
    ]
}

fn frame_spec() -> impl Strategy<Value = FrameSpec> {
    prop_oneof![
        3 => (
            tid(),
            method(),
            extra_headers(),
            prop::option::of(prop::collection::vec(seg(), 0..8)),
            flag()
        )
            .prop_map(|(tid, method, extra, body, flag)| FrameSpec::Request {
                tid,
                method,
                extra,
                body,
                flag
            }),
        1 => (
            tid(),
            0u16..1000,
            prop::option::of("[ -~]{1,20}"),
            extra_headers()
        )
            .prop_map(|(tid, code, comment, extra)| FrameSpec::Response {
                tid,
                code,
                comment,
                extra
            }),
    ]
}

/// What the scanner should report, body pieces joined.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Ev {
    Head(Vec<u8>, bool),
    Body(Vec<u8>),
    End(Flag),
}

const TO: &str = "msrp://b.example.com:7654/jshA7weztas;tcp";
const FROM: &str = "msrp://a.example.com:12763/kjhd37s2s20w2a;tcp";

/// Encodes a frame, and gives the events the scanner must produce for it. `None` when
/// the generated body happens to hold this transaction's own end-line.
fn encode_frame(f: &FrameSpec, out: &mut Vec<u8>, evs: &mut Vec<Ev>) -> Option<()> {
    let start = out.len();
    match f {
        FrameSpec::Request {
            tid,
            method,
            extra,
            body,
            flag,
        } => {
            let hs: Vec<(&str, &[u8])> = extra
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_bytes()))
                .collect();
            let body = body.as_ref().map(|s| build_body(tid, s));
            if let Some(b) = &body {
                let mut probe = b.clone();
                encode::body_end_line(&mut probe, tid, *flag);
                if first_end_line(&probe, tid) != Some(b.len()) {
                    return None;
                }
            }
            encode::request(
                out,
                tid,
                method,
                TO,
                FROM,
                &hs,
                body.as_deref().map(|b| ("application/octet-stream", b)),
                *flag,
            );
            let wire = &out[start..];
            match body {
                Some(b) => {
                    let head_len = wire.windows(4).position(|w| w == b"\r\n\r\n")? + 2;
                    evs.push(Ev::Head(wire[..head_len].to_vec(), true));
                    if !b.is_empty() {
                        evs.push(Ev::Body(b));
                    }
                }
                None => {
                    let head_len = wire.len() - (7 + tid.len() + 3);
                    evs.push(Ev::Head(wire[..head_len].to_vec(), false));
                }
            }
            evs.push(Ev::End(*flag));
        }
        FrameSpec::Response {
            tid,
            code,
            comment,
            extra,
        } => {
            let hs: Vec<(&str, &[u8])> = extra
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_bytes()))
                .collect();
            encode::response(out, tid, *code, comment.as_deref(), FROM, TO, &hs);
            let wire = &out[start..];
            let head_len = wire.len() - (7 + tid.len() + 3);
            evs.push(Ev::Head(wire[..head_len].to_vec(), false));
            evs.push(Ev::End(Flag::Complete));
        }
    }
    Some(())
}

/// Scans `input` cut at `cuts` (any order, any duplicates). Returns the events with body
/// pieces joined, and the error that stopped the scan, if any.
fn scan(input: &[u8], cuts: &[usize]) -> (Vec<Ev>, Option<ScanError>) {
    let mut cuts: Vec<usize> = cuts.iter().map(|&c| c.min(input.len())).collect();
    cuts.push(input.len());
    cuts.sort_unstable();
    let mut sc = Scanner::default();
    let mut buf = BytesMut::new();
    let mut evs: Vec<Ev> = Vec::new();
    let mut at = 0;
    for cut in cuts {
        buf.extend_from_slice(&input[at..cut]);
        at = cut;
        loop {
            match sc.next(&mut buf) {
                Ok(None) => break,
                Ok(Some(Event::Head(h))) => {
                    evs.push(Ev::Head(h.as_bytes().to_vec(), h.has_body()));
                }
                Ok(Some(Event::Body(b))) => {
                    assert!(!b.is_empty(), "empty body piece");
                    match evs.last_mut() {
                        Some(Ev::Body(v)) => v.extend_from_slice(&b),
                        _ => evs.push(Ev::Body(b.to_vec())),
                    }
                }
                Ok(Some(Event::End(f))) => evs.push(Ev::End(f)),
                Err(e) => return (evs, Some(e)),
            }
        }
    }
    (evs, None)
}

/// Drops a body that was still arriving when the input ran out or failed: how much of it
/// was handed out before depends on the split.
fn completed(mut evs: Vec<Ev>) -> Vec<Ev> {
    if let Some(Ev::Body(_)) = evs.last() {
        evs.pop();
    }
    evs
}

fn stream() -> impl Strategy<Value = (Vec<u8>, Vec<Ev>)> {
    prop::collection::vec(frame_spec(), 1..6).prop_filter_map(
        "a body holds its own end-line",
        |frames| {
            let mut wire = Vec::new();
            let mut evs = Vec::new();
            for f in &frames {
                encode_frame(f, &mut wire, &mut evs)?;
            }
            Some((wire, evs))
        },
    )
}

fn cuts() -> impl Strategy<Value = Vec<Index>> {
    prop::collection::vec(any::<Index>(), 0..40)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(160))]

    #[test]
    fn split_invariance((wire, model) in stream(), cuts in cuts()) {
        let whole = scan(&wire, &[]);
        prop_assert_eq!(&whole.0, &model);
        prop_assert_eq!(whole.1, None);
        let cuts: Vec<usize> = cuts.iter().map(|i| i.index(wire.len() + 1)).collect();
        let split = scan(&wire, &cuts);
        prop_assert_eq!(&split.0, &model);
        prop_assert_eq!(split.1, None);
        // Every head the scanner hands out parses.
        for ev in &model {
            if let Ev::Head(h, _) = ev {
                prop_assert!(Head::parse(h).is_ok());
            }
        }
    }

    #[test]
    fn byte_by_byte((wire, model) in stream()) {
        let every: Vec<usize> = (1..wire.len()).collect();
        let (evs, err) = scan(&wire, &every);
        prop_assert_eq!(evs, model);
        prop_assert_eq!(err, None);
    }

    #[test]
    fn mutated_streams_split_invariance(
        (wire, _) in stream(),
        edits in prop::collection::vec((any::<Index>(), 0u8..3, any::<u8>()), 1..4),
        cuts in cuts(),
    ) {
        let mut wire = wire;
        for (at, op, byte) in edits {
            let i = at.index(wire.len());
            match op {
                0 => wire[i] = byte,
                1 => wire.insert(i, byte),
                _ => {
                    wire.remove(i);
                }
            }
            if wire.is_empty() {
                wire.push(byte);
            }
        }
        let (w_evs, w_err) = scan(&wire, &[]);
        let cuts: Vec<usize> = cuts.iter().map(|i| i.index(wire.len() + 1)).collect();
        let (s_evs, s_err) = scan(&wire, &cuts);
        prop_assert_eq!(w_err, s_err);
        prop_assert_eq!(completed(w_evs), completed(s_evs));
    }
}

// ---------------------------------------------------------------------------------------
// 3: encode -> scan -> parse
// ---------------------------------------------------------------------------------------

/// Scans one encoded frame whole and in pieces; returns the single head, the joined body
/// and the flag.
fn scan_one(wire: &[u8], cuts: &[usize]) -> (Vec<u8>, Option<Vec<u8>>, Flag) {
    let (evs, err) = scan(wire, cuts);
    assert_eq!(err, None);
    let (whole, _) = scan(wire, &[]);
    assert_eq!(evs, whole);
    let mut it = evs.into_iter();
    let Some(Ev::Head(head, has_body)) = it.next() else {
        panic!("no head")
    };
    let mut body = has_body.then(Vec::new);
    let mut flag = None;
    for ev in it {
        match ev {
            Ev::Body(b) => body.as_mut().expect("body").extend_from_slice(&b),
            Ev::End(f) => flag = Some(f),
            Ev::Head(..) => panic!("second head"),
        }
    }
    (head, body, flag.expect("end"))
}

fn check_path(p: &msrpd::codec::Path<'_>, spec: &[UriSpec]) -> Result<(), TestCaseError> {
    let want: Vec<String> = spec.iter().map(|u| u.to_string()).collect();
    prop_assert_eq!(p.iter().collect::<Vec<_>>(), want.clone());
    prop_assert_eq!(p.len(), spec.len());
    prop_assert_eq!(p.first().as_str(), want[0].as_str());
    for (u, s) in p.uris().zip(spec) {
        check_uri(&u, s)?;
    }
    Ok(())
}

fn check_uri(u: &Uri<'_>, s: &UriSpec) -> Result<(), TestCaseError> {
    prop_assert_eq!(u.as_str(), s.to_string());
    prop_assert_eq!(u.is_secure(), s.secure);
    prop_assert_eq!(u.userinfo(), s.userinfo.as_deref());
    match (&s.host, u.host()) {
        (HostSpec::Name(n), got) => {
            // A name made only of digits and dots would be an address; ours start with
            // a letter or hold an escape.
            prop_assert_eq!(got, Host::Name(n.as_str()));
            prop_assert_eq!(u.host_str(), n.as_str());
        }
        (HostSpec::V4(a), got) => prop_assert_eq!(got, Host::V4(*a)),
        (HostSpec::V6(a), got) => prop_assert_eq!(got, Host::V6(*a)),
    }
    prop_assert_eq!(u.port(), s.port);
    prop_assert_eq!(u.session_id(), s.session.as_deref());
    prop_assert_eq!(u.transport(), s.transport.as_str());
    let params: Vec<(String, Option<String>)> = u
        .param_iter()
        .map(|(n, v)| (n.to_string(), v.map(str::to_string)))
        .collect();
    prop_assert_eq!(&params, &s.params);
    Ok(())
}

fn byte_range() -> impl Strategy<Value = ByteRange> {
    (
        1u64..u64::MAX / 4,
        0u64..1 << 40,
        0u64..1 << 40,
        any::<(bool, bool)>(),
    )
        .prop_map(|(start, len, more, (end_known, total_known))| {
            let end = start - 1 + len;
            ByteRange {
                start,
                end: end_known.then_some(end),
                total: total_known.then_some(end + more),
            }
        })
}

fn ident() -> impl Strategy<Value = String> {
    tid()
}

#[derive(Debug, Clone)]
struct Typed {
    message_id: Option<String>,
    byte_range: Option<ByteRange>,
    success: Option<SuccessReport>,
    failure: Option<FailureReport>,
    expires: Option<u32>,
    min_expires: Option<u32>,
    max_expires: Option<u32>,
    use_path: Option<Vec<UriSpec>>,
    status: Option<(u16, u16, Option<String>)>,
    unknown: Vec<(String, String)>,
    /// Seed for the case of the header names.
    case: u32,
}

fn typed() -> impl Strategy<Value = Typed> {
    (
        (
            prop::option::of(ident()),
            prop::option::of(byte_range()),
            prop::option::of(prop_oneof![
                Just(SuccessReport::Yes),
                Just(SuccessReport::No)
            ]),
            prop::option::of(prop_oneof![
                Just(FailureReport::Yes),
                Just(FailureReport::No),
                Just(FailureReport::Partial)
            ]),
        ),
        (
            prop::option::of(any::<u32>()),
            prop::option::of(any::<u32>()),
            prop::option::of(any::<u32>()),
            prop::option::of(path(3)),
            prop::option::of((0u16..1000, 0u16..1000, prop::option::of("[!-~][ -~]{0,20}"))),
        ),
        extra_headers(),
        any::<u32>(),
    )
        .prop_map(
            |(
                (message_id, byte_range, success, failure),
                (expires, min_expires, max_expires, use_path, status),
                unknown,
                case,
            )| Typed {
                message_id,
                byte_range,
                success,
                failure,
                expires,
                min_expires,
                max_expires,
                use_path,
                status: status.map(|(n, c, m)| (n, c, m.map(|m| m.trim_end().to_string()))),
                unknown,
                case,
            },
        )
}

impl Typed {
    /// The header lines, names in mixed case.
    fn headers(&self) -> Vec<(String, Vec<u8>)> {
        let mut h: Vec<(String, Vec<u8>)> = Vec::new();
        let c = self.case;
        let mut add = |n: &str, v: String| h.push((recase(n, c), v.into_bytes()));
        if let Some(m) = &self.message_id {
            add("Message-ID", m.clone());
        }
        if let Some(r) = self.byte_range {
            add("Byte-Range", r.to_string());
        }
        if let Some(s) = self.success {
            add("Success-Report", format!("{s:?}").to_ascii_lowercase());
        }
        if let Some(f) = self.failure {
            add("Failure-Report", format!("{f:?}").to_ascii_lowercase());
        }
        if let Some(e) = self.expires {
            add("Expires", e.to_string());
        }
        if let Some(e) = self.min_expires {
            add("Min-Expires", e.to_string());
        }
        if let Some(e) = self.max_expires {
            add("Max-Expires", e.to_string());
        }
        if let Some(p) = &self.use_path {
            add("Use-Path", join(p));
        }
        if let Some((n, c, m)) = &self.status {
            let mut v = format!("{n:03} {c:03}");
            if let Some(m) = m {
                let _ = write!(v, " {m}");
            }
            add("Status", v);
        }
        for (n, v) in &self.unknown {
            h.push((n.clone(), v.clone().into_bytes()));
        }
        h
    }

    fn check(&self, h: &Head<'_>) -> Result<(), TestCaseError> {
        prop_assert_eq!(h.message_id(), self.message_id.as_deref());
        prop_assert_eq!(h.byte_range(), self.byte_range);
        prop_assert_eq!(
            h.success_report(),
            self.success.unwrap_or(SuccessReport::No)
        );
        prop_assert_eq!(
            h.failure_report(),
            self.failure.unwrap_or(FailureReport::Yes)
        );
        prop_assert_eq!(
            h.has_report_headers(),
            self.success.is_some() || self.failure.is_some()
        );
        prop_assert_eq!(h.expires(), self.expires);
        prop_assert_eq!(h.min_expires(), self.min_expires);
        prop_assert_eq!(h.max_expires(), self.max_expires);
        match (&self.use_path, h.use_path()) {
            (Some(s), Some(p)) => check_path(p, s)?,
            (None, None) => {}
            (s, p) => prop_assert!(false, "Use-Path {:?} vs {:?}", s, p),
        }
        let status = self.status.as_ref().map(|(n, c, m)| Status {
            namespace: *n,
            code: *c,
            comment: m.as_deref(),
        });
        prop_assert_eq!(h.status(), status);
        for (n, v) in &self.unknown {
            prop_assert!(
                h.headers().any(|x| x.name == n && x.value == v.as_bytes()),
                "{}: {}",
                n,
                v
            );
        }
        Ok(())
    }
}

fn content_type() -> impl Strategy<Value = (String, String, String)> {
    (
        "[a-z]{1,10}",
        "[a-z0-9][a-z0-9.+-]{0,12}",
        prop_oneof![
            Just(String::new()),
            "[a-z]{1,8}=[a-z0-9-]{1,8}".prop_map(|p| format!(";{p}")),
            "[a-z]{1,8}".prop_map(|p| format!(";{p}=\"a b\";x")),
        ],
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(192))]

    #[test]
    fn request_round_trip(
        tid in tid(),
        method in method(),
        to in path(4),
        from in path(4),
        t in typed(),
        body in prop::option::of((content_type(), prop::collection::vec(any::<u8>(), 0..200))),
        flag in flag(),
        cuts in cuts(),
    ) {
        let headers = t.headers();
        let hs: Vec<(&str, &[u8])> =
            headers.iter().map(|(n, v)| (n.as_str(), v.as_slice())).collect();
        let ct = body.as_ref().map(|((m, s, p), _)| format!("{m}/{s}{p}"));
        let mut wire = Vec::new();
        encode::request(
            &mut wire,
            &tid,
            &method,
            &join(&to),
            &join(&from),
            &hs,
            body.as_ref().map(|(_, b)| (ct.as_deref().unwrap_or(""), b.as_slice())),
            flag,
        );
        // A random body could hold this id's end-line; then it is not a round trip.
        if let Some((_, b)) = &body {
            let mut probe = b.clone();
            encode::body_end_line(&mut probe, &tid, flag);
            prop_assume!(first_end_line(&probe, &tid) == Some(b.len()));
        }
        let cuts: Vec<usize> = cuts.iter().map(|i| i.index(wire.len() + 1)).collect();
        let (head, got_body, got_flag) = scan_one(&wire, &cuts);
        prop_assert_eq!(got_flag, flag);
        prop_assert_eq!(got_body.as_ref(), body.as_ref().map(|(_, b)| b));
        let h = Head::parse(&head).map_err(|e| TestCaseError::fail(format!("{e}")))?;
        prop_assert_eq!(
            h.start_line(),
            StartLine::Request {
                tid: tid.as_str(),
                method: msrpd::codec::Method::from_bytes(method.as_bytes())
            }
        );
        prop_assert_eq!(h.method().map(|m| m.as_str()), Some(method.as_str()));
        check_path(h.to_path(), &to)?;
        check_path(h.from_path(), &from)?;
        t.check(&h)?;
        let want_ct = body.as_ref().map(|((m, s, p), _)| ContentType {
            media_type: m,
            subtype: s,
            params: p,
        });
        prop_assert_eq!(h.content_type(), want_ct);
        // Header count: paths, typed and unknown ones, Content-Type.
        prop_assert_eq!(h.headers().count(), 2 + headers.len() + usize::from(body.is_some()));
    }

    #[test]
    fn response_round_trip(
        tid in tid(),
        code in 0u16..1000,
        comment in prop::option::of("[!-~\u{a0}-\u{2fff}][ -~\u{a0}-\u{2fff}]{0,30}"),
        to in path(4),
        from in path(4),
        t in typed(),
        cuts in cuts(),
    ) {
        let headers = t.headers();
        let hs: Vec<(&str, &[u8])> =
            headers.iter().map(|(n, v)| (n.as_str(), v.as_slice())).collect();
        let mut wire = Vec::new();
        encode::response(&mut wire, &tid, code, comment.as_deref(), join(&to), join(&from), &hs);
        // The relay sizes its buffers by this; it must be exact.
        prop_assert_eq!(
            wire.len(),
            encode::response_len(&tid, comment.as_deref(), join(&to), join(&from), &hs)
        );
        let cuts: Vec<usize> = cuts.iter().map(|i| i.index(wire.len() + 1)).collect();
        let (head, body, flag) = scan_one(&wire, &cuts);
        prop_assert_eq!(flag, Flag::Complete);
        prop_assert_eq!(body, None);
        let h = Head::parse(&head).map_err(|e| TestCaseError::fail(format!("{e}")))?;
        prop_assert_eq!(
            h.start_line(),
            StartLine::Response { tid: tid.as_str(), code, comment: comment.as_deref() }
        );
        prop_assert_eq!(h.status_code(), Some(code));
        check_path(h.to_path(), &to)?;
        check_path(h.from_path(), &from)?;
        t.check(&h)?;
    }

    #[test]
    fn report_round_trip(
        tid in tid(),
        to in path(4),
        from in path(4),
        message_id in ident(),
        range in prop::option::of(byte_range()),
        code in 0u16..1000,
        comment in prop::option::of("[!-~][ -~]{0,30}"),
    ) {
        let comment = comment.map(|c| c.trim_end().to_string());
        let mut wire = Vec::new();
        encode::report(
            &mut wire, &tid, &join(&to), &join(&from), &message_id, range, code,
            comment.as_deref(),
        );
        let (head, body, flag) = scan_one(&wire, &[]);
        prop_assert_eq!(flag, Flag::Complete);
        prop_assert_eq!(body, None);
        let h = Head::parse(&head).map_err(|e| TestCaseError::fail(format!("{e}")))?;
        prop_assert_eq!(h.method(), Some(msrpd::codec::Method::Report));
        check_path(h.to_path(), &to)?;
        check_path(h.from_path(), &from)?;
        prop_assert_eq!(h.message_id(), Some(message_id.as_str()));
        prop_assert_eq!(h.byte_range(), range);
        prop_assert_eq!(
            h.status(),
            Some(Status { namespace: 0, code, comment: comment.as_deref() })
        );
    }

    #[test]
    fn credentials_round_trip(
        username in "[A-Za-z0-9 ._@-]{1,16}",
        realm in "[a-z0-9.-]{1,20}",
        nonce in "[A-Za-z0-9+/=]{8,40}",
        response in "[0-9a-f]{32}",
        nc in any::<u32>(),
        cnonce in "[A-Za-z0-9]{4,16}",
        quote_qop in any::<bool>(),
        comma_space in prop::sample::select(vec![",", ", ", " ,", " , ", ",\t"]),
    ) {
        let qop = if quote_qop { "\"auth\"" } else { "auth" };
        let sep = comma_space;
        let v = format!(
            "Digest username=\"{username}\"{sep}realm=\"{realm}\"{sep}nonce=\"{nonce}\"{sep}\
             qop={qop}{sep}nc={nc:08x}{sep}cnonce=\"{cnonce}\"{sep}response=\"{response}\""
        );
        let c = Credentials::parse(v.as_bytes())
            .map_err(|e| TestCaseError::fail(format!("{e}: {v}")))?;
        prop_assert_eq!(c.username, username.as_str());
        prop_assert_eq!(c.realm, realm.as_str());
        prop_assert_eq!(c.nonce, nonce.as_str());
        prop_assert_eq!(c.response, response.as_str());
        prop_assert_eq!(c.nc, Some(nc));
        prop_assert_eq!(c.cnonce, Some(cnonce.as_str()));
        prop_assert_eq!(c.qop, Some("auth"));
        prop_assert_eq!(c.uri, None);
    }
}

// ---------------------------------------------------------------------------------------
// 4: URIs
// ---------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn uri_round_trip(s in uri_spec(), other in uri_spec()) {
        let text = s.to_string();
        let u = Uri::parse(&text).map_err(|e| TestCaseError::fail(format!("{e}: {text}")))?;
        check_uri(&u, &s)?;
        prop_assert_eq!(u.to_string(), text.clone());
        prop_assert!(u == u);

        // RFC 4975 §6.1: scheme, host and transport compare without case; userinfo and
        // other parameters do not count.
        let mut variant = s.clone();
        variant.userinfo = Some("someone".into());
        variant.params = vec![("p".into(), Some("v".into()))];
        variant.transport = variant.transport.to_ascii_uppercase();
        if let HostSpec::Name(n) = &variant.host {
            variant.host = HostSpec::Name(n.to_ascii_uppercase());
        }
        let vtext = variant.to_string();
        let mut vtext = vtext.replacen("msrp", "MSRP", 1);
        if s.secure {
            vtext = vtext.replacen("MSRPs", "MSRPS", 1);
        }
        let v = Uri::parse(&vtext).map_err(|e| TestCaseError::fail(format!("{e}: {vtext}")))?;
        prop_assert!(u == v, "{} vs {}", text, vtext);

        // A different port, session-id, scheme or transport never matches.
        let mut p = s.clone();
        p.port = match s.port {
            None => Some(2855),
            Some(x) if x == u16::MAX => None,
            Some(x) => Some(x + 1),
        };
        prop_assert!(u != Uri::parse(&p.to_string()).unwrap());
        let mut q = s.clone();
        q.session = match &s.session {
            None => Some("x".into()),
            Some(x) => Some(format!("{x}X")),
        };
        prop_assert!(u != Uri::parse(&q.to_string()).unwrap());
        let mut r = s.clone();
        r.secure = !s.secure;
        prop_assert!(u != Uri::parse(&r.to_string()).unwrap());
        let mut t = s.clone();
        t.transport = format!("{}0", s.transport);
        prop_assert!(u != Uri::parse(&t.to_string()).unwrap());

        // Equality is symmetric.
        let o = other.to_string();
        let w = Uri::parse(&o).unwrap();
        prop_assert_eq!(u == w, w == u);
    }
}

// ---------------------------------------------------------------------------------------
// 5: the relay rewrite
// ---------------------------------------------------------------------------------------

/// A header line after the paths, as raw bytes: mixed-case names, odd white space.
fn rest_line() -> impl Strategy<Value = (String, String)> {
    let ows = prop::sample::select(vec!["", " ", "  ", "\t", " \t "]);
    let known = prop_oneof![
        ident().prop_map(|v| ("Message-ID".to_string(), v)),
        byte_range().prop_map(|r| ("Byte-Range".to_string(), r.to_string())),
        Just(("Success-Report".to_string(), "yes".to_string())),
        Just(("Failure-Report".to_string(), "partial".to_string())),
        any::<u32>().prop_map(|e| ("Expires".to_string(), e.to_string())),
        path(2).prop_map(|p| ("Use-Path".to_string(), join(&p))),
        Just((
            "Content-Type".to_string(),
            "text/plain;charset=utf-8".to_string()
        )),
        Just(("Status".to_string(), "000 200 OK".to_string())),
        Just((
            "Authorization".to_string(),
            "Digest username=\"a\", realm=\"r\", nonce=\"n\", response=\"00\"".to_string()
        )),
    ];
    let unknown = (
        "[A-Za-z][A-Za-z0-9!#$%&'*+.^_`|~-]{0,15}",
        "[ -~\u{80}-\u{10ffff}]{0,20}",
    )
        .prop_map(|(n, v)| (format!("X{n}"), v.trim().to_string()));
    (prop_oneof![known, unknown], ows.clone(), ows, any::<u32>())
        .prop_map(|((name, value), a, b, case)| (recase(&name, case), format!("{a}{value}{b}")))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn forward_head_moves_one_uri(
        request in any::<bool>(),
        method in method(),
        code in 0u16..1000,
        comment in prop::option::of("[!-~][ -~]{0,20}"),
        tid in tid(),
        new_tid in tid(),
        to in path(5),
        from in path(4),
        rest in prop::collection::vec(rest_line(), 0..8),
        path_case in any::<u32>(),
        path_ows in prop::sample::select(vec![" ", "", "   ", "\t"]),
    ) {
        let comment = comment.map(|c| c.trim_end().to_string());
        // Known headers appear at most once.
        let mut seen = std::collections::HashSet::new();
        let rest: Vec<(String, String)> = rest
            .into_iter()
            .filter(|(n, _)| n.starts_with(['X', 'x']) || seen.insert(n.to_ascii_lowercase()))
            .collect();
        let start_line = |tid: &str| {
            if request {
                format!("MSRP {tid} {method}\r\n")
            } else {
                match &comment {
                    Some(c) => format!("MSRP {tid} {code:03} {c}\r\n"),
                    None => format!("MSRP {tid} {code:03}\r\n"),
                }
            }
        };
        let start = start_line(&tid);
        let mut rest_bytes = String::new();
        for (n, v) in &rest {
            let _ = write!(rest_bytes, "{n}:{v}\r\n");
        }
        let head = format!(
            "{start}{}:{path_ows}{}\r\n{}:{path_ows}{}\r\n{rest_bytes}",
            recase("To-Path", path_case),
            join(&to),
            recase("From-Path", path_case.rotate_left(7)),
            join(&from),
        );
        let h = Head::parse(head.as_bytes())
            .map_err(|e| TestCaseError::fail(format!("{e}: {head}")))?;
        prop_assert_eq!(h.rest(), rest_bytes.as_bytes());

        let mut out = Vec::new();
        let forwarded = encode::forward_head(&mut out, &h, &new_tid);
        if to.len() == 1 {
            prop_assert!(!forwarded);
            prop_assert!(out.is_empty());
            return Ok(());
        }
        prop_assert!(forwarded);
        let new_start = start_line(&new_tid);
        let want = format!(
            "{new_start}To-Path: {}\r\nFrom-Path: {} {}\r\n{rest_bytes}",
            join(&to[1..]),
            to[0],
            join(&from),
        );
        prop_assert_eq!(String::from_utf8_lossy(&out), want);

        let f = Head::parse(&out).map_err(|e| TestCaseError::fail(format!("{e}")))?;
        check_path(f.to_path(), &to[1..])?;
        let mut new_from = vec![to[0].clone()];
        new_from.extend(from.iter().cloned());
        check_path(f.from_path(), &new_from)?;
        prop_assert_eq!(f.tid(), new_tid.as_str());
        match (h.start_line(), f.start_line()) {
            (StartLine::Request { method: a, .. }, StartLine::Request { method: b, .. }) => {
                prop_assert_eq!(a, b)
            }
            (
                StartLine::Response { code: a, comment: c, .. },
                StartLine::Response { code: b, comment: d, .. },
            ) => {
                prop_assert_eq!(a, b);
                prop_assert_eq!(c, d);
            }
            (a, b) => prop_assert!(false, "{:?} became {:?}", a, b),
        }
        let before: Vec<_> = h.headers().skip(2).collect();
        let after: Vec<_> = f.headers().skip(2).collect();
        prop_assert_eq!(before, after);
        prop_assert_eq!(f.rest(), h.rest());
    }
}

// ---------------------------------------------------------------------------------------
// The relay's path cache gives what parsing gives
// ---------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Paths (some valid, some with a byte changed, some the same text again) go through
    /// one `PathCache` in a random order, several times: every answer, hit or miss, is the
    /// one `Path::parse` gives, down to each part of the first URI, and a path that fails
    /// keeps failing the same way.
    #[test]
    fn path_cache_agrees_with_parse(
        paths in prop::collection::vec((path(4), any::<Option<(Index, u8)>>()), 1..40),
        order in prop::collection::vec(any::<Index>(), 1..200),
    ) {
        let texts: Vec<String> = paths
            .iter()
            .map(|(p, m)| {
                let mut t = join(p).into_bytes();
                if let Some((at, b)) = m {
                    let i = at.index(t.len());
                    t[i] = *b;
                }
                String::from_utf8_lossy(&t).into_owned()
            })
            .collect();
        let mut cache = PathCache::new();
        for i in order {
            let t = &texts[i.index(texts.len())];
            let want = Path::parse(t);
            let got = cache.parse(t);
            prop_assert_eq!(format!("{want:?}"), format!("{got:?}"));
            if let (Ok(w), Ok(g)) = (want, got) {
                prop_assert_eq!(w.len(), g.len());
                prop_assert_eq!(format!("{:?}", w.first()), format!("{:?}", g.first()));
                prop_assert_eq!(w.first().as_str(), g.first().as_str());
            }
        }
    }
}
