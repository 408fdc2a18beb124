//! The user agent: owns the rsipstack endpoint and hands out registrations
//! and calls.

use crate::call::Call;
use crate::config::{Account, Config, Transport};
use crate::core::{name_addr, parse_uri, Core};
use crate::digest::NonceState;
use crate::error::Error;
use crate::guard::{Guard, StreamInspector};
use crate::outbound::{Caller, ResolvedCaller};
use crate::registration::{self, Registration};
use crate::request::{send_with_auth, Creds};
use crate::subscription::{SubscribeTo, Subscription};
use crate::ua_events::UaEvent;
use rsipstack::dialog::dialog_layer::DialogLayer;
use rsipstack::sip::{Header, Method};
use rsipstack::transaction::endpoint::EndpointOption;
use rsipstack::EndpointBuilder;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// A SIP user agent. Dropping it shuts it down.
pub struct UserAgent {
    core: Arc<Core>,
    bound: HashMap<Transport, SocketAddr>,
    events: Mutex<Option<mpsc::UnboundedReceiver<UaEvent>>>,
    _endpoint: Arc<rsipstack::transaction::Endpoint>,
}

impl std::fmt::Debug for UserAgent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "UserAgent({:?})", self.bound)
    }
}

impl UserAgent {
    /// Binds the listeners and starts the stack. Must run inside a tokio
    /// runtime.
    pub async fn start(config: Config) -> Result<UserAgent, Error> {
        let cancel = CancellationToken::new();
        let guard = Arc::new(Guard::new(
            config.max_message_size,
            config.user_agent.clone(),
            config.max_requests_per_second_per_peer,
            config.max_tracked_peers,
        ));
        let transports = crate::transport::bind(&config, guard.clone(), &cancel).await?;
        let t1 = config.t1;
        let option = EndpointOption { t1, t1x64: t1 * 64, ..Default::default() };
        let outgoing_headers = Arc::new(crate::outgoing_headers::OutgoingHeaders::default());
        let endpoint = EndpointBuilder::new()
            .with_user_agent(&config.user_agent)
            .with_transport_layer(transports.layer)
            .with_cancel_token(cancel.clone())
            .with_option(option)
            .with_transport_inspector(Box::new(StreamInspector { guard: guard.clone() }))
            .with_inspector(Box::new(crate::outgoing_headers::Inspector(outgoing_headers.clone())))
            .build();
        let incoming = endpoint.incoming_transactions()?;
        let endpoint = Arc::new(endpoint);
        let (ev_tx, ev_rx) = mpsc::unbounded_channel();
        let core = Arc::new(Core {
            endpoint: endpoint.inner.clone(),
            dialogs: Arc::new(DialogLayer::new(endpoint.inner.clone())),
            advertised: transports.advertised,
            guard,
            peer_calls: Mutex::new(HashMap::new()),
            accounts: Mutex::new(HashMap::new()),
            cancel: cancel.clone(),
            available: std::sync::atomic::AtomicBool::new(true),
            pracks: Default::default(),
            resolver: crate::resolve::Resolver::new(&config.dns_servers)?,
            outgoing_headers,
            bye_headers: Mutex::default(),
            subscriptions: Mutex::default(),
            secure: crate::secure_client::SecureConnector::new(&config, cancel.clone())?,
            config,
        });
        let ep = endpoint.clone();
        tokio::spawn(async move { ep.serve().await });
        tokio::spawn(crate::inbound::serve(core.clone(), incoming, ev_tx));
        Ok(UserAgent { core, bound: transports.bound, events: Mutex::new(Some(ev_rx)), _endpoint: endpoint })
    }

    /// The bound address of a listener (useful with port 0).
    pub fn local_addr(&self, transport: Transport) -> Option<SocketAddr> {
        self.bound.get(&transport).copied()
    }

    /// The user agent's event stream (incoming calls, messages). Can be
    /// taken once.
    pub fn take_events(&self) -> Option<mpsc::UnboundedReceiver<UaEvent>> {
        self.events.lock().unwrap().take()
    }

    /// Starts registering `account`; progress arrives on the returned
    /// handle's events. The binding is refreshed before it expires.
    pub fn register(&self, account: Account) -> Result<Registration, Error> {
        registration::start(self.core.clone(), account)
    }

    /// Subscribes `account` to an event package (e.g. `message-summary`);
    /// its NOTIFYs arrive on the returned handle's events, and it is
    /// refreshed before it expires.
    pub fn subscribe(&self, account: Account, what: SubscribeTo) -> Result<Subscription, Error> {
        crate::subscription::start(self.core.clone(), account, what)
    }

    /// Places a call to `target` (a SIP URI). `sdp_offer` is the offer;
    /// `headers` are extra header fields (name, value).
    pub fn invite(
        &self,
        caller: Caller,
        target: &str,
        sdp_offer: Option<String>,
        headers: &[(String, String)],
    ) -> Result<Call, Error> {
        crate::outbound::start(self.core.clone(), caller, target, sdp_offer, headers)
    }

    /// Sends a MESSAGE outside any call; `Ok` on a 2xx.
    pub async fn message(&self, caller: &Caller, target: &str, content_type: &str, body: &str) -> Result<(), Error> {
        self.out_of_dialog(caller, Method::Message, target, Some((content_type, body))).await
    }

    /// Sends OPTIONS (reachability check / keepalive); `Ok` on a 2xx.
    pub async fn options(&self, caller: &Caller, target: &str) -> Result<(), Error> {
        self.out_of_dialog(caller, Method::Options, target, None).await
    }

    async fn out_of_dialog(
        &self,
        caller: &Caller,
        method: Method,
        target: &str,
        body: Option<(&str, &str)>,
    ) -> Result<(), Error> {
        let core = &self.core;
        let callee = parse_uri(target)?;
        let ResolvedCaller { uri: from_uri, display_name: display, route, credentials: creds } =
            crate::outbound::resolve_caller(caller, &callee)?;
        // RFC 3263: the first server DNS names.
        let route = core.resolver.locate(&route).await?.swap_remove(0);
        let (from, _) = name_addr(&from_uri, display.as_deref());
        let to = rsipstack::sip::typed::To { display_name: None, uri: callee.clone(), params: vec![] };
        let call_id = core.new_call_id()?;
        let mut nonce = NonceState::default();
        let (resp, _) = send_with_auth(
            core,
            |cseq| {
                let mut req =
                    core.request(method, callee.clone(), route.transport, (from.clone(), to.clone()), &call_id, cseq)?;
                if let Some((ct, b)) = body {
                    req.headers.push(Header::ContentType(ct.to_string().into()));
                    req.body = b.as_bytes().to_vec();
                }
                Ok(req)
            },
            1,
            Some(&route),
            creds.as_ref().map(|(u, p)| Creds { username: u, password: p }),
            &mut nonce,
        )
        .await?;
        let code = resp.status_code.code();
        if (200..300).contains(&code) {
            Ok(())
        } else {
            Err(Error::Rejected { code, reason: crate::registration::reason(&resp) })
        }
    }

    /// Counters of the incoming-message screen: (accepted, answered with an
    /// error, dropped).
    pub fn screen_stats(&self) -> (u64, u64, u64) {
        *self.core.guard.stats.lock().unwrap()
    }

    /// Counts of SIP messages in and out, by method or status code.
    pub fn message_counts(&self) -> Vec<crate::MessageCount> {
        self.core.guard.traffic.snapshot()
    }

    /// While unavailable (draining), OPTIONS is answered 503, so a proxy's
    /// probe takes this agent out of its rotation; calls in progress go on.
    pub fn set_available(&self, available: bool) {
        self.core.available.store(available, std::sync::atomic::Ordering::Relaxed);
    }

    /// Stops all listeners and tasks.
    pub fn shutdown(&self) {
        self.core.cancel.cancel();
    }
}

impl Drop for UserAgent {
    fn drop(&mut self) {
        self.core.cancel.cancel();
    }
}
