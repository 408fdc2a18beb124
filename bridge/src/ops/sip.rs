//! The SIP user agent's own counters as metrics: messages in and out by
//! method and status code, and what the incoming-message screen refused.

use super::exposition::Exposition;
use super::metrics::Collector;
use signaling::{MessageKind, UserAgent};
use std::sync::Arc;

pub fn collector(ua: Arc<UserAgent>) -> Collector {
    Box::new(move |out: &mut Exposition| {
        let counts = ua.message_counts();
        let direction = |incoming: bool| if incoming { "in" } else { "out" };
        let requests: Vec<_> = counts
            .iter()
            .filter_map(|c| match c.kind {
                MessageKind::Request(method) => {
                    Some((vec![("direction", direction(c.incoming)), ("method", method)], c.count as f64))
                }
                MessageKind::Response(_) => None,
            })
            .collect();
        out.counter("sipbridge_sip_requests_total", "SIP requests, by direction and method.", &requests);
        let codes: Vec<String> = counts
            .iter()
            .map(|c| if let MessageKind::Response(code) = c.kind { code.to_string() } else { String::new() })
            .collect();
        let responses: Vec<_> = counts
            .iter()
            .zip(&codes)
            .filter(|(c, _)| matches!(c.kind, MessageKind::Response(_)))
            .map(|(c, code)| (vec![("direction", direction(c.incoming)), ("code", code.as_str())], c.count as f64))
            .collect();
        out.counter("sipbridge_sip_responses_total", "SIP responses, by direction and status code.", &responses);
        let (_, answered, dropped) = ua.screen_stats();
        out.counter(
            "sipbridge_sip_refused_total",
            "Incoming SIP messages the screen refused: answered with an error, or dropped (malformed, rate limit).",
            &[(vec![("action", "answered")], answered as f64), (vec![("action", "dropped")], dropped as f64)],
        );
    })
}
