//! DTMF reaching the daemon's log with the call's id: RFC 4733 from SIPp
//! (the pcap shipped with SIPp) and from baresip (a key pressed over
//! ctrl_tcp), and SIP INFO `application/dtmf-relay` from SIPp. (baresip
//! 1.0, Debian 12's, sends DTMF as RFC 4733 only; INFO comes from SIPp.)

use e2e::audio::{tone, write_wav};
use e2e::baresip::{Baresip, BaresipAccount, BaresipOptions};
use e2e::daemon::{sipp_pcap, CallerScenario, Daemon, Ending};
use e2e::process::test_dir;
use e2e::sipp::Sipp;
use std::time::Duration;

#[test]
fn sipp_rfc4733_and_info_digits_are_logged_with_the_call_id() {
    let dir = test_dir("daemon_dtmf_sipp");
    let daemon = Daemon::start(&dir, "preset = \"echo\"\n", &[]).unwrap();
    let mut scenario = CallerScenario::new(Ending::CallerHangsUp);
    scenario.pcaps = vec![sipp_pcap("dtmf_2833_1.pcap")];
    scenario.info_digits = "5#".into();
    scenario.hold_ms = 1000;
    let xml = scenario.write(&dir, "uac_dtmf").unwrap();
    let mut sipp =
        Sipp::new(xml.to_str().unwrap()).args(["-s", "echo"]).remote(daemon.addr()).spawn(&dir, "sipp").unwrap();
    sipp.expect_success(Duration::from_secs(20)).unwrap();
    daemon.wait_lines(&["call ended"], 1, Duration::from_secs(5)).unwrap();
    let id = daemon.lines_with(&["incoming call"])[0]
        .split("call{id=")
        .nth(1)
        .unwrap()
        .split('}')
        .next()
        .unwrap()
        .to_string();
    let rfc4733 = daemon.lines_with(&["dtmf", "via=rfc4733"]);
    assert_eq!(rfc4733.len(), 1, "one key press in the pcap: {rfc4733:?}\n{}", daemon.log());
    assert!(rfc4733[0].contains("digit=1") && rfc4733[0].contains(&format!("call{{id={id}}}")), "{}", rfc4733[0]);
    let info = daemon.lines_with(&["dtmf", "via=info", &format!("call{{id={id}}}")]);
    assert_eq!(info.len(), 2, "{info:?}");
    assert!(info[0].contains("digit=5") && info[1].contains("digit=#"), "{info:?}");
}

#[test]
fn baresip_rfc4733_keys_are_logged() {
    let dir = test_dir("daemon_dtmf_baresip");
    let daemon = Daemon::start(&dir, "preset = \"echo\"\n", &[]).unwrap();
    let wav = dir.join("tone.wav");
    write_wav(&wav, &tone(440.0, 6.0, 8000, 0.3)).unwrap();
    let b = Baresip::start(
        &dir,
        &BaresipOptions {
            accounts: vec![BaresipAccount::direct("sip:alice@127.0.0.1", "")],
            play: Some(wav),
            record: false,
            limit: Duration::from_secs(40),
        },
    )
    .unwrap();
    b.command("dial", &daemon.uri("echo")).unwrap();
    b.wait_event("call", "CALL_ESTABLISHED", Duration::from_secs(10)).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    for key in ["4", "2"] {
        b.command("sndcode", key).unwrap();
        std::thread::sleep(Duration::from_millis(400));
    }
    let lines = daemon.wait_lines(&["dtmf", "via=rfc4733"], 2, Duration::from_secs(5)).unwrap();
    assert!(lines[0].contains("digit=4") && lines[1].contains("digit=2"), "{lines:?}");
    assert!(lines.iter().all(|l| l.contains("call{id=")), "{lines:?}");
    b.command("hangup", "").unwrap();
    daemon.wait_lines(&["call ended"], 1, Duration::from_secs(5)).unwrap();
}
