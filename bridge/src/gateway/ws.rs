//! The gateway's one TCP port: static files (the softphone page, embedded
//! from examples/web/) on `GET /`, the JSON-RPC WebSocket on `GET /ws`.
//! Token, Origin and connection-limit checks happen before the upgrade.

use super::service::Gateway;
use super::user::User;
use crate::protocol::{self, codes, Notification, Response, RpcError, PROTOCOL_VERSION};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

const INDEX_HTML: &str = include_str!("../../../examples/web/index.html");
const APP_JS: &str = include_str!("../../../examples/web/app.js");
const STYLE_CSS: &str = include_str!("../../../examples/web/style.css");

/// Largest HTTP request head and WebSocket message we take.
const MAX_HEAD: usize = 16 * 1024;
const MAX_MESSAGE: usize = 1 << 20;

/// Serves connections until `accepting` turns false (shutdown).
pub async fn serve(
    gw: Arc<Gateway>,
    listener: TcpListener,
    mut accepting: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => accepted?,
            _ = accepting.wait_for(|on| !on) => return Ok(()),
        };
        let gw = gw.clone();
        tokio::spawn(async move {
            if let Err(e) = handle(gw, stream).await {
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

async fn read_head(stream: &mut TcpStream) -> anyhow::Result<Head> {
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

async fn respond(stream: &mut TcpStream, status: &str, content_type: &str, body: &str) -> anyhow::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nCache-Control: no-cache\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.flush().await?;
    Ok(())
}

async fn handle(gw: Arc<Gateway>, mut stream: TcpStream) -> anyhow::Result<()> {
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
        "/ws" => upgrade(gw, stream, head).await,
        _ => respond(&mut stream, "404 Not Found", "text/plain", "not found\n").await,
    }
}

/// Same-origin: the Origin's host:port equals the Host header.
fn origin_allowed(allowed: &[String], origin: Option<&String>, host: Option<&String>) -> bool {
    let Some(origin) = origin else { return true };
    if allowed.iter().any(|a| a == "*" || a.eq_ignore_ascii_case(origin)) {
        return true;
    }
    if !allowed.is_empty() {
        return false;
    }
    let origin_host = origin.split_once("://").map(|(_, h)| h).unwrap_or(origin);
    host.is_some_and(|h| h.eq_ignore_ascii_case(origin_host))
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

async fn upgrade(gw: Arc<Gateway>, mut stream: TcpStream, head: Head) -> anyhow::Result<()> {
    let key = head.headers.get("sec-websocket-key").cloned();
    let is_ws = head.headers.get("upgrade").is_some_and(|u| u.eq_ignore_ascii_case("websocket"));
    let (Some(key), true) = (key, is_ws) else {
        return respond(&mut stream, "426 Upgrade Required", "text/plain", "this is the WebSocket endpoint\n").await;
    };
    if !origin_allowed(&gw.config.allowed_origins, head.headers.get("origin"), head.headers.get("host")) {
        tracing::warn!(origin = ?head.headers.get("origin"), "WebSocket refused: origin not allowed");
        return respond(&mut stream, "403 Forbidden", "text/plain", "origin not allowed\n").await;
    }
    if !token_ok(gw.config.token.as_ref(), &head) {
        tracing::warn!("WebSocket refused: missing or wrong token");
        return respond(&mut stream, "401 Unauthorized", "text/plain", "a valid token is required\n").await;
    }
    if gw.connections.fetch_add(1, Ordering::SeqCst) >= gw.config.max_connections {
        gw.connections.fetch_sub(1, Ordering::SeqCst);
        tracing::warn!(limit = gw.config.max_connections, "WebSocket refused: too many connections");
        return respond(&mut stream, "503 Service Unavailable", "text/plain", "too many connections\n").await;
    }
    let accept = derive_accept_key(key.as_bytes());
    let reply = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
    );
    let result = async {
        stream.write_all(reply.as_bytes()).await?;
        let mut config = WebSocketConfig::default();
        config.max_message_size = Some(MAX_MESSAGE);
        config.max_frame_size = Some(MAX_MESSAGE);
        let ws = WebSocketStream::from_raw_socket(stream, Role::Server, Some(config)).await;
        session(gw.clone(), ws).await
    }
    .await;
    gw.connections.fetch_sub(1, Ordering::SeqCst);
    result
}

/// One web user: requests in, responses and events out, until the socket
/// closes; then its calls are hung up and its account unregistered.
async fn session(gw: Arc<Gateway>, ws: WebSocketStream<TcpStream>) -> anyhow::Result<()> {
    let (mut sink, mut source) = ws.split();
    let (out_tx, mut out_rx) = mpsc::unbounded_channel::<String>();
    let user = User::new(gw.clone(), out_tx.clone());
    gw.add_user(user.clone());
    tracing::info!(user = user.id, "web user connected");
    let writer = tokio::spawn(async move {
        while let Some(text) = out_rx.recv().await {
            if sink.send(Message::text(text)).await.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    });
    let ready = Notification::new(
        "ready",
        json!({ "protocol": PROTOCOL_VERSION, "version": env!("CARGO_PKG_VERSION"), "gateway": true }),
    );
    out_tx.send(serde_json::to_string(&ready)?).ok();
    while let Some(message) = source.next().await {
        let text = match message {
            Ok(Message::Text(t)) => t.to_string(),
            Ok(Message::Binary(_)) => {
                let err = RpcError::new(codes::INVALID_REQUEST, "send JSON-RPC as text messages, not binary");
                out_tx.send(serde_json::to_string(&Response::error(Value::Null, err))?).ok();
                continue;
            }
            Ok(Message::Close(_)) | Err(_) => break,
            Ok(_) => continue, // ping/pong are answered by tungstenite
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
        tokio::spawn(async move {
            let method = request.method.clone();
            let result = user.request(&request.method, request.params).await;
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
    }
    tracing::info!(user = user.id, "web user disconnected");
    gw.remove_user(user.id);
    user.shutdown().await;
    drop(out_tx);
    writer.abort();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_origin_by_default() {
        let host = "127.0.0.1:8080".to_string();
        assert!(origin_allowed(&[], Some(&"http://127.0.0.1:8080".into()), Some(&host)));
        assert!(!origin_allowed(&[], Some(&"http://evil.example".into()), Some(&host)));
        assert!(origin_allowed(&[], None, Some(&host)), "non-browser clients send no Origin");
        assert!(origin_allowed(&["https://app.example".into()], Some(&"https://app.example".into()), Some(&host)));
        assert!(!origin_allowed(&["https://app.example".into()], Some(&"http://127.0.0.1:8080".into()), Some(&host)));
        assert!(origin_allowed(&["*".into()], Some(&"http://any".into()), Some(&host)));
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b+c%2"), "a b c%2");
    }
}
