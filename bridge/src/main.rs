//! `sipbridge`: a WebRTC <-> SIP audio bridge on GStreamer.

mod engine;
mod protocol;
mod stdio;

use clap::{Parser, Subcommand};
use engine::EngineConfig;
use std::net::IpAddr;

#[derive(Parser)]
#[command(name = "sipbridge", version, about = "WebRTC <-> SIP audio bridge on GStreamer")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Media engine for a parent process: JSON-RPC 2.0 lines on stdin/stdout
    /// (see docs/protocol.md). Logs go to stderr.
    Stdio {
        #[command(flatten)]
        media: MediaArgs,
    },
}

#[derive(clap::Args)]
struct MediaArgs {
    /// Address to receive RTP on and to gather ICE candidates on
    /// (repeatable). Default: 127.0.0.1.
    #[arg(long = "media-address", value_name = "ADDR")]
    media_addresses: Vec<IpAddr>,
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
        legs.jitter_latency_ms = self.latency_ms;
        legs.rtp_ports = self.rtp_ports;
        config
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SIPBRIDGE_LOG").unwrap_or_else(|_| "info".into()),
        )
        .init();
    pipelines::init()?;
    let runtime = tokio::runtime::Runtime::new()?;
    match cli.command {
        Command::Stdio { media } => runtime.block_on(stdio::run(media.engine_config())),
    }
}
