//! Offer/answer (RFC 3264): the kinds of description, the text a leg hands
//! out, and the state both leg kinds keep to enforce the order.

use crate::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DescriptionKind {
    Offer,
    Answer,
}

impl DescriptionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DescriptionKind::Offer => "offer",
            DescriptionKind::Answer => "answer",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SessionDescriptionText {
    pub kind: DescriptionKind,
    pub sdp: String,
}

/// Offer/answer state (RFC 3264), as RTCPeerConnection's signalingState.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Negotiation {
    Stable,
    /// We made an offer (kept, so asking again returns the same one).
    HaveLocalOffer(String),
    HaveRemoteOffer,
}

impl Negotiation {
    pub fn check_remote(&self, kind: DescriptionKind) -> Result<(), Error> {
        match (self, kind) {
            (Negotiation::Stable, DescriptionKind::Offer) => Ok(()),
            (Negotiation::HaveLocalOffer(_), DescriptionKind::Answer) => Ok(()),
            (Negotiation::HaveLocalOffer(_), DescriptionKind::Offer) => {
                Err(Error::WrongState("an offer arrived while ours is pending (glare); answer or close first".into()))
            }
            (Negotiation::Stable, DescriptionKind::Answer) => {
                Err(Error::WrongState("an answer arrived but no offer of ours is pending".into()))
            }
            (Negotiation::HaveRemoteOffer, _) => {
                Err(Error::WrongState("a remote offer is pending: get the local answer first".into()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offer_answer_order_is_enforced() {
        let stable = Negotiation::Stable;
        assert!(stable.check_remote(DescriptionKind::Offer).is_ok());
        assert!(matches!(stable.check_remote(DescriptionKind::Answer), Err(Error::WrongState(_))));
        let ours = Negotiation::HaveLocalOffer("v=0".into());
        assert!(ours.check_remote(DescriptionKind::Answer).is_ok());
        assert!(matches!(ours.check_remote(DescriptionKind::Offer), Err(Error::WrongState(m)) if m.contains("glare")));
        assert!(Negotiation::HaveRemoteOffer.check_remote(DescriptionKind::Offer).is_err());
    }
}
