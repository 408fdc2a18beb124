//! A mixing room: everyone hears everyone but themselves (mix-minus).
//!
//! One sum per frame and one subtraction per participant, so a room's cost
//! grows linearly with its size (N mixers of N-1 inputs grow as N²). Each
//! participant's decoded audio is resampled to the room rate in the room's
//! pipeline and queued (`playout.rs`: bursts are kept and played whole,
//! only standing delay is trimmed); a mixer thread wakes every 20 ms on an
//! absolute schedule, takes one frame from each queue (silence for a
//! participant whose packets stall, so nobody else waits), and hands each
//! participant the sum minus its own frame.
//!
//! ```text
//! leg port (raw) -> appsrc ! audioconvert ! audioresample ! caps(rate) ! appsink -> queue
//! mixer thread: sum of queues; to each leg: sum - own frame; to recorders: sum
//! ```

use super::playout::Playout;
use crate::file::recorder::{RecordFormat, Recorder, RecorderInner};
use crate::leg::port::{port_src, push, Consumer, MediaPort, Want};
use crate::runtime::{make, new_pipeline, now, raw_caps};
use crate::Error;
use gst::prelude::*;
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// Mixing period: one frame per participant per tick.
const FRAME: Duration = Duration::from_millis(20);
/// What a member's feed holds before dropping: the playout queue's cap
/// (`playout.rs`, 1 s).
const MAX_BURST: gst::ClockTime = gst::ClockTime::from_seconds(1);

#[derive(Clone)]
pub struct Room {
    inner: Arc<RoomInner>,
}

struct RoomInner {
    name: String,
    rate: u32,
    pipeline: gst::Pipeline,
    participants: Mutex<HashMap<u64, Participant>>,
    recorders: Mutex<Vec<Weak<RecorderInner>>>,
    next_id: AtomicU64,
    running: AtomicBool,
}

struct Participant {
    port: MediaPort,
    consumer: u64,
    queue: Arc<Mutex<Playout>>,
    muted: bool,
    elements: Vec<gst::Element>,
}

impl Room {
    /// A room mixing at `rate` Hz (16000 is wideband; 48000 keeps Opus
    /// fullband; 8000 suits G.711-only rooms).
    pub fn new(name: &str, rate: u32) -> Result<Room, Error> {
        let pipeline = new_pipeline(&format!("room-{name}"));
        pipeline.set_state(gst::State::Playing)?;
        let inner = Arc::new(RoomInner {
            name: name.to_string(),
            rate,
            pipeline,
            participants: Mutex::default(),
            recorders: Mutex::default(),
            next_id: AtomicU64::new(1),
            running: AtomicBool::new(true),
        });
        let weak = Arc::downgrade(&inner);
        std::thread::Builder::new()
            .name(format!("mix-{name}"))
            .spawn(move || mix_loop(weak))
            .map_err(|e| Error::Pipeline(format!("mixer thread: {e}")))?;
        tracing::info!(room = %name, rate, "room opened");
        Ok(Room { inner })
    }

    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Adds a leg; returns its participant id.
    pub fn join(&self, port: &MediaPort) -> Result<u64, Error> {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let queue = Arc::new(Mutex::new(Playout::new(frame_len(self.inner.rate))));
        let src = port_src(&format!("p{id}"));
        // Bursts are the playout queue's to absorb (up to its cap), not the
        // feed's to drop: a phone holding 250 ms of packets back delivers
        // them at once, stamped with the times they were due.
        src.set_max_time(MAX_BURST);
        let convert = make("audioconvert")?;
        let resample = make("audioresample")?;
        let caps = make("capsfilter")?;
        caps.set_property("caps", raw_caps(self.inner.rate));
        let q = queue.clone();
        let sink = gst_app::AppSink::builder()
            .sync(false)
            .async_(false)
            .callbacks(
                gst_app::AppSinkCallbacks::builder()
                    .new_sample(move |sink| {
                        let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                        if let Some(map) = sample.buffer().and_then(|b| b.map_readable().ok()) {
                            q.lock().unwrap().push(map.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])));
                        }
                        Ok(gst::FlowSuccess::Ok)
                    })
                    .build(),
            )
            .build();
        let elements: Vec<gst::Element> = vec![src.clone().upcast(), convert, resample, caps, sink.upcast()];
        self.inner.pipeline.add_many(&elements)?;
        gst::Element::link_many(&elements)?;
        for e in &elements {
            e.sync_state_with_parent()?;
        }
        let consumer = port.add_consumer(Arc::new(Feed(src)));
        self.inner
            .participants
            .lock()
            .unwrap()
            .insert(id, Participant { port: port.clone(), consumer, queue, muted: false, elements });
        tracing::info!(room = %self.inner.name, participant = id, "joined");
        Ok(id)
    }

    pub fn leave(&self, id: u64) {
        let Some(p) = self.inner.participants.lock().unwrap().remove(&id) else { return };
        p.port.remove_consumer(p.consumer);
        for e in &p.elements {
            let _ = e.set_state(gst::State::Null);
        }
        let _ = self.inner.pipeline.remove_many(&p.elements);
        tracing::info!(room = %self.inner.name, participant = id, "left");
    }

    /// A muted participant still hears the room; the room does not hear it.
    pub fn set_muted(&self, id: u64, muted: bool) {
        if let Some(p) = self.inner.participants.lock().unwrap().get_mut(&id) {
            p.muted = muted;
        }
    }

    pub fn is_muted(&self, id: u64) -> bool {
        self.inner.participants.lock().unwrap().get(&id).is_some_and(|p| p.muted)
    }

    pub fn len(&self) -> usize {
        self.inner.participants.lock().unwrap().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Records the whole mix (everyone, muted participants excepted).
    pub fn record(&self, path: &Path, format: RecordFormat) -> Result<Recorder, Error> {
        let recorder = Recorder::detached(path, format)?;
        self.inner.recorders.lock().unwrap().push(Arc::downgrade(recorder.inner()));
        Ok(recorder)
    }

    /// Stops mixing and lets every participant go.
    pub fn close(&self) {
        let ids: Vec<u64> = self.inner.participants.lock().unwrap().keys().copied().collect();
        for id in ids {
            self.leave(id);
        }
        self.inner.running.store(false, Ordering::Relaxed);
        let _ = self.inner.pipeline.set_state(gst::State::Null);
        crate::runtime::memory::released();
    }
}

impl Drop for RoomInner {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

fn frame_len(rate: u32) -> usize {
    (rate as u64 * FRAME.as_millis() as u64 / 1000) as usize
}

/// Takes a leg's decoded audio into the room's pipeline.
struct Feed(gst_app::AppSrc);

impl Consumer for Feed {
    fn wants(&self) -> Want {
        Want::Raw
    }

    fn take(&self, _: Want, sample: &gst::Sample) {
        push(&self.0, sample);
    }
}

fn mix_loop(room: Weak<RoomInner>) {
    let mut next = Instant::now() + FRAME;
    loop {
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
        next += FRAME;
        let Some(room) = room.upgrade() else { return };
        if !room.running.load(Ordering::Relaxed) {
            return;
        }
        // A tick missed by far (machine stalled): skip ahead, don't burst.
        if Instant::now() > next + FRAME * 5 {
            next = Instant::now() + FRAME;
        }
        mix_once(&room);
    }
}

fn mix_once(room: &RoomInner) {
    let n = frame_len(room.rate);
    let caps = raw_caps(room.rate);
    let pts = now();
    let participants = room.participants.lock().unwrap();
    let mut frames: Vec<(&Participant, Vec<i32>)> = Vec::with_capacity(participants.len());
    let mut sum = vec![0i32; n];
    for p in participants.values() {
        let mut frame = p.queue.lock().unwrap().take_frame();
        if p.muted {
            frame.iter_mut().for_each(|s| *s = 0);
        }
        for (acc, s) in sum.iter_mut().zip(&frame) {
            *acc += *s;
        }
        frames.push((p, frame));
    }
    for (p, own) in &frames {
        let out: Vec<i32> = sum.iter().zip(own).map(|(s, o)| s - o).collect();
        p.port.push_raw_buffer(to_buffer(&out, pts, room.rate), &caps);
    }
    drop(participants);
    let mut recorders = room.recorders.lock().unwrap();
    recorders.retain(|r| r.strong_count() > 0);
    for r in recorders.iter().filter_map(Weak::upgrade) {
        r.push_buffer(to_buffer(&sum, pts, room.rate), &caps);
    }
}

fn to_buffer(samples: &[i32], pts: gst::ClockTime, rate: u32) -> gst::Buffer {
    let bytes: Vec<u8> =
        samples.iter().flat_map(|s| ((*s).clamp(i16::MIN as i32, i16::MAX as i32) as i16).to_le_bytes()).collect();
    let mut buffer = gst::Buffer::from_mut_slice(bytes);
    {
        let b = buffer.get_mut().unwrap();
        b.set_pts(pts);
        b.set_duration(gst::ClockTime::from_nseconds(samples.len() as u64 * 1_000_000_000 / rate as u64));
    }
    buffer
}
