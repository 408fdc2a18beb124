//! HTTP digest authentication for SIP (RFC 3261 §22, RFC 2617, RFC 7616,
//! RFC 8760), computed here rather than by rsipstack: its implementation
//! refuses `algorithm=SHA-256` (the RFC 8760 spelling), hashes the `-sess`
//! variants as plain ones and prints the nonce-count in decimal, all of which
//! real registrars reject.

use md5::Md5;
use sha2::{Digest, Sha256, Sha512_256};

/// A digest hash algorithm (RFC 7616 §3.2, RFC 8760).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// MD5, the RFC 2617 default when a challenge names none.
    Md5,
    /// MD5-sess: HA1 also covers the nonce and cnonce.
    Md5Sess,
    /// SHA-256.
    Sha256,
    /// SHA-256-sess.
    Sha256Sess,
    /// SHA-512/256.
    Sha512_256,
    /// SHA-512-256-sess.
    Sha512_256Sess,
}

impl Algorithm {
    /// Parses an `algorithm=` token, case-insensitively. Accepts the RFC 8760
    /// spellings and the hyphenless `SHA256` some servers send.
    pub fn parse(token: &str) -> Option<Algorithm> {
        let t = token.trim().trim_matches('"').to_ascii_uppercase();
        Some(match t.as_str() {
            "MD5" => Algorithm::Md5,
            "MD5-SESS" => Algorithm::Md5Sess,
            "SHA-256" | "SHA256" => Algorithm::Sha256,
            "SHA-256-SESS" | "SHA256-SESS" => Algorithm::Sha256Sess,
            "SHA-512-256" | "SHA512-256" => Algorithm::Sha512_256,
            "SHA-512-256-SESS" | "SHA512-256-SESS" => Algorithm::Sha512_256Sess,
            _ => return None,
        })
    }

    /// The token to echo back in the Authorization header.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Md5Sess => "MD5-sess",
            Algorithm::Sha256 => "SHA-256",
            Algorithm::Sha256Sess => "SHA-256-sess",
            Algorithm::Sha512_256 => "SHA-512-256",
            Algorithm::Sha512_256Sess => "SHA-512-256-sess",
        }
    }

    fn is_sess(self) -> bool {
        matches!(self, Algorithm::Md5Sess | Algorithm::Sha256Sess | Algorithm::Sha512_256Sess)
    }

    /// Preference when a server offers several challenges (RFC 8760 §2.4:
    /// use the strongest one understood).
    fn strength(self) -> u8 {
        match self {
            Algorithm::Md5 | Algorithm::Md5Sess => 1,
            Algorithm::Sha256 | Algorithm::Sha256Sess => 2,
            Algorithm::Sha512_256 | Algorithm::Sha512_256Sess => 3,
        }
    }

    /// Lower-case hex of the hash of `data`.
    pub fn hex(self, data: &[u8]) -> String {
        match self {
            Algorithm::Md5 | Algorithm::Md5Sess => to_hex(&Md5::digest(data)),
            Algorithm::Sha256 | Algorithm::Sha256Sess => to_hex(&Sha256::digest(data)),
            Algorithm::Sha512_256 | Algorithm::Sha512_256Sess => to_hex(&Sha512_256::digest(data)),
        }
    }
}

fn to_hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// A parsed `WWW-Authenticate` / `Proxy-Authenticate` digest challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// Protection space.
    pub realm: String,
    /// Server nonce.
    pub nonce: String,
    /// Opaque value to echo back.
    pub opaque: Option<String>,
    /// Hash algorithm.
    pub algorithm: Algorithm,
    /// Offered qop values (`auth`, `auth-int`); empty for RFC 2069 servers.
    pub qop: Vec<String>,
    /// `stale=true`: the nonce expired but the credentials were fine.
    pub stale: bool,
}

impl Challenge {
    /// Parses one challenge header value. `None` for non-digest schemes and
    /// for algorithms this crate cannot compute.
    pub fn parse(value: &str) -> Option<Challenge> {
        let value = value.trim();
        let (scheme, rest) = value.split_once(|c: char| c.is_ascii_whitespace())?;
        if !scheme.eq_ignore_ascii_case("digest") {
            return None;
        }
        let params = parse_params(rest);
        let get = |k: &str| params.iter().find(|(n, _)| n.eq_ignore_ascii_case(k)).map(|(_, v)| v.clone());
        let algorithm = match get("algorithm") {
            Some(a) => Algorithm::parse(&a)?,
            None => Algorithm::Md5,
        };
        Some(Challenge {
            realm: get("realm").unwrap_or_default(),
            nonce: get("nonce")?,
            opaque: get("opaque"),
            algorithm,
            qop: get("qop")
                .map(|q| q.split(',').map(|s| s.trim().to_ascii_lowercase()).filter(|s| !s.is_empty()).collect())
                .unwrap_or_default(),
            stale: get("stale").is_some_and(|s| s.eq_ignore_ascii_case("true")),
        })
    }

    /// Of several challenges (a server may offer one per algorithm), the
    /// strongest this crate can answer.
    pub fn pick<'a>(values: impl IntoIterator<Item = &'a str>) -> Option<Challenge> {
        values.into_iter().filter_map(Challenge::parse).max_by_key(|c| c.algorithm.strength())
    }
}

/// Splits `a=b, c="d,e"` into pairs, honouring quoted strings and their
/// backslash escapes.
fn parse_params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_ascii_whitespace() || *c == ',') {
            chars.next();
        }
        let mut name = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c == ',' {
                break;
            }
            name.push(c);
            chars.next();
        }
        if name.trim().is_empty() && chars.peek().is_none() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'=') {
            chars.next();
            while chars.peek().is_some_and(|c| c.is_ascii_whitespace()) {
                chars.next();
            }
            if chars.peek() == Some(&'"') {
                chars.next();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            if let Some(n) = chars.next() {
                                value.push(n);
                            }
                        }
                        '"' => break,
                        c => value.push(c),
                    }
                }
                while chars.peek().is_some_and(|c| *c != ',') {
                    chars.next();
                }
            } else {
                while let Some(&c) = chars.peek() {
                    if c == ',' {
                        break;
                    }
                    value.push(c);
                    chars.next();
                }
            }
        }
        let name = name.trim().to_string();
        if !name.is_empty() {
            out.push((name, value.trim().to_string()));
        }
        if chars.peek().is_none() {
            break;
        }
    }
    out
}

/// The inputs of one digest computation.
#[derive(Debug, Clone)]
pub struct DigestInput<'a> {
    /// Algorithm from the challenge.
    pub algorithm: Algorithm,
    /// User name (the authentication user, not necessarily the AOR user).
    pub username: &'a str,
    /// Password.
    pub password: &'a str,
    /// Realm from the challenge.
    pub realm: &'a str,
    /// Nonce from the challenge.
    pub nonce: &'a str,
    /// Request method.
    pub method: &'a str,
    /// digest-uri: the Request-URI as sent.
    pub uri: &'a str,
    /// `Some("auth")`, `Some("auth-int")` or `None` (RFC 2069 form).
    pub qop: Option<&'a str>,
    /// Nonce count (printed as 8 hex digits).
    pub nc: u32,
    /// Client nonce.
    pub cnonce: &'a str,
    /// Message body, hashed for `auth-int`.
    pub body: &'a [u8],
}

/// A password of this form carries a precomputed HA1 (hex of
/// H(username:realm:password)) instead of the password itself; see
/// [`crate::Account::with_ha1`]. The NUL keeps it apart from real passwords.
pub const HA1_MARKER: &str = "\u{0}ha1:";

/// The `response=` value (RFC 7616 §3.4.1).
pub fn response(i: &DigestInput<'_>) -> String {
    let alg = i.algorithm;
    let mut ha1 = match i.password.strip_prefix(HA1_MARKER) {
        Some(given) => given.to_ascii_lowercase(),
        None => alg.hex(format!("{}:{}:{}", i.username, i.realm, i.password).as_bytes()),
    };
    if alg.is_sess() {
        ha1 = alg.hex(format!("{ha1}:{}:{}", i.nonce, i.cnonce).as_bytes());
    }
    let ha2 = match i.qop {
        Some("auth-int") => alg.hex(format!("{}:{}:{}", i.method, i.uri, alg.hex(i.body)).as_bytes()),
        _ => alg.hex(format!("{}:{}", i.method, i.uri).as_bytes()),
    };
    match i.qop {
        Some(qop) => alg.hex(format!("{ha1}:{}:{:08x}:{}:{qop}:{ha2}", i.nonce, i.nc, i.cnonce).as_bytes()),
        None => alg.hex(format!("{ha1}:{}:{ha2}", i.nonce).as_bytes()),
    }
}

/// The request a digest answer is for.
#[derive(Debug, Clone, Copy)]
pub struct DigestRequest<'a> {
    /// Request method.
    pub method: &'a str,
    /// digest-uri: the Request-URI as sent.
    pub uri: &'a str,
    /// Body (hashed for `auth-int`).
    pub body: &'a [u8],
}

/// Answers `challenge` for one request: the full `Authorization` /
/// `Proxy-Authorization` header value.
#[allow(clippy::too_many_arguments)] // the digest inputs of RFC 7616 §3.4
pub fn authorization(
    challenge: &Challenge,
    username: &str,
    password: &str,
    request: DigestRequest<'_>,
    nc: u32,
    cnonce: &str,
) -> String {
    let DigestRequest { method, uri, body } = request;
    // Prefer plain `auth`: auth-int breaks as soon as a proxy touches the body.
    let qop = if challenge.qop.iter().any(|q| q == "auth") {
        Some("auth")
    } else if challenge.qop.iter().any(|q| q == "auth-int") {
        Some("auth-int")
    } else {
        None
    };
    let resp = response(&DigestInput {
        algorithm: challenge.algorithm,
        username,
        password,
        realm: &challenge.realm,
        nonce: &challenge.nonce,
        method,
        uri,
        qop,
        nc,
        cnonce,
        body,
    });
    let mut h = format!(
        "Digest username=\"{}\", realm=\"{}\", nonce=\"{}\", uri=\"{}\", response=\"{}\", algorithm={}",
        quote(username),
        quote(&challenge.realm),
        quote(&challenge.nonce),
        quote(uri),
        resp,
        challenge.algorithm.name()
    );
    if let Some(qop) = qop {
        h.push_str(&format!(", qop={qop}, nc={nc:08x}, cnonce=\"{}\"", quote(cnonce)));
    }
    if let Some(opaque) = &challenge.opaque {
        h.push_str(&format!(", opaque=\"{}\"", quote(opaque)));
    }
    h
}

fn quote(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// A fresh client nonce.
pub fn new_cnonce() -> String {
    rsipstack::transaction::random_text(16)
}

/// Remembers the last challenge of one protection space so that the
/// nonce-count increases when a nonce is reused (RFC 7616 §3.4: nc counts
/// requests per nonce) and requests can carry credentials up front.
#[derive(Debug, Default, Clone)]
pub struct NonceState {
    challenge: Option<Challenge>,
    nc: u32,
    /// Whether the challenge came as 407 (Proxy-Authorization) or 401.
    proxy: bool,
}

impl NonceState {
    /// Stores a new challenge; the next answer starts at nc=1.
    pub fn set(&mut self, challenge: Challenge, proxy: bool) {
        self.challenge = Some(challenge);
        self.nc = 0;
        self.proxy = proxy;
    }

    /// Forgets the challenge (after a definitive refusal).
    pub fn clear(&mut self) {
        self.challenge = None;
        self.nc = 0;
    }

    /// Whether a challenge is stored.
    pub fn has_challenge(&self) -> bool {
        self.challenge.is_some()
    }

    /// Whether the stored challenge came in a 407 (answered with
    /// Proxy-Authorization) rather than a 401.
    pub fn is_proxy(&self) -> bool {
        self.proxy
    }

    /// The stored challenge, if any.
    pub fn challenge(&self) -> Option<&Challenge> {
        self.challenge.as_ref()
    }

    /// The header (name, value) answering the stored challenge for one
    /// request, with the next nonce-count.
    pub fn answer(
        &mut self,
        username: &str,
        password: &str,
        method: &str,
        uri: &str,
        body: &[u8],
    ) -> Option<(&'static str, String)> {
        let challenge = self.challenge.as_ref()?;
        self.nc += 1;
        let name = if self.proxy { "Proxy-Authorization" } else { "Authorization" };
        let request = DigestRequest { method, uri, body };
        Some((name, authorization(challenge, username, password, request, self.nc, &new_cnonce())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 2617 §3.5 (HTTP GET; the method enters only through HA2).
    fn rfc2617(password: &str) -> String {
        response(&DigestInput {
            algorithm: Algorithm::Md5,
            username: "Mufasa",
            password,
            realm: "testrealm@host.com",
            nonce: "dcd98b7102dd2f0e8b11d0f600bfb0c093",
            method: "GET",
            uri: "/dir/index.html",
            qop: Some("auth"),
            nc: 1,
            cnonce: "0a4f113b",
            body: b"",
        })
    }

    #[test]
    fn rfc2617_md5_qop_auth_vector() {
        assert_eq!(rfc2617("Circle Of Life"), "6629fae49393a05397450978507c4ef1");
    }

    // The same vector from the precomputed HA1 (MD5 of Mufasa:realm:password).
    #[test]
    fn precomputed_ha1_gives_the_same_response() {
        let ha1 = Algorithm::Md5.hex(b"Mufasa:testrealm@host.com:Circle Of Life");
        assert_eq!(rfc2617(&format!("{HA1_MARKER}{}", ha1.to_uppercase())), "6629fae49393a05397450978507c4ef1");
    }

    fn rfc7616(algorithm: Algorithm) -> String {
        response(&DigestInput {
            algorithm,
            username: "Mufasa",
            password: "Circle of Life",
            realm: "http-auth@example.org",
            nonce: "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
            method: "GET",
            uri: "/dir/index.html",
            qop: Some("auth"),
            nc: 1,
            cnonce: "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
            body: b"",
        })
    }

    // RFC 7616 §3.9.1, both the MD5 and the SHA-256 responses.
    #[test]
    fn rfc7616_md5_and_sha256_vectors() {
        assert_eq!(rfc7616(Algorithm::Md5), "8ca523f5e9506fed4657c9700eebdbec");
        assert_eq!(rfc7616(Algorithm::Sha256), "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1");
    }

    // RFC 2069 (no qop): response = H(HA1:nonce:HA2). Checked against the
    // RFC 2617 HA1/HA2 of the same inputs, computed independently with md5.
    #[test]
    fn no_qop_uses_rfc2069_form() {
        let ha1 = Algorithm::Md5.hex(b"Mufasa:testrealm@host.com:Circle Of Life");
        assert_eq!(ha1, "939e7578ed9e3c518a452acee763bce9");
        let ha2 = Algorithm::Md5.hex(b"GET:/dir/index.html");
        assert_eq!(ha2, "39aff3a2bab6126f332b942af96d3366");
        let expected = Algorithm::Md5.hex(format!("{ha1}:dcd98b7102dd2f0e8b11d0f600bfb0c093:{ha2}").as_bytes());
        let got = response(&DigestInput {
            algorithm: Algorithm::Md5,
            username: "Mufasa",
            password: "Circle Of Life",
            realm: "testrealm@host.com",
            nonce: "dcd98b7102dd2f0e8b11d0f600bfb0c093",
            method: "GET",
            uri: "/dir/index.html",
            qop: None,
            nc: 1,
            cnonce: "",
            body: b"",
        });
        assert_eq!(got, expected);
    }

    // -sess must differ from plain (rsipstack hashes them the same).
    #[test]
    fn sess_variants_fold_in_nonce_and_cnonce() {
        assert_ne!(rfc7616(Algorithm::Md5Sess), rfc7616(Algorithm::Md5));
        assert_ne!(rfc7616(Algorithm::Sha256Sess), rfc7616(Algorithm::Sha256));
        // SHA-512/256 known answer for "abc" (FIPS 180-4 example).
        assert_eq!(
            Algorithm::Sha512_256.hex(b"abc"),
            "53048e2681941ef99b2e29b76b4c7dabe4c2d0c634fc6d46e0e2f13107e7af23"
        );
    }

    #[test]
    fn parses_rfc8760_spelling_and_picks_strongest() {
        let md5 = r#"Digest realm="example.com", nonce="abc", qop="auth,auth-int", algorithm=MD5"#;
        let sha = r#"Digest realm="example.com", nonce="def", qop="auth", algorithm=SHA-256, opaque="o,1", stale=TRUE"#;
        let c = Challenge::pick([md5, sha]).unwrap();
        assert_eq!(c.algorithm, Algorithm::Sha256);
        assert_eq!(c.nonce, "def");
        assert_eq!(c.opaque.as_deref(), Some("o,1"));
        assert!(c.stale);
        assert_eq!(Challenge::parse(md5).unwrap().qop, vec!["auth", "auth-int"]);
        assert!(Challenge::parse("Basic realm=\"x\"").is_none());
        assert!(Challenge::parse("Digest realm=\"x\", nonce=\"n\", algorithm=SHA-1").is_none());
    }

    #[test]
    fn authorization_prints_nc_in_hex_and_echoes_opaque() {
        let c = Challenge::parse(r#"Digest realm="r", nonce="n", qop="auth", algorithm=SHA-256, opaque="op""#).unwrap();
        let request = DigestRequest { method: "REGISTER", uri: "sip:example.com", body: b"" };
        let h = authorization(&c, "alice", "pw", request, 26, "cn");
        assert!(h.contains("nc=0000001a"), "{h}");
        assert!(h.contains("algorithm=SHA-256"), "{h}");
        assert!(h.contains("opaque=\"op\""), "{h}");
        assert!(h.contains("qop=auth,"), "{h}");
        let expected = response(&DigestInput {
            algorithm: Algorithm::Sha256,
            username: "alice",
            password: "pw",
            realm: "r",
            nonce: "n",
            method: "REGISTER",
            uri: "sip:example.com",
            qop: Some("auth"),
            nc: 26,
            cnonce: "cn",
            body: b"",
        });
        assert!(h.contains(&format!("response=\"{expected}\"")), "{h}");
    }

    #[test]
    fn nonce_state_counts_per_nonce() {
        let mut st = NonceState::default();
        assert!(st.answer("u", "p", "INVITE", "sip:x", b"").is_none());
        st.set(Challenge::parse(r#"Digest realm="r", nonce="n", qop="auth""#).unwrap(), true);
        let (name, first) = st.answer("u", "p", "INVITE", "sip:x", b"").unwrap();
        assert_eq!(name, "Proxy-Authorization");
        assert!(first.contains("nc=00000001"));
        let (_, second) = st.answer("u", "p", "INVITE", "sip:x", b"").unwrap();
        assert!(second.contains("nc=00000002"));
    }
}
