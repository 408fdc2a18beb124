//! Process-wide counts of RTP on plain RTP legs, for an operator's metrics:
//! packets and bytes (RTP header and payload) received on the legs'
//! sockets, and sent from them, whether by `multiudpsink` or by the relay.
//! RTCP and stray non-RTP datagrams are not counted.

use crate::leg::quality::Sent;
use gst::prelude::*;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

static RECEIVED_PACKETS: AtomicU64 = AtomicU64::new(0);
static RECEIVED_BYTES: AtomicU64 = AtomicU64::new(0);
static SENT_PACKETS: AtomicU64 = AtomicU64::new(0);
static SENT_BYTES: AtomicU64 = AtomicU64::new(0);

/// Totals since the process started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RtpTotals {
    pub received_packets: u64,
    pub received_bytes: u64,
    pub sent_packets: u64,
    pub sent_bytes: u64,
}

pub fn rtp_totals() -> RtpTotals {
    RtpTotals {
        received_packets: RECEIVED_PACKETS.load(Ordering::Relaxed),
        received_bytes: RECEIVED_BYTES.load(Ordering::Relaxed),
        sent_packets: SENT_PACKETS.load(Ordering::Relaxed),
        sent_bytes: SENT_BYTES.load(Ordering::Relaxed),
    }
}

pub(crate) fn received(bytes: usize) {
    RECEIVED_PACKETS.fetch_add(1, Ordering::Relaxed);
    RECEIVED_BYTES.fetch_add(bytes as u64, Ordering::Relaxed);
}

pub(crate) fn sent(bytes: usize) {
    SENT_PACKETS.fetch_add(1, Ordering::Relaxed);
    SENT_BYTES.fetch_add(bytes as u64, Ordering::Relaxed);
}

/// Counts every RTP packet `sink` (an RTP leg's multiudpsink) is given as
/// sent, process-wide and in the leg's own count; RTCP (multiplexed onto
/// the RTP socket) is not counted.
pub(crate) fn count_sent(sink: &gst::Element, leg: Arc<Sent>) {
    let Some(pad) = sink.static_pad("sink") else { return };
    let count = move |buffer: &gst::BufferRef| {
        let rtcp = buffer.map_readable().is_ok_and(|m| m.get(1).is_some_and(|pt| (200..=204).contains(pt)));
        if !rtcp {
            sent(buffer.size());
            leg.count(buffer.size());
        }
    };
    pad.add_probe(gst::PadProbeType::BUFFER | gst::PadProbeType::BUFFER_LIST, move |_, info| {
        match &info.data {
            Some(gst::PadProbeData::Buffer(b)) => count(b),
            Some(gst::PadProbeData::BufferList(list)) => list.iter().for_each(&count),
            _ => {}
        }
        gst::PadProbeReturn::Ok
    });
}
