//! Test vectors: every example MSRP message of RFC 4975 (§4, §5.1, §11) and RFC 4976
//! (§3, §5.1), retyped as wire bytes, with the events the [`Scanner`] must produce and the
//! typed values [`Head`] must give for each frame.
//!
//! How the RFC text was turned into wire bytes:
//! - the RFCs indent their examples; the indentation is not on the wire;
//! - every line ends in CRLF (the bodies too; the CPIM chunk of RFC 4975 §11.4 confirms it:
//!   its Byte-Range, 1-137/148, counts exactly the CRLF-terminated CPIM lines);
//! - RFC 4976 wraps long header lines with a trailing `\` plus a newline and indentation:
//!   "Neither the backslash nor the extra CRLF is included in the actual request or
//!   response", so those lines are joined, keeping the space written before the `\`;
//! - page breaks (form feed, running header and footer) inside an example are dropped.
//!
//! Where an example does not conform to the ABNF of RFC 4975 §9 or RFC 4976 §7, the vector
//! says so, and says what the codec does with it.

use bytes::BytesMut;
use msrpd::codec::header::DigestParam;
use msrpd::codec::{
    AuthInfo, ByteRange, Challenge, ContentType, Credentials, DigestParams, FailureReport, Flag,
    Head, HeadError, HeaderKind, Host, Method, RawHead, Scanner, StartLine, Status, SuccessReport,
    Uri, encode,
};

// ---------------------------------------------------------------------------------------
// Expected values
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq)]
enum Start {
    Req(&'static str),
    Resp(u16, Option<&'static str>),
}

/// A digest challenge as WWW-Authenticate should type it.
#[derive(Debug, Clone, Copy)]
struct ChallengeExp {
    realm: &'static str,
    nonce: &'static str,
    qop: Option<&'static str>,
}

/// Authorization credentials as they should be typed.
#[derive(Debug, Clone, Copy)]
struct CredExp {
    username: &'static str,
    realm: &'static str,
    nonce: &'static str,
    qop: Option<&'static str>,
    nc: Option<u32>,
    cnonce: Option<&'static str>,
    response: &'static str,
}

/// Authentication-Info as it should be typed.
#[derive(Debug, Clone, Copy)]
struct AuthInfoExp {
    nextnonce: Option<&'static str>,
    rspauth: Option<&'static str>,
    cnonce: Option<&'static str>,
    nc: Option<&'static str>,
    qop: Option<&'static str>,
}

/// What `RawHead::parse` must give for one frame.
#[derive(Debug, Clone, Copy)]
struct Typed {
    /// `Err` when the head is refused (then nothing else is checked).
    parse: Result<(), HeadError>,
    /// Header names in order, as written.
    names: &'static [&'static str],
    to: &'static [&'static str],
    from: &'static [&'static str],
    use_path: Option<&'static [&'static str]>,
    message_id: Option<&'static str>,
    byte_range: Option<ByteRange>,
    content_type: Option<ContentType<'static>>,
    /// As written; `None` when the header is absent.
    success: Option<SuccessReport>,
    failure: Option<FailureReport>,
    status: Option<Status<'static>>,
    expires: Option<u32>,
    challenge: Option<ChallengeExp>,
    /// Every parameter of WWW-Authenticate or Authorization, in order.
    digest: &'static [DigestParam<'static>],
    credentials: Option<CredExp>,
    auth_info: Option<AuthInfoExp>,
    /// Every parameter of Authentication-Info, in order.
    ainfo_params: &'static [DigestParam<'static>],
}

const T: Typed = Typed {
    parse: Ok(()),
    names: &[],
    to: &[],
    from: &[],
    use_path: None,
    message_id: None,
    byte_range: None,
    content_type: None,
    success: None,
    failure: None,
    status: None,
    expires: None,
    challenge: None,
    digest: &[],
    credentials: None,
    auth_info: None,
    ainfo_params: &[],
};

/// One frame of a vector.
#[derive(Debug, Clone, Copy)]
struct Frame {
    tid: &'static str,
    start: Start,
    /// `None`: no blank line, the end-line follows the headers.
    body: Option<&'static [u8]>,
    flag: Flag,
    typed: Typed,
}

struct Vector {
    /// Where the example is.
    name: &'static str,
    wire: &'static [u8],
    frames: &'static [Frame],
}

const fn br(start: u64, end: Option<u64>, total: Option<u64>) -> Option<ByteRange> {
    Some(ByteRange { start, end, total })
}

const fn ct(media_type: &'static str, subtype: &'static str) -> Option<ContentType<'static>> {
    Some(ContentType {
        media_type,
        subtype,
        params: "",
    })
}

const fn st(code: u16, comment: &'static str) -> Option<Status<'static>> {
    Some(Status {
        namespace: 0,
        code,
        comment: Some(comment),
    })
}

const fn q(name: &'static str, value: &'static str) -> DigestParam<'static> {
    DigestParam {
        name,
        value,
        quoted: true,
    }
}

const fn tok(name: &'static str, value: &'static str) -> DigestParam<'static> {
    DigestParam {
        name,
        value,
        quoted: false,
    }
}

const SEND_NAMES: &[&str] = &[
    "To-Path",
    "From-Path",
    "Message-ID",
    "Byte-Range",
    "Content-Type",
];
const PATHS_ONLY: &[&str] = &["To-Path", "From-Path"];

// ---------------------------------------------------------------------------------------
// RFC 4975
// ---------------------------------------------------------------------------------------

const RFC4975_FIG2: Vector = Vector {
    name: "RFC 4975 §4 Figure 2: SEND and 200 OK",
    // Byte-Range says 25 bytes; the body between the blank line and the CRLF before the
    // end-line is 23 ("Hey Bob, are you there?"). Byte-Range is the user agent's business;
    // the scanner frames by the end-line alone.
    // The 200 OK carries only the two paths, while the ABNF demands
    // `headers = To-Path CRLF From-Path CRLF 1*( header CRLF )`: every response in both
    // RFCs is like this, so the codec accepts two paths and nothing else, on purpose.
    wire: b"MSRP a786hjs2 SEND\r\n\
To-Path: msrp://biloxi.example.com:12763/kjhd37s2s20w2a;tcp\r\n\
From-Path: msrp://atlanta.example.com:7654/jshA7weztas;tcp\r\n\
Message-ID: 87652491\r\n\
Byte-Range: 1-25/25\r\n\
Content-Type: text/plain\r\n\
\r\n\
Hey Bob, are you there?\r\n\
-------a786hjs2$\r\n\
MSRP a786hjs2 200 OK\r\n\
To-Path: msrp://atlanta.example.com:7654/jshA7weztas;tcp\r\n\
From-Path: msrp://biloxi.example.com:12763/kjhd37s2s20w2a;tcp\r\n\
-------a786hjs2$\r\n",
    frames: &[
        Frame {
            tid: "a786hjs2",
            start: Start::Req("SEND"),
            body: Some(b"Hey Bob, are you there?"),
            flag: Flag::Complete,
            typed: Typed {
                names: SEND_NAMES,
                to: &["msrp://biloxi.example.com:12763/kjhd37s2s20w2a;tcp"],
                from: &["msrp://atlanta.example.com:7654/jshA7weztas;tcp"],
                message_id: Some("87652491"),
                byte_range: br(1, Some(25), Some(25)),
                content_type: ct("text", "plain"),
                ..T
            },
        },
        Frame {
            tid: "a786hjs2",
            start: Start::Resp(200, Some("OK")),
            body: None,
            flag: Flag::Complete,
            typed: Typed {
                names: PATHS_ONLY,
                to: &["msrp://atlanta.example.com:7654/jshA7weztas;tcp"],
                from: &["msrp://biloxi.example.com:12763/kjhd37s2s20w2a;tcp"],
                ..T
            },
        },
    ],
};

const RFC4975_FIG3: Vector = Vector {
    name: "RFC 4975 §5.1 Figure 3: a message in two chunks",
    // A "snippet": the two SENDs have no To-Path and From-Path, which every request must
    // carry first (RFC 4975 §9 `headers`). They frame fine (the scanner does not look at
    // headers), and the head parser refuses them with MissingToPath.
    wire: b"MSRP dkei38sd SEND\r\n\
Message-ID: 4564dpWd\r\n\
Byte-Range: 1-*/8\r\n\
Content-Type: text/plain\r\n\
\r\n\
abcd\r\n\
-------dkei38sd+\r\n\
MSRP dkei38ia SEND\r\n\
Message-ID: 4564dpWd\r\n\
Byte-Range: 5-8/8\r\n\
Content-Type: text/plain\r\n\
\r\n\
EFGH\r\n\
-------dkei38ia$\r\n",
    frames: &[
        Frame {
            tid: "dkei38sd",
            start: Start::Req("SEND"),
            body: Some(b"abcd"),
            flag: Flag::Continued,
            typed: Typed {
                parse: Err(HeadError::MissingToPath),
                ..T
            },
        },
        Frame {
            tid: "dkei38ia",
            start: Start::Req("SEND"),
            body: Some(b"EFGH"),
            flag: Flag::Complete,
            typed: Typed {
                parse: Err(HeadError::MissingToPath),
                ..T
            },
        },
    ],
};

const ALICE_7777: &str = "msrp://alicepc.example.com:7777/iau39soe2843z;tcp";
const BOB_8888: &str = "msrp://bob.example.com:8888/9di4eae923wzd;tcp";

const RFC4975_11_1: Vector = Vector {
    name: "RFC 4975 §11.1 Basic IM session (steps 4 to 7)",
    // Byte-Range 1-16/16 and 1-21/21 against bodies of 14 and 20 bytes: see Figure 2.
    wire: b"MSRP d93kswow SEND\r\n\
To-Path: msrp://bob.example.com:8888/9di4eae923wzd;tcp\r\n\
From-Path: msrp://alicepc.example.com:7777/iau39soe2843z;tcp\r\n\
Message-ID: 12339sdqwer\r\n\
Byte-Range: 1-16/16\r\n\
Content-Type: text/plain\r\n\
\r\n\
Hi, I'm Alice!\r\n\
-------d93kswow$\r\n\
MSRP d93kswow 200 OK\r\n\
To-Path: msrp://alicepc.example.com:7777/iau39soe2843z;tcp\r\n\
From-Path: msrp://bob.example.com:8888/9di4eae923wzd;tcp\r\n\
-------d93kswow$\r\n\
MSRP dkei38sd SEND\r\n\
To-Path: msrp://alicepc.example.com:7777/iau39soe2843z;tcp\r\n\
From-Path: msrp://bob.example.com:8888/9di4eae923wzd;tcp\r\n\
Message-ID: 456s9wlk3\r\n\
Byte-Range: 1-21/21\r\n\
Content-Type: text/plain\r\n\
\r\n\
Hi, Alice!  I'm Bob!\r\n\
-------dkei38sd$\r\n\
MSRP dkei38sd 200 OK\r\n\
To-Path: msrp://bob.example.com:8888/9di4eae923wzd;tcp\r\n\
From-Path: msrp://alicepc.example.com:7777/iau39soe2843z;tcp\r\n\
-------dkei38sd$\r\n",
    frames: &[
        Frame {
            tid: "d93kswow",
            start: Start::Req("SEND"),
            body: Some(b"Hi, I'm Alice!"),
            flag: Flag::Complete,
            typed: Typed {
                names: SEND_NAMES,
                to: &[BOB_8888],
                from: &[ALICE_7777],
                message_id: Some("12339sdqwer"),
                byte_range: br(1, Some(16), Some(16)),
                content_type: ct("text", "plain"),
                ..T
            },
        },
        Frame {
            tid: "d93kswow",
            start: Start::Resp(200, Some("OK")),
            body: None,
            flag: Flag::Complete,
            typed: Typed {
                names: PATHS_ONLY,
                to: &[ALICE_7777],
                from: &[BOB_8888],
                ..T
            },
        },
        Frame {
            tid: "dkei38sd",
            start: Start::Req("SEND"),
            body: Some(b"Hi, Alice!  I'm Bob!"),
            flag: Flag::Complete,
            typed: Typed {
                names: SEND_NAMES,
                to: &[ALICE_7777],
                from: &[BOB_8888],
                message_id: Some("456s9wlk3"),
                byte_range: br(1, Some(21), Some(21)),
                content_type: ct("text", "plain"),
                ..T
            },
        },
        Frame {
            tid: "dkei38sd",
            start: Start::Resp(200, Some("OK")),
            body: None,
            flag: Flag::Complete,
            typed: Typed {
                names: PATHS_ONLY,
                to: &[BOB_8888],
                from: &[ALICE_7777],
                ..T
            },
        },
    ],
};

const XHTML_BODY: &[u8] = b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n\
<!DOCTYPE html\r\n\
PUBLIC \"-//W3C//DTD XHTML 1.0 Strict//EN\"\r\n\
\"_http://www.w3.org/TR/xhtml1/DTD/xhtml1-strict.dtd_\">\r\n\
<html xmlns=\"http://www.w3.org/1999/xhtml\" xml:lang=\"en\" lang=\"en\">\r\n\
\x20\x20<head>\r\n\
\x20\x20\x20\x20<title>FY2005 Results</title>\r\n\
</head>\r\n\
\x20\x20<body>\r\n\
\x20\x20\x20<p>See the results at <a\r\n\
href=\"http://example.org/\">example.org</a>.</p>\r\n\
\x20\x20</body>\r\n\
</html>";

const RFC4975_11_2: Vector = Vector {
    name: "RFC 4975 §11.2 Figure 13: message with XHTML content",
    // The body is as printed (indentation relative to the example's margin, the
    // `_http..._` underlining artefact kept); it is 526 bytes, not the 374 of Byte-Range.
    wire: b"MSRP dsdfoe38sd SEND\r\n\
To-Path: msrp://alice.example.com:7777/iau39soe2843z;tcp\r\n\
From-Path: msrp://bob.example.com:8888/9di4eae923wzd;tcp\r\n\
Message-ID: 456so39s\r\n\
Byte-Range: 1-374/374\r\n\
Content-Type: application/xhtml+xml\r\n\
\r\n\
<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n\
<!DOCTYPE html\r\n\
PUBLIC \"-//W3C//DTD XHTML 1.0 Strict//EN\"\r\n\
\"_http://www.w3.org/TR/xhtml1/DTD/xhtml1-strict.dtd_\">\r\n\
<html xmlns=\"http://www.w3.org/1999/xhtml\" xml:lang=\"en\" lang=\"en\">\r\n\
\x20\x20<head>\r\n\
\x20\x20\x20\x20<title>FY2005 Results</title>\r\n\
</head>\r\n\
\x20\x20<body>\r\n\
\x20\x20\x20<p>See the results at <a\r\n\
href=\"http://example.org/\">example.org</a>.</p>\r\n\
\x20\x20</body>\r\n\
</html>\r\n\
-------dsdfoe38sd$\r\n",
    frames: &[Frame {
        tid: "dsdfoe38sd",
        start: Start::Req("SEND"),
        body: Some(XHTML_BODY),
        flag: Flag::Complete,
        typed: Typed {
            names: SEND_NAMES,
            to: &["msrp://alice.example.com:7777/iau39soe2843z;tcp"],
            from: &[BOB_8888],
            message_id: Some("456so39s"),
            byte_range: br(1, Some(374), Some(374)),
            content_type: ct("application", "xhtml+xml"),
            ..T
        },
    }],
};

const RFC4975_11_4: Vector = Vector {
    name: "RFC 4975 §11.4 Figures 14 and 15: chunked message/cpim",
    // The first chunk's body holds a blank line of its own (CPIM headers, then the
    // payload): the scanner must not take it for anything. Its 137 bytes match Byte-Range
    // 1-137/148 exactly. The second chunk holds 10 bytes for the 11 of 138-148/148.
    wire: b"MSRP d93kswow SEND\r\n\
To-Path: msrp://bobpc.example.com:8888/9di4eae923wzd;tcp\r\n\
From-Path: msrp://alicepc.example.com:7654/iau39soe2843z;tcp\r\n\
Message-ID: 12339sdqwer\r\n\
Byte-Range: 1-137/148\r\n\
Content-Type: message/cpim\r\n\
\r\n\
To: Bob <sip:bob@example.com>\r\n\
From: Alice <sip:alice@example.com>\r\n\
DateTime: 2006-05-15T15:02:31-03:00\r\n\
Content-Type: text/plain\r\n\
\r\n\
ABCD\r\n\
-------d93kswow+\r\n\
MSRP op2nc9a SEND\r\n\
To-Path: msrp://bobpc.example.com:8888/9di4eae923wzd;tcp\r\n\
From-Path: msrp://alicepc.example.com:7654/iau39soe2843z;tcp\r\n\
Message-ID: 12339sdqwer\r\n\
Byte-Range: 138-148/148\r\n\
Content-Type: message/cpim\r\n\
\r\n\
1234567890\r\n\
-------op2nc9a$\r\n",
    frames: &[
        Frame {
            tid: "d93kswow",
            start: Start::Req("SEND"),
            body: Some(
                b"To: Bob <sip:bob@example.com>\r\n\
From: Alice <sip:alice@example.com>\r\n\
DateTime: 2006-05-15T15:02:31-03:00\r\n\
Content-Type: text/plain\r\n\
\r\n\
ABCD",
            ),
            flag: Flag::Continued,
            typed: Typed {
                names: SEND_NAMES,
                to: &["msrp://bobpc.example.com:8888/9di4eae923wzd;tcp"],
                from: &["msrp://alicepc.example.com:7654/iau39soe2843z;tcp"],
                message_id: Some("12339sdqwer"),
                byte_range: br(1, Some(137), Some(148)),
                content_type: ct("message", "cpim"),
                ..T
            },
        },
        Frame {
            tid: "op2nc9a",
            start: Start::Req("SEND"),
            body: Some(b"1234567890"),
            flag: Flag::Complete,
            typed: Typed {
                names: SEND_NAMES,
                to: &["msrp://bobpc.example.com:8888/9di4eae923wzd;tcp"],
                from: &["msrp://alicepc.example.com:7654/iau39soe2843z;tcp"],
                message_id: Some("12339sdqwer"),
                byte_range: br(138, Some(148), Some(148)),
                content_type: ct("message", "cpim"),
                ..T
            },
        },
    ],
};

const RFC4975_11_5: Vector = Vector {
    name: "RFC 4975 §11.5 System message",
    // 37 body bytes for Byte-Range 1-38/38.
    wire: b"MSRP d93kswow SEND\r\n\
To-Path: msrp://alicepc.example.com:8888/9di4eae923wzd;tcp\r\n\
From-Path: msrp://example.com:7777/iau39soe2843z;tcp\r\n\
Message-ID: 12339sdqwer\r\n\
Byte-Range: 1-38/38\r\n\
Failure-Report: no\r\n\
Success-Report: no\r\n\
Content-Type: text/plain\r\n\
\r\n\
This conference will end in 5 minutes\r\n\
-------d93kswow$\r\n",
    frames: &[Frame {
        tid: "d93kswow",
        start: Start::Req("SEND"),
        body: Some(b"This conference will end in 5 minutes"),
        flag: Flag::Complete,
        typed: Typed {
            names: &[
                "To-Path",
                "From-Path",
                "Message-ID",
                "Byte-Range",
                "Failure-Report",
                "Success-Report",
                "Content-Type",
            ],
            to: &["msrp://alicepc.example.com:8888/9di4eae923wzd;tcp"],
            from: &["msrp://example.com:7777/iau39soe2843z;tcp"],
            message_id: Some("12339sdqwer"),
            byte_range: br(1, Some(38), Some(38)),
            content_type: ct("text", "plain"),
            success: Some(SuccessReport::No),
            failure: Some(FailureReport::No),
            ..T
        },
    }],
};

const RFC4975_11_6: Vector = Vector {
    name: "RFC 4975 §11.6 Figures 16 and 17: SEND and success REPORT",
    // The HTML body is 121 bytes for Byte-Range 1-106/106.
    wire: b"MSRP d93kswow SEND\r\n\
To-Path: msrp://bob.example.com:8888/9di4eae923wzd;tcp\r\n\
From-Path: msrp://alicepc.example.com:7777/iau39soe2843z;tcp\r\n\
Message-ID: 12339sdqwer\r\n\
Byte-Range: 1-106/106\r\n\
Success-Report: yes\r\n\
Failure-Report: no\r\n\
Content-Type: text/html\r\n\
\r\n\
<html><body>\r\n\
<p>Here is that important link...\r\n\
<a href=\"http://www.example.com/foobar\">foobar</a>\r\n\
</p>\r\n\
</body></html>\r\n\
-------d93kswow$\r\n\
MSRP dkei38sd REPORT\r\n\
To-Path: msrp://alicepc.example.com:7777/iau39soe2843z;tcp\r\n\
From-Path: msrp://bob.example.com:8888/9di4eae923wzd;tcp\r\n\
Message-ID: 12339sdqwer\r\n\
Byte-Range: 1-106/106\r\n\
Status: 000 200 OK\r\n\
-------dkei38sd$\r\n",
    frames: &[
        Frame {
            tid: "d93kswow",
            start: Start::Req("SEND"),
            body: Some(
                b"<html><body>\r\n\
<p>Here is that important link...\r\n\
<a href=\"http://www.example.com/foobar\">foobar</a>\r\n\
</p>\r\n\
</body></html>",
            ),
            flag: Flag::Complete,
            typed: Typed {
                names: &[
                    "To-Path",
                    "From-Path",
                    "Message-ID",
                    "Byte-Range",
                    "Success-Report",
                    "Failure-Report",
                    "Content-Type",
                ],
                to: &[BOB_8888],
                from: &[ALICE_7777],
                message_id: Some("12339sdqwer"),
                byte_range: br(1, Some(106), Some(106)),
                content_type: ct("text", "html"),
                success: Some(SuccessReport::Yes),
                failure: Some(FailureReport::No),
                ..T
            },
        },
        Frame {
            tid: "dkei38sd",
            start: Start::Req("REPORT"),
            body: None,
            flag: Flag::Complete,
            typed: Typed {
                names: &["To-Path", "From-Path", "Message-ID", "Byte-Range", "Status"],
                to: &[ALICE_7777],
                from: &[BOB_8888],
                message_id: Some("12339sdqwer"),
                byte_range: br(1, Some(106), Some(106)),
                status: st(200, "OK"),
                ..T
            },
        },
    ],
};

// ---------------------------------------------------------------------------------------
// RFC 4976 §3: a SEND through two relays, its responses and the REPORTs coming back
// ---------------------------------------------------------------------------------------

const ALICE: &str = "msrps://alice.example.org:7965/bar;tcp";
const RELAY_A: &str = "msrps://a.example.org:9000/kjfjan;tcp";
const RELAY_B: &str = "msrps://b.example.net:9000/aeiug;tcp";
const BOB: &str = "msrps://bob.example.net:8145/foo;tcp";

const RELAY_SEND_NAMES: &[&str] = &[
    "To-Path",
    "From-Path",
    "Success-Report",
    "Message-ID",
    "Byte-Range",
    "Content-Type",
];
const RESP_WITH_ID: &[&str] = &["To-Path", "From-Path", "Message-ID"];
const REPORT_NAMES: &[&str] = &["To-Path", "From-Path", "Message-ID", "Byte-Range", "Status"];
const FILE_MPEG: &[u8] = b"Hi Bob, I'm about to send you file.mpeg";

const RFC4976_3_HOP1: Vector = Vector {
    name: "RFC 4976 §3: SEND 6aef from Alice to relay A, and A's 200 OK",
    // The responses of this section carry a Message-ID header: allowed (any header may
    // follow the paths) and typed like any other.
    wire: b"MSRP 6aef SEND\r\n\
To-Path: msrps://a.example.org:9000/kjfjan;tcp msrps://b.example.net:9000/aeiug;tcp msrps://bob.example.net:8145/foo;tcp\r\n\
From-Path: msrps://alice.example.org:7965/bar;tcp\r\n\
Success-Report: yes\r\n\
Byte-Range: 1-*/*\r\n\
Message-ID: 87652\r\n\
Content-Type: text/plain\r\n\
\r\n\
Hi Bob, I'm about to send you file.mpeg\r\n\
-------6aef$\r\n\
MSRP 6aef 200 OK\r\n\
To-Path: msrps://alice.example.org:7965/bar;tcp\r\n\
From-Path: msrps://a.example.org:9000/kjfjan;tcp\r\n\
Message-ID: 87652\r\n\
-------6aef$\r\n",
    frames: &[
        Frame {
            tid: "6aef",
            start: Start::Req("SEND"),
            body: Some(FILE_MPEG),
            flag: Flag::Complete,
            typed: Typed {
                names: &[
                    "To-Path",
                    "From-Path",
                    "Success-Report",
                    "Byte-Range",
                    "Message-ID",
                    "Content-Type",
                ],
                to: &[RELAY_A, RELAY_B, BOB],
                from: &[ALICE],
                message_id: Some("87652"),
                byte_range: br(1, None, None),
                content_type: ct("text", "plain"),
                success: Some(SuccessReport::Yes),
                ..T
            },
        },
        Frame {
            tid: "6aef",
            start: Start::Resp(200, Some("OK")),
            body: None,
            flag: Flag::Complete,
            typed: Typed {
                names: RESP_WITH_ID,
                to: &[ALICE],
                from: &[RELAY_A],
                message_id: Some("87652"),
                ..T
            },
        },
    ],
};

const RFC4976_3_HOP2: Vector = Vector {
    name: "RFC 4976 §3: SEND juh76 from relay A to relay B, and B's 200 OK",
    wire: b"MSRP juh76 SEND\r\n\
To-Path: msrps://b.example.net:9000/aeiug;tcp msrps://bob.example.net:8145/foo;tcp\r\n\
From-Path: msrps://a.example.org:9000/kjfjan;tcp msrps://alice.example.org:7965/bar;tcp\r\n\
Success-Report: yes\r\n\
Message-ID: 87652\r\n\
Byte-Range: 1-*/*\r\n\
Content-Type: text/plain\r\n\
\r\n\
Hi Bob, I'm about to send you file.mpeg\r\n\
-------juh76$\r\n\
MSRP juh76 200 OK\r\n\
To-Path: msrps://a.example.org:9000/kjfjan;tcp\r\n\
From-Path: msrps://b.example.net:9000/aeiug;tcp\r\n\
Message-ID: 87652\r\n\
-------juh76$\r\n",
    frames: &[
        Frame {
            tid: "juh76",
            start: Start::Req("SEND"),
            body: Some(FILE_MPEG),
            flag: Flag::Complete,
            typed: Typed {
                names: RELAY_SEND_NAMES,
                to: &[RELAY_B, BOB],
                from: &[RELAY_A, ALICE],
                message_id: Some("87652"),
                byte_range: br(1, None, None),
                content_type: ct("text", "plain"),
                success: Some(SuccessReport::Yes),
                ..T
            },
        },
        Frame {
            tid: "juh76",
            start: Start::Resp(200, Some("OK")),
            body: None,
            flag: Flag::Complete,
            typed: Typed {
                names: RESP_WITH_ID,
                to: &[RELAY_A],
                from: &[RELAY_B],
                message_id: Some("87652"),
                ..T
            },
        },
    ],
};

const RFC4976_3_HOP3: Vector = Vector {
    name: "RFC 4976 §3: SEND xght6 from relay B to Bob, and Bob's 200 OK",
    // The RFC prints Bob's 200 OK without its end-line (the page ends after Message-ID):
    // a response is not complete without one, so `-------xght6$` is added here.
    wire: b"MSRP xght6 SEND\r\n\
To-Path: msrps://bob.example.net:8145/foo;tcp\r\n\
From-Path: msrps://b.example.net:9000/aeiug;tcp msrps://a.example.org:9000/kjfjan;tcp msrps://alice.example.org:7965/bar;tcp\r\n\
Success-Report: yes\r\n\
Message-ID: 87652\r\n\
Byte-Range: 1-*/*\r\n\
Content-Type: text/plain\r\n\
\r\n\
Hi Bob, I'm about to send you file.mpeg\r\n\
-------xght6$\r\n\
MSRP xght6 200 OK\r\n\
To-Path: msrps://b.example.net:9000/aeiug;tcp\r\n\
From-Path: msrps://bob.example.net:8145/foo;tcp\r\n\
Message-ID: 87652\r\n\
-------xght6$\r\n",
    frames: &[
        Frame {
            tid: "xght6",
            start: Start::Req("SEND"),
            body: Some(FILE_MPEG),
            flag: Flag::Complete,
            typed: Typed {
                names: RELAY_SEND_NAMES,
                to: &[BOB],
                from: &[RELAY_B, RELAY_A, ALICE],
                message_id: Some("87652"),
                byte_range: br(1, None, None),
                content_type: ct("text", "plain"),
                success: Some(SuccessReport::Yes),
                ..T
            },
        },
        Frame {
            tid: "xght6",
            start: Start::Resp(200, Some("OK")),
            body: None,
            flag: Flag::Complete,
            typed: Typed {
                names: RESP_WITH_ID,
                to: &[RELAY_B],
                from: &[BOB],
                message_id: Some("87652"),
                ..T
            },
        },
    ],
};

const RFC4976_3_REPORTS: Vector = Vector {
    name: "RFC 4976 §3: the success REPORT yh67 on its three hops back",
    // The relays keep the transaction id yh67 on every hop; a relay may as well pick new
    // ones (RFC 4976 §6.4.2). The codec does not care.
    wire: b"MSRP yh67 REPORT\r\n\
To-Path: msrps://b.example.net:9000/aeiug;tcp msrps://a.example.org:9000/kjfjan;tcp msrps://alice.example.org:7965/bar;tcp\r\n\
From-Path: msrps://bob.example.net:8145/foo;tcp\r\n\
Message-ID: 87652\r\n\
Byte-Range: 1-39/39\r\n\
Status: 000 200 OK\r\n\
-------yh67$\r\n\
MSRP yh67 REPORT\r\n\
To-Path: msrps://a.example.org:9000/kjfjan;tcp msrps://alice.example.org:7965/bar;tcp\r\n\
From-Path: msrps://b.example.net:9000/aeiug;tcp msrps://bob.example.net:8145/foo;tcp\r\n\
Message-ID: 87652\r\n\
Byte-Range: 1-39/39\r\n\
Status: 000 200 OK\r\n\
-------yh67$\r\n\
MSRP yh67 REPORT\r\n\
To-Path: msrps://alice.example.org:7965/bar;tcp\r\n\
From-Path: msrps://a.example.org:9000/kjfjan;tcp msrps://b.example.net:9000/aeiug;tcp msrps://bob.example.net:8145/foo;tcp\r\n\
Message-ID: 87652\r\n\
Byte-Range: 1-39/39\r\n\
Status: 000 200 OK\r\n\
-------yh67$\r\n",
    frames: &[
        Frame {
            tid: "yh67",
            start: Start::Req("REPORT"),
            body: None,
            flag: Flag::Complete,
            typed: Typed {
                names: REPORT_NAMES,
                to: &[RELAY_B, RELAY_A, ALICE],
                from: &[BOB],
                message_id: Some("87652"),
                byte_range: br(1, Some(39), Some(39)),
                status: st(200, "OK"),
                ..T
            },
        },
        Frame {
            tid: "yh67",
            start: Start::Req("REPORT"),
            body: None,
            flag: Flag::Complete,
            typed: Typed {
                names: REPORT_NAMES,
                to: &[RELAY_A, ALICE],
                from: &[RELAY_B, BOB],
                message_id: Some("87652"),
                byte_range: br(1, Some(39), Some(39)),
                status: st(200, "OK"),
                ..T
            },
        },
        Frame {
            tid: "yh67",
            start: Start::Req("REPORT"),
            body: None,
            flag: Flag::Complete,
            typed: Typed {
                names: REPORT_NAMES,
                to: &[ALICE],
                from: &[RELAY_A, RELAY_B, BOB],
                message_id: Some("87652"),
                byte_range: br(1, Some(39), Some(39)),
                status: st(200, "OK"),
                ..T
            },
        },
    ],
};

// ---------------------------------------------------------------------------------------
// RFC 4976 §5.1: AUTH to the internal relay, then through it to the external relay
// ---------------------------------------------------------------------------------------

const ALICE_UA: &str = "msrps://alice.example.com:9892/98cjs;tcp";
const INTRA_AUTH: &str = "msrps://alice@intra.example.com;tcp";
const INTRA: &str = "msrps://intra.example.com:9000/jui787s2f;tcp";
const EXTRA_AUTH: &str = "msrps://extra.example.com;tcp";
const EXTRA: &str = "msrps://extra.example.com:9000/mywdEe1233;tcp";

const AUTH_401_NAMES: &[&str] = &["To-Path", "From-Path", "WWW-Authenticate"];
const AUTH_CRED_NAMES: &[&str] = &["To-Path", "From-Path", "Authorization"];
const AUTH_200_NAMES: &[&str] = &[
    "To-Path",
    "From-Path",
    "Use-Path",
    "Authentication-Info",
    "Expires",
];

const INTRA_CHALLENGE: &[DigestParam] = &[
    q("realm", "intra.example.com"),
    q("qop", "auth"),
    q("nonce", "dcd98b7102dd2f0e8b11d0f600bfb0c093"),
];
const INTRA_CREDENTIALS: &[DigestParam] = &[
    q("username", "Alice"),
    q("realm", "intra.example.com"),
    q("nonce", "dcd98b7102dd2f0e8b11d0f600bfb0c093"),
    tok("qop", "auth"),
    tok("nc", "00000001"),
    q("cnonce", "0a4f113b"),
    q("response", "6629fae49393a05397450978507c4ef1"),
];
const EXTRA_CHALLENGE: &[DigestParam] = &[
    q("realm", "extra.example.com"),
    q("qop", "auth"),
    q("nonce", "Uumu8cAV38FGsEF31VLevIbNXj9HWO"),
];
const EXTRA_CREDENTIALS: &[DigestParam] = &[
    q("username", "Alice"),
    q("realm", "extra.example.com"),
    q("nonce", "Uumu8cAV38FGsEF31VLevIbNXj9HWO"),
    tok("qop", "auth"),
    tok("nc", "00000001"),
    q("cnonce", "85a0dca8"),
    q("response", "cb06c4a77cd90918cd7914432032e0e6"),
];
const EXTRA_AINFO: &[DigestParam] = &[
    q("nextnonce", "bz8V080GEA2sLyEDpITF2AZCq7gIkc"),
    q("rspauth", "72f109ed2755d7ed0d0a213ec653b3f2"),
    q("cnonce", "85a0dca8"),
    tok("nc", "00000001"),
    tok("qop", "auth"),
];

const EXTRA_CRED_EXP: CredExp = CredExp {
    username: "Alice",
    realm: "extra.example.com",
    nonce: "Uumu8cAV38FGsEF31VLevIbNXj9HWO",
    qop: Some("auth"),
    nc: Some(1),
    cnonce: Some("85a0dca8"),
    response: "cb06c4a77cd90918cd7914432032e0e6",
};
const EXTRA_CHALLENGE_EXP: ChallengeExp = ChallengeExp {
    realm: "extra.example.com",
    nonce: "Uumu8cAV38FGsEF31VLevIbNXj9HWO",
    qop: Some("auth"),
};
const EXTRA_AINFO_EXP: AuthInfoExp = AuthInfoExp {
    nextnonce: Some("bz8V080GEA2sLyEDpITF2AZCq7gIkc"),
    rspauth: Some("72f109ed2755d7ed0d0a213ec653b3f2"),
    cnonce: Some("85a0dca8"),
    nc: Some("00000001"),
    qop: Some("auth"),
};

const RFC4976_5_1_INTRA: Vector = Vector {
    name: "RFC 4976 §5.1: AUTH 49fh, 401, AUTH 49fi with credentials, 200 OK",
    // The To-Path of an AUTH may lack port and session-id (RFC 4976 §8) and here carries a
    // userinfo part. The Authorization header is wrapped without a `\` after
    // `username="Alice",` (an omission in the RFC); it is joined like the other lines,
    // with the one space the ABNF puts after each comma. The credentials have no `uri`
    // parameter: RFC 2617 requires one, the ABNF of RFC 4976 §7 does not, and the codec
    // follows RFC 4976. Authentication-Info is wrapped after `",` without a space before
    // the `\`, so its first two parameters are joined by a bare comma, which is what the
    // ABNF (`ainfo *("," ainfo)`) asks for; the later ones have ", " as printed.
    wire: b"MSRP 49fh AUTH\r\n\
To-Path: msrps://alice@intra.example.com;tcp\r\n\
From-Path: msrps://alice.example.com:9892/98cjs;tcp\r\n\
-------49fh$\r\n\
MSRP 49fh 401 Unauthorized\r\n\
To-Path: msrps://alice.example.com:9892/98cjs;tcp\r\n\
From-Path: msrps://alice@intra.example.com;tcp\r\n\
WWW-Authenticate: Digest realm=\"intra.example.com\", qop=\"auth\", nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\"\r\n\
-------49fh$\r\n\
MSRP 49fi AUTH\r\n\
To-Path: msrps://alice@intra.example.com;tcp\r\n\
From-Path: msrps://alice.example.com:9892/98cjs;tcp\r\n\
Authorization: Digest username=\"Alice\", realm=\"intra.example.com\", nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", qop=auth, nc=00000001, cnonce=\"0a4f113b\", response=\"6629fae49393a05397450978507c4ef1\"\r\n\
-------49fi$\r\n\
MSRP 49fi 200 OK\r\n\
To-Path: msrps://alice.example.com:9892/98cjs;tcp\r\n\
From-Path: msrps://alice@intra.example.com;tcp\r\n\
Use-Path: msrps://intra.example.com:9000/jui787s2f;tcp\r\n\
Authentication-Info: nextnonce=\"40f2e879449675f288476d772627370a\",rspauth=\"7327570c586207eca2afae94fc20903d\", cnonce=\"0a4f113b\", nc=00000001, qop=auth\r\n\
Expires: 900\r\n\
-------49fi$\r\n",
    frames: &[
        Frame {
            tid: "49fh",
            start: Start::Req("AUTH"),
            body: None,
            flag: Flag::Complete,
            typed: Typed {
                names: PATHS_ONLY,
                to: &[INTRA_AUTH],
                from: &[ALICE_UA],
                ..T
            },
        },
        Frame {
            tid: "49fh",
            start: Start::Resp(401, Some("Unauthorized")),
            body: None,
            flag: Flag::Complete,
            typed: Typed {
                names: AUTH_401_NAMES,
                to: &[ALICE_UA],
                from: &[INTRA_AUTH],
                challenge: Some(ChallengeExp {
                    realm: "intra.example.com",
                    nonce: "dcd98b7102dd2f0e8b11d0f600bfb0c093",
                    qop: Some("auth"),
                }),
                digest: INTRA_CHALLENGE,
                ..T
            },
        },
        Frame {
            tid: "49fi",
            start: Start::Req("AUTH"),
            body: None,
            flag: Flag::Complete,
            typed: Typed {
                names: AUTH_CRED_NAMES,
                to: &[INTRA_AUTH],
                from: &[ALICE_UA],
                credentials: Some(CredExp {
                    username: "Alice",
                    realm: "intra.example.com",
                    nonce: "dcd98b7102dd2f0e8b11d0f600bfb0c093",
                    qop: Some("auth"),
                    nc: Some(1),
                    cnonce: Some("0a4f113b"),
                    response: "6629fae49393a05397450978507c4ef1",
                }),
                digest: INTRA_CREDENTIALS,
                ..T
            },
        },
        Frame {
            tid: "49fi",
            start: Start::Resp(200, Some("OK")),
            body: None,
            flag: Flag::Complete,
            typed: Typed {
                names: AUTH_200_NAMES,
                to: &[ALICE_UA],
                from: &[INTRA_AUTH],
                use_path: Some(&[INTRA]),
                expires: Some(900),
                auth_info: Some(AuthInfoExp {
                    nextnonce: Some("40f2e879449675f288476d772627370a"),
                    rspauth: Some("7327570c586207eca2afae94fc20903d"),
                    cnonce: Some("0a4f113b"),
                    nc: Some("00000001"),
                    qop: Some("auth"),
                }),
                ainfo_params: &[
                    q("nextnonce", "40f2e879449675f288476d772627370a"),
                    q("rspauth", "7327570c586207eca2afae94fc20903d"),
                    q("cnonce", "0a4f113b"),
                    tok("nc", "00000001"),
                    tok("qop", "auth"),
                ],
                ..T
            },
        },
    ],
};

const RFC4976_5_1_CHALLENGE: Vector = Vector {
    name: "RFC 4976 §5.1: AUTH mnbvw through intra (m2nbvw), challenged by extra",
    wire: b"MSRP mnbvw AUTH\r\n\
To-Path: msrps://intra.example.com:9000/jui787s2f;tcp msrps://extra.example.com;tcp\r\n\
From-Path: msrps://alice.example.com:9892/98cjs;tcp\r\n\
-------mnbvw$\r\n\
MSRP m2nbvw AUTH\r\n\
To-Path: msrps://extra.example.com;tcp\r\n\
From-Path: msrps://intra.example.com:9000/jui787s2f;tcp msrps://alice.example.com:9892/98cjs;tcp\r\n\
-------m2nbvw$\r\n\
MSRP m2nbvw 401 Unauthorized\r\n\
To-Path: msrps://intra.example.com:9000/jui787s2f;tcp msrps://alice.example.com:9892/98cjs;tcp\r\n\
From-Path: msrps://extra.example.com;tcp\r\n\
WWW-Authenticate: Digest realm=\"extra.example.com\", qop=\"auth\", nonce=\"Uumu8cAV38FGsEF31VLevIbNXj9HWO\"\r\n\
-------m2nbvw$\r\n\
MSRP mnbvw 401 Unauthorized\r\n\
To-Path: msrps://alice.example.com:9892/98cjs;tcp\r\n\
From-Path: msrps://intra.example.com:9000/jui787s2f;tcp msrps://extra.example.com;tcp\r\n\
WWW-Authenticate: Digest realm=\"extra.example.com\", qop=\"auth\", nonce=\"Uumu8cAV38FGsEF31VLevIbNXj9HWO\"\r\n\
-------mnbvw$\r\n",
    frames: &[
        Frame {
            tid: "mnbvw",
            start: Start::Req("AUTH"),
            body: None,
            flag: Flag::Complete,
            typed: Typed {
                names: PATHS_ONLY,
                to: &[INTRA, EXTRA_AUTH],
                from: &[ALICE_UA],
                ..T
            },
        },
        Frame {
            tid: "m2nbvw",
            start: Start::Req("AUTH"),
            body: None,
            flag: Flag::Complete,
            typed: Typed {
                names: PATHS_ONLY,
                to: &[EXTRA_AUTH],
                from: &[INTRA, ALICE_UA],
                ..T
            },
        },
        Frame {
            tid: "m2nbvw",
            start: Start::Resp(401, Some("Unauthorized")),
            body: None,
            flag: Flag::Complete,
            typed: Typed {
                names: AUTH_401_NAMES,
                to: &[INTRA, ALICE_UA],
                from: &[EXTRA_AUTH],
                challenge: Some(EXTRA_CHALLENGE_EXP),
                digest: EXTRA_CHALLENGE,
                ..T
            },
        },
        Frame {
            tid: "mnbvw",
            start: Start::Resp(401, Some("Unauthorized")),
            body: None,
            flag: Flag::Complete,
            typed: Typed {
                names: AUTH_401_NAMES,
                to: &[ALICE_UA],
                from: &[INTRA, EXTRA_AUTH],
                challenge: Some(EXTRA_CHALLENGE_EXP),
                digest: EXTRA_CHALLENGE,
                ..T
            },
        },
    ],
};

const RFC4976_5_1_EXTRA: Vector = Vector {
    name: "RFC 4976 §5.1: AUTH m3nbvx through intra (m4nbvx) with credentials, 200 OKs",
    // Authorization is wrapped without `\` after `username="Alice",` as in 49fi.
    // The m3nbvx 200 OK that intra passes back to Alice prints a Use-Path of extra's URI
    // twice, where the m4nbvx 200 OK it forwards has intra's then extra's: relays do not
    // rewrite Use-Path, so this looks like a copy slip in the RFC. It is a valid path
    // either way and is kept as printed.
    wire: b"MSRP m3nbvx AUTH\r\n\
To-Path: msrps://intra.example.com:9000/jui787s2f;tcp msrps://extra.example.com;tcp\r\n\
From-Path: msrps://alice.example.com:9892/98cjs;tcp\r\n\
Authorization: Digest username=\"Alice\", realm=\"extra.example.com\", nonce=\"Uumu8cAV38FGsEF31VLevIbNXj9HWO\", qop=auth, nc=00000001, cnonce=\"85a0dca8\", response=\"cb06c4a77cd90918cd7914432032e0e6\"\r\n\
-------m3nbvx$\r\n\
MSRP m4nbvx AUTH\r\n\
To-Path: msrps://extra.example.com;tcp\r\n\
From-Path: msrps://intra.example.com:9000/jui787s2f;tcp msrps://alice.example.com:9892/98cjs;tcp\r\n\
Authorization: Digest username=\"Alice\", realm=\"extra.example.com\", nonce=\"Uumu8cAV38FGsEF31VLevIbNXj9HWO\", qop=auth, nc=00000001, cnonce=\"85a0dca8\", response=\"cb06c4a77cd90918cd7914432032e0e6\"\r\n\
-------m4nbvx$\r\n\
MSRP m4nbvx 200 OK\r\n\
To-Path: msrps://intra.example.com:9000/jui787s2f;tcp msrps://alice.example.com:9892/98cjs;tcp\r\n\
From-Path: msrps://extra.example.com;tcp\r\n\
Use-Path: msrps://intra.example.com:9000/jui787s2f;tcp msrps://extra.example.com:9000/mywdEe1233;tcp\r\n\
Authentication-Info: nextnonce=\"bz8V080GEA2sLyEDpITF2AZCq7gIkc\", rspauth=\"72f109ed2755d7ed0d0a213ec653b3f2\", cnonce=\"85a0dca8\", nc=00000001, qop=auth\r\n\
Expires: 1800\r\n\
-------m4nbvx$\r\n\
MSRP m3nbvx 200 OK\r\n\
To-Path: msrps://alice.example.com:9892/98cjs;tcp\r\n\
From-Path: msrps://intra.example.com:9000/jui787s2f;tcp msrps://extra.example.com;tcp\r\n\
Use-Path: msrps://extra.example.com:9000/mywdEe1233;tcp msrps://extra.example.com:9000/mywdEe1233;tcp\r\n\
Authentication-Info: nextnonce=\"bz8V080GEA2sLyEDpITF2AZCq7gIkc\", rspauth=\"72f109ed2755d7ed0d0a213ec653b3f2\", cnonce=\"85a0dca8\", nc=00000001, qop=auth\r\n\
Expires: 1800\r\n\
-------m3nbvx$\r\n",
    frames: &[
        Frame {
            tid: "m3nbvx",
            start: Start::Req("AUTH"),
            body: None,
            flag: Flag::Complete,
            typed: Typed {
                names: AUTH_CRED_NAMES,
                to: &[INTRA, EXTRA_AUTH],
                from: &[ALICE_UA],
                credentials: Some(EXTRA_CRED_EXP),
                digest: EXTRA_CREDENTIALS,
                ..T
            },
        },
        Frame {
            tid: "m4nbvx",
            start: Start::Req("AUTH"),
            body: None,
            flag: Flag::Complete,
            typed: Typed {
                names: AUTH_CRED_NAMES,
                to: &[EXTRA_AUTH],
                from: &[INTRA, ALICE_UA],
                credentials: Some(EXTRA_CRED_EXP),
                digest: EXTRA_CREDENTIALS,
                ..T
            },
        },
        Frame {
            tid: "m4nbvx",
            start: Start::Resp(200, Some("OK")),
            body: None,
            flag: Flag::Complete,
            typed: Typed {
                names: AUTH_200_NAMES,
                to: &[INTRA, ALICE_UA],
                from: &[EXTRA_AUTH],
                use_path: Some(&[INTRA, EXTRA]),
                expires: Some(1800),
                auth_info: Some(EXTRA_AINFO_EXP),
                ainfo_params: EXTRA_AINFO,
                ..T
            },
        },
        Frame {
            tid: "m3nbvx",
            start: Start::Resp(200, Some("OK")),
            body: None,
            flag: Flag::Complete,
            typed: Typed {
                names: AUTH_200_NAMES,
                to: &[ALICE_UA],
                from: &[INTRA, EXTRA_AUTH],
                use_path: Some(&[EXTRA, EXTRA]),
                expires: Some(1800),
                auth_info: Some(EXTRA_AINFO_EXP),
                ainfo_params: EXTRA_AINFO,
                ..T
            },
        },
    ],
};

const VECTORS: &[Vector] = &[
    RFC4975_FIG2,
    RFC4975_FIG3,
    RFC4975_11_1,
    RFC4975_11_2,
    RFC4975_11_4,
    RFC4975_11_5,
    RFC4975_11_6,
    RFC4976_3_HOP1,
    RFC4976_3_HOP2,
    RFC4976_3_HOP3,
    RFC4976_3_REPORTS,
    RFC4976_5_1_INTRA,
    RFC4976_5_1_CHALLENGE,
    RFC4976_5_1_EXTRA,
];

// ---------------------------------------------------------------------------------------
// Every URI of the examples, with its parts (RFC 4975 §9, RFC 3986 authority)
// ---------------------------------------------------------------------------------------

struct UriExp {
    text: &'static str,
    secure: bool,
    userinfo: Option<&'static str>,
    host: Host<'static>,
    port: Option<u16>,
    session: Option<&'static str>,
}

const fn ux(
    text: &'static str,
    secure: bool,
    userinfo: Option<&'static str>,
    host: &'static str,
    port: Option<u16>,
    session: Option<&'static str>,
) -> UriExp {
    UriExp {
        text,
        secure,
        userinfo,
        host: Host::Name(host),
        port,
        session,
    }
}

const URIS: &[UriExp] = &[
    ux(
        "msrp://biloxi.example.com:12763/kjhd37s2s20w2a;tcp",
        false,
        None,
        "biloxi.example.com",
        Some(12763),
        Some("kjhd37s2s20w2a"),
    ),
    ux(
        "msrp://atlanta.example.com:7654/jshA7weztas;tcp",
        false,
        None,
        "atlanta.example.com",
        Some(7654),
        Some("jshA7weztas"),
    ),
    ux(
        ALICE_7777,
        false,
        None,
        "alicepc.example.com",
        Some(7777),
        Some("iau39soe2843z"),
    ),
    ux(
        BOB_8888,
        false,
        None,
        "bob.example.com",
        Some(8888),
        Some("9di4eae923wzd"),
    ),
    ux(
        "msrp://alice.example.com:7777/iau39soe2843z;tcp",
        false,
        None,
        "alice.example.com",
        Some(7777),
        Some("iau39soe2843z"),
    ),
    ux(
        "msrp://bobpc.example.com:8888/9di4eae923wzd;tcp",
        false,
        None,
        "bobpc.example.com",
        Some(8888),
        Some("9di4eae923wzd"),
    ),
    ux(
        "msrp://alicepc.example.com:7654/iau39soe2843z;tcp",
        false,
        None,
        "alicepc.example.com",
        Some(7654),
        Some("iau39soe2843z"),
    ),
    ux(
        "msrp://alicepc.example.com:8888/9di4eae923wzd;tcp",
        false,
        None,
        "alicepc.example.com",
        Some(8888),
        Some("9di4eae923wzd"),
    ),
    ux(
        "msrp://example.com:7777/iau39soe2843z;tcp",
        false,
        None,
        "example.com",
        Some(7777),
        Some("iau39soe2843z"),
    ),
    ux(
        ALICE,
        true,
        None,
        "alice.example.org",
        Some(7965),
        Some("bar"),
    ),
    ux(
        RELAY_A,
        true,
        None,
        "a.example.org",
        Some(9000),
        Some("kjfjan"),
    ),
    ux(
        RELAY_B,
        true,
        None,
        "b.example.net",
        Some(9000),
        Some("aeiug"),
    ),
    ux(BOB, true, None, "bob.example.net", Some(8145), Some("foo")),
    ux(
        ALICE_UA,
        true,
        None,
        "alice.example.com",
        Some(9892),
        Some("98cjs"),
    ),
    ux(
        INTRA_AUTH,
        true,
        Some("alice"),
        "intra.example.com",
        None,
        None,
    ),
    ux(
        INTRA,
        true,
        None,
        "intra.example.com",
        Some(9000),
        Some("jui787s2f"),
    ),
    ux(EXTRA_AUTH, true, None, "extra.example.com", None, None),
    ux(
        EXTRA,
        true,
        None,
        "extra.example.com",
        Some(9000),
        Some("mywdEe1233"),
    ),
];

// ---------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------

/// One scanned frame: the head, its body pieces joined, and the end-line flag.
struct Scanned {
    head: RawHead,
    body: Option<Vec<u8>>,
    pieces: usize,
    flag: Option<Flag>,
}

/// Feeds `input` cut at `cuts` (ascending offsets) and collects the frames.
fn scan_cut(input: &[u8], cuts: &[usize]) -> Vec<Scanned> {
    let mut sc = Scanner::default();
    let mut buf = BytesMut::new();
    let mut out: Vec<Scanned> = Vec::new();
    let mut at = 0;
    for &cut in cuts.iter().chain(std::iter::once(&input.len())) {
        buf.extend_from_slice(&input[at..cut]);
        at = cut;
        while let Some(ev) = sc.next(&mut buf).expect("RFC example must scan") {
            match ev {
                msrpd::codec::Event::Head(h) => {
                    assert!(
                        out.last().is_none_or(|f| f.flag.is_some()),
                        "head before end"
                    );
                    let body = h.has_body().then(Vec::new);
                    out.push(Scanned {
                        head: h,
                        body,
                        pieces: 0,
                        flag: None,
                    });
                }
                msrpd::codec::Event::Body(b) => {
                    assert!(!b.is_empty(), "empty body piece");
                    let f = out.last_mut().expect("body after head");
                    assert!(f.flag.is_none());
                    f.body
                        .as_mut()
                        .expect("body of a frame with body")
                        .extend_from_slice(&b);
                    f.pieces += 1;
                }
                msrpd::codec::Event::End(flag) => {
                    let f = out.last_mut().expect("end after head");
                    assert!(f.flag.is_none());
                    f.flag = Some(flag);
                }
            }
        }
    }
    assert!(sc.is_idle(&buf), "bytes left over: {:?}", buf);
    out
}

fn split_every(input: &[u8], step: usize) -> Vec<usize> {
    (1..input.len().div_ceil(step)).map(|i| i * step).collect()
}

fn check_frames(v: &Vector, got: &[Scanned], how: &str) {
    assert_eq!(got.len(), v.frames.len(), "{}: {how}: frame count", v.name);
    for (i, (g, e)) in got.iter().zip(v.frames).enumerate() {
        let ctx = format!("{} frame {i} ({how})", v.name);
        assert_eq!(g.head.tid(), e.tid.as_bytes(), "{ctx}: tid");
        match e.start {
            Start::Req(m) => {
                assert!(g.head.is_request(), "{ctx}");
                assert_eq!(g.head.method(), Some(m.as_bytes()), "{ctx}: method");
                assert_eq!(g.head.status(), None, "{ctx}");
            }
            Start::Resp(code, _) => {
                assert!(!g.head.is_request(), "{ctx}");
                assert_eq!(g.head.method(), None, "{ctx}");
                assert_eq!(g.head.status(), Some(code), "{ctx}: status");
            }
        }
        assert_eq!(g.head.has_body(), e.body.is_some(), "{ctx}: has_body");
        assert_eq!(g.body.as_deref(), e.body, "{ctx}: body");
        assert_eq!(g.flag, Some(e.flag), "{ctx}: flag");
    }
}

/// Rebuilds the wire bytes from the scanned frames: proves that the head, body and
/// end-line boundaries are exactly where they should be.
fn rebuild(frames: &[Scanned]) -> Vec<u8> {
    let mut out = Vec::new();
    for f in frames {
        out.extend_from_slice(f.head.as_bytes());
        let tid = std::str::from_utf8(f.head.tid()).unwrap();
        let flag = f.flag.unwrap();
        match &f.body {
            Some(b) => {
                encode::blank_line(&mut out);
                out.extend_from_slice(b);
                encode::body_end_line(&mut out, tid, flag);
            }
            None => encode::end_line(&mut out, tid, flag),
        }
    }
    out
}

fn check_path(ctx: &str, what: &str, p: &msrpd::codec::Path<'_>, exp: &[&str]) {
    assert_eq!(p.iter().collect::<Vec<_>>(), exp, "{ctx}: {what}");
    assert_eq!(p.len(), exp.len(), "{ctx}: {what} len");
    assert_eq!(p.as_str(), exp.join(" "), "{ctx}: {what} as_str");
    assert_eq!(p.first().as_str(), exp[0], "{ctx}: {what} first");
    assert_eq!(p.last().as_str(), exp[exp.len() - 1], "{ctx}: {what} last");
    let rest = (exp.len() > 1).then(|| exp[1..].join(" "));
    assert_eq!(p.rest().map(str::to_owned), rest, "{ctx}: {what} rest");
    let uris: Vec<_> = p.uris().map(|u| u.as_str()).collect();
    assert_eq!(uris, exp, "{ctx}: {what} uris");
}

fn check_typed(ctx: &str, raw: &RawHead, e: &Frame) {
    let t = &e.typed;
    let h = match raw.parse() {
        Ok(h) => {
            assert_eq!(t.parse, Ok(()), "{ctx}: parse should fail");
            h
        }
        Err(err) => {
            assert_eq!(Err(err), t.parse, "{ctx}: parse");
            // The stand-alone parser agrees.
            assert_eq!(Head::parse(raw.as_bytes()).map(|_| ()), t.parse, "{ctx}");
            return;
        }
    };
    // The stand-alone parser gives the same head.
    let h2 = Head::parse(raw.as_bytes()).expect("Head::parse");
    assert_eq!(h2.as_bytes(), h.as_bytes());
    assert_eq!(h2.start_line(), h.start_line());

    // Start line.
    assert_eq!(h.tid(), e.tid, "{ctx}");
    match (e.start, h.start_line()) {
        (Start::Req(m), StartLine::Request { tid, method }) => {
            assert_eq!(tid, e.tid, "{ctx}");
            assert_eq!(method.as_str(), m, "{ctx}");
            assert_eq!(h.method(), Some(Method::from_bytes(m.as_bytes())), "{ctx}");
            assert!(!matches!(method, Method::Other(_)), "{ctx}: known method");
            assert_eq!(h.status_code(), None, "{ctx}");
        }
        (
            Start::Resp(c, comment),
            StartLine::Response {
                tid,
                code,
                comment: gc,
            },
        ) => {
            assert_eq!(tid, e.tid, "{ctx}");
            assert_eq!((code, gc), (c, comment), "{ctx}");
            assert_eq!(h.status_code(), Some(c), "{ctx}");
            assert_eq!(h.method(), None, "{ctx}");
        }
        (want, got) => panic!("{ctx}: start line {got:?}, want {want:?}"),
    }
    assert_eq!(h.is_request(), matches!(e.start, Start::Req(_)), "{ctx}");

    // Header names in order, each findable by name in any case.
    let names: Vec<_> = h.headers().map(|x| x.name).collect();
    assert_eq!(names, t.names, "{ctx}: header names");
    for x in h.headers() {
        assert_eq!(x.kind, HeaderKind::classify(x.name.as_bytes()), "{ctx}");
        assert_ne!(x.kind, HeaderKind::Other, "{ctx}: {} is known", x.name);
        assert_eq!(x.kind.name(), x.name, "{ctx}: canonical spelling");
        assert_eq!(h.get(&x.name.to_ascii_lowercase()), Some(x.value), "{ctx}");
        assert_eq!(h.get(&x.name.to_ascii_uppercase()), Some(x.value), "{ctx}");
    }
    // rest() is every header line after the two paths, byte for byte.
    let rest_lines: Vec<_> = h
        .headers()
        .skip(2)
        .map(|x| format!("{}: {}\r\n", x.name, std::str::from_utf8(x.value).unwrap()))
        .collect();
    assert_eq!(h.rest(), rest_lines.concat().as_bytes(), "{ctx}: rest");

    check_path(ctx, "To-Path", h.to_path(), t.to);
    check_path(ctx, "From-Path", h.from_path(), t.from);
    match (h.use_path(), t.use_path) {
        (Some(p), Some(exp)) => check_path(ctx, "Use-Path", p, exp),
        (None, None) => {}
        (got, want) => panic!("{ctx}: Use-Path {got:?}, want {want:?}"),
    }
    assert_eq!(h.message_id(), t.message_id, "{ctx}: Message-ID");
    assert_eq!(h.byte_range(), t.byte_range, "{ctx}: Byte-Range");
    assert_eq!(h.content_type(), t.content_type, "{ctx}: Content-Type");
    assert_eq!(
        h.success_report(),
        t.success.unwrap_or(SuccessReport::No),
        "{ctx}: Success-Report"
    );
    assert_eq!(
        h.failure_report(),
        t.failure.unwrap_or(FailureReport::Yes),
        "{ctx}: Failure-Report"
    );
    assert_eq!(
        h.has_report_headers(),
        t.success.is_some() || t.failure.is_some(),
        "{ctx}"
    );
    assert_eq!(h.status(), t.status, "{ctx}: Status");
    assert_eq!(h.expires(), t.expires, "{ctx}: Expires");
    assert_eq!(h.min_expires(), None, "{ctx}");
    assert_eq!(h.max_expires(), None, "{ctx}");

    match (h.www_authenticate(), t.challenge) {
        (None, None) => {}
        (Some(c), Some(x)) => {
            let c: Challenge = c.expect("challenge");
            assert_eq!(
                (c.realm, c.nonce, c.qop, c.opaque, c.stale, c.algorithm),
                (x.realm, x.nonce, x.qop, None, false, None),
                "{ctx}: WWW-Authenticate"
            );
            let v = h.get("WWW-Authenticate").unwrap();
            let p = DigestParams::parse(v, true).unwrap();
            assert_eq!(p.iter().collect::<Vec<_>>(), t.digest, "{ctx}");
        }
        (got, want) => panic!("{ctx}: WWW-Authenticate {got:?}, want {want:?}"),
    }
    match (h.authorization(), t.credentials) {
        (None, None) => {}
        (Some(c), Some(x)) => {
            let c: Credentials = c.expect("credentials");
            assert_eq!(
                (
                    c.username, c.realm, c.nonce, c.qop, c.nc, c.cnonce, c.response
                ),
                (
                    x.username, x.realm, x.nonce, x.qop, x.nc, x.cnonce, x.response
                ),
                "{ctx}: Authorization"
            );
            assert_eq!((c.uri, c.algorithm, c.opaque), (None, None, None), "{ctx}");
            let v = h.get("Authorization").unwrap();
            let p = DigestParams::parse(v, true).unwrap();
            assert_eq!(p.iter().collect::<Vec<_>>(), t.digest, "{ctx}");
            assert_eq!(p.len(), t.digest.len());
        }
        (got, want) => panic!("{ctx}: Authorization {got:?}, want {want:?}"),
    }
    match (h.authentication_info(), t.auth_info) {
        (None, None) => {}
        (Some(a), Some(x)) => {
            let a: AuthInfo = a.expect("authentication-info");
            assert_eq!(
                (a.nextnonce, a.rspauth, a.cnonce, a.nc, a.qop),
                (x.nextnonce, x.rspauth, x.cnonce, x.nc, x.qop),
                "{ctx}: Authentication-Info"
            );
            let v = h.get("Authentication-Info").unwrap();
            let p = DigestParams::parse(v, false).unwrap();
            assert_eq!(p.iter().collect::<Vec<_>>(), t.ainfo_params, "{ctx}");
        }
        (got, want) => panic!("{ctx}: Authentication-Info {got:?}, want {want:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

#[test]
fn vectors_scan_whole() {
    for v in VECTORS {
        let got = scan_cut(v.wire, &[]);
        check_frames(v, &got, "whole");
        assert_eq!(rebuild(&got), v.wire, "{}: rebuilt", v.name);
        // A body that arrives in one read comes out in one piece.
        for f in &got {
            if let Some(b) = &f.body {
                assert_eq!(f.pieces, usize::from(!b.is_empty()), "{}", v.name);
            }
        }
    }
}

#[test]
fn vectors_scan_in_pieces() {
    for v in VECTORS {
        for step in [1, 2, 3, 5, 7, 11, 16, 41, 64, 100] {
            let got = scan_cut(v.wire, &split_every(v.wire, step));
            check_frames(v, &got, &format!("step {step}"));
            assert_eq!(rebuild(&got), v.wire, "{}: step {step}", v.name);
        }
    }
}

#[test]
fn vectors_scan_every_two_way_split() {
    for v in VECTORS {
        for cut in 1..v.wire.len() {
            let got = scan_cut(v.wire, &[cut]);
            check_frames(v, &got, &format!("cut at {cut}"));
        }
    }
}

#[test]
fn vectors_typed() {
    let mut n = 0;
    for v in VECTORS {
        let got = scan_cut(v.wire, &[]);
        for (i, (g, e)) in got.iter().zip(v.frames).enumerate() {
            check_typed(&format!("{} frame {i}", v.name), &g.head, e);
            n += 1;
        }
    }
    assert_eq!(n, 35, "frames in all vectors");
}

#[test]
fn vector_uris() {
    // Every URI in every path of the vectors is in URIS, and parses to its parts.
    let mut seen = std::collections::HashSet::new();
    for v in VECTORS {
        for f in v.frames {
            let t = &f.typed;
            for u in t.to.iter().chain(t.from).chain(t.use_path.unwrap_or(&[])) {
                assert!(
                    URIS.iter().any(|x| x.text == *u),
                    "{}: {u} missing from URIS",
                    v.name
                );
                seen.insert(*u);
            }
        }
    }
    assert_eq!(seen.len(), URIS.len(), "every URI in URIS is used");
    for x in URIS {
        let u = Uri::parse(x.text).unwrap_or_else(|e| panic!("{}: {e}", x.text));
        assert_eq!(u.as_str(), x.text);
        assert_eq!(u.is_secure(), x.secure, "{}", x.text);
        assert_eq!(u.userinfo(), x.userinfo, "{}", x.text);
        assert_eq!(u.host(), x.host, "{}", x.text);
        let Host::Name(name) = x.host else {
            unreachable!()
        };
        assert_eq!(u.host_str(), name, "{}", x.text);
        assert_eq!(u.port(), x.port, "{}", x.text);
        assert_eq!(u.session_id(), x.session, "{}", x.text);
        assert_eq!(u.transport(), "tcp", "{}", x.text);
        assert_eq!(u.params(), "", "{}", x.text);
        assert_eq!(u.to_string(), x.text);
        // Each equals itself and no other URI of the examples (RFC 4975 §6.1).
        for y in URIS {
            let w = Uri::parse(y.text).unwrap();
            assert_eq!(u == w, x.text == y.text, "{} vs {}", x.text, y.text);
        }
    }
    // The AUTH URI with userinfo equals the same URI without it (userinfo is ignored).
    assert_eq!(
        Uri::parse(INTRA_AUTH).unwrap(),
        Uri::parse("msrps://intra.example.com;tcp").unwrap()
    );
}

/// RFC 4976 §3: what relay B does to the paths of a request from Alice through A.
#[test]
fn rfc4976_3_path_rewrite() {
    // The example gives only the two path headers, the first with extra spaces after
    // the colon (OWS is trimmed: the codec is lenient where the ABNF says one SP). The
    // URIs have no port, which RFC 4976 §8 requires outside an AUTH To-Path; that is a
    // relay rule, not syntax, so the codec parses them.
    let before = b"MSRP abcd SEND\r\n\
To-Path:   msrps://B.example.com/bbb;tcp msrps://Bob.example.com/bob;tcp\r\n\
From-Path: msrps://A.example.com/aaa;tcp msrps://Alice.example.com/alice;tcp\r\n\
Content-Type: text/plain\r\n";
    let after = b"MSRP efgh SEND\r\n\
To-Path: msrps://Bob.example.com/bob;tcp\r\n\
From-Path: msrps://B.example.com/bbb;tcp msrps://A.example.com/aaa;tcp msrps://Alice.example.com/alice;tcp\r\n\
Content-Type: text/plain\r\n";
    let h = Head::parse(before).unwrap();
    assert_eq!(
        h.to_path().first().host(),
        Host::Name("B.example.com"),
        "host case kept as written"
    );
    assert_eq!(
        h.to_path().first(),
        Uri::parse("msrps://b.EXAMPLE.com/bbb;TCP").unwrap()
    );
    let mut out = Vec::new();
    assert!(encode::forward_head(&mut out, &h, "efgh"));
    assert_eq!(out, after);
    // At Bob's end there is nothing left to forward to.
    let h = Head::parse(after).unwrap();
    let mut out = Vec::new();
    assert!(!encode::forward_head(&mut out, &h, "ijkl"));
    assert!(out.is_empty());
}

/// RFC 4976 §3 and §5.1: where the RFC shows the same request on consecutive hops with
/// the same header order, the relay rewrite of one hop gives the next hop byte for byte.
#[test]
fn rfc4976_forwarded_hops() {
    // (vector, frame forwarded, vector, frame expected)
    let hops: &[(&Vector, usize, &Vector, usize)] = &[
        (&RFC4976_3_HOP2, 0, &RFC4976_3_HOP3, 0),
        (&RFC4976_3_REPORTS, 0, &RFC4976_3_REPORTS, 1),
        (&RFC4976_3_REPORTS, 1, &RFC4976_3_REPORTS, 2),
        (&RFC4976_5_1_CHALLENGE, 0, &RFC4976_5_1_CHALLENGE, 1),
        (&RFC4976_5_1_EXTRA, 0, &RFC4976_5_1_EXTRA, 1),
    ];
    for &(va, fa, vb, fb) in hops {
        let a = scan_cut(va.wire, &[]);
        let b = scan_cut(vb.wire, &[]);
        let ha = a[fa].head.parse().unwrap();
        let mut out = Vec::new();
        assert!(encode::forward_head(&mut out, &ha, vb.frames[fb].tid));
        assert_eq!(
            String::from_utf8_lossy(&out),
            String::from_utf8_lossy(b[fb].head.as_bytes()),
            "{} frame {fa} -> {} frame {fb}",
            va.name,
            vb.name
        );
    }
    // The hop from Alice to relay A reorders nothing, but Alice wrote Byte-Range before
    // Message-ID and A's forward (juh76) has them the other way round: a relay may
    // reorder, msrpd keeps the order. The paths still come out as the RFC shows.
    let a = scan_cut(RFC4976_3_HOP1.wire, &[]);
    let b = scan_cut(RFC4976_3_HOP2.wire, &[]);
    let ha = a[0].head.parse().unwrap();
    let mut out = Vec::new();
    assert!(encode::forward_head(&mut out, &ha, "juh76"));
    let fwd = Head::parse(&out).unwrap();
    let hb = b[0].head.parse().unwrap();
    assert_eq!(fwd.to_path().as_str(), hb.to_path().as_str());
    assert_eq!(fwd.from_path().as_str(), hb.from_path().as_str());
    assert_eq!(fwd.rest(), ha.rest());
}

/// The responses in the examples are what `encode::response_for` writes.
#[test]
fn rfc4975_responses_from_encoder() {
    for v in [&RFC4975_FIG2, &RFC4975_11_1] {
        let got = scan_cut(v.wire, &[]);
        for pair in got.chunks(2) {
            let req = pair[0].head.parse().unwrap();
            let own = req.to_path().first().as_str();
            let mut out = Vec::new();
            encode::response_for(&mut out, &req, 200, Some(encode::reason(200)), own, &[]);
            let mut want = pair[1].head.as_bytes().to_vec();
            encode::end_line(&mut want, req.tid(), Flag::Complete);
            assert_eq!(out, want, "{}", v.name);
        }
    }
}

/// RFC 4976 §11 (and RFC 4975 §11.1): `a=path` values of the SDP examples are paths too.
#[test]
fn sdp_path_attributes() {
    let cases: &[(&str, &[&str])] = &[
        (
            "msrp://a.example.com:1234/agic456;tcp",
            &["msrp://a.example.com:1234/agic456;tcp"],
        ),
        // Wrapped with two spaces before the `\`: one is the separator, the other is the
        // RFC's layout; a path has single spaces (the codec refuses two).
        (
            "msrps://relay.example.com:9000/hjdhfha;tcp msrps://bob.example.com:1234/fuige;tcp",
            &[
                "msrps://relay.example.com:9000/hjdhfha;tcp",
                "msrps://bob.example.com:1234/fuige;tcp",
            ],
        ),
        (ALICE_7777, &[ALICE_7777]),
        (
            "msrp://bob.example.com:8888/9di4eae923wzd;tcp",
            &["msrp://bob.example.com:8888/9di4eae923wzd;tcp"],
        ),
    ];
    for (raw, exp) in cases {
        let p = msrpd::codec::Path::parse(raw).unwrap();
        check_path(raw, "a=path", &p, exp);
    }
    assert_eq!(
        msrpd::codec::Path::parse(
            "msrps://relay.example.com:9000/hjdhfha;tcp  msrps://bob.example.com:1234/fuige;tcp"
        )
        .unwrap_err(),
        msrpd::codec::ValueError::Uri(msrpd::codec::UriError::Scheme)
    );
}
