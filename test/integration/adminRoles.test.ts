import { randomUUID } from 'node:crypto';
import { setTimeout } from 'node:timers/promises';
import { createOneTimeLink } from '../../src/accounts/oneTimeLinks.js';
import { createApiKey, revokeApiKey } from '../../src/admin/apiKeys.js';
import { addGroupMember, createGroup } from '../../src/admin/groups.js';
import {
  changeUserClaim,
  deleteUser,
  demoteUser,
  disableUser,
  enableUser,
  inviteUser,
  issueRecoveryLink,
  promoteUser,
} from '../../src/admin/users.js';
import { configFrom } from '../../src/config.js';
import { type Db, openDatabase } from '../../src/db/connect.js';
import { usersQueries } from '../../src/db/queries/users.js';
import { createClient, deleteClient, rotateClientSecret } from '../../src/oidc/clients.js';
import { rotateCookieKey } from '../../src/oidc/cookieKeys.js';
import { rotateSigningKeys } from '../../src/oidc/keys.js';
import { createResource, deleteResource, findResource } from '../../src/oidc/resources.js';
import { deleteTenant } from '../../src/passkeyApi/tenants.js';
import { deleteTenantUser } from '../../src/passkeyApi/tenantUsers.js';
import { asPage } from '../support/browser.js';
import { countRows } from '../support/countRows.js';
import { holdBody } from '../support/heldBody.js';
import { Person, stepUp } from '../support/oidcFlow.js';
import { linkPath, onboard, useLink } from '../support/oneTimeLinkFlow.js';
import { type CliSession, linesOf, type ProcessResult, startCliSession } from '../support/sesameProcess.js';
import { SoftAuthenticator } from '../support/softAuthenticator.js';
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
  it('promotes and demotes by email, refuses to lose the last administrator, and refuses an --admin invitation of an account whose owner proved the address', async () => {
    // Accounts made by self sign-up before any administrator existed: the first-admin trap.
    // Nobody proved ada's or carol's address; vera's owner did (she used a link mailed to it).
    const [ada, carol, vera] = await withDb((db) =>
      Promise.all([
        usersQueries.insert(db, { email: 'Ada@Example.com', name: 'Ada' }),
        usersQueries.insert(db, { email: 'carol@example.com', name: null }),
        usersQueries.insert(db, { email: 'vera@example.com', name: null, emailVerified: true }),
      ]),
    );

    // Whoever signed up with an address nobody proved may not own it: promote says so, and what to do.
    expectOneLineError(
      await sesame('users', 'promote', 'ada@example.com'),
      /^sesame: nobody has proved they receive mail at Ada@Example\.com: .*`sesame users invite --email Ada@Example\.com --admin`.* add --unverified\)\n$/,
    );
    await withDb(async (db) => expect((await usersQueries.findById(db, ada.id))!.is_admin).toBe(false));
    const promoted = JSON.parse(
      (await sesame('users', 'promote', 'ada@example.com', '--unverified', '--json')).stdout,
    );
    expect(promoted).toMatchObject({ id: ada.id, is_admin: true, email_verified: false });
    const listed = await sesame('users', 'list');
    expect(listed.stdout).toMatch(/ADDRESS/);
    expect(listed.stdout).toMatch(/Ada@Example\.com\s+Ada\s+admin\s+active\s+unverified/);
    expect(listed.stdout).toMatch(/vera@example\.com\s+user\s+active\s+verified/);
    expect(JSON.parse((await sesame('users', 'list', '--json')).stdout)).toEqual(
      expect.arrayContaining([expect.objectContaining({ email: 'vera@example.com', email_verified: true })]),
    );

    // The only administrator can be neither demoted, nor disabled, nor deleted.
    expectOneLineError(await sesame('users', 'demote', ada.id), /last administrator.*sesame users promote/);
    expectOneLineError(await sesame('users', 'disable', 'ada@example.com'), /last administrator/);
    expectOneLineError(await sesame('users', 'delete', 'ada@example.com', '--yes'), /last administrator/);

    // An admin invitation for an account whose owner proved the address is refused, not
    // turned into a recovery link; for one nobody proved, it is an invite that takes it over.
    expectOneLineError(
      await sesame('users', 'invite', '--email', 'Vera@example.com', '--admin'),
      /^sesame: vera@example\.com already has an account and its owner proved the address; use `sesame users promote vera@example\.com`/,
    );
    await withDb(async (db) => {
      expect(await usersQueries.findById(db, vera.id)).toMatchObject({ is_admin: false });
      expect(await countRows(db, 'one_time_tokens')).toBe(0);
    });
    const takeover = await sesame('users', 'invite', '--email', 'Carol@example.com', '--admin');
    expect(takeover.code).toBe(0);
    // The admin learns before handing the link out that its user gets a new sub: apps see someone new.
    expect(takeover.stdout).toContain(
      "whoever uses the link takes that account over as an administrator with a new account and a new sub (apps see a new user; what they kept for the old sub stays with it), and the old account's passkeys, sign-ins and admin API keys end.",
    );
    await withDb(async (db) => {
      expect(await usersQueries.findById(db, ada.id)).toMatchObject({ is_admin: true, disabled_at: null });
      expect(await usersQueries.findById(db, carol.id)).toMatchObject({ is_admin: false });
      const link = await db.selectFrom('one_time_tokens').selectAll().executeTakeFirstOrThrow();
      expect(link).toMatchObject({ purpose: 'invite', email: 'carol@example.com', grant_admin: true });
    });

    // With a second administrator, the first can go.
    expect((await sesame('users', 'promote', vera.id)).stdout).toBe('vera@example.com is an administrator\n');
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

  it('disabling an administrator revokes the API keys they created and cancels the links they issued, says so, and keeps the keys made with the CLI', async () => {
    const { admin, theirKey, cliKey } = await withDb(async (db) => {
      await usersQueries.insert(db, { email: 'keeper@example.com', name: null, isAdmin: true });
      const admin = await usersQueries.insert(db, { email: 'r@example.com', name: null, isAdmin: true });
      const theirKey = (await createApiKey(db, 'theirs', `user:${admin.id}`)).apiKey;
      await createOneTimeLink(db, configFrom(env()), {
        email: 'sock@example.com',
        admin: true,
        actor: `user:${admin.id}`,
      });
      return { admin, theirKey, cliKey: (await createApiKey(db, 'ops', 'cli:operator')).apiKey };
    });
    const listed = await sesame('api-keys', 'list');
    expect(listed.stdout).toMatch(/CREATED BY/);
    expect(listed.stdout).toMatch(new RegExp(`theirs\\s+admin\\s+user:${admin.id}\\s`));
    expect(listed.stdout).toMatch(/ops\s+admin\s+cli:operator\s/);

    const disabled = await sesame('users', 'disable', 'r@example.com');
    expect(disabled.stdout).toBe(
      [
        'Disabled r@example.com; their sessions and tokens are revoked',
        `Revoked API key ${theirKey.id}, which they created`,
        'Cancelled 1 unused one-time link they issued',
        '',
      ].join('\n'),
    );
    await withDb(async (db) => {
      const keys = await db.selectFrom('api_keys').select(['id', 'revoked_at']).execute();
      expect(keys.find((k) => k.id === theirKey.id)!.revoked_at).not.toBeNull();
      expect(keys.find((k) => k.id === cliKey.id)!.revoked_at).toBeNull();
      const link = await db
        .selectFrom('one_time_tokens')
        .selectAll()
        .where('email', '=', 'sock@example.com')
        .executeTakeFirstOrThrow();
      expect(link.expires_at.getTime()).toBeLessThanOrEqual(Date.now());
      // A link they would issue now, from a page they loaded before, is refused.
      await expect(
        createOneTimeLink(db, configFrom(env()), { email: 'late@example.com', actor: `user:${admin.id}` }),
      ).rejects.toMatchObject({ status: 403 });
    });
    expect(JSON.parse((await sesame('users', 'delete', 'r@example.com', '--yes', '--json')).stdout)).toEqual({
      id: admin.id,
      email: 'r@example.com',
      deleted: true,
      revoked_api_keys: [],
      cancelled_links: 0,
    });
  }, 120_000);
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

  /** The URL of an admin invite for `email` issued with the API key `apiKey`. */
  async function adminInviteWith(apiKey: string, email: string): Promise<string> {
    const invited = await fetch(`${sesame.baseUrl}/api/admin/users/invite`, {
      method: 'POST',
      headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ email, admin: true }),
    });
    expect(invited.status).toBe(201);
    return ((await invited.json()) as { url: string }).url;
  }

  const isAdmin = async (id: string) => (await usersQueries.findById(sesame.db, id))!.is_admin;

  it('promotes and demotes through the API, and answers 409 last_admin for the last administrator', async () => {
    const dana = await usersQueries.insert(sesame.db, { email: 'dana@example.com', name: null });
    // Nobody proved dana's address: refused unless the caller says it knows whose account it is.
    const unproven = await api('POST', `/users/${dana.id}/promote`);
    expect(unproven.status).toBe(409);
    expect(unproven.json()).toMatchObject({ error: 'email_unverified' });
    expect(unproven.json().error_description).toContain(
      'sesame users invite --email dana@example.com --admin',
    );
    expect(unproven.json().error_description).toContain(
      'with a new account and a new `sub` (apps see a new user',
    );
    expect(await isAdmin(dana.id)).toBe(false);
    expect((await api('POST', `/users/${dana.id}/promote`, { unverified: 'yes' })).status).toBe(400);
    const promoted = await api('POST', `/users/${dana.id}/promote`, { unverified: true });
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

  it('refuses an admin invitation for an account whose owner proved the address with 409, and issues no link', async () => {
    await usersQueries.insert(sesame.db, { email: 'gina@example.com', name: null, emailVerified: true });
    const links = await countRows(sesame.db, 'one_time_tokens');
    const refused = await api('POST', '/users/invite', { email: 'gina@example.com', admin: true });
    expect(refused.status).toBe(409);
    expect(refused.json().error_description).toMatch(
      /already has an account and its owner proved the address; use `sesame users promote/,
    );
    expect(await countRows(sesame.db, 'one_time_tokens')).toBe(links);
  });

  it("takes a squatter's account over with an admin invitation: the squatter loses its passkeys and sessions, the mailbox's owner becomes the administrator", async () => {
    // Open sign-up: anyone can make an account with an address they do not own.
    const squatter = new Person(sesame.baseUrl);
    await squatter.browser.follow(
      await squatter.signUp(asPage(await squatter.browser.follow('/account')), 'eve@example.com', 'Mallory'),
    );
    expect((await squatter.browser.request('/account')).status).toBe(200);
    const squat = (await usersQueries.findByEmail(sesame.db, 'eve@example.com'))!;
    expect(squat.email_verified).toBe(false);
    expect((await api('GET', '/users?q=eve')).json()).toEqual([
      expect.objectContaining({ email: 'eve@example.com', email_verified: false, is_admin: false }),
    ]);

    const invited = await api('POST', '/users/invite', { email: 'eve@example.com', admin: true });
    expect(invited.status).toBe(201);
    expect(invited.json()).toMatchObject({ takes_over_account: true });
    // Not an administrator until the link is used, by whoever reads eve's mail.
    expect(await isAdmin(squat.id)).toBe(false);

    const owner = new Person(sesame.baseUrl);
    expect((await useLink(owner, invited.json().url, 'Eve')).status).toBe(200);
    // The owner's is a new account (a new sub for apps); the squatter's is gone.
    const taken = (await usersQueries.findByEmail(sesame.db, 'eve@example.com'))!;
    expect(taken.id).not.toBe(squat.id);
    expect(taken).toMatchObject({ is_admin: true, email_verified: true, name: 'Eve' });
    expect(await usersQueries.findById(sesame.db, squat.id)).toBeUndefined();
    const passkeys = await sesame.db
      .selectFrom('credentials')
      .select('id')
      .where('user_id', '=', taken.id)
      .execute();
    expect(passkeys).toHaveLength(1);
    expect((await owner.browser.request('/admin/users')).status).toBe(200);
    // The squatter's session ends, and its passkey signs in nowhere.
    expect((await squatter.browser.request('/account')).status).not.toBe(200);
    expect((await squatter.browser.request('/admin/users')).status).not.toBe(200);
    await expect(squatter.signIn(asPage(await squatter.browser.follow('/account')))).rejects.toThrow();
  });

  it('leaves the squatter none of the passkeys it was adding while the owner took the account over, by admin invitation or recovery link', async () => {
    // The add-passkey requests run while the owner's link is used: each one that took its
    // challenge before the takeover and stored its passkey after it once kept that passkey,
    // and with it the (admin) account. A few rounds, half of them with a recovery link.
    for (let round = 0; round < 4; round++) {
      const email = `squatted-${round}@example.com`;
      const squatter = new Person(sesame.baseUrl);
      await squatter.browser.follow(
        await squatter.signUp(asPage(await squatter.browser.follow('/account')), email, 'Mallory'),
      );
      const csrf = (await squatter.browser.request('/account')).csrf();
      expect((await stepUp(squatter, csrf)).status).toBe(200);
      const adds = [];
      for (let i = 0; i < 20; i++) {
        const options = await squatter.browser.postJson('/account/passkeys/options', csrf, {});
        expect(options.status).toBe(200);
        adds.push(await new SoftAuthenticator().createCredential(options.json(), squatter.browser.origin));
      }

      const link = await api('POST', '/users/invite', { email, admin: round % 2 === 0 });
      expect(link.json()).toMatchObject({ takes_over_account: true });
      const owner = new Person(sesame.baseUrl);
      const path = linkPath(link.json().url);
      const ownerCsrf = (await owner.browser.request(path)).csrf();
      const ownerOptions = await owner.browser.postJson(`${path}/options`, ownerCsrf, {});
      const ownerPasskey = await owner.authenticator.createCredential(
        ownerOptions.json(),
        owner.browser.origin,
      );
      const [used] = await Promise.all([
        owner.browser.postJson(`${path}/verify`, ownerCsrf, ownerPasskey),
        ...adds.map((credential) => squatter.browser.postJson('/account/passkeys/verify', csrf, credential)),
      ]);
      expect(used.status).toBe(200);

      const { id } = (await usersQueries.findByEmail(sesame.db, email))!;
      const passkeys = await sesame.db
        .selectFrom('credentials')
        .select('id')
        .where('user_id', '=', id)
        .execute();
      expect({ round, passkeys: passkeys.map((p) => p.id) }).toEqual({ round, passkeys: [ownerPasskey.id] });
      expect((await squatter.browser.request('/account')).status).not.toBe(200);
      expect((await owner.browser.request('/account')).status).toBe(200);
    }
  });

  it('revokes the API keys an administrator created and cancels the links they issued when they are demoted, and those made with the CLI stay', async () => {
    const { person: rogue, userId: rogueId } = await onboard(sesame, 'rogue@example.com', { admin: true });
    const page = await rogue.browser.request('/admin/users');
    const csrf = page.csrf();
    expect((await stepUp(rogue, csrf)).status).toBe(200);
    const invited = await rogue.browser.request('/admin/users/invite', {
      form: { _csrf: csrf, email: 'sock@example.com', admin: 'on' },
    });
    const adminLink = /http:\/\/[^"<\s]+\/link\/[A-Za-z0-9_-]{43}/.exec(invited.text)![0];
    const keyForm = await rogue.browser.request('/admin/api-keys');
    const made = await rogue.browser.request('/admin/api-keys', {
      form: { _csrf: csrf, _once: keyForm.field('_once'), name: 'rogue' },
    });
    const rogueKey = /ssk_[A-Za-z0-9_-]{43}/.exec(made.text)![0];
    const listed = await rogue.browser.request('/admin/api-keys');
    expect(listed.text).toMatch(
      /<th scope="row">rogue<\/th>\s*<td><code>[^<]+<\/code><\/td>\s*<td>admin<\/td>\s*<td>rogue@example\.com<\/td>/,
    );
    // The rogue's key issues a link too.
    const keyLink = await adminInviteWith(rogueKey, 'sock2@example.com');

    const demoted = await api('POST', `/users/${rogueId}/demote`);
    expect(demoted.status).toBe(200);
    const rogueKeyRow = await sesame.db
      .selectFrom('api_keys')
      .selectAll()
      .where('name', '=', 'rogue')
      .executeTakeFirstOrThrow();
    expect(rogueKeyRow.created_by).toBe(`user:${rogueId}`);
    expect(demoted.json()).toMatchObject({
      is_admin: false,
      revoked_api_keys: [rogueKeyRow.id],
      cancelled_links: 2,
    });

    const refused = await fetch(`${sesame.baseUrl}/api/admin/users`, {
      headers: { authorization: `Bearer ${rogueKey}` },
    });
    expect(refused.status).toBe(401);
    for (const url of [adminLink, keyLink]) {
      expect((await useLink(new Person(sesame.baseUrl), url)).status).toBe(410);
    }
    expect(await usersQueries.findByEmail(sesame.db, 'sock@example.com')).toBeUndefined();
    // The key made outside any admin's account (here, by the tests, as the CLI's are) still works.
    expect((await api('GET', '/users')).status).toBe(200);
    expect(await auditOf(sesame.db, rogueId)).toContainEqual(
      expect.stringMatching(/^api-key:\S+ user\.admin_handouts_withdrawn$/),
    );
  });

  it('refuses what an administrator sent before being demoted and finished after: a promotion from the page and an admin invite with their key change nothing', async () => {
    const { person: rogue, userId: rogueId } = await onboard(sesame, 'holder@example.com', { admin: true });
    const accomplice = await usersQueries.insert(sesame.db, {
      email: 'accomplice@example.com',
      name: null,
      emailVerified: true,
    });
    const csrf = (await rogue.browser.request('/admin/users')).csrf();
    expect((await stepUp(rogue, csrf)).status).toBe(200);
    const keyForm = await rogue.browser.request('/admin/api-keys');
    const made = await rogue.browser.request('/admin/api-keys', {
      form: { _csrf: csrf, _once: keyForm.field('_once'), name: 'holder' },
    });
    const rogueKey = /ssk_[A-Za-z0-9_-]{43}/.exec(made.text)![0];

    // Both requests are admitted on their heads; their bodies are still to come.
    const host = new URL(sesame.baseUrl).host;
    const promotePath = `/admin/users/${accomplice.id}/promote`;
    const promote = holdBody(sesame.listenUrl, {
      method: 'POST',
      path: promotePath,
      host,
      headers: {
        cookie: await rogue.browser.jar.getCookieString(`${sesame.baseUrl}${promotePath}`),
        origin: sesame.baseUrl,
        'content-type': 'application/x-www-form-urlencoded',
      },
      body: new URLSearchParams({ _csrf: csrf }).toString(),
    });
    const invite = holdBody(sesame.listenUrl, {
      method: 'POST',
      path: '/api/admin/users/invite',
      host,
      headers: { authorization: `Bearer ${rogueKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ email: 'sleeper@example.com', admin: true }),
    });
    await setTimeout(500);

    expect((await api('POST', `/users/${rogueId}/demote`)).status).toBe(200);
    const fresh = await fetch(`${sesame.baseUrl}/api/admin/users`, {
      headers: { authorization: `Bearer ${rogueKey}` },
    });
    expect(fresh.status).toBe(401);

    const [promoted, invited] = await Promise.all([promote.finish(), invite.finish()]);
    expect([promoted.status, invited.status]).toEqual([403, 401]);
    // Refused by the check where the work is done, not at the door: the request was admitted.
    expect(promoted.body).toContain('You are no longer an administrator');
    expect(promoted.body).not.toContain('aria-label="Administration"');
    expect(invited.headers['www-authenticate']).toBe('Bearer realm="sesame", error="invalid_token"');
    expect(JSON.parse(invited.body)).toMatchObject({
      error: 'invalid_token',
      error_description: 'The API key was revoked, or whoever created it is no longer an administrator',
    });

    expect(await isAdmin(accomplice.id)).toBe(false);
    expect(await auditOf(sesame.db, accomplice.id)).toEqual([]);
    const links = await sesame.db
      .selectFrom('one_time_tokens')
      .select('id')
      .where('email', '=', 'sleeper@example.com')
      .execute();
    expect(links).toEqual([]);
  });

  it('refuses every admin change in the name of a revoked key or a former administrator, and changes nothing', async () => {
    const { apiKey } = await createApiKey(sesame.db, 'gone', 'cli:ops');
    await revokeApiKey(sesame.db, apiKey.id, 'cli:ops');
    const former = await usersQueries.insert(sesame.db, { email: 'former@example.com', name: null });
    const api = await createResource(
      sesame.db,
      { identifier: 'https://api.example', scopes: ['read'] },
      'test',
    );
    const auditBefore = await countRows(sesame.db, 'audit_events');
    const nobody = randomUUID();
    for (const [actor, status] of [
      [`api-key:${apiKey.id}`, 401],
      [`user:${former.id}`, 403],
    ] as const) {
      const changes: Record<string, () => Promise<unknown>> = {
        promoteUser: () => promoteUser(sesame.db, sesame.config, former.id, actor, { unverified: true }),
        demoteUser: () => demoteUser(sesame.db, adminId, actor),
        enableUser: () => enableUser(sesame.db, former.id, actor),
        disableUser: () => disableUser(sesame.db, former.id, actor),
        deleteUser: () => deleteUser(sesame.db, former.id, actor),
        inviteUser: () =>
          inviteUser(sesame.db, sesame.config, { email: 'new@example.com', admin: true }, actor),
        issueRecoveryLink: () => issueRecoveryLink(sesame.db, sesame.config, former.id, actor),
        changeUserClaim: () => changeUserClaim(sesame.db, former.id, 'team', 'red', actor),
        createApiKey: () => createApiKey(sesame.db, 'more', actor),
        revokeApiKey: () => revokeApiKey(sesame.db, nobody, actor),
        createClient: () =>
          createClient(sesame.db, { name: 'x', redirect_uris: ['https://x.example/cb'] }, actor),
        rotateClientSecret: () => rotateClientSecret(sesame.db, 'nope', actor),
        deleteClient: () => deleteClient(sesame.db, 'nope', actor),
        createGroup: () => createGroup(sesame.db, 'crew', actor),
        addGroupMember: () => addGroupMember(sesame.db, 'crew', former.id, actor),
        createResource: () =>
          createResource(sesame.db, { identifier: 'https://other.example', scopes: ['read'] }, actor),
        deleteResource: () => deleteResource(sesame.db, api.id, actor),
        deleteTenant: () => deleteTenant(sesame.db, nobody, actor),
        deleteTenantUser: () => deleteTenantUser(sesame.db, nobody, nobody, actor),
        rotateSigningKeys: () => rotateSigningKeys(sesame.db, sesame.config, actor),
        rotateCookieKey: () => rotateCookieKey(sesame.db, sesame.config, actor),
      };
      const refusals: Record<string, unknown> = {};
      for (const [name, change] of Object.entries(changes)) {
        refusals[name] = await change().then(
          () => 'done',
          (error: { status?: number }) => error.status,
        );
      }
      expect(refusals).toEqual(Object.fromEntries(Object.keys(changes).map((name) => [name, status])));
    }
    expect(await countRows(sesame.db, 'audit_events')).toBe(auditBefore);
    expect(await usersQueries.findById(sesame.db, former.id)).toMatchObject({
      is_admin: false,
      disabled_at: null,
    });
    expect(await findResource(sesame.db, api.id)).toBeDefined();
    await deleteResource(sesame.db, api.id, 'test');
    await usersQueries.delete(sesame.db, former.id);
  });

  it('cancels the unused links an API key issued when the key is revoked, one made without an admin behind it included', async () => {
    const { apiKey, key: issuing } = await createApiKey(sesame.db, 'inviter', 'cli:ops');
    const keyLink = await adminInviteWith(issuing, 'keyed@example.com');

    const page = await admin.browser.request('/admin/api-keys');
    const revoked = await admin.browser.request(`/admin/api-keys/${apiKey.id}/revoke`, {
      form: { _csrf: page.csrf() },
    });
    expect(revoked.status).toBe(302);
    expect((await useLink(new Person(sesame.baseUrl), keyLink)).status).toBe(410);
    const notice = await admin.browser.request(revoked.location()!);
    expect(notice.text).toContain('the unused links it issued no longer work');
    expect(await usersQueries.findByEmail(sesame.db, 'keyed@example.com')).toBeUndefined();
    const audit = await sesame.db
      .selectFrom('audit_events')
      .select(['action', 'details'])
      .where('target', '=', apiKey.id)
      .orderBy('id')
      .execute();
    expect(audit).toEqual([
      { action: 'api_key.create', details: expect.anything() },
      { action: 'api_key.revoke', details: expect.objectContaining({ links: 1 }) },
    ]);
  });

  it('promotes and demotes from the users page only after a passkey step-up, never the admin themself', async () => {
    const hank = await usersQueries.insert(sesame.db, {
      email: 'hank@example.com',
      name: null,
      emailVerified: true,
    });
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

  it('shows whose address is unproven, and offers an admin invite, filled in, instead of promoting such an account', async () => {
    const jade = await usersQueries.insert(sesame.db, { email: 'jade@example.com', name: null });
    const page = await admin.browser.request('/admin/users');
    expect(page.text).toMatch(/<th scope="col">Address<\/th>/);
    expect(page.text).toMatch(
      /jade@example\.com<\/th>\s*<td><\/td>\s*<td>User<\/td>\s*<td>Active<\/td>\s*<td>Unverified<\/td>/,
    );
    expect(page.text).toMatch(
      /root@example\.com<\/th>\s*<td><\/td>\s*<td>Admin<\/td>\s*<td>Active<\/td>\s*<td>Verified<\/td>/,
    );
    expect((await stepUp(admin, page.csrf())).status).toBe(200);
    const refused = await admin.browser.request(`/admin/users/${jade.id}/promote`, {
      form: { _csrf: page.csrf() },
    });
    expect(refused.status).toBe(409);
    expect(refused.text).toMatch(/id="invite-email"[^>]*value="jade@example\.com"/);
    expect(refused.text).toContain('<input type="checkbox" name="admin" checked>');
    expect(refused.text).toMatch(
      /id="invite-email-error"[^>]*>Nobody has proved they receive mail at jade@example\.com.*with a new account and a new sub \(apps see a new user\)/,
    );
    expect(await isAdmin(jade.id)).toBe(false);

    const invited = await admin.browser.request('/admin/users/invite', {
      form: { _csrf: page.csrf(), email: 'jade@example.com', admin: 'on' },
    });
    expect(invited.status).toBe(200);
    expect(invited.text).toContain(
      'whoever uses this link takes that account over as an administrator with a new account and a new <code>sub</code> (apps see a new user',
    );
  });

  it('shows the refusal beside the invite form when the admin invitation names an account whose owner proved the address', async () => {
    await usersQueries.insert(sesame.db, { email: 'ivy@example.com', name: null, emailVerified: true });
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
