//! SRTP and SRTCP (RFC 3711; AEAD_AES_128_GCM from RFC 7714) for RTP legs
//! keyed by SDES (`a=crypto`, see [`crate::leg::sdes`]).
//!
//! Done here on the leg's socket threads rather than by GStreamer's
//! `srtpenc`/`srtpdec`, because relayed packets never enter the pipeline
//! ([`crate::leg::relay`]): a packet is decrypted as it arrives (before it is
//! screened, relayed or decoded) and encrypted as it leaves
//! (`crate::leg::rtp_out`, `crate::leg::rtp_rtcp`), through one [`Context`]
//! per direction, so both streams share the state (rollover counter, SRTCP index).
//! The cipher contexts are keyed once per master key and reused for every
//! packet (Debian's libsrtp2 builds a crypto context per packet).
//! Keys never reach a log: [`MasterKey`] prints as its suite only.

use openssl::cipher::Cipher;
use openssl::cipher_ctx::CipherCtx;
use openssl::sha::Sha1;
use std::collections::HashMap;
use std::sync::Mutex;

/// The SDES crypto suites we speak (RFC 4568 section 6.2, RFC 7714 section 14.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Suite {
    AesCm128HmacSha1_80,
    AesCm128HmacSha1_32,
    AeadAes128Gcm,
}

impl Suite {
    /// Our order of preference in offers: the suite every phone has first.
    pub const ALL: [Suite; 3] = [Suite::AesCm128HmacSha1_80, Suite::AesCm128HmacSha1_32, Suite::AeadAes128Gcm];

    pub fn sdp_name(self) -> &'static str {
        match self {
            Suite::AesCm128HmacSha1_80 => "AES_CM_128_HMAC_SHA1_80",
            Suite::AesCm128HmacSha1_32 => "AES_CM_128_HMAC_SHA1_32",
            Suite::AeadAes128Gcm => "AEAD_AES_128_GCM",
        }
    }

    pub fn from_sdp_name(name: &str) -> Option<Suite> {
        Suite::ALL.into_iter().find(|s| s.sdp_name().eq_ignore_ascii_case(name))
    }

    /// Master key then master salt, as `inline:` carries them.
    pub fn master_len(self) -> usize {
        MASTER_KEY_LEN + self.salt_len()
    }

    fn salt_len(self) -> usize {
        match self {
            Suite::AeadAes128Gcm => 12,
            _ => 14,
        }
    }

    fn rtp_tag_len(self) -> usize {
        match self {
            Suite::AesCm128HmacSha1_80 => 10,
            Suite::AesCm128HmacSha1_32 => 4,
            Suite::AeadAes128Gcm => GCM_TAG_LEN,
        }
    }

    /// SRTCP keeps the 80-bit tag in the _32 suite too (RFC 4568 section 6.2.2).
    fn rtcp_tag_len(self) -> usize {
        match self {
            Suite::AeadAes128Gcm => GCM_TAG_LEN,
            _ => 10,
        }
    }

    fn is_aead(self) -> bool {
        self == Suite::AeadAes128Gcm
    }
}

const MASTER_KEY_LEN: usize = 16;
const GCM_TAG_LEN: usize = 16;
const SRTCP_INDEX_LEN: usize = 4;
const RTCP_HEADER: usize = 8;
const REPLAY_WINDOW: u64 = 128;

/// A master key and salt. Its `Debug` shows the suite only, so a key never
/// reaches a log by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct MasterKey {
    pub suite: Suite,
    bytes: Vec<u8>,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterKey").field("suite", &self.suite).finish_non_exhaustive()
    }
}

impl MasterKey {
    /// A fresh key from the system's random source.
    pub fn random(suite: Suite) -> MasterKey {
        let mut bytes = vec![0; suite.master_len()];
        openssl::rand::rand_bytes(&mut bytes).expect("the system random source works");
        MasterKey { suite, bytes }
    }

    pub fn from_bytes(suite: Suite, bytes: Vec<u8>) -> Result<MasterKey, String> {
        if bytes.len() != suite.master_len() {
            return Err(format!("a {} key is {} bytes, not {}", suite.sdp_name(), suite.master_len(), bytes.len()));
        }
        Ok(MasterKey { suite, bytes })
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// Why a packet was not protected or unprotected. Carries no key material.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SrtpError {
    /// Shorter than its headers and tag.
    Malformed,
    /// The authentication tag does not match (wrong key, forged or damaged).
    Authentication,
    /// Already received, or older than the replay window.
    Replay,
    /// The crypto library failed.
    Crypto,
}

impl From<openssl::error::ErrorStack> for SrtpError {
    fn from(_: openssl::error::ErrorStack) -> Self {
        SrtpError::Crypto
    }
}

/// One direction's SRTP and SRTCP state for one master key: the session
/// keys and, per SSRC, the rollover counter, replay window and SRTCP index.
pub struct Context {
    suite: Suite,
    rtp: SessionKeys,
    rtcp: SessionKeys,
    streams: HashMap<u32, Stream>,
}

impl Context {
    pub fn new(key: &MasterKey) -> Result<Context, SrtpError> {
        let (master, salt) = key.bytes.split_at(MASTER_KEY_LEN);
        Ok(Context {
            suite: key.suite,
            rtp: SessionKeys::derive(key.suite, master, salt, 0)?,
            rtcp: SessionKeys::derive(key.suite, master, salt, 3)?,
            streams: HashMap::new(),
        })
    }

    pub fn protect_rtp(&mut self, packet: &[u8]) -> Result<Vec<u8>, SrtpError> {
        let header = rtp_header_len(packet).ok_or(SrtpError::Malformed)?;
        let (ssrc, seq) = rtp_ids(packet);
        let stream = self.streams.entry(ssrc).or_default();
        let index = stream.sending_index(seq);
        let roc = (index >> 16) as u32;
        let mut out = Vec::with_capacity(packet.len() + self.suite.rtp_tag_len());
        out.extend_from_slice(&packet[..header]);
        if self.suite.is_aead() {
            let iv = gcm_rtp_iv(&self.rtp.salt, ssrc, roc, seq);
            self.rtp.seal(&iv, &packet[..header], &packet[header..], &mut out)?;
        } else {
            out.extend_from_slice(&packet[header..]);
            self.rtp.ctr(&ctr_iv(&self.rtp.salt, ssrc, index), &mut out[header..])?;
            let tag = self.rtp.hmac(&[&out, &roc.to_be_bytes()]);
            out.extend_from_slice(&tag[..self.suite.rtp_tag_len()]);
        }
        Ok(out)
    }

    pub fn unprotect_rtp(&mut self, packet: &[u8]) -> Result<Vec<u8>, SrtpError> {
        let header = rtp_header_len(packet).ok_or(SrtpError::Malformed)?;
        let tag_len = self.suite.rtp_tag_len();
        if packet.len() < header + tag_len {
            return Err(SrtpError::Malformed);
        }
        let (ssrc, seq) = rtp_ids(packet);
        let suite = self.suite;
        let stream = self.streams.entry(ssrc).or_default();
        let (body, tag) = packet.split_at(packet.len() - tag_len);
        // The estimated index first; a peer whose sequence restarted
        // (a phone after a long hold) may be one rollover off either way.
        let mut first_error = None;
        for index in stream.candidate_indexes(seq) {
            if stream.rtp_window.seen(index) {
                first_error.get_or_insert(SrtpError::Replay);
                continue;
            }
            let roc = (index >> 16) as u32;
            let opened = if suite.is_aead() {
                let iv = gcm_rtp_iv(&self.rtp.salt, ssrc, roc, seq);
                let mut out = Vec::with_capacity(packet.len());
                out.extend_from_slice(&packet[..header]);
                self.rtp.open(&iv, &packet[..header], &body[header..], tag, &mut out).map(|()| out)
            } else if openssl::memcmp::eq(&self.rtp.hmac(&[body, &roc.to_be_bytes()])[..tag_len], tag) {
                let mut out = body.to_vec();
                self.rtp.ctr(&ctr_iv(&self.rtp.salt, ssrc, index), &mut out[header..]).map(|()| out)
            } else {
                Err(SrtpError::Authentication)
            };
            match opened {
                Ok(out) => {
                    stream.received(index);
                    return Ok(out);
                }
                Err(err) => {
                    first_error.get_or_insert(err);
                }
            }
        }
        Err(first_error.unwrap_or(SrtpError::Authentication))
    }

    pub fn protect_rtcp(&mut self, packet: &[u8]) -> Result<Vec<u8>, SrtpError> {
        if packet.len() < RTCP_HEADER {
            return Err(SrtpError::Malformed);
        }
        let ssrc = u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]);
        let stream = self.streams.entry(ssrc).or_default();
        let index = stream.rtcp_sent & 0x7fff_ffff;
        stream.rtcp_sent = stream.rtcp_sent.wrapping_add(1);
        let trailer = (index | 0x8000_0000).to_be_bytes();
        let mut out = Vec::with_capacity(packet.len() + SRTCP_INDEX_LEN + self.suite.rtcp_tag_len());
        out.extend_from_slice(&packet[..RTCP_HEADER]);
        if self.suite.is_aead() {
            let iv = gcm_rtcp_iv(&self.rtcp.salt, ssrc, index);
            let aad = [&packet[..RTCP_HEADER], &trailer[..]].concat();
            self.rtcp.seal(&iv, &aad, &packet[RTCP_HEADER..], &mut out)?;
            out.extend_from_slice(&trailer);
        } else {
            out.extend_from_slice(&packet[RTCP_HEADER..]);
            self.rtcp.ctr(&ctr_iv(&self.rtcp.salt, ssrc, index as u64), &mut out[RTCP_HEADER..])?;
            out.extend_from_slice(&trailer);
            let tag = self.rtcp.hmac(&[&out]);
            out.extend_from_slice(&tag[..self.suite.rtcp_tag_len()]);
        }
        Ok(out)
    }

    pub fn unprotect_rtcp(&mut self, packet: &[u8]) -> Result<Vec<u8>, SrtpError> {
        let tag_len = self.suite.rtcp_tag_len();
        if packet.len() < RTCP_HEADER + SRTCP_INDEX_LEN + tag_len {
            return Err(SrtpError::Malformed);
        }
        let ssrc = u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]);
        // AES-CM: header, payload, E+index, tag. GCM: header, payload, tag, E+index.
        let (sealed, tag, trailer) = if self.suite.is_aead() {
            let (rest, trailer) = packet.split_at(packet.len() - SRTCP_INDEX_LEN);
            let (sealed, tag) = rest.split_at(rest.len() - tag_len);
            (sealed, tag, trailer)
        } else {
            let (rest, tag) = packet.split_at(packet.len() - tag_len);
            let (sealed, trailer) = rest.split_at(rest.len() - SRTCP_INDEX_LEN);
            (sealed, tag, trailer)
        };
        let word = u32::from_be_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
        let (encrypted, index) = (word & 0x8000_0000 != 0, word & 0x7fff_ffff);
        let stream = self.streams.entry(ssrc).or_default();
        if stream.rtcp_window.seen(index as u64) {
            return Err(SrtpError::Replay);
        }
        let mut out = Vec::with_capacity(packet.len());
        out.extend_from_slice(&sealed[..RTCP_HEADER]);
        if self.suite.is_aead() {
            let iv = gcm_rtcp_iv(&self.rtcp.salt, ssrc, index);
            if encrypted {
                let aad = [&sealed[..RTCP_HEADER], trailer].concat();
                self.rtcp.open(&iv, &aad, &sealed[RTCP_HEADER..], tag, &mut out)?;
            } else {
                // Authenticated only: everything is associated data (RFC 7714 section 9.3).
                let aad = [sealed, trailer].concat();
                self.rtcp.open(&iv, &aad, &[], tag, &mut Vec::new())?;
                out.extend_from_slice(&sealed[RTCP_HEADER..]);
            }
        } else {
            let authenticated = &packet[..packet.len() - tag_len];
            if !openssl::memcmp::eq(&self.rtcp.hmac(&[authenticated])[..tag_len], tag) {
                return Err(SrtpError::Authentication);
            }
            out.extend_from_slice(&sealed[RTCP_HEADER..]);
            if encrypted {
                self.rtcp.ctr(&ctr_iv(&self.rtcp.salt, ssrc, index as u64), &mut out[RTCP_HEADER..])?;
            }
        }
        stream.rtcp_window.mark(index as u64);
        Ok(out)
    }
}

/// A leg's two directions. Each is replaced as a whole when a negotiation
/// changes its key, and cleared when the peer stops using SRTP.
#[derive(Default)]
pub struct SrtpSession {
    inbound: Mutex<Option<Context>>,
    outbound: Mutex<Option<Context>>,
}

/// What to do with a datagram after [`SrtpSession::open`].
pub enum Opened<'a> {
    /// No SRTP on this leg: the datagram as it came.
    Plain(&'a [u8]),
    Decrypted(Vec<u8>),
    /// Failed authentication or replayed: drop it.
    Rejected(SrtpError),
}

impl SrtpSession {
    /// Puts negotiated keys into effect. A direction whose key did not
    /// change keeps its context (and so its rollover counters).
    pub fn set_keys(&self, inbound: Option<&MasterKey>, outbound: Option<&MasterKey>) -> Result<(), SrtpError> {
        replace(&self.inbound, inbound)?;
        replace(&self.outbound, outbound)
    }

    /// Decrypts a received RTP (`rtcp` false) or RTCP packet.
    pub fn open<'a>(&self, data: &'a [u8], rtcp: bool) -> Opened<'a> {
        let mut inbound = self.inbound.lock().unwrap();
        let Some(context) = inbound.as_mut() else { return Opened::Plain(data) };
        let result = if rtcp { context.unprotect_rtcp(data) } else { context.unprotect_rtp(data) };
        match result {
            Ok(plain) => Opened::Decrypted(plain),
            Err(err) => Opened::Rejected(err),
        }
    }

    /// Encrypts an RTP or RTCP packet to send; `None` when this leg sends
    /// plain RTP.
    pub fn seal(&self, data: &[u8], rtcp: bool) -> Option<Result<Vec<u8>, SrtpError>> {
        let mut outbound = self.outbound.lock().unwrap();
        let context = outbound.as_mut()?;
        Some(if rtcp { context.protect_rtcp(data) } else { context.protect_rtp(data) })
    }
}

fn replace(slot: &Mutex<Option<Context>>, key: Option<&MasterKey>) -> Result<(), SrtpError> {
    let mut slot = slot.lock().unwrap();
    match key {
        None => *slot = None,
        Some(key) if slot.as_ref().is_some_and(|c| c.key_is(key)) => {}
        Some(key) => *slot = Some(Context::new(key)?),
    }
    Ok(())
}

impl Context {
    fn key_is(&self, key: &MasterKey) -> bool {
        self.rtp.master_fingerprint == fingerprint(key)
    }
}

/// A digest that tells master keys apart without keeping one around twice.
fn fingerprint(key: &MasterKey) -> [u8; 20] {
    let mut h = Sha1::new();
    h.update(key.suite.sdp_name().as_bytes());
    h.update(&key.bytes);
    h.finish()
}

/// Session keys for SRTP or SRTCP (RFC 3711 section 4.3, key derivation rate 0).
struct SessionKeys {
    cipher: CipherCtx,
    salt: [u8; 14],
    auth: Option<HmacSha1>,
    master_fingerprint: [u8; 20],
}

impl SessionKeys {
    /// `first_label` is 0 for SRTP, 3 for SRTCP: encryption key, then
    /// authentication key, then salt.
    fn derive(suite: Suite, master: &[u8], master_salt: &[u8], first_label: u8) -> Result<SessionKeys, SrtpError> {
        let key = prf(master, master_salt, first_label, MASTER_KEY_LEN)?;
        let mut salt = [0u8; 14];
        salt[..suite.salt_len()].copy_from_slice(&prf(master, master_salt, first_label + 2, suite.salt_len())?);
        let auth =
            if suite.is_aead() { None } else { Some(HmacSha1::new(&prf(master, master_salt, first_label + 1, 20)?)) };
        let mut cipher = CipherCtx::new()?;
        let kind = if suite.is_aead() { Cipher::aes_128_gcm() } else { Cipher::aes_128_ctr() };
        cipher.encrypt_init(Some(kind), Some(&key), None)?;
        let master_fingerprint = fingerprint(&MasterKey { suite, bytes: [master, master_salt].concat() });
        Ok(SessionKeys { cipher, salt, auth, master_fingerprint })
    }

    /// AES counter mode in place (encryption and decryption alike).
    fn ctr(&mut self, iv: &[u8; 16], data: &mut [u8]) -> Result<(), SrtpError> {
        self.cipher.encrypt_init(None, None, Some(iv))?;
        let len = data.len();
        self.cipher.cipher_update_inplace(data, len)?;
        Ok(())
    }

    fn hmac(&self, parts: &[&[u8]]) -> [u8; 20] {
        self.auth.as_ref().expect("AES-CM suites have an authentication key").tag(parts)
    }

    /// AES-GCM: appends the ciphertext of `plain` and the tag to `out`.
    fn seal(&mut self, iv: &[u8; 12], aad: &[u8], plain: &[u8], out: &mut Vec<u8>) -> Result<(), SrtpError> {
        self.cipher.encrypt_init(None, None, Some(iv))?;
        self.cipher.cipher_update(aad, None)?;
        let start = out.len();
        out.resize(start + plain.len(), 0);
        self.cipher.cipher_update(plain, Some(&mut out[start..]))?;
        self.cipher.cipher_final(&mut [])?;
        let mut tag = [0u8; GCM_TAG_LEN];
        self.cipher.tag(&mut tag)?;
        out.extend_from_slice(&tag);
        Ok(())
    }

    /// AES-GCM: appends the plaintext of `sealed` to `out` if `tag` holds.
    fn open(
        &mut self,
        iv: &[u8; 12],
        aad: &[u8],
        sealed: &[u8],
        tag: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), SrtpError> {
        self.cipher.decrypt_init(None, None, Some(iv))?;
        self.cipher.cipher_update(aad, None)?;
        let start = out.len();
        out.resize(start + sealed.len(), 0);
        self.cipher.cipher_update(sealed, Some(&mut out[start..]))?;
        self.cipher.set_tag(tag)?;
        self.cipher.cipher_final(&mut []).map_err(|_| SrtpError::Authentication)?;
        Ok(())
    }
}

/// The AES-CM key derivation function (RFC 3711 section 4.3.3): the
/// keystream of the master key at IV (master salt XOR label), the label in
/// the seventh byte. A 12-byte GCM master salt is padded with zeros
/// (RFC 7714 section 11, as libsrtp does).
fn prf(master: &[u8], master_salt: &[u8], label: u8, len: usize) -> Result<Vec<u8>, SrtpError> {
    let mut iv = [0u8; 16];
    iv[..master_salt.len()].copy_from_slice(master_salt);
    iv[7] ^= label;
    let mut ctx = CipherCtx::new()?;
    ctx.encrypt_init(Some(Cipher::aes_128_ctr()), Some(master), Some(&iv))?;
    let mut out = vec![0u8; len];
    ctx.cipher_update_inplace(&mut out, len)?;
    Ok(out)
}

/// AES-CM IV: salt XOR SSRC (bytes 4-7) XOR index (bytes 8-13).
fn ctr_iv(salt: &[u8; 14], ssrc: u32, index: u64) -> [u8; 16] {
    let mut iv = [0u8; 16];
    iv[..14].copy_from_slice(salt);
    for (b, s) in iv[4..8].iter_mut().zip(ssrc.to_be_bytes()) {
        *b ^= s;
    }
    for (b, i) in iv[8..14].iter_mut().zip(&index.to_be_bytes()[2..]) {
        *b ^= i;
    }
    iv
}

/// GCM IV for SRTP (RFC 7714 section 8.1): 00 00 SSRC ROC SEQ, XOR salt.
fn gcm_rtp_iv(salt: &[u8; 14], ssrc: u32, roc: u32, seq: u16) -> [u8; 12] {
    let mut iv = [0u8; 12];
    iv[2..6].copy_from_slice(&ssrc.to_be_bytes());
    iv[6..10].copy_from_slice(&roc.to_be_bytes());
    iv[10..12].copy_from_slice(&seq.to_be_bytes());
    xor_salt(iv, salt)
}

/// GCM IV for SRTCP (RFC 7714 section 9.1): 00 00 SSRC 00 00 index, XOR salt.
fn gcm_rtcp_iv(salt: &[u8; 14], ssrc: u32, index: u32) -> [u8; 12] {
    let mut iv = [0u8; 12];
    iv[2..6].copy_from_slice(&ssrc.to_be_bytes());
    iv[8..12].copy_from_slice(&index.to_be_bytes());
    xor_salt(iv, salt)
}

fn xor_salt(mut iv: [u8; 12], salt: &[u8; 14]) -> [u8; 12] {
    for (b, s) in iv.iter_mut().zip(salt) {
        *b ^= s;
    }
    iv
}

/// HMAC-SHA1 with the key's inner and outer pads hashed once.
struct HmacSha1 {
    inner: Sha1,
    outer: Sha1,
}

impl HmacSha1 {
    fn new(key: &[u8]) -> HmacSha1 {
        let (mut ipad, mut opad) = ([0x36u8; 64], [0x5cu8; 64]);
        for (i, k) in key.iter().enumerate() {
            ipad[i] ^= k;
            opad[i] ^= k;
        }
        let (mut inner, mut outer) = (Sha1::new(), Sha1::new());
        inner.update(&ipad);
        outer.update(&opad);
        HmacSha1 { inner, outer }
    }

    fn tag(&self, parts: &[&[u8]]) -> [u8; 20] {
        let mut inner = self.inner.clone();
        for part in parts {
            inner.update(part);
        }
        let mut outer = self.outer.clone();
        outer.update(&inner.finish());
        outer.finish()
    }
}

/// Per-SSRC state.
#[derive(Default)]
struct Stream {
    /// Highest packet index (ROC << 16 | SEQ) sent or received.
    highest: Option<u64>,
    rtp_window: ReplayWindow,
    rtcp_sent: u32,
    rtcp_window: ReplayWindow,
}

impl Stream {
    /// The index of a packet we send: our sequence numbers only move on,
    /// so a wrap means the next rollover.
    fn sending_index(&mut self, seq: u16) -> u64 {
        let index = self.candidate_indexes(seq)[0];
        if self.highest.is_none_or(|h| index > h) {
            self.highest = Some(index);
        }
        index
    }

    /// The index estimate of RFC 3711 section 3.3.1 first, then one
    /// rollover either side of it.
    fn candidate_indexes(&self, seq: u16) -> [u64; 3] {
        let Some(highest) = self.highest else { return [seq as u64, seq as u64 + 0x1_0000, seq as u64] };
        let (roc, s_l) = (highest >> 16, (highest & 0xffff) as u16);
        let guess = if s_l < 0x8000 {
            if seq.wrapping_sub(s_l) > 0x8000 && seq > s_l && roc > 0 {
                roc - 1
            } else {
                roc
            }
        } else if s_l - 0x8000 > seq {
            roc + 1
        } else {
            roc
        };
        let at = |r: u64| (r << 16) | seq as u64;
        [at(guess), at(guess + 1), at(guess.saturating_sub(1))]
    }

    fn received(&mut self, index: u64) {
        self.rtp_window.mark(index);
        if self.highest.is_none_or(|h| index > h) {
            self.highest = Some(index);
        }
    }
}

/// Which of the last [`REPLAY_WINDOW`] indexes were seen.
#[derive(Default)]
struct ReplayWindow {
    highest: Option<u64>,
    /// Bit n: index `highest - n` was seen.
    bits: u128,
}

impl ReplayWindow {
    fn seen(&self, index: u64) -> bool {
        match self.highest {
            None => false,
            Some(h) if index > h => false,
            Some(h) => h - index >= REPLAY_WINDOW || self.bits & (1 << (h - index)) != 0,
        }
    }

    fn mark(&mut self, index: u64) {
        match self.highest {
            Some(h) if index <= h => self.bits |= 1 << (h - index),
            Some(h) => {
                let shift = index - h;
                self.bits = if shift >= REPLAY_WINDOW { 1 } else { (self.bits << shift) | 1 };
                self.highest = Some(index);
            }
            None => {
                self.bits = 1;
                self.highest = Some(index);
            }
        }
    }
}

/// The length of an RTP header with its CSRCs and extension, if the packet holds it.
fn rtp_header_len(packet: &[u8]) -> Option<usize> {
    if packet.len() < 12 {
        return None;
    }
    let mut len = 12 + 4 * (packet[0] & 0x0f) as usize;
    if packet[0] & 0x10 != 0 {
        let words = packet.get(len + 2..len + 4)?;
        len += 4 + 4 * u16::from_be_bytes([words[0], words[1]]) as usize;
    }
    (len <= packet.len()).then_some(len)
}

fn rtp_ids(packet: &[u8]) -> (u32, u16) {
    (u32::from_be_bytes([packet[8], packet[9], packet[10], packet[11]]), u16::from_be_bytes([packet[2], packet[3]]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use gst::prelude::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    #[test]
    fn key_derivation_matches_rfc3711_appendix_b3() {
        let master = hex("E1F97A0D3E018BE0D64FA32C06DE4139");
        let salt = hex("0EC675AD498AFEEBB6960B3AABE6");
        assert_eq!(prf(&master, &salt, 0, 16).unwrap(), hex("C61E7A93744F39EE10734AFE3FF7A087"));
        assert_eq!(prf(&master, &salt, 2, 14).unwrap(), hex("30CBBC08863D8C85D49DB34A9AE1"));
        assert_eq!(prf(&master, &salt, 1, 20).unwrap(), hex("CEBE321F6FF7716B6FD4AB49AF256A156D38BAA4"));
    }

    #[test]
    fn aes_cm_keystream_matches_rfc3711_appendix_b2() {
        // Session salt F0..FD, SSRC 0, index 0: the IV is the salt.
        let keystream = prf(&hex("2B7E151628AED2A6ABF7158809CF4F3C"), &hex("F0F1F2F3F4F5F6F7F8F9FAFBFCFD"), 0, 32);
        assert_eq!(keystream.unwrap(), hex("E03EAD0935C95E80E166B16DD92B4EB4D23513162B02D0F72A43A2FE4A5F97AB"));
        assert_eq!(
            ctr_iv(&hex("F0F1F2F3F4F5F6F7F8F9FAFBFCFD").try_into().unwrap(), 0, 0)[..14],
            hex("F0F1F2F3F4F5F6F7F8F9FAFBFCFD")
        );
    }

    fn rtp(seq: u16, ssrc: u32, payload_len: usize) -> Vec<u8> {
        let mut p = vec![0x80, 0, 0, 0, 0, 0, 0x10, 0, 0, 0, 0, 0];
        p[2..4].copy_from_slice(&seq.to_be_bytes());
        p[8..12].copy_from_slice(&ssrc.to_be_bytes());
        p.extend((0..payload_len).map(|i| (i * 7 + seq as usize) as u8));
        p
    }

    fn sender_report(ssrc: u32) -> Vec<u8> {
        let mut p = vec![0x80, 200, 0, 6];
        p.extend_from_slice(&ssrc.to_be_bytes());
        p.extend((0..20).map(|i| i as u8));
        p
    }

    /// What GStreamer's srtpenc (libsrtp2) makes of `packets` with `key`.
    fn libsrtp_protect(key: &MasterKey, packets: &[Vec<u8>], rtcp: bool) -> Vec<Vec<u8>> {
        gst::init().unwrap();
        let (cipher, auth) = match key.suite {
            Suite::AesCm128HmacSha1_80 => ("aes-128-icm", "hmac-sha1-80"),
            Suite::AesCm128HmacSha1_32 => ("aes-128-icm", "hmac-sha1-32"),
            Suite::AeadAes128Gcm => ("aes-128-gcm", "null"),
        };
        let rtcp_auth = if key.suite.is_aead() { "null" } else { "hmac-sha1-80" };
        let pipeline = gst::Pipeline::new();
        let src = gst_app::AppSrc::builder()
            .caps(&gst::Caps::new_empty_simple(if rtcp { "application/x-rtcp" } else { "application/x-rtp" }))
            .format(gst::Format::Time)
            .build();
        let enc = gst::ElementFactory::make("srtpenc").build().unwrap();
        for (name, value) in
            [("rtp-cipher", cipher), ("rtp-auth", auth), ("rtcp-cipher", cipher), ("rtcp-auth", rtcp_auth)]
        {
            enc.set_property_from_str(name, value);
        }
        enc.set_property("key", gst::Buffer::from_slice(key.bytes().to_vec()));
        let sink = gst_app::AppSink::builder().sync(false).build();
        pipeline.add_many([src.upcast_ref(), &enc, sink.upcast_ref()]).unwrap();
        let kind = if rtcp { "rtcp" } else { "rtp" };
        src.static_pad("src").unwrap().link(&enc.request_pad_simple(&format!("{kind}_sink_%u")).unwrap()).unwrap();
        enc.static_pad(&format!("{kind}_src_0")).unwrap().link(&sink.static_pad("sink").unwrap()).unwrap();
        pipeline.set_state(gst::State::Playing).unwrap();
        let out = packets
            .iter()
            .map(|p| {
                src.push_buffer(gst::Buffer::from_slice(p.clone())).unwrap();
                let sample = sink.pull_sample().unwrap();
                let bytes = sample.buffer().unwrap().map_readable().unwrap().to_vec();
                bytes
            })
            .collect();
        pipeline.set_state(gst::State::Null).unwrap();
        out
    }

    #[test]
    fn srtp_matches_libsrtp_byte_for_byte_and_opens_its_packets() {
        for suite in Suite::ALL {
            let key = MasterKey::random(suite);
            // Across a sequence number wrap: the rollover counter must move.
            let packets: Vec<Vec<u8>> = (65530u16..=65535).chain(0..4).map(|seq| rtp(seq, 0x1234_5678, 160)).collect();
            let theirs = libsrtp_protect(&key, &packets, false);
            let mut ours = Context::new(&key).unwrap();
            let mut receiver = Context::new(&key).unwrap();
            for ((plain, sealed), n) in packets.iter().zip(&theirs).zip(0..) {
                assert_eq!(&ours.protect_rtp(plain).unwrap(), sealed, "{suite:?} packet {n}");
                assert_eq!(&receiver.unprotect_rtp(sealed).unwrap(), plain, "{suite:?} packet {n}");
            }
            assert_eq!(receiver.unprotect_rtp(&theirs[3]), Err(SrtpError::Replay), "{suite:?}");
            let mut forged = ours.protect_rtp(&rtp(4, 0x1234_5678, 160)).unwrap();
            forged[20] ^= 1;
            assert_eq!(receiver.unprotect_rtp(&forged), Err(SrtpError::Authentication), "{suite:?}");
        }
    }

    #[test]
    fn srtcp_opens_libsrtp_packets_and_round_trips() {
        for suite in Suite::ALL {
            let key = MasterKey::random(suite);
            let reports: Vec<Vec<u8>> = (0..3).map(|_| sender_report(0x0bad_cafe)).collect();
            let mut receiver = Context::new(&key).unwrap();
            for (plain, sealed) in reports.iter().zip(libsrtp_protect(&key, &reports, true)) {
                assert_eq!(&receiver.unprotect_rtcp(&sealed).unwrap(), plain, "{suite:?}");
            }
            let (mut ours, mut theirs) = (Context::new(&key).unwrap(), Context::new(&key).unwrap());
            let sealed = ours.protect_rtcp(&reports[0]).unwrap();
            assert_ne!(sealed[8..28], reports[0][8..28], "{suite:?}: encrypted");
            assert_eq!(theirs.unprotect_rtcp(&sealed).unwrap(), reports[0], "{suite:?}");
            assert_eq!(theirs.unprotect_rtcp(&sealed), Err(SrtpError::Replay), "{suite:?}");
        }
    }

    #[test]
    fn a_restarted_sequence_one_rollover_back_still_opens() {
        let key = MasterKey::random(Suite::AesCm128HmacSha1_80);
        let (mut sender, mut receiver) = (Context::new(&key).unwrap(), Context::new(&key).unwrap());
        for seq in [100u16, 30000, 60000, 65535, 5] {
            let plain = rtp(seq, 9, 20);
            assert_eq!(receiver.unprotect_rtp(&sender.protect_rtp(&plain).unwrap()).unwrap(), plain, "seq {seq}");
        }
    }

    #[test]
    fn a_new_key_in_a_renegotiation_replaces_the_context_and_the_same_key_keeps_it() {
        let (k1, k2) = (MasterKey::random(Suite::AesCm128HmacSha1_32), MasterKey::random(Suite::AesCm128HmacSha1_32));
        let session = SrtpSession::default();
        session.set_keys(Some(&k1), None).unwrap();
        let old = Context::new(&k1).unwrap().protect_rtp(&rtp(1, 5, 20)).unwrap();
        assert!(matches!(session.open(&old, false), Opened::Decrypted(p) if p == rtp(1, 5, 20)));
        session.set_keys(Some(&k2), None).unwrap();
        assert!(matches!(session.open(&old, false), Opened::Rejected(SrtpError::Authentication)));
        let new = Context::new(&k2).unwrap().protect_rtp(&rtp(2, 5, 20)).unwrap();
        assert!(matches!(session.open(&new, false), Opened::Decrypted(_)));
        session.set_keys(Some(&k2), None).unwrap();
        assert!(matches!(session.open(&new, false), Opened::Rejected(SrtpError::Replay)), "same key: state kept");
        assert!(session.seal(&rtp(3, 5, 20), false).is_none(), "no outbound key: plain");
        session.set_keys(None, None).unwrap();
        assert!(matches!(session.open(&new, false), Opened::Plain(_)));
    }

    #[test]
    fn replay_window() {
        let mut w = ReplayWindow::default();
        for i in [5u64, 7, 6, 300] {
            assert!(!w.seen(i));
            w.mark(i);
            assert!(w.seen(i));
        }
        assert!(w.seen(100), "older than the window");
        assert!(!w.seen(299));
    }
}
