//! SDES key exchange for RTP legs (RFC 4568 `a=crypto`) and the leg's SRTP
//! policy.
//!
//! Phones offer SRTP two ways: `RTP/SAVP` (SRTP or nothing) or `a=crypto`
//! lines inside `RTP/AVP` ("best effort": a peer that does not know SRTP
//! ignores them and answers plain). An answer keeps the offer's profile and
//! names one of the offered lines by its tag, with the answerer's own key.
//! Each side encrypts with its own key and decrypts with the other's.

use crate::codec::sdp::{Attribute, Media};
use crate::leg::srtp::{MasterKey, Suite};
use crate::Error;

/// Whether an RTP leg encrypts its media (SDES-SRTP).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SrtpPolicy {
    /// Plain RTP only: `a=crypto` in an `RTP/AVP` offer is ignored, an
    /// `RTP/SAVP` offer refused (488).
    Off,
    /// SRTP when the peer offers or accepts it: an SRTP offer is answered
    /// with SRTP, a plain one stays plain; our offers carry `a=crypto`
    /// inside `RTP/AVP`.
    #[default]
    Optional,
    /// SRTP or no call: our offers are `RTP/SAVP`; an offer or answer
    /// without a usable `a=crypto` is refused (488).
    Mandatory,
}

/// One `a=crypto` line: tag, suite and master key (no lifetime, no MKI).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crypto {
    pub tag: u32,
    pub key: MasterKey,
}

impl Crypto {
    /// Reads an `a=crypto` value. `Ok(None)` for a line we cannot use
    /// (unknown suite, MKI, several keys, session parameters), which an
    /// answerer skips; `Err` for one that is malformed.
    pub fn parse(value: &str) -> Result<Option<Crypto>, String> {
        let mut fields = value.split_ascii_whitespace();
        let (Some(tag), Some(suite), Some(key_params)) = (fields.next(), fields.next(), fields.next()) else {
            return Err(format!("a=crypto needs a tag, a suite and key parameters: {:?}", redact(value)));
        };
        let tag: u32 = tag
            .parse()
            .ok()
            .filter(|t| *t < 1_000_000_000)
            .ok_or_else(|| format!("a=crypto tag {tag:?} is not 1-9 digits"))?;
        let Some(suite) = Suite::from_sdp_name(suite) else { return Ok(None) };
        if fields.next().is_some() || key_params.contains(';') {
            return Ok(None);
        }
        let Some(inline) = key_params.strip_prefix("inline:") else {
            return Err(format!("a=crypto {tag}: key parameters must be inline:"));
        };
        let mut parts = inline.split('|');
        let encoded = parts.next().unwrap_or_default();
        // A lifetime (`|2^31`) is fine; an MKI (`|1:4`) is not supported.
        if parts.any(|p| p.contains(':')) {
            return Ok(None);
        }
        let bytes =
            openssl::base64::decode_block(encoded).map_err(|_| format!("a=crypto {tag}: the key is not base64"))?;
        MasterKey::from_bytes(suite, bytes)
            .map(|key| Some(Crypto { tag, key }))
            .map_err(|e| format!("a=crypto {tag}: {e}"))
    }

    pub fn attribute(&self) -> Attribute {
        let encoded = openssl::base64::encode_block(self.key.bytes());
        Attribute::value("crypto", format!("{} {} inline:{encoded}", self.tag, self.key.suite.sdp_name()))
    }
}

/// The key material a finished negotiation puts into effect: ours to
/// encrypt with, theirs to decrypt with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    pub local: Crypto,
    pub remote: MasterKey,
}

/// The profile and `a=crypto` lines of our offer. `current` is the key we
/// send with now: kept for its suite, so a re-offer does not disturb the
/// stream the peer is decrypting unless the peer picks another suite.
pub fn offer(policy: SrtpPolicy, current: Option<&Crypto>) -> (&'static str, Vec<Crypto>) {
    let lines = Suite::ALL
        .iter()
        .zip(1..)
        .map(|(suite, tag)| Crypto {
            tag,
            key: current
                .map(|c| c.key.clone())
                .filter(|k| k.suite == *suite)
                .unwrap_or_else(|| MasterKey::random(*suite)),
        })
        .collect();
    match policy {
        SrtpPolicy::Off => ("RTP/AVP", Vec::new()),
        SrtpPolicy::Optional => ("RTP/AVP", lines),
        SrtpPolicy::Mandatory => ("RTP/SAVP", lines),
    }
}

/// Checks an offer against the policy and picks the line to answer with
/// (`None`: plain RTP). `current` as for [`offer`].
pub fn answer(policy: SrtpPolicy, offered: &Media, current: Option<&Crypto>) -> Result<Option<Keys>, Error> {
    let secure_profile = is_secure_profile(&offered.protocol);
    let lines = crypto_lines(offered)?;
    if policy == SrtpPolicy::Off {
        if secure_profile {
            return Err(Error::Encryption(format!(
                "the offer requires SRTP ({}) and SRTP is off here",
                offered.protocol
            )));
        }
        return Ok(None);
    }
    let usable = lines.iter().flatten().next();
    match usable {
        Some(theirs) => {
            let key = current
                .map(|c| c.key.clone())
                .filter(|k| k.suite == theirs.key.suite)
                .unwrap_or_else(|| MasterKey::random(theirs.key.suite));
            Ok(Some(Keys { local: Crypto { tag: theirs.tag, key }, remote: theirs.key.clone() }))
        }
        None if secure_profile || policy == SrtpPolicy::Mandatory => Err(Error::Encryption(if lines.is_empty() {
            "SRTP is mandatory here and the offer has no a=crypto".into()
        } else {
            format!("no SRTP crypto suite in common (we take {})", supported_names())
        })),
        None => Ok(None),
    }
}

/// Reads the answer to our offer `ours` (`None`: the peer answered plain).
pub fn from_answer(policy: SrtpPolicy, ours: &[Crypto], answer: &Media) -> Result<Option<Keys>, Error> {
    let lines = crypto_lines(answer)?;
    let Some(theirs) = lines.into_iter().flatten().next() else {
        if policy == SrtpPolicy::Mandatory && !ours.is_empty() {
            return Err(Error::Encryption("SRTP is mandatory here and the answer has no usable a=crypto".into()));
        }
        return Ok(None);
    };
    let local = ours.iter().find(|c| c.tag == theirs.tag && c.key.suite == theirs.key.suite).ok_or_else(|| {
        Error::Encryption(format!("the answer's a=crypto tag {} names no line of our offer", theirs.tag))
    })?;
    Ok(Some(Keys { local: local.clone(), remote: theirs.key }))
}

pub fn is_secure_profile(protocol: &str) -> bool {
    protocol.eq_ignore_ascii_case("RTP/SAVP") || protocol.eq_ignore_ascii_case("RTP/SAVPF")
}

fn crypto_lines(media: &Media) -> Result<Vec<Option<Crypto>>, Error> {
    media.attribute_values("crypto").map(|v| Crypto::parse(v).map_err(Error::InvalidSdp)).collect()
}

fn supported_names() -> String {
    Suite::ALL.iter().map(|s| s.sdp_name()).collect::<Vec<_>>().join(", ")
}

/// An `a=crypto` value with its key replaced, fit for an error message.
fn redact(value: &str) -> String {
    match value.find("inline:") {
        Some(at) => format!("{}inline:...", &value[..at]),
        None => value.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::sdp::SessionDescription;

    fn media(protocol: &str, crypto: &[&str]) -> Media {
        let mut text =
            format!("v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nm=audio 4000 {protocol} 0\r\n");
        for line in crypto {
            text.push_str(&format!("a=crypto:{line}\r\n"));
        }
        SessionDescription::parse(&text).unwrap().media.remove(0)
    }

    const KEY_80: &str = "1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^20";

    #[test]
    fn an_srtp_offer_is_answered_with_the_same_tag_and_a_key_of_our_own() {
        for policy in [SrtpPolicy::Optional, SrtpPolicy::Mandatory] {
            for profile in ["RTP/AVP", "RTP/SAVP"] {
                let keys = answer(policy, &media(profile, &["9 FOO_BAR inline:AAAA", KEY_80]), None).unwrap().unwrap();
                assert_eq!(keys.local.tag, 1);
                assert_eq!(keys.local.key.suite, Suite::AesCm128HmacSha1_80);
                assert_ne!(keys.local.key, keys.remote, "each side sends with its own key");
                assert_eq!(
                    openssl::base64::encode_block(keys.remote.bytes()),
                    "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz"
                );
            }
        }
    }

    #[test]
    fn policies_refuse_what_they_must_with_an_encryption_error() {
        let plain = media("RTP/AVP", &[]);
        assert_eq!(answer(SrtpPolicy::Optional, &plain, None), Ok(None), "a plain offer stays plain");
        assert!(
            matches!(answer(SrtpPolicy::Mandatory, &plain, None), Err(Error::Encryption(m)) if m.contains("no a=crypto"))
        );
        assert!(matches!(answer(SrtpPolicy::Off, &media("RTP/SAVP", &[KEY_80]), None), Err(Error::Encryption(_))));
        assert_eq!(answer(SrtpPolicy::Off, &media("RTP/AVP", &[KEY_80]), None), Ok(None), "best effort SRTP ignored");
        let unknown = media("RTP/SAVP", &["1 F8_128_HMAC_SHA1_80 inline:AAAA"]);
        assert!(
            matches!(answer(SrtpPolicy::Optional, &unknown, None), Err(Error::Encryption(m)) if m.contains("in common"))
        );
    }

    #[test]
    fn mki_and_bad_keys() {
        assert_eq!(
            Crypto::parse("1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^20|1:4"),
            Ok(None)
        );
        let short = Crypto::parse("1 AES_CM_128_HMAC_SHA1_80 inline:AAAA").unwrap_err();
        assert!(short.contains("30 bytes"), "{short}");
        let garbage = Crypto::parse("x AES_CM_128_HMAC_SHA1_80 inline:AAAA").unwrap_err();
        assert!(!garbage.contains("AAAA"), "keys stay out of messages: {garbage}");
    }

    #[test]
    fn our_offer_and_its_answer() {
        let (profile, ours) = offer(SrtpPolicy::Mandatory, None);
        assert_eq!(profile, "RTP/SAVP");
        assert_eq!(ours.len(), 3);
        let line = |c: &Crypto| c.attribute().value.unwrap();
        let reply = Crypto { tag: ours[1].tag, key: MasterKey::random(ours[1].key.suite) };
        let keys = from_answer(SrtpPolicy::Mandatory, &ours, &media("RTP/SAVP", &[&line(&reply)])).unwrap().unwrap();
        assert_eq!(keys.local, ours[1]);
        assert_eq!(keys.remote, reply.key);
        assert!(matches!(
            from_answer(SrtpPolicy::Mandatory, &ours, &media("RTP/SAVP", &[])),
            Err(Error::Encryption(_))
        ));
        assert_eq!(from_answer(SrtpPolicy::Optional, &ours, &media("RTP/AVP", &[])), Ok(None));
        let (_, again) = offer(SrtpPolicy::Optional, Some(&keys.local));
        assert_eq!(again[1].key, keys.local.key, "a re-offer keeps the key in use");
        assert_ne!(again[0].key, ours[0].key);
        assert_eq!(offer(SrtpPolicy::Off, None), ("RTP/AVP", vec![]));
    }

    #[test]
    fn a_key_never_prints() {
        let key = MasterKey::random(Suite::AeadAes128Gcm);
        let shown = format!("{:?}", Crypto { tag: 1, key: key.clone() });
        assert!(!shown.contains(&openssl::base64::encode_block(key.bytes())));
        assert!(!shown.contains(&format!("{:?}", key.bytes())));
    }
}
