// Module resolution for running examples/sipjs-node from the tests without
// an `npm install` there: `sipbridge-sipjs` is this package's source, and
// `sip.js` / `ws` come from this package's node_modules.

const SHIM = new URL("../src/index.js", import.meta.url).href;
const HERE = new URL("../package.json", import.meta.url).href;

export async function resolve(specifier, context, next) {
  if (specifier === "sipbridge-sipjs") return { url: SHIM, shortCircuit: true };
  try {
    return await next(specifier, context);
  } catch (err) {
    if (specifier === "sip.js" || specifier === "ws") return next(specifier, { ...context, parentURL: HERE });
    throw err;
  }
}
