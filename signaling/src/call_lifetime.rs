//! Tests: a call's shared state is freed once the call is over, whichever
//! side hung up (a task kept alive past the call holds it, and a daemon
//! running for weeks grows by a call's state per call).

use crate::call::{Call, CallInner};
use crate::config::{Config, Listen, Transport};
use crate::events::CallEvent;
use crate::outbound::Caller;
use crate::ua::UserAgent;
use crate::ua_events::UaEvent;
use std::sync::{Arc, Weak};
use std::time::Duration;

const SDP: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n";

async fn ua() -> UserAgent {
    let listen = vec![Listen { transport: Transport::Udp, addr: "127.0.0.1:0".parse().unwrap() }];
    let config = Config { listen, t1: Duration::from_millis(100), ..Config::default() };
    assert!(config.session_timer.is_some(), "the session timer is what is tested");
    UserAgent::start(config).await.unwrap()
}

async fn until(call: &mut Call, wanted: impl Fn(&CallEvent) -> bool) {
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(5), call.next_event()).await.expect("event in time");
        if wanted(&ev.expect("an event")) {
            return;
        }
    }
}

/// An answered call between two agents over loopback, both sides' handles.
async fn answered_call(a: &UserAgent, b: &UserAgent) -> (Call, Call) {
    let mut incoming = b.take_events().unwrap();
    let port = b.local_addr(Transport::Udp).unwrap().port();
    let caller = Caller::Guest { uri: "sip:alice@127.0.0.1".into(), display_name: None };
    let mut out = a.invite(caller, &format!("sip:bob@127.0.0.1:{port}"), Some(SDP.into()), &[]).unwrap();
    let Some(UaEvent::IncomingCall(inc)) = tokio::time::timeout(Duration::from_secs(5), incoming.recv()).await.unwrap()
    else {
        panic!("no incoming call")
    };
    let mut inc = inc.call;
    inc.answer(SDP).unwrap();
    until(&mut out, |e| matches!(e, CallEvent::Answered { .. })).await;
    until(&mut inc, |e| matches!(e, CallEvent::Confirmed { .. })).await;
    (out, inc)
}

/// Drops the handles and waits until nothing holds either call's state.
async fn assert_released(calls: [Call; 2]) {
    let states: Vec<Weak<CallInner>> = calls.iter().map(|c| Arc::downgrade(&c.inner)).collect();
    drop(calls);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while states.iter().any(|s| s.strong_count() > 0) {
        assert!(tokio::time::Instant::now() < deadline, "a call's state outlives the call");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn call_state_is_freed_after_the_caller_hangs_up() {
    let (a, b) = (ua().await, ua().await);
    let (mut out, mut inc) = answered_call(&a, &b).await;
    out.bye().await.unwrap();
    until(&mut inc, |e| matches!(e, CallEvent::Ended { .. })).await;
    until(&mut out, |e| matches!(e, CallEvent::Ended { .. })).await;
    assert_released([out, inc]).await;
}

#[tokio::test]
async fn call_state_is_freed_after_the_callee_hangs_up() {
    let (a, b) = (ua().await, ua().await);
    let (mut out, mut inc) = answered_call(&a, &b).await;
    inc.bye().await.unwrap();
    until(&mut out, |e| matches!(e, CallEvent::Ended { .. })).await;
    until(&mut inc, |e| matches!(e, CallEvent::Ended { .. })).await;
    assert_released([out, inc]).await;
}
