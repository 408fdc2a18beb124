// What the Chromium-driving test programs share (chromium-peer.mjs,
// softphone-driver.mjs): the tone WAV for the fake microphone, WAV writing,
// the launch flags, and finding the browser's PID to kill its group.

import { readdirSync, readFileSync } from 'node:fs';

export const RATE = 48000;

// A 16-bit mono PCM WAV at RATE around `pcm` (a Buffer of s16le samples).
export function wavBytes(pcm) {
  const h = Buffer.alloc(44);
  h.write('RIFF', 0);
  h.writeUInt32LE(36 + pcm.length, 4);
  h.write('WAVE', 8);
  h.write('fmt ', 12);
  h.writeUInt32LE(16, 16); // fmt chunk size
  h.writeUInt16LE(1, 20); // PCM
  h.writeUInt16LE(1, 22); // mono
  h.writeUInt32LE(RATE, 24);
  h.writeUInt32LE(RATE * 2, 28); // byte rate
  h.writeUInt16LE(2, 32); // block align
  h.writeUInt16LE(16, 34); // bits per sample
  h.write('data', 36);
  h.writeUInt32LE(pcm.length, 40);
  return Buffer.concat([h, pcm]);
}

// 60 s of sine at amplitude 0.3. Chromium loops the file; with an integer
// frequency a whole number of seconds holds whole periods, so the loop point
// is seamless.
export function toneWav(freq) {
  const n = RATE * 60;
  const pcm = Buffer.alloc(n * 2);
  for (let i = 0; i < n; i++) {
    pcm.writeInt16LE(Math.round(0.3 * 32767 * Math.sin((2 * Math.PI * freq * i) / RATE)), i * 2);
  }
  return wavBytes(pcm);
}

// Our flags on top of Playwright's (--headless, --no-sandbox, ...): no GPU,
// no QUIC/sync/background networking (the machine's network is closed), a
// fake microphone playing `wav` (looped), loopback ICE candidates, audio
// without a user gesture.
export function chromiumArgs(wav) {
  return [
    '--disable-gpu',
    '--disable-quic',
    '--disable-sync',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--use-fake-ui-for-media-stream',
    '--use-fake-device-for-media-stream',
    `--use-file-for-fake-audio-capture=${wav}`,
    '--allow-loopback-in-peer-connection',
    '--autoplay-policy=no-user-gesture-required',
  ];
}

// Playwright spawns the browser detached (own process group, pgid == pid)
// but does not expose its PID for persistent contexts: find our child.
export function findBrowserPid() {
  for (const ent of readdirSync('/proc')) {
    if (!/^\d+$/.test(ent)) continue;
    try {
      const stat = readFileSync(`/proc/${ent}/stat`, 'utf8');
      // Fields after the ")" that closes comm: state ppid ...
      const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(rest[1]) === process.pid && stat.includes('(chromium')) return Number(ent);
    } catch { /* process went away */ }
  }
  return null;
}
