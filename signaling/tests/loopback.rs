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
        .invite(
            Caller::Guest { uri: "sip:alice@127.0.0.1".into(), display_name: Some("Alice".into()) },
            &target,
            Some(SDP.into()),
            &[("X-Test".into(), "1".into())],
        )
        .unwrap();
    let Some(UaEvent::IncomingCall(inc)) = tokio::time::timeout(Duration::from_secs(5), b_events.recv()).await.unwrap()
    else {
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
    assert!(
        matches!(&offer, CallEvent::Offer { kind: OfferKind::ReInvite, sdp: Some(s) } if s.contains("sendonly")),
        "{offer:?}"
    );
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
    assert!(
        matches!(until(&mut inc_call, |e| matches!(e, CallEvent::Message { .. })).await, CallEvent::Message { ref body, .. } if body == "hi")
    );

    // BYE from the callee.
    inc_call.bye().await.unwrap();
    assert_eq!(
        until(&mut out, |e| matches!(e, CallEvent::Ended { .. })).await,
        CallEvent::Ended { by: Party::Remote, reason: "BYE".into() }
    );
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
    assert_eq!(
        until(&mut inc_call, |e| matches!(e, CallEvent::Ended { .. })).await,
        CallEvent::Ended { by: Party::Remote, reason: "CANCEL".into() }
    );
    assert_eq!(
        until(&mut out, |e| matches!(e, CallEvent::Ended { .. })).await,
        CallEvent::Ended { by: Party::Local, reason: "CANCEL".into() }
    );

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

/// A scripted RFC 2543 peer on a raw UDP socket: no From tag, no Via
/// branch, no Max-Forwards (RFC 4475 §3.4.1).
struct Rfc2543Peer {
    sock: tokio::net::UdpSocket,
    ua: std::net::SocketAddr,
    seen: Vec<String>,
}

const PEER_FROM: &str = "sip:dan@127.0.0.1";

/// The value of the first header `name` (long form) in a message.
fn header<'a>(msg: &'a str, name: &str) -> Option<&'a str> {
    msg.split("\r\n\r\n").next()?.split("\r\n").skip(1).find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

impl Rfc2543Peer {
    async fn new(ua: &UserAgent) -> Self {
        let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        Rfc2543Peer { sock, ua: ua.local_addr(Transport::Udp).unwrap(), seen: Vec::new() }
    }

    fn me(&self) -> std::net::SocketAddr {
        self.sock.local_addr().unwrap()
    }

    /// Sends a request in RFC 2543 syntax; `to` is the To value.
    async fn send(&self, method: &str, uri: &str, to: &str, call_id: &str, cseq: &str, body: Option<&str>) {
        let me = self.me();
        let mut msg = format!(
            "{method} {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {me}\r\nFrom: {PEER_FROM}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: {cseq}\r\nContact: <sip:dan@{me}>\r\n"
        );
        match body {
            Some(b) => {
                msg.push_str(&format!("Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{b}", b.len()))
            }
            None => msg.push_str("Content-Length: 0\r\n\r\n"),
        }
        self.sock.send_to(msg.as_bytes(), self.ua).await.unwrap();
    }

    async fn recv(&mut self) -> String {
        let mut buf = vec![0u8; 65536];
        let (n, _) = tokio::time::timeout(Duration::from_secs(5), self.sock.recv_from(&mut buf))
            .await
            .expect("datagram in time")
            .unwrap();
        let text = String::from_utf8(buf[..n].to_vec()).unwrap();
        self.seen.push(text.clone());
        text
    }

    /// The next response with this status code and CSeq (others skipped:
    /// provisional ones, 2xx retransmissions).
    async fn response(&mut self, code: u16, cseq: &str) -> String {
        loop {
            let m = self.recv().await;
            if m.starts_with(&format!("SIP/2.0 {code} ")) && header(&m, "CSeq") == Some(cseq) {
                return m;
            }
        }
    }

    /// Nothing we received carries a tag the peer never sent: its From is
    /// echoed as sent (RFC 3261 §8.2.6.2).
    fn assert_no_synthetic_tag(&self) {
        for m in &self.seen {
            assert!(!m.contains(signaling::compat::SYNTHETIC_TAG_PREFIX), "{m}");
            if m.starts_with("SIP/2.0 ") {
                assert_eq!(header(m, "From"), Some(PEER_FROM), "{m}");
            }
        }
    }
}

fn contact_uri(msg: &str) -> String {
    let c = header(msg, "Contact").expect("Contact");
    c.trim_start_matches('<').split('>').next().unwrap().to_string()
}

async fn incoming(events: &mut tokio::sync::mpsc::UnboundedReceiver<UaEvent>) -> signaling::IncomingCall {
    match tokio::time::timeout(Duration::from_secs(5), events.recv()).await {
        Ok(Some(UaEvent::IncomingCall(c))) => c,
        other => panic!("no incoming call: {other:?}"),
    }
}

/// RFC 2543 caller, tagless From: the INVITE (and its retransmission) is
/// one call, answered; the ACK confirms it and the peer's BYE ends it, all
/// under the same synthetic identity; nothing sent back carries the tag.
#[tokio::test]
async fn rfc2543_tagless_invite_answered_acked_and_byed() {
    let b = ua().await;
    let mut events = b.take_events().unwrap();
    let mut peer = Rfc2543Peer::new(&b).await;
    let ruri = format!("sip:bob@{}", peer.ua);
    let to = format!("<{ruri}>");
    let cid = "rfc2543-a@127.0.0.1";
    peer.send("INVITE", &ruri, &to, cid, "1 INVITE", Some(SDP)).await;
    let inc = incoming(&mut events).await;
    assert_eq!(inc.call.id(), cid);
    assert_eq!(inc.from, PEER_FROM);
    let mut call = inc.call;
    // A retransmission is absorbed by the same transaction (same key).
    peer.send("INVITE", &ruri, &to, cid, "1 INVITE", Some(SDP)).await;
    call.ringing().unwrap();
    let ringing = peer.response(180, "1 INVITE").await;
    call.answer(&SDP.replace("40000", "40002")).unwrap();
    let ok = peer.response(200, "1 INVITE").await;
    assert!(ok.contains("40002"), "{ok}");
    let to_tag = header(&ok, "To").unwrap().to_string();
    assert!(to_tag.contains(";tag="), "{ok}");
    assert_eq!(header(&ringing, "To"), Some(to_tag.as_str()), "the 180 and the 200 are one dialog");

    let remote = contact_uri(&ok);
    peer.send("ACK", &remote, &to_tag, cid, "1 ACK", None).await;
    assert_eq!(
        until(&mut call, |e| matches!(e, CallEvent::Confirmed { .. })).await,
        CallEvent::Confirmed { sdp: None }
    );

    peer.send("BYE", &remote, &to_tag, cid, "2 BYE", None).await;
    let bye_ok = peer.response(200, "2 BYE").await;
    assert_eq!(header(&bye_ok, "To"), Some(to_tag.as_str()));
    assert_eq!(
        until(&mut call, |e| matches!(e, CallEvent::Ended { .. })).await,
        CallEvent::Ended { by: Party::Remote, reason: "BYE".into() }
    );
    peer.assert_no_synthetic_tag();
    assert!(events.try_recv().is_err(), "the retransmitted INVITE must not be a second call");
}

/// RFC 2543 caller again: our BYE names the peer in To without a tag (its
/// From had none, RFC 3261 §12.2.1.1), and a CANCEL of a tagless INVITE
/// reaches the call (200 for the CANCEL, 487 for the INVITE, ACKed).
#[tokio::test]
async fn rfc2543_tagless_call_byed_by_us_and_cancelled() {
    let b = ua().await;
    let mut events = b.take_events().unwrap();
    let mut peer = Rfc2543Peer::new(&b).await;
    let ruri = format!("sip:bob@{}", peer.ua);
    let to = format!("<{ruri}>");

    let cid = "rfc2543-b@127.0.0.1";
    peer.send("INVITE", &ruri, &to, cid, "1 INVITE", Some(SDP)).await;
    let mut call = incoming(&mut events).await.call;
    call.answer(SDP).unwrap();
    let ok = peer.response(200, "1 INVITE").await;
    let to_tag = header(&ok, "To").unwrap().to_string();
    peer.send("ACK", &contact_uri(&ok), &to_tag, cid, "1 ACK", None).await;
    until(&mut call, |e| matches!(e, CallEvent::Confirmed { .. })).await;
    let bye = tokio::spawn(async move {
        let r = call.bye().await;
        (call, r)
    });
    let req = loop {
        let m = peer.recv().await;
        if m.starts_with("BYE ") {
            break m;
        }
    };
    assert_eq!(header(&req, "To").map(|t| signaling::compat::header_uri(t).to_string()).as_deref(), Some(PEER_FROM));
    assert!(!header(&req, "To").unwrap().contains("tag="), "{req}");
    assert_eq!(header(&req, "From"), Some(to_tag.as_str()), "our From is the To of our 200");
    // Answered the RFC 2543 way: headers copied, no tag added to To.
    let vias: String = req.split("\r\n").filter(|l| l.starts_with("Via:")).map(|l| format!("{l}\r\n")).collect();
    let resp = format!(
        "SIP/2.0 200 OK\r\n{vias}From: {}\r\nTo: {}\r\nCall-ID: {cid}\r\nCSeq: {}\r\nContent-Length: 0\r\n\r\n",
        header(&req, "From").unwrap(),
        header(&req, "To").unwrap(),
        header(&req, "CSeq").unwrap()
    );
    peer.sock.send_to(resp.as_bytes(), peer.ua).await.unwrap();
    let (_call, r) = tokio::time::timeout(Duration::from_secs(5), bye).await.unwrap().unwrap();
    r.unwrap();

    let cid = "rfc2543-c@127.0.0.1";
    peer.send("INVITE", &ruri, &to, cid, "1 INVITE", Some(SDP)).await;
    let mut call = incoming(&mut events).await.call;
    call.ringing().unwrap();
    peer.response(180, "1 INVITE").await;
    peer.send("CANCEL", &ruri, &to, cid, "1 CANCEL", None).await;
    peer.response(200, "1 CANCEL").await;
    let terminated = peer.response(487, "1 INVITE").await;
    peer.send("ACK", &ruri, header(&terminated, "To").unwrap(), cid, "1 ACK", None).await;
    assert_eq!(
        until(&mut call, |e| matches!(e, CallEvent::Ended { .. })).await,
        CallEvent::Ended { by: Party::Remote, reason: "CANCEL".into() }
    );
    peer.assert_no_synthetic_tag();
}

/// An INVITE whose Contact is missing or unusable cannot start a dialog:
/// the agent answers 400 (it answered 500 once) and reports no call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invite_without_a_usable_contact_gets_400() {
    let ua = ua().await;
    let mut events = ua.take_events().unwrap();
    let target = ua.local_addr(Transport::Udp).unwrap();
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let me = sock.local_addr().unwrap();
    for (n, contact) in ["", "Contact: garbage\r\n", "Contact: <tel:123>\r\n"].iter().enumerate() {
        let invite = format!(
            "INVITE sip:bob@{target} SIP/2.0\r\nVia: SIP/2.0/UDP {me};rport;branch=z9hG4bKnocontact{n}\r\nMax-Forwards: 70\r\nFrom: <sip:alice@127.0.0.1>;tag=a{n}\r\nTo: <sip:bob@{target}>\r\nCall-ID: nocontact-{n}\r\nCSeq: 1 INVITE\r\n{contact}Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{SDP}",
            SDP.len()
        );
        sock.send_to(invite.as_bytes(), target).unwrap();
        let mut buf = [0u8; 4096];
        let status = loop {
            let (len, _) = sock.recv_from(&mut buf).expect("an answer");
            let text = String::from_utf8_lossy(&buf[..len]).into_owned();
            if !text.starts_with("SIP/2.0 100") {
                break text.lines().next().unwrap_or_default().to_string();
            }
        };
        assert!(status.starts_with("SIP/2.0 400 "), "{contact:?}: {status}");
    }
    assert!(events.try_recv().is_err(), "no incoming call was reported");
}
