//! A corpus of hostile inputs against one relay, each on its own connection, while a
//! legitimate A <-> B session keeps exchanging messages through the same relay.
//!
//! Each input's outcome is asserted exactly: the frames the relay answers with (status
//! codes of responses carrying the input's tid, methods of requests such as REPORTs) and
//! whether the connection is then closed or stays open. Afterwards the relay must still
//! serve and its counters must be back to where they were (no connection, session or
//! transaction left behind).

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use common::*;
use msrpd::codec::{Event, Flag, Scanner};
use msrpd::server::Driver;

/// How long an input's connection must stay silent to count as "open".
const QUIET: Duration = Duration::from_millis(300);

struct Case {
    name: String,
    /// Pieces written one after another (a short pause between them).
    pieces: Vec<Vec<u8>>,
    /// `"403,REPORT|open"`: the frames answered (response codes, with `@tid` when the
    /// tid is not the input's; request methods), then `open` or `close`.
    expect: String,
}

fn case(name: &str, bytes: impl Into<Vec<u8>>, expect: &str) -> Case {
    Case {
        name: name.into(),
        pieces: vec![bytes.into()],
        expect: expect.into(),
    }
}

/// Sends one case on a fresh connection and describes what happened.
fn run_case(addr: std::net::SocketAddr, c: &Case) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_nodelay(true).unwrap();
    let tid = first_tid(&c.pieces.concat());
    // A close may take the head timeout to come: wait for it instead of for silence.
    let expect_close = c.expect.ends_with("|close");
    for (i, p) in c.pieces.iter().enumerate() {
        if i > 0 {
            thread::sleep(Duration::from_millis(2));
        }
        if s.write_all(p).is_err() {
            break;
        }
    }
    let mut sc = Scanner::default();
    let mut buf = BytesMut::new();
    let mut out: Vec<String> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(4);
    let mut last = Instant::now();
    let mut pinged = false;
    let state = loop {
        // A connection that opens with CRLFCRLF is a SIP keepalive ping on a port shared
        // with SIP (RFC 5626 §4.4.1): its CRLF pong is not MSRP.
        while out.is_empty() && buf.starts_with(b"\r\n") && !pinged {
            let _ = buf.split_to(2);
            pinged = true;
            out.push("pong".into());
        }
        loop {
            match sc.next(&mut buf) {
                Ok(Some(Event::Head(h))) => {
                    let start = String::from_utf8_lossy(h.as_bytes())
                        .lines()
                        .next()
                        .unwrap_or("")
                        .to_string();
                    let mut parts = start.split(' ');
                    let (_, t, k) = (
                        parts.next(),
                        parts.next().unwrap_or(""),
                        parts.next().unwrap_or(""),
                    );
                    if k.as_bytes().first().is_some_and(u8::is_ascii_digit) && t != tid {
                        out.push(format!("{k}@{t}"));
                    } else {
                        out.push(k.to_string());
                    }
                }
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(e) => return format!("{}|unscannable output: {e}", out.join(",")),
            }
        }
        let now = Instant::now();
        if now >= deadline {
            break "timeout";
        }
        if !expect_close && now.duration_since(last) >= QUIET {
            break "open";
        }
        s.set_read_timeout(Some(
            QUIET
                .saturating_sub(now.duration_since(last))
                .max(Duration::from_millis(5)),
        ))
        .unwrap();
        let mut tmp = [0u8; 65536];
        match s.read(&mut tmp) {
            Ok(0) => break "close",
            Ok(n) => {
                buf.extend_from_slice(&tmp[..n]);
                last = Instant::now();
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break "close",
            Err(_) => {}
        }
    };
    let _ = s.shutdown(Shutdown::Both);
    format!("{}|{state}", out.join(","))
}

/// The tid of the first start line, if it has one.
fn first_tid(b: &[u8]) -> String {
    let line = b.split(|&c| c == b'\r' || c == b'\n').next().unwrap_or(b"");
    let s = String::from_utf8_lossy(line);
    s.split(' ').nth(1).unwrap_or("").to_string()
}

/// Builds the corpus for a relay whose own URI is `ru`, with a live session `sess`.
fn corpus(ru: &str, sess: &str) -> Vec<Case> {
    let me = "msrp://127.0.0.1:9/evil;tcp";
    let mut v = Vec::new();
    let req = |tid: &str, m: &str, to: &str, from: &str, extra: &str| {
        format!("MSRP {tid} {m}\r\nTo-Path: {to}\r\nFrom-Path: {from}\r\n{extra}-------{tid}$\r\n")
    };

    // --- bad start lines: the stream cannot be understood, closed without an answer.
    for (i, start) in [
        "GET / HTTP/1.1",
        "MSRP",
        "MSRP ",
        "MSRP  SEND",
        "msrp abcd1234 SEND",
        "MSRP abc SEND",
        "MSRP abcd1234",
        "MSRP abcd1234 ",
        "MSRP abcd1234 send",
        "MSRP abcd1234 SEND extra",
        "MSRP abcd1234 20",
        "MSRP abcd1234 2000 OK",
        "MSRP ab/d1234 SEND",
        "MSRP abcd1234\tSEND",
        " MSRP abcd1234 SEND",
        "MSRP abcd1234abcd1234abcd1234abcd1234abcd SEND",
        "\r\n",
        "SIP/2.0 200 OK",
        "MSRPabcd1234 SEND",
        "MSRP abcd1234 S3ND",
    ]
    .iter()
    .enumerate()
    {
        v.push(case(
            &format!("start line {i}: {start:?}"),
            format!("{start}\r\nTo-Path: {ru}\r\nFrom-Path: {me}\r\n-------abcd1234$\r\n"),
            // CRLFCRLF first is a SIP keepalive ping: ponged, then the rest is bad SIP.
            if *start == "\r\n" {
                "pong|close"
            } else {
                "|close"
            },
        ));
    }
    // Bare LF, NUL and 8-bit bytes in the start line.
    v.push(case(
        "bare LF start",
        format!("MSRP abcd1234 SEND\nTo-Path: {ru}\n"),
        "|close",
    ));
    v.push(case(
        "NUL in tid",
        b"MSRP ab\0d1234 SEND\r\n".to_vec(),
        "|close",
    ));
    v.push(case("NUL first", b"\0\0\0\0".to_vec(), "|close"));
    v.push(case(
        "UTF-8 method",
        "MSRP abcd1234 SÉND\r\n".as_bytes().to_vec(),
        "|close",
    ));
    v.push(case("0xFF bytes", vec![0xff; 64], "|close"));
    v.push(case(
        "TLS hello on TCP",
        vec![0x16, 0x03, 0x01, 0x00, 0xa5, 0x01, 0x00],
        "|close",
    ));

    // --- To-Path / From-Path missing, reordered, empty, malformed.
    v.push(case(
        "no To-Path",
        format!(
            "MSRP tp000001 SEND\r\nFrom-Path: {me}\r\nMessage-ID: m0000001\r\n-------tp000001$\r\n"
        ),
        "400|open",
    ));
    v.push(case(
        "no From-Path",
        format!(
            "MSRP tp000002 SEND\r\nTo-Path: {ru}\r\nMessage-ID: m0000001\r\n-------tp000002$\r\n"
        ),
        "|close",
    ));
    v.push(case(
        "no paths",
        "MSRP tp000003 SEND\r\nMessage-ID: m0000001\r\n-------tp000003$\r\n",
        "|close",
    ));
    v.push(case(
        "From-Path before To-Path",
        format!(
            "MSRP tp000004 NICKNAME\r\nFrom-Path: {me}\r\nTo-Path: {ru}\r\n-------tp000004$\r\n"
        ),
        "400|open",
    ));
    v.push(case("To-Path twice", format!("MSRP tp000005 NICKNAME\r\nTo-Path: {ru}\r\nTo-Path: {ru}\r\nFrom-Path: {me}\r\n-------tp000005$\r\n"), "400|open"));
    v.push(case(
        "empty To-Path",
        format!("MSRP tp000006 NICKNAME\r\nTo-Path: \r\nFrom-Path: {me}\r\n-------tp000006$\r\n"),
        "400|open",
    ));
    v.push(case(
        "empty From-Path",
        format!("MSRP tp000007 NICKNAME\r\nTo-Path: {ru}\r\nFrom-Path: \r\n-------tp000007$\r\n"),
        "|close",
    ));
    v.push(case(
        "To-Path not a URI",
        format!(
            "MSRP tp000008 NICKNAME\r\nTo-Path: hello\r\nFrom-Path: {me}\r\n-------tp000008$\r\n"
        ),
        "400|open",
    ));
    v.push(case(
        "From-Path not a URI",
        format!(
            "MSRP tp000009 NICKNAME\r\nTo-Path: {ru}\r\nFrom-Path: hello\r\n-------tp000009$\r\n"
        ),
        "|close",
    ));
    v.push(case("To-Path double space", format!("MSRP tp000010 NICKNAME\r\nTo-Path: {ru}  {ru}\r\nFrom-Path: {me}\r\n-------tp000010$\r\n"), "400|open"));
    v.push(case("To-Path http URI", format!("MSRP tp000011 NICKNAME\r\nTo-Path: http://127.0.0.1/;tcp\r\nFrom-Path: {me}\r\n-------tp000011$\r\n"), "400|open"));
    v.push(case("To-Path no transport", format!("MSRP tp000012 NICKNAME\r\nTo-Path: msrp://127.0.0.1:1\r\nFrom-Path: {me}\r\n-------tp000012$\r\n"), "400|open"));
    v.push(case("To-Path port 99999", format!("MSRP tp000013 NICKNAME\r\nTo-Path: msrp://127.0.0.1:99999;tcp\r\nFrom-Path: {me}\r\n-------tp000013$\r\n"), "400|open"));
    v.push(case(
        "foreign first To-Path",
        req(
            "tp000014",
            "SEND",
            "msrp://evil.example.com:2855/x;tcp",
            me,
            "Message-ID: m0000001\r\n",
        ),
        "|close",
    ));
    v.push(case(
        "msrps with our port",
        req(
            "tp000015",
            "NICKNAME",
            &ru.replace("msrp:", "msrps:"),
            me,
            "",
        ),
        "|close",
    ));
    v.push(case("header without colon", format!("MSRP tp000016 NICKNAME\r\nTo-Path: {ru}\r\nFrom-Path: {me}\r\nNoColonHere\r\n-------tp000016$\r\n"), "400|open"));
    v.push(case("header name with space", format!("MSRP tp000017 NICKNAME\r\nTo-Path: {ru}\r\nFrom-Path: {me}\r\nBad Name: x\r\n-------tp000017$\r\n"), "400|open"));
    v.push(case("NUL in header value", format!("MSRP tp000018 NICKNAME\r\nTo-Path: {ru}\r\nFrom-Path: {me}\r\nX: a\0b\r\n-------tp000018$\r\n"), "400|open"));
    v.push(case(
        "invalid UTF-8 in another header",
        [
            format!("MSRP tp000019 NICKNAME\r\nTo-Path: {ru}\r\nFrom-Path: {me}\r\nX: ")
                .into_bytes(),
            vec![0xc3, 0x28, 0xff],
            b"\r\n-------tp000019$\r\n".to_vec(),
        ]
        .concat(),
        "400|open",
    ));
    v.push(case(
        "bare LF in headers",
        format!("MSRP tp000020 NICKNAME\r\nTo-Path: {ru}\nFrom-Path: {me}\r\n-------tp000020$\r\n"),
        "|close",
    ));

    // --- addressing: the relay itself, unknown sessions, no next hop (RFC 4976 §6.4).
    v.push(case(
        "SEND to the relay itself",
        req("ad000001", "SEND", ru, me, "Message-ID: m0000001\r\n"),
        "403,REPORT|open",
    ));
    v.push(case(
        "SEND to the relay, Failure-Report no",
        req(
            "ad000002",
            "SEND",
            ru,
            me,
            "Message-ID: m0000001\r\nFailure-Report: no\r\n",
        ),
        "|open",
    ));
    v.push(case(
        "NICKNAME to the relay",
        req("ad000003", "NICKNAME", ru, me, ""),
        "403|open",
    ));
    v.push(case(
        "unknown session",
        req(
            "ad000004",
            "NICKNAME",
            &ru.replace(";tcp", "/abcdefghijklmnop;tcp"),
            me,
            "",
        ),
        "481|open",
    ));
    v.push(case(
        "session id garbage",
        req(
            "ad000005",
            "NICKNAME",
            &ru.replace(";tcp", "/!!;tcp"),
            me,
            "",
        ),
        "400|open",
    ));
    v.push(case(
        "live session, no next hop",
        req("ad000006", "NICKNAME", sess, me, ""),
        "481|open",
    ));
    v.push(case(
        "live session of another, SEND without Message-ID",
        req("ad000007", "SEND", sess, me, ""),
        "400,REPORT|open",
    ));
    v.push(case(
        "REPORT to the relay",
        req(
            "ad000008",
            "REPORT",
            ru,
            me,
            "Message-ID: m0000001\r\nStatus: 000 200 OK\r\n",
        ),
        "|open",
    ));
    v.push(case(
        "AUTH with two URIs",
        req("ad000009", "AUTH", &format!("{ru} {ru}"), me, ""),
        "403|open",
    ));
    v.push(case(
        "AUTH Expires 1",
        req("ad000010", "AUTH", ru, me, "Expires: 1\r\n"),
        "423|open",
    ));
    v.push(case(
        "AUTH Expires huge",
        req(
            "ad000011",
            "AUTH",
            ru,
            me,
            "Expires: 99999999999999999999\r\n",
        ),
        "400|open",
    ));
    v.push(case(
        "AUTH Expires negative",
        req("ad000012", "AUTH", ru, me, "Expires: -5\r\n"),
        "400|open",
    ));
    v.push(case(
        "unknown method to the relay",
        req("ad000013", "FROBNICATE", ru, me, ""),
        "403|open",
    ));

    // --- Byte-Range and other typed headers with bad values.
    for (i, br) in [
        "1-2",
        "0-1/2",
        "a-b/c",
        "1-*",
        "5-4/10",
        "1-99999999999999999999999/*",
        "18446744073709551616-1/2",
        "1-2/1",
        "-1-2/3",
        "1 -2/3",
        "",
        "1-2/3/4",
    ]
    .iter()
    .enumerate()
    {
        v.push(case(
            &format!("Byte-Range {br:?}"),
            req(
                &format!("br{i:06}"),
                "SEND",
                ru,
                me,
                &format!("Message-ID: m0000001\r\nByte-Range: {br}\r\n"),
            ),
            if *br == "5-4/10" {
                // Well-formed: refused for what it is (not a session).
                "403,REPORT|open"
            } else {
                "400|open"
            },
        ));
    }
    for (i, st) in ["", "200", "000 2000 OK", "999 200 OK", "000 abc"]
        .iter()
        .enumerate()
    {
        v.push(case(
            &format!("REPORT Status {st:?}"),
            req(
                &format!("st{i:06}"),
                "REPORT",
                ru,
                me,
                &format!("Message-ID: m0000001\r\nStatus: {st}\r\n"),
            ),
            "|open",
        ));
    }
    for (i, fr) in ["maybe", "", "yes yes"].iter().enumerate() {
        v.push(case(
            &format!("Failure-Report {fr:?}"),
            req(
                &format!("fr{i:06}"),
                "NICKNAME",
                ru,
                me,
                &format!("Failure-Report: {fr}\r\n"),
            ),
            "400|open",
        ));
    }
    v.push(case(
        "Message-ID too short",
        req("mi000001", "SEND", ru, me, "Message-ID: ab\r\n"),
        "400|open",
    ));
    v.push(case(
        "Message-ID bad char",
        req("mi000002", "SEND", ru, me, "Message-ID: ab cd ef\r\n"),
        "400|open",
    ));
    v.push(case("SEND body without Content-Type", format!("MSRP ct000001 SEND\r\nTo-Path: {ru}\r\nFrom-Path: {me}\r\nMessage-ID: m0000001\r\n\r\nhello\r\n-------ct000001$\r\n"), "400|open"));
    v.push(case("Content-Type garbage", format!("MSRP ct000002 SEND\r\nTo-Path: {ru}\r\nFrom-Path: {me}\r\nMessage-ID: m0000001\r\nContent-Type: ///\r\n\r\nhello\r\n-------ct000002$\r\n"), "400|open"));

    // --- end-lines that lie.
    v.push(case(
        "end-line with another tid (bodiless)",
        format!(
            "MSRP el000001 NICKNAME\r\nTo-Path: {ru}\r\nFrom-Path: {me}\r\n-------el000002$\r\n"
        ),
        "|close",
    ));
    v.push(case(
        "end-line bad flag (bodiless)",
        format!(
            "MSRP el000003 NICKNAME\r\nTo-Path: {ru}\r\nFrom-Path: {me}\r\n-------el000003!\r\n"
        ),
        "|close",
    ));
    v.push(case(
        "end-line short dashes",
        format!(
            "MSRP el000004 NICKNAME\r\nTo-Path: {ru}\r\nFrom-Path: {me}\r\n------el000004$\r\n"
        ),
        "|close",
    ));
    v.push(case("body end-line with another tid never ends", format!("MSRP el000005 SEND\r\nTo-Path: {ru}\r\nFrom-Path: {me}\r\nMessage-ID: m0000001\r\nContent-Type: text/plain\r\n\r\nhi\r\n-------el000006$\r\n"), "403,REPORT|open"));
    v.push(case("body end-line bad flag is body", format!("MSRP el000007 SEND\r\nTo-Path: {ru}\r\nFrom-Path: {me}\r\nMessage-ID: m0000001\r\nContent-Type: text/plain\r\n\r\nhi\r\n-------el000007?\r\n"), "403,REPORT|open"));
    v.push(case("response with a body", format!("MSRP el000008 200 OK\r\nTo-Path: {ru}\r\nFrom-Path: {me}\r\n\r\nbody\r\n-------el000008$\r\n"), "|close"));
    v.push(case(
        "end-line without CRLF, then more",
        format!(
            "MSRP el000009 NICKNAME\r\nTo-Path: {ru}\r\nFrom-Path: {me}\r\n-------el000009$MSRP"
        ),
        "|close",
    ));

    // --- responses nobody asked for (RFC 4976 §6.4.3: dropped).
    v.push(case(
        "200 for an unknown tid",
        format!("MSRP wt000001 200 OK\r\nTo-Path: {ru}\r\nFrom-Path: {me}\r\n-------wt000001$\r\n"),
        "|open",
    ));
    v.push(case("481 for a tid of ours", format!("MSRP 0123456789abcdef 481 X\r\nTo-Path: {ru}\r\nFrom-Path: {me}\r\n-------0123456789abcdef$\r\n"), "|open"));
    v.push(case(
        "response to someone else",
        format!("MSRP wt000002 200 OK\r\nTo-Path: {me}\r\nFrom-Path: {me}\r\n-------wt000002$\r\n"),
        "|open",
    ));
    v.push(case(
        "response without paths",
        "MSRP wt000003 200 OK\r\n-------wt000003$\r\n",
        "|open",
    ));

    // --- huge and endless heads, slow heads.
    let long = "x".repeat(20_000);
    v.push(case("one 20 kB header", format!("MSRP hh000001 NICKNAME\r\nTo-Path: {ru}\r\nFrom-Path: {me}\r\nX: {long}\r\n-------hh000001$\r\n"), "|close"));
    v.push(case(
        "20 kB start line",
        format!("MSRP hh000002 {long}\r\n"),
        "|close",
    ));
    v.push(case(
        "endless headers",
        format!(
            "MSRP hh000003 NICKNAME\r\nTo-Path: {ru}\r\nFrom-Path: {me}\r\n{}",
            "X-A: b\r\n".repeat(3000)
        ),
        "|close",
    ));
    v.push(case(
        "33 URIs in To-Path",
        req("hh000004", "NICKNAME", &vec![ru; 33].join(" "), me, ""),
        "400|open",
    ));
    v.push(case(
        "head cut off, then silence",
        format!("MSRP hh000005 NICKNAME\r\nTo-Path: {ru}\r\nFrom"),
        "|close",
    ));
    v.push(case(
        "only a start line, then silence",
        "MSRP hh000006 SEND\r\n",
        "|close",
    ));
    v.push(case("blank line and nothing", "\r\n\r\n\r\n", "pong|close"));
    v.push(case("non-SEND body of 10241 bytes", format!("MSRP hh000007 NICKNAME\r\nTo-Path: {ru}\r\nFrom-Path: {me}\r\nContent-Type: text/plain\r\n\r\n{}\r\n-------hh000007$\r\n", "y".repeat(10241)), "403|close"));

    // --- torn frames: legitimate frames written a few bytes at a time.
    let auth = req("tf000001", "AUTH", ru, me, "");
    v.push(Case {
        name: "AUTH one byte at a time".into(),
        pieces: auth.bytes().map(|b| vec![b]).collect(),
        expect: "200|open".into(),
    });
    let nick = req("tf000002", "NICKNAME", ru, me, "");
    v.push(Case {
        name: "NICKNAME in 7-byte pieces".into(),
        pieces: nick.as_bytes().chunks(7).map(<[u8]>::to_vec).collect(),
        expect: "403|open".into(),
    });
    let send = format!(
        "MSRP tf000003 SEND\r\nTo-Path: {ru}\r\nFrom-Path: {me}\r\nMessage-ID: m0000001\r\nContent-Type: text/plain\r\n\r\n{}\r\n-------tf000003$\r\n",
        "-------tf000003".repeat(50)
    );
    v.push(Case {
        name: "SEND with end-line lookalikes, torn at CR LF".into(),
        pieces: send
            .split_inclusive('\r')
            .map(|s| s.as_bytes().to_vec())
            .collect(),
        expect: "403,REPORT|open".into(),
    });
    v.push(Case {
        name: "torn and truncated frame".into(),
        pieces: vec![b"MSRP tf000004 NICK".to_vec(), b"NAME\r\nTo-".to_vec()],
        expect: "|close".into(),
    });

    // --- floods on one connection.
    let flood: String = (0..200)
        .map(|i| req(&format!("fl{i:06}"), "NICKNAME", ru, me, ""))
        .collect();
    v.push(case(
        "200 tiny NICKNAMEs",
        flood,
        &format!("{}|open", vec!["403*"; 200].join(",")),
    ));
    let auths: String = (0..50)
        .map(|i| req(&format!("au{i:06}"), "AUTH", ru, me, ""))
        .collect();
    v.push(case(
        "50 AUTHs",
        auths,
        &format!("{}|open", vec!["200*"; 50].join(",")),
    ));
    let responses: String = (0..200)
        .map(|i| {
            format!(
                "MSRP rs{i:06} 200 OK\r\nTo-Path: {ru}\r\nFrom-Path: {me}\r\n-------rs{i:06}$\r\n"
            )
        })
        .collect();
    v.push(case("200 unsolicited responses", responses, "|open"));
    let empties: String = (0..100).map(|i| format!("MSRP em{i:06} SEND\r\nTo-Path: {ru}\r\nFrom-Path: {me}\r\nMessage-ID: m0000001\r\nFailure-Report: no\r\n-------em{i:06}$\r\n")).collect();
    v.push(case("100 SENDs with Failure-Report no", empties, "|open"));
    v
}

/// Replaces `code*` entries (any tid) after checking: `*` accepts any tid.
fn matches(expect: &str, got: &str) -> bool {
    let (ef, es) = expect.split_once('|').unwrap();
    let (gf, gs) = got.split_once('|').unwrap_or((got, ""));
    if es != gs {
        return false;
    }
    let e: Vec<&str> = ef.split(',').filter(|x| !x.is_empty()).collect();
    let g: Vec<&str> = gf.split(',').filter(|x| !x.is_empty()).collect();
    e.len() == g.len()
        && e.iter().zip(&g).all(|(e, g)| match e.strip_suffix('*') {
            Some(code) => g.split('@').next() == Some(code),
            None => e == g,
        })
}

#[test]
fn hostile_corpus_while_a_session_keeps_talking() {
    let relay = Relay::start(2, Driver::IoUring, |c| {
        c.head_timeout = Duration::from_millis(800);
    });
    let ru = relay.uri();
    let mut a = relay.connect(&peer_uri("alice", 1111));
    let mut b = relay.connect(&peer_uri("bob", 2222));
    let ra = a.auth(&ru);
    let rb = b.auth(&ru);
    let base = relay.counters();
    assert_eq!((base.connections_open, base.sessions), (2, 2));

    // The legitimate session: A -> B and B -> A, each message checked, until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let exchanged = Arc::new(AtomicU64::new(0));
    let talker = {
        let (stop, exchanged) = (stop.clone(), exchanged.clone());
        let (ra, rb) = (ra.clone(), rb.clone());
        thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let body = format!("message {n} from alice");
                let id = format!("msga{n:06}");
                let to_b = format!("{ra} {rb} {}", b.me);
                let tid = a.send(
                    &to_b,
                    &[
                        ("Message-ID", &id),
                        ("Byte-Range", &format!("1-{}/{}", body.len(), body.len())),
                    ],
                    Some(body.as_bytes()),
                    Flag::Complete,
                );
                let got = b.read_frame();
                assert_eq!((got.kind(), got.body.as_slice()), ("SEND", body.as_bytes()));
                assert_eq!(got.header("Message-ID"), Some(id.as_str()));
                b.respond(&got, 200);
                let ok = a.read_frame();
                assert_eq!((ok.tid(), ok.kind()), (tid.as_str(), "200"));
                let body = format!("reply {n} from bob");
                let id = format!("msgb{n:06}");
                let to_a = format!("{rb} {ra} {}", a.me);
                b.send(
                    &to_a,
                    &[("Message-ID", &id), ("Failure-Report", "no")],
                    Some(body.as_bytes()),
                    Flag::Complete,
                );
                let got = a.read_frame();
                assert_eq!((got.kind(), got.body.as_slice()), ("SEND", body.as_bytes()));
                exchanged.store(n, Ordering::Relaxed);
            }
            (a, b)
        })
    };

    let sess = ra.clone();
    let cases = corpus(&ru, &sess);
    assert!(cases.len() >= 100, "corpus has {} inputs", cases.len());
    let addr = relay.addr;
    let t0 = Instant::now();
    let mut progress = Vec::new();
    let mut failures = Vec::new();
    for batch in cases.chunks(16) {
        let before = exchanged.load(Ordering::Relaxed);
        let got: Vec<String> = thread::scope(|s| {
            let hs: Vec<_> = batch
                .iter()
                .map(|c| s.spawn(move || run_case(addr, c)))
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for (c, g) in batch.iter().zip(got) {
            if !matches(&c.expect, &g) {
                failures.push(format!("{}: expected {:?}, got {:?}", c.name, c.expect, g));
            }
        }
        // A batch of quick closes can end before one exchange does: give the session
        // up to 2 s past the batch to show it is still being served.
        let wait = Instant::now() + Duration::from_secs(2);
        while exchanged.load(Ordering::Relaxed) == before && Instant::now() < wait {
            thread::sleep(Duration::from_millis(1));
        }
        progress.push(exchanged.load(Ordering::Relaxed) - before);
    }
    let took = t0.elapsed();
    stop.store(true, Ordering::Relaxed);
    let (mut a, _b) = talker.join().expect("the legitimate session never failed");
    assert!(
        failures.is_empty(),
        "{} of {} inputs:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    // The session kept talking through every batch of the corpus.
    assert!(
        progress.iter().all(|&p| p > 0),
        "exchanges per batch: {progress:?} in {took:?}"
    );

    // Still serving; every input's connection gone, nothing left in the tables.
    let mut c = relay.connect(&peer_uri("carol", 3333));
    c.auth(&ru);
    drop(c);
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let now = relay.counters();
        if now.connections_open == 2 && now.sessions == 2 && now.transactions == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "counters did not settle: {now:?}"
        );
        thread::sleep(Duration::from_millis(20));
    }
    let _ = a.auth(&ru);
}
