//! The preset front-end: one incoming call answered with the preset's
//! media (echo, play, record, a conference seat), then the call's events
//! until either side ends it or the service drains. The SIP side (offer,
//! answer, re-offers, DTMF, hang-up, transfer) is the call layer's; when
//! the caller is transferred, or an INVITE with Replaces takes the call
//! over, the preset's media moves to the new call.
//! Every line it logs is inside the first call's span (`call{id=...}`).

use super::config::{Action, Config};
use super::dtmf::KeySequence;
use super::media::{self, Attached, Rooms};
use crate::call::{Calls, Event, SipCall};
use signaling::{IncomingCall, Party};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

/// What preset calls share.
pub struct PresetContext {
    pub config: Config,
    pub calls: Arc<Calls>,
    pub rooms: Rooms,
}

/// Runs the call to its end.
pub async fn run(ctx: Arc<PresetContext>, incoming: IncomingCall) {
    info!(from = %incoming.from, to = %incoming.to, "incoming call");
    // An INVITE with Replaces continues the call it names (whose task
    // moves the media); anything else is a call of its own.
    let Ok(Some(incoming)) = SipCall::take_over(&ctx.calls, incoming).await else { return };
    let room_name =
        user_part(&incoming.request_uri).or_else(|| user_part(&incoming.to)).unwrap_or_else(|| "default".into());
    let Ok((mut call, mut events)) = SipCall::incoming(&ctx.calls, incoming).await else { return };
    if let Err(e) = call.answer() {
        warn!(error = %e, "cannot answer");
        call.end(Party::Local, 500, "answer failed").await;
        return;
    }
    let codec = call.leg().port().send_codec().map(|c| c.sdp_name()).unwrap_or("(after ACK)");
    info!(codec = %codec, preset = %ctx.config.action.name(), "answered");

    let (ended_tx, mut playback_ended) = mpsc::unbounded_channel();
    let on_playback_end = move || -> Box<dyn FnOnce() + Send> {
        let ended_tx = ended_tx.clone();
        Box::new(move || {
            let _ = ended_tx.send(());
        })
    };
    let mut attached = match attach(&ctx, &call, &room_name, on_playback_end()).await {
        Ok(a) => a,
        Err(err) => {
            warn!(error = %err, "cannot start the preset's media; hanging up");
            let _ = call.hangup("media failed").await;
            return;
        }
    };
    let config = &ctx.config;
    let limit = match config.action {
        Action::Play if config.play.hangup_after > 0 => Some(config.play.hangup_after),
        Action::Record if config.record.max_seconds > 0 => Some(config.record.max_seconds),
        _ => None,
    };
    let deadline = tokio::time::sleep(Duration::from_secs(limit.unwrap_or(u64::MAX / 4)));
    tokio::pin!(deadline);
    let mut keys = KeySequence::new(&config.conference.mute_dtmf);

    loop {
        tokio::select! {
            ev = events.recv() => match ev {
                None | Some(Event::Ended { .. }) => break,
                Some(Event::Dtmf { digit, method, .. }) => {
                    info!(%digit, via = %method.as_str(), "dtmf");
                    if keys.push(digit) {
                        if let Some(muted) = attached.toggle_mute() {
                            info!(muted, "mute toggled by DTMF");
                        }
                    }
                }
                Some(Event::Info { content_type, .. }) => info!(%content_type, "INFO received"),
                Some(Event::Message { content_type, body }) => {
                    info!(%content_type, len = body.len(), "MESSAGE received")
                }
                Some(Event::Media(state)) => info!(state = %state.as_str(), "media"),
                Some(Event::Transferred { call_id }) => {
                    let Some(next) = call.successor() else { continue };
                    info!(new_call = %call_id, peer = %next.peer, "transferred: the preset's media moves to the new call");
                    detach(attached).await;
                    call = next;
                    attached = match attach(&ctx, &call, &room_name, on_playback_end()).await {
                        Ok(a) => a,
                        Err(err) => {
                            warn!(error = %err, "cannot start the preset's media on the new call; hanging up");
                            let _ = call.hangup("media failed").await;
                            return;
                        }
                    };
                }
                Some(other) => debug!(?other, "call event"),
            },
            Some(()) = playback_ended.recv() => {
                info!("playback finished");
                let _ = call.hangup("playback finished").await;
            }
            _ = &mut deadline => {
                info!(seconds = limit.unwrap_or(0), "time limit reached");
                let _ = call.hangup("time limit").await;
            }
        }
    }
    detach(attached).await;
}

/// Detaches the preset's media off the async threads (a room may finish
/// its recording).
async fn detach(attached: Attached) {
    let span = tracing::Span::current();
    let _ = tokio::task::spawn_blocking(move || span.in_scope(|| attached.stop())).await;
}

/// The preset's media on the call's leg (the record preset records through
/// the call layer, which finishes the file when the call ends).
async fn attach(
    ctx: &Arc<PresetContext>,
    call: &Arc<SipCall>,
    room: &str,
    on_playback_end: Box<dyn FnOnce() + Send>,
) -> Result<Attached, crate::call::CallError> {
    let config = &ctx.config;
    if config.action == Action::Record {
        let path = media::file_name(&config.record.dir, "", &call.id, config.record.format)?;
        call.start_recording(vec![(call.leg().clone(), path.clone())], media::record_format(config.record.format))
            .await?;
        info!(file = %path.display(), "recording");
    }
    Attached::start(config, &ctx.rooms, call.leg(), room, on_playback_end)
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
