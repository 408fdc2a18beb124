//! The daemon's configuration: one TOML document made of layers, each
//! overriding the one before, table by table:
//!
//! 1. the preset (`preset = "echo"` in the config file, or `--preset`),
//! 2. the config file itself (`sipbridge daemon --config FILE`),
//! 3. the command line (`--sip-listen`, `--media-address`, `--set key=value`).
//!
//! See `examples/sipbridge.toml` for every key.

use super::preset::Preset;
use crate::call::{TransferPolicies, TransferPolicy};
use anyhow::{bail, Context, Result};
use pipelines::{Codec, LegOptions, SrtpPolicy, SymmetricRtp};
use serde::Deserialize;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

/// The whole configuration, after the layers were merged.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The preset this came from (informational; set by the loader).
    #[serde(default)]
    pub preset: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    pub action: Action,
    #[serde(default)]
    pub play: PlaySettings,
    #[serde(default)]
    pub record: RecordSettings,
    #[serde(default)]
    pub conference: ConferenceSettings,
    #[serde(default)]
    pub sip: SipSettings,
    #[serde(default)]
    pub media: MediaSettings,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub admin: AdminSettings,
    #[serde(default)]
    pub call_records: CallRecordSettings,
    #[serde(default)]
    pub transfer: TransferSettings,
    #[serde(default, rename = "account")]
    pub accounts: Vec<AccountSettings>,
    /// The gateway's WebSocket API and page (action `gateway`).
    #[serde(default)]
    pub websocket: WebSocketSettings,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Echo,
    Play,
    Record,
    Conference,
    /// Browser users through the WebSocket API (`[websocket]`).
    Gateway,
}

impl Action {
    pub fn name(self) -> &'static str {
        match self {
            Action::Echo => "echo",
            Action::Play => "play",
            Action::Record => "record",
            Action::Conference => "conference",
            Action::Gateway => "gateway",
        }
    }
}

/// What a REFER from a caller gets (`[transfer]`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferSettings {
    /// `accept` (the presets' default), `reject` (603; the gateway's
    /// default: a browser app may not expect its call to change peers) or
    /// `ask` (the gateway's browser decides).
    #[serde(default)]
    pub policy: Option<TransferPolicy>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlaySettings {
    #[serde(default)]
    pub file: PathBuf,
    #[serde(default, rename = "loop")]
    pub looped: bool,
    /// Seconds; 0 = never.
    #[serde(default)]
    pub hangup_after: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileFormat {
    #[default]
    Wav,
    #[serde(alias = "opus", alias = "oggopus")]
    Ogg,
}

impl FileFormat {
    pub fn extension(self) -> &'static str {
        match self {
            FileFormat::Wav => "wav",
            FileFormat::Ogg => "ogg",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordSettings {
    #[serde(default = "default_recordings")]
    pub dir: PathBuf,
    #[serde(default)]
    pub format: FileFormat,
    /// Seconds; 0 = no limit.
    #[serde(default)]
    pub max_seconds: u64,
}

impl Default for RecordSettings {
    fn default() -> Self {
        RecordSettings { dir: default_recordings(), format: FileFormat::Wav, max_seconds: 0 }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConferenceSettings {
    #[serde(default = "default_rate")]
    pub rate: u32,
    #[serde(default)]
    pub record: bool,
    #[serde(default = "default_recordings")]
    pub record_dir: PathBuf,
    #[serde(default)]
    pub format: FileFormat,
    #[serde(default = "default_mute")]
    pub mute_dtmf: String,
}

impl Default for ConferenceSettings {
    fn default() -> Self {
        ConferenceSettings {
            rate: default_rate(),
            record: false,
            record_dir: default_recordings(),
            format: FileFormat::Wav,
            mute_dtmf: default_mute(),
        }
    }
}

fn default_recordings() -> PathBuf {
    PathBuf::from("recordings")
}
fn default_rate() -> u32 {
    16000
}
fn default_mute() -> String {
    "*6".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SipSettings {
    /// `udp:ADDR:PORT`, `tcp:ADDR:PORT`, `ws:ADDR:PORT`, `tls:ADDR:PORT`,
    /// `wss:ADDR:PORT` or a bare `ADDR:PORT` (UDP).
    #[serde(default = "default_listen")]
    pub listen: Vec<String>,
    /// Certificate chain (PEM file) of a `tls:` or `wss:` listener.
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    /// Its private key (PEM file).
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
    /// Trust anchors (PEM file) for TLS servers we connect to; default: the
    /// system's roots.
    #[serde(default)]
    pub tls_ca: Option<PathBuf>,
    /// Host written into Via/Contact when the bind address is not what
    /// peers can reach.
    #[serde(default)]
    pub advertised_host: Option<String>,
    #[serde(default = "default_user_agent")]
    pub user_agent: String,
    /// Calls set up or in progress per remote IP (a flood guard below the
    /// global limit); default: `limits.max_calls`, so a PBX or SBC sending
    /// every call from one address is not cut short.
    #[serde(default)]
    pub max_calls_per_peer: Option<usize>,
    /// HTTP path of the WebSocket upgrade when connecting to a
    /// `transport=ws|wss` proxy (Asterisk: `/ws`).
    #[serde(default = "default_ws_path")]
    pub ws_path: String,
    /// Seconds between WebSocket Pings on outgoing WSS connections (they
    /// keep the connection a registrar reaches us over alive); 0: none.
    #[serde(default = "default_ws_keepalive")]
    pub ws_keepalive: u64,
}

impl Default for SipSettings {
    fn default() -> Self {
        SipSettings {
            listen: default_listen(),
            tls_cert: None,
            tls_key: None,
            tls_ca: None,
            advertised_host: None,
            user_agent: default_user_agent(),
            max_calls_per_peer: None,
            ws_path: default_ws_path(),
            ws_keepalive: default_ws_keepalive(),
        }
    }
}

fn default_listen() -> Vec<String> {
    vec!["udp:127.0.0.1:5060".into()]
}
fn default_ws_keepalive() -> u64 {
    30
}
fn default_ws_path() -> String {
    "/".into()
}
fn default_user_agent() -> String {
    concat!("sipbridge/", env!("CARGO_PKG_VERSION")).into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MediaSettings {
    #[serde(default = "default_media_addresses")]
    pub addresses: Vec<IpAddr>,
    /// The address the world reaches `addresses` at (a 1:1 NAT, a cloud
    /// VM's public IP): advertised in SDP and ICE host candidates.
    #[serde(default)]
    pub public_address: Option<IpAddr>,
    /// STUN and TURN servers of WebRTC legs, as RTCConfiguration's
    /// `iceServers` (`[[media.ice_servers]]`); the gateway hands them to
    /// its page with short-lived credentials.
    #[serde(default)]
    pub ice_servers: Vec<pipelines::IceServer>,
    /// Trust anchors (PEM file) for the `turns:` servers the lean WebRTC
    /// leg allocates on; default: the system's roots.
    #[serde(default)]
    pub turn_tls_ca: Option<PathBuf>,
    /// `LOW-HIGH`; `0-0` lets the kernel pick.
    #[serde(default = "default_rtp_ports")]
    pub rtp_ports: String,
    #[serde(default = "default_latency")]
    pub latency_ms: u32,
    #[serde(default = "default_codecs")]
    pub codecs: Vec<Codec>,
    #[serde(default = "default_opus_bitrate")]
    pub opus_bitrate: u32,
    #[serde(default = "default_opus_complexity")]
    pub opus_complexity: u32,
    #[serde(default)]
    pub symmetric_rtp: SymmetricRtp,
    /// SDES-SRTP towards SIP peers: off, optional (default), mandatory.
    #[serde(default)]
    pub srtp: SrtpPolicy,
    /// Which WebRTC leg browsers get: "webrtcbin" (default) or "lean"
    /// (str0m on the shared socket threads).
    #[serde(default)]
    pub webrtc_leg: pipelines::WebRtcLegKind,
    /// Seconds without RTP from a peer that should be sending before its
    /// call is hung up (BYE); 0 = never. On hold RTCP counts too, and the
    /// timeout is at least 20 s.
    #[serde(default = "default_media_timeout")]
    pub timeout: u32,
}

impl Default for MediaSettings {
    fn default() -> Self {
        MediaSettings {
            addresses: default_media_addresses(),
            public_address: None,
            ice_servers: Vec::new(),
            turn_tls_ca: None,
            rtp_ports: default_rtp_ports(),
            latency_ms: default_latency(),
            codecs: default_codecs(),
            opus_bitrate: default_opus_bitrate(),
            opus_complexity: default_opus_complexity(),
            symmetric_rtp: SymmetricRtp::Auto,
            srtp: SrtpPolicy::Optional,
            webrtc_leg: pipelines::WebRtcLegKind::Webrtcbin,
            timeout: default_media_timeout(),
        }
    }
}

fn default_media_timeout() -> u32 {
    30
}
fn default_media_addresses() -> Vec<IpAddr> {
    vec![IpAddr::from([127, 0, 0, 1])]
}
fn default_rtp_ports() -> String {
    "20000-30000".into()
}
fn default_latency() -> u32 {
    40
}
fn default_codecs() -> Vec<Codec> {
    LegOptions::default().codecs
}
fn default_opus_bitrate() -> u32 {
    LegOptions::default().opus_bitrate
}
fn default_opus_complexity() -> u32 {
    LegOptions::default().opus_complexity
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Concurrent calls; the next one is answered 503.
    #[serde(default = "default_max_calls")]
    pub max_calls: usize,
    /// Seconds the daemon waits for calls to end at shutdown.
    #[serde(default = "default_shutdown_grace")]
    pub shutdown_grace: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_calls: default_max_calls(), shutdown_grace: default_shutdown_grace() }
    }
}

fn default_max_calls() -> usize {
    100
}
fn default_shutdown_grace() -> u64 {
    5
}

/// The gateway's HTTP/WebSocket listener: the page at `/`, the API at `/ws`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebSocketSettings {
    #[serde(default = "default_ws_listen")]
    pub listen: SocketAddr,
    /// A token every WebSocket must present (`?token=` or `Authorization:
    /// Bearer`); prefer `token_env`, the name of an environment variable.
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub token_env: Option<String>,
    /// Origins allowed to open the WebSocket; empty: same origin only; `*`: any.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Connections from one IP address.
    #[serde(default = "default_max_connections_per_address")]
    pub max_connections_per_address: usize,
    /// Seconds a connection may go without registering or calling.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout: f64,
    /// Seconds between pings on each connection.
    #[serde(default = "default_ping_interval")]
    pub ping_interval: f64,
    /// Seconds a connection may stay silent after a ping.
    #[serde(default = "default_pong_timeout")]
    pub pong_timeout: f64,
    /// Calls per connection; a further incoming call is answered 486.
    #[serde(default = "default_max_calls_per_connection")]
    pub max_calls_per_connection: usize,
    /// Where `sip.recording` writes its files.
    #[serde(default = "default_gateway_recordings")]
    pub recordings_dir: PathBuf,
    /// Certificate chain (PEM file): the page and `/ws` over HTTPS/WSS.
    /// Reread with the key on SIGHUP. Without it: plain HTTP.
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    /// Private key (PEM file) of `tls_cert`.
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
}

impl Default for WebSocketSettings {
    fn default() -> Self {
        WebSocketSettings {
            listen: default_ws_listen(),
            token: None,
            token_env: None,
            allowed_origins: Vec::new(),
            max_connections: default_max_connections(),
            max_connections_per_address: default_max_connections_per_address(),
            idle_timeout: default_idle_timeout(),
            ping_interval: default_ping_interval(),
            pong_timeout: default_pong_timeout(),
            max_calls_per_connection: default_max_calls_per_connection(),
            recordings_dir: default_gateway_recordings(),
            tls_cert: None,
            tls_key: None,
        }
    }
}

impl std::fmt::Debug for WebSocketSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebSocketSettings")
            .field("listen", &self.listen)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("token_env", &self.token_env)
            .field("allowed_origins", &self.allowed_origins)
            .field("max_connections", &self.max_connections)
            .field("max_connections_per_address", &self.max_connections_per_address)
            .field("idle_timeout", &self.idle_timeout)
            .field("ping_interval", &self.ping_interval)
            .field("pong_timeout", &self.pong_timeout)
            .field("max_calls_per_connection", &self.max_calls_per_connection)
            .field("recordings_dir", &self.recordings_dir)
            .field("tls_cert", &self.tls_cert)
            .field("tls_key", &self.tls_key)
            .finish()
    }
}

impl WebSocketSettings {
    /// The token, from the file or the environment (`token_env`, else
    /// SIPBRIDGE_WS_TOKEN); `None` when no token is required.
    pub fn token(&self) -> Result<Option<String>> {
        let from_env = |var: &str| std::env::var(var).ok().filter(|t| !t.is_empty());
        match (&self.token, &self.token_env) {
            (_, Some(var)) => from_env(var).map(Some).with_context(|| format!("websocket.token_env: {var} is not set")),
            (Some(t), None) => Ok(Some(t.clone()).filter(|t| !t.is_empty())),
            (None, None) => Ok(from_env("SIPBRIDGE_WS_TOKEN")),
        }
    }
}

fn default_ws_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}
fn default_max_connections() -> usize {
    64
}
fn default_max_calls_per_connection() -> usize {
    1
}
fn default_max_connections_per_address() -> usize {
    8
}
fn default_idle_timeout() -> f64 {
    60.0
}
fn default_ping_interval() -> f64 {
    20.0
}
fn default_pong_timeout() -> f64 {
    20.0
}
fn default_gateway_recordings() -> PathBuf {
    std::env::temp_dir().join("sipbridge-recordings")
}

/// An account registered at a registrar. The password comes from the file
/// (`password`) or, better, from an environment variable (`password_env`);
/// it is never logged.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountSettings {
    pub aor: String,
    #[serde(default)]
    pub proxy: Option<String>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub password_env: Option<String>,
    #[serde(default = "default_expires")]
    pub expires: u32,
    /// What a REFER gets in the calls through this account; the service's
    /// `[transfer] policy` when unset.
    #[serde(default)]
    pub transfer_policy: Option<TransferPolicy>,
}

/// The admin listener (metrics, health, readiness, drain); off unless
/// `listen` is given.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSettings {
    #[serde(default)]
    pub listen: Option<SocketAddr>,
    /// Seconds a drain (POST /drain, SIGUSR1) lets calls run before the
    /// rest get a BYE and the daemon exits.
    #[serde(default = "default_drain_seconds")]
    pub drain_seconds: u64,
}

impl Default for AdminSettings {
    fn default() -> Self {
        AdminSettings { listen: None, drain_seconds: default_drain_seconds() }
    }
}

fn default_drain_seconds() -> u64 {
    600
}

/// One JSON record per finished call: to a file (JSON lines), to the log,
/// or both.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallRecordSettings {
    #[serde(default)]
    pub file: Option<PathBuf>,
    #[serde(default)]
    pub log: bool,
}

fn default_expires() -> u32 {
    600
}

impl std::fmt::Debug for AccountSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountSettings")
            .field("aor", &self.aor)
            .field("proxy", &self.proxy)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("password_env", &self.password_env)
            .field("expires", &self.expires)
            .field("transfer_policy", &self.transfer_policy)
            .finish()
    }
}

impl AccountSettings {
    /// The signaling account, with the password resolved.
    pub fn account(&self) -> Result<signaling::Account> {
        let password = match (&self.password, &self.password_env) {
            (_, Some(var)) => std::env::var(var)
                .with_context(|| format!("account {}: environment variable {var} is not set", self.aor))?,
            (Some(p), None) => p.clone(),
            (None, None) => bail!("account {}: give `password` or `password_env`", self.aor),
        };
        let mut account = signaling::Account::new(self.aor.clone(), password);
        account.proxy = self.proxy.clone();
        account.auth_username = self.username.clone();
        account.display_name = self.display_name.clone();
        account.expires = self.expires;
        Ok(account)
    }
}

/// What the command line adds on top of the file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub sip_listen: Vec<String>,
    pub media_addresses: Vec<IpAddr>,
    pub public_address: Option<IpAddr>,
    /// `key=value` with a dotted key, e.g. `play.file=/tmp/a.wav`.
    pub set: Vec<String>,
}

impl Config {
    /// Deserializes a merged table, and checks what serde cannot.
    pub fn from_table(table: toml::Table) -> Result<Config> {
        if !table.contains_key("action") {
            bail!("no preset: give `preset = \"echo\"` (or play, record, conference, gateway, or a preset file's path), or `action = ...` with its settings");
        }
        let config: Config =
            toml::Value::Table(table).try_into().map_err(|e: toml::de::Error| anyhow::anyhow!("{}", e.message()))?;
        config.validate()?;
        Ok(config)
    }

    /// `sipbridge run --preset NAME`: the preset, then the command line.
    pub fn for_run(preset: &str, overrides: &Overrides) -> Result<Config> {
        let preset = Preset::load(preset)?;
        let mut table = preset.table.clone();
        table.insert("preset".into(), toml::Value::String(preset.name.clone()));
        apply_overrides(&mut table, overrides)?;
        Config::from_table(table)
    }

    /// `sipbridge daemon --config FILE`: the file's preset (if any), the
    /// file, then the command line.
    pub fn for_daemon(path: &std::path::Path, overrides: &Overrides) -> Result<Config> {
        Config::load(path, overrides, None)
    }

    /// `sipbridge gateway --config FILE`: as [`Config::for_daemon`], with
    /// `preset` taken as `default_preset` when the file names no preset
    /// and no action.
    pub fn for_daemon_as(path: &std::path::Path, overrides: &Overrides, default_preset: &str) -> Result<Config> {
        Config::load(path, overrides, Some(default_preset))
    }

    fn load(path: &std::path::Path, overrides: &Overrides, default_preset: Option<&str>) -> Result<Config> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let file: toml::Table = text.parse().with_context(|| format!("{} is not valid TOML", path.display()))?;
        let preset = file.get("preset").and_then(|p| p.as_str());
        let preset = preset.or(default_preset.filter(|_| !file.contains_key("action")));
        let mut table = match preset {
            Some(name) => {
                // A relative preset path is relative to the config file.
                let name = if name.contains('/') && !name.starts_with('/') {
                    path.parent().unwrap_or(std::path::Path::new(".")).join(name).to_string_lossy().into_owned()
                } else {
                    name.to_string()
                };
                let preset = Preset::load(&name)?;
                let mut t = preset.table;
                t.insert("preset".into(), toml::Value::String(preset.name));
                t
            }
            None => toml::Table::new(),
        };
        let mut file = file;
        file.remove("preset");
        merge(&mut table, file);
        apply_overrides(&mut table, overrides)?;
        Config::from_table(table).with_context(|| format!("in {}", path.display()))
    }

    fn validate(&self) -> Result<()> {
        if let Some(path) = &self.media.turn_tls_ca {
            std::fs::read(path).with_context(|| format!("media.turn_tls_ca {}", path.display()))?;
        }
        if self.sip.listen.is_empty() {
            bail!("sip.listen: give at least one address");
        }
        let mut transports = Vec::new();
        for l in &self.sip.listen {
            let t = parse_listen(l)?.transport;
            if transports.contains(&t) {
                bail!("sip.listen: one listener per transport ({} is given twice)", t.param());
            }
            transports.push(t);
        }
        if !self.sip.ws_path.starts_with('/') || self.sip.ws_path.contains(char::is_whitespace) {
            bail!("sip.ws_path must be a URL path such as \"/ws\", not {:?}", self.sip.ws_path);
        }
        if self.sip.ws_keepalive > 3600 {
            bail!("sip.ws_keepalive must be at most 3600 seconds (0: no keepalive)");
        }
        for secure in [signaling::Transport::Tls, signaling::Transport::Wss] {
            if transports.contains(&secure) && (self.sip.tls_cert.is_none() || self.sip.tls_key.is_none()) {
                bail!("sip.listen: a {}: listener needs sip.tls_cert and sip.tls_key (PEM files)", secure.param());
            }
        }
        if self.media.addresses.is_empty() {
            bail!("media.addresses: give at least one address");
        }
        parse_range(&self.media.rtp_ports)?;
        pipelines::ice::validate(&self.media.ice_servers).context("media.ice_servers")?;
        if self.media.codecs.is_empty() {
            bail!("media.codecs: give at least one codec");
        }
        if self.limits.max_calls == 0 {
            bail!("limits.max_calls must be at least 1");
        }
        let ws = &self.websocket;
        if ws.max_connections == 0 || ws.max_connections_per_address == 0 || ws.max_calls_per_connection == 0 {
            bail!(
                "websocket.max_connections, websocket.max_connections_per_address and \
                 websocket.max_calls_per_connection must be at least 1"
            );
        }
        if ws.tls_cert.is_some() != ws.tls_key.is_some() {
            bail!("websocket.tls_cert and websocket.tls_key go together (PEM files)");
        }
        for (key, secs) in
            [("idle_timeout", ws.idle_timeout), ("ping_interval", ws.ping_interval), ("pong_timeout", ws.pong_timeout)]
        {
            if !(secs > 0.0 && secs <= 86_400.0) {
                bail!("websocket.{key} must be a number of seconds above 0 (at most 86400)");
            }
        }
        match self.action {
            Action::Play if self.play.file.as_os_str().is_empty() => {
                bail!("the play preset needs a file: --set play.file=/path/to/file.wav (WAV or Ogg/Opus)")
            }
            Action::Play if !self.play.file.is_file() => bail!("play.file {} does not exist", self.play.file.display()),
            Action::Conference if !(8000..=48000).contains(&self.conference.rate) => {
                bail!("conference.rate must be between 8000 and 48000 Hz")
            }
            Action::Echo | Action::Play | Action::Record | Action::Conference
                if self
                    .accounts
                    .iter()
                    .filter_map(|a| a.transfer_policy)
                    .chain(self.transfer.policy)
                    .any(|policy| policy == TransferPolicy::Ask) =>
            {
                bail!("transfer.policy = \"ask\" needs someone to ask: only the gateway (its browser) has one")
            }
            _ => {}
        }
        for a in &self.accounts {
            if !a.aor.starts_with("sip:") && !a.aor.starts_with("sips:") {
                bail!("account aor {:?} must be a SIP URI (sip:user@domain)", a.aor);
            }
        }
        Ok(())
    }

    /// Options for each call's media leg.
    /// What the service's calls do with a REFER.
    pub fn transfer_policy(&self) -> TransferPolicy {
        match (self.action, self.transfer.policy) {
            (_, Some(policy)) => policy,
            (Action::Gateway, None) => TransferPolicy::Reject,
            (_, None) => TransferPolicy::Accept,
        }
    }

    /// The service's policy and the accounts' own.
    pub fn transfer_policies(&self) -> TransferPolicies {
        let accounts =
            self.accounts.iter().filter_map(|a| a.transfer_policy.map(|policy| (a.aor.clone(), policy))).collect();
        TransferPolicies { service: self.transfer_policy(), accounts }
    }

    pub fn leg_options(&self) -> LegOptions {
        LegOptions {
            media_addresses: self.media.addresses.clone(),
            public_address: self.media.public_address,
            ice_servers: self.media.ice_servers.clone(),
            turn_tls_ca: self.media.turn_tls_ca.clone(),
            codecs: self.media.codecs.clone(),
            jitter_latency_ms: self.media.latency_ms,
            rtp_ports: parse_range(&self.media.rtp_ports).expect("validated"),
            opus_bitrate: self.media.opus_bitrate,
            opus_complexity: self.media.opus_complexity,
            symmetric_rtp: self.media.symmetric_rtp,
            srtp: self.media.srtp,
            webrtc_leg: self.media.webrtc_leg,
            rtp_timeout_ms: self.media.timeout.saturating_mul(1000),
            ..LegOptions::default()
        }
    }

    /// Certificates for SIP over TLS, read from the configured files.
    pub fn tls(&self) -> Result<signaling::TlsSettings> {
        let read = |key: &str, path: &Option<PathBuf>| -> Result<Option<String>> {
            path.as_ref()
                .map(|p| std::fs::read_to_string(p).with_context(|| format!("sip.{key} {}", p.display())))
                .transpose()
        };
        Ok(signaling::TlsSettings {
            cert_pem: read("tls_cert", &self.sip.tls_cert)?,
            key_pem: read("tls_key", &self.sip.tls_key)?,
            ca_pem: read("tls_ca", &self.sip.tls_ca)?,
        })
    }

    /// The SIP listeners.
    pub fn listeners(&self) -> Vec<signaling::Listen> {
        self.sip.listen.iter().map(|l| parse_listen(l).expect("validated")).collect()
    }
}

/// Deep merge: tables merge key by key, anything else replaces.
pub fn merge(base: &mut toml::Table, over: toml::Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

fn apply_overrides(table: &mut toml::Table, o: &Overrides) -> Result<()> {
    let section = |table: &mut toml::Table, name: &str| -> toml::Table {
        match table.remove(name) {
            Some(toml::Value::Table(t)) => t,
            _ => toml::Table::new(),
        }
    };
    if !o.sip_listen.is_empty() {
        let mut sip = section(table, "sip");
        sip.insert(
            "listen".into(),
            toml::Value::Array(o.sip_listen.iter().map(|s| toml::Value::String(s.clone())).collect()),
        );
        table.insert("sip".into(), toml::Value::Table(sip));
    }
    if !o.media_addresses.is_empty() {
        let mut media = section(table, "media");
        media.insert(
            "addresses".into(),
            toml::Value::Array(o.media_addresses.iter().map(|a| toml::Value::String(a.to_string())).collect()),
        );
        table.insert("media".into(), toml::Value::Table(media));
    }
    if let Some(public) = o.public_address {
        let mut media = section(table, "media");
        media.insert("public_address".into(), toml::Value::String(public.to_string()));
        table.insert("media".into(), toml::Value::Table(media));
    }
    for kv in &o.set {
        set(table, kv)?;
    }
    Ok(())
}

/// Applies one `key=value`: a dotted key into the table; the value is read
/// as a TOML value (`true`, `20`, `"x"`, `["a"]`) or else taken as a string.
pub fn set(table: &mut toml::Table, kv: &str) -> Result<()> {
    let (key, value) = kv.split_once('=').with_context(|| format!("--set {kv:?}: expected key=value"))?;
    let key = key.trim();
    if key.is_empty() || key.split('.').any(str::is_empty) {
        bail!("--set {kv:?}: bad key");
    }
    let value = match format!("v = {value}").parse::<toml::Table>() {
        Ok(mut t) => t.remove("v").unwrap(),
        Err(_) => toml::Value::String(value.to_string()),
    };
    let parts: Vec<&str> = key.split('.').collect();
    let mut t = table;
    for part in &parts[..parts.len() - 1] {
        let entry = t.entry(part.to_string()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        t = match entry {
            toml::Value::Table(inner) => inner,
            _ => bail!("--set {kv:?}: {part} is not a table"),
        };
    }
    t.insert(parts[parts.len() - 1].to_string(), value);
    Ok(())
}

/// `udp:ADDR:PORT`, `tcp:...`, `ws:...`, `tls:...`, `wss:...`, or bare `ADDR:PORT` (UDP).
pub fn parse_listen(s: &str) -> Result<signaling::Listen> {
    use signaling::Transport;
    let (transport, addr) = match s.split_once(':') {
        Some(("udp", rest)) => (Transport::Udp, rest),
        Some(("tcp", rest)) => (Transport::Tcp, rest),
        Some(("ws", rest)) => (Transport::Ws, rest),
        Some(("tls", rest)) => (Transport::Tls, rest),
        Some(("wss", rest)) => (Transport::Wss, rest),
        _ => (Transport::Udp, s),
    };
    let addr: SocketAddr =
        addr.parse().with_context(|| format!("sip.listen {s:?}: expected [udp:|tcp:|ws:|tls:|wss:]ADDR:PORT"))?;
    Ok(signaling::Listen { transport, addr })
}

fn parse_range(s: &str) -> Result<(u16, u16)> {
    let bad = || anyhow::anyhow!("media.rtp_ports {s:?}: expected LOW-HIGH, e.g. 20000-30000");
    let (a, b) = s.split_once('-').ok_or_else(bad)?;
    let (a, b): (u16, u16) = (a.trim().parse().map_err(|_| bad())?, b.trim().parse().map_err(|_| bad())?);
    if a > b {
        return Err(bad());
    }
    Ok((a, b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_override_in_order() {
        let o = Overrides {
            sip_listen: vec!["127.0.0.1:5080".into()],
            media_addresses: vec!["127.0.0.2".parse().unwrap()],
            public_address: Some("203.0.113.7".parse().unwrap()),
            set: vec!["limits.max_calls=20".into(), "conference.mute_dtmf=#9".into(), "conference.record=true".into()],
        };
        let c = Config::for_run("conference", &o).unwrap();
        assert_eq!(c.action, Action::Conference);
        assert_eq!(c.preset.as_deref(), Some("conference"));
        assert_eq!(c.limits.max_calls, 20);
        assert_eq!(c.conference.mute_dtmf, "#9");
        assert!(c.conference.record);
        assert_eq!(c.conference.rate, 16000, "kept from the preset");
        assert_eq!(c.sip.listen, vec!["127.0.0.1:5080"]);
        assert_eq!(c.media.addresses, vec!["127.0.0.2".parse::<IpAddr>().unwrap()]);
        assert_eq!(c.leg_options().public_address, Some("203.0.113.7".parse().unwrap()));
        assert_eq!(c.listeners()[0].transport, signaling::Transport::Udp);
    }

    #[test]
    fn ice_servers_are_read_and_checked() {
        let with = |servers: &str| {
            Config::for_run(
                "gateway",
                &Overrides { set: vec![format!("media.ice_servers={servers}")], ..Overrides::default() },
            )
        };
        let c =
            with(r#"[{urls="stun:203.0.113.5"}, {urls=["turn:203.0.113.5?transport=tcp"], secret="s3cret", ttl=600}]"#)
                .unwrap();
        let servers = c.leg_options().ice_servers;
        assert_eq!(servers.len(), 2);
        assert_eq!(servers[1].secret.as_deref(), Some("s3cret"));
        let err = format!("{:#}", with(r#"[{urls="turn:203.0.113.5"}]"#).unwrap_err());
        assert!(err.contains("media.ice_servers") && err.contains("needs username and credential"), "{err}");
        let err = format!("{:#}", with(r#"[{urls="http://x"}]"#).unwrap_err());
        assert!(err.contains("expected stun:, turn: or turns:"), "{err}");
    }

    #[test]
    fn the_lean_webrtc_leg_is_chosen_by_config_with_ice_servers_and_a_public_address() {
        let with = |set: &[&str]| {
            Config::for_run(
                "gateway",
                &Overrides { set: set.iter().map(|s| s.to_string()).collect(), ..Overrides::default() },
            )
        };
        assert_eq!(with(&[]).unwrap().leg_options().webrtc_leg, pipelines::WebRtcLegKind::Webrtcbin, "the default");
        let lean = with(&["media.webrtc_leg=\"lean\""]).unwrap();
        assert_eq!(lean.leg_options().webrtc_leg, pipelines::WebRtcLegKind::Lean);
        let stun = r#"media.ice_servers=[{urls="stun:203.0.113.5"}]"#;
        assert!(with(&["media.webrtc_leg=\"lean\"", stun, "media.public_address=\"203.0.113.7\""]).is_ok());
        let tls = r#"media.ice_servers=[{urls="turns:203.0.113.5",secret="s"}]"#;
        assert!(with(&["media.webrtc_leg=\"lean\"", tls]).is_ok());
        assert!(with(&["media.webrtc_leg=\"str0m\""]).is_err(), "an unknown leg is refused");
        // Its turns: servers' trust anchors: a file that is there, or a clear error.
        let ca = std::env::temp_dir().join(format!("sipbridge-turn-ca-{}.pem", std::process::id()));
        std::fs::write(&ca, "-----BEGIN CERTIFICATE-----\n").unwrap();
        let trusting = with(&[tls, &format!("media.turn_tls_ca={:?}", ca.display().to_string())]).unwrap();
        assert_eq!(trusting.leg_options().turn_tls_ca.as_deref(), Some(ca.as_path()));
        std::fs::remove_file(&ca).unwrap();
        let err = format!("{:#}", with(&[&format!("media.turn_tls_ca={:?}", ca.display().to_string())]).unwrap_err());
        assert!(err.contains("media.turn_tls_ca"), "{err}");
    }

    #[test]
    fn config_file_on_top_of_its_preset() {
        let dir = std::env::temp_dir().join(format!("sipbridge-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("d.toml");
        std::fs::write(
            &path,
            "preset = \"record\"\n[record]\nformat = \"ogg\"\n[sip]\nlisten = [\"tcp:127.0.0.1:5070\"]\n\
             [[account]]\naor = \"sip:rec@example.test\"\npassword_env = \"NOPE_NOT_SET_XYZ\"\n",
        )
        .unwrap();
        let c = Config::for_daemon(&path, &Overrides::default()).unwrap();
        assert_eq!(c.action, Action::Record);
        assert_eq!(c.record.format, FileFormat::Ogg);
        assert_eq!(c.record.dir, PathBuf::from("recordings"), "kept from the preset");
        assert_eq!(c.listeners()[0].transport, signaling::Transport::Tcp);
        let err = c.accounts[0].account().unwrap_err().to_string();
        assert!(err.contains("NOPE_NOT_SET_XYZ"), "{err}");
    }

    #[test]
    fn every_builtin_preset_loads_into_a_config() {
        for (name, _) in super::super::preset::BUILTIN {
            let mut table = Preset::load(name).unwrap().table;
            if *name == "play" {
                // The play preset needs a file that exists.
                let file = std::env::temp_dir().join(format!("sipbridge-preset-play-{}.wav", std::process::id()));
                std::fs::write(&file, b"RIFF").unwrap();
                set(&mut table, &format!("play.file={}", file.display())).unwrap();
            }
            assert_eq!(Config::from_table(table).unwrap().action.name(), *name);
        }
    }

    #[test]
    fn the_commented_example_config_loads() {
        let path = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/sipbridge.toml"));
        let c = Config::for_daemon(path, &Overrides::default()).unwrap();
        assert_eq!((c.action, c.listeners().len(), c.limits.max_calls), (Action::Echo, 2, 100));
    }

    #[test]
    fn passwords_are_not_in_debug_output() {
        let a = AccountSettings {
            aor: "sip:a@b".into(),
            proxy: None,
            username: None,
            display_name: None,
            password: Some("hunter2".into()),
            password_env: None,
            expires: 60,
            transfer_policy: None,
        };
        assert!(!format!("{a:?}").contains("hunter2"));
        assert_eq!(a.account().unwrap().password, "hunter2");
    }

    #[test]
    fn mistakes_are_reported() {
        let o = |s: &str| Overrides { set: vec![s.into()], ..Overrides::default() };
        assert!(Config::for_run("echo", &o("limits.max_call=3")).unwrap_err().to_string().contains("max_call"));
        assert!(Config::for_run("echo", &o("media.rtp_ports=30000-20000")).is_err());
        assert!(Config::for_run("echo", &o("noequals")).is_err());
        let err = Config::for_run("play", &Overrides::default()).unwrap_err().to_string();
        assert!(err.contains("play.file"), "{err}");
        assert!(parse_listen("sctp:1.2.3.4:5").is_err());
        assert!(Config::from_table(toml::Table::new()).unwrap_err().to_string().contains("preset = \"echo\""));
        let two_udp = Overrides {
            sip_listen: vec!["127.0.0.1:5060".into(), "udp:127.0.0.1:5062".into()],
            ..Overrides::default()
        };
        assert!(Config::for_run("echo", &two_udp).unwrap_err().to_string().contains("udp is given twice"));
        assert_eq!(parse_listen("wss:127.0.0.1:7443").unwrap().transport, signaling::Transport::Wss);
        let wss_without_cert = Overrides { sip_listen: vec!["wss:127.0.0.1:7443".into()], ..Overrides::default() };
        let err = Config::for_run("echo", &wss_without_cert).unwrap_err().to_string();
        assert!(err.contains("a wss: listener needs sip.tls_cert"), "{err}");
        assert!(Config::for_run("echo", &o("transfer.policy=maybe")).is_err());
        let err = Config::for_run("echo", &o("transfer.policy=ask")).unwrap_err().to_string();
        assert!(err.contains("only the gateway"), "{err}");
    }

    #[test]
    fn transfers_are_accepted_by_presets_and_refused_by_the_gateway_unless_set() {
        let o = |s: &str| Overrides { set: vec![s.into()], ..Overrides::default() };
        assert_eq!(Config::for_run("echo", &Overrides::default()).unwrap().transfer_policy(), TransferPolicy::Accept);
        assert_eq!(
            Config::for_run("echo", &o("transfer.policy=reject")).unwrap().transfer_policy(),
            TransferPolicy::Reject
        );
        assert_eq!(
            Config::for_run("gateway", &Overrides::default()).unwrap().transfer_policy(),
            TransferPolicy::Reject
        );
        let gateway_accepts = Config::for_run("gateway", &o("transfer.policy=accept")).unwrap();
        assert_eq!(gateway_accepts.transfer_policy(), TransferPolicy::Accept);
    }

    #[test]
    fn an_account_s_transfer_policy_applies_to_its_calls_and_the_service_s_to_the_rest() {
        let config = |text: &str| {
            let mut table = Preset::load("echo").unwrap().table;
            table.extend(text.parse::<toml::Table>().unwrap());
            Config::from_table(table)
        };
        let c = config(
            "[[account]]\naor = \"sip:desk@example.test\"\npassword = \"x\"\ntransfer_policy = \"reject\"\n\
             [[account]]\naor = \"sip:free@example.test\"\npassword = \"x\"\n",
        )
        .unwrap();
        let policies = c.transfer_policies();
        assert_eq!(policies.for_uri("\"Desk\" <sip:DESK@example.test:5060;transport=udp>"), TransferPolicy::Reject);
        assert_eq!(policies.for_uri("sip:free@example.test"), TransferPolicy::Accept, "unset: the service's");
        assert_eq!(policies.for_uri("sip:desk@other.test"), TransferPolicy::Accept, "another host");
        assert_eq!(policies.for_uri("sip:echo@127.0.0.1:5060"), TransferPolicy::Accept, "no account");
        let err = config("[[account]]\naor = \"sip:a@b\"\npassword = \"x\"\ntransfer_policy = \"ask\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("only the gateway"), "{err}");
        assert!(config("[[account]]\naor = \"sip:a@b\"\npassword = \"x\"\ntransfer_policy = \"maybe\"\n").is_err());
    }

    #[test]
    fn set_reads_toml_values_or_strings() {
        let mut t = toml::Table::new();
        set(&mut t, "a.b=true").unwrap();
        set(&mut t, "a.c=/tmp/x.wav").unwrap();
        set(&mut t, "n=5").unwrap();
        assert_eq!(t["a"]["b"].as_bool(), Some(true));
        assert_eq!(t["a"]["c"].as_str(), Some("/tmp/x.wav"));
        assert_eq!(t["n"].as_integer(), Some(5));
    }
}
