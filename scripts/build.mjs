// Builds Sesame: server TypeScript -> dist/ (transpile only; `npm run typecheck` checks
// types), the server itself -> dist/src/main.js (one file, see below), browser TypeScript ->
// public/js/ (bundled with @simplewebauthn/browser).
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

/** The server's entry point: bundled below, not transpiled with the rest. */
const SERVER = path.join('src', 'main.ts');
/** Where the bundle goes: where `npm start`, the Dockerfile, the bench and the tests run the server. */
const SERVER_BUNDLE = path.join('dist', 'src', 'main.js');

/**
 * Packages the server bundle leaves to Node: PGlite loads its WebAssembly and data files
 * from beside its own module; pg-native is pg's optional native binding; the others are
 * imported only on first use (an upload, a QR code, the first mail), and stay unloaded until then.
 */
const NOT_BUNDLED = [
  '@electric-sql/pglite',
  '@electric-sql/pglite/*',
  'pg-native',
  'multer',
  'qrcode',
  'nodemailer',
  // raw-body's charset decoder: its tables of Asian code pages are ~0.4 MB of the bundle's text,
  // which V8 keeps in the heap for the life of the process (bench/README.md, "2026-12-07,
  // 07:40"). Left to Node, a table loads only when a body in that charset comes.
  'iconv-lite',
];

/**
 * zod names its error messages in 64 languages, all of them in `z.locales`, which the bundle
 * cannot leave out by itself (the namespace is reachable from `z`). Sesame uses those of its
 * own languages (src/http/schemas.ts, one catalog each in locales/); the others were ~0.3 MB of
 * the bundle's text, kept in the heap as the iconv-lite tables above were.
 */
const zodLocalesOfSesame = {
  name: 'zod-locales-of-sesame',
  setup(pluginBuild) {
    const languages = fs
      .readdirSync(path.join(root, 'locales'))
      .filter((file) => file.endsWith('.json'))
      .map((file) => path.basename(file, '.json'));
    pluginBuild.onResolve({ filter: /^\.\.\/locales\/index\.js$/ }, ({ importer, resolveDir }) => {
      if (!importer.includes(`${path.sep}zod${path.sep}`)) return undefined;
      const dir = path.join(resolveDir, '..', 'locales');
      return { path: 'zod/locales', namespace: 'zod-locales', pluginData: dir };
    });
    pluginBuild.onLoad({ filter: /.*/, namespace: 'zod-locales' }, ({ pluginData: dir }) => ({
      contents: languages
        .filter((language) => fs.existsSync(path.join(dir, `${language}.js`)))
        .map((language) => `export { default as ${language} } from ${JSON.stringify(`./${language}.js`)};`)
        .join('\n'),
      resolveDir: dir,
    }));
  },
};

/**
 * npm nests a second copy of a package where the top level holds another version: koa and
 * type-is each have their own mime-types 3.0.2 and mime-db 1.54.0 (the top level has 2.x for
 * co-body). Bundled as they lie, each copy's text and each loaded mime database stayed in the
 * heap (~0.4 MB a copy). One copy per name and version is bundled; the others import it.
 */
const oneCopyPerVersion = {
  name: 'one-copy-per-version',
  setup(pluginBuild) {
    const copies = new Map();
    pluginBuild.onResolve(
      { filter: /^[^./]/ },
      async ({ path: request, kind, importer, resolveDir, pluginData }) => {
        if (pluginData === oneCopyPerVersion) return undefined;
        const found = await pluginBuild.resolve(request, {
          kind,
          importer,
          resolveDir,
          pluginData: oneCopyPerVersion,
        });
        const nested = /^(.*[\\/]node_modules[\\/](?:@[^\\/]+[\\/])?[^\\/]+)[\\/]/.exec(found.path ?? '');
        // Not found: esbuild's own resolution decides, which leaves a `require` in a try block
        // (debug's optional supports-color, absent from a production install) to run time.
        if (found.errors.length) return undefined;
        if (found.external || !nested) return found;
        const packageDir = nested[1];
        const { name, version } = JSON.parse(fs.readFileSync(path.join(packageDir, 'package.json'), 'utf8'));
        const key = `${name}@${version}`;
        if (!copies.has(key)) copies.set(key, packageDir);
        return { ...found, path: path.join(copies.get(key), path.relative(packageDir, found.path)) };
      },
    );
  },
};

const started = Date.now();
await build({
  absWorkingDir: root,
  // The benchmark drives passkey logins with the tests' software authenticator, and reads the
  // login page's passkey options as they do.
  entryPoints: [
    ...tsFiles('src').filter((file) => file !== SERVER),
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

// The server as one file. Loaded as ~1,700 modules (oidc-provider, Kysely, zod, SimpleWebAuthn's
// ASN.1 parsers, …) it took 1.4–2.7 s from spawn to the first answer on this machine, most of
// it resolving, opening and compiling files; as one file 0.8–1.5 s (bench/README.md,
// "2026-12-05, 12:00–13:15"). Whitespace is left out (~30 % smaller, ~5 MB less RSS); names
// are kept, so a stack trace still names its functions, and main.js.map maps it back to the
// sources (`node --enable-source-maps`). Where a name would clash in the bundle's one scope,
// esbuild renames it (oidc-provider's `Client` class becomes `Client2`, `respond` in Koa
// `respond4`), and such a class's `name` changes: see the check of oidc-provider's model
// classes below. esbuild's keepNames would give the names back, but it sets them on every
// function as it is made, the closures of every request included: ~210 µs more CPU per login
// in a profile. The CLI, the bench and the tests' imports use the transpiled modules beside
// it. Bundled CommonJS code calls `require` for Node's own modules.
await build({
  absWorkingDir: root,
  entryPoints: [SERVER],
  outfile: SERVER_BUNDLE,
  bundle: true,
  external: NOT_BUNDLED,
  plugins: [zodLocalesOfSesame, oneCopyPerVersion],
  platform: 'node',
  format: 'esm',
  target: 'node20',
  minifyWhitespace: true,
  banner: {
    js: "import { createRequire as sesameCreateRequire } from 'node:module'; const require = sesameCreateRequire(import.meta.url);",
  },
  sourcemap: 'linked',
  logLevel: 'warning',
});

// oidc-provider reads the names of its model classes: a model's kind (BaseModel's
// `this.constructor.name`), its TTL setting (`ttl[this.name]`). esbuild renames a class whose
// name would clash in the bundle's one scope (its `Client`, whose name it does not read, is
// `Client2`), so the build stops if one of those is renamed.
const modelsDir = path.join(root, 'node_modules', 'oidc-provider', 'lib', 'models');
const namedModels = new Set(
  fs
    .readdirSync(modelsDir)
    .filter((file) => file.endsWith('.js'))
    .flatMap((file) => {
      const source = fs.readFileSync(path.join(modelsDir, file), 'utf8');
      const readsName = /\b(this|this\.constructor)\.name\b/.test(source);
      return [...source.matchAll(/\bclass (\w+)( extends)?/g)]
        .filter(([, , extending]) => extending || readsName)
        .map(([, name]) => name);
    }),
);
const bundled = fs.readFileSync(path.join(root, SERVER_BUNDLE), 'utf8');
const renamedModels = [...bundled.matchAll(/\bclass (\w+?)\d+\b/g)]
  .map(([, name]) => name)
  .filter((name) => namedModels.has(name));
if (renamedModels.length) {
  throw new Error(
    `the server bundle renamed oidc-provider's model classes ${[...new Set(renamedModels)].join(', ')}, whose names it reads`,
  );
}

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
