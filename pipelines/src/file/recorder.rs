//! Recording to a file: what a leg receives, or a room's mix.
//!
//! ```text
//! appsrc ! audioconvert ! audioresample ! [wavenc | opusenc ! oggmux] ! filesink
//! ```
//! Stopping sends end-of-stream and waits for it to reach the file, so the
//! WAV header carries the right sizes and the Ogg stream is closed: the file
//! is playable even when the process is shutting down mid-call.

use crate::leg::port::{push, Consumer, MediaPort, Want};
use crate::runtime::{make, new_pipeline};
use crate::Error;
use gst::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordFormat {
    /// 16-bit PCM WAV at the source's rate.
    Wav,
    /// Opus in Ogg, 48 kHz.
    OggOpus,
}

impl RecordFormat {
    /// From the file name: `.wav`, or `.ogg`/`.opus`.
    pub fn from_path(path: &Path) -> Result<RecordFormat, Error> {
        match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
            Some("wav") => Ok(RecordFormat::Wav),
            Some("ogg" | "opus") => Ok(RecordFormat::OggOpus),
            _ => Err(Error::File(format!("{}: record to a .wav, .ogg or .opus file", path.display()))),
        }
    }
}

/// A recording in progress. [`Recorder::stop`] (or dropping it) finishes
/// the file.
pub struct Recorder {
    inner: Arc<RecorderInner>,
    /// The port it listens to, if it records a leg.
    source: Option<(MediaPort, u64)>,
}

pub(crate) struct RecorderInner {
    pipeline: gst::Pipeline,
    src: gst_app::AppSrc,
    path: PathBuf,
    finished: Mutex<bool>,
}

impl Recorder {
    /// Records what `port`'s leg receives.
    pub fn start(port: &MediaPort, path: &Path, format: RecordFormat) -> Result<Recorder, Error> {
        let inner = Arc::new(RecorderInner::new(path, format)?);
        let id = port.add_consumer(Arc::new(Tap(inner.clone())));
        Ok(Recorder { inner, source: Some((port.clone(), id)) })
    }

    /// A recorder fed by the caller (a room's mix).
    pub(crate) fn detached(path: &Path, format: RecordFormat) -> Result<Recorder, Error> {
        Ok(Recorder { inner: Arc::new(RecorderInner::new(path, format)?), source: None })
    }

    pub(crate) fn inner(&self) -> &Arc<RecorderInner> {
        &self.inner
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Finishes the file.
    pub fn stop(mut self) -> Result<(), Error> {
        self.finish()
    }

    fn finish(&mut self) -> Result<(), Error> {
        if let Some((port, id)) = self.source.take() {
            port.remove_consumer(id);
        }
        self.inner.finish()
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        if let Err(err) = self.finish() {
            tracing::warn!(%err, "recording not finished cleanly");
        }
    }
}

impl RecorderInner {
    fn new(path: &Path, format: RecordFormat) -> Result<RecorderInner, Error> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if !dir.is_dir() {
                return Err(Error::File(format!("{}: no such directory", dir.display())));
            }
        }
        let pipeline = new_pipeline("recorder");
        let src = crate::leg::port::port_src("record_in");
        let convert = make("audioconvert")?;
        let resample = make("audioresample")?;
        let sink = make("filesink")?;
        sink.set_property("location", path.to_string_lossy().to_string());
        sink.set_property("sync", false);
        sink.set_property("async", false);
        let mut chain: Vec<gst::Element> = vec![src.clone().upcast(), convert, resample];
        match format {
            RecordFormat::Wav => {
                let caps = make("capsfilter")?;
                caps.set_property(
                    "caps",
                    gst::Caps::builder("audio/x-raw").field("format", "S16LE").field("channels", 1).build(),
                );
                chain.extend([caps, make("wavenc")?]);
            }
            RecordFormat::OggOpus => {
                let caps = make("capsfilter")?;
                caps.set_property(
                    "caps",
                    gst::Caps::builder("audio/x-raw").field("rate", 48000).field("channels", 1).build(),
                );
                chain.extend([caps, make("opusenc")?, make("oggmux")?]);
            }
        }
        chain.push(sink);
        pipeline.add_many(&chain)?;
        gst::Element::link_many(&chain)?;
        pipeline.set_state(gst::State::Playing)?;
        tracing::info!(path = %path.display(), ?format, "recording");
        Ok(RecorderInner { pipeline, src, path: path.to_path_buf(), finished: Mutex::new(false) })
    }

    pub(crate) fn push(&self, sample: &gst::Sample) {
        push(&self.src, sample);
    }

    pub(crate) fn push_buffer(&self, buffer: gst::Buffer, caps: &gst::Caps) {
        crate::leg::port::push_buffer(&self.src, buffer, caps);
    }

    fn finish(&self) -> Result<(), Error> {
        let mut finished = self.finished.lock().unwrap();
        if *finished {
            return Ok(());
        }
        *finished = true;
        let _ = self.src.end_of_stream();
        let bus = self.pipeline.bus().expect("pipelines have a bus");
        let done =
            bus.timed_pop_filtered(gst::ClockTime::from_seconds(5), &[gst::MessageType::Eos, gst::MessageType::Error]);
        let _ = self.pipeline.set_state(gst::State::Null);
        crate::runtime::memory::released();
        match done.as_ref().map(|m| m.view()) {
            Some(gst::MessageView::Eos(_)) => {
                tracing::info!(path = %self.path.display(), "recording finished");
                Ok(())
            }
            Some(gst::MessageView::Error(e)) => Err(Error::File(format!("{}: {}", self.path.display(), e.error()))),
            _ => Err(Error::Timeout("the recording to finish")),
        }
    }
}

/// The port consumer feeding a recorder.
struct Tap(Arc<RecorderInner>);

impl Consumer for Tap {
    fn wants(&self) -> Want {
        Want::Raw
    }

    fn take(&self, _: Want, sample: &gst::Sample) {
        self.0.push(sample);
    }
}
