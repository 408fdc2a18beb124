//! A room member's playout queue: decoded samples in, one frame per mixer
//! tick out.
//!
//! The member's jitter buffer passes in-order packets on at once, so a
//! phone that holds its packets back and then sends them together reaches
//! the room as bursts. Cutting the queue back whenever it is deep would
//! throw those bursts away (half of a bursty member's audio was lost that
//! way). Instead the queue lets its depth grow to whatever the bursts
//! need, and only takes out delay that stands: when the shallowest the
//! queue has been over a whole window is still above the target, the
//! excess is dropped once. A member whose clock runs fast is therefore
//! trimmed back within a window or two, while bursts are played whole. A
//! hard cap bounds memory and delay whatever the sender does.

use std::collections::VecDeque;

/// Mixer ticks (of one frame each) over which the shallowest depth is taken.
const WINDOW_TICKS: u32 = 100;
/// Standing delay kept, in frames, above the member's largest packet.
const TARGET_FRAMES: usize = 2;
/// No member holds more than this many frames (1 s at 20 ms frames).
const MAX_FRAMES: usize = 50;

pub(crate) struct Playout {
    samples: VecDeque<i16>,
    frame: usize,
    /// Largest chunk pushed at once: some peers send 100 ms and more per packet.
    largest_chunk: usize,
    /// Shallowest depth seen after a take in this window.
    shallowest: usize,
    ticks: u32,
}

impl Playout {
    /// A queue handing out frames of `frame` samples.
    pub(crate) fn new(frame: usize) -> Playout {
        Playout { samples: VecDeque::new(), frame, largest_chunk: 0, shallowest: usize::MAX, ticks: 0 }
    }

    /// Queues decoded samples, dropping the oldest beyond the hard cap.
    pub(crate) fn push(&mut self, chunk: impl ExactSizeIterator<Item = i16>) {
        self.largest_chunk = self.largest_chunk.max(chunk.len());
        self.samples.extend(chunk);
        let cap = MAX_FRAMES * self.frame;
        if self.samples.len() > cap {
            let excess = self.samples.len() - cap;
            self.samples.drain(..excess);
        }
    }

    /// The next frame (padded with silence when the queue runs dry), and at
    /// the end of each window the standing delay beyond the target let go.
    pub(crate) fn take_frame(&mut self) -> Vec<i32> {
        let take = self.samples.len().min(self.frame);
        let mut frame: Vec<i32> = self.samples.drain(..take).map(i32::from).collect();
        frame.resize(self.frame, 0);
        self.shallowest = self.shallowest.min(self.samples.len());
        self.ticks += 1;
        if self.ticks == WINDOW_TICKS {
            let keep = self.largest_chunk.max(self.frame) + TARGET_FRAMES * self.frame;
            if self.shallowest > keep {
                self.samples.drain(..self.shallowest - keep);
            }
            self.ticks = 0;
            self.shallowest = usize::MAX;
        }
        frame
    }

    #[cfg(test)]
    fn depth(&self) -> usize {
        self.samples.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAME: usize = 160;

    fn chunk(n: usize) -> impl ExactSizeIterator<Item = i16> {
        std::iter::repeat_n(1000i16, n)
    }

    /// Counts the frames that carried audio.
    fn audible(frame: &[i32]) -> usize {
        usize::from(frame.iter().any(|s| *s != 0))
    }

    #[test]
    fn bursts_are_played_whole() {
        let mut queue = Playout::new(FRAME);
        let mut pushed = 0;
        let mut played = 0;
        // 12 packets held for 240 ms and then released at once, 25 times:
        // the average rate is the mixer's.
        for _ in 0..25 {
            for _ in 0..12 {
                queue.push(chunk(FRAME));
                pushed += 1;
            }
            for _ in 0..12 {
                played += audible(&queue.take_frame());
            }
        }
        for _ in 0..20 {
            played += audible(&queue.take_frame());
        }
        assert_eq!(played, pushed);
    }

    #[test]
    fn a_fast_sender_is_trimmed_back_to_the_target() {
        let mut queue = Playout::new(FRAME);
        // Eleven frames for every ten ticks: the standing delay would grow by
        // one frame every 200 ms without trimming.
        for tick in 0..1000 {
            queue.push(chunk(FRAME));
            if tick % 10 == 0 {
                queue.push(chunk(FRAME));
            }
            queue.take_frame();
        }
        let most = (1 + TARGET_FRAMES) * FRAME + WINDOW_TICKS as usize / 10 * FRAME + FRAME;
        assert!(queue.depth() <= most, "depth {} samples after 20 s", queue.depth());
    }

    #[test]
    fn the_hard_cap_bounds_the_depth() {
        let mut queue = Playout::new(FRAME);
        for _ in 0..200 {
            queue.push(chunk(FRAME));
        }
        assert_eq!(queue.depth(), MAX_FRAMES * FRAME);
    }

    #[test]
    fn a_dry_queue_gives_silence() {
        let mut queue = Playout::new(FRAME);
        queue.push(chunk(FRAME / 2));
        let frame = queue.take_frame();
        assert_eq!(frame.len(), FRAME);
        assert_eq!(audible(&frame[FRAME / 2..]), 0);
        assert_eq!(audible(&queue.take_frame()), 0);
    }
}
