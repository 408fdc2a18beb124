//! The bench's WebRTC load generator: many lightweight WebRTC clients in
//! one thread of the bench process, each a sans-IO `str0m` peer (ICE,
//! DTLS-SRTP through the system's OpenSSL, rtcp-mux, BUNDLE) on its own
//! loopback UDP socket.
//!
//! A client offers like a browser (ICE credentials and a host candidate,
//! `a=setup:actpass`, `a=rtcp-mux`, one audio section with Opus 48000/2 or
//! PCMU only), takes the relay's answer, and once DTLS is up sends
//! pre-encoded payloads (captured once from GStreamer's encoders) one per
//! `send_frame` call. What it receives is counted and, while asked to, kept
//! so its tone can be checked after the run ([`decode`]).
//!
//! Nothing here blocks: the caller drives every client from its own loop
//! (`service` for sockets and timers, `send_frame` once per packet time).

use crate::audio::{ulaw_decode, Pcm};
use anyhow::{bail, Context, Result};
use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Instant;
use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::config::{CryptoProvider, DtlsCert};
use str0m::format::PayloadParams;
use str0m::media::{Direction, Frequency, MediaKind, MediaTime, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};

/// The one codec a client offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Audio {
    /// Opus 48000/2 (what a browser sends).
    Opus,
    /// G.711 µ-law only (a browser told to offer PCMU).
    Pcmu,
}

impl Audio {
    fn clock(self) -> (Frequency, u64) {
        match self {
            Audio::Opus => (Frequency::FORTY_EIGHT_KHZ, 960),
            Audio::Pcmu => (Frequency::EIGHT_KHZ, 160),
        }
    }
}

/// What every client of one generator shares: the crypto provider and one
/// DTLS certificate (made once: clients differ by ICE credentials and
/// sockets, and generating a key per client would only time the generator).
#[derive(Clone)]
pub struct Shared {
    provider: Arc<CryptoProvider>,
    cert: DtlsCert,
}

impl Shared {
    pub fn new() -> Result<Shared> {
        let provider = str0m::crypto::from_feature_flags();
        let cert = provider.dtls_provider.generate_certificate().context("generating a DTLS certificate")?;
        Ok(Shared { provider: Arc::new(provider), cert })
    }
}

/// Most payloads a client keeps for the tone check (4 s of audio).
const KEEP_PACKETS: usize = 200;

pub struct Client {
    rtc: Rtc,
    socket: UdpSocket,
    local: SocketAddr,
    mid: Mid,
    pub audio: Audio,
    offer: String,
    pending: Option<SdpPendingOffer>,
    pt: Option<Pt>,
    payloads: Arc<Vec<Vec<u8>>>,
    next: usize,
    media_time: u64,
    timeout: Instant,
    /// When ICE and DTLS were both up (str0m's `Connected`).
    pub connected: Option<Instant>,
    pub received: u64,
    pub first_rx: Option<Instant>,
    keep_audio: bool,
    heard: Vec<Vec<u8>>,
    /// The first error str0m reported; the client is dead after one.
    pub error: Option<String>,
    pub ice_state: IceConnectionState,
    /// Datagrams that reached the socket (STUN, DTLS, SRTP, SRTCP).
    pub datagrams: u64,
    known_ssrc: Option<u32>,
    /// When the first STUN, DTLS and SRTP datagram arrived (for diagnosis).
    pub first_in: [Option<Instant>; 3],
}

impl Client {
    /// A client on a fresh loopback socket that will send `payloads` (one
    /// per `send_frame`), starting at index `first`. Its offer is ready.
    pub fn new(shared: &Shared, audio: Audio, payloads: Arc<Vec<Vec<u8>>>, first: usize) -> Result<Client> {
        let socket = UdpSocket::bind("127.0.0.1:0")?;
        socket.set_nonblocking(true)?;
        let local = socket.local_addr()?;
        let now = Instant::now();
        let config = Rtc::builder()
            .set_crypto_provider(shared.provider.clone())
            .set_dtls_cert(shared.cert.clone())
            .clear_codecs();
        let config = match audio {
            Audio::Opus => config.enable_opus(true, false),
            Audio::Pcmu => config.enable_pcmu(true, false),
        };
        let mut rtc = config.build(now);
        rtc.add_local_candidate(Candidate::host(local, "udp").context("host candidate")?);
        let mut change = rtc.sdp_api();
        let mid = change.add_media(MediaKind::Audio, Direction::SendRecv, None, None, None);
        let (offer, pending) = change.apply().context("str0m made no offer")?;
        let mut client = Client {
            rtc,
            socket,
            local,
            mid,
            audio,
            offer: offer.to_sdp_string(),
            pending: Some(pending),
            pt: None,
            payloads,
            next: first,
            media_time: (first as u64) * 1000,
            timeout: now,
            connected: None,
            received: 0,
            first_rx: None,
            keep_audio: false,
            heard: Vec::new(),
            error: None,
            ice_state: IceConnectionState::New,
            datagrams: 0,
            known_ssrc: None,
            first_in: [None; 3],
        };
        client.drain();
        Ok(client)
    }

    /// The offer SDP, as a browser would send it (complete: one host candidate).
    pub fn offer(&self) -> &str {
        &self.offer
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Applies the relay's answer; ICE and DTLS start at the next `service`.
    pub fn accept_answer(&mut self, sdp: &str) -> Result<()> {
        let sdp = with_bundle_group(sdp);
        let answer = SdpAnswer::from_sdp_string(&sdp).with_context(|| format!("parsing the answer:\n{sdp}"))?;
        let pending = self.pending.take().context("answer without a pending offer")?;
        self.rtc.sdp_api().accept_answer(pending, answer).context("str0m refused the answer")?;
        self.drain();
        let pt = self.rtc.writer(self.mid).and_then(|w| w.payload_params().next().map(PayloadParams::pt));
        if pt.is_none() {
            bail!("the answer negotiated no codec for {:?}", self.audio);
        }
        self.pt = pt;
        Ok(())
    }

    /// Whether received payloads are kept for the tone check.
    pub fn keep_audio(&mut self, keep: bool) {
        self.keep_audio = keep;
    }

    /// Reads what arrived on the socket and fires due timers.
    pub fn service(&mut self, buf: &mut [u8]) {
        if self.error.is_some() {
            return;
        }
        loop {
            match self.socket.recv_from(buf) {
                Ok((n, source)) => {
                    self.datagrams += 1;
                    let class = match buf[0] {
                        0..=3 => Some(0),
                        20..=63 => Some(1),
                        128..=191 => Some(2),
                        _ => None,
                    };
                    if let Some(c) = class {
                        self.first_in[c].get_or_insert_with(Instant::now);
                    }
                    self.map_unsignalled_ssrc(&buf[..n]);
                    let Ok(contents) = buf[..n].try_into() else { continue };
                    let input = Input::Receive(
                        Instant::now(),
                        Receive { proto: Protocol::Udp, source, destination: self.local, contents },
                    );
                    // Everything on this socket is this client's (no
                    // `Rtc::accepts` demux: it drops DTLS that arrives
                    // before ICE has a valid pair, as rtpengine's does, and
                    // the peer then waits for its DTLS retransmit timer).
                    if let Err(e) = self.rtc.handle_input(input) {
                        self.error = Some(format!("input: {e}"));
                        return;
                    }
                    self.drain();
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(_) => break,
            }
        }
        let now = Instant::now();
        if now >= self.timeout {
            if let Err(e) = self.rtc.handle_input(Input::Timeout(now)) {
                self.error = Some(format!("timeout: {e}"));
                return;
            }
            self.drain();
        }
    }

    /// A browser plays an RTP stream whose SSRC the answer did not signal
    /// (webrtcbin's answers carry no `a=ssrc`, nor the mid header extension)
    /// on its only audio section; str0m needs to be told.
    fn map_unsignalled_ssrc(&mut self, datagram: &[u8]) {
        // RTP (RFC 7983: first byte 128-191), not RTCP (payload types 192-223).
        if datagram.len() < 12 || !(128..=191).contains(&datagram[0]) || (192..=223).contains(&datagram[1]) {
            return;
        }
        let ssrc = u32::from_be_bytes([datagram[8], datagram[9], datagram[10], datagram[11]]);
        if self.known_ssrc == Some(ssrc) {
            return;
        }
        self.known_ssrc = Some(ssrc);
        let mut api = self.rtc.direct_api();
        if api.stream_rx(&ssrc.into()).is_none() {
            api.expect_stream_rx(ssrc.into(), None, self.mid, None);
        }
    }

    /// Sends the next payload (one packet time of audio) once connected.
    pub fn send_frame(&mut self) {
        let (Some(pt), Some(_), None) = (self.pt, self.connected, &self.error) else { return };
        let payload = self.payloads[self.next % self.payloads.len()].clone();
        self.next += 1;
        let (rate, step) = self.audio.clock();
        let time = MediaTime::new(self.media_time, rate);
        self.media_time += step;
        let Some(writer) = self.rtc.writer(self.mid) else { return };
        if let Err(e) = writer.write(pt, Instant::now(), time, payload) {
            self.error = Some(format!("write: {e}"));
            return;
        }
        self.drain();
    }

    /// Skips the next payload, as if it was sent and lost on the way: the
    /// media time moves on.
    pub fn skip_frame(&mut self) {
        self.next += 1;
        self.media_time += self.audio.clock().1;
    }

    /// Polls str0m until it only has a timeout left: sends what it must
    /// send, takes the events.
    fn drain(&mut self) {
        loop {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(t)) => {
                    self.timeout = t;
                    return;
                }
                Ok(Output::Transmit(t)) => {
                    let _ = self.socket.send_to(&t.contents, t.destination);
                }
                Ok(Output::Event(e)) => match e {
                    Event::Connected => {
                        self.connected.get_or_insert_with(Instant::now);
                    }
                    Event::IceConnectionStateChange(state) => self.ice_state = state,
                    Event::MediaData(data) => {
                        self.received += 1;
                        self.first_rx.get_or_insert_with(Instant::now);
                        if self.keep_audio && self.heard.len() < KEEP_PACKETS {
                            self.heard.push(data.data.to_vec());
                        }
                    }
                    _ => {}
                },
                Err(e) => {
                    self.error = Some(format!("poll: {e}"));
                    return;
                }
            }
        }
    }

    /// The audio kept while `keep_audio` was on, decoded.
    pub fn heard(&self) -> Result<Pcm> {
        decode(self.audio, &self.heard)
    }
}

/// An answer that does not bundle (rtpengine's answers carry no
/// `a=group:BUNDLE`) is, with one media section, the same as one that
/// bundles it alone; browsers take either, str0m only the latter.
fn with_bundle_group(sdp: &str) -> String {
    if sdp.contains("a=group:BUNDLE") {
        return sdp.to_string();
    }
    let Some(mid) = sdp.lines().find_map(|l| l.strip_prefix("a=mid:")) else { return sdp.to_string() };
    let mut out = String::with_capacity(sdp.len() + 32);
    for line in sdp.split_inclusive('\n') {
        if line.starts_with("m=") && !out.contains("a=group:") {
            out.push_str(&format!("a=group:BUNDLE {}\r\n", mid.trim()));
        }
        out.push_str(line);
    }
    out
}

/// Decodes received payloads of one codec to mono PCM (Opus at 48 kHz,
/// PCMU at 8 kHz) for the tone check.
pub fn decode(audio: Audio, payloads: &[Vec<u8>]) -> Result<Pcm> {
    match audio {
        Audio::Pcmu => Ok(Pcm { rate: 8000, samples: payloads.iter().flatten().map(|b| ulaw_decode(*b)).collect() }),
        Audio::Opus => {
            let mut decoder = opus::Decoder::new(48000, opus::Channels::Mono).context("libopus decoder")?;
            let mut samples = Vec::with_capacity(payloads.len() * 960);
            let mut frame = vec![0f32; 5760];
            for p in payloads {
                let n = decoder.decode_float(p, &mut frame, false).context("decoding received Opus")?;
                samples.extend_from_slice(&frame[..n]);
            }
            Ok(Pcm { rate: 48000, samples })
        }
    }
}

impl Client {
    /// ICE and DTLS state and datagram count, for error messages.
    pub fn state(&self) -> String {
        format!(
            "ICE {:?}, DTLS-SRTP up: {}, {} datagrams in, {} media packets",
            self.ice_state,
            self.connected.is_some(),
            self.datagrams,
            self.received
        )
    }
}
