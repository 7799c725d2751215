//! The SDP codec and MSRP offer/answer (`msrpd::sdp`): offers in the style of real
//! clients (Blink/SylkServer, OpenSIPS msrp_ua, Kamailio docs, written by hand), the
//! content-type rules of RFC 4975 §8.6, a=setup (RFC 6135), CEMA (RFC 6714), and a
//! table of hostile SDPs with the outcome each must get.

use msrpd::sdp::{
    Direction, Local, Sdp, SdpError, SetupPref, Transport, Unusable, accepts, answer, offer,
    take_answer,
};

fn crlf(s: &str) -> Vec<u8> {
    s.lines()
        .map(|l| format!("{l}\r\n"))
        .collect::<String>()
        .into_bytes()
}

fn local() -> Local {
    let mut l = Local::new(
        "msrp://198.51.100.7:2855/s8d7f6g5;tcp",
        "198.51.100.7",
        &["text/plain", "message/cpim", "message/imdn+xml"],
    );
    l.accept_wrapped_types = vec!["text/plain".into(), "message/imdn+xml".into()];
    l.max_size = Some(1048576);
    l.session_id = 3000;
    l.session_version = 3000;
    l
}

/// Blink / SylkServer style: TLS, actpass, cema, wrapped types, a=sendrecv.
const BLINK: &str = "v=0
o=- 3916825032 3916825033 IN IP4 10.0.0.23
s=Blink 5.1.0 (MacOSX)
t=0 0
m=message 2855 TCP/TLS/MSRP *
c=IN IP4 10.0.0.23
a=path:msrps://10.0.0.23:2855/ab8f33e1c0d5a0aa7a72;tcp
a=accept-types:message/cpim text/* image/* application/im-iscomposing+xml
a=accept-wrapped-types:*
a=setup:actpass
a=sendrecv
";

/// OpenSIPS msrp_ua style: TCP, no a=setup, cema.
const OPENSIPS: &str = "v=0
o=- 1701947231 1 IN IP4 203.0.113.9
s=OpenSIPS MSRP UA
c=IN IP4 203.0.113.9
t=0 0
m=message 2856 TCP/MSRP *
a=accept-types:text/plain message/cpim
a=path:msrp://203.0.113.9:2856/fq1x5opt0d;tcp
a=msrp-cema
";

/// Kamailio docs style: through an msrp relay (two path URIs), msrp over TCP.
const KAMAILIO: &str = "v=0
o=alice 2890844526 2890844527 IN IP4 client.example.com
s= -
c=IN IP4 relay.example.com
t=0 0
m=message 2855 TCP/MSRP *
a=accept-types:text/plain
a=path:msrp://relay.example.com:2855/iau39soe2843z;tcp msrp://client.example.com:7654/jshA7weztas;tcp
";

fn tcp_local() -> Local {
    local()
}

fn tls_local() -> Local {
    let mut l = local();
    l.path = vec!["msrps://198.51.100.7:2856/s8d7f6g5;tcp".into()];
    l
}

#[test]
fn blink_offer_tls_actpass_we_answer_passive() {
    let a = answer(&crlf(BLINK), &tls_local()).unwrap();
    let s = &a.session;
    assert_eq!(s.transport, Transport::Tls);
    assert!(!s.active);
    assert!(s.connect_to.is_none());
    assert!(!s.cema);
    assert_eq!(
        s.peer_path,
        ["msrps://10.0.0.23:2855/ab8f33e1c0d5a0aa7a72;tcp"]
    );
    assert!(s.may_send("text/plain", None));
    assert!(s.may_send("message/cpim", Some("application/x-anything")));
    assert_eq!(s.direction, Direction::SendRecv);
    // Byte-exact answer: our types narrowed to theirs, passive, the explicit sendrecv.
    let want = "v=0\r\no=- 3000 3000 IN IP4 198.51.100.7\r\ns=-\r\nc=IN IP4 198.51.100.7\r\n\
t=0 0\r\nm=message 2856 TCP/TLS/MSRP *\r\na=path:msrps://198.51.100.7:2856/s8d7f6g5;tcp\r\n\
a=accept-types:text/plain message/cpim\r\na=accept-wrapped-types:text/plain message/imdn+xml\r\n\
a=max-size:1048576\r\na=setup:passive\r\na=sendrecv\r\n";
    assert_eq!(std::str::from_utf8(&a.sdp).unwrap(), want);
    // The answer parses and is a usable answer in turn.
    assert!(Sdp::parse(&a.sdp).is_ok());
}

#[test]
fn blink_offer_we_prefer_active() {
    let mut l = tls_local();
    l.setup = SetupPref::Active;
    let a = answer(&crlf(BLINK), &l).unwrap();
    assert!(a.session.active);
    let ep = a.session.connect_to.clone().unwrap();
    assert_eq!(
        (ep.host.as_str(), ep.port, ep.tls),
        ("10.0.0.23", 2855, true)
    );
    assert!(
        std::str::from_utf8(&a.sdp)
            .unwrap()
            .contains("a=setup:active\r\n")
    );
}

#[test]
fn tcp_offer_to_tls_local_is_488() {
    let e = answer(&crlf(OPENSIPS), &tls_local()).unwrap_err();
    assert_eq!(e, SdpError::NotAcceptable(Unusable::Transport));
    assert_eq!(e.status(), 488);
}

#[test]
fn opensips_offer_cema() {
    let mut l = tcp_local();
    l.cema = true;
    let a = answer(&crlf(OPENSIPS), &l).unwrap();
    assert!(
        !a.session.active,
        "no a=setup: the offerer connects (RFC 4975 §8.5)"
    );
    assert!(a.session.cema);
    let t = std::str::from_utf8(&a.sdp).unwrap();
    assert!(t.contains("a=msrp-cema\r\n"));
    assert!(t.contains("a=accept-types:text/plain message/cpim\r\n"));
    assert!(!t.contains("sendrecv"));
    // Without CEMA support we do not echo it.
    let a = answer(&crlf(OPENSIPS), &tcp_local()).unwrap();
    assert!(!std::str::from_utf8(&a.sdp).unwrap().contains("cema"));
}

#[test]
fn cema_active_connects_to_c_line() {
    let mut l = tcp_local();
    l.cema = true;
    l.setup = SetupPref::Active;
    let o = OPENSIPS
        .replace("c=IN IP4 203.0.113.9", "c=IN IP4 192.0.2.99")
        .replace("a=msrp-cema", "a=msrp-cema\na=setup:actpass");
    let a = answer(&crlf(&o), &l).unwrap();
    assert!(a.session.active && a.session.cema);
    let ep = a.session.connect_to.unwrap();
    assert_eq!((ep.host.as_str(), ep.port), ("192.0.2.99", 2856));
}

#[test]
fn c_line_mismatch_without_cema_is_refused() {
    let o = OPENSIPS
        .replace("c=IN IP4 203.0.113.9", "c=IN IP4 192.0.2.99")
        .replace("a=msrp-cema\n", "");
    let e = answer(&crlf(&o), &tcp_local()).unwrap_err();
    assert_eq!(e, SdpError::NotAcceptable(Unusable::AddressMismatch));
}

#[test]
fn kamailio_relay_offer() {
    let a = answer(&crlf(KAMAILIO), &tcp_local()).unwrap();
    assert_eq!(a.session.peer_path.len(), 2);
    assert!(!a.session.active);
    assert!(a.session.may_send("text/plain; charset=UTF-8", None));
    assert!(!a.session.may_send("message/cpim", None));
    assert!(
        std::str::from_utf8(&a.sdp)
            .unwrap()
            .contains("a=accept-types:text/plain\r\n")
    );
}

#[test]
fn other_media_answered_with_port_zero_same_order() {
    let o = "v=0
o=- 1 1 IN IP4 192.0.2.1
s=-
c=IN IP4 192.0.2.1
t=0 0
m=audio 49170 RTP/AVP 0 8
a=rtpmap:0 PCMU/8000
m=message 7394 TCP/MSRP *
a=accept-types:text/plain
a=path:msrp://192.0.2.1:7394/2s93i9ek2a;tcp
m=message 7395 TCP/MSRP *
a=accept-types:text/plain
a=path:msrp://192.0.2.1:7395/second;tcp
";
    let a = answer(&crlf(o), &tcp_local()).unwrap();
    assert_eq!(a.session.media_index, 1);
    let s = Sdp::parse(&a.sdp).unwrap();
    assert_eq!(s.media.len(), 3);
    assert_eq!(
        (s.media[0].media, s.media[0].port, s.media[0].formats),
        ("audio", 0, "0 8")
    );
    assert_eq!(s.media[1].port, 2855);
    assert_eq!((s.media[2].media, s.media[2].port), ("message", 0));
}

#[test]
fn direction_reversed() {
    let o = KAMAILIO.to_owned() + "a=sendonly\n";
    let a = answer(&crlf(&o), &tcp_local()).unwrap();
    assert_eq!(a.session.direction, Direction::RecvOnly);
    assert!(
        std::str::from_utf8(&a.sdp)
            .unwrap()
            .contains("a=recvonly\r\n")
    );
}

#[test]
fn accepts_rules() {
    // RFC 4975 §8.6: *, type/*, case, parameters ignored both ways.
    assert!(accepts(&["*"], "application/octet-stream"));
    assert!(accepts(&["text/*"], "text/html"));
    assert!(!accepts(&["text/*"], "image/png"));
    assert!(accepts(&["TEXT/Plain"], "text/plain"));
    assert!(accepts(&["text/plain"], "text/plain;charset=utf-8"));
    assert!(accepts(&["text/plain;charset=utf-8"], "text/plain"));
    assert!(accepts(&["text/plain;charset=\"utf 8\""], "text/plain"));
    assert!(
        !accepts(&["text/plain;charset"], "text/plain"),
        "bad entries match nothing"
    );
    assert!(!accepts(&["text/plain"], "text"));
    assert!(!accepts(&["text/plain"], "text/html"));
    assert!(!accepts::<&str>(&[], "text/plain"));
}

#[test]
fn wrapped_only_types_need_a_wrapper() {
    let o = "v=0
o=- 1 1 IN IP4 192.0.2.1
s=-
c=IN IP4 192.0.2.1
t=0 0
m=message 7394 TCP/MSRP *
a=accept-types:message/cpim
a=accept-wrapped-types:text/plain text/html
a=path:msrp://192.0.2.1:7394/2s93i9ek2a;tcp
";
    let a = answer(&crlf(o), &tcp_local()).unwrap();
    let s = &a.session;
    assert!(
        !s.may_send("text/plain", None),
        "RFC 4975 §8.6: only wrapped"
    );
    assert!(s.may_send("message/cpim", Some("text/plain")));
    assert!(!s.may_send("message/cpim", Some("image/png")));
    let t = std::str::from_utf8(&a.sdp).unwrap();
    assert!(t.contains("a=accept-types:message/cpim\r\n"));
    assert!(t.contains("a=accept-wrapped-types:text/plain\r\n"));
}

#[test]
fn wildcard_narrowing() {
    let mut l = tcp_local();
    l.accept_types = vec!["*".into()];
    l.accept_wrapped_types.clear();
    let a = answer(
        &crlf(BLINK.replace("TLS/", "").replace("msrps", "msrp").as_str()),
        &l,
    );
    let a = a.unwrap();
    let t = std::str::from_utf8(&a.sdp).unwrap();
    assert!(
        t.contains("a=accept-types:message/cpim text/* image/* application/im-iscomposing+xml\r\n"),
        "{t}"
    );
    assert!(!t.contains("accept-wrapped-types"));
}

#[test]
fn offer_and_take_answer() {
    let mut l = tcp_local();
    l.cema = true;
    let o = offer(&l).unwrap();
    let text = std::str::from_utf8(&o.sdp).unwrap();
    assert_eq!(
        text,
        "v=0\r\no=- 3000 3000 IN IP4 198.51.100.7\r\ns=-\r\nc=IN IP4 198.51.100.7\r\nt=0 0\r\n\
m=message 2855 TCP/MSRP *\r\na=path:msrp://198.51.100.7:2855/s8d7f6g5;tcp\r\n\
a=accept-types:text/plain message/cpim message/imdn+xml\r\n\
a=accept-wrapped-types:text/plain message/imdn+xml\r\na=max-size:1048576\r\na=setup:actpass\r\n\
a=msrp-cema\r\n"
    );
    // The peer answers our offer with our own answerer.
    let peer = Local::new(
        "msrp://192.0.2.5:9000/peer1;tcp",
        "192.0.2.5",
        &["text/plain"],
    );
    let their = answer(&o.sdp, &peer).unwrap();
    assert!(!their.session.active);
    let s = take_answer(&o, &their.sdp).unwrap();
    assert!(s.active, "answer said passive: we connect");
    assert_eq!(s.peer_path, ["msrp://192.0.2.5:9000/peer1;tcp"]);
    assert_eq!(s.connect_to.as_ref().map(|e| e.port), Some(9000));
    assert!(s.may_send("text/plain", None));
    assert!(!s.may_send("message/cpim", None));
    // The answer says active: we wait.
    let act = String::from_utf8(their.sdp.to_vec())
        .unwrap()
        .replace("passive", "active");
    assert!(!take_answer(&o, act.as_bytes()).unwrap().active);
    // Refused stream.
    let refused = "v=0\r\no=- 1 1 IN IP4 192.0.2.5\r\ns=-\r\nc=IN IP4 192.0.2.5\r\nt=0 0\r\n\
m=message 0 TCP/MSRP *\r\n";
    assert_eq!(
        take_answer(&o, refused.as_bytes()).unwrap_err(),
        SdpError::NotAcceptable(Unusable::PortZero)
    );
    // Two m= lines for our one.
    let two = format!(
        "{}m=audio 0 RTP/AVP 0\r\n",
        String::from_utf8(their.sdp.to_vec()).unwrap()
    );
    assert_eq!(
        take_answer(&o, two.as_bytes()).unwrap_err(),
        SdpError::AnswerMismatch
    );
}

#[test]
fn active_offer_answered_active_is_conflict() {
    let mut l = tcp_local();
    l.setup = SetupPref::Active;
    let o = offer(&l).unwrap();
    assert!(
        std::str::from_utf8(&o.sdp)
            .unwrap()
            .contains("a=setup:active\r\n")
    );
    let mut peer = Local::new(
        "msrp://192.0.2.5:9000/peer1;tcp",
        "192.0.2.5",
        &["text/plain"],
    );
    peer.setup = SetupPref::Active;
    let their = answer(&o.sdp, &peer).unwrap();
    // Offer active: the answerer is passive whatever it prefers.
    assert!(!their.session.active);
    let bad = String::from_utf8(their.sdp.to_vec())
        .unwrap()
        .replace("passive", "active");
    assert_eq!(
        take_answer(&o, bad.as_bytes()).unwrap_err(),
        SdpError::NotAcceptable(Unusable::SetupConflict)
    );
}

#[test]
fn lf_only_and_ipv6() {
    let o = "v=0
o=- 1 1 IN IP6 2001:db8::1
s=-
c=IN IP6 2001:db8::1
t=0 0
m=message 2855 TCP/MSRP *
a=accept-types:text/plain
a=path:msrp://[2001:db8::1]:2855/v6sess;tcp
a=setup:passive
";
    let a = answer(o.as_bytes(), &tcp_local()).unwrap();
    assert!(a.session.active);
    assert_eq!(a.session.connect_to.unwrap().host, "2001:db8::1");
    let mut l = tcp_local();
    l.path = vec!["msrp://[2001:db8::7]:2855/me;tcp".into()];
    l.address = "2001:db8::7".into();
    let a = answer(o.as_bytes(), &l).unwrap();
    assert!(
        std::str::from_utf8(&a.sdp)
            .unwrap()
            .contains("c=IN IP6 2001:db8::7\r\n")
    );
}

#[test]
fn bad_local_is_500() {
    let mut l = tcp_local();
    l.path = vec!["sip:alice@example.com".into()];
    assert_eq!(offer(&l).unwrap_err().status(), 500);
}

/// Hostile SDPs: each with its outcome, `Ok(())` meaning accepted.
#[test]
fn hostile_table() {
    const HEAD: &str = "v=0\no=- 1 1 IN IP4 192.0.2.1\ns=-\nc=IN IP4 192.0.2.1\nt=0 0\n";
    const M: &str = "m=message 7394 TCP/MSRP *\n";
    const AT: &str = "a=accept-types:text/plain\n";
    const P: &str = "a=path:msrp://192.0.2.1:7394/s1;tcp\n";
    let na = |u: Unusable| Err(SdpError::NotAcceptable(u));
    let big = format!(
        "{HEAD}{M}{AT}{P}{}",
        "a=x:yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy\n".repeat(1000)
    );
    let many_m = format!("{HEAD}{}", "m=audio 0 RTP/AVP 0\n".repeat(17));
    let cases: Vec<(&str, String, Result<(), SdpError>)> = vec![
        ("good", format!("{HEAD}{M}{AT}{P}"), Ok(())),
        ("no a=path", format!("{HEAD}{M}{AT}"), na(Unusable::NoPath)),
        (
            "sip URI in path",
            format!("{HEAD}{M}{AT}a=path:sip:a@b.example\n"),
            na(Unusable::BadPath),
        ),
        (
            "path without port",
            format!("{HEAD}{M}{AT}a=path:msrp://192.0.2.1/s1;tcp\n"),
            na(Unusable::PathPort),
        ),
        (
            "path ws transport",
            format!("{HEAD}{M}{AT}a=path:msrp://192.0.2.1:7394/s1;ws\n"),
            na(Unusable::PathTransport),
        ),
        (
            "msrps path on TCP/MSRP",
            format!("{HEAD}{M}{AT}a=path:msrps://192.0.2.1:7394/s1;tcp\n"),
            na(Unusable::PathTransport),
        ),
        (
            "two a=path",
            format!("{HEAD}{M}{AT}{P}{P}"),
            na(Unusable::BadPath),
        ),
        (
            "TCP/RTP/AVP",
            format!("{HEAD}m=message 7394 TCP/RTP/AVP *\n{AT}{P}"),
            na(Unusable::Protocol),
        ),
        (
            "RTP audio only",
            format!("{HEAD}m=audio 49170 RTP/AVP 0\n"),
            na(Unusable::NotMessage),
        ),
        (
            "port 0 only",
            format!("{HEAD}m=message 0 TCP/MSRP *\n{AT}{P}"),
            na(Unusable::PortZero),
        ),
        (
            "format not *",
            format!("{HEAD}m=message 7394 TCP/MSRP 0\n{AT}{P}"),
            na(Unusable::Formats),
        ),
        ("64 KiB", big, Err(SdpError::TooLarge)),
        (
            "garbage accept-types",
            format!("{HEAD}{M}a=accept-types:@@@ ;;;\n{P}"),
            na(Unusable::BadAcceptTypes),
        ),
        (
            "empty accept-types",
            format!("{HEAD}{M}a=accept-types:\n{P}"),
            na(Unusable::BadAcceptTypes),
        ),
        (
            "no accept-types",
            format!("{HEAD}{M}{P}"),
            na(Unusable::NoAcceptTypes),
        ),
        (
            "no common type",
            format!("{HEAD}{M}a=accept-types:image/png\n{P}"),
            na(Unusable::NoCommonType),
        ),
        (
            "bad wrapped types",
            format!("{HEAD}{M}{AT}a=accept-wrapped-types:text/\n{P}"),
            na(Unusable::BadWrappedTypes),
        ),
        (
            "bad max-size",
            format!("{HEAD}{M}{AT}{P}a=max-size:-1\n"),
            na(Unusable::BadMaxSize),
        ),
        (
            "huge max-size",
            format!("{HEAD}{M}{AT}{P}a=max-size:99999999999999999999999\n"),
            na(Unusable::BadMaxSize),
        ),
        (
            "NUL byte",
            format!("{HEAD}{M}{AT}{P}").replace("s1;tcp", "s1\0;tcp"),
            Err(SdpError::BadText),
        ),
        (
            "bare CR",
            format!("{HEAD}{M}{AT}\r{P}"),
            Err(SdpError::BadText),
        ),
        (
            "not a type=value line",
            "x".to_owned(),
            Err(SdpError::BadLine),
        ),
        (
            "duplicate m= lines",
            format!("{HEAD}{M}{AT}{P}{M}{AT}{P}"),
            Ok(()),
        ),
        (
            "missing c=",
            format!("v=0\no=- 1 1 IN IP4 192.0.2.1\ns=-\nt=0 0\n{M}{AT}{P}"),
            Err(SdpError::MissingConnection),
        ),
        (
            "media c= only",
            format!("v=0\no=- 1 1 IN IP4 192.0.2.1\ns=-\nt=0 0\n{M}c=IN IP4 192.0.2.1\n{AT}{P}"),
            Ok(()),
        ),
        (
            "IPv6 c= and path",
            format!(
                "v=0\no=- 1 1 IN IP6 ::1\ns=-\nc=IN IP6 2001:db8::1\nt=0 0\nm=message 7394 TCP/MSRP *\n{AT}a=path:msrp://[2001:db8::1]:7394/s;tcp\n"
            ),
            Ok(()),
        ),
        (
            "bad IPv6 c=",
            format!("v=0\no=- 1 1 IN IP6 ::1\ns=-\nc=IN IP6 2001:db8::zz\nt=0 0\n{M}{AT}{P}"),
            Err(SdpError::Connection),
        ),
        (
            "setup active",
            format!("{HEAD}{M}{AT}{P}a=setup:active\n"),
            Ok(()),
        ),
        (
            "setup holdconn",
            format!("{HEAD}{M}{AT}{P}a=setup:holdconn\n"),
            Ok(()),
        ),
        (
            "setup garbage",
            format!("{HEAD}{M}{AT}{P}a=setup:sideways\n"),
            na(Unusable::BadSetup),
        ),
        (
            "two setups",
            format!("{HEAD}{M}{AT}{P}a=setup:active\na=setup:passive\n"),
            na(Unusable::BadSetup),
        ),
        (
            "no v=",
            format!("o=- 1 1 IN IP4 192.0.2.1\ns=-\nt=0 0\n{M}"),
            Err(SdpError::Version),
        ),
        ("v=1", HEAD.replace("v=0", "v=1"), Err(SdpError::Version)),
        (
            "o= before v=",
            "o=- 1 1 IN IP4 192.0.2.1\nv=0\ns=-\n".to_owned(),
            Err(SdpError::Version),
        ),
        (
            "no t=",
            format!("v=0\no=- 1 1 IN IP4 192.0.2.1\ns=-\nc=IN IP4 192.0.2.1\n{M}{AT}{P}"),
            Err(SdpError::Timing),
        ),
        (
            "t= in media",
            format!("{HEAD}{M}t=0 0\n{AT}{P}"),
            Err(SdpError::Order),
        ),
        (
            "bad o=",
            HEAD.replace("o=- 1 1", "o=- x 1"),
            Err(SdpError::Origin),
        ),
        (
            "unknown type letter",
            format!("{HEAD}x=1\n{M}{AT}{P}"),
            Err(SdpError::UnknownType),
        ),
        (
            "space around =",
            format!("{HEAD}{M}a =path\n"),
            Err(SdpError::BadLine),
        ),
        (
            "uppercase type",
            format!("{HEAD}M=message 7394 TCP/MSRP *\n"),
            Err(SdpError::BadLine),
        ),
        (
            "port too large",
            format!("{HEAD}m=message 70000 TCP/MSRP *\n{AT}{P}"),
            Err(SdpError::MediaLine),
        ),
        (
            "m= without formats",
            format!("{HEAD}m=message 7394 TCP/MSRP\n"),
            Err(SdpError::MediaLine),
        ),
        ("17 media sections", many_m, Err(SdpError::TooManyMedia)),
        ("empty", String::new(), Err(SdpError::Version)),
        ("no media", HEAD.to_owned(), na(Unusable::NoMedia)),
        (
            "c= mismatch no cema",
            format!("{HEAD}{M}{AT}a=path:msrp://192.0.2.77:7394/s1;tcp\n"),
            na(Unusable::AddressMismatch),
        ),
        (
            "c= mismatch port",
            format!("{HEAD}m=message 7000 TCP/MSRP *\n{AT}{P}"),
            na(Unusable::AddressMismatch),
        ),
        (
            "c= mismatch with cema",
            format!("{HEAD}{M}{AT}a=path:msrp://192.0.2.77:7394/s1;tcp\na=msrp-cema\n"),
            Ok(()),
        ),
        (
            "FQDN path, IP c= (undecided)",
            format!("{HEAD}{M}{AT}a=path:msrp://alice.example.com:7394/s1;tcp\n"),
            Ok(()),
        ),
        (
            "nine path URIs",
            format!(
                "{HEAD}{M}{AT}a=path:{}msrp://192.0.2.1:7394/s1;tcp\n",
                "msrp://192.0.2.1:7394;tcp ".repeat(8)
            ),
            na(Unusable::BadPath),
        ),
        (
            "c= IN ATM",
            format!("{HEAD}{M}c=ATM NSAP 47.0005\n{AT}{P}"),
            na(Unusable::Connection),
        ),
    ];
    assert!(cases.len() >= 25);
    for (name, sdp, want) in cases {
        let got = answer(sdp.as_bytes(), &tcp_local()).map(|_| ());
        assert_eq!(got, want, "case {name:?}");
        if let Err(e) = got {
            assert!(
                // 513 for an SDP over the size limit (RFC 3261 §21.5.14).
                matches!(e.status(), 400 | 488 | 513),
                "case {name:?}: {}",
                e.status()
            );
            assert!(!e.reason().is_empty());
        }
    }
    // Invalid UTF-8 proper (the table holds Strings).
    assert_eq!(
        answer(b"v=0\no=- 1 1 IN IP4 \xff\n", &tcp_local()).unwrap_err(),
        SdpError::BadText
    );
}
