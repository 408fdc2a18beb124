//! Three gateways behind HAProxy (`examples/haproxy/haproxy.cfg`), health
//! checked on /readyz: web users' WebSocket connections land on each
//! gateway; a drained gateway gets no new connections while its user stays
//! connected, and exits 0 once that user leaves.

use e2e::admin::{http, sample};
use e2e::gateway::Gateway;
use e2e::haproxy::{Haproxy, WsClient};
use e2e::process::{free_tcp_port, test_dir};
use std::time::{Duration, Instant};

fn connections(admin: &str) -> f64 {
    let (_, body) = http(admin, "GET", "/metrics").unwrap();
    sample(&body, "sipbridge_ws_connections").unwrap_or_else(|| panic!("no sipbridge_ws_connections:\n{body}"))
}

fn wait_until(what: &str, done: impl Fn() -> bool) {
    let until = Instant::now() + Duration::from_secs(15);
    while !done() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A web user through HAProxy: the gateway's `ready` notification read.
fn user(haproxy: &Haproxy) -> WsClient {
    let mut ws = WsClient::connect(&haproxy.addr(), "/ws").unwrap();
    let ready = ws.read_text().unwrap();
    assert!(ready.contains("\"method\":\"ready\""), "{ready}");
    ws
}

#[test]
fn websocket_users_spread_over_gateways_and_a_drained_one_gets_none() {
    let dir = test_dir("ops_haproxy");
    let gateways: Vec<(Gateway, String)> = (1..=3)
        .map(|i| {
            let sub = dir.join(format!("gw{i}"));
            std::fs::create_dir_all(&sub).unwrap();
            let admin = format!("127.0.0.1:{}", free_tcp_port());
            let gw =
                Gateway::start(&sub, None, &["--admin-listen", &admin, "--set", "admin.drain_seconds=60"]).unwrap();
            (gw, admin)
        })
        .collect();
    let haproxy = Haproxy::start(
        &dir,
        &gateways.iter().map(|(g, a)| (g.ws_port, a.rsplit(':').next().unwrap().parse().unwrap())).collect::<Vec<_>>(),
    )
    .unwrap();
    // Servers are up after two good checks.
    wait_until("haproxy to serve", || WsClient::connect(&haproxy.addr(), "/ws").is_ok());
    std::thread::sleep(Duration::from_secs(3));
    wait_until("probe connections to close", || gateways.iter().all(|(_, a)| connections(a) == 0.0));

    // Three users: one on each gateway (least connections).
    let mut users: Vec<WsClient> = (0..3).map(|_| user(&haproxy)).collect();
    wait_until("one user per gateway", || gateways.iter().all(|(_, a)| connections(a) == 1.0));

    // Gateway 2 drains: HAProxy's next check sees 503 and takes it out.
    let (_, admin2) = &gateways[1];
    assert_eq!(http(admin2, "POST", "/drain").unwrap().0, 202);
    assert_eq!(http(admin2, "GET", "/readyz").unwrap().0, 503);
    std::thread::sleep(Duration::from_secs(3));
    users.extend((0..4).map(|_| user(&haproxy)));
    wait_until("the new users on gateways 1 and 3", || {
        connections(&gateways[0].1) + connections(&gateways[2].1) == 6.0
    });
    assert_eq!(connections(admin2), 1.0, "the drained gateway got a new user");

    // The users leave: the drained gateway stops, exit status 0.
    drop(users);
    let mut gw2 = gateways.into_iter().nth(1).unwrap().0;
    let status = gw2.child.wait_timeout(Duration::from_secs(10)).unwrap();
    assert!(status.is_some_and(|s| s.success()), "drained gateway: {status:?}\n{}", gw2.log());
    assert!(gw2.log().contains("shutting down signal=\"drained\""), "{}", gw2.log());
    drop(haproxy);
}
