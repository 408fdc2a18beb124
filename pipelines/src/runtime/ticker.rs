//! The legs' fine-grained timers, fired by one task on the process's timer
//! thread (`runtime/timer.rs`) instead of a timer per leg: str0m's on every
//! lean leg (ICE checks and keepalives, DTLS retransmits, RTCP reports) and
//! the gaps of the thread-less jitter buffers (`leg/decode.rs`) on lean and
//! plain RTP legs. The task runs every [`TICK`]; a leg with nothing due
//! costs a check.

use crate::runtime::timer::{self, Timer};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

/// Fine enough for ICE's pacing (50 ms between checks), DTLS's
/// retransmits (hundreds of ms) and a jitter buffer's wait for a missing
/// packet (40 ms and up); 100 runs a second for the process.
const TICK: Duration = Duration::from_millis(10);

/// Something with timers to fire.
pub(crate) trait Timed: Send + Sync {
    fn tick(&self, now: Instant);
}

/// Fires `leg`'s timers from now on, until it is dropped.
pub(crate) fn watch(leg: Weak<dyn Timed>) {
    legs().lock().unwrap().push(leg);
}

/// The legs being watched.
type Legs = Mutex<Vec<Weak<dyn Timed>>>;

fn legs() -> &'static Legs {
    static LEGS: OnceLock<(Legs, Timer)> = OnceLock::new();
    &LEGS
        .get_or_init(|| {
            let task = timer::schedule(TICK, Arc::new(tick_all));
            (Mutex::default(), task)
        })
        .0
}

fn tick_all() -> Duration {
    let live: Vec<_> = {
        let mut legs = legs().lock().unwrap();
        legs.retain(|l| l.strong_count() > 0);
        legs.iter().filter_map(Weak::upgrade).collect()
    };
    let now = Instant::now();
    for leg in live {
        leg.tick(now);
    }
    TICK
}
