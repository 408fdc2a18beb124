//! Secure client connections that rsipstack cannot open right itself,
//! opened before a request goes out so that its transport layer finds them
//! ready: every SIP over secure WebSocket one (RFC 7118 `transport=wss`),
//! and SIP over TLS to a server the URI named by host name.
//!
//! TLS: RFC 3263 location turns the name into addresses before rsipstack
//! sees the request, and rsipstack checks the certificate against what it
//! is given, the address. The name the URI gave is what the certificate
//! must carry (RFC 5922), so such a connection is made here with
//! rsipstack's own TLS connection type, told the name.
//!
//! WSS: rsipstack's own client cannot work: it calls tokio-tungstenite's
//! `connect_async`, built without any TLS feature, so every `wss://` URL
//! fails. Its WebSocket connection type holds a
//! `WebSocketStream<MaybeTlsStream<TcpStream>>`, and `MaybeTlsStream` has
//! only its plain variant in that build: a TLS stream cannot be put in it.
//! Turning on tokio-tungstenite's TLS would change what rsipstack is built
//! with (its own `connect_async` would then verify against an empty root
//! store). So, as for the listener ([`crate::wss`]), TLS runs here: we
//! connect and handshake with rustls (the configured CA or the system
//! roots, SNI = the host), pipe the decrypted bytes to one end of a
//! loopback TCP pair, run the WebSocket client handshake (subprotocol
//! `sip`) over the other end, and hand rsipstack that WebSocket as a
//! connection for the server's address. Its `lookup` then takes that
//! connection for every request to the server, and the server's requests
//! to us (calls to a registered account) arrive on it.

use crate::config::Config;
use crate::error::Error;
use futures_util::{SinkExt, StreamExt};
use rsipstack::sip::{Host, HostWithPort, Transport as RsipTransport};
use rsipstack::transport::tls::{TlsConfig, TlsConnection};
use rsipstack::transport::websocket::{WebSocketConnection, WebSocketInner};
use rsipstack::transport::{SipAddr, SipConnection, TransportLayer};
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::MaybeTlsStream;
use tokio_util::sync::CancellationToken;

/// TCP connect, TLS and WebSocket handshakes together must finish within this.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// RFC 7118 names no default port; `wss://` URLs default to HTTPS's.
const DEFAULT_PORT: u16 = 443;

/// Opens WSS and named TLS connections and remembers the live ones.
pub(crate) struct SecureConnector {
    tls: TlsConnector,
    /// rsipstack's settings for its TLS connections (CA, our certificate).
    sip_tls: TlsConfig,
    /// The upgrade request's path.
    path: String,
    /// How often a WebSocket Ping goes out.
    keepalive: Option<Duration>,
    /// Connections we opened, by the server address rsipstack looks them up
    /// under and the name its certificate was checked for (another name for
    /// the same address is checked on a connection of its own); a token is
    /// cancelled once rsipstack retires the connection.
    open: tokio::sync::Mutex<HashMap<(SipAddr, String), CancellationToken>>,
    cancel: CancellationToken,
}

impl SecureConnector {
    /// Trusts `config.tls`'s CA, else the system roots; upgrades at
    /// `config.ws_path`; everything it opens ends with `cancel`.
    pub fn new(config: &Config, cancel: CancellationToken) -> Result<SecureConnector, Error> {
        let tls = &config.tls.clone().unwrap_or_default();
        let mut roots = RootCertStore::empty();
        if let Some(pem) = tls.trust_anchors_pem() {
            let certs = crate::pem::certificates(pem.as_bytes())
                .map_err(|e| Error::Config(format!("trust anchors for WSS: {e}")))?;
            roots.add_parsable_certificates(certs);
        }
        let mut client = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Config(format!("WSS client: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        // The WebSocket upgrade is an HTTP/1.1 request.
        client.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(SecureConnector {
            tls: TlsConnector::from(Arc::new(client)),
            sip_tls: tls.to_rsip(),
            path: config.ws_path.clone(),
            keepalive: config.ws_keepalive,
            open: Default::default(),
            cancel,
        })
    }

    /// Makes sure a connection to `target` is up when it is a WSS or TLS
    /// address (other transports are left to rsipstack). Its certificate
    /// must name `server_name` (the host name `target` was located from),
    /// else the name or address `target` holds. A server whose certificate
    /// we do not trust, or that does not speak SIP over WebSocket, is an
    /// error naming the cause.
    pub async fn connect(
        &self,
        layer: &TransportLayer,
        target: &SipAddr,
        server_name: Option<&str>,
    ) -> Result<(), Error> {
        let tls = match target.r#type {
            Some(RsipTransport::Wss) => false,
            Some(RsipTransport::Tls) => true,
            _ => return Ok(()),
        };
        // rsipstack resolves a name the same way before its lookup, so the
        // connection is filed under the address it will look for.
        let key = match &target.addr.host {
            Host::Domain(_) => {
                layer.inner.domain_resolver.resolve(target).await.map_err(|e| connect_error(target, e))?
            }
            Host::IpAddr(_) => target.clone(),
        };
        let name = slot_name(target, server_name);
        let server_name = match &target.addr.host {
            Host::IpAddr(ip) if server_name.is_none() => ServerName::IpAddress((*ip).into()),
            _ => ServerName::try_from(name.clone()).map_err(|e| connect_error(target, e))?,
        };
        // One at a time: two requests racing would otherwise open two.
        let mut open = self.open.lock().await;
        let slot = (key, name);
        if open.get(&slot).is_some_and(|token| !token.is_cancelled()) {
            return Ok(());
        }
        let token = self.cancel.child_token();
        let opening = async {
            if tls {
                let config = TlsConfig { sni_hostname: Some(slot.1.clone()), ..self.sip_tls.clone() };
                TlsConnection::connect(&slot.0, Some(&config), None, Some(token.clone()))
                    .await
                    .map(SipConnection::Tls)
                    .map_err(|e| connect_error(target, e))
            } else {
                self.open_websocket(target, &slot.0, server_name, token.clone()).await.map(SipConnection::WebSocket)
            }
        };
        let opened = tokio::time::timeout(CONNECT_TIMEOUT, opening)
            .await
            .map_err(|_| connect_error(target, "no connection within 10 s"))
            .and_then(|opened| opened);
        if opened.is_err() {
            // Ends the TLS pipe of a WebSocket that got no further.
            token.cancel();
        }
        layer.add_connection(opened?);
        open.insert(slot, token);
        Ok(())
    }

    /// A token that fires when the connection [`SecureConnector::connect`]
    /// opened to `target` (an address located from `server_name`) closes;
    /// `None` when no such connection is up.
    pub async fn closed(&self, target: &SipAddr, server_name: Option<&str>) -> Option<CancellationToken> {
        let slot = (target.clone(), slot_name(target, server_name));
        self.open.lock().await.get(&slot).filter(|token| !token.is_cancelled()).cloned()
    }

    async fn open_websocket(
        &self,
        target: &SipAddr,
        key: &SipAddr,
        name: ServerName<'static>,
        token: CancellationToken,
    ) -> Result<WebSocketConnection, Error> {
        let server = SocketAddr::new(
            key.get_socketaddr().map_err(|e| connect_error(target, e))?.ip(),
            key.addr.port.map_or(DEFAULT_PORT, |p| p.value().to_owned()),
        );
        // The upgrade's Host header: the name the certificate was checked for.
        let host = match &name {
            ServerName::IpAddress(ip) => match std::net::IpAddr::from(*ip) {
                std::net::IpAddr::V6(v6) => format!("[{v6}]"),
                v4 => v4.to_string(),
            },
            other => other.to_str().into_owned(),
        };
        let tcp = TcpStream::connect(server).await.map_err(|e| connect_error(target, e))?;
        let tcp_local = tcp.local_addr().map_err(|e| connect_error(target, e))?;
        let tls = self.tls.connect(name, tcp).await.map_err(|e| connect_error(target, format!("TLS: {e}")))?;
        let (websocket_end, tls_end) = loopback_pair().await.map_err(|e| connect_error(target, e))?;
        tokio::spawn(pipe(tls, tls_end, token.clone()));

        let mut request = format!("wss://{host}:{}{}", server.port(), self.path)
            .into_client_request()
            .map_err(|e| connect_error(target, e))?;
        request.headers_mut().insert("sec-websocket-protocol", "sip".parse().expect("a valid header value"));
        let handshake = tokio_tungstenite::client_async(request, MaybeTlsStream::Plain(websocket_end)).await;
        let (websocket, response) = match handshake {
            Ok(done) => done,
            Err(e) => {
                token.cancel();
                return Err(connect_error(target, format!("WebSocket handshake: {e}")));
            }
        };
        if response.headers().get("sec-websocket-protocol").and_then(|v| v.to_str().ok()) != Some("sip") {
            token.cancel();
            return Err(connect_error(target, "the server did not accept the WebSocket subprotocol \"sip\""));
        }
        tracing::info!(server = %target.addr, local = %tcp_local, "WSS connection open");
        let (ws_sink, ws_read) = websocket.split();
        let inner = Arc::new(WebSocketInner {
            local_addr: SipAddr { r#type: Some(RsipTransport::Wss), addr: HostWithPort::from(tcp_local) },
            remote_addr: key.clone(),
            ws_sink: tokio::sync::Mutex::new(ws_sink),
            ws_read: tokio::sync::Mutex::new(Some(ws_read)),
        });
        if let Some(interval) = self.keepalive {
            tokio::spawn(keepalive(inner.clone(), interval, token.clone()));
        }
        Ok(WebSocketConnection { inner, cancel_token: Some(token) })
    }
}

/// The name a connection's certificate is checked for: the host name the
/// target was located from, else its own host.
fn slot_name(target: &SipAddr, server_name: Option<&str>) -> String {
    server_name.map_or_else(|| target.addr.host.to_string(), str::to_string)
}

fn connect_error(target: &SipAddr, e: impl std::fmt::Display) -> Error {
    let kind = if target.r#type == Some(RsipTransport::Tls) { "TLS" } else { "WSS" };
    Error::Transport(format!("{kind} to {}: {e}", target.addr))
}

/// Two ends of a TCP connection on loopback. The accepted end is checked
/// to be our own connection, not another local process's.
async fn loopback_pair() -> std::io::Result<(TcpStream, TcpStream)> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    let near = TcpStream::connect(listener.local_addr()?).await?;
    let near_addr = near.local_addr()?;
    loop {
        let (far, from) = listener.accept().await?;
        if from == near_addr {
            return Ok((near, far));
        }
    }
}

/// Pings the server every `interval` until the connection ends (see
/// [`Config::ws_keepalive`]).
async fn keepalive(connection: Arc<WebSocketInner>, interval: Duration, token: CancellationToken) {
    loop {
        tokio::select! {
            _ = token.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
        if let Err(e) = connection.ws_sink.lock().await.send(Message::Ping(Default::default())).await {
            return tracing::debug!(%e, "WSS keepalive: the connection is gone");
        }
    }
}

/// Relays the decrypted TLS stream to rsipstack's end until either side
/// closes or rsipstack retires the connection.
async fn pipe(mut tls: tokio_rustls::client::TlsStream<TcpStream>, mut plain: TcpStream, token: CancellationToken) {
    tokio::select! {
        _ = token.cancelled() => {}
        ended = tokio::io::copy_bidirectional(&mut tls, &mut plain) => {
            tracing::info!(outcome = ?ended.map(|_| "closed"), "WSS connection ended");
        }
    }
    token.cancel();
}
