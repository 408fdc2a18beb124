//! A conference across codecs: three RTP phones (GStreamer) speaking Opus,
//! G.722 and PCMU, called in through signaling's user agent, each with its
//! own tone. The daemon transcodes each to and from the room: everyone hears
//! the two others and not itself. Then the Opus phone stops sending without
//! a word (no BYE): the two others must go on hearing each other.

use e2e::bridge::rtp_address;
use e2e::daemon::Daemon;
use e2e::process::test_dir;
use e2e::rtp_peer::{PeerCodec, RtpPeer};
use signaling::{Call, CallEvent, Caller, Config, Listen, Transport, UserAgent};
use std::time::Duration;

async fn answered(call: &mut Call) -> String {
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(10), call.next_event())
            .await
            .expect("answer in time")
            .expect("call event");
        match ev {
            CallEvent::Answered { sdp: Some(sdp) } => return sdp,
            CallEvent::Trying | CallEvent::Ringing | CallEvent::Progress { .. } => {}
            other => panic!("expected an answer, got {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conference_across_opus_g722_and_pcmu_survives_a_stalled_phone() {
    let dir = test_dir("daemon_conference_codecs");
    let daemon = Daemon::start(&dir, "preset = \"conference\"\n", &[]).unwrap();
    let ua = UserAgent::start(Config {
        listen: vec![Listen { transport: Transport::Udp, addr: "127.0.0.1:0".parse().unwrap() }],
        ..Config::default()
    })
    .await
    .unwrap();
    let phones = [(PeerCodec::Opus, 440u32, "opus"), (PeerCodec::G722, 1000, "g722"), (PeerCodec::Pcmu, 700, "pcmu")];
    let mut peers = Vec::new();
    let mut calls = Vec::new();
    for (codec, hz, name) in phones {
        let mut peer = RtpPeer::start(&dir, name, codec).unwrap();
        let caller = Caller::Guest { uri: format!("sip:{name}@127.0.0.1"), display_name: None };
        let mut call = ua.invite(caller, &daemon.uri("3000"), Some(peer.sdp(Some(20))), &[]).unwrap();
        let answer = answered(&mut call).await;
        peer.send_tone(hz, rtp_address(&answer)).unwrap();
        peers.push(peer);
        calls.push(call);
    }
    for codec in ["codec=opus", "codec=G722", "codec=PCMU"] {
        daemon.wait_lines(&["answered", codec], 1, Duration::from_secs(2)).unwrap();
    }
    tokio::time::sleep(Duration::from_secs(4)).await;
    // The Opus phone goes silent without hanging up.
    peers[0].stop_sending();
    tokio::time::sleep(Duration::from_secs(3)).await;
    for call in &calls {
        call.bye().await.unwrap();
    }
    let heard: Vec<e2e::audio::Pcm> = peers.into_iter().map(|p| p.finish().unwrap()).collect();
    let freqs = [440.0, 1000.0, 700.0];
    for (i, pcm) in heard.iter().enumerate() {
        let together = pcm.slice(1.5, 3.5);
        for (j, f) in freqs.iter().enumerate() {
            if i == j {
                assert!(
                    together.tone_share(*f) < 0.05,
                    "{} must not hear itself: share {}",
                    phones[i].2,
                    together.tone_share(*f)
                );
            } else {
                assert!(
                    together.tone_share(*f) > 0.25,
                    "{} should hear {f} Hz: share {}, rms {}",
                    phones[i].2,
                    together.tone_share(*f),
                    together.rms()
                );
            }
        }
    }
    // After the Opus phone stalled: G.722 and PCMU still hear each other.
    for (i, other) in [(1usize, 700.0), (2, 1000.0)] {
        let after = heard[i].slice(5.0, 6.5);
        assert!(
            after.tone_share(other) > 0.8,
            "{} should still hear {other} Hz: share {}, rms {}",
            phones[i].2,
            after.tone_share(other),
            after.rms()
        );
    }
}
