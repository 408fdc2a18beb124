// Types for sipbridge-sipjs (hand-written; the package ships plain ES modules).

import { EventEmitter } from "node:events";
import type {
  BodyAndContentType,
  Session,
  SessionDescriptionHandler,
  SessionDescriptionHandlerFactory,
  SessionDescriptionHandlerModifier,
  SessionDescriptionHandlerOptions,
  UserAgent,
} from "sip.js";

/** The control protocol version this shim speaks (docs/protocol.md). */
export const PROTOCOL_VERSION: 1;

export type MediaKind = "rtp" | "webrtc";
export type Codec = "OPUS" | "G722" | "PCMU" | "PCMA";

/** Options of one media session (`session.create` params). */
export interface SipBridgeHandlerOptions {
  /** `rtp` (plain RTP/AVP: SIP trunks and phones; the default) or `webrtc` (ICE, DTLS-SRTP). */
  kind?: MediaKind;
  /** Codecs accepted, in order of preference for offers. Default: all. */
  codecs?: Codec[];
  /** Jitter-buffer size in ms (bridge default 40). */
  latencyMs?: number;
  /** Addresses RTP is received on / ICE gathers on. */
  mediaAddresses?: string[];
  opusBitrate?: number;
  /** 0-10. */
  opusComplexity?: number;
  /** Packet time asked for in RTP offers, ms. */
  ptime?: number;
  /** No RTP from the peer for this long (ms, bridge default 10000; on hold RTCP counts, at least 20 s) gives `mediatimeout`. 0: never. */
  rtpTimeoutMs?: number;
  symmetricRtp?: "auto" | "always" | "never";
}

export interface BridgeProcessOptions {
  /** Path or name of the binary; default $SIPBRIDGE_BIN, else `sipbridge` on PATH. */
  binary?: string;
  /** Extra arguments after `stdio`, e.g. `["--media-address", "192.0.2.10"]`. */
  args?: string[];
  /** Environment of the child (default: this process's). */
  env?: NodeJS.ProcessEnv;
  /** Default limit per request, ms (30000). */
  requestTimeoutMs?: number;
  /** Limit for the child's `ready` line, ms (10000). */
  readyTimeoutMs?: number;
}

export interface SipBridgeFactoryOptions extends SipBridgeHandlerOptions, BridgeProcessOptions {
  /** `shared` (default): one child per UserAgent for all its sessions; `per-session`: one child per session. */
  process?: "shared" | "per-session";
  /**
   * End the SIP.js session (BYE, CANCEL or a 500) when its media ends
   * without SIP.js asking: the child died, the bridge closed the session,
   * the app called `close()`. Default true.
   */
  endSessionOnMediaFailure?: boolean;
  /**
   * End the SIP.js session (BYE) when the bridge reports `mediatimeout`:
   * the peer sent no media for `rtpTimeoutMs` (gone without BYE). Not while
   * we hold the call ourselves. Default true.
   */
  endSessionOnMediaTimeout?: boolean;
  /** Every line the child logs (stderr). */
  onStderr?(line: string, bridge: BridgeProcess): void;
  /** A line from the child that is not a valid protocol message (it was skipped). */
  onProtocolError?(error: BridgeError, bridge: BridgeProcess): void;
  onProcessStart?(bridge: BridgeProcess): void;
  onProcessExit?(error: BridgeError, bridge: BridgeProcess): void;
}

/** An error from the bridge (JSON-RPC error) or about the child process. */
export class BridgeError extends Error {
  /** sipbridge error code (-32700..-32603, 1000-1009) or a local one: `EXITED`, `ESPAWN`, `ETIMEDOUT`, `EPROTO`, `EPROTOCOL`, `EPROCESS`. */
  code: number | string | undefined;
  data: unknown;
  /** SIP response a signalling layer should send (488, 400), when the bridge says. */
  sipStatus: number | undefined;
  method: string | undefined;
}

/**
 * The methods of `sipbridge stdio` (docs/protocol.md). The bridge's unit
 * tests check this list against its own request enum.
 */
export type BridgeMethod =
  | "protocol.version"
  | "session.create"
  | "session.getLocalDescription"
  | "session.setRemoteDescription"
  | "session.addIceCandidate"
  | "session.connect"
  | "session.disconnect"
  | "session.sendDtmf"
  | "session.close"
  | "session.play"
  | "session.stopPlay"
  | "session.record"
  | "session.stopRecord"
  | "session.list"
  | "session.getStats"
  | "room.join"
  | "room.leave"
  | "room.mute"
  | "room.record"
  | "room.stopRecord"
  | "room.list";

/** One `sipbridge stdio` child; requests matched to replies by id. */
export class BridgeProcess extends EventEmitter {
  constructor(options?: BridgeProcessOptions);
  readonly pid: number | undefined;
  readonly binary: string;
  /** Resolves with `{protocol, version}` once the child is ready. */
  readonly ready: Promise<{ protocol: number; version: string }>;
  readonly version: string | undefined;
  readonly exited: boolean;
  readonly exitError: BridgeError | null;
  readonly pendingCount: number;
  readonly stderrTail: string[];
  readonly requestTimeoutMs: number;
  request<T = any>(method: BridgeMethod, params?: object, options?: { timeoutMs?: number }): Promise<T>;
  notify(method: string, params?: object): void;
  ref(): void;
  unref(): void;
  /** Closes stdin (every session closes, the child exits 0); SIGKILL after `graceMs`. */
  close(graceMs?: number): Promise<void>;
  kill(signal?: NodeJS.Signals): void;

  on(event: "ready", listener: (params: { protocol: number; version: string }) => void): this;
  on(event: "session.event", listener: (params: { session: string; type: string; [k: string]: unknown }) => void): this;
  on(event: "notification", listener: (method: string, params: object) => void): this;
  on(event: "protocolError", listener: (error: BridgeError) => void): this;
  on(event: "stderr", listener: (line: string) => void): this;
  on(event: "exit", listener: (error: BridgeError) => void): this;
  on(event: string | symbol, listener: (...args: any[]) => void): this;
}

/** A SIP.js SessionDescriptionHandler whose media is a sipbridge session. */
export class SipBridgeSessionDescriptionHandler extends EventEmitter implements SessionDescriptionHandler {
  constructor(bridge: BridgeProcess, options?: SipBridgeHandlerOptions, hooks?: object);
  readonly bridge: BridgeProcess;
  readonly kind: MediaKind;
  /** The SIP.js session, when SIP.js created this handler. */
  readonly session: Session | undefined;
  /** The bridge's session id once created. */
  readonly id: string | undefined;
  readonly signalingState: "stable" | "have-local-offer" | "have-remote-offer";
  readonly localDescription: { type: "offer" | "answer"; sdp: string } | undefined;
  readonly remoteDescription: { type: "offer" | "answer"; sdp: string } | undefined;
  readonly closed: boolean;
  /** The last connection state the bridge reported (`new` until then). */
  readonly connectionState: "new" | "connecting" | "connected" | "disconnected" | "failed" | "closed";
  /** True while our last offer/answer put the peer on hold. */
  readonly held: boolean;
  /** Resolves with the bridge session id. */
  ready(): Promise<string>;

  // SessionDescriptionHandler
  getDescription(options?: SessionDescriptionHandlerOptions & { hold?: boolean }, modifiers?: SessionDescriptionHandlerModifier[]): Promise<BodyAndContentType>;
  setDescription(sdp: string, options?: SessionDescriptionHandlerOptions, modifiers?: SessionDescriptionHandlerModifier[]): Promise<void>;
  hasDescription(contentType: string): boolean;
  rollbackDescription(): Promise<void>;
  sendDtmf(tones: string, options?: { duration?: number }): boolean;
  close(reason?: string): void;

  /** Like sendDtmf; resolves when the last tone went out. */
  sendDtmfAsync(tones: string, options?: { duration?: number }): Promise<void>;
  /** Plays a file to the peer; `playended` fires at its end unless looped. */
  play(file: string, options?: { loop?: boolean }): Promise<void>;
  /** Plays a file and resolves at its end. */
  playToEnd(file: string, options?: { loop?: boolean }): Promise<object>;
  stopPlay(): Promise<void>;
  /** Records what the peer sends (.wav or .ogg/.opus). */
  record(file: string): Promise<void>;
  /** Resolves with the file written. */
  stopRecord(): Promise<string>;
  joinRoom(room: string, options?: { rate?: number }): Promise<{ room: string; participants: number }>;
  leaveRoom(room: string): Promise<void>;
  muteInRoom(room: string, muted?: boolean): Promise<void>;
  /** Audio both ways with another handler of the same process. */
  connect(other: SipBridgeSessionDescriptionHandler): Promise<{ passthrough: boolean }>;
  disconnect(other: SipBridgeSessionDescriptionHandler): Promise<void>;

  on(event: "dtmf", listener: (tone: string) => void): this;
  on(event: "connectionstatechange", listener: (state: "new" | "connecting" | "connected" | "disconnected" | "failed" | "closed") => void): this;
  on(event: "icecandidate", listener: (c: { candidate: string; sdpMLineIndex: number }) => void): this;
  on(event: "playended", listener: (params: object) => void): this;
  on(event: "mediatimeout", listener: (params: { silentMs: number; held: boolean }) => void): this;
  on(event: "mediaresumed", listener: () => void): this;
  on(event: "closed", listener: (reason: string) => void): this;
  on(event: "error", listener: (error: Error) => void): this;
  on(event: "event", listener: (params: { session: string; type: string; [k: string]: unknown }) => void): this;
  on(event: string | symbol, listener: (...args: any[]) => void): this;
}

export interface SipBridgeSessionDescriptionHandlerFactory extends SessionDescriptionHandlerFactory {
  (session: Session, options?: SipBridgeHandlerOptions): SipBridgeSessionDescriptionHandler;
  /** A handler not tied to a SIP.js session. */
  createHandler(options?: SipBridgeHandlerOptions, userAgent?: UserAgent): SipBridgeSessionDescriptionHandler;
  /** The shared child of a UserAgent (started if needed). */
  getProcess(userAgent?: UserAgent): BridgeProcess;
  readonly processes: BridgeProcess[];
  readonly handlerCount: number;
  recordRoom(room: string, file: string, userAgent?: UserAgent): Promise<object>;
  stopRecordingRoom(room: string, userAgent?: UserAgent): Promise<{ file: string }>;
  listRooms(userAgent?: UserAgent): Promise<{ rooms: { room: string; sessions: string[] }[] }>;
  /** Ends every child. */
  close(): Promise<void>;
}

export function createSessionDescriptionHandlerFactory(options?: SipBridgeFactoryOptions): SipBridgeSessionDescriptionHandlerFactory;
export default createSessionDescriptionHandlerFactory;

/** Ends a SIP.js session in whatever state (BYE, CANCEL, or reject with `statusCode`). */
export function endSipSession(session: Session | undefined, statusCode?: number): void;
/** Finds a binary on PATH. */
export function resolveBinary(name?: string): string | undefined;
/** The direction of the first media section (`sendrecv` if none). */
export function getDirection(sdp: string | undefined): "sendrecv" | "sendonly" | "recvonly" | "inactive";
/** Rewrites (or adds) the direction attributes. */
export function setDirection(sdp: string, direction: "sendrecv" | "sendonly" | "recvonly" | "inactive"): string;
