//! `sipbridge stdio` between plain RTP peers (gst-launch): passthrough and
//! transcoding, both offer directions, DTMF both ways.

use e2e::bridge::{rtp_address, Bridge};
use e2e::process::test_dir;
use e2e::rtp_peer::{PeerCodec, RtpPeer};
use serde_json::json;
use std::time::Duration;


/// Two RTP peers with different tones, bridged; each must hear the other.
/// `a_offers`: peer A's SDP is the offer (else the bridge offers to A).
fn bridge_two_rtp_peers(name: &str, a: PeerCodec, b: PeerCodec, a_offers: bool, expect_passthrough: bool) {
    let dir = test_dir(name);
    let bridge = Bridge::start(&dir, &[]).unwrap();
    let mut peer_a = RtpPeer::start(&dir, "peer-a", a).unwrap();
    let mut peer_b = RtpPeer::start(&dir, "peer-b", b).unwrap();
    let sa = bridge.create("rtp", json!({})).unwrap();
    let sb = bridge.create("rtp", json!({ "codecs": ["PCMU", "PCMA", "G722", "OPUS"] })).unwrap();

    let bridge_a = if a_offers {
        bridge.set_remote(&sa, "offer", &peer_a.sdp(Some(20))).unwrap();
        let (kind, answer) = bridge.local_description(&sa).unwrap();
        assert_eq!(kind, "answer");
        assert!(answer.contains(&format!("RTP/AVP {} 101", a.payload_type())), "answer keeps the offered codec:\n{answer}");
        rtp_address(&answer)
    } else {
        let (kind, offer) = bridge.local_description(&sa).unwrap();
        assert_eq!(kind, "offer");
        bridge.set_remote(&sa, "answer", &peer_a.sdp(None)).unwrap();
        rtp_address(&offer)
    };
    let (_, offer_b) = bridge.local_description(&sb).unwrap();
    bridge.set_remote(&sb, "answer", &peer_b.sdp(Some(30))).unwrap();
    let bridge_b = rtp_address(&offer_b);

    let linked = bridge.call("session.connect", json!({ "a": sa, "b": sb })).unwrap();
    assert_eq!(linked["passthrough"], json!(expect_passthrough), "{linked}");
    peer_a.send_tone(440, bridge_a).unwrap();
    peer_b.send_tone(1000, bridge_b).unwrap();
    bridge.wait_session_event(&sa, "connectionstatechange", Duration::from_secs(10), |e| e["state"] == "connected").unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let heard_a = peer_a.finish().unwrap();
    let heard_b = peer_b.finish().unwrap();
    let (tail_a, tail_b) = (heard_a.slice(1.0, 60.0), heard_b.slice(1.0, 60.0));
    assert!(tail_a.seconds() > 1.0 && tail_b.seconds() > 1.0, "recordings too short: {} s, {} s", heard_a.seconds(), heard_b.seconds());
    assert!(tail_a.tone_share(1000.0) > 0.8, "A should hear B's 1000 Hz: share {}, rms {}", tail_a.tone_share(1000.0), tail_a.rms());
    assert!(tail_a.tone_share(440.0) < 0.05, "A must not hear itself");
    assert!(tail_b.tone_share(440.0) > 0.8, "B should hear A's 440 Hz: share {}, rms {}", tail_b.tone_share(440.0), tail_b.rms());
    assert!(tail_a.rms() > 0.05 && tail_b.rms() > 0.05, "levels: {} {}", tail_a.rms(), tail_b.rms());
    bridge.call("session.close", json!({ "session": sa })).unwrap();
    bridge.call("session.close", json!({ "session": sb })).unwrap();
}

#[test]
fn pcmu_to_pcmu_is_passed_through() {
    bridge_two_rtp_peers("pcmu_passthrough", PeerCodec::Pcmu, PeerCodec::Pcmu, true, true);
}

#[test]
fn opus_rtp_to_pcmu_is_transcoded_bridge_offering() {
    bridge_two_rtp_peers("opus_pcmu", PeerCodec::Opus, PeerCodec::Pcmu, false, false);
}

#[test]
fn g722_to_pcma_is_transcoded() {
    bridge_two_rtp_peers("g722_pcma", PeerCodec::G722, PeerCodec::Pcma, true, false);
}

/// A phone that vanishes mid-call (no BYE, its RTP just stops) is reported
/// `disconnected` after the RTP timeout; the bridge stays up and another
/// call goes on untouched.
#[test]
fn a_vanished_peer_is_reported_and_other_calls_go_on() {
    let dir = test_dir("vanished_peer");
    let bridge = Bridge::start(&dir, &[]).unwrap();
    let mut calls = Vec::new();
    for (n, tones) in [(0, (440, 1000)), (1, (700, 1600))] {
        let mut a = RtpPeer::start(&dir, &format!("a{n}"), PeerCodec::Pcmu).unwrap();
        let mut b = RtpPeer::start(&dir, &format!("b{n}"), PeerCodec::Pcmu).unwrap();
        let (sa, to_a) = bridge.answer_rtp(&a.sdp(None), json!({ "rtpTimeoutMs": 1500 })).unwrap();
        let (sb, to_b) = bridge.answer_rtp(&b.sdp(None), json!({})).unwrap();
        bridge.call("session.connect", json!({ "a": sa, "b": sb })).unwrap();
        a.send_tone(tones.0, to_a).unwrap();
        b.send_tone(tones.1, to_b).unwrap();
        calls.push((a, b, sa, tones));
    }
    let sa0 = calls[0].2.clone();
    bridge.wait_session_event(&sa0, "connectionstatechange", Duration::from_secs(10), |e| e["state"] == "connected").unwrap();
    calls[0].0.stop_sending();
    bridge.wait_session_event(&sa0, "connectionstatechange", Duration::from_secs(6), |e| e["state"] == "disconnected").unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let mut bridge = bridge;
    assert!(bridge.is_running());
    let (a1, b1, _, tones) = calls.pop().unwrap();
    let heard_a = a1.finish().unwrap();
    let heard_b = b1.finish().unwrap();
    let (ta, tb) = (heard_a.slice(heard_a.seconds() - 1.5, 60.0), heard_b.slice(heard_b.seconds() - 1.5, 60.0));
    assert!(ta.tone_share(tones.1 as f64) > 0.8, "the other call still flows: {}", ta.tone_share(tones.1 as f64));
    assert!(tb.tone_share(tones.0 as f64) > 0.8, "the other call still flows: {}", tb.tone_share(tones.0 as f64));
}
