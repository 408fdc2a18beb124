//! Transfer as the transferee (RFC 3515): the peer's REFER, if the
//! service's policy allows it, becomes a new call to the Refer-To target,
//! with the REFER's Referred-By (RFC 3892) and the Replaces its Refer-To
//! carries (RFC 3891). The referrer hears the new call's progress as NOTIFY
//! `message/sipfrag`: 100 at once, then 180/183, then 200 or the failure
//! code. Answered, the new call takes the old one's place: the front-end
//! gets [`Event::Transferred`] (the new call is [`SipCall::successor`]) and
//! moves its media link there, the
//! new call's events follow on the old call's channel, and the old dialog
//! is ended with BYE. A failed target (busy, unreachable) leaves the old
//! call as it was.

use super::error::CallError;
use super::events::{Event, Events};
use super::handover::{Handover, Referral};
use super::registry::TransferPolicy;
use super::sip_call::SipCall;
use std::sync::Arc;
use std::time::Duration;
use tracing::{debug, info, warn, Instrument};

/// How long the front-end has to answer a transfer request (policy `ask`)
/// before the REFER is refused with 603.
const ASK_TIMEOUT: Duration = Duration::from_secs(30);

impl SipCall {
    /// The peer's REFER: refused (policy, a target we cannot call, a call
    /// not answered, a transfer already going on), or accepted and carried
    /// out on a task of its own while this call goes on.
    pub(super) async fn on_refer(
        self: &Arc<Self>,
        target: String,
        referred_by: Option<String>,
        replaces: Option<String>,
    ) {
        let ask = self.transfer_policy == TransferPolicy::Ask;
        if let Some((code, why)) = self.refer_refusal(&target, !ask) {
            info!(%target, code, why, "transfer refused");
            if let Err(e) = self.sip.reject_refer(code).await {
                warn!(error = %e, "cannot refuse the REFER");
            }
            return;
        }
        if ask {
            info!(%target, "transfer requested: the front-end is asked");
            let referral = Referral { target: target.clone(), referred_by: referred_by.clone(), replaces };
            self.state.lock().unwrap().asked = Some(referral);
            self.emit(Event::TransferRequested { target, referred_by });
            let call = Arc::downgrade(self);
            let unanswered = async move {
                tokio::time::sleep(ASK_TIMEOUT).await;
                let Some(call) = call.upgrade() else { return };
                if call.state.lock().unwrap().asked.is_some() {
                    info!("the transfer request went unanswered");
                    let _ = call.answer_transfer(false).await;
                }
            };
            tokio::spawn(unanswered.instrument(tracing::Span::current()));
            return;
        }
        info!(%target, referred_by = referred_by.as_deref().unwrap_or(""), "transfer accepted");
        let task = self.clone().transfer(target, referred_by, replaces);
        tokio::spawn(task.instrument(tracing::Span::current()));
    }

    /// The front-end's answer to [`Event::TransferRequested`]: carry the
    /// transfer out (as under `accept`) or refuse it (603). The REFER is
    /// refused anyway if the call changed meanwhile.
    pub async fn answer_transfer(self: &Arc<Self>, accept: bool) -> Result<(), CallError> {
        let asked = self.state.lock().unwrap().asked.take();
        let Some(Referral { target, referred_by, replaces }) = asked else {
            return Err(CallError::WrongState("no transfer request is waiting for an answer".into()));
        };
        let refusal = if accept { self.refer_refusal(&target, true) } else { Some((603, "declined by the front-end")) };
        if let Some((code, why)) = refusal {
            info!(%target, code, why, "transfer refused");
            self.sip.reject_refer(code).await?;
            return Ok(());
        }
        info!(%target, "transfer accepted by the front-end");
        let task = self.clone().transfer(target, referred_by, replaces);
        tokio::spawn(task.instrument(tracing::Span::current()));
        Ok(())
    }

    /// Why a REFER to `target` is refused (status, words), if it is; with
    /// `claim`, marks the transfer pending otherwise.
    fn refer_refusal(&self, target: &str, claim: bool) -> Option<(u16, &'static str)> {
        if self.transfer_policy == TransferPolicy::Reject {
            return Some((603, "transfer.policy is reject"));
        }
        let scheme = target.split(':').next().unwrap_or("").to_ascii_lowercase();
        if scheme != "sip" && scheme != "sips" {
            return Some((416, "Refer-To is not a SIP URI"));
        }
        let mut st = self.state.lock().unwrap();
        if st.phase != super::Phase::Active {
            return Some((603, "the call is not answered"));
        }
        if !matches!(st.handover, Handover::Idle) || (claim && st.asked.is_some()) {
            return Some((491, "a transfer is already going on"));
        }
        if claim {
            st.handover = Handover::Pending(None);
        }
        None
    }

    async fn transfer(self: Arc<Self>, target: String, referred_by: Option<String>, replaces: Option<String>) {
        if let Err(e) = self.sip.accept_refer().await {
            warn!(error = %e, "cannot accept the REFER");
            self.abandon_transfer();
            return;
        }
        let headers: Vec<(String, String)> = [("Referred-By", referred_by), ("Replaces", replaces)]
            .into_iter()
            .filter_map(|(name, value)| Some((name.to_string(), value?)))
            .collect();
        // The new call logs under its own Call-ID, known once it exists.
        let span = tracing::info_span!(parent: None, "call", id = tracing::field::Empty, transferred_from = %self.id);
        let placed =
            SipCall::outgoing(&self.calls, self.caller.clone(), &target, &headers).instrument(span.clone()).await;
        let (next, mut events) = match placed {
            Ok(call) => {
                span.record("id", call.0.id.as_str());
                call
            }
            Err(e) => {
                warn!(%target, code = e.sip_status(), error = %e, "transfer target not called");
                self.report(e.sip_status()).await;
                self.abandon_transfer();
                return;
            }
        };
        info!(%target, new_call = %next.id, "transfer: calling the target");
        loop {
            match events.recv().await {
                Some(Event::Ringing) => self.report(180).await,
                Some(Event::Progress { code, .. }) => self.report(code).await,
                Some(Event::Answered) => break,
                Some(Event::Ended { code, reason, .. }) => {
                    // A call that never got a final failure (drained, CANCELled)
                    // still ended the transfer: 487 Request Terminated says so.
                    let code = if code >= 300 { code } else { 487 };
                    info!(%target, code, %reason, "transfer failed; the call goes on");
                    self.report(code).await;
                    self.abandon_transfer();
                    return;
                }
                Some(_) => {}
                None => {
                    self.report(500).await;
                    self.abandon_transfer();
                    return;
                }
            }
        }
        self.report(200).await;
        self.hand_over(next, events, "transferred").await;
    }

    /// `next` takes this call's place: the front-end hears
    /// [`Event::Transferred`] and then `next`'s events on this call's
    /// channel; this call is hung up (BYE) with `reason`, its own end
    /// untold.
    pub(super) async fn hand_over(&self, next: Arc<SipCall>, mut events: Events, reason: &str) {
        {
            let mut st = self.state.lock().unwrap();
            st.handover = Handover::Done;
            st.successor = Some(next.clone());
        }
        info!(new_call = %next.id, "{reason}: the new call takes this one's place");
        self.emit(Event::Transferred { call_id: next.id.clone() });
        let front_end = self.events.clone();
        tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                if front_end.send(event).is_err() {
                    break;
                }
            }
        });
        let _ = self.hangup(reason).await;
    }

    /// NOTIFY the referrer of the new call's status; the referrer may be
    /// gone already (it hung up after the 202), which changes nothing here.
    async fn report(&self, code: u16) {
        if let Err(e) = self.sip.notify_refer(code).await {
            debug!(code, error = %e, "transfer progress not delivered");
        }
    }

    /// The transfer failed: the call is as before, and if it ended in the
    /// meantime the front-end hears of it now.
    pub(super) fn abandon_transfer(&self) {
        let deferred = match std::mem::replace(&mut self.state.lock().unwrap().handover, Handover::Idle) {
            Handover::Pending(ended) => ended,
            _ => None,
        };
        if let Some(ended) = deferred {
            self.emit(ended);
        }
    }
}
