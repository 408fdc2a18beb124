//! Offer/answer on a call's RTP leg, run off the async threads (GStreamer
//! calls block). Directions are read with `pipelines::sdp`, never by
//! searching the SDP text.

use super::error::CallError;
use pipelines::sdp::{Direction, SessionDescription};
use pipelines::{DescriptionKind, Leg, LegEvent, LegOptions};
use std::sync::Arc;
use tokio::sync::mpsc;

/// Runs blocking media work (webrtcbin promises, ICE gathering, recorder
/// finalization) off the async threads.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, CallError> + Send + 'static,
) -> Result<T, CallError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| CallError::Media(pipelines::Error::Pipeline(e.to_string())))?
}

/// A new RTP leg and its local description: the answer to `offer`, or an
/// offer of ours when there is none. The leg's events arrive on the receiver.
pub async fn new_leg(
    name: &str,
    options: LegOptions,
    offer: Option<String>,
) -> Result<(Leg, mpsc::UnboundedReceiver<LegEvent>, String), CallError> {
    let (tx, rx) = mpsc::unbounded_channel();
    let name = name.to_string();
    let span = tracing::Span::current();
    let (leg, sdp) = blocking(move || {
        let _enter = span.enter();
        let events: pipelines::EventHandler = Arc::new(move |ev| {
            let _ = tx.send(ev);
        });
        let leg = Leg::new_rtp(&name, options, events)?;
        let local = (|| {
            if let Some(offer) = &offer {
                if offer.trim().is_empty() {
                    return Err(CallError::BadSdp("empty body".into()));
                }
                leg.set_remote_description(DescriptionKind::Offer, offer)?;
            }
            Ok(leg.local_description()?.sdp)
        })();
        match local {
            Ok(sdp) => Ok((leg, sdp)),
            Err(e) => {
                leg.close("setup failed");
                Err(e)
            }
        }
    })
    .await?;
    Ok((leg, rx, sdp))
}

/// Closes a leg (its pipeline stops; blocking).
pub async fn close(leg: Leg, reason: &'static str) {
    let _ = blocking(move || {
        leg.close(reason);
        Ok(())
    })
    .await;
}

/// Applies the peer's answer to our pending offer; returns the peer's direction.
pub async fn apply_answer(leg: &Leg, answer: String) -> Result<Direction, CallError> {
    let leg = leg.clone();
    blocking(move || {
        let direction = audio_direction(&answer)?;
        leg.set_remote_description(DescriptionKind::Answer, &answer)?;
        Ok(direction)
    })
    .await
}

/// Applies a final answer that differs from the early one already applied:
/// the leg makes a fresh offer state for it first.
pub async fn reapply_answer(leg: &Leg, answer: String) -> Result<(), CallError> {
    let leg = leg.clone();
    blocking(move || {
        leg.local_description()?;
        Ok(leg.set_remote_description(DescriptionKind::Answer, &answer)?)
    })
    .await
}

/// Answers a mid-call offer (an offerless one with an offer of ours);
/// returns the SDP to send and the direction the peer asked for.
pub async fn answer_offer(leg: &Leg, offer: Option<String>) -> Result<(String, Direction), CallError> {
    let leg = leg.clone();
    blocking(move || {
        let direction = match &offer {
            Some(offer) => {
                let direction = audio_direction(offer)?;
                leg.set_remote_description(DescriptionKind::Offer, offer)?;
                direction
            }
            None => Direction::SendRecv,
        };
        Ok((leg.local_description()?.sdp, direction))
    })
    .await
}

/// An offer of ours asking for `direction` (hold: sendonly or inactive;
/// resume: sendrecv).
pub async fn offer_with_direction(leg: &Leg, direction: Direction) -> Result<String, CallError> {
    let leg = leg.clone();
    blocking(move || {
        leg.set_direction(direction)?;
        Ok(leg.local_description()?.sdp)
    })
    .await
}

/// The direction of the audio section of `sdp`.
pub fn audio_direction(sdp: &str) -> Result<Direction, CallError> {
    let description = SessionDescription::parse(sdp)?;
    let (_, audio) = description.audio().ok_or_else(|| CallError::BadSdp("there is no audio section".into()))?;
    Ok(description.direction_of(audio))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directions_come_from_the_audio_section() {
        let sdp = |extra: &str| {
            format!(
                "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n\
                 m=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n{extra}"
            )
        };
        assert_eq!(audio_direction(&sdp("")).unwrap(), Direction::SendRecv);
        assert_eq!(audio_direction(&sdp("a=sendonly\r\n")).unwrap(), Direction::SendOnly);
        assert_eq!(audio_direction(&sdp("a=inactive\r\n")).unwrap(), Direction::Inactive);
        assert!(audio_direction("not sdp").is_err());
    }
}
