import fs from 'node:fs';
import path from 'node:path';

/** Raised when another live process holds the embedded data directory. */
export class DataDirBusyError extends Error {
  override name = 'DataDirBusyError';
}

/** A takeover left half-done by a process that died is cleared after this long. */
const TAKEOVER_STALE_MS = 10_000;
const ATTEMPTS = 50;
const RETRY_MS = 20;

/** Lock files this process holds, so it does not mistake its own live lock for a leftover. */
const heldHere = new Set<string>();

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function readHolder(lockPath: string): number | undefined {
  try {
    const pid = Number.parseInt(fs.readFileSync(lockPath, 'utf8'), 10);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/**
 * Creates the lock file holding our pid, atomically and complete: the pid is written to a
 * file of our own first, then hard-linked into place, which fails if a lock exists. Nobody
 * can ever read a lock file that is still empty.
 */
function tryCreate(lockPath: string): boolean {
  const mine = `${lockPath}.${process.pid}`;
  fs.writeFileSync(mine, String(process.pid));
  try {
    fs.linkSync(mine, lockPath);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw error;
  } finally {
    fs.rmSync(mine, { force: true });
  }
}

/**
 * Removes a lock left by a dead process. Two processes may find the same stale lock at
 * once; a takeover directory (mkdir is atomic) lets one of them at a time re-check that the
 * lock still names the dead process before removing it, so nobody removes a lock that a
 * live process has just taken.
 */
function removeStaleLock(lockPath: string, stalePid: number | undefined): void {
  const takeover = `${lockPath}.takeover`;
  try {
    fs.mkdirSync(takeover);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    const age = Date.now() - (fs.statSync(takeover, { throwIfNoEntry: false })?.mtimeMs ?? Date.now());
    if (age > TAKEOVER_STALE_MS) fs.rmSync(takeover, { recursive: true, force: true });
    return;
  }
  try {
    if (readHolder(lockPath) === stalePid) fs.rmSync(lockPath, { force: true });
  } finally {
    fs.rmSync(takeover, { recursive: true, force: true });
  }
}

/**
 * Takes an exclusive lock on the embedded database directory. PGlite has no locking of its
 * own: two processes writing one data directory corrupt it, so the second one must refuse.
 * A lock left by a process that died is taken over.
 * @returns a function that releases the lock.
 */
export function lockDataDir(dataDir: string): () => void {
  fs.mkdirSync(dataDir, { recursive: true });
  const lockPath = path.join(dataDir, 'sesame.lock');
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    if (tryCreate(lockPath)) {
      let released = false;
      const release = () => {
        if (released) return;
        released = true;
        heldHere.delete(lockPath);
        process.removeListener('exit', release);
        if (readHolder(lockPath) === process.pid) fs.rmSync(lockPath, { force: true });
      };
      heldHere.add(lockPath);
      process.once('exit', release);
      return release;
    }
    const holder = readHolder(lockPath);
    // Our own pid in a lock this process does not hold is a leftover: a restarted container
    // gives its server the same pid again.
    const live = holder === process.pid ? heldHere.has(lockPath) : holder !== undefined && isAlive(holder);
    if (live) {
      throw new DataDirBusyError(
        `the embedded database in ${dataDir} is in use by another Sesame process (pid ${holder}); stop it first, or set DATABASE_URL to use Postgres`,
      );
    }
    removeStaleLock(lockPath, holder);
    if (attempt > 0) sleepSync(RETRY_MS);
  }
  throw new DataDirBusyError(`could not lock ${lockPath}; remove it if no Sesame process is running`);
}
