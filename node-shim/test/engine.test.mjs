// The shim against the real `sipbridge stdio` without SIP: both media kinds
// negotiate and carry audio, engine errors arrive as BridgeErrors.

import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createSessionDescriptionHandlerFactory, BridgeError } from "../src/index.js";
import { SIPBRIDGE_BIN, requireBinary, tone, writeWav, readWav, toneShare } from "./helpers.mjs";

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function negotiate(a, b) {
  const offer = await a.getDescription();
  await b.setDescription(offer.body);
  const answer = await b.getDescription();
  await a.setDescription(answer.body);
  return { offer: offer.body, answer: answer.body };
}

function connected(h, ms = 10_000) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${h.id} not connected within ${ms} ms`)), ms);
    h.on("connectionstatechange", (s) => {
      if (s === "connected") {
        clearTimeout(t);
        resolve();
      }
    });
  });
}

for (const kind of ["webrtc", "rtp"]) {
  test(`${kind}: two handlers negotiate through the shim and carry a played tone into a recording`, { timeout: 60_000 }, async (t) => {
    requireBinary();
    const dir = mkdtempSync(join(tmpdir(), "node-shim-engine-"));
    const f = createSessionDescriptionHandlerFactory({ binary: SIPBRIDGE_BIN, kind });
    try {
      const a = f.createHandler();
      const b = f.createHandler();
      // WebRTC: both ends see ICE/DTLS come up. RTP: `connected` means the
      // first packet arrived, and only a sends audio here.
      const up = kind === "webrtc" ? Promise.all([connected(a), connected(b)]) : connected(b);
      const { offer, answer } = await negotiate(a, b);
      if (kind === "webrtc") {
        assert.match(offer, /UDP\/TLS\/RTP\/SAVPF/);
        assert.match(offer, /a=fingerprint:/);
        assert.match(offer, /a=candidate:/, "complete SDP: candidates inside");
      } else {
        assert.match(offer, /RTP\/AVP/);
        assert.doesNotMatch(offer, /a=fingerprint:/);
      }
      assert.match(answer, /^v=0/);
      const wav = join(dir, "tone.wav");
      writeWav(wav, tone(880, 5, 16000, 0.3));
      const rec = join(dir, "heard.wav");
      await b.record(rec);
      await a.play(wav, { loop: true });
      await up;
      await sleep(2500);
      assert.equal(await b.stopRecord(), rec);
      const pcm = readWav(rec);
      const share = toneShare(pcm, 880);
      t.diagnostic(`${kind}: ${(pcm.samples.length / pcm.rate).toFixed(1)} s at ${pcm.rate} Hz recorded, 880 Hz share ${share.toFixed(3)}`);
      assert.ok(share > 0.6, `880 Hz share ${share}`);
      a.close();
      b.close();
    } finally {
      await f.close();
    }
  });
}

test("engine errors reach the app as BridgeErrors with code and SIP status", { timeout: 30_000 }, async () => {
  requireBinary();
  const f = createSessionDescriptionHandlerFactory({ binary: SIPBRIDGE_BIN, codecs: ["PCMU"] });
  try {
    const h = f.createHandler();
    await assert.rejects(h.setDescription("v=0\r\nthis is no SDP\r\n"), (e) => e instanceof BridgeError && e.code === 1001);
    const noCommon = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\n";
    await assert.rejects(h.setDescription(noCommon), (e) => e.code === 1002 && e.sipStatus === 488);
    await assert.rejects(h.play("/nonexistent/prompt.wav"), (e) => e instanceof BridgeError && typeof e.code === "number");
    const other = f.createHandler({ kind: "rtp" });
    await other.ready();
    other.close();
    await assert.rejects(h.connect(other), /closed/);
    h.close();
  } finally {
    await f.close();
  }
});
