//! What audio is encoded as and how it is described. This file is the codec
//! table: what each audio codec is called in SDP, which GStreamer elements
//! encode, payload and depayload it, and how an offer is matched against
//! what we support. `sdp.rs` reads and writes the descriptions,
//! `opus_decoder.rs` decodes Opus through libopus, `g711.rs` decodes G.711
//! (G.722 is decoded by `avdec_g722`, see `leg/receive.rs`). Pure data and
//! parsing, no pipelines: every other folder builds on it.

pub(crate) mod g711;
pub(crate) mod opus_decoder;
pub mod sdp;

use crate::codec::sdp::{Media, SessionDescription};
use crate::Error;
use serde::{Deserialize, Serialize};

/// Audio codecs the bridge speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Codec {
    #[serde(alias = "opus")]
    Opus,
    G722,
    #[serde(alias = "pcmu")]
    Pcmu,
    #[serde(alias = "pcma")]
    Pcma,
}

/// Default preference: wideband first, then the G.711 pair every SIP peer has.
pub const DEFAULT_PREFERENCE: [Codec; 4] = [Codec::Opus, Codec::G722, Codec::Pcmu, Codec::Pcma];

impl Codec {
    pub fn from_encoding(name: &str, clock_rate: u32) -> Option<Codec> {
        match (name.to_ascii_uppercase().as_str(), clock_rate) {
            ("OPUS", 48000) => Some(Codec::Opus),
            ("G722", 8000) => Some(Codec::G722),
            ("PCMU", 8000) => Some(Codec::Pcmu),
            ("PCMA", 8000) => Some(Codec::Pcma),
            _ => None,
        }
    }

    /// Encoding name as written in `a=rtpmap` (and in GStreamer RTP caps,
    /// uppercased).
    pub fn sdp_name(self) -> &'static str {
        match self {
            Codec::Opus => "opus",
            Codec::G722 => "G722",
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
        }
    }

    /// RTP clock rate. G.722 samples at 16 kHz but says 8000 (RFC 3551 4.5.2).
    pub fn clock_rate(self) -> u32 {
        match self {
            Codec::Opus => 48000,
            _ => 8000,
        }
    }

    /// Rate of the decoded audio.
    pub fn sample_rate(self) -> u32 {
        match self {
            Codec::Opus => 48000,
            Codec::G722 => 16000,
            _ => 8000,
        }
    }

    /// The payload type we offer it with: static ones where they exist,
    /// Chromium's 111 for Opus.
    pub fn default_payload_type(self) -> u8 {
        match self {
            Codec::Opus => 111,
            Codec::G722 => 9,
            Codec::Pcmu => 0,
            Codec::Pcma => 8,
        }
    }

    pub fn rtpmap_value(self) -> String {
        match self {
            Codec::Opus => "opus/48000/2".into(),
            c => format!("{}/{}", c.sdp_name(), c.clock_rate()),
        }
    }

    /// Parameters for `a=fmtp` when we offer or answer this codec.
    pub fn fmtp(self) -> Option<&'static str> {
        match self {
            Codec::Opus => Some("minptime=10;useinbandfec=1"),
            _ => None,
        }
    }

    pub fn depayloader(self) -> &'static str {
        match self {
            Codec::Opus => "rtpopusdepay",
            Codec::G722 => "rtpg722depay",
            Codec::Pcmu => "rtppcmudepay",
            Codec::Pcma => "rtppcmadepay",
        }
    }

    pub fn payloader(self) -> &'static str {
        match self {
            Codec::Opus => "rtpopuspay",
            Codec::G722 => "rtpg722pay",
            Codec::Pcmu => "rtppcmupay",
            Codec::Pcma => "rtppcmapay",
        }
    }

    pub fn encoder(self) -> &'static str {
        match self {
            Codec::Opus => "opusenc",
            Codec::G722 => "avenc_g722",
            Codec::Pcmu => "mulawenc",
            Codec::Pcma => "alawenc",
        }
    }
}

/// What an offer/answer exchange settled on for one audio stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodecChoice {
    pub codec: Codec,
    /// Payload type used on the wire (the offerer's number).
    pub payload_type: u8,
    /// RFC 4733 telephone-event payload type and clock rate, if both sides
    /// have it.
    pub telephone_event: Option<(u8, u32)>,
    /// Packetisation time in ms (20 unless the peer asked otherwise).
    pub ptime: u32,
}

/// Picks the codec for an offered media section: the first payload type in
/// the offerer's order that we support and the caller allows. No common
/// codec is an error the SIP layer turns into 488.
pub fn choose(media: &Media, allowed: &[Codec]) -> Result<CodecChoice, Error> {
    let mut offered = Vec::new();
    for pt in &media.formats {
        let Some(map) = media.rtpmap(*pt) else { continue };
        offered.push(format!("{}/{}", map.encoding, map.clock_rate));
        if let Some(codec) = Codec::from_encoding(&map.encoding, map.clock_rate) {
            if allowed.contains(&codec) {
                let telephone_event = telephone_event(media, codec.clock_rate());
                let ptime = media.ptime().unwrap_or(20);
                return Ok(CodecChoice { codec, payload_type: *pt, telephone_event, ptime });
            }
        }
    }
    let ours: Vec<&str> = allowed.iter().map(|c| c.sdp_name()).collect();
    Err(Error::NoCommonCodec(format!("offered {}; we accept {}", offered.join(", "), ours.join(", "))))
}

/// The telephone-event payload type to use alongside a codec of
/// `clock_rate`: the one at the same rate if offered, else any.
pub fn telephone_event(media: &Media, clock_rate: u32) -> Option<(u8, u32)> {
    let events: Vec<(u8, u32)> = media
        .formats
        .iter()
        .filter_map(|pt| {
            media
                .rtpmap(*pt)
                .filter(|m| m.encoding.eq_ignore_ascii_case("telephone-event"))
                .map(|m| (*pt, m.clock_rate))
        })
        .collect();
    events.iter().find(|(_, rate)| *rate == clock_rate).or(events.first()).copied()
}

/// Reads the codec both sides settled on from a final answer (the first
/// format of its audio section).
pub fn from_answer(answer: &SessionDescription) -> Result<CodecChoice, Error> {
    let (_, media) = answer.audio().ok_or_else(|| Error::InvalidSdp("the answer has no audio section".into()))?;
    if media.port == 0 {
        return Err(Error::NoCommonCodec("the answer rejected the audio stream (port 0)".into()));
    }
    choose(media, &DEFAULT_PREFERENCE)
}

/// RTP caps for a payload type, as the receive chains (`leg/decode.rs`) and
/// relayed packets need them (Opus says `encoding-params=2`).
pub(crate) fn rtp_caps(encoding: &str, clock_rate: u32, pt: u8, stereo_params: bool) -> gst::Caps {
    let mut caps = gst::Caps::builder("application/x-rtp")
        .field("media", "audio")
        .field("encoding-name", encoding.to_ascii_uppercase())
        .field("clock-rate", clock_rate as i32)
        .field("payload", pt as i32);
    if stereo_params {
        caps = caps.field("encoding-params", "2");
    }
    caps.build()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(formats: &str, extra: &str) -> SessionDescription {
        SessionDescription::parse(&format!(
            "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP {formats}\r\n{extra}"
        ))
        .unwrap()
    }

    #[test]
    fn follows_the_offerers_order() {
        let sdp = offer("0 8 9", "");
        let choice = choose(sdp.audio().unwrap().1, &DEFAULT_PREFERENCE).unwrap();
        assert_eq!(choice.codec, Codec::Pcmu);
        assert_eq!(choice.payload_type, 0);
        assert_eq!(choice.ptime, 20);
        assert_eq!(choice.telephone_event, None);
    }

    #[test]
    fn chromium_offer_picks_opus_and_matching_telephone_event() {
        let sdp = offer(
            "111 63 9 0 8 13 110 126",
            "a=rtpmap:111 opus/48000/2\r\na=rtpmap:63 red/48000/2\r\na=rtpmap:9 G722/8000\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:13 CN/8000\r\na=rtpmap:110 telephone-event/48000\r\na=rtpmap:126 telephone-event/8000\r\n",
        );
        let choice = choose(sdp.audio().unwrap().1, &DEFAULT_PREFERENCE).unwrap();
        assert_eq!((choice.codec, choice.payload_type), (Codec::Opus, 111));
        assert_eq!(choice.telephone_event, Some((110, 48000)));
        let pcmu_only = choose(sdp.audio().unwrap().1, &[Codec::Pcmu]).unwrap();
        assert_eq!(pcmu_only.telephone_event, Some((126, 8000)));
    }

    #[test]
    fn firefox_opus_109_and_ptime_30() {
        let sdp = offer("109 101", "a=rtpmap:109 opus/48000/2\r\na=rtpmap:101 telephone-event/8000\r\na=ptime:30\r\n");
        let choice = choose(sdp.audio().unwrap().1, &DEFAULT_PREFERENCE).unwrap();
        assert_eq!((choice.codec, choice.payload_type, choice.ptime), (Codec::Opus, 109, 30));
        assert_eq!(choice.telephone_event, Some((101, 8000)), "falls back to the only telephone-event offered");
    }

    #[test]
    fn no_common_codec_says_what_was_offered() {
        let sdp = offer("18 3", "a=rtpmap:18 G729/8000\r\n");
        let err = choose(sdp.audio().unwrap().1, &DEFAULT_PREFERENCE).unwrap_err();
        assert!(matches!(err, Error::NoCommonCodec(_)));
        assert!(err.to_string().contains("G729/8000"), "{err}");
    }
}
