//! `incomingHeaderPrefixes` of `sip.register` (as the Janus SIP plugin has
//! it): which header fields of the peer's INVITE, of the 200 answering our
//! INVITE and of the peer's BYE the browser is shown, chosen by name prefix
//! (`"X-"`, `"P-Asserted"`), without regard to case.

use crate::protocol::RpcError;
use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq)]
pub struct HeaderPrefixes(Vec<String>);

impl Default for HeaderPrefixes {
    /// Custom (`X-`) headers, as before the list could be chosen.
    fn default() -> Self {
        HeaderPrefixes(vec!["x-".into()])
    }
}

impl HeaderPrefixes {
    /// The list a `sip.register` gives (the default without one); each
    /// prefix is the start of a header name, so token characters only.
    pub fn parse(list: Option<Vec<String>>) -> Result<HeaderPrefixes, RpcError> {
        let Some(list) = list else { return Ok(HeaderPrefixes::default()) };
        let mut out = Vec::new();
        for prefix in list {
            let token =
                !prefix.is_empty() && prefix.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b));
            if !token {
                return Err(RpcError::invalid_params(format!(
                    "incomingHeaderPrefixes: {prefix:?} is not the start of a header name (letters, digits, -.!%*_+`'~)"
                )));
            }
            out.push(prefix.to_ascii_lowercase());
        }
        Ok(HeaderPrefixes(out))
    }

    /// The matching fields as a JSON object; a name that repeats has its
    /// values joined with ", " (RFC 3261 §7.3.1).
    pub fn pick(&self, headers: &[(String, String)]) -> Value {
        let mut out = Map::new();
        for (name, value) in headers {
            let lower = name.to_ascii_lowercase();
            if !self.0.iter().any(|p| lower.starts_with(p.as_str())) {
                continue;
            }
            match out.get_mut(name) {
                Some(Value::String(v)) => *v = format!("{v}, {value}"),
                _ => {
                    out.insert(name.clone(), Value::String(value.clone()));
                }
            }
        }
        Value::Object(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect()
    }

    #[test]
    fn chosen_prefixes_pick_headers_case_blind() {
        let h = pairs(&[
            ("Via", "SIP/2.0/UDP 127.0.0.1"),
            ("X-Tag", "a"),
            ("P-Asserted-Identity", "<sip:boss@example.test>"),
            ("x-tag", "b"),
            ("X-Tag", "c"),
        ]);
        assert_eq!(HeaderPrefixes::default().pick(&h), json!({"X-Tag": "a, c", "x-tag": "b"}));
        let chosen = HeaderPrefixes::parse(Some(vec!["p-asserted".into()])).unwrap();
        assert_eq!(chosen.pick(&h), json!({"P-Asserted-Identity": "<sip:boss@example.test>"}));
        assert_eq!(HeaderPrefixes::parse(Some(vec![])).unwrap().pick(&h), json!({}));
    }

    #[test]
    fn prefixes_must_be_header_name_starts() {
        for bad in ["", "X Y", "X-:", "Ä"] {
            assert!(HeaderPrefixes::parse(Some(vec![bad.into()])).is_err(), "{bad:?}");
        }
    }
}
