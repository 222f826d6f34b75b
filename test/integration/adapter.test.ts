import { randomBytes } from 'node:crypto';
import type { Adapter, AdapterPayload } from 'oidc-provider';
import { configFrom } from '../../src/config.js';
import { sha256Hex } from '../../src/crypto.js';
import { type DatabaseHandle, openDatabase } from '../../src/db/connect.js';
import { GroupedUpserts } from '../../src/db/groupedUpserts.js';
import { oidcModelsQueries } from '../../src/db/queries/oidcModels.js';
import { usersQueries } from '../../src/db/queries/users.js';
import { RowCache } from '../../src/db/rowCache.js';
import type { User } from '../../src/db/schema.js';
import { createAdapter } from '../../src/oidc/adapter.js';
import { createClient } from '../../src/oidc/clients.js';
import { FreshSignIns } from '../../src/oidc/freshSignIns.js';
import { ModelCache } from '../../src/oidc/modelCache.js';
import { interactionBinding, storedId } from '../../src/oidc/storedIds.js';
import { countRows } from '../support/countRows.js';
import { createTestDatabase, type TestDatabase } from '../support/testDatabase.js';

const id = () => randomBytes(12).toString('base64url');
const HOUR = 3600;

describe('the oidc-provider storage adapter over the oidc_models table', () => {
  let testDb: TestDatabase;
  let database: DatabaseHandle;
  let adapterFor: (model: string) => Adapter;
  // Instances of an account are found only while the account exists: these three do.
  let a1: string;
  let a2: string;
  let a3: string;

  beforeAll(async () => {
    testDb = await createTestDatabase();
    database = await openDatabase(configFrom(testDb.env), { poolSize: 4 });
    // A cache that never goes live: every client lookup here reads the table.
    const PostgresAdapter = createAdapter(
      database.db,
      { clients: new RowCache(10), users: new RowCache(10), models: new ModelCache() },
      new GroupedUpserts(database.db),
    );
    adapterFor = (model) => new PostgresAdapter(model);
    const account = async (email: string) =>
      (await usersQueries.insert(database.db, { email, name: null })).id;
    a1 = await account('a1@example.com');
    a2 = await account('a2@example.com');
    a3 = await account('a3@example.com');
  });

  afterAll(async () => {
    await database.close();
    await testDb.drop();
  });

  /** Moves a row's expiry into the past, as if its lifetime had run out. */
  async function expire(model: string, rowId: string) {
    await database.db
      .updateTable('oidc_models')
      .set({ expires_at: new Date(Date.now() - HOUR * 1000) })
      .where('model', '=', model)
      .where('id', '=', storedId(model, rowId))
      .execute();
  }

  const countModels = () => countRows(database.db, 'oidc_models');

  /** An access token of account a1 issued at `iat`, with nested claims. */
  const accessToken = (jti: string, iat: number): AdapterPayload => ({
    jti,
    kind: 'AccessToken',
    accountId: a1,
    clientId: 'c1',
    scope: 'openid email',
    iat,
    exp: iat + HOUR,
    extra: { nested: [1, 'two', { three: true }] },
  });

  it('finds what it stored, payload unchanged, and keeps models apart', async () => {
    const tokenId = id();
    const payload = accessToken(tokenId, 1_700_000_000);
    await adapterFor('AccessToken').upsert(tokenId, payload, HOUR);

    expect(await adapterFor('AccessToken').find(tokenId)).toEqual(payload);
    expect(await adapterFor('RefreshToken').find(tokenId)).toBeUndefined();
    expect(await adapterFor('AccessToken').find(id())).toBeUndefined();
  });

  it('replaces the payload and its lookup columns when the same id is stored again', async () => {
    const sessionId = id();
    const session = adapterFor('Session');
    await session.upsert(sessionId, { uid: 'uid-before', accountId: a1 }, HOUR);
    await session.upsert(sessionId, { uid: 'uid-after', accountId: a2 }, HOUR);

    expect(await session.find(sessionId)).toEqual({ jti: sessionId, uid: 'uid-after', accountId: a2 });
    expect(await session.findByUid!('uid-before')).toBeUndefined();
    expect(await session.findByUid!('uid-after')).toEqual({ uid: 'uid-after', accountId: a2 });
  });

  it("keeps a grant's consent revocation when a copy loaded before it is saved again (its consent is not copied)", async () => {
    const grantId = id();
    const grants = adapterFor('Grant');
    const grant = {
      accountId: a1,
      clientId: 'revoked-app',
      iat: Math.floor(Date.now() / 1000),
      openid: { scope: 'openid' },
    };
    await grants.upsert(grantId, grant, HOUR);
    expect(await oidcModelsQueries.consentToCopy(database.db, a1, 'revoked-app')).toMatchObject(grant);
    await oidcModelsQueries.markConsentRevoked(database.db, a1, 'revoked-app', new Date());
    // The provider saves the copy it loaded before the revoke, which knows nothing of it.
    await grants.upsert(grantId, { ...grant, openid: { scope: 'openid email' } }, HOUR);
    expect(await grants.find(grantId)).toMatchObject({ openid: { scope: 'openid email' } });
    expect(await oidcModelsQueries.consentToCopy(database.db, a1, 'revoked-app')).toBeUndefined();
  });

  it('finds a session by its uid', async () => {
    const uid = id();
    await adapterFor('Session').upsert(id(), { uid, accountId: a3 }, HOUR);
    expect(await adapterFor('Session').findByUid!(uid)).toEqual({ uid, accountId: a3 });
    expect(await adapterFor('Session').findByUid!(id())).toBeUndefined();
  });

  it('finds a device code by its user code', async () => {
    const userCode = 'WDJB-MJHT';
    await adapterFor('DeviceCode').upsert(id(), { userCode, clientId: 'c1' }, HOUR);
    expect(await adapterFor('DeviceCode').findByUserCode!(userCode)).toEqual({ userCode, clientId: 'c1' });
    expect(await adapterFor('DeviceCode').findByUserCode!('XXXX-XXXX')).toBeUndefined();
  });

  it('marks a consumed code, and find then reports when it was consumed', async () => {
    const codeId = id();
    const codes = adapterFor('AuthorizationCode');
    await codes.upsert(codeId, { grantId: 'g-consume', clientId: 'c1' }, 60);
    expect((await codes.find(codeId))?.consumed).toBeUndefined();

    const before = Math.floor(Date.now() / 1000);
    await codes.consume(codeId);
    const found = await codes.find(codeId);
    expect(found).toMatchObject({ grantId: 'g-consume', clientId: 'c1' });
    expect(found?.consumed).toEqual(expect.any(Number));
    expect(found!.consumed as number).toBeGreaterThanOrEqual(before - 5);
    expect(found!.consumed as number).toBeLessThanOrEqual(Math.ceil(Date.now() / 1000) + 5);
  });

  it('refuses a second consume of a code with invalid_grant and revokes its grant, and consumes once under a race', async () => {
    const grantId = id();
    const [code, token] = [id(), id()];
    await adapterFor('Grant').upsert(grantId, { jti: grantId, accountId: a1 }, HOUR);
    await adapterFor('AuthorizationCode').upsert(code, { grantId, accountId: a1 }, 60);
    await adapterFor('AccessToken').upsert(token, { grantId, accountId: a1 }, HOUR);

    const uses = await Promise.allSettled([1, 2, 3].map(() => adapterFor('AuthorizationCode').consume(code)));

    expect(uses.filter((u) => u.status === 'fulfilled')).toHaveLength(1);
    for (const use of uses.filter((u) => u.status === 'rejected'))
      expect((use as PromiseRejectedResult).reason).toMatchObject({ error: 'invalid_grant' });
    expect(await adapterFor('AccessToken').find(token)).toBeUndefined();
    expect(await adapterFor('Grant').find(grantId)).toBeUndefined();
  });

  it('does not find what an account held before its revocation instant, nor anything of an account that is gone', async () => {
    const account = (await usersQueries.insert(database.db, { email: `r${id()}@example.com`, name: null }))
      .id;
    const [session, token] = [id(), id()];
    const then = Math.floor(Date.now() / 1000) - 10;
    await adapterFor('Session').upsert(session, { jti: session, accountId: account, loginTs: then }, HOUR);
    await adapterFor('AccessToken').upsert(token, { jti: token, accountId: account, iat: then }, HOUR);

    // Sign out everywhere: sessions end, what apps hold stays.
    await usersQueries.revokeBefore(database.db, account, new Date(), { tokens: false });
    expect(await adapterFor('Session').find(session)).toBeUndefined();
    expect(await adapterFor('AccessToken').find(token)).toBeDefined();
    // The same rows saved again by a request still in flight are still not found.
    await adapterFor('Session').upsert(session, { jti: session, accountId: account, loginTs: then }, HOUR);
    expect(await adapterFor('Session').find(session)).toBeUndefined();

    await usersQueries.delete(database.db, account);
    expect(await adapterFor('AccessToken').find(token)).toBeUndefined();
  });

  it('stores a hash of the id and no copy of it in the payload', async () => {
    const token = id();
    await adapterFor('RefreshToken').upsert(token, { jti: token, accountId: a1, iat: 1 }, HOUR);
    const rows = await database.db.selectFrom('oidc_models').select(['id', 'payload']).execute();
    for (const row of rows) expect(row.id + JSON.stringify(row.payload)).not.toContain(token);
    expect(await adapterFor('RefreshToken').find(token)).toEqual({ jti: token, accountId: a1, iat: 1 });
  });

  it("leaves the provider's payload as it was while storing it without its id", async () => {
    const token = id();
    const payload: AdapterPayload = { iat: 1, jti: token, accountId: a1, kind: 'AccessToken' };
    await adapterFor('AccessToken').upsert(token, payload, HOUR);
    expect(Object.entries(payload)).toEqual([
      ['iat', 1],
      ['jti', token],
      ['accountId', a1],
      ['kind', 'AccessToken'],
    ]);
    const stored = await database.db.selectFrom('oidc_models').select('payload');
    const row = await stored.where('id', '=', storedId('AccessToken', token)).executeTakeFirst();
    expect(row?.payload).toEqual({ iat: 1, accountId: a1, kind: 'AccessToken' });
  });

  it('destroys one instance and leaves the others', async () => {
    const [gone, kept] = [id(), id()];
    const interactions = adapterFor('Interaction');
    await interactions.upsert(gone, { uid: gone }, HOUR);
    await interactions.upsert(kept, { uid: kept }, HOUR);

    await interactions.destroy(gone);

    expect(await interactions.find(gone)).toBeUndefined();
    expect(await interactions.find(kept)).toEqual({ jti: kept, uid: kept });
  });

  it('revokes by grant id every token and code of that grant, whatever the model, and nothing else', async () => {
    const grantId = id();
    const otherGrant = id();
    const ofGrant = [
      ['AccessToken', id()],
      ['RefreshToken', id()],
      ['AuthorizationCode', id()],
    ] as const;
    for (const [model, rowId] of ofGrant) await adapterFor(model).upsert(rowId, { grantId }, HOUR);
    const otherToken = id();
    await adapterFor('AccessToken').upsert(otherToken, { grantId: otherGrant }, HOUR);
    const session = id();
    // A session that holds something (an empty one is not stored at all).
    await adapterFor('Session').upsert(
      session,
      { uid: id(), authorizations: { app: { sid: id(), grantId: otherGrant } } },
      HOUR,
    );

    await adapterFor('RefreshToken').revokeByGrantId(grantId);

    for (const [model, rowId] of ofGrant) expect(await adapterFor(model).find(rowId)).toBeUndefined();
    expect(await adapterFor('AccessToken').find(otherToken)).toEqual({
      jti: otherToken,
      grantId: otherGrant,
    });
    expect(await adapterFor('Session').find(session)).toBeDefined();
  });

  it('does not return an instance whose lifetime has run out, by id, uid or user code', async () => {
    const rowId = id();
    const uid = id();
    const userCode = 'EXPD-CODE';
    await adapterFor('DeviceCode').upsert(rowId, { uid, userCode }, HOUR);
    expect(await adapterFor('DeviceCode').find(rowId)).toBeDefined();

    await expire('DeviceCode', rowId);

    expect(await adapterFor('DeviceCode').find(rowId)).toBeUndefined();
    expect(await adapterFor('DeviceCode').findByUid!(uid)).toBeUndefined();
    expect(await adapterFor('DeviceCode').findByUserCode!(userCode)).toBeUndefined();
  });

  it('keeps an instance stored without a lifetime until it is destroyed', async () => {
    const rowId = id();
    await adapterFor('Grant').upsert(rowId, { accountId: a1 }, undefined as unknown as number);
    const row = await database.db
      .selectFrom('oidc_models')
      .select('expires_at')
      .where('model', '=', 'Grant')
      .where('id', '=', rowId)
      .executeTakeFirstOrThrow();
    expect(row.expires_at).toBeNull();
    expect(await adapterFor('Grant').find(rowId)).toEqual({ accountId: a1 });
  });

  it('sweeps only expired rows, in batches, and two sweeps at once delete each row once', async () => {
    // Start from a clean table so the counts below are this test's own.
    await database.db.deleteFrom('oidc_models').execute();
    const expired = Array.from({ length: 25 }, id);
    const live = Array.from({ length: 4 }, id);
    for (const rowId of [...expired, ...live]) await adapterFor('AccessToken').upsert(rowId, {}, HOUR);
    await adapterFor('Grant').upsert('forever', {}, undefined as unknown as number);
    for (const rowId of expired) await expire('AccessToken', rowId);

    // A batch of 4 makes each sweep loop several times while the other one runs.
    const [first, second] = await Promise.all([
      oidcModelsQueries.deleteExpired(database.db, 4),
      oidcModelsQueries.deleteExpired(database.db, 4),
    ]);

    expect(first + second).toBe(expired.length);
    expect(await countModels()).toBe(live.length + 1);
    for (const rowId of live) expect(await adapterFor('AccessToken').find(rowId)).toBeDefined();
    expect(await adapterFor('Grant').find('forever')).toBeDefined();
    expect(await oidcModelsQueries.deleteExpired(database.db)).toBe(0);
  });

  it('keeps finding a device code expired less than its kept time ago, and the sweep keeps it as long', async () => {
    const recent = id();
    const old = id();
    await adapterFor('DeviceCode').upsert(recent, { userCode: 'RCNT-EXPD' }, HOUR);
    await adapterFor('DeviceCode').upsert(old, { userCode: 'OLDD-EXPD' }, HOUR);
    await adapterFor('AccessToken').upsert(recent, {}, HOUR);
    await database.db
      .updateTable('oidc_models')
      .set({ expires_at: new Date(Date.now() - 60_000) })
      .where('id', 'in', [recent, storedId('AccessToken', recent)])
      .execute();
    await expire('DeviceCode', old);

    // The provider checks a device code's expiry itself; other models' expired rows are not found.
    expect(await adapterFor('DeviceCode').find(recent)).toEqual({ userCode: 'RCNT-EXPD' });
    expect(await adapterFor('DeviceCode').findByUserCode!('RCNT-EXPD')).toEqual({ userCode: 'RCNT-EXPD' });
    expect(await adapterFor('AccessToken').find(recent)).toBeUndefined();
    expect(await adapterFor('DeviceCode').find(old)).toBeUndefined();
    // Stored again once expired (the provider saving an error on it), it stays as it was.
    await adapterFor('DeviceCode').upsert(recent, { userCode: 'RCNT-EXPD', error: 'access_denied' }, -60);
    expect(await adapterFor('DeviceCode').find(recent)).toEqual({ userCode: 'RCNT-EXPD' });

    await oidcModelsQueries.deleteExpired(database.db, 1000, { DeviceCode: 600 });
    const left = await database.db
      .selectFrom('oidc_models')
      .select(['model', 'id'])
      .where('id', 'in', [recent, old, storedId('AccessToken', recent)])
      .execute();
    expect(left).toEqual([{ model: 'DeviceCode', id: recent }]);
  });

  describe('with its caches live, as the server keeps them in step', () => {
    let caches: { clients: RowCache<AdapterPayload>; users: RowCache<User>; models: ModelCache };
    let live: (model: string) => Adapter;
    const now = () => Math.floor(Date.now() / 1000);

    beforeAll(() => {
      caches = { clients: new RowCache(10), users: new RowCache(10), models: new ModelCache() };
      for (const cache of Object.values(caches)) cache.goLive();
      const LiveAdapter = createAdapter(database.db, caches, new GroupedUpserts(database.db));
      live = (model) => new LiveAdapter(model);
    });

    /** Deletes the row behind the adapter's back: what is found afterwards came from memory. */
    const deleteRow = (model: string, rowId: string) =>
      database.db
        .deleteFrom('oidc_models')
        .where('model', '=', model)
        .where('id', '=', storedId(model, rowId))
        .execute();

    it('gives every find of a kept access token a top level of its own, with the nested values frozen (the provider only reads them)', async () => {
      const token = id();
      const payload = accessToken(token, now());
      await live('AccessToken').upsert(token, payload, HOUR);
      await deleteRow('AccessToken', token);

      const first = (await live('AccessToken').find(token))!;
      const second = (await live('AccessToken').find(token))!;
      expect(first).toEqual(payload);
      expect(second).toEqual(payload);
      expect(first).not.toBe(second);
      first.scope = 'changed';
      expect((await live('AccessToken').find(token))!.scope).toBe('openid email');
      expect(() => {
        (first.extra as { nested: unknown[] }).nested[0] = 2;
      }).toThrow(TypeError);
      // The same value is no token of another kind.
      expect(await live('ClientCredentials').find(token)).toBeUndefined();
      expect(await live('RefreshToken').find(token)).toBeUndefined();
    });

    it('gives every find of a kept grant a copy it may change throughout (the provider adds scopes to a grant in place)', async () => {
      const grantId = id();
      const payload = {
        jti: grantId,
        kind: 'Grant',
        accountId: a1,
        clientId: 'c1',
        openid: { scope: 'openid' },
      };
      await live('Grant').upsert(grantId, payload, HOUR);
      await deleteRow('Grant', grantId);

      const found = (await live('Grant').find(grantId)) as typeof payload;
      found.openid.scope = 'openid email';
      expect(await live('Grant').find(grantId)).toEqual(payload);
    });

    it('does not find a kept token of an account whose tokens were revoked since, with the account in memory or not', async () => {
      const account = (await usersQueries.insert(database.db, { email: `k${id()}@example.com`, name: null }))
        .id;
      const token = id();
      await live('AccessToken').upsert(token, { jti: token, accountId: account, iat: now() - 10 }, HOUR);
      expect(await live('AccessToken').find(token)).toBeDefined();
      expect(caches.users.peek(account)).toBeDefined();

      await usersQueries.revokeBefore(database.db, account, new Date(), { tokens: true });
      caches.users.invalidate(account); // as the change's notice does
      expect(await live('AccessToken').find(token)).toBeUndefined();
      expect(caches.users.peek(account)).toBeDefined();
      expect(await live('AccessToken').find(token)).toBeUndefined();
    });

    it('finds a kept client, and a client that is not in the table in no cache', async () => {
      const { client } = await createClient(
        database.db,
        { name: 'Kept', redirect_uris: ['https://kept.example/cb'] },
        'test',
      );
      const first = await live('Client').find(client.client_id);
      expect(first).toMatchObject({ client_id: client.client_id });
      expect(await live('Client').find(client.client_id)).toBe(first);
      expect(await live('Client').find('no-such-client')).toBeUndefined();
    });
  });

  describe('an interaction stored at the login prompt (freshSignIns.ts)', () => {
    let fresh: FreshSignIns;
    let interactions: Adapter;
    const now = () => Math.floor(Date.now() / 1000);
    const atPrompt = (uid: string, name: string, extra: AdapterPayload = {}): AdapterPayload => ({
      jti: uid,
      kind: 'Interaction',
      iat: now(),
      exp: now() + HOUR,
      returnTo: `http://localhost/auth/${uid}`,
      prompt: { name, reasons: ['no_session'], details: {} },
      params: { client_id: 'app' },
      ...extra,
    });
    const challengesFor = (uid: string) =>
      database.db
        .selectFrom('webauthn_challenges')
        .select(['challenge', 'purpose', 'user_id', 'expires_at'])
        .where('binding', '=', interactionBinding(uid))
        .execute();

    beforeAll(() => {
      fresh = new FreshSignIns();
      const Adapter = createAdapter(
        database.db,
        { clients: new RowCache(10), users: new RowCache(10), models: new ModelCache(), freshSignIns: fresh },
        new GroupedUpserts(database.db),
      );
      interactions = new Adapter('Interaction');
    });

    it('stores the challenge of its login page in the same statement, and serves its first view once, from memory', async () => {
      const uid = id();
      const payload = atPrompt(uid, 'login');
      await interactions.upsert(uid, payload, HOUR);

      const [stored, ...more] = await challengesFor(uid);
      expect(more).toEqual([]);
      expect(stored).toMatchObject({ purpose: 'login', user_id: null });
      expect(stored!.expires_at.getTime()).toBeGreaterThan(Date.now() + 60_000);
      const first = fresh.take(uid)!;
      expect(first.challenge).toBe(stored!.challenge);
      // As stored: without the id, also in its returnTo (storedIds.ts), which the adapter's find puts back.
      const { jti: _jti, ...asStored } = payload;
      expect(first.payload).toEqual({ ...asStored, returnTo: 'http://localhost/auth/:uid' });
      expect(fresh.take(uid)).toBeUndefined();
    });

    it('stores no challenge for an interaction at another prompt or with a result, and forgets one written again or deleted', async () => {
      const consent = id();
      await interactions.upsert(consent, atPrompt(consent, 'consent'), HOUR);
      const signedIn = id();
      await interactions.upsert(
        signedIn,
        atPrompt(signedIn, 'login', { result: { login: { accountId: 'a' } } }),
        HOUR,
      );
      expect(await challengesFor(consent)).toEqual([]);
      expect(await challengesFor(signedIn)).toEqual([]);
      expect(fresh.take(consent)).toBeUndefined();
      expect(fresh.take(signedIn)).toBeUndefined();

      const moved = id();
      await interactions.upsert(moved, atPrompt(moved, 'login'), HOUR);
      await interactions.upsert(
        moved,
        atPrompt(moved, 'login', { result: { login: { accountId: 'a' } } }),
        HOUR,
      );
      expect(fresh.take(moved)).toBeUndefined();
      const gone = id();
      await interactions.upsert(gone, atPrompt(gone, 'login'), HOUR);
      await interactions.destroy(gone);
      expect(fresh.take(gone)).toBeUndefined();
    });

    it('stores every interaction and challenge of a batch (two written in one turn of the event loop)', async () => {
      const [a, b] = [id(), id()];
      await Promise.all([
        interactions.upsert(a, atPrompt(a, 'login'), HOUR),
        interactions.upsert(b, atPrompt(b, 'login'), HOUR),
      ]);
      for (const uid of [a, b]) {
        const [stored] = await challengesFor(uid);
        expect(fresh.take(uid)?.challenge).toBe(stored!.challenge);
        expect(await interactions.find(uid)).toMatchObject({ jti: uid, prompt: { name: 'login' } });
      }
    });
  });

  describe('the Client model', () => {
    it('reads clients from the clients table, with the secret as its SHA-256 only', async () => {
      const { client, client_secret } = await createClient(
        database.db,
        {
          name: 'Inventory',
          redirect_uris: ['https://inventory.example/cb'],
          post_logout_redirect_uris: ['https://inventory.example/bye'],
        },
        'test',
      );

      const metadata = await adapterFor('Client').find(client.client_id);

      expect(metadata).toMatchObject({
        client_id: client.client_id,
        client_name: 'Inventory',
        redirect_uris: ['https://inventory.example/cb'],
        post_logout_redirect_uris: ['https://inventory.example/bye'],
        grant_types: ['authorization_code', 'refresh_token', 'client_credentials'],
        response_types: ['code'],
        token_endpoint_auth_method: 'client_secret_basic',
        client_secret: sha256Hex(client_secret!),
        first_party: false,
      });
      expect(JSON.stringify(metadata)).not.toContain(client_secret);
    });

    it('gives a public client no secret and the "none" authentication method', async () => {
      const { client } = await createClient(
        database.db,
        { name: 'SPA', redirect_uris: ['https://spa.example/cb'], public: true },
        'test',
      );
      const metadata = await adapterFor('Client').find(client.client_id);
      expect(metadata).toMatchObject({ token_endpoint_auth_method: 'none' });
      expect(metadata).not.toHaveProperty('client_secret');
    });

    it('does not find a client that is not in the table', async () => {
      expect(await adapterFor('Client').find('no-such-client')).toBeUndefined();
    });

    it('refuses to store clients through the adapter: admins manage them', async () => {
      await expect(adapterFor('Client').upsert('c-new', { client_id: 'c-new' }, HOUR)).rejects.toThrow(
        /clients table/,
      );
      expect(await adapterFor('Client').find('c-new')).toBeUndefined();
    });
  });
});
