//! SIP over secure WebSocket as a client transport: the gateway and the
//! daemon register at Kamailio over `wss://` (kamailio-tls-modules and
//! websocket, its certificate as the configured CA), and calls go both ways
//! over that connection to baresip, registered at the same Kamailio over
//! UDP. Audio is checked on both sides by tone. A daemon trusting another
//! CA gets a registration failure naming the certificate error, and goes
//! on answering calls; idle, the daemon's connection carries keepalive
//! pings; when Kamailio restarts, the daemon registers again on a new
//! connection at once.

use e2e::audio::Pcm;
use e2e::certs::TestCa;
use e2e::daemon::Daemon;
use e2e::gateway::{Gateway, Softphone};
use e2e::kamailio::{Kamailio, KamailioOptions};
use e2e::process::test_dir;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const PAGE_TONE: u32 = 660;
const BARESIP_TONE: f64 = 440.0;

/// Kamailio with SIP over TLS (which also takes WebSocket upgrades), its
/// certificate written to `kamailio-ca.pem` as the trust anchor.
fn kamailio(dir: &Path, users: &[(&str, &str)]) -> (Kamailio, PathBuf) {
    let k =
        Kamailio::start(dir, &KamailioOptions { tls: true, ..KamailioOptions::new("example.test", users) }).unwrap();
    let ca = dir.join("kamailio-ca.pem");
    std::fs::write(&ca, k.tls_cert_pem.as_deref().unwrap()).unwrap();
    (k, ca)
}

fn wss_proxy(k: &Kamailio) -> String {
    format!("sip:127.0.0.1:{};transport=wss", k.tls_port)
}

/// A TCP relay from a loopback port to `port` (accepting for 120 s),
/// counting the bytes its clients send.
fn counting_relay(port: u16) -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let relay_port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let sent = Arc::new(AtomicUsize::new(0));
    let counter = sent.clone();
    std::thread::spawn(move || {
        let until = Instant::now() + Duration::from_secs(120);
        while Instant::now() < until {
            let Ok((client, _)) = listener.accept() else {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            };
            client.set_nonblocking(false).unwrap();
            let Ok(server) = TcpStream::connect(("127.0.0.1", port)) else { continue };
            let (client_back, server_back) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            let counter = counter.clone();
            std::thread::spawn(move || copy_counting(client, server, Some(&counter)));
            std::thread::spawn(move || copy_counting(server_back, client_back, None));
        }
    });
    (relay_port, sent)
}

fn copy_counting(mut from: TcpStream, mut to: TcpStream, counter: Option<&AtomicUsize>) {
    let mut buf = [0u8; 4096];
    while let Ok(n) = from.read(&mut buf) {
        if n == 0 || to.write_all(&buf[..n]).is_err() {
            break;
        }
        if let Some(c) = counter {
            c.fetch_add(n, Ordering::Relaxed);
        }
    }
    let _ = to.shutdown(Shutdown::Both);
}

/// bob calls `target` (an echo preset), talks 3 s and hangs up; he must
/// have heard his own tone back.
fn bob_hears_his_echo(bob: &e2e::baresip::Baresip, target: &str, who: &str) {
    bob.command("dial", target).unwrap();
    bob.wait_event("call", "CALL_ESTABLISHED", Duration::from_secs(10)).unwrap();
    std::thread::sleep(Duration::from_secs(3));
    bob.command("hangup", "").unwrap();
    bob.wait_event("call", "CALL_CLOSED", Duration::from_secs(5)).unwrap();
    let heard = bob.heard_newest().unwrap();
    assert_hears(&heard.slice(1.0, heard.seconds() - 0.3), BARESIP_TONE, who);
}

fn assert_hears(pcm: &Pcm, freq: f64, who: &str) {
    let share = pcm.tone_share(freq);
    assert!(share > 0.5, "{who} should hear {freq} Hz; share {share:.3}, rms {:.4}", pcm.rms());
    println!("{who} hears {freq} Hz: share {share:.3}");
}

#[test]
fn gateway_registers_and_calls_both_ways_through_kamailio_over_wss() {
    let dir = test_dir("sip_wss_client_gateway");
    let (k, ca) = kamailio(&dir, &[("alice", "a-pw"), ("bob", "b-pw")]);
    let bob = k.registered_baresip(&dir, ("bob", "b-pw"), true, BARESIP_TONE).unwrap();
    let gw = Gateway::start(&dir, None, &["--set", &format!("sip.tls_ca={}", ca.display())]).unwrap();
    let page = Softphone::start(&dir, "softphone", &gw.url(), PAGE_TONE).unwrap();
    page.wait_ready().unwrap();
    page.register(&k.aor("alice"), "a-pw", &wss_proxy(&k)).unwrap();
    let ev = page.wait(|d| d["event"] == "registered" || d["event"] == "registration_failed").unwrap();
    assert_eq!(ev["event"], "registered", "{ev}\ngateway log:\n{}\nkamailio log:\n{}", gw.log(), k.log());
    assert!(k.log().contains("REQ REGISTER sip:example.test from 127.0.0.1"), "{}", k.log());
    assert!(k.log().lines().any(|l| l.contains("REQ REGISTER") && l.ends_with("(wss)")), "{}", k.log());

    // The page calls bob: the INVITE leaves over the WSS connection.
    page.fill("#target", &k.aor("bob")).unwrap();
    page.click("#call").unwrap();
    let accepted = page.wait(|d| d["event"] == "accepted" || d["event"] == "hangup").unwrap();
    assert_eq!(accepted["event"], "accepted", "{accepted}\n{}", gw.log());
    assert!(k.log().lines().any(|l| l.contains("REQ INVITE sip:bob@example.test") && l.ends_with("(wss)")));
    bob.wait_event("call", "CALL_ESTABLISHED", Duration::from_secs(5)).unwrap();
    page.wait(|d| d["event"] == "pcstate" && d["state"] == "connected").unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let heard = page.record(2500, &dir.join("page-heard-out.wav")).unwrap();
    assert_hears(&heard.slice(0.5, 2.5), BARESIP_TONE, "the page calling");
    page.click("#hangup").unwrap();
    assert_eq!(page.wait_event("hangup").unwrap()["by"], "local");
    bob.wait_event("call", "CALL_CLOSED", Duration::from_secs(5)).unwrap();
    let heard = bob.heard_newest().unwrap();
    assert_hears(&heard.slice(1.5, heard.seconds().min(3.5)), PAGE_TONE as f64, "baresip called");

    // bob calls the page: Kamailio reaches alice over the same connection.
    bob.command("dial", &k.aor("alice")).unwrap();
    let inc = page.wait_event("incomingcall").unwrap();
    assert!(inc["caller"].as_str().unwrap_or_default().contains("bob@example.test"), "{inc}");
    page.click("#answer").unwrap();
    page.wait(|d| d["event"] == "accepted" && d["call"] == inc["call"]).unwrap();
    bob.wait_event("call", "CALL_ESTABLISHED", Duration::from_secs(5)).unwrap();
    page.wait(|d| d["event"] == "pcstate" && d["state"] == "connected").unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let heard = page.record(2500, &dir.join("page-heard-in.wav")).unwrap();
    assert_hears(&heard.slice(0.5, 2.5), BARESIP_TONE, "the page called");
    bob.command("hangup", "").unwrap();
    let hangup = page.wait(|d| d["event"] == "hangup" && d["call"] == inc["call"]).unwrap();
    assert_eq!(hangup["by"], "remote", "{hangup}");
    bob.wait_event("call", "CALL_CLOSED", Duration::from_secs(5)).unwrap();
    let heard = bob.heard_newest().unwrap();
    assert_hears(&heard.slice(1.5, heard.seconds().min(3.5)), PAGE_TONE as f64, "baresip calling");
}

#[test]
fn daemon_registers_over_wss_and_a_wrong_ca_is_a_clear_error_while_calls_go_on() {
    let dir = test_dir("sip_wss_client_daemon");
    let (mut k, ca) = kamailio(&dir, &[("echo", "e-pw"), ("named", "n-pw"), ("other", "o-pw"), ("bob", "b-pw")]);
    let wrong_ca = TestCa::create(&dir, "wrong").unwrap().cert;
    let account = |user: &str, password: &str, proxy: &str| {
        format!("[[account]]\naor = \"{}\"\nproxy = \"{proxy}\"\npassword = \"{password}\"\n", k.aor(user))
    };
    let config = |ca: &Path, ws_path: &str, accounts: &str| {
        format!(
            "preset = \"echo\"\n[sip]\ntls_ca = {:?}\nws_path = \"{ws_path}\"\nws_keepalive = 1\n\n{accounts}",
            ca.display().to_string()
        )
    };
    // The echo account's connection runs through a relay that counts what
    // the daemon sends.
    let (relay_port, sent) = counting_relay(k.tls_port);
    // Trusting Kamailio's certificate, which names 127.0.0.1 and no host
    // name: registered at 127.0.0.1, refused under the name "localhost".
    let by_name = format!("sip:localhost:{};transport=wss", k.tls_port);
    let through_relay = format!("sip:127.0.0.1:{relay_port};transport=wss");
    let accounts = account("echo", "e-pw", &through_relay) + &account("named", "n-pw", &by_name);
    let trusting = Daemon::start_named(&dir, "trusting", &config(&ca, "/ws", &accounts), &[], &[]).unwrap();
    let distrusting = Daemon::start_named(
        &dir,
        "distrusting",
        &config(&wrong_ca, "/", &account("other", "o-pw", &wss_proxy(&k))),
        &[],
        &[],
    )
    .unwrap();

    // The wrong CA: the registration fails, and the reason says why.
    let failed = distrusting
        .wait_lines(&["account{aor=sip:other@example.test}", "registration failed"], 1, Duration::from_secs(10))
        .unwrap();
    assert!(failed[0].contains("invalid peer certificate: UnknownIssuer"), "{failed:?}");
    trusting.wait_lines(&["account{aor=sip:echo@example.test}", "registered"], 1, Duration::from_secs(10)).unwrap();
    assert!(k.log().contains("HTTP GET /ws (tls)"), "the upgrade asked for sip.ws_path:\n{}", k.log());
    let failed = trusting
        .wait_lines(&["account{aor=sip:named@example.test}", "registration failed"], 1, Duration::from_secs(10))
        .unwrap();
    assert!(failed[0].contains("invalid peer certificate: certificate not valid for name \"localhost\""), "{failed:?}");

    // Idle, the connection carries the keepalive Pings (sip.ws_keepalive =
    // 1 s) that keep it open.
    let before = sent.load(Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(3500));
    let pinged = sent.load(Ordering::Relaxed) - before;
    assert!(pinged > 0, "nothing went out over the idle WSS connection in 3.5 s");
    println!("idle WSS connection: {pinged} bytes in 3.5 s (pings every second)");

    // bob calls the trusting daemon's account through Kamailio, which
    // reaches it over the daemon's WSS connection: bob hears his tone back.
    let bob = k.registered_baresip(&dir, ("bob", "b-pw"), false, BARESIP_TONE).unwrap();
    bob_hears_his_echo(&bob, &k.aor("echo"), "bob through the WSS-registered daemon");
    assert!(
        k.log().lines().any(|l| l.contains("REQ BYE") && l.ends_with("(udp)")),
        "bob's BYE went through Kamailio:\n{}",
        k.log()
    );

    // Kamailio restarts: the WSS connection closes and its registrations
    // are gone. The daemon registers again at once on a new connection (not
    // at the refresh, 8 minutes away), and bob reaches it again.
    k.restart().unwrap();
    trusting
        .wait_lines(&["the connection to the registrar closed", "aor=sip:echo@example.test"], 1, Duration::from_secs(5))
        .unwrap();
    trusting.wait_lines(&["account{aor=sip:echo@example.test}", "registered"], 2, Duration::from_secs(20)).unwrap();
    bob_hears_his_echo(&bob, &k.aor("echo"), "bob after Kamailio restarted");

    // The daemon with the wrong CA is up and answers a direct call.
    bob_hears_his_echo(&bob, &distrusting.uri("echo"), "bob through the daemon with the wrong CA");
}
