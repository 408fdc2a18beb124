//! The TCP connection of a lean leg's TURN client to its server (`turn:`
//! with `?transport=tcp`, RFC 8656 §3.1), for networks that let no UDP
//! out: connected, and then read, by one thread of its own (the shared
//! socket threads read UDP only; this is the fallback path, one thread per
//! leg relayed over TCP). Messages on the stream are STUN messages, each
//! as long as its header says (no channels are bound, so no ChannelData).

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long connecting may take (the description waits at most as long
/// for the whole allocation anyway).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// A write the server does not take in this long loses its message rather
/// than holding up the thread that sends (a socket thread, the timer).
const WRITE_TIMEOUT: Duration = Duration::from_millis(200);
/// STUN's header: type, length, magic cookie, transaction id.
const HEADER_LEN: usize = 20;

/// Called with each message read.
pub(super) type OnMessage = Box<dyn Fn(&[u8]) + Send>;

pub(super) struct TcpLink {
    stream: Mutex<Option<TcpStream>>,
    /// Closed, possibly before the connection was made.
    closed: AtomicBool,
}

impl TcpLink {
    /// Connects to `server` on a thread of its own, then calls `connected`
    /// and `message` for every message read, until the stream ends or
    /// [`TcpLink::close`].
    pub fn start(server: SocketAddr, connected: Box<dyn FnOnce() + Send>, message: OnMessage) -> Arc<TcpLink> {
        let link = Arc::new(TcpLink { stream: Mutex::new(None), closed: AtomicBool::new(false) });
        let weak = Arc::downgrade(&link);
        let spawned = std::thread::Builder::new().name("lean-turn-tcp".into()).spawn(move || {
            let stream = match TcpStream::connect_timeout(&server, CONNECT_TIMEOUT) {
                Ok(stream) => stream,
                Err(err) => return tracing::warn!(%server, %err, "lean WebRTC leg: no TCP connection to TURN server"),
            };
            let _ = stream.set_nodelay(true);
            let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
            let Ok(mut reader) = stream.try_clone() else { return };
            match weak.upgrade() {
                Some(link) if !link.closed.load(Ordering::Relaxed) => *link.stream.lock().unwrap() = Some(stream),
                _ => return,
            }
            connected();
            while let Some(frame) = read_message(&mut reader) {
                message(&frame);
            }
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
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}

/// The reading thread holds a clone of the stream: it ends only when the
/// connection does.
impl Drop for TcpLink {
    fn drop(&mut self) {
        self.close();
    }
}

/// The next STUN message on the stream, None at its end or on garbage.
fn read_message(stream: &mut impl Read) -> Option<Vec<u8>> {
    let mut message = vec![0u8; HEADER_LEN];
    stream.read_exact(&mut message).ok()?;
    if message[0] & 0xc0 != 0 {
        return None;
    }
    let length = u16::from_be_bytes([message[2], message[3]]) as usize;
    message.resize(HEADER_LEN + length, 0);
    stream.read_exact(&mut message[HEADER_LEN..]).ok()?;
    Some(message)
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
        let mut stream: Vec<u8> = first.iter().chain(&second).copied().collect();
        stream.extend_from_slice(&[0x01, 0x01]); // a truncated third
        let mut reader = stream.as_slice();
        assert_eq!(read_message(&mut reader), Some(first));
        assert_eq!(read_message(&mut reader), Some(second));
        assert_eq!(read_message(&mut reader), None);
        assert_eq!(read_message(&mut [0x40u8; 24].as_slice()), None, "ChannelData is not expected");
    }
}
