//! Process-wide counts of RTP on plain RTP legs, for an operator's metrics:
//! packets and bytes (RTP header and payload) received on the legs'
//! sockets, and sent from them (`rtp_out.rs`: the send chains' and the relay's).
//! RTCP and stray non-RTP datagrams are not counted.

use std::sync::atomic::{AtomicU64, Ordering};

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
