//! The gateway's methods (`sip.*` over the WebSocket): one enum variant per
//! method, its params a struct. docs/protocol.md is checked against
//! [`GatewayRequest::METHODS`].

use super::media::NoParams;
use super::{codes, RpcError};
use crate::call::DtmfMethod;
use pipelines::DescriptionKind;
use serde::Deserialize;
use std::collections::HashMap;

#[derive(Deserialize)]
#[serde(tag = "method", content = "params")]
pub enum GatewayRequest {
    #[serde(rename = "protocol.version")]
    Version(NoParams),
    #[serde(rename = "sip.register")]
    Register(RegisterParams),
    #[serde(rename = "sip.unregister")]
    Unregister(NoParams),
    #[serde(rename = "sip.call")]
    Call(CallParams),
    #[serde(rename = "sip.progress")]
    Progress(ProgressParams),
    #[serde(rename = "sip.accept")]
    Accept(AcceptParams),
    #[serde(rename = "sip.decline")]
    Decline(DeclineParams),
    #[serde(rename = "sip.hangup")]
    Hangup(HangupParams),
    #[serde(rename = "sip.hold")]
    Hold(HoldParams),
    #[serde(rename = "sip.unhold")]
    Unhold(CallOnly),
    #[serde(rename = "sip.update")]
    Update(UpdateParams),
    #[serde(rename = "sip.trickle")]
    Trickle(TrickleParams),
    #[serde(rename = "sip.dtmf")]
    Dtmf(DtmfParams),
    #[serde(rename = "sip.info")]
    Info(InfoParams),
    #[serde(rename = "sip.message")]
    Message(MessageParams),
    #[serde(rename = "sip.transfer")]
    Transfer(TransferParams),
    #[serde(rename = "sip.answerTransfer")]
    AnswerTransfer(AnswerTransferParams),
    #[serde(rename = "sip.recording")]
    Recording(RecordingParams),
    #[serde(rename = "sip.calls")]
    Calls(NoParams),
    #[serde(rename = "sip.stats")]
    Stats(CallOnly),
    #[serde(rename = "sip.subscribe")]
    Subscribe(SubscribeParams),
    #[serde(rename = "sip.unsubscribe")]
    Unsubscribe(UnsubscribeParams),
}

impl GatewayRequest {
    /// Every method name, in the order above.
    pub const METHODS: &'static [&'static str] = &[
        "protocol.version",
        "sip.register",
        "sip.unregister",
        "sip.call",
        "sip.progress",
        "sip.accept",
        "sip.decline",
        "sip.hangup",
        "sip.hold",
        "sip.unhold",
        "sip.update",
        "sip.trickle",
        "sip.dtmf",
        "sip.info",
        "sip.message",
        "sip.transfer",
        "sip.answerTransfer",
        "sip.recording",
        "sip.calls",
        "sip.stats",
        "sip.subscribe",
        "sip.unsubscribe",
    ];
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegisterParams {
    pub username: String,
    #[serde(default)]
    pub secret: Option<String>,
    #[serde(default)]
    pub ha1_secret: Option<String>,
    #[serde(default)]
    pub auth_user: Option<String>,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub proxy: Option<String>,
    #[serde(default)]
    pub outbound_proxy: Option<String>,
    #[serde(default)]
    pub transport: Option<String>,
    #[serde(default)]
    pub expires: Option<u32>,
    #[serde(default)]
    pub headers: Option<HashMap<String, String>>,
    #[serde(default)]
    pub guest: bool,
    #[serde(default)]
    pub incoming_header_prefixes: Option<Vec<String>>,
    /// Every this many ms, each call sends a `stats` event (off when absent).
    #[serde(default)]
    pub stats_interval_ms: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Jsep {
    #[serde(rename = "type")]
    pub kind: String,
    pub sdp: String,
}

impl Jsep {
    pub fn parse(self) -> Result<(DescriptionKind, String), RpcError> {
        let kind = match self.kind.as_str() {
            "offer" => DescriptionKind::Offer,
            "answer" => DescriptionKind::Answer,
            other => {
                return Err(RpcError::new(
                    codes::JSEP,
                    format!("jsep.type must be \"offer\" or \"answer\", not {other:?}"),
                ))
            }
        };
        if !self.sdp.trim_start().starts_with("v=0") {
            return Err(RpcError::new(codes::JSEP, "jsep.sdp is not an SDP (it must start with v=0)"));
        }
        Ok((kind, self.sdp))
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CallParams {
    pub uri: String,
    #[serde(default)]
    pub headers: Option<HashMap<String, String>>,
    #[serde(default)]
    pub jsep: Option<Jsep>,
    #[serde(default)]
    pub dtmf_method: Option<DtmfMethod>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProgressParams {
    pub call: String,
    pub jsep: Jsep,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AcceptParams {
    pub call: String,
    #[serde(default)]
    pub jsep: Option<Jsep>,
    #[serde(default)]
    pub dtmf_method: Option<DtmfMethod>,
    #[serde(default)]
    pub headers: Option<HashMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallOnly {
    pub call: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HangupParams {
    pub call: String,
    #[serde(default)]
    pub headers: Option<HashMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeclineParams {
    pub call: String,
    #[serde(default)]
    pub code: Option<u16>,
    #[serde(default)]
    pub headers: Option<HashMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HoldParams {
    pub call: String,
    #[serde(default)]
    pub direction: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateParams {
    pub call: String,
    #[serde(default)]
    pub jsep: Option<Jsep>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TrickleParams {
    pub call: String,
    #[serde(default)]
    pub candidate: Option<String>,
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
pub struct DtmfParams {
    pub call: String,
    pub tones: String,
    #[serde(default)]
    pub method: Option<DtmfMethod>,
    #[serde(default)]
    pub duration: Option<u32>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InfoParams {
    pub call: String,
    pub content_type: String,
    pub content: String,
}

/// `target` (blind) or `replaces` (attended: the id of another call of
/// this connection, whose peer the transferee calls), exactly one.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TransferParams {
    pub call: String,
    #[serde(default)]
    pub target: Option<String>,
    #[serde(default)]
    pub replaces: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AnswerTransferParams {
    pub call: String,
    pub accept: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MessageParams {
    #[serde(default)]
    pub call: Option<String>,
    #[serde(default)]
    pub uri: Option<String>,
    pub content: String,
    #[serde(default)]
    pub content_type: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscribeParams {
    pub event: String,
    #[serde(default)]
    pub accept: Option<String>,
    #[serde(default)]
    pub to: Option<String>,
    #[serde(default)]
    pub expires: Option<u32>,
    #[serde(default)]
    pub proxy: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnsubscribeParams {
    pub event: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordingParams {
    pub call: String,
    pub action: String,
    #[serde(default)]
    pub peer: Option<bool>,
    #[serde(default)]
    pub user: Option<bool>,
    #[serde(default)]
    pub filename: Option<String>,
}
