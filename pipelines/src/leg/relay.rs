//! Packet relay: passthrough between legs without depayloading, payloading
//! or jitter buffering.
//!
//! When a link joins two legs that negotiated the same codec and packet
//! time, depayloading a frame only to payload it again buys nothing: the
//! packet can leave as it came. The receiving leg hands each audio packet,
//! as it arrives, to the other leg's [`RelayEnd`], which rewrites the header
//! (payload type, SSRC, sequence number, timestamp) and sends it on: a plain
//! RTP leg from its own socket (so symmetric RTP still holds), a WebRTC leg
//! into its send chain's RTP mux, ahead of webrtcbin (which encrypts). The
//! jitter buffer, depayloader, payloader and every thread hop between them
//! are skipped; that is most of a passthrough call's cost
//! (docs/performance.md).
//!
//! Nothing is held back or dropped for lateness: a burst goes on as a
//! burst, a lost packet stays a gap in the sequence numbers, and the
//! timestamps are the sender's, shifted. De-jittering belongs to whoever
//! decodes (the phone or browser at the far end), which can only play what
//! a relay in the middle did not throw away. rtpengine and Janus relay the
//! same way.
//!
//! The header is rewritten rather than passed through because the far side
//! must see one stream from us: the leg's own SSRC, sequence numbers that
//! continue when the source changes (a re-INVITE to another phone, a new
//! SSRC after the peer's restart), and timestamps that advance with the
//! wall clock across such a change. With an echo, the caller would
//! otherwise receive its own SSRC back, which RFC 3550 treats as a loop.

use crate::codec::{Codec, CodecChoice};
use crate::leg::gate::SendGate;
use crate::leg::rtp_out::RtpOut;
use crate::leg::send_tally::{payload_len, SendTally, SentStream};
use std::sync::{Arc, Mutex};

/// What a leg negotiated, as far as relaying is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RelayFormat {
    pub codec: Codec,
    pub ptime: u32,
    pub payload_type: u8,
}

impl RelayFormat {
    pub fn of(choice: &CodecChoice) -> RelayFormat {
        RelayFormat { codec: choice.codec, ptime: choice.ptime, payload_type: choice.payload_type }
    }

    /// Packets of `self` may leave as packets of `other` unchanged but for
    /// the header: same codec, same packet time.
    pub fn relays_as(&self, other: &RelayFormat) -> bool {
        self.codec == other.codec && self.ptime == other.ptime
    }
}

/// Where a leg puts relayed packets once their header is rewritten.
pub(crate) enum RelayOutput {
    /// A plain RTP leg's socket (`rtp_out.rs`): sealed with the leg's SRTP
    /// keys, sent to where the leg sends RTP now, counted.
    Socket(Arc<RtpOut>),
    /// A WebRTC leg's send chain, at RTP level; false until it has one.
    Chain(Box<dyn Fn(Vec<u8>) -> bool + Send + Sync>),
}

/// The sending side of a leg, as the relay uses it.
pub(crate) struct RelayEnd {
    output: RelayOutput,
    /// Closed while the transport is down or the negotiated direction says
    /// we must not send.
    gate: SendGate,
    header: Mutex<HeaderRewrite>,
}

impl RelayEnd {
    pub fn new(output: RelayOutput, gate: SendGate) -> RelayEnd {
        RelayEnd { output, gate, header: Mutex::new(HeaderRewrite::new()) }
    }

    /// The SSRC relayed packets leave with.
    pub fn ssrc(&self) -> u32 {
        self.header.lock().unwrap().ssrc
    }

    /// What has been relayed out so far, for a sender report; `None`
    /// before the first packet.
    pub fn sent_stream(&self) -> Option<SentStream> {
        self.header.lock().unwrap().tally.stream()
    }

    /// Sends `packet` (RTP received in `from`'s format) as this leg's own
    /// stream in its format `to`. Returns false when it was not sent: the
    /// formats differ, or this leg must not send now.
    pub fn send(&self, packet: &[u8], from: &RelayFormat, to: &RelayFormat) -> bool {
        if !from.relays_as(to) || !self.gate.open() || packet.len() < RTP_HEADER {
            return false;
        }
        let mut out = packet.to_vec();
        let rewrite = |out: &mut [u8]| {
            self.header.lock().unwrap().rewrite(out, to.payload_type, to.codec.clock_rate());
        };
        match &self.output {
            RelayOutput::Socket(socket) => socket.send(out, rewrite),
            RelayOutput::Chain(push) => {
                rewrite(&mut out);
                push(out)
            }
        }
    }
}

const RTP_HEADER: usize = 12;

/// Maps incoming sequence numbers and timestamps onto our outgoing stream.
pub(crate) struct HeaderRewrite {
    ssrc: u32,
    /// SSRC of the stream being relayed; a new one re-bases the offsets.
    source: Option<u32>,
    seq_offset: u16,
    ts_offset: u32,
    last_seq: u16,
    last_ts: u32,
    tally: SendTally,
}

impl HeaderRewrite {
    pub fn new() -> HeaderRewrite {
        let seed = crate::runtime::random_u32();
        HeaderRewrite {
            ssrc: seed,
            source: None,
            seq_offset: 0,
            ts_offset: 0,
            last_seq: seed.rotate_left(16) as u16,
            last_ts: seed.rotate_left(8),
            tally: SendTally::default(),
        }
    }

    pub fn rewrite(&mut self, packet: &mut [u8], payload_type: u8, clock_rate: u32) {
        let seq = u16::from_be_bytes([packet[2], packet[3]]);
        let ts = u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]);
        let ssrc = u32::from_be_bytes([packet[8], packet[9], packet[10], packet[11]]);
        let mut marker = packet[1] & 0x80;
        if self.source != Some(ssrc) {
            // A new source: carry on from our last packet, the timestamp
            // advanced by the time since (a receiver plays the gap as such).
            let elapsed = self.tally.last_sent().map(|t| t.elapsed().as_secs_f64()).unwrap_or(0.0);
            let next_ts = self.last_ts.wrapping_add((elapsed * clock_rate as f64) as u32);
            self.seq_offset = self.last_seq.wrapping_add(1).wrapping_sub(seq);
            self.ts_offset = next_ts.wrapping_sub(ts);
            self.source = Some(ssrc);
            self.tally.restart_timing();
            marker = 0x80;
        }
        let out_seq = seq.wrapping_add(self.seq_offset);
        let out_ts = ts.wrapping_add(self.ts_offset);
        // Late and reordered packets keep their place but do not move the
        // stream's high-water mark back.
        let newest = out_seq.wrapping_sub(self.last_seq) < 0x8000 || self.tally.last_sent().is_none();
        if newest {
            self.last_seq = out_seq;
            self.last_ts = out_ts;
        }
        self.tally.count(payload_len(packet), out_ts, newest, clock_rate);
        packet[1] = marker | (payload_type & 0x7f);
        packet[2..4].copy_from_slice(&out_seq.to_be_bytes());
        packet[4..8].copy_from_slice(&out_ts.to_be_bytes());
        packet[8..12].copy_from_slice(&self.ssrc.to_be_bytes());
    }
}

/// The payload type of an RTP packet.
pub(crate) fn payload_type(packet: &[u8]) -> Option<u8> {
    packet.get(1).map(|b| b & 0x7f)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(pt: u8, seq: u16, ts: u32, ssrc: u32) -> Vec<u8> {
        let mut p = vec![0x80, pt, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xaa, 0xbb];
        p[2..4].copy_from_slice(&seq.to_be_bytes());
        p[4..8].copy_from_slice(&ts.to_be_bytes());
        p[8..12].copy_from_slice(&ssrc.to_be_bytes());
        p
    }

    fn fields(p: &[u8]) -> (bool, u8, u16, u32, u32) {
        (
            p[1] & 0x80 != 0,
            p[1] & 0x7f,
            u16::from_be_bytes([p[2], p[3]]),
            u32::from_be_bytes([p[4], p[5], p[6], p[7]]),
            u32::from_be_bytes([p[8], p[9], p[10], p[11]]),
        )
    }

    #[test]
    fn one_stream_keeps_its_spacing_under_our_ssrc_and_payload_type() {
        let mut r = HeaderRewrite::new();
        let mut first = packet(0, 65535, 1000, 7);
        r.rewrite(&mut first, 8, 8000);
        let mut second = packet(0, 0, 1160, 7);
        r.rewrite(&mut second, 8, 8000);
        let (m1, pt1, s1, t1, ssrc1) = fields(&first);
        let (m2, pt2, s2, t2, ssrc2) = fields(&second);
        assert!(m1 && !m2, "marker on the first packet of a source only");
        assert_eq!((pt1, pt2), (8, 8));
        assert_eq!(s2, s1.wrapping_add(1));
        assert_eq!(t2.wrapping_sub(t1), 160);
        assert_eq!(ssrc1, ssrc2);
        assert_ne!(ssrc1, 7, "the source's SSRC is not echoed back");
        assert_eq!(&second[12..], &[0xaa, 0xbb], "payload untouched");
        let counted = r.tally.stream().unwrap();
        assert_eq!((counted.packets, counted.octets), (2, 4), "payload octets counted for sender reports");
    }

    #[test]
    fn a_new_source_continues_the_sequence() {
        let mut r = HeaderRewrite::new();
        let mut a = packet(0, 100, 5000, 1);
        r.rewrite(&mut a, 0, 8000);
        let mut b = packet(0, 40000, 999_999, 2);
        r.rewrite(&mut b, 0, 8000);
        let (_, _, sa, ta, _) = fields(&a);
        let (mb, _, sb, tb, _) = fields(&b);
        assert!(mb);
        assert_eq!(sb, sa.wrapping_add(1));
        assert!(tb.wrapping_sub(ta) < 8000, "timestamp moves on by the elapsed time, not by the source's jump");
    }

    #[test]
    fn a_late_packet_does_not_rewind_the_stream() {
        let mut r = HeaderRewrite::new();
        for seq in [10u16, 12, 11, 13] {
            r.rewrite(&mut packet(0, seq, seq as u32 * 160, 3), 0, 8000);
        }
        let mut next = packet(0, 14, 14 * 160, 3);
        r.rewrite(&mut next, 0, 8000);
        let (_, _, s, _, _) = fields(&next);
        assert_eq!(s, r.last_seq);
        assert_eq!(s.wrapping_sub(r.seq_offset), 14);
    }
}
