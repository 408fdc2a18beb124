//! What a leg reports on its own (connection state, ICE candidates, DTMF,
//! its end), and the callback it reports through.

use std::sync::Arc;

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
