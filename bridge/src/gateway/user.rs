//! One WebSocket connection = one web user: at most one SIP account (a
//! registration kept alive by signaling, or a guest identity with no
//! REGISTER) and its calls. Requests are dispatched here; events go out as
//! `sip.event` notifications. Secrets never reach the logs.

use super::browser::Browser;
use super::call::GwCall;
use super::errors::{codes, err, from_sip, no_call};
use super::header_prefixes::HeaderPrefixes;
use super::service::{aor_key, Gateway, WebUser};
use super::subscriptions::{notify_event, Subscriptions};
use crate::call::DtmfMethod;
use crate::protocol::gateway::{CallParams, GatewayRequest, Jsep, MessageParams, RegisterParams, SubscribeParams};
use crate::protocol::{decode, RpcError, PROTOCOL_VERSION};
use pipelines::sdp::Direction;
use pipelines::DescriptionKind;
use serde_json::{json, Value};
use signaling::{Account, Caller, IncomingCall, IncomingMessage, IncomingNotify, RegistrationEvent, SubscribeTo};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};

pub struct User {
    pub id: u64,
    gw: Arc<Gateway>,
    browser: Browser,
    state: Mutex<State>,
    /// Woken when the last call's teardown has finished.
    calls_gone: tokio::sync::Notify,
    subscriptions: Subscriptions,
}

#[derive(Default)]
struct State {
    account: Option<AccountState>,
    calls: HashMap<String, Arc<GwCall>>,
    /// Calls being set up (media legs being made), counted against the limit.
    pending: usize,
    /// The connection has closed: calls that finish setting up are hung up.
    closed: bool,
}

struct AccountState {
    caller: Caller,
    aor: String,
    guest: bool,
    /// The registrar accepted the binding: only then are incoming calls
    /// for the AOR routed here (a wrong password must not capture them).
    registered: bool,
    /// Stops the registration task (unregistering first); the reply says done.
    stop: Option<mpsc::UnboundedSender<oneshot::Sender<()>>>,
}

/// The browser's answer in a request's `jsep`.
/// The shortest `statsIntervalMs`: each event reads webrtcbin's statistics.
const MIN_STATS_INTERVAL_MS: u64 = 1000;

fn browser_answer(jsep: Jsep, method: &str) -> Result<String, RpcError> {
    match jsep.parse()? {
        (DescriptionKind::Answer, sdp) => Ok(sdp),
        _ => Err(err(codes::JSEP, format!("{method} takes the browser's answer (jsep.type \"answer\")"))),
    }
}

fn is_sip_uri(s: &str) -> bool {
    (s.starts_with("sip:") || s.starts_with("sips:")) && s.len() > 4 && !s.contains(char::is_whitespace)
}

/// A header name we pass on: a token, and none the stack must own.
fn check_headers(headers: Option<HashMap<String, String>>) -> Result<Vec<(String, String)>, RpcError> {
    const RESERVED: &[&str] = &[
        "via",
        "from",
        "to",
        "call-id",
        "cseq",
        "contact",
        "content-length",
        "content-type",
        "max-forwards",
        "route",
        "record-route",
        // Compact forms (RFC 3261 §7.3.3) of the above.
        "v",
        "f",
        "t",
        "i",
        "m",
        "l",
        "c",
    ];
    let mut out = Vec::new();
    for (name, value) in headers.unwrap_or_default() {
        let token = !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b));
        if !token {
            return Err(RpcError::invalid_params(format!(
                "header {name:?} is not a valid header name (letters, digits, -.!%*_+`'~)"
            )));
        }
        if RESERVED.contains(&name.to_ascii_lowercase().as_str()) {
            return Err(RpcError::invalid_params(format!(
                "header {name:?} cannot be set: the SIP user agent writes it itself"
            )));
        }
        if value.contains(['\r', '\n']) {
            return Err(RpcError::invalid_params(format!("header {name:?} has a line break in its value")));
        }
        out.push((name, value));
    }
    Ok(out)
}

impl User {
    pub fn new(gw: Arc<Gateway>, out: mpsc::UnboundedSender<String>) -> Arc<User> {
        let id = gw.next_id();
        Arc::new_cyclic(|me: &std::sync::Weak<User>| {
            let me = me.clone();
            let call_ended = Arc::new(move |call: &str| {
                if let Some(user) = me.upgrade() {
                    let mut st = user.state.lock().unwrap();
                    st.calls.remove(call);
                    if st.calls.is_empty() {
                        user.calls_gone.notify_waiters();
                    }
                }
            });
            let browser = Browser::new(id, out, call_ended);
            User {
                id,
                gw,
                browser,
                state: Mutex::default(),
                calls_gone: tokio::sync::Notify::new(),
                subscriptions: Subscriptions::default(),
            }
        })
    }

    /// Sends a `sip.event` notification to the browser.
    fn emit(&self, event: &str, params: Value) {
        self.browser.emit(event, params)
    }

    fn call(&self, id: &str) -> Result<Arc<GwCall>, RpcError> {
        self.state.lock().unwrap().calls.get(id).cloned().ok_or_else(|| no_call(id))
    }

    fn caller(&self) -> Result<Caller, RpcError> {
        let st = self.state.lock().unwrap();
        st.account.as_ref().map(|a| a.caller.clone()).ok_or_else(|| {
            err(codes::NOT_REGISTERED, "register first (sip.register, or with guest: true for calls without REGISTER)")
        })
    }

    /// Reserves a call slot; `false` when the connection is at its limit.
    /// A call whose SIP side has ended no longer holds its slot while its
    /// teardown finishes: a phone redialing the moment it got our 486 is
    /// not told busy by the call it was just refused on.
    fn reserve_call(&self) -> bool {
        let mut st = self.state.lock().unwrap();
        let live = st.calls.values().filter(|c| !c.is_ended()).count();
        if live + st.pending >= self.gw.config.max_calls_per_connection {
            return false;
        }
        st.pending += 1;
        true
    }

    fn finish_reservation(&self, call: Option<Arc<GwCall>>) {
        let mut st = self.state.lock().unwrap();
        st.pending -= 1;
        if let Some(c) = call {
            if st.closed {
                tokio::spawn(async move {
                    let _ = c.hangup(&[]).await;
                });
            } else if !c.is_ended() {
                st.calls.insert(c.id.clone(), c);
            }
        }
    }

    pub async fn request(self: &Arc<Self>, method: &str, p: Value) -> Result<Value, RpcError> {
        use GatewayRequest as G;
        let docs = "the Gateway section of docs/protocol.md";
        match decode(method, p, GatewayRequest::METHODS, docs)? {
            G::Version(_) => Ok(json!({ "protocol": PROTOCOL_VERSION, "version": env!("CARGO_PKG_VERSION") })),
            G::Register(p) => self.register(p),
            G::Unregister(_) => self.unregister().await,
            G::Call(p) => self.place_call(p).await,
            G::Progress(p) => {
                let answer = browser_answer(p.jsep, "sip.progress")?;
                self.call(&p.call)?.progress(answer).await?;
                Ok(json!({}))
            }
            G::Accept(p) => {
                let answer = p.jsep.map(|j| browser_answer(j, "sip.accept")).transpose()?;
                let headers = check_headers(p.headers)?;
                self.call(&p.call)?.accept(answer, p.dtmf_method, &headers).await?;
                Ok(json!({}))
            }
            G::Decline(p) => {
                let headers = check_headers(p.headers)?;
                self.call(&p.call)?.decline(p.code.unwrap_or(486), &headers).await?;
                Ok(json!({}))
            }
            G::Hangup(p) => {
                let headers = check_headers(p.headers)?;
                self.call(&p.call)?.hangup(&headers).await?;
                Ok(json!({}))
            }
            G::Hold(p) => {
                let direction = match p.direction.as_deref() {
                    None | Some("sendonly") => Direction::SendOnly,
                    Some("inactive") => Direction::Inactive,
                    Some(other) => {
                        return Err(RpcError::invalid_params(format!(
                            "direction must be \"sendonly\" or \"inactive\", not {other:?}"
                        )))
                    }
                };
                self.call(&p.call)?.set_hold(Some(direction)).await
            }
            G::Unhold(p) => self.call(&p.call)?.set_hold(None).await,
            G::Update(p) => {
                let jsep = p.jsep.map(Jsep::parse).transpose()?;
                self.call(&p.call)?.update(jsep).await
            }
            G::Trickle(p) => {
                self.call(&p.call)?.trickle(p.candidate.unwrap_or_default(), p.sdp_m_line_index.unwrap_or(0)).await?;
                Ok(json!({}))
            }
            G::Dtmf(p) => {
                let duration = p.duration.unwrap_or(100).clamp(40, 2000);
                self.call(&p.call)?.dtmf(p.tones, p.method, duration).await?;
                Ok(json!({}))
            }
            G::Info(p) => {
                if p.content_type.contains(['\r', '\n']) {
                    return Err(RpcError::invalid_params("contentType has a line break"));
                }
                self.call(&p.call)?.info(&p.content_type, &p.content).await?;
                Ok(json!({}))
            }
            G::Message(p) => self.message(p).await,
            G::Transfer(p) => {
                let call = self.call(&p.call)?;
                match (p.target, p.replaces) {
                    (Some(target), None) if is_sip_uri(&target) => call.transfer_to(&target).await?,
                    (None, Some(other)) if other != p.call => {
                        let other = self.call(&other)?;
                        call.transfer_replacing(&other).await?
                    }
                    _ => {
                        return Err(RpcError::invalid_params(
                            "give either target (a SIP URI) or replaces (the id of another call of this connection)",
                        ))
                    }
                }
                Ok(json!({}))
            }
            G::AnswerTransfer(p) => {
                self.call(&p.call)?.answer_transfer(p.accept).await?;
                Ok(json!({}))
            }
            G::Recording(p) => {
                let start = match p.action.as_str() {
                    "start" => true,
                    "stop" => false,
                    other => {
                        return Err(RpcError::invalid_params(format!(
                            "action must be \"start\" or \"stop\", not {other:?}"
                        )))
                    }
                };
                self.call(&p.call)?.recording(start, p.peer.unwrap_or(true), p.user.unwrap_or(true), p.filename).await
            }
            G::Calls(_) => {
                let st = self.state.lock().unwrap();
                Ok(json!({ "calls": st.calls.values().map(|c| c.summary()).collect::<Vec<_>>() }))
            }
            G::Stats(p) => self.call(&p.call)?.stats().await,
            G::Subscribe(p) => self.subscribe(p),
            G::Unsubscribe(p) => {
                self.subscriptions.stop(&p.event).await?;
                Ok(json!({}))
            }
        }
    }

    fn register(self: &Arc<Self>, p: RegisterParams) -> Result<Value, RpcError> {
        if !is_sip_uri(&p.username) {
            return Err(RpcError::invalid_params(format!(
                "username must be a SIP URI like sip:alice@example.com, not {:?}",
                p.username
            )));
        }
        let headers = check_headers(p.headers.clone())?;
        let prefixes = HeaderPrefixes::parse(p.incoming_header_prefixes.clone())?;
        let stats_interval = match p.stats_interval_ms {
            Some(ms) if ms < MIN_STATS_INTERVAL_MS => {
                return Err(RpcError::invalid_params(format!(
                    "statsIntervalMs must be at least {MIN_STATS_INTERVAL_MS}, not {ms}"
                )))
            }
            ms => ms.map(std::time::Duration::from_millis),
        };
        let mut st = self.state.lock().unwrap();
        if st.account.is_some() {
            return Err(err(
                codes::ALREADY_REGISTERED,
                "an account is already registered on this connection; sip.unregister first",
            ));
        }
        if p.guest {
            self.browser.set_header_prefixes(prefixes);
            self.browser.set_stats_interval(stats_interval);
            st.account = Some(AccountState {
                caller: Caller::Guest { uri: p.username.clone(), display_name: p.display_name.clone() },
                aor: p.username.clone(),
                guest: true,
                registered: false,
                stop: None,
            });
            drop(st);
            self.emit("registered", json!({ "username": p.username, "guest": true }));
            return Ok(json!({ "guest": true }));
        }
        let mut proxy = p.outbound_proxy.or(p.proxy);
        if let Some(t) = p.transport.as_deref() {
            let t = t.to_ascii_lowercase();
            if !matches!(t.as_str(), "udp" | "tcp" | "ws" | "tls" | "wss") {
                return Err(RpcError::invalid_params(format!("transport must be udp, tcp, ws, tls or wss, not {t:?}")));
            }
            let base = proxy.clone().unwrap_or_else(|| {
                let domain = aor_key(&p.username).map(|k| k.1).unwrap_or_default();
                format!("sip:{domain}")
            });
            proxy = Some(if base.contains(";transport=") { base } else { format!("{base};transport={t}") });
        }
        if let Some(px) = &proxy {
            if !is_sip_uri(px) {
                return Err(RpcError::invalid_params(format!(
                    "proxy must be a SIP URI like sip:pbx.example.com:5060, not {px:?}"
                )));
            }
        }
        let mut account = match (p.secret, p.ha1_secret) {
            (Some(_), Some(_)) => return Err(RpcError::invalid_params("give secret or ha1Secret, not both")),
            (Some(secret), None) if !secret.contains('\0') => Account::new(p.username.clone(), secret),
            (Some(_), None) => return Err(RpcError::invalid_params("secret must not contain NUL")),
            (None, Some(ha1)) if matches!(ha1.len(), 32 | 64) && ha1.bytes().all(|b| b.is_ascii_hexdigit()) => {
                Account::with_ha1(p.username.clone(), ha1)
            }
            (None, Some(_)) => {
                return Err(RpcError::invalid_params(
                    "ha1Secret must be the hex digest H(user:realm:password): 32 (MD5) or 64 (SHA-256) hex digits",
                ))
            }
            (None, None) => return Err(RpcError::invalid_params("secret (or ha1Secret) is required, or guest: true")),
        };
        account.display_name = p.display_name;
        account.auth_username = p.auth_user;
        account.proxy = proxy;
        account.headers = headers;
        if let Some(e) = p.expires {
            account.expires = e.clamp(60, 86_400);
        }
        let registration = self.gw.calls.ua.register(account.clone()).map_err(from_sip)?;
        let (stop_tx, stop_rx) = mpsc::unbounded_channel();
        st.account = Some(AccountState {
            caller: Caller::Account(account),
            aor: p.username.clone(),
            guest: false,
            registered: false,
            stop: Some(stop_tx),
        });
        drop(st);
        self.browser.set_header_prefixes(prefixes);
        self.browser.set_stats_interval(stats_interval);
        tracing::info!(user = self.id, aor = %p.username, "registering");
        self.emit("registering", json!({ "username": p.username }));
        tokio::spawn(self.clone().keep_registered(registration, stop_rx, p.username));
        Ok(json!({}))
    }

    /// Forwards registration events; a failure ends the registration (the
    /// user may register again, e.g. with the right password).
    async fn keep_registered(
        self: Arc<Self>,
        mut reg: signaling::Registration,
        mut stop: mpsc::UnboundedReceiver<oneshot::Sender<()>>,
        username: String,
    ) {
        loop {
            tokio::select! {
                ev = reg.next_event() => match ev {
                    Some(RegistrationEvent::Registered { expires }) => {
                        tracing::info!(user = self.id, aor = %username, expires, "registered");
                        self.gw.calls.ops.metrics.registration(&username, Some("registered"));
                        if let Some(a) = self.state.lock().unwrap().account.as_mut() {
                            a.registered = true;
                        }
                        self.emit("registered", json!({ "username": username, "expires": expires }));
                    }
                    Some(RegistrationEvent::RegistrationFailed { code, reason }) => {
                        tracing::info!(user = self.id, aor = %username, code, %reason, "registration failed");
                        self.gw.calls.ops.metrics.registration(&username, None);
                        self.clear_account();
                        self.emit("registration_failed", json!({ "username": username, "code": code, "reason": reason }));
                        return;
                    }
                    Some(RegistrationEvent::Unregistered) => {}
                    None => return,
                },
                done = stop.recv() => {
                    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), async {
                        if reg.unregister().await.is_ok() {
                            while let Some(ev) = reg.next_event().await {
                                if matches!(ev, RegistrationEvent::Unregistered | RegistrationEvent::RegistrationFailed { .. }) {
                                    break;
                                }
                            }
                        }
                    })
                    .await;
                    self.gw.calls.ops.metrics.registration(&username, None);
                    self.emit("unregistered", json!({ "username": username }));
                    if let Some(done) = done {
                        let _ = done.send(());
                    }
                    return;
                }
            }
        }
    }

    fn clear_account(&self) {
        self.state.lock().unwrap().account = None;
    }

    /// `sip.subscribe`: SUBSCRIBE with the account's credentials (to its
    /// own AOR unless `to` says otherwise).
    fn subscribe(&self, p: SubscribeParams) -> Result<Value, RpcError> {
        let token =
            |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b));
        if !token(&p.event) {
            return Err(RpcError::invalid_params(format!(
                "event must be an event package name like \"message-summary\", not {:?}",
                p.event
            )));
        }
        if p.accept.as_deref().is_some_and(|a| a.contains(['\r', '\n'])) {
            return Err(RpcError::invalid_params("accept has a line break"));
        }
        for uri in [&p.to, &p.proxy].into_iter().flatten() {
            if !is_sip_uri(uri) {
                return Err(RpcError::invalid_params(format!("to and proxy must be SIP URIs, not {uri:?}")));
            }
        }
        let mut account = match self.caller()? {
            Caller::Account(a) => a,
            Caller::Guest { .. } => {
                return Err(err(codes::NOT_REGISTERED, "a guest cannot subscribe: sip.register with a secret first"))
            }
        };
        if p.proxy.is_some() {
            account.proxy = p.proxy;
        }
        let what = SubscribeTo {
            event: p.event,
            accept: p.accept,
            target: p.to,
            expires: p.expires.unwrap_or(3600).clamp(60, 86_400),
        };
        self.subscriptions.start(&self.gw.calls.ua, account, what, self.browser.clone())?;
        Ok(json!({}))
    }

    async fn unregister(&self) -> Result<Value, RpcError> {
        self.subscriptions.stop_all().await;
        let account = self.state.lock().unwrap().account.take();
        let account =
            account.ok_or_else(|| err(codes::NOT_REGISTERED, "no account is registered on this connection"))?;
        match account.stop {
            Some(stop) => {
                let (tx, rx) = oneshot::channel();
                if stop.send(tx).is_ok() {
                    let _ = rx.await;
                }
            }
            None => self.emit("unregistered", json!({ "username": account.aor })),
        }
        Ok(json!({}))
    }

    async fn place_call(self: &Arc<Self>, p: CallParams) -> Result<Value, RpcError> {
        if !is_sip_uri(&p.uri) {
            return Err(RpcError::invalid_params(format!(
                "uri must be a SIP URI like sip:bob@example.com, not {:?}",
                p.uri
            )));
        }
        let headers = check_headers(p.headers)?;
        let offer = match p.jsep.map(Jsep::parse).transpose()? {
            Some((DescriptionKind::Offer, sdp)) => Some(sdp),
            Some(_) => {
                return Err(err(codes::JSEP, "sip.call takes the browser's offer (jsep.type \"offer\"), or no jsep"))
            }
            None => None,
        };
        let caller = self.caller()?;
        if !self.reserve_call() {
            return Err(err(
                codes::TOO_MANY_CALLS,
                format!("this connection already has {} call(s), its limit", self.gw.config.max_calls_per_connection),
            ));
        }
        let id = format!("c{}", self.gw.next_id());
        tracing::info!(user = self.id, call = %id, uri = %p.uri, "calling");
        let result = GwCall::outgoing(
            &self.gw.calls,
            self.browser.clone(),
            self.gw.config.recordings_dir.clone(),
            id.clone(),
            caller,
            &p.uri,
            &headers,
            offer,
            p.dtmf_method.unwrap_or(DtmfMethod::Rfc4733),
        )
        .await;
        match result {
            Ok((call, jsep)) => {
                self.finish_reservation(Some(call));
                self.emit("calling", json!({ "call": id, "uri": p.uri }));
                Ok(json!({ "call": id, "jsep": jsep }))
            }
            Err(e) => {
                self.finish_reservation(None);
                Err(e)
            }
        }
    }

    async fn message(&self, p: MessageParams) -> Result<Value, RpcError> {
        let content_type = p.content_type.unwrap_or_else(|| "text/plain".into());
        if content_type.contains(['\r', '\n']) {
            return Err(RpcError::invalid_params("contentType has a line break"));
        }
        match (p.call, p.uri) {
            (Some(call), None) => self.call(&call)?.message(&content_type, &p.content).await?,
            (None, Some(uri)) => {
                if !is_sip_uri(&uri) {
                    return Err(RpcError::invalid_params(format!("uri must be a SIP URI, not {uri:?}")));
                }
                let caller = self.caller()?;
                self.gw.calls.ua.message(&caller, &uri, &content_type, &p.content).await.map_err(from_sip)?;
            }
            _ => return Err(RpcError::invalid_params("give either call (inside a call) or uri (outside), not both")),
        }
        Ok(json!({}))
    }

    /// An INVITE routed to this user.
    fn take_call(self: &Arc<Self>, inc: IncomingCall) {
        let caller = inc.from.clone();
        let display = inc.display_name.clone();
        // The INVITE's fields the user chose (incomingHeaderPrefixes), as Janus does.
        let headers = self.browser.pick_headers(&inc.headers);
        if !self.reserve_call() {
            tracing::info!(user = self.id, from = %caller, "busy: 486");
            let _ = inc.call.reject(486, None);
            self.emit("missed_call", json!({ "caller": caller, "displayName": display }));
            return;
        }
        let me = self.clone();
        tokio::spawn(async move {
            let id = format!("c{}", me.gw.next_id());
            let dir = me.gw.config.recordings_dir.clone();
            match GwCall::incoming(&me.gw.calls, me.browser.clone(), dir, id.clone(), inc).await {
                Ok((call, jsep)) => {
                    me.finish_reservation(Some(call));
                    tracing::info!(user = me.id, call = %id, from = %caller, "incoming call");
                    me.emit("incomingcall", json!({ "call": id, "caller": caller, "displayName": display, "headers": headers, "jsep": jsep }));
                }
                Err(e) => {
                    me.finish_reservation(None);
                    tracing::warn!(user = me.id, from = %caller, error = %e.message, "incoming call refused");
                    me.emit("missed_call", json!({ "caller": caller, "displayName": display, "reason": e.message }));
                }
            }
        });
    }

    /// The connection closed: hang up every call, unregister.
    pub async fn shutdown(&self) {
        let calls: Vec<Arc<GwCall>> = {
            let mut st = self.state.lock().unwrap();
            st.closed = true;
            st.calls.values().cloned().collect()
        };
        for call in calls {
            let _ = call.hangup(&[]).await;
        }
        // Each call's `hangup` event reaches the browser before we go on.
        let torn_down = async {
            loop {
                let gone = self.calls_gone.notified();
                if self.state.lock().unwrap().calls.is_empty() {
                    break;
                }
                gone.await;
            }
        };
        if tokio::time::timeout(std::time::Duration::from_secs(3), torn_down).await.is_err() {
            tracing::warn!(user = self.id, "calls still tearing down");
        }
        self.subscriptions.stop_all().await;
        if self.state.lock().unwrap().account.is_some() {
            let _ = self.unregister().await;
        }
    }
}

impl WebUser for User {
    fn id(&self) -> u64 {
        self.id
    }

    fn aor_key(&self) -> Option<(String, String)> {
        let st = self.state.lock().unwrap();
        st.account.as_ref().filter(|a| a.registered && !a.guest).and_then(|a| aor_key(&a.aor))
    }

    fn incoming_call(self: Arc<Self>, incoming: IncomingCall) {
        self.take_call(incoming)
    }

    fn incoming_message(&self, m: IncomingMessage) {
        self.emit("message", json!({ "sender": m.from, "contentType": m.content_type, "content": m.body }));
    }

    fn incoming_notify(&self, n: IncomingNotify) {
        self.emit("notify", notify_event(n.notification, true));
    }

    fn shut_down(self: Arc<Self>) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(async move { self.shutdown().await })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_headers_are_refused() {
        let ok = check_headers(Some(HashMap::from([("X-Tag".to_string(), "1".to_string())]))).unwrap();
        assert_eq!(ok, vec![("X-Tag".to_string(), "1".to_string())]);
        assert!(check_headers(Some(HashMap::from([("Via".to_string(), "x".to_string())]))).is_err());
        assert!(check_headers(Some(HashMap::from([("X-A".to_string(), "a\r\nB: c".to_string())]))).is_err());
    }

    #[test]
    fn register_params_are_strict() {
        let p = decode::<GatewayRequest>(
            "sip.register",
            json!({"username": "sip:a@b", "secrett": "x"}),
            GatewayRequest::METHODS,
            "docs",
        );
        assert!(p.is_err(), "unknown fields are refused");
    }
}
