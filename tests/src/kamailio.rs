//! Kamailio as registrar and proxy for SIP end-to-end tests: digest auth
//! over db_text with the users you pass, UDP, TCP and SIP over WebSocket
//! on ports of its own, started in the foreground (`-DD -E`) from
//! `tests/sip/kamailio.cfg` in a test's scratch directory.

use crate::process::{free_tcp_port, free_udp_port, spawn, workspace_root, Child};
use anyhow::{bail, Context, Result};
use std::fs;
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// How to configure the instance.
#[derive(Debug, Clone)]
pub struct KamailioOptions {
    /// SIP domain and digest realm (an alias of the proxy).
    pub domain: String,
    /// (user, password) pairs accepted by digest auth.
    pub users: Vec<(String, String)>,
    /// Digest algorithm of the challenges: `MD5` or `SHA-256`.
    pub algorithm: String,
    /// Seconds a nonce stays valid.
    pub nonce_expire: u32,
    /// Process lifetime limit.
    pub limit: Duration,
}

impl KamailioOptions {
    /// MD5 challenges, 300 s nonces, 120 s lifetime.
    pub fn new(domain: &str, users: &[(&str, &str)]) -> Self {
        KamailioOptions {
            domain: domain.to_string(),
            users: users.iter().map(|(u, p)| (u.to_string(), p.to_string())).collect(),
            algorithm: "MD5".into(),
            nonce_expire: 300,
            limit: Duration::from_secs(120),
        }
    }
}

/// A running Kamailio; stopped (by PID) on drop.
pub struct Kamailio {
    /// The process.
    pub child: Child,
    /// SIP/UDP port.
    pub udp_port: u16,
    /// SIP/TCP port.
    pub tcp_port: u16,
    /// SIP over WebSocket port (`ws://127.0.0.1:<port>/`).
    pub ws_port: u16,
    /// Domain / realm.
    pub domain: String,
}

impl Kamailio {
    /// Writes the config and db_text tables under `dir/kamailio` and starts
    /// Kamailio; returns once it answers an OPTIONS probe over UDP.
    pub fn start(dir: &Path, opts: &KamailioOptions) -> Result<Kamailio> {
        let base = dir.join("kamailio");
        let db = base.join("db");
        let run = base.join("run");
        fs::create_dir_all(&db)?;
        fs::create_dir_all(&run)?;
        fs::write(db.join("version"), "id(int,auto) table_name(string) table_version(int)\n0:subscriber:7\n0:location:9\n")?;
        let mut sub = String::from("id(int,auto) username(string) domain(string) password(string) ha1(string,null) ha1b(string,null)\n");
        for (i, (u, p)) in opts.users.iter().enumerate() {
            sub.push_str(&format!("{}:{}:{}:{}::\n", i + 1, u, opts.domain, p));
        }
        fs::write(db.join("subscriber"), sub)?;
        let udp_port = free_udp_port();
        let tcp_port = free_tcp_port();
        let mut ws_port = free_tcp_port();
        while ws_port == tcp_port {
            ws_port = free_tcp_port();
        }
        let template = fs::read_to_string(workspace_root().join("tests/sip/kamailio.cfg")).context("kamailio.cfg template")?;
        let cfg = template
            .replace("%UDP_PORT%", &udp_port.to_string())
            .replace("%TCP_PORT%", &tcp_port.to_string())
            .replace("%WS_PORT%", &ws_port.to_string())
            .replace("%DOMAIN%", &opts.domain)
            .replace("%ALGORITHM%", &opts.algorithm)
            .replace("%NONCE_EXPIRE%", &opts.nonce_expire.to_string())
            .replace("%DB_DIR%", &db.display().to_string());
        let cfg_path = base.join("kamailio.cfg");
        fs::write(&cfg_path, cfg)?;
        let mut cmd = Command::new("kamailio");
        cmd.arg("-f").arg(&cfg_path).args(["-DD", "-E", "-m", "32", "-M", "8"]).arg("-Y").arg(&run).arg("-w").arg(&base);
        let child = spawn(&mut cmd, dir, "kamailio", opts.limit)?;
        let k = Kamailio { child, udp_port, tcp_port, ws_port, domain: opts.domain.clone() };
        k.wait_ready(Duration::from_secs(10))?;
        Ok(k)
    }

    fn wait_ready(&self, timeout: Duration) -> Result<()> {
        let sock = UdpSocket::bind("127.0.0.1:0")?;
        sock.set_read_timeout(Some(Duration::from_millis(200)))?;
        let me = sock.local_addr()?;
        let until = Instant::now() + timeout;
        let mut n = 0;
        while Instant::now() < until {
            n += 1;
            let probe = format!(
                "OPTIONS sip:127.0.0.1:{p} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKprobe{n}\r\nMax-Forwards: 5\r\nFrom: <sip:probe@127.0.0.1>;tag=p{n}\r\nTo: <sip:127.0.0.1:{p}>\r\nCall-ID: probe{n}@{me}\r\nCSeq: {n} OPTIONS\r\nContent-Length: 0\r\n\r\n",
                p = self.udp_port
            );
            sock.send_to(probe.as_bytes(), ("127.0.0.1", self.udp_port))?;
            let mut buf = [0u8; 2048];
            if let Ok((len, _)) = sock.recv_from(&mut buf) {
                if buf[..len].starts_with(b"SIP/2.0 200") {
                    return Ok(());
                }
            }
        }
        bail!("kamailio not answering on udp {}; log:\n{}", self.udp_port, crate::process::tail(&self.child.log()))
    }

    /// The proxy URI for a transport: `udp`, `tcp` or `ws`.
    pub fn proxy_uri(&self, transport: &str) -> String {
        match transport {
            "tcp" => format!("sip:127.0.0.1:{};transport=tcp", self.tcp_port),
            "ws" => format!("sip:127.0.0.1:{};transport=ws", self.ws_port),
            _ => format!("sip:127.0.0.1:{}", self.udp_port),
        }
    }

    /// `sip:<user>@<domain>`.
    pub fn aor(&self, user: &str) -> String {
        format!("sip:{user}@{}", self.domain)
    }

    /// Kamailio's log so far.
    pub fn log(&self) -> String {
        self.child.log()
    }

    /// Path of its log file.
    pub fn log_path(&self) -> PathBuf {
        self.child.log_path().to_path_buf()
    }
}
