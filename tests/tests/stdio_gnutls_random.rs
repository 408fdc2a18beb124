//! libnice's randomness comes from `sipbridge` itself
//! (bridge/src/gnutls_random.rs): GnuTLS's `gnutls_rnd` keeps a generator
//! per thread and never frees it when the thread ends, and webrtcbin's ICE
//! threads end with every session. The dynamic linker's own account of its
//! bindings (`LD_DEBUG=bindings`) shows where libnice's calls went while
//! WebRTC sessions connected.

use e2e::bridge::Bridge;
use e2e::process::{sipbridge_bin, test_dir};
use serde_json::json;

#[test]
fn libnice_calls_the_binarys_gnutls_rnd_and_webrtc_sessions_connect() {
    let dir = test_dir("stdio_gnutls_random");
    let trace = dir.join("ld-bindings");
    let env = [("LD_DEBUG", "bindings"), ("LD_DEBUG_OUTPUT", trace.to_str().unwrap())];
    let mut bridge = Bridge::start_with_env(&dir, &[], &env).unwrap();
    for _ in 0..2 {
        let (a, b) = bridge.connected_webrtc_pair().unwrap();
        for s in [a, b] {
            bridge.call("session.close", json!({ "session": s })).unwrap();
        }
    }
    let pid = bridge.io.child().pid();
    let bindings = std::fs::read_to_string(format!("{}.{pid}", trace.display())).expect("the linker's bindings");
    let rnd: Vec<&str> = bindings.lines().filter(|l| l.contains("`gnutls_rnd'")).collect();
    let from_libnice: Vec<&str> = rnd.iter().copied().filter(|l| l.contains("libnice")).collect();
    assert!(!from_libnice.is_empty(), "libnice never looked gnutls_rnd up: {rnd:?}");
    // The executable is named as it was started (argv[0]).
    let binary = format!("{} ", sipbridge_bin().display());
    for line in &rnd {
        let to = line.split(" to ").nth(1).unwrap_or_default();
        assert!(to.starts_with(&binary), "gnutls_rnd bound elsewhere than {binary}: {line}");
    }
}
