//! Joining legs: what carries audio from one leg's port to another's.
//! `link.rs` joins two legs both ways (passthrough or transcoding),
//! `echo.rs` sends a leg's audio back to itself, `room.rs` mixes many legs
//! (mix-minus) from each member's `playout.rs` queue. Between two plain RTP legs the packets skip all of it and
//! are relayed at the socket (`leg/relay.rs`), switched on by the link.

pub(crate) mod echo;
pub(crate) mod link;
mod playout;
pub(crate) mod room;
