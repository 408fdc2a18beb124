//! Certificates for TLS tests, made with `openssl` in the test's scratch
//! directory.

use crate::process::spawn;
use anyhow::{bail, Result};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// A self-signed EC certificate for IP 127.0.0.1 (an end-entity, usable as
/// its own trust anchor), valid one day, written as PEM.
pub fn self_signed_cert(cert: &Path, key: &Path) -> Result<()> {
    let mut cmd = Command::new("openssl");
    cmd.args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"])
        .args(["-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE", "-keyout"])
        .arg(key)
        .arg("-out")
        .arg(cert)
        .stdin(std::process::Stdio::null());
    let dir = cert.parent().unwrap_or(Path::new("."));
    let mut child = spawn(&mut cmd, dir, "openssl", Duration::from_secs(20))?;
    match child.wait_timeout(Duration::from_secs(20))? {
        Some(s) if s.success() => Ok(()),
        other => bail!("openssl req failed ({other:?}): {}", child.log()),
    }
}
