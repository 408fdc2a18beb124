//! REGISTER with digest auth, refreshed before expiry, re-authenticated on a
//! stale nonce, removed on request.

use crate::background::{Background, StopRequest};
use crate::config::Account;
use crate::core::{name_addr, parse_uri, route_to, Core};
use crate::digest::NonceState;
use crate::error::Error;
use crate::events::RegistrationEvent;
use crate::request::{send_with_auth, Creds};
use crate::resolve::is_unreachable;
use crate::resolve::Route;
use rsipstack::sip::prelude::HeadersExt;
use rsipstack::sip::{Header, Method, Response, Uri};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// A registration kept alive in the background. Dropping it stops the
/// refreshes and removes the binding in the background (a REGISTER with
/// `Expires: 0` whose outcome nobody sees); call
/// [`Registration::unregister`] to wait for that outcome. Shutting the
/// user agent down stops everything without unregistering.
#[derive(Debug)]
pub struct Registration {
    account: Account,
    task: Background<RegistrationEvent>,
}

impl Registration {
    /// The account being registered.
    pub fn account(&self) -> &Account {
        &self.account
    }

    /// The next event; `None` once the registration task ended.
    pub async fn next_event(&mut self) -> Option<RegistrationEvent> {
        self.task.next_event().await
    }

    /// Sends REGISTER with `Expires: 0` and waits for the outcome
    /// ([`RegistrationEvent::Unregistered`] or a failure) on the event
    /// stream.
    pub async fn unregister(&mut self) -> Result<(), Error> {
        self.task.stop("unregistered").await
    }
}

struct Ctx {
    core: Arc<Core>,
    account: Account,
    aor: Uri,
    registrar_uri: Uri,
    route: Route,
    contact: Uri,
    call_id: String,
    from: rsipstack::sip::typed::From,
    to: rsipstack::sip::typed::To,
    cseq: u32,
    nonce: NonceState,
    events: mpsc::UnboundedSender<RegistrationEvent>,
}

pub(crate) fn start(core: Arc<Core>, account: Account) -> Result<Registration, Error> {
    let aor = parse_uri(&account.aor)?;
    let route = match &account.proxy {
        Some(p) => route_to(&parse_uri(p)?),
        None => route_to(&aor),
    };
    // Request-URI: the AOR's domain (RFC 3261 §10.2).
    let registrar_uri =
        Uri { scheme: aor.scheme.clone(), host_with_port: aor.host_with_port.clone(), ..Default::default() };
    let contact = core.contact(aor.user(), route.transport)?;
    let (from, to) = name_addr(&aor, account.display_name.as_deref());
    let (task, ev_tx, stop_rx) = Background::new();
    let ctx = Ctx {
        call_id: core.new_call_id()?,
        core,
        account: account.clone(),
        aor,
        registrar_uri,
        route,
        contact,
        from,
        to,
        cseq: 1,
        nonce: NonceState::default(),
        events: ev_tx,
    };
    if let Some(user) = ctx.aor.user() {
        ctx.core.accounts.lock().unwrap().insert(user.to_ascii_lowercase(), account.clone());
    }
    tokio::spawn(run(ctx, stop_rx));
    Ok(Registration { account, task })
}

async fn run(mut ctx: Ctx, mut stop: StopRequest) {
    let cancel = ctx.core.cancel.clone();
    let mut failures = 0u32;
    let mut recoveries = 0u32;
    loop {
        let expires = ctx.account.expires;
        let (wait, flow) = match register(&mut ctx, expires).await {
            Ok((expires, flow)) => {
                failures = 0;
                let _ = ctx.events.send(RegistrationEvent::Registered { expires });
                (refresh_after(expires), flow)
            }
            Err(e) => {
                failures += 1;
                warn!(aor = %ctx.aor, error = %e, "registration failed");
                let (code, reason) = e.outcome();
                let _ = ctx.events.send(RegistrationEvent::RegistrationFailed { code, reason });
                // Back off: 5 s doubling to 5 min, so a wrong password does
                // not hammer the registrar.
                (Duration::from_secs((5u64 << failures.min(6)).min(300)), None)
            }
        };
        // The registrar reaches us only over the connection we registered
        // on (WSS, and TLS to a named server): when it closes (the server
        // restarted, or dropped it idle), register again at once on a new
        // one rather than being unreachable until the refresh. A flow that
        // keeps closing is retried 1 s, 2 s, 4 s ... up to 5 min apart.
        let flow_closed = async move {
            match flow {
                Some(token) => token.cancelled_owned().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            _ = cancel.cancelled() => return,
            done = &mut stop => return unregister(ctx, done).await,
            _ = tokio::time::sleep(wait) => recoveries = 0,
            _ = flow_closed => {
                let delay = Duration::from_secs((1u64 << recoveries.min(9)).min(300));
                recoveries += 1;
                info!(aor = %ctx.aor, ?delay, "the connection to the registrar closed: registering again");
                tokio::select! {
                    biased;
                    _ = cancel.cancelled() => return,
                    done = &mut stop => return unregister(ctx, done).await,
                    _ = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
}

/// Removes the binding (REGISTER with `Expires: 0`), reports the outcome
/// and tells the one who asked.
async fn unregister(
    mut ctx: Ctx,
    done: Result<tokio::sync::oneshot::Sender<()>, tokio::sync::oneshot::error::RecvError>,
) {
    let result = register(&mut ctx, 0).await;
    let _ = ctx.events.send(match result.map_err(|e| e.outcome()) {
        Ok(_) => RegistrationEvent::Unregistered,
        Err((code, reason)) => RegistrationEvent::RegistrationFailed { code, reason },
    });
    if let Some(user) = ctx.aor.user() {
        ctx.core.accounts.lock().unwrap().remove(&user.to_ascii_lowercase());
    }
    if let Ok(done) = done {
        let _ = done.send(());
    }
}

/// Refresh at 80% of the granted time, at least 5 s before expiry.
pub(crate) fn refresh_after(expires: u32) -> Duration {
    let e = expires.max(10) as u64;
    Duration::from_secs((e * 4 / 5).min(e.saturating_sub(5)).max(5))
}

/// One REGISTER exchange; on success the granted expiry, and what fires
/// when the connection it went over closes (see [`crate::secure_client`]).
async fn register(ctx: &mut Ctx, expires: u32) -> Result<(u32, Option<CancellationToken>), Error> {
    let core = ctx.core.clone();
    let user = ctx.account.auth_username.clone().or_else(|| ctx.aor.user().map(str::to_string)).unwrap_or_default();
    let password = ctx.account.password.clone();
    // RFC 3263 §4.3: a registrar that does not answer gives way to the next
    // target DNS names.
    let mut targets = core.resolver.locate(&ctx.route).await?.into_iter().peekable();
    let (resp, last_cseq, target) = loop {
        let target = targets.next().expect("locate returns at least one target");
        let sent = send_with_auth(
            &core,
            |cseq| {
                let mut req = core.request(
                    Method::Register,
                    ctx.registrar_uri.clone(),
                    target.transport,
                    (ctx.from.clone(), ctx.to.clone()),
                    &ctx.call_id,
                    cseq,
                )?;
                req.headers.push(Header::Contact(format!("<{}>", ctx.contact).into()));
                req.headers.push(Header::Expires(expires.to_string().into()));
                req.headers.push(Header::Allow(crate::validate::ALLOWED_METHODS.to_string().into()));
                req.headers.extend(crate::core::extra_headers(&ctx.account.headers));
                Ok(req)
            },
            ctx.cseq,
            Some(&target),
            Some(Creds { username: &user, password: &password }),
            &mut ctx.nonce,
        )
        .await;
        // The transaction layer reports its timeout as a 408 response.
        let sent = sent.and_then(|(resp, cseq)| match resp.status_code.code() {
            408 => Err(Error::Timeout),
            _ => Ok((resp, cseq)),
        });
        match sent {
            Err(e) if is_unreachable(&e) && targets.peek().is_some() => {
                warn!(aor = %ctx.aor, target = %target.dest, error = %e, "registrar did not answer; next target");
                ctx.cseq += 1;
            }
            other => {
                let (resp, cseq) = other?;
                break (resp, cseq, target);
            }
        }
    };
    ctx.cseq = last_cseq + 1;
    let code = resp.status_code.code();
    if !(200..300).contains(&code) {
        ctx.nonce.clear();
        return Err(Error::Rejected { code, reason: reason(&resp) });
    }
    let granted = granted_expires(&resp, &ctx.contact).unwrap_or(expires);
    info!(aor = %ctx.aor, granted, "registered");
    let flow = core.secure.closed(&target.dest, target.server_name.as_deref()).await;
    Ok((granted, flow))
}

/// The reason phrase as sent, else the standard one.
pub(crate) fn reason(resp: &Response) -> String {
    resp.reason_phrase().map(str::to_string).unwrap_or_else(|| resp.status_code.text().to_string())
}

/// The expiry the registrar granted our contact: its `expires` parameter,
/// else the Expires header (RFC 3261 §10.2.4).
fn granted_expires(resp: &Response, contact: &Uri) -> Option<u32> {
    let ours = contact.to_string();
    let host = contact.host_with_port.to_string();
    for c in resp.contact_headers() {
        let v = c.value();
        if v.contains(&ours) || v.contains(&host) {
            for p in v.split(';') {
                if let Some(e) = p.trim().strip_prefix("expires=") {
                    if let Ok(n) = e.trim().parse() {
                        return Some(n);
                    }
                }
            }
        }
    }
    resp.expires_header().and_then(|e| e.value().trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refreshes_before_expiry() {
        assert_eq!(refresh_after(3600), Duration::from_secs(2880));
        assert_eq!(refresh_after(20), Duration::from_secs(15));
        assert_eq!(refresh_after(0), Duration::from_secs(5));
    }
}
