//! The send half of a leg: from the media port's inputs to an RTP stream
//! with the negotiated codec, payload type and packet time, plus RFC 4733
//! DTMF from `rtpdtmfsrc` muxed into the same stream.

use crate::codec::opus_decoder::native_rate;
use crate::codec::{Codec, CodecChoice};
use crate::leg::gate::SendGate;
use crate::leg::options::LegOptions;
use crate::leg::port::{sample_sink, InputPad, MediaPort, SendInputs};
use crate::runtime::make;
use crate::Error;
use gst::prelude::*;
use std::sync::{Arc, Mutex};

/// A built send chain. Dropping it does not remove the elements; call
/// [`SendChain::remove`] for that.
pub(crate) struct SendChain {
    pub choice: CodecChoice,
    bin: gst::Bin,
    elements: Vec<gst::Element>,
    raw_path: Arc<RawPath>,
    mux: gst::Element,
    payloader_src: gst::Pad,
    /// Made on the first key press: a live `rtpdtmfsrc` pushes its
    /// telephone-event caps through the mux at once, and webrtcbin would
    /// then answer with telephone-event as the only codec.
    dtmf_src: Mutex<Option<gst::Element>>,
    /// The chain's output: RTP to link into webrtcbin or a [`packet_sink`].
    pub src_pad: gst::Pad,
}

/// An entry into a send chain for RTP packets already in the chain's codec
/// and payload type (relayed from another leg, see [`crate::leg::relay`]). They
/// join the stream at the RTP mux, which gives them the stream's SSRC and
/// sequence numbers, as it does the payloader's packets and DTMF events
/// (which take precedence while a key is pressed).
pub(crate) struct RtpInput {
    pad: InputPad,
    /// The payloader's output, whose caps the packets take once it has any.
    payloader_src: gst::Pad,
    caps: gst::Caps,
}

impl RtpInput {
    /// Pushes one packet on the caller's thread, stamped with its arrival.
    pub fn push(&self, packet: Vec<u8>) {
        let caps = self.payloader_src.current_caps().unwrap_or_else(|| self.caps.clone());
        let mut buffer = gst::Buffer::from_mut_slice(packet);
        buffer.get_mut().expect("a new buffer is writable").set_pts(crate::runtime::now());
        self.pad.push(buffer, &caps);
    }
}

/// Where a send chain's packets leave the pipeline on a leg that sends
/// them itself (the RTP leg's socket, the lean leg's str0m session): an
/// appsink calling `on_packet` with each one, on the thread that made it.
pub(crate) fn packet_sink(on_packet: impl Fn(Vec<u8>) + Send + Sync + 'static) -> gst_app::AppSink {
    sample_sink(move |sample| {
        if let Some(map) = sample.buffer().and_then(|b| b.map_readable().ok()) {
            on_packet(map.to_vec());
        }
    })
}

/// Puts in `slot` a send chain for `choice` linked to `sink`, unless the
/// one there already sends `choice`: a renegotiation that keeps the codec
/// keeps the stream (its SSRC, sequence numbers and timestamps). For the
/// legs whose chains end in a [`packet_sink`]; webrtcbin's leg also moves
/// its relay input when the chain changes.
pub(crate) fn renew(
    slot: &mut Option<SendChain>,
    choice: &CodecChoice,
    bin: &gst::Bin,
    port: &MediaPort,
    options: &LegOptions,
    gate: &SendGate,
    sink: &gst::Pad,
) -> Result<(), Error> {
    if slot.as_ref().is_some_and(|s| s.choice == *choice) {
        return Ok(());
    }
    if let Some(old) = slot.take() {
        old.remove();
    }
    let chain = build(bin, port, choice, options, gate)?;
    chain.src_pad.link(sink)?;
    *slot = Some(chain);
    Ok(())
}

/// Builds, in `bin`:
/// ```text
/// (raw input pad) [audioresample ! caps] ! encoder --\
///                                                     funnel ! payloader ! [gate] ! rtpdtmfmux ! src_pad
/// (encoded input pad) -------------------------------/        rtpdtmfsrc --^
/// ```
/// Raw input is S16LE mono (what the port hands out, and what mixers,
/// players and the silence filler make), the format every encoder takes:
/// no audioconvert. The resampler is made only when audio comes at a rate
/// the encoder does not take (see [`RawPath`]).
pub(crate) fn build(
    bin: &gst::Bin,
    port: &MediaPort,
    choice: &CodecChoice,
    options: &LegOptions,
    gate: &SendGate,
) -> Result<SendChain, Error> {
    let codec = choice.codec;
    let encoder = make(codec.encoder())?;
    configure_encoder(&encoder, codec, choice.ptime, options);
    let funnel = make("funnel")?;
    let payloader = make(codec.payloader())?;
    payloader.set_property("pt", choice.payload_type as u32);
    configure_ptime(&payloader, codec, choice.ptime);
    let mux = make("rtpdtmfmux")?;

    let elements: Vec<gst::Element> = vec![encoder.clone(), funnel.clone(), payloader.clone(), mux.clone()];
    bin.add_many(&elements)?;
    encoder.link(&funnel)?;
    funnel.link(&payloader)?;
    let encoder_sink = encoder.static_pad("sink").expect("encoders have a sink pad");
    let raw_path = Arc::new(RawPath {
        bin: bin.clone(),
        codec,
        encoder_sink: encoder_sink.clone(),
        resampler: Mutex::new(Resampler::NotNeeded),
    });
    let path = raw_path.clone();
    let raw_in = InputPad::relinking("raw_in", &encoder_sink, move |pad, caps| path.route(pad, caps))?;
    clear_discont(raw_in.pad());
    let encoded_in = InputPad::new(
        "encoded_in",
        &funnel.request_pad_simple("sink_%u").ok_or(Error::Pipeline("funnel pad".into()))?,
    )?;
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
        raw_path,
        src_pad: mux.static_pad("src").unwrap(),
        payloader_src: payloader.static_pad("src").unwrap(),
        mux,
        dtmf_src: Default::default(),
    })
}

/// The raw input's way into the encoder. Audio at a rate the encoder takes
/// goes straight in: a link from a G.711 leg to an Opus leg, or from an Opus
/// leg decoding at 8 kHz for a G.711 one, and the silence filler at the
/// codec's rate, need no resampler (an element, its converter and filter
/// state: about 10 KB a chain). The first audio at another rate puts
/// `audioresample` (aligned, see [`align_resampler_output`]) in front of
/// the encoder, kept for the chain's life.
struct RawPath {
    bin: gst::Bin,
    codec: Codec,
    encoder_sink: gst::Pad,
    resampler: Mutex<Resampler>,
}

enum Resampler {
    NotNeeded,
    Made(Vec<gst::Element>),
    /// The chain is being taken out: nothing more is made for it.
    Removed,
}

impl RawPath {
    /// Called by the raw input with new caps before it sends them.
    fn route(&self, input: &gst::Pad, caps: &gst::Caps) {
        let rate = caps.structure(0).and_then(|s| s.get::<i32>("rate").ok()).unwrap_or(0) as u32;
        if encodes_at(self.codec, rate) {
            return;
        }
        let mut resampler = self.resampler.lock().unwrap();
        if !matches!(*resampler, Resampler::NotNeeded) {
            return;
        }
        match self.put_resampler(input) {
            Ok(elements) => *resampler = Resampler::Made(elements),
            Err(err) => tracing::warn!(%err, rate, codec = ?self.codec, "cannot resample a leg's audio"),
        }
    }

    fn put_resampler(&self, input: &gst::Pad) -> Result<Vec<gst::Element>, Error> {
        let resample = make("audioresample")?;
        align_resampler_output(&resample);
        let mut elements = vec![resample.clone()];
        if let Some(rates) = encoder_rate_filter(self.codec) {
            let caps = make("capsfilter")?;
            caps.set_property("caps", rates);
            elements.push(caps);
        }
        self.bin.add_many(&elements)?;
        gst::Element::link_many(&elements)?;
        for e in &elements {
            e.sync_state_with_parent()?;
        }
        input.unlink(&self.encoder_sink)?;
        let last = elements.last().expect("the resampler at least");
        last.static_pad("src").expect("a src pad").link(&self.encoder_sink)?;
        input.link(&resample.static_pad("sink").expect("audioresample has a sink pad"))?;
        tracing::debug!(codec = ?self.codec, "resampling a leg's audio");
        Ok(elements)
    }

    /// The resampler's elements, if made; none will be made from now on.
    fn take_for_removal(&self) -> Vec<gst::Element> {
        match std::mem::replace(&mut *self.resampler.lock().unwrap(), Resampler::Removed) {
            Resampler::Made(elements) => elements,
            _ => Vec::new(),
        }
    }
}

/// Whether the encoder takes audio at `rate` as it is. Opus takes 8, 12, 16,
/// 24 and 48 kHz natively, so audio is encoded at the rate it comes in at:
/// narrowband audio from a G.711 leg is not resampled to 48 kHz only to be
/// encoded in bands that hold nothing. That costs less than half the CPU
/// (50 against 117 us per 20 ms frame here) and sounds the same; the RTP
/// clock stays 48 kHz. The others take their codec's rate.
fn encodes_at(codec: Codec, rate: u32) -> bool {
    match codec {
        Codec::Opus => native_rate(rate) == rate,
        other => other.sample_rate() == rate,
    }
}

/// The rates to resample to, for encoders that would take others.
/// `opusenc` takes only the rates Opus encodes natively (the resampler
/// settles on the nearest), `avenc_g722` only 16 kHz; `mulawenc` and
/// `alawenc` take any rate and would encode it as it is, so G.711 is held
/// to its 8 kHz by a filter.
fn encoder_rate_filter(codec: Codec) -> Option<gst::Caps> {
    match codec {
        Codec::Opus | Codec::G722 => None,
        Codec::Pcmu | Codec::Pcma => {
            Some(gst::Caps::builder("audio/x-raw").field("rate", codec.sample_rate() as i32).build())
        }
    }
}

/// Clears DISCONT on the raw input, as the resampler's alignment does on
/// its input: the encoders and payloaders (which work in whole packets)
/// see the same stream whether a resampler is in front of them or not. The
/// timestamps still say where audio is missing.
fn clear_discont(input: &gst::Pad) {
    input.add_probe(gst::PadProbeType::BUFFER, |_, info| {
        if let Some(buffer) = info.buffer_mut() {
            if buffer.flags().contains(gst::BufferFlags::DISCONT) {
                buffer.make_mut().unset_flags(gst::BufferFlags::DISCONT);
            }
        }
        gst::PadProbeReturn::Ok
    });
}

/// Hides audioresample's lookahead from the encoder's packet framing.
///
/// After every restart (stream start, new caps, a discontinuity) audioresample's
/// first output is short by its filter's lookahead (default quality, 48 ->
/// 8 kHz: 129 of 160 samples; 8 -> 48 kHz: 763 of 960); later outputs are as
/// long as their inputs. The encoders work in whole packets (`rtppcmupay`
/// 20 ms, `opusenc` 20 ms frames), so every packet then waited for the next
/// packet's input to arrive: 20 ms added to each transcoded direction.
/// Padding that first output with the missing samples of silence lines the
/// packets up with the input again: a packet leaves as soon as its input has
/// arrived, late only by the filter's own lookahead (about 4 ms).
///
/// The alignment must survive the stream's life, so the filter is not let
/// restart mid-stream: audioresample restarts on a DISCONT buffer (every
/// lost packet gives one) and on a timestamp jump over 1/32 s, draining its
/// tail first as a short buffer of its own, after which the encoders'
/// framing would be off again. So incoming DISCONT flags are cleared, and a
/// timestamp jump is taken out of the input (audioresample sees a continuous
/// stream) and put back on the output, where the encoders resync to it as
/// before. Restarts that still happen (new caps) have their drain dropped
/// and their first output padded, like the stream's start.
fn align_resampler_output(resample: &gst::Element) {
    #[derive(Default)]
    struct State {
        /// What audioresample counts from: the first input's timestamp
        /// since its last restart, and the frames it has taken since.
        t0: Option<gst::ClockTime>,
        samples_in: u64,
        /// Timestamp jumps taken out of the input, put back on the output.
        shift: i64,
        /// Frames and rate of the input buffer being processed, and frames
        /// pushed out for it so far.
        in_frames: u64,
        in_rate: u64,
        out_frames: u64,
        /// An event that makes audioresample drain is being handled.
        draining: bool,
    }
    let state = Arc::new(Mutex::new(State::default()));
    let sink = resample.static_pad("sink").expect("audioresample has a sink pad");
    let src = resample.static_pad("src").expect("audioresample has a src pad");
    let st = state.clone();
    sink.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM | gst::PadProbeType::EVENT_FLUSH, move |pad, info| {
        if let Some(gst::PadProbeData::Event(event)) = &info.data {
            use gst::EventType::*;
            let same_caps = match event.view() {
                gst::EventView::Caps(c) => pad.current_caps().is_some_and(|current| current == *c.caps()),
                _ => false,
            };
            if matches!(event.type_(), Caps | StreamStart | Segment | Eos | FlushStop) && !same_caps {
                // audioresample restarts (draining first unless flushing).
                let mut s = st.lock().unwrap();
                *s = State { shift: 0, draining: true, ..State::default() };
            }
        }
        gst::PadProbeReturn::Ok
    });
    let st = state.clone();
    sink.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
        let layout = pad.current_caps().as_deref().and_then(raw_layout);
        let Some(buffer) = info.buffer_mut() else { return gst::PadProbeReturn::Ok };
        let Some((rate, bpf)) = layout else { return gst::PadProbeReturn::Ok };
        let mut s = st.lock().unwrap();
        let frames = (buffer.size() / bpf) as u64;
        let buffer = buffer.make_mut();
        buffer.unset_flags(gst::BufferFlags::DISCONT);
        if let Some(pts) = buffer.pts() {
            // The timestamp as audioresample is to see it.
            let view = pts.nseconds() as i64 - s.shift;
            let view = match s.t0 {
                None => {
                    s.t0 = Some(gst::ClockTime::from_nseconds(view.max(0) as u64));
                    view
                }
                Some(t0) => {
                    // Where audioresample expects this buffer; 1/32 s off,
                    // it would restart. Half that is taken out.
                    let expected = (t0.nseconds() + s.samples_in * 1_000_000_000 / rate) as i64;
                    let jump = view - expected;
                    if jump.unsigned_abs() > 1_000_000_000 / 64 {
                        s.shift += jump;
                        expected
                    } else {
                        view
                    }
                }
            };
            if s.shift != 0 {
                buffer.set_pts(gst::ClockTime::from_nseconds(view.max(0) as u64));
            }
        }
        s.samples_in += frames;
        s.in_frames = frames;
        s.in_rate = rate;
        s.out_frames = 0;
        s.draining = false;
        gst::PadProbeReturn::Ok
    });
    src.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
        let layout = pad.current_caps().as_deref().and_then(raw_layout);
        let mut s = state.lock().unwrap();
        if s.draining {
            // The tail of the audio before a restart: the next output is
            // padded instead, so the framing stays whole.
            return gst::PadProbeReturn::Drop;
        }
        let Some((rate, bpf)) = layout else { return gst::PadProbeReturn::Ok };
        let Some(gst::PadProbeData::Buffer(buffer)) = info.data.as_mut() else { return gst::PadProbeReturn::Ok };
        let frames = (buffer.size() / bpf) as u64;
        let before = s.out_frames;
        s.out_frames += frames;
        let shift = s.shift;
        let mut missing = 0;
        if buffer.flags().contains(gst::BufferFlags::DISCONT) && s.in_rate != 0 {
            let expected = (s.in_frames * rate + s.in_rate / 2) / s.in_rate;
            missing = expected.saturating_sub(before + frames);
            // Never more than a packet's worth: anything else is not lookahead.
            if missing > rate / 50 {
                missing = 0;
            }
        }
        s.out_frames += missing;
        if missing == 0 && shift == 0 {
            return gst::PadProbeReturn::Ok;
        }
        let pad_ns = missing * 1_000_000_000 / rate;
        let pts = buffer.pts().map(|p| {
            let p = p.nseconds() as i64 + shift - pad_ns as i64;
            gst::ClockTime::from_nseconds(p.max(0) as u64)
        });
        if missing == 0 {
            buffer.make_mut().set_pts(pts);
            return gst::PadProbeReturn::Ok;
        }
        let mut data = vec![0u8; missing as usize * bpf];
        if let Ok(map) = buffer.map_readable() {
            data.extend_from_slice(&map);
        }
        let mut padded = gst::Buffer::from_mut_slice(data);
        {
            let b = padded.get_mut().expect("a new buffer is writable");
            b.set_flags(buffer.flags());
            b.set_pts(pts);
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

/// Plays one DTMF tone on a leg's send chain, `None` until the leg is
/// negotiated. Every leg calls it holding its state's lock, so that tones
/// from concurrent requests do not interleave.
pub(crate) fn dtmf_tone_on(chain: Option<&SendChain>, event: u8, duration: std::time::Duration) -> Result<(), Error> {
    chain.ok_or_else(|| Error::Dtmf("the session is not negotiated yet".into()))?.dtmf_tone(event, duration)
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

    /// A new entry for relayed RTP packets (see [`RtpInput`]).
    pub fn rtp_input(&self) -> Result<RtpInput, Error> {
        let target = self.mux.request_pad_simple("sink_%u").ok_or(Error::Pipeline("rtpdtmfmux pad".into()))?;
        let codec = self.choice.codec;
        Ok(RtpInput {
            pad: InputPad::new("relay_in", &target)?,
            payloader_src: self.payloader_src.clone(),
            caps: crate::codec::rtp_caps(
                codec.sdp_name(),
                codec.clock_rate(),
                self.choice.payload_type,
                codec == Codec::Opus,
            ),
        })
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
        self.elements.extend(self.raw_path.take_for_removal());
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
    use crate::leg::port::{sample_sink, InputPad};

    /// Input buffer `i`: its gap before it (ms beyond the usual 20) and
    /// whether it is flagged DISCONT, as after a lost packet.
    const PATTERN: &[(usize, u64, bool)] = &[(6, 20, true), (10, 100, false), (15, 60, true)];

    /// Pushes twenty-four 20 ms buffers at `from` Hz through an aligned
    /// audioresample and then `tail` (a gst-launch description), with the
    /// gaps and discontinuities of [`PATTERN`]; returns, after each push, how
    /// many buffers and bytes have come out of the tail.
    fn outputs_after_each_push(from: u32, tail: &str) -> Vec<(u64, u64)> {
        outputs_after_each_push_at(&[from; 24], tail)
    }

    /// 20 ms of a tone at `rate` Hz (S16LE mono), stamped `pts`.
    fn tone_frame(rate: u32, pts: gst::ClockTime, discont: bool) -> gst::Buffer {
        let frames = rate as usize / 50;
        let tone =
            (0..frames).flat_map(|n| (((n as f64 * 0.3).sin() * 8000.0) as i16).to_le_bytes()).collect::<Vec<u8>>();
        let mut buffer = gst::Buffer::from_mut_slice(tone);
        let b = buffer.get_mut().unwrap();
        b.set_pts(pts);
        b.set_duration(gst::ClockTime::from_mseconds(20));
        if discont {
            b.set_flags(gst::BufferFlags::DISCONT);
        }
        buffer
    }

    /// Like [`outputs_after_each_push`], input buffer `i` at `rates[i]` Hz.
    fn outputs_after_each_push_at(rates: &[u32], tail: &str) -> Vec<(u64, u64)> {
        gst::init().unwrap();
        let pipeline = gst::Pipeline::new();
        let resample = make("audioresample").unwrap();
        align_resampler_output(&resample);
        let tail = gst::parse::bin_from_description(tail, true).unwrap();
        let out = Arc::new(Mutex::new((0u64, 0u64)));
        let counted = out.clone();
        let sink = sample_sink(move |sample| {
            let mut c = counted.lock().unwrap();
            c.0 += 1;
            c.1 += sample.buffer().map_or(0, |b| b.size() as u64);
        });
        pipeline.add_many([&resample, tail.upcast_ref(), sink.upcast_ref()]).unwrap();
        gst::Element::link_many([&resample, tail.upcast_ref(), sink.upcast_ref()]).unwrap();
        pipeline.set_state(gst::State::Playing).unwrap();
        let input = InputPad::new("raw_in", &resample.static_pad("sink").unwrap()).unwrap();
        let mut pts = gst::ClockTime::from_seconds(1);
        let mut after = Vec::new();
        for (i, &from) in rates.iter().enumerate() {
            let caps = crate::runtime::raw_caps(from);
            let (gap, discont) = PATTERN.iter().find(|p| p.0 == i).map_or((0, i == 0), |p| (p.1, p.2));
            pts += gst::ClockTime::from_mseconds(gap);
            input.push(tone_frame(from, pts, discont), &caps);
            after.push(*out.lock().unwrap());
            pts += gst::ClockTime::from_mseconds(20);
        }
        pipeline.set_state(gst::State::Null).unwrap();
        after
    }

    /// Each 20 ms of input yields exactly 20 ms of output at once, across
    /// lost packets and timestamp gaps, and never more.
    #[test]
    fn resampled_audio_leaves_with_its_input() {
        for (from, to) in [(48000, 8000), (8000, 48000), (16000, 8000), (8000, 16000), (8000, 8000)] {
            let tail = format!("capsfilter caps=audio/x-raw,rate={to}");
            for (i, (_, bytes)) in outputs_after_each_push(from, &tail).into_iter().enumerate() {
                assert_eq!(bytes / 2, (i as u64 + 1) * to as u64 / 50, "{from} -> {to} Hz: frames out after input {i}");
            }
        }
    }

    /// So a 20 ms packet leaves as soon as its input has arrived, from the
    /// first packet on and after every gap.
    #[test]
    fn encoded_packets_leave_with_their_input() {
        let pcmu = "capsfilter caps=audio/x-raw,rate=8000,channels=1 ! mulawenc perfect-timestamp=true ! rtppcmupay min-ptime=20000000 max-ptime=20000000";
        let opus = "capsfilter caps=audio/x-raw,rate=48000,channels=1 ! opusenc frame-size=20 perfect-timestamp=true ! rtpopuspay";
        for (from, tail) in [(48000, pcmu), (16000, pcmu), (8000, opus), (16000, opus)] {
            for (i, (packets, _)) in outputs_after_each_push(from, tail).into_iter().enumerate() {
                assert_eq!(packets, i as u64 + 1, "{from} Hz into {tail}: packets out after input {i}");
            }
        }
    }

    /// A leg's input changing rate (the silence filler at the codec's rate
    /// taking over from linked audio at another, and handing back) keeps
    /// packets whole: the drain at each change is not let through.
    #[test]
    fn rate_changes_keep_packets_whole() {
        let pcmu = "capsfilter caps=audio/x-raw,rate=8000,channels=1 ! mulawenc perfect-timestamp=true ! rtppcmupay min-ptime=20000000 max-ptime=20000000";
        let rates: Vec<u32> = (0..24).map(|i| if (i / 4) % 2 == 0 { 48000 } else { 8000 }).collect();
        for (i, (packets, _)) in outputs_after_each_push_at(&rates, pcmu).into_iter().enumerate() {
            assert_eq!(packets, i as u64 + 1, "packets out after input {i} ({} Hz)", rates[i]);
        }
    }

    /// Raw input at a rate the encoder takes goes straight in; the first at
    /// another rate gets a resampler in front of the encoder, and a packet
    /// leaves with each 20 ms of input throughout, across the change, lost
    /// packets and gaps.
    #[test]
    fn a_resampler_is_made_only_for_rates_the_encoder_does_not_take() {
        gst::init().unwrap();
        for (codec, payload_type, direct, other) in [(Codec::Pcmu, 0, 8000, 16000), (Codec::Opus, 111, 8000, 44100)] {
            let pipeline = gst::Pipeline::new();
            let port = MediaPort::default();
            let choice = CodecChoice { codec, payload_type, telephone_event: None, ptime: 20 };
            let gate = SendGate::default();
            gate.set_transport_up(true);
            gate.set_may_send(true);
            let chain = build(pipeline.upcast_ref(), &port, &choice, &LegOptions::default(), &gate).unwrap();
            let packets = Arc::new(Mutex::new(0u64));
            let counted = packets.clone();
            let sink = sample_sink(move |_| *counted.lock().unwrap() += 1);
            pipeline.add(&sink).unwrap();
            chain.src_pad.link(&sink.static_pad("sink").unwrap()).unwrap();
            pipeline.set_state(gst::State::Playing).unwrap();
            let resamplers = || {
                pipeline
                    .iterate_elements()
                    .into_iter()
                    .flatten()
                    .filter(|e| e.factory().is_some_and(|f| f.name() == "audioresample"))
                    .count()
            };
            let mut pts = gst::ClockTime::from_seconds(1);
            for i in 0..24usize {
                let rate = if i < 12 { direct } else { other };
                let (gap, discont) = PATTERN.iter().find(|p| p.0 == i % 12).map_or((0, false), |p| (p.1, p.2));
                pts += gst::ClockTime::from_mseconds(gap);
                port.push_raw_buffer(tone_frame(rate, pts, discont), &crate::runtime::raw_caps(rate));
                assert_eq!(
                    *packets.lock().unwrap(),
                    i as u64 + 1,
                    "{codec:?}: packets out after input {i} ({rate} Hz)"
                );
                assert_eq!(resamplers(), usize::from(i >= 12), "{codec:?}: resamplers after input {i} ({rate} Hz)");
                pts += gst::ClockTime::from_mseconds(20);
            }
            pipeline.set_state(gst::State::Null).unwrap();
            chain.remove();
            assert_eq!(resamplers(), 0, "{codec:?}: the resampler leaves with the chain");
        }
    }
}
