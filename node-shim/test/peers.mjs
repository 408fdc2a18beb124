// Real third-party peers for the end-to-end tests, started from node:
// Kamailio (registrar/proxy, digest auth, SIP over WebSocket) and baresip
// (a softphone that plays a WAV and records both directions). Configs go
// to a scratch directory; every process runs in its own process group, is
// bounded in time and is killed by PID.

import { spawn } from "node:child_process";
import dgram from "node:dgram";
import net from "node:net";
import { mkdirSync, mkdtempSync, openSync, closeSync, readFileSync, writeFileSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const live = new Set();
process.on("exit", () => {
  for (const p of live) p.kill();
});

/** A scratch directory under target/e2e when the repo has one, else the system temp dir. */
export function scratchDir(name) {
  const base = fileURLToPath(new URL("../../target/", import.meta.url));
  let root;
  try {
    root = join(base, "e2e");
    mkdirSync(root, { recursive: true });
  } catch {
    root = tmpdir();
  }
  return mkdtempSync(join(root, `node-shim-${name}-`));
}

/** A process in its own group, logging to `<dir>/<name>.log`, killed after `limitMs`. */
export class Proc {
  constructor(cmd, args, { dir, name, limitMs = 120_000, env } = {}) {
    this.name = name;
    this.logPath = join(dir, `${name}.log`);
    const fd = openSync(this.logPath, "a");
    this.child = spawn(cmd, args, { cwd: dir, stdio: ["ignore", fd, fd], detached: true, env: env || process.env });
    closeSync(fd);
    this.pid = this.child.pid;
    this.exited = new Promise((resolve) => this.child.once("exit", (code, signal) => resolve({ code, signal })));
    this.child.once("error", () => {});
    this.timer = setTimeout(() => this.kill(), limitMs);
    this.timer.unref();
    live.add(this);
    this.exited.then(() => live.delete(this));
  }

  log() {
    try {
      return readFileSync(this.logPath, "utf8");
    } catch {
      return "";
    }
  }

  tail(n = 30) {
    return this.log().split("\n").slice(-n).join("\n");
  }

  /** Kills the whole process group by PID. */
  kill(signal = "SIGKILL") {
    clearTimeout(this.timer);
    try {
      process.kill(-this.pid, signal);
    } catch {
      // gone
    }
  }

  async stop() {
    this.kill("SIGTERM");
    const t = setTimeout(() => this.kill("SIGKILL"), 2000);
    await this.exited;
    clearTimeout(t);
    this.kill("SIGKILL"); // stragglers of the group
  }
}

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export function freeTcpPort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** An even UDP port on 127.0.0.1 whose +1 is free too. */
export async function freeUdpPort() {
  for (let i = 0; i < 100; i++) {
    const a = dgram.createSocket("udp4");
    await new Promise((r, j) => a.bind(0, "127.0.0.1", r).once("error", j));
    const port = a.address().port;
    let ok = port % 2 === 0 && port < 65534;
    if (ok) {
      const b = dgram.createSocket("udp4");
      ok = await new Promise((r) => {
        b.once("error", () => r(false));
        b.bind(port + 1, "127.0.0.1", () => r(true));
      });
      b.close();
    }
    a.close();
    if (ok) return port;
  }
  throw new Error("no free even UDP port pair on 127.0.0.1");
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Kamailio with digest auth over db_text for `users` ([user, password]),
 * UDP, TCP and WebSocket listeners on free ports; with `tls` ({cert, key}
 * PEM paths) a secure WebSocket listener too (`wssUrl`).
 */
export async function startKamailio(dir, { domain = "example.test", users, tls, limitMs = 300_000 }) {
  const base = join(dir, "kamailio");
  const db = join(base, "db");
  const run = join(base, "run");
  mkdirSync(db, { recursive: true });
  mkdirSync(run, { recursive: true });
  writeFileSync(join(db, "version"), "id(int,auto) table_name(string) table_version(int)\n0:subscriber:7\n0:location:9\n");
  let sub = "id(int,auto) username(string) domain(string) password(string) ha1(string,null) ha1b(string,null)\n";
  users.forEach(([u, p], i) => (sub += `${i + 1}:${u}:${domain}:${p}::\n`));
  writeFileSync(join(db, "subscriber"), sub);
  const udpPort = await freeUdpPort();
  const tcpPort = await freeTcpPort();
  let wsPort = await freeTcpPort();
  while (wsPort === tcpPort) wsPort = await freeTcpPort();
  let wssPort = null;
  while (tls && (wssPort === null || wssPort === tcpPort || wssPort === wsPort)) wssPort = await freeTcpPort();
  const template = readFileSync(new URL("./kamailio.cfg", import.meta.url), "utf8");
  const cfg = template
    .replaceAll("%UDP_PORT%", String(udpPort))
    .replaceAll("%TCP_PORT%", String(tcpPort))
    .replaceAll("%WS_PORT%", String(wsPort))
    .replaceAll("%WSS_PORT%", String(wssPort))
    .replaceAll("%TLS_CERT%", tls?.cert ?? "")
    .replaceAll("%TLS_KEY%", tls?.key ?? "")
    .replaceAll("%DOMAIN%", domain)
    .replaceAll("%ALGORITHM%", "MD5")
    .replaceAll("%NONCE_EXPIRE%", "300")
    .replaceAll("%DB_DIR%", db);
  const cfgPath = join(base, "kamailio.cfg");
  writeFileSync(cfgPath, cfg);
  const defines = tls ? ["-A", "WITH_TLS"] : [];
  const proc = new Proc("kamailio", ["-f", cfgPath, ...defines, "-DD", "-E", "-m", "32", "-M", "8", "-Y", run, "-w", base], { dir, name: "kamailio", limitMs });
  // ready when it answers an OPTIONS probe over UDP
  const sock = dgram.createSocket("udp4");
  await new Promise((r) => sock.bind(0, "127.0.0.1", r));
  const me = sock.address();
  try {
    const until = Date.now() + 10_000;
    for (let n = 1; ; n++) {
      if (Date.now() > until) throw new Error(`kamailio not answering on udp ${udpPort}; log:\n${proc.tail()}`);
      const probe =
        `OPTIONS sip:127.0.0.1:${udpPort} SIP/2.0\r\nVia: SIP/2.0/UDP ${me.address}:${me.port};branch=z9hG4bKprobe${n}\r\n` +
        `Max-Forwards: 5\r\nFrom: <sip:probe@127.0.0.1>;tag=p${n}\r\nTo: <sip:127.0.0.1:${udpPort}>\r\n` +
        `Call-ID: probe${n}@127.0.0.1\r\nCSeq: ${n} OPTIONS\r\nContent-Length: 0\r\n\r\n`;
      const answered = new Promise((resolve) => {
        const t = setTimeout(() => resolve(false), 200);
        sock.once("message", (m) => {
          clearTimeout(t);
          resolve(m.toString().startsWith("SIP/2.0 200"));
        });
      });
      sock.send(probe, udpPort, "127.0.0.1");
      if (await answered) break;
    }
  } catch (e) {
    proc.kill();
    throw e;
  } finally {
    sock.close();
  }
  return {
    proc,
    domain,
    udpPort,
    tcpPort,
    wsPort,
    wsUrl: `ws://127.0.0.1:${wsPort}`,
    wssUrl: tls ? `wss://127.0.0.1:${wssPort}` : null,
    proxyUri: (t = "udp") => (t === "tcp" ? `sip:127.0.0.1:${tcpPort};transport=tcp` : `sip:127.0.0.1:${udpPort}`),
    aor: (user) => `sip:${user}@${domain}`,
    stop: () => proc.stop(),
  };
}

/**
 * baresip with one account, auto-answering, playing `play` (a WAV; it hangs
 * up when the file ends) and recording both directions of each call into
 * `<dir>/baresip/rec` (`dump-*-enc.wav` what it sent, `-dec.wav` what it heard).
 * Driven over ctrl_tcp (netstring JSON).
 */
export async function startBaresip(dir, { aor, password, outbound, play, limitMs = 300_000 }) {
  const conf = join(dir, "baresip");
  const recDir = join(conf, "rec");
  mkdirSync(recDir, { recursive: true });
  const sipPort = await freeUdpPort();
  const ctrlPort = await freeTcpPort();
  const config = [
    "poll_method\t\tepoll",
    `sip_listen\t\t127.0.0.1:${sipPort}`,
    "net_interface\t\t127.0.0.1",
    "dns_server\t\t127.0.0.1:53",
    "audio_player\t\taubridge,nil",
    "audio_alert\t\taubridge,nil",
    `audio_source\t\t${play ? `aufile,${play}` : "ausine,440"}`,
    `ctrl_tcp_listen\t\t127.0.0.1:${ctrlPort}`,
    "module_path\t\t/usr/lib/baresip/modules",
    "module\t\t\tg711.so",
    "module\t\t\taufile.so",
    "module\t\t\tausine.so",
    "module\t\t\taubridge.so",
    "module\t\t\tsndfile.so",
    `snd_path\t\t${recDir}`,
    "module_app\t\taccount.so",
    "module_app\t\tmenu.so",
    "module_app\t\tctrl_tcp.so",
    "",
  ].join("\n");
  writeFileSync(join(conf, "config"), config);
  writeFileSync(join(conf, "accounts"), `<${aor}>;auth_pass=${password};outbound="${outbound}";answermode=auto;regint=600;audio_codecs=PCMU,PCMA\n`);
  const proc = new Proc("baresip", ["-f", conf], { dir, name: "baresip", limitMs });
  let sock;
  const until = Date.now() + 10_000;
  for (;;) {
    try {
      sock = await new Promise((resolve, reject) => {
        const s = net.connect(ctrlPort, "127.0.0.1", () => resolve(s));
        s.once("error", reject);
      });
      break;
    } catch (e) {
      if (Date.now() > until) {
        proc.kill();
        throw new Error(`baresip ctrl_tcp not up: ${e.message}; log:\n${proc.tail()}`);
      }
      await sleep(50);
    }
  }
  return new Baresip(proc, sock, recDir);
}

class Baresip {
  constructor(proc, sock, recDir) {
    this.proc = proc;
    this.sock = sock;
    this.recDir = recDir;
    this.inbox = [];
    this.waiters = new Set();
    this.token = 0;
    let buf = Buffer.alloc(0);
    sock.on("data", (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      for (;;) {
        const colon = buf.indexOf(":");
        if (colon < 0) break;
        const len = Number(buf.subarray(0, colon).toString());
        if (!Number.isInteger(len)) {
          buf = Buffer.alloc(0);
          break;
        }
        if (buf.length < colon + 1 + len + 1) break;
        const body = buf.subarray(colon + 1, colon + 1 + len).toString();
        buf = buf.subarray(colon + 1 + len + 1);
        try {
          this.inbox.push(JSON.parse(body));
        } catch {
          continue;
        }
        for (const w of [...this.waiters]) w();
      }
    });
    sock.on("error", () => {});
  }

  /** Waits for (and removes) the first message matching `pred`. */
  waitFor(pred, timeoutMs = 10_000, what = "message") {
    return new Promise((resolve, reject) => {
      const check = () => {
        const i = this.inbox.findIndex(pred);
        if (i >= 0) {
          const [m] = this.inbox.splice(i, 1);
          done();
          resolve(m);
          return true;
        }
        return false;
      };
      const t = setTimeout(() => {
        done();
        reject(new Error(`baresip: no ${what} within ${timeoutMs} ms; seen ${JSON.stringify(this.inbox)}; log:\n${this.proc.tail()}`));
      }, timeoutMs);
      const done = () => {
        clearTimeout(t);
        this.waiters.delete(check);
      };
      if (!check()) this.waiters.add(check);
    });
  }

  waitEvent(cls, type, timeoutMs = 10_000) {
    return this.waitFor((m) => m.event === true && m.class === cls && m.type === type, timeoutMs, `${cls}/${type} event`);
  }

  /** Drops queued events (e.g. of an earlier call). */
  clearEvents() {
    this.inbox = this.inbox.filter((m) => m.event !== true);
  }

  async command(command, params = "") {
    const token = `t${++this.token}`;
    const msg = JSON.stringify({ command, params, token });
    this.sock.write(`${Buffer.byteLength(msg)}:${msg},`);
    return this.waitFor((m) => m.response === true && m.token === token, 5000, `response to ${command}`);
  }

  /** Waits until the log says the account registered. */
  async waitRegistered(timeoutMs = 10_000) {
    const until = Date.now() + timeoutMs;
    while (!this.proc.log().includes("} 200 OK")) {
      if (Date.now() > until) throw new Error(`baresip did not register; log:\n${this.proc.tail()}`);
      await sleep(50);
    }
  }

  /** Recording files so far. */
  recordings() {
    return readdirSync(this.recDir).filter((f) => f.endsWith(".wav")).sort();
  }

  async stop() {
    this.sock.destroy();
    await this.proc.stop();
  }
}
