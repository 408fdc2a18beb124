//! `sipbridge stdio` between a real WebRTC peer (headless Chromium or
//! aiortc) and a plain RTP peer (gst-launch): each must hear the other's
//! tone, with webrtcbin both answering and offering. The `lean_` tests run
//! the same against the lean WebRTC leg (`webrtcLeg: "lean"`).

use e2e::audio::ulaw_encode;
use e2e::bridge::{rtp_address, Bridge};
use e2e::process::test_dir;
use e2e::rtp_peer::{PeerCodec, RtpPeer};
use e2e::webrtc_peer::{Stack, WebRtcPeer};
use serde_json::json;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

const BROWSER_TONE: u32 = 440;
const PHONE_TONE: u32 = 1000;

/// The two WebRTC legs, as `session.create` names them.
const WEBRTCBIN: &str = "webrtcbin";
const LEAN: &str = "lean";

/// WebRTC peer <-> bridge (webrtc session) <-> bridge (rtp session) <-> RTP peer.
fn webrtc_to_rtp(name: &str, leg: &str, stack: Stack, browser_offers: bool, phone: PeerCodec) {
    webrtc_to_rtp_offering(name, leg, stack, browser_offers, false, phone)
}

/// As [`webrtc_to_rtp`]; `video`: the browser's offer also has a video
/// m-line, which the answer must refuse (port 0, out of BUNDLE).
fn webrtc_to_rtp_offering(name: &str, leg: &str, stack: Stack, browser_offers: bool, video: bool, phone: PeerCodec) {
    let dir = test_dir(name);
    let bridge = Bridge::start(&dir, &[]).unwrap();
    let browser = WebRtcPeer::start(stack, &dir, "browser", BROWSER_TONE).unwrap();
    let mut rtp_peer = RtpPeer::start(&dir, "phone", phone).unwrap();
    let started = Instant::now();
    let w = bridge.create("webrtc", json!({ "latencyMs": 40, "webrtcLeg": leg })).unwrap();
    let r = bridge.create("rtp", json!({})).unwrap();

    if browser_offers {
        let offer = if video { browser.create_offer_with_video().unwrap() } else { browser.create_offer().unwrap() };
        bridge.set_remote(&w, "offer", &offer).unwrap();
        let (kind, answer) = bridge.local_description(&w).unwrap();
        assert_eq!(kind, "answer");
        if video {
            assert!(offer.contains("\r\nm=video "), "Chromium offers video:\n{offer}");
            let m_lines: Vec<&str> = answer.lines().filter(|l| l.starts_with("m=")).collect();
            assert_eq!(m_lines.len(), 2, "one answer m-line per offered one:\n{answer}");
            assert!(m_lines[0].starts_with("m=audio ") && !m_lines[0].starts_with("m=audio 0 "), "{answer}");
            assert!(m_lines[1].starts_with("m=video 0 "), "{answer}");
            let bundle = answer.lines().find(|l| l.starts_with("a=group:BUNDLE")).unwrap_or_default();
            assert_eq!(bundle.split(' ').count(), 2, "only the audio mid stays bundled: {bundle}");
        }
        assert!(
            answer.contains("a=candidate:") && answer.contains("127.0.0.1"),
            "complete answer with loopback candidates:\n{answer}"
        );
        browser.set_remote("answer", &answer).unwrap();
    } else {
        let (kind, offer) = bridge.local_description(&w).unwrap();
        assert_eq!(kind, "offer");
        assert!(offer.to_lowercase().contains("opus/48000/2"), "Opus offered as opus/48000/2:\n{offer}");
        browser.set_remote("offer", &offer).unwrap();
        let answer = browser.create_answer().unwrap();
        bridge.set_remote(&w, "answer", &answer).unwrap();
    }
    // The phone offers its single codec; the bridge answers.
    bridge.set_remote(&r, "offer", &rtp_peer.sdp(Some(20))).unwrap();
    let (_, phone_answer) = bridge.local_description(&r).unwrap();
    let linked = bridge.call("session.connect", json!({ "a": w, "b": r })).unwrap();
    assert_eq!(linked["passthrough"], json!(false), "Opus <-> {phone:?} must be transcoded");
    rtp_peer.send_tone(PHONE_TONE, rtp_address(&phone_answer)).unwrap();

    browser.wait_connected().unwrap();
    bridge
        .wait_session_event(&w, "connectionstatechange", Duration::from_secs(10), |e| e["state"] == "connected")
        .unwrap();
    let setup = started.elapsed();
    let heard_by_browser = browser.record(3000, &dir.join("browser-received.wav")).unwrap();
    let heard_by_phone = rtp_peer.finish().unwrap();
    eprintln!("{name}: session.create to connected in {setup:?}");

    let b = heard_by_browser.slice(0.5, 60.0);
    assert!(
        b.tone_share(PHONE_TONE as f64) > 0.8,
        "browser should hear the phone: share {}, rms {}",
        b.tone_share(PHONE_TONE as f64),
        b.rms()
    );
    assert!(b.tone_share(BROWSER_TONE as f64) < 0.05, "browser must not hear itself");
    assert!(b.rms() > 0.05, "browser level {}", b.rms());
    let p = heard_by_phone.slice(1.5, 60.0);
    assert!(p.seconds() > 1.0, "phone recording is {} s", heard_by_phone.seconds());
    assert!(
        p.tone_share(BROWSER_TONE as f64) > 0.8,
        "phone should hear the browser: share {}, rms {}",
        p.tone_share(BROWSER_TONE as f64),
        p.rms()
    );
    assert!(p.rms() > 0.05, "phone level {}", p.rms());

    let stats = browser.stats().unwrap();
    eprintln!("{name}: browser stats {stats}");
    // The bridge's side of the WebRTC leg (webrtcbin's statistics, or the
    // lean leg's own counts).
    let ours = bridge.call("session.getStats", json!({ "session": w })).unwrap();
    eprintln!("{name}: bridge stats {ours}");
    let report = |kind: &str| {
        let reports = ours["stats"].as_array().unwrap();
        reports.iter().find(|r| r["type"] == kind).cloned().unwrap_or_else(|| panic!("no {kind}: {ours}"))
    };
    let (inbound, outbound) = (report("inbound-rtp"), report("outbound-rtp"));
    assert!(inbound["packetsReceived"].as_u64().unwrap() > 100, "{inbound}");
    assert!(outbound["packetsSent"].as_u64().unwrap() > 100, "{outbound}");
    assert!(inbound["mos"].as_f64().unwrap() > 4.0, "a clean call on loopback: {inbound}");
    bridge.call("session.close", json!({ "session": w })).unwrap();
    bridge.wait_session_event(&w, "closed", Duration::from_secs(5), |_| true).unwrap();
}

#[test]
fn chromium_offers_bridge_answers_pcmu_phone() {
    webrtc_to_rtp("chromium_offers_pcmu", WEBRTCBIN, Stack::Chromium, true, PeerCodec::Pcmu);
}

#[test]
fn bridge_offers_chromium_answers_g722_phone() {
    webrtc_to_rtp("bridge_offers_chromium_g722", WEBRTCBIN, Stack::Chromium, false, PeerCodec::G722);
}

#[test]
fn aiortc_offers_bridge_answers_pcma_phone() {
    webrtc_to_rtp("aiortc_offers_pcma", WEBRTCBIN, Stack::Aiortc, true, PeerCodec::Pcma);
}

#[test]
fn bridge_offers_aiortc_answers_pcmu_phone() {
    webrtc_to_rtp("bridge_offers_aiortc_pcmu", WEBRTCBIN, Stack::Aiortc, false, PeerCodec::Pcmu);
}

#[test]
fn lean_chromium_offers_bridge_answers_pcmu_phone() {
    webrtc_to_rtp("lean_chromium_offers_pcmu", LEAN, Stack::Chromium, true, PeerCodec::Pcmu);
}

#[test]
fn lean_bridge_offers_chromium_answers_g722_phone() {
    webrtc_to_rtp("lean_bridge_offers_chromium_g722", LEAN, Stack::Chromium, false, PeerCodec::G722);
}

#[test]
fn lean_aiortc_offers_bridge_answers_pcma_phone() {
    webrtc_to_rtp("lean_aiortc_offers_pcma", LEAN, Stack::Aiortc, true, PeerCodec::Pcma);
}

#[test]
fn lean_bridge_offers_aiortc_answers_pcmu_phone() {
    webrtc_to_rtp("lean_bridge_offers_aiortc_pcmu", LEAN, Stack::Aiortc, false, PeerCodec::Pcmu);
}

/// DTMF both ways with a browser that offers: its RTCDTMFSender reaches us
/// as `dtmf` events, so the answer must carry telephone-event.
/// RFC 3264 §6: Chromium offering audio and video gets both m-lines back,
/// the video one refused, and the call carries audio both ways.
#[test]
fn chromium_audio_video_offer_gets_video_refused_and_audio_flows() {
    webrtc_to_rtp_offering("webrtc_video_refused", WEBRTCBIN, Stack::Chromium, true, true, PeerCodec::Pcmu);
}

#[test]
fn lean_chromium_audio_video_offer_gets_video_refused_and_audio_flows() {
    webrtc_to_rtp_offering("lean_webrtc_video_refused", LEAN, Stack::Chromium, true, true, PeerCodec::Pcmu);
}

#[test]
fn chromium_dtmf_reaches_the_bridge() {
    dtmf_reaches_the_bridge("chromium_dtmf", WEBRTCBIN);
}

#[test]
fn lean_chromium_dtmf_reaches_the_bridge() {
    dtmf_reaches_the_bridge("lean_chromium_dtmf", LEAN);
}

fn dtmf_reaches_the_bridge(name: &str, leg: &str) {
    let dir = test_dir(name);
    let bridge = Bridge::start(&dir, &[]).unwrap();
    let browser = WebRtcPeer::start(Stack::Chromium, &dir, "browser", BROWSER_TONE).unwrap();
    let w = bridge.create("webrtc", json!({ "webrtcLeg": leg })).unwrap();
    let offer = browser.create_offer().unwrap();
    bridge.set_remote(&w, "offer", &offer).unwrap();
    let (_, answer) = bridge.local_description(&w).unwrap();
    assert!(answer.to_lowercase().contains("telephone-event/48000"), "the answer keeps telephone-event:\n{answer}");
    browser.set_remote("answer", &answer).unwrap();
    browser.wait_connected().unwrap();
    browser.send_dtmf("1#", 120).unwrap();
    bridge.wait_session_event(&w, "dtmf", Duration::from_secs(10), |e| e["tone"] == "1").unwrap();
    bridge.wait_session_event(&w, "dtmf", Duration::from_secs(10), |e| e["tone"] == "#").unwrap();
}

/// A WebRTC leg and a plain RTP leg that negotiated the same codec are
/// joined by relaying: audio leaving webrtcbin (decrypted) goes straight out
/// of the RTP leg's socket as the WebRTC peer sent it, header extensions
/// included (which is how this test tells a relayed packet from one that
/// was depayloaded and payloaded again), and the phone hears the tone;
/// the WebRTC leg's statistics still count what it relayed.
#[test]
fn webrtc_to_rtp_with_the_same_codec_is_relayed() {
    relayed_to_rtp("webrtc_relay", WEBRTCBIN);
}

/// The same with the lean leg, which relays from str0m's packets: header
/// extensions are not passed on, so the link's own word (`passthrough`),
/// the packet count (of packets without extensions) and the tone are what
/// is checked.
#[test]
fn lean_webrtc_to_rtp_with_the_same_codec_is_relayed() {
    relayed_to_rtp("lean_webrtc_relay", LEAN);
}

fn relayed_to_rtp(name: &str, leg: &str) {
    use e2e::audio::{tone, ulaw_decode, Pcm};
    use e2e::rtp_peer::rtp_payload;
    use e2e::webrtc_load::{Audio, Client, Shared};
    use std::sync::Arc;

    let dir = test_dir(name);
    let bridge = Bridge::start(&dir, &[]).unwrap();
    let pcm = tone(PHONE_TONE as f64, 2.0, 8000, 0.5);
    let payloads: Vec<Vec<u8>> =
        pcm.samples.chunks(160).map(|c| c.iter().map(|s| ulaw_encode((*s * 32767.0) as i16)).collect()).collect();
    let mut client = Client::new(&Shared::new().unwrap(), Audio::Pcmu, Arc::new(payloads), 0).unwrap();
    let sw = bridge.create("webrtc", json!({ "codecs": ["PCMU"], "webrtcLeg": leg })).unwrap();
    bridge.set_remote(&sw, "offer", client.offer()).unwrap();
    let (_, answer) = bridge.local_description(&sw).unwrap();
    client.accept_answer(&answer).unwrap();

    let (phone, _) = pcmu_phone_linked_to(&bridge, &sw);

    let mut buf = vec![0u8; 2048];
    let mut received: Vec<Vec<u8>> = Vec::new();
    let start = Instant::now();
    let mut next = start;
    while start.elapsed() < Duration::from_secs(5) {
        client.service(&mut buf);
        client.send_frame();
        while let Ok(n) = phone.recv(&mut buf) {
            received.push(buf[..n].to_vec());
        }
        next += Duration::from_millis(20);
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    // webrtcbin passes the peer's header extensions on (which tells a
    // relayed packet here); the lean leg passes none.
    let relayed: Vec<&Vec<u8>> = received.iter().filter(|p| (p[0] & 0x10 != 0) == (leg == WEBRTCBIN)).collect();
    assert!(
        relayed.len() >= 100,
        "{} of {} packets at the phone came through the relay ({})",
        relayed.len(),
        received.len(),
        client.state()
    );
    let heard = Pcm {
        rate: 8000,
        samples: relayed.iter().filter_map(|p| rtp_payload(p)).flatten().map(|b| ulaw_decode(*b)).collect(),
    };
    assert!(
        heard.tone_share(PHONE_TONE as f64) > 0.8,
        "the phone hears the WebRTC peer's tone: share {}",
        heard.tone_share(PHONE_TONE as f64)
    );
    // webrtcbin's session counted the relayed packets: its statistics, and
    // the receiver reports it sends the peer (made from the same counts),
    // describe the stream (before, they saw none of it).
    let stats = bridge.call("session.getStats", json!({ "session": sw })).unwrap();
    let inbound = stats["stats"].as_array().unwrap().iter().find(|r| r["type"] == "inbound-rtp").cloned();
    let counted = inbound.as_ref().and_then(|i| i["packetsReceived"].as_u64()).unwrap_or(0);
    assert!(
        counted as usize >= relayed.len() * 95 / 100,
        "webrtcbin counted {counted} of the {} relayed: {stats}",
        relayed.len()
    );
}

/// A browser that vanishes (its process killed: no DTLS close, its RTP just
/// stops) is reported `mediatimeout` once the RTP timeout has passed, and
/// not before, while its audio flows.
#[test]
fn a_vanished_browser_is_reported_as_a_media_timeout() {
    vanished_browser("vanished_browser", WEBRTCBIN);
}

#[test]
fn lean_a_vanished_browser_is_reported_as_a_media_timeout() {
    vanished_browser("lean_vanished_browser", LEAN);
}

fn vanished_browser(name: &str, leg: &str) {
    let dir = test_dir(name);
    let bridge = Bridge::start(&dir, &[]).unwrap();
    let browser = WebRtcPeer::start(Stack::Aiortc, &dir, "browser", BROWSER_TONE).unwrap();
    let w = bridge.create("webrtc", json!({ "rtpTimeoutMs": 2000, "webrtcLeg": leg })).unwrap();
    let offer = browser.create_offer().unwrap();
    bridge.set_remote(&w, "offer", &offer).unwrap();
    let (_, answer) = bridge.local_description(&w).unwrap();
    browser.set_remote("answer", &answer).unwrap();
    browser.wait_connected().unwrap();
    bridge
        .wait_session_event(&w, "connectionstatechange", Duration::from_secs(10), |e| e["state"] == "connected")
        .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let early: Vec<_> = bridge.io.events().into_iter().filter(|e| e["params"]["type"] == "mediatimeout").collect();
    assert!(early.is_empty(), "no timeout while the browser sends: {early:?}");

    let vanished = Instant::now();
    drop(browser);
    let event = bridge.wait_session_event(&w, "mediatimeout", Duration::from_secs(8), |_| true).unwrap();
    let after = vanished.elapsed();
    assert_eq!(event["held"], json!(false));
    assert!(event["silentMs"].as_u64().unwrap() > 2000, "{event}");
    assert!(after > Duration::from_millis(1500) && after < Duration::from_secs(5), "reported {after:?} after");
}

/// On hold the peer may send no RTP, but its RTCP reports keep the session:
/// two WebRTC sessions of the bridge, one offering `sendonly`, with a
/// 1 s RTP timeout, stay up past it (RTCP counts, the timeout is at least
/// 20 s); once the sending side is closed, the held one reports a held
/// timeout about 20 s after the last report.
#[test]
fn on_hold_rtcp_keeps_a_webrtc_session_and_its_end_is_a_held_timeout() {
    held_timeout("held_webrtc_timeout", WEBRTCBIN);
}

#[test]
fn lean_on_hold_rtcp_keeps_a_webrtc_session_and_its_end_is_a_held_timeout() {
    held_timeout("lean_held_webrtc_timeout", LEAN);
}

fn held_timeout(name: &str, leg: &str) {
    let dir = test_dir(name);
    let bridge = Bridge::start(&dir, &[]).unwrap();
    let a = bridge.create("webrtc", json!({ "rtpTimeoutMs": 1000, "webrtcLeg": leg })).unwrap();
    let b = bridge.create("webrtc", json!({ "rtpTimeoutMs": 1000, "webrtcLeg": leg })).unwrap();
    let (_, offer) = bridge.local_description(&a).unwrap();
    bridge.set_remote(&b, "offer", &offer.replace("a=sendrecv", "a=sendonly")).unwrap();
    let (_, answer) = bridge.local_description(&b).unwrap();
    assert!(answer.contains("a=recvonly"), "{answer}");
    bridge.set_remote(&a, "answer", &answer).unwrap();
    for s in [&a, &b] {
        bridge
            .wait_session_event(s, "connectionstatechange", Duration::from_secs(10), |e| e["state"] == "connected")
            .unwrap();
    }
    std::thread::sleep(Duration::from_secs(8));
    let early: Vec<_> = bridge.io.events().into_iter().filter(|e| e["params"]["type"] == "mediatimeout").collect();
    assert!(early.is_empty(), "held sessions with RTCP flowing are kept past the 1 s RTP timeout: {early:?}");

    let closed = Instant::now();
    bridge.call("session.close", json!({ "session": b })).unwrap();
    let event = bridge.wait_session_event(&a, "mediatimeout", Duration::from_secs(30), |_| true).unwrap();
    assert_eq!(event["held"], json!(true), "{event}");
    assert!(closed.elapsed() > Duration::from_secs(12), "the held timeout is at least 20 s: {:?}", closed.elapsed());
}

/// A bad ICE server for a lean session is a clear error, and the process
/// and its other sessions carry on.
#[test]
fn lean_refuses_a_bad_ice_server_and_the_bridge_stays_up() {
    let dir = test_dir("lean_refuses_a_bad_ice_server");
    let bridge = Bridge::start(&dir, &[]).unwrap();
    let kept = bridge.create("webrtc", json!({ "webrtcLeg": LEAN })).unwrap();
    let refused = bridge
        .request(
            "session.create",
            json!({ "kind": "webrtc", "webrtcLeg": LEAN, "iceServers": [{ "urls": "turns:127.0.0.1" }] }),
        )
        .unwrap();
    let message = refused["error"]["message"].as_str().unwrap_or_default();
    assert_eq!(refused["error"]["code"], -32602, "{refused}");
    assert!(message.contains("iceServers") && message.contains("username and credential"), "{refused}");
    let unknown = bridge.request("session.create", json!({ "kind": "webrtc", "webrtcLeg": "str0m" })).unwrap();
    assert!(unknown.get("error").is_some(), "an unknown leg is refused: {unknown}");
    let (kind, offer) = bridge.local_description(&kept).unwrap();
    assert_eq!(kind, "offer");
    assert!(offer.contains("a=fingerprint:") && offer.contains("a=candidate:"), "{offer}");
}

/// Offers after the first, from the bridge (`getLocalDescription` once
/// stable), against Chromium: the same audio again, in the direction the
/// bridge last answered, as webrtcbin's transceiver keeps it. The browser
/// holds (its offer `sendonly`): the bridge's re-offer stays `recvonly`
/// and the browser hears nothing; it resumes (`sendrecv`): the bridge's
/// next re-offer is `sendrecv` and the phone's tone is back.
#[test]
fn lean_bridge_reoffers_through_a_hold_and_resume() {
    reoffers("lean_bridge_reoffers", LEAN, Stack::Chromium, true);
}

/// The same with aiortc (which offers no telephone-event).
#[test]
fn lean_bridge_reoffers_aiortc_through_a_hold_and_resume() {
    reoffers("lean_bridge_reoffers_aiortc", LEAN, Stack::Aiortc, true);
}

/// The same on webrtcbin, up to the hold: webrtcbin (1.22) refuses a
/// renegotiation that changes a transceiver's direction ("transceiver
/// direction changes are not implemented"), so a browser cannot hold it by
/// offering `sendonly`.
#[test]
fn bridge_reoffers_and_audio_keeps_flowing() {
    reoffers("bridge_reoffers", WEBRTCBIN, Stack::Chromium, false);
}

fn reoffers(name: &str, leg: &str, stack: Stack, through_hold: bool) {
    let dir = test_dir(name);
    let bridge = Bridge::start(&dir, &[]).unwrap();
    let browser = WebRtcPeer::start(stack, &dir, "browser", BROWSER_TONE).unwrap();
    let mut phone = RtpPeer::start(&dir, "phone", PeerCodec::Pcmu).unwrap();
    let w = bridge.create("webrtc", json!({ "webrtcLeg": leg })).unwrap();
    let r = bridge.create("rtp", json!({})).unwrap();
    bridge.set_remote(&r, "offer", &phone.sdp(Some(20))).unwrap();
    let (_, phone_answer) = bridge.local_description(&r).unwrap();
    bridge.call("session.connect", json!({ "a": w, "b": r })).unwrap();
    phone.send_tone(PHONE_TONE, rtp_address(&phone_answer)).unwrap();

    // The browser offers (in `direction`); the bridge answers. Returns
    // whether telephone-event was negotiated.
    let browser_offers = |direction: &str| {
        let offer = browser.create_offer().unwrap().replace("a=sendrecv", &format!("a={direction}"));
        bridge.set_remote(&w, "offer", &offer).unwrap();
        let (kind, answer) = bridge.local_description(&w).unwrap();
        assert_eq!(kind, "answer");
        browser.set_remote("answer", &answer).unwrap();
        answer.to_lowercase().contains("telephone-event/")
    };
    // The bridge offers again; the browser answers. Returns the offer.
    let bridge_offers = |dtmf: bool| {
        let (kind, offer) = bridge.local_description(&w).unwrap();
        assert_eq!(kind, "offer", "once stable, the bridge offers:\n{offer}");
        assert_eq!(
            offer.to_lowercase().contains("telephone-event/"),
            dtmf,
            "telephone-event is offered again if it was negotiated:\n{offer}"
        );
        assert!(offer.contains("a=fingerprint:") && offer.contains("a=ice-ufrag:"), "{offer}");
        browser.set_remote("offer", &offer).unwrap();
        let answer = browser.create_answer().unwrap();
        bridge.set_remote(&w, "answer", &answer).unwrap();
        offer
    };
    let hears_phone = |file: &str| {
        std::thread::sleep(Duration::from_millis(700));
        let heard = browser.record(1500, &dir.join(file)).unwrap().slice(0.2, 1.5);
        (heard.tone_share(PHONE_TONE as f64), heard.rms())
    };

    let dtmf = browser_offers("sendrecv");
    assert_eq!(dtmf, stack == Stack::Chromium, "Chromium offers telephone-event, aiortc does not");
    browser.wait_connected().unwrap();
    let (share, rms) = hears_phone("browser-first.wav");
    assert!(share > 0.8 && rms > 0.05, "before any re-offer: share {share:.3}, rms {rms:.4}");

    let again = bridge_offers(dtmf);
    assert!(again.contains("a=sendrecv"), "{again}");
    let (share, rms) = hears_phone("browser-reoffered.wav");
    assert!(share > 0.8 && rms > 0.05, "after the bridge's re-offer: share {share:.3}, rms {rms:.4}");
    if !through_hold {
        return;
    }

    assert_eq!(browser_offers("sendonly"), dtmf);
    let held = bridge_offers(dtmf);
    assert!(held.contains("a=recvonly") && !held.contains("a=sendrecv"), "the hold stays in our re-offer:\n{held}");
    let (_, rms) = hears_phone("browser-held.wav");
    assert!(rms < 0.01, "a browser that holds hears nothing: rms {rms:.4}");

    assert_eq!(browser_offers("sendrecv"), dtmf);
    let resumed = bridge_offers(dtmf);
    assert!(resumed.contains("a=sendrecv"), "{resumed}");
    let (share, rms) = hears_phone("browser-resumed.wav");
    assert!(share > 0.8 && rms > 0.05, "after the resume: share {share:.3}, rms {rms:.4}");
    let heard_by_phone = phone.finish().unwrap();
    assert!(heard_by_phone.slice(1.5, 60.0).tone_share(BROWSER_TONE as f64) > 0.5, "the phone heard the browser");
}

/// The browser's receiver reports reach the bridge's statistics
/// (`remote-inbound-rtp`: the loss, jitter and round trip the call record
/// and its MOS use): a phone relayed to Chromium (PCMU both sides) skips
/// every tenth packet, which the browser reports lost. (Lean leg only:
/// webrtcbin's relay goes through its send chain, which numbers packets
/// afresh, so its browser sees no gap to report.)
#[test]
fn lean_browser_reports_what_it_lost() {
    use e2e::audio::tone;

    let name = "lean_browser_reports";
    let dir = test_dir(name);
    let bridge = Bridge::start(&dir, &[]).unwrap();
    let browser = WebRtcPeer::start(Stack::Chromium, &dir, "browser", BROWSER_TONE).unwrap();
    let w = bridge.create("webrtc", json!({ "codecs": ["PCMU"], "webrtcLeg": LEAN })).unwrap();
    bridge.set_remote(&w, "offer", &browser.create_offer().unwrap()).unwrap();
    let (_, answer) = bridge.local_description(&w).unwrap();
    browser.set_remote("answer", &answer).unwrap();
    let (phone, to_bridge) = pcmu_phone_linked_to(&bridge, &w);
    browser.wait_connected().unwrap();

    // Up to 30 s of tone, every tenth packet never sent; the browser
    // reports every few seconds (its reports cover what came since the
    // last one, so the phone keeps sending until one has shown).
    let sending = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sender = {
        let sending = sending.clone();
        std::thread::spawn(move || {
            let pcm = tone(PHONE_TONE as f64, 30.0, 8000, 0.5);
            let start = Instant::now();
            for (i, chunk) in pcm.samples.chunks(160).enumerate() {
                if !sending.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                std::thread::sleep(
                    (start + Duration::from_millis(20 * i as u64)).saturating_duration_since(Instant::now()),
                );
                if i % 10 == 9 {
                    continue;
                }
                let _ = phone.send_to(&pcmu_packet(i, chunk), to_bridge);
            }
        })
    };
    std::thread::sleep(Duration::from_millis(1000));
    let heard = browser.record(1500, &dir.join("browser-heard.wav")).unwrap().slice(0.2, 1.5);
    assert!(heard.tone_share(PHONE_TONE as f64) > 0.5, "the browser hears the phone: rms {}", heard.rms());
    let until = Instant::now() + Duration::from_secs(26);
    let remote = loop {
        let stats = bridge.call("session.getStats", json!({ "session": w })).unwrap();
        let remote = stats["stats"].as_array().unwrap().iter().find(|r| r["type"] == "remote-inbound-rtp").cloned();
        if let Some(remote) =
            remote.filter(|r| r["packetsLost"].as_i64() > Some(5) && r["fractionLost"].as_f64() > Some(0.0))
        {
            eprintln!("{name}: bridge stats {stats}");
            break remote;
        }
        assert!(Instant::now() < until, "no report of the loss from the browser: {stats}");
        std::thread::sleep(Duration::from_millis(250));
    };
    sending.store(false, std::sync::atomic::Ordering::Relaxed);
    sender.join().unwrap();
    let lost = remote["packetsLost"].as_i64().unwrap();
    assert!(lost <= 150, "one in ten of at most 1500 packets: {remote}");
    let fraction = remote["fractionLost"].as_f64().unwrap();
    assert!((0.05..0.15).contains(&fraction), "a tenth lost since the browser's previous report: {remote}");
    assert!(remote["jitter"].as_f64().unwrap() < 0.03, "paced packets on loopback: {remote}");
    let rtt = remote["roundTripTime"].as_f64().unwrap_or_else(|| panic!("no round trip: {remote}"));
    assert!(rtt > 0.0 && rtt < 0.1, "loopback: {remote}");
}

/// RTP header extensions stay on the hop they were negotiated for: Chromium
/// offers ssrc-audio-level, abs-send-time, transport-cc and mid; the lean
/// leg answers mid alone (as webrtcbin answers none of the others), and
/// what it relays from the browser reaches the phone (which negotiated no
/// extension) without any, while the browser hears the phone's tone.
#[test]
fn lean_header_extensions_stay_on_their_hop() {
    use e2e::audio::tone;

    let dir = test_dir("lean_header_extensions");
    let bridge = Bridge::start(&dir, &[]).unwrap();
    let browser = WebRtcPeer::start(Stack::Chromium, &dir, "browser", BROWSER_TONE).unwrap();
    let w = bridge.create("webrtc", json!({ "codecs": ["PCMU"], "webrtcLeg": LEAN })).unwrap();
    let offer = browser.create_offer().unwrap();
    assert!(offer.contains("transport-wide-cc") && offer.contains("ssrc-audio-level"), "{offer}");
    bridge.set_remote(&w, "offer", &offer).unwrap();
    let (_, answer) = bridge.local_description(&w).unwrap();
    let extmaps: Vec<&str> = answer.lines().filter(|l| l.starts_with("a=extmap:")).collect();
    assert_eq!(extmaps, ["a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid"], "{answer}");
    browser.set_remote("answer", &answer).unwrap();
    let (phone, to_bridge) = pcmu_phone_linked_to(&bridge, &w);
    browser.wait_connected().unwrap();

    // 4 s of tone each way; what reaches the phone is kept.
    let sender = std::thread::spawn(move || {
        let pcm = tone(PHONE_TONE as f64, 4.0, 8000, 0.5);
        let (start, mut buf, mut received) = (Instant::now(), vec![0u8; 2048], Vec::new());
        for (i, chunk) in pcm.samples.chunks(160).enumerate() {
            std::thread::sleep(
                (start + Duration::from_millis(20 * i as u64)).saturating_duration_since(Instant::now()),
            );
            let _ = phone.send_to(&pcmu_packet(i, chunk), to_bridge);
            while let Ok(n) = phone.recv(&mut buf) {
                received.push(buf[..n].to_vec());
            }
        }
        received
    });
    std::thread::sleep(Duration::from_millis(1000));
    let heard = browser.record(2000, &dir.join("browser-heard.wav")).unwrap().slice(0.2, 2.0);
    assert!(heard.tone_share(PHONE_TONE as f64) > 0.8, "the browser hears the phone: rms {}", heard.rms());
    let received = sender.join().unwrap();
    let rtp: Vec<&Vec<u8>> =
        received.iter().filter(|p| p.len() > 12 && (128..=191).contains(&p[0]) && p[1] & 0x7f == 0).collect();
    assert!(rtp.len() > 100, "{} packets of the browser's audio reached the phone", rtp.len());
    let extended = rtp.iter().filter(|p| p[0] & 0x10 != 0).count();
    assert_eq!(extended, 0, "no header extension reaches the phone ({} packets)", rtp.len());
}

/// A plain RTP phone on a socket of the test's (PCMU, non-blocking), whose
/// offer a new RTP session of the bridge answers, linked to the session
/// `webrtc` (relayed: the same codec). The socket, and where to send.
fn pcmu_phone_linked_to(bridge: &Bridge, webrtc: &str) -> (UdpSocket, SocketAddr) {
    let phone = UdpSocket::bind("127.0.0.1:0").unwrap();
    phone.set_nonblocking(true).unwrap();
    let port = phone.local_addr().unwrap().port();
    let sdp = format!("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=ptime:20\r\na=sendrecv\r\n");
    let (rtp, to_bridge) = bridge.answer_rtp(&sdp, json!({})).unwrap();
    let linked = bridge.call("session.connect", json!({ "a": webrtc, "b": rtp })).unwrap();
    assert_eq!(linked["passthrough"], json!(true), "{linked}");
    (phone, to_bridge)
}

/// Packet `i` of such a phone's stream: 20 ms of `samples` in PCMU.
fn pcmu_packet(i: usize, samples: &[f32]) -> Vec<u8> {
    let mut packet = vec![0x80, 0, 0, 0, 0, 0, 0, 0, 0x12, 0x34, 0x56, 0x78];
    packet[2..4].copy_from_slice(&(i as u16).to_be_bytes());
    packet[4..8].copy_from_slice(&(160 * i as u32).to_be_bytes());
    packet.extend(samples.iter().map(|s| ulaw_encode((*s * 32767.0) as i16)));
    packet
}
