//! The gateway's WebSocket API under bad input and the wrong credentials:
//! token, Origin and connection-limit checks before the upgrade; a wrong
//! password gives `registration_failed` with the registrar's code;
//! malformed messages and requests in the wrong state get errors (numeric
//! code and a sentence) while the session goes on and then registers.

use e2e::gateway::{Gateway, Softphone};
use e2e::kamailio::{Kamailio, KamailioOptions};
use e2e::process::test_dir;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// One raw HTTP request to the gateway; returns the status line and body.
fn http(port: u16, path: &str, headers: &[&str]) -> (String, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n");
    for h in headers {
        req.push_str(h);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    // A 101 keeps the socket open: read what is there.
    while let Ok(n) = s.read(&mut chunk) {
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.starts_with(b"HTTP/1.1 101") && buf.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text.lines().next().unwrap_or_default().to_string();
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

const UPGRADE: [&str; 4] = [
    "Upgrade: websocket",
    "Connection: Upgrade",
    "Sec-WebSocket-Version: 13",
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
];

fn code(response: &Value) -> i64 {
    response["error"]["code"].as_i64().unwrap_or_else(|| panic!("expected an error: {response}"))
}

#[test]
fn token_origin_limits_bad_requests_and_wrong_password() {
    let dir = test_dir("gateway_protocol");
    let k = Kamailio::start(&dir, &KamailioOptions::new("example.test", &[("alice", "a-pw")])).unwrap();
    let gw = Gateway::start(&dir, Some("s3cret-token"), &["--max-connections", "1"]).unwrap();

    // The page is served; the API needs the token and the same origin.
    let (status, body) = http(gw.ws_port, "/", &[]);
    assert!(status.contains("200"), "{status}");
    assert!(body.contains("sipbridge") && body.contains("app.js"), "{body}");
    assert!(http(gw.ws_port, "/app.js", &[]).0.contains("200"));
    assert!(http(gw.ws_port, "/nope", &[]).0.contains("404"));
    assert!(http(gw.ws_port, "/ws", &UPGRADE).0.contains("401"), "no token");
    assert!(http(gw.ws_port, "/ws?token=wrong", &UPGRADE).0.contains("401"), "wrong token");
    let origin_evil = [UPGRADE.as_slice(), &["Origin: http://evil.example"]].concat();
    assert!(http(gw.ws_port, "/ws?token=s3cret-token", &origin_evil).0.contains("403"), "foreign origin");
    assert!(!gw.log().contains("s3cret-token"), "the token must not be logged");

    // The page, with the token, is the one connection allowed.
    let page = Softphone::start(&dir, "softphone", &gw.url(), 660).unwrap();
    page.wait_ready().unwrap();
    let same_origin = format!("Origin: http://127.0.0.1:{}", gw.ws_port);
    let full = [UPGRADE.as_slice(), &[same_origin.as_str()]].concat();
    assert!(http(gw.ws_port, "/ws?token=s3cret-token", &full).0.contains("503"), "over the connection limit");

    // Malformed messages: JSON-RPC errors, the connection stays.
    page.raw("{not json").unwrap();
    let e = page.wait(|d| d["event"] == "rpcerror").unwrap();
    assert_eq!(e["error"]["code"], -32700, "{e}");
    page.raw(r#"{"jsonrpc":"2.0","id":"x1","params":{}}"#).unwrap();
    page.wait(|d| d["event"] == "rpcerror" && d["error"]["code"] == -32600).unwrap();

    // Bad requests and requests in the wrong state.
    let r = page.request("sip.nothing", json!({})).unwrap();
    assert_eq!(code(&r), -32601, "{r}");
    let r = page.request("sip.call", json!({ "uri": "sip:bob@example.test" })).unwrap();
    assert_eq!(code(&r), 2000, "call before register: {r}");
    assert!(r["error"]["message"].as_str().unwrap_or_default().contains("register"), "{r}");
    let r = page.request("sip.register", json!({ "username": "alice", "secret": "x" })).unwrap();
    assert_eq!(code(&r), -32602, "not a SIP URI: {r}");
    let r =
        page.request("sip.register", json!({ "username": k.aor("alice"), "secret": "x", "colour": "red" })).unwrap();
    assert_eq!(code(&r), -32602, "unknown field: {r}");
    let r = page.request("sip.hangup", json!({ "call": "c999" })).unwrap();
    assert_eq!(code(&r), 2002, "{r}");
    let r =
        page.request("sip.accept", json!({ "call": "c999", "jsep": { "type": "answer", "sdp": "v=0\r\n" } })).unwrap();
    assert_eq!(code(&r), 2002, "{r}");
    let r = page.request("sip.dtmf", json!({ "call": "c1" })).unwrap();
    assert_eq!(code(&r), -32602, "missing tones: {r}");
    let r = page.request("sip.unregister", json!({})).unwrap();
    assert_eq!(code(&r), 2000, "{r}");

    // Wrong password: registration_failed with the registrar's code; the
    // password never reaches the gateway's log.
    let r = page
        .request(
            "sip.register",
            json!({ "username": k.aor("alice"), "secret": "wrong-pw-xyz", "proxy": k.proxy_uri("udp") }),
        )
        .unwrap();
    assert!(r.get("result").is_some(), "{r}");
    let failed = page.wait_event("registration_failed").unwrap();
    let status = failed["code"].as_u64().unwrap();
    assert!(status == 401 || status == 403, "{failed}");
    assert!(failed["reason"].is_string(), "{failed}");
    assert!(!gw.log().contains("wrong-pw-xyz"), "the secret must not be logged");

    // The same connection registers with the right password afterwards.
    let r = page
        .request("sip.register", json!({ "username": k.aor("alice"), "secret": "a-pw", "proxy": k.proxy_uri("udp") }))
        .unwrap();
    assert!(r.get("result").is_some(), "{r}");
    page.wait_event("registered").unwrap();
    let r = page.request("sip.register", json!({ "username": k.aor("alice"), "secret": "a-pw" })).unwrap();
    assert_eq!(code(&r), 2001, "already registered: {r}");
    let r = page
        .request("sip.call", json!({ "uri": "sip:bob@example.test", "jsep": { "type": "answer", "sdp": "v=0\r\n" } }))
        .unwrap();
    assert_eq!(code(&r), 2006, "a call takes an offer: {r}");
    let r = page.request("sip.call", json!({ "uri": "sip:bob@example.test", "headers": { "Via": "x" } })).unwrap();
    assert_eq!(code(&r), -32602, "reserved header: {r}");
    let r = page.request("sip.calls", json!({})).unwrap();
    assert_eq!(r["result"]["calls"], json!([]), "{r}");
    let r = page.request("sip.unregister", json!({})).unwrap();
    assert!(r.get("result").is_some(), "{r}");
    page.wait_event("unregistered").unwrap();
    assert!(!gw.log().contains("a-pw"), "the secret must not be logged");

    // The same account with its HA1 instead of the password.
    let md5 =
        std::process::Command::new("sh").args(["-c", "printf %s alice:example.test:a-pw | md5sum"]).output().unwrap();
    let ha1 = String::from_utf8_lossy(&md5.stdout).split_whitespace().next().unwrap().to_string();
    let r = page
        .request("sip.register", json!({ "username": k.aor("alice"), "ha1Secret": "xyz", "proxy": k.proxy_uri("udp") }))
        .unwrap();
    assert_eq!(code(&r), -32602, "not a digest: {r}");
    let r = page
        .request("sip.register", json!({ "username": k.aor("alice"), "ha1Secret": ha1, "proxy": k.proxy_uri("udp") }))
        .unwrap();
    assert!(r.get("result").is_some(), "{r}");
    let until = std::time::Instant::now() + Duration::from_secs(10);
    while page.events().iter().filter(|e| e["event"] == "registered").count() < 2 {
        assert!(std::time::Instant::now() < until, "not registered with the HA1: {:?}\n{}", page.events(), k.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!gw.log().contains(&ha1), "the HA1 must not be logged");
}
