//! The send half of a leg: from the media port's inputs to an RTP stream
//! with the negotiated codec, payload type and packet time, plus RFC 4733
//! DTMF from `rtpdtmfsrc` muxed into the same stream.

use crate::codec::{Codec, CodecChoice};
use crate::leg::LegOptions;
use crate::port::{InputPad, MediaPort, SendInputs};
use crate::runtime::make;
use crate::Error;
use gst::prelude::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A built send chain. Dropping it does not remove the elements; call
/// [`SendChain::remove`] for that.
pub(crate) struct SendChain {
    pub choice: CodecChoice,
    bin: gst::Bin,
    elements: Vec<gst::Element>,
    mux: gst::Element,
    /// Made on the first key press: a live `rtpdtmfsrc` pushes its
    /// telephone-event caps through the mux at once, and webrtcbin would
    /// then answer with telephone-event as the only codec.
    dtmf_src: std::sync::Mutex<Option<gst::Element>>,
    /// The chain's output: RTP to link into webrtcbin or rtpbin.
    pub src_pad: gst::Pad,
}

/// Opens and closes the tap on outgoing RTP: closed until the transport is
/// up (webrtcbin otherwise bursts the backlog when DTLS completes) and while
/// the negotiated direction says we must not send.
#[derive(Clone, Default)]
pub(crate) struct SendGate {
    transport_up: Arc<AtomicBool>,
    may_send: Arc<AtomicBool>,
}

impl SendGate {
    pub fn set_transport_up(&self, up: bool) {
        self.transport_up.store(up, Ordering::Relaxed);
    }

    pub fn set_may_send(&self, may: bool) {
        self.may_send.store(may, Ordering::Relaxed);
    }

    pub fn open(&self) -> bool {
        self.transport_up.load(Ordering::Relaxed) && self.may_send.load(Ordering::Relaxed)
    }
}

/// Builds, in `bin`:
/// ```text
/// (raw input pad) audioconvert ! audioresample ! caps ! encoder --\
///                                                                   funnel ! payloader ! [gate] ! rtpdtmfmux ! src_pad
/// (encoded input pad) --------------------------------------------/        rtpdtmfsrc --^
/// ```
pub(crate) fn build(
    bin: &gst::Bin,
    port: &MediaPort,
    choice: &CodecChoice,
    options: &LegOptions,
    gate: &SendGate,
) -> Result<SendChain, Error> {
    let codec = choice.codec;
    let convert = make("audioconvert")?;
    let resample = make("audioresample")?;
    let caps = make("capsfilter")?;
    caps.set_property("caps", gst::Caps::builder("audio/x-raw").field("rate", encoder_rates(codec)).field("channels", 1).build());
    let encoder = make(codec.encoder())?;
    configure_encoder(&encoder, codec, choice.ptime, options);
    let funnel = make("funnel")?;
    let payloader = make(codec.payloader())?;
    payloader.set_property("pt", choice.payload_type as u32);
    configure_ptime(&payloader, codec, choice.ptime);
    let mux = make("rtpdtmfmux")?;

    let elements: Vec<gst::Element> = vec![convert.clone(), resample, caps, encoder.clone(), funnel.clone(), payloader.clone(), mux.clone()];
    bin.add_many(&elements)?;
    gst::Element::link_many(&elements[0..4])?;
    encoder.link(&funnel)?;
    funnel.link(&payloader)?;
    let raw_in = InputPad::new("raw_in", &convert.static_pad("sink").expect("audioconvert has a sink pad"))?;
    let encoded_in = InputPad::new("encoded_in", &funnel.request_pad_simple("sink_%u").ok_or(Error::Pipeline("funnel pad".into()))?)?;
    payloader.link_pads(Some("src"), &mux, Some("sink_%u"))?;

    let gate = gate.clone();
    payloader.static_pad("src").unwrap().add_probe(gst::PadProbeType::BUFFER, move |_, _| {
        if gate.open() {
            gst::PadProbeReturn::Ok
        } else {
            gst::PadProbeReturn::Drop
        }
    });

    for e in &elements {
        e.sync_state_with_parent()?;
    }
    port.set_receive_codec(codec);
    port.set_send(codec, SendInputs { raw: Arc::new(raw_in), encoded: Arc::new(encoded_in) });
    Ok(SendChain {
        choice: choice.clone(),
        bin: bin.clone(),
        elements,
        src_pad: mux.static_pad("src").unwrap(),
        mux,
        dtmf_src: Default::default(),
    })
}

/// The input rates the encoder is given. Opus takes 8, 12, 16, 24 and
/// 48 kHz natively, so audio is encoded at the rate it comes in at (the
/// resampler passes it through): narrowband audio from a G.711 leg is not
/// resampled to 48 kHz only to be encoded in bands that hold nothing. That
/// costs less than half the CPU (50 against 117 us per 20 ms frame here)
/// and sounds the same; the RTP clock stays 48 kHz. Anything else is
/// resampled to 48 kHz, the first choice.
fn encoder_rates(codec: Codec) -> gst::List {
    match codec {
        Codec::Opus => gst::List::new([48000i32, 24000, 16000, 12000, 8000]),
        other => gst::List::new([other.sample_rate() as i32]),
    }
}

fn configure_encoder(encoder: &gst::Element, codec: Codec, ptime: u32, options: &LegOptions) {
    // Timestamps from the sample count, not from arrival times: the RTP
    // timestamps derive from them, and jitter there makes the far side's
    // jitter buffer insert and drop samples (audible clicks, detuned tones).
    encoder.set_property("perfect-timestamp", true);
    if codec == Codec::Opus {
        encoder.set_property("bitrate", options.opus_bitrate as i32);
        encoder.set_property_from_str("audio-type", "voice");
        encoder.set_property("complexity", options.opus_complexity as i32);
        encoder.set_property("inband-fec", true);
        encoder.set_property("packet-loss-percentage", 5i32);
        let frame = match ptime {
            10 | 20 | 40 | 60 => ptime,
            _ => 20,
        };
        encoder.set_property_from_str("frame-size", &frame.to_string());
    }
}

/// G.711 and G.722 payloaders pack as many samples as fit the packet time;
/// pin it to what was negotiated (SIPp's sample pcap uses 30 ms, most use 20).
fn configure_ptime(payloader: &gst::Element, codec: Codec, ptime: u32) {
    if codec != Codec::Opus {
        let ns = gst::ClockTime::from_mseconds(ptime as u64).nseconds() as i64;
        payloader.set_property("min-ptime", ns);
        payloader.set_property("max-ptime", ns);
    }
}

impl SendChain {
    /// Plays one DTMF tone as RFC 4733 events for `duration`.
    pub fn dtmf_tone(&self, event: u8, duration: std::time::Duration) -> Result<(), Error> {
        let src = self.dtmf_source()?;
        let start = gst::Structure::builder("dtmf-event")
            .field("type", 1i32)
            .field("number", event as i32)
            .field("volume", 10i32)
            .field("start", true)
            .build();
        // Sent into rtpdtmfsrc's source pad, as if from downstream: the
        // element-level send_event of a base source does not pass custom
        // upstream events on.
        let pad = src.static_pad("src").expect("rtpdtmfsrc has a src pad");
        pad.send_event(gst::event::CustomUpstream::new(start));
        std::thread::sleep(duration);
        let stop = gst::Structure::builder("dtmf-event").field("type", 1i32).field("start", false).build();
        pad.send_event(gst::event::CustomUpstream::new(stop));
        Ok(())
    }

    fn dtmf_source(&self) -> Result<gst::Element, Error> {
        let Some((pt, rate)) = self.choice.telephone_event else {
            return Err(Error::Dtmf("the peer did not negotiate telephone-event".into()));
        };
        let mut slot = self.dtmf_src.lock().unwrap();
        if let Some(src) = slot.as_ref() {
            return Ok(src.clone());
        }
        let dtmf = make("rtpdtmfsrc")?;
        dtmf.set_property("pt", pt as u32);
        dtmf.set_property("clock-rate", rate);
        self.bin.add(&dtmf)?;
        dtmf.link_pads(Some("src"), &self.mux, Some("priority_sink_%u"))?;
        dtmf.sync_state_with_parent()?;
        *slot = Some(dtmf.clone());
        Ok(dtmf)
    }

    /// Takes the chain out of its bin (on renegotiation to another codec).
    pub fn remove(mut self) {
        if let Some(dtmf) = self.dtmf_src.lock().unwrap().take() {
            self.elements.push(dtmf);
        }
        if let Some(peer) = self.src_pad.peer() {
            let _ = self.src_pad.unlink(&peer);
            if let Some(parent) = peer.parent_element() {
                if peer.pad_template().is_some_and(|t| t.presence() == gst::PadPresence::Request) {
                    parent.release_request_pad(&peer);
                }
            }
        }
        for e in &self.elements {
            let _ = e.set_state(gst::State::Null);
        }
        let _ = self.bin.remove_many(&self.elements);
    }
}
