//! Where a call is in being transferred away (see `transfer.rs`), kept in
//! the call's state so its end can wait for the transfer's outcome, and a
//! REFER waiting for the front-end's answer.

use super::events::Event;

/// A REFER waiting for the front-end's answer (policy `ask`).
#[derive(Debug)]
pub struct Referral {
    pub target: String,
    pub referred_by: Option<String>,
    pub replaces: Option<String>,
}

#[derive(Debug)]
pub enum Handover {
    /// No transfer going on.
    Idle,
    /// The new call is being set up. If the old call ends first (a
    /// transferor hanging up after the 202), its [`Event::Ended`] waits
    /// here and is told only if the transfer fails: otherwise the front-end
    /// goes straight on with the new call.
    Pending(Option<Event>),
    /// The new call took over: the old call's end is not news any more.
    Done,
}

impl Handover {
    /// What the front-end is told when the call ends: the end itself, or
    /// nothing (kept for later while a transfer is pending, dropped once
    /// the new call took over).
    pub fn on_end(&mut self, ended: Event) -> Option<Event> {
        match self {
            Handover::Idle => Some(ended),
            Handover::Pending(deferred) => {
                *deferred = Some(ended);
                None
            }
            Handover::Done => None,
        }
    }
}
