//! Call records: one JSON object per finished call (answered, refused or
//! failed), appended as a line to a file and/or logged, for billing,
//! reports and "why did that call fail" without reading the log.

use serde::Serialize;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// What a finished call was. Field names are the JSON contract
/// (docs/operations.md).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CallRecord {
    pub call_id: String,
    pub from: String,
    pub to: String,
    /// `inbound` (we were called) or `outbound` (we called).
    pub direction: &'static str,
    /// The preset that answered (daemon) or the web user's account (gateway).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// RFC 3339 UTC timestamps.
    pub start: String,
    pub answer: Option<String>,
    pub end: String,
    /// Seconds from answer to end; 0 for a call never answered.
    pub duration_seconds: f64,
    /// Seconds from the request to the answer.
    pub setup_seconds: Option<f64>,
    pub legs: Vec<LegRecord>,
    /// `passthrough` or `transcoded` when two legs were joined.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media_path: Option<&'static str>,
    /// `local`, `remote`, or `none` for a call refused before it started.
    pub ended_by: &'static str,
    pub end_reason: String,
    /// The call's final SIP code: 200 for an answered call, else the refusal.
    pub sip_code: u16,
    pub recordings: Vec<PathBuf>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LegRecord {
    /// `rtp` or `webrtc`.
    pub kind: &'static str,
    pub codec: Option<String>,
    /// How the audio we received on the leg fared; absent if none came.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quality: Option<LegQuality>,
}

/// A leg's call quality at its end (`pipelines::LegStats`).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LegQuality {
    pub packets_received: u64,
    /// Expected minus received (RFC 3550).
    pub packets_lost: i64,
    pub loss_percent: f64,
    /// Interarrival jitter (RFC 3550), ms.
    pub jitter_ms: f64,
    /// From the peer's RTCP receiver reports; absent when they gave none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub round_trip_ms: Option<f64>,
    /// The E-model's MOS estimate (1 to 4.5).
    pub mos: f64,
}

impl LegQuality {
    /// The figures of a leg that received audio; `None` for one that got none.
    pub fn of(stats: &pipelines::LegStats) -> Option<LegQuality> {
        let inbound = stats.inbound.as_ref()?;
        Some(LegQuality {
            packets_received: inbound.packets_received,
            packets_lost: inbound.packets_lost,
            loss_percent: round2(stats.loss_percent()?),
            jitter_ms: round2(inbound.jitter * 1000.0),
            round_trip_ms: stats.round_trip_time().map(|rtt| round2(rtt * 1000.0)),
            mos: round2(stats.mos()?),
        })
    }
}

/// Two decimals are all a record needs.
fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// The start and answer instants of a call in the making; `finish` turns
/// them into a record.
#[derive(Debug, Clone)]
pub struct CallClock {
    start: (SystemTime, Instant),
    answer: Option<(SystemTime, Instant)>,
}

impl CallClock {
    pub fn start() -> CallClock {
        CallClock { start: (SystemTime::now(), Instant::now()), answer: None }
    }

    pub fn answered(&mut self) {
        self.answer = Some((SystemTime::now(), Instant::now()));
    }

    /// (start, answer, end, duration, setup) for the record, ended now.
    pub fn finish(&self) -> (String, Option<String>, String, f64, Option<f64>) {
        let end = Instant::now();
        let duration = self.answer.map(|(_, at)| end.duration_since(at).as_secs_f64()).unwrap_or(0.0);
        let setup = self.answer.map(|(_, at)| at.duration_since(self.start.1).as_secs_f64());
        (rfc3339(self.start.0), self.answer.map(|(t, _)| rfc3339(t)), rfc3339(SystemTime::now()), duration, setup)
    }
}

/// Where records go: a JSON-lines file (appended, one write per record, so
/// concurrent calls never interleave), the log (target `call_record`), or both.
pub struct CallRecords {
    file: Option<Mutex<std::fs::File>>,
    log: bool,
}

impl CallRecords {
    pub fn new(file: Option<&Path>, log: bool) -> std::io::Result<CallRecords> {
        let file = match file {
            Some(path) => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir)?;
                }
                Some(Mutex::new(std::fs::OpenOptions::new().create(true).append(true).open(path)?))
            }
            None => None,
        };
        Ok(CallRecords { file, log })
    }

    pub fn write(&self, record: &CallRecord) {
        let line = serde_json::to_string(record).expect("a record serializes");
        if self.log {
            tracing::info!(target: "call_record", record = %line, "call record");
        }
        if let Some(file) = &self.file {
            let mut file = file.lock().unwrap();
            if let Err(e) = file.write_all(format!("{line}\n").as_bytes()) {
                tracing::warn!(error = %e, "cannot write the call record");
            }
        }
    }
}

/// `2026-12-02T17:22:44.123Z`.
pub fn rfc3339(t: SystemTime) -> String {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since.subsec_millis()
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's
/// `civil_from_days`).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(1_796_232_164_123);
        assert_eq!(rfc3339(t), "2026-12-02T17:22:44.123Z");
        assert_eq!(rfc3339(UNIX_EPOCH + Duration::from_secs(951_782_400)), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn records_are_appended_as_json_lines() {
        let dir = std::env::temp_dir().join(format!("sipbridge-records-{}", std::process::id()));
        let path = dir.join("calls.jsonl");
        let records = CallRecords::new(Some(&path), false).unwrap();
        let (start, answer, end, duration_seconds, setup_seconds) = CallClock::start().finish();
        let record = CallRecord {
            call_id: "c1".into(),
            from: "sip:a@x".into(),
            to: "sip:b@y".into(),
            direction: "inbound",
            service: Some("echo".into()),
            start,
            answer,
            end,
            duration_seconds,
            setup_seconds,
            legs: vec![LegRecord { kind: "rtp", codec: Some("PCMU".into()), quality: None }],
            media_path: None,
            ended_by: "none",
            end_reason: "busy".into(),
            sip_code: 486,
            recordings: vec![],
        };
        records.write(&record);
        records.write(&record);
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["sip_code"], 486);
        assert_eq!(lines[0]["answer"], serde_json::Value::Null);
        assert_eq!(lines[0]["legs"][0]["codec"], "PCMU");
        std::fs::remove_dir_all(dir).ok();
    }
}
