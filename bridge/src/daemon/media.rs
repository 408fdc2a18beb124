//! The preset's media on an answered call's leg: echo, a file player, or a
//! seat in a conference room (rooms by name, made at the first caller,
//! recorded if configured, closed with the last caller). The record preset
//! records through the call layer, which finishes the file with the call.

use super::config::{Action, ConferenceSettings, Config, FileFormat};
use crate::call::CallError;
use pipelines::{Echo, Leg, Player, RecordFormat, Recorder, Room};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tracing::{info, warn};

/// Media attached to one call; [`Attached::stop`] detaches it.
pub enum Attached {
    Echo(Echo),
    Play(Player),
    Conference(Seat),
    /// The record preset: the call layer holds the recorder.
    Nothing,
}

impl Attached {
    /// Attaches what `config.action` asks for to `leg`; `on_playback_end`
    /// is called when a non-looping file ends.
    pub fn start(
        config: &Config,
        rooms: &Rooms,
        leg: &Leg,
        room: &str,
        on_playback_end: Box<dyn FnOnce() + Send>,
    ) -> Result<Attached, CallError> {
        match config.action {
            Action::Echo => Ok(Attached::Echo(Echo::new(leg.port()))),
            Action::Play => {
                let player = Player::start(leg.port(), &config.play.file, config.play.looped, on_playback_end)?;
                info!(file = %config.play.file.display(), looped = config.play.looped, "playing");
                Ok(Attached::Play(player))
            }
            Action::Conference => {
                let seat = rooms.join(room, leg, &config.conference)?;
                info!(room = %room, participants = seat.room.len(), "joined the conference");
                Ok(Attached::Conference(seat))
            }
            Action::Record | Action::Gateway => Ok(Attached::Nothing),
        }
    }

    /// Toggles the caller's mute in a conference; the new state, or `None`
    /// when muting means nothing here.
    pub fn toggle_mute(&self) -> Option<bool> {
        match self {
            Attached::Conference(seat) => {
                let muted = !seat.room.is_muted(seat.id);
                seat.room.set_muted(seat.id, muted);
                Some(muted)
            }
            _ => None,
        }
    }

    /// Detaches the media (blocking: a room may finish its recording).
    pub fn stop(self) {
        match self {
            Attached::Echo(e) => drop(e),
            Attached::Play(p) => p.stop(),
            Attached::Conference(seat) => seat.leave(),
            Attached::Nothing => {}
        }
    }
}

pub fn record_format(f: FileFormat) -> RecordFormat {
    match f {
        FileFormat::Wav => RecordFormat::Wav,
        FileFormat::Ogg => RecordFormat::OggOpus,
    }
}

/// `<dir>/<prefix><UTC time>-<id>.<ext>`, the directory created, the id
/// made safe for a file name.
pub fn file_name(dir: &Path, prefix: &str, id: &str, format: FileFormat) -> Result<PathBuf, CallError> {
    std::fs::create_dir_all(dir)
        .map_err(|e| CallError::Media(pipelines::Error::File(format!("creating {}: {e}", dir.display()))))?;
    let safe: String =
        id.chars().take(64).map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '_' }).collect();
    Ok(dir.join(format!("{prefix}{}-{safe}.{}", utc_stamp(), format.extension())))
}

/// `YYYYMMDDTHHMMSSZ` from the system clock.
fn utc_stamp() -> String {
    let secs =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0) as i64;
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Conference rooms by name.
#[derive(Default, Clone)]
pub struct Rooms {
    inner: Arc<Mutex<HashMap<String, RoomEntry>>>,
}

struct RoomEntry {
    room: Room,
    members: usize,
    recorder: Option<Recorder>,
}

/// One caller's place in a room; [`Seat::leave`] gives it up.
pub struct Seat {
    rooms: Rooms,
    name: String,
    pub room: Room,
    pub id: u64,
}

impl Rooms {
    fn join(&self, name: &str, leg: &Leg, settings: &ConferenceSettings) -> Result<Seat, CallError> {
        let mut rooms = self.inner.lock().unwrap();
        if !rooms.contains_key(name) {
            let room = Room::new(name, settings.rate)?;
            let recorder = if settings.record {
                let path = file_name(&settings.record_dir, "room-", name, settings.format)?;
                let r = room.record(&path, record_format(settings.format))?;
                info!(room = %name, file = %path.display(), "recording the room");
                Some(r)
            } else {
                None
            };
            rooms.insert(name.to_string(), RoomEntry { room, members: 0, recorder });
        }
        let entry = rooms.get_mut(name).expect("inserted above");
        let id = entry.room.join(leg.port())?;
        entry.members += 1;
        Ok(Seat { rooms: self.clone(), name: name.to_string(), room: entry.room.clone(), id })
    }

    /// Closes every room (finalizing room recordings) at shutdown.
    pub fn close_all(&self) {
        let entries: Vec<(String, RoomEntry)> = self.inner.lock().unwrap().drain().collect();
        for (name, entry) in entries {
            close_room(&name, entry);
        }
    }
}

impl Seat {
    pub fn leave(self) {
        self.room.leave(self.id);
        let mut rooms = self.rooms.inner.lock().unwrap();
        let Some(entry) = rooms.get_mut(&self.name) else { return };
        entry.members = entry.members.saturating_sub(1);
        info!(room = %self.name, participants = entry.members, "left the conference");
        if entry.members == 0 {
            let entry = rooms.remove(&self.name).expect("present");
            drop(rooms);
            close_room(&self.name, entry);
        }
    }
}

fn close_room(name: &str, entry: RoomEntry) {
    if let Some(r) = entry.recorder {
        let path = r.path().to_path_buf();
        match r.stop() {
            Ok(()) => info!(room = %name, file = %path.display(), "room recording finished"),
            Err(e) => warn!(room = %name, error = %e, "room recording could not be finished"),
        }
    }
    entry.room.close();
    info!(room = %name, "room closed");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recording_names_are_safe_and_dated() {
        let dir = std::env::temp_dir().join(format!("sipbridge-rec-{}", std::process::id()));
        let p = file_name(&dir, "room-", "a/b@c:d", FileFormat::Ogg).unwrap();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with("room-20") && name.ends_with("-a_b_c_d.ogg"), "{name}");
        assert_eq!(utc_stamp().len(), 16);
    }
}
