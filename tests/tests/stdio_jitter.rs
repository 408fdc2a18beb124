//! Bursty senders through `sipbridge stdio`: a phone that holds its packets
//! back 100-250 ms and then sends them at once, and loses 2% on the way.
//! Passthrough (plain RTP to plain RTP, RTP to WebRTC and back) must
//! deliver every packet that arrived, bursts included: de-jittering belongs
//! to whoever decodes. Transcoded calls decode here, behind a jitter buffer
//! that must adapt to the bursts rather than drop what comes later than a
//! fixed latency. The far side counts what it received and checks the tone.

use e2e::audio::{tone, ulaw_decode, ulaw_encode, Pcm};
use e2e::bridge::Bridge;
use e2e::bursty::Bursts;
use e2e::process::test_dir;
use e2e::rtp_peer::rtp_payload;
use e2e::webrtc_load::{Audio, Client, Shared};
use serde_json::json;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

const PTIME: Duration = Duration::from_millis(20);
/// 8 s of packets.
const PACKETS: usize = 400;
const TONE: f64 = 440.0;

/// PCMU payloads of a continuous tone, one per packet.
fn pcmu_tone(hz: f64) -> Arc<Vec<Vec<u8>>> {
    let pcm = tone(hz, PACKETS as f64 * 0.02, 8000, 0.5);
    Arc::new(pcm.samples.chunks(160).map(|c| c.iter().map(|s| ulaw_encode((*s * 32767.0) as i16)).collect()).collect())
}

fn sdp(port: u16, codec: &str) -> String {
    let (pt, rtpmap) = match codec {
        "PCMU" => (0, "PCMU/8000"),
        _ => (96, "opus/48000/2"),
    };
    format!("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {port} RTP/AVP {pt}\r\na=rtpmap:{pt} {rtpmap}\r\na=ptime:20\r\na=sendrecv\r\n")
}

/// The far side of a call: a plain RTP socket or a WebRTC client.
enum Far {
    Rtp { socket: UdpSocket, opus: bool, loud: usize, heard: Vec<f32> },
    WebRtc(Box<Client>),
}

impl Far {
    fn service(&mut self, buf: &mut [u8], decoder: &mut opus::Decoder) {
        match self {
            Far::Rtp { socket, opus, loud, heard } => {
                while let Ok(n) = socket.recv(buf) {
                    let Some(payload) = rtp_payload(&buf[..n]).filter(|_| !(200..=204).contains(&buf[1])) else {
                        continue;
                    };
                    let samples: Vec<f32> = if *opus {
                        let mut frame = vec![0f32; 5760];
                        let n = decoder.decode_float(payload, &mut frame, false).unwrap_or(0);
                        frame.truncate(n);
                        frame
                    } else {
                        payload.iter().map(|b| ulaw_decode(*b)).collect()
                    };
                    if samples.iter().any(|s| s.abs() > 0.1) {
                        *loud += 1;
                        heard.extend(samples);
                    }
                }
            }
            Far::WebRtc(client) => client.service(buf),
        }
    }

    /// Counts and keeps from now on.
    fn start(&mut self) {
        if let Far::WebRtc(client) = self {
            client.received = 0;
            client.keep_audio(true);
        }
    }

    /// Audio packets received and what they decode to.
    fn received(&self, opus_rate: u32) -> (usize, Pcm) {
        match self {
            Far::Rtp { loud, heard, opus, .. } => {
                (*loud, Pcm { rate: if *opus { opus_rate } else { 8000 }, samples: heard.clone() })
            }
            Far::WebRtc(client) => (client.received as usize, client.heard().unwrap()),
        }
    }
}

/// The bursty sender: a plain RTP socket or a WebRTC client.
enum Near {
    Rtp { socket: UdpSocket, to: SocketAddr, payloads: Arc<Vec<Vec<u8>>> },
    WebRtc(Box<Client>),
}

impl Near {
    fn send(&mut self, i: usize) {
        match self {
            Near::Rtp { socket, to, payloads } => {
                if Bursts::lost(i) {
                    return;
                }
                let mut packet = vec![0x80, 0];
                packet.extend((7000 + i as u16).to_be_bytes());
                packet.extend((90_000 + 160 * i as u32).to_be_bytes());
                packet.extend(0x5eed_0002u32.to_be_bytes());
                packet.extend(&payloads[i % payloads.len()]);
                socket.send_to(&packet, *to).unwrap();
            }
            Near::WebRtc(client) if Bursts::lost(i) => client.skip_frame(),
            Near::WebRtc(client) => client.send_frame(),
        }
    }

    fn service(&mut self, buf: &mut [u8]) {
        match self {
            Near::Rtp { socket, .. } => while socket.recv(buf).is_ok() {},
            Near::WebRtc(client) => client.service(buf),
        }
    }
}

/// Opus payloads (48 kHz mono, 20 ms) of a continuous tone, one per packet.
fn opus_tone(hz: f64) -> Arc<Vec<Vec<u8>>> {
    let pcm = tone(hz, PACKETS as f64 * 0.02, 48000, 0.5);
    let mut encoder = opus::Encoder::new(48000, opus::Channels::Mono, opus::Application::Audio).unwrap();
    let frames = pcm.samples.chunks(960).map(|c| c.iter().map(|s| (*s * 32767.0) as i16).collect::<Vec<i16>>());
    Arc::new(frames.map(|frame| encoder.encode_vec(&frame, 1500).unwrap()).collect())
}

/// A WebRTC client offering `audio` and a session of the bridge (its
/// `leg`: webrtcbin or lean) answering it.
fn webrtc_session(
    bridge: &Bridge,
    shared: &Shared,
    audio: Audio,
    payloads: Arc<Vec<Vec<u8>>>,
    leg: &str,
) -> (String, Client) {
    let mut client = Client::new(shared, audio, payloads, 0).unwrap();
    let codec = if audio == Audio::Pcmu { "PCMU" } else { "OPUS" };
    let s = bridge.create("webrtc", json!({ "codecs": [codec], "webrtcLeg": leg })).unwrap();
    bridge.set_remote(&s, "offer", client.offer()).unwrap();
    let (_, answer) = bridge.local_description(&s).unwrap();
    client.accept_answer(&answer).unwrap();
    (s, client)
}

/// Sends PACKETS packets from `near` on the bursty schedule, `far`
/// receiving, both serviced every millisecond; returns when the last burst
/// has had time to arrive, and before the bridge's silence filler (500 ms
/// after the last audio) would add packets of its own.
fn run(mut near: Near, far: &mut Far) {
    let bursts = Bursts::new(PACKETS, PTIME);
    let mut buf = vec![0u8; 2048];
    let mut decoder = opus::Decoder::new(48000, opus::Channels::Mono).unwrap();
    // Both ends up first (DTLS on a WebRTC leg).
    let up = Instant::now();
    while up.elapsed() < Duration::from_millis(1500) {
        near.service(&mut buf);
        far.service(&mut buf, &mut decoder);
        std::thread::sleep(Duration::from_millis(1));
    }
    far.start();
    let start = Instant::now();
    let mut next = 0;
    while next < PACKETS || start.elapsed() < bursts.release(PACKETS - 1) + Duration::from_millis(400) {
        while next < PACKETS && start.elapsed() >= bursts.release(next) {
            near.send(next);
            next += 1;
        }
        near.service(&mut buf);
        far.service(&mut buf, &mut decoder);
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Checks the far side got `min_share` of what was sent, and the tone.
fn check(what: &str, far: &Far, min_share: f64) {
    let sent = Bursts::delivered_of(PACKETS);
    let (received, heard) = far.received(48000);
    let share = received as f64 / sent as f64;
    eprintln!("{what}: {received} of {sent} packets sent ({:.1}%)", share * 100.0);
    assert!(share >= min_share, "{what}: the far side got {received} of {sent} packets ({:.1}%)", share * 100.0);
    assert!(heard.seconds() > 3.0, "{what}: {} s heard", heard.seconds());
    let t = heard.tone_share(TONE);
    assert!(t > 0.8, "{what}: the far side hears {TONE} Hz: share {t:.2}");
}

fn rtp_far(codec: &str) -> (Far, String) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_nonblocking(true).unwrap();
    let offer = sdp(socket.local_addr().unwrap().port(), codec);
    (Far::Rtp { socket, opus: codec != "PCMU", loud: 0, heard: Vec::new() }, offer)
}

fn rtp_near(bridge: &Bridge, codec: &str) -> (Near, String) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_nonblocking(true).unwrap();
    let (s, to) = bridge.answer_rtp(&sdp(socket.local_addr().unwrap().port(), codec), json!({})).unwrap();
    (Near::Rtp { socket, to, payloads: pcmu_tone(TONE) }, s)
}

/// Phone A sends in bursts; phone B (PCMU: relayed; Opus: transcoded) hears it.
fn rtp_to_rtp(name: &str, far_codec: &str, min_share: f64) {
    let dir = test_dir(name);
    let bridge = Bridge::start(&dir, &[]).unwrap();
    let (near, sa) = rtp_near(&bridge, "PCMU");
    let (mut far, offer) = rtp_far(far_codec);
    let (sb, _) = bridge.answer_rtp(&offer, json!({ "codecs": [far_codec] })).unwrap();
    let linked = bridge.call("session.connect", json!({ "a": sa, "b": sb })).unwrap();
    assert_eq!(linked["passthrough"], json!(far_codec == "PCMU"), "{linked}");
    run(near, &mut far);
    check(name, &far, min_share);
}

#[test]
fn bursts_are_relayed_whole_between_rtp_legs() {
    rtp_to_rtp("jitter_rtp_relay", "PCMU", 0.99);
}

#[test]
fn bursts_are_transcoded_without_loss() {
    rtp_to_rtp("jitter_rtp_transcoded", "OPUS", 0.97);
}

#[test]
fn bursts_reach_a_webrtc_leg_whole() {
    let dir = test_dir("jitter_rtp_to_webrtc");
    let bridge = Bridge::start(&dir, &[]).unwrap();
    let shared = Shared::new().unwrap();
    let (near, sa) = rtp_near(&bridge, "PCMU");
    let (sb, client) = webrtc_session(&bridge, &shared, Audio::Pcmu, pcmu_tone(1000.0), "webrtcbin");
    bridge.call("session.connect", json!({ "a": sa, "b": sb })).unwrap();
    let mut far = Far::WebRtc(Box::new(client));
    run(near, &mut far);
    check("RTP -> WebRTC passthrough", &far, 0.99);
}

/// A WebRTC client (on the bridge's `leg`) sends `audio` in bursts; a PCMU
/// phone hears it (PCMU: relayed; Opus: transcoded).
fn webrtc_to_rtp(name: &str, leg: &str, audio: Audio, min_share: f64) {
    let dir = test_dir(name);
    let bridge = Bridge::start(&dir, &[]).unwrap();
    let shared = Shared::new().unwrap();
    let tone = if audio == Audio::Pcmu { pcmu_tone(TONE) } else { opus_tone(TONE) };
    let (sa, client) = webrtc_session(&bridge, &shared, audio, tone, leg);
    let (mut far, offer) = rtp_far("PCMU");
    let (sb, _) = bridge.answer_rtp(&offer, json!({})).unwrap();
    let linked = bridge.call("session.connect", json!({ "a": sa, "b": sb })).unwrap();
    assert_eq!(linked["passthrough"], json!(audio == Audio::Pcmu), "{linked}");
    run(Near::WebRtc(Box::new(client)), &mut far);
    check(name, &far, min_share);
}

#[test]
fn bursts_from_a_webrtc_leg_reach_an_rtp_leg_whole() {
    webrtc_to_rtp("jitter_webrtc_to_rtp", "webrtcbin", Audio::Pcmu, 0.99);
}

/// The lean WebRTC leg decodes behind a jitter buffer of its own, with no
/// thread (`leg/reorder.rs`, not rtpbin's): a browser's bursty Opus,
/// transcoded to a PCMU phone, must reach it whole and in tune.
#[test]
fn bursts_from_a_lean_webrtc_leg_are_transcoded_without_loss() {
    webrtc_to_rtp("jitter_lean_transcoded", "lean", Audio::Opus, 0.97);
}

#[test]
fn a_bursty_member_is_heard_whole_in_a_room() {
    let dir = test_dir("jitter_room");
    let bridge = Bridge::start(&dir, &[]).unwrap();
    let (near, sa) = rtp_near(&bridge, "PCMU");
    let (mut far, offer) = rtp_far("PCMU");
    let (sb, _) = bridge.answer_rtp(&offer, json!({})).unwrap();
    for session in [&sa, &sb] {
        bridge.call("room.join", json!({ "room": "bursty", "session": session, "rate": 8000 })).unwrap();
    }
    run(near, &mut far);
    check("bursty room member", &far, 0.95);
}
