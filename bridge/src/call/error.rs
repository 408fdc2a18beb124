//! Why a call could not be set up or changed, classified into the SIP
//! status the peer is answered with. This is the one place where media and
//! signaling failures become SIP codes: the daemon rejects INVITEs with
//! [`CallError::sip_status`], the gateway and `sipbridge stdio` put the same
//! number into their errors' `data.sipStatus`.

use std::fmt;

#[derive(Debug)]
pub enum CallError {
    /// The offer has no codec we accept: 488.
    NoCommonCodec(String),
    /// The SDP is malformed or unusable: 400.
    BadSdp(String),
    /// The concurrent call limit is reached: 503.
    TooManyCalls(usize),
    /// The service is shutting down or draining: 503.
    ShuttingDown,
    /// No media port could be bound: 503 (try elsewhere).
    NoMediaPort(String),
    /// The request does not fit the call's state (hold before answer, ...).
    WrongState(String),
    /// A SIP request of ours failed; carries the peer's (or the stack's) status.
    Sip(signaling::Error),
    /// Any other media failure: 500.
    Media(pipelines::Error),
}

impl CallError {
    /// The SIP response a peer gets for this failure.
    pub fn sip_status(&self) -> u16 {
        match self {
            CallError::NoCommonCodec(_) => 488,
            CallError::BadSdp(_) => 400,
            CallError::TooManyCalls(_) | CallError::ShuttingDown | CallError::NoMediaPort(_) => 503,
            CallError::WrongState(_) => 491,
            CallError::Sip(e) => e.status_code(),
            CallError::Media(_) => 500,
        }
    }

    /// Reason phrase of the response.
    pub fn reason(&self) -> &'static str {
        match self {
            CallError::NoCommonCodec(_) => "Not Acceptable Here",
            CallError::BadSdp(_) => "Bad Request",
            CallError::TooManyCalls(_) => "Too Many Calls",
            CallError::ShuttingDown => "Shutting Down",
            CallError::NoMediaPort(_) => "Service Unavailable",
            CallError::WrongState(_) => "Request Pending",
            CallError::Sip(_) | CallError::Media(_) => "Server Internal Error",
        }
    }
}

/// The SIP status for a media error (what [`CallError::from`] would say).
pub fn media_sip_status(e: &pipelines::Error) -> u16 {
    use pipelines::Error as E;
    match e {
        E::NoCommonCodec(_) => 488,
        E::InvalidSdp(_) => 400,
        E::Bind(_) => 503,
        _ => 500,
    }
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::NoCommonCodec(m) => write!(f, "no common codec: {m}"),
            CallError::BadSdp(m) => write!(f, "unusable SDP: {m}"),
            CallError::TooManyCalls(n) => write!(f, "{n} calls in progress, the limit"),
            CallError::ShuttingDown => write!(f, "shutting down"),
            CallError::NoMediaPort(m) => write!(f, "no media port: {m}"),
            CallError::WrongState(m) => write!(f, "{m}"),
            CallError::Sip(e) => write!(f, "SIP request failed: {e}"),
            CallError::Media(e) => write!(f, "media: {e}"),
        }
    }
}

impl std::error::Error for CallError {}

impl From<pipelines::Error> for CallError {
    fn from(e: pipelines::Error) -> Self {
        use pipelines::Error as E;
        match e {
            E::NoCommonCodec(m) => CallError::NoCommonCodec(m),
            E::InvalidSdp(m) => CallError::BadSdp(m),
            E::Bind(m) => CallError::NoMediaPort(m),
            other => CallError::Media(other),
        }
    }
}

impl From<signaling::Error> for CallError {
    fn from(e: signaling::Error) -> Self {
        CallError::Sip(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_errors_classify_into_sip_codes() {
        let cases = [
            (pipelines::Error::NoCommonCodec("G729".into()), 488),
            (pipelines::Error::InvalidSdp("no v=".into()), 400),
            (pipelines::Error::Bind("busy".into()), 503),
            (pipelines::Error::Closed, 500),
        ];
        for (e, status) in cases {
            assert_eq!(media_sip_status(&e), status, "{e}");
            assert_eq!(CallError::from(e).sip_status(), status);
        }
        assert_eq!(CallError::TooManyCalls(20).sip_status(), 503);
        assert_eq!(CallError::ShuttingDown.sip_status(), 503);
        let rejected = signaling::Error::Rejected { code: 486, reason: "Busy Here".into() };
        assert_eq!(CallError::from(rejected).sip_status(), 486);
    }
}
