//! The receive half of a leg: from an RTP source pad (webrtcbin's, or a
//! pad of ours per payload type, `decode.rs`) to the leg's media port, or to the DTMF detector for
//! telephone-event streams.

use crate::codec::g711::{self, Law};
use crate::codec::opus_decoder::{native_rate, OpusDecoder};
use crate::codec::Codec;
use crate::leg::dtmf::DtmfDetector;
use crate::leg::events::EventHandler;
use crate::leg::port::{port_sink, sample_sink, InputPad, MediaPort, Want};
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

/// `depay ! appsink`: the appsink hands the frames to the port's consumers
/// that want them encoded, and decodes them only while one wants raw audio
/// (see [`RawDecoder`]). One sink, no `tee` and no branch per form: up to
/// five elements fewer per leg than a tee with a decoding branch.
fn attach_audio(bin: &gst::Bin, pad: &gst::Pad, codec: Codec, port: &MediaPort) -> Result<(), Error> {
    let depay = make(codec.depayloader())?;
    let decoder = Mutex::new(RawDecoder::new(bin, codec, port)?);
    let sink_port = port.clone();
    let sink = sample_sink(move |sample| {
        sink_port.deliver(Want::Encoded, sample);
        if sink_port.wanted(Want::Raw) {
            decoder.lock().unwrap().decode(&sink_port, sample);
        }
    });
    bin.add_many([&depay, sink.upcast_ref()])?;
    depay.link(&sink)?;
    depay.sync_state_with_parent()?;
    sink.sync_state_with_parent()?;
    pad.link(&depay.static_pad("sink").unwrap())?;
    port.set_receive_codec(codec);
    Ok(())
}

const G711_RATE: u32 = 8000;

/// Turns a leg's received frames into raw S16LE mono for the port.
enum RawDecoder {
    /// Ours, not `opusdec`: see [`crate::codec::opus_decoder`].
    Opus(OpusState),
    /// By table ([`crate::codec::g711`]), at the codec's 8 kHz.
    G711(Law, gst::Caps),
    /// `avdec_g722`, fed by a pad of ours, into an appsink handing its
    /// output (S16LE mono at 16 kHz, as libavcodec decodes G.722) to the
    /// port's raw consumers.
    Element(InputPad),
}

impl RawDecoder {
    fn new(bin: &gst::Bin, codec: Codec, port: &MediaPort) -> Result<RawDecoder, Error> {
        Ok(match codec {
            Codec::Opus => RawDecoder::Opus(OpusState::default()),
            Codec::Pcmu => RawDecoder::G711(Law::Mu, raw_caps(G711_RATE)),
            Codec::Pcma => RawDecoder::G711(Law::A, raw_caps(G711_RATE)),
            Codec::G722 => {
                let decoder = make("avdec_g722")?;
                let sink = port_sink(port, Want::Raw);
                bin.add_many([&decoder, sink.upcast_ref()])?;
                decoder.link(&sink)?;
                decoder.sync_state_with_parent()?;
                sink.sync_state_with_parent()?;
                RawDecoder::Element(InputPad::new("encoded_in", &decoder.static_pad("sink").unwrap())?)
            }
        })
    }

    fn decode(&mut self, port: &MediaPort, sample: &gst::Sample) {
        match self {
            RawDecoder::Opus(state) => state.decode(port, sample),
            RawDecoder::G711(law, caps) => {
                let Some(buffer) = sample.buffer() else { return };
                let Ok(map) = buffer.map_readable() else { return };
                let pcm = g711::decode(*law, &map);
                deliver(port, pcm, (G711_RATE, caps), buffer.pts(), sample);
            }
            RawDecoder::Element(input) => input.push_sample(sample),
        }
    }
}

/// Decodes Opus frames at the rate the port's raw consumers want. A gap
/// before a frame (lost packets) is concealed by the decoder, up to 120 ms
/// of it. In-band FEC stays off: decoding it holds every packet back until
/// the next one arrives (20 ms more mouth-to-ear, measured by `make bench`).
#[derive(Default)]
struct OpusState {
    /// The decoder and the caps of what it decodes to.
    decoder: Option<(OpusDecoder, gst::Caps)>,
    /// Where the next frame should start.
    next_pts: Option<gst::ClockTime>,
}

impl OpusState {
    fn decode(&mut self, port: &MediaPort, sample: &gst::Sample) {
        let Some(buffer) = sample.buffer() else { return };
        let rate = native_rate(port.raw_rate());
        if self.decoder.as_ref().map(|(d, _)| d.rate()) != Some(rate) {
            match OpusDecoder::new(rate) {
                Ok(d) => self.decoder = Some((d, raw_caps(rate))),
                Err(err) => return tracing::error!(%err, "cannot create an Opus decoder"),
            }
        }
        let (decoder, caps) = self.decoder.as_mut().expect("just made");
        let pts = buffer.pts();
        if let (Some(pts), Some(expected)) = (pts, self.next_pts) {
            let gap = pts.saturating_sub(expected);
            if gap >= gst::ClockTime::from_mseconds(10) && gap <= gst::ClockTime::from_mseconds(120) {
                let lost = (gap.nseconds() * rate as u64 / 1_000_000_000) as usize;
                if let Ok(pcm) = decoder.decode(None, lost) {
                    deliver(port, samples_le(pcm), (rate, caps), Some(expected), sample);
                }
            }
        }
        let Ok(map) = buffer.map_readable() else { return };
        match decoder.decode(Some(&map), 0) {
            Ok(pcm) => {
                let duration = deliver(port, samples_le(pcm), (rate, caps), pts, sample);
                self.next_pts = pts.map(|p| p + duration);
            }
            Err(err) => tracing::debug!(%err, "undecodable Opus frame dropped"),
        }
    }
}

fn samples_le(pcm: &[i16]) -> Vec<u8> {
    pcm.iter().flat_map(|s| s.to_le_bytes()).collect()
}

/// Hands decoded S16LE mono audio at `rate` (`caps`) to the port's raw
/// consumers as a sample on the depayloader's segment; returns its duration.
fn deliver(
    port: &MediaPort,
    pcm: Vec<u8>,
    (rate, caps): (u32, &gst::Caps),
    pts: Option<gst::ClockTime>,
    encoded: &gst::Sample,
) -> gst::ClockTime {
    let duration = gst::ClockTime::from_nseconds(pcm.len() as u64 / 2 * 1_000_000_000 / rate as u64);
    let mut buffer = gst::Buffer::from_mut_slice(pcm);
    {
        let b = buffer.get_mut().expect("a new buffer is writable");
        b.set_pts(pts);
        b.set_duration(duration);
    }
    let mut sample = gst::Sample::builder().buffer(&buffer).caps(caps);
    if let Some(segment) = encoded.segment() {
        sample = sample.segment(segment);
    }
    port.deliver(Want::Raw, &sample.build());
    duration
}
