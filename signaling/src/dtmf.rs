//! DTMF carried in SIP INFO bodies: `application/dtmf-relay` (the Cisco
//! format every PBX speaks: `Signal=5\r\nDuration=160\r\n`) and the bare
//! `application/dtmf` digit.

/// One key press.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dtmf {
    /// `0`-`9`, `*`, `#`, `A`-`D`, or `!` for flash.
    pub digit: char,
    /// Duration in milliseconds, when the body said.
    pub duration_ms: Option<u32>,
}

/// MIME type of the relay format.
pub const DTMF_RELAY: &str = "application/dtmf-relay";

fn valid_digit(c: char) -> Option<char> {
    let c = c.to_ascii_uppercase();
    matches!(c, '0'..='9' | '*' | '#' | 'A'..='D' | '!').then_some(c)
}

/// Parses an INFO body by content type; `None` if it is not DTMF.
pub fn parse(content_type: &str, body: &str) -> Option<Dtmf> {
    let ct = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    match ct.as_str() {
        "application/dtmf-relay" => parse_relay(body),
        "application/dtmf" => {
            let t = body.trim();
            let mut chars = t.chars();
            let c = chars.next()?;
            if chars.next().is_some() {
                // Numeric event codes (10 = *, 11 = #) are used by some phones.
                return match t {
                    "10" => Some(Dtmf { digit: '*', duration_ms: None }),
                    "11" => Some(Dtmf { digit: '#', duration_ms: None }),
                    _ => None,
                };
            }
            Some(Dtmf { digit: valid_digit(c)?, duration_ms: None })
        }
        _ => None,
    }
}

/// Parses `Signal=<digit>` / `Duration=<ms>` lines, case-insensitively.
pub fn parse_relay(body: &str) -> Option<Dtmf> {
    let mut digit = None;
    let mut duration = None;
    for line in body.lines() {
        let Some((k, v)) = line.split_once('=') else { continue };
        let v = v.trim();
        match k.trim().to_ascii_lowercase().as_str() {
            "signal" => {
                digit = match v {
                    "10" => Some('*'),
                    "11" => Some('#'),
                    _ if v.chars().count() == 1 => valid_digit(v.chars().next()?),
                    _ => None,
                }
            }
            "duration" => duration = v.parse().ok(),
            _ => {}
        }
    }
    Some(Dtmf { digit: digit?, duration_ms: duration })
}

/// Formats a relay body.
pub fn format_relay(digit: char, duration_ms: u32) -> String {
    format!("Signal={digit}\r\nDuration={duration_ms}\r\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_relay_and_plain_bodies() {
        assert_eq!(
            parse(DTMF_RELAY, "Signal=5\r\nDuration=160\r\n"),
            Some(Dtmf { digit: '5', duration_ms: Some(160) })
        );
        assert_eq!(
            parse("Application/DTMF-Relay", "signal = #\nduration=250"),
            Some(Dtmf { digit: '#', duration_ms: Some(250) })
        );
        assert_eq!(parse(DTMF_RELAY, "Signal=11\r\n"), Some(Dtmf { digit: '#', duration_ms: None }));
        assert_eq!(parse("application/dtmf", "7"), Some(Dtmf { digit: '7', duration_ms: None }));
        assert_eq!(parse(DTMF_RELAY, "Signal=Z\r\n"), None);
        assert_eq!(parse("text/plain", "Signal=1"), None);
        assert_eq!(parse_relay(&format_relay('*', 100)), Some(Dtmf { digit: '*', duration_ms: Some(100) }));
    }
}
