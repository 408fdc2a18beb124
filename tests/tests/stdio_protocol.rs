//! The stdio control protocol under bad input: every mistake gets a
//! JSON-RPC error that says what is wrong, and a call already running keeps
//! flowing. EOF on stdin closes everything and exits 0.

use e2e::bridge::Bridge;
use e2e::process::test_dir;
use e2e::rtp_peer::{PeerCodec, RtpPeer};
use serde_json::{json, Value};
use std::time::Duration;

fn error_code(response: &Value) -> i64 {
    response["error"]["code"].as_i64().unwrap_or_else(|| panic!("expected an error: {response}"))
}

#[test]
fn bad_input_gets_errors_and_the_running_call_keeps_flowing() {
    let dir = test_dir("bad_input");
    let mut bridge = Bridge::start(&dir, &[]).unwrap();
    // A running passthrough call: A (440 Hz) <-> B (1000 Hz).
    let mut a = RtpPeer::start(&dir, "peer-a", PeerCodec::Pcmu).unwrap();
    let mut b = RtpPeer::start(&dir, "peer-b", PeerCodec::Pcmu).unwrap();
    let (sa, to_a) = bridge.answer_rtp(&a.sdp(None), json!({})).unwrap();
    let (sb, to_b) = bridge.answer_rtp(&b.sdp(None), json!({})).unwrap();
    bridge.call("session.connect", json!({ "a": sa, "b": sb })).unwrap();
    a.send_tone(440, to_a).unwrap();
    b.send_tone(1000, to_b).unwrap();

    // Malformed JSON: parse error, id null.
    bridge.io.send_line("{this is not json").unwrap();
    let r = bridge.io.reply(&Value::Null, Duration::from_secs(5)).unwrap();
    assert_eq!(error_code(&r), -32700, "{r}");
    // Not a request.
    bridge.io.send_line(r#"{"jsonrpc":"2.0","id":"x1","params":{}}"#).unwrap();
    let r = bridge.io.reply(&json!("x1"), Duration::from_secs(5)).unwrap();
    assert_eq!(error_code(&r), -32600, "{r}");
    // Unknown method.
    let r = bridge.request("session.explode", json!({})).unwrap();
    assert_eq!(error_code(&r), -32601, "{r}");
    assert!(r["error"]["message"].as_str().unwrap().contains("session.explode"));
    // Wrong params.
    let r = bridge.request("session.create", json!({ "kind": "carrier-pigeon" })).unwrap();
    assert_eq!(error_code(&r), -32602, "{r}");
    // Unknown session.
    let r = bridge.request("session.getLocalDescription", json!({ "session": "s999" })).unwrap();
    assert_eq!(error_code(&r), 1000, "{r}");
    // SDP garbage, and an empty body.
    let s = bridge.create("rtp", json!({})).unwrap();
    for garbage in ["hello", "", "v=0\r\no=x\r\nm=audio 99999 RTP/AVP 0\r\n"] {
        let r = bridge
            .request("session.setRemoteDescription", json!({ "session": s, "type": "offer", "sdp": garbage }))
            .unwrap();
        assert_eq!(error_code(&r), 1001, "{garbage:?}: {r}");
    }
    // No common codec: 1002, and the SIP status to answer with.
    let g729 = "v=0\r\no=x 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 18\r\na=rtpmap:18 G729/8000\r\n";
    let r =
        bridge.request("session.setRemoteDescription", json!({ "session": s, "type": "offer", "sdp": g729 })).unwrap();
    assert_eq!(error_code(&r), 1002, "{r}");
    assert_eq!(r["error"]["data"]["sipStatus"], 488, "{r}");
    // Offer/answer out of order.
    let r = bridge
        .request("session.setRemoteDescription", json!({ "session": s, "type": "answer", "sdp": a.sdp(None) }))
        .unwrap();
    assert_eq!(error_code(&r), 1003, "{r}");
    // A WebRTC session handed plain RTP SDP.
    let w = bridge.create("webrtc", json!({})).unwrap();
    let r = bridge
        .request("session.setRemoteDescription", json!({ "session": w, "type": "offer", "sdp": a.sdp(None) }))
        .unwrap();
    assert_eq!(error_code(&r), 1001, "{r}");
    let r = bridge
        .request("session.addIceCandidate", json!({ "session": w, "candidate": "garbage", "sdpMLineIndex": 0 }))
        .unwrap();
    assert_eq!(error_code(&r), 1004, "{r}");
    // Linking a session already linked.
    let r = bridge.request("session.connect", json!({ "a": sa, "b": s })).unwrap();
    assert_eq!(error_code(&r), 1003, "{r}");

    // Requests may overlap: fire several at once, match replies by id.
    let ids: Vec<Value> =
        (0..5).map(|_| bridge.io.send(json!({ "jsonrpc": "2.0", "method": "session.list" })).unwrap()).collect();
    for id in ids.iter().rev() {
        let r = bridge.io.reply(id, Duration::from_secs(5)).unwrap();
        assert!(r["result"]["sessions"].as_array().is_some(), "{r}");
    }

    // The call survived all of it.
    std::thread::sleep(Duration::from_secs(2));
    assert!(bridge.is_running());
    let heard_a = a.finish().unwrap().slice(1.0, 60.0);
    let heard_b = b.finish().unwrap().slice(1.0, 60.0);
    assert!(heard_a.tone_share(1000.0) > 0.8, "A still hears B: {}", heard_a.tone_share(1000.0));
    assert!(heard_b.tone_share(440.0) > 0.8, "B still hears A: {}", heard_b.tone_share(440.0));

    // EOF: every session closed, exit status 0.
    bridge.io.close_stdin();
    let status = bridge.io.child().wait_timeout(Duration::from_secs(10)).unwrap().expect("exits on EOF");
    assert!(status.success(), "{status}");
    let closed = bridge.io.events().iter().filter(|e| e["params"]["type"] == "closed").count();
    assert_eq!(closed, 4, "closed events for every session");
}
