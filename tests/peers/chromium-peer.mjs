#!/usr/bin/env node
// WebRTC test peer: Debian's headless Chromium driven by playwright-core.
//
// Protocol (JSON lines on stdin/stdout) and usage: see README.md beside this
// file. stdout carries protocol lines only; every log goes to stderr.
//
// Why it is built this way:
// - The browser is /usr/bin/chromium (Debian), never a downloaded one.
// - Its "microphone" is Chromium's fake capture device playing a tone WAV we
//   generate, so the far end can check a known frequency.
// - The page is a local file (file:// is a secure context for getUserMedia);
//   nothing is served over the network, and ICE uses no STUN/TURN.
// - Chromium runs in its own process group (Playwright spawns it detached);
//   we kill that group by PID on every way out, and remove its profile dir.
//   If this process is SIGKILLed, Chromium still exits (its DevTools pipe
//   closes) but the temp dir stays behind: prefer SIGTERM or "close".

import { chromium } from 'playwright-core';
import { createInterface } from 'node:readline';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { RATE, wavBytes, toneWav, chromiumArgs, findBrowserPid } from './chromium-common.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));

// ---------------------------------------------------------------- arguments
function parseArgs(argv) {
  const opts = { tone: 440, logPrefix: 'chromium-peer', chromium: process.env.CHROMIUM_PATH || '/usr/bin/chromium' };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      if (i + 1 >= argv.length) usage(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--tone') opts.tone = Number(val());
    else if (a === '--log-prefix') opts.logPrefix = val();
    else if (a === '--chromium') opts.chromium = val();
    else if (a === '-h' || a === '--help') usage(null);
    else usage(`unknown argument ${a}`);
  }
  if (!(opts.tone > 0 && opts.tone < RATE / 2)) usage('--tone must be a frequency in Hz, 0 < f < 24000');
  return opts;
}

function usage(err) {
  if (err) process.stderr.write(`chromium-peer: ${err}\n`);
  process.stderr.write('usage: chromium-peer.mjs [--tone HZ] [--log-prefix NAME] [--chromium PATH]\n');
  process.exit(err ? 2 : 0);
}

const opts = parseArgs(process.argv.slice(2));
const log = (msg) => process.stderr.write(`[${opts.logPrefix}] ${msg}\n`);
const send = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');

// ---------------------------------------------------------------- WAV helpers
function rmsOf(pcm) {
  let sum = 0;
  const n = pcm.length / 2;
  for (let i = 0; i < n; i++) {
    const v = pcm.readInt16LE(i * 2) / 32768;
    sum += v * v;
  }
  return n ? Math.sqrt(sum / n) : 0;
}

// ---------------------------------------------------------------- lifecycle
const workDir = mkdtempSync(join(tmpdir(), 'chromium-peer-'));
const profileDir = join(workDir, 'profile');
let context = null;
let page = null;
let browserPid = null;
let shuttingDown = false;

function killBrowserGroup() {
  if (!browserPid) return;
  try {
    process.kill(-browserPid, 'SIGKILL');
  } catch { /* already gone */ }
  browserPid = null;
}

function cleanupSync() {
  killBrowserGroup();
  try {
    rmSync(workDir, { recursive: true, force: true });
  } catch { /* best effort */ }
}

async function shutdown(code, why) {
  if (shuttingDown) return;
  shuttingDown = true;
  log(`shutting down (${why})`);
  if (page) await Promise.race([page.evaluate(() => window.peer.close()).catch(() => {}), sleep(1000)]);
  // Polite close lets Chromium flush; the group kill after it catches strays.
  if (context) await Promise.race([context.close().catch(() => {}), sleep(3000)]);
  cleanupSync();
  process.exit(code);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

process.on('exit', cleanupSync); // last resort, synchronous
process.on('SIGTERM', () => shutdown(143, 'SIGTERM'));
process.on('SIGINT', () => shutdown(130, 'SIGINT'));
process.on('SIGHUP', () => shutdown(129, 'SIGHUP'));
process.stdout.on('error', () => shutdown(0, 'stdout closed'));

// ---------------------------------------------------------------- commands
// Page-side calls raise Playwright errors like "page.evaluate: Error: msg\n
// at ..."; reply with just the message.
function cleanError(e) {
  let m = String((e && e.message) || e);
  m = m.replace(/^page\.evaluate:\s*/, '').replace(/^Error:\s*/, '');
  return m.split('\n')[0];
}

const call = (fn, ...args) => page.evaluate(({ fn, args }) => window.peer[fn](...args), { fn, args });

const handlers = {
  createOffer: (r) => call('createOffer', Boolean(r.video)),
  createAnswer: () => call('createAnswer'),
  setRemoteDescription: (r) => {
    if (r.type !== 'offer' && r.type !== 'answer') throw new Error('type must be "offer" or "answer"');
    if (typeof r.sdp !== 'string') throw new Error('sdp must be a string');
    return call('setRemoteDescription', r.type, r.sdp);
  },
  addIceCandidate: (r) => call('addIceCandidate', r.candidate ?? '', r.sdpMLineIndex ?? null, r.sdpMid ?? null),
  waitConnected: (r) => call('waitConnected', Number(r.timeoutMs ?? 15000)),
  record: async (r) => {
    const ms = Number(r.ms);
    if (!(ms > 0)) throw new Error('ms must be a positive number');
    if (typeof r.path !== 'string' || !r.path) throw new Error('path is required');
    const path = resolve(r.path);
    const res = await call('record', ms);
    const pcm = Buffer.from(res.b64, 'base64');
    writeFileSync(path, wavBytes(pcm));
    return { path, samples: res.samples, rms: Number(rmsOf(pcm).toFixed(6)) };
  },
  sendDtmf: (r) => {
    if (typeof r.tones !== 'string' || !/^[0-9A-Da-d#*,]+$/.test(r.tones)) {
      throw new Error('tones must be a non-empty string of 0-9 A-D # * ,');
    }
    return call('sendDtmf', r.tones, Number(r.duration ?? 100), Number(r.gap ?? 70));
  },
  stats: () => call('stats'),
  close: async () => ({}),
};

// Signalling commands run one after another (so pipelined setRemoteDescription
// + createAnswer keep their order); the rest run at once, so e.g. stats or
// sendDtmf can be asked during a record. Match replies by id.
const SERIAL = new Set(['createOffer', 'createAnswer', 'setRemoteDescription', 'addIceCandidate']);
let chain = Promise.resolve();
const inflight = new Set(); // every running command, awaited on stdin EOF

async function handleLine(line) {
  if (!line.trim()) return;
  let req;
  try {
    req = JSON.parse(line);
  } catch (e) {
    send({ id: null, error: `bad JSON: ${e.message}` });
    return;
  }
  if (req === null || typeof req !== 'object' || Array.isArray(req)) {
    send({ id: null, error: 'request must be a JSON object' });
    return;
  }
  const id = typeof req.id === 'number' ? req.id : null;
  if (id === null) {
    send({ id: null, error: 'request needs a numeric id' });
    return;
  }
  const h = Object.hasOwn(handlers, req.cmd) ? handlers[req.cmd] : null;
  if (!h) {
    send({ id, error: `unknown cmd ${JSON.stringify(req.cmd)}` });
    return;
  }
  const run = async () => {
    try {
      const res = await h(req);
      send({ id, ...res });
    } catch (e) {
      send({ id, error: cleanError(e) });
    }
  };
  const p = SERIAL.has(req.cmd) ? (chain = chain.then(run)) : run();
  inflight.add(p);
  await p.finally(() => inflight.delete(p));
  if (req.cmd === 'close') await shutdown(0, 'close command');
}

// ---------------------------------------------------------------- start
async function main() {
  const t0 = Date.now();
  const wav = join(workDir, `tone-${opts.tone}.wav`);
  writeFileSync(wav, toneWav(opts.tone));

  context = await chromium.launchPersistentContext(profileDir, {
    executablePath: opts.chromium,
    headless: true,
    timeout: 30000,
    // Playwright adds --headless, --no-sandbox, ...; ours are in chromium-common.mjs.
    args: chromiumArgs(wav),
    // Playwright's headless --mute-audio is kept: it does not stop the remote
    // audio being decoded and heard by WebAudio (the <audio> element does).
  });
  browserPid = findBrowserPid();
  log(`chromium launched, pid ${browserPid} (${Date.now() - t0} ms)`);
  context.on('close', () => {
    if (!shuttingDown) {
      log('browser closed unexpectedly');
      shutdown(1, 'browser gone');
    }
  });

  page = context.pages()[0] || (await context.newPage());
  page.on('console', (m) => log(`page ${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => log(`page error: ${e.message}`));
  page.on('crash', () => shutdown(1, 'page crashed'));
  await page.exposeFunction('peerEvent', (ev) => {
    if (!shuttingDown) send(ev);
  });
  await page.goto(pathToFileURL(join(HERE, 'chromium-page.html')).href);
  const info = await page.evaluate(() => window.peer.init());
  log(`page ready: ${JSON.stringify(info)} (${Date.now() - t0} ms after launch start)`);

  send({ event: 'ready' });

  const rl = createInterface({ input: process.stdin, crlfDelay: Infinity });
  rl.on('line', (line) => {
    handleLine(line).catch((e) => log(`handler failed: ${e.stack || e}`));
  });
  rl.on('close', () => {
    // Let commands already in flight (e.g. a record) answer first, bounded.
    Promise.race([Promise.allSettled([...inflight]), sleep(15000)]).then(() => shutdown(0, 'stdin EOF'));
  });
}

main().catch((e) => {
  log(`startup failed: ${e.stack || e}`);
  send({ event: 'error', error: `startup failed: ${cleanError(e)}` });
  shutdown(1, 'startup failure');
});
