import { Migrator } from 'kysely';
import { migrations } from '../../migrations/index.js';
import { configFrom } from '../../src/config.js';
import { type DatabaseHandle, openDatabase } from '../../src/db/connect.js';
import { auditQueries } from '../../src/db/queries/audit.js';
import { usersQueries } from '../../src/db/queries/users.js';
import { createTestDatabase, type TestDatabase } from '../support/testDatabase.js';

describe('migration 0006: accounts that already used a one-time link are email-verified', () => {
  let testDb: TestDatabase;
  let database: DatabaseHandle;

  beforeAll(async () => {
    testDb = await createTestDatabase();
    database = await openDatabase(configFrom(testDb.env), { poolSize: 2 });
  });

  afterAll(async () => {
    await database.close();
    await testDb.drop();
  });

  it('marks invited and recovered accounts verified, and leaves self sign-ups alone', async () => {
    const db = database.db;
    const migrator = new Migrator({ db, provider: { getMigrations: async () => migrations } });
    const back = await migrator.migrateTo('0005_grants_by_account_client');
    expect(back.error).toBeUndefined();

    const invited = await usersQueries.insert(db, { email: 'invited@example.com', name: null });
    const recovered = await usersQueries.insert(db, { email: 'recovered@example.com', name: null });
    const signedUp = await usersQueries.insert(db, { email: 'signedup@example.com', name: null });
    await auditQueries.record(db, `user:${invited.id}`, 'link.invite.use', invited.id, {});
    await auditQueries.record(db, `user:${recovered.id}`, 'link.recovery.use', recovered.id, {});
    await auditQueries.record(db, `user:${signedUp.id}`, 'user.signup', signedUp.id, {});

    expect(await database.migrate()).toContain('0006_email_verified_by_links');
    const verified = async (id: string) => (await usersQueries.findById(db, id))!.email_verified;
    expect(await verified(invited.id)).toBe(true);
    expect(await verified(recovered.id)).toBe(true);
    expect(await verified(signedUp.id)).toBe(false);
  });
});
