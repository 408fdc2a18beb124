//! Why a call could not be set up, classified into the SIP status code the
//! caller is answered with.

use std::fmt;

#[derive(Debug)]
pub enum CallError {
    /// The offer has no codec we accept: 488.
    NoCommonCodec(String),
    /// SRTP required by one side and refused by the other: 488.
    Encryption(String),
    /// The SDP is malformed or unusable: 400.
    BadSdp(String),
    /// The concurrent call limit is reached: 503.
    TooManyCalls(usize),
    /// The daemon is shutting down: 503.
    ShuttingDown,
    /// No media port could be bound: 503 (try elsewhere).
    NoMediaPort(String),
    /// Any other media failure: 500.
    Media(String),
}

impl CallError {
    pub fn status_code(&self) -> u16 {
        match self {
            CallError::NoCommonCodec(_) | CallError::Encryption(_) => 488,
            CallError::BadSdp(_) => 400,
            CallError::TooManyCalls(_) | CallError::ShuttingDown | CallError::NoMediaPort(_) => 503,
            CallError::Media(_) => 500,
        }
    }

    /// Reason phrase of the response.
    pub fn reason(&self) -> &'static str {
        match self {
            CallError::NoCommonCodec(_) | CallError::Encryption(_) => "Not Acceptable Here",
            CallError::BadSdp(_) => "Bad Request",
            CallError::TooManyCalls(_) => "Too Many Calls",
            CallError::ShuttingDown => "Shutting Down",
            CallError::NoMediaPort(_) => "Service Unavailable",
            CallError::Media(_) => "Server Internal Error",
        }
    }
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::NoCommonCodec(m) => write!(f, "no common codec: {m}"),
            CallError::Encryption(m) => write!(f, "media encryption: {m}"),
            CallError::BadSdp(m) => write!(f, "unusable SDP: {m}"),
            CallError::TooManyCalls(n) => write!(f, "{n} calls in progress, the limit"),
            CallError::ShuttingDown => write!(f, "shutting down"),
            CallError::NoMediaPort(m) => write!(f, "no media port: {m}"),
            CallError::Media(m) => write!(f, "media: {m}"),
        }
    }
}

impl std::error::Error for CallError {}

impl From<pipelines::Error> for CallError {
    fn from(e: pipelines::Error) -> Self {
        use pipelines::Error as E;
        match e {
            E::NoCommonCodec(m) => CallError::NoCommonCodec(m),
            E::Encryption(m) => CallError::Encryption(m),
            E::InvalidSdp(m) => CallError::BadSdp(m),
            E::Bind(m) => CallError::NoMediaPort(m),
            other => CallError::Media(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_errors_classify_into_sip_codes() {
        assert_eq!(CallError::from(pipelines::Error::NoCommonCodec("G729".into())).status_code(), 488);
        assert_eq!(CallError::from(pipelines::Error::Encryption("no a=crypto".into())).status_code(), 488);
        assert_eq!(CallError::from(pipelines::Error::InvalidSdp("no v=".into())).status_code(), 400);
        assert_eq!(CallError::from(pipelines::Error::Bind("busy".into())).status_code(), 503);
        assert_eq!(CallError::from(pipelines::Error::Closed).status_code(), 500);
        assert_eq!(CallError::TooManyCalls(20).status_code(), 503);
        assert_eq!(CallError::ShuttingDown.status_code(), 503);
    }
}
