//! Early media through the gateway: the page (a guest account, no
//! REGISTER) calls SIPp, which answers 183 with SDP and streams a tone
//! before its 200 OK; the page must hear the tone while the call is still
//! in progress, then the call is answered and hung up from the page; the
//! same with a reliable 183 (RFC 3262), PRACKed by the bridge.

use e2e::audio::{tone, ulaw_encode};
use e2e::gateway::{Gateway, Softphone};
use e2e::process::test_dir;
use e2e::sipp::Sipp;
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

/// The callee's scenario; `RELIABLE` marks where the reliable variant puts
/// its 100rel parts.
const SCENARIO: &str = r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="183 with streamed early media, 200, BYE from the caller">
  <recv request="INVITE" crlf="true">
    <action>
      <ereg regexp=".*" search_in="hdr" header="Via:" assign_to="invite_via"/>
      <ereg regexp=".*" search_in="hdr" header="From:" assign_to="invite_from"/>
      <ereg regexp=".*" search_in="hdr" header="To:" assign_to="invite_to"/>
    </action>
  </recv>
  <send><![CDATA[

      SIP/2.0 183 Session Progress
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:sipp@[local_ip]:[local_port];transport=[transport]>
RELIABLE_HEADERS      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=sipp 1 1 IN IP[local_ip_type] [local_ip]
      s=early
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [rtpstream_audio_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000
      a=ptime:20
      a=sendrecv

    ]]></send>
RELIABLE_PRACK  <nop><action><exec rtp_stream="early.wav,-1,0"/></action></nop>
  <pause milliseconds="5000"/>
  <send retrans="500"><![CDATA[

      SIP/2.0 200 OK
      Via: [$invite_via]
      From: [$invite_from]
      To: [$invite_to];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      CSeq: 1 INVITE
      Contact: <sip:sipp@[local_ip]:[local_port];transport=[transport]>
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=sipp 1 1 IN IP[local_ip_type] [local_ip]
      s=early
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [rtpstream_audio_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000
      a=ptime:20
      a=sendrecv

    ]]></send>
  <recv request="ACK" crlf="true"/>
  <recv request="BYE"/>
  <send><![CDATA[

      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]></send>
</scenario>
"#;

/// What the reliable variant adds: `Require: 100rel` and an RSeq on the
/// 183, and SIPp waiting for our PRACK (the scenario fails without it)
/// before it streams the early media.
const PRACK: &str = r#"  <recv request="PRACK" crlf="true">
    <action><ereg regexp="1 1 INVITE" search_in="hdr" header="RAck:" check_it="true" assign_to="rack"/></action>
  </recv>
  <Reference variables="rack"/>
  <send><![CDATA[

      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]></send>
"#;

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
    let scenario = SCENARIO
        .replace("RELIABLE_HEADERS", if reliable { "      Require: 100rel\n      RSeq: 1\n" } else { "" })
        .replace("RELIABLE_PRACK", if reliable { PRACK } else { "" });
    std::fs::write(dir.join("early.xml"), scenario).unwrap();
    let mut sipp = Sipp::new(dir.join("early.xml").to_str().unwrap())
        .args([
            "-mi".to_string(),
            "127.0.0.1".to_string(),
            "-mp".to_string(),
            e2e::process::free_udp_port().to_string(),
        ])
        .limit(Duration::from_secs(40))
        .spawn(&dir, "sipp")
        .unwrap();
    let gw = Gateway::start(&dir, None, &[]).unwrap();
    let page = Softphone::start(&dir, "softphone", &gw.url(), 660).unwrap();
    page.wait_ready().unwrap();
    let r = page.request("sip.register", json!({ "username": "sip:alice@127.0.0.1", "guest": true })).unwrap();
    assert_eq!(r["result"]["guest"], true, "{r}");
    page.wait_event("registered").unwrap();

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

const GOES_SILENT: &str = r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="answers, streams 3 s of audio, then sends nothing and waits for a BYE">
  <recv request="INVITE" crlf="true"/>
  <send retrans="500"><![CDATA[

      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:sipp@[local_ip]:[local_port];transport=[transport]>
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=sipp 1 1 IN IP[local_ip_type] [local_ip]
      s=silent
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [rtpstream_audio_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000
      a=ptime:20
      a=sendrecv

    ]]></send>
  <recv request="ACK" crlf="true"/>
  <nop><action><exec rtp_stream="short.wav,1,0"/></action></nop>
  <recv request="BYE" timeout="30000"/>
  <send><![CDATA[

      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]></send>
</scenario>
"#;

#[test]
fn a_sip_peer_gone_silent_is_hung_up_and_the_page_told_why() {
    let dir = test_dir("gateway_media_timeout");
    write_ulaw_wav(&dir.join("short.wav"), 3.0, EARLY_TONE);
    std::fs::write(dir.join("silent.xml"), GOES_SILENT).unwrap();
    let mut sipp = Sipp::new(dir.join("silent.xml").to_str().unwrap())
        .args([
            "-mi".to_string(),
            "127.0.0.1".to_string(),
            "-mp".to_string(),
            e2e::process::free_udp_port().to_string(),
        ])
        .limit(Duration::from_secs(40))
        .spawn(&dir, "sipp")
        .unwrap();
    let gw = Gateway::start(&dir, None, &["--set", "media.timeout=2"]).unwrap();
    let page = Softphone::start(&dir, "softphone", &gw.url(), 660).unwrap();
    page.wait_ready().unwrap();
    let r = page.request("sip.register", json!({ "username": "sip:alice@127.0.0.1", "guest": true })).unwrap();
    assert_eq!(r["result"]["guest"], true, "{r}");
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
