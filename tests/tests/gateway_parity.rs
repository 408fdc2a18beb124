//! Gateway features the Janus SIP plugin has, end to end with the
//! gateway's own page in headless Chromium:
//! - extra SIP headers on `sip.call`, `sip.accept`, `sip.decline` and
//!   `sip.hangup` (BYE and CANCEL), each checked by a SIPp scenario that
//!   fails without it, and
//!   refused headers answered with a clear error;
//! - `incomingHeaderPrefixes`: the chosen headers of SIPp's INVITE, 200 and
//!   BYE in the page's `incomingcall`, `accepted` and `hangup` events, and
//!   no others;
//! - two calls at once on one connection, each with its own audio (tones
//!   checked on both sides of both calls);
//! - MWI: a `message-summary` subscription (digest, refresh, unsubscribe)
//!   with SIPp as the notifier, and an unsolicited NOTIFY.

use e2e::admin::call_records;
use e2e::gateway::{Gateway, Softphone};
use e2e::process::test_dir;
use e2e::sipp::Sipp;
use serde_json::{json, Value};
use std::time::Duration;

const PAGE_TONE: u32 = 660;
const PREFIXES: [&str; 2] = ["X-", "P-Asserted"];

/// A page on a fresh gateway, registered as a guest that chose to see
/// `X-` and `P-Asserted...` headers, and `stats` events every second.
fn guest_page(dir: &std::path::Path) -> (Gateway, Softphone) {
    let records = format!("call_records.file={:?}", dir.join("calls.jsonl").to_string_lossy());
    let gw = Gateway::start(dir, None, &["--set", &records]).unwrap();
    let page = Softphone::start(dir, "softphone", &gw.url(), PAGE_TONE).unwrap();
    page.wait_ready().unwrap();
    let r = page
        .request(
            "sip.register",
            json!({
                "username": "sip:alice@127.0.0.1",
                "guest": true,
                "incomingHeaderPrefixes": PREFIXES,
                "statsIntervalMs": 1000,
            }),
        )
        .unwrap();
    assert_eq!(r["result"]["guest"], true, "{r}");
    page.wait_event("registered").unwrap();
    (gw, page)
}

fn uas(dir: &std::path::Path, scenario: &str, name: &str) -> e2e::sipp::SippRun {
    Sipp::new(scenario).limit(Duration::from_secs(40)).spawn(dir, name).unwrap()
}

/// Calls `target` from the page with extra `headers`; the new call's id.
fn dial(page: &Softphone, target: &str, headers: Value) -> String {
    let r = page.cmd("invoke", json!({ "fn": "dial", "args": [target, headers] })).unwrap();
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
    let call = dial(&page, &format!("sip:sipp@{}", sipp.addr()), json!({ "X-Call": "page-invite" }));
    let accepted = page.wait(|d| d["event"] == "accepted" || d["event"] == "hangup").unwrap();
    assert_eq!(accepted["event"], "accepted", "{accepted}\n{}", gw.log());
    let headers = &accepted["headers"];
    assert_eq!(headers["X-Answer"], "sipp-200", "{accepted}");
    assert!(headers["P-Asserted-Identity"].as_str().is_some_and(|v| v.contains("sip:sipp@")), "{accepted}");
    assert!(headers.get("Y-Hidden").is_none(), "a header the page did not choose: {accepted}");
    println!("accepted headers: {headers}");

    // Call quality: `stats` events every second, and sip.stats, with the
    // browser's tone arriving on its leg (`user`; SIPp sends no RTP).
    let received = |leg: &Value| {
        let reports = leg.as_array().cloned().unwrap_or_default();
        let inbound = reports.iter().find(|r| r["type"] == "inbound-rtp");
        inbound.and_then(|r| r["packetsReceived"].as_u64()).unwrap_or(0)
    };
    let event = page.wait(|d| d["event"] == "stats" && d["call"] == call.as_str() && received(&d["user"]) > 0).unwrap();
    println!("stats event: {event}");
    let types = |leg: &Value| leg.as_array().unwrap().iter().map(|r| r["type"].clone()).collect::<Vec<_>>();
    assert!(types(&event["peer"]).contains(&json!("outbound-rtp")), "{event}");
    let stats = page.request("sip.stats", json!({ "call": call })).unwrap();
    assert!(received(&stats["result"]["user"]) >= received(&event["user"]), "{stats}");
    let missing = page.request("sip.stats", json!({ "call": "nope" })).unwrap();
    assert_eq!(missing["error"]["code"], 2002, "{missing}");
    let e =
        refused(&page, "sip.register", json!({ "username": "sip:a@127.0.0.1", "guest": true, "statsIntervalMs": 10 }));
    assert!(e["message"].as_str().unwrap_or("").contains("at least 1000"), "{e}");

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
    // The record has the browser leg's quality (SIPp sent no RTP: the
    // SIP side's leg has none).
    let record = &call_records(&dir.join("calls.jsonl"), 1)[0];
    let webrtc = record["legs"].as_array().unwrap().iter().find(|l| l["kind"] == "webrtc").cloned();
    let quality = webrtc.map(|l| l["quality"].clone()).unwrap_or_default();
    assert!(quality["packets_received"].as_u64().unwrap_or(0) > 10, "{record}");
    assert!(quality["mos"].as_f64().unwrap_or(0.0) > 4.0, "{record}");

    // Ringing only, then cancelled with a header on the CANCEL.
    let mut sipp = uas(&dir, "uas_headers_cancel.xml", "sipp-cancel");
    dial(&page, &format!("sip:sipp@{}", sipp.addr()), Value::Null);
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

/// Each of the page's calls sends its own tone (an oscillator per
/// RTCPeerConnection, not the shared fake microphone) and keeps its own
/// received stream, so each call's audio can be checked on its own.
const TONED_CALLS: &str = r#"
window.tonedCalls = {};
window.dialWithTone = async (uri, freq) => {
  const ctx = new AudioContext();
  await ctx.resume();
  const osc = ctx.createOscillator();
  osc.frequency.value = freq;
  const gain = ctx.createGain();
  gain.gain.value = 0.3;
  const dest = ctx.createMediaStreamDestination();
  osc.connect(gain).connect(dest);
  osc.start();
  const pc = new RTCPeerConnection({ iceServers: [] });
  pc.addTrack(dest.stream.getAudioTracks()[0], dest.stream);
  const remote = new Promise((res) => { pc.ontrack = (e) => res(e.streams[0] || new MediaStream([e.track])); });
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise((res) => {
    if (pc.iceGatheringState === 'complete') res();
    pc.onicegatheringstatechange = () => { if (pc.iceGatheringState === 'complete') res(); };
  });
  const r = await window.softphone.request('sip.call', { uri, jsep: { type: 'offer', sdp: pc.localDescription.sdp } });
  if (r.error) return { error: r.error };
  await pc.setRemoteDescription(r.result.jsep);
  const stream = await remote;
  const audio = document.createElement('audio');
  audio.srcObject = stream; // an <audio> element pulls the receive path
  document.body.appendChild(audio);
  audio.play().catch(() => {});
  window.tonedCalls[r.result.call] = { pc, stream, ctx };
  return { call: r.result.call };
};
true
"#;

const BOB_TONES: [f64; 2] = [440.0, 1000.0];
const PAGE_TONES: [f64; 2] = [600.0, 1400.0];

fn share_line(pcm: &e2e::audio::Pcm, tones: &[f64]) -> String {
    tones.iter().map(|f| format!("{f} Hz {:.3}", pcm.tone_share(*f))).collect::<Vec<_>>().join(", ")
}

#[test]
fn two_calls_at_once_on_one_connection_each_with_its_own_audio() {
    use e2e::audio::{tone, write_wav};
    use e2e::baresip::{Baresip, BaresipAccount, BaresipOptions};
    let dir = test_dir("gateway_parity_two_calls");
    let bobs: Vec<Baresip> = BOB_TONES
        .iter()
        .enumerate()
        .map(|(i, freq)| {
            let own = dir.join(format!("bob{}", i + 1));
            std::fs::create_dir_all(&own).unwrap();
            let wav = own.join("tone.wav");
            write_wav(&wav, &tone(*freq, 60.0, 8000, 0.3)).unwrap();
            let account = BaresipAccount { auto_answer: true, ..BaresipAccount::direct("sip:bob@127.0.0.1", "") };
            let opts = BaresipOptions {
                accounts: vec![account],
                play: Some(wav),
                record: true,
                limit: Duration::from_secs(90),
            };
            Baresip::start(&own, &opts).unwrap()
        })
        .collect();
    let gw = Gateway::start(&dir, None, &["--max-calls-per-connection", "2"]).unwrap();
    let page = Softphone::start(&dir, "softphone", &gw.url(), PAGE_TONE).unwrap();
    page.wait_ready().unwrap();
    let r = page.request("sip.register", json!({ "username": "sip:alice@127.0.0.1", "guest": true })).unwrap();
    assert_eq!(r["result"]["guest"], true, "{r}");
    page.cmd("eval", json!({ "expr": TONED_CALLS })).unwrap();

    let mut calls = Vec::new();
    for (bob, freq) in bobs.iter().zip(PAGE_TONES) {
        let expr = format!("window.dialWithTone('sip:bob@127.0.0.1:{}', {freq})", bob.sip_port);
        let r = page.cmd("eval", json!({ "expr": expr })).unwrap();
        let call = r["value"]["call"].as_str().unwrap_or_else(|| panic!("{r}\n{}", gw.log())).to_string();
        page.wait(|d| d["event"] == "accepted" && d["call"] == call.as_str()).unwrap();
        calls.push(call);
    }
    // A third call is over the connection's limit.
    let r = page.cmd("eval", json!({ "expr": "window.dialWithTone('sip:carol@127.0.0.1:9', 800)" })).unwrap();
    assert_eq!(r["value"]["error"]["code"], 2004, "{r}");
    let listed = page.request("sip.calls", json!({})).unwrap();
    assert_eq!(listed["result"]["calls"].as_array().map(Vec::len), Some(2), "{listed}");

    // Both calls up at once: each of the page's streams carries its own bob's tone.
    std::thread::sleep(Duration::from_secs(2));
    for (i, call) in calls.iter().enumerate() {
        page.cmd(
            "eval",
            json!({ "expr": format!("window.softphone.remoteStream = window.tonedCalls['{call}'].stream; true") }),
        )
        .unwrap();
        let heard = page.record(2500, &dir.join(format!("page-heard-{call}.wav"))).unwrap();
        println!("page, call {call} (bob{}): {}, rms {:.4}", i + 1, share_line(&heard, &BOB_TONES), heard.rms());
        assert!(heard.tone_share(BOB_TONES[i]) > 0.5, "call {call} should carry {} Hz", BOB_TONES[i]);
        assert!(heard.tone_share(BOB_TONES[1 - i]) < 0.1, "call {call} must not carry the other call's tone");
    }
    for call in &calls {
        page.request("sip.hangup", json!({ "call": call })).unwrap();
        page.wait(|d| d["event"] == "hangup" && d["call"] == call.as_str()).unwrap();
    }
    // Each bob heard its own call's tone from the page, not the other's.
    for (i, bob) in bobs.iter().enumerate() {
        let heard = bob.heard().unwrap();
        let heard = heard.slice(1.0, heard.seconds());
        println!("bob{}: {}, rms {:.4}", i + 1, share_line(&heard, &PAGE_TONES), heard.rms());
        assert!(heard.tone_share(PAGE_TONES[i]) > 0.5, "bob{} should hear {} Hz", i + 1, PAGE_TONES[i]);
        assert!(heard.tone_share(PAGE_TONES[1 - i]) < 0.1, "bob{} must not hear the other call", i + 1);
    }
}

/// Waits until `n` events match `pred` (the page's events are kept from the start).
fn wait_count(page: &Softphone, n: usize, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
    let until = std::time::Instant::now() + timeout;
    loop {
        let seen: Vec<Value> = page.events().into_iter().filter(|e| pred(e)).collect();
        if seen.len() >= n {
            return seen;
        }
        assert!(std::time::Instant::now() < until, "{n} events expected, saw {seen:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn mwi_subscription_with_digest_refresh_and_unsolicited_notify() {
    let dir = test_dir("gateway_parity_mwi");
    let gw = Gateway::start(&dir, None, &[]).unwrap();
    let mut registrar = uas(&dir, "uas_registrar.xml", "registrar");
    let mut notifier = uas(&dir, "uas_notifier_mwi.xml", "notifier");
    let page = Softphone::start(&dir, "softphone", &gw.url(), PAGE_TONE).unwrap();
    page.wait_ready().unwrap();
    let r = page
        .request(
            "sip.register",
            json!({ "username": "sip:alice@127.0.0.1", "secret": "a-pw", "proxy": format!("sip:{}", registrar.addr()) }),
        )
        .unwrap();
    assert!(r["error"].is_null(), "{r}");
    page.wait_event("registered").unwrap();
    registrar.expect_success(Duration::from_secs(10)).unwrap();

    // SUBSCRIBE (challenged, answered with the account's secret), NOTIFY, refresh.
    let params = json!({
        "event": "message-summary",
        "accept": "application/simple-message-summary",
        "proxy": format!("sip:{}", notifier.addr()),
    });
    let r = page.request("sip.subscribe", params.clone()).unwrap();
    assert_eq!(r["result"], json!({}), "{r}\n{}", gw.log());
    let again = page.request("sip.subscribe", params).unwrap();
    assert_eq!(again["error"]["code"], -32602, "one subscription per package: {again}");
    let subscribed = page.wait(|d| d["event"] == "subscribed" || d["event"] == "subscription_failed").unwrap();
    assert_eq!(subscribed["event"], "subscribed", "{subscribed}\n{}", notifier.traces());
    assert_eq!(subscribed["expires"], 6, "{subscribed}");
    let n = page.wait(|d| d["event"] == "notify").unwrap();
    println!("notify: {n}");
    assert_eq!(n["package"], "message-summary", "{n}");
    assert_eq!(n["unsolicited"], false, "{n}");
    assert_eq!(n["contentType"], "application/simple-message-summary", "{n}");
    assert!(n["state"].as_str().unwrap_or("").starts_with("active"), "{n}");
    assert!(n["content"].as_str().unwrap_or("").contains("Messages-Waiting: yes"), "{n}");
    // The notifier granted 6 s: the refresh comes before they run out.
    let t0 = std::time::Instant::now();
    wait_count(&page, 2, Duration::from_secs(12), |d| d["event"] == "subscribed");
    println!("refreshed after {:.1} s", t0.elapsed().as_secs_f64());
    let r = page.request("sip.unsubscribe", json!({ "event": "message-summary" })).unwrap();
    assert_eq!(r["result"], json!({}), "{r}");
    page.wait_event("unsubscribed").unwrap();
    notifier.expect_success(Duration::from_secs(10)).unwrap();

    // A PBX's NOTIFY outside any subscription reaches the registered user.
    let mut pbx = Sipp::new("uac_unsolicited_mwi.xml")
        .remote(format!("127.0.0.1:{}", gw.sip_port))
        .args(["-s", "alice"])
        .limit(Duration::from_secs(20))
        .spawn(&dir, "sipp-pbx")
        .unwrap();
    let n = page.wait(|d| d["event"] == "notify" && d["unsolicited"] == true).unwrap();
    println!("unsolicited notify: {n}");
    assert!(n["content"].as_str().unwrap_or("").contains("Voice-Message: 3/0"), "{n}");
    pbx.expect_success(Duration::from_secs(10)).unwrap();
}
