//! A leg's quality figures on the wire, for `session.getStats` and the
//! gateway's `sip.stats` and `stats` event: a list of reports shaped like
//! the values of RTCPeerConnection.getStats (W3C webrtc-stats: `type`,
//! `id`, `timestamp` in ms, camelCase members, times in seconds), plus our
//! `mos` and `lossPercent` on the inbound report.

use pipelines::LegStats;
use serde_json::{json, Value};
use std::time::{SystemTime, UNIX_EPOCH};

pub fn reports(stats: &LegStats) -> Value {
    let timestamp = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs_f64() * 1000.0;
    let codec = stats.codec.map(|c| c.sdp_name());
    let mut reports = Vec::new();
    if let Some(i) = &stats.inbound {
        reports.push(json!({
            "type": "inbound-rtp",
            "id": "inbound-rtp",
            "timestamp": timestamp,
            "kind": "audio",
            "ssrc": i.ssrc,
            "codec": codec,
            "packetsReceived": i.packets_received,
            "bytesReceived": i.bytes_received,
            "packetsLost": i.packets_lost,
            "jitter": i.jitter,
            "lossPercent": stats.loss_percent(),
            "mos": stats.mos(),
        }));
    }
    reports.push(json!({
        "type": "outbound-rtp",
        "id": "outbound-rtp",
        "timestamp": timestamp,
        "kind": "audio",
        "codec": codec,
        "packetsSent": stats.outbound.packets_sent,
        "bytesSent": stats.outbound.bytes_sent,
    }));
    if let Some(r) = &stats.remote_inbound {
        reports.push(json!({
            "type": "remote-inbound-rtp",
            "id": "remote-inbound-rtp",
            "timestamp": timestamp,
            "kind": "audio",
            "ssrc": r.ssrc,
            "localId": "outbound-rtp",
            "packetsLost": r.packets_lost,
            "fractionLost": r.fraction_lost,
            "jitter": r.jitter,
            "roundTripTime": r.round_trip_time,
        }));
    }
    Value::Array(reports)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pipelines::{InboundStats, RemoteInboundStats};

    #[test]
    fn reports_are_shaped_like_webrtc_stats() {
        let stats = LegStats {
            codec: Some(pipelines::Codec::Pcmu),
            inbound: Some(InboundStats {
                ssrc: 7,
                packets_received: 95,
                bytes_received: 95 * 172,
                packets_lost: 5,
                jitter: 0.002,
            }),
            remote_inbound: Some(RemoteInboundStats { round_trip_time: Some(0.04), ..Default::default() }),
            ..Default::default()
        };
        let value = reports(&stats);
        let types: Vec<&str> = value.as_array().unwrap().iter().map(|r| r["type"].as_str().unwrap()).collect();
        assert_eq!(types, ["inbound-rtp", "outbound-rtp", "remote-inbound-rtp"]);
        let inbound = &value[0];
        assert_eq!((inbound["packetsLost"].as_i64(), inbound["codec"].as_str()), (Some(5), Some("PCMU")));
        assert_eq!(inbound["lossPercent"].as_f64(), Some(5.0));
        assert!(inbound["mos"].as_f64().unwrap() < 4.0, "{inbound}");
        assert_eq!(value[2]["roundTripTime"].as_f64(), Some(0.04));
    }
}
