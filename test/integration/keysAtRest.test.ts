import * as jose from 'jose';
import { createApp, type SesameApp } from '../../src/app.js';
import { configFrom } from '../../src/config.js';
import { isSealed, openAtRest, openSealed, sealAtRest } from '../../src/crypto.js';
import { type DatabaseHandle, openDatabase } from '../../src/db/connect.js';
import { mailOutboxQueries } from '../../src/db/queries/mailOutbox.js';
import type { TenantId } from '../../src/db/queries/passkeyTenants.js';
import { createLogger } from '../../src/logger.js';
import { openMailBodies, sealMailBodies } from '../../src/mail/outbox.js';
import { createClient } from '../../src/oidc/clients.js';
import { createTenant } from '../../src/passkeyApi/tenants.js';
import { sealContext } from '../../src/sealContext.js';
import { waitUntil } from '../support/eventually.js';
import { beginLogin, discoverRp, finishLogin, Person, type TestRp } from '../support/oidcFlow.js';
import {
  type CliSession,
  linesOf,
  runCli,
  runServerExpectingExit,
  startCliSession,
} from '../support/sesameProcess.js';
import { freePort, startTestApp } from '../support/testApp.js';
import { createTestDatabase, type TestDatabase } from '../support/testDatabase.js';
import { sealUnbound } from '../support/unboundSeal.js';

const REDIRECT_URI = 'http://127.0.0.1:8923/callback';
const SECRET = 'a-key-encryption-secret-of-at-least-32-characters';
const OTHER_SECRET = 'another-secret-that-is-also-32-characters-long';

/** Every stored private key and queued mail body, as the database holds it, and the row it is sealed for. */
async function storedValues(
  db: DatabaseHandle['db'],
  { mails = false } = {},
): Promise<{ row: string; value: string }[]> {
  const signing = await db.selectFrom('signing_keys').select(['kid', 'private_jwk']).orderBy('kid').execute();
  const cookie = await db
    .selectFrom('app_secrets')
    .select('value')
    .where('name', '=', 'cookie_keys')
    .execute();
  const tenants = await db
    .selectFrom('passkey_tenant_keys')
    .select(['tenant_id', 'kid', 'private_jwk'])
    .orderBy('kid')
    .execute();
  const queued = mails
    ? await db.selectFrom('mail_outbox').select(['id', 'text_body', 'html_body']).orderBy('id').execute()
    : [];
  return [
    ...signing.map((r) => ({ row: sealContext.signingKey(r.kid), value: r.private_jwk })),
    ...cookie.map((r) => ({ row: sealContext.appSecret('cookie_keys'), value: r.value })),
    ...tenants.map((r) => ({
      row: sealContext.passkeyTenantKey(r.tenant_id as TenantId, r.kid),
      value: r.private_jwk,
    })),
    ...queued.flatMap((m) => [
      { row: sealContext.mailBody(m.id, 'text_body'), value: m.text_body! },
      { row: sealContext.mailBody(m.id, 'html_body'), value: m.html_body! },
    ]),
  ];
}

/** Every stored private key, as the database holds it. */
async function storedKeys(db: DatabaseHandle['db']): Promise<string[]> {
  return (await storedValues(db)).map(({ value }) => value);
}

/**
 * Sesame in this process on one test database of its own, started and stopped with the
 * settings each step gives, as an operator restarts it with another environment.
 */
class ServerOnOneDatabase {
  testDb!: TestDatabase;
  env!: Record<string, string>;
  port!: number;
  running: { app: SesameApp; database: DatabaseHandle } | undefined;
  logLines: string[] = [];

  async create(): Promise<void> {
    this.testDb = await createTestDatabase();
    this.port = await freePort();
    this.env = {
      ISSUER: `http://localhost:${this.port}`,
      PORT: String(this.port),
      LOG_LEVEL: 'info',
      RATE_LIMIT_PER_MINUTE: '0',
      ...this.testDb.env,
    };
  }

  async drop(): Promise<void> {
    await this.stop();
    await this.testDb.drop();
  }

  /** Starts Sesame on the test's database and port, with `extra` settings. */
  async start(extra: Record<string, string> = {}): Promise<DatabaseHandle['db']> {
    this.logLines = [];
    const config = configFrom({ ...this.env, ...extra });
    const database = await openDatabase(config, { poolSize: 5 });
    try {
      const app = await createApp({
        config,
        db: database.db,
        log: createLogger('info', (line) => this.logLines.push(line)),
        listen: database.listen,
      });
      await app.start(this.port, '127.0.0.1');
      this.running = { app, database };
      return database.db;
    } catch (error) {
      await database.close();
      throw error;
    }
  }

  async stop(): Promise<void> {
    await this.running?.app.stop();
    await this.running?.database.close();
    this.running = undefined;
  }

  /** Works on the database while no server holds it. */
  async whileStopped<T>(work: (db: DatabaseHandle['db']) => Promise<T>): Promise<T> {
    const database = await openDatabase(configFrom(this.env));
    try {
      return await work(database.db);
    } finally {
      await database.close();
    }
  }

  /** Reads the stored keys while no server holds the database. */
  keysAtRest(): Promise<string[]> {
    return this.whileStopped(storedKeys);
  }

  /**
   * Starts with `secret` and stores what a deployment holds: an app a person signed up to, a
   * passkey API app, a queued mail. Leaves the server running.
   */
  async startWithEverything(secret: string) {
    const db = await this.start({ KEY_ENCRYPTION_SECRET: secret });
    const signIn = await this.signUpToNewApp(db);
    const tenant = { name: 'Shop', origins: ['https://shop.example'] };
    const tenantId = (await createTenant(db, this.running!.app.config, tenant, 'test')).tenant.id;
    await mailOutboxQueries.enqueue(db, sealMailBodies(A_MAIL, secret));
    return { db, signIn, tenantId };
  }

  /** Runs `sesame ARGS` on the test's database, with `extra` settings. */
  cli(args: string[], extra: Record<string, string> = {}): ReturnType<typeof runCli> {
    return runCli(args, { ...this.env, ...extra }, 100_000);
  }

  get baseUrl(): string {
    return `http://localhost:${this.port}`;
  }

  async publishedKids(): Promise<string[]> {
    const { keys } = (await (await fetch(`${this.baseUrl}/jwks`)).json()) as { keys: { kid: string }[] };
    return keys.map((key) => key.kid).sort();
  }

  async tenantJwks(tenantId: string): Promise<unknown> {
    return (await fetch(`${this.baseUrl}/passkey-api/${tenantId}/.well-known/jwks.json`)).json();
  }

  /** Signs the person in to the app once more, on their Sesame session: the ID token. */
  async idTokenOnSession(rp: TestRp, person: Person): Promise<string> {
    const pending = await beginLogin(rp);
    const tokens = await finishLogin(rp, pending, await person.continueToApp(pending.url, REDIRECT_URI));
    return tokens.id_token!;
  }

  /** {@link idTokenOnSession}, the ID token's payload verified against the JWKS. */
  async signInAgain(rp: TestRp, person: Person, clientId: string): Promise<jose.JWTPayload> {
    const idToken = await this.idTokenOnSession(rp, person);
    const jwks = jose.createRemoteJWKSet(new URL(`${this.baseUrl}/jwks`));
    const { payload } = await jose.jwtVerify(idToken, jwks, {
      issuer: this.baseUrl,
      audience: clientId,
    });
    return payload;
  }

  /** Registers an app and signs a new person up to it; what the next steps sign in with. */
  async signUpToNewApp(
    db: DatabaseHandle['db'],
  ): Promise<{ rp: TestRp; person: Person; clientId: string; clientSecret: string }> {
    const created = await createClient(db, { name: 'Notes', redirect_uris: [REDIRECT_URI] }, 'test');
    const clientId = created.client.client_id;
    const clientSecret = created.client_secret!;
    const rp = await discoverRp(
      this.baseUrl,
      { client_id: clientId, client_secret: clientSecret },
      REDIRECT_URI,
    );
    const person = new Person(this.baseUrl);
    const pending = await beginLogin(rp);
    const next = await person.signUp(await person.open(pending.url), 'ada@example.com');
    await finishLogin(rp, pending, await person.continueToApp(next, REDIRECT_URI));
    return { rp, person, clientId, clientSecret };
  }
}

describe("a passkey API app's signing key rotated under KEY_ENCRYPTION_SECRET, the app named in upper case", () => {
  const server = new ServerOnOneDatabase();

  beforeAll(() => server.create());
  afterAll(() => server.drop());

  it('seals the new key for the row as stored, so the JWKS, the next start and the sesame command read it', async () => {
    const { tenantId } = await server.startWithEverything(SECRET);
    const upper = tenantId.toUpperCase();
    expect(upper).not.toBe(tenantId);
    const rotated = await server.cli(
      ['passkey-api', 'rotate-signing-key', upper, '--activate-in', '0', '--json'],
      {
        KEY_ENCRYPTION_SECRET: SECRET,
      },
    );
    expect(rotated.code).toBe(0);
    const jwks = (await server.tenantJwks(tenantId)) as { keys: { kid: string }[] };
    expect(jwks.keys).toHaveLength(2);
    await server.stop();
    const sealed = (await server.whileStopped((db) => storedValues(db))).filter(({ row }) =>
      row.startsWith('passkey_tenant_keys:'),
    );
    expect(sealed).toHaveLength(2);
    for (const { row, value } of sealed) expect(value.startsWith(`enc:v2:${row}:`)).toBe(true);
    await server.start({ KEY_ENCRYPTION_SECRET: SECRET });
    await server.stop();
    expect((await server.cli(['keys', 'reseal', '--json'], { KEY_ENCRYPTION_SECRET: SECRET })).code).toBe(0);
  }, 180_000);
});

describe('KEY_ENCRYPTION_SECRET set after the first start', () => {
  const server = new ServerOnOneDatabase();
  let person: Person;
  let rp: TestRp;
  let clientId: string;
  let tenantId: string;

  const start = (extra: Record<string, string> = {}) => server.start(extra);
  const stop = () => server.stop();
  const keysAtRest = () => server.keysAtRest();

  beforeAll(() => server.create());
  afterAll(() => server.drop());

  it('stores the keys in plain text while no secret is set (the state an operator starts from)', async () => {
    const db = await start();
    ({ rp, person, clientId } = await server.signUpToNewApp(db));
    const tenant = await createTenant(
      db,
      server.running!.app.config,
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
    const result = await server.cli(['keys', 'rotate-cookie-key', '--json'], {
      KEY_ENCRYPTION_SECRET: SECRET,
    });
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
    const atRest = await storedKeys(server.running!.database.db);
    expect(atRest).toHaveLength(kidsBefore);
    for (const key of atRest) {
      expect(key).toMatch(/^enc:v2:(signing_keys|app_secrets|passkey_tenant_keys):/);
      expect(key).not.toContain('"d"');
    }
    const sealedLines = server.logLines
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
    expect(await server.publishedKids()).toHaveLength(2);
    expect((await server.signInAgain(rp, person, clientId)).email).toBe('ada@example.com');
    expect(await server.tenantJwks(tenantId)).toMatchObject({
      keys: [{ kty: 'RSA', kid: expect.any(String) }],
    });
  }, 60_000);

  it('has nothing left to encrypt at the start after that, and logs nothing about it', async () => {
    await stop();
    await start({ KEY_ENCRYPTION_SECRET: SECRET });
    expect(server.logLines.filter((line) => line.includes('encrypted keys'))).toEqual([]);
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
      { ...server.env, LOG_LEVEL: 'warn', KEY_ENCRYPTION_SECRET: OTHER_SECRET },
      100_000,
    );
    expect(result.code).toBe(1);
    expect(linesOf(result.stderr)).toEqual([
      'sesame: KEY_ENCRYPTION_SECRET does not decrypt the stored keys (4 of 4 encrypted keys): set the secret they were encrypted with',
    ]);
  }, 120_000);

  it('makes the sesame command refuse as well, so it never writes a key under another secret', async () => {
    const result = await server.cli(['keys', 'rotate', '--json'], { KEY_ENCRYPTION_SECRET: OTHER_SECRET });
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

const NEW_SECRET = 'the-new-key-encryption-secret-replacing-the-first-one';
/** What opens a stored value with one secret alone. */
const only = (secret: string) => ({ keyEncryptionSecret: secret, keyEncryptionSecretPrevious: undefined });
const A_MAIL = {
  template: 'invite',
  to: 'bob@example.com',
  subject: 'Your invite',
  text: 'text body',
  html: '<p>html body</p>',
};

/**
 * Every stored key and queued mail body: sealed, bound to its row, and opened there by
 * `secret` alone (false where it is not).
 */
async function openedBy(db: DatabaseHandle['db'], secret: string): Promise<boolean[]> {
  return (await storedValues(db, { mails: true })).map(
    ({ row, value }) => isSealed(value) && openSealed(value, only(secret), row)?.bound === true,
  );
}

describe('replacing KEY_ENCRYPTION_SECRET: KEY_ENCRYPTION_SECRET_PREVIOUS and `sesame keys reseal`', () => {
  const server = new ServerOnOneDatabase();
  const bothSecrets = { KEY_ENCRYPTION_SECRET: NEW_SECRET, KEY_ENCRYPTION_SECRET_PREVIOUS: SECRET };
  let signIn: Awaited<ReturnType<ServerOnOneDatabase['signUpToNewApp']>>;
  let tenantId: string;
  let cli: CliSession | undefined;

  beforeAll(() => server.create());
  afterAll(async () => {
    await cli?.close();
    await server.drop();
  });

  it('has every key and a queued mail sealed with the first secret', async () => {
    let db: DatabaseHandle['db'];
    ({ db, signIn, tenantId } = await server.startWithEverything(SECRET));
    expect(await openedBy(db, SECRET)).toEqual(Array(6).fill(true));
    await server.stop();
  }, 60_000);

  it('starts with the new secret and the first as the previous one, reads what the first sealed, and signs', async () => {
    const before = await server.keysAtRest();
    const db = await server.start(bothSecrets);
    expect(await server.publishedKids()).toHaveLength(2);
    expect((await server.signInAgain(signIn.rp, signIn.person, signIn.clientId)).email).toBe(
      'ada@example.com',
    );
    expect(await server.tenantJwks(tenantId)).toMatchObject({ keys: [{ kty: 'RSA' }] });
    // The start re-seals nothing (other instances may still have the first secret alone) and says what is left.
    expect(await storedKeys(db)).toEqual(before);
    const notes = server.logLines.filter((line) => line.includes('KEY_ENCRYPTION_SECRET_PREVIOUS'));
    expect(notes.map((line) => JSON.parse(line))).toEqual([
      expect.objectContaining({ level: 'info', keys: 4, msg: expect.stringContaining('sesame keys reseal') }),
    ]);
    // The outbox sends a mail the first secret sealed.
    const [mail] = await db.selectFrom('mail_outbox').select(['id', 'text_body', 'html_body']).execute();
    const bodies = { id: mail!.id, text_body: mail!.text_body!, html_body: mail!.html_body! };
    expect(openMailBodies(bodies, server.running!.app.config)).toEqual({
      text: 'text body',
      html: '<p>html body</p>',
    });
    expect(() => openMailBodies(bodies, only(NEW_SECRET))).toThrow(/another KEY_ENCRYPTION_SECRET/);
  }, 60_000);

  it('re-seals every key and queued mail with the new secret in one command while the server runs, which goes on signing', async () => {
    cli = await startCliSession({ ...server.env, ...bothSecrets });
    const result = await cli.run(['keys', 'reseal', '--json']);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const zero = { signing_keys: 0, cookie_keys: 0, passkey_tenant_keys: 0, mail_outbox: 0 };
    expect(JSON.parse(result.stdout)).toEqual({
      resealed: { signing_keys: 2, cookie_keys: 1, passkey_tenant_keys: 1, mail_outbox: 1 },
      sealed: zero,
      unchanged: zero,
      unreadable_mails: 0,
    });
    const db = server.running!.database.db;
    expect(await openedBy(db, NEW_SECRET)).toEqual(Array(6).fill(true));
    expect(await openedBy(db, SECRET)).toEqual(Array(6).fill(false));
    const audit = await db
      .selectFrom('audit_events')
      .selectAll()
      .where('action', '=', 'keys.reseal')
      .executeTakeFirstOrThrow();
    expect(audit.actor).toMatch(/^cli:/);

    // A second run has nothing left to do, and says so in its table.
    const again = await cli.run(['keys', 'reseal']);
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/^signing keys\s+0\s+0\s+2$/m);
    expect(again.stdout).toContain('Nothing stored needs KEY_ENCRYPTION_SECRET_PREVIOUS any more');

    // The running server was told of every re-sealed row and read it again: it still signs the
    // person in, and reads the re-sealed rows when keys change (new signing keys at once).
    expect((await server.signInAgain(signIn.rp, signIn.person, signIn.clientId)).email).toBe(
      'ada@example.com',
    );
    const rotated = await cli.run(['keys', 'rotate', '--activate-in', '0', '--json']);
    expect(rotated.code).toBe(0);
    const { kids } = JSON.parse(rotated.stdout) as { kids: string[] };
    await waitUntil(async () => (await server.publishedKids()).length === 4, 10_000);
    // An app that has not cached the JWKS of a minute ago (openid-client refetches it at most once a minute).
    signIn.rp = await discoverRp(
      server.baseUrl,
      { client_id: signIn.clientId, client_secret: signIn.clientSecret },
      REDIRECT_URI,
    );
    const header = jose.decodeProtectedHeader(await server.idTokenOnSession(signIn.rp, signIn.person));
    expect(kids).toContain(header.kid);
    expect(server.logLines.filter((line) => line.includes('cannot reload'))).toEqual([]);
  }, 120_000);

  it('starts with the new secret alone once the previous one is removed', async () => {
    await cli?.close();
    cli = undefined;
    await server.stop();
    await server.start({ KEY_ENCRYPTION_SECRET: NEW_SECRET });
    expect((await server.signInAgain(signIn.rp, signIn.person, signIn.clientId)).email).toBe(
      'ada@example.com',
    );
    expect(await server.tenantJwks(tenantId)).toMatchObject({ keys: [{ kty: 'RSA' }] });
    expect(server.logLines.filter((line) => line.includes('KEY_ENCRYPTION_SECRET'))).toEqual([]);
    await server.stop();
  }, 60_000);

  describe('with a key sealed under neither secret', () => {
    const THIRD_SECRET = 'a-third-secret-nobody-configured-0123456789';
    let before: string[];

    beforeAll(async () => {
      // A passkey API app's key sealed with a secret neither setting has.
      await server.whileStopped(async (db) => {
        const key = await db
          .selectFrom('passkey_tenant_keys')
          .select(['kid', 'tenant_id', 'private_jwk'])
          .executeTakeFirstOrThrow();
        const row = sealContext.passkeyTenantKey(key.tenant_id as TenantId, key.kid);
        const plaintext = openAtRest(key.private_jwk, only(NEW_SECRET), row);
        await db
          .updateTable('passkey_tenant_keys')
          .set({ private_jwk: sealAtRest(plaintext, THIRD_SECRET, row) })
          .where('kid', '=', key.kid)
          .execute();
      });
      before = await server.keysAtRest();
    });

    const neither =
      'neither KEY_ENCRYPTION_SECRET nor KEY_ENCRYPTION_SECRET_PREVIOUS decrypts the stored keys (1 of 6 encrypted keys): set the secret they were encrypted with';

    it('refuses `keys reseal` with one line naming both variables, and changes nothing', async () => {
      const result = await server.cli(['keys', 'reseal'], bothSecrets);
      expect(result.code).toBe(1);
      expect(result.stdout).toBe('');
      expect(linesOf(result.stderr)).toEqual([`sesame: ${neither}`]);
      expect(result.stderr).not.toContain(NEW_SECRET);
      expect(result.stderr).not.toContain(SECRET);
      expect(await server.keysAtRest()).toEqual(before);
    }, 120_000);

    it('refuses the start with the same line', async () => {
      await expect(server.start(bothSecrets)).rejects.toThrow(neither);
      const result = await runServerExpectingExit(
        { ...server.env, LOG_LEVEL: 'warn', ...bothSecrets },
        100_000,
      );
      expect(result.code).toBe(1);
      expect(linesOf(result.stderr)).toEqual([`sesame: ${neither}`]);
      expect(await server.keysAtRest()).toEqual(before);
    }, 120_000);
  });
});

describe('`sesame keys reseal` when KEY_ENCRYPTION_SECRET is set for the first time', () => {
  const server = new ServerOnOneDatabase();

  beforeAll(() => server.create());
  afterAll(() => server.drop());

  it('refuses without a secret, with one line', async () => {
    const result = await server.cli(['keys', 'reseal']);
    expect(result.code).toBe(1);
    expect(linesOf(result.stderr)).toEqual([
      'sesame: KEY_ENCRYPTION_SECRET is not set: set the secret to seal the stored keys with',
    ]);
  }, 120_000);

  it('refuses while every key is in plain text (servers may run without the secret), changing nothing: a start with the secret seals them', async () => {
    const db = await server.start();
    await createTenant(
      db,
      server.running!.app.config,
      { name: 'Shop', origins: ['https://shop.example'] },
      'test',
    );
    await mailOutboxQueries.enqueue(db, A_MAIL);
    await server.stop();
    const before = await server.whileStopped((db) => openedBy(db, SECRET));
    expect(before).toEqual(Array(6).fill(false));
    const result = await server.cli(['keys', 'reseal', '--json'], { KEY_ENCRYPTION_SECRET: SECRET });
    expect(result.code).toBe(1);
    expect(linesOf(result.stderr)).toEqual([
      'sesame: every stored key is in plain text: start Sesame with KEY_ENCRYPTION_SECRET, which encrypts them itself',
    ]);
    expect(await server.whileStopped((db) => openedBy(db, SECRET))).toEqual(before);
    await server.start({ KEY_ENCRYPTION_SECRET: SECRET });
    expect(server.logLines.filter((line) => line.includes('encrypted keys'))).toHaveLength(1);
    await server.stop();
    // The start seals the keys; a mail queued before stays as it was (it is sent within the day)
    // until a reseal, which now runs.
    expect(await server.whileStopped((db) => openedBy(db, SECRET))).toEqual([
      true,
      true,
      true,
      true,
      false,
      false,
    ]);
    const reseal = await server.cli(['keys', 'reseal', '--json'], { KEY_ENCRYPTION_SECRET: SECRET });
    expect(JSON.parse(reseal.stdout)).toMatchObject({
      sealed: { signing_keys: 0, cookie_keys: 0, passkey_tenant_keys: 0, mail_outbox: 1 },
      unchanged: { signing_keys: 2, cookie_keys: 1, passkey_tenant_keys: 1 },
    });
    expect(await server.whileStopped((db) => openedBy(db, SECRET))).toEqual(Array(6).fill(true));
  }, 120_000);
});

/**
 * Writes every stored key and queued mail body anew as `rewrite` makes it from what is
 * stored and the row it is in: what an older Sesame, or someone with the database, left.
 */
async function rewriteStored(
  db: DatabaseHandle['db'],
  rewrite: (stored: { row: string; value: string }) => string,
): Promise<void> {
  for (const stored of await storedValues(db, { mails: true })) {
    const value = rewrite(stored);
    const [table, id, third] = stored.row.split(':') as [string, string, string | undefined];
    if (table === 'signing_keys') {
      await db.updateTable('signing_keys').set({ private_jwk: value }).where('kid', '=', id).execute();
    } else if (table === 'app_secrets') {
      await db.updateTable('app_secrets').set({ value }).where('name', '=', id).execute();
    } else if (table === 'passkey_tenant_keys') {
      await db
        .updateTable('passkey_tenant_keys')
        .set({ private_jwk: value })
        .where('kid', '=', third!)
        .execute();
    } else {
      const column = third as 'text_body' | 'html_body';
      await db
        .updateTable('mail_outbox')
        .set({ [column]: value })
        .where('id', '=', id)
        .execute();
    }
  }
}

describe('keys and mails an older Sesame sealed without binding them to their rows (enc:v1:)', () => {
  const server = new ServerOnOneDatabase();
  const bothSecrets = { KEY_ENCRYPTION_SECRET: NEW_SECRET, KEY_ENCRYPTION_SECRET_PREVIOUS: SECRET };
  let signIn: Awaited<ReturnType<ServerOnOneDatabase['signUpToNewApp']>>;
  let tenantId: string;
  /** Rewrites every stored value as an older Sesame sealed it with `secret`. */
  const sealAllUnbound = (opensWith: string, secret: string) =>
    server.whileStopped((db) =>
      rewriteStored(db, ({ row, value }) => sealUnbound(openAtRest(value, only(opensWith), row), secret)),
    );

  beforeAll(() => server.create());
  afterAll(() => server.drop());

  it('has every key and a queued mail sealed as an older Sesame sealed them', async () => {
    ({ signIn, tenantId } = await server.startWithEverything(SECRET));
    await server.stop();
    await sealAllUnbound(SECRET, SECRET);
    const stored = await server.whileStopped((db) => storedValues(db, { mails: true }));
    expect(stored.map(({ value }) => value.slice(0, 7))).toEqual(Array(6).fill('enc:v1:'));
    expect(await server.whileStopped((db) => openedBy(db, SECRET))).toEqual(Array(6).fill(false));
  }, 60_000);

  it('starts on them, signs as before, and seals the keys anew, each bound to its row, saying so once', async () => {
    const db = await server.start({ KEY_ENCRYPTION_SECRET: SECRET });
    expect(await server.publishedKids()).toHaveLength(2);
    expect((await server.signInAgain(signIn.rp, signIn.person, signIn.clientId)).email).toBe(
      'ada@example.com',
    );
    expect(await server.tenantJwks(tenantId)).toMatchObject({ keys: [{ kty: 'RSA' }] });
    const lines = server.logLines
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .filter((line) => String(line.msg).includes('bound to its row'));
    expect(lines).toEqual([
      expect.objectContaining({ level: 'info', signing_keys: 2, cookie_keys: 1, passkey_tenant_keys: 1 }),
    ]);
    // The keys now; the queued mail waits for `keys reseal`, and is sent as it is meanwhile.
    expect(await openedBy(db, SECRET)).toEqual([true, true, true, true, false, false]);
    const [mail] = await db.selectFrom('mail_outbox').select(['id', 'text_body', 'html_body']).execute();
    expect(
      openMailBodies(
        { id: mail!.id, text_body: mail!.text_body!, html_body: mail!.html_body! },
        only(SECRET),
      ),
    ).toEqual({
      text: 'text body',
      html: '<p>html body</p>',
    });
    await server.stop();
  }, 60_000);

  it('has `sesame keys reseal` seal the queued mail anew too', async () => {
    const result = await server.cli(['keys', 'reseal', '--json'], { KEY_ENCRYPTION_SECRET: SECRET });
    expect(result.code).toBe(0);
    const zero = { signing_keys: 0, cookie_keys: 0, passkey_tenant_keys: 0, mail_outbox: 0 };
    expect(JSON.parse(result.stdout)).toEqual({
      resealed: { ...zero, mail_outbox: 1 },
      sealed: zero,
      unchanged: { signing_keys: 2, cookie_keys: 1, passkey_tenant_keys: 1, mail_outbox: 0 },
      unreadable_mails: 0,
    });
    expect(await server.whileStopped((db) => openedBy(db, SECRET))).toEqual(Array(6).fill(true));
  }, 120_000);

  it('reads them under KEY_ENCRYPTION_SECRET_PREVIOUS while the secret is replaced, and `keys reseal` seals them bound under the new one', async () => {
    await sealAllUnbound(SECRET, SECRET);
    const before = await server.keysAtRest();
    const db = await server.start(bothSecrets);
    expect((await server.signInAgain(signIn.rp, signIn.person, signIn.clientId)).email).toBe(
      'ada@example.com',
    );
    expect(await server.tenantJwks(tenantId)).toMatchObject({ keys: [{ kty: 'RSA' }] });
    // Instances with the first secret alone may still run: the start seals nothing anew.
    expect(await storedKeys(db)).toEqual(before);
    await server.stop();
    const result = await server.cli(['keys', 'reseal', '--json'], bothSecrets);
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({
      resealed: { signing_keys: 2, cookie_keys: 1, passkey_tenant_keys: 1, mail_outbox: 1 },
    });
    expect(await server.whileStopped((db) => openedBy(db, NEW_SECRET))).toEqual(Array(6).fill(true));
  }, 120_000);
});

describe('a sealed value copied into another row', () => {
  const server = new ServerOnOneDatabase();
  const withSecret = { KEY_ENCRYPTION_SECRET: SECRET };
  let original: { row: string; value: string }[];

  beforeAll(async () => {
    await server.create();
    const db = await server.start(withSecret);
    const config = server.running!.app.config;
    for (const name of ['Shop', 'Blog']) {
      await createTenant(db, config, { name, origins: [`https://${name.toLowerCase()}.example`] }, 'test');
    }
    await mailOutboxQueries.enqueue(db, sealMailBodies(A_MAIL, SECRET));
    await server.stop();
    original = await server.whileStopped((db) => storedValues(db, { mails: true }));
  }, 60_000);
  afterAll(() => server.drop());

  /** Stores the value of the row `from` in the row `to` as well. */
  const copy = (from: string, to: string) => {
    const value = original.find((stored) => stored.row === from)!.value;
    return server.whileStopped((db) =>
      rewriteStored(db, (stored) => (stored.row === to ? value : stored.value)),
    );
  };
  const restore = () =>
    server.whileStopped((db) =>
      rewriteStored(db, (stored) => original.find((o) => o.row === stored.row)!.value),
    );

  it('refuses the start and `sesame keys reseal` with one line naming both rows, changing nothing', async () => {
    const rows = original.map(({ row }) => row);
    const signing = rows.filter((row) => row.startsWith('signing_keys:'));
    const tenants = rows.filter((row) => row.startsWith('passkey_tenant_keys:'));
    const mailText = rows.find((row) => row.endsWith(':text_body'))!;
    expect(signing).toHaveLength(2);
    expect(new Set(tenants.map((row) => row.split(':')[1])).size).toBe(2);
    // One tenant's key in another tenant's row; one signing key in another's; a mail's body in the cookie keys' row.
    for (const [from, to] of [
      [tenants[0]!, tenants[1]!],
      [signing[0]!, signing[1]!],
      [mailText, sealContext.appSecret('cookie_keys')],
    ] as const) {
      await copy(from, to);
      const stored = await server.keysAtRest();
      const line = `${to} holds a value sealed for ${from}: a sealed value opens only where it was written`;
      await expect(server.start(withSecret)).rejects.toThrow(line);
      if (to === tenants[1]) {
        const started = await runServerExpectingExit(
          { ...server.env, LOG_LEVEL: 'warn', ...withSecret },
          100_000,
        );
        expect(started.code).toBe(1);
        expect(linesOf(started.stderr)).toEqual([`sesame: cannot read the stored keys: ${line}`]);
      }
      const reseal = await server.cli(['keys', 'reseal'], withSecret);
      expect(reseal.code).toBe(1);
      expect(linesOf(reseal.stderr)).toEqual([`sesame: ${line}`]);
      expect(reseal.stderr).not.toContain(SECRET);
      expect(await server.keysAtRest()).toEqual(stored);
      await restore();
    }
    // Put back, every value opens where it is.
    await server.start(withSecret);
    await server.stop();
  }, 240_000);

  it('opens nowhere but its row even where its label is written over to match', async () => {
    const [tenantA, tenantB] = original.filter(({ row }) => row.startsWith('passkey_tenant_keys:'));
    const relabelled = tenantA!.value.replace(`enc:v2:${tenantA!.row}:`, `enc:v2:${tenantB!.row}:`);
    expect(relabelled).not.toBe(tenantA!.value);
    await server.whileStopped((db) =>
      rewriteStored(db, (stored) => (stored.row === tenantB!.row ? relabelled : stored.value)),
    );
    await expect(server.start(withSecret)).rejects.toThrow(
      /^KEY_ENCRYPTION_SECRET does not decrypt the stored keys \(1 of 5 /,
    );
    await restore();
  }, 120_000);
});
