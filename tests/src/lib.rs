//! Shared harness for the end-to-end tests: processes bounded in time and
//! stopped by PID, free loopback ports, per-test scratch directories, audio
//! checks (Goertzel tone detection on WAV files), and drivers for the peers.
//!
//! The tests drive real third-party peers (Chromium, aiortc, GStreamer's
//! gst-launch, SIPp, baresip, Kamailio; Janus for the benchmarks); this
//! crate only starts them, talks to them and measures what they heard.

pub mod admin;
pub mod audio;
pub mod autocall;
pub mod baresip;
pub mod bridge;
pub mod bursty;
pub mod capture;
pub mod certs;
pub mod coturn;
pub mod daemon;
pub mod dispatcher;
pub mod gateway;
pub mod haproxy;
pub mod janus;
pub mod jsonlines;
pub mod kamailio;
pub mod linphone;
pub mod mutate;
pub mod netns;
pub mod pacing;
pub mod process;
pub mod rtp_peer;
pub mod sdes;
pub mod sipp;
pub mod webrtc_load;
pub mod webrtc_peer;
pub mod ws_client;
