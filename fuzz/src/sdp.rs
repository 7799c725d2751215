//! The SDP codec and MSRP offer/answer (`msrpd::sdp`).

use msrpd::sdp::{self, Local, MsrpMedia, Sdp, SetupPref, accepts, answer_sdp, offer, take_answer};

/// One of eight local setups, from bits of `cfg`: TCP or TLS, passive or active
/// preference, CEMA or not.
fn local(cfg: u8) -> Local {
    let tls = cfg & 1 != 0;
    let path = if tls {
        "msrps://198.51.100.7:2856/s8d7f6g5;tcp"
    } else {
        "msrp://198.51.100.7:2855/s8d7f6g5;tcp"
    };
    let mut l = Local::new(path, "198.51.100.7", &["text/plain", "message/cpim", "image/*"]);
    l.accept_wrapped_types = vec!["*".into()];
    l.setup = if cfg & 2 != 0 { SetupPref::Active } else { SetupPref::Passive };
    l.cema = cfg & 4 != 0;
    if cfg & 8 != 0 {
        l.path.insert(0, "msrp://relay.example.net:2855/r1;tcp".into());
    }
    l
}

/// `cfg`, then an SDP. Parses it; every borrowed string lies in the input. Answers it
/// as an offer: never a 500 (our parameters are good), an error is 400 or 488; a
/// success parses again, has as many `m=` lines as the offer, exactly one with a
/// nonzero port (the accepted stream, at the session's index), and that stream is
/// usable MSRP with our path. Also reads it as the answer to our own offer, and runs
/// `accepts` over every accept-types value. Never panics.
pub fn sdp(data: &[u8]) {
    let Some((&cfg, input)) = data.split_first() else {
        return;
    };
    let local = local(cfg);
    if let Ok(o) = offer(&local) {
        let _ = take_answer(&o, input);
    }
    let Ok(parsed) = Sdp::parse(input) else {
        return;
    };
    let text = parsed.text.as_bytes();
    let within = |s: &str| {
        let (o, i) = (text.as_ptr() as usize, s.as_ptr() as usize);
        s.is_empty() || (i >= o && i + s.len() <= o + text.len())
    };
    for m in &parsed.media {
        assert!(within(m.media) && within(m.proto) && within(m.formats));
        for a in &m.attributes {
            assert!(within(a.name) && a.value.is_none_or(within));
            if a.name.starts_with("accept") {
                let list: Vec<&str> = a.value.unwrap_or_default().split(' ').collect();
                let _ = accepts(&list, "text/plain;charset=utf-8");
                let _ = accepts(&list, a.value.unwrap_or_default());
            }
        }
    }
    for i in 0..parsed.media.len() {
        let _ = MsrpMedia::from_sdp(&parsed, i).map(|mm| mm.address_matches_path());
    }
    match answer_sdp(&parsed, &local) {
        Err(e) => {
            assert!(matches!(e.status(), 400 | 488), "{e:?}");
            assert!(!e.reason().is_empty());
        }
        Ok(a) => {
            let back = Sdp::parse(&a.sdp).expect("our answer parses");
            assert_eq!(back.media.len(), parsed.media.len(), "RFC 3264 §6: same m= count");
            let open: Vec<usize> = (0..back.media.len())
                .filter(|&i| back.media.get(i).is_some_and(|m| m.port != 0))
                .collect();
            assert_eq!(open, [a.session.media_index]);
            let mm = MsrpMedia::from_sdp(&back, a.session.media_index).expect("usable");
            assert_eq!(mm.path_raw, local.path.join(" "));
            assert!(a.session.active == a.session.connect_to.is_some());
            let _ = a.session.may_send("text/plain", Some("text/html"));
            let _: sdp::Direction = a.session.direction;
        }
    }
}
