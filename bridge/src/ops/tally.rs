//! One call as the operator sees it: counted as active from its request,
//! its setup time observed at the answer, and written as a call record
//! when it ends, whichever way it ends.

use super::metrics::{ActiveCall, ActiveLeg, Metrics};
use super::record::{CallClock, CallRecord, CallRecords, LegQuality, LegRecord};
use std::path::PathBuf;
use std::sync::Arc;

/// What every call of a service reports to: the metrics, the call records,
/// and the service's name for the records (the preset).
pub struct CallOps {
    pub metrics: Arc<Metrics>,
    pub records: Arc<CallRecords>,
    pub service: Option<String>,
}

impl CallOps {
    /// A call arriving (`inbound`) or being placed (`outbound`).
    pub fn tally(&self, call_id: &str, from: &str, to: &str, direction: &'static str) -> CallTally {
        CallTally::start(
            &self.metrics,
            &self.records,
            Parties {
                call_id: call_id.to_string(),
                from: from.to_string(),
                to: to.to_string(),
                direction,
                service: self.service.clone(),
            },
        )
    }
}

pub struct CallTally {
    active: ActiveCall,
    answered: bool,
    clock: CallClock,
    records: Arc<CallRecords>,
    metrics: Arc<Metrics>,
    legs: Vec<(LegRecord, Option<ActiveLeg>)>,
    record: CallRecord,
}

/// Who a call is between.
struct Parties {
    call_id: String,
    from: String,
    to: String,
    /// `inbound` or `outbound`.
    direction: &'static str,
    service: Option<String>,
}

impl CallTally {
    fn start(metrics: &Arc<Metrics>, records: &Arc<CallRecords>, parties: Parties) -> CallTally {
        let Parties { call_id, from, to, direction, service } = parties;
        CallTally {
            active: metrics.call_started(),
            answered: false,
            clock: CallClock::start(),
            records: records.clone(),
            metrics: metrics.clone(),
            legs: Vec::new(),
            record: CallRecord {
                call_id,
                from,
                to,
                direction,
                service,
                start: String::new(),
                answer: None,
                end: String::new(),
                duration_seconds: 0.0,
                setup_seconds: None,
                legs: Vec::new(),
                media_path: None,
                ended_by: "none",
                end_reason: String::new(),
                sip_code: 0,
                recordings: Vec::new(),
            },
        }
    }

    pub fn answered(&mut self) {
        self.answered = true;
        self.active.answered();
        self.clock.answered();
    }

    /// A media leg with its negotiated codec (`None` until known); counted
    /// in `sipbridge_legs_active` once the codec is known.
    pub fn leg(&mut self, kind: &'static str, codec: Option<&str>) {
        let gauge = codec.map(|c| self.metrics.leg_opened(kind, c));
        self.legs.push((LegRecord { kind, codec: codec.map(str::to_string), quality: None }, gauge));
    }

    /// The codec of the leg of `kind` learnt later (offerless INVITE).
    pub fn leg_codec(&mut self, kind: &'static str, codec: &str) {
        if let Some((record, gauge)) = self.legs.iter_mut().find(|(r, _)| r.kind == kind && r.codec.is_none()) {
            record.codec = Some(codec.to_string());
            *gauge = Some(self.metrics.leg_opened(kind, codec));
        }
    }

    /// The final quality figures of the (first) leg of `kind`, read just
    /// before it closed: for the record, and the metrics' histograms.
    pub fn leg_quality(&mut self, kind: &'static str, stats: &pipelines::LegStats) {
        let Some(quality) = LegQuality::of(stats) else { return };
        if let Some((record, _)) = self.legs.iter_mut().find(|(r, _)| r.kind == kind && r.quality.is_none()) {
            self.metrics.leg_quality(&quality);
            record.quality = Some(quality);
        }
    }

    /// Two legs were joined, passing audio through or transcoding it.
    pub fn media_path(&mut self, passthrough: bool) {
        self.metrics.media_path(passthrough);
        self.record.media_path = Some(if passthrough { "passthrough" } else { "transcoded" });
    }

    pub fn recording(&mut self, path: PathBuf) {
        self.record.recordings.push(path);
    }

    /// The call is over, ended by `by` (`local` or `remote`) with `code`:
    /// an answered call's record says 200, an unanswered one's the code
    /// that ended it (our refusal, the peer's 486, 487 for a CANCEL).
    pub fn ended(mut self, by: &'static str, code: u16, reason: &str) {
        let code = if self.answered { 200 } else { code };
        if !self.answered {
            self.active.refused(code);
        }
        let (start, answer, end, duration, setup) = self.clock.finish();
        let r = &mut self.record;
        (r.start, r.answer, r.end, r.duration_seconds, r.setup_seconds) = (start, answer, end, duration, setup);
        r.legs = self.legs.iter().map(|(l, _)| l.clone()).collect();
        (r.ended_by, r.end_reason, r.sip_code) = (by, reason.to_string(), code);
        self.records.write(&self.record);
    }
}
