//! RFC 3263 server location against a DNS server run by the test (dnsmasq,
//! inside the test's network namespace): the registrar of `example.test`
//! is found through NAPTR -> SRV -> A; the first SRV target is down, so the
//! REGISTER must fail over to the second, a SIPp registrar.

use e2e::process::{free_udp_port, spawn, test_dir};
use e2e::sipp::Sipp;
use signaling::{Account, Config, Listen, RegistrationEvent, Transport, UserAgent};
use std::process::Command;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registrar_found_by_naptr_and_srv_fails_over_to_the_second_target() {
    let dir = test_dir("sip_dns_srv_failover");
    let registrar = Sipp::new("uas_registrar.xml").spawn(&dir, "registrar").unwrap();
    let dead_port = free_udp_port();
    // dnsmasq answers on 127.0.0.1:53 (port 53: the resolver has no port
    // setting; the test's namespace makes it ours).
    let _dns = spawn(
        Command::new("dnsmasq").args([
            "--keep-in-foreground",
            "--no-resolv",
            "--no-hosts",
            "--bind-interfaces",
            "--listen-address=127.0.0.1",
            "--port=53",
            "--log-queries",
            "--log-facility=-",
            "--naptr-record=example.test,10,10,s,SIP+D2U,,_sip._udp.example.test",
            &format!("--srv-host=_sip._udp.example.test,dead.example.test,{dead_port},10,10"),
            &format!("--srv-host=_sip._udp.example.test,live.example.test,{},20,10", registrar.port),
            "--host-record=dead.example.test,127.0.0.2",
            "--host-record=live.example.test,127.0.0.1",
        ]),
        &dir,
        "dnsmasq",
        Duration::from_secs(60),
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let ua = UserAgent::start(Config {
        listen: vec![Listen { transport: Transport::Udp, addr: "127.0.0.1:0".parse().unwrap() }],
        dns_servers: vec!["127.0.0.1".parse().unwrap()],
        // The dead target's REGISTER times out after 64*T1 = 3.2 s.
        t1: Duration::from_millis(50),
        ..Config::default()
    })
    .await
    .unwrap();
    // No proxy: the AOR's domain is looked up (RFC 3263 §4: no port, no
    // transport -> NAPTR).
    let mut reg = ua.register(Account::new("sip:alice@example.test", "a-pw")).unwrap();
    let ev = tokio::time::timeout(Duration::from_secs(20), reg.next_event()).await.expect("registered in time");
    let mut registrar = registrar;
    assert!(matches!(ev, Some(RegistrationEvent::Registered { .. })), "{ev:?}\n{}", registrar.traces());
    registrar.expect_success(Duration::from_secs(10)).unwrap();
    let log = std::fs::read_to_string(dir.join("dnsmasq.log")).unwrap_or_default();
    assert!(log.contains("NAPTR") && log.contains("_sip._udp.example.test"), "DNS queries:\n{log}");
}
