//! The daemon registered at Kamailio with digest auth (password from the
//! environment, never logged) receives a call routed through Kamailio from
//! baresip, echoes it, and unregisters at shutdown; `/metrics` counts the
//! account as registered (or failed, with a wrong password).

use e2e::admin::{http, sample};
use e2e::audio::{tone, write_wav};
use e2e::baresip::{Baresip, BaresipOptions};
use e2e::daemon::Daemon;
use e2e::kamailio::{Kamailio, KamailioOptions};
use e2e::process::{free_tcp_port, test_dir};
use std::time::Duration;

#[test]
fn registered_daemon_answers_a_call_routed_by_kamailio() {
    let dir = test_dir("daemon_kamailio");
    let k =
        Kamailio::start(&dir, &KamailioOptions::new("example.test", &[("echo", "s3cret-echo-pw"), ("bob", "b-pw")]))
            .unwrap();
    let admin = format!("127.0.0.1:{}", free_tcp_port());
    let config = format!(
        "preset = \"echo\"\n[admin]\nlisten = \"{admin}\"\n\n[[account]]\naor = \"{}\"\nproxy = \"{}\"\npassword_env = \"ECHO_SIP_PASSWORD\"\nexpires = 300\n",
        k.aor("echo"),
        k.proxy_uri("udp")
    );
    let mut daemon =
        Daemon::start_named(&dir, "sipbridge", &config, &[], &[("ECHO_SIP_PASSWORD", "s3cret-echo-pw")]).unwrap();
    daemon.wait_lines(&["account{aor=sip:echo@example.test}", "registered"], 1, Duration::from_secs(10)).unwrap();
    assert!(k.log().contains("AUTHZ Digest username=\"echo\""), "no digest REGISTER:\n{}", k.log());
    let metrics = http(&admin, "GET", "/metrics").unwrap().1;
    assert_eq!(sample(&metrics, "sipbridge_registrations{state=\"registered\"}"), Some(1.0), "{metrics}");

    let wav = dir.join("tone.wav");
    write_wav(&wav, &tone(600.0, 4.0, 8000, 0.3)).unwrap();
    let bob = Baresip::start(
        &dir,
        &BaresipOptions {
            accounts: vec![k.baresip_account("bob", "b-pw", false)],
            play: Some(wav),
            record: true,
            limit: Duration::from_secs(60),
        },
    )
    .unwrap();
    bob.wait_registered(1, Duration::from_secs(10)).unwrap();
    bob.command("dial", &k.aor("echo")).unwrap();
    bob.wait_event("call", "CALL_ESTABLISHED", Duration::from_secs(10)).unwrap();
    bob.wait_event("call", "CALL_CLOSED", Duration::from_secs(15)).unwrap();
    daemon.wait_lines(&["incoming call", "from=sip:bob@example.test"], 1, Duration::from_secs(1)).unwrap();

    let pcm = bob.heard().unwrap();
    let tail = pcm.slice(1.0, pcm.seconds() - 0.3);
    assert!(
        tail.tone_share(600.0) > 0.8,
        "bob should hear his 600 Hz back through Kamailio: share {}, rms {}",
        tail.tone_share(600.0),
        tail.rms()
    );

    let status = daemon.terminate(Duration::from_secs(15)).unwrap();
    assert!(status.success(), "{status}");
    daemon.wait_lines(&["account{aor=sip:echo@example.test}", "unregistered"], 1, Duration::from_secs(1)).unwrap();
    assert!(!daemon.log().contains("s3cret-echo-pw"), "the password reached the log");
}

#[test]
fn a_wrong_password_is_logged_as_a_failed_registration() {
    let dir = test_dir("daemon_kamailio_wrong_pw");
    let k = Kamailio::start(&dir, &KamailioOptions::new("example.test", &[("echo", "right-pw")])).unwrap();
    let admin = format!("127.0.0.1:{}", free_tcp_port());
    let config = format!(
        "preset = \"echo\"\n[admin]\nlisten = \"{admin}\"\n\n[[account]]\naor = \"{}\"\nproxy = \"{}\"\npassword = \"wrong-pw-xyz\"\n",
        k.aor("echo"),
        k.proxy_uri("udp")
    );
    let mut daemon = Daemon::start(&dir, &config, &[]).unwrap();
    let failed = daemon
        .wait_lines(&["account{aor=sip:echo@example.test}", "registration failed"], 1, Duration::from_secs(10))
        .unwrap();
    assert!(failed[0].contains("code=403") || failed[0].contains("code=401"), "{failed:?}");
    let metrics = http(&admin, "GET", "/metrics").unwrap().1;
    assert_eq!(sample(&metrics, "sipbridge_registrations{state=\"failed\"}"), Some(1.0), "{metrics}");
    assert_eq!(sample(&metrics, "sipbridge_registrations{state=\"registered\"}"), Some(0.0), "{metrics}");
    // The daemon keeps serving direct calls; it stops cleanly.
    assert!(daemon.terminate(Duration::from_secs(10)).unwrap().success());
    assert!(!daemon.log().contains("wrong-pw-xyz"), "the password reached the log");
}
