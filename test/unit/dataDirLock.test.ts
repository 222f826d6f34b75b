import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DataDirBusyError, lockDataDir } from '../../src/db/dataDirLock.js';

/** The pid of a process that has already exited. */
function deadPid(): number {
  const child = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], {
    encoding: 'utf8',
  });
  return Number(child.stdout);
}

describe('the lock on the embedded data directory', () => {
  let dataDir: string;
  let lockPath: string;

  beforeEach(() => {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sesame-lock-'));
    lockPath = path.join(dataDir, 'sesame.lock');
  });

  afterEach(() => fs.rmSync(dataDir, { recursive: true, force: true }));

  it('writes our pid into the lock file, and removes it on release', () => {
    const release = lockDataDir(dataDir);
    expect(fs.readFileSync(lockPath, 'utf8')).toBe(String(process.pid));
    release();
    expect(fs.readdirSync(dataDir)).toEqual([]);
  });

  it('creates the data directory when it does not exist yet', () => {
    const nested = path.join(dataDir, 'a', 'b');
    const release = lockDataDir(nested);
    expect(fs.existsSync(path.join(nested, 'sesame.lock'))).toBe(true);
    release();
  });

  it('refuses, naming the holder, while another live process holds the directory', () => {
    // The Jest worker's parent is alive for as long as this test runs.
    fs.writeFileSync(lockPath, String(process.ppid));
    expect(() => lockDataDir(dataDir)).toThrow(DataDirBusyError);
    expect(() => lockDataDir(dataDir)).toThrow(`in use by another Sesame process (pid ${process.ppid})`);
    expect(fs.readFileSync(lockPath, 'utf8')).toBe(String(process.ppid));
  });

  it('refuses a second open in the same process while the first holds the directory', () => {
    const release = lockDataDir(dataDir);
    try {
      expect(() => lockDataDir(dataDir)).toThrow(DataDirBusyError);
    } finally {
      release();
    }
  });

  it.each([
    ['a process that died', () => String(deadPid())],
    ['an empty file', () => ''],
    ['garbage', () => 'not a pid'],
  ])('takes over a lock left by %s', (_case, content) => {
    fs.writeFileSync(lockPath, content());
    const release = lockDataDir(dataDir);
    expect(fs.readFileSync(lockPath, 'utf8')).toBe(String(process.pid));
    release();
  });

  it('takes over a leftover lock with its own pid, as a restarted container leaves', () => {
    fs.writeFileSync(lockPath, String(process.pid));
    const release = lockDataDir(dataDir);
    release();
    expect(fs.existsSync(lockPath)).toBe(false);
  });

  it('does not remove a lock another process took after ours was released', () => {
    const release = lockDataDir(dataDir);
    fs.writeFileSync(lockPath, String(process.ppid));
    release();
    expect(fs.readFileSync(lockPath, 'utf8')).toBe(String(process.ppid));
  });
});
