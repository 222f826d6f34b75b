import { GroupedUpserts } from '../../src/db/groupedUpserts.js';
import { mayBeLostInACrash, modelRow, oidcModelsQueries } from '../../src/db/queries/oidcModels.js';
import { runSql, runWriteWithoutFlushWait } from '../../src/db/rawSql.js';
import { openedTestDatabase } from '../support/openedDatabase.js';

describe('group commit of the provider writes', () => {
  const database = openedTestDatabase();

  beforeEach(async () => {
    await database().db.deleteFrom('oidc_models').execute();
  });

  const stored = async (model: string, id: string) => oidcModelsQueries.find(database().db, model, id);

  it('stores writes made together in one statement, each readable once its promise resolves', async () => {
    const writes = new GroupedUpserts(database().db);
    await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        writes.upsert(modelRow('AccessToken', `at-${i}`, { jti: `at-${i}`, n: i, grantId: `g-${i}` }, 60)),
      ),
    );
    expect(writes.rows).toBe(50);
    expect(writes.batches).toBe(1);
    expect(await stored('AccessToken', 'at-49')).toEqual({ jti: 'at-49', n: 49, grantId: 'g-49' });
    const rows = await database()
      .db.selectFrom('oidc_models')
      .select(['grant_id', 'expires_at'])
      .where('id', '=', 'at-7')
      .execute();
    expect(rows[0]?.grant_id).toBe('g-7');
    expect(rows[0]?.expires_at?.getTime()).toBeGreaterThan(Date.now());
  });

  it('stores the challenges given with rows in their statement, both of a row written twice in one batch', async () => {
    const writes = new GroupedUpserts(database().db);
    const challenge = (value: string, binding: string) => ({
      challenge: value,
      purpose: 'login',
      binding,
      expiresAt: new Date(Date.now() + 60_000),
    });
    await Promise.all([
      writes.upsert(modelRow('Interaction', 'c1', { step: 1 }, 60), challenge('ch-1', 'c1')),
      writes.upsert(modelRow('Interaction', 'c1', { step: 2 }, 60), challenge('ch-2', 'c1')),
      writes.upsert(modelRow('AccessToken', 'c-at', { n: 1 }, 60)),
      writes.upsert(modelRow('Interaction', 'c2', { step: 1 }, 60), challenge('ch-3', 'c2')),
    ]);
    expect(writes.batches).toBe(1);
    expect(await stored('Interaction', 'c1')).toEqual({ step: 2 });
    const challenges = await database()
      .db.selectFrom('webauthn_challenges')
      .select(['challenge', 'binding', 'purpose', 'user_id'])
      .where('challenge', 'in', ['ch-1', 'ch-2', 'ch-3'])
      .orderBy('challenge')
      .execute();
    expect(challenges).toEqual([
      { challenge: 'ch-1', binding: 'c1', purpose: 'login', user_id: null },
      { challenge: 'ch-2', binding: 'c1', purpose: 'login', user_id: null },
      { challenge: 'ch-3', binding: 'c2', purpose: 'login', user_id: null },
    ]);
  });

  it('writes one at a time when they come one at a time (no waiting for company)', async () => {
    const writes = new GroupedUpserts(database().db);
    for (let i = 0; i < 3; i += 1) {
      await writes.upsert(modelRow('Session', `s-${i}`, { n: i }, 60));
      expect(await stored('Session', `s-${i}`)).toEqual({ n: i });
    }
    expect(writes.batches).toBe(3);
  });

  it('keeps the later of two writes of one instance, in one batch or in two', async () => {
    const writes = new GroupedUpserts(database().db);
    const sameBatch = [
      writes.upsert(modelRow('Interaction', 'i1', { step: 1 }, 60)),
      writes.upsert(modelRow('Interaction', 'i1', { step: 2 }, 60)),
    ];
    await Promise.all(sameBatch);
    expect(await stored('Interaction', 'i1')).toEqual({ step: 2 });

    // The second write is queued while the first is being written: it must land after it.
    const first = writes.upsert(modelRow('Interaction', 'i2', { step: 1 }, 60));
    await new Promise((resolve) => setImmediate(resolve));
    const second = writes.upsert(modelRow('Interaction', 'i2', { step: 2 }, 60));
    await Promise.all([first, second]);
    expect(writes.batches).toBe(3);
    expect(await stored('Interaction', 'i2')).toEqual({ step: 2 });
  });

  it('fails only the write Postgres refuses, not the others of its batch', async () => {
    const writes = new GroupedUpserts(database().db);
    const outcomes = await Promise.allSettled([
      writes.upsert(modelRow('Interaction', 'good-1', { state: 'a' }, 60)),
      // jsonb cannot hold U+0000: Postgres refuses this row.
      writes.upsert(modelRow('Interaction', 'bad', { state: 'a\u0000b' }, 60)),
      writes.upsert(modelRow('Interaction', 'good-2', { state: 'b' }, 60)),
    ]);
    expect(outcomes.map((o) => o.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect(await stored('Interaction', 'good-1')).toEqual({ state: 'a' });
    expect(await stored('Interaction', 'good-2')).toEqual({ state: 'b' });
    expect(await stored('Interaction', 'bad')).toBeUndefined();
    // And the queue goes on working.
    await writes.upsert(modelRow('Interaction', 'after', { ok: true }, 60));
    expect(await stored('Interaction', 'after')).toEqual({ ok: true });
  });
});

describe('writes that may be lost in a crash of Postgres', () => {
  // One connection, so the checks below run on the server session the write ran on (behind a
  // transaction-mode pooler, on whichever it lends: none may keep the setting either). Its
  // commits wait for the disk, as on a server's own database, where the setting starts 'on'.
  const database = openedTestDatabase(1, { durableCommits: true });
  const insert = `insert into oidc_models (model, id, payload, expires_at) values ($1, $2, '{}', now() + interval '1 minute')`;
  const setting = async (db = database().db) =>
    (await runSql<{ s: string }>(db, `select current_setting('synchronous_commit') as s`)).rows[0]?.s;

  it('commit without waiting for the WAL flush, and only that statement does', async () => {
    expect(await setting()).toBe('on');
    for (let i = 0; i < 3; i += 1) {
      const { rows } = await runWriteWithoutFlushWait(database().db, insert, ['Interaction', `lazy-${i}`]);
      // The setting as the statement's own transaction had it when it committed.
      expect(rows).toEqual([{ set_config: 'off' }]);
      // Gone with that transaction: the next statement on the session commits as usual.
      expect(await setting()).toBe('on');
    }
    expect(await oidcModelsQueries.find(database().db, 'Interaction', 'lazy-2')).toEqual({});
  });

  it('run as written inside a transaction, whose other writes must be kept', async () => {
    await database()
      .db.transaction()
      .execute(async (trx) => {
        const { rows } = await runWriteWithoutFlushWait(trx, insert, ['Interaction', 'in-trx']);
        expect(rows).toEqual([]);
        expect(await setting(trx)).toBe('on');
      });
    expect(await oidcModelsQueries.find(database().db, 'Interaction', 'in-trx')).toEqual({});
  });

  it('are every model the provider saves but the record of a JWT already seen', () => {
    for (const model of [
      'Interaction',
      'Session',
      'Grant',
      'AuthorizationCode',
      'AccessToken',
      'RefreshToken',
    ])
      expect(mayBeLostInACrash({ model })).toBe(true);
    expect(mayBeLostInACrash({ model: 'ReplayDetection' })).toBe(false);
  });
});
