#!/usr/bin/env node
// Click-to-call: dials party A, and once A answers dials party B, then
// bridges the two calls' audio (a B2BUA in a few lines). When either side
// hangs up, the other is hung up too.

import { Inviter, SessionState, UserAgent } from "sip.js";
import { fatal, options, startUserAgent } from "./common.mjs";

const USAGE = `usage: node click-to-call.mjs --server ws://HOST:PORT --aor sip:USER@DOMAIN --password PW
         sip:partyA@DOMAIN sip:partyB@DOMAIN [--sipbridge PATH]`;
const { values, positionals } = options({}, USAGE);
if (positionals.length !== 2) {
  console.error(USAGE);
  process.exit(2);
}
const [a, b] = positionals.map((p) => {
  const uri = UserAgent.makeURI(p);
  if (!uri) {
    console.error(`not a SIP URI: ${p}`);
    process.exit(2);
  }
  return uri;
});

const { ua, stop } = await startUserAgent(values).catch(fatal);
let exitCode = 0;
try {
  console.log(`calling ${a}`);
  const legA = await dial(a);
  console.log(`${a} answered; calling ${b}`);
  let legB;
  try {
    legB = await dial(b);
  } catch (err) {
    await legA.bye().catch(() => {});
    throw err;
  }
  console.log(`${b} answered; bridging`);
  const { passthrough } = await legA.sessionDescriptionHandler.connect(legB.sessionDescriptionHandler);
  console.log(`bridged (${passthrough ? "same codec: passthrough" : "transcoding"})`);
  // Whoever hangs up first ends the other leg.
  const first = await Promise.race([ended(legA).then(() => legB), ended(legB).then(() => legA)]);
  if (first.state === SessionState.Established) await first.bye();
  await Promise.all([ended(legA), ended(legB)]);
  console.log("call over");
} catch (err) {
  console.error(`click-to-call failed: ${err.message}`);
  exitCode = 1;
} finally {
  await stop();
}
process.exit(exitCode);

/**
 * Places a call and resolves once it is answered (rejects if it is not).
 * The INVITE carries no SDP (a delayed offer, as third-party call control
 * does it, RFC 3725): the party offers in its 200 OK and we answer in the ACK.
 */
async function dial(target) {
  const inviter = new Inviter(ua, target, { inviteWithoutSdp: true });
  const answered = new Promise((resolve, reject) => {
    inviter.stateChange.addListener((state) => {
      if (state === SessionState.Established) resolve(inviter);
      if (state === SessionState.Terminated) reject(new Error(`${target} did not answer`));
    });
  });
  await inviter.invite();
  return answered;
}

function ended(session) {
  if (session.state === SessionState.Terminated) return Promise.resolve();
  return new Promise((r) => session.stateChange.addListener((s) => s === SessionState.Terminated && r()));
}
