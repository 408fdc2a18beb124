//! HTTPS and WSS on the gateway's port (rustls). The certificate chain and
//! key are read from PEM files at start and again on [`Certificate::reload`]
//! (SIGHUP): the new pair is swapped in atomically for the handshakes that
//! follow, while connections already up keep the session they have, so no
//! call drops. A pair that does not load leaves the old one in place.

use anyhow::{anyhow, Context, Result};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use tokio_rustls::rustls::crypto::{ring, CryptoProvider};
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

/// The gateway's certificate, reloadable.
pub struct Certificate {
    cert_path: PathBuf,
    key_path: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
}

impl std::fmt::Debug for Certificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Certificate").field("cert_path", &self.cert_path).finish_non_exhaustive()
    }
}

impl Certificate {
    /// Reads the chain and key (both PEM); fails with the file and the
    /// reason when either does not load or they do not belong together.
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<Arc<Certificate>> {
        let current = RwLock::new(Arc::new(certified_key(cert_path, key_path)?));
        Ok(Arc::new(Certificate { cert_path: cert_path.to_owned(), key_path: key_path.to_owned(), current }))
    }

    /// Rereads the files; new handshakes get the new pair. On error the
    /// current pair stays.
    pub fn reload(&self) -> Result<()> {
        let fresh = certified_key(&self.cert_path, &self.key_path)?;
        *self.current.write().unwrap() = Arc::new(fresh);
        Ok(())
    }

    /// A TLS acceptor serving this certificate (HTTP/1.1 only: the
    /// WebSocket upgrade is an HTTP/1.1 request).
    pub fn acceptor(self: &Arc<Self>) -> Result<TlsAcceptor> {
        let mut config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TlsAcceptor::from(Arc::new(config)))
    }
}

impl ResolvesServerCert for Certificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().unwrap().clone())
    }
}

fn certified_key(cert_path: &Path, key_path: &Path) -> Result<CertifiedKey> {
    let cert_pem = std::fs::read(cert_path).with_context(|| format!("websocket.tls_cert {}", cert_path.display()))?;
    let chain = signaling::pem::certificates(&cert_pem)
        .map_err(|e| anyhow!("websocket.tls_cert {}: {e}", cert_path.display()))?;
    let key_pem = std::fs::read(key_path).with_context(|| format!("websocket.tls_key {}", key_path.display()))?;
    let key =
        signaling::pem::private_key(&key_pem).map_err(|e| anyhow!("websocket.tls_key {}: {e}", key_path.display()))?;
    let provider: CryptoProvider = ring::default_provider();
    CertifiedKey::from_der(chain, key, &provider).with_context(|| {
        format!("websocket.tls_key {} does not fit websocket.tls_cert {}", key_path.display(), cert_path.display())
    })
}
