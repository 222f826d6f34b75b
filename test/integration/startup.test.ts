import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { SOCKET_NAME } from '../../src/db/dataDirLock.js';
import { PGLITE_TEMPLATE_DIR } from '../../src/db/pgliteTemplate.js';
import { isProviderPath } from '../../src/oidc/providerPaths.js';
import {
  linesOf,
  runServerExpectingExit,
  type SesameProcess,
  spawnSesameProcess,
  startSesameProcess,
} from '../support/sesameProcess.js';
import { createTestDatabase, onPostgres } from '../support/testDatabase.js';

/** Fields of a public JWK that would give away the private key. */
const PRIVATE_JWK_FIELDS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'];

/** Files and folders under `root` (itself included) that anyone but their owner may use, with their modes. */
function openToOthers(root: string): string[] {
  const found: string[] = [];
  const visit = (entry: string) => {
    const stat = fs.lstatSync(entry);
    if ((stat.mode & 0o077) !== 0)
      found.push(`${(stat.mode & 0o777).toString(8)} ${path.relative(root, entry)}`);
    if (stat.isDirectory()) for (const name of fs.readdirSync(entry)) visit(path.join(entry, name));
  };
  visit(root);
  return found;
}

/** The JSON lines a server has logged so far. */
function logEntries(sesame: SesameProcess): Record<string, unknown>[] {
  return linesOf(sesame.stderr())
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

describe('starting the built server (node dist/src/main.js)', () => {
  let parent: string;
  let dataDir: string;
  let sesame: SesameProcess;

  beforeAll(async () => {
    // A directory that does not exist yet: the first start of a new installation, embedded
    // database and all.
    parent = fs.mkdtempSync(path.join(os.tmpdir(), 'sesame-startup-'));
    dataDir = path.join(parent, 'data');
    // Waits longer than the 20 s the first test demands, so that on a busy machine only that
    // test fails and the others still check the server.
    sesame = await startSesameProcess({ DATA_DIR: dataDir, LOG_LEVEL: 'info' }, 60_000);
  }, 70_000);

  afterAll(async () => {
    if (sesame && sesame.child.exitCode === null) await sesame.stop('SIGKILL');
    fs.rmSync(parent, { recursive: true, force: true });
  });

  // Most of a first start is Postgres in WASM starting on the copied template. On 2 vCPU it
  // took 3.8–4.5 s alone (8.3 s without the template) and 10–11.4 s beside the other test
  // worker and a CI run: the bound catches a start gone wrong, not a busy machine.
  it('answers discovery within 20 seconds of a first start on an empty data directory', () => {
    expect(sesame.readyAfterMs).toBeLessThan(20_000);
  });

  // What keeps a first start short, checked apart from the clock (which a busy machine moves):
  // the cluster is copied from the template built with the server, not made by initdb.
  it('begins a new embedded database from the prebuilt template', () => {
    const opened = logEntries(sesame).find((entry) => entry.msg === 'using the embedded database');
    expect(opened).toMatchObject({ data: dataDir, created: 'from the prebuilt template' });
  });

  it('serves a discovery document whose issuer is ISSUER', async () => {
    const response = await fetch(`${sesame.baseUrl}/.well-known/openid-configuration`);
    expect(response.status).toBe(200);
    const discovery = (await response.json()) as Record<string, unknown>;
    expect(discovery.issuer).toBe(sesame.baseUrl);
    expect(discovery.jwks_uri).toBe(`${sesame.baseUrl}/jwks`);
    expect(discovery.code_challenge_methods_supported).toEqual(['S256']);
  });

  it('sends every endpoint discovery advertises straight to the provider', async () => {
    const discovery = (await (
      await fetch(`${sesame.baseUrl}/.well-known/openid-configuration`)
    ).json()) as Record<string, unknown>;
    const endpoints = Object.entries(discovery)
      .filter(
        ([name, value]) => (name.endsWith('_endpoint') || name === 'jwks_uri') && typeof value === 'string',
      )
      .map(([, value]) => new URL(String(value)).pathname);
    expect(endpoints.length).toBeGreaterThanOrEqual(7);
    for (const endpoint of endpoints)
      expect({ endpoint, provider: isProviderPath(endpoint) }).toEqual({ endpoint, provider: true });
  });

  it('publishes an ES256 and an RS256 signing key, and nothing private', async () => {
    const response = await fetch(`${sesame.baseUrl}/jwks`);
    expect(response.status).toBe(200);
    const { keys } = (await response.json()) as { keys: Array<Record<string, string>> };
    expect(keys.map((k) => k.alg).sort()).toEqual(['ES256', 'RS256']);
    expect(keys.find((k) => k.alg === 'ES256')).toMatchObject({ kty: 'EC', crv: 'P-256', use: 'sig' });
    expect(keys.find((k) => k.alg === 'RS256')).toMatchObject({ kty: 'RSA', use: 'sig' });
    for (const key of keys) {
      expect(typeof key.kid).toBe('string');
      for (const field of PRIVATE_JWK_FIELDS) expect(key).not.toHaveProperty(field);
    }
  });

  it('answers 200 on /healthz and /readyz', async () => {
    for (const probe of ['/healthz', '/readyz']) {
      const response = await fetch(`${sesame.baseUrl}${probe}`);
      expect(response.status).toBe(200);
      expect(await response.json()).toEqual({ status: 'ok' });
    }
  });

  it('keeps every file and folder of the embedded database to its owner after a first start', () => {
    expect(fs.statSync(dataDir).mode & 0o777).toBe(0o700);
    expect(fs.readdirSync(path.join(dataDir, 'pg')).length).toBeGreaterThan(10);
    expect(openToOthers(dataDir)).toEqual([]);
    // Nothing needed tightening on a directory Sesame made itself.
    expect(logEntries(sesame).map((entry) => entry.msg)).not.toContain(
      'made the data directory private to its owner',
    );
  });

  it('says in its log where the data lives', () => {
    const entries = logEntries(sesame);
    expect(entries).toContainEqual(
      expect.objectContaining({ level: 'info', msg: 'using the embedded database', data: dataDir }),
    );
    expect(entries).toContainEqual(
      expect.objectContaining({ msg: 'Sesame is listening', issuer: sesame.baseUrl, port: sesame.port }),
    );
  });

  it('logs a one-time setup link, as there is no administrator yet, whose page answers', async () => {
    const setupLine = () =>
      linesOf(sesame.stderr())
        .filter((line) => line.startsWith('{'))
        .map((line) => JSON.parse(line) as Record<string, string>)
        .find((entry) => entry.msg === 'no administrator yet: open this link to create one');
    // Logged just after the server starts listening.
    for (let waited = 0; !setupLine() && waited < 15_000; waited += 100) {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const url = setupLine()?.setup_url;
    expect(url).toMatch(new RegExp(`^${sesame.baseUrl}/setup/[A-Za-z0-9_-]{43}$`));
    const page = await fetch(url!);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('>Create a passkey</button>');
  });

  it('refuses a second server on the same data directory with one line, and leaves the first one serving', async () => {
    const second = await runServerExpectingExit({
      DATA_DIR: dataDir,
      PORT: String(sesame.port),
      LOG_LEVEL: 'warn',
    });
    expect(second.code).not.toBe(0);
    expect(linesOf(second.stderr)).toEqual([
      `sesame: the embedded database in ${dataDir} is in use by another Sesame process; stop it first, or set DATABASE_URL to use Postgres`,
    ]);
    expect((await fetch(`${sesame.baseUrl}/readyz`)).status).toBe(200);
  });

  it('refuses a second server on the same port (another data directory) with one line that says to set PORT', async () => {
    const otherDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sesame-port-taken-'));
    try {
      const second = await runServerExpectingExit({
        DATA_DIR: otherDir,
        PORT: String(sesame.port),
        HOST: '127.0.0.1',
        LOG_LEVEL: 'error',
      });
      expect(second.code).toBe(1);
      expect(linesOf(second.stderr)).toEqual([
        `sesame: cannot listen on 127.0.0.1:${sesame.port}: listen EADDRINUSE: address already in use 127.0.0.1:${sesame.port}: another process (another Sesame?) listens on that port: stop it, or set PORT to another`,
      ]);
      expect((await fetch(`${sesame.baseUrl}/readyz`)).status).toBe(200);
    } finally {
      fs.rmSync(otherDir, { recursive: true, force: true });
    }
  });

  it('stops on SIGTERM with exit code 0 and releases the data directory', async () => {
    const result = await sesame.stop('SIGTERM');
    expect(result).toMatchObject({ code: 0, signal: null });
    expect(result.stderr).toContain('"msg":"shutting down"');
    expect(fs.existsSync(path.join(dataDir, SOCKET_NAME))).toBe(false);
  });
});

describe('starting on an existing data directory that others can read', () => {
  let dataDir: string;
  let sesame: SesameProcess | undefined;

  afterAll(async () => {
    await sesame?.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('makes it private to its owner and says so in one log line', async () => {
    // The database of an installation made before Sesame kept its files private: the
    // template copied with its modes.
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sesame-loose-'));
    fs.cpSync(PGLITE_TEMPLATE_DIR, path.join(dataDir, 'pg'), { recursive: true });
    execFileSync('chmod', ['-R', 'go+rwX', dataDir]);
    const loose = openToOthers(dataDir).length;
    expect(loose).toBeGreaterThan(100);

    sesame = await startSesameProcess({ DATA_DIR: dataDir, LOG_LEVEL: 'info' }, 60_000);
    expect(openToOthers(dataDir)).toEqual([]);
    const notes = logEntries(sesame).filter(
      (entry) => entry.msg === 'made the data directory private to its owner',
    );
    expect(notes).toEqual([expect.objectContaining({ level: 'warn', data: dataDir, changed: loose })]);
  }, 70_000);
});

describe('a stop requested while the server starts', () => {
  let dataDir: string;

  afterAll(() => fs.rmSync(dataDir, { recursive: true, force: true }));

  // As when a deploy script runs `sesame` while the server starts and the server is stopped
  // then: closing gives that command 5 s to finish, and the start used to go on meanwhile and serve.
  it('ends the start at its next step and exits 0, never listening after "shutting down"', async () => {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sesame-stopped-'));
    const socketPath = path.join(dataDir, SOCKET_NAME);
    const sesame = await spawnSesameProcess({ DATA_DIR: dataDir, LOG_LEVEL: 'info' });
    const messages = () =>
      linesOf(sesame.out.stderr)
        .filter((line) => line.startsWith('{'))
        .map((line) => (JSON.parse(line) as { msg: string }).msg);
    const until = async (done: () => boolean) => {
      while (!done() && sesame.child.exitCode === null)
        await new Promise((resolve) => setTimeout(resolve, 5));
    };
    let command: net.Socket | undefined;
    try {
      await until(() => fs.existsSync(socketPath));
      command = net.connect(socketPath).on('error', () => {});
      await until(() => messages().includes('using the embedded database'));
      sesame.child.kill('SIGTERM');
      const ended = await Promise.race([
        sesame.exited,
        new Promise<'still running'>((resolve) => setTimeout(() => resolve('still running'), 30_000)),
      ]);
      expect(ended).toMatchObject({ code: 0, signal: null });
      const stopped = messages().indexOf('shutting down');
      expect(stopped).toBeGreaterThan(-1);
      expect(messages().slice(stopped)).not.toContain('Sesame is listening');
      expect(fs.existsSync(socketPath)).toBe(false);
    } finally {
      command?.destroy();
      if (sesame.child.exitCode === null) sesame.child.kill('SIGKILL');
      await sesame.exited;
    }
  }, 60_000);
});

describe('refusing to start with a bad setting', () => {
  it.each([
    ['ISSUER', 'not-a-url', 'sesame: ISSUER must be an absolute http(s) URL'],
    ['PORT', 'abc', 'sesame: PORT must be a whole number'],
    [
      'SIGNUP',
      'closed',
      'sesame: SIGNUP must be "open" or "invite" (or "open-verified": open, for verified addresses only)',
    ],
    ['DATABASE_URL', 'mysql://db/sesame', 'sesame: DATABASE_URL must be a postgres:// or postgresql:// URL'],
    [
      'DATABASE_URL',
      'postgres://sesame:hunter2@db:99999/sesame',
      'sesame: DATABASE_URL is not a connection URL Postgres clients read: Invalid URL',
    ],
    [
      'DATABASE_URL',
      'postgres://sesame:hunter2%zz@db/sesame',
      'sesame: DATABASE_URL has a % that is not a percent-escape: write % as %25 (in its password too)',
    ],
    [
      'DATABASE_DIRECT_URL',
      'postgres://sesame@db/sesame',
      'sesame: DATABASE_DIRECT_URL is set but DATABASE_URL is not: set DATABASE_URL too, or neither for the embedded database',
    ],
  ])('exits non-zero on %s=%s with exactly one line on stderr naming it', async (variable, value, line) => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sesame-badconfig-'));
    try {
      const result = await runServerExpectingExit({ DATA_DIR: dataDir, [variable]: value });
      expect(result.code).toBe(1);
      expect(result.stderr).toBe(`${line}\n`);
      expect(result.stdout).toBe('');
      // Nothing was created: the settings are checked before the database is touched.
      expect(fs.readdirSync(dataDir)).toEqual([]);
    } finally {
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

describe("a library's process warning", () => {
  // pg warns about sslmode=require over eleven lines of plain text, which Node prints as they are.
  it('is one JSON line of the log, without the URL, and the failed start still ends with its one line', async () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sesame-warning-'));
    try {
      // Nothing listens on port 1: the start fails after pg has read the URL.
      const result = await runServerExpectingExit({
        DATA_DIR: dataDir,
        DATABASE_URL: 'postgres://sesame:hunter2@127.0.0.1:1/sesame?sslmode=require',
      });
      expect(result.code).toBe(1);
      const lines = linesOf(result.stderr);
      expect(lines.pop()).toMatch(
        /^sesame: cannot connect to the database \(DATABASE_URL .*\): .*ECONNREFUSED/,
      );
      const entries = lines.map((line) => JSON.parse(line) as Record<string, string>);
      expect(entries).toContainEqual(
        expect.objectContaining({
          level: 'warn',
          msg: expect.stringContaining('SECURITY WARNING'),
          source: 'Warning',
          detail: expect.stringContaining('sslmode=verify-full'),
        }),
      );
      expect(result.stderr).not.toContain('hunter2');
    } finally {
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

describe('a Postgres server the start cannot reach', () => {
  it('names DATABASE_URL (password masked) in its one line, also when LOG_LEVEL hides the "using Postgres" line', async () => {
    // Nothing listens on port 1.
    const result = await runServerExpectingExit({
      DATABASE_URL: 'postgres://sesame:hunter2@127.0.0.1:1/sesame',
      LOG_LEVEL: 'error',
    });
    expect(result.code).toBe(1);
    expect(linesOf(result.stderr)).toEqual([
      'sesame: cannot connect to the database (DATABASE_URL postgres://sesame:***@127.0.0.1:1/sesame): connect ECONNREFUSED 127.0.0.1:1',
    ]);
  });

  it('names DATABASE_URL when the server refuses the TLS its sslmode asks for, not as a failed migration', async () => {
    // A server without TLS answers a client's SSLRequest with 'N', as Postgres does.
    const server = net.createServer((socket) => socket.once('data', () => socket.end('N')));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as net.AddressInfo;
    try {
      const result = await runServerExpectingExit({
        DATABASE_URL: `postgres://sesame@127.0.0.1:${port}/sesame?sslmode=require`,
        LOG_LEVEL: 'error',
      });
      expect(result.code).toBe(1);
      expect(linesOf(result.stderr).filter((line) => line.startsWith('sesame:'))).toEqual([
        `sesame: cannot connect to the database (DATABASE_URL postgres://sesame@127.0.0.1:${port}/sesame?sslmode=require): The server does not support SSL connections`,
      ]);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('names both URLs when DATABASE_DIRECT_URL is another one', async () => {
    const result = await runServerExpectingExit({
      DATABASE_URL: 'postgres://sesame:hunter2@127.0.0.1:1/sesame',
      DATABASE_DIRECT_URL: 'postgres://sesame:hunter2@127.0.0.1:2/sesame',
      LOG_LEVEL: 'error',
    });
    expect(result.code).toBe(1);
    expect(linesOf(result.stderr)).toEqual([
      expect.stringMatching(
        /^sesame: cannot connect to the database \(DATABASE_URL postgres:\/\/sesame:\*\*\*@127\.0\.0\.1:1\/sesame, DATABASE_DIRECT_URL postgres:\/\/sesame:\*\*\*@127\.0\.0\.1:2\/sesame\): connect ECONNREFUSED 127\.0\.0\.1:[12]$/,
      ),
    ]);
  });
});

(onPostgres ? describe : describe.skip)('a Postgres database that is not there', () => {
  it('stops the start with "cannot connect to the database", not as a failed migration', async () => {
    const url = new URL(process.env.DATABASE_DIRECT_URL ?? process.env.DATABASE_URL!);
    url.pathname = '/sesame_never_created';
    const result = await runServerExpectingExit({ DATABASE_URL: url.href });
    expect(result.code).toBe(1);
    expect(linesOf(result.stderr).pop()).toBe(
      `sesame: cannot connect to the database (DATABASE_URL ${url.href.replace(/:[^:@/]*@/, ':***@')}): database "sesame_never_created" does not exist: create it first (createdb): Sesame creates its tables, not the database`,
    );
  });
});

(onPostgres ? describe : describe.skip)(
  "a Postgres database its user may not create tables in (another role's)",
  () => {
    it('stops the start with one line naming the role, the schema and what to run, not "current transaction is aborted"', async () => {
      const admin = new pg.Client({
        connectionString: process.env.DATABASE_DIRECT_URL ?? process.env.DATABASE_URL,
      });
      await admin.connect();
      const name = `sesame_not_owner_${process.pid}`;
      try {
        await admin.query(`create role ${name} login`);
        await admin.query(`create database ${name}`);
        const url = new URL(process.env.DATABASE_DIRECT_URL ?? process.env.DATABASE_URL!);
        url.username = name;
        url.password = '';
        url.pathname = `/${name}`;
        const result = await runServerExpectingExit({ DATABASE_URL: url.href, LOG_LEVEL: 'error' });
        expect(result.code).toBe(1);
        expect(linesOf(result.stderr)).toEqual([
          `sesame: cannot migrate the database: role ${name} may not create tables in schema public of database ${name}: make it the database's owner (ALTER DATABASE ${name} OWNER TO ${name}; createdb -O ${name} for a new one) or GRANT CREATE ON SCHEMA public TO ${name}`,
        ]);
        // What the line says to run is enough.
        await admin.query(`alter database ${name} owner to ${name}`);
        const sesame = await startSesameProcess({ DATABASE_URL: url.href, LOG_LEVEL: 'warn' }, 60_000);
        await sesame.stop();
      } finally {
        await admin.query(`drop database if exists ${name} with (force)`).catch(() => {});
        await admin.query(`drop role if exists ${name}`).catch(() => {});
        await admin.end();
      }
    }, 90_000);
  },
);

/** Where Debian's Postgres (and most Linux packages') listens on a Unix socket. */
const SOCKET_DIR = '/var/run/postgresql';
const directUrl = process.env.DATABASE_DIRECT_URL ?? process.env.DATABASE_URL;
const socketPort = directUrl ? new URL(directUrl).port || '5432' : '5432';
const onLocalSocket = onPostgres && fs.existsSync(path.join(SOCKET_DIR, `.s.PGSQL.${socketPort}`));

// On the suite's Postgres when it also listens on its Unix socket here, as CI's does.
(onLocalSocket ? describe : describe.skip)('starting on Postgres through its Unix socket', () => {
  it('connects with a URL naming a user and no host, and logs it with its password masked', async () => {
    const database = await createTestDatabase();
    const { username, pathname } = new URL(database.env.DATABASE_DIRECT_URL!);
    const user = username || os.userInfo().username;
    const password = `unused-${Date.now()}`;
    const query = `host=${SOCKET_DIR}&port=${socketPort}`;
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sesame-socket-'));
    let sesame: SesameProcess | undefined;
    try {
      sesame = await startSesameProcess(
        { DATA_DIR: dataDir, DATABASE_URL: `postgres://${user}:${password}@${pathname}?${query}` },
        60_000,
      );
      const discovery = await fetch(`${sesame.baseUrl}/.well-known/openid-configuration`);
      expect(discovery.status).toBe(200);
      const opened = logEntries(sesame).find((entry) => entry.msg === 'using Postgres');
      expect(opened).toMatchObject({ data: `postgres://${user}:***@${pathname}?${query}` });
      expect(sesame.stderr()).not.toContain(password);
      // The embedded database was not opened instead.
      expect(fs.readdirSync(dataDir)).toEqual([]);
    } finally {
      if (sesame && sesame.child.exitCode === null) await sesame.stop('SIGTERM');
      fs.rmSync(dataDir, { recursive: true, force: true });
      await database.drop();
    }
  }, 70_000);
});
