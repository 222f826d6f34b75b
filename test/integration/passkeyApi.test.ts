import { createHash, randomBytes } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import type {
  AuthenticationResponseJSON,
  PublicKeyCredentialCreationOptionsJSON,
  PublicKeyCredentialRequestOptionsJSON,
  RegistrationResponseJSON,
} from '@simplewebauthn/server';
import * as jose from 'jose';
import { configFrom } from '../../src/config.js';
import { sha256Hex } from '../../src/crypto.js';
import { openDatabase } from '../../src/db/connect.js';
import { passkeyTenantKeysQueries } from '../../src/db/queries/passkeyTenantKeys.js';
import { passkeyTenantsQueries } from '../../src/db/queries/passkeyTenants.js';
import { createTenant } from '../../src/passkeyApi/tenants.js';
import { type CliSession, linesOf, startCliSession } from '../support/sesameProcess.js';
import { SoftAuthenticator } from '../support/softAuthenticator.js';
import { startTestApp, type TestApp } from '../support/testApp.js';
import { createTestDatabase, type TestDatabase } from '../support/testDatabase.js';

const APP_ORIGIN = 'https://app.example';
/**
 * The origin Android's Credential Manager reports for the app signed with this certificate:
 * the unpadded base64url SHA-256 of the certificate's bytes.
 */
const ANDROID_ORIGIN = `android:apk-key-hash:${createHash('sha256').update('notes app signing certificate').digest('base64url')}`;
const KEY_ENCRYPTION_SECRET = 'passkey-api-test-key-encryption-secret-0123456789';

interface TestTenant {
  id: string;
  apiKey: string;
  rpId: string;
  origin: string;
}

interface ApiResponse {
  status: number;
  headers: Headers;
  // biome-ignore lint/suspicious/noExplicitAny: response bodies are checked field by field
  json: any;
}

describe('the passkey API (Hanko-compatible) for apps that run the ceremony themselves', () => {
  let sesame: TestApp;
  let app: TestTenant;
  /** A second tenant for the same domain (say, a staging app): same RP ID and origin, separate everything. */
  let twin: TestTenant;
  /** A tenant on another domain. */
  let elsewhere: TestTenant;

  async function makeTenant(name: string, origins: string[], rpId?: string): Promise<TestTenant> {
    const { tenant, apiKey } = await createTenant(sesame.db, sesame.config, { name, origins, rpId }, 'test');
    return { id: tenant.id, apiKey, rpId: tenant.rpId, origin: origins[0]! };
  }

  beforeAll(async () => {
    sesame = await startTestApp({ KEY_ENCRYPTION_SECRET });
    app = await makeTenant('Notes', [APP_ORIGIN, 'https://www.app.example']);
    twin = await makeTenant('Notes staging', [APP_ORIGIN], 'app.example');
    elsewhere = await makeTenant('Elsewhere', ['https://other.example']);
  });

  afterAll(() => sesame.stop());

  /** Calls `${ISSUER}/passkey-api/{tenant}{path}` the way an app's backend or frontend would. */
  async function call(
    tenantId: string,
    path: string,
    options: {
      method?: string;
      key?: string;
      body?: unknown;
      raw?: string;
      headers?: Record<string, string>;
    } = {},
  ): Promise<ApiResponse> {
    const hasBody = options.body !== undefined || options.raw !== undefined;
    const response = await fetch(`${sesame.baseUrl}/passkey-api/${tenantId}${path}`, {
      method: options.method ?? 'POST',
      headers: {
        ...(hasBody && { 'content-type': 'application/json' }),
        ...(options.key && { apikey: options.key }),
        ...options.headers,
      },
      ...(hasBody && { body: options.raw ?? JSON.stringify(options.body) }),
    });
    const text = await response.text();
    return { status: response.status, headers: response.headers, json: text ? JSON.parse(text) : undefined };
  }

  async function registrationOptions(
    tenant: TestTenant,
    user: { user_id: string; username: string; display_name?: string; icon?: string },
  ): Promise<PublicKeyCredentialCreationOptionsJSON> {
    const init = await call(tenant.id, '/registration/initialize', { key: tenant.apiKey, body: user });
    expect(init.status).toBe(200);
    return init.json.publicKey;
  }

  async function register(
    tenant: TestTenant,
    authenticator: SoftAuthenticator,
    user: { user_id: string; username: string; display_name?: string },
  ): Promise<{ token: string; credential: RegistrationResponseJSON }> {
    const options = await registrationOptions(tenant, user);
    const credential = await authenticator.createCredential(options, tenant.origin);
    const finalize = await call(tenant.id, '/registration/finalize', { body: credential });
    expect(finalize).toMatchObject({ status: 200 });
    return { token: finalize.json.token, credential };
  }

  async function loginOptions(
    tenant: TestTenant,
    userId?: string,
  ): Promise<PublicKeyCredentialRequestOptionsJSON> {
    const init = userId
      ? await call(tenant.id, '/login/initialize', { key: tenant.apiKey, body: { user_id: userId } })
      : await call(tenant.id, '/login/initialize', { raw: '' });
    expect(init.status).toBe(200);
    return init.json.publicKey;
  }

  async function login(tenant: TestTenant, assertion: AuthenticationResponseJSON): Promise<ApiResponse> {
    return call(tenant.id, '/login/finalize', { body: assertion });
  }

  /** Verifies a token the way the app's backend does: with the tenant's published JWKS. */
  async function verifyToken(tenant: TestTenant, token: string) {
    const jwks = await call(tenant.id, '/.well-known/jwks.json', { method: 'GET' });
    expect(jwks.status).toBe(200);
    const { payload, protectedHeader } = await jose.jwtVerify(token, jose.createLocalJWKSet(jwks.json), {
      issuer: `${sesame.baseUrl}/passkey-api/${tenant.id}`,
      audience: tenant.rpId,
      algorithms: ['RS256'],
    });
    expect(protectedHeader.kid).toBe(jwks.json.keys[0].kid);
    return payload;
  }

  /** Everything a refused request must leave as it was, in every tenant. */
  async function rowsNow() {
    const db = sesame.db;
    const [users, credentials, challenges] = await Promise.all([
      db.selectFrom('passkey_tenant_users').selectAll().orderBy('tenant_id').orderBy('user_id').execute(),
      db
        .selectFrom('passkey_tenant_credentials')
        .select(['tenant_id', 'id', 'user_id', 'counter', 'name', 'last_used_at'])
        .orderBy('tenant_id')
        .orderBy('id')
        .execute(),
      db
        .selectFrom('webauthn_challenges')
        .select((eb) => eb.fn.countAll<string>().as('n'))
        .executeTakeFirstOrThrow(),
    ]);
    return {
      users,
      credentials: credentials.map((c) => ({ ...c, counter: Number(c.counter) })),
      challenges: Number(challenges.n),
    };
  }

  const hankoError = (status: number) => ({
    status,
    json: { title: expect.any(String), details: expect.any(String), status },
  });

  describe('ceremonies', () => {
    it('registers and signs in two users through the four calls, with tokens that verify against the JWKS', async () => {
      const alicesPhone = new SoftAuthenticator();
      const bobsLaptop = new SoftAuthenticator();

      const options = await registrationOptions(app, {
        user_id: 'alice-1',
        username: 'alice@app.example',
        display_name: 'Alice',
      });
      expect(options.rp).toEqual({ id: 'app.example', name: 'Notes' });
      expect(options.user).toEqual({
        id: Buffer.from('alice-1').toString('base64url'),
        name: 'alice@app.example',
        displayName: 'Alice',
      });
      expect(options).toMatchObject({
        challenge: expect.any(String),
        pubKeyCredParams: expect.arrayContaining([{ type: 'public-key', alg: -7 }]),
        timeout: expect.any(Number),
        excludeCredentials: [],
        authenticatorSelection: { residentKey: 'required', userVerification: 'required' },
        attestation: 'none',
      });
      const aliceCredential = await alicesPhone.createCredential(options, APP_ORIGIN);
      const aliceFinalize = await call(app.id, '/registration/finalize', { body: aliceCredential });
      expect(aliceFinalize.status).toBe(200);
      const aliceRegistered = await verifyToken(app, aliceFinalize.json.token);
      expect(aliceRegistered).toMatchObject({
        sub: 'alice-1',
        aud: ['app.example'],
        cred: aliceCredential.id,
      });
      expect(aliceRegistered.exp! - aliceRegistered.iat!).toBe(300);

      const bob = await register(app, bobsLaptop, { user_id: 'bob-2', username: 'bob@app.example' });
      expect(await verifyToken(app, bob.token)).toMatchObject({ sub: 'bob-2', cred: bob.credential.id });

      // Usernameless: the tutorials' empty body with a JSON content type, no key.
      for (const [authenticator, userId, credentialId] of [
        [alicesPhone, 'alice-1', aliceCredential.id],
        [bobsLaptop, 'bob-2', bob.credential.id],
      ] as const) {
        const loginOpts = await loginOptions(app);
        expect(loginOpts).toMatchObject({
          rpId: 'app.example',
          challenge: expect.any(String),
          timeout: expect.any(Number),
          allowCredentials: [],
          userVerification: 'required',
        });
        const finalize = await login(app, await authenticator.getAssertion(loginOpts, APP_ORIGIN));
        expect(finalize.status).toBe(200);
        const claims = await verifyToken(app, finalize.json.token);
        expect(claims).toMatchObject({
          sub: userId,
          aud: ['app.example'],
          cred: credentialId,
          iss: `${sesame.baseUrl}/passkey-api/${app.id}`,
        });
      }

      // By user id (key required): only that user's passkeys are allowed.
      const byId = await loginOptions(app, 'bob-2');
      expect(byId.allowCredentials).toEqual([
        expect.objectContaining({ id: bob.credential.id, type: 'public-key' }),
      ]);
      const byIdLogin = await login(app, await bobsLaptop.getAssertion(byId, APP_ORIGIN));
      expect((await verifyToken(app, byIdLogin.json.token)).sub).toBe('bob-2');

      // A second origin of the same app works, and `{}` is as good as an empty body.
      const fromWww = await call(app.id, '/login/initialize', { body: {} });
      const wwwLogin = await login(
        app,
        await alicesPhone.getAssertion(fromWww.json.publicKey, 'https://www.app.example'),
      );
      expect((await verifyToken(app, wwwLogin.json.token)).sub).toBe('alice-1');

      // The user's names were stored as the app gave them.
      const stored = await sesame.db
        .selectFrom('passkey_tenant_users')
        .select(['user_id', 'username', 'display_name'])
        .where('tenant_id', '=', app.id)
        .orderBy('user_id')
        .execute();
      expect(stored).toEqual([
        { user_id: 'alice-1', username: 'alice@app.example', display_name: 'Alice' },
        { user_id: 'bob-2', username: 'bob@app.example', display_name: 'bob@app.example' },
      ]);
    });

    it('excludes the passkeys a user already has and updates the user on a second registration', async () => {
      const authenticator = new SoftAuthenticator();
      const first = await register(app, authenticator, { user_id: 'carol-3', username: 'carol' });
      const again = await registrationOptions(app, {
        user_id: 'carol-3',
        username: 'carol@app.example',
        display_name: 'Carol',
      });
      expect(again.excludeCredentials).toEqual([expect.objectContaining({ id: first.credential.id })]);
      // The authenticator that holds the passkey refuses to make a second one, as browsers do.
      await expect(authenticator.createCredential(again, APP_ORIGIN)).rejects.toThrow(/excludeCredentials/);
      const user = await sesame.db
        .selectFrom('passkey_tenant_users')
        .select(['username', 'display_name'])
        .where('tenant_id', '=', app.id)
        .where('user_id', '=', 'carol-3')
        .executeTakeFirstOrThrow();
      expect(user).toEqual({ username: 'carol@app.example', display_name: 'Carol' });
    });

    it('refuses a username that shows nothing, and shows the username for a display name that shows nothing', async () => {
      // The authenticator's dialog and the person's passkey manager show the account by them.
      const blank = await call(app.id, '/registration/initialize', {
        key: app.apiKey,
        body: { user_id: 'blank-9', username: '\u200b\u2060', display_name: 'Blank' },
      });
      expect(blank.status).toBe(400);
      const options = await registrationOptions(app, {
        user_id: 'dora-9',
        username: 'dora@app.example',
        display_name: '\u200b',
      });
      expect(options.user).toMatchObject({ name: 'dora@app.example', displayName: 'dora@app.example' });
      expect(
        await sesame.db
          .selectFrom('passkey_tenant_users')
          .select('user_id')
          .where('tenant_id', '=', app.id)
          .where('user_id', '=', 'blank-9')
          .execute(),
      ).toEqual([]);
    });

    it("takes a base64 data:image icon, as Hanko's url rule does, and an http(s) one", async () => {
      const iconOf = async (userId: string) =>
        (
          await sesame.db
            .selectFrom('passkey_tenant_users')
            .select('icon')
            .where('tenant_id', '=', app.id)
            .where('user_id', '=', userId)
            .executeTakeFirstOrThrow()
        ).icon;
      const png = `data:image/png;base64,${Buffer.from('\x89PNG\r\n\x1a\n').toString('base64')}`;
      for (const [userId, icon] of [
        ['icon-png', png],
        ['icon-webp', 'data:image/WEBP;base64,UklGRg=='],
        ['icon-largest', `data:image/gif;base64,${'R'.repeat(8192 - 'data:image/gif;base64,'.length)}`],
        ['icon-https', 'https://cdn.app.example/u/1.png'],
      ] as const) {
        await registrationOptions(app, { user_id: userId, username: userId, icon });
        expect(await iconOf(userId)).toBe(icon);
      }
      // The MFA registration takes the same icons.
      const mfa = await call(app.id, '/mfa/registration/initialize', {
        key: app.apiKey,
        body: { user_id: 'icon-mfa', username: 'icon-mfa', icon: png },
      });
      expect(mfa.status).toBe(200);
      expect(await iconOf('icon-mfa')).toBe(png);
    });

    it('blocks a passkey whose correctly signed login has a counter that did not increase: neither copy logs in again, even with a higher counter', async () => {
      const authenticator = new SoftAuthenticator();
      const { credential } = await register(app, authenticator, { user_id: 'cora-9', username: 'cora' });
      const copy = authenticator.clone();
      for (let i = 0; i < 2; i++) {
        const assertion = await authenticator.getAssertion(await loginOptions(app, 'cora-9'), APP_ORIGIN);
        expect((await login(app, assertion)).status).toBe(200);
      }
      const row = () =>
        sesame.db
          .selectFrom('passkey_tenant_credentials')
          .select(['counter', 'suspected_clone_at'])
          .where('tenant_id', '=', app.id)
          .where('id', '=', credential.id)
          .executeTakeFirstOrThrow();
      expect(Number((await row()).counter)).toBe(2);
      // A bad signature with a counter that went backwards says only that it did not verify, and blocks nothing.
      const forged = await authenticator.getAssertion(await loginOptions(app, 'cora-9'), APP_ORIGIN, {
        signCount: 1,
        badSignature: true,
      });
      const refused = await login(app, forged);
      expect(refused).toMatchObject({ status: 401, json: { title: 'failed to validate assertion' } });
      expect(refused.json.details).not.toMatch(/counter|blocked/);
      expect((await row()).suspected_clone_at).toBeNull();

      const blocked = {
        status: 401,
        json: {
          title: 'failed to validate assertion',
          details: 'This passkey has been blocked. Sign in with another passkey or recover your account.',
          status: 401,
        },
      };
      // The copy's first login (its counter 1, below the stored 2) proves it: the passkey is blocked.
      expect(
        await login(app, await copy.getAssertion(await loginOptions(app, 'cora-9'), APP_ORIGIN)),
      ).toMatchObject(blocked);
      // Neither the copy with a higher counter nor the owner logs in any more.
      for (const [key, signCount] of [
        [copy, 1000],
        [authenticator, undefined],
      ] as const) {
        const assertion = await key.getAssertion(await loginOptions(app, 'cora-9'), APP_ORIGIN, {
          signCount,
        });
        expect(await login(app, assertion)).toMatchObject(blocked);
      }
      const after = await row();
      expect(Number(after.counter)).toBe(2);
      expect(after.suspected_clone_at).toBeInstanceOf(Date);
      const failed = await call(
        app.id,
        '/audit_logs?type=webauthn_authentication_final_failed&actor_user_id=cora-9',
        {
          method: 'GET',
          key: app.apiKey,
        },
      );
      expect(
        failed.json.filter((entry: { error?: string }) => entry.error?.includes('has been blocked')),
      ).toHaveLength(3);
      // Deleting it works as for any passkey.
      const deleted = await call(app.id, `/credentials/${credential.id}`, {
        method: 'DELETE',
        key: app.apiKey,
      });
      expect(deleted.status).toBe(204);
    });

    it("lists, renames and deletes a user's passkeys, and a deleted passkey no longer signs in", async () => {
      const authenticator = new SoftAuthenticator({ backupEligible: true, backupState: true });
      const { credential } = await register(app, authenticator, { user_id: 'dave-4', username: 'dave' });
      // A model the AAGUID list does not know; the first reports all zeros (no attestation).
      const second = new SoftAuthenticator({ aaguid: 'deadbeef-0000-4000-8000-00000000beef' });
      const other = await register(app, second, { user_id: 'dave-4', username: 'dave' });
      const named = new SoftAuthenticator({ aaguid: 'ea9b8d66-4d01-1d21-3ce4-b6b48cb575d4' });
      const third = await register(app, named, { user_id: 'dave-5', username: 'dave5' });

      // Newest first, as Hanko lists them (this list was oldest first before Hanko's order was matched).
      const list = await call(app.id, '/credentials?user_id=dave-4', { method: 'GET', key: app.apiKey });
      expect(list.status).toBe(200);
      expect(list.json).toHaveLength(2);
      expect(list.json[1]).toEqual({
        id: credential.id,
        // As Hanko names a passkey whose AAGUID names no model.
        name: `cred-${credential.id}`,
        public_key: expect.stringMatching(/^[A-Za-z0-9_-]+$/),
        attestation_type: 'none',
        aaguid: '00000000-0000-0000-0000-000000000000',
        // Set at creation, as Hanko does (it was null until the first login before).
        last_used_at: list.json[1].created_at,
        created_at: expect.any(String),
        transports: ['internal'],
        backup_eligible: true,
        backup_state: true,
        is_mfa: false,
        user_id: 'dave-4',
      });
      expect(list.json[0]).toMatchObject({ id: other.credential.id, name: `cred-${other.credential.id}` });
      const thirdListed = await call(app.id, `/credentials/${third.credential.id}`, {
        method: 'GET',
        key: app.apiKey,
      });
      expect(thirdListed.json.name).toBe('Google Password Manager');

      const renamed = await call(app.id, `/credentials/${credential.id}`, {
        method: 'PATCH',
        key: app.apiKey,
        body: { name: '  Work phone ' },
      });
      expect(renamed.status).toBe(204);
      // A name that shows nothing would be a blank row in the app's list of passkeys.
      const blank = await call(app.id, `/credentials/${credential.id}`, {
        method: 'PATCH',
        key: app.apiKey,
        body: { name: '\u200b\u2060' },
      });
      expect(blank.status).toBe(400);

      const used = await login(app, await authenticator.getAssertion(await loginOptions(app), APP_ORIGIN));
      expect(used.status).toBe(200);
      const afterUse = await call(app.id, `/credentials/${credential.id}`, {
        method: 'GET',
        key: app.apiKey,
      });
      expect(afterUse.json).toMatchObject({ name: 'Work phone' });
      expect(Date.parse(afterUse.json.last_used_at)).toBeGreaterThan(Date.parse(afterUse.json.created_at));

      const deleted = await call(app.id, `/credentials/${credential.id}`, {
        method: 'DELETE',
        key: app.apiKey,
      });
      expect(deleted.status).toBe(204);
      const afterDelete = await call(app.id, '/credentials?user_id=dave-4', {
        method: 'GET',
        key: app.apiKey,
      });
      expect(afterDelete.json.map((c: { id: string }) => c.id)).toEqual([other.credential.id]);

      const refused = await login(app, await authenticator.getAssertion(await loginOptions(app), APP_ORIGIN));
      expect(refused).toMatchObject(hankoError(401));
      expect(
        await call(app.id, `/credentials/${credential.id}`, { method: 'DELETE', key: app.apiKey }),
      ).toMatchObject(hankoError(404));
      // A user without passkeys (or unknown) has none: 200 [], as Hanko (this was 404 before).
      expect(
        await call(app.id, '/credentials?user_id=nobody', { method: 'GET', key: app.apiKey }),
      ).toMatchObject({ status: 200, json: [] });
    });

    it('publishes only public key members in the JWKS, stores the signing key sealed and the API key as a hash', async () => {
      const jwks = await call(app.id, '/.well-known/jwks.json', { method: 'GET' });
      expect(jwks.json.keys).toHaveLength(1);
      expect(Object.keys(jwks.json.keys[0]).sort()).toEqual(['alg', 'e', 'kid', 'kty', 'n', 'use']);
      expect(jwks.json.keys[0]).toMatchObject({ kty: 'RSA', alg: 'RS256', use: 'sig' });

      const stored = await passkeyTenantsQueries.findById(sesame.db, app.id);
      const key = await passkeyTenantKeysQueries.signing(sesame.db, app.id);
      expect(key!.kid).toBe(jwks.json.keys[0].kid);
      expect(key!.private_jwk.startsWith('enc:v2:')).toBe(true);
      expect(key!.private_jwk).not.toContain('"d"');
      expect(stored!.apiKeyHash).toBe(sha256Hex(app.apiKey));
      expect(app.apiKey).toMatch(/^spk_[A-Za-z0-9_-]{43}$/);

      const twinJwks = await call(twin.id, '/.well-known/jwks.json', { method: 'GET' });
      expect(twinJwks.json.keys[0].kid).not.toBe(jwks.json.keys[0].kid);
    });

    it("answers CORS for the tenant's own origins only, with credentials and the headers asked for, as Hanko does", async () => {
      const preflight = (origin: string, headers = 'content-type') =>
        fetch(`${sesame.baseUrl}/passkey-api/${app.id}/login/finalize`, {
          method: 'OPTIONS',
          headers: {
            origin,
            'access-control-request-method': 'POST',
            'access-control-request-headers': headers,
          },
        });
      const allowed = await preflight('https://www.app.example', 'content-type,x-request-id');
      expect(allowed.status).toBe(204);
      expect(Object.fromEntries(allowed.headers)).toMatchObject({
        'access-control-allow-origin': 'https://www.app.example',
        // A frontend that fetches with credentials: 'include' may read the answer.
        'access-control-allow-credentials': 'true',
        'access-control-allow-headers': 'content-type,x-request-id',
        'access-control-max-age': '7200',
      });
      expect(allowed.headers.get('vary')).toMatch(/origin/i);
      expect(allowed.headers.get('vary')).toMatch(/access-control-request-headers/i);
      // A list that is no header names is not echoed.
      expect(
        (await preflight(APP_ORIGIN, 'content-type;evil')).headers.get('access-control-allow-headers'),
      ).toBe('Content-Type');

      for (const origin of ['https://other.example', sesame.baseUrl, 'null']) {
        const refused = await preflight(origin);
        expect(refused.status).toBe(403);
        expect(refused.headers.get('access-control-allow-origin')).toBeNull();
        expect(refused.headers.get('access-control-allow-credentials')).toBeNull();
      }

      const fromApp = await call(app.id, '/login/initialize', { body: {}, headers: { origin: APP_ORIGIN } });
      expect(fromApp.headers.get('access-control-allow-origin')).toBe(APP_ORIGIN);
      expect(fromApp.headers.get('access-control-allow-credentials')).toBe('true');
      const fromOther = await call(app.id, '/login/initialize', {
        body: {},
        headers: { origin: 'https://other.example' },
      });
      expect(fromOther.headers.get('access-control-allow-origin')).toBeNull();
      expect(fromOther.headers.get('access-control-allow-credentials')).toBeNull();
    });

    it('reads the body of every finalize call as JSON whatever its Content-Type says, or without one, as Hanko does', async () => {
      /** POSTs `body` as JSON text under `type` (none: bytes, which fetch sends without a Content-Type). */
      const finalizeAs = async (path: string, body: unknown, type: string | undefined, key?: string) => {
        const text = JSON.stringify(body);
        const response = await fetch(`${sesame.baseUrl}/passkey-api/${app.id}${path}`, {
          method: 'POST',
          headers: { ...(type && { 'content-type': type }), ...(key && { apikey: key }) },
          body: type ? text : new TextEncoder().encode(text),
        });
        expect({ path, type, status: response.status }).toEqual({ path, type, status: 200 });
        return (await response.json()).token as string;
      };
      const phone = new SoftAuthenticator();
      const securityKey = new SoftAuthenticator();
      const user = { user_id: 'hal-8', username: 'hal' };

      const created = await phone.createCredential(await registrationOptions(app, user), APP_ORIGIN);
      await finalizeAs('/registration/finalize', created, 'text/plain;charset=UTF-8');
      const signIn = await phone.getAssertion(await loginOptions(app), APP_ORIGIN);
      expect((await verifyToken(app, await finalizeAs('/login/finalize', signIn, undefined))).sub).toBe(
        'hal-8',
      );

      const key = app.apiKey;
      const mfaOptions = (await call(app.id, '/mfa/registration/initialize', { key, body: user })).json
        .publicKey;
      const mfaCreated = await securityKey.createCredential(mfaOptions, APP_ORIGIN);
      await finalizeAs('/mfa/registration/finalize', mfaCreated, 'application/x-www-form-urlencoded', key);
      const mfaLogin = (await call(app.id, '/mfa/login/initialize', { key, body: { user_id: 'hal-8' } })).json
        .publicKey;
      const secondFactor = await securityKey.getAssertion(mfaLogin, APP_ORIGIN, {
        credentialId: mfaCreated.id,
      });
      await finalizeAs('/mfa/login/finalize', secondFactor, 'text/plain', key);
      const transaction = { user_id: 'hal-8', transaction_id: 'tx-hal-1', transaction_data: { amount: 5 } };
      const txOptions = (await call(app.id, '/transaction/initialize', { key, body: transaction })).json
        .publicKey;
      const approval = await phone.getAssertion(txOptions, APP_ORIGIN);
      expect(
        (await verifyToken(app, await finalizeAs('/transaction/finalize', approval, undefined, key))).trans,
      ).toBe('tx-hal-1');

      // A body that is not JSON is still refused, whatever its type, and so is one over the limit.
      for (const [body, status] of [
        ['id=x&type=public-key', 400],
        [JSON.stringify({ id: 'x', padding: 'p'.repeat(100 * 1024) }), 413],
      ] as const) {
        const refused = await fetch(`${sesame.baseUrl}/passkey-api/${app.id}/login/finalize`, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body,
        });
        expect({ status: refused.status, json: await refused.json() }).toMatchObject(hankoError(status));
      }
    });

    it("runs an Android app's ceremonies for a tenant that lists its apk-key-hash origin, and no other's", async () => {
      const android = await makeTenant('Notes Android', [APP_ORIGIN, ANDROID_ORIGIN]);
      expect(ANDROID_ORIGIN).toMatch(/^android:apk-key-hash:[A-Za-z0-9_-]{43}$/);
      const phone = new SoftAuthenticator();
      const options = await registrationOptions(android, { user_id: 'ada-android', username: 'ada' });
      expect(options.rp.id).toBe('app.example');
      const credential = await phone.createCredential(options, ANDROID_ORIGIN);
      expect(await call(android.id, '/registration/finalize', { body: credential })).toMatchObject({
        status: 200,
      });
      const assertion = await phone.getAssertion(await loginOptions(android), ANDROID_ORIGIN);
      const signedIn = await login(android, assertion);
      expect(signedIn.status).toBe(200);
      expect((await verifyToken(android, signedIn.json.token)).sub).toBe('ada-android');

      // A tenant that does not list the app's origin refuses both ceremonies from it.
      const before = await rowsNow();
      const elsewhereOptions = await registrationOptions(app, { user_id: 'ada-android', username: 'ada' });
      const unlisted = await new SoftAuthenticator().createCredential(elsewhereOptions, ANDROID_ORIGIN);
      expect(await call(app.id, '/registration/finalize', { body: unlisted })).toMatchObject(hankoError(400));
      expect((await rowsNow()).credentials).toEqual(before.credentials);
      const appPhone = new SoftAuthenticator();
      await register(app, appPhone, { user_id: 'ada-web', username: 'ada' });
      const fromAndroid = await appPhone.getAssertion(await loginOptions(app), ANDROID_ORIGIN);
      expect(await login(app, fromAndroid)).toMatchObject(hankoError(401));

      // It is no web origin: never answered by CORS.
      const preflight = await fetch(`${sesame.baseUrl}/passkey-api/${android.id}/login/finalize`, {
        method: 'OPTIONS',
        headers: { origin: ANDROID_ORIGIN, 'access-control-request-method': 'POST' },
      });
      expect(preflight.status).toBe(403);
      expect(preflight.headers.get('access-control-allow-origin')).toBeNull();
    });
  });

  describe('refusals: each gets the error shape and status and changes nothing', () => {
    let authenticator: SoftAuthenticator;
    let registered: RegistrationResponseJSON;

    beforeAll(async () => {
      authenticator = new SoftAuthenticator();
      ({ credential: registered } = await register(app, authenticator, {
        user_id: 'erin-5',
        username: 'erin',
      }));
    });

    it('refuses a missing, wrong or other tenant API key with 401', async () => {
      const before = await rowsNow();
      const user = { user_id: 'mallory', username: 'mallory' };
      for (const key of [undefined, 'spk_wrong', twin.apiKey, `${app.apiKey}x`]) {
        const headers = key ? { apikey: key } : undefined;
        expect(
          await call(app.id, '/registration/initialize', { body: user, ...(headers && { headers }) }),
        ).toMatchObject(hankoError(401));
        expect(
          await call(app.id, '/login/initialize', {
            body: { user_id: 'erin-5' },
            ...(headers && { headers }),
          }),
        ).toMatchObject(hankoError(401));
        expect(
          await call(app.id, '/credentials?user_id=erin-5', { method: 'GET', ...(headers && { headers }) }),
        ).toMatchObject(hankoError(401));
        expect(
          await call(app.id, `/credentials/${registered.id}`, {
            method: 'PATCH',
            body: { name: 'pwned' },
            ...(headers && { headers }),
          }),
        ).toMatchObject(hankoError(401));
        expect(
          await call(app.id, `/credentials/${registered.id}`, {
            method: 'DELETE',
            ...(headers && { headers }),
          }),
        ).toMatchObject(hankoError(401));
      }
      // The header name is case-insensitive, as HTTP says.
      expect(
        await call(app.id, '/credentials?user_id=erin-5', { method: 'GET', headers: { APIKEY: app.apiKey } }),
      ).toMatchObject({ status: 200 });
      expect(await rowsNow()).toEqual(before);
    });

    it('refuses a login naming a user without a passkey with 400, where an empty allowCredentials would offer any passkey', async () => {
      // The app started registering her, but she never finished.
      await registrationOptions(app, { user_id: 'fay-6', username: 'fay' });
      const before = await rowsNow();
      expect(
        await call(app.id, '/login/initialize', { key: app.apiKey, body: { user_id: 'fay-6' } }),
      ).toMatchObject({
        status: 400,
        json: { title: 'user has no suitable credentials for this operation', details: '', status: 400 },
      });
      // A user the app never named is still unknown.
      expect(
        await call(app.id, '/login/initialize', { key: app.apiKey, body: { user_id: 'gus-7' } }),
      ).toMatchObject({
        status: 404,
        json: { title: 'user not found' },
      });
      expect(await rowsNow()).toEqual(before);
    });

    it('marks every answer to a call with the API key no-store, refusals included', async () => {
      const key = app.apiKey;
      for (const [path, keyUsed] of [
        ['/audit_logs', key],
        ['/credentials?user_id=erin-5', key],
        [`/credentials/${registered.id}`, key],
        ['/transaction/erin-5', key],
        ['/credentials?user_id=erin-5', 'spk_wrong'],
      ] as const) {
        const response = await call(app.id, path, { method: 'GET', key: keyUsed });
        expect({
          path,
          status: response.status,
          cacheControl: response.headers.get('cache-control'),
        }).toEqual({
          path,
          status: keyUsed === key ? 200 : 401,
          cacheControl: 'no-store',
        });
      }
      const named = await call(app.id, '/login/initialize', { key, body: { user_id: 'erin-5' } });
      expect(named.headers.get('cache-control')).toBe('no-store');
    });

    it('answers 404 for an unknown tenant or endpoint', async () => {
      const before = await rowsNow();
      // As Hanko: an unknown tenant is 404, a tenant id that is no UUID 400 (it was 404 before).
      for (const [tenantId, status] of [
        ['00000000-0000-4000-8000-000000000000', 404],
        ['not-a-uuid', 400],
      ] as const) {
        expect(await call(tenantId, '/login/initialize', { body: {} })).toMatchObject(hankoError(status));
        expect(await call(tenantId, '/.well-known/jwks.json', { method: 'GET' })).toMatchObject(
          hankoError(status),
        );
      }
      expect(await call(app.id, '/nothing/here', { method: 'GET' })).toMatchObject(hankoError(404));
      expect(await call(app.id, '/credentials/x/y', { method: 'DELETE' })).toMatchObject(hankoError(404));
      expect(await rowsNow()).toEqual(before);
    });

    it('answers 405 with Allow for a path of the API asked with another method, as Hanko does', async () => {
      const key = app.apiKey;
      const before = await rowsNow();
      for (const [path, method, allow] of [
        ['/registration/initialize', 'GET', 'POST'],
        ['/login/finalize', 'DELETE', 'POST'],
        ['/credentials', 'POST', 'HEAD, GET'],
        [`/credentials/${registered.id}`, 'POST', 'HEAD, GET, PATCH, DELETE'],
        ['/mfa/login/initialize', 'PATCH', 'POST'],
        ['/transaction/erin-5', 'DELETE', 'HEAD, GET'],
        ['/.well-known/jwks.json', 'POST', 'HEAD, GET'],
        // A method the API never answers names the path's own methods too.
        ['/registration/initialize', 'PUT', 'POST'],
        [`/credentials/${registered.id}`, 'PROPFIND', 'HEAD, GET, PATCH, DELETE'],
      ] as const) {
        // With the key or without: the method is refused before anything else is asked.
        for (const keyUsed of [key, undefined]) {
          const response = await call(app.id, path, { method, key: keyUsed });
          expect({ path, method, status: response.status, json: response.json }).toEqual({
            path,
            method,
            status: 405,
            json: { title: 'Method Not Allowed', details: `${method} is not allowed here`, status: 405 },
          });
          expect(response.headers.get('allow')).toBe(allow);
        }
      }
      // A method on the path of a route with a parameter: /transaction/{user_id} is GET only.
      expect((await call(app.id, '/transaction/nobody', { method: 'PATCH', key })).status).toBe(405);
      // A path the API does not have is unknown whatever the method, as with GET.
      for (const method of ['PUT', 'PROPFIND']) {
        const response = await call(app.id, '/nope', { method, key });
        expect(response).toMatchObject(hankoError(404));
        expect(response.headers.get('allow')).toBeNull();
      }
      expect(await rowsNow()).toEqual(before);
    });

    it('puts an X-Request-Id on every answer, the refusals before the tenant is known included', async () => {
      for (const [tenantId, method, status] of [
        ['00000000-0000-4000-8000-000000000000', 'GET', 404],
        ['not-a-uuid', 'GET', 400],
        [app.id, 'PUT', 405],
        ['not-a-uuid', 'PUT', 405],
        [app.id, 'GET', 401],
      ] as const) {
        const response = await call(tenantId, '/credentials', { method });
        expect({ tenantId, method, status: response.status }).toEqual({ tenantId, method, status });
        expect(response.headers.get('x-request-id')).toMatch(/^[A-Za-z0-9_-]{16,}$/);
      }
      // The caller's own id, when it is a plain one, is echoed on a refusal too.
      const unknown = await call('not-a-uuid', '/credentials', {
        method: 'GET',
        headers: { 'x-request-id': 'req-7' },
      });
      expect(unknown.headers.get('x-request-id')).toBe('req-7');
    });

    it('rejects a replayed registration finalize and a replayed login finalize', async () => {
      const options = await registrationOptions(app, { user_id: 'frank-6', username: 'frank' });
      const response = await new SoftAuthenticator().createCredential(options, APP_ORIGIN);
      expect((await call(app.id, '/registration/finalize', { body: response })).status).toBe(200);
      const afterFirst = await rowsNow();
      expect(await call(app.id, '/registration/finalize', { body: response })).toMatchObject(hankoError(400));

      const assertion = await authenticator.getAssertion(await loginOptions(app), APP_ORIGIN);
      expect((await login(app, assertion)).status).toBe(200);
      const afterLogin = await rowsNow();
      // As Hanko, login/finalize refuses with 401 whatever the reason (it was 400 before).
      expect(await login(app, assertion)).toMatchObject(hankoError(401));
      expect(await rowsNow()).toEqual(afterLogin);
      expect(afterLogin.credentials.length).toBe(afterFirst.credentials.length);
    });

    it("does not accept another tenant's challenge, even for the same RP ID and origin", async () => {
      // Registration: options from the twin tenant, finalized at this one.
      const twinOptions = await registrationOptions(twin, { user_id: 'erin-5', username: 'erin' });
      const response = await new SoftAuthenticator().createCredential(twinOptions, APP_ORIGIN);
      // Login: the twin's challenge signed by a passkey of this tenant.
      const assertion = await authenticator.getAssertion(await loginOptions(twin), APP_ORIGIN);
      const before = await rowsNow();
      expect(await call(app.id, '/registration/finalize', { body: response })).toMatchObject(hankoError(400));
      expect(await login(app, assertion)).toMatchObject(hankoError(401));
      // Refused and left in place: a stranger cannot burn another tenant's challenge.
      expect(await rowsNow()).toEqual(before);
      expect((await call(twin.id, '/registration/finalize', { body: response })).status).toBe(200);
    });

    it('does not accept a passkey registered with another tenant', async () => {
      const before = await rowsNow();
      // Same RP ID, so the signature itself would verify: only the tenant's storage decides.
      const assertion = await authenticator.getAssertion(await loginOptions(twin), APP_ORIGIN);
      expect(assertion.id).toBe(registered.id);
      expect(await login(twin, assertion)).toMatchObject(hankoError(401));
      // Nor can the twin's key see, rename or delete it.
      expect(
        await call(twin.id, `/credentials/${registered.id}`, {
          method: 'PATCH',
          key: twin.apiKey,
          body: { name: 'mine now' },
        }),
      ).toMatchObject(hankoError(404));
      expect(
        await call(twin.id, `/credentials/${registered.id}`, { method: 'DELETE', key: twin.apiKey }),
      ).toMatchObject(hankoError(404));
      expect(
        await call(twin.id, '/credentials?user_id=frank-6', { method: 'GET', key: twin.apiKey }),
      ).toMatchObject({ status: 200, json: [] });
      expect(
        await call(twin.id, `/credentials/${registered.id}`, { method: 'GET', key: twin.apiKey }),
      ).toMatchObject(hankoError(404));
      const after = await rowsNow();
      // Only the twin's login challenge was used up.
      expect({ ...after, challenges: 0 }).toEqual({ ...before, challenges: 0 });
    });

    it('refuses a login by user id with a passkey of another user', async () => {
      const options = await loginOptions(app, 'frank-6');
      const before = await rowsNow();
      // Erin's authenticator answers the challenge issued for Frank.
      const assertion = await authenticator.getAssertion({ ...options, allowCredentials: [] }, APP_ORIGIN);
      expect(await login(app, assertion)).toMatchObject(hankoError(401));
      expect({ ...(await rowsNow()), challenges: 0 }).toEqual({ ...before, challenges: 0 });
    });

    it('refuses a discoverable login whose assertion has no user handle, or names another user', async () => {
      const otherHandle = Buffer.from('frank-6').toString('base64url');
      for (const userHandle of [undefined, otherHandle]) {
        const assertion = await authenticator.getAssertion(await loginOptions(app), APP_ORIGIN);
        const { userHandle: _own, ...rest } = assertion.response;
        const tampered = { ...assertion, response: userHandle ? { ...rest, userHandle } : rest };
        const before = await rowsNow();
        expect(await login(app, tampered)).toMatchObject(hankoError(401));
        expect({ ...(await rowsNow()), challenges: 0 }).toEqual({ ...before, challenges: 0 });
      }
      // The same passkey with its own handle still signs in.
      const assertion = await authenticator.getAssertion(await loginOptions(app), APP_ORIGIN);
      expect((await login(app, assertion)).status).toBe(200);
    });

    it('rejects ceremonies from an origin the tenant does not allow, for another RP ID, or in a cross-origin frame', async () => {
      for (const tamper of [
        { origin: 'https://other.example' },
        { origin: sesame.baseUrl },
        { origin: 'http://app.example' },
        { rpIdHash: 'other.example' },
        // Refused at registration, and so at sign-in (and a transaction's approval) too.
        { crossOrigin: true },
      ]) {
        const options = await registrationOptions(app, { user_id: 'grace-7', username: 'grace' });
        const response = await new SoftAuthenticator().createCredential(options, APP_ORIGIN, tamper);
        const before = await rowsNow();
        expect(await call(app.id, '/registration/finalize', { body: response })).toMatchObject(
          hankoError(400),
        );
        const after = await rowsNow();
        expect(after.credentials).toEqual(before.credentials);

        const assertion = await authenticator.getAssertion(await loginOptions(app), APP_ORIGIN, tamper);
        const beforeLogin = await rowsNow();
        expect(await login(app, assertion)).toMatchObject(hankoError(401));
        expect((await rowsNow()).credentials).toEqual(beforeLogin.credentials);
      }
      // The other domain's tenant cannot use this tenant's RP either.
      const options = await registrationOptions(elsewhere, { user_id: 'grace-7', username: 'grace' });
      const forged = await new SoftAuthenticator().createCredential(
        { ...options, rp: { ...options.rp, id: 'app.example' } },
        APP_ORIGIN,
      );
      expect(await call(elsewhere.id, '/registration/finalize', { body: forged })).toMatchObject(
        hankoError(400),
      );
    });

    it("refuses a body its Content-Encoding does not decode with 400 in Hanko's error shape, and an unknown coding with 415", async () => {
      const before = await rowsNow();
      for (const encoding of ['gzip', 'deflate', 'br']) {
        for (const path of [
          `/passkey-api/${app.id}/login/initialize`,
          `/passkey-api/${app.id}/login/finalize`,
          `/passkey-api/${app.id}/registration/finalize`,
          `/${app.id}/login/initialize`,
        ]) {
          const response = await fetch(`${sesame.baseUrl}${path}`, {
            method: 'POST',
            headers: { 'content-type': 'application/json', 'content-encoding': encoding },
            body: 'garbage',
          });
          expect({ encoding, path, status: response.status }).toEqual({ encoding, path, status: 400 });
          expect(await response.json()).toEqual({
            title: 'unable to process request',
            details: 'The request body could not be decoded as its Content-Encoding says',
            status: 400,
          });
        }
      }
      // A coding the server does not know is 415 for the coding, not for the content type.
      const unknown = await call(app.id, '/login/initialize', {
        raw: '{}',
        headers: { 'content-encoding': 'foo' },
      });
      expect(unknown).toMatchObject(hankoError(415));
      expect(unknown.json.details).toMatch(/Content-Encoding "foo" is not supported/);
      expect(await rowsNow()).toEqual(before);
      // A body that is what its encoding says is read as any other.
      const zipped = await fetch(`${sesame.baseUrl}/passkey-api/${app.id}/login/initialize`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' },
        body: new Uint8Array(gzipSync('{}')),
      });
      expect(zipped.status).toBe(200);
    });

    it('rejects malformed JSON, wrong types, non-JSON bodies and oversized bodies', async () => {
      const before = await rowsNow();
      const key = app.apiKey;
      expect(await call(app.id, '/registration/initialize', { key, raw: '{"user_id":' })).toMatchObject(
        hankoError(400),
      );
      expect(await call(app.id, '/login/initialize', { raw: 'null' })).toMatchObject(hankoError(400));
      expect(await call(app.id, '/login/finalize', { raw: '{"id":' })).toMatchObject(hankoError(400));
      expect(await call(app.id, '/login/finalize', { body: {} })).toMatchObject(hankoError(400));
      const notBase64 = await call(app.id, '/login/finalize', {
        body: {
          id: 'AAAA',
          rawId: 'AAAA',
          type: 'public-key',
          response: { clientDataJSON: 'AAAA', authenticatorData: 'AAAA', signature: 'not base64!' },
        },
      });
      expect(notBase64).toMatchObject(hankoError(400));
      expect(notBase64.json.details).toBe('response.signature: must be base64url');
      expect(
        await call(app.id, '/registration/finalize', { body: { id: 42, type: 'public-key' } }),
      ).toMatchObject(hankoError(400));
      for (const body of [
        { user_id: 42, username: 'x' },
        { user_id: 'x' },
        { user_id: 'x'.repeat(65), username: 'x' },
        { user_id: 'x', username: 'y'.repeat(129) },
        { user_id: 'x', username: 'y', icon: 'javascript:alert(1)' },
        { user_id: 'x', username: 'y', icon: 'data:text/html;base64,PHNjcmlwdD4=' },
        // SVG runs scripts when opened as a document; only raster images are taken.
        { user_id: 'x', username: 'y', icon: 'data:image/svg+xml;base64,PHN2Zz48L3N2Zz4=' },
        { user_id: 'x', username: 'y', icon: 'data:image/png,%89PNG' },
        { user_id: 'x', username: 'y', icon: `data:image/png;base64,${'A'.repeat(8192)}` },
        { user_id: 'x', username: 'y', icon: `https://app.example/${'a'.repeat(2048)}` },
      ]) {
        expect(await call(app.id, '/registration/initialize', { key, body })).toMatchObject(hankoError(400));
      }
      expect(
        await call(app.id, `/credentials/${registered.id}`, { method: 'PATCH', key, body: { name: '' } }),
      ).toMatchObject(hankoError(400));
      expect(await call(app.id, '/credentials?order=up', { method: 'GET', key })).toMatchObject(
        hankoError(400),
      );
      expect(await call(app.id, '/credentials?per_page=x', { method: 'GET', key })).toMatchObject(
        hankoError(400),
      );
      // The finalize calls read any body as JSON (as Hanko does); the others want it said.
      const form = await fetch(`${sesame.baseUrl}/passkey-api/${app.id}/login/initialize`, {
        method: 'POST',
        headers: { 'content-type': 'text/plain' },
        body: JSON.stringify({}),
      });
      expect(form.status).toBe(415);
      expect(await form.json()).toEqual({
        title: expect.any(String),
        details: expect.any(String),
        status: 415,
      });

      const huge = { user_id: 'x', username: 'y', display_name: 'z'.repeat(40 * 1024) };
      expect(await call(app.id, '/registration/initialize', { key, body: huge })).toMatchObject(
        hankoError(413),
      );
      const hugeAssertion = { id: 'x', padding: 'p'.repeat(100 * 1024) };
      expect(await call(app.id, '/login/finalize', { body: hugeAssertion })).toMatchObject(hankoError(413));
      expect(await rowsNow()).toEqual(before);
    });

    it('refuses a login with a user handle longer than 64 bytes with 400, and keeps no unverified long actor in the audit log', async () => {
      const before = await rowsNow();
      /** An assertion for a challenge Sesame never gave, as anyone can send without the API key. */
      const forged = (userHandle: string) => ({
        id: 'AAAA',
        rawId: 'AAAA',
        type: 'public-key',
        response: {
          clientDataJSON: Buffer.from(
            JSON.stringify({
              type: 'webauthn.get',
              challenge: randomBytes(32).toString('base64url'),
              origin: APP_ORIGIN,
            }),
          ).toString('base64url'),
          authenticatorData: 'AAAA',
          signature: 'AAAA',
          userHandle,
        },
      });
      const huge = await login(app, forged(randomBytes(12 * 1024).toString('base64url')) as never);
      expect(huge).toMatchObject(hankoError(400));
      expect(huge.json.details).toMatch(/^response\.userHandle: /);
      // 88 characters (the most a padded 64-byte handle takes) pass the schema; their 66 bytes name no user.
      const long = await login(app, forged(Buffer.from('u'.repeat(66)).toString('base64url')) as never);
      expect(long).toMatchObject(hankoError(401));
      const entries = await sesame.db
        .selectFrom('passkey_tenant_audit_logs')
        .select(['actor_user_id', 'error'])
        .where('tenant_id', '=', app.id)
        .execute();
      for (const entry of entries) {
        expect(Buffer.byteLength(entry.actor_user_id ?? '', 'utf8')).toBeLessThanOrEqual(64);
        expect((entry.error ?? '').length).toBeLessThanOrEqual(512);
      }
      expect(await rowsNow()).toEqual(before);
    });
  });
});

/** Each run of the command opens the database: seconds on a busy machine. */
const CLI_TIMEOUT_MS = 120_000;

describe('sesame passkey-api (the command)', () => {
  let database: TestDatabase;
  let session: CliSession;

  beforeAll(async () => {
    database = await createTestDatabase();
    session = await startCliSession({ ...database.env, LOG_LEVEL: 'silent' });
  });

  afterAll(async () => {
    await session?.close();
    await database?.drop();
  });

  // One process runs the commands in turn (Node and the CLI's imports load once).
  const sesame = (...args: string[]) => session.run(['passkey-api', ...args]);

  it(
    'creates, lists, rotates the key of and deletes a tenant, printing one JSON object',
    async () => {
      const created = await sesame(
        'create',
        '--name',
        'Notes',
        '--origin',
        'https://app.example',
        '--origin',
        'https://www.app.example/',
        '--json',
      );
      expect(created).toMatchObject({ code: 0, stderr: '' });
      expect(linesOf(created.stdout)).toHaveLength(1);
      const { tenant_id, api_key } = JSON.parse(created.stdout);
      expect(tenant_id).toMatch(/^[0-9a-f-]{36}$/);
      expect(api_key).toMatch(/^spk_[A-Za-z0-9_-]{43}$/);

      const listed = await sesame('list', '--json');
      expect(JSON.parse(listed.stdout)).toEqual([
        {
          tenant_id,
          name: 'Notes',
          rp_id: 'app.example',
          origins: ['https://app.example', 'https://www.app.example'],
          // A new tenant has the settings every tenant had before they were settable.
          webauthn: {
            user_verification: 'required',
            attachment: 'none',
            resident_key_requirement: 'required',
            attestation_preference: 'none',
            timeout: 300000,
          },
          mfa: {
            user_verification: 'preferred',
            attachment: 'cross-platform',
            resident_key_requirement: 'discouraged',
            attestation_preference: 'direct',
            timeout: 300000,
          },
          created_at: expect.any(String),
        },
      ]);
      expect(listed.stdout).not.toContain(api_key);

      const rotated = await sesame('rotate-key', tenant_id, '--json');
      const after = JSON.parse(rotated.stdout);
      expect(after.tenant_id).toBe(tenant_id);
      expect(after.api_key).not.toBe(api_key);
      const handle = await openDatabase(configFrom(database.env), { poolSize: 1 });
      try {
        const stored = await passkeyTenantsQueries.findById(handle.db, tenant_id);
        expect(stored!.apiKeyHash).toBe(sha256Hex(after.api_key));
      } finally {
        await handle.close();
      }

      // Without a terminal it deletes only with --yes, as every delete command.
      const unasked = await sesame('delete', tenant_id);
      expect(unasked.code).not.toBe(0);
      expect(JSON.parse((await sesame('list', '--json')).stdout)).toEqual(
        expect.arrayContaining([expect.objectContaining({ tenant_id })]),
      );
      expect((await sesame('delete', tenant_id, '--yes')).code).toBe(0);
      const missing = await sesame('delete', tenant_id, '--yes');
      expect(missing.code).not.toBe(0);
      expect(linesOf(missing.stderr)).toEqual([`sesame: no passkey API tenant with id ${tenant_id}`]);
    },
    CLI_TIMEOUT_MS,
  );

  it(
    'refuses insecure origins and an RP ID that is not a suffix of every origin, in one line',
    async () => {
      for (const [args, message] of [
        [['--origin', 'http://app.example'], /must use https/],
        [['--origin', 'https://app.example/login'], /without a path/],
        [['--origin', 'https://app.example', '--rp-id', 'other.example'], /not a registrable suffix/],
        [
          ['--origin', 'https://a.app.example', '--origin', 'https://b.example', '--rp-id', 'app.example'],
          /suffix/,
        ],
        [['--origin', 'https://app.example', '--rp-id', 'example'], /top-level/],
        [[], /at least one origin/],
        // Android's origin is the unpadded base64url SHA-256: not padded, not keytool's hex.
        [['--origin', `${ANDROID_ORIGIN}=`, '--rp-id', 'app.example'], /apk-key-hash.*base64url/],
        [['--origin', 'android:apk-key-hash:FA:C6:17:45:DC:09', '--rp-id', 'app.example'], /43 characters/],
        // With no web origin there is no host to take the RP ID from.
        [['--origin', ANDROID_ORIGIN], /RP ID is required/],
      ] as const) {
        const result = await sesame('create', '--name', 'Bad', ...args, '--json');
        expect(result.code).not.toBe(0);
        expect(result.stdout).toBe('');
        expect(linesOf(result.stderr)).toHaveLength(1);
        expect(result.stderr).toMatch(message);
      }
      // http is fine for localhost, where browsers allow WebAuthn.
      const local = await sesame('create', '--name', 'Local', '--origin', 'http://localhost:5173', '--json');
      expect(local.code).toBe(0);
      expect(JSON.parse((await sesame('list', '--json')).stdout)[0]).toMatchObject({ rp_id: 'localhost' });
      // An Android app's origin beside the web one, or alone with the RP ID given.
      for (const origins of [
        ['--origin', 'https://app.example', '--origin', ANDROID_ORIGIN],
        ['--origin', ANDROID_ORIGIN, '--rp-id', 'app.example'],
      ]) {
        const android = await sesame('create', '--name', 'Android', ...origins, '--json');
        expect(android).toMatchObject({ code: 0, stderr: '' });
        const { tenant_id } = JSON.parse(android.stdout);
        const listed = JSON.parse((await sesame('list', '--json')).stdout);
        expect(listed.find((t: { tenant_id: string }) => t.tenant_id === tenant_id)).toMatchObject({
          rp_id: 'app.example',
          origins: expect.arrayContaining([ANDROID_ORIGIN]),
        });
      }
    },
    CLI_TIMEOUT_MS,
  );
});

/**
 * The per-IP limit (RATE_LIMIT_PER_MINUTE) counts a call before its tenant is looked up: a
 * caller without the app's key cannot make primary-key lookups without end, for a made-up
 * tenant or with preflights to a real one. The app's server, with its key, keeps its quota
 * per tenant, and is not refused for what others did from its address.
 */
describe("the passkey API's per-IP limit, before the tenant is looked up", () => {
  let sesame: TestApp;
  const noSuchTenant = '00000000-0000-4000-8000-000000000000';

  beforeAll(async () => {
    // Behind a proxy, as in production: X-Forwarded-For names the client.
    sesame = await startTestApp({ RATE_LIMIT_PER_MINUTE: '5', TRUST_PROXY: 'true' });
  });

  afterAll(() => sesame?.stop());

  const callFrom = (
    ip: string,
    tenantId: string,
    init: { method?: string; headers?: Record<string, string> } = {},
  ) =>
    fetch(`${sesame.listenUrl}/passkey-api/${tenantId}/login/initialize`, {
      method: init.method ?? 'POST',
      headers: { 'x-forwarded-for': ip, 'content-type': 'application/json', ...init.headers },
      ...(init.method !== 'OPTIONS' && { body: '{}' }),
    });

  async function statusesOf(count: number, send: () => Promise<Response>): Promise<number[]> {
    const statuses: number[] = [];
    for (let i = 0; i < count; i++) statuses.push((await send()).status);
    return statuses;
  }

  it('refuses 429 past the limit the calls of one address to a tenant that does not exist', async () => {
    expect(await statusesOf(6, () => callFrom('203.0.113.20', noSuchTenant))).toEqual([
      404, 404, 404, 404, 404, 429,
    ]);
    // Hanko's error shape, as every refusal of the API (rateLimit.test.ts checks its Retry-After).
    expect(await (await callFrom('203.0.113.20', noSuchTenant)).json()).toMatchObject({ status: 429 });
    // With a made-up key too: no tenant holds it, so it is counted per IP as a wrong key is.
    const keyed = () => callFrom('203.0.113.21', noSuchTenant, { headers: { apikey: 'spk_made_up' } });
    expect(await statusesOf(6, keyed)).toEqual([404, 404, 404, 404, 404, 429]);
  });

  it("counts preflights to a real tenant per IP, and still serves the app's server, with its key, from an address over the limit", async () => {
    const { tenant, apiKey } = await createTenant(
      sesame.db,
      sesame.config,
      { name: 'Limited app', origins: [APP_ORIGIN] },
      'test',
    );
    const preflight = () =>
      callFrom('203.0.113.22', tenant.id, {
        method: 'OPTIONS',
        headers: { origin: APP_ORIGIN, 'access-control-request-method': 'POST' },
      });
    expect(await statusesOf(6, preflight)).toEqual([204, 204, 204, 204, 204, 429]);
    const served = await statusesOf(3, () =>
      fetch(`${sesame.listenUrl}/passkey-api/${tenant.id}/credentials?user_id=x`, {
        headers: { 'x-forwarded-for': '203.0.113.22', apikey: apiKey },
      }),
    );
    expect(served).toEqual([200, 200, 200]);
  });
});
