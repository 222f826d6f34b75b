import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { migrations } from '../../migrations/index.js';
import { ROOT } from '../paths.js';
import { makePrivate } from './privateFiles.js';
import type { Database } from './schema.js';

/**
 * A fresh PGlite data directory costs an initdb in WebAssembly: 4–6 s on two cores, most of
 * a first start, and then every migration (another second or more). The build runs both
 * once, into this directory; a first start copies it (about 1 s) instead and finds nothing
 * left to migrate. Migrations only make the schema (no keys, secrets or rows of an
 * installation), so one template serves every installation. The copy is only used by the
 * PGlite version that made it, and only when every migration in it is still one of Sesame's;
 * migrations added since it was made run at the start as usual.
 */
export const PGLITE_TEMPLATE_DIR = path.join(ROOT, 'dist', 'pglite-template');
const VERSION_FILE = `${PGLITE_TEMPLATE_DIR}.version`;

/** What the template was made with: the PGlite version and the migrations applied in it. */
interface TemplateVersion {
  pglite: string;
  migrations: string[];
  /** Of the migrations' code, so the build makes the template again when one changes. */
  migrationsHash: string;
}

function currentVersion(): TemplateVersion {
  const names = Object.keys(migrations).sort();
  const hash = createHash('sha256');
  for (const name of names) hash.update(`${name}\n${migrations[name]!.up.toString()}\n`);
  return { pglite: installedPGliteVersion(), migrations: names, migrationsHash: hash.digest('hex') };
}

function templateVersion(): TemplateVersion | undefined {
  try {
    if (!fs.existsSync(PGLITE_TEMPLATE_DIR)) return undefined;
    const version = JSON.parse(fs.readFileSync(VERSION_FILE, 'utf8')) as TemplateVersion;
    return Array.isArray(version.migrations) ? version : undefined;
  } catch {
    // Missing, or the bare version string of a template made before migrations went into it.
    return undefined;
  }
}

function installedPGliteVersion(): string {
  const entry = createRequire(import.meta.url).resolve('@electric-sql/pglite');
  let dir = path.dirname(entry);
  while (!fs.existsSync(path.join(dir, 'package.json'))) dir = path.dirname(dir);
  return (JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')) as { version: string }).version;
}

/** Usable by this Sesame: same PGlite, and no migration in it that Sesame no longer has. */
function templateIsUsable(): boolean {
  const made = templateVersion();
  return (
    made !== undefined &&
    made.pglite === installedPGliteVersion() &&
    made.migrations.every((name) => name in migrations)
  );
}

/** A copy in progress is `pg.seeding-<pid>`. */
const SEEDING = '.seeding-';

/**
 * Gives a new embedded database directory its initial cluster by copying the template.
 * Resolves to false (and leaves `pgDir` alone) when the directory already exists or there is
 * no usable template; PGlite then opens or initialises it as usual. The files (about a
 * thousand) are copied several at a time on libuv's threads, three times as fast as one by
 * one, and the server's thread goes on loading its modules meanwhile. Only the process that
 * holds the data directory (dataDirLock.ts) calls it, so no other copy is under way beside it.
 */
export async function seedFromTemplate(pgDir: string): Promise<boolean> {
  removeAbandonedCopies(pgDir);
  if (fs.existsSync(pgDir) || !templateIsUsable()) return false;
  // Copy beside the target and rename, so a start killed mid-copy leaves no half cluster.
  const partial = `${pgDir}${SEEDING}${process.pid}`;
  try {
    const entries = fs.readdirSync(PGLITE_TEMPLATE_DIR, { withFileTypes: true, recursive: true });
    const target = (entry: fs.Dirent) =>
      path.join(partial, path.relative(PGLITE_TEMPLATE_DIR, path.join(entry.parentPath, entry.name)));
    fs.mkdirSync(partial);
    for (const entry of entries) if (entry.isDirectory()) fs.mkdirSync(target(entry), { recursive: true });
    await Promise.all(
      entries
        .filter((entry) => entry.isFile())
        .map((entry) => fs.promises.copyFile(path.join(entry.parentPath, entry.name), target(entry))),
    );
    // The template is readable by all (publishTemplate); the copy is its owner's alone.
    makePrivate(partial);
    fs.renameSync(partial, pgDir);
  } catch (error) {
    // About 40 MB: a failed first start (a full disk) leaves none of it.
    fs.rmSync(partial, { recursive: true, force: true });
    throw error;
  }
  return true;
}

/**
 * Removes the copies of earlier starts killed mid-copy (SIGKILL, a crash, a full disk). Their
 * pids mean nothing here (another PID namespace, a reused pid): the caller holds the data
 * directory, so none of them is still being made.
 */
function removeAbandonedCopies(pgDir: string): void {
  const prefix = `${path.basename(pgDir)}${SEEDING}`;
  const parent = path.dirname(pgDir);
  if (!fs.existsSync(parent)) return;
  for (const name of fs.readdirSync(parent)) {
    if (name.startsWith(prefix)) fs.rmSync(path.join(parent, name), { recursive: true, force: true });
  }
}

/**
 * Gives the template's files 0644 and its folders 0755, its version file included. PGlite
 * writes some files 0600, which a server running as another user than the build (the Docker
 * image's `node`, after a build as root) cannot copy, and most 0666, which would let any local
 * user change what new installations start from. It holds nothing of an installation (the
 * schema, and the names of the migrations applied), so anyone may read it.
 */
function publishTemplate(): void {
  const names = fs.readdirSync(PGLITE_TEMPLATE_DIR, { recursive: true }).map(String);
  for (const entry of [PGLITE_TEMPLATE_DIR, ...names.map((name) => path.join(PGLITE_TEMPLATE_DIR, name))]) {
    const stat = fs.lstatSync(entry);
    if (stat.isDirectory()) fs.chmodSync(entry, 0o755);
    else if (stat.isFile()) fs.chmodSync(entry, 0o644);
  }
  fs.chmodSync(VERSION_FILE, 0o644);
}

/**
 * Builds the template (initdb, then every migration) unless a current one exists, and makes it
 * readable by all either way (a current one may predate that). Run by scripts/build.mjs.
 */
export async function ensurePGliteTemplate(): Promise<'built' | 'current'> {
  const wanted = currentVersion();
  const made = templateVersion();
  const current = made?.pglite === wanted.pglite && made.migrationsHash === wanted.migrationsHash;
  if (!current) await buildTemplate(wanted);
  publishTemplate();
  return current ? 'current' : 'built';
}

async function buildTemplate(wanted: TemplateVersion): Promise<void> {
  const partial = `${PGLITE_TEMPLATE_DIR}.building-${process.pid}`;
  fs.rmSync(partial, { recursive: true, force: true });
  const { PGlite } = await import('@electric-sql/pglite');
  const { Kysely } = await import('kysely');
  const { ConnectionQueue, PGliteDialect } = await import('./pgliteDialect.js');
  const { migrateToLatest } = await import('./migrate.js');
  const pglite = await PGlite.create(partial);
  const db = new Kysely<Database>({ dialect: new PGliteDialect(pglite, new ConnectionQueue()) });
  try {
    await migrateToLatest(db);
  } finally {
    await db.destroy();
  }
  fs.rmSync(PGLITE_TEMPLATE_DIR, { recursive: true, force: true });
  fs.renameSync(partial, PGLITE_TEMPLATE_DIR);
  fs.writeFileSync(VERSION_FILE, `${JSON.stringify(wanted)}\n`);
}
