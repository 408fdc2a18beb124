// Shared test helpers: the sipbridge binary of this repository, WAV files
// and Goertzel tone detection.

import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { resolve } from "node:path";

export const REPO = resolve(fileURLToPath(new URL("../..", import.meta.url)));
/** The binary under test: $SIPBRIDGE_BIN, else target/debug/sipbridge of this repository. */
export const SIPBRIDGE_BIN = process.env.SIPBRIDGE_BIN || resolve(REPO, "target/debug/sipbridge");

export function requireBinary() {
  if (!existsSync(SIPBRIDGE_BIN)) {
    throw new Error(`${SIPBRIDGE_BIN} is missing: build it first (cargo build -p sipbridge) or set SIPBRIDGE_BIN`);
  }
}

/** A sine of `freq` Hz as 16-bit mono PCM samples (Float32 -1..1). */
export function tone(freq, seconds, rate = 8000, level = 0.3) {
  const n = Math.round(seconds * rate);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = level * Math.sin((2 * Math.PI * freq * i) / rate);
  return { rate, samples: out };
}

export function writeWav(path, { rate, samples }) {
  const data = Buffer.alloc(samples.length * 2);
  for (let i = 0; i < samples.length; i++) data.writeInt16LE(Math.max(-32768, Math.min(32767, Math.round(samples[i] * 32767))), i * 2);
  const h = Buffer.alloc(44);
  h.write("RIFF", 0);
  h.writeUInt32LE(36 + data.length, 4);
  h.write("WAVE", 8);
  h.write("fmt ", 12);
  h.writeUInt32LE(16, 16);
  h.writeUInt16LE(1, 20); // PCM
  h.writeUInt16LE(1, 22); // mono
  h.writeUInt32LE(rate, 24);
  h.writeUInt32LE(rate * 2, 28);
  h.writeUInt16LE(2, 32);
  h.writeUInt16LE(16, 34);
  h.write("data", 36);
  h.writeUInt32LE(data.length, 40);
  writeFileSync(path, Buffer.concat([h, data]));
}

/** Reads a 16-bit PCM WAV (first channel) into {rate, samples}. */
export function readWav(path) {
  const b = readFileSync(path);
  if (b.toString("ascii", 0, 4) !== "RIFF" || b.toString("ascii", 8, 12) !== "WAVE") throw new Error(`${path}: not a WAV file`);
  let off = 12;
  let fmt = null;
  while (off + 8 <= b.length) {
    const id = b.toString("ascii", off, off + 4);
    let size = b.readUInt32LE(off + 4);
    const body = off + 8;
    if (id === "fmt ") {
      fmt = { format: b.readUInt16LE(body), channels: b.readUInt16LE(body + 2), rate: b.readUInt32LE(body + 4), bits: b.readUInt16LE(body + 14) };
    } else if (id === "data") {
      if (!fmt) throw new Error(`${path}: data before fmt`);
      if (fmt.bits !== 16) throw new Error(`${path}: ${fmt.bits}-bit samples, want 16`);
      // a recorder killed before it finished may leave the size at 0 or too big
      if (size === 0 || size === 0xffffffff || body + size > b.length) size = b.length - body;
      const frames = Math.floor(size / (2 * fmt.channels));
      const samples = new Float32Array(frames);
      for (let i = 0; i < frames; i++) samples[i] = b.readInt16LE(body + i * 2 * fmt.channels) / 32768;
      return { rate: fmt.rate, samples };
    }
    off = body + size + (size & 1);
  }
  throw new Error(`${path}: no data chunk`);
}

function goertzelShare(samples, rate, freq) {
  let energy = 0;
  for (const s of samples) energy += s * s;
  if (energy <= 1e-12) return 0;
  const w = (2 * Math.PI * freq) / rate;
  const coeff = 2 * Math.cos(w);
  let s1 = 0;
  let s2 = 0;
  for (const x of samples) {
    const s0 = x + coeff * s1 - s2;
    s2 = s1;
    s1 = s0;
  }
  const power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
  return Math.min(1, (2 * power) / samples.length / energy);
}

/**
 * Share of the signal's energy at `freq` (0..1), Goertzel over 100 ms
 * blocks weighted by energy: a clean tone scores near 1, silence 0.
 */
export function toneShare({ rate, samples }, freq) {
  const block = Math.max(1, Math.floor(rate / 10));
  let t = 0;
  let total = 0;
  for (let i = 0; i + block <= samples.length; i += block) {
    const chunk = samples.subarray(i, i + block);
    let e = 0;
    for (const s of chunk) e += s * s;
    t += goertzelShare(chunk, rate, freq) * e;
    total += e;
  }
  return total <= 1e-12 ? 0 : t / total;
}

export function rms({ samples }) {
  if (samples.length === 0) return 0;
  let e = 0;
  for (const s of samples) e += s * s;
  return Math.sqrt(e / samples.length);
}

