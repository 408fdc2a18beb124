//! `sipbridge stdio`: the control protocol over stdin/stdout, one JSON
//! object per line, for a parent process (the node shim, any SIP app).
//! Requests run concurrently and are answered by id as they finish; stdout
//! carries protocol lines only, logs go to stderr.

use crate::engine::{Engine, EngineConfig};
use crate::protocol::{self, Notification, Response};
use serde_json::Value;
use std::io::IsTerminal;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

/// Printed (to stderr) when a person runs `sipbridge stdio` at a terminal.
const TERMINAL_HINT: &str = r#"sipbridge stdio: type JSON-RPC 2.0 requests, one per line (docs/protocol.md). Try:
  {"jsonrpc":"2.0","id":1,"method":"session.create","params":{"kind":"rtp","codecs":["PCMU"]}}
  {"jsonrpc":"2.0","id":2,"method":"session.getLocalDescription","params":{"session":"s1"}}
  {"jsonrpc":"2.0","id":3,"method":"session.close","params":{"session":"s1"}}
Ctrl-D (end of input) closes every session and exits."#;

/// Longest line we read; a longer one is answered with an error and skipped.
const MAX_LINE: usize = 1 << 20;

enum Outgoing {
    Response(Response),
    Notification(Notification),
}

pub async fn run(config: EngineConfig) -> anyhow::Result<()> {
    let (out_tx, mut out_rx) = mpsc::unbounded_channel::<Outgoing>();
    let (note_tx, mut note_rx) = mpsc::unbounded_channel::<Notification>();
    let engine = Engine::new(config, note_tx);

    // One writer owns stdout, so lines never interleave.
    let writer = tokio::spawn(async move {
        let mut stdout = tokio::io::stdout();
        loop {
            let out = tokio::select! {
                Some(o) = out_rx.recv() => o,
                Some(n) = note_rx.recv() => Outgoing::Notification(n),
                else => break,
            };
            let line = match &out {
                Outgoing::Response(r) => serde_json::to_string(r),
                Outgoing::Notification(n) => serde_json::to_string(n),
            }
            .expect("protocol messages serialize");
            if stdout.write_all(format!("{line}\n").as_bytes()).await.is_err() || stdout.flush().await.is_err() {
                break; // the parent went away
            }
        }
    });

    out_tx.send(Outgoing::Notification(Engine::ready_notification())).ok();
    if std::io::stdin().is_terminal() {
        eprintln!("{TERMINAL_HINT}");
    }
    let mut lines = BufReader::new(tokio::io::stdin());
    let mut buf = Vec::new();
    let mut pending = tokio::task::JoinSet::new();
    loop {
        buf.clear();
        let n = (&mut lines).take(MAX_LINE as u64 + 1).read_until(b'\n', &mut buf).await?;
        if n == 0 {
            break;
        }
        if buf.len() > MAX_LINE && !buf.ends_with(b"\n") {
            // Skip the rest of the oversized line.
            let mut rest = Vec::new();
            lines.read_until(b'\n', &mut rest).await?;
            let err =
                protocol::RpcError::new(protocol::codes::INVALID_REQUEST, format!("line longer than {MAX_LINE} bytes"));
            out_tx.send(Outgoing::Response(Response::error(Value::Null, err))).ok();
            continue;
        }
        let text = String::from_utf8_lossy(&buf);
        let line = text.trim();
        if line.is_empty() {
            continue;
        }
        let request = match protocol::parse(line) {
            Ok(r) => r,
            Err(response) => {
                tracing::warn!(line = %truncate(line), "bad request line");
                out_tx.send(Outgoing::Response(*response)).ok();
                continue;
            }
        };
        // A JoinSet keeps every finished task (its memory and output)
        // until it is joined: reap them here, or each request leaks ~0.6 KB.
        while pending.try_join_next().is_some() {}
        let engine = engine.clone();
        let out_tx = out_tx.clone();
        pending.spawn(async move {
            let result = engine.call(&request.method, request.params).await;
            // Requests without an id are notifications: no reply.
            if let Some(id) = request.id {
                let response = match result {
                    Ok(value) => Response::result(id, value),
                    Err(err) => {
                        tracing::warn!(method = %request.method, error = %err.message, "request failed");
                        Response::error(id, err)
                    }
                };
                out_tx.send(Outgoing::Response(response)).ok();
            }
        });
    }
    // EOF: let requests in flight finish, then close everything and exit 0.
    while pending.join_next().await.is_some() {}
    let closer = engine.clone();
    tokio::task::spawn_blocking(move || closer.close_all("stdin closed")).await?;
    drop(out_tx);
    drop(engine);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), writer).await;
    Ok(())
}

fn truncate(s: &str) -> &str {
    match s.char_indices().nth(200) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}
