//! The door every incoming message passes: a per-peer rate limit with a
//! bounded table, then [`crate::validate::screen`]. UDP is screened on the
//! raw datagram (a socket wrapper handed to rsipstack), stream transports on
//! each framed message (a transport-event inspector), so nothing reaches the
//! transaction layer unchecked and nothing malformed goes unanswered when an
//! answer is possible.

use crate::traffic::Traffic;
use crate::validate::{screen, Framing, Screening};
use rsipstack::transport::{SipConnection, TransportEvent};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tracing::{debug, info};

/// Shared limits and counters.
pub(crate) struct Guard {
    pub max_message_size: usize,
    pub user_agent: String,
    rate: u32,
    max_peers: usize,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
    /// Counters for tests and logs: (accepted, answered, dropped).
    pub stats: Mutex<(u64, u64, u64)>,
    pub traffic: Traffic,
}

struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Guard {
    pub fn new(max_message_size: usize, user_agent: String, rate: u32, max_peers: usize) -> Self {
        Guard {
            max_message_size,
            user_agent,
            rate: rate.max(1),
            max_peers: max_peers.max(1),
            buckets: Mutex::new(HashMap::new()),
            stats: Mutex::new((0, 0, 0)),
            traffic: Traffic::default(),
        }
    }

    /// Token bucket per remote IP. The table is bounded: when full, idle
    /// entries go first, then everything (a flood of spoofed sources must
    /// not grow memory).
    pub fn admit(&self, ip: IpAddr) -> bool {
        let now = Instant::now();
        let mut map = self.buckets.lock().unwrap();
        if !map.contains_key(&ip) && map.len() >= self.max_peers {
            map.retain(|_, b| now.duration_since(b.last).as_secs_f64() < 2.0);
            if map.len() >= self.max_peers {
                map.clear();
            }
        }
        let burst = 2.0 * self.rate as f64;
        let b = map.entry(ip).or_insert(Bucket { tokens: burst, last: now });
        b.tokens = (b.tokens + now.duration_since(b.last).as_secs_f64() * self.rate as f64).min(burst);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    fn count(&self, s: &Screening<'_>) {
        let mut st = self.stats.lock().unwrap();
        match s {
            Screening::Accept(_) => st.0 += 1,
            Screening::Reply { .. } => st.1 += 1,
            Screening::Drop(_) => st.2 += 1,
        }
    }
}

fn is_keepalive(data: &[u8]) -> bool {
    data.iter().all(|b| b.is_ascii_whitespace())
}

/// A UDP socket that only ever hands screened datagrams to rsipstack.
pub(crate) struct ScreenedUdp {
    pub sock: tokio::net::UdpSocket,
    pub guard: Arc<Guard>,
}

#[async_trait::async_trait]
impl rsipstack::platform::net::UdpSocket for ScreenedUdp {
    async fn recv_from(&self, buf: &mut [u8]) -> rsipstack::Result<(usize, SocketAddr)> {
        // Read into our own, larger buffer so an oversized datagram is seen
        // whole (and answered 513) instead of being truncated silently.
        let mut raw = vec![0u8; 65536];
        loop {
            let (n, src) = self.sock.recv_from(&mut raw).await?;
            let data = &raw[..n];
            if is_keepalive(data) {
                let len = n.min(buf.len());
                buf[..len].copy_from_slice(&data[..len]);
                return Ok((len, src));
            }
            if !self.guard.admit(src.ip()) {
                debug!(%src, "rate limit: datagram dropped");
                self.guard.stats.lock().unwrap().2 += 1;
                continue;
            }
            let limit = self.guard.max_message_size.min(buf.len());
            // A panic here would end rsipstack's receive task and leave the
            // agent deaf: contain it (the fuzz tests look for such bugs).
            let verdict =
                match std::panic::catch_unwind(|| screen(data, Framing::Datagram, limit, &self.guard.user_agent)) {
                    Ok(v) => v,
                    Err(_) => Screening::Drop("screen panicked".into()),
                };
            self.guard.count(&verdict);
            match verdict {
                Screening::Accept(bytes) => {
                    if bytes.len() > buf.len() {
                        continue;
                    }
                    self.guard.traffic.note(true, &bytes);
                    buf[..bytes.len()].copy_from_slice(&bytes);
                    return Ok((bytes.len(), src));
                }
                Screening::Reply { code, reason, response } => {
                    info!(%src, code, %reason, "rejected incoming request");
                    self.guard.traffic.note(false, &response);
                    // Symmetric: to the source, never to a third party named
                    // in an unvalidated Via.
                    let _ = self.sock.send_to(&response, src).await;
                }
                Screening::Drop(why) => info!(%src, %why, "dropped incoming datagram"),
            }
        }
    }

    /// Everything rsipstack sends over UDP passes here as bytes: the last
    /// point to take synthetic From tags (given to RFC 2543 requests on the
    /// way in) off again, so the peer sees its From as it sent it
    /// ([`crate::compat`]).
    async fn send_to(&self, buf: &[u8], addr: SocketAddr) -> rsipstack::Result<usize> {
        self.guard.traffic.note(false, buf);
        match crate::compat::strip_synthetic_tags(buf) {
            Some(plain) => {
                self.sock.send_to(&plain, addr).await?;
                // rsipstack only checks for an error; report the length
                // it asked to send.
                Ok(buf.len())
            }
            None => Ok(self.sock.send_to(buf, addr).await?),
        }
    }

    fn local_addr(&self) -> rsipstack::Result<SocketAddr> {
        Ok(self.sock.local_addr()?)
    }
}

/// Screens messages framed by stream transports (TCP, WebSocket), which
/// rsipstack parses before any hook: re-serialise, screen, re-parse.
pub(crate) struct StreamInspector {
    pub guard: Arc<Guard>,
}

#[async_trait::async_trait]
impl rsipstack::transaction::endpoint::TransportEventInspector for StreamInspector {
    async fn handle(&self, event: TransportEvent) -> Option<TransportEvent> {
        let TransportEvent::Incoming(msg, conn, from) = event else {
            return Some(event);
        };
        if matches!(conn, SipConnection::Udp(_)) {
            // Already screened on the raw datagram.
            return Some(TransportEvent::Incoming(msg, conn, from));
        }
        if let Ok(sa) = from.get_socketaddr() {
            if !self.guard.admit(sa.ip()) {
                debug!(%from, "rate limit: stream message dropped");
                return None;
            }
        }
        let bytes = msg.to_bytes();
        let verdict = match std::panic::catch_unwind(|| {
            screen(&bytes, Framing::Stream, self.guard.max_message_size, &self.guard.user_agent)
        }) {
            Ok(v) => v,
            Err(_) => Screening::Drop("screen panicked".into()),
        };
        self.guard.count(&verdict);
        match verdict {
            Screening::Accept(canon) => match rsipstack::sip::SipMessage::try_from(canon.as_ref()) {
                Ok(m) => {
                    self.guard.traffic.note(true, &canon);
                    Some(TransportEvent::Incoming(m, conn, from))
                }
                Err(e) => {
                    info!(%from, error = %e, "dropped stream message that no longer parses");
                    None
                }
            },
            Screening::Reply { code, reason, response } => {
                info!(%from, code, %reason, "rejected incoming request");
                self.guard.traffic.note(false, &response);
                if let Ok(resp) = rsipstack::sip::SipMessage::try_from(response.as_slice()) {
                    let _ = conn.send(resp, None).await;
                }
                None
            }
            Screening::Drop(why) => {
                info!(%from, %why, "dropped incoming stream message");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_and_bounded_table() {
        let g = Guard::new(1000, String::new(), 5, 3);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let admitted = (0..100).filter(|_| g.admit(ip)).count();
        assert!((10..=11).contains(&admitted), "burst is twice the rate, got {admitted}");
        for i in 0..50u8 {
            g.admit(IpAddr::from([198, 51, 100, i]));
        }
        assert!(g.buckets.lock().unwrap().len() <= 3);
    }
}
