use thiserror::Error;

/// Everything that can go wrong in a media leg.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum Error {
    /// The SDP text is malformed or lacks something a stream needs.
    #[error("invalid SDP: {0}")]
    InvalidSdp(String),
    /// The remote description offers no codec we can use (SIP answers 488).
    #[error("no common codec: {0}")]
    NoCommonCodec(String),
    /// The SRTP policies of the two sides do not meet: an SRTP-mandatory
    /// leg got no usable `a=crypto`, or an `RTP/SAVP` offer reached a leg
    /// with SRTP off (SIP answers 488).
    #[error("media encryption not acceptable: {0}")]
    Encryption(String),
    /// The call is not allowed in the current offer/answer state.
    #[error("wrong negotiation state: {0}")]
    WrongState(String),
    /// An ICE candidate line could not be used.
    #[error("invalid ICE candidate: {0}")]
    InvalidCandidate(String),
    /// A STUN or TURN server setting cannot be used (the text says why).
    #[error("ICE server: {0}")]
    IceServer(String),
    /// DTMF tones outside 0-9, *, #, A-D, or no telephone-event negotiated.
    #[error("cannot send DTMF: {0}")]
    Dtmf(String),
    /// A GStreamer plugin the leg needs is not installed.
    #[error("GStreamer element {0} is missing; run scripts/install-deps.sh")]
    MissingElement(String),
    /// No UDP port could be bound for media.
    #[error("cannot bind media port: {0}")]
    Bind(String),
    /// Something did not happen in time (ICE gathering, a webrtcbin promise).
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
    /// GStreamer refused an operation; the text says which.
    #[error("media pipeline error: {0}")]
    Pipeline(String),
    /// A file to play or record cannot be used.
    #[error("{0}")]
    File(String),
    /// The leg has been closed.
    #[error("the session is closed")]
    Closed,
}

impl From<gst::glib::BoolError> for Error {
    fn from(err: gst::glib::BoolError) -> Self {
        Error::Pipeline(err.to_string())
    }
}

impl From<gst::StateChangeError> for Error {
    fn from(err: gst::StateChangeError) -> Self {
        Error::Pipeline(format!("state change failed: {err}"))
    }
}

impl From<gst::PadLinkError> for Error {
    fn from(err: gst::PadLinkError) -> Self {
        Error::Pipeline(format!("pad link failed: {err:?}"))
    }
}
