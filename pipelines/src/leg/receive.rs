//! The receive half of a leg: from an RTP source pad (webrtcbin's or
//! rtpbin's) to the leg's media port, or to the DTMF detector for
//! telephone-event streams.

use crate::codec::opus_decoder::{native_rate, OpusDecoder};
use crate::codec::Codec;
use crate::leg::dtmf::DtmfDetector;
use crate::leg::events::EventHandler;
use crate::leg::port::{gate_on_demand, port_sink, sample_sink, MediaPort, Want};
use crate::runtime::{make, raw_caps};
use crate::Error;
use gst::prelude::*;
use std::sync::Mutex;

/// What a new RTP pad carries, from its caps.
pub(crate) enum Stream {
    Audio(Codec),
    TelephoneEvent,
    Unknown(String),
}

pub(crate) fn classify(caps: &gst::CapsRef) -> Stream {
    let Some(s) = caps.structure(0) else { return Stream::Unknown("no caps".into()) };
    let name = s.get::<&str>("encoding-name").unwrap_or("").to_string();
    let rate = s.get::<i32>("clock-rate").unwrap_or(0) as u32;
    if name.eq_ignore_ascii_case("TELEPHONE-EVENT") {
        return Stream::TelephoneEvent;
    }
    match Codec::from_encoding(&name, rate) {
        Some(c) => Stream::Audio(c),
        None => Stream::Unknown(format!("{name}/{rate}")),
    }
}

/// Links `pad` (RTP of one payload type) into `bin`, according to what it
/// carries. Unknown payloads (comfort noise, RED) are consumed and dropped.
pub(crate) fn attach(bin: &gst::Bin, pad: &gst::Pad, port: &MediaPort, events: &EventHandler) -> Result<(), Error> {
    let caps = pad.current_caps().or_else(|| pad.allowed_caps()).unwrap_or_else(gst::Caps::new_any);
    attach_as(bin, pad, &caps, port, events)
}

/// [`attach`] for a pad that will carry `caps` (one not linked yet has none).
pub(crate) fn attach_as(
    bin: &gst::Bin,
    pad: &gst::Pad,
    caps: &gst::Caps,
    port: &MediaPort,
    events: &EventHandler,
) -> Result<(), Error> {
    match classify(caps) {
        Stream::Audio(codec) => {
            tracing::info!(pipeline = %bin.name(), pad = %pad.name(), ?codec, "receiving audio");
            attach_audio(bin, pad, codec, port)
        }
        Stream::TelephoneEvent => {
            DtmfDetector::install(pad, events.clone());
            attach_fakesink(bin, pad)
        }
        Stream::Unknown(what) => {
            tracing::debug!(%what, "ignoring RTP stream we cannot decode");
            attach_fakesink(bin, pad)
        }
    }
}

fn attach_fakesink(bin: &gst::Bin, pad: &gst::Pad) -> Result<(), Error> {
    let sink = make("fakesink")?;
    sink.set_property("sync", false);
    sink.set_property("async", false);
    bin.add(&sink)?;
    sink.sync_state_with_parent()?;
    pad.link(&sink.static_pad("sink").unwrap())?;
    Ok(())
}

/// `depay ! tee`, then two branches gated by demand:
/// `tee ! appsink` (encoded) and `tee ! decoder ! audioconvert ! caps ! appsink`
/// (raw); Opus is decoded in its appsink instead (see [`opus_raw_sink`]).
fn attach_audio(bin: &gst::Bin, pad: &gst::Pad, codec: Codec, port: &MediaPort) -> Result<(), Error> {
    let depay = make(codec.depayloader())?;
    let tee = make("tee")?;
    tee.set_property("allow-not-linked", true);
    let encoded_sink = port_sink(port, Want::Encoded);
    let mut elements = vec![depay.clone(), tee.clone(), encoded_sink.clone().upcast()];
    let raw_chain = if codec == Codec::Opus {
        vec![opus_raw_sink(port).upcast()]
    } else {
        let raw_caps = make("capsfilter")?;
        raw_caps.set_property(
            "caps",
            gst::Caps::builder("audio/x-raw")
                .field("format", "S16LE")
                .field("channels", 1)
                .field("layout", "interleaved")
                .build(),
        );
        vec![make(codec.decoder())?, make("audioconvert")?, raw_caps, port_sink(port, Want::Raw).upcast()]
    };
    elements.extend(raw_chain.iter().cloned());
    bin.add_many(&elements)?;
    depay.link(&tee)?;
    let encoded_pad = tee.request_pad_simple("src_%u").unwrap();
    gate_on_demand(&encoded_pad, port, Want::Encoded);
    encoded_pad.link(&encoded_sink.static_pad("sink").unwrap())?;
    let raw_pad = tee.request_pad_simple("src_%u").unwrap();
    gate_on_demand(&raw_pad, port, Want::Raw);
    raw_pad.link(&raw_chain[0].static_pad("sink").unwrap())?;
    gst::Element::link_many(&raw_chain)?;
    for e in &elements {
        e.sync_state_with_parent()?;
    }
    pad.link(&depay.static_pad("sink").unwrap())?;
    port.set_receive_codec(codec);
    Ok(())
}

/// An appsink that decodes the Opus frames reaching it (ours, not
/// `opusdec`: see [`crate::codec::opus_decoder`]) at the rate the port's raw
/// consumers want, and hands them the audio. A gap before a frame (lost
/// packets) is concealed by the decoder, up to 120 ms of it. In-band FEC
/// stays off: decoding it holds every packet back until the next one
/// arrives (20 ms more mouth-to-ear, measured by `make bench`).
fn opus_raw_sink(port: &MediaPort) -> gst_app::AppSink {
    let port = port.clone();
    let state = Mutex::new(OpusSinkState { decoder: None, next_pts: None });
    sample_sink(move |sample| state.lock().unwrap().decode(&port, sample))
}

/// The decoder of [`opus_raw_sink`] and where the next frame should start.
struct OpusSinkState {
    decoder: Option<OpusDecoder>,
    next_pts: Option<gst::ClockTime>,
}

impl OpusSinkState {
    fn decode(&mut self, port: &MediaPort, sample: &gst::Sample) {
        let Some(buffer) = sample.buffer() else { return };
        let rate = native_rate(port.raw_rate());
        if self.decoder.as_ref().map(OpusDecoder::rate) != Some(rate) {
            match OpusDecoder::new(rate) {
                Ok(d) => self.decoder = Some(d),
                Err(err) => return tracing::error!(%err, "cannot create an Opus decoder"),
            }
        }
        let decoder = self.decoder.as_mut().expect("just made");
        let pts = buffer.pts();
        if let (Some(pts), Some(expected)) = (pts, self.next_pts) {
            let gap = pts.saturating_sub(expected);
            if gap >= gst::ClockTime::from_mseconds(10) && gap <= gst::ClockTime::from_mseconds(120) {
                let lost = (gap.nseconds() * rate as u64 / 1_000_000_000) as usize;
                if let Ok(pcm) = decoder.decode(None, lost) {
                    deliver(port, pcm, rate, Some(expected), sample);
                }
            }
        }
        let Ok(map) = buffer.map_readable() else { return };
        match decoder.decode(Some(&map), 0) {
            Ok(pcm) => {
                let duration = deliver(port, pcm, rate, pts, sample);
                self.next_pts = pts.map(|p| p + duration);
            }
            Err(err) => tracing::debug!(%err, "undecodable Opus frame dropped"),
        }
    }
}

/// Hands decoded samples to the port's raw consumers as a sample on the
/// depayloader's segment; returns their duration.
fn deliver(
    port: &MediaPort,
    pcm: &[i16],
    rate: u32,
    pts: Option<gst::ClockTime>,
    encoded: &gst::Sample,
) -> gst::ClockTime {
    let duration = gst::ClockTime::from_nseconds(pcm.len() as u64 * 1_000_000_000 / rate as u64);
    let bytes: Vec<u8> = pcm.iter().flat_map(|s| s.to_le_bytes()).collect();
    let mut buffer = gst::Buffer::from_mut_slice(bytes);
    {
        let b = buffer.get_mut().expect("a new buffer is writable");
        b.set_pts(pts);
        b.set_duration(duration);
    }
    let caps = raw_caps(rate);
    let mut sample = gst::Sample::builder().buffer(&buffer).caps(&caps);
    if let Some(segment) = encoded.segment() {
        sample = sample.segment(segment);
    }
    port.deliver(Want::Raw, &sample.build());
    duration
}
