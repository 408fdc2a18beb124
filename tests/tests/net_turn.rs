//! WebRTC through TURN, in network namespaces (tests/src/netns.rs): a
//! browser on a private network (192.0.2.0/24) behind a masquerading
//! router calls through `sipbridge gateway` on the public side
//! (198.51.100.10) to baresip beside it; coturn (203.0.113.10) is the TURN
//! server, its REST API secret in the gateway's `media.ice_servers`, and the
//! page gets short-lived credentials in the gateway's `ready`. Headless
//! Chromium and Firefox ESR each call three ways:
//!
//! - direct: no firewall, no TURN server (the gateway learns the browser's
//!   NAT address from its connectivity checks);
//! - UDP relay: the router drops everything from the browser to the gateway
//!   but the page's HTTP/WebSocket port, and everything to coturn but its
//!   port 3478, so media must go through a relay the browser allocated;
//! - TCP relay: as above, and UDP to coturn is dropped too: TURN over TCP.
//!
//! Audio is checked both ways (the page's WebAudio tone in baresip's
//! recording, baresip's tone in what the page heard), the selected
//! candidate pair is a relay (of the expected protocol) when it must be,
//! and the setup time (offer made -> connected, as the page measures it) is
//! printed for each. Both browsers then call twice more with the gateway's
//! WebRTC leg the lean one (`media.webrtc_leg = "lean"`):
//!
//! - direct: its ICE must learn the browser's NAT address from the checks
//!   as webrtcbin's does;
//! - both relayed: as the UDP relay case, and the gateway too may exchange
//!   UDP with coturn's port 3478 only, so neither side reaches the other's
//!   address nor the other's relay port from outside: media goes from the
//!   browser's allocation to the gateway's (the lean leg's own TURN client,
//!   `leg/lean/turn.rs`) inside coturn, and both ends of the selected pair
//!   are relays;
//! - both relayed over TCP: the same with TCP to coturn's port 3478 the
//!   gateway's only way out (its TURN client's connection,
//!   `leg/lean/turn_tcp.rs`) and the TURN server given as `?transport=tcp`;
//! - both relayed over TLS: the same with TCP to coturn's TLS port 5349
//!   the gateway's only way out, the gateway's first TURN server given as
//!   `turns:`, its certificate checked against coturn's test CA
//!   (`media.turn_tls_ca`) (the page's browsers, which would refuse that
//!   certificate, use the second, over UDP).

use e2e::audio::{tone, write_wav, Pcm};
use e2e::autocall::{self, Browser, Call, CallReport};
use e2e::baresip::{Baresip, BaresipAccount, BaresipOptions};
use e2e::bridge::Bridge;
use e2e::certs::TestCa;
use e2e::coturn::{Coturn, TURNS_PORT, TURN_PORT};
use e2e::gateway::Gateway;
use e2e::netns::{enable_forwarding, masquerade, Host};
use e2e::process::test_dir;
use e2e::ws_client::{Frame, WsClient};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};

const PAGE_TONE: u32 = 660;
const BARESIP_TONE: f64 = 440.0;
const SECRET: &str = "turn-rest-secret";
/// The router's chain for the firewall of a case (flushed between cases).
const CHAIN: &str = "TURNTEST";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Direct,
    UdpRelay,
    TcpRelay,
    /// The UDP relay case, and the gateway reaches coturn's 3478 only.
    BothRelayed,
    /// As BothRelayed, with TCP to 3478 the gateway's only way to coturn.
    BothRelayedTcp,
    /// As BothRelayed, with TLS to 5349 the gateway's only way to coturn.
    BothRelayedTls,
}

struct Net {
    browser: Host,
    gateway: Host,
    turn: Host,
}

fn iptables(args: &[&str]) {
    let out = Command::new("iptables").args(args).output().unwrap();
    assert!(out.status.success(), "iptables {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// The case's firewall on the router, between the browser and the rest.
fn firewall(net: &Net, route: Route) {
    iptables(&["-F", CHAIN]);
    if route == Route::Direct {
        return;
    }
    // Matched on the browser's link too, so no rule left in the chain can
    // touch the next test's hosts at the same addresses.
    let (link, gw, turn) = (net.browser.link.as_str(), net.gateway.addr.to_string(), net.turn.addr.to_string());
    iptables(&["-A", CHAIN, "-i", link, "-d", &gw, "-p", "tcp", "--dport", "8080", "-j", "ACCEPT"]);
    iptables(&["-A", CHAIN, "-i", link, "-d", &gw, "-j", "DROP"]);
    // Only coturn's port is open, so the browser cannot reach the
    // gateway's own relay candidate (another port of coturn's) either.
    let port = TURN_PORT.to_string();
    for protocol in ["udp", "tcp"] {
        if route != Route::TcpRelay || protocol == "tcp" {
            iptables(&["-A", CHAIN, "-i", link, "-d", &turn, "-p", protocol, "--dport", &port, "-j", "ACCEPT"]);
        }
    }
    if route == Route::BothRelayedTls {
        // Refused at once rather than dropped: Chromium tries the turns:
        // server too and would wait 10 s for the dropped connection
        // before completing its gathering.
        let tls = TURNS_PORT.to_string();
        let reset = ["-j", "REJECT", "--reject-with", "tcp-reset"];
        iptables(&[&["-A", CHAIN, "-i", link, "-d", &turn, "-p", "tcp", "--dport", &tls][..], &reset[..]].concat());
    }
    iptables(&["-A", CHAIN, "-i", link, "-d", &turn, "-j", "DROP"]);
    if let Route::BothRelayed | Route::BothRelayedTcp | Route::BothRelayedTls = route {
        let gateway_link = net.gateway.link.as_str();
        let turn_link = net.turn.link.as_str();
        let protocol = if route == Route::BothRelayed { "udp" } else { "tcp" };
        let port = if route == Route::BothRelayedTls { TURNS_PORT.to_string() } else { port.clone() };
        iptables(&["-A", CHAIN, "-i", gateway_link, "-d", &turn, "-p", protocol, "--dport", &port, "-j", "ACCEPT"]);
        iptables(&["-A", CHAIN, "-i", gateway_link, "-d", &turn, "-j", "DROP"]);
        iptables(&["-A", CHAIN, "-i", turn_link, "-d", &gw, "-p", protocol, "--sport", &port, "-j", "ACCEPT"]);
        iptables(&["-A", CHAIN, "-i", turn_link, "-d", &gw, "-j", "DROP"]);
    }
}

fn gateway_config(net: &Net, route: Route, webrtc_leg: &str, turn_ca: &Path) -> String {
    let turn = net.turn.addr;
    let servers = match route {
        Route::Direct => String::new(),
        Route::UdpRelay | Route::BothRelayed => format!(
            "[[media.ice_servers]]\nurls = [\"turn:{turn}:{TURN_PORT}?transport=udp\"]\nsecret = \"{SECRET}\"\nttl = 600\n"
        ),
        Route::TcpRelay | Route::BothRelayedTcp => format!(
            "[[media.ice_servers]]\nurls = [\"turn:{turn}:{TURN_PORT}?transport=tcp\"]\nsecret = \"{SECRET}\"\nttl = 600\n"
        ),
        Route::BothRelayedTls => format!(
            "turn_tls_ca = \"{}\"\n[[media.ice_servers]]\nurls = [\"turns:{turn}:{TURNS_PORT}\"]\nsecret = \"{SECRET}\"\nttl = 600\n\
             [[media.ice_servers]]\nurls = [\"turn:{turn}:{TURN_PORT}?transport=udp\"]\nsecret = \"{SECRET}\"\nttl = 600\n",
            turn_ca.display()
        ),
    };
    format!(
        "[media]\naddresses = [\"{}\"]\nrtp_ports = \"20000-20999\"\nwebrtc_leg = \"{webrtc_leg}\"\n{servers}",
        net.gateway.addr
    )
}

/// One call from `browser` over `route`; returns the page's report and what
/// baresip heard.
fn call(dir: &Path, net: &Net, turn: &Coturn, browser: Browser, route: Route, webrtc_leg: &str) -> (CallReport, Pcm) {
    let dir = dir.join(format!("{}-{route:?}-{webrtc_leg}", browser.name()));
    std::fs::create_dir_all(&dir).unwrap();
    firewall(net, route);
    let gw =
        Gateway::start_on(&dir, &net.gateway, &gateway_config(net, route, webrtc_leg, &turn.ca.cert), &[]).unwrap();
    let wav = dir.join("bob.wav");
    write_wav(&wav, &tone(BARESIP_TONE, 30.0, 8000, 0.3)).unwrap();
    let mut bob_account = BaresipAccount::direct(&format!("sip:bob@{}", net.gateway.addr), "");
    bob_account.auto_answer = true;
    let options =
        BaresipOptions { accounts: vec![bob_account], play: Some(wav), record: true, limit: Duration::from_secs(90) };
    let bob = Baresip::start_on(&dir, &options, &net.gateway).unwrap();
    let ws = format!("ws://{}:{}/ws", net.gateway.addr, gw.ws_port);
    let target = format!("sip:bob@{}:{}", net.gateway.addr, bob.sip_port);
    let from = format!("sip:page@{}", net.browser.addr);
    let page = Call { ws: &ws, target: &target, from: &from, tone_hz: PAGE_TONE };
    let server: SocketAddr = (net.browser.gateway, 0).into();
    let report = autocall::run(&dir, browser, &net.browser, server, &page, Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{} over {route:?}: {e:#}\ngateway log:\n{}", browser.name(), gw.log()));
    bob.wait_event("call", "CALL_CLOSED", Duration::from_secs(10)).unwrap();
    (report, bob.heard().unwrap())
}

fn check(browser: Browser, route: Route, report: &CallReport, bob_heard: &Pcm) {
    let who = format!("{} over {route:?}", browser.name());
    let heard = report.heard.slice(0.3, report.heard.seconds());
    let share = heard.tone_share(BARESIP_TONE);
    assert!(
        share > 0.5,
        "{who}: the page should hear baresip's {BARESIP_TONE} Hz: share {share:.3} of {:.1} s at rms {:.4}",
        heard.seconds(),
        heard.rms()
    );
    let share = bob_heard.slice(1.0, bob_heard.seconds()).tone_share(f64::from(PAGE_TONE));
    assert!(share > 0.5, "{who}: baresip should hear the page's {PAGE_TONE} Hz: share {share:.3}");
    // The gateway's UDP candidates take ports from media.rtp_ports.
    for line in report.answer.lines().filter(|l| l.contains(" UDP ") && l.contains("typ host")) {
        let port: u16 = line.split(' ').nth(5).and_then(|p| p.parse().ok()).unwrap_or_default();
        assert!((20000..=20999).contains(&port), "{who}: a UDP candidate outside rtp_ports: {line}");
    }
    let pair = &report.pair;
    match route {
        Route::Direct => {
            assert_ne!(pair["localType"], "relay", "{who}: {pair}");
            assert!(report.ice_servers.as_array().is_some_and(|a| a.is_empty()), "{who}: {}", report.ice_servers);
        }
        Route::UdpRelay | Route::TcpRelay | Route::BothRelayed | Route::BothRelayedTcp | Route::BothRelayedTls => {
            assert_eq!(pair["localType"], "relay", "{who}: the browser must send through coturn: {pair}");
            if let Route::BothRelayed | Route::BothRelayedTcp | Route::BothRelayedTls = route {
                assert_eq!(pair["remoteType"], "relay", "{who}: to the gateway's relay: {pair}");
            }
            let tcp = matches!(route, Route::TcpRelay | Route::BothRelayedTcp);
            let protocol = if tcp { "tcp" } else { "udp" };
            if !pair["relayProtocol"].is_null() {
                assert_eq!(pair["relayProtocol"], protocol, "{who}: {pair}");
            }
            let username = report.ice_servers[0]["username"].as_str().unwrap_or_default();
            assert!(username.contains(":web"), "{who}: REST credentials expected, got {}", report.ice_servers);
            // The gateway's own description offers its relay candidate too.
            assert!(report.answer.contains("typ relay"), "{who}: no relay candidate in the answer:\n{}", report.answer);
        }
    }
    println!("{who}: setup {:.0} ms, selected pair {pair}", report.setup.as_secs_f64() * 1000.0);
}

/// One test: the router is this process's namespace, and every case uses
/// the same hosts with the firewall of its own.
#[test]
fn browsers_behind_nat_call_directly_and_through_turn_over_udp_and_tcp() {
    let dir = test_dir("net_turn");
    let limit = Duration::from_secs(600);
    let net = Net {
        browser: Host::new(&dir, "browser", [192, 0, 2, 10].into(), limit).unwrap(),
        gateway: Host::new(&dir, "gateway", [198, 51, 100, 10].into(), limit).unwrap(),
        turn: Host::new(&dir, "turn", [203, 0, 113, 10].into(), limit).unwrap(),
    };
    enable_forwarding().unwrap();
    masquerade(&net.browser, &net.gateway).unwrap();
    masquerade(&net.browser, &net.turn).unwrap();
    iptables(&["-N", CHAIN]);
    iptables(&["-I", "FORWARD", "-j", CHAIN]);
    let turn = Coturn::start_on(&dir, &net.turn, SECRET, limit).unwrap();

    let mut setups = Vec::new();
    for browser in [Browser::Firefox, Browser::Chromium] {
        for route in [Route::Direct, Route::UdpRelay, Route::TcpRelay] {
            let (report, bob_heard) = call(&dir, &net, &turn, browser, route, "webrtcbin");
            check(browser, route, &report, &bob_heard);
            setups.push(format!("{} {route:?} {:.2} s", browser.name(), report.setup.as_secs_f64()));
        }
        for route in [Route::Direct, Route::BothRelayed, Route::BothRelayedTcp, Route::BothRelayedTls] {
            let (report, bob_heard) = call(&dir, &net, &turn, browser, route, "lean");
            check(browser, route, &report, &bob_heard);
            assert!(report.answer.contains("str0m"), "the lean leg answered:\n{}", report.answer);
            setups.push(format!("{} {route:?} lean {:.2} s", browser.name(), report.setup.as_secs_f64()));
        }
    }
    let log = turn.log();
    assert!(log.contains("TCP") && log.contains("UDP"), "coturn served both transports:\n{log}");
    assert!(log.contains(":sipbridge>"), "the gateway's lean leg allocated on coturn:\n{log}");
    println!("setup times: {}", setups.join(", "));
}

/// The gateway's `ready` carries TURN REST credentials that coturn would
/// accept: `EXPIRY:webN` with EXPIRY the configured ttl from now, and
/// base64(HMAC-SHA1(secret, username)) as the credential; the secret
/// itself never leaves the gateway.
#[test]
fn the_gateway_hands_the_page_short_lived_turn_credentials() {
    use openssl::{hash::MessageDigest, pkey::PKey, sign::Signer};
    let dir = test_dir("net_turn_credentials");
    let body = format!(
        "[[media.ice_servers]]\nurls = \"stun:203.0.113.10\"\n\
         [[media.ice_servers]]\nurls = [\"turn:203.0.113.10?transport=udp\", \"turn:203.0.113.10?transport=tcp\"]\n\
         secret = \"{SECRET}\"\nttl = 600\n"
    );
    let gw = Gateway::start_with_config(&dir, &body).unwrap();
    let mut ws = WsClient::connect(gw.ws_port, None, "/ws").unwrap();
    let Some(Frame::Text(ready)) = ws.read_frame(Duration::from_secs(5)).unwrap() else { panic!("no ready") };
    assert!(!ready.contains(SECRET), "the secret must stay in the gateway: {ready}");
    let ready: serde_json::Value = serde_json::from_str(&ready).unwrap();
    let servers = &ready["params"]["iceServers"];
    assert_eq!(servers[0], serde_json::json!({ "urls": ["stun:203.0.113.10"] }), "{servers}");
    let username = servers[1]["username"].as_str().unwrap();
    let (expiry, user) = username.split_once(':').unwrap();
    assert!(user.starts_with("web"), "{username}");
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
    let expiry: u64 = expiry.parse().unwrap();
    assert!((now + 590..=now + 610).contains(&expiry), "expiry {expiry} should be ttl (600 s) from {now}");
    let key = PKey::hmac(SECRET.as_bytes()).unwrap();
    let mut signer = Signer::new(MessageDigest::sha1(), &key).unwrap();
    signer.update(username.as_bytes()).unwrap();
    let expected = openssl::base64::encode_block(&signer.sign_to_vec().unwrap());
    assert_eq!(servers[1]["credential"], expected.as_str(), "{servers}");
    assert_eq!(servers[1]["urls"].as_array().unwrap().len(), 2);
    // A second connection gets credentials of its own.
    let mut other = WsClient::connect(gw.ws_port, None, "/ws").unwrap();
    let Some(Frame::Text(second)) = other.read_frame(Duration::from_secs(5)).unwrap() else { panic!("no ready") };
    assert!(!second.contains(username), "each connection gets its own username: {second}");
}

/// `sipbridge stdio` sessions take `iceServers` as RTCConfiguration has
/// them: with coturn's secret, an offer waits for the relay candidate
/// coturn allocates over UDP, TCP or TLS (the lean leg's TLS only when it
/// trusts coturn's certificate); a bad entry is refused with -32602 saying
/// why, and the process goes on.
#[test]
fn stdio_sessions_gather_relay_candidates_from_their_ice_servers() {
    let dir = test_dir("net_turn_stdio");
    let turn = Coturn::start(&dir, SECRET, Duration::from_secs(60)).unwrap();
    // The lean leg checks the TLS listener's certificate against the
    // system's roots, which OpenSSL reads from `SSL_CERT_FILE`.
    let trusted = turn.ca.cert.to_str().unwrap();
    let mut bridge = Bridge::start_with_env(&dir, &[], &[("SSL_CERT_FILE", trusted)]).unwrap();
    let relays = [
        ("udp", format!("turn:127.0.0.1:{TURN_PORT}?transport=udp")),
        ("tcp", format!("turn:127.0.0.1:{TURN_PORT}?transport=tcp")),
        ("tls", format!("turns:127.0.0.1:{TURNS_PORT}")),
    ];
    for (transport, url) in &relays {
        let servers = serde_json::json!([
            { "urls": format!("stun:127.0.0.1:{TURN_PORT}") },
            { "urls": [url], "secret": SECRET },
        ]);
        let session = bridge.create("webrtc", serde_json::json!({ "iceServers": servers })).unwrap();
        let started = std::time::Instant::now();
        let (kind, sdp) = bridge.local_description(&session).unwrap();
        let took = started.elapsed();
        assert_eq!(kind, "offer");
        let relay: Vec<&str> = sdp.lines().filter(|l| l.contains("typ relay")).collect();
        assert!(!relay.is_empty(), "TURN over {transport}: no relay candidate in\n{sdp}");
        assert!(took < Duration::from_secs(5), "gathering took {took:?}");
        assert!(sdp.contains("tcptype"), "ICE-TCP candidates expected:\n{sdp}");
        println!("TURN over {transport}: complete offer in {took:?}: {relay:?}");
        bridge.call("session.close", serde_json::json!({ "session": session })).unwrap();
    }
    // The lean leg allocates over UDP from its own socket, over TCP or TLS.
    for (transport, url) in &relays {
        let servers = serde_json::json!([{ "urls": url, "secret": SECRET }]);
        let session =
            bridge.create("webrtc", serde_json::json!({ "iceServers": servers, "webrtcLeg": "lean" })).unwrap();
        let started = std::time::Instant::now();
        let (_, sdp) = bridge.local_description(&session).unwrap();
        let took = started.elapsed();
        assert!(
            sdp.lines().any(|l| l.contains("typ relay")),
            "lean leg over {transport}: no relay candidate in\n{sdp}"
        );
        println!("lean leg, TURN over {transport}: complete offer in {took:?}");
        bridge.call("session.close", serde_json::json!({ "session": session })).unwrap();
    }
    let tls = format!("local 127.0.0.1:{TURNS_PORT}");
    assert!(turn.log().contains(&tls), "an allocation over coturn's TLS listener:\n{}", turn.log());
    // Trusting another CA, the lean leg's TLS allocation fails (and says
    // why); the offer comes without a relay candidate, at once.
    let other_dir = dir.join("other-ca");
    std::fs::create_dir_all(&other_dir).unwrap();
    let other = TestCa::create(&other_dir, "other").unwrap();
    let distrustful =
        Bridge::start_with_env(&other_dir, &[], &[("SSL_CERT_FILE", other.cert.to_str().unwrap())]).unwrap();
    let servers = serde_json::json!([{ "urls": relays[2].1, "secret": SECRET }]);
    let session =
        distrustful.create("webrtc", serde_json::json!({ "iceServers": servers, "webrtcLeg": "lean" })).unwrap();
    let started = std::time::Instant::now();
    let (_, sdp) = distrustful.local_description(&session).unwrap();
    let took = started.elapsed();
    assert!(!sdp.lines().any(|l| l.contains("typ relay")), "a relay through an untrusted server:\n{sdp}");
    assert!(sdp.lines().any(|l| l.contains("typ host")), "the call goes on with its host candidate:\n{sdp}");
    let log = distrustful.io.log();
    let refused = log.lines().find(|l| l.contains("TURN allocation failed") && l.contains("does not check out"));
    assert!(refused.is_some(), "the reason in the log:\n{log}");
    println!("lean leg, TURN over TLS to an untrusted certificate: offer without relay in {took:?}");
    distrustful.call("session.close", serde_json::json!({ "session": session })).unwrap();
    let bad = bridge
        .request(
            "session.create",
            serde_json::json!({ "kind": "webrtc", "iceServers": [{ "urls": "turn:127.0.0.1" }] }),
        )
        .unwrap();
    assert_eq!(bad["error"]["code"], -32602, "{bad}");
    let message = bad["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("iceServers") && message.contains("username and credential"), "{bad}");
    assert!(bridge.is_running(), "a bad iceServers entry must not end the process");
}
