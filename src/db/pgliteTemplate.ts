import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { ROOT } from '../paths.js';
import { makePrivate } from './privateFiles.js';

/**
 * A fresh PGlite data directory costs an initdb in WebAssembly: 4–6 s on two cores, most of
 * a first start. The build runs that initdb once, into this directory; a first start copies
 * it (about 1 s) instead. The copy is only used by the PGlite version that made it.
 */
export const PGLITE_TEMPLATE_DIR = path.join(ROOT, 'dist', 'pglite-template');
const VERSION_FILE = `${PGLITE_TEMPLATE_DIR}.version`;

function installedPGliteVersion(): string {
  const entry = createRequire(import.meta.url).resolve('@electric-sql/pglite');
  let dir = path.dirname(entry);
  while (!fs.existsSync(path.join(dir, 'package.json'))) dir = path.dirname(dir);
  return (JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')) as { version: string }).version;
}

function templateIsCurrent(): boolean {
  try {
    return (
      fs.existsSync(PGLITE_TEMPLATE_DIR) && fs.readFileSync(VERSION_FILE, 'utf8') === installedPGliteVersion()
    );
  } catch {
    return false;
  }
}

/**
 * Gives a new embedded database directory its initial cluster by copying the template.
 * Returns false (and leaves `pgDir` alone) when the directory already exists or there is no
 * current template; PGlite then opens or initialises it as usual.
 */
export function seedFromTemplate(pgDir: string): boolean {
  if (fs.existsSync(pgDir) || !templateIsCurrent()) return false;
  // Copy beside the target and rename, so a start killed mid-copy leaves no half cluster.
  const partial = `${pgDir}.seeding-${process.pid}`;
  fs.rmSync(partial, { recursive: true, force: true });
  fs.cpSync(PGLITE_TEMPLATE_DIR, partial, { recursive: true });
  // The template's files are 0666 (as PGlite's initdb made them); the copy is its owner's alone.
  makePrivate(partial);
  fs.renameSync(partial, pgDir);
  return true;
}

/** Builds the template unless a current one exists. Run by scripts/build.mjs. */
export async function ensurePGliteTemplate(): Promise<'built' | 'current'> {
  if (templateIsCurrent()) return 'current';
  const partial = `${PGLITE_TEMPLATE_DIR}.building-${process.pid}`;
  fs.rmSync(partial, { recursive: true, force: true });
  const { PGlite } = await import('@electric-sql/pglite');
  const pglite = await PGlite.create(partial);
  await pglite.close();
  fs.rmSync(PGLITE_TEMPLATE_DIR, { recursive: true, force: true });
  fs.renameSync(partial, PGLITE_TEMPLATE_DIR);
  fs.writeFileSync(VERSION_FILE, installedPGliteVersion());
  return 'built';
}
