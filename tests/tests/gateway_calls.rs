//! The browser gateway end to end: the softphone page the gateway serves,
//! in headless Chromium (fake microphone playing a tone), registers through
//! `sipbridge gateway` at Kamailio with digest auth and calls baresip
//! registered at the same Kamailio, and the other way round. Audio is
//! checked on both sides (Goertzel): the page's tone in baresip's
//! recording, baresip's tone in what the page heard.

use e2e::admin::call_records;
use e2e::audio::Pcm;
use e2e::gateway::{Gateway, Softphone};
use e2e::kamailio::{Kamailio, KamailioOptions};
use e2e::process::{test_dir, workspace_root};
use serde_json::json;
use std::path::Path;
use std::time::{Duration, Instant};

const PAGE_TONE: u32 = 660;
const BARESIP_TONE: f64 = 440.0;

/// In the page: asks the gateway for an offer (`sip.update` without JSEP),
/// answers it and sends the answer (`sip.update` with it).
const GATEWAY_OFFERS: &str = "(async () => {
    const phone = window.softphone, call = phone.call;
    const offered = await phone.request('sip.update', { call: call.id });
    if (offered.error) return offered;
    await call.pc.setRemoteDescription(offered.result.jsep);
    await call.pc.setLocalDescription(await call.pc.createAnswer());
    const answered = await phone.request('sip.update', { call: call.id, jsep: { type: 'answer', sdp: call.pc.localDescription.sdp } });
    return answered.error ? answered : { ok: true, offer: offered.result.jsep.sdp };
})()";

fn registered_page(dir: &Path, gw: &Gateway, k: &Kamailio) -> Softphone {
    let page = Softphone::start(dir, "softphone", &gw.url(), PAGE_TONE).unwrap();
    page.wait_ready().unwrap();
    page.register(&k.aor("alice"), "a-pw", &k.proxy_uri("udp")).unwrap();
    let ev = page.wait(|d| d["event"] == "registered" || d["event"] == "registration_failed").unwrap();
    assert_eq!(ev["event"], "registered", "{ev}\ngateway log:\n{}", gw.log());
    assert!(k.log().contains("AUTHZ Digest username=\"alice\""), "REGISTER was not digest-authenticated:\n{}", k.log());
    page
}

fn assert_hears(pcm: &Pcm, freq: f64, who: &str) {
    let share = pcm.tone_share(freq);
    assert!(share > 0.5, "{who} should hear {freq} Hz; share {share:.3}, rms {:.4}", pcm.rms());
}

#[test]
fn page_calls_baresip_audio_dtmf_hold_hangup() {
    page_calls_baresip("gateway_outgoing", &[]);
}

/// The same call with the browser on the lean WebRTC leg
/// (`media.webrtc_leg = "lean"`): audio, every DTMF path, recording, hold,
/// renegotiation and an ICE restart from the browser, an offer from the
/// gateway (`sip.update` without JSEP), and the call record's round trip
/// from the browser's reports, as on webrtcbin.
#[test]
fn lean_page_calls_baresip_audio_dtmf_hold_hangup() {
    page_calls_baresip("lean_gateway_outgoing", &["--set", "media.webrtc_leg=\"lean\""]);
}

fn page_calls_baresip(name: &str, gateway_args: &[&str]) {
    let dir = test_dir(name);
    let k =
        Kamailio::start(&dir, &KamailioOptions::new("example.test", &[("alice", "a-pw"), ("bob", "b-pw")])).unwrap();
    let mut bob = k.registered_baresip(&dir, ("bob", "b-pw"), true, BARESIP_TONE).unwrap();
    let records = format!("call_records.file={:?}", dir.join("calls.jsonl").to_string_lossy());
    let gw = Gateway::start(&dir, None, &[gateway_args, &["--set", &records]].concat()).unwrap();
    let page = registered_page(&dir, &gw, &k);

    // A MESSAGE outside any call, typed into the page.
    page.fill("#target", &k.aor("bob")).unwrap();
    page.fill("#msgtext", "hello from the page").unwrap();
    page.click("#msgsend").unwrap();
    // The page lists a message once the far end answered 2xx (baresip does).
    let until = Instant::now() + Duration::from_secs(5);
    while !page.cmd("text", json!({ "selector": "#msglist" })).unwrap()["text"]
        .as_str()
        .unwrap_or_default()
        .contains("hello from the page")
    {
        assert!(Instant::now() < until, "MESSAGE not accepted:\n{}", k.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(k.log().contains("REQ MESSAGE sip:bob@example.test"), "{}", k.log());

    // Dial from the UI.
    page.fill("#target", &k.aor("bob")).unwrap();
    page.click("#call").unwrap();
    let accepted = page.wait(|d| d["event"] == "accepted" || d["event"] == "hangup").unwrap();
    assert_eq!(accepted["event"], "accepted", "{accepted}\n{}", gw.log());
    let call = accepted["call"].as_str().unwrap().to_string();
    bob.wait_event("call", "CALL_ESTABLISHED", Duration::from_secs(5)).unwrap();
    page.wait(|d| d["event"] == "pcstate" && d["state"] == "connected").unwrap();
    let lean = gw.log().contains("lean WebRTC leg (str0m)");
    assert_eq!(lean, name.starts_with("lean_"), "the WebRTC leg is the one configured:\n{}", gw.log());

    // Audio both ways (skip the first second: jitter buffers filling).
    std::thread::sleep(Duration::from_millis(1500));
    let heard = page.record(3000, &dir.join("page-heard.wav")).unwrap();
    assert_hears(&heard.slice(0.5, 3.0), BARESIP_TONE, "the page");
    page.screenshot(&dir.join("softphone-in-call.png")).unwrap();
    // docs/softphone.png (the README's picture) is refreshed when missing
    // or asked for, so ordinary runs leave the tree alone.
    let docs_png = workspace_root().join("docs/softphone.png");
    if !docs_png.exists() || std::env::var_os("SIPBRIDGE_UPDATE_SCREENSHOT").is_some() {
        std::fs::copy(dir.join("softphone-in-call.png"), docs_png).unwrap();
    }

    // DTMF from the page's dial pad, RFC 4733 (default) and SIP INFO.
    page.click("#pad button:has-text('5')").unwrap();
    let d = bob.wait_event("call", "CALL_DTMF_START", Duration::from_secs(5)).unwrap();
    assert_eq!(d["param"], "5", "{d}");
    page.cmd("select", json!({ "selector": "#dtmfMethod", "value": "info" })).unwrap();
    page.click("#pad button:has-text('#')").unwrap();
    let d = bob.wait_event("call", "CALL_DTMF_START", Duration::from_secs(5)).unwrap();
    assert_eq!(d["param"], "#", "{d}");
    assert!(k.log().contains("REQ INFO"), "the second key went as SIP INFO:\n{}", k.log());

    // The browser's own RTCDTMFSender, relayed by the gateway as RFC 4733.
    page.cmd("select", json!({ "selector": "#dtmfMethod", "value": "browser" })).unwrap();
    page.click("#pad button:has-text('9')").unwrap();
    let d = bob.wait_event("call", "CALL_DTMF_START", Duration::from_secs(5)).unwrap();
    assert_eq!(d["param"], "9", "{d}");
    // DTMF from the SIP side becomes a dtmf event.
    bob.command("sndcode", "7").unwrap();
    let d = page.wait(|d| d["event"] == "dtmf").unwrap();
    assert_eq!(d["tone"], "7", "{d}");

    // Recording both directions of the call.
    let r = page.request("sip.recording", json!({ "call": call, "action": "start", "filename": "out-call" })).unwrap();
    assert_eq!(r["result"]["recording"], true, "{r}");
    page.wait(|d| d["event"] == "recordingupdated" && d["recording"] == true).unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    let r = page.request("sip.recording", json!({ "call": call, "action": "stop" })).unwrap();
    assert_eq!(r["result"]["recording"], false, "{r}");
    let peer = e2e::audio::read_wav(&gw.recordings.join("out-call-peer.wav")).unwrap();
    assert_hears(&peer.slice(0.3, peer.seconds()), BARESIP_TONE, "the peer-side recording");
    let user = e2e::audio::read_wav(&gw.recordings.join("out-call-user.wav")).unwrap();
    assert_hears(&user.slice(0.3, user.seconds()), PAGE_TONE as f64, "the user-side recording");
    let r = page.request("sip.recording", json!({ "call": call, "action": "start", "filename": "../escape" })).unwrap();
    assert_eq!(r["error"]["code"], -32602, "no paths in recording names: {r}");

    // Hold: baresip gets a re-INVITE offering sendonly and answers
    // recvonly; the page hears silence. Unhold: sendrecv again, audio back.
    let r = page.request("sip.hold", json!({ "call": call })).unwrap();
    assert_eq!(r["result"]["held"], true, "{r}\n{}", gw.log());
    assert_eq!(r["result"]["direction"], "sendonly", "{r}");
    assert_eq!(r["result"]["peerDirection"], "recvonly", "baresip's answer to our hold: {r}");
    bob.child.wait_for_log("got re-INVITE", Duration::from_secs(5)).unwrap();
    // Past the bridge's idle threshold (500 ms), when it starts sending
    // silence on the held leg (the encoder's last few ms of the call go out
    // at that moment).
    std::thread::sleep(Duration::from_millis(1000));
    let held = page.record(1500, &dir.join("page-held.wav")).unwrap();
    assert!(held.rms() < 0.01, "on hold the page must hear silence, rms {:.4}", held.rms());
    let r = page.request("sip.hold", json!({ "call": call })).unwrap();
    assert_eq!(r["error"]["code"], 2003, "hold twice is a wrong-state error: {r}");
    let r = page.request("sip.unhold", json!({ "call": call })).unwrap();
    assert_eq!(r["result"]["held"], false, "{r}");
    assert_eq!(r["result"]["peerDirection"], "sendrecv", "{r}");
    assert_eq!(bob.child.log().matches("got re-INVITE").count(), 2, "two re-INVITEs reached baresip");
    std::thread::sleep(Duration::from_millis(1000));
    let resumed = page.record(2000, &dir.join("page-resumed.wav")).unwrap();
    assert_hears(&resumed.slice(0.3, 2.0), BARESIP_TONE, "the page after unhold");

    // Renegotiation from the browser (sip.update with a fresh offer):
    // answered by the gateway, audio keeps flowing.
    let r = page.cmd("invoke", json!({ "fn": "renegotiate", "args": [false] })).unwrap();
    assert_eq!(r["value"]["ok"], true, "{r}");
    std::thread::sleep(Duration::from_millis(500));
    let after = page.record(1500, &dir.join("page-renegotiated.wav")).unwrap();
    assert_hears(&after.slice(0.2, 1.5), BARESIP_TONE, "the page after renegotiation");
    let r = page.cmd("invoke", json!({ "fn": "renegotiate", "args": [true] })).unwrap();
    assert_eq!(r["value"]["ok"], true, "ICE restart: {r}");
    std::thread::sleep(Duration::from_millis(1500));
    let after = page.record(1500, &dir.join("page-ice-restarted.wav")).unwrap();
    assert_hears(&after.slice(0.2, 1.5), BARESIP_TONE, "the page after an ICE restart");
    // The gateway offers (sip.update without JSEP) and the page answers
    // (sip.update with it): audio keeps flowing.
    let r = page.cmd("eval", json!({ "expr": GATEWAY_OFFERS })).unwrap();
    assert_eq!(r["value"]["ok"], true, "the gateway's re-offer: {r}\n{}", gw.log());
    std::thread::sleep(Duration::from_millis(500));
    let after = page.record(1500, &dir.join("page-gateway-offered.wav")).unwrap();
    assert_hears(&after.slice(0.2, 1.5), BARESIP_TONE, "the page after the gateway's re-offer");

    // Hang up from the page; baresip's recording holds the page's tone.
    page.click("#hangup").unwrap();
    let h = page.wait_event("hangup").unwrap();
    assert_eq!(h["by"], "local", "{h}");
    bob.wait_event("call", "CALL_CLOSED", Duration::from_secs(5)).unwrap();
    let heard = bob.heard_newest().unwrap();
    assert_hears(&heard.slice(1.5, heard.seconds().min(4.5)), PAGE_TONE as f64, "baresip");

    // The call record has the browser leg's quality, with the round trip
    // from the browser's receiver reports.
    let record = &call_records(&dir.join("calls.jsonl"), 1)[0];
    let webrtc = record["legs"].as_array().unwrap().iter().find(|l| l["kind"] == "webrtc").cloned();
    let quality = webrtc.map(|l| l["quality"].clone()).unwrap_or_default();
    assert!(quality["mos"].as_f64().unwrap_or(0.0) > 4.0, "{record}");
    let rtt = quality["round_trip_ms"].as_f64().unwrap_or_else(|| panic!("no round trip: {record}"));
    assert!(rtt > 0.0 && rtt < 100.0, "loopback: {record}");
}

#[test]
fn baresip_calls_page_accept_busy_decline_and_close() {
    baresip_calls_page("gateway_incoming", &[]);
}

/// The same with the page's calls on the lean WebRTC leg.
#[test]
fn lean_baresip_calls_page_accept_busy_decline_and_close() {
    baresip_calls_page("lean_gateway_incoming", &["--set", "media.webrtc_leg=\"lean\""]);
}

fn baresip_calls_page(name: &str, gateway_args: &[&str]) {
    let dir = test_dir(name);
    let k =
        Kamailio::start(&dir, &KamailioOptions::new("example.test", &[("alice", "a-pw"), ("bob", "b-pw")])).unwrap();
    let bob = k.registered_baresip(&dir, ("bob", "b-pw"), false, BARESIP_TONE).unwrap();
    let gw = Gateway::start(&dir, None, gateway_args).unwrap();
    let page = registered_page(&dir, &gw, &k);

    // baresip calls the page's account: incomingcall with the caller, the
    // page answers from the UI, audio both ways.
    bob.command("dial", &k.aor("alice")).unwrap();
    let inc = page.wait_event("incomingcall").unwrap();
    assert!(inc["caller"].as_str().unwrap_or_default().contains("bob@example.test"), "{inc}");
    assert_eq!(inc["jsep"]["type"], "offer", "{inc}");
    page.click("#answer").unwrap();
    page.wait_event("accepted").unwrap();
    bob.wait_event("call", "CALL_ESTABLISHED", Duration::from_secs(5)).unwrap();
    page.wait(|d| d["event"] == "pcstate" && d["state"] == "connected").unwrap();
    let lean = gw.log().contains("lean WebRTC leg (str0m)");
    assert_eq!(lean, name.starts_with("lean_"), "the WebRTC leg is the one configured:\n{}", gw.log());
    std::thread::sleep(Duration::from_millis(1500));
    let heard = page.record(2500, &dir.join("page-heard.wav")).unwrap();
    assert_hears(&heard.slice(0.5, 2.5), BARESIP_TONE, "the page");

    // A second call while busy: missed_call on the page, 486 for the caller.
    bob.command("dial", &k.aor("alice")).unwrap();
    let missed = page.wait_event("missed_call").unwrap();
    assert!(missed["caller"].as_str().unwrap_or_default().contains("bob@example.test"), "{missed}");
    let closed = bob.wait_event("call", "CALL_CLOSED", Duration::from_secs(5)).unwrap();
    assert!(closed.to_string().contains("486"), "the second caller gets 486: {closed}");

    // baresip hangs up: the page hears of it.
    std::thread::sleep(Duration::from_millis(500));
    bob.command("hangup", "").unwrap();
    let h = page.wait_event("hangup").unwrap();
    assert_eq!(h["by"], "remote", "{h}");
    bob.wait_event("call", "CALL_CLOSED", Duration::from_secs(5)).unwrap();
    let heard = bob.heard_newest().unwrap();
    assert_hears(&heard.slice(1.5, heard.seconds().min(3.5)), PAGE_TONE as f64, "baresip");

    // Declined from the UI: the caller gets 486.
    bob.command("dial", &k.aor("alice")).unwrap();
    let declined = page.wait(|d| d["event"] == "incomingcall" && d["call"] != inc["call"]).unwrap();
    page.click("#decline").unwrap();
    let closed = bob.wait_event("call", "CALL_CLOSED", Duration::from_secs(5)).unwrap();
    assert!(closed.to_string().contains("486"), "declined with 486: {closed}");

    // Closing the page (its WebSocket) hangs up its call and unregisters.
    bob.command("dial", &k.aor("alice")).unwrap();
    page.wait(|d| d["event"] == "incomingcall" && d["call"] != inc["call"] && d["call"] != declined["call"]).unwrap();
    page.click("#answer").unwrap();
    bob.wait_event("call", "CALL_ESTABLISHED", Duration::from_secs(5)).unwrap();
    let registers_before = k.log().matches("REQ REGISTER").count();
    drop(page);
    bob.wait_event("call", "CALL_CLOSED", Duration::from_secs(10)).unwrap();
    let until = Instant::now() + Duration::from_secs(5);
    while k.log().matches("REQ REGISTER").count() <= registers_before {
        assert!(Instant::now() < until, "no un-REGISTER after the page closed:\n{}", k.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(gw.log().contains("web user disconnected"));
}
