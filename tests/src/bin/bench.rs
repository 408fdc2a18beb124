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
    capture(dir, codec, &format!("wave=sine freq={hz} volume=0.3"), count)
}

/// Captures `count` RTP payloads of `codec` from `audiotestsrc WAVE`.
fn capture(dir: &Path, codec: Codec, wave: &str, count: usize) -> Result<Vec<Vec<u8>>> {
    let socket = UdpSocket::bind("127.0.0.1:0")?;
    socket.set_read_timeout(Some(Duration::from_secs(10)))?;
    let port = socket.local_addr()?.port();
    let enc = match codec {
        Codec::Pcmu => "audio/x-raw,rate=8000,channels=1 ! mulawenc ! rtppcmupay pt=0 min-ptime=20000000 max-ptime=20000000",
        Codec::Opus => "audio/x-raw,rate=48000,channels=1 ! opusenc bitrate=32000 frame-size=20 ! rtpopuspay pt=111",
    };
    let pipeline = format!("audiotestsrc is-live=true {wave} ! audioconvert ! audioresample ! {enc} ! udpsink host=127.0.0.1 port={port}");
    let name = format!("capture-{codec:?}-{}", wave.split_whitespace().next().unwrap_or("").trim_start_matches("wave="));
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

fn status_field(pid: u32, name: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(name).map(|v| v.trim().split_whitespace().next().unwrap_or("0").parse().unwrap_or(0.0)))
        .unwrap_or(0.0)
}

/// What the calls go through.
enum Relay<'a> {
    /// `sipbridge stdio`: two RTP sessions joined by `session.connect`.
    Sipbridge,
    /// rtpengine, userspace only (`--table=-1`), driven over its ng protocol.
    Rtpengine(&'a Rtpengine),
}

struct RunResult {
    system: &'static str,
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

fn run(
    dir: &Path,
    relay: Relay,
    mode: &'static str,
    calls: usize,
    a: Codec,
    b: Codec,
    payloads: &[(Codec, std::sync::Arc<Vec<Vec<u8>>>)],
) -> Result<RunResult> {
    let mut bridge = match relay {
        Relay::Sipbridge => Some(Bridge::start(dir, &[])?),
        Relay::Rtpengine(_) => None,
    };
    let pid = match (&mut bridge, &relay) {
        (Some(b), _) => b.io.child().pid(),
        (None, Relay::Rtpengine(r)) => r.pid,
        _ => unreachable!(),
    };
    let (rss0, threads0) = (status_field(pid, "VmRSS:"), status_field(pid, "Threads:"));
    let payloads_for = |c: Codec| payloads.iter().find(|(k, _)| *k == c).map(|(_, p)| p.clone()).unwrap();
    let mut streams: Vec<Stream> = Vec::new();
    let mut setups: Vec<f64> = Vec::new();
    for call in 0..calls {
        let started = Instant::now();
        let sockets: Vec<UdpSocket> = (0..2).map(|_| UdpSocket::bind("127.0.0.1:0")).collect::<std::io::Result<_>>()?;
        let ports: Vec<u16> = sockets.iter().map(|s| s.local_addr().map(|a| a.port())).collect::<std::io::Result<_>>()?;
        // Where each generated stream must send.
        let targets: Vec<SocketAddr> = match (&bridge, &relay) {
            (Some(bridge), _) => {
                let mut targets = Vec::new();
                let mut sessions = Vec::new();
                for (codec, port) in [a, b].into_iter().zip(&ports) {
                    let s = bridge.create("rtp", json!({ "codecs": [match codec { Codec::Pcmu => "PCMU", Codec::Opus => "OPUS" }] }))?;
                    bridge.set_remote(&s, "offer", &codec.sdp(*port))?;
                    let (_, answer) = bridge.local_description(&s)?;
                    targets.push(rtp_address(&answer));
                    sessions.push(s);
                }
                let linked = bridge.call("session.connect", json!({ "a": sessions[0], "b": sessions[1] }))?;
                if linked["passthrough"] != json!(a == b) {
                    bail!("call {call}: passthrough {} but expected {}", linked["passthrough"], a == b);
                }
                targets
            }
            (None, Relay::Rtpengine(engine)) => engine.call(&format!("bench-{call}"), (b, ports[1]), (a, ports[0]))?,
            _ => unreachable!(),
        };
        for (i, (codec, socket)) in [a, b].into_iter().zip(sockets).enumerate() {
            socket.set_nonblocking(true)?;
            streams.push(Stream {
                socket,
                to: targets[i],
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
    match (&mut bridge, &relay) {
        (Some(bridge), _) => {
            bridge.io.close_stdin();
            let _ = bridge.io.child().wait_timeout(Duration::from_secs(20));
        }
        (None, Relay::Rtpengine(engine)) => {
            for call in 0..calls {
                engine.delete(&format!("bench-{call}"))?;
            }
        }
        _ => {}
    }
    let system = match relay {
        Relay::Sipbridge => "sipbridge",
        Relay::Rtpengine(_) => "rtpengine",
    };
    Ok(RunResult {
        system,
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
    // RFC 4571 framing to stdout (fdsink: see DESIGN.md on filesink).
    let pipeline = format!("filesrc location={} ! wavparse ! audioconvert ! audio/x-raw,channels=1 ! {enc} ! rtpstreampay ! fdsink fd=1", wav.display());
    let out = std::process::Command::new("gst-launch-1.0").arg("-q").args(e2e::rtp_peer::shell_words(&pipeline)).output()?;
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
        bail!("burst stimulus {codec:?}: {} packets encoded, {LATENCY_PACKETS} needed: {}", payloads.len(), String::from_utf8_lossy(&out.stderr));
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
                let s = bridge.create("rtp", json!({ "codecs": [match codec { Codec::Pcmu => "PCMU", Codec::Opus => "OPUS" }] }))?;
                bridge.set_remote(&s, "offer", &codec.sdp(port))?;
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
    for tick in 0..LATENCY_PACKETS {
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
                Codec::Opus => (buf[..n].chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]]) as f64 / 32768.0).collect(), 48000.0),
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
        packet.extend_from_slice(&stimulus[tick]);
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
    // BENCH_ONLY=latency runs the latency section alone.
    let only_latency = std::env::var("BENCH_ONLY").is_ok_and(|v| v == "latency");
    let mut results = Vec::new();
    let mut floor = None;
    if !only_latency {
        let payloads = vec![
            (Codec::Pcmu, std::sync::Arc::new(capture_payloads(&dir, Codec::Pcmu, TONE_A, 100)?)),
            (Codec::Opus, std::sync::Arc::new(capture_payloads(&dir, Codec::Opus, TONE_B, 100)?)),
        ];
        let rtpengine = Rtpengine::start(&dir)?;
        for &k in &levels {
            for (mode, a, b) in [("passthrough PCMU<->PCMU", Codec::Pcmu, Codec::Pcmu), ("transcoded PCMU<->Opus", Codec::Pcmu, Codec::Opus)] {
                eprintln!("bench: sipbridge, {mode}, {k} calls");
                results.push(run(&dir, Relay::Sipbridge, mode, k, a, b, &payloads)?);
                eprintln!("bench: rtpengine, {mode}, {k} calls");
                results.push(run(&dir, Relay::Rtpengine(&rtpengine), mode, k, a, b, &payloads)?);
            }
        }
        drop(rtpengine);
        eprintln!("bench: codec floor");
        floor = Some(codec_floor(&dir)?);
    }
    eprintln!("bench: added latency");
    let pcmu_bursts = burst_stimulus(&dir, Codec::Pcmu)?;
    let opus_bursts = burst_stimulus(&dir, Codec::Opus)?;
    let latencies = vec![
        ("PCMU -> PCMU (passthrough)", latency(&dir, Route::Sipbridge, Codec::Pcmu, Codec::Pcmu, &pcmu_bursts)?),
        ("Opus -> PCMU (transcoded)", latency(&dir, Route::Sipbridge, Codec::Opus, Codec::Pcmu, &opus_bursts)?),
        ("PCMU -> Opus (transcoded)", latency(&dir, Route::Sipbridge, Codec::Pcmu, Codec::Opus, &pcmu_bursts)?),
    ];
    // The Opus side is decoded by a helper process; its own delay, measured
    // alone, is part of the PCMU -> Opus figure (not subtracted).
    let helper = latency(&dir, Route::Direct, Codec::Opus, Codec::Opus, &opus_bursts)?;

    println!();
    let date = std::process::Command::new("date").arg("-u").arg("+%F %H:%M UTC").output().map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string()).unwrap_or_default();
    println!("sipbridge benchmark ({date}; {} cores; loopback, release build; one run)", std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0));
    println!("{:<10} {:<24} {:>6} {:>14} {:>10} {:>12} {:>10} {:>12} {:>11} {:>10}", "system", "mode", "calls", "CPU ms/call-s", "real time", "setup med ms", "p95 ms", "RSS KiB/call", "threads/call", "vs rtpe");
    for r in &results {
        let ratio = results
            .iter()
            .find(|o| o.system == "rtpengine" && o.mode == r.mode && o.calls == r.calls)
            .map(|o| format!("{:.2}x", r.cpu_ms_per_call_second / o.cpu_ms_per_call_second))
            .unwrap_or_default();
        println!(
            "{:<10} {:<24} {:>6} {:>14.2} {:>9.1}% {:>12.1} {:>10.1} {:>12.0} {:>11.2} {:>10}",
            r.system, r.mode, r.calls, r.cpu_ms_per_call_second, r.realtime_ratio * 100.0, r.setup_median_ms, r.setup_p95_ms, r.rss_kib_per_call, r.threads_per_call, ratio
        );
    }
    if let Some(floor) = floor {
        println!("{:<10} {:<24} {:>6} {:>14.2}   (same GStreamer elements, one pipeline, no network)", "floor", "transcoded PCMU<->Opus", 1, floor);
    }
    println!();
    println!("added latency through sipbridge (tone-burst onsets, one clock; jitter buffer {} ms)", 40);
    for (what, d) in &latencies {
        println!("  {what:<28} median {:>6.1} ms   min {:>6.1}   max {:>6.1}   ({} bursts)", d[d.len() / 2], d[0], d[d.len() - 1], d.len());
    }
    let d = &helper;
    println!("  (the Opus decoding helper alone: median {:.1} ms, min {:.1}, max {:.1}; included above)", d[d.len() / 2], d[0], d[d.len() - 1]);
    let json = json!({
        "results": results.iter().map(|r| json!({
            "system": r.system, "mode": r.mode, "calls": r.calls, "cpu_ms_per_call_second": r.cpu_ms_per_call_second,
            "realtime": r.realtime_ratio, "setup_median_ms": r.setup_median_ms, "setup_p95_ms": r.setup_p95_ms,
            "rss_kib_per_call": r.rss_kib_per_call, "threads_per_call": r.threads_per_call, "checked": r.checked,
        })).collect::<Vec<_>>(),
        "codec_floor_cpu_ms_per_call_second": floor,
        "latency_opus_decoder_helper_ms": json!({ "median": helper[helper.len() / 2], "min": helper[0], "max": helper[helper.len() - 1] }),
        "latency_ms": latencies.iter().map(|(what, d)| json!({ "path": what, "median": d[d.len() / 2], "min": d[0], "max": d[d.len() - 1] })).collect::<Vec<_>>(),
    });
    let out = workspace_root().join("target/bench.json");
    std::fs::write(&out, serde_json::to_string_pretty(&json)?)?;
    println!("\nwritten to {}", out.display());
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
        cmd.args(["--table=-1", "--interface=127.0.0.1", "--foreground", "--log-stderr", "--log-level=4", "--delete-delay=0"])
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

    /// Sets up one call: `offerer` offers (its codec, its port), `answerer`
    /// answers. Returns where each side must send, in (answerer, offerer)
    /// order to match the generator's (a, b) streams.
    fn call(&self, id: &str, offerer: (Codec, u16), answerer: (Codec, u16)) -> Result<Vec<SocketAddr>> {
        let mut offer = vec![
            ("command", B::s("offer")),
            ("call-id", B::s(id)),
            ("from-tag", B::s("b")),
            ("sdp", B::s(&offerer.0.sdp(offerer.1))),
        ];
        if offerer.0 != answerer.0 {
            // The other side gets the answerer's codec offered; rtpengine
            // transcodes between them.
            offer.push(("codec", B::Dict(vec![("transcode".into(), B::List(vec![B::s("PCMU")]))])));
        }
        let reply = self.command(&offer)?;
        let to_offerer_side = sdp_address(&reply)?; // the answerer sends here
        let answer = vec![
            ("command", B::s("answer")),
            ("call-id", B::s(id)),
            ("from-tag", B::s("b")),
            ("to-tag", B::s("a")),
            ("sdp", B::s(&answerer.0.sdp(answerer.1))),
        ];
        let reply = self.command(&answer)?;
        let to_answerer_side = sdp_address(&reply)?; // the offerer sends here
        Ok(vec![to_offerer_side, to_answerer_side])
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
    h.write_u64(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos() as u64);
    h.finish()
}

/// The RTP address in the SDP carried in a bencoded ng reply.
fn sdp_address(reply: &str) -> Result<SocketAddr> {
    let start = reply.find("v=0").context("no SDP in the rtpengine reply")?;
    Ok(rtp_address(&reply[start..]))
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
