//! `sipbridge stdio` under test: JSON-RPC requests matched by id, the
//! `session.event` notifications it sends, and raw lines for bad input.

use crate::jsonlines::JsonLines;
use crate::process::sipbridge_bin;
use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// The RTP address an SDP of the bridge advertises (its c= and m= lines).
pub fn rtp_address(sdp: &str) -> std::net::SocketAddr {
    let ip = sdp.lines().find_map(|l| l.strip_prefix("c=IN IP4 ")).expect("c= line").trim();
    let port = sdp.lines().find_map(|l| l.strip_prefix("m=audio ")).and_then(|l| l.split(' ').next()).expect("m= line");
    format!("{ip}:{port}").parse().expect("an address")
}

pub const REPLY_TIMEOUT: Duration = Duration::from_secs(20);

pub struct Bridge {
    pub io: JsonLines,
}

impl Bridge {
    /// Starts `sipbridge stdio` with `args`, and waits for its `ready`.
    pub fn start(dir: &Path, args: &[&str]) -> Result<Bridge> {
        Bridge::start_with_env(dir, args, &[])
    }

    /// [`Bridge::start`] with extra environment variables (name, value).
    pub fn start_with_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Result<Bridge> {
        let mut cmd = Command::new(sipbridge_bin());
        cmd.arg("stdio").args(["--rtp-ports", "0-0"]).args(args).envs(env.iter().copied());
        if std::env::var_os("SIPBRIDGE_LOG").is_none() {
            cmd.env("SIPBRIDGE_LOG", "info,pipelines=debug");
        }
        let io = JsonLines::spawn(cmd, dir, "sipbridge", Duration::from_secs(240))?;
        io.wait_event(Duration::from_secs(15), |e| e["method"] == "ready")?;
        Ok(Bridge { io })
    }

    /// Sends a request; returns the whole response object (result or error).
    pub fn request(&self, method: &str, params: Value) -> Result<Value> {
        let id = self.io.send(json!({ "jsonrpc": "2.0", "method": method, "params": params }))?;
        self.io.reply(&id, REPLY_TIMEOUT)
    }

    /// Sends a request that must succeed; returns its result.
    pub fn call(&self, method: &str, params: Value) -> Result<Value> {
        let response = self.request(method, params.clone())?;
        match response.get("result") {
            Some(result) => Ok(result.clone()),
            None => bail!("{method} {params} failed: {}", response["error"]),
        }
    }

    /// Creates a session of `kind` ("webrtc" or "rtp") with extra options.
    pub fn create(&self, kind: &str, mut options: Value) -> Result<String> {
        options["kind"] = json!(kind);
        let result = self.call("session.create", options)?;
        Ok(result["session"].as_str().unwrap_or_default().to_string())
    }

    pub fn local_description(&self, session: &str) -> Result<(String, String)> {
        let r = self.call("session.getLocalDescription", json!({ "session": session }))?;
        Ok((r["type"].as_str().unwrap_or_default().into(), r["sdp"].as_str().unwrap_or_default().into()))
    }

    /// An RTP session (with `options`) answering `offer`; returns the
    /// session and where the offerer must send its RTP.
    pub fn answer_rtp(&self, offer: &str, options: Value) -> Result<(String, std::net::SocketAddr)> {
        let s = self.create("rtp", options)?;
        self.set_remote(&s, "offer", offer)?;
        let (_, answer) = self.local_description(&s)?;
        Ok((s, rtp_address(&answer)))
    }

    pub fn set_remote(&self, session: &str, kind: &str, sdp: &str) -> Result<()> {
        self.call("session.setRemoteDescription", json!({ "session": session, "type": kind, "sdp": sdp }))?;
        Ok(())
    }

    /// Waits for a `session.event` of `kind` on `session` matching `pred`.
    pub fn wait_session_event(
        &self,
        session: &str,
        kind: &str,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Result<Value> {
        let event = self.io.wait_event(timeout, |e| {
            e["method"] == "session.event"
                && e["params"]["session"] == session
                && e["params"]["type"] == kind
                && pred(&e["params"])
        })?;
        Ok(event["params"].clone())
    }

    /// Two WebRTC sessions of this bridge negotiated with each other over
    /// loopback (ICE, DTLS-SRTP) and linked, once both report `connected`.
    pub fn connected_webrtc_pair(&self) -> Result<(String, String)> {
        let a = self.create("webrtc", json!({}))?;
        let b = self.create("webrtc", json!({}))?;
        let (_, offer) = self.local_description(&a)?;
        self.set_remote(&b, "offer", &offer)?;
        let (_, answer) = self.local_description(&b)?;
        self.set_remote(&a, "answer", &answer)?;
        self.call("session.connect", json!({ "a": a, "b": b }))?;
        for s in [&a, &b] {
            self.wait_session_event(s, "connectionstatechange", REPLY_TIMEOUT, |e| e["state"] == "connected")
                .with_context(|| format!("{s} never connected"))?;
        }
        Ok((a, b))
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.io.child().std().try_wait(), Ok(None))
    }
}
