#!/usr/bin/env node
// Starts a throwaway Kamailio on 127.0.0.1 for trying the examples: a
// registrar/proxy with digest auth for alice/alice-pw, bob/bob-pw and
// carol/carol-pw at example.test, SIP over UDP and WebSocket on free ports.
// Uses the node shim's test launcher (node-shim/test/peers.mjs); Ctrl-C stops it.

import { startKamailio, scratchDir } from "../../node-shim/test/peers.mjs";

const dir = scratchDir("kamailio");
const k = await startKamailio(dir, { users: [["alice", "alice-pw"], ["bob", "bob-pw"], ["carol", "carol-pw"]], limitMs: 24 * 3600_000 });
console.log(`kamailio running (pid ${k.proc.pid}), domain example.test, log ${k.proc.logPath}`);
console.log(`  WebSocket (SIP.js):     ${k.wsUrl}`);
console.log(`  UDP (phones, baresip):  ${k.proxyUri("udp")}`);
console.log(`  accounts: alice/alice-pw, bob/bob-pw, carol/carol-pw`);
const quit = async () => {
  await k.stop();
  process.exit(0);
};
process.on("SIGINT", quit);
process.on("SIGTERM", quit);
setInterval(() => {}, 1 << 30);
