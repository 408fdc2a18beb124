//! What a plain RTP leg sends, from the socket it receives on (symmetric
//! RTP), to where it sends RTP now (which moves with symmetric RTP), sealed
//! with its SDES-SRTP keys when it has any, and counted: relayed packets
//! (their header rewritten by the relay, `relay.rs`) and the send chain's
//! (silence, played or transcoded audio, DTMF). No multiudpsink: the packet
//! leaves on the thread that hands it over.
//!
//! The two stay two streams (SSRCs), as they were when rtpbin sent the
//! chain's: DTMF from the send chain may go out while audio is relayed,
//! and an RFC 4733 event keeps one timestamp across its packets, which a
//! mapping onto one stream would re-base at every switch between them.
//! Each stream's counts feed its sender reports (`rtp_rtcp.rs`).

use crate::leg::quality::Sent;
use crate::leg::send_tally::{payload_len, SendTally, SentStream};
use crate::leg::srtp::SrtpSession;
use crate::runtime::log_limit::{LogLimit, REPEAT_INTERVAL};
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

pub(crate) struct RtpOut {
    socket: UdpSocket,
    destination: Box<dyn Fn() -> Option<SocketAddr> + Send + Sync>,
    srtp: Arc<SrtpSession>,
    sent: Arc<Sent>,
    /// The negotiated audio's clock rate, which the chain's timestamps count.
    clock_rate: AtomicU32,
    /// The send chain's stream: its SSRC (the payloader's) and what it sent.
    chain: Mutex<Option<(u32, SendTally)>>,
    /// A destination on an unreachable network fails every packet (50 a
    /// second): logged once per kind, then once per interval with a count.
    failures: LogLimit,
}

impl RtpOut {
    pub fn new(
        socket: UdpSocket,
        destination: Box<dyn Fn() -> Option<SocketAddr> + Send + Sync>,
        srtp: Arc<SrtpSession>,
        sent: Arc<Sent>,
    ) -> RtpOut {
        RtpOut {
            socket,
            destination,
            srtp,
            sent,
            clock_rate: AtomicU32::new(8000),
            chain: Mutex::default(),
            failures: LogLimit::new(REPEAT_INTERVAL),
        }
    }

    pub fn set_clock_rate(&self, rate: u32) {
        self.clock_rate.store(rate, Ordering::Relaxed);
    }

    /// Sends one RTP packet; false when it cannot go (no destination yet,
    /// or it cannot be sealed). `finish` completes its header once there is
    /// somewhere to send it (the relay's rewrite, which counts the packet
    /// in the relayed stream).
    pub fn send(&self, mut packet: Vec<u8>, finish: impl FnOnce(&mut [u8])) -> bool {
        let Some(address) = (self.destination)() else { return false };
        finish(&mut packet);

        match self.srtp.seal(&packet, false) {
            None => {}
            Some(Ok(sealed)) => packet = sealed,
            Some(Err(_)) => return false,
        }
        // A full socket buffer or an unreachable peer loses this packet
        // only; the next one tries again.
        match self.socket.send_to(&packet, address) {
            Ok(_) => {
                super::traffic::sent(packet.len());
                self.sent.count(packet.len());
            }
            Err(err) => {
                if let Some(repeated) = self.failures.admit(&err.kind().to_string(), std::time::Instant::now()) {
                    tracing::warn!(source = "RTP socket", %address, warning = %err, repeated, "media warning");
                }
            }
        }
        true
    }

    /// A packet of the send chain, as the payloader (or `rtpdtmfmux`) made it.
    pub fn send_from_chain(&self, packet: Vec<u8>) {
        if packet.len() < 12 {
            return;
        }
        let ssrc = u32::from_be_bytes([packet[8], packet[9], packet[10], packet[11]]);
        let timestamp = u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]);
        let octets = payload_len(&packet);
        if self.send(packet, |_| {}) {
            let mut chain = self.chain.lock().unwrap();
            if chain.as_ref().is_none_or(|(s, _)| *s != ssrc) {
                // A new send chain (a new codec) is a new stream.
                *chain = Some((ssrc, SendTally::default()));
            }
            let (_, tally) = chain.as_mut().expect("just set");
            tally.count(octets, timestamp, true, self.clock_rate.load(Ordering::Relaxed));
        }
    }

    /// The send chain's stream and what it sent; `None` before its first packet.
    pub fn chain_stream(&self) -> Option<(u32, SentStream)> {
        let chain = self.chain.lock().unwrap();
        let (ssrc, tally) = chain.as_ref()?;
        Some((*ssrc, tally.stream()?))
    }
}
