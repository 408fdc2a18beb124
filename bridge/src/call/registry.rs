//! Every SIP call of a service in one place: the global call limit, the
//! user agent and media defaults calls are made with, what a REFER gets,
//! the calls by Call-ID (for an INVITE with Replaces), and the drain that
//! ends them all at shutdown (each call hangs itself up when told: BYE,
//! CANCEL or 603 as its state asks, recordings finished first).

use super::error::CallError;
use crate::ops::CallOps;
use pipelines::LegOptions;
use signaling::UserAgent;
use std::any::Any;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::sync::{watch, Notify};

/// What a service does with a REFER (`[transfer] policy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TransferPolicy {
    /// Call the target; the new call takes the old one's place.
    Accept,
    /// Refuse with 603 Decline; the call goes on. An INVITE with
    /// Replaces is refused the same way.
    Reject,
    /// Ask the front-end ([`Event::TransferRequested`](super::Event), answered
    /// by `SipCall::answer_transfer`; 603 after 30 s without an answer).
    /// Only the gateway has someone to ask: its browser. An INVITE with
    /// Replaces is accepted.
    Ask,
}

/// The service's transfer policy and the accounts' own (`transfer_policy`
/// of an `[[account]]`), by AOR.
#[derive(Debug, Clone)]
pub struct TransferPolicies {
    pub service: TransferPolicy,
    pub accounts: Vec<(String, TransferPolicy)>,
}

impl TransferPolicies {
    /// The policy of a call from or to `uri`: the account's whose AOR names
    /// the same user at the same host (an incoming call's To keeps the AOR
    /// its caller dialled), else the service's.
    pub fn for_uri(&self, uri: &str) -> TransferPolicy {
        let wanted = user_at_host(uri);
        self.accounts.iter().find(|(aor, _)| user_at_host(aor) == wanted).map_or(self.service, |(_, p)| *p)
    }
}

/// `user@host` of a SIP URI or name-addr, lowercased, without scheme,
/// port, parameters or display name.
fn user_at_host(uri: &str) -> String {
    let uri = uri.rsplit_once('<').map_or(uri, |(_, inner)| inner);
    let uri = uri.split(['>', ';', '?']).next().unwrap_or("");
    let uri = uri.split_once(':').map_or(uri, |(_, rest)| rest);
    let (user, host) = uri.rsplit_once('@').unwrap_or(("", uri));
    let host = host.split(':').next().unwrap_or(host);
    format!("{user}@{host}").to_ascii_lowercase()
}

/// A live call as the registry holds it: weakly (a call lives as long as
/// its front-end and its pump hold it) and type-erased, since the call
/// type is built on this file (`sip_call.rs` names it, this file cannot).
type Indexed = Weak<dyn Any + Send + Sync>;

/// The calls of one service (a daemon running a preset, or the gateway).
pub struct Calls {
    pub ua: Arc<UserAgent>,
    /// Media defaults of every call's legs.
    pub legs: LegOptions,
    /// Metrics and call records of every call.
    pub ops: CallOps,
    pub transfer: TransferPolicies,
    max_calls: usize,
    /// New calls refused (a drain by POST /drain or SIGUSR1), running ones
    /// going on.
    refusing: AtomicBool,
    /// Slots taken: calls being set up or in progress.
    live: Mutex<HashSet<u64>>,
    /// Calls not ended yet, by Call-ID.
    by_call_id: Mutex<HashMap<String, Indexed>>,
    /// Turns true when the service drains; every call watches it.
    draining: watch::Sender<bool>,
    next: AtomicU64,
    /// Woken whenever a call ends, for the drain.
    ended: Notify,
}

/// A call's place under the limit; given back when dropped.
pub struct Slot {
    calls: Arc<Calls>,
    pub seq: u64,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.calls.live.lock().unwrap().remove(&self.seq);
        self.calls.ended.notify_waiters();
    }
}

impl Slot {
    /// Turns true when the service drains: the call should hang up.
    pub fn draining(&self) -> watch::Receiver<bool> {
        self.calls.draining.subscribe()
    }
}

impl Calls {
    pub fn new(
        ua: UserAgent,
        legs: LegOptions,
        max_calls: usize,
        ops: CallOps,
        transfer: TransferPolicies,
    ) -> Arc<Calls> {
        Arc::new(Calls {
            ua: Arc::new(ua),
            legs,
            ops,
            transfer,
            max_calls: max_calls.max(1),
            refusing: AtomicBool::new(false),
            live: Mutex::default(),
            by_call_id: Mutex::default(),
            draining: watch::channel(false).0,
            next: AtomicU64::new(1),
            ended: Notify::new(),
        })
    }

    /// A slot for a new call, or why there is none (503 either way).
    pub fn admit(self: &Arc<Self>) -> Result<Slot, CallError> {
        if self.is_draining() || self.refusing.load(Ordering::SeqCst) {
            return Err(CallError::ShuttingDown);
        }
        let mut live = self.live.lock().unwrap();
        if live.len() >= self.max_calls {
            return Err(CallError::TooManyCalls(self.max_calls));
        }
        let seq = self.next.fetch_add(1, Ordering::Relaxed);
        live.insert(seq);
        Ok(Slot { calls: self.clone(), seq })
    }

    /// `call` answers to `call_id` until [`Calls::forget`].
    pub(super) fn index(&self, call_id: &str, call: Indexed) {
        self.by_call_id.lock().unwrap().insert(call_id.to_string(), call);
    }

    pub(super) fn forget(&self, call_id: &str) {
        self.by_call_id.lock().unwrap().remove(call_id);
    }

    /// The live call with this Call-ID, if any.
    pub(super) fn find(&self, call_id: &str) -> Option<Arc<dyn Any + Send + Sync>> {
        self.by_call_id.lock().unwrap().get(call_id)?.upgrade()
    }

    /// Calls being set up or in progress.
    pub fn active(&self) -> usize {
        self.live.lock().unwrap().len()
    }

    pub fn is_draining(&self) -> bool {
        *self.draining.borrow()
    }

    /// At the call limit: the next call would be refused.
    pub fn is_full(&self) -> bool {
        self.active() >= self.max_calls
    }

    /// Stops taking calls (503, and OPTIONS 503 so a proxy's probe takes
    /// us out) and lets the running ones go on (POST /drain, SIGUSR1);
    /// [`Calls::drain`] ends them later.
    pub fn refuse_new(&self) {
        self.refusing.store(true, Ordering::SeqCst);
        self.ua.set_available(false);
    }

    /// Waits until no call is up.
    pub async fn idle(&self) {
        loop {
            let ended = self.ended.notified();
            if self.active() == 0 {
                return;
            }
            ended.await;
        }
    }

    /// Stops taking calls, tells every call to hang up, and waits up to
    /// `grace` for all of them to end. Returns how many were still up when
    /// the grace ran out.
    pub async fn drain(&self, grace: Duration) -> usize {
        tracing::info!(calls = self.active(), "draining: hanging up every call");
        self.draining.send_replace(true);
        match tokio::time::timeout(grace, self.idle()).await {
            Ok(()) => 0,
            Err(_) => self.active(),
        }
    }
}
