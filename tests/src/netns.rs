//! Network topologies for end-to-end tests across NAT and firewalls. Each
//! host is a network namespace of its own (held by an `unshare -n` process,
//! entered with `nsenter`, so no /run/netns names are made); the test's own
//! namespace (a private one, from scripts/netns.sh) is the router between
//! them: a veth pair per host, IP forwarding on, and the iptables rules a
//! topology asks for. Addresses come from the documentation ranges, so
//! nothing here can reach a real network.

use crate::process::{spawn, Child};
use anyhow::{bail, Context, Result};
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// A host in a namespace of its own, on a /24 with the router at `.1`.
pub struct Host {
    pub name: String,
    pub addr: Ipv4Addr,
    /// The router's address on the host's link.
    pub gateway: Ipv4Addr,
    /// The router's end of the host's veth pair.
    pub link: String,
    holder: Child,
}

impl Host {
    /// A host `name` at `addr` (a /24 whose `.1` is the router), its default
    /// route through the router; lives at most `limit`.
    pub fn new(dir: &Path, name: &str, addr: Ipv4Addr, limit: Duration) -> Result<Host> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let link = format!("r{}-{}", std::process::id() % 10000, NEXT.fetch_add(1, Ordering::Relaxed));
        let secs = limit.as_secs().max(1).to_string();
        let mut cmd = Command::new("unshare");
        cmd.args(["-n", "sleep", &secs]);
        let holder = spawn(&mut cmd, dir, &format!("netns-{name}"), limit)?;
        let [a, b, c, _] = addr.octets();
        let gateway = Ipv4Addr::new(a, b, c, 1);
        let pid = holder.pid().to_string();
        // The holder's namespace exists once unshare has exec'd sleep.
        let ns = format!("/proc/{pid}/ns/net");
        let mine = std::fs::read_link("/proc/self/ns/net")?;
        for _ in 0..100 {
            if std::fs::read_link(&ns).is_ok_and(|n| n != mine) {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        run(Command::new("ip").args(["link", "add", &link, "type", "veth", "peer", "name", "eth0", "netns", &pid]))?;
        run(Command::new("ip").args(["addr", "add", &format!("{gateway}/24"), "dev", &link]))?;
        run(Command::new("ip").args(["link", "set", &link, "up"]))?;
        let host = Host { name: name.to_string(), addr, gateway, link, holder };
        host.run(&["ip", "link", "set", "lo", "up"])?;
        host.run(&["ip", "addr", "add", &format!("{addr}/24"), "dev", "eth0"])?;
        host.run(&["ip", "link", "set", "eth0", "up"])?;
        host.run(&["ip", "route", "add", "default", "via", &gateway.to_string()])?;
        Ok(host)
    }

    /// A command that runs `program` inside this host's namespace.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.args(["-t", &self.holder.pid().to_string(), "-n", "--"]).arg(program);
        cmd
    }

    /// Runs `args` inside the host's namespace; fails on a non-zero exit.
    pub fn run(&self, args: &[&str]) -> Result<()> {
        let mut cmd = self.command(args[0]);
        cmd.args(&args[1..]);
        run(&mut cmd)
    }

    /// The host's /24, e.g. `192.0.2.0/24`.
    pub fn subnet(&self) -> String {
        let [a, b, c, _] = self.addr.octets();
        format!("{a}.{b}.{c}.0/24")
    }
}

/// The router (this process's namespace) forwards between hosts.
pub fn enable_forwarding() -> Result<()> {
    run(Command::new("sysctl").args(["-qw", "net.ipv4.ip_forward=1"]))
}

/// `inside` is behind a NAT: what it sends out through `outside`'s link
/// leaves with the router's address there (MASQUERADE), and nothing can
/// reach `inside`'s private addresses from outside but replies to what it
/// sent (as on the internet, where private addresses do not route).
/// Every rule names one of the hosts' links, which go with the hosts, so a
/// topology's rules never touch a later test's hosts at the same addresses.
pub fn masquerade(inside: &Host, outside: &Host) -> Result<()> {
    let subnet = inside.subnet();
    run(Command::new("iptables").args([
        "-t",
        "nat",
        "-A",
        "POSTROUTING",
        "-s",
        &subnet,
        "-o",
        &outside.link,
        "-j",
        "MASQUERADE",
    ]))?;
    run(Command::new("iptables").args([
        "-A",
        "FORWARD",
        "-o",
        &inside.link,
        "-d",
        &subnet,
        "-m",
        "conntrack",
        "--ctstate",
        "NEW",
        "-j",
        "DROP",
    ]))
}

/// A 1:1 NAT: `public` (an address on `outside`'s link) is `host`'s
/// address to the world, both ways, as a cloud VM's public address is.
pub fn one_to_one(host: &Host, public: Ipv4Addr, outside: &Host) -> Result<()> {
    let (public, private) = (public.to_string(), host.addr.to_string());
    run(Command::new("ip").args(["addr", "add", &format!("{public}/32"), "dev", &outside.link]))?;
    run(Command::new("iptables").args([
        "-t",
        "nat",
        "-A",
        "PREROUTING",
        "-d",
        &public,
        "-j",
        "DNAT",
        "--to-destination",
        &private,
    ]))?;
    run(Command::new("iptables").args([
        "-t",
        "nat",
        "-A",
        "POSTROUTING",
        "-s",
        &private,
        "-o",
        &outside.link,
        "-j",
        "SNAT",
        "--to-source",
        &public,
    ]))?;
    // Only the public address reaches the host from outside.
    run(Command::new("iptables").args([
        "-A",
        "FORWARD",
        "-d",
        &private,
        "-i",
        &outside.link,
        "-m",
        "conntrack",
        "!",
        "--ctstate",
        "DNAT,ESTABLISHED,RELATED",
        "-j",
        "DROP",
    ]))
}

/// UDP that `host` sends through the router is dropped at random with
/// `probability` (iptables' `statistic` match: this kernel has no netem),
/// except to `spared_port` (its SIP signalling, which would only be
/// retransmitted).
pub fn lossy_from(host: &Host, probability: f64, spared_port: u16) -> Result<()> {
    run(Command::new("iptables").args([
        "-A",
        "FORWARD",
        "-i",
        &host.link,
        "-p",
        "udp",
        "!",
        "--dport",
        &spared_port.to_string(),
        "-m",
        "statistic",
        "--mode",
        "random",
        "--probability",
        &probability.to_string(),
        "-j",
        "DROP",
    ]))
}

fn run(cmd: &mut Command) -> Result<()> {
    let out = cmd.output().with_context(|| format!("{cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}
