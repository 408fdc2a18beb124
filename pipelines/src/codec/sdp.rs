//! A small, strict SDP (RFC 4566) reader and writer for the audio legs.
//!
//! GStreamer's SDP parser accepts almost anything, so every description that
//! arrives from outside is read here first: a description that passes
//! [`SessionDescription::parse`] has a version line, an origin, at least one
//! media section with a valid port and format list, and a connection address
//! for every media section that is not disabled.

use crate::Error;
use std::fmt::Write as _;
use std::net::IpAddr;

/// Upper bound on an SDP body we accept (real ones are a few kilobytes).
const MAX_SDP_LEN: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq)]
pub struct SessionDescription {
    pub origin: String,
    pub session_name: String,
    /// Session-level `c=` address, if any.
    pub connection: Option<IpAddr>,
    /// Session-level attributes (`a=` lines before the first `m=`).
    pub attributes: Vec<Attribute>,
    pub media: Vec<Media>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Media {
    pub kind: String,
    pub port: u16,
    pub protocol: String,
    /// Payload type numbers, in the offerer's order of preference.
    pub formats: Vec<u8>,
    /// The format tokens of a section whose protocol is not RTP (e.g.
    /// `webrtc-datachannel`), kept only to be written back when refused.
    pub other_formats: Vec<String>,
    pub connection: Option<IpAddr>,
    pub attributes: Vec<Attribute>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Attribute {
    pub name: String,
    pub value: Option<String>,
}

/// Media direction (RFC 3264 section 6.1), from the point of view of the
/// side that wrote the description.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    /// The direction an answerer uses for an offer of `self` when it would
    /// itself like `wanted`.
    pub fn answer(self, wanted: Direction) -> Direction {
        let (offer_sends, offer_receives) = (self.sends(), self.receives());
        let send = wanted.sends() && offer_receives;
        let recv = wanted.receives() && offer_sends;
        Direction::from_flags(send, recv)
    }

    pub fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }

    pub fn receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }

    pub fn from_flags(send: bool, recv: bool) -> Direction {
        match (send, recv) {
            (true, true) => Direction::SendRecv,
            (true, false) => Direction::SendOnly,
            (false, true) => Direction::RecvOnly,
            (false, false) => Direction::Inactive,
        }
    }
}

/// `a=rtpmap` content: encoding name, clock rate, channels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpMap {
    pub encoding: String,
    pub clock_rate: u32,
    pub channels: u32,
}

impl SessionDescription {
    /// Parses and validates SDP text. Accepts `\r\n` or `\n` line ends.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let bad = |why: String| Error::InvalidSdp(why);
        if text.trim().is_empty() {
            return Err(bad("the description is empty".into()));
        }
        if text.len() > MAX_SDP_LEN {
            return Err(bad(format!("the description is {} bytes, over the {MAX_SDP_LEN} byte limit", text.len())));
        }
        let mut version = None;
        let mut origin = None;
        let mut session_name = String::new();
        let mut connection = None;
        let mut attributes = Vec::new();
        let mut media: Vec<Media> = Vec::new();
        for (n, raw) in text.lines().enumerate() {
            let line = raw.trim_end_matches('\r');
            if line.is_empty() {
                continue;
            }
            let (kind, value) = match line.split_once('=') {
                Some((k, v)) if k.len() == 1 => (k, v),
                _ => return Err(bad(format!("line {} is not of the form x=value: {line:?}", n + 1))),
            };
            match kind {
                "v" => {
                    if value != "0" {
                        return Err(bad(format!("unsupported SDP version {value:?} (expected v=0)")));
                    }
                    version = Some(());
                }
                "o" => origin = Some(value.to_string()),
                "s" => session_name = value.to_string(),
                "c" => {
                    let addr = parse_connection(value).map_err(bad)?;
                    match media.last_mut() {
                        Some(m) => m.connection = Some(addr),
                        None => connection = Some(addr),
                    }
                }
                "m" => media.push(parse_media(value).map_err(bad)?),
                "a" => {
                    let attr = match value.split_once(':') {
                        Some((name, v)) => Attribute { name: name.to_string(), value: Some(v.to_string()) },
                        None => Attribute { name: value.to_string(), value: None },
                    };
                    match media.last_mut() {
                        Some(m) => m.attributes.push(attr),
                        None => attributes.push(attr),
                    }
                }
                // b=, t=, r=, z=, k=, i=, u=, e=, p=: not needed for audio
                // bridging; kept out of the model on purpose.
                _ => {}
            }
        }
        if version.is_none() {
            return Err(bad("the v= line is missing".into()));
        }
        let origin = origin.ok_or_else(|| bad("the o= line is missing".into()))?;
        if media.is_empty() {
            return Err(bad("there is no m= line".into()));
        }
        for (i, m) in media.iter().enumerate() {
            if m.port != 0 && m.connection.or(connection).is_none() {
                return Err(bad(format!("media section {i} has no c= connection address")));
            }
            for pt in &m.formats {
                // A refused section (port 0) needs no rtpmap: it is not used.
                if *pt >= 96 && m.kind == "audio" && m.port != 0 && m.rtpmap(*pt).is_none() {
                    return Err(bad(format!("media section {i}: dynamic payload type {pt} has no a=rtpmap")));
                }
            }
        }
        Ok(SessionDescription { origin, session_name, connection, attributes, media })
    }

    /// The first audio media section and its index, if any.
    pub fn audio(&self) -> Option<(usize, &Media)> {
        self.media.iter().enumerate().find(|(_, m)| m.kind == "audio")
    }

    /// The media sections of an answer to this offer (RFC 3264 §6: one per
    /// offered section, in the same order): `answered` in place of section
    /// `index`, every other section refused (video, a second audio stream,
    /// anything we do not bridge). Peers that offer video drop an answer
    /// with fewer m-lines than their offer.
    pub fn answer_sections(&self, index: usize, answered: Media) -> Vec<Media> {
        let mut answered = Some(answered);
        self.media
            .iter()
            .enumerate()
            .map(|(i, m)| match answered.take_if(|_| i == index) {
                Some(a) => a,
                None => m.refused(),
            })
            .collect()
    }

    /// Where to send RTP for `media`: its own `c=` or the session's.
    pub fn address_of(&self, media: &Media) -> Option<IpAddr> {
        media.connection.or(self.connection)
    }

    /// Session-level direction attribute, if present.
    fn session_direction(&self) -> Option<Direction> {
        direction_in(&self.attributes)
    }

    /// Direction of `media`: its own attribute, else the session's, else
    /// sendrecv (RFC 3264: absent means sendrecv). An `a=sendrecv` with the
    /// legacy hold address `c=0.0.0.0` (RFC 2543) means sendonly.
    pub fn direction_of(&self, media: &Media) -> Direction {
        let dir = direction_in(&media.attributes).or(self.session_direction()).unwrap_or(Direction::SendRecv);
        // With ICE, c=0.0.0.0 (port 9) is a trickle-ICE placeholder (RFC
        // 8840), not the old RFC 2543 hold.
        let ice = media.has_attribute("ice-ufrag") || self.attributes.iter().any(|a| a.name == "ice-ufrag");
        let legacy_hold = !ice && self.address_of(media).is_some_and(|a| a.is_unspecified());
        match (dir, legacy_hold) {
            (Direction::SendRecv, true) => Direction::SendOnly,
            (Direction::RecvOnly, true) => Direction::Inactive,
            (d, _) => d,
        }
    }
}

fn direction_in(attrs: &[Attribute]) -> Option<Direction> {
    attrs.iter().rev().find_map(|a| match a.name.as_str() {
        "sendrecv" => Some(Direction::SendRecv),
        "sendonly" => Some(Direction::SendOnly),
        "recvonly" => Some(Direction::RecvOnly),
        "inactive" => Some(Direction::Inactive),
        _ => None,
    })
}

impl Media {
    /// This offered section refused in an answer (RFC 3264 §6): port 0, the
    /// same media type and protocol, the offered formats (at least one must
    /// be listed), no attributes.
    pub fn refused(&self) -> Media {
        Media {
            kind: self.kind.clone(),
            port: 0,
            protocol: self.protocol.clone(),
            formats: self.formats.clone(),
            other_formats: self.other_formats.clone(),
            connection: None,
            attributes: Vec::new(),
        }
    }

    pub fn attribute(&self, name: &str) -> Option<&Attribute> {
        self.attributes.iter().find(|a| a.name == name)
    }

    pub fn has_attribute(&self, name: &str) -> bool {
        self.attribute(name).is_some()
    }

    /// Values of every `a=name:value` line of this section.
    pub fn attribute_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.attributes.iter().filter(move |a| a.name == name).filter_map(|a| a.value.as_deref())
    }

    /// The rtpmap of `pt`: its `a=rtpmap` line, or the RFC 3551 static
    /// assignment for well-known payload types without one.
    pub fn rtpmap(&self, pt: u8) -> Option<RtpMap> {
        let prefix = format!("{pt} ");
        let explicit = self.attribute_values("rtpmap").find_map(|v| v.strip_prefix(&prefix).map(str::to_string));
        match explicit {
            Some(spec) => {
                let mut parts = spec.trim().split('/');
                let encoding = parts.next()?.to_string();
                let clock_rate = parts.next()?.trim().parse().ok()?;
                let channels = parts.next().map(|c| c.trim().parse().ok()).unwrap_or(Some(1))?;
                if encoding.is_empty() || clock_rate == 0 {
                    return None;
                }
                Some(RtpMap { encoding, clock_rate, channels })
            }
            None => static_payload(pt),
        }
    }

    /// The `a=fmtp` parameters of `pt`, if any.
    pub fn fmtp(&self, pt: u8) -> Option<&str> {
        let prefix = format!("{pt} ");
        self.attribute_values("fmtp").find_map(|v| v.strip_prefix(prefix.as_str())).map(str::trim)
    }

    /// `a=ptime`, in milliseconds.
    pub fn ptime(&self) -> Option<u32> {
        self.attribute_values("ptime").next().and_then(|v| v.trim().parse().ok()).filter(|p| (10..=200).contains(p))
    }

    /// The RTCP port from `a=rtcp` (RFC 3605), if given.
    pub fn rtcp_port(&self) -> Option<u16> {
        self.attribute_values("rtcp").next().and_then(|v| v.split_whitespace().next()?.parse().ok())
    }
}

/// RFC 3551 static payload types we can use.
pub fn static_payload(pt: u8) -> Option<RtpMap> {
    let (encoding, clock_rate) = match pt {
        0 => ("PCMU", 8000),
        8 => ("PCMA", 8000),
        9 => ("G722", 8000),
        _ => return None,
    };
    Some(RtpMap { encoding: encoding.into(), clock_rate, channels: 1 })
}

fn parse_connection(value: &str) -> Result<IpAddr, String> {
    let parts: Vec<&str> = value.split_whitespace().collect();
    match parts.as_slice() {
        ["IN", "IP4" | "IP6", addr, ..] => {
            // Multicast TTL suffix ("/127") is legal; strip it.
            let addr = addr.split('/').next().unwrap_or(addr);
            addr.parse().map_err(|_| format!("c= line has an invalid address {addr:?}"))
        }
        _ => Err(format!("c= line is malformed: {value:?}")),
    }
}

fn parse_media(value: &str) -> Result<Media, String> {
    let parts: Vec<&str> = value.split_whitespace().collect();
    if parts.len() < 4 {
        return Err(format!("m= line needs media, port, protocol and formats: {value:?}"));
    }
    // "port/count" is legal; we only use the first port.
    let port_text = parts[1].split('/').next().unwrap_or("");
    let port: u16 = port_text.parse().map_err(|_| format!("m= line has an invalid port {:?}", parts[1]))?;
    let protocol = parts[2].to_string();
    let is_rtp = protocol.contains("RTP");
    let mut formats = Vec::new();
    let mut other_formats = Vec::new();
    if is_rtp {
        for f in &parts[3..] {
            let pt: u8 = f.parse().map_err(|_| format!("m= line has an invalid payload type {f:?}"))?;
            if pt > 127 {
                return Err(format!("m= line has an invalid payload type {pt}"));
            }
            formats.push(pt);
        }
    } else {
        other_formats = parts[3..].iter().map(|f| f.to_string()).collect();
    }
    Ok(Media {
        kind: parts[0].to_string(),
        port,
        protocol,
        formats,
        other_formats,
        connection: None,
        attributes: Vec::new(),
    })
}

impl std::fmt::Display for SessionDescription {
    /// Writes the description with CRLF line ends.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut out = String::new();
        let _ = write!(out, "v=0\r\no={}\r\ns={}\r\n", self.origin, non_empty(&self.session_name));
        if let Some(c) = self.connection {
            let _ = write!(out, "c={}\r\n", connection_line(c));
        }
        out.push_str("t=0 0\r\n");
        write_attributes(&mut out, &self.attributes);
        for m in &self.media {
            let formats: Vec<String> =
                m.formats.iter().map(|p| p.to_string()).chain(m.other_formats.iter().cloned()).collect();
            let _ = write!(out, "m={} {} {} {}\r\n", m.kind, m.port, m.protocol, formats.join(" "));
            if let Some(c) = m.connection {
                let _ = write!(out, "c={}\r\n", connection_line(c));
            }
            write_attributes(&mut out, &m.attributes);
        }
        f.write_str(&out)
    }
}

fn non_empty(s: &str) -> &str {
    if s.is_empty() {
        "-"
    } else {
        s
    }
}

fn connection_line(addr: IpAddr) -> String {
    match addr {
        IpAddr::V4(a) => format!("IN IP4 {a}"),
        IpAddr::V6(a) => format!("IN IP6 {a}"),
    }
}

fn write_attributes(out: &mut String, attrs: &[Attribute]) {
    for a in attrs {
        match &a.value {
            Some(v) => {
                let _ = write!(out, "a={}:{}\r\n", a.name, v);
            }
            None => {
                let _ = write!(out, "a={}\r\n", a.name);
            }
        }
    }
}

impl Attribute {
    pub fn flag(name: &str) -> Self {
        Attribute { name: name.into(), value: None }
    }

    pub fn value(name: &str, value: impl Into<String>) -> Self {
        Attribute { name: name.into(), value: Some(value.into()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINPHONE_LIKE: &str = "v=0\r\no=alice 1 1 IN IP4 192.0.2.10\r\ns=Talk\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\nm=audio 7078 RTP/AVP 96 0 8 101\r\na=rtpmap:96 opus/48000/2\r\na=fmtp:96 useinbandfec=1\r\na=rtpmap:101 telephone-event/8000\r\n";

    #[test]
    fn parses_a_phone_offer_without_direction_or_ptime() {
        let sdp = SessionDescription::parse(LINPHONE_LIKE).unwrap();
        let (_, m) = sdp.audio().unwrap();
        assert_eq!(m.port, 7078);
        assert_eq!(m.formats, vec![96, 0, 8, 101]);
        assert_eq!(m.rtpmap(96).unwrap(), RtpMap { encoding: "opus".into(), clock_rate: 48000, channels: 2 });
        assert_eq!(m.rtpmap(0).unwrap().encoding, "PCMU", "static payload types need no rtpmap");
        assert_eq!(m.fmtp(96), Some("useinbandfec=1"));
        assert_eq!(m.ptime(), None);
        assert_eq!(sdp.direction_of(m), Direction::SendRecv, "no direction attribute means sendrecv");
        assert_eq!(sdp.address_of(m), Some("192.0.2.10".parse().unwrap()));
    }

    #[test]
    fn rejects_garbage_with_a_reason() {
        for (text, why) in [
            ("", "empty"),
            ("hello world", "not of the form"),
            ("v=1\r\no=x 1 1 IN IP4 1.2.3.4\r\nm=audio 1 RTP/AVP 0\r\n", "version"),
            ("v=0\r\no=x 1 1 IN IP4 1.2.3.4\r\ns=-\r\n", "no m= line"),
            ("v=0\r\no=x 1 1 IN IP4 1.2.3.4\r\nm=audio 99999 RTP/AVP 0\r\nc=IN IP4 1.2.3.4\r\n", "invalid port"),
            ("v=0\r\no=x 1 1 IN IP4 1.2.3.4\r\nm=audio 5000 RTP/AVP 0\r\n", "no c= connection"),
            ("v=0\r\no=x 1 1 IN IP4 1.2.3.4\r\nc=IN IP4 999.1.1.1\r\nm=audio 5000 RTP/AVP 0\r\n", "invalid address"),
            ("v=0\r\no=x 1 1 IN IP4 1.2.3.4\r\nc=IN IP4 1.1.1.1\r\nm=audio 5000 RTP/AVP 97\r\n", "no a=rtpmap"),
            ("v=0\r\no=x 1 1 IN IP4 1.2.3.4\r\nc=IN IP4 1.1.1.1\r\nm=audio 5000 RTP/AVP 300\r\n", "invalid payload"),
        ] {
            let err = SessionDescription::parse(text).unwrap_err().to_string();
            assert!(err.contains(why), "{text:?}: {err}");
        }
    }

    #[test]
    fn directions_and_legacy_hold() {
        let hold = LINPHONE_LIKE.replace("c=IN IP4 192.0.2.10", "c=IN IP4 0.0.0.0");
        let sdp = SessionDescription::parse(&hold).unwrap();
        assert_eq!(sdp.direction_of(sdp.audio().unwrap().1), Direction::SendOnly);
        let sendonly = format!("{LINPHONE_LIKE}a=sendonly\r\n");
        let sdp = SessionDescription::parse(&sendonly).unwrap();
        assert_eq!(sdp.direction_of(sdp.audio().unwrap().1), Direction::SendOnly);
        assert_eq!(Direction::SendOnly.answer(Direction::SendRecv), Direction::RecvOnly);
        assert_eq!(Direction::Inactive.answer(Direction::SendRecv), Direction::Inactive);
        assert_eq!(Direction::RecvOnly.answer(Direction::SendRecv), Direction::SendOnly);
        assert_eq!(Direction::SendRecv.answer(Direction::SendRecv), Direction::SendRecv);
        // A trickle-ICE offer (c=0.0.0.0 before any candidate) is not a hold.
        let trickle = format!("{hold}a=ice-ufrag:abcd\r\n");
        let sdp = SessionDescription::parse(&trickle).unwrap();
        assert_eq!(sdp.direction_of(sdp.audio().unwrap().1), Direction::SendRecv);
    }

    #[test]
    fn answer_keeps_every_offered_section_and_refuses_all_but_the_audio() {
        let offer = SessionDescription::parse(
            "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n\
             m=video 5000 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n\
             m=audio 6000 RTP/AVP 0 8\r\n\
             m=audio 6002 RTP/AVP 97\r\na=rtpmap:97 opus/48000/2\r\n\
             m=application 7000 UDP/DTLS/SCTP webrtc-datachannel\r\n",
        )
        .unwrap();
        let (index, audio) = offer.audio().unwrap();
        assert_eq!(index, 1);
        let mut answered = audio.clone();
        answered.formats = vec![0];
        answered.port = 4000;
        let text = SessionDescription { media: offer.answer_sections(index, answered), ..offer.clone() }.to_string();
        let m_lines: Vec<&str> = text.lines().filter(|l| l.starts_with("m=")).collect();
        assert_eq!(
            m_lines,
            [
                "m=video 0 RTP/AVP 96",
                "m=audio 4000 RTP/AVP 0",
                "m=audio 0 RTP/AVP 97",
                "m=application 0 UDP/DTLS/SCTP webrtc-datachannel"
            ]
        );
        // Our own parser takes it back (a refused section needs no rtpmap).
        assert_eq!(SessionDescription::parse(&text).unwrap().media.len(), 4);
    }

    #[test]
    fn round_trips_through_display() {
        let sdp = SessionDescription::parse(LINPHONE_LIKE).unwrap();
        let again = SessionDescription::parse(&sdp.to_string()).unwrap();
        assert_eq!(sdp, again);
    }
}
