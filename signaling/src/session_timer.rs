//! Session timers (RFC 4028): the interval and refresher agreed in the
//! INVITE's 2xx, refreshes sent when it is our turn (UPDATE without a body
//! when the peer allows UPDATE, else a re-INVITE with our last SDP), and a
//! BYE when a refresh fails or the peer's refresh never comes. The end
//! reaches the layer above as [`CallEvent::Ended`].

use crate::config::SessionTimer;
use rsipstack::sip::prelude::HeadersExt;
use rsipstack::sip::{Header, Response};

/// Who refreshes the session (`refresher=` of Session-Expires).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refresher {
    Uac,
    Uas,
}

impl Refresher {
    fn as_str(self) -> &'static str {
        match self {
            Refresher::Uac => "uac",
            Refresher::Uas => "uas",
        }
    }
}

/// A session interval in effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Agreed {
    /// Seconds.
    pub interval: u32,
    pub refresher: Refresher,
}

impl Agreed {
    /// `Session-Expires: N;refresher=X`.
    pub fn header(self) -> Header {
        Header::SessionExpires(format!("{};refresher={}", self.interval, self.refresher.as_str()).into())
    }
}

/// `Session-Expires` of a message: the interval and the refresher, if named.
pub(crate) fn session_expires<M: HeadersExt>(m: &M) -> Option<(u32, Option<Refresher>)> {
    let value = m.header_value("Session-Expires")?;
    let mut parts = value.split(';');
    let interval = parts.next()?.trim().parse().ok()?;
    let refresher = parts.find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim().eq_ignore_ascii_case("refresher").then(|| v.trim().to_ascii_lowercase())
    });
    let refresher = match refresher.as_deref() {
        Some("uac") => Some(Refresher::Uac),
        Some("uas") => Some(Refresher::Uas),
        _ => None,
    };
    Some((interval, refresher))
}

/// `Min-SE` of a message, in seconds.
pub(crate) fn min_se<M: HeadersExt>(m: &M) -> Option<u32> {
    m.header_value("Min-SE")?.split(';').next()?.trim().parse().ok()
}

/// Headers of our INVITE (and of a retry after 422 with a larger interval).
pub(crate) fn invite_headers(config: &SessionTimer, interval: u32) -> Vec<Header> {
    vec![Header::SessionExpires(interval.to_string().into()), Header::MinSE(config.min_se.to_string().into())]
}

/// The interval a peer's refresh (re-INVITE or UPDATE) asks for, given the
/// one in effect; `None` when neither names one.
pub(crate) fn for_refresh<M: HeadersExt>(request: &M, current: Option<Agreed>, sender: Refresher) -> Option<Agreed> {
    match session_expires(request) {
        Some((interval, refresher)) => Some(Agreed { interval, refresher: refresher.unwrap_or(sender) }),
        None => current,
    }
}

/// What an incoming INVITE asks: `Err(min_se)` when its interval is below
/// ours (answer 422 with that Min-SE); otherwise the interval our 2xx
/// grants, or `None` for no timer.
pub(crate) fn for_incoming<M: HeadersExt>(invite: &M, config: &SessionTimer) -> Result<Option<Agreed>, u32> {
    let peer_supports = crate::extensions::peer_supports(invite, "timer");
    let floor = min_se(invite).unwrap_or(0).max(config.min_se);
    match session_expires(invite) {
        Some((asked, _)) if asked < config.min_se => Err(config.min_se),
        // §9: we may shorten the interval, never below either Min-SE; the
        // UAS picks the refresher when the UAC did not: the UAC when it
        // supports timers (it can refresh), else ourselves.
        Some((asked, refresher)) => Ok(Some(Agreed {
            interval: asked.min(config.expires).max(floor),
            refresher: refresher.unwrap_or(if peer_supports { Refresher::Uac } else { Refresher::Uas }),
        })),
        // §9: no Session-Expires asked; we may still want one.
        None => Ok(Some(Agreed {
            interval: config.expires.max(floor),
            refresher: if peer_supports { Refresher::Uac } else { Refresher::Uas },
        })),
    }
}

/// The interval a 2xx to our INVITE or refresh settled on; `None` when the
/// peer did not take part (no Session-Expires: no timer, §7.2).
pub(crate) fn from_response(resp: &Response) -> Option<Agreed> {
    let (interval, refresher) = session_expires(resp)?;
    Some(Agreed { interval, refresher: refresher.unwrap_or(Refresher::Uac) })
}

/// Headers of our 2xx (or of the 2xx to a refresh) granting `agreed`:
/// `Require: timer` only when the peer refreshes (it must understand).
pub(crate) fn response_headers(agreed: Agreed, we_are: Refresher) -> Vec<Header> {
    let mut headers = vec![agreed.header()];
    if agreed.refresher != we_are {
        headers.push(Header::Require("timer".into()));
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsipstack::sip::Request;

    fn invite(extra: &str) -> Request {
        let text = format!(
            "INVITE sip:b@192.0.2.1 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.2;branch=z9hG4bK1\r\nFrom: <sip:a@192.0.2.2>;tag=1\r\nTo: <sip:b@192.0.2.1>\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\n{extra}Content-Length: 0\r\n\r\n"
        );
        Request::try_from(text.as_str()).unwrap()
    }

    const OURS: SessionTimer = SessionTimer { expires: 1800, min_se: 90 };

    #[test]
    fn a_short_interval_is_refused_with_our_min_se() {
        assert_eq!(for_incoming(&invite("Session-Expires: 60\r\n"), &OURS), Err(90));
    }

    #[test]
    fn the_uac_refreshes_when_it_supports_timers() {
        let got = for_incoming(&invite("Supported: timer\r\nSession-Expires: 600\r\n"), &OURS).unwrap().unwrap();
        assert_eq!(got, Agreed { interval: 600, refresher: Refresher::Uac });
        let got = for_incoming(&invite("Session-Expires: 600;refresher=uas\r\n"), &OURS).unwrap().unwrap();
        assert_eq!(got, Agreed { interval: 600, refresher: Refresher::Uas });
        // No timer support, no Session-Expires: we still want one, and refresh.
        let got = for_incoming(&invite(""), &OURS).unwrap().unwrap();
        assert_eq!(got, Agreed { interval: 1800, refresher: Refresher::Uas });
        // A longer interval than ours is shortened, not below the peer's Min-SE.
        let got = for_incoming(&invite("Session-Expires: 7200\r\nMin-SE: 3600\r\n"), &OURS).unwrap().unwrap();
        assert_eq!(got.interval, 3600);
    }

    #[test]
    fn parses_session_expires_and_min_se() {
        let r = invite("Session-Expires: 120 ; Refresher=UAC\r\nMin-SE: 90;x=1\r\n");
        assert_eq!(session_expires(&r), Some((120, Some(Refresher::Uac))));
        assert_eq!(min_se(&r), Some(90));
        assert_eq!(session_expires(&invite("")), None);
    }
}
