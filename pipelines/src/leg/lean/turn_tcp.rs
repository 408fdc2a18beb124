//! The TCP connection of a lean leg's TURN client to its server (`turn:`
//! with `?transport=tcp`, RFC 8656 §3.1), or TLS over it (`turns:`), for
//! networks that let no UDP out: connected, and then read, by one thread
//! of its own (the shared socket threads read UDP only; this is the
//! fallback path, one thread per leg relayed over TCP). Messages on the
//! stream are STUN messages and ChannelData, each as long as its header
//! says (ChannelData padded to 4 bytes).
//!
//! Plain TCP is read from a clone of the socket while other threads write.
//! A TLS session cannot be read and written at once, so its reader holds
//! it for at most [`TLS_READ_SLICE`] at a time, and a writer may wait as
//! long.
//!
//! The server's certificate is checked (libnice, the webrtcbin leg's agent,
//! does not): against the configured CA file (`media.turn_tls_ca`), else the
//! system's roots (OpenSSL's default paths, which `SSL_CERT_FILE` moves),
//! for the `turns:` URI's host (a name, or an address). One that does not
//! check out fails the allocation: the leg goes on with its other candidates.

use openssl::ssl::{HandshakeError, SslConnector, SslMethod, SslStream};
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::{X509VerifyResult, X509};
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

/// How long connecting (and the TLS handshake) may take: the description
/// waits at most as long for the whole allocation anyway.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// A write the server does not take in this long loses its message rather
/// than holding up the thread that sends (a socket thread, the timer).
const WRITE_TIMEOUT: Duration = Duration::from_millis(200);
/// The longest a TLS reader holds the session, and a writer waits for it.
const TLS_READ_SLICE: Duration = Duration::from_millis(5);
/// STUN's header: type, length, magic cookie, transaction id.
const HEADER_LEN: usize = 20;

/// Called with each message read.
pub(super) type OnMessage = Box<dyn Fn(&[u8]) + Send>;
/// Called once connected, or with why there is no connection.
pub(super) type OnConnect = Box<dyn FnOnce(Result<(), String>) + Send>;

/// Whom a TLS connection is made to, and whom it trusts.
pub(super) struct TlsTarget {
    /// The `turns:` URI's host: the name (or address) the certificate must carry.
    pub name: String,
    /// Trust anchors (PEM file); `None`: the system's roots.
    pub ca_file: Option<PathBuf>,
}

enum Stream {
    Tcp(TcpStream),
    Tls(SslStream<TcpStream>),
}

impl Stream {
    fn socket(&self) -> &TcpStream {
        match self {
            Stream::Tcp(socket) => socket,
            Stream::Tls(tls) => tls.get_ref(),
        }
    }

    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Tcp(socket) => socket.read(buffer),
            Stream::Tls(tls) => tls.read(buffer),
        }
    }

    fn write_all(&mut self, data: &[u8]) -> std::io::Result<()> {
        match self {
            Stream::Tcp(socket) => socket.write_all(data),
            Stream::Tls(tls) => tls.write_all(data),
        }
    }
}

pub(super) struct TcpLink {
    stream: Mutex<Option<Stream>>,
    /// Closed, possibly before the connection was made.
    closed: AtomicBool,
}

impl TcpLink {
    /// Connects to `server` (over TLS when `tls` is given) on a thread of
    /// its own, then calls `connected`, and `message` for every message
    /// read, until the stream ends or [`TcpLink::close`].
    pub fn start(server: SocketAddr, tls: Option<TlsTarget>, connected: OnConnect, message: OnMessage) -> Arc<TcpLink> {
        let link = Arc::new(TcpLink { stream: Mutex::new(None), closed: AtomicBool::new(false) });
        let weak = Arc::downgrade(&link);
        let spawned = std::thread::Builder::new().name("lean-turn-tcp".into()).spawn(move || {
            let stream = match connect(server, tls.as_ref()) {
                Ok(stream) => stream,
                Err(err) => return connected(Err(err)),
            };
            let own_reader = match &stream {
                Stream::Tcp(socket) => socket.try_clone().ok().map(Stream::Tcp),
                Stream::Tls(_) => None,
            };
            match weak.upgrade() {
                Some(link) if !link.closed.load(Ordering::Relaxed) => *link.stream.lock().unwrap() = Some(stream),
                _ => return,
            }
            connected(Ok(()));
            read_messages(&weak, own_reader, &message);
        });
        if let Err(err) = spawned {
            tracing::warn!(%err, "lean WebRTC leg: no thread for the TURN TCP connection");
        }
        link
    }

    /// Writes one message; lost if not connected (yet, or any more).
    pub fn send(&self, message: &[u8]) {
        if let Some(stream) = self.stream.lock().unwrap().as_mut() {
            let _ = stream.write_all(message);
        }
    }

    /// Ends the connection, and with it the reading thread.
    pub fn close(&self) {
        let mut stream = self.stream.lock().unwrap();
        self.closed.store(true, Ordering::Relaxed);
        if let Some(stream) = stream.take() {
            let _ = stream.socket().shutdown(Shutdown::Both);
        }
    }
}

/// The reading thread may hold a clone of the socket: it ends only when
/// the connection does.
impl Drop for TcpLink {
    fn drop(&mut self) {
        self.close();
    }
}

fn connect(server: SocketAddr, tls: Option<&TlsTarget>) -> Result<Stream, String> {
    let socket = TcpStream::connect_timeout(&server, CONNECT_TIMEOUT).map_err(|e| format!("TCP: {e}"))?;
    let _ = socket.set_nodelay(true);
    let _ = socket.set_write_timeout(Some(WRITE_TIMEOUT));
    let Some(target) = tls else { return Ok(Stream::Tcp(socket)) };
    let _ = socket.set_read_timeout(Some(CONNECT_TIMEOUT));
    let connector = connector(target.ca_file.as_deref()).map_err(|e| format!("TLS setup: {e}"))?;
    // The crate checks the name (or the address, for an IP literal) and
    // sends it as SNI when it is a name.
    let tls = connector.connect(&target.name, socket).map_err(|err| match &err {
        HandshakeError::Failure(mid) if mid.ssl().verify_result() != X509VerifyResult::OK => {
            format!("TLS: the certificate of {} does not check out: {}", target.name, mid.ssl().verify_result())
        }
        _ => format!("TLS: {err}"),
    })?;
    let _ = tls.get_ref().set_read_timeout(Some(TLS_READ_SLICE));
    Ok(Stream::Tls(tls))
}

/// A TLS client that verifies servers against `ca_file`, else the system's roots.
fn connector(ca_file: Option<&Path>) -> Result<SslConnector, String> {
    let mut builder = SslConnector::builder(SslMethod::tls_client()).map_err(|e| e.to_string())?;
    if let Some(path) = ca_file {
        let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let anchors = X509::stack_from_pem(&pem).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut store = X509StoreBuilder::new().map_err(|e| e.to_string())?;
        for anchor in anchors {
            store.add_cert(anchor).map_err(|e| e.to_string())?;
        }
        builder.set_cert_store(store.build());
    }
    Ok(builder.build())
}

/// Reads until the stream ends: from `own_reader` if there is one (plain
/// TCP), else from the link's stream a slice at a time (TLS).
fn read_messages(link: &Weak<TcpLink>, mut own_reader: Option<Stream>, message: &OnMessage) {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let read = match own_reader.as_mut() {
            Some(reader) => reader.read(&mut chunk),
            None => {
                let Some(link) = link.upgrade() else { return };
                let mut stream = link.stream.lock().unwrap();
                match stream.as_mut() {
                    Some(stream) => stream.read(&mut chunk),
                    None => return,
                }
            }
        };
        match read {
            Ok(0) => return,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            Err(err) if matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted) => {
                continue
            }
            Err(_) => return,
        }
        loop {
            match take_message(&mut buffer) {
                Ok(Some(frame)) => message(&frame),
                Ok(None) => break,
                Err(()) => return,
            }
        }
    }
}

/// The first whole STUN or ChannelData message in `buffer`, taken out;
/// None until one has arrived whole; an error for anything else.
fn take_message(buffer: &mut Vec<u8>) -> Result<Option<Vec<u8>>, ()> {
    if buffer.len() < 4 {
        return Ok(None);
    }
    let declared = u16::from_be_bytes([buffer[2], buffer[3]]) as usize;
    let length = match buffer[0] & 0xc0 {
        0x00 => HEADER_LEN + declared,
        0x40 => (4 + declared).next_multiple_of(4),
        _ => return Err(()),
    };
    if buffer.len() < length {
        return Ok(None);
    }
    Ok(Some(buffer.drain(..length).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_cut_from_the_stream_by_their_headers() {
        let mut first = vec![0x01, 0x01, 0, 4, 0x21, 0x12, 0xa4, 0x42];
        first.extend_from_slice(&[9; 12]);
        first.extend_from_slice(&[1, 2, 3, 4]);
        let mut second = first.clone();
        second[1] = 0x17;
        let mut buffer: Vec<u8> = first.iter().chain(&second).copied().collect();
        buffer.extend_from_slice(&[0x01, 0x01]); // the start of a third
        assert_eq!(take_message(&mut buffer), Ok(Some(first)));
        assert_eq!(take_message(&mut buffer), Ok(Some(second)));
        assert_eq!(take_message(&mut buffer), Ok(None), "not whole yet");
        assert_eq!(buffer, [0x01, 0x01]);
        let mut channel = vec![0x40, 0x00, 0, 3, 7, 8, 9, 0, 0x80];
        assert_eq!(take_message(&mut channel), Ok(Some(vec![0x40, 0x00, 0, 3, 7, 8, 9, 0])), "padded to 4 bytes");
        assert_eq!(take_message(&mut vec![0x80u8; 24]), Err(()), "neither STUN nor ChannelData");
    }
}
