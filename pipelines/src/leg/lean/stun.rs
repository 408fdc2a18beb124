//! STUN messages (RFC 8489) as a lean leg's gathering and TURN client
//! (RFC 8656) write and read them: the header, attributes as type-value
//! pairs, XOR'ed addresses, and MESSAGE-INTEGRITY with a long-term key
//! (written, and checked on what servers answer).
//! ICE's own checks are str0m's; this is only what we say to servers.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

const MAGIC_COOKIE: u32 = 0x2112_A442;
const HEADER_LEN: usize = 20;

/// Methods we use (RFC 8489 §18.2, RFC 8656 §17).
pub(super) const BINDING: u16 = 0x001;
pub(super) const ALLOCATE: u16 = 0x003;
pub(super) const REFRESH: u16 = 0x004;
pub(super) const SEND: u16 = 0x006;
pub(super) const DATA: u16 = 0x007;
pub(super) const CREATE_PERMISSION: u16 = 0x008;
pub(super) const CHANNEL_BIND: u16 = 0x009;

/// Attributes we write or read.
pub(super) const USERNAME: u16 = 0x0006;
pub(super) const MESSAGE_INTEGRITY: u16 = 0x0008;
pub(super) const ERROR_CODE: u16 = 0x0009;
pub(super) const CHANNEL_NUMBER: u16 = 0x000C;
pub(super) const LIFETIME: u16 = 0x000D;
pub(super) const XOR_PEER_ADDRESS: u16 = 0x0012;
pub(super) const DATA_ATTRIBUTE: u16 = 0x0013;
pub(super) const REALM: u16 = 0x0014;
pub(super) const NONCE: u16 = 0x0015;
pub(super) const XOR_RELAYED_ADDRESS: u16 = 0x0016;
pub(super) const REQUESTED_TRANSPORT: u16 = 0x0019;
pub(super) const XOR_MAPPED_ADDRESS: u16 = 0x0020;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Class {
    Request,
    Indication,
    Success,
    Error,
}

impl Class {
    fn bits(self) -> u16 {
        match self {
            Class::Request => 0x000,
            Class::Indication => 0x010,
            Class::Success => 0x100,
            Class::Error => 0x110,
        }
    }
}

pub(super) type TransactionId = [u8; 12];

/// A fresh random transaction id.
pub(super) fn transaction_id() -> TransactionId {
    let mut id = [0u8; 12];
    for chunk in id.chunks_mut(4) {
        chunk.copy_from_slice(&crate::runtime::random_u32().to_be_bytes());
    }
    id
}

/// A message read from the wire.
#[derive(Debug)]
pub(super) struct Message<'a> {
    pub method: u16,
    pub class: Class,
    pub id: TransactionId,
    attributes: Vec<(u16, &'a [u8])>,
}

impl<'a> Message<'a> {
    /// The message in `data`, or None if it is not a well-formed STUN one.
    pub fn parse(data: &'a [u8]) -> Option<Message<'a>> {
        if data.len() < HEADER_LEN || data[0] & 0xc0 != 0 {
            return None;
        }
        let kind = u16::from_be_bytes([data[0], data[1]]);
        let length = u16::from_be_bytes([data[2], data[3]]) as usize;
        if u32::from_be_bytes([data[4], data[5], data[6], data[7]]) != MAGIC_COOKIE
            || length % 4 != 0
            || HEADER_LEN + length != data.len()
        {
            return None;
        }
        let class = match kind & 0x110 {
            0x000 => Class::Request,
            0x010 => Class::Indication,
            0x100 => Class::Success,
            _ => Class::Error,
        };
        let method = (kind & 0x000f) | ((kind & 0x00e0) >> 1) | ((kind & 0x3e00) >> 2);
        let mut attributes = Vec::new();
        let mut rest = &data[HEADER_LEN..];
        while rest.len() >= 4 {
            let kind = u16::from_be_bytes([rest[0], rest[1]]);
            let len = u16::from_be_bytes([rest[2], rest[3]]) as usize;
            let value = rest.get(4..4 + len)?;
            attributes.push((kind, value));
            rest = rest.get((4 + len).next_multiple_of(4)..).unwrap_or_default();
        }
        Some(Message { method, class, id: data[8..20].try_into().ok()?, attributes })
    }

    pub fn attribute(&self, kind: u16) -> Option<&'a [u8]> {
        self.attributes.iter().find(|(k, _)| *k == kind).map(|(_, v)| *v)
    }

    pub fn text(&self, kind: u16) -> Option<String> {
        self.attribute(kind).and_then(|v| std::str::from_utf8(v).ok()).map(str::to_string)
    }

    /// An XOR-MAPPED/RELAYED/PEER-ADDRESS.
    pub fn address(&self, kind: u16) -> Option<SocketAddr> {
        let value = self.attribute(kind)?;
        let port = u16::from_be_bytes([*value.get(2)?, *value.get(3)?]) ^ (MAGIC_COOKIE >> 16) as u16;
        let mask: Vec<u8> = MAGIC_COOKIE.to_be_bytes().into_iter().chain(self.id).collect();
        let ip = match value[1] {
            0x01 => {
                let raw: [u8; 4] = value.get(4..8)?.try_into().ok()?;
                IpAddr::V4(Ipv4Addr::from(std::array::from_fn::<u8, 4, _>(|i| raw[i] ^ mask[i])))
            }
            0x02 => {
                let raw: [u8; 16] = value.get(4..20)?.try_into().ok()?;
                IpAddr::V6(Ipv6Addr::from(std::array::from_fn::<u8, 16, _>(|i| raw[i] ^ mask[i])))
            }
            _ => return None,
        };
        Some(SocketAddr::new(ip, port))
    }

    /// ERROR-CODE's number (e.g. 401).
    pub fn error_code(&self) -> Option<u16> {
        let value = self.attribute(ERROR_CODE)?;
        Some(u16::from(*value.get(2)? & 0x07) * 100 + u16::from(*value.get(3)?))
    }

    pub fn lifetime(&self) -> Option<u32> {
        Some(u32::from_be_bytes(self.attribute(LIFETIME)?.get(..4)?.try_into().ok()?))
    }
}

/// A message being written: attributes in order, MESSAGE-INTEGRITY last
/// when a key is given.
pub(super) struct Builder {
    bytes: Vec<u8>,
    id: TransactionId,
}

impl Builder {
    pub fn new(method: u16, class: Class, id: TransactionId) -> Builder {
        let kind = (method & 0x000f) | ((method & 0x0070) << 1) | ((method & 0x0f80) << 2) | class.bits();
        let mut bytes = Vec::with_capacity(128);
        bytes.extend_from_slice(&kind.to_be_bytes());
        bytes.extend_from_slice(&[0, 0]);
        bytes.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
        bytes.extend_from_slice(&id);
        Builder { bytes, id }
    }

    pub fn attribute(mut self, kind: u16, value: &[u8]) -> Builder {
        self.bytes.extend_from_slice(&kind.to_be_bytes());
        self.bytes.extend_from_slice(&(value.len() as u16).to_be_bytes());
        self.bytes.extend_from_slice(value);
        self.bytes.resize(self.bytes.len().next_multiple_of(4), 0);
        self
    }

    pub fn address(self, kind: u16, address: SocketAddr) -> Builder {
        let mask: Vec<u8> = MAGIC_COOKIE.to_be_bytes().into_iter().chain(self.id).collect();
        let port = address.port() ^ (MAGIC_COOKIE >> 16) as u16;
        let (family, ip) = match address.ip() {
            IpAddr::V4(ip) => (0x01, ip.octets().to_vec()),
            IpAddr::V6(ip) => (0x02, ip.octets().to_vec()),
        };
        let mut value = vec![0, family];
        value.extend_from_slice(&port.to_be_bytes());
        value.extend(ip.iter().zip(&mask).map(|(b, m)| b ^ m));
        self.attribute(kind, &value)
    }

    pub fn u32(self, kind: u16, value: u32) -> Builder {
        self.attribute(kind, &value.to_be_bytes())
    }

    /// The message, with MESSAGE-INTEGRITY (HMAC-SHA1 under `key`) if given.
    pub fn finish(mut self, key: Option<&[u8]>) -> Vec<u8> {
        if let Some(key) = key {
            // The length counts the integrity attribute being added.
            self.set_length(self.bytes.len() - HEADER_LEN + 24);
            let mac = hmac_sha1(key, &self.bytes);
            return self.attribute(MESSAGE_INTEGRITY, &mac).bytes;
        }
        self.set_length(self.bytes.len() - HEADER_LEN);
        self.bytes
    }

    fn set_length(&mut self, length: usize) {
        self.bytes[2..4].copy_from_slice(&(length as u16).to_be_bytes());
    }
}

/// Whether `data`, a whole message, carries a MESSAGE-INTEGRITY made with
/// `key`: the HMAC of what precedes the attribute, the header's length
/// counting up to its end (attributes after it, such as FINGERPRINT, are
/// not covered).
pub(super) fn integrity_holds(data: &[u8], key: &[u8]) -> bool {
    let mut offset = HEADER_LEN;
    while let Some(header) = data.get(offset..offset + 4) {
        let kind = u16::from_be_bytes([header[0], header[1]]);
        let len = u16::from_be_bytes([header[2], header[3]]) as usize;
        if kind == MESSAGE_INTEGRITY {
            let Some(mac) = data.get(offset + 4..offset + 24).filter(|_| len == 20) else { return false };
            let mut signed = data[..offset].to_vec();
            signed[2..4].copy_from_slice(&((offset + 24 - HEADER_LEN) as u16).to_be_bytes());
            return openssl::memcmp::eq(&hmac_sha1(key, &signed), mac);
        }
        offset += (4 + len).next_multiple_of(4);
    }
    false
}

/// The long-term credential key (RFC 8489 §9.2.2): MD5(user:realm:password).
pub(super) fn long_term_key(username: &str, realm: &str, password: &str) -> Vec<u8> {
    openssl::hash::hash(openssl::hash::MessageDigest::md5(), format!("{username}:{realm}:{password}").as_bytes())
        .map(|digest| digest.to_vec())
        .unwrap_or_default()
}

fn hmac_sha1(key: &[u8], data: &[u8]) -> Vec<u8> {
    crate::leg::ice::hmac_sha1(key, data).unwrap_or_else(|_| vec![0; 20])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_attributes_come_back_as_written() {
        let id = transaction_id();
        let peer: SocketAddr = "203.0.113.7:40000".parse().unwrap();
        let v6: SocketAddr = "[2001:db8::1]:3478".parse().unwrap();
        let bytes = Builder::new(CREATE_PERMISSION, Class::Request, id)
            .address(XOR_PEER_ADDRESS, peer)
            .address(XOR_RELAYED_ADDRESS, v6)
            .attribute(USERNAME, b"alice")
            .u32(LIFETIME, 600)
            .finish(None);
        let message = Message::parse(&bytes).unwrap();
        assert_eq!((message.method, message.class, message.id), (CREATE_PERMISSION, Class::Request, id));
        assert_eq!(message.address(XOR_PEER_ADDRESS), Some(peer));
        assert_eq!(message.address(XOR_RELAYED_ADDRESS), Some(v6));
        assert_eq!(message.text(USERNAME).as_deref(), Some("alice"));
        assert_eq!(message.lifetime(), Some(600));
        assert!(Message::parse(&bytes[..bytes.len() - 4]).is_none(), "a truncated message");
        assert!(Message::parse(&[0x80; 24]).is_none(), "RTP is not STUN");
    }

    #[test]
    fn classes_and_methods_share_the_type_field() {
        for (method, class, kind) in [
            (BINDING, Class::Success, 0x0101),
            (ALLOCATE, Class::Error, 0x0113),
            (SEND, Class::Indication, 0x0016),
            (DATA, Class::Indication, 0x0017),
            (REFRESH, Class::Request, 0x0004),
        ] {
            let bytes = Builder::new(method, class, [7; 12]).finish(None);
            assert_eq!(u16::from_be_bytes([bytes[0], bytes[1]]), kind);
            let message = Message::parse(&bytes).unwrap();
            assert_eq!((message.method, message.class), (method, class));
        }
    }

    /// The key is MD5(user:realm:password) (`printf %s alice:example.test:p@ss | md5sum`);
    /// the integrity covers the header with its length counting the
    /// integrity attribute itself.
    #[test]
    fn message_integrity_signs_with_the_long_term_key() {
        let key = long_term_key("alice", "example.test", "p@ss");
        let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "3ab00ea03bbb438d680ae498d39358c4");
        let bytes = Builder::new(BINDING, Class::Request, [1; 12]).attribute(USERNAME, b"u").finish(Some(&key));
        let message = Message::parse(&bytes).unwrap();
        let mac = message.attribute(MESSAGE_INTEGRITY).unwrap();
        let mut signed = bytes[..bytes.len() - 24].to_vec();
        signed[2..4].copy_from_slice(&((bytes.len() - HEADER_LEN) as u16).to_be_bytes());
        assert_eq!(mac, hmac_sha1(&key, &signed));
    }

    #[test]
    fn integrity_is_checked_under_the_key_and_up_to_its_attribute() {
        let key = long_term_key("alice", "example.test", "p@ss");
        let signed = Builder::new(ALLOCATE, Class::Success, [3; 12]).u32(LIFETIME, 600).finish(Some(&key));
        assert!(integrity_holds(&signed, &key));
        assert!(!integrity_holds(&signed, &long_term_key("alice", "example.test", "other")), "another key");
        let mut tampered = signed.clone();
        tampered[HEADER_LEN + 7] ^= 1; // the lifetime
        assert!(!integrity_holds(&tampered, &key), "a changed attribute");
        let unsigned = Builder::new(ALLOCATE, Class::Success, [3; 12]).u32(LIFETIME, 600).finish(None);
        assert!(!integrity_holds(&unsigned, &key), "no MESSAGE-INTEGRITY");
        // A FINGERPRINT after it (as coturn may add) is not covered.
        let mut fingerprinted = signed.clone();
        fingerprinted.extend_from_slice(&[0x80, 0x28, 0, 4, 1, 2, 3, 4]);
        let length = (fingerprinted.len() - HEADER_LEN) as u16;
        fingerprinted[2..4].copy_from_slice(&length.to_be_bytes());
        assert!(integrity_holds(&fingerprinted, &key));
    }

    #[test]
    fn error_codes_read_as_numbers() {
        let bytes = Builder::new(ALLOCATE, Class::Error, [2; 12])
            .attribute(ERROR_CODE, &[0, 0, 4, 1, b'U', b'n'])
            .attribute(REALM, b"example.test")
            .finish(None);
        let message = Message::parse(&bytes).unwrap();
        assert_eq!(message.error_code(), Some(401));
        assert_eq!(message.text(REALM).as_deref(), Some("example.test"));
    }
}
