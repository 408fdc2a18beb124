//! `make soak`: does `sipbridge` give its memory back? Not part of `make test`.
//!
//! Three phases, each in a fresh process, printing the process's resident
//! memory, open file descriptors and threads every 10% of the phase, then
//! the growth per session (or call) after warm-up (the first 10%): resident
//! memory after a quiet spell at the end against that after a quiet spell
//! once warmed up (at rest: what a busy moment holds, e.g. tokio's blocking
//! threads, has ended, and freed memory is back with the system), and the
//! descriptors and threads at those two moments (process-wide threads and
//! sockets are made on first use; tokio's blocking threads end after 10 s
//! idle):
//!
//! 1. RTP sessions over `sipbridge stdio`: an RTP session created, given an
//!    offer, answered and closed; every fifth a linked pair (two sessions,
//!    `session.connect`, a few RTP packets relayed), and every fiftieth pair
//!    also joins a room, records and plays a file.
//! 2. WebRTC sessions over `sipbridge stdio`: two WebRTC sessions of the
//!    bridge negotiating with each other over loopback (ICE, DTLS-SRTP),
//!    linked, closed once both report `connected`.
//! 3. Calls to `sipbridge daemon` (echo preset) from SIPp: INVITE, 200,
//!    ACK, a short pause, BYE; run in ten batches.
//!
//! Counts: `SOAK_SESSIONS` (default 100000, stdio sessions in all),
//! `SOAK_WEBRTC_SHARE` (percent of them in phase 2, default 10),
//! `SOAK_CALLS` (default 10000). `SIPBRIDGE_BIN` picks the binary.

use anyhow::{bail, Context, Result};
use e2e::audio::{tone, write_wav};
use e2e::bridge::Bridge;
use e2e::daemon::{CallerScenario, Daemon, Ending};
use e2e::jsonlines::JsonLines;
use e2e::process::{open_fds, sipbridge_bin, status_field, test_dir};
use e2e::sipp::Sipp;
use serde_json::json;
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Longest a phase's process may live.
const PROCESS_LIMIT: Duration = Duration::from_secs(6 * 3600);
/// Long enough for tokio's idle blocking threads (10 s) to end.
const QUIET: Duration = Duration::from_secs(15);
/// Target growth after warm-up.
const TARGET_KB: f64 = 0.1;

fn main() -> Result<()> {
    let sessions = env_count("SOAK_SESSIONS", 100_000);
    let webrtc_share = env_count("SOAK_WEBRTC_SHARE", 10).min(100);
    let calls = env_count("SOAK_CALLS", 10_000);
    let webrtc = (sessions * webrtc_share / 100) & !1;
    let rtp = sessions - webrtc;
    let dir = test_dir("soak");
    println!("soak: {} ({rtp} RTP + {webrtc} WebRTC stdio sessions, {calls} daemon calls)", sipbridge_bin().display());
    let mut verdicts = Vec::new();
    if rtp > 0 {
        verdicts.push(rtp_sessions(&dir, rtp)?);
    }
    if webrtc > 0 {
        verdicts.push(webrtc_sessions(&dir, webrtc)?);
    }
    if calls > 0 {
        verdicts.push(daemon_calls(&dir, calls)?);
    }
    println!();
    for v in &verdicts {
        println!("{v}");
    }
    Ok(())
}

fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Resident memory (KiB), open descriptors and threads of a process.
#[derive(Clone, Copy)]
struct Figures {
    rss_kb: f64,
    fds: usize,
    threads: usize,
}

impl Figures {
    fn of(pid: u32) -> Figures {
        Figures {
            rss_kb: status_field(pid, "VmRSS:"),
            fds: open_fds(pid),
            threads: status_field(pid, "Threads:") as usize,
        }
    }
}

/// One phase's table: a row every 10%, then the verdict.
struct Table {
    phase: &'static str,
    unit: &'static str,
    total: usize,
    pid: u32,
    /// At rest after warm-up: what the end must come back to.
    idle: Option<Figures>,
    start: Instant,
    /// How many were done at warm-up, and at the last row.
    warm: Option<usize>,
    last: Option<usize>,
}

impl Table {
    fn new(phase: &'static str, unit: &'static str, total: usize, pid: u32) -> Table {
        println!("\n{phase}: {total} {unit}s");
        println!("| {unit}s | RSS MB | fds | threads | seconds |");
        println!("|---:|---:|---:|---:|---:|");
        let table = Table { phase, unit, total, pid, idle: None, start: Instant::now(), warm: None, last: None };
        table.row("start", Figures::of(pid));
        table
    }

    fn row(&self, label: &str, f: Figures) {
        println!(
            "| {label} | {:.1} | {} | {} | {:.0} |",
            f.rss_kb / 1024.0,
            f.fds,
            f.threads,
            self.start.elapsed().as_secs_f64()
        );
    }

    /// Called after each unit of work with how many are done.
    fn progress(&mut self, done: usize) {
        let step = (self.total / 10).max(1);
        if done % step != 0 && done != self.total {
            return;
        }
        let f = Figures::of(self.pid);
        self.row(&done.to_string(), f);
        self.last = Some(done);
        if self.warm.is_none() {
            self.warm = Some(done);
            std::thread::sleep(QUIET);
            let idle = Figures::of(self.pid);
            self.row("quiet", idle);
            self.idle = Some(idle);
        }
    }

    /// Waits out the quiet spell, prints the idle row and the verdict.
    fn finish(self) -> String {
        std::thread::sleep(QUIET);
        let quiet = Figures::of(self.pid);
        self.row("quiet", quiet);
        let (Some(n0), Some(n1), Some(idle)) = (self.warm, self.last, self.idle) else {
            return format!("{}: nothing measured", self.phase);
        };
        let growth = if n1 > n0 { (quiet.rss_kb - idle.rss_kb) / (n1 - n0) as f64 } else { 0.0 };
        let back = quiet.fds <= idle.fds && quiet.threads <= idle.threads;
        format!(
            "{}: {:.3} KB per {} after warm-up ({} -> {}; target < {TARGET_KB}: {}); at rest: {} fds, {} threads (after warm-up: {}, {}: {})",
            self.phase,
            growth,
            self.unit,
            n0,
            n1,
            if growth < TARGET_KB { "met" } else { "NOT met" },
            quiet.fds,
            quiet.threads,
            idle.fds,
            idle.threads,
            if back { "back" } else { "NOT back" },
        )
    }
}

/// `sipbridge stdio` for a long run (Bridge::start bounds it at 240 s).
fn start_stdio(dir: &Path, name: &str) -> Result<Bridge> {
    let mut cmd = Command::new(sipbridge_bin());
    cmd.arg("stdio").args(["--rtp-ports", "0-0"]).env("SIPBRIDGE_LOG", "warn");
    let io = JsonLines::spawn(cmd, dir, name, PROCESS_LIMIT)?;
    io.wait_event(Duration::from_secs(15), |e| e["method"] == "ready")?;
    Ok(Bridge { io })
}

/// What the RTP peers of phase 1 are: one socket of ours, which the
/// bridge sends its RTP to and which sends the linked pairs' packets.
struct Peer {
    socket: UdpSocket,
    offer: String,
}

impl Peer {
    fn new() -> Result<Peer> {
        let socket = UdpSocket::bind("127.0.0.1:0")?;
        let port = socket.local_addr()?.port();
        let offer = format!(
            "v=0\r\no=soak 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=ptime:20\r\na=sendrecv\r\n"
        );
        Ok(Peer { socket, offer })
    }

    /// An answered RTP session; returns it and where its RTP goes.
    fn answered(&self, bridge: &Bridge) -> Result<(String, std::net::SocketAddr)> {
        bridge.answer_rtp(&self.offer, json!({ "codecs": ["PCMU"] }))
    }

    /// A few PCMU packets (silence) to `to`.
    fn send(&self, to: std::net::SocketAddr, packets: u16) -> Result<()> {
        for seq in 0..packets {
            let mut packet = vec![0x80, 0, 0, 0, 0, 0, 0, 0, 0x50, 0x0a, 0x4b, 0x00];
            packet[2..4].copy_from_slice(&seq.to_be_bytes());
            packet[4..8].copy_from_slice(&(seq as u32 * 160).to_be_bytes());
            packet.extend_from_slice(&[0xff; 160]);
            self.socket.send_to(&packet, to)?;
        }
        Ok(())
    }
}

fn close(bridge: &Bridge, session: &str) -> Result<()> {
    bridge.call("session.close", json!({ "session": session }))?;
    Ok(())
}

fn rtp_sessions(dir: &Path, total: usize) -> Result<String> {
    let mut bridge = start_stdio(dir, "sipbridge-rtp")?;
    let peer = Peer::new()?;
    let wav = dir.join("tone.wav");
    write_wav(&wav, &tone(440.0, 0.5, 8000, 0.3))?;
    let mut table = Table::new("RTP sessions (stdio)", "session", total, bridge.io.child().pid());
    let mut done = 0;
    let mut cycle = 0usize;
    while done < total {
        cycle += 1;
        if cycle % 5 == 0 && total - done >= 2 {
            linked_pair(&bridge, &peer, dir, &wav, cycle)?;
            for _ in 0..2 {
                done += 1;
                table.progress(done);
            }
        } else {
            let (s, _) = peer.answered(&bridge)?;
            close(&bridge, &s)?;
            done += 1;
            table.progress(done);
        }
        if cycle % 100 == 0 {
            bridge.io.drain_events();
        }
    }
    Ok(table.finish())
}

/// Two RTP sessions linked (relayed packets both ways); every tenth pair
/// also in a room, recording one side and playing a file to the other.
fn linked_pair(bridge: &Bridge, peer: &Peer, dir: &Path, wav: &Path, cycle: usize) -> Result<()> {
    let (a, to_a) = peer.answered(bridge)?;
    let (b, to_b) = peer.answered(bridge)?;
    if cycle % 50 == 0 {
        let room = format!("r{cycle}");
        bridge.call("room.join", json!({ "room": room, "session": a }))?;
        bridge.call("room.join", json!({ "room": room, "session": b }))?;
        let file: PathBuf = dir.join("soak-record.wav");
        bridge.call("room.record", json!({ "room": room, "file": dir.join("soak-room.wav") }))?;
        bridge.call("room.leave", json!({ "room": room, "session": b }))?;
        bridge.call("session.record", json!({ "session": a, "file": file }))?;
        bridge.call("session.play", json!({ "session": b, "file": wav }))?;
        peer.send(to_a, 5)?;
        bridge.call("session.stopRecord", json!({ "session": a }))?;
    } else {
        bridge.call("session.connect", json!({ "a": a, "b": b }))?;
        peer.send(to_a, 5)?;
        peer.send(to_b, 5)?;
    }
    close(bridge, &a)?;
    close(bridge, &b)
}

fn webrtc_sessions(dir: &Path, total: usize) -> Result<String> {
    let mut bridge = start_stdio(dir, "sipbridge-webrtc")?;
    let mut table = Table::new("WebRTC sessions (stdio, connected pairs)", "session", total, bridge.io.child().pid());
    for pair in 0..total / 2 {
        let (a, b) = bridge.connected_webrtc_pair().with_context(|| format!("pair {pair}"))?;
        close(&bridge, &a)?;
        close(&bridge, &b)?;
        bridge.io.drain_events();
        table.progress(pair * 2 + 1);
        table.progress(pair * 2 + 2);
    }
    Ok(table.finish())
}

fn daemon_calls(dir: &Path, total: usize) -> Result<String> {
    let config = "preset = \"echo\"\n[limits]\nmax_calls = 200\n";
    let mut daemon = Daemon::start_for(dir, "sipbridge-daemon", config, &[], &[], PROCESS_LIMIT)?;
    let mut scenario = CallerScenario::new(Ending::CallerHangsUp);
    scenario.hold_ms = 200;
    let xml = scenario.write(dir, "soak-caller")?;
    let mut table = Table::new("daemon calls (SIPp, echo preset)", "call", total, daemon.child.pid());
    let batches = 10.min(total);
    let mut done = 0;
    for batch in 0..batches {
        let n = total / batches + usize::from(batch < total % batches);
        let rate = 50;
        let limit = Duration::from_secs((n / rate) as u64 * 3 + 60);
        let mut sipp = Sipp::new(xml.to_str().context("scenario path")?)
            .args(["-s", "echo", "-m", &n.to_string(), "-r", &rate.to_string(), "-l", "100"])
            .remote(daemon.addr())
            .limit(limit)
            .spawn(dir, &format!("sipp-{batch}"))?;
        sipp.expect_success(limit)?;
        for _ in 0..n {
            done += 1;
            table.progress(done);
        }
    }
    let verdict = table.finish();
    match daemon.terminate(Duration::from_secs(20))? {
        status if status.success() => Ok(verdict),
        status => bail!("the daemon exited with {status}"),
    }
}
