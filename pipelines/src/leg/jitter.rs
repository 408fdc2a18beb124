//! Jitter buffers that adapt to the arrival jitter they see.
//!
//! Where a leg's audio is decoded here (transcoding, mixing, recording),
//! rtpbin's jitter buffer puts packets back in order first. In its default
//! mode it pushes a packet as soon as it is next in sequence: its latency
//! is not a playout delay but how long it waits for a missing packet before
//! going on without it, and a packet that arrives after that is dropped.
//! A fixed latency of 40 ms thus threw away every packet that a bursty
//! sender held back longer (a phone or an app that sends 100-250 ms of
//! packets at once), although the decoder could have used all of them.
//!
//! So each jitter buffer measures how late every packet arrives: its
//! transit time (arrival minus media time since the stream's first packet)
//! over the smallest transit seen lately, which is the stream's best case.
//! When that lateness comes within a margin of the latency, the latency is
//! raised above it (up to [`MAX_LATENCY_MS`]). It is not lowered again:
//! while packets arrive in order it costs nothing, and after a loss the
//! packets behind the gap wait at most that long.

use crate::leg::port::MediaPort;
use gst::prelude::*;
use std::sync::Mutex;

/// The most a jitter buffer waits for a missing packet.
const MAX_LATENCY_MS: u32 = 500;
/// Headroom kept above the largest lateness seen.
const MARGIN_MS: i64 = 20;
/// Lateness beyond this is a discontinuity in the sender's timestamps (a
/// restart under the same SSRC), not jitter: measuring starts over.
const DISCONTINUITY_MS: i64 = 2000;
/// The best-case transit is the smallest of the last one or two windows
/// of this length, so a slow drift between the clocks is followed.
const WINDOW_NS: i64 = 10_000_000_000;

/// Makes every jitter buffer `rtpbin` creates adapt its latency, starting
/// from rtpbin's. `port` tells the clock rate of the leg's audio.
pub(crate) fn adapt(rtpbin: &gst::Element, port: &MediaPort) {
    let port = port.clone();
    rtpbin.connect("new-jitterbuffer", false, move |args| {
        if let Ok(jitterbuffer) = args[1].get::<gst::Element>() {
            watch(&jitterbuffer, port.clone());
        }
        None
    });
}

fn watch(jitterbuffer: &gst::Element, port: MediaPort) {
    // A burst must not be cut to the latency's worth of packets either.
    jitterbuffer.set_property("drop-on-latency", false);
    // The first packet goes on at once, not after the latency: waiting for
    // packets before it only delays the call's first audio.
    jitterbuffer.set_property("faststart-min-packets", 1u32);
    let Some(sink) = jitterbuffer.static_pad("sink") else { return };
    let weak = jitterbuffer.downgrade();
    let lateness = Mutex::new(Lateness::default());
    sink.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        let Some(buffer) = info.buffer() else { return gst::PadProbeReturn::Ok };
        let Ok(data) = buffer.map_readable() else { return gst::PadProbeReturn::Ok };
        let (Some(rate), Some(ts)) = (data.get(1).and_then(|b| port.clock_rate_of(b & 0x7f)), rtp_timestamp(&data))
        else {
            return gst::PadProbeReturn::Ok;
        };
        let late_ms = lateness.lock().unwrap().observe(crate::runtime::now().nseconds() as i64, ts, rate).late_ms;
        if let Some(jitterbuffer) = weak.upgrade() {
            if let Some(raised) = raised_latency(jitterbuffer.property::<u32>("latency"), late_ms) {
                jitterbuffer.set_property("latency", raised);
            }
        }
        gst::PadProbeReturn::Ok
    });
}

/// The latency a jitter buffer at `latency` ms must be raised to now that
/// a packet came `late_ms` late, if it must.
pub(crate) fn raised_latency(latency: u32, late_ms: i64) -> Option<u32> {
    if late_ms + MARGIN_MS <= latency as i64 || latency >= MAX_LATENCY_MS {
        return None;
    }
    // Whole packet times of 20 ms, so it is not raised packet by packet.
    let raised = ((late_ms + MARGIN_MS + 19) / 20 * 20).min(MAX_LATENCY_MS as i64) as u32;
    tracing::info!(from = latency, to = raised, late_ms, "packets arrive late: jitter buffer latency raised");
    Some(raised)
}

pub(crate) fn rtp_timestamp(packet: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(packet.get(4..8)?.try_into().ok()?))
}

/// How late packets of one stream arrive, from their arrival times (ns)
/// and RTP timestamps.
#[derive(Default)]
pub(crate) struct Lateness {
    /// Arrival of the first packet, and the last timestamp seen.
    start_ns: i64,
    last_ts: Option<u32>,
    /// Media time since the first packet, in clock ticks (unwrapped).
    media_ticks: i64,
    /// Smallest transit in the current and the previous window.
    best: Option<i64>,
    previous_best: Option<i64>,
    window_start_ns: i64,
}

/// What [`Lateness::observe`] makes of a packet.
pub(crate) struct Observed {
    /// How much later than the best case it came.
    pub late_ms: i64,
    /// When it would have arrived in the best case (ns, on the arrival
    /// clock): its media time on the stream's best-case transit.
    pub on_time_ns: i64,
}

impl Lateness {
    /// Records a packet.
    pub(crate) fn observe(&mut self, arrival_ns: i64, ts: u32, rate: u32) -> Observed {
        match self.last_ts {
            None => {
                *self = Lateness { start_ns: arrival_ns, window_start_ns: arrival_ns, ..Lateness::default() };
            }
            Some(last) => self.media_ticks += ts.wrapping_sub(last) as i32 as i64,
        }
        self.last_ts = Some(ts);
        let transit = arrival_ns - self.start_ns - self.media_ticks * 1_000_000_000 / rate as i64;
        if arrival_ns - self.window_start_ns > WINDOW_NS {
            self.previous_best = self.best.take();
            self.window_start_ns = arrival_ns;
        }
        self.best = Some(self.best.map_or(transit, |b| b.min(transit)));
        let best = self.previous_best.map_or(self.best.unwrap(), |p| p.min(self.best.unwrap()));
        let late_ms = (transit - best) / 1_000_000;
        if late_ms > DISCONTINUITY_MS {
            self.last_ts = None;
            return Observed { late_ms: 0, on_time_ns: arrival_ns };
        }
        Observed { late_ms, on_time_ns: arrival_ns - (transit - best) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: i64 = 1_000_000;

    #[test]
    fn a_held_burst_is_as_late_as_it_was_held() {
        let mut l = Lateness::default();
        // 20 ms packets at 8 kHz; packets 5-14 held until packet 14 is due.
        let mut worst = 0;
        for i in 0..30i64 {
            let due = i * 20 * MS;
            let arrival = if (5..15).contains(&i) { 14 * 20 * MS } else { due };
            let observed = l.observe(1_000 * MS + arrival, 1234 + 160 * i as u32, 8000);
            assert_eq!(observed.on_time_ns, 1_000 * MS + due, "packet {i} stamped with when it was due");
            let late = observed.late_ms;
            worst = worst.max(late);
            if !(5..15).contains(&i) {
                assert_eq!(late, 0, "packet {i} on time");
            }
        }
        assert_eq!(worst, 180, "the first held packet waited 9 packet times");
    }

    #[test]
    fn timestamps_wrap_and_jumps_start_over() {
        let mut l = Lateness::default();
        for i in 0..10i64 {
            let ts = (u32::MAX - 500).wrapping_add(960 * i as u32);
            assert_eq!(l.observe(i * 20 * MS, ts, 48000).late_ms, 0, "packet {i} across the wrap");
        }
        // The sender restarts its timestamps 10 s back: not jitter.
        let restart = (u32::MAX - 500).wrapping_add(960 * 10).wrapping_sub(480_000);
        assert_eq!(l.observe(10 * 20 * MS, restart, 48000).late_ms, 0);
        assert_eq!(l.observe(11 * 20 * MS, restart.wrapping_add(960), 48000).late_ms, 0);
        assert_eq!(l.observe(13 * 20 * MS, restart.wrapping_add(960 * 2), 48000).late_ms, 20, "then measured anew");
    }
}
