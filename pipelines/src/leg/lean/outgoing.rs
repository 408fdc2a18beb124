//! Everything a lean leg sends, as one RTP stream: relayed packets (from
//! the relay, `crate::leg::relay`) and the send chain's (silence, played
//! or transcoded audio, DTMF) both go through here into str0m, which
//! encrypts them and sends them from the leg's socket. No queue, no thread:
//! the packet leaves on the thread that hands it over.
//!
//! The sources number their packets independently (the relay its own
//! stream, the send chain's payloader its own); a switch from one to the
//! other must not look like a jump to the receiver, so every packet's
//! sequence number and timestamp are mapped onto one outgoing stream, as
//! the relay does for a change of source.

use super::transport::Transport;
use crate::leg::quality::Sent;
use crate::leg::relay::HeaderRewrite;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

pub(super) struct Outgoing {
    transport: Arc<Transport>,
    stream: Mutex<HeaderRewrite>,
    /// The negotiated audio's clock rate, for the timestamp gap across a
    /// change of source.
    clock_rate: AtomicU32,
    sent: Arc<Sent>,
}

impl Outgoing {
    pub fn new(transport: Arc<Transport>, sent: Arc<Sent>) -> Outgoing {
        Outgoing { transport, stream: Mutex::new(HeaderRewrite::new()), clock_rate: AtomicU32::new(8000), sent }
    }

    pub fn set_clock_rate(&self, rate: u32) {
        self.clock_rate.store(rate, Ordering::Relaxed);
    }

    /// Sends one RTP packet; false if the session cannot send yet.
    pub fn send(&self, mut packet: Vec<u8>) -> bool {
        let Some(&pt) = packet.get(1) else { return false };
        if packet.len() < 12 {
            return false;
        }
        self.stream.lock().unwrap().rewrite(&mut packet, pt & 0x7f, self.clock_rate.load(Ordering::Relaxed));
        let sent = self.transport.send_rtp(&packet);
        if sent {
            self.sent.count(packet.len());
        }
        sent
    }
}
