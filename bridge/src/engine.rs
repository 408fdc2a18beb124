//! The media engine behind `sipbridge stdio`: a registry of media sessions
//! and the links, rooms, players and recorders between them, and the
//! dispatch of [`MediaRequest`]s onto them. Locks guard maps only: a
//! recorder being finished (seconds, at worst) is taken out first.

use crate::protocol::media::{CreateParams, LegKind, LinkParams, MediaRequest, PlayParams, RoomParams};
use crate::protocol::{codes, decode, Notification, RpcError, PROTOCOL_VERSION};
use pipelines::{DescriptionKind, Leg, LegEvent, LegOptions, Link, Player, RecordFormat, Recorder, Room};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc::UnboundedSender;

/// Engine-wide defaults, from the command line or the daemon config.
#[derive(Debug, Clone, Default)]
pub struct EngineConfig {
    pub leg_defaults: LegOptions,
}

pub struct Engine {
    config: EngineConfig,
    sessions: Mutex<HashMap<String, Leg>>,
    /// Links by the pair of session ids they join (sorted).
    links: Mutex<HashMap<(String, String), Link>>,
    rooms: Mutex<HashMap<String, RoomEntry>>,
    players: Mutex<HashMap<String, Player>>,
    recorders: Mutex<HashMap<String, Recorder>>,
    next_id: AtomicU64,
    notifications: UnboundedSender<Notification>,
}

struct RoomEntry {
    room: Room,
    /// Session id -> participant id.
    members: HashMap<String, u64>,
    recorder: Option<Recorder>,
}

impl Engine {
    pub fn new(config: EngineConfig, notifications: UnboundedSender<Notification>) -> Arc<Engine> {
        Arc::new(Engine {
            config,
            sessions: Mutex::default(),
            links: Mutex::default(),
            rooms: Mutex::default(),
            players: Mutex::default(),
            recorders: Mutex::default(),
            next_id: AtomicU64::new(1),
            notifications,
        })
    }

    /// The `ready` notification a client waits for before its first request.
    pub fn ready_notification() -> Notification {
        Notification::new("ready", json!({ "protocol": PROTOCOL_VERSION, "version": env!("CARGO_PKG_VERSION") }))
    }

    /// Runs one method. Blocking media work runs off the async threads.
    pub async fn call(self: &Arc<Self>, method: &str, params: Value) -> Result<Value, RpcError> {
        let engine = self.clone();
        let method = method.to_string();
        tokio::task::spawn_blocking(move || engine.call_blocking(&method, params))
            .await
            .map_err(|e| RpcError::new(codes::INTERNAL, format!("request failed: {e}")))?
    }

    fn call_blocking(&self, method: &str, p: Value) -> Result<Value, RpcError> {
        use MediaRequest as M;
        match decode(method, p, MediaRequest::METHODS, "docs/protocol.md")? {
            M::Version(_) => Ok(json!({ "protocol": PROTOCOL_VERSION, "version": env!("CARGO_PKG_VERSION") })),
            M::Create(p) => self.create(p),
            M::GetLocalDescription(p) => {
                let d = self.session(&p.session)?.local_description()?;
                Ok(json!({ "type": d.kind.as_str(), "sdp": d.sdp }))
            }
            M::SetRemoteDescription(p) => {
                let kind = match p.kind.as_str() {
                    "offer" => DescriptionKind::Offer,
                    "answer" => DescriptionKind::Answer,
                    other => {
                        return Err(RpcError::invalid_params(format!(
                            "type must be \"offer\" or \"answer\", not {other:?}"
                        )))
                    }
                };
                self.session(&p.session)?.set_remote_description(kind, &p.sdp)?;
                Ok(json!({}))
            }
            M::AddIceCandidate(p) => {
                self.session(&p.session)?.add_ice_candidate(&p.candidate, p.sdp_m_line_index.unwrap_or(0))?;
                Ok(json!({}))
            }
            M::Connect(p) => self.connect(p),
            M::Disconnect(p) => match self.links.lock().unwrap().remove(&link_key(&p.a, &p.b)) {
                Some(_) => Ok(json!({})),
                None => Err(RpcError::new(codes::WRONG_STATE, format!("{} and {} are not connected", p.a, p.b))),
            },
            M::SendDtmf(p) => {
                self.session(&p.session)?.send_dtmf(&p.tones, p.duration.unwrap_or(100))?;
                Ok(json!({}))
            }
            M::Close(p) => {
                self.close(&p.session, p.reason.as_deref().unwrap_or("closed by request"))?;
                Ok(json!({}))
            }
            M::Play(p) => self.play(p),
            M::StopPlay(p) => {
                self.session(&p.session)?;
                self.players.lock().unwrap().remove(&p.session);
                Ok(json!({}))
            }
            M::Record(p) => {
                let format = RecordFormat::from_path(&p.file)?;
                let leg = self.session(&p.session)?;
                let recorder = Recorder::start(leg.port(), &p.file, format)?;
                // The replaced recorder is finished outside the lock: it
                // can take seconds, and every other request needs the map.
                let replaced = self.recorders.lock().unwrap().insert(p.session, recorder);
                if let Some(old) = replaced {
                    old.stop()?;
                }
                Ok(json!({}))
            }
            M::StopRecord(p) => {
                let recorder = self.recorders.lock().unwrap().remove(&p.session);
                let recorder = recorder.ok_or_else(|| {
                    RpcError::new(codes::WRONG_STATE, format!("session {} is not recording", p.session))
                })?;
                let file = recorder.path().to_path_buf();
                recorder.stop()?;
                Ok(json!({ "file": file }))
            }
            M::JoinRoom(p) => self.join_room(p),
            M::LeaveRoom(p) => {
                self.leave_room(&p.room, &p.session)?;
                Ok(json!({}))
            }
            M::Mute(p) => {
                let rooms = self.rooms.lock().unwrap();
                let entry = rooms.get(&p.room).ok_or_else(|| no_room(&p.room))?;
                let id = entry.members.get(&p.session).ok_or_else(|| not_member(&p.room, &p.session))?;
                entry.room.set_muted(*id, p.muted);
                Ok(json!({}))
            }
            M::RecordRoom(p) => {
                let file = p.file.ok_or_else(|| RpcError::invalid_params("file is required"))?;
                let format = RecordFormat::from_path(&file)?;
                let replaced = {
                    let mut rooms = self.rooms.lock().unwrap();
                    let entry = rooms.get_mut(&p.room).ok_or_else(|| no_room(&p.room))?;
                    let recorder = entry.room.record(&file, format)?;
                    entry.recorder.replace(recorder)
                };
                if let Some(old) = replaced {
                    old.stop()?;
                }
                Ok(json!({}))
            }
            M::StopRecordRoom(p) => {
                let recorder =
                    self.rooms.lock().unwrap().get_mut(&p.room).ok_or_else(|| no_room(&p.room))?.recorder.take();
                let recorder = recorder
                    .ok_or_else(|| RpcError::new(codes::WRONG_STATE, format!("room {} is not recording", p.room)))?;
                let file = recorder.path().to_path_buf();
                recorder.stop()?;
                Ok(json!({ "file": file }))
            }
            M::ListRooms(_) => {
                let rooms = self.rooms.lock().unwrap();
                let list: Vec<Value> = rooms
                    .iter()
                    .map(|(name, e)| json!({ "room": name, "sessions": e.members.keys().collect::<Vec<_>>() }))
                    .collect();
                Ok(json!({ "rooms": list }))
            }
            M::GetStats(p) => {
                Ok(json!({ "stats": crate::protocol::stats::reports(&self.session(&p.session)?.stats()?) }))
            }
            M::ListSessions(_) => {
                let sessions: Vec<String> = self.sessions.lock().unwrap().keys().cloned().collect();
                Ok(json!({ "sessions": sessions }))
            }
        }
    }

    fn session(&self, id: &str) -> Result<Leg, RpcError> {
        self.sessions
            .lock()
            .unwrap()
            .get(id)
            .cloned()
            .ok_or_else(|| RpcError::new(codes::UNKNOWN_SESSION, format!("no session {id:?}")))
    }

    fn create(&self, p: CreateParams) -> Result<Value, RpcError> {
        let mut options = self.config.leg_defaults.clone();
        if let Some(codecs) = p.codecs {
            if codecs.is_empty() {
                return Err(RpcError::invalid_params("codecs must name at least one codec"));
            }
            options.codecs = codecs;
        }
        if let Some(ms) = p.latency_ms {
            options.jitter_latency_ms = ms.clamp(0, 2000);
        }
        if let Some(addresses) = p.media_addresses {
            if addresses.is_empty() {
                return Err(RpcError::invalid_params("mediaAddresses must not be empty"));
            }
            options.media_addresses = addresses;
        }
        if let Some(public) = p.public_address {
            options.public_address = Some(public);
        }
        if let Some(servers) = p.ice_servers {
            pipelines::ice::validate(&servers).map_err(|e| RpcError::invalid_params(format!("iceServers: {e}")))?;
            options.ice_servers = servers;
        }
        if let Some(b) = p.opus_bitrate {
            options.opus_bitrate = b.clamp(6000, 510_000);
        }
        if let Some(c) = p.opus_complexity {
            options.opus_complexity = c.min(10);
        }
        if let Some(ptime) = p.ptime {
            options.ptime = ptime.clamp(10, 60);
        }
        if let Some(s) = p.symmetric_rtp {
            options.symmetric_rtp = s;
        }
        if let Some(t) = p.rtp_timeout_ms {
            options.rtp_timeout_ms = t;
        }
        if let Some(policy) = p.srtp {
            options.srtp = policy;
        }
        if let Some(leg) = p.webrtc_leg {
            options.webrtc_leg = leg;
        }
        let id = format!("s{}", self.next_id.fetch_add(1, Ordering::Relaxed));
        let events = self.event_handler(&id);
        let leg = match p.kind {
            LegKind::Webrtc => Leg::new_webrtc(&id, options, events)?,
            LegKind::Rtp => Leg::new_rtp(&id, options, events)?,
        };
        self.sessions.lock().unwrap().insert(id.clone(), leg);
        tracing::info!(session = %id, "session created");
        Ok(json!({ "session": id }))
    }

    fn event_handler(&self, id: &str) -> pipelines::EventHandler {
        let tx = self.notifications.clone();
        let session = id.to_string();
        Arc::new(move |event| {
            let params = match event {
                LegEvent::ConnectionStateChange(state) => {
                    json!({ "session": session, "type": "connectionstatechange", "state": state.as_str() })
                }
                LegEvent::IceCandidate { candidate, sdp_mline_index } => json!({
                    "session": session, "type": "icecandidate", "candidate": candidate, "sdpMLineIndex": sdp_mline_index
                }),
                LegEvent::Dtmf { tone } => {
                    tracing::info!(session = %session, %tone, "DTMF received");
                    json!({ "session": session, "type": "dtmf", "tone": tone.to_string() })
                }
                LegEvent::MediaTimeout { silent_for_ms, held } => {
                    json!({ "session": session, "type": "mediatimeout", "silentMs": silent_for_ms, "held": held })
                }
                LegEvent::MediaResumed => json!({ "session": session, "type": "mediaresumed" }),
                LegEvent::Closed { reason } => json!({ "session": session, "type": "closed", "reason": reason }),
            };
            let _ = tx.send(Notification::new("session.event", params));
        })
    }

    fn connect(&self, p: LinkParams) -> Result<Value, RpcError> {
        if p.a == p.b {
            return Err(RpcError::invalid_params("a session cannot be connected to itself"));
        }
        let (a, b) = (self.session(&p.a)?, self.session(&p.b)?);
        for id in [&p.a, &p.b] {
            self.check_audio_free(id)?;
        }
        let mut links = self.links.lock().unwrap();
        let link = Link::new(a.port(), b.port());
        let passthrough = link.is_passthrough();
        links.insert(link_key(&p.a, &p.b), link);
        tracing::info!(a = %p.a, b = %p.b, passthrough, "sessions connected");
        Ok(json!({ "passthrough": passthrough }))
    }

    /// One source of audio per session: two sources pushed into one send
    /// chain would interleave into noise. Mixing is what rooms are for.
    fn check_audio_free(&self, id: &str) -> Result<(), RpcError> {
        let busy = if self.links.lock().unwrap().keys().any(|(x, y)| x == id || y == id) {
            Some("connected to another session")
        } else if self.rooms.lock().unwrap().values().any(|e| e.members.contains_key(id)) {
            Some("in a room")
        } else if self.players.lock().unwrap().contains_key(id) {
            Some("playing a file")
        } else {
            None
        };
        match busy {
            Some(what) => {
                Err(RpcError::new(codes::WRONG_STATE, format!("session {id} is already {what}; stop that first")))
            }
            None => Ok(()),
        }
    }

    fn play(&self, p: PlayParams) -> Result<Value, RpcError> {
        let leg = self.session(&p.session)?;
        self.players.lock().unwrap().remove(&p.session);
        self.check_audio_free(&p.session)?;
        let tx = self.notifications.clone();
        let session = p.session.clone();
        let on_end = Box::new(move || {
            let _ = tx.send(Notification::new("session.event", json!({ "session": session, "type": "playended" })));
        });
        let player = Player::start(leg.port(), &p.file, p.looped, on_end)?;
        self.players.lock().unwrap().insert(p.session, player);
        Ok(json!({}))
    }

    fn join_room(&self, p: RoomParams) -> Result<Value, RpcError> {
        let leg = self.session(&p.session)?;
        self.check_audio_free(&p.session)?;
        let mut rooms = self.rooms.lock().unwrap();
        if !rooms.contains_key(&p.room) {
            let rate = p.rate.unwrap_or(16000);
            if ![8000, 16000, 24000, 32000, 48000].contains(&rate) {
                return Err(RpcError::invalid_params("rate must be 8000, 16000, 24000, 32000 or 48000"));
            }
            let room = Room::new(&p.room, rate)?;
            rooms.insert(p.room.clone(), RoomEntry { room, members: HashMap::new(), recorder: None });
        }
        let entry = rooms.get_mut(&p.room).expect("just inserted");
        let id = entry.room.join(leg.port())?;
        entry.members.insert(p.session.clone(), id);
        Ok(json!({ "room": p.room, "participants": entry.members.len() }))
    }

    fn leave_room(&self, room: &str, session: &str) -> Result<(), RpcError> {
        let emptied = {
            let mut rooms = self.rooms.lock().unwrap();
            let entry = rooms.get_mut(room).ok_or_else(|| no_room(room))?;
            let id = entry.members.remove(session).ok_or_else(|| not_member(room, session))?;
            entry.room.leave(id);
            if entry.members.is_empty() {
                rooms.remove(room)
            } else {
                None
            }
        };
        // Finished outside the lock: a recording can take seconds to close.
        if let Some(entry) = emptied {
            if let Some(recorder) = entry.recorder {
                let _ = recorder.stop();
            }
            entry.room.close();
        }
        Ok(())
    }

    pub fn close(&self, id: &str, reason: &str) -> Result<(), RpcError> {
        let leg = self
            .sessions
            .lock()
            .unwrap()
            .remove(id)
            .ok_or_else(|| RpcError::new(codes::UNKNOWN_SESSION, format!("no session {id:?}")))?;
        self.links.lock().unwrap().retain(|(x, y), _| x != id && y != id);
        self.players.lock().unwrap().remove(id);
        let recorder = self.recorders.lock().unwrap().remove(id);
        if let Some(recorder) = recorder {
            let _ = recorder.stop();
        }
        let member_of: Vec<String> = self
            .rooms
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, e)| e.members.contains_key(id))
            .map(|(n, _)| n.clone())
            .collect();
        for room in member_of {
            let _ = self.leave_room(&room, id);
        }
        leg.close(reason);
        tracing::info!(session = %id, %reason, "session closed");
        Ok(())
    }

    /// Closes every session (end of input, shutdown).
    pub fn close_all(&self, reason: &str) {
        let ids: Vec<String> = self.sessions.lock().unwrap().keys().cloned().collect();
        for id in ids {
            let _ = self.close(&id, reason);
        }
    }
}

fn no_room(room: &str) -> RpcError {
    RpcError::new(codes::UNKNOWN_SESSION, format!("no room {room:?}"))
}

fn not_member(room: &str, session: &str) -> RpcError {
    RpcError::new(codes::WRONG_STATE, format!("session {session} is not in room {room}"))
}

fn link_key(a: &str, b: &str) -> (String, String) {
    if a <= b {
        (a.to_string(), b.to_string())
    } else {
        (b.to_string(), a.to_string())
    }
}
