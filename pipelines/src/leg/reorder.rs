//! A jitter buffer with no thread of its own (the RTP and lean WebRTC legs',
//! in place of rtpbin's): packets are put back in sequence on the thread that
//! received them, and a missing packet is waited for until a timer that
//! calls [`Reorder::expire`] finds the wait over.
//!
//! It does what rtpjitterbuffer does in the other legs (`jitter.rs`): a
//! packet that is next in sequence goes on at once, the first one included;
//! one behind a gap is held until the gap is filled or the latency has
//! passed since the first held packet arrived, and then the held packets go
//! on and the missing ones are given up; a packet that comes after its
//! place was given up is dropped. The latency adapts to the lateness seen,
//! as in `jitter.rs`, and nothing held is dropped for it.
//!
//! Each packet leaves stamped with when it would have arrived on time (its
//! media time on the stream's best-case transit, [`Lateness`]), not with
//! its arrival: a burst is decoded as the audio it carries, and a lost
//! packet leaves a gap in the timestamps that the decoder conceals.

use crate::leg::jitter::{raised_latency, rtp_timestamp, Lateness};
use std::collections::BTreeMap;

/// A jump in sequence numbers beyond this, either way, is a new stream
/// (a sender that restarted), not loss or reordering.
const MAX_JUMP: u64 = 1000;
/// The most packets held behind a gap (10 s of 20 ms packets); beyond it
/// the gap is given up at once.
const MAX_HELD: usize = 500;

/// A packet going on, in sequence, with its timestamp (ns on the arrival
/// clock).
pub(crate) struct Released {
    pub packet: Vec<u8>,
    pub pts_ns: i64,
}

pub(crate) struct Reorder {
    latency_ms: u32,
    stream: Option<Stream>,
}

/// One sender's stream (SSRC).
struct Stream {
    ssrc: u32,
    /// Extended sequence number of the packet to go on next.
    next: u64,
    /// Packets behind a gap, by extended sequence number.
    held: BTreeMap<u64, Held>,
    lateness: Lateness,
}

struct Held {
    packet: Vec<u8>,
    arrival_ns: i64,
    pts_ns: i64,
}

impl Reorder {
    pub fn new(latency_ms: u32) -> Reorder {
        Reorder { latency_ms, stream: None }
    }

    /// Takes a received RTP packet, arrived at `arrival_ns`; `rate` is the
    /// clock rate of its payload if its lateness is to be measured (the
    /// audio's, not telephone-event's). What may go on now is appended to
    /// `out`, in sequence.
    pub fn push(&mut self, packet: &[u8], arrival_ns: i64, rate: Option<u32>, out: &mut Vec<Released>) {
        let (Some(seq), Some(ssrc), Some(ts)) = (sequence(packet), ssrc(packet), rtp_timestamp(packet)) else {
            return;
        };
        if self.stream.as_ref().is_none_or(|s| s.ssrc != ssrc) {
            self.restart(ssrc, seq, out);
        }
        let stream = self.stream.as_mut().expect("just started");
        let mut ext = stream.extend(seq);
        if ext.abs_diff(stream.next) > MAX_JUMP {
            self.restart(ssrc, seq, out);
            ext = self.stream.as_ref().expect("just started").next;
        }
        let stream = self.stream.as_mut().expect("started");
        let pts_ns = match rate {
            Some(rate) => {
                let observed = stream.lateness.observe(arrival_ns, ts, rate);
                if let Some(raised) = raised_latency(self.latency_ms, observed.late_ms) {
                    self.latency_ms = raised;
                }
                observed.on_time_ns
            }
            None => arrival_ns,
        };
        if ext < stream.next {
            return; // its place was given up, or a duplicate
        }
        stream.held.entry(ext).or_insert(Held { packet: packet.to_vec(), arrival_ns, pts_ns });
        if stream.held.len() > MAX_HELD {
            stream.give_up_gap();
        }
        stream.release(out);
    }

    /// Whether packets are held behind a gap (something for [`Reorder::expire`] to do).
    pub fn holding(&self) -> bool {
        self.stream.as_ref().is_some_and(|s| !s.held.is_empty())
    }

    /// Gives up the gaps waited for longer than the latency at `now_ns`,
    /// appending what goes on then to `out`.
    pub fn expire(&mut self, now_ns: i64, out: &mut Vec<Released>) {
        let latency_ns = self.latency_ms as i64 * 1_000_000;
        let Some(stream) = self.stream.as_mut() else { return };
        while stream.held.first_key_value().is_some_and(|(_, first)| now_ns - first.arrival_ns >= latency_ns) {
            stream.give_up_gap();
            stream.release(out);
        }
    }

    /// Starts a new stream at `seq`, letting everything held go on first.
    fn restart(&mut self, ssrc: u32, seq: u16, out: &mut Vec<Released>) {
        if let Some(mut old) = self.stream.take() {
            while !old.held.is_empty() {
                old.give_up_gap();
                old.release(out);
            }
        }
        // Extended numbers start well above 0, so packets reordered before
        // the first one still have one.
        let next = (1 << 20) + seq as u64;
        self.stream = Some(Stream { ssrc, next, held: BTreeMap::new(), lateness: Lateness::default() });
    }
}

impl Stream {
    /// The extended sequence number of `seq`: the one nearest `next`.
    fn extend(&self, seq: u16) -> u64 {
        let delta = seq.wrapping_sub(self.next as u16) as i16 as i64;
        self.next.wrapping_add_signed(delta)
    }

    /// Gives up the packets missing before the first held one.
    fn give_up_gap(&mut self) {
        if let Some((&first, _)) = self.held.first_key_value() {
            self.next = first;
        }
    }

    /// Lets the held packets that are next in sequence go on.
    fn release(&mut self, out: &mut Vec<Released>) {
        while let Some(held) = self.held.remove(&self.next) {
            out.push(Released { packet: held.packet, pts_ns: held.pts_ns });
            self.next += 1;
        }
    }
}

fn sequence(packet: &[u8]) -> Option<u16> {
    Some(u16::from_be_bytes(packet.get(2..4)?.try_into().ok()?))
}

fn ssrc(packet: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(packet.get(8..12)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: i64 = 1_000_000;

    /// A 20 ms PCMU packet: sequence `seq`, timestamp from it.
    fn packet(seq: u16, ssrc: u32) -> Vec<u8> {
        let mut p = vec![0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff];
        p[2..4].copy_from_slice(&seq.to_be_bytes());
        p[4..8].copy_from_slice(&(160 * seq as u32).to_be_bytes());
        p[8..12].copy_from_slice(&ssrc.to_be_bytes());
        p
    }

    fn seqs(out: &[Released]) -> Vec<u16> {
        out.iter().map(|r| sequence(&r.packet).unwrap()).collect()
    }

    #[test]
    fn packets_in_sequence_go_on_at_once() {
        let mut r = Reorder::new(40);
        let mut out = Vec::new();
        for seq in 65530..=65535u16 {
            r.push(&packet(seq, 7), seq as i64 * 20 * MS, Some(8000), &mut out);
        }
        r.push(&packet(0, 7), 65536 * 20 * MS, Some(8000), &mut out);
        assert_eq!(seqs(&out), [65530, 65531, 65532, 65533, 65534, 65535, 0], "across the wrap");
    }

    #[test]
    fn a_gap_is_waited_for_then_given_up_and_a_late_packet_dropped() {
        let mut r = Reorder::new(60);
        let mut out = Vec::new();
        r.push(&packet(1, 7), 20 * MS, Some(8000), &mut out);
        // 2 is reordered behind 3, 4 is lost.
        r.push(&packet(3, 7), 60 * MS, Some(8000), &mut out);
        assert_eq!(seqs(&out), [1]);
        r.push(&packet(2, 7), 61 * MS, Some(8000), &mut out);
        assert_eq!(seqs(&out), [1, 2, 3]);
        r.push(&packet(5, 7), 100 * MS, Some(8000), &mut out);
        r.push(&packet(6, 7), 120 * MS, Some(8000), &mut out);
        r.expire(159 * MS, &mut out);
        assert_eq!(seqs(&out), [1, 2, 3], "still waiting for 4");
        r.expire(160 * MS, &mut out);
        assert_eq!(seqs(&out), [1, 2, 3, 5, 6], "4 given up after 60 ms");
        r.push(&packet(4, 7), 170 * MS, Some(8000), &mut out);
        assert_eq!(seqs(&out), [1, 2, 3, 5, 6], "too late");
        // Stamped with when they were due, the reordered 2 included.
        let due: Vec<i64> = out.iter().map(|r| r.pts_ns / MS).collect();
        assert_eq!(due, [20, 40, 60, 100, 120]);
    }

    #[test]
    fn a_held_burst_raises_the_latency_and_is_delivered_whole() {
        let mut r = Reorder::new(40);
        let mut out = Vec::new();
        for seq in 0..5u16 {
            r.push(&packet(seq, 7), seq as i64 * 20 * MS, Some(8000), &mut out);
        }
        // 5-14 held by the sender until 14 was due, 5 lost on the way.
        for seq in 6..15u16 {
            r.push(&packet(seq, 7), 14 * 20 * MS, Some(8000), &mut out);
        }
        assert!(r.latency_ms >= 180, "raised to {}", r.latency_ms);
        r.expire(14 * 20 * MS + 100 * MS, &mut out);
        assert_eq!(out.len(), 5, "the gap is waited for at the raised latency");
        r.expire(14 * 20 * MS + r.latency_ms as i64 * MS, &mut out);
        assert_eq!(seqs(&out), [0, 1, 2, 3, 4, 6, 7, 8, 9, 10, 11, 12, 13, 14]);
        assert_eq!(out[5].pts_ns, 6 * 20 * MS, "stamped with when it was due, not its arrival");
    }

    #[test]
    fn a_new_sender_or_a_jump_starts_over_without_losing_what_is_held() {
        let mut r = Reorder::new(40);
        let mut out = Vec::new();
        r.push(&packet(10, 7), 0, Some(8000), &mut out);
        r.push(&packet(12, 7), 40 * MS, Some(8000), &mut out);
        r.push(&packet(500, 8), 60 * MS, Some(8000), &mut out);
        assert_eq!(seqs(&out), [10, 12, 500], "the held 12 goes on before the new stream");
        r.push(&packet(30_000, 8), 80 * MS, Some(8000), &mut out);
        r.push(&packet(30_001, 8), 100 * MS, Some(8000), &mut out);
        assert_eq!(seqs(&out), [10, 12, 500, 30_000, 30_001]);
        r.push(&[0x80, 0], 120 * MS, None, &mut out);
        assert_eq!(out.len(), 5, "a runt is ignored");
    }
}
