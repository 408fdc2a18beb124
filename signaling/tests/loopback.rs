//! Two user agents of this crate talking to each other over loopback UDP
//! and TCP: the whole call API without third-party peers (those are in the
//! e2e crate).

use signaling::{Call, CallEvent, Caller, Config, Listen, OfferKind, Party, Transport, UaEvent, UserAgent};
use std::time::Duration;

const SDP: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n";

async fn ua() -> UserAgent {
    UserAgent::start(Config {
        listen: vec![
            Listen { transport: Transport::Udp, addr: "127.0.0.1:0".parse().unwrap() },
            Listen { transport: Transport::Tcp, addr: "127.0.0.1:0".parse().unwrap() },
        ],
        t1: Duration::from_millis(100),
        ..Config::default()
    })
    .await
    .unwrap()
}

async fn next(call: &mut Call) -> CallEvent {
    tokio::time::timeout(Duration::from_secs(5), call.next_event()).await.expect("call event in time").expect("event")
}

async fn until(call: &mut Call, pred: impl Fn(&CallEvent) -> bool) -> CallEvent {
    loop {
        let ev = next(call).await;
        if pred(&ev) {
            return ev;
        }
    }
}

async fn call_flow(transport: Transport) {
    let a = ua().await;
    let b = ua().await;
    let mut b_events = b.take_events().unwrap();
    let port = b.local_addr(transport).unwrap().port();
    let target = format!("sip:bob@127.0.0.1:{port};transport={}", transport.param());
    let mut out = a
        .invite(Caller::Guest { uri: "sip:alice@127.0.0.1".into(), display_name: Some("Alice".into()) }, &target, Some(SDP.into()), &[("X-Test".into(), "1".into())])
        .unwrap();
    let Some(UaEvent::IncomingCall(inc)) = tokio::time::timeout(Duration::from_secs(5), b_events.recv()).await.unwrap() else {
        panic!("no incoming call")
    };
    assert_eq!(inc.display_name.as_deref(), Some("Alice"));
    assert_eq!(inc.sdp_offer.as_deref(), Some(SDP));
    assert!(inc.headers.iter().any(|(n, v)| n == "X-Test" && v == "1"), "{:?}", inc.headers);
    let mut inc_call = inc.call;
    inc_call.ringing().unwrap();
    assert_eq!(until(&mut out, |e| matches!(e, CallEvent::Ringing)).await, CallEvent::Ringing);
    inc_call.answer(&SDP.replace("40000", "40002")).unwrap();
    let ans = until(&mut out, |e| matches!(e, CallEvent::Answered { .. })).await;
    assert!(matches!(ans, CallEvent::Answered { sdp: Some(ref s) } if s.contains("40002")), "{ans:?}");
    assert!(matches!(next(&mut inc_call).await, CallEvent::Confirmed { sdp: None }));

    // Hold via re-INVITE from the caller, answered from above.
    let hold = SDP.replace("sendrecv", "sendonly");
    let ctl = tokio::spawn(async move {
        let r = out.reinvite(&hold).await;
        (out, r)
    });
    let offer = next(&mut inc_call).await;
    assert!(matches!(&offer, CallEvent::Offer { kind: OfferKind::ReInvite, sdp: Some(s) } if s.contains("sendonly")), "{offer:?}");
    inc_call.accept_offer(&SDP.replace("sendrecv", "recvonly")).await.unwrap();
    let (mut out, r) = ctl.await.unwrap();
    assert!(r.unwrap().unwrap().contains("recvonly"));

    // UPDATE from the callee back to sendrecv.
    let resume = SDP.to_string();
    let ctl = tokio::spawn(async move {
        let r = inc_call.update(&resume).await;
        (inc_call, r)
    });
    let offer = until(&mut out, |e| matches!(e, CallEvent::Offer { .. })).await;
    assert!(matches!(offer, CallEvent::Offer { kind: OfferKind::Update, .. }));
    out.accept_offer(SDP).await.unwrap();
    let (mut inc_call, r) = ctl.await.unwrap();
    assert!(r.unwrap().is_some());

    // DTMF INFO and an in-call MESSAGE.
    out.send_dtmf('7', 160).await.unwrap();
    let info = until(&mut inc_call, |e| matches!(e, CallEvent::Info { .. })).await;
    let CallEvent::Info { dtmf: Some(d), .. } = info else { panic!("{info:?}") };
    assert_eq!((d.digit, d.duration_ms), ('7', Some(160)));
    out.message("text/plain", "hi").await.unwrap();
    assert!(matches!(until(&mut inc_call, |e| matches!(e, CallEvent::Message { .. })).await, CallEvent::Message { ref body, .. } if body == "hi"));

    // BYE from the callee.
    inc_call.bye().await.unwrap();
    assert_eq!(until(&mut out, |e| matches!(e, CallEvent::Ended { .. })).await, CallEvent::Ended { by: Party::Remote, reason: "BYE".into() });
}

#[tokio::test]
async fn call_over_udp() {
    call_flow(Transport::Udp).await;
}

#[tokio::test]
async fn call_over_tcp() {
    call_flow(Transport::Tcp).await;
}

#[tokio::test]
async fn cancel_while_ringing_and_reject() {
    let a = ua().await;
    let b = ua().await;
    let mut b_events = b.take_events().unwrap();
    let target = format!("sip:bob@{}", b.local_addr(Transport::Udp).unwrap());
    let guest = Caller::Guest { uri: "sip:alice@127.0.0.1".into(), display_name: None };
    let mut out = a.invite(guest.clone(), &target, Some(SDP.into()), &[]).unwrap();
    let Some(UaEvent::IncomingCall(inc)) = b_events.recv().await else { panic!() };
    let mut inc_call = inc.call;
    inc_call.ringing().unwrap();
    until(&mut out, |e| matches!(e, CallEvent::Ringing)).await;
    out.hangup().await.unwrap();
    assert_eq!(until(&mut inc_call, |e| matches!(e, CallEvent::Ended { .. })).await, CallEvent::Ended { by: Party::Remote, reason: "CANCEL".into() });
    assert_eq!(until(&mut out, |e| matches!(e, CallEvent::Ended { .. })).await, CallEvent::Ended { by: Party::Local, reason: "CANCEL".into() });

    // 488 from above (no common codec) reaches the caller as Failed.
    let mut out = a.invite(guest.clone(), &target, Some(SDP.into()), &[]).unwrap();
    let Some(UaEvent::IncomingCall(inc)) = b_events.recv().await else { panic!() };
    inc.call.reject(488, None).unwrap();
    let f = until(&mut out, |e| matches!(e, CallEvent::Failed { .. })).await;
    assert!(matches!(f, CallEvent::Failed { code: 488, .. }), "{f:?}");

    // OPTIONS and MESSAGE outside a call.
    a.options(&guest, &target).await.unwrap();
    a.message(&guest, &target, "text/plain", "hello").await.unwrap();
    let Some(UaEvent::Message(m)) = b_events.recv().await else { panic!() };
    assert_eq!((m.content_type.as_str(), m.body.as_str()), ("text/plain", "hello"));
}

/// A TLS listener without a certificate is a configuration error, not a
/// listener that fails every handshake.
#[tokio::test]
async fn tls_listener_needs_a_certificate() {
    let err = UserAgent::start(Config {
        listen: vec![Listen { transport: Transport::Tls, addr: "127.0.0.1:0".parse().unwrap() }],
        tls: Some(signaling::TlsSettings { ca_pem: Some(String::new()), ..Default::default() }),
        ..Config::default()
    })
    .await
    .unwrap_err();
    assert!(matches!(err, signaling::Error::Config(ref m) if m.contains("cert_pem")), "{err:?}");
}
