#!/usr/bin/env python3
"""Writes seed inputs for the fuzz targets into fuzz/corpus/<target>/ (git-ignored).

Run from anywhere: python3 fuzz/make_seeds.py. The frames follow the examples of
RFC 4975 §7 and RFC 4976 §7-§8; the scanner seeds carry the target's prefix
(cfg byte, count k, k piece lengths) in front of the stream.
"""

import hashlib
import os

HERE = os.path.dirname(os.path.abspath(__file__))
CRLF = b"\r\n"

A = b"msrp://alice.example.com:7777/iau39soe2843z;tcp"
B = b"msrp://bob.example.com:8888/9di4eae923wzd;tcp"
R1 = b"msrps://relay1.example.com;tcp"
R2 = b"msrps://relay2.example.com:2855;tcp"
V6 = b"msrps://bob@[2001:db8::1]:2855/a/b=+;ws;x=y;z"


def frame(tid, start, headers, body=None, flag=b"$"):
    out = b"MSRP " + tid + b" " + start + CRLF
    for name, value in headers:
        out += name + b": " + value + CRLF
    if body is not None:
        out += CRLF + body + CRLF
    return out + b"-------" + tid + flag + CRLF


def head_only(tid, start, headers):
    out = b"MSRP " + tid + b" " + start + CRLF
    for name, value in headers:
        out += name + b": " + value + CRLF
    return out


CRED = (b'Digest username="Alice", realm="intra.example.com", nonce="7a8f3b", '
        b'uri="msrps://relay1.example.com;tcp", qop=auth, nc=00000001, '
        b'cnonce="0a4f113b", response="6629fae49393a05397450978507c4ef1", '
        b'opaque="5ccc069c", algorithm=MD5')
CHAL = (b'Digest realm="intra.example.com", qop="auth", algorithm=MD5, '
        b'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c", stale=FALSE')
AINFO = (b'nextnonce="7a8f3b9c", qop=auth, rspauth="6629fae49393a05397450978507c4ef1", '
         b'cnonce="0a4f113b", nc=00000001')

HEADS = [
    (b"a786hjs2", b"SEND", [(b"To-Path", B), (b"From-Path", A), (b"Message-ID", b"87652491"),
                            (b"Byte-Range", b"1-25/25"), (b"Content-Type", b"text/plain")]),
    (b"dkei38sd", b"SEND", [(b"To-Path", R1 + b" " + R2 + b" " + B), (b"From-Path", A),
                            (b"Message-ID", b"4564dpWd"), (b"Byte-Range", b"1-*/8"),
                            (b"Success-Report", b"yes"), (b"Failure-Report", b"partial"),
                            (b"Content-Type", b"text/plain; charset=utf-8")]),
    (b"dkei38sd", b"REPORT", [(b"To-Path", A), (b"From-Path", B), (b"Message-ID", b"4564dpWd"),
                              (b"Byte-Range", b"1-8/8"), (b"Status", b"000 200 OK")]),
    (b"a786hjs2", b"200 OK", [(b"To-Path", A), (b"From-Path", B)]),
    (b"x0Kq9.=+", b"AUTH", [(b"To-Path", R1), (b"From-Path", A), (b"Authorization", CRED),
                            (b"Expires", b"900")]),
    (b"x0Kq9.=+", b"401 Unauthorized", [(b"To-Path", A), (b"From-Path", R1),
                                        (b"WWW-Authenticate", CHAL)]),
    (b"x0Kq9.=+", b"200 OK", [(b"To-Path", A), (b"From-Path", R1), (b"Use-Path", R1),
                              (b"Expires", b"900"), (b"Authentication-Info", AINFO)]),
    (b"x0Kq9.=+", b"423 Interval Out-of-Bounds", [(b"To-Path", A), (b"From-Path", R1),
                                                  (b"Min-Expires", b"60"), (b"Max-Expires", b"3600")]),
    (b"abcd", b"NICKNAME", [(b"to-path", V6), (b"FROM-PATH", A), (b"Use-Nickname", b'"Al"'),
                            (b"X-Ext", b"\xc3\xa9t\xc3\xa9")]),
]


def frames():
    out = []
    for tid, start, hs in HEADS:
        ct = any(n.lower() == b"content-type" for n, _ in hs)
        out.append(frame(tid, start, hs, b"Hey Bob, are you there?" if ct else None))
    hs = HEADS[0][2]
    out.append(frame(b"a786hjs2", b"SEND", hs, b"", b"+"))
    out.append(frame(b"a786hjs2", b"SEND", hs, b"partial", b"#"))
    out.append(frame(b"abcd", b"SEND", hs,
                     b"\r\n-------abcde$\r\n\r\n-------abcd!\r\n-------abcd$xy\r\n-------abc"))
    out.append(frame(b"abcd", b"FOO", hs, b"x" * 300))
    return out


SIP = [
    b"OPTIONS sip:msrpd@192.0.2.1 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.7:5062;branch=z9hG4bK1;rport\r\nMax-Forwards: 70\r\n"
    b"To: <sip:msrpd@192.0.2.1>\r\nFrom: <sip:a@192.0.2.7>;tag=1\r\nCall-ID: c1\r\n"
    b"CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
    b"INVITE sips:bob@biloxi.com SIP/2.0\r\n"
    b"v: SIP/2.0/TLS a.example.com;branch=z9hG4bK-1-ab,SIP/2.0/UDP [2001:db8::1]:5070\r\n"
    b"f: \"A, B\" <sip:a@x>;tag=88\r\nt: Bob\r\n <sip:bob@biloxi.com>\r\ni: abc@x\r\n"
    b"CSeq: 2 INVITE\r\nm: <sip:a@1.2.3.4>;q=0.5, *\r\nRecord-Route: <sip:p1;lr>\r\n"
    b"Require: 100rel\r\nc: application/sdp\r\nl: 4\r\n\r\nv=0\n",
    b"SIP/2.0 401 Unauthorized\r\nVia: SIP/2.0/TCP h;branch=z9hG4bKx;received=1.2.3.4;rport=9\r\n"
    b"From: <sip:a@h>;tag=1\r\nTo: <sip:b@h>;tag=2\r\nCall-ID: c\r\nCSeq: 5 MESSAGE\r\n"
    b"WWW-Authenticate: Digest realm=\"h\", nonce=\"n\", qop=\"auth\", algorithm=SHA-256\r\n"
    b"Content-Length: 0\r\n\r\n",
]


SDP_HEAD = (b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\n"
            b"t=0 0\r\n")
SDPS = [
    (0, SDP_HEAD + b"m=message 7394 TCP/MSRP *\r\na=accept-types:text/plain message/cpim\r\n"
        b"a=path:msrp://192.0.2.1:7394/2s93i9ek2a;tcp\r\n"),
    (5, SDP_HEAD + b"m=message 7394 TCP/TLS/MSRP *\r\na=accept-types:message/cpim text/*\r\n"
        b"a=accept-wrapped-types:*\r\na=path:msrps://192.0.2.1:7394/ab;tcp\r\n"
        b"a=setup:actpass\r\na=msrp-cema\r\na=sendrecv\r\na=max-size:65536\r\n"),
    (2, SDP_HEAD + b"m=audio 49170 RTP/AVP 0\r\nm=message 7394 TCP/MSRP *\r\n"
        b"a=accept-types:text/plain;charset=\"utf-8\"\r\n"
        b"a=path:msrp://relay.example.com:2855/x;tcp msrp://192.0.2.1:7394/y;tcp\r\n"
        b"a=setup:passive\r\na=sendonly\r\n"),
    (12, b"v=0\no=- 1 1 IN IP6 ::1\ns=-\nt=0 0\nm=message 2855 TCP/MSRP *\n"
         b"c=IN IP6 2001:db8::1\na=accept-types:*\na=path:msrp://[2001:db8::1]:2855/v6;tcp\n"),
    (0, SDP_HEAD.replace(b"s=-", b"s= -") + b"m=message 7394 TCP/MSRP *\r\n"
        b"a=accept-types:message/cpim\r\na=accept-wrapped-types:text/plain text/html\r\n"
        b"a=path:msrp://192.0.2.1:7394/s;tcp\r\na=setup:active\r\n"),
]


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    if not name:
        name = hashlib.sha1(data).hexdigest()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def main():
    fs = frames()
    stream = b"".join(fs)
    # scanner: [cfg, k, lens...] + stream
    for i, f in enumerate(fs):
        write("scanner", "frame%02d" % i, bytes([0, 0]) + f)
        write("scanner", "frame%02d-split" % i, bytes([0, 3, 1, 7, 0]) + f)
    write("scanner", "stream-whole", bytes([0, 0]) + stream)
    write("scanner", "stream-split", bytes([0, 4, 13, 64, 1, 200]) + stream)
    write("scanner", "stream-small-limits", bytes([0x15, 2, 5, 9]) + stream)
    # head: the head alone (no blank line or end-line)
    for i, (tid, start, hs) in enumerate(HEADS):
        write("head", "head%02d" % i, head_only(tid, start, hs))
    # uri: up to three URIs separated by LF
    uris = [A, B, R1, R2, V6, b"MSRP://Alice.Example.COM:07777/iau39soe2843z;TCP",
            b"msrp://%61lice.example.com:7777/iau39soe2843z;tcp", b"msrp://127.0.0.1:1/s;tcp",
            b"msrp://[::ffff:127.0.0.1]/s;ws", b"msrps://u:p@h;tcp;a=b;c"]
    for i, u in enumerate(uris):
        write("uri", "uri%02d" % i, u)
    write("uri", "uri-eq3", A + b"\n" + uris[5] + b"\n" + uris[6])
    write("uri", "uri-path", R1 + b" " + R2 + b" " + B + b"\n" + R1)
    # digest: header values
    for i, v in enumerate([CRED, CHAL, AINFO, b'Digest realm="a\\"b", nonce=x,\t opaque=""']):
        write("digest", "digest%02d" % i, v)
    # sip_msg: [cfg] + bytes (cfg bits 1-7: stream piece length)
    for i, m in enumerate(SIP):
        write("sip_msg", "sip%02d" % i, bytes([0]) + m)
        write("sip_msg", "sip%02d-pieces" % i, bytes([14]) + b"\r\n\r\n" + m + m)
    # sdp: [cfg] + SDP (cfg bits 0-3: TLS, active, CEMA, relay; see fuzz/src/sdp.rs)
    for i, (cfg, body) in enumerate(SDPS):
        write("sdp", "sdp%02d" % i, bytes([cfg]) + body)
    # sip_txn: two-byte ops (see fuzz/src/sip.rs)
    write("sip_txn", "server-invite", bytes([1, 0, 0, 4, 3, 0x20, 3, 0x80, 1, 1, 0, 100]))
    write("sip_txn", "client-invite", bytes([4, 0, 2, 0x20, 5, 0, 2, 0xa0, 0, 200, 0, 200]))
    write("sip_txn", "message-udp", bytes([1, 5, 1, 5, 3, 0x40, 4, 1, 0, 10, 2, 0x40]))
    # reassembly: c0, c1, max_message and max_held (u16 each), four (len, len, seed)
    # truths, then ops (see fuzz/src/reassembly.rs; u16 values big-endian)
    cfg = bytes([3, 30, 1, 0xFF, 3, 0xFF, 100, 0, 1, 50, 0, 2, 10, 0, 3, 0, 0, 0])
    two_chunks = bytes([0, 0, 0, 0, 50, 0, 0, 10, 20, 0, 0, 50, 0, 50, 2, 0, 5, 9])
    write("reassembly", "two-chunks", cfg + two_chunks)
    reversed_star = bytes([0, 0, 50, 0, 50, 4, 0, 0, 0, 0x40, 0, 0, 0, 50, 0, 0, 3, 3,
                           0, 0, 0, 0, 50, 1, 2, 7, 7])
    write("reassembly", "out-of-order-star", cfg + reversed_star)
    aborts = bytes([2, 0, 0, 0, 20, 0, 0, 1, 1, 0x83, 0, 0, 0, 5, 0, 0, 2, 2, 6, 0x10, 0])
    write("reassembly", "abort-abandon-timeout", cfg + aborts + bytes([4, 1, 5, 9, 3, 65, 66, 67, 0]))


if __name__ == "__main__":
    main()
