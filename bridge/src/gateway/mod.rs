//! The browser gateway, a front-end of the SIP service (`crate::daemon`):
//! a WebSocket API (JSON-RPC 2.0, one object per message, the framing of
//! docs/protocol.md) and a softphone page on the same port. Each WebSocket
//! connection is one web user with at most one SIP account; each of its
//! calls is a call-layer [`crate::call::SipCall`] (the SIP dialog and its
//! RTP leg) joined by a `Link` to a WebRTC leg towards the browser.
//!
//! ```text
//!  browser --WS /ws--> ws.rs --> user.rs (account, registration, requests)
//!                                   |
//!                                   +--> call.rs: Leg::WebRtc <-Link-> SipCall (RTP leg) <--> SIP peer
//!  SIP peers --> UserAgent --> daemon --> service.rs: routed by AOR to a user
//! ```
//!
//! It is configured like every preset (`[websocket]` in the TOML file);
//! the flags of `sipbridge gateway` are overrides on top. With
//! `websocket.tls_cert`/`tls_key` the port speaks HTTPS and WSS (tls.rs);
//! without, plain HTTP, which browsers allow the microphone only on
//! `localhost`.

mod browser;
mod call;
mod connections;
mod errors;
mod header_prefixes;
mod service;
mod subscriptions;
mod tls;
mod user;
mod ws;

pub use service::Gateway;

use crate::call::Calls;
use crate::daemon::config::{Config, Overrides};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

/// Binds the HTTP/WebSocket listener of `config` and starts serving it.
pub async fn start(config: &Config, calls: Arc<Calls>) -> anyhow::Result<Arc<Gateway>> {
    let gw = Arc::new(Gateway::new(config, calls)?);
    let listen = gw.config.ws_listen;
    let listener =
        tokio::net::TcpListener::bind(listen).await.map_err(|e| anyhow::anyhow!("websocket.listen {listen}: {e}"))?;
    let addr = listener.local_addr()?;
    let tls = gw.certificate.as_ref().map(|c| c.acceptor()).transpose()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    if tls.is_none() && !addr.ip().is_loopback() {
        tracing::warn!(ws = %addr, "plain HTTP beyond loopback: browsers refuse the microphone; set websocket.tls_cert");
    }
    tracing::info!(
        ws = %addr,
        sip = ?gw.calls.ua.local_addr(signaling::Transport::Udp),
        token = gw.config.token.is_some(),
        "gateway listening: page at {scheme}://{addr}/ , API at /ws"
    );
    let (server, accepting) = (gw.clone(), gw.accepting());
    tokio::spawn(async move {
        if let Err(e) = ws::serve(server, listener, tls, accepting).await {
            tracing::error!(error = %e, "the WebSocket listener failed");
        }
    });
    Ok(gw)
}

/// `sipbridge gateway` options: a configuration file (optional; the
/// gateway preset otherwise) and flags overriding it.
#[derive(clap::Args, Debug, Clone)]
pub struct GatewayArgs {
    /// A TOML configuration (`preset = "gateway"` is assumed when it names none).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// HTTP/WebSocket listen address: the page at `/`, the API at `/ws`.
    #[arg(long, value_name = "ADDR:PORT")]
    ws_listen: Option<SocketAddr>,
    /// Certificate chain (PEM) for HTTPS/WSS on --ws-listen; reread on SIGHUP.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// Private key (PEM) of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// SIP listen address (UDP and TCP).
    #[arg(long, value_name = "ADDR:PORT")]
    sip_listen: Option<SocketAddr>,
    /// Host written into SIP Via/Contact (when --sip-listen is 0.0.0.0 or private).
    #[arg(long, value_name = "HOST")]
    sip_advertised_host: Option<String>,
    /// Address RTP is received on and ICE gathers on (repeatable). Default: 127.0.0.1.
    #[arg(long = "media-address", value_name = "ADDR")]
    media_addresses: Vec<IpAddr>,
    /// Address to advertise in SDP and ICE host candidates instead of the
    /// media address (behind a 1:1 NAT).
    #[arg(long, value_name = "ADDR")]
    public_address: Option<IpAddr>,
    /// UDP port range for RTP, e.g. 20000-30000 (0-0: any port).
    #[arg(long, value_name = "LOW-HIGH")]
    rtp_ports: Option<String>,
    /// Jitter-buffer latency in milliseconds.
    #[arg(long)]
    latency_ms: Option<u32>,
    /// Require this token from WebSocket clients (`/ws?token=...`). The
    /// environment variable SIPBRIDGE_WS_TOKEN is read when this is not
    /// given, which keeps the token out of `ps`.
    #[arg(long)]
    ws_token: Option<String>,
    /// Origin allowed to open the WebSocket (repeatable; `*` for any).
    /// Default: same origin only.
    #[arg(long = "allow-origin", value_name = "ORIGIN")]
    allowed_origins: Vec<String>,
    /// Concurrent WebSocket connections.
    #[arg(long)]
    max_connections: Option<usize>,
    /// Concurrent WebSocket connections from one IP address.
    #[arg(long)]
    max_connections_per_address: Option<usize>,
    /// Seconds a connection may stay without registering or calling.
    #[arg(long, value_name = "SECONDS")]
    ws_idle_timeout: Option<f64>,
    /// Seconds between the gateway's pings on each connection.
    #[arg(long, value_name = "SECONDS")]
    ws_ping_interval: Option<f64>,
    /// Seconds a connection may stay silent after a ping before it is closed.
    #[arg(long, value_name = "SECONDS")]
    ws_pong_timeout: Option<f64>,
    /// Concurrent calls per connection (more incoming calls get 486).
    #[arg(long)]
    max_calls_per_connection: Option<usize>,
    /// Directory for `sip.recording` files.
    #[arg(long, value_name = "DIR")]
    recordings_dir: Option<PathBuf>,
    /// Admin listener: GET /metrics, /healthz, /readyz, POST /drain (no
    /// authentication: keep it on loopback or a management network).
    #[arg(long, value_name = "ADDR:PORT")]
    admin_listen: Option<SocketAddr>,
    /// Override any setting: `--set limits.max_calls=20`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
}

impl GatewayArgs {
    /// The configuration: the file (or the gateway preset), then the flags.
    pub fn into_config(self) -> anyhow::Result<Config> {
        let mut set = Vec::new();
        let mut put = |key: &str, value: String| set.push(format!("{key}={value}"));
        let quoted = |s: &str| toml::Value::String(s.to_string()).to_string();
        if let Some(a) = self.ws_listen {
            put("websocket.listen", quoted(&a.to_string()));
        }
        if let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) {
            put("websocket.tls_cert", quoted(&cert.to_string_lossy()));
            put("websocket.tls_key", quoted(&key.to_string_lossy()));
        }
        if let Some(h) = &self.sip_advertised_host {
            put("sip.advertised_host", quoted(h));
        }
        if let Some(p) = &self.rtp_ports {
            put("media.rtp_ports", quoted(p));
        }
        if let Some(ms) = self.latency_ms {
            put("media.latency_ms", ms.to_string());
        }
        if let Some(t) = &self.ws_token {
            put("websocket.token", quoted(t));
        }
        if !self.allowed_origins.is_empty() {
            let list: Vec<String> = self.allowed_origins.iter().map(|o| quoted(o)).collect();
            put("websocket.allowed_origins", format!("[{}]", list.join(",")));
        }
        if let Some(n) = self.max_connections {
            put("websocket.max_connections", n.max(1).to_string());
        }
        if let Some(n) = self.max_connections_per_address {
            put("websocket.max_connections_per_address", n.max(1).to_string());
        }
        let seconds = [
            ("websocket.idle_timeout", self.ws_idle_timeout),
            ("websocket.ping_interval", self.ws_ping_interval),
            ("websocket.pong_timeout", self.ws_pong_timeout),
        ];
        for (key, secs) in seconds {
            if let Some(secs) = secs {
                put(key, toml::Value::Float(secs).to_string());
            }
        }
        if let Some(n) = self.max_calls_per_connection {
            put("websocket.max_calls_per_connection", n.max(1).to_string());
        }
        if let Some(d) = &self.recordings_dir {
            put("websocket.recordings_dir", quoted(&d.to_string_lossy()));
        }
        if let Some(a) = self.admin_listen {
            put("admin.listen", quoted(&a.to_string()));
        }
        set.extend(self.set);
        let overrides = Overrides {
            // One address, both transports, as RFC 3261 asks of a UA.
            sip_listen: self.sip_listen.map(|a| vec![format!("udp:{a}"), format!("tcp:{a}")]).unwrap_or_default(),
            media_addresses: self.media_addresses,
            public_address: self.public_address,
            set,
        };
        match &self.config {
            Some(path) => Config::for_daemon_as(path, &overrides, service::GATEWAY_PRESET),
            None => Config::for_run(service::GATEWAY_PRESET, &overrides),
        }
    }
}
