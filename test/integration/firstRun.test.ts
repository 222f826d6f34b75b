import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { configFrom } from '../../src/config.js';
import { type Db, openDatabase } from '../../src/db/connect.js';
import { passkeyTenantsQueries } from '../../src/db/queries/passkeyTenants.js';
import { usersQueries } from '../../src/db/queries/users.js';
import { ROOT } from '../../src/paths.js';
import {
  type CliSession,
  childEnv,
  linesOf,
  type ProcessResult,
  runCli,
  startCliSession,
} from '../support/sesameProcess.js';
import { freePort } from '../support/testApp.js';
import { createTestDatabase, type TestDatabase } from '../support/testDatabase.js';

const SESAME_BIN = path.join(ROOT, 'bin', 'sesame.js');
const MAIN = path.join(ROOT, 'dist', 'src', 'main.js');
/** Each command opens and migrates the database; on a loaded machine that takes seconds. */
const SLOW_MACHINE_MS = 60_000;

/** Collects a child's output and resolves when it ends. */
function run(child: ChildProcess, timeoutMs = 30_000) {
  const out = { stdout: '', stderr: '' };
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    out.stdout += chunk;
  });
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    out.stderr += chunk;
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const exited = new Promise<ProcessResult>((resolve) => {
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, ...out });
    });
  });
  return { out, exited };
}

/** `sesame <args>` run from `cwd`, where a `.env` may be. */
function cliIn(cwd: string, args: string[], vars: Record<string, string> = {}): Promise<ProcessResult> {
  const child = spawn(process.execPath, [SESAME_BIN, ...args], {
    cwd,
    env: childEnv(vars),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return run(child, SLOW_MACHINE_MS).exited;
}

/**
 * `sesame <args>` on a terminal (util-linux `script` gives it a pseudo-terminal) that types
 * `answer` at the prompt.
 */
function cliOnTerminal(args: string[], vars: Record<string, string>, answer: string) {
  const command = [process.execPath, SESAME_BIN, ...args].map((word) => `'${word}'`).join(' ');
  const child = spawn('script', ['-qec', command, '/dev/null'], {
    env: childEnv(vars),
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const { exited } = run(child, SLOW_MACHINE_MS);
  child.stdin!.end(`${answer}\n`);
  return exited;
}

/** The server started from `cwd` until its discovery answers at `baseUrl`; stop() ends it. */
async function serverIn(cwd: string, baseUrl: string, vars: Record<string, string>) {
  const child = spawn(process.execPath, [MAIN], {
    cwd,
    env: childEnv(vars),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const { out, exited } = run(child, 120_000);
  let ended = false;
  void exited.then(() => {
    ended = true;
  });
  const deadline = Date.now() + 60_000;
  let discovery: { issuer?: string } | undefined;
  while (!discovery) {
    if (ended || Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`the server did not answer at ${baseUrl}:\n${out.stderr}`);
    }
    try {
      const response = await fetch(`${baseUrl}/.well-known/openid-configuration`);
      if (response.ok) discovery = (await response.json()) as { issuer?: string };
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  return {
    discovery,
    async stop() {
      child.kill('SIGTERM');
      return exited;
    },
  };
}

const isJson = (line: string) => {
  try {
    return typeof JSON.parse(line) === 'object';
  } catch {
    return false;
  }
};

describe('a first run: ISSUER follows PORT, .env is read, doubtful settings warn, the log is JSON', () => {
  let database: TestDatabase;
  let cwd: string;
  let port: number;

  beforeAll(async () => {
    database = await createTestDatabase();
    port = await freePort();
    // A working directory like a fresh clone's: settings in .env, no ISSUER.
    cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'sesame-firstrun-'));
    const dbLine = database.env.DATABASE_URL
      ? `DATABASE_URL=${database.env.DATABASE_URL}`
      : `DATA_DIR=${database.env.DATA_DIR}`;
    fs.writeFileSync(
      path.join(cwd, '.env'),
      `# as copied from .env.example\nPORT=${port}\n${dbLine}\nLOG_LEVEL=debug\nHOST=127.0.0.1\n`,
    );
  });

  afterAll(async () => {
    fs.rmSync(cwd, { recursive: true, force: true });
    await database.drop();
  });

  it("builds the CLI's links from .env: ISSUER defaults to http://localhost:$PORT", async () => {
    const result = await cliIn(cwd, ['users', 'invite', '--email', 'ada@example.com', '--json']);
    expect(result).toMatchObject({ code: 0, stderr: '' });
    expect(JSON.parse(result.stdout).url).toMatch(new RegExp(`^http://localhost:${port}/`));
  });

  it('lets the real environment win over .env', async () => {
    const result = await cliIn(cwd, ['users', 'invite', '--email', 'bob@example.com', '--json'], {
      ISSUER: 'https://id.example.com',
    });
    expect(result).toMatchObject({ code: 0, stderr: '' });
    expect(JSON.parse(result.stdout).url).toMatch(/^https:\/\/id\.example\.com\//);
  });

  it('starts on the .env PORT with the issuer http://localhost:$PORT, logging only JSON lines and no warning', async () => {
    // LOG_LEVEL=info in the environment beats LOG_LEVEL=debug in .env.
    const server = await serverIn(cwd, `http://localhost:${port}`, { LOG_LEVEL: 'info' });
    const result = await server.stop();
    expect(server.discovery.issuer).toBe(`http://localhost:${port}`);
    expect(result.code).toBe(0);
    const lines = linesOf(result.stderr);
    expect(lines.filter((line) => !isJson(line))).toEqual([]);
    const entries = lines.map((line) => JSON.parse(line) as { level: string; msg: string });
    expect(entries.filter((entry) => entry.level === 'debug')).toEqual([]);
    expect(entries.filter((entry) => entry.level === 'warn' && entry.msg.includes('ISSUER'))).toEqual([]);
    // oidc-provider's "Unsupported runtime" on Node 20 is one of them, as a JSON line that
    // says Node 20 is supported, at info: a warning read as a wrong runtime.
    if (Number(process.versions.node.split('.')[0]) < 22) {
      expect(entries).toContainEqual(
        expect.objectContaining({
          level: 'info',
          msg: expect.stringMatching(/Unsupported runtime.*Sesame supports Node\.js 20\.19 and later/),
        }),
      );
      expect(entries.filter((entry) => entry.level === 'warn' && entry.msg.includes('runtime'))).toEqual([]);
    }
    expect(result.stdout).toBe('');
  }, 90_000);

  it('warns in one JSON line at start when passkeys cannot work on the ISSUER', async () => {
    const server = await serverIn(cwd, `http://localhost:${port}`, {
      LOG_LEVEL: 'warn',
      ISSUER: `http://sesame.example:${port}`,
    });
    const result = await server.stop();
    const warnings = linesOf(result.stderr)
      .map((line) => JSON.parse(line) as { level: string; msg: string })
      .filter((entry) => entry.msg.startsWith('ISSUER'));
    expect(warnings).toEqual([
      expect.objectContaining({
        level: 'warn',
        msg: expect.stringContaining(
          `ISSUER http://sesame.example:${port} is http on a host other than localhost`,
        ),
      }),
    ]);
  }, 90_000);
});

describe('the sesame command names its database on a terminal', () => {
  it("says which database a command uses (the data directory, or Postgres's URL without its password), and that it cannot connect to it", async () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sesame-cli-db-'));
    try {
      const embedded = await cliOnTerminal(['clients', 'list'], { DATA_DIR: dataDir }, '');
      expect(embedded.code).toBe(0);
      expect(linesOf(embedded.stdout)[0]).toBe(`sesame: using the embedded database in ${dataDir}\r`);
      // Nothing listens on port 1: the command fails after naming the database.
      const postgres = await cliOnTerminal(
        ['clients', 'list'],
        { DATABASE_URL: 'postgres://sesame:hunter2@127.0.0.1:1/sesame' },
        '',
      );
      expect(postgres.code).toBe(1);
      expect(linesOf(postgres.stdout)).toEqual([
        'sesame: using Postgres at postgres://sesame:***@127.0.0.1:1/sesame\r',
        'sesame: cannot connect to the database: connect ECONNREFUSED 127.0.0.1:1\r',
      ]);
      expect(postgres.stdout).not.toContain('hunter2');
    } finally {
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  }, 90_000);
});

describe('the sesame command: --version, and deletions it asks about', () => {
  let database: TestDatabase;
  /** Commands without a terminal: their stdin is not one, as in a script or a pipeline. */
  let cli: CliSession;

  beforeAll(async () => {
    database = await createTestDatabase();
    cli = await startCliSession(database.env);
  });

  afterAll(async () => {
    await cli?.close();
    await database?.drop();
  });

  async function withDb<T>(work: (db: Db) => Promise<T>): Promise<T> {
    const handle = await openDatabase(configFrom(database.env), { poolSize: 1 });
    try {
      return await work(handle.db);
    } finally {
      await handle.close();
    }
  }

  /** Runs a CLI `create` command with --json and returns the id it printed as `idField`. */
  async function createWithCli(args: string[], idField: string): Promise<string> {
    const result = await cli.run([...args, '--json']);
    expect(result).toMatchObject({ code: 0, stderr: '' });
    return JSON.parse(result.stdout)[idField];
  }

  const createClient = () =>
    createWithCli(
      ['clients', 'create', '--name', 'Notes', '--redirect-uri', 'https://notes.example/cb'],
      'client_id',
    );
  const createTenant = () =>
    createWithCli(
      ['passkey-api', 'create', '--name', 'Shop', '--origin', 'https://shop.example'],
      'tenant_id',
    );

  const tenantExists = async (tenantId: string) =>
    (await withDb((db) => passkeyTenantsQueries.list(db))).some((tenant) => tenant.id === tenantId);

  const clientExists = (clientId: string) =>
    withDb(async (db) =>
      Boolean(
        await db
          .selectFrom('clients')
          .select('client_id')
          .where('client_id', '=', clientId)
          .executeTakeFirst(),
      ),
    );

  it('prints the package version for --version', async () => {
    const { version } = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
    const result = await runCli(['--version'], {});
    expect(result).toEqual({ code: 0, signal: null, stdout: `${version}\n`, stderr: '' });
  });

  it('refuses clients, users and passkey-api delete without a terminal unless --yes is given, and deletes nothing', async () => {
    const clientId = await createClient();
    const user = await withDb((db) => usersQueries.insert(db, { email: 'carol@example.com', name: null }));
    const tenantId = await createTenant();
    for (const args of [
      ['clients', 'delete', clientId],
      ['users', 'delete', user.id],
      ['passkey-api', 'delete', tenantId],
    ]) {
      const result = await cli.run(args);
      expect(result.code).toBe(1);
      expect(result.stdout).toBe('');
      expect(linesOf(result.stderr)).toEqual(['sesame: not a terminal: pass --yes to confirm']);
    }
    expect(await clientExists(clientId)).toBe(true);
    expect(await withDb((db) => usersQueries.findById(db, user.id))).toBeDefined();
    expect(await tenantExists(tenantId)).toBe(true);

    expect((await cli.run(['users', 'delete', user.id, '--yes'])).code).toBe(0);
    expect(await withDb((db) => usersQueries.findById(db, user.id))).toBeUndefined();
    expect((await cli.run(['passkey-api', 'delete', tenantId, '--yes'])).code).toBe(0);
    expect(await tenantExists(tenantId)).toBe(false);
  }, 90_000);

  it('asks on a terminal: "n" keeps the client or passkey API tenant, "y" deletes it', async () => {
    const clientId = await createClient();
    const kept = await cliOnTerminal(['clients', 'delete', clientId], database.env, 'n');
    expect(kept.code).toBe(1);
    expect(kept.stdout).toContain(`Delete client ${clientId}`);
    expect(kept.stdout).toContain('cancelled: nothing was deleted');
    expect(await clientExists(clientId)).toBe(true);

    const deleted = await cliOnTerminal(['clients', 'delete', clientId], database.env, 'y');
    expect(deleted.code).toBe(0);
    expect(deleted.stdout).toContain(`Deleted client ${clientId}`);
    expect(await clientExists(clientId)).toBe(false);

    // A passkey API tenant, with all its users and passkeys, is asked about the same way.
    const tenantId = await createTenant();
    const tenantKept = await cliOnTerminal(['passkey-api', 'delete', tenantId], database.env, 'n');
    expect(tenantKept.code).toBe(1);
    expect(tenantKept.stdout).toContain(
      `Delete passkey API tenant ${tenantId} with all its users and passkeys?`,
    );
    expect(tenantKept.stdout).toContain('cancelled: nothing was deleted');
    expect(await tenantExists(tenantId)).toBe(true);
  }, 90_000);
});
