//! Call quality against real calls, in network namespaces
//! (tests/src/netns.rs): two baresip phones on hosts of their own call the
//! echo preset at once; the router drops 5 % of one phone's packets
//! (iptables' `statistic` match). The lossy call's record shows that loss
//! and a lower MOS than the clean one, and `/metrics` has both legs in its
//! quality histograms.

use e2e::admin::{call_records, http, promtool_check, sample};
use e2e::audio::{tone, write_wav};
use e2e::baresip::{Baresip, BaresipAccount, BaresipOptions};
use e2e::daemon::Daemon;
use e2e::netns::{enable_forwarding, lossy_from, Host};
use e2e::process::{free_tcp_port, test_dir};
use serde_json::Value;
use std::time::Duration;

#[test]
fn a_lossy_call_shows_its_loss_and_a_lower_mos_than_a_clean_one() {
    let dir = test_dir("ops_quality");
    let limit = Duration::from_secs(90);
    let clean_host = Host::new(&dir, "clean", [192, 0, 2, 10].into(), limit).unwrap();
    let lossy_host = Host::new(&dir, "lossy", [203, 0, 113, 10].into(), limit).unwrap();
    let server = Host::new(&dir, "server", [198, 51, 100, 10].into(), limit).unwrap();
    enable_forwarding().unwrap();
    let admin = format!("198.51.100.10:{}", free_tcp_port());
    let config = format!("preset = \"echo\"\n[admin]\nlisten = \"{admin}\"\n[call_records]\nfile = \"calls.jsonl\"\n");
    let daemon = Daemon::start_on(&dir, &server, &config, &[]).unwrap();
    lossy_from(&lossy_host, 0.05, daemon.sip_port).unwrap();

    // 20 s of tone each (1000 packets of 20 ms); baresip hangs up at its end.
    let wav = dir.join("tone.wav");
    write_wav(&wav, &tone(440.0, 20.0, 8000, 0.3)).unwrap();
    let phone = |host: &Host, user: &str| {
        let account = BaresipAccount::direct(&format!("sip:{user}@{}", host.addr), "");
        let options = BaresipOptions { accounts: vec![account], play: Some(wav.clone()), record: false, limit };
        let phone = Baresip::start_on(&dir.join(user), &options, host).unwrap();
        phone.command("dial", &daemon.uri("echo")).unwrap();
        phone
    };
    let (clean, lossy) = (phone(&clean_host, "clean"), phone(&lossy_host, "lossy"));
    for p in [&clean, &lossy] {
        p.wait_event("call", "CALL_ESTABLISHED", Duration::from_secs(10)).unwrap();
    }
    for p in [&clean, &lossy] {
        p.wait_event("call", "CALL_CLOSED", Duration::from_secs(40)).unwrap();
    }

    let records = call_records(&dir.join("calls.jsonl"), 2);
    let quality = |user: &str| {
        let r = records
            .iter()
            .find(|r| r["from"].as_str().is_some_and(|f| f.contains(user)))
            .unwrap_or_else(|| panic!("no record of {user}: {records:#?}"));
        eprintln!("{user}: {}", r["legs"][0]["quality"]);
        r["legs"][0]["quality"].clone()
    };
    let (clean, lossy) = (quality("clean"), quality("lossy"));
    let figure = |q: &Value, name: &str| q[name].as_f64().unwrap_or_else(|| panic!("no {name}: {q}"));
    assert!(figure(&clean, "packets_received") > 900.0, "{clean}");
    assert!(figure(&clean, "loss_percent") < 0.5, "{clean}");
    assert!((3.0..7.5).contains(&figure(&lossy, "loss_percent")), "5 % dropped: {lossy}");
    let lost = figure(&lossy, "packets_lost") / (figure(&lossy, "packets_lost") + figure(&lossy, "packets_received"));
    assert!((lost * 100.0 - figure(&lossy, "loss_percent")).abs() < 0.01, "{lossy}");
    assert!(figure(&clean, "jitter_ms") < 20.0, "{clean}");
    let (clean_mos, lossy_mos) = (figure(&clean, "mos"), figure(&lossy, "mos"));
    assert!(clean_mos > 4.2, "{clean}");
    assert!((3.4..4.1).contains(&lossy_mos) && lossy_mos < clean_mos - 0.2, "{lossy} vs {clean}");

    let (status, text) = http(&admin, "GET", "/metrics").unwrap();
    assert_eq!(status, 200, "{text}");
    promtool_check(&text).unwrap();
    assert_eq!(sample(&text, "sipbridge_leg_mos_count"), Some(2.0), "{text}");
    assert_eq!(sample(&text, "sipbridge_leg_mos_bucket{le=\"4.2\"}"), Some(1.0), "the lossy leg only:\n{text}");
    assert_eq!(sample(&text, "sipbridge_leg_loss_ratio_bucket{le=\"0.01\"}"), Some(1.0), "the clean leg only:\n{text}");
    assert_eq!(sample(&text, "sipbridge_leg_jitter_seconds_count"), Some(2.0), "{text}");
}
