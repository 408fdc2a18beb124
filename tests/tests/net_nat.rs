//! Across a NAT, in network namespaces (tests/src/netns.rs): a phone on a
//! private network (192.0.2.0/24) behind a masquerading router calls the
//! echo preset on the public side (198.51.100.0/24). The phone's SDP names
//! its private address, which does not route from outside (the router drops
//! anything new towards it), so audio reaches it only because the bridge
//! latches onto the address its RTP comes from (symmetric RTP). The same
//! call with latching turned off is silent: the topology really blocks.

use e2e::audio::{tone, write_wav, Pcm};
use e2e::baresip::{Baresip, BaresipAccount, BaresipOptions};
use e2e::daemon::Daemon;
use e2e::netns::{enable_forwarding, masquerade, Host};
use e2e::process::test_dir;
use std::path::Path;
use std::time::Duration;

const TONE: f64 = 440.0;

/// The phone behind NAT calls the echo preset; returns what it heard back.
fn echo_across_nat(dir: &Path, symmetric_rtp: &str) -> Pcm {
    let limit = Duration::from_secs(90);
    let phone_host = Host::new(dir, "phone", [192, 0, 2, 10].into(), limit).unwrap();
    let server = Host::new(dir, "server", [198, 51, 100, 10].into(), limit).unwrap();
    enable_forwarding().unwrap();
    masquerade(&phone_host, &server).unwrap();
    let config = format!("preset = \"echo\"\n[media]\nsymmetric_rtp = \"{symmetric_rtp}\"\n");
    let daemon = Daemon::start_on(dir, &server, &config, &[]).unwrap();
    let wav = dir.join("tone.wav");
    write_wav(&wav, &tone(TONE, 5.0, 8000, 0.3)).unwrap();
    let account = BaresipAccount {
        aor: "sip:phone@192.0.2.10".into(),
        password: None,
        outbound: None,
        auto_answer: false,
        regint: 0,
    };
    let options = BaresipOptions { accounts: vec![account], play: Some(wav), record: true, limit };
    let phone = Baresip::start_on(dir, &options, &phone_host).unwrap();
    phone.command("dial", &daemon.uri("echo")).unwrap();
    phone.wait_event("call", "CALL_ESTABLISHED", Duration::from_secs(10)).unwrap();
    // baresip hangs up when its file ends.
    phone.wait_event("call", "CALL_CLOSED", Duration::from_secs(20)).unwrap();
    let log = daemon.log();
    assert!(log.contains("from=sip:phone@192.0.2.10"), "the call came through the NAT:\n{log}");
    phone.heard().unwrap()
}

/// One test: the router is this process's namespace, and both topologies
/// use the same addresses.
#[test]
fn a_phone_behind_nat_hears_the_echo_only_through_latching() {
    let heard = echo_across_nat(&test_dir("nat_latching"), "auto");
    assert!(heard.seconds() > 3.0, "recording too short: {} s", heard.seconds());
    let share = heard.slice(1.0, heard.seconds() - 0.3).tone_share(TONE);
    assert!(share > 0.8, "the phone behind NAT should hear its {TONE} Hz back: share {share:.3}");

    let heard = echo_across_nat(&test_dir("nat_no_latching"), "never");
    let share = if heard.seconds() > 1.3 { heard.slice(1.0, heard.seconds() - 0.3).tone_share(TONE) } else { 0.0 };
    assert!(share < 0.1, "RTP to the phone's private address must not arrive: share {share:.3}, {} s", heard.seconds());
}
