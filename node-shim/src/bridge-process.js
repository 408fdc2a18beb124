// One `sipbridge stdio` child and the JSON-RPC 2.0 lines spoken with it
// (docs/protocol.md). Requests are matched to replies by id, never by order;
// one stdout reader serves every request and session, so nothing is added
// per call that could leak.

import { spawn } from "node:child_process";
import { EventEmitter } from "node:events";
import { delimiter, isAbsolute, join } from "node:path";
import { accessSync, constants as fsConstants } from "node:fs";

/** The protocol version this shim speaks. */
export const PROTOCOL_VERSION = 1;

/** An error from the bridge (a JSON-RPC error object) or about the child. */
export class BridgeError extends Error {
  constructor(message, { code, data, method, cause } = {}) {
    super(message, cause ? { cause } : undefined);
    this.name = "BridgeError";
    /** JSON-RPC / sipbridge error code (docs/protocol.md), or a string for local failures. */
    this.code = code;
    /** The error's `data`, if any. */
    this.data = data;
    /** The SIP status a signalling layer should answer, when the bridge says (e.g. 488). */
    this.sipStatus = data && typeof data.sipStatus === "number" ? data.sipStatus : undefined;
    /** The request method that failed. */
    this.method = method;
  }
}

/** Finds `name` on PATH (or returns it when it is a path already). */
export function resolveBinary(name = "sipbridge") {
  if (name.includes("/") || isAbsolute(name)) return name;
  for (const dir of (process.env.PATH || "").split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, name);
    try {
      accessSync(candidate, fsConstants.X_OK);
      return candidate;
    } catch {
      // next
    }
  }
  return undefined;
}

const STDERR_KEEP = 40; // lines of the child's stderr kept for error messages

/**
 * A running `sipbridge stdio`.
 *
 * Events:
 * - `ready` ({protocol, version}) once the bridge said it is ready;
 * - `session.event` (params) for every session notification;
 * - `notification` (method, params) for any other notification;
 * - `protocolError` (Error) for a line that is not a valid message (it is skipped);
 * - `stderr` (line) for every line of the child's log;
 * - `exit` (BridgeError) once, when the child is gone (pending requests have been rejected).
 */
export class BridgeProcess extends EventEmitter {
  /**
   * @param {object} [options]
   * @param {string} [options.binary] path or name of the binary (default `sipbridge` on PATH, or $SIPBRIDGE_BIN)
   * @param {string[]} [options.args] extra arguments after `stdio` (e.g. `--media-address`)
   * @param {object} [options.env] environment of the child
   * @param {number} [options.requestTimeoutMs] default per-request limit (30000)
   * @param {number} [options.readyTimeoutMs] limit for the `ready` notification (10000)
   */
  constructor(options = {}) {
    super();
    this.options = options;
    this.requestTimeoutMs = options.requestTimeoutMs ?? 30000;
    this._nextId = 1;
    /** @type {Map<number, {resolve: Function, reject: Function, method: string, timer: NodeJS.Timeout}>} */
    this._pending = new Map();
    this._stderrTail = [];
    this._exited = null;
    this._refs = 0;
    this.version = undefined;

    const name = options.binary || process.env.SIPBRIDGE_BIN || "sipbridge";
    const binary = resolveBinary(name);
    this.binary = binary || name;
    this.child = spawn(this.binary, ["stdio", ...(options.args || [])], {
      stdio: ["pipe", "pipe", "pipe"],
      env: options.env || process.env,
    });
    this.pid = this.child.pid;

    let outBuf = "";
    this.child.stdout.setEncoding("utf8");
    this.child.stdout.on("data", (chunk) => {
      outBuf += chunk;
      let nl;
      while ((nl = outBuf.indexOf("\n")) >= 0) {
        const line = outBuf.slice(0, nl);
        outBuf = outBuf.slice(nl + 1);
        this._onLine(line);
      }
    });
    let errBuf = "";
    this.child.stderr.setEncoding("utf8");
    this.child.stderr.on("data", (chunk) => {
      errBuf += chunk;
      let nl;
      while ((nl = errBuf.indexOf("\n")) >= 0) {
        const line = errBuf.slice(0, nl);
        errBuf = errBuf.slice(nl + 1);
        this._stderrTail.push(line);
        if (this._stderrTail.length > STDERR_KEEP) this._stderrTail.shift();
        if (this.listenerCount("stderr") > 0) this.emit("stderr", line);
      }
    });
    // A write to a dead child fails with EPIPE; the exit handler reports it.
    this.child.stdin.on("error", () => {});
    this.child.on("error", (err) => {
      // spawn failure (ENOENT, EACCES): no exit event follows
      const hint = err.code === "ENOENT" ? ` (not found: put sipbridge on PATH or pass the binary option)` : "";
      this._finish(new BridgeError(`cannot start ${this.binary}: ${err.message}${hint}`, { code: "ESPAWN", cause: err }));
    });
    this.child.on("exit", (code, signal) => {
      const how = signal ? `killed by ${signal}` : `exited with status ${code}`;
      const tail = this._stderrTail.slice(-5).join("\n");
      this._finish(
        new BridgeError(`sipbridge (pid ${this.pid}) ${how}${tail ? `; last log lines:\n${tail}` : ""}`, {
          code: "EXITED",
          data: { exitCode: code, signal },
        }),
      );
    });

    const readyTimeoutMs = options.readyTimeoutMs ?? 10000;
    this.ready = new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        cleanup();
        const err = new BridgeError(`sipbridge (pid ${this.pid}) sent no ready line within ${readyTimeoutMs} ms`, { code: "ETIMEDOUT" });
        reject(err);
        this.kill();
      }, readyTimeoutMs);
      const onReady = (p) => {
        cleanup();
        if (p && typeof p.protocol === "number" && p.protocol !== PROTOCOL_VERSION) {
          const err = new BridgeError(`sipbridge speaks protocol ${p.protocol}; this shim speaks ${PROTOCOL_VERSION}`, { code: "EPROTOCOL" });
          reject(err);
          this.kill();
          return;
        }
        this.version = p && p.version;
        resolve(p);
      };
      const onExit = (err) => {
        cleanup();
        reject(err);
      };
      const cleanup = () => {
        clearTimeout(timer);
        this.off("ready", onReady);
        this.off("exit", onExit);
      };
      this.on("ready", onReady);
      this.on("exit", onExit);
    });
    this.ready.catch(() => {}); // reported through requests and `exit`
    this._updateRef();
  }

  /** True once the child has exited (or could not start). */
  get exited() {
    return this._exited !== null;
  }

  /** The error the child ended with, if it has ended. */
  get exitError() {
    return this._exited;
  }

  /** Requests waiting for a reply. */
  get pendingCount() {
    return this._pending.size;
  }

  /** The last lines the child logged (stderr). */
  get stderrTail() {
    return this._stderrTail.slice();
  }

  /**
   * Sends a request and resolves with its `result` (rejects with a BridgeError).
   * @param {string} method
   * @param {object} [params]
   * @param {{timeoutMs?: number}} [opts]
   */
  request(method, params = {}, opts = {}) {
    if (this._exited) return Promise.reject(this._exitedError(method));
    const id = this._nextId++;
    const timeoutMs = opts.timeoutMs ?? this.requestTimeoutMs;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        if (this._pending.delete(id)) {
          this._updateRef();
          reject(new BridgeError(`sipbridge did not answer ${method} within ${timeoutMs} ms`, { code: "ETIMEDOUT", method }));
        }
      }, timeoutMs);
      this._pending.set(id, { resolve, reject, method, timer });
      this._updateRef();
      this._write({ jsonrpc: "2.0", id, method, params });
    });
  }

  /** Sends a notification (no reply expected). */
  notify(method, params = {}) {
    if (!this._exited) this._write({ jsonrpc: "2.0", method, params });
  }

  /**
   * Holds the child referenced (keeps Node's event loop alive) while the
   * caller uses it; `unref` gives it back. With no holders and no pending
   * request the child does not keep the parent alive.
   */
  ref() {
    this._refs++;
    this._updateRef();
  }

  unref() {
    this._refs = Math.max(0, this._refs - 1);
    this._updateRef();
  }

  /**
   * Ends the child: closes its stdin (it closes every session and exits 0),
   * and kills it after `graceMs` if it is still there. Resolves once it exited.
   */
  close(graceMs = 3000) {
    if (this._exited) return Promise.resolve();
    this.ref(); // keep Node alive until the child is gone
    return new Promise((resolve) => {
      const timer = setTimeout(() => this.kill("SIGKILL"), graceMs);
      this.once("exit", () => {
        clearTimeout(timer);
        resolve();
      });
      this.child.stdin.end();
    });
  }

  /** Sends a signal to the child (by PID). */
  kill(signal = "SIGTERM") {
    if (!this._exited) {
      this.ref(); // keep Node alive until the exit is seen
      try {
        this.child.kill(signal);
      } catch {
        // already gone
      }
    }
  }

  _write(msg) {
    try {
      this.child.stdin.write(JSON.stringify(msg) + "\n");
    } catch {
      // the exit handler rejects what is pending
    }
  }

  _exitedError(method) {
    return new BridgeError(`${method} failed: ${this._exited.message}`, {
      code: this._exited.code,
      data: this._exited.data,
      method,
      cause: this._exited,
    });
  }

  _protocolError(message) {
    const err = new BridgeError(`sipbridge protocol error: ${message}`, { code: "EPROTO" });
    if (this.listenerCount("protocolError") > 0) this.emit("protocolError", err);
  }

  _onLine(raw) {
    const line = raw.trim();
    if (!line) return;
    let msg;
    try {
      msg = JSON.parse(line);
    } catch {
      this._protocolError(`not JSON: ${line.slice(0, 200)}`);
      return;
    }
    if (msg === null || typeof msg !== "object" || Array.isArray(msg)) {
      this._protocolError(`not a JSON object: ${line.slice(0, 200)}`);
      return;
    }
    if (msg.id !== undefined && msg.id !== null && msg.method === undefined) {
      const entry = this._pending.get(msg.id);
      if (!entry) {
        this._protocolError(`reply to unknown request id ${JSON.stringify(msg.id)}`);
        return;
      }
      this._pending.delete(msg.id);
      clearTimeout(entry.timer);
      this._updateRef();
      if (msg.error !== undefined) {
        const e = msg.error;
        if (e && typeof e === "object" && typeof e.message === "string") {
          entry.reject(new BridgeError(`${entry.method}: ${e.message}`, { code: e.code, data: e.data, method: entry.method }));
        } else {
          entry.reject(new BridgeError(`${entry.method}: malformed error reply: ${line.slice(0, 200)}`, { code: "EPROTO", method: entry.method }));
        }
      } else if (Object.prototype.hasOwnProperty.call(msg, "result")) {
        entry.resolve(msg.result);
      } else {
        entry.reject(new BridgeError(`${entry.method}: reply has neither result nor error: ${line.slice(0, 200)}`, { code: "EPROTO", method: entry.method }));
      }
      return;
    }
    if (msg.id === null && msg.error) {
      // The bridge could not parse something we sent: no request to fail.
      this._protocolError(`bridge rejected a line: ${msg.error.message || JSON.stringify(msg.error)}`);
      return;
    }
    if (typeof msg.method === "string" && (msg.id === undefined || msg.id === null)) {
      const params = msg.params && typeof msg.params === "object" ? msg.params : {};
      if (msg.method === "ready") this.emit("ready", params);
      else if (msg.method === "session.event") {
        if (typeof params.session !== "string" || typeof params.type !== "string") {
          this._protocolError(`session.event without session/type: ${line.slice(0, 200)}`);
          return;
        }
        this.emit("session.event", params);
      } else this.emit("notification", msg.method, params);
      return;
    }
    this._protocolError(`unexpected message: ${line.slice(0, 200)}`);
  }

  _finish(err) {
    if (this._exited) return;
    this._exited = err;
    const pending = [...this._pending.values()];
    this._pending.clear();
    for (const entry of pending) {
      clearTimeout(entry.timer);
      entry.reject(this._exitedError(entry.method));
    }
    this.emit("exit", err);
    this.child.stdout.removeAllListeners("data");
    this.child.stderr.removeAllListeners("data");
  }

  _updateRef() {
    if (this._exited) return;
    const want = this._refs > 0 || this._pending.size > 0;
    if (want === this._isRefd) return;
    this._isRefd = want;
    const fn = want ? "ref" : "unref";
    this.child[fn]();
    for (const s of [this.child.stdin, this.child.stdout, this.child.stderr]) {
      if (s && typeof s[fn] === "function") s[fn]();
    }
  }
}
