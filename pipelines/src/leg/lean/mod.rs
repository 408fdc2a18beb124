//! The lean WebRTC leg (opt-in; webrtcbin's `webrtc.rs` is the default):
//! the same contract as the webrtcbin leg, with ICE, DTLS and SRTP done by
//! str0m on the threads every leg shares instead of ten threads of its own.
//!
//! ```text
//! socket --(shared socket thread: str0m decrypts)--> relay to a linked leg (same codec)
//!                                                 \-> leg/decode.rs: in sequence (no thread), per payload type -> receive::attach_as (decode, DTMF)
//! relay from a linked leg --\
//! send chain ! appsink -------> outgoing.rs (one stream) -> str0m (encrypts) -> socket
//! str0m's timers and the jitter buffer's gaps: one task on the process timer for every leg (runtime/ticker.rs)
//! ```
//! Passthrough is socket -> str0m -> relay -> socket on one thread, as
//! between plain RTP legs. What must be decoded (a transcoded call, a
//! recorder, DTMF) is decoded on that thread too (`leg/decode.rs`): the leg
//! has no rtpbin and no thread of its own.
//!
//! `transport.rs` holds the socket and the str0m session, `setup.rs` its
//! configuration and what its negotiation is given, `offer.rs` our offers
//! (the first and every later one), `outgoing.rs` what it sends,
//! `reports.rs` what the peer's receiver reports say about it. ICE runs
//! from one socket per leg (on the first media address): its host
//! candidate (naming the public address instead when one is set, as
//! webrtcbin's leg does), and the server-reflexive and relayed ones
//! `gather.rs` gets from the STUN and TURN servers (`turn.rs`, over UDP
//! or TCP).

mod gather;
mod offer;
mod outgoing;
mod reports;
mod setup;
mod stun;
mod transport;
mod turn;
mod turn_tcp;

use crate::codec::sdp::{Direction, SessionDescription};
use crate::codec::{self, CodecChoice};
use crate::leg::decode::Decoding;
use crate::leg::events::{ConnectionState, EventHandler, LegEvent};
use crate::leg::gate::SendGate;
use crate::leg::ice;
use crate::leg::lifecycle::{close_once, shut_down, watch_bus};
use crate::leg::media_watch::MediaWatch;
use crate::leg::negotiation::{webrtc_audio, DescriptionKind, Negotiation, SessionDescriptionText};
use crate::leg::options::LegOptions;
use crate::leg::port::MediaPort;
use crate::leg::quality::{LegStats, Reception, Sent};
use crate::leg::relay::{RelayEnd, RelayFormat, RelayOutput};
use crate::leg::send::{self, SendChain};
use crate::runtime::new_pipeline;
use crate::runtime::reactor;
use crate::runtime::ticker;
use crate::Error;
use gather::Gatherer;
use gst::prelude::*;
use outgoing::Outgoing;
use reports::PeerReports;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Instant;
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::Candidate;
use transport::{Happening, Transport};
use turn::FromServer;

#[derive(Clone)]
pub struct LeanLeg {
    inner: Arc<Inner>,
}

struct Inner {
    options: LegOptions,
    events: EventHandler,
    pipeline: gst::Pipeline,
    /// Where the send chain's RTP leaves the pipeline for `outgoing`.
    chain_out: gst_app::AppSink,
    transport: Arc<Transport>,
    /// The STUN/TURN servers' candidates and the TURN client.
    gatherer: Gatherer,
    outgoing: Arc<Outgoing>,
    port: MediaPort,
    gate: SendGate,
    /// What received packets are decoded by, when they must be.
    decoding: Decoding,
    may_receive: AtomicBool,
    /// DTLS has completed once: from then on ICE alone says whether we
    /// are connected.
    secured: AtomicBool,
    connected: AtomicBool,
    /// Whether the peer still sends ([`crate::leg::media_watch`]).
    watch: MediaWatch,
    reception: Reception,
    sent: Arc<Sent>,
    /// What the peer's receiver reports say about what we send.
    peer_reports: PeerReports,
    /// The leg's socket (one) being read, as `reactor::register` returns it; cleared on close.
    sockets: Mutex<Vec<reactor::Registration>>,
    state: Mutex<State>,
}

struct State {
    negotiation: Negotiation,
    /// Our offer, until its answer arrives.
    pending: Option<SdpPendingOffer>,
    /// Our answer to the remote offer, made when the offer was set.
    answer: Option<String>,
    /// The direction our offers ask for: sendrecv, or what we answered to
    /// the peer's last offer (a peer that holds us stays held), as
    /// webrtcbin's transceiver keeps it.
    direction: Direction,
    send: Option<SendChain>,
    closed: bool,
}

impl LeanLeg {
    pub fn new(name: &str, options: LegOptions, events: EventHandler) -> Result<LeanLeg, Error> {
        let address =
            *options.media_addresses.first().ok_or_else(|| Error::Bind("no media address configured".into()))?;
        let socket = bind(address, options.rtp_ports)?;
        let reader = socket.try_clone().map_err(|e| Error::Bind(e.to_string()))?;
        let local = socket.local_addr().map_err(|e| Error::Bind(e.to_string()))?;
        let mut rtc = setup::config(&options.codecs).build(Instant::now());
        let candidate =
            Candidate::host(local, "udp").map_err(|e| Error::Bind(format!("ICE candidate {local}: {e}")))?;
        rtc.add_local_candidate(candidate);
        let gatherer = Gatherer::start(&socket, local, &options.ice_servers, options.turn_tls_ca.as_deref())?;
        let transport = Arc::new(Transport::new(rtc, socket, gatherer.turn()).map_err(|e| Error::Bind(e.to_string()))?);
        let sent: Arc<Sent> = Arc::default();
        let outgoing = Arc::new(Outgoing::new(transport.clone(), sent.clone()));

        let pipeline = new_pipeline(name);
        let chain_out = {
            let outgoing = outgoing.clone();
            send::packet_sink(move |packet| {
                outgoing.send(packet);
            })
        };
        pipeline.add(&chain_out)?;

        let gate = SendGate::default();
        let relay_out = outgoing.clone();
        let port = MediaPort::default();
        port.set_relay_end(Arc::new(RelayEnd::new(
            RelayOutput::Chain(Box::new(move |packet| relay_out.send(packet))),
            gate.clone(),
        )));
        let decoding =
            Decoding::new(pipeline.clone().upcast(), port.clone(), events.clone(), options.jitter_latency_ms);
        let watch = MediaWatch::new(options.rtp_timeout_ms, events.clone(), false);
        let leg = LeanLeg {
            inner: Arc::new(Inner {
                options,
                events,
                pipeline,
                chain_out,
                transport,
                gatherer,
                outgoing,
                port,
                gate,
                decoding,
                may_receive: AtomicBool::new(true),
                secured: AtomicBool::new(false),
                connected: AtomicBool::new(false),
                watch,
                reception: Reception::default(),
                sent,
                peer_reports: PeerReports::default(),
                sockets: Mutex::default(),
                state: Mutex::new(State {
                    negotiation: Negotiation::Stable,
                    pending: None,
                    answer: None,
                    direction: Direction::SendRecv,
                    send: None,
                    closed: false,
                }),
            }),
        };
        watch_bus(&leg.inner.pipeline, &leg.inner.events);
        leg.inner.pipeline.set_state(gst::State::Playing)?;
        let weak = Arc::downgrade(&leg.inner);
        let handler: reactor::Handler = Box::new(move |data, source| {
            if let Some(inner) = weak.upgrade() {
                inner.datagram(data, source);
            }
        });
        *leg.inner.sockets.lock().unwrap() =
            reactor::register(vec![(reader, handler)]).map_err(|e| Error::Bind(e.to_string()))?;
        if let Some(turn) = leg.inner.gatherer.turn() {
            let weak = Arc::downgrade(&leg.inner);
            turn.set_data_receiver(Box::new(move |data, peer| {
                if let Some(inner) = weak.upgrade() {
                    inner.relayed(data, peer);
                }
            }));
        }
        let timed: Weak<dyn ticker::Timed> = Arc::downgrade(&leg.inner) as Weak<dyn ticker::Timed>;
        ticker::watch(timed);
        tracing::info!(pipeline = name, %local, "lean WebRTC leg (str0m)");
        (leg.inner.events)(LegEvent::ConnectionStateChange(ConnectionState::New));
        Ok(leg)
    }

    pub fn port(&self) -> &MediaPort {
        &self.inner.port
    }

    pub fn local_description(&self) -> Result<SessionDescriptionText, Error> {
        let mut state = self.inner.state.lock().unwrap();
        if state.closed {
            return Err(Error::Closed);
        }
        match &state.negotiation {
            Negotiation::HaveLocalOffer(sdp) => {
                Ok(SessionDescriptionText { kind: DescriptionKind::Offer, sdp: sdp.clone() })
            }
            Negotiation::HaveRemoteOffer => {
                let sdp = state.answer.take().ok_or(Error::WrongState("no remote offer".into()))?;
                state.negotiation = Negotiation::Stable;
                Ok(SessionDescriptionText { kind: DescriptionKind::Answer, sdp })
            }
            Negotiation::Stable => {
                let (mid, direction) = (self.inner.transport.audio_mid(), state.direction);
                let gathered = self.inner.gatherer.candidates();
                let ((made, mid), happenings) = self.inner.transport.with_rtc(|rtc| {
                    gathered.into_iter().for_each(|c| _ = rtc.add_local_candidate(c));
                    offer::make(rtc, mid, direction)
                });
                self.inner.act(happenings);
                self.inner.transport.set_audio_mid(mid);
                let (offer, pending) = made.ok_or(Error::WrongState("nothing to offer".into()))?;
                let sdp = self.inner.advertised(offer.to_sdp_string());
                state.pending = Some(pending);
                state.negotiation = Negotiation::HaveLocalOffer(sdp.clone());
                Ok(SessionDescriptionText { kind: DescriptionKind::Offer, sdp })
            }
        }
    }

    pub fn set_remote_description(&self, kind: DescriptionKind, text: &str) -> Result<(), Error> {
        let remote = SessionDescription::parse(text)?;
        let media = webrtc_audio(&remote)?;
        let mut state = self.inner.state.lock().unwrap();
        if state.closed {
            return Err(Error::Closed);
        }
        state.negotiation.check_remote(kind)?;
        let direction = remote.direction_of(media).answer(Direction::SendRecv);
        let refused = |e: str0m::RtcError| Error::InvalidSdp(format!("{}: {e}", kind.as_str()));
        match kind {
            DescriptionKind::Offer => {
                let choice = codec::choose(media, &self.inner.options.codecs)?;
                let offer = SdpOffer::from_sdp_string(&setup::narrow_offer(&remote, &choice)?)
                    .map_err(|e| Error::InvalidSdp(format!("offer: {e}")))?;
                let gathered = self.inner.gatherer.candidates();
                let (answer, happenings) = self.inner.transport.with_rtc(|rtc| {
                    gathered.into_iter().for_each(|c| _ = rtc.add_local_candidate(c));
                    rtc.sdp_api().accept_offer(offer)
                });
                self.inner.act(happenings);
                let answer = setup::with_refused_formats(&answer.map_err(refused)?.to_sdp_string(), &remote);
                state.answer = Some(self.inner.advertised(answer));
                self.apply(&mut state, &choice, direction)?;
                state.direction = direction;
                state.negotiation = Negotiation::HaveRemoteOffer;
            }
            DescriptionKind::Answer => {
                let choice = codec::from_answer(&remote)?;
                let answer = SdpAnswer::from_sdp_string(text).map_err(|e| Error::InvalidSdp(format!("answer: {e}")))?;
                let pending = state.pending.take().ok_or(Error::WrongState("no offer of ours is pending".into()))?;
                let (accepted, happenings) =
                    self.inner.transport.with_rtc(|rtc| rtc.sdp_api().accept_answer(pending, answer));
                self.inner.act(happenings);
                accepted.map_err(refused)?;
                self.apply(&mut state, &choice, direction)?;
                state.negotiation = Negotiation::Stable;
            }
        }
        Ok(())
    }

    /// Puts a negotiation into effect: payload types, direction, relay
    /// format, and the send chain (rebuilt if the codec changed).
    fn apply(&self, state: &mut State, choice: &CodecChoice, direction: Direction) -> Result<(), Error> {
        let inner = &self.inner;
        inner.decoding.set_formats(choice);
        inner.gate.set_may_send(direction.sends());
        inner.may_receive.store(direction.receives(), Ordering::Relaxed);
        inner.port.set_relay_format(Some(RelayFormat::of(choice)));
        inner.reception.set_audio(choice.payload_type, choice.codec.clock_rate());
        inner.outgoing.set_clock_rate(choice.codec.clock_rate());
        inner.watch.arm(direction != Direction::SendRecv);
        send::renew(
            &mut state.send,
            choice,
            inner.pipeline.upcast_ref(),
            &inner.port,
            &inner.options,
            &inner.gate,
            &inner.chain_out.static_pad("sink").expect("appsink has a sink pad"),
        )?;
        if !inner.connected.load(Ordering::Relaxed) {
            (inner.events)(LegEvent::ConnectionStateChange(ConnectionState::Connecting));
        }
        Ok(())
    }

    /// A trickled remote candidate (`candidate:...`, with or without `a=`).
    pub fn add_ice_candidate(&self, candidate: &str) -> Result<(), Error> {
        let line = candidate.trim().trim_start_matches("a=");
        if line.is_empty() {
            return Ok(()); // end of candidates
        }
        let candidate =
            Candidate::from_sdp_string(line).map_err(|e| Error::InvalidCandidate(format!("{line:?}: {e}")))?;
        let ((), happenings) = self.inner.transport.with_rtc(|rtc| rtc.add_remote_candidate(candidate));
        self.inner.act(happenings);
        Ok(())
    }

    pub fn dtmf_tone(&self, code: u8, duration: std::time::Duration) -> Result<(), Error> {
        send::dtmf_tone_on(self.inner.state.lock().unwrap().send.as_ref(), code, duration)
    }

    /// What the leg receives and sends (counted as packets pass), and what
    /// the peer's receiver reports say about what it sends.
    pub fn stats(&self) -> LegStats {
        let inner = &self.inner;
        LegStats::counted(
            inner.port.send_codec(),
            &inner.reception,
            &inner.sent,
            inner.peer_reports.stats(),
            inner.options.jitter_latency_ms,
        )
    }

    pub fn close(&self, reason: &str) {
        if !close_once(&mut self.inner.state.lock().unwrap().closed) {
            return;
        }
        self.inner.watch.disarm();
        self.inner.port.set_relay_format(None);
        self.inner.sockets.lock().unwrap().clear();
        self.inner.transport.close();
        self.inner.gatherer.close();
        shut_down(&self.inner.pipeline, &self.inner.port, &self.inner.events, reason);
    }
}

impl Inner {
    /// A datagram on the leg's socket, on a shared socket thread.
    fn datagram(&self, data: &[u8], source: SocketAddr) {
        // SRTCP (RFC 7983 and 5761: RTP version, packet type 192-223):
        // a held peer's sign of life.
        if data.len() > 1 && (128..=191).contains(&data[0]) && (192..=223).contains(&data[1]) {
            self.watch.rtcp();
        }
        match self.gatherer.handle(data, source) {
            FromServer::NotOurs => self.act(self.transport.receive(data, source)),
            FromServer::Handled => {}
            FromServer::Data { peer, data } => self.relayed(data, peer),
        }
    }

    /// What `peer` sent to our relayed address (unwrapped by the TURN client).
    fn relayed(&self, data: &[u8], peer: SocketAddr) {
        if let Some(relayed) = self.transport.relayed() {
            self.act(self.transport.receive_at(data, peer, relayed));
        }
    }

    /// `sdp` with the public address in place of the bound one in host
    /// candidates, when one is set.
    fn advertised(&self, sdp: String) -> String {
        match self.options.public_address {
            Some(public) => ice::advertise_in_description(&sdp, &self.options.media_addresses, public),
            None => sdp,
        }
    }

    /// Acts on what the transport reported, outside its lock.
    fn act(&self, happenings: Vec<Happening>) {
        for happening in happenings {
            match happening {
                Happening::Connected => {
                    self.secured.store(true, Ordering::Relaxed);
                    self.set_connected(true);
                }
                Happening::IceUp if self.secured.load(Ordering::Relaxed) => self.set_connected(true),
                Happening::IceUp => {}
                Happening::Disconnected => self.set_connected(false),
                Happening::Rtp(packet) => self.received(&packet),
                Happening::Stats(stats) => self.peer_reports.update(&stats, self.reception.clock_rate()),
            }
        }
    }

    /// Opens or closes the gate on what we send, reporting the change.
    fn set_connected(&self, up: bool) {
        if self.connected.swap(up, Ordering::Relaxed) == up {
            return;
        }
        self.gate.set_transport_up(up);
        let state = if up { ConnectionState::Connected } else { ConnectionState::Disconnected };
        (self.events)(LegEvent::ConnectionStateChange(state));
    }

    /// A decrypted RTP packet: relayed to a linked leg, and decoded if
    /// anything wants it (telephone-event always does).
    fn received(&self, packet: &[u8]) {
        self.reception.received(packet);
        self.watch.rtp();
        if !self.may_receive.load(Ordering::Relaxed) {
            return;
        }
        if self.port.relay(packet) && !self.port.has_demand() {
            return;
        }
        self.decoding.push(packet);
    }
}

impl ticker::Timed for Inner {
    fn tick(&self, now: Instant) {
        self.gatherer.tick(now);
        let happenings = self.transport.tick(now);
        self.act(happenings);
        self.decoding.expire();
    }
}

/// A UDP socket on `address`, on a port in `range` from a random start so
/// concurrent legs spread out ((0, 0): the kernel picks).
fn bind(address: IpAddr, (low, high): (u16, u16)) -> Result<UdpSocket, Error> {
    if (low, high) == (0, 0) {
        return UdpSocket::bind((address, 0)).map_err(|e| Error::Bind(format!("{address}: {e}")));
    }
    let count = (high.saturating_sub(low) as u32 + 1).max(1);
    let start = crate::runtime::random_u32() % count;
    for i in 0..count {
        let port = low + ((start + i) % count) as u16;
        if let Ok(socket) = UdpSocket::bind((address, port)) {
            return Ok(socket);
        }
    }
    Err(Error::Bind(format!("no free port on {address} in {low}-{high}")))
}
