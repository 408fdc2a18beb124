//! A bursty sender's schedule, as some phones and apps send: a packet is
//! made every packet time, but packets are held back 100-250 ms and then
//! released at once, and 2% of them are lost on the way. The tests and
//! `make bench`'s jitter mode send on it and count what reaches the far side.

use std::time::Duration;

/// How long each burst is held, in turn (ms).
pub const HOLDS_MS: [u64; 6] = [100, 250, 160, 220, 130, 190];
/// One packet in this many is lost (2%).
pub const LOSS_EVERY: usize = 50;

/// When each of a stream's packets leaves.
pub struct Bursts {
    releases: Vec<Duration>,
}

impl Bursts {
    /// The schedule of `packets` packets of `packet_time`: packet `i`, made
    /// at `i * packet_time`, leaves at the first release at or after that.
    pub fn new(packets: usize, packet_time: Duration) -> Bursts {
        let mut releases = Vec::with_capacity(packets);
        let (mut release, mut hold) = (Duration::ZERO, 0);
        for i in 0..packets as u32 {
            while release < packet_time * i {
                release += Duration::from_millis(HOLDS_MS[hold % HOLDS_MS.len()]);
                hold += 1;
            }
            releases.push(release);
        }
        Bursts { releases }
    }

    pub fn len(&self) -> usize {
        self.releases.len()
    }

    pub fn is_empty(&self) -> bool {
        self.releases.is_empty()
    }

    /// When packet `i` leaves, from the stream's start.
    pub fn release(&self, i: usize) -> Duration {
        self.releases[i]
    }

    /// Whether packet `i` is lost on the way (it is still made: the
    /// sequence numbers and timestamps of the others keep their place).
    pub fn lost(i: usize) -> bool {
        i % LOSS_EVERY == LOSS_EVERY / 2
    }

    /// How many packets of the first `n` are not lost.
    pub fn delivered_of(n: usize) -> usize {
        (0..n).filter(|i| !Bursts::lost(*i)).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_leave_in_bursts_and_two_percent_are_lost() {
        let b = Bursts::new(500, Duration::from_millis(20));
        assert_eq!(b.release(0), Duration::ZERO);
        // The first hold: packets made at 20..=100 ms all leave at 100 ms.
        assert!((1..=5).all(|i| b.release(i) == Duration::from_millis(100)));
        assert_eq!(b.release(6), Duration::from_millis(350));
        for i in 0..b.len() {
            let made = Duration::from_millis(20 * i as u64);
            assert!(b.release(i) >= made && b.release(i) < made + Duration::from_millis(250), "packet {i}");
        }
        assert_eq!(Bursts::delivered_of(500), 490);
    }
}
