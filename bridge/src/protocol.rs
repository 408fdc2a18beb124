//! The control protocol: JSON-RPC 2.0, one object per line (stdio) or per
//! WebSocket message. docs/protocol.md is the contract; this module is its
//! wire shape.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Bumped on any incompatible change; announced in the `ready` notification
/// and returned by `protocol.version`.
pub const PROTOCOL_VERSION: u32 = 1;

/// An incoming request (or notification, when `id` is absent).
#[derive(Debug, Deserialize)]
pub struct Request {
    #[serde(default)]
    pub jsonrpc: Option<String>,
    #[serde(default)]
    pub id: Option<Value>,
    pub method: String,
    #[serde(default)]
    pub params: Value,
}

#[derive(Debug, Serialize)]
pub struct Response {
    pub jsonrpc: &'static str,
    pub id: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<RpcError>,
}

#[derive(Debug, Serialize)]
pub struct Notification {
    pub jsonrpc: &'static str,
    pub method: &'static str,
    pub params: Value,
}

/// A JSON-RPC error object. `code` is one of the constants below; `data`
/// may carry `sipStatus`, the SIP response a signalling layer should send.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RpcError {
    pub code: i32,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

/// JSON-RPC 2.0 reserved codes.
pub mod codes {
    pub const PARSE_ERROR: i32 = -32700;
    pub const INVALID_REQUEST: i32 = -32600;
    pub const METHOD_NOT_FOUND: i32 = -32601;
    pub const INVALID_PARAMS: i32 = -32602;
    pub const INTERNAL: i32 = -32603;
    /// No session (or room) with that id.
    pub const UNKNOWN_SESSION: i32 = 1000;
    /// The SDP was rejected; the message says why.
    pub const INVALID_SDP: i32 = 1001;
    /// No codec in common with the remote description (SIP 488).
    pub const NO_COMMON_CODEC: i32 = 1002;
    /// The request does not fit the offer/answer state or the session's links.
    pub const WRONG_STATE: i32 = 1003;
    /// A bad ICE candidate.
    pub const INVALID_CANDIDATE: i32 = 1004;
    /// DTMF could not be sent.
    pub const DTMF: i32 = 1005;
    /// The media engine failed (missing plugin, port, pipeline error).
    pub const MEDIA: i32 = 1006;
    /// Something took too long (ICE gathering, media start).
    pub const TIMEOUT: i32 = 1007;
    /// The session has been closed.
    pub const CLOSED: i32 = 1008;
    /// A file to play or record cannot be used (missing, bad extension, no such directory).
    pub const FILE: i32 = 1009;
}

impl RpcError {
    pub fn new(code: i32, message: impl Into<String>) -> Self {
        RpcError { code, message: message.into(), data: None }
    }

    pub fn invalid_params(message: impl Into<String>) -> Self {
        RpcError::new(codes::INVALID_PARAMS, message)
    }
}

impl From<pipelines::Error> for RpcError {
    fn from(err: pipelines::Error) -> Self {
        use pipelines::Error as E;
        let code = match &err {
            E::InvalidSdp(_) => codes::INVALID_SDP,
            E::NoCommonCodec(_) => codes::NO_COMMON_CODEC,
            E::WrongState(_) => codes::WRONG_STATE,
            E::InvalidCandidate(_) => codes::INVALID_CANDIDATE,
            E::Dtmf(_) => codes::DTMF,
            E::Timeout(_) => codes::TIMEOUT,
            E::Closed => codes::CLOSED,
            E::File(_) => codes::FILE,
            E::MissingElement(_) | E::Bind(_) | E::Pipeline(_) => codes::MEDIA,
        };
        // The same classification the call layer answers SIP peers with.
        let sip_status = crate::call::media_sip_status(&err);
        RpcError { code, message: err.to_string(), data: Some(serde_json::json!({ "sipStatus": sip_status })) }
    }
}

impl Response {
    pub fn result(id: Value, result: Value) -> Self {
        Response { jsonrpc: "2.0", id, result: Some(result), error: None }
    }

    pub fn error(id: Value, error: RpcError) -> Self {
        Response { jsonrpc: "2.0", id, result: None, error: Some(error) }
    }
}

impl Notification {
    pub fn new(method: &'static str, params: Value) -> Self {
        Notification { jsonrpc: "2.0", method, params }
    }
}

/// Parses one incoming message. An unparseable line yields the error
/// response to send (with `id: null`, as JSON-RPC prescribes).
pub fn parse(line: &str) -> Result<Request, Box<Response>> {
    let value: Value = serde_json::from_str(line).map_err(|e| {
        Box::new(Response::error(Value::Null, RpcError::new(codes::PARSE_ERROR, format!("not valid JSON: {e}"))))
    })?;
    let id = value.get("id").cloned().unwrap_or(Value::Null);
    let request: Request = serde_json::from_value(value).map_err(|e| {
        Box::new(Response::error(
            id.clone(),
            RpcError::new(codes::INVALID_REQUEST, format!("not a JSON-RPC request ({e}); expected {{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"...\",\"params\":{{...}}}}")),
        ))
    })?;
    if request.jsonrpc.as_deref().is_some_and(|v| v != "2.0") {
        return Err(Box::new(Response::error(id, RpcError::new(codes::INVALID_REQUEST, "jsonrpc must be \"2.0\""))));
    }
    Ok(request)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_lines_get_parse_or_request_errors() {
        let err = parse("{not json").unwrap_err();
        assert_eq!(err.error.as_ref().unwrap().code, codes::PARSE_ERROR);
        assert_eq!(err.id, Value::Null);
        let err = parse(r#"{"id":7,"params":{}}"#).unwrap_err();
        assert_eq!(err.error.as_ref().unwrap().code, codes::INVALID_REQUEST);
        assert_eq!(err.id, serde_json::json!(7), "the id is echoed when it can be read");
        let err = parse(r#"{"jsonrpc":"1.0","id":1,"method":"x"}"#).unwrap_err();
        assert_eq!(err.error.as_ref().unwrap().code, codes::INVALID_REQUEST);
    }

    #[test]
    fn no_common_codec_maps_to_sip_488() {
        let err = RpcError::from(pipelines::Error::NoCommonCodec("G729".into()));
        assert_eq!(err.code, codes::NO_COMMON_CODEC);
        assert_eq!(err.data, Some(serde_json::json!({"sipStatus": 488})));
    }

    #[test]
    fn responses_serialize_without_empty_fields() {
        let text = serde_json::to_string(&Response::result(serde_json::json!(1), serde_json::json!({}))).unwrap();
        assert_eq!(text, r#"{"jsonrpc":"2.0","id":1,"result":{}}"#);
    }
}
