//! The RTCP of a plain RTP leg, ours rather than rtpbin's: the leg has no
//! rtpbin (relayed packets never enter a pipeline, and the send chain's
//! leave through `rtp_out.rs`), so it reports for itself every 5 s
//! randomised by 0.5-1.5 (RFC 3550 section 6.2), from the process's timer
//! thread ([`crate::runtime::timer`]): a sender report for the stream it
//! sends (the relay's SSRC while it relays, else the send chain's; packets
//! and payload octets, the NTP time now with the RTP timestamp extrapolated
//! from the packet sent least late lately), or a receiver report while it
//! only receives; a report block about the peer's stream counted on the
//! socket thread (`quality.rs`); and an SDES CNAME of the leg's; to the
//! peer's RTCP address (the RTP one with rtcp-mux), as SRTCP when the leg
//! has SDES-SRTP keys. On close, a BYE.

use crate::leg::quality::{Reception, RemoteReports};
use crate::leg::relay::RelayEnd;
use crate::leg::rtcp_packets::{ntp_timestamp, Report, SenderInfo};
use crate::leg::rtp_out::RtpOut;
use crate::leg::send_tally::SentStream;
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
pub(crate) struct RtpRtcp {
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
    /// The relay's stream.
    pub end: Arc<RelayEnd>,
    /// The send chain's stream.
    pub out: Arc<RtpOut>,
    pub reception: Arc<Reception>,
    pub reports: Arc<RemoteReports>,
    pub srtp: Arc<SrtpSession>,
}

impl RtpRtcp {
    /// Starts reporting; reports stop when the returned timer is dropped.
    pub fn start(
        sources: Sources,
        rtp_socket: UdpSocket,
        rtcp_socket: UdpSocket,
        destination: RtcpDestination,
        cname: String,
    ) -> (Arc<RtpRtcp>, Timer) {
        let rtcp = Arc::new(RtpRtcp {
            leg: sources,
            rtp_socket,
            rtcp_socket,
            destination,
            cname,
            closed: AtomicBool::new(false),
        });
        let weak: Weak<RtpRtcp> = Arc::downgrade(&rtcp);
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

    /// Sends the final report with a BYE, if the leg ever sent.
    pub fn bye(&self) {
        if !self.closed.swap(true, Ordering::SeqCst) && self.last_sender().is_some() {
            self.report(true);
        }
    }

    /// The stream we send now: the relay's or the send chain's, whichever
    /// has sent in the last two intervals (a sender keeps reporting as one
    /// that long, RFC 3550 section 6.3.8), the relay's first.
    fn sending(&self) -> Option<(u32, SentStream)> {
        let recent = |(_, s): &(u32, SentStream)| s.last_sent.elapsed() < 2 * INTERVAL;
        let relayed = self.leg.end.sent_stream().map(|s| (self.leg.end.ssrc(), s));
        relayed.filter(recent).or_else(|| self.leg.out.chain_stream().filter(recent))
    }

    /// The SSRC that sent last, `None` if the leg never sent.
    fn last_sender(&self) -> Option<u32> {
        let relayed = self.leg.end.sent_stream().map(|s| (self.leg.end.ssrc(), s));
        [relayed, self.leg.out.chain_stream()]
            .into_iter()
            .flatten()
            .max_by_key(|(_, s)| s.last_sent)
            .map(|(ssrc, _)| ssrc)
    }

    fn report(&self, bye: bool) {
        if !bye && self.closed.load(Ordering::SeqCst) {
            return;
        }
        let Some((address, mux)) = (self.destination)() else { return };
        let sending = self.sending();
        let block = self.leg.reception.report_block(self.leg.reports.lsr_dlsr());
        if sending.is_none() && block.is_none() && !bye {
            return; // nothing sent or received yet: nothing to report
        }
        // Both clocks read together: the NTP time and the RTP timestamp
        // extrapolated to it describe the same instant.
        let (now, wall) = (Instant::now(), SystemTime::now());
        let sender = sending.map(|(_, s)| SenderInfo {
            ntp: ntp_timestamp(wall),
            rtp_timestamp: s.timestamp_at(now),
            packets: s.packets as u32,
            octets: s.octets as u32,
        });
        let ssrc = sending.map(|(ssrc, _)| ssrc).or_else(|| self.last_sender()).unwrap_or_else(|| self.leg.end.ssrc());
        let report = Report { ssrc, sender, block, cname: &self.cname, bye };
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
