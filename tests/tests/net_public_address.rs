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
//!   selected pair's remote address the public one;
//! - the same call with the lean WebRTC leg (`media.webrtc_leg = "lean"`):
//!   its host candidate names 203.0.113.7 in the same way;
//! - the lean leg again without `public_address` but with a STUN server
//!   (coturn on the phone's host): its server-reflexive candidate is
//!   203.0.113.7, the only address of its the browser can reach (the
//!   browser gets the STUN server too, and its NAT lets in only what
//!   answers its own checks, so the gateway's checks alone cannot make a
//!   pair): the page's selected pair is that srflx candidate. baresip
//!   runs beside the gateway for this call, as its RTP leg has no public
//!   address to advertise;
//! - the lean leg once more with a TURN server (the same coturn) and no
//!   STUN server: its server-reflexive candidate comes from the
//!   allocation's answer (XOR-MAPPED-ADDRESS), beside its relay candidate.

use e2e::audio::{tone, write_wav, Pcm};
use e2e::autocall::CallReport;
use e2e::autocall::{self, Browser, Call};
use e2e::baresip::{Baresip, BaresipAccount, BaresipOptions};
use e2e::coturn::Coturn;
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
/// coturn's REST secret, for the lean leg's TURN allocation.
const TURN_SECRET: &str = "net-public-address-secret";
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
    let public_address = format!("public_address = \"{PUBLIC}\"\n");
    let report = webrtc_call(&dir.join("webrtc"), &net, &net.phone, &public_address);
    advertises_public_host(&report, &private);
    println!("webrtcbin behind 1:1 NAT: setup {:.0} ms, pair {}", ms(&report), report.pair);
    let lean_public = format!("webrtc_leg = \"lean\"\n{public_address}");
    let report = webrtc_call(&dir.join("webrtc-lean"), &net, &net.phone, &lean_public);
    assert!(report.answer.contains("str0m"), "the lean leg answered:\n{}", report.answer);
    advertises_public_host(&report, &private);
    println!("lean behind 1:1 NAT (public address): setup {:.0} ms, pair {}", ms(&report), report.pair);

    // The lean leg learns the public address from a STUN server instead.
    let stun_dir = dir.join("webrtc-lean-stun");
    std::fs::create_dir_all(&stun_dir).unwrap();
    let _coturn = Coturn::start_on(&stun_dir, &net.phone, TURN_SECRET, limit).unwrap();
    let servers = format!("webrtc_leg = \"lean\"\n[[media.ice_servers]]\nurls = \"stun:{}\"\n", net.phone.addr);
    let report = webrtc_call(&stun_dir, &net, &net.server, &servers);
    reflexive_is_public(&report);
    assert_eq!(report.pair["remoteAddress"], PUBLIC.to_string(), "{}", report.pair);
    assert_eq!(report.pair["remoteType"], "srflx", "the page reached the gateway at its srflx: {}", report.pair);
    println!("lean behind 1:1 NAT (STUN): setup {:.0} ms, pair {}", ms(&report), report.pair);

    // ... or from its TURN allocation's answer, with no STUN server.
    let turn_dir = dir.join("webrtc-lean-turn");
    let servers = format!(
        "webrtc_leg = \"lean\"\n[[media.ice_servers]]\nurls = \"turn:{}\"\nsecret = \"{TURN_SECRET}\"\n",
        net.phone.addr
    );
    let report = webrtc_call(&turn_dir, &net, &net.server, &servers);
    reflexive_is_public(&report);
    assert!(report.answer.contains("typ relay"), "a relay candidate too:\n{}", report.answer);
    println!("lean behind 1:1 NAT (TURN): setup {:.0} ms, pair {}", ms(&report), report.pair);
}

/// The gateway's answer has a server-reflexive candidate at the public address.
fn reflexive_is_public(report: &CallReport) {
    let srflx: Vec<&str> = report.answer.lines().filter(|l| l.contains("typ srflx")).collect();
    assert!(
        srflx.iter().any(|c| c.contains(&format!(" {PUBLIC} "))),
        "a server-reflexive candidate naming {PUBLIC} expected:\n{}",
        report.answer
    );
}

fn ms(report: &CallReport) -> f64 {
    report.setup.as_secs_f64() * 1000.0
}

/// The gateway's host candidates name the public address, never the private one.
fn advertises_public_host(report: &CallReport, private: &str) {
    let candidates: Vec<&str> = report.answer.lines().filter(|l| l.starts_with("a=candidate:")).collect();
    assert!(
        candidates.iter().any(|c| c.contains(&format!(" {PUBLIC} ")) && c.contains("typ host")),
        "host candidates should name {PUBLIC}: {candidates:#?}"
    );
    assert!(!report.answer.contains(private), "the private address must not be advertised:\n{}", report.answer);
    assert_eq!(report.pair["remoteAddress"], PUBLIC.to_string(), "{}", report.pair);
}

/// Chromium behind its NAT calls through the gateway (its `[media]` with
/// `media` added) to baresip on `phone_host`; audio checked both ways.
fn webrtc_call(dir: &Path, net: &Net, phone_host: &Host, media: &str) -> CallReport {
    std::fs::create_dir_all(dir).unwrap();
    let body = format!("[media]\naddresses = [\"{}\"]\nrtp_ports = \"20000-20999\"\n{media}", net.server.addr);
    let public = PUBLIC.to_string();
    let gw = Gateway::start_on(dir, &net.server, &body, &["--sip-advertised-host", &public]).unwrap();
    let phone = baresip_playing(dir, phone_host, true);
    let ws = format!("ws://{PUBLIC}:{}/ws", gw.ws_port);
    let target = format!("sip:phone@{}:{}", phone_host.addr, phone.sip_port);
    let from = format!("sip:page@{}", net.browser.addr);
    let call = Call { ws: &ws, target: &target, from: &from, tone_hz: PAGE_TONE };
    let server: SocketAddr = (net.browser.gateway, 0).into();
    let report = autocall::run(dir, Browser::Chromium, &net.browser, server, &call, Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{e:#}\ngateway log:\n{}", gw.log()));
    let heard = report.heard.slice(0.3, report.heard.seconds());
    let share = heard.tone_share(PHONE_TONE);
    assert!(share > 0.5, "{media}: the page should hear the phone's {PHONE_TONE} Hz: share {share:.3}");
    phone.wait_event("call", "CALL_CLOSED", Duration::from_secs(10)).unwrap();
    let phone_heard = phone.heard().unwrap();
    let share = phone_heard.slice(1.0, phone_heard.seconds()).tone_share(f64::from(PAGE_TONE));
    assert!(share > 0.5, "{media}: the phone should hear the page's {PAGE_TONE} Hz: share {share:.3}");
    report
}
