//! linphonec (Debian 12's linphone CLI), driven over stdin. It can place
//! calls and act on them (`terminate`, `transfer`), but not receive them
//! on this platform, so the tests use it as a caller only.

use crate::process::{spawn, Child};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

/// A running linphonec. Its core runs only between input lines, so a
/// thread feeds it an empty line every 100 ms.
pub struct Linphone {
    pub child: Child,
    lines: Sender<String>,
    pub debug_log: PathBuf,
}

impl Linphone {
    /// Starts linphonec in `dir` with the configuration text `rc`, its
    /// debug log in `dir/linphone-debug.log`.
    pub fn start(dir: &Path, rc: &str) -> Linphone {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("rc"), rc).unwrap();
        let debug_log = dir.join("linphone-debug.log");
        let mut cmd = std::process::Command::new("linphonec");
        cmd.arg("-c").arg(dir.join("rc")).args(["-d", "6", "-l"]).arg(&debug_log);
        cmd.env("HOME", dir).stdin(std::process::Stdio::piped());
        let mut child = spawn(&mut cmd, dir, "linphonec", Duration::from_secs(60)).unwrap();
        let mut stdin = child.std().stdin.take().unwrap();
        let (lines, rx) = channel::<String>();
        std::thread::spawn(move || {
            use std::io::Write;
            loop {
                let line = match rx.recv_timeout(Duration::from_millis(100)) {
                    Ok(line) => line,
                    Err(RecvTimeoutError::Timeout) => String::new(),
                    Err(_) => return,
                };
                if writeln!(stdin, "{line}").is_err() {
                    return;
                }
            }
        });
        Linphone { child, lines, debug_log }
    }

    /// Sends one command line.
    pub fn send(&self, line: &str) {
        self.lines.send(line.to_string()).unwrap();
    }

    /// Waits (10 s at most) until the debug log contains `needle`.
    pub fn wait_debug_log(&self, needle: &str) {
        let until = Instant::now() + Duration::from_secs(10);
        while !std::fs::read_to_string(&self.debug_log).unwrap_or_default().contains(needle) {
            assert!(Instant::now() < until, "linphonec never logged {needle:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
