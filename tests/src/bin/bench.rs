//! `make bench`: what a call costs in `sipbridge`, measured on loopback in
//! one run and printed as a table (and written to target/bench.json).
//!
//! Each call is two RTP sessions of one `sipbridge stdio` process joined by
//! `session.connect`. The load generator is this program: one thread, plain
//! UDP sockets, replaying RTP packets that GStreamer's own encoders made
//! (captured once at start), 50 packets a second per stream. Every call's
//! audio is checked: packets must arrive on both sides, and the PCMU side
//! must decode to the tone the other side sends, so a fast but broken run
//! cannot pass.
//!
//! Modes: passthrough (PCMU <-> PCMU: no decoding) and transcoded (Opus <->
//! PCMU, plain RTP on both legs: decode, resample, encode each way).
//! Also measured: the codec floor (the same GStreamer elements in one
//! gst-launch pipeline, no network), call-setup time (first request to first
//! packet back), resident memory and threads per call.

use anyhow::{bail, Context, Result};
use e2e::audio::Pcm;
use e2e::bridge::{rtp_address, Bridge};
use e2e::process::{test_dir, workspace_root};
use serde_json::json;
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::time::{Duration, Instant};

const PTIME: Duration = Duration::from_millis(20);
const MEASURE: Duration = Duration::from_secs(10);
const WARMUP: Duration = Duration::from_secs(2);
const TONE_A: f64 = 440.0; // what the PCMU streams carry
const TONE_B: f64 = 1000.0; // what the Opus streams carry

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

    fn sdp(self, port: u16) -> String {
        let map = match self {
            Codec::Pcmu => "a=rtpmap:0 PCMU/8000\r\n".to_string(),
            Codec::Opus => "a=rtpmap:111 opus/48000/2\r\n".to_string(),
        };
        format!("v=0\r\no=gen 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {port} RTP/AVP {}\r\n{map}a=ptime:20\r\n", self.pt())
    }

    /// The tone this codec's captured packets carry.
    fn tone(self) -> f64 {
        match self {
            Codec::Pcmu => TONE_A,
            Codec::Opus => TONE_B,
        }
    }

    fn clock_step(self) -> u32 {
        match self {
            Codec::Pcmu => 160,
            Codec::Opus => 960,
        }
    }
}

/// One generated stream: sends recorded payloads, receives what the bridge sends.
struct Stream {
    socket: UdpSocket,
    to: SocketAddr,
    codec: Codec,
    payloads: std::sync::Arc<Vec<Vec<u8>>>,
    next: usize,
    seq: u16,
    ts: u32,
    ssrc: u32,
    received: u64,
    first_rx: Option<Instant>,
    /// Decoded PCMU received (kept for the tone check, bounded).
    heard: Vec<f32>,
}

impl Stream {
    fn send(&mut self) {
        let payload = &self.payloads[self.next % self.payloads.len()];
        self.next += 1;
        let mut packet = Vec::with_capacity(12 + payload.len());
        packet.extend_from_slice(&[0x80, self.codec.pt()]);
        packet.extend_from_slice(&self.seq.to_be_bytes());
        packet.extend_from_slice(&self.ts.to_be_bytes());
        packet.extend_from_slice(&self.ssrc.to_be_bytes());
        packet.extend_from_slice(payload);
        let _ = self.socket.send_to(&packet, self.to);
        self.seq = self.seq.wrapping_add(1);
        self.ts = self.ts.wrapping_add(self.codec.clock_step());
    }

    fn drain(&mut self, buf: &mut [u8], keep_audio: bool) {
        while let Ok((n, _)) = self.socket.recv_from(buf) {
            if n < 12 || buf[0] >> 6 != 2 || (200..=204).contains(&buf[1]) {
                continue; // RTCP
            }
            self.received += 1;
            self.first_rx.get_or_insert_with(Instant::now);
            if keep_audio && self.codec == Codec::Pcmu && self.heard.len() < 8000 * 4 {
                self.heard.extend(buf[12..n].iter().map(|b| ulaw_decode(*b)));
            }
        }
    }
}

/// G.711 µ-law to linear, for checking what the PCMU side hears.
fn ulaw_decode(byte: u8) -> f32 {
    let u = !byte;
    let sign = u & 0x80;
    let exponent = (u >> 4) & 0x07;
    let mantissa = u & 0x0f;
    let magnitude = ((((mantissa as i32) << 3) + 0x84) << exponent) - 0x84;
    (if sign != 0 { -magnitude } else { magnitude }) as f32 / 32768.0
}

/// Captures `count` RTP payloads from a gst-launch encoder.
fn capture_payloads(dir: &Path, codec: Codec, hz: f64, count: usize) -> Result<Vec<Vec<u8>>> {
    let socket = UdpSocket::bind("127.0.0.1:0")?;
    socket.set_read_timeout(Some(Duration::from_secs(10)))?;
    let port = socket.local_addr()?.port();
    let enc = match codec {
        Codec::Pcmu => "audio/x-raw,rate=8000,channels=1 ! mulawenc ! rtppcmupay pt=0 min-ptime=20000000 max-ptime=20000000",
        Codec::Opus => "audio/x-raw,rate=48000,channels=1 ! opusenc bitrate=32000 frame-size=20 ! rtpopuspay pt=111",
    };
    let pipeline = format!("audiotestsrc is-live=true wave=sine freq={hz} volume=0.3 ! audioconvert ! audioresample ! {enc} ! udpsink host=127.0.0.1 port={port}");
    let _gen = e2e::rtp_peer::gst_launch(dir, &format!("capture-{codec:?}"), &pipeline)?;
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

fn status_field(pid: u32, name: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(name).map(|v| v.trim().split_whitespace().next().unwrap_or("0").parse().unwrap_or(0.0)))
        .unwrap_or(0.0)
}

struct RunResult {
    mode: &'static str,
    calls: usize,
    cpu_ms_per_call_second: f64,
    realtime_ratio: f64,
    setup_median_ms: f64,
    setup_p95_ms: f64,
    rss_kib_per_call: f64,
    threads_per_call: f64,
    checked: String,
}

fn run(dir: &Path, mode: &'static str, calls: usize, a: Codec, b: Codec, payloads: &[(Codec, std::sync::Arc<Vec<Vec<u8>>>)]) -> Result<RunResult> {
    let mut bridge = Bridge::start(dir, &[])?;
    let pid = bridge.io.child().pid();
    let (rss0, threads0) = (status_field(pid, "VmRSS:"), status_field(pid, "Threads:"));
    let payloads_for = |c: Codec| payloads.iter().find(|(k, _)| *k == c).map(|(_, p)| p.clone()).unwrap();
    let mut streams: Vec<Stream> = Vec::new();
    let mut setups: Vec<f64> = Vec::new();
    for call in 0..calls {
        let started = Instant::now();
        let mut sessions = Vec::new();
        for (i, codec) in [a, b].into_iter().enumerate() {
            let socket = UdpSocket::bind("127.0.0.1:0")?;
            socket.set_nonblocking(true)?;
            let port = socket.local_addr()?.port();
            let s = bridge.create("rtp", json!({ "codecs": [match codec { Codec::Pcmu => "PCMU", Codec::Opus => "OPUS" }] }))?;
            bridge.set_remote(&s, "offer", &codec.sdp(port))?;
            let (_, answer) = bridge.local_description(&s)?;
            streams.push(Stream {
                socket,
                to: rtp_address(&answer),
                codec,
                payloads: payloads_for(codec),
                next: call * 7 + i,
                seq: (call * 100) as u16,
                ts: (call * 1000) as u32,
                ssrc: 0x1000 + (call * 2 + i) as u32,
                received: 0,
                first_rx: None,
                heard: Vec::new(),
            });
            sessions.push(s);
        }
        let linked = bridge.call("session.connect", json!({ "a": sessions[0], "b": sessions[1] }))?;
        let expected = a == b;
        if linked["passthrough"] != json!(expected) {
            bail!("call {call}: passthrough {} but expected {expected}", linked["passthrough"]);
        }
        // Setup time: from the first request to audio arriving on both
        // sides, generating as a caller would from the moment it can.
        let pair = streams.len() - 2;
        let mut buf = vec![0u8; 2048];
        while streams[pair..].iter().any(|s| s.first_rx.is_none()) && started.elapsed() < Duration::from_secs(5) {
            for s in streams[pair..].iter_mut() {
                s.send();
                s.drain(&mut buf, false);
            }
            std::thread::sleep(PTIME);
        }
        let first = streams[pair..].iter().filter_map(|s| s.first_rx).max();
        setups.push(first.map(|f| (f - started).as_secs_f64() * 1000.0).unwrap_or(f64::NAN));
    }
    // Generate: one tick per packet time, all streams.
    let mut buf = vec![0u8; 2048];
    let start = Instant::now();
    let mut next = start;
    let (mut cpu0, mut window_start) = (None, None);
    let mut late_ticks = 0u64;
    let mut ticks = 0u64;
    while start.elapsed() < WARMUP + MEASURE {
        let now = Instant::now();
        if now < next {
            std::thread::sleep(next - now);
        } else if now - next > PTIME {
            late_ticks += 1;
        }
        next += PTIME;
        ticks += 1;
        let measuring = start.elapsed() >= WARMUP;
        if measuring && cpu0.is_none() {
            cpu0 = Some(cpu_seconds(pid));
            window_start = Some(Instant::now());
        }
        for s in streams.iter_mut() {
            s.send();
            s.drain(&mut buf, measuring);
        }
    }
    let cpu = cpu_seconds(pid) - cpu0.unwrap_or(0.0);
    let window = window_start.map(|w| w.elapsed().as_secs_f64()).unwrap_or(1.0);
    let (rss1, threads1) = (status_field(pid, "VmRSS:"), status_field(pid, "Threads:"));
    // Check every call: packets both ways; the PCMU side hears the other tone.
    for (call, pair) in streams.chunks(2).enumerate() {
        for (i, s) in pair.iter().enumerate() {
            let expected_packets = ((WARMUP.as_secs_f64() + window) * 50.0 * 0.8) as u64;
            if s.received < expected_packets {
                bail!("{mode} K={calls}: call {call} leg {i} received {} packets, expected at least {expected_packets}", s.received);
            }
            if s.codec == Codec::Pcmu {
                let want = pair[1 - i].codec.tone();
                let pcm = Pcm { rate: 8000, samples: s.heard.clone() };
                if pcm.tone_share(want) < 0.8 {
                    bail!("{mode} K={calls}: call {call} leg {i} does not hear {want} Hz (share {:.2})", pcm.tone_share(want));
                }
            }
        }
    }
    setups.sort_by(|x, y| x.total_cmp(y));
    let pct = |p: f64| setups.get(((setups.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or(f64::NAN);
    bridge.io.close_stdin();
    let _ = bridge.io.child().wait_timeout(Duration::from_secs(20));
    Ok(RunResult {
        mode,
        calls,
        cpu_ms_per_call_second: cpu * 1000.0 / (calls as f64 * window),
        realtime_ratio: 1.0 - late_ticks as f64 / ticks as f64,
        setup_median_ms: pct(0.5),
        setup_p95_ms: pct(0.95),
        rss_kib_per_call: (rss1 - rss0) / calls as f64,
        threads_per_call: (threads1 - threads0) / calls as f64,
        checked: format!("{} calls: packets both ways, PCMU side hears the other tone", calls),
    })
}

/// The codec floor: the same elements as one transcoded call, in one
/// pipeline with no network, paced by the clock. CPU per call-second.
fn codec_floor(dir: &Path) -> Result<f64> {
    let opus_to_pcmu = "audiotestsrc is-live=true freq=440 ! audio/x-raw,rate=48000,channels=1 ! opusenc bitrate=32000 complexity=5 frame-size=20 ! opusdec ! audioresample ! audio/x-raw,rate=8000 ! mulawenc ! fakesink";
    let pcmu_to_opus = "audiotestsrc is-live=true freq=1000 ! audio/x-raw,rate=8000,channels=1 ! mulawenc ! mulawdec ! audioresample ! audio/x-raw,rate=48000 ! opusenc bitrate=32000 complexity=5 frame-size=20 audio-type=voice ! fakesink";
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
    let levels: Vec<usize> = std::env::var("BENCH_CALLS")
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1, 10, 50, 100]);
    let dir = test_dir("bench");
    eprintln!("bench: scratch dir {}", dir.display());
    let payloads = vec![
        (Codec::Pcmu, std::sync::Arc::new(capture_payloads(&dir, Codec::Pcmu, TONE_A, 100)?)),
        (Codec::Opus, std::sync::Arc::new(capture_payloads(&dir, Codec::Opus, TONE_B, 100)?)),
    ];
    let mut results = Vec::new();
    for &k in &levels {
        eprintln!("bench: passthrough, {k} calls");
        results.push(run(&dir, "passthrough PCMU<->PCMU", k, Codec::Pcmu, Codec::Pcmu, &payloads)?);
        eprintln!("bench: transcoded, {k} calls");
        results.push(run(&dir, "transcoded PCMU<->Opus", k, Codec::Pcmu, Codec::Opus, &payloads)?);
    }
    eprintln!("bench: codec floor");
    let floor = codec_floor(&dir)?;

    println!();
    let date = std::process::Command::new("date").arg("-u").arg("+%F %H:%M UTC").output().map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string()).unwrap_or_default();
    println!("sipbridge benchmark ({date}; {} cores; loopback, release build; one run)", std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0));
    println!("{:<26} {:>6} {:>14} {:>10} {:>12} {:>10} {:>12} {:>11}", "mode", "calls", "CPU ms/call-s", "real time", "setup med ms", "p95 ms", "RSS KiB/call", "threads/call");
    for r in &results {
        println!(
            "{:<26} {:>6} {:>14.2} {:>9.1}% {:>12.1} {:>10.1} {:>12.0} {:>11.2}",
            r.mode, r.calls, r.cpu_ms_per_call_second, r.realtime_ratio * 100.0, r.setup_median_ms, r.setup_p95_ms, r.rss_kib_per_call, r.threads_per_call
        );
    }
    println!("{:<26} {:>6} {:>14.2}   (same elements, one pipeline, no network)", "codec floor Opus<->PCMU", 1, floor);
    let json = json!({
        "results": results.iter().map(|r| json!({
            "mode": r.mode, "calls": r.calls, "cpu_ms_per_call_second": r.cpu_ms_per_call_second,
            "realtime": r.realtime_ratio, "setup_median_ms": r.setup_median_ms, "setup_p95_ms": r.setup_p95_ms,
            "rss_kib_per_call": r.rss_kib_per_call, "threads_per_call": r.threads_per_call, "checked": r.checked,
        })).collect::<Vec<_>>(),
        "codec_floor_cpu_ms_per_call_second": floor,
    });
    let out = workspace_root().join("target/bench.json");
    std::fs::write(&out, serde_json::to_string_pretty(&json)?)?;
    println!("\nwritten to {}", out.display());
    Ok(())
}
