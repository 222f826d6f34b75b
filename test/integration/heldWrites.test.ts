import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import providerRequests from 'oidc-provider/lib/helpers/als.js';
import { GroupedUpserts } from '../../src/db/groupedUpserts.js';
import { modelRow, oidcModelsQueries, type StoreCondition } from '../../src/db/queries/oidcModels.js';
import { RowCache } from '../../src/db/rowCache.js';
import { createAdapter } from '../../src/oidc/adapter.js';
import { createClient } from '../../src/oidc/clients.js';
import { HeldWrites, heldWrites, holdWritesDuring, storeWritesIf } from '../../src/oidc/heldWrites.js';
import { ModelCache } from '../../src/oidc/modelCache.js';
import { storedId } from '../../src/oidc/storedIds.js';
import { countRows } from '../support/countRows.js';
import { beginLogin, discoverRp, finishLogin, Person, type TestRp } from '../support/oidcFlow.js';
import { startTestApp, type TestApp } from '../support/testApp.js';

const REDIRECT_URI = 'http://127.0.0.1:8931/callback';

/** The adapter class over `db`, with caches of its own. */
const adapterOver = (db: TestApp['db']) =>
  createAdapter(
    db,
    { clients: new RowCache(10), users: new RowCache(10), models: new ModelCache() },
    new GroupedUpserts(db),
  );

/**
 * A sign-in's return to `/auth/:uid` deletes its interaction and saves a grant, a code and a
 * session. They are held for the request and stored in one statement (src/oidc/heldWrites.ts):
 * all or nothing, before the response leaves.
 */
describe("the provider's writes held for a request and stored together", () => {
  let sesame: TestApp;
  let rp: TestRp;

  beforeAll(async () => {
    sesame = await startTestApp();
    const { client, client_secret } = await createClient(
      sesame.db,
      { name: 'Notes', redirect_uris: [REDIRECT_URI], first_party: true },
      'test',
    );
    rp = await discoverRp(sesame.baseUrl, { client_id: client.client_id, client_secret }, REDIRECT_URI);
  });

  afterAll(() => sesame.stop());

  const rowsOf = async (model: string) =>
    Number(
      (
        await sesame.db
          .selectFrom('oidc_models')
          .select((eb) => eb.fn.countAll<string>().as('n'))
          .where('model', '=', model)
          .executeTakeFirstOrThrow()
      ).n,
    );

  it('refuses a return whose writes cannot be stored: an error page, no code, nothing of it stored, and the sign-in resumes later', async () => {
    const person = new Person(sesame.baseUrl);
    const pending = await beginLogin(rp);
    const next = await person.signUp(
      await person.open(pending.url),
      `h${randomBytes(4).toString('hex')}@example.com`,
    );
    const uid = new URL(next).pathname.split('/').pop()!;
    const before = {
      grants: await rowsOf('Grant'),
      sessions: await rowsOf('Session'),
      codes: await rowsOf('AuthorizationCode'),
    };

    // Postgres refuses every new code for a moment: the last of the return's four writes.
    await sql`alter table oidc_models add constraint no_new_codes check (model <> 'AuthorizationCode') not valid`.execute(
      sesame.db,
    );
    let refused: Awaited<ReturnType<typeof person.browser.request>>;
    try {
      refused = await person.browser.request(next);
    } finally {
      await sql`alter table oidc_models drop constraint no_new_codes`.execute(sesame.db);
    }
    expect(refused.status).toBe(500);
    expect(refused.location()).toBeUndefined();
    expect(refused.text).toContain('Something went wrong');
    expect(refused.text).not.toContain('code=');
    // Neither the grant nor the session was stored, and the interaction was not deleted.
    expect({
      grants: await rowsOf('Grant'),
      sessions: await rowsOf('Session'),
      codes: await rowsOf('AuthorizationCode'),
    }).toEqual(before);
    const interaction = await sesame.db
      .selectFrom('oidc_models')
      .select('id')
      .where('model', '=', 'Interaction')
      .where('id', '=', storedId('Interaction', uid))
      .executeTakeFirst();
    expect(interaction).toBeDefined();

    const tokens = await finishLogin(rp, pending, await person.continueToApp(next, REDIRECT_URI));
    expect(tokens.claims()?.sub).toEqual(expect.any(String));
    expect(await rowsOf('Grant')).toBe(before.grants + 1);
    expect(await rowsOf('AuthorizationCode')).toBe(before.codes + 1);
  });

  it('stores nothing until the work is done, then all of it in one statement', async () => {
    const db = sesame.db;
    const row = (model: string, id: string) => modelRow(model, id, { kind: model }, 60);
    const setUp = new HeldWrites(db);
    setUp.upsert(row('Interaction', 'held-gone'), () => {});
    await setUp.flush();
    const done: string[] = [];
    const before = await countRows(db, 'oidc_models');
    const ctx = {};
    await providerRequests.run(ctx, () =>
      holdWritesDuring(ctx, db, async () => {
        const writes = heldWrites()!;
        writes.destroy('Interaction', 'held-gone', (key) => done.push(`gone ${key}`));
        writes.upsert(row('Grant', 'held-grant'), () => done.push('grant'));
        writes.upsert(row('Session', 'held-session'), () => done.push('session'));
        writes.destroy('Interaction', 'never-stored', (key) => done.push(`not there ${key}`));
        expect(writes.holds('Grant', 'held-grant')).toBe(true);
        await new Promise((resolve) => setTimeout(resolve, 20));
        expect(await countRows(db, 'oidc_models')).toBe(before);
        expect(done).toEqual([]);
      }),
    );
    expect(done).toEqual(['gone held-gone', 'grant', 'session', 'not there undefined']);
    expect(await countRows(db, 'oidc_models')).toBe(before + 1);
    expect(heldWrites()).toBeUndefined();
  });

  it('requires a condition of the first store when asked before anything is held: all of it, or nothing', async () => {
    const db = sesame.db;
    const row = (model: string, id: string) => modelRow(model, id, { kind: model }, 60);
    const setUp = new HeldWrites(db);
    setUp.upsert(modelRow('Interaction', 'cas-interaction', { kind: 'Interaction', step: 1 }, 60), () => {});
    await setUp.flush();
    const stored = async (model: string, id: string) => Boolean(await oidcModelsQueries.find(db, model, id));
    const resume = (json: string, grant: string) => {
      const ctx = {};
      return providerRequests.run(ctx, () =>
        holdWritesDuring(ctx, db, async () => {
          const writes = heldWrites()!;
          expect(writes.acceptsCondition).toBe(true);
          writes.requireRowOfFirstStore('Interaction', 'cas-interaction', json);
          writes.destroy('Interaction', 'cas-interaction', () => {});
          writes.upsert(row('Grant', grant), () => {});
          expect(writes.acceptsCondition).toBe(false);
          expect(() => writes.requireRowOfFirstStore('Interaction', 'x', '{}')).toThrow();
        }),
      );
    };

    // Stored otherwise than this JSON (the same content in another order counts as the same).
    await expect(resume(JSON.stringify({ kind: 'Interaction', step: 2 }), 'cas-grant-1')).rejects.toThrow();
    expect([await stored('Interaction', 'cas-interaction'), await stored('Grant', 'cas-grant-1')]).toEqual([
      true,
      false,
    ]);
    await resume(JSON.stringify({ step: 1, kind: 'Interaction' }), 'cas-grant-2');
    expect([await stored('Interaction', 'cas-interaction'), await stored('Grant', 'cas-grant-2')]).toEqual([
      false,
      true,
    ]);
  });

  it('stores the writes of only one of several requests that require and delete the same row at once', async () => {
    const db = sesame.db;
    const row = (model: string, id: string) => modelRow(model, id, { kind: model }, 60);
    for (let round = 0; round < 5; round++) {
      const interaction = `race-interaction-${round}`;
      const setUp = new HeldWrites(db);
      setUp.upsert(row('Interaction', interaction), () => {});
      await setUp.flush();
      const forgotten: (string | undefined)[] = [];
      // Read from the database (no JSON) by half of them, from memory (its JSON) by the others.
      const resume = (i: number) => {
        const ctx = {};
        return providerRequests.run(ctx, () =>
          holdWritesDuring(ctx, db, async () => {
            const writes = heldWrites()!;
            writes.requireRowOfFirstStore(
              'Interaction',
              interaction,
              i % 2 ? JSON.stringify({ kind: 'Interaction' }) : undefined,
            );
            writes.destroy('Interaction', interaction, (key) => forgotten.push(key));
            writes.upsert(row('AuthorizationCode', `${interaction}-code-${i}`), () => {});
          }),
        );
      };
      const outcomes = await Promise.allSettled(Array.from({ length: 6 }, (_, i) => resume(i)));
      expect(outcomes.filter((o) => o.status === 'fulfilled')).toHaveLength(1);
      const codes = await db
        .selectFrom('oidc_models')
        .select('id')
        .where('model', '=', 'AuthorizationCode')
        .where('id', 'like', `${interaction}-code-%`)
        .execute();
      expect(codes).toHaveLength(1);
      // The one that deleted it learns its key, as from any deletion it stores.
      expect(forgotten).toEqual([interaction]);
    }
  });

  it("lets the adapter read its request's own held writes, and keeps them in order with its other statements", async () => {
    const db = sesame.db;
    const Adapter = adapterOver(db);
    const grants = new Adapter('Grant');
    const codes = new Adapter('AuthorizationCode');
    const grantId = `g-${randomBytes(6).toString('hex')}`;
    const codeId = `c-${randomBytes(6).toString('hex')}`;
    const before = await countRows(db, 'oidc_models');
    const ctx = {};
    await providerRequests.run(ctx, () =>
      holdWritesDuring(ctx, db, async () => {
        await grants.upsert(grantId, { jti: grantId, clientId: 'held', kind: 'Grant' }, 60);
        await codes.upsert(codeId, { jti: codeId, grantId, clientId: 'held', kind: 'AuthorizationCode' }, 60);
        await grants.destroy('some-other-grant');
        expect(await countRows(db, 'oidc_models')).toBe(before);
        // A held row is stored before it is read, so the read is the database's, as without holding.
        expect(await grants.find(grantId)).toMatchObject({ jti: grantId, clientId: 'held' });
        expect(await countRows(db, 'oidc_models')).toBe(before + 2);
        // Consuming reads and changes the table: what is held goes first.
        await codes.upsert(
          codeId,
          { jti: codeId, grantId, clientId: 'held', kind: 'AuthorizationCode', n: 2 },
          60,
        );
        await codes.consume(codeId);
        expect(await codes.find(codeId)).toMatchObject({ n: 2, consumed: expect.any(Number) });
        await grants.destroy(grantId);
        expect(await grants.find(grantId)).toBeUndefined();
        // Two held rows read at once: the second read waits for the statement the first started.
        const [a, b] = [`${grantId}-a`, `${grantId}-b`];
        await grants.upsert(a, { jti: a, clientId: 'held' }, 60);
        await grants.upsert(b, { jti: b, clientId: 'held' }, 60);
        const [foundA, foundB] = await Promise.all([grants.find(a), grants.find(b)]);
        expect([foundA?.jti, foundB?.jti]).toEqual([a, b]);
        await Promise.all([grants.destroy(a), grants.destroy(b)]);
      }),
    );
    expect(await countRows(db, 'oidc_models')).toBe(before + 1);
  });

  it('stores what a request holds only together with its condition: both, or neither', async () => {
    const db = sesame.db;
    const Adapter = adapterOver(db);
    const interactions = new Adapter('Interaction');
    const tag = randomBytes(6).toString('hex');
    const [code, first, second, third] = [`code-${tag}`, `first-${tag}`, `second-${tag}`, `third-${tag}`];
    // The condition: using up a code, which only one statement can do.
    const setUp = new HeldWrites(db);
    setUp.upsert(modelRow('AuthorizationCode', code, { kind: 'AuthorizationCode' }, 60), () => {});
    await setUp.flush();
    const useCode: StoreCondition = {
      text: `update oidc_models set consumed_at = now() where model = $1 and id = $2 and consumed_at is null returning 1`,
      parameters: ['AuthorizationCode', code],
    };
    const stored = async (uid: string) =>
      Boolean(await oidcModelsQueries.find(db, 'Interaction', storedId('Interaction', uid)));
    const consumed = async () =>
      Boolean((await oidcModelsQueries.find(db, 'AuthorizationCode', code))?.consumed);
    const inRequest = <T>(work: () => Promise<T>) => providerRequests.run({}, work);

    // Work that fails stores nothing, and does not run the condition.
    await expect(
      inRequest(() =>
        storeWritesIf(db, useCode, async () => {
          await interactions.upsert(first, { uid: first, kind: 'Interaction' }, 60);
          throw new Error('the work failed');
        }),
      ),
    ).rejects.toThrow('the work failed');
    expect([await stored(first), await consumed()]).toEqual([false, false]);

    // The condition met: what was held is stored with it, and the adapter reads it back.
    const before = await countRows(db, 'oidc_models');
    const met = await inRequest(() =>
      storeWritesIf(db, useCode, async () => {
        await interactions.upsert(first, { uid: first, kind: 'Interaction', n: 1 }, 60);
        expect(await countRows(db, 'oidc_models')).toBe(before);
        await interactions.upsert(second, { uid: second, kind: 'Interaction' }, 60);
      }),
    );
    expect(met).toBe(true);
    expect([await stored(first), await stored(second), await consumed()]).toEqual([true, true, true]);

    // The condition not met (the code is used up): neither the upsert nor the deletion happens.
    const notMet = await inRequest(() =>
      storeWritesIf(db, useCode, async () => {
        await interactions.upsert(third, { uid: third, kind: 'Interaction' }, 60);
        await interactions.destroy(first);
      }),
    );
    expect(notMet).toBe(false);
    expect([await stored(first), await stored(third)]).toEqual([true, false]);

    // A held row read inside the work is stored first, and with the condition: not met here, so
    // the read fails and nothing of the work is stored.
    const again: StoreCondition = { ...useCode, parameters: ['AuthorizationCode', `${code}-none`] };
    const readBack = await inRequest(() =>
      storeWritesIf(db, again, async () => {
        await interactions.upsert(third, { uid: third, kind: 'Interaction' }, 60);
        await interactions.find(third);
      }),
    );
    expect(readBack).toBe(false);
    expect(await stored(third)).toBe(false);
    // Outside a request there is nothing to hold the writes for.
    await expect(storeWritesIf(db, useCode, async () => {})).rejects.toThrow(/within a request/);
  });

  it('stores each shape of a conditional write as written, however many deletions and rows the same condition came with before', async () => {
    const db = sesame.db;
    const tag = randomBytes(6).toString('hex');
    const ids = Array.from({ length: 6 }, (_, i) => `shape-${i}-${tag}`);
    const row = (id: string) => modelRow('Interaction', id, { uid: id, kind: 'Interaction' }, 60);
    const has = async (id: string) => Boolean(await oidcModelsQueries.find(db, 'Interaction', id));
    // The condition: a row that must be stored (read, or deleted with the statement's deletions).
    const required = (id: string, deleting: boolean) =>
      oidcModelsQueries.rowRequired('Interaction', id, undefined, deleting);
    await oidcModelsQueries.upsertRows(db, [row(ids[0]!)]);

    // One row, then three, then a deletion and two rows: each statement its own text.
    expect(
      await oidcModelsQueries.destroyAndUpsertIf(db, required(ids[0]!, false), [], [row(ids[1]!)]),
    ).toEqual([]);
    expect(
      await oidcModelsQueries.destroyAndUpsertIf(
        db,
        required(ids[0]!, false),
        [],
        [row(ids[2]!), row(ids[3]!)],
      ),
    ).toEqual([]);
    const gone = await oidcModelsQueries.destroyAndUpsertIf(
      db,
      required(ids[0]!, false),
      [{ model: 'Interaction', id: ids[1]! }],
      [row(ids[4]!), row(ids[5]!)],
    );
    expect(gone).toEqual([{ model: 'Interaction', id: ids[1], key: ids[1] }]);
    expect(await Promise.all(ids.map(has))).toEqual([true, false, true, true, true, true]);

    // The same condition deleting its row: answered with the other deletion.
    const deleted = await oidcModelsQueries.destroyAndUpsertIf(
      db,
      required(ids[0]!, true),
      [{ model: 'Interaction', id: ids[2]! }],
      [],
    );
    expect(deleted?.map((d) => d.id).sort()).toEqual([ids[0], ids[2]].sort());
    // Not met now (its row is gone): nothing of the same shapes is stored.
    expect(await oidcModelsQueries.destroyAndUpsertIf(db, required(ids[0]!, false), [], [row(ids[1]!)])).toBe(
      undefined,
    );
    expect(await Promise.all(ids.map(has))).toEqual([false, false, false, true, true, true]);

    // Unconditional: a deletion alone, then a deletion with rows, then rows alone.
    expect(await oidcModelsQueries.destroyAndUpsert(db, [{ model: 'Interaction', id: ids[3]! }], [])).toEqual(
      [{ model: 'Interaction', id: ids[3], key: ids[3] }],
    );
    await oidcModelsQueries.destroyAndUpsert(
      db,
      [{ model: 'Interaction', id: ids[4]! }],
      [row(ids[0]!), row(ids[1]!)],
    );
    await oidcModelsQueries.destroyAndUpsert(db, [], [row(ids[2]!)]);
    expect(await Promise.all(ids.map(has))).toEqual([true, true, true, false, false, true]);
  });
});
