//! RFC 3264 §6 through the gateway: a SIP phone (SIPp) calls a browser
//! user with an offer of audio, video and a second audio stream; the
//! gateway's 200 keeps all three m-lines in the offer's order, the first
//! audio answered and the others refused with port 0 (the scenario fails
//! otherwise), and the call carries audio both ways: the page hears the
//! phone's PCMA and the phone receives the page's tone.

use e2e::daemon::{count_rtp, sipp_pcap, CallerScenario, Ending};
use e2e::gateway::{Gateway, Softphone};
use e2e::process::{free_udp_port, test_dir};
use e2e::sipp::Sipp;
use serde_json::json;
use std::time::Duration;

#[test]
fn audio_video_offer_from_a_phone_gets_video_refused_and_audio_both_ways() {
    let dir = test_dir("gateway_mlines");
    let gw = Gateway::start(&dir, None, &[]).unwrap();
    let mut registrar = Sipp::new("uas_registrar.xml").limit(Duration::from_secs(40)).spawn(&dir, "registrar").unwrap();
    let page = Softphone::start(&dir, "softphone", &gw.url(), 660).unwrap();
    page.wait_ready().unwrap();
    let r = page
        .request(
            "sip.register",
            json!({ "username": "sip:alice@127.0.0.1", "secret": "unused", "proxy": format!("sip:{}", registrar.addr()) }),
        )
        .unwrap();
    assert!(r["error"].is_null(), "{r}");
    let ev = page.wait(|d| d["event"] == "registered" || d["event"] == "registration_failed").unwrap();
    assert_eq!(ev["event"], "registered", "{ev}\n{}", gw.log());
    registrar.expect_success(Duration::from_secs(10)).unwrap();

    let rtp_port = free_udp_port();
    let sock = std::net::UdpSocket::bind(("127.0.0.1", rtp_port)).unwrap();
    let mut scenario = CallerScenario::new(Ending::CallerHangsUp);
    scenario.sdp_port = Some(rtp_port);
    scenario.formats = "8";
    scenario.pcaps = vec![sipp_pcap("g711a.pcap")];
    scenario.hold_ms = 9000;
    scenario.extra_media =
        "m=video 6000 RTP/AVP 96\na=rtpmap:96 VP8/90000\na=sendrecv\nm=audio 6002 RTP/AVP 0\na=rtpmap:0 PCMU/8000\n";
    scenario.answer_must_match = Some("m=audio [1-9][0-9]* RTP/AVP 8.*m=video 0 RTP/AVP 96.*m=audio 0 RTP/AVP 0");
    let xml = scenario.write(&dir, "uac_video").unwrap();
    let mut caller = Sipp::new(xml.to_str().unwrap())
        .remote(format!("127.0.0.1:{}", gw.sip_port))
        .args(["-s", "alice"])
        .limit(Duration::from_secs(60))
        .spawn(&dir, "sipp-caller")
        .unwrap();
    // The phone's socket counts the page's tone coming back as PCMA for the
    // whole call, while the page records part of the pcap's ~7 s of PCMA.
    let counter = std::thread::spawn(move || count_rtp(&sock, Duration::from_secs(3), Duration::from_secs(40)));
    page.wait_event("incomingcall").unwrap();
    page.cmd("invoke", json!({ "fn": "answer", "args": [] })).unwrap();
    page.wait_event("accepted").unwrap();
    page.wait(|d| d["event"] == "pcstate" && d["state"] == "connected").unwrap();

    let heard = page.record(2000, &dir.join("page.wav")).unwrap();
    let (packets, pts) = counter.join().unwrap();
    caller.expect_success(Duration::from_secs(30)).unwrap();
    assert!(heard.rms() > 0.01, "the page should hear the phone's audio; rms {:.4}", heard.rms());
    assert_eq!(pts, vec![8], "the phone must get PCMA (pt 8)");
    assert!(packets >= 200, "only {packets} packets of the page's audio reached the phone");
    println!("page heard rms {:.3}; phone received {packets} PCMA packets", heard.rms());
}
