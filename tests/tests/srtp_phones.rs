//! SDES-SRTP and SIP over TLS with real phones, one call after another
//! (the packet capture sees the whole namespace):
//! - baresip (its `srtp` module) calls the echo preset offering SRTP as
//!   `RTP/SAVP` (`mediaenc=srtp-mand`) and inside `RTP/AVP`
//!   (`mediaenc=srtp`), and calls the play preset (audio encrypted by the
//!   pipeline's sink, not the relay): each caller hears the tone, and a
//!   capture on the wire holds RTP both ways of which none decodes to the
//!   tone; a plain call first shows the capture would have found it;
//! - a `media.srtp = "mandatory"` daemon answers a plain offer 488 and takes
//!   the SRTP call right after;
//! - baresip over SIP-TLS to a `tls:` listener, SRTP mandatory both sides;
//! - the daemon registered over TLS at Kamailio receives baresip's SRTP call
//!   over that TLS flow;
//! - linphone with `media_encryption=srtp` (mandatory) calls the echo preset.

use e2e::audio::{tone, ulaw_decode, write_wav, Pcm};
use e2e::baresip::{Baresip, BaresipAccount, BaresipOptions};
use e2e::capture::{Datagram, UdpCapture};
use e2e::certs::self_signed_cert;
use e2e::daemon::{CallerScenario, Daemon, Ending};
use e2e::kamailio::{Kamailio, KamailioOptions};
use e2e::linphone::Linphone;
use e2e::process::{free_tcp_port, free_udp_port, test_dir};
use e2e::sipp::Sipp;
use std::collections::BTreeMap;
use std::net::SocketAddrV4;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn caller(dir: &Path, wav: PathBuf, params: &str, extra_config: &str) -> Baresip {
    Baresip::start_with_config(
        dir,
        &BaresipOptions {
            accounts: vec![BaresipAccount::direct("sip:alice@127.0.0.1", params)],
            play: Some(wav),
            record: true,
            limit: Duration::from_secs(60),
        },
        extra_config,
    )
    .unwrap()
}

fn heard(b: &Baresip) -> Pcm {
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let dec = std::fs::read_dir(&b.rec_dir).unwrap().flatten().map(|e| e.path()).find(|p| {
            p.to_string_lossy().ends_with("dec.wav") && std::fs::metadata(p).map(|m| m.len() > 44).unwrap_or(false)
        });
        if let Some(p) = dec {
            return e2e::audio::read_wav(&p).unwrap();
        }
        assert!(Instant::now() < until, "baresip recorded nothing in {}", b.rec_dir.display());
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// PCMU-looking datagrams of the capture, per (source, destination), their
/// payloads decoded as µ-law after a 12-byte header, as an observer would.
fn pcmu_streams(capture: &[Datagram]) -> BTreeMap<(SocketAddrV4, SocketAddrV4), Pcm> {
    let mut streams: BTreeMap<(SocketAddrV4, SocketAddrV4), Pcm> = BTreeMap::new();
    for d in capture.iter().filter(|d| d.rtp_payload_type() == Some(0)) {
        let pcm = streams.entry((d.source, d.destination)).or_insert_with(|| Pcm { rate: 8000, samples: Vec::new() });
        pcm.samples.extend(d.payload[12..].iter().map(|b| ulaw_decode(*b)));
    }
    streams
}

struct Call {
    heard: Pcm,
    streams: BTreeMap<(SocketAddrV4, SocketAddrV4), Pcm>,
    /// INVITEs seen in plain text in UDP datagrams.
    plain_invites: usize,
}

/// baresip dials `uri` with the account `params`, plays `wav` until it ends
/// (baresip then hangs up), while the wire is captured.
fn call(dir: &Path, uri: &str, wav: &Path, params: &str, closes: Duration) -> Call {
    call_configured(dir, uri, wav, params, "", closes)
}

/// [`call`] with more baresip `config` lines.
fn call_configured(dir: &Path, uri: &str, wav: &Path, params: &str, extra_config: &str, closes: Duration) -> Call {
    std::fs::create_dir_all(dir).unwrap();
    let b = caller(dir, wav.to_path_buf(), params, extra_config);
    let capture = UdpCapture::start().unwrap();
    b.command("dial", uri).unwrap();
    b.wait_event("call", "CALL_ESTABLISHED", Duration::from_secs(10)).unwrap();
    b.wait_event("call", "CALL_CLOSED", closes).unwrap();
    let captured = capture.finish();
    let plain_invites = captured.iter().filter(|d| d.payload.starts_with(b"INVITE ")).count();
    Call { heard: heard(&b), streams: pcmu_streams(&captured), plain_invites }
}

fn assert_hears(call: &Call, freq: f64, what: &str) {
    let tail = call.heard.slice(1.0, call.heard.seconds() - 0.3);
    assert!(tail.seconds() > 1.5, "{what}: recording too short: {} s", call.heard.seconds());
    assert!(tail.tone_share(freq) > 0.8, "{what}: caller should hear {freq} Hz: share {}", tail.tone_share(freq));
}

/// Both directions on the wire, each with packets, none carrying the tone.
fn assert_wire_is_encrypted(call: &Call, freq: f64, what: &str) {
    assert_eq!(call.streams.len(), 2, "{what}: RTP both ways on the wire: {:?}", call.streams.keys());
    for (flow, pcm) in &call.streams {
        assert!(pcm.seconds() > 1.5, "{what}: {flow:?} carried only {} s of packets", pcm.seconds());
        let share = pcm.tone_share(freq);
        assert!(share < 0.05, "{what}: {flow:?} decodes to the {freq} Hz tone (share {share}): not encrypted");
    }
}

/// One test: the capture sees the whole namespace, so calls must not overlap.
#[test]
fn baresip_srtp_calls_are_heard_and_encrypted_on_the_wire() {
    let dir = test_dir("srtp_phones");
    let daemon = Daemon::start(&dir, "preset = \"echo\"\n", &[]).unwrap();
    let wav = dir.join("tone.wav");
    write_wav(&wav, &tone(440.0, 4.0, 8000, 0.3)).unwrap();
    let uri = daemon.uri("echo");

    let closes = Duration::from_secs(15);
    let plain = call(&dir.join("plain"), &uri, &wav, "", closes);
    assert_hears(&plain, 440.0, "plain");
    assert_eq!(plain.plain_invites, 1, "control: the capture sees SIP over UDP");
    assert_eq!(plain.streams.len(), 2, "plain: RTP both ways on the wire");
    for (flow, pcm) in &plain.streams {
        assert!(pcm.tone_share(440.0) > 0.5, "control: plain RTP {flow:?} shows the tone on the wire");
    }

    let mandatory = call(&dir.join("savp"), &uri, &wav, ";mediaenc=srtp-mand", closes);
    assert_hears(&mandatory, 440.0, "srtp-mand");
    assert_wire_is_encrypted(&mandatory, 440.0, "srtp-mand");

    let best_effort = call(&dir.join("avp"), &uri, &wav, ";mediaenc=srtp", closes);
    assert_hears(&best_effort, 440.0, "srtp in RTP/AVP");
    assert_wire_is_encrypted(&best_effort, 440.0, "srtp in RTP/AVP");

    daemon.wait_lines(&["SRTP", "AES_CM_128_HMAC_SHA1_80"], 2, Duration::from_secs(2)).unwrap();
    assert_every_packet_opened(&daemon);

    the_play_preset_reaches_an_srtp_caller_through_the_pipeline(&dir.join("play"));
    a_mandatory_daemon_refuses_plain_offers_with_488_and_takes_srtp_ones(&dir.join("mandatory"), &wav);
    sip_over_tls_with_srtp_mandatory(&dir.join("tls"), &wav);
    registered_over_tls_at_kamailio(&dir.join("kamailio-tls"), &wav);
    linphone_with_srtp_mandatory(&dir.join("linphone"), &uri, &wav);
    assert_every_packet_opened(&daemon);
}

/// linphone (`media_encryption=srtp`, mandatory: it offers RTP/SAVP with
/// AES_CM and AES_256_CM suites) calls the echo preset with Opus and hears
/// its tone back.
fn linphone_with_srtp_mandatory(dir: &Path, uri: &str, wav: &Path) {
    let rc = format!(
        "[sip]\nmedia_encryption=srtp\nmedia_encryption_mandatory=1\n[rtp]\naudio_rtp_port={}\n[sound]\nechocancellation=0\n",
        free_udp_port()
    );
    let mut phone = Linphone::start(dir, &rc);
    phone.send("soundcard use files");
    phone.send(&format!("ports sip {}", free_udp_port()));
    phone.wait_debug_log("Creating listening point");
    let heard = dir.join("heard.wav");
    phone.send(&format!("play {}", wav.display()));
    phone.send(&format!("record {}", heard.display()));
    phone.send(&format!("call {uri}"));
    phone.child.wait_for_log("Media streams established", Duration::from_secs(10)).unwrap();
    std::thread::sleep(Duration::from_secs(4));
    phone.send("terminate");
    phone.child.wait_for_log("ended", Duration::from_secs(5)).unwrap();
    phone.send("quit");
    let pcm = e2e::audio::read_wav(&heard).unwrap();
    let tail = pcm.slice(1.0, 3.5);
    assert!(tail.tone_share(440.0) > 0.8, "linphone hears its tone back: share {}", tail.tone_share(440.0));
    let offer = std::fs::read_to_string(&phone.debug_log).unwrap();
    assert!(offer.contains("RTP/SAVP"), "linphone offered SRTP as RTP/SAVP");
}

/// The daemon as a TLS client: it registers over TLS at Kamailio, whose
/// certificate it checks against `sip.tls_ca`, and the call baresip makes
/// to its AOR reaches it over TLS; SRTP mandatory on both phones' sides.
fn registered_over_tls_at_kamailio(dir: &Path, wav: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let mut opts = KamailioOptions::new("example.test", &[("echo", "echo-pw"), ("bob", "b-pw")]);
    opts.tls = true;
    let k = Kamailio::start(dir, &opts).unwrap();
    let (cert, key) = (dir.join("kamailio-cert.pem"), dir.join("kamailio-key.pem"));
    std::fs::write(&cert, k.tls_cert_pem.as_ref().unwrap()).unwrap();
    std::fs::write(&key, k.tls_key_pem.as_ref().unwrap()).unwrap();
    let config = format!(
        "preset = \"echo\"\n[sip]\ntls_cert = \"{cert}\"\ntls_key = \"{key}\"\ntls_ca = \"{cert}\"\n\
         [media]\nsrtp = \"mandatory\"\n\n[[account]]\naor = \"{aor}\"\nproxy = \"{proxy}\"\npassword = \"echo-pw\"\n",
        cert = cert.display(),
        key = key.display(),
        aor = k.aor("echo"),
        proxy = k.proxy_uri("tls"),
    );
    let listen = format!("tls:127.0.0.1:{}", free_tcp_port());
    let daemon = Daemon::start(dir, &config, &["--sip-listen", &listen]).unwrap();
    daemon.wait_lines(&["account{aor=sip:echo@example.test}", "registered"], 1, Duration::from_secs(10)).unwrap();

    let mut bob = k.baresip_account("bob", "b-pw", false);
    bob.params = ";mediaenc=srtp-mand".into();
    let b = Baresip::start(
        dir,
        &BaresipOptions {
            accounts: vec![bob],
            play: Some(wav.to_path_buf()),
            record: true,
            limit: Duration::from_secs(60),
        },
    )
    .unwrap();
    b.wait_registered(1, Duration::from_secs(10)).unwrap();
    let capture = UdpCapture::start().unwrap();
    b.command("dial", &k.aor("echo")).unwrap();
    b.wait_event("call", "CALL_ESTABLISHED", Duration::from_secs(10)).unwrap();
    b.wait_event("call", "CALL_CLOSED", Duration::from_secs(15)).unwrap();
    let captured = capture.finish();
    let to_daemon_over_udp = captured.iter().filter(|d| d.destination.port() == daemon.sip_port).count();
    assert_eq!(to_daemon_over_udp, 0, "Kamailio reached the daemon over UDP, not over the TLS registration");
    assert!(captured.iter().any(|d| d.payload.starts_with(b"INVITE sip:echo@")), "control: baresip's INVITE seen");
    let streams = pcmu_streams(&captured);
    let call = Call { heard: heard(&b), streams, plain_invites: 0 };
    assert_wire_is_encrypted(&call, 440.0, "through Kamailio over TLS");
    let pcm = call.heard;
    let tail = pcm.slice(1.0, pcm.seconds() - 0.3);
    assert!(tail.tone_share(440.0) > 0.8, "bob hears himself through Kamailio and TLS: {}", tail.tone_share(440.0));
    let log = k.log();
    assert!(log.lines().any(|l| l.contains("REQ REGISTER") && l.contains("(tls)")), "no REGISTER over TLS:\n{log}");
    daemon.wait_lines(&["SRTP", "AES_CM_128_HMAC_SHA1_80"], 1, Duration::from_secs(1)).unwrap();
    assert_every_packet_opened(&daemon);
}

/// SIP over TLS (the daemon's `tls:` listener with a certificate made for
/// the test) and SRTP mandatory on both sides. baresip 1.0 does not verify
/// server certificates (it has no `sip_verify_server`), so the untrusted
/// certificate case is tested from our side as a client (tests/sip_tls.rs).
fn sip_over_tls_with_srtp_mandatory(dir: &Path, wav: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    self_signed_cert(&cert, &key).unwrap();
    let tls_port = free_tcp_port();
    let config = format!(
        "preset = \"echo\"\n[sip]\ntls_cert = \"{}\"\ntls_key = \"{}\"\n[media]\nsrtp = \"mandatory\"\n",
        cert.display(),
        key.display()
    );
    let listen = format!("tls:127.0.0.1:{tls_port}");
    let daemon = Daemon::start(dir, &config, &["--sip-listen", &listen]).unwrap();
    let uri = format!("sip:echo@127.0.0.1:{tls_port};transport=tls");

    let secure =
        call_configured(&dir.join("call"), &uri, wav, ";mediaenc=srtp-mand", &cafile(&cert), Duration::from_secs(15));
    assert_hears(&secure, 440.0, "SIP-TLS + SRTP");
    assert_eq!(secure.plain_invites, 0, "the INVITE went over TLS, not UDP");
    assert_wire_is_encrypted(&secure, 440.0, "SIP-TLS + SRTP");
    daemon.wait_lines(&["answered"], 1, Duration::from_secs(1)).unwrap();
    assert_every_packet_opened(&daemon);
}

fn cafile(cert: &Path) -> String {
    format!("sip_cafile\t\t{}\n", cert.display())
}

/// `media.srtp = "mandatory"`: SIPp's plain offer gets 488, baresip's SRTP
/// call right after is answered and heard.
fn a_mandatory_daemon_refuses_plain_offers_with_488_and_takes_srtp_ones(dir: &Path, wav: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let daemon = Daemon::start(dir, "preset = \"echo\"\n[media]\nsrtp = \"mandatory\"\n", &[]).unwrap();
    let xml = CallerScenario::new(Ending::Refused(488)).write(dir, "uac_plain").unwrap();
    let mut sipp =
        Sipp::new(xml.to_str().unwrap()).args(["-s", "echo"]).remote(daemon.addr()).spawn(dir, "sipp").unwrap();
    sipp.expect_success(Duration::from_secs(15)).unwrap();
    daemon.wait_lines(&["call refused", "code=488"], 1, Duration::from_secs(1)).unwrap();
    assert!(!daemon.lines_with(&["a=crypto"]).iter().any(|l| l.contains("inline:")), "keys stay out of the log");
    let secure = call(&dir.join("call"), &daemon.uri("echo"), wav, ";mediaenc=srtp-mand", Duration::from_secs(15));
    assert_hears(&secure, 440.0, "srtp-mand after a refusal");
    assert_wire_is_encrypted(&secure, 440.0, "srtp-mand after a refusal");
}

/// The play preset's audio leaves through rtpbin and multiudpsink, not the relay.
fn the_play_preset_reaches_an_srtp_caller_through_the_pipeline(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let file = dir.join("announcement.wav");
    write_wav(&file, &tone(850.0, 3.0, 8000, 0.3)).unwrap();
    let config = format!("preset = \"play\"\n[play]\nfile = \"{}\"\n", file.display());
    let daemon = Daemon::start(dir, &config, &[]).unwrap();
    let wav = dir.join("tone.wav");
    write_wav(&wav, &tone(440.0, 20.0, 8000, 0.3)).unwrap();
    let played =
        call(&dir.join("call"), &daemon.uri("announcement"), &wav, ";mediaenc=srtp-mand", Duration::from_secs(10));
    let part = played.heard.slice(0.5, 2.5);
    assert!(part.tone_share(850.0) > 0.8, "the caller hears the file: share {}", part.tone_share(850.0));
    assert_wire_is_encrypted(&played, 850.0, "play");
    for (flow, pcm) in &played.streams {
        assert!(pcm.tone_share(440.0) < 0.05, "{flow:?} carries the caller's tone in the clear");
    }
    assert_every_packet_opened(&daemon);
}

/// Every SRTP and SRTCP packet authenticated, but for the one plain RTCP
/// APP packet (16 bytes, "PING") baresip sends as its stream starts, which
/// an SRTP receiver must drop.
fn assert_every_packet_opened(daemon: &Daemon) {
    let dropped = daemon.lines_with(&["SRTP packet dropped"]);
    let unexpected: Vec<_> = dropped.iter().filter(|l| !(l.contains("rtcp=true") && l.contains("len=16"))).collect();
    assert!(unexpected.is_empty(), "packets that did not open: {unexpected:#?}");
}
