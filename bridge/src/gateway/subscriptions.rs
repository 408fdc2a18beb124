//! `sip.subscribe` / `sip.unsubscribe` of one web user: at most one
//! subscription per event package (`message-summary` for message-waiting
//! indication), each kept alive by signaling, its NOTIFYs sent to the
//! browser as `notify` events. NOTIFYs nobody subscribed to (a PBX's
//! unsolicited message-summary) reach the user through [`notify_event`].

use super::browser::Browser;
use super::errors::from_sip;
use crate::protocol::RpcError;
use serde_json::{json, Value};
use signaling::{Account, Notification, SubscribeTo, Subscription, SubscriptionEvent, UserAgent};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Stops one subscription (unsubscribing first); the reply says done.
type Stop = mpsc::UnboundedSender<oneshot::Sender<()>>;

#[derive(Default)]
pub struct Subscriptions {
    live: Arc<Mutex<HashMap<String, Stop>>>,
}

/// The `notify` event's fields.
pub fn notify_event(n: Notification, unsolicited: bool) -> Value {
    json!({
        "package": n.event,
        "state": n.state,
        "contentType": n.content_type,
        "content": n.body,
        "unsolicited": unsolicited,
    })
}

impl Subscriptions {
    /// Subscribes `account` as `what` says; progress and NOTIFYs go to `browser`.
    pub fn start(&self, ua: &UserAgent, account: Account, what: SubscribeTo, browser: Browser) -> Result<(), RpcError> {
        let package = what.event.clone();
        let mut live = self.live.lock().unwrap();
        if live.contains_key(&package) {
            return Err(RpcError::invalid_params(format!(
                "already subscribed to {package:?} on this connection; sip.unsubscribe first"
            )));
        }
        let subscription = ua.subscribe(account, what).map_err(from_sip)?;
        let (stop, stopped) = mpsc::unbounded_channel();
        live.insert(package.clone(), stop);
        tokio::spawn(forward(subscription, stopped, browser, package, self.live.clone()));
        Ok(())
    }

    /// `sip.unsubscribe`: SUBSCRIBE with `Expires: 0`, then `unsubscribed`.
    pub async fn stop(&self, package: &str) -> Result<(), RpcError> {
        let stop = self.live.lock().unwrap().remove(package);
        let stop = stop.ok_or_else(|| RpcError::invalid_params(format!("not subscribed to {package:?}")))?;
        let (done, finished) = oneshot::channel();
        if stop.send(done).is_ok() {
            let _ = finished.await;
        }
        Ok(())
    }

    /// Ends every subscription (the connection closed, or the account went).
    pub async fn stop_all(&self) {
        let packages: Vec<String> = self.live.lock().unwrap().keys().cloned().collect();
        for package in packages {
            let _ = tokio::time::timeout(Duration::from_secs(5), self.stop(&package)).await;
        }
    }
}

/// Forwards one subscription's events to the browser until it ends.
async fn forward(
    mut subscription: Subscription,
    mut stop: mpsc::UnboundedReceiver<oneshot::Sender<()>>,
    browser: Browser,
    package: String,
    live: Arc<Mutex<HashMap<String, Stop>>>,
) {
    browser.emit("subscribing", json!({ "package": package }));
    loop {
        tokio::select! {
            ev = subscription.next_event() => match ev {
                Some(SubscriptionEvent::Subscribed { expires }) => {
                    browser.emit("subscribed", json!({ "package": package, "expires": expires }))
                }
                Some(SubscriptionEvent::Notify(n)) => {
                    let v = notify_event(n, false);
                    browser.emit("notify", v)
                }
                Some(SubscriptionEvent::Failed { code, reason }) => {
                    live.lock().unwrap().remove(&package);
                    browser.emit("subscription_failed", json!({ "package": package, "code": code, "reason": reason }));
                    return;
                }
                Some(SubscriptionEvent::Terminated) | None => {
                    live.lock().unwrap().remove(&package);
                    browser.emit("unsubscribed", json!({ "package": package }));
                    return;
                }
            },
            done = stop.recv() => {
                let _ = subscription.unsubscribe().await;
                browser.emit("unsubscribed", json!({ "package": package }));
                if let Some(done) = done {
                    let _ = done.send(());
                }
                return;
            }
        }
    }
}
