//! How a leg's pipeline fails and ends, alike for both kinds: errors on its
//! bus are reported as a failed connection, and closing stops it and
//! reports it closed.

use crate::leg::events::{ConnectionState, EventHandler, LegEvent};
use crate::leg::port::MediaPort;
use crate::runtime::log_limit::{LogLimit, REPEAT_INTERVAL};
use gst::prelude::*;

/// Logs a pipeline's errors and warnings as they are posted, and reports
/// an error as a failed connection (the leg's audio has stopped). A warning
/// that repeats (every packet to an unreachable peer fails) is logged the
/// first time, then once per [`REPEAT_INTERVAL`] with its count.
pub(crate) fn watch_bus(pipeline: &gst::Pipeline, events: &EventHandler) {
    let events = events.clone();
    let name = pipeline.name();
    let repeats = LogLimit::new(REPEAT_INTERVAL);
    pipeline.bus().expect("pipelines have a bus").set_sync_handler(move |_, msg| {
        match msg.view() {
            gst::MessageView::Error(err) => {
                tracing::error!(pipeline = %name, source = ?err.src().map(|s| s.path_string()), error = %err.error(), debug = ?err.debug(), "media error");
                events(LegEvent::ConnectionStateChange(ConnectionState::Failed));
            }
            gst::MessageView::Warning(w) => {
                let source = w.src().map(|s| s.path_string());
                let kind = format!("{source:?} {}", w.error());
                if let Some(repeated) = repeats.admit(&kind, std::time::Instant::now()) {
                    tracing::warn!(pipeline = %name, ?source, warning = %w.error(), repeated, "media warning");
                }
            }
            _ => {}
        }
        gst::BusSyncReply::Drop
    });
}

/// Marks a leg closed; false if it already was, as a leg closes once.
pub(crate) fn close_once(closed: &mut bool) -> bool {
    !std::mem::replace(closed, true)
}

/// Stops a leg's pipeline and reports it closed. Both leg kinds end alike.
pub(crate) fn shut_down(pipeline: &gst::Pipeline, port: &MediaPort, events: &EventHandler, reason: &str) {
    port.clear();
    let _ = pipeline.set_state(gst::State::Null);
    crate::runtime::memory::released();
    events(LegEvent::ConnectionStateChange(ConnectionState::Closed));
    events(LegEvent::Closed { reason: reason.to_string() });
}
