//! Call transfer with sipbridge as the transferee (RFC 3515), the echo
//! preset answering: a REFER from the caller makes sipbridge call the
//! Refer-To target with the caller's Referred-By, report the progress by
//! NOTIFY message/sipfrag, move the echo to the new call and BYE the
//! caller. baresip and linphonec each blind-transfer their call to a third
//! baresip, which hears its own tone echoed while the transferring phone is
//! released; SIPp
//! scenarios check the NOTIFYs of an accepted REFER (the target's audio is
//! echoed), an attended one (the Refer-To's Replaces passed on to the
//! target), a REFER refused by `transfer.policy = "reject"` or by the
//! `transfer_policy = "reject"` of the account it came through, routed by
//! Kamailio, while the service accepts (603, the call goes on) and a busy target (NOTIFY 486, the original call kept with its
//! audio echoed). An INVITE with Replaces (RFC 3891) from the test's own
//! user agent takes over a SIPp call: SIPp gets a BYE and the newcomer's
//! tone is echoed.
//!
//! As the transferor, the gateway's page (headless Chromium) sends
//! `sip.transfer`: it blind-transfers a baresip caller (through Kamailio)
//! to a third baresip, which hears the caller's tone; blind, SIPp (the
//! transferee) checks the REFER's Refer-To and Referred-By and its NOTIFYs
//! come back as `transfer` events; attended,
//! between two of the page's calls, the REFER's Refer-To names the second
//! call's peer with a Replaces holding that call's dialog. As the
//! transferee (`transfer.policy = "accept"`, or `"ask"` and the page
//! accepting with `sip.answerTransfer`), the page's call with a baresip
//! caller is transferred by that caller to a third baresip: the page hears
//! `transferred` and then the third phone, which hears the page; declined,
//! the caller gets 603 and the third phone is never called.

use e2e::audio::{tone, write_wav, Pcm};
use e2e::baresip::{Baresip, BaresipAccount, BaresipOptions};
use e2e::bridge::rtp_address;
use e2e::daemon::{count_rtp, Daemon};
use e2e::gateway::{Gateway, Softphone};
use e2e::kamailio::{Kamailio, KamailioOptions};
use e2e::linphone::Linphone;
use e2e::process::{free_udp_port, test_dir};
use e2e::rtp_peer::{PeerCodec, RtpPeer};
use e2e::sipp::{Sipp, SippRun};
use serde_json::{json, Value};
use signaling::{CallEvent, Caller, Config, Listen, Transport, UserAgent};
use std::net::UdpSocket;
use std::path::Path;
use std::time::{Duration, Instant};

const ECHO: &str = "preset = \"echo\"\n";

/// A baresip under `dir/name` playing a tone of `hz` for `seconds` (it
/// hangs up when the tone ends) and recording what it hears.
fn phone(dir: &Path, name: &str, hz: f64, seconds: f64, auto_answer: bool) -> Baresip {
    let own = dir.join(name);
    std::fs::create_dir_all(&own).unwrap();
    let wav = own.join("tone.wav");
    write_wav(&wav, &tone(hz, seconds, 8000, 0.3)).unwrap();
    let mut account = BaresipAccount::unregistered(&format!("sip:{name}@127.0.0.1"));
    account.auto_answer = auto_answer;
    let options =
        BaresipOptions { accounts: vec![account], play: Some(wav), record: true, limit: Duration::from_secs(60) };
    Baresip::start(&own, &options).unwrap()
}

/// A socket of the test's for RTP, and its port (written into SIPp's SDP).
fn rtp_sink() -> (UdpSocket, String) {
    let port = free_udp_port();
    (UdpSocket::bind(("127.0.0.1", port)).unwrap(), port.to_string())
}

#[test]
fn baresip_blind_transfers_the_echo_to_a_third_phone() {
    let dir = test_dir("call_transfer_baresip");
    let daemon = Daemon::start(&dir, ECHO, &[]).unwrap();
    let alice = phone(&dir, "alice", 440.0, 20.0, false);
    let carol = phone(&dir, "carol", 700.0, 5.0, true);
    alice.command("dial", &daemon.uri("echo")).unwrap();
    alice.wait_event("call", "CALL_ESTABLISHED", Duration::from_secs(10)).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    alice.command("transfer", &format!("sip:carol@127.0.0.1:{}", carol.sip_port)).unwrap();
    // The transferring phone is released...
    alice.wait_event("call", "CALL_CLOSED", Duration::from_secs(15)).unwrap();
    // ...and the third one is answered by the echo until its tone ends.
    third_phone_hears_its_echo(&carol, &daemon);
}

/// What `phone` recorded from `skip` seconds in to 0.3 s before the end (its
/// call's setup and teardown left out), which must last over `min_seconds`.
fn heard_after(phone: &Baresip, skip: f64, min_seconds: f64) -> Pcm {
    let pcm = phone.heard().unwrap();
    let tail = pcm.slice(skip, pcm.seconds() - 0.3);
    assert!(tail.seconds() > min_seconds, "the recording is too short: {} s", pcm.seconds());
    tail
}

/// After a blind transfer to `carol`, the echo answers her until her 700 Hz
/// tone ends, and she hears that tone back (nothing of the transferor's).
fn third_phone_hears_its_echo(carol: &Baresip, daemon: &Daemon) {
    carol.wait_event("call", "CALL_ESTABLISHED", Duration::from_secs(10)).unwrap();
    carol.wait_event("call", "CALL_CLOSED", Duration::from_secs(15)).unwrap();
    let tail = heard_after(carol, 1.0, 2.5);
    assert!(
        tail.tone_share(700.0) > 0.8 && tail.rms() > 0.05,
        "carol should hear her 700 Hz echoed: share {}, 440 Hz share {}, rms {}",
        tail.tone_share(700.0),
        tail.tone_share(440.0),
        tail.rms()
    );
    daemon.wait_lines(&["transfer accepted", "sip:carol@"], 1, Duration::from_secs(1)).unwrap();
    daemon.wait_lines(&["transferred: the preset's media moves to the new call"], 1, Duration::from_secs(1)).unwrap();
}

/// linphonec (a caller only: Debian 12's cannot receive calls) calls the
/// echo playing 440 Hz and blind-transfers it with its `transfer` command.
#[test]
fn linphonec_blind_transfers_the_echo_to_a_third_phone() {
    let dir = test_dir("call_transfer_linphonec");
    let daemon = Daemon::start(&dir, ECHO, &[]).unwrap();
    let carol = phone(&dir, "carol", 700.0, 5.0, true);
    let own = dir.join("linphonec");
    let rc = format!("[rtp]\naudio_rtp_port={}\n[sound]\nechocancellation=0\n", free_udp_port());
    let mut alice = Linphone::start(&own, &rc);
    let wav = own.join("tone.wav");
    write_wav(&wav, &tone(440.0, 20.0, 8000, 0.3)).unwrap();
    alice.send("soundcard use files");
    alice.send(&format!("ports sip {}", free_udp_port()));
    alice.wait_debug_log("Creating listening point");
    alice.send(&format!("play {}", wav.display()));
    let echo = daemon.uri("echo");
    alice.send(&format!("call {echo}"));
    alice.child.wait_for_log("Media streams established", Duration::from_secs(10)).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    alice.send(&format!("transfer sip:carol@127.0.0.1:{}", carol.sip_port));
    // The transferring phone is released...
    alice.child.wait_for_log(&format!("with {echo} ended"), Duration::from_secs(15)).unwrap();
    // ...and the third one hears the echo.
    third_phone_hears_its_echo(&carol, &daemon);
    alice.send("quit");
}

/// The line SIPp logged (`<log>`, -trace_logs) after `prefix`, in the log
/// of the scenario `scenario` run in `dir`.
fn sipp_logged(dir: &Path, scenario: &str, prefix: &str) -> String {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let logged = std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(scenario))
            .filter(|e| e.file_name().to_string_lossy().ends_with("_logs.log"))
            .filter_map(|e| std::fs::read_to_string(e.path()).ok())
            .find_map(|log| log.lines().find_map(|l| l.strip_prefix(prefix).map(|v| v.trim().to_string())));
        match logged {
            Some(value) => return value,
            None if Instant::now() < until => std::thread::sleep(Duration::from_millis(100)),
            None => panic!("SIPp ({scenario}) logged no {prefix:?} in {}", dir.display()),
        }
    }
}

/// SIPp transfers its echo call to a SIPp target at `refer_to` (carol's
/// URI, with `uri_headers` appended): the NOTIFYs say 100, 180, 200, the
/// caller gets a BYE, the target's audio is echoed to it. Returns the
/// target's Replaces header (empty when it had none).
fn transfer_to_sipp_target(name: &str, uri_headers: &str) -> String {
    let dir = test_dir(name);
    let daemon = Daemon::start(&dir, ECHO, &[]).unwrap();
    let (sink, sink_port) = rtp_sink();
    let target = Sipp::new("uas_transfer_target.xml").args(["-trace_logs", "-key", "rtp_sink", sink_port.as_str()]);
    let refer_to = format!("sip:carol@127.0.0.1:{}{uri_headers}", target.port());
    let mut target = target.spawn(&dir, "sipp-target").unwrap();
    let transferor = Sipp::new("uac_transfer_accepted.xml").args(["-s", "echo", "-key", "refer_to", refer_to.as_str()]);
    refer_with_the_echo_on(&dir, &daemon, transferor, (&mut target, Duration::from_secs(20)), &sink, "to the target");
    daemon.wait_lines(&["transferred: the new call takes this one's place"], 1, Duration::from_secs(1)).unwrap();
    sipp_logged(&dir, "uas_transfer_target", "Replaces:")
}

/// Runs SIPp's `transferor` scenario against the echo, its REFER naming
/// `target` (already running, given its time limit): both scenarios must
/// succeed, and at least 200 packets of the echo (of the pcap's 236, 7 s),
/// PCMA, must reach `sink`, `where_` the echo is expected.
fn refer_with_the_echo_on(
    dir: &Path,
    daemon: &Daemon,
    transferor: Sipp,
    (target, target_limit): (&mut SippRun, Duration),
    sink: &UdpSocket,
    where_: &str,
) {
    let mut transferor = transferor.remote(daemon.addr()).spawn(dir, "sipp-transferor").unwrap();
    let (packets, pts) = count_rtp(sink, Duration::from_secs(2), Duration::from_secs(25));
    transferor.expect_success(Duration::from_secs(20)).unwrap();
    target.expect_success(target_limit).unwrap();
    assert_eq!(pts, vec![8], "the echo {where_} must be PCMA (pt 8)");
    assert!(packets >= 200, "only {packets} RTP packets echoed {where_} of the pcap's 236 (7 s)");
}

#[test]
fn sipp_refer_accepted_notifies_progress_and_moves_the_echo_to_the_target() {
    let replaces = transfer_to_sipp_target("call_transfer_sipp_accepted", "");
    assert_eq!(replaces, "", "a blind transfer's INVITE carries no Replaces");
}

#[test]
fn sipp_attended_refer_passes_the_replaces_on_to_the_target() {
    let replaces = transfer_to_sipp_target(
        "call_transfer_sipp_attended",
        "?Replaces=abc%40example.test%3Bto-tag%3D1%3Bfrom-tag%3D2",
    );
    assert_eq!(replaces, "abc@example.test;to-tag=1;from-tag=2");
}

#[test]
fn invite_with_replaces_takes_over_the_named_call_and_its_echo() {
    let dir = test_dir("call_transfer_replaces");
    let daemon = Daemon::start(&dir, ECHO, &[]).unwrap();
    let mut replaced = Sipp::new("uac_replaced.xml")
        .args(["-s", "echo", "-trace_logs"])
        .remote(daemon.addr())
        .spawn(&dir, "sipp")
        .unwrap();
    let replaces = sipp_logged(&dir, "uac_replaced", "Replaces:");
    let mut carol = RtpPeer::start(&dir, "carol", PeerCodec::Pcmu).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let ua = UserAgent::start(Config {
            listen: vec![Listen { transport: Transport::Udp, addr: "127.0.0.1:0".parse().unwrap() }],
            ..Config::default()
        })
        .await
        .unwrap();
        let caller = Caller::Guest { uri: "sip:carol@127.0.0.1".into(), display_name: None };
        let headers = [("Replaces".to_string(), replaces.clone())];
        let mut call = ua.invite(caller, &daemon.uri("echo"), Some(carol.sdp(None)), &headers).unwrap();
        let answer = loop {
            match tokio::time::timeout(Duration::from_secs(10), call.next_event()).await.expect("an answer in time") {
                Some(CallEvent::Answered { sdp }) => break sdp.expect("an SDP answer"),
                Some(CallEvent::Trying | CallEvent::Ringing | CallEvent::Progress { .. }) => {}
                other => panic!("the INVITE with Replaces {replaces:?} was not answered: {other:?}"),
            }
        };
        carol.send_tone(600, rtp_address(&answer)).unwrap();
        tokio::time::sleep(Duration::from_secs(4)).await;
        call.bye().await.unwrap();
        ua.shutdown();
    });
    // The replaced caller got its BYE.
    replaced.expect_success(Duration::from_secs(10)).unwrap();
    let pcm = carol.finish().unwrap();
    let tail = pcm.slice(1.0, pcm.seconds() - 0.3);
    assert!(tail.seconds() > 2.0, "carol's recording is too short: {} s", pcm.seconds());
    assert!(
        tail.tone_share(600.0) > 0.8 && tail.rms() > 0.05,
        "carol should hear her 600 Hz echoed: share {}, rms {}",
        tail.tone_share(600.0),
        tail.rms()
    );
    daemon.wait_lines(&["INVITE with Replaces answered"], 1, Duration::from_secs(1)).unwrap();
    daemon.wait_lines(&["replaced: the new call takes this one's place"], 1, Duration::from_secs(1)).unwrap();
}

/// SIPp calls `sip:echo@domain` through `remote` and sends a REFER the
/// daemon refuses: SIPp sees the 603 and ends the call, the daemon logs the
/// refusal and the remote end, after the line with all of `call_line` (none
/// when empty).
fn refer_refused_with_603(dir: &Path, daemon: &Daemon, domain: &str, remote: String, call_line: &[&str]) {
    let mut transferor = Sipp::new("uac_transfer_refused.xml")
        .args(["-s", "echo", "-key", "refer_to", "sip:carol@127.0.0.1:9", "-key", "domain", domain])
        .remote(remote)
        .spawn(dir, "sipp-transferor")
        .unwrap();
    transferor.expect_success(Duration::from_secs(20)).unwrap();
    if !call_line.is_empty() {
        daemon.wait_lines(call_line, 1, Duration::from_secs(1)).unwrap();
    }
    daemon.wait_lines(&["transfer refused", "code=603"], 1, Duration::from_secs(1)).unwrap();
    daemon.wait_lines(&["call ended", "by=remote"], 1, Duration::from_secs(5)).unwrap();
}

#[test]
fn sipp_refer_refused_by_policy_is_603_and_the_call_goes_on() {
    let dir = test_dir("call_transfer_sipp_refused");
    let config = format!("{ECHO}[transfer]\npolicy = \"reject\"\n");
    let daemon = Daemon::start(&dir, &config, &[]).unwrap();
    refer_refused_with_603(&dir, &daemon, &daemon.addr(), daemon.addr(), &[]);
}

/// The service accepts transfers, its account `transfer_policy = "reject"`:
/// SIPp's call to the account's AOR, routed by Kamailio, gets 603 for its
/// REFER, and the call goes on.
#[test]
fn sipp_refer_through_an_account_with_policy_reject_is_603() {
    let dir = test_dir("call_transfer_account_policy");
    let k = Kamailio::start(&dir, &KamailioOptions::new("example.test", &[("echo", "echo-pw")])).unwrap();
    let config = format!(
        "{ECHO}[transfer]\npolicy = \"accept\"\n\n[[account]]\naor = \"{}\"\nproxy = \"{}\"\npassword = \"echo-pw\"\n\
         transfer_policy = \"reject\"\n",
        k.aor("echo"),
        k.proxy_uri("udp")
    );
    let daemon = Daemon::start(&dir, &config, &[]).unwrap();
    daemon.wait_lines(&["account{aor=sip:echo@example.test}", "registered"], 1, Duration::from_secs(10)).unwrap();
    let through_kamailio = format!("127.0.0.1:{}", k.udp_port);
    refer_refused_with_603(
        &dir,
        &daemon,
        "example.test",
        through_kamailio,
        &["incoming call", "to=sip:echo@example.test"],
    );
}

#[test]
fn sipp_refer_to_a_busy_target_notifies_486_and_keeps_the_call_with_audio() {
    let dir = test_dir("call_transfer_sipp_busy");
    let daemon = Daemon::start(&dir, ECHO, &[]).unwrap();
    let busy = Sipp::new("uas_busy.xml");
    let busy_uri = format!("sip:carol@127.0.0.1:{}", busy.port());
    let mut busy = busy.spawn(&dir, "sipp-busy").unwrap();
    let (sink, sink_port) = rtp_sink();
    let transferor = Sipp::new("uac_transfer_busy.xml").args([
        "-s",
        "echo",
        "-key",
        "refer_to",
        busy_uri.as_str(),
        "-key",
        "rtp_sink",
        sink_port.as_str(),
    ]);
    refer_with_the_echo_on(&dir, &daemon, transferor, (&mut busy, Duration::from_secs(5)), &sink, "on the kept call");
    daemon.wait_lines(&["transfer failed; the call goes on", "code=486"], 1, Duration::from_secs(1)).unwrap();
}

/// A gateway whose page is registered as the guest `sip:alice@127.0.0.1`
/// and may hold two calls.
fn gateway_page(dir: &Path) -> (Gateway, Softphone) {
    let gw = Gateway::start(dir, None, &["--max-calls-per-connection", "2"]).unwrap();
    let page = Softphone::start(dir, "softphone", &gw.url(), 660).unwrap();
    page.wait_ready().unwrap();
    let r = page.request("sip.register", json!({ "username": "sip:alice@127.0.0.1", "guest": true })).unwrap();
    assert_eq!(r["result"]["guest"], true, "{r}");
    (gw, page)
}

/// The page calls `target` and waits for the answer; the call's id. The
/// page's phone holds one call: a second one is placed with `sip.call`
/// (the gateway offers to the browser; SIP does not wait for its answer).
fn page_call(gw: &Gateway, page: &Softphone, target: &str, second: bool) -> String {
    let call = if second {
        let r = page.request("sip.call", json!({ "uri": target })).unwrap();
        r["result"]["call"].as_str().unwrap_or_else(|| panic!("no call id in {r}")).to_string()
    } else {
        let r = page.cmd("invoke", json!({ "fn": "dial", "args": [target, Value::Null] })).unwrap();
        r["value"]["call"].as_str().unwrap_or_else(|| panic!("no call id in {r}")).to_string()
    };
    let answered =
        page.wait(|d| d["call"] == call.as_str() && (d["event"] == "accepted" || d["event"] == "hangup")).unwrap();
    assert_eq!(answered["event"], "accepted", "{answered}\n{}", gw.log());
    call
}

/// The first line of SIPp's message trace (`<scenario>_<pid>_messages.log`)
/// starting with `prefix`, without it.
fn sipp_traced(dir: &Path, scenario: &str, prefix: &str) -> String {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(scenario))
        .filter(|e| e.file_name().to_string_lossy().ends_with("_messages.log"))
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .find_map(|log| log.lines().find_map(|l| l.trim().strip_prefix(prefix).map(|v| v.trim().to_string())))
        .unwrap_or_else(|| panic!("SIPp ({scenario}) traced no {prefix:?} in {}", dir.display()))
}

#[test]
fn gateway_page_blind_transfers_its_call_and_hears_the_progress() {
    let dir = test_dir("call_transfer_gateway_blind");
    let (gw, page) = gateway_page(&dir);
    // SIPp, the transferee, requires Refer-To sip:carol@ and Referred-By
    // sip:alice@, then NOTIFYs 180 and 200.
    let mut transferee = Sipp::new("uas_refer.xml").limit(Duration::from_secs(40)).spawn(&dir, "sipp").unwrap();
    let call = page_call(&gw, &page, &format!("sip:sipp@{}", transferee.addr()), false);
    let r = page.request("sip.transfer", json!({ "call": call, "target": "sip:carol@127.0.0.1" })).unwrap();
    assert_eq!(r["result"], json!({}), "{r}\n{}", gw.log());
    let ringing = page.wait_event("transfer").unwrap();
    assert_eq!((ringing["code"].as_u64(), ringing["done"].as_bool()), (Some(180), Some(false)), "{ringing}");
    let done = page.wait(|d| d["event"] == "transfer" && d["done"] == true).unwrap();
    assert_eq!((done["code"].as_u64(), done["reason"].as_str()), (Some(200), Some("OK")), "{done}");
    // Bad requests are refused with a reason, and the call is untouched.
    for params in
        [json!({ "call": call }), json!({ "call": call, "target": "carol" }), json!({ "call": call, "replaces": call })]
    {
        let r = page.request("sip.transfer", params.clone()).unwrap();
        assert_eq!(r["error"]["code"], -32602, "{params}: {r}");
    }
    let r = page.request("sip.hangup", json!({ "call": call })).unwrap();
    assert_eq!(r["result"], json!({}), "{r}");
    transferee.expect_success(Duration::from_secs(10)).unwrap();
}

#[test]
fn gateway_page_transfers_one_of_its_calls_to_the_other_with_replaces() {
    let dir = test_dir("call_transfer_gateway_attended");
    let (gw, page) = gateway_page(&dir);
    let mut transferee =
        Sipp::new("uas_refer.xml").limit(Duration::from_secs(40)).spawn(&dir, "sipp-transferee").unwrap();
    let mut carol = Sipp::new("uas_ring_answer.xml").limit(Duration::from_secs(40)).spawn(&dir, "sipp-carol").unwrap();
    let first = page_call(&gw, &page, &format!("sip:sipp@{}", transferee.addr()), false);
    let second = page_call(&gw, &page, &format!("sip:carol@{}", carol.addr()), true);
    let r = page.request("sip.transfer", json!({ "call": first, "replaces": second })).unwrap();
    assert_eq!(r["result"], json!({}), "{r}\n{}", gw.log());
    let done = page.wait(|d| d["event"] == "transfer" && d["done"] == true).unwrap();
    assert_eq!(done["code"].as_u64(), Some(200), "{done}");
    for call in [&first, &second] {
        let r = page.request("sip.hangup", json!({ "call": call })).unwrap();
        assert_eq!(r["result"], json!({}), "{r}");
    }
    transferee.expect_success(Duration::from_secs(10)).unwrap();
    carol.expect_success(Duration::from_secs(10)).unwrap();
    // The Refer-To names carol's dialog: its Call-ID, carol's tag as
    // to-tag and ours as from-tag.
    let refer_to = sipp_traced(&dir, "uas_refer", "Refer-To:");
    let call_id = sipp_traced(&dir, "uas_ring_answer", "Call-ID:");
    // uas_ring_answer.xml tags its side [pid]SIPpTag01[call_number].
    let carol_tag = format!("{}SIPpTag011", carol.child.pid());
    let expected = format!("?Replaces={}%3Bto-tag%3D{carol_tag}%3Bfrom-tag%3D", call_id.replace('@', "%40"));
    assert!(
        refer_to.starts_with(&format!("<sip:carol@{}", carol.addr())) && refer_to.contains(&expected),
        "Refer-To {refer_to:?} should name carol's call {call_id:?}"
    );
}

/// A baresip under `dir/name` registered at `k` as `name` (with
/// `password`), playing a tone of `hz` for 60 s and recording what it hears.
fn registered_phone(dir: &Path, k: &Kamailio, (name, password): (&str, &str), hz: f64, auto_answer: bool) -> Baresip {
    let own = dir.join(name);
    std::fs::create_dir_all(&own).unwrap();
    let wav = own.join("tone.wav");
    write_wav(&wav, &tone(hz, 60.0, 8000, 0.3)).unwrap();
    let account = k.baresip_account(name, password, auto_answer);
    let options =
        BaresipOptions { accounts: vec![account], play: Some(wav), record: true, limit: Duration::from_secs(90) };
    let phone = Baresip::start(&own, &options).unwrap();
    phone.wait_registered(1, Duration::from_secs(10)).unwrap();
    phone
}

/// A gateway (started with `gateway_args`) whose page (660 Hz) registers at
/// `k` as alice and answers `bob`'s call; the gateway, the page and its
/// `incomingcall` event.
fn page_answering_bob(dir: &Path, k: &Kamailio, bob: &Baresip, gateway_args: &[&str]) -> (Gateway, Softphone, Value) {
    let gw = Gateway::start(dir, None, gateway_args).unwrap();
    let page = Softphone::start(dir, "softphone", &gw.url(), 660).unwrap();
    page.wait_ready().unwrap();
    page.register(&k.aor("alice"), "a-pw", &k.proxy_uri("udp")).unwrap();
    let ev = page.wait(|d| d["event"] == "registered" || d["event"] == "registration_failed").unwrap();
    assert_eq!(ev["event"], "registered", "{ev}\n{}", gw.log());
    bob.command("dial", &k.aor("alice")).unwrap();
    let incoming = page.wait_event("incomingcall").unwrap();
    page.click("#answer").unwrap();
    page.wait_event("accepted").unwrap();
    bob.wait_event("call", "CALL_ESTABLISHED", Duration::from_secs(5)).unwrap();
    (gw, page, incoming)
}

#[test]
fn gateway_page_blind_transfers_a_baresip_caller_to_a_third_phone() {
    let dir = test_dir("call_transfer_gateway_baresip");
    let k = Kamailio::start(
        &dir,
        &KamailioOptions::new("example.test", &[("alice", "a-pw"), ("bob", "b-pw"), ("carol", "c-pw")]),
    )
    .unwrap();
    let bob = registered_phone(&dir, &k, ("bob", "b-pw"), 440.0, false);
    let carol = registered_phone(&dir, &k, ("carol", "c-pw"), 700.0, true);
    let (gw, page, incoming) = page_answering_bob(&dir, &k, &bob, &[]);
    let r = page.request("sip.transfer", json!({ "call": incoming["call"], "target": k.aor("carol") })).unwrap();
    assert_eq!(r["result"], json!({}), "{r}\n{}", gw.log());
    let done = page.wait(|d| d["event"] == "transfer" && d["done"] == true).unwrap();
    assert_eq!(done["code"].as_u64(), Some(200), "{done}");
    carol.wait_event("call", "CALL_ESTABLISHED", Duration::from_secs(10)).unwrap();
    // The page's call ends: baresip hangs up once its new call is up, or the page does.
    let ended = page.wait_for(Duration::from_secs(3), |d| d["event"] == "hangup");
    if ended.is_err() {
        let r = page.request("sip.hangup", json!({ "call": incoming["call"] })).unwrap();
        assert_eq!(r["result"], json!({}), "{r}");
    }
    std::thread::sleep(Duration::from_secs(3));
    carol.command("hangup", "").unwrap();
    carol.wait_event("call", "CALL_CLOSED", Duration::from_secs(5)).unwrap();
    let tail = heard_after(&carol, 1.0, 1.5);
    assert!(
        tail.tone_share(440.0) > 0.8,
        "carol should hear bob's 440 Hz: share {}, the page's 660 Hz {}, rms {}",
        tail.tone_share(440.0),
        tail.tone_share(660.0),
        tail.rms()
    );
}

/// Kamailio, the page registered there as alice under `policy`, bob
/// (baresip, 440 Hz) calling the page and answered, and carol (baresip,
/// 700 Hz, auto-answer, direct) to transfer to.
struct TransfereePage {
    _kamailio: Kamailio,
    bob: Baresip,
    carol: Baresip,
    gw: Gateway,
    page: Softphone,
    dir: std::path::PathBuf,
}

impl TransfereePage {
    fn start(name: &str, policy: &str) -> TransfereePage {
        let dir = test_dir(name);
        let k = Kamailio::start(&dir, &KamailioOptions::new("example.test", &[("alice", "a-pw"), ("bob", "b-pw")]))
            .unwrap();
        let bob = registered_phone(&dir, &k, ("bob", "b-pw"), 440.0, false);
        let carol = phone(&dir, "carol", 700.0, 60.0, true);
        let set = format!("transfer.policy=\"{policy}\"");
        let (gw, page, _) = page_answering_bob(&dir, &k, &bob, &["--set", set.as_str()]);
        TransfereePage { _kamailio: k, bob, carol, gw, page, dir }
    }

    fn bob_transfers_to_carol(&self) {
        self.bob.command("transfer", &format!("sip:carol@127.0.0.1:{}", self.carol.sip_port)).unwrap();
    }

    /// The page hears `transferred`, then carol (and she the page); bob is released.
    fn assert_transferred_to_carol(&self) {
        let (page, carol) = (&self.page, &self.carol);
        let transferred = page.wait_event("transferred").unwrap();
        assert!(transferred["peer"].as_str().unwrap_or("").contains("sip:carol@"), "{transferred}\n{}", self.gw.log());
        carol.wait_event("call", "CALL_ESTABLISHED", Duration::from_secs(10)).unwrap();
        self.bob.wait_event("call", "CALL_CLOSED", Duration::from_secs(10)).unwrap();
        std::thread::sleep(Duration::from_millis(1500));
        let heard = page.record(2500, &self.dir.join("page-heard.wav")).unwrap();
        let tail = heard.slice(0.5, 2.5);
        assert!(
            tail.tone_share(700.0) > 0.5,
            "the page should hear carol's 700 Hz: share {}, bob's 440 Hz {}",
            tail.tone_share(700.0),
            tail.tone_share(440.0)
        );
        let r = page.request("sip.hangup", json!({ "call": transferred["call"] })).unwrap();
        assert_eq!(r["result"], json!({}), "{r}");
        carol.wait_event("call", "CALL_CLOSED", Duration::from_secs(5)).unwrap();
        let tail = heard_after(carol, 1.5, 1.5);
        assert!(
            tail.tone_share(660.0) > 0.5,
            "carol should hear the page's 660 Hz: share {}, rms {}",
            tail.tone_share(660.0),
            tail.rms()
        );
        let log = self.gw.log();
        assert!(log.contains("transferred: the new call takes this one's place"), "{log}");
    }
}

#[test]
fn gateway_page_is_transferred_by_its_baresip_caller_to_a_third_phone() {
    let t = TransfereePage::start("call_transfer_gateway_transferee", "accept");
    t.bob_transfers_to_carol();
    t.assert_transferred_to_carol();
}

#[test]
fn gateway_page_asked_about_a_transfer_accepts_it() {
    let t = TransfereePage::start("call_transfer_gateway_ask_accept", "ask");
    t.bob_transfers_to_carol();
    let asked = t.page.wait_event("transferrequest").unwrap();
    assert!(asked["target"].as_str().unwrap_or("").contains("sip:carol@"), "{asked}");
    let r = t.page.request("sip.answerTransfer", json!({ "call": asked["call"], "accept": true })).unwrap();
    assert_eq!(r["result"], json!({}), "{r}");
    let r = t.page.request("sip.answerTransfer", json!({ "call": asked["call"], "accept": true })).unwrap();
    assert_eq!(r["error"]["code"], 2003, "nothing is waiting for an answer any more: {r}");
    t.assert_transferred_to_carol();
}

#[test]
fn gateway_page_asked_about_a_transfer_declines_it_with_603() {
    let t = TransfereePage::start("call_transfer_gateway_ask_decline", "ask");
    t.bob_transfers_to_carol();
    let asked = t.page.wait_event("transferrequest").unwrap();
    let r = t.page.request("sip.answerTransfer", json!({ "call": asked["call"], "accept": false })).unwrap();
    assert_eq!(r["result"], json!({}), "{r}");
    // bob hears 603 (baresip then ends the call whose transfer failed, its own choice).
    let until = std::time::Instant::now() + Duration::from_secs(5);
    while !t.bob.child.log().contains("transfer failed: 603") {
        assert!(std::time::Instant::now() < until, "bob did not get 603:\n{}", t.bob.child.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    let carol_calls = std::fs::read_dir(&t.carol.rec_dir).unwrap().count();
    assert_eq!(carol_calls, 0, "carol was called:\n{}", t.carol.child.log());
    assert!(t.gw.log().contains("declined by the front-end"), "{}", t.gw.log());
}
