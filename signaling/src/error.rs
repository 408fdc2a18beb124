//! The crate's one error type. Every variant knows which SIP status code it
//! stands for, so the layer above can turn a failure into a response (or a
//! `Failed { code, reason }` event) without matching on strings.

/// Everything that can go wrong in the user agent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A configuration value cannot be used (address, transport, limit).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A URI handed to the API does not parse as a SIP URI.
    #[error("invalid URI {uri:?}: {reason}")]
    InvalidUri {
        /// The text that was given.
        uri: String,
        /// What the parser said.
        reason: String,
    },
    /// A socket could not be bound or a message could not be sent.
    #[error("transport error: {0}")]
    Transport(String),
    /// The peer answered with a final failure response.
    #[error("rejected: {code} {reason}")]
    Rejected {
        /// The status code of the final response.
        code: u16,
        /// Its reason phrase.
        reason: String,
    },
    /// A challenge could not be answered (unknown algorithm, no credentials)
    /// or the credentials were refused again after answering it.
    #[error("authentication failed: {0}")]
    Auth(String),
    /// No final response arrived before the transaction timed out.
    #[error("request timed out")]
    Timeout,
    /// The operation does not fit the state the call or registration is in.
    #[error("invalid state: {0}")]
    InvalidState(String),
    /// A received message is malformed; the text is the 400 reason phrase.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// A received request names a SIP version other than SIP/2.0.
    #[error("SIP version not supported: {0}")]
    VersionNotSupported(String),
    /// A received request uses a method this user agent does not know.
    #[error("method not implemented: {0}")]
    NotImplemented(String),
    /// A received request uses a method this user agent knows but refuses.
    #[error("method not allowed: {0}")]
    MethodNotAllowed(String),
    /// A received message is larger than the configured limit.
    #[error("message too large: {0} bytes")]
    TooLarge(usize),
    /// A peer exceeded its share of calls or requests.
    #[error("overloaded: {0}")]
    Overloaded(String),
    /// No codec in common (the layer above says so when answering).
    #[error("not acceptable here: {0}")]
    NotAcceptable(String),
    /// The user agent was shut down.
    #[error("user agent shut down")]
    Shutdown,
    /// An error reported by the SIP stack underneath.
    #[error("SIP stack: {0}")]
    Stack(String),
}

impl Error {
    /// The SIP status code this error maps to when it has to be answered or
    /// reported as a call failure.
    pub fn status_code(&self) -> u16 {
        match self {
            Error::Config(_) | Error::InvalidUri { .. } => 400,
            Error::Transport(_) => 503,
            Error::Rejected { code, .. } => *code,
            Error::Auth(_) => 403,
            Error::Timeout => 408,
            Error::InvalidState(_) => 491,
            Error::Malformed(_) => 400,
            Error::VersionNotSupported(_) => 505,
            Error::NotImplemented(_) => 501,
            Error::MethodNotAllowed(_) => 405,
            Error::TooLarge(_) => 513,
            Error::Overloaded(_) => 503,
            Error::NotAcceptable(_) => 488,
            Error::Shutdown => 503,
            Error::Stack(_) => 500,
        }
    }

    /// The code and words to report a failed request with: the peer's own
    /// for a rejection, this error's otherwise.
    pub fn outcome(&self) -> (u16, String) {
        match self {
            Error::Rejected { code, reason } => (*code, reason.clone()),
            other => (other.status_code(), other.to_string()),
        }
    }

    /// A reason phrase for a response carrying [`Error::status_code`]. For
    /// malformed input it says what was wrong (the RFC 3261 §21.4.1 habit),
    /// otherwise it is the standard phrase.
    pub fn reason_phrase(&self) -> String {
        match self {
            Error::Malformed(why) => why.clone(),
            Error::Rejected { reason, .. } => reason.clone(),
            other => standard_reason(other.status_code()).to_string(),
        }
    }
}

impl From<rsipstack::Error> for Error {
    fn from(e: rsipstack::Error) -> Self {
        Error::Stack(e.to_string())
    }
}

impl From<rsipstack::sip::Error> for Error {
    fn from(e: rsipstack::sip::Error) -> Self {
        Error::Malformed(e.to_string())
    }
}

/// The RFC 3261 reason phrase for the codes this crate sends itself.
pub fn standard_reason(code: u16) -> &'static str {
    match code {
        100 => "Trying",
        180 => "Ringing",
        183 => "Session Progress",
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        420 => "Bad Extension",
        481 => "Call/Transaction Does Not Exist",
        483 => "Too Many Hops",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        491 => "Request Pending",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "Version Not Supported",
        513 => "Message Too Large",
        603 => "Decline",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_classify_into_status_codes() {
        assert_eq!(Error::Malformed("Missing CSeq".into()).status_code(), 400);
        assert_eq!(Error::Malformed("Missing CSeq".into()).reason_phrase(), "Missing CSeq");
        assert_eq!(Error::VersionNotSupported("SIP/7.0".into()).status_code(), 505);
        assert_eq!(Error::NotAcceptable("no codec".into()).status_code(), 488);
        assert_eq!(Error::NotAcceptable("no codec".into()).reason_phrase(), "Not Acceptable Here");
        assert_eq!(Error::Rejected { code: 486, reason: "Busy".into() }.status_code(), 486);
        assert_eq!(Error::Timeout.status_code(), 408);
    }
}
