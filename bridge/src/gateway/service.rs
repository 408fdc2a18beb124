//! The gateway as a service: its settings, the web users connected now
//! (incoming SIP requests are routed to them by AOR), and its part of the
//! shutdown (stop taking connections, unregister every browser user).

use crate::call::Calls;
use crate::daemon::config::Config;
use signaling::{IncomingCall, IncomingMessage, IncomingNotify, UaEvent};
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// The preset a gateway configuration starts from.
pub const GATEWAY_PRESET: &str = crate::daemon::preset::GATEWAY;

/// The gateway's settings, from the `[websocket]` table.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// HTTP + WebSocket listener (page at `/`, API at `/ws`).
    pub ws_listen: SocketAddr,
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
    /// Where `sip.recording` writes its files.
    pub recordings_dir: PathBuf,
    /// STUN/TURN servers for the page (`ready`'s `iceServers`), TURN REST
    /// credentials made per connection from their secrets.
    pub ice_servers: Vec<pipelines::IceServer>,
}

impl GatewayConfig {
    pub fn from_config(config: &Config) -> anyhow::Result<GatewayConfig> {
        let ws = &config.websocket;
        Ok(GatewayConfig {
            ws_listen: ws.listen,
            token: ws.token()?,
            allowed_origins: ws.allowed_origins.clone(),
            max_connections: ws.max_connections,
            max_connections_per_address: ws.max_connections_per_address,
            ws_idle_timeout: Duration::from_secs_f64(ws.idle_timeout),
            ws_ping_interval: Duration::from_secs_f64(ws.ping_interval),
            ws_pong_timeout: Duration::from_secs_f64(ws.pong_timeout),
            max_calls_per_connection: ws.max_calls_per_connection,
            recordings_dir: ws.recordings_dir.clone(),
            ice_servers: config.media.ice_servers.clone(),
        })
    }
}

/// A connected web user, as the router sees it.
pub trait WebUser: Send + Sync {
    fn id(&self) -> u64;
    /// (user, host) of its registered AOR, when registered.
    fn aor_key(&self) -> Option<(String, String)>;
    fn incoming_call(self: Arc<Self>, incoming: IncomingCall);
    fn incoming_message(&self, message: IncomingMessage);
    /// A NOTIFY outside its subscriptions (unsolicited message-summary).
    fn incoming_notify(&self, notify: IncomingNotify);
    /// Hangs up its calls and unregisters its account.
    fn shut_down(self: Arc<Self>) -> Pin<Box<dyn Future<Output = ()> + Send>>;
}

/// State shared by every connection.
pub struct Gateway {
    pub config: GatewayConfig,
    /// HTTPS/WSS certificate, when configured (reloadable).
    pub certificate: Option<Arc<super::tls::Certificate>>,
    pub calls: Arc<Calls>,
    /// Connected users by connection id, for routing incoming calls.
    users: Mutex<HashMap<u64, Arc<dyn WebUser>>>,
    pub connections: super::connections::Connections,
    next_id: AtomicU64,
    /// Turns false when the service shuts down: no new connections.
    accepting: watch::Sender<bool>,
}

impl Gateway {
    /// The gateway of `config`, taking no connections yet (see `gateway::start`).
    pub fn new(config: &Config, calls: Arc<Calls>) -> anyhow::Result<Gateway> {
        let certificate = match (&config.websocket.tls_cert, &config.websocket.tls_key) {
            (Some(cert), Some(key)) => Some(super::tls::Certificate::load(cert, key)?),
            _ => None,
        };
        let config = GatewayConfig::from_config(config)?;
        std::fs::create_dir_all(&config.recordings_dir).ok();
        Ok(Gateway {
            config,
            certificate,
            calls,
            users: Mutex::default(),
            connections: super::connections::Connections::default(),
            next_id: AtomicU64::new(1),
            accepting: watch::channel(true).0,
        })
    }

    /// Turns false when the service shuts down: the listener stops.
    pub fn accepting(&self) -> watch::Receiver<bool> {
        self.accepting.subscribe()
    }

    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    pub fn add_user(&self, user: Arc<dyn WebUser>) {
        self.users.lock().unwrap().insert(user.id(), user);
    }

    pub fn remove_user(&self, id: u64) {
        self.users.lock().unwrap().remove(&id);
    }

    /// Routes an incoming request to the user whose account it is for.
    pub fn dispatch(&self, event: UaEvent) {
        match event {
            UaEvent::IncomingCall(inc) => match self.route(&inc.to, &inc.request_uri) {
                Some(user) => user.incoming_call(inc),
                None => {
                    tracing::info!(to = %inc.to, "incoming call for no connected user: 404");
                    let _ = inc.call.reject(404, None);
                }
            },
            UaEvent::Message(m) => {
                if let Some(user) = self.route(&m.to, &m.to) {
                    user.incoming_message(m);
                }
            }
            UaEvent::Notify(n) => match self.route(&n.to, &n.request_uri) {
                Some(user) => user.incoming_notify(n),
                None => tracing::info!(to = %n.to, event = %n.notification.event, "NOTIFY for no connected user"),
            },
        }
    }

    /// The user whose registered account an incoming request is for: the
    /// To AOR first, then the Request-URI's user part.
    fn route(&self, to: &str, request_uri: &str) -> Option<Arc<dyn WebUser>> {
        let users: Vec<Arc<dyn WebUser>> = self.users.lock().unwrap().values().cloned().collect();
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

    /// Rereads the HTTPS/WSS certificate files (SIGHUP); `false` when the
    /// gateway serves plain HTTP. On error the current certificate stays.
    pub fn reload_certificate(&self) -> anyhow::Result<bool> {
        match &self.certificate {
            Some(c) => c.reload().map(|()| true),
            None => Ok(false),
        }
    }

    /// Stops taking WebSocket connections (shutdown).
    pub fn stop_accepting(&self) {
        self.accepting.send_replace(false);
    }

    /// Every connected user's calls hung up and account unregistered.
    pub async fn shut_down(&self) {
        let users: Vec<Arc<dyn WebUser>> = self.users.lock().unwrap().drain().map(|(_, u)| u).collect();
        let all = users.into_iter().map(|u| tokio::spawn(u.shut_down()));
        for task in all.collect::<Vec<_>>() {
            let _ = task.await;
        }
    }
}

/// (user, host) of a SIP URI, lower-cased host, no port or parameters.
pub fn aor_key(uri: &str) -> Option<(String, String)> {
    let uri = uri.trim().trim_start_matches('<');
    let rest = uri.strip_prefix("sips:").or_else(|| uri.strip_prefix("sip:"))?;
    let (user, host) = rest.split_once('@')?;
    let host = host.split([';', '>', '?']).next()?;
    let host = host.split(':').next()?.to_ascii_lowercase();
    Some((user.to_string(), host))
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
