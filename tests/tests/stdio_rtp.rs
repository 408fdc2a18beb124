//! `sipbridge stdio` between plain RTP peers (gst-launch): passthrough and
//! transcoding, both offer directions, DTMF both ways.

use e2e::audio::{read_wav, tone, ulaw_encode};
use e2e::bridge::{rtp_address, Bridge};
use e2e::process::test_dir;
use e2e::rtp_peer::{PeerCodec, RtpPeer};
use serde_json::json;
use std::net::UdpSocket;
use std::time::{Duration, Instant};

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
        assert!(
            answer.contains(&format!("RTP/AVP {} 101", a.payload_type())),
            "answer keeps the offered codec:\n{answer}"
        );
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
    bridge
        .wait_session_event(&sa, "connectionstatechange", Duration::from_secs(10), |e| e["state"] == "connected")
        .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let heard_a = peer_a.finish().unwrap();
    let heard_b = peer_b.finish().unwrap();
    let (tail_a, tail_b) = (heard_a.slice(1.0, 60.0), heard_b.slice(1.0, 60.0));
    assert!(
        tail_a.seconds() > 1.0 && tail_b.seconds() > 1.0,
        "recordings too short: {} s, {} s",
        heard_a.seconds(),
        heard_b.seconds()
    );
    assert!(
        tail_a.tone_share(1000.0) > 0.8,
        "A should hear B's 1000 Hz: share {}, rms {}",
        tail_a.tone_share(1000.0),
        tail_a.rms()
    );
    assert!(tail_a.tone_share(440.0) < 0.05, "A must not hear itself");
    assert!(
        tail_b.tone_share(440.0) > 0.8,
        "B should hear A's 440 Hz: share {}, rms {}",
        tail_b.tone_share(440.0),
        tail_b.rms()
    );
    assert!(tail_a.rms() > 0.05 && tail_b.rms() > 0.05, "levels: {} {}", tail_a.rms(), tail_b.rms());
    bridge.call("session.close", json!({ "session": sa })).unwrap();
    bridge.call("session.close", json!({ "session": sb })).unwrap();
}

#[test]
fn pcmu_to_pcmu_is_passed_through() {
    bridge_two_rtp_peers("pcmu_passthrough", PeerCodec::Pcmu, PeerCodec::Pcmu, true, true);
}

/// Two RTP legs with the same codec and packet time are joined by relaying
/// packets rather than depayloading and payloading again: what one phone
/// sends reaches the other packet for packet, a lost packet stays a gap
/// (so the far jitter buffer conceals it), under the bridge's own SSRC. A
/// recording of the relayed leg still gets the audio.
#[test]
fn same_codec_rtp_legs_are_relayed_packet_for_packet() {
    const SSRC: u32 = 0x5eed_0001;
    let dir = test_dir("relay");
    let bridge = Bridge::start(&dir, &[]).unwrap();
    let phone_a = UdpSocket::bind("127.0.0.1:0").unwrap();
    let phone_b = UdpSocket::bind("127.0.0.1:0").unwrap();
    phone_b.set_nonblocking(true).unwrap();
    let sdp = |socket: &UdpSocket| {
        let port = socket.local_addr().unwrap().port();
        format!("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=ptime:20\r\na=sendrecv\r\n")
    };
    let (sa, to_a) = bridge.answer_rtp(&sdp(&phone_a), json!({})).unwrap();
    let (sb, to_b) = bridge.answer_rtp(&sdp(&phone_b), json!({})).unwrap();
    let linked = bridge.call("session.connect", json!({ "a": sa, "b": sb })).unwrap();
    assert_eq!(linked["passthrough"], json!(true), "{linked}");
    let wav = dir.join("a.wav");
    bridge.call("session.record", json!({ "session": sa, "file": wav })).unwrap();

    // 3 s of tone in 20 ms packets; packets 20-24 are "lost" on the way.
    // 443.7 Hz puts a different phase into each of the first 500 packets,
    // so every payload tells which packet it is.
    const HZ: f64 = 443.7;
    let pcm = tone(HZ, 3.0, 8000, 0.5);
    let sent: Vec<Vec<u8>> =
        pcm.samples.chunks(160).map(|c| c.iter().map(|s| ulaw_encode((*s * 32767.0) as i16)).collect()).collect();
    let lost = 20..25;
    let mut received = Vec::new();
    let mut buf = [0u8; 2048];
    let start = Instant::now();
    for (i, payload) in sent.iter().enumerate() {
        if !lost.contains(&i) {
            let mut packet = vec![0x80, 0];
            packet.extend((1000 + i as u16).to_be_bytes());
            packet.extend((5000 + 160 * i as u32).to_be_bytes());
            packet.extend(SSRC.to_be_bytes());
            packet.extend(payload);
            phone_a.send_to(&packet, to_a).unwrap();
        }
        std::thread::sleep(
            (start + Duration::from_millis(20 * (i as u64 + 1))).saturating_duration_since(Instant::now()),
        );
        while let Ok(n) = phone_b.recv(&mut buf) {
            received.push(buf[..n].to_vec());
        }
    }
    std::thread::sleep(Duration::from_millis(200));
    while let Ok(n) = phone_b.recv(&mut buf) {
        received.push(buf[..n].to_vec());
    }

    // Which sent packet each received one is (the silence B got before
    // A's audio arrived matches none).
    let relayed: Vec<(usize, u16, u32, u32)> = received
        .iter()
        .filter_map(|p| {
            let index = sent.iter().position(|s| s.as_slice() == &p[12..])?;
            Some((
                index,
                u16::from_be_bytes([p[2], p[3]]),
                u32::from_be_bytes([p[4], p[5], p[6], p[7]]),
                u32::from_be_bytes([p[8], p[9], p[10], p[11]]),
            ))
        })
        .collect();
    assert!(relayed.len() >= 120, "B got {} of the {} packets A sent", relayed.len(), sent.len() - lost.len());
    assert!(relayed.iter().all(|r| r.3 == relayed[0].3 && r.3 != SSRC), "one stream, under the bridge's SSRC, not A's");
    for pair in relayed.windows(2) {
        let ((i, seq_i, ts_i, _), (j, seq_j, ts_j, _)) = (pair[0], pair[1]);
        assert!(j > i, "packets kept their order: {i} then {j}");
        assert_eq!(
            seq_j.wrapping_sub(seq_i) as usize,
            j - i,
            "sequence numbers keep A's spacing, gaps included ({i} -> {j})"
        );
        assert_eq!(ts_j.wrapping_sub(ts_i) as usize, (j - i) * 160, "timestamps keep A's spacing ({i} -> {j})");
    }
    assert!(
        relayed.windows(2).any(|p| p[0].0 < lost.start && p[1].0 >= lost.end),
        "the loss crossed the bridge as a gap"
    );

    // What the bridge measured (session.getStats): A's stream with its 5
    // lost packets, B's stream made of the relayed ones.
    let stats =
        |session: &str| bridge.call("session.getStats", json!({ "session": session })).unwrap()["stats"].clone();
    let report = |stats: &serde_json::Value, kind: &str| {
        stats
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["type"] == kind)
            .unwrap_or_else(|| panic!("no {kind}: {stats}"))
            .clone()
    };
    let a_stats = stats(&sa);
    let inbound = report(&a_stats, "inbound-rtp");
    let sent_count = (sent.len() - lost.len()) as u64;
    assert_eq!((inbound["ssrc"].as_u64(), inbound["codec"].as_str()), (Some(SSRC as u64), Some("PCMU")), "{inbound}");
    assert_eq!((inbound["packetsReceived"].as_u64(), inbound["packetsLost"].as_i64()), (Some(sent_count), Some(5)));
    assert!(inbound["jitter"].as_f64().unwrap() < 0.01, "paced packets: {inbound}");
    let mos = inbound["mos"].as_f64().unwrap();
    assert!((3.8..4.3).contains(&mos), "3.3 % loss: {inbound}");
    let outbound = report(&stats(&sb), "outbound-rtp");
    assert!(outbound["packetsSent"].as_u64().unwrap() >= relayed.len() as u64, "{outbound}");

    // B's receiver report about our stream: a quarter lost, 3 packets, and
    // a round trip of 0.3 s since "our" report less 0.25 s held.
    let ntp_middle = |t: std::time::SystemTime| {
        let since = t.duration_since(std::time::UNIX_EPOCH).unwrap();
        (((since.as_secs() + 2_208_988_800) as u32) << 16)
            | (since.subsec_nanos() as u64 * 65536 / 1_000_000_000) as u32
    };
    let lsr = ntp_middle(std::time::SystemTime::now() - Duration::from_millis(300));
    let mut rr = vec![0x81, 201, 0, 7, 0, 0, 0, 0x42];
    rr.extend(relayed[0].3.to_be_bytes());
    rr.extend([64, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 16]);
    rr.extend(lsr.to_be_bytes());
    rr.extend((65536u32 / 4).to_be_bytes());
    phone_b.send_to(&rr, to_b).unwrap();
    let until = Instant::now() + Duration::from_secs(5);
    let remote = loop {
        if let Some(r) = stats(&sb).as_array().unwrap().iter().find(|r| r["type"] == "remote-inbound-rtp") {
            break r.clone();
        }
        assert!(Instant::now() < until, "B's receiver report never showed");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!((remote["fractionLost"].as_f64(), remote["packetsLost"].as_i64()), (Some(0.25), Some(3)), "{remote}");
    assert_eq!(remote["jitter"].as_f64(), Some(0.002), "16 units at 8 kHz: {remote}");
    let rtt = remote["roundTripTime"].as_f64().unwrap();
    assert!((0.04..0.2).contains(&rtt), "{remote}");

    bridge.call("session.stopRecord", json!({ "session": sa })).unwrap();
    let recorded = read_wav(&wav).unwrap();
    assert!(recorded.seconds() > 2.0, "the recording holds {} s", recorded.seconds());
    assert!(recorded.slice(0.5, 60.0).tone_share(HZ) > 0.8, "the recording of the relayed leg holds A's tone");
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
/// `disconnected` and `mediatimeout` after the RTP timeout; the bridge
/// stays up and another call goes on untouched.
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
    bridge
        .wait_session_event(&sa0, "connectionstatechange", Duration::from_secs(10), |e| e["state"] == "connected")
        .unwrap();
    calls[0].0.stop_sending();
    bridge
        .wait_session_event(&sa0, "connectionstatechange", Duration::from_secs(6), |e| e["state"] == "disconnected")
        .unwrap();
    let timeout = bridge.wait_session_event(&sa0, "mediatimeout", Duration::from_secs(2), |_| true).unwrap();
    assert_eq!(timeout["held"], json!(false), "{timeout}");
    assert!(timeout["silentMs"].as_u64().unwrap() > 1500, "{timeout}");
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
