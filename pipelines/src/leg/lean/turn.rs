//! A lean leg's TURN client (RFC 8656), over UDP from the leg's own
//! socket or over a TCP or TLS connection (`turn_tcp.rs`): one allocation per
//! leg, whose relayed address str0m gets as a relayed local candidate.
//!
//! - Allocate (whose answer also gives our server-reflexive address),
//!   first without credentials, then with the realm and nonce of
//!   the 401 (long-term credentials; a 438 stale nonce is answered again
//!   with the new one); Refresh before the lifetime runs out, and with a
//!   lifetime of 0 when the leg closes.
//! - A permission for each peer address str0m sends to (CreatePermission
//!   when it first does, again every 4 minutes while in use: they last 5).
//! - A channel for each peer transport address (ChannelBind, renewed with
//!   the permissions: bindings last 10 minutes): once bound, what str0m
//!   sends from the relayed address goes to the server as ChannelData (4
//!   bytes of header), and what the server relays comes back so; until
//!   then, and if the server refuses, in Send and Data indications (36).
//!
//! Over UDP, requests are sent again (100 ms, doubling) until answered,
//! from the leg's timer tick; over TCP once, given up after as long.

use super::stun::{self, Builder, Class, Message, TransactionId};
use super::turn_tcp::{TcpLink, TlsTarget};
use crate::leg::ice::TurnTransport;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The first retransmission; each next one waits twice as long.
const FIRST_RETRY: Duration = Duration::from_millis(100);
/// Sends of one request before giving up (RFC 8489's Rc is 7).
const MAX_SENDS: u32 = 7;
/// Permissions last 300 s (RFC 8656 §9); renewed ahead of that.
const PERMISSION_RENEWAL: Duration = Duration::from_secs(240);
/// Lifetime we ask for, seconds (the server may give less).
const LIFETIME: u32 = 600;
/// REQUESTED-TRANSPORT's value for UDP (protocol 17, then 3 RFFU bytes).
const UDP_TRANSPORT: u32 = 17 << 24;
/// Channel numbers a client may bind (RFC 8656 §12).
const CHANNELS: std::ops::RangeInclusive<u16> = 0x4000..=0x4FFF;

/// What a datagram from the server was.
pub(super) enum FromServer<'a> {
    /// Not a message of this client's.
    NotOurs,
    /// A response, handled here.
    Handled,
    /// What a peer sent to the relayed address.
    Data { peer: SocketAddr, data: &'a [u8] },
}

/// What peers send to the relayed address (ChannelData or Data
/// indications), for a client whose server messages are read by a thread
/// of its own (TCP, TLS) rather than by the leg.
pub(super) type DataReceiver = Box<dyn Fn(&[u8], SocketAddr) + Send + Sync>;

/// How the server is reached.
enum ServerPath {
    /// From the leg's own socket (read by the leg).
    Udp(UdpSocket),
    Tcp(Arc<TcpLink>),
}

pub(super) struct TurnClient {
    path: ServerPath,
    server: SocketAddr,
    /// Where Data indications read on the TCP connection go.
    data_receiver: OnceLock<DataReceiver>,
    username: String,
    password: String,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    relayed: Option<SocketAddr>,
    /// Our address as the server saw it (XOR-MAPPED-ADDRESS).
    mapped: Option<SocketAddr>,
    /// The allocation failed or ended: nothing more is sent.
    finished: bool,
    auth: Option<Auth>,
    pending: Vec<Request>,
    /// Peer addresses with a permission, and when it was last asked for.
    permissions: HashMap<IpAddr, Instant>,
    channels: HashMap<SocketAddr, Channel>,
    /// The channel number the next peer gets.
    next_channel: u16,
    refresh_at: Option<Instant>,
}

struct Channel {
    number: u16,
    binding: Binding,
    /// When the binding was last asked for.
    asked: Instant,
}

#[derive(PartialEq)]
enum Binding {
    Asked,
    /// The server confirmed it: ChannelData may be used.
    Bound,
    /// Indications carry on for this peer.
    Refused,
}

struct Auth {
    realm: String,
    nonce: String,
    key: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Purpose {
    Allocate,
    Refresh(u32),
    Permission(IpAddr),
    Channel(SocketAddr, u16),
}

struct Request {
    id: TransactionId,
    purpose: Purpose,
    bytes: Vec<u8>,
    next_send: Instant,
    sends: u32,
    /// The nonce it was signed with, to tell a fresh 401 from a repeated one.
    nonce: Option<String>,
}

impl TurnClient {
    /// Asks `server` for an allocation, over UDP from `socket`, or over TCP
    /// (TLS with the server's name when `transport` says so, its
    /// certificate checked against `tls_ca`, else the system's roots).
    pub fn start(
        socket: UdpSocket,
        transport: &TurnTransport,
        server: SocketAddr,
        (username, password): (String, String),
        tls_ca: Option<&Path>,
    ) -> Arc<TurnClient> {
        let client = Arc::new_cyclic(|weak: &std::sync::Weak<TurnClient>| {
            let tls = match transport {
                TurnTransport::Udp => None,
                TurnTransport::Tcp => Some(None),
                TurnTransport::Tls(name) => {
                    Some(Some(TlsTarget { name: name.clone(), ca_file: tls_ca.map(Path::to_path_buf) }))
                }
            };
            let path = if let Some(tls) = tls {
                let (on_connect, on_message) = (weak.clone(), weak.clone());
                ServerPath::Tcp(TcpLink::start(
                    server,
                    tls,
                    Box::new(move |connected| {
                        if let Some(client) = on_connect.upgrade() {
                            client.connected(connected)
                        }
                    }),
                    Box::new(move |message| on_message.upgrade().into_iter().for_each(|c| c.read_over_tcp(message))),
                ))
            } else {
                ServerPath::Udp(socket)
            };
            let data_receiver = OnceLock::new();
            TurnClient { path, server, data_receiver, username, password, state: Mutex::default() }
        });
        client.request(&mut client.state.lock().unwrap(), Purpose::Allocate);
        client
    }

    /// Where what peers sent goes when read over TCP or TLS (over UDP the
    /// leg reads it).
    pub fn set_data_receiver(&self, receiver: DataReceiver) {
        let _ = self.data_receiver.set(receiver);
    }

    fn read_over_tcp(&self, message: &[u8]) {
        if let FromServer::Data { peer, data } = self.handle(message) {
            if let Some(receiver) = self.data_receiver.get() {
                receiver(data, peer);
            }
        }
    }

    /// Sends what waited for the TCP connection, or gives up without one.
    fn connected(&self, connected: Result<(), String>) {
        let mut state = self.state.lock().unwrap();
        match connected {
            Ok(()) => state.pending.iter().for_each(|request| self.transmit(&request.bytes)),
            Err(why) => self.fail(&mut state, &format!("no connection to the server: {why}")),
        }
    }

    fn transmit(&self, message: &[u8]) {
        match &self.path {
            ServerPath::Udp(socket) => {
                let _ = socket.send_to(message, self.server);
            }
            ServerPath::Tcp(link) => link.send(message),
        }
    }

    pub fn server(&self) -> SocketAddr {
        self.server
    }

    /// The relayed address, once allocated.
    pub fn relayed(&self) -> Option<SocketAddr> {
        self.state.lock().unwrap().relayed
    }

    /// Our address as the server saw it, once allocated.
    pub fn mapped(&self) -> Option<SocketAddr> {
        self.state.lock().unwrap().mapped
    }

    /// Whether allocating is over, one way or the other.
    pub fn settled(&self) -> bool {
        let state = self.state.lock().unwrap();
        state.relayed.is_some() || state.finished
    }

    /// Sends `data` to `peer` through the relay, asking for a permission
    /// and a channel first if there are none (the first packets may be
    /// dropped by the server until the permission is granted; ICE sends
    /// its checks again).
    pub fn send(&self, data: &[u8], peer: SocketAddr) {
        let mut state = self.state.lock().unwrap();
        if state.finished || state.relayed.is_none() {
            return;
        }
        if let std::collections::hash_map::Entry::Vacant(entry) = state.permissions.entry(peer.ip()) {
            entry.insert(Instant::now());
            self.request(&mut state, Purpose::Permission(peer.ip()));
        }
        match state.channels.get(&peer) {
            Some(channel) if channel.binding == Binding::Bound => {
                return self.transmit(&channel_data(channel.number, data))
            }
            Some(_) => {}
            None => {
                let number = CHANNELS.start() + state.next_channel;
                if CHANNELS.contains(&number) {
                    state.next_channel += 1;
                    state.channels.insert(peer, Channel { number, binding: Binding::Asked, asked: Instant::now() });
                    self.request(&mut state, Purpose::Channel(peer, number));
                }
            }
        }
        let indication = Builder::new(stun::SEND, Class::Indication, stun::transaction_id())
            .address(stun::XOR_PEER_ADDRESS, peer)
            .attribute(stun::DATA_ATTRIBUTE, data)
            .finish(None);
        self.transmit(&indication);
    }

    /// A datagram from the server.
    pub fn handle<'a>(&self, data: &'a [u8]) -> FromServer<'a> {
        if let Some((number, data)) = read_channel_data(data) {
            let state = self.state.lock().unwrap();
            let peer = state.channels.iter().find(|(_, c)| c.number == number).map(|(peer, _)| *peer);
            return peer.map_or(FromServer::Handled, |peer| FromServer::Data { peer, data });
        }
        let Some(message) = Message::parse(data) else { return FromServer::NotOurs };
        if message.method == stun::DATA && message.class == Class::Indication {
            return match (message.address(stun::XOR_PEER_ADDRESS), message.attribute(stun::DATA_ATTRIBUTE)) {
                (Some(peer), Some(data)) => FromServer::Data { peer, data },
                _ => FromServer::Handled,
            };
        }
        let mut state = self.state.lock().unwrap();
        let Some(index) = state.pending.iter().position(|r| r.id == message.id) else { return FromServer::NotOurs };
        let request = state.pending.swap_remove(index);
        match message.class {
            Class::Success => self.succeeded(&mut state, request.purpose, &message),
            _ => self.refused(&mut state, request, &message),
        }
        FromServer::Handled
    }

    fn succeeded(&self, state: &mut State, purpose: Purpose, message: &Message) {
        let lifetime = Duration::from_secs(message.lifetime().unwrap_or(LIFETIME).into());
        // Refreshed a minute ahead, or halfway through a short lifetime.
        let refresh_in = lifetime.saturating_sub(Duration::from_secs(60)).max(lifetime / 2);
        match purpose {
            Purpose::Allocate => {
                let Some(relayed) = message.address(stun::XOR_RELAYED_ADDRESS) else {
                    return self.fail(state, "an allocation without a relayed address");
                };
                tracing::info!(server = %self.server, %relayed, "lean WebRTC leg: TURN allocation");
                state.relayed = Some(relayed);
                state.mapped = message.address(stun::XOR_MAPPED_ADDRESS);
                state.refresh_at = Some(Instant::now() + refresh_in);
            }
            Purpose::Refresh(0) => state.finished = true,
            Purpose::Refresh(_) => state.refresh_at = Some(Instant::now() + refresh_in),
            Purpose::Permission(_) => {}
            Purpose::Channel(peer, _) => {
                if let Some(channel) = state.channels.get_mut(&peer) {
                    channel.binding = Binding::Bound;
                }
            }
        }
    }

    fn refused(&self, state: &mut State, request: Request, message: &Message) {
        let code = message.error_code().unwrap_or_default();
        let nonce = message.text(stun::NONCE);
        // 401 (no or wrong credentials) or 438 (stale nonce): signed again
        // with the server's new nonce, once per nonce.
        if matches!(code, 401 | 438) && nonce.is_some() && nonce != request.nonce {
            let realm = message.text(stun::REALM).or_else(|| state.auth.as_ref().map(|a| a.realm.clone()));
            if let (Some(realm), Some(nonce)) = (realm, nonce) {
                let key = stun::long_term_key(&self.username, &realm, &self.password);
                state.auth = Some(Auth { realm, nonce, key });
                self.request(state, request.purpose);
                return;
            }
        }
        match request.purpose {
            Purpose::Allocate | Purpose::Refresh(_) => self.fail(state, &format!("error {code}")),
            Purpose::Permission(peer) => {
                tracing::warn!(server = %self.server, %peer, code, "lean WebRTC leg: TURN permission refused");
            }
            Purpose::Channel(peer, _) => {
                tracing::debug!(server = %self.server, %peer, code, "lean WebRTC leg: TURN channel refused");
                if let Some(channel) = state.channels.get_mut(&peer) {
                    channel.binding = Binding::Refused;
                }
            }
        }
    }

    fn fail(&self, state: &mut State, why: &str) {
        tracing::warn!(server = %self.server, why, "lean WebRTC leg: TURN allocation failed");
        state.finished = true;
        state.relayed = None;
        state.pending.clear();
    }

    /// Sends again what is unanswered, refreshes what is due.
    pub fn tick(&self, now: Instant) {
        let mut state = self.state.lock().unwrap();
        if state.finished {
            return;
        }
        let mut gave_up = None;
        for request in state.pending.iter_mut().filter(|r| r.next_send <= now) {
            if request.sends >= MAX_SENDS {
                gave_up = Some(request.purpose);
                continue;
            }
            if matches!(self.path, ServerPath::Udp(_)) {
                self.transmit(&request.bytes);
            }
            request.next_send = now + FIRST_RETRY * 2u32.pow(request.sends);
            request.sends += 1;
        }
        state.pending.retain(|r| r.sends < MAX_SENDS || r.next_send > now);
        match gave_up {
            Some(Purpose::Allocate | Purpose::Refresh(_)) => return self.fail(&mut state, "no answer"),
            Some(Purpose::Permission(peer)) => {
                state.permissions.remove(&peer);
            }
            Some(Purpose::Channel(peer, _)) => {
                state.channels.remove(&peer);
            }
            None => {}
        }
        if state.refresh_at.is_some_and(|at| at <= now) {
            state.refresh_at = None;
            self.request(&mut state, Purpose::Refresh(LIFETIME));
        }
        let stale: Vec<IpAddr> =
            state.permissions.iter().filter(|(_, at)| now - **at >= PERMISSION_RENEWAL).map(|(ip, _)| *ip).collect();
        for peer in stale {
            state.permissions.insert(peer, now);
            self.request(&mut state, Purpose::Permission(peer));
        }
        let stale: Vec<(SocketAddr, u16)> = state
            .channels
            .iter()
            .filter(|(_, c)| {
                c.binding != Binding::Refused && now.saturating_duration_since(c.asked) >= PERMISSION_RENEWAL
            })
            .map(|(peer, c)| (*peer, c.number))
            .collect();
        for (peer, number) in stale {
            if let Some(channel) = state.channels.get_mut(&peer) {
                channel.asked = now;
            }
            self.request(&mut state, Purpose::Channel(peer, number));
        }
    }

    /// Gives the allocation back (a Refresh with lifetime 0, sent once).
    pub fn close(&self) {
        let mut state = self.state.lock().unwrap();
        if state.relayed.is_some() && !state.finished {
            self.request(&mut state, Purpose::Refresh(0));
        }
        state.finished = true;
        state.pending.clear();
        if let ServerPath::Tcp(link) = &self.path {
            link.close();
        }
    }

    /// Sends a request for `purpose`, signed if the server asked for
    /// credentials, and keeps it for retransmission.
    fn request(&self, state: &mut State, purpose: Purpose) {
        let id = stun::transaction_id();
        let mut message = match purpose {
            Purpose::Allocate => Builder::new(stun::ALLOCATE, Class::Request, id)
                .u32(stun::REQUESTED_TRANSPORT, UDP_TRANSPORT)
                .u32(stun::LIFETIME, LIFETIME),
            Purpose::Refresh(lifetime) => Builder::new(stun::REFRESH, Class::Request, id).u32(stun::LIFETIME, lifetime),
            Purpose::Permission(peer) => Builder::new(stun::CREATE_PERMISSION, Class::Request, id)
                .address(stun::XOR_PEER_ADDRESS, SocketAddr::new(peer, 0)),
            Purpose::Channel(peer, number) => Builder::new(stun::CHANNEL_BIND, Class::Request, id)
                .u32(stun::CHANNEL_NUMBER, u32::from(number) << 16)
                .address(stun::XOR_PEER_ADDRESS, peer),
        };
        let auth = state.auth.as_ref();
        if let Some(auth) = auth {
            message = message
                .attribute(stun::USERNAME, self.username.as_bytes())
                .attribute(stun::REALM, auth.realm.as_bytes())
                .attribute(stun::NONCE, auth.nonce.as_bytes());
        }
        let bytes = message.finish(auth.map(|a| a.key.as_slice()));
        self.transmit(&bytes);
        let nonce = auth.map(|a| a.nonce.clone());
        state.pending.push(Request { id, purpose, bytes, next_send: Instant::now() + FIRST_RETRY, sends: 1, nonce });
    }
}

/// A ChannelData message: channel number, length, `data` padded to 4 bytes
/// (required over TCP, allowed over UDP).
fn channel_data(number: u16, data: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(4 + data.len() + 3);
    message.extend_from_slice(&number.to_be_bytes());
    message.extend_from_slice(&(data.len() as u16).to_be_bytes());
    message.extend_from_slice(data);
    message.resize(message.len().next_multiple_of(4), 0);
    message
}

/// The channel number and data of a ChannelData message.
fn read_channel_data(message: &[u8]) -> Option<(u16, &[u8])> {
    let number = u16::from_be_bytes([*message.first()?, *message.get(1)?]);
    if !CHANNELS.contains(&number) {
        return None;
    }
    let length = u16::from_be_bytes([*message.get(2)?, *message.get(3)?]) as usize;
    Some((number, message.get(4..4 + length)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The server's side of a test: a socket and what it reads.
    struct Server {
        socket: UdpSocket,
    }

    impl Server {
        fn next(&self) -> Vec<u8> {
            let mut buffer = [0u8; 1500];
            let (n, _) = self.socket.recv_from(&mut buffer).expect("a message from the client");
            buffer[..n].to_vec()
        }
    }

    fn signed_with(bytes: &[u8], key: &[u8]) -> bool {
        let message = Message::parse(bytes).unwrap();
        let Some(mac) = message.attribute(stun::MESSAGE_INTEGRITY) else { return false };
        // What a server checks: the same message, signed again under the key.
        let unsigned = &bytes[..bytes.len() - 24];
        let mut again = Builder::new(message.method, message.class, message.id);
        let mut rest = &unsigned[20..];
        while rest.len() >= 4 {
            let kind = u16::from_be_bytes([rest[0], rest[1]]);
            let len = u16::from_be_bytes([rest[2], rest[3]]) as usize;
            again = again.attribute(kind, &rest[4..4 + len]);
            rest = &rest[(4 + len).next_multiple_of(4)..];
        }
        let resigned = again.finish(Some(key));
        Message::parse(&resigned).unwrap().attribute(stun::MESSAGE_INTEGRITY) == Some(mac)
    }

    /// Allocate through a 401 and a 438 (stale nonce), then a permission
    /// and a Send indication for a new peer, a Data indication unwrapped,
    /// the refresh when due, and the allocation given back on close.
    #[test]
    fn allocates_with_long_term_credentials_and_relays_both_ways() {
        let server = Server { socket: UdpSocket::bind("127.0.0.1:0").unwrap() };
        server.socket.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let client_socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let address = server.socket.local_addr().unwrap();
        let client =
            TurnClient::start(client_socket, &TurnTransport::Udp, address, ("alice".into(), "pw".into()), None);

        let first = server.next();
        let allocate = Message::parse(&first).unwrap();
        assert_eq!((allocate.method, allocate.class), (stun::ALLOCATE, Class::Request));
        assert_eq!(allocate.attribute(stun::REQUESTED_TRANSPORT), Some(&[17, 0, 0, 0][..]));
        assert!(allocate.attribute(stun::USERNAME).is_none(), "the first Allocate carries no credentials");
        let challenge = Builder::new(stun::ALLOCATE, Class::Error, allocate.id)
            .attribute(stun::ERROR_CODE, &[0, 0, 4, 1])
            .attribute(stun::REALM, b"example.test")
            .attribute(stun::NONCE, b"n1")
            .finish(None);
        assert!(matches!(client.handle(&challenge), FromServer::Handled));

        let key = stun::long_term_key("alice", "example.test", "pw");
        let second = server.next();
        let allocate = Message::parse(&second).unwrap();
        assert_eq!(allocate.text(stun::NONCE).as_deref(), Some("n1"));
        assert!(signed_with(&second, &key), "signed with MD5(user:realm:password)");
        let stale = Builder::new(stun::ALLOCATE, Class::Error, allocate.id)
            .attribute(stun::ERROR_CODE, &[0, 0, 4, 38])
            .attribute(stun::NONCE, b"n2")
            .finish(None);
        client.handle(&stale);
        let third = server.next();
        let allocate = Message::parse(&third).unwrap();
        assert_eq!(allocate.text(stun::NONCE).as_deref(), Some("n2"), "the stale nonce is replaced");
        let relayed: SocketAddr = "192.0.2.9:50000".parse().unwrap();
        let mapped: SocketAddr = "198.51.100.1:40000".parse().unwrap();
        let granted = Builder::new(stun::ALLOCATE, Class::Success, allocate.id)
            .address(stun::XOR_RELAYED_ADDRESS, relayed)
            .address(stun::XOR_MAPPED_ADDRESS, mapped)
            .u32(stun::LIFETIME, 120)
            .finish(Some(&key));
        client.handle(&granted);
        assert_eq!((client.relayed(), client.mapped()), (Some(relayed), Some(mapped)));
        assert!(client.settled());

        let peer: SocketAddr = "203.0.113.5:7000".parse().unwrap();
        client.send(b"check", peer);
        let permission = server.next();
        let request = Message::parse(&permission).unwrap();
        assert_eq!(request.method, stun::CREATE_PERMISSION);
        assert_eq!(request.address(stun::XOR_PEER_ADDRESS).map(|a| a.ip()), Some(peer.ip()));
        assert!(signed_with(&permission, &key));
        client.handle(&Builder::new(stun::CREATE_PERMISSION, Class::Success, request.id).finish(Some(&key)));
        let bind = server.next();
        let request = Message::parse(&bind).unwrap();
        assert_eq!(request.method, stun::CHANNEL_BIND);
        assert_eq!(request.address(stun::XOR_PEER_ADDRESS), Some(peer));
        assert_eq!(request.attribute(stun::CHANNEL_NUMBER), Some(&[0x40, 0, 0, 0][..]));
        assert!(signed_with(&bind, &key));
        let channel_bound = Builder::new(stun::CHANNEL_BIND, Class::Success, request.id).finish(Some(&key));
        let indication = server.next();
        let send = Message::parse(&indication).unwrap();
        assert_eq!((send.method, send.class), (stun::SEND, Class::Indication), "until the channel is bound");
        assert_eq!(
            (send.address(stun::XOR_PEER_ADDRESS), send.attribute(stun::DATA_ATTRIBUTE)),
            (Some(peer), Some(&b"check"[..]))
        );
        client.handle(&channel_bound);
        client.send(b"again", peer);
        assert_eq!(server.next(), [0x40, 0, 0, 5, b'a', b'g', b'a', b'i', b'n', 0, 0, 0], "ChannelData once bound");
        assert_eq!(read_channel_data(&[0x40, 0, 0, 2, 1, 2, 0, 0]), Some((0x4000, &[1u8, 2][..])));
        assert!(matches!(
            client.handle(&[0x40, 0, 0, 2, 1, 2, 0, 0]),
            FromServer::Data { peer: p, data: [1, 2] } if p == peer
        ));

        let data = Builder::new(stun::DATA, Class::Indication, stun::transaction_id())
            .address(stun::XOR_PEER_ADDRESS, peer)
            .attribute(stun::DATA_ATTRIBUTE, b"answer")
            .finish(None);
        assert!(matches!(client.handle(&data), FromServer::Data { peer: p, data: b"answer" } if p == peer));

        // Refreshed a minute before the 120 s lifetime ends (or halfway).
        client.tick(Instant::now() + Duration::from_secs(30));
        client.tick(Instant::now() + Duration::from_secs(61));
        let refresh = server.next();
        let request = Message::parse(&refresh).unwrap();
        assert_eq!((request.method, request.lifetime()), (stun::REFRESH, Some(LIFETIME)));
        client.handle(&Builder::new(stun::REFRESH, Class::Success, request.id).u32(stun::LIFETIME, 600).finish(None));
        // Permissions and channels are asked for again before they lapse.
        client.tick(Instant::now() + PERMISSION_RENEWAL);
        let renewed: Vec<u16> =
            [server.next(), server.next()].iter().map(|m| Message::parse(m).unwrap().method).collect();
        assert_eq!(renewed, [stun::CREATE_PERMISSION, stun::CHANNEL_BIND]);
        client.close();
        let release = server.next();
        let request = Message::parse(&release).unwrap();
        assert_eq!((request.method, request.lifetime()), (stun::REFRESH, Some(0)), "the allocation is given back");
    }
}
