//! One lean leg's transport: its UDP socket and the sans-IO str0m `Rtc`
//! (ICE as the controlled side, DTLS, SRTP, RTCP) in RTP mode, so that
//! packets come out and go in whole, never depacketized.
//!
//! Nothing here has a thread. Datagrams are fed in by a shared socket
//! thread ([`crate::runtime::reactor`]), timers by the shared timer thread
//! (`runtime/ticker.rs`), outgoing RTP by whoever sends (the relay, the send
//! chain's sink). Whatever str0m wants sent leaves at once from the
//! calling thread; what it reports is returned as [`Happening`]s for the
//! caller to act on outside the lock. What str0m sends from a relayed
//! candidate goes through the leg's TURN client (`turn.rs`) instead.

use super::reports::OutgoingStats;
use super::turn::TurnClient;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;
use str0m::media::{MediaKind, Mid};
use str0m::net::{Protocol, Receive};
use str0m::rtp::{RtpWrite, SeqNo};
use str0m::{Event, IceConnectionState, Input, Output, Rtc};

/// What the transport reports to its leg.
pub(super) enum Happening {
    /// ICE and DTLS are up: media may flow.
    Connected,
    /// ICE lost the peer (it may come back).
    Disconnected,
    /// ICE has a working pair again (after a loss, or an ICE restart, which
    /// str0m does not report as `Connected` a second time).
    IceUp,
    /// A decrypted RTP packet from the peer, header and payload.
    Rtp(Vec<u8>),
    /// Our stream's statistics, with what the peer's receiver reports said.
    Stats(OutgoingStats),
}

pub(super) struct Transport {
    socket: UdpSocket,
    local: SocketAddr,
    /// The TURN client whose relayed address is a local candidate.
    turn: Option<Arc<TurnClient>>,
    state: Mutex<State>,
    /// When str0m next wants `Input::Timeout`, as ms on [`clock_ms`].
    deadline_ms: AtomicU64,
}

struct State {
    rtc: Rtc,
    /// The audio section, once negotiated.
    mid: Option<Mid>,
    /// The outgoing stream's sequence numbers, extended past 16 bits
    /// (SRTP's index counts rollovers).
    sent_seq: Option<u64>,
    /// Set after the first error: str0m is no use after one.
    dead: bool,
}

impl Transport {
    pub fn new(rtc: Rtc, socket: UdpSocket, turn: Option<Arc<TurnClient>>) -> std::io::Result<Transport> {
        let local = socket.local_addr()?;
        Ok(Transport {
            socket,
            local,
            turn,
            state: Mutex::new(State { rtc, mid: None, sent_seq: None, dead: false }),
            deadline_ms: AtomicU64::new(0),
        })
    }

    /// Runs `change` on the `Rtc` (negotiation), then sends what it wants sent.
    pub fn with_rtc<T>(&self, change: impl FnOnce(&mut Rtc) -> T) -> (T, Vec<Happening>) {
        let mut state = self.state.lock().unwrap();
        let result = change(&mut state.rtc);
        let happenings = self.drain(&mut state);
        (result, happenings)
    }

    /// The TURN allocation's relayed address, if there is one.
    pub fn relayed(&self) -> Option<SocketAddr> {
        self.turn.as_ref().and_then(|t| t.relayed())
    }

    /// The audio section, once negotiated or offered.
    pub fn audio_mid(&self) -> Option<Mid> {
        self.state.lock().unwrap().mid
    }

    /// The audio section of an offer we made (str0m reports only remote
    /// ones as added).
    pub fn set_audio_mid(&self, mid: Mid) {
        self.state.lock().unwrap().mid.get_or_insert(mid);
    }

    /// A datagram from the socket.
    pub fn receive(&self, data: &[u8], source: SocketAddr) -> Vec<Happening> {
        self.receive_at(data, source, self.local)
    }

    /// A datagram `destination` received: our socket's address, or the
    /// relayed one (unwrapped from the TURN server's Data indication).
    pub fn receive_at(&self, data: &[u8], source: SocketAddr, destination: SocketAddr) -> Vec<Happening> {
        let Ok(contents) = data.try_into() else { return Vec::new() };
        let mut state = self.state.lock().unwrap();
        if state.dead {
            return Vec::new();
        }
        let input = Input::Receive(Instant::now(), Receive { proto: Protocol::Udp, source, destination, contents });
        if let Err(err) = state.rtc.handle_input(input) {
            // A malformed datagram from anyone on the path: drop it, the
            // session goes on.
            tracing::debug!(%err, %source, "lean WebRTC leg: datagram refused");
        }
        self.drain(&mut state)
    }

    /// Fires str0m's timers if due (ICE checks and keepalives, DTLS
    /// retransmits, RTCP reports).
    pub fn tick(&self, now: Instant) -> Vec<Happening> {
        if clock_ms(now) < self.deadline_ms.load(Ordering::Relaxed) {
            return Vec::new();
        }
        let mut state = self.state.lock().unwrap();
        if state.dead {
            return Vec::new();
        }
        if let Err(err) = state.rtc.handle_input(Input::Timeout(now)) {
            tracing::warn!(%err, "lean WebRTC leg: timer failed");
            state.dead = true;
            return vec![Happening::Disconnected];
        }
        self.drain(&mut state)
    }

    /// Sends one RTP packet of ours (header and payload) to the peer:
    /// payload type, sequence number, timestamp and marker are the
    /// packet's; the SSRC is the negotiated stream's. False when there is
    /// no stream to send on yet.
    pub fn send_rtp(&self, packet: &[u8]) -> bool {
        let Some(header) = RtpFields::of(packet) else { return false };
        let mut state = self.state.lock().unwrap();
        let State { rtc, mid, sent_seq, dead } = &mut *state;
        let Some(mid) = *mid else { return false };
        if *dead {
            return false;
        }
        let seq = extend(sent_seq, header.seq);
        let mut api = rtc.direct_api();
        let Some(stream) = api.stream_tx_by_mid(mid, None) else { return false };
        let write =
            RtpWrite::new(header.pt.into(), SeqNo::from(seq), header.timestamp, Instant::now(), &packet[header.len..])
                .marker(header.marker);
        stream.write_rtp(write);
        let _ = self.drain(&mut state);
        true
    }

    /// Ends the session: nothing more is sent or handled.
    pub fn close(&self) {
        let mut state = self.state.lock().unwrap();
        state.rtc.disconnect();
        state.dead = true;
    }

    /// Takes str0m's output until it only has a timeout left.
    fn drain(&self, state: &mut State) -> Vec<Happening> {
        let mut happenings = Vec::new();
        while !state.dead {
            match state.rtc.poll_output() {
                Ok(Output::Timeout(at)) => {
                    self.deadline_ms.store(clock_ms(at), Ordering::Relaxed);
                    break;
                }
                // A full socket buffer loses this datagram only, as it
                // would any other.
                Ok(Output::Transmit(t)) => match &self.turn {
                    Some(turn) if t.source != self.local => turn.send(&t.contents, t.destination),
                    _ => {
                        let _ = self.socket.send_to(&t.contents, t.destination);
                    }
                },
                Ok(Output::Event(event)) => match event {
                    Event::Connected => happenings.push(Happening::Connected),
                    Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                        happenings.push(Happening::Disconnected)
                    }
                    Event::IceConnectionStateChange(IceConnectionState::Connected | IceConnectionState::Completed) => {
                        happenings.push(Happening::IceUp)
                    }
                    Event::MediaAdded(added) if added.kind == MediaKind::Audio && state.mid.is_none() => {
                        state.mid = Some(added.mid);
                    }
                    Event::RtpPacket(packet) => happenings.push(Happening::Rtp(rtp_bytes(&packet))),
                    Event::MediaEgressStats(stats) => {
                        let ssrc = state.rtc.direct_api().stream_tx_by_mid(stats.mid, None).map(|s| *s.ssrc());
                        happenings.push(Happening::Stats(OutgoingStats { ssrc: ssrc.unwrap_or(0), stats }))
                    }
                    _ => {}
                },
                Err(err) => {
                    tracing::warn!(%err, "lean WebRTC leg: session failed");
                    state.dead = true;
                    happenings.push(Happening::Disconnected);
                }
            }
        }
        happenings
    }
}

/// Milliseconds since the first call, for deadlines kept in an atomic.
pub(super) fn clock_ms(at: Instant) -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    at.saturating_duration_since(*START.get_or_init(Instant::now)).as_millis() as u64
}

/// The fields of an RTP header we send with.
struct RtpFields {
    marker: bool,
    pt: u8,
    seq: u16,
    timestamp: u32,
    /// Header length, CSRCs and extension included.
    len: usize,
}

impl RtpFields {
    fn of(packet: &[u8]) -> Option<RtpFields> {
        if packet.len() < 12 || packet[0] >> 6 != 2 {
            return None;
        }
        let csrcs = (packet[0] & 0x0f) as usize;
        let mut len = 12 + 4 * csrcs;
        if packet[0] & 0x10 != 0 {
            let words = u16::from_be_bytes([*packet.get(len + 2)?, *packet.get(len + 3)?]) as usize;
            len += 4 + 4 * words;
        }
        (len <= packet.len()).then(|| RtpFields {
            marker: packet[1] & 0x80 != 0,
            pt: packet[1] & 0x7f,
            seq: u16::from_be_bytes([packet[2], packet[3]]),
            timestamp: u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]),
            len,
        })
    }
}

/// Extends a 16-bit sequence number by the rollovers seen so far; a
/// packet from just before the last rollover keeps the old count.
fn extend(last: &mut Option<u64>, seq: u16) -> u64 {
    let Some(prev) = *last else {
        *last = Some(seq as u64);
        return seq as u64;
    };
    let delta = seq.wrapping_sub(prev as u16) as i16 as i64;
    let extended = (prev as i64 + delta).max(0) as u64;
    if extended > prev {
        *last = Some(extended);
    }
    extended
}

/// A received packet as plain RTP: a 12-byte header (no extensions or
/// CSRCs: nothing downstream reads them) and the payload.
fn rtp_bytes(packet: &str0m::rtp::RtpPacket) -> Vec<u8> {
    let h = &packet.header;
    let mut out = Vec::with_capacity(12 + packet.payload.len());
    out.push(0x80);
    out.push(((h.marker as u8) << 7) | (*h.payload_type & 0x7f));
    out.extend_from_slice(&h.sequence_number.to_be_bytes());
    out.extend_from_slice(&h.timestamp.to_be_bytes());
    out.extend_from_slice(&(*h.ssrc).to_be_bytes());
    out.extend_from_slice(&packet.payload);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_extend_across_rollover_and_late_packets_keep_their_place() {
        let mut last = None;
        assert_eq!(extend(&mut last, 65534), 65534);
        assert_eq!(extend(&mut last, 65535), 65535);
        assert_eq!(extend(&mut last, 1), 65537, "after the rollover");
        assert_eq!(extend(&mut last, 0), 65536, "late, still after the rollover");
        assert_eq!(extend(&mut last, 65535), 65535, "late, from before the rollover");
        assert_eq!(extend(&mut last, 2), 65538);
    }

    #[test]
    fn header_fields_skip_csrcs_and_extensions() {
        let mut p = vec![0x91, 0x80 | 8, 0x12, 0x34, 0, 0, 1, 0, 0, 0, 0, 7];
        p.extend_from_slice(&[0, 0, 0, 9]); // one CSRC
        p.extend_from_slice(&[0xbe, 0xde, 0, 1, 0x10, 0xff, 0, 0]); // one extension word
        p.extend_from_slice(b"pay");
        let f = RtpFields::of(&p).unwrap();
        assert!(f.marker);
        assert_eq!((f.pt, f.seq, f.timestamp), (8, 0x1234, 256));
        assert_eq!(&p[f.len..], b"pay");
        assert!(RtpFields::of(&p[..14]).is_none(), "truncated");
    }
}
