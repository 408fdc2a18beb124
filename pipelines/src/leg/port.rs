//! The media port of a leg: where its received audio comes out and the
//! audio it should send goes in. Links, recorders and mixers attach here.
//!
//! Audio leaves a port in one of two forms, produced only when someone asks
//! for it: *encoded* frames straight from the depayloader (for passthrough
//! between legs that share a codec) or *raw* S16LE mono samples at the
//! codec's own rate, or for Opus at the lowest rate every consumer can use
//! (for transcoding, mixing, recording). Nothing is decoded
//! while no consumer wants raw audio.

use crate::codec::Codec;
use crate::leg::relay::{self, RelayEnd, RelayFormat};
use gst::prelude::*;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};

/// Which form of audio a consumer wants right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    Raw,
    Encoded,
    Nothing,
}

/// Something that takes the audio a leg receives.
pub trait Consumer: Send + Sync {
    /// Asked per buffer, so the answer may change as negotiation goes on.
    fn wants(&self) -> Want;
    /// A sample in the form `want` (what [`Consumer::wants`] said for it).
    fn take(&self, want: Want, sample: &gst::Sample);
    /// The sample rate this consumer will use raw audio at, if it uses
    /// less than the codec's full rate: decoders need not produce more.
    fn raw_rate(&self) -> Option<u32> {
        None
    }
}

/// The highest rate raw audio is produced at.
const FULL_RATE: u32 = 48000;

#[derive(Clone, Default)]
pub struct MediaPort {
    inner: Arc<PortInner>,
}

#[derive(Default)]
struct PortInner {
    consumers: RwLock<Vec<(u64, Arc<dyn Consumer>)>>,
    next_id: AtomicU64,
    /// What the leg receives and sends, once negotiated.
    codecs: Mutex<(Option<Codec>, Option<Codec>)>,
    /// Where pushed audio enters the send chain, once it exists.
    inputs: Mutex<Option<SendInputs>>,
    /// When audio was last pushed (ms on the filler's clock), see [`filler`].
    last_push_ms: AtomicU64,
    /// Set by legs that can send relayed packets (see [`crate::leg::relay`]);
    /// taken on close: it holds the leg's RTP socket, which must close with
    /// the leg even while something still holds the port (seen: one port
    /// in ~1,000 closed linked pairs with packets in flight outlived its
    /// leg, and with it a socket).
    relay: RwLock<Option<Arc<RelayEnd>>>,
    /// What the leg negotiated, for relaying packets from or to it.
    relay_format: RwLock<Option<RelayFormat>>,
    /// The port this one's received packets are relayed to, if any.
    relay_peer: RwLock<Weak<PortInner>>,
}

/// The two entry points of a leg's send chain.
#[derive(Clone)]
pub(crate) struct SendInputs {
    pub raw: Arc<InputPad>,
    pub encoded: Arc<InputPad>,
}

/// An entry into a leg's send chain: a pad of ours, linked to the chain's
/// first element, through which buffers are pushed on the caller's thread.
/// No queue and no streaming thread of its own: the audio another leg
/// receives is encoded and sent by that leg's receiving thread, one thread
/// hop fewer per packet and two threads fewer per leg than an appsrc.
pub(crate) struct InputPad {
    pad: gst::Pad,
    /// Caps last sent downstream; `None` until the stream has started.
    caps: Mutex<Option<gst::Caps>>,
    /// Called with new caps before they are sent, see [`InputPad::relinking`].
    on_new_caps: Option<NewCapsHook>,
}

type NewCapsHook = Box<dyn Fn(&gst::Pad, &gst::Caps) + Send + Sync>;

impl InputPad {
    pub fn new(name: &str, target: &gst::Pad) -> Result<InputPad, crate::Error> {
        let input = InputPad::unlinked(name)?;
        input.pad.link(target)?;
        Ok(input)
    }

    /// One whose [`InputPad::pad`] the caller links.
    pub fn unlinked(name: &str) -> Result<InputPad, crate::Error> {
        let pad = gst::Pad::builder(gst::PadDirection::Src).name(name).build();
        pad.set_active(true)?;
        Ok(InputPad { pad, caps: Mutex::new(None), on_new_caps: None })
    }

    /// One linked to `target` that calls `on_new_caps` with the pad and
    /// every new caps before sending them, with no push in progress: it may
    /// link the pad elsewhere (the stream's events follow it there).
    pub fn relinking(
        name: &str,
        target: &gst::Pad,
        on_new_caps: impl Fn(&gst::Pad, &gst::Caps) + Send + Sync + 'static,
    ) -> Result<InputPad, crate::Error> {
        let input = InputPad { on_new_caps: Some(Box::new(on_new_caps)), ..InputPad::unlinked(name)? };
        input.pad.link(target)?;
        Ok(input)
    }

    pub fn pad(&self) -> &gst::Pad {
        &self.pad
    }

    /// Pushes one buffer (already on the shared timeline), preceded by the
    /// stream-start, caps and segment events the chain needs first.
    pub fn push(&self, buffer: gst::Buffer, caps: &gst::Caps) {
        // Held across the push: pushes from different threads (a link, then
        // a mixer) must not interleave their events and buffers.
        let mut current = self.caps.lock().unwrap();
        let starting = current.is_none();
        if starting {
            self.pad.push_event(gst::event::StreamStart::new(&format!("{}-{:p}", self.pad.name(), self)));
        }
        if current.as_ref() != Some(caps) {
            if let Some(hook) = &self.on_new_caps {
                hook(&self.pad, caps);
            }
            self.pad.push_event(gst::event::Caps::new(caps));
            *current = Some(caps.clone());
        }
        if starting {
            self.pad.push_event(gst::event::Segment::new(&gst::FormattedSegment::<gst::ClockTime>::new()));
        }
        // Not-linked or flushing means the leg is being torn down.
        let _ = self.pad.push(buffer);
    }

    /// Pushes a sample from another pipeline, its timestamp turned into
    /// running time on the shared timeline.
    pub fn push_sample(&self, sample: &gst::Sample) {
        if let Some((buffer, caps)) = retimed(sample) {
            self.push(buffer, &caps);
        }
    }
}

impl MediaPort {
    pub fn add_consumer(&self, consumer: Arc<dyn Consumer>) -> u64 {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        self.inner.consumers.write().unwrap().push((id, consumer));
        id
    }

    pub fn remove_consumer(&self, id: u64) {
        self.inner.consumers.write().unwrap().retain(|(c, _)| *c != id);
    }

    /// Whether any consumer currently wants this port's audio at all.
    pub(crate) fn has_demand(&self) -> bool {
        self.inner.consumers.read().unwrap().iter().any(|(_, c)| c.wants() != Want::Nothing)
    }

    /// Makes the port a relay target: its leg can send packets relayed to it.
    pub(crate) fn set_relay_end(&self, end: Arc<RelayEnd>) {
        *self.inner.relay.write().unwrap() = Some(end);
    }

    /// What the leg negotiated (`None` before, and once closed).
    pub(crate) fn set_relay_format(&self, format: Option<RelayFormat>) {
        *self.inner.relay_format.write().unwrap() = format;
    }

    /// Relays what this port receives to `to` from now on, if `to`'s leg
    /// can send relayed packets; links and echoes call this.
    pub(crate) fn relay_to(&self, to: &MediaPort) {
        if to.inner.relay.read().unwrap().is_some() {
            *self.inner.relay_peer.write().unwrap() = Arc::downgrade(&to.inner);
        }
    }

    /// Stops relaying to `to` (and only to `to`: another link may have
    /// taken over since).
    pub(crate) fn stop_relay_to(&self, to: &MediaPort) {
        let mut peer = self.inner.relay_peer.write().unwrap();
        if Weak::ptr_eq(&peer, &Arc::downgrade(&to.inner)) {
            *peer = Weak::new();
        }
    }

    /// The clock rate of the leg's audio, if `payload_type` is its audio.
    pub(crate) fn clock_rate_of(&self, payload_type: u8) -> Option<u32> {
        let format = (*self.inner.relay_format.read().unwrap())?;
        (format.payload_type == payload_type).then(|| format.codec.clock_rate())
    }

    /// The packet time the leg sends with, once negotiated.
    pub(crate) fn packet_time_ms(&self) -> Option<u32> {
        self.inner.relay_format.read().unwrap().map(|f| f.ptime)
    }

    /// Whether audio received here reaches `to` by the relay, so that the
    /// link between them has nothing to do.
    pub(crate) fn relays_to(&self, to: &MediaPort) -> bool {
        if !Weak::ptr_eq(&self.inner.relay_peer.read().unwrap(), &Arc::downgrade(&to.inner)) {
            return false;
        }
        let format = |p: &PortInner| *p.relay_format.read().unwrap();
        matches!((format(&self.inner), format(&to.inner)), (Some(from), Some(to)) if from.relays_as(&to))
    }

    /// Relays one received RTP packet, if this port is relayed and the
    /// packet is its negotiated audio. True if it was sent on.
    pub(crate) fn relay(&self, packet: &[u8]) -> bool {
        let Some(own) = *self.inner.relay_format.read().unwrap() else { return false };
        if relay::payload_type(packet) != Some(own.payload_type) {
            return false;
        }
        let Some(peer) = self.inner.relay_peer.read().unwrap().upgrade() else { return false };
        let Some(theirs) = *peer.relay_format.read().unwrap() else { return false };
        let end = peer.relay.read().unwrap().clone();
        let sent = end.is_some_and(|end| end.send(packet, &own, &theirs));
        if sent {
            // Relayed audio counts as audio sent: no silence filling.
            peer.touch();
        }
        sent
    }

    /// The highest rate any consumer wants raw audio at now (48 kHz when
    /// one wants the full rate, or when there is none).
    pub(crate) fn raw_rate(&self) -> u32 {
        let consumers = self.inner.consumers.read().unwrap();
        let wanting = consumers.iter().filter(|(_, c)| c.wants() == Want::Raw);
        wanting.map(|(_, c)| c.raw_rate().unwrap_or(FULL_RATE)).max().unwrap_or(FULL_RATE)
    }

    /// Whether any consumer currently wants audio in this form.
    pub(crate) fn wanted(&self, want: Want) -> bool {
        self.inner.consumers.read().unwrap().iter().any(|(_, c)| c.wants() == want)
    }

    /// Hands a received sample to every consumer that wants its form.
    pub(crate) fn deliver(&self, want: Want, sample: &gst::Sample) {
        let consumers: Vec<Arc<dyn Consumer>> = self
            .inner
            .consumers
            .read()
            .unwrap()
            .iter()
            .filter(|(_, c)| c.wants() == want)
            .map(|(_, c)| c.clone())
            .collect();
        for c in consumers {
            c.take(want, sample);
        }
    }

    /// Codec of the audio this leg receives, once known.
    pub fn receive_codec(&self) -> Option<Codec> {
        self.inner.codecs.lock().unwrap().0
    }

    /// Codec this leg sends, once negotiated.
    pub fn send_codec(&self) -> Option<Codec> {
        self.inner.codecs.lock().unwrap().1
    }

    pub(crate) fn set_receive_codec(&self, codec: Codec) {
        self.inner.codecs.lock().unwrap().0 = Some(codec);
    }

    pub(crate) fn set_send(&self, codec: Codec, inputs: SendInputs) {
        self.inner.codecs.lock().unwrap().1 = Some(codec);
        let first = self.inner.inputs.lock().unwrap().replace(inputs).is_none();
        if first {
            filler::watch(&self.inner);
        }
    }

    pub(crate) fn clear(&self) {
        self.inner.consumers.write().unwrap().clear();
        *self.inner.inputs.lock().unwrap() = None;
        *self.inner.relay.write().unwrap() = None;
    }

    /// Sends raw audio (S16LE mono, any rate: it is resampled as needed).
    pub fn push_raw(&self, sample: &gst::Sample) {
        self.inner.touch();
        let input = self.inner.inputs.lock().unwrap().as_ref().map(|i| i.raw.clone());
        if let Some(input) = input {
            input.push_sample(sample);
        }
    }

    /// Sends raw audio made by us (mixers, players), already stamped on the
    /// shared timeline.
    pub(crate) fn push_raw_buffer(&self, buffer: gst::Buffer, caps: &gst::Caps) {
        self.inner.touch();
        let input = self.inner.inputs.lock().unwrap().as_ref().map(|i| i.raw.clone());
        if let Some(input) = input {
            input.push(buffer, caps);
        }
    }

    /// Sends frames already encoded with [`MediaPort::send_codec`].
    pub fn push_encoded(&self, sample: &gst::Sample) {
        self.inner.touch();
        let input = self.inner.inputs.lock().unwrap().as_ref().map(|i| i.encoded.clone());
        if let Some(input) = input {
            input.push_sample(sample);
        }
    }
}

impl PortInner {
    fn touch(&self) {
        self.last_push_ms.store(filler::clock_ms(), Ordering::Relaxed);
    }
}

/// Silence for legs nobody is sending audio to (not connected yet, a
/// record-only call, a linked peer on hold): without it the leg sends no RTP
/// at all, and phones and carriers with an RTP timeout hang up, and NAT
/// bindings expire. One thread for the process, every 20 ms; a leg counts as
/// idle after 500 ms without audio (longer than any packet time a peer may
/// use: some send 100 ms and more per packet), so real audio always wins.
mod filler {
    use super::{Ordering, PortInner};
    use crate::runtime::{now, raw_caps};
    use std::sync::{Arc, Mutex, OnceLock, Weak};
    use std::time::{Duration, Instant};

    const TICK: Duration = Duration::from_millis(20);
    const IDLE_MS: u64 = 500;

    pub(super) fn clock_ms() -> u64 {
        static START: OnceLock<Instant> = OnceLock::new();
        START.get_or_init(Instant::now).elapsed().as_millis() as u64
    }

    pub(super) fn watch(port: &Arc<PortInner>) {
        port.touch();
        ports().lock().unwrap().push(Arc::downgrade(port));
    }

    fn ports() -> &'static Mutex<Vec<Weak<PortInner>>> {
        static PORTS: OnceLock<Mutex<Vec<Weak<PortInner>>>> = OnceLock::new();
        PORTS.get_or_init(|| {
            std::thread::Builder::new().name("silence-filler".into()).spawn(run).expect("spawning the silence filler");
            Mutex::default()
        })
    }

    fn run() {
        let mut next = Instant::now();
        loop {
            next += TICK;
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
            if Instant::now() > next + TICK * 5 {
                next = Instant::now();
            }
            let idle: Vec<Arc<PortInner>> = {
                let mut ports = ports().lock().unwrap();
                ports.retain(|p| p.upgrade().is_some_and(|p| p.inputs.lock().unwrap().is_some()));
                let now = clock_ms();
                ports
                    .iter()
                    .filter_map(Weak::upgrade)
                    .filter(|p| now.saturating_sub(p.last_push_ms.load(Ordering::Relaxed)) > IDLE_MS)
                    .collect()
            };
            for port in idle {
                fill(&port);
            }
        }
    }

    /// 20 ms of silence at the send codec's own rate (no resampling).
    fn fill(port: &PortInner) {
        let Some(codec) = port.codecs.lock().unwrap().1 else { return };
        let Some(input) = port.inputs.lock().unwrap().as_ref().map(|i| i.raw.clone()) else { return };
        let rate = codec.sample_rate();
        let samples = (rate as u64 * TICK.as_millis() as u64 / 1000) as usize;
        let mut buffer = gst::Buffer::from_mut_slice(vec![0u8; samples * 2]);
        {
            let b = buffer.get_mut().expect("a new buffer is writable");
            b.set_pts(now());
            b.set_duration(TICK.try_into().ok());
        }
        input.push(buffer, &raw_caps(rate));
    }
}

/// A sample's buffer with its timestamp turned into running time. All
/// pipelines share one clock and base time, so that running time is the
/// same instant in every pipeline.
fn retimed(sample: &gst::Sample) -> Option<(gst::Buffer, gst::Caps)> {
    let (buffer, caps) = (sample.buffer()?, sample.caps()?);
    let running_time =
        sample.segment().and_then(|s| s.downcast_ref::<gst::ClockTime>()).and_then(|s| s.to_running_time(buffer.pts()));
    let mut buffer = buffer.copy();
    {
        let b = buffer.make_mut();
        b.set_pts(running_time);
        b.set_dts(gst::ClockTime::NONE);
    }
    Some((buffer, caps.to_owned()))
}

/// Pushes a sample from another pipeline into an appsrc (recorders, rooms).
pub(crate) fn push(src: &gst_app::AppSrc, sample: &gst::Sample) {
    if let Some((buffer, caps)) = retimed(sample) {
        push_buffer(src, buffer, &caps);
    }
}

pub(crate) fn push_buffer(src: &gst_app::AppSrc, buffer: gst::Buffer, caps: &gst::Caps) {
    if src.caps().as_ref() != Some(caps) {
        src.set_caps(Some(caps));
    }
    let _ = src.push_buffer(buffer);
}

/// An appsink that hands what reaches it to the port's consumers.
pub(crate) fn port_sink(port: &MediaPort, want: Want) -> gst_app::AppSink {
    let port = port.clone();
    sample_sink(move |sample| port.deliver(want, sample))
}

/// An appsink calling `on_sample` on the streaming thread for every sample:
/// no clock sync, and a short leaky queue if the callback falls behind.
pub(crate) fn sample_sink(on_sample: impl Fn(&gst::Sample) + Send + Sync + 'static) -> gst_app::AppSink {
    gst_app::AppSink::builder()
        .sync(false)
        .async_(false)
        .max_buffers(8)
        .drop(true)
        .callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    on_sample(&sample);
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        )
        .build()
}

/// A live appsrc for audio pushed from other pipelines. Leaky with a short
/// queue: if this leg stalls, old audio is dropped rather than delayed.
pub(crate) fn port_src(name: &str) -> gst_app::AppSrc {
    gst_app::AppSrc::builder()
        .name(name)
        .is_live(true)
        .format(gst::Format::Time)
        .do_timestamp(false)
        .max_time(gst::ClockTime::from_mseconds(200))
        .leaky_type(gst_app::AppLeakyType::Downstream)
        .build()
}

#[cfg(test)]
mod tests {
    use super::MediaPort;
    use crate::leg::gate::SendGate;
    use crate::leg::relay::{RelayEnd, RelayOutput};
    use std::sync::Arc;

    #[test]
    fn closing_lets_go_of_the_relay_end_even_while_the_port_is_held() {
        let port = MediaPort::default();
        let end = Arc::new(RelayEnd::new(RelayOutput::Chain(Box::new(|_| true)), SendGate::default()));
        let weak = Arc::downgrade(&end);
        port.set_relay_end(end);
        let still_held = port.clone();
        port.clear();
        assert!(weak.upgrade().is_none(), "the relay end (a leg's RTP socket) outlives the close");
        drop(still_held);
    }
}
