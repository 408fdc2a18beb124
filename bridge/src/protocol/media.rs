//! The media engine's methods (`sipbridge stdio`): one enum variant per
//! method, its params a struct. docs/protocol.md and node-shim's
//! `BridgeMethod` type are checked against [`MediaRequest::METHODS`].

use pipelines::{Codec, SrtpPolicy, SymmetricRtp};
use serde::Deserialize;
use std::net::IpAddr;
use std::path::PathBuf;

#[derive(Deserialize)]
#[serde(tag = "method", content = "params")]
pub enum MediaRequest {
    #[serde(rename = "protocol.version")]
    Version(NoParams),
    #[serde(rename = "session.create")]
    Create(CreateParams),
    #[serde(rename = "session.getLocalDescription")]
    GetLocalDescription(SessionParams),
    #[serde(rename = "session.setRemoteDescription")]
    SetRemoteDescription(RemoteDescriptionParams),
    #[serde(rename = "session.addIceCandidate")]
    AddIceCandidate(CandidateParams),
    #[serde(rename = "session.connect")]
    Connect(LinkParams),
    #[serde(rename = "session.disconnect")]
    Disconnect(LinkParams),
    #[serde(rename = "session.sendDtmf")]
    SendDtmf(DtmfParams),
    #[serde(rename = "session.close")]
    Close(CloseParams),
    #[serde(rename = "session.play")]
    Play(PlayParams),
    #[serde(rename = "session.stopPlay")]
    StopPlay(SessionParams),
    #[serde(rename = "session.record")]
    Record(FileParams),
    #[serde(rename = "session.stopRecord")]
    StopRecord(SessionParams),
    #[serde(rename = "session.list")]
    ListSessions(NoParams),
    #[serde(rename = "session.getStats")]
    GetStats(SessionParams),
    #[serde(rename = "room.join")]
    JoinRoom(RoomParams),
    #[serde(rename = "room.leave")]
    LeaveRoom(RoomParams),
    #[serde(rename = "room.mute")]
    Mute(MuteParams),
    #[serde(rename = "room.record")]
    RecordRoom(RoomFileParams),
    #[serde(rename = "room.stopRecord")]
    StopRecordRoom(RoomFileParams),
    #[serde(rename = "room.list")]
    ListRooms(NoParams),
}

impl MediaRequest {
    /// Every method name, in the order above.
    pub const METHODS: &'static [&'static str] = &[
        "protocol.version",
        "session.create",
        "session.getLocalDescription",
        "session.setRemoteDescription",
        "session.addIceCandidate",
        "session.connect",
        "session.disconnect",
        "session.sendDtmf",
        "session.close",
        "session.play",
        "session.stopPlay",
        "session.record",
        "session.stopRecord",
        "session.list",
        "session.getStats",
        "room.join",
        "room.leave",
        "room.mute",
        "room.record",
        "room.stopRecord",
        "room.list",
    ];
}

/// Params of a method that takes none (an empty object or none at all).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoParams {}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateParams {
    pub kind: LegKind,
    #[serde(default)]
    pub codecs: Option<Vec<Codec>>,
    #[serde(default)]
    pub latency_ms: Option<u32>,
    /// Address(es) to receive media on / gather ICE candidates on.
    #[serde(default)]
    pub media_addresses: Option<Vec<IpAddr>>,
    /// Advertised instead of the media address (behind a 1:1 NAT).
    #[serde(default)]
    pub public_address: Option<IpAddr>,
    /// STUN/TURN servers (WebRTC sessions), as RTCConfiguration has them.
    #[serde(default)]
    pub ice_servers: Option<Vec<pipelines::IceServer>>,
    #[serde(default)]
    pub opus_bitrate: Option<u32>,
    #[serde(default)]
    pub opus_complexity: Option<u32>,
    #[serde(default)]
    pub ptime: Option<u32>,
    #[serde(default)]
    pub symmetric_rtp: Option<SymmetricRtp>,
    #[serde(default)]
    pub rtp_timeout_ms: Option<u32>,
    #[serde(default)]
    pub srtp: Option<SrtpPolicy>,
    /// Which WebRTC leg a `webrtc` session is: webrtcbin (default) or lean.
    #[serde(default)]
    pub webrtc_leg: Option<pipelines::WebRtcLegKind>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
pub enum LegKind {
    Webrtc,
    Rtp,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionParams {
    pub session: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteDescriptionParams {
    pub session: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub sdp: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CandidateParams {
    pub session: String,
    pub candidate: String,
    #[serde(default)]
    pub sdp_m_line_index: Option<u32>,
    /// Accepted as RTCIceCandidate has it; one audio m-line means the
    /// index is enough.
    #[serde(default)]
    #[allow(dead_code)]
    pub sdp_mid: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkParams {
    pub a: String,
    pub b: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DtmfParams {
    pub session: String,
    pub tones: String,
    #[serde(default)]
    pub duration: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloseParams {
    pub session: String,
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlayParams {
    pub session: String,
    pub file: PathBuf,
    #[serde(default, rename = "loop")]
    pub looped: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileParams {
    pub session: String,
    pub file: PathBuf,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoomParams {
    pub room: String,
    pub session: String,
    /// Mixing rate for a room this request creates.
    #[serde(default)]
    pub rate: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MuteParams {
    pub room: String,
    pub session: String,
    pub muted: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoomFileParams {
    pub room: String,
    #[serde(default)]
    pub file: Option<PathBuf>,
}
