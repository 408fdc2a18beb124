//! SDES-SRTP for the bench's plain RTP legs: AES_CM_128_HMAC_SHA1_80 as
//! RFC 3711 describes it, written here from the RFC on OpenSSL's AES-CTR
//! and HMAC-SHA1 rather than taken from the product, so the load generator
//! checks sipbridge's SRTP instead of agreeing with itself. Only what a
//! phone needs: RTP both ways, SRTCP received (the RTCP tests read the
//! bridge's reports with it), no MKI, key derivation rate 0.

use anyhow::{bail, Result};
use openssl::base64;
use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::sign::Signer;
use openssl::symm::{encrypt, Cipher};

const SUITE: &str = "AES_CM_128_HMAC_SHA1_80";
const TAG_LEN: usize = 10;

/// A master key and salt (16 + 14 bytes), as carried in `a=crypto`.
#[derive(Clone)]
pub struct MasterKey([u8; 30]);

impl MasterKey {
    /// A random key.
    pub fn random() -> MasterKey {
        let mut bytes = [0u8; 30];
        openssl::rand::rand_bytes(&mut bytes).expect("OpenSSL's random source");
        MasterKey(bytes)
    }

    /// The SDP attribute offering this key.
    pub fn crypto_line(&self) -> String {
        format!("a=crypto:1 {SUITE} inline:{}\r\n", base64::encode_block(&self.0))
    }

    /// The key of the first `AES_CM_128_HMAC_SHA1_80` line of `sdp`.
    pub fn from_sdp(sdp: &str) -> Result<MasterKey> {
        let Some(inline) = sdp
            .lines()
            .filter(|l| l.starts_with("a=crypto:") && l.contains(SUITE))
            .find_map(|l| l.split("inline:").nth(1))
        else {
            bail!("no a=crypto with {SUITE} in:\n{sdp}");
        };
        let encoded = inline.split(['|', ' ']).next().unwrap_or_default();
        let bytes = base64::decode_block(encoded)?;
        match <[u8; 30]>::try_from(bytes.as_slice()) {
            Ok(key) => Ok(MasterKey(key)),
            Err(_) => bail!("a {SUITE} key is 30 bytes, not {}", bytes.len()),
        }
    }
}

/// One direction of SRTP with one master key.
pub struct Srtp {
    encryption: [u8; 16],
    authentication: [u8; 20],
    salt: [u8; 14],
    /// Rollover counter and highest sequence number seen or sent.
    roc: u32,
    last_seq: Option<u16>,
}

impl Srtp {
    pub fn new(key: &MasterKey) -> Srtp {
        let (encryption, authentication, salt) = key.session_keys(0);
        Srtp { encryption, authentication, salt, roc: 0, last_seq: None }
    }

    /// Encrypts and authenticates an RTP packet.
    pub fn protect(&mut self, packet: &[u8]) -> Result<Vec<u8>> {
        let header = header_len(packet)?;
        let seq = u16::from_be_bytes([packet[2], packet[3]]);
        let roc = self.index_roc(seq);
        let mut out = packet[..header].to_vec();
        out.extend(self.cipher(packet, roc, &packet[header..])?);
        let tag = self.tag(&out, roc)?;
        out.extend_from_slice(&tag);
        Ok(out)
    }

    /// Checks and decrypts an SRTP packet; `None` when it does not
    /// authenticate.
    pub fn unprotect(&mut self, packet: &[u8]) -> Option<Vec<u8>> {
        let header = header_len(packet).ok()?;
        if packet.len() < header + TAG_LEN {
            return None;
        }
        let (authenticated, tag) = packet.split_at(packet.len() - TAG_LEN);
        let seq = u16::from_be_bytes([packet[2], packet[3]]);
        let roc = self.index_roc(seq);
        if self.tag(authenticated, roc).ok()? != tag {
            return None;
        }
        let mut out = packet[..header].to_vec();
        out.extend(self.cipher(packet, roc, &authenticated[header..]).ok()?);
        Some(out)
    }

    /// The rollover counter for `seq` (RFC 3711 3.3.1, simplified to
    /// in-order streams with small reordering).
    fn index_roc(&mut self, seq: u16) -> u32 {
        if let Some(last) = self.last_seq {
            if seq < last && last - seq > 0x8000 {
                self.roc = self.roc.wrapping_add(1);
            }
        }
        if self.last_seq.is_none_or(|last| seq.wrapping_sub(last) < 0x8000) {
            self.last_seq = Some(seq);
        }
        self.roc
    }

    /// AES-CM over the payload: IV = salt ^ (SSRC << 64) ^ (index << 16).
    fn cipher(&self, packet: &[u8], roc: u32, payload: &[u8]) -> Result<Vec<u8>> {
        let mut iv = [0u8; 16];
        iv[..14].copy_from_slice(&self.salt);
        for (i, b) in packet[8..12].iter().enumerate() {
            iv[4 + i] ^= b;
        }
        let index = ((roc as u64) << 16) | u16::from_be_bytes([packet[2], packet[3]]) as u64;
        for (i, b) in index.to_be_bytes()[2..].iter().enumerate() {
            iv[8 + i] ^= b;
        }
        Ok(encrypt(Cipher::aes_128_ctr(), &self.encryption, Some(&iv), payload)?)
    }

    /// HMAC-SHA1 over the packet and the rollover counter, cut to 80 bits.
    fn tag(&self, authenticated: &[u8], roc: u32) -> Result<Vec<u8>> {
        hmac_80(&self.authentication, &[authenticated, &roc.to_be_bytes()])
    }
}

impl MasterKey {
    /// The session encryption key, authentication key and salt derived
    /// with labels `first`, `first + 1`, `first + 2` (RFC 3711 section 4.3:
    /// 0 for SRTP, 3 for SRTCP).
    fn session_keys(&self, first: u8) -> ([u8; 16], [u8; 20], [u8; 14]) {
        let (master, salt) = self.0.split_at(16);
        let derive = |label: u8, len: usize| {
            let mut iv = [0u8; 16];
            iv[..14].copy_from_slice(salt);
            iv[7] ^= label;
            keystream(master, &iv, len)
        };
        (
            derive(first, 16).try_into().expect("16 bytes"),
            derive(first + 1, 20).try_into().expect("20 bytes"),
            derive(first + 2, 14).try_into().expect("14 bytes"),
        )
    }
}

/// Receiving SRTCP (RFC 3711 section 3.4) with one master key.
pub struct Srtcp {
    encryption: [u8; 16],
    authentication: [u8; 20],
    salt: [u8; 14],
}

impl Srtcp {
    pub fn new(key: &MasterKey) -> Srtcp {
        let (encryption, authentication, salt) = key.session_keys(3);
        Srtcp { encryption, authentication, salt }
    }

    /// Checks and decrypts an SRTCP packet (E flag and index, then the
    /// tag, after the compound packet); `None` when it does not authenticate.
    pub fn unprotect(&self, packet: &[u8]) -> Option<Vec<u8>> {
        if packet.len() < 8 + 4 + TAG_LEN {
            return None;
        }
        let (authenticated, tag) = packet.split_at(packet.len() - TAG_LEN);
        if hmac_80(&self.authentication, &[authenticated]).ok()? != tag {
            return None;
        }
        let (body, trailer) = authenticated.split_at(authenticated.len() - 4);
        let e_index = u32::from_be_bytes(trailer.try_into().ok()?);
        let mut out = body[..8].to_vec();
        if e_index >> 31 == 0 {
            out.extend_from_slice(&body[8..]);
            return Some(out);
        }
        // IV = salt ^ (SSRC << 64) ^ (index << 16).
        let mut iv = [0u8; 16];
        iv[..14].copy_from_slice(&self.salt);
        for (i, b) in body[4..8].iter().enumerate() {
            iv[4 + i] ^= b;
        }
        for (i, b) in (e_index & 0x7fff_ffff).to_be_bytes().iter().enumerate() {
            iv[10 + i] ^= b;
        }
        out.extend(encrypt(Cipher::aes_128_ctr(), &self.encryption, Some(&iv), &body[8..]).ok()?);
        Some(out)
    }
}

/// HMAC-SHA1 over `parts`, cut to 80 bits.
fn hmac_80(key: &[u8], parts: &[&[u8]]) -> Result<Vec<u8>> {
    let key = PKey::hmac(key)?;
    let mut signer = Signer::new(MessageDigest::sha1(), &key)?;
    for part in parts {
        signer.update(part)?;
    }
    let mut tag = signer.sign_to_vec()?;
    tag.truncate(TAG_LEN);
    Ok(tag)
}

/// `len` bytes of AES-CM keystream from `iv` (the key derivation's PRF).
fn keystream(key: &[u8], iv: &[u8; 16], len: usize) -> Vec<u8> {
    encrypt(Cipher::aes_128_ctr(), key, Some(iv), &vec![0u8; len]).expect("AES-128-CTR")
}

/// The RTP header's length: fixed part, CSRCs and an extension.
fn header_len(packet: &[u8]) -> Result<usize> {
    if packet.len() < 12 || packet[0] >> 6 != 2 {
        bail!("not an RTP packet");
    }
    let mut len = 12 + 4 * (packet[0] & 0x0f) as usize;
    if packet[0] & 0x10 != 0 {
        if packet.len() < len + 4 {
            bail!("RTP extension header cut short");
        }
        len += 4 + 4 * u16::from_be_bytes([packet[len + 2], packet[len + 3]]) as usize;
    }
    if packet.len() < len {
        bail!("RTP header cut short");
    }
    Ok(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    /// RFC 3711 appendix B.3: the session keys derived from its master key.
    #[test]
    fn key_derivation_matches_rfc_3711() {
        let mut bytes = hex("E1F97A0D3E018BE0D64FA32C06DE4139");
        bytes.extend(hex("0EC675AD498AFEEBB6960B3AABE6"));
        let srtp = Srtp::new(&MasterKey(bytes.try_into().unwrap()));
        assert_eq!(srtp.encryption.to_vec(), hex("C61E7A93744F39EE10734AFE3FF7A087"));
        assert_eq!(srtp.salt.to_vec(), hex("30CBBC08863D8C85D49DB34A9AE1"));
        assert_eq!(srtp.authentication.to_vec(), hex("CEBE321F6FF7716B6FD4AB49AF256A156D38BAA4"));
    }

    #[test]
    fn what_one_side_protects_the_other_opens() {
        let key = MasterKey::random();
        let sdp = format!("m=audio 4000 RTP/SAVP 0\r\n{}", key.crypto_line());
        let (mut sender, mut receiver) = (Srtp::new(&key), Srtp::new(&MasterKey::from_sdp(&sdp).unwrap()));
        for seq in [65534u16, 65535, 0, 1] {
            let mut packet = vec![0x80, 0];
            packet.extend(seq.to_be_bytes());
            packet.extend(160u32.to_be_bytes());
            packet.extend(0x1234u32.to_be_bytes());
            packet.extend([0x55u8; 160]);
            let sealed = sender.protect(&packet).unwrap();
            assert_ne!(sealed[12..172], packet[12..]);
            assert_eq!(receiver.unprotect(&sealed).unwrap(), packet);
            let mut forged = sealed.clone();
            forged[20] ^= 1;
            assert!(Srtp::new(&key).unprotect(&forged).is_none());
        }
    }
}
