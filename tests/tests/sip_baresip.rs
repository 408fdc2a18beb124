//! A call between an account of signaling's user agent and baresip, both
//! registered at the same Kamailio, in both directions, through Kamailio's
//! 407 proxy challenge.

use e2e::audio::{tone, write_wav};
use e2e::baresip::{Baresip, BaresipOptions};
use e2e::kamailio::{Kamailio, KamailioOptions};
use e2e::process::{free_udp_port, test_dir};
use signaling::{
    Account, Call, CallEvent, Caller, Config, Listen, Party, RegistrationEvent, TlsSettings, Transport, UaEvent,
    UserAgent,
};
use std::time::Duration;

/// An SDP offer/answer for a UDP socket we hold, so baresip's RTP lands
/// somewhere (no ICMP errors ending its call) and can be checked.
fn media() -> (String, std::net::UdpSocket) {
    let port = free_udp_port();
    let sock = std::net::UdpSocket::bind(("127.0.0.1", port)).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let sdp = format!("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n");
    (sdp, sock)
}

/// baresip sends PCMU RTP to the address our SDP gave.
fn expect_pcmu(sock: &std::net::UdpSocket) {
    let mut buf = [0u8; 2048];
    let (n, _) = sock.recv_from(&mut buf).expect("RTP from baresip at the address in our SDP");
    assert!(n > 12 && buf[0] >> 6 == 2 && buf[1] & 0x7f == 0, "not PCMU RTP: {:?}", &buf[..n.min(12)]);
}

async fn next(call: &mut Call) -> CallEvent {
    tokio::time::timeout(Duration::from_secs(10), call.next_event())
        .await
        .expect("call event in time")
        .expect("call event")
}

/// Our side on SIP over UDP, like baresip: Kamailio challenges our INVITE
/// with 407 and we answer it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_both_ways_with_baresip_through_kamailio_407() {
    let log = calls_with_our_side_on(Transport::Udp, "sip_baresip_calls").await;
    assert!(log.contains("PROXY-AUTHZ Digest username=\"alice\""), "our INVITE was not challenged/answered:\n{log}");
}

/// Two calls, with our account registered over `transport` and baresip
/// over UDP: us -> baresip through Kamailio's 407 challenge, then baresip
/// -> us, each with baresip's PCMU reaching the address in our SDP. Over
/// another transport than UDP (WS, TLS) Kamailio bridges the transports,
/// reaches us for the incoming call, and in-dialog requests (ACK, BYE)
/// cross back in both directions. Returns Kamailio's log.
async fn calls_with_our_side_on(transport: Transport, name: &str) -> String {
    let dir = test_dir(name);
    let mut opts = KamailioOptions::new("example.test", &[("alice", "a-pw"), ("bob", "b-pw")]);
    opts.tls = transport == Transport::Tls;
    let k = Kamailio::start(&dir, &opts).unwrap();
    let wav = dir.join("tone.wav");
    write_wav(&wav, &tone(440.0, 20.0, 8000, 0.3)).unwrap();
    let bob = Baresip::start(
        &dir,
        &BaresipOptions {
            accounts: vec![k.baresip_account("bob", "b-pw", true)],
            play: Some(wav),
            record: false,
            limit: Duration::from_secs(60),
        },
    )
    .unwrap();
    bob.wait_registered(1, Duration::from_secs(10)).unwrap();

    let any = "127.0.0.1:0".parse().unwrap();
    let mut listen = vec![Listen { transport: Transport::Udp, addr: any }];
    if transport != Transport::Udp {
        listen.push(Listen { transport, addr: any });
    }
    // Over TLS we trust Kamailio's self-signed certificate and listen with
    // the same one (Kamailio does not verify it).
    let tls = (transport == Transport::Tls).then(|| TlsSettings {
        cert_pem: k.tls_cert_pem.clone(),
        key_pem: k.tls_key_pem.clone(),
        ca_pem: k.tls_cert_pem.clone(),
    });
    let ua = UserAgent::start(Config { listen, tls, ..Config::default() }).await.unwrap();
    let mut events = ua.take_events().unwrap();
    let alice = Account::new(k.aor("alice"), "a-pw").with_proxy(k.proxy_uri(transport.param()));
    let mut reg = ua.register(alice.clone()).unwrap();
    let ev = tokio::time::timeout(Duration::from_secs(10), reg.next_event()).await.unwrap().unwrap();
    assert!(matches!(ev, RegistrationEvent::Registered { .. }), "{ev:?}\n{}", k.log());

    // Us -> baresip (UDP): Kamailio challenges our INVITE with 407.
    let (offer, rtp) = media();
    let mut call = ua.invite(Caller::Account(alice.clone()), &k.aor("bob"), Some(offer), &[]).unwrap();
    let answered = loop {
        match next(&mut call).await {
            CallEvent::Trying | CallEvent::Ringing | CallEvent::Progress { .. } => {}
            other => break other,
        }
    };
    assert!(
        matches!(&answered, CallEvent::Answered { sdp: Some(s) } if s.contains("m=audio") && s.contains("PCMU")),
        "{answered:?}\n{}",
        k.log()
    );
    let est = bob.wait_event("call", "CALL_ESTABLISHED", Duration::from_secs(5)).unwrap();
    assert_eq!(est["direction"], "incoming", "{est}");
    expect_pcmu(&rtp);
    call.bye().await.unwrap();
    assert_eq!(next(&mut call).await, CallEvent::Ended { by: Party::Local, reason: "BYE".into() });
    bob.wait_event("call", "CALL_CLOSED", Duration::from_secs(5)).unwrap();

    // baresip (UDP) -> us: baresip answers Kamailio's 407, Kamailio finds
    // our binding and reaches us over our transport; baresip's BYE follows
    // the same way.
    bob.command("dial", &k.aor("alice")).unwrap();
    let inc = match tokio::time::timeout(Duration::from_secs(10), events.recv()).await.expect("incoming call") {
        Some(UaEvent::IncomingCall(c)) => c,
        other => panic!("{other:?}"),
    };
    assert!(inc.from.contains("bob@example.test"), "{}", inc.from);
    assert!(inc.sdp_offer.as_deref().is_some_and(|s| s.contains("m=audio")));
    let mut call = inc.call;
    call.ringing().unwrap();
    let (answer, rtp) = media();
    call.answer(&answer).unwrap();
    assert_eq!(next(&mut call).await, CallEvent::Confirmed { sdp: None }, "{}", k.log());
    let est = bob.wait_event("call", "CALL_ESTABLISHED", Duration::from_secs(5)).unwrap();
    assert_eq!(est["direction"], "outgoing", "{est}");
    expect_pcmu(&rtp);
    bob.command("hangup", "").unwrap();
    assert_eq!(next(&mut call).await, CallEvent::Ended { by: Party::Remote, reason: "BYE".into() }, "{}", k.log());
    k.log()
}

/// Our side on SIP over WebSocket (RFC 7118).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_both_ways_with_baresip_over_websocket() {
    let log = calls_with_our_side_on(Transport::Ws, "sip_baresip_ws").await;
    // Our requests crossed Kamailio's WebSocket side, and baresip's
    // in-dialog requests reached us through our Contact's connection alias.
    for m in ["REQ REGISTER", "REQ INVITE", "REQ ACK", "REQ BYE"] {
        assert!(log.lines().any(|l| l.contains(m) && l.contains("(ws)")), "no {m} over WS:\n{log}");
    }
    assert!(
        log.lines().any(|l| l.contains("REQ BYE sip:alice@") && l.contains(";alias=")),
        "baresip's BYE not routed by alias:\n{log}"
    );
}

/// Our side on SIP over TLS, Kamailio's certificate trusted explicitly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_both_ways_with_baresip_over_tls() {
    let log = calls_with_our_side_on(Transport::Tls, "sip_baresip_tls").await;
    for m in ["REQ REGISTER", "REQ INVITE", "REQ ACK", "REQ BYE"] {
        assert!(log.lines().any(|l| l.contains(m) && l.contains("(tls)")), "no {m} over TLS:\n{log}");
    }
}
