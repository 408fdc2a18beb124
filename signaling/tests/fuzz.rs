//! The SIP fuzz target, bounded in time so it runs in every `cargo test`
//! (the shared harness, tests/src/mutate.rs): mutated seed messages (the
//! ones below and RFC 4475's) through the screen and dispatcher decision
//! ([`signaling::triage`]) and, over UDP, into a live user agent that must
//! keep answering afterwards. The coverage-guided version is
//! `signaling/fuzz` (`cargo fuzz run incoming`).

#[path = "../../tests/src/mutate.rs"]
mod mutate;

use signaling::{Config, Listen, Transport, UserAgent};
use std::net::UdpSocket;
use std::time::Duration;

/// Seed messages written for this test: the usual requests and a response,
/// each valid, so mutations start from something the parser accepts.
fn corpus() -> Vec<Vec<u8>> {
    let sdp = "v=0\r\no=a 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n";
    let head = |method: &str, cseq: u32, extra: &str, body: &str| {
        format!(
            "{method} sip:bob@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK{cseq}x;rport\r\nMax-Forwards: 70\r\nFrom: \"Alice\" <sip:alice@127.0.0.1>;tag=a1\r\nTo: <sip:bob@127.0.0.1>\r\nCall-ID: seed-{cseq}@127.0.0.1\r\nCSeq: {cseq} {method}\r\nContact: <sip:alice@127.0.0.1:5070>\r\n{extra}Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    };
    vec![
        head("INVITE", 1, "Content-Type: application/sdp\r\n", sdp),
        head("OPTIONS", 2, "Accept: application/sdp\r\n", ""),
        head("REGISTER", 3, "Expires: 3600\r\n", ""),
        head("MESSAGE", 4, "Content-Type: text/plain\r\n", "hello"),
        head("INFO", 5, "Content-Type: application/dtmf-relay\r\n", "Signal=5\r\nDuration=160\r\n"),
        head("BYE", 6, "", ""),
        b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK7x\r\nFrom: <sip:alice@127.0.0.1>;tag=a1\r\nTo: <sip:bob@127.0.0.1>;tag=b1\r\nCall-ID: seed-7@127.0.0.1\r\nCSeq: 7 OPTIONS\r\nContent-Length: 0\r\n\r\n".to_vec(),
    ]
}

const TOKENS: &[&[u8]] = &[
    b"\r\n",
    b"\r\n\r\n",
    b":",
    b";",
    b",",
    b"\"",
    b"<",
    b">",
    b" ",
    b"\t",
    b"%00",
    b"SIP/2.0",
    b"Content-Length: ",
    b"-1",
    b"99999999999999999999",
    b"Via: SIP/2.0/UDP x;branch=z9hG4bK",
    b"CSeq: 1 INVITE",
    b"\xff\xfe",
    b"\0",
    b"To: <sip:a@b>;tag=1",
    b"l: 0",
];

/// The seeds above and the RFC 4475 torture messages.
fn corpus_with_torture() -> Vec<Vec<u8>> {
    let mut corpus = corpus();
    corpus.extend(mutate::read_corpus(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/torture"), "dat"));
    corpus
}

#[test]
fn mutated_messages_never_panic_the_screen() {
    let corpus = corpus_with_torture();
    let mut accepted = 0;
    let runs = mutate::run("sip", 0x5eed_1234_abcd_0001, &corpus, TOKENS, mutate::budget(), |m| {
        if signaling::triage(m, 8192).starts_with("accepted") {
            accepted += 1;
        }
    });
    println!("sip: {runs} inputs, {accepted} accepted by the screen");
    // The mutations must not all be trivially rejected, or this tests nothing.
    assert!(accepted * 40 > runs, "only {accepted} of {runs} mutants accepted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutated_datagrams_do_not_stop_a_live_agent() {
    let ua = UserAgent::start(Config {
        listen: vec![Listen { transport: Transport::Udp, addr: "127.0.0.1:0".parse().unwrap() }],
        // The rate limit would drop most of the flood; lift it to reach the
        // parser with everything.
        max_requests_per_second_per_peer: 1_000_000,
        ring_timeout: Duration::from_secs(2),
        ..Config::default()
    })
    .await
    .unwrap();
    let target = ua.local_addr(Transport::Udp).unwrap();
    let corpus = corpus_with_torture();
    let mut rng = mutate::Rng(0x5eed_1234_abcd_0002);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    for i in 0..3000 {
        let m = mutate::mutate(&mut rng, &corpus, TOKENS);
        let _ = sock.send_to(&m[..m.len().min(60000)], target);
        // Paced so the kernel's socket buffer does not drop most of them.
        if i % 50 == 0 {
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (a, r, d) = ua.screen_stats();
    // Whitespace-only mutants are keepalives (not counted); the kernel may
    // drop some under load. Most must have reached the screen.
    assert!(a + r + d >= 1500, "agent saw only {} datagrams", a + r + d);
    assert!(a > 100 && r > 100, "accepted {a}, rejected {r}: the flood did not exercise both paths");
    sock.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let opts = format!(
        "OPTIONS sip:ua@{target} SIP/2.0\r\nVia: SIP/2.0/UDP {me};rport;branch=z9hG4bKalive2\r\nMax-Forwards: 70\r\nFrom: <sip:t@127.0.0.1>;tag=a\r\nTo: <sip:ua@{target}>\r\nCall-ID: alive2\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
        me = sock.local_addr().unwrap()
    );
    let mut buf = [0u8; 8192];
    for _ in 0..20 {
        sock.send_to(opts.as_bytes(), target).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_millis(300);
        while std::time::Instant::now() < deadline {
            if let Ok((n, _)) = sock.recv_from(&mut buf) {
                let text = String::from_utf8_lossy(&buf[..n]);
                if text.contains("Call-ID: alive2") && text.starts_with("SIP/2.0 200") {
                    return;
                }
            }
        }
    }
    panic!("agent stopped answering OPTIONS after the flood");
}
