//! Transfer as the transferor (RFC 3515): a REFER sent to the call's peer,
//! blind (call `target`) or attended (call the peer of another of our calls,
//! whose dialog the Refer-To names in a Replaces, RFC 3891). The peer's
//! NOTIFYs come back as [`Event::TransferProgress`](super::Event); whether
//! to hang up afterwards is the front-end's choice (a transferee usually
//! ends the call itself once its new call is up).

use super::error::CallError;
use super::events::Phase;
use super::sip_call::SipCall;
use tracing::info;

impl SipCall {
    /// Blind transfer: asks the peer to call `target` (a SIP URI). `Ok`
    /// once the peer accepted the REFER (2xx).
    pub async fn transfer_to(&self, target: &str) -> Result<(), CallError> {
        self.expect_phase(Phase::Active, "a transfer needs an answered call")?;
        self.sip.refer(target, None).await?;
        info!(%target, "transfer sent: the peer accepted the REFER");
        Ok(())
    }

    /// Attended transfer: asks the peer to call `other`'s peer, replacing
    /// our dialog with it, so the two peers end up talking to each other.
    pub async fn transfer_replacing(&self, other: &SipCall) -> Result<(), CallError> {
        self.expect_phase(Phase::Active, "a transfer needs an answered call")?;
        other.expect_phase(Phase::Active, "the call a transfer replaces must be answered")?;
        let replaces = other.sip.replaces_value()?;
        self.sip.refer(&other.peer, Some(&replaces)).await?;
        info!(target = %other.peer, replaces = %other.id, "attended transfer sent: the peer accepted the REFER");
        Ok(())
    }
}
