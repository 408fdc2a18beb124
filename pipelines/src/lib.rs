//! GStreamer building blocks for sipbridge: media legs (WebRTC on
//! `webrtcbin`, plain RTP for SIP peers), codec negotiation, and the links
//! that carry audio between legs, transcoding only when codecs differ.
//!
//! No SIP and no JSON here: SDP is text in, text out; events go to a callback.
//!
//! Data flow of one leg (see docs/architecture.md):
//! ```text
//!  network -> [webrtcbin | socket thread -> in sequence] -> depay -+-> (encoded frames) -> MediaPort consumers
//!                                                                  +-> decode -> (raw S16 mono) -> consumers
//!  MediaPort inputs -> (raw) encode -+-> payload -> [webrtcbin | appsink -> socket] -> network
//!                    (encoded) ------+
//! ```

pub mod codec;
mod error;
mod file;
mod join;
mod leg;
mod runtime;

pub use codec::sdp;
pub use codec::{Codec, CodecChoice};
pub use error::Error;
pub use file::player::Player;
pub use file::recorder::{RecordFormat, Recorder};
pub use join::echo::Echo;
pub use join::link::Link;
pub use join::room::Room;
pub use leg::dtmf;
pub use leg::ice::{self, IceServer};
pub use leg::port::MediaPort;
pub use leg::traffic::{rtp_totals, RtpTotals};
pub use leg::SrtpPolicy;
pub use leg::WebRtcLegKind;
pub use leg::{
    ConnectionState, DescriptionKind, EventHandler, InboundStats, Leg, LegEvent, LegOptions, LegStats, OutboundStats,
    RemoteInboundStats, SessionDescriptionText, SymmetricRtp,
};
pub use runtime::init;
