//! RTCP of relayed (passthrough) RTP legs: two "phones" (UDP sockets the
//! test drives, 20 ms PCMU packets each way) joined by `sipbridge stdio`
//! with the same codec, so their packets go socket to socket and never
//! enter a pipeline. Each phone must still get sender reports for the stream
//! it receives (the bridge's SSRC, counts matching what it got, an NTP/RTP
//! mapping matching the timestamps it saw), with a report block about the
//! stream it sends and the CNAME, nothing under another SSRC contradicting them,
//! and a BYE at the end; plain with RTCP on its own port, and as SRTCP
//! with rtcp-mux. The same holds when the phones' codecs differ and the
//! bridge transcodes: the reports are then about each send chain's stream.

use e2e::bridge::Bridge;
use e2e::process::test_dir;
use e2e::sdes::{MasterKey, Srtcp, Srtp};
use serde_json::json;
use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A phone's sockets: RTP, and RTCP on the next port unless multiplexed.
struct Phone {
    ssrc: u32,
    /// PCMU (0) or PCMA (8).
    payload_type: u8,
    rtp: UdpSocket,
    rtcp: Option<UdpSocket>,
    /// Our key when SDES-SRTP is on; the bridge's is learnt from its answer.
    key: Option<MasterKey>,
}

impl Phone {
    fn new(ssrc: u32, payload_type: u8, mux: bool, secure: bool) -> Phone {
        let (rtp, rtcp) = loop {
            let rtp = UdpSocket::bind("127.0.0.1:0").unwrap();
            if mux {
                break (rtp, None);
            }
            let port = rtp.local_addr().unwrap().port();
            if let Ok(rtcp) = UdpSocket::bind(("127.0.0.1", port.wrapping_add(1))) {
                break (rtp, Some(rtcp));
            }
        };
        Phone { ssrc, payload_type, rtp, rtcp, key: secure.then(MasterKey::random) }
    }

    fn offer(&self) -> String {
        let port = self.rtp.local_addr().unwrap().port();
        let profile = if self.key.is_some() { "RTP/SAVP" } else { "RTP/AVP" };
        let (pt, name) = (self.payload_type, if self.payload_type == 8 { "PCMA" } else { "PCMU" });
        let mut sdp = format!("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {port} {profile} {pt}\r\na=rtpmap:{pt} {name}/8000\r\na=ptime:20\r\na=sendrecv\r\n");
        if self.rtcp.is_none() {
            sdp += "a=rtcp-mux\r\n";
        }
        if let Some(key) = &self.key {
            sdp += &key.crypto_line();
        }
        sdp
    }
}

/// What a phone saw from the bridge.
#[derive(Default)]
struct Seen {
    /// Sequence number, timestamp, SSRC, payload octets, arrival.
    rtp: Vec<(u16, u32, u32, usize, SystemTime)>,
    /// Plain compound RTCP packets and their arrival.
    rtcp: Vec<Arrived>,
}

/// One RTCP packet of a compound, parsed as far as the test needs.
#[derive(Debug)]
enum Rtcp {
    Sender { ssrc: u32, ntp: u64, rtp: u32, packets: u32, octets: u32, blocks: Vec<Block> },
    Receiver { ssrc: u32, blocks: Vec<Block> },
    Cname { ssrc: u32, cname: String },
    Bye { ssrc: u32 },
    Other,
}

#[derive(Debug, Clone, Copy)]
struct Block {
    ssrc: u32,
    cumulative_lost: i32,
    highest_seq: u32,
    lsr: u32,
    dlsr: u32,
}

fn word(p: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([p[at], p[at + 1], p[at + 2], p[at + 3]])
}

fn parse(mut compound: &[u8]) -> Vec<Rtcp> {
    let mut out = Vec::new();
    while compound.len() >= 8 {
        let length = (u16::from_be_bytes([compound[2], compound[3]]) as usize + 1) * 4;
        assert!(compound[0] >> 6 == 2 && length <= compound.len(), "malformed RTCP: {compound:02x?}");
        let (p, count) = (&compound[..length], (compound[0] & 0x1f) as usize);
        let blocks = |at: usize| {
            p[at..]
                .chunks_exact(24)
                .take(count)
                .map(|b| Block {
                    ssrc: word(b, 0),
                    cumulative_lost: ((word(b, 4) << 8) as i32) >> 8,
                    highest_seq: word(b, 8),
                    lsr: word(b, 16),
                    dlsr: word(b, 20),
                })
                .collect()
        };
        out.push(match p[1] {
            200 => Rtcp::Sender {
                ssrc: word(p, 4),
                ntp: ((word(p, 8) as u64) << 32) | word(p, 12) as u64,
                rtp: word(p, 16),
                packets: word(p, 20),
                octets: word(p, 24),
                blocks: blocks(28),
            },
            201 => Rtcp::Receiver { ssrc: word(p, 4), blocks: blocks(8) },
            202 if p[8] == 1 => {
                Rtcp::Cname { ssrc: word(p, 4), cname: String::from_utf8_lossy(&p[10..10 + p[9] as usize]).into() }
            }
            203 => Rtcp::Bye { ssrc: word(p, 4) },
            _ => Rtcp::Other,
        });
        compound = &compound[length..];
    }
    out
}

fn ntp(t: SystemTime) -> u64 {
    let since = t.duration_since(UNIX_EPOCH).unwrap();
    ((since.as_secs() + 2_208_988_800) << 32) | (((since.subsec_nanos() as u64) << 32) / 1_000_000_000)
}

fn ntp_seconds(ntp: u64) -> f64 {
    (ntp >> 32) as f64 + (ntp & 0xffff_ffff) as f64 / 4_294_967_296.0
}

/// The bridge's sockets for one phone's leg, from its answer.
struct Leg {
    session: String,
    rtp: SocketAddr,
    rtcp: SocketAddr,
    /// SRTP from the phone, and the bridge's key for its SRTP (a context per
    /// SSRC: the send chain's silence before the link has one of its own) and SRTCP.
    protect: Option<Srtp>,
    bridge_key: Option<MasterKey>,
    open_rtp: HashMap<u32, Srtp>,
    open_rtcp: Option<Srtcp>,
}

fn answer(bridge: &Bridge, phone: &Phone) -> Leg {
    let session = bridge.create("rtp", json!({})).unwrap();
    bridge.set_remote(&session, "offer", &phone.offer()).unwrap();
    let (_, sdp) = bridge.local_description(&session).unwrap();
    let rtp = e2e::bridge::rtp_address(&sdp);
    let rtcp = match sdp.lines().find_map(|l| l.strip_prefix("a=rtcp:")) {
        Some(port) => SocketAddr::new(rtp.ip(), port.trim().parse().unwrap()),
        None => {
            assert!(sdp.contains("a=rtcp-mux"), "{sdp}");
            rtp
        }
    };
    let theirs = phone.key.as_ref().map(|_| MasterKey::from_sdp(&sdp).unwrap());
    Leg {
        session,
        rtp,
        rtcp,
        protect: phone.key.as_ref().map(Srtp::new),
        open_rtcp: theirs.as_ref().map(Srtcp::new),
        bridge_key: theirs,
        open_rtp: HashMap::new(),
    }
}

/// A datagram and its arrival.
type Arrived = (Vec<u8>, SystemTime);

/// Receives on a phone's sockets until stopped, stamping each datagram
/// with its arrival as it comes (a thread per socket).
struct Receiver {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<Vec<Arrived>>>,
}

impl Receiver {
    fn start(phone: &Phone) -> Receiver {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = std::iter::once(&phone.rtp)
            .chain(phone.rtcp.as_ref())
            .map(|socket| {
                let (socket, stop) = (socket.try_clone().unwrap(), stop.clone());
                socket.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
                std::thread::spawn(move || {
                    let (mut got, mut buf) = (Vec::new(), [0u8; 2048]);
                    while !stop.load(Ordering::Relaxed) {
                        if let Ok(n) = socket.recv(&mut buf) {
                            got.push((buf[..n].to_vec(), SystemTime::now()));
                        }
                    }
                    got
                })
            })
            .collect();
        Receiver { stop, threads }
    }

    /// Everything received, decrypted when keyed (it must authenticate).
    fn finish(self, leg: &mut Leg) -> Seen {
        self.stop.store(true, Ordering::Relaxed);
        let mut seen = Seen::default();
        for thread in self.threads {
            for (data, arrival) in thread.join().unwrap() {
                if (200..=204).contains(&data[1]) {
                    let plain = match &leg.open_rtcp {
                        Some(srtcp) => srtcp.unprotect(&data).expect("SRTCP from the bridge authenticates"),
                        None => data,
                    };
                    seen.rtcp.push((plain, arrival));
                    continue;
                }
                let plain = match &leg.bridge_key {
                    Some(key) => leg
                        .open_rtp
                        .entry(word(&data, 8))
                        .or_insert_with(|| Srtp::new(key))
                        .unprotect(&data)
                        .expect("SRTP from the bridge authenticates"),
                    None => data,
                };
                let (seq, ts, ssrc) = (u16::from_be_bytes([plain[2], plain[3]]), word(&plain, 4), word(&plain, 8));
                seen.rtp.push((seq, ts, ssrc, plain.len() - 12, arrival));
            }
        }
        seen
    }
}

/// Runs a call for `seconds`, relayed, or transcoded when phone B speaks
/// PCMA: each phone sends 20 ms packets (phone B skips five), phone B a
/// sender report of its own after 1 s.
/// Returns what each phone saw, the sessions closed at the end (BYE), and
/// the sequence number of the phones' last packets and the NTP time of B's
/// sender report.
fn call(name: &str, mux: bool, secure: bool, transcoded: bool, seconds: u64) -> ([Seen; 2], u16, u64) {
    let dir = test_dir(name);
    let bridge = Bridge::start(&dir, &[]).unwrap();
    let b_codec = if transcoded { 8 } else { 0 };
    let phones = [Phone::new(0xa0a0_0001, 0, mux, secure), Phone::new(0xb0b0_0002, b_codec, mux, secure)];
    let mut legs = [answer(&bridge, &phones[0]), answer(&bridge, &phones[1])];
    let linked = bridge.call("session.connect", json!({ "a": legs[0].session, "b": legs[1].session })).unwrap();
    assert_eq!(linked["passthrough"], json!(!transcoded), "{linked}");

    let receivers = [Receiver::start(&phones[0]), Receiver::start(&phones[1])];
    let packets = seconds * 50;
    let lost_from_b = 100..105;
    let mut b_report_ntp = 0;
    let start = Instant::now();
    for i in 0..packets {
        for (n, (phone, leg)) in phones.iter().zip(legs.iter_mut()).enumerate() {
            if n == 1 && lost_from_b.contains(&i) {
                continue;
            }
            let mut packet = vec![0x80, phone.payload_type];
            packet.extend((1000 + i as u16).to_be_bytes());
            packet.extend((5000 + 160 * i as u32).to_be_bytes());
            packet.extend(phone.ssrc.to_be_bytes());
            packet.extend([0xd5u8; 160]);
            if let Some(srtp) = &mut leg.protect {
                packet = srtp.protect(&packet).unwrap();
            }
            phone.rtp.send_to(&packet, leg.rtp).unwrap();
        }
        if i == 50 && !secure {
            // B's sender report (plain only: the test does not seal SRTCP).
            b_report_ntp = ntp(SystemTime::now());
            let mut sr = vec![0x80, 200, 0, 6];
            sr.extend(phones[1].ssrc.to_be_bytes());
            sr.extend(b_report_ntp.to_be_bytes());
            sr.extend([0u8; 12]);
            let socket = phones[1].rtcp.as_ref().unwrap_or(&phones[1].rtp);
            socket.send_to(&sr, legs[1].rtcp).unwrap();
        }
        std::thread::sleep((start + Duration::from_millis(20 * (i + 1))).saturating_duration_since(Instant::now()));
    }
    for leg in &legs {
        bridge.call("session.close", json!({ "session": leg.session })).unwrap();
    }
    std::thread::sleep(Duration::from_millis(300));
    let [a, b] = receivers;
    let seen = [a.finish(&mut legs[0]), b.finish(&mut legs[1])];
    let last_seq = 1000 + packets as u16 - 1;
    (seen, last_seq, b_report_ntp)
}

/// The checks on what one phone saw; `reported` is the SSRC of the stream
/// it sends. Returns the report blocks about it, with their arrival.
fn check_reports(phone: &str, seen: &Seen, reported: u32) -> Vec<(u32, Block, SystemTime)> {
    // The stream it gets: the SSRC of the last packets (relayed, the send
    // chain's silence before the link may have come under another).
    let stream_ssrc = seen.rtp.last().unwrap_or_else(|| panic!("{phone} got no RTP")).2;
    let relayed: Vec<_> = seen.rtp.iter().filter(|p| p.2 == stream_ssrc).collect();
    let first_relayed = relayed[0].4;
    let mut sender_reports = 0;
    let mut blocks = Vec::new();
    for (compound, arrival) in &seen.rtcp {
        let parsed = parse(compound);
        let first_ssrc = match parsed.first() {
            Some(Rtcp::Sender { ssrc, .. } | Rtcp::Receiver { ssrc, .. }) => *ssrc,
            other => panic!("{phone}: a compound packet must start with SR or RR: {other:?}"),
        };
        if *arrival < first_relayed + Duration::from_millis(500) && first_ssrc != stream_ssrc {
            continue; // about the send chain's silence before the link.
        }
        assert_eq!(first_ssrc, stream_ssrc, "{phone}: only reports about the stream it gets: {parsed:?}");
        for p in &parsed {
            match p {
                Rtcp::Sender { ntp, rtp, packets, octets, blocks: b, .. } => {
                    sender_reports += 1;
                    // Counts: what the phone had received by then, give or
                    // take what was in flight (and what its receiving
                    // threads stamped late on a loaded machine).
                    let got = relayed.iter().filter(|r| r.4 <= *arrival).count() as i64;
                    assert!(
                        (*packets as i64 - got).abs() <= (got * 3 / 100).max(5),
                        "{phone}: SR says {packets} packets, got {got}"
                    );
                    assert_eq!(*octets as u64, *packets as u64 * 160, "{phone}: payload octets");
                    // The NTP/RTP mapping: the timestamp of each packet
                    // that came within a second of the report against its
                    // arrival, through the report's mapping. Only those: a
                    // report describes the stream as it is, and a
                    // transcoded stream's timing may start again after a
                    // gap (the encoder re-bases its timestamps on its
                    // input's once they part by more than its tolerance).
                    let mut errors: Vec<f64> = relayed
                        .iter()
                        .filter(|r| {
                            r.4 + Duration::from_secs(1) >= *arrival && r.4 <= *arrival + Duration::from_secs(1)
                        })
                        .map(|r| {
                            let since = r.4.duration_since(UNIX_EPOCH).unwrap().as_secs_f64() + 2_208_988_800.0;
                            let predicted = (since - ntp_seconds(*ntp)) * 8000.0;
                            (r.1.wrapping_sub(*rtp) as i32 as f64 - predicted).abs()
                        })
                        .collect();
                    errors.sort_by(f64::total_cmp);
                    let median = errors[errors.len() / 2];
                    assert!(median < 80.0, "{phone}: timestamps off the SR's mapping by {median} units (median)");
                    blocks.extend(b.iter().map(|b| (*b, *arrival)));
                }
                Rtcp::Receiver { blocks: b, .. } => blocks.extend(b.iter().map(|b| (*b, *arrival))),
                Rtcp::Cname { ssrc, cname } => {
                    assert_eq!(*ssrc, stream_ssrc, "{phone}");
                    assert!(!cname.is_empty(), "{phone}: CNAME");
                }
                Rtcp::Bye { .. } | Rtcp::Other => {}
            }
        }
    }
    assert!(sender_reports >= 2, "{phone}: {sender_reports} sender reports for the stream it gets");
    assert!(
        seen.rtcp.iter().any(|(c, _)| parse(c).iter().any(|p| matches!(p, Rtcp::Bye { ssrc } if *ssrc == stream_ssrc))),
        "{phone}: a BYE for that stream's SSRC on close"
    );
    assert!(blocks.iter().all(|(b, _)| b.ssrc == reported), "{phone}: blocks about its own stream only");
    blocks.into_iter().map(|(b, t)| (reported, b, t)).collect()
}

/// A call with RTCP on its own port: each phone's reports, the blocks about
/// its stream (B lost 5), and B's sender report echoed back.
fn plain_call_reports(name: &str, transcoded: bool) {
    let (seen, last_seq, b_report_ntp) = call(name, false, false, transcoded, 12);
    let about_a = check_reports("phone A", &seen[0], 0xa0a0_0001);
    let about_b = check_reports("phone B", &seen[1], 0xb0b0_0002);
    for (phone, blocks, lost) in [("A", &about_a, 0), ("B", &about_b, 5)] {
        assert!(!blocks.is_empty(), "phone {phone}: no report block about its stream");
        let (_, last, _) = blocks.last().unwrap();
        assert_eq!(last.cumulative_lost, lost, "phone {phone}: {last:?}");
        assert!(
            (last.highest_seq as i64 - last_seq as i64).abs() < 400,
            "phone {phone}: highest sequence {} near the last sent {last_seq}",
            last.highest_seq
        );
    }
    // B's sender report is echoed back: LSR its NTP time's middle, DLSR the
    // time we held it (loopback: LSR + DLSR is about the report's arrival).
    let (_, block, arrival) = about_b.last().unwrap();
    assert_eq!(block.lsr, (b_report_ntp >> 16) as u32, "{block:?}");
    let round_trip = ((ntp(*arrival) >> 16) as u32).wrapping_sub(block.lsr).wrapping_sub(block.dlsr) as i32;
    assert!(round_trip.abs() < 65536 / 20, "LSR + DLSR off the arrival by {round_trip}/65536 s");
}

#[test]
fn relayed_legs_send_sender_reports_for_what_they_relay() {
    plain_call_reports("relay_rtcp_plain", false);
}

#[test]
fn transcoded_legs_send_sender_reports_for_their_send_chains() {
    plain_call_reports("rtcp_transcoded", true);
}

#[test]
fn srtp_relayed_legs_send_srtcp_reports_with_rtcp_mux() {
    let (seen, _, _) = call("relay_rtcp_srtp", true, true, false, 10);
    check_reports("phone A", &seen[0], 0xa0a0_0001);
    check_reports("phone B", &seen[1], 0xb0b0_0002);
}
