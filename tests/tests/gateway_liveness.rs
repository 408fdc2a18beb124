//! Silent WebSocket clients cannot lock others out of the gateway: the
//! per-address limit keeps one address from taking every slot, the idle
//! timeout closes connections that never register or call, and pings close
//! a client that stops answering. Timeouts are set small for the test.

use e2e::gateway::Gateway;
use e2e::process::test_dir;
use e2e::ws_client::{Frame, WsClient};
use serde_json::json;
use std::net::IpAddr;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const IDLE: Duration = Duration::from_secs(3);
const PING: Duration = Duration::from_secs(1);
const PONG: Duration = Duration::from_secs(1);

fn ip(last: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, last])
}

/// `n` upgrade attempts from `from` that then send nothing (but answer
/// pings, as a WebSocket library would): the connected ones wait in threads
/// for the gateway to close them and return (close frame, seconds after
/// the upgrade); the statuses of the refused ones are returned too.
type Silent = JoinHandle<(Option<(Option<u16>, String)>, f64)>;

fn silent(port: u16, from: IpAddr, n: usize) -> (Vec<Silent>, Vec<String>) {
    let (mut connected, mut refused) = (Vec::new(), Vec::new());
    for _ in 0..n {
        let h = WsClient::handshake(port, Some(from), "/ws", &[]).unwrap();
        match h.client {
            Some(mut c) => connected.push(std::thread::spawn(move || {
                let since = Instant::now();
                let (close, at) = c.wait_closed(Duration::from_secs(30)).unwrap();
                (close, at.duration_since(since).as_secs_f64())
            })),
            None => refused.push(h.status),
        }
    }
    (connected, refused)
}

/// A client that registers as a guest: the gateway serves it.
fn served_client(port: u16, from: IpAddr) -> WsClient {
    let mut c = WsClient::connect(port, Some(from), "/ws").unwrap();
    let ready = c.wait_message(Duration::from_secs(5), |m| m["method"] == "ready").unwrap();
    assert_eq!(ready["params"]["gateway"], true, "{ready}");
    let r = c.request(1, "sip.register", json!({ "username": "sip:web@127.0.0.1", "guest": true })).unwrap();
    assert_eq!(r["result"]["guest"], true, "{r}");
    let r = c.request(2, "protocol.version", json!({})).unwrap();
    assert_eq!(r["result"]["protocol"], 1, "{r}");
    c
}

fn assert_idle_closed(threads: Vec<Silent>) {
    for t in threads {
        let (close, after) = t.join().unwrap();
        let (code, reason) = close.expect("a close frame, not a bare TCP close");
        assert_eq!(code, Some(1008), "policy close: {reason}");
        assert!(reason.contains("idle"), "{reason}");
        let idle = IDLE.as_secs_f64();
        assert!(after >= idle - 0.2 && after < idle + 2.0, "closed {after:.2} s after the upgrade");
    }
}

#[test]
fn silent_connections_cannot_lock_others_out() {
    let dir = test_dir("gateway_liveness");
    let gw = Gateway::start(
        &dir,
        None,
        &[
            "--max-connections",
            "8",
            "--max-connections-per-address",
            "4",
            "--ws-idle-timeout",
            &IDLE.as_secs_f64().to_string(),
            "--ws-ping-interval",
            &PING.as_secs_f64().to_string(),
            "--ws-pong-timeout",
            &PONG.as_secs_f64().to_string(),
        ],
    )
    .unwrap();
    let port = gw.ws_port;

    // Eight silent connections from one address: four get in, four are
    // refused; a client from elsewhere is served while they are connected.
    let (first, refused) = silent(port, ip(2), 8);
    assert_eq!(first.len(), 4);
    assert!(refused.iter().all(|s| s.contains("429")), "{refused:?}");
    let mut client = served_client(port, ip(1));

    // The silent ones are closed at the idle timeout; the served client,
    // which answers pings, is not (it has registered).
    let frames = pump(&mut client, IDLE + Duration::from_secs(1));
    assert_idle_closed(first);
    assert!(frames.iter().any(|f| matches!(f, Frame::Ping(_))), "the gateway pings: {frames:?}");
    let r = client.request(3, "protocol.version", json!({})).unwrap();
    assert_eq!(r["result"]["protocol"], 1, "still served after the idle timeout: {r}");

    // A client that stops answering (no pong) is closed after a ping.
    client.answer_pings = false;
    let stopped = Instant::now();
    std::thread::sleep(PING + PONG + Duration::from_millis(500));
    let (close, at) = client.wait_closed(Duration::from_secs(5)).unwrap();
    let (code, reason) = close.expect("a close frame");
    assert_eq!(code, Some(1008), "{reason}");
    assert!(reason.contains("ping"), "{reason}");
    let after = at.duration_since(stopped);
    assert!(after < PING + PONG + Duration::from_secs(2), "closed {after:?} after the last pong");

    // Eight silent connections from two addresses take every slot: the
    // next client is refused, then served once the idle timeout has
    // closed them.
    let (mut full, refused) = silent(port, ip(3), 4);
    let (more, refused_more) = silent(port, ip(4), 4);
    full.extend(more);
    assert!(refused.is_empty() && refused_more.is_empty(), "{refused:?} {refused_more:?}");
    let h = WsClient::handshake(port, Some(ip(5)), "/ws", &[]).unwrap();
    assert!(h.status.contains("503"), "over --max-connections: {}", h.status);
    assert_idle_closed(full);
    let _served = served_client(port, ip(5));

    let log = gw.log();
    assert!(log.contains("too many connections from one address"), "the refusals are logged");
    assert!(log.contains("disconnected by the gateway"), "the closes are logged");
}

/// Reads (answering pings) for `period`; returns what came.
fn pump(client: &mut WsClient, period: Duration) -> Vec<Frame> {
    let until = Instant::now() + period;
    let mut frames = Vec::new();
    while Instant::now() < until {
        if let Ok(Some(f)) = client.read_frame(until.saturating_duration_since(Instant::now())) {
            frames.push(f);
        }
    }
    frames
}
