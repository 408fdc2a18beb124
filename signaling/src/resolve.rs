//! Locating SIP servers (RFC 3263 §4): the ordered targets (transport,
//! address, port) for a URI, from NAPTR, then SRV, then A/AAAA records.
//! Requests go to the first target; when it does not answer (a timeout or
//! a transport error) the next one is tried (§4.3), so a registrar or trunk
//! with a dead first SRV target still works.

use crate::config::Transport;
use crate::error::Error;
use hickory_resolver::config::{LookupIpStrategy, NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::{RData, RecordType};
use hickory_resolver::TokioResolver;
use rsipstack::sip::{Host, HostWithPort};
use rsipstack::transport::SipAddr;
use std::net::{IpAddr, SocketAddr};
use tracing::{debug, warn};

/// Where a request goes and over what.
#[derive(Debug, Clone)]
pub(crate) struct Route {
    pub transport: Transport,
    /// The URI named its transport (`transport=`): RFC 3263 then looks up
    /// only that transport's SRV records.
    pub explicit_transport: bool,
    pub dest: SipAddr,
    /// The host name the URI gave, kept once `dest` is an address: the
    /// name a TLS or WSS server's certificate must carry (RFC 5922), sent
    /// as SNI. `None` when the URI named an address.
    pub server_name: Option<String>,
}

/// A DNS resolver for SIP targets.
pub(crate) struct Resolver(TokioResolver);

impl Resolver {
    /// Queries `servers` when given, else the system's resolver
    /// configuration (`/etc/resolv.conf`).
    /// Without a usable system configuration (no `/etc/resolv.conf`),
    /// names cannot be resolved, IP addresses still work.
    pub fn new(servers: &[IpAddr]) -> Result<Resolver, Error> {
        let configured = |servers: &[IpAddr]| {
            let servers = servers.iter().map(|ip| NameServerConfig::udp_and_tcp(*ip)).collect();
            let config = ResolverConfig::from_parts(None, Vec::new(), servers);
            TokioResolver::builder_with_config(config, TokioRuntimeProvider::default())
        };
        let mut builder = if servers.is_empty() {
            TokioResolver::builder_tokio().unwrap_or_else(|e| {
                warn!(error = %e, "no system DNS configuration: SIP targets must be IP addresses");
                configured(&[])
            })
        } else {
            configured(servers)
        };
        builder.options_mut().ip_strategy = LookupIpStrategy::Ipv4thenIpv6;
        Ok(Resolver(builder.build().map_err(|e| Error::Config(format!("DNS resolver: {e}")))?))
    }

    /// The targets for `route` in the order to try them: itself when it
    /// names an IP address; otherwise (RFC 3263 §4.1-4.2) with a port, the
    /// host's addresses; with a transport but no port, that transport's SRV
    /// records; with neither, the NAPTR records' SRV names, else SRV for
    /// UDP then TCP, else the host's addresses on UDP port 5060.
    pub async fn locate(&self, route: &Route) -> Result<Vec<Route>, Error> {
        let HostWithPort { host, port } = &route.dest.addr;
        let name = match host {
            Host::IpAddr(_) => return Ok(vec![route.clone()]),
            Host::Domain(d) => d.to_string(),
        };
        let target = |transport, addr| target(transport, addr, &name);
        let explicit_transport = route.explicit_transport;
        let mut targets = Vec::new();
        if let Some(port) = port {
            let port: u16 = (*port).into();
            for ip in self.addresses(&name).await {
                targets.push(target(route.transport, SocketAddr::new(ip, port)));
            }
        } else {
            let srv_names: Vec<(Transport, String)> = match explicit_transport {
                true => srv_name(route.transport, &name).into_iter().collect(),
                false => {
                    let from_naptr = self.naptr(&name).await;
                    if from_naptr.is_empty() {
                        [Transport::Udp, Transport::Tcp].iter().filter_map(|t| srv_name(*t, &name)).collect()
                    } else {
                        from_naptr
                    }
                }
            };
            for (transport, srv) in srv_names {
                for (host, port) in self.srv(&srv).await {
                    for ip in self.addresses(&host).await {
                        targets.push(target(transport, SocketAddr::new(ip, port)));
                    }
                }
            }
            if targets.is_empty() {
                let port = if matches!(route.transport, Transport::Tls | Transport::Wss) { 5061 } else { 5060 };
                for ip in self.addresses(&name).await {
                    targets.push(target(route.transport, SocketAddr::new(ip, port)));
                }
            }
        }
        debug!(%name, ?targets, "located");
        if targets.is_empty() {
            return Err(Error::Transport(format!("{name}: no DNS record gives an address")));
        }
        Ok(targets)
    }

    /// NAPTR records for SIP transports we speak, as (transport, SRV name),
    /// by order then preference (RFC 3263 §4.1, RFC 3403).
    async fn naptr(&self, name: &str) -> Vec<(Transport, String)> {
        let Ok(lookup) = self.0.lookup(name, RecordType::NAPTR).await else { return Vec::new() };
        let mut records: Vec<(u16, u16, Transport, String)> = lookup
            .answers()
            .iter()
            .filter_map(|r| match &r.data {
                RData::NAPTR(n) if n.flags.eq_ignore_ascii_case(b"s") => {
                    let transport = match n.services.to_ascii_uppercase().as_slice() {
                        b"SIP+D2U" => Transport::Udp,
                        b"SIP+D2T" => Transport::Tcp,
                        b"SIPS+D2T" => Transport::Tls,
                        b"SIP+D2W" => Transport::Ws,
                        _ => return None,
                    };
                    let srv = n.replacement.to_string().trim_end_matches('.').to_string();
                    Some((n.order, n.preference, transport, srv))
                }
                _ => None,
            })
            .collect();
        records.sort_by_key(|(order, preference, _, _)| (*order, *preference));
        records.into_iter().map(|(_, _, t, srv)| (t, srv)).collect()
    }

    /// SRV targets as (host, port) in RFC 2782's order (see [`srv_order`]).
    async fn srv(&self, name: &str) -> Vec<(String, u16)> {
        let Ok(lookup) = self.0.lookup(name, RecordType::SRV).await else { return Vec::new() };
        let records: Vec<(u16, u16, (String, u16))> = lookup
            .answers()
            .iter()
            .filter_map(|r| match &r.data {
                RData::SRV(s) => {
                    Some((s.priority, s.weight, (s.target.to_string().trim_end_matches('.').to_string(), s.port)))
                }
                _ => None,
            })
            .filter(|(_, _, (host, _))| !host.is_empty()) // "." means no service
            .collect();
        srv_order(records, random_up_to)
    }

    async fn addresses(&self, name: &str) -> Vec<IpAddr> {
        self.0.lookup_ip(name).await.map(|ips| ips.iter().collect()).unwrap_or_default()
    }
}

/// RFC 2782's order of SRV records `(priority, weight, target)`: the lower
/// priority first; within a priority, a draw weighted by `weight`, repeated
/// until none is left: `draw(total)` gives a number in `0..=total`, and the
/// first record whose running sum of weights reaches it is next. Records of
/// weight 0 are placed first, as the RFC says, so they come first only on
/// a draw of 0 (and otherwise last).
fn srv_order<T>(mut records: Vec<(u16, u16, T)>, mut draw: impl FnMut(u32) -> u32) -> Vec<T> {
    records.sort_by_key(|(priority, weight, _)| (*priority, *weight != 0));
    let mut ordered = Vec::with_capacity(records.len());
    while let Some(priority) = records.first().map(|r| r.0) {
        let same = records.iter().take_while(|r| r.0 == priority).count();
        let mut group: Vec<(u16, u16, T)> = records.drain(..same).collect();
        while !group.is_empty() {
            let total: u32 = group.iter().map(|r| u32::from(r.1)).sum();
            let pick = draw(total);
            let mut running = 0;
            let next = group
                .iter()
                .position(|r| {
                    running += u32::from(r.1);
                    running >= pick
                })
                .unwrap_or(0);
            ordered.push(group.remove(next).2);
        }
    }
    ordered
}

/// A number in `0..=max` for [`srv_order`]'s draw. Spreading load needs
/// no cryptographic quality: the standard library's per-process random
/// hash keys, over a counter, give it without another dependency.
fn random_up_to(max: u32) -> u32 {
    use std::hash::{BuildHasher, RandomState};
    use std::sync::atomic::{AtomicU64, Ordering};
    static DRAWS: AtomicU64 = AtomicU64::new(0);
    let n = RandomState::new().hash_one(DRAWS.fetch_add(1, Ordering::Relaxed));
    (n % (u64::from(max) + 1)) as u32
}

/// The SRV name for a transport (`_sip._udp.example.com`); none for
/// WebSocket, which has no SRV convention.
fn srv_name(transport: Transport, domain: &str) -> Option<(Transport, String)> {
    let prefix = match transport {
        Transport::Udp => "_sip._udp",
        Transport::Tcp => "_sip._tcp",
        Transport::Tls => "_sips._tcp",
        Transport::Ws | Transport::Wss => return None,
    };
    Some((transport, format!("{prefix}.{domain}")))
}

fn target(transport: Transport, addr: SocketAddr, server_name: &str) -> Route {
    Route {
        transport,
        explicit_transport: true,
        dest: SipAddr { r#type: Some(transport.to_rsip()), addr: addr.into() },
        server_name: Some(server_name.to_string()),
    }
}

/// Whether a failure means "this server did not answer" (try the next
/// target), rather than an answer.
pub(crate) fn is_unreachable(e: &Error) -> bool {
    matches!(e, Error::Timeout | Error::Transport(_))
}

#[cfg(test)]
mod tests {
    use super::srv_order;

    /// A seeded generator (64-bit LCG, Knuth's constants): the same draws every run.
    fn seeded(mut state: u64) -> impl FnMut(u32) -> u32 {
        move |max| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 33) % (u64::from(max) + 1)) as u32
        }
    }

    #[test]
    fn srv_order_is_by_priority_then_weighted_random() {
        let records = || vec![(20, 50, "backup"), (10, 10, "light"), (10, 90, "heavy"), (10, 0, "spare")];
        let mut draw = seeded(7);
        let mut heavy_first = 0;
        let runs = 10_000;
        for _ in 0..runs {
            let order = srv_order(records(), &mut draw);
            assert_eq!(order.len(), 4);
            assert_eq!(order[3], "backup", "a higher priority number always comes after: {order:?}");
            if order[0] == "heavy" {
                heavy_first += 1;
            }
        }
        // Weight 90 of 100 in its priority: first about 90% of the time
        // (weight 0 comes first only on a draw of 0, 1 in 101).
        let share = heavy_first as f64 / runs as f64;
        println!("weight 90 of 100 first in {share:.3} of {runs} orders");
        assert!((0.86..0.92).contains(&share), "heavy first in {share:.3} of the runs");
        // Seeded: the same draws give the same order.
        assert_eq!(srv_order(records(), seeded(3)), srv_order(records(), seeded(3)));
        // Not a fixed order: some seed puts the light one first.
        assert!((0..200).any(|seed| srv_order(records(), seeded(seed))[0] == "light"));
    }

    #[test]
    fn zero_weights_come_last_unless_alone() {
        let order = srv_order(vec![(10, 0, "a"), (10, 0, "b")], |max| max);
        assert_eq!(order.len(), 2);
        assert_eq!(srv_order(vec![(10, 0, "zero"), (10, 5, "five")], |max| max), vec!["five", "zero"]);
    }
}
