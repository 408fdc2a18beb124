//! The handle of work kept alive in the background (a registration, a
//! subscription): its events, and a way to stop it and wait until the
//! stopping exchange (REGISTER or SUBSCRIBE with `Expires: 0`) is done.

use crate::error::Error;
use tokio::sync::{mpsc, oneshot};

/// What the background task hears when asked to stop: where to say done.
pub(crate) type StopRequest = oneshot::Receiver<oneshot::Sender<()>>;

#[derive(Debug)]
pub(crate) struct Background<E> {
    events: mpsc::UnboundedReceiver<E>,
    stop: Option<oneshot::Sender<oneshot::Sender<()>>>,
}

impl<E> Background<E> {
    /// The handle, the task's event sender and its stop request.
    pub fn new() -> (Background<E>, mpsc::UnboundedSender<E>, StopRequest) {
        let (events_tx, events) = mpsc::unbounded_channel();
        let (stop_tx, stop_rx) = oneshot::channel();
        (Background { events, stop: Some(stop_tx) }, events_tx, stop_rx)
    }

    /// The next event; `None` once the task ended and its events were read.
    pub async fn next_event(&mut self) -> Option<E> {
        self.events.recv().await
    }

    /// Asks the task to stop and waits until it has; `done` names what
    /// was stopped, for the error when it already was.
    pub async fn stop(&mut self, done: &str) -> Result<(), Error> {
        let stop = self.stop.take().ok_or_else(|| Error::InvalidState(format!("already {done}")))?;
        let (done_tx, done_rx) = oneshot::channel();
        stop.send(done_tx).map_err(|_| Error::Shutdown)?;
        let _ = done_rx.await;
        Ok(())
    }
}
