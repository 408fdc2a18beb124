//! RFC 4475 torture messages through the incoming path.
//!
//! `tests/torture/*.dat` are sipbridge's own messages, one per RFC 4475
//! message and under the same short name, each written after what that
//! RFC section describes and tests (`tests/torture/compose.py` writes them;
//! see `tests/torture/README.md`). They are not the RFC's bit-exact
//! Appendix B archive; `tests/torture/extract.py` replaces them with it when
//! the RFC text is available, and this test must pass on either corpus.
//! Each one goes through [`signaling::triage`] (screen, then the
//! dispatcher's decision) and, over real UDP, into a running user agent,
//! which must answer the rejected ones to the sender, keep working
//! afterwards and never panic.

use signaling::{Config, Listen, Transport, UserAgent};
use std::collections::BTreeMap;
use std::net::UdpSocket;
use std::path::PathBuf;
use std::time::Duration;

/// Expected class and result per message, with the RFC 4475 section.
/// `A` = accepted by the screen (the dispatcher then answers as noted),
/// `R` = rejected with an error response, `D` = dropped (responses). The
/// result text pins down which check caught the message, so a message that
/// fails for some other reason than its section's defect is noticed.
const EXPECTED: &[(&str, &str, char, &str)] = &[
    ("wsinv", "3.1.1.1 short tortuous INVITE", 'A', "accepted, answered 481 Call/Transaction Does Not Exist"),
    ("intmeth", "3.1.1.2 wide range of valid characters (unknown method)", 'R', "rejected: 501 Not Implemented"),
    ("esc01", "3.1.1.3 valid use of % escaping", 'A', "accepted: new call"),
    ("escnull", "3.1.1.4 escaped nulls in URIs", 'A', "accepted, answered 405 Method Not Allowed"),
    ("esc02", "3.1.1.5 %-escaped method (unknown method)", 'R', "rejected: 501 Not Implemented"),
    ("lwsdisp", "3.1.1.6 no LWS between display name and <", 'A', "accepted: 200 (OPTIONS)"),
    ("longreq", "3.1.1.7 long values in header fields", 'A', "accepted: new call"),
    ("dblreq", "3.1.1.8 extra trailing octets in a UDP datagram", 'A', "accepted, answered 405 Method Not Allowed"),
    ("semiuri", "3.1.1.9 semicolon-separated parameters in URI user part", 'A', "accepted: 200 (OPTIONS)"),
    ("transports", "3.1.1.10 varied and unknown transport types", 'A', "accepted: 200 (OPTIONS)"),
    ("mpart01", "3.1.1.11 multipart MIME message", 'A', "accepted: 200 (MESSAGE)"),
    ("unreason", "3.1.1.12 unusual reason phrase", 'A', "accepted: response (no matching transaction: discarded)"),
    ("noreason", "3.1.1.13 empty reason phrase", 'A', "accepted: response (no matching transaction: discarded)"),
    ("badinv01", "3.1.2.1 extraneous header field separators", 'R', "rejected: 400 Malformed Via: bad parameter"),
    ("clerr", "3.1.2.2 Content-Length larger than message", 'R', "rejected: 400 Content-Length larger than message"),
    ("ncl", "3.1.2.3 negative Content-Length", 'R', "rejected: 400 Malformed Content-Length"),
    ("scalar02", "3.1.2.4 request scalar fields with overlarge values", 'R', "rejected: 400 CSeq number out of range"),
    (
        "scalarlg",
        "3.1.2.5 response scalar fields with overlarge values",
        'D',
        "rejected: dropped (CSeq number out of range)",
    ),
    (
        "quotbal",
        "3.1.2.6 unterminated quoted string in display name",
        'R',
        "rejected: 400 Malformed To: unterminated quoted string",
    ),
    ("ltgtruri", "3.1.2.7 <> enclosing Request-URI", 'R', "rejected: 400 Request-URI enclosed in <>"),
    ("lwsruri", "3.1.2.8 malformed SIP Request-URI (embedded LWS)", 'R', "rejected: 400 Malformed Request-Line"),
    ("lwsstart", "3.1.2.9 multiple SP separating Request-Line elements", 'R', "rejected: 400 Malformed Request-Line"),
    ("trws", "3.1.2.10 SP characters at end of Request-Line", 'R', "rejected: 400 Malformed Request-Line"),
    ("escruri", "3.1.2.11 escaped headers in SIP Request-URI", 'R', "rejected: 400 Headers not allowed in Request-URI"),
    ("baddate", "3.1.2.12 invalid time zone in Date header field", 'R', "rejected: 400 Malformed Date"),
    (
        "regbadct",
        "3.1.2.13 failure to enclose name-addr URI in <>",
        'R',
        "rejected: 400 Malformed Contact: URI with headers not enclosed in <>",
    ),
    ("badaspec", "3.1.2.14 spaces within addr-spec", 'R', "rejected: 400 Malformed To: whitespace in addr-spec"),
    (
        "baddn",
        "3.1.2.15 non-token characters in display name",
        'R',
        "rejected: 400 Malformed From: display name is neither token nor quoted string",
    ),
    ("badvers", "3.1.2.16 unknown protocol version", 'R', "rejected: 505 Version Not Supported"),
    (
        "mismatch01",
        "3.1.2.17 start line and CSeq method mismatch",
        'R',
        "rejected: 400 CSeq method does not match Request-Line",
    ),
    (
        "mismatch02",
        "3.1.2.18 unknown method with CSeq method mismatch",
        'R',
        "rejected: 400 CSeq method does not match Request-Line",
    ),
    ("bigcode", "3.1.2.19 overlarge response code", 'D', "rejected: dropped (Malformed Status-Code)"),
    ("badbranch", "3.2.1 missing transaction identifier", 'A', "accepted: 200 (OPTIONS)"),
    ("insuf", "3.3.1 missing required header fields", 'R', "rejected: 400 Missing From header"),
    ("unkscm", "3.3.2 Request-URI with unknown scheme", 'R', "rejected: 416 Unsupported URI Scheme"),
    ("novelsc", "3.3.3 Request-URI with known but atypical scheme", 'R', "rejected: 416 Unsupported URI Scheme"),
    ("unksm2", "3.3.4 unknown URI schemes in header fields", 'A', "accepted, answered 405 Method Not Allowed"),
    ("bext01", "3.3.5 Proxy-Require and Require", 'A', "accepted, answered 420 Bad Extension"),
    ("invut", "3.3.6 unknown Content-Type", 'A', "accepted, answered 415 Unsupported Media Type"),
    ("regaut01", "3.3.7 unknown authorization scheme", 'A', "accepted, answered 405 Method Not Allowed"),
    ("multi01", "3.3.8 multiple values in single-value required fields", 'R', "rejected: 400 Duplicate From header"),
    ("mcl01", "3.3.9 multiple Content-Length values", 'R', "rejected: 400 Conflicting Content-Length headers"),
    ("bcast", "3.3.10 200 OK with broadcast Via", 'A', "accepted: response (no matching transaction: discarded)"),
    ("zeromf", "3.3.11 Max-Forwards of zero", 'A', "accepted: 200 (OPTIONS)"),
    ("cparam01", "3.3.12 REGISTER with a Contact header parameter", 'A', "accepted, answered 405 Method Not Allowed"),
    ("cparam02", "3.3.13 REGISTER with a url-parameter", 'A', "accepted, answered 405 Method Not Allowed"),
    ("regescrt", "3.3.14 REGISTER with a URL-escaped header", 'A', "accepted, answered 405 Method Not Allowed"),
    ("sdp01", "3.3.15 unacceptable Accept offering", 'A', "accepted, answered 406 Not Acceptable"),
    ("inv2543", "3.4.1 INVITE with RFC 2543 syntax (no From tag)", 'A', "accepted: new call"),
];

fn corpus() -> BTreeMap<String, Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/torture");
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "dat") {
            out.insert(p.file_stem().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap());
        }
    }
    out
}

#[test]
fn rfc4475_per_message_results() {
    let corpus = corpus();
    assert_eq!(corpus.len(), 49, "RFC 4475 has 49 messages");
    let mut report = String::from("| message | RFC 4475 section | result |\n|---|---|---|\n");
    let mut wrong = Vec::new();
    for (name, section, class, result) in EXPECTED {
        let bytes = corpus.get(*name).unwrap_or_else(|| panic!("{name}.dat missing"));
        let got = signaling::triage(bytes, 65535);
        let got_class = if got.starts_with("accepted") {
            'A'
        } else if got.starts_with("rejected: dropped") {
            'D'
        } else {
            'R'
        };
        if got_class != *class || got != *result {
            wrong.push(format!("{name}: expected {class} ({result}), got {got}"));
        }
        report.push_str(&format!("| {name} | {section} | {got} |\n"));
    }
    println!("{report}");
    std::fs::write(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/rfc4475-report.md"), &report).ok();
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// The same messages over UDP into a running user agent: rejected requests
/// are answered to the sender with the screen's code, and the agent still
/// answers OPTIONS afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc4475_over_udp_into_a_live_agent() {
    let ua = UserAgent::start(Config {
        listen: vec![Listen { transport: Transport::Udp, addr: "127.0.0.1:0".parse().unwrap() }],
        ..Config::default()
    })
    .await
    .unwrap();
    let target = ua.local_addr(Transport::Udp).unwrap();
    let mut ua_events = ua.take_events().unwrap();
    let corpus = corpus();
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    let mut answered = 0;
    for (name, _, class, _) in EXPECTED {
        let bytes = &corpus[*name];
        sock.send_to(bytes, target).unwrap();
        if *class == 'R' {
            let expected = signaling::triage(bytes, 65535);
            let code: String = expected.trim_start_matches("rejected: ").chars().take(3).collect();
            // Accepted messages get answers too (the agent replies to the
            // source), so skip until this rejection's status line.
            let want = format!("SIP/2.0 {code} ");
            let mut buf = [0u8; 4096];
            loop {
                let (n, _) = sock.recv_from(&mut buf).unwrap_or_else(|e| panic!("{name}: no {code} answer ({e})"));
                if String::from_utf8_lossy(&buf[..n]).starts_with(&want) {
                    break;
                }
            }
            answered += 1;
        }
    }
    assert!(answered >= 20);
    // The RFC 2543 INVITE (no From tag) became an incoming call like the
    // RFC 3261 ones.
    let inv2543 = signaling::wire::scan(&corpus["inv2543"]).unwrap();
    let (call_id, from) = (inv2543.first("call-id").unwrap().to_string(), inv2543.first("from").unwrap().to_string());
    let call = loop {
        match tokio::time::timeout(Duration::from_secs(5), ua_events.recv()).await {
            Ok(Some(signaling::UaEvent::IncomingCall(c))) if c.call.id() == call_id => break c,
            Ok(Some(_)) => continue,
            other => panic!("inv2543 did not become an incoming call: {other:?}"),
        }
    };
    assert_eq!(call.from, signaling::compat::header_uri(&from));
    let (accepted, rejected, _dropped) = ua.screen_stats();
    assert_eq!(rejected, answered as u64);
    assert!(accepted >= 20, "accepted {accepted}");
    // Still alive: a plain OPTIONS gets its 200.
    let opts = format!(
        "OPTIONS sip:ua@{target} SIP/2.0\r\nVia: SIP/2.0/UDP {me};rport;branch=z9hG4bKalive\r\nMax-Forwards: 70\r\nFrom: <sip:t@127.0.0.1>;tag=a\r\nTo: <sip:ua@{target}>\r\nCall-ID: alive\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
        me = sock.local_addr().unwrap()
    );
    sock.send_to(opts.as_bytes(), target).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        let (n, _) = sock.recv_from(&mut buf).expect("OPTIONS answered");
        let text = String::from_utf8_lossy(&buf[..n]);
        if text.contains("Call-ID: alive") {
            assert!(text.starts_with("SIP/2.0 200"), "{text}");
            break;
        }
    }
}
