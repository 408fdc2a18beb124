//! The admin listener of a sipbridge under test: plain HTTP/1.1 requests
//! over a TCP stream, the Prometheus exposition read back into samples,
//! and `promtool check metrics` (Debian `prometheus`) run on it.

use anyhow::{bail, Context, Result};
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

/// `METHOD path` against `addr`: (status code, body).
pub fn http(addr: &str, method: &str, path: &str) -> Result<(u16, String)> {
    let mut s = std::net::TcpStream::connect(addr).with_context(|| format!("connecting to {addr}"))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(s, "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    let status = out.split(' ').nth(1).and_then(|c| c.parse().ok()).context("no status line")?;
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Ok((status, body))
}

/// The value of the sample `name{labels}` exactly as written (labels in
/// the order the exporter writes them, `""` for none); `None` if absent.
pub fn sample(exposition: &str, name_and_labels: &str) -> Option<f64> {
    exposition.lines().find_map(|l| l.strip_prefix(name_and_labels)?.strip_prefix(' ')?.trim().parse().ok())
}

/// `promtool check rules` on a rules file.
pub fn promtool_check_rules(path: &std::path::Path) -> Result<()> {
    let out = Command::new("promtool").args(["check", "rules"]).arg(path).output().context("promtool")?;
    if !out.status.success() {
        bail!("promtool check rules: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

/// `promtool check metrics` on an exposition: Ok, or its complaints.
pub fn promtool_check(exposition: &str) -> Result<()> {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("promtool (Debian package prometheus) is needed")?;
    child.stdin.take().unwrap().write_all(exposition.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "promtool check metrics: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// The call records in `file` (JSON lines), once there are `n` of them
/// (up to 10 s).
pub fn call_records(file: &std::path::Path, n: usize) -> Vec<serde_json::Value> {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        if lines.len() >= n {
            return lines;
        }
        assert!(
            std::time::Instant::now() < until,
            "{} of {n} call records:
{text}",
            lines.len()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}
