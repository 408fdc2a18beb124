// Unit tests against a fake `sipbridge stdio` (test/fake-bridge.mjs): id
// matching with out-of-order replies, malformed lines, a child dying in the
// middle of a request, SessionDescriptionHandler semantics (offer/answer,
// hold, modifiers, rollback, DTMF) and process handling.

import { test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { BridgeProcess, BridgeError, createSessionDescriptionHandlerFactory, getDirection, setDirection } from "../src/index.js";

const FAKE = fileURLToPath(new URL("./fake-bridge.mjs", import.meta.url));
chmodSync(FAKE, 0o755);

function fakeFactory(mode = "", extra = {}) {
  return createSessionDescriptionHandlerFactory({ binary: FAKE, env: { ...process.env, FAKE_MODE: mode }, ...extra });
}

/** A stand-in for a SIP.js session: records what the shim asks of it. */
function stubSession(state = "Established", userAgent = undefined) {
  const calls = [];
  return {
    state,
    userAgent,
    calls,
    bye: async () => calls.push("bye"),
    cancel: async () => calls.push("cancel"),
  };
}

const once = (emitter, name, ms = 3000) =>
  new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no ${name} within ${ms} ms`)), ms);
    emitter.once(name, (...args) => {
      clearTimeout(t);
      resolve(args);
    });
  });

test("replies are matched by id when they come back out of order", async () => {
  const f = fakeFactory("delays");
  try {
    const handlers = Array.from({ length: 30 }, () => f.createHandler());
    const offers = await Promise.all(handlers.map((h) => h.getDescription()));
    handlers.forEach((h, i) => {
      assert.match(h.id, /^s\d+$/);
      assert.ok(offers[i].body.includes(`s=${h.id}-offer`), `handler ${h.id} got ${offers[i].body}`);
      assert.equal(offers[i].contentType, "application/sdp");
    });
    // the fake replied in a different order than asked: prove it
    const log = await f.getProcess().request("test.log");
    assert.equal(log.log.filter((l) => l.method === "session.getLocalDescription").length, 30);
    for (const h of handlers) h.close();
  } finally {
    await f.close();
  }
});

test("malformed lines from the child are reported and skipped; bad replies reject only their request", async () => {
  const bridge = new BridgeProcess({ binary: FAKE, env: { ...process.env, FAKE_MODE: "malformed" } });
  const errors = [];
  bridge.on("protocolError", (e) => errors.push(e.message));
  try {
    await bridge.ready;
    const created = await bridge.request("session.create", { kind: "rtp" });
    assert.match(created.session, /^s\d+$/);
    await assert.rejects(bridge.request("test.noResult"), (e) => e instanceof BridgeError && e.code === "EPROTO" && /neither result nor error/.test(e.message));
    await assert.rejects(bridge.request("test.badError"), (e) => e.code === "EPROTO" && /malformed error reply/.test(e.message));
    await assert.rejects(bridge.request("no.such.method"), (e) => e.code === -32601 && /unknown method/.test(e.message));
    const list = await bridge.request("session.list");
    assert.deepEqual(list.sessions, [created.session]);
    assert.ok(errors.some((m) => m.includes("not JSON")), errors.join("\n"));
    assert.ok(errors.some((m) => m.includes("not a JSON object")), errors.join("\n"));
    assert.ok(errors.some((m) => m.includes("unknown request id 987654")), errors.join("\n"));
    assert.ok(errors.some((m) => m.includes("without session/type")), errors.join("\n"));
    assert.ok(errors.some((m) => m.includes("bridge rejected a line")), errors.join("\n"));
    assert.equal(bridge.pendingCount, 0);
  } finally {
    await bridge.close();
  }
});

test("a child dying mid-request rejects every pending request, ends its sessions, and the next session gets a new child", async () => {
  const f = fakeFactory("die:session.sendDtmf");
  try {
    const sipA = stubSession("Established");
    const sipB = stubSession("Establishing");
    const a = f(sipA);
    const b = f(sipB);
    await Promise.all([a.getDescription(), b.ready()]);
    const firstPid = f.getProcess().pid;
    const closedA = once(a, "closed");
    // three requests in flight when it dies
    const p1 = a.sendDtmfAsync("1");
    const p2 = b.getDescription();
    await new Promise((r) => setImmediate(r)); // p1 and p2 are written first
    const p3 = f.getProcess().request("session.list");
    for (const p of [p1, p2, p3]) {
      await assert.rejects(p, (e) => e instanceof BridgeError && /exited with status 3/.test(e.message) && /dying on session.sendDtmf/.test(e.message));
    }
    const [reason] = await closedA;
    assert.match(reason, /media engine gone: .*exited with status 3/);
    assert.ok(b.closed);
    assert.deepEqual(sipA.calls, ["bye"], "established call gets BYE");
    assert.deepEqual(sipB.calls, ["cancel"], "call being set up is cancelled");
    await assert.rejects(a.getDescription(), (e) => e.code === 1008 && /closed/.test(e.message));
    assert.equal(f.processes.length, 0);
    assert.equal(f.handlerCount, 0);
    // next session: new child
    const c = f(stubSession("Initial"));
    const offer = await c.getDescription();
    assert.match(offer.body, /^v=0/);
    assert.notEqual(f.getProcess().pid, firstPid);
    assert.equal(f.processes.length, 1);
    c.close();
  } finally {
    await f.close();
  }
});

test("a child killed by a signal: clear error naming the signal", async () => {
  const f = fakeFactory("");
  try {
    const h = f.createHandler();
    await h.ready();
    const bridge = f.getProcess();
    const exited = once(bridge, "exit");
    const pending = bridge.request("session.list");
    bridge.kill("SIGKILL");
    // the request may have been answered before the kill landed; a new one must fail
    await pending.catch(() => {});
    const [err] = await exited;
    assert.match(err.message, /killed by SIGKILL/);
    await assert.rejects(bridge.request("session.list"), /killed by SIGKILL/);
    assert.ok(h.closed);
  } finally {
    await f.close();
  }
});

test("SessionDescriptionHandler: offer/answer, hold through options, modifiers, hasDescription", async () => {
  const f = fakeFactory("");
  try {
    const h = f(stubSession("Initial"));
    assert.equal(h.hasDescription("application/sdp"), true);
    assert.equal(h.hasDescription("application/SDP; charset=utf-8"), true);
    assert.equal(h.hasDescription("text/plain"), false);

    // we offer, they answer
    const offer = await h.getDescription();
    assert.equal(h.signalingState, "have-local-offer");
    assert.equal(getDirection(offer.body), "sendrecv");
    await h.setDescription(offer.body.replace("fake", "peer"));
    assert.equal(h.signalingState, "stable");

    // hold re-INVITE from us: sendonly offer; unhold: sendrecv again
    const held = await h.getDescription({ hold: true });
    assert.equal(getDirection(held.body), "sendonly");
    assert.equal(h.held, true);
    await h.setDescription(setDirection(held.body, "recvonly"));
    const unheld = await h.getDescription({ hold: false });
    assert.equal(getDirection(unheld.body), "sendrecv");
    await h.setDescription(unheld.body);

    // they hold us: their sendonly offer gets our recvonly answer
    await h.setDescription(setDirection(offer.body, "sendonly"));
    assert.equal(h.signalingState, "have-remote-offer");
    const ans = await h.getDescription();
    assert.equal(getDirection(ans.body), "recvonly");
    assert.equal(h.signalingState, "stable");

    // both on hold: inactive
    await h.setDescription(setDirection(offer.body, "sendonly"));
    assert.equal(getDirection((await h.getDescription({ hold: true })).body), "inactive");

    // modifiers run in order on what we send and what we set
    const seen = [];
    const mod1 = async (d) => { seen.push(`1:${d.type}`); return { type: d.type, sdp: d.sdp + "a=x-one\r\n" }; };
    const mod2 = async (d) => { seen.push(`2:${d.type}`); return { type: d.type, sdp: d.sdp + "a=x-two\r\n" }; };
    const modded = await h.getDescription({}, [mod1, mod2]);
    assert.ok(modded.body.endsWith("a=x-one\r\na=x-two\r\n"));
    await h.setDescription(offer.body, {}, [mod1]);
    assert.deepEqual(seen, ["1:offer", "2:offer", "1:answer"]);
    const log = (await f.getProcess().request("test.log")).log;
    const lastSet = log.filter((l) => l.method === "session.setRemoteDescription").pop();
    assert.equal(lastSet.params.type, "answer");
    assert.ok(lastSet.params.sdp.endsWith("a=x-one\r\n"));
    h.close();
  } finally {
    await f.close();
  }
});

test("rollbackDescription settles a local offer with the peer's last SDP", async () => {
  const f = fakeFactory("");
  try {
    const h = f.createHandler();
    const offer = await h.getDescription();
    const peer = offer.body.replace("o=fake", "o=peer");
    await h.setDescription(peer);
    await h.getDescription({ hold: true }); // re-INVITE offer that gets rejected
    assert.equal(h.signalingState, "have-local-offer");
    await h.rollbackDescription();
    assert.equal(h.signalingState, "stable");
    const log = (await f.getProcess().request("test.log")).log;
    const last = log.filter((l) => l.method === "session.setRemoteDescription").pop();
    assert.deepEqual([last.params.type, last.params.sdp], ["answer", peer]);
    // and a fresh exchange works afterwards
    await h.setDescription(offer.body);
    assert.equal((await h.getDescription()).body.includes("answer"), true);
    h.close();
  } finally {
    await f.close();
  }
});

test("bridge errors keep their code and SIP status", async () => {
  const f = fakeFactory("");
  try {
    const h = f.createHandler();
    await assert.rejects(h.setDescription("garbage"), (e) => e instanceof BridgeError && e.code === 1001 && e.sipStatus === 400 && /no v= line/.test(e.message));
    await assert.rejects(h.setDescription(""), (e) => e.code === 1001);
    h.close();
  } finally {
    await f.close();
  }
});

test("DTMF: sendDtmf validates and sends; received tones and other events reach the handler", async () => {
  const f = fakeFactory("");
  try {
    const h = f.createHandler();
    await h.ready();
    assert.equal(h.sendDtmf("12x"), false);
    assert.equal(h.sendDtmf(""), false);
    assert.equal(h.sendDtmf("123#*a", { duration: 10 }), true);
    await h.sendDtmfAsync("9", { duration: 5000 });
    const log = (await f.getProcess().request("test.log")).log.filter((l) => l.method === "session.sendDtmf");
    assert.deepEqual(log.map((l) => l.params), [
      { session: h.id, tones: "123#*A", duration: 40 },
      { session: h.id, tones: "9", duration: 2000 },
    ]);
    const tones = [];
    h.on("dtmf", (t) => tones.push(t));
    const states = [];
    h.on("connectionstatechange", (s) => states.push(s));
    const bridge = f.getProcess();
    await bridge.request("test.emit", { event: { session: h.id, type: "dtmf", tone: "5" } });
    await bridge.request("test.emit", { event: { session: h.id, type: "connectionstatechange", state: "connected" } });
    await bridge.request("test.emit", { event: { session: "s999", type: "dtmf", tone: "7" } }); // someone else's
    await bridge.request("test.emit", { event: { session: h.id, type: "dtmf", tone: "#" } });
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(tones, ["5", "#"]);
    assert.deepEqual(states, ["connected"]);
    assert.equal(h.connectionState, "connected");
    h.close();
    assert.equal(h.sendDtmf("1"), false);
  } finally {
    await f.close();
  }
});

test("media methods: play/record/rooms/connect send the protocol's names and params", async () => {
  const f = fakeFactory("");
  try {
    const a = f.createHandler();
    const b = f.createHandler();
    await Promise.all([a.ready(), b.ready()]);
    const ended = await a.playToEnd("/tmp/prompt.wav");
    assert.equal(ended.file, "/tmp/prompt.wav");
    await a.play("/tmp/moh.wav", { loop: true });
    await a.stopPlay();
    await a.record("/tmp/a.wav");
    assert.equal(await a.stopRecord(), "/tmp/fake.wav");
    assert.deepEqual(await a.joinRoom("r1"), { room: "r1", participants: 1 });
    await a.muteInRoom("r1", true);
    await a.leaveRoom("r1");
    await f.recordRoom("r1", "/tmp/r1.ogg");
    await f.stopRecordingRoom("r1");
    assert.deepEqual(await a.connect(b), { passthrough: true });
    await a.disconnect(b);
    const log = (await f.getProcess().request("test.log")).log.filter((l) => /^(session\.(play|stopPlay|record|stopRecord|connect|disconnect)|room\.)/.test(l.method));
    assert.deepEqual(log, [
      { method: "session.play", params: { session: a.id, file: "/tmp/prompt.wav" } },
      { method: "session.play", params: { session: a.id, file: "/tmp/moh.wav", loop: true } },
      { method: "session.stopPlay", params: { session: a.id } },
      { method: "session.record", params: { session: a.id, file: "/tmp/a.wav" } },
      { method: "session.stopRecord", params: { session: a.id } },
      { method: "room.join", params: { session: a.id, room: "r1" } },
      { method: "room.mute", params: { session: a.id, room: "r1", muted: true } },
      { method: "room.leave", params: { session: a.id, room: "r1" } },
      { method: "room.record", params: { room: "r1", file: "/tmp/r1.ogg" } },
      { method: "room.stopRecord", params: { room: "r1" } },
      { method: "session.connect", params: { a: a.id, b: b.id } },
      { method: "session.disconnect", params: { a: a.id, b: b.id } },
    ]);
    assert.equal(a.listenerCount("playended"), 0);
    assert.equal(a.listenerCount("closed"), 0);
    a.close();
    b.close();
  } finally {
    await f.close();
  }
});

test("one child per UserAgent by default; per-session children end with their session", async () => {
  const shared = fakeFactory("");
  const perSession = fakeFactory("", { process: "per-session" });
  try {
    const ua1 = {};
    const ua2 = {};
    const hs = [shared(stubSession("Initial", ua1)), shared(stubSession("Initial", ua1)), shared(stubSession("Initial", ua2))];
    await Promise.all(hs.map((h) => h.ready()));
    assert.equal(shared.processes.length, 2);
    assert.equal(hs[0].bridge, hs[1].bridge);
    assert.notEqual(hs[0].bridge, hs[2].bridge);
    const ps = [perSession.createHandler(), perSession.createHandler()];
    await Promise.all(ps.map((h) => h.ready()));
    assert.equal(perSession.processes.length, 2);
    const exited = once(ps[0].bridge, "exit");
    ps[0].close();
    const [err] = await exited;
    assert.match(err.message, /exited with status 0/);
    assert.equal(perSession.processes.length, 1);
    await assert.rejects(ps[0].connect(ps[1]), /different sipbridge processes/);
    assert.throws(() => perSession.getProcess(), /no shared process/);
    for (const h of [...hs, ps[1]]) h.close();
  } finally {
    await Promise.all([shared.close(), perSession.close()]);
  }
});

test("start failures are clear: missing binary, no ready line, wrong protocol", async () => {
  const missing = new BridgeProcess({ binary: "/nonexistent/sipbridge" });
  await assert.rejects(missing.request("session.list"), /cannot start \/nonexistent\/sipbridge: .*ENOENT/);
  await assert.rejects(missing.ready, /ENOENT/);

  const noReady = new BridgeProcess({ binary: FAKE, env: { ...process.env, FAKE_MODE: "noready" }, readyTimeoutMs: 300 });
  await assert.rejects(noReady.ready, /no ready line within 300 ms/);
  await once(noReady, "exit").catch(() => {});
  assert.ok(noReady.exited);

  const wrong = new BridgeProcess({ binary: FAKE, env: { ...process.env, FAKE_MODE: "protocol:2" } });
  await assert.rejects(wrong.ready, /speaks protocol 2; this shim speaks 1/);
});

test("closing a handler while session.create is in flight frees the bridge session", async () => {
  const f = fakeFactory("delays");
  try {
    const h = f.createHandler();
    h.close("changed my mind");
    await assert.rejects(h.ready(), /closed \(changed my mind\)/);
    await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual((await f.getProcess().request("session.list")).sessions, []);
  } finally {
    await f.close();
  }
});

test("the binary is found on PATH when not given; SIP.js's factory options override the media options", async () => {
  const { mkdtempSync, symlinkSync } = await import("node:fs");
  const { tmpdir } = await import("node:os");
  const { join } = await import("node:path");
  const bin = mkdtempSync(join(tmpdir(), "node-shim-path-"));
  symlinkSync(FAKE, join(bin, "sipbridge"));
  const env = { ...process.env, PATH: `${bin}:${process.env.PATH}`, FAKE_MODE: "" };
  const saved = process.env.PATH;
  process.env.PATH = env.PATH; // resolveBinary looks at this process's PATH
  const f = createSessionDescriptionHandlerFactory({ env, codecs: ["PCMU"] });
  try {
    assert.equal(f.getProcess().binary, join(bin, "sipbridge"));
    const h = f(stubSession("Initial"), { kind: "webrtc", latencyMs: 30, notAMediaOption: 1 });
    await h.ready();
    const create = (await f.getProcess().request("test.log")).log.find((l) => l.method === "session.create");
    assert.deepEqual(create.params, { kind: "webrtc", codecs: ["PCMU"], latencyMs: 30 });
    h.close();
  } finally {
    process.env.PATH = saved;
    await f.close();
  }
});

test("a UserAgent that stops ends its shared child once its last call is over", async () => {
  const f = fakeFactory("");
  const listeners = new Set();
  const ua = {
    stateChange: { addListener: (l) => listeners.add(l), removeListener: (l) => listeners.delete(l) },
  };
  const stopUa = () => [...listeners].forEach((l) => l("Stopped"));
  try {
    const h = f(stubSession("Established", ua));
    await h.ready();
    const bridge = h.bridge;
    assert.equal(listeners.size, 1);
    stopUa();
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(bridge.exited, false, "a call is still up");
    const exited = once(bridge, "exit");
    h.close();
    await exited;
    assert.equal(listeners.size, 0);
    assert.equal(f.processes.length, 0);
    // a UserAgent stopped with no calls: its child ends at once
    const ua2 = { stateChange: { addListener: (l) => listeners.add(l), removeListener: (l) => listeners.delete(l) } };
    const h2 = f(stubSession("Initial", ua2));
    await h2.ready();
    h2.close();
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(h2.bridge.exited, false, "an idle child of a running UserAgent stays");
    const exited2 = once(h2.bridge, "exit");
    stopUa();
    await exited2;
    assert.equal(f.processes.length, 0);
  } finally {
    await f.close();
  }
});

test("a media timeout ends the SIP.js session with BYE by default, not while we hold it, not when turned off", async () => {
  const f = fakeFactory("");
  const off = fakeFactory("", { endSessionOnMediaTimeout: false });
  const timeout = (h) => ({ event: { session: h.id, type: "mediatimeout", silentMs: 30250, held: false } });
  try {
    const sip = stubSession();
    const h = f(sip);
    await h.ready();
    const seen = once(h, "mediatimeout");
    await f.getProcess().request("test.emit", timeout(h));
    const [params] = await seen;
    assert.deepEqual(params, { silentMs: 30250, held: false });
    assert.deepEqual(sip.calls, ["bye"], "the vanished peer gets BYE");
    const resumed = once(h, "mediaresumed");
    await f.getProcess().request("test.emit", { event: { session: h.id, type: "mediaresumed" } });
    await resumed;

    const heldSip = stubSession();
    const held = f(heldSip);
    await held.ready();
    await held.getDescription({ hold: true });
    assert.equal(held.held, true);
    const heldSeen = once(held, "mediatimeout");
    await f.getProcess().request("test.emit", timeout(held));
    await heldSeen;
    assert.deepEqual(heldSip.calls, [], "a call we hold ourselves is kept");

    const keptSip = stubSession();
    const kept = off(keptSip);
    await kept.ready();
    const keptSeen = once(kept, "mediatimeout");
    await off.getProcess().request("test.emit", timeout(kept));
    await keptSeen;
    assert.deepEqual(keptSip.calls, [], "endSessionOnMediaTimeout: false leaves it to the app");
    const log = (await off.getProcess().request("test.log")).log.filter((l) => l.method === "session.create");
    assert.equal(log.length, 1);
  } finally {
    await f.close();
    await off.close();
  }
});

test("rtpTimeoutMs is passed to session.create", async () => {
  const f = fakeFactory("", { rtpTimeoutMs: 30000 });
  try {
    const h = f.createHandler();
    await h.ready();
    const log = (await f.getProcess().request("test.log")).log.filter((l) => l.method === "session.create");
    assert.equal(log[0].params.rtpTimeoutMs, 30000);
  } finally {
    await f.close();
  }
});
