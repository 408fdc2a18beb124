//! Registered accounts: each kept registered by the user agent (refreshes,
//! re-authentication) and unregistered at shutdown. Passwords never reach
//! the log: only the AOR is printed.

use crate::ops::Metrics;
use signaling::{Account, RegistrationEvent, UserAgent};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tracing::{info, warn, Instrument};

/// Starts registering `account`; the returned future logs its progress and
/// unregisters once `shutdown` turns true; its state goes into `metrics`.
pub fn keep(
    ua: &UserAgent,
    account: Account,
    mut shutdown: watch::Receiver<bool>,
    metrics: Arc<Metrics>,
) -> anyhow::Result<impl std::future::Future<Output = ()>> {
    let aor = account.aor.clone();
    let mut reg = ua.register(account).map_err(|e| anyhow::anyhow!("registering {aor}: {e}"))?;
    let span = tracing::info_span!("account", aor = %aor);
    Ok(async move {
        loop {
            tokio::select! {
                ev = reg.next_event() => match ev {
                    Some(RegistrationEvent::Registered { expires }) => {
                        metrics.registration(&aor, Some("registered"));
                        info!(expires, "registered");
                    }
                    Some(RegistrationEvent::RegistrationFailed { code, reason }) => {
                        metrics.registration(&aor, Some("failed"));
                        warn!(code, %reason, "registration failed");
                    }
                    Some(RegistrationEvent::Unregistered) => {
                        metrics.registration(&aor, Some("unregistered"));
                        info!("unregistered");
                    }
                    None => return,
                },
                _ = shutdown.changed() => break,
            }
        }
        if tokio::time::timeout(Duration::from_secs(4), reg.unregister()).await.is_err() {
            warn!("unregistering timed out");
            return;
        }
        // The outcome arrives as an event.
        match tokio::time::timeout(Duration::from_secs(4), reg.next_event()).await {
            Ok(Some(RegistrationEvent::Unregistered)) => {
                metrics.registration(&aor, Some("unregistered"));
                info!("unregistered");
            }
            Ok(Some(other)) => warn!(?other, "unregistering"),
            _ => {}
        }
    }
    .instrument(span))
}
