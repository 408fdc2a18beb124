//! Outgoing calls: INVITE through rsipstack's dialog layer, with 401/407
//! challenges answered by this crate (rsipstack's own digest is wrong for
//! SHA-256 and -sess, see [`crate::digest`]): each challenge ends one
//! rsipstack INVITE and a new one goes out with the same Call-ID and the
//! credentials.

use crate::call::{allows_update, body_text, capabilities, pump, Call, CallInner, Direction};
use crate::config::Account;
use crate::core::{extra_headers, parse_uri, route_to, Core};
use crate::digest::{Algorithm, NonceState, HA1_MARKER};
use crate::error::Error;
use crate::events::{CallEvent, Party};
use crate::redirect::{Redirects, MAX_REDIRECTS};
use crate::request::absorb_challenge;
use crate::resolve::Route;
use crate::session_timer;
use rsipstack::dialog::authenticate::Credential;
use rsipstack::dialog::dialog::{DialogState, TerminatedReason};
use rsipstack::dialog::invitation::InviteOption;
use rsipstack::sip::{Header, Uri};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::sync::mpsc;
use tracing::debug;

/// Who places an outgoing call.
#[derive(Debug, Clone)]
pub enum Caller {
    /// A configured account: its AOR in From, its proxy as next hop, its
    /// credentials for challenges.
    Account(Account),
    /// No account: this From URI, sent straight to the target.
    Guest {
        /// From URI.
        uri: String,
        /// From display name.
        display_name: Option<String>,
    },
}

pub(crate) fn start(
    core: Arc<Core>,
    caller: Caller,
    target: &str,
    sdp_offer: Option<String>,
    headers: &[(String, String)],
) -> Result<Call, Error> {
    let callee = parse_uri(target)?;
    let ResolvedCaller { uri: from_uri, display_name: display, route, credentials: creds } =
        resolve_caller(&caller, &callee)?;
    let contact = core.contact(from_uri.user(), route.transport)?;
    let call_id = core.new_call_id()?;
    let (inner, ev_rx) = CallInner::new(&core, call_id.clone(), Direction::Outgoing, None, None, None);
    let mut headers = extra_headers(headers);
    headers.extend(capabilities());
    let option = InviteOption {
        caller_display_name: display,
        caller: from_uri,
        callee,
        destination: Some(route.dest.clone()),
        content_type: sdp_offer.as_ref().map(|_| "application/sdp".to_string()),
        offer: sdp_offer.map(String::into_bytes),
        contact,
        headers: Some(headers),
        call_id: Some(call_id),
        ..Default::default()
    };
    let via_proxy = matches!(&caller, Caller::Account(a) if a.proxy.is_some());
    tokio::spawn(drive(inner.clone(), option, creds, route, via_proxy));
    Ok(Call { inner, events: ev_rx })
}

/// Sends the INVITE until a final outcome: challenges answered, a 422
/// retried with a longer interval, 3xx followed (to the new target through
/// the account's proxy when there is one, else straight to it), the next
/// server DNS names (RFC 3263) tried when one does not answer.
async fn drive(
    inner: Arc<CallInner>,
    mut option: InviteOption,
    creds: Option<(String, String)>,
    route: Route,
    via_proxy: bool,
) {
    let (state_tx, state_rx) = mpsc::unbounded_channel();
    tokio::spawn(pump(inner.clone(), state_rx));
    let mut servers = match locate(&inner, &route).await {
        Some(servers) => servers,
        None => return,
    };
    let first = servers.next();
    option.destination = first.as_ref().map(|s| s.dest.clone());
    let mut nonce = NonceState::default();
    let mut answered_nonce = None;
    let mut target = option.callee.to_string();
    if let Some(first) = &first {
        if let Err(e) = crate::request::connect(&inner.core, &first.dest, first.server_name.as_deref()).await {
            inner.emit(CallEvent::Failed { code: e.status_code(), reason: e.to_string() });
            return;
        }
    }
    let mut redirects = Redirects::new(&option.callee);
    let mut stack_answers = creds.as_ref().is_some_and(|(_, pw)| !pw.starts_with(HA1_MARKER));
    let timer_config = inner.core.config.session_timer;
    let mut session_interval = timer_config.map(|t| t.expires);
    *inner.local_sdp.lock().unwrap() = option.offer.as_deref().map(|b| String::from_utf8_lossy(b).into_owned());
    for _attempt in 0..4 + MAX_REDIRECTS {
        let mut opt = option.clone();
        if let (Some(config), Some(interval)) = (&timer_config, session_interval) {
            opt.headers.get_or_insert_with(Vec::new).extend(session_timer::invite_headers(config, interval));
        }
        if let Some((user, pw)) = &creds {
            let body = opt.offer.clone().unwrap_or_default();
            if let Some((name, value)) = nonce.answer(user, pw, "INVITE", &target, &body) {
                let h = if name == "Authorization" {
                    Header::Authorization(value.into())
                } else {
                    Header::ProxyAuthorization(value.into())
                };
                opt.headers.get_or_insert_with(Vec::new).push(h);
                opt.credential = in_dialog_credential(&nonce, user, pw, opt.caller.user());
            } else if stack_answers {
                opt.credential = Some(stack_credential(user, pw, opt.caller.user(), None));
            }
        }
        let (dialog, mut handle) = match inner.core.dialogs.do_invite_async(opt, state_tx.clone()) {
            Ok(x) => x,
            Err(e) => {
                let e = Error::from(e);
                inner.emit(CallEvent::Failed { code: e.status_code(), reason: e.to_string() });
                return;
            }
        };
        *inner.dialog.lock().unwrap() = Some(dialog.clone());
        if inner.cancel_requested.load(Ordering::SeqCst) {
            let _ = dialog.cancel().await;
        }
        let result = loop {
            tokio::select! {
                r = &mut handle => break r,
                _ = inner.cancel_notify.notified() => { let _ = dialog.cancel().await; }
            }
        };
        let cancelled = inner.cancel_requested.load(Ordering::SeqCst);
        match result {
            Ok(Ok((_, Some(resp)))) => {
                let code = resp.status_code.code();
                if (200..300).contains(&code) {
                    if cancelled {
                        // rsipstack ACKs and BYEs a 2xx that crossed our CANCEL.
                        inner.emit(CallEvent::Ended { by: Party::Local, reason: "CANCEL".into() });
                    } else {
                        inner.peer_allows_update.store(allows_update(&resp), Ordering::SeqCst);
                        inner.established_with(session_timer::from_response(&resp));
                        *inner.answer_headers.lock().unwrap() = crate::call::header_pairs(&resp);
                        inner.emit(CallEvent::Answered { sdp: body_text(&resp.body) });
                    }
                    return;
                }
                // RFC 4028 §7.4: too short an interval; again with the
                // callee's Min-SE (once: a second 422 is final).
                if let (422, Some(floor), Some(interval)) = (code, session_timer::min_se(&resp), session_interval) {
                    if floor > interval && !cancelled {
                        session_interval = Some(floor);
                        continue;
                    }
                }
                if (code == 401 || code == 407) && creds.is_some() && !cancelled {
                    match absorb_challenge(&resp, &mut nonce, &mut answered_nonce) {
                        Ok(true) => continue,
                        Ok(false) => {}
                        Err(e) => {
                            inner.emit(CallEvent::Failed { code, reason: e.to_string() });
                            return;
                        }
                    }
                }
                if (300..400).contains(&code) && !cancelled {
                    if let Some(next) = redirects.next(&resp) {
                        debug!(call = %inner.call_id, %code, to = %next, "following redirection");
                        if !via_proxy {
                            servers = match locate(&inner, &route_to(&next)).await {
                                Some(servers) => servers,
                                None => return,
                            };
                            option.destination = servers.next().map(|s| s.dest);
                        }
                        target = next.to_string();
                        option.callee = next;
                        // A new target challenges afresh.
                        nonce = NonceState::default();
                        answered_nonce = None;
                        continue;
                    }
                }
                // The transaction layer reports no answer as a 408: the
                // next server, if DNS named another (RFC 3263 §4.3).
                if code == 408 && !cancelled && next_server(&inner, &mut servers, &mut option) {
                    continue;
                }
                if code == 487 && cancelled {
                    inner.emit(CallEvent::Ended { by: Party::Local, reason: "CANCEL".into() });
                } else {
                    inner.emit(CallEvent::Failed { code, reason: crate::registration::reason(&resp) });
                }
                return;
            }
            Ok(Ok((_, None)))
                if stack_answers
                    && nonce.challenge().is_none()
                    && !cancelled
                    && matches!(dialog.state(), DialogState::Terminated(_, TerminatedReason::ProxyAuthRequired)) =>
            {
                // rsipstack's answer was refused and it kept the challenge
                // to itself: again, answered by our digest this time.
                stack_answers = false;
                continue;
            }
            Ok(Ok((_, None)))
                if !cancelled
                    && !matches!(dialog.state(), DialogState::Terminated(_, TerminatedReason::ProxyAuthRequired)) =>
            {
                // No answer at all: the next server, if DNS named another.
                if next_server(&inner, &mut servers, &mut option) {
                    continue;
                }
                inner.emit(CallEvent::Failed { code: 408, reason: "Request Timeout".into() });
                return;
            }
            Ok(Ok((_, None))) => {
                // rsipstack gives up without a response when a challenge
                // it answered (see `in_dialog_credential`) comes back.
                if matches!(dialog.state(), DialogState::Terminated(_, TerminatedReason::ProxyAuthRequired)) {
                    let code = if nonce.is_proxy() { 407 } else { 401 };
                    inner.emit(CallEvent::Failed { code, reason: "authentication failed".into() });
                } else {
                    inner.emit(CallEvent::Failed { code: 408, reason: "Request Timeout".into() });
                }
                return;
            }
            Ok(Err(_)) if stack_answers && nonce.challenge().is_none() && !cancelled => {
                // rsipstack could not answer the challenge (a spelling its
                // parser refuses): again, answered by our digest this time.
                stack_answers = false;
                continue;
            }
            Ok(Err(e)) => {
                let e = Error::from(e);
                inner.emit(CallEvent::Failed { code: e.status_code(), reason: e.to_string() });
                return;
            }
            Err(e) => {
                inner.emit(CallEvent::Failed { code: 500, reason: e.to_string() });
                return;
            }
        }
    }
    inner.emit(CallEvent::Failed { code: 403, reason: "too many authentication challenges or redirections".into() });
}

/// Points the INVITE at the next server DNS named (RFC 3263 §4.3);
/// `false` when none is left.
fn next_server(inner: &CallInner, servers: &mut std::vec::IntoIter<Route>, option: &mut InviteOption) -> bool {
    let Some(next) = servers.next() else { return false };
    debug!(call = %inner.call_id, to = %next.dest, "no answer; next server");
    option.destination = Some(next.dest);
    true
}

/// The servers for `route` (RFC 3263), or `None` after reporting the
/// call failed (no DNS answer).
async fn locate(inner: &Arc<CallInner>, route: &Route) -> Option<std::vec::IntoIter<Route>> {
    match inner.core.resolver.locate(route).await {
        Ok(servers) => Some(servers.into_iter()),
        Err(e) => {
            inner.emit(CallEvent::Failed { code: e.status_code(), reason: e.to_string() });
            None
        }
    }
}

/// Credentials handed to rsipstack's dialog once our own code has answered
/// the INVITE's challenge: rsipstack sends the in-dialog requests
/// (re-INVITE, UPDATE, INFO, MESSAGE, BYE) and, without credentials, ends
/// the whole call when a proxy or the peer challenges one of them. Its
/// digest code is right for plain MD5 only (see [`crate::digest`]), so
/// only then; for other algorithms a challenged in-dialog request still
/// ends the call (rare: proxies challenge initial requests).
fn in_dialog_credential(
    nonce: &NonceState,
    auth_user: &str,
    password: &str,
    aor_user: Option<&str>,
) -> Option<Credential> {
    let ch = nonce.challenge().filter(|c| c.algorithm == Algorithm::Md5)?;
    Some(stack_credential(auth_user, password, aor_user, Some(ch.realm.clone())))
}

/// Credentials for rsipstack's own digest code.
///
/// Before any challenge they go with the first INVITE: rsipstack then
/// answers a 401/407 itself inside the same INVITE attempt, re-sending the
/// request with the same From tag and Call-ID as RFC 3261 §8.1.3.5 asks
/// (each INVITE it makes from scratch gets a new From tag). Its answer is
/// right for plain MD5, the usual challenge; when the challenger refuses it
/// (SHA-256, -sess) the refusal comes back here and our own digest answers
/// in a new INVITE, with a new From tag: authentication then works, the
/// tag rule gives way.
fn stack_credential(auth_user: &str, password: &str, aor_user: Option<&str>, realm: Option<String>) -> Credential {
    Credential {
        username: aor_user.unwrap_or(auth_user).to_string(),
        password: password.to_string(),
        realm,
        auth_username: Some(auth_user.to_string()),
    }
}

/// Who a request goes out as and where it is sent.
pub(crate) struct ResolvedCaller {
    /// The From URI.
    pub uri: Uri,
    pub display_name: Option<String>,
    pub route: Route,
    /// (user, password) for digest challenges; none for a guest.
    pub credentials: Option<(String, String)>,
}

/// An account's AOR, display name, route (its proxy, or straight to the
/// target) and credentials, or a guest's URI sent straight to the target.
pub(crate) fn resolve_caller(caller: &Caller, callee: &Uri) -> Result<ResolvedCaller, Error> {
    Ok(match caller {
        Caller::Account(a) => {
            let aor = parse_uri(&a.aor)?;
            let route = match &a.proxy {
                Some(p) => route_to(&parse_uri(p)?),
                None => route_to(callee),
            };
            let user = a.auth_username.clone().or_else(|| aor.user().map(str::to_string)).unwrap_or_default();
            ResolvedCaller {
                uri: aor,
                display_name: a.display_name.clone(),
                route,
                credentials: Some((user, a.password.clone())),
            }
        }
        Caller::Guest { uri, display_name } => ResolvedCaller {
            uri: parse_uri(uri)?,
            display_name: display_name.clone(),
            route: route_to(callee),
            credentials: None,
        },
    })
}
