//! The gateway over HTTPS and WSS: a certificate issued by a CA the test
//! makes, the softphone page loaded from `https://` in headless Chromium
//! (which trusts that CA and nothing else unknown), calling baresip through
//! Kamailio over the page's `wss://` WebSocket, tone checked both ways. Then,
//! with the call up, the certificate is renewed and SIGHUP swaps it in; a
//! broken certificate file and a key that does not fit are refused with a
//! clear error while the current certificate and the call stay.

use e2e::audio::Pcm;
use e2e::certs::TestCa;
use e2e::gateway::{Gateway, Softphone};
use e2e::kamailio::{Kamailio, KamailioOptions};
use e2e::process::test_dir;
use serde_json::json;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const PAGE_TONE: u32 = 660;
const BARESIP_TONE: f64 = 440.0;

fn assert_hears(pcm: &Pcm, freq: f64, who: &str) {
    let share = pcm.tone_share(freq);
    assert!(share > 0.5, "{who} should hear {freq} Hz; share {share:.3}, rms {:.4}", pcm.rms());
}

/// Waits until the gateway's log holds `needle` `times` times.
fn wait_logged(gw: &Gateway, needle: &str, times: usize) {
    let until = Instant::now() + Duration::from_secs(10);
    while gw.log().matches(needle).count() < times {
        assert!(Instant::now() < until, "the gateway did not log {needle:?} ({times}x):\n{}", gw.log());
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn https_page_calls_over_wss_and_sighup_swaps_the_certificate_mid_call() {
    let dir = test_dir("web_tls");
    let ca = TestCa::create(&dir, "web").unwrap();
    let (cert, key) = (dir.join("gateway-cert.pem"), dir.join("gateway-key.pem"));
    ca.issue("gateway-v1", &cert, &key).unwrap();
    let k =
        Kamailio::start(&dir, &KamailioOptions::new("example.test", &[("alice", "a-pw"), ("bob", "b-pw")])).unwrap();
    let bob = k.registered_baresip(&dir, ("bob", "b-pw"), true, BARESIP_TONE).unwrap();
    let (cert_arg, key_arg) = (cert.to_string_lossy(), key.to_string_lossy());
    let gw = Gateway::start(&dir, None, &["--tls-cert", &cert_arg, "--tls-key", &key_arg]).unwrap();
    let served = SocketAddr::from(([127, 0, 0, 1], gw.ws_port));
    assert!(gw.log().contains("page at https://"), "{}", gw.log());
    assert_eq!(ca.served_common_name(served).unwrap(), "gateway-v1");

    // The page from https://, a secure context; its WebSocket is wss:// (the
    // port speaks nothing but TLS).
    let spki = ca.spki_sha256().unwrap();
    let page = Softphone::start_trusting(&dir, "softphone", &gw.https_url(), PAGE_TONE, Some(&spki)).unwrap();
    page.wait_ready().unwrap();
    let context = page.cmd("eval", json!({ "expr": "`${location.protocol} ${window.isSecureContext}`" })).unwrap();
    assert_eq!(context["value"], "https: true", "{context}");
    page.register(&k.aor("alice"), "a-pw", &k.proxy_uri("udp")).unwrap();
    let ev = page.wait(|d| d["event"] == "registered" || d["event"] == "registration_failed").unwrap();
    assert_eq!(ev["event"], "registered", "{ev}\ngateway log:\n{}", gw.log());

    page.fill("#target", &k.aor("bob")).unwrap();
    page.click("#call").unwrap();
    let accepted = page.wait(|d| d["event"] == "accepted" || d["event"] == "hangup").unwrap();
    assert_eq!(accepted["event"], "accepted", "{accepted}\n{}", gw.log());
    bob.wait_event("call", "CALL_ESTABLISHED", Duration::from_secs(5)).unwrap();
    page.wait(|d| d["event"] == "pcstate" && d["state"] == "connected").unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let heard = page.record(2000, &dir.join("page-heard.wav")).unwrap();
    assert_hears(&heard.slice(0.3, 2.0), BARESIP_TONE, "the page");

    // Renewal: a new certificate in the same files, SIGHUP. New handshakes
    // get it; the call and the page's WebSocket stay.
    ca.issue("gateway-v2", &cert, &key).unwrap();
    gw.child.signal(libc::SIGHUP);
    wait_logged(&gw, "SIGHUP: websocket certificate reloaded", 1);
    assert_eq!(ca.served_common_name(served).unwrap(), "gateway-v2");

    // A broken file: refused with the file and the reason, v2 still served.
    std::fs::write(&cert, "not a certificate\n").unwrap();
    gw.child.signal(libc::SIGHUP);
    wait_logged(&gw, "certificate not reloaded", 1);
    assert!(gw.log().contains("no CERTIFICATE in it"), "{}", gw.log());
    assert_eq!(ca.served_common_name(served).unwrap(), "gateway-v2");
    // A renewed certificate whose key was not installed.
    ca.issue("gateway-v3", &cert, &dir.join("v3-key.pem")).unwrap();
    gw.child.signal(libc::SIGHUP);
    wait_logged(&gw, "certificate not reloaded", 2);
    assert!(gw.log().contains("does not fit websocket.tls_cert"), "{}", gw.log());
    assert_eq!(ca.served_common_name(served).unwrap(), "gateway-v2");

    let heard = page.record(2000, &dir.join("page-heard-after-reloads.wav")).unwrap();
    assert_hears(&heard.slice(0.3, 2.0), BARESIP_TONE, "the page after the reloads");
    assert!(
        !page.events().iter().any(|e| e["event"] == "hangup" || (e["event"] == "ws" && e["state"] == "closed")),
        "the call and the WebSocket stayed up: {:?}",
        page.events()
    );
    page.click("#hangup").unwrap();
    page.wait_event("hangup").unwrap();
    bob.wait_event("call", "CALL_CLOSED", Duration::from_secs(5)).unwrap();
    let heard = bob.heard().unwrap();
    let end = heard.seconds();
    assert!(end > 5.0, "the call lasted {end:.1} s");
    assert_hears(&heard.slice(end - 2.5, end - 0.5), PAGE_TONE as f64, "baresip, after the reloads");
}
