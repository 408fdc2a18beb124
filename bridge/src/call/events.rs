//! What a call tells its front-end, and the words for its state.

use pipelines::sdp::Direction;
use pipelines::ConnectionState;
use signaling::{OfferKind, Party};
use tokio::sync::mpsc;

/// What a front-end hears about its call, in order; [`Event::Ended`] last.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Outgoing: 180 without SDP.
    Ringing,
    /// Outgoing: 18x; `early_media` when it carried SDP (already applied).
    Progress { code: u16, early_media: bool },
    /// Outgoing: 200 OK; the answer is applied.
    Answered,
    /// Incoming: the ACK arrived (with an offerless INVITE, its answer is applied).
    Confirmed,
    /// The peer's re-INVITE or UPDATE was answered; `direction` is what the
    /// peer asked for (sendonly or inactive: it holds the call).
    Reoffered { kind: OfferKind, direction: Direction },
    /// A key press from the SIP peer.
    Dtmf { digit: char, method: DtmfMethod, duration_ms: Option<u32> },
    /// INFO that is not DTMF.
    Info { content_type: String, body: String },
    /// MESSAGE inside the call.
    Message { content_type: String, body: String },
    /// The peer transferred the call (REFER) and the target answered: the
    /// new call (`SipCall::successor`, Call-ID `call_id`) takes this one's
    /// place. Move the media link to its leg; its events follow on this
    /// channel, and this call ends without an [`Event::Ended`] of its own.
    Transferred { call_id: String },
    /// The peer asks to transfer the call (REFER) and the policy is `ask`:
    /// answer with `SipCall::answer_transfer`.
    TransferRequested { target: String, referred_by: Option<String> },
    /// A transfer we asked for (`SipCall::transfer_to`,
    /// `SipCall::transfer_replacing`): the peer's NOTIFY with the status of
    /// its call to the target; `done` when it is the last.
    TransferProgress { code: u16, reason: String, done: bool },
    /// The RTP leg's media state.
    Media(ConnectionState),
    /// The call is over: who ended it, the SIP code that best says how
    /// (200 for a BYE, 487 for a CANCEL, the failure status), and why.
    Ended { by: Party, code: u16, reason: String },
}

/// How DTMF is sent to the SIP peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DtmfMethod {
    /// RFC 4733 telephone-events on the RTP leg.
    Rfc4733,
    /// SIP INFO, `application/dtmf-relay`.
    Info,
}

impl DtmfMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            DtmfMethod::Rfc4733 => "rfc4733",
            DtmfMethod::Info => "info",
        }
    }
}

/// Where a call is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Outgoing, no final answer yet.
    Calling,
    /// Incoming, not answered yet.
    Ringing,
    /// Answered.
    Active,
    Ended,
}

pub type Events = mpsc::UnboundedReceiver<Event>;
