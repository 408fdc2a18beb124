//! State shared by the user agent, its registrations and its calls, and the
//! helpers that build addresses and requests from it.

use crate::config::{Config, Transport};
use crate::error::Error;
use crate::guard::Guard;
use crate::transport::sip_addr;
use rsipstack::dialog::dialog_layer::DialogLayer;
use rsipstack::sip::uri::ParamsExt;
use rsipstack::sip::{typed, Header, Method, Param, Request, Uri};
use rsipstack::transaction::endpoint::EndpointInnerRef;
use rsipstack::transaction::{make_call_id, CallIdFormat};
use rsipstack::transport::SipAddr;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;

pub(crate) struct Core {
    pub config: Config,
    pub endpoint: EndpointInnerRef,
    pub dialogs: Arc<DialogLayer>,
    pub advertised: HashMap<Transport, SocketAddr>,
    pub guard: Arc<Guard>,
    pub peer_calls: Mutex<HashMap<IpAddr, usize>>,
    /// Registered accounts by AOR user part (lower case): the credentials
    /// an incoming call to that user answers in-dialog challenges with.
    pub accounts: Mutex<HashMap<String, crate::config::Account>>,
    pub cancel: CancellationToken,
    /// Off while draining: OPTIONS gets 503.
    pub available: std::sync::atomic::AtomicBool,
    /// Our reliable provisional responses waiting for their PRACK.
    pub pracks: crate::reliable::PrackWaiters,
    /// RFC 3263 server location.
    pub resolver: crate::resolve::Resolver,
    /// Headers for the rejections and CANCELs rsipstack builds itself.
    pub outgoing_headers: Arc<crate::outgoing_headers::OutgoingHeaders>,
    /// Header fields of a peer's BYE, by Call-ID, until its call's dialog
    /// reports the end (see [`crate::Call::bye_headers`]).
    pub bye_headers: Mutex<HashMap<String, Vec<(String, String)>>>,
    /// Our live subscriptions by Call-ID, where their NOTIFYs go.
    pub subscriptions: Mutex<HashMap<String, crate::notify::Sink>>,
    /// Outgoing WSS connections, and TLS ones whose certificate must carry a
    /// name (rsipstack cannot open those).
    pub secure: crate::secure_client::SecureConnector,
}

/// Parses a URI given through the API.
pub(crate) fn parse_uri(s: &str) -> Result<Uri, Error> {
    let t = s.trim();
    let t = t.strip_prefix('<').and_then(|x| x.strip_suffix('>')).unwrap_or(t);
    Uri::try_from(t).map_err(|e| Error::InvalidUri { uri: s.to_string(), reason: e.to_string() })
}

/// Route for a URI: its `transport=` parameter (UDP by default) and its
/// host and port.
pub(crate) fn route_to(uri: &Uri) -> crate::resolve::Route {
    let explicit = uri.transport().copied().map(Transport::from_rsip);
    let transport = explicit.unwrap_or(Transport::Udp);
    crate::resolve::Route {
        transport,
        explicit_transport: explicit.is_some(),
        dest: SipAddr { r#type: Some(transport.to_rsip()), addr: uri.host_with_port.clone() },
        server_name: match &uri.host_with_port.host {
            rsipstack::sip::Host::Domain(d) => Some(d.to_string()),
            rsipstack::sip::Host::IpAddr(_) => None,
        },
    }
}

impl Core {
    /// The address we show peers for `t`: its listener, or (for a client-only
    /// transport such as WS towards a proxy) the first listener's host with
    /// that transport.
    pub fn local_addr(&self, t: Transport) -> Result<SocketAddr, Error> {
        self.advertised
            .get(&t)
            .or_else(|| self.advertised.values().next())
            .copied()
            .ok_or_else(|| Error::Config("no listener".into()))
    }

    /// Our host as peers see it: the first listener's advertised address.
    pub fn host(&self) -> Result<IpAddr, Error> {
        let first = self.config.listen.first().map(|l| l.transport).unwrap_or(Transport::Udp);
        Ok(self.local_addr(first)?.ip())
    }

    /// A fresh Call-ID in our own host's name (RFC 3261 §8.1.1.4 suggests
    /// `random@host`; rsipstack's default names its authors' domain).
    pub fn new_call_id(&self) -> Result<String, Error> {
        let host = self.host()?.to_string();
        Ok(make_call_id(Some(&host), CallIdFormat::UuidWithSuffix).value().to_string())
    }

    /// Via for a request sent over `t` (with `rport`, RFC 3581).
    pub fn via(&self, t: Transport) -> Result<typed::Via, Error> {
        Ok(self.endpoint.get_via(Some(sip_addr(t, self.local_addr(t)?)), None)?)
    }

    /// Our Contact URI for `user` over `t`.
    pub fn contact(&self, user: Option<&str>, t: Transport) -> Result<Uri, Error> {
        let addr = self.local_addr(t)?;
        let mut uri = Uri {
            scheme: Some(rsipstack::sip::Scheme::Sip),
            auth: user.filter(|u| !u.is_empty()).map(|u| rsipstack::sip::Auth { user: u.to_string(), password: None }),
            host_with_port: addr.into(),
            ..Default::default()
        };
        if t != Transport::Udp {
            uri.params.push(Param::Transport(t.to_rsip()));
        }
        Ok(uri)
    }

    /// A fresh out-of-dialog request; `(from, to)` as [`name_addr`] makes them.
    pub fn request(
        &self,
        method: Method,
        uri: Uri,
        t: Transport,
        (from, to): (typed::From, typed::To),
        call_id: &str,
        cseq: u32,
    ) -> Result<Request, Error> {
        let via = self.via(t)?;
        Ok(self.endpoint.make_request(method, uri, via, from, to, cseq, Some(call_id.to_string().into())))
    }

    /// rsipstack credentials for an incoming call to `user`, from the
    /// account registered for it (see [`crate::outbound`] for why rsipstack
    /// answers in-dialog challenges and when that works).
    pub fn credential_for(&self, user: Option<&str>) -> Option<rsipstack::dialog::authenticate::Credential> {
        let user = user?.to_ascii_lowercase();
        let accounts = self.accounts.lock().unwrap();
        let a = accounts.get(&user)?;
        Some(rsipstack::dialog::authenticate::Credential {
            username: user.clone(),
            password: a.password.clone(),
            realm: None,
            auth_username: a.auth_username.clone(),
        })
    }

    /// Counts a call against its peer; `false` when the peer is at its limit.
    pub fn take_peer_slot(&self, ip: IpAddr) -> bool {
        let mut m = self.peer_calls.lock().unwrap();
        let n = m.entry(ip).or_insert(0);
        if *n >= self.config.max_calls_per_peer {
            return false;
        }
        *n += 1;
        true
    }

    /// Releases a slot taken by [`Core::take_peer_slot`].
    pub fn release_peer_slot(&self, ip: IpAddr) {
        let mut m = self.peer_calls.lock().unwrap();
        if let Some(n) = m.get_mut(&ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                m.remove(&ip);
            }
        }
    }
}

/// Extra headers from the API as rsipstack headers.
pub(crate) fn extra_headers(headers: &[(String, String)]) -> Vec<Header> {
    headers.iter().map(|(n, v)| Header::Other(n.clone(), v.clone())).collect()
}

/// A `Content-Type` header.
pub(crate) fn content_type(ct: &str) -> Header {
    Header::ContentType(ct.to_string().into())
}

/// `From`/`To` for an address-of-record.
pub(crate) fn name_addr(uri: &Uri, display: Option<&str>) -> (typed::From, typed::To) {
    (
        typed::From { display_name: display.map(str::to_string), uri: uri.clone(), params: vec![] }
            .with_tag(rsipstack::transaction::make_tag()),
        typed::To { display_name: None, uri: uri.clone(), params: vec![] },
    )
}
