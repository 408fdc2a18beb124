//! How evenly packets arrived: the largest gap between two and the most
//! that arrived within a few milliseconds of each other (a burst). A sender
//! paced at one packet per packet time has a largest gap near the packet
//! time and never more than one or two packets close together.

use std::time::{Duration, Instant};

/// What a burst is: packets arriving within this of the first of them.
pub const BURST_WINDOW: Duration = Duration::from_millis(5);

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pacing {
    pub packets: usize,
    pub largest_gap: Duration,
    /// The most packets that arrived within [`BURST_WINDOW`].
    pub largest_burst: usize,
    /// The share of gaps within half a packet time of the packet time.
    pub on_time: f64,
}

impl Pacing {
    /// From arrival times, in order, of packets of `packet_time`.
    pub fn of(arrivals: &[Instant], packet_time: Duration) -> Pacing {
        let largest_gap = arrivals.windows(2).map(|w| w[1] - w[0]).max().unwrap_or_default();
        let mut largest_burst = arrivals.len().min(1);
        let mut first = 0;
        for (last, t) in arrivals.iter().enumerate() {
            while *t - arrivals[first] > BURST_WINDOW {
                first += 1;
            }
            largest_burst = largest_burst.max(last - first + 1);
        }
        let gaps = arrivals.len().saturating_sub(1);
        let regular = arrivals.windows(2).filter(|w| (w[1] - w[0]).abs_diff(packet_time) <= packet_time / 2).count();
        let on_time = if gaps == 0 { 0.0 } else { regular as f64 / gaps as f64 };
        Pacing { packets: arrivals.len(), largest_gap, largest_burst, on_time }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn even_packets_and_a_burst() {
        let t0 = Instant::now();
        let even: Vec<Instant> = (0..10).map(|i| t0 + Duration::from_millis(20 * i)).collect();
        let p = Pacing::of(&even, Duration::from_millis(20));
        assert_eq!((p.packets, p.largest_gap, p.largest_burst, p.on_time), (10, Duration::from_millis(20), 1, 1.0));
        let mut bursty: Vec<Instant> = (0..13).map(|i| t0 + Duration::from_micros(100 * i)).collect();
        bursty.push(t0 + Duration::from_millis(256));
        let p = Pacing::of(&bursty, Duration::from_millis(20));
        assert_eq!(p.largest_burst, 13);
        assert_eq!(p.on_time, 0.0);
        assert!(p.largest_gap > Duration::from_millis(250));
    }
}
