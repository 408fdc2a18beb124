//! RFC 2543 peers: requests whose From carries no tag.
//!
//! RFC 3261 §8.1.1.3 makes the From tag mandatory, but §8.2.6.2 and
//! §12.1.1 say a UAS must be prepared for requests from RFC 2543 clients
//! without one (RFC 4475 §3.4.1, `inv2543`). rsipstack keys transactions
//! (`TransactionKey::from_request`) and dialogs (`DialogId`) on the From
//! tag and refuses messages without it, so:
//!
//! - **on the way in**, [`crate::validate`] gives a tagless From a
//!   synthetic tag, [`synthetic_tag`], derived only from the Call-ID and
//!   the From URI. An RFC 2543 client copies both unchanged into the
//!   INVITE's retransmissions, its ACK, CANCEL and every later request of
//!   the call (and the CSeq does not enter the tag), so all of them map to
//!   the same transaction and dialog identity inside the stack;
//! - **on the way out**, the UDP socket under rsipstack
//!   ([`crate::guard::ScreenedUdp`]) removes that tag again from the bytes
//!   it sends ([`strip_synthetic_tags`]): responses carry From as received
//!   (RFC 3261 §8.2.6.2) and our in-dialog requests carry the peer's URI in
//!   To without a remote tag (§12.2.1.1: the remote tag is null). Inside
//!   the stack the tag stays, so its state (the stored last response, the
//!   ACK route, the dialog id) stays consistent.
//!
//! The stripping is done on bytes, not with rsipstack's
//! `MessageInspector::before_send`: a server transaction keeps the
//! inspected response as its `last_response` and derives the dialog id of
//! the ACK route from it (`DialogId::try_from(&Response)` fails without a
//! From tag, which makes the transition to Completed after a non-2xx
//! error out). Stream transports (TCP, TLS, WebSocket) have no byte-level
//! hook in rsipstack 0.7.14, so there the synthetic tag stays on the wire:
//! an extra `tag` parameter is legal RFC 2543 syntax (§6.21 allows
//! `addr-params` on From; RFC 2543 UAs ignore unknown parameters), and
//! RFC 2543 peers on those transports are rare (TLS and WebSocket
//! postdate it).

use sha2::{Digest, Sha256};

/// Start of every synthetic tag (a token, RFC 3261 §25.1).
pub const SYNTHETIC_TAG_PREFIX: &str = "sb2543-";

/// The URI of a From/To value: inside `<>` for a name-addr, up to the first
/// `;` for an addr-spec; trimmed.
pub fn header_uri(value: &str) -> &str {
    match (find_unquoted(value, '<'), value.rfind('>')) {
        (Some(lt), Some(gt)) if gt > lt => value[lt + 1..gt].trim(),
        _ => value.split(';').next().unwrap_or_default().trim(),
    }
}

/// The first unquoted `needle` (an unterminated quote means none).
fn find_unquoted(v: &str, needle: char) -> Option<usize> {
    crate::wire::find_unquoted(v, needle).ok().flatten()
}

/// The tag standing in for a missing From tag: a hash of the Call-ID and
/// the From URI (case-insensitive: only its spelling by this stack could
/// differ, never what an RFC 2543 client copies), so every request of the
/// call gets the same one, whatever its method or CSeq.
pub fn synthetic_tag(call_id: &str, uri: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"sipbridge rfc2543 from-tag\n");
    h.update(call_id.trim().as_bytes());
    h.update(b"\n");
    h.update(uri.trim().to_ascii_lowercase().as_bytes());
    let digest = h.finalize();
    let mut tag = String::from(SYNTHETIC_TAG_PREFIX);
    for b in &digest[..8] {
        tag.push_str(&format!("{b:02x}"));
    }
    tag
}

/// Whether `tag` is the synthetic tag for this Call-ID and URI.
pub fn is_synthetic(tag: &str, call_id: &str, uri: &str) -> bool {
    tag.starts_with(SYNTHETIC_TAG_PREFIX) && tag == synthetic_tag(call_id, uri)
}

/// `value` (a tagless From) with its synthetic tag appended.
pub(crate) fn with_synthetic_tag(value: &str, call_id: &str) -> String {
    format!("{value};tag={}", synthetic_tag(call_id, header_uri(value)))
}

/// Outgoing bytes with every synthetic tag removed from From and To, or
/// `None` when there is none (the common case costs one substring search
/// of the header section). Only the `;tag=...` parameter is cut; every
/// other byte, the body included, is kept.
pub fn strip_synthetic_tags(bytes: &[u8]) -> Option<Vec<u8>> {
    let head_end = bytes.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&bytes[..head_end]).ok()?;
    if !head.contains(SYNTHETIC_TAG_PREFIX) {
        return None;
    }
    let lines: Vec<&str> = head.split("\r\n").collect();
    let call_id = lines.iter().skip(1).find_map(|l| {
        let (name, value) = l.split_once(':')?;
        matches!(crate::wire::canonical_name(name.trim()).as_str(), "call-id").then(|| value.trim())
    })?;
    let mut changed = false;
    let mut out = String::with_capacity(head.len());
    for (i, line) in lines.iter().enumerate() {
        if i > 0 {
            out.push_str("\r\n");
        }
        let rewritten = (i > 0)
            .then(|| line.split_once(':'))
            .flatten()
            .filter(|(name, _)| matches!(crate::wire::canonical_name(name.trim()).as_str(), "from" | "to"))
            .and_then(|(_, value)| strip_in_value(value, call_id).map(|v| (line.len() - value.len(), v)));
        match rewritten {
            Some((name_len, value)) => {
                out.push_str(&line[..name_len]);
                out.push_str(&value);
                changed = true;
            }
            None => out.push_str(line),
        }
    }
    if !changed {
        return None;
    }
    let mut bytes_out = out.into_bytes();
    bytes_out.extend_from_slice(&bytes[head_end..]);
    Some(bytes_out)
}

/// The header value without its `;tag=` parameter when that tag is the
/// synthetic one for this Call-ID and the value's URI.
fn strip_in_value(value: &str, call_id: &str) -> Option<String> {
    let uri = header_uri(value);
    let params_from = match find_unquoted(value, '<') {
        Some(_) => value.rfind('>')? + 1,
        None => value.find(';')?,
    };
    let params = &value[params_from..];
    let mut pos = 0;
    for p in params.split(';') {
        let start = pos;
        pos += p.len() + 1;
        // The first piece is what precedes the first ';' (nothing, or LWS).
        let Some((k, v)) = p.split_once('=').filter(|_| start > 0) else { continue };
        if k.trim().eq_ignore_ascii_case("tag") && is_synthetic(v.trim(), call_id, uri) {
            // `start` is the offset of this parameter; its ';' is before it.
            let cut_from = params_from + start - 1;
            let cut_to = (params_from + start + p.len()).min(value.len());
            let mut out = String::with_capacity(value.len());
            out.push_str(&value[..cut_from]);
            out.push_str(&value[cut_to..]);
            return Some(out);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const CID: &str = "inv2543.2c2c@192.0.2.61";

    #[test]
    fn tag_is_stable_token_and_depends_on_call_id_and_uri_only() {
        let t = synthetic_tag(CID, "sip:dan@example.org");
        assert!(t.starts_with(SYNTHETIC_TAG_PREFIX));
        assert_eq!(t.len(), SYNTHETIC_TAG_PREFIX.len() + 16);
        assert!(crate::wire::is_token(&t), "{t}");
        // Deterministic (no per-process key): the same on every call.
        assert_eq!(t, synthetic_tag(CID, "sip:dan@example.org"));
        assert_eq!(t, synthetic_tag(&format!(" {CID} "), " SIP:Dan@Example.ORG "));
        assert_ne!(t, synthetic_tag("other-call", "sip:dan@example.org"));
        assert_ne!(t, synthetic_tag(CID, "sip:eve@example.org"));
    }

    #[test]
    fn same_tag_for_every_form_of_the_from_value() {
        // The INVITE, its ACK, CANCEL and BYE of an RFC 2543 client carry
        // the same From; whatever form it takes, only the URI counts.
        let want = synthetic_tag(CID, "sip:dan@example.org");
        for v in [
            "sip:dan@example.org",
            "<sip:dan@example.org>",
            "\"Dan <x>\" <sip:dan@example.org>",
            "Dan <sip:dan@example.org> ;x=1",
            "sip:dan@example.org;x=1",
        ] {
            assert_eq!(synthetic_tag(CID, header_uri(v)), want, "{v}");
            assert_eq!(with_synthetic_tag(v, CID), format!("{v};tag={want}"));
        }
        assert_eq!(header_uri("<sip:a@b;lr>;tag=1"), "sip:a@b;lr");
    }

    #[test]
    fn strips_only_synthetic_tags_and_keeps_every_other_byte() {
        let tag = synthetic_tag(CID, "sip:dan@example.org");
        let ours = "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 192.0.2.61\r\nFrom: sip:dan@example.org;tag=TAG\r\nTo: <sip:carol@torture.example.net>;tag=abc\r\nCall-ID: CID\r\nCSeq: 1 INVITE\r\nContent-Length: 4\r\n\r\nbody";
        let msg = ours.replace("TAG", &tag).replace("CID", CID);
        let out = String::from_utf8(strip_synthetic_tags(msg.as_bytes()).unwrap()).unwrap();
        assert_eq!(out, msg.replace(&format!(";tag={tag}"), ""));
        assert!(out.contains("\r\nFrom: sip:dan@example.org\r\n"), "{out}");
        assert!(out.ends_with("\r\n\r\nbody"));

        // In our in-dialog request the peer is in To, in name-addr form
        // with other parameters around the tag.
        let bye = format!(
            "BYE sip:dan@192.0.2.61 SIP/2.0\r\nFrom: <sip:carol@x>;tag=abc\r\nt: \"Dan\" <sip:dan@example.org>;a=1;tag={tag};b=2\r\ni: {CID}\r\nCSeq: 2 BYE\r\n\r\n"
        );
        let out = String::from_utf8(strip_synthetic_tags(bye.as_bytes()).unwrap()).unwrap();
        assert!(out.contains("\r\nt: \"Dan\" <sip:dan@example.org>;a=1;b=2\r\n"), "{out}");
        assert!(out.contains("From: <sip:carol@x>;tag=abc\r\n"));

        // A real tag, a prefix-lookalike for another URI or Call-ID, and a
        // message without the prefix are all left alone.
        assert!(strip_synthetic_tags(ours.replace("TAG", "1928301774").replace("CID", CID).as_bytes()).is_none());
        let other = synthetic_tag("another-call", "sip:dan@example.org");
        assert!(strip_synthetic_tags(ours.replace("TAG", &other).replace("CID", CID).as_bytes()).is_none());
        assert!(strip_synthetic_tags(b"SIP/2.0 200 OK\r\nCall-ID: x\r\n\r\n").is_none());
        // The prefix in the body only: no rewrite.
        assert!(strip_synthetic_tags(format!("SIP/2.0 200 OK\r\nCall-ID: x\r\n\r\n{SYNTHETIC_TAG_PREFIX}").as_bytes())
            .is_none());
    }

    #[test]
    fn screen_round_trip() {
        // What the screen adds on the way in, the socket removes on the way
        // out: the response's From is the request's From byte for byte.
        let from = "sip:dan@example.org";
        let tagged = with_synthetic_tag(from, CID);
        let resp = format!("SIP/2.0 180 Ringing\r\nFrom: {tagged}\r\nCall-ID: {CID}\r\n\r\n");
        let out = String::from_utf8(strip_synthetic_tags(resp.as_bytes()).unwrap()).unwrap();
        assert_eq!(out, format!("SIP/2.0 180 Ringing\r\nFrom: {from}\r\nCall-ID: {CID}\r\n\r\n"));
    }
}
