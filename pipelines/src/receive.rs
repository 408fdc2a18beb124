//! The receive half of a leg: from an RTP source pad (webrtcbin's or
//! rtpbin's) to the leg's media port, or to the DTMF detector for
//! telephone-event streams.

use crate::codec::Codec;
use crate::dtmf::DtmfDetector;
use crate::leg::EventHandler;
use crate::port::{gate_on_demand, port_sink, MediaPort, Want};
use crate::runtime::make;
use crate::Error;
use gst::prelude::*;

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
    match classify(&caps) {
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
/// `tee ! appsink` (encoded) and `tee ! decoder ! audioconvert ! caps ! appsink` (raw).
fn attach_audio(bin: &gst::Bin, pad: &gst::Pad, codec: Codec, port: &MediaPort) -> Result<(), Error> {
    let depay = make(codec.depayloader())?;
    let tee = make("tee")?;
    tee.set_property("allow-not-linked", true);
    let encoded_sink = port_sink(port, Want::Encoded);
    let decoder = make(codec.decoder())?;
    if codec == Codec::Opus {
        // Conceal lost packets with Opus's PLC rather than silence. In-band
        // FEC stays off: decoding it holds every packet back until the next
        // one arrives (20 ms more mouth-to-ear, measured by `make bench`).
        decoder.set_property("use-inband-fec", false);
        decoder.set_property("plc", true);
    }
    let convert = make("audioconvert")?;
    let raw_caps = make("capsfilter")?;
    raw_caps.set_property(
        "caps",
        gst::Caps::builder("audio/x-raw").field("format", "S16LE").field("channels", 1).field("layout", "interleaved").build(),
    );
    let raw_sink = port_sink(port, Want::Raw);
    let elements = [&depay, &tee, encoded_sink.upcast_ref(), &decoder, &convert, &raw_caps, raw_sink.upcast_ref()];
    bin.add_many(elements)?;
    depay.link(&tee)?;
    let encoded_pad = tee.request_pad_simple("src_%u").unwrap();
    gate_on_demand(&encoded_pad, port, Want::Encoded);
    encoded_pad.link(&encoded_sink.static_pad("sink").unwrap())?;
    let raw_pad = tee.request_pad_simple("src_%u").unwrap();
    gate_on_demand(&raw_pad, port, Want::Raw);
    raw_pad.link(&decoder.static_pad("sink").unwrap())?;
    gst::Element::link_many([&decoder, &convert, &raw_caps, raw_sink.upcast_ref()])?;
    for e in elements {
        e.sync_state_with_parent()?;
    }
    pad.link(&depay.static_pad("sink").unwrap())?;
    port.set_receive_codec(codec);
    Ok(())
}
