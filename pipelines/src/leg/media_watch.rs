//! Dead-peer detection: is the peer of a leg still sending?
//!
//! A phone that loses power, a browser tab that is killed, a NAT binding
//! that expires: none of them sends BYE, and the call would live for ever.
//! Once a leg has negotiated, its peer should be sending RTP; when none has
//! arrived for the leg's timeout, the leg reports [`LegEvent::MediaTimeout`]
//! (once, until media resumes: then [`LegEvent::MediaResumed`]), and RTP legs
//! also report their connection `disconnected` (`connected` again).
//!
//! On hold (the negotiated direction is anything but sendrecv, whoever asked
//! for it) a live peer may send no RTP at all, but it still sends RTCP
//! reports (RFC 3550: one every ~5 s). So on hold RTCP counts as well, and
//! the timeout is at least [`HOLD_MIN_TIMEOUT_MS`] (a few report intervals);
//! a peer that has sent no RTCP in the session is not watched while on hold.
//!
//! Packets are counted on the legs' receiving threads with two atomic
//! stores; one thread for the process checks every watched leg four times a
//! second.

use crate::leg::events::{ConnectionState, EventHandler, LegEvent};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

/// On hold, RTCP is what shows the peer alive; reports come every ~5 s
/// (randomised 0.5-1.5x), so the timeout is never shorter than four intervals.
pub(crate) const HOLD_MIN_TIMEOUT_MS: u64 = 20_000;
const CHECK_EVERY: Duration = Duration::from_millis(250);

/// The watch of one leg. Cloned into the places that see its packets.
#[derive(Clone)]
pub(crate) struct MediaWatch {
    inner: Arc<Watched>,
}

struct Watched {
    timeout_ms: u64,
    events: EventHandler,
    /// RTP legs report their connection state from their media (WebRTC
    /// legs take it from webrtcbin).
    reports_connection: bool,
    /// When negotiation last completed (ms on [`clock_ms`]); 0: not watching.
    armed_at: AtomicU64,
    held: AtomicBool,
    /// When RTP / RTCP last arrived; 0: never.
    last_rtp: AtomicU64,
    last_rtcp: AtomicU64,
    timed_out: AtomicBool,
}

impl MediaWatch {
    /// A watch reporting to `events`; `timeout_ms` 0 never times out.
    pub fn new(timeout_ms: u32, events: EventHandler, reports_connection: bool) -> MediaWatch {
        let inner = Arc::new(Watched {
            timeout_ms: timeout_ms as u64,
            events,
            reports_connection,
            armed_at: AtomicU64::new(0),
            held: AtomicBool::new(false),
            last_rtp: AtomicU64::new(0),
            last_rtcp: AtomicU64::new(0),
            timed_out: AtomicBool::new(false),
        });
        if timeout_ms > 0 {
            watched().lock().unwrap().push(Arc::downgrade(&inner));
        }
        MediaWatch { inner }
    }

    /// A negotiation has completed: the clock starts again (a new
    /// description, hold or resume, gives the peer a fresh timeout).
    pub fn arm(&self, held: bool) {
        self.inner.held.store(held, Ordering::Relaxed);
        self.inner.armed_at.store(clock_ms(), Ordering::Relaxed);
        self.inner.timed_out.store(false, Ordering::Relaxed);
    }

    /// The leg is closed: nothing more is reported.
    pub fn disarm(&self) {
        self.inner.armed_at.store(0, Ordering::Relaxed);
    }

    /// An RTP packet from the peer arrived.
    pub fn rtp(&self) {
        let first = self.inner.last_rtp.swap(clock_ms(), Ordering::Relaxed) == 0;
        let resumed = self.inner.resumed();
        if (first || resumed) && self.inner.reports_connection {
            (self.inner.events)(LegEvent::ConnectionStateChange(ConnectionState::Connected));
        }
    }

    /// An RTCP report from the peer arrived.
    pub fn rtcp(&self) {
        self.inner.last_rtcp.store(clock_ms(), Ordering::Relaxed);
        if self.inner.held.load(Ordering::Relaxed) {
            self.inner.resumed();
        }
    }
}

impl Watched {
    /// Clears a timeout on fresh media; true if there was one.
    fn resumed(&self) -> bool {
        if !self.timed_out.load(Ordering::Relaxed) || !self.timed_out.swap(false, Ordering::Relaxed) {
            return false;
        }
        tracing::info!("media from the peer again");
        (self.events)(LegEvent::MediaResumed);
        true
    }

    fn check(&self, now: u64) {
        if self.timed_out.load(Ordering::Relaxed) {
            return;
        }
        let snapshot = Snapshot {
            armed_at: self.armed_at.load(Ordering::Relaxed),
            held: self.held.load(Ordering::Relaxed),
            last_rtp: self.last_rtp.load(Ordering::Relaxed),
            last_rtcp: self.last_rtcp.load(Ordering::Relaxed),
            timeout_ms: self.timeout_ms,
        };
        let Some(silent_for_ms) = snapshot.silent_for(now) else { return };
        if self.timed_out.swap(true, Ordering::Relaxed) {
            return;
        }
        tracing::warn!(silent_for_ms, held = snapshot.held, "no media from the peer: it may be gone");
        if self.reports_connection {
            (self.events)(LegEvent::ConnectionStateChange(ConnectionState::Disconnected));
        }
        (self.events)(LegEvent::MediaTimeout { silent_for_ms, held: snapshot.held });
    }
}

/// What [`Watched::check`] decides on: copied out of the atomics, so the
/// rule is a plain function of it.
#[derive(Debug, Clone, Copy)]
struct Snapshot {
    armed_at: u64,
    held: bool,
    last_rtp: u64,
    last_rtcp: u64,
    timeout_ms: u64,
}

impl Snapshot {
    /// How long the peer has been silent, if that is longer than it may be.
    fn silent_for(&self, now: u64) -> Option<u64> {
        if self.armed_at == 0 || self.timeout_ms == 0 {
            return None;
        }
        let (last, timeout) = if self.held {
            if self.last_rtcp == 0 {
                return None; // a peer that never reports cannot be told from a held one
            }
            (self.armed_at.max(self.last_rtp).max(self.last_rtcp), self.timeout_ms.max(HOLD_MIN_TIMEOUT_MS))
        } else {
            (self.armed_at.max(self.last_rtp), self.timeout_ms)
        };
        let silent = now.saturating_sub(last);
        (silent > timeout).then_some(silent)
    }
}

/// Milliseconds since the first call, never 0 (0 means "never" above).
fn clock_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64 + 1
}

/// Every leg with a timeout, checked by one thread for the process.
fn watched() -> &'static Mutex<Vec<Weak<Watched>>> {
    static WATCHED: OnceLock<Mutex<Vec<Weak<Watched>>>> = OnceLock::new();
    WATCHED.get_or_init(|| {
        std::thread::Builder::new()
            .name("media-watch".into())
            .spawn(|| loop {
                std::thread::sleep(CHECK_EVERY);
                let legs: Vec<Arc<Watched>> = {
                    let mut watched = watched().lock().unwrap();
                    watched.retain(|w| w.strong_count() > 0);
                    watched.iter().filter_map(Weak::upgrade).collect()
                };
                let now = clock_ms();
                for leg in legs {
                    leg.check(now);
                }
            })
            .expect("spawning the media watch");
        Mutex::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACTIVE: Snapshot = Snapshot { armed_at: 1_000, held: false, last_rtp: 0, last_rtcp: 0, timeout_ms: 2_000 };

    #[test]
    fn a_negotiated_peer_that_never_sends_times_out() {
        assert_eq!(ACTIVE.silent_for(2_900), None);
        assert_eq!(ACTIVE.silent_for(3_100), Some(2_100));
    }

    #[test]
    fn rtp_restarts_the_clock_and_rtcp_does_not_while_active() {
        let s = Snapshot { last_rtp: 5_000, last_rtcp: 9_000, ..ACTIVE };
        assert_eq!(s.silent_for(6_900), None);
        assert_eq!(s.silent_for(9_500), Some(4_500), "RTCP alone does not keep an active call");
    }

    #[test]
    fn nothing_is_watched_before_negotiation_or_without_a_timeout() {
        assert_eq!(Snapshot { armed_at: 0, ..ACTIVE }.silent_for(1_000_000), None);
        assert_eq!(Snapshot { timeout_ms: 0, ..ACTIVE }.silent_for(1_000_000), None);
    }

    #[test]
    fn on_hold_rtcp_counts_with_a_longer_timeout() {
        let held = Snapshot { held: true, last_rtp: 1_500, last_rtcp: 4_000, ..ACTIVE };
        assert_eq!(held.silent_for(4_000 + HOLD_MIN_TIMEOUT_MS), None, "reports every few seconds keep it");
        assert_eq!(held.silent_for(4_001 + HOLD_MIN_TIMEOUT_MS), Some(HOLD_MIN_TIMEOUT_MS + 1));
        let long = Snapshot { timeout_ms: 60_000, ..held };
        assert_eq!(long.silent_for(4_000 + 30_000), None, "a timeout longer than the minimum is kept");
    }

    #[test]
    fn on_hold_a_peer_that_never_sent_rtcp_is_not_watched() {
        let held = Snapshot { held: true, last_rtp: 1_500, ..ACTIVE };
        assert_eq!(held.silent_for(1_000_000), None);
    }

    #[test]
    fn one_timeout_per_silence_and_resumption_reports_once() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        let watch = MediaWatch::new(2_000, Arc::new(move |e| sink.lock().unwrap().push(e)), true);
        watch.arm(false);
        // Driven by hand, ahead of the real clock the watch thread sees.
        let later = clock_ms() + 10_000;
        watch.inner.check(later);
        watch.inner.check(later + 1_000);
        let events = std::mem::take(&mut *seen.lock().unwrap());
        assert_eq!(events.len(), 2, "disconnected and one timeout: {events:?}");
        assert_eq!(events[0], LegEvent::ConnectionStateChange(ConnectionState::Disconnected));
        assert!(matches!(events[1], LegEvent::MediaTimeout { held: false, .. }));
        watch.rtp();
        watch.rtp();
        let events = std::mem::take(&mut *seen.lock().unwrap());
        assert_eq!(events, [LegEvent::MediaResumed, LegEvent::ConnectionStateChange(ConnectionState::Connected)]);
    }
}
