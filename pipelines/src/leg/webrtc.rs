//! The WebRTC leg: `webrtcbin` with one audio transceiver.
//!
//! ```text
//! send chain ! webrtcbin.sink_0        webrtcbin.src_* -> receive::attach
//! (relayed RTP -> the chain's rtpdtmfmux)  (webrtcbin's rtpbin: relayed after its session, before its jitter buffer)
//! ```
//! What webrtcbin needs from us, learned the hard way (docs/architecture.md, "WebRTC leg"):
//! loopback must be added to the ICE agent by hand; the DTLS certificate
//! must be ECDSA for aiortc; outgoing audio is dropped until the connection
//! is up so the far side does not get a burst; webrtcbin's own `clocksync`
//! must not wait on the shared threads that push into it; payload types
//! follow the remote offer, and Opus caps carry `encoding-params=2`.

use crate::codec::sdp::{Direction, SessionDescription};
use crate::codec::{self, Codec, CodecChoice};
use crate::leg::events::{ConnectionState, EventHandler, LegEvent};
use crate::leg::gate::SendGate;
use crate::leg::ice;
use crate::leg::jitter;
use crate::leg::lifecycle::{close_once, shut_down, watch_bus};
use crate::leg::media_watch::MediaWatch;
use crate::leg::negotiation::{webrtc_audio, DescriptionKind, Negotiation, SessionDescriptionText};
use crate::leg::options::LegOptions;
use crate::leg::port::MediaPort;
use crate::leg::quality::{InboundStats, LegStats, OutboundStats, RemoteInboundStats};
use crate::leg::receive;
use crate::leg::relay::{RelayEnd, RelayFormat, RelayOutput};
use crate::leg::send::{self, RtpInput, SendChain};
use crate::runtime::{make, new_pipeline};
use crate::Error;
use gst::prelude::*;
use gst_webrtc::{WebRTCRTPTransceiverDirection, WebRTCSDPType, WebRTCSessionDescription, WebRTCStatsType};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// How long ICE gathering may take before we answer with what we have.
const GATHERING_TIMEOUT: Duration = Duration::from_secs(5);
/// How long after the last host candidate gathering counts as done.
const CANDIDATES_QUIET: Duration = Duration::from_millis(20);
/// How long a webrtcbin promise may take.
const PROMISE_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct WebRtcLeg {
    inner: Arc<Inner>,
}

struct Inner {
    options: LegOptions,
    events: EventHandler,
    pipeline: gst::Pipeline,
    webrtc: gst::Element,
    /// webrtcbin frees its ICE agent if nobody else holds it: keep it.
    _ice_agent: gst_webrtc::WebRTCICE,
    sink_pad: gst::Pad,
    transceiver: gst_webrtc::WebRTCRTPTransceiver,
    port: MediaPort,
    gate: SendGate,
    /// Where packets relayed to this leg enter its send chain.
    relay_input: Arc<Mutex<Option<Arc<RtpInput>>>>,
    gathering: Arc<(Mutex<Gathering>, Condvar)>,
    /// Whether the peer still sends ([`crate::media_watch`]).
    watch: MediaWatch,
    state: Mutex<State>,
}

struct State {
    negotiation: Negotiation,
    send: Option<SendChain>,
    /// The codec chosen from a remote offer, put into effect once our
    /// answer exists: a send chain linked earlier would make webrtcbin
    /// intersect the answer with its caps and drop telephone-event.
    answer_choice: Option<CodecChoice>,
    /// The direction the last remote description gave us.
    direction: Direction,
    closed: bool,
}

impl WebRtcLeg {
    pub fn new(name: &str, options: LegOptions, events: EventHandler) -> Result<WebRtcLeg, Error> {
        let pipeline = new_pipeline(name);
        let webrtc = make("webrtcbin")?;
        webrtc.set_property_from_str("bundle-policy", "max-bundle");
        webrtc.set_property("latency", options.jitter_latency_ms);
        // Every DTLS decoder webrtcbin creates gets our ECDSA certificate
        // (setting `pem` remakes its DTLS connection with it). webrtcbin
        // writes the SDP fingerprint before these elements join the bin,
        // from its default certificate, so local descriptions get their
        // fingerprint rewritten to ours (see `with_our_fingerprint`).
        //
        // webrtcbin (1.22) puts a `clocksync` in front of its rtpbin that
        // holds each buffer until its running time. Our send chain is fed on
        // the thread that made the audio (an RTP leg's socket thread, shared
        // by every call), and an encoder's output runs up to a packet time
        // ahead of the clock (its timeline is anchored at its first input,
        // which may have come late): the wait would stall every call on that
        // thread. What we push is live already, paced by its source, as the
        // other legs' send chains, which have no clock wait either.
        webrtc.connect("deep-element-added", false, |args| {
            let element = args[2].get::<gst::Element>().ok()?;
            match element.factory().map(|f| f.name()) {
                Some(name) if name == "dtlsdec" => element.set_property("pem", crate::runtime::dtls::certificate()),
                Some(name) if name == "clocksync" => element.set_property("sync", false),
                _ => {}
            }
            None
        });
        pipeline.add(&webrtc)?;

        let ice_agent = webrtc.property::<gst_webrtc::WebRTCICE>("ice-agent");
        // ICE-TCP: a browser behind a firewall that lets no UDP out can
        // still reach us directly over TCP.
        if ice_agent.find_property("ice-tcp").is_some() {
            ice_agent.set_property("ice-tcp", true);
        }
        // The same port range as RTP legs, so one firewall rule covers both.
        let (low, high) = options.rtp_ports;
        if (low, high) != (0, 0) && ice_agent.find_property("min-rtp-port").is_some() {
            ice_agent.set_property("min-rtp-port", u32::from(low));
            ice_agent.set_property("max-rtp-port", u32::from(high));
        }
        disable_upnp(&ice_agent);
        ice::apply(&webrtc, &options.ice_servers)?;
        for address in &options.media_addresses {
            // libnice skips loopback when gathering; add it (and any other
            // configured address) explicitly.
            ice_agent.emit_by_name::<bool>("add-local-ip-address", &[&address.to_string()]);
        }

        let sink_pad = webrtc.request_pad_simple("sink_%u").ok_or(Error::Pipeline("webrtcbin sink pad".into()))?;
        let transceiver = sink_pad.property::<gst_webrtc::WebRTCRTPTransceiver>("transceiver");
        transceiver.set_property("direction", WebRTCRTPTransceiverDirection::Sendrecv);
        transceiver.set_property("codec-preferences", offer_caps(&options.codecs));

        let watch = MediaWatch::new(options.rtp_timeout_ms, events.clone(), false);
        let port = MediaPort::default();
        let gate = SendGate::default();
        let relay_input: Arc<Mutex<Option<Arc<RtpInput>>>> = Arc::default();
        let input = relay_input.clone();
        let relay = RelayEnd::new(
            RelayOutput::Chain(Box::new(move |packet| {
                let Some(input) = input.lock().unwrap().clone() else { return false };
                input.push(packet);
                true
            })),
            gate.clone(),
        );
        port.set_relay_end(Arc::new(relay));
        let rtpbin = webrtc
            .downcast_ref::<gst::Bin>()
            .and_then(|bin| bin.by_name("rtpbin"))
            .ok_or(Error::Pipeline("webrtcbin has no rtpbin".into()))?;
        // Where the peer's RTP enters, upstream of the relay's probe (which
        // drops what it relays).
        watch_peer(&rtpbin, &watch);
        relay_before_jitter_buffer(&rtpbin, &port);
        jitter::adapt(&rtpbin, &port);
        let leg = WebRtcLeg {
            inner: Arc::new(Inner {
                options,
                events,
                pipeline,
                webrtc,
                _ice_agent: ice_agent,
                sink_pad,
                transceiver,
                port,
                gate,
                relay_input,
                gathering: Arc::default(),
                watch,
                state: Mutex::new(State {
                    negotiation: Negotiation::Stable,
                    send: None,
                    answer_choice: None,
                    direction: Direction::SendRecv,
                    closed: false,
                }),
            }),
        };
        leg.connect_signals();
        watch_bus(&leg.inner.pipeline, &leg.inner.events);
        leg.inner.pipeline.set_state(gst::State::Playing)?;
        (leg.inner.events)(LegEvent::ConnectionStateChange(ConnectionState::New));
        Ok(leg)
    }

    fn connect_signals(&self) {
        let inner = &self.inner;
        let events = inner.events.clone();
        let gathering = inner.gathering.clone();
        let options = inner.options.clone();
        inner.webrtc.connect("on-ice-candidate", false, move |args| {
            let mline = args[1].get::<u32>().unwrap_or(0);
            let candidate = args[2].get::<String>().unwrap_or_default();
            let candidate = match options.public_address {
                Some(public) => ice::advertise_candidate(&candidate, &options.media_addresses, public),
                None => candidate,
            };
            let (lock, cvar) = &*gathering;
            lock.lock().unwrap().last_candidate = Some(Instant::now());
            cvar.notify_all();
            events(LegEvent::IceCandidate { candidate, sdp_mline_index: mline });
            None
        });
        let gathering = inner.gathering.clone();
        inner.webrtc.connect_notify(Some("ice-gathering-state"), move |webrtc, _| {
            let state = webrtc.property::<gst_webrtc::WebRTCICEGatheringState>("ice-gathering-state");
            let (lock, cvar) = &*gathering;
            let mut gathering = lock.lock().unwrap();
            gathering.complete = state == gst_webrtc::WebRTCICEGatheringState::Complete;
            if state == gst_webrtc::WebRTCICEGatheringState::Gathering {
                gathering.last_candidate = None;
            }
            cvar.notify_all();
        });
        let events = inner.events.clone();
        let gate = inner.gate.clone();
        inner.webrtc.connect_notify(Some("connection-state"), move |webrtc, _| {
            use gst_webrtc::WebRTCPeerConnectionState as S;
            let state = match webrtc.property::<S>("connection-state") {
                S::New => ConnectionState::New,
                S::Connecting => ConnectionState::Connecting,
                S::Connected => ConnectionState::Connected,
                S::Disconnected => ConnectionState::Disconnected,
                S::Failed => ConnectionState::Failed,
                _ => ConnectionState::Closed,
            };
            gate.set_transport_up(state == ConnectionState::Connected);
            events(LegEvent::ConnectionStateChange(state));
        });
        let weak = Arc::downgrade(inner);
        inner.webrtc.connect_pad_added(move |_, pad| {
            let Some(inner) = weak.upgrade() else { return };
            if pad.direction() == gst::PadDirection::Src {
                if let Err(err) = receive::attach(inner.pipeline.upcast_ref(), pad, &inner.port, &inner.events) {
                    tracing::warn!(%err, "cannot receive WebRTC stream");
                }
            }
        });
    }

    pub fn port(&self) -> &MediaPort {
        &self.inner.port
    }

    pub fn local_description(&self) -> Result<SessionDescriptionText, Error> {
        let mut state = self.inner.state.lock().unwrap();
        if state.closed {
            return Err(Error::Closed);
        }
        let kind = match &state.negotiation {
            Negotiation::HaveLocalOffer(sdp) => {
                return Ok(SessionDescriptionText { kind: DescriptionKind::Offer, sdp: sdp.clone() })
            }
            Negotiation::Stable => DescriptionKind::Offer,
            Negotiation::HaveRemoteOffer => DescriptionKind::Answer,
        };
        let (signal, field, sdp_type) = match kind {
            DescriptionKind::Offer => ("create-offer", "offer", WebRTCSDPType::Offer),
            DescriptionKind::Answer => ("create-answer", "answer", WebRTCSDPType::Answer),
        };
        let reply = self.promise(signal, None)?;
        let description = reply
            .and_then(|r| r.get::<WebRTCSessionDescription>(field).ok())
            .ok_or_else(|| Error::Pipeline(format!("webrtcbin gave no {field}")))?;
        let telephone_event = match kind {
            DescriptionKind::Answer => state.answer_choice.as_ref().and_then(|c| c.telephone_event),
            // An offer after the first: webrtcbin offers what the linked
            // send chain takes, without telephone-event, and an answer
            // without it would rebuild the send chain (silence after).
            DescriptionKind::Offer => state.send.as_ref().and_then(|s| s.choice.telephone_event),
        };
        let description = finish_local(&description, sdp_type, telephone_event)?;
        self.promise("set-local-description", Some(&description))?;
        self.wait_for_gathering();
        let local = self.inner.webrtc.property::<Option<WebRTCSessionDescription>>("local-description");
        let mut sdp =
            local.map(|d| d.sdp().as_text()).transpose()?.ok_or(Error::Pipeline("no local description".into()))?;
        if let Some(public) = self.inner.options.public_address {
            sdp = ice::advertise_in_description(&sdp, &self.inner.options.media_addresses, public);
        }
        state.negotiation = match kind {
            DescriptionKind::Offer => Negotiation::HaveLocalOffer(sdp.clone()),
            DescriptionKind::Answer => {
                self.inner.watch.arm(state.direction != Direction::SendRecv);
                Negotiation::Stable
            }
        };
        if let Some(choice) = state.answer_choice.take() {
            self.ensure_send_chain(&mut state, &choice)?;
        }
        Ok(SessionDescriptionText { kind, sdp })
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
        let choice = match kind {
            DescriptionKind::Offer => {
                let choice = codec::choose(media, &self.inner.options.codecs)?;
                // Answer with exactly the chosen codec, under the offerer's
                // payload type numbers.
                self.inner.transceiver.set_property("codec-preferences", answer_caps(&choice));
                self.inner.transceiver.set_property("direction", transceiver_direction(direction));
                choice
            }
            DescriptionKind::Answer => codec::from_answer(&remote)?,
        };
        let message = gst_sdp::SDPMessage::parse_buffer(text.as_bytes())
            .map_err(|_| Error::InvalidSdp("GStreamer could not parse the description".into()))?;
        let sdp_type = match kind {
            DescriptionKind::Offer => WebRTCSDPType::Offer,
            DescriptionKind::Answer => WebRTCSDPType::Answer,
        };
        self.promise("set-remote-description", Some(&WebRTCSessionDescription::new(sdp_type, message)))?;
        self.inner.gate.set_may_send(direction.sends());
        state.direction = direction;
        state.negotiation = match kind {
            DescriptionKind::Offer => {
                state.answer_choice = Some(choice);
                Negotiation::HaveRemoteOffer
            }
            DescriptionKind::Answer => {
                self.ensure_send_chain(&mut state, &choice)?;
                self.inner.watch.arm(direction != Direction::SendRecv);
                Negotiation::Stable
            }
        };
        Ok(())
    }

    fn ensure_send_chain(&self, state: &mut State, choice: &CodecChoice) -> Result<(), Error> {
        self.inner.port.set_relay_format(Some(RelayFormat::of(choice)));
        if state.send.as_ref().is_some_and(|s| s.choice == *choice) {
            return Ok(());
        }
        let bin: &gst::Bin = self.inner.pipeline.upcast_ref();
        *self.inner.relay_input.lock().unwrap() = None;
        if let Some(old) = state.send.take() {
            old.remove();
        }
        let chain = send::build(bin, &self.inner.port, choice, &self.inner.options, &self.inner.gate)?;
        chain.src_pad.link(&self.inner.sink_pad)?;
        *self.inner.relay_input.lock().unwrap() = Some(Arc::new(chain.rtp_input()?));
        state.send = Some(chain);
        Ok(())
    }

    pub fn add_ice_candidate(&self, candidate: &str, sdp_mline_index: u32) -> Result<(), Error> {
        let candidate = candidate.trim().trim_start_matches("a=");
        if candidate.is_empty() {
            return Ok(()); // end-of-candidates
        }
        if !candidate.starts_with("candidate:") || candidate.split_whitespace().count() < 8 {
            return Err(Error::InvalidCandidate(format!("{candidate:?} is not an ICE candidate line")));
        }
        if self.inner.state.lock().unwrap().closed {
            return Err(Error::Closed);
        }
        self.inner.webrtc.emit_by_name::<()>("add-ice-candidate", &[&sdp_mline_index, &candidate]);
        Ok(())
    }

    pub fn dtmf_tone(&self, code: u8, duration: Duration) -> Result<(), Error> {
        send::dtmf_tone_on(self.inner.state.lock().unwrap().send.as_ref(), code, duration)
    }

    pub fn close(&self, reason: &str) {
        if !close_once(&mut self.inner.state.lock().unwrap().closed) {
            return;
        }
        self.inner.watch.disarm();
        self.inner.port.set_relay_format(None);
        shut_down(&self.inner.pipeline, &self.inner.port, &self.inner.events, reason);
    }

    /// The leg's quality figures, from webrtcbin's `get-stats` (the
    /// figures a browser's RTCPeerConnection.getStats gives, from the same
    /// RTCP machinery).
    pub fn stats(&self) -> Result<LegStats, Error> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let promise = gst::Promise::with_change_func(move |reply| {
            let _ = tx.send(reply.ok().flatten().map(|s| s.to_owned()));
        });
        self.inner.webrtc.emit_by_name::<()>("get-stats", &[&None::<gst::Pad>, &promise]);
        let reply = rx.recv_timeout(PROMISE_TIMEOUT).map_err(|_| Error::Timeout("webrtcbin stats"))?;
        let mut stats = LegStats {
            codec: self.inner.port.send_codec(),
            jitter_buffer_delay: self.inner.options.jitter_latency_ms as f64 / 1000.0,
            ..Default::default()
        };
        for (_, value) in reply.iter().flat_map(|r| r.iter()) {
            let Ok(s) = value.get::<gst::Structure>() else { continue };
            let u64_of = |name: &str| s.get::<u64>(name).ok().or_else(|| s.get::<u32>(name).ok().map(u64::from));
            let i64_of = |name: &str| s.get::<i64>(name).ok().or_else(|| s.get::<i32>(name).ok().map(i64::from));
            let f64_of = |name: &str| s.get::<f64>(name).ok();
            let ssrc = s.get::<u32>("ssrc").unwrap_or(0);
            match s.get::<WebRTCStatsType>("type") {
                Ok(WebRTCStatsType::InboundRtp) => {
                    stats.inbound = Some(InboundStats {
                        ssrc,
                        packets_received: u64_of("packets-received").unwrap_or(0),
                        bytes_received: u64_of("bytes-received").unwrap_or(0),
                        packets_lost: i64_of("packets-lost").unwrap_or(0),
                        jitter: f64_of("jitter").unwrap_or(0.0),
                    })
                }
                Ok(WebRTCStatsType::OutboundRtp) => {
                    stats.outbound = OutboundStats {
                        packets_sent: u64_of("packets-sent").unwrap_or(0),
                        bytes_sent: u64_of("bytes-sent").unwrap_or(0),
                    }
                }
                Ok(WebRTCStatsType::RemoteInboundRtp) => {
                    stats.remote_inbound = Some(RemoteInboundStats {
                        ssrc,
                        fraction_lost: f64_of("fraction-lost").unwrap_or(0.0),
                        packets_lost: i64_of("packets-lost").unwrap_or(0),
                        jitter: f64_of("jitter").unwrap_or(0.0),
                        round_trip_time: f64_of("round-trip-time").filter(|rtt| *rtt > 0.0),
                    })
                }
                _ => {}
            }
        }
        Ok(stats)
    }

    /// Emits a webrtcbin action signal that takes a promise and waits for
    /// its reply; a reply carrying an `error` field becomes an error.
    fn promise(
        &self,
        signal: &str,
        description: Option<&WebRTCSessionDescription>,
    ) -> Result<Option<gst::Structure>, Error> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let promise = gst::Promise::with_change_func(move |reply| {
            let _ = tx.send(reply.ok().flatten().map(|s| s.to_owned()));
        });
        match description {
            Some(d) => self.inner.webrtc.emit_by_name::<()>(signal, &[d, &promise]),
            None => self.inner.webrtc.emit_by_name::<()>(signal, &[&None::<gst::Structure>, &promise]),
        }
        let reply = rx.recv_timeout(PROMISE_TIMEOUT).map_err(|_| Error::Timeout("webrtcbin"))?;
        if let Some(err) = reply.as_ref().and_then(|r| r.get::<gst::glib::Error>("error").ok()) {
            return Err(Error::InvalidSdp(format!("{signal}: {}", err.message())));
        }
        Ok(reply)
    }

    /// SIP needs complete SDP (no trickle), so wait until every candidate
    /// is in the local description.
    /// Without STUN or TURN servers the candidates are host candidates
    /// only, which libnice finds at once; its "gathering complete" comes
    /// about 200 ms later all the same (every WebRTC answer waited for it:
    /// measured by the bench). So then a short quiet spell after the last
    /// candidate counts as complete too. With servers, server-reflexive and
    /// relay candidates come only after a round trip to each server:
    /// gathering must complete (bounded by [`GATHERING_TIMEOUT`]).
    fn wait_for_gathering(&self) {
        let (lock, cvar) = &*self.inner.gathering;
        let deadline = Instant::now() + GATHERING_TIMEOUT;
        let quiet_is_enough = self.inner.options.ice_servers.is_empty();
        let mut gathering = lock.lock().unwrap();
        loop {
            let now = Instant::now();
            let quiet_since = gathering.last_candidate.map(|t| now.saturating_duration_since(t));
            let quiet = quiet_is_enough && quiet_since.is_some_and(|q| q >= CANDIDATES_QUIET);
            if gathering.complete || quiet {
                return;
            }
            if now >= deadline {
                tracing::warn!(
                    "ICE gathering did not complete in {GATHERING_TIMEOUT:?}; sending the candidates found so far"
                );
                return;
            }
            let until_quiet = CANDIDATES_QUIET.saturating_sub(quiet_since.unwrap_or_default());
            let wait = if quiet_is_enough { until_quiet.min(deadline - now) } else { deadline - now };
            gathering = cvar.wait_timeout(gathering, wait).unwrap().0;
        }
    }
}

/// Turns off UPnP port mapping on libnice's agent (on by default): every
/// gathering started a GUPnP-IGD helper with a thread of its own, whose
/// stack and per-thread state outlived the session (memory grew with every
/// WebRTC session, docs/performance.md, Soak). Loopback and LAN media never
/// need a router to open ports for them.
fn disable_upnp(ice_agent: &gst_webrtc::WebRTCICE) {
    if ice_agent.find_property("agent").is_none() {
        return;
    }
    let agent = ice_agent.property::<gst::glib::Object>("agent");
    if agent.find_property("upnp").is_some() {
        agent.set_property("upnp", false);
    }
}

/// Where ICE gathering stands, for [`WebRtcLeg::wait_for_gathering`].
#[derive(Default)]
struct Gathering {
    complete: bool,
    last_candidate: Option<Instant>,
}

/// The peer's RTP as it arrives (decrypted, before the relay and the jitter
/// buffer), and its RTCP reports: rtpbin's `on-ssrc-active` fires for
/// every sender or receiver report received.
fn watch_peer(rtpbin: &gst::Element, watch: &MediaWatch) {
    let rtp = watch.clone();
    rtpbin.connect_pad_added(move |_, pad| {
        if pad.direction() != gst::PadDirection::Sink || !pad.name().starts_with("recv_rtp_sink_") {
            return;
        }
        let rtp = rtp.clone();
        pad.add_probe(gst::PadProbeType::BUFFER | gst::PadProbeType::BUFFER_LIST, move |_, _| {
            rtp.rtp();
            gst::PadProbeReturn::Ok
        });
    });
    let rtcp = watch.clone();
    rtpbin.connect("on-ssrc-active", false, move |_| {
        rtcp.rtcp();
        None
    });
}

/// Audio RTP arriving on the leg (decrypted, counted by webrtcbin's
/// internal rtpbin's session, before its jitter buffer) for a linked leg
/// with the same codec is relayed as it comes ([`crate::leg::relay`]):
/// bursts and late packets included, which a jitter buffer here would have
/// held or dropped. It goes on into the jitter buffer only if something
/// else wants it decoded; telephone-event always does. Taken after the
/// session (on the jitter buffer's sink, same thread), not before it: the
/// session's counts are what webrtcbin's receiver reports to the peer and
/// its statistics say, and a session that never saw the relayed packets
/// reported no loss, no jitter and a meaningless highest sequence number.
fn relay_before_jitter_buffer(rtpbin: &gst::Element, port: &MediaPort) {
    let port = port.clone();
    rtpbin.connect("new-jitterbuffer", false, move |args| {
        let pad = args[1].get::<gst::Element>().ok()?.static_pad("sink")?;
        let port = port.clone();
        pad.add_probe(gst::PadProbeType::BUFFER | gst::PadProbeType::BUFFER_LIST, move |_, info| {
            let demand = port.has_demand();
            let relayed = |buffer: &gst::BufferRef| buffer.map_readable().is_ok_and(|data| port.relay(&data));
            match &mut info.data {
                // The guard relays the packet; it is dropped if nobody else wants it.
                Some(gst::PadProbeData::Buffer(buffer)) if relayed(buffer) && !demand => {
                    return gst::PadProbeReturn::Drop;
                }
                Some(gst::PadProbeData::BufferList(list)) => {
                    list.make_mut().foreach_mut(|buffer, _| {
                        let keep = !relayed(&buffer) || demand;
                        std::ops::ControlFlow::Continue(keep.then_some(buffer))
                    });
                }
                _ => {}
            }
            gst::PadProbeReturn::Ok
        });
        None
    });
}

/// Our local description as it must go out: every `a=fingerprint`
/// replaced by our certificate's; telephone-event put back in the audio
/// section (answers, later offers); in answers every other section refused.
fn finish_local(
    description: &WebRTCSessionDescription,
    sdp_type: WebRTCSDPType,
    telephone_event: Option<(u8, u32)>,
) -> Result<WebRTCSessionDescription, Error> {
    let text = description.sdp().as_text()?;
    let ours = format!("a=fingerprint:sha-256 {}", crate::runtime::dtls::fingerprint());
    // The session part, then one list of lines per media section.
    let mut sections: Vec<Vec<String>> = vec![Vec::new()];
    for line in text.lines().map(str::trim_end).filter(|l| !l.is_empty()) {
        if line.starts_with("m=") {
            sections.push(Vec::new());
        }
        let line = if line.starts_with("a=fingerprint:") { ours.clone() } else { line.to_string() };
        sections.last_mut().expect("a section").push(line);
    }
    let audio = sections.iter().skip(1).position(|s| s[0].starts_with("m=audio ")).map(|i| i + 1);
    if let (Some(i), Some((pt, rate))) = (audio, telephone_event) {
        add_telephone_event(&mut sections[i], pt, rate);
    }
    if sdp_type == WebRTCSDPType::Answer {
        let mut refused_mids = Vec::new();
        for (i, section) in sections.iter_mut().enumerate().skip(1) {
            if Some(i) != audio {
                refused_mids.extend(refuse_section(section));
            }
        }
        for line in sections[0].iter_mut().filter(|l| l.starts_with("a=group:BUNDLE")) {
            *line = line.split(' ').filter(|t| !refused_mids.iter().any(|m| m == t)).collect::<Vec<_>>().join(" ");
        }
    }
    let patched: String = sections.concat().iter().map(|l| format!("{l}\r\n")).collect();
    let message = gst_sdp::SDPMessage::parse_buffer(patched.as_bytes())
        .map_err(|_| Error::Pipeline("could not re-read our own description".into()))?;
    Ok(WebRTCSessionDescription::new(sdp_type, message))
}

/// Puts telephone-event back into the answered audio section (webrtcbin
/// 1.22 answers with one codec only, so a browser could not send us DTMF).
fn add_telephone_event(section: &mut Vec<String>, pt: u8, rate: u32) {
    if section[0].split(' ').skip(3).any(|f| f == pt.to_string()) {
        return;
    }
    section[0] = format!("{} {pt}", section[0]);
    section.push(format!("a=rtpmap:{pt} telephone-event/{rate}"));
    section.push(format!("a=fmtp:{pt} 0-15"));
}

/// Refuses a media section of our answer that is not the audio we bridge
/// (video, a second audio stream, a data channel): RFC 3264 §6 keeps the
/// m-line with port 0, RFC 8843 takes it out of the BUNDLE group (its mid
/// is returned). webrtcbin itself would answer video `recvonly`, inviting
/// the browser to send video nobody reads.
fn refuse_section(section: &mut Vec<String>) -> Option<String> {
    let mut parts: Vec<&str> = section[0].split(' ').collect();
    if parts.len() > 1 {
        parts[1] = "0";
    }
    let m_line = parts.join(" ");
    let mid = section.iter().find_map(|l| l.strip_prefix("a=mid:")).map(str::to_string);
    // webrtcbin checks our answer before taking it: every section, even a
    // refused one, needs its transport attributes.
    const KEPT: [&str; 6] = ["c=", "a=mid:", "a=fingerprint:", "a=setup:", "a=ice-ufrag:", "a=ice-pwd:"];
    let kept = section.iter().skip(1).filter(|l| KEPT.iter().any(|k| l.starts_with(k))).cloned();
    *section = std::iter::once(m_line).chain(kept).chain(std::iter::once("a=inactive".to_string())).collect();
    mid
}

fn transceiver_direction(d: Direction) -> WebRTCRTPTransceiverDirection {
    match d {
        Direction::SendRecv => WebRTCRTPTransceiverDirection::Sendrecv,
        Direction::SendOnly => WebRTCRTPTransceiverDirection::Sendonly,
        Direction::RecvOnly => WebRTCRTPTransceiverDirection::Recvonly,
        Direction::Inactive => WebRTCRTPTransceiverDirection::Inactive,
    }
}

/// An RTP caps structure for `codec` under payload type `pt`. `fmtp` adds
/// our Opus parameters; answers leave them out, because webrtcbin matches
/// the answer's codecs by intersecting with the offer's caps and any
/// differing fmtp field drops the codec from the answer.
fn codec_structure(codec: Codec, pt: u8, fmtp: bool) -> gst::Structure {
    let mut s = gst::Structure::builder("application/x-rtp")
        .field("media", "audio")
        .field("encoding-name", codec.sdp_name().to_ascii_uppercase())
        .field("clock-rate", codec.clock_rate() as i32)
        .field("payload", pt as i32);
    if codec == Codec::Opus {
        // Without this the SDP says OPUS/48000 instead of opus/48000/2.
        s = s.field("encoding-params", "2");
        if fmtp {
            s = s.field("minptime", "10").field("useinbandfec", "1");
        }
    }
    s.build()
}

fn telephone_event_structure(pt: u8, rate: u32) -> gst::Structure {
    gst::Structure::builder("application/x-rtp")
        .field("media", "audio")
        .field("encoding-name", "TELEPHONE-EVENT")
        .field("clock-rate", rate as i32)
        .field("payload", pt as i32)
        .build()
}

/// Codec preferences for our offers: every allowed codec, then
/// telephone-event at 48 kHz (for Opus) and 8 kHz (for the rest).
fn offer_caps(codecs: &[Codec]) -> gst::Caps {
    let mut caps = gst::Caps::new_empty();
    {
        let caps = caps.get_mut().unwrap();
        for c in codecs {
            caps.append_structure(codec_structure(*c, c.default_payload_type(), true));
        }
        caps.append_structure(telephone_event_structure(110, 48000));
        caps.append_structure(telephone_event_structure(126, 8000));
    }
    caps
}

fn answer_caps(choice: &CodecChoice) -> gst::Caps {
    let mut caps = gst::Caps::new_empty();
    {
        let caps = caps.get_mut().unwrap();
        caps.append_structure(codec_structure(choice.codec, choice.payload_type, false));
        if let Some((pt, rate)) = choice.telephone_event {
            caps.append_structure(telephone_event_structure(pt, rate));
        }
    }
    caps
}
