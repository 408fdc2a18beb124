//! Counts of SIP messages passing the transports, by direction and by
//! request method or response code, for an operator's metrics. Incoming
//! messages are counted once screened; outgoing ones as they leave over
//! UDP, and the screen's own refusals on every transport.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// What a counted message was.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum MessageKind {
    /// A request by method (`INVITE`, ...; `OTHER` for the rest).
    Request(&'static str),
    /// A response by status code.
    Response(u16),
}

/// One counter: `incoming` or outgoing messages of `kind`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageCount {
    pub incoming: bool,
    pub kind: MessageKind,
    pub count: u64,
}

const METHODS: [&str; 14] = [
    "INVITE",
    "ACK",
    "BYE",
    "CANCEL",
    "OPTIONS",
    "REGISTER",
    "INFO",
    "UPDATE",
    "MESSAGE",
    "PRACK",
    "REFER",
    "NOTIFY",
    "SUBSCRIBE",
    "PUBLISH",
];

#[derive(Default)]
pub(crate) struct Traffic {
    counts: Mutex<BTreeMap<(bool, MessageKind), u64>>,
}

impl Traffic {
    /// Counts the message in `bytes` (keep-alives and garbage are not).
    pub fn note(&self, incoming: bool, bytes: &[u8]) {
        if let Some(kind) = kind_of(bytes) {
            *self.counts.lock().unwrap().entry((incoming, kind)).or_default() += 1;
        }
    }

    pub fn snapshot(&self) -> Vec<MessageCount> {
        let counts = self.counts.lock().unwrap();
        counts
            .iter()
            .map(|((incoming, kind), n)| MessageCount { incoming: *incoming, kind: kind.clone(), count: *n })
            .collect()
    }
}

fn kind_of(bytes: &[u8]) -> Option<MessageKind> {
    let line = bytes.split(|b| *b == b'\r' || *b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?;
    if let Some(status) = line.strip_prefix("SIP/2.0 ") {
        let code: u16 = status.get(..3)?.parse().ok()?;
        return (100..700).contains(&code).then_some(MessageKind::Response(code));
    }
    let method = line.split(' ').next()?;
    line.ends_with(" SIP/2.0")
        .then(|| MessageKind::Request(METHODS.into_iter().find(|m| *m == method).unwrap_or("OTHER")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_by_method_and_responses_by_code() {
        let t = Traffic::default();
        t.note(true, b"INVITE sip:a@b SIP/2.0\r\nVia: x\r\n\r\n");
        t.note(true, b"INVITE sip:a@b SIP/2.0\r\n\r\n");
        t.note(false, b"SIP/2.0 486 Busy Here\r\n\r\n");
        t.note(true, b"FOO sip:a@b SIP/2.0\r\n\r\n");
        t.note(true, b"\r\n\r\n");
        t.note(true, b"garbage");
        let snap = t.snapshot();
        let count = |incoming, kind| snap.iter().find(|c| c.incoming == incoming && c.kind == kind).map(|c| c.count);
        assert_eq!(count(true, MessageKind::Request("INVITE")), Some(2));
        assert_eq!(count(false, MessageKind::Response(486)), Some(1));
        assert_eq!(count(true, MessageKind::Request("OTHER")), Some(1));
        assert_eq!(snap.len(), 3);
    }
}
