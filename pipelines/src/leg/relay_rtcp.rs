//! RTCP for a plain RTP leg's relayed audio.
//!
//! Relayed packets go socket to socket under the leg's relay SSRC and never
//! enter rtpbin ([`crate::leg::relay`]), so rtpbin cannot report on them:
//! left to itself it sent no sender report for the stream we send and no
//! (or a wrong) report block about the stream we receive. While the leg
//! relays in either direction, it reports for itself instead, every 5 s
//! randomised by 0.5-1.5 (RFC 3550 section 6.2), from the process's timer
//! thread ([`crate::runtime::timer`]): a sender report for the relay SSRC
//! (packets and payload octets relayed, the NTP time now with the RTP
//! timestamp extrapolated from the packet sent least late lately), a report
//! block about the peer's stream counted on the socket thread
//! (`quality.rs`), and the SDES CNAME rtpbin uses (one participant, whichever path its packets
//! take); to the peer's RTCP address (the RTP one with rtcp-mux), as SRTCP
//! when the leg has SDES-SRTP keys. rtpbin's own RTCP is held back
//! meanwhile, so nothing contradicts it. On close, a BYE.

use crate::leg::port::MediaPort;
use crate::leg::quality::{Reception, RemoteReports};
use crate::leg::relay::RelayEnd;
use crate::leg::rtcp_packets::{ntp_timestamp, Report, SenderInfo};
use crate::leg::srtp::SrtpSession;
use crate::runtime::timer::{self, Timer};
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime};

/// The report interval before randomisation (RFC 3550's minimum).
const INTERVAL: Duration = Duration::from_secs(5);

/// Where a leg's RTCP goes: the peer's RTCP address and whether it is
/// multiplexed onto RTP (then sent from the RTP socket).
pub(crate) type RtcpDestination = Box<dyn Fn() -> Option<(SocketAddr, bool)> + Send + Sync>;

/// The reports of one leg.
pub(crate) struct RelayRtcp {
    leg: Sources,
    rtp_socket: UdpSocket,
    rtcp_socket: UdpSocket,
    destination: RtcpDestination,
    cname: String,
    /// Set by the BYE: no report may follow it.
    closed: AtomicBool,
}

/// The parts of a leg its reports come from.
pub(crate) struct Sources {
    pub end: Arc<RelayEnd>,
    pub port: MediaPort,
    pub reception: Arc<Reception>,
    pub reports: Arc<RemoteReports>,
    pub srtp: Arc<SrtpSession>,
}

impl RelayRtcp {
    /// Starts reporting; reports stop when the returned timer is dropped.
    pub fn start(
        sources: Sources,
        rtp_socket: UdpSocket,
        rtcp_socket: UdpSocket,
        destination: RtcpDestination,
        cname: String,
    ) -> (Arc<RelayRtcp>, Timer) {
        let rtcp = Arc::new(RelayRtcp {
            leg: sources,
            rtp_socket,
            rtcp_socket,
            destination,
            cname,
            closed: AtomicBool::new(false),
        });
        let weak: Weak<RelayRtcp> = Arc::downgrade(&rtcp);
        let timer = timer::schedule(
            randomised(INTERVAL / 2),
            Arc::new(move || {
                if let Some(rtcp) = weak.upgrade() {
                    rtcp.report(false);
                }
                randomised(INTERVAL)
            }),
        );
        (rtcp, timer)
    }

    /// Whether the leg relays now, in either direction: its reports are
    /// ours then, not rtpbin's.
    pub fn active(&self) -> bool {
        self.sending().is_some() || self.leg.port.relaying()
    }

    /// Sends the final report with a BYE, if the relay SSRC was ever used.
    pub fn bye(&self) {
        if !self.closed.swap(true, Ordering::SeqCst) && self.leg.end.sent_stream().is_some() {
            self.report(true);
        }
    }

    /// The relayed stream, while it has sent in the last two intervals (a
    /// sender keeps reporting as one that long, RFC 3550 section 6.3.8).
    fn sending(&self) -> Option<crate::leg::relay::SentStream> {
        self.leg.end.sent_stream().filter(|s| s.last_sent.elapsed() < 2 * INTERVAL)
    }

    fn report(&self, bye: bool) {
        if !bye && (self.closed.load(Ordering::SeqCst) || !self.active()) {
            return;
        }
        let Some((address, mux)) = (self.destination)() else { return };
        // Both clocks read together: the NTP time and the RTP timestamp
        // extrapolated to it describe the same instant.
        let (now, wall) = (Instant::now(), SystemTime::now());
        let sender = self.sending().map(|s| SenderInfo {
            ntp: ntp_timestamp(wall),
            rtp_timestamp: s.timestamp_at(now),
            packets: s.packets as u32,
            octets: s.octets as u32,
        });
        let report = Report {
            ssrc: self.leg.end.ssrc(),
            sender,
            block: self.leg.reception.report_block(self.leg.reports.lsr_dlsr()),
            cname: &self.cname,
            bye,
        };
        let mut packet = report.compound();
        match self.leg.srtp.seal(&packet, true) {
            None => {}
            Some(Ok(sealed)) => packet = sealed,
            Some(Err(_)) => return,
        }
        let socket = if mux { &self.rtp_socket } else { &self.rtcp_socket };
        // Lost like any datagram; the next report follows in a few seconds.
        let _ = socket.send_to(&packet, address);
    }
}

/// `interval` times a random factor in 0.5-1.5.
fn randomised(interval: Duration) -> Duration {
    interval.mul_f64(0.5 + crate::runtime::random_u32() as f64 / u32::MAX as f64)
}
