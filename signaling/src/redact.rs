//! Secrets taken out of text that may quote SIP or SDP before it is logged:
//! the values of `Authorization` / `Proxy-Authorization` headers (a digest
//! response is enough for an offline password guess), digest `response=`
//! parameters wherever they appear, and SDES keys (`a=crypto:... inline:KEY`).
//!
//! Log lines quote messages raw (`Display`) or escaped (`Debug`: `\r\n` and
//! `\"` as two characters each), so every rule ends a value at a real line
//! break or at an escaped one.

use std::borrow::Cow;

/// What a secret is replaced with.
pub const REDACTED: &str = "<redacted>";

/// `text` with every secret this module knows replaced by [`REDACTED`].
pub fn redact(text: &str) -> Cow<'_, str> {
    let mut out = Cow::Borrowed(text);
    for (marker, rule) in RULES {
        if find_ci(&out, marker, 0).is_some() {
            out = Cow::Owned(replace_values(&out, marker, *rule));
        }
    }
    out
}

/// Where a secret after a marker starts and ends, given the text after it.
pub type Rule = fn(&str) -> Option<(usize, usize)>;

const RULES: &[(&str, Rule)] =
    &[("authorization:", header_value), ("response=", digest_response), ("inline:", sdes_key)];

/// Replaces, after each (ASCII case-insensitive) occurrence of `marker`, the
/// span `rule` finds with [`REDACTED`].
pub fn replace_values(text: &str, marker: &str, rule: Rule) -> String {
    let mut out = String::with_capacity(text.len());
    let mut from = 0;
    while let Some(at) = find_ci(text, marker, from) {
        let after = at + marker.len();
        out.push_str(&text[from..after]);
        from = after;
        if let Some((start, end)) = rule(&text[after..]) {
            out.push_str(&text[after..after + start]);
            out.push_str(REDACTED);
            from = after + end;
        }
    }
    out.push_str(&text[from..]);
    out
}

/// `Authorization: Digest username=...`: the scheme stays, the rest of the
/// line goes.
fn header_value(rest: &str) -> Option<(usize, usize)> {
    let start = rest.len() - rest.trim_start_matches([' ', '\t']).len();
    let scheme = rest[start..].find(|c: char| !c.is_ascii_alphanumeric()).map_or(rest.len(), |i| start + i);
    let value = rest.len() - rest[scheme..].trim_start_matches([' ', '\t']).len();
    let end = line_end(rest);
    (value < end).then_some((value, end))
}

/// `response="0123abcd..."` (quotes optional, possibly escaped): the hex.
fn digest_response(rest: &str) -> Option<(usize, usize)> {
    let start = rest.len() - rest.trim_start_matches(['\\', '"']).len();
    let len = rest[start..].find(|c: char| !c.is_ascii_hexdigit()).unwrap_or(rest.len() - start);
    (len >= 8).then_some((start, start + len))
}

/// `inline:KEY|2^20|1:32`: the base64 key and salt.
fn sdes_key(rest: &str) -> Option<(usize, usize)> {
    let len =
        rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '+' || c == '/' || c == '=')).unwrap_or(rest.len());
    (len > 0).then_some((0, len))
}

/// The end of the line `rest` starts on: a CR or LF, or their escaped
/// forms `\r` / `\n`.
fn line_end(rest: &str) -> usize {
    let bytes = rest.as_bytes();
    (0..bytes.len())
        .find(|&i| {
            matches!(bytes[i], b'\r' | b'\n') || (bytes[i] == b'\\' && matches!(bytes.get(i + 1), Some(b'r' | b'n')))
        })
        .unwrap_or(bytes.len())
}

/// The first ASCII case-insensitive occurrence of `needle` at or after `from`.
fn find_ci(haystack: &str, needle: &str, from: usize) -> Option<usize> {
    let (h, n) = (haystack.as_bytes(), needle.as_bytes());
    (from..(h.len() + 1).saturating_sub(n.len())).find(|&i| h[i..i + n.len()].eq_ignore_ascii_case(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    const REGISTER: &str = "REGISTER sip:example.test SIP/2.0\r\nAuthorization: Digest username=\"alice\", realm=\"example.test\", nonce=\"abc\", uri=\"sip:example.test\", response=\"0123456789abcdef0123456789abcdef\"\r\nProxy-Authorization: Digest username=\"alice\", response=\"fedcba9876543210fedcba9876543210\"\r\nContent-Length: 0\r\n\r\n";

    #[test]
    fn authorization_values_go_raw_and_escaped() {
        let raw = redact(REGISTER);
        assert!(!raw.contains("0123456789abcdef") && !raw.contains("fedcba98"), "{raw}");
        assert!(
            raw.contains("Authorization: Digest <redacted>\r\nProxy-Authorization: Digest <redacted>\r\n"),
            "{raw}"
        );
        assert!(raw.contains("Content-Length: 0"), "the rest stays: {raw}");
        let escaped = format!("{REGISTER:?}");
        let red = redact(&escaped);
        assert!(!red.contains("0123456789abcdef") && !red.contains("fedcba98"), "{red}");
        assert!(red.contains("Content-Length: 0"), "{red}");
    }

    #[test]
    fn digest_responses_and_sdes_keys_anywhere() {
        let line = r#"header=Some(Authorization("Digest username=\"a\", response=\"0123456789abcdef\""))"#;
        assert!(!redact(line).contains("0123456789abcdef"), "{}", redact(line));
        let sdp = "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^20|1:32\r\n";
        let red = redact(sdp);
        assert_eq!(red, "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:<redacted>|2^20|1:32\r\n");
        assert_eq!(redact("a response=200 was sent"), "a response=200 was sent", "not a digest");
        assert!(matches!(redact("nothing secret here"), Cow::Borrowed(_)));
    }

    #[test]
    fn bearer_tokens_and_odd_spellings() {
        assert_eq!(redact("authorization:Bearer abc.def"), "authorization:Bearer <redacted>");
        assert_eq!(redact("AUTHORIZATION: x y"), "AUTHORIZATION: x <redacted>");
        assert_eq!(redact("Authorization: "), "Authorization: ", "nothing to hide");
    }
}
