//! Child processes for tests: every process is started in its own process
//! group, has a deadline, logs to a file in the test's scratch directory and
//! is killed (group-wide, by PID) when its guard drops, even on panic.

use anyhow::{bail, Context, Result};
use std::fs::{self, File};
use std::net::{TcpListener, UdpSocket};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// A running child process. Dropping it stops the whole process group:
/// SIGTERM, then SIGKILL if it has not exited within two seconds.
pub struct Child {
    name: String,
    inner: std::process::Child,
    log_path: PathBuf,
    deadline: Instant,
}

/// Starts `cmd` as `name`, with stdout and stderr appended to
/// `<dir>/<name>.log` unless the caller already redirected them. The process
/// is killed when `limit` has passed (checked by `wait`/`poll` helpers and on
/// drop), so a hung peer cannot hang the suite.
pub fn spawn(cmd: &mut Command, dir: &Path, name: &str, limit: Duration) -> Result<Child> {
    let log_path = dir.join(format!("{name}.log"));
    let log = File::create(&log_path).with_context(|| format!("creating {}", log_path.display()))?;
    cmd.stdout(log.try_clone()?).stderr(log);
    spawn_with_log(cmd, name, log_path, limit)
}

/// Like [`spawn`] but leaves stdin/stdout as configured by the caller (for
/// peers driven over pipes); stderr goes to `<dir>/<name>.log`.
pub fn spawn_piped(cmd: &mut Command, dir: &Path, name: &str, limit: Duration) -> Result<Child> {
    let log_path = dir.join(format!("{name}.log"));
    let log = File::create(&log_path).with_context(|| format!("creating {}", log_path.display()))?;
    cmd.stderr(log);
    spawn_with_log(cmd, name, log_path, limit)
}

fn spawn_with_log(cmd: &mut Command, name: &str, log_path: PathBuf, limit: Duration) -> Result<Child> {
    // Own process group, so helpers the child forks (Chromium's renderers,
    // shells) die with it. Also ask the kernel to kill it if the test runner
    // itself dies.
    unsafe {
        cmd.pre_exec(|| {
            libc::setpgid(0, 0);
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let inner = cmd.spawn().with_context(|| format!("starting {name}: {cmd:?}"))?;
    Ok(Child { name: name.to_string(), inner, log_path, deadline: Instant::now() + limit })
}

impl Child {
    pub fn pid(&self) -> u32 {
        self.inner.id()
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The underlying std child, for its stdin/stdout pipes.
    pub fn std(&mut self) -> &mut std::process::Child {
        &mut self.inner
    }

    /// Everything the process wrote to its log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Waits until `needle` appears in the log, the process exits, or
    /// `timeout` (or the process deadline) passes.
    pub fn wait_for_log(&mut self, needle: &str, timeout: Duration) -> Result<()> {
        let until = (Instant::now() + timeout).min(self.deadline);
        loop {
            if self.log().contains(needle) {
                return Ok(());
            }
            if let Some(status) = self.inner.try_wait()? {
                bail!("{} exited ({status}) before logging {needle:?}; log:\n{}", self.name, tail(&self.log()));
            }
            if Instant::now() >= until {
                bail!("{} did not log {needle:?} in time; log:\n{}", self.name, tail(&self.log()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for the process to exit on its own, up to `timeout`.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Result<Option<ExitStatus>> {
        let until = (Instant::now() + timeout).min(self.deadline);
        loop {
            if let Some(status) = self.inner.try_wait()? {
                return Ok(Some(status));
            }
            if Instant::now() >= until {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends `signal` to the process group.
    pub fn signal(&self, signal: i32) {
        unsafe {
            libc::kill(-(self.inner.id() as i32), signal);
        }
    }

    /// Stops the process group: SIGTERM, then SIGKILL after two seconds.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        if let Ok(Some(status)) = self.inner.try_wait() {
            self.signal(libc::SIGKILL); // reap leftovers in the group
            return Some(status);
        }
        self.signal(libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.inner.try_wait() {
                self.signal(libc::SIGKILL);
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.signal(libc::SIGKILL);
        self.inner.wait().ok()
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The last lines of a log, for error messages.
pub fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// A UDP port on 127.0.0.1 that was free a moment ago (and whose +1 was free
/// too, for RTCP): even, as RTP convention wants.
pub fn free_udp_port() -> u16 {
    for _ in 0..200 {
        let sock = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
        let port = sock.local_addr().unwrap().port();
        if port % 2 == 0 && port < 65534 && UdpSocket::bind(("127.0.0.1", port + 1)).is_ok() {
            return port;
        }
    }
    panic!("no free even UDP port pair on 127.0.0.1");
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The workspace root (the directory holding the top-level Cargo.toml).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// The `sipbridge` binary built for this test run (`SIPBRIDGE_BIN`
/// overrides it: the benchmarks use the release build).
pub fn sipbridge_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("SIPBRIDGE_BIN") {
        return PathBuf::from(bin);
    }
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| workspace_root().join("target"));
    let bin = target.join("debug").join("sipbridge");
    assert!(bin.exists(), "{} is missing: run `cargo build --workspace` first", bin.display());
    bin
}

/// A numeric field of `/proc/<pid>/status` (`"VmRSS:"` in KiB, `"Threads:"`); 0 if unreadable.
pub fn status_field(pid: u32, name: &str) -> f64 {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(name).map(|v| v.split_whitespace().next().unwrap_or("0").parse().unwrap_or(0.0)))
        .unwrap_or(0.0)
}

/// How many file descriptors `pid` has open.
pub fn open_fds(pid: u32) -> usize {
    fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0)
}

/// A fresh scratch directory for one test: `target/e2e/<name>-<pid>-<n>`.
/// Logs, recordings and configs of the test's processes go here and are kept
/// after the run for inspection.
pub fn test_dir(name: &str) -> PathBuf {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let dir = workspace_root().join("target").join("e2e").join(format!("{name}-{}-{n}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("create test dir");
    dir
}
