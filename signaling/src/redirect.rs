//! Following 3xx redirections of an outgoing INVITE (RFC 3261 §8.1.3.4):
//! the Contacts of a 3xx are new targets, tried by descending `q`, each at
//! most once per call (a target pointing back at one already tried is
//! skipped, so loops end), and no more than [`MAX_REDIRECTS`] in all.

use rsipstack::sip::prelude::HeadersExt;
use rsipstack::sip::uri::ParamsExt;
use rsipstack::sip::{Response, Uri};

/// Redirections followed per call at most.
pub(crate) const MAX_REDIRECTS: usize = 5;

/// The targets a call has been sent to.
pub(crate) struct Redirects {
    tried: Vec<String>,
}

impl Redirects {
    pub fn new(first: &Uri) -> Redirects {
        Redirects { tried: vec![key(first)] }
    }

    /// The next target a 3xx names, or `None`: no Contact, all tried, or the
    /// budget spent.
    pub fn next(&mut self, resp: &Response) -> Option<Uri> {
        if self.tried.len() > MAX_REDIRECTS {
            return None;
        }
        let mut contacts = resp.typed_contact_headers().ok()?;
        // Stable sort: equal q keeps the response's order.
        contacts.sort_by(|a, b| q_of(b).total_cmp(&q_of(a)));
        let next = contacts.into_iter().map(|c| c.uri).find(|u| !self.tried.contains(&key(u)))?;
        self.tried.push(key(&next));
        Some(next)
    }
}

/// `q` of a Contact (header parameter, or on the URI for a bare addr-spec);
/// 1.0 when absent.
fn q_of(contact: &rsipstack::sip::typed::Contact) -> f32 {
    let header_q = contact.params.iter().find_map(|p| match p {
        rsipstack::sip::Param::Q(q) => Some(q.value().to_string()),
        _ => None,
    });
    header_q.or_else(|| contact.uri.q().map(str::to_string)).and_then(|q| q.trim().parse().ok()).unwrap_or(1.0)
}

/// A URI as compared for loops: scheme, user, host and port, lower case.
fn key(uri: &Uri) -> String {
    let mut bare = uri.clone();
    bare.params.clear();
    bare.headers.clear();
    bare.to_string().to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redirect(contacts: &str) -> Response {
        let text = format!(
            "SIP/2.0 302 Moved Temporarily\r\nVia: SIP/2.0/UDP 192.0.2.2;branch=z9hG4bK1\r\nFrom: <sip:a@192.0.2.2>;tag=1\r\nTo: <sip:b@192.0.2.1>;tag=2\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\n{contacts}Content-Length: 0\r\n\r\n"
        );
        Response::try_from(text.as_str()).unwrap()
    }

    #[test]
    fn follows_by_q_and_never_twice() {
        let first = Uri::try_from("sip:b@192.0.2.1").unwrap();
        let mut r = Redirects::new(&first);
        let resp = redirect(
            "Contact: <sip:low@192.0.2.3>;q=0.1, <sip:high@192.0.2.4>;q=0.9\r\nContact: <sip:b@192.0.2.1>\r\n",
        );
        assert_eq!(r.next(&resp).unwrap().to_string(), "sip:high@192.0.2.4");
        assert_eq!(r.next(&resp).unwrap().to_string(), "sip:low@192.0.2.3");
        // The original target (a loop) is never tried again.
        assert!(r.next(&resp).is_none());
    }

    #[test]
    fn stops_after_the_budget() {
        let mut r = Redirects::new(&Uri::try_from("sip:b@192.0.2.1").unwrap());
        for i in 0..MAX_REDIRECTS {
            assert!(r.next(&redirect(&format!("Contact: <sip:n{i}@192.0.2.9>\r\n"))).is_some());
        }
        assert!(r.next(&redirect("Contact: <sip:more@192.0.2.9>\r\n")).is_none());
        assert!(r.next(&redirect("")).is_none());
    }
}
