//! Legs: one peer's audio stream each, from the network to the leg's media
//! port and back. This file is the [`Leg`] handle the bridge holds, over
//! the two kinds of leg:
//!
//! ```text
//! network -> rtp.rs | webrtc.rs | lean/ -> [decode.rs: reorder.rs, no thread] -> receive.rs (depay, decode, DTMF detector dtmf.rs) -> port.rs -> consumers
//! consumers -> port.rs inputs -> send.rs (encode, payload, gate.rs) -> rtp_out.rs | webrtc.rs | lean/ -> network
//! a leg's received packets -> relay.rs -> a linked leg's socket or send chain (same codec: decoded by nobody)
//! an RTP leg -> rtp_rtcp.rs (its own SR/RR, SDES, BYE: rtcp_packets.rs, send_tally.rs) -> the peer's RTCP port
//! webrtcbin's jitter buffers (where its audio is decoded) adapt their latency: jitter.rs, as reorder.rs does
//! RTP leg's sockets <-> srtp.rs (SDES-SRTP, keys from sdes.rs) <-> decode / relay / rtp_out.rs
//! ```
//!
//! `lean/` is the opt-in second WebRTC leg: str0m (ICE, DTLS-SRTP) on the
//! shared socket threads, relaying like the RTP leg (see its mod.rs).
//!
//! `ice.rs` holds the STUN/TURN servers webrtc.rs gives webrtcbin and the
//! public address both kinds advertise behind a 1:1 NAT.
//!
//! `traffic.rs` counts the RTP packets and bytes plain RTP legs receive
//! and send, process-wide, for the operator's metrics. `quality.rs` keeps
//! each leg's figures (loss, jitter, round trip; counted on an RTP leg's
//! socket thread, read from webrtcbin's stats on a WebRTC leg) and rates
//! them with the E-model (`emodel.rs`): [`Leg::stats`].
//!
//! What both kinds share lives in files of its own, which the kinds import
//! and the facade re-exports: `options.rs` (how a leg is set up), `events.rs`
//! (what it reports), `negotiation.rs` (offer/answer), `lifecycle.rs` (how
//! its pipeline fails and ends), `media_watch.rs` (whether its peer still
//! sends).

mod decode;
pub mod dtmf;
mod emodel;
mod events;
mod gate;
pub mod ice;
mod jitter;
mod lean;
mod lifecycle;
mod media_watch;
mod negotiation;
mod options;
pub(crate) mod port;
mod quality;
mod receive;
pub(crate) mod relay;
mod reorder;
mod rtcp_packets;
mod rtp;
mod rtp_out;
mod rtp_rtcp;
mod sdes;
mod send;
mod send_tally;
mod srtp;
pub(crate) mod traffic;
mod webrtc;

pub use events::{ConnectionState, EventHandler, LegEvent};
pub use negotiation::{DescriptionKind, SessionDescriptionText};
pub use options::{LegOptions, SymmetricRtp, WebRtcLegKind};
pub use quality::{InboundStats, LegStats, OutboundStats, RemoteInboundStats};
pub use sdes::SrtpPolicy;

use crate::leg::lean::LeanLeg;
use crate::leg::port::MediaPort;
use crate::leg::rtp::RtpLeg;
use crate::leg::webrtc::WebRtcLeg;
use crate::Error;

/// A media leg: one peer's audio stream, WebRTC (webrtcbin, or the lean
/// leg when [`LegOptions::webrtc_leg`] asks for it) or plain RTP.
#[derive(Clone)]
pub enum Leg {
    WebRtc(WebRtcLeg),
    Lean(LeanLeg),
    Rtp(RtpLeg),
}

impl Leg {
    pub fn new_webrtc(name: &str, options: LegOptions, events: EventHandler) -> Result<Leg, Error> {
        Ok(match options.webrtc_leg {
            WebRtcLegKind::Webrtcbin => Leg::WebRtc(WebRtcLeg::new(name, options, events)?),
            WebRtcLegKind::Lean => Leg::Lean(LeanLeg::new(name, options, events)?),
        })
    }

    pub fn new_rtp(name: &str, options: LegOptions, events: EventHandler) -> Result<Leg, Error> {
        Ok(Leg::Rtp(RtpLeg::new(name, options, events)?))
    }

    /// An offer when no remote offer is pending, else the answer to it;
    /// always complete (all ICE candidates gathered).
    pub fn local_description(&self) -> Result<SessionDescriptionText, Error> {
        match self {
            Leg::WebRtc(l) => l.local_description(),
            Leg::Lean(l) => l.local_description(),
            Leg::Rtp(l) => l.local_description(),
        }
    }

    pub fn set_remote_description(&self, kind: DescriptionKind, sdp: &str) -> Result<(), Error> {
        match self {
            Leg::WebRtc(l) => l.set_remote_description(kind, sdp),
            Leg::Lean(l) => l.set_remote_description(kind, sdp),
            Leg::Rtp(l) => l.set_remote_description(kind, sdp),
        }
    }

    /// Adds a trickled remote ICE candidate. RTP legs have no ICE and ignore it.
    pub fn add_ice_candidate(&self, candidate: &str, sdp_mline_index: u32) -> Result<(), Error> {
        match self {
            Leg::WebRtc(l) => l.add_ice_candidate(candidate, sdp_mline_index),
            Leg::Lean(l) => l.add_ice_candidate(candidate),
            Leg::Rtp(_) => Ok(()),
        }
    }

    /// Sends RFC 4733 DTMF; returns once every tone has been played.
    pub fn send_dtmf(&self, tones: &str, duration_ms: u32) -> Result<(), Error> {
        let codes = crate::leg::dtmf::parse_tones(tones)?;
        let duration = std::time::Duration::from_millis(duration_ms.clamp(40, 2000) as u64);
        for code in codes {
            match self {
                Leg::WebRtc(l) => l.dtmf_tone(code, duration)?,
                Leg::Lean(l) => l.dtmf_tone(code, duration)?,
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
            Leg::Lean(l) => l.port(),
            Leg::Rtp(l) => l.port(),
        }
    }

    /// The leg's quality figures now: what it receives and sends, what the
    /// peer reports, and the MOS estimate ([`LegStats::mos`]).
    pub fn stats(&self) -> Result<LegStats, Error> {
        match self {
            Leg::WebRtc(l) => l.stats(),
            Leg::Lean(l) => Ok(l.stats()),
            Leg::Rtp(l) => Ok(l.stats()),
        }
    }

    /// Stops the leg's pipeline and reports `Closed` with `reason`.
    pub fn close(&self, reason: &str) {
        match self {
            Leg::WebRtc(l) => l.close(reason),
            Leg::Lean(l) => l.close(reason),
            Leg::Rtp(l) => l.close(reason),
        }
    }

    /// The direction our next offer asks for, for holding a SIP peer (RTP
    /// legs; a WebRTC leg's direction is the browser's to set).
    pub fn set_direction(&self, wanted: crate::codec::sdp::Direction) -> Result<(), Error> {
        match self {
            Leg::WebRtc(_) | Leg::Lean(_) => {
                Err(Error::WrongState("a WebRTC leg is held by renegotiating from the browser".into()))
            }
            Leg::Rtp(l) => {
                l.set_direction(wanted);
                Ok(())
            }
        }
    }

    /// The local RTP address and port (RTP legs).
    pub fn local_rtp_address(&self) -> Option<std::net::SocketAddr> {
        match self {
            Leg::WebRtc(_) | Leg::Lean(_) => None,
            Leg::Rtp(l) => Some(l.local_address()),
        }
    }
}
