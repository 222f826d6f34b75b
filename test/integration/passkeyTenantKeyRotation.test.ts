import * as jose from 'jose';
import { sql } from 'kysely';
import { openAtRest } from '../../src/crypto.js';
import { KEY_ACTIVATION_DELAY_SECONDS } from '../../src/oidc/keys.js';
import { RETIRED_TENANT_KEY_GRACE_SECONDS } from '../../src/passkeyApi/jwt.js';
import { createTenant, removeUnpublishedTenantKeys } from '../../src/passkeyApi/tenants.js';
import { sealContext } from '../../src/sealContext.js';
import {
  createTestApiKeys,
  expectRefusedPosts,
  postToAdminApi,
  type TestApiKeys,
} from '../support/adminApiCall.js';
import { asPage } from '../support/browser.js';
import { waitUntil } from '../support/eventually.js';
import { Person, stepUp } from '../support/oidcFlow.js';
import { cliJsonOn, runCliOn } from '../support/sesameProcess.js';
import { SoftAuthenticator } from '../support/softAuthenticator.js';
import { startTestApp, type TestApp } from '../support/testApp.js';
import { onPostgres } from '../support/testDatabase.js';

const ORIGIN = 'https://notes.example';
/** Long enough to sign in once more before the new key takes over, even on a busy machine. */
const ACTIVATE_IN_SECONDS = 6;

interface Answer {
  status: number;
  // biome-ignore lint/suspicious/noExplicitAny: answers are checked field by field
  json: any;
}

interface Tenant {
  id: string;
  apiKey: string;
}

describe("rotating a passkey API app's signing key", () => {
  let sesame: TestApp;
  /** A second instance on the same database (Postgres only: the embedded one has one owner). */
  let other: TestApp | undefined;
  let app: Tenant;
  let bystander: Tenant;
  const authenticator = new SoftAuthenticator();

  beforeAll(async () => {
    sesame = await startTestApp();
    if (onPostgres) {
      const { DATABASE_URL, DATABASE_DIRECT_URL } = sesame.env;
      other = await startTestApp({ DATABASE_URL: DATABASE_URL!, DATABASE_DIRECT_URL: DATABASE_DIRECT_URL! });
    }
    const made = async (name: string) => {
      const { tenant, apiKey } = await createTenant(
        sesame.db,
        sesame.config,
        { name, origins: [ORIGIN] },
        'test',
      );
      return { id: tenant.id, apiKey };
    };
    app = await made('Notes');
    bystander = await made('Bystander');
    // One user with a passkey: each sign-in hands the app's server a token.
    const init = await call(sesame, app, '/registration/initialize', { user_id: 'u1', username: 'ada' });
    const credential = await authenticator.createCredential(init.json.publicKey, ORIGIN);
    expect((await call(sesame, app, '/registration/finalize', credential)).status).toBe(200);
  });

  afterAll(async () => {
    await other?.stop();
    await sesame.stop();
  });

  const instances = () => [sesame, other].filter((a) => a !== undefined);

  async function call(on: TestApp, tenant: Tenant, path: string, body: unknown): Promise<Answer> {
    const response = await fetch(`${on.baseUrl}/passkey-api/${tenant.id}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', apikey: tenant.apiKey },
      body: JSON.stringify(body),
    });
    return { status: response.status, json: await response.json() };
  }

  /** A sign-in's token, from the given instance. */
  async function signIn(on: TestApp = sesame): Promise<{ token: string; kid: string }> {
    const init = await call(on, app, '/login/initialize', { user_id: 'u1' });
    const assertion = await authenticator.getAssertion(init.json.publicKey, ORIGIN);
    const finalize = await call(on, app, '/login/finalize', assertion);
    expect(finalize.status).toBe(200);
    return { token: finalize.json.token, kid: jose.decodeProtectedHeader(finalize.json.token).kid! };
  }

  const jwksUrl = (on: TestApp, tenant: Tenant = app) =>
    new URL(`${on.baseUrl}/passkey-api/${tenant.id}/.well-known/jwks.json`);

  async function publishedKids(on: TestApp, tenant: Tenant = app): Promise<string[]> {
    const { keys } = (await (await fetch(jwksUrl(on, tenant))).json()) as { keys: { kid: string }[] };
    return keys.map((key) => key.kid).sort();
  }

  /**
   * How the app's server checks a token: against the tenant's JWKS as an instance serves it,
   * fetched afresh (each instance has an issuer of its own here: the token names its tenant).
   */
  async function verify(token: string, on: TestApp = sesame) {
    const verified = await jose.jwtVerify(token, jose.createRemoteJWKSet(jwksUrl(on)));
    expect(verified.payload.iss).toMatch(new RegExp(`/passkey-api/${app.id}$`));
    return verified;
  }

  const auditOf = (action: string) =>
    sesame.db.selectFrom('audit_events').selectAll().where('action', '=', action).orderBy('id').execute();

  it('publishes the new key at once on every instance, signs with the old one until it activates, then switches', async () => {
    const before = await signIn();
    expect(await publishedKids(sesame)).toEqual([before.kid]);
    const bystanderKids = await publishedKids(sesame, bystander);

    const rotated = await cliJsonOn<{ tenant_id: string; kid: string; activates_at: string }>(sesame, [
      'passkey-api',
      'rotate-signing-key',
      app.id,
      '--activate-in',
      String(ACTIVATE_IN_SECONDS),
    ]);
    expect(rotated).toMatchObject({ tenant_id: app.id, kid: expect.stringMatching(/^pk-/) });
    // The old key stops at the very instant the new one starts: stored finer than the Date the
    // retirement was set from, the two left up to 1 ms with no key signing (a 500 in CI).
    const { rows: boundary } = await sql<{ starts: string; stops: string }>`
      select (select activates_at::text from passkey_tenant_keys where kid = ${rotated.kid}) as starts,
             (select retired_at::text from passkey_tenant_keys where kid = ${before.kid}) as stops`.execute(
      sesame.db,
    );
    expect(boundary[0]!.stops).toBe(boundary[0]!.starts);
    const activatesAt = new Date(rotated.activates_at).getTime();
    for (const on of instances()) {
      expect(await publishedKids(on)).toEqual([before.kid, rotated.kid].sort());
    }
    // Meanwhile the old key signs, on every instance.
    for (const on of instances()) expect((await signIn(on)).kid).toBe(before.kid);
    expect(Date.now()).toBeLessThan(activatesAt);

    await waitUntil(async () => (await signIn()).kid === rotated.kid, (ACTIVATE_IN_SECONDS + 5) * 1000);
    expect(Date.now()).toBeGreaterThanOrEqual(activatesAt);
    for (const on of instances()) {
      const after = await signIn(on);
      expect(after.kid).toBe(rotated.kid);
      await expect(verify(after.token, on)).resolves.toMatchObject({ payload: { sub: 'u1' } });
      // What the old key signed still verifies: it stays published for its grace.
      await expect(verify(before.token, on)).resolves.toMatchObject({ payload: { sub: 'u1' } });
    }
    // Another app's key is its own.
    expect(await publishedKids(sesame, bystander)).toEqual(bystanderKids);
    const [event] = await auditOf('passkey_tenant.rotate_signing_key');
    expect(event).toMatchObject({ target: app.id, details: { kid: rotated.kid } });
    expect(event!.actor).toMatch(/^cli:/);
  }, 60_000);

  it('stops publishing a retired key when its grace ends, and the cleanup deletes it', async () => {
    const published = await publishedKids(sesame);
    expect(published).toHaveLength(2);
    expect(await removeUnpublishedTenantKeys(sesame.db)).toBe(0);
    await sql`update passkey_tenant_keys set retired_at = now() - make_interval(secs => ${RETIRED_TENANT_KEY_GRACE_SECONDS + 1}) where retired_at is not null`.execute(
      sesame.db,
    );
    const signing = (await signIn()).kid;
    for (const on of instances()) expect(await publishedKids(on)).toEqual([signing]);
    expect(await removeUnpublishedTenantKeys(sesame.db)).toBe(1);
    const rows = await sesame.db
      .selectFrom('passkey_tenant_keys')
      .select('kid')
      .where('tenant_id', '=', app.id)
      .execute();
    expect(rows.map((r) => r.kid)).toEqual([signing]);
  });

  it('with --revoke-previous, signs with the new key at once and removes the old ones from every instance', async () => {
    const before = await signIn();
    // A pending key too: it is removed with the rest.
    const pending = await cliJsonOn<{ kid: string }>(sesame, ['passkey-api', 'rotate-signing-key', app.id]);
    expect(await publishedKids(sesame)).toEqual([before.kid, pending.kid].sort());

    const revoked = await cliJsonOn<{ kid: string; revoked_kids: string[] }>(sesame, [
      'passkey-api',
      'rotate-signing-key',
      app.id,
      '--revoke-previous',
    ]);
    expect(revoked.revoked_kids.sort()).toEqual([before.kid, pending.kid].sort());
    for (const on of instances()) {
      expect(await publishedKids(on)).toEqual([revoked.kid]);
      const fresh = await signIn(on);
      expect(fresh.kid).toBe(revoked.kid);
      await expect(verify(fresh.token, on)).resolves.toBeTruthy();
      await expect(verify(before.token, on)).rejects.toMatchObject({ code: 'ERR_JWKS_NO_MATCHING_KEY' });
    }
    const rows = await sesame.db
      .selectFrom('passkey_tenant_keys')
      .select('kid')
      .where('tenant_id', '=', app.id)
      .execute();
    expect(rows.map((r) => r.kid)).toEqual([revoked.kid]);
    const [event] = await auditOf('passkey_tenant.revoke_signing_keys');
    expect(event).toMatchObject({ target: app.id });
    expect((event!.details as { kids: string[] }).kids.sort()).toEqual([before.kid, pending.kid].sort());
  }, 60_000);

  it('refuses a delay beside --revoke-previous, and an unknown app, changing nothing', async () => {
    const before = await publishedKids(sesame);
    const contradiction = await runCliOn(sesame, [
      'passkey-api',
      'rotate-signing-key',
      app.id,
      '--revoke-previous',
      '--activate-in',
      '60',
    ]);
    expect(contradiction.code).toBe(1);
    expect(contradiction.stderr).toMatch(/--revoke-previous switches to the new key at once/);
    const unknown = await runCliOn(sesame, [
      'passkey-api',
      'rotate-signing-key',
      '00000000-0000-0000-0000-000000000000',
    ]);
    expect(unknown).toMatchObject({
      code: 1,
      stderr: 'sesame: no passkey API tenant with id 00000000-0000-0000-0000-000000000000\n',
    });
    expect(await publishedKids(sesame)).toEqual(before);
  });

  it('rotates from the admin page after a confirmation and a passkey step-up', async () => {
    const admin = new Person(sesame.baseUrl);
    const next = await admin.signUp(asPage(await admin.browser.follow('/admin')), 'root@example.com');
    await sesame.db
      .updateTable('users')
      .set({ is_admin: true })
      .where('email', '=', 'root@example.com')
      .execute();
    await admin.browser.follow(next);
    const before = await publishedKids(sesame);

    const page = await admin.browser.request(`/admin/passkey-tenants/${app.id}`);
    expect(page.text).toContain(`href="/admin/passkey-tenants/${app.id}/rotate-signing-key"`);
    const confirm = await admin.browser.request(`/admin/passkey-tenants/${app.id}/rotate-signing-key`);
    expect(confirm.status).toBe(200);
    expect(confirm.text).toMatch(
      new RegExp(`action="/admin/passkey-tenants/${app.id}/rotate-signing-key"[^>]*data-step-up>`),
    );
    const post = (form: Record<string, string>) =>
      admin.browser.request(`/admin/passkey-tenants/${app.id}/rotate-signing-key`, {
        form: { _csrf: confirm.csrf(), ...form },
      });
    // Without a step-up, and with a choice that is not offered: refused, nothing changes.
    expect((await post({ when: 'revoke' })).status).toBe(403);
    expect((await stepUp(admin, confirm.csrf())).status).toBe(200);
    expect((await post({ when: 'sometime' })).status).toBe(400);
    expect(await publishedKids(sesame)).toEqual(before);

    const scheduled = await post({ when: 'scheduled' });
    expect(scheduled.status).toBe(302);
    expect(scheduled.headers.get('location')).toBe(
      `/admin/passkey-tenants/${app.id}?done=tenant-signing-key-rotated`,
    );
    const afterScheduled = await publishedKids(sesame);
    expect(afterScheduled).toHaveLength(2);
    expect((await signIn()).kid).toBe(before[0]);

    const replaced = await post({ when: 'revoke' });
    expect(replaced.headers.get('location')).toBe(
      `/admin/passkey-tenants/${app.id}?done=tenant-signing-key-replaced`,
    );
    const [now] = await publishedKids(sesame);
    expect(await publishedKids(sesame)).toEqual([now]);
    expect(afterScheduled).not.toContain(now);
    expect((await signIn()).kid).toBe(now);
    const events = await auditOf('passkey_tenant.revoke_signing_keys');
    expect(events.at(-1)!.actor).not.toMatch(/^cli:/);
  }, 60_000);

  describe('over the admin API (`POST /api/admin/passkey-tenants/{id}/rotate-signing-key`)', () => {
    let keys: TestApiKeys;

    beforeAll(async () => {
      keys = await createTestApiKeys(sesame);
    });

    const rotateOverApi = (json?: unknown, id = app.id) =>
      postToAdminApi(sesame, keys.admin, `/passkey-tenants/${id}/rotate-signing-key`, { json });

    it('publishes the new key at once on every instance and signs with it after activate_in, as the CLI does', async () => {
      const before = await signIn();
      expect(await publishedKids(sesame)).toEqual([before.kid]);

      const answer = await rotateOverApi({ activate_in: ACTIVATE_IN_SECONDS });
      expect(answer.status).toBe(200);
      expect(answer.headers.get('cache-control')).toBe('no-store');
      expect(answer.json).toEqual({
        tenant_id: app.id,
        kid: expect.stringMatching(/^pk-/),
        activates_at: expect.any(String),
      });
      const { kid } = answer.json;
      const activatesAt = Date.parse(answer.json.activates_at);
      for (const on of instances()) expect(await publishedKids(on)).toEqual([before.kid, kid].sort());
      for (const on of instances()) expect((await signIn(on)).kid).toBe(before.kid);
      expect(Date.now()).toBeLessThan(activatesAt);

      await waitUntil(async () => (await signIn()).kid === kid, (ACTIVATE_IN_SECONDS + 5) * 1000);
      expect(Date.now()).toBeGreaterThanOrEqual(activatesAt);
      for (const on of instances()) {
        const after = await signIn(on);
        expect(after.kid).toBe(kid);
        await expect(verify(after.token, on)).resolves.toMatchObject({ payload: { sub: 'u1' } });
        await expect(verify(before.token, on)).resolves.toMatchObject({ payload: { sub: 'u1' } });
      }
      const event = (await auditOf('passkey_tenant.rotate_signing_key')).at(-1)!;
      expect(event).toMatchObject({
        actor: `api-key:${keys.adminId}`,
        target: app.id,
        details: { kid, activates_at: answer.json.activates_at },
      });
    }, 60_000);

    it('without a body waits the default delay; with revoke_previous, signs with the new key at once and removes the earlier ones', async () => {
      const before = await signIn();
      const pending = await rotateOverApi();
      expect(pending.status).toBe(200);
      const delay = Date.parse(pending.json.activates_at) - Date.now();
      expect(Math.abs(delay - KEY_ACTIVATION_DELAY_SECONDS * 1000)).toBeLessThan(10_000);
      // The key retired by the rotation before is still published (its grace); it goes too.
      const earlier = await publishedKids(sesame);
      expect(earlier).toEqual(expect.arrayContaining([before.kid, pending.json.kid]));

      const revoked = await rotateOverApi({ revoke_previous: true });
      expect(revoked.status).toBe(200);
      expect(revoked.json).toEqual({
        tenant_id: app.id,
        kid: expect.stringMatching(/^pk-/),
        activates_at: expect.any(String),
        revoked_kids: expect.any(Array),
      });
      expect(revoked.json.revoked_kids.sort()).toEqual(earlier);
      for (const on of instances()) {
        expect(await publishedKids(on)).toEqual([revoked.json.kid]);
        const fresh = await signIn(on);
        expect(fresh.kid).toBe(revoked.json.kid);
        await expect(verify(fresh.token, on)).resolves.toBeTruthy();
        await expect(verify(before.token, on)).rejects.toMatchObject({ code: 'ERR_JWKS_NO_MATCHING_KEY' });
      }
      const event = (await auditOf('passkey_tenant.revoke_signing_keys')).at(-1)!;
      expect(event).toMatchObject({ actor: `api-key:${keys.adminId}`, target: app.id });
      expect((event.details as { kids: string[] }).kids.sort()).toEqual(revoked.json.revoked_kids);
    }, 60_000);

    it('refuses bad input with 400, an unknown app with 404 and a key without the admin scope with 403, changing nothing', async () => {
      const snapshot = async () => ({
        keys: await sesame.db
          .selectFrom('passkey_tenant_keys')
          .select(['tenant_id', 'kid', 'activates_at', 'retired_at'])
          .orderBy('kid')
          .execute(),
        events: (await sesame.db.selectFrom('audit_events').select('id').execute()).length,
      });
      const before = await snapshot();
      const published = await publishedKids(sesame);

      await expectRefusedPosts(
        sesame,
        keys,
        `/passkey-tenants/${app.id}/rotate-signing-key`,
        [
          [{ activate_in: '60' }, 'activate_in'],
          [{ activate_in: -1 }, 'activate_in'],
          [{ activate_in: 1.5 }, 'activate_in'],
          [{ activate_in: 1e13 }, 'activate_in'],
          [{ activate_in: null }, 'activate_in'],
          [{ revoke_previous: 'yes' }, 'revoke_previous'],
          [{ revoke_previous: true, activate_in: 60 }, 'activate_in'],
          [{ activateIn: 60 }, 'body'],
          [[60], 'body'],
        ],
        { revoke_previous: true },
      );
      const contradiction = await rotateOverApi({ revoke_previous: true, activate_in: 60 });
      expect(contradiction.json.error_description).toMatch(
        /^activate_in: revoke_previous switches to the new key at once/,
      );
      for (const id of ['00000000-0000-0000-0000-000000000000', 'not-a-uuid']) {
        const unknown = await rotateOverApi({ revoke_previous: true }, id);
        expect(unknown.status).toBe(404);
        expect(unknown.json).toEqual({
          error: 'not_found',
          error_description: `No passkey API tenant with id ${id}`,
        });
      }

      expect(await snapshot()).toEqual(before);
      for (const on of instances()) expect(await publishedKids(on)).toEqual(published);
    }, 30_000);
  });

  it("serves a tenant's JWKS without opening its keys again, and every instance still publishes a rotation or revocation made elsewhere", async () => {
    const { tenant, apiKey } = await createTenant(
      sesame.db,
      sesame.config,
      { name: 'Cached', origins: [ORIGIN] },
      'test',
    );
    const cached = { id: tenant.id, apiKey };
    const jwksOn = async (on: TestApp) => {
      const response = await fetch(jwksUrl(on, cached));
      return { status: response.status, json: await response.json() };
    };
    const storedKeys = () =>
      sesame.db
        .selectFrom('passkey_tenant_keys')
        .select(['kid', 'private_jwk'])
        .where('tenant_id', '=', cached.id)
        .execute();
    /** Each published key is the public half of the stored private key of its kid. */
    async function expectPublicHalves(on: TestApp) {
      const { keys } = (await jwksOn(on)).json as { keys: jose.JWK[] };
      const stored = await storedKeys();
      expect(keys.map((key) => key.kid).sort()).toEqual(stored.map((row) => row.kid).sort());
      for (const row of stored) {
        const { kty, n, e } = JSON.parse(
          openAtRest(row.private_jwk, sesame.config, sealContext.passkeyTenantKey(cached.id, row.kid)),
        ) as jose.JWK;
        expect(keys.find((key) => key.kid === row.kid)).toEqual({
          kty,
          n,
          e,
          kid: row.kid,
          alg: 'RS256',
          use: 'sig',
        });
      }
    }

    const first = new Map<TestApp, unknown>();
    for (const on of instances()) {
      await expectPublicHalves(on);
      first.set(on, await jwksOn(on));
    }
    // Once published, a key is not opened again: a stored value nobody could open changes no answer.
    const [original] = await storedKeys();
    const overwrite = (value: string) =>
      sesame.db
        .updateTable('passkey_tenant_keys')
        .set({ private_jwk: value })
        .where('kid', '=', original!.kid)
        .execute();
    await overwrite('not a key');
    try {
      for (const on of instances()) expect(await jwksOn(on)).toEqual(first.get(on));
    } finally {
      await overwrite(original!.private_jwk);
    }

    // A new key, made by the CLI, is published by every instance at once, beside the cached one.
    const rotated = await cliJsonOn<{ kid: string }>(sesame, [
      'passkey-api',
      'rotate-signing-key',
      cached.id,
      '--activate-in',
      '60',
    ]);
    for (const on of instances()) {
      expect(await publishedKids(on, cached)).toEqual([original!.kid, rotated.kid].sort());
      await expectPublicHalves(on);
    }
    // Revoked, the earlier keys leave every instance's JWKS at once.
    const revoked = await cliJsonOn<{ kid: string }>(sesame, [
      'passkey-api',
      'rotate-signing-key',
      cached.id,
      '--revoke-previous',
    ]);
    for (const on of instances()) {
      expect(await publishedKids(on, cached)).toEqual([revoked.kid]);
      await expectPublicHalves(on);
    }
  }, 60_000);
});
