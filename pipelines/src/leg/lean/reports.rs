//! What a lean leg's peer says about our stream in its RTCP receiver
//! reports (loss, jitter, round trip): the `remote_inbound` figures the
//! other legs give (webrtcbin's `remote-inbound-rtp`, the RTP leg's own
//! reading of report blocks), for `session.getStats`, the call record and
//! its MOS.
//!
//! str0m decrypts and reads the reports itself; what it keeps of them comes
//! out once a second as the outgoing stream's statistics (`setup.rs` asks
//! for them), and the latest is kept here.

use crate::leg::quality::RemoteInboundStats;
use std::sync::Mutex;
use str0m::stats::MediaEgressStats;

/// str0m's statistics of our outgoing stream, and its SSRC.
pub(super) struct OutgoingStats {
    pub ssrc: u32,
    pub stats: MediaEgressStats,
}

#[derive(Default)]
pub(super) struct PeerReports {
    latest: Mutex<Option<RemoteInboundStats>>,
}

impl PeerReports {
    /// Takes the figures of `outgoing` (nothing until the peer's first
    /// report); `clock_rate` turns the reported jitter into seconds.
    pub fn update(&self, outgoing: &OutgoingStats, clock_rate: u32) {
        let stats = &outgoing.stats;
        let Some(remote) = &stats.remote else { return };
        let mut latest = self.latest.lock().unwrap();
        // str0m gives the share lost only when reports came since its
        // previous statistics; in between, the last one stands.
        let fraction_lost =
            stats.loss.map(f64::from).or_else(|| latest.as_ref().map(|l| l.fraction_lost)).unwrap_or(0.0);
        // The cumulative loss is a signed 24-bit number (negative with duplicates).
        let packets_lost = (((remote.packets_lost as u32) << 8) as i32 >> 8) as i64;
        *latest = Some(RemoteInboundStats {
            ssrc: outgoing.ssrc,
            fraction_lost,
            packets_lost,
            jitter: if clock_rate == 0 { 0.0 } else { remote.jitter as f64 / clock_rate as f64 },
            round_trip_time: stats.rtt.map(|rtt| rtt.as_secs_f64()).filter(|rtt| *rtt > 0.0),
        });
    }

    pub fn stats(&self) -> Option<RemoteInboundStats> {
        self.latest.lock().unwrap().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};
    use str0m::stats::RemoteIngressStats;

    fn outgoing(loss: Option<f32>, report: Option<(u32, u64)>) -> OutgoingStats {
        OutgoingStats {
            ssrc: 7,
            stats: MediaEgressStats {
                mid: "0".into(),
                rid: None,
                bytes: 17200,
                packets: 100,
                firs: 0,
                plis: 0,
                nacks: 0,
                rtt: Some(Duration::from_millis(40)),
                loss,
                timestamp: Instant::now(),
                remote: report.map(|(jitter, packets_lost)| RemoteIngressStats {
                    jitter,
                    maximum_sequence_number: 100.into(),
                    packets_lost,
                }),
            },
        }
    }

    #[test]
    fn the_peers_reports_give_loss_jitter_and_round_trip() {
        let reports = PeerReports::default();
        reports.update(&outgoing(None, None), 8000);
        assert_eq!(reports.stats(), None, "no report from the peer yet");
        reports.update(&outgoing(Some(0.25), Some((16, 3))), 8000);
        let expected = RemoteInboundStats {
            ssrc: 7,
            fraction_lost: 0.25,
            packets_lost: 3,
            jitter: 0.002,
            round_trip_time: Some(0.04),
        };
        assert_eq!(reports.stats(), Some(expected.clone()));
        reports.update(&outgoing(None, Some((16, 0xff_ffff))), 8000);
        let kept = RemoteInboundStats { packets_lost: -1, ..expected };
        assert_eq!(reports.stats(), Some(kept), "no new share lost: the last stands; a negative count stays negative");
    }
}
