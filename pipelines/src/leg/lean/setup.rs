//! How a lean leg's str0m session is configured, and what its SDP
//! negotiation is given: the codecs we allow (at their usual payload
//! types), telephone-event, RTP mode, and one DTLS certificate for the
//! whole process.
//!
//! str0m answers with every codec of an offer it is configured for; the
//! codec we send and receive is chosen by our own rules (`codec::choose`:
//! the offerer's order, among the codecs the session allows), so the offer
//! str0m sees is narrowed to that codec and its telephone-event first.

use crate::codec::sdp::SessionDescription;
use crate::codec::{Codec, CodecChoice};
use crate::Error;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use str0m::config::{CryptoProvider, DtlsCert};
use str0m::format::{Codec as RtcCodec, FormatParams};
use str0m::media::Frequency;
use str0m::rtp::Extension;
use str0m::{Rtc, RtcConfig};

/// The one RTP header extension negotiated, the section's mid (RFC 8843),
/// at the id browsers give it. The others str0m offers are left out, as
/// webrtcbin leaves them out: abs-send-time and transport-cc time one hop
/// for a sender's bandwidth estimate, which nothing here runs on a call's
/// audio, and with transport-cc (which browsers ask for on Opus) str0m
/// sends the peer feedback every 50 ms; ssrc-audio-level describes a
/// browser's audio to a mixer, and nothing here reads it. A relayed packet passes on no extension of the
/// hop it came over either (its ids belong to that negotiation; a SIP
/// phone negotiated none): the received packet is rebuilt without them
/// (`transport.rs`), and what str0m sends carries only its own.
const MID_EXTENSION_ID: u8 = 4;

/// Payload types of the telephone-event we offer, at 8 and 48 kHz.
pub(super) const TELEPHONE_EVENT_8K: u8 = 126;
pub(super) const TELEPHONE_EVENT_48K: u8 = 110;

/// The crypto provider (the system's OpenSSL) and the certificate every
/// lean leg presents: made once, as a certificate per leg would cost a key
/// generation per call.
fn shared() -> &'static (Arc<CryptoProvider>, DtlsCert) {
    static SHARED: OnceLock<(Arc<CryptoProvider>, DtlsCert)> = OnceLock::new();
    SHARED.get_or_init(|| {
        let provider = str0m::crypto::from_feature_flags();
        let cert = provider.dtls_provider.generate_certificate().expect("generating the DTLS certificate");
        (Arc::new(provider), cert)
    })
}

/// A session configuration allowing `codecs`, packets in and out whole.
pub(super) fn config(codecs: &[Codec]) -> RtcConfig {
    let (provider, cert) = shared();
    let mut config = Rtc::builder()
        .set_crypto_provider(provider.clone())
        .set_dtls_cert(cert.clone())
        .set_rtp_mode(true)
        // Our stream's statistics, which carry the peer's receiver reports
        // (`reports.rs`): as often as browsers report.
        .set_stats_interval(Some(Duration::from_secs(1)))
        .clear_extension_map()
        .set_extension(MID_EXTENSION_ID, Extension::RtpMid)
        .clear_codecs();
    for codec in codecs {
        config = match codec {
            Codec::Opus => config.enable_opus(true, false),
            Codec::G722 => config.enable_g722(true, false),
            Codec::Pcmu => config.enable_pcmu(true, false),
            Codec::Pcma => config.enable_pcma(true, false),
        };
    }
    for (pt, rate) in [(TELEPHONE_EVENT_48K, Frequency::FORTY_EIGHT_KHZ), (TELEPHONE_EVENT_8K, Frequency::EIGHT_KHZ)] {
        config.codec_config().add_config(pt.into(), None, RtcCodec::Tele, rate, None, FormatParams::default());
    }
    config
}

/// `offer` with its audio section narrowed to `choice` (and its
/// telephone-event), every other section as it was.
pub(super) fn narrow_offer(offer: &SessionDescription, choice: &CodecChoice) -> Result<String, Error> {
    let (index, _) = offer.audio().ok_or_else(|| Error::InvalidSdp("there is no audio section".into()))?;
    let mut narrowed = offer.clone();
    let media = &mut narrowed.media[index];
    let keep: Vec<u8> = std::iter::once(choice.payload_type).chain(choice.telephone_event.map(|(pt, _)| pt)).collect();
    media.formats.retain(|pt| keep.contains(pt));
    media.attributes.retain(|a| {
        let per_format = matches!(a.name.as_str(), "rtpmap" | "fmtp" | "rtcp-fb");
        let format = a.value.as_deref().and_then(|v| v.split(' ').next()).and_then(|pt| pt.parse::<u8>().ok());
        !per_format || format.is_none_or(|pt| keep.contains(&pt))
    });
    Ok(narrowed.to_string())
}

/// str0m's `answer` with every refused section (port 0: video, a second
/// audio) given a format back: str0m writes none, and a browser will not
/// parse an m-line without one (RFC 4566 wants at least one). The offered
/// section's first format is the usual choice (RFC 3264 §6).
pub(super) fn with_refused_formats(answer: &str, offer: &SessionDescription) -> String {
    let mut index = 0;
    let mut out = String::with_capacity(answer.len() + 16);
    for line in answer.split_inclusive('\n') {
        let Some(m) = line.strip_prefix("m=") else {
            out.push_str(line);
            continue;
        };
        let fields: Vec<&str> = m.split_whitespace().collect();
        let offered = offer.media.get(index).and_then(|media| media.formats.first());
        index += 1;
        match (fields.as_slice(), offered) {
            ([kind, "0", protocol], Some(pt)) => out.push_str(&format!("m={kind} 0 {protocol} {pt}\r\n")),
            _ => out.push_str(line),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_offer_keeps_only_the_chosen_codec_and_its_telephone_event() {
        let offer = SessionDescription::parse(
            "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n\
             m=audio 9 UDP/TLS/RTP/SAVPF 111 0 8 126\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\n\
             a=rtpmap:111 opus/48000/2\r\na=rtcp-fb:111 transport-cc\r\na=fmtp:111 minptime=10\r\n\
             a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:126 telephone-event/8000\r\n\
             a=rtcp-fb:* nack\r\na=ice-ufrag:abcd\r\n",
        )
        .unwrap();
        let (_, media) = offer.audio().unwrap();
        let choice = crate::codec::choose(media, &[Codec::Pcmu]).unwrap();
        let narrowed = narrow_offer(&offer, &choice).unwrap();
        assert!(narrowed.contains("m=audio 9 UDP/TLS/RTP/SAVPF 0 126\r\n"), "{narrowed}");
        assert!(!narrowed.contains("opus") && !narrowed.contains("PCMA"), "{narrowed}");
        assert!(narrowed.contains("a=rtpmap:126 telephone-event/8000"));
        assert!(narrowed.contains("a=ice-ufrag:abcd") && narrowed.contains("a=mid:0"), "transport kept");
        assert!(narrowed.contains("a=rtcp-fb:* nack"), "wildcard feedback kept");
    }

    #[test]
    fn a_refused_section_gets_the_offered_first_format() {
        let offer = SessionDescription::parse(
            "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n\
             a=rtpmap:111 opus/48000/2\r\nm=video 9 UDP/TLS/RTP/SAVPF 96 97\r\na=rtpmap:96 VP8/90000\r\n",
        )
        .unwrap();
        let answer = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\nm=video 0 UDP/TLS/RTP/SAVPF \r\na=mid:1\r\n";
        assert_eq!(
            with_refused_formats(answer, &offer),
            "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\nm=video 0 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\n"
        );
    }
}
