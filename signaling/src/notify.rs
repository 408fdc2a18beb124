//! NOTIFYs arriving (RFC 6665): those of our subscriptions, matched by
//! Call-ID and passed to them, and what a NOTIFY says. Unsolicited ones
//! (no subscription) are told apart in `inbound.rs`.

use crate::events::{Notification, SubscriptionEvent};
use rsipstack::sip::prelude::HeadersExt;
use rsipstack::sip::Request;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// Where the NOTIFYs of a live subscription go, by its Call-ID.
pub(crate) struct Sink {
    pub events: mpsc::UnboundedSender<SubscriptionEvent>,
    /// Woken by a NOTIFY saying `terminated`: no more refreshes.
    pub ended: Arc<tokio::sync::Notify>,
}

/// A NOTIFY's content.
pub(crate) fn notification_of(req: &Request) -> Notification {
    let event = req.header_value("Event").unwrap_or_default();
    Notification {
        event: event.split(';').next().unwrap_or("").trim().to_string(),
        state: req.header_value("Subscription-State").unwrap_or_default().trim().to_string(),
        content_type: req.header_value("Content-Type").unwrap_or_default().trim().to_string(),
        body: String::from_utf8_lossy(&req.body).into_owned(),
    }
}

/// A NOTIFY for one of our subscriptions (by Call-ID): passed to it;
/// `false` when it is for none. `terminated` ends the subscription.
pub(crate) fn deliver(subscriptions: &Mutex<HashMap<String, Sink>>, req: &Request) -> bool {
    let Some(call_id) = req.call_id_header().ok().map(|c| c.value().to_string()) else { return false };
    let mut subscriptions = subscriptions.lock().unwrap();
    let Some(sink) = subscriptions.get(&call_id) else { return false };
    let notification = notification_of(req);
    let terminated = notification.state.to_ascii_lowercase().starts_with("terminated");
    let _ = sink.events.send(SubscriptionEvent::Notify(notification));
    if terminated {
        let _ = sink.events.send(SubscriptionEvent::Terminated);
        sink.ended.notify_one();
        subscriptions.remove(&call_id);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::notification_of;

    #[test]
    fn a_notify_reads_as_a_notification() {
        let notify = "NOTIFY sip:alice@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKn1\r\nMax-Forwards: 70\r\nFrom: <sip:vm@127.0.0.1>;tag=n1\r\nTo: <sip:alice@127.0.0.1>;tag=a1\r\nCall-ID: s1@127.0.0.1\r\nCSeq: 2 NOTIFY\r\nEvent: message-summary;id=7\r\nSubscription-State: active;expires=3599\r\nContent-Type: application/simple-message-summary\r\nContent-Length: 23\r\n\r\nMessages-Waiting: yes\r\n";
        let req = rsipstack::sip::Request::try_from(notify).unwrap();
        let n = notification_of(&req);
        assert_eq!(n.event, "message-summary");
        assert_eq!(n.state, "active;expires=3599");
        assert_eq!(n.content_type, "application/simple-message-summary");
        assert_eq!(n.body, "Messages-Waiting: yes\r\n");
    }
}
