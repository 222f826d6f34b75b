import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** A user's name from /etc/passwd, else `uid N`. */
function userName(uid: number): string {
  if (uid === os.userInfo().uid) return os.userInfo().username;
  try {
    for (const line of fs.readFileSync('/etc/passwd', 'utf8').split('\n')) {
      const [name, , id] = line.split(':');
      if (name && id === String(uid)) return name;
    }
  } catch {
    // No /etc/passwd to read: the number says it.
  }
  return `uid ${uid}`;
}

/**
 * Refuses an embedded data directory (or its `pg` cluster) that another user owns, as
 * Postgres refuses a data directory not owned by the user it runs as: every file PGlite
 * writes would be this process's user's, and root running `sudo npx sesame …` once leaves
 * files the service user cannot open (its next start fails inside PGlite with "Aborted()").
 * Root is refused too. POSIX only: Windows has no uids.
 */
export function checkDataDirOwner(dataDir: string): void {
  const uid = process.getuid?.();
  if (uid === undefined) return;
  for (const dir of [dataDir, path.join(dataDir, 'pg')]) {
    const owner = fs.statSync(dir, { throwIfNoEntry: false })?.uid;
    if (owner === undefined || owner === uid) continue;
    throw new Error(
      `DATA_DIR ${path.resolve(dir)} belongs to ${userName(owner)}, not to ${userName(uid)}, which runs this: run Sesame and the sesame command as ${userName(owner)}`,
    );
  }
}
