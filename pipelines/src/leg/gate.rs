//! The tap on a leg's outgoing RTP, shared by its send chain and the relay
//! that sends packets from another leg through its socket.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Opens and closes the tap on outgoing RTP: closed until the transport is
/// up (webrtcbin otherwise bursts the backlog when DTLS completes) and while
/// the negotiated direction says we must not send.
#[derive(Clone, Default)]
pub(crate) struct SendGate {
    transport_up: Arc<AtomicBool>,
    may_send: Arc<AtomicBool>,
}

impl SendGate {
    pub fn set_transport_up(&self, up: bool) {
        self.transport_up.store(up, Ordering::Relaxed);
    }

    pub fn set_may_send(&self, may: bool) {
        self.may_send.store(may, Ordering::Relaxed);
    }

    pub fn open(&self) -> bool {
        self.transport_up.load(Ordering::Relaxed) && self.may_send.load(Ordering::Relaxed)
    }
}
