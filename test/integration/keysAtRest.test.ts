import * as jose from 'jose';
import { createApp, type SesameApp } from '../../src/app.js';
import { configFrom } from '../../src/config.js';
import { type DatabaseHandle, openDatabase } from '../../src/db/connect.js';
import { createLogger } from '../../src/logger.js';
import { createClient } from '../../src/oidc/clients.js';
import { createTenant } from '../../src/passkeyApi/tenants.js';
import { beginLogin, discoverRp, finishLogin, Person, type TestRp } from '../support/oidcFlow.js';
import { linesOf, runCli, runServerExpectingExit } from '../support/sesameProcess.js';
import { freePort, startTestApp } from '../support/testApp.js';
import { createTestDatabase, type TestDatabase } from '../support/testDatabase.js';

const REDIRECT_URI = 'http://127.0.0.1:8923/callback';
const SECRET = 'a-key-encryption-secret-of-at-least-32-characters';
const OTHER_SECRET = 'another-secret-that-is-also-32-characters-long';

/** Every stored private key, as the database holds it. */
async function storedKeys(db: DatabaseHandle['db']): Promise<string[]> {
  const signing = await db.selectFrom('signing_keys').select('private_jwk').execute();
  const cookie = await db
    .selectFrom('app_secrets')
    .select('value')
    .where('name', '=', 'cookie_keys')
    .execute();
  const tenants = await db.selectFrom('passkey_tenant_keys').select('private_jwk').execute();
  return [
    ...signing.map((r) => r.private_jwk),
    ...cookie.map((r) => r.value),
    ...tenants.map((r) => r.private_jwk),
  ];
}

describe('KEY_ENCRYPTION_SECRET set after the first start', () => {
  let testDb: TestDatabase;
  let env: Record<string, string>;
  let port: number;
  let running: { app: SesameApp; database: DatabaseHandle } | undefined;
  let logLines: string[];
  let person: Person;
  let rp: TestRp;
  let clientId: string;
  let tenantId: string;

  /** Starts Sesame in this process on the test's database and port, with `extra` settings. */
  async function start(extra: Record<string, string> = {}): Promise<DatabaseHandle['db']> {
    logLines = [];
    const config = configFrom({ ...env, ...extra });
    const database = await openDatabase(config, { poolSize: 5 });
    try {
      const app = await createApp({
        config,
        db: database.db,
        log: createLogger('info', (line) => logLines.push(line)),
        listen: database.listen,
      });
      await app.start(port, '127.0.0.1');
      running = { app, database };
      return database.db;
    } catch (error) {
      await database.close();
      throw error;
    }
  }

  async function stop(): Promise<void> {
    await running?.app.stop();
    await running?.database.close();
    running = undefined;
  }

  /** Reads the stored keys while no server holds the database. */
  async function keysAtRest(): Promise<string[]> {
    const database = await openDatabase(configFrom(env));
    try {
      return await storedKeys(database.db);
    } finally {
      await database.close();
    }
  }

  const baseUrl = () => `http://localhost:${port}`;
  const publishedKids = async () => {
    const { keys } = (await (await fetch(`${baseUrl()}/jwks`)).json()) as { keys: { kid: string }[] };
    return keys.map((key) => key.kid).sort();
  };
  const tenantJwks = async () =>
    (await fetch(`${baseUrl()}/passkey-api/${tenantId}/.well-known/jwks.json`)).json();

  beforeAll(async () => {
    testDb = await createTestDatabase();
    port = await freePort();
    env = {
      ISSUER: `http://localhost:${port}`,
      PORT: String(port),
      LOG_LEVEL: 'info',
      RATE_LIMIT_PER_MINUTE: '0',
      ...testDb.env,
    };
  });

  afterAll(async () => {
    await stop();
    await testDb.drop();
  });

  it('stores the keys in plain text while no secret is set (the state an operator starts from)', async () => {
    const db = await start();
    const created = await createClient(db, { name: 'Notes', redirect_uris: [REDIRECT_URI] }, 'test');
    clientId = created.client.client_id;
    rp = await discoverRp(
      baseUrl(),
      { client_id: clientId, client_secret: created.client_secret! },
      REDIRECT_URI,
    );
    person = new Person(baseUrl());
    const pending = await beginLogin(rp);
    const next = await person.signUp(await person.open(pending.url), 'ada@example.com');
    await finishLogin(rp, pending, await person.continueToApp(next, REDIRECT_URI));
    const tenant = await createTenant(
      db,
      running!.app.config,
      { name: 'Shop', origins: ['https://shop.example'] },
      'test',
    );
    tenantId = tenant.tenant.id;
    const keys = await storedKeys(db);
    expect(keys).toHaveLength(4);
    expect(keys.filter((key) => key.includes('"d":'))).toHaveLength(3);
    await stop();
  }, 60_000);

  it('makes the sesame command write keys in plain text, as the servers do, while they run without the secret', async () => {
    // The operator has put the secret in the CLI's environment first; the servers have not
    // been restarted with it yet. What the command writes, they must read.
    const result = await runCli(
      ['keys', 'rotate-cookie-key', '--json'],
      { ...env, KEY_ENCRYPTION_SECRET: SECRET },
      100_000,
    );
    expect(result.code).toBe(0);
    const keys = await keysAtRest();
    expect(keys).toHaveLength(4);
    expect(keys.filter((key) => key.startsWith('enc:'))).toEqual([]);
    // A server without the secret starts on them (it refused to: "stored keys are encrypted").
    await start();
    await stop();
  }, 120_000);

  it('encrypts every plain-text key at the next start with the secret, says so once, and everything keeps working', async () => {
    const kidsBefore = (await keysAtRest()).length;
    await start({ KEY_ENCRYPTION_SECRET: SECRET });

    // The embedded database is held by the running server: read through its own handle.
    const atRest = await storedKeys(running!.database.db);
    expect(atRest).toHaveLength(kidsBefore);
    for (const key of atRest) {
      expect(key).toMatch(/^enc:v1:/);
      expect(key).not.toContain('"d"');
    }
    const sealedLines = logLines
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .filter((line) => /encrypted keys/.test(String(line.msg)));
    expect(sealedLines).toHaveLength(1);
    expect(sealedLines[0]).toMatchObject({
      level: 'info',
      signing_keys: 2,
      cookie_keys: 1,
      passkey_tenant_keys: 1,
    });

    // The same keys: the JWKS is unchanged, the person's session cookie still signs them in
    // without a prompt, and the new ID token verifies against the published keys.
    expect(await publishedKids()).toHaveLength(2);
    const pending = await beginLogin(rp);
    const tokens = await finishLogin(rp, pending, await person.continueToApp(pending.url, REDIRECT_URI));
    const jwks = jose.createRemoteJWKSet(new URL(`${baseUrl()}/jwks`));
    const { payload } = await jose.jwtVerify(tokens.id_token!, jwks, {
      issuer: baseUrl(),
      audience: clientId,
    });
    expect(payload.email).toBe('ada@example.com');
    expect(await tenantJwks()).toMatchObject({ keys: [{ kty: 'RSA', kid: expect.any(String) }] });
  }, 60_000);

  it('has nothing left to encrypt at the start after that, and logs nothing about it', async () => {
    await stop();
    await start({ KEY_ENCRYPTION_SECRET: SECRET });
    expect(logLines.filter((line) => line.includes('encrypted keys'))).toEqual([]);
    await stop();
  }, 60_000);

  it('refuses to start with a different secret, and with none, changing no stored key', async () => {
    const before = await keysAtRest();
    await expect(start({ KEY_ENCRYPTION_SECRET: OTHER_SECRET })).rejects.toThrow(
      /^KEY_ENCRYPTION_SECRET does not decrypt the stored keys/,
    );
    await expect(start()).rejects.toThrow(
      /^KEY_ENCRYPTION_SECRET is not set, but 4 stored keys are encrypted/,
    );
    expect(await keysAtRest()).toEqual(before);
  }, 120_000);

  it('stops `npm start` with one line naming KEY_ENCRYPTION_SECRET when it does not decrypt the keys', async () => {
    const result = await runServerExpectingExit(
      { ...env, LOG_LEVEL: 'warn', KEY_ENCRYPTION_SECRET: OTHER_SECRET },
      100_000,
    );
    expect(result.code).toBe(1);
    expect(linesOf(result.stderr)).toEqual([
      'sesame: KEY_ENCRYPTION_SECRET does not decrypt the stored keys (4 of 4 encrypted keys): set the secret they were encrypted with',
    ]);
  }, 120_000);

  it('makes the sesame command refuse as well, so it never writes a key under another secret', async () => {
    const result = await runCli(
      ['keys', 'rotate', '--json'],
      { ...env, KEY_ENCRYPTION_SECRET: OTHER_SECRET },
      100_000,
    );
    expect(result.code).toBe(1);
    expect(result.stdout).toBe('');
    expect(linesOf(result.stderr)).toEqual([
      expect.stringMatching(/^sesame: KEY_ENCRYPTION_SECRET does not decrypt the stored keys/),
    ]);
    expect((await keysAtRest()).length).toBe(4);
  }, 120_000);
});

describe('KEY_ENCRYPTION_SECRET unset behind an https issuer', () => {
  const warnings = async (env: Record<string, string>) => {
    const lines: string[] = [];
    const sesame = await startTestApp(env, { log: createLogger('info', (line) => lines.push(line)) });
    await sesame.stop();
    return lines.filter((line) => line.includes('KEY_ENCRYPTION_SECRET is not set'));
  };

  it('warns once at start that the keys are stored unencrypted', async () => {
    const lines = await warnings({ ISSUER: 'https://id.example.com' });
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0]!)).toMatchObject({ level: 'warn' });
  }, 60_000);

  it('does not warn with the secret set, nor on a local http issuer', async () => {
    expect(await warnings({ ISSUER: 'https://id.example.com', KEY_ENCRYPTION_SECRET: SECRET })).toEqual([]);
    expect(await warnings({})).toEqual([]);
  }, 90_000);
});
