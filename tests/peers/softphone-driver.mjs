#!/usr/bin/env node
// Drives the gateway's own softphone page (examples/web/, served by
// `sipbridge gateway` at /) in Debian's headless Chromium, for the
// gateway_* tests. JSON lines on stdin/stdout like chromium-peer.mjs:
//
//   -> {"id":1,"cmd":"click","selector":"#register"}
//   <- {"id":1}                       (or {"id":1,"error":"..."})
//   <- {"event":"gw","data":{...}}    every event the page sees (sip.event
//                                     params, ws state, pcstate, rpcerror)
//
// --trust-spki B64 makes Chromium accept a server chain holding that key
// (base64 SHA-256 of a SubjectPublicKeyInfo; a test CA's), for https:// pages.
//
// Commands: fill {selector,value}, click {selector}, check {selector,checked},
// select {selector,value}, invoke {fn,args}: window.softphone[fn](...args),
// request {method,params}: one JSON-RPC request -> {response: {result}|{error}},
// raw {text}: send text as is, eval {expr}: an expression in the page, record {ms,path}: the page's received audio
// as a WAV, screenshot {path}, text {selector}, close.
//
// The browser is /usr/bin/chromium, never a downloaded one; the fake
// microphone plays a tone WAV; Chromium's process group is killed by PID
// on every way out.

import { chromium } from 'playwright-core';
import { createInterface } from 'node:readline';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { RATE, wavBytes, toneWav, chromiumArgs, findBrowserPid } from './chromium-common.mjs';

const opts = { tone: 440, url: null, logPrefix: 'softphone', trustSpki: null, chromium: process.env.CHROMIUM_PATH || '/usr/bin/chromium' };
for (let i = 2; i < process.argv.length; i++) {
  const a = process.argv[i];
  const v = () => process.argv[++i];
  if (a === '--tone') opts.tone = Number(v());
  else if (a === '--url') opts.url = v();
  else if (a === '--log-prefix') opts.logPrefix = v();
  else if (a === '--chromium') opts.chromium = v();
  else if (a === '--trust-spki') opts.trustSpki = v();
  else { process.stderr.write(`softphone-driver: unknown argument ${a}\n`); process.exit(2); }
}
if (!opts.url) { process.stderr.write('usage: softphone-driver.mjs --url http[s]://HOST:PORT/ [--tone HZ] [--trust-spki B64]\n'); process.exit(2); }

const log = (m) => process.stderr.write(`[${opts.logPrefix}] ${m}\n`);
const send = (o) => process.stdout.write(JSON.stringify(o) + '\n');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const workDir = mkdtempSync(join(tmpdir(), 'softphone-'));
let context = null;
let page = null;
let browserPid = null;
let shuttingDown = false;

function cleanupSync() {
  if (browserPid) { try { process.kill(-browserPid, 'SIGKILL'); } catch { /* gone */ } browserPid = null; }
  try { rmSync(workDir, { recursive: true, force: true }); } catch { /* best effort */ }
}

async function shutdown(code, why) {
  if (shuttingDown) return;
  shuttingDown = true;
  log(`shutting down (${why})`);
  if (context) await Promise.race([context.close().catch(() => {}), sleep(3000)]);
  cleanupSync();
  process.exit(code);
}
process.on('exit', cleanupSync);
process.on('SIGTERM', () => shutdown(143, 'SIGTERM'));
process.on('SIGINT', () => shutdown(130, 'SIGINT'));
process.stdout.on('error', () => shutdown(0, 'stdout closed'));

// Records the page's remote stream (what the user hears) in the page.
const RECORD = async ({ ms, rate }) => {
  const call = window.softphone.call;
  const tracks = call && call.pc ? call.pc.getReceivers().map((r) => r.track).filter((t) => t && t.kind === 'audio') : [];
  const stream = window.softphone.remoteStream || (tracks.length ? new MediaStream(tracks) : null);
  if (!stream) throw new Error('no remote audio (no call with media)');
  const worklet = `class R extends AudioWorkletProcessor {
    constructor() { super(); this.buf = null; this.pos = 0;
      this.port.onmessage = (e) => { this.buf = new Float32Array(e.data.n); this.pos = 0; }; }
    process(inputs) { if (this.buf) { const ch = inputs[0] || []; const f = ch.length ? ch[0].length : 128;
      const n = Math.min(f, this.buf.length - this.pos);
      for (let i = 0; i < n; i++) this.buf[this.pos + i] = ch.length ? ch[0][i] : 0;
      this.pos += n; if (this.pos >= this.buf.length) { this.port.postMessage(this.buf, [this.buf.buffer]); this.buf = null; } }
      return true; } }
    registerProcessor('rec', R);`;
  const ctx = new AudioContext({ sampleRate: rate });
  await ctx.audioWorklet.addModule('data:application/javascript,' + encodeURIComponent(worklet));
  const node = new AudioWorkletNode(ctx, 'rec', { numberOfInputs: 1, numberOfOutputs: 1, outputChannelCount: [1] });
  node.connect(ctx.destination);
  ctx.createMediaStreamSource(stream).connect(node);
  await ctx.resume();
  const n = Math.round(rate * ms / 1000);
  const got = new Promise((res) => { node.port.onmessage = (e) => res(e.data); });
  node.port.postMessage({ n });
  const f32 = await got;
  await ctx.close();
  const bytes = new Uint8Array(n * 2);
  const view = new DataView(bytes.buffer);
  for (let i = 0; i < n; i++) view.setInt16(i * 2, Math.round(Math.max(-1, Math.min(1, f32[i])) * 32767), true);
  let bin = '';
  for (let i = 0; i < bytes.length; i += 0x8000) bin += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  return btoa(bin);
};

const handlers = {
  fill: (r) => page.fill(r.selector, String(r.value ?? '')),
  click: (r) => page.click(r.selector, { timeout: 10000 }),
  check: (r) => page.setChecked(r.selector, r.checked !== false),
  select: (r) => page.selectOption(r.selector, String(r.value)),
  text: async (r) => ({ text: await page.textContent(r.selector) }),
  invoke: async (r) => ({ value: await page.evaluate(({ fn, args }) => window.softphone[fn](...(args || [])), { fn: r.fn, args: r.args }) }),
  request: async (r) => ({ response: await page.evaluate(({ method, params }) => window.softphone.request(method, params), { method: r.method, params: r.params ?? {} }) }),
  eval: async (r) => ({ value: await page.evaluate(String(r.expr)) }),
  raw: (r) => page.evaluate((t) => window.softphone.sendRaw(t), String(r.text)),
  record: async (r) => {
    const ms = Number(r.ms);
    if (!(ms > 0) || typeof r.path !== 'string') throw new Error('record needs ms > 0 and path');
    const b64 = await page.evaluate(RECORD, { ms, rate: RATE });
    const pcm = Buffer.from(b64, 'base64');
    writeFileSync(resolve(r.path), wavBytes(pcm));
    return { path: resolve(r.path), samples: pcm.length / 2 };
  },
  screenshot: async (r) => { await page.screenshot({ path: resolve(r.path), fullPage: true }); return {}; },
  close: async () => ({}),
};

function cleanError(e) {
  return String((e && e.message) || e).replace(/^page\.\w+:\s*/, '').replace(/^Error:\s*/, '').split('\n')[0];
}

async function handleLine(line) {
  if (!line.trim()) return;
  let req;
  try { req = JSON.parse(line); } catch (e) { send({ id: null, error: `bad JSON: ${e.message}` }); return; }
  const id = typeof req.id === 'number' ? req.id : null;
  const h = Object.hasOwn(handlers, req.cmd) ? handlers[req.cmd] : null;
  if (id === null || !h) { send({ id, error: `bad request: ${line.slice(0, 100)}` }); return; }
  try {
    const res = await h(req);
    send({ id, ...(res && typeof res === 'object' ? res : {}) });
  } catch (e) {
    send({ id, error: cleanError(e) });
  }
  if (req.cmd === 'close') await shutdown(0, 'close command');
}

async function main() {
  const wav = join(workDir, `tone-${opts.tone}.wav`);
  writeFileSync(wav, toneWav(opts.tone));
  context = await chromium.launchPersistentContext(join(workDir, 'profile'), {
    executablePath: opts.chromium,
    headless: true,
    timeout: 30000,
    viewport: { width: 1180, height: 820 },
    args: [
      ...chromiumArgs(wav),
      // Honoured with a user data dir, which a persistent context has.
      ...(opts.trustSpki ? [`--ignore-certificate-errors-spki-list=${opts.trustSpki}`] : []),
    ],
  });
  browserPid = findBrowserPid();
  context.on('close', () => { if (!shuttingDown) shutdown(1, 'browser gone'); });
  page = context.pages()[0] || (await context.newPage());
  page.on('console', (m) => log(`page ${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => log(`page error: ${e.message}`));
  await page.exposeFunction('softphoneEvent', (ev) => { if (!shuttingDown) send({ event: 'gw', data: ev }); });
  await page.goto(opts.url);
  log(`opened ${opts.url.replace(/token=[^&]*/, 'token=***')}`);
  send({ event: 'ready' });
  const rl = createInterface({ input: process.stdin, crlfDelay: Infinity });
  rl.on('line', (l) => { handleLine(l).catch((e) => log(`handler failed: ${e.stack || e}`)); });
  rl.on('close', () => shutdown(0, 'stdin EOF'));
}

main().catch((e) => {
  log(`startup failed: ${e.stack || e}`);
  send({ event: 'error', error: cleanError(e) });
  shutdown(1, 'startup failure');
});
