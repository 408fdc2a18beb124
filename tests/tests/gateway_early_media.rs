//! Early media through the gateway: the page (a guest account, no
//! REGISTER) calls SIPp, which answers 183 with SDP and streams a tone
//! before its 200 OK; the page must hear the tone while the call is still
//! in progress, then the call is answered and hung up from the page; the
//! same with a reliable 183 (RFC 3262), PRACKed by the bridge.

use e2e::audio::{tone, ulaw_encode};
use e2e::gateway::{Gateway, Softphone};
use e2e::process::{free_udp_port, test_dir};
use e2e::sipp::{Sipp, SippRun, SEND_200_TO_LAST};
use serde_json::json;
use std::path::Path;
use std::time::Duration;

const EARLY_TONE: f64 = 500.0;

/// A mu-law WAV (format 7) for SIPp's rtp_stream.
fn write_ulaw_wav(path: &Path, seconds: f64, freq: f64) {
    let pcm = tone(freq, seconds, 8000, 0.3);
    let data: Vec<u8> = pcm.samples.iter().map(|s| ulaw_encode((*s * 32767.0) as i16)).collect();
    let mut w = Vec::new();
    w.extend_from_slice(b"RIFF");
    w.extend_from_slice(&(38 + data.len() as u32).to_le_bytes());
    w.extend_from_slice(b"WAVEfmt ");
    w.extend_from_slice(&18u32.to_le_bytes());
    w.extend_from_slice(&7u16.to_le_bytes()); // mu-law
    w.extend_from_slice(&1u16.to_le_bytes());
    w.extend_from_slice(&8000u32.to_le_bytes());
    w.extend_from_slice(&8000u32.to_le_bytes());
    w.extend_from_slice(&1u16.to_le_bytes());
    w.extend_from_slice(&8u16.to_le_bytes());
    w.extend_from_slice(&0u16.to_le_bytes());
    w.extend_from_slice(b"data");
    w.extend_from_slice(&(data.len() as u32).to_le_bytes());
    w.extend_from_slice(&data);
    std::fs::write(path, w).unwrap();
}

/// SIPp's SDP for the PCMU it streams from its rtp_stream port; `session`
/// names it.
fn pcmu_sdp(session: &str) -> String {
    format!(
        "      v=0\n      o=sipp 1 1 IN IP[local_ip_type] [local_ip]\n      s={session}\n      c=IN IP[media_ip_type] [media_ip]\n      \
         t=0 0\n      m=audio [rtpstream_audio_port] RTP/AVP 0\n      a=rtpmap:0 PCMU/8000\n      a=ptime:20\n      a=sendrecv\n"
    )
}

/// SIPp's `status` reply to the INVITE just received, sent by the `send`
/// element (with or without retransmissions), with our `extra` headers
/// (each line indented and ending in `\n`) and its PCMU SDP.
fn reply_with_sdp(send: &str, status: &str, extra: &str, session: &str) -> String {
    format!(
        r#"  {send}<![CDATA[

      SIP/2.0 {status}
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:sipp@[local_ip]:[local_port];transport=[transport]>
{extra}      Content-Type: application/sdp
      Content-Length: [len]

{sdp}
    ]]></send>
"#,
        sdp = pcmu_sdp(session)
    )
}

/// A scenario file named `name` from its steps.
fn scenario(name: &str, steps: &[&str]) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"ISO-8859-1\" ?>\n<!DOCTYPE scenario SYSTEM \"sipp.dtd\">\n<scenario name=\"{name}\">\n{}</scenario>\n",
        steps.concat()
    )
}

/// The callee: 183 with SDP and its early media streamed for 5 s, then 200
/// (to the INVITE, whose headers it keeps), ACK, and a BYE from the caller.
/// With `reliable` (RFC 3262) the 183 has `Require: 100rel` and an RSeq,
/// and SIPp waits for our PRACK (the scenario fails without it) before it
/// streams the early media.
fn early_media_scenario(reliable: bool) -> String {
    let invite = r#"  <recv request="INVITE" crlf="true">
    <action>
      <ereg regexp=".*" search_in="hdr" header="Via:" assign_to="invite_via"/>
      <ereg regexp=".*" search_in="hdr" header="From:" assign_to="invite_from"/>
      <ereg regexp=".*" search_in="hdr" header="To:" assign_to="invite_to"/>
    </action>
  </recv>
"#;
    let progress = reply_with_sdp(
        "<send>",
        "183 Session Progress",
        if reliable { "      Require: 100rel\n      RSeq: 1\n" } else { "" },
        "early",
    );
    let prack = r#"  <recv request="PRACK" crlf="true">
    <action><ereg regexp="1 1 INVITE" search_in="hdr" header="RAck:" check_it="true" assign_to="rack"/></action>
  </recv>
  <Reference variables="rack"/>
"#;
    let prack = if reliable { [prack, SEND_200_TO_LAST].concat() } else { String::new() };
    let early_media = r#"  <nop><action><exec rtp_stream="early.wav,-1,0"/></action></nop>
  <pause milliseconds="5000"/>
"#;
    // The 183's reliability (and the PRACK's answer) changed the last
    // request's headers: the 200 answers the INVITE's.
    let ok = format!(
        r#"  <send retrans="500"><![CDATA[

      SIP/2.0 200 OK
      Via: [$invite_via]
      From: [$invite_from]
      To: [$invite_to];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      CSeq: 1 INVITE
      Contact: <sip:sipp@[local_ip]:[local_port];transport=[transport]>
      Content-Type: application/sdp
      Content-Length: [len]

{sdp}
    ]]></send>
  <recv request="ACK" crlf="true"/>
  <recv request="BYE"/>
"#,
        sdp = pcmu_sdp("early")
    );
    scenario(
        "183 with streamed early media, 200, BYE from the caller",
        &[invite, &progress, &prack, early_media, &ok, SEND_200_TO_LAST],
    )
}

/// SIPp answering `xml` (written to `<dir>/<name>.xml`) as a callee with
/// its RTP on a port of its own, for at most 40 s.
fn sipp_callee(dir: &Path, name: &str, xml: &str) -> SippRun {
    let path = dir.join(format!("{name}.xml"));
    std::fs::write(&path, xml).unwrap();
    Sipp::new(path.to_str().unwrap())
        .args(["-mi".to_string(), "127.0.0.1".to_string(), "-mp".to_string(), free_udp_port().to_string()])
        .limit(Duration::from_secs(40))
        .spawn(dir, "sipp")
        .unwrap()
}

/// A gateway started with `args` and its page (660 Hz), registered as the
/// guest `sip:alice@127.0.0.1`.
fn guest_page(dir: &Path, args: &[&str]) -> (Gateway, Softphone) {
    let gw = Gateway::start(dir, None, args).unwrap();
    let page = Softphone::start(dir, "softphone", &gw.url(), 660).unwrap();
    page.wait_ready().unwrap();
    let r = page.request("sip.register", json!({ "username": "sip:alice@127.0.0.1", "guest": true })).unwrap();
    assert_eq!(r["result"]["guest"], true, "{r}");
    page.wait_event("registered").unwrap();
    (gw, page)
}

#[test]
fn page_hears_183_early_media_then_answer() {
    early_media("gateway_early_media", false);
}

/// RFC 3262: the same with a reliable 183, which the bridge PRACKs.
#[test]
fn page_hears_reliable_183_early_media_after_our_prack() {
    early_media("gateway_early_media_100rel", true);
}

fn early_media(name: &str, reliable: bool) {
    let dir = test_dir(name);
    write_ulaw_wav(&dir.join("early.wav"), 20.0, EARLY_TONE);
    let mut sipp = sipp_callee(&dir, "early", &early_media_scenario(reliable));
    let (gw, page) = guest_page(&dir, &[]);

    let target = format!("sip:sipp@{}", sipp.addr());
    page.fill("#target", &target).unwrap();
    page.click("#call").unwrap();
    let progress = page.wait(|d| d["event"] == "progress" || d["event"] == "hangup").unwrap();
    assert_eq!(progress["event"], "progress", "{progress}\n{}", gw.log());
    assert_eq!(progress["earlyMedia"], true, "{progress}");
    page.wait(|d| d["event"] == "pcstate" && d["state"] == "connected").unwrap();
    std::thread::sleep(Duration::from_millis(800));
    let early = page.record(2000, &dir.join("page-early.wav")).unwrap();
    assert!(
        !page.events().iter().any(|e| e["event"] == "accepted"),
        "the recording must be of early media, before the 200"
    );
    let share = early.tone_share(EARLY_TONE);
    assert!(share > 0.5, "the page should hear the 183's {EARLY_TONE} Hz; share {share:.3}, rms {:.4}", early.rms());

    page.wait_event("accepted").unwrap();
    page.click("#hangup").unwrap();
    let h = page.wait_event("hangup").unwrap();
    assert_eq!(h["by"], "local", "{h}");
    sipp.expect_success(Duration::from_secs(10)).unwrap();
}

/// The callee: answers, streams 3 s of audio, then sends nothing and waits
/// (30 s at most) for a BYE.
fn goes_silent_scenario() -> String {
    let streams_then_waits = r#"  <recv request="ACK" crlf="true"/>
  <nop><action><exec rtp_stream="short.wav,1,0"/></action></nop>
  <recv request="BYE" timeout="30000"/>
"#;
    scenario(
        "answers, streams 3 s of audio, then sends nothing and waits for a BYE",
        &[
            "  <recv request=\"INVITE\" crlf=\"true\"/>\n",
            &reply_with_sdp(r#"<send retrans="500">"#, "200 OK", "", "silent"),
            streams_then_waits,
            SEND_200_TO_LAST,
        ],
    )
}

#[test]
fn a_sip_peer_gone_silent_is_hung_up_and_the_page_told_why() {
    let dir = test_dir("gateway_media_timeout");
    write_ulaw_wav(&dir.join("short.wav"), 3.0, EARLY_TONE);
    let mut sipp = sipp_callee(&dir, "silent", &goes_silent_scenario());
    let (gw, page) = guest_page(&dir, &["--set", "media.timeout=2"]);
    page.fill("#target", &format!("sip:sipp@{}", sipp.addr())).unwrap();
    page.click("#call").unwrap();
    page.wait_event("accepted").unwrap();
    // 3 s of audio, 2 s of media timeout, and slack: the page hears why.
    let h = page.wait_for(Duration::from_secs(15), |d| d["event"] == "hangup").unwrap();
    assert_eq!(h["reason"], "media timeout", "{h}\n{}", gw.log());
    assert_eq!(h["by"], "local", "{h}");
    assert_eq!(h["code"], 200, "ended with a BYE: {h}");
    sipp.expect_success(Duration::from_secs(10)).unwrap();
}
