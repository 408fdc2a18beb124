//! Every SIP call of a service in one place: the global call limit, the
//! user agent and media defaults calls are made with, and the drain that
//! ends them all at shutdown (BYE to each, recordings finished).

use super::error::CallError;
use super::SipCall;
use pipelines::LegOptions;
use signaling::UserAgent;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::sync::Notify;

/// The calls of one service (a daemon running a preset, or the gateway).
pub struct Calls {
    pub ua: UserAgent,
    /// Media defaults of every call's legs.
    pub legs: LegOptions,
    max_calls: usize,
    live: Mutex<HashMap<u64, Weak<SipCall>>>,
    draining: AtomicBool,
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

impl Calls {
    pub fn new(ua: UserAgent, legs: LegOptions, max_calls: usize) -> Arc<Calls> {
        Arc::new(Calls {
            ua,
            legs,
            max_calls: max_calls.max(1),
            live: Mutex::default(),
            draining: AtomicBool::new(false),
            next: AtomicU64::new(1),
            ended: Notify::new(),
        })
    }

    /// A slot for a new call, or why there is none (503 either way).
    pub fn admit(self: &Arc<Self>) -> Result<Slot, CallError> {
        if self.is_draining() {
            return Err(CallError::ShuttingDown);
        }
        let mut live = self.live.lock().unwrap();
        if live.len() >= self.max_calls {
            return Err(CallError::TooManyCalls(self.max_calls));
        }
        let seq = self.next.fetch_add(1, Ordering::Relaxed);
        live.insert(seq, Weak::new());
        Ok(Slot { calls: self.clone(), seq })
    }

    /// Records the call made in `slot`, so a drain can reach it.
    pub(super) fn bind(&self, slot: &Slot, call: &Arc<SipCall>) {
        if let Some(entry) = self.live.lock().unwrap().get_mut(&slot.seq) {
            *entry = Arc::downgrade(call);
        }
    }

    /// Calls being set up or in progress.
    pub fn active(&self) -> usize {
        self.live.lock().unwrap().len()
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Stops taking calls, hangs up every call (BYE, CANCEL or 603 as its
    /// state asks) and waits up to `grace` for all of them to end.
    /// Returns how many were still up when the grace ran out.
    pub async fn drain(&self, reason: &str, grace: Duration) -> usize {
        self.draining.store(true, Ordering::SeqCst);
        let calls: Vec<Arc<SipCall>> = self.live.lock().unwrap().values().filter_map(Weak::upgrade).collect();
        tracing::info!(calls = calls.len(), "draining: hanging up every call");
        let hangups = calls.into_iter().map(|call| {
            let reason = reason.to_string();
            tokio::spawn(async move { call.hangup(&reason).await })
        });
        let all_ended = async {
            for h in hangups.collect::<Vec<_>>() {
                let _ = h.await;
            }
            loop {
                let ended = self.ended.notified();
                if self.active() == 0 {
                    break;
                }
                ended.await;
            }
        };
        match tokio::time::timeout(grace, all_ended).await {
            Ok(()) => 0,
            Err(_) => self.active(),
        }
    }
}
