//! The far-end WebRTC peers (tests/peers/): headless Chromium and aiortc,
//! both driven over the same JSON-lines protocol (tests/peers/README.md).

use crate::audio::{read_wav, Pcm};
use crate::jsonlines::JsonLines;
use crate::process::workspace_root;
use anyhow::{bail, Result};
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stack {
    Chromium,
    Aiortc,
}

pub struct WebRtcPeer {
    pub io: JsonLines,
    pub stack: Stack,
}

impl WebRtcPeer {
    /// Starts a peer whose microphone plays a sine tone of `tone_hz`.
    pub fn start(stack: Stack, dir: &Path, name: &str, tone_hz: u32) -> Result<WebRtcPeer> {
        let root = workspace_root();
        let mut cmd = match stack {
            Stack::Chromium => {
                let mut c = Command::new("node");
                c.arg(root.join("tests/peers/chromium-peer.mjs"));
                c
            }
            Stack::Aiortc => {
                let mut c = Command::new(root.join("target/pyenv/bin/python"));
                c.arg(root.join("tests/peers/aiortc_peer.py"));
                c
            }
        };
        cmd.args(["--tone", &tone_hz.to_string(), "--log-prefix", name]);
        let io = JsonLines::spawn(cmd, dir, name, Duration::from_secs(180))?;
        io.wait_event(Duration::from_secs(30), |e| e["event"] == "ready")?;
        Ok(WebRtcPeer { io, stack })
    }

    fn cmd(&self, cmd: &str, mut args: Value, timeout: Duration) -> Result<Value> {
        args["cmd"] = json!(cmd);
        let id = self.io.send(args)?;
        let reply = self.io.reply(&id, timeout)?;
        if let Some(err) = reply.get("error") {
            bail!("{:?} peer: {cmd} failed: {err}", self.stack);
        }
        Ok(reply)
    }

    pub fn create_offer(&self) -> Result<String> {
        Ok(self.cmd("createOffer", json!({}), Duration::from_secs(20))?["sdp"].as_str().unwrap_or_default().into())
    }

    /// An offer with a receive-only video m-line after the audio one
    /// (Chromium only).
    pub fn create_offer_with_video(&self) -> Result<String> {
        let offer = self.cmd("createOffer", json!({ "video": true }), Duration::from_secs(20))?;
        Ok(offer["sdp"].as_str().unwrap_or_default().into())
    }

    pub fn create_answer(&self) -> Result<String> {
        Ok(self.cmd("createAnswer", json!({}), Duration::from_secs(20))?["sdp"].as_str().unwrap_or_default().into())
    }

    pub fn set_remote(&self, kind: &str, sdp: &str) -> Result<()> {
        self.cmd("setRemoteDescription", json!({ "type": kind, "sdp": sdp }), Duration::from_secs(20))?;
        Ok(())
    }

    pub fn wait_connected(&self) -> Result<()> {
        self.cmd("waitConnected", json!({ "timeoutMs": 15000 }), Duration::from_secs(20))?;
        Ok(())
    }

    /// Records what the peer receives for `ms` and returns it.
    pub fn record(&self, ms: u64, path: &Path) -> Result<Pcm> {
        self.cmd("record", json!({ "ms": ms, "path": path }), Duration::from_millis(ms + 15000))?;
        read_wav(path)
    }

    pub fn send_dtmf(&self, tones: &str, duration_ms: u32) -> Result<()> {
        self.cmd("sendDtmf", json!({ "tones": tones, "duration": duration_ms }), Duration::from_secs(20))?;
        Ok(())
    }

    pub fn stats(&self) -> Result<Value> {
        self.cmd("stats", json!({}), Duration::from_secs(10))
    }
}
