//! The browser gateway: a WebSocket API (JSON-RPC 2.0, one object per
//! message, the framing of docs/protocol.md) and a softphone page on the
//! same port. Each WebSocket connection is one web user with at most one
//! SIP account; its calls join a WebRTC leg towards the browser to an RTP
//! leg towards the SIP peer, transcoding when the codecs differ.
//!
//! ```text
//!  browser --WS /ws--> ws.rs --> user.rs (account, registration, calls)
//!                                   |
//!                                   +--> call.rs: Leg::WebRtc <-Link-> Leg::Rtp <--> SIP peer
//!  SIP peers --> signaling::UserAgent --> incoming calls routed by AOR to a user
//! ```

mod call;
mod errors;
mod user;
mod ws;

use pipelines::LegOptions;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Everything the gateway needs; `run` starts from it.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// HTTP + WebSocket listener (page at `/`, API at `/ws`).
    pub ws_listen: SocketAddr,
    /// SIP listener (UDP and TCP on the same address).
    pub sip_listen: SocketAddr,
    /// Host written into Via/Contact when the bind address is not reachable.
    pub sip_advertised_host: Option<String>,
    /// When set, a WebSocket must present it (`?token=` or
    /// `Authorization: Bearer`).
    pub token: Option<String>,
    /// Origins allowed to open the WebSocket; empty: same origin only;
    /// `*`: any. Requests without an Origin header (non-browsers) pass.
    pub allowed_origins: Vec<String>,
    /// Concurrent WebSocket connections.
    pub max_connections: usize,
    /// Concurrent WebSocket connections from one IP address.
    pub max_connections_per_address: usize,
    /// A connection that has neither registered nor called this long after
    /// the upgrade is closed.
    pub ws_idle_timeout: Duration,
    /// How often the gateway pings each connection.
    pub ws_ping_interval: Duration,
    /// A connection that sends nothing (no pong) this long after a ping is closed.
    pub ws_pong_timeout: Duration,
    /// Concurrent calls per connection (a further incoming call is
    /// answered 486 and reported as `missed_call`).
    pub max_calls_per_connection: usize,
    /// Media defaults of both legs of every call.
    pub legs: LegOptions,
    /// Where `sip.recording` writes its files.
    pub recordings_dir: PathBuf,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            ws_listen: "127.0.0.1:8080".parse().unwrap(),
            sip_listen: "127.0.0.1:5060".parse().unwrap(),
            sip_advertised_host: None,
            token: None,
            allowed_origins: Vec::new(),
            max_connections: 64,
            max_connections_per_address: 8,
            ws_idle_timeout: Duration::from_secs(60),
            ws_ping_interval: Duration::from_secs(20),
            ws_pong_timeout: Duration::from_secs(20),
            max_calls_per_connection: 1,
            legs: LegOptions::default(),
            recordings_dir: std::env::temp_dir().join("sipbridge-recordings"),
        }
    }
}

/// State shared by every connection.
pub(crate) struct Gateway {
    pub config: GatewayConfig,
    pub ua: signaling::UserAgent,
    /// Connected users by connection id, for routing incoming calls.
    users: Mutex<HashMap<u64, Arc<user::User>>>,
    pub connections: ws::Connections,
    next_id: AtomicU64,
}

impl Gateway {
    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    pub fn add_user(&self, user: Arc<user::User>) {
        self.users.lock().unwrap().insert(user.id, user);
    }

    pub fn remove_user(&self, id: u64) {
        self.users.lock().unwrap().remove(&id);
    }

    /// The user whose registered account an incoming request is for: the
    /// To AOR first, then the Request-URI's user part.
    fn route(&self, to: &str, request_uri: &str) -> Option<Arc<user::User>> {
        let users: Vec<Arc<user::User>> = self.users.lock().unwrap().values().cloned().collect();
        let to_key = aor_key(to);
        users
            .iter()
            .find(|u| u.aor_key().is_some_and(|k| Some(&k) == to_key.as_ref()))
            .or_else(|| {
                let ruser = aor_key(request_uri).map(|k| k.0);
                users.iter().find(|u| u.aor_key().is_some_and(|k| Some(&k.0) == ruser.as_ref()))
            })
            .cloned()
    }
}

/// (user, host) of a SIP URI, lower-cased host, no port or parameters.
pub(crate) fn aor_key(uri: &str) -> Option<(String, String)> {
    let uri = uri.trim().trim_start_matches('<');
    let rest = uri.strip_prefix("sips:").or_else(|| uri.strip_prefix("sip:"))?;
    let (user, host) = rest.split_once('@')?;
    let host = host.split([';', '>', '?']).next()?;
    let host = host.split(':').next()?.to_ascii_lowercase();
    Some((user.to_string(), host))
}

/// Starts the SIP user agent and the WebSocket server; runs until the
/// listener fails.
pub async fn run(config: GatewayConfig) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.recordings_dir).ok();
    let listen = vec![
        signaling::Listen { transport: signaling::Transport::Udp, addr: config.sip_listen },
        signaling::Listen { transport: signaling::Transport::Tcp, addr: config.sip_listen },
    ];
    let ua = signaling::UserAgent::start(signaling::Config {
        listen,
        advertised_host: config.sip_advertised_host.clone(),
        ..signaling::Config::default()
    })
    .await
    .map_err(|e| anyhow::anyhow!("SIP user agent: {e}"))?;
    let mut ua_events = ua.take_events().expect("fresh user agent");
    let listener = tokio::net::TcpListener::bind(config.ws_listen).await?;
    tracing::info!(
        ws = %listener.local_addr()?,
        sip = ?ua.local_addr(signaling::Transport::Udp),
        token = config.token.is_some(),
        "gateway listening: page at http://{}/ , API at /ws",
        listener.local_addr()?
    );
    let gw = Arc::new(Gateway {
        config,
        ua,
        users: Mutex::default(),
        connections: ws::Connections::default(),
        next_id: AtomicU64::new(1),
    });
    let router = gw.clone();
    tokio::spawn(async move {
        while let Some(event) = ua_events.recv().await {
            match event {
                signaling::UaEvent::IncomingCall(inc) => match router.route(&inc.to, &inc.request_uri) {
                    Some(user) => user.incoming_call(inc),
                    None => {
                        tracing::info!(to = %inc.to, "incoming call for no connected user: 404");
                        let _ = inc.call.reject(404, None);
                    }
                },
                signaling::UaEvent::Message(m) => {
                    if let Some(user) = router.route(&m.to, &m.to) {
                        user.incoming_message(m);
                    }
                }
            }
        }
    });
    ws::serve(gw, listener).await
}

#[cfg(test)]
mod tests {
    use super::aor_key;

    #[test]
    fn aor_keys_ignore_ports_and_params() {
        assert_eq!(aor_key("sip:alice@Example.test"), Some(("alice".into(), "example.test".into())));
        assert_eq!(aor_key("<sip:alice@127.0.0.1:5070;transport=udp>"), Some(("alice".into(), "127.0.0.1".into())));
        assert_eq!(aor_key("tel:+123"), None);
    }
}

/// `sipbridge gateway` options.
#[derive(clap::Args, Debug)]
pub struct GatewayArgs {
    /// HTTP/WebSocket listen address: the page at `/`, the API at `/ws`.
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:8080")]
    ws_listen: SocketAddr,
    /// SIP listen address (UDP and TCP).
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:5060")]
    sip_listen: SocketAddr,
    /// Host written into SIP Via/Contact (when --sip-listen is 0.0.0.0 or private).
    #[arg(long, value_name = "HOST")]
    sip_advertised_host: Option<String>,
    /// Address RTP is received on and ICE gathers on (repeatable). Default: 127.0.0.1.
    #[arg(long = "media-address", value_name = "ADDR")]
    media_addresses: Vec<std::net::IpAddr>,
    /// UDP port range for RTP, e.g. 20000-30000 (0-0: any port).
    #[arg(long, value_name = "LOW-HIGH", default_value = "20000-30000", value_parser = parse_ports)]
    rtp_ports: (u16, u16),
    /// Jitter-buffer latency in milliseconds.
    #[arg(long, default_value_t = 40)]
    latency_ms: u32,
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
    #[arg(long, default_value_t = 64)]
    max_connections: usize,
    /// Concurrent WebSocket connections from one IP address.
    #[arg(long, default_value_t = 8)]
    max_connections_per_address: usize,
    /// Seconds a connection may stay without registering or calling.
    #[arg(long, value_name = "SECONDS", default_value = "60", value_parser = parse_seconds)]
    ws_idle_timeout: Duration,
    /// Seconds between the gateway's pings on each connection.
    #[arg(long, value_name = "SECONDS", default_value = "20", value_parser = parse_seconds)]
    ws_ping_interval: Duration,
    /// Seconds a connection may stay silent after a ping before it is closed.
    #[arg(long, value_name = "SECONDS", default_value = "20", value_parser = parse_seconds)]
    ws_pong_timeout: Duration,
    /// Concurrent calls per connection (more incoming calls get 486).
    #[arg(long, default_value_t = 1)]
    max_calls_per_connection: usize,
    /// Directory for `sip.recording` files.
    #[arg(long, value_name = "DIR")]
    recordings_dir: Option<PathBuf>,
}

impl GatewayArgs {
    pub fn into_config(self) -> GatewayConfig {
        let mut config = GatewayConfig {
            ws_listen: self.ws_listen,
            sip_listen: self.sip_listen,
            sip_advertised_host: self.sip_advertised_host,
            token: self.ws_token.or_else(|| std::env::var("SIPBRIDGE_WS_TOKEN").ok()).filter(|t| !t.is_empty()),
            allowed_origins: self.allowed_origins,
            max_connections: self.max_connections.max(1),
            max_connections_per_address: self.max_connections_per_address.max(1),
            ws_idle_timeout: self.ws_idle_timeout,
            ws_ping_interval: self.ws_ping_interval,
            ws_pong_timeout: self.ws_pong_timeout,
            max_calls_per_connection: self.max_calls_per_connection.max(1),
            ..GatewayConfig::default()
        };
        if let Some(dir) = self.recordings_dir {
            config.recordings_dir = dir;
        }
        if !self.media_addresses.is_empty() {
            config.legs.media_addresses = self.media_addresses;
        }
        config.legs.jitter_latency_ms = self.latency_ms;
        config.legs.rtp_ports = self.rtp_ports;
        config
    }
}

fn parse_ports(s: &str) -> Result<(u16, u16), String> {
    let (a, b) = s.split_once('-').ok_or("expected LOW-HIGH")?;
    let (a, b): (u16, u16) = (a.parse().map_err(|_| "bad port")?, b.parse().map_err(|_| "bad port")?);
    if a > b {
        return Err("LOW must not exceed HIGH".into());
    }
    Ok((a, b))
}

/// A positive number of seconds, fractions allowed (`0.5`).
fn parse_seconds(s: &str) -> Result<Duration, String> {
    match s.parse::<f64>() {
        Ok(secs) if secs > 0.0 && secs <= 86_400.0 => Ok(Duration::from_secs_f64(secs)),
        _ => Err("expected a number of seconds above 0 (at most 86400)".into()),
    }
}
