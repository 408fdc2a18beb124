//! HAProxy (Debian `haproxy`) in front of gateways, from the shipped
//! `examples/haproxy/haproxy.cfg` with its listen address and server lines
//! pointed at loopback ports; in the foreground (`-db`). Also a minimal
//! WebSocket client (handshake, text frames) for connecting through it
//! without a browser.

use crate::process::{free_tcp_port, spawn, workspace_root, Child};
use anyhow::{bail, Context, Result};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

pub struct Haproxy {
    pub child: Child,
    pub port: u16,
}

impl Haproxy {
    /// Balances over `servers`: (WebSocket/page port, admin port) each.
    pub fn start(dir: &Path, servers: &[(u16, u16)]) -> Result<Haproxy> {
        let template = std::fs::read_to_string(workspace_root().join("examples/haproxy/haproxy.cfg"))?;
        let port = free_tcp_port();
        let mut cfg: Vec<String> = template
            .lines()
            .filter(|l| !l.trim_start().starts_with("server "))
            .map(|l| if l.trim() == "bind :8080" { format!("    bind 127.0.0.1:{port}") } else { l.to_string() })
            .collect();
        for (i, (ws, admin)) in servers.iter().enumerate() {
            cfg.push(format!("    server gw{} 127.0.0.1:{ws} check port {admin}", i + 1));
        }
        let path = dir.join("haproxy.cfg");
        std::fs::write(&path, cfg.join("\n") + "\n")?;
        let mut cmd = Command::new("haproxy");
        cmd.arg("-db").arg("-f").arg(&path);
        let child = spawn(&mut cmd, dir, "haproxy", Duration::from_secs(240))?;
        Ok(Haproxy { child, port })
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> String {
        self.child.log()
    }
}

/// A WebSocket client connection: the upgrade done, frames read raw.
pub struct WsClient {
    stream: TcpStream,
}

impl WsClient {
    /// Opens `ws://<addr><path>`; `Err` with the status line when the
    /// upgrade is refused.
    pub fn connect(addr: &str, path: &str) -> Result<WsClient> {
        let mut stream = TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )?;
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if stream.read(&mut byte)? == 0 {
                break;
            }
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head);
        let status = head.lines().next().unwrap_or_default().to_string();
        if !status.starts_with("HTTP/1.1 101") {
            bail!("upgrade refused: {status:?}");
        }
        Ok(WsClient { stream })
    }

    /// Sends `text` as one masked text frame (clients must mask).
    pub fn send_text(&mut self, text: &str) -> Result<()> {
        let payload = text.as_bytes();
        let mut frame = vec![0x81];
        match payload.len() {
            n if n < 126 => frame.push(0x80 | n as u8),
            n if n <= 0xffff => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
            _ => bail!("message too large for this client"),
        }
        let mask = [0x12, 0x34, 0x56, 0x78];
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        Ok(self.stream.write_all(&frame)?)
    }

    /// Reads text frames until one satisfies `pred`; returns it.
    pub fn read_until(&mut self, pred: impl Fn(&str) -> bool) -> Result<String> {
        loop {
            let text = self.read_text()?;
            if pred(&text) {
                return Ok(text);
            }
        }
    }

    /// The next text frame from the server (unmasked, not fragmented).
    pub fn read_text(&mut self) -> Result<String> {
        let mut h = [0u8; 2];
        self.stream.read_exact(&mut h).context("reading a frame header")?;
        let len = match h[1] & 0x7f {
            126 => {
                let mut l = [0u8; 2];
                self.stream.read_exact(&mut l)?;
                u16::from_be_bytes(l) as usize
            }
            127 => bail!("frame too large for this client"),
            n => n as usize,
        };
        let mut payload = vec![0u8; len];
        self.stream.read_exact(&mut payload)?;
        if h[0] & 0x0f != 1 {
            bail!("expected a text frame, got opcode {}", h[0] & 0x0f);
        }
        Ok(String::from_utf8(payload)?)
    }
}
