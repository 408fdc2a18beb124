//! The RTP leg: plain RTP/AVP over UDP for SIP peers (phones, PBXs, trunks).
//!
//! ```text
//! rtp socket --(shared socket thread: screen, decrypt, latch)--> relay to a linked leg (same codec)
//!                                                            \-> decode.rs: in sequence (no thread), per payload type
//!                                                                 -> receive::attach_as (audio to the port, telephone-event to DTMF)
//! RTCP (its own socket, or rtcp-mux) --(socket thread)--> quality.rs (the peer's reports)
//! send chain ! appsink --\
//! relay from a linked leg -> rtp_out.rs (seal, send from the rtp socket)
//! rtp_rtcp.rs: our SR/RR, SDES, BYE every ~5 s (timer thread), from the rtp socket (rtcp-mux) or the rtcp one
//! ```
//! Sending and receiving share one socket per port, so we send from the
//! port we advertise (symmetric RTP), and we send to wherever the peer's RTP
//! actually comes from once it arrives (the peer behind NAT, or a phone
//! that wrote a wrong address into its SDP). The sockets are read by a few
//! threads shared by all legs ([`crate::runtime::reactor`]), not a `udpsrc` each;
//! audio for a linked leg with the same codec is relayed from there (out
//! of an RTP leg's socket, into a WebRTC leg's send chain: [`crate::leg::relay`]).
//! No rtpbin: what must be decoded is put in sequence and decoded on the
//! socket thread (`decode.rs`), RTCP is ours (`rtp_rtcp.rs`), and what the
//! send chain makes leaves from the socket (`rtp_out.rs`). rtpbin's session
//! and jitter buffer had cost three threads and a dozen elements per leg.

use crate::codec::sdp::{Attribute, Direction, Media, SessionDescription};
use crate::codec::{self, CodecChoice};
use crate::leg::decode::Decoding;
use crate::leg::events::{ConnectionState, EventHandler, LegEvent};
use crate::leg::gate::SendGate;
use crate::leg::lifecycle::{close_once, shut_down, watch_bus};
use crate::leg::media_watch::MediaWatch;
use crate::leg::negotiation::{DescriptionKind, Negotiation, SessionDescriptionText};
use crate::leg::options::LegOptions;
use crate::leg::port::MediaPort;
use crate::leg::quality::{LegStats, Reception, RemoteReports, Sent};
use crate::leg::relay::{RelayEnd, RelayFormat, RelayOutput};
use crate::leg::rtp_out::RtpOut;
use crate::leg::rtp_rtcp::{self, RtpRtcp};
use crate::leg::sdes::{self, Crypto, Keys};
use crate::leg::send::{self, SendChain};
use crate::leg::srtp::{Opened, SrtpSession};
use crate::runtime::new_pipeline;
use crate::runtime::reactor;
use crate::runtime::ticker;
use crate::runtime::timer::Timer;
use crate::Error;
use gst::prelude::*;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};

#[derive(Clone)]
pub struct RtpLeg {
    inner: Arc<Inner>,
}

struct Inner {
    options: LegOptions,
    events: EventHandler,
    pipeline: gst::Pipeline,
    /// Where the send chain's packets leave the pipeline, for `out`.
    chain_out: gst_app::AppSink,
    /// What the leg sends, from its RTP socket.
    out: Arc<RtpOut>,
    local: SocketAddr,
    port: MediaPort,
    gate: SendGate,
    /// What received packets are decoded by, when they must be.
    decoding: Decoding,
    /// Where we send, and whether we re-learn it from incoming packets.
    destination: Arc<Mutex<Destination>>,
    may_receive: Arc<AtomicBool>,
    /// Whether the peer still sends ([`crate::media_watch`]).
    watch: MediaWatch,
    /// SDES-SRTP keys in effect, used by the socket handlers, `out` and the
    /// reports.
    srtp: Arc<SrtpSession>,
    /// The RTP and RTCP sockets being read; cleared on close.
    sockets: Mutex<Vec<reactor::Registration>>,
    /// What we receive, send, and hear back about it (`quality.rs`).
    reception: Arc<Reception>,
    sent: Arc<Sent>,
    reports: Arc<RemoteReports>,
    /// The leg's RTCP (`rtp_rtcp.rs`); taken on close.
    rtcp: Mutex<Option<(Arc<RtpRtcp>, Timer)>>,
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
        let (rtp_reader, rtcp_reader) = (clone(&rtp_socket)?, clone(&rtcp_socket)?);
        let report_socket = clone(&rtp_socket)?;

        let pipeline = new_pipeline(name);
        let sent: Arc<Sent> = Arc::default();
        let destination: Arc<Mutex<Destination>> = Arc::default();
        let srtp: Arc<SrtpSession> = Arc::default();
        let out_destination = destination.clone();
        let out = Arc::new(RtpOut::new(
            rtp_socket,
            Box::new(move || out_destination.lock().unwrap().rtp),
            srtp.clone(),
            sent.clone(),
        ));
        let chain_out = {
            let out = out.clone();
            send::packet_sink(move |packet| out.send_from_chain(packet))
        };
        pipeline.add(&chain_out)?;
        let gate = SendGate::default();
        let relay = Arc::new(RelayEnd::new(RelayOutput::Socket(out.clone()), gate.clone()));
        let port = MediaPort::default();
        port.set_relay_end(relay.clone());
        let (reception, reports): (Arc<Reception>, Arc<RemoteReports>) = Default::default();
        let report_destination = destination.clone();
        let rtcp = RtpRtcp::start(
            rtp_rtcp::Sources {
                end: relay,
                out: out.clone(),
                reception: reception.clone(),
                reports: reports.clone(),
                srtp: srtp.clone(),
            },
            report_socket,
            rtcp_socket,
            Box::new(move || {
                let d = report_destination.lock().unwrap();
                Some((d.rtcp?, d.rtcp_mux))
            }),
            cname(),
        );
        let decoding =
            Decoding::new(pipeline.clone().upcast(), port.clone(), events.clone(), options.jitter_latency_ms);
        let watch = MediaWatch::new(options.rtp_timeout_ms, events.clone(), true);
        let leg = RtpLeg {
            inner: Arc::new(Inner {
                options,
                events,
                pipeline,
                chain_out,
                out,
                local,
                port,
                gate,
                decoding,
                destination,
                may_receive: Arc::new(AtomicBool::new(true)),
                watch,
                srtp,
                sockets: Mutex::default(),
                reception,
                sent,
                reports,
                rtcp: Mutex::new(Some(rtcp)),
                state: Mutex::new(State {
                    negotiation: Negotiation::Stable,
                    session_id: crate::runtime::random_u32() as u64,
                    version: 1,
                    send: None,
                    remote_offer: None,
                    srtp_offered: Vec::new(),
                    srtp_local: None,
                    closed: false,
                    wanted: Direction::SendRecv,
                }),
            }),
        };
        leg.inner.gate.set_transport_up(true);
        watch_bus(&leg.inner.pipeline, &leg.inner.events);
        leg.inner.pipeline.set_state(gst::State::Playing)?;
        ticker::watch(Arc::downgrade(&leg.inner) as Weak<dyn ticker::Timed>);
        let rtcp_watch = leg.inner.watch.clone();
        let rtcp_srtp = Decryptor::new(leg.inner.srtp.clone());
        let (rtcp_reports, rtcp_reception) = (leg.inner.reports.clone(), leg.inner.reception.clone());
        let rtcp_handler: reactor::Handler = Box::new(move |data, source| {
            if Packet::of(data) == Packet::Rtcp {
                if let Some(plain) = rtcp_srtp.open(data, true, source).as_deref() {
                    rtcp_watch.rtcp();
                    rtcp_reports.received(plain, rtcp_reception.clock_rate());
                }
            }
        });
        *leg.inner.sockets.lock().unwrap() =
            reactor::register(vec![(rtp_reader, leg.rtp_handler()), (rtcp_reader, rtcp_handler)])
                .map_err(|e| Error::Bind(e.to_string()))?;
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
    /// ([`crate::leg::relay`]); what must be decoded goes to `decode.rs`.
    fn rtp_handler(&self) -> reactor::Handler {
        let inner = Arc::downgrade(&self.inner);
        let destination = self.inner.destination.clone();
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
                return;
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
            if let Some(inner) = inner.upgrade() {
                inner.decoding.push(data);
            }
        })
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
        inner.decoding.set_formats(choice);
        inner.out.set_clock_rate(choice.codec.clock_rate());
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
        }
        inner.gate.set_may_send(direction.sends() && address.is_some());
        inner.port.set_relay_format(Some(RelayFormat::of(choice)));
        inner.reception.set_audio(choice.payload_type, choice.codec.clock_rate());
        inner.may_receive.store(direction.receives(), Ordering::Relaxed);
        // A new description (hold, resume) restarts the peer's timeout.
        inner.watch.arm(direction != Direction::SendRecv);

        send::renew(
            &mut state.send,
            choice,
            inner.pipeline.upcast_ref(),
            &inner.port,
            &inner.options,
            &inner.gate,
            &inner.chain_out.static_pad("sink").expect("appsink has a sink pad"),
        )
    }

    pub fn dtmf_tone(&self, code: u8, duration: std::time::Duration) -> Result<(), Error> {
        send::dtmf_tone_on(self.inner.state.lock().unwrap().send.as_ref(), code, duration)
    }

    /// The leg's quality figures now (`quality.rs`).
    pub fn stats(&self) -> LegStats {
        let inner = &self.inner;
        LegStats::counted(
            inner.port.send_codec(),
            &inner.reception,
            &inner.sent,
            inner.reports.stats(),
            inner.options.jitter_latency_ms,
        )
    }

    pub fn close(&self, reason: &str) {
        if !close_once(&mut self.inner.state.lock().unwrap().closed) {
            return;
        }
        self.inner.watch.disarm();
        if let Some((reports, _)) = self.inner.rtcp.lock().unwrap().take() {
            reports.bye();
        }
        self.inner.port.set_relay_format(None);
        self.inner.sockets.lock().unwrap().clear();
        shut_down(&self.inner.pipeline, &self.inner.port, &self.inner.events, reason);
    }
}

impl ticker::Timed for Inner {
    fn tick(&self, _now: std::time::Instant) {
        self.decoding.expire();
    }
}

/// The leg's SDES CNAME: random, as RFC 7022 recommends (no user or host
/// name leaks to the peer).
fn cname() -> String {
    format!(
        "{:08x}{:08x}{:08x}",
        crate::runtime::random_u32(),
        crate::runtime::random_u32(),
        crate::runtime::random_u32()
    )
}

/// The telephone-event payload type we offer.
const TELEPHONE_EVENT_PT: u8 = 101;

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
