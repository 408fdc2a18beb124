//! The process's counters and gauges, rendered in the Prometheus text
//! format (version 0.0.4) for `/metrics`. Callers say what happened
//! (`call_started`, `answered`, a leg opened, a registration's state); the
//! figures other parts keep themselves (the SIP screen's counters, the
//! gateway's connections, /proc) are read at scrape time through
//! [`Metrics::add_collector`].

use super::exposition::Exposition;
use super::record::LegQuality;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Upper bounds (seconds) of the call-setup histogram: a passthrough answer
/// takes milliseconds, a WebRTC leg waits for ICE gathering.
const SETUP_BUCKETS: &[f64] = &[0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
/// Bounds of the legs' quality histograms, observed once per leg as its
/// call ends: MOS where users go from "very satisfied" (4.3) down to
/// "nearly all dissatisfied" (2.6), loss and jitter around where they
/// start to be heard (1 %, 20 ms).
const MOS_BUCKETS: &[f64] = &[1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 3.8, 4.0, 4.2, 4.3, 4.4, 4.5];
const LOSS_BUCKETS: &[f64] = &[0.001, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2];
const JITTER_BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2];

/// A figure read at scrape time.
pub type Collector = Box<dyn Fn(&mut Exposition) + Send + Sync>;

pub struct Metrics {
    calls_active: AtomicI64,
    calls_finished: Mutex<BTreeMap<&'static str, u64>>,
    setup: Mutex<Histogram>,
    /// The legs' MOS, loss ratio and jitter (seconds) at their end.
    quality: Mutex<[Histogram; 3]>,
    legs_active: Mutex<BTreeMap<(&'static str, String), i64>>,
    media_paths: Mutex<BTreeMap<&'static str, u64>>,
    registrations: Mutex<BTreeMap<String, &'static str>>,
    collectors: Mutex<Vec<Collector>>,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics {
            calls_active: AtomicI64::default(),
            calls_finished: Mutex::default(),
            setup: Mutex::new(Histogram::new(SETUP_BUCKETS)),
            quality: Mutex::new([
                Histogram::new(MOS_BUCKETS),
                Histogram::new(LOSS_BUCKETS),
                Histogram::new(JITTER_BUCKETS),
            ]),
            legs_active: Mutex::default(),
            media_paths: Mutex::default(),
            registrations: Mutex::default(),
            collectors: Mutex::default(),
        }
    }
}

impl Metrics {
    pub fn new() -> Arc<Metrics> {
        let metrics = Arc::new(Metrics::default());
        metrics.add_collector(Box::new(super::process::collect));
        metrics.add_collector(Box::new(super::rtp::collect));
        metrics
    }

    /// A call arrived (or was placed): active until the returned guard is
    /// dropped, then counted as finished with the outcome set on it.
    pub fn call_started(self: &Arc<Self>) -> ActiveCall {
        self.calls_active.fetch_add(1, Ordering::Relaxed);
        ActiveCall { metrics: self.clone(), started: Instant::now(), code: None }
    }

    /// A media leg of `kind` (`rtp`, `webrtc`) with `codec` is up until the
    /// guard is dropped.
    pub fn leg_opened(self: &Arc<Self>, kind: &'static str, codec: &str) -> ActiveLeg {
        let key = (kind, codec.to_ascii_lowercase());
        *self.legs_active.lock().unwrap().entry(key.clone()).or_default() += 1;
        ActiveLeg { metrics: self.clone(), key }
    }

    /// A leg's quality at its end.
    pub fn leg_quality(&self, quality: &LegQuality) {
        let [mos, loss, jitter] = &mut *self.quality.lock().unwrap();
        mos.observe(quality.mos);
        loss.observe(quality.loss_percent / 100.0);
        jitter.observe(quality.jitter_ms / 1000.0);
    }

    /// A call's audio was joined: passed through (same codec) or transcoded.
    pub fn media_path(&self, passthrough: bool) {
        let path = if passthrough { "passthrough" } else { "transcoded" };
        *self.media_paths.lock().unwrap().entry(path).or_default() += 1;
    }

    /// The latest state of an account's registration (`registered`,
    /// `failed`, `unregistered`); `None` forgets the account (a web user's
    /// registration that ended).
    pub fn registration(&self, aor: &str, state: Option<&'static str>) {
        let mut registrations = self.registrations.lock().unwrap();
        match state {
            Some(state) => registrations.insert(aor.to_string(), state),
            None => registrations.remove(aor),
        };
    }

    pub fn add_collector(&self, collector: Collector) {
        self.collectors.lock().unwrap().push(collector);
    }

    pub fn calls_active(&self) -> i64 {
        self.calls_active.load(Ordering::Relaxed)
    }

    /// The whole exposition, as `/metrics` serves it.
    pub fn render(&self) -> String {
        let mut out = Exposition::default();
        out.gauge("sipbridge_calls_active", "Calls set up or in progress.", &[(vec![], self.calls_active() as f64)]);
        let finished: Vec<_> =
            self.calls_finished.lock().unwrap().iter().map(|(c, n)| (vec![("code_class", *c)], *n as f64)).collect();
        out.counter("sipbridge_calls_finished_total", "Calls ended, by final SIP code class.", &finished);
        self.setup.lock().unwrap().render(
            &mut out,
            "sipbridge_call_setup_seconds",
            "Time from a call's request to its answer.",
        );
        let [mos, loss, jitter] = &*self.quality.lock().unwrap();
        mos.render(&mut out, "sipbridge_leg_mos", "MOS estimate (E-model) of the audio a leg received, at its end.");
        loss.render(
            &mut out,
            "sipbridge_leg_loss_ratio",
            "Share of the RTP packets sent to a leg that were lost, at its end.",
        );
        jitter.render(
            &mut out,
            "sipbridge_leg_jitter_seconds",
            "Interarrival jitter of the RTP a leg received, at its end.",
        );
        let legs = self.legs_active.lock().unwrap();
        let legs: Vec<_> =
            legs.iter().map(|((k, c), n)| (vec![("kind", *k), ("codec", c.as_str())], *n as f64)).collect();
        out.gauge("sipbridge_legs_active", "Media legs up, by kind and codec.", &legs);
        let paths: Vec<_> =
            self.media_paths.lock().unwrap().iter().map(|(p, n)| (vec![("path", *p)], *n as f64)).collect();
        out.counter("sipbridge_media_joins_total", "Audio joins between legs, passed through or transcoded.", &paths);
        let mut states: BTreeMap<&str, f64> =
            ["registered", "failed", "unregistered"].into_iter().map(|s| (s, 0.0)).collect();
        for state in self.registrations.lock().unwrap().values() {
            *states.entry(state).or_default() += 1.0;
        }
        let states: Vec<_> = states.into_iter().map(|(s, n)| (vec![("state", s)], n)).collect();
        out.gauge("sipbridge_registrations", "Accounts by the state of their registration.", &states);
        for collect in self.collectors.lock().unwrap().iter() {
            collect(&mut out);
        }
        out.into_text()
    }

    fn finished(&self, code: Option<u16>) {
        self.calls_active.fetch_sub(1, Ordering::Relaxed);
        let class = match code {
            Some(100..=199) | None => "none",
            Some(200..=299) => "2xx",
            Some(300..=399) => "3xx",
            Some(400..=499) => "4xx",
            Some(500..=599) => "5xx",
            Some(_) => "6xx",
        };
        *self.calls_finished.lock().unwrap().entry(class).or_default() += 1;
    }
}

/// A call counted as active; dropping it counts it as finished.
pub struct ActiveCall {
    metrics: Arc<Metrics>,
    started: Instant,
    code: Option<u16>,
}

impl ActiveCall {
    /// Answered (2xx): the setup time goes into the histogram now.
    pub fn answered(&mut self) -> Duration {
        self.code = Some(200);
        let setup = self.started.elapsed();
        self.metrics.setup.lock().unwrap().observe(setup.as_secs_f64());
        setup
    }

    /// Refused or failed with this final code.
    pub fn refused(&mut self, code: u16) {
        self.code = Some(code);
    }
}

impl Drop for ActiveCall {
    fn drop(&mut self) {
        self.metrics.finished(self.code);
    }
}

/// A leg counted as up until dropped.
pub struct ActiveLeg {
    metrics: Arc<Metrics>,
    key: (&'static str, String),
}

impl Drop for ActiveLeg {
    fn drop(&mut self) {
        let mut legs = self.metrics.legs_active.lock().unwrap();
        if let Some(n) = legs.get_mut(&self.key) {
            *n -= 1;
        }
    }
}

struct Histogram {
    bounds: &'static [f64],
    counts: Vec<u64>,
    count: u64,
    sum: f64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Histogram {
        Histogram { bounds, counts: vec![0; bounds.len()], count: 0, sum: 0.0 }
    }

    fn render(&self, out: &mut Exposition, name: &str, help: &str) {
        let buckets: Vec<(f64, u64)> = self.bounds.iter().copied().zip(self.counts.iter().copied()).collect();
        out.histogram(name, help, &buckets, self.count, self.sum);
    }

    fn observe(&mut self, value: f64) {
        for (i, bound) in self.bounds.iter().enumerate() {
            if value <= *bound {
                self.counts[i] += 1;
            }
        }
        self.count += 1;
        self.sum += value;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_are_counted_by_outcome_and_setup_time() {
        let m = Arc::new(Metrics::default());
        let mut a = m.call_started();
        let mut b = m.call_started();
        let c = m.call_started();
        assert_eq!(m.calls_active(), 3);
        a.answered();
        b.refused(486);
        drop((a, b, c));
        let text = m.render();
        assert!(text.contains("sipbridge_calls_active 0\n"), "{text}");
        assert!(text.contains("sipbridge_calls_finished_total{code_class=\"2xx\"} 1\n"), "{text}");
        assert!(text.contains("sipbridge_calls_finished_total{code_class=\"4xx\"} 1\n"), "{text}");
        assert!(text.contains("sipbridge_calls_finished_total{code_class=\"none\"} 1\n"), "{text}");
        assert!(text.contains("sipbridge_call_setup_seconds_count 1\n"), "{text}");
        assert!(text.contains("sipbridge_call_setup_seconds_bucket{le=\"+Inf\"} 1\n"), "{text}");
    }

    #[test]
    fn legs_and_registrations_are_gauges() {
        let m = Arc::new(Metrics::default());
        let leg = m.leg_opened("rtp", "PCMU");
        m.registration("sip:a@example.test", Some("registered"));
        m.registration("sip:b@example.test", Some("failed"));
        m.registration("sip:c@example.test", Some("registered"));
        m.registration("sip:c@example.test", None);
        let text = m.render();
        assert!(text.contains("sipbridge_legs_active{kind=\"rtp\",codec=\"pcmu\"} 1\n"), "{text}");
        assert!(text.contains("sipbridge_registrations{state=\"registered\"} 1\n"), "{text}");
        assert!(text.contains("sipbridge_registrations{state=\"failed\"} 1\n"), "{text}");
        drop(leg);
        assert!(m.render().contains("sipbridge_legs_active{kind=\"rtp\",codec=\"pcmu\"} 0\n"));
    }

    #[test]
    fn leg_quality_goes_into_histograms() {
        let m = Arc::new(Metrics::default());
        let quality = LegQuality {
            packets_received: 950,
            packets_lost: 50,
            loss_percent: 5.0,
            jitter_ms: 4.0,
            round_trip_ms: None,
            mos: 3.9,
        };
        m.leg_quality(&quality);
        let text = m.render();
        assert!(text.contains("sipbridge_leg_mos_bucket{le=\"3.8\"} 0\n"), "{text}");
        assert!(text.contains("sipbridge_leg_mos_bucket{le=\"4\"} 1\n"), "{text}");
        assert!(text.contains("sipbridge_leg_loss_ratio_bucket{le=\"0.03\"} 0\n"), "{text}");
        assert!(text.contains("sipbridge_leg_loss_ratio_bucket{le=\"0.05\"} 1\n"), "{text}");
        assert!(text.contains("sipbridge_leg_jitter_seconds_bucket{le=\"0.005\"} 1\n"), "{text}");
        assert!(text.contains("sipbridge_leg_jitter_seconds_count 1\n"), "{text}");
    }
}
