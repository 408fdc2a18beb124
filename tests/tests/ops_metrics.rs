//! The daemon's admin listener and call records against real calls:
//! `/metrics` scraped during three calls (baresip and two SIPp callers) and
//! after them, checked against what the test did and by `promtool check
//! metrics`; `/readyz` at the call limit; one JSON record per call
//! (finished, refused 503 at the limit, failed 488); and draining
//! (POST /drain, SIGUSR1): no new calls, OPTIONS 503, running calls finish,
//! the rest get a BYE at the deadline, exit 0 (with `--log-format json`,
//! whose call lines carry the call-id span). And the gateway's record of
//! an outgoing call the callee declines (486).

use e2e::admin::{call_records, http, promtool_check, promtool_check_rules, sample};
use e2e::audio::{tone, write_wav};
use e2e::baresip::{Baresip, BaresipAccount, BaresipOptions};
use e2e::daemon::{sipp_pcap, CallerScenario, Daemon, Ending};
use e2e::gateway::Gateway;
use e2e::haproxy::WsClient;
use e2e::process::{free_tcp_port, test_dir};
use e2e::sipp::Sipp;
use serde_json::Value;
use std::time::{Duration, Instant};

/// The echo preset with the admin listener (`admin_settings` added to its
/// table) and call records in `calls.jsonl`; `extra` is more TOML.
fn config(admin: &str, admin_settings: &str, extra: &str) -> String {
    format!(
        "preset = \"echo\"\n[admin]\nlisten = \"{admin}\"\n{admin_settings}\n[call_records]\nfile = \"calls.jsonl\"\n{extra}"
    )
}

fn metrics(admin: &str) -> String {
    let (status, body) = http(admin, "GET", "/metrics").unwrap();
    assert_eq!(status, 200, "{body}");
    body
}

/// Waits until `/metrics` has `sample` at `value`.
fn wait_sample(admin: &str, name: &str, value: f64) -> String {
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let text = metrics(admin);
        if sample(&text, name) == Some(value) {
            return text;
        }
        assert!(Instant::now() < until, "{name} never became {value}:\n{text}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn options(daemon: &Daemon) -> String {
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let me = sock.local_addr().unwrap();
    let request = format!(
        "OPTIONS {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKops{n}\r\nMax-Forwards: 70\r\nFrom: <sip:probe@127.0.0.1>;tag=o1\r\nTo: <{uri}>\r\nCall-ID: ops{n}@{me}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
        uri = daemon.uri("echo"),
        n = me.port()
    );
    sock.send_to(request.as_bytes(), daemon.addr()).unwrap();
    let mut buf = [0u8; 4096];
    let (n, _) = sock.recv_from(&mut buf).expect("an answer to OPTIONS");
    String::from_utf8_lossy(&buf[..n]).lines().next().unwrap_or_default().to_string()
}

/// One SIPp call of `scenario` (a refusal) to the echo service, which must
/// go as the scenario expects.
fn refused_call(dir: &std::path::Path, daemon: &Daemon, scenario: CallerScenario, name: &str) {
    let xml = scenario.write(dir, &format!("uac_{name}")).unwrap();
    let mut sipp =
        Sipp::new(xml.to_str().unwrap()).args(["-s", "echo"]).remote(daemon.addr()).spawn(dir, name).unwrap();
    sipp.expect_success(Duration::from_secs(15)).unwrap();
}

#[test]
fn metrics_and_call_records_follow_three_real_calls() {
    let dir = test_dir("ops_metrics");
    let admin = format!("127.0.0.1:{}", free_tcp_port());
    let daemon = Daemon::start(&dir, &config(&admin, "", "[limits]\nmax_calls = 3\n"), &[]).unwrap();
    let idle = metrics(&admin);
    promtool_check(&idle).unwrap();
    promtool_check_rules(&e2e::process::workspace_root().join("examples/prometheus/sipbridge-alerts.yml")).unwrap();
    assert_eq!(sample(&idle, "sipbridge_calls_active"), Some(0.0), "{idle}");
    assert!(sample(&idle, "process_resident_memory_bytes").unwrap() > 1e6, "{idle}");
    assert!(sample(&idle, "process_threads").unwrap() >= 2.0, "{idle}");
    assert_eq!(http(&admin, "GET", "/readyz").unwrap().0, 200);

    // baresip plays an 8 s tone (400 packets of 20 ms; it hangs up at its
    // end); two SIPp callers play g711a.pcap (236 PCMA packets, 7 s) and
    // hang up after 8 s.
    let wav = dir.join("tone.wav");
    write_wav(&wav, &tone(440.0, 8.0, 8000, 0.3)).unwrap();
    let b = Baresip::start(
        &dir,
        &BaresipOptions {
            accounts: vec![BaresipAccount::unregistered("sip:alice@127.0.0.1")],
            play: Some(wav),
            record: false,
            limit: Duration::from_secs(60),
        },
    )
    .unwrap();
    b.command("dial", &daemon.uri("echo")).unwrap();
    let mut scenario = CallerScenario::new(Ending::CallerHangsUp);
    scenario.pcaps = vec![sipp_pcap("g711a.pcap")];
    scenario.hold_ms = 8000;
    let xml = scenario.write(&dir, "uac_pcap").unwrap();
    let mut two = Sipp::new(xml.to_str().unwrap())
        .args(["-s", "echo", "-m", "2", "-l", "2", "-r", "10"])
        .remote(daemon.addr())
        .limit(Duration::from_secs(40))
        .spawn(&dir, "sipp-2")
        .unwrap();
    daemon.wait_lines(&["answered"], 3, Duration::from_secs(20)).unwrap();

    let during = wait_sample(&admin, "sipbridge_calls_active", 3.0);
    promtool_check(&during).unwrap();
    assert_eq!(sample(&during, "sipbridge_legs_active{kind=\"rtp\",codec=\"pcma\"}"), Some(2.0), "{during}");
    assert_eq!(sample(&during, "sipbridge_legs_active{kind=\"rtp\",codec=\"pcmu\"}"), Some(1.0), "{during}");
    assert_eq!(sample(&during, "sipbridge_call_setup_seconds_count"), Some(3.0), "{during}");
    let (status, body) = http(&admin, "GET", "/readyz").unwrap();
    assert_eq!((status, body.as_str()), (503, "not ready: at the call limit (3)\n"));

    // A fourth call over the limit: 503.
    refused_call(&dir, &daemon, CallerScenario::new(Ending::Refused(503)), "503");

    two.expect_success(Duration::from_secs(30)).unwrap();
    b.wait_event("call", "CALL_CLOSED", Duration::from_secs(15)).unwrap();
    // Then a G.729-only offer: 488.
    let mut g729 = CallerScenario::new(Ending::Refused(488));
    g729.formats = "18";
    refused_call(&dir, &daemon, g729, "488");

    let after = wait_sample(&admin, "sipbridge_calls_active", 0.0);
    promtool_check(&after).unwrap();
    let finished = |class: &str| sample(&after, &format!("sipbridge_calls_finished_total{{code_class=\"{class}\"}}"));
    assert_eq!((finished("2xx"), finished("4xx"), finished("5xx")), (Some(3.0), Some(1.0), Some(1.0)), "{after}");
    assert_eq!(sample(&after, "sipbridge_legs_active{kind=\"rtp\",codec=\"pcma\"}"), Some(0.0), "{after}");
    let sip = |name: &str| sample(&after, name).unwrap_or(0.0);
    assert_eq!(sip("sipbridge_sip_requests_total{direction=\"in\",method=\"INVITE\"}"), 5.0, "{after}");
    assert_eq!(sip("sipbridge_sip_requests_total{direction=\"in\",method=\"BYE\"}"), 3.0, "{after}");
    // Messages on the wire: a final response retransmitted until its ACK
    // counts each time.
    assert!(sip("sipbridge_sip_responses_total{direction=\"out\",code=\"503\"}") >= 1.0, "{after}");
    assert!(sip("sipbridge_sip_responses_total{direction=\"out\",code=\"488\"}") >= 1.0, "{after}");
    assert!(sip("sipbridge_sip_responses_total{direction=\"out\",code=\"200\"}") >= 6.0, "{after}");
    assert!(sample(&after, "process_cpu_seconds_total").unwrap() > 0.0, "{after}");
    // RTP: what the three peers sent (2 x 236 + 400), and the echo of it.
    let sent_by_peers = 2.0 * 236.0 + 400.0;
    let rtp_in = sample(&after, "sipbridge_rtp_packets_total{direction=\"in\"}").unwrap();
    let rtp_out = sample(&after, "sipbridge_rtp_packets_total{direction=\"out\"}").unwrap();
    eprintln!("RTP packets in {rtp_in}, out {rtp_out}, sent by the peers {sent_by_peers}");
    assert!((rtp_in / sent_by_peers - 1.0).abs() <= 0.05, "{rtp_in} received of {sent_by_peers} sent:\n{after}");
    assert!((rtp_out / sent_by_peers - 1.0).abs() <= 0.05, "{rtp_out} echoed of {sent_by_peers} sent:\n{after}");
    let bytes_in = sample(&after, "sipbridge_rtp_bytes_total{direction=\"in\"}").unwrap();
    // G.711 at 20 and 30 ms: 172 and 252 bytes per packet.
    assert!((172.0..=252.0).contains(&(bytes_in / rtp_in)), "{bytes_in} bytes in {rtp_in} packets");

    let records = call_records(&dir.join("calls.jsonl"), 5);
    let answered: Vec<&Value> = records.iter().filter(|r| r["sip_code"] == 200).collect();
    assert_eq!(answered.len(), 3, "{records:#?}");
    for r in &answered {
        assert_eq!((r["direction"].as_str(), r["service"].as_str()), (Some("inbound"), Some("echo")), "{r}");
        assert!(r["answer"].is_string() && r["start"].as_str() <= r["answer"].as_str(), "{r}");
        let duration = r["duration_seconds"].as_f64().unwrap();
        assert!((5.0..12.0).contains(&duration), "{r}");
        assert!(r["setup_seconds"].as_f64().unwrap() < 2.0, "{r}");
        assert_eq!(r["ended_by"], "remote", "{r}");
        assert_eq!(r["legs"][0]["kind"], "rtp", "{r}");
        assert!(["PCMA", "PCMU"].contains(&r["legs"][0]["codec"].as_str().unwrap()), "{r}");
        assert!(r["from"].as_str().unwrap().starts_with("sip:"), "{r}");
        assert!(daemon.log().contains(r["call_id"].as_str().unwrap()), "{r}");
    }
    for (code, reason) in [(503, "limit"), (488, "codec")] {
        let r = records.iter().find(|r| r["sip_code"] == code).unwrap_or_else(|| panic!("no {code}: {records:#?}"));
        assert_eq!((r["answer"].clone(), r["duration_seconds"].as_f64()), (Value::Null, Some(0.0)), "{r}");
        assert_eq!(r["ended_by"], "local", "{r}");
        assert!(r["end_reason"].as_str().unwrap().contains(reason), "{r}");
        assert_eq!(r["legs"], serde_json::json!([]), "{r}");
    }
}

#[test]
fn drain_refuses_new_calls_lets_running_ones_finish_then_byes_the_rest_and_exits_0() {
    let dir = test_dir("ops_drain");
    let admin = format!("127.0.0.1:{}", free_tcp_port());
    let mut daemon = Daemon::start(&dir, &config(&admin, "drain_seconds = 6", ""), &["--log-format", "json"]).unwrap();
    assert!(options(&daemon).starts_with("SIP/2.0 200"));
    // One caller hangs up by itself 3 s into the drain; one would stay.
    let mut short = CallerScenario::new(Ending::CallerHangsUp);
    short.pcaps = vec![sipp_pcap("g711a.pcap")];
    short.hold_ms = 4000;
    let short = short.write(&dir, "uac_short").unwrap();
    let mut stays = CallerScenario::new(Ending::DaemonHangsUp);
    stays.pcaps = vec![sipp_pcap("g711a.pcap")];
    stays.hold_ms = 0;
    let stays = stays.write(&dir, "uac_stays").unwrap();
    let spawn = |xml: &std::path::Path, name: &str| {
        Sipp::new(xml.to_str().unwrap())
            .args(["-s", "echo"])
            .remote(daemon.addr())
            .limit(Duration::from_secs(40))
            .spawn(&dir, name)
            .unwrap()
    };
    let mut short = spawn(&short, "sipp-short");
    let mut stays = spawn(&stays, "sipp-stays");
    daemon.wait_lines(&["answered"], 2, Duration::from_secs(20)).unwrap();

    let drained_at = Instant::now();
    assert_eq!(http(&admin, "POST", "/drain").unwrap().0, 202);
    assert_eq!(http(&admin, "GET", "/readyz").unwrap(), (503, "not ready: draining\n".to_string()));
    assert_eq!(http(&admin, "GET", "/healthz").unwrap().0, 200);
    assert!(options(&daemon).starts_with("SIP/2.0 503"), "a proxy's OPTIONS probe must see 503 while draining");
    refused_call(&dir, &daemon, CallerScenario::new(Ending::Refused(503)), "refused");

    // The short call ends by itself; the other gets our BYE at the deadline.
    short.expect_success(Duration::from_secs(15)).unwrap();
    stays.expect_success(Duration::from_secs(20)).unwrap();
    let status = daemon.child.wait_timeout(Duration::from_secs(15)).unwrap().expect("the daemon exits after draining");
    assert!(status.success(), "exit status {status}");
    let took = drained_at.elapsed();
    assert!(took >= Duration::from_secs(5), "the deadline is 6 s; stopped after {took:?}");
    daemon.wait_lines(&["shutting down", "drain deadline"], 1, Duration::from_secs(1)).unwrap();
    assert_eq!(daemon.lines_with(&["call ended by us (BYE)"]).len(), 1, "{}", daemon.log());
    // JSON logs: every line an object; call lines carry the call-id span.
    let log = daemon.log();
    let lines: Vec<Value> =
        log.lines().filter(|l| l.starts_with('{')).map(|l| serde_json::from_str(l).unwrap()).collect();
    let answered: Vec<&Value> = lines.iter().filter(|l| l["fields"]["message"] == "answered").collect();
    assert_eq!(answered.len(), 2, "{log}");
    let records = call_records(&dir.join("calls.jsonl"), 3);
    for l in answered {
        assert_eq!(l["span"]["name"], "call", "{l}");
        assert!(records.iter().any(|r| r["call_id"] == l["span"]["id"]), "{l}");
    }
    let by = |who: &str| records.iter().filter(|r| r["ended_by"] == who && r["sip_code"] == 200).count();
    assert_eq!((by("remote"), by("local")), (1, 1), "{records:#?}");
}

#[test]
fn sigusr1_drains_an_idle_daemon_which_exits_0() {
    let dir = test_dir("ops_sigusr1");
    let admin = format!("127.0.0.1:{}", free_tcp_port());
    let mut daemon = Daemon::start(&dir, &config(&admin, "", ""), &[]).unwrap();
    daemon.child.signal(libc::SIGUSR1);
    let status = daemon.child.wait_timeout(Duration::from_secs(10)).unwrap().expect("exits once drained");
    assert!(status.success(), "exit status {status}");
    daemon.wait_lines(&["draining", "SIGUSR1"], 1, Duration::from_secs(1)).unwrap();
    daemon.wait_lines(&["shutting down", "drained"], 1, Duration::from_secs(1)).unwrap();
}

#[test]
fn a_gateway_call_declined_486_has_its_record() {
    let dir = test_dir("ops_declined");
    let admin = format!("127.0.0.1:{}", free_tcp_port());
    let records = dir.join("calls.jsonl");
    let set = format!("call_records.file={:?}", records.to_string_lossy());
    let gw = Gateway::start(&dir, None, &["--admin-listen", &admin, "--set", &set]).unwrap();
    let mut busy = Sipp::new("uas_busy.xml").spawn(&dir, "sipp-busy").unwrap();
    let mut ws = WsClient::connect(&format!("127.0.0.1:{}", gw.ws_port), "/ws").unwrap();
    ws.read_until(|t| t.contains("\"ready\"")).unwrap();
    ws.send_text(
        r#"{"jsonrpc":"2.0","id":1,"method":"sip.register","params":{"username":"sip:web@127.0.0.1","guest":true}}"#,
    )
    .unwrap();
    ws.read_until(|t| t.contains("\"id\":1")).unwrap();
    let uri = format!("sip:busy@{}", busy.addr());
    let call = format!(r#"{{"jsonrpc":"2.0","id":2,"method":"sip.call","params":{{"uri":"{uri}"}}}}"#);
    ws.send_text(&call).unwrap();
    let hangup = ws.read_until(|t| t.contains("\"hangup\"")).unwrap();
    assert!(hangup.contains("486"), "{hangup}");
    busy.expect_success(Duration::from_secs(10)).unwrap();

    let text = std::fs::read_to_string(&records).unwrap();
    let r: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!((r["direction"].as_str(), r["service"].as_str()), (Some("outbound"), Some("gateway")), "{r}");
    assert_eq!((r["from"].as_str(), r["to"].as_str()), (Some("sip:web@127.0.0.1"), Some(uri.as_str())), "{r}");
    assert_eq!((r["sip_code"].as_u64(), r["ended_by"].as_str()), (Some(486), Some("remote")), "{r}");
    assert_eq!((r["answer"].clone(), r["duration_seconds"].as_f64()), (Value::Null, Some(0.0)), "{r}");
    assert_eq!(r["legs"], serde_json::json!([{"kind": "rtp", "codec": null}]), "{r}");
    let m = metrics(&admin);
    assert_eq!(sample(&m, "sipbridge_calls_finished_total{code_class=\"4xx\"}"), Some(1.0), "{m}");
    assert_eq!(sample(&m, "sipbridge_ws_connections"), Some(1.0), "{m}");
    assert_eq!(sample(&m, "sipbridge_sip_requests_total{direction=\"out\",method=\"INVITE\"}"), Some(1.0), "{m}");
}
