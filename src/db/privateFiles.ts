import fs from 'node:fs';
import path from 'node:path';

/**
 * The embedded database holds every secret Sesame has (signing keys, which sit in the WAL in
 * the clear when KEY_ENCRYPTION_SECRET is unset), so nobody but its owner may read it.
 */
export const PRIVATE_DIR_MODE = 0o700;
export const PRIVATE_FILE_MODE = 0o600;
/** What the process owning the embedded database creates files with: no group or other bits. */
export const PRIVATE_UMASK = 0o077;

/**
 * Takes the group and other bits off `root` and everything under it (directories 0700,
 * files 0600; symbolic links are left alone).
 * @returns how many entries it changed.
 */
export function makePrivate(root: string): number {
  let changed = 0;
  const tighten = (entry: string, stat: fs.Stats) => {
    if ((stat.mode & 0o077) === 0) return;
    fs.chmodSync(entry, stat.isDirectory() ? PRIVATE_DIR_MODE : PRIVATE_FILE_MODE);
    changed++;
  };
  const walk = (dir: string) => {
    tighten(dir, fs.statSync(dir));
    for (const dirent of fs.readdirSync(dir, { withFileTypes: true })) {
      const entry = path.join(dir, dirent.name);
      if (dirent.isDirectory()) walk(entry);
      else if (dirent.isFile()) tighten(entry, fs.statSync(entry));
    }
  };
  walk(root);
  return changed;
}
