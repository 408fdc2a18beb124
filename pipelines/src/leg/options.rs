//! How a leg is set up: addresses, codecs, buffers, encoder settings and the
//! symmetric-RTP policy, with defaults for loopback tests and a LAN.

use crate::codec::{Codec, DEFAULT_PREFERENCE};
use crate::leg::ice::IceServer;
use crate::leg::sdes::SrtpPolicy;
use std::net::IpAddr;
use std::path::PathBuf;

/// Settings of one leg. Defaults suit loopback tests and a LAN.
#[derive(Debug, Clone)]
pub struct LegOptions {
    /// Address we receive media on and write into SDP (RTP legs), and the
    /// addresses ICE gathers candidates on (WebRTC legs).
    pub media_addresses: Vec<IpAddr>,
    /// The address the world reaches `media_addresses` at, behind a 1:1
    /// NAT: written into SDP `c=` (RTP legs) and into host candidates
    /// (WebRTC legs) in place of the bound address.
    pub public_address: Option<IpAddr>,
    /// STUN and TURN servers of WebRTC legs ([`crate::leg::ice`]).
    pub ice_servers: Vec<IceServer>,
    /// Trust anchors (PEM file) for the lean WebRTC leg's `turns:` servers;
    /// `None`: the system's roots.
    pub turn_tls_ca: Option<PathBuf>,
    /// Codecs we accept, in our order of preference for offers.
    pub codecs: Vec<Codec>,
    /// Jitter-buffer size. webrtcbin defaults to 200 ms, most of the delay a
    /// listener hears; 40 ms is plenty on a LAN.
    pub jitter_latency_ms: u32,
    /// Lowest and highest UDP port for RTP legs (even ports, RTCP on +1),
    /// and for the UDP candidates of WebRTC legs.
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
    /// After this long without RTP from a peer that should be sending
    /// (on hold: without RTCP either, and at least 20 s), the leg reports
    /// [`LegEvent`](crate::LegEvent)`::MediaTimeout`; RTP legs also report
    /// `disconnected`. 0: never.
    pub rtp_timeout_ms: u32,
    /// SDES-SRTP on RTP legs (WebRTC legs always use DTLS-SRTP).
    pub srtp: SrtpPolicy,
    /// Which implementation a WebRTC leg is.
    pub webrtc_leg: WebRtcLegKind,
}

/// The two WebRTC legs: webrtcbin (the default), or the lean leg
/// (`leg/lean`: str0m on the shared socket threads, opt-in).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WebRtcLegKind {
    #[default]
    Webrtcbin,
    Lean,
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
            public_address: None,
            ice_servers: Vec::new(),
            turn_tls_ca: None,
            codecs: DEFAULT_PREFERENCE.to_vec(),
            jitter_latency_ms: 40,
            rtp_ports: (20000, 30000),
            opus_bitrate: 32000,
            opus_complexity: 5,
            ptime: 20,
            symmetric_rtp: SymmetricRtp::Auto,
            rtp_timeout_ms: 10_000,
            srtp: SrtpPolicy::Optional,
            webrtc_leg: WebRtcLegKind::Webrtcbin,
        }
    }
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
}
