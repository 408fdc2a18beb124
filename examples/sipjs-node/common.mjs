// Shared by the examples: command-line options and a registered SIP.js
// UserAgent whose media comes from sipbridge.

import { parseArgs } from "node:util";
import { WebSocket } from "ws";
import { UserAgent, Registerer, RegistererState } from "sip.js";
import { createSessionDescriptionHandlerFactory } from "sipbridge-sipjs";

// Node 20 has no WebSocket; SIP.js's transport needs one.
globalThis.WebSocket ??= WebSocket;

export const COMMON_OPTIONS = {
  server: { type: "string" }, // ws://127.0.0.1:8080
  aor: { type: "string" }, // sip:alice@example.test
  user: { type: "string" }, // digest user name (default: the AOR's user)
  password: { type: "string" },
  sipbridge: { type: "string" }, // path of the binary (default: sipbridge on PATH)
  "log-sip": { type: "boolean", default: false },
  help: { type: "boolean", default: false },
};

export function options(extra, usage) {
  const { values, positionals } = parseArgs({ options: { ...COMMON_OPTIONS, ...extra }, allowPositionals: true });
  if (values.help || !values.server || !values.aor) {
    console.error(usage);
    process.exit(values.help ? 0 : 2);
  }
  return { values, positionals };
}

/**
 * Starts a UserAgent over WebSocket and registers it (digest auth).
 * Returns {ua, factory, registerer, stop}.
 */
export async function startUserAgent(values, delegate = {}) {
  const factory = createSessionDescriptionHandlerFactory({
    binary: values.sipbridge,
    kind: "rtp",
    onProcessExit: (err) => console.error(`media engine stopped: ${err.message.split("\n")[0]}`),
  });
  const uri = UserAgent.makeURI(values.aor);
  if (!uri) throw new Error(`not a SIP URI: ${values.aor}`);
  const ua = new UserAgent({
    uri,
    transportOptions: { server: values.server },
    authorizationUsername: values.user || uri.user,
    authorizationPassword: values.password,
    sessionDescriptionHandlerFactory: factory,
    logBuiltinEnabled: values["log-sip"],
    logLevel: values["log-sip"] ? "debug" : "error",
    delegate,
  });
  await ua.start();
  const registerer = new Registerer(ua, { expires: 300 });
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no registration at ${values.server} within 10 s`)), 10_000);
    registerer.stateChange.addListener((state) => {
      if (state === RegistererState.Registered) {
        clearTimeout(timer);
        resolve();
      }
    });
    registerer.register({ requestDelegate: { onReject: (r) => reject(new Error(`REGISTER rejected: ${r.message.statusCode} ${r.message.reasonPhrase}`)) } }).catch(reject);
  });
  const stop = async () => {
    await registerer.unregister().catch(() => {});
    await ua.stop().catch(() => {});
    await factory.close();
  };
  return { ua, factory, registerer, stop };
}

/** Prints what went wrong and exits 1 (for failures before any call). */
export function fatal(err) {
  console.error(err.message);
  process.exit(1);
}

/** Calls `fn` once on SIGINT/SIGTERM. */
export function onShutdown(fn) {
  let done = false;
  const handler = async () => {
    if (done) return;
    done = true;
    await fn();
    process.exit(0);
  };
  process.on("SIGINT", handler);
  process.on("SIGTERM", handler);
}
