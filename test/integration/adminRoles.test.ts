import { createApiKey } from '../../src/admin/apiKeys.js';
import { configFrom } from '../../src/config.js';
import { type Db, openDatabase } from '../../src/db/connect.js';
import { usersQueries } from '../../src/db/queries/users.js';
import { countRows } from '../support/countRows.js';
import { type Person, stepUp } from '../support/oidcFlow.js';
import { onboard } from '../support/oneTimeLinkFlow.js';
import { type CliSession, linesOf, type ProcessResult, startCliSession } from '../support/sesameProcess.js';
import { startTestApp, type TestApp } from '../support/testApp.js';
import { createTestDatabase, type TestDatabase } from '../support/testDatabase.js';

/** The audit events for one user, oldest first, as (actor, action) pairs. */
async function auditOf(db: Db, userId: string) {
  const rows = await db
    .selectFrom('audit_events')
    .select(['actor', 'action'])
    .where('target', '=', userId)
    .orderBy('id')
    .execute();
  return rows.map(({ actor, action }) => `${actor} ${action}`);
}

describe('sesame users promote and demote, and the last administrator', () => {
  let database: TestDatabase;
  let session: CliSession;

  const env = () => ({ ...database.env, ISSUER: 'http://localhost:3000', LOG_LEVEL: 'warn' });

  beforeAll(async () => {
    database = await createTestDatabase();
    session = await startCliSession(env());
  });

  afterAll(async () => {
    await session?.close();
    await database?.drop();
  });

  // One process runs the commands in turn, each opening the database as `sesame` does.
  const sesame = (...args: string[]) => session.run(args);

  async function withDb<T>(work: (db: Db) => Promise<T>): Promise<T> {
    const handle = await openDatabase(configFrom(env()), { poolSize: 1 });
    try {
      return await work(handle.db);
    } finally {
      await handle.close();
    }
  }

  function expectOneLineError(result: ProcessResult, pattern: RegExp) {
    expect(result.code).not.toBe(0);
    expect(result.stdout).toBe('');
    expect(linesOf(result.stderr)).toHaveLength(1);
    expect(result.stderr).toMatch(pattern);
  }

  // Each command opens the database: a few, doing as much as they can.
  it('promotes and demotes by email, refuses to lose the last administrator, and refuses an --admin invitation of an account', async () => {
    // Accounts made by self sign-up before any administrator existed: the first-admin trap.
    const [ada, carol] = await withDb((db) =>
      Promise.all([
        usersQueries.insert(db, { email: 'Ada@Example.com', name: 'Ada' }),
        usersQueries.insert(db, { email: 'carol@example.com', name: null }),
      ]),
    );

    const promoted = JSON.parse((await sesame('users', 'promote', 'ada@example.com', '--json')).stdout);
    expect(promoted).toMatchObject({ id: ada.id, is_admin: true });

    // The only administrator can be neither demoted, nor disabled, nor deleted.
    expectOneLineError(await sesame('users', 'demote', ada.id), /last administrator.*sesame users promote/);
    expectOneLineError(await sesame('users', 'disable', 'ada@example.com'), /last administrator/);
    expectOneLineError(await sesame('users', 'delete', 'ada@example.com', '--yes'), /last administrator/);

    // An admin invitation for an account that exists is refused, not turned into a recovery link.
    expectOneLineError(
      await sesame('users', 'invite', '--email', 'Carol@example.com', '--admin'),
      /^sesame: carol@example\.com already has an account; use `sesame users promote carol@example\.com`/,
    );
    await withDb(async (db) => {
      expect(await usersQueries.findById(db, ada.id)).toMatchObject({ is_admin: true, disabled_at: null });
      expect(await usersQueries.findById(db, carol.id)).toMatchObject({ is_admin: false });
      expect(await countRows(db, 'one_time_tokens')).toBe(0);
    });

    // With a second administrator, the first can go.
    expect((await sesame('users', 'promote', carol.id)).stdout).toBe(
      'carol@example.com is an administrator\n',
    );
    const demoted = await sesame('users', 'demote', 'ada@example.com');
    expect(demoted.code).toBe(0);
    expect(demoted.stdout).toBe('Ada@Example.com is no longer an administrator\n');

    await withDb(async (db) => {
      expect((await usersQueries.findById(db, ada.id))!.is_admin).toBe(false);
      const audit = await auditOf(db, ada.id);
      expect(audit).toEqual([
        expect.stringMatching(/^cli:\S+ user\.promote$/),
        expect.stringMatching(/^cli:\S+ user\.demote$/),
      ]);
    });
  }, 400_000);
});

describe('promote and demote on the admin API and the users page', () => {
  let sesame: TestApp;
  let key: string;
  let admin: Person;
  let adminId: string;

  beforeAll(async () => {
    sesame = await startTestApp();
    key = (await createApiKey(sesame.db, 'tests', 'test')).key;
    ({ person: admin, userId: adminId } = await onboard(sesame, 'root@example.com', { admin: true }));
  });

  afterAll(() => sesame.stop());

  async function api(method: string, path: string, json?: unknown) {
    const response = await fetch(`${sesame.baseUrl}/api/admin${path}`, {
      method,
      headers: {
        authorization: `Bearer ${key}`,
        ...(json !== undefined && { 'content-type': 'application/json' }),
      },
      body: json === undefined ? undefined : JSON.stringify(json),
    });
    const text = await response.text();
    return { status: response.status, json: () => JSON.parse(text) };
  }

  const isAdmin = async (id: string) => (await usersQueries.findById(sesame.db, id))!.is_admin;

  it('promotes and demotes through the API, and answers 409 last_admin for the last administrator', async () => {
    const dana = await usersQueries.insert(sesame.db, { email: 'dana@example.com', name: null });
    const promoted = await api('POST', `/users/${dana.id}/promote`);
    expect(promoted.status).toBe(200);
    expect(promoted.json()).toMatchObject({ id: dana.id, is_admin: true });
    expect((await api('POST', `/users/${dana.id}/demote`)).json()).toMatchObject({ is_admin: false });
    expect((await api('POST', '/users/nobody@example.com/promote')).status).toBe(404);

    // A disabled administrator cannot sign in, so it is not the one that is left.
    await usersQueries.update(sesame.db, dana.id, { isAdmin: true, disabledAt: new Date() });
    // root is now the only administrator who can sign in.
    for (const [method, path] of [
      ['POST', `/users/${adminId}/demote`],
      ['POST', `/users/${adminId}/disable`],
      ['DELETE', `/users/${adminId}`],
    ] as const) {
      const refused = await api(method, path);
      expect(refused.status).toBe(409);
      expect(refused.json()).toMatchObject({ error: 'last_admin' });
    }
    expect(await usersQueries.findById(sesame.db, adminId)).toMatchObject({
      is_admin: true,
      disabled_at: null,
    });
    expect(await auditOf(sesame.db, dana.id)).toEqual([
      expect.stringMatching(/^api-key:.* user\.promote$/),
      expect.stringMatching(/^api-key:.* user\.demote$/),
    ]);
    await usersQueries.delete(sesame.db, dana.id);
  });

  it('lets only one of two administrators demoting each other at once succeed', async () => {
    const [erin, frank] = await Promise.all(
      ['erin@example.com', 'frank@example.com'].map((email) =>
        usersQueries.insert(sesame.db, { email, name: null, isAdmin: true }),
      ),
    );
    // root steps aside, so erin and frank are the last two.
    await sesame.db.updateTable('users').set({ is_admin: false }).where('id', '=', adminId).execute();
    try {
      const results = await Promise.all([
        api('POST', `/users/${erin!.id}/demote`),
        api('POST', `/users/${frank!.id}/demote`),
      ]);
      expect(results.map((r) => r.status).sort()).toEqual([200, 409]);
      expect(await usersQueries.countActiveAdmins(sesame.db)).toBe(1);
    } finally {
      await sesame.db.updateTable('users').set({ is_admin: true }).where('id', '=', adminId).execute();
      await sesame.db.deleteFrom('users').where('id', 'in', [erin!.id, frank!.id]).execute();
    }
  });

  it('refuses an admin invitation for an existing account with 409, and issues no link', async () => {
    await usersQueries.insert(sesame.db, { email: 'gina@example.com', name: null });
    const links = await countRows(sesame.db, 'one_time_tokens');
    const refused = await api('POST', '/users/invite', { email: 'gina@example.com', admin: true });
    expect(refused.status).toBe(409);
    expect(refused.json().error_description).toMatch(/already has an account; use `sesame users promote/);
    expect(await countRows(sesame.db, 'one_time_tokens')).toBe(links);
  });

  it('promotes and demotes from the users page only after a passkey step-up, never the admin themself', async () => {
    const hank = await usersQueries.insert(sesame.db, { email: 'hank@example.com', name: null });
    await sesame.db.deleteFrom('step_ups').where('user_id', '=', adminId).execute();
    const page = await admin.browser.request('/admin/users');
    expect(page.text).toMatch(new RegExp(`action="/admin/users/${hank.id}/promote"[^>]*data-step-up>`));
    expect(page.text).toContain('aria-label="Make hank@example.com an administrator"');
    const csrf = page.csrf();
    const post = (action: string, id = hank.id) =>
      admin.browser.request(`/admin/users/${id}/${action}`, { form: { _csrf: csrf } });

    const refused = await post('promote');
    expect(refused.status).toBe(403);
    expect(refused.text).toContain('Confirm with one of your passkeys');
    expect(await isAdmin(hank.id)).toBe(false);

    expect((await stepUp(admin, csrf)).status).toBe(200);
    const promoted = await post('promote');
    expect(promoted.status).toBe(302);
    expect(promoted.location()).toBe(`${sesame.baseUrl}/admin/users?done=user-promoted`);
    expect(await isAdmin(hank.id)).toBe(true);
    const listed = await admin.browser.request('/admin/users?done=user-promoted');
    expect(listed.text).toContain('aria-label="Remove administrator rights from hank@example.com"');

    expect((await post('demote')).status).toBe(302);
    expect(await isAdmin(hank.id)).toBe(false);
    expect((await post('demote', adminId)).status).toBe(400);
    expect(await isAdmin(adminId)).toBe(true);
    expect(await auditOf(sesame.db, hank.id)).toEqual([
      `user:${adminId} user.promote`,
      `user:${adminId} user.demote`,
    ]);
  });

  it('shows the refusal beside the invite form when the admin invitation names an existing account', async () => {
    await usersQueries.insert(sesame.db, { email: 'ivy@example.com', name: null });
    const page = await admin.browser.request('/admin/users');
    expect((await stepUp(admin, page.csrf())).status).toBe(200);
    const links = await countRows(sesame.db, 'one_time_tokens');
    const refused = await admin.browser.request('/admin/users/invite', {
      form: { _csrf: page.csrf(), email: 'ivy@example.com', admin: 'on' },
    });
    expect(refused.status).toBe(409);
    expect(refused.text).toMatch(/id="invite-email-error"[^>]*>ivy@example\.com already has an account/);
    expect(await countRows(sesame.db, 'one_time_tokens')).toBe(links);
  });
});
