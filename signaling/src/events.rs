//! Typed events of calls and registrations, handed to the layer above.
//! Plain data: what carries a [`Call`](crate::Call) itself is in
//! `ua_events.rs`, so the call can use these without a circle.

use crate::dtmf::Dtmf;

/// Who ended a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Party {
    /// This user agent (the layer above asked).
    Local,
    /// The peer (BYE, CANCEL) or the network (timeout).
    Remote,
}

/// Which request carried a mid-call offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OfferKind {
    /// re-INVITE.
    ReInvite,
    /// UPDATE (RFC 3311).
    Update,
}

/// Events of one call, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallEvent {
    /// Outgoing: 100 Trying.
    Trying,
    /// Outgoing: 180 Ringing without SDP.
    Ringing,
    /// Outgoing: 183 (or 18x with a body): early media. `sdp` is the
    /// early answer when the response carried one.
    Progress {
        /// Status code (183, or 180 with SDP).
        code: u16,
        /// Early SDP answer.
        sdp: Option<String>,
    },
    /// Outgoing: 200 OK (the ACK is sent automatically). `sdp` is the answer.
    Answered {
        /// SDP of the 200 OK.
        sdp: Option<String>,
    },
    /// Incoming: the ACK for our 200 arrived; the call is up. `sdp` is the
    /// answer when the INVITE had no offer.
    Confirmed {
        /// SDP carried by the ACK.
        sdp: Option<String>,
    },
    /// Outgoing: final failure response, or no response at all (408).
    Failed {
        /// Status code.
        code: u16,
        /// Reason phrase.
        reason: String,
    },
    /// The peer sent a re-INVITE or UPDATE; answer it with
    /// [`Call::accept_offer`](crate::Call::accept_offer) or
    /// [`Call::reject_offer`](crate::Call::reject_offer) (hold and resume
    /// arrive here as direction changes in `sdp`).
    Offer {
        /// re-INVITE or UPDATE.
        kind: OfferKind,
        /// The new offer; `None` for an offerless re-INVITE (answer with an
        /// offer of your own).
        sdp: Option<String>,
    },
    /// INFO received (already answered 200).
    Info {
        /// Content-Type.
        content_type: String,
        /// Body as text (lossy UTF-8).
        body: String,
        /// Parsed DTMF, for `application/dtmf-relay` and `application/dtmf`.
        dtmf: Option<Dtmf>,
    },
    /// MESSAGE received inside the call (already answered 200).
    Message {
        /// Content-Type.
        content_type: String,
        /// Body as text.
        body: String,
    },
    /// The peer asks us to transfer the call (REFER, RFC 3515): answer with
    /// [`crate::Call::accept_refer`] (202, then report the new call's
    /// progress with [`crate::Call::notify_refer`]) or
    /// [`crate::Call::reject_refer`].
    Refer {
        /// Refer-To URI, without its header part.
        target: String,
        /// Referred-By (RFC 3892), to pass on to the target.
        referred_by: Option<String>,
        /// Replaces (RFC 3891) for the INVITE to the target (attended
        /// transfer): `callid;to-tag=..;from-tag=..`.
        replaces: Option<String>,
    },
    /// Progress of a REFER we sent ([`crate::Call::refer`]): the status of
    /// the call the peer placed, from its NOTIFY's sipfrag.
    ReferProgress {
        /// Status code (100, 180, 200, 486...).
        code: u16,
        /// Reason phrase.
        reason: String,
        /// The subscription ended: this is the outcome.
        done: bool,
    },
    /// The call is over (BYE either way, CANCEL, ACK timeout).
    Ended {
        /// Who ended it.
        by: Party,
        /// What ended it, e.g. `BYE`, `CANCEL`.
        reason: String,
    },
}

/// Events of one registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistrationEvent {
    /// The registrar accepted the binding for `expires` seconds.
    Registered {
        /// Granted lifetime.
        expires: u32,
    },
    /// The registrar refused (or did not answer: 408).
    RegistrationFailed {
        /// Status code.
        code: u16,
        /// Reason phrase.
        reason: String,
    },
    /// The binding was removed (after [`crate::Registration::unregister`]).
    Unregistered,
}

/// One NOTIFY (RFC 6665): what a subscription or an unsolicited notifier
/// reports, e.g. `message-summary` (RFC 3842) with `Messages-Waiting: yes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// The event package (`Event` without its parameters).
    pub event: String,
    /// `Subscription-State` as sent (`active;expires=3600`, `terminated`),
    /// empty when absent.
    pub state: String,
    /// Content-Type.
    pub content_type: String,
    /// Body as text (lossy UTF-8).
    pub body: String,
}

/// Events of one subscription ([`crate::Subscription`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubscriptionEvent {
    /// The notifier accepted the SUBSCRIBE (or its refresh) for `expires` seconds.
    Subscribed {
        /// Granted lifetime.
        expires: u32,
    },
    /// A NOTIFY of the subscription (already answered 200).
    Notify(Notification),
    /// The notifier refused (or did not answer: 408); the subscription is over.
    Failed {
        /// Status code.
        code: u16,
        /// Reason phrase.
        reason: String,
    },
    /// The subscription is over: unsubscribed, or ended by the notifier
    /// (`Subscription-State: terminated`).
    Terminated,
}
