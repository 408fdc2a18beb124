//! `sipbridge gateway` under test and the softphone page it serves, driven
//! in headless Chromium by tests/peers/softphone-driver.mjs (JSON lines:
//! commands with ids, `{"event":"gw","data":...}` for what the page sees).

use crate::audio::{read_wav, Pcm};
use crate::jsonlines::JsonLines;
use crate::process::{free_tcp_port, free_udp_port, sipbridge_bin, spawn, workspace_root, Child};
use anyhow::{bail, Result};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The gateway's log filter unless a test asks for another.
const DEFAULT_LOG: &str = "info,sipbridge=debug";

/// What a gateway says when a port it was given is no longer free.
const PORT_TAKEN: &str = "Address already in use";

/// A running gateway; stopped (by PID) on drop.
pub struct Gateway {
    pub child: Child,
    pub ws_port: u16,
    pub sip_port: u16,
    pub token: Option<String>,
    pub recordings: PathBuf,
}

impl Gateway {
    /// Starts `sipbridge gateway` on free loopback ports with `extra` args
    /// and waits until it listens. A token, when given, is passed through
    /// the environment (never on the command line).
    pub fn start(dir: &Path, token: Option<&str>, extra: &[&str]) -> Result<Gateway> {
        Self::start_logging(dir, token, extra, DEFAULT_LOG)
    }

    /// [`Gateway::start`] with `SIPBRIDGE_LOG` set to `filter`.
    pub fn start_logging(dir: &Path, token: Option<&str>, extra: &[&str], filter: &str) -> Result<Gateway> {
        let recordings = dir.join("recordings");
        Gateway::start_on_free_ports(dir, token, &recordings, |ws_port, sip_port| {
            let mut cmd = Command::new(sipbridge_bin());
            // Started as the issue documents it: the gateway preset.
            cmd.args(["run", "--preset", "gateway"])
                .args(["--ws-listen", &format!("127.0.0.1:{ws_port}")])
                .args(["--sip-listen", &format!("127.0.0.1:{sip_port}")])
                .args(["--rtp-ports", "0-0"])
                .arg("--recordings-dir")
                .arg(&recordings)
                .args(extra);
            match token {
                Some(t) => cmd.env("SIPBRIDGE_WS_TOKEN", t),
                None => cmd.env_remove("SIPBRIDGE_WS_TOKEN"),
            };
            cmd.env("SIPBRIDGE_LOG", filter);
            Ok(cmd)
        })
    }

    /// Starts `sipbridge gateway --config FILE` with `body` (TOML) written
    /// after the listeners this picks: `[sip]`/`[websocket]` tables of its
    /// own are not allowed in `body`.
    pub fn start_with_config(dir: &Path, body: &str) -> Result<Gateway> {
        let recordings = dir.join("recordings");
        let file = dir.join("gateway.toml");
        Gateway::start_on_free_ports(dir, None, &recordings, |ws_port, sip_port| {
            std::fs::write(
                &file,
                format!(
                    "preset = \"gateway\"\n[sip]\nlisten = [\"udp:127.0.0.1:{sip_port}\", \"tcp:127.0.0.1:{sip_port}\"]\n\
                     [websocket]\nlisten = \"127.0.0.1:{ws_port}\"\nrecordings_dir = \"{}\"\n{body}",
                    recordings.display()
                ),
            )?;
            let mut cmd = Command::new(sipbridge_bin());
            cmd.arg("gateway")
                .arg("--config")
                .arg(&file)
                .env_remove("SIPBRIDGE_WS_TOKEN")
                .env("SIPBRIDGE_LOG", DEFAULT_LOG);
            Ok(cmd)
        })
    }

    /// Ports are picked free, but a test running alongside (a browser's
    /// connection, say) may take one before the gateway binds it: then the
    /// gateway is started again on others.
    fn start_on_free_ports(
        dir: &Path,
        token: Option<&str>,
        recordings: &Path,
        command: impl Fn(u16, u16) -> Result<Command>,
    ) -> Result<Gateway> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (ws_port, sip_port) = free_ports();
            let cmd = command(ws_port, sip_port)?;
            match Gateway::spawn(dir, cmd, ws_port, sip_port, token, recordings.to_path_buf()) {
                Err(e) if attempt < 3 && e.to_string().starts_with(PORT_TAKEN) => continue,
                other => return other,
            }
        }
    }

    /// [`Gateway::start_with_config`] inside `host`'s network namespace,
    /// listening on its address (SIP and the page on fixed ports: a host
    /// of its own has every port free), with `args` added.
    pub fn start_on(dir: &Path, host: &crate::netns::Host, body: &str, args: &[&str]) -> Result<Gateway> {
        let (ws_port, sip_port) = (8080, 5060);
        let addr = host.addr;
        let recordings = dir.join("recordings");
        let file = dir.join("gateway.toml");
        std::fs::write(
            &file,
            format!(
                "preset = \"gateway\"\n[sip]\nlisten = [\"udp:{addr}:{sip_port}\", \"tcp:{addr}:{sip_port}\"]\n\
                 [websocket]\nlisten = \"{addr}:{ws_port}\"\nallowed_origins = [\"*\"]\nrecordings_dir = \"{}\"\n{body}",
                recordings.display()
            ),
        )?;
        let mut cmd = host.command(sipbridge_bin());
        cmd.arg("gateway")
            .arg("--config")
            .arg(&file)
            .args(args)
            .env_remove("SIPBRIDGE_WS_TOKEN")
            .env("SIPBRIDGE_LOG", DEFAULT_LOG);
        Gateway::spawn(dir, cmd, ws_port, sip_port, None, recordings)
    }

    fn spawn(
        dir: &Path,
        mut cmd: Command,
        ws_port: u16,
        sip_port: u16,
        token: Option<&str>,
        recordings: PathBuf,
    ) -> Result<Gateway> {
        let mut child = spawn(&mut cmd, dir, "gateway", Duration::from_secs(240))?;
        if let Err(e) = child.wait_for_log("gateway listening", Duration::from_secs(15)) {
            // The error shows only the log's tail, under a backtrace.
            if child.log().contains(PORT_TAKEN) {
                bail!("{PORT_TAKEN}: {e}");
            }
            return Err(e);
        }
        Ok(Gateway { child, ws_port, sip_port, token: token.map(str::to_string), recordings })
    }

    /// The page's URL (with the token, if any).
    pub fn url(&self) -> String {
        self.url_with_scheme("http")
    }

    /// The page's URL over HTTPS (a gateway given `--tls-cert`).
    pub fn https_url(&self) -> String {
        self.url_with_scheme("https")
    }

    fn url_with_scheme(&self, scheme: &str) -> String {
        match &self.token {
            Some(t) => format!("{scheme}://127.0.0.1:{}/?token={t}", self.ws_port),
            None => format!("{scheme}://127.0.0.1:{}/", self.ws_port),
        }
    }

    pub fn log(&self) -> String {
        self.child.log()
    }
}

/// A free TCP port for the page and one free for both SIP over UDP and TCP.
fn free_ports() -> (u16, u16) {
    let ws_port = free_tcp_port();
    let sip_port = loop {
        let p = free_udp_port();
        if p != ws_port && std::net::TcpListener::bind(("127.0.0.1", p)).is_ok() {
            break p;
        }
    };
    (ws_port, sip_port)
}

/// The softphone page in Chromium.
pub struct Softphone {
    pub io: JsonLines,
}

pub const STEP: Duration = Duration::from_secs(20);

impl Softphone {
    /// Opens `url` in a fresh Chromium whose microphone plays `tone_hz`;
    /// returns once the page's WebSocket is up.
    pub fn start(dir: &Path, name: &str, url: &str, tone_hz: u32) -> Result<Softphone> {
        Self::start_trusting(dir, name, url, tone_hz, None)
    }

    /// [`Softphone::start`] with Chromium accepting server chains that
    /// hold the key `trust_spki` (see `TestCa::spki_sha256`).
    pub fn start_trusting(
        dir: &Path,
        name: &str,
        url: &str,
        tone_hz: u32,
        trust_spki: Option<&str>,
    ) -> Result<Softphone> {
        let mut cmd = Command::new("node");
        cmd.arg(workspace_root().join("tests/peers/softphone-driver.mjs")).args([
            "--url",
            url,
            "--tone",
            &tone_hz.to_string(),
            "--log-prefix",
            name,
        ]);
        if let Some(spki) = trust_spki {
            cmd.args(["--trust-spki", spki]);
        }
        let io = JsonLines::spawn(cmd, dir, name, Duration::from_secs(200))?;
        io.wait_event(Duration::from_secs(40), |e| e["event"] == "ready")?;
        let phone = Softphone { io };
        Ok(phone)
    }

    /// Waits for the page's WebSocket `ready`.
    pub fn wait_ready(&self) -> Result<()> {
        self.wait(|d| d["event"] == "ws" && d["state"] == "ready").map(|_| ())
    }

    /// Runs a driver command; fails on an `error` reply.
    pub fn cmd(&self, cmd: &str, mut args: Value) -> Result<Value> {
        args["cmd"] = json!(cmd);
        let id = self.io.send(args.clone())?;
        let reply = self.io.reply(&id, Duration::from_secs(30))?;
        if let Some(e) = reply.get("error") {
            bail!("softphone {args}: {e}");
        }
        Ok(reply)
    }

    pub fn click(&self, selector: &str) -> Result<()> {
        self.cmd("click", json!({ "selector": selector })).map(|_| ())
    }

    pub fn fill(&self, selector: &str, value: &str) -> Result<()> {
        self.cmd("fill", json!({ "selector": selector, "value": value })).map(|_| ())
    }

    /// One JSON-RPC request from the page: `{result}` or `{error}`.
    pub fn request(&self, method: &str, params: Value) -> Result<Value> {
        Ok(self.cmd("request", json!({ "method": method, "params": params }))?["response"].clone())
    }

    /// A raw WebSocket text message from the page.
    pub fn raw(&self, text: &str) -> Result<()> {
        self.cmd("raw", json!({ "text": text })).map(|_| ())
    }

    /// Waits for a page event (sip.event params, ws/pc states) matching `pred`.
    pub fn wait(&self, pred: impl Fn(&Value) -> bool) -> Result<Value> {
        self.wait_for(STEP, pred)
    }

    pub fn wait_for(&self, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Result<Value> {
        let e = self.io.wait_event(timeout, |e| e["event"] == "gw" && pred(&e["data"]))?;
        Ok(e["data"].clone())
    }

    /// Waits for `sip.event` `name`.
    pub fn wait_event(&self, name: &str) -> Result<Value> {
        self.wait(|d| d["event"] == name)
    }

    /// Every page event so far.
    pub fn events(&self) -> Vec<Value> {
        self.io.events().into_iter().filter(|e| e["event"] == "gw").map(|e| e["data"].clone()).collect()
    }

    /// Fills the account form (opening "More settings" for the proxy) and
    /// clicks Register.
    pub fn register(&self, aor: &str, secret: &str, proxy: &str) -> Result<()> {
        self.fill("#username", aor)?;
        self.fill("#secret", secret)?;
        self.click("#account summary")?;
        self.fill("#proxy", proxy)?;
        self.click("#register")
    }

    /// Records what the page hears for `ms` into `path`.
    pub fn record(&self, ms: u64, path: &Path) -> Result<Pcm> {
        self.cmd("record", json!({ "ms": ms, "path": path }))?;
        read_wav(path)
    }

    pub fn screenshot(&self, path: &Path) -> Result<()> {
        self.cmd("screenshot", json!({ "path": path })).map(|_| ())
    }
}
