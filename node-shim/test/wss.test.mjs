// SIP.js with this shim over secure WebSocket (wss://) through Kamailio's
// tls + websocket modules: the app registers over wss and calls baresip
// (registered over udp), tones checked both ways; a client that does not
// trust the test CA is refused with the TLS error named. The CA and
// Kamailio's certificate (for 127.0.0.1) are made here with openssl.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { appendFileSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { WebSocket } from "ws";
import { UserAgent, Inviter, SessionState } from "sip.js";
import { createSessionDescriptionHandlerFactory } from "../src/index.js";
import { SIPBRIDGE_BIN, requireBinary, tone, writeWav } from "./helpers.mjs";
import { scratchDir, startKamailio, startBaresip, Proc } from "./peers.mjs";
import { register, reach, assertTone } from "./sipjs.mjs";

const APP_TONE = 1000; // what the SIP.js app plays
const PEER_TONE = 440; // what baresip plays
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let dir;
let kamailio;
let bob;
let ua;
let factory;

function openssl(...args) {
  execFileSync("openssl", args, { cwd: dir, stdio: ["ignore", "ignore", "pipe"], timeout: 20_000 });
}

/** A self-signed CA `name`-ca.pem/-key.pem in the scratch dir. */
function makeCa(name) {
  openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", `/CN=sipbridge ${name} test CA`,
    "-keyout", `${name}-ca-key.pem`, "-out", `${name}-ca.pem`);
  return join(dir, `${name}-ca.pem`);
}

/** Kamailio's certificate for 127.0.0.1, signed by CA `ca`. */
function makeServerCert(ca) {
  writeFileSync(join(dir, "server.ext"), "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n");
  openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", "server-key.pem", "-out", "server.csr");
  openssl("x509", "-req", "-in", "server.csr", "-CA", `${ca}-ca.pem`, "-CAkey", `${ca}-ca-key.pem`, "-CAcreateserial",
    "-days", "1", "-extfile", "server.ext", "-out", "server.pem");
  return { cert: join(dir, "server.pem"), key: join(dir, "server-key.pem") };
}

before(async () => {
  requireBinary();
  dir = scratchDir("wss");
  const trustedCa = makeCa("trusted");
  makeCa("other");
  kamailio = await startKamailio(dir, { users: [["alice", "a-pw"], ["bob", "b-pw"]], tls: makeServerCert("trusted") });
  writeWav(join(dir, "peer-tone.wav"), tone(PEER_TONE, 120, 8000, 0.3));
  writeWav(join(dir, "app-tone.wav"), tone(APP_TONE, 5, 8000, 0.3));
  bob = await startBaresip(dir, { aor: kamailio.aor("bob"), password: "b-pw", outbound: kamailio.proxyUri("udp"), play: join(dir, "peer-tone.wav") });
  await bob.waitRegistered();

  // SIP.js opens `new WebSocket(url, "sip")`: this one trusts the test CA only.
  const ca = readFileSync(trustedCa);
  globalThis.WebSocket = class extends WebSocket {
    constructor(url, protocols) {
      super(url, protocols, { ca });
    }
  };
  factory = createSessionDescriptionHandlerFactory({
    binary: SIPBRIDGE_BIN,
    codecs: ["PCMU", "PCMA"],
    onStderr: (line) => appendFileSync(join(dir, "sipbridge.log"), line + "\n"),
  });
  ua = new UserAgent({
    uri: UserAgent.makeURI(kamailio.aor("alice")),
    transportOptions: { server: kamailio.wssUrl },
    authorizationUsername: "alice",
    authorizationPassword: "a-pw",
    sessionDescriptionHandlerFactory: factory,
    logBuiltinEnabled: false,
    logLevel: "debug",
    logConnector: (level, category, label, content) => appendFileSync(join(dir, "sipjs.log"), `${level} ${category} ${content}\n`),
  });
  await ua.start();
  await register(ua, kamailio, "SIP.js over wss");
});

after(async () => {
  try {
    await ua?.stop();
  } catch {
    // already down
  }
  await factory?.close();
  await bob?.stop();
  await kamailio?.stop();
});

test("SIP.js registered over wss (Kamailio tls + websocket) calls baresip over udp: tones both ways", { timeout: 60_000 }, async (t) => {
  const known = bob.recordings();
  bob.clearEvents();
  const inviter = new Inviter(ua, UserAgent.makeURI(kamailio.aor("bob")));
  await inviter.invite();
  await reach(inviter, SessionState.Established);
  await bob.waitEvent("call", "CALL_ESTABLISHED");
  const sdh = inviter.sessionDescriptionHandler;
  const appRec = join(dir, "app-heard.wav");
  await sdh.record(appRec);
  await sdh.play(join(dir, "app-tone.wav"), { loop: true });
  await sleep(3000);
  await sdh.stopRecord();
  await inviter.bye();
  await reach(inviter, SessionState.Terminated);
  await bob.waitEvent("call", "CALL_CLOSED");
  await sleep(300);

  assert.match(kamailio.proc.log(), /REQ INVITE sip:bob@example\.test from 127\.0\.0\.1:\d+ \(wss\)/, "the INVITE came over wss");
  const heardByBob = bob.recordings().find((f) => !known.includes(f) && f.endsWith("-dec.wav"));
  assert.ok(heardByBob, `baresip recordings: ${bob.recordings().join(", ")}`);
  const a = assertTone(appRec, PEER_TONE, APP_TONE, "app heard baresip");
  const b = assertTone(join(bob.recDir, heardByBob), APP_TONE, PEER_TONE, "baresip heard the app");
  t.diagnostic(`app heard ${PEER_TONE} Hz (share ${a.share.toFixed(3)}); baresip heard ${APP_TONE} Hz (share ${b.share.toFixed(3)})`);
});

test("a SIP.js client trusting another CA is refused: the TLS error is named, Kamailio keeps serving", { timeout: 60_000 }, async () => {
  writeWav(join(dir, "untrusted-tone.wav"), tone(APP_TONE, 1, 8000, 0.3));
  const caller = new Proc(process.execPath, [
    new URL("./wss-caller.mjs", import.meta.url).pathname,
    "--server", kamailio.wssUrl, "--ca", join(dir, "other-ca.pem"), "--target", kamailio.aor("bob"),
    "--play", join(dir, "untrusted-tone.wav"), "--record", join(dir, "untrusted-heard.wav"), "--limit", "20",
  ], { dir, name: "untrusted-caller", limitMs: 30_000 });
  const { code } = await caller.exited;
  const result = JSON.parse(caller.log().split("\n").find((l) => l.startsWith("{")) ?? "{}");
  assert.equal(code, 1, caller.log());
  assert.match(result.error ?? "", /^cannot connect to wss:\/\/127\.0\.0\.1:\d+: UNABLE_TO_VERIFY_LEAF_SIGNATURE: unable to verify the first certificate$/, caller.log());
  assert.ok(ua.isConnected(), "the trusted app's wss connection is untouched");
});
