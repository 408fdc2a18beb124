//! Scale-out behind Kamailio's dispatcher (`examples/kamailio/dispatcher.cfg`)
//! with three echo daemons in one namespace: 30 SIPp calls spread over all
//! three; one daemon SIGKILLed mid-call, new calls still succeed on the
//! other two; one drained (POST /drain), it takes no new calls while its
//! call finishes with audio, then exits 0.

use e2e::admin::http;
use e2e::daemon::{count_rtp, sipp_pcap, CallerScenario, Daemon, Ending};
use e2e::dispatcher::Dispatcher;
use e2e::process::{free_tcp_port, free_udp_port, test_dir};
use e2e::sipp::{Sipp, SippRun};
use std::path::Path;
use std::time::Duration;

struct Bridge {
    daemon: Daemon,
    admin: String,
}

impl Bridge {
    fn answered(&self) -> usize {
        self.daemon.lines_with(&["answered"]).len()
    }
}

fn start_bridge(dir: &Path, name: &str) -> Bridge {
    let admin = format!("127.0.0.1:{}", free_tcp_port());
    let config = format!("preset = \"echo\"\n[admin]\nlisten = \"{admin}\"\ndrain_seconds = 60\n");
    let daemon = Daemon::start_named(dir, name, &config, &[], &[]).unwrap();
    Bridge { daemon, admin }
}

/// `calls` SIPp calls through the dispatcher at 10 per second, each held
/// `hold_ms` with PCMA audio (to `rtp_port` when given), hung up by SIPp.
fn calls(dir: &Path, via: &Dispatcher, name: &str, calls: usize, hold_ms: u64, rtp_port: Option<u16>) -> SippRun {
    let mut scenario = CallerScenario::new(Ending::CallerHangsUp);
    scenario.pcaps = vec![sipp_pcap("g711a.pcap")];
    scenario.hold_ms = hold_ms;
    scenario.sdp_port = rtp_port;
    let xml = scenario.write(dir, name).unwrap();
    let n = calls.to_string();
    Sipp::new(xml.to_str().unwrap())
        .args(["-s", "echo", "-m", &n, "-l", &n, "-r", "10"])
        .remote(via.addr())
        .limit(Duration::from_secs(60))
        .spawn(dir, name)
        .unwrap()
}

#[test]
fn dispatcher_spreads_calls_skips_a_killed_daemon_and_a_draining_one() {
    let dir = test_dir("ops_dispatcher");
    let mut bridges: Vec<Bridge> = ["a", "b", "c"].iter().map(|n| start_bridge(&dir, n)).collect();
    let addrs: Vec<String> = bridges.iter().map(|b| b.daemon.addr()).collect();
    let dispatcher = Dispatcher::start(&dir, &addrs, 1).unwrap();

    // 30 calls spread over all three.
    calls(&dir, &dispatcher, "thirty", 30, 1500, None).expect_success(Duration::from_secs(40)).unwrap();
    let spread: Vec<usize> = bridges.iter().map(Bridge::answered).collect();
    assert_eq!(spread.iter().sum::<usize>(), 30, "{spread:?}");
    assert!(spread.iter().all(|n| *n >= 5), "calls not spread over the three daemons: {spread:?}");

    // Three long calls, one on each; daemon a is killed in the middle of
    // them. Calls placed after that succeed on b and c.
    let mut long = calls(&dir, &dispatcher, "long", 3, 6000, None);
    let total = |bridges: &[Bridge]| bridges.iter().map(Bridge::answered).sum::<usize>();
    wait_until(|| total(&bridges) == 33);
    let on_a = bridges[0].answered() - spread[0];
    assert!(on_a >= 1, "no long call landed on daemon a");
    bridges[0].daemon.child.signal(libc::SIGKILL);
    calls(&dir, &dispatcher, "after_kill", 10, 500, None).expect_success(Duration::from_secs(40)).unwrap();
    let after_kill: Vec<usize> = bridges.iter().map(Bridge::answered).collect();
    assert_eq!(after_kill[1] + after_kill[2] - spread[1] - spread[2], 3 - on_a + 10, "{spread:?} -> {after_kill:?}");
    assert!(long.expect_success(Duration::from_secs(20)).is_err(), "the call on the killed daemon cannot end well");

    // One call on each of b and c, with their echo counted on sockets of
    // ours; then b is drained: it takes no new calls, its call goes on.
    let sockets: Vec<std::net::UdpSocket> =
        (0..2).map(|_| std::net::UdpSocket::bind(("127.0.0.1", free_udp_port())).unwrap()).collect();
    let mut held: Vec<SippRun> = sockets
        .iter()
        .enumerate()
        .map(|(i, s)| calls(&dir, &dispatcher, &format!("held{i}"), 1, 7000, Some(s.local_addr().unwrap().port())))
        .collect();
    let echoes: Vec<_> = sockets
        .into_iter()
        .map(|sock| std::thread::spawn(move || count_rtp(&sock, Duration::from_secs(2), Duration::from_secs(20)).0))
        .collect();
    wait_until(|| bridges[1].answered() + bridges[2].answered() == after_kill[1] + after_kill[2] + 2);
    let b_before = bridges[1].answered();
    assert_eq!(b_before, after_kill[1] + 1, "round robin puts one held call on each of b and c");
    assert_eq!(http(&bridges[1].admin, "POST", "/drain").unwrap().0, 202);
    calls(&dir, &dispatcher, "while_draining", 10, 500, None).expect_success(Duration::from_secs(40)).unwrap();
    assert_eq!(bridges[1].answered(), b_before, "the draining daemon took a new call");
    for (echo, run) in echoes.into_iter().zip(held.iter_mut()) {
        run.expect_success(Duration::from_secs(15)).unwrap();
        // g711a.pcap: 236 packets of 30 ms; the call lasts 7 s of it.
        let packets = echo.join().unwrap();
        assert!(packets >= 200, "a held call heard only {packets} echoed packets");
    }
    let status = bridges[1].daemon.child.wait_timeout(Duration::from_secs(15)).unwrap();
    assert!(status.is_some_and(|s| s.success()), "the drained daemon must exit 0: {status:?}");
    bridges[1].daemon.wait_lines(&["shutting down", "drained"], 1, Duration::from_secs(1)).unwrap();
    eprintln!("spread {spread:?}, after the kill {after_kill:?}");
    drop(dispatcher);
}

fn wait_until(done: impl Fn() -> bool) {
    let until = std::time::Instant::now() + Duration::from_secs(15);
    while !done() {
        assert!(std::time::Instant::now() < until, "timed out");
        std::thread::sleep(Duration::from_millis(100));
    }
}
