//! Configuration of the user agent and of the accounts it registers.

use std::net::SocketAddr;
use std::time::Duration;

/// A SIP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// UDP (RFC 3261 §18).
    Udp,
    /// TCP.
    Tcp,
    /// SIP over WebSocket (RFC 7118), subprotocol `sip`.
    Ws,
    /// SIP over TLS (RFC 3261 §26.3.1, `transport=tls`). Listening needs
    /// [`Config::tls`] with a certificate; connecting needs its trust
    /// anchors.
    Tls,
    /// SIP over secure WebSocket (RFC 7118, `transport=wss`). Listening
    /// needs a certificate like [`Transport::Tls`] (TLS terminated in
    /// [`crate::wss`]); connecting ([`crate::secure_client`]) verifies the
    /// server against [`Config::tls`]'s CA or the system roots.
    Wss,
}

impl Transport {
    /// The `transport=` URI parameter / Via token, lower case.
    pub fn param(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Ws => "ws",
            Transport::Tls => "tls",
            Transport::Wss => "wss",
        }
    }

    pub(crate) fn to_rsip(self) -> rsipstack::sip::Transport {
        match self {
            Transport::Udp => rsipstack::sip::Transport::Udp,
            Transport::Tcp => rsipstack::sip::Transport::Tcp,
            Transport::Ws => rsipstack::sip::Transport::Ws,
            Transport::Tls => rsipstack::sip::Transport::Tls,
            Transport::Wss => rsipstack::sip::Transport::Wss,
        }
    }

    pub(crate) fn from_rsip(t: rsipstack::sip::Transport) -> Transport {
        match t {
            rsipstack::sip::Transport::Tcp => Transport::Tcp,
            rsipstack::sip::Transport::Tls => Transport::Tls,
            rsipstack::sip::Transport::Ws => Transport::Ws,
            rsipstack::sip::Transport::Wss => Transport::Wss,
            _ => Transport::Udp,
        }
    }
}

/// One listening socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listen {
    /// Transport served on it.
    pub transport: Transport,
    /// Local address; port 0 picks a free port (read it back with
    /// [`crate::UserAgent::local_addr`]).
    pub addr: SocketAddr,
}

/// User agent configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// User-Agent / Server header value.
    pub user_agent: String,
    /// Sockets to listen on; at least one.
    pub listen: Vec<Listen>,
    /// Host (IP or name) written into Via and Contact instead of the bound
    /// address. Needed whenever the bind address (0.0.0.0, a private IP)
    /// is not what peers can reach: a wrong one is the classic one-way
    /// audio bug one layer up.
    pub advertised_host: Option<String>,
    /// Largest message accepted, in bytes (UDP is further bounded by
    /// rsipstack's 8 KiB receive buffer).
    pub max_message_size: usize,
    /// Calls being set up or in progress per remote IP.
    pub max_calls_per_peer: usize,
    /// Requests per second accepted from one remote IP (burst of twice
    /// that); excess datagrams are dropped unanswered.
    pub max_requests_per_second_per_peer: u32,
    /// Remote IPs tracked by the rate limiter (bounds its memory).
    pub max_tracked_peers: usize,
    /// RFC 3261 T1 (retransmission base). 500 ms by default; tests may
    /// lower it.
    pub t1: Duration,
    /// Time an incoming INVITE may ring unanswered before a 480.
    pub ring_timeout: Duration,
    /// Certificates for SIP over TLS; `None`: no TLS listener, and outgoing
    /// TLS verified against the system roots.
    pub tls: Option<TlsSettings>,
    /// DNS servers for locating registrars, proxies and call targets (RFC
    /// 3263: NAPTR, SRV, A/AAAA); empty: the system's (`/etc/resolv.conf`).
    pub dns_servers: Vec<std::net::IpAddr>,
    /// Session timers (RFC 4028); `None` turns them off (no `timer` in
    /// Supported, a peer's Session-Expires ignored).
    pub session_timer: Option<SessionTimer>,
    /// The HTTP path of the WebSocket upgrade when we connect over WS or
    /// WSS (RFC 7118 leaves it to the server): `/` by default, which
    /// Kamailio takes; Asterisk wants `/ws`.
    pub ws_path: String,
    /// A WebSocket Ping this often on our outgoing WSS connections (`None`:
    /// none). The server's Pong keeps the connection from being closed as
    /// idle (rsipstack closes a stream silent for 300 s) and NAT bindings
    /// open, so the registrar can reach us over it.
    pub ws_keepalive: Option<Duration>,
}

/// Session-timer settings (RFC 4028).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionTimer {
    /// Session interval we ask for (Session-Expires), in seconds.
    pub expires: u32,
    /// The smallest interval we accept (Min-SE); a shorter request is
    /// answered 422. RFC 4028 sets 90 s as the floor; tests go lower.
    pub min_se: u32,
}

impl Default for SessionTimer {
    fn default() -> Self {
        // RFC 4028 §4 recommends 1800 s; 90 s is its minimum Min-SE.
        SessionTimer { expires: 1800, min_se: 90 }
    }
}

/// PEM material for SIP over TLS.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsSettings {
    /// Our certificate chain (PEM), for a [`Transport::Tls`] or
    /// [`Transport::Wss`] listener.
    pub cert_pem: Option<String>,
    /// Its private key (PEM, PKCS#8 or PKCS#1).
    pub key_pem: Option<String>,
    /// Trust anchors (PEM) for the servers we connect to; `None`: the
    /// system's roots ([`SYSTEM_ROOTS`], or the file `SSL_CERT_FILE` names).
    pub ca_pem: Option<String>,
}

/// Debian's bundle of the system's trusted roots (package ca-certificates).
pub const SYSTEM_ROOTS: &str = "/etc/ssl/certs/ca-certificates.crt";

impl TlsSettings {
    /// rsipstack's TLS settings. rsipstack trusts nothing by itself, so the
    /// system roots are handed to it when no CA is configured.
    pub(crate) fn to_rsip(&self) -> rsipstack::transport::tls::TlsConfig {
        rsipstack::transport::tls::TlsConfig {
            cert: self.cert_pem.as_ref().map(|s| s.as_bytes().to_vec()),
            key: self.key_pem.as_ref().map(|s| s.as_bytes().to_vec()),
            ca_certs: self.trust_anchors_pem().map(String::into_bytes),
            ..Default::default()
        }
    }

    /// The certificates servers are verified against (PEM): the configured
    /// CA, else the system's roots; `None` (logged) when there are none.
    pub(crate) fn trust_anchors_pem(&self) -> Option<String> {
        self.ca_pem.clone().or_else(|| {
            let path = std::env::var("SSL_CERT_FILE").unwrap_or_else(|_| SYSTEM_ROOTS.to_string());
            std::fs::read_to_string(&path)
                .inspect_err(
                    |e| tracing::warn!(%path, %e, "no system trust roots: outgoing TLS will fail verification"),
                )
                .ok()
        })
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            user_agent: concat!("sipbridge-signaling/", env!("CARGO_PKG_VERSION")).to_string(),
            listen: Vec::new(),
            advertised_host: None,
            max_message_size: 16 * 1024,
            max_calls_per_peer: 32,
            max_requests_per_second_per_peer: 200,
            max_tracked_peers: 4096,
            t1: Duration::from_millis(500),
            ring_timeout: Duration::from_secs(120),
            tls: None,
            session_timer: Some(SessionTimer::default()),
            ws_path: "/".into(),
            ws_keepalive: Some(Duration::from_secs(30)),
            dns_servers: Vec::new(),
        }
    }
}

/// A SIP account: an address-of-record with credentials, registered at and
/// routed through a registrar/proxy. Its `Debug` leaves the password out.
#[derive(Clone)]
pub struct Account {
    /// Address-of-record, e.g. `sip:alice@example.com`.
    pub aor: String,
    /// Display name for From.
    pub display_name: Option<String>,
    /// Digest user name; defaults to the AOR's user part.
    pub auth_username: Option<String>,
    /// Digest password.
    pub password: String,
    /// Where REGISTER and calls go, e.g. `sip:127.0.0.1:5060;transport=tcp`.
    /// Defaults to the AOR's domain over UDP.
    pub proxy: Option<String>,
    /// Requested registration lifetime in seconds.
    pub expires: u32,
    /// Extra headers sent with every REGISTER (name, value).
    pub headers: Vec<(String, String)>,
}

impl std::fmt::Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Account")
            .field("aor", &self.aor)
            .field("display_name", &self.display_name)
            .field("auth_username", &self.auth_username)
            .field("password", &crate::redact::REDACTED)
            .field("proxy", &self.proxy)
            .field("expires", &self.expires)
            .field("headers", &self.headers)
            .finish()
    }
}

impl Account {
    /// An account with the usual defaults (3600 s, no proxy).
    pub fn new(aor: impl Into<String>, password: impl Into<String>) -> Self {
        Account {
            aor: aor.into(),
            display_name: None,
            auth_username: None,
            password: password.into(),
            proxy: None,
            expires: 3600,
            headers: Vec::new(),
        }
    }

    /// An account whose secret is the digest HA1, hex of
    /// H(user:realm:password) as Kamailio's `ha1` column holds it, instead
    /// of the password. It answers only challenges of that realm and hash.
    pub fn with_ha1(aor: impl Into<String>, ha1: impl Into<String>) -> Self {
        Account::new(aor, format!("{}{}", crate::digest::HA1_MARKER, ha1.into()))
    }

    /// Sets the outbound proxy / registrar URI.
    pub fn with_proxy(mut self, proxy: impl Into<String>) -> Self {
        self.proxy = Some(proxy.into());
        self
    }
}
