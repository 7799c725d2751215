//! The user agent's receive side (`msrpd::ua`), on a virtual clock: reassembly
//! (RFC 4975 §7.3.1), the endpoint's responses and REPORTs (§7.1.2-§7.2) and a
//! message/cpim body reassembled from chunks (§11.4, RFC 3862). Here rather than in the
//! modules because `src/ua` never names the wall clock (`.ci/run` greps for it); a test
//! takes one `Instant` here and moves it by hand.

mod reassembly {
    use std::time::{Duration, Instant};

    use bytes::{Bytes, BytesMut};
    use msrpd::codec::{ByteRange, ContentType, Event, Flag, Scanner};
    use msrpd::ua::reassembly::*;
    use rand::rngs::StdRng;
    use rand::seq::SliceRandom;
    use rand::{Rng, SeedableRng};

    /// A SEND frame: Message-ID `mid`, Byte-Range `br` (none when `None`), `extra`
    /// header lines, a text/plain body (none: bodiless), end-line flag `flag`.
    /// Message-IDs are written `mid-<mid>` (an `ident` has at least 4 characters).
    fn send(
        tid: &str,
        mid: &str,
        br: Option<&str>,
        extra: &str,
        body: Option<&[u8]>,
        flag: char,
    ) -> Vec<u8> {
        let mut f = format!(
            "MSRP {tid} SEND\r\nTo-Path: msrp://b.example.com:7654/jshA7we;tcp\r\nFrom-Path: msrp://a.example.com:12763/kjhd37s2s20w2a;tcp\r\nMessage-ID: mid-{mid}\r\n"
        )
        .into_bytes();
        if let Some(br) = br {
            f.extend_from_slice(format!("Byte-Range: {br}\r\n").as_bytes());
        }
        f.extend_from_slice(extra.as_bytes());
        match body {
            Some(b) => {
                f.extend_from_slice(b"Content-Type: text/plain\r\n\r\n");
                f.extend_from_slice(b);
                f.extend_from_slice(format!("\r\n-------{tid}{flag}\r\n").as_bytes());
            }
            None => f.extend_from_slice(format!("-------{tid}{flag}\r\n").as_bytes()),
        }
        f
    }

    /// A connection's receive path: the codec's scanner feeding one reassembler.
    struct Rx {
        sc: Scanner,
        buf: BytesMut,
        r: Reassembler,
        chunks: Vec<Chunk>,
        early: Vec<Refusal>,
        tid: u64,
    }

    impl Rx {
        fn new(limits: Limits, max_size: Option<u64>) -> Rx {
            Rx {
                sc: Scanner::default(),
                buf: BytesMut::new(),
                r: Reassembler::new(limits, max_size),
                chunks: Vec::new(),
                early: Vec::new(),
                tid: 0,
            }
        }
        fn tid(&mut self) -> String {
            self.tid += 1;
            format!("t{:08}", self.tid)
        }
        /// Feeds `bytes` in reads of `step`.
        fn feed(&mut self, now: Instant, bytes: &[u8], step: usize) {
            for piece in bytes.chunks(step.max(1)) {
                self.buf.extend_from_slice(piece);
                while let Some(ev) = self.sc.next(&mut self.buf).expect("frames scan") {
                    match ev {
                        Event::Head(h) => {
                            let head = h.parse().expect("head parses");
                            self.early.extend(self.r.begin(now, &head, h.has_body()));
                        }
                        Event::Body(b) => self.early.extend(self.r.body(b)),
                        Event::End(f) => self.chunks.push(self.r.end(now, f).expect("in a chunk")),
                    }
                }
            }
        }
        /// One SEND, whole, in one read.
        fn send(
            &mut self,
            now: Instant,
            mid: &str,
            br: Option<&str>,
            body: &[u8],
            flag: char,
        ) -> Chunk {
            let tid = self.tid();
            let f = send(&tid, mid, br, "", Some(body), flag);
            self.feed(now, &f, f.len());
            self.chunks.pop().expect("a chunk")
        }
        fn body_of(c: &Chunk) -> Vec<u8> {
            c.message
                .as_ref()
                .expect("a message")
                .body
                .to_bytes()
                .to_vec()
        }
    }

    fn t0() -> Instant {
        Instant::now()
    }

    #[test]
    fn whole_message_in_one_chunk() {
        let now = t0();
        let mut rx = Rx::new(Limits::default(), None);
        for br in [
            None,
            Some("1-25/25"),
            Some("1-*/25"),
            Some("1-25/*"),
            Some("1-*/*"),
        ] {
            let c = rx.send(now, "87652491", br, b"Hey Bob, are you there?\r\n", '$');
            assert_eq!(c.status, 200, "{br:?}");
            let m = c.message.as_ref().unwrap();
            assert_eq!(m.message_id, "mid-87652491");
            assert_eq!(m.content_type, "text/plain");
            assert_eq!(m.total(), 25);
            assert_eq!(Rx::body_of(&c), b"Hey Bob, are you there?\r\n");
            assert_eq!(
                c.range,
                Some(ByteRange {
                    start: 1,
                    end: Some(25),
                    total: br.and_then(|b| (!b.ends_with('*')).then_some(25))
                })
            );
            assert_eq!(rx.r.held(), 0);
            assert_eq!(rx.r.in_progress(), 0);
        }
        // Any split of the frame gives the same.
        let f = send("abcd1234", "m1", Some("1-5/5"), "", Some(b"hello"), '$');
        for step in [1, 2, 3, 7, 40] {
            rx.feed(now, &f, step);
            let c = rx.chunks.pop().unwrap();
            assert_eq!(Rx::body_of(&c), b"hello", "step {step}");
        }
        assert_eq!(rx.r.counters().completed, 10);
    }

    #[test]
    fn out_of_order_with_star_ends_and_totals() {
        // RFC 4975 §5.1's example, second chunk first.
        let now = t0();
        let mut rx = Rx::new(Limits::default(), None);
        let c = rx.send(now, "4564dpWd", Some("5-8/8"), b"EFGH", '$');
        assert_eq!((c.status, c.message.is_none()), (200, true));
        assert_eq!(rx.r.held(), 4);
        let c = rx.send(now, "4564dpWd", Some("1-*/8"), b"abcd", '+');
        assert_eq!(Rx::body_of(&c), b"abcdEFGH");
        assert_eq!(rx.r.held(), 0);
        // `*` totals: the `$` chunk defines the total (§7.3.1); it may come first.
        let c = rx.send(now, "m2", Some("4-*/*"), b"defg", '$');
        assert!(c.message.is_none());
        let c = rx.send(now, "m2", Some("1-3/*"), b"abc", '+');
        assert_eq!(Rx::body_of(&c), b"abcdefg");
        // An interrupted chunk: shorter than its range-end, the rest resent.
        rx.send(now, "m3", Some("1-10/10"), b"0123", '+');
        let c = rx.send(now, "m3", Some("5-10/10"), b"456789", '$');
        assert_eq!(Rx::body_of(&c), b"0123456789");
        // Without any total until the last chunk, three pieces in a shuffled order.
        rx.send(now, "m4", Some("3-4/*"), b"cd", '+');
        rx.send(now, "m4", Some("5-6/*"), b"ef", '$');
        let c = rx.send(now, "m4", Some("1-2/*"), b"ab", '+');
        assert_eq!(Rx::body_of(&c), b"abcdef");
        assert_eq!((rx.r.held(), rx.r.in_progress()), (0, 0));
    }

    #[test]
    fn overlaps_and_repeats_last_received_wins() {
        let now = t0();
        let mut rx = Rx::new(Limits::default(), None);
        // §7.3.1's example: bytes 1-100, then 50-150 overwrite 50-100.
        let a = vec![b'a'; 100];
        let b = vec![b'b'; 101];
        rx.send(now, "ov", Some("1-100/200"), &a, '+');
        rx.send(now, "ov", Some("50-150/200"), &b, '+');
        assert_eq!(rx.r.held(), 150);
        // A chunk inside an older one, one across two, a repeat of the first.
        rx.send(now, "ov", Some("10-19/200"), &[b'c'; 10], '+');
        rx.send(now, "ov", Some("140-160/200"), &[b'd'; 21], '+');
        let c = rx.send(now, "ov", Some("151-200/200"), &[b'e'; 50], '$');
        let mut want = vec![b'a'; 49];
        want.extend(vec![b'b'; 101]);
        want[9..19].fill(b'c');
        want[139..150].fill(b'd');
        want.extend(vec![b'e'; 50]);
        assert_eq!(Rx::body_of(&c), want);
        // Repeats: the same chunk twice, then the whole again with other bytes.
        rx.send(now, "rp", Some("1-4/8"), b"abcd", '+');
        rx.send(now, "rp", Some("1-4/8"), b"abcd", '+');
        assert_eq!(rx.r.held(), 4);
        rx.send(now, "rp", Some("1-8/8"), b"ABCDEFGH", '+')
            .message
            .unwrap();
        assert_eq!(rx.r.held(), 0);
    }

    #[test]
    fn interleaved_messages_of_one_session() {
        let now = t0();
        let mut rx = Rx::new(Limits::default(), None);
        let mut done = Vec::new();
        for i in 0..4u8 {
            for m in ["x", "y", "z"] {
                let start = u64::from(i) * 3 + 1;
                let br = format!("{start}-{}/12", start + 2);
                let flag = if i == 3 { '$' } else { '+' };
                let body = [m.as_bytes()[0], b'0' + i, b'-'];
                if let Some(msg) = rx.send(now, m, Some(&br), &body, flag).message {
                    done.push((msg.message_id.clone(), msg.body.to_bytes()));
                }
                // A short whole message between the chunks.
                let c = rx.send(now, &format!("s{i}{m}"), None, b"hi", '$');
                assert_eq!(Rx::body_of(&c), b"hi");
            }
        }
        assert_eq!(done.len(), 3);
        for (id, body) in done {
            let c = id.as_bytes()[4];
            assert_eq!(
                &body[..],
                &[c, b'0', b'-', c, b'1', b'-', c, b'2', b'-', c, b'3', b'-']
            );
        }
        assert_eq!(rx.r.held(), 0);
    }

    #[test]
    fn abort_drops_the_message() {
        let now = t0();
        let mut rx = Rx::new(Limits::default(), None);
        rx.send(now, "ab", Some("1-4/*"), b"abcd", '+');
        rx.send(now, "ab", Some("9-12/*"), b"ijkl", '+');
        assert_eq!(rx.r.held(), 8);
        let c = rx.send(now, "ab", Some("5-8/*"), b"efgh", '#');
        assert_eq!(
            (c.status, c.aborted, c.message.is_none()),
            (200, true, true)
        );
        assert_eq!((rx.r.held(), rx.r.in_progress()), (0, 0));
        // A message aborted in its first chunk leaves nothing either.
        let c = rx.send(now, "ab2", Some("1-*/100"), b"abcd", '#');
        assert!(c.aborted && c.message.is_none());
        assert_eq!(
            (rx.r.held(), rx.r.in_progress(), rx.r.counters().aborted),
            (0, 0, 2)
        );
    }

    #[test]
    fn too_large_by_config_and_by_max_size() {
        let now = t0();
        let limits = Limits {
            max_message: 100,
            ..Limits::default()
        };
        for max_size in [None, Some(50)] {
            let mut rx = Rx::new(limits, max_size);
            let limit = rx.r.max_message();
            assert_eq!(limit, max_size.unwrap_or(100));
            // Declared total over the limit: refused at the head.
            let c = rx.send(
                now,
                "big",
                Some(&format!("1-10/{}", limit + 1)),
                &[b'x'; 10],
                '+',
            );
            assert_eq!(
                (c.status, c.refusal, c.refused_early),
                (413, Some(Refusal::TooLarge), true)
            );
            assert_eq!(rx.r.held(), 0);
            // Exactly the limit is fine.
            let body = vec![b'y'; limit as usize];
            let c = rx.send(now, "ok", Some(&format!("1-{limit}/{limit}")), &body, '$');
            assert_eq!(c.message.unwrap().total(), limit);
            // Grown past the limit with `*` totals: refused in the body, message dropped.
            rx.send(
                now,
                "grow",
                Some("1-*/*"),
                &vec![b'g'; limit as usize - 5],
                '+',
            );
            assert_eq!(rx.r.held(), limit - 5);
            let early = rx.early.len();
            let c = rx.send(
                now,
                "grow",
                Some(&format!("{}-*/*", limit - 4)),
                &[b'g'; 10],
                '+',
            );
            assert_eq!((c.status, c.refused_early), (413, true));
            assert_eq!(rx.early[early..], [Refusal::TooLarge]);
            assert_eq!((rx.r.held(), rx.r.in_progress()), (0, 0));
            // Later chunks of a refused message are refused at once.
            let c = rx.send(now, "grow", Some("1-2/*"), b"gg", '+');
            assert_eq!(c.status, 413);
            assert_eq!((rx.r.held(), rx.r.in_progress()), (0, 0));
            // A range starting past the limit.
            let c = rx.send(now, "far", Some(&format!("{}-*/*", limit + 2)), b"z", '+');
            assert_eq!(c.status, 413);
        }
    }

    #[test]
    fn bad_ranges_are_400_and_keep_the_message() {
        let now = t0();
        let mut rx = Rx::new(Limits::default(), None);
        rx.send(now, "m", Some("1-4/8"), b"abcd", '+');
        // Another total.
        let c = rx.send(now, "m", Some("5-8/9"), b"efgh", '$');
        assert_eq!((c.status, c.refusal), (400, Some(Refusal::BadRange)));
        // More body than the range-end allows.
        let c = rx.send(now, "m", Some("5-6/8"), b"efgh", '+');
        assert_eq!(c.status, 400);
        // Data past the total (range `*`), a `$` that ends short of the total.
        let c = rx.send(now, "m", Some("5-*/*"), b"efghi", '+');
        assert_eq!(c.status, 400);
        let c = rx.send(now, "m", Some("5-*/*"), b"ef", '$');
        assert_eq!(c.status, 400);
        assert_eq!(rx.r.held(), 4);
        let c = rx.send(now, "m", Some("5-8/8"), b"efgh", '$');
        assert_eq!(Rx::body_of(&c), b"abcdefgh");
        // A body with no Message-ID.
        let f = b"MSRP abcd1234 SEND\r\nTo-Path: msrp://b:1/s;tcp\r\nFrom-Path: msrp://a:2/t;tcp\r\nContent-Type: text/plain\r\n\r\nhi\r\n-------abcd1234$\r\n";
        rx.feed(now, f, f.len());
        assert_eq!(rx.chunks.pop().unwrap().refusal, Some(Refusal::NoMessageId));
        assert_eq!(rx.r.held(), 0);
    }

    #[test]
    fn bodiless_and_empty_sends_make_no_message() {
        let now = t0();
        let mut rx = Rx::new(Limits::default(), None);
        let f = send("abcd1234", "bind", Some("1-0/0"), "", None, '$');
        rx.feed(now, &f, f.len());
        let c = rx.chunks.pop().unwrap();
        assert_eq!((c.status, c.message.is_none(), c.range), (200, true, None));
        // No Message-ID on a bodiless SEND is fine too.
        let f = b"MSRP abcd1235 SEND\r\nTo-Path: msrp://b:1/s;tcp\r\nFrom-Path: msrp://a:2/t;tcp\r\n-------abcd1235$\r\n";
        rx.feed(now, f, 7);
        assert_eq!(rx.chunks.pop().unwrap().status, 200);
        let c = rx.send(now, "empty", Some("1-0/0"), b"", '$');
        assert_eq!((c.status, c.message.is_none()), (200, true));
        assert_eq!(
            (rx.r.held(), rx.r.in_progress(), rx.r.counters().empty),
            (0, 0, 3)
        );
    }

    #[test]
    fn idle_messages_time_out() {
        let now = t0();
        let idle = Duration::from_secs(30);
        let mut rx = Rx::new(
            Limits {
                idle_timeout: idle,
                ..Limits::default()
            },
            None,
        );
        assert_eq!(rx.r.poll_timeout(), None);
        rx.send(now, "a", Some("1-4/8"), b"abcd", '+');
        rx.send(
            now + Duration::from_secs(10),
            "b",
            Some("1-4/8"),
            b"abcd",
            '+',
        );
        assert_eq!(rx.r.poll_timeout(), Some(now + idle));
        assert_eq!(
            rx.r.handle_timeout(now + idle - Duration::from_millis(1)),
            0
        );
        assert_eq!(rx.r.handle_timeout(now + idle), 1);
        assert_eq!((rx.r.held(), rx.r.in_progress()), (4, 1));
        assert_eq!(
            rx.r.poll_timeout(),
            Some(now + Duration::from_secs(10) + idle)
        );
        // A chunk touching "b" restarts its clock; one in progress keeps it alive.
        let t = now + Duration::from_secs(35);
        let tid = rx.tid();
        let f = send(&tid, "b", Some("5-8/8"), "", Some(b"efgh"), '$');
        rx.feed(t, &f[..f.len() - 20], 1000);
        assert!(rx.r.in_chunk());
        assert_eq!(rx.r.poll_timeout(), None);
        assert_eq!(rx.r.handle_timeout(t + idle * 10), 0);
        rx.feed(t + idle * 10, &f[f.len() - 20..], 1000);
        assert_eq!(Rx::body_of(&rx.chunks.pop().unwrap()), b"abcdefgh");
        assert_eq!(
            (rx.r.held(), rx.r.in_progress(), rx.r.counters().timed_out),
            (0, 0, 1)
        );
        assert_eq!(rx.r.poll_timeout(), None);
    }

    #[test]
    fn held_and_in_progress_bounds() {
        let now = t0();
        let limits = Limits {
            max_held: 10,
            max_in_progress: 2,
            ..Limits::default()
        };
        let mut rx = Rx::new(limits, None);
        rx.send(now, "a", Some("1-4/*"), b"abcd", '+');
        rx.send(now, "b", Some("1-4/*"), b"abcd", '+');
        // A third message in progress: refused.
        let c = rx.send(now, "c", Some("1-1/*"), b"a", '+');
        assert_eq!((c.status, c.refusal), (413, Some(Refusal::InProgressBound)));
        // A whole message still passes (it is never kept between chunks).
        assert!(rx.send(now, "d", None, b"ab", '$').message.is_some());
        // Bytes held: 8 + 3 > 10.
        let c = rx.send(now, "a", Some("5-7/*"), b"efg", '+');
        assert_eq!((c.status, c.refusal), (413, Some(Refusal::HeldBound)));
        assert_eq!((rx.r.held(), rx.r.in_progress()), (4, 1));
        let c = rx.r.counters();
        assert_eq!((c.in_progress_bound, c.held_bound), (1, 1));
    }

    #[test]
    fn abandoned_chunk_keeps_what_arrived() {
        let now = t0();
        let mut rx = Rx::new(Limits::default(), None);
        rx.send(now, "m", Some("7-8/8"), b"gh", '$');
        // The head and body of a chunk, then its connection closes.
        let raw = send("abcd1234", "m", Some("1-6/8"), "", Some(b"abcdef"), '+');
        let mut sc = Scanner::default();
        let mut buf = BytesMut::from(&raw[..]);
        let Some(Event::Head(h)) = sc.next(&mut buf).unwrap() else {
            panic!("a head")
        };
        let head = h.parse().unwrap();
        rx.r.begin(now, &head, true);
        rx.r.body(Bytes::from_static(b"abc"));
        rx.r.body(Bytes::from_static(b"def"));
        assert!(rx.r.in_chunk());
        assert_eq!(rx.r.held(), 2 + 6);
        let m =
            rx.r.abandon(now)
                .expect("the abandoned chunk completed the message");
        assert_eq!(&m.body.to_bytes()[..], b"abcdefgh");
        assert_eq!(
            (rx.r.held(), rx.r.in_progress(), rx.r.in_chunk()),
            (0, 0, false)
        );
        // A begin while a chunk is in progress abandons it.
        let mut r = Reassembler::new(Limits::default(), None);
        r.begin(now, &head, true);
        r.body(Bytes::from_static(b"ab"));
        r.begin(now, &head, true);
        assert_eq!(
            (r.held(), r.in_progress(), r.counters().abandoned_chunks),
            (2, 1, 1)
        );
        assert_eq!(r.clear(), 2);
    }

    /// 10 MiB in chunks of 1 KiB to 4 MiB, sent in a random order through one scanner
    /// in 64 KiB reads, with a short whole message after each chunk: byte-exact, every
    /// short message delivered, nothing held afterwards.
    #[test]
    fn ten_mib_in_random_chunks_byte_exact() {
        let now = t0();
        let mut rng = StdRng::seed_from_u64(16);
        let total: usize = 10 * 1024 * 1024;
        let mut big = vec![0u8; total];
        rng.fill(&mut big[..]);
        let mut cuts = Vec::new();
        let mut at = 0;
        while at < total {
            let n = rng.random_range(1024..=4 * 1024 * 1024).min(total - at);
            cuts.push((at, n));
            at += n;
        }
        cuts.shuffle(&mut rng);
        let limits = Limits {
            max_message: total as u64,
            max_held: total as u64 + 4096,
            ..Limits::default()
        };
        let mut rx = Rx::new(limits, None);
        let mut stream = Vec::new();
        for (i, &(at, n)) in cuts.iter().enumerate() {
            let tid = rx.tid();
            let end = at + n;
            let star = rng.random_bool(0.5);
            let br = match (star, rng.random_bool(0.5)) {
                (true, true) => format!("{}-*/{total}", at + 1),
                (true, false) => format!("{}-*/*", at + 1),
                (false, _) => format!("{}-{end}/{total}", at + 1),
            };
            let flag = if end == total { '$' } else { '+' };
            stream.extend(send(&tid, "big", Some(&br), "", Some(&big[at..end]), flag));
            let tid = rx.tid();
            stream.extend(send(
                &tid,
                &format!("short{i}"),
                None,
                "",
                Some(format!("short {i}").as_bytes()),
                '$',
            ));
        }
        rx.feed(now, &stream, 64 * 1024);
        assert!(rx.early.is_empty());
        let mut bigs = 0;
        let mut shorts = 0;
        for c in &rx.chunks {
            assert_eq!(c.status, 200);
            if let Some(m) = &c.message {
                if m.message_id == "mid-big" {
                    bigs += 1;
                    assert_eq!(m.total(), total as u64);
                    assert!(m.body.to_bytes() == big[..], "10 MiB body differs");
                } else {
                    assert_eq!(m.body.to_bytes(), format!("short {shorts}").as_bytes());
                    shorts += 1;
                }
            }
        }
        assert_eq!((bigs, shorts), (1, cuts.len()));
        assert_eq!((rx.r.held(), rx.r.in_progress()), (0, 0));
    }

    #[test]
    fn pieces_are_not_copied_and_forget_frees() {
        let now = t0();
        let mut rx = Rx::new(Limits::default(), None);
        // Fed through the scanner: each piece of the body shares the read buffer.
        rx.send(now, "zc", Some("6-10/10"), b"fghij", '$');
        let m = rx
            .send(now, "zc", Some("1-5/10"), b"abcde", '+')
            .message
            .unwrap();
        assert_eq!(m.body.pieces().len(), 2);
        // Fed by hand: the body's pieces are the very `Bytes` given.
        let mut r = Reassembler::new(Limits::default(), None);
        let raw = send("abcd1234", "zc2", Some("1-6/6"), "", Some(b"abcdef"), '$');
        let mut sc = Scanner::default();
        let mut buf = BytesMut::from(&raw[..]);
        let Some(Event::Head(h)) = sc.next(&mut buf).unwrap() else {
            panic!("a head")
        };
        let head = h.parse().unwrap();
        let given = Bytes::from_static(b"abcdef");
        r.begin(now, &head, true);
        r.body(given.slice(..2));
        r.body(given.slice(2..));
        let m = r.end(now, Flag::Complete).unwrap().message.unwrap();
        let ptrs: Vec<_> = m.body.pieces().iter().map(|p| p.as_ptr()).collect();
        assert_eq!(ptrs, [given.as_ptr(), given[2..].as_ptr()]);
        // forget() drops a message in progress and what it held.
        rx.send(now, "fg", Some("1-3/9"), b"abc", '+');
        assert_eq!(rx.r.held(), 3);
        assert!(rx.r.forget("mid-fg"));
        assert!(!rx.r.forget("mid-fg"));
        assert_eq!((rx.r.held(), rx.r.in_progress()), (0, 0));
    }

    #[test]
    fn render_text_or_base64() {
        let ct = |s: &'static str| ContentType::parse(s.as_bytes()).unwrap();
        assert_eq!(
            render(&ct("text/plain"), "héllo".as_bytes()),
            Rendered::Text("héllo".into())
        );
        assert_eq!(
            render(&ct("text/plain; charset=\"UTF-8\""), b"a"),
            Rendered::Text("a".into())
        );
        assert_eq!(
            render(&ct("text/plain;charset=iso-8859-1"), b"a"),
            Rendered::Base64("YQ==".into())
        );
        assert_eq!(
            render(&ct("text/plain"), &[0xff]),
            Rendered::Base64("/w==".into())
        );
        assert_eq!(
            render(&ct("image/png"), b"a"),
            Rendered::Base64("YQ==".into())
        );
    }
}

mod report {
    use bytes::BytesMut;
    use msrpd::codec::{ByteRange, Event, FailureReport, Head, Scanner};
    use msrpd::ua::reassembly::{Chunk, Limits, Reassembler};
    use msrpd::ua::report::*;
    use std::time::Instant;

    const BODY: &[u8] = b"<html><body>\r\n<p>Here is that important link...\r\n<a href=\"http://www.example.com/foobar\">foobar</a>\r\n</p>\r\n</body></html>";

    /// RFC 4975 §11.6's SEND (its Byte-Range made to match the body) through a scanner
    /// and a reassembler; the head bytes and the chunk.
    fn receive(from_path: &str, reports: &str) -> (Vec<u8>, Chunk) {
        let mut f = format!(
            "MSRP d93kswow SEND\r\nTo-Path: msrp://bob.example.com:8888/9di4eae923wzd;tcp\r\nFrom-Path: {from_path}\r\nMessage-ID: 12339sdqwer\r\nByte-Range: 1-121/121\r\n{reports}Content-Type: text/html\r\n\r\n"
        )
        .into_bytes();
        f.extend_from_slice(BODY);
        f.extend_from_slice(b"\r\n-------d93kswow$\r\n");
        let mut sc = Scanner::default();
        let mut buf = BytesMut::from(&f[..]);
        let mut r = Reassembler::new(Limits::default(), None);
        let mut head = Vec::new();
        let now = Instant::now();
        while let Some(ev) = sc.next(&mut buf).unwrap() {
            match ev {
                Event::Head(h) => {
                    head = h.as_bytes().to_vec();
                    r.begin(now, &h.parse().unwrap(), h.has_body());
                }
                Event::Body(b) => {
                    r.body(b);
                }
                Event::End(flag) => return (head, r.end(now, flag).unwrap()),
            }
        }
        panic!("no end-line")
    }

    /// Scans `bytes` as one frame: its head, and that nothing else is there.
    fn scan_one(bytes: &[u8]) -> Vec<u8> {
        let mut sc = Scanner::default();
        let mut buf = BytesMut::from(bytes);
        let Some(Event::Head(h)) = sc.next(&mut buf).unwrap() else {
            panic!("no head")
        };
        assert!(!h.has_body());
        assert_eq!(
            sc.next(&mut buf).unwrap(),
            Some(Event::End(msrpd::codec::Flag::Complete))
        );
        assert!(sc.is_idle(&buf));
        h.as_bytes().to_vec()
    }

    #[test]
    fn success_report_as_in_rfc_4975_11_6() {
        let alice = "msrp://alicepc.example.com:7777/iau39soe2843z;tcp";
        let bob = "msrp://bob.example.com:8888/9di4eae923wzd;tcp";
        let (_, chunk) = receive(alice, "Success-Report: yes\r\nFailure-Report: no\r\n");
        let m = chunk.message.as_ref().unwrap();
        assert_eq!(&m.body.to_bytes()[..], BODY);
        let p = plan(&chunk, 200);
        // Failure-Report: no, so no response (§7.1.4); one success REPORT (§7.1.3).
        assert_eq!(p.response, None);
        let report = p.report.unwrap();
        assert_eq!(
            report,
            Report {
                code: 200,
                range: whole(121)
            }
        );
        let mut out = BytesMut::new();
        write_report(&mut out, "dkei38sd", alice, bob, &m.message_id, &report);
        let want = format!(
            "MSRP dkei38sd REPORT\r\nTo-Path: {alice}\r\nFrom-Path: {bob}\r\nMessage-ID: 12339sdqwer\r\nByte-Range: 1-121/121\r\nStatus: 000 200 OK\r\n-------dkei38sd$\r\n"
        );
        assert_eq!(String::from_utf8_lossy(&out), want);
        // Read back with the crate's own scanner and head parser.
        let head = scan_one(&out);
        let h = Head::parse(&head).unwrap();
        assert_eq!(h.method(), Some(msrpd::codec::Method::Report));
        assert_eq!(h.to_path().as_str(), alice);
        assert_eq!(h.from_path().as_str(), bob);
        assert_eq!(h.message_id(), Some("12339sdqwer"));
        assert_eq!(h.byte_range(), Some(whole(121)));
        let st = h.status().unwrap();
        assert_eq!((st.namespace, st.code, st.comment), (0, 200, Some("OK")));
        assert!(!h.has_report_headers());
    }

    #[test]
    fn through_a_relay_report_and_response_paths() {
        // From-Path as received through a relay: previous hop first (RFC 4976 §6.4).
        let from = "msrp://relay.example.net:2855/aXk3;tcp msrp://alicepc.example.com:7777/iau39soe2843z;tcp";
        let bob = "msrp://bob.example.com:8888/9di4eae923wzd;tcp";
        let (head, chunk) = receive(from, "Success-Report: yes\r\n");
        let send = Head::parse(&head).unwrap();
        let p = plan(&chunk, 200);
        assert_eq!(p.response, Some(200));
        // The response goes to the previous hop only (§7.2).
        let mut out = BytesMut::new();
        write_response(&mut out, &send, 200, bob);
        assert_eq!(
            String::from_utf8_lossy(&out),
            format!(
                "MSRP d93kswow 200 OK\r\nTo-Path: msrp://relay.example.net:2855/aXk3;tcp\r\nFrom-Path: {bob}\r\n-------d93kswow$\r\n"
            )
        );
        scan_one(&out);
        // The REPORT goes the whole way back: the From-Path as it came (§7.1.3).
        let mut out = BytesMut::new();
        write_report(
            &mut out,
            "abcd9876",
            send.from_path().as_str(),
            bob,
            "12339sdqwer",
            &p.report.unwrap(),
        );
        let head = scan_one(&out);
        assert_eq!(Head::parse(&head).unwrap().to_path().as_str(), from);
        // A 415 decided by the engine: answered, no success REPORT.
        assert_eq!(
            plan(&chunk, 415),
            Plan {
                response: Some(415),
                report: None
            }
        );
    }

    #[test]
    fn responses_and_failure_reports_by_failure_report() {
        use FailureReport as F;
        assert!(responds(F::Yes, 200) && responds(F::Yes, 413));
        assert!(!responds(F::Partial, 200) && responds(F::Partial, 415));
        assert!(!responds(F::No, 200) && !responds(F::No, 400));
        let (_, partial) = receive(
            "msrp://a.example.com:1/x;tcp",
            "Failure-Report: partial\r\n",
        );
        assert_eq!(
            plan(&partial, 200),
            Plan {
                response: None,
                report: None
            }
        );
        assert_eq!(plan(&partial, 413).response, Some(413));
        let range = partial.range.unwrap();
        assert_eq!(range, whole(121));
        assert_eq!(
            late_failure(F::Partial, 415, range),
            Some(Report { code: 415, range })
        );
        assert_eq!(late_failure(F::Yes, 408, range).unwrap().code, 408);
        assert_eq!(late_failure(F::No, 415, range), None);
        assert_eq!(late_failure(F::Yes, 200, range), None);
        // A failure REPORT's bytes: range end from the body, total as the SEND said.
        let mut out = BytesMut::new();
        let r = Report {
            code: 413,
            range: ByteRange {
                start: 5,
                end: Some(9),
                total: None,
            },
        };
        write_report(
            &mut out,
            "abcd9876",
            "msrp://a.example.com:1/x;tcp",
            "msrp://b.example.com:2/y;tcp",
            "m123",
            &r,
        );
        assert_eq!(
            &out[..],
            b"MSRP abcd9876 REPORT\r\nTo-Path: msrp://a.example.com:1/x;tcp\r\nFrom-Path: msrp://b.example.com:2/y;tcp\r\nMessage-ID: m123\r\nByte-Range: 5-9/*\r\nStatus: 000 413 Message Too Large\r\n-------abcd9876$\r\n"
        );
        let head = scan_one(&out);
        assert_eq!(Head::parse(&head).unwrap().status().unwrap().code, 413);
    }
}

mod cpim {
    use bytes::Bytes;
    use msrpd::ua::cpim::*;

    #[test]
    fn rfc_4975_11_4_reassembled() {
        use msrpd::ua::reassembly::{Limits as RxLimits, Reassembler};
        let cpim = b"To: Bob <sip:bob@example.com>\r\nFrom: Alice <sip:alice@example.com>\r\nDateTime: 2006-05-15T15:02:31-03:00\r\n\r\nContent-Type: text/plain\r\n\r\nABCD1234567890";
        let n = cpim.len();
        let head = |tid: &str, br: String| {
            format!(
                "MSRP {tid} SEND\r\nTo-Path: msrp://bobpc.example.com:8888/9di4eae923wzd;tcp\r\nFrom-Path: msrp://alicepc.example.com:7654/iau39soe2843z;tcp\r\nMessage-ID: 12339sdqwer\r\nByte-Range: {br}\r\nContent-Type: message/cpim\r\n"
            )
        };
        let now = std::time::Instant::now();
        let mut r = Reassembler::new(RxLimits::default(), None);
        let h2 = head("op2nc9a", format!("{}-{n}/{n}", n - 9));
        r.begin(
            now,
            &msrpd::codec::Head::parse(h2.as_bytes()).unwrap(),
            true,
        );
        r.body(Bytes::copy_from_slice(&cpim[n - 10..]));
        assert!(
            r.end(now, msrpd::codec::Flag::Complete)
                .unwrap()
                .message
                .is_none()
        );
        let h1 = head("d93kswow", format!("1-{}/{n}", n - 10));
        r.begin(
            now,
            &msrpd::codec::Head::parse(h1.as_bytes()).unwrap(),
            true,
        );
        r.body(Bytes::copy_from_slice(&cpim[..n - 10]));
        let m = r
            .end(now, msrpd::codec::Flag::Continued)
            .unwrap()
            .message
            .unwrap();
        assert_eq!(m.content_type, "message/cpim");
        let whole = m.body.to_bytes();
        let c = parse(&whole, &Limits::default()).unwrap();
        assert_eq!(c.from(), Some("Alice <sip:alice@example.com>"));
        assert_eq!(
            name_addr(c.to().unwrap()),
            Some((Some("Bob"), "sip:bob@example.com"))
        );
        assert_eq!(c.date_time(), Some("2006-05-15T15:02:31-03:00"));
        assert!(c.content_type.is("text", "plain"));
        assert_eq!(&c.body[..], b"ABCD1234567890");
    }
}
