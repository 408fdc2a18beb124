//! The admin listener: a small HTTP/1.1 server on its own address (keep it
//! on loopback or a management network: it has no authentication).
//!
//! - `GET /metrics`: Prometheus text format;
//! - `GET /healthz`: 200 while the process serves requests;
//! - `GET /readyz`: 200 when new calls are welcome, 503 while draining or
//!   at the call limit (what a load balancer's health check asks);
//! - `POST /drain`: begins draining (202), as SIGUSR1 does.

use super::{Drain, Metrics};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Largest request head read.
const MAX_HEAD: usize = 8 * 1024;

/// Why new calls are not welcome now (`None`: they are).
pub type Capacity = Box<dyn Fn() -> Option<String> + Send + Sync>;

pub struct Admin {
    pub metrics: Arc<Metrics>,
    pub drain: Arc<Drain>,
    /// The owner's own limit: the daemon's call limit, the gateway's
    /// connection limit.
    pub capacity: Capacity,
}

impl Admin {
    /// Binds `addr` and serves it on a task of its own; returns the bound
    /// address.
    pub async fn start(self: Arc<Self>, addr: SocketAddr) -> std::io::Result<SocketAddr> {
        let listener = TcpListener::bind(addr).await?;
        let bound = listener.local_addr()?;
        tracing::info!(admin = %bound, "admin listener: /metrics /healthz /readyz, POST /drain");
        tokio::spawn(async move {
            loop {
                let (stream, peer) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    // Out of descriptors, say: wait rather than spin.
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let admin = self.clone();
                tokio::spawn(async move {
                    if let Err(e) = admin.handle(stream).await {
                        tracing::debug!(%peer, error = %e, "admin connection");
                    }
                });
            }
        });
        Ok(bound)
    }

    fn readiness(&self) -> Option<String> {
        if self.drain.is_draining() {
            return Some("draining".into());
        }
        (self.capacity)()
    }

    fn route(&self, method: &str, path: &str) -> (&'static str, &'static str, String) {
        const TEXT: &str = "text/plain; charset=utf-8";
        match (method, path) {
            ("GET", "/metrics") => ("200 OK", "text/plain; version=0.0.4; charset=utf-8", self.metrics.render()),
            ("GET", "/healthz") => ("200 OK", TEXT, "ok\n".into()),
            ("GET", "/readyz") => match self.readiness() {
                None => ("200 OK", TEXT, "ready\n".into()),
                Some(why) => ("503 Service Unavailable", TEXT, format!("not ready: {why}\n")),
            },
            ("POST", "/drain") => {
                self.drain.start("POST /drain");
                ("202 Accepted", TEXT, "draining\n".into())
            }
            (_, "/metrics" | "/healthz" | "/readyz" | "/drain") => {
                ("405 Method Not Allowed", TEXT, "method not allowed\n".into())
            }
            _ => ("404 Not Found", TEXT, "not found\n".into()),
        }
    }

    async fn handle(&self, mut stream: TcpStream) -> anyhow::Result<()> {
        let head = tokio::time::timeout(Duration::from_secs(5), read_head(&mut stream)).await??;
        let mut words = head.split(' ');
        let (method, target) = (words.next().unwrap_or_default(), words.next().unwrap_or_default());
        let path = target.split('?').next().unwrap_or_default();
        let (status, content_type, body) = self.route(method, path);
        let response = format!(
            "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(response.as_bytes()).await?;
        stream.shutdown().await?;
        Ok(())
    }
}

/// The request line (the rest of the head is read and ignored; a body, as
/// `curl -X POST` sends none, is not expected).
async fn read_head(stream: &mut TcpStream) -> anyhow::Result<String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        anyhow::ensure!(buf.len() <= MAX_HEAD, "request head too large");
        let n = stream.read(&mut chunk).await?;
        anyhow::ensure!(n > 0, "closed before the request head ended");
        buf.extend_from_slice(&chunk[..n]);
    }
    let text = String::from_utf8_lossy(&buf);
    Ok(text.lines().next().unwrap_or_default().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn get(addr: SocketAddr, request: &str) -> String {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(request.as_bytes()).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn endpoints_answer_and_drain_turns_readiness_off() {
        let full = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let f = full.clone();
        let admin = Arc::new(Admin {
            metrics: Metrics::new(),
            drain: Drain::new(),
            capacity: Box::new(move || {
                f.load(std::sync::atomic::Ordering::Relaxed).then(|| "at the call limit".into())
            }),
        });
        let addr = admin.clone().start("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let metrics = get(addr, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(metrics.starts_with("HTTP/1.1 200 OK\r\n"), "{metrics}");
        assert!(metrics.contains("\r\n\r\n# HELP sipbridge_calls_active"), "{metrics}");
        assert!(metrics.contains("process_resident_memory_bytes "), "{metrics}");
        assert!(get(addr, "GET /healthz HTTP/1.1\r\n\r\n").await.starts_with("HTTP/1.1 200"));
        assert!(get(addr, "GET /readyz HTTP/1.1\r\n\r\n").await.starts_with("HTTP/1.1 200"));
        full.store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(get(addr, "GET /readyz HTTP/1.1\r\n\r\n").await.contains("503 Service Unavailable"));
        full.store(false, std::sync::atomic::Ordering::Relaxed);
        assert!(get(addr, "GET /drain HTTP/1.1\r\n\r\n").await.starts_with("HTTP/1.1 405"));
        assert!(get(addr, "GET /nope HTTP/1.1\r\n\r\n").await.starts_with("HTTP/1.1 404"));
        assert!(!admin.drain.is_draining());
        assert!(get(addr, "POST /drain HTTP/1.1\r\nContent-Length: 0\r\n\r\n").await.starts_with("HTTP/1.1 202"));
        assert!(admin.drain.is_draining());
        let ready = get(addr, "GET /readyz HTTP/1.1\r\n\r\n").await;
        assert!(ready.contains("503 Service Unavailable") && ready.ends_with("not ready: draining\n"), "{ready}");
    }
}
