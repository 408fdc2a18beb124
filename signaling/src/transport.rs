//! Listening sockets and the addresses advertised for them.
//!
//! Each configured listener becomes an rsipstack transport; UDP goes through
//! [`crate::guard::ScreenedUdp`]. The address written into Via and Contact
//! for a transport is the bound one, or the configured advertised IP with
//! the bound port: peers must be told an address they can reach.

use crate::config::{Config, Listen, Transport};
use crate::error::Error;
use crate::guard::{Guard, ScreenedUdp};
use rsipstack::transport::{
    tls::TlsListenerConnection, udp::UdpConnection, SipAddr, SipConnection, TcpListenerConnection, TransportLayer,
    WebSocketListenerConnection,
};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// The transport layer plus what each listener is known as.
pub(crate) struct Transports {
    pub layer: TransportLayer,
    /// Bound local addresses.
    pub bound: HashMap<Transport, SocketAddr>,
    /// Addresses for Via/Contact.
    pub advertised: HashMap<Transport, SocketAddr>,
}

/// Binds every listener (WSS in [`crate::wss`]). TCP and WebSocket listeners are bound by rsipstack
/// when the endpoint starts and only report failures to its log, so their
/// ports are probed (and port 0 resolved) here first.
pub(crate) async fn bind(config: &Config, guard: Arc<Guard>, cancel: &CancellationToken) -> Result<Transports, Error> {
    if config.listen.is_empty() {
        return Err(Error::Config("no listen address".into()));
    }
    let layer = TransportLayer::new(cancel.child_token());
    let mut bound = HashMap::new();
    let mut advertised = HashMap::new();
    let adv_ip: Option<IpAddr> = match &config.advertised_host {
        Some(h) => Some(h.parse().map_err(|_| Error::Config(format!("advertised_host {h:?} is not an IP address")))?),
        None => None,
    };
    for Listen { transport, addr } in &config.listen {
        if bound.contains_key(transport) {
            return Err(Error::Config(format!("two {transport:?} listeners")));
        }
        let local = match transport {
            Transport::Udp => {
                let sock = tokio::net::UdpSocket::bind(addr)
                    .await
                    .map_err(|e| Error::Transport(format!("bind UDP {addr}: {e}")))?;
                let local = sock.local_addr().map_err(|e| Error::Transport(e.to_string()))?;
                let external = adv_ip.map(|ip| SocketAddr::new(ip, local.port()));
                let screened: Arc<dyn rsipstack::platform::net::UdpSocket> =
                    Arc::new(ScreenedUdp { sock, guard: guard.clone() });
                let conn = UdpConnection::from_socket(screened, external, Some(cancel.child_token())).await?;
                layer.add_transport(SipConnection::Udp(conn));
                local
            }
            Transport::Wss => {
                let tls = config.tls.clone().unwrap_or_default();
                let (listener, local) = crate::wss::listen(*addr, adv_ip, &tls, cancel.child_token()).await?;
                layer.add_transport(SipConnection::WebSocketListener(listener));
                local
            }
            Transport::Tcp | Transport::Ws | Transport::Tls => {
                let probe = std::net::TcpListener::bind(addr)
                    .map_err(|e| Error::Transport(format!("bind {transport:?} {addr}: {e}")))?;
                let local = probe.local_addr().map_err(|e| Error::Transport(e.to_string()))?;
                drop(probe);
                let external = adv_ip.map(|ip| SocketAddr::new(ip, local.port()));
                let conn = match transport {
                    Transport::Tcp => SipConnection::TcpListener(TcpListenerConnection::new(local, external).await?),
                    Transport::Tls => {
                        let tls =
                            config.tls.as_ref().filter(|t| t.cert_pem.is_some() && t.key_pem.is_some()).ok_or_else(
                                || Error::Config("a TLS listener needs tls.cert_pem and tls.key_pem".into()),
                            )?;
                        SipConnection::TlsListener(TlsListenerConnection::new(local, external, tls.to_rsip()).await?)
                    }
                    _ => SipConnection::WebSocketListener(
                        WebSocketListenerConnection::new(local, external, false).await?,
                    ),
                };
                layer.add_transport(conn);
                local
            }
        };
        let shown = match adv_ip {
            Some(ip) => SocketAddr::new(ip, local.port()),
            None if local.ip().is_unspecified() => {
                return Err(Error::Config(format!(
                    "{transport:?} listens on {local}: set advertised_host so peers get a reachable address"
                )))
            }
            None => local,
        };
        bound.insert(*transport, local);
        advertised.insert(*transport, shown);
    }
    // Trust anchors (and our certificate) for outgoing TLS connections.
    layer.set_tls_config(config.tls.clone().unwrap_or_default().to_rsip());
    layer.set_ws_path(config.ws_path.clone());
    Ok(Transports { layer, bound, advertised })
}

/// An rsipstack address for `addr` over `transport`.
pub(crate) fn sip_addr(transport: Transport, addr: SocketAddr) -> SipAddr {
    SipAddr { r#type: Some(transport.to_rsip()), addr: addr.into() }
}

/// Opens the TLS connection a request to `target` will go over, so that a
/// server certificate we do not trust fails the request at once, with the
/// reason. rsipstack only logs a failed connection and retries it until
/// Timer B: a bare 408 after 32 s. Other transports are left to rsipstack.
pub(crate) async fn connect_tls(layer: &TransportLayer, target: &SipAddr) -> Result<(), Error> {
    if target.r#type != Some(rsipstack::sip::Transport::Tls) {
        return Ok(());
    }
    let mut target = target.clone();
    if target.addr.port.is_none() {
        target.addr.port = Some(5061.into());
    }
    layer.lookup(&target, None).await.map(|_| ()).map_err(|e| Error::Transport(format!("TLS to {}: {e}", target.addr)))
}

/// Where a request goes: its destination if set, else its Request-URI (or
/// first Route); `sips:` means TLS (RFC 3261 section 26.2.2).
pub(crate) fn request_target(req: &rsipstack::sip::Request, destination: Option<&SipAddr>) -> Option<SipAddr> {
    let mut target = match destination {
        Some(d) => d.clone(),
        None => SipAddr::try_from(&req.destination()).ok()?,
    };
    if target.r#type.is_none() && req.uri.scheme == Some(rsipstack::sip::Scheme::Sips) {
        target.r#type = Some(rsipstack::sip::Transport::Tls);
    }
    Some(target)
}
