import { sql } from 'kysely';
import { createTenant } from '../../src/passkeyApi/tenants.js';
import {
  createTestApiKeys,
  latestAuditEvent,
  postToAdminApi,
  type TestApiKeys,
} from '../support/adminApiCall.js';
import { runCliOn } from '../support/sesameProcess.js';
import { SoftAuthenticator } from '../support/softAuthenticator.js';
import { startTestApp, type TestApp } from '../support/testApp.js';

const ORIGIN = 'https://shop.example';

interface Answer {
  status: number;
  // biome-ignore lint/suspicious/noExplicitAny: answers are checked field by field
  json: any;
}

describe("erasing a passkey API app's user", () => {
  let sesame: TestApp;
  let tenantId: string;
  let apiKey: string;
  let keys: TestApiKeys;

  beforeAll(async () => {
    sesame = await startTestApp();
    const made = await createTenant(sesame.db, sesame.config, { name: 'Shop', origins: [ORIGIN] }, 'test');
    tenantId = made.tenant.id;
    apiKey = made.apiKey;
    keys = await createTestApiKeys(sesame);
  });

  afterAll(async () => {
    await sesame.stop();
  });

  async function call(path: string, body: unknown): Promise<Answer> {
    const response = await fetch(`${sesame.baseUrl}/passkey-api/${tenantId}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', apikey: apiKey },
      body: JSON.stringify(body),
    });
    return { status: response.status, json: await response.json() };
  }

  async function deleteOverApi(userId: string, key: string | null = keys.admin, id = tenantId) {
    const response = await fetch(
      `${sesame.baseUrl}/api/admin/passkey-tenants/${id}/users/${encodeURIComponent(userId)}`,
      { method: 'DELETE', headers: key === null ? {} : { authorization: `Bearer ${key}` } },
    );
    const text = await response.text();
    return { status: response.status, json: text ? JSON.parse(text) : undefined };
  }

  /**
   * A user with everything the API stores for one: names and icon, a passkey, an MFA
   * credential, a signed transaction, and a login and a registration still pending.
   */
  async function userWithEverything(userId: string): Promise<{ pendingLogin: unknown }> {
    const passkey = new SoftAuthenticator();
    const register = await call('/registration/initialize', {
      user_id: userId,
      username: `${userId}@shop`,
      display_name: `Person ${userId}`,
      icon: 'https://shop.example/face.png',
    });
    const created = await passkey.createCredential(register.json.publicKey, ORIGIN);
    expect((await call('/registration/finalize', created)).status).toBe(200);

    const securityKey = new SoftAuthenticator();
    const mfa = await call('/mfa/registration/initialize', { user_id: userId, username: `${userId}@shop` });
    const mfaCreated = await securityKey.createCredential(mfa.json.publicKey, ORIGIN);
    expect((await call('/mfa/registration/finalize', mfaCreated)).status).toBe(200);

    const transaction = await call('/transaction/initialize', {
      user_id: userId,
      transaction_id: `pay-${userId}`,
      transaction_data: { amount: 42 },
    });
    const signed = await passkey.getAssertion(transaction.json.publicKey, ORIGIN);
    expect((await call('/transaction/finalize', signed)).status).toBe(200);

    const login = await call('/login/initialize', { user_id: userId });
    const pendingLogin = await passkey.getAssertion(login.json.publicKey, ORIGIN);
    expect(
      (await call('/registration/initialize', { user_id: userId, username: `${userId}@shop` })).status,
    ).toBe(200);
    return { pendingLogin };
  }

  /** What the database holds about a user, table by table. */
  async function storedAbout(userId: string) {
    const count = async (
      table: 'passkey_tenant_users' | 'passkey_tenant_credentials' | 'passkey_tenant_transactions',
    ) =>
      (
        await sesame.db
          .selectFrom(table)
          .select('user_id')
          .where('tenant_id', '=', tenantId)
          .where('user_id', '=', userId)
          .execute()
      ).length;
    const challenges = await sesame.db
      .selectFrom('webauthn_challenges')
      .select('challenge')
      .where(sql<string>`data->>'userId'`, '=', userId)
      .execute();
    return {
      users: await count('passkey_tenant_users'),
      credentials: await count('passkey_tenant_credentials'),
      transactions: await count('passkey_tenant_transactions'),
      challenges: challenges.length,
    };
  }

  const unknownUserLogin = () => call('/login/initialize', { user_id: 'never-seen' });

  it('deletes the user with its passkeys, MFA credentials, transactions and pending ceremonies over the admin API; a login naming it is answered as for an unknown user', async () => {
    const { pendingLogin } = await userWithEverything('ada');
    await userWithEverything('bob');
    expect(await storedAbout('ada')).toEqual({ users: 1, credentials: 2, transactions: 1, challenges: 2 });

    const erased = await deleteOverApi('ada');
    expect(erased).toEqual({ status: 204, json: undefined });

    expect(await storedAbout('ada')).toEqual({ users: 0, credentials: 0, transactions: 0, challenges: 0 });
    const stored = await sesame.db.selectFrom('passkey_tenant_users').selectAll().execute();
    expect(JSON.stringify(stored)).not.toMatch(/ada/);
    // The other user keeps everything.
    expect(await storedAbout('bob')).toEqual({ users: 1, credentials: 2, transactions: 1, challenges: 2 });

    expect(await call('/login/initialize', { user_id: 'ada' })).toEqual(await unknownUserLogin());
    expect((await unknownUserLogin()).status).toBe(404);
    // The login that was pending cannot finish: its challenge went with the user.
    expect((await call('/login/finalize', pendingLogin)).status).toBe(401);
    const listed = await fetch(`${sesame.baseUrl}/passkey-api/${tenantId}/credentials?user_id=ada`, {
      headers: { apikey: apiKey },
    });
    expect(await listed.json()).toEqual([]);

    // Sesame's audit log keeps the erasure with the user id and nothing else about the person.
    const events = await sesame.db
      .selectFrom('audit_events')
      .selectAll()
      .where('action', '=', 'passkey_tenant.delete_user')
      .execute();
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({
      actor: `api-key:${keys.adminId}`,
      target: tenantId,
      details: { user_id: 'ada' },
    });
    expect(JSON.stringify(events[0]!.details)).not.toMatch(/Person|@shop|face/);

    // Registering the same user id again starts afresh.
    expect((await call('/registration/initialize', { user_id: 'ada', username: 'ada2' })).status).toBe(200);
  }, 60_000);

  it('answers 404 for an unknown user or app, 403 without the admin scope and 401 without a key, deleting nothing', async () => {
    const other = await createTenant(sesame.db, sesame.config, { name: 'Other', origins: [ORIGIN] }, 'test');
    const before = await storedAbout('bob');
    const events = async () => (await sesame.db.selectFrom('audit_events').select('id').execute()).length;
    const eventsBefore = await events();

    expect(await deleteOverApi('nobody')).toEqual({
      status: 404,
      json: {
        error: 'not_found',
        error_description: `Passkey API tenant ${tenantId} has no user with id nobody`,
      },
    });
    for (const id of ['00000000-0000-0000-0000-000000000000', 'not-a-uuid']) {
      expect(await deleteOverApi('bob', keys.admin, id)).toEqual({
        status: 404,
        json: { error: 'not_found', error_description: `No passkey API tenant with id ${id}` },
      });
    }
    expect((await deleteOverApi('bob', keys.metrics)).status).toBe(403);
    expect((await deleteOverApi('bob', null)).status).toBe(401);
    // A user of one app is not one of another's.
    expect((await deleteOverApi('bob', keys.admin, other.tenant.id)).status).toBe(404);

    expect(await storedAbout('bob')).toEqual(before);
    expect(await events()).toBe(eventsBefore);
  });

  it('erases a user with `sesame passkey-api delete-user TENANT USER_ID`, only with --yes without a terminal', async () => {
    const unasked = await runCliOn(sesame, ['passkey-api', 'delete-user', tenantId, 'bob']);
    expect(unasked.code).not.toBe(0);
    expect((await storedAbout('bob')).users).toBe(1);

    const erased = await runCliOn(sesame, ['passkey-api', 'delete-user', tenantId, 'bob', '--yes', '--json']);
    expect(erased.code).toBe(0);
    expect(JSON.parse(erased.stdout)).toEqual({ tenant_id: tenantId, user_id: 'bob', deleted: true });
    expect(await storedAbout('bob')).toEqual({ users: 0, credentials: 0, transactions: 0, challenges: 0 });
    expect(await call('/login/initialize', { user_id: 'bob' })).toEqual(await unknownUserLogin());
    const [event] = await sesame.db
      .selectFrom('audit_events')
      .selectAll()
      .where('action', '=', 'passkey_tenant.delete_user')
      .where('actor', 'like', 'cli:%')
      .execute();
    expect(event).toMatchObject({ target: tenantId, details: { user_id: 'bob' } });

    const again = await runCliOn(sesame, ['passkey-api', 'delete-user', tenantId, 'bob', '--yes']);
    expect(again).toMatchObject({
      code: 1,
      stderr: `sesame: passkey API tenant ${tenantId} has no user with id bob\n`,
    });
  }, 60_000);

  describe('with the app named by its id in upper case (the CLI and the admin API take any case)', () => {
    const upper = () => tenantId.toUpperCase();

    it('erases the user with its pending ceremonies, over the admin API and with the CLI, and logs the id as stored', async () => {
      expect(upper()).not.toBe(tenantId);
      await userWithEverything('cy');
      expect((await storedAbout('cy')).challenges).toBe(2);
      expect(await deleteOverApi('cy', keys.admin, upper())).toEqual({ status: 204, json: undefined });
      expect(await storedAbout('cy')).toEqual({ users: 0, credentials: 0, transactions: 0, challenges: 0 });
      expect(await latestAuditEvent(sesame, 'passkey_tenant.delete_user')).toMatchObject({
        target: tenantId,
        details: { user_id: 'cy' },
      });

      await userWithEverything('dee');
      expect((await storedAbout('dee')).challenges).toBe(2);
      const erased = await runCliOn(sesame, [
        'passkey-api',
        'delete-user',
        upper(),
        'dee',
        '--yes',
        '--json',
      ]);
      expect(erased.code).toBe(0);
      expect(await storedAbout('dee')).toEqual({ users: 0, credentials: 0, transactions: 0, challenges: 0 });
      expect(await latestAuditEvent(sesame, 'passkey_tenant.delete_user')).toMatchObject({
        target: tenantId,
        details: { user_id: 'dee' },
      });
    }, 60_000);

    /** A new app with a registration pending: one challenge bound to it. */
    async function appWithPendingCeremony(): Promise<string> {
      const made = await createTenant(sesame.db, sesame.config, { name: 'Gone', origins: [ORIGIN] }, 'test');
      const started = await fetch(`${sesame.baseUrl}/passkey-api/${made.tenant.id}/registration/initialize`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', apikey: made.apiKey },
        body: JSON.stringify({ user_id: 'eve', username: 'eve@shop' }),
      });
      expect(started.status).toBe(200);
      expect(await challengesOf(made.tenant.id)).toBe(1);
      return made.tenant.id;
    }

    const challengesOf = async (id: string) =>
      (
        await sesame.db
          .selectFrom('webauthn_challenges')
          .select('challenge')
          .where('binding', '=', `tenant:${id}`)
          .execute()
      ).length;

    it('deletes the app with its pending ceremonies, over the admin API and with the CLI, and answers and logs the id as stored', async () => {
      const overApi = await appWithPendingCeremony();
      const deleted = await fetch(`${sesame.baseUrl}/api/admin/passkey-tenants/${overApi.toUpperCase()}`, {
        method: 'DELETE',
        headers: { authorization: `Bearer ${keys.admin}` },
      });
      expect(deleted.status).toBe(204);
      expect(await challengesOf(overApi)).toBe(0);
      expect(await latestAuditEvent(sesame, 'passkey_tenant.delete')).toMatchObject({ target: overApi });

      const withCli = await appWithPendingCeremony();
      const erased = await runCliOn(sesame, [
        'passkey-api',
        'delete',
        withCli.toUpperCase(),
        '--yes',
        '--json',
      ]);
      expect(erased.code).toBe(0);
      expect(JSON.parse(erased.stdout)).toEqual({ tenant_id: withCli, deleted: true });
      expect(await challengesOf(withCli)).toBe(0);
      expect(await latestAuditEvent(sesame, 'passkey_tenant.delete')).toMatchObject({ target: withCli });
    }, 60_000);

    it("answers and logs the id as stored when the app's API key, signing key or settings change", async () => {
      const rotated = await postToAdminApi(sesame, keys.admin, `/passkey-tenants/${upper()}/rotate-key`);
      expect(rotated.status).toBe(200);
      expect(rotated.json.tenant_id).toBe(tenantId);
      apiKey = rotated.json.api_key;
      expect(await latestAuditEvent(sesame, 'passkey_tenant.rotate_key')).toMatchObject({ target: tenantId });

      const signing = await postToAdminApi(
        sesame,
        keys.admin,
        `/passkey-tenants/${upper()}/rotate-signing-key`,
        {
          json: { activate_in: 0 },
        },
      );
      expect(signing.status).toBe(200);
      expect(signing.json.tenant_id).toBe(tenantId);
      expect(await latestAuditEvent(sesame, 'passkey_tenant.rotate_signing_key')).toMatchObject({
        target: tenantId,
      });

      const renamed = await fetch(`${sesame.baseUrl}/api/admin/passkey-tenants/${upper()}`, {
        method: 'PATCH',
        headers: { authorization: `Bearer ${keys.admin}`, 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'Shop' }),
      });
      expect(renamed.status).toBe(200);
      expect(await latestAuditEvent(sesame, 'passkey_tenant.update_settings')).toMatchObject({
        target: tenantId,
      });
    });
  });
});
