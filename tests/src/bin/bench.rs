//! `make bench`: what a call costs in `sipbridge`, measured on loopback in
//! one run and printed as a table (and written to target/bench.json).
//!
//! A call joins leg A, a plain RTP peer sending PCMU (the SIP side), to leg
//! B. The load generator is this program, in one thread: plain UDP sockets
//! for RTP legs and, for WebRTC legs, lightweight `str0m` WebRTC clients
//! (`e2e::webrtc_load`: ICE, DTLS-SRTP, one socket each), all replaying
//! payloads that GStreamer's own encoders made (captured once at start), 50
//! packets a second per stream. Leg A sends a 440 Hz tone, leg B 1000 Hz.
//! Every call's audio is checked on both legs: packets must arrive, and what
//! arrives must decode (PCMU, or Opus through libopus) to the other leg's
//! tone, so a fast but broken run cannot pass.
//!
//! Modes: passthrough (PCMU <-> PCMU: no decoding) and transcoded (PCMU <->
//! Opus: decode, resample, encode each way), each with leg B as plain RTP
//! (the lean comparison) and as a WebRTC peer offering like a browser (the
//! issue's transcoded mode is "Opus WebRTC leg <-> PCMU SIP leg").
//! The jitter modes repeat the four with leg A sending in bursts (packets
//! held 100-250 ms, then sent at once) and losing 2% (`e2e::bursty`); their
//! rows add the share of leg A's packets that reached leg B. The SDES-SRTP
//! mode is the plain passthrough with both legs keyed by `a=crypto`
//! (AES_CM_128_HMAC_SHA1_80, `e2e::sdes`): the relay's decrypt, rewrite and
//! encrypt, against the same row in plain RTP.
//! Systems: sipbridge (`sipbridge stdio`; on WebRTC modes also as
//! sipbridge-lean, its WebRTC sessions on the lean leg), rtpengine (userspace, ng) and,
//! on the passthrough WebRTC mode only, the Janus gateway's SIP plugin
//! (`e2e::janus`: it does not transcode);
//! another system plugs in by implementing [`System`].
//! Also measured: the codec floor (the same GStreamer elements in one
//! gst-launch pipeline, no network), call-setup time (first request to audio
//! both ways), resident memory and threads per call, the generator's own CPU,
//! added latency, and how evenly `session.play` paces its packets.

use anyhow::{bail, Context, Result};
use e2e::audio::{ulaw_decode, Pcm};
use e2e::bridge::{rtp_address, Bridge};
use e2e::bursty::Bursts;
use e2e::pacing::Pacing;
use e2e::process::{status_field, test_dir, workspace_root};
use e2e::rtp_peer::rtp_payload;
use e2e::sdes::{MasterKey, Srtp};
use e2e::webrtc_load::{self, Audio, Client};
use serde_json::json;
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

const PTIME: Duration = Duration::from_millis(20);
const MEASURE: Duration = Duration::from_secs(10);
/// Below this share of on-time ticks the generator itself fell behind.
const OVERLOADED_BELOW: f64 = 0.99;
const WARMUP: Duration = Duration::from_secs(2);
const TONE_A: f64 = 440.0; // what leg A (plain RTP, PCMU) sends
const TONE_B: f64 = 1000.0; // what leg B sends
/// Longest a call may take from first request to audio both ways.
const SETUP_LIMIT: Duration = Duration::from_secs(10);
/// Most payloads an RTP leg keeps for the tone check (4 s).
const KEEP_PACKETS: usize = 200;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Codec {
    Pcmu,
    Opus,
}

impl Codec {
    fn pt(self) -> u8 {
        match self {
            Codec::Pcmu => 0,
            Codec::Opus => 111,
        }
    }

    /// A plain RTP offer (or answer) for one leg receiving on `port`;
    /// SDES-SRTP (`RTP/SAVP` with `a=crypto`) when it has a key.
    fn sdp(self, port: u16, key: Option<&MasterKey>) -> String {
        let map = match self {
            Codec::Pcmu => "a=rtpmap:0 PCMU/8000\r\n".to_string(),
            Codec::Opus => "a=rtpmap:111 opus/48000/2\r\n".to_string(),
        };
        let (profile, crypto) = match key {
            Some(key) => ("RTP/SAVP", key.crypto_line()),
            None => ("RTP/AVP", String::new()),
        };
        format!("v=0\r\no=gen 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {port} {profile} {}\r\n{map}a=ptime:20\r\n{crypto}", self.pt())
    }

    fn name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Opus => "OPUS",
        }
    }

    fn audio(self) -> Audio {
        match self {
            Codec::Pcmu => Audio::Pcmu,
            Codec::Opus => Audio::Opus,
        }
    }

    fn clock_step(self) -> u32 {
        match self {
            Codec::Pcmu => 160,
            Codec::Opus => 960,
        }
    }
}

/// How leg B reaches the system under test.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Transport {
    Rtp,
    WebRtc,
}

/// One bench mode: leg A is always plain RTP sending PCMU.
struct Mode {
    name: &'static str,
    b: Codec,
    transport: Transport,
    /// Leg A sends in bursts and loses 2% (`e2e::bursty`), as some phones
    /// and apps do: what reaches leg B is counted as a share of what A sent.
    jitter: bool,
    /// Both plain RTP legs are SDES-SRTP.
    srtp: bool,
}

impl Mode {
    const fn new(name: &'static str, b: Codec, transport: Transport, jitter: bool) -> Mode {
        Mode { name, b, transport, jitter, srtp: false }
    }

    const fn sdes(mut self) -> Mode {
        self.srtp = true;
        self
    }

    /// The loads a mode runs at unless BENCH_CALLS says otherwise: up to
    /// where each system stops holding real time (plain RTP relays hold
    /// 100 calls easily, WebRTC legs cost more); the jitter mode is about
    /// delivery, not load.
    fn default_levels(&self) -> &'static [usize] {
        match (self.jitter, self.transport) {
            (true, _) => &[1, 10],
            (false, Transport::Rtp) if self.srtp => &[1, 10, 50, 100],
            (false, Transport::Rtp) => &[1, 10, 50, 100, 200],
            (false, Transport::WebRtc) => &[1, 10, 50, 100, 150],
        }
    }
}

const MODES: [Mode; 9] = [
    Mode::new("passthrough PCMU<->PCMU", Codec::Pcmu, Transport::Rtp, false),
    Mode::new("passthrough SDES-SRTP PCMU<->PCMU", Codec::Pcmu, Transport::Rtp, false).sdes(),
    Mode::new("transcoded PCMU<->Opus", Codec::Opus, Transport::Rtp, false),
    Mode::new("passthrough WebRTC-PCMU<->PCMU", Codec::Pcmu, Transport::WebRtc, false),
    Mode::new("transcoded WebRTC-Opus<->PCMU", Codec::Opus, Transport::WebRtc, false),
    Mode::new("jitter passthrough PCMU<->PCMU", Codec::Pcmu, Transport::Rtp, true),
    Mode::new("jitter transcoded PCMU<->Opus", Codec::Opus, Transport::Rtp, true),
    Mode::new("jitter passthrough WebRTC-PCMU<->PCMU", Codec::Pcmu, Transport::WebRtc, true),
    Mode::new("jitter transcoded WebRTC-Opus<->PCMU", Codec::Opus, Transport::WebRtc, true),
];

/// The bursty schedule of the jitter mode's leg A, long enough for any run
/// (5 minutes of packets; later packets go out as they are made).
fn jitter_schedule() -> Arc<Bursts> {
    static SCHEDULE: std::sync::OnceLock<Arc<Bursts>> = std::sync::OnceLock::new();
    SCHEDULE.get_or_init(|| Arc::new(Bursts::new(15_000, PTIME))).clone()
}

/// Captured RTP payloads, one per packet time.
type Packets = Arc<Vec<Vec<u8>>>;

/// The captured payloads: (codec, tone) -> packets.
struct Payloads(Vec<(Codec, f64, Packets)>);

impl Payloads {
    fn get(&self, codec: Codec, tone: f64) -> Packets {
        self.0.iter().find(|(c, t, _)| *c == codec && *t == tone).map(|(_, _, p)| p.clone()).expect("captured payloads")
    }
}

/// One plain RTP leg of the generator: sends recorded payloads, receives
/// what the system sends.
struct Stream {
    socket: UdpSocket,
    to: SocketAddr,
    codec: Codec,
    payloads: Arc<Vec<Vec<u8>>>,
    next: usize,
    seq: u16,
    ts: u32,
    ssrc: u32,
    /// Bursty sending (the jitter mode): the schedule, how many packets
    /// were made, and the ones held back (index, packet).
    bursts: Option<Arc<Bursts>>,
    made: usize,
    held: std::collections::VecDeque<(usize, Vec<u8>)>,
    sent: u64,
    received: u64,
    first_rx: Option<Instant>,
    /// Payloads received while measuring (bounded), for the tone check.
    heard: Vec<Vec<u8>>,
    /// SDES-SRTP: what this leg sends, and what it receives.
    srtp: Option<Box<(Srtp, Srtp)>>,
}

impl Stream {
    /// Makes one packet time's packet (called once per tick) and sends it,
    /// or in the jitter mode, sends what the burst schedule releases now.
    fn send(&mut self) {
        let payload = &self.payloads[self.next % self.payloads.len()];
        self.next += 1;
        let mut packet = Vec::with_capacity(12 + payload.len());
        packet.extend_from_slice(&[0x80, self.codec.pt()]);
        packet.extend_from_slice(&self.seq.to_be_bytes());
        packet.extend_from_slice(&self.ts.to_be_bytes());
        packet.extend_from_slice(&self.ssrc.to_be_bytes());
        packet.extend_from_slice(payload);
        self.seq = self.seq.wrapping_add(1);
        self.ts = self.ts.wrapping_add(self.codec.clock_step());
        let Some(bursts) = self.bursts.clone() else { return self.transmit(&packet) };
        // The stream's own ticks are its clock: packet i is made at tick i.
        let made = self.made;
        self.made += 1;
        if !Bursts::lost(made) {
            self.held.push_back((made, packet));
        }
        let now = PTIME * made as u32;
        while let Some((i, _)) = self.held.front() {
            if *i < bursts.len() && bursts.release(*i) > now {
                break;
            }
            let (_, packet) = self.held.pop_front().expect("just seen");
            self.transmit(&packet);
        }
    }

    fn transmit(&mut self, packet: &[u8]) {
        match self.srtp.as_mut().map(|srtp| srtp.0.protect(packet)) {
            Some(Ok(sealed)) => drop(self.socket.send_to(&sealed, self.to)),
            Some(Err(_)) => return,
            None => drop(self.socket.send_to(packet, self.to)),
        }
        self.sent += 1;
    }

    fn drain(&mut self, buf: &mut [u8], keep_audio: bool) {
        while let Ok((n, _)) = self.socket.recv_from(buf) {
            if n < 12 || buf[0] >> 6 != 2 || (200..=204).contains(&buf[1]) {
                continue; // RTCP
            }
            let opened;
            let packet = match self.srtp.as_mut() {
                Some(srtp) => match srtp.1.unprotect(&buf[..n]) {
                    Some(plain) => {
                        opened = plain;
                        &opened[..]
                    }
                    None => continue, // does not authenticate: not received
                },
                None => &buf[..n],
            };
            self.received += 1;
            self.first_rx.get_or_insert_with(Instant::now);
            if keep_audio && self.heard.len() < KEEP_PACKETS {
                if let Some(payload) = rtp_payload(packet) {
                    if self.heard.is_empty() && std::env::var_os("BENCH_DEBUG").is_some() {
                        eprintln!("bench: first packet kept: {:02x?}", &packet[..packet.len().min(48)]);
                    }
                    self.heard.push(payload.to_vec());
                }
            }
        }
    }
}

/// One leg of a call as the generator sees it.
enum Leg {
    Rtp(Stream),
    WebRtc(Box<Client>),
}

impl Leg {
    fn send(&mut self) {
        match self {
            Leg::Rtp(s) => s.send(),
            Leg::WebRtc(c) => c.send_frame(),
        }
    }

    fn service(&mut self, buf: &mut [u8], keep_audio: bool) {
        match self {
            Leg::Rtp(s) => s.drain(buf, keep_audio),
            Leg::WebRtc(c) => {
                c.keep_audio(keep_audio);
                c.service(buf);
            }
        }
    }

    fn received(&self) -> u64 {
        match self {
            Leg::Rtp(s) => s.received,
            Leg::WebRtc(c) => c.received,
        }
    }

    /// Packets sent (counted for plain RTP legs, the jitter mode's senders).
    fn sent(&self) -> u64 {
        match self {
            Leg::Rtp(s) => s.sent,
            Leg::WebRtc(_) => 0,
        }
    }

    fn first_rx(&self) -> Option<Instant> {
        match self {
            Leg::Rtp(s) => s.first_rx,
            Leg::WebRtc(c) => c.first_rx,
        }
    }

    /// What it heard, decoded; the codec it receives.
    fn heard(&self) -> Result<Pcm> {
        match self {
            Leg::Rtp(s) => webrtc_load::decode(s.codec.audio(), &s.heard),
            Leg::WebRtc(c) => c.heard(),
        }
    }

    /// Why a WebRTC leg is dead, if it is.
    fn error(&self) -> Option<String> {
        match self {
            Leg::Rtp(_) => None,
            Leg::WebRtc(c) => c.error.clone().map(|e| format!("{e} ({})", c.state())),
        }
    }
}

/// Captures `count` RTP payloads from a gst-launch encoder.
fn capture_payloads(dir: &Path, codec: Codec, hz: f64, count: usize) -> Result<Vec<Vec<u8>>> {
    capture(dir, codec, &format!("wave=sine freq={hz} volume=0.3"), count)
}

/// Captures `count` RTP payloads of `codec` from `audiotestsrc WAVE`.
fn capture(dir: &Path, codec: Codec, wave: &str, count: usize) -> Result<Vec<Vec<u8>>> {
    let socket = UdpSocket::bind("127.0.0.1:0")?;
    socket.set_read_timeout(Some(Duration::from_secs(10)))?;
    let port = socket.local_addr()?.port();
    let enc = match codec {
        Codec::Pcmu => {
            "audio/x-raw,rate=8000,channels=1 ! mulawenc ! rtppcmupay pt=0 min-ptime=20000000 max-ptime=20000000"
        }
        Codec::Opus => "audio/x-raw,rate=48000,channels=1 ! opusenc bitrate=32000 frame-size=20 ! rtpopuspay pt=111",
    };
    let pipeline = format!(
        "audiotestsrc is-live=true {wave} ! audioconvert ! audioresample ! {enc} ! udpsink host=127.0.0.1 port={port}"
    );
    let name = format!(
        "capture-{codec:?}-{}",
        wave.split_whitespace().take(2).collect::<Vec<_>>().join("-").replace("wave=", "").replace("freq=", "")
    );
    let _gen = e2e::rtp_peer::gst_launch(dir, &name, &pipeline)?;
    let mut buf = [0u8; 2048];
    let mut payloads = Vec::new();
    while payloads.len() < count {
        let n = socket.recv(&mut buf).context("capturing encoder output")?;
        payloads.push(buf[12..n].to_vec());
    }
    Ok(payloads)
}

fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    let ticks: f64 = fields.get(11).and_then(|u| u.parse::<f64>().ok()).unwrap_or(0.0)
        + fields.get(12).and_then(|s| s.parse::<f64>().ok()).unwrap_or(0.0);
    ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

/// A system under test: how it sets up and ends the bench's calls. The
/// generator does the rest (sending, receiving, checking), the same for
/// every system.
trait System {
    fn name(&self) -> &'static str;
    /// The process whose CPU, memory and threads are measured.
    fn pid(&mut self) -> u32;
    /// Plain RTP on both legs. `a` and `b` are each leg's codec and its
    /// SDP (where the generator receives, and its SDES key if any). Returns
    /// the SDP each of leg A and leg B gets back, in that order: where it
    /// must send, and the key of what it receives.
    fn rtp_call(&mut self, call: usize, a: (Codec, &str), b: (Codec, &str)) -> Result<[String; 2]>;
    /// Leg B is a WebRTC peer offering `webrtc.1` (one codec, `webrtc.0`),
    /// leg A plain RTP described by `rtp.1`. Returns the answer for the
    /// WebRTC peer and where leg A must send its RTP.
    fn webrtc_call(&mut self, call: usize, webrtc: (Codec, &str), rtp: (Codec, &str)) -> Result<(String, SocketAddr)>;
    /// Ends the `calls` calls of this run (and the process, if it is per run).
    fn finish(&mut self, calls: usize) -> Result<()>;
}

/// `sipbridge stdio`, one process per run: each call is two sessions
/// joined by `session.connect`. `lean`: its WebRTC sessions are the lean
/// leg (`webrtcLeg: "lean"`) instead of webrtcbin; shown as sipbridge-lean.
struct Sipbridge {
    bridge: Bridge,
    lean: bool,
}

impl Sipbridge {
    fn start(dir: &Path, lean: bool) -> Result<Sipbridge> {
        Ok(Sipbridge { bridge: Bridge::start(dir, &[])?, lean })
    }

    /// A session of `kind` answering `offer`; returns it and the answer.
    fn answer(&self, kind: &str, codec: Codec, offer: &str) -> Result<(String, String)> {
        let t0 = Instant::now();
        let mut options = json!({ "codecs": [codec.name()] });
        if self.lean && kind == "webrtc" {
            options["webrtcLeg"] = json!("lean");
        }
        let s = self.bridge.create(kind, options)?;
        let t1 = Instant::now();
        self.bridge.set_remote(&s, "offer", offer)?;
        let t2 = Instant::now();
        let (_, answer) = self.bridge.local_description(&s)?;
        if std::env::var_os("BENCH_DEBUG").is_some() {
            let ms = |a: Instant, b: Instant| (b - a).as_secs_f64() * 1000.0;
            eprintln!(
                "bench: sipbridge {kind} session: create {:.1} ms, setRemoteDescription {:.1} ms, getLocalDescription {:.1} ms",
                ms(t0, t1),
                ms(t1, t2),
                ms(t2, Instant::now())
            );
        }
        Ok((s, answer))
    }

    fn connect(&self, call: usize, a: &str, b: &str, passthrough: bool) -> Result<()> {
        let linked = self.bridge.call("session.connect", json!({ "a": a, "b": b }))?;
        if linked["passthrough"] != json!(passthrough) {
            bail!("call {call}: passthrough {} but expected {passthrough}", linked["passthrough"]);
        }
        Ok(())
    }
}

impl System for Sipbridge {
    fn name(&self) -> &'static str {
        if self.lean {
            "sipbridge-lean"
        } else {
            "sipbridge"
        }
    }

    fn pid(&mut self) -> u32 {
        self.bridge.io.child().pid()
    }

    fn rtp_call(&mut self, call: usize, a: (Codec, &str), b: (Codec, &str)) -> Result<[String; 2]> {
        let (sa, answer_a) = self.answer("rtp", a.0, a.1)?;
        let (sb, answer_b) = self.answer("rtp", b.0, b.1)?;
        self.connect(call, &sa, &sb, a.0 == b.0)?;
        Ok([answer_a, answer_b])
    }

    fn webrtc_call(&mut self, call: usize, webrtc: (Codec, &str), rtp: (Codec, &str)) -> Result<(String, SocketAddr)> {
        let (sa, answer_a) = self.answer("rtp", rtp.0, rtp.1)?;
        let (sb, answer_b) = self.answer("webrtc", webrtc.0, webrtc.1)?;
        self.connect(call, &sa, &sb, webrtc.0 == rtp.0)?;
        Ok((answer_b, rtp_address(&answer_a)))
    }

    fn finish(&mut self, _calls: usize) -> Result<()> {
        self.bridge.io.close_stdin();
        let _ = self.bridge.io.child().wait_timeout(Duration::from_secs(20));
        Ok(())
    }
}

/// The Janus gateway's SIP plugin (one process for the whole bench:
/// `e2e::janus`): each call is one SIP plugin handle, the WebRTC leg
/// offering, calling the bench's own SIP UAS, which answers with leg A's
/// socket. Janus relays without transcoding: passthrough WebRTC calls only.
struct JanusSystem<'a> {
    relay: &'a e2e::janus::JanusCalls,
    calls: Vec<e2e::janus::JanusCall>,
}

impl System for JanusSystem<'_> {
    fn name(&self) -> &'static str {
        "janus"
    }

    fn pid(&mut self) -> u32 {
        self.relay.pid()
    }

    fn rtp_call(&mut self, _call: usize, _a: (Codec, &str), _b: (Codec, &str)) -> Result<[String; 2]> {
        bail!("janus: its SIP plugin bridges WebRTC to SIP; plain RTP on both legs is not a Janus call")
    }

    fn webrtc_call(&mut self, call: usize, webrtc: (Codec, &str), rtp: (Codec, &str)) -> Result<(String, SocketAddr)> {
        if webrtc.0 != rtp.0 {
            bail!("janus does not transcode ({:?} <-> {:?})", webrtc.0, rtp.0);
        }
        let c = self.relay.call(call, webrtc.1, rtp_address(rtp.1).port())?;
        let out = (c.answer.clone(), c.janus_rtp);
        self.calls.push(c);
        Ok(out)
    }

    fn finish(&mut self, _calls: usize) -> Result<()> {
        for c in self.calls.drain(..) {
            self.relay.hang_up(c)?;
        }
        Ok(())
    }
}

/// rtpengine (one process for the whole bench): each call is one ng
/// offer/answer, leg B offering.
struct RtpengineCalls<'a>(&'a Rtpengine);

impl System for RtpengineCalls<'_> {
    fn name(&self) -> &'static str {
        "rtpengine"
    }

    fn pid(&mut self) -> u32 {
        self.0.pid
    }

    fn rtp_call(&mut self, call: usize, a: (Codec, &str), b: (Codec, &str)) -> Result<[String; 2]> {
        // Leg A gets what rtpengine offered it (the offerer's side), leg B the answer.
        self.0.call(&format!("bench-{call}"), b, a, &[])
    }

    fn webrtc_call(&mut self, call: usize, webrtc: (Codec, &str), rtp: (Codec, &str)) -> Result<(String, SocketAddr)> {
        // The recipe of issue 7: plain RTP towards the SIP side, no ICE, no
        // DTLS; rtcp-mux split; Opus masked and transcoded to PCMU. DTLS is
        // left unset in the answer (rtpengine then does DTLS-SRTP towards
        // the WebRTC offerer).
        let mut flags = vec![
            ("transport-protocol", B::s("RTP/AVP")),
            ("ICE", B::s("remove")),
            ("DTLS", B::s("off")),
            ("rtcp-mux", B::List(vec![B::s("demux")])),
        ];
        if webrtc.0 != rtp.0 {
            flags.push((
                "codec",
                B::Dict(vec![
                    ("mask".into(), B::List(vec![B::s("opus")])),
                    ("transcode".into(), B::List(vec![B::s(rtp.0.name())])),
                ]),
            ));
        }
        let id = format!("bench-{call}");
        let offer = self.0.command_sdp(&id, "offer", webrtc.1, &flags)?;
        let answer = self.0.command_sdp(&id, "answer", rtp.1, &[])?;
        Ok((answer, rtp_address(&offer)))
    }

    fn finish(&mut self, calls: usize) -> Result<()> {
        // A failed run may have set up fewer calls: delete what there is.
        for call in 0..calls {
            let _ = self.0.delete(&format!("bench-{call}"));
        }
        Ok(())
    }
}

struct RunResult {
    system: &'static str,
    mode: &'static str,
    calls: usize,
    cpu_ms_per_call_second: f64,
    gen_cpu_ms_per_call_second: f64,
    realtime_ratio: f64,
    setup_median_ms: f64,
    setup_p95_ms: f64,
    /// What the process grew by with the first call, one-time costs included.
    first_call_rss_kib: f64,
    /// What each further call adds (see [`per_further_call`]).
    rss_kib_per_call: f64,
    threads_per_call: f64,
    /// The jitter mode: what leg B received of what leg A sent while measuring.
    delivered: Option<f64>,
    checked: String,
    /// Why the row does not count, if it does not.
    failed: Option<String>,
    /// The machine did not keep up (packets short while the generator ran
    /// late): the row is shown, marked, and does not fail the bench.
    over_capacity: Option<String>,
}

impl RunResult {
    fn failed(system: &'static str, mode: &'static str, calls: usize, why: String) -> RunResult {
        RunResult {
            system,
            mode,
            calls,
            cpu_ms_per_call_second: f64::NAN,
            gen_cpu_ms_per_call_second: f64::NAN,
            realtime_ratio: f64::NAN,
            setup_median_ms: f64::NAN,
            setup_p95_ms: f64::NAN,
            first_call_rss_kib: f64::NAN,
            rss_kib_per_call: f64::NAN,
            threads_per_call: f64::NAN,
            delivered: None,
            checked: String::new(),
            failed: Some(why),
            over_capacity: None,
        }
    }
}

/// The generator's clock: one tick per packet time for every leg.
struct Ticker {
    next: Instant,
    ticks: u64,
    late: u64,
}

impl Ticker {
    /// Sends on every leg if a tick is due (used while calls are set up,
    /// so earlier calls keep flowing).
    fn send_if_due(&mut self, legs: &mut [Leg]) {
        let now = Instant::now();
        if now >= self.next {
            legs.iter_mut().for_each(Leg::send);
            self.next += PTIME;
            if now > self.next {
                self.next = now + PTIME;
            }
        }
    }
}

/// One row: `calls` concurrent calls of `mode` through `system`. A call
/// that cannot be set up is an error; calls that do not deliver their
/// audio make the row failed (it is still printed, and the bench fails).
fn run(
    system: &mut dyn System,
    mode: &Mode,
    calls: usize,
    payloads: &Payloads,
    shared: &webrtc_load::Shared,
) -> Result<RunResult> {
    let outcome = run_calls(system, mode, calls, payloads, shared);
    let finished = system.finish(calls);
    let result = outcome?;
    finished?;
    Ok(result)
}

fn run_calls(
    system: &mut dyn System,
    mode: &Mode,
    calls: usize,
    payloads: &Payloads,
    shared: &webrtc_load::Shared,
) -> Result<RunResult> {
    let what = format!("{} {} K={calls}", system.name(), mode.name);
    let pid = system.pid();
    let (rss0, threads0) = (status_field(pid, "VmRSS:"), status_field(pid, "Threads:"));
    // The process as the first call left it: what that call added includes
    // one-time costs (plugins loaded, shared threads and pools started).
    let mut after_first = (rss0, threads0);
    let a = Codec::Pcmu;
    let mut legs: Vec<Leg> = Vec::new();
    let mut setups: Vec<f64> = Vec::new();
    let mut buf = vec![0u8; 2048];
    let mut ticker = Ticker { next: Instant::now(), ticks: 0, late: 0 };
    let stream = |socket: UdpSocket,
                  to: SocketAddr,
                  srtp: Option<Box<(Srtp, Srtp)>>,
                  codec: Codec,
                  tone: f64,
                  call: usize,
                  i: usize|
     -> Result<Leg> {
        socket.set_nonblocking(true)?;
        Ok(Leg::Rtp(Stream {
            socket,
            to,
            codec,
            payloads: payloads.get(codec, tone),
            next: call * 7 + i,
            seq: (call * 100) as u16,
            ts: (call * 1000) as u32,
            ssrc: 0x1000 + (call * 2 + i) as u32,
            bursts: (mode.jitter && i == 0).then(jitter_schedule),
            made: 0,
            held: Default::default(),
            sent: 0,
            received: 0,
            first_rx: None,
            heard: Vec::new(),
            srtp,
        }))
    };
    // The SDES mode: each leg's own key, and the key in the SDP it gets back.
    let keys = || mode.srtp.then(MasterKey::random);
    let sdes = |own: Option<MasterKey>, answer: &str| -> Result<Option<Box<(Srtp, Srtp)>>> {
        own.map(|own| Ok(Box::new((Srtp::new(&own), Srtp::new(&MasterKey::from_sdp(answer)?))))).transpose()
    };
    for call in 0..calls {
        let started = Instant::now();
        let socket_a = UdpSocket::bind("127.0.0.1:0")?;
        let key_a = keys();
        let sdp_a = a.sdp(socket_a.local_addr()?.port(), key_a.as_ref());
        match mode.transport {
            Transport::Rtp => {
                let socket_b = UdpSocket::bind("127.0.0.1:0")?;
                let key_b = keys();
                let sdp_b = mode.b.sdp(socket_b.local_addr()?.port(), key_b.as_ref());
                let [for_a, for_b] = system
                    .rtp_call(call, (a, &sdp_a), (mode.b, &sdp_b))
                    .with_context(|| format!("{what}: call {call}"))?;
                let srtp_a = sdes(key_a, &for_a).with_context(|| format!("{what}: call {call}, leg A"))?;
                let srtp_b = sdes(key_b, &for_b).with_context(|| format!("{what}: call {call}, leg B"))?;
                legs.push(stream(socket_a, rtp_address(&for_a), srtp_a, a, TONE_A, call, 0)?);
                legs.push(stream(socket_b, rtp_address(&for_b), srtp_b, mode.b, TONE_B, call, 1)?);
            }
            Transport::WebRtc => {
                let mut client = Client::new(shared, mode.b.audio(), payloads.get(mode.b, TONE_B), call * 7 + 1)?;
                let (answer, to_a) = system
                    .webrtc_call(call, (mode.b, client.offer()), (a, &sdp_a))
                    .with_context(|| format!("{what}: call {call}"))?;
                if std::env::var_os("BENCH_DEBUG").is_some() {
                    eprintln!("bench: call {call} offer:\n{}\nanswer:\n{answer}", client.offer());
                }
                client.accept_answer(&answer).with_context(|| format!("{what}: call {call}"))?;
                legs.push(stream(socket_a, to_a, None, a, TONE_A, call, 0)?);
                legs.push(Leg::WebRtc(Box::new(client)));
            }
        }
        let signalled = Some(Instant::now());
        // Setup time: from the first request to audio arriving on both
        // legs, every leg sending as a caller would from the moment it can
        // (a WebRTC leg once DTLS is up). Replies are read as they come.
        let pair = legs.len() - 2;
        while legs[pair..].iter().any(|l| l.first_rx().is_none()) && started.elapsed() < SETUP_LIMIT {
            ticker.send_if_due(&mut legs);
            for l in legs.iter_mut() {
                l.service(&mut buf, false);
            }
            if let Some(e) = legs[pair..].iter().find_map(Leg::error) {
                bail!("{what}: call {call}: WebRTC client failed: {e}");
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let first =
            legs[pair..].iter().map(Leg::first_rx).collect::<Option<Vec<_>>>().and_then(|f| f.into_iter().max());
        if std::env::var_os("BENCH_DEBUG").is_some() {
            let ms = |t: Option<Instant>| {
                t.map(|t| format!("{:.0}", (t - started).as_secs_f64() * 1000.0)).unwrap_or("-".into())
            };
            let (connected, first_in) = match &legs[pair + 1] {
                Leg::WebRtc(c) => (c.connected, c.first_in),
                Leg::Rtp(_) => (None, [None; 3]),
            };
            eprintln!(
                "bench: call {call}: first STUN in {} ms, DTLS {} ms, SRTP {} ms",
                ms(first_in[0]),
                ms(first_in[1]),
                ms(first_in[2])
            );
            eprintln!(
                "bench: call {call}: control {} ms, DTLS up {} ms, audio at A {} ms, at B {} ms",
                ms(signalled),
                ms(connected),
                ms(legs[pair].first_rx()),
                ms(legs[pair + 1].first_rx())
            );
        }
        if call == 0 {
            after_first = (status_field(pid, "VmRSS:"), status_field(pid, "Threads:"));
        }
        match first {
            Some(f) => setups.push((f - started).as_secs_f64() * 1000.0),
            None => bail!(
                "{what}: call {call}: no audio both ways after {SETUP_LIMIT:?} (received {} / {}){}",
                legs[pair].received(),
                legs[pair + 1].received(),
                match &legs[pair + 1] {
                    Leg::WebRtc(c) => format!(
                        "; WebRTC leg: {}{}",
                        c.state(),
                        c.error.as_ref().map(|e| format!(", {e}")).unwrap_or_default()
                    ),
                    Leg::Rtp(_) => String::new(),
                }
            ),
        }
    }
    // Generate: one tick per packet time, all legs.
    let start = Instant::now();
    ticker.next = start;
    let (mut cpu0, mut gen0, mut window_start) = (None, 0.0, None);
    // Leg A's packets sent and leg B's received, at the start of measuring.
    // B reads a tick's packets at the next tick (the system relays them in
    // between), so B's count at a tick matches A's one tick before.
    let mut a_to_b_at_start = (0, 0);
    let mut a_sent_a_tick_ago = 0;
    let a_to_b = |legs: &[Leg]| {
        legs.chunks(2).fold((0, 0), |(sent, received), pair| (sent + pair[0].sent(), received + pair[1].received()))
    };
    let me = std::process::id();
    while start.elapsed() < WARMUP + MEASURE {
        let now = Instant::now();
        if now < ticker.next {
            std::thread::sleep(ticker.next - now);
        } else if now - ticker.next > PTIME {
            ticker.late += 1;
        }
        ticker.next += PTIME;
        ticker.ticks += 1;
        let measuring = start.elapsed() >= WARMUP;
        let a_sent = a_to_b(&legs).0;
        if measuring && cpu0.is_none() {
            cpu0 = Some(cpu_seconds(pid));
            gen0 = cpu_seconds(me);
            window_start = Some(Instant::now());
            a_to_b_at_start = (a_sent_a_tick_ago, a_to_b(&legs).1);
        }
        a_sent_a_tick_ago = a_sent;
        for l in legs.iter_mut() {
            l.send();
            l.service(&mut buf, measuring);
        }
    }
    let cpu = cpu_seconds(pid) - cpu0.unwrap_or(0.0);
    let gen_cpu = cpu_seconds(me) - gen0;
    let window = window_start.map(|w| w.elapsed().as_secs_f64()).unwrap_or(1.0);
    let (rss1, threads1) = (status_field(pid, "VmRSS:"), status_field(pid, "Threads:"));
    if mode.jitter {
        // What is on its way arrives; not longer, or sipbridge's silence
        // filler (500 ms after the last audio) would add packets of its own.
        let drained = Instant::now() + Duration::from_millis(400);
        while Instant::now() < drained {
            legs.iter_mut().for_each(|l| l.service(&mut buf, true));
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    let a_to_b_at_end = a_to_b(&legs);
    if std::env::var_os("BENCH_DEBUG").is_some() {
        eprintln!("bench: A sent / B received: at the start {a_to_b_at_start:?}, at the end {a_to_b_at_end:?}");
    }
    let delivered = mode
        .jitter
        .then(|| (a_to_b_at_end.1 - a_to_b_at_start.1) as f64 / (a_to_b_at_end.0 - a_to_b_at_start.0).max(1) as f64);
    // Check every call: packets both ways; each leg hears the other's tone.
    let mut failures = Vec::new();
    let mut short_legs = 0;
    for (call, pair) in legs.chunks(2).enumerate() {
        for (i, leg) in pair.iter().enumerate() {
            let expected_packets = ((WARMUP.as_secs_f64() + window) * 50.0 * 0.8) as u64;
            let want = if i == 0 { TONE_B } else { TONE_A };
            let heard = leg.heard();
            let share = heard
                .as_ref()
                .map(|pcm| if pcm.samples.len() < pcm.rate as usize { 0.0 } else { pcm.tone_share(want) })
                .unwrap_or(0.0);
            let failure = if let Some(e) = leg.error() {
                Some(format!("WebRTC client failed: {e}"))
            } else if leg.received() < expected_packets {
                short_legs += 1;
                Some(format!("received {} packets, expected at least {expected_packets}", leg.received()))
            } else if let Err(e) = &heard {
                Some(format!("{e:#}"))
            } else if share < 0.8 {
                Some(format!("does not hear {want} Hz (share {share:.2})"))
            } else {
                None
            };
            if let Some(f) = failure {
                failures.push(format!("call {call} leg {}: {f}", ["A", "B"][i]));
            }
        }
    }
    if !failures.is_empty() {
        eprintln!(
            "bench: {what}: {} of {} legs failed their checks, first: {}",
            failures.len(),
            calls * 2,
            failures[0]
        );
    }
    // Packets missing while the generator itself ran late (it then sends
    // fewer) mean the machine ran out of CPU: the row says so and its
    // figures stand as measured; any other failure (a wrong or missing
    // tone, a client error) makes it not count.
    let realtime = 1.0 - ticker.late as f64 / ticker.ticks.max(1) as f64;
    let overloaded = realtime < OVERLOADED_BELOW && !failures.is_empty() && short_legs == failures.len();
    let summary = (!failures.is_empty())
        .then(|| format!("{} of {} legs failed their checks, first: {}", failures.len(), calls * 2, failures[0]));
    setups.sort_by(|x, y| x.total_cmp(y));
    let pct = |p: f64| setups.get(((setups.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or(f64::NAN);
    drop(legs);
    Ok(RunResult {
        system: system.name(),
        mode: mode.name,
        calls,
        cpu_ms_per_call_second: cpu * 1000.0 / (calls as f64 * window),
        gen_cpu_ms_per_call_second: gen_cpu * 1000.0 / (calls as f64 * window),
        realtime_ratio: realtime,
        setup_median_ms: pct(0.5),
        setup_p95_ms: pct(0.95),
        first_call_rss_kib: after_first.0 - rss0,
        rss_kib_per_call: per_further_call(rss0, after_first.0, rss1, calls),
        threads_per_call: per_further_call(threads0, after_first.1, threads1, calls),
        delivered,
        checked: format!("{calls} calls: packets both ways, each leg decodes to the other leg's tone"),
        failed: summary.clone().filter(|_| !overloaded),
        over_capacity: summary.filter(|_| overloaded),
    })
}

/// A per-call cost (memory, threads): the growth from the first call to all
/// `calls`, over the calls after the first, so that one-time costs the
/// first call pays (and a process started for the row pays in full, one
/// reused across rows does not) do not count as every call's. One call:
/// its whole growth.
fn per_further_call(before: f64, after_first: f64, after_all: f64, calls: usize) -> f64 {
    match calls {
        0 | 1 => after_all - before,
        _ => (after_all - after_first) / (calls - 1) as f64,
    }
}

/// Packets in a latency run: 12 s, a 200 ms tone burst at the start of
/// every second after the first.
const LATENCY_PACKETS: usize = 12 * 50;

/// The latency stimulus in `codec`: RTP payloads of one continuous encode
/// (one encoder, so the decoder never sees a splice) of silence with a
/// 200 ms 1000 Hz burst at the start of every second after the first.
/// Packet `k` carries the audio of [k * 20 ms, (k + 1) * 20 ms).
fn burst_stimulus(dir: &Path, codec: Codec) -> Result<Vec<Vec<u8>>> {
    let rate: u32 = match codec {
        Codec::Pcmu => 8000,
        Codec::Opus => 48000,
    };
    let per_packet = rate as usize / 50;
    let samples = (0..(LATENCY_PACKETS + 10) * per_packet)
        .map(|i| {
            let packet = i / per_packet;
            if packet >= 50 && packet % 50 < 10 {
                0.3 * (2.0 * std::f64::consts::PI * 1000.0 * i as f64 / rate as f64).sin() as f32
            } else {
                0.0
            }
        })
        .collect();
    let wav = dir.join(format!("burst-{codec:?}.wav"));
    e2e::audio::write_wav(&wav, &Pcm { rate, samples })?;
    let enc = match codec {
        Codec::Pcmu => "mulawenc ! rtppcmupay pt=0 min-ptime=20000000 max-ptime=20000000",
        Codec::Opus => "opusenc bitrate=32000 frame-size=20 ! rtpopuspay pt=111",
    };
    // RFC 4571 framing to stdout through fdsink: a filesink writing this
    // stream in GStreamer 1.22 was seen to drop bytes (a corrupt file after
    // about 340 packets); fdsink did not.
    let pipeline = format!(
        "filesrc location={} ! wavparse ! audioconvert ! audio/x-raw,channels=1 ! {enc} ! rtpstreampay ! fdsink fd=1",
        wav.display()
    );
    let out =
        std::process::Command::new("gst-launch-1.0").arg("-q").args(e2e::rtp_peer::shell_words(&pipeline)).output()?;
    let mut payloads = Vec::new();
    let mut rest = &out.stdout[..];
    while rest.len() >= 2 {
        let n = u16::from_be_bytes([rest[0], rest[1]]) as usize;
        if rest.len() < 2 + n || n < 12 {
            break;
        }
        payloads.push(rest[2 + 12..2 + n].to_vec());
        rest = &rest[2 + n..];
    }
    if payloads.len() < LATENCY_PACKETS {
        bail!(
            "burst stimulus {codec:?}: {} packets encoded, {LATENCY_PACKETS} needed: {}",
            payloads.len(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(payloads)
}

/// What a latency run measures: through sipbridge, or straight into the
/// measuring receiver (the receiver's own delay, e.g. the Opus decoder helper).
#[derive(Clone, Copy, PartialEq)]
enum Route {
    Sipbridge,
    Direct,
}

/// Added latency `from` -> `to`: the generator sends the burst stimulus (one
/// packet per 20 ms tick) and times, on one clock, the first packet of each
/// burst against the arrival of the first packet that decodes loud on the
/// `to` side. Arrivals are timestamped as they come (the generator waits for
/// its next tick in `recv`), not at its next tick. PCMU is decoded here;
/// Opus by a `gst-launch-1.0` helper (udpsrc ! rtpopusdepay ! opusdec !
/// udpsink) that forwards each decoded buffer as raw S16LE in one datagram.
/// Returns every burst's delay in ms, sorted.
fn latency(dir: &Path, route: Route, from: Codec, to: Codec, stimulus: &[Vec<u8>]) -> Result<Vec<f64>> {
    let tx = UdpSocket::bind("127.0.0.1:0")?;
    let rx = UdpSocket::bind("127.0.0.1:0")?;
    // Where `to`'s RTP must go, and the decoder helper if there is one.
    let (to_port, _helper) = match to {
        Codec::Pcmu => (rx.local_addr()?.port(), None),
        Codec::Opus => {
            let port = e2e::process::free_udp_port();
            let helper = e2e::rtp_peer::gst_launch(
                dir,
                &format!("latency-decoder-{port}"),
                &format!(
                    "udpsrc address=127.0.0.1 port={port} caps=\"application/x-rtp,media=audio,encoding-name=OPUS,clock-rate=48000,payload=111\" ! rtpopusdepay ! opusdec plc=false ! audioconvert ! audio/x-raw,format=S16LE,channels=1,rate=48000 ! udpsink host=127.0.0.1 port={} sync=false async=false",
                    rx.local_addr()?.port()
                ),
            )?;
            (port, Some(helper))
        }
    };
    let (_bridge, target) = match route {
        Route::Sipbridge => {
            let bridge = Bridge::start(dir, &[])?;
            let mut targets = Vec::new();
            let mut sessions = Vec::new();
            for (codec, port) in [(from, tx.local_addr()?.port()), (to, to_port)] {
                let s = bridge.create(
                    "rtp",
                    json!({ "codecs": [match codec { Codec::Pcmu => "PCMU", Codec::Opus => "OPUS" }] }),
                )?;
                bridge.set_remote(&s, "offer", &codec.sdp(port, None))?;
                targets.push(rtp_address(&bridge.local_description(&s)?.1));
                sessions.push(s);
            }
            bridge.call("session.connect", json!({ "a": sessions[0], "b": sessions[1] }))?;
            (Some(bridge), targets[0])
        }
        Route::Direct => (None, SocketAddr::from(([127, 0, 0, 1], to_port))),
    };
    let (mut seq, mut ts) = (0u16, 0u32);
    let mut buf = [0u8; 4096];
    let mut delays = Vec::new();
    let mut burst_sent: Option<Instant> = None;
    let mut loud_before = false;
    let start = Instant::now();
    let mut next = start;
    // burst_stimulus made at least LATENCY_PACKETS payloads.
    for (tick, payload) in stimulus.iter().enumerate().take(LATENCY_PACKETS) {
        // Receive until the tick is due, timestamping each arrival.
        loop {
            let now = Instant::now();
            if now >= next {
                break;
            }
            rx.set_read_timeout(Some(next - now))?;
            let Ok(n) = rx.recv(&mut buf) else { continue };
            let arrived = Instant::now();
            let (samples, rate): (Vec<f64>, f64) = match to {
                Codec::Pcmu => {
                    if n <= 12 || buf[0] >> 6 != 2 || (200..=204).contains(&buf[1]) {
                        continue;
                    }
                    (buf[12..n].iter().map(|x| ulaw_decode(*x) as f64).collect(), 8000.0)
                }
                Codec::Opus => (
                    buf[..n].chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]]) as f64 / 32768.0).collect(),
                    48000.0,
                ),
            };
            if samples.is_empty() {
                continue;
            }
            let rms = (samples.iter().map(|x| x * x).sum::<f64>() / samples.len() as f64).sqrt();
            let loud = rms > 0.05;
            if loud && !loud_before {
                if let Some(sent) = burst_sent.take() {
                    // To the first loud sample, not the packet's start: the
                    // delay filters and codecs add inside a packet counts too.
                    let onset = samples.iter().position(|x| x.abs() > 0.1).unwrap_or(0) as f64 / rate;
                    delays.push(((arrived - sent).as_secs_f64() + onset) * 1000.0);
                }
            }
            loud_before = loud;
        }
        next += PTIME;
        let is_onset = tick >= 50 && tick % 50 == 0;
        let mut packet = vec![0x80, from.pt()];
        packet.extend_from_slice(&seq.to_be_bytes());
        packet.extend_from_slice(&ts.to_be_bytes());
        packet.extend_from_slice(&0x5151_5151u32.to_be_bytes());
        packet.extend_from_slice(payload);
        if is_onset {
            burst_sent = Some(Instant::now());
        }
        tx.send_to(&packet, target)?;
        seq = seq.wrapping_add(1);
        ts = ts.wrapping_add(from.clock_step());
    }
    std::thread::sleep(Duration::from_millis(200));
    if route == Route::Sipbridge {
        // Keep each run's bridge log apart (the next run's would replace it).
        let _ = std::fs::rename(dir.join("sipbridge.log"), dir.join(format!("sipbridge-latency-{from:?}-{to:?}.log")));
    }
    if delays.len() < 8 {
        bail!("latency {from:?}->{to:?}: only {} of 11 bursts detected", delays.len());
    }
    delays.sort_by(|x, y| x.total_cmp(y));
    Ok(delays)
}

/// Length of the file `session.play` plays in the pacing section.
const PLAY_SECONDS: u32 = 5;

/// How evenly `session.play` sends: a WAV of a tone played into an RTP
/// session whose peer (a socket here) times each packet's arrival.
fn play_pacing(dir: &Path) -> Result<Pacing> {
    let file = dir.join("pacing.wav");
    e2e::audio::write_wav(&file, &e2e::audio::tone(700.0, PLAY_SECONDS as f64, 8000, 0.4))?;
    let bridge = Bridge::start(dir, &[])?;
    let phone = UdpSocket::bind("127.0.0.1:0")?;
    phone.set_read_timeout(Some(Duration::from_millis(5)))?;
    let (s, _) = bridge.answer_rtp(&Codec::Pcmu.sdp(phone.local_addr()?.port(), None), json!({}))?;
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let receiving = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut arrivals = Vec::new();
            let mut buf = [0u8; 2048];
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(n) = phone.recv(&mut buf) {
                    let loud = rtp_payload(&buf[..n]).is_some_and(|p| p.iter().any(|b| ulaw_decode(*b).abs() > 0.05));
                    if loud {
                        arrivals.push(Instant::now());
                    }
                }
            }
            arrivals
        })
    };
    bridge.call("session.play", json!({ "session": s, "file": file }))?;
    let ended = bridge.wait_session_event(&s, "playended", Duration::from_secs(PLAY_SECONDS as u64 + 10), |_| true);
    std::thread::sleep(Duration::from_millis(100));
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let arrivals = receiving.join().map_err(|_| anyhow::anyhow!("the pacing receiver panicked"))?;
    ended?;
    Ok(Pacing::of(&arrivals, PTIME))
}

/// The codec floor: the codec work of one transcoded call done with stock
/// GStreamer elements the cheapest way, as sipbridge does it (Opus decoded
/// straight to 8 kHz, 8 kHz audio encoded to Opus without resampling), in
/// one pipeline with no network, paced by the clock. CPU per call-second.
/// sipbridge decodes Opus with libopus's single-stream API, which is
/// cheaper than `opusdec` here (see pipelines/src/codec/opus_decoder.rs).
fn codec_floor(dir: &Path) -> Result<f64> {
    let opus_to_pcmu = "audiotestsrc is-live=true freq=440 ! audio/x-raw,rate=48000,channels=1 ! opusenc bitrate=32000 complexity=5 frame-size=20 ! opusdec ! audio/x-raw,rate=8000 ! mulawenc ! fakesink";
    let pcmu_to_opus = "audiotestsrc is-live=true freq=1000 ! audio/x-raw,rate=8000,channels=1 ! mulawenc ! mulawdec ! opusenc bitrate=32000 complexity=5 frame-size=20 audio-type=voice ! fakesink";
    // The generator's own encode/decode (audiotestsrc, first encoder, last
    // decoder) is measured separately and subtracted.
    let gen_opus = "audiotestsrc is-live=true freq=440 ! audio/x-raw,rate=48000,channels=1 ! opusenc bitrate=32000 complexity=5 frame-size=20 ! fakesink";
    let gen_pcmu = "audiotestsrc is-live=true freq=1000 ! audio/x-raw,rate=8000,channels=1 ! mulawenc ! fakesink";
    let measure = |name: &str, pipeline: &str| -> Result<f64> {
        let mut p = e2e::rtp_peer::gst_launch(dir, name, pipeline)?;
        std::thread::sleep(Duration::from_secs(1));
        let c0 = cpu_seconds(p.pid());
        std::thread::sleep(Duration::from_secs(5));
        let c1 = cpu_seconds(p.pid());
        p.stop();
        Ok((c1 - c0) * 1000.0 / 5.0)
    };
    let full = measure("floor-a", opus_to_pcmu)? + measure("floor-b", pcmu_to_opus)?;
    let generator = measure("floor-gen-a", gen_opus)? + measure("floor-gen-b", gen_pcmu)?;
    Ok((full - generator).max(0.0))
}

fn main() -> Result<()> {
    // BENCH_CALLS=1,10 runs every mode at those loads instead of its own.
    let chosen_levels: Option<Vec<usize>> =
        std::env::var("BENCH_CALLS").ok().map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect());
    let levels_of = |mode: &Mode| chosen_levels.clone().unwrap_or_else(|| mode.default_levels().to_vec());
    let mut levels: Vec<usize> = MODES.iter().flat_map(levels_of).collect();
    levels.sort_unstable();
    levels.dedup();
    // BENCH_MODES=webrtc (comma-separated, case-insensitive substrings of
    // the mode names) runs only those modes; BENCH_SYSTEMS likewise.
    let filter = |var: &str, name: &str| -> bool {
        std::env::var(var)
            .map(|v| v.split(',').any(|w| name.to_lowercase().contains(&w.trim().to_lowercase())))
            .unwrap_or(true)
    };
    let bench_started = Instant::now();
    let dir = test_dir("bench");
    eprintln!("bench: scratch dir {}", dir.display());
    // BENCH_ONLY=latency (or pacing, or calls; comma-separated) runs only
    // those sections: the calls table, the added latency, session.play's pacing.
    let section = |name: &str| filter("BENCH_ONLY", name);
    let mut results = Vec::new();
    let mut floor = None;
    if section("calls") {
        let payloads = Payloads(vec![
            (Codec::Pcmu, TONE_A, Arc::new(capture_payloads(&dir, Codec::Pcmu, TONE_A, 100)?)),
            (Codec::Pcmu, TONE_B, Arc::new(capture_payloads(&dir, Codec::Pcmu, TONE_B, 100)?)),
            (Codec::Opus, TONE_B, Arc::new(capture_payloads(&dir, Codec::Opus, TONE_B, 100)?)),
        ]);
        let shared = webrtc_load::Shared::new()?;
        let rtpengine = Rtpengine::start(&dir)?;
        // Janus has only the passthrough WebRTC mode to run (it does not
        // transcode, and its SIP plugin needs a WebRTC leg).
        let janus_mode = |m: &Mode| m.transport == Transport::WebRtc && m.b == Codec::Pcmu;
        let janus = match filter("BENCH_SYSTEMS", "janus")
            && MODES.iter().any(|m| janus_mode(m) && filter("BENCH_MODES", m.name))
        {
            true => Some(e2e::janus::JanusCalls::start(&dir)?),
            false => None,
        };
        for &k in &levels {
            for mode in MODES.iter().filter(|m| filter("BENCH_MODES", m.name) && levels_of(m).contains(&k)) {
                // The lean WebRTC leg runs the WebRTC modes, next to webrtcbin.
                let lean = (mode.transport == Transport::WebRtc).then_some("sipbridge-lean");
                for system_name in std::iter::once("sipbridge").chain(lean) {
                    if !filter("BENCH_SYSTEMS", system_name) {
                        continue;
                    }
                    eprintln!("bench: {system_name}, {}, {k} calls", mode.name);
                    let mut system = Sipbridge::start(&dir, system_name == "sipbridge-lean")?;
                    results.push(run(&mut system, mode, k, &payloads, &shared).unwrap_or_else(|e| {
                        eprintln!("bench: {e:#}");
                        RunResult::failed(system_name, mode.name, k, format!("{e:#}"))
                    }));
                }
                if filter("BENCH_SYSTEMS", "rtpengine") {
                    eprintln!("bench: rtpengine, {}, {k} calls", mode.name);
                    results.push(run(&mut RtpengineCalls(&rtpengine), mode, k, &payloads, &shared).unwrap_or_else(
                        |e| {
                            eprintln!("bench: {e:#}");
                            RunResult::failed("rtpengine", mode.name, k, format!("{e:#}"))
                        },
                    ));
                }
                if let Some(relay) = janus.as_ref().filter(|_| janus_mode(mode)) {
                    eprintln!("bench: janus, {}, {k} calls", mode.name);
                    results.push(
                        run(&mut JanusSystem { relay, calls: Vec::new() }, mode, k, &payloads, &shared).unwrap_or_else(
                            |e| {
                                eprintln!("bench: {e:#}");
                                RunResult::failed("janus", mode.name, k, format!("{e:#}"))
                            },
                        ),
                    );
                }
            }
        }
        drop(rtpengine);
        drop(janus);
        eprintln!("bench: codec floor");
        floor = Some(codec_floor(&dir)?);
    }
    let mut latencies = Vec::new();
    let mut helper = Vec::new();
    if section("latency") {
        eprintln!("bench: added latency");
        let pcmu_bursts = burst_stimulus(&dir, Codec::Pcmu)?;
        let opus_bursts = burst_stimulus(&dir, Codec::Opus)?;
        latencies = vec![
            ("PCMU -> PCMU (passthrough)", latency(&dir, Route::Sipbridge, Codec::Pcmu, Codec::Pcmu, &pcmu_bursts)?),
            ("Opus -> PCMU (transcoded)", latency(&dir, Route::Sipbridge, Codec::Opus, Codec::Pcmu, &opus_bursts)?),
            ("PCMU -> Opus (transcoded)", latency(&dir, Route::Sipbridge, Codec::Pcmu, Codec::Opus, &pcmu_bursts)?),
        ];
        // The Opus side is decoded by a helper process; its own delay, measured
        // alone, is part of the PCMU -> Opus figure (not subtracted).
        helper = latency(&dir, Route::Direct, Codec::Opus, Codec::Opus, &opus_bursts)?;
    }
    let pacing = if section("pacing") {
        eprintln!("bench: session.play pacing");
        Some(play_pacing(&dir)?)
    } else {
        None
    };

    println!();
    let date = std::process::Command::new("date")
        .arg("-u")
        .arg("+%F %H:%M UTC")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    println!(
        "sipbridge benchmark ({date}; {} cores; loopback, release build; one run)",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
    );
    println!(
        "{:<14} {:<38} {:>6} {:>14} {:>10} {:>12} {:>10} {:>12} {:>12} {:>12} {:>10} {:>10} {:>10} {:>10}",
        "system",
        "mode",
        "calls",
        "CPU ms/call-s",
        "real time",
        "setup med ms",
        "p95 ms",
        "1st call KiB",
        "RSS KiB/call",
        "threads/call",
        "vs rtpe",
        "vs janus",
        "gen ms/c-s",
        "delivered"
    );
    for r in &results {
        let ratio = results
            .iter()
            .find(|o| o.system == "rtpengine" && o.mode == r.mode && o.calls == r.calls)
            .map(|o| format!("{:.2}x", r.cpu_ms_per_call_second / o.cpu_ms_per_call_second))
            .unwrap_or_default();
        let vs_janus = results
            .iter()
            .find(|o| o.system == "janus" && o.mode == r.mode && o.calls == r.calls)
            .map(|o| format!("{:.2}x", r.cpu_ms_per_call_second / o.cpu_ms_per_call_second))
            .unwrap_or_default();
        println!(
            "{:<14} {:<38} {:>6} {:>14.2} {:>9.1}% {:>12.1} {:>10.1} {:>12.0} {:>12.0} {:>12.2} {:>10} {:>10} {:>10.2} {:>10}",
            r.system,
            r.mode,
            r.calls,
            r.cpu_ms_per_call_second,
            r.realtime_ratio * 100.0,
            r.setup_median_ms,
            r.setup_p95_ms,
            r.first_call_rss_kib,
            r.rss_kib_per_call,
            r.threads_per_call,
            ratio,
            vs_janus,
            r.gen_cpu_ms_per_call_second,
            r.delivered.map(|d| format!("{:.1}%", d * 100.0)).unwrap_or_default()
        );
        if let Some(why) = &r.failed {
            println!("{:<14} {:<38} {:>6}   FAILED: {why}", "", "", "");
        }
        if let Some(why) = &r.over_capacity {
            println!("{:<14} {:<38} {:>6}   OVER CAPACITY (not real time; {why})", "", "", "");
        }
    }
    if let Some(floor) = floor {
        println!(
            "{:<14} {:<38} {:>6} {:>14.2}   (stock GStreamer elements, one pipeline, no network)",
            "floor", "transcoded PCMU<->Opus", 1, floor
        );
    }
    if !latencies.is_empty() {
        println!();
        println!("added latency through sipbridge (tone-burst onsets, one clock; jitter buffer {} ms)", 40);
        for (what, d) in &latencies {
            println!(
                "  {what:<28} median {:>6.1} ms   min {:>6.1}   max {:>6.1}   ({} bursts)",
                d[d.len() / 2],
                d[0],
                d[d.len() - 1],
                d.len()
            );
        }
        let d = &helper;
        println!(
            "  (the Opus decoding helper alone: median {:.1} ms, min {:.1}, max {:.1}; included above)",
            d[d.len() / 2],
            d[0],
            d[d.len() - 1]
        );
    }
    if let Some(p) = &pacing {
        println!();
        println!(
            "session.play pacing ({PLAY_SECONDS} s WAV at 8 kHz to a PCMU phone, 20 ms packets): {} packets, largest gap {:.1} ms, at most {} within 5 ms, {:.0}% of gaps within 10 ms of 20 ms",
            p.packets,
            p.largest_gap.as_secs_f64() * 1000.0,
            p.largest_burst,
            p.on_time * 100.0
        );
    }
    let total = bench_started.elapsed().as_secs_f64();
    println!("\nbench run time {:.0} s", total);
    let json = json!({
        "results": results.iter().map(|r| json!({
            "system": r.system, "mode": r.mode, "calls": r.calls, "cpu_ms_per_call_second": r.cpu_ms_per_call_second,
            "generator_cpu_ms_per_call_second": r.gen_cpu_ms_per_call_second,
            "realtime": r.realtime_ratio, "setup_median_ms": r.setup_median_ms, "setup_p95_ms": r.setup_p95_ms,
            "first_call_rss_kib": r.first_call_rss_kib, "rss_kib_per_call": r.rss_kib_per_call, "threads_per_call": r.threads_per_call, "delivered": r.delivered,
            "checked": r.checked,
            "failed": r.failed, "over_capacity": r.over_capacity,
        })).collect::<Vec<_>>(),
        "codec_floor_cpu_ms_per_call_second": floor,
        "latency_opus_decoder_helper_ms": (!helper.is_empty()).then(|| json!({ "median": helper[helper.len() / 2], "min": helper[0], "max": helper[helper.len() - 1] })),
        "play_pacing": pacing.map(|p| json!({ "packets": p.packets, "largest_gap_ms": p.largest_gap.as_secs_f64() * 1000.0, "largest_burst_5ms": p.largest_burst, "on_time": p.on_time })),
        "latency_ms": latencies.iter().map(|(what, d)| json!({ "path": what, "median": d[d.len() / 2], "min": d[0], "max": d[d.len() - 1] })).collect::<Vec<_>>(),
        "run_time_s": total,
    });
    let out = workspace_root().join("target/bench.json");
    std::fs::write(&out, serde_json::to_string_pretty(&json)?)?;
    println!("\nwritten to {}", out.display());
    let failed = results.iter().filter(|r| r.failed.is_some()).count();
    if failed > 0 {
        bail!(
            "{failed} of {} rows failed their checks (marked FAILED above): their figures do not count",
            results.len()
        );
    }
    Ok(())
}

/// rtpengine in userspace on loopback, driven over the ng control protocol
/// (bencoded dictionaries over UDP).
struct Rtpengine {
    process: e2e::process::Child,
    pid: u32,
    control: UdpSocket,
}

impl Rtpengine {
    fn start(dir: &Path) -> Result<Rtpengine> {
        let ng_port = e2e::process::free_udp_port();
        let mut cmd = std::process::Command::new("rtpengine");
        cmd.args([
            "--table=-1",
            "--interface=127.0.0.1",
            "--foreground",
            "--log-stderr",
            "--log-level=4",
            "--delete-delay=0",
        ])
        .arg(format!("--listen-ng=127.0.0.1:{ng_port}"))
        .args(["--port-min=30000", "--port-max=40000", "--num-threads=2"]);
        let process = e2e::process::spawn(&mut cmd, dir, "rtpengine", Duration::from_secs(3600))?;
        let pid = process.pid();
        let control = UdpSocket::bind("127.0.0.1:0")?;
        control.set_read_timeout(Some(Duration::from_secs(5)))?;
        control.connect(("127.0.0.1", ng_port))?;
        let engine = Rtpengine { process, pid, control };
        for _ in 0..50 {
            if engine.command(&[("command", B::s("ping"))]).is_ok() {
                return Ok(engine);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        bail!("rtpengine does not answer; log:\n{}", engine.process.log())
    }

    /// Sets up one plain call: `offerer` offers (its codec, its SDP),
    /// `answerer` answers. Returns the SDP the answerer gets (rtpengine's
    /// offer), then the one the offerer gets (its answer).
    fn call(
        &self,
        id: &str,
        offerer: (Codec, &str),
        answerer: (Codec, &str),
        flags: &[(&str, B)],
    ) -> Result<[String; 2]> {
        let mut flags = flags.to_vec();
        if offerer.0 != answerer.0 {
            // The other side gets the answerer's codec offered; rtpengine
            // transcodes between them.
            flags.push(("codec", B::Dict(vec![("transcode".into(), B::List(vec![B::s(answerer.0.name())]))])));
        }
        let offer = self.command_sdp(id, "offer", offerer.1, &flags)?;
        let answer = self.command_sdp(id, "answer", answerer.1, &[])?;
        Ok([offer, answer])
    }

    /// An ng `offer` (from tag "b") or `answer` (to tag "a") carrying `sdp`
    /// with `flags`; returns the SDP of the reply.
    fn command_sdp(&self, id: &str, command: &str, sdp: &str, flags: &[(&str, B)]) -> Result<String> {
        let mut dict =
            vec![("command", B::s(command)), ("call-id", B::s(id)), ("from-tag", B::s("b")), ("sdp", B::s(sdp))];
        if command == "answer" {
            dict.push(("to-tag", B::s("a")));
        }
        dict.extend(flags.iter().cloned());
        let reply = self.command(&dict)?;
        sdp_of(&reply)
    }

    fn delete(&self, id: &str) -> Result<()> {
        self.command(&[("command", B::s("delete")), ("call-id", B::s(id))])?;
        Ok(())
    }

    fn command(&self, dict: &[(&str, B)]) -> Result<String> {
        let cookie = format!("{:x}", rand_cookie());
        let body = B::Dict(dict.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()).encode();
        let mut msg = format!("{cookie} ").into_bytes();
        msg.extend(body);
        self.control.send(&msg)?;
        let mut buf = vec![0u8; 65536];
        let n = self.control.recv(&mut buf)?;
        let reply = String::from_utf8_lossy(&buf[..n]).to_string();
        let reply = reply.strip_prefix(&format!("{cookie} ")).unwrap_or(&reply).to_string();
        if !reply.contains("6:result2:ok") && !reply.contains("6:result4:pong") {
            bail!("rtpengine: {reply}");
        }
        Ok(reply)
    }
}

fn rand_cookie() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos() as u64
    );
    h.finish()
}

/// The SDP carried in a bencoded ng reply (the value of its `sdp` key).
fn sdp_of(reply: &str) -> Result<String> {
    let key = reply.find("3:sdp").context("no SDP in the rtpengine reply")?;
    let rest = &reply[key + 5..];
    let colon = rest.find(':').context("bad bencode")?;
    let len: usize = rest[..colon].parse().context("bad bencode length")?;
    let bytes = rest.as_bytes();
    Ok(String::from_utf8_lossy(&bytes[colon + 1..(colon + 1 + len).min(bytes.len())]).to_string())
}

/// Just enough bencode for the ng protocol.
#[derive(Clone)]
enum B {
    Str(Vec<u8>),
    List(Vec<B>),
    Dict(Vec<(String, B)>),
}

impl B {
    fn s(text: &str) -> B {
        B::Str(text.as_bytes().to_vec())
    }

    fn encode(&self) -> Vec<u8> {
        match self {
            B::Str(bytes) => {
                let mut out = format!("{}:", bytes.len()).into_bytes();
                out.extend(bytes);
                out
            }
            B::List(items) => {
                let mut out = b"l".to_vec();
                items.iter().for_each(|i| out.extend(i.encode()));
                out.push(b'e');
                out
            }
            B::Dict(entries) => {
                let mut entries = entries.clone();
                entries.sort_by(|a, b| a.0.cmp(&b.0));
                let mut out = b"d".to_vec();
                for (k, v) in entries {
                    out.extend(B::s(&k).encode());
                    out.extend(v.encode());
                }
                out.push(b'e');
                out
            }
        }
    }
}
