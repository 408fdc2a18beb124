//! SIGHUP: reread what can change under a running service without a
//! restart, today the gateway's HTTPS/WSS certificate (renewed by an ACME
//! client, say). Calls and connections stay up. Without a handler SIGHUP
//! would end the process, so one is always installed.

use crate::gateway::Gateway;
use std::sync::Arc;
use tokio::signal::unix::{signal, SignalKind};

/// Handles every SIGHUP for the life of the process.
pub fn on_sighup(gateway: Option<Arc<Gateway>>) -> std::io::Result<()> {
    let mut hangups = signal(SignalKind::hangup())?;
    tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            match gateway.as_ref().map(|gw| gw.reload_certificate()) {
                Some(Ok(true)) => tracing::info!("SIGHUP: websocket certificate reloaded"),
                Some(Err(e)) => {
                    tracing::error!(error = format!("{e:#}"), "SIGHUP: certificate not reloaded; serving the old one")
                }
                Some(Ok(false)) | None => tracing::info!("SIGHUP: nothing to reload"),
            }
        }
    });
    Ok(())
}
