//! Repeated warnings thinned out: a peer that is gone makes every packet
//! sent to it fail (50 warnings a second). The first of a kind is logged at
//! once; later ones are counted and reported in one line per interval.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often a repeating warning is logged again, with its count.
pub(crate) const REPEAT_INTERVAL: Duration = Duration::from_secs(10);

/// Kinds remembered at once; a pipeline with more distinct warnings than
/// this starts afresh (it then logs each kind once more).
const MAX_KINDS: usize = 32;

/// Per-kind state of one source of warnings.
pub(crate) struct LogLimit {
    interval: Duration,
    kinds: Mutex<HashMap<String, Kind>>,
}

struct Kind {
    logged_at: Instant,
    held_back: u64,
}

impl LogLimit {
    pub(crate) fn new(interval: Duration) -> Self {
        LogLimit { interval, kinds: Mutex::default() }
    }

    /// Whether a warning of kind `key` happening now is to be logged:
    /// `Some(n)` with the `n` held back since the last one logged, or
    /// `None` to count it and keep quiet.
    pub(crate) fn admit(&self, key: &str, now: Instant) -> Option<u64> {
        let mut kinds = self.kinds.lock().unwrap();
        if let Some(kind) = kinds.get_mut(key) {
            if now.duration_since(kind.logged_at) < self.interval {
                kind.held_back += 1;
                return None;
            }
            let held_back = std::mem::take(&mut kind.held_back);
            kind.logged_at = now;
            return Some(held_back);
        }
        if kinds.len() >= MAX_KINDS {
            kinds.clear();
        }
        kinds.insert(key.to_string(), Kind { logged_at: now, held_back: 0 });
        Some(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_then_a_count_per_interval() {
        let limit = LogLimit::new(Duration::from_secs(10));
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        assert_eq!(limit.admit("send failed", at(0)), Some(0), "the first is logged");
        let held = (1..500).filter(|i| limit.admit("send failed", at(i * 20)).is_none()).count();
        assert_eq!(held, 499, "50 a second for 10 s: all held back");
        assert_eq!(limit.admit("other", at(100)), Some(0), "another kind is logged at once");
        assert_eq!(limit.admit("send failed", at(10_000)), Some(499), "then one line with the count");
        assert_eq!(limit.admit("send failed", at(10_020)), None);
        assert_eq!(limit.admit("send failed", at(25_000)), Some(1));
    }
}
