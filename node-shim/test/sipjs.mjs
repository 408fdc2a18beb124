// What the SIP.js end-to-end tests share: registering a user agent and
// waiting for it, waiting for a session state, and checking a recording
// holds one side's tone and not the other's.

import assert from "node:assert/strict";
import { Registerer, RegistererState } from "sip.js";
import { readWav, toneShare, rms } from "./helpers.mjs";

/** Registers `ua` (started) at `kamailio`; rejects after 10 s with Kamailio's log. */
export async function register(ua, kamailio, what = "SIP.js") {
  const registerer = new Registerer(ua, { expires: 300 });
  const registered = new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${what} did not register; kamailio log:\n${kamailio.proc.tail()}`)), 10_000);
    registerer.stateChange.addListener((s) => {
      if (s === RegistererState.Registered) {
        clearTimeout(t);
        resolve();
      }
    });
  });
  await registerer.register();
  await registered;
}

/** Resolves when `session` reaches `state` (rejects after `ms`). */
export function reach(session, state, ms = 10_000) {
  if (session.state === state) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      session.stateChange.removeListener(on);
      reject(new Error(`session stuck in ${session.state}, wanted ${state}`));
    }, ms);
    const on = (s) => {
      if (s === state) {
        clearTimeout(t);
        session.stateChange.removeListener(on);
        resolve();
      }
    };
    session.stateChange.addListener(on);
  });
}

/** The recording at `path` holds `freq` (not `other`): its length and share. */
export function assertTone(path, freq, other, label) {
  const pcm = readWav(path);
  const secs = pcm.samples.length / pcm.rate;
  const share = toneShare(pcm, freq);
  const wrong = toneShare(pcm, other);
  assert.ok(secs > 1.5, `${label}: only ${secs.toFixed(2)} s in ${path}`);
  assert.ok(rms(pcm) > 0.02, `${label}: silent (rms ${rms(pcm).toFixed(4)}) in ${path}`);
  assert.ok(share > 0.6, `${label}: ${freq} Hz share ${share.toFixed(3)} (${other} Hz ${wrong.toFixed(3)}) in ${path}`);
  assert.ok(wrong < 0.1, `${label}: hears ${other} Hz (share ${wrong.toFixed(3)}) in ${path}`);
  return { secs, share };
}
