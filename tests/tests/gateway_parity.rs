//! Gateway features the Janus SIP plugin has, end to end with the
//! gateway's own page in headless Chromium:
//! - extra SIP headers on `sip.accept`, `sip.decline` and `sip.hangup` (BYE
//!   and CANCEL), each checked by a SIPp scenario that fails without it, and
//!   refused headers answered with a clear error;
//! - `incomingHeaderPrefixes`: the chosen headers of SIPp's INVITE, 200 and
//!   BYE in the page's `incomingcall`, `accepted` and `hangup` events, and
//!   no others.

use e2e::gateway::{Gateway, Softphone};
use e2e::process::test_dir;
use e2e::sipp::Sipp;
use serde_json::{json, Value};
use std::time::Duration;

const PAGE_TONE: u32 = 660;
const PREFIXES: [&str; 2] = ["X-", "P-Asserted"];

/// A page on a fresh gateway, registered as a guest that chose to see
/// `X-` and `P-Asserted...` headers.
fn guest_page(dir: &std::path::Path) -> (Gateway, Softphone) {
    let gw = Gateway::start(dir, None, &[]).unwrap();
    let page = Softphone::start(dir, "softphone", &gw.url(), PAGE_TONE).unwrap();
    page.wait_ready().unwrap();
    let r = page
        .request(
            "sip.register",
            json!({ "username": "sip:alice@127.0.0.1", "guest": true, "incomingHeaderPrefixes": PREFIXES }),
        )
        .unwrap();
    assert_eq!(r["result"]["guest"], true, "{r}");
    page.wait_event("registered").unwrap();
    (gw, page)
}

fn uas(dir: &std::path::Path, scenario: &str, name: &str) -> e2e::sipp::SippRun {
    Sipp::new(scenario).limit(Duration::from_secs(40)).spawn(dir, name).unwrap()
}

/// Calls `target` from the page; the new call's id.
fn dial(page: &Softphone, target: &str) -> String {
    let r = page.cmd("invoke", json!({ "fn": "dial", "args": [target] })).unwrap();
    r["value"]["call"].as_str().unwrap_or_else(|| panic!("no call id in {r}")).to_string()
}

fn refused(page: &Softphone, method: &str, params: Value) -> Value {
    let r = page.request(method, params.clone()).unwrap();
    assert!(r["result"].is_null(), "{method} {params} should be refused: {r}");
    assert_eq!(r["error"]["code"], -32602, "{r}");
    r["error"].clone()
}

#[test]
fn headers_of_sipp_200_and_our_bye_and_cancel() {
    let dir = test_dir("gateway_parity_outgoing_headers");
    let (gw, page) = guest_page(&dir);

    // Answered, then hung up with a header on the BYE.
    let mut sipp = uas(&dir, "uas_headers_answer_bye.xml", "sipp-answer");
    let call = dial(&page, &format!("sip:sipp@{}", sipp.addr()));
    let accepted = page.wait(|d| d["event"] == "accepted" || d["event"] == "hangup").unwrap();
    assert_eq!(accepted["event"], "accepted", "{accepted}\n{}", gw.log());
    let headers = &accepted["headers"];
    assert_eq!(headers["X-Answer"], "sipp-200", "{accepted}");
    assert!(headers["P-Asserted-Identity"].as_str().is_some_and(|v| v.contains("sip:sipp@")), "{accepted}");
    assert!(headers.get("Y-Hidden").is_none(), "a header the page did not choose: {accepted}");
    println!("accepted headers: {headers}");

    // What the user agent owns, and line breaks, are refused with a reason.
    for (name, value, why) in [
        ("Call-ID", "x", "writes it itself"),
        ("Via", "SIP/2.0/UDP 192.0.2.1", "writes it itself"),
        ("content-length", "0", "writes it itself"),
        ("X-Bad", "a\r\nVia: SIP/2.0/UDP 192.0.2.1", "line break"),
        ("X Bad", "a", "not a valid header name"),
    ] {
        let e = refused(&page, "sip.hangup", json!({ "call": call, "headers": { name: value } }));
        assert!(e["message"].as_str().unwrap_or("").contains(why), "{name}: {e}");
        println!("refused {name:?}: {}", e["message"]);
    }
    page.cmd("invoke", json!({ "fn": "hangup", "args": [{ "X-Hangup": "page-bye" }] })).unwrap();
    let h = page.wait_event("hangup").unwrap();
    assert_eq!(h["by"], "local", "{h}");
    sipp.expect_success(Duration::from_secs(10)).unwrap();

    // Ringing only, then cancelled with a header on the CANCEL.
    let mut sipp = uas(&dir, "uas_headers_cancel.xml", "sipp-cancel");
    dial(&page, &format!("sip:sipp@{}", sipp.addr()));
    page.wait(|d| d["event"] == "ringing").unwrap();
    page.cmd("invoke", json!({ "fn": "hangup", "args": [{ "X-Hangup": "page-cancel" }] })).unwrap();
    let h = page.wait(|d| d["event"] == "hangup" && d["code"] == 487).unwrap();
    assert_eq!(h["by"], "local", "{h}");
    sipp.expect_success(Duration::from_secs(10)).unwrap();
}

#[test]
fn headers_of_sipp_invite_and_bye_and_our_200_and_486() {
    let dir = test_dir("gateway_parity_incoming_headers");
    let gw = Gateway::start(&dir, None, &[]).unwrap();
    let mut registrar = uas(&dir, "uas_registrar.xml", "registrar");
    let page = Softphone::start(&dir, "softphone", &gw.url(), PAGE_TONE).unwrap();
    page.wait_ready().unwrap();
    let r = page
        .request(
            "sip.register",
            json!({
                "username": "sip:alice@127.0.0.1",
                "secret": "unused",
                "proxy": format!("sip:{}", registrar.addr()),
                "incomingHeaderPrefixes": PREFIXES,
            }),
        )
        .unwrap();
    assert!(r["error"].is_null(), "{r}");
    let ev = page.wait(|d| d["event"] == "registered" || d["event"] == "registration_failed").unwrap();
    assert_eq!(ev["event"], "registered", "{ev}\n{}", gw.log());
    registrar.expect_success(Duration::from_secs(10)).unwrap();
    let gateway_sip = format!("127.0.0.1:{}", gw.sip_port);

    // SIPp calls with headers, the page answers with one, SIPp hangs up with one.
    let mut caller = Sipp::new("uac_headers_answer_bye.xml")
        .remote(&gateway_sip)
        .args(["-s", "alice"])
        .limit(Duration::from_secs(40))
        .spawn(&dir, "sipp-caller")
        .unwrap();
    let inc = page.wait_event("incomingcall").unwrap();
    let headers = &inc["headers"];
    assert_eq!(headers["X-Caller"], "sipp-uac", "{inc}");
    assert!(headers["P-Asserted-Identity"].as_str().is_some_and(|v| v.contains("sip:boss@")), "{inc}");
    assert!(headers.get("Y-Hidden").is_none(), "{inc}");
    println!("incomingcall headers: {headers}");
    page.cmd("invoke", json!({ "fn": "answer", "args": [{ "X-Accept": "page-ok" }] })).unwrap();
    let h = page.wait_event("hangup").unwrap();
    assert_eq!(h["by"], "remote", "{h}");
    assert_eq!(h["headers"], json!({ "X-Bye": "sipp-bye" }), "{h}");
    println!("hangup headers: {}", h["headers"]);
    caller.expect_success(Duration::from_secs(10)).unwrap();

    // Declined with a header on the 486.
    let mut caller = Sipp::new("uac_headers_declined.xml")
        .remote(&gateway_sip)
        .args(["-s", "alice"])
        .limit(Duration::from_secs(40))
        .spawn(&dir, "sipp-declined")
        .unwrap();
    let inc = page.wait(|d| d["event"] == "incomingcall" && d["call"] != inc["call"]).unwrap();
    assert_eq!(inc["headers"], json!({}), "no chosen headers in this INVITE: {inc}");
    let e = refused(&page, "sip.decline", json!({ "call": inc["call"], "headers": { "To": "<sip:x@192.0.2.1>" } }));
    println!("refused To: {}", e["message"]);
    page.cmd("invoke", json!({ "fn": "decline", "args": [{ "X-Decline": "page-busy" }] })).unwrap();
    let h = page.wait(|d| d["event"] == "hangup" && d["call"] == inc["call"]).unwrap();
    assert_eq!(h["code"], 486, "{h}");
    caller.expect_success(Duration::from_secs(10)).unwrap();
}
