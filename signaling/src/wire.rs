//! A tolerant scan of raw SIP bytes into start line, header fields and body,
//! independent of rsipstack's parser. Validation runs on this view because
//! that parser is lenient (it takes `SIP/7.0`, a negative Content-Length, a
//! header line without a colon) and because a rejection needs the Via, From,
//! To, Call-ID and CSeq of a message that may never parse at all.
//!
//! Also the lexical helpers every reader of raw header values shares
//! (validation and the RFC 2543 compatibility code): token characters,
//! canonical names, and scanning a value outside its quoted strings.

/// One header field as it appeared, with folded lines joined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawHeader {
    /// Canonical long-form name in lower case (`v` becomes `via`).
    pub name: String,
    /// The name as sent.
    pub raw_name: String,
    /// Value with leading/trailing whitespace removed and folds joined by a
    /// single space.
    pub value: String,
}

/// The start line, split but not validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartLine {
    /// `Method SP Request-URI SP SIP-Version`.
    Request {
        /// The whole line as sent (for exact-spacing checks).
        line: String,
    },
    /// `SIP-Version SP Status-Code SP Reason-Phrase`.
    Response {
        /// The whole line as sent.
        line: String,
    },
}

/// A scanned message.
#[derive(Debug, Clone)]
pub struct RawMessage<'a> {
    /// Start line.
    pub start: StartLine,
    /// Header fields in order.
    pub headers: Vec<RawHeader>,
    /// Lines in the header section that are not `name: value` (kept for the
    /// 400 reason).
    pub bad_lines: Vec<String>,
    /// Offset of the body in the input.
    pub body_offset: usize,
    /// Everything after the blank line.
    pub body: &'a [u8],
}

/// Why a byte string is not even scannable as SIP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanError {
    /// No CRLF CRLF ends the header section.
    NoHeaderEnd,
    /// The header section is not UTF-8.
    NotUtf8,
    /// The start line is empty.
    EmptyStartLine,
}

impl std::fmt::Display for ScanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ScanError::NoHeaderEnd => "Missing blank line after headers",
            ScanError::NotUtf8 => "Header section is not UTF-8",
            ScanError::EmptyStartLine => "Empty start line",
        })
    }
}

/// Expands RFC 3261 §7.3.3 compact forms (and the common extension ones).
pub fn canonical_name(name: &str) -> String {
    let lower = name.to_ascii_lowercase();
    let long = match lower.as_str() {
        "i" => "call-id",
        "m" => "contact",
        "e" => "content-encoding",
        "l" => "content-length",
        "c" => "content-type",
        "f" => "from",
        "s" => "subject",
        "k" => "supported",
        "t" => "to",
        "v" => "via",
        "o" => "event",
        "r" => "refer-to",
        "b" => "referred-by",
        "u" => "allow-events",
        "x" => "session-expires",
        "y" => "identity",
        "a" => "accept-contact",
        "j" => "reject-contact",
        "d" => "request-disposition",
        _ => return lower,
    };
    long.to_string()
}

/// RFC 3261 `token` characters.
pub fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-.!%*_+`'~".contains(c)
}

/// Whether `s` is a non-empty token.
pub fn is_token(s: &str) -> bool {
    !s.is_empty() && s.chars().all(is_token_char)
}

/// Scans `bytes`. Leading CRLFs (keepalives, RFC 3261 §7.5) are skipped.
pub fn scan(bytes: &[u8]) -> Result<RawMessage<'_>, ScanError> {
    let mut start = 0;
    while bytes[start..].starts_with(b"\r\n") {
        start += 2;
    }
    let rest = &bytes[start..];
    let end = find(rest, b"\r\n\r\n").ok_or(ScanError::NoHeaderEnd)?;
    let head = std::str::from_utf8(&rest[..end]).map_err(|_| ScanError::NotUtf8)?;
    let body_offset = start + end + 4;
    let mut lines = head.split("\r\n");
    let first = lines.next().unwrap_or("");
    if first.trim().is_empty() {
        return Err(ScanError::EmptyStartLine);
    }
    let start_line = if first.starts_with("SIP/") || first.to_ascii_uppercase().starts_with("SIP/") {
        StartLine::Response { line: first.to_string() }
    } else {
        StartLine::Request { line: first.to_string() }
    };
    let mut headers: Vec<RawHeader> = Vec::new();
    let mut bad_lines = Vec::new();
    for line in lines {
        if line.starts_with(' ') || line.starts_with('\t') {
            match headers.last_mut() {
                Some(h) => {
                    let more = line.trim();
                    if !more.is_empty() {
                        if !h.value.is_empty() {
                            h.value.push(' ');
                        }
                        h.value.push_str(more);
                    }
                }
                None => bad_lines.push(line.to_string()),
            }
            continue;
        }
        match line.split_once(':') {
            Some((name, value)) => {
                let raw_name = name.trim_end_matches([' ', '\t']).to_string();
                headers.push(RawHeader { name: canonical_name(&raw_name), raw_name, value: value.trim().to_string() });
            }
            None => bad_lines.push(line.to_string()),
        }
    }
    Ok(RawMessage { start: start_line, headers, bad_lines, body_offset, body: &bytes[body_offset..] })
}

impl RawMessage<'_> {
    /// All values of a header (canonical lower-case name).
    pub fn all(&self, name: &str) -> impl Iterator<Item = &RawHeader> {
        let name = name.to_string();
        self.headers.iter().filter(move |h| h.name == name)
    }

    /// The first value of a header.
    pub fn first(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|h| h.name == name).map(|h| h.value.as_str())
    }

    /// How many times a header appears (each line counts once; a
    /// comma-separated list in one line counts once too).
    pub fn count(&self, name: &str) -> usize {
        self.headers.iter().filter(|h| h.name == name).count()
    }
}

/// Splits a header value at commas outside quotes and angle brackets.
pub(crate) fn split_commas(v: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut angle) = (0, false);
    for (i, c) in Unquoted::new(v) {
        match c {
            '<' => angle = true,
            '>' => angle = false,
            ',' if !angle => {
                out.push(&v[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&v[start..]);
    out
}

/// The characters of a header value outside quoted strings, with their
/// byte offsets (the quotes themselves and backslash escapes inside them
/// left out). Once run to the end, `quoted` says whether a quoted string
/// was left open.
struct Unquoted<'a> {
    chars: std::str::CharIndices<'a>,
    quoted: bool,
    escape: bool,
}

impl<'a> Unquoted<'a> {
    fn new(v: &'a str) -> Unquoted<'a> {
        Unquoted { chars: v.char_indices(), quoted: false, escape: false }
    }
}

impl Iterator for Unquoted<'_> {
    type Item = (usize, char);

    fn next(&mut self) -> Option<(usize, char)> {
        for (i, c) in self.chars.by_ref() {
            if self.escape {
                self.escape = false;
                continue;
            }
            match c {
                '\\' if self.quoted => self.escape = true,
                '"' => self.quoted = !self.quoted,
                _ if !self.quoted => return Some((i, c)),
                _ => {}
            }
        }
        None
    }
}

/// The first `needle` outside quoted strings; an error when a quoted
/// string is left open.
pub(crate) fn find_unquoted(v: &str, needle: char) -> Result<Option<usize>, &'static str> {
    let mut chars = Unquoted::new(v);
    if let Some((i, _)) = chars.find(|&(_, c)| c == needle) {
        return Ok(Some(i));
    }
    if chars.quoted {
        return Err("unterminated quoted string");
    }
    Ok(None)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scans_folded_and_compact_headers() {
        let msg = b"INVITE sip:a@b SIP/2.0\r\nv: SIP/2.0/UDP h\r\n ;branch=z9hG4bK1\r\nl: 4\r\nbogus line\r\n\r\nbody";
        let m = scan(msg).unwrap();
        assert_eq!(m.first("via"), Some("SIP/2.0/UDP h ;branch=z9hG4bK1"));
        assert_eq!(m.first("content-length"), Some("4"));
        assert_eq!(m.bad_lines, vec!["bogus line".to_string()]);
        assert_eq!(m.body, b"body");
        assert!(matches!(m.start, StartLine::Request { .. }));
    }

    #[test]
    fn rejects_unterminated_and_non_utf8() {
        assert_eq!(scan(b"INVITE sip:a@b SIP/2.0\r\nVia: x\r\n").unwrap_err(), ScanError::NoHeaderEnd);
        assert_eq!(scan(b"INVITE sip:a@b SIP/2.0\r\nX: \xff\r\n\r\n").unwrap_err(), ScanError::NotUtf8);
        assert_eq!(scan(b"\r\n\r\n").unwrap_err(), ScanError::NoHeaderEnd);
    }
}
