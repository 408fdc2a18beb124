//! signaling's user agent against Kamailio as registrar: digest-authenticated
//! REGISTER over UDP, TCP and WebSocket, SHA-256 challenges, a wrong
//! password, unregistration.

use e2e::kamailio::{Kamailio, KamailioOptions};
use e2e::process::test_dir;
use signaling::{Account, Config, Listen, RegistrationEvent, Transport, UserAgent};
use std::time::Duration;

async fn ua() -> UserAgent {
    let any = "127.0.0.1:0".parse().unwrap();
    UserAgent::start(Config {
        listen: vec![
            Listen { transport: Transport::Udp, addr: any },
            Listen { transport: Transport::Tcp, addr: any },
            Listen { transport: Transport::Ws, addr: any },
        ],
        ..Config::default()
    })
    .await
    .unwrap()
}

async fn next(reg: &mut signaling::Registration) -> RegistrationEvent {
    tokio::time::timeout(Duration::from_secs(10), reg.next_event())
        .await
        .expect("registration event in time")
        .expect("event")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_over_udp_tcp_and_websocket_then_unregister() {
    let dir = test_dir("sip_kamailio_register");
    let k = Kamailio::start(
        &dir,
        &KamailioOptions::new("example.test", &[("alice", "a-pw"), ("bob", "b-pw"), ("carol", "c-pw")]),
    )
    .unwrap();
    let ua = ua().await;
    let mut regs = Vec::new();
    for (user, pw, t) in [("alice", "a-pw", "udp"), ("bob", "b-pw", "tcp"), ("carol", "c-pw", "ws")] {
        let mut acc = Account::new(k.aor(user), pw).with_proxy(k.proxy_uri(t));
        acc.expires = 120;
        regs.push((user, t, ua.register(acc).unwrap()));
    }
    for (user, t, reg) in regs.iter_mut() {
        let ev = next(reg).await;
        assert!(
            matches!(ev, RegistrationEvent::Registered { expires } if expires > 0 && expires <= 120),
            "{user} over {t}: {ev:?}\n{}",
            k.log()
        );
    }
    let log = k.log();
    for (user, t, reg) in regs.iter_mut() {
        reg.unregister().await.unwrap();
        assert_eq!(next(reg).await, RegistrationEvent::Unregistered, "{user} over {t}");
    }
    // Kamailio saw each transport (its REQ log line names the protocol).
    assert!(
        log.contains("REQ REGISTER") && log.contains("(udp)") && log.contains("(tcp)") && log.contains("(ws)"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sha256_challenge_in_rfc8760_spelling() {
    let dir = test_dir("sip_kamailio_sha256");
    let mut opts = KamailioOptions::new("example.test", &[("alice", "a-pw")]);
    opts.algorithm = "SHA-256".into();
    let k = Kamailio::start(&dir, &opts).unwrap();
    let ua = ua().await;
    let mut reg = ua.register(Account::new(k.aor("alice"), "a-pw").with_proxy(k.proxy_uri("udp"))).unwrap();
    let ev = next(&mut reg).await;
    assert!(matches!(ev, RegistrationEvent::Registered { .. }), "{ev:?}\n{}", k.log());
    // Our answer names the algorithm the RFC 8760 way and counts in hex.
    let log = k.log();
    assert!(log.contains("algorithm=SHA-256") && log.contains("nc=00000001"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_fails_with_401() {
    let dir = test_dir("sip_kamailio_wrong_pw");
    let k = Kamailio::start(&dir, &KamailioOptions::new("example.test", &[("alice", "right")])).unwrap();
    let ua = ua().await;
    let mut reg = ua.register(Account::new(k.aor("alice"), "wrong").with_proxy(k.proxy_uri("tcp"))).unwrap();
    let ev = next(&mut reg).await;
    assert!(matches!(ev, RegistrationEvent::RegistrationFailed { code: 401 | 403, .. }), "{ev:?}");
}

/// An INVITE whose credentials Kamailio refuses (it challenges again)
/// fails with the challenge's code instead of looping or timing out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invite_with_wrong_password_fails_with_407() {
    let dir = test_dir("sip_kamailio_invite_wrong_pw");
    let k =
        Kamailio::start(&dir, &KamailioOptions::new("example.test", &[("alice", "right"), ("bob", "b-pw")])).unwrap();
    let ua = ua().await;
    let alice = Account::new(k.aor("alice"), "wrong").with_proxy(k.proxy_uri("udp"));
    let sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 49170 RTP/AVP 0\r\n";
    let mut call = ua.invite(signaling::Caller::Account(alice), &k.aor("bob"), Some(sdp.into()), &[]).unwrap();
    let outcome = loop {
        let ev = tokio::time::timeout(Duration::from_secs(10), call.next_event())
            .await
            .expect("call event in time")
            .expect("event");
        if !matches!(ev, signaling::CallEvent::Trying) {
            break ev;
        }
    };
    assert!(matches!(outcome, signaling::CallEvent::Failed { code: 407 | 403, .. }), "{outcome:?}\n{}", k.log());
    // Both our answers reached Kamailio, then we stopped.
    let tries = k.log().matches("PROXY-AUTHZ Digest username=\"alice\"").count();
    assert!((1..=3).contains(&tries), "{tries} authenticated INVITEs");
}
