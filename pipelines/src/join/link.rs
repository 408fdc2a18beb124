//! A link carries audio both ways between two legs' ports: encoded frames
//! untouched when the legs share a codec (passthrough: no decode, no
//! encode), decoded audio otherwise (transcoding). The choice is made per
//! buffer from what each leg has negotiated, so a link can be made before
//! negotiation finishes and survives a codec change in a re-INVITE.
//! Between two legs with the same codec and packet time, packets
//! skip the link altogether: the legs relay them (see [`crate::leg::relay`]).

use crate::codec::Codec;
use crate::leg::port::{Consumer, MediaPort, Want};
use std::sync::Arc;

/// Two-way audio between two ports; dropping it (or [`Link::cut`]) stops it.
pub struct Link {
    a: MediaPort,
    b: MediaPort,
    ids: (u64, u64),
}

impl Link {
    pub fn new(a: &MediaPort, b: &MediaPort) -> Link {
        let a_to_b = a.add_consumer(Arc::new(Forward { from: a.clone(), to: b.clone() }));
        let b_to_a = b.add_consumer(Arc::new(Forward { from: b.clone(), to: a.clone() }));
        a.relay_to(b);
        b.relay_to(a);
        Link { a: a.clone(), b: b.clone(), ids: (a_to_b, b_to_a) }
    }

    /// Whether audio from `a` reaches `b` without transcoding right now.
    pub fn is_passthrough(&self) -> bool {
        passthrough(&self.a, &self.b) && passthrough(&self.b, &self.a)
    }

    pub fn cut(self) {}
}

impl Drop for Link {
    fn drop(&mut self) {
        self.a.stop_relay_to(&self.b);
        self.b.stop_relay_to(&self.a);
        self.a.remove_consumer(self.ids.0);
        self.b.remove_consumer(self.ids.1);
    }
}

fn passthrough(from: &MediaPort, to: &MediaPort) -> bool {
    matches!((from.receive_codec(), to.send_codec()), (Some(r), Some(s)) if r == s)
}

/// One direction of a link (or an echo: from a port to itself).
pub(crate) struct Forward {
    pub from: MediaPort,
    pub to: MediaPort,
}

impl Consumer for Forward {
    fn wants(&self) -> Want {
        if self.from.relays_to(&self.to) {
            return Want::Nothing;
        }
        match self.to.send_codec() {
            None => Want::Nothing,
            Some(_) if passthrough(&self.from, &self.to) => Want::Encoded,
            Some(_) => Want::Raw,
        }
    }

    /// The other leg's encoder rate: a G.711 leg needs no more than 8 kHz
    /// (Opus encoders take any rate, so they get what there is).
    fn raw_rate(&self) -> Option<u32> {
        self.to.send_codec().filter(|c| *c != Codec::Opus).map(Codec::sample_rate)
    }

    fn take(&self, want: Want, sample: &gst::Sample) {
        match want {
            Want::Encoded => self.to.push_encoded(sample),
            Want::Raw => self.to.push_raw(sample),
            Want::Nothing => {}
        }
    }
}
