#!/usr/bin/env node
// The `sesame` admin command. It runs the built CLI; `npm install` builds it.
import { existsSync } from 'node:fs';
import v8 from 'node:v8';

// A command lives a second or two: on the embedded database, compiling PGlite's WebAssembly
// again with the optimising tier would cost more CPU than it saves (about 40 % of a command's).
v8.setFlagsFromString('--liftoff-only');

const cli = new URL('../dist/src/cli/main.js', import.meta.url);
if (!existsSync(cli)) {
  process.stderr.write('sesame: not built yet; run `npm run build` first\n');
  process.exit(1);
}
await import(cli.href);
