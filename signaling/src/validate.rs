//! Screening of every incoming message before rsipstack sees it.
//!
//! rsipstack's parser accepts too much (any `SIP/x.y` version, a negative
//! Content-Length read as zero, header lines without a colon, CSeq methods
//! that contradict the request line) and rejects unknown methods in a way
//! that leaves nothing to answer with. So each message is scanned here
//! ([`crate::wire`]), checked against the RFC 3261 grammar the stack relies
//! on, and either
//! - accepted, re-serialised in a canonical form the stack handles (one Via
//!   per line, LWS inside Via removed, Content-Length set to the body it
//!   framed), or
//! - answered with an error response built from the raw header fields
//!   (400 with the reason in the phrase, 505, 501, 416, 513), or
//! - dropped (responses and messages without a Via cannot be answered).

use crate::error::standard_reason;
use crate::wire::{self, find_unquoted, is_token, split_commas, RawHeader, RawMessage, StartLine};
use std::borrow::Cow;

/// How the bytes were framed, which decides Content-Length handling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// One UDP datagram (RFC 3261 §18.3: excess bytes are dropped, a missing
    /// Content-Length means "the rest of the datagram").
    Datagram,
    /// One message cut out of a stream (TCP, WebSocket).
    Stream,
}

/// What to do with one incoming message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Screening<'a> {
    /// Hand these bytes (possibly rewritten) to the stack.
    Accept(Cow<'a, [u8]>),
    /// Send `response` back to the source and drop the message.
    Reply {
        /// Status code of the response.
        code: u16,
        /// Its reason phrase (says what was wrong for a 400).
        reason: String,
        /// The serialised response.
        response: Vec<u8>,
    },
    /// Drop silently; the text says why (for the log).
    Drop(String),
}

impl Screening<'_> {
    /// Short text for logs and the torture report.
    pub fn summary(&self) -> String {
        match self {
            Screening::Accept(_) => "accepted".into(),
            Screening::Reply { code, reason, .. } => format!("{code} {reason}"),
            Screening::Drop(why) => format!("dropped ({why})"),
        }
    }
}

/// Methods the stack underneath can represent; anything else gets a 501.
pub const KNOWN_METHODS: &[&str] = &[
    "ACK",
    "BYE",
    "CANCEL",
    "INFO",
    "INVITE",
    "MESSAGE",
    "NOTIFY",
    "OPTIONS",
    "PRACK",
    "PUBLISH",
    "REFER",
    "REGISTER",
    "SUBSCRIBE",
    "UPDATE",
];

/// Methods this user agent handles, for Allow headers.
pub const ALLOWED_METHODS: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, MESSAGE, PRACK, REFER, NOTIFY";

struct Reject {
    code: u16,
    reason: String,
}

fn bad(reason: impl Into<String>) -> Reject {
    Reject { code: 400, reason: reason.into() }
}

/// Screens one message. `max_size` bounds the accepted size;
/// `user_agent` goes into the Server header of generated responses.
pub fn screen<'a>(bytes: &'a [u8], framing: Framing, max_size: usize, user_agent: &str) -> Screening<'a> {
    let scanned = match wire::scan(bytes) {
        Ok(m) => m,
        Err(e @ wire::ScanError::NotUtf8) => {
            // Still answerable: scan a lossy copy just to echo its headers.
            let lossy = String::from_utf8_lossy(bytes).into_owned();
            return match wire::scan(lossy.as_bytes()) {
                Ok(m) if is_request(&m) => reply(&m, 400, &e.to_string(), user_agent),
                _ => Screening::Drop(e.to_string()),
            };
        }
        Err(e) => return Screening::Drop(e.to_string()),
    };
    if bytes.len() > max_size {
        return if is_request(&scanned) {
            reply(&scanned, 513, "Message Too Large", user_agent)
        } else {
            Screening::Drop(format!("{} bytes exceed the {max_size} byte limit", bytes.len()))
        };
    }
    match &scanned.start {
        StartLine::Request { line } => match check_request(line, &scanned, framing) {
            Ok(canonical) => match rsipstack::sip::SipMessage::try_from(canonical.as_slice()) {
                Ok(rsipstack::sip::SipMessage::Request(req)) => {
                    match rsipstack::transaction::key::TransactionKey::from_request(
                        &req,
                        rsipstack::transaction::key::TransactionRole::Server,
                    ) {
                        Ok(_) => Screening::Accept(Cow::Owned(canonical)),
                        Err(e) => reply(&scanned, 400, &format!("No transaction key: {e}"), user_agent),
                    }
                }
                Ok(_) => Screening::Drop("start line changed kind".into()),
                Err(e) => reply(&scanned, 400, &format!("Unparseable request: {e}"), user_agent),
            },
            Err(r) => reply(&scanned, r.code, &r.reason, user_agent),
        },
        StartLine::Response { line } => match check_response(line, &scanned, framing) {
            Ok(canonical) => match rsipstack::sip::SipMessage::try_from(canonical.as_slice()) {
                Ok(rsipstack::sip::SipMessage::Response(_)) => Screening::Accept(Cow::Owned(canonical)),
                Ok(_) => Screening::Drop("start line changed kind".into()),
                Err(e) => Screening::Drop(format!("unparseable response: {e}")),
            },
            Err(r) => Screening::Drop(r.reason),
        },
    }
}

fn is_request(m: &RawMessage<'_>) -> bool {
    matches!(m.start, StartLine::Request { .. })
}

/// Checks a request and returns its canonical bytes.
fn check_request(line: &str, m: &RawMessage<'_>, framing: Framing) -> Result<Vec<u8>, Reject> {
    // Request-Line: exactly single SPs, nothing trailing (RFC 3261 §25.1;
    // RFC 4475 lwsstart, trws, lwsruri).
    let parts: Vec<&str> = line.split(' ').collect();
    if parts.len() != 3 || parts.iter().any(|p| p.is_empty() || p.contains('\t')) {
        // A wrong version is worth a 505 even if the rest is odd.
        if let Some(v) = parts.last() {
            if is_sip_version_like(v) && !v.eq_ignore_ascii_case("SIP/2.0") {
                return Err(Reject { code: 505, reason: "Version Not Supported".into() });
            }
        }
        return Err(bad("Malformed Request-Line"));
    }
    let (method, uri, version) = (parts[0], parts[1], parts[2]);
    if !version.eq_ignore_ascii_case("SIP/2.0") {
        if is_sip_version_like(version) {
            return Err(Reject { code: 505, reason: "Version Not Supported".into() });
        }
        return Err(bad("Malformed SIP-Version"));
    }
    if !is_token(method) {
        return Err(bad("Malformed Method"));
    }
    if uri.starts_with('<') || uri.ends_with('>') {
        return Err(bad("Request-URI enclosed in <>"));
    }
    if let Some(l) = m.bad_lines.first() {
        return Err(bad(format!("Malformed header line: {}", truncate(l, 40))));
    }
    if let Some(h) = m.headers.iter().find(|h| !is_token(&h.raw_name)) {
        return Err(bad(format!("Malformed header name: {}", truncate(&h.raw_name, 40))));
    }
    let vias = check_vias(m)?;
    check_single(m, "from")?;
    check_single(m, "to")?;
    check_single(m, "call-id")?;
    check_single(m, "cseq")?;
    check_name_addr(m.first("from").unwrap_or_default()).map_err(|e| bad(format!("Malformed From: {e}")))?;
    check_name_addr(m.first("to").unwrap_or_default()).map_err(|e| bad(format!("Malformed To: {e}")))?;
    for h in m.all("contact") {
        for elem in split_commas(&h.value) {
            check_contact(elem).map_err(|e| bad(format!("Malformed Contact: {e}")))?;
        }
    }
    check_call_id(m.first("call-id").unwrap_or_default())?;
    // RFC 3261 §8.1.1.3 makes the From tag mandatory and the transaction
    // layer keys on it, but RFC 2543 clients send none (§8.2.6.2, RFC 4475
    // §3.4.1): such a From gets a synthetic tag the stack can key on, taken
    // off again on the way out (see `crate::compat`).
    let from = tidy_params(m.first("from").unwrap_or_default());
    let synthetic_from =
        (!has_tag(&from)).then(|| crate::compat::with_synthetic_tag(&from, m.first("call-id").unwrap_or_default()));
    let cseq_method = check_cseq(m.first("cseq").unwrap_or_default())?;
    if cseq_method != method {
        return Err(bad("CSeq method does not match Request-Line"));
    }
    // Max-Forwards is mandatory in RFC 3261 but absent from RFC 2543
    // requests, which RFC 4475 §3.4.1 says to accept: check it only when
    // present.
    if m.count("max-forwards") > 1 {
        return Err(bad("Duplicate Max-Forwards"));
    }
    if let Some(mf) = m.first("max-forwards") {
        if !mf.bytes().all(|b| b.is_ascii_digit()) || mf.is_empty() || mf.parse::<u32>().map_or(true, |v| v > 255) {
            return Err(bad("Malformed Max-Forwards"));
        }
    }
    // RFC 3261 §20.17: SIP dates are always GMT (RFC 4475 baddate).
    if let Some(date) = m.first("date") {
        if !date.trim_end().ends_with("GMT") {
            return Err(bad("Malformed Date"));
        }
    }
    let body = check_body(m, framing)?;
    if !KNOWN_METHODS.contains(&method) {
        return Err(Reject { code: 501, reason: "Not Implemented".into() });
    }
    check_request_uri(uri)?;
    Ok(canonical(line, m, &vias, body, synthetic_from.as_deref()))
}

fn check_response(line: &str, m: &RawMessage<'_>, framing: Framing) -> Result<Vec<u8>, Reject> {
    let mut parts = line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    let code = parts.next().unwrap_or_default();
    if !version.eq_ignore_ascii_case("SIP/2.0") {
        return Err(bad("Unsupported SIP version in response"));
    }
    if code.len() != 3
        || !code.bytes().all(|b| b.is_ascii_digit())
        || !(100..700).contains(&code.parse::<u16>().unwrap_or(0))
    {
        return Err(bad("Malformed Status-Code"));
    }
    if !m.bad_lines.is_empty() {
        return Err(bad("Malformed header line"));
    }
    let vias = check_vias(m)?;
    for h in ["from", "to", "call-id", "cseq"] {
        check_single(m, h)?;
    }
    check_cseq(m.first("cseq").unwrap_or_default())?;
    let body = check_body(m, framing)?;
    Ok(canonical(line, m, &vias, body, None))
}

/// `SIP/<something>`, case-insensitively (byte-wise: the input may hold
/// multi-byte UTF-8 anywhere).
fn is_sip_version_like(v: &str) -> bool {
    v.len() > 4 && v.as_bytes()[..4].eq_ignore_ascii_case(b"SIP/")
}

fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

fn check_single(m: &RawMessage<'_>, name: &str) -> Result<(), Reject> {
    match m.count(name) {
        0 => Err(bad(format!("Missing {} header", pretty(name)))),
        1 => Ok(()),
        _ => Err(bad(format!("Duplicate {} header", pretty(name)))),
    }
}

fn pretty(name: &str) -> &str {
    match name {
        "from" => "From",
        "to" => "To",
        "call-id" => "Call-ID",
        "cseq" => "CSeq",
        "via" => "Via",
        other => other,
    }
}

fn check_call_id(v: &str) -> Result<(), Reject> {
    if v.is_empty() || v.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("Malformed Call-ID"));
    }
    Ok(())
}

/// `CSeq: 1*DIGIT LWS Method`, the number below 2^31 (RFC 3261 §8.1.1.5).
fn check_cseq(v: &str) -> Result<String, Reject> {
    let mut it = v.split_whitespace();
    let (Some(num), Some(method), None) = (it.next(), it.next(), it.next()) else {
        return Err(bad("Malformed CSeq"));
    };
    if !num.bytes().all(|b| b.is_ascii_digit()) || num.parse::<u64>().map_or(true, |n| n >= 1 << 31) {
        return Err(bad("CSeq number out of range"));
    }
    if !is_token(method) {
        return Err(bad("Malformed CSeq method"));
    }
    Ok(method.to_string())
}

/// Body per Content-Length: several differing values, a sign or a value
/// beyond the bytes present are errors (RFC 4475 mcl01, ncl, clerr).
fn check_body<'a>(m: &RawMessage<'a>, framing: Framing) -> Result<&'a [u8], Reject> {
    let mut declared: Option<usize> = None;
    for h in m.all("content-length") {
        let v = h.value.trim();
        if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) || v.len() > 9 {
            return Err(bad("Malformed Content-Length"));
        }
        let n: usize = v.parse().map_err(|_| bad("Malformed Content-Length"))?;
        if declared.is_some_and(|d| d != n) {
            return Err(bad("Conflicting Content-Length headers"));
        }
        declared = Some(n);
    }
    match (declared, framing) {
        (Some(n), _) if n > m.body.len() => Err(bad("Content-Length larger than message")),
        (Some(n), _) => Ok(&m.body[..n]),
        (None, Framing::Datagram) => Ok(m.body),
        (None, Framing::Stream) => {
            if m.body.is_empty() {
                Ok(m.body)
            } else {
                Err(bad("Missing Content-Length"))
            }
        }
    }
}

/// Request-URI: a scheme this UA serves, no embedded headers (RFC 4475
/// escruri), no whitespace.
fn check_request_uri(uri: &str) -> Result<(), Reject> {
    let Some((scheme, rest)) = uri.split_once(':') else {
        return Err(bad("Malformed Request-URI"));
    };
    let scheme_ok = !scheme.is_empty()
        && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
    if !scheme_ok || rest.is_empty() {
        return Err(bad("Malformed Request-URI"));
    }
    let scheme = scheme.to_ascii_lowercase();
    if !matches!(scheme.as_str(), "sip" | "sips" | "tel") {
        return Err(Reject { code: 416, reason: "Unsupported URI Scheme".into() });
    }
    // '?' starts URI headers only after the userinfo: the user part may
    // hold it (user-unreserved, RFC 3261 §25.1; RFC 4475 intmeth), and no
    // raw '@' can follow the userinfo in a valid URI.
    let after_userinfo = rest.split_once('@').map_or(rest, |(_, hostpart)| hostpart);
    if scheme != "tel" && after_userinfo.contains('?') {
        return Err(bad("Headers not allowed in Request-URI"));
    }
    Ok(())
}

/// A parsed Via element, kept to re-serialise it canonically.
#[derive(Debug, Clone)]
struct ViaElem {
    transport: String,
    sent_by: String,
    params: String,
}

fn check_vias(m: &RawMessage<'_>) -> Result<Vec<ViaElem>, Reject> {
    let mut out = Vec::new();
    for h in m.all("via") {
        for elem in split_commas(&h.value) {
            out.push(parse_via(elem).map_err(|e| bad(format!("Malformed Via: {e}")))?);
        }
    }
    if out.is_empty() {
        return Err(bad("Missing Via header"));
    }
    Ok(out)
}

/// `SIP LWS? / LWS? 2.0 LWS? / LWS? transport LWS sent-by *(; param)`.
fn parse_via(v: &str) -> Result<ViaElem, &'static str> {
    let v = v.trim();
    let mut parts = v.splitn(3, '/');
    let name = parts.next().unwrap_or_default().trim();
    let version = parts.next().ok_or("no protocol version")?.trim();
    let rest = parts.next().ok_or("no transport")?.trim_start();
    if !name.eq_ignore_ascii_case("SIP") {
        return Err("protocol is not SIP");
    }
    if version != "2.0" {
        return Err("protocol version is not 2.0");
    }
    let tlen = rest.find(|c: char| c.is_ascii_whitespace()).ok_or("no sent-by")?;
    let transport = &rest[..tlen];
    if !is_token(transport) {
        return Err("bad transport");
    }
    let after = rest[tlen..].trim_start();
    let (sent_by, params) = match after.find(';') {
        Some(i) => (after[..i].trim(), &after[i..]),
        None => (after.trim(), ""),
    };
    check_host_port(sent_by)?;
    let mut canon_params = String::new();
    for p in params.split(';').skip(1) {
        let (k, val) = match p.split_once('=') {
            Some((k, v)) => (k.trim(), Some(v.trim())),
            None => (p.trim(), None),
        };
        if !is_token(k) {
            return Err("bad parameter");
        }
        canon_params.push(';');
        canon_params.push_str(k);
        if let Some(val) = val {
            let quoted = val.len() >= 2 && val.starts_with('"') && val.ends_with('"');
            if val.is_empty() || !(quoted || val.chars().all(is_token_or_host)) {
                return Err("bad parameter value");
            }
            canon_params.push('=');
            canon_params.push_str(val);
        }
    }
    Ok(ViaElem { transport: transport.to_ascii_uppercase(), sent_by: sent_by.to_string(), params: canon_params })
}

fn is_token_or_host(c: char) -> bool {
    wire::is_token_char(c) || c == ':' || c == '[' || c == ']'
}

fn check_host_port(s: &str) -> Result<(), &'static str> {
    if s.is_empty() || s.contains(char::is_whitespace) {
        return Err("bad sent-by");
    }
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, after) = rest.split_once(']').ok_or("bad IPv6 reference")?;
        h.parse::<std::net::Ipv6Addr>().map_err(|_| "bad IPv6 address")?;
        (h, after.strip_prefix(':'))
    } else {
        match s.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    if host.is_empty() || !host.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == ':') {
        return Err("bad host");
    }
    if let Some(p) = port {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) || p.parse::<u32>().map_or(true, |n| n > 65535) {
            return Err("bad port");
        }
    }
    Ok(())
}

/// From/To: `[display-name] <addr-spec> *(;param)` or `addr-spec *(;param)`
/// (RFC 3261 §20.20/§25.1). Catches the RFC 4475 quotbal, baddn and badaspec
/// cases.
fn check_name_addr(v: &str) -> Result<(), &'static str> {
    let v = v.trim();
    if v.is_empty() {
        return Err("empty");
    }
    let params;
    if let Some(lt) = find_unquoted(v, '<')? {
        let display = v[..lt].trim();
        if display.starts_with('"') {
            let end = closing_quote(display).ok_or("unterminated quoted string")?;
            if !display[end + 1..].trim().is_empty() {
                return Err("text after quoted display name");
            }
        } else if !display.split_whitespace().all(is_token) {
            return Err("display name is neither token nor quoted string");
        }
        let rest = &v[lt + 1..];
        let gt = rest.find('>').ok_or("missing >")?;
        let spec = &rest[..gt];
        if spec.is_empty() || spec != spec.trim() || spec.contains(char::is_whitespace) {
            return Err("whitespace in addr-spec");
        }
        check_addr_spec(spec)?;
        params = &rest[gt + 1..];
    } else {
        // addr-spec form: the URI ends at the first ';' (its parameters
        // would be header parameters, RFC 3261 §20.10).
        let end = v.find(';').unwrap_or(v.len());
        let spec = v[..end].trim();
        if spec.contains(char::is_whitespace) || spec.contains('"') {
            return Err("display name without <>");
        }
        if spec.contains('?') {
            return Err(HEADERS_OUTSIDE_BRACKETS);
        }
        check_addr_spec(spec)?;
        params = &v[end..];
    }
    let params = params.trim();
    if !params.is_empty() {
        if !params.starts_with(';') {
            return Err("junk after URI");
        }
        for p in params.split(';').skip(1) {
            let k = p.split_once('=').map_or(p, |(k, _)| k).trim();
            if !is_token(k) {
                return Err("bad parameter");
            }
        }
    }
    Ok(())
}

/// RFC 3261 §20: a URI with a comma, question mark or semicolon MUST be
/// in name-addr form; in addr-spec form a `?` (URI headers) cannot be told
/// apart from the field's own syntax (RFC 4475 regbadct).
const HEADERS_OUTSIDE_BRACKETS: &str = "URI with headers not enclosed in <>";

/// One Contact value: `*`, a name-addr (not looked into here) or an
/// addr-spec, which must not carry URI headers.
fn check_contact(elem: &str) -> Result<(), &'static str> {
    let elem = elem.trim();
    if elem == "*" || find_unquoted(elem, '<')?.is_some() {
        return Ok(());
    }
    // addr-spec form: the URI ends at the first ';' (header parameters follow).
    let spec = &elem[..elem.find(';').unwrap_or(elem.len())];
    if spec.contains('?') {
        return Err(HEADERS_OUTSIDE_BRACKETS);
    }
    Ok(())
}

fn closing_quote(s: &str) -> Option<usize> {
    let mut escape = false;
    for (i, c) in s.char_indices().skip(1) {
        if escape {
            escape = false;
            continue;
        }
        match c {
            '\\' => escape = true,
            '"' => return Some(i),
            _ => {}
        }
    }
    None
}

fn check_addr_spec(spec: &str) -> Result<(), &'static str> {
    let (scheme, rest) = spec.split_once(':').ok_or("URI without scheme")?;
    if scheme.is_empty()
        || !scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        || !scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        || rest.is_empty()
    {
        return Err("bad URI");
    }
    Ok(())
}

/// Rebuilds the message: start line as sent, each Via element on its own
/// line, other fields unfolded under their long names, Content-Length set
/// to the framed body; `from`, when given, replaces the From value (a
/// tagless From with its synthetic tag).
fn canonical(start: &str, m: &RawMessage<'_>, vias: &[ViaElem], body: &[u8], from: Option<&str>) -> Vec<u8> {
    let mut out = String::with_capacity(m.body_offset + 64);
    out.push_str(start);
    out.push_str("\r\n");
    let mut vias_written = false;
    for h in &m.headers {
        match h.name.as_str() {
            "via" => {
                if !vias_written {
                    for v in vias {
                        out.push_str(&format!("Via: SIP/2.0/{} {}{}\r\n", v.transport, v.sent_by, v.params));
                    }
                    vias_written = true;
                }
            }
            "content-length" => {}
            "from" if from.is_some() => {
                out.push_str(&long_name(h));
                out.push_str(": ");
                out.push_str(from.unwrap_or_default());
                out.push_str("\r\n");
            }
            "from" | "to" | "contact" | "route" | "record-route" => {
                out.push_str(&long_name(h));
                out.push_str(": ");
                out.push_str(&tidy_params(&h.value));
                out.push_str("\r\n");
            }
            _ => {
                out.push_str(&long_name(h));
                out.push_str(": ");
                out.push_str(&h.value);
                out.push_str("\r\n");
            }
        }
    }
    out.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

fn long_name(h: &RawHeader) -> Cow<'_, str> {
    if h.raw_name.len() == 1 {
        // Compact forms are expanded: rsipstack knows only some of them.
        let mut s = String::new();
        for (i, part) in h.name.split('-').enumerate() {
            if i > 0 {
                s.push('-');
            }
            let mut c = part.chars();
            if let Some(f) = c.next() {
                s.extend(f.to_uppercase());
                s.push_str(c.as_str());
            }
        }
        if s == "Call-Id" {
            s = "Call-ID".into();
        }
        Cow::Owned(s)
    } else {
        Cow::Borrowed(&h.raw_name)
    }
}

/// Whether a name-addr carries a `tag` parameter (LWS around `;`/`=`
/// allowed, RFC 4475 wsinv).
fn has_tag(v: &str) -> bool {
    let tidy = tidy_params(v);
    let after = match tidy.rfind('>') {
        Some(i) => &tidy[i..],
        None => &tidy[..],
    };
    after.split(';').skip(1).any(|p| p.split('=').next().is_some_and(|k| k.eq_ignore_ascii_case("tag")))
}

/// Removes LWS around `;`, `=` and `,` outside quoted strings, which the
/// grammar allows but rsipstack's header parser does not.
fn tidy_params(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let (mut quoted, mut escape) = (false, false);
    let mut pending_space = false;
    for c in v.chars() {
        if quoted {
            out.push(c);
            if escape {
                escape = false;
            } else if c == '\\' {
                escape = true;
            } else if c == '"' {
                quoted = false;
            }
            continue;
        }
        match c {
            ' ' | '\t' => pending_space = true,
            ';' | '=' | ',' => {
                while out.ends_with(' ') {
                    out.pop();
                }
                out.push(c);
                pending_space = false;
            }
            _ => {
                if pending_space && !out.is_empty() && !out.ends_with([';', '=', ',']) {
                    out.push(' ');
                }
                pending_space = false;
                if c == '"' {
                    quoted = true;
                }
                out.push(c);
            }
        }
    }
    out
}

/// An error response echoing the request's Via/From/To/Call-ID/CSeq, sent
/// to the source. Without a Via there is nothing to answer, and an ACK is
/// never answered (RFC 3261 §17.2.1).
fn reply<'a>(m: &RawMessage<'_>, code: u16, reason: &str, user_agent: &str) -> Screening<'a> {
    if let StartLine::Request { line } = &m.start {
        if line.starts_with("ACK ") {
            return Screening::Drop(format!("ACK: {code} {reason}"));
        }
    }
    match build_response(m, code, reason, user_agent) {
        Some(response) => Screening::Reply { code, reason: reason.to_string(), response },
        None => Screening::Drop(format!("{code} {reason}, but no Via to answer")),
    }
}

/// Builds the response bytes; `None` without any Via.
pub(crate) fn build_response(m: &RawMessage<'_>, code: u16, reason: &str, user_agent: &str) -> Option<Vec<u8>> {
    if m.count("via") == 0 {
        return None;
    }
    // Reason phrases must not break the status line.
    let reason: String = reason.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    let reason = if reason.is_empty() { standard_reason(code).to_string() } else { reason };
    let mut out = format!("SIP/2.0 {code} {reason}\r\n");
    for h in m.all("via") {
        out.push_str(&format!("Via: {}\r\n", h.value));
    }
    for (name, label) in [("from", "From"), ("to", "To"), ("call-id", "Call-ID"), ("cseq", "CSeq")] {
        if let Some(v) = m.first(name) {
            if name == "to" && !v.contains(";tag=") && !v.to_ascii_lowercase().contains("tag=") {
                out.push_str(&format!("To: {v};tag={}\r\n", rsipstack::transaction::random_text(10)));
            } else {
                out.push_str(&format!("{label}: {v}\r\n"));
            }
        }
    }
    if code == 501 || code == 405 {
        out.push_str(&format!("Allow: {ALLOWED_METHODS}\r\n"));
    }
    if !user_agent.is_empty() {
        out.push_str(&format!("Server: {user_agent}\r\n"));
    }
    out.push_str("Content-Length: 0\r\n\r\n");
    Some(out.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = "OPTIONS sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1\r\nMax-Forwards: 70\r\nFrom: <sip:a@example.com>;tag=1\r\nTo: <sip:bob@example.com>\r\nCall-ID: c1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";

    fn code(s: &str) -> String {
        screen(s.as_bytes(), Framing::Datagram, 65535, "test").summary()
    }

    #[test]
    fn accepts_plain_request() {
        assert_eq!(code(OK), "accepted");
    }

    #[test]
    fn answers_each_defect_with_its_reason() {
        assert_eq!(code(&OK.replace("SIP/2.0\r\n", "SIP/7.0\r\n")), "505 Version Not Supported");
        assert_eq!(code(&OK.replace("1 OPTIONS", "1 INVITE")), "400 CSeq method does not match Request-Line");
        assert_eq!(code(&OK.replace("Call-ID: c1\r\n", "")), "400 Missing Call-ID header");
        assert_eq!(code(&OK.replace("Content-Length: 0", "Content-Length: -1")), "400 Malformed Content-Length");
        assert_eq!(
            code(&OK.replace("Content-Length: 0", "Content-Length: 10")),
            "400 Content-Length larger than message"
        );
        assert_eq!(code(&OK.replace("OPTIONS sip", "FOO sip").replace("1 OPTIONS", "1 FOO")), "501 Not Implemented");
        assert_eq!(
            code(&OK.replace("Max-Forwards: 70\r\n", "Max-Forwards: 70\r\nnot a header\r\n")),
            "400 Malformed header line: not a header"
        );
        assert!(code(&OK.replace("Via: SIP/2.0/UDP", "Via: SIP/3.0/UDP")).starts_with("400 Malformed Via"));
        assert_eq!(code(&OK.replace("sip:bob@example.com SIP", "xyz:bob SIP")), "416 Unsupported URI Scheme");
    }

    #[test]
    fn rejection_echoes_headers_and_adds_to_tag() {
        let msg = OK.replace("1 OPTIONS", "1 INVITE");
        let s = screen(msg.as_bytes(), Framing::Datagram, 65535, "ua");
        let Screening::Reply { response, .. } = s else { panic!() };
        let text = String::from_utf8(response).unwrap();
        assert!(text.starts_with("SIP/2.0 400 CSeq method does not match Request-Line\r\n"));
        assert!(text.contains("Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1\r\n"));
        assert!(text.contains("To: <sip:bob@example.com>;tag="));
        assert!(text.contains("Call-ID: c1\r\n"));
    }

    #[test]
    fn datagram_without_content_length_takes_rest_and_canonicalises() {
        let msg = "MESSAGE sip:bob@example.com SIP/2.0\r\nv: SIP / 2.0 / UDP h.example.com;branch=z9hG4bK2, SIP/2.0/TCP g\r\nf: <sip:a@example.com>;tag=1\r\nt: sip:bob@example.com\r\ni: c2\r\nCSeq: 1 MESSAGE\r\nc: text/plain\r\n\r\nhello";
        let Screening::Accept(bytes) = screen(msg.as_bytes(), Framing::Datagram, 65535, "") else { panic!() };
        let text = String::from_utf8(bytes.to_vec()).unwrap();
        assert!(text.contains("Via: SIP/2.0/UDP h.example.com;branch=z9hG4bK2\r\nVia: SIP/2.0/TCP g\r\n"), "{text}");
        assert!(text.contains("Call-ID: c2\r\n"), "{text}");
        assert!(text.ends_with("Content-Length: 5\r\n\r\nhello"), "{text}");
        // On a stream the same message lacks framing.
        assert!(screen(msg.as_bytes(), Framing::Stream, 65535, "").summary().contains("Missing Content-Length"));
    }

    #[test]
    fn tidies_lws_around_parameters() {
        assert_eq!(tidy_params("sip:a@b ;   tag    = 19n"), "sip:a@b;tag=19n");
        assert_eq!(tidy_params("\"J R \\\"\"  <sip:j@e> ; tag = 98"), "\"J R \\\"\" <sip:j@e>;tag=98");
        assert!(has_tag("<sip:a@b> ; tag = 1"));
        assert!(!has_tag("<sip:a@b;tag=1>"));
    }

    #[test]
    fn question_mark_in_request_uri_user_part_is_not_a_header() {
        // RFC 4475 §3.1.1.2 (intmeth) uses '?' and '/' in the user part.
        let uri = "sip:a?b/c=d@example.com";
        assert_eq!(code(&OK.replace("OPTIONS sip:bob@example.com SIP", &format!("OPTIONS {uri} SIP"))), "accepted");
        assert_eq!(
            code(&OK.replace("OPTIONS sip:bob@example.com SIP", "OPTIONS sip:a?b@example.com?Route=x SIP")),
            "400 Headers not allowed in Request-URI"
        );
        assert_eq!(
            code(&OK.replace("OPTIONS sip:bob@example.com SIP", "OPTIONS sip:example.com?Route=x SIP")),
            "400 Headers not allowed in Request-URI"
        );
    }

    #[test]
    fn uri_headers_need_angle_brackets() {
        // RFC 4475 §3.1.2.13 (regbadct) is invalid; §3.3.14 (regescrt), the
        // same URI inside <>, is valid.
        let reg = OK.replace("OPTIONS", "REGISTER");
        let with = |contact: &str| {
            code(&reg.replace("Content-Length: 0", &format!("Contact: {contact}\r\nContent-Length: 0")))
        };
        assert_eq!(
            with("sip:u@192.0.2.1?Route=%3Csip:p.example.com%3E"),
            "400 Malformed Contact: URI with headers not enclosed in <>"
        );
        assert_eq!(
            with("<sip:u@192.0.2.1>, sip:v@192.0.2.2?X=1;q=0.5"),
            "400 Malformed Contact: URI with headers not enclosed in <>"
        );
        assert_eq!(with("<sip:u@192.0.2.1?Route=%3Csip:p.example.com%3E>"), "accepted");
        assert_eq!(with("sip:u@192.0.2.1;expires=60"), "accepted");
        assert_eq!(with("\"who?\" <sip:u@192.0.2.1>;q=0.1"), "accepted");
        assert_eq!(with("*"), "accepted");
        assert_eq!(
            code(&reg.replace("To: <sip:bob@example.com>", "To: sip:bob@example.com?Subject=hi")),
            "400 Malformed To: URI with headers not enclosed in <>"
        );
    }

    #[test]
    fn tagless_from_gets_the_synthetic_tag() {
        // RFC 2543 syntax (RFC 4475 §3.4.1): no From tag, no branch.
        let msg =
            OK.replace("From: <sip:a@example.com>;tag=1", "f: sip:a@example.com ").replace(";branch=z9hG4bK1", "");
        let Screening::Accept(bytes) = screen(msg.as_bytes(), Framing::Datagram, 65535, "") else {
            panic!("{}", code(&msg))
        };
        let text = String::from_utf8(bytes.to_vec()).unwrap();
        let tag = crate::compat::synthetic_tag("c1", "sip:a@example.com");
        assert!(text.contains(&format!("\r\nFrom: sip:a@example.com;tag={tag}\r\n")), "{text}");
        // Its ACK and BYE get the same tag; a tagged From is left alone.
        for method in ["ACK", "BYE", "CANCEL"] {
            let m =
                msg.replace("OPTIONS", method).replace("To: <sip:bob@example.com>", "To: <sip:bob@example.com>;tag=x");
            let Screening::Accept(b) = screen(m.as_bytes(), Framing::Datagram, 65535, "") else { panic!("{method}") };
            assert!(String::from_utf8_lossy(&b).contains(&format!(";tag={tag}\r\n")), "{method}");
        }
        let Screening::Accept(b) = screen(OK.as_bytes(), Framing::Datagram, 65535, "") else { panic!() };
        assert!(String::from_utf8_lossy(&b).contains("From: <sip:a@example.com>;tag=1\r\n"));
    }

    #[test]
    fn a_bad_ack_is_dropped_not_answered() {
        let ack = OK.replace("OPTIONS sip:bob@example.com", "ACK ").replace("1 OPTIONS", "1 ACK");
        assert!(matches!(screen(ack.as_bytes(), Framing::Datagram, 65535, ""), Screening::Drop(_)));
    }

    #[test]
    fn oversize_and_garbage() {
        assert_eq!(screen(OK.as_bytes(), Framing::Datagram, 100, "").summary(), "513 Message Too Large");
        assert!(matches!(screen(b"\x00\x01garbage", Framing::Datagram, 100, ""), Screening::Drop(_)));
        assert!(matches!(screen(b"SIP/2.0 200 OK\r\n\r\n", Framing::Datagram, 100, ""), Screening::Drop(_)));
    }
}
