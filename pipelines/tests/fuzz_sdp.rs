//! The SDP fuzz target, bounded in time so it runs in every `cargo test`
//! (the shared harness, tests/src/mutate.rs): mutants of real offers and
//! answers (tests/corpus/sdp: Chromium, Firefox, linphone, SIPp, baresip,
//! a PBX, our own) through the parser and everything that reads a parsed
//! description. Whatever parses (RTP sections only) must print back to
//! text that parses to the same text.

#[path = "../../tests/src/mutate.rs"]
mod mutate;

use pipelines::codec::{self, Codec, DEFAULT_PREFERENCE};
use pipelines::sdp::SessionDescription;

const TOKENS: &[&[u8]] = &[
    b"\r\n",
    b"\n",
    b"=",
    b":",
    b" ",
    b"/",
    b"m=audio 0 RTP/AVP 0\r\n",
    b"m=audio 65536 RTP/AVP 96\r\n",
    b"m=video 9 UDP/TLS/RTP/SAVPF 96\r\n",
    b"c=IN IP6 ::1\r\n",
    b"c=IN IP4 0.0.0.0\r\n",
    b"c=IN IP4 999.1.1.1\r\n",
    b"a=rtpmap:96 opus/48000/2\r\n",
    b"a=rtpmap:101 telephone-event/0\r\n",
    b"a=rtpmap:0 PCMU/4294967296\r\n",
    b"a=ptime:0\r\n",
    b"a=ptime:-20\r\n",
    b"a=rtcp:0\r\n",
    b"a=inactive\r\n",
    b"a=recvonly\r\n",
    b"a=fmtp:101 0-15\r\n",
    b"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:AAAA|2^20\r\n",
    b"v=0\r\n",
    b"\xff\xfe",
    b"\0",
    b"255",
    b"99999999999999999999",
];

#[test]
fn mutated_descriptions_never_panic_and_round_trip() {
    let corpus = mutate::read_corpus(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/sdp"), "sdp");
    let mut parsed = 0;
    let mut chosen = 0;
    let runs = mutate::run("sdp", 0x05d9_f022_0001, &corpus, TOKENS, mutate::budget(), |input| {
        let Ok(sdp) = SessionDescription::parse(&String::from_utf8_lossy(input)) else { return };
        parsed += 1;
        for media in &sdp.media {
            let _ = (sdp.address_of(media), sdp.direction_of(media), media.ptime(), media.rtcp_port());
            for pt in &media.formats {
                let _ = (media.rtpmap(*pt), media.fmtp(*pt));
            }
            if codec::choose(media, &DEFAULT_PREFERENCE).is_ok() {
                chosen += 1;
            }
            let _ = codec::choose(media, &[Codec::Pcma]);
            let _ = codec::telephone_event(media, 8000);
        }
        let _ = codec::from_answer(&sdp);
        // Non-RTP sections (data channels) keep no formats: we never print them.
        if !sdp.media.iter().all(|m| m.protocol.contains("RTP")) {
            return;
        }
        let text = sdp.to_string();
        let again =
            SessionDescription::parse(&text).unwrap_or_else(|e| panic!("our own print does not parse: {e}\n{text}"));
        assert_eq!(again.to_string(), text, "printing is not stable");
    });
    println!("sdp: {runs} inputs, {parsed} parsed, {chosen} audio sections with a codec of ours");
    assert!(
        parsed * 10 > runs,
        "only {parsed} of {runs} mutants parsed: the mutations test nothing past the first line"
    );
    assert!(chosen > 0);
}
