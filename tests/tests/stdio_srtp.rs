//! SDES-SRTP over `sipbridge stdio`: the per-session policy (`srtp`), the
//! refusals a SIP layer answers with 488, and audio between two RTP
//! sessions of the bridge keyed with AEAD_AES_128_GCM.

use e2e::audio::{read_wav, tone, write_wav};
use e2e::bridge::Bridge;
use e2e::process::test_dir;
use serde_json::{json, Value};
use std::time::Duration;

const PLAIN: &str = "v=0\r\no=x 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";

fn savp(crypto: &str) -> String {
    PLAIN.replace("RTP/AVP", "RTP/SAVP") + &format!("a=crypto:{crypto}\r\n")
}

const KEY_80: &str = "1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz";

fn offer(bridge: &Bridge, session: &str, sdp: &str) -> Value {
    bridge.request("session.setRemoteDescription", json!({ "session": session, "type": "offer", "sdp": sdp })).unwrap()
}

#[test]
fn policies_answer_refuse_and_offer() {
    let dir = test_dir("stdio_srtp_policies");
    let bridge = Bridge::start(&dir, &[]).unwrap();

    // Mandatory refuses a plain offer: 1010, SIP 488; the session stays usable.
    let mandatory = bridge.create("rtp", json!({ "srtp": "mandatory" })).unwrap();
    let r = offer(&bridge, &mandatory, PLAIN);
    assert_eq!(r["error"]["code"], 1010, "{r}");
    assert_eq!(r["error"]["data"]["sipStatus"], 488, "{r}");
    assert!(r["error"]["message"].as_str().unwrap().contains("a=crypto"), "{r}");
    assert!(offer(&bridge, &mandatory, &savp(KEY_80)).get("result").is_some());
    let (_, answer) = bridge.local_description(&mandatory).unwrap();
    assert!(answer.contains("m=audio") && answer.contains(" RTP/SAVP 0"), "{answer}");
    assert!(answer.contains("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:"), "{answer}");
    assert!(!answer.contains("WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz"), "our own key, not the offer's");

    // Off refuses RTP/SAVP, and ignores a=crypto inside RTP/AVP.
    let off = bridge.create("rtp", json!({ "srtp": "off" })).unwrap();
    let r = offer(&bridge, &off, &savp(KEY_80));
    assert_eq!(r["error"]["code"], 1010, "{r}");
    assert!(offer(&bridge, &off, &(PLAIN.to_string() + &format!("a=crypto:{KEY_80}\r\n"))).get("result").is_some());
    let (_, answer) = bridge.local_description(&off).unwrap();
    assert!(answer.contains(" RTP/AVP 0") && !answer.contains("a=crypto"), "{answer}");

    // Optional (the default): SRTP answered with SRTP, plain stays plain.
    let optional = bridge.create("rtp", json!({})).unwrap();
    assert!(offer(&bridge, &optional, PLAIN).get("result").is_some());
    let (_, answer) = bridge.local_description(&optional).unwrap();
    assert!(!answer.contains("a=crypto"), "{answer}");
    let no_common = bridge.create("rtp", json!({})).unwrap();
    let r = offer(&bridge, &no_common, &savp("1 F8_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz"));
    assert_eq!(r["error"]["data"]["sipStatus"], 488, "{r}");

    // Our offers: RTP/SAVP when mandatory, a=crypto inside RTP/AVP when optional.
    for (policy, profile, lines) in [("mandatory", "RTP/SAVP", 3), ("optional", "RTP/AVP", 3), ("off", "RTP/AVP", 0)] {
        let s = bridge.create("rtp", json!({ "srtp": policy })).unwrap();
        let (_, ours) = bridge.local_description(&s).unwrap();
        assert!(ours.contains(&format!(" {profile} ")), "{policy}: {ours}");
        assert_eq!(ours.matches("a=crypto:").count(), lines, "{policy}: {ours}");
    }
    let r = bridge.request("session.create", json!({ "kind": "rtp", "srtp": "sometimes" })).unwrap();
    assert_eq!(r["error"]["code"], -32602, "{r}");
}

#[test]
fn gcm_keyed_sessions_carry_audio() {
    let dir = test_dir("stdio_srtp_gcm");
    let bridge = Bridge::start(&dir, &[]).unwrap();
    let a = bridge.create("rtp", json!({ "srtp": "mandatory", "codecs": ["PCMU"] })).unwrap();
    let b = bridge.create("rtp", json!({ "srtp": "mandatory" })).unwrap();
    let (_, offer_a) = bridge.local_description(&a).unwrap();
    // Leave only the GCM line, as a peer preferring it would pick it.
    let gcm_only: String = offer_a
        .lines()
        .filter(|l| !l.starts_with("a=crypto:") || l.contains("AEAD_AES_128_GCM"))
        .map(|l| format!("{l}\r\n"))
        .collect();
    bridge.set_remote(&b, "offer", &gcm_only).unwrap();
    let (_, answer_b) = bridge.local_description(&b).unwrap();
    assert!(answer_b.contains("RTP/SAVP") && answer_b.contains("AEAD_AES_128_GCM inline:"), "{answer_b}");
    bridge.set_remote(&a, "answer", &answer_b).unwrap();

    let file = dir.join("tone.wav");
    write_wav(&file, &tone(660.0, 10.0, 8000, 0.3)).unwrap();
    let heard = dir.join("heard.wav");
    bridge.call("session.record", json!({ "session": b, "file": heard })).unwrap();
    bridge.call("session.play", json!({ "session": a, "file": file })).unwrap();
    bridge
        .wait_session_event(&b, "connectionstatechange", Duration::from_secs(5), |e| e["state"] == "connected")
        .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    bridge.call("session.stopRecord", json!({ "session": b })).unwrap();
    let pcm = read_wav(&heard).unwrap();
    let tail = pcm.slice(0.2, 60.0);
    assert!(tail.seconds() > 0.5, "recorded {} s", pcm.seconds());
    assert!(tail.tone_share(660.0) > 0.8, "B hears A's tone through GCM: share {}", tail.tone_share(660.0));
}
