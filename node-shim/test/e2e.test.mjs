// End to end: SIP.js (the real npm package) with this shim registers to
// Kamailio over WebSocket with digest auth and calls baresip, registered at
// the same Kamailio over UDP, and the other way round. Audio is checked, not
// just signalling: each side plays a tone and the other side's recording
// must hold it (Goertzel). DTMF both ways, hold/unhold re-INVITEs, a
// media child killed mid-call, and transfer both ways (SIP.js's onRefer and
// refer() over our handler).

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { appendFileSync } from "node:fs";
import { join } from "node:path";
import { WebSocket } from "ws";
import { UserAgent, Inviter, SessionState } from "sip.js";
import { createSessionDescriptionHandlerFactory, getDirection } from "../src/index.js";
import { REPO, SIPBRIDGE_BIN, requireBinary, tone, writeWav, readWav, toneShare } from "./helpers.mjs";
import { scratchDir, startKamailio, startBaresip, Proc } from "./peers.mjs";
import { register, reach, assertTone } from "./sipjs.mjs";

globalThis.WebSocket ??= WebSocket;

const APP_TONE = 1000; // what the SIP.js app plays
const PEER_TONE = 440; // what baresip plays
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let dir;
let kamailio;
let bob;
let dave;
const DAVE_TONE = 700;
let ua;
let factory;
const invitations = [];
let invitationWaiter = null;

before(async () => {
  requireBinary();
  dir = scratchDir("e2e");
  kamailio = await startKamailio(dir, { users: [["alice", "a-pw"], ["bob", "b-pw"], ["carol", "c-pw"], ["dave", "d-pw"], ["erin", "e-pw"], ["frank", "f-pw"], ["grace", "g-pw"]] });
  writeWav(join(dir, "peer-tone.wav"), tone(PEER_TONE, 120, 8000, 0.3));
  writeWav(join(dir, "app-tone.wav"), tone(APP_TONE, 5, 8000, 0.3));
  bob = await startBaresip(dir, { aor: kamailio.aor("bob"), password: "b-pw", outbound: kamailio.proxyUri("udp"), play: join(dir, "peer-tone.wav") });
  writeWav(join(dir, "dave-tone.wav"), tone(DAVE_TONE, 120, 8000, 0.3));
  dave = await startBaresip(join(dir, "dave-dir"), {
    aor: kamailio.aor("dave"), password: "d-pw", outbound: kamailio.proxyUri("udp"), play: join(dir, "dave-tone.wav"),
  });
  await bob.waitRegistered();
  await dave.waitRegistered();

  factory = createSessionDescriptionHandlerFactory({
    binary: SIPBRIDGE_BIN,
    codecs: ["PCMU", "PCMA"],
    onStderr: (line) => appendFileSync(join(dir, "sipbridge.log"), line + "\n"),
  });
  ua = new UserAgent({
    uri: UserAgent.makeURI(kamailio.aor("alice")),
    transportOptions: { server: kamailio.wsUrl },
    authorizationUsername: "alice",
    authorizationPassword: "a-pw",
    sessionDescriptionHandlerFactory: factory,
    logBuiltinEnabled: false,
    logLevel: "debug",
    logConnector: (level, category, label, content) => appendFileSync(join(dir, "sipjs.log"), `${level} ${category} ${content}\n`),
    delegate: {
      onInvite: (invitation) => {
        invitations.push(invitation);
        invitationWaiter?.();
      },
    },
  });
  await ua.start();
  await register(ua, kamailio);
});

after(async () => {
  try {
    await ua?.stop();
  } catch {
    // already down
  }
  await factory?.close();
  await bob?.stop();
  await dave?.stop();
  await kamailio?.stop();
});

function nextInvitation(ms = 10_000) {
  if (invitations.length) return Promise.resolve(invitations.shift());
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error("no INVITE reached SIP.js")), ms);
    invitationWaiter = () => {
      clearTimeout(t);
      invitationWaiter = null;
      resolve(invitations.shift());
    };
  });
}

function nextEvent(emitter, name, ms = 5000) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      emitter.off(name, on);
      reject(new Error(`no ${name} within ${ms} ms`));
    }, ms);
    const on = (v) => {
      clearTimeout(t);
      emitter.off(name, on);
      resolve(v);
    };
    emitter.on(name, on);
  });
}

/** What baresip recorded during the call that began after `known` files existed. */
function bobRecordings(known) {
  const fresh = bob.recordings().filter((f) => !known.includes(f));
  const dec = fresh.find((f) => f.endsWith("-dec.wav"));
  const enc = fresh.find((f) => f.endsWith("-enc.wav"));
  assert.ok(dec && enc, `baresip recordings: ${fresh.join(", ")}`);
  return { dec: join(bob.recDir, dec), enc: join(bob.recDir, enc) };
}

/** DTMF both ways on an established call; `sdh` is the app's handler. */
async function dtmfBothWays(sdh) {
  bob.clearEvents();
  assert.equal(sdh.sendDtmf("4"), true);
  const got = await bob.waitEvent("call", "CALL_DTMF_START", 5000);
  assert.equal(got.param, "4", JSON.stringify(got));
  const heard = [];
  const onTone = (t) => heard.push(t);
  sdh.on("dtmf", onTone);
  await bob.command("sndcode", "7");
  const until = Date.now() + 5000;
  while (!heard.includes("7") && Date.now() < until) await sleep(50);
  sdh.off("dtmf", onTone);
  assert.deepEqual(heard, ["7"], "the app heard baresip's key once");
}

/** Waits until baresip's call-recording file names (by start second) cannot collide with the last call's. */
const nextSecond = () => sleep(1100 - (Date.now() % 1000));

/** baresip dials the app; the app answers. Returns the established invitation. */
async function incomingCall() {
  await nextSecond();
  bob.clearEvents();
  await bob.command("dial", kamailio.aor("alice"));
  const invitation = await nextInvitation();
  assert.match(invitation.remoteIdentity.uri.toString(), /bob@example\.test/);
  await invitation.accept();
  await reach(invitation, SessionState.Established);
  await bob.waitEvent("call", "CALL_ESTABLISHED");
  return invitation;
}

/** The app calls baresip (auto-answer). Returns the established inviter. */
async function outgoingCall(inviterOptions = {}) {
  await nextSecond();
  bob.clearEvents();
  const inviter = new Inviter(ua, UserAgent.makeURI(kamailio.aor("bob")), inviterOptions);
  await inviter.invite();
  await reach(inviter, SessionState.Established);
  await bob.waitEvent("call", "CALL_ESTABLISHED");
  return inviter;
}

/** Our hold and unhold re-INVITEs (sendonly, then sendrecv), as SIP.js apps do them. */
async function holdAndUnhold(session) {
  const sdh = session.sessionDescriptionHandler;
  await session.invite({ sessionDescriptionHandlerOptions: { hold: true } });
  await waitFor(() => getDirection(sdh.remoteDescription?.sdp) === "recvonly", 5000, () => `baresip's answer to hold: ${sdh.remoteDescription?.sdp}`);
  assert.equal(getDirection(sdh.localDescription.sdp), "sendonly");
  assert.equal(sdh.held, true);
  await sleep(500);
  await session.invite({ sessionDescriptionHandlerOptions: { hold: false } });
  await waitFor(() => getDirection(sdh.remoteDescription?.sdp) === "sendrecv", 5000, () => `baresip's answer to unhold: ${sdh.remoteDescription?.sdp}`);
  assert.equal(getDirection(sdh.localDescription.sdp), "sendrecv");
  assert.equal(sdh.held, false);
}

test("baresip calls SIP.js: the app answers, plays a prompt, records; DTMF both ways; hold both ways", { timeout: 60_000 }, async (t) => {
  const known = bob.recordings();
  const invitation = await incomingCall();
  const sdh = invitation.sessionDescriptionHandler;
  const appRec = join(dir, "app-heard-incoming.wav");
  await sdh.record(appRec);
  const ended = nextEvent(sdh, "playended", 10_000);
  await sdh.play(join(dir, "app-tone.wav")); // 5 s, no loop
  await sleep(2000);

  await dtmfBothWays(sdh);

  // baresip holds: its sendonly offer gets our recvonly answer; then resumes
  await bob.command("hold");
  await waitFor(() => getDirection(sdh.remoteDescription?.sdp) === "sendonly", 5000, () => `baresip's hold offer: ${sdh.remoteDescription?.sdp}`);
  await waitFor(() => getDirection(sdh.localDescription?.sdp) === "recvonly", 5000, () => `our answer to hold: ${sdh.localDescription?.sdp}`);
  await bob.command("resume");
  await waitFor(() => getDirection(sdh.remoteDescription?.sdp) === "sendrecv", 5000, () => `baresip's resume offer: ${sdh.remoteDescription?.sdp}`);
  await waitFor(() => getDirection(sdh.localDescription?.sdp) === "sendrecv", 5000, () => `our answer to resume: ${sdh.localDescription?.sdp}`);
  // we hold and unhold
  await holdAndUnhold(invitation);

  await ended; // the 5 s prompt has been played out
  assert.equal(await sdh.stopRecord(), appRec);
  await bob.command("hangup");
  await reach(invitation, SessionState.Terminated);
  await bob.waitEvent("call", "CALL_CLOSED");
  assert.ok(sdh.closed);
  await sleep(300); // baresip finishes its files

  const rec = bobRecordings(known);
  const a = assertTone(appRec, PEER_TONE, APP_TONE, "app heard baresip");
  const b = assertTone(rec.dec, APP_TONE, PEER_TONE, "baresip heard the app");
  t.diagnostic(`app heard ${PEER_TONE} Hz (share ${a.share.toFixed(3)}, ${a.secs.toFixed(1)} s); baresip heard ${APP_TONE} Hz (share ${b.share.toFixed(3)}, ${b.secs.toFixed(1)} s)`);
});

/** An outgoing call to baresip: tones both ways, DTMF both ways, our hold and unhold. */
async function outgoingCallChecks(t, inviterOptions, label) {
  const known = bob.recordings();
  const inviter = await outgoingCall(inviterOptions);
  const sdh = inviter.sessionDescriptionHandler;
  const appRec = join(dir, `app-heard-${label}.wav`);
  await sdh.record(appRec);
  await sdh.play(join(dir, "app-tone.wav"), { loop: true });
  await sleep(2500);
  await dtmfBothWays(sdh);
  await holdAndUnhold(inviter);
  await sleep(1500);
  assert.equal(await sdh.stopRecord(), appRec);
  await inviter.bye();
  await reach(inviter, SessionState.Terminated);
  await bob.waitEvent("call", "CALL_CLOSED");
  assert.ok(sdh.closed);
  await sleep(300);

  const rec = bobRecordings(known);
  const a = assertTone(appRec, PEER_TONE, APP_TONE, "app heard baresip");
  const b = assertTone(rec.dec, APP_TONE, PEER_TONE, "baresip heard the app");
  t.diagnostic(`app heard ${PEER_TONE} Hz (share ${a.share.toFixed(3)}); baresip heard ${APP_TONE} Hz (share ${b.share.toFixed(3)})`);
}

test("SIP.js calls baresip with a delayed offer (INVITE without SDP): tones both ways, DTMF both ways, hold and unhold", { timeout: 60_000 }, async (t) => {
  await outgoingCallChecks(t, { inviteWithoutSdp: true }, "outgoing-delayed-offer");
});

test("SIP.js calls baresip with an offer: tones both ways, DTMF both ways, hold and unhold", { timeout: 60_000 }, async (t) => {
  await outgoingCallChecks(t, {}, "outgoing-offer");
});

test("the media child killed mid-call: the call ends with a BYE, the next call gets a new child and works", { timeout: 60_000 }, async (t) => {
  const first = await incomingCall();
  const sdh = first.sessionDescriptionHandler;
  const child = sdh.bridge;
  await sdh.play(join(dir, "app-tone.wav"), { loop: true });
  bob.clearEvents();
  const byes = (kamailio.proc.log().match(/REQ BYE/g) || []).length;
  const closed = nextEvent(sdh, "closed");
  child.kill("SIGKILL");
  const reason = await closed;
  assert.match(reason, /media engine gone: sipbridge \(pid \d+\) killed by SIGKILL/);
  await reach(first, SessionState.Terminated, 5000);
  await bob.waitEvent("call", "CALL_CLOSED", 5000); // baresip got our BYE
  await waitFor(() => (kamailio.proc.log().match(/REQ BYE/g) || []).length > byes, 2000, () => "no BYE through Kamailio");
  await assert.rejects(sdh.play(join(dir, "app-tone.wav")), /closed/);
  assert.equal(factory.processes.length, 0);

  // the next call: a fresh child, media flowing both ways
  const known = bob.recordings();
  const next = await incomingCall();
  const sdh2 = next.sessionDescriptionHandler;
  assert.notEqual(sdh2.bridge.pid, child.pid);
  assert.equal(factory.processes.length, 1);
  const appRec = join(dir, "app-heard-after-kill.wav");
  await sdh2.record(appRec);
  await sdh2.play(join(dir, "app-tone.wav"), { loop: true });
  await sleep(3000);
  await sdh2.stopRecord();
  await next.bye();
  await reach(next, SessionState.Terminated);
  await bob.waitEvent("call", "CALL_CLOSED");
  await sleep(300);
  const rec = bobRecordings(known);
  assertTone(appRec, PEER_TONE, APP_TONE, "app heard baresip after restart");
  assertTone(rec.dec, APP_TONE, PEER_TONE, "baresip heard the app after restart");
  t.diagnostic(`killed child ${child.pid}, next call on child ${sdh2.bridge.pid}`);
});

/** A registered SIP.js UserAgent over WebSocket with its own factory. */
async function startUa(user, password, factoryOptions, delegate = {}) {
  const f = createSessionDescriptionHandlerFactory({ binary: SIPBRIDGE_BIN, ...factoryOptions });
  const agent = new UserAgent({
    uri: UserAgent.makeURI(kamailio.aor(user)),
    transportOptions: { server: kamailio.wsUrl },
    authorizationUsername: user,
    authorizationPassword: password,
    sessionDescriptionHandlerFactory: f,
    logBuiltinEnabled: false,
    logLevel: "debug",
    logConnector: (level, category, label, content) => appendFileSync(join(dir, `sipjs-${user}.log`), `${level} ${category} ${content}\n`),
    delegate,
  });
  await agent.start();
  await register(agent, kamailio, `SIP.js ${user}`);
  return { agent, factory: f };
}

test("WebRTC media through SIP: two SIP.js apps (kind webrtc) call each other via Kamailio, tones both ways", { timeout: 60_000 }, async (t) => {
  let incoming;
  const gotCall = new Promise((r) => (incoming = r));
  const frank = await startUa("frank", "f-pw", { kind: "webrtc" });
  const grace = await startUa("grace", "g-pw", { kind: "webrtc" }, { onInvite: (inv) => incoming(inv) });
  try {
    const wavF = join(dir, "frank-tone.wav");
    const wavG = join(dir, "grace-tone.wav");
    writeWav(wavF, tone(600, 10, 16000, 0.3));
    writeWav(wavG, tone(1200, 10, 16000, 0.3));
    const inviter = new Inviter(frank.agent, UserAgent.makeURI(kamailio.aor("grace")));
    await inviter.invite();
    const invitation = await gotCall;
    assert.match(invitation.request.body, /UDP\/TLS\/RTP\/SAVPF/);
    assert.match(invitation.request.body, /a=fingerprint:/);
    await invitation.accept();
    await Promise.all([reach(inviter, SessionState.Established), reach(invitation, SessionState.Established)]);
    const [f, g] = [inviter.sessionDescriptionHandler, invitation.sessionDescriptionHandler];
    assert.equal(f.kind, "webrtc");
    await Promise.all([
      waitForState(f, "connected"),
      waitForState(g, "connected"),
    ]);
    const recF = join(dir, "frank-heard.wav");
    const recG = join(dir, "grace-heard.wav");
    await Promise.all([f.record(recF), g.record(recG), f.play(wavF, { loop: true }), g.play(wavG, { loop: true })]);
    await sleep(2500);
    await Promise.all([f.stopRecord(), g.stopRecord()]);
    await inviter.bye();
    await reach(invitation, SessionState.Terminated);
    const a = assertTone(recF, 1200, 600, "frank heard grace");
    const b = assertTone(recG, 600, 1200, "grace heard frank");
    t.diagnostic(`frank heard 1200 Hz (share ${a.share.toFixed(3)}), grace heard 600 Hz (share ${b.share.toFixed(3)})`);
  } finally {
    await Promise.all([frank.agent.stop().catch(() => {}), grace.agent.stop().catch(() => {})]);
    await Promise.all([frank.factory.close(), grace.factory.close()]);
  }
});

function waitForState(h, state, ms = 10_000) {
  if (h.connectionState === state) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${h.id}: no ${state} within ${ms} ms`)), ms);
    const on = (st) => {
      if (st === state) {
        clearTimeout(t);
        h.off("connectionstatechange", on);
        resolve();
      }
    };
    h.on("connectionstatechange", on);
  });
}

/** Runs an example of examples/sipjs-node (deps resolved from this package). */
function runExample(name, args) {
  const script = join(REPO, "examples/sipjs-node", name);
  const loader = new URL("./example-loader.mjs", import.meta.url).pathname;
  return new Proc(process.execPath, ["--import", loader, script, ...args], { dir, name: name.replace(/\.mjs$/, ""), limitMs: 60_000 });
}

async function waitForLog(proc, text, ms = 10_000) {
  await waitFor(() => proc.log().includes(text), ms, () => `${proc.name} did not print ${JSON.stringify(text)}; output:\n${proc.tail()}`);
}

test("examples/sipjs-node auto-attendant: answers baresip, plays its prompt, records the caller, prints DTMF", { timeout: 60_000 }, async (t) => {
  const prompt = join(dir, "prompt.wav");
  writeWav(prompt, tone(APP_TONE, 2, 8000, 0.3));
  const recDir = join(dir, "attendant-recordings");
  const app = runExample("auto-attendant.mjs", [
    "--server", kamailio.wsUrl, "--aor", kamailio.aor("carol"), "--password", "c-pw",
    "--prompt", prompt, "--record-dir", recDir, "--max-record", "20", "--sipbridge", SIPBRIDGE_BIN,
  ]);
  try {
    await waitForLog(app, "registered sip:carol@example.test");
    const known = bob.recordings();
    await nextSecond();
    bob.clearEvents();
    await bob.command("dial", kamailio.aor("carol"));
    await bob.waitEvent("call", "CALL_ESTABLISHED");
    await waitForLog(app, "call 1: from sip:bob@example.test");
    await waitForLog(app, "call 1: recording to ", 8000); // after the 2 s prompt
    await bob.command("sndcode", "5");
    await waitForLog(app, "call 1: DTMF 5", 5000);
    await sleep(2500);
    await bob.command("hangup");
    await bob.waitEvent("call", "CALL_CLOSED");
    await waitForLog(app, "call 1: recorded ");
    await waitForLog(app, "call 1: ended");
    await sleep(300);
    const file = /call 1: recorded (\S+)/.exec(app.log())[1];
    assert.ok(file.startsWith(recDir), file);
    const a = assertTone(file, PEER_TONE, APP_TONE, "the attendant's recording");
    const rec = bobRecordings(known);
    const b = assertTone(rec.dec, APP_TONE, PEER_TONE, "baresip heard the prompt");
    t.diagnostic(`recording ${a.secs.toFixed(1)} s of ${PEER_TONE} Hz (share ${a.share.toFixed(3)}); baresip heard the prompt (share ${b.share.toFixed(3)})`);
  } finally {
    await app.stop();
  }
});

test("examples/sipjs-node click-to-call: dials two baresips and bridges them", { timeout: 60_000 }, async (t) => {
  let app;
  try {
    const knownBob = bob.recordings();
    const knownDave = dave.recordings();
    dave.clearEvents();
    await nextSecond();
    bob.clearEvents();
    app = runExample("click-to-call.mjs", [
      "--server", kamailio.wsUrl, "--aor", kamailio.aor("erin"), "--password", "e-pw", "--sipbridge", SIPBRIDGE_BIN,
      kamailio.aor("bob"), kamailio.aor("dave"),
    ]);
    await bob.waitEvent("call", "CALL_ESTABLISHED", 15_000);
    await dave.waitEvent("call", "CALL_ESTABLISHED", 15_000);
    await waitForLog(app, "bridged (");
    await sleep(3000);
    await bob.command("hangup"); // the app hangs up dave
    await bob.waitEvent("call", "CALL_CLOSED");
    await dave.waitEvent("call", "CALL_CLOSED", 5000);
    await waitForLog(app, "call over");
    assert.equal((await app.exited).code, 0, app.tail());
    await sleep(300);
    const bobRec = bobRecordings(knownBob);
    const daveDec = join(dave.recDir, dave.recordings().find((f) => f.endsWith("-dec.wav") && !knownDave.includes(f)));
    const a = assertTone(bobRec.dec, DAVE_TONE, PEER_TONE, "bob heard dave");
    const b = assertTone(daveDec, PEER_TONE, DAVE_TONE, "dave heard bob");
    t.diagnostic(`${app.log().match(/bridged \(.*\)/)[0]}; bob heard ${DAVE_TONE} Hz (share ${a.share.toFixed(3)}), dave heard ${PEER_TONE} Hz (share ${b.share.toFixed(3)})`);
  } finally {
    await app?.stop();
  }
});

test("two callers in a mixing room: each hears the other and not itself; the room is recorded", { timeout: 60_000 }, async (t) => {
  const knownBob = bob.recordings();
  const knownDave = dave.recordings();
  const first = await incomingCall();
  dave.clearEvents();
  await dave.command("dial", kamailio.aor("alice"));
  const second = await nextInvitation();
  await second.accept();
  await reach(second, SessionState.Established);
  await dave.waitEvent("call", "CALL_ESTABLISHED");
  const [a, b] = [first.sessionDescriptionHandler, second.sessionDescriptionHandler];
  const joined = await a.joinRoom("lobby");
  assert.equal(joined.room, "lobby");
  const roomFile = join(dir, "room.wav");
  await factory.recordRoom("lobby", roomFile, ua);
  const joined2 = await b.joinRoom("lobby");
  assert.equal(joined2.participants, 2);
  const rooms = await factory.listRooms(ua);
  assert.deepEqual(rooms.rooms.find((r) => r.room === "lobby").sessions.sort(), [a.id, b.id].sort());
  await sleep(3000);
  const stopped = await factory.stopRecordingRoom("lobby", ua);
  assert.equal(stopped.file, roomFile);
  await a.leaveRoom("lobby");
  await Promise.all([first.bye(), second.bye()]);
  await Promise.all([bob.waitEvent("call", "CALL_CLOSED"), dave.waitEvent("call", "CALL_CLOSED")]);
  await sleep(300);
  const bobDec = bobRecordings(knownBob).dec;
  const daveDec = join(dave.recDir, dave.recordings().find((f) => f.endsWith("-dec.wav") && !knownDave.includes(f)));
  const x = assertTone(bobDec, DAVE_TONE, PEER_TONE, "bob hears dave in the room");
  const y = assertTone(daveDec, PEER_TONE, DAVE_TONE, "dave hears bob in the room");
  const mix = readWav(roomFile);
  const s440 = toneShare(mix, PEER_TONE);
  const s700 = toneShare(mix, DAVE_TONE);
  assert.ok(s440 > 0.25 && s700 > 0.25, `room recording: ${PEER_TONE} Hz ${s440.toFixed(3)}, ${DAVE_TONE} Hz ${s700.toFixed(3)}`);
  t.diagnostic(`bob heard dave (share ${x.share.toFixed(3)}), dave heard bob (share ${y.share.toFixed(3)}); room recording ${(mix.samples.length / mix.rate).toFixed(1)} s: ${PEER_TONE} Hz ${s440.toFixed(2)}, ${DAVE_TONE} Hz ${s700.toFixed(2)}`);
});

test("transfer, SIP.js as transferee: baresip REFERs its call with the app to dave; onRefer dials dave with a new handler of ours, tones both ways", { timeout: 60_000 }, async (t) => {
  const knownDave = dave.recordings();
  const invitation = await incomingCall();
  const referral = new Promise((resolve) => {
    invitation.delegate = { onRefer: resolve };
  });
  dave.clearEvents();
  await bob.command("transfer", kamailio.aor("dave"));
  const referred = await referral;
  assert.match(referred.referTo.uri.toString(), /dave@example\.test/);
  await referred.accept();
  const inviter = referred.makeInviter();
  await inviter.invite();
  await reach(inviter, SessionState.Established);
  await dave.waitEvent("call", "CALL_ESTABLISHED");
  // The transferor is released: baresip ends its call once told it worked, or we do.
  if (invitation.state === SessionState.Established) await invitation.bye();
  await reach(invitation, SessionState.Terminated);
  const sdh = inviter.sessionDescriptionHandler;
  assert.notEqual(sdh, invitation.sessionDescriptionHandler, "the new call has a handler of its own");
  const appRec = join(dir, "app-heard-transferred.wav");
  await sdh.record(appRec);
  await sdh.play(join(dir, "app-tone.wav"), { loop: true });
  await sleep(3000);
  assert.equal(await sdh.stopRecord(), appRec);
  await inviter.bye();
  await reach(inviter, SessionState.Terminated);
  await dave.waitEvent("call", "CALL_CLOSED");
  await sleep(300);
  const daveDec = join(dave.recDir, dave.recordings().find((f) => f.endsWith("-dec.wav") && !knownDave.includes(f)));
  const a = assertTone(appRec, DAVE_TONE, PEER_TONE, "the app heard dave on the new call");
  const b = assertTone(daveDec, APP_TONE, PEER_TONE, "dave heard the app");
  t.diagnostic(`app heard ${DAVE_TONE} Hz (share ${a.share.toFixed(3)}); dave heard ${APP_TONE} Hz (share ${b.share.toFixed(3)})`);
});

test("transfer, SIP.js as transferor: session.refer() sends bob to dave; the REFER is accepted and the NOTIFYs report dave's answer", { timeout: 60_000 }, async (t) => {
  const inviter = await outgoingCall();
  const notified = [];
  const finalNotify = new Promise((resolve) => {
    inviter.delegate = {
      onNotify: (notification) => {
        const frag = notification.request.body || "";
        notified.push(frag.split(/\r?\n/)[0]);
        notification.accept();
        if (/^SIP\/2\.0 [2-6]\d\d/.test(frag)) resolve(frag);
      },
    };
  });
  dave.clearEvents();
  const accepted = new Promise((resolve, reject) => {
    inviter.refer(UserAgent.makeURI(kamailio.aor("dave")), {
      requestDelegate: { onAccept: (response) => resolve(response.message.statusCode), onReject: (response) => reject(new Error(`REFER refused: ${response.message.statusCode}`)) },
    });
  });
  assert.equal(await accepted, 202);
  await dave.waitEvent("call", "CALL_ESTABLISHED", 15_000);
  const frag = await finalNotify;
  assert.match(frag, /^SIP\/2\.0 200/, `NOTIFYs: ${notified.join(" | ")}`);
  if (inviter.state === SessionState.Established) await inviter.bye();
  await reach(inviter, SessionState.Terminated);
  await dave.command("hangup");
  await dave.waitEvent("call", "CALL_CLOSED");
  t.diagnostic(`NOTIFYs: ${notified.join(" | ")}`);
});

async function waitFor(cond, ms, what) {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) throw new Error(`timed out: ${what()}`);
    await sleep(50);
  }
}
