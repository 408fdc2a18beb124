//! SIPp running a scenario file of ours (`tests/sip/*.xml`), each instance
//! with its own SIP port and its own `-cp` control port, bounded in time.

use crate::process::{free_udp_port, spawn, workspace_root, Child};
use anyhow::{bail, Result};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// A scenario step: SIPp's `200 OK` without a body to the request it just
/// received (a BYE, a PRACK).
pub const SEND_200_TO_LAST: &str = r#"  <send><![CDATA[

      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]></send>
"#;

/// A SIPp invocation being built.
pub struct Sipp {
    scenario: PathBuf,
    port: u16,
    remote: Option<String>,
    args: Vec<String>,
    limit: Duration,
}

impl Sipp {
    /// `scenario` is a file name under `tests/sip/` or a path.
    pub fn new(scenario: &str) -> Sipp {
        let p = Path::new(scenario);
        let scenario =
            if p.is_absolute() { p.to_path_buf() } else { workspace_root().join("tests/sip").join(scenario) };
        Sipp { scenario, port: free_udp_port(), remote: None, args: Vec::new(), limit: Duration::from_secs(30) }
    }

    /// The local SIP port SIPp will use (chosen up front, so a UAS's
    /// address is known before it starts).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Remote `host:port` (for UAC scenarios).
    pub fn remote(mut self, addr: impl Into<String>) -> Sipp {
        self.remote = Some(addr.into());
        self
    }

    /// Extra arguments, e.g. `["-s", "bob"]` or `["-key", "k", "v"]`.
    pub fn args<I: IntoIterator<Item = S>, S: Into<String>>(mut self, args: I) -> Sipp {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Process lifetime limit (default 30 s).
    pub fn limit(mut self, limit: Duration) -> Sipp {
        self.limit = limit;
        self
    }

    /// Starts SIPp for one call (`-m 1`) with its own control port; logs
    /// and error traces go to `dir`.
    pub fn spawn(self, dir: &Path, name: &str) -> Result<SippRun> {
        let cp = free_udp_port();
        let mut cmd = Command::new("sipp");
        cmd.current_dir(dir)
            .arg("-sf")
            .arg(&self.scenario)
            .args(["-i", "127.0.0.1", "-p"])
            .arg(self.port.to_string())
            .arg("-cp")
            .arg(cp.to_string())
            .args(["-m", "1", "-nostdin", "-trace_err", "-trace_msg", "-timeout_error"])
            .arg("-timeout")
            .arg(format!("{}s", self.limit.as_secs().saturating_sub(2).max(1)))
            .args(&self.args);
        if let Some(r) = &self.remote {
            cmd.arg(r);
        }
        let child = spawn(&mut cmd, dir, name, self.limit)?;
        Ok(SippRun { child, port: self.port, dir: dir.to_path_buf() })
    }
}

/// A running SIPp.
pub struct SippRun {
    /// The process (stopped by PID on drop).
    pub child: Child,
    /// Its SIP port.
    pub port: u16,
    dir: PathBuf,
}

impl SippRun {
    /// `127.0.0.1:<port>`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Waits for SIPp to finish and requires exit status 0 (every call of
    /// the scenario succeeded).
    pub fn expect_success(&mut self, timeout: Duration) -> Result<()> {
        match self.child.wait_timeout(timeout)? {
            Some(status) if status.success() => Ok(()),
            Some(status) => bail!("sipp failed ({status}):\n{}", self.traces()),
            None => bail!("sipp did not finish in {timeout:?}:\n{}", self.traces()),
        }
    }

    /// SIPp's error and message traces, for failure messages.
    pub fn traces(&self) -> String {
        let mut out = crate::process::tail(&self.child.log());
        if let Ok(rd) = std::fs::read_dir(&self.dir) {
            for e in rd.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if n.ends_with("_errors.log") || n.ends_with("_messages.log") {
                    out.push_str(&format!(
                        "\n--- {n}\n{}",
                        crate::process::tail(&std::fs::read_to_string(e.path()).unwrap_or_default())
                    ));
                }
            }
        }
        out
    }
}
