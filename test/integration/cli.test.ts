import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Migrator, sql } from 'kysely';
import { migrations } from '../../migrations/index.js';
import { configFrom } from '../../src/config.js';
import { sha256Hex } from '../../src/crypto.js';
import { openDatabase } from '../../src/db/connect.js';
import { eventually } from '../support/eventually.js';
import {
  type CliSession,
  canUnsharePid,
  linesOf,
  runCli,
  runServerInNewPidNamespace,
  type SesameProcess,
  startCliSession,
  startSesameProcess,
} from '../support/sesameProcess.js';
import { createTestDatabase, onPostgres, type TestDatabase } from '../support/testDatabase.js';

const basic = (id: string, secret: string) =>
  `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;

/** Reads the clients table directly (the embedded database is free while no server runs). */
async function clientRows(env: TestDatabase['env']) {
  const database = await openDatabase(configFrom(env));
  try {
    return await database.db.selectFrom('clients').selectAll().orderBy('created_at').execute();
  } finally {
    await database.close();
  }
}

/** The single JSON value a `--json` command printed; fails unless stdout is exactly one line of JSON. */
function onlyJson<T>(stdout: string): T {
  const lines = linesOf(stdout);
  expect(lines).toHaveLength(1);
  expect(stdout).toBe(`${lines[0]}\n`);
  return JSON.parse(lines[0]!) as T;
}

describe('the sesame command (node bin/sesame.js)', () => {
  let testDb: TestDatabase;
  let svc: { client_id: string; client_secret: string };
  let cli: CliSession;

  beforeAll(async () => {
    testDb = await createTestDatabase();
    // Created before any server runs: the first thing an operator does after installing.
    const result = await runCli(
      ['clients', 'create', '--name', 'svc', '--redirect-uri', 'https://app.example/cb', '--json'],
      testDb.env,
    );
    expect(result).toMatchObject({ code: 0, stderr: '' });
    svc = onlyJson(result.stdout);
    // The commands after this one run in one process (test/support/cliSession.mjs): each is
    // the same CLI with its own argv, output and exit code, without Node's start each time.
    cli = await startCliSession(testDb.env);
  }, 60_000);

  afterAll(async () => {
    await cli?.close();
    await testDb?.drop();
  });

  it('prints exactly one JSON object with the client id and a 256-bit secret for clients create --json', () => {
    expect(Object.keys(svc).sort()).toEqual(['client_id', 'client_secret']);
    expect(svc.client_id).toMatch(/^[A-Za-z0-9_-]{16,}$/);
    // 32 random bytes, base64url without padding.
    expect(svc.client_secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
  });

  it('stores only the SHA-256 of the secret in the clients row', async () => {
    const rows = await clientRows(testDb.env);
    const row = rows.find((r) => r.client_id === svc.client_id)!;
    expect(row.secret_hash).toBe(sha256Hex(svc.client_secret));
    expect(JSON.stringify(rows)).not.toContain(svc.client_secret);
  });

  it('creates a public client without a secret', async () => {
    const result = await cli.run([
      'clients',
      'create',
      '--name',
      'spa',
      '--redirect-uri',
      'https://spa.example/cb',
      '--public',
      '--json',
    ]);
    expect(result.code).toBe(0);
    const created = onlyJson<Record<string, string>>(result.stdout);
    expect(Object.keys(created)).toEqual(['client_id']);
  });

  it('lists clients as one JSON array that never holds a secret or its hash', async () => {
    const result = await cli.run(['clients', 'list', '--json']);
    expect(result.code).toBe(0);
    const clients = onlyJson<Array<Record<string, unknown>>>(result.stdout);
    expect(clients.map((c) => c.name)).toEqual(expect.arrayContaining(['svc', 'spa']));
    expect(clients.find((c) => c.client_id === svc.client_id)).toMatchObject({
      name: 'svc',
      public: false,
      redirect_uris: ['https://app.example/cb'],
    });
    expect(result.stdout).not.toContain(svc.client_secret);
    expect(result.stdout).not.toContain(sha256Hex(svc.client_secret));
    expect(result.stdout).not.toMatch(/secret/i);
  });

  it('refuses a bad redirect URI in one line on stderr that names the flag, prints nothing on stdout, and stores nothing', async () => {
    const before = (await clientRows(testDb.env)).length;
    const result = await cli.run([
      'clients',
      'create',
      '--name',
      'evil',
      '--redirect-uri',
      'javascript:alert(1)',
      '--json',
    ]);
    expect(result.code).not.toBe(0);
    expect(result.stdout).toBe('');
    expect(linesOf(result.stderr)).toEqual([expect.stringMatching(/^sesame: --redirect-uri: .*javascript/)]);
    expect((await clientRows(testDb.env)).length).toBe(before);
  });

  it('refuses a * in a redirect URI, taken for a wildcard, saying to list each URI', async () => {
    const before = (await clientRows(testDb.env)).length;
    const result = await cli.run([
      'clients',
      'create',
      '--name',
      'Notes',
      '--redirect-uri',
      'https://notes.example/*',
    ]);
    expect(result.code).not.toBe(0);
    expect(linesOf(result.stderr)).toEqual([
      'sesame: --redirect-uri: https://notes.example/*: redirect URIs are matched exactly, a * is not a wildcard; list each URI',
    ]);
    expect((await clientRows(testDb.env)).length).toBe(before);
  });

  it('says which client does not exist, in one line, and exits non-zero', async () => {
    const result = await cli.run(['clients', 'show', 'no-such-client', '--json']);
    expect(result.code).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr).toBe('sesame: no client with id no-such-client\n');
  });

  it('rotates the signing keys, to sign after the delay asked for', async () => {
    const result = await cli.run(['keys', 'rotate', '--activate-in', '600', '--json']);
    expect(result.code).toBe(0);
    const rotated = onlyJson<{ kids: string[]; activates_at: string }>(result.stdout);
    expect(rotated.kids).toEqual([expect.stringMatching(/^es256-/), expect.stringMatching(/^rs256-/)]);
    const inMs = Date.parse(rotated.activates_at) - Date.now();
    expect(inMs).toBeGreaterThan(590_000);
    expect(inMs).toBeLessThan(610_000);
  });

  it('refuses an activation delay that is not a whole number of seconds up to a year, in one line', async () => {
    const database = await openDatabase(configFrom(testDb.env));
    const count = async () => (await database.db.selectFrom('signing_keys').select('kid').execute()).length;
    try {
      const before = await count();
      for (const bad of ['soon', '-5', '1.5', '31536001']) {
        const result = await cli.run(['keys', 'rotate', '--activate-in', bad]);
        expect(result.code).not.toBe(0);
        expect(linesOf(result.stderr)).toEqual([expect.stringMatching(/^sesame: .*whole number of seconds/)]);
        expect(await count()).toBe(before);
      }
    } finally {
      await database.close();
    }
  });

  it('revokes every earlier key with --revoke-previous: only the new keys remain, signing at once', async () => {
    const database = await openDatabase(configFrom(testDb.env));
    try {
      const before = (await database.db.selectFrom('signing_keys').select('kid').execute()).map((r) => r.kid);
      const result = await cli.run(['keys', 'rotate', '--revoke-previous', '--json']);
      expect(result).toMatchObject({ code: 0, stderr: '' });
      const rotated = onlyJson<{ kids: string[]; activates_at: string; revoked_kids: string[] }>(
        result.stdout,
      );
      expect(rotated.revoked_kids.sort()).toEqual(before.sort());
      expect(Math.abs(Date.parse(rotated.activates_at) - Date.now())).toBeLessThan(10_000);
      const after = await database.db.selectFrom('signing_keys').select(['kid', 'retired_at']).execute();
      expect(after.map((r) => r.kid).sort()).toEqual([...rotated.kids].sort());
      expect(after.every((r) => r.retired_at === null)).toBe(true);
    } finally {
      await database.close();
    }
  });

  it('refuses --revoke-previous with a delay, in one line, and changes no key', async () => {
    const database = await openDatabase(configFrom(testDb.env));
    const kids = async () =>
      (await database.db.selectFrom('signing_keys').select('kid').execute()).map((r) => r.kid).sort();
    try {
      const before = await kids();
      const result = await cli.run(['keys', 'rotate', '--revoke-previous', '--activate-in', '600']);
      expect(result.code).toBe(1);
      expect(result.stdout).toBe('');
      expect(linesOf(result.stderr)).toEqual([
        expect.stringMatching(/^sesame: --revoke-previous .*--activate-in/),
      ]);
      expect(await kids()).toEqual(before);
    } finally {
      await database.close();
    }
  });

  describe('with the server running on the same database', () => {
    let sesame: SesameProcess;

    beforeAll(async () => {
      sesame = await startSesameProcess({ ...testDb.env, LOG_LEVEL: 'warn' }, 60_000);
    }, 70_000);

    afterAll(async () => {
      await sesame?.stop();
    });

    const token = (authorization: string, form: Record<string, string>) =>
      fetch(`${sesame.baseUrl}/token`, {
        method: 'POST',
        headers: { authorization, 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams(form),
      });

    const introspect = async (accessToken: string) => {
      const response = await fetch(`${sesame.baseUrl}/token/introspection`, {
        method: 'POST',
        headers: {
          authorization: basic(svc.client_id, svc.client_secret),
          'content-type': 'application/x-www-form-urlencoded',
        },
        body: new URLSearchParams({ token: accessToken }),
      });
      expect(response.status).toBe(200);
      return (await response.json()) as Record<string, unknown>;
    };

    it('issues an access token by client_credentials with HTTP Basic, active until it is revoked', async () => {
      const issued = await token(basic(svc.client_id, svc.client_secret), {
        grant_type: 'client_credentials',
      });
      expect(issued.status).toBe(200);
      expect(issued.headers.get('cache-control')).toBe('no-store');
      const body = (await issued.json()) as Record<string, unknown>;
      expect(body).toMatchObject({ token_type: 'Bearer', expires_in: expect.any(Number) });
      const accessToken = body.access_token as string;
      expect(typeof accessToken).toBe('string');

      expect(await introspect(accessToken)).toMatchObject({ active: true, client_id: svc.client_id });

      const revoked = await fetch(`${sesame.baseUrl}/token/revocation`, {
        method: 'POST',
        headers: {
          authorization: basic(svc.client_id, svc.client_secret),
          'content-type': 'application/x-www-form-urlencoded',
        },
        body: new URLSearchParams({ token: accessToken, token_type_hint: 'access_token' }),
      });
      expect(revoked.status).toBe(200);

      expect(await introspect(accessToken)).toEqual({ active: false });
    });

    it('answers invalid_client to a wrong secret and to an unknown client', async () => {
      for (const authorization of [
        basic(svc.client_id, `${svc.client_secret.slice(0, -1)}x`),
        basic(svc.client_id, sha256Hex(svc.client_secret)),
        basic('no-such-client', svc.client_secret),
      ]) {
        const response = await token(authorization, { grant_type: 'client_credentials' });
        expect(response.status).toBe(401);
        expect(response.headers.get('content-type')).toMatch(/^application\/json/);
        expect(await response.json()).toMatchObject({ error: 'invalid_client' });
      }
    });

    it('answers invalid_request to an empty secret', async () => {
      const response = await token(basic(svc.client_id, ''), { grant_type: 'client_credentials' });
      expect(response.status).toBe(400);
      expect(await response.json()).toMatchObject({ error: 'invalid_request' });
    });

    /**
     * A server on an embedded data directory. When the suite runs on Postgres the server
     * above uses Postgres, so a second one is started on an embedded directory.
     */
    async function embeddedServer() {
      if (!onPostgres) return { dataDir: testDb.env.DATA_DIR!, server: sesame, done: async () => {} };
      const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sesame-cli-lock-'));
      const server = await startSesameProcess({ DATA_DIR: dataDir, LOG_LEVEL: 'warn' }, 60_000);
      const done = async () => {
        await server.stop();
        fs.rmSync(dataDir, { recursive: true, force: true });
      };
      return { dataDir, server, done };
    }

    it("warns when its ISSUER is not the running server's: the links it prints would lead elsewhere", async () => {
      const { dataDir, server, done } = await embeddedServer();
      try {
        // Without the server's PORT or ISSUER, the command's ISSUER is http://localhost:3000.
        const elsewhere = await runCli(['users', 'invite', '--email', 'far@example.com'], {
          DATA_DIR: dataDir,
        });
        expect(elsewhere.code).toBe(0);
        expect(elsewhere.stdout).toContain('http://localhost:3000/link/');
        expect(linesOf(elsewhere.stderr)).toEqual([
          `sesame: the server running on ${dataDir} serves ${server.baseUrl}, but this command's ISSUER is http://localhost:3000: the links it prints would lead there; set ISSUER (or PORT) for this command as the server has it (in .env, which both read)`,
        ]);
        // JSON keeps stderr for errors; with the server's ISSUER there is nothing to say.
        const json = await runCli(['users', 'invite', '--email', 'json@example.com', '--json'], {
          DATA_DIR: dataDir,
        });
        expect(json).toMatchObject({ code: 0, stderr: '' });
        const same = await runCli(['users', 'invite', '--email', 'near@example.com'], {
          DATA_DIR: dataDir,
          ISSUER: server.baseUrl,
        });
        expect(same).toMatchObject({ code: 0, stderr: '' });
        expect(same.stdout).toContain(`${server.baseUrl}/link/`);
      } finally {
        await done();
      }
    });

    it("says nothing of a server that has gone: its ISSUER goes with it, a crashed one's with the next holder", async () => {
      const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sesame-cli-issuer-'));
      const issuerFile = path.join(dataDir, '.s.PGSQL.5432.issuer');
      try {
        const stopped = await startSesameProcess({ DATA_DIR: dataDir, LOG_LEVEL: 'warn' }, 60_000);
        expect(fs.existsSync(issuerFile)).toBe(true);
        await stopped.stop();
        expect(fs.existsSync(issuerFile)).toBe(false);
        const crashed = await startSesameProcess({ DATA_DIR: dataDir, LOG_LEVEL: 'warn' }, 60_000);
        await crashed.stop('SIGKILL');
        expect(fs.existsSync(issuerFile)).toBe(true);
        // A command holds the directory now; another works through it and has nothing to warn of.
        const holder = await openDatabase(
          { dataDir, databaseUrl: undefined },
          { throughRunningServer: true },
        );
        try {
          const invite = await runCli(['users', 'invite', '--email', 'late@example.com'], {
            DATA_DIR: dataDir,
            ISSUER: 'http://localhost:3000',
          });
          expect(invite.code).toBe(0);
          expect(linesOf(invite.stderr)).toEqual([]);
        } finally {
          await holder.close();
        }
      } finally {
        fs.rmSync(dataDir, { recursive: true, force: true });
      }
    }, 120_000);

    it('lists clients beside the running server, as it does without one', async () => {
      const result = await cli.run(['clients', 'list', '--json']);
      expect(result).toMatchObject({ code: 0, stderr: '' });
      const clients = onlyJson<Array<Record<string, unknown>>>(result.stdout);
      expect(clients.map((c) => c.client_id)).toContain(svc.client_id);
    });

    it('rotates a secret beside the running server: the old secret is refused once the server hears of it, the new one works', async () => {
      const created = await cli.run([
        'clients',
        'create',
        '--name',
        'rotating',
        '--redirect-uri',
        'https://rot.example/cb',
        '--json',
      ]);
      expect(created).toMatchObject({ code: 0, stderr: '' });
      const client = onlyJson<{ client_id: string; client_secret: string }>(created.stdout);
      // The server has the client in its row cache now.
      const grant = { grant_type: 'client_credentials' };
      expect((await token(basic(client.client_id, client.client_secret), grant)).status).toBe(200);

      const rotated = await cli.run(['clients', 'rotate-secret', client.client_id, '--json']);
      expect(rotated).toMatchObject({ code: 0, stderr: '' });
      const { client_secret: newSecret } = onlyJson<{ client_secret: string }>(rotated.stdout);
      // The command writes to the database; the server hears of it by the row's change notice a
      // moment after the commit (on Postgres, sometimes after the next request).
      const oldSecretRefused = async () =>
        (await token(basic(client.client_id, client.client_secret), grant)).status === 401;
      expect(await eventually(oldSecretRefused)).toBe(true);
      expect((await token(basic(client.client_id, newSecret), grant)).status).toBe(200);
    });

    (canUnsharePid ? it : it.skip)(
      'works through the server from another PID namespace, never opening its files, and loses nothing on a restart',
      async () => {
        const { dataDir, server, done } = await embeddedServer();
        let restarted: SesameProcess | undefined;
        try {
          const env = { DATA_DIR: dataDir, ISSUER: server.baseUrl };
          const before = onlyJson<Array<{ client_id: string }>>(
            (await runCli(['clients', 'list', '--json'], env)).stdout,
          );
          const created = await runCli(
            [
              'clients',
              'create',
              '--name',
              'from-a-container',
              '--redirect-uri',
              'https://c.example/cb',
              '--json',
            ],
            env,
            60_000,
            { inNewPidNamespace: true },
          );
          expect(created).toMatchObject({ code: 0, stderr: '' });
          const { client_id, client_secret } = onlyJson<{ client_id: string; client_secret: string }>(
            created.stdout,
          );
          // The running server serves the new client at once.
          const issued = await fetch(`${server.baseUrl}/token`, {
            method: 'POST',
            headers: {
              authorization: basic(client_id, client_secret),
              'content-type': 'application/x-www-form-urlencoded',
            },
            body: new URLSearchParams({ grant_type: 'client_credentials' }),
          });
          expect(issued.status).toBe(200);

          // A second server from another PID namespace is refused and leaves the first one serving.
          const second = await runServerInNewPidNamespace({ DATA_DIR: dataDir, LOG_LEVEL: 'warn' });
          expect(second.code).not.toBe(0);
          expect(linesOf(second.stderr)).toEqual([
            `sesame: the embedded database in ${dataDir} is in use by another Sesame process; stop it first, or set DATABASE_URL to use Postgres`,
          ]);
          expect((await fetch(`${server.baseUrl}/readyz`)).status).toBe(200);

          // Everything, the client made from the other namespace included, survives a restart.
          if (server === sesame) {
            await sesame.stop();
            sesame = await startSesameProcess({ ...testDb.env, LOG_LEVEL: 'warn' }, 60_000);
          } else {
            await server.stop();
            restarted = await startSesameProcess({ DATA_DIR: dataDir, LOG_LEVEL: 'warn' }, 60_000);
          }
          const after = onlyJson<Array<{ client_id: string }>>(
            (await runCli(['clients', 'list', '--json'], env)).stdout,
          );
          expect(after.map((c) => c.client_id).sort()).toEqual(
            [...before.map((c) => c.client_id), client_id].sort(),
          );
        } finally {
          await restarted?.stop();
          await done();
        }
      },
      180_000,
    );

    it('publishes keys that `keys rotate` adds beside the running server within seconds, without a restart', async () => {
      const publishedKids = async () => {
        const { keys } = (await (await fetch(`${sesame.baseUrl}/jwks`)).json()) as {
          keys: { kid: string }[];
        };
        return keys.map((key) => key.kid).sort();
      };
      const before = await publishedKids();
      const result = await cli.run(['keys', 'rotate', '--json']);
      expect(result.code).toBe(0);
      const { kids } = onlyJson<{ kids: string[] }>(result.stdout);
      const deadline = Date.now() + 5_000;
      while ((await publishedKids()).length === before.length && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      expect(await publishedKids()).toEqual([...before, ...kids].sort());
    });
  });
});

describe('the sesame command on a database an older Sesame migrated', () => {
  let testDb: TestDatabase;

  /** The names of the migrations the database ran (the embedded database is free between commands). */
  async function migrationsRun(): Promise<string[]> {
    const database = await openDatabase(configFrom(testDb.env));
    try {
      const { rows } = await sql<{ name: string }>`select name from kysely_migration order by name`.execute(
        database.db,
      );
      return rows.map((row) => row.name);
    } finally {
      await database.close();
    }
  }

  beforeAll(async () => {
    testDb = await createTestDatabase();
    // What the release before 0031 left: its servers may still run on it during an upgrade.
    const database = await openDatabase(configFrom(testDb.env));
    try {
      const migrator = new Migrator({ db: database.db, provider: { getMigrations: async () => migrations } });
      expect((await migrator.migrateTo('0030_admin_form_tokens')).error).toBeUndefined();
    } finally {
      await database.close();
    }
  }, 60_000);

  afterAll(async () => {
    await testDb?.drop();
  });

  // On the embedded database a command reaches the data through the server that holds it.
  (onPostgres ? it.skip : it)(
    'refuses sesame migrate beside a server of the older version on the embedded database, and migrates nothing',
    async () => {
      // Holds the data directory and serves it on its socket, as the older server would.
      const server = await openDatabase(configFrom(testDb.env));
      try {
        const names = async () =>
          (await sql<{ name: string }>`select name from kysely_migration order by name`.execute(server.db))
            .rows;
        const before = await names();
        const result = await runCli(['migrate', '--json'], testDb.env);
        expect(result).toMatchObject({ code: 1, stdout: '' });
        expect(linesOf(result.stderr)).toEqual([
          expect.stringMatching(
            /^sesame: an older Sesame's server runs on the embedded database in .+, and the migrations would break it: stop it, then run `sesame migrate` again/,
          ),
        ]);
        expect(await names()).toEqual(before);
      } finally {
        await server.close();
      }
    },
    60_000,
  );

  it('refuses every command but migrate in one line that says to run sesame migrate, and migrates nothing', async () => {
    const before = await migrationsRun();
    expect(before).not.toContain('0031_passkey_tenant_key_rotation');

    const listed = await runCli(['clients', 'list', '--json'], testDb.env);
    expect(listed).toMatchObject({ code: 1, stdout: '' });
    expect(linesOf(listed.stderr)).toEqual([
      expect.stringMatching(
        /^sesame: the database is an older Sesame's: it lacks \d+ migration\(s\) of this version \(0031_passkey_tenant_key_rotation …\); back it up and stop the servers of the older version, then run `sesame migrate`/,
      ),
    ]);
    expect(await migrationsRun()).toEqual(before);

    const migrated = await runCli(['migrate', '--json'], testDb.env);
    expect(migrated).toMatchObject({ code: 0, stderr: '' });
    expect((JSON.parse(migrated.stdout) as { applied: string[] }).applied).toContain(
      '0031_passkey_tenant_key_rotation',
    );
    expect(await runCli(['clients', 'list', '--json'], testDb.env)).toMatchObject({ code: 0, stderr: '' });
  }, 60_000);
});
