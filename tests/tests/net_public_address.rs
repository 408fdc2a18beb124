//! A bridge behind a 1:1 NAT, as on a cloud VM, in network namespaces
//! (tests/src/netns.rs): the host has the private address 10.0.0.10, the
//! world reaches it as 203.0.113.7 (DNAT in, SNAT out), and its private
//! address does not route from outside. With `public_address`:
//!
//! - the echo preset's SDP names 203.0.113.7, so baresip on the public side
//!   (198.51.100.20) sends its RTP there and hears its tone back; without
//!   it the SDP names 10.0.0.10, the RTP is dropped, and the echo is silent
//!   (symmetric RTP is off, so nothing but the SDP says where to send);
//! - the gateway's WebRTC host candidates name 203.0.113.7 and never the
//!   private address: headless Chromium behind a masquerading NAT
//!   (192.0.2.10) calls through it to baresip, audio both ways, its
//!   selected pair's remote address the public one.

use e2e::audio::{tone, write_wav, Pcm};
use e2e::autocall::{self, Browser, Call};
use e2e::baresip::{Baresip, BaresipAccount, BaresipOptions};
use e2e::daemon::Daemon;
use e2e::gateway::Gateway;
use e2e::netns::{enable_forwarding, masquerade, one_to_one, Host};
use e2e::process::test_dir;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const PUBLIC: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 7);
const PHONE_TONE: f64 = 440.0;
const PAGE_TONE: u32 = 660;

struct Net {
    server: Host,
    phone: Host,
    browser: Host,
}

fn baresip_playing(dir: &Path, host: &Host, auto_answer: bool) -> Baresip {
    let wav = dir.join("phone.wav");
    write_wav(&wav, &tone(PHONE_TONE, if auto_answer { 30.0 } else { 5.0 }, 8000, 0.3)).unwrap();
    let mut account = BaresipAccount::direct(&format!("sip:phone@{}", host.addr), "");
    account.auto_answer = auto_answer;
    let options =
        BaresipOptions { accounts: vec![account], play: Some(wav), record: true, limit: Duration::from_secs(60) };
    Baresip::start_on(dir, &options, host).unwrap()
}

/// baresip calls the echo preset at the public address; what it heard.
fn echo_call(dir: &Path, net: &Net, public_address: bool) -> Pcm {
    std::fs::create_dir_all(dir).unwrap();
    let config =
        format!("preset = \"echo\"\n[sip]\nadvertised_host = \"{PUBLIC}\"\n[media]\nsymmetric_rtp = \"never\"\n");
    let public = PUBLIC.to_string();
    let args: &[&str] = if public_address { &["--public-address", &public] } else { &[] };
    let daemon = Daemon::start_on(dir, &net.server, &config, args).unwrap();
    let phone = baresip_playing(dir, &net.phone, false);
    phone.command("dial", &format!("sip:echo@{PUBLIC}:{}", daemon.sip_port)).unwrap();
    phone.wait_event("call", "CALL_ESTABLISHED", Duration::from_secs(10)).unwrap();
    phone.wait_event("call", "CALL_CLOSED", Duration::from_secs(20)).unwrap();
    phone.heard().unwrap()
}

#[test]
fn a_bridge_behind_one_to_one_nat_advertises_its_public_address() {
    let dir = test_dir("net_public_address");
    let limit = Duration::from_secs(240);
    let net = Net {
        server: Host::new(&dir, "server", [10, 0, 0, 10].into(), limit).unwrap(),
        phone: Host::new(&dir, "phone", [198, 51, 100, 20].into(), limit).unwrap(),
        browser: Host::new(&dir, "browser", [192, 0, 2, 10].into(), limit).unwrap(),
    };
    enable_forwarding().unwrap();
    one_to_one(&net.server, PUBLIC, &net.phone).unwrap();
    masquerade(&net.browser, &net.server).unwrap();
    // The private address is reached from nowhere but through the NAT.
    let private = net.server.addr.to_string();
    let out = Command::new("iptables")
        .args(["-A", "FORWARD", "-d", &private, "-m", "conntrack", "!", "--ctstate", "DNAT,ESTABLISHED,RELATED"])
        .args(["-j", "DROP"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // RTP: the SDP's address decides whether the phone's RTP arrives.
    let heard = echo_call(&dir.join("rtp-public"), &net, true);
    let share = heard.slice(1.0, heard.seconds() - 0.3).tone_share(PHONE_TONE);
    assert!(share > 0.8, "the phone should hear its {PHONE_TONE} Hz back: share {share:.3}");
    let heard = echo_call(&dir.join("rtp-private"), &net, false);
    let share =
        if heard.seconds() > 1.3 { heard.slice(1.0, heard.seconds() - 0.3).tone_share(PHONE_TONE) } else { 0.0 };
    assert!(share < 0.1, "RTP to the private address must not arrive: share {share:.3}");

    // WebRTC: the gateway's host candidates carry the public address.
    let dir = dir.join("webrtc");
    std::fs::create_dir_all(&dir).unwrap();
    let body =
        format!("[media]\naddresses = [\"{private}\"]\npublic_address = \"{PUBLIC}\"\nrtp_ports = \"20000-20999\"\n");
    let public = PUBLIC.to_string();
    let gw = Gateway::start_on(&dir, &net.server, &body, &["--sip-advertised-host", &public]).unwrap();
    let phone = baresip_playing(&dir, &net.phone, true);
    let ws = format!("ws://{PUBLIC}:{}/ws", gw.ws_port);
    let target = format!("sip:phone@{}:{}", net.phone.addr, phone.sip_port);
    let from = format!("sip:page@{}", net.browser.addr);
    let call = Call { ws: &ws, target: &target, from: &from, tone_hz: PAGE_TONE };
    let server: SocketAddr = (net.browser.gateway, 0).into();
    let report = autocall::run(&dir, Browser::Chromium, &net.browser, server, &call, Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{e:#}\ngateway log:\n{}", gw.log()));
    let candidates: Vec<&str> = report.answer.lines().filter(|l| l.starts_with("a=candidate:")).collect();
    assert!(
        candidates.iter().any(|c| c.contains(&format!(" {PUBLIC} ")) && c.contains("typ host")),
        "host candidates should name {PUBLIC}: {candidates:#?}"
    );
    assert!(!report.answer.contains(&private), "the private address must not be advertised:\n{}", report.answer);
    assert_eq!(report.pair["remoteAddress"], PUBLIC.to_string(), "{}", report.pair);
    let heard = report.heard.slice(0.3, report.heard.seconds());
    let share = heard.tone_share(PHONE_TONE);
    assert!(share > 0.5, "the page should hear the phone's {PHONE_TONE} Hz: share {share:.3}");
    phone.wait_event("call", "CALL_CLOSED", Duration::from_secs(10)).unwrap();
    let phone_heard = phone.heard().unwrap();
    let share = phone_heard.slice(1.0, phone_heard.seconds()).tone_share(f64::from(PAGE_TONE));
    assert!(share > 0.5, "the phone should hear the page's {PAGE_TONE} Hz: share {share:.3}");
    println!("webrtc behind 1:1 NAT: setup {:.0} ms, pair {}", report.setup.as_secs_f64() * 1000.0, report.pair);
}
