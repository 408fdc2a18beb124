//! One incoming call's life: the media leg from the offer, the answer (or
//! the SIP code a failure maps to), the preset's media attached to the leg,
//! then the call's events until either side ends it or the daemon shuts
//! down. Every line it logs is inside the call's span (`call{id=...}`).

use super::config::Action;
use super::dtmf::KeySequence;
use super::error::CallError;
use super::media::Attached;
use super::Shared;
use crate::ops::CallTally;
use pipelines::{DescriptionKind, Leg, LegEvent};
use signaling::{Call, CallEvent, IncomingCall, Party};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

/// What reaches a call's task besides SIP events.
pub enum Internal {
    Leg(LegEvent),
    /// The played file ended (play preset without loop).
    PlaybackEnded,
}

pub type InternalSender = mpsc::UnboundedSender<Internal>;

/// Runs the call to its end. `seq` numbers calls for pipeline names;
/// `tally` becomes the call's record.
pub async fn run(shared: Arc<Shared>, incoming: IncomingCall, seq: u64, mut tally: CallTally) {
    let IncomingCall { call, from, to, request_uri, sdp_offer, .. } = incoming;
    info!(%from, %to, "incoming call");
    let (tx, mut rx) = mpsc::unbounded_channel();
    let offerless = sdp_offer.is_none();
    let (leg, local) = match setup(&shared, seq, sdp_offer, tx.clone()).await {
        Ok(x) => x,
        Err(err) => {
            warn!(code = err.status_code(), error = %err, "call refused");
            if let Err(e) = call.reject(err.status_code(), Some(err.reason())) {
                warn!(error = %e, "cannot send the rejection");
            }
            tally.refused(err.status_code(), &err.to_string());
            return;
        }
    };
    if let Err(e) = call.answer(&local) {
        warn!(error = %e, "cannot answer");
        leg.close("answer failed");
        tally.refused(500, &format!("cannot answer: {e}"));
        return;
    }
    tally.answered();
    let codec = leg.port().send_codec().map(|c| c.sdp_name());
    tally.leg("rtp", codec);
    info!(codec = %codec.unwrap_or("(after ACK)"), preset = %shared.config.action.name(), "answered");

    let room_name = user_part(&request_uri).or_else(|| user_part(&to)).unwrap_or_else(|| "default".into());
    let mut attached = match Attached::start(&shared, &leg, call.id(), &room_name, tx.clone()) {
        Ok(a) => Some(a),
        Err(err) => {
            warn!(error = %err, "cannot start the preset's media; hanging up");
            let _ = tokio::time::timeout(Duration::from_secs(3), call.hangup()).await;
            leg.close("media failed");
            tally.ended("local", &format!("media failed: {err}"));
            return;
        }
    };
    if let Some(path) = attached.as_ref().and_then(Attached::recording) {
        tally.recording(path);
    }
    let seated = matches!(attached, Some(Attached::Conference(_)));
    if seated {
        shared.metrics.room_participants(1);
    }
    let limit = match shared.config.action {
        Action::Play if shared.config.play.hangup_after > 0 => Some(shared.config.play.hangup_after),
        Action::Record if shared.config.record.max_seconds > 0 => Some(shared.config.record.max_seconds),
        _ => None,
    };
    let deadline = tokio::time::sleep(Duration::from_secs(limit.unwrap_or(u64::MAX / 4)));
    tokio::pin!(deadline);
    let mut shutdown = shared.shutdown.clone();
    let mut keys = KeySequence::new(&shared.config.conference.mute_dtmf);
    let mut call = call;

    // Who ended the call and why; our own ends get a BYE unless the
    // dialog already ended.
    let mut dialog_ended = false;
    let (ended_by, reason) = loop {
        tokio::select! {
            ev = call.next_event() => match ev {
                None => break ("remote", "dialog gone".to_string()),
                Some(CallEvent::Confirmed { sdp }) => {
                    if offerless {
                        match sdp {
                            Some(answer) => {
                                if let Err(e) = negotiate_answer(&leg, answer).await {
                                    warn!(error = %e, "the answer in the ACK is unusable");
                                    break ("local", "bad answer in ACK".into());
                                }
                                let codec = leg.port().send_codec().map(|c| c.sdp_name()).unwrap_or("?");
                                tally.leg_codec("rtp", codec);
                                info!(codec = %codec, "media negotiated from the ACK");
                            }
                            None => {
                                warn!("offerless INVITE and no answer in the ACK");
                                break ("local", "no SDP answer".into());
                            }
                        }
                    }
                    debug!("ACK received");
                }
                Some(CallEvent::Offer { kind, sdp }) => on_offer(&call, &leg, kind, sdp).await,
                Some(CallEvent::Info { content_type, dtmf, .. }) => match dtmf {
                    Some(d) => on_key(&mut keys, attached.as_ref(), d.digit, "info"),
                    None => info!(%content_type, "INFO received"),
                },
                Some(CallEvent::Message { content_type, body }) => info!(%content_type, len = body.len(), "MESSAGE received"),
                Some(CallEvent::Ended { by, reason }) => {
                    let by = if by == Party::Remote { "remote" } else { "local" };
                    info!(by = %by, %reason, "call ended");
                    dialog_ended = true;
                    break (by, reason);
                }
                Some(other) => debug!(?other, "call event"),
            },
            Some(ev) = rx.recv() => match ev {
                Internal::Leg(LegEvent::Dtmf { tone }) => on_key(&mut keys, attached.as_ref(), tone, "rfc4733"),
                Internal::Leg(LegEvent::ConnectionStateChange(state)) => info!(state = %state.as_str(), "media"),
                Internal::Leg(LegEvent::Closed { reason }) => {
                    warn!(%reason, "media stopped on its own");
                    break ("local", "media stopped".into());
                }
                Internal::Leg(_) => {}
                Internal::PlaybackEnded => {
                    info!("playback finished");
                    break ("local", "playback finished".into());
                }
            },
            _ = &mut deadline => {
                info!(seconds = limit.unwrap_or(0), "time limit reached");
                break ("local", "time limit".into());
            }
            _ = shutdown.changed() => {
                info!("shutting down: hanging up");
                break ("local", "shutdown".into());
            }
        }
    };
    // Media first, so recordings are finalized whatever SIP does next.
    if let Some(a) = attached.take() {
        let span = tracing::Span::current();
        let _ = tokio::task::spawn_blocking(move || span.in_scope(|| a.stop())).await;
        if seated {
            shared.metrics.room_participants(-1);
        }
    }
    if ended_by == "local" && !dialog_ended {
        match tokio::time::timeout(Duration::from_secs(4), call.hangup()).await {
            Ok(Ok(())) => info!(%reason, "call ended by us (BYE)"),
            Ok(Err(e)) => warn!(error = %e, "hang-up failed"),
            Err(_) => warn!("hang-up timed out"),
        }
    }
    let l = leg.clone();
    let _ = tokio::task::spawn_blocking(move || l.close("call ended")).await;
    tally.ended(ended_by, &reason);
}

/// Makes the leg and its local description: the answer to `offer`, or our
/// own offer for an offerless INVITE.
async fn setup(
    shared: &Arc<Shared>,
    seq: u64,
    offer: Option<String>,
    tx: InternalSender,
) -> Result<(Leg, String), CallError> {
    if shared.is_shutting_down() {
        return Err(CallError::ShuttingDown);
    }
    let options = shared.leg_options.clone();
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || {
        let _enter = span.enter();
        let events: pipelines::EventHandler = Arc::new(move |ev| {
            let _ = tx.send(Internal::Leg(ev));
        });
        let leg = Leg::new_rtp(&format!("call-{seq}"), options, events)?;
        let result = (|| {
            if let Some(offer) = &offer {
                if offer.trim().is_empty() {
                    return Err(CallError::BadSdp("empty body".into()));
                }
                leg.set_remote_description(DescriptionKind::Offer, offer)?;
            }
            Ok(leg.local_description()?.sdp)
        })();
        match result {
            Ok(sdp) => Ok((leg, sdp)),
            Err(e) => {
                leg.close("setup failed");
                Err(e)
            }
        }
    })
    .await
    .map_err(|e| CallError::Media(format!("setup task: {e}")))?
}

async fn negotiate_answer(leg: &Leg, answer: String) -> Result<(), CallError> {
    let leg = leg.clone();
    tokio::task::spawn_blocking(move || leg.set_remote_description(DescriptionKind::Answer, &answer))
        .await
        .map_err(|e| CallError::Media(e.to_string()))??;
    Ok(())
}

/// A re-INVITE or UPDATE: hold, resume, a codec change. Answered from the
/// same leg; a refused offer (488) keeps the session as it was.
async fn on_offer(call: &Call, leg: &Leg, kind: signaling::OfferKind, sdp: Option<String>) {
    let l = leg.clone();
    let result = tokio::task::spawn_blocking(move || -> Result<String, CallError> {
        if let Some(offer) = sdp.as_deref() {
            l.set_remote_description(DescriptionKind::Offer, offer)?;
        }
        Ok(l.local_description()?.sdp)
    })
    .await
    .map_err(|e| CallError::Media(e.to_string()))
    .and_then(|r| r);
    match result {
        Ok(answer) => {
            let direction = ["sendonly", "recvonly", "inactive", "sendrecv"]
                .into_iter()
                .find(|d| answer.contains(&format!("a={d}")));
            info!(?kind, direction = %direction.unwrap_or("sendrecv"), "new offer answered");
            if let Err(e) = call.accept_offer(&answer).await {
                warn!(error = %e, "cannot answer the offer");
            }
        }
        Err(err) => {
            warn!(?kind, code = err.status_code(), error = %err, "offer refused");
            let _ = call.reject_offer(err.status_code()).await;
        }
    }
}

fn on_key(keys: &mut KeySequence, attached: Option<&Attached>, digit: char, via: &'static str) {
    info!(%digit, via = %via, "dtmf");
    if keys.push(digit) {
        if let Some(a) = attached {
            if let Some(muted) = a.toggle_mute() {
                info!(muted, "mute toggled by DTMF");
            }
        }
    }
}

/// The user part of a SIP URI (`sip:1234@host` -> `1234`), for room names.
pub fn user_part(uri: &str) -> Option<String> {
    let uri = uri.trim().trim_start_matches('<');
    let rest = uri.strip_prefix("sips:").or_else(|| uri.strip_prefix("sip:"))?;
    let (user, _) = rest.split_once('@')?;
    let user = user.split(';').next().unwrap_or(user);
    (!user.is_empty()).then(|| user.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_names_come_from_the_user_part() {
        assert_eq!(user_part("sip:1234@127.0.0.1:5060").as_deref(), Some("1234"));
        assert_eq!(user_part("<sips:room-a@example.com>").as_deref(), Some("room-a"));
        assert_eq!(user_part("sip:u;x=1@h").as_deref(), Some("u"));
        assert_eq!(user_part("sip:127.0.0.1"), None);
        assert_eq!(user_part("tel:123"), None);
    }
}
