//! coturn (Debian `coturn`, binary `turnserver`) as the TURN server of a
//! test: in the foreground with a command line only, TURN REST API
//! credentials (`use-auth-secret`) from a shared secret, UDP, TCP and TLS
//! (on [`TURNS_PORT`], with a certificate for its address from a test CA of
//! its own) listeners on one address, relays on the same address.

use crate::certs::TestCa;
use crate::netns::Host;
use crate::process::Child;
use anyhow::Result;
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

pub const TURN_PORT: u16 = 3478;
pub const TURNS_PORT: u16 = 5349;

pub struct Coturn {
    pub child: Child,
    /// The CA that issued the TLS listener's certificate: what a client
    /// that checks it must trust.
    pub ca: TestCa,
}

impl Coturn {
    /// Starts coturn on `host` with `secret`; returns once it listens.
    pub fn start_on(dir: &Path, host: &Host, secret: &str, limit: Duration) -> Result<Coturn> {
        Coturn::spawn(dir, host.command("turnserver"), host.addr, secret, limit)
    }

    /// Starts coturn on 127.0.0.1 (this namespace) with `secret`.
    pub fn start(dir: &Path, secret: &str, limit: Duration) -> Result<Coturn> {
        Coturn::spawn(dir, std::process::Command::new("turnserver"), Ipv4Addr::LOCALHOST, secret, limit)
    }

    fn spawn(
        dir: &Path,
        mut cmd: std::process::Command,
        addr: Ipv4Addr,
        secret: &str,
        limit: Duration,
    ) -> Result<Coturn> {
        let ca = TestCa::create(dir, "turn")?;
        let (cert, key) = (dir.join("turn-cert.pem"), dir.join("turn-key.pem"));
        ca.issue_for("coturn", addr.into(), &cert, &key)?;
        let addr = addr.to_string();
        cmd.arg("--cert").arg(cert).arg("--pkey").arg(key).args(["--tls-listening-port", &TURNS_PORT.to_string()]);
        cmd.args(["-n", "--no-cli", "--no-dtls", "--log-file", "stdout", "--simple-log", "--verbose"])
            .args(["--listening-ip", &addr, "--relay-ip", &addr, "--listening-port", &TURN_PORT.to_string()])
            .args(["--min-port", "49152", "--max-port", "49999", "--realm", "example.test"])
            .args(["--use-auth-secret", "--static-auth-secret", secret])
            .arg("--pidfile")
            .arg(dir.join("turnserver.pid"))
            .arg("--userdb")
            .arg(dir.join("turndb"));
        let mut child = crate::process::spawn(&mut cmd, dir, "coturn", limit)?;
        child.wait_for_log("Total General servers", Duration::from_secs(10))?;
        Ok(Coturn { child, ca })
    }

    pub fn log(&self) -> String {
        self.child.log()
    }
}
