#!/usr/bin/env node
// An auto-attendant: registers over WebSocket, answers every call, plays a
// prompt, then records the caller until they hang up (or --max-record
// seconds pass), printing every DTMF key the caller presses.

import { join, resolve } from "node:path";
import { mkdirSync } from "node:fs";
import { SessionState } from "sip.js";
import { fatal, options, startUserAgent, onShutdown } from "./common.mjs";

const USAGE = `usage: node auto-attendant.mjs --server ws://HOST:PORT --aor sip:USER@DOMAIN --password PW
         --prompt prompt.wav [--record-dir recordings] [--max-record 60] [--sipbridge PATH]`;
const { values } = options(
  { prompt: { type: "string" }, "record-dir": { type: "string", default: "recordings" }, "max-record": { type: "string", default: "60" } },
  USAGE,
);
if (!values.prompt) {
  console.error(USAGE);
  process.exit(2);
}
const prompt = resolve(values.prompt);
const recordDir = resolve(values["record-dir"]);
mkdirSync(recordDir, { recursive: true });
const maxRecordMs = Number(values["max-record"]) * 1000;
let calls = 0;

const { stop } = await startUserAgent(values, {
  onInvite: (invitation) => answer(invitation).catch((err) => console.error(`call failed: ${err.message}`)),
}).catch(fatal);
console.log(`registered ${values.aor}; waiting for calls`);
onShutdown(stop);

async function answer(invitation) {
  const n = ++calls;
  const caller = invitation.remoteIdentity.uri.toString();
  console.log(`call ${n}: from ${caller}`);
  const ended = new Promise((r) => invitation.stateChange.addListener((s) => s === SessionState.Terminated && r()));
  await invitation.accept();
  const media = invitation.sessionDescriptionHandler;
  media.on("dtmf", (tone) => console.log(`call ${n}: DTMF ${tone}`));
  const file = join(recordDir, `call-${n}-${Date.now()}.wav`);
  ended.then(() => console.log(`call ${n}: ended`));
  try {
    await media.playToEnd(prompt);
    await media.record(file);
    console.log(`call ${n}: recording to ${file}`);
    const timeout = new Promise((r) => setTimeout(r, maxRecordMs).unref());
    await Promise.race([ended, timeout]);
    if (invitation.state === SessionState.Established) {
      console.log(`call ${n}: recorded ${await media.stopRecord()}`);
      await invitation.bye();
    } else {
      console.log(`call ${n}: recorded ${file}`); // closing the session finished the file
    }
  } catch (err) {
    if (invitation.state !== SessionState.Terminated) throw err;
  }
}
