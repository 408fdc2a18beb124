//! RTCP packets we build ourselves (RFC 3550 section 6): the compound
//! packet an RTP leg reports its stream with (`rtp_rtcp.rs`): a sender
//! or receiver report, the SDES CNAME, and a BYE when the leg closes.

use std::time::{SystemTime, UNIX_EPOCH};

/// The sender information of a sender report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SenderInfo {
    /// NTP timestamp (64-bit fixed point seconds since 1900) of `rtp_timestamp`.
    pub ntp: u64,
    pub rtp_timestamp: u32,
    pub packets: u32,
    /// Payload octets (headers and padding not counted).
    pub octets: u32,
}

/// One reception report block (RFC 3550 section 6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ReportBlock {
    pub ssrc: u32,
    /// Packets lost since the previous report, in 1/256ths.
    pub fraction_lost: u8,
    /// Expected minus received since the stream began (signed, 24 bits on the wire).
    pub cumulative_lost: i64,
    pub highest_seq: u32,
    /// Interarrival jitter in timestamp units.
    pub jitter: u32,
    /// The middle 32 bits of the NTP timestamp of the peer's last sender report (0: none).
    pub lsr: u32,
    /// Since that report arrived, in 1/65536 s.
    pub dlsr: u32,
}

/// What one compound packet holds.
pub(crate) struct Report<'a> {
    pub ssrc: u32,
    /// `Some` makes it a sender report, `None` a receiver report.
    pub sender: Option<SenderInfo>,
    pub block: Option<ReportBlock>,
    pub cname: &'a str,
    /// Ends the packet with a BYE for `ssrc`.
    pub bye: bool,
}

const SR: u8 = 200;
const RR: u8 = 201;
const SDES: u8 = 202;
const BYE: u8 = 203;
const CNAME: u8 = 1;

impl Report<'_> {
    /// The compound packet: SR or RR first, then SDES, then BYE (RFC 3550 section 6.1).
    pub fn compound(&self) -> Vec<u8> {
        let blocks = self.block.iter().count() as u8;
        let mut out = Vec::with_capacity(96);
        match &self.sender {
            Some(info) => {
                header(&mut out, blocks, SR, 6 + 6 * blocks as u16);
                out.extend(self.ssrc.to_be_bytes());
                out.extend(info.ntp.to_be_bytes());
                out.extend(info.rtp_timestamp.to_be_bytes());
                out.extend(info.packets.to_be_bytes());
                out.extend(info.octets.to_be_bytes());
            }
            None => {
                header(&mut out, blocks, RR, 1 + 6 * blocks as u16);
                out.extend(self.ssrc.to_be_bytes());
            }
        }
        if let Some(b) = &self.block {
            out.extend(b.ssrc.to_be_bytes());
            let lost = b.cumulative_lost.clamp(-0x80_0000, 0x7f_ffff) as i32 as u32 & 0x00ff_ffff;
            out.extend((((b.fraction_lost as u32) << 24) | lost).to_be_bytes());
            for word in [b.highest_seq, b.jitter, b.lsr, b.dlsr] {
                out.extend(word.to_be_bytes());
            }
        }
        // SDES chunk: SSRC, CNAME item, then at least one zero octet up to
        // the next 32-bit boundary ends the item list.
        let cname = &self.cname.as_bytes()[..self.cname.len().min(255)];
        let items = 2 + cname.len();
        let chunk_words = (4 + items + 4) / 4;
        header(&mut out, 1, SDES, chunk_words as u16);
        out.extend(self.ssrc.to_be_bytes());
        out.extend([CNAME, cname.len() as u8]);
        out.extend(cname);
        out.resize(out.len() + chunk_words * 4 - 4 - items, 0);
        if self.bye {
            header(&mut out, 1, BYE, 1);
            out.extend(self.ssrc.to_be_bytes());
        }
        out
    }
}

/// Version 2, no padding, `count` in the low five bits, `length` in 32-bit
/// words minus one.
fn header(out: &mut Vec<u8>, count: u8, packet_type: u8, length: u16) {
    out.extend([0x80 | count, packet_type]);
    out.extend(length.to_be_bytes());
}

/// The 64-bit NTP timestamp of `t`.
pub(crate) fn ntp_timestamp(t: SystemTime) -> u64 {
    const NTP_UNIX_OFFSET: u64 = 2_208_988_800;
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let fraction = ((since.subsec_nanos() as u64) << 32) / 1_000_000_000;
    ((since.as_secs() + NTP_UNIX_OFFSET) << 32) | fraction
}

/// The middle 32 bits of an NTP timestamp, as LSR carries them.
pub(crate) fn ntp_middle(ntp: u64) -> u32 {
    (ntp >> 16) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn word(p: &[u8], at: usize) -> u32 {
        u32::from_be_bytes([p[at], p[at + 1], p[at + 2], p[at + 3]])
    }

    #[test]
    fn a_sender_report_with_a_block_cname_and_bye() {
        let report = Report {
            ssrc: 0x1234_5678,
            sender: Some(SenderInfo { ntp: 0xe000_0001_8000_0000, rtp_timestamp: 16000, packets: 250, octets: 40000 }),
            block: Some(ReportBlock {
                ssrc: 0xabcd,
                fraction_lost: 64,
                cumulative_lost: -2,
                highest_seq: 0x0001_0005,
                jitter: 40,
                lsr: 0x0001_8000,
                dlsr: 0x4000,
            }),
            cname: "abc",
            bye: true,
        };
        let p = report.compound();
        // SR: 7 words of header and sender info, 6 of the block.
        assert_eq!(&p[..4], &[0x81, 200, 0, 12]);
        assert_eq!((word(&p, 4), word(&p, 8), word(&p, 12)), (0x1234_5678, 0xe000_0001, 0x8000_0000));
        assert_eq!((word(&p, 16), word(&p, 20), word(&p, 24)), (16000, 250, 40000));
        assert_eq!(word(&p, 28), 0xabcd);
        assert_eq!(word(&p, 32), (64 << 24) | 0x00ff_fffe, "fraction, then -2 in 24 bits");
        assert_eq!((word(&p, 36), word(&p, 40), word(&p, 44), word(&p, 48)), (0x0001_0005, 40, 0x0001_8000, 0x4000));
        // SDES: SSRC, CNAME "abc" (5 octets), 3 zero octets: 3 words after the header.
        let sdes = &p[52..];
        assert_eq!(&sdes[..4], &[0x81, 202, 0, 3]);
        assert_eq!(word(sdes, 4), 0x1234_5678);
        assert_eq!(&sdes[8..16], &[1, 3, b'a', b'b', b'c', 0, 0, 0]);
        assert_eq!(&sdes[16..], &[0x81, 203, 0, 1, 0x12, 0x34, 0x56, 0x78]);
        // Every packet's length field matches what follows it.
        let mut rest = p.as_slice();
        while !rest.is_empty() {
            let length = (u16::from_be_bytes([rest[2], rest[3]]) as usize + 1) * 4;
            assert!(length <= rest.len());
            rest = &rest[length..];
        }
    }

    #[test]
    fn a_receiver_report_without_blocks_and_a_cname_on_a_word_boundary() {
        let p = Report { ssrc: 7, sender: None, block: None, cname: "ab", bye: false }.compound();
        assert_eq!(&p[..8], &[0x80, 201, 0, 1, 0, 0, 0, 7]);
        // CNAME of 2 octets: 4 octets of item, then a whole word of zeros.
        assert_eq!(&p[8..], &[0x81, 202, 0, 3, 0, 0, 0, 7, 1, 2, b'a', b'b', 0, 0, 0, 0]);
    }

    #[test]
    fn ntp_timestamps_count_from_1900_in_fixed_point() {
        let t = UNIX_EPOCH + std::time::Duration::from_millis(1500);
        let ntp = ntp_timestamp(t);
        assert_eq!(ntp >> 32, 2_208_988_801);
        assert_eq!(ntp as u32, 0x8000_0000);
        assert_eq!(ntp_middle(ntp), ((2_208_988_801u64 as u32) << 16) | 0x8000);
    }
}
