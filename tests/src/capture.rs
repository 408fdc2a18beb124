//! A packet capture on the wire for tests that must show what an observer
//! of the network would see (SRTP: no RTP that decodes to the call's tone).
//! A packet socket (AF_PACKET, every protocol) in the test's private
//! network namespace reads every IPv4 UDP datagram on loopback; it needs
//! CAP_NET_RAW there, which `scripts/netns.sh` gives.

use anyhow::{bail, Result};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

/// One UDP datagram seen on the wire.
#[derive(Debug, Clone)]
pub struct Datagram {
    pub source: SocketAddrV4,
    pub destination: SocketAddrV4,
    pub payload: Vec<u8>,
}

impl Datagram {
    /// The payload type, if the datagram looks like RTP (version 2, not RTCP).
    pub fn rtp_payload_type(&self) -> Option<u8> {
        match self.payload.as_slice() {
            [first, second, ..] if first >> 6 == 2 && !(200..=204).contains(second) && self.payload.len() > 12 => {
                Some(second & 0x7f)
            }
            _ => None,
        }
    }
}

/// A running capture; [`UdpCapture::finish`] stops it and returns what it saw.
pub struct UdpCapture {
    stop: Arc<AtomicBool>,
    reader: JoinHandle<Vec<Datagram>>,
}

impl UdpCapture {
    pub fn start() -> Result<UdpCapture> {
        let protocol = (libc::ETH_P_ALL as u16).to_be() as i32;
        // SAFETY: plain socket(2); the descriptor is owned by the reader thread below.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_DGRAM, protocol) };
        if fd < 0 {
            bail!("cannot open a packet socket (run inside scripts/netns.sh): {}", std::io::Error::last_os_error());
        }
        let timeout = libc::timeval { tv_sec: 0, tv_usec: 100_000 };
        // SAFETY: setsockopt with a timeval of the right size on our socket.
        unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                &timeout as *const _ as *const libc::c_void,
                std::mem::size_of::<libc::timeval>() as u32,
            );
        }
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let reader = std::thread::spawn(move || {
            let mut seen = Vec::new();
            let mut buf = vec![0u8; 65536];
            while !stopped.load(Ordering::Relaxed) {
                // SAFETY: sockaddr_ll is plain data; recvfrom writes at most its size.
                let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
                let mut from_len = std::mem::size_of::<libc::sockaddr_ll>() as u32;
                // SAFETY: buf and from outlive the call; lengths are theirs.
                let n = unsafe {
                    libc::recvfrom(
                        fd,
                        buf.as_mut_ptr() as *mut libc::c_void,
                        buf.len(),
                        0,
                        &mut from as *mut _ as *mut libc::sockaddr,
                        &mut from_len,
                    )
                };
                // Loopback shows each packet leaving and arriving: keep one.
                if n <= 0 || from.sll_pkttype == libc::PACKET_OUTGOING {
                    continue;
                }
                if let Some(d) = parse_ipv4_udp(&buf[..n as usize]) {
                    seen.push(d);
                }
            }
            // SAFETY: closing the descriptor this thread owns, once.
            unsafe { libc::close(fd) };
            seen
        });
        Ok(UdpCapture { stop, reader })
    }

    pub fn finish(self) -> Vec<Datagram> {
        self.stop.store(true, Ordering::Relaxed);
        self.reader.join().expect("capture thread")
    }
}

fn parse_ipv4_udp(packet: &[u8]) -> Option<Datagram> {
    if packet.len() < 20 || packet[0] >> 4 != 4 || packet[9] != 17 {
        return None;
    }
    let header = (packet[0] & 0x0f) as usize * 4;
    let udp = packet.get(header..)?;
    if udp.len() < 8 {
        return None;
    }
    let ip = |at: usize| Ipv4Addr::new(packet[at], packet[at + 1], packet[at + 2], packet[at + 3]);
    let port = |at: usize| u16::from_be_bytes([udp[at], udp[at + 1]]);
    let length = (port(4) as usize).min(udp.len());
    Some(Datagram {
        source: SocketAddrV4::new(ip(12), port(0)),
        destination: SocketAddrV4::new(ip(16), port(2)),
        payload: udp.get(8..length)?.to_vec(),
    })
}
