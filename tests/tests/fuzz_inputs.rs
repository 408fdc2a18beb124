//! The JSON-RPC and WebSocket fuzz targets, run against the real processes
//! for a bounded time (`SIPBRIDGE_FUZZ_SECS` per target, the shared harness
//! in tests/src/mutate.rs) on the seed corpora in tests/corpus/:
//!
//! - `sipbridge stdio` gets mutated request lines: every line that is not
//!   JSON is answered -32700, and the process answers afterwards;
//! - the gateway gets mutated HTTP request heads, mutated frame streams
//!   after a valid upgrade, and mutated JSON-RPC text messages on one
//!   connection: it answers every non-JSON message with -32700, keeps that
//!   connection, and serves a new client afterwards.

use e2e::gateway::Gateway;
use e2e::jsonlines::JsonLines;
use e2e::mutate;
use e2e::process::{sipbridge_bin, test_dir, workspace_root};
use e2e::ws_client::{Frame, WsClient};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

const JSON_TOKENS: &[&[u8]] = &[
    b"{",
    b"}",
    b"[",
    b"]",
    b"\"",
    b":",
    b",",
    b"null",
    b"true",
    b"1e400",
    b"-0",
    b"\\u0000",
    b"\\ud800",
    b"\"id\":",
    b"\"id\":1e400,",
    b"\"method\":",
    b"\"params\":",
    b"\"jsonrpc\":\"2.0\",",
    b"99999999999999999999999",
    b"\xff",
    b"\"s1\"",
];

const HTTP_TOKENS: &[&[u8]] = &[
    b"\r\n",
    b"\r\n\r\n",
    b":",
    b" ",
    b"%",
    b"%zz",
    b"?token=",
    b"&",
    b"Upgrade: websocket\r\n",
    b"Origin: null\r\n",
    b"Origin: http://[::1\r\n",
    b"Host: \r\n",
    b"Sec-WebSocket-Key: \r\n",
    b"\xff\xfe",
    b"\0",
];

const FRAME_TOKENS: &[&[u8]] = &[
    b"\x81\x80\0\0\0\0",
    b"\x88\x80\0\0\0\0",
    b"\x89\x80\0\0\0\0",
    b"\x01\x85\0\0\0\0hello",
    b"\x80\x85\0\0\0\0hello",
    b"\x81\xfe\xff\xff",
    b"\x81\xff\x7f\xff\xff\xff\xff\xff\xff\xff",
    b"\xff",
];

fn corpus(name: &str, ext: &str) -> Vec<Vec<u8>> {
    let dir: PathBuf = workspace_root().join("tests/corpus").join(name);
    mutate::read_corpus(&dir, ext).into_iter().map(|c| c.trim_ascii().to_vec()).collect()
}

/// A mutant as one line of text (line breaks would split it).
fn one_line(input: &[u8]) -> String {
    String::from_utf8_lossy(input).replace(['\n', '\r'], " ").trim().to_string()
}

fn is_json(text: &str) -> bool {
    serde_json::from_str::<Value>(text).is_ok()
}

#[test]
fn stdio_answers_every_mutated_line() {
    let dir = test_dir("fuzz_stdio");
    let mut cmd = Command::new(sipbridge_bin());
    // Any file a mutant names is made in the scratch directory.
    cmd.args(["stdio", "--rtp-ports", "0-0"]).env("SIPBRIDGE_LOG", "warn").current_dir(&dir);
    let mut io = JsonLines::spawn(cmd, &dir, "sipbridge", Duration::from_secs(120)).unwrap();
    io.wait_event(Duration::from_secs(15), |e| e["method"] == "ready").unwrap();
    let (mut lines, mut not_json) = (0, 0);
    let runs = mutate::run("jsonrpc", 0x150e_2c01, &corpus("jsonrpc", "json"), JSON_TOKENS, mutate::budget(), |m| {
        let line = one_line(m);
        if line.is_empty() {
            return;
        }
        io.send_line(&line).unwrap();
        lines += 1;
        if !is_json(&line) {
            not_json += 1;
        }
    });
    // Parse errors are answered in order as lines are read: once this is
    // answered, every earlier one has been.
    // An id no mutant can have had.
    io.send_line(r#"{"jsonrpc":"2.0","id":"after the fuzz","method":"session.list","params":{}}"#).unwrap();
    let r = io.reply(&json!("after the fuzz"), Duration::from_secs(30)).unwrap();
    assert!(r["result"]["sessions"].is_array(), "{r}");
    let transcript = std::fs::read_to_string(dir.join("sipbridge.stdout")).unwrap();
    let parse_errors = transcript.lines().filter(|l| l.contains("\"code\":-32700")).count();
    println!("jsonrpc: {runs} inputs, {lines} lines, {not_json} not JSON, {parse_errors} parse errors answered");
    assert_eq!(parse_errors, not_json, "every line that is not JSON is answered -32700");
    assert!(not_json > 0 && not_json < lines, "the mutants must be both valid and invalid JSON");
    io.close_stdin();
    let status = io.child().wait_timeout(Duration::from_secs(20)).unwrap();
    assert!(status.is_some_and(|s| s.success()), "exit 0 at end of input: {status:?}");
}

/// Reads what the server sends on `stream` for up to `timeout` or until it
/// closes.
fn drain(stream: &mut TcpStream, timeout: Duration) -> Vec<u8> {
    let until = Instant::now() + timeout;
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    while let Some(left) = until.checked_duration_since(Instant::now()) {
        stream.set_read_timeout(Some(left.max(Duration::from_millis(1)))).unwrap();
        match stream.read(&mut chunk) {
            Ok(n) if n > 0 => got.extend_from_slice(&chunk[..n]),
            _ => break,
        }
    }
    got
}

/// A client served by the gateway: `ready`, then an answer.
fn served(port: u16) {
    let mut c = WsClient::connect(port, None, "/ws").unwrap();
    c.wait_message(Duration::from_secs(5), |m| m["method"] == "ready").unwrap();
    let r = c.request(1, "protocol.version", json!({})).unwrap();
    assert_eq!(r["result"]["protocol"], 1, "{r}");
}

#[test]
fn gateway_survives_mutated_heads_frames_and_messages() {
    let dir = test_dir("fuzz_gateway");
    let limits = ["--max-connections", "100000", "--max-connections-per-address", "100000"];
    let gw = Gateway::start_logging(&dir, None, &limits, "info,rsipstack=warn").unwrap();
    let port = gw.ws_port;

    // HTTP request heads on fresh connections, each ended by the client.
    let mut statuses = std::collections::BTreeMap::<String, usize>::new();
    let heads = mutate::run("ws-head", 0x3ead_0001, &corpus("websocket", "http"), HTTP_TOKENS, mutate::budget(), |m| {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let _ = s.write_all(m);
        let _ = s.shutdown(Shutdown::Write);
        let reply = drain(&mut s, Duration::from_millis(500));
        let status = String::from_utf8_lossy(&reply).split(' ').nth(1).unwrap_or("none").to_string();
        *statuses.entry(status).or_default() += 1;
    });
    println!("ws-head: {heads} inputs, statuses {statuses:?}");
    assert!(statuses.contains_key("101") && statuses.len() > 2, "the heads reached several answers: {statuses:?}");

    // Frame streams after a valid upgrade, each followed by a request of
    // ours: answered unless the stream closed the connection or left a
    // frame unfinished.
    let frames_corpus = corpus("websocket", "frames");
    let mut outcomes = std::collections::BTreeMap::<&str, usize>::new();
    let frames = mutate::run("ws-frames", 0xf7a3_0001, &frames_corpus, FRAME_TOKENS, mutate::budget(), |m| {
        let mut c = WsClient::connect(port, None, "/ws").unwrap();
        let _ = c.write_raw(m);
        let _ = c.send_text(r#"{"jsonrpc":"2.0","id":"probe","method":"protocol.version"}"#);
        let outcome = match c.wait_message(Duration::from_millis(30), |v| v["id"] == "probe") {
            Ok(_) => "answered",
            Err(e) if e.to_string().contains("closed") => "closed",
            Err(_) => "frame left unfinished",
        };
        *outcomes.entry(outcome).or_default() += 1;
    });
    println!("ws-frames: {frames} inputs, {outcomes:?}");
    assert!(outcomes.contains_key("answered") && outcomes.contains_key("closed"), "{outcomes:?}");

    // JSON-RPC messages, each in a valid text frame, on one connection.
    let mut c = WsClient::connect(port, None, "/ws").unwrap();
    c.wait_message(Duration::from_secs(5), |m| m["method"] == "ready").unwrap();
    let (mut sent, mut not_json) = (0, 0);
    let messages =
        mutate::run("ws-messages", 0x3e55_0001, &corpus("websocket", "json"), JSON_TOKENS, mutate::budget(), |m| {
            let text = String::from_utf8_lossy(m).into_owned();
            c.send_text(&text).unwrap();
            sent += 1;
            if !is_json(&text) {
                not_json += 1;
            }
            // Keep up with the replies (and answer pings) now and then: an
            // empty read costs a timer tick.
            if sent % 64 == 0 {
                while let Ok(Some(Frame::Text(t))) = c.read_frame(Duration::from_millis(1)) {
                    c.events.push(serde_json::from_str(&t).unwrap());
                }
            }
        });
    let r = c.request(999_999, "protocol.version", json!({})).unwrap();
    assert_eq!(r["result"]["protocol"], 1, "the connection is still served: {r}");
    let parse_errors = c.events.iter().filter(|e| e["error"]["code"] == -32700).count();
    println!("ws-messages: {messages} inputs, {sent} sent, {not_json} not JSON, {parse_errors} parse errors answered");
    assert_eq!(parse_errors, not_json, "every message that is not JSON is answered -32700");
    assert!(not_json > 0 && not_json < sent);
    drop(c);

    served(port);
}
