//! The Janus gateway's SIP plugin (Debian package `janus`, installed by
//! `scripts/install-deps.sh --bench`) as the benchmarks' side-by-side
//! anchor for WebRTC <-> SIP calls: it relays media without transcoding.
//!
//! - [`setup_ice_interface`] gives Janus an interface it will gather ICE
//!   candidates on inside the tests' network namespace (it skips loopback
//!   interfaces, and `lo` is all a namespace has);
//! - [`Janus::start`] runs `janus` as a child process with a generated
//!   configuration directory (SIP plugin and HTTP transport only, ICE on
//!   127.0.0.1 only, no STUN/TURN/NAT settings), killed by PID on drop;
//! - [`Session`] and [`SipHandle`] speak its HTTP API (plain HTTP/1.1 over
//!   `TcpStream`, JSON bodies, one long-poll thread per session for events);
//! - [`SipUas`] is the far, plain-RTP side of the calls: a SIP user agent on
//!   UDP (our own `signaling` crate) that answers Janus's INVITEs with an SDP
//!   pointing at a given local RTP port (PCMU only).
//!
//! How it is configured and why: docs/performance.md ("Janus").

use crate::process::{self, free_tcp_port, Child};
use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// The interface Janus gathers its ICE candidates on (see
/// [`setup_ice_interface`]).
pub const ICE_INTERFACE: &str = "janus0";

/// Janus's ports: ICE (one per handle: bundle and rtcp-mux) and the SIP
/// plugin's plain RTP/RTCP (two per call). Both sit below the kernel's
/// ephemeral range, where the bench's own sockets and sipbridge's live.
const ICE_PORTS: &str = "20000-24999";
const SIP_RTP_PORTS: &str = "25000-29999";

/// How long a Janus process may live (a bench run at 100 calls included).
const JANUS_LIMIT: Duration = Duration::from_secs(1800);

// --------------------------------------------------------------------------
// The ICE interface

/// Makes `janus0` carry 127.0.0.1/32 in the current network namespace
/// (idempotent).
///
/// Janus gathers host candidates only on interfaces that are not flagged
/// `LOOPBACK`, so with `lo` alone it offers no candidate and ICE never
/// starts. A second interface holding 127.0.0.1/32 fixes that: the kernel
/// accepts the same local address on two devices (a second `local
/// 127.0.0.1` route), and packets to 127.0.0.1 still travel over `lo`.
/// The interface is a `dummy` where the kernel has that driver and an `ifb`
/// otherwise (this project's VM kernel has no `dummy`; `ifb` behaves the same
/// for this: a device with no traffic of its own that can hold an address).
///
/// Refuses to run outside a private network namespace (`scripts/netns.sh`),
/// so it never changes the host's interfaces.
pub fn setup_ice_interface() -> Result<()> {
    let own = std::fs::read_link("/proc/self/ns/net").context("reading /proc/self/ns/net")?;
    let init = std::fs::read_link("/proc/1/ns/net").ok();
    if std::env::var("SIPBRIDGE_NETNS").as_deref() != Ok("inside") || init.as_ref() == Some(&own) {
        bail!("Janus needs its ICE interface, which is only created inside a private network namespace: run under scripts/netns.sh");
    }
    // Tests of one binary run in parallel threads: one at a time here.
    static LOCK: Mutex<()> = Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let has = |args: &[&str]| -> Result<String> { run_ip(args) };
    let links = has(&["-o", "link", "show"])?;
    if !links.lines().any(|l| l.split(':').nth(1).map(str::trim) == Some(ICE_INTERFACE))
        && run_ip(&["link", "add", ICE_INTERFACE, "type", "dummy"]).is_err()
    {
        run_ip(&["link", "add", ICE_INTERFACE, "type", "ifb"])
            .context("neither a dummy nor an ifb interface can be created")?;
    }
    let addrs = has(&["-o", "-4", "addr", "show", "dev", ICE_INTERFACE])?;
    if !addrs.contains("127.0.0.1/32") {
        run_ip(&["addr", "add", "127.0.0.1/32", "dev", ICE_INTERFACE])?;
    }
    run_ip(&["link", "set", ICE_INTERFACE, "up"])?;
    Ok(())
}

/// `ip ARGS`, bounded to 10 s; its stdout, or an error with its stderr.
fn run_ip(args: &[&str]) -> Result<String> {
    let mut child = Command::new("ip")
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("starting ip (iproute2)")?;
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        if child.try_wait()?.is_some() {
            break;
        }
        if Instant::now() >= until {
            let _ = child.kill();
            let _ = child.wait();
            bail!("ip {args:?} did not finish in 10 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

// --------------------------------------------------------------------------
// The process

/// Where the Debian package puts Janus's plugins and transports.
const LIB_DIR: &str = "/usr/lib/x86_64-linux-gnu/janus";

/// A running `janus`, with only the SIP plugin and the HTTP transport.
pub struct Janus {
    child: Child,
    http_port: u16,
    pub dir: PathBuf,
}

impl Janus {
    /// Writes a configuration under `dir/janus` and starts Janus; returns once
    /// its HTTP API answers. Call [`setup_ice_interface`] first.
    pub fn start(dir: &Path) -> Result<Janus> {
        let bin = Path::new("/usr/bin/janus");
        if !bin.exists() {
            bail!("{} is missing: run scripts/install-deps.sh --bench (Debian package janus)", bin.display());
        }
        let root = dir.join("janus");
        let conf = root.join("conf");
        // Private plugin/transport folders holding links to the two modules
        // we want: Janus loads every module in its folders, and pointing the
        // folders elsewhere is simpler and sturdier than a `disable` list
        // that must name every other module the package ships.
        let (plugins, transports, empty) = (root.join("plugins"), root.join("transports"), root.join("none"));
        for d in [&conf, &plugins, &transports, &empty] {
            std::fs::create_dir_all(d)?;
        }
        for (folder, lib) in [(&plugins, "plugins/libjanus_sip.so"), (&transports, "transports/libjanus_http.so")] {
            let target = Path::new(LIB_DIR).join(lib);
            if !target.exists() {
                bail!("{} is missing (janus package layout changed?)", target.display());
            }
            let link = folder.join(target.file_name().unwrap());
            let _ = std::fs::remove_file(&link);
            std::os::unix::fs::symlink(&target, &link)?;
        }
        let http_port = free_tcp_port();
        std::fs::write(conf.join("janus.jcfg"), janus_jcfg(&conf, &plugins, &transports, &empty))?;
        std::fs::write(conf.join("janus.plugin.sip.jcfg"), SIP_JCFG.replace("@SIP_RTP_PORTS@", SIP_RTP_PORTS))?;
        std::fs::write(conf.join("janus.transport.http.jcfg"), HTTP_JCFG.replace("@PORT@", &http_port.to_string()))?;

        let mut cmd = Command::new(bin);
        cmd.arg("--config").arg(conf.join("janus.jcfg")).arg("--configs-folder").arg(&conf).arg("--disable-colors");
        let mut child = process::spawn(&mut cmd, dir, "janus", JANUS_LIMIT)?;
        let until = Instant::now() + Duration::from_secs(15);
        let info = loop {
            match http(http_port, "GET", "/janus/info", None, Duration::from_secs(2)) {
                Ok(v) if v["janus"] == "server_info" => break v,
                _ => {}
            }
            if let Some(status) = child.wait_timeout(Duration::from_millis(100))? {
                bail!("janus exited ({status}) at start; log:\n{}", process::tail(&child.log()));
            }
            if Instant::now() >= until {
                bail!("janus's HTTP API did not answer in 15 s; log:\n{}", process::tail(&child.log()));
            }
        };
        if info["plugins"].get("janus.plugin.sip").is_none() {
            bail!("janus started without its SIP plugin: {info}; log:\n{}", process::tail(&child.log()));
        }
        Ok(Janus { child, http_port, dir: root })
    }

    /// The process to measure (Janus runs as one process; no daemon fork).
    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    pub fn log(&self) -> String {
        self.child.log()
    }

    /// A new Janus session, with a thread long-polling its events.
    pub fn session(&self) -> Result<Session> {
        Session::create(self.http_port)
    }
}

fn janus_jcfg(conf: &Path, plugins: &Path, transports: &Path, empty: &Path) -> String {
    format!(
        r#"# Generated by tests/src/janus.rs for the benchmarks (docs/performance.md).
general: {{
	configs_folder = "{conf}"
	plugins_folder = "{plugins}"
	transports_folder = "{transports}"
	events_folder = "{empty}"
	loggers_folder = "{empty}"
	# Warnings and errors only: logging every call costs CPU we measure.
	debug_level = 3
	# Sessions are kept alive by their long-poll.
	session_timeout = 60
	server_name = "sipbridge-bench"
}}
media: {{
	ipv6 = false
	rtp_port_range = "{ice_ports}"
	# No "no media" events: the bench polls only for call events.
	no_media_timer = 0
}}
nat: {{
	# No STUN, no TURN, no 1:1 NAT mapping: loopback only.
	nice_debug = false
	full_trickle = false
	ice_lite = false
	ice_tcp = false
	# The only interface to gather host candidates on: the one carrying
	# 127.0.0.1/32 beside lo (Janus skips loopback interfaces).
	ice_enforce_list = "{iface}"
}}
plugins: {{
}}
transports: {{
}}
events: {{
	broadcast = false
}}
"#,
        conf = conf.display(),
        plugins = plugins.display(),
        transports = transports.display(),
        empty = empty.display(),
        ice_ports = ICE_PORTS,
        iface = ICE_INTERFACE,
    )
}

const SIP_JCFG: &str = r#"# Generated by tests/src/janus.rs for the benchmarks (docs/performance.md).
general: {
	# SIP signalling and plain RTP on loopback; no guessing of addresses.
	local_ip = "127.0.0.1"
	local_media_ip = "127.0.0.1"
	sdp_ip = "127.0.0.1"
	behind_nat = false
	# No OPTIONS keep-alives: calls go straight to the far end, no registrar.
	keepalive_interval = 0
	register_ttl = 3600
	rtp_port_range = "@SIP_RTP_PORTS@"
	events = false
}
"#;

const HTTP_JCFG: &str = r#"# Generated by tests/src/janus.rs for the benchmarks (docs/performance.md).
general: {
	json = "plain"
	base_path = "/janus"
	http = true
	ip = "127.0.0.1"
	port = @PORT@
	https = false
}
admin: {
	admin_http = false
	admin_https = false
}
"#;

// --------------------------------------------------------------------------
// HTTP API

/// One HTTP/1.1 request on a fresh connection (`Connection: close`);
/// returns the JSON body.
fn http(port: u16, method: &str, path: &str, body: Option<&Value>, timeout: Duration) -> Result<Value> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .with_context(|| format!("connecting to janus at {addr}"))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nAccept: application/json\r\n"
    );
    if method == "POST" {
        req.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    req.push_str(&body);
    stream.write_all(req.as_bytes())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).with_context(|| format!("{method} {path}: reading the reply"))?;
    let text = String::from_utf8_lossy(&raw);
    let (head, rest) =
        text.split_once("\r\n\r\n").ok_or_else(|| anyhow!("{method} {path}: no HTTP header in {text:?}"))?;
    let status = head.split(' ').nth(1).unwrap_or("");
    if status != "200" {
        bail!("{method} {path}: HTTP {status}: {rest}");
    }
    let payload = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        dechunk(rest)?
    } else {
        rest.to_string()
    };
    serde_json::from_str(&payload).with_context(|| format!("{method} {path}: not JSON: {payload:?}"))
}

fn dechunk(mut s: &str) -> Result<String> {
    let mut out = String::new();
    loop {
        let (size, rest) = s.split_once("\r\n").ok_or_else(|| anyhow!("bad chunk"))?;
        let n = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16)?;
        if n == 0 {
            return Ok(out);
        }
        out.push_str(rest.get(..n).ok_or_else(|| anyhow!("short chunk"))?);
        s = rest.get(n..).unwrap_or("").trim_start_matches("\r\n");
    }
}

fn transaction() -> String {
    static N: AtomicU64 = AtomicU64::new(1);
    format!("t{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

/// Posts a Janus request; fails unless Janus answers `success` or `ack`.
fn post(port: u16, path: &str, mut body: Value) -> Result<Value> {
    body["transaction"] = json!(transaction());
    let reply = http(port, "POST", path, Some(&body), Duration::from_secs(10))?;
    match reply["janus"].as_str() {
        Some("success") | Some("ack") => Ok(reply),
        _ => bail!("janus {path} {}: {reply}", body["janus"]),
    }
}

#[derive(Default)]
struct Inbox {
    /// Events by the handle that sent them (`sender`; 0 for session events).
    events: HashMap<u64, Vec<Value>>,
    error: Option<String>,
}

type Shared = Arc<(Mutex<Inbox>, Condvar)>;

/// A Janus session. Many handles (calls) can share one: their events come
/// through the session's one long-poll, addressed by handle.
pub struct Session {
    port: u16,
    pub id: u64,
    inbox: Shared,
    stop: Arc<AtomicBool>,
}

impl Session {
    fn create(port: u16) -> Result<Session> {
        let reply = post(port, "/janus", json!({ "janus": "create" }))?;
        let id = reply["data"]["id"].as_u64().ok_or_else(|| anyhow!("create: no session id in {reply}"))?;
        let inbox: Shared = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (poll_inbox, poll_stop) = (inbox.clone(), stop.clone());
        // Long-poll GETs (Janus holds each up to 30 s and answers with up to
        // `maxev` events). They also keep the session alive. The thread is
        // not joined: it ends when its GET returns after `stop`, or when
        // Janus goes away.
        std::thread::Builder::new().name(format!("janus-poll-{id}")).spawn(move || {
            let path = format!("/janus/{id}?maxev=50");
            while !poll_stop.load(Ordering::Relaxed) {
                let reply = http(port, "GET", &path, None, Duration::from_secs(40));
                let (lock, cvar) = &*poll_inbox;
                let mut inbox = lock.lock().unwrap();
                match reply {
                    Ok(Value::Array(events)) => {
                        for e in events {
                            inbox.events.entry(e["sender"].as_u64().unwrap_or(0)).or_default().push(e);
                        }
                    }
                    Ok(e) if e["janus"] == "keepalive" => {}
                    Ok(e) => inbox.events.entry(e["sender"].as_u64().unwrap_or(0)).or_default().push(e),
                    Err(e) => {
                        if !poll_stop.load(Ordering::Relaxed) {
                            inbox.error = Some(format!("{e:#}"));
                        }
                        cvar.notify_all();
                        return;
                    }
                }
                cvar.notify_all();
            }
        })?;
        Ok(Session { port, id, inbox, stop })
    }

    /// Attaches a handle of the SIP plugin.
    pub fn attach_sip(&self) -> Result<SipHandle> {
        let reply = post(
            self.port,
            &format!("/janus/{}", self.id),
            json!({ "janus": "attach", "plugin": "janus.plugin.sip" }),
        )?;
        let id = reply["data"]["id"].as_u64().ok_or_else(|| anyhow!("attach: no handle id in {reply}"))?;
        Ok(SipHandle { port: self.port, session: self.id, id, inbox: self.inbox.clone() })
    }

    /// An explicit keepalive (the long-poll already keeps the session alive).
    pub fn keepalive(&self) -> Result<()> {
        post(self.port, &format!("/janus/{}", self.id), json!({ "janus": "keepalive" }))?;
        Ok(())
    }

    /// Destroys the session (and its handles: their calls are hung up).
    pub fn destroy(self) -> Result<()> {
        self.stop.store(true, Ordering::Relaxed);
        post(self.port, &format!("/janus/{}", self.id), json!({ "janus": "destroy" }))?;
        Ok(())
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A handle on Janus's SIP plugin: one WebRTC peer, one SIP call at a time.
pub struct SipHandle {
    port: u16,
    session: u64,
    pub id: u64,
    inbox: Shared,
}

impl SipHandle {
    fn message(&self, body: Value, jsep: Option<Value>) -> Result<()> {
        let mut req = json!({ "janus": "message", "body": body });
        if let Some(j) = jsep {
            req["jsep"] = j;
        }
        post(self.port, &format!("/janus/{}/{}", self.session, self.id), req)?;
        Ok(())
    }

    /// Waits for the next plugin event on this handle matching `want`
    /// (`result.event` name); a SIP plugin error event fails. Core events
    /// (webrtcup, media, ...) and other plugin events are skipped but kept.
    pub fn wait_event(&self, want: &str, timeout: Duration) -> Result<Value> {
        let until = Instant::now() + timeout;
        let (lock, cvar) = &*self.inbox;
        let mut inbox = lock.lock().unwrap();
        loop {
            if let Some(list) = inbox.events.get_mut(&self.id) {
                let mut found = None;
                for (i, e) in list.iter().enumerate() {
                    let data = &e["plugindata"]["data"];
                    if data.get("error").is_some() {
                        bail!("janus SIP plugin error on handle {}: {}", self.id, data);
                    }
                    if data["result"]["event"] == want {
                        found = Some(i);
                        break;
                    }
                }
                if let Some(i) = found {
                    // Drop what came before it too: it was not wanted.
                    let e = list.drain(..=i).next_back().unwrap();
                    return Ok(e);
                }
            }
            if let Some(err) = &inbox.error {
                bail!("janus event poll failed: {err}");
            }
            let now = Instant::now();
            if now >= until {
                let seen = inbox.events.get(&self.id).cloned().unwrap_or_default();
                bail!("no {want:?} event from janus on handle {} in {timeout:?}; events: {seen:?}", self.id);
            }
            inbox = cvar.wait_timeout(inbox, until - now).unwrap().0;
        }
    }

    /// Whether Janus reported this handle's PeerConnection up (`webrtcup`).
    pub fn webrtc_up(&self) -> bool {
        let inbox = self.inbox.0.lock().unwrap();
        inbox.events.get(&self.id).is_some_and(|l| l.iter().any(|e| e["janus"] == "webrtcup"))
    }

    /// `register` as a guest: no REGISTER is sent; the handle only gets an
    /// identity to call from (there is no registrar in the bench).
    pub fn register_guest(&self, username: &str) -> Result<()> {
        self.message(json!({ "request": "register", "type": "guest", "username": username }), None)?;
        self.wait_event("registered", Duration::from_secs(10))?;
        Ok(())
    }

    /// `call` `uri` with the WebRTC peer's `offer`; returns at once (the
    /// answer comes with [`SipHandle::wait_accepted`]).
    pub fn call(&self, uri: &str, offer: &str) -> Result<()> {
        self.message(json!({ "request": "call", "uri": uri }), Some(json!({ "type": "offer", "sdp": offer })))
    }

    /// Waits for `accepted` (the far end answered 200); returns the SDP
    /// answer for the WebRTC peer.
    pub fn wait_accepted(&self, timeout: Duration) -> Result<String> {
        let e = self.wait_event("accepted", timeout)?;
        e["jsep"]["sdp"].as_str().map(str::to_string).ok_or_else(|| anyhow!("accepted without a jsep answer: {e}"))
    }

    /// `hangup` (Janus sends the BYE); waits for `hangup`.
    pub fn hangup(&self) -> Result<()> {
        self.message(json!({ "request": "hangup" }), None)?;
        self.wait_event("hangup", Duration::from_secs(10))?;
        Ok(())
    }

    /// Detaches the handle.
    pub fn detach(self) -> Result<()> {
        post(self.port, &format!("/janus/{}/{}", self.session, self.id), json!({ "janus": "detach" }))?;
        Ok(())
    }
}

// --------------------------------------------------------------------------
// Calls, as the bench makes them

/// Everything a benchmark needs to put calls through Janus: the process,
/// one session for all calls, and the SIP far end.
pub struct JanusCalls {
    // Field order is drop order: the session's poller, then the UAS, then
    // the process.
    session: Session,
    pub uas: SipUas,
    pub janus: Janus,
}

/// One call through Janus.
pub struct JanusCall {
    pub handle: SipHandle,
    /// Janus's SDP answer for the WebRTC side.
    pub answer: String,
    /// Where Janus receives (and from where it sends) the call's plain RTP.
    pub janus_rtp: SocketAddr,
}

impl JanusCalls {
    /// Sets up the ICE interface, starts Janus and the SIP far end.
    pub fn start(dir: &Path) -> Result<JanusCalls> {
        setup_ice_interface()?;
        let janus = Janus::start(dir)?;
        let uas = SipUas::start()?;
        let session = janus.session()?;
        Ok(JanusCalls { session, uas, janus })
    }

    /// The Janus process, for CPU and memory figures.
    pub fn pid(&self) -> u32 {
        self.janus.pid()
    }

    /// Call number `n`: the WebRTC peer's `offer` goes to Janus, Janus
    /// calls the far end, which answers PCMU on 127.0.0.1:`rtp_port` (the
    /// generator must send from that socket: see [`PcmuPhone`]). Returns
    /// once Janus has the 200 and its WebRTC answer is known.
    pub fn call(&self, n: usize, offer: &str, rtp_port: u16) -> Result<JanusCall> {
        // Unique across runs (the bench numbers calls from 0 in every run).
        static SERIAL: AtomicU64 = AtomicU64::new(0);
        let user = format!("call{n}-{}", SERIAL.fetch_add(1, Ordering::Relaxed));
        self.uas.expect(&user, rtp_port);
        let handle = self.session.attach_sip()?;
        handle.register_guest(&format!("sip:web{n}@127.0.0.1"))?;
        handle.call(&self.uas.uri(&user), offer)?;
        let answer = handle.wait_accepted(Duration::from_secs(15)).with_context(|| format!("call {n}"))?;
        let janus_rtp = self.uas.wait_answered(&user, Duration::from_secs(5))?;
        Ok(JanusCall { handle, answer, janus_rtp })
    }

    /// Ends a call (Janus sends the BYE) and detaches its handle.
    pub fn hang_up(&self, call: JanusCall) -> Result<()> {
        call.handle.hangup()?;
        call.handle.detach()
    }
}

// --------------------------------------------------------------------------
// The far SIP end

/// The plain-RTP far end of Janus's calls: a SIP UA on UDP 127.0.0.1 (our
/// `signaling` crate, on its own tokio runtime) that answers every INVITE
/// whose Request-URI user was announced with [`SipUas::expect`]: 100
/// Trying, 200 OK with a PCMU SDP pointing at the announced RTP port; ACK
/// and BYE are handled by the stack. INVITEs for unknown users get a 404.
pub struct SipUas {
    runtime: Option<tokio::runtime::Runtime>,
    ua: Option<Arc<signaling::UserAgent>>,
    addr: SocketAddr,
    state: Arc<(Mutex<UasState>, Condvar)>,
}

#[derive(Default)]
struct UasState {
    /// user -> RTP port to put in the answer.
    expected: HashMap<String, u16>,
    /// user -> where Janus sends/receives RTP (from its offer).
    answered: HashMap<String, SocketAddr>,
    /// Calls kept alive (they end when Janus sends BYE or the UAS drops).
    calls: Vec<signaling::Call>,
    errors: Vec<String>,
}

impl SipUas {
    pub fn start() -> Result<SipUas> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("sip-uas")
            .enable_all()
            .build()?;
        let ua = runtime.block_on(signaling::UserAgent::start(signaling::Config {
            listen: vec![signaling::Listen {
                transport: signaling::Transport::Udp,
                addr: "127.0.0.1:0".parse().unwrap(),
            }],
            // All of Janus's calls come from 127.0.0.1: lift the per-peer limits.
            max_calls_per_peer: 10_000,
            max_requests_per_second_per_peer: 100_000,
            ..signaling::Config::default()
        }))?;
        let addr = ua.local_addr(signaling::Transport::Udp).ok_or_else(|| anyhow!("no UDP listener"))?;
        let mut events = ua.take_events().ok_or_else(|| anyhow!("no UA events"))?;
        let ua = Arc::new(ua);
        let state: Arc<(Mutex<UasState>, Condvar)> = Arc::default();
        let st = state.clone();
        runtime.spawn(async move {
            while let Some(ev) = events.recv().await {
                let signaling::UaEvent::IncomingCall(inc) = ev else { continue };
                let user = uri_user(&inc.request_uri);
                let (lock, cvar) = &*st;
                let mut s = lock.lock().unwrap();
                let port = s.expected.get(&user).copied();
                let offer = inc.sdp_offer.as_deref().and_then(sdp_rtp_address);
                match (port, offer) {
                    (Some(port), Some(janus_rtp)) => match inc.call.answer(&pcmu_sdp(port)) {
                        Ok(()) => {
                            s.answered.insert(user, janus_rtp);
                            s.calls.push(inc.call);
                        }
                        Err(e) => s.errors.push(format!("answering {user}: {e}")),
                    },
                    (None, _) => {
                        let _ = inc.call.reject(404, None);
                        s.errors.push(format!("unexpected INVITE for {}", inc.request_uri));
                    }
                    (_, None) => {
                        let _ = inc.call.reject(488, None);
                        s.errors.push(format!("INVITE for {user} without a usable SDP offer: {:?}", inc.sdp_offer));
                    }
                }
                cvar.notify_all();
            }
        });
        Ok(SipUas { runtime: Some(runtime), ua: Some(ua), addr, state })
    }

    /// Where Janus must send its INVITEs.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The SIP URI that reaches `user` here.
    pub fn uri(&self, user: &str) -> String {
        format!("sip:{user}@{}", self.addr)
    }

    /// Announces a call to `user`: it is answered with PCMU on `rtp_port`.
    pub fn expect(&self, user: &str, rtp_port: u16) {
        let mut s = self.state.0.lock().unwrap();
        s.answered.remove(user);
        s.expected.insert(user.to_string(), rtp_port);
    }

    /// Waits until the call to `user` was answered; returns Janus's RTP
    /// address for it (from its offer).
    pub fn wait_answered(&self, user: &str, timeout: Duration) -> Result<SocketAddr> {
        let until = Instant::now() + timeout;
        let (lock, cvar) = &*self.state;
        let mut s = lock.lock().unwrap();
        loop {
            if let Some(a) = s.answered.get(user) {
                return Ok(*a);
            }
            let now = Instant::now();
            if now >= until {
                bail!("no INVITE for {user} answered in {timeout:?}; errors: {:?}", s.errors);
            }
            s = cvar.wait_timeout(s, until - now).unwrap().0;
        }
    }

    /// Problems seen so far (unexpected INVITEs, answer failures).
    pub fn errors(&self) -> Vec<String> {
        self.state.0.lock().unwrap().errors.clone()
    }
}

impl Drop for SipUas {
    fn drop(&mut self) {
        let calls = std::mem::take(&mut self.state.0.lock().unwrap().calls);
        if let Some(rt) = self.runtime.take() {
            let ua = self.ua.take();
            rt.block_on(async move {
                drop(calls);
                drop(ua);
            });
            rt.shutdown_timeout(Duration::from_secs(2));
        }
    }
}

/// A SIP phone's media as Janus needs it: symmetric RTP, i.e. sending from
/// the very socket its SDP advertises. Janus's SIP plugin `connect()`s its
/// RTP socket to the address in the far end's SDP, so datagrams from any
/// other source port never reach it (a gst-launch `udpsink` sends from a
/// port of its own: it is not heard). Sends a PCMU tone, 20 ms packets, and
/// keeps what it receives (decoded, 8 kHz).
pub struct PcmuPhone {
    socket: std::net::UdpSocket,
}

impl PcmuPhone {
    pub fn bind() -> Result<PcmuPhone> {
        Ok(PcmuPhone { socket: std::net::UdpSocket::bind("127.0.0.1:0")? })
    }

    pub fn port(&self) -> u16 {
        self.socket.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// Sends `hz` to `to` for `duration` (paced by the clock) on another
    /// thread; joining it returns what arrived meanwhile.
    pub fn run(
        self,
        hz: f64,
        to: SocketAddr,
        duration: Duration,
    ) -> std::thread::JoinHandle<Result<crate::audio::Pcm>> {
        std::thread::spawn(move || {
            let tone = crate::audio::tone(hz, 1.0, 8000, 0.3);
            self.socket.set_nonblocking(true)?;
            let (mut seq, mut ts, ssrc) = (1u16, 0u32, 0x5eed_0001u32);
            let mut heard = Vec::new();
            let mut buf = [0u8; 2048];
            let start = Instant::now();
            let mut tick = 0u32;
            while start.elapsed() < duration {
                let mut packet = vec![0x80, 0];
                packet.extend_from_slice(&seq.to_be_bytes());
                packet.extend_from_slice(&ts.to_be_bytes());
                packet.extend_from_slice(&ssrc.to_be_bytes());
                let off = (tick as usize * 160) % tone.samples.len();
                packet.extend(
                    tone.samples[off..off + 160].iter().map(|s| crate::audio::ulaw_encode((s * 32767.0) as i16)),
                );
                let _ = self.socket.send_to(&packet, to);
                seq = seq.wrapping_add(1);
                ts = ts.wrapping_add(160);
                tick += 1;
                loop {
                    match self.socket.recv_from(&mut buf) {
                        Ok((n, _)) if n > 12 && buf[1] & 0x7f == 0 => {
                            let payload = crate::rtp_peer::rtp_payload(&buf[..n]).unwrap_or_default();
                            heard.extend(payload.iter().map(|b| crate::audio::ulaw_decode(*b)));
                        }
                        Ok(_) => {}
                        Err(_) => break,
                    }
                }
                let next = start + Duration::from_millis(20) * tick;
                if let Some(wait) = next.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
            }
            Ok(crate::audio::Pcm { rate: 8000, samples: heard })
        })
    }
}

/// The user part of a SIP URI (`sip:user@host` -> `user`).
fn uri_user(uri: &str) -> String {
    let s = uri.trim_start_matches('<');
    let s = s.split_once(':').map(|(_, r)| r).unwrap_or(s);
    s.split(['@', ';', '>']).next().unwrap_or("").to_string()
}

/// The RTP address of the first audio m-line of an SDP (session- or
/// media-level `c=`), if it has one.
pub fn sdp_rtp_address(sdp: &str) -> Option<SocketAddr> {
    let mut ip = None;
    let mut port = None;
    for line in sdp.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("m=") {
            if port.is_some() {
                break;
            }
            if let Some(p) = rest.strip_prefix("audio ") {
                port = p.split(' ').next().and_then(|p| p.parse::<u16>().ok());
            }
        } else if let Some(c) = line.strip_prefix("c=IN IP4 ") {
            // Session level, then the audio m-line's own (which wins).
            ip = c.split('/').next().and_then(|a| a.trim().parse::<std::net::Ipv4Addr>().ok()).or(ip);
        }
    }
    Some(SocketAddr::from((ip?, port?)))
}

/// The UAS's answer: PCMU only, 20 ms, on 127.0.0.1:`port`.
pub fn pcmu_sdp(port: u16) -> String {
    format!(
        "v=0\r\no=uas 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=ptime:20\r\na=sendrecv\r\n"
    )
}

/// Keeps only PCMU (payload type 0) in a WebRTC offer's audio m-line, so
/// the call is passthrough PCMU end to end whatever else the peer offers.
pub fn pcmu_only(sdp: &str) -> String {
    let mut dropped: Vec<String> = Vec::new();
    let mut out = String::new();
    for line in sdp.split("\r\n").filter(|l| !l.is_empty()) {
        if let Some(rest) = line.strip_prefix("m=audio ") {
            let parts: Vec<&str> = rest.split(' ').collect();
            if parts.len() > 3 {
                dropped = parts[2..].iter().filter(|p| **p != "0").map(|p| p.to_string()).collect();
                out.push_str(&format!("m=audio {} {} 0\r\n", parts[0], parts[1]));
                continue;
            }
        }
        let pt_of = |attr: &str| line.strip_prefix(attr).and_then(|r| r.split([' ', ':']).next()).map(str::to_string);
        let pt = pt_of("a=rtpmap:").or_else(|| pt_of("a=fmtp:")).or_else(|| pt_of("a=rtcp-fb:"));
        if pt.is_some_and(|pt| dropped.contains(&pt)) {
            continue;
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sdp_helpers() {
        let offer = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 96 9 0 8\r\nc=IN IP4 0.0.0.0\r\na=rtpmap:96 opus/48000/2\r\na=fmtp:96 useinbandfec=1\r\na=rtpmap:9 G722/8000\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=candidate:1 1 udp 1 127.0.0.1 5000 typ host\r\n";
        let p = pcmu_only(offer);
        assert!(p.contains("m=audio 9 UDP/TLS/RTP/SAVPF 0\r\n"), "{p}");
        assert!(
            p.contains("a=rtpmap:0 PCMU/8000") && !p.contains("opus") && !p.contains("G722") && !p.contains("PCMA"),
            "{p}"
        );
        assert!(p.contains("a=candidate:1"), "{p}");
        assert_eq!(sdp_rtp_address(&pcmu_sdp(4000)), Some("127.0.0.1:4000".parse().unwrap()));
        assert_eq!(uri_user("sip:call7@127.0.0.1:5070;transport=udp"), "call7");
    }
}
