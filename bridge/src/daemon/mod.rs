//! `sipbridge daemon` / `sipbridge run` / `sipbridge gateway`: one SIP
//! service from one configuration. The service starts the user agent, keeps
//! the configured accounts registered, hands each incoming call to its
//! front-end, and drains on SIGTERM/SIGINT. Two front-ends share it and the
//! call layer (`crate::call`):
//!
//! ```text
//! signaling::UserAgent --UaEvent--> front-end: presets (answer.rs: echo, play, record, conference)
//!        |                                   or gateway (browser users over WebSocket)
//!   accounts::keep (REGISTER, refresh, unregister)
//! SIGINT/SIGTERM --> front-end stops taking work --> Calls::drain (BYE to every call,
//!                    recordings finished) --> accounts and browser users unregister --> exit 0
//! SIGHUP --> reload.rs: the gateway's certificate reread, calls untouched
//! ```
//!
//! One concern per file: `config` (TOML layers), `preset` (preset files),
//! `answer` (a preset call's life), `media` (what a preset attaches to a
//! leg), `dtmf` (key sequences), `accounts` (registrations).

mod accounts;
mod answer;
pub mod config;
mod dtmf;
mod media;
pub mod preset;
mod reload;

use crate::call::Calls;
use crate::gateway::Gateway;
use crate::ops::{Admin, CallOps, CallRecords, Drain, Metrics};
use answer::PresetContext;
use anyhow::{Context, Result};
use config::{Action, Config};
use signaling::{Transport, UaEvent, UserAgent};
use std::sync::Arc;
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;
use tracing::{info, warn, Instrument};

/// How the service was started: `run` prints how to call it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Run,
    Daemon,
}

/// Who answers the calls.
enum Frontend {
    /// The preset's calls run as tasks, awaited at shutdown so their media
    /// (players, conference seats) is detached before rooms close.
    Presets(Arc<PresetContext>, std::sync::Mutex<tokio::task::JoinSet<()>>),
    Gateway(Arc<Gateway>),
}

impl Frontend {
    /// What only this front-end knows, as metrics: the seats in conference
    /// rooms, or the gateway's WebSocket connections.
    fn add_metrics(&self, metrics: &Metrics) {
        match self {
            Frontend::Presets(ctx, _) => {
                let rooms = ctx.rooms.clone();
                metrics.add_collector(Box::new(move |out| {
                    let n = rooms.participants() as f64;
                    out.gauge("sipbridge_room_participants", "Seats taken in conference rooms.", &[(vec![], n)]);
                }));
            }
            Frontend::Gateway(gw) => {
                let gw = Arc::downgrade(gw);
                metrics.add_collector(Box::new(move |out| {
                    let n = gw.upgrade().map_or(0, |gw| gw.connections.open()) as f64;
                    out.gauge("sipbridge_ws_connections", "WebSocket connections (web users).", &[(vec![], n)]);
                }));
            }
        }
    }

    /// Why new work is not welcome now, for /readyz: the call limit, or
    /// the gateway's connection limit.
    fn capacity(&self, calls: &Arc<Calls>) -> crate::ops::Capacity {
        let calls = calls.clone();
        let gateway = match self {
            Frontend::Gateway(gw) => Some(Arc::downgrade(gw)),
            Frontend::Presets(..) => None,
        };
        Box::new(move || {
            if calls.is_full() {
                return Some(format!("at the call limit ({})", calls.active()));
            }
            let gw = gateway.as_ref()?.upgrade()?;
            let limit = gw.config.max_connections;
            (gw.connections.open() >= limit).then(|| format!("at the connection limit ({limit})"))
        })
    }

    /// Once a drain begins (POST /drain, SIGUSR1): no new calls (503, and
    /// OPTIONS 503) or web users; resolves when the last call (presets) or
    /// web user (gateway) is gone, or after `seconds`; the shutdown then
    /// hangs up whatever is left.
    async fn drained(&self, drain: &Drain, calls: &Calls, seconds: u64) -> &'static str {
        drain.started().await;
        calls.refuse_new();
        let idle = async {
            match self {
                Frontend::Gateway(gw) => {
                    gw.stop_accepting();
                    while gw.connections.open() > 0 {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
                Frontend::Presets(..) => calls.idle().await,
            }
        };
        info!(calls = calls.active(), seconds, "draining: waiting for calls to end");
        match tokio::time::timeout(Duration::from_secs(seconds), idle).await {
            Ok(()) => "drained",
            Err(_) => "drain deadline",
        }
    }

    fn dispatch(&self, event: UaEvent) {
        match (self, event) {
            (Frontend::Presets(ctx, tasks), UaEvent::IncomingCall(incoming)) => {
                let span = tracing::info_span!("call", id = %incoming.call.id());
                let mut tasks = tasks.lock().unwrap();
                while tasks.try_join_next().is_some() {}
                tasks.spawn(answer::run(ctx.clone(), incoming).instrument(span));
            }
            (Frontend::Presets(..), UaEvent::Message(m)) => {
                info!(from = %m.from, content_type = %m.content_type, len = m.body.len(), "MESSAGE received")
            }
            (Frontend::Presets(..), UaEvent::Notify(n)) => {
                info!(from = %n.from, event = %n.notification.event, "NOTIFY received")
            }
            (Frontend::Gateway(gw), event) => gw.dispatch(event),
        }
    }
}

pub async fn run(config: Config, mode: Mode) -> Result<()> {
    let ua = UserAgent::start(signaling::Config {
        user_agent: config.sip.user_agent.clone(),
        listen: config.listeners(),
        advertised_host: config.sip.advertised_host.clone(),
        // One more than the limit, so the limit's own 503 is what a busy
        // peer sees.
        max_calls_per_peer: config.sip.max_calls_per_peer.unwrap_or(config.limits.max_calls + 1),
        tls: Some(config.tls()?),
        ws_path: config.sip.ws_path.clone(),
        ws_keepalive: (config.sip.ws_keepalive > 0).then(|| std::time::Duration::from_secs(config.sip.ws_keepalive)),
        ..signaling::Config::default()
    })
    .await
    .context("starting the SIP user agent")?;
    let mut ua_events = ua.take_events().expect("fresh user agent");
    let metrics = Metrics::new();
    let records = CallRecords::new(config.call_records.file.as_deref(), config.call_records.log)
        .context("opening call_records.file")?;
    let ops = CallOps { metrics: metrics.clone(), records: Arc::new(records), service: config.preset.clone() };
    let calls = Calls::new(ua, config.leg_options(), config.limits.max_calls, ops, config.transfer_policies());
    metrics.add_collector(crate::ops::sip_collector(calls.ua.clone()));
    let (shutdown_tx, shutdown_rx) = watch::channel(false);

    let mut registrations = tokio::task::JoinSet::new();
    for settings in &config.accounts {
        let account = settings.account()?;
        registrations.spawn(accounts::keep(&calls.ua, account, shutdown_rx.clone(), metrics.clone())?);
    }
    let frontend = match config.action {
        Action::Gateway => Frontend::Gateway(crate::gateway::start(&config, calls.clone()).await?),
        _ => Frontend::Presets(
            Arc::new(PresetContext { config: config.clone(), calls: calls.clone(), rooms: media::Rooms::default() }),
            Default::default(),
        ),
    };
    let drain = Drain::new();
    drain.on_sigusr1()?;
    reload::on_sighup(match &frontend {
        Frontend::Gateway(gw) => Some(gw.clone()),
        Frontend::Presets(..) => None,
    })?;
    if let Some(addr) = config.admin.listen {
        frontend.add_metrics(&metrics);
        let admin = Arc::new(Admin { metrics, drain: drain.clone(), capacity: frontend.capacity(&calls) });
        admin.start(addr).await.with_context(|| format!("admin.listen {addr}"))?;
    }
    health(&calls.ua, &config, mode);

    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let reason = tokio::select! {
        _ = sigterm.recv() => "SIGTERM",
        _ = sigint.recv() => "SIGINT",
        reason = frontend.drained(&drain, &calls, config.admin.drain_seconds) => reason,
        _ = async {
            // Calls arriving while draining are refused by the call layer (503).
            while let Some(event) = ua_events.recv().await {
                frontend.dispatch(event);
            }
        } => "user agent stopped",
    };
    info!(signal = reason, calls = calls.active(), "shutting down");
    // Keep answering (503) what arrives while the calls drain.
    let refusing = calls.clone();
    let router = tokio::spawn(async move {
        while let Some(event) = ua_events.recv().await {
            if let UaEvent::IncomingCall(incoming) = event {
                let tally = refusing.ops.tally(incoming.call.id(), &incoming.from, &incoming.to, "inbound");
                let _ = incoming.call.reject(503, Some("Shutting Down"));
                tally.ended("local", 503, "shutting down");
            }
        }
    });
    if let Frontend::Gateway(gw) = &frontend {
        gw.stop_accepting();
    }
    let grace = Duration::from_secs(config.limits.shutdown_grace.max(1));
    let left = tokio::select! {
        left = calls.drain(grace) => left,
        // A second Ctrl-C: a person who does not want to wait.
        _ = sigint.recv() => {
            warn!("second SIGINT: not waiting for calls to end");
            calls.active()
        }
    };
    if left > 0 {
        warn!(left, "calls did not end in time; dropping them");
    }
    let _ = shutdown_tx.send(true);
    let unregistered = async {
        while registrations.join_next().await.is_some() {}
        match &frontend {
            Frontend::Gateway(gw) => gw.shut_down().await,
            Frontend::Presets(ctx, tasks) => {
                let mut tasks = std::mem::take(&mut *tasks.lock().unwrap());
                while tasks.join_next().await.is_some() {}
                ctx.rooms.close_all();
            }
        }
    };
    if tokio::time::timeout(Duration::from_secs(5), unregistered).await.is_err() {
        warn!("unregistering timed out");
    }
    router.abort();
    calls.ua.shutdown();
    info!("stopped");
    Ok(())
}

/// The start-up line saying what listens where; for `run`, also how to call.
fn health(ua: &UserAgent, config: &Config, mode: Mode) {
    let listeners: Vec<String> = [Transport::Udp, Transport::Tcp, Transport::Ws, Transport::Tls, Transport::Wss]
        .into_iter()
        .filter_map(|t| ua.local_addr(t).map(|a| format!("{}:{a}", t.param())))
        .collect();
    let media = config.media.addresses.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(",");
    let accounts = config.accounts.iter().map(|a| a.aor.as_str()).collect::<Vec<_>>().join(",");
    info!(
        preset = config.preset.as_deref().unwrap_or("(inline)"),
        action = config.action.name(),
        description = config.description.as_deref().unwrap_or(""),
        sip = %listeners.join(" "),
        media = %format!("{media} ports {}", config.media.rtp_ports),
        max_calls = config.limits.max_calls,
        accounts = if accounts.is_empty() { "none" } else { accounts.as_str() },
        "sipbridge daemon ready"
    );
    if mode == Mode::Run && config.action != Action::Gateway {
        let udp = ua.local_addr(Transport::Udp).or_else(|| ua.local_addr(Transport::Tcp));
        if let Some(addr) = udp {
            let user = match config.action {
                Action::Conference => "1000",
                a => a.name(),
            };
            let host = config.sip.advertised_host.clone().unwrap_or_else(|| addr.ip().to_string());
            let uri = format!("sip:{user}@{host}:{}", addr.port());
            eprintln!(
                "\nCall {uri}\n  with baresip:  baresip -f $(mktemp -d) -e '/uanew <sip:me@{host}>;regint=0' -e '/dial {uri}'\n  (any softphone works; Ctrl-C hangs up every call and stops)\n"
            );
        }
    }
}
