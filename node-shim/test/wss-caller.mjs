#!/usr/bin/env node
// One call over SIP on secure WebSocket, for tests/tests/sip_wss.rs: SIP.js
// (with this shim's media) connects to a wss:// server trusting only the CA
// file given, calls TARGET, plays a tone WAV and records what it hears for
// SECONDS, then hangs up. Prints one JSON line: {"ok":true} or
// {"error":"..."}, where a failed connection names the TLS error that
// closed it. Exits after LIMIT seconds whatever happens.
//
//   node wss-caller.mjs --server wss://127.0.0.1:PORT --ca CA.pem \
//        --target sip:echo@127.0.0.1 --play tone.wav --record heard.wav [--seconds 4]

import { readFileSync } from "node:fs";
import { WebSocket } from "ws";
import { UserAgent, Inviter, SessionState } from "sip.js";
import { createSessionDescriptionHandlerFactory } from "../src/index.js";
import { SIPBRIDGE_BIN } from "./helpers.mjs";

const opts = { seconds: 4, limit: 30 };
for (let i = 2; i < process.argv.length; i++) {
  const key = process.argv[i].replace(/^--/, "");
  opts[key] = process.argv[++i];
}
for (const required of ["server", "ca", "target", "play", "record"]) {
  if (!opts[required]) {
    process.stderr.write(`wss-caller: --${required} is missing\n`);
    process.exit(2);
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let tlsError = null;
let factory = null;
let ua = null;

function finish(result) {
  process.stdout.write(JSON.stringify(result) + "\n");
  Promise.resolve(ua?.stop())
    .catch(() => {})
    .then(() => factory?.close())
    .finally(() => process.exit(result.ok ? 0 : 1));
}
setTimeout(() => finish({ error: `no result after ${opts.limit} s` }), Number(opts.limit) * 1000).unref();

// SIP.js opens `new WebSocket(url, "sip")`: this one trusts only --ca and
// keeps the TLS error, which SIP.js reduces to "closed (1006)".
const ca = readFileSync(opts.ca);
globalThis.WebSocket = class extends WebSocket {
  constructor(url, protocols) {
    super(url, protocols, { ca });
    this.on("error", (e) => {
      tlsError = `${e.code || "error"}: ${e.message}`;
    });
  }
};

const reach = (session, state, ms) =>
  new Promise((resolve, reject) => {
    if (session.state === state) return resolve();
    const t = setTimeout(() => reject(new Error(`session stuck in ${session.state}, wanted ${state}`)), ms);
    session.stateChange.addListener((s) => {
      if (s === state) {
        clearTimeout(t);
        resolve();
      }
    });
  });

try {
  factory = createSessionDescriptionHandlerFactory({
    binary: SIPBRIDGE_BIN,
    codecs: ["PCMU"],
    onStderr: (line) => process.stderr.write(`[sipbridge] ${line}\n`),
  });
  ua = new UserAgent({
    uri: UserAgent.makeURI("sip:wss-caller@example.test"),
    transportOptions: { server: opts.server },
    sessionDescriptionHandlerFactory: factory,
    logBuiltinEnabled: false,
  });
  try {
    await ua.start();
  } catch (e) {
    await sleep(100); // the socket's error event comes with or after the close
    throw new Error(`cannot connect to ${opts.server}: ${tlsError || e.message}`);
  }
  const inviter = new Inviter(ua, UserAgent.makeURI(opts.target));
  await inviter.invite();
  await reach(inviter, SessionState.Established, 10_000);
  const sdh = inviter.sessionDescriptionHandler;
  await sdh.record(opts.record);
  await sdh.play(opts.play, { loop: true });
  await sleep(Number(opts.seconds) * 1000);
  await sdh.stopRecord();
  await inviter.bye();
  await reach(inviter, SessionState.Terminated, 5000);
  finish({ ok: true });
} catch (e) {
  finish({ error: e.message });
}
