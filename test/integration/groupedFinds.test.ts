import { sql } from 'kysely';
import { GroupedFinds } from '../../src/db/groupedFinds.js';
import { oidcModelsQueries } from '../../src/db/queries/oidcModels.js';
import { openedTestDatabase } from '../support/openedDatabase.js';

describe('reads of the provider models made together', () => {
  const database = openedTestDatabase();

  beforeAll(async () => {
    const db = database().db;
    await oidcModelsQueries.upsert(db, 'AccessToken', 'tok', { jti: 'tok', kind: 'AccessToken' }, 60);
    await oidcModelsQueries.upsert(db, 'RefreshToken', 'tok', { jti: 'tok', kind: 'RefreshToken' }, 60);
    await oidcModelsQueries.upsert(db, 'AuthorizationCode', 'used', { jti: 'used' }, 60);
    await oidcModelsQueries.consume(db, 'AuthorizationCode', 'used');
    await oidcModelsQueries.upsert(db, 'AccessToken', 'old', { jti: 'old' }, 60);
    await sql`update oidc_models set expires_at = now() - interval '1 second' where id = 'old'`.execute(db);
  });

  const keys = [
    { model: 'AccessToken', id: 'tok' },
    { model: 'ClientCredentials', id: 'tok' },
    { model: 'RefreshToken', id: 'tok' },
    { model: 'AuthorizationCode', id: 'used' },
    { model: 'AccessToken', id: 'old' },
    { model: 'AccessToken', id: 'missing' },
    { model: 'AccessToken', id: 'tok' },
    { model: 'Grant', id: "x' or '1'='1" },
  ];

  it('answers reads made in one turn with one statement, each exactly as a read of its own', async () => {
    const finds = new GroupedFinds(database().db);
    const together = await Promise.all(keys.map((k) => finds.find(k.model, k.id)));
    expect(finds).toMatchObject({ reads: keys.length, statements: 1 });
    const alone = [];
    for (const k of keys) alone.push(await oidcModelsQueries.find(database().db, k.model, k.id));
    expect(together).toEqual(alone);
    expect(together[0]).toEqual({ jti: 'tok', kind: 'AccessToken' });
    expect(together[1]).toBeUndefined();
    expect(together[3]).toEqual({ jti: 'used', consumed: expect.any(Number) });
    expect(together[4]).toBeUndefined();
  });

  it('sends a lone read as it is, and reads of later turns in statements of their own', async () => {
    const finds = new GroupedFinds(database().db);
    expect(await finds.find('RefreshToken', 'tok')).toEqual({ jti: 'tok', kind: 'RefreshToken' });
    expect(await finds.find('AccessToken', 'missing')).toBeUndefined();
    expect(finds).toMatchObject({ reads: 2, statements: 2 });
  });
});
