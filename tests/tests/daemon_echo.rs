//! `sipbridge daemon` with the echo preset, called by real peers: baresip
//! playing a tone hears it back; SIPp's pcap call gets its RTP echoed; 20
//! concurrent calls succeed and the 21st over a limit of 20 gets 503;
//! SIGTERM mid-call sends BYE to every caller and the daemon exits 0; an
//! audio+video offer is answered with the video refused (port 0).

use e2e::audio::{tone, write_wav};
use e2e::baresip::{Baresip, BaresipAccount, BaresipOptions};
use e2e::daemon::{count_rtp, sipp_pcap, CallerScenario, Daemon, Ending};
use e2e::process::{free_udp_port, test_dir};
use e2e::sipp::{Sipp, SippRun};
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const ECHO: &str = "preset = \"echo\"\n";

/// A SIPp caller playing g711a.pcap (236 PCMA packets of 30 ms) whose SDP
/// names the returned socket of the test's: the echo lands there.
fn pcap_caller(ending: Ending, hold_ms: u64) -> (UdpSocket, CallerScenario) {
    let rtp_port = free_udp_port();
    let sock = UdpSocket::bind(("127.0.0.1", rtp_port)).unwrap();
    let mut scenario = CallerScenario::new(ending);
    scenario.sdp_port = Some(rtp_port);
    scenario.pcaps = vec![sipp_pcap("g711a.pcap")];
    scenario.hold_ms = hold_ms;
    (sock, scenario)
}

/// SIPp running `xml`, calling the echo preset of `daemon`.
fn call_echo(dir: &Path, daemon: &Daemon, xml: &Path) -> SippRun {
    Sipp::new(xml.to_str().unwrap()).args(["-s", "echo"]).remote(daemon.addr()).spawn(dir, "sipp").unwrap()
}

/// A baresip that calls out without a registrar, plays `wav`, records
/// what it hears.
pub fn caller(dir: &Path, wav: PathBuf, extra: &str) -> Baresip {
    Baresip::start(
        dir,
        &BaresipOptions {
            accounts: vec![BaresipAccount {
                aor: format!("sip:alice@127.0.0.1{extra}"),
                password: None,
                outbound: None,
                auto_answer: false,
                regint: 0,
                params: String::new(),
            }],
            play: Some(wav),
            record: true,
            limit: Duration::from_secs(60),
        },
    )
    .unwrap()
}

/// The recording of what baresip heard (sndfile's `*-dec.wav`), once the
/// call has closed.
pub fn heard(b: &Baresip) -> e2e::audio::Pcm {
    b.heard().unwrap()
}

#[test]
fn baresip_hears_its_own_tone_back() {
    let dir = test_dir("daemon_echo_baresip");
    let daemon = Daemon::start(&dir, ECHO, &[]).unwrap();
    let wav = dir.join("tone.wav");
    write_wav(&wav, &tone(440.0, 4.0, 8000, 0.3)).unwrap();
    let b = caller(&dir, wav, "");
    b.command("dial", &daemon.uri("echo")).unwrap();
    b.wait_event("call", "CALL_ESTABLISHED", Duration::from_secs(10)).unwrap();
    // baresip hangs up when the file ends.
    b.wait_event("call", "CALL_CLOSED", Duration::from_secs(15)).unwrap();
    let pcm = heard(&b);
    let tail = pcm.slice(1.0, pcm.seconds() - 0.3);
    assert!(tail.seconds() > 2.0, "recording too short: {} s", pcm.seconds());
    assert!(
        tail.tone_share(440.0) > 0.8,
        "baresip should hear its 440 Hz back: share {}, rms {}",
        tail.tone_share(440.0),
        tail.rms()
    );
    assert!(tail.rms() > 0.05, "level {}", tail.rms());
    daemon.wait_lines(&["call{id=", "answered", "codec=PCMU"], 1, Duration::from_secs(1)).unwrap();
    daemon.wait_lines(&["call{id=", "call ended", "by=remote"], 1, Duration::from_secs(5)).unwrap();
}

#[test]
fn sipp_pcap_audio_is_echoed() {
    let dir = test_dir("daemon_echo_sipp_pcap");
    let daemon = Daemon::start(&dir, ECHO, &[]).unwrap();
    let (sock, scenario) = pcap_caller(Ending::CallerHangsUp, 8000);
    let xml = scenario.write(&dir, "uac_pcap").unwrap();
    let mut sipp = call_echo(&dir, &daemon, &xml);
    let (packets, pts) = count_rtp(&sock, Duration::from_secs(2), Duration::from_secs(20));
    sipp.expect_success(Duration::from_secs(20)).unwrap();
    // g711a.pcap holds 236 PCMA packets of 30 ms; G.711 payloaders may
    // repacketize to 20 ms, so count audio time rather than packets.
    assert_eq!(pts, vec![8], "echo must be PCMA (pt 8)");
    assert!(packets >= 200, "only {packets} RTP packets echoed back of the pcap's 236 (7 s)");
    daemon.wait_lines(&["answered", "codec=PCMA"], 1, Duration::from_secs(1)).unwrap();
}

/// RFC 3264 §6: a phone offering audio, video and a second audio stream
/// gets an answer with three m-lines in the offer's order, the audio one
/// answered and the others refused with port 0; the audio is echoed.
#[test]
fn audio_video_offer_is_answered_with_video_refused_and_audio_flows() {
    let dir = test_dir("daemon_echo_video_refused");
    let daemon = Daemon::start(&dir, ECHO, &[]).unwrap();
    let (sock, mut scenario) = pcap_caller(Ending::CallerHangsUp, 8000);
    scenario.extra_media =
        "m=video 6000 RTP/AVP 96\na=rtpmap:96 H264/90000\na=sendrecv\nm=audio 6002 RTP/AVP 0\na=rtpmap:0 PCMU/8000\n";
    scenario.answer_must_match = Some("m=audio [1-9][0-9]* RTP/AVP 8 .*m=video 0 RTP/AVP 96.*m=audio 0 RTP/AVP 0");
    let xml = scenario.write(&dir, "uac_video").unwrap();
    let mut sipp = call_echo(&dir, &daemon, &xml);
    let (packets, pts) = count_rtp(&sock, Duration::from_secs(2), Duration::from_secs(20));
    sipp.expect_success(Duration::from_secs(20)).unwrap();
    assert_eq!(pts, vec![8], "echo must be PCMA (pt 8)");
    assert!(packets >= 200, "only {packets} RTP packets echoed back of the pcap's 236 (7 s)");
}

#[test]
fn twenty_concurrent_calls_then_503_then_sigterm_byes_everyone() {
    let dir = test_dir("daemon_echo_limit");
    let mut daemon = Daemon::start(&dir, "preset = \"echo\"\n[limits]\nmax_calls = 20\n", &[]).unwrap();
    // 20 calls with pcap audio, held until the daemon hangs up on them.
    let mut scenario = CallerScenario::new(Ending::DaemonHangsUp);
    scenario.pcaps = vec![sipp_pcap("g711a.pcap")];
    scenario.hold_ms = 0;
    let xml = scenario.write(&dir, "uac_held").unwrap();
    let mut twenty = Sipp::new(xml.to_str().unwrap())
        .args(["-s", "echo", "-m", "20", "-l", "20", "-r", "20"])
        .remote(daemon.addr())
        .limit(Duration::from_secs(60))
        .spawn(&dir, "sipp-20")
        .unwrap();
    let started = Instant::now();
    daemon.wait_lines(&["answered"], 20, Duration::from_secs(30)).unwrap();
    let setup = started.elapsed();

    let refused = CallerScenario::new(Ending::Refused(503)).write(&dir, "uac_refused").unwrap();
    let mut one_more =
        Sipp::new(refused.to_str().unwrap()).args(["-s", "echo"]).remote(daemon.addr()).spawn(&dir, "sipp-21").unwrap();
    one_more.expect_success(Duration::from_secs(15)).unwrap();
    daemon.wait_lines(&["call refused", "code=503"], 1, Duration::from_secs(1)).unwrap();

    // Media flows on the held calls (the echo reaches SIPp's media port).
    let connected = daemon.lines_with(&["media", "state=connected"]).len();
    assert!(connected >= 20, "{connected} of 20 calls reported media");

    let status = daemon.terminate(Duration::from_secs(15)).unwrap();
    assert!(status.success(), "daemon exit status {status}");
    // Each of the 20 got our BYE and answered it: SIPp succeeds.
    twenty.expect_success(Duration::from_secs(15)).unwrap();
    assert_eq!(daemon.lines_with(&["call ended by us (BYE)"]).len(), 20, "{}", daemon.log());
    eprintln!("20 calls set up in {setup:?}");
}

#[test]
fn hold_and_resume_reinvites_are_answered_from_the_leg() {
    // tests/sip/uac_hold_info.xml: sendonly re-INVITE must be answered
    // recvonly, then sendrecv again; an INFO digit; the caller hangs up.
    let dir = test_dir("daemon_echo_hold");
    let daemon = Daemon::start(&dir, ECHO, &[]).unwrap();
    let mut sipp = Sipp::new("uac_hold_info.xml")
        .args(["-s", "echo", "-d", "0"])
        .remote(daemon.addr())
        .spawn(&dir, "sipp")
        .unwrap();
    sipp.expect_success(Duration::from_secs(20)).unwrap();
    let answered = daemon.wait_lines(&["new offer answered"], 2, Duration::from_secs(2)).unwrap();
    assert!(answered[0].contains("direction=recvonly") && answered[1].contains("direction=sendrecv"), "{answered:?}");
    daemon.wait_lines(&["dtmf", "digit=5", "via=info"], 1, Duration::from_secs(2)).unwrap();
}

#[test]
fn no_common_codec_is_488_and_options_is_200() {
    let dir = test_dir("daemon_echo_488");
    let daemon = Daemon::start(&dir, ECHO, &[]).unwrap();
    // G.729 only.
    let mut scenario = CallerScenario::new(Ending::Refused(488));
    scenario.formats = "18";
    let xml = scenario.write(&dir, "uac_g729").unwrap();
    let mut sipp = call_echo(&dir, &daemon, &xml);
    sipp.expect_success(Duration::from_secs(15)).unwrap();
    daemon.wait_lines(&["call refused", "code=488"], 1, Duration::from_secs(1)).unwrap();

    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let me = sock.local_addr().unwrap();
    let options = format!(
        "OPTIONS {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKopt1\r\nMax-Forwards: 70\r\nFrom: <sip:probe@127.0.0.1>;tag=o1\r\nTo: <{uri}>\r\nCall-ID: opt1@{me}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
        uri = daemon.uri("echo")
    );
    sock.send_to(options.as_bytes(), daemon.addr()).unwrap();
    let mut buf = [0u8; 4096];
    let (n, _) = sock.recv_from(&mut buf).expect("an answer to OPTIONS");
    let answer = String::from_utf8_lossy(&buf[..n]);
    assert!(answer.starts_with("SIP/2.0 200"), "{answer}");
}

#[test]
fn offerless_invite_gets_our_offer_and_the_ack_answer_sets_up_media() {
    let dir = test_dir("daemon_echo_offerless");
    let daemon = Daemon::start(&dir, ECHO, &[]).unwrap();
    let (sock, mut scenario) = pcap_caller(Ending::CallerHangsUp, 3000);
    scenario.offerless = true;
    scenario.formats = "8 101";
    let xml = scenario.write(&dir, "uac_offerless").unwrap();
    let mut sipp = call_echo(&dir, &daemon, &xml);
    let (packets, pts) = count_rtp(&sock, Duration::from_secs(1), Duration::from_secs(10));
    sipp.expect_success(Duration::from_secs(15)).unwrap();
    daemon.wait_lines(&["media negotiated from the ACK", "codec=PCMA"], 1, Duration::from_secs(1)).unwrap();
    assert_eq!(pts, vec![8], "echo in the codec of the ACK's answer");
    assert!(packets >= 50, "only {packets} RTP packets echoed");
}

#[test]
fn a_call_over_sip_tcp_is_echoed() {
    let dir = test_dir("daemon_echo_tcp");
    // The harness listens on UDP; add a TCP listener.
    let tcp = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap().local_addr().unwrap().port();
    let daemon = Daemon::start(&dir, ECHO, &["--sip-listen", &format!("tcp:127.0.0.1:{tcp}")]).unwrap();
    daemon.wait_lines(&["sipbridge daemon ready", &format!("tcp:127.0.0.1:{tcp}")], 1, Duration::from_secs(1)).unwrap();
    let (sock, scenario) = pcap_caller(Ending::CallerHangsUp, 3000);
    let xml = scenario.write(&dir, "uac_tcp").unwrap();
    let mut sipp = Sipp::new(xml.to_str().unwrap())
        .args(["-s", "echo", "-t", "t1"])
        .remote(format!("127.0.0.1:{tcp}"))
        .spawn(&dir, "sipp")
        .unwrap();
    let (packets, _) = count_rtp(&sock, Duration::from_secs(1), Duration::from_secs(10));
    sipp.expect_success(Duration::from_secs(15)).unwrap();
    assert!(packets >= 50, "only {packets} RTP packets echoed");
}

#[test]
fn a_phone_that_stops_sending_without_bye_is_hung_up_after_the_media_timeout() {
    const TIMEOUT_S: u64 = 3;
    let dir = test_dir("daemon_echo_media_timeout");
    let daemon = Daemon::start(&dir, &format!("{ECHO}[media]\ntimeout = {TIMEOUT_S}\n"), &[]).unwrap();
    // SIPp plays 7 s of audio, then stays silent and waits for our BYE.
    let (sock, scenario) = pcap_caller(Ending::DaemonHangsUp, 0);
    let xml = scenario.write(&dir, "uac_goes_silent").unwrap();
    let mut sipp = Sipp::new(xml.to_str().unwrap())
        .args(["-s", "echo"])
        .remote(daemon.addr())
        .limit(Duration::from_secs(60))
        .spawn(&dir, "sipp")
        .unwrap();
    // The echo stops when the phone's audio does.
    let quiet = Duration::from_millis(300);
    let (packets, _) = count_rtp(&sock, quiet, Duration::from_secs(30));
    let went_silent = Instant::now() - quiet;
    assert!(packets >= 200, "only {packets} packets echoed before the phone went silent");
    daemon.wait_lines(&["call ended by us (BYE)", "media timeout"], 1, Duration::from_secs(TIMEOUT_S + 5)).unwrap();
    let hung_up_after = went_silent.elapsed();
    assert!(
        hung_up_after <= Duration::from_secs(TIMEOUT_S + 2),
        "BYE {hung_up_after:?} after the RTP stopped; media timeout {TIMEOUT_S} s"
    );
    // SIPp got the BYE and answered it.
    sipp.expect_success(Duration::from_secs(10)).unwrap();
}
