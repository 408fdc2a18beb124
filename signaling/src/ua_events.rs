//! Events of the user agent itself: what arrives unasked (a new call, a
//! message outside any call).

use crate::call::Call;

/// An incoming INVITE. Answer through `call`: [`Call::ringing`],
/// [`Call::answer`], [`Call::reject`].
#[derive(Debug)]
pub struct IncomingCall {
    /// The call; its events continue on [`Call::next_event`].
    pub call: Call,
    /// From URI.
    pub from: String,
    /// From display name.
    pub display_name: Option<String>,
    /// To URI.
    pub to: String,
    /// Request-URI.
    pub request_uri: String,
    /// SDP offer; `None` for an offerless INVITE (give the offer in
    /// [`Call::answer`], the answer arrives in [`CallEvent::Confirmed`](crate::CallEvent::Confirmed)).
    pub sdp_offer: Option<String>,
    /// All header fields of the INVITE, in order, as (name, value).
    pub headers: Vec<(String, String)>,
    /// Attended transfer (RFC 3891): the Call-ID of our call this one
    /// replaces (its Replaces header matched that dialog; an INVITE whose
    /// Replaces matches none is answered 481 and never shows up).
    pub replaces: Option<String>,
}

/// A MESSAGE outside any call (already answered 200).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncomingMessage {
    /// From URI.
    pub from: String,
    /// To URI.
    pub to: String,
    /// Content-Type.
    pub content_type: String,
    /// Body as text.
    pub body: String,
}

/// A NOTIFY outside any subscription of ours (already answered 200):
/// unsolicited `message-summary`, as Asterisk sends to registered phones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncomingNotify {
    /// From URI.
    pub from: String,
    /// To URI.
    pub to: String,
    /// Request-URI.
    pub request_uri: String,
    /// What it says.
    pub notification: crate::events::Notification,
}

/// Events of the user agent itself.
#[derive(Debug)]
pub enum UaEvent {
    /// A new incoming call.
    IncomingCall(IncomingCall),
    /// A MESSAGE outside a call.
    Message(IncomingMessage),
    /// A NOTIFY outside any subscription.
    Notify(IncomingNotify),
}
