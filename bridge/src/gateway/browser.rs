//! The way back to one web user: `sip.event` notifications on its
//! WebSocket, and word to its connection when one of its calls has ended.

use crate::protocol::Notification;
use serde_json::{json, Value};
use std::sync::Arc;
use tokio::sync::mpsc;

#[derive(Clone)]
pub struct Browser {
    pub user: u64,
    out: mpsc::UnboundedSender<String>,
    call_ended: Arc<dyn Fn(&str) + Send + Sync>,
}

impl Browser {
    pub fn new(user: u64, out: mpsc::UnboundedSender<String>, call_ended: Arc<dyn Fn(&str) + Send + Sync>) -> Self {
        Browser { user, out, call_ended }
    }

    /// Sends a `sip.event` notification.
    pub fn emit(&self, event: &str, mut params: Value) {
        params["event"] = json!(event);
        tracing::debug!(user = self.user, %event, "event");
        if let Ok(text) = serde_json::to_string(&Notification::new("sip.event", params)) {
            let _ = self.out.send(text);
        }
    }

    /// Frees the call's slot on the connection.
    pub fn call_ended(&self, call: &str) {
        (self.call_ended)(call)
    }
}
