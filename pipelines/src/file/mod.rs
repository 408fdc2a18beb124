//! Files: audio from a file into a leg (`player.rs`), and audio from a
//! leg's port or a room's mix into a file (`recorder.rs`). Each runs its
//! own pipeline, attached to a port like any other consumer or source.

pub(crate) mod player;
pub(crate) mod recorder;
