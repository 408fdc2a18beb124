//! The echo test: a port's own audio sent back to it, as a link from the
//! port to itself. On an RTP leg its packets go back through the relay,
//! under our SSRC (a phone that sees its own SSRC come back would take it
//! for a loop).

use crate::join::link::Forward;
use crate::leg::port::MediaPort;
use std::sync::Arc;

/// A port's own audio sent back to it (the echo test). The frames go back
/// encoded, as received: no decoding, no encoding.
pub struct Echo {
    port: MediaPort,
    id: u64,
}

impl Echo {
    pub fn new(port: &MediaPort) -> Echo {
        let id = port.add_consumer(Arc::new(Forward { from: port.clone(), to: port.clone() }));
        port.relay_to(port);
        Echo { port: port.clone(), id }
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.port.stop_relay_to(&self.port);
        self.port.remove_consumer(self.id);
    }
}
