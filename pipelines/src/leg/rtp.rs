//! The RTP leg: plain RTP/AVP over UDP for SIP peers (phones, PBXs, trunks).
//!
//! ```text
//! rtp socket  --(shared socket thread: screen, latch, relay)--> rtp_in pad  -> rtpbin.recv_rtp_sink_0
//!                                     (RTCP with rtcp-mux) --+
//! rtcp socket --(shared socket thread)--------------------------> rtcp_in pad -> rtpbin.recv_rtcp_sink_0
//! rtpbin.recv_rtp_src_* -> receive::attach (audio to the port, telephone-event to DTMF)
//! send chain ! rtpbin.send_rtp_sink_0 ; rtpbin.send_rtp_src_0 ! multiudpsink(rtp socket)
//! rtpbin.send_rtcp_src_0 ! multiudpsink(rtcp socket, or the rtp one with rtcp-mux)
//! ```
//! Sending and receiving share one socket per port, so we send from the
//! port we advertise (symmetric RTP), and we send to wherever the peer's RTP
//! actually comes from once it arrives (the peer behind NAT, or a phone
//! that wrote a wrong address into its SDP). The sockets are read by a few
//! threads shared by all legs ([`crate::runtime::reactor`]), not a `udpsrc` each;
//! audio for a linked leg with the same codec is relayed from there (out
//! of an RTP leg's socket, into a WebRTC leg's send chain: [`crate::leg::relay`])
//! and never enters rtpbin.

use crate::codec::sdp::{Attribute, Direction, Media, SessionDescription};
use crate::codec::{self, CodecChoice};
use crate::leg::events::{ConnectionState, EventHandler, LegEvent};
use crate::leg::gate::SendGate;
use crate::leg::jitter;
use crate::leg::lifecycle::{close_once, shut_down, watch_bus};
use crate::leg::media_watch::MediaWatch;
use crate::leg::negotiation::{DescriptionKind, Negotiation, SessionDescriptionText};
use crate::leg::options::LegOptions;
use crate::leg::port::{InputPad, MediaPort};
use crate::leg::quality::{LegStats, Reception, RemoteReports, Sent};
use crate::leg::receive;
use crate::leg::relay::{RelayEnd, RelayFormat, RelayOutput};
use crate::leg::relay_rtcp::{self, RelayRtcp};
use crate::leg::sdes::{self, Crypto, Keys};
use crate::leg::send::{self, SendChain};
use crate::leg::srtp::{Opened, SrtpSession};
use crate::runtime::reactor;
use crate::runtime::timer::Timer;
use crate::runtime::{make, new_pipeline};
use crate::Error;
use gst::prelude::*;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Mutex};

#[derive(Clone)]
pub struct RtpLeg {
    inner: Arc<Inner>,
}

struct Inner {
    options: LegOptions,
    events: EventHandler,
    pipeline: gst::Pipeline,
    rtpbin: gst::Element,
    /// Funnel in front of the RTP socket's sink: RTP, and RTCP with rtcp-mux.
    rtp_funnel: gst::Element,
    rtp_out: gst::Element,
    rtcp_out: gst::Element,
    local: SocketAddr,
    port: MediaPort,
    gate: SendGate,
    /// Payload type -> caps, read by rtpbin's `request-pt-map`.
    pt_map: Arc<Mutex<HashMap<u8, gst::Caps>>>,
    /// Where we send, and whether we re-learn it from incoming packets.
    destination: Arc<Mutex<Destination>>,
    may_receive: Arc<AtomicBool>,
    /// Whether the peer still sends ([`crate::media_watch`]).
    watch: MediaWatch,
    /// SDES-SRTP keys in effect, used by the socket handlers, the sinks'
    /// probes and the relay.
    srtp: Arc<SrtpSession>,
    /// The RTP and RTCP sockets being read; cleared on close.
    sockets: Mutex<Vec<reactor::Registration>>,
    /// What we receive, send, and hear back about it (`quality.rs`).
    reception: Arc<Reception>,
    sent: Arc<Sent>,
    reports: Arc<RemoteReports>,
    /// The leg's own RTCP while it relays (`relay_rtcp.rs`); taken on close.
    relay_rtcp: Mutex<Option<(Arc<RelayRtcp>, Timer)>>,
    state: Mutex<State>,
}

#[derive(Default)]
struct Destination {
    rtp: Option<SocketAddr>,
    rtcp: Option<SocketAddr>,
    rtcp_mux: bool,
    /// Set when a new remote description arrives: the next RTP packet's
    /// source becomes the destination.
    latch: bool,
}

struct State {
    negotiation: Negotiation,
    session_id: u64,
    version: u64,
    send: Option<SendChain>,
    /// The remote offer being answered.
    remote_offer: Option<SessionDescription>,
    rtcp_linked: bool,
    /// The `a=crypto` lines of our pending offer.
    srtp_offered: Vec<Crypto>,
    /// The `a=crypto` line we send with, once negotiated.
    srtp_local: Option<Crypto>,
    closed: bool,
    /// The direction we want (sendonly or inactive while we hold the call):
    /// written into our offers and the bound of our answers.
    wanted: Direction,
}

impl RtpLeg {
    pub fn new(name: &str, options: LegOptions, events: EventHandler) -> Result<RtpLeg, Error> {
        let address =
            *options.media_addresses.first().ok_or_else(|| Error::Bind("no media address configured".into()))?;
        let (rtp_socket, rtcp_socket) = bind_pair(address, options.rtp_ports)?;
        let local = rtp_socket.local_addr().map_err(|e| Error::Bind(e.to_string()))?;
        let clone = |s: &UdpSocket| s.try_clone().map_err(|e| Error::Bind(e.to_string()));
        let (rtp_reader, rtcp_reader, relay_socket) = (clone(&rtp_socket)?, clone(&rtcp_socket)?, clone(&rtp_socket)?);
        let report_sockets = (clone(&rtp_socket)?, clone(&rtcp_socket)?);
        let rtp_socket = gio_socket(rtp_socket)?;
        let rtcp_socket = gio_socket(rtcp_socket)?;

        let pipeline = new_pipeline(name);
        let rtpbin = make("rtpbin")?;
        rtpbin.set_property("latency", options.jitter_latency_ms);
        let rtp_out = sink_on(&rtp_socket)?;
        let sent: Arc<Sent> = Arc::default();
        super::traffic::count_sent(&rtp_out, sent.clone());
        let rtcp_out = sink_on(&rtcp_socket)?;
        let rtp_funnel = make("funnel")?;
        pipeline.add_many([&rtpbin, &rtp_funnel, &rtp_out, &rtcp_out])?;
        rtp_funnel.link(&rtp_out)?;
        let entry = |name: &str, rtpbin_pad: &str| -> Result<Arc<InputPad>, Error> {
            let target =
                rtpbin.request_pad_simple(rtpbin_pad).ok_or_else(|| Error::Pipeline(format!("rtpbin {rtpbin_pad}")))?;
            Ok(Arc::new(InputPad::new(name, &target)?))
        };
        let inputs = Inputs { rtp: entry("rtp_in", "recv_rtp_sink_0")?, rtcp: entry("rtcp_in", "recv_rtcp_sink_0")? };
        // No probation: a relayed stream reaches rtpbin only in part (its
        // telephone-event packets, between relayed audio), so its sequence
        // numbers are never consecutive, and a source on probation would
        // never be validated. The socket handler screens packets already.
        let session = rtpbin.emit_by_name::<gst::glib::Object>("get-internal-session", &[&0u32]);
        session.set_property("probation", 0u32);

        let destination: Arc<Mutex<Destination>> = Arc::default();
        let gate = SendGate::default();
        let srtp: Arc<SrtpSession> = Arc::default();
        encrypt_on(&rtp_out, srtp.clone());
        encrypt_on(&rtcp_out, srtp.clone());
        let relay_destination = destination.clone();
        let relay = Arc::new(RelayEnd::new(
            RelayOutput::Socket {
                socket: relay_socket,
                destination: Box::new(move || relay_destination.lock().unwrap().rtp),
                srtp: srtp.clone(),
                sent: sent.clone(),
            },
            gate.clone(),
        ));
        let port = MediaPort::default();
        port.set_relay_end(relay.clone());
        let (reception, reports): (Arc<Reception>, Arc<RemoteReports>) = Default::default();
        let report_destination = destination.clone();
        let relay_rtcp = RelayRtcp::start(
            relay_rtcp::Sources {
                end: relay,
                port: port.clone(),
                reception: reception.clone(),
                reports: reports.clone(),
                srtp: srtp.clone(),
            },
            report_sockets.0,
            report_sockets.1,
            Box::new(move || {
                let d = report_destination.lock().unwrap();
                Some((d.rtcp?, d.rtcp_mux))
            }),
            rtpbin.property::<gst::Structure>("sdes").get::<String>("cname").unwrap_or_default(),
        );
        let watch = MediaWatch::new(options.rtp_timeout_ms, events.clone(), true);
        jitter::adapt(&rtpbin, &port);
        let leg = RtpLeg {
            inner: Arc::new(Inner {
                options,
                events,
                pipeline,
                rtpbin,
                rtp_funnel,
                rtp_out,
                rtcp_out,
                local,
                port,
                gate,
                pt_map: Arc::default(),
                destination,
                may_receive: Arc::new(AtomicBool::new(true)),
                watch,
                srtp,
                sockets: Mutex::default(),
                reception,
                sent,
                reports,
                relay_rtcp: Mutex::new(Some(relay_rtcp)),
                state: Mutex::new(State {
                    negotiation: Negotiation::Stable,
                    session_id: crate::runtime::random_u32() as u64,
                    version: 1,
                    send: None,
                    remote_offer: None,
                    rtcp_linked: false,
                    srtp_offered: Vec::new(),
                    srtp_local: None,
                    closed: false,
                    wanted: Direction::SendRecv,
                }),
            }),
        };
        leg.inner.gate.set_transport_up(true);
        leg.connect_rtpbin();
        watch_bus(&leg.inner.pipeline, &leg.inner.events);
        leg.inner.pipeline.set_state(gst::State::Playing)?;
        let rtcp_only = inputs.rtcp.clone();
        let rtcp_watch = leg.inner.watch.clone();
        let rtcp_srtp = Decryptor::new(leg.inner.srtp.clone());
        let (rtcp_reports, rtcp_reception) = (leg.inner.reports.clone(), leg.inner.reception.clone());
        let registered = [
            reactor::register(rtp_reader, leg.rtp_handler(inputs)),
            reactor::register(
                rtcp_reader,
                Box::new(move |data, source| {
                    if Packet::of(data) == Packet::Rtcp {
                        if let Some(plain) = rtcp_srtp.open(data, true, source).as_deref() {
                            rtcp_watch.rtcp();
                            rtcp_reports.received(plain, rtcp_reception.clock_rate());
                            rtcp_only.push(arrived(plain), &RTCP_CAPS);
                        }
                    }
                }),
            ),
        ];
        for registration in registered {
            leg.inner.sockets.lock().unwrap().push(registration.map_err(|e| Error::Bind(e.to_string()))?);
        }
        (leg.inner.events)(LegEvent::ConnectionStateChange(ConnectionState::New));
        Ok(leg)
    }

    pub fn port(&self) -> &MediaPort {
        &self.inner.port
    }

    pub fn local_address(&self) -> SocketAddr {
        self.inner.local
    }

    /// Sets the direction our next offer asks for (hold: `SendOnly` or
    /// `Inactive`; resume: `SendRecv`); answers never exceed it.
    pub fn set_direction(&self, wanted: Direction) {
        self.inner.state.lock().unwrap().wanted = wanted;
    }

    /// What happens to every datagram on the RTP socket, on a shared
    /// socket thread ([`crate::runtime::reactor`]): what is neither RTP nor RTCP
    /// (STUN from phones that probe even with ICE off) is dropped, the
    /// peer's real address is learnt, the connection reported up at the
    /// first packet, and audio for a linked leg relayed straight to it
    /// ([`crate::leg::relay`]); the rest goes into rtpbin.
    fn rtp_handler(&self, inputs: Inputs) -> reactor::Handler {
        let destination = self.inner.destination.clone();
        let rtp_out = self.inner.rtp_out.clone();
        let rtcp_out = self.inner.rtcp_out.clone();
        let may_receive = self.inner.may_receive.clone();
        let watch = self.inner.watch.clone();
        let port = self.inner.port.clone();
        let symmetric = self.inner.options.symmetric_rtp;
        let srtp = Decryptor::new(self.inner.srtp.clone());
        let (reception, reports) = (self.inner.reception.clone(), self.inner.reports.clone());
        Box::new(move |data, source| {
            let kind = Packet::of(data);
            if kind == Packet::Other {
                return;
            }
            let Some(opened) = srtp.open(data, kind == Packet::Rtcp, source) else { return };
            let data = opened.as_ref();
            if kind == Packet::Rtcp {
                watch.rtcp();
                reports.received(data, reception.clock_rate());
                return inputs.rtcp.push(arrived(data), &RTCP_CAPS);
            }
            super::traffic::received(data.len());
            reception.received(data);
            watch.rtp();
            {
                let mut dest = destination.lock().unwrap();
                if dest.latch {
                    dest.latch = false;
                    if dest.rtp != Some(source) && symmetric.should_latch(dest.rtp, source) {
                        tracing::info!(from = ?dest.rtp, to = %source, "symmetric RTP: sending to where the peer's RTP comes from");
                        dest.rtp = Some(source);
                        dest.rtcp = Some(if dest.rtcp_mux {
                            source
                        } else {
                            SocketAddr::new(source.ip(), source.port().wrapping_add(1))
                        });
                        apply_destination(&dest, &rtp_out, &rtcp_out);
                    }
                }
            }
            if !may_receive.load(Ordering::Relaxed) {
                return;
            }
            // Relayed, and nobody else (a recorder, say) wants it decoded.
            if port.relay(data) && !port.has_demand() {
                return;
            }
            inputs.rtp.push(arrived(data), &RTP_CAPS);
        })
    }

    fn connect_rtpbin(&self) {
        let pt_map = self.inner.pt_map.clone();
        self.inner.rtpbin.connect("request-pt-map", false, move |args| {
            let pt = args[2].get::<u32>().unwrap_or(0) as u8;
            // An unknown payload type (RTP before the answer, a stray PT)
            // must get NULL caps, not "no value": glib aborts on the latter.
            Some(pt_map.lock().unwrap().get(&pt).cloned().to_value())
        });
        let weak = Arc::downgrade(&self.inner);
        self.inner.rtpbin.connect_pad_added(move |_, pad| {
            let Some(inner) = weak.upgrade() else { return };
            if pad.name().starts_with("recv_rtp_src_") {
                if let Err(err) = receive::attach(inner.pipeline.upcast_ref(), pad, &inner.port, &inner.events) {
                    tracing::warn!(%err, "cannot receive RTP stream");
                }
            }
        });
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
            Negotiation::Stable => {
                let sdp = self.offer(&mut state);
                state.negotiation = Negotiation::HaveLocalOffer(sdp.clone());
                Ok(SessionDescriptionText { kind: DescriptionKind::Offer, sdp })
            }
            Negotiation::HaveRemoteOffer => {
                let offer = state.remote_offer.take().ok_or(Error::WrongState("no remote offer".into()))?;
                let sdp = self.answer(&mut state, &offer)?;
                state.negotiation = Negotiation::Stable;
                Ok(SessionDescriptionText { kind: DescriptionKind::Answer, sdp })
            }
        }
    }

    pub fn set_remote_description(&self, kind: DescriptionKind, text: &str) -> Result<(), Error> {
        let remote = SessionDescription::parse(text)?;
        let (_, media) = remote.audio().ok_or_else(|| Error::InvalidSdp("there is no audio section".into()))?;
        if !media.protocol.starts_with("RTP/AVP") && !sdes::is_secure_profile(&media.protocol) {
            return Err(Error::InvalidSdp(format!(
                "an RTP session takes RTP/AVP or RTP/SAVP media, not {} (use a webrtc session for WebRTC peers)",
                media.protocol
            )));
        }
        let mut state = self.inner.state.lock().unwrap();
        if state.closed {
            return Err(Error::Closed);
        }
        state.negotiation.check_remote(kind)?;
        match kind {
            DescriptionKind::Offer => {
                // Fail now, not at answer time, so the SIP side can say 488.
                codec::choose(media, &self.inner.options.codecs)?;
                sdes::answer(self.inner.options.srtp, media, None)?;
                state.remote_offer = Some(remote);
                state.negotiation = Negotiation::HaveRemoteOffer;
            }
            DescriptionKind::Answer => {
                let choice = codec::from_answer(&remote)?;
                let keys = sdes::from_answer(self.inner.options.srtp, &state.srtp_offered, media)?;
                let wanted = state.wanted;
                let direction = remote.direction_of(media).answer(wanted);
                self.apply_keys(&mut state, keys)?;
                self.apply(&mut state, &remote, media, &choice, direction)?;
                state.negotiation = Negotiation::Stable;
            }
        }
        Ok(())
    }

    /// Our offer: every allowed codec, telephone-event, rtcp-mux offered
    /// with a separate RTCP port as fallback (RFC 5761).
    fn offer(&self, state: &mut State) -> String {
        let codecs = &self.inner.options.codecs;
        let (profile, crypto) = sdes::offer(self.inner.options.srtp, state.srtp_local.as_ref());
        let mut media = self.media_section(profile, codecs.iter().map(|c| c.default_payload_type()).collect());
        media.attributes.extend(crypto.iter().map(Crypto::attribute));
        state.srtp_offered = crypto;
        for c in codecs {
            media
                .attributes
                .push(Attribute::value("rtpmap", format!("{} {}", c.default_payload_type(), c.rtpmap_value())));
            if let Some(fmtp) = c.fmtp() {
                media.attributes.push(Attribute::value("fmtp", format!("{} {fmtp}", c.default_payload_type())));
            }
        }
        media.formats.push(TELEPHONE_EVENT_PT);
        media.attributes.push(Attribute::value("rtpmap", format!("{TELEPHONE_EVENT_PT} telephone-event/8000")));
        media.attributes.push(Attribute::value("fmtp", format!("{TELEPHONE_EVENT_PT} 0-16")));
        media.attributes.push(Attribute::value("ptime", self.inner.options.ptime.to_string()));
        media.attributes.push(Attribute::value("rtcp", (self.inner.local.port() + 1).to_string()));
        media.attributes.push(Attribute::flag("rtcp-mux"));
        media.attributes.push(Attribute::flag(state.wanted.as_str()));
        self.describe(state, vec![media])
    }

    fn answer(&self, state: &mut State, offer: &SessionDescription) -> Result<String, Error> {
        let (index, offered) = offer.audio().ok_or_else(|| Error::InvalidSdp("no audio".into()))?;
        let choice = codec::choose(offered, &self.inner.options.codecs)?;
        let keys = sdes::answer(self.inner.options.srtp, offered, state.srtp_local.as_ref())?;
        let direction = offer.direction_of(offered).answer(state.wanted);
        let mut formats = vec![choice.payload_type];
        let profile = if sdes::is_secure_profile(&offered.protocol) { "RTP/SAVP" } else { "RTP/AVP" };
        let mut media = self.media_section(profile, vec![]);
        if let Some(keys) = &keys {
            media.attributes.push(keys.local.attribute());
        }
        media
            .attributes
            .push(Attribute::value("rtpmap", format!("{} {}", choice.payload_type, choice.codec.rtpmap_value())));
        if let Some(fmtp) = choice.codec.fmtp() {
            media.attributes.push(Attribute::value("fmtp", format!("{} {fmtp}", choice.payload_type)));
        }
        if let Some((pt, rate)) = choice.telephone_event {
            formats.push(pt);
            media.attributes.push(Attribute::value("rtpmap", format!("{pt} telephone-event/{rate}")));
            media.attributes.push(Attribute::value("fmtp", format!("{pt} 0-16")));
        }
        media.formats = formats;
        if offered.ptime().is_some() {
            media.attributes.push(Attribute::value("ptime", choice.ptime.to_string()));
        }
        if offered.has_attribute("rtcp-mux") {
            media.attributes.push(Attribute::flag("rtcp-mux"));
        } else {
            media.attributes.push(Attribute::value("rtcp", (self.inner.local.port() + 1).to_string()));
        }
        media.attributes.push(Attribute::flag(direction.as_str()));
        self.apply_keys(state, keys)?;
        self.apply(state, offer, offered, &choice, direction)?;
        Ok(self.describe(state, offer.answer_sections(index, media)))
    }

    fn media_section(&self, profile: &str, formats: Vec<u8>) -> Media {
        Media {
            kind: "audio".into(),
            port: self.inner.local.port(),
            protocol: profile.into(),
            formats,
            other_formats: Vec::new(),
            connection: None,
            attributes: Vec::new(),
        }
    }

    fn describe(&self, state: &mut State, media: Vec<Media>) -> String {
        // Behind a 1:1 NAT the peer reaches us at the public address.
        let ip = self.inner.options.public_address.unwrap_or(self.inner.local.ip());
        let family = if ip.is_ipv4() { "IP4" } else { "IP6" };
        state.version += 1;
        SessionDescription {
            origin: format!("sipbridge {} {} IN {family} {ip}", state.session_id, state.version),
            session_name: "sipbridge".into(),
            connection: Some(ip),
            attributes: Vec::new(),
            media,
        }
        .to_string()
    }

    /// Puts negotiated SRTP keys into effect (`None`: plain RTP). Keys are
    /// never logged, only the suite.
    fn apply_keys(&self, state: &mut State, keys: Option<Keys>) -> Result<(), Error> {
        let suite = keys.as_ref().map(|k| k.local.key.suite);
        if suite != state.srtp_local.as_ref().map(|c| c.key.suite) {
            tracing::info!(suite = suite.map(|s| s.sdp_name()).unwrap_or("none (plain RTP)"), "SRTP");
        }
        self.inner
            .srtp
            .set_keys(keys.as_ref().map(|k| &k.remote), keys.as_ref().map(|k| &k.local.key))
            .map_err(|e| Error::Pipeline(format!("SRTP keys: {e:?}")))?;
        state.srtp_local = keys.map(|k| k.local);
        state.srtp_offered.clear();
        Ok(())
    }

    /// Puts a finished negotiation into effect: payload map, destination,
    /// direction, and the send chain (rebuilt if the codec changed).
    fn apply(
        &self,
        state: &mut State,
        remote: &SessionDescription,
        media: &Media,
        choice: &CodecChoice,
        direction: Direction,
    ) -> Result<(), Error> {
        let inner = &self.inner;
        {
            let mut map = inner.pt_map.lock().unwrap();
            map.clear();
            map.insert(
                choice.payload_type,
                codec::rtp_caps(
                    choice.codec.sdp_name(),
                    choice.codec.clock_rate(),
                    choice.payload_type,
                    choice.codec == codec::Codec::Opus,
                ),
            );
            if let Some((pt, rate)) = choice.telephone_event {
                map.insert(pt, codec::rtp_caps("TELEPHONE-EVENT", rate, pt, false));
            }
        }
        let rtcp_mux = media.has_attribute("rtcp-mux");
        let address = remote.address_of(media).filter(|a| !a.is_unspecified() && media.port != 0);
        {
            let mut dest = inner.destination.lock().unwrap();
            dest.rtcp_mux = rtcp_mux;
            dest.rtp = address.map(|a| SocketAddr::new(a, media.port));
            dest.rtcp = address.map(|a| {
                if rtcp_mux {
                    SocketAddr::new(a, media.port)
                } else {
                    SocketAddr::new(a, media.rtcp_port().unwrap_or(media.port.wrapping_add(1)))
                }
            });
            dest.latch = true;
            apply_destination(&dest, &inner.rtp_out, &inner.rtcp_out);
        }
        inner.gate.set_may_send(direction.sends() && address.is_some());
        inner.port.set_relay_format(Some(RelayFormat::of(choice)));
        inner.reception.set_audio(choice.payload_type, choice.codec.clock_rate());
        inner.may_receive.store(direction.receives(), Ordering::Relaxed);
        // A new description (hold, resume) restarts the peer's timeout.
        inner.watch.arm(direction != Direction::SendRecv);

        let same_stream = state.send.as_ref().is_some_and(|s| s.choice == *choice);
        if !same_stream {
            if let Some(old) = state.send.take() {
                old.remove();
            }
            let chain = send::build(inner.pipeline.upcast_ref(), &inner.port, choice, &inner.options, &inner.gate)?;
            chain.src_pad.link(
                &inner.rtpbin.request_pad_simple("send_rtp_sink_0").ok_or(Error::Pipeline("rtpbin send pad".into()))?,
            )?;
            if let Some(src) = inner.rtpbin.static_pad("send_rtp_src_0") {
                if !src.is_linked() {
                    src.link(&inner.rtp_funnel.request_pad_simple("sink_%u").unwrap())?;
                }
            }
            state.send = Some(chain);
        }
        if !state.rtcp_linked {
            let rtcp_src =
                inner.rtpbin.request_pad_simple("send_rtcp_src_0").ok_or(Error::Pipeline("rtpbin rtcp pad".into()))?;
            // With rtcp-mux, RTCP leaves through the RTP socket's sink.
            let sink_pad = if rtcp_mux {
                inner.rtp_funnel.request_pad_simple("sink_%u")
            } else {
                inner.rtcp_out.static_pad("sink")
            };
            if let Some(sink_pad) = sink_pad {
                rtcp_src.link(&sink_pad)?;
            }
            if let Some((relay_rtcp, _)) = inner.relay_rtcp.lock().unwrap().as_ref() {
                hold_back_while_relaying(&rtcp_src, Arc::downgrade(relay_rtcp));
            }
            state.rtcp_linked = true;
        }
        Ok(())
    }

    pub fn dtmf_tone(&self, code: u8, duration: std::time::Duration) -> Result<(), Error> {
        send::dtmf_tone_on(self.inner.state.lock().unwrap().send.as_ref(), code, duration)
    }

    /// The leg's quality figures now (`quality.rs`).
    pub fn stats(&self) -> LegStats {
        let inner = &self.inner;
        LegStats {
            codec: inner.port.send_codec(),
            inbound: inner.reception.stats(),
            outbound: inner.sent.stats(),
            remote_inbound: inner.reports.stats(),
            jitter_buffer_delay: inner.rtpbin.property::<u32>("latency") as f64 / 1000.0,
        }
    }

    pub fn close(&self, reason: &str) {
        if !close_once(&mut self.inner.state.lock().unwrap().closed) {
            return;
        }
        self.inner.watch.disarm();
        // Held until the pipeline is down: rtpbin's RTCP (its BYE) stays held
        // back meanwhile.
        let relay_rtcp = self.inner.relay_rtcp.lock().unwrap().take();
        if let Some((reports, _)) = &relay_rtcp {
            reports.bye();
        }
        self.inner.port.set_relay_format(None);
        self.inner.sockets.lock().unwrap().clear();
        shut_down(&self.inner.pipeline, &self.inner.port, &self.inner.events, reason);
        drop(relay_rtcp);
    }
}

/// Drops rtpbin's RTCP while the leg relays: it reports then for itself
/// (`relay_rtcp.rs`), and rtpbin, which sees none of the relayed packets,
/// would contradict it.
fn hold_back_while_relaying(rtcp_src: &gst::Pad, relay_rtcp: std::sync::Weak<RelayRtcp>) {
    rtcp_src.add_probe(gst::PadProbeType::BUFFER | gst::PadProbeType::BUFFER_LIST, move |_, _| {
        if relay_rtcp.upgrade().is_some_and(|r| r.active()) {
            gst::PadProbeReturn::Drop
        } else {
            gst::PadProbeReturn::Ok
        }
    });
}

/// The telephone-event payload type we offer.
const TELEPHONE_EVENT_PT: u8 = 101;

/// A multiudpsink sending from `socket`, with no destination until one is
/// negotiated (a plain udpsink would default to localhost:5004).
fn sink_on(socket: &gio::Socket) -> Result<gst::Element, Error> {
    let sink = make("multiudpsink")?;
    sink.set_property("socket", socket);
    sink.set_property("close-socket", false);
    sink.set_property("sync", false);
    sink.set_property("async", false);
    Ok(sink)
}

fn apply_destination(dest: &Destination, rtp_out: &gst::Element, rtcp_out: &gst::Element) {
    let clients = |a: Option<SocketAddr>| a.map(|a| format!("{}:{}", a.ip(), a.port())).unwrap_or_default();
    rtp_out.set_property("clients", clients(dest.rtp));
    if dest.rtcp_mux {
        rtcp_out.set_property("clients", "");
    } else {
        rtcp_out.set_property("clients", clients(dest.rtcp));
    }
}

/// What arrived on an RTP socket.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Packet {
    Rtp,
    /// RTCP packet types 200-204 (RFC 5761 section 4: how rtcp-mux tells them apart).
    Rtcp,
    /// Not RTP version 2: STUN, garbage.
    Other,
}

impl Packet {
    fn of(data: &[u8]) -> Packet {
        match data {
            [first, second, ..] if first >> 6 == 2 => {
                if (200..=204).contains(second) {
                    Packet::Rtcp
                } else {
                    Packet::Rtp
                }
            }
            _ => Packet::Other,
        }
    }
}

/// Where received packets enter the pipeline: rtpbin's RTP and RTCP sinks.
struct Inputs {
    rtp: Arc<InputPad>,
    rtcp: Arc<InputPad>,
}

pub(super) static RTP_CAPS: LazyLock<gst::Caps> = LazyLock::new(|| gst::Caps::new_empty_simple("application/x-rtp"));
static RTCP_CAPS: LazyLock<gst::Caps> = LazyLock::new(|| gst::Caps::new_empty_simple("application/x-rtcp"));

/// A received datagram as a buffer stamped with its arrival (running time
/// on the shared timeline), which is what rtpbin's jitter buffer times from.
pub(super) fn arrived(data: &[u8]) -> gst::Buffer {
    let mut buffer = gst::Buffer::from_slice(data.to_vec());
    let now = crate::runtime::now();
    let b = buffer.get_mut().expect("a new buffer is writable");
    b.set_pts(now);
    b.set_dts(now);
    buffer
}

/// Binds an even RTP port and the RTCP port above it, trying ports in
/// `range` from a random start so concurrent legs spread out. A range of
/// (0, 0) lets the kernel pick.
fn bind_pair(address: IpAddr, range: (u16, u16)) -> Result<(UdpSocket, UdpSocket), Error> {
    let (low, high) = (range.0 & !1, range.1);
    if low == 0 {
        for _ in 0..64 {
            let rtp = UdpSocket::bind((address, 0)).map_err(|e| Error::Bind(format!("{address}: {e}")))?;
            let port = rtp.local_addr().map_err(|e| Error::Bind(e.to_string()))?.port();
            if port % 2 == 0 && port < u16::MAX {
                if let Ok(rtcp) = UdpSocket::bind((address, port + 1)) {
                    return Ok((rtp, rtcp));
                }
            }
        }
        return Err(Error::Bind(format!("no free even port pair on {address}")));
    }
    let pairs = ((high - low) / 2).max(1) as u32;
    let start = crate::runtime::random_u32() % pairs;
    for i in 0..pairs {
        let port = low + (((start + i) % pairs) * 2) as u16;
        if let (Ok(rtp), Ok(rtcp)) = (UdpSocket::bind((address, port)), UdpSocket::bind((address, port + 1))) {
            return Ok((rtp, rtcp));
        }
    }
    Err(Error::Bind(format!("no free port pair on {address} in {low}-{high}")))
}

fn gio_socket(socket: UdpSocket) -> Result<gio::Socket, Error> {
    gio::Socket::from_fd(std::os::fd::OwnedFd::from(socket)).map_err(|e| Error::Bind(e.to_string()))
}

/// Encrypts what a multiudpsink sends when the leg has SRTP keys (RTP, and
/// RTCP told apart by its packet type with rtcp-mux).
fn encrypt_on(sink: &gst::Element, srtp: Arc<SrtpSession>) {
    let seal = move |buffer: &gst::BufferRef| -> Option<Option<gst::Buffer>> {
        let map = buffer.map_readable().ok()?;
        match srtp.seal(&map, Packet::of(&map) == Packet::Rtcp) {
            None => Some(None),
            Some(Ok(sealed)) => Some(Some(gst::Buffer::from_mut_slice(sealed))),
            Some(Err(_)) => None,
        }
    };
    let pad = sink.static_pad("sink").expect("multiudpsink has a sink pad");
    pad.add_probe(gst::PadProbeType::BUFFER | gst::PadProbeType::BUFFER_LIST, move |_, info| {
        match &mut info.data {
            Some(gst::PadProbeData::Buffer(buffer)) => match seal(buffer) {
                Some(Some(sealed)) => *buffer = sealed,
                Some(None) => {}
                None => return gst::PadProbeReturn::Drop,
            },
            Some(gst::PadProbeData::BufferList(list)) => {
                let mut sealed = gst::BufferList::new_sized(list.len());
                for buffer in list.iter() {
                    match seal(buffer) {
                        Some(Some(b)) => sealed.get_mut().unwrap().add(b),
                        Some(None) => sealed.get_mut().unwrap().add(buffer.to_owned()),
                        None => {}
                    }
                }
                *list = sealed;
            }
            _ => {}
        }
        gst::PadProbeReturn::Ok
    });
}

/// Decrypts what arrives on a socket, logging rejected packets (the first,
/// then every 500th: a peer with a wrong key would flood the log).
struct Decryptor {
    srtp: Arc<SrtpSession>,
    rejected: std::sync::atomic::AtomicU64,
}

impl Decryptor {
    fn new(srtp: Arc<SrtpSession>) -> Decryptor {
        Decryptor { srtp, rejected: Default::default() }
    }

    /// The packet to go on with, or `None` to drop it.
    fn open<'a>(&self, data: &'a [u8], rtcp: bool, source: SocketAddr) -> Option<std::borrow::Cow<'a, [u8]>> {
        match self.srtp.open(data, rtcp) {
            Opened::Plain(data) => Some(std::borrow::Cow::Borrowed(data)),
            Opened::Decrypted(plain) => Some(std::borrow::Cow::Owned(plain)),
            Opened::Rejected(why) => {
                let count = self.rejected.fetch_add(1, Ordering::Relaxed);
                if count % 500 == 0 {
                    tracing::warn!(?why, %source, rtcp, len = data.len(), rejected = count + 1, "SRTP packet dropped");
                }
                None
            }
        }
    }
}
