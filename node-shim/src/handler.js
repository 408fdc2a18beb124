// SIP.js SessionDescriptionHandler backed by one `sipbridge stdio` session.

import { EventEmitter } from "node:events";
import { BridgeError } from "./bridge-process.js";

const CONTENT_TYPE = "application/sdp";
const DTMF_RE = /^[0-9A-D#*]{1,64}$/;

/** Rewrites every direction attribute in `sdp` (adds one per m-line when missing). */
export function setDirection(sdp, direction) {
  const eol = sdp.includes("\r\n") ? "\r\n" : "\n";
  if (/^a=(sendrecv|sendonly|recvonly|inactive)\s*$/m.test(sdp)) {
    return sdp.replace(/^a=(sendrecv|sendonly|recvonly|inactive)(\r?)$/gm, `a=${direction}$2`);
  }
  return sdp.replace(/^(m=[^\r\n]*)(\r?\n)/gm, `$1$2a=${direction}${eol}`);
}

/** The direction of the first audio section (`sendrecv` when none is given). */
export function getDirection(sdp) {
  const m = /^a=(sendrecv|sendonly|recvonly|inactive)\s*$/m.exec(sdp || "");
  if (m) return m[1];
  if (/^c=IN IP4 0\.0\.0\.0\s*$/m.test(sdp || "")) return "inactive";
  return "sendrecv";
}

function holdOffer(current, hold) {
  // Same table as SIP.js's web handler: what to offer given what we have and the hold wish.
  switch (current) {
    case "recvonly":
    case "inactive":
      return hold ? "inactive" : "recvonly";
    default:
      return hold ? "sendonly" : "sendrecv";
  }
}

function holdAnswer(offered, hold) {
  switch (offered) {
    case "sendonly":
    case "inactive":
      return hold ? "inactive" : "recvonly";
    case "recvonly":
      return hold ? "inactive" : "sendonly";
    default:
      return hold ? "sendonly" : "sendrecv";
  }
}

async function applyModifiers(description, modifiers) {
  let d = description;
  for (const modifier of modifiers || []) {
    d = await modifier(d);
    if (!d || typeof d.sdp !== "string") throw new Error("a SessionDescriptionHandler modifier returned no SDP");
  }
  return d;
}

/**
 * One call's media in the bridge. Created by the factory; SIP.js calls the
 * SessionDescriptionHandler methods, the application the media ones.
 *
 * Events: `dtmf` (tone), `connectionstatechange` (state), `icecandidate`
 * ({candidate, sdpMLineIndex}), `playended` (params), `mediatimeout`
 * ({silentMs, held}: the peer sent nothing for `rtpTimeoutMs`),
 * `mediaresumed`, `closed` (reason),
 * `error` (Error; only emitted when someone listens), `event` (raw params of
 * every session event).
 */
export class SipBridgeSessionDescriptionHandler extends EventEmitter {
  /**
   * @param {import("./bridge-process.js").BridgeProcess} bridge
   * @param {object} options see index.d.ts (SipBridgeHandlerOptions)
   * @param {{session?: any, onClose?: Function}} [hooks]
   */
  constructor(bridge, options = {}, hooks = {}) {
    super();
    this.bridge = bridge;
    this.options = options;
    this.kind = options.kind || "rtp";
    /** The SIP.js session this media belongs to, if created by SIP.js. */
    this.session = hooks.session;
    this._onClose = hooks.onClose;
    /** The bridge's session id (`s1`, ...) once created. */
    this.id = undefined;
    /** `stable`, `have-local-offer` or `have-remote-offer`. */
    this.signalingState = "stable";
    this.localDescription = undefined;
    this.remoteDescription = undefined;
    this._lastRemoteSdp = undefined;
    this._closed = false;
    this._closeReason = undefined;
    this._held = false;
    /** The last `connectionstatechange` state the bridge reported (`new` until then). */
    this.connectionState = "new";

    const params = { kind: this.kind };
    for (const k of ["codecs", "latencyMs", "mediaAddresses", "opusBitrate", "opusComplexity", "ptime", "rtpTimeoutMs", "symmetricRtp"]) {
      if (options[k] !== undefined) params[k] = options[k];
    }
    this._created = bridge.request("session.create", params).then((r) => {
      if (!r || typeof r.session !== "string") throw new BridgeError(`session.create: reply has no session id: ${JSON.stringify(r)}`, { code: "EPROTO" });
      this.id = r.session;
      if (this._closed) {
        // closed while being created: free it in the bridge too
        bridge.request("session.close", { session: r.session, reason: this._closeReason || "closed" }).catch(() => {});
        throw this._closedError("session.create");
      }
      hooks.register?.(this);
      return r.session;
    });
    this._created.catch(() => {});
  }

  /** Resolves with the bridge session id once `session.create` succeeded. */
  ready() {
    return this._created;
  }

  /** True once closed (by SIP.js, the app, the bridge, or the child dying). */
  get closed() {
    return this._closed;
  }

  /** True while we have put the peer on hold (our last offer/answer said sendonly/inactive). */
  get held() {
    return this._held;
  }

  _closedError(method) {
    return new BridgeError(`${method}: the media session is closed${this._closeReason ? ` (${this._closeReason})` : ""}`, { code: 1008, method });
  }

  async _call(method, params = {}, opts) {
    if (this._closed) throw this._closedError(method);
    const session = await this._created;
    if (this._closed) throw this._closedError(method);
    return this.bridge.request(method, { session, ...params }, opts);
  }

  // ---- SessionDescriptionHandler ----

  /**
   * Our offer (when no remote offer is pending) or answer, SDP complete.
   * `options.hold` (SIP.js's hold through sessionDescriptionHandlerOptions)
   * marks it sendonly/inactive; `modifiers` run on it before it is returned.
   */
  async getDescription(options, modifiers) {
    const d = await this._call("session.getLocalDescription");
    if (!d || typeof d.sdp !== "string" || (d.type !== "offer" && d.type !== "answer")) {
      throw new BridgeError(`session.getLocalDescription: malformed reply ${JSON.stringify(d)}`, { code: "EPROTO" });
    }
    let sdp = d.sdp;
    const hold = !!(options && options.hold);
    if (d.type === "offer") {
      const want = holdOffer(getDirection(sdp), hold);
      if (want !== getDirection(sdp)) sdp = setDirection(sdp, want);
    } else {
      const offered = getDirection(this.remoteDescription && this.remoteDescription.sdp);
      const want = holdAnswer(offered, hold);
      if (want !== getDirection(sdp)) sdp = setDirection(sdp, want);
    }
    this._held = hold;
    const described = await applyModifiers({ type: d.type, sdp }, modifiers);
    if (this._closed) throw this._closedError("getDescription");
    this.localDescription = described;
    this.signalingState = d.type === "offer" ? "have-local-offer" : "stable";
    return { body: described.sdp, contentType: CONTENT_TYPE };
  }

  /** Sets the peer's offer, or its answer when we have an offer out. */
  async setDescription(sdp, options, modifiers) {
    if (typeof sdp !== "string" || !sdp.trim()) throw new BridgeError("setDescription: empty SDP", { code: 1001, data: { sipStatus: 400 } });
    const type = this.signalingState === "have-local-offer" ? "answer" : "offer";
    const d = await applyModifiers({ type, sdp }, modifiers);
    await this._call("session.setRemoteDescription", { type, sdp: d.sdp });
    this.remoteDescription = d;
    this._lastRemoteSdp = d.sdp;
    this.signalingState = type === "offer" ? "have-remote-offer" : "stable";
  }

  hasDescription(contentType) {
    return typeof contentType === "string" && contentType.split(";")[0].trim().toLowerCase() === CONTENT_TYPE;
  }

  /**
   * Back to the last stable state after a failed re-INVITE. The bridge has
   * no rollback: a local offer is settled by giving it the peer's last SDP
   * as the answer (the media stays as it was); a remote offer the bridge
   * refused left nothing to undo.
   */
  async rollbackDescription() {
    if (this._closed) return;
    const state = this.signalingState;
    this.signalingState = "stable";
    if (state === "have-local-offer" && this._lastRemoteSdp) {
      await this._call("session.setRemoteDescription", { type: "answer", sdp: this._lastRemoteSdp });
    }
  }

  /**
   * Sends RFC 4733 DTMF. Returns false at once for bad tones or a closed
   * session; a failure in the bridge is emitted as `error`.
   * @param {string} tones
   * @param {{duration?: number}} [options]
   */
  sendDtmf(tones, options) {
    if (this._closed || typeof tones !== "string" || !DTMF_RE.test(tones.toUpperCase())) return false;
    this.sendDtmfAsync(tones, options).catch((err) => {
      if (this.listenerCount("error") > 0) this.emit("error", err);
    });
    return true;
  }

  /** Like sendDtmf, resolving once the last tone went out. */
  sendDtmfAsync(tones, options = {}) {
    const params = { tones: String(tones).toUpperCase() };
    const duration = options.duration;
    if (duration !== undefined) params.duration = Math.max(40, Math.min(2000, Math.round(duration)));
    const per = (params.duration || 100) + 100;
    return this._call("session.sendDtmf", params, { timeoutMs: this.bridge.requestTimeoutMs + per * params.tones.length }).then(() => {});
  }

  /** Ends the media session (SIP.js calls this when the call ends). */
  close(reason = "closed") {
    if (this._closed) return;
    this._markClosed(reason);
    if (this.id !== undefined) this.bridge.request("session.close", { session: this.id, reason }).catch(() => {});
    // else: _created closes it when the create reply comes
  }

  _markClosed(reason) {
    if (this._closed) return;
    this._closed = true;
    this._closeReason = reason;
    this._onClose?.(this, reason);
    this.emit("closed", reason);
  }

  /** Called by the factory with this session's events from the bridge. */
  _onEvent(params) {
    switch (params.type) {
      case "dtmf":
        this.emit("dtmf", params.tone);
        break;
      case "connectionstatechange":
        this.connectionState = params.state;
        this.emit("connectionstatechange", params.state);
        break;
      case "icecandidate":
        this.emit("icecandidate", { candidate: params.candidate, sdpMLineIndex: params.sdpMLineIndex });
        break;
      case "playended":
        this.emit("playended", params);
        break;
      case "mediatimeout":
        this.emit("mediatimeout", { silentMs: params.silentMs, held: params.held });
        break;
      case "mediaresumed":
        this.emit("mediaresumed");
        break;
      case "closed":
        this._markClosed(params.reason || "closed by the bridge");
        break;
      default:
        break;
    }
    this.emit("event", params);
  }

  // ---- media for the application ----

  /** Plays an audio file to the peer (`loop` repeats it); `playended` fires at its end. */
  async play(file, options = {}) {
    const params = { file };
    if (options.loop !== undefined) params.loop = !!options.loop;
    await this._call("session.play", params);
  }

  /** Plays a file and resolves when it has ended (`playended`). */
  async playToEnd(file, options = {}) {
    let cleanup;
    const ended = new Promise((resolve, reject) => {
      const onEnd = (p) => { cleanup(); resolve(p); };
      const onClose = () => { cleanup(); reject(this._closedError(`play ${file}`)); };
      cleanup = () => { this.off("playended", onEnd); this.off("closed", onClose); };
      this.on("playended", onEnd);
      this.on("closed", onClose);
    });
    try {
      await this.play(file, options);
    } catch (err) {
      cleanup();
      ended.catch(() => {});
      throw err;
    }
    return ended;
  }

  async stopPlay() {
    await this._call("session.stopPlay");
  }

  /** Records what the peer sends to `file` (.wav or .ogg). */
  async record(file) {
    await this._call("session.record", { file });
  }

  /** Stops recording; resolves with the file written. */
  async stopRecord() {
    const r = await this._call("session.stopRecord");
    return r && r.file;
  }

  /**
   * Joins a mixing room (each member hears everyone but itself); rooms live
   * in this handler's bridge process. `rate` (Hz) applies to a room this
   * call creates. Resolves with `{room, participants}`.
   */
  async joinRoom(room, options = {}) {
    const params = { room };
    if (options.rate !== undefined) params.rate = options.rate;
    return this._call("room.join", params);
  }

  async leaveRoom(room) {
    await this._call("room.leave", { room });
  }

  async muteInRoom(room, muted = true) {
    await this._call("room.mute", { room, muted: !!muted });
  }

  /**
   * Bridges this call's audio with another handler's (both ways): a B2BUA
   * in a few lines. Both must live in the same bridge process.
   * Resolves with `{passthrough}`.
   */
  async connect(other) {
    if (!(other instanceof SipBridgeSessionDescriptionHandler)) throw new TypeError("connect() takes another SipBridgeSessionDescriptionHandler");
    if (other.bridge !== this.bridge) {
      throw new BridgeError("connect: the two handlers live in different sipbridge processes; use one shared process (the default) for calls you bridge", { code: "EPROCESS" });
    }
    const [a, b] = await Promise.all([this.ready(), other.ready()]);
    if (this._closed) throw this._closedError("session.connect");
    if (other._closed) throw other._closedError("session.connect");
    return this.bridge.request("session.connect", { a, b });
  }

  async disconnect(other) {
    const [a, b] = await Promise.all([this.ready(), other.ready()]);
    await this.bridge.request("session.disconnect", { a, b });
  }
}
