//! `sipbridge`: a WebRTC <-> SIP audio bridge on GStreamer.

mod call;
mod daemon;
mod engine;
mod gateway;
mod gnutls_random;
mod logging;
mod ops;
mod protocol;
mod stdio;

use clap::{Parser, Subcommand};
use engine::EngineConfig;
use std::net::IpAddr;

#[derive(Parser)]
#[command(name = "sipbridge", version, about = "WebRTC <-> SIP audio bridge on GStreamer")]
struct Cli {
    /// Log lines on stderr: `text`, or `json` (one object per line, with
    /// the call-id span).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Media engine for a parent process: JSON-RPC 2.0 lines on stdin/stdout
    /// (see docs/protocol.md). Logs go to stderr.
    Stdio {
        #[command(flatten)]
        media: MediaArgs,
    },
    /// Answer SIP calls with a preset (echo, play, record, conference):
    /// `sipbridge run --preset echo` and call sip:echo@127.0.0.1:5060.
    Run {
        /// A built-in preset (`sipbridge presets` lists them) or the path
        /// of a preset file.
        #[arg(long, value_name = "NAME|FILE")]
        preset: String,
        #[command(flatten)]
        daemon: DaemonArgs,
    },
    /// The bridge daemon: SIP user agent, registrations and a preset, all
    /// from a TOML file (commented sample: examples/sipbridge.toml).
    Daemon {
        #[arg(long, value_name = "FILE")]
        config: std::path::PathBuf,
        #[command(flatten)]
        daemon: DaemonArgs,
    },
    /// List the built-in presets.
    Presets,
    /// Browser gateway: the softphone page at `/` and the JSON-RPC
    /// WebSocket API at `/ws` on --ws-listen, a SIP user agent on
    /// --sip-listen (docs/protocol.md, section Gateway). The same as
    /// `run --preset gateway`; `--config FILE` reads a TOML configuration.
    Gateway(Box<gateway::GatewayArgs>),
}

#[derive(clap::Args)]
struct DaemonArgs {
    /// SIP listen address, `[udp:|tcp:|ws:|tls:]ADDR:PORT` (repeatable); replaces
    /// `sip.listen`. Default: udp:127.0.0.1:5060.
    #[arg(long = "sip-listen", value_name = "ADDR:PORT")]
    sip_listen: Vec<String>,
    /// Address RTP is received on and written into SDP; replaces
    /// `media.addresses`. Default: 127.0.0.1.
    #[arg(long = "media-address", value_name = "ADDR")]
    media_addresses: Vec<IpAddr>,
    /// Address to advertise in SDP and ICE host candidates instead of the
    /// media address (behind a 1:1 NAT); replaces `media.public_address`.
    #[arg(long = "public-address", value_name = "ADDR")]
    public_address: Option<IpAddr>,
    /// Override any setting: `--set play.file=/tmp/hello.wav`,
    /// `--set limits.max_calls=20`, `--set conference.record=true`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
}

impl DaemonArgs {
    fn clone_overrides(&self) -> daemon::config::Overrides {
        daemon::config::Overrides {
            sip_listen: self.sip_listen.clone(),
            media_addresses: self.media_addresses.clone(),
            public_address: self.public_address,
            set: self.set.clone(),
        }
    }
}

#[derive(clap::Args)]
struct MediaArgs {
    /// Address to receive RTP on and to gather ICE candidates on
    /// (repeatable). Default: 127.0.0.1.
    #[arg(long = "media-address", value_name = "ADDR")]
    media_addresses: Vec<IpAddr>,
    /// Address to advertise in SDP and ICE host candidates instead of the
    /// media address (behind a 1:1 NAT); sessions may override it.
    #[arg(long = "public-address", value_name = "ADDR")]
    public_address: Option<IpAddr>,
    /// Jitter-buffer latency in milliseconds.
    #[arg(long, default_value_t = 40)]
    latency_ms: u32,
    /// UDP port range for RTP, e.g. 20000-30000 (0-0: any port).
    #[arg(long, value_parser = parse_range, default_value = "20000-30000")]
    rtp_ports: (u16, u16),
}

fn parse_range(s: &str) -> Result<(u16, u16), String> {
    let (a, b) = s.split_once('-').ok_or("expected LOW-HIGH")?;
    let (a, b): (u16, u16) = (a.parse().map_err(|_| "bad port")?, b.parse().map_err(|_| "bad port")?);
    if a > b {
        return Err("LOW must not exceed HIGH".into());
    }
    Ok((a, b))
}

impl MediaArgs {
    fn engine_config(&self) -> EngineConfig {
        let mut config = EngineConfig::default();
        let legs = &mut config.leg_defaults;
        if !self.media_addresses.is_empty() {
            legs.media_addresses = self.media_addresses.clone();
        }
        legs.public_address = self.public_address;
        legs.jitter_latency_ms = self.latency_ms;
        legs.rtp_ports = self.rtp_ports;
        config
    }
}

/// `sipbridge run --preset gateway FLAGS` is `sipbridge gateway FLAGS`.
fn command_line() -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let is = |i: usize, s: &str| args.get(i).is_some_and(|a| a == s);
    if is(1, "run") {
        let preset = args.iter().position(|a| a == "--preset").filter(|i| is(i + 1, daemon::preset::GATEWAY));
        if let Some(i) = preset {
            args.drain(i..i + 2);
            args[1] = "gateway".into();
        } else if let Some(i) =
            args.iter().position(|a| a.to_str() == Some(&format!("--preset={}", daemon::preset::GATEWAY)))
        {
            args.remove(i);
            args[1] = "gateway".into();
        }
    }
    args
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse_from(command_line());
    if let Command::Presets = cli.command {
        print!("{}", daemon::preset::listing());
        return Ok(());
    }
    // Configuration errors are reported before anything starts.
    let daemon_config = match &cli.command {
        Command::Run { preset, daemon } => {
            Some((daemon::config::Config::for_run(preset, &daemon.clone_overrides())?, daemon::Mode::Run))
        }
        Command::Daemon { config, daemon } => {
            Some((daemon::config::Config::for_daemon(config, &daemon.clone_overrides())?, daemon::Mode::Daemon))
        }
        Command::Gateway(args) => Some(((**args).clone().into_config()?, daemon::Mode::Daemon)),
        _ => None,
    };
    // The SIP stack logs every message at info: only its warnings by default.
    let default_filter = if daemon_config.is_some() { "info,rsipstack=warn" } else { "info" };
    logging::init(default_filter, cli.log_format == LogFormat::Json);
    pipelines::init()?;
    let runtime = tokio::runtime::Runtime::new()?;
    match cli.command {
        Command::Stdio { media } => runtime.block_on(stdio::run(media.engine_config())),
        Command::Run { .. } | Command::Daemon { .. } | Command::Gateway(_) => {
            let (config, mode) = daemon_config.expect("parsed above");
            runtime.block_on(daemon::run(config, mode))
        }
        Command::Presets => Ok(()),
    }
}
