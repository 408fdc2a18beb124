//! What sipbridge writes holds no secret, at the most verbose level: the
//! gateway at `SIPBRIDGE_LOG=trace` registers at Kamailio with a password,
//! a wrong password and an HA1 (every byte it wrote is searched for them,
//! their hex, and any digest `response=`); `sipbridge stdio` at trace is
//! given SDES keys (`a=crypto: inline:`) in SDP and in a malformed line.
//! And a warning that repeats (every packet to an unreachable network)
//! is logged once, not 50 times a second.

use e2e::gateway::Gateway;
use e2e::jsonlines::JsonLines;
use e2e::kamailio::{Kamailio, KamailioOptions};
use e2e::process::{sipbridge_bin, test_dir};
use e2e::ws_client::WsClient;
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const PASSWORD: &str = "Pw-xyzzy-4821";
const WRONG_PASSWORD: &str = "Wrong-pw-7733";
const SDES_KEY: &str = "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz";

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

/// Every file the test's processes wrote (logs and stdout transcripts) of
/// the process named `name`.
fn written_by(dir: &Path, name: &str) -> String {
    let mut all = String::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.file_stem().is_some_and(|s| s == name) {
            all.push_str(&String::from_utf8_lossy(&std::fs::read(&path).unwrap()));
        }
    }
    assert!(!all.is_empty(), "nothing written by {name} in {}", dir.display());
    all
}

/// Digest `response=` values: 32+ hex digits after `response=`, quoted,
/// escaped or bare.
fn digest_responses(text: &str) -> Vec<String> {
    text.match_indices("response=")
        .filter_map(|(i, m)| {
            let rest = text[i + m.len()..].trim_start_matches(['\\', '"']);
            let hex: String = rest.chars().take_while(|c| c.is_ascii_hexdigit()).collect();
            (hex.len() >= 32).then_some(hex)
        })
        .collect()
}

fn assert_absent(text: &str, secrets: &[&str]) {
    for s in secrets {
        let lower = text.to_ascii_lowercase();
        assert!(!lower.contains(&s.to_ascii_lowercase()), "{s:?} was written out");
    }
}

fn registered(ws: &mut WsClient, id: u64, params: Value) -> Value {
    let r = ws.request(id, "sip.register", params).unwrap();
    assert!(r.get("result").is_some(), "{r}");
    ws.wait_message(Duration::from_secs(10), |m| {
        matches!(m["params"]["event"].as_str(), Some("registered" | "registration_failed"))
    })
    .unwrap()
}

#[test]
fn gateway_at_trace_writes_no_password_ha1_or_digest() {
    let dir = test_dir("log_hygiene_gateway");
    let k = Kamailio::start(&dir, &KamailioOptions::new("example.test", &[("alice", PASSWORD)])).unwrap();
    let mut gw = Gateway::start_logging(&dir, None, &[], "trace").unwrap();
    let mut ws = WsClient::connect(gw.ws_port, None, "/ws").unwrap();
    let aor = k.aor("alice");
    let proxy = k.proxy_uri("udp");

    let e = registered(&mut ws, 1, json!({ "username": aor, "secret": WRONG_PASSWORD, "proxy": proxy }));
    assert_eq!(e["params"]["event"], "registration_failed", "{e}");
    let e = registered(&mut ws, 2, json!({ "username": aor, "secret": PASSWORD, "proxy": proxy }));
    assert_eq!(e["params"]["event"], "registered", "{e}");
    let r = ws.request(3, "sip.unregister", json!({})).unwrap();
    assert!(r.get("result").is_some(), "{r}");
    ws.wait_message(Duration::from_secs(10), |m| m["params"]["event"] == "unregistered").unwrap();
    let md5 =
        Command::new("sh").args(["-c", &format!("printf %s alice:example.test:{PASSWORD} | md5sum")]).output().unwrap();
    let ha1 = String::from_utf8_lossy(&md5.stdout).split_whitespace().next().unwrap().to_string();
    let e = registered(&mut ws, 4, json!({ "username": aor, "ha1Secret": ha1, "proxy": proxy }));
    assert_eq!(e["params"]["event"], "registered", "{e}");
    drop(ws);
    std::thread::sleep(Duration::from_secs(1)); // the unregister on close
    gw.child.stop();

    let written = written_by(&dir, "gateway");
    // The test would prove nothing if the messages were not logged at all.
    assert!(written.contains(" TRACE "), "trace lines are written");
    assert!(written.contains("REGISTER sip:"), "the SIP messages are logged");
    assert!(written.contains("Authorization: Digest <redacted>"), "and redacted");
    assert_absent(&written, &[PASSWORD, WRONG_PASSWORD, &ha1, &hex(PASSWORD), &hex(WRONG_PASSWORD)]);
    assert_eq!(digest_responses(&written), Vec::<String>::new(), "digest responses were written out");
}

fn stdio_at(dir: &Path, filter: &str) -> JsonLines {
    let mut cmd = Command::new(sipbridge_bin());
    cmd.args(["stdio", "--rtp-ports", "0-0"]).env("SIPBRIDGE_LOG", filter);
    let io = JsonLines::spawn(cmd, dir, "sipbridge", Duration::from_secs(60)).unwrap();
    io.wait_event(Duration::from_secs(15), |e| e["method"] == "ready").unwrap();
    io
}

fn request(io: &JsonLines, method: &str, params: Value) -> Value {
    let id = io.send(json!({ "jsonrpc": "2.0", "method": method, "params": params })).unwrap();
    io.reply(&id, Duration::from_secs(20)).unwrap()
}

/// A new PCMU RTP session given `sdp` as the remote offer: its id and the
/// response to the offer.
fn offered(io: &JsonLines, sdp: &str) -> (String, Value) {
    let r = request(io, "session.create", json!({ "kind": "rtp", "codecs": ["PCMU"] }));
    let session = r["result"]["session"].as_str().unwrap().to_string();
    let r = request(io, "session.setRemoteDescription", json!({ "session": session, "type": "offer", "sdp": sdp }));
    (session, r)
}

fn offer(profile: &str) -> String {
    format!(
        "v=0\r\no=phone 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 {profile} 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{SDES_KEY}|2^20|1:32\r\n"
    )
}

#[test]
fn stdio_at_trace_writes_no_sdes_key() {
    let dir = test_dir("log_hygiene_stdio");
    let mut io = stdio_at(&dir, "trace");
    // Best-effort SRTP (keys offered over RTP/AVP) is answered as plain RTP;
    // RTP/SAVP is refused; the key also arrives in a line that is not JSON.
    let (s1, r) = offered(&io, &offer("RTP/AVP"));
    assert!(r.get("result").is_some(), "{r}");
    let r = request(&io, "session.getLocalDescription", json!({ "session": s1 }));
    assert!(r["result"]["sdp"].as_str().unwrap().contains("RTP/AVP"), "{r}");
    let (_, r) = offered(&io, &offer("RTP/SAVP"));
    assert!(r.get("error").is_some(), "{r}");
    io.send_line(&format!("{{\"sdp\": \"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{SDES_KEY}\"")).unwrap();
    let r = io.reply(&Value::Null, Duration::from_secs(5)).unwrap();
    assert_eq!(r["error"]["code"], -32700, "{r}");
    io.close_stdin();
    assert!(io.child().wait_timeout(Duration::from_secs(10)).unwrap().is_some_and(|s| s.success()));

    let written = written_by(&dir, "sipbridge");
    assert!(written.contains(" TRACE ") || written.contains(" DEBUG "), "verbose lines are written");
    assert!(written.contains("inline:<redacted>"), "the key was logged and redacted");
    assert_absent(&written, &[SDES_KEY, &SDES_KEY[..16], &hex(SDES_KEY)]);
}

#[test]
fn a_repeating_media_warning_is_logged_once_per_interval() {
    let dir = test_dir("log_hygiene_warnings");
    let io = stdio_at(&dir, "info");
    // 192.0.2.1 (TEST-NET-1) has no route in the test's namespace: every
    // packet of the silence filler fails to send.
    let sdp =
        "v=0\r\no=phone 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\n";
    let (s1, r) = offered(&io, sdp);
    assert!(r.get("result").is_some(), "{r}");
    request(&io, "session.getLocalDescription", json!({ "session": s1 }));
    std::thread::sleep(Duration::from_secs(4));
    let warnings: Vec<String> = io.log().lines().filter(|l| l.contains("media warning")).map(String::from).collect();
    // One per sink (RTP, RTCP), the first of each kind; the next would come
    // after 10 s with its count.
    assert!(!warnings.is_empty(), "the failure is reported");
    assert!(warnings.len() <= 2, "{} warnings in 4 s:\n{}", warnings.len(), warnings.join("\n"));
    assert!(warnings.iter().all(|w| w.contains("repeated=0")), "{warnings:?}");
}
