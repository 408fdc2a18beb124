//! SUBSCRIBE (RFC 6665) from an account, e.g. to its voicemail's
//! `message-summary` (RFC 3842): digest authentication as for REGISTER,
//! a refresh before expiry, `Expires: 0` to end it. The NOTIFYs of its
//! dialog reach it through `notify.rs`.
//!
//! The subscription's dialog is kept here, not in rsipstack: its remote
//! target is the 2xx's Contact; a Record-Route set is not followed.

use crate::background::{Background, StopRequest};
use crate::config::Account;
use crate::core::{name_addr, parse_uri, route_to, Core};
use crate::digest::NonceState;
use crate::error::Error;
use crate::events::SubscriptionEvent;
use crate::notify::Sink;
use crate::request::{send_with_auth, Creds};
use crate::resolve::Route;
use rsipstack::sip::prelude::HeadersExt;
use rsipstack::sip::{Header, Method, Param, Uri};
use std::sync::Arc;
use tokio::sync::mpsc;
use tracing::{info, warn};

/// What to subscribe to.
#[derive(Debug, Clone)]
pub struct SubscribeTo {
    /// The event package, e.g. `message-summary`.
    pub event: String,
    /// `Accept`, e.g. `application/simple-message-summary`; none when `None`.
    pub accept: Option<String>,
    /// The resource (Request-URI and To); the account's AOR when `None`.
    pub target: Option<String>,
    /// Asked lifetime in seconds.
    pub expires: u32,
}

/// A subscription kept alive in the background. Dropping it ends it in
/// the background (SUBSCRIBE with `Expires: 0`); call
/// [`Subscription::unsubscribe`] to wait for that.
#[derive(Debug)]
pub struct Subscription {
    task: Background<SubscriptionEvent>,
}

impl Subscription {
    /// The next event; `None` once the subscription is over and its events read.
    pub async fn next_event(&mut self) -> Option<SubscriptionEvent> {
        self.task.next_event().await
    }

    /// Ends the subscription (SUBSCRIBE with `Expires: 0`) and waits for it;
    /// [`SubscriptionEvent::Terminated`] follows on the event stream.
    pub async fn unsubscribe(&mut self) -> Result<(), Error> {
        self.task.stop("unsubscribed").await
    }
}

struct Ctx {
    core: Arc<Core>,
    account: Account,
    what: SubscribeTo,
    /// Request-URI: the resource, then the notifier's Contact.
    target: Uri,
    route: Route,
    contact: Uri,
    call_id: String,
    from: rsipstack::sip::typed::From,
    to: rsipstack::sip::typed::To,
    cseq: u32,
    nonce: NonceState,
    events: mpsc::UnboundedSender<SubscriptionEvent>,
}

pub(crate) fn start(core: Arc<Core>, account: Account, what: SubscribeTo) -> Result<Subscription, Error> {
    let aor = parse_uri(&account.aor)?;
    let target = match &what.target {
        Some(t) => parse_uri(t)?,
        None => aor.clone(),
    };
    let route = match &account.proxy {
        Some(p) => route_to(&parse_uri(p)?),
        None => route_to(&target),
    };
    let contact = core.contact(aor.user(), route.transport)?;
    let (from, _) = name_addr(&aor, account.display_name.as_deref());
    let (_, to) = name_addr(&target, None);
    let (task, events, stop_rx) = Background::new();
    let ended = Arc::new(tokio::sync::Notify::new());
    let call_id = core.new_call_id()?;
    // Registered before the first SUBSCRIBE: a NOTIFY may overtake its 2xx.
    core.subscriptions.lock().unwrap().insert(call_id.clone(), Sink { events: events.clone(), ended: ended.clone() });
    let ctx = Ctx {
        core,
        account,
        what,
        target,
        route,
        contact,
        call_id,
        from,
        to,
        cseq: 1,
        nonce: NonceState::default(),
        events,
    };
    tokio::spawn(run(ctx, stop_rx, ended));
    Ok(Subscription { task })
}

async fn run(mut ctx: Ctx, mut stop: StopRequest, ended: Arc<tokio::sync::Notify>) {
    let cancel = ctx.core.cancel.clone();
    loop {
        let expires = ctx.what.expires;
        let wait = match subscribe(&mut ctx, expires).await {
            Ok(granted) => {
                let _ = ctx.events.send(SubscriptionEvent::Subscribed { expires: granted });
                crate::registration::refresh_after(granted)
            }
            Err(e) => {
                warn!(event = %ctx.what.event, error = %e, "subscription failed");
                let (code, reason) = e.outcome();
                let _ = ctx.events.send(SubscriptionEvent::Failed { code, reason });
                ctx.core.subscriptions.lock().unwrap().remove(&ctx.call_id);
                return;
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = cancel.cancelled() => return,
            _ = ended.notified() => {
                ctx.core.subscriptions.lock().unwrap().remove(&ctx.call_id);
                return;
            }
            done = &mut stop => {
                if let Err(e) = subscribe(&mut ctx, 0).await {
                    warn!(event = %ctx.what.event, error = %e, "unsubscribe refused");
                }
                ctx.core.subscriptions.lock().unwrap().remove(&ctx.call_id);
                let _ = ctx.events.send(SubscriptionEvent::Terminated);
                if let Ok(done) = done {
                    let _ = done.send(());
                }
                return;
            }
        }
    }
}

/// One SUBSCRIBE exchange; the granted expiry on success.
async fn subscribe(ctx: &mut Ctx, expires: u32) -> Result<u32, Error> {
    let core = ctx.core.clone();
    let aor_user = parse_uri(&ctx.account.aor)?.user().map(str::to_string);
    let user = ctx.account.auth_username.clone().or(aor_user).unwrap_or_default();
    let password = ctx.account.password.clone();
    let target = core.resolver.locate(&ctx.route).await?.into_iter().next().expect("locate returns a target");
    let (resp, last_cseq) = send_with_auth(
        &core,
        |cseq| {
            let mut req = core.request(
                Method::Subscribe,
                ctx.target.clone(),
                target.transport,
                (ctx.from.clone(), ctx.to.clone()),
                &ctx.call_id,
                cseq,
            )?;
            req.headers.push(Header::Contact(format!("<{}>", ctx.contact).into()));
            req.headers.push(Header::Event(ctx.what.event.clone().into()));
            req.headers.push(Header::Expires(expires.to_string().into()));
            if let Some(accept) = &ctx.what.accept {
                req.headers.push(Header::Accept(accept.clone().into()));
            }
            req.headers.push(Header::Allow(crate::validate::ALLOWED_METHODS.to_string().into()));
            Ok(req)
        },
        ctx.cseq,
        Some(&target),
        Some(Creds { username: &user, password: &password }),
        &mut ctx.nonce,
    )
    .await?;
    ctx.cseq = last_cseq + 1;
    let code = resp.status_code.code();
    if !(200..300).contains(&code) {
        ctx.nonce.clear();
        return Err(Error::Rejected { code, reason: crate::registration::reason(&resp) });
    }
    // The dialog: the notifier's To tag and Contact (RFC 6665 §4.1.2.1).
    if let Some(tag) = resp.to_header().ok().and_then(|t| t.tag().ok().flatten()) {
        if ctx.to.params.iter().all(|p| !matches!(p, Param::Tag(_))) {
            ctx.to.params.push(Param::Tag(tag));
        }
    }
    if let Some(contact) = resp.typed_contact_headers().ok().and_then(|c| c.into_iter().next()) {
        ctx.target = contact.uri;
    }
    let granted = resp.expires_header().and_then(|e| e.value().trim().parse().ok()).unwrap_or(expires);
    info!(event = %ctx.what.event, granted, "subscribed");
    Ok(granted)
}
