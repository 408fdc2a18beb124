//! Kamailio with the dispatcher module in front of sipbridge daemons, from
//! the shipped `examples/kamailio/dispatcher.cfg` (its listen address,
//! destination list and timers given as `-A` defines), in the foreground.

use crate::kamailio::wait_options_200;
use crate::process::{free_udp_port, spawn, workspace_root, Child};
use anyhow::{Context, Result};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

pub struct Dispatcher {
    pub child: Child,
    pub udp_port: u16,
}

impl Dispatcher {
    /// Starts Kamailio dispatching to `daemons` (`host:port` each), probing
    /// every `probe_seconds`.
    pub fn start(dir: &Path, daemons: &[String], probe_seconds: u32) -> Result<Dispatcher> {
        let base = dir.join("dispatcher");
        std::fs::create_dir_all(base.join("run"))?;
        let list: String = daemons.iter().map(|d| format!("1 sip:{d} 0 0\n")).collect();
        let list_path = base.join("dispatcher.list");
        std::fs::write(&list_path, list)?;
        let udp_port = free_udp_port();
        let mut cmd = Command::new("kamailio");
        cmd.arg("-f")
            .arg(workspace_root().join("examples/kamailio/dispatcher.cfg"))
            .args(["-DD", "-E", "-m", "32", "-M", "8"])
            .arg("-Y")
            .arg(base.join("run"))
            .arg("-w")
            .arg(&base)
            .arg("-A")
            .arg(format!("LISTEN=udp:127.0.0.1:{udp_port}"))
            .arg("-A")
            .arg(format!("DISPATCHER_LIST=\"{}\"", list_path.display()))
            .arg("-A")
            .arg(format!("PROBE_INTERVAL={probe_seconds}"));
        let child = spawn(&mut cmd, dir, "dispatcher", Duration::from_secs(240))?;
        let d = Dispatcher { child, udp_port };
        wait_options_200(udp_port, Duration::from_secs(10))
            .with_context(|| format!("dispatcher log:\n{}", crate::process::tail(&d.child.log())))?;
        Ok(d)
    }

    /// `127.0.0.1:<port>`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.udp_port)
    }

    pub fn log(&self) -> String {
        self.child.log()
    }
}
