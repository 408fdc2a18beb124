// node --import ./test/example-loader.mjs ../examples/sipjs-node/X.mjs
import { register } from "node:module";

register("./example-hooks.mjs", import.meta.url);
