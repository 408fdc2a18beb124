//! The way back to one web user: `sip.event` notifications on its
//! WebSocket, and word to its connection when one of its calls has ended.

use super::header_prefixes::HeaderPrefixes;
use crate::protocol::Notification;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

#[derive(Clone)]
pub struct Browser {
    pub user: u64,
    out: mpsc::UnboundedSender<String>,
    call_ended: Arc<dyn Fn(&str) + Send + Sync>,
    /// Which of a SIP peer's header fields events carry (`sip.register`).
    header_prefixes: Arc<Mutex<HeaderPrefixes>>,
    /// How often calls send a `stats` event (`sip.register`); none: never.
    stats_interval: Arc<Mutex<Option<std::time::Duration>>>,
}

impl Browser {
    pub fn new(user: u64, out: mpsc::UnboundedSender<String>, call_ended: Arc<dyn Fn(&str) + Send + Sync>) -> Self {
        Browser { user, out, call_ended, header_prefixes: Arc::default(), stats_interval: Arc::default() }
    }

    /// Sends a `sip.event` notification.
    pub fn emit(&self, event: &str, mut params: Value) {
        params["event"] = json!(event);
        tracing::debug!(user = self.user, %event, "event");
        if let Ok(text) = serde_json::to_string(&Notification::new("sip.event", params)) {
            let _ = self.out.send(text);
        }
    }

    /// The user's choice of the SIP peer's header fields to see.
    pub fn set_header_prefixes(&self, prefixes: HeaderPrefixes) {
        *self.header_prefixes.lock().unwrap() = prefixes;
    }

    pub fn set_stats_interval(&self, interval: Option<std::time::Duration>) {
        *self.stats_interval.lock().unwrap() = interval;
    }

    pub fn stats_interval(&self) -> Option<std::time::Duration> {
        *self.stats_interval.lock().unwrap()
    }

    /// The fields of `headers` the user chose to see, as a JSON object.
    pub fn pick_headers(&self, headers: &[(String, String)]) -> Value {
        self.header_prefixes.lock().unwrap().pick(headers)
    }

    /// Frees the call's slot on the connection.
    pub fn call_ended(&self, call: &str) {
        (self.call_ended)(call)
    }
}
