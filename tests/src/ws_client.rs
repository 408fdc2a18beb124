//! A small WebSocket client (RFC 6455, client side) over a blocking TCP
//! socket: drives the gateway's API without a browser, from any loopback
//! address (per-address limits), and can write raw bytes (fuzzing).

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// A close frame's code (if any) and reason.
pub type CloseReason = (Option<u16>, String);

/// One received frame.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    /// Close code (if any) and reason.
    Close(Option<u16>, String),
}

pub struct WsClient {
    stream: TcpStream,
    buf: Vec<u8>,
    /// Whether pings are answered while reading (a live client) or not (a
    /// client that has stopped reading).
    pub answer_pings: bool,
    /// Notifications and unmatched messages seen while waiting for responses.
    pub events: Vec<Value>,
}

/// The HTTP status line a handshake got, and the client when it was 101.
pub struct Handshake {
    pub status: String,
    pub client: Option<WsClient>,
}

impl WsClient {
    /// Connects to `127.0.0.1:port` from `from` (any loopback address;
    /// default 127.0.0.1) and asks for the upgrade on `path` with `headers`.
    pub fn handshake(port: u16, from: Option<IpAddr>, path: &str, headers: &[&str]) -> Result<Handshake> {
        let to: SocketAddr = ([127, 0, 0, 1], port).into();
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
        if let Some(ip) = from {
            socket.bind(&SocketAddr::new(ip, 0).into())?;
        }
        socket.connect_timeout(&to.into(), Duration::from_secs(5))?;
        let mut stream: TcpStream = socket.into();
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        stream.set_nodelay(true)?;
        let mut head = format!(
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        );
        for h in headers {
            head.push_str(h);
            head.push_str("\r\n");
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes())?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let n = stream.read(&mut chunk).context("reading the handshake response")?;
            if n == 0 {
                break buf.len();
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let status = String::from_utf8_lossy(&buf[..end]).lines().next().unwrap_or_default().to_string();
        let client = status.contains(" 101 ").then(|| WsClient {
            stream,
            buf: buf[end..].to_vec(),
            answer_pings: true,
            events: Vec::new(),
        });
        Ok(Handshake { status, client })
    }

    /// [`WsClient::handshake`] that must succeed.
    pub fn connect(port: u16, from: Option<IpAddr>, path: &str) -> Result<WsClient> {
        let h = Self::handshake(port, from, path, &[])?;
        h.client.with_context(|| format!("no upgrade: {}", h.status))
    }

    /// Sends one masked frame.
    pub fn send_frame(&mut self, opcode: u8, payload: &[u8]) -> Result<()> {
        let mask = [0x5a, 0x17, 0xc3, 0x3e];
        let mut frame = vec![0x80 | opcode];
        match payload.len() {
            n if n < 126 => frame.push(0x80 | n as u8),
            n if n < 65536 => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                frame.push(0x80 | 127);
                frame.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.write_raw(&frame)
    }

    pub fn send_text(&mut self, text: &str) -> Result<()> {
        self.send_frame(0x1, text.as_bytes())
    }

    /// Writes bytes as they are (they need not be a valid frame).
    pub fn write_raw(&mut self, bytes: &[u8]) -> Result<()> {
        self.stream.write_all(bytes)?;
        Ok(())
    }

    /// The next frame within `timeout`: `Ok(None)` when the server closed
    /// the TCP connection, an error on timeout.
    pub fn read_frame(&mut self, timeout: Duration) -> Result<Option<Frame>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some((frame, used)) = parse_frame(&self.buf)? {
                self.buf.drain(..used);
                if let (Frame::Ping(payload), true) = (&frame, self.answer_pings) {
                    let payload = payload.clone();
                    self.send_frame(0xA, &payload)?;
                }
                return Ok(Some(frame));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                bail!("no frame within {timeout:?}");
            }
            self.stream.set_read_timeout(Some(left.max(Duration::from_millis(1))))?;
            let mut chunk = [0u8; 8192];
            match self.stream.read(&mut chunk) {
                Ok(0) => return Ok(None),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == ErrorKind::ConnectionReset => return Ok(None),
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Reads until the server closes: the close frame's code and reason (or
    /// `None` for a TCP close without one), and when it came.
    pub fn wait_closed(&mut self, timeout: Duration) -> Result<(Option<CloseReason>, Instant)> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.read_frame(deadline.saturating_duration_since(Instant::now()))? {
                Some(Frame::Close(code, reason)) => return Ok((Some((code, reason)), Instant::now())),
                None => return Ok((None, Instant::now())),
                Some(_) => {}
            }
        }
    }

    /// Sends a JSON-RPC request and waits for its response; other messages
    /// go to [`WsClient::events`].
    pub fn request(&mut self, id: u64, method: &str, params: Value) -> Result<Value> {
        self.send_text(&json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params }).to_string())?;
        self.wait_message(Duration::from_secs(10), |m| m["id"] == id)
    }

    /// Waits for a JSON message `pred` accepts; the others are kept in
    /// [`WsClient::events`] (which is searched first).
    pub fn wait_message(&mut self, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Result<Value> {
        if let Some(i) = self.events.iter().position(&pred) {
            return Ok(self.events.remove(i));
        }
        let deadline = Instant::now() + timeout;
        loop {
            match self.read_frame(deadline.saturating_duration_since(Instant::now()))? {
                Some(Frame::Text(t)) => {
                    let v: Value = serde_json::from_str(&t).with_context(|| format!("not JSON: {t}"))?;
                    if pred(&v) {
                        return Ok(v);
                    }
                    self.events.push(v);
                }
                Some(Frame::Close(code, reason)) => bail!("closed by the server ({code:?} {reason})"),
                None => bail!("connection closed"),
                Some(_) => {}
            }
        }
    }
}

/// One unmasked server frame from the front of `buf`, and its length.
fn parse_frame(buf: &[u8]) -> Result<Option<(Frame, usize)>> {
    if buf.len() < 2 {
        return Ok(None);
    }
    let opcode = buf[0] & 0x0f;
    let (len, mut at) = match buf[1] & 0x7f {
        126 if buf.len() >= 4 => (u16::from_be_bytes([buf[2], buf[3]]) as usize, 4),
        127 if buf.len() >= 10 => (u64::from_be_bytes(buf[2..10].try_into().unwrap()) as usize, 10),
        126 | 127 => return Ok(None),
        n => (n as usize, 2),
    };
    if buf[1] & 0x80 != 0 {
        at += 4; // a server must not mask, but tolerate it in the length
    }
    if buf.len() < at + len {
        return Ok(None);
    }
    let payload = buf[at..at + len].to_vec();
    let frame = match opcode {
        0x1 => Frame::Text(String::from_utf8(payload)?),
        0x2 => Frame::Binary(payload),
        0x8 => {
            let code = (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]]));
            Frame::Close(code, String::from_utf8_lossy(payload.get(2..).unwrap_or_default()).into_owned())
        }
        0x9 => Frame::Ping(payload),
        0xA => Frame::Pong(payload),
        other => bail!("unexpected opcode {other:#x}"),
    };
    Ok(Some((frame, at + len)))
}
