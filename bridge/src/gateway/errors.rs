//! Error codes of the gateway's requests, on top of the JSON-RPC and media
//! codes of docs/protocol.md (-326xx, 1000-1009). Every error carries a
//! sentence a person can act on.

use crate::call::CallError;
use crate::protocol::RpcError;
use serde_json::json;

pub mod codes {
    pub use crate::protocol::codes::*;
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

pub fn err(code: i32, message: impl Into<String>) -> RpcError {
    RpcError::new(code, message)
}

pub fn no_call(id: &str) -> RpcError {
    err(codes::NO_SUCH_CALL, format!("there is no call {id:?} on this connection"))
}

pub fn call_state(message: impl Into<String>) -> RpcError {
    err(codes::CALL_STATE, message)
}

pub fn from_sip(e: signaling::Error) -> RpcError {
    let status = e.status_code();
    RpcError {
        code: codes::SIP,
        message: format!("SIP request failed: {e}"),
        data: Some(json!({ "sipStatus": status })),
    }
}

pub fn from_media(e: pipelines::Error) -> RpcError {
    RpcError::from(e)
}

/// A call-layer failure as the browser sees it, with the SIP status the
/// call layer chose in `data.sipStatus`.
pub fn from_call(e: CallError) -> RpcError {
    let status = e.sip_status();
    let code = match e {
        CallError::Sip(e) => return from_sip(e),
        CallError::Media(e) => return from_media(e),
        CallError::WrongState(_) => return call_state(e.to_string()),
        CallError::NoCommonCodec(_) => codes::NO_COMMON_CODEC,
        CallError::BadSdp(_) => codes::INVALID_SDP,
        CallError::NoMediaPort(_) => codes::MEDIA,
        CallError::TooManyCalls(_) | CallError::ShuttingDown => codes::TOO_MANY_CALLS,
    };
    RpcError { code, message: e.to_string(), data: Some(json!({ "sipStatus": status })) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sip_errors_carry_the_status() {
        let e = from_sip(signaling::Error::Rejected { code: 486, reason: "Busy Here".into() });
        assert_eq!(e.code, codes::SIP);
        assert_eq!(e.data, Some(json!({"sipStatus": 486})));
    }
}
