//! Incoming requests that reach the transaction layer (already screened by
//! [`crate::guard`]): in-dialog ones go to their dialog, new INVITEs become
//! calls, OPTIONS is answered 200, MESSAGE is passed up, the rest is refused
//! with the right code.

use crate::call::{body_text, content_type_of, from_parts, header_pairs, pump, Call, CallInner, Direction};
use crate::config::Transport;
use crate::core::{content_type, Core};
use crate::events::{CallEvent, Party};
use crate::session_timer;
use crate::transfer::ReplacesTarget;
use crate::ua_events::{IncomingCall, IncomingMessage, IncomingNotify, UaEvent};
use crate::validate::ALLOWED_METHODS;
use rsipstack::dialog::dialog::Dialog;
use rsipstack::dialog::DialogId;
use rsipstack::sip::prelude::{HeadersExt, ToTypedHeader};
use rsipstack::sip::{Header, Method, Request, Scheme, StatusCode};
use rsipstack::transaction::transaction::Transaction;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::sync::mpsc;
use tracing::{debug, warn};

/// What the user agent does with a request that matches no dialog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// A new call: passed up as [`UaEvent::IncomingCall`].
    NewCall,
    /// OPTIONS answered 200 with Allow/Accept.
    Options,
    /// MESSAGE passed up and answered 200.
    Message,
    /// NOTIFY of an event package we take unsolicited (message-summary)
    /// passed up and answered 200.
    Notify,
    /// ACK or CANCEL handled by the transaction layer.
    Absorbed,
    /// Answered with this code and reason.
    Refuse(u16, String),
}

fn refuse(code: u16, reason: &str) -> Disposition {
    Disposition::Refuse(code, reason.to_string())
}

/// Decides the fate of an out-of-dialog request (RFC 3261 §8.2 order:
/// method, then URI/headers, then extensions, then content).
pub(crate) fn disposition(req: &Request) -> Disposition {
    let has_to_tag = req.to_header().ok().and_then(|t| t.tag().ok().flatten()).is_some();
    match req.method {
        Method::Ack | Method::Cancel => return Disposition::Absorbed,
        Method::Register | Method::Subscribe | Method::Publish => return refuse(405, "Method Not Allowed"),
        _ => {}
    }
    if req.method == Method::Notify && !has_to_tag && is_unsolicited_package(req) {
        return Disposition::Notify;
    }
    if has_to_tag
        || matches!(
            req.method,
            Method::Bye | Method::Info | Method::Update | Method::PRack | Method::Notify | Method::Refer
        )
    {
        // In-dialog request for a dialog we do not have.
        return refuse(481, "Call/Transaction Does Not Exist");
    }
    if !crate::extensions::unsupported_required(req).is_empty() {
        return refuse(420, "Bad Extension");
    }
    match req.method {
        Method::Options => Disposition::Options,
        Method::Message => Disposition::Message,
        Method::Invite => {
            // The caller's Contact is the new dialog's remote target (RFC
            // 3261 §12.1.1): without a usable one there is no call.
            if !has_usable_contact(req) {
                return refuse(400, "Missing or Malformed Contact");
            }
            if !req.body.is_empty() {
                let ct = content_type_of(req).to_ascii_lowercase();
                if ct.split(';').next().unwrap_or("").trim() != "application/sdp" {
                    return refuse(415, "Unsupported Media Type");
                }
            }
            if let Some(accept) = req.header_value("Accept") {
                let ok = accept.split(',').any(|a| {
                    let a = a.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
                    a == "application/sdp" || a == "application/*" || a == "*/*"
                });
                if !ok && !accept.trim().is_empty() {
                    return refuse(406, "Not Acceptable");
                }
            }
            Disposition::NewCall
        }
        _ => refuse(405, "Method Not Allowed"),
    }
}

/// A NOTIFY outside any subscription we accept: `message-summary` (RFC
/// 3842), which PBXs such as Asterisk send unasked to registered phones.
fn is_unsolicited_package(req: &Request) -> bool {
    crate::notify::notification_of(req).event.eq_ignore_ascii_case("message-summary")
}

/// The first Contact parses and is a SIP URI with a host.
fn has_usable_contact(req: &Request) -> bool {
    let contacts = req.typed_contact_headers().unwrap_or_default();
    contacts.first().is_some_and(|c| {
        matches!(c.uri.scheme, Some(Scheme::Sip | Scheme::Sips)) && !c.uri.host_with_port.host.to_string().is_empty()
    })
}

/// Serves incoming transactions until the endpoint stops, passing new calls
/// and messages up through `events`.
pub(crate) async fn serve(
    core: Arc<Core>,
    mut incoming: rsipstack::transaction::TransactionReceiver,
    events: mpsc::UnboundedSender<UaEvent>,
) {
    while let Some(tx) = incoming.recv().await {
        let core = core.clone();
        let events = events.clone();
        tokio::spawn(async move { handle(core, tx, events).await });
    }
}

async fn handle(core: Arc<Core>, mut tx: Transaction, events: mpsc::UnboundedSender<UaEvent>) {
    if let Some(Dialog::Invite(mut d)) = core.dialogs.match_dialog(&tx) {
        if tx.original.method == Method::PRack {
            let call_id = tx.original.call_id_header().map(|c| c.value().to_string()).unwrap_or_default();
            core.pracks.prack_received(&tx.original, &call_id);
        }
        if tx.original.method == Method::Bye {
            // Kept for the call's end event (its dialog reports no request).
            let call_id = tx.original.call_id_header().map(|c| c.value().to_string()).unwrap_or_default();
            core.bye_headers.lock().unwrap().insert(call_id, header_pairs(&tx.original));
        }
        if let Err(e) = d.handle(&mut tx).await {
            debug!(error = %e, "in-dialog request");
        }
        return;
    }
    if tx.original.method == Method::Notify && crate::notify::deliver(&core.subscriptions, &tx.original) {
        reply(&core, &mut tx, StatusCode::OK, vec![]).await;
        return;
    }
    match disposition(&tx.original) {
        Disposition::Absorbed => {}
        Disposition::Options if !core.available.load(Ordering::Relaxed) => {
            reply(&core, &mut tx, StatusCode::ServiceUnavailable, vec![]).await;
        }
        Disposition::Options => {
            let headers = vec![
                Header::Allow(ALLOWED_METHODS.to_string().into()),
                Header::Supported(crate::extensions::supported_value().into()),
                Header::Accept("application/sdp".to_string().into()),
                Header::Other("Accept-Language".into(), "en".into()),
            ];
            reply(&core, &mut tx, StatusCode::OK, headers).await;
        }
        Disposition::Message => {
            let (_, from) = from_parts(&tx.original);
            let to = to_uri(&tx.original);
            let _ = events.send(UaEvent::Message(IncomingMessage {
                from,
                to,
                content_type: content_type_of(&tx.original),
                body: String::from_utf8_lossy(&tx.original.body).into_owned(),
            }));
            reply(&core, &mut tx, StatusCode::OK, vec![]).await;
        }
        Disposition::Notify => {
            let (_, from) = from_parts(&tx.original);
            let to = to_uri(&tx.original);
            let _ = events.send(UaEvent::Notify(IncomingNotify {
                from,
                to,
                request_uri: tx.original.uri.to_string(),
                notification: crate::notify::notification_of(&tx.original),
            }));
            reply(&core, &mut tx, StatusCode::OK, vec![]).await;
        }
        Disposition::Refuse(code, _) => {
            let mut headers = vec![];
            match code {
                405 => headers.push(Header::Allow(ALLOWED_METHODS.to_string().into())),
                415 => headers.push(Header::Accept("application/sdp".to_string().into())),
                420 => {
                    let lacking = crate::extensions::unsupported_required(&tx.original).join(", ");
                    headers.push(Header::Unsupported(lacking.into()));
                }
                _ => {}
            }
            reply(&core, &mut tx, StatusCode::from(code), headers).await;
        }
        Disposition::NewCall => incoming_invite(core, tx, events).await,
    }
}

/// The To URI of a request.
fn to_uri(req: &Request) -> String {
    req.to_header().ok().and_then(|t| t.typed().ok()).map(|t| t.uri.to_string()).unwrap_or_default()
}

/// Out-of-dialog response with a To tag (rsipstack's make_response adds
/// none, RFC 3261 §8.2.6.2 wants one).
async fn reply(core: &Core, tx: &mut Transaction, status: StatusCode, headers: Vec<Header>) {
    let mut resp = core.endpoint.make_response(&tx.original, status, None);
    if let Ok(to) = resp.to_header_mut() {
        if to.tag().ok().flatten().is_none() {
            let v = format!("{};tag={}", to.value(), rsipstack::transaction::make_tag());
            *to = v.into();
        }
    }
    resp.headers.extend(headers);
    if let Err(e) = tx.respond(resp).await {
        warn!(error = %e, "sending response");
    }
}

async fn incoming_invite(core: Arc<Core>, mut tx: Transaction, events: mpsc::UnboundedSender<UaEvent>) {
    let peer_ip =
        tx.connection.as_ref().and_then(|c| c.get_remote_addr()).and_then(|a| a.get_socketaddr().ok()).map(|a| a.ip());
    if let Some(ip) = peer_ip {
        if !core.take_peer_slot(ip) {
            let mut h = vec![Header::RetryAfter("30".to_string().into())];
            h.push(content_type("text/plain"));
            reply(&core, &mut tx, StatusCode::ServiceUnavailable, h).await;
            return;
        }
    }
    let session = match core.config.session_timer.map(|t| session_timer::for_incoming(&tx.original, &t)) {
        Some(Err(min_se)) => {
            // RFC 4028 §8.1: the interval asked for is below our minimum.
            if let Some(ip) = peer_ip {
                core.release_peer_slot(ip);
            }
            let h = vec![Header::MinSE(min_se.to_string().into())];
            reply(&core, &mut tx, StatusCode::SessionIntervalTooSmall, h).await;
            return;
        }
        Some(Ok(agreed)) => agreed,
        None => None,
    };
    // RFC 3891 §3: a Replaces naming no dialog of ours is 481.
    let replaces = match tx.original.header_value("Replaces") {
        None => None,
        Some(value) => match ReplacesTarget::parse(&value).filter(|r| {
            let id =
                DialogId { call_id: r.call_id.clone(), local_tag: r.to_tag.clone(), remote_tag: r.from_tag.clone() };
            core.dialogs.get_dialog(&id).is_some()
        }) {
            Some(r) => Some(r.call_id),
            None => {
                if let Some(ip) = peer_ip {
                    core.release_peer_slot(ip);
                }
                reply(&core, &mut tx, StatusCode::CallTransactionDoesNotExist, vec![]).await;
                return;
            }
        },
    };
    let transport = tx.connection.as_ref().map(|c| Transport::from_rsip(c.transport())).unwrap_or(Transport::Udp);
    let contact = match core.contact(tx.original.uri.user(), transport) {
        Ok(c) => c,
        Err(e) => {
            warn!(error = %e, "no contact for incoming call");
            return;
        }
    };
    let (state_tx, state_rx) = mpsc::unbounded_channel();
    // In-dialog requests we send (BYE, re-INVITE...) may be challenged by
    // the proxy: answered with the called account's credentials.
    let credential = core.credential_for(tx.original.uri.user());
    let dialog = match core.dialogs.get_or_create_server_invite(&tx, state_tx, credential, Some(contact)) {
        Ok(d) => d,
        Err(e) => {
            warn!(error = %e, "creating server dialog");
            if let Some(ip) = peer_ip {
                core.release_peer_slot(ip);
            }
            reply(&core, &mut tx, StatusCode::ServerInternalError, vec![]).await;
            return;
        }
    };
    let sdp_offer = body_text(&tx.original.body);
    let call_id = tx.original.call_id_header().map(|c| c.value().to_string()).unwrap_or_default();
    let (inner, ev_rx) =
        CallInner::new(&core, call_id, Direction::Incoming, Some(dialog.clone()), Some(&tx.original), peer_ip);
    *inner.session_offered.lock().unwrap() = session;
    tokio::spawn(pump(inner.clone(), state_rx));
    let (display_name, from) = from_parts(&tx.original);
    let to = to_uri(&tx.original);
    let event = IncomingCall {
        call: Call { inner: inner.clone(), events: ev_rx },
        from,
        display_name,
        to,
        request_uri: tx.original.uri.to_string(),
        sdp_offer,
        headers: header_pairs(&tx.original),
        replaces,
    };
    if events.send(UaEvent::IncomingCall(event)).is_err() {
        let _ = dialog.reject(Some(StatusCode::TemporarilyUnavailable), None);
    }
    // Unanswered calls do not ring forever.
    let ring = core.config.ring_timeout;
    let watchdog = {
        let inner = inner.clone();
        let dialog = dialog.clone();
        tokio::spawn(async move {
            tokio::time::sleep(ring).await;
            if !inner.established.load(Ordering::SeqCst) && !inner.ended.load(Ordering::SeqCst) {
                let _ = dialog.reject(Some(StatusCode::TemporarilyUnavailable), None);
                inner.emit(CallEvent::Ended { by: Party::Local, reason: "no answer".into() });
            }
        })
    };
    let mut d = dialog;
    if let Err(e) = d.handle(&mut tx).await {
        debug!(error = %e, "INVITE transaction");
    }
    watchdog.abort();
}

#[cfg(test)]
mod tests {
    fn invite(contact: &str) -> String {
        format!(
            "INVITE sip:bob@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKc1\r\nMax-Forwards: 70\r\nFrom: <sip:alice@127.0.0.1>;tag=a1\r\nTo: <sip:bob@127.0.0.1>\r\nCall-ID: contact-1@127.0.0.1\r\nCSeq: 1 INVITE\r\n{contact}Content-Length: 0\r\n\r\n"
        )
    }

    #[test]
    fn invites_without_a_usable_contact_get_400() {
        use super::{disposition, Disposition};
        let decide = |contact: &str| {
            disposition(&rsipstack::sip::Request::try_from(invite(contact).as_str()).expect("a request"))
        };
        let bad_contact = Disposition::Refuse(400, "Missing or Malformed Contact".into());
        assert_eq!(decide("Contact: <sip:alice@127.0.0.1:5070>\r\n"), Disposition::NewCall);
        assert_eq!(decide(""), bad_contact);
        for bad in ["*", "<:::>", "garbage", "<tel:123>", "\"x\" <sip:a@b"] {
            assert_eq!(decide(&format!("Contact: {bad}\r\n")), bad_contact, "{bad}");
        }
    }
}
