//! STUN and TURN servers for WebRTC legs, given as RTCConfiguration's
//! `iceServers` (`urls`, `username`, `credential`), and the public address
//! a leg behind a 1:1 NAT advertises.
//!
//! A TURN server may instead carry coturn's `static-auth-secret` as
//! `secret`: credentials are then made for each use by the TURN REST API
//! scheme (coturn's `use-auth-secret`): username `EXPIRY:USER` (expiry in
//! Unix seconds), password base64(HMAC-SHA1(secret, username)). They expire
//! after `ttl` seconds, so what is handed to a browser is worth little once
//! it leaks.
//!
//! webrtcbin takes one STUN server (`stun-server`, `stun://host:port`) and
//! any number of TURN servers (`add-turn-server`,
//! `turn(s)://user:pass@host:port?transport=udp|tcp`); user and password
//! are percent-escaped there, since a REST username holds a `:`.

use crate::Error;
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

/// How long TURN REST credentials stay valid by default: the TURN REST API
/// draft's recommendation; a relayed call cannot outlive its credentials
/// (coturn checks them on every allocation refresh).
pub const DEFAULT_CREDENTIAL_TTL: u64 = 86_400;

/// The user part of REST credentials made for our own WebRTC legs.
const OUR_TURN_USER: &str = "sipbridge";

/// One entry of `iceServers`.
#[derive(Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct IceServer {
    /// `stun:host[:port]`, `turn:host[:port][?transport=udp|tcp]`,
    /// `turns:host[:port][?transport=tcp]` (RFC 7064, RFC 7065).
    #[serde(deserialize_with = "one_or_many")]
    pub urls: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
    /// coturn's `static-auth-secret` (never sent to a browser: it gets
    /// credentials made from it).
    #[serde(default, skip_serializing)]
    pub secret: Option<String>,
    /// Lifetime of credentials made from `secret`, seconds.
    #[serde(default, skip_serializing)]
    pub ttl: Option<u64>,
}

/// Credentials are secrets: they are never logged.
impl std::fmt::Debug for IceServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hidden = |o: &Option<String>| o.as_ref().map(|_| "<redacted>");
        f.debug_struct("IceServer")
            .field("urls", &self.urls)
            .field("username", &self.username)
            .field("credential", &hidden(&self.credential))
            .field("secret", &hidden(&self.secret))
            .field("ttl", &self.ttl)
            .finish()
    }
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Urls {
        One(String),
        Many(Vec<String>),
    }
    Ok(match serde::Deserialize::deserialize(d)? {
        Urls::One(u) => vec![u],
        Urls::Many(u) => u,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Stun,
    Turn,
    Turns,
}

/// A parsed `stun:`/`turn:`/`turns:` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ServerUrl {
    scheme: Scheme,
    /// As written (an IPv6 address keeps its brackets).
    host: String,
    port: u16,
    /// `Some("tcp")`/`Some("udp")` when the URL names a transport.
    transport: Option<String>,
}

impl ServerUrl {
    fn parse(url: &str) -> Result<ServerUrl, Error> {
        let bad = |why: &str| Error::IceServer(format!("{url:?}: {why}"));
        let (scheme, rest) = url.split_once(':').ok_or_else(|| bad("expected stun:, turn: or turns:"))?;
        let scheme = match scheme {
            "stun" => Scheme::Stun,
            "turn" => Scheme::Turn,
            "turns" => Scheme::Turns,
            _ => return Err(bad("expected stun:, turn: or turns:")),
        };
        let (authority, query) = match rest.split_once('?') {
            Some((a, q)) => (a, Some(q)),
            None => (rest, None),
        };
        if authority.is_empty() || authority.contains(['/', '@']) {
            return Err(bad("expected HOST[:PORT] after the scheme"));
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !p.contains(']') && (!h.contains(':') || h.ends_with(']')) => {
                (h, Some(p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(|| bad("bad port"))?))
            }
            _ => (authority, None),
        };
        if host.is_empty() || (host.contains(':') && !host.starts_with('[')) {
            return Err(bad("bad host (an IPv6 address goes in brackets)"));
        }
        let transport = match query {
            None => None,
            Some(q) => match q.strip_prefix("transport=") {
                Some(t @ ("udp" | "tcp")) if scheme != Scheme::Stun => Some(t.to_string()),
                _ => return Err(bad("the only query is ?transport=udp|tcp, on turn: and turns: URLs")),
            },
        };
        if scheme == Scheme::Turns && transport.as_deref() == Some("udp") {
            return Err(bad("turns: runs over TLS, which needs TCP"));
        }
        let port = port.unwrap_or(if scheme == Scheme::Turns { 5349 } else { 3478 });
        Ok(ServerUrl { scheme, host: host.to_string(), port, transport })
    }

    /// The URL as webrtcbin takes it.
    fn for_webrtcbin(&self, credentials: Option<(&str, &str)>) -> String {
        let scheme = match self.scheme {
            Scheme::Stun => "stun",
            Scheme::Turn => "turn",
            Scheme::Turns => "turns",
        };
        let userinfo = credentials.map(|(u, p)| format!("{}:{}@", escape(u), escape(p))).unwrap_or_default();
        let query = self.transport.as_ref().map(|t| format!("?transport={t}")).unwrap_or_default();
        format!("{scheme}://{userinfo}{}:{}{query}", self.host, self.port)
    }
}

/// Percent-escapes everything but RFC 3986's unreserved characters.
fn escape(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, UNRESERVED).to_string()
}

/// RFC 3986's unreserved characters: everything else is escaped.
const UNRESERVED: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// TURN REST API credentials for `user`, valid until `expiry` (Unix seconds).
pub fn rest_credentials(secret: &str, user: &str, expiry: u64) -> Result<(String, String), Error> {
    let username = format!("{expiry}:{user}");
    let mac =
        hmac_sha1(secret.as_bytes(), username.as_bytes()).map_err(|e| Error::IceServer(format!("HMAC-SHA1: {e}")))?;
    Ok((username, openssl::base64::encode_block(&mac)))
}

/// HMAC-SHA1 of `data` under `key`: TURN's REST credentials here, STUN's
/// MESSAGE-INTEGRITY in the lean leg's TURN client.
pub(crate) fn hmac_sha1(key: &[u8], data: &[u8]) -> Result<Vec<u8>, openssl::error::ErrorStack> {
    use openssl::{hash::MessageDigest, pkey::PKey, sign::Signer};
    let key = PKey::hmac(key)?;
    let mut signer = Signer::new(MessageDigest::sha1(), &key)?;
    signer.update(data)?;
    signer.sign_to_vec()
}

/// Checks a list of ICE servers: URLs that parse, TURN servers with
/// credentials or a secret (and not both), at most one STUN server.
pub fn validate(servers: &[IceServer]) -> Result<(), Error> {
    let mut stun = 0;
    for server in servers {
        if server.urls.is_empty() {
            return Err(Error::IceServer("an ICE server needs at least one URL in urls".into()));
        }
        let urls = server.urls.iter().map(|u| ServerUrl::parse(u)).collect::<Result<Vec<_>, _>>()?;
        stun += urls.iter().filter(|u| u.scheme == Scheme::Stun).count();
        if urls.iter().any(|u| u.scheme != Scheme::Stun) {
            let static_credentials = server.username.is_some() && server.credential.is_some();
            match (static_credentials, &server.secret) {
                (true, Some(_)) => {
                    return Err(Error::IceServer(format!(
                        "{:?}: give username and credential, or secret, not both",
                        server.urls[0]
                    )))
                }
                (false, None) => {
                    return Err(Error::IceServer(format!(
                        "{:?}: a TURN server needs username and credential, or secret (coturn's static-auth-secret)",
                        server.urls[0]
                    )))
                }
                _ => {}
            }
        }
        if server.ttl == Some(0) {
            return Err(Error::IceServer("ttl must be at least 1 second".into()));
        }
    }
    if stun > 1 {
        return Err(Error::IceServer("webrtcbin takes one STUN server; give one stun: URL".into()));
    }
    Ok(())
}

/// The servers with credentials made from each `secret` for `user`, valid
/// from `now` for the server's `ttl`: what a browser may be given.
pub fn with_credentials(servers: &[IceServer], user: &str, now: SystemTime) -> Result<Vec<IceServer>, Error> {
    let unix = now.duration_since(SystemTime::UNIX_EPOCH).unwrap_or(Duration::ZERO).as_secs();
    servers
        .iter()
        .map(|server| {
            let mut out = server.clone();
            if let Some(secret) = out.secret.take() {
                let expiry = unix + out.ttl.take().unwrap_or(DEFAULT_CREDENTIAL_TTL);
                let (username, credential) = rest_credentials(&secret, user, expiry)?;
                out.username = Some(username);
                out.credential = Some(credential);
            }
            out.ttl = None;
            Ok(out)
        })
        .collect()
}

/// Gives webrtcbin the STUN server and the TURN servers.
pub fn apply(webrtc: &gst::Element, servers: &[IceServer]) -> Result<(), Error> {
    use gst::prelude::*;
    for server in with_credentials(servers, OUR_TURN_USER, SystemTime::now())? {
        let credentials = server.username.as_deref().zip(server.credential.as_deref());
        for url in &server.urls {
            let url = ServerUrl::parse(url)?;
            if url.scheme == Scheme::Stun {
                webrtc.set_property("stun-server", url.for_webrtcbin(None));
            } else if !webrtc.emit_by_name::<bool>("add-turn-server", &[&url.for_webrtcbin(credentials)]) {
                return Err(Error::IceServer(format!("webrtcbin refused the TURN server {}:{}", url.host, url.port)));
            }
        }
    }
    Ok(())
}

/// How the lean WebRTC leg reaches a TURN server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TurnTransport {
    Udp,
    Tcp,
    /// TLS over TCP, with the server's name (as in the URL) for SNI.
    Tls(String),
}

/// A server as the lean WebRTC leg reaches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GatherServer {
    /// As written in the URL, without an IPv6 address's brackets.
    pub host: String,
    pub port: u16,
    pub transport: TurnTransport,
    /// A TURN server's username and password (none for STUN).
    pub credentials: Option<(String, String)>,
}

/// The STUN server and the first TURN server, credentials made for our own
/// use: what the lean WebRTC leg gathers from. Of a TURN server's URLs it
/// takes one over UDP if there is one, else over TCP, else TLS (as a
/// browser would prefer them); the others are left to the browser.
pub(crate) fn gather_servers(servers: &[IceServer]) -> Result<(Option<GatherServer>, Option<GatherServer>), Error> {
    validate(servers)?;
    let (mut stun, mut turn) = (None, None);
    for server in with_credentials(servers, OUR_TURN_USER, SystemTime::now())? {
        let credentials = server.username.clone().zip(server.credential.clone());
        let urls = server.urls.iter().map(|u| ServerUrl::parse(u)).collect::<Result<Vec<_>, _>>()?;
        let gather = |url: &ServerUrl| {
            let host = url.host.trim_start_matches('[').trim_end_matches(']').to_string();
            let transport = match (url.scheme, url.transport.as_deref()) {
                (Scheme::Turns, _) => TurnTransport::Tls(host.clone()),
                (_, Some("tcp")) => TurnTransport::Tcp,
                _ => TurnTransport::Udp,
            };
            let credentials = (url.scheme != Scheme::Stun).then(|| credentials.clone()).flatten();
            GatherServer { host, port: url.port, transport, credentials }
        };
        for url in urls.iter().filter(|u| u.scheme == Scheme::Stun) {
            stun = Some(gather(url));
        }
        let preference = |server: &GatherServer| match server.transport {
            TurnTransport::Udp => 0,
            TurnTransport::Tcp => 1,
            TurnTransport::Tls(_) => 2,
        };
        let relays = urls.iter().filter(|u| u.scheme != Scheme::Stun).map(gather);
        if let Some(best) = relays.min_by_key(preference) {
            turn.get_or_insert(best);
        }
    }
    Ok((stun, turn))
}

/// Writes `public` for `bound` in a host candidate line
/// (`candidate:F C PROTO PRIO ADDR PORT typ host ...`, with or without
/// `a=`): what a leg behind a 1:1 NAT tells its peer, as Janus's
/// `nat_1_1_mapping` does. Other candidates (srflx, relay) name their own
/// addresses and are left alone.
pub fn advertise_candidate(line: &str, bound: &[IpAddr], public: IpAddr) -> String {
    let mut fields: Vec<&str> = line.split(' ').collect();
    let is_host = fields.get(6) == Some(&"typ") && fields.get(7) == Some(&"host");
    let bound_here = fields.get(4).and_then(|a| a.parse::<IpAddr>().ok()).is_some_and(|a| bound.contains(&a));
    if !is_host || !bound_here {
        return line.to_string();
    }
    let public = public.to_string();
    fields[4] = &public;
    fields.join(" ")
}

/// [`advertise_candidate`] on every `a=candidate:` line of a description.
pub fn advertise_in_description(sdp: &str, bound: &[IpAddr], public: IpAddr) -> String {
    sdp.split_inclusive('\n')
        .map(|line| {
            let text = line.trim_end_matches(['\r', '\n']);
            if text.starts_with("a=candidate:") {
                format!("{}{}", advertise_candidate(text, bound, public), &line[text.len()..])
            } else {
                line.to_string()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turn(url: &str, secret: Option<&str>) -> IceServer {
        IceServer {
            urls: vec![url.into()],
            username: secret.is_none().then(|| "alice".into()),
            credential: secret.is_none().then(|| "p@ss:word".into()),
            secret: secret.map(Into::into),
            ttl: None,
        }
    }

    #[test]
    fn urls_parse_with_default_ports_and_transports() {
        let u = ServerUrl::parse("turn:192.0.2.1?transport=tcp").unwrap();
        assert_eq!((u.host.as_str(), u.port, u.transport.as_deref()), ("192.0.2.1", 3478, Some("tcp")));
        let u = ServerUrl::parse("turns:turn.example.com").unwrap();
        assert_eq!((u.scheme, u.port), (Scheme::Turns, 5349));
        let u = ServerUrl::parse("stun:[2001:db8::1]:3479").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("[2001:db8::1]", 3479));
        for bad in [
            "http://x",
            "turn:",
            "turn:host:0",
            "turn:host:99999",
            "turn:host?transport=sctp",
            "stun:host?transport=udp",
            "turns:host?transport=udp",
            "turn:2001:db8::1",
            "turn://user@host",
        ] {
            assert!(ServerUrl::parse(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn webrtcbin_urls_escape_the_credentials() {
        let u = ServerUrl::parse("turn:192.0.2.1:3478?transport=tcp").unwrap();
        assert_eq!(
            u.for_webrtcbin(Some(("1700000000:sipbridge", "ab+/c="))),
            "turn://1700000000%3Asipbridge:ab%2B%2Fc%3D@192.0.2.1:3478?transport=tcp"
        );
        assert_eq!(ServerUrl::parse("stun:192.0.2.1").unwrap().for_webrtcbin(None), "stun://192.0.2.1:3478");
    }

    #[test]
    fn rest_credentials_are_coturns() {
        // printf %s 1700000000:alice | openssl dgst -sha1 -hmac s3cret -binary | base64
        let (user, pass) = rest_credentials("s3cret", "alice", 1_700_000_000).unwrap();
        assert_eq!(user, "1700000000:alice");
        assert_eq!(pass, "TtElzSjT0GdnTQ9xdcRNxx96yQs=");
    }

    #[test]
    fn credentials_are_made_from_the_secret_and_expire() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let mut server = turn("turn:192.0.2.1", Some("s3cret"));
        server.ttl = Some(600);
        let out = with_credentials(&[server, turn("turn:192.0.2.2", None)], "web1", now).unwrap();
        assert_eq!(out[0].username.as_deref(), Some("1600:web1"));
        assert_eq!(out[0].credential, Some(rest_credentials("s3cret", "web1", 1600).unwrap().1));
        let json = serde_json::to_value(&out[0]).unwrap();
        assert_eq!(json.as_object().unwrap().len(), 3, "urls, username, credential only: {json}");
        assert_eq!(out[1].username.as_deref(), Some("alice"), "static credentials pass through");
    }

    #[test]
    fn validation_says_what_is_missing() {
        assert!(validate(&[turn("turn:192.0.2.1", None), turn("turn:192.0.2.1", Some("s"))]).is_ok());
        let mut neither = turn("turn:192.0.2.1", None);
        neither.credential = None;
        assert!(validate(&[neither]).unwrap_err().to_string().contains("needs username and credential"));
        let mut both = turn("turn:192.0.2.1", Some("s"));
        both.username = Some("u".into());
        both.credential = Some("c".into());
        assert!(validate(&[both]).unwrap_err().to_string().contains("not both"));
        let stun =
            |u: &str| IceServer { urls: vec![u.into()], username: None, credential: None, secret: None, ttl: None };
        assert!(validate(&[stun("stun:192.0.2.1")]).is_ok());
        assert!(validate(&[stun("stun:192.0.2.1"), stun("stun:192.0.2.2")]).is_err());
        assert!(validate(&[IceServer { urls: vec![], ..stun("x") }]).is_err());
    }

    #[test]
    fn ice_servers_read_like_rtc_configuration() {
        let servers: Vec<IceServer> = serde_json::from_str(
            r#"[{"urls":"stun:192.0.2.1"},{"urls":["turn:192.0.2.1","turns:192.0.2.1"],"username":"u","credential":"c"}]"#,
        )
        .unwrap();
        assert_eq!(servers[0].urls, ["stun:192.0.2.1"]);
        assert_eq!(servers[1].urls.len(), 2);
        assert!(!format!("{:?}", servers[1]).contains("\"c\""), "credentials are not logged");
    }

    #[test]
    fn the_lean_leg_takes_one_stun_and_one_turn_server_udp_first() {
        let stun =
            |u: &str| IceServer { urls: vec![u.into()], username: None, credential: None, secret: None, ttl: None };
        let mut both = turn("turn:[2001:db8::1]?transport=tcp", None);
        both.urls.push("turn:[2001:db8::1]:3479".into());
        let (found_stun, found_turn) = gather_servers(&[stun("stun:192.0.2.1:3480"), both]).unwrap();
        let found_stun = found_stun.unwrap();
        assert_eq!((found_stun.host.as_str(), found_stun.port, found_stun.credentials), ("192.0.2.1", 3480, None));
        let found_turn = found_turn.unwrap();
        assert_eq!((found_turn.host.as_str(), found_turn.port), ("2001:db8::1", 3479));
        assert_eq!(found_turn.transport, TurnTransport::Udp);
        assert_eq!(found_turn.credentials, Some(("alice".into(), "p@ss:word".into())));
        let (_, made) = gather_servers(&[turn("turn:192.0.2.1", Some("s3cret"))]).unwrap();
        assert!(made.unwrap().credentials.unwrap().0.ends_with(":sipbridge"), "REST credentials for us");
        let mut tls_and_tcp = turn("turns:turn.example.com", None);
        tls_and_tcp.urls.push("turn:192.0.2.1?transport=tcp".into());
        let (_, tcp) = gather_servers(&[tls_and_tcp]).unwrap();
        assert_eq!(tcp.unwrap().transport, TurnTransport::Tcp, "TCP when there is no UDP");
        let (_, tls) = gather_servers(&[turn("turns:turn.example.com", None)]).unwrap();
        let tls = tls.unwrap();
        assert_eq!((tls.transport, tls.port), (TurnTransport::Tls("turn.example.com".into()), 5349));
        assert_eq!(gather_servers(&[]).unwrap(), (None, None));
        assert!(gather_servers(&[stun("stun:192.0.2.1"), stun("stun:192.0.2.2")]).is_err(), "checked as for webrtcbin");
    }

    #[test]
    fn host_candidates_of_the_bound_address_advertise_the_public_one() {
        let bound = ["10.0.0.5".parse().unwrap()];
        let public = "203.0.113.7".parse().unwrap();
        let host = "candidate:1 1 UDP 2015363327 10.0.0.5 20000 typ host";
        assert_eq!(
            advertise_candidate(host, &bound, public),
            "candidate:1 1 UDP 2015363327 203.0.113.7 20000 typ host"
        );
        let tcp = "a=candidate:2 1 TCP 1015021823 10.0.0.5 9 typ host tcptype active";
        assert_eq!(
            advertise_candidate(tcp, &bound, public),
            "a=candidate:2 1 TCP 1015021823 203.0.113.7 9 typ host tcptype active"
        );
        let relay = "candidate:3 1 UDP 1 198.51.100.1 50000 typ relay raddr 10.0.0.5 rport 20000";
        assert_eq!(advertise_candidate(relay, &bound, public), relay);
        let other = "candidate:1 1 UDP 2015363327 10.0.0.6 20000 typ host";
        assert_eq!(advertise_candidate(other, &bound, public), other);
        let sdp = format!("v=0\r\na={host}\r\na=mid:0\r\n");
        assert_eq!(
            advertise_in_description(&sdp, &bound, public),
            "v=0\r\na=candidate:1 1 UDP 2015363327 203.0.113.7 20000 typ host\r\na=mid:0\r\n"
        );
    }
}
