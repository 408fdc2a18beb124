//! baresip, a real softphone, for SIP end-to-end tests: its own config
//! directory, accounts you pass in (auto-answer or not), a WAV played with
//! `aufile`, optional recording with `sndfile`, and control over `ctrl_tcp`
//! (netstring-framed JSON commands, responses and events).

use crate::process::{free_tcp_port, free_udp_port, spawn, Child};
use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// One baresip account line.
#[derive(Debug, Clone)]
pub struct BaresipAccount {
    /// `sip:bob@example.test`.
    pub aor: String,
    /// Digest password.
    pub password: Option<String>,
    /// Outbound proxy URI, e.g. `sip:127.0.0.1:5060`.
    pub outbound: Option<String>,
    /// Answer incoming calls by itself.
    pub auto_answer: bool,
    /// Registration interval in seconds; 0 = do not register.
    pub regint: u32,
    /// More account parameters, e.g. `;mediaenc=srtp-mand` (SDES-SRTP
    /// required, `RTP/SAVP`) or `;mediaenc=srtp` (offered inside `RTP/AVP`).
    pub params: String,
}

impl BaresipAccount {
    /// An account that calls out directly, registering nowhere.
    pub fn unregistered(aor: &str) -> BaresipAccount {
        Self::direct(aor, "")
    }

    /// An account that registers nowhere and calls its targets directly
    /// (no proxy, no password), answering nothing by itself; `params` are
    /// extra account parameters (e.g. `;mediaenc=srtp-mand`).
    pub fn direct(aor: &str, params: &str) -> BaresipAccount {
        BaresipAccount {
            aor: aor.into(),
            password: None,
            outbound: None,
            auto_answer: false,
            regint: 0,
            params: params.into(),
        }
    }

    /// The `accounts` file line.
    pub fn line(&self) -> String {
        let mut l = format!("<{}>", self.aor);
        if let Some(p) = &self.password {
            l.push_str(&format!(";auth_pass={p}"));
        }
        if let Some(o) = &self.outbound {
            l.push_str(&format!(";outbound=\"{o}\""));
        }
        if self.auto_answer {
            l.push_str(";answermode=auto");
        }
        l.push_str(&format!(";regint={};audio_codecs=PCMU,PCMA{}", self.regint, self.params));
        l
    }
}

/// Launch options.
#[derive(Debug, Clone)]
pub struct BaresipOptions {
    /// Accounts.
    pub accounts: Vec<BaresipAccount>,
    /// WAV played to the far end (`aufile`); silence-free calls need one.
    /// baresip hangs up when it ends.
    pub play: Option<PathBuf>,
    /// Record both directions of each call into `<dir>/baresip/rec`
    /// (`sndfile`: `dump-<call>-enc.wav` / `-dec.wav`).
    pub record: bool,
    /// Process lifetime limit.
    pub limit: Duration,
}

/// A running baresip; stopped (by PID) on drop.
pub struct Baresip {
    /// The process.
    pub child: Child,
    /// Its SIP port (UDP and TCP).
    pub sip_port: u16,
    /// Where recordings go when enabled.
    pub rec_dir: PathBuf,
    ctrl: Mutex<TcpStream>,
    inbox: Arc<(Mutex<Vec<Value>>, Condvar)>,
    token: Mutex<u64>,
}

impl Baresip {
    /// Writes `dir/baresip/{config,accounts}` and starts baresip; returns
    /// once ctrl_tcp accepts a connection.
    pub fn start(dir: &Path, opts: &BaresipOptions) -> Result<Baresip> {
        Self::start_at(dir, opts, None, "")
    }

    /// [`Baresip::start`] with more `config` lines, e.g. `sip_cafile` for
    /// SIP over TLS.
    pub fn start_with_config(dir: &Path, opts: &BaresipOptions, extra_config: &str) -> Result<Baresip> {
        Self::start_at(dir, opts, None, extra_config)
    }

    /// Like [`Baresip::start`], inside `host`'s network namespace, on its
    /// address (ctrl_tcp too, which the router namespace can reach).
    pub fn start_on(dir: &Path, opts: &BaresipOptions, host: &crate::netns::Host) -> Result<Baresip> {
        Self::start_at(dir, opts, Some(host), "")
    }

    /// Ports are picked free but may be taken by a test running alongside
    /// before baresip binds them: then it is started again on others.
    fn start_at(
        dir: &Path,
        opts: &BaresipOptions,
        host: Option<&crate::netns::Host>,
        extra_config: &str,
    ) -> Result<Baresip> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match Self::start_once(dir, opts, host, extra_config) {
                Err(e) if attempt < 3 && e.to_string().contains("Address already in use") => continue,
                other => return other,
            }
        }
    }

    fn start_once(
        dir: &Path,
        opts: &BaresipOptions,
        host: Option<&crate::netns::Host>,
        extra_config: &str,
    ) -> Result<Baresip> {
        let ip = host.map(|h| h.addr).unwrap_or(std::net::Ipv4Addr::LOCALHOST);
        let conf = dir.join("baresip");
        let rec_dir = conf.join("rec");
        std::fs::create_dir_all(&rec_dir)?;
        // baresip listens on UDP and TCP on its SIP port (a host of its
        // own has every port free; this namespace cannot bind its address).
        let sip_port = loop {
            let p = free_udp_port();
            if host.is_some() || std::net::TcpListener::bind((ip, p)).is_ok() {
                break p;
            }
        };
        let ctrl_port = free_tcp_port();
        let source = match &opts.play {
            Some(wav) => format!("aufile,{}", wav.display()),
            None => "ausine,440".into(),
        };
        let mut config = format!(
            "poll_method\t\tepoll\n\
             sip_listen\t\t{ip}:{sip_port}\n\
             net_interface\t\t{ip}\n\
             dns_server\t\t127.0.0.1:53\n\
             audio_player\t\taubridge,nil\n\
             audio_alert\t\taubridge,nil\n\
             audio_source\t\t{source}\n\
             ctrl_tcp_listen\t\t{ip}:{ctrl_port}\n\
             module_path\t\t/usr/lib/baresip/modules\n\
             module\t\t\tg711.so\n\
             module\t\t\taufile.so\n\
             module\t\t\tausine.so\n\
             module\t\t\taubridge.so\n\
             module\t\t\tsrtp.so\n\
             module_app\t\taccount.so\n\
             module_app\t\tmenu.so\n\
             module_app\t\tctrl_tcp.so\n"
        );
        if opts.record {
            // Relative to baresip's working directory (`conf`): sndfile
            // makes each file's path in a 128-byte buffer and cuts longer
            // ones, ".wav" first, under a deep checkout.
            config.push_str("module\t\t\tsndfile.so\nsnd_path\t\trec\n");
        }
        config.push_str(extra_config);
        std::fs::write(conf.join("config"), config)?;
        let accounts: String = opts.accounts.iter().map(|a| a.line() + "\n").collect();
        std::fs::write(conf.join("accounts"), accounts)?;
        let mut cmd = match host {
            Some(h) => h.command("baresip"),
            None => Command::new("baresip"),
        };
        cmd.arg("-f").arg(&conf).current_dir(&conf).stdin(std::process::Stdio::null());
        let child = spawn(&mut cmd, dir, "baresip", opts.limit)?;
        let until = Instant::now() + Duration::from_secs(10);
        let stream = loop {
            match TcpStream::connect((ip, ctrl_port)) {
                Ok(s) => break s,
                Err(_) if Instant::now() < until => std::thread::sleep(Duration::from_millis(50)),
                Err(e) => bail!("baresip ctrl_tcp not up: {e}; log:\n{}", crate::process::tail(&child.log())),
            }
        };
        let inbox = Arc::new((Mutex::new(Vec::new()), Condvar::new()));
        let reader = stream.try_clone()?;
        let sink = inbox.clone();
        std::thread::spawn(move || read_netstrings(reader, sink));
        Ok(Baresip { child, sip_port, rec_dir, ctrl: Mutex::new(stream), inbox, token: Mutex::new(0) })
    }

    /// Runs a ctrl_tcp command (e.g. `dial`, `accept`, `hangup`) and returns
    /// its response object.
    pub fn command(&self, command: &str, params: &str) -> Result<Value> {
        let token = {
            let mut t = self.token.lock().unwrap();
            *t += 1;
            format!("t{}", *t)
        };
        let msg = json!({"command": command, "params": params, "token": token}).to_string();
        self.ctrl.lock().unwrap().write_all(format!("{}:{},", msg.len(), msg).as_bytes())?;
        self.wait_for(|v| v["response"] == true && v["token"] == token.as_str(), Duration::from_secs(5))
            .with_context(|| format!("no response to {command}"))
    }

    /// Waits for an event of `class`/`type` (e.g. `call`/`CALL_ESTABLISHED`,
    /// `register`/`REGISTER_OK`).
    pub fn wait_event(&self, class: &str, kind: &str, timeout: Duration) -> Result<Value> {
        self.wait_for(|v| v["event"] == true && v["class"] == class && v["type"] == kind, timeout)
            .with_context(|| format!("no {class}/{kind} event; log:\n{}", crate::process::tail(&self.child.log())))
    }

    /// Waits until every account reported a successful registration. Reads
    /// baresip's log ("<aor>: {0/UDP/v4} 200 OK"), since the REGISTER_OK
    /// event can fire before the ctrl_tcp connection is up.
    pub fn wait_registered(&self, accounts: usize, timeout: Duration) -> Result<()> {
        let until = Instant::now() + timeout;
        loop {
            let log = self.child.log();
            let ok = log.lines().filter(|l| l.contains("} 200 OK")).count();
            if ok >= accounts {
                return Ok(());
            }
            if Instant::now() >= until {
                bail!("baresip did not register {accounts} account(s); log:\n{}", crate::process::tail(&log));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// What baresip heard in its first recorded call (sndfile's
    /// `*-dec.wav`), waiting up to 5 s for the file.
    pub fn heard(&self) -> Result<crate::audio::Pcm> {
        let until = Instant::now() + Duration::from_secs(5);
        loop {
            let dec = std::fs::read_dir(&self.rec_dir)?
                .flatten()
                .map(|e| e.path())
                .find(|p| p.to_string_lossy().ends_with("dec.wav"));
            match dec {
                Some(p) => return crate::audio::read_wav(&p),
                None if Instant::now() < until => std::thread::sleep(Duration::from_millis(100)),
                None => bail!("baresip recorded nothing in {}", self.rec_dir.display()),
            }
        }
    }

    /// What baresip heard in its latest recorded call (the newest
    /// `*-dec.wav` longer than a second), waiting up to 5 s for it.
    pub fn heard_newest(&self) -> Result<crate::audio::Pcm> {
        let until = Instant::now() + Duration::from_secs(5);
        loop {
            let mut files: Vec<_> = std::fs::read_dir(&self.rec_dir)?
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.to_string_lossy().ends_with("-dec.wav"))
                .collect();
            files.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
            if let Some(pcm) = files.last().and_then(|p| crate::audio::read_wav(p).ok()) {
                if pcm.seconds() > 1.0 {
                    return Ok(pcm);
                }
            }
            if Instant::now() >= until {
                bail!("no baresip recording in {}", self.rec_dir.display());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Waits for (and removes) the first message matching `pred`.
    pub fn wait_for(&self, pred: impl Fn(&Value) -> bool, timeout: Duration) -> Result<Value> {
        let until = Instant::now() + timeout;
        let (lock, cv) = &*self.inbox;
        let mut inbox = lock.lock().unwrap();
        loop {
            if let Some(i) = inbox.iter().position(&pred) {
                return Ok(inbox.remove(i));
            }
            let now = Instant::now();
            if now >= until {
                bail!("timed out; seen: {:?}", inbox.iter().map(|v| v.to_string()).collect::<Vec<_>>());
            }
            inbox = cv.wait_timeout(inbox, until - now).unwrap().0;
        }
    }
}

fn read_netstrings(mut s: TcpStream, sink: Arc<(Mutex<Vec<Value>>, Condvar)>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = match s.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        while let Some(colon) = buf.iter().position(|b| *b == b':') {
            let Some(len) = std::str::from_utf8(&buf[..colon]).ok().and_then(|l| l.parse::<usize>().ok()) else {
                buf.clear();
                break;
            };
            if buf.len() < colon + 1 + len + 1 {
                break;
            }
            let body = buf[colon + 1..colon + 1 + len].to_vec();
            buf.drain(..colon + 1 + len + 1);
            if let Ok(v) = serde_json::from_slice::<Value>(&body) {
                let (lock, cv) = &*sink;
                lock.lock().unwrap().push(v);
                cv.notify_all();
            }
        }
    }
}
