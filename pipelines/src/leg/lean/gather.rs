//! A lean leg's candidates beyond its host one, from the leg's own
//! socket (or a TCP or TLS connection to the TURN server): a server-reflexive one from the STUN server (a Binding request,
//! its XOR-MAPPED-ADDRESS) and a relayed one from the TURN server (`turn.rs`),
//! whose allocation also tells the server-reflexive address when there is
//! no STUN server.
//!
//! Both are asked for when the leg is made; the first description waits
//! for their answers, at most [`GATHER_TIMEOUT`] from then, and carries
//! what came (no trickling: a server that does not answer in time costs
//! its candidate, not the call). On a LAN the wait is a round trip or two.

use super::stun::{self, Builder, Class, Message, TransactionId};
use super::turn::{FromServer, TurnClient};
use crate::leg::ice::{self, GatherServer, IceServer};
use crate::Error;
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use str0m::Candidate;

/// The longest the first description waits for the servers' answers.
const GATHER_TIMEOUT: Duration = Duration::from_millis(1000);
/// A Binding request is sent again after this, doubling.
const FIRST_RETRY: Duration = Duration::from_millis(100);
/// How often the waiting description looks whether the answers came
/// (they arrive on a socket thread).
const POLL: Duration = Duration::from_millis(1);

pub(super) struct Gatherer {
    /// The host candidate's address, base of the others.
    base: SocketAddr,
    reflexive: Option<Reflexive>,
    turn: Option<Arc<TurnClient>>,
    started: Instant,
    /// The candidates went into a description (they are handed out once).
    handed_out: AtomicBool,
}

/// The Binding transaction with the STUN server.
struct Reflexive {
    socket: UdpSocket,
    server: SocketAddr,
    id: TransactionId,
    request: Vec<u8>,
    state: Mutex<Probe>,
}

struct Probe {
    mapped: Option<SocketAddr>,
    next_send: Instant,
    sends: u32,
}

impl Gatherer {
    /// Sends the first requests to the servers of `servers` (STUN, and TURN
    /// over UDP, TCP or TLS, trusting `turn_tls_ca` or the system's roots)
    /// from `socket`, bound at `base`.
    pub fn start(
        socket: &UdpSocket,
        base: SocketAddr,
        servers: &[IceServer],
        turn_tls_ca: Option<&Path>,
    ) -> Result<Gatherer, Error> {
        let (stun_server, turn_server) = ice::gather_servers(servers)?;
        let clone = || socket.try_clone().map_err(|e| Error::Bind(e.to_string()));
        let reflexive = match stun_server {
            Some(server) => {
                let server = resolve(&server, base)?;
                let id = stun::transaction_id();
                let request = Builder::new(stun::BINDING, Class::Request, id).finish(None);
                let socket = clone()?;
                let _ = socket.send_to(&request, server);
                let probe = Probe { mapped: None, next_send: Instant::now() + FIRST_RETRY, sends: 1 };
                Some(Reflexive { socket, server, id, request, state: Mutex::new(probe) })
            }
            None => None,
        };
        let turn = match turn_server {
            Some(server) => {
                let address = resolve(&server, base)?;
                let credentials = server.credentials.unwrap_or_default();
                Some(TurnClient::start(clone()?, &server.transport, address, credentials, turn_tls_ca))
            }
            None => None,
        };
        Ok(Gatherer { base, reflexive, turn, started: Instant::now(), handed_out: AtomicBool::new(false) })
    }

    /// The TURN client, for what str0m sends from the relayed address.
    pub fn turn(&self) -> Option<Arc<TurnClient>> {
        self.turn.clone()
    }

    /// A datagram from one of our servers (Binding response, TURN response,
    /// Data indication), or [`FromServer::NotOurs`].
    pub fn handle<'a>(&self, data: &'a [u8], source: SocketAddr) -> FromServer<'a> {
        if let Some(reflexive) = self.reflexive.as_ref().filter(|r| r.server == source) {
            if let Some(message) = Message::parse(data).filter(|m| m.id == reflexive.id) {
                if message.class == Class::Success {
                    let mapped = message.address(stun::XOR_MAPPED_ADDRESS);
                    reflexive.state.lock().unwrap().mapped = mapped;
                    tracing::debug!(server = %source, ?mapped, "lean WebRTC leg: server-reflexive address");
                }
                return FromServer::Handled;
            }
        }
        match &self.turn {
            Some(turn) if turn.server() == source => turn.handle(data),
            _ => FromServer::NotOurs,
        }
    }

    /// Sends again what is unanswered (and the TURN client's refreshes).
    pub fn tick(&self, now: Instant) {
        if let Some(reflexive) = &self.reflexive {
            let mut probe = reflexive.state.lock().unwrap();
            if probe.mapped.is_none() && probe.next_send <= now && now - self.started < GATHER_TIMEOUT {
                let _ = reflexive.socket.send_to(&reflexive.request, reflexive.server);
                probe.next_send = now + FIRST_RETRY * 2u32.pow(probe.sends);
                probe.sends += 1;
            }
        }
        if let Some(turn) = &self.turn {
            turn.tick(now);
        }
    }

    /// The server-reflexive and relayed candidates, after waiting for the
    /// servers (bounded); empty after the first call.
    pub fn candidates(&self) -> Vec<Candidate> {
        if self.handed_out.swap(true, Ordering::Relaxed) {
            return Vec::new();
        }
        let mapped = || self.reflexive.as_ref().and_then(|r| r.state.lock().unwrap().mapped);
        let reflexive = || mapped().or_else(|| self.turn.as_ref().and_then(|t| t.mapped()));
        let settled = || {
            self.reflexive.as_ref().is_none_or(|_| mapped().is_some()) && self.turn.as_ref().is_none_or(|t| t.settled())
        };
        while !settled() && self.started.elapsed() < GATHER_TIMEOUT {
            std::thread::sleep(POLL);
        }
        let mut candidates = Vec::new();
        // The same address as the host candidate (no NAT) says nothing new.
        if let Some(mapped) = reflexive().filter(|m| *m != self.base) {
            match Candidate::server_reflexive(mapped, self.base, "udp") {
                Ok(candidate) => candidates.push(candidate),
                Err(err) => tracing::warn!(%mapped, %err, "lean WebRTC leg: no server-reflexive candidate"),
            }
        }
        if let Some(relayed) = self.turn.as_ref().and_then(|t| t.relayed()) {
            match Candidate::relayed(relayed, self.base, "udp") {
                Ok(candidate) => candidates.push(candidate),
                Err(err) => tracing::warn!(%relayed, %err, "lean WebRTC leg: no relayed candidate"),
            }
        }
        if !settled() {
            tracing::warn!(?GATHER_TIMEOUT, "lean WebRTC leg: a STUN/TURN server did not answer in time");
        }
        candidates
    }

    pub fn close(&self) {
        if let Some(turn) = &self.turn {
            turn.close();
        }
    }
}

/// The server's address, of the same IP family as our socket's.
fn resolve(server: &GatherServer, base: SocketAddr) -> Result<SocketAddr, Error> {
    let found = (server.host.as_str(), server.port)
        .to_socket_addrs()
        .map_err(|e| Error::IceServer(format!("{}: {e}", server.host)))?
        .find(|a| a.is_ipv4() == base.is_ipv4());
    found.ok_or_else(|| Error::IceServer(format!("{}: no address of the media address's IP family", server.host)))
}
