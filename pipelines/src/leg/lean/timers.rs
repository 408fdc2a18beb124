//! The one thread that fires the timers of every lean leg (ICE checks and
//! keepalives, DTLS retransmits, RTCP reports), instead of a timer thread
//! per leg. It wakes every [`TICK`]; a leg whose next deadline has not come
//! costs an atomic load.

use std::sync::{Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

/// Fine enough for ICE's pacing (50 ms between checks) and DTLS's
/// retransmits (hundreds of ms); 100 wake-ups a second for the process.
const TICK: Duration = Duration::from_millis(10);

/// Something with timers to fire.
pub(super) trait Timed: Send + Sync {
    fn tick(&self, now: Instant);
}

/// Fires `leg`'s timers from now on, until it is dropped.
pub(super) fn watch(leg: Weak<dyn Timed>) {
    legs().lock().unwrap().push(leg);
}

fn legs() -> &'static Mutex<Vec<Weak<dyn Timed>>> {
    static LEGS: OnceLock<Mutex<Vec<Weak<dyn Timed>>>> = OnceLock::new();
    LEGS.get_or_init(|| {
        std::thread::Builder::new().name("webrtc-timers".into()).spawn(run).expect("spawning the WebRTC timer thread");
        Mutex::default()
    })
}

fn run() {
    loop {
        std::thread::sleep(TICK);
        let live: Vec<_> = {
            let mut legs = legs().lock().unwrap();
            legs.retain(|l| l.strong_count() > 0);
            legs.iter().filter_map(Weak::upgrade).collect()
        };
        let now = Instant::now();
        for leg in live {
            leg.tick(now);
        }
    }
}
