//! RFC 4733 DTMF on the RTP leg, both ways.

use e2e::bridge::{rtp_address, Bridge};
use e2e::process::{free_udp_port, test_dir};
use serde_json::json;
use std::net::UdpSocket;
use std::time::Duration;

fn peer_offer(port: u16) -> String {
    format!(
        "v=0\r\no=phone 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {port} RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n"
    )
}

/// One RFC 4733 packet: PT 101, the given marker bit, sequence number,
/// timestamp and event payload.
fn telephone_event(seq: u16, timestamp: u32, marker: bool, event: u8, end: bool, duration: u16) -> Vec<u8> {
    let mut p = vec![0x80, (if marker { 0x80 } else { 0 }) | 101];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&timestamp.to_be_bytes());
    p.extend_from_slice(&0x1234_5678u32.to_be_bytes());
    p.extend_from_slice(&[event, if end { 0x80 | 10 } else { 10 }]);
    p.extend_from_slice(&duration.to_be_bytes());
    p
}

#[test]
fn rfc4733_from_the_peer_becomes_one_event_per_key_even_without_marker_bits() {
    let dir = test_dir("dtmf_in");
    let bridge = Bridge::start(&dir, &[]).unwrap();
    let phone = UdpSocket::bind("127.0.0.1:0").unwrap();
    let s = bridge.create("rtp", json!({})).unwrap();
    bridge.set_remote(&s, "offer", &peer_offer(phone.local_addr().unwrap().port())).unwrap();
    let (_, answer) = bridge.local_description(&s).unwrap();
    assert!(answer.contains("telephone-event/8000"), "{answer}");
    let to = rtp_address(&answer);
    let mut seq = 100u16;
    // '5' as linphone-like phones send it: no marker bit, three end packets.
    // '#' by the book: marker on the first packet.
    for (event, ts, marker) in [(5u8, 8000u32, false), (11, 16000, true)] {
        for (i, end) in [false, false, false, true, true, true].into_iter().enumerate() {
            let marker = marker && i == 0;
            phone.send_to(&telephone_event(seq, ts, marker, event, end, 160 * (i as u16 + 1)), to).unwrap();
            seq = seq.wrapping_add(1);
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    bridge.wait_session_event(&s, "dtmf", Duration::from_secs(5), |e| e["tone"] == "5").unwrap();
    bridge.wait_session_event(&s, "dtmf", Duration::from_secs(5), |e| e["tone"] == "#").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let tones: Vec<String> = bridge
        .io
        .events()
        .iter()
        .filter(|e| e["params"]["type"] == "dtmf")
        .map(|e| e["params"]["tone"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(tones, vec!["5", "#"], "exactly one event per key press");
}

#[test]
fn send_dtmf_reaches_a_gstreamer_rfc4733_decoder() {
    let dir = test_dir("dtmf_out");
    let bridge = Bridge::start(&dir, &[]).unwrap();
    let port = free_udp_port();
    // rtpdtmfdepay posts a `dtmf-event` message per key; -m prints them.
    let pipeline = format!(
        "udpsrc address=127.0.0.1 port={port} caps=\"application/x-rtp,media=audio,clock-rate=8000,encoding-name=TELEPHONE-EVENT,payload=101\" ! rtpdtmfdepay ! fakesink"
    );
    let mut decoder = {
        let mut cmd = std::process::Command::new("gst-launch-1.0");
        cmd.arg("-m").args(e2e::rtp_peer::shell_words(&pipeline));
        e2e::process::spawn(&mut cmd, &dir, "dtmf-decoder", Duration::from_secs(60)).unwrap()
    };
    let s = bridge.create("rtp", json!({})).unwrap();
    bridge.set_remote(&s, "offer", &peer_offer(port)).unwrap();
    bridge.local_description(&s).unwrap();
    bridge.call("session.sendDtmf", json!({ "session": s, "tones": "1#9", "duration": 120 })).unwrap();
    decoder.wait_for_log("number=(int)9", Duration::from_secs(10)).unwrap();
    let log = decoder.log();
    let numbers: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("(element): dtmf-event"))
        .filter_map(|l| l.split("number=(int)").nth(1)?.split(',').next())
        .collect();
    assert_eq!(numbers, vec!["1", "11", "9"], "decoded key presses, in order:\n{log}");
    let err = bridge.request("session.sendDtmf", json!({ "session": s, "tones": "1x" })).unwrap();
    assert_eq!(err["error"]["code"], 1005, "{err}");
}
