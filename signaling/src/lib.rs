//! SIP user agent for sipbridge: registrations, calls and messages over
//! UDP, TCP, TLS and (secure) WebSocket, with SDP as plain text at the boundary.
//!
//! rsipstack (pinned) does transactions, dialogs and transports; this crate
//! wraps it behind [`UserAgent`], [`Registration`] and [`Call`] and their
//! typed events, and does itself what rsipstack gets wrong: digest
//! authentication ([`digest`]) and validation of untrusted input
//! ([`validate`], applied by the guard to every UDP datagram and stream
//! message before the stack sees it).
//!
//! ```no_run
//! # async fn demo() -> Result<(), signaling::Error> {
//! use signaling::{Account, Config, Listen, Transport, UserAgent, RegistrationEvent};
//! let ua = UserAgent::start(Config {
//!     listen: vec![Listen { transport: Transport::Udp, addr: "127.0.0.1:0".parse().unwrap() }],
//!     ..Config::default()
//! }).await?;
//! let mut reg = ua.register(Account::new("sip:alice@example.com", "secret")
//!     .with_proxy("sip:127.0.0.1:5060"))?;
//! if let Some(RegistrationEvent::Registered { expires }) = reg.next_event().await {
//!     println!("registered for {expires} s");
//! }
//! # Ok(()) }
//! ```

mod background;
mod call;
#[cfg(test)]
mod call_lifetime;
pub mod compat;
mod config;
mod core;
pub mod digest;
pub mod dtmf;
mod error;
mod events;
pub mod extensions;
mod guard;
mod inbound;
mod notify;
mod outbound;
mod outgoing_headers;
pub mod pem;
pub mod redact;
mod redirect;
mod registration;
mod reliable;
mod request;
mod resolve;
mod secure_client;
mod session_timer;
mod subscription;
mod traffic;
pub mod transfer;
mod transport;
mod ua;
mod ua_events;
pub mod validate;
pub mod wire;
mod wss;

pub use call::{Call, Direction};
pub use config::{Account, Config, Listen, SessionTimer, TlsSettings, Transport};
pub use error::{standard_reason, Error};
pub use events::{CallEvent, Notification, OfferKind, Party, RegistrationEvent, SubscriptionEvent};
pub use outbound::Caller;
pub use registration::Registration;
pub use subscription::{SubscribeTo, Subscription};
pub use traffic::{MessageCount, MessageKind};
pub use ua::UserAgent;
pub use ua_events::{IncomingCall, IncomingMessage, IncomingNotify, UaEvent};

/// What the user agent would do with one incoming datagram, without any
/// state: the screen's verdict, then for accepted out-of-dialog requests
/// the answer the dispatcher gives. For tests and diagnostics (the RFC 4475
/// report uses it).
pub fn triage(bytes: &[u8], max_size: usize) -> String {
    use validate::{screen, Framing, Screening};
    match screen(bytes, Framing::Datagram, max_size, "") {
        Screening::Accept(canon) => match rsipstack::sip::SipMessage::try_from(canon.as_ref()) {
            Ok(rsipstack::sip::SipMessage::Request(req)) => match inbound::disposition(&req) {
                inbound::Disposition::NewCall => "accepted: new call".into(),
                inbound::Disposition::Options => "accepted: 200 (OPTIONS)".into(),
                inbound::Disposition::Message => "accepted: 200 (MESSAGE)".into(),
                inbound::Disposition::Notify => "accepted: 200 (NOTIFY outside a subscription)".into(),
                inbound::Disposition::Absorbed => "accepted: to transaction layer".into(),
                inbound::Disposition::Refuse(code, reason) => format!("accepted, answered {code} {reason}"),
            },
            Ok(_) => "accepted: response (no matching transaction: discarded)".into(),
            Err(e) => format!("dropped (reparse: {e})"),
        },
        other => format!("rejected: {}", other.summary()),
    }
}
