//! Draining: stop taking calls, let the running ones finish (up to a
//! deadline), then stop. Started by `POST /drain` on the admin listener or
//! by SIGUSR1; whoever owns the calls watches [`Drain::started`].

use std::sync::Arc;
use tokio::sync::watch;

pub struct Drain {
    draining: watch::Sender<bool>,
}

impl Drain {
    pub fn new() -> Arc<Drain> {
        Arc::new(Drain { draining: watch::channel(false).0 })
    }

    /// Begins draining; `false` if it had already begun.
    pub fn start(&self, by: &str) -> bool {
        // Logged before the waiters wake, so it comes first in the log.
        self.draining.send_if_modified(|draining| {
            if *draining {
                return false;
            }
            *draining = true;
            tracing::info!(by, "draining: no new calls; running calls may finish");
            true
        })
    }

    pub fn is_draining(&self) -> bool {
        *self.draining.borrow()
    }

    /// Resolves once draining has begun (at once if it has).
    pub async fn started(&self) {
        let mut rx = self.draining.subscribe();
        let _ = rx.wait_for(|d| *d).await;
    }

    /// Starts draining on every SIGUSR1 (the first one counts).
    pub fn on_sigusr1(self: &Arc<Self>) -> std::io::Result<()> {
        let mut usr1 = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1())?;
        let drain = self.clone();
        tokio::spawn(async move {
            while usr1.recv().await.is_some() {
                drain.start("SIGUSR1");
            }
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn started_resolves_once_draining() {
        let drain = Drain::new();
        assert!(!drain.is_draining());
        let waiter = tokio::spawn({
            let d = drain.clone();
            async move { d.started().await }
        });
        assert!(drain.start("test"));
        assert!(!drain.start("test"), "only the first start begins it");
        tokio::time::timeout(std::time::Duration::from_secs(1), waiter).await.unwrap().unwrap();
        assert!(drain.is_draining());
    }
}
