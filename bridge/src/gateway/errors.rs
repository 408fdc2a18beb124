//! Errors of the gateway's requests (codes in `crate::protocol::codes`,
//! 2000-2007 on top of the JSON-RPC and media codes). Every error carries a
//! sentence a person can act on.

use crate::call::CallError;
use crate::protocol::RpcError;
use serde_json::json;

pub use crate::protocol::codes;

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
