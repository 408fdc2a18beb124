//! A child process spoken to with one JSON object per line: requests carry
//! an `id`, replies echo it (matched by id, never by order), anything
//! without an `id` is an event. Both `sipbridge stdio` and the WebRTC test
//! peers speak this shape.

use crate::process::{self, Child};
use anyhow::{anyhow, bail, Result};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{ChildStdin, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

pub struct JsonLines {
    child: Child,
    stdin: Mutex<Option<ChildStdin>>,
    shared: Arc<(Mutex<Inbox>, Condvar)>,
    next_id: Mutex<u64>,
}

#[derive(Default)]
struct Inbox {
    replies: HashMap<String, Value>,
    events: Vec<Value>,
    closed: bool,
}

impl JsonLines {
    pub fn spawn(mut cmd: Command, dir: &Path, name: &str, limit: Duration) -> Result<JsonLines> {
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped());
        let mut child = process::spawn_piped(&mut cmd, dir, name, limit)?;
        let stdin = child.std().stdin.take();
        let stdout = child.std().stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
        let shared: Arc<(Mutex<Inbox>, Condvar)> = Arc::default();
        let reader_shared = shared.clone();
        let transcript = dir.join(format!("{name}.stdout"));
        std::thread::spawn(move || {
            let mut copy = std::fs::File::create(transcript).ok();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(f) = copy.as_mut() {
                    let _ = writeln!(f, "{line}");
                }
                let Ok(value) = serde_json::from_str::<Value>(&line) else { continue };
                let (lock, cvar) = &*reader_shared;
                let mut inbox = lock.lock().unwrap();
                match value.get("id") {
                    Some(id) if value.get("method").is_none() => {
                        inbox.replies.insert(id.to_string(), value);
                    }
                    _ => inbox.events.push(value),
                }
                cvar.notify_all();
            }
            let (lock, cvar) = &*reader_shared;
            lock.lock().unwrap().closed = true;
            cvar.notify_all();
        });
        Ok(JsonLines { child, stdin: Mutex::new(stdin), shared, next_id: Mutex::new(1) })
    }

    pub fn child(&mut self) -> &mut Child {
        &mut self.child
    }

    pub fn log(&self) -> String {
        self.child.log()
    }

    /// Writes one raw line (for malformed-input tests).
    pub fn send_line(&self, line: &str) -> Result<()> {
        let mut stdin = self.stdin.lock().unwrap();
        let stdin = stdin.as_mut().ok_or_else(|| anyhow!("stdin already closed"))?;
        stdin.write_all(line.as_bytes())?;
        stdin.write_all(b"\n")?;
        stdin.flush()?;
        Ok(())
    }

    /// Closes our end of stdin (EOF for the child).
    pub fn close_stdin(&self) {
        self.stdin.lock().unwrap().take();
    }

    /// Sends `message` with a fresh `id` added; returns the id.
    pub fn send(&self, mut message: Value) -> Result<Value> {
        let id = {
            let mut next = self.next_id.lock().unwrap();
            *next += 1;
            json!(*next)
        };
        message["id"] = id.clone();
        self.send_line(&message.to_string())?;
        Ok(id)
    }

    /// Waits for the reply with `id`.
    pub fn reply(&self, id: &Value, timeout: Duration) -> Result<Value> {
        let key = id.to_string();
        let deadline = Instant::now() + timeout;
        let (lock, cvar) = &*self.shared;
        let mut inbox = lock.lock().unwrap();
        loop {
            if let Some(reply) = inbox.replies.remove(&key) {
                return Ok(reply);
            }
            if inbox.closed {
                bail!("the process closed its output before replying to {key}; log:\n{}", process::tail(&self.log()));
            }
            let now = Instant::now();
            if now >= deadline {
                bail!("no reply to {key} within {timeout:?}; log:\n{}", process::tail(&self.log()));
            }
            inbox = cvar.wait_timeout(inbox, deadline - now).unwrap().0;
        }
    }

    /// Waits until an event matching `pred` has arrived (events already
    /// received count) and returns it.
    pub fn wait_event(&self, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Result<Value> {
        let deadline = Instant::now() + timeout;
        let (lock, cvar) = &*self.shared;
        let mut inbox = lock.lock().unwrap();
        loop {
            if let Some(e) = inbox.events.iter().find(|e| pred(e)) {
                return Ok(e.clone());
            }
            let now = Instant::now();
            if now >= deadline || inbox.closed {
                bail!("expected event did not arrive; events: {:?}", inbox.events);
            }
            inbox = cvar.wait_timeout(inbox, deadline - now).unwrap().0;
        }
    }

    pub fn events(&self) -> Vec<Value> {
        self.shared.0.lock().unwrap().events.clone()
    }

    /// Forgets the events received so far (a long run's waits stay quick).
    pub fn drain_events(&self) {
        self.shared.0.lock().unwrap().events.clear();
    }
}
