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

    fn open(&self) -> bool {
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
    align_resampler_output(&resample);
    let caps = make("capsfilter")?;
    caps.set_property(
        "caps",
        gst::Caps::builder("audio/x-raw").field("rate", codec.sample_rate() as i32).field("channels", 1).build(),
    );
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

/// Hides audioresample's lookahead from the encoder's packet framing.
///
/// After every reset (stream start, new caps, a discontinuity) audioresample's
/// first output is short by its filter's lookahead (default quality, 48 ->
/// 8 kHz: 129 of 160 samples; 8 -> 48 kHz: 763 of 960); later outputs are as
/// long as their inputs. The encoders work in whole packets (`rtppcmupay`
/// 20 ms, `opusenc` 20 ms frames), so every packet then waited for the next
/// packet's input to arrive: 20 ms added to each transcoded direction.
/// Padding that first output with the missing samples of silence lines the
/// packets up with the input again: a packet leaves as soon as its input has
/// arrived, late only by the filter's own lookahead (about 4 ms).
///
/// Padding happens once per reset and only by what the reset cost: when a
/// discontinuity makes audioresample first drain its filter (the tail of the
/// audio before it, pushed in the same call), the drained samples count
/// against the shortfall, so the stream never grows longer than its input.
fn align_resampler_output(resample: &gst::Element) {
    #[derive(Default)]
    struct Tally {
        /// Frames and rate of the input buffer being processed.
        in_frames: u64,
        in_rate: u64,
        /// Frames pushed so far while processing it (a drain comes first).
        out_frames: u64,
    }
    let tally = Arc::new(std::sync::Mutex::new(Tally::default()));
    let sink = resample.static_pad("sink").expect("audioresample has a sink pad");
    let src = resample.static_pad("src").expect("audioresample has a src pad");
    let t = tally.clone();
    sink.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
        if let (Some(buffer), Some((rate, bpf))) = (info.buffer(), pad.current_caps().as_deref().and_then(raw_layout)) {
            *t.lock().unwrap() = Tally { in_frames: (buffer.size() / bpf) as u64, in_rate: rate, out_frames: 0 };
        }
        gst::PadProbeReturn::Ok
    });
    src.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
        let Some((rate, bpf)) = pad.current_caps().as_deref().and_then(raw_layout) else { return gst::PadProbeReturn::Ok };
        let Some(gst::PadProbeData::Buffer(buffer)) = info.data.as_mut() else { return gst::PadProbeReturn::Ok };
        let frames = (buffer.size() / bpf) as u64;
        let mut t = tally.lock().unwrap();
        let before = t.out_frames;
        t.out_frames += frames;
        if !buffer.flags().contains(gst::BufferFlags::DISCONT) || t.in_rate == 0 {
            return gst::PadProbeReturn::Ok;
        }
        let expected = (t.in_frames * rate + t.in_rate / 2) / t.in_rate;
        let missing = expected.saturating_sub(before + frames);
        // Never more than a packet's worth: anything else is not lookahead.
        if missing == 0 || missing > rate / 50 {
            return gst::PadProbeReturn::Ok;
        }
        t.out_frames += missing;
        let pad_ns = missing * 1_000_000_000 / rate;
        let mut data = vec![0u8; missing as usize * bpf];
        if let Ok(map) = buffer.map_readable() {
            data.extend_from_slice(&map);
        }
        let mut padded = gst::Buffer::from_mut_slice(data);
        {
            let b = padded.get_mut().expect("a new buffer is writable");
            b.set_flags(buffer.flags());
            b.set_pts(buffer.pts().map(|p| p.saturating_sub(gst::ClockTime::from_nseconds(pad_ns))));
            b.set_duration(buffer.duration().map(|d| d + gst::ClockTime::from_nseconds(pad_ns)));
        }
        *buffer = padded;
        gst::PadProbeReturn::Ok
    });
}

/// Rate and bytes per frame of raw audio caps whose zero bytes are silence
/// (signed integer and float formats).
fn raw_layout(caps: &gst::CapsRef) -> Option<(u64, usize)> {
    let s = caps.structure(0)?;
    let rate = s.get::<i32>("rate").ok()? as u64;
    let channels = s.get::<i32>("channels").ok()? as usize;
    let width = match s.get::<&str>("format").ok()? {
        "S16LE" | "S16BE" => 2,
        "S24LE" | "S24BE" => 3,
        "S32LE" | "S32BE" | "F32LE" | "F32BE" | "S24_32LE" | "S24_32BE" => 4,
        "F64LE" | "F64BE" => 8,
        _ => return None,
    };
    (rate > 0 && s.get::<&str>("layout").map_or(true, |l| l == "interleaved")).then_some((rate, width * channels))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::port::InputPad;
    use std::sync::Mutex;

    /// Pushes twenty 20 ms buffers at `from` Hz through an aligned
    /// audioresample to `to` Hz, with a 100 ms timestamp gap (which makes
    /// audioresample drain and restart) after buffer `gap_after`; returns
    /// the frames out so far after each push.
    fn frames_out_after_each_push(from: u32, to: u32, gap_after: Option<usize>) -> Vec<u64> {
        gst::init().unwrap();
        let pipeline = gst::Pipeline::new();
        let resample = make("audioresample").unwrap();
        align_resampler_output(&resample);
        let caps = make("capsfilter").unwrap();
        caps.set_property("caps", gst::Caps::builder("audio/x-raw").field("rate", to as i32).build());
        let out = Arc::new(Mutex::new(0u64));
        let counted = out.clone();
        let sink = gst_app::AppSink::builder()
            .sync(false)
            .async_(false)
            .callbacks(
                gst_app::AppSinkCallbacks::builder()
                    .new_sample(move |s| {
                        let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                        *counted.lock().unwrap() += sample.buffer().map_or(0, |b| b.size() as u64 / 2);
                        Ok(gst::FlowSuccess::Ok)
                    })
                    .build(),
            )
            .build();
        pipeline.add_many([&resample, &caps, sink.upcast_ref()]).unwrap();
        gst::Element::link_many([&resample, &caps, sink.upcast_ref()]).unwrap();
        pipeline.set_state(gst::State::Playing).unwrap();
        let input = InputPad::new("raw_in", &resample.static_pad("sink").unwrap()).unwrap();
        let caps = crate::runtime::raw_caps(from);
        let mut pts = gst::ClockTime::from_seconds(1);
        let mut after = Vec::new();
        for i in 0..20 {
            let frames = from as usize / 50;
            let tone = (0..frames).flat_map(|n| (((n as f64 * 0.3).sin() * 8000.0) as i16).to_le_bytes()).collect::<Vec<u8>>();
            let mut buffer = gst::Buffer::from_mut_slice(tone);
            {
                let b = buffer.get_mut().unwrap();
                b.set_pts(pts);
                b.set_duration(gst::ClockTime::from_mseconds(20));
            }
            input.push(buffer, &caps);
            after.push(*out.lock().unwrap());
            pts += gst::ClockTime::from_mseconds(if gap_after == Some(i) { 120 } else { 20 });
        }
        pipeline.set_state(gst::State::Null).unwrap();
        after
    }

    /// Each 20 ms of input yields exactly 20 ms of output at once, so an
    /// encoder that works in 20 ms packets never waits for the next one;
    /// and a restart (drain plus refill) does not make the stream longer.
    #[test]
    fn resampled_packets_leave_with_their_input() {
        for (from, to) in [(48000, 8000), (8000, 48000), (16000, 8000), (8000, 16000), (8000, 8000)] {
            for gap in [None, Some(9)] {
                let per_packet = to as u64 / 50;
                for (i, total) in frames_out_after_each_push(from, to, gap).into_iter().enumerate() {
                    assert_eq!(total, (i as u64 + 1) * per_packet, "{from} -> {to} Hz, gap after {gap:?}: frames out after input {i}");
                }
            }
        }
    }
}
