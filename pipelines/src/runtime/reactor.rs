//! The sockets of every RTP leg, read by a few shared threads.
//!
//! A `udpsrc` per socket is one thread per socket, and every packet wakes
//! its own thread: at 100 calls that is 400 threads and 10,000 wake-ups a
//! second, and the profile of a passthrough run was mostly the kernel
//! switching between them (docs/performance.md). Here one thread per core
//! (at most [`MAX_THREADS`]) waits on many sockets with epoll (through mio)
//! and drains every ready socket per wake-up, as rtpengine does; a leg's
//! sockets go to the thread reading the fewest. What it
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

/// Starts reading a leg's sockets, handing each datagram to its socket's
/// handler. A leg's sockets share one thread, the one reading the fewest
/// sockets: the load is spread by leg. (Spread by socket, round the
/// threads, an RTP leg's two sockets went to two threads in turn, so on two
/// cores every RTP socket, with all the decoding and encoding, was read by
/// one thread and every RTCP socket by the other.)
pub(crate) fn register(sockets: Vec<(UdpSocket, Handler)>) -> std::io::Result<Vec<Registration>> {
    static NEXT_TOKEN: AtomicUsize = AtomicUsize::new(0);
    let reactor =
        reactors().iter().min_by_key(|r| r.entries.lock().unwrap().len()).expect("there is at least one socket thread");
    let mut registrations = Vec::with_capacity(sockets.len());
    for (socket, handler) in sockets {
        socket.set_nonblocking(true)?;
        let token = Token(NEXT_TOKEN.fetch_add(1, Ordering::Relaxed));
        let fd = socket.as_raw_fd();
        reactor.entries.lock().unwrap().insert(token, Arc::new(Entry { socket, handler }));
        // Held from here, so a failure below drops what was registered.
        let registration = Registration { reactor, token };
        reactor.registry.register(&mut SourceFd(&fd), token, Interest::READABLE)?;
        registrations.push(registration);
    }
    Ok(registrations)
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
        let handler: Handler = Box::new(move |data, _| {
            if data == b"rtp" {
                seen.fetch_add(1, Ordering::SeqCst);
            }
        });
        let registration = register(vec![(socket, handler)]).unwrap();
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

    /// Legs of two sockets each (RTP, RTCP), as many as two per thread:
    /// each leg's sockets on one thread, and every thread reading as many
    /// legs as the next, give or take one (another test's socket may be
    /// registered meanwhile).
    #[test]
    fn a_legs_sockets_share_a_thread_and_legs_spread_over_the_threads() {
        let threads = reactors().len();
        let legs: Vec<Vec<Registration>> = (0..2 * threads)
            .map(|_| {
                let socket = || (UdpSocket::bind("127.0.0.1:0").unwrap(), Box::new(|_: &[u8], _| {}) as Handler);
                register(vec![socket(), socket()]).unwrap()
            })
            .collect();
        let mut per_thread = vec![0; threads];
        for leg in &legs {
            let reactor = leg[0].reactor;
            assert!(
                std::ptr::eq(reactor, leg[1].reactor),
                "a leg's RTP and RTCP sockets are read by different threads"
            );
            per_thread[reactors().iter().position(|r| std::ptr::eq(r, reactor)).unwrap()] += 1;
        }
        let (least, most) = (per_thread.iter().min().unwrap(), per_thread.iter().max().unwrap());
        assert!(most - least <= 1, "legs per socket thread: {per_thread:?}");
    }
}
