import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { createOneTimeLink, SELF_SERVICE_ACTOR } from '../../src/accounts/oneTimeLinks.js';
import { demoteUser } from '../../src/admin/users.js';
import { usersQueries } from '../../src/db/queries/users.js';
import { holdRow, untilWaitingForLocks } from '../support/rowLocks.js';
import { startTestApp, type TestApp } from '../support/testApp.js';
import { onPostgres } from '../support/testDatabase.js';

/**
 * The administrators lock orders what admins do with the changes that end their authority
 * (see withAdminAuthority). Whoever has no admin authority to lose does not wait for it; the
 * changes that end someone's authority take it whoever makes them. Postgres only: the
 * embedded database serves one connection, so the lock held here would stop everything.
 */
(onPostgres ? describe : describe.skip)('the administrators lock', () => {
  let sesame: TestApp;

  beforeAll(async () => {
    sesame = await startTestApp();
  });

  afterAll(() => sesame?.stop());

  const account = (isAdmin = false) =>
    usersQueries.insert(sesame.db, {
      email: `a${randomBytes(4).toString('hex')}@example.com`,
      name: null,
      emailVerified: true,
      isAdmin,
    });

  const holdAdministrators = () => holdRow(sesame.db, (trx) => usersQueries.lockAdministrators(trx));

  it('is not waited for by a "Lost your passkey?" link, which has no admin authority behind it', async () => {
    const user = await account();
    const release = await holdAdministrators();
    try {
      const issued = createOneTimeLink(sesame.db, sesame.config, {
        email: user.email,
        purpose: 'recovery',
        actor: SELF_SERVICE_ACTOR,
        selfService: true,
      });
      const first = await Promise.race([issued.then(() => 'issued'), sleep(3_000).then(() => 'waited')]);
      expect(first).toBe('issued');
    } finally {
      await release();
    }
  });

  it('is waited for by a demotion from the CLI, which ends an admin authority', async () => {
    await account(true);
    const admin = await account(true);
    const release = await holdAdministrators();
    const demoted = demoteUser(sesame.db, admin.id, 'cli:test');
    try {
      await untilWaitingForLocks(sesame.db, 1);
    } finally {
      await release();
    }
    expect(await demoted).toMatchObject({ id: admin.id, is_admin: false });
  });
});
