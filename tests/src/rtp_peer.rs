//! A plain RTP peer made of two `gst-launch-1.0` processes: one sends a
//! sine tone encoded with a given codec, one receives, decodes and writes
//! a WAV. It stands in for a SIP phone's media on the RTP leg.

use crate::audio::{read_wav, Pcm};
use crate::process::{self, free_udp_port, Child};
use anyhow::Result;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The codec of an RTP peer, with its payload type and elements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerCodec {
    Pcmu,
    Pcma,
    G722,
    Opus,
}

impl PeerCodec {
    pub fn payload_type(self) -> u8 {
        match self {
            PeerCodec::Pcmu => 0,
            PeerCodec::Pcma => 8,
            PeerCodec::G722 => 9,
            PeerCodec::Opus => 96,
        }
    }

    pub fn rtpmap(self) -> &'static str {
        match self {
            PeerCodec::Pcmu => "PCMU/8000",
            PeerCodec::Pcma => "PCMA/8000",
            PeerCodec::G722 => "G722/8000",
            PeerCodec::Opus => "opus/48000/2",
        }
    }

    fn caps(self) -> String {
        let (name, rate) = match self {
            PeerCodec::Pcmu => ("PCMU", 8000),
            PeerCodec::Pcma => ("PCMA", 8000),
            PeerCodec::G722 => ("G722", 8000),
            PeerCodec::Opus => ("OPUS", 48000),
        };
        format!("application/x-rtp,media=audio,clock-rate={rate},encoding-name={name},payload={}", self.payload_type())
    }

    fn encode(self) -> &'static str {
        match self {
            PeerCodec::Pcmu => "audioresample ! audio/x-raw,rate=8000 ! mulawenc ! rtppcmupay pt=0",
            PeerCodec::Pcma => "audioresample ! audio/x-raw,rate=8000 ! alawenc ! rtppcmapay pt=8",
            PeerCodec::G722 => "audioresample ! audio/x-raw,rate=16000 ! avenc_g722 ! rtpg722pay pt=9",
            PeerCodec::Opus => "audioresample ! audio/x-raw,rate=48000 ! opusenc ! rtpopuspay pt=96",
        }
    }

    fn decode(self) -> &'static str {
        match self {
            PeerCodec::Pcmu => "rtppcmudepay ! mulawdec",
            PeerCodec::Pcma => "rtppcmadepay ! alawdec",
            PeerCodec::G722 => "rtpg722depay ! avdec_g722",
            PeerCodec::Opus => "rtpopusdepay ! opusdec",
        }
    }
}

pub struct RtpPeer {
    pub codec: PeerCodec,
    /// Where the peer receives RTP (what its SDP advertises).
    pub port: u16,
    recording: PathBuf,
    receiver: Child,
    sender: Option<Child>,
    dir: PathBuf,
    name: String,
}

impl RtpPeer {
    /// Starts the receiving half; the sender starts with [`RtpPeer::send_tone`]
    /// once the bridge's address is known.
    pub fn start(dir: &Path, name: &str, codec: PeerCodec) -> Result<RtpPeer> {
        let port = free_udp_port();
        let recording = dir.join(format!("{name}-received.wav"));
        let pipeline = format!(
            "udpsrc address=127.0.0.1 port={port} caps=\"{}\" ! rtpjitterbuffer latency=60 ! {} ! audioconvert ! audioresample ! audio/x-raw,format=S16LE,channels=1,rate=16000 ! wavenc ! filesink location={}",
            codec.caps(),
            codec.decode(),
            recording.display()
        );
        let receiver = gst_launch(dir, &format!("{name}-rx"), &pipeline)?;
        Ok(RtpPeer { codec, port, recording, receiver, sender: None, dir: dir.to_path_buf(), name: name.to_string() })
    }

    /// An SDP (offer or answer) describing this peer: one codec and
    /// telephone-event, no rtcp-mux, no direction attribute, as phones write it.
    pub fn sdp(&self, ptime: Option<u32>) -> String {
        let pt = self.codec.payload_type();
        let mut sdp = format!(
            "v=0\r\no=peer 1 1 IN IP4 127.0.0.1\r\ns=gst\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {} RTP/AVP {pt} 101\r\na=rtpmap:{pt} {}\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n",
            self.port,
            self.codec.rtpmap()
        );
        if let Some(p) = ptime {
            sdp.push_str(&format!("a=ptime:{p}\r\n"));
        }
        sdp
    }

    /// Starts sending a tone of `hz` to `to`.
    pub fn send_tone(&mut self, hz: u32, to: SocketAddr) -> Result<()> {
        let pipeline = format!(
            "audiotestsrc is-live=true wave=sine freq={hz} volume=0.3 ! audio/x-raw,channels=1 ! {} ! udpsink host={} port={} sync=false",
            self.codec.encode(),
            to.ip(),
            to.port()
        );
        self.sender = Some(gst_launch(&self.dir, &format!("{}-tx", self.name), &pipeline)?);
        Ok(())
    }

    /// Stops sending, as a phone that lost power would (no BYE, no RTCP BYE).
    pub fn stop_sending(&mut self) {
        if let Some(mut s) = self.sender.take() {
            s.signal(libc::SIGKILL);
            s.stop();
        }
    }

    /// Stops both halves (EOS first, so the WAV header is written) and
    /// returns what the peer received.
    pub fn finish(mut self) -> Result<Pcm> {
        if let Some(mut s) = self.sender.take() {
            s.stop();
        }
        self.receiver.signal(libc::SIGINT);
        self.receiver.wait_timeout(Duration::from_secs(5))?;
        read_wav(&self.recording)
    }
}

/// `gst-launch-1.0 -e PIPELINE`: -e turns SIGINT into EOS so files close.
pub fn gst_launch(dir: &Path, name: &str, pipeline: &str) -> Result<Child> {
    let mut cmd = Command::new("gst-launch-1.0");
    cmd.arg("-e").args(shell_words(pipeline));
    process::spawn(&mut cmd, dir, name, Duration::from_secs(180))
}

/// Splits a gst-launch description into arguments, keeping quoted caps whole.
pub fn shell_words(s: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in s.chars() {
        match c {
            '"' => quoted = !quoted,
            ' ' if !quoted => {
                if !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                }
            }
            _ => cur.push(c),
        }
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    words
}

/// The payload of an RTP packet (RFC 3550 5.1/5.3.1): after the fixed
/// header, the CSRC list and any header extension, before any padding.
/// `None` if it is not RTP version 2 or is truncated. WebRTC senders put
/// header extensions (mid, audio level, ...) on every packet, and relays
/// such as Janus pass them on to the plain-RTP side: a receiver that skips
/// only the CSRCs reads the extension as audio.
pub fn rtp_payload(packet: &[u8]) -> Option<&[u8]> {
    if packet.len() < 12 || packet[0] >> 6 != 2 {
        return None;
    }
    let mut start = 12 + 4 * (packet[0] & 0x0f) as usize;
    if packet[0] & 0x10 != 0 {
        let words = u16::from_be_bytes([*packet.get(start + 2)?, *packet.get(start + 3)?]) as usize;
        start += 4 + 4 * words;
    }
    let mut end = packet.len();
    if packet[0] & 0x20 != 0 {
        end = end.checked_sub(*packet.last()? as usize)?;
    }
    packet.get(start..end)
}

#[cfg(test)]
mod tests {
    use super::rtp_payload;

    #[test]
    fn rtp_payload_skips_csrcs_extensions_and_padding() {
        let mut p = vec![0x80, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1];
        p.extend_from_slice(&[1, 2, 3]);
        assert_eq!(rtp_payload(&p), Some(&[1u8, 2, 3][..]));
        // One CSRC, a one-word extension (RFC 8285 one-byte form), 2 bytes of padding.
        let mut p = vec![0xb1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 9, 9, 9, 9, 0xbe, 0xde, 0, 1, 0x10, 0xff, 0, 0];
        p.extend_from_slice(&[7, 8, 0, 2]);
        assert_eq!(rtp_payload(&p), Some(&[7u8, 8][..]));
        assert_eq!(rtp_payload(&[0x90, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0xbe]), None);
    }
}
