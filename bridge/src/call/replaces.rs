//! An INVITE with Replaces (RFC 3891): the last step of an attended
//! transfer, where the transferee (or a phone picking up a call) asks to
//! take one of our calls over. Signaling answers 481 when the Replaces
//! names no dialog of ours; here the named call, if it is answered, is
//! handed over: the new call is answered with a leg of its own, the named
//! call's front-end hears [`Event::Transferred`](super::Event) and moves
//! its media link to the new call, and the named call gets a BYE.

use super::error::CallError;
use super::events::Phase;
use super::handover::Handover;
use super::registry::{Calls, TransferPolicy};
use super::sip_call::SipCall;
use signaling::IncomingCall;
use std::sync::Arc;
use tracing::{info, warn, Instrument};

impl SipCall {
    /// Hands the call an incoming INVITE's Replaces names over to it.
    /// `Ok(Some(incoming))`: it replaces nothing, the front-end takes it
    /// as any other call. `Ok(None)`: the named call was taken over (its
    /// front-end carries on with the new call). On an error the INVITE was
    /// refused (481: the named call is gone or not answered, 491: it is
    /// being transferred, 603: `transfer.policy` is reject, or the new
    /// call's own failure).
    pub async fn take_over(calls: &Arc<Calls>, incoming: IncomingCall) -> Result<Option<IncomingCall>, CallError> {
        let Some(replaced_id) = incoming.replaces.clone() else { return Ok(Some(incoming)) };
        let replaced = calls.find(&replaced_id).and_then(|c| c.downcast::<SipCall>().ok());
        if let Some((code, why)) = refusal(calls, replaced.as_deref()) {
            info!(replaces = %replaced_id, code, why, "INVITE with Replaces refused");
            if let Err(e) = incoming.call.reject(code, None) {
                warn!(error = %e, "cannot send the refusal");
            }
            return Err(CallError::WrongState(why.into()));
        }
        let replaced = replaced.expect("refusal() checked it");
        let (next, events) = match SipCall::incoming(calls, incoming).await {
            Ok(call) => call,
            Err(e) => {
                replaced.abandon_transfer();
                return Err(e);
            }
        };
        if let Err(e) = next.answer() {
            replaced.abandon_transfer();
            next.end(signaling::Party::Local, 500, "answer failed").await;
            return Err(e);
        }
        info!(replaces = %replaced_id, from = %next.peer, "INVITE with Replaces answered");
        // What happens to the replaced call is logged under its own Call-ID.
        let span = tracing::info_span!(parent: None, "call", id = %replaced_id);
        replaced.hand_over(next, events, "replaced").instrument(span).await;
        Ok(None)
    }
}

/// Why the call named by a Replaces cannot be taken over (status, words),
/// if it cannot; marks its handover pending otherwise.
fn refusal(calls: &Calls, replaced: Option<&SipCall>) -> Option<(u16, &'static str)> {
    if replaced.map_or(calls.transfer.service, |call| call.transfer_policy) == TransferPolicy::Reject {
        return Some((603, "transfer.policy is reject"));
    }
    let Some(replaced) = replaced else { return Some((481, "the call it replaces has ended")) };
    let mut st = replaced.state.lock().unwrap();
    if st.phase != Phase::Active {
        return Some((481, "the call it replaces is not answered"));
    }
    if !matches!(st.handover, Handover::Idle) {
        return Some((491, "the call it replaces is being transferred"));
    }
    st.handover = Handover::Pending(None);
    None
}
