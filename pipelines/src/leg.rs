//! What every media leg has in common: options, events, the offer/answer
//! state machine, and the [`Leg`] handle the bridge holds.

use crate::codec::{Codec, DEFAULT_PREFERENCE};
use crate::port::MediaPort;
use crate::rtp_leg::RtpLeg;
use crate::webrtc_leg::WebRtcLeg;
use crate::Error;
use std::net::IpAddr;
use std::sync::Arc;

/// Settings of one leg. Defaults suit loopback tests and a LAN.
#[derive(Debug, Clone)]
pub struct LegOptions {
    /// Address we receive media on and write into SDP (RTP legs), and the
    /// addresses ICE gathers candidates on (WebRTC legs).
    pub media_addresses: Vec<IpAddr>,
    /// Codecs we accept, in our order of preference for offers.
    pub codecs: Vec<Codec>,
    /// Jitter-buffer size. webrtcbin defaults to 200 ms, most of the delay a
    /// listener hears; 40 ms is plenty on a LAN.
    pub jitter_latency_ms: u32,
    /// Lowest and highest UDP port for RTP legs (even ports, RTCP on +1).
    pub rtp_ports: (u16, u16),
    /// Opus encoder bit rate, bit/s.
    pub opus_bitrate: u32,
    /// Opus encoder complexity 0-10. 5 costs a quarter of 10's CPU for
    /// little audible difference on speech.
    pub opus_complexity: u32,
    /// Packet time we ask for in our own RTP offers, ms.
    pub ptime: u32,
    /// When RTP legs send to where the peer's RTP comes from instead of
    /// the address in its SDP.
    pub symmetric_rtp: SymmetricRtp,
    /// RTP legs report `disconnected` after this long without RTP from a
    /// peer that should be sending (0: never).
    pub rtp_timeout_ms: u32,
}

/// Symmetric RTP (RFC 4961) policy for RTP legs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SymmetricRtp {
    /// Follow the source when its IP differs from the SDP's (NAT, or a
    /// phone that wrote a wrong address): the classic one-way-audio cure.
    /// A different port on the advertised IP is taken as a peer that
    /// sends from another socket than it receives on, and left alone.
    #[default]
    Auto,
    /// Always send to where the first packet came from.
    Always,
    /// Always send to the SDP address.
    Never,
}

impl SymmetricRtp {
    pub fn should_latch(self, advertised: Option<std::net::SocketAddr>, source: std::net::SocketAddr) -> bool {
        match (self, advertised) {
            (SymmetricRtp::Never, _) => false,
            (SymmetricRtp::Always, _) | (SymmetricRtp::Auto, None) => true,
            (SymmetricRtp::Auto, Some(sdp)) => sdp.ip() != source.ip(),
        }
    }
}

impl Default for LegOptions {
    fn default() -> Self {
        LegOptions {
            media_addresses: vec![IpAddr::from([127, 0, 0, 1])],
            codecs: DEFAULT_PREFERENCE.to_vec(),
            jitter_latency_ms: 40,
            rtp_ports: (20000, 30000),
            opus_bitrate: 32000,
            opus_complexity: 5,
            ptime: 20,
            symmetric_rtp: SymmetricRtp::Auto,
            rtp_timeout_ms: 10_000,
        }
    }
}

/// Connection state, as RTCPeerConnection names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionState {
    New,
    Connecting,
    Connected,
    Disconnected,
    Failed,
    Closed,
}

impl ConnectionState {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionState::New => "new",
            ConnectionState::Connecting => "connecting",
            ConnectionState::Connected => "connected",
            ConnectionState::Disconnected => "disconnected",
            ConnectionState::Failed => "failed",
            ConnectionState::Closed => "closed",
        }
    }
}

/// Something a leg reports on its own.
#[derive(Debug, Clone, PartialEq)]
pub enum LegEvent {
    ConnectionStateChange(ConnectionState),
    /// A local ICE candidate (WebRTC legs), for trickle users.
    IceCandidate {
        candidate: String,
        sdp_mline_index: u32,
    },
    /// A DTMF key press received (RFC 4733).
    Dtmf {
        tone: char,
    },
    /// The leg stopped on its own (media error) or was closed.
    Closed {
        reason: String,
    },
}

/// Where a leg reports its events. Called from GStreamer threads: keep it
/// quick and non-blocking.
pub type EventHandler = Arc<dyn Fn(LegEvent) + Send + Sync>;

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

/// A media leg: one peer's audio stream, WebRTC or plain RTP.
#[derive(Clone)]
pub enum Leg {
    WebRtc(WebRtcLeg),
    Rtp(RtpLeg),
}

impl Leg {
    pub fn new_webrtc(name: &str, options: LegOptions, events: EventHandler) -> Result<Leg, Error> {
        Ok(Leg::WebRtc(WebRtcLeg::new(name, options, events)?))
    }

    pub fn new_rtp(name: &str, options: LegOptions, events: EventHandler) -> Result<Leg, Error> {
        Ok(Leg::Rtp(RtpLeg::new(name, options, events)?))
    }

    /// An offer when no remote offer is pending, else the answer to it;
    /// always complete (all ICE candidates gathered).
    pub fn local_description(&self) -> Result<SessionDescriptionText, Error> {
        match self {
            Leg::WebRtc(l) => l.local_description(),
            Leg::Rtp(l) => l.local_description(),
        }
    }

    pub fn set_remote_description(&self, kind: DescriptionKind, sdp: &str) -> Result<(), Error> {
        match self {
            Leg::WebRtc(l) => l.set_remote_description(kind, sdp),
            Leg::Rtp(l) => l.set_remote_description(kind, sdp),
        }
    }

    /// Adds a trickled remote ICE candidate. RTP legs have no ICE and ignore it.
    pub fn add_ice_candidate(&self, candidate: &str, sdp_mline_index: u32) -> Result<(), Error> {
        match self {
            Leg::WebRtc(l) => l.add_ice_candidate(candidate, sdp_mline_index),
            Leg::Rtp(_) => Ok(()),
        }
    }

    /// Sends RFC 4733 DTMF; returns once every tone has been played.
    pub fn send_dtmf(&self, tones: &str, duration_ms: u32) -> Result<(), Error> {
        let codes = crate::dtmf::parse_tones(tones)?;
        let duration = std::time::Duration::from_millis(duration_ms.clamp(40, 2000) as u64);
        for code in codes {
            match self {
                Leg::WebRtc(l) => l.dtmf_tone(code, duration)?,
                Leg::Rtp(l) => l.dtmf_tone(code, duration)?,
            }
            // Inter-digit gap, as RFC 4733 senders leave one.
            std::thread::sleep(std::time::Duration::from_millis(60));
        }
        Ok(())
    }

    pub fn port(&self) -> &MediaPort {
        match self {
            Leg::WebRtc(l) => l.port(),
            Leg::Rtp(l) => l.port(),
        }
    }

    /// Stops the leg's pipeline and reports `Closed` with `reason`.
    pub fn close(&self, reason: &str) {
        match self {
            Leg::WebRtc(l) => l.close(reason),
            Leg::Rtp(l) => l.close(reason),
        }
    }

    /// The direction our next offer asks for, for holding a SIP peer (RTP
    /// legs; a WebRTC leg's direction is the browser's to set).
    pub fn set_direction(&self, wanted: crate::sdp::Direction) -> Result<(), Error> {
        match self {
            Leg::WebRtc(_) => Err(Error::WrongState("a WebRTC leg is held by renegotiating from the browser".into())),
            Leg::Rtp(l) => {
                l.set_direction(wanted);
                Ok(())
            }
        }
    }

    /// The local RTP address and port (RTP legs).
    pub fn local_rtp_address(&self) -> Option<std::net::SocketAddr> {
        match self {
            Leg::WebRtc(_) => None,
            Leg::Rtp(l) => Some(l.local_address()),
        }
    }
}

/// Stops a leg's pipeline and reports it closed. Both leg kinds end alike.
pub(crate) fn shut_down(pipeline: &gst::Pipeline, port: &MediaPort, events: &EventHandler, reason: &str) {
    use gst::prelude::*;
    port.clear();
    let _ = pipeline.set_state(gst::State::Null);
    events(LegEvent::ConnectionStateChange(ConnectionState::Closed));
    events(LegEvent::Closed { reason: reason.to_string() });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symmetric_rtp_auto_follows_a_different_ip_only() {
        let sdp: std::net::SocketAddr = "192.0.2.10:4000".parse().unwrap();
        let natted: std::net::SocketAddr = "198.51.100.7:61000".parse().unwrap();
        let other_port: std::net::SocketAddr = "192.0.2.10:4002".parse().unwrap();
        assert!(SymmetricRtp::Auto.should_latch(Some(sdp), natted), "phone behind NAT / wrong SDP address");
        assert!(!SymmetricRtp::Auto.should_latch(Some(sdp), other_port), "same host sending from another port");
        assert!(SymmetricRtp::Auto.should_latch(None, natted), "no usable SDP address (c=0.0.0.0)");
        assert!(SymmetricRtp::Always.should_latch(Some(sdp), other_port));
        assert!(!SymmetricRtp::Never.should_latch(Some(sdp), natted));
    }

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
