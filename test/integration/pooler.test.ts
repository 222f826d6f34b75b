import { randomBytes } from 'node:crypto';
import * as oidc from 'openid-client';
import pg from 'pg';
import { createApp } from '../../src/app.js';
import { configFrom } from '../../src/config.js';
import { type DatabaseHandle, openDatabase } from '../../src/db/connect.js';
import { listenOnPostgres, type Subscription } from '../../src/db/notifications.js';
import { runSql } from '../../src/db/rawSql.js';
import { createLogger } from '../../src/logger.js';
import { rowChangeListenerUp } from '../../src/metrics.js';
import { createClient } from '../../src/oidc/clients.js';
import { beginLogin, discoverRp, finishLogin, Person } from '../support/oidcFlow.js';
import { runCli } from '../support/sesameProcess.js';
import { freePort, startTestApp, type TestApp } from '../support/testApp.js';
import {
  createTestDatabase,
  onPostgres,
  type TestDatabase,
  withDatabaseName,
} from '../support/testDatabase.js';

/**
 * Sesame behind a transaction-mode pooler (PgBouncer as .ci/run starts it). Runs when
 * SESAME_TEST_POOLER_URL names the pooler (its database name is replaced by each test's).
 */
const poolerUrl = process.env.SESAME_TEST_POOLER_URL;
const REDIRECT_URI = 'http://127.0.0.1:8931/callback';

/** The pooler's URL for the test database `env` names. */
function pooled(env: { DATABASE_DIRECT_URL?: string }): string {
  return withDatabaseName(poolerUrl!, new URL(env.DATABASE_DIRECT_URL!).pathname.slice(1));
}

/** Whether `check` holds within `ms`, polling every 100 ms. */
async function within(ms: number, check: () => Promise<boolean>): Promise<boolean> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await check()) return true;
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function clientCredentials(sesame: TestApp, clientId: string, secret: string): Promise<number> {
  const response = await fetch(`${sesame.listenUrl}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'client_credentials',
      client_id: clientId,
      client_secret: secret,
    }),
  });
  return response.status;
}

/** A person signed up at a first-party app, and a way to call userinfo with their access token. */
async function signedUpPerson(sesame: TestApp) {
  const { client, client_secret } = await createClient(
    sesame.db,
    { name: 'Notes', redirect_uris: [REDIRECT_URI], first_party: true },
    'test',
  );
  const rp = await discoverRp(sesame.baseUrl, { client_id: client.client_id, client_secret }, REDIRECT_URI);
  const person = new Person(sesame.baseUrl);
  const pending = await beginLogin(rp);
  const email = `p${randomBytes(4).toString('hex')}@example.com`;
  const next = await person.signUp(await person.open(pending.url), email);
  const tokens = await finishLogin(rp, pending, await person.continueToApp(next, REDIRECT_URI));
  const sub = tokens.claims()!.sub;
  const userinfo = async () => {
    try {
      return await oidc.fetchUserInfo(rp.config, tokens.access_token, sub);
    } catch {
      return undefined;
    }
  };
  return { email, userinfo };
}

async function rotateThroughCli(sesame: TestApp, clientId: string) {
  const rotated = await runCli(['clients', 'rotate-secret', clientId, '--json'], sesame.env);
  expect(rotated.stderr).toBe('');
  return JSON.parse(rotated.stdout) as { client_secret: string };
}

const describeBehindPooler = poolerUrl && onPostgres ? describe : describe.skip;
if (!(poolerUrl && onPostgres)) {
  it('runs Sesame behind a transaction-mode pooler: skipped, SESAME_TEST_POOLER_URL is not set', () => {});
}

describeBehindPooler(
  'behind a transaction-mode pooler, with DATABASE_DIRECT_URL for LISTEN and migrations',
  () => {
    let sesame: TestApp;

    beforeAll(async () => {
      sesame = await startTestApp(
        {},
        {
          databaseEnv: (env) => ({ DATABASE_URL: pooled(env), DATABASE_DIRECT_URL: env.DATABASE_DIRECT_URL }),
        },
      );
    });

    afterAll(() => sesame?.stop());

    it('refuses the old secret within 2 s of `sesame clients rotate-secret`', async () => {
      const { client, client_secret } = await createClient(
        sesame.db,
        { name: 'Service', redirect_uris: ['https://service.example/cb'] },
        'test',
      );
      expect(await clientCredentials(sesame, client.client_id, client_secret!)).toBe(200);
      const { client_secret: rotated } = await rotateThroughCli(sesame, client.client_id);
      expect(
        await within(
          2_000,
          async () => (await clientCredentials(sesame, client.client_id, client_secret!)) === 401,
        ),
      ).toBe(true);
      expect(await clientCredentials(sesame, client.client_id, rotated)).toBe(200);
    });

    it('refuses a user within 2 s of `sesame users disable`', async () => {
      const person = await signedUpPerson(sesame);
      expect(await person.userinfo()).toBeDefined();
      const disabled = await runCli(['users', 'disable', person.email], sesame.env);
      expect(disabled.code).toBe(0);
      expect(await within(2_000, async () => (await person.userinfo()) === undefined)).toBe(true);
    });

    it('finishes every `sesame migrate` of two loops beside two busy servers, and leaves no advisory lock', async () => {
      const second = await openDatabase(sesame.config, { poolSize: 5 });
      const other = await createApp({
        config: sesame.config,
        db: second.db,
        log: createLogger('silent'),
        listen: second.listen,
      });
      const otherUrl = `http://127.0.0.1:${await other.start(await freePort(), '127.0.0.1')}`;
      let loaded = true;
      const load = (async () => {
        let requests = 0;
        while (loaded) {
          await Promise.all(
            [sesame.listenUrl, otherUrl].map((url) =>
              fetch(`${url}/.well-known/openid-configuration`).then((r) => r.text()),
            ),
          );
          requests += 2;
        }
        return requests;
      })();
      // The hardest case: the CLI has only the pooled URL, so its migration lock goes through the pooler.
      const migrateEnv = { ...sesame.env, DATABASE_DIRECT_URL: undefined };
      try {
        const loop = async () => {
          const codes: (number | null)[] = [];
          for (let i = 0; i < 3; i++) codes.push((await runCli(['migrate'], migrateEnv, 70_000)).code);
          return codes;
        };
        const runs = (await Promise.all([loop(), loop()])).flat();
        expect(runs).toEqual([0, 0, 0, 0, 0, 0]);
      } finally {
        loaded = false;
        expect(await load).toBeGreaterThan(0);
        await other.stop();
        await second.close();
      }
      const direct = new pg.Client({ connectionString: sesame.env.DATABASE_DIRECT_URL });
      await direct.connect();
      try {
        const { rows } = await direct.query(
          `select count(*)::int as held from pg_locks l join pg_database d on d.oid = l.database
         where l.locktype = 'advisory' and d.datname = current_database()`,
        );
        expect(rows[0].held).toBe(0);
      } finally {
        await direct.end();
      }
    }, 180_000);
  },
);

describeBehindPooler(
  'listening through the pooler itself (DATABASE_DIRECT_URL not set): fails closed',
  () => {
    let sesame: TestApp;
    const lines: string[] = [];

    beforeAll(async () => {
      sesame = await startTestApp(
        {},
        {
          databaseEnv: (env) => ({ DATABASE_URL: pooled(env), DATABASE_DIRECT_URL: undefined }),
          log: createLogger('debug', (line) => lines.push(line)),
        },
      );
    });

    afterAll(() => sesame?.stop());

    it('says in one warning why nothing is cached, and refuses a rotated secret at once', async () => {
      const warnings = lines.map((line) => JSON.parse(line)).filter((entry) => entry.level === 'warn');
      expect(warnings).toEqual([
        expect.objectContaining({
          msg: expect.stringContaining('row change notifications lost'),
          error: expect.stringContaining(
            'behind a transaction-mode pooler, set DATABASE_DIRECT_URL to a direct or session-mode connection',
          ),
        }),
      ]);
      // The listening connection answers; only its LISTEN went elsewhere.
      expect(warnings[0].error).not.toContain('does not answer');
      expect((await rowChangeListenerUp.get()).values).toEqual([expect.objectContaining({ value: 0 })]);

      const { client, client_secret } = await createClient(
        sesame.db,
        { name: 'Service', redirect_uris: ['https://service.example/cb'] },
        'test',
      );
      expect(await clientCredentials(sesame, client.client_id, client_secret!)).toBe(200);
      await rotateThroughCli(sesame, client.client_id);
      expect(await clientCredentials(sesame, client.client_id, client_secret!)).toBe(401);
    });

    it('publishes and signs with keys that `keys rotate --revoke-previous` made, within seconds, without a notice', async () => {
      const kids = async () =>
        ((await (await fetch(`${sesame.baseUrl}/jwks`)).json()) as { keys: { kid: string }[] }).keys
          .map((key) => key.kid)
          .sort();
      const before = await kids();
      const rotated = await runCli(
        ['keys', 'rotate', '--activate-in', '0', '--revoke-previous', '--json'],
        sesame.env,
      );
      expect(rotated.stderr).toBe('');
      let now = before;
      for (let waited = 0; waited < 6_000 && now.some((kid) => before.includes(kid)); waited += 200) {
        await new Promise((resolve) => setTimeout(resolve, 200));
        now = await kids();
      }
      expect(now).toHaveLength(before.length);
      expect(now.filter((kid) => before.includes(kid))).toEqual([]);
    });
  },
);

describeBehindPooler('a LISTEN through a transaction-mode pooler', () => {
  let testDb: TestDatabase;
  let database: DatabaseHandle;
  let subscription: Subscription | undefined;
  const lost: string[] = [];
  let lives = 0;
  const handlers = {
    onNotice() {},
    onLive: () => lives++,
    onLost: (error: Error) => lost.push(error.message),
  };
  /** Short waits, so that retries at the back-off's pace would show within a second or two. */
  const timing = { pingTimeoutMs: 400, retryMinMs: 50, retryMaxMs: 100 };

  beforeAll(async () => {
    testDb = await createTestDatabase();
    database = await openDatabase(configFrom({ ...testDb.env, DATABASE_URL: pooled(testDb.env) }), {
      poolSize: 2,
    });
  });

  beforeEach(() => {
    lost.length = lives = 0;
  });

  afterEach(async () => {
    await subscription?.close();
    subscription = undefined;
  });

  afterAll(async () => {
    await database?.close();
    await testDb?.drop();
  });

  it('is not retried at the back-off pace once its ping is lost while the connection answers', async () => {
    subscription = await listenOnPostgres(pooled(testDb.env), database.db, 'test_pooled_listen', handlers, {
      timing,
    });
    expect(lost).toEqual([
      expect.stringContaining('set DATABASE_DIRECT_URL to a direct or session-mode connection'),
    ]);
    expect(lost[0]).toContain('tried again every 10 min');
    // Each retry would send a LISTEN through a pooled server session, which PgBouncer then drops.
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    expect(lost).toHaveLength(1);
    expect(lives).toBe(0);
  });

  it('tells the operator that DATABASE_DIRECT_URL itself goes through the pooler when it does', async () => {
    subscription = await listenOnPostgres(pooled(testDb.env), database.db, 'test_pooled_listen', handlers, {
      direct: true,
      timing,
    });
    expect(lost).toEqual([
      expect.stringContaining(
        'DATABASE_DIRECT_URL goes through a transaction-mode pooler: point it at a direct or session-mode connection',
      ),
    ]);
  });
});

describeBehindPooler(
  'statements through a transaction-mode pooler, whose server sessions keep no prepared statement',
  () => {
    let testDb: TestDatabase;
    let database: DatabaseHandle;
    const told: string[] = [];

    beforeAll(async () => {
      testDb = await createTestDatabase();
      database = await openDatabase(configFrom({ ...testDb.env, DATABASE_URL: pooled(testDb.env) }), {
        poolSize: 6,
        onStatementsUnprepared: (reason) => told.push(reason),
      });
    });

    afterAll(async () => {
      await database?.close();
      await testDb?.drop();
    });

    it('answers every statement as asked, however the pooler hands them out, and says so at most once', async () => {
      const texts = [
        `select $1::text as echo`,
        `select $1::text || '' as echo`,
        `select lower($1::text) as echo`,
        `select $1::text as echo, now() as at`,
      ];
      for (let round = 0; round < 5; round++) {
        const asked = Array.from({ length: 120 }, (_, i) => `r${round}n${i}`);
        const answers = await Promise.all(
          asked.map((value, i) => runSql<{ echo: string }>(database.db, texts[i % texts.length]!, [value])),
        );
        expect(answers.map(({ rows }) => rows[0]!.echo)).toEqual(asked);
      }
      expect(told.length).toBeLessThanOrEqual(1);
    });
  },
);
