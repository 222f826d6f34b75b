// Builds Sesame: server TypeScript -> dist/ (transpile only; `npm run typecheck` checks
// types), browser TypeScript -> public/js/ (bundled with @simplewebauthn/browser).
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

function tsFiles(dir) {
  const full = path.join(root, dir);
  if (!fs.existsSync(full)) return [];
  return fs
    .readdirSync(full, { recursive: true })
    .map(String)
    .filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts') && !f.startsWith(`client${path.sep}`))
    .map((f) => path.join(dir, f));
}

const started = Date.now();
await build({
  absWorkingDir: root,
  // The benchmark drives passkey logins with the tests' software authenticator, and reads the
  // login page's passkey options as they do.
  entryPoints: [
    ...tsFiles('src'),
    ...tsFiles('migrations'),
    ...tsFiles('bench'),
    'test/support/softAuthenticator.ts',
    'test/support/pageOptions.ts',
  ],
  outdir: 'dist',
  outbase: '.',
  platform: 'node',
  format: 'esm',
  target: 'node20',
  sourcemap: 'linked',
  logLevel: 'warning',
});

const clientDir = path.join(root, 'src', 'client');
const pages = fs
  .readdirSync(clientDir)
  .filter((f) => f.endsWith('.ts') && !['api.ts', 'signals.ts', 'stepUp.ts'].includes(f))
  .map((f) => path.join('src', 'client', f));
await build({
  absWorkingDir: root,
  entryPoints: pages,
  outdir: 'public/js',
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: ['chrome109', 'firefox115', 'safari16'],
  minify: true,
  sourcemap: 'linked',
  logLevel: 'warning',
});
// An initialised PGlite cluster that a first start copies instead of running initdb
// (src/db/pgliteTemplate.ts); made once per PGlite version, skipped when current.
const { ensurePGliteTemplate } = await import('../dist/src/db/pgliteTemplate.js');
const template = await ensurePGliteTemplate();
// Before `npm start` the server's log follows on stderr, and it is JSON lines only.
if (process.env.npm_lifecycle_event !== 'prestart') {
  console.error(
    `sesame: built in ${Date.now() - started} ms${template === 'built' ? ' (with a new embedded-database template)' : ''}`,
  );
}
