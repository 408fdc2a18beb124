//! Our offers on a lean leg, through str0m's SDP API: the first adds the
//! audio section; every later one offers that section again, in the
//! direction we want, as webrtcbin's `create-offer` does after its first
//! negotiation (a `sip.update` without JSEP, a stdio `getLocalDescription`
//! once stable).
//!
//! str0m makes an offer only for a change it has not negotiated yet, and an
//! unchanged direction is none. So a re-offer sets the section's direction
//! to another one and back to the wanted one: two changes, which str0m
//! writes into its offer in order, the last winning. Passing through the
//! other direction touches nothing we use: str0m drops its send queue and
//! retransmission cache when a section stops sending (both empty here:
//! what we write is sent at once, and audio has no retransmissions) and
//! its receive register when one stops receiving (only ever in a section
//! that did not receive).

use crate::codec::sdp::Direction;
use str0m::change::{SdpOffer, SdpPendingOffer};
use str0m::media::{Direction as RtcDirection, MediaKind, Mid};
use str0m::Rtc;

/// An offer of `direction` for the audio section `mid` (a new section when
/// `None`), and the section's mid; `None` if str0m has nothing to offer.
pub(super) fn make(
    rtc: &mut Rtc,
    mid: Option<Mid>,
    direction: Direction,
) -> (Option<(SdpOffer, SdpPendingOffer)>, Mid) {
    let wanted = rtc_direction(direction);
    let mut change = rtc.sdp_api();
    let mid = match mid {
        None => change.add_media(MediaKind::Audio, wanted, None, None, None),
        Some(mid) => {
            change.set_direction(mid, detour(wanted));
            change.set_direction(mid, wanted);
            mid
        }
    };
    (change.apply(), mid)
}

/// A direction other than `wanted`, to pass through on the way to it.
fn detour(wanted: RtcDirection) -> RtcDirection {
    match wanted {
        RtcDirection::SendRecv => RtcDirection::RecvOnly,
        _ => RtcDirection::SendRecv,
    }
}

fn rtc_direction(direction: Direction) -> RtcDirection {
    match direction {
        Direction::SendRecv => RtcDirection::SendRecv,
        Direction::SendOnly => RtcDirection::SendOnly,
        Direction::RecvOnly => RtcDirection::RecvOnly,
        Direction::Inactive => RtcDirection::Inactive,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// Two str0m sessions negotiated once (ours offering), then ours offers
    /// again: an unchanged direction still makes an offer, a new one is
    /// written into it, and the answer is taken.
    #[test]
    fn later_offers_are_made_with_or_without_a_change() {
        let mut ours = super::super::setup::config(&[crate::codec::Codec::Pcmu]).build(Instant::now());
        let mut peer = super::super::setup::config(&[crate::codec::Codec::Pcmu]).build(Instant::now());
        let mut negotiate = |ours: &mut Rtc, mid: Option<Mid>, direction: Direction| {
            let (made, mid) = make(ours, mid, direction);
            let (offer, pending) = made.expect("an offer");
            let text = offer.to_sdp_string();
            let answer = peer.sdp_api().accept_offer(offer).expect("the peer answers");
            ours.sdp_api().accept_answer(pending, answer).expect("the answer is taken");
            (text, mid)
        };
        let (first, mid) = negotiate(&mut ours, None, Direction::SendRecv);
        assert!(first.contains("a=sendrecv"), "{first}");
        let (again, same_mid) = negotiate(&mut ours, Some(mid), Direction::SendRecv);
        assert_eq!(same_mid, mid);
        assert!(again.contains("a=sendrecv") && again.contains("PCMU/8000"), "{again}");
        let (held, _) = negotiate(&mut ours, Some(mid), Direction::SendOnly);
        assert!(held.contains("a=sendonly") && !held.contains("a=sendrecv"), "{held}");
        assert_eq!(ours.media(mid).unwrap().direction(), RtcDirection::SendOnly);
        let (resumed, _) = negotiate(&mut ours, Some(mid), Direction::SendRecv);
        assert!(resumed.contains("a=sendrecv"), "{resumed}");
        assert_eq!(ours.media(mid).unwrap().direction(), RtcDirection::SendRecv);
    }
}
