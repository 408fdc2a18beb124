#!/usr/bin/env node
// A stand-in for `sipbridge stdio` in unit tests: speaks the protocol of
// docs/protocol.md with canned SDP, and misbehaves on request. Behaviour
// comes from FAKE_MODE, a comma-separated list:
//   delays        reply after a delay that varies per request (out of order)
//   malformed     write garbage lines (bad JSON, arrays, unknown ids, bad events) around replies
//   die:METHOD    exit with status 3 when METHOD arrives (no reply)
//   noready       never say ready
//   protocol:N    announce protocol N
// Besides the protocol methods it answers `test.log` (requests seen),
// `test.emit` (sends params.event as a session.event), `test.noResult`
// (reply with neither result nor error) and `test.badError` (error without message).
// The `stdio` argument is accepted and ignored, like the real binary's.

import { createInterface } from "node:readline";

const modes = (process.env.FAKE_MODE || "").split(",").filter(Boolean);
const has = (m) => modes.includes(m);
const dieOn = modes.filter((m) => m.startsWith("die:")).map((m) => m.slice(4));
const protocol = Number((modes.find((m) => m.startsWith("protocol:")) || "protocol:1").slice(9));

const out = (msg) => process.stdout.write(JSON.stringify(msg) + "\n");
const event = (params) => out({ jsonrpc: "2.0", method: "session.event", params });
const sessions = new Map(); // id -> {pendingRemoteOffer, remote}
const log = [];
let next = 1;
let count = 0;

if (!has("noready")) out({ jsonrpc: "2.0", method: "ready", params: { protocol, version: "0.0.0-fake" } });
process.stderr.write(`fake-bridge: started pid ${process.pid} modes ${modes.join(",")}\n`);

function sdp(id, type, direction = "sendrecv") {
  return [
    "v=0",
    `o=fake ${id.slice(1)} 1 IN IP4 127.0.0.1`,
    `s=${id}-${type}`,
    "c=IN IP4 127.0.0.1",
    "t=0 0",
    "m=audio 40000 RTP/AVP 0 101",
    "a=rtpmap:0 PCMU/8000",
    "a=rtpmap:101 telephone-event/8000",
    `a=${direction}`,
    "",
  ].join("\r\n");
}

function answerDirection(offer) {
  const m = /a=(sendrecv|sendonly|recvonly|inactive)/.exec(offer || "");
  return { sendonly: "recvonly", recvonly: "sendonly", inactive: "inactive" }[m ? m[1] : "sendrecv"] || "sendrecv";
}

function handle(method, p) {
  const need = () => {
    const s = sessions.get(p.session);
    if (!s) throw { code: 1000, message: `no session ${JSON.stringify(p.session)}` };
    return s;
  };
  switch (method) {
    case "session.create": {
      if (p.kind !== "rtp" && p.kind !== "webrtc") throw { code: -32602, message: "invalid params: kind" };
      const id = `s${next++}`;
      sessions.set(id, { pendingRemoteOffer: null, params: p });
      return { session: id };
    }
    case "session.getLocalDescription": {
      const s = need();
      if (s.pendingRemoteOffer !== null) {
        const d = answerDirection(s.pendingRemoteOffer);
        s.pendingRemoteOffer = null;
        return { type: "answer", sdp: sdp(p.session, "answer", d) };
      }
      s.offered = true;
      return { type: "offer", sdp: sdp(p.session, "offer") };
    }
    case "session.setRemoteDescription": {
      const s = need();
      if (!String(p.sdp).startsWith("v=0")) throw { code: 1001, message: "invalid SDP: no v= line", data: { sipStatus: 400 } };
      if (p.type === "offer") s.pendingRemoteOffer = p.sdp;
      else s.offered = false;
      s.remote = p.sdp;
      return {};
    }
    case "session.sendDtmf":
      need();
      return {};
    case "session.close": {
      need();
      sessions.delete(p.session);
      setImmediate(() => event({ session: p.session, type: "closed", reason: p.reason || "closed by request" }));
      return {};
    }
    case "session.connect":
      if (!sessions.has(p.a) || !sessions.has(p.b)) throw { code: 1000, message: "no such session" };
      return { passthrough: true };
    case "session.disconnect":
      return {};
    case "session.play":
      need();
      setTimeout(() => event({ session: p.session, type: "playended", file: p.file }), 30);
      return {};
    case "session.stopPlay":
    case "session.record":
      need();
      return {};
    case "session.stopRecord":
      need();
      return { file: "/tmp/fake.wav" };
    case "room.join":
      return { room: p.room, participants: 1 };
    case "room.leave":
    case "room.mute":
    case "room.record":
    case "room.stopRecord":
      return {};
    case "session.list":
      return { sessions: [...sessions.keys()] };
    case "test.log":
      return { log };
    case "test.emit":
      setImmediate(() => event(p.event));
      return {};
    default:
      throw { code: -32601, message: `unknown method ${JSON.stringify(method)}` };
  }
}

function garbage() {
  process.stdout.write("this is not json\n");
  process.stdout.write("[1,2,3]\n");
  process.stdout.write("null\n");
  out({ jsonrpc: "2.0", id: 987654, result: {} });
  out({ jsonrpc: "2.0", method: "session.event", params: { type: "dtmf" } });
  out({ jsonrpc: "2.0", id: null, error: { code: -32700, message: "parse error" } });
  out({ jsonrpc: "2.0", method: "something.new", params: { x: 1 } });
}

const rl = createInterface({ input: process.stdin });
rl.on("line", (line) => {
  let msg;
  try {
    msg = JSON.parse(line);
  } catch {
    out({ jsonrpc: "2.0", id: null, error: { code: -32700, message: "not valid JSON" } });
    return;
  }
  log.push({ method: msg.method, params: msg.params });
  if (dieOn.includes(msg.method)) {
    process.stderr.write(`fake-bridge: dying on ${msg.method} as told\n`);
    process.exit(3);
  }
  const reply = () => {
    if (has("malformed")) garbage();
    if (msg.method === "test.noResult") return out({ jsonrpc: "2.0", id: msg.id });
    if (msg.method === "test.badError") return out({ jsonrpc: "2.0", id: msg.id, error: "oops" });
    try {
      const result = handle(msg.method, msg.params || {});
      if (msg.id !== undefined) out({ jsonrpc: "2.0", id: msg.id, result });
    } catch (e) {
      if (msg.id !== undefined) out({ jsonrpc: "2.0", id: msg.id, error: e });
    }
  };
  count++;
  if (has("delays")) setTimeout(reply, (count * 37) % 60);
  else reply();
});
rl.on("close", () => {
  for (const id of sessions.keys()) event({ session: id, type: "closed", reason: "stdin closed" });
  setImmediate(() => process.exit(0));
});
