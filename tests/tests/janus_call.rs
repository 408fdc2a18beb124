//! One WebRTC <-> SIP call through the Janus gateway's SIP plugin, the
//! benchmarks' side-by-side anchor (src/janus.rs): proves the driver works
//! end to end with real audio both ways.
//!
//! Ignored by default (it needs the bench-only `janus` package:
//! `scripts/install-deps.sh --bench`). Run it inside a network namespace:
//!
//! ```sh
//! scripts/netns.sh cargo test -p e2e --test janus_call -- --ignored --nocapture
//! ```
//!
//! WebRTC side: aiortc (tests/peers/aiortc_peer.py), its offer cut down to
//! PCMU; it sends 1000 Hz. SIP side: our UAS answers Janus's INVITE with
//! PCMU pointing at a symmetric-RTP socket (`PcmuPhone`) that sends 440 Hz.

use e2e::janus::{pcmu_only, setup_ice_interface, Janus, PcmuPhone, SipUas};
use e2e::process::test_dir;
use e2e::webrtc_peer::{Stack, WebRtcPeer};
use std::time::{Duration, Instant};

#[test]
#[ignore = "needs the bench-only janus package; run under scripts/netns.sh with --ignored"]
fn janus_sip_plugin_relays_pcmu_both_ways() {
    setup_ice_interface().unwrap();
    let dir = test_dir("janus_call");
    let janus = Janus::start(&dir).unwrap();
    let uas = SipUas::start().unwrap();
    let phone = PcmuPhone::bind().unwrap();
    uas.expect("far", phone.port());
    let web = WebRtcPeer::start(Stack::Aiortc, &dir, "web", 1000).unwrap();

    let offer = pcmu_only(&web.create_offer().unwrap());
    let session = janus.session().unwrap();
    let handle = session.attach_sip().unwrap();
    handle.register_guest("sip:web@127.0.0.1").unwrap();
    let started = Instant::now();
    handle.call(&uas.uri("far"), &offer).unwrap();
    let janus_rtp = uas.wait_answered("far", Duration::from_secs(10)).unwrap();
    let answer = handle.wait_accepted(Duration::from_secs(10)).unwrap();
    eprintln!(
        "janus: INVITE to 200 in {:?}; its RTP on the SIP side: {janus_rtp}\nanswer to WebRTC:\n{answer}",
        started.elapsed()
    );
    assert!(answer.contains("PCMU/8000"), "{answer}");
    web.set_remote("answer", &answer).unwrap();
    web.wait_connected().unwrap();
    eprintln!("janus: WebRTC connected {:?} after the call request", started.elapsed());
    let phone = phone.run(440.0, janus_rtp, Duration::from_secs(5));

    std::thread::sleep(Duration::from_secs(1));
    let heard_web = web.record(3000, &dir.join("web-received.wav")).unwrap();
    let stats = web.stats().unwrap();
    eprintln!("aiortc stats: {stats}");
    assert!(handle.webrtc_up(), "janus never reported webrtcup");
    handle.hangup().unwrap();
    let heard_phone = phone.join().unwrap().unwrap();
    e2e::audio::write_wav(&dir.join("phone-received.wav"), &heard_phone).unwrap();

    let share = heard_web.tone_share(440.0);
    eprintln!("WebRTC side heard 440 Hz: share {share:.3}, rms {:.3}", heard_web.rms());
    assert!(share > 0.8 && heard_web.rms() > 0.05, "WebRTC side: 440 Hz share {share}, rms {}", heard_web.rms());
    assert_eq!(stats["inbound"]["codec"], "audio/PCMU", "{stats}");
    assert_eq!(stats["outbound"]["codec"], "audio/PCMU", "{stats}");

    let tail = heard_phone.slice(0.5, heard_phone.seconds() - 0.2);
    let share = tail.tone_share(1000.0);
    eprintln!("SIP side heard 1000 Hz: share {share:.3}, rms {:.3} over {:.1} s", tail.rms(), tail.seconds());
    assert!(tail.seconds() > 2.0, "SIP side recorded only {:.1} s", heard_phone.seconds());
    assert!(share > 0.8 && tail.rms() > 0.05, "SIP side: 1000 Hz share {share}, rms {}", tail.rms());
    assert!(uas.errors().is_empty(), "{:?}", uas.errors());
    session.destroy().unwrap();
}

/// Three calls at once through one Janus session (the bench's shape: one
/// session, one SIP handle per call): each side hears only its own peer.
#[test]
#[ignore = "needs the bench-only janus package; run under scripts/netns.sh with --ignored"]
fn janus_keeps_concurrent_calls_apart() {
    let dir = test_dir("janus_calls");
    let relay = e2e::janus::JanusCalls::start(&dir).unwrap();
    let web_tones = [600u32, 1000, 1400];
    let phone_tones = [440.0, 800.0, 1200.0];
    let mut webs = Vec::new();
    let mut phones = Vec::new();
    let mut calls = Vec::new();
    for (n, hz) in web_tones.iter().enumerate() {
        let web = WebRtcPeer::start(Stack::Aiortc, &dir, &format!("web{n}"), *hz).unwrap();
        let phone = PcmuPhone::bind().unwrap();
        let call = relay.call(n, &pcmu_only(&web.create_offer().unwrap()), phone.port()).unwrap();
        web.set_remote("answer", &call.answer).unwrap();
        webs.push(web);
        phones.push((phone, call.janus_rtp));
        calls.push(call);
    }
    for web in &webs {
        web.wait_connected().unwrap();
    }
    let phones: Vec<_> =
        phones.into_iter().zip(phone_tones).map(|((p, to), hz)| p.run(hz, to, Duration::from_secs(5))).collect();
    std::thread::sleep(Duration::from_secs(1));
    // All three record at once.
    let recs: Vec<_> = (webs.iter().enumerate())
        .map(|(n, w)| {
            w.io.send(
                serde_json::json!({"cmd": "record", "ms": 2500, "path": dir.join(format!("web{n}-received.wav"))}),
            )
            .unwrap()
        })
        .collect();
    for (n, (web, id)) in webs.iter().zip(recs).enumerate() {
        let reply = web.io.reply(&id, Duration::from_secs(10)).unwrap();
        assert!(reply.get("error").is_none(), "{reply}");
        let pcm = e2e::audio::read_wav(&dir.join(format!("web{n}-received.wav"))).unwrap();
        let share = pcm.tone_share(phone_tones[n]);
        eprintln!("web{n} heard {} Hz: share {share:.3}", phone_tones[n]);
        assert!(share > 0.8, "web{n}: share of {} Hz {share}, rms {}", phone_tones[n], pcm.rms());
    }
    for call in calls {
        relay.hang_up(call).unwrap();
    }
    for (n, phone) in phones.into_iter().enumerate() {
        let pcm = phone.join().unwrap().unwrap();
        let tail = pcm.slice(0.5, pcm.seconds() - 0.2);
        let share = tail.tone_share(web_tones[n] as f64);
        eprintln!("phone{n} heard {} Hz: share {share:.3} over {:.1} s", web_tones[n], tail.seconds());
        assert!(
            tail.seconds() > 2.0 && share > 0.8,
            "phone{n}: share of {} Hz {share} over {:.1} s",
            web_tones[n],
            tail.seconds()
        );
    }
    assert!(relay.uas.errors().is_empty(), "{:?}", relay.uas.errors());
}
