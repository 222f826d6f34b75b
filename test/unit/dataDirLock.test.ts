import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { claimDataDir, SOCKET_NAME } from '../../src/db/dataDirLock.js';
import { ROOT } from '../../src/paths.js';

/** Runs a Node script to its end and returns what it printed. */
function runNode(script: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      out += chunk;
    });
    child.once('error', reject);
    child.once('close', () => resolve(out));
  });
}

/** Leaves a socket file nobody listens on, as a holder killed with SIGKILL does. */
async function leaveDeadSocket(socketPath: string): Promise<void> {
  await runNode(
    `import net from 'node:net';
     net.createServer().listen(${JSON.stringify(socketPath)}, () => process.kill(process.pid, 'SIGKILL'));`,
  );
  expect(fs.statSync(socketPath).isSocket()).toBe(true);
}

const lockModule = pathToFileURL(path.join(ROOT, 'dist', 'src', 'db', 'dataDirLock.js')).href;

describe('the hold on the embedded data directory', () => {
  let dataDir: string;
  let socketPath: string;

  beforeEach(() => {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sesame-lock-'));
    socketPath = path.join(dataDir, SOCKET_NAME);
  });

  afterEach(() => fs.rmSync(dataDir, { recursive: true, force: true }));

  it('listens on a socket in the directory that only its owner can use, and removes it on release', async () => {
    const claim = await claimDataDir(dataDir);
    expect(claim.held).toBe(true);
    expect(fs.statSync(socketPath).isSocket()).toBe(true);
    expect(fs.statSync(socketPath).mode & 0o777).toBe(0o600);
    if (claim.held) await claim.release();
    expect(fs.readdirSync(dataDir)).toEqual([]);
  });

  it('creates a missing data directory readable by its owner only', async () => {
    const nested = path.join(dataDir, 'a', 'b');
    const claim = await claimDataDir(nested);
    expect(fs.statSync(nested).mode & 0o777).toBe(0o700);
    if (claim.held) await claim.release();
  });

  it('tells a second claimant where the holder listens, and leaves the holder its socket', async () => {
    const first = await claimDataDir(dataDir);
    try {
      const second = await claimDataDir(dataDir);
      expect(second).toEqual({ held: false, socketDir: path.resolve(dataDir) });
      expect(fs.statSync(socketPath).isSocket()).toBe(true);
    } finally {
      if (first.held) await first.release();
    }
  });

  it('sees a holder in another process, whatever its pid', async () => {
    const holder = spawn(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `const { claimDataDir } = await import(${JSON.stringify(lockModule)});
         const claim = await claimDataDir(${JSON.stringify(dataDir)});
         process.stdout.write(claim.held ? 'held\\n' : 'busy\\n');
         process.stdin.once('data', async () => { await claim.release(); process.exit(0); });`,
      ],
      { stdio: ['pipe', 'pipe', 'inherit'] },
    );
    await new Promise<void>((resolve) => holder.stdout.once('data', () => resolve()));
    try {
      expect((await claimDataDir(dataDir)).held).toBe(false);
    } finally {
      holder.stdin.write('stop\n');
      await new Promise((resolve) => holder.once('close', resolve));
    }
    const after = await claimDataDir(dataDir);
    expect(after.held).toBe(true);
    if (after.held) await after.release();
  });

  it('takes over a socket whose holder died', async () => {
    await leaveDeadSocket(socketPath);
    const claim = await claimDataDir(dataDir);
    expect(claim.held).toBe(true);
    if (claim.held) await claim.release();
  });

  it('lets exactly one of several processes that find a dead socket at once take the directory', async () => {
    await leaveDeadSocket(socketPath);
    const script = `const { claimDataDir } = await import(${JSON.stringify(lockModule)});
      const claim = await claimDataDir(${JSON.stringify(dataDir)});
      process.stdout.write(claim.held ? 'held' : 'busy');
      // Each keeps what it got until every one has claimed.
      process.stdin.once('data', async () => {
        if (claim.held) await claim.release();
        process.exit(0);
      });`;
    const children = Array.from({ length: 5 }, () =>
      spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['pipe', 'pipe', 'inherit'] }),
    );
    const outcomes = await Promise.all(
      children.map(
        (child) =>
          new Promise<string>((resolve) =>
            child.stdout.setEncoding('utf8').once('data', (out: string) => resolve(out)),
          ),
      ),
    );
    await Promise.all(
      children.map((child) => {
        child.stdin.write('done\n');
        return new Promise((resolve) => child.once('close', resolve));
      }),
    );
    expect(outcomes.sort()).toEqual(['busy', 'busy', 'busy', 'busy', 'held']);
  }, 60_000);

  it('refuses a data directory whose socket path would be too long, saying so', async () => {
    const deep = path.join(dataDir, 'x'.repeat(100));
    await expect(claimDataDir(deep)).rejects.toThrow(/DATA_DIR .* is too long a path for its socket/);
  });
});
