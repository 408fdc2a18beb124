//! The DTLS certificate for WebRTC legs: ECDSA P-256, made once per process.
//!
//! webrtcbin 1.22 generates an RSA certificate by default; aiortc offers
//! only ECDSA cipher suites, so the handshake fails ("no shared cipher")
//! whenever webrtcbin is the DTLS server. Chromium accepts either.

use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::PKey;
use openssl::x509::{X509NameBuilder, X509};
use std::sync::OnceLock;

struct Certificate {
    /// Certificate and private key, PEM, as `dtlsdec`'s `pem` takes them.
    pem: String,
    /// SHA-256 fingerprint, as SDP's `a=fingerprint:sha-256` writes it.
    fingerprint: String,
}

fn get() -> &'static Certificate {
    static CERT: OnceLock<Certificate> = OnceLock::new();
    CERT.get_or_init(|| generate().expect("generating the DTLS certificate"))
}

pub(crate) fn certificate() -> &'static str {
    &get().pem
}

pub(crate) fn fingerprint() -> &'static str {
    &get().fingerprint
}

fn generate() -> Result<Certificate, openssl::error::ErrorStack> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
    let key = PKey::from_ec_key(EcKey::generate(&group)?)?;
    let mut name = X509NameBuilder::new()?;
    name.append_entry_by_nid(Nid::COMMONNAME, "sipbridge")?;
    let name = name.build();
    let mut serial = BigNum::new()?;
    serial.rand(64, MsbOption::MAYBE_ZERO, false)?;
    let mut cert = X509::builder()?;
    cert.set_version(2)?;
    let serial = serial.to_asn1_integer()?;
    cert.set_serial_number(&serial)?;
    cert.set_subject_name(&name)?;
    cert.set_issuer_name(&name)?;
    cert.set_pubkey(&key)?;
    cert.set_not_before(&*Asn1Time::days_from_now(0)?)?;
    cert.set_not_after(&*Asn1Time::days_from_now(30)?)?;
    cert.sign(&key, MessageDigest::sha256())?;
    let cert = cert.build();
    let digest = cert.digest(MessageDigest::sha256())?;
    let fingerprint = digest.iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":");
    tracing::info!(%fingerprint, "DTLS certificate (ECDSA P-256) generated");
    let mut pem = String::from_utf8(cert.to_pem()?).expect("PEM is ASCII");
    pem.push_str(&String::from_utf8(key.ec_key()?.private_key_to_pem()?).expect("PEM is ASCII"));
    Ok(Certificate { pem, fingerprint })
}

#[cfg(test)]
mod tests {
    #[test]
    fn certificate_is_ecdsa_with_key() {
        let pem = super::certificate();
        let cert = openssl::x509::X509::from_pem(pem.as_bytes()).unwrap();
        assert_eq!(cert.public_key().unwrap().id(), openssl::pkey::Id::EC);
        assert!(pem.contains("BEGIN EC PRIVATE KEY"));
    }
}
