//! A browser (headless Chromium or Firefox ESR, no WebDriver) inside a
//! network-namespace host, loading tests/peers/autocall.html from a small
//! HTTP server of the test: the page calls through `sipbridge gateway` by
//! itself and POSTs its outcome back ([`CallReport`]).

use crate::audio::Pcm;
use crate::netns::Host;
use crate::process::{spawn, workspace_root, Child};
use anyhow::{bail, Context, Result};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Browser {
    Chromium,
    Firefox,
}

impl Browser {
    pub fn name(self) -> &'static str {
        match self {
            Browser::Chromium => "chromium",
            Browser::Firefox => "firefox",
        }
    }
}

/// What the page reported.
pub struct CallReport {
    /// Offer made -> connection up, as the page measured it.
    pub setup: Duration,
    /// The selected candidate pair (`localType`, `relayProtocol`, ...).
    pub pair: Value,
    /// The `iceServers` the gateway's `ready` gave the page.
    pub ice_servers: Value,
    /// The gateway's answer SDP.
    pub answer: String,
    /// What the page heard.
    pub heard: Pcm,
}

/// What the page is told to do.
pub struct Call<'a> {
    /// `ws://HOST:PORT/ws` of the gateway.
    pub ws: &'a str,
    /// The SIP URI it calls; `from` is its guest AOR.
    pub target: &'a str,
    pub from: &'a str,
    pub tone_hz: u32,
}

/// Serves the page on `bind` (an address the browser's host reaches),
/// runs `browser` on `host` until the page reports (bounded by `limit`).
pub fn run(
    dir: &Path,
    browser: Browser,
    host: &Host,
    bind: SocketAddr,
    call: &Call,
    limit: Duration,
) -> Result<CallReport> {
    let listener = TcpListener::bind(bind).with_context(|| format!("page server on {bind}"))?;
    let origin = format!("http://{}", listener.local_addr()?);
    let url = format!(
        "{origin}/autocall.html?ws={}&target={}&from={}&tone={}&report={origin}/report",
        escape(call.ws),
        escape(call.target),
        escape(call.from),
        call.tone_hz
    );
    let (tx, rx) = mpsc::channel();
    let server = listener.try_clone()?;
    let done = Arc::new(AtomicBool::new(false));
    let finished = done.clone();
    std::thread::spawn(move || serve(server, tx, finished));
    let profile = dir.join(format!("{}-profile", browser.name()));
    std::fs::create_dir_all(&profile)?;
    let _browser = start(dir, browser, host, &profile, &url, limit)?;
    let body = rx.recv_timeout(limit).map_err(|_| anyhow::anyhow!("{} sent no report in {limit:?}", browser.name()));
    // Ends the server thread: a connection wakes it from accept.
    done.store(true, Ordering::Relaxed);
    let _ = TcpStream::connect(listener.local_addr()?);
    let report: Value = serde_json::from_slice(&body?)?;
    if report["ok"] != true {
        bail!("{} page failed: {}", browser.name(), report["error"]);
    }
    let pcm = openssl::base64::decode_block(report["pcm"].as_str().unwrap_or_default())?;
    let samples = pcm.chunks_exact(2).map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])) / 32768.0).collect();
    Ok(CallReport {
        setup: Duration::from_secs_f64(report["setupMs"].as_f64().unwrap_or_default() / 1000.0),
        pair: report["pair"].clone(),
        ice_servers: report["iceServers"].clone(),
        answer: report["answer"].as_str().unwrap_or_default().to_string(),
        heard: Pcm { rate: report["rate"].as_f64().unwrap_or(48000.0) as u32, samples },
    })
}

fn start(dir: &Path, browser: Browser, host: &Host, profile: &Path, url: &str, limit: Duration) -> Result<Child> {
    let mut cmd = match browser {
        Browser::Chromium => {
            let mut cmd = host.command("chromium");
            cmd.args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-sync",
                "--disable-background-networking",
                "--disable-component-update",
                "--autoplay-policy=no-user-gesture-required",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg(url);
            cmd
        }
        Browser::Firefox => {
            std::fs::write(profile.join("user.js"), FIREFOX_PREFS)?;
            let mut cmd = host.command("firefox-esr");
            cmd.args(["--headless", "--no-remote", "--profile"]).arg(profile).arg(url);
            cmd
        }
    };
    cmd.env("HOME", profile);
    spawn(&mut cmd, dir, browser.name(), limit)
}

/// Firefox's profile: WebAudio may play without a gesture and runs on a
/// mock audio device (headless, with no sound server, an AudioContext
/// otherwise stays suspended), ICE shows real host addresses, nothing
/// phones home.
const FIREFOX_PREFS: &str = r#"
user_pref("media.autoplay.default", 0);
user_pref("media.autoplay.block-webaudio", false);
user_pref("media.block-autoplay-until-in-foreground", false);
user_pref("media.cubeb.force_mock_context", true);
user_pref("media.peerconnection.ice.obfuscate_host_addresses", false);
user_pref("browser.shell.checkDefaultBrowser", false);
user_pref("browser.startup.homepage_override.mstone", "ignore");
user_pref("datareporting.policy.dataSubmissionEnabled", false);
user_pref("toolkit.telemetry.reportingpolicy.firstRun", false);
user_pref("app.update.enabled", false);
user_pref("network.captive-portal-service.enabled", false);
user_pref("network.connectivity-service.enabled", false);
"#;

/// Serves the page and hands over the first POSTed report.
fn serve(listener: TcpListener, reports: mpsc::Sender<Vec<u8>>, done: Arc<AtomicBool>) {
    let page = std::fs::read(workspace_root().join("tests/peers/autocall.html")).unwrap_or_default();
    for stream in listener.incoming() {
        if done.load(Ordering::Relaxed) {
            return;
        }
        let Ok(mut stream) = stream else { continue };
        // Browsers open spare connections and may close them unused.
        let Ok(request) = read_request(&mut stream) else { continue };
        let (status, body): (&str, &[u8]) = match request.0.as_str() {
            "POST" => {
                let _ = reports.send(request.1);
                ("204 No Content", b"")
            }
            "GET" => ("200 OK", &page),
            _ => continue,
        };
        let head = format!(
            "HTTP/1.1 {status}\r\nContent-Type: text/html\r\nContent-Length: {}\r\nAccess-Control-Allow-Origin: *\r\nConnection: close\r\n\r\n",
            body.len()
        );
        let _ = stream.write_all(head.as_bytes()).and_then(|_| stream.write_all(body));
    }
}

/// The method and body of one HTTP/1.1 request.
fn read_request(stream: &mut TcpStream) -> Result<(String, Vec<u8>)> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let method = line.split(' ').next().unwrap_or_default().to_string();
    let mut length = 0;
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse()?;
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    Ok((method, body))
}

fn escape(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, UNRESERVED).to_string()
}

/// RFC 3986's unreserved characters: everything else is escaped.
const UNRESERVED: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');
