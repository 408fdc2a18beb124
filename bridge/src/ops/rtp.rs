//! RTP on plain RTP legs, process-wide, as metrics (counted in `pipelines`:
//! packets and bytes received on the legs' sockets and sent from them).

use super::exposition::Exposition;

pub fn collect(out: &mut Exposition) {
    let t = pipelines::rtp_totals();
    out.counter(
        "sipbridge_rtp_packets_total",
        "RTP packets on plain RTP legs, received (in) and sent (out).",
        &[(vec![("direction", "in")], t.received_packets as f64), (vec![("direction", "out")], t.sent_packets as f64)],
    );
    out.counter(
        "sipbridge_rtp_bytes_total",
        "RTP bytes (header and payload) on plain RTP legs, received (in) and sent (out).",
        &[(vec![("direction", "in")], t.received_bytes as f64), (vec![("direction", "out")], t.sent_bytes as f64)],
    );
}
