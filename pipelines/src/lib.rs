//! GStreamer building blocks for sipbridge: media legs (WebRTC on
//! `webrtcbin`, plain RTP for SIP peers), codec negotiation, and the links
//! that carry audio between legs, transcoding only when codecs differ.
//!
//! No SIP and no JSON here: SDP is text in, text out; events go to a callback.
//!
//! Data flow of one leg (see docs/architecture.md):
//! ```text
//!  network -> [webrtcbin | udpsrc+rtpbin] -> depay -+-> (encoded frames) -> MediaPort consumers
//!                                                    +-> decode -> (raw S16 mono) -> consumers
//!  MediaPort inputs -> (raw) encode -+-> payload -> [webrtcbin | rtpbin+udpsink] -> network
//!                    (encoded) ------+
//! ```

pub mod codec;
mod dtls;
pub mod dtmf;
mod error;
mod leg;
mod link;
mod opus_decoder;
mod player;
mod port;
mod reactor;
mod receive;
mod recorder;
mod relay;
mod room;
mod rtp_leg;
mod runtime;
mod sdes;
pub mod sdp;
mod send;
mod srtp;
mod webrtc_leg;

pub use codec::{Codec, CodecChoice};
pub use error::Error;
pub use leg::{
    ConnectionState, DescriptionKind, EventHandler, Leg, LegEvent, LegOptions, SessionDescriptionText, SymmetricRtp,
};
pub use link::{Echo, Link};
pub use player::Player;
pub use port::MediaPort;
pub use recorder::{RecordFormat, Recorder};
pub use room::Room;
pub use runtime::init;
pub use sdes::SrtpPolicy;
