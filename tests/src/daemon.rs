//! `sipbridge daemon` under test: a config file in the test's scratch
//! directory, a SIP port of its own on 127.0.0.1, its log (tracing lines on
//! stderr) to read events from; plus SIPp caller scenarios written for each
//! test (play pcap audio, wait for our BYE, expect a refusal).

use crate::process::{free_udp_port, sipbridge_bin, spawn, Child};
use anyhow::{bail, Result};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A running daemon; stopped (by PID) on drop.
pub struct Daemon {
    pub child: Child,
    pub sip_port: u16,
    pub config: PathBuf,
    /// The address it listens on (SIP and media).
    pub ip: std::net::IpAddr,
}

impl Daemon {
    /// Writes `config` (TOML) to `<dir>/sipbridge.toml` and starts
    /// `sipbridge daemon` on a free UDP port with `args` added; returns once
    /// it logged its health line.
    pub fn start(dir: &Path, config: &str, args: &[&str]) -> Result<Daemon> {
        Self::start_named(dir, "sipbridge", config, args, &[])
    }

    /// Like [`Daemon::start`] with a log name and environment variables.
    pub fn start_named(dir: &Path, name: &str, config: &str, args: &[&str], env: &[(&str, &str)]) -> Result<Daemon> {
        Self::start_for(dir, name, config, args, env, Duration::from_secs(240))
    }

    /// Like [`Daemon::start_named`], stopped after `limit` (long runs: the soak).
    pub fn start_for(
        dir: &Path,
        name: &str,
        config: &str,
        args: &[&str],
        env: &[(&str, &str)],
        limit: Duration,
    ) -> Result<Daemon> {
        let mut cmd = Command::new(sipbridge_bin());
        for (k, v) in env {
            cmd.env(k, v);
        }
        Self::spawn(dir, name, config, cmd, [127, 0, 0, 1].into(), args, limit)
    }

    /// Like [`Daemon::start`], inside `host`'s network namespace: SIP and
    /// media on the host's address.
    pub fn start_on(dir: &Path, host: &crate::netns::Host, config: &str, args: &[&str]) -> Result<Daemon> {
        let media = host.addr.to_string();
        let args: Vec<&str> = ["--media-address", media.as_str()].into_iter().chain(args.iter().copied()).collect();
        let limit = Duration::from_secs(240);
        Self::spawn(dir, "sipbridge", config, host.command(sipbridge_bin()), host.addr.into(), &args, limit)
    }

    /// `cmd` is the sipbridge program (perhaps entered through nsenter),
    /// stopped after `limit`.
    fn spawn(
        dir: &Path,
        name: &str,
        config: &str,
        mut cmd: Command,
        ip: std::net::IpAddr,
        args: &[&str],
        limit: Duration,
    ) -> Result<Daemon> {
        let path = dir.join(format!("{name}.toml"));
        std::fs::write(&path, config)?;
        let sip_port = free_udp_port();
        cmd.arg("daemon")
            .arg("--config")
            .arg(&path)
            .arg("--sip-listen")
            .arg(format!("{ip}:{sip_port}"))
            .args(args)
            .current_dir(dir)
            .env("SIPBRIDGE_LOG", "info,rsipstack=warn")
            .env("NO_COLOR", "1");
        let mut child = spawn(&mut cmd, dir, name, limit)?;
        child.wait_for_log("sipbridge daemon ready", Duration::from_secs(20))?;
        Ok(Daemon { child, sip_port, config: path, ip })
    }

    /// `<ip>:<port>`.
    pub fn addr(&self) -> String {
        format!("{}:{}", self.ip, self.sip_port)
    }

    /// `sip:<user>@<ip>:<port>`.
    pub fn uri(&self, user: &str) -> String {
        format!("sip:{user}@{}:{}", self.ip, self.sip_port)
    }

    pub fn log(&self) -> String {
        self.child.log()
    }

    /// Lines of the log containing every one of `needles`.
    pub fn lines_with(&self, needles: &[&str]) -> Vec<String> {
        self.log().lines().filter(|l| needles.iter().all(|n| l.contains(n))).map(str::to_string).collect()
    }

    /// Waits until at least `n` log lines contain all of `needles`.
    pub fn wait_lines(&self, needles: &[&str], n: usize, timeout: Duration) -> Result<Vec<String>> {
        let until = Instant::now() + timeout;
        loop {
            let lines = self.lines_with(needles);
            if lines.len() >= n {
                return Ok(lines);
            }
            if Instant::now() >= until {
                bail!(
                    "daemon logged {} of {n} lines with {needles:?}; log:\n{}",
                    lines.len(),
                    crate::process::tail(&self.log())
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM, then waits for the process to exit; returns its status.
    pub fn terminate(&mut self, timeout: Duration) -> Result<std::process::ExitStatus> {
        self.child.signal(libc::SIGTERM);
        match self.child.wait_timeout(timeout)? {
            Some(status) => Ok(status),
            None => bail!("daemon did not exit {timeout:?} after SIGTERM; log:\n{}", crate::process::tail(&self.log())),
        }
    }
}

/// How a SIPp caller scenario ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Pause `hold_ms`, then send BYE.
    CallerHangsUp,
    /// Wait (up to the SIPp timeout) for the daemon's BYE and answer 200.
    DaemonHangsUp,
    /// The INVITE must be refused with this code (then ACK).
    Refused(u16),
}

/// A SIPp UAC scenario calling `[service]` at the remote address.
#[derive(Debug, Clone)]
pub struct CallerScenario {
    /// The RTP port written into our SDP: `None` for SIPp's own media
    /// port, `Some(p)` for a socket the test reads the echo from.
    pub sdp_port: Option<u16>,
    /// Payload types offered, e.g. `"8 101"` with rtpmaps for 0, 8, 101.
    pub formats: &'static str,
    /// pcap files played (in order) once the call is up.
    pub pcaps: Vec<String>,
    /// Pause before hanging up (CallerHangsUp) or after the pcaps.
    pub hold_ms: u64,
    /// Digits sent as SIP INFO (`application/dtmf-relay`) after the pcaps.
    pub info_digits: String,
    /// INVITE without SDP: the daemon offers in its 200, our answer (the
    /// first of `formats`) goes in the ACK.
    pub offerless: bool,
    /// SDP lines appended after the audio section (more m-lines: video, a
    /// second audio stream), each ending in `\n`.
    pub extra_media: &'static str,
    /// A POSIX regular expression the 200 OK's body must match (`.` spans
    /// lines), or the scenario fails.
    pub answer_must_match: Option<&'static str>,
    pub ending: Ending,
}

impl CallerScenario {
    pub fn new(ending: Ending) -> CallerScenario {
        CallerScenario {
            sdp_port: None,
            formats: "8 0 101",
            pcaps: Vec::new(),
            hold_ms: 1000,
            info_digits: String::new(),
            offerless: false,
            extra_media: "",
            answer_must_match: None,
            ending,
        }
    }

    /// Writes the scenario to `<dir>/<name>.xml` and returns its path.
    pub fn write(&self, dir: &Path, name: &str) -> Result<PathBuf> {
        let port = self.sdp_port.map(|p| p.to_string()).unwrap_or_else(|| "[media_port]".into());
        let sdp = format!(
            "v=0\n      o=sipp 1 1 IN IP[local_ip_type] [local_ip]\n      s=-\n      c=IN IP[media_ip_type] [media_ip]\n      t=0 0\n      m=audio {port} RTP/AVP {formats}\n      a=rtpmap:0 PCMU/8000\n      a=rtpmap:8 PCMA/8000\n      a=rtpmap:101 telephone-event/8000\n      a=fmtp:101 0-15\n      a=ptime:30\n      a=sendrecv\n{extra}",
            formats = self.formats,
            extra = self.extra_media.lines().map(|l| format!("      {l}\n")).collect::<String>()
        );
        let (invite_type, invite_sdp) =
            if self.offerless { ("", String::new()) } else { ("      Content-Type: application/sdp\n", sdp.clone()) };
        let invite = format!(
            r#"  <send retrans="500"><![CDATA[

      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:sipp@[local_ip]:[local_port]>
      Max-Forwards: 70
{invite_type}      Content-Length: [len]

      {invite_sdp}
    ]]></send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
"#
        );
        let (ack_type, ack_sdp) =
            if self.offerless { ("      Content-Type: application/sdp\n", sdp.clone()) } else { ("", String::new()) };
        let ack = |cseq: &str| {
            format!(
                r#"  <send><![CDATA[

      ACK [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      [last_To:]
      Call-ID: [call_id]
      CSeq: {cseq} ACK
      Max-Forwards: 70
{ack_type}      Content-Length: [len]

      {ack_sdp}
    ]]></send>
"#
            )
        };
        let mut body = invite;
        match self.ending {
            Ending::Refused(code) => {
                body.push_str(&format!("  <recv response=\"{code}\"/>\n"));
                // ACK for a non-2xx final response reuses the INVITE's branch.
                body.push_str(
                    r#"  <send><![CDATA[

      ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Max-Forwards: 70
      Content-Length: 0

    ]]></send>
"#,
                );
            }
            Ending::CallerHangsUp | Ending::DaemonHangsUp => {
                match self.answer_must_match {
                    Some(re) => body.push_str(&format!(
                        "  <recv response=\"200\" rrs=\"true\"><action><ereg regexp=\"{re}\" search_in=\"body\" check_it=\"true\" assign_to=\"answer\"/></action></recv>\n  <Reference variables=\"answer\"/>\n"
                    )),
                    None => body.push_str("  <recv response=\"200\" rrs=\"true\"/>\n"),
                }
                body.push_str(&ack("1"));
                for pcap in &self.pcaps {
                    body.push_str(&format!("  <nop><action><exec play_pcap_audio=\"{pcap}\"/></action></nop>\n"));
                }
                let mut cseq = 2;
                for digit in self.info_digits.chars() {
                    body.push_str(&format!(
                        r#"  <pause milliseconds="300"/>
  <send retrans="500"><![CDATA[

      INFO [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      [last_To:]
      Call-ID: [call_id]
      CSeq: {cseq} INFO
      Max-Forwards: 70
      Content-Type: application/dtmf-relay
      Content-Length: [len]

      Signal={digit}
      Duration=160

    ]]></send>
  <recv response="200"/>
"#
                    ));
                    cseq += 1;
                }
                body.push_str(&format!("  <pause milliseconds=\"{}\"/>\n", self.hold_ms));
                if self.ending == Ending::CallerHangsUp {
                    body.push_str(&format!(
                        r#"  <send retrans="500"><![CDATA[

      BYE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      [last_To:]
      Call-ID: [call_id]
      CSeq: {cseq} BYE
      Max-Forwards: 70
      Content-Length: 0

    ]]></send>
  <recv response="200"/>
"#
                    ));
                } else {
                    body.push_str("  <recv request=\"BYE\"/>\n");
                    body.push_str(crate::sipp::SEND_200_TO_LAST);
                }
            }
        }
        let xml = format!(
            "<?xml version=\"1.0\" encoding=\"ISO-8859-1\" ?>\n<!DOCTYPE scenario SYSTEM \"sipp.dtd\">\n<scenario name=\"{name}\">\n{body}</scenario>\n"
        );
        let path = dir.join(format!("{name}.xml"));
        std::fs::write(&path, xml)?;
        Ok(path)
    }
}

/// A pcap shipped with SIPp (`/usr/share/sip-tester/<name>`).
pub fn sipp_pcap(name: &str) -> String {
    format!("/usr/share/sip-tester/{name}")
}

/// Counts RTP packets carrying sound arriving on `sock`, from the first one
/// until `quiet` passes without another (or `limit` overall): (packets,
/// payload types). G.711 packets made only of silence codes are not counted:
/// the bridge sends silence on legs that have nothing else to send, and an
/// echo test must count what came back, not that.
fn is_g711_silence(pt: u8, payload: &[u8]) -> bool {
    match pt {
        0 => payload.iter().all(|b| matches!(b, 0xff | 0x7f)),
        8 => payload.iter().all(|b| matches!(b, 0xd5 | 0x55)),
        _ => false,
    }
}

pub fn count_rtp(sock: &std::net::UdpSocket, quiet: Duration, limit: Duration) -> (usize, Vec<u8>) {
    sock.set_read_timeout(Some(quiet)).unwrap();
    let until = Instant::now() + limit;
    let (mut n, mut pts) = (0, Vec::new());
    let mut buf = [0u8; 2048];
    while Instant::now() < until {
        match sock.recv_from(&mut buf) {
            Ok((len, _)) if len > 12 && buf[0] >> 6 == 2 => {
                if is_g711_silence(buf[1] & 0x7f, &buf[12..len]) {
                    continue;
                }
                n += 1;
                let pt = buf[1] & 0x7f;
                if !pts.contains(&pt) {
                    pts.push(pt);
                }
            }
            Ok(_) => {}
            Err(_) if n > 0 => break,
            Err(_) => {}
        }
    }
    (n, pts)
}
