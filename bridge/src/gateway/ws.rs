//! The gateway's one TCP port: static files (the softphone page, embedded
//! from examples/web/) on `GET /`, the JSON-RPC WebSocket on `GET /ws`;
//! plain HTTP, or HTTPS/WSS when the gateway has a certificate (tls.rs).
//! Token, Origin and connection-limit checks (in total and per address)
//! happen before the upgrade; after it, pings and an idle timeout close
//! connections that are dead or never used.

use super::connections::Full;
use super::service::Gateway;
use super::user::User;
use crate::protocol::{self, codes, Notification, Response, RpcError, PROTOCOL_VERSION};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

const INDEX_HTML: &str = include_str!("../../../examples/web/index.html");
const APP_JS: &str = include_str!("../../../examples/web/app.js");
const STYLE_CSS: &str = include_str!("../../../examples/web/style.css");

/// Largest HTTP request head and WebSocket message we take.
const MAX_HEAD: usize = 16 * 1024;
const MAX_MESSAGE: usize = 1 << 20;

/// What a connection is carried on: TCP, or TLS over TCP.
trait Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> Stream for S {}

/// Serves connections until `accepting` turns false (shutdown); over TLS
/// when `tls` is given.
pub async fn serve(
    gw: Arc<Gateway>,
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    mut accepting: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => accepted?,
            _ = accepting.wait_for(|on| !on) => return Ok(()),
        };
        let (gw, tls) = (gw.clone(), tls.clone());
        tokio::spawn(async move {
            let served = match tls {
                None => handle(gw, stream, peer, false).await,
                // The handshake within 10 s too, like the head below.
                Some(tls) => match tokio::time::timeout(Duration::from_secs(10), tls.accept(stream)).await {
                    Ok(Ok(stream)) => handle(gw, stream, peer, true).await,
                    Ok(Err(e)) => Err(anyhow::anyhow!("TLS handshake failed: {e}")),
                    Err(_) => Err(anyhow::anyhow!("TLS handshake timed out")),
                },
            };
            if let Err(e) = served {
                tracing::debug!(%peer, error = %e, "HTTP connection ended");
            }
        });
    }
}

struct Head {
    method: String,
    path: String,
    query: HashMap<String, String>,
    headers: HashMap<String, String>,
}

async fn read_head(stream: &mut impl Stream) -> anyhow::Result<Head> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 2048];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        if buf.len() > MAX_HEAD {
            anyhow::bail!("request head too large");
        }
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut chunk)).await??;
        if n == 0 {
            anyhow::bail!("closed before the request head ended");
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let text = String::from_utf8_lossy(&buf);
    let mut lines = text.split("\r\n");
    let mut first = lines.next().unwrap_or_default().split(' ');
    let method = first.next().unwrap_or_default().to_string();
    let target = first.next().unwrap_or_default();
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let query =
        query.split('&').filter_map(|kv| kv.split_once('=')).map(|(k, v)| (k.to_string(), percent_decode(v))).collect();
    let headers = lines
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Ok(Head { method, path: path.to_string(), query, headers })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                match std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or(())
                {
                    Ok(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn respond(stream: &mut impl Stream, status: &str, content_type: &str, body: &str) -> anyhow::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nCache-Control: no-cache\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.flush().await?;
    Ok(())
}

/// One HTTP request on `stream`, from `peer`; `secure` when over TLS.
async fn handle(gw: Arc<Gateway>, mut stream: impl Stream, peer: SocketAddr, secure: bool) -> anyhow::Result<()> {
    // The whole head within 10 s: a trickling client cannot hold a task.
    let head = tokio::time::timeout(Duration::from_secs(10), read_head(&mut stream)).await??;
    if head.method != "GET" {
        return respond(&mut stream, "405 Method Not Allowed", "text/plain", "only GET\n").await;
    }
    match head.path.as_str() {
        "/" | "/index.html" => respond(&mut stream, "200 OK", "text/html; charset=utf-8", INDEX_HTML).await,
        "/app.js" => respond(&mut stream, "200 OK", "text/javascript; charset=utf-8", APP_JS).await,
        "/style.css" => respond(&mut stream, "200 OK", "text/css; charset=utf-8", STYLE_CSS).await,
        "/favicon.ico" => respond(&mut stream, "204 No Content", "image/x-icon", "").await,
        "/ws" => upgrade(gw, stream, head, peer, secure).await,
        _ => respond(&mut stream, "404 Not Found", "text/plain", "not found\n").await,
    }
}

/// Whether a browser's `Origin` may open the WebSocket. Origins compare by
/// scheme, host and port (a missing port is the scheme's default). The
/// default is the page's own origin: the Host header, with `https://` when
/// the gateway serves TLS (`secure`) or a proxy in front says
/// `X-Forwarded-Proto: https`, `http://` otherwise.
fn origin_allowed(allowed: &[String], head: &Head, secure: bool) -> bool {
    let Some(origin) = head.headers.get("origin") else { return true };
    let Some(origin) = Origin::parse(origin) else { return false };
    if !allowed.is_empty() {
        return allowed.iter().any(|a| a == "*" || Origin::parse(a).is_some_and(|a| a == origin));
    }
    let scheme = match head.headers.get("x-forwarded-proto") {
        _ if secure => "https",
        Some(p) if p.eq_ignore_ascii_case("https") => "https",
        _ => "http",
    };
    let own = head.headers.get("host").and_then(|h| Origin::parse(&format!("{scheme}://{h}")));
    own.is_some_and(|own| own == origin)
}

/// A web origin, `scheme://host[:port]`, normalised for comparison.
#[derive(Debug, PartialEq)]
struct Origin {
    scheme: String,
    host: String,
    port: u16,
}

impl Origin {
    fn parse(text: &str) -> Option<Origin> {
        let (scheme, authority) = text.trim().split_once("://")?;
        let scheme = scheme.to_ascii_lowercase();
        let default_port = match scheme.as_str() {
            "http" => 80,
            "https" => 443,
            _ => return None,
        };
        // An IPv6 literal keeps its brackets; the port follows the last ':'.
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !p.contains(']') => (h, p.parse().ok()?),
            _ => (authority, default_port),
        };
        if host.is_empty() || host.contains(['/', '@', '?', '#']) {
            return None;
        }
        Some(Origin { scheme, host: host.to_ascii_lowercase(), port })
    }
}

fn token_ok(expected: Option<&String>, head: &Head) -> bool {
    let Some(expected) = expected else { return true };
    let given = head
        .query
        .get("token")
        .cloned()
        .or_else(|| head.headers.get("authorization").and_then(|a| a.strip_prefix("Bearer ")).map(str::to_string));
    match given {
        // Compare without an early exit, so timing says nothing.
        Some(g) => {
            g.len() == expected.len() && g.bytes().zip(expected.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
        }
        None => false,
    }
}

async fn upgrade(
    gw: Arc<Gateway>,
    mut stream: impl Stream,
    head: Head,
    peer: SocketAddr,
    secure: bool,
) -> anyhow::Result<()> {
    let key = head.headers.get("sec-websocket-key").cloned();
    let is_ws = head.headers.get("upgrade").is_some_and(|u| u.eq_ignore_ascii_case("websocket"));
    let (Some(key), true) = (key, is_ws) else {
        return respond(&mut stream, "426 Upgrade Required", "text/plain", "this is the WebSocket endpoint\n").await;
    };
    if !origin_allowed(&gw.config.allowed_origins, &head, secure) {
        tracing::warn!(origin = ?head.headers.get("origin"), "WebSocket refused: origin not allowed");
        return respond(&mut stream, "403 Forbidden", "text/plain", "origin not allowed\n").await;
    }
    if !token_ok(gw.config.token.as_ref(), &head) {
        tracing::warn!("WebSocket refused: missing or wrong token");
        return respond(&mut stream, "401 Unauthorized", "text/plain", "a valid token is required\n").await;
    }
    let address = peer.ip();
    let _slot = match gw.connections.admit(address, gw.config.max_connections, gw.config.max_connections_per_address) {
        Ok(slot) => slot,
        Err(Full::Total) => {
            tracing::warn!(limit = gw.config.max_connections, "WebSocket refused: too many connections");
            return respond(&mut stream, "503 Service Unavailable", "text/plain", "too many connections\n").await;
        }
        Err(Full::Address) => {
            let limit = gw.config.max_connections_per_address;
            tracing::warn!(%address, limit, "WebSocket refused: too many connections from one address");
            return respond(
                &mut stream,
                "429 Too Many Requests",
                "text/plain",
                "too many connections from your address\n",
            )
            .await;
        }
    };
    let accept = derive_accept_key(key.as_bytes());
    let reply = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
    );
    stream.write_all(reply.as_bytes()).await?;
    let mut config = WebSocketConfig::default();
    config.max_message_size = Some(MAX_MESSAGE);
    config.max_frame_size = Some(MAX_MESSAGE);
    let ws = WebSocketStream::from_raw_socket(stream, Role::Server, Some(config)).await;
    session(gw.clone(), ws).await
}

/// Requests that make a connection more than a visitor: it is then exempt
/// from the idle timeout.
const ENGAGING_METHODS: &[&str] = &["sip.register", "sip.call"];

/// One web user: requests in, responses and events out, until the socket
/// closes or goes quiet; then its calls are hung up and its account
/// unregistered. The gateway pings every `ws_ping_interval`; a connection
/// that sends nothing for `ws_pong_timeout` after a ping is closed, and so
/// is one that has neither registered nor called after `ws_idle_timeout`.
async fn session(gw: Arc<Gateway>, ws: WebSocketStream<impl Stream>) -> anyhow::Result<()> {
    let (mut sink, mut source) = ws.split();
    let (out_tx, mut out_rx) = mpsc::unbounded_channel::<String>();
    let (control_tx, mut control_rx) = mpsc::unbounded_channel::<Message>();
    let user = User::new(gw.clone(), out_tx.clone());
    gw.add_user(user.clone());
    tracing::info!(user = user.id, "web user connected");
    let writer = tokio::spawn(async move {
        loop {
            let message = tokio::select! {
                Some(control) = control_rx.recv() => control,
                Some(text) = out_rx.recv() => Message::text(text),
                else => break,
            };
            let closing = matches!(message, Message::Close(_));
            if sink.send(message).await.is_err() || closing {
                break;
            }
        }
        let _ = sink.close().await;
    });
    // The page's RTCPeerConnection gets the gateway's STUN/TURN servers,
    // with TURN credentials of its own that expire (ice.rs).
    let ice_servers = pipelines::ice::with_credentials(
        &gw.config.ice_servers,
        &format!("web{}", user.id),
        std::time::SystemTime::now(),
    )?;
    let ready = Notification::new(
        "ready",
        json!({
            "protocol": PROTOCOL_VERSION,
            "version": env!("CARGO_PKG_VERSION"),
            "gateway": true,
            "iceServers": ice_servers,
        }),
    );
    out_tx.send(serde_json::to_string(&ready)?).ok();
    let engaged = Arc::new(AtomicBool::new(false));
    let idle_deadline = tokio::time::sleep(gw.config.ws_idle_timeout);
    tokio::pin!(idle_deadline);
    let mut pings =
        tokio::time::interval_at(tokio::time::Instant::now() + gw.config.ws_ping_interval, gw.config.ws_ping_interval);
    pings.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Set when a ping goes out and nothing has been heard since.
    let mut pong_deadline: Option<tokio::time::Instant> = None;
    let close_reason = loop {
        let message = tokio::select! {
            message = source.next() => message,
            _ = pings.tick() => {
                control_tx.send(Message::Ping(Vec::new().into())).ok();
                pong_deadline.get_or_insert(tokio::time::Instant::now() + gw.config.ws_pong_timeout);
                continue;
            }
            _ = async { tokio::time::sleep_until(pong_deadline.expect("guarded")).await }, if pong_deadline.is_some() => {
                break Some("no answer to ping");
            }
            _ = &mut idle_deadline, if !engaged.load(Ordering::SeqCst) => {
                break Some("idle: neither registered nor called");
            }
        };
        pong_deadline = None;
        let text = match message {
            Some(Ok(Message::Text(t))) => t.to_string(),
            Some(Ok(Message::Binary(_))) => {
                let err = RpcError::new(codes::INVALID_REQUEST, "send JSON-RPC as text messages, not binary");
                out_tx.send(serde_json::to_string(&Response::error(Value::Null, err))?).ok();
                continue;
            }
            Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break None,
            Some(Ok(_)) => continue, // pings are answered by tungstenite; pongs count as heard
        };
        let request = match protocol::parse(&text) {
            Ok(r) => r,
            Err(response) => {
                tracing::warn!(user = user.id, "bad request message");
                out_tx.send(serde_json::to_string(&*response)?).ok();
                continue;
            }
        };
        let user = user.clone();
        let out = out_tx.clone();
        let engaged = engaged.clone();
        tokio::spawn(async move {
            let method = request.method.clone();
            let result = user.request(&request.method, request.params).await;
            if result.is_ok() && ENGAGING_METHODS.contains(&method.as_str()) {
                engaged.store(true, Ordering::SeqCst);
            }
            if let Some(id) = request.id {
                let response = match result {
                    Ok(v) => Response::result(id, v),
                    Err(e) => {
                        tracing::info!(user = user.id, %method, code = e.code, error = %e.message, "request failed");
                        Response::error(id, e)
                    }
                };
                if let Ok(text) = serde_json::to_string(&response) {
                    out.send(text).ok();
                }
            }
        });
    };
    // The socket is closed first (a close frame, then the TCP close), so
    // the client is not kept waiting while the calls are hung up.
    let frame = match close_reason {
        Some(reason) => {
            tracing::info!(user = user.id, reason, "web user disconnected by the gateway");
            Some(CloseFrame { code: CloseCode::Policy, reason: reason.into() })
        }
        None => {
            tracing::info!(user = user.id, "web user disconnected");
            None
        }
    };
    control_tx.send(Message::Close(frame)).ok();
    let mut writer = writer;
    if tokio::time::timeout(Duration::from_secs(1), &mut writer).await.is_err() {
        writer.abort();
    }
    drop(source); // with the writer's half gone, this closes the TCP connection
    gw.remove_user(user.id);
    user.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(headers: &[(&str, &str)]) -> Head {
        Head {
            method: "GET".into(),
            path: "/ws".into(),
            query: HashMap::new(),
            headers: headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        }
    }

    #[test]
    fn same_origin_by_default_by_scheme_host_and_port() {
        let from = |origin: &str| head(&[("host", "127.0.0.1:8080"), ("origin", origin)]);
        assert!(origin_allowed(&[], &from("http://127.0.0.1:8080"), false));
        assert!(!origin_allowed(&[], &from("https://127.0.0.1:8080"), false), "another scheme");
        assert!(!origin_allowed(&[], &from("http://127.0.0.1:8081"), false), "another port");
        assert!(!origin_allowed(&[], &from("http://127.0.0.1"), false), "the default port is 80");
        assert!(!origin_allowed(&[], &from("http://evil.example"), false));
        assert!(!origin_allowed(&[], &from("null"), false));
        assert!(origin_allowed(&[], &head(&[("host", "127.0.0.1:8080")]), false), "non-browser clients send no Origin");
        let default_port = head(&[("host", "Gw.Example"), ("origin", "http://gw.example:80")]);
        assert!(origin_allowed(&[], &default_port, false), "port 80 is http's default; hosts ignore case");
        let proxied = head(&[("host", "gw.example"), ("origin", "https://gw.example"), ("x-forwarded-proto", "https")]);
        assert!(origin_allowed(&[], &proxied, false), "behind a TLS proxy");
        let v6 = head(&[("host", "[::1]:8080"), ("origin", "http://[::1]:8080")]);
        assert!(origin_allowed(&[], &v6, false));
        let served_tls = from("https://127.0.0.1:8080");
        assert!(origin_allowed(&[], &served_tls, true), "the page over the gateway's own HTTPS");
        assert!(!origin_allowed(&[], &from("http://127.0.0.1:8080"), true), "plain http to a TLS gateway");
    }

    #[test]
    fn allowed_origins_by_scheme_host_and_port() {
        let allowed = ["https://app.example".to_string()];
        let from = |origin: &str| head(&[("host", "127.0.0.1:8080"), ("origin", origin)]);
        assert!(origin_allowed(&allowed, &from("https://app.example"), false));
        assert!(origin_allowed(&allowed, &from("https://APP.example:443"), false));
        assert!(!origin_allowed(&allowed, &from("http://app.example"), false), "another scheme");
        assert!(!origin_allowed(&allowed, &from("https://app.example:8443"), false), "another port");
        assert!(!origin_allowed(&allowed, &from("http://127.0.0.1:8080"), false), "the list replaces same-origin");
        assert!(origin_allowed(&["*".into()], &from("http://any"), false));
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b+c%2"), "a b c%2");
    }
}
