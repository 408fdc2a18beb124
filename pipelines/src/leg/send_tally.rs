//! What a stream we send has sent, as its sender reports describe it
//! (RFC 3550 section 6.4.1): packets, payload octets, and the mapping of
//! its RTP timestamps to wall-clock time, taken from the packets as they
//! leave. Kept for the relay's stream (`relay.rs`) and an RTP leg's send
//! chain (`rtp_out.rs`); reported by `rtp_rtcp.rs`.

use std::time::Instant;

const RTP_HEADER: usize = 12;

/// A stream's counts and timing, as a sender report describes them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SentStream {
    pub packets: u64,
    /// Payload octets.
    pub octets: u64,
    anchor: Anchor,
    /// When the newest packet was sent.
    pub last_sent: Instant,
    clock_rate: u32,
}

impl SentStream {
    /// The RTP timestamp of instant `at` (RFC 3550 section 6.4.1).
    pub fn timestamp_at(&self, at: Instant) -> u32 {
        self.anchor.timestamp_at(at, self.clock_rate)
    }
}

/// The packet whose timestamp and send time map RTP time to wall-clock
/// time in sender reports: the one sent least late for its timestamp
/// lately. Extrapolating from the newest packet instead would carry its
/// delay into the report (a burst after a stall upstream put the mapping
/// 200 ms off in a test run).
#[derive(Debug, Clone, Copy)]
struct Anchor {
    timestamp: u32,
    at: Instant,
}

/// How long an anchor is trusted: the two clocks drift, and a newer one
/// must take over even if it was late.
const ANCHOR_AGE: std::time::Duration = std::time::Duration::from_secs(10);

/// Packets later than the anchor predicts by more than this...
const LATE_MS: u32 = 10;
/// ...for this long, without one on time between them, mean the stream's
/// timing has moved (the send chain's encoder now times another source's
/// audio, a sender restarted its timestamps), not a burst: a burst after a
/// stall leaves within a few milliseconds, and the packets after it are on
/// time again. The anchor then follows.
const SHIFT: std::time::Duration = std::time::Duration::from_millis(500);

impl Anchor {
    fn timestamp_at(&self, at: Instant, clock_rate: u32) -> u32 {
        let elapsed = at.saturating_duration_since(self.at).as_secs_f64();
        self.timestamp.wrapping_add((elapsed * clock_rate as f64) as u32)
    }

    /// Whether a packet with `timestamp` sent at `at` takes over: it left
    /// earlier for its timestamp than this anchor predicts, or this one is old.
    fn replaced_by(&self, timestamp: u32, at: Instant, clock_rate: u32) -> bool {
        let early = timestamp.wrapping_sub(self.timestamp_at(at, clock_rate)) as i32 > 0;
        early || at.saturating_duration_since(self.at) > ANCHOR_AGE
    }

    /// Whether a packet with `timestamp` sent at `at` is later than this
    /// anchor predicts by more than [`LATE_MS`].
    fn late(&self, timestamp: u32, at: Instant, clock_rate: u32) -> bool {
        let behind = self.timestamp_at(at, clock_rate).wrapping_sub(timestamp) as i32;
        behind as i64 * 1000 > LATE_MS as i64 * clock_rate as i64
    }
}

/// What a stream we send has sent, for its sender reports.
#[derive(Default)]
pub(crate) struct SendTally {
    /// Packets and payload octets.
    packets: u64,
    octets: u64,
    anchor: Option<Anchor>,
    /// Since when every packet has been late for the anchor ([`SHIFT`]).
    late_since: Option<Instant>,
    last_sent: Option<Instant>,
    /// The clock its timestamps count.
    clock_rate: u32,
}

impl SendTally {
    /// Counts `packet`, sent now with RTP timestamp `timestamp`; only the
    /// stream's newest packet (not a late or reordered one) moves its timing.
    pub fn count(&mut self, payload_octets: usize, timestamp: u32, newest: bool, clock_rate: u32) {
        if newest {
            self.count_newest(timestamp, Instant::now(), clock_rate);
        }
        self.packets += 1;
        self.octets += payload_octets as u64;
        self.clock_rate = clock_rate;
    }

    fn count_newest(&mut self, timestamp: u32, now: Instant, clock_rate: u32) {
        self.last_sent = Some(now);
        let late = self.anchor.is_some_and(|a| a.late(timestamp, now, clock_rate));
        self.late_since = if late { Some(self.late_since.unwrap_or(now)) } else { None };
        let shifted = self.late_since.is_some_and(|since| now.saturating_duration_since(since) >= SHIFT);
        if shifted || self.anchor.is_none_or(|a| a.replaced_by(timestamp, now, clock_rate)) {
            self.anchor = Some(Anchor { timestamp, at: now });
            self.late_since = None;
        }
    }

    /// When the newest packet was sent.
    pub fn last_sent(&self) -> Option<Instant> {
        self.last_sent
    }

    /// Forgets the timing (a new source with timestamps of its own); the
    /// counts go on.
    pub fn restart_timing(&mut self) {
        self.anchor = None;
        self.late_since = None;
    }

    /// `None` before the first packet.
    pub fn stream(&self) -> Option<SentStream> {
        Some(SentStream {
            packets: self.packets,
            octets: self.octets,
            anchor: self.anchor?,
            last_sent: self.last_sent?,
            clock_rate: self.clock_rate,
        })
    }
}

/// The payload octets of an RTP packet: less its header (CSRCs and
/// extension included) and padding.
pub(crate) fn payload_len(packet: &[u8]) -> usize {
    let mut header = RTP_HEADER + 4 * (packet[0] & 0x0f) as usize;
    if packet[0] & 0x10 != 0 {
        if let Some(words) = packet.get(header + 2..header + 4) {
            header += 4 + 4 * u16::from_be_bytes([words[0], words[1]]) as usize;
        }
    }
    let padding = if packet[0] & 0x20 != 0 { packet.last().copied().unwrap_or(0) as usize } else { 0 };
    packet.len().saturating_sub(header + padding)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sender_report_timing_follows_the_packets_sent_least_late() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + std::time::Duration::from_millis(n);
        let anchor = Anchor { timestamp: 1000, at: t0 };
        assert!(!anchor.replaced_by(1160, ms(20), 8000), "on time: the anchor stays");
        assert!(!anchor.replaced_by(1320, ms(240), 8000), "late after a stall: the anchor stays");
        assert!(anchor.replaced_by(1480, ms(50), 8000), "earlier for its timestamp: it takes over");
        assert!(anchor.replaced_by(1000 + 8000 * 11, ms(11_500), 8000), "an old anchor gives way");
        assert_eq!(anchor.timestamp_at(ms(5000), 8000), 41000);
    }

    #[test]
    fn a_lasting_shift_moves_the_anchor_and_a_burst_does_not() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + std::time::Duration::from_millis(n);
        let mut tally = SendTally::default();
        // On time, then a 200 ms stall and its burst, then on time again.
        let mut sends: Vec<(u32, u64)> = (0..10).map(|i| (i * 160, i as u64 * 20)).collect();
        sends.extend((10..20).map(|i| (i * 160, 400 + (i as u64 - 10))));
        sends.extend((20..30).map(|i| (i * 160, i as u64 * 20)));
        for (ts, at) in sends {
            tally.count_newest(ts, ms(at), 8000);
        }
        assert_eq!(tally.anchor.unwrap().timestamp, 0, "the burst leaves the first anchor");
        // From here on every packet leaves 30 ms later for its timestamp.
        for i in 30..70u32 {
            tally.count_newest(i * 160, ms(i as u64 * 20 + 30), 8000);
        }
        let anchor = tally.anchor.unwrap();
        assert!(anchor.timestamp > 30 * 160, "the anchor follows a lasting shift: {anchor:?}");
        assert_eq!(anchor.timestamp_at(ms(69 * 20 + 30), 8000), 69 * 160);
    }
}
