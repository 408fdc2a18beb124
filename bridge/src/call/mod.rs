//! The call layer: one SIP dialog and the RTP leg facing its peer, the part
//! of a call's life every front-end shares. The daemon's presets and the
//! browser gateway are front-ends: they decide what the SIP peer's audio
//! is joined to (an echo, a player, a room, a browser's WebRTC leg) and
//! react to [`Event`]s; everything SIP-facing happens here, once:
//!
//! ```text
//! signaling::Call --CallEvent--> pump (one task per call) --Event--> front-end
//!       ^                          |  answers on the RTP leg: early/final answers,
//!       |                          |  the ACK's answer, re-offers (hold, resume,
//!       |                          |  codec change; 488 keeps the old session)
//!  answer, decline, hangup,        |  RFC 4733 and INFO DTMF as one Event::Dtmf
//!  hold, DTMF, INFO, MESSAGE,      v
//!  recording  <-------------- SipCall::end: recordings finished, leg closed,
//!                                          slot freed, Event::Ended once
//! ```
//!
//! A REFER from the peer (`transfer.rs`) makes a new call to its target;
//! answered, it takes the old call's place ([`Event::Transferred`]: the
//! front-end moves its media link to the new call's leg) and the old
//! dialog gets a BYE. An INVITE with Replaces (`replaces.rs`) takes over
//! the call it names the same way. As the transferor (`referral.rs`) a
//! call sends REFER, blind or naming another call to replace, and reports
//! the peer's NOTIFYs as [`Event::TransferProgress`].
//!
//! [`Calls`] holds every call of a service: the limit (503 beyond it), the
//! transfer policy and the drain at shutdown. [`CallError`] classifies failures into SIP codes.
mod error;
mod events;
mod handover;
mod negotiation;
mod referral;
mod registry;
mod replaces;
mod sip_call;
mod transfer;

pub use error::{media_sip_status, CallError};
pub use events::{DtmfMethod, Event, Events, Phase};
pub use negotiation::blocking;
pub use registry::{Calls, TransferPolicies, TransferPolicy};
pub use sip_call::SipCall;
