//! SIP over secure WebSocket (RFC 7118 `wss:`) as a listener.
//!
//! rsipstack's WebSocket listener, asked to be secure, only names itself
//! `wss`: it never performs a TLS handshake. So TLS is terminated here with
//! rustls, and each connection, once handshaken, is relayed byte for byte
//! to an rsipstack WebSocket listener on a loopback port. That listener is
//! created secure, with the public address as its external one, so Via and
//! Contact say `wss` and the port peers connected to.
//!
//! Connecting out over WSS is [`crate::secure_client`]'s.

use crate::config::TlsSettings;
use crate::error::Error;
use rsipstack::transport::WebSocketListenerConnection;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

/// A client that connects and never finishes its handshake is dropped after this.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// rsipstack binds the loopback listener when its endpoint starts serving,
/// just after [`listen`] returns; an early client waits this long for it.
const INNER_READY_TIMEOUT: Duration = Duration::from_secs(5);

/// Binds `addr` for WSS and returns the rsipstack listener to add to the
/// transport layer, with the bound public address. Via and Contact carry
/// `advertised_ip` (else the bound address) with the bound port.
pub(crate) async fn listen(
    addr: SocketAddr,
    advertised_ip: Option<IpAddr>,
    tls: &TlsSettings,
    cancel: CancellationToken,
) -> Result<(WebSocketListenerConnection, SocketAddr), Error> {
    let acceptor = acceptor(tls)?;
    let public = TcpListener::bind(addr).await.map_err(|e| Error::Transport(format!("bind WSS {addr}: {e}")))?;
    let local = public.local_addr().map_err(|e| Error::Transport(e.to_string()))?;
    let inner = {
        let probe = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .map_err(|e| Error::Transport(format!("bind the WSS relay's loopback port: {e}")))?;
        probe.local_addr().map_err(|e| Error::Transport(e.to_string()))?
    };
    let external = SocketAddr::new(advertised_ip.unwrap_or(local.ip()), local.port());
    let listener = WebSocketListenerConnection::new(inner, Some(external), true).await?;
    tokio::spawn(accept_loop(public, acceptor, inner, cancel));
    Ok((listener, local))
}

/// A rustls acceptor (ring) for our certificate, offering HTTP/1.1: the
/// WebSocket upgrade is an HTTP/1.1 request.
fn acceptor(tls: &TlsSettings) -> Result<TlsAcceptor, Error> {
    let (Some(cert_pem), Some(key_pem)) = (&tls.cert_pem, &tls.key_pem) else {
        return Err(Error::Config("a WSS listener needs tls.cert_pem and tls.key_pem".into()));
    };
    let chain =
        crate::pem::certificates(cert_pem.as_bytes()).map_err(|e| Error::Config(format!("WSS certificate: {e}")))?;
    let key = crate::pem::private_key(key_pem.as_bytes()).map_err(|e| Error::Config(format!("WSS key: {e}")))?;
    let mut config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(chain, key))
        .map_err(|e| Error::Config(format!("WSS certificate and key: {e}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

async fn accept_loop(public: TcpListener, acceptor: TlsAcceptor, inner: SocketAddr, cancel: CancellationToken) {
    loop {
        let (tcp, peer) = tokio::select! {
            _ = cancel.cancelled() => return,
            accepted = public.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(%e, "WSS accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let (acceptor, cancel) = (acceptor.clone(), cancel.clone());
        tokio::spawn(async move {
            tokio::select! {
                _ = cancel.cancelled() => {}
                _ = relay(tcp, peer, acceptor, inner) => {}
            }
        });
    }
}

/// Handshakes one client and relays its decrypted stream to rsipstack.
async fn relay(tcp: TcpStream, peer: SocketAddr, acceptor: TlsAcceptor, inner: SocketAddr) {
    let mut tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => return tracing::info!(%peer, %e, "WSS: TLS handshake failed"),
        Err(_) => return tracing::info!(%peer, "WSS: TLS handshake timed out"),
    };
    let Some(mut plain) = connect_inner(inner).await else {
        return tracing::warn!(%peer, %inner, "WSS: the loopback WebSocket listener does not accept");
    };
    tracing::debug!(%peer, "WSS connection relayed");
    if let Err(e) = tokio::io::copy_bidirectional(&mut tls, &mut plain).await {
        tracing::debug!(%peer, %e, "WSS connection ended");
    }
}

async fn connect_inner(inner: SocketAddr) -> Option<TcpStream> {
    let until = tokio::time::Instant::now() + INNER_READY_TIMEOUT;
    loop {
        match TcpStream::connect(inner).await {
            Ok(s) => return Some(s),
            Err(_) if tokio::time::Instant::now() < until => tokio::time::sleep(Duration::from_millis(20)).await,
            Err(_) => return None,
        }
    }
}
