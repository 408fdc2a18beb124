//! Playing a file (WAV, Ogg/Opus, anything decodebin reads) into a leg, in
//! real time.
//!
//! ```text
//! filesrc ! decodebin ! audioconvert ! audioresample ! caps(S16 mono) ! audiobuffersplit ! appsink(sync) -> leg's port
//! ```
//! The player runs on its own timeline (it starts at running time zero, like
//! any file playback, and the appsink paces it by the clock); each buffer is
//! stamped "now" on the shared timeline as it goes to the leg.
//!
//! Buffers are cut to the leg's packet time before the appsink: the clock
//! paces buffers, not packets, and a parser's buffer holds far more than a
//! packet (wavparse reads 4096 bytes, 256 ms at 8 kHz), which the leg's
//! payloader would send as a burst of packets, back to back, with nothing in
//! between until the next buffer is due.

use crate::leg::port::MediaPort;
use crate::runtime::{make, now};
use crate::Error;
use gst::prelude::*;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// The buffer size when the leg has not negotiated yet (the usual packet time).
const DEFAULT_PACKET_TIME_MS: u32 = 20;

pub struct Player {
    pipeline: gst::Pipeline,
}

type OnEnd = Box<dyn FnOnce() + Send>;

impl Player {
    /// Starts playing `path` into `port`. At the end of the file it starts
    /// again if `looped`, else calls `on_end` (also on a decoding error).
    pub fn start(port: &MediaPort, path: &Path, looped: bool, on_end: OnEnd) -> Result<Player, Error> {
        if !path.is_file() {
            return Err(Error::File(format!("{}: no such file", path.display())));
        }
        let pipeline = gst::Pipeline::builder().name("player").build();
        pipeline.use_clock(Some(&gst::SystemClock::obtain()));
        let src = make("filesrc")?;
        src.set_property("location", path.to_string_lossy().to_string());
        let decode = make("decodebin")?;
        let convert = make("audioconvert")?;
        let resample = make("audioresample")?;
        let caps = make("capsfilter")?;
        let split = make("audiobuffersplit")?;
        let packet_time = port.packet_time_ms().unwrap_or(DEFAULT_PACKET_TIME_MS);
        split.set_property("output-buffer-duration", gst::Fraction::new(packet_time as i32, 1000));
        caps.set_property(
            "caps",
            gst::Caps::builder("audio/x-raw")
                .field("format", "S16LE")
                .field("channels", 1)
                .field("layout", "interleaved")
                .build(),
        );
        let port = port.clone();
        let sink = gst_app::AppSink::builder()
            .sync(true)
            .callbacks(
                gst_app::AppSinkCallbacks::builder()
                    .new_sample(move |sink| {
                        let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                        if let (Some(buffer), Some(caps)) = (sample.buffer_owned(), sample.caps_owned()) {
                            let mut buffer = buffer;
                            buffer.make_mut().set_pts(now());
                            port.push_raw_buffer(buffer, &caps);
                        }
                        Ok(gst::FlowSuccess::Ok)
                    })
                    .build(),
            )
            .build();
        pipeline.add_many([&src, &decode, &convert, &resample, &caps, &split, sink.upcast_ref()])?;
        src.link(&decode)?;
        gst::Element::link_many([&convert, &resample, &caps, &split, sink.upcast_ref()])?;
        let convert_sink = convert.static_pad("sink").unwrap();
        decode.connect_pad_added(move |_, pad| {
            let is_audio = pad
                .current_caps()
                .and_then(|c| c.structure(0).map(|s| s.name().starts_with("audio/")))
                .unwrap_or(false);
            if is_audio && !convert_sink.is_linked() {
                let _ = pad.link(&convert_sink);
            }
        });
        watch_end(&pipeline, path, looped, on_end);
        pipeline.set_state(gst::State::Playing)?;
        tracing::info!(path = %path.display(), looped, "playing");
        Ok(Player { pipeline })
    }

    pub fn stop(self) {}
}

impl Drop for Player {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
        crate::runtime::memory::released();
    }
}

/// End of file: seek back to the start (looped) or report the end once.
/// Seeking cannot happen on the streaming thread that posts EOS, so it is
/// done from a short-lived thread.
fn watch_end(pipeline: &gst::Pipeline, path: &Path, looped: bool, on_end: OnEnd) {
    let on_end = Arc::new(Mutex::new(Some(on_end)));
    let weak = pipeline.downgrade();
    let path = path.display().to_string();
    pipeline.bus().expect("pipelines have a bus").set_sync_handler(move |_, msg| {
        let ended = match msg.view() {
            gst::MessageView::Eos(_) => true,
            gst::MessageView::Error(err) => {
                tracing::warn!(%path, error = %err.error(), "cannot play file");
                true
            }
            _ => false,
        };
        if ended {
            if looped && matches!(msg.view(), gst::MessageView::Eos(_)) {
                let weak = weak.clone();
                std::thread::spawn(move || {
                    if let Some(p) = weak.upgrade() {
                        let _ = p.seek_simple(gst::SeekFlags::FLUSH | gst::SeekFlags::KEY_UNIT, gst::ClockTime::ZERO);
                    }
                });
            } else if let Some(f) = on_end.lock().unwrap().take() {
                std::thread::spawn(f);
            }
        }
        gst::BusSyncReply::Drop
    });
}
