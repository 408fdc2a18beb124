//! Offer/answer (RFC 3264): the kinds of description, the text a leg hands
//! out, and the state both leg kinds keep to enforce the order.

use crate::codec::sdp::{Media, SessionDescription};
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

/// The audio section of a WebRTC peer's description; refused unless it is
/// DTLS-SRTP media (`UDP/TLS/RTP/SAVPF` with a fingerprint), which both
/// WebRTC leg kinds need.
pub(crate) fn webrtc_audio(remote: &SessionDescription) -> Result<&Media, Error> {
    let (_, media) = remote.audio().ok_or_else(|| Error::InvalidSdp("there is no audio section".into()))?;
    if !media.protocol.contains("SAVPF") {
        return Err(Error::InvalidSdp(format!(
            "a WebRTC session takes UDP/TLS/RTP/SAVPF media, not {} (use an rtp session for plain RTP peers)",
            media.protocol
        )));
    }
    if !media.has_attribute("fingerprint") && !remote.attributes.iter().any(|a| a.name == "fingerprint") {
        return Err(Error::InvalidSdp("there is no a=fingerprint: WebRTC media needs DTLS".into()));
    }
    Ok(media)
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

    #[test]
    fn webrtc_media_must_be_dtls_srtp() {
        let sdp = |proto: &str, fingerprint: &str| {
            SessionDescription::parse(&format!(
                "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
                 m=audio 9 {proto} 0\r\na=rtpmap:0 PCMU/8000\r\n{fingerprint}"
            ))
            .unwrap()
        };
        let fingerprint = "a=fingerprint:sha-256 AB:CD\r\n";
        assert!(webrtc_audio(&sdp("UDP/TLS/RTP/SAVPF", fingerprint)).is_ok());
        let plain = sdp("RTP/AVP", fingerprint);
        assert!(matches!(webrtc_audio(&plain), Err(Error::InvalidSdp(m)) if m.contains("not RTP/AVP")));
        let no_dtls = sdp("UDP/TLS/RTP/SAVPF", "");
        assert!(matches!(webrtc_audio(&no_dtls), Err(Error::InvalidSdp(m)) if m.contains("a=fingerprint")));
    }
}
