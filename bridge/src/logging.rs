//! Logging on stderr, with no secret in it at any level.
//!
//! Two guards, because libraries log what they see: the WebSocket library
//! logs every received message (with `sip.register`'s `secret`) and frame
//! (as hex) at trace, so its targets are capped at debug whatever
//! `SIPBRIDGE_LOG` says; and every formatted line goes through [`redact`]
//! on its way out, which takes out digest `Authorization` values, SDES
//! keys (`signaling::redact`) and the protocol's secret fields.

use std::io::Write;
use tracing::level_filters::LevelFilter;
use tracing_subscriber::filter::{filter_fn, EnvFilter, FilterExt};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

/// Targets that can see whole requests in clear and log them below debug.
const CAPPED_AT_DEBUG: &[&str] = &["tungstenite", "tokio_tungstenite"];

/// JSON members whose string value is a secret (`ha1Secret` ends in one).
const SECRET_FIELDS: &[&str] = &["secret", "password"];

/// Installs the subscriber: `SIPBRIDGE_LOG` (else `default_filter`) on
/// stderr, colours only at a terminal.
pub fn init(default_filter: &str) {
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr()) && std::env::var_os("NO_COLOR").is_none();
    let env = EnvFilter::try_from_env("SIPBRIDGE_LOG").unwrap_or_else(|_| default_filter.into());
    let capped = filter_fn(|meta| {
        *meta.level() <= LevelFilter::DEBUG || !CAPPED_AT_DEBUG.iter().any(|t| is_under(meta.target(), t))
    });
    let layer = tracing_subscriber::fmt::layer().with_writer(RedactingStderr).with_ansi(ansi);
    tracing_subscriber::registry().with(layer.with_filter(env.and(capped))).init();
}

/// `target` is `module` or one of its submodules.
fn is_under(target: &str, module: &str) -> bool {
    target.strip_prefix(module).is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
}

/// `text` with every secret replaced by `<redacted>`.
pub fn redact(text: &str) -> String {
    let mut out = signaling::redact::redact(text).into_owned();
    for field in SECRET_FIELDS {
        out = signaling::redact::replace_values(&out, field, json_string_value);
    }
    out
}

/// After a member name: `": "value"` in JSON, `\": \"value\"` when the
/// JSON itself was quoted by a `Debug` format, or `: "value"` in a Rust
/// struct's `Debug`. The span is the value.
fn json_string_value(rest: &str) -> Option<(usize, usize)> {
    let escaped = rest.starts_with("\\\"");
    let after_name = if escaped { &rest[2..] } else { rest.strip_prefix('"').unwrap_or(rest) };
    let after_colon = after_name.trim_start().strip_prefix(':')?.trim_start();
    let value = after_colon.strip_prefix(if escaped { "\\\"" } else { "\"" })?;
    let start = rest.len() - value.len();
    Some((start, start + closing_quote(value, escaped)))
}

/// Where a JSON string's closing quote is: in JSON, the first `"` after an
/// even number of backslashes; in `Debug`-quoted JSON (every `\` and `"`
/// escaped once more), a `"` after an odd number `n` of backslashes whose
/// `(n - 1) / 2` unescaped ones are even. The end of the text if none.
fn closing_quote(value: &str, escaped: bool) -> usize {
    let bytes = value.as_bytes();
    let mut backslashes = 0;
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'\\' => backslashes += 1,
            b'"' => {
                let closes =
                    if escaped { backslashes % 2 == 1 && (backslashes / 2) % 2 == 0 } else { backslashes % 2 == 0 };
                if closes {
                    return if escaped { i - 1 } else { i };
                }
                backslashes = 0;
            }
            _ => backslashes = 0,
        }
    }
    bytes.len()
}

/// A writer per log line: collects the formatted line and writes it,
/// redacted, to stderr in one piece when the line is done.
struct RedactingStderr;

struct LineWriter(Vec<u8>);

impl<'a> MakeWriter<'a> for RedactingStderr {
    type Writer = LineWriter;

    fn make_writer(&'a self) -> LineWriter {
        LineWriter(Vec::with_capacity(256))
    }
}

impl Write for LineWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        let line = redact(&String::from_utf8_lossy(&self.0));
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_secrets_raw_and_debug_quoted() {
        let msg = r#"{"jsonrpc":"2.0","id":1,"method":"sip.register","params":{"username":"sip:a@b","secret": "p\"w\\","ha1Secret":"0123abcd","authUser":"a"}}"#;
        let red = redact(msg);
        assert!(!red.contains("p\\\"w") && !red.contains("0123abcd"), "{red}");
        assert!(red.contains(r#""authUser":"a""#), "what follows stays: {red}");
        let quoted = format!("{msg:?}");
        let red = redact(&quoted);
        assert!(!red.contains("p\\\\\\\"w") && !red.contains("0123abcd"), "{red}");
        assert!(red.contains("authUser"), "{red}");
        assert_eq!(redact("a secret was wrong"), "a secret was wrong");
        let debug = r#"Account { aor: "sip:a@b", password: "hunter2", proxy: None }"#;
        assert_eq!(redact(debug), r#"Account { aor: "sip:a@b", password: "<redacted>", proxy: None }"#);
    }

    #[test]
    fn caps_match_modules_not_prefixes() {
        assert!(is_under("tungstenite::protocol", "tungstenite"));
        assert!(is_under("tungstenite", "tungstenite"));
        assert!(!is_under("tungstenite_other", "tungstenite"));
    }
}
