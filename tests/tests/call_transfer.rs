//! Call transfer with sipbridge as the transferee (RFC 3515), the echo
//! preset answering: a REFER from the caller makes sipbridge call the
//! Refer-To target with the caller's Referred-By, report the progress by
//! NOTIFY message/sipfrag, move the echo to the new call and BYE the
//! caller. baresip blind-transfers its call to a third baresip, which hears
//! its own tone echoed while the transferring baresip is released; SIPp
//! scenarios check the NOTIFYs of an accepted REFER (the target's audio is
//! echoed), a REFER refused by `transfer.policy = "reject"` (603, the call
//! goes on) and a busy target (NOTIFY 486, the original call kept with its
//! audio echoed).

use e2e::audio::{tone, write_wav};
use e2e::baresip::{Baresip, BaresipAccount, BaresipOptions};
use e2e::daemon::{count_rtp, Daemon};
use e2e::process::{free_udp_port, test_dir};
use e2e::sipp::Sipp;
use std::net::UdpSocket;
use std::path::Path;
use std::time::Duration;

const ECHO: &str = "preset = \"echo\"\n";

/// A baresip under `dir/name` playing a tone of `hz` for `seconds` (it
/// hangs up when the tone ends) and recording what it hears.
fn phone(dir: &Path, name: &str, hz: f64, seconds: f64, auto_answer: bool) -> Baresip {
    let own = dir.join(name);
    std::fs::create_dir_all(&own).unwrap();
    let wav = own.join("tone.wav");
    write_wav(&wav, &tone(hz, seconds, 8000, 0.3)).unwrap();
    let mut account = BaresipAccount::unregistered(&format!("sip:{name}@127.0.0.1"));
    account.auto_answer = auto_answer;
    let options =
        BaresipOptions { accounts: vec![account], play: Some(wav), record: true, limit: Duration::from_secs(60) };
    Baresip::start(&own, &options).unwrap()
}

/// A socket of the test's for RTP, and its port (written into SIPp's SDP).
fn rtp_sink() -> (UdpSocket, String) {
    let port = free_udp_port();
    (UdpSocket::bind(("127.0.0.1", port)).unwrap(), port.to_string())
}

#[test]
fn baresip_blind_transfers_the_echo_to_a_third_phone() {
    let dir = test_dir("call_transfer_baresip");
    let daemon = Daemon::start(&dir, ECHO, &[]).unwrap();
    let alice = phone(&dir, "alice", 440.0, 20.0, false);
    let carol = phone(&dir, "carol", 700.0, 5.0, true);
    alice.command("dial", &daemon.uri("echo")).unwrap();
    alice.wait_event("call", "CALL_ESTABLISHED", Duration::from_secs(10)).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    alice.command("transfer", &format!("sip:carol@127.0.0.1:{}", carol.sip_port)).unwrap();
    // The transferring phone is released...
    alice.wait_event("call", "CALL_CLOSED", Duration::from_secs(15)).unwrap();
    // ...and the third one is answered by the echo until its tone ends.
    carol.wait_event("call", "CALL_ESTABLISHED", Duration::from_secs(10)).unwrap();
    carol.wait_event("call", "CALL_CLOSED", Duration::from_secs(15)).unwrap();
    let pcm = carol.heard().unwrap();
    let tail = pcm.slice(1.0, pcm.seconds() - 0.3);
    assert!(tail.seconds() > 2.5, "carol's recording is too short: {} s", pcm.seconds());
    assert!(
        tail.tone_share(700.0) > 0.8 && tail.rms() > 0.05,
        "carol should hear her 700 Hz echoed: share {}, 440 Hz share {}, rms {}",
        tail.tone_share(700.0),
        tail.tone_share(440.0),
        tail.rms()
    );
    daemon.wait_lines(&["transfer accepted", "sip:carol@"], 1, Duration::from_secs(1)).unwrap();
    daemon.wait_lines(&["transferred: the preset's media moves to the new call"], 1, Duration::from_secs(1)).unwrap();
}

#[test]
fn sipp_refer_accepted_notifies_progress_and_moves_the_echo_to_the_target() {
    let dir = test_dir("call_transfer_sipp_accepted");
    let daemon = Daemon::start(&dir, ECHO, &[]).unwrap();
    let (sink, sink_port) = rtp_sink();
    let target = Sipp::new("uas_transfer_target.xml").args(["-key", "rtp_sink", sink_port.as_str()]);
    let target_addr = format!("127.0.0.1:{}", target.port());
    let mut target = target.spawn(&dir, "sipp-target").unwrap();
    let mut transferor = Sipp::new("uac_transfer_accepted.xml")
        .args(["-s", "echo", "-key", "target", target_addr.as_str()])
        .remote(daemon.addr())
        .spawn(&dir, "sipp-transferor")
        .unwrap();
    let (packets, pts) = count_rtp(&sink, Duration::from_secs(2), Duration::from_secs(25));
    transferor.expect_success(Duration::from_secs(20)).unwrap();
    target.expect_success(Duration::from_secs(20)).unwrap();
    assert_eq!(pts, vec![8], "the echo to the target must be PCMA (pt 8)");
    assert!(packets >= 200, "only {packets} RTP packets echoed to the target of the pcap's 236 (7 s)");
    daemon.wait_lines(&["transferred: the new call takes this one's place"], 1, Duration::from_secs(1)).unwrap();
}

#[test]
fn sipp_refer_refused_by_policy_is_603_and_the_call_goes_on() {
    let dir = test_dir("call_transfer_sipp_refused");
    let config = format!("{ECHO}[transfer]\npolicy = \"reject\"\n");
    let daemon = Daemon::start(&dir, &config, &[]).unwrap();
    let mut transferor = Sipp::new("uac_transfer_refused.xml")
        .args(["-s", "echo", "-key", "target", "127.0.0.1:9"])
        .remote(daemon.addr())
        .spawn(&dir, "sipp-transferor")
        .unwrap();
    transferor.expect_success(Duration::from_secs(20)).unwrap();
    daemon.wait_lines(&["transfer refused", "code=603"], 1, Duration::from_secs(1)).unwrap();
    daemon.wait_lines(&["call ended", "by=remote"], 1, Duration::from_secs(5)).unwrap();
}

#[test]
fn sipp_refer_to_a_busy_target_notifies_486_and_keeps_the_call_with_audio() {
    let dir = test_dir("call_transfer_sipp_busy");
    let daemon = Daemon::start(&dir, ECHO, &[]).unwrap();
    let busy = Sipp::new("uas_busy.xml");
    let busy_addr = format!("127.0.0.1:{}", busy.port());
    let mut busy = busy.spawn(&dir, "sipp-busy").unwrap();
    let (sink, sink_port) = rtp_sink();
    let mut transferor = Sipp::new("uac_transfer_busy.xml")
        .args(["-s", "echo", "-key", "target", busy_addr.as_str(), "-key", "rtp_sink", sink_port.as_str()])
        .remote(daemon.addr())
        .spawn(&dir, "sipp-transferor")
        .unwrap();
    let (packets, pts) = count_rtp(&sink, Duration::from_secs(2), Duration::from_secs(25));
    transferor.expect_success(Duration::from_secs(20)).unwrap();
    busy.expect_success(Duration::from_secs(5)).unwrap();
    assert_eq!(pts, vec![8], "the echo must be PCMA (pt 8)");
    assert!(packets >= 200, "only {packets} RTP packets echoed on the kept call of the pcap's 236 (7 s)");
    daemon.wait_lines(&["transfer failed; the call goes on", "code=486"], 1, Duration::from_secs(1)).unwrap();
}
