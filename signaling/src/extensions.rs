//! SIP option tags (RFC 3261 §19.2): what we support, what a message
//! supports or requires, and which required ones we lack (answered 420).

use rsipstack::sip::prelude::HasHeaders;

/// Option tags this user agent implements, as sent in `Supported` and
/// accepted in `Require`: reliable provisional responses (RFC 3262),
/// session timers (RFC 4028) and Replaces (RFC 3891).
pub const SUPPORTED: &[&str] = &["100rel", "timer", "replaces"];

/// The `Supported` header value we send.
pub fn supported_value() -> String {
    SUPPORTED.join(", ")
}

/// Every option tag in all `name` header fields of `message`, lower case
/// (the screen has already spelled compact names out in full).
pub(crate) fn option_tags<M: HasHeaders>(message: &M, name: &str) -> Vec<String> {
    message
        .headers()
        .iter()
        .filter(|h| h.name().eq_ignore_ascii_case(name))
        .flat_map(|h| h.value().split(',').map(|t| t.trim().to_ascii_lowercase()).collect::<Vec<_>>())
        .filter(|t| !t.is_empty())
        .collect()
}

/// Whether `message` lists `tag` in `Supported` or `Require`.
pub(crate) fn peer_supports<M: HasHeaders>(message: &M, tag: &str) -> bool {
    option_tags(message, "Supported").iter().chain(option_tags(message, "Require").iter()).any(|t| t == tag)
}

/// Whether `message` lists `tag` in `Require`.
pub(crate) fn peer_requires<M: HasHeaders>(message: &M, tag: &str) -> bool {
    option_tags(message, "Require").iter().any(|t| t == tag)
}

/// The tags a request requires that we do not implement (for 420's
/// `Unsupported`); empty when we can serve it.
pub(crate) fn unsupported_required<M: HasHeaders>(message: &M) -> Vec<String> {
    option_tags(message, "Require").into_iter().filter(|t| !SUPPORTED.contains(&t.as_str())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsipstack::sip::Request;

    fn request(extra: &str) -> Request {
        let text = format!(
            "INVITE sip:b@192.0.2.1 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.2;branch=z9hG4bK1\r\nFrom: <sip:a@192.0.2.2>;tag=1\r\nTo: <sip:b@192.0.2.1>\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\n{extra}Content-Length: 0\r\n\r\n"
        );
        Request::try_from(text.as_str()).unwrap()
    }

    #[test]
    fn required_tags_we_lack_are_listed_and_ours_are_not() {
        assert!(unsupported_required(&request("Require: 100rel\r\n")).is_empty());
        assert_eq!(unsupported_required(&request("Require: 100rel, foo\r\nRequire: Bar\r\n")), ["foo", "bar"]);
        assert!(unsupported_required(&request("")).is_empty());
    }

    #[test]
    fn support_is_read_from_supported_and_require() {
        assert!(peer_supports(&request("Supported: timer, 100rel\r\n"), "100rel"));
        assert!(peer_supports(&request("Require: 100rel\r\n"), "100rel"));
        assert!(!peer_supports(&request("Supported: timer\r\n"), "100rel"));
        assert!(peer_requires(&request("Require: 100rel\r\n"), "100rel"));
        assert!(!peer_requires(&request("Supported: 100rel\r\n"), "100rel"));
    }
}
