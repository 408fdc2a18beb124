//! `sipbridge daemon` / `sipbridge run`: a SIP user agent answering calls
//! with a preset (echo, play, record, conference).
//!
//! ```text
//! signaling::UserAgent --IncomingCall--> limit check (503) --> call::run (one task per call)
//!        |                                                          |  Leg::new_rtp, offer/answer
//!   accounts::keep (REGISTER, refresh, unregister)                  |  media::Attached (preset)
//!                                                                   v  events until BYE / shutdown
//! SIGINT/SIGTERM --> shutdown watch --> every call hangs up (BYE), recordings finalized,
//!                                       accounts unregister, exit 0
//! ```
//!
//! One concern per file: `config` (TOML layers), `preset` (preset files),
//! `call` (one call's lifecycle), `media` (what a preset attaches to a
//! leg), `dtmf` (key sequences), `accounts` (registrations), `error` (SIP
//! codes for failures).

mod accounts;
mod call;
pub mod config;
mod dtmf;
mod error;
mod media;
pub mod preset;

use crate::ops::{Admin, CallRecords, CallTally, Drain, Metrics, Parties};
use anyhow::{Context, Result};
use config::Config;
use pipelines::LegOptions;
use signaling::{Transport, UaEvent, UserAgent};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tracing::{info, warn, Instrument};

/// How the daemon was started: `run` prints how to call it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Run,
    Daemon,
}

/// What every call task shares.
pub struct Shared {
    pub config: Config,
    pub leg_options: LegOptions,
    pub shutdown: watch::Receiver<bool>,
    pub rooms: media::Rooms,
    pub metrics: Arc<Metrics>,
    pub records: Arc<CallRecords>,
}

impl Shared {
    pub fn is_shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }
}

/// Counts a call as active until dropped.
struct Active(Arc<AtomicUsize>);

impl Drop for Active {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

pub async fn run(config: Config, mode: Mode) -> Result<()> {
    let ua = Arc::new(
        UserAgent::start(signaling::Config {
            user_agent: config.sip.user_agent.clone(),
            listen: config.listeners(),
            advertised_host: config.sip.advertised_host.clone(),
            // One more than the limit, so the limit's own 503 is what a busy
            // peer sees.
            max_calls_per_peer: config.sip.max_calls_per_peer.unwrap_or(config.limits.max_calls + 1),
            ..signaling::Config::default()
        })
        .await
        .context("starting the SIP user agent")?,
    );
    let mut ua_events = ua.take_events().expect("fresh user agent");
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let metrics = Metrics::new();
    metrics.add_collector(crate::ops::sip_collector(ua.clone()));
    let records = CallRecords::new(config.call_records.file.as_deref(), config.call_records.log)
        .context("opening the call record file")?;
    let shared = Arc::new(Shared {
        leg_options: config.leg_options(),
        config,
        shutdown: shutdown_rx.clone(),
        rooms: media::Rooms::default(),
        metrics: metrics.clone(),
        records: Arc::new(records),
    });
    let config = &shared.config;
    let active = Arc::new(AtomicUsize::new(0));
    let drain = Drain::new();
    drain.on_sigusr1()?;
    if let Some(addr) = config.admin.listen {
        let (active, max_calls) = (active.clone(), config.limits.max_calls);
        let capacity = Box::new(move || {
            (active.load(Ordering::SeqCst) >= max_calls).then(|| format!("at the call limit ({max_calls})"))
        });
        let admin = Arc::new(Admin { metrics, drain: drain.clone(), capacity });
        admin.start(addr).await.with_context(|| format!("admin listener on {addr}"))?;
    }

    let mut registrations = tokio::task::JoinSet::new();
    for settings in &config.accounts {
        let account = settings.account()?;
        registrations.spawn(accounts::keep(&ua, account, shutdown_rx.clone(), shared.metrics.clone())?);
    }

    health(&ua, config, mode);

    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut sigint = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    let seq = AtomicU64::new(0);
    let mut calls = tokio::task::JoinSet::new();
    // While draining: calls refused, OPTIONS answered 503, until the last
    // call ends or the drain deadline passes.
    let mut drain_deadline = None;
    let signal = loop {
        tokio::select! {
            ev = ua_events.recv() => match ev {
                Some(UaEvent::IncomingCall(incoming)) => {
                    let n = seq.fetch_add(1, Ordering::Relaxed) + 1;
                    let span = tracing::info_span!("call", id = %incoming.call.id());
                    let tally = CallTally::start(&shared.metrics, &shared.records, Parties {
                        call_id: incoming.call.id().to_string(),
                        from: incoming.from.clone(),
                        to: incoming.to.clone(),
                        direction: "inbound",
                        service: shared.config.preset.clone(),
                    });
                    let refusal = if drain_deadline.is_some() {
                        Some(error::CallError::ShuttingDown)
                    } else if active.fetch_add(1, Ordering::SeqCst) >= config.limits.max_calls {
                        active.fetch_sub(1, Ordering::SeqCst);
                        Some(error::CallError::TooManyCalls(config.limits.max_calls))
                    } else {
                        None
                    };
                    if let Some(err) = refusal {
                        span.in_scope(|| warn!(from = %incoming.from, code = err.status_code(), error = %err, "call refused"));
                        let _ = incoming.call.reject(err.status_code(), Some(err.reason()));
                        tally.refused(err.status_code(), &err.to_string());
                        continue;
                    }
                    let guard = Active(active.clone());
                    let shared = shared.clone();
                    calls.spawn(
                        async move {
                            call::run(shared, incoming, n, tally).await;
                            drop(guard);
                        }
                        .instrument(span),
                    );
                }
                Some(UaEvent::Message(m)) => info!(from = %m.from, content_type = %m.content_type, len = m.body.len(), "MESSAGE received"),
                None => break "user agent stopped",
            },
            Some(_) = calls.join_next(), if !calls.is_empty() => {
                if drain_deadline.is_some() && calls.is_empty() {
                    break "drained";
                }
            }
            _ = drain.started(), if drain_deadline.is_none() => {
                ua.set_available(false);
                if calls.is_empty() {
                    break "drained";
                }
                let seconds = config.admin.drain_seconds;
                info!(calls = calls.len(), seconds, "draining: waiting for calls to end");
                drain_deadline = Some(tokio::time::Instant::now() + Duration::from_secs(seconds));
            }
            _ = tokio::time::sleep_until(drain_deadline.unwrap_or_else(tokio::time::Instant::now)), if drain_deadline.is_some() => {
                break "drain deadline";
            }
            _ = sigterm.recv() => break "SIGTERM",
            _ = sigint.recv() => break "SIGINT",
        }
    };

    info!(signal, calls = active.load(Ordering::SeqCst), "shutting down");
    let _ = shutdown_tx.send(true);
    let grace = Duration::from_secs(config.limits.shutdown_grace.max(1));
    let drained = tokio::time::timeout(grace, async {
        loop {
            tokio::select! {
                done = calls.join_next() => if done.is_none() { break },
                // Calls arriving now are refused.
                Some(UaEvent::IncomingCall(incoming)) = ua_events.recv() => {
                    let _ = incoming.call.reject(503, Some("Shutting Down"));
                }
                // A second Ctrl-C: a person who does not want to wait.
                _ = sigint.recv() => {
                    warn!("second SIGINT: not waiting for calls to end");
                    break;
                }
            }
        }
    })
    .await;
    if drained.is_err() {
        warn!(left = calls.len(), "calls did not end in time; dropping them");
        calls.abort_all();
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), async { while registrations.join_next().await.is_some() {} })
        .await;
    shared.rooms.close_all();
    ua.shutdown();
    info!("stopped");
    Ok(())
}

/// The start-up line saying what listens where; for `run`, also how to call.
fn health(ua: &UserAgent, config: &Config, mode: Mode) {
    let listeners: Vec<String> = [Transport::Udp, Transport::Tcp, Transport::Ws]
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
    if mode == Mode::Run {
        let udp = ua.local_addr(Transport::Udp).or_else(|| ua.local_addr(Transport::Tcp));
        if let Some(addr) = udp {
            let user = match config.action {
                config::Action::Conference => "1000",
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
