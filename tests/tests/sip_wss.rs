//! SIP over secure WebSocket into the daemon: SIP.js in Node (with the node
//! shim's media, node-shim/test/wss-caller.mjs) calls the echo preset over
//! `wss://`, trusting the test CA, and hears its tone back. A client that
//! trusts another CA fails with the TLS error that stopped it, and the
//! daemon goes on serving.

use e2e::audio::{read_wav, tone, write_wav};
use e2e::certs::TestCa;
use e2e::daemon::Daemon;
use e2e::process::{free_tcp_port, spawn, test_dir, workspace_root};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// Runs one SIP.js call to `target` over `server` trusting `ca`; returns
/// its JSON result line and its log.
fn sipjs_call(dir: &Path, name: &str, server: &str, ca: &Path, target: &str) -> (String, String) {
    let (play, record) = (dir.join("tone.wav"), dir.join(format!("{name}-heard.wav")));
    let mut cmd = Command::new("node");
    cmd.arg(workspace_root().join("node-shim/test/wss-caller.mjs"))
        .args(["--server", server, "--target", target, "--seconds", "4", "--limit", "30"])
        .arg("--ca")
        .arg(ca)
        .arg("--play")
        .arg(&play)
        .arg("--record")
        .arg(&record);
    let mut child = spawn(&mut cmd, dir, name, Duration::from_secs(40)).unwrap();
    let status = child.wait_timeout(Duration::from_secs(40)).unwrap();
    let log = child.log();
    assert!(status.is_some(), "{name} did not finish:\n{log}");
    let result = log.lines().rev().find(|l| l.starts_with('{')).unwrap_or_default().to_string();
    (result, log)
}

#[test]
fn sipjs_calls_the_echo_preset_over_wss_and_a_wrong_ca_is_refused() {
    let dir = test_dir("sip_wss");
    let ca = TestCa::create(&dir, "sip-wss").unwrap();
    let other_ca = TestCa::create(&dir, "other").unwrap();
    let (chain, key) = (dir.join("daemon.pem"), dir.join("daemon-key.pem"));
    ca.issue("sipbridge-wss", &chain, &key).unwrap();
    write_wav(&dir.join("tone.wav"), &tone(440.0, 2.0, 8000, 0.3)).unwrap();

    let wss_port = free_tcp_port();
    let config = format!(
        "preset = \"echo\"\n[sip]\ntls_cert = {:?}\ntls_key = {:?}\n",
        chain.display().to_string(),
        key.display().to_string()
    );
    let listen = format!("wss:127.0.0.1:{wss_port}");
    let daemon = Daemon::start(&dir, &config, &["--sip-listen", &listen]).unwrap();
    assert!(daemon.log().contains(&format!("wss:127.0.0.1:{wss_port}")), "{}", daemon.log());
    let server = format!("wss://127.0.0.1:{wss_port}");
    let target = format!("sip:echo@127.0.0.1:{wss_port};transport=wss");

    // Trusting another CA: no connection, and the error says why.
    let (result, log) = sipjs_call(&dir, "wrong-ca", &server, &other_ca.cert, &target);
    assert!(result.contains("SELF_SIGNED_CERT_IN_CHAIN"), "{result}\n{log}");
    daemon.wait_lines(&["WSS: TLS handshake failed", "127.0.0.1"], 1, Duration::from_secs(5)).unwrap();

    // Trusting the daemon's CA: the call goes through and the tone comes back.
    let (result, log) = sipjs_call(&dir, "sipjs", &server, &ca.cert, &target);
    assert_eq!(result, r#"{"ok":true}"#, "{log}\n{}", daemon.log());
    let heard = read_wav(&dir.join("sipjs-heard.wav")).unwrap();
    let tail = heard.slice(1.0, heard.seconds() - 0.3);
    assert!(tail.seconds() > 2.0, "recording too short: {} s", heard.seconds());
    assert!(
        tail.tone_share(440.0) > 0.8,
        "SIP.js should hear its 440 Hz back: share {}, rms {}",
        tail.tone_share(440.0),
        tail.rms()
    );
    daemon.wait_lines(&["call{id=", "answered", "codec=PCMU"], 1, Duration::from_secs(1)).unwrap();
    daemon.wait_lines(&["call{id=", "call ended", "by=remote"], 1, Duration::from_secs(5)).unwrap();
    println!("SIP.js over WSS heard 440 Hz: share {:.3}, rms {:.3}", tail.tone_share(440.0), tail.rms());
}
