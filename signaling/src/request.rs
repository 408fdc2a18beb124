//! Out-of-dialog client requests (REGISTER, MESSAGE, OPTIONS) sent through
//! an rsipstack client transaction, answering 401/407 challenges with this
//! crate's digest code.

use crate::core::Core;
use crate::digest::{Challenge, NonceState};
use crate::error::Error;
use crate::resolve::Route;
use rsipstack::sip::{Header, Request, Response, SipMessage, StatusCodeKind};
use rsipstack::transaction::key::{TransactionKey, TransactionRole};
use rsipstack::transaction::transaction::Transaction;
use rsipstack::transport::SipAddr;

/// Credentials for answering challenges.
pub(crate) struct Creds<'a> {
    pub username: &'a str,
    pub password: &'a str,
}

/// Opens the TLS or WSS connection a request to `target` will go over, so
/// that a server we cannot reach securely fails it at once with the reason
/// (see [`crate::transport::connect_tls`], [`crate::secure_client`]).
/// `server_name` is the host name the target was located from, if any.
pub(crate) async fn connect(core: &Core, target: &SipAddr, server_name: Option<&str>) -> Result<(), Error> {
    use rsipstack::sip::{Host, Transport};
    let layer = &core.endpoint.transport_layer;
    let named = server_name.is_some() && matches!(target.addr.host, Host::IpAddr(_));
    match target.r#type {
        Some(Transport::Wss) => core.secure.connect(layer, target, server_name).await,
        Some(Transport::Tls) if named => core.secure.connect(layer, target, server_name).await,
        _ => crate::transport::connect_tls(layer, target).await,
    }
}

/// Sends `req` once (to `destination`, else where its URI points) and
/// waits for its final response.
pub(crate) async fn send_once(core: &Core, req: Request, destination: Option<&Route>) -> Result<Response, Error> {
    let dest = destination.map(|r| r.dest.clone());
    if let Some(target) = crate::transport::request_target(&req, dest.as_ref()) {
        connect(core, &target, destination.and_then(|r| r.server_name.as_deref())).await?;
    }
    let key = TransactionKey::from_request(&req, TransactionRole::Client)?;
    let mut tx = Transaction::new_client(key, req, core.endpoint.clone(), None);
    tx.destination = dest;
    tx.send().await?;
    while let Some(msg) = tx.receive().await {
        if let SipMessage::Response(resp) = msg {
            if resp.status_code.kind() != StatusCodeKind::Provisional {
                return Ok(resp);
            }
        }
    }
    Err(Error::Timeout)
}

/// The challenge values of a 401/407.
pub(crate) fn challenges(resp: &Response) -> Vec<String> {
    let want_proxy = resp.status_code.code() == 407;
    resp.headers
        .iter()
        .filter_map(|h| match h {
            Header::WwwAuthenticate(v) if !want_proxy => Some(v.value().to_string()),
            Header::ProxyAuthenticate(v) if want_proxy => Some(v.value().to_string()),
            Header::Other(n, v)
                if (!want_proxy && n.eq_ignore_ascii_case("www-authenticate"))
                    || (want_proxy && n.eq_ignore_ascii_case("proxy-authenticate")) =>
            {
                Some(v.clone())
            }
            _ => None,
        })
        .collect()
}

/// What to do after a challenge: `Ok(true)` retry, `Ok(false)` give up with
/// the challenge as the final answer.
pub(crate) fn absorb_challenge(
    resp: &Response,
    nonce: &mut NonceState,
    answered_nonce: &mut Option<String>,
) -> Result<bool, Error> {
    let values = challenges(resp);
    let Some(ch) = Challenge::pick(values.iter().map(String::as_str)) else {
        return Err(Error::Auth(format!("no usable digest challenge in {}", resp.status_code.code())));
    };
    // A new challenge after we answered one, without stale=true, means the
    // credentials themselves were refused (RFC 7616 §3.3): stop there
    // rather than retrying a wrong password.
    if answered_nonce.is_some() && !ch.stale {
        return Ok(false);
    }
    *answered_nonce = Some(ch.nonce.clone());
    nonce.set(ch, resp.status_code.code() == 407);
    Ok(true)
}

/// Sends a request built by `build(cseq)`, answering up to three
/// challenges. Credentials from an earlier exchange are sent up front.
pub(crate) async fn send_with_auth(
    core: &Core,
    mut build: impl FnMut(u32) -> Result<Request, Error>,
    first_cseq: u32,
    destination: Option<&Route>,
    creds: Option<Creds<'_>>,
    nonce: &mut NonceState,
) -> Result<(Response, u32), Error> {
    let mut cseq = first_cseq;
    let mut answered: Option<String> = None;
    for _ in 0..4 {
        let mut req = build(cseq)?;
        if let Some(c) = &creds {
            let uri = req.uri.to_string();
            let method = req.method.to_string();
            if let Some((name, value)) = nonce.answer(c.username, c.password, &method, &uri, &req.body) {
                req.headers.push(if name == "Authorization" {
                    Header::Authorization(value.into())
                } else {
                    Header::ProxyAuthorization(value.into())
                });
            }
        }
        let resp = send_once(core, req, destination).await?;
        let code = resp.status_code.code();
        if (code == 401 || code == 407) && creds.is_some() && absorb_challenge(&resp, nonce, &mut answered)? {
            cseq += 1;
            continue;
        }
        return Ok((resp, cseq));
    }
    Err(Error::Auth("too many challenges".into()))
}
