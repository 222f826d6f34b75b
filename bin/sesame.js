#!/usr/bin/env node
// The `sesame` admin command. It runs the built CLI; `npm install` builds it.
import { existsSync } from 'node:fs';

const cli = new URL('../dist/src/cli/main.js', import.meta.url);
if (!existsSync(cli)) {
  process.stderr.write('sesame: not built yet; run `npm run build` first\n');
  process.exit(1);
}
await import(cli.href);
