// sipbridge-sipjs: a SIP.js 0.21 SessionDescriptionHandlerFactory whose
// handlers get their media from `sipbridge stdio` child processes.

import { BridgeProcess, BridgeError, PROTOCOL_VERSION, resolveBinary } from "./bridge-process.js";
import { SipBridgeSessionDescriptionHandler, getDirection, setDirection } from "./handler.js";

export { BridgeProcess, BridgeError, PROTOCOL_VERSION, resolveBinary, SipBridgeSessionDescriptionHandler, getDirection, setDirection };

const HANDLER_KEYS = ["kind", "codecs", "latencyMs", "mediaAddresses", "opusBitrate", "opusComplexity", "ptime", "rtpTimeoutMs", "symmetricRtp"];
const NO_UA = Symbol("no user agent");

/** Ends a SIP.js session whatever state it is in (BYE, CANCEL or a 500), without throwing. */
export function endSipSession(session, statusCode = 500) {
  if (!session) return;
  try {
    switch (session.state) {
      case "Established":
        Promise.resolve(session.bye()).catch(() => {});
        break;
      case "Initial":
      case "Establishing":
        if (typeof session.cancel === "function") Promise.resolve(session.cancel()).catch(() => {});
        else if (typeof session.reject === "function") Promise.resolve(session.reject({ statusCode })).catch(() => {});
        break;
      default:
        break;
    }
  } catch {
    // the session is already on its way out
  }
}

/**
 * Creates a SessionDescriptionHandlerFactory for SIP.js:
 *
 *     const factory = createSessionDescriptionHandlerFactory({ kind: "rtp" });
 *     const ua = new UserAgent({ ..., sessionDescriptionHandlerFactory: factory });
 *
 * By default every UserAgent using the factory gets one `sipbridge stdio`
 * child shared by all its sessions, started with its first session and
 * again after it died, and ended when the UserAgent stops (after its last
 * call). `process: "per-session"` gives each session its own.
 *
 * @param {import("./index.d.ts").SipBridgeFactoryOptions} [options]
 */
export function createSessionDescriptionHandlerFactory(options = {}) {
  const perSession = options.process === "per-session";
  const endOnFailure = options.endSessionOnMediaFailure !== false;
  const endOnTimeout = options.endSessionOnMediaTimeout !== false;
  /** @type {Map<any, Entry>} shared processes by UserAgent (or NO_UA) */
  const shared = new Map();
  /** @type {Set<Entry>} every live process entry */
  const entries = new Set();

  /**
   * @typedef {{bridge: BridgeProcess, handlers: Set<SipBridgeSessionDescriptionHandler>, byId: Map<string, SipBridgeSessionDescriptionHandler>, key: any, perSession: boolean}} Entry
   */

  function startEntry(key, isPerSession) {
    const bridge = new BridgeProcess({
      binary: options.binary,
      args: options.args,
      env: options.env,
      requestTimeoutMs: options.requestTimeoutMs,
      readyTimeoutMs: options.readyTimeoutMs,
    });
    /** @type {Entry} */
    const entry = { bridge, handlers: new Set(), byId: new Map(), key, perSession: isPerSession, uaStopped: false };
    entries.add(entry);
    if (!isPerSession) shared.set(key, entry);
    bridge.on("session.event", (params) => {
      const h = entry.byId.get(params.session);
      if (h) h._onEvent(params);
    });
    if (options.onStderr) bridge.on("stderr", (line) => options.onStderr(line, bridge));
    if (options.onProtocolError) bridge.on("protocolError", (err) => options.onProtocolError(err, bridge));
    // A stopped UserAgent needs its child no more: end it with its last call.
    const ua = key !== NO_UA ? key : undefined;
    const onUaState = (state) => {
      if (state !== "Stopped") return;
      entry.uaStopped = true;
      if (entry.handlers.size === 0) bridge.close();
    };
    if (!isPerSession && ua && ua.stateChange && typeof ua.stateChange.addListener === "function") ua.stateChange.addListener(onUaState);
    bridge.once("exit", (err) => {
      if (ua && ua.stateChange && typeof ua.stateChange.removeListener === "function") ua.stateChange.removeListener(onUaState);
      entries.delete(entry);
      if (shared.get(key) === entry) shared.delete(key);
      for (const h of [...entry.handlers]) h._markClosed(`media engine gone: ${err.message}`);
      entry.handlers.clear();
      entry.byId.clear();
      bridge.removeAllListeners("session.event");
      bridge.removeAllListeners("stderr");
      bridge.removeAllListeners("protocolError");
      options.onProcessExit?.(err, bridge);
    });
    options.onProcessStart?.(bridge);
    return entry;
  }

  function entryFor(userAgent) {
    const key = userAgent || NO_UA;
    if (perSession) return startEntry(key, true);
    const existing = shared.get(key);
    if (existing && !existing.bridge.exited) return existing;
    return startEntry(key, false);
  }

  function makeHandler(session, handlerOptions) {
    const entry = entryFor(session && session.userAgent);
    const merged = { ...pick(options), ...pick(handlerOptions || {}) };
    const handler = new SipBridgeSessionDescriptionHandler(entry.bridge, merged, {
      session,
      register: (h) => {
        if (!h.closed) entry.byId.set(h.id, h);
      },
      onClose: (h) => {
        entry.handlers.delete(h);
        if (h.id !== undefined) entry.byId.delete(h.id);
        entry.bridge.unref();
        if (endOnFailure) endSipSession(session);
        if (entry.perSession || (entry.uaStopped && entry.handlers.size === 0)) {
          // its own process, or its UserAgent has stopped: end it once the close request went out
          setImmediate(() => entry.bridge.close());
        }
      },
    });
    // A peer gone without BYE (no media for rtpTimeoutMs): hang up, unless
    // we hold the call ourselves (our SDP said sendonly/inactive, so the
    // peer may rightly send nothing).
    if (endOnTimeout && session) {
      handler.on("mediatimeout", () => {
        if (!handler.held) endSipSession(session);
      });
    }
    entry.handlers.add(handler);
    entry.bridge.ref();
    return handler;
  }

  /** The factory SIP.js calls: (session, factoryOptions) => handler. */
  const factory = (session, factoryOptions) => makeHandler(session, factoryOptions);

  /** A handler not tied to a SIP.js session (e.g. a media leg you negotiate yourself). */
  factory.createHandler = (handlerOptions, userAgent) => makeHandler(userAgent ? { userAgent } : undefined, handlerOptions);

  /** The shared process of a UserAgent (started if needed). */
  factory.getProcess = (userAgent) => {
    if (perSession) throw new Error('process: "per-session" has no shared process; use handler.bridge');
    return entryFor(userAgent).bridge;
  };

  /** Every live child process. */
  Object.defineProperty(factory, "processes", { get: () => [...entries].map((e) => e.bridge) });

  /** Live handlers across all processes. */
  Object.defineProperty(factory, "handlerCount", { get: () => [...entries].reduce((n, e) => n + e.handlers.size, 0) });

  /** Records a room's mix to `file` (.wav/.ogg) in a UserAgent's shared process. */
  factory.recordRoom = (room, file, userAgent) => factory.getProcess(userAgent).request("room.record", { room, file });

  /** Stops a room recording; resolves with the bridge's result. */
  factory.stopRecordingRoom = (room, userAgent) => factory.getProcess(userAgent).request("room.stopRecord", { room });

  /** The rooms of a UserAgent's shared process: `{rooms: [{room, sessions}]}`. */
  factory.listRooms = (userAgent) => factory.getProcess(userAgent).request("room.list", {});

  /** Ends every child (their sessions close; SIP.js sessions get BYE). */
  factory.close = async () => {
    await Promise.all([...entries].map((e) => e.bridge.close()));
  };

  return factory;
}

function pick(o) {
  const out = {};
  for (const k of HANDLER_KEYS) if (o[k] !== undefined) out[k] = o[k];
  return out;
}

export default createSessionDescriptionHandlerFactory;
