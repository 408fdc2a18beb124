//! What a lean WebRTC leg or a plain RTP leg decodes (a transcoded call, a
//! room, a recorder, DTMF): received packets put back in sequence by a
//! jitter buffer with no thread of its own (`leg/reorder.rs`; its gaps are
//! given up on the legs' shared ticker, `runtime/ticker.rs`), then each
//! payload type into a receive chain of its own (`leg/receive.rs`), made at
//! its first packet.
//!
//! No rtpbin: its session and jitter buffer cost three threads per leg and
//! a dozen elements, and neither leg needs its RTCP (str0m does the lean
//! leg's, `rtp_rtcp.rs` the RTP leg's). Packets are decoded on the thread
//! that received them (or the ticker's, for those held behind a gap), as
//! the relay forwards them: no hand-off.

use crate::codec::{self, CodecChoice};
use crate::leg::events::EventHandler;
use crate::leg::port::{InputPad, MediaPort};
use crate::leg::receive;
use crate::leg::reorder::{Released, Reorder};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

pub(crate) struct Decoding {
    bin: gst::Bin,
    port: MediaPort,
    events: EventHandler,
    state: Mutex<State>,
    /// Whether the jitter buffer holds packets behind a gap: the ticker
    /// calls [`Decoding::expire`] on every leg 100 times a second, and a
    /// leg with nothing held must cost it no lock.
    holding: AtomicBool,
}

struct State {
    reorder: Reorder,
    /// The negotiated payload types.
    formats: HashMap<u8, Format>,
    /// Receive chains by payload type, with the caps they were made for.
    chains: HashMap<u8, (gst::Caps, InputPad)>,
    /// Reused for what the jitter buffer lets go on.
    released: Vec<Released>,
}

struct Format {
    caps: gst::Caps,
    /// The audio's clock rate, for its lateness; `None` for telephone-event.
    audio_rate: Option<u32>,
}

impl Decoding {
    pub fn new(bin: gst::Bin, port: MediaPort, events: EventHandler, latency_ms: u32) -> Decoding {
        Decoding {
            bin,
            port,
            events,
            state: Mutex::new(State {
                reorder: Reorder::new(latency_ms),
                formats: HashMap::new(),
                chains: HashMap::new(),
                released: Vec::new(),
            }),
            holding: AtomicBool::new(false),
        }
    }

    /// The payload types negotiated: `choice`'s codec and telephone-event.
    pub fn set_formats(&self, choice: &CodecChoice) {
        let mut state = self.state.lock().unwrap();
        state.formats.clear();
        let rate = choice.codec.clock_rate();
        let opus = choice.codec == codec::Codec::Opus;
        let caps = codec::rtp_caps(choice.codec.sdp_name(), rate, choice.payload_type, opus);
        state.formats.insert(choice.payload_type, Format { caps, audio_rate: Some(rate) });
        if let Some((pt, rate)) = choice.telephone_event {
            let caps = codec::rtp_caps("TELEPHONE-EVENT", rate, pt, false);
            state.formats.insert(pt, Format { caps, audio_rate: None });
        }
    }

    /// A decrypted RTP packet to decode, on the thread that received it.
    pub fn push(&self, packet: &[u8]) {
        let Some(&second) = packet.get(1) else { return };
        let now = crate::runtime::now().nseconds() as i64;
        let mut state = self.state.lock().unwrap();
        let rate = state.formats.get(&(second & 0x7f)).and_then(|f| f.audio_rate);
        let mut released = std::mem::take(&mut state.released);
        state.reorder.push(packet, now, rate, &mut released);
        self.holding.store(state.reorder.holding(), Ordering::Relaxed);
        self.deliver(&mut state, &mut released);
        state.released = released;
    }

    /// Gives up the gaps waited for long enough (on the timer's thread).
    pub fn expire(&self) {
        if !self.holding.load(Ordering::Relaxed) {
            return;
        }
        let now = crate::runtime::now().nseconds() as i64;
        let mut state = self.state.lock().unwrap();
        let mut released = std::mem::take(&mut state.released);
        state.reorder.expire(now, &mut released);
        self.holding.store(state.reorder.holding(), Ordering::Relaxed);
        self.deliver(&mut state, &mut released);
        state.released = released;
    }

    /// Hands `released` to their receive chains, in order, under the lock
    /// (so packets released by the timer and the socket never interleave).
    fn deliver(&self, state: &mut State, released: &mut Vec<Released>) {
        for Released { packet, pts_ns } in released.drain(..) {
            let pt = packet[1] & 0x7f;
            let Some(format) = state.formats.get(&pt) else { continue }; // a stray payload type
            let chain = match state.chains.get(&pt) {
                Some((caps, chain)) if *caps == format.caps => chain,
                _ => {
                    let Some(chain) = self.chain(pt, &format.caps) else { continue };
                    state.chains.insert(pt, (format.caps.clone(), chain));
                    &state.chains[&pt].1
                }
            };
            let mut buffer = gst::Buffer::from_mut_slice(packet);
            buffer
                .get_mut()
                .expect("a new buffer is writable")
                .set_pts(gst::ClockTime::from_nseconds(pts_ns.max(0) as u64));
            chain.push(buffer, &format.caps);
        }
    }

    /// A receive chain for payload type `pt`.
    fn chain(&self, pt: u8, caps: &gst::Caps) -> Option<InputPad> {
        let made = InputPad::unlinked(&format!("rtp_in_{pt}")).and_then(|input| {
            receive::attach_as(&self.bin, input.pad(), caps, &self.port, &self.events).map(|()| input)
        });
        made.map_err(|err| tracing::warn!(%err, pt, "cannot receive WebRTC stream")).ok()
    }
}
