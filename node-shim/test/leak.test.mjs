// Thousands of calls through the real `sipbridge stdio`: no listener, request,
// handler or process may be left behind, also across a child that dies.

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { createSessionDescriptionHandlerFactory } from "../src/index.js";
import { SIPBRIDGE_BIN, requireBinary } from "./helpers.mjs";

const CYCLES = Number(process.env.LEAK_CYCLES || 2000);

/** PIDs whose parent is this node process. */
function childPids() {
  const out = [];
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid === process.pid) out.push(Number(d));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

function procFigures(pid) {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const rssKb = Number(/VmRSS:\s+(\d+)/.exec(status)[1]);
  const threads = Number(/Threads:\s+(\d+)/.exec(status)[1]);
  const fds = readdirSync(`/proc/${pid}/fd`).length;
  return { rssKb, threads, fds };
}

function listenerFigures(bridge) {
  const c = bridge.child;
  return {
    bridge: bridge.eventNames().map((n) => `${String(n)}=${bridge.listenerCount(n)}`).join(","),
    stdoutData: c.stdout.listenerCount("data"),
    stderrData: c.stderr.listenerCount("data"),
    stdinError: c.stdin.listenerCount("error"),
    childExit: c.listenerCount("exit"),
    pending: bridge.pendingCount,
  };
}

const stub = (ua) => ({ state: "Established", userAgent: ua, bye: async () => {}, cancel: async () => {} });

test(`${CYCLES} calls (offer, answer, connect, close) through one real child leak nothing`, { timeout: 600_000 }, async (t) => {
  requireBinary();
  const f = createSessionDescriptionHandlerFactory({ binary: SIPBRIDGE_BIN, codecs: ["PCMU"] });
  const ua = {};
  try {
    const bridge = f.getProcess(ua);
    await bridge.ready;
    const warm = [f(stub(ua)), f(stub(ua))];
    await call(warm[0], warm[1]);
    warm.forEach((h) => h.close());
    await settled(bridge);
    const before = listenerFigures(bridge);
    const procBefore = procFigures(bridge.pid);
    const started = Date.now();
    for (let i = 0; i < CYCLES; i++) {
      const a = f(stub(ua));
      const b = f(stub(ua));
      const tones = [];
      a.on("dtmf", (x) => tones.push(x)); // app listeners die with the handler
      await call(a, b);
      a.close();
      b.close();
      assert.equal(a.listenerCount("closed") + b.listenerCount("closed"), 0);
    }
    const ms = Date.now() - started;
    await settled(bridge);
    const after = listenerFigures(bridge);
    const procAfter = procFigures(bridge.pid);
    t.diagnostic(`${CYCLES} calls (2 sessions each) in ${ms} ms, ${(ms / CYCLES).toFixed(2)} ms per call`);
    t.diagnostic(`listeners before ${JSON.stringify(before)} after ${JSON.stringify(after)}`);
    t.diagnostic(`sipbridge before ${JSON.stringify(procBefore)} after ${JSON.stringify(procAfter)}`);
    assert.deepEqual(after, before);
    assert.equal(f.handlerCount, 0);
    assert.equal(f.processes.length, 1);
    assert.deepEqual(childPids(), [bridge.pid]);
    assert.deepEqual((await bridge.request("session.list")).sessions, []);
    // the engine side, reported above, must not grow without bound either
    assert.ok(procAfter.fds <= procBefore.fds + 20, `sipbridge fds ${procBefore.fds} -> ${procAfter.fds}`);

    // a child that dies is replaced, and the dead one leaves nothing behind
    const exited = new Promise((r) => bridge.once("exit", r));
    bridge.kill("SIGKILL");
    await exited;
    for (let i = 0; i < 50; i++) {
      const a = f(stub(ua));
      const b = f(stub(ua));
      await call(a, b);
      a.close();
      b.close();
    }
    const second = f.getProcess(ua);
    assert.notEqual(second.pid, bridge.pid);
    await settled(second);
    assert.deepEqual(listenerFigures(second), before);
    assert.equal(bridge.listenerCount("session.event"), 0);
    assert.equal(f.processes.length, 1);
    assert.deepEqual(childPids(), [second.pid]);
  } finally {
    await f.close();
  }
  assert.deepEqual(childPids(), []);
});

test("per-session children: each call's child ends with it", { timeout: 120_000 }, async (t) => {
  requireBinary();
  const f = createSessionDescriptionHandlerFactory({ binary: SIPBRIDGE_BIN, process: "per-session", codecs: ["PCMU"] });
  const n = 20;
  const started = Date.now();
  try {
    for (let i = 0; i < n; i++) {
      const a = f(stub({}));
      const b = f(stub({}));
      await call(a, b, false);
      const exits = [a.bridge, b.bridge].map((p) => new Promise((r) => p.once("exit", r)));
      a.close();
      b.close();
      await Promise.all(exits);
      assert.equal(f.processes.length, 0);
    }
    t.diagnostic(`${n} calls with a child per session in ${Date.now() - started} ms`);
    assert.deepEqual(childPids(), []);
  } finally {
    await f.close();
  }
});

/** Waits (bounded) until every request sent, the last closes included, was answered. */
async function settled(bridge) {
  const until = Date.now() + 10_000;
  while (bridge.pendingCount > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
  assert.equal(bridge.pendingCount, 0, "requests left unanswered");
  await new Promise((r) => setTimeout(r, 200)); // `closed` events of the last sessions
}

async function call(a, b, connect = true) {
  const offer = await a.getDescription();
  await b.setDescription(offer.body);
  const answer = await b.getDescription();
  await a.setDescription(answer.body);
  if (connect) await a.connect(b);
}
