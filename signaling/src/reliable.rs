//! Reliable provisional responses as UAS (RFC 3262 §3).
//!
//! rsipstack answers a PRACK 200 but does not make 1xx responses reliable.
//! Here a reliable 180/183 carries `Require: 100rel` and an `RSeq`, and is
//! retransmitted (T1, doubling up to T2) until the PRACK with the matching
//! `RAck` arrives, the call is answered or ends; unacknowledged for 64*T1,
//! the INVITE is refused with 500. One reliable response is outstanding at
//! a time (§3: the next one waits for the PRACK of the first).

use crate::error::Error;
use rsipstack::sip::prelude::HeadersExt;
use rsipstack::sip::{Method, Request};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::oneshot;

/// RFC 3261 T2: the retransmission interval's ceiling.
pub(crate) const T2: Duration = Duration::from_secs(4);

/// Outstanding reliable provisional responses, by Call-ID: the RSeq a PRACK
/// must acknowledge and who waits for it.
#[derive(Default)]
pub(crate) struct PrackWaiters(Mutex<HashMap<String, (u32, oneshot::Sender<()>)>>);

impl PrackWaiters {
    /// An incoming PRACK (already matched to its dialog): wakes the sender
    /// of the response it acknowledges.
    pub fn prack_received(&self, prack: &Request, call_id: &str) {
        let Some(rseq) = rack_rseq(prack) else { return };
        let mut waiters = self.0.lock().unwrap();
        if waiters.get(call_id).is_some_and(|(want, _)| *want == rseq) {
            if let Some((_, tx)) = waiters.remove(call_id) {
                let _ = tx.send(());
            }
        }
    }

    /// The next RSeq of the call and the wait for its PRACK; refused while
    /// the previous one is unacknowledged (the RSeq is then not used up).
    pub(crate) fn register(&self, call_id: &str, rseq: &RSeqCounter) -> Result<(u32, oneshot::Receiver<()>), Error> {
        let mut waiters = self.0.lock().unwrap();
        if waiters.contains_key(call_id) {
            return Err(Error::InvalidState("the last reliable provisional response is not acknowledged yet".into()));
        }
        let (tx, rx) = oneshot::channel();
        let rseq = rseq.next();
        waiters.insert(call_id.to_string(), (rseq, tx));
        Ok((rseq, rx))
    }

    pub(crate) fn forget(&self, call_id: &str) {
        self.0.lock().unwrap().remove(call_id);
    }
}

/// The RSeq a PRACK's `RAck: rseq cseq method` acknowledges (an INVITE's
/// response only).
fn rack_rseq(prack: &Request) -> Option<u32> {
    let value = prack.header_value("RAck")?;
    let mut parts = value.split_whitespace();
    let rseq = parts.next()?.parse().ok()?;
    let _cseq: u32 = parts.next()?.parse().ok()?;
    parts.next()?.parse::<Method>().ok().filter(|m| *m == Method::Invite).map(|_| rseq)
}

/// RSeq numbering of one call: a random start (§7.1 allows 1 to 2^31-1),
/// one up per reliable response.
pub(crate) struct RSeqCounter(AtomicU32);

impl RSeqCounter {
    pub fn new() -> RSeqCounter {
        use std::hash::{BuildHasher, Hasher};
        let random = std::collections::hash_map::RandomState::new().build_hasher().finish();
        RSeqCounter(AtomicU32::new((random % (1 << 30)) as u32 + 1))
    }

    fn next(&self) -> u32 {
        self.0.fetch_add(1, Ordering::SeqCst)
    }
}

/// How the caller of an incoming call stands on 100rel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PeerReliability {
    /// Not listed: provisional responses are sent once.
    Unsupported,
    /// In `Supported`: we send 183s with SDP reliably (early media then
    /// reaches the caller for sure), 180s once.
    Supported,
    /// In `Require`: every provisional response but 100 is reliable.
    Required,
}

impl PeerReliability {
    pub fn of(invite: &Request) -> PeerReliability {
        if crate::extensions::peer_requires(invite, "100rel") {
            PeerReliability::Required
        } else if crate::extensions::peer_supports(invite, "100rel") {
            PeerReliability::Supported
        } else {
            PeerReliability::Unsupported
        }
    }
}
