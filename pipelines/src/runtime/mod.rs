//! What the whole process shares, made once: GStreamer initialisation, the
//! shared clock and base time every pipeline runs on (this file), the few
//! threads that read every RTP leg's sockets (`reactor.rs`), the DTLS
//! certificate every WebRTC leg presents (`dtls.rs`), the thread that
//! hands freed memory back to the system after closes (`memory.rs`), and
//! the one that runs periodic tasks such as RTCP reports (`timer.rs`).
//! One-time costs are paid here at start-up instead of on the first call.
//! Nothing in this folder knows about legs.

pub(crate) mod dtls;
pub(crate) mod log_limit;
pub(crate) mod memory;
pub(crate) mod reactor;
pub(crate) mod ticker;
pub(crate) mod timer;

use crate::Error;
use gst::prelude::*;
use std::sync::OnceLock;

static BASE_TIME: OnceLock<gst::ClockTime> = OnceLock::new();

/// Initialises GStreamer, checks that every element the legs use is
/// installed, and pays the one-time DTLS start-up cost now (webrtcbin's
/// DTLS elements generate a process-wide certificate on first use: ~0.35 s).
pub fn init() -> Result<(), Error> {
    gst::init().map_err(|e| Error::Pipeline(format!("GStreamer init failed: {e}")))?;
    for name in REQUIRED_ELEMENTS {
        if gst::ElementFactory::find(name).is_none() {
            return Err(Error::MissingElement((*name).to_string()));
        }
    }
    crate::runtime::dtls::certificate();
    let _warm = gst::ElementFactory::make("dtlsdec").build();
    base_time();
    Ok(())
}

const REQUIRED_ELEMENTS: &[&str] = &[
    "webrtcbin",
    "rtpbin",
    "appsrc",
    "appsink",
    "funnel",
    "audioconvert",
    "audioresample",
    "capsfilter",
    "audiobuffersplit",
    "fakesink",
    "rtpdtmfsrc",
    "rtpdtmfmux",
    "opusenc",
    "opusdec",
    "rtpopuspay",
    "rtpopusdepay",
    "mulawenc",
    "rtppcmupay",
    "rtppcmudepay",
    "alawenc",
    "rtppcmapay",
    "rtppcmadepay",
    "avenc_g722",
    "avdec_g722",
    "rtpg722pay",
    "rtpg722depay",
    "dtlsdec",
];

/// Every pipeline runs on the system clock with the same base time, so a
/// running time in one pipeline is the same instant in every other: buffers
/// move between legs with their timestamps intact.
fn base_time() -> gst::ClockTime {
    *BASE_TIME.get_or_init(|| gst::SystemClock::obtain().time())
}

/// Now, as a running time on the shared timeline.
pub(crate) fn now() -> gst::ClockTime {
    gst::SystemClock::obtain().time().saturating_sub(base_time())
}

/// Raw mono S16LE caps at `rate`: what mixers and players hand to legs.
pub(crate) fn raw_caps(rate: u32) -> gst::Caps {
    gst::Caps::builder("audio/x-raw")
        .field("format", "S16LE")
        .field("rate", rate as i32)
        .field("channels", 1)
        .field("layout", "interleaved")
        .build()
}

/// A new pipeline sharing the process clock and base time.
pub(crate) fn new_pipeline(name: &str) -> gst::Pipeline {
    let pipeline = gst::Pipeline::builder().name(name).build();
    pipeline.use_clock(Some(&gst::SystemClock::obtain()));
    pipeline.set_start_time(gst::ClockTime::NONE);
    pipeline.set_base_time(base_time());
    pipeline
}

/// Creates an element, naming the missing plugin if it is not installed.
pub(crate) fn make(factory: &str) -> Result<gst::Element, Error> {
    gst::ElementFactory::make(factory).build().map_err(|_| Error::MissingElement(factory.to_string()))
}

/// A random 32-bit number (SSRCs, SDP session ids, port choice), without a
/// dependency on a random-number crate: std's randomly keyed hasher over
/// the current time.
pub(crate) fn random_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos());
    h.finish() as u32
}
