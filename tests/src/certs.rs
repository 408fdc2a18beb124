//! Certificates for TLS tests, made with `openssl` in the test's scratch
//! directory: self-signed ones, and a test certificate authority issuing
//! server certificates.

use crate::process::spawn;
use anyhow::{bail, Context, Result};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// EC P-256 keys, one day of validity: enough for a test.
const NEW_KEY: &[&str] = &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"];

/// A self-signed EC certificate for IP 127.0.0.1 (an end-entity, usable as
/// its own trust anchor), valid one day, written as PEM.
pub fn self_signed_cert(cert: &Path, key: &Path) -> Result<()> {
    self_signed(cert, key, "127.0.0.1", "IP:127.0.0.1")
}

/// A self-signed EC certificate for the host name `name` only (no
/// address), valid one day, written as PEM.
pub fn self_signed_cert_for_name(cert: &Path, key: &Path, name: &str) -> Result<()> {
    self_signed(cert, key, name, &format!("DNS:{name}"))
}

fn self_signed(cert: &Path, key: &Path, cn: &str, subject_alt_name: &str) -> Result<()> {
    let mut cmd = Command::new("openssl");
    cmd.args(["req", "-x509"])
        .args(NEW_KEY)
        .args(["-subj", &format!("/CN={cn}"), "-addext", &format!("subjectAltName={subject_alt_name}")])
        .args(["-addext", "basicConstraints=critical,CA:FALSE", "-keyout"])
        .arg(key)
        .arg("-out")
        .arg(cert);
    openssl(cmd, cert)
}

/// A certificate authority made for one test.
pub struct TestCa {
    /// The CA certificate (PEM): the trust anchor to give clients.
    pub cert: PathBuf,
    key: PathBuf,
}

impl TestCa {
    /// A new CA named `name`, its files in `dir`.
    pub fn create(dir: &Path, name: &str) -> Result<TestCa> {
        let (cert, key) = (dir.join(format!("{name}-ca.pem")), dir.join(format!("{name}-ca-key.pem")));
        let mut cmd = Command::new("openssl");
        cmd.args(["req", "-x509"])
            .args(NEW_KEY)
            .args(["-subj", &format!("/CN={name} test CA")])
            .args(["-addext", "basicConstraints=critical,CA:TRUE"])
            .args(["-addext", "keyUsage=critical,keyCertSign,cRLSign", "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&cert);
        openssl(cmd, &cert)?;
        Ok(TestCa { cert, key })
    }

    /// A server certificate for IP 127.0.0.1 with common name `cn`, signed
    /// by this CA: `chain` gets it followed by the CA certificate (as a
    /// server sends it), `key` its private key.
    pub fn issue(&self, cn: &str, chain: &Path, key: &Path) -> Result<()> {
        self.issue_for(cn, IpAddr::from([127, 0, 0, 1]), chain, key)
    }

    /// [`TestCa::issue`] for the server at `address`.
    pub fn issue_for(&self, cn: &str, address: IpAddr, chain: &Path, key: &Path) -> Result<()> {
        let leaf = chain.with_extension("leaf.pem");
        let mut cmd = Command::new("openssl");
        cmd.args(["req", "-x509"])
            .args(NEW_KEY)
            .arg("-CA")
            .arg(&self.cert)
            .arg("-CAkey")
            .arg(&self.key)
            .args(["-subj", &format!("/CN={cn}"), "-addext", &format!("subjectAltName=IP:{address}")])
            .args(["-addext", "basicConstraints=critical,CA:FALSE", "-addext", "extendedKeyUsage=serverAuth"])
            .arg("-keyout")
            .arg(key)
            .arg("-out")
            .arg(&leaf);
        openssl(cmd, &leaf)?;
        let pem = [std::fs::read(&leaf)?, std::fs::read(&self.cert)?].concat();
        std::fs::write(chain, pem)?;
        Ok(())
    }

    /// Base64 of the SHA-256 of the CA's SubjectPublicKeyInfo, the form
    /// Chromium's `--ignore-certificate-errors-spki-list` takes: a browser
    /// given it accepts chains this CA is part of.
    pub fn spki_sha256(&self) -> Result<String> {
        let cert = openssl::x509::X509::from_pem(&std::fs::read(&self.cert)?)?;
        let spki = cert.public_key()?.public_key_to_der()?;
        Ok(openssl::base64::encode_block(&openssl::sha::sha256(&spki)))
    }

    /// The common name of the certificate `server` presents now, verified
    /// against this CA for IP 127.0.0.1.
    pub fn served_common_name(&self, server: SocketAddr) -> Result<String> {
        use openssl::ssl::{SslConnector, SslMethod};
        let mut builder = SslConnector::builder(SslMethod::tls())?;
        builder.set_ca_file(&self.cert)?;
        let tcp = std::net::TcpStream::connect_timeout(&server, Duration::from_secs(5))?;
        tcp.set_read_timeout(Some(Duration::from_secs(5)))?;
        let tls = builder.build().connect(&server.ip().to_string(), tcp).context("TLS handshake")?;
        let cert = tls.ssl().peer_certificate().context("no server certificate")?;
        let cn = cert.subject_name().entries_by_nid(openssl::nid::Nid::COMMONNAME).next().context("no CN")?;
        Ok(String::from_utf8(cn.data().as_slice().to_vec())?)
    }
}

/// Runs an `openssl` command bounded in time; `out` names it in the log.
fn openssl(mut cmd: Command, out: &Path) -> Result<()> {
    cmd.stdin(std::process::Stdio::null());
    let dir = out.parent().unwrap_or(Path::new("."));
    let mut child = spawn(&mut cmd, dir, "openssl", Duration::from_secs(20))?;
    match child.wait_timeout(Duration::from_secs(20))? {
        Some(s) if s.success() => Ok(()),
        other => bail!("openssl for {} failed ({other:?}): {}", out.display(), child.log()),
    }
}
