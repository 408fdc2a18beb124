//! How a leg's audio fares on the network: what we receive (packets, loss,
//! interarrival jitter, counted as RFC 3550 appendix A.3 and A.8 do), what
//! we send, what the peer reports about our stream in its RTCP receiver
//! report blocks (loss, jitter, and the round-trip time from LSR and DLSR,
//! RFC 3550 section 6.4.1), and an MOS estimate from them (`emodel.rs`).
//!
//! An RTP leg (and the lean WebRTC leg) counts on its socket thread, before
//! the relay and decoding: relayed (passthrough) packets are never decoded.
//! The webrtcbin leg reads webrtcbin's `get-stats` instead (`webrtc.rs`).

use crate::codec::Codec;
use crate::leg::emodel;
use crate::leg::rtcp_packets::{ntp_middle, ntp_timestamp, ReportBlock};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Instant, SystemTime};

/// A leg's quality figures at one moment. Times are in seconds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LegStats {
    /// The codec the leg receives and sends, once negotiated.
    pub codec: Option<Codec>,
    /// The stream we receive; `None` before its first packet.
    pub inbound: Option<InboundStats>,
    pub outbound: OutboundStats,
    /// What the peer's last receiver report said about our stream.
    pub remote_inbound: Option<RemoteInboundStats>,
    /// The jitter buffer's target delay (what decoding adds), in seconds.
    pub jitter_buffer_delay: f64,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct InboundStats {
    pub ssrc: u32,
    pub packets_received: u64,
    pub bytes_received: u64,
    /// Expected minus received (RFC 3550 A.3): negative with duplicates.
    pub packets_lost: i64,
    pub jitter: f64,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct OutboundStats {
    pub packets_sent: u64,
    pub bytes_sent: u64,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct RemoteInboundStats {
    pub ssrc: u32,
    /// The share of our packets lost since the peer's previous report (0-1).
    pub fraction_lost: f64,
    pub packets_lost: i64,
    pub jitter: f64,
    /// `None` while the peer has had no sender report from us (LSR 0).
    pub round_trip_time: Option<f64>,
}

impl LegStats {
    /// The figures of a leg that counts its own packets (the RTP and lean
    /// legs). The jitter buffer delay is the configured latency, as the
    /// webrtcbin leg reports it: a raised one delays only packets behind a
    /// gap, not the stream.
    pub(crate) fn counted(
        codec: Option<Codec>,
        reception: &Reception,
        sent: &Sent,
        remote_inbound: Option<RemoteInboundStats>,
        jitter_latency_ms: u32,
    ) -> LegStats {
        LegStats {
            codec,
            inbound: reception.stats(),
            outbound: sent.stats(),
            remote_inbound,
            jitter_buffer_delay: jitter_latency_ms as f64 / 1000.0,
        }
    }

    /// Received packets lost, as a percentage of those expected.
    pub fn loss_percent(&self) -> Option<f64> {
        let inbound = self.inbound.as_ref()?;
        let expected = inbound.packets_received as i64 + inbound.packets_lost;
        Some(if expected <= 0 { 0.0 } else { 100.0 * inbound.packets_lost.max(0) as f64 / expected as f64 })
    }

    /// The round-trip time, when the peer's reports give one.
    pub fn round_trip_time(&self) -> Option<f64> {
        self.remote_inbound.as_ref()?.round_trip_time
    }

    /// The MOS estimate of the audio we receive: the E-model with its loss,
    /// and a one-way delay of half the round trip (0 while unknown) plus
    /// the jitter buffer's delay and twice the jitter (what a buffer on
    /// the far side holds back).
    pub fn mos(&self) -> Option<f64> {
        let loss = self.loss_percent()?;
        let jitter = self.inbound.as_ref().map(|i| i.jitter).unwrap_or(0.0);
        let one_way = self.round_trip_time().unwrap_or(0.0) / 2.0 + self.jitter_buffer_delay + 2.0 * jitter;
        Some(emodel::mos(emodel::r_factor(self.codec, loss, one_way * 1000.0)))
    }
}

/// The receive side of an RTP leg, fed every RTP packet it gets.
#[derive(Default)]
pub(crate) struct Reception {
    state: Mutex<ReceptionState>,
}

#[derive(Default)]
struct ReceptionState {
    /// The audio payload type and its clock rate: jitter is measured on
    /// audio only (telephone-event packets repeat their timestamps).
    audio: Option<(u8, u32)>,
    stream: Option<Stream>,
}

/// One source's counts (a new SSRC starts them again).
struct Stream {
    ssrc: u32,
    base_seq: u32,
    /// Highest sequence number seen, extended with the wrap count.
    max_seq: u32,
    received: u64,
    bytes: u64,
    /// Relative transit time of the last audio packet, in clock units.
    transit: Option<i64>,
    /// RFC 3550 A.8's estimate, in clock units.
    jitter: f64,
    clock_rate: u32,
    /// Expected and received at our previous report block (RFC 3550 A.3).
    expected_prior: u64,
    received_prior: u64,
}

impl Reception {
    /// Sets the negotiated audio payload type and clock rate.
    pub fn set_audio(&self, payload_type: u8, clock_rate: u32) {
        self.state.lock().unwrap().audio = Some((payload_type, clock_rate));
    }

    /// The negotiated audio clock rate (0 before negotiation).
    pub fn clock_rate(&self) -> u32 {
        self.state.lock().unwrap().audio.map(|(_, rate)| rate).unwrap_or(0)
    }

    /// Counts one RTP packet (at least a full header) arriving now.
    pub fn received(&self, packet: &[u8]) {
        if packet.len() < 12 {
            return;
        }
        let payload_type = packet[1] & 0x7f;
        let seq = u16::from_be_bytes([packet[2], packet[3]]);
        let timestamp = u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]);
        let ssrc = u32::from_be_bytes([packet[8], packet[9], packet[10], packet[11]]);
        let mut state = self.state.lock().unwrap();
        let audio = state.audio;
        let stream = state.stream.get_or_insert_with(|| Stream::new(ssrc, seq));
        if stream.ssrc != ssrc {
            *stream = Stream::new(ssrc, seq);
        }
        stream.count(seq, packet.len());
        if let Some((_, clock_rate)) = audio.filter(|(pt, _)| *pt == payload_type) {
            stream.clock_rate = clock_rate;
            stream.arrived(timestamp, clock_rate);
        }
    }

    pub fn stats(&self) -> Option<InboundStats> {
        let state = self.state.lock().unwrap();
        let s = state.stream.as_ref()?;
        let expected = (s.max_seq - s.base_seq) as i64 + 1;
        Some(InboundStats {
            ssrc: s.ssrc,
            packets_received: s.received,
            bytes_received: s.bytes,
            packets_lost: expected - s.received as i64,
            jitter: if s.clock_rate == 0 { 0.0 } else { s.jitter / s.clock_rate as f64 },
        })
    }
}

impl Reception {
    /// A report block about the stream (RFC 3550 A.3), `lsr_dlsr` from the
    /// peer's last sender report; the loss fraction counts from the previous
    /// call.
    pub fn report_block(&self, (lsr, dlsr): (u32, u32)) -> Option<ReportBlock> {
        let mut state = self.state.lock().unwrap();
        let s = state.stream.as_mut()?;
        let expected = (s.max_seq - s.base_seq) as u64 + 1;
        let expected_interval = expected.saturating_sub(s.expected_prior);
        let lost_interval = expected_interval as i64 - s.received.saturating_sub(s.received_prior) as i64;
        (s.expected_prior, s.received_prior) = (expected, s.received);
        let fraction_lost = if expected_interval == 0 || lost_interval <= 0 {
            0
        } else {
            ((lost_interval << 8) / expected_interval as i64) as u8
        };
        Some(ReportBlock {
            ssrc: s.ssrc,
            fraction_lost,
            cumulative_lost: expected as i64 - s.received as i64,
            highest_seq: s.max_seq,
            jitter: s.jitter as u32,
            lsr,
            dlsr,
        })
    }
}

impl Stream {
    fn new(ssrc: u32, seq: u16) -> Stream {
        Stream {
            ssrc,
            base_seq: seq as u32,
            max_seq: seq as u32,
            received: 0,
            bytes: 0,
            transit: None,
            jitter: 0.0,
            clock_rate: 0,
            expected_prior: 0,
            received_prior: 0,
        }
    }

    fn count(&mut self, seq: u16, bytes: usize) {
        self.received += 1;
        self.bytes += bytes as u64;
        // The extended sequence number nearest the highest one so far: a
        // step forward (across a wrap too) raises it, a late packet does not.
        let delta = seq.wrapping_sub(self.max_seq as u16);
        if delta < 0x8000 {
            self.max_seq = self.max_seq.wrapping_add(delta as u32);
        }
    }

    fn arrived(&mut self, timestamp: u32, clock_rate: u32) {
        let arrival = (clock_epoch().elapsed().as_secs_f64() * clock_rate as f64) as i64;
        let transit = arrival - timestamp as i64;
        if let Some(previous) = self.transit {
            // The timestamp wraps every 2^32 units: take the short way round.
            let d = (transit - previous) as i32 as i64;
            self.jitter += (d.abs() as f64 - self.jitter) / 16.0;
        }
        self.transit = Some(transit);
    }
}

fn clock_epoch() -> Instant {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// What a leg sent: RTP packets and bytes, from its send chain and relay.
#[derive(Default)]
pub(crate) struct Sent {
    packets: AtomicU64,
    bytes: AtomicU64,
}

impl Sent {
    pub fn count(&self, bytes: usize) {
        self.packets.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    pub fn stats(&self) -> OutboundStats {
        OutboundStats {
            packets_sent: self.packets.load(Ordering::Relaxed),
            bytes_sent: self.bytes.load(Ordering::Relaxed),
        }
    }
}

/// The latest report block a peer sent about our stream, and its latest
/// sender report (for the LSR and DLSR of our reports about its stream).
#[derive(Default)]
pub(crate) struct RemoteReports {
    latest: Mutex<Option<RemoteInboundStats>>,
    sender_report: Mutex<Option<(u32, Instant)>>,
}

impl RemoteReports {
    /// Reads the report blocks of a (plain, compound) RTCP packet; `clock_rate`
    /// converts the reported jitter to seconds.
    pub fn received(&self, rtcp: &[u8], clock_rate: u32) {
        if let Some(block) = last_report_block(rtcp, clock_rate, ntp_middle(ntp_timestamp(SystemTime::now()))) {
            *self.latest.lock().unwrap() = Some(block);
        }
        // A sender report comes first in its compound packet; its NTP
        // timestamp's middle 32 bits are what our LSR echoes.
        if let [_, 200, _, _, _, _, _, _, ntp @ ..] = rtcp {
            if let Some(middle) = ntp.get(2..6) {
                let middle = u32::from_be_bytes([middle[0], middle[1], middle[2], middle[3]]);
                *self.sender_report.lock().unwrap() = Some((middle, Instant::now()));
            }
        }
    }

    /// LSR and DLSR for a report block sent now: (0, 0) before any sender report.
    pub fn lsr_dlsr(&self) -> (u32, u32) {
        match *self.sender_report.lock().unwrap() {
            Some((lsr, at)) => (lsr, (at.elapsed().as_secs_f64() * 65536.0) as u32),
            None => (0, 0),
        }
    }

    pub fn stats(&self) -> Option<RemoteInboundStats> {
        self.latest.lock().unwrap().clone()
    }
}

/// The last report block of the SRs and RRs in a compound packet, read at
/// `now` (NTP's middle 32 bits, for the round trip).
fn last_report_block(mut rtcp: &[u8], clock_rate: u32, now: u32) -> Option<RemoteInboundStats> {
    let mut found = None;
    while rtcp.len() >= 4 && rtcp[0] >> 6 == 2 {
        let count = (rtcp[0] & 0x1f) as usize;
        let length = (u16::from_be_bytes([rtcp[2], rtcp[3]]) as usize + 1) * 4;
        let packet = rtcp.get(..length)?;
        // Report blocks follow the sender's SSRC (RR) or its sender info (SR).
        let blocks = match packet[1] {
            200 => packet.get(28..),
            201 => packet.get(8..),
            _ => None,
        };
        if let Some(blocks) = blocks {
            for block in blocks.chunks_exact(24).take(count) {
                found = Some(report_block(block, clock_rate, now));
            }
        }
        rtcp = &rtcp[length..];
    }
    found
}

fn report_block(b: &[u8], clock_rate: u32, now: u32) -> RemoteInboundStats {
    let word = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    // Cumulative loss is a signed 24-bit number.
    let lost = ((word(4) & 0x00ff_ffff) << 8) as i32 >> 8;
    let (lsr, dlsr) = (word(16), word(20));
    RemoteInboundStats {
        ssrc: word(0),
        fraction_lost: b[4] as f64 / 256.0,
        packets_lost: lost as i64,
        jitter: if clock_rate == 0 { 0.0 } else { word(12) as f64 / clock_rate as f64 },
        // In units of 1/65536 s; a reply before our report was sent (or a
        // clock step) gives a "negative" round trip, which is no figure.
        round_trip_time: (lsr != 0)
            .then(|| now.wrapping_sub(lsr).wrapping_sub(dlsr))
            .filter(|rtt| *rtt < 0x8000_0000)
            .map(|rtt| rtt as f64 / 65536.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rtp(pt: u8, seq: u16, ts: u32, ssrc: u32) -> Vec<u8> {
        let mut p = vec![0x80, pt, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff];
        p[2..4].copy_from_slice(&seq.to_be_bytes());
        p[4..8].copy_from_slice(&ts.to_be_bytes());
        p[8..12].copy_from_slice(&ssrc.to_be_bytes());
        p
    }

    #[test]
    fn loss_counts_gaps_across_a_sequence_wrap_and_ignores_late_packets() {
        let r = Reception::default();
        r.set_audio(0, 8000);
        // 65530..=65535, 0..=13: 20 expected; 3 and 7 lost, 65533 late.
        let seqs: Vec<u16> = (65530..=65535).chain(0..=13).filter(|s| ![3, 7, 65533].contains(s)).collect();
        for s in &seqs {
            r.received(&rtp(0, *s, *s as u32 * 160, 9));
        }
        r.received(&rtp(0, 65533, 65533 * 160, 9));
        let stats = r.stats().unwrap();
        assert_eq!((stats.ssrc, stats.packets_received, stats.packets_lost), (9, 18, 2));
        let leg = LegStats { inbound: Some(stats), ..Default::default() };
        assert!((leg.loss_percent().unwrap() - 10.0).abs() < 1e-9);
    }

    #[test]
    fn a_new_source_starts_its_counts_again() {
        let r = Reception::default();
        r.received(&rtp(0, 100, 0, 1));
        r.received(&rtp(0, 105, 0, 1));
        r.received(&rtp(0, 7, 0, 2));
        let stats = r.stats().unwrap();
        assert_eq!((stats.ssrc, stats.packets_received, stats.packets_lost), (2, 1, 0));
    }

    #[test]
    fn jitter_is_zero_for_evenly_paced_packets_and_grows_with_bunched_ones() {
        let r = Reception::default();
        r.set_audio(8, 8000);
        // Timestamps far ahead of arrival: only the differences count.
        for i in 0..5u16 {
            r.received(&rtp(8, i, 0, 3));
        }
        let even = r.stats().unwrap().jitter;
        assert!(even < 0.001, "same timestamp, same arrival: {even}");
        // Eight packets at once whose timestamps say 20 ms apart: each
        // transit differs by 160 units; J climbs toward 20 ms.
        let mut bunched = Stream::new(4, 0);
        for i in 0..8u32 {
            bunched.arrived(i * 160, 8000);
        }
        let j = bunched.jitter / 8000.0;
        assert!(j > 0.005 && j < 0.02, "{j}");
    }

    #[test]
    fn receiver_reports_give_loss_jitter_and_round_trip() {
        // RR from SSRC 0x11 with one block about SSRC 0x22: fraction 64/256,
        // 12 lost, jitter 80 units, LSR 0x10000 (1 s), DLSR 0x8000 (0.5 s).
        let mut rr = vec![0x81, 201, 0, 7, 0, 0, 0, 0x11];
        rr.extend_from_slice(&[0, 0, 0, 0x22, 64, 0, 0, 12, 0, 0, 0, 100, 0, 0, 0, 80, 0, 1, 0, 0, 0, 0, 0x80, 0]);
        // SDES after it in the compound packet is skipped.
        rr.extend_from_slice(&[0x81, 202, 0, 1, 0, 0, 0, 0x11]);
        let now = 0x0002_0000; // 2 s: the round trip is 2 - 1 - 0.5.
        let block = last_report_block(&rr, 8000, now).unwrap();
        assert_eq!((block.ssrc, block.packets_lost), (0x22, 12));
        assert_eq!(block.fraction_lost, 0.25);
        assert_eq!(block.jitter, 0.01);
        assert_eq!(block.round_trip_time, Some(0.5));
        // Without an LSR there is no round trip.
        rr[24..28].copy_from_slice(&[0, 0, 0, 0]);
        assert_eq!(last_report_block(&rr, 8000, now).unwrap().round_trip_time, None);
        // A truncated packet yields nothing rather than garbage.
        assert!(last_report_block(&rr[..20], 8000, now).is_none());
    }

    #[test]
    fn mos_drops_with_loss() {
        let stats = |lost: i64| LegStats {
            codec: Some(Codec::Pcmu),
            inbound: Some(InboundStats { packets_received: 950, packets_lost: lost, ..Default::default() }),
            jitter_buffer_delay: 0.04,
            ..Default::default()
        };
        let (clean, lossy) = (stats(0).mos().unwrap(), stats(50).mos().unwrap());
        assert!(clean > 4.35 && lossy < 4.0, "{clean} {lossy}");
    }
}
