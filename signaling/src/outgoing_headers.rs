//! Extra header fields for two messages rsipstack builds by itself and
//! takes none for: the failure response that declines an incoming INVITE
//! (`reject()`) and the CANCEL of an unanswered outgoing one (`cancel()`).
//! They are added as the message leaves, through the endpoint's message
//! inspector, once per call (matched by Call-ID); a retransmission is a copy
//! of the message as first sent, so it carries them too.

use rsipstack::sip::prelude::HeadersExt;
use rsipstack::sip::{Header, Method, SipMessage};
use rsipstack::transaction::endpoint::MessageInspector;
use rsipstack::transport::SipAddr;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Which message of a call the headers are for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Outgoing {
    /// The final failure response to the INVITE we received.
    Rejection,
    /// The CANCEL of the INVITE we sent.
    Cancel,
}

/// How long headers wait for their message: a CANCEL that is never sent
/// (the 200 crossed it) must not leave them behind for ever.
const KEEP: Duration = Duration::from_secs(32);

#[derive(Default)]
pub(crate) struct OutgoingHeaders {
    pending: Mutex<HashMap<(String, Outgoing), Vec<Header>>>,
}

impl OutgoingHeaders {
    /// `headers` go on the call's next `kind` message.
    pub fn add(self: &Arc<Self>, call_id: &str, kind: Outgoing, headers: Vec<Header>) {
        if headers.is_empty() {
            return;
        }
        let key = (call_id.to_string(), kind);
        self.pending.lock().unwrap().insert(key.clone(), headers);
        let me = Arc::downgrade(self);
        tokio::spawn(async move {
            tokio::time::sleep(KEEP).await;
            if let Some(me) = me.upgrade() {
                me.pending.lock().unwrap().remove(&key);
            }
        });
    }

    fn take(&self, call_id: &str, kind: Outgoing) -> Option<Vec<Header>> {
        self.pending.lock().unwrap().remove(&(call_id.to_string(), kind))
    }

    /// The message with its call's waiting headers, if it is one of ours.
    fn decorate(&self, mut msg: SipMessage) -> SipMessage {
        let wanted = match &msg {
            SipMessage::Request(r) if r.method == Method::Cancel => {
                r.call_id_header().ok().map(|c| (c.value().to_string(), Outgoing::Cancel))
            }
            SipMessage::Response(r) if r.status_code.code() >= 300 => {
                let invite = r.cseq_header().ok().and_then(|c| c.method().ok()) == Some(Method::Invite);
                r.call_id_header().ok().filter(|_| invite).map(|c| (c.value().to_string(), Outgoing::Rejection))
            }
            _ => None,
        };
        if let Some(extra) = wanted.and_then(|(id, kind)| self.take(&id, kind)) {
            match &mut msg {
                SipMessage::Request(r) => r.headers.extend(extra),
                SipMessage::Response(r) => r.headers.extend(extra),
            }
        }
        msg
    }
}

/// The endpoint's message inspector: adds the waiting headers on the way out.
pub(crate) struct Inspector(pub Arc<OutgoingHeaders>);

impl MessageInspector for Inspector {
    fn before_send(&self, msg: SipMessage, _dest: Option<&SipAddr>) -> SipMessage {
        self.0.decorate(msg)
    }

    fn after_received(&self, msg: SipMessage, _from: Option<&SipAddr>) -> SipMessage {
        msg
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CANCEL: &str = "CANCEL sip:bob@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKc1\r\nMax-Forwards: 70\r\nFrom: <sip:alice@127.0.0.1>;tag=a1\r\nTo: <sip:bob@127.0.0.1>\r\nCall-ID: c1@127.0.0.1\r\nCSeq: 1 CANCEL\r\nContent-Length: 0\r\n\r\n";
    const DECLINE: &str = "SIP/2.0 486 Busy Here\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKc1\r\nFrom: <sip:alice@127.0.0.1>;tag=a1\r\nTo: <sip:bob@127.0.0.1>;tag=b1\r\nCall-ID: c1@127.0.0.1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";

    fn names(m: &SipMessage) -> String {
        m.to_string()
    }

    #[tokio::test]
    async fn headers_go_once_on_the_message_they_wait_for() {
        let pending = Arc::new(OutgoingHeaders::default());
        let extra = || vec![Header::Other("X-Why".into(), "test".into())];
        pending.add("c1@127.0.0.1", Outgoing::Rejection, extra());
        pending.add("c1@127.0.0.1", Outgoing::Cancel, extra());
        let cancel = SipMessage::try_from(CANCEL).unwrap();
        let decline = SipMessage::try_from(DECLINE).unwrap();
        assert!(names(&pending.decorate(cancel.clone())).contains("X-Why: test"));
        assert!(!names(&pending.decorate(cancel)).contains("X-Why"), "once only");
        assert!(names(&pending.decorate(decline.clone())).contains("X-Why: test"));
        assert!(!names(&pending.decorate(decline)).contains("X-Why"));
        let other = SipMessage::try_from(DECLINE.replace("c1@", "c2@").as_str()).unwrap();
        pending.add("c1@127.0.0.1", Outgoing::Rejection, extra());
        assert!(!names(&pending.decorate(other)).contains("X-Why"), "another call's response");
    }
}
