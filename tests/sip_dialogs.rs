//! RFC 3261 §12 dialog rules: creation on both sides, route sets (Record-Route reversed
//! at the UAC), remote target and its refresh, CSeq in both directions, loose and strict
//! routing of in-dialog requests (§12.2.1.1, with the RFC's own example), the 2xx ACK
//! (§13.2.2.4) and the §12.2.2 checks of requests we receive.

use bytes::Bytes;
use msrpd::sip::dialog::{Dialog, DialogError, DialogId, DialogState};
use msrpd::sip::{Message, Writer};

fn msg(s: &str) -> Message {
    Message::parse_own(Bytes::copy_from_slice(s.as_bytes())).unwrap()
}

const INVITE: &str = "INVITE sip:bob@biloxi.com SIP/2.0\r\n\
Via: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK-0-1\r\n\
Max-Forwards: 70\r\n\
To: Bob <sip:bob@biloxi.com>\r\n\
From: Alice <sip:alice@atlanta.com>;tag=m0-a\r\n\
Call-ID: a84b4c76e66710\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:alice@pc33.atlanta.com>\r\n\
Record-Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\r\n\
Content-Length: 0\r\n\r\n";

fn ok_for_invite(contact: &str, rr: &str) -> Message {
    msg(&format!(
        "SIP/2.0 200 OK\r\n\
Via: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK-0-1\r\n\
To: Bob <sip:bob@biloxi.com>;tag=b7\r\n\
From: Alice <sip:alice@atlanta.com>;tag=m0-a\r\n\
Call-ID: a84b4c76e66710\r\n\
CSeq: 314159 INVITE\r\n\
{contact}{rr}Content-Length: 0\r\n\r\n"
    ))
}

fn text(w: Writer) -> String {
    String::from_utf8(w.finish().to_vec()).unwrap()
}

#[test]
fn uac_dialog_from_2xx_route_set_reversed_and_loose_routing() {
    let req = msg(INVITE);
    let resp = ok_for_invite(
        "Contact: <sip:bob@192.0.2.4>\r\n",
        "Record-Route: <sip:p2.example.com;lr>\r\nRecord-Route: <sip:p1.example.com;lr>;x=1\r\n",
    );
    let mut d = Dialog::uac(&req, &resp, false).unwrap();
    assert_eq!(
        d.id,
        DialogId {
            call_id: "a84b4c76e66710".into(),
            local_tag: "m0-a".into(),
            remote_tag: "b7".into(),
        }
    );
    assert_eq!(DialogId::of_response(&resp), Some(d.id.clone()));
    assert_eq!(d.state, DialogState::Confirmed);
    assert_eq!((d.local_seq, d.remote_seq), (Some(314159), None));
    assert_eq!(d.remote_target, "sip:bob@192.0.2.4");
    assert_eq!(
        d.route_set,
        ["<sip:p1.example.com;lr>;x=1", "<sip:p2.example.com;lr>"]
    );
    assert!(!d.secure);
    let (w, hop) = d.request("BYE", "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-0-2", 1);
    assert_eq!(hop, "sip:p1.example.com;lr");
    assert_eq!(
        text(w),
        "BYE sip:bob@192.0.2.4 SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-0-2\r\n\
Max-Forwards: 70\r\n\
Route: <sip:p1.example.com;lr>;x=1\r\n\
Route: <sip:p2.example.com;lr>\r\n\
From: \"Alice\" <sip:alice@atlanta.com>;tag=m0-a\r\n\
To: \"Bob\" <sip:bob@biloxi.com>;tag=b7\r\n\
Call-ID: a84b4c76e66710\r\n\
CSeq: 314160 BYE\r\n\
Content-Length: 0\r\n\r\n"
    );
    assert_eq!(d.local_seq, Some(314160));
    // The 2xx ACK keeps the INVITE's number and does not move the local sequence.
    let (ack, hop) = d.ack(314159, "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-0-3");
    let ack = Message::parse_own(ack.finish()).unwrap();
    ack.check().unwrap();
    assert_eq!(
        (ack.cseq().unwrap().seq, ack.cseq().unwrap().method_str),
        (314159, "ACK")
    );
    assert_eq!(ack.request_uri(), "sip:bob@192.0.2.4");
    assert_eq!(hop, "sip:p1.example.com;lr");
    assert_eq!(d.local_seq, Some(314160));
}

#[test]
fn strict_routing_example_of_section_12_2_1_1() {
    let req = msg(INVITE);
    // Record-Route as received by the UAC: reversed, it gives the RFC's route set
    // <sip:proxy1>,<sip:proxy2>,<sip:proxy3;lr>,<sip:proxy4>.
    let resp = ok_for_invite(
        "Contact: <sip:user@remoteua>\r\n",
        "Record-Route: <sip:proxy4>, <sip:proxy3;lr>, <sip:proxy2>, <sip:proxy1>\r\n",
    );
    let mut d = Dialog::uac(&req, &resp, false).unwrap();
    assert_eq!(
        d.route_set,
        [
            "<sip:proxy1>",
            "<sip:proxy2>",
            "<sip:proxy3;lr>",
            "<sip:proxy4>"
        ]
    );
    let (w, hop) = d.request("INFO", "SIP/2.0/UDP h;branch=z9hG4bK-0-4", 1);
    let m = Message::parse_own(w.finish()).unwrap();
    assert_eq!(m.request_uri(), "sip:proxy1");
    assert_eq!(
        m.values(msrpd::sip::HeaderName::Route).collect::<Vec<_>>(),
        [
            "<sip:proxy2>",
            "<sip:proxy3;lr>",
            "<sip:proxy4>",
            "<sip:user@remoteua>"
        ]
    );
    assert_eq!(hop, "sip:proxy1");
    // Headers of a strict route do not go into the Request-URI.
    d.route_set = vec!["<sip:proxy1?x=y>".into()];
    assert_eq!(d.routing().0, "sip:proxy1");
    // No route set: the remote target, no Route.
    d.route_set.clear();
    let (ruri, routes, hop) = d.routing();
    assert_eq!(
        (ruri.as_str(), routes.len(), hop.as_str()),
        ("sip:user@remoteua", 0, "sip:user@remoteua")
    );
}

#[test]
fn uas_dialog_route_set_in_order_and_cseq_checks() {
    let req = msg(INVITE);
    let mut d = Dialog::uas(&req, 200, "m3-x", false).unwrap();
    assert_eq!(d.id.local_tag, "m3-x");
    assert_eq!(d.id.remote_tag, "m0-a");
    assert_eq!(
        d.route_set,
        ["<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"]
    );
    assert_eq!(d.remote_target, "sip:alice@pc33.atlanta.com");
    assert_eq!((d.local_seq, d.remote_seq), (None, Some(314159)));
    assert_eq!(d.local, "\"Bob\" <sip:bob@biloxi.com>");
    let in_dialog = |method: &str, seq: u32, contact: &str| {
        msg(&format!(
            "{method} sip:bob@192.0.2.4 SIP/2.0\r\n\
Via: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK{seq}{method}\r\n\
To: Bob <sip:bob@biloxi.com>;tag=m3-x\r\n\
From: Alice <sip:alice@atlanta.com>;tag=m0-a\r\n\
Call-ID: a84b4c76e66710\r\n\
CSeq: {seq} {method}\r\n\
{contact}Content-Length: 0\r\n\r\n"
        ))
    };
    assert_eq!(
        DialogId::of_incoming_request(&in_dialog("BYE", 1, "")),
        Some(d.id.clone())
    );
    // ACK and CANCEL carry the INVITE's number: not checked, no change.
    assert_eq!(d.check_request(&in_dialog("ACK", 314159, "")), Ok(()));
    // Lower: 500 (§12.2.2).
    let e = d.check_request(&in_dialog("INFO", 314158, "")).unwrap_err();
    assert_eq!((e, e.status()), (DialogError::CSeqOutOfOrder, 500));
    assert_eq!(d.remote_seq, Some(314159));
    // Higher (gaps allowed on receipt): taken.
    assert_eq!(d.check_request(&in_dialog("INFO", 314170, "")), Ok(()));
    assert_eq!(d.remote_seq, Some(314170));
    assert_eq!(
        d.check_request(&in_dialog("INFO", 314169, "")),
        Err(DialogError::CSeqOutOfOrder)
    );
    // A re-INVITE with Contact refreshes the remote target; an INFO's Contact does not.
    d.check_request(&in_dialog(
        "INFO",
        314171,
        "Contact: <sip:alice@198.51.100.1>\r\n",
    ))
    .unwrap();
    assert_eq!(d.remote_target, "sip:alice@pc33.atlanta.com");
    d.check_request(&in_dialog(
        "INVITE",
        314172,
        "Contact: <sip:alice@198.51.100.1>\r\n",
    ))
    .unwrap();
    assert_eq!(d.remote_target, "sip:alice@198.51.100.1");
    // Another dialog's request: 481.
    let other = msg(&INVITE
        .replace("Call-ID: a84b4c76e66710", "Call-ID: zzz")
        .replace(
            "To: Bob <sip:bob@biloxi.com>",
            "To: <sip:bob@biloxi.com>;tag=m3-x",
        ));
    let e = d.check_request(&other).unwrap_err();
    assert_eq!((e, e.status()), (DialogError::OtherDialog, 481));
    // Our first request in the dialog starts at the initial value, then counts up.
    let (w, _) = d.request("BYE", "SIP/2.0/UDP h;branch=z9hG4bK-3-1", 42);
    let bye = Message::parse_own(w.finish()).unwrap();
    assert_eq!(bye.cseq().unwrap().seq, 42);
    assert_eq!(bye.to_tag(), Some("m0-a"));
    assert_eq!(bye.from_tag(), Some("m3-x"));
    assert_eq!(bye.request_uri(), "sip:alice@198.51.100.1");
    assert_eq!(
        d.request("INFO", "SIP/2.0/UDP h;branch=z9hG4bK-3-2", 42)
            .0
            .into_message()
            .unwrap()
            .cseq()
            .unwrap()
            .seq,
        43
    );
}

#[test]
fn early_dialog_confirmed_by_2xx_recomputes_route_set() {
    let req = msg(INVITE);
    let ringing = msg(&String::from_utf8(
        ok_for_invite("", "Record-Route: <sip:early;lr>\r\n")
            .raw()
            .to_vec(),
    )
    .unwrap()
    .replace("200 OK", "180 Ringing"));
    let mut d = Dialog::uac(&req, &ringing, false).unwrap();
    assert_eq!(d.state, DialogState::Early);
    // A 1xx without Contact: the Request-URI until the 2xx brings one.
    assert_eq!(d.remote_target, "sip:bob@biloxi.com");
    assert_eq!(d.route_set, ["<sip:early;lr>"]);
    let ok = ok_for_invite(
        "Contact: <sip:bob@192.0.2.4>\r\n",
        "Record-Route: <sip:b;lr>, <sip:a;lr>\r\n",
    );
    d.update_uac(&ok).unwrap();
    assert_eq!(d.state, DialogState::Confirmed);
    assert_eq!(d.route_set, ["<sip:a;lr>", "<sip:b;lr>"]);
    assert_eq!(d.remote_target, "sip:bob@192.0.2.4");
    // A later 2xx (target refresh answer) changes the target, not the route set.
    d.update_uac(&ok_for_invite(
        "Contact: <sip:bob@192.0.2.5>\r\n",
        "Record-Route: <sip:c;lr>\r\n",
    ))
    .unwrap();
    assert_eq!(d.route_set, ["<sip:a;lr>", "<sip:b;lr>"]);
    assert_eq!(d.remote_target, "sip:bob@192.0.2.5");
    let forked = msg(&String::from_utf8(ok.raw().to_vec())
        .unwrap()
        .replace("tag=b7", "tag=b8"));
    assert_eq!(d.update_uac(&forked), Err(DialogError::OtherDialog));
}

#[test]
fn what_does_not_make_a_dialog() {
    let req = msg(INVITE);
    let no_tag = msg(&String::from_utf8(ok_for_invite("", "").raw().to_vec())
        .unwrap()
        .replace(";tag=b7", ""));
    assert_eq!(
        Dialog::uac(&req, &no_tag, false),
        Err(DialogError::NotDialogCreating)
    );
    let trying = msg(&String::from_utf8(ok_for_invite("", "").raw().to_vec())
        .unwrap()
        .replace("200 OK", "100 Trying"));
    assert_eq!(
        Dialog::uac(&req, &trying, false),
        Err(DialogError::NotDialogCreating)
    );
    let busy = msg(&String::from_utf8(ok_for_invite("", "").raw().to_vec())
        .unwrap()
        .replace("200 OK", "486 Busy"));
    assert_eq!(
        Dialog::uac(&req, &busy, false),
        Err(DialogError::NotDialogCreating)
    );
    assert_eq!(
        Dialog::uac(&req, &ok_for_invite("", ""), false),
        Err(DialogError::NoContact)
    );
    assert_eq!(
        Dialog::uas(&req, 486, "t", false),
        Err(DialogError::NotDialogCreating)
    );
    assert_eq!(
        Dialog::uas(&req, 200, "", false),
        Err(DialogError::NotDialogCreating)
    );
    let no_contact = msg(&INVITE.replace("Contact: <sip:alice@pc33.atlanta.com>\r\n", ""));
    assert_eq!(
        Dialog::uas(&no_contact, 200, "t", false),
        Err(DialogError::NoContact)
    );
}

#[test]
fn secure_flag() {
    let sips = msg(&INVITE.replace("INVITE sip:bob@biloxi.com", "INVITE sips:bob@biloxi.com"));
    let ok = ok_for_invite("Contact: <sips:bob@192.0.2.4>\r\n", "");
    assert!(Dialog::uac(&sips, &ok, true).unwrap().secure);
    assert!(!Dialog::uac(&sips, &ok, false).unwrap().secure);
    assert!(!Dialog::uac(&msg(INVITE), &ok, true).unwrap().secure);
    assert!(Dialog::uas(&sips, 200, "t", true).unwrap().secure);
}
