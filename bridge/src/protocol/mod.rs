//! The control protocol: JSON-RPC 2.0, one object per line (stdio) or per
//! WebSocket message. docs/protocol.md is the contract; this module is its
//! wire shape.

pub mod gateway;
pub mod media;
pub mod stats;

use serde::de::DeserializeOwned;
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
    /// The SRTP policies do not meet (`sipStatus` 488).
    pub const ENCRYPTION: i32 = 1010;

    // The gateway's (docs/protocol.md, section Gateway).
    /// The request needs an account: `sip.register` first (or a guest one).
    pub const NOT_REGISTERED: i32 = 2000;
    /// An account is already registered or registering on this connection.
    pub const ALREADY_REGISTERED: i32 = 2001;
    /// No call with that id on this connection.
    pub const NO_SUCH_CALL: i32 = 2002;
    /// The call is not in a state for this request (e.g. accept on an
    /// outgoing call, hold before it is answered).
    pub const CALL_STATE: i32 = 2003;
    /// The connection already has as many calls as it may.
    pub const TOO_MANY_CALLS: i32 = 2004;
    /// The SIP request failed; `data.sipStatus` has the code.
    pub const SIP: i32 = 2005;
    /// A JSEP object is missing or unusable.
    pub const JSEP: i32 = 2006;
    /// Recording could not start or stop.
    pub const RECORDING: i32 = 2007;
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
            E::Encryption(_) => codes::ENCRYPTION,
            E::IceServer(_) => codes::INVALID_PARAMS,
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
/// response to send, with the request's `id` when the id itself can be
/// read (a number out of range elsewhere, a syntax error after it), else
/// `id: null` as JSON-RPC prescribes.
pub fn parse(line: &str) -> Result<Request, Box<Response>> {
    let value: Value = serde_json::from_str(line).map_err(|e| {
        Box::new(Response::error(recover_id(line), RpcError::new(codes::PARSE_ERROR, format!("not valid JSON: {e}"))))
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

/// The `id` member of a top-level object that does not parse as a whole:
/// read as far as the id, other values skipped without being converted.
fn recover_id(line: &str) -> Value {
    let mut id = None;
    let _ = serde::de::DeserializeSeed::deserialize(IdSeed(&mut id), &mut serde_json::Deserializer::from_str(line));
    id.unwrap_or(Value::Null)
}

/// Walks an object's members, keeping the first `id`.
struct IdSeed<'a>(&'a mut Option<Value>);

impl<'de> serde::de::DeserializeSeed<'de> for IdSeed<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for IdSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON-RPC object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<std::borrow::Cow<str>>()? {
            if key == "id" && self.0.is_none() {
                *self.0 = Some(map.next_value()?);
            } else {
                map.next_value::<serde::de::IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

/// The typed request for `method` with `params`: METHOD_NOT_FOUND for a
/// name not in `methods` (pointing at `docs`), INVALID_PARAMS for params
/// that do not fit the method.
pub fn decode<T: DeserializeOwned>(method: &str, params: Value, methods: &[&str], docs: &str) -> Result<T, RpcError> {
    if !methods.contains(&method) {
        return Err(RpcError::new(codes::METHOD_NOT_FOUND, format!("unknown method {method:?}; see {docs}")));
    }
    let params = if params.is_null() { Value::Object(Default::default()) } else { params };
    serde_json::from_value(serde_json::json!({ "method": method, "params": params }))
        .map_err(|e| RpcError::invalid_params(format!("invalid params: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `methods` is exactly the set of names the enum `T` accepts: serde
    /// lists its variants when it meets an unknown one.
    fn assert_methods_match<T: DeserializeOwned>(methods: &[&str]) {
        let err = serde_json::from_value::<T>(serde_json::json!({ "method": "no.such", "params": {} }))
            .err()
            .expect("unknown method refused")
            .to_string();
        let listed: Vec<&str> = err.split('`').skip(3).step_by(2).collect();
        assert_eq!(listed, methods, "{err}");
    }

    #[test]
    fn method_lists_match_the_request_enums() {
        assert_methods_match::<media::MediaRequest>(media::MediaRequest::METHODS);
        assert_methods_match::<gateway::GatewayRequest>(gateway::GatewayRequest::METHODS);
    }

    /// docs/protocol.md documents every method and no other; node-shim's
    /// `BridgeMethod` type names exactly the media engine's methods.
    #[test]
    fn docs_and_node_shim_name_every_method() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let docs = std::fs::read_to_string(root.join("docs/protocol.md")).unwrap();
        let shim = std::fs::read_to_string(root.join("node-shim/src/index.d.ts")).unwrap();
        let all: Vec<&str> =
            media::MediaRequest::METHODS.iter().chain(gateway::GatewayRequest::METHODS).copied().collect();
        for m in &all {
            assert!(docs.contains(&format!("`{m}`")), "docs/protocol.md does not document `{m}`");
        }
        let documented = documented_methods(&docs);
        for m in &documented {
            assert!(all.contains(&m.as_str()), "docs/protocol.md documents `{m}`, which no request enum has");
        }
        let union = shim.split("export type BridgeMethod =").nth(1).expect("BridgeMethod in index.d.ts");
        let union = &union[..union.find(';').expect("end of BridgeMethod")];
        let shim_methods: Vec<&str> = union.split('"').skip(1).step_by(2).collect();
        assert_eq!(shim_methods, media::MediaRequest::METHODS, "node-shim/src/index.d.ts BridgeMethod");
    }

    /// Method names the docs mention: backticked `session.*`, `room.*`,
    /// `sip.*` and `protocol.*` names, less the two notification methods.
    fn documented_methods(docs: &str) -> Vec<String> {
        let mut names: Vec<String> = docs
            .split('`')
            .skip(1)
            .step_by(2)
            .filter(|t| {
                let (ns, name) = t.split_once('.').unwrap_or_default();
                ["session", "room", "sip", "protocol"].contains(&ns)
                    && !name.is_empty()
                    && name.chars().all(|c| c.is_ascii_alphanumeric())
            })
            .filter(|t| !["session.event", "sip.event"].contains(t))
            .map(str::to_string)
            .collect();
        names.sort();
        names.dedup();
        names
    }

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
    fn ids_are_recovered_when_they_parse() {
        let id = |line: &str| parse(line).unwrap_err().id;
        assert_eq!(id(r#"{"jsonrpc":"2.0","id":3,"method":"x","params":{"n":1e400}}"#), serde_json::json!(3));
        assert_eq!(id(r#"{"params":{"n":1e400},"id":"a\"b"}"#), serde_json::json!("a\"b"), "after the bad number");
        assert_eq!(id(r#"{"jsonrpc":"2.0","id":4,"method":"x","params":{"#), serde_json::json!(4), "cut short");
        assert_eq!(id(r#"{"id":1e400,"method":"x"}"#), Value::Null, "the id itself is out of range");
        assert_eq!(id(r#"{"params":{"n":1e400}}"#), Value::Null);
        assert_eq!(id(r#"[1e400]"#), Value::Null);
        assert_eq!(id("{not json"), Value::Null);
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
