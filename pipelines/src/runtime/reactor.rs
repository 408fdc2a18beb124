//! The sockets of every RTP leg, read by a few shared threads.
//!
//! A `udpsrc` per socket is one thread per socket, and every packet wakes
//! its own thread: at 100 calls that is 400 threads and 10,000 wake-ups a
//! second, and the profile of a passthrough run was mostly the kernel
//! switching between them (docs/performance.md). Here one thread per core
//! (at most [`MAX_THREADS`]) waits on many sockets with epoll (through mio)
//! and drains every ready socket per wake-up, as rtpengine does. What it
//! reads goes to the leg's handler on that thread: relayed, or decoded
//! (and the linked leg's audio encoded) on it. Handlers must not block.

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Registry, Token};
use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// Called with every datagram a registered socket receives, and its source.
pub(crate) type Handler = Box<dyn Fn(&[u8], SocketAddr) + Send + Sync>;

/// Transcoded calls are decoded and encoded on these threads, so they
/// should cover every core of a large host; the bound only keeps an odd
/// `available_parallelism` from starting hundreds.
const MAX_THREADS: usize = 64;
/// Larger than any RTP packet a voice peer sends (MTU-sized at most).
const MAX_DATAGRAM: usize = 4096;

/// A socket being read; dropping it stops the reading.
pub(crate) struct Registration {
    reactor: &'static Reactor,
    token: Token,
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Some(entry) = self.reactor.entries.lock().unwrap().remove(&self.token) {
            // Explicitly: epoll watches the open file, which the leg's other
            // handles on the same socket keep alive after this one closes.
            let _ = self.reactor.registry.deregister(&mut SourceFd(&entry.socket.as_raw_fd()));
        }
    }
}

struct Reactor {
    registry: Registry,
    entries: Arc<Mutex<HashMap<Token, Arc<Entry>>>>,
}

struct Entry {
    socket: UdpSocket,
    handler: Handler,
}

/// Starts reading `socket`, handing each datagram to `handler` on one of
/// the shared threads.
pub(crate) fn register(socket: UdpSocket, handler: Handler) -> std::io::Result<Registration> {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let reactor = &reactors()[n % reactors().len()];
    socket.set_nonblocking(true)?;
    let token = Token(n);
    let fd = socket.as_raw_fd();
    reactor.entries.lock().unwrap().insert(token, Arc::new(Entry { socket, handler }));
    if let Err(err) = reactor.registry.register(&mut SourceFd(&fd), token, Interest::READABLE) {
        reactor.entries.lock().unwrap().remove(&token);
        return Err(err);
    }
    Ok(Registration { reactor, token })
}

fn reactors() -> &'static [Reactor] {
    static REACTORS: OnceLock<Vec<Reactor>> = OnceLock::new();
    REACTORS.get_or_init(|| {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(MAX_THREADS);
        (0..threads)
            .map(|i| {
                let poll = Poll::new().expect("creating an epoll instance");
                let registry = poll.registry().try_clone().expect("cloning the epoll registry");
                let entries: Arc<Mutex<HashMap<Token, Arc<Entry>>>> = Arc::default();
                let watched = entries.clone();
                std::thread::Builder::new()
                    .name(format!("rtp-sockets-{i}"))
                    .spawn(move || run(poll, &watched))
                    .expect("spawning an RTP socket thread");
                Reactor { registry, entries }
            })
            .collect()
    })
}

fn run(mut poll: Poll, entries: &Mutex<HashMap<Token, Arc<Entry>>>) {
    let mut events = Events::with_capacity(256);
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        if let Err(err) = poll.poll(&mut events, None) {
            if err.kind() != ErrorKind::Interrupted {
                tracing::error!(%err, "RTP socket thread: poll failed");
            }
            continue;
        }
        for event in events.iter() {
            let Some(entry) = entries.lock().unwrap().get(&event.token()).cloned() else { continue };
            drain(&entry, &mut buf);
        }
    }
}

/// Reads until the socket is empty (the readiness is edge-triggered).
fn drain(entry: &Entry, buf: &mut [u8]) {
    let mut errors = 0;
    loop {
        match entry.socket.recv_from(buf) {
            Ok((n, from)) => (entry.handler)(&buf[..n], from),
            Err(err) if err.kind() == ErrorKind::WouldBlock => return,
            Err(err) if err.kind() == ErrorKind::Interrupted => {}
            // ICMP errors from an earlier send (a peer gone) surface here;
            // they concern that send, not the datagrams still queued.
            Err(err) => {
                errors += 1;
                if errors > 16 {
                    tracing::warn!(%err, "RTP socket keeps failing; leaving it for now");
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn wait_for(count: &AtomicUsize, n: usize) -> bool {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if count.load(Ordering::SeqCst) >= n {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        false
    }

    #[test]
    fn datagrams_reach_the_handler_until_the_registration_is_dropped() {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let address = socket.local_addr().unwrap();
        // A leg keeps other handles on the same socket (its sender, the relay).
        let other_handle = socket.try_clone().unwrap();
        let count = Arc::new(AtomicUsize::new(0));
        let seen = count.clone();
        let registration = register(
            socket,
            Box::new(move |data, _| {
                if data == b"rtp" {
                    seen.fetch_add(1, Ordering::SeqCst);
                }
            }),
        )
        .unwrap();
        let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
        for _ in 0..3 {
            peer.send_to(b"rtp", address).unwrap();
        }
        assert!(wait_for(&count, 3), "got {} of 3 datagrams", count.load(Ordering::SeqCst));

        drop(registration);
        peer.send_to(b"rtp", address).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(count.load(Ordering::SeqCst), 3, "nothing is handled once the registration is dropped");
        other_handle.set_nonblocking(false).unwrap();
        other_handle.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
        let mut buf = [0u8; 8];
        let (n, _) = other_handle.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"rtp", "the datagram stays on the socket for its other handles");
    }
}
