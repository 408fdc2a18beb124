//! Call transfer signalling: REFER both ways (RFC 3515) with the implicit
//! subscription's NOTIFYs carrying `message/sipfrag` progress, Referred-By
//! (RFC 3892), and Replaces (RFC 3891) in a Refer-To URI or an incoming
//! INVITE. What a transfer does with media and the new call is the layer
//! above's business; here are the messages.

use crate::error::standard_reason;
use rsipstack::sip::prelude::HeadersExt;
use rsipstack::sip::Header;

/// A `Refer-To` value split into the target URI and the Replaces it
/// carries as a URI header (`?Replaces=...`, percent-decoded).
pub(crate) fn parse_refer_to(value: &str) -> (String, Option<String>) {
    let v = value.trim();
    let inner = match (v.find('<'), v.rfind('>')) {
        (Some(lt), Some(gt)) if gt > lt => &v[lt + 1..gt],
        _ => v.split(';').next().unwrap_or(v),
    };
    let (uri, headers) = inner.split_once('?').unwrap_or((inner, ""));
    let replaces = headers.split('&').find_map(|h| {
        let (name, value) = h.split_once('=')?;
        name.eq_ignore_ascii_case("Replaces").then(|| percent_decode(value))
    });
    (uri.trim().to_string(), replaces)
}

/// A `Refer-To` value for `target`, with `replaces` as a URI header.
pub(crate) fn refer_to(target: &str, replaces: Option<&str>) -> String {
    let target = target.trim().trim_start_matches('<').trim_end_matches('>');
    match replaces {
        Some(r) => format!("<{target}?Replaces={}>", percent_encode(r)),
        None => format!("<{target}>"),
    }
}

/// The dialog a `Replaces` value names (RFC 3891 §6.1): Call-ID, the tag
/// of the side that receives it (`to-tag`) and of the other (`from-tag`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplacesTarget {
    /// Call-ID.
    pub call_id: String,
    /// to-tag: ours, as the recipient.
    pub to_tag: String,
    /// from-tag: the peer's.
    pub from_tag: String,
}

impl ReplacesTarget {
    /// Parses `callid;to-tag=a;from-tag=b` (and `early-only`, ignored).
    pub fn parse(value: &str) -> Option<ReplacesTarget> {
        let mut parts = value.split(';');
        let call_id = parts.next()?.trim().to_string();
        let (mut to_tag, mut from_tag) = (None, None);
        for p in parts {
            match p.split_once('=').map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string())) {
                Some((k, v)) if k == "to-tag" => to_tag = Some(v),
                Some((k, v)) if k == "from-tag" => from_tag = Some(v),
                _ => {}
            }
        }
        Some(ReplacesTarget { call_id, to_tag: to_tag?, from_tag: from_tag? }).filter(|r| !r.call_id.is_empty())
    }
}

/// The headers and body of a NOTIFY reporting `code` on a REFER.
pub(crate) fn progress_notify(code: u16) -> (Vec<Header>, Vec<u8>) {
    let state = if code >= 200 { "terminated;reason=noresource" } else { "active;expires=60" };
    let headers = vec![
        Header::Event("refer".into()),
        Header::SubscriptionState(state.into()),
        Header::ContentType("message/sipfrag;version=2.0".into()),
    ];
    (headers, format!("SIP/2.0 {code} {}\r\n", standard_reason(code)).into_bytes())
}

/// The progress a NOTIFY for our REFER reports: the sipfrag status code and
/// phrase, and whether the subscription is over.
pub(crate) fn parse_progress<M: HeadersExt>(notify: &M, body: &[u8]) -> Option<(u16, String, bool)> {
    let event = notify.header_value("Event")?;
    if !event.split(';').next()?.trim().eq_ignore_ascii_case("refer") {
        return None;
    }
    let text = String::from_utf8_lossy(body);
    let status = text.lines().next()?.trim();
    let mut parts = status.splitn(3, ' ');
    if !parts.next()?.eq_ignore_ascii_case("SIP/2.0") {
        return None;
    }
    let code = parts.next()?.parse().ok()?;
    let reason = parts.next().unwrap_or("").to_string();
    let done = notify
        .header_value("Subscription-State")
        .is_some_and(|s| s.trim().to_ascii_lowercase().starts_with("terminated"));
    Some((code, reason, done))
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = || std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok().and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex()) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn percent_encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, UNRESERVED).to_string()
}

/// RFC 3986's unreserved characters: everything else is escaped.
const UNRESERVED: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refer_to_round_trips_with_replaces() {
        let replaces = "a84b4c76@192.0.2.4;to-tag=7743;from-tag=6472";
        let v = refer_to("sip:carol@192.0.2.9", Some(replaces));
        assert_eq!(v, "<sip:carol@192.0.2.9?Replaces=a84b4c76%40192.0.2.4%3Bto-tag%3D7743%3Bfrom-tag%3D6472>");
        assert_eq!(parse_refer_to(&v), ("sip:carol@192.0.2.9".to_string(), Some(replaces.to_string())));
        assert_eq!(parse_refer_to("sip:bob@192.0.2.1"), ("sip:bob@192.0.2.1".to_string(), None));
        let target = ReplacesTarget::parse(replaces).unwrap();
        assert_eq!(
            (target.call_id.as_str(), target.to_tag.as_str(), target.from_tag.as_str()),
            ("a84b4c76@192.0.2.4", "7743", "6472")
        );
        assert!(ReplacesTarget::parse("only-call-id").is_none());
    }

    #[test]
    fn progress_is_a_sipfrag_status_line() {
        let (headers, body) = progress_notify(180);
        assert_eq!(String::from_utf8(body).unwrap(), "SIP/2.0 180 Ringing\r\n");
        assert!(headers.iter().any(|h| h.value().starts_with("active")));
        let (headers, _) = progress_notify(486);
        assert!(headers.iter().any(|h| h.value().starts_with("terminated")));
    }
}
