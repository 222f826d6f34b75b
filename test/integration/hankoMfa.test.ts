import type { RegistrationResponseJSON } from '@simplewebauthn/server';
import { tenant as hankoTenant, type Tenant } from '@teamhanko/passkeys-sdk';
import * as jose from 'jose';
import { createTenant } from '../../src/passkeyApi/tenants.js';
import { SoftAuthenticator } from '../support/softAuthenticator.js';
import { startTestApp, type TestApp } from '../support/testApp.js';

const APP_ORIGIN = 'https://shop.example';
const KEY_ENCRYPTION_SECRET = 'hanko-mfa-test-key-encryption-secret-0123456789';

interface ApiResponse {
  status: number;
  // biome-ignore lint/suspicious/noExplicitAny: response bodies are checked field by field
  json: any;
}

// The SDK types requests from Hanko's OpenAPI spec; the soft authenticator's JSON is what a browser sends.
// biome-ignore lint/suspicious/noExplicitAny: see above
type SdkCredential = any;

describe("Hanko's MFA calls, driven by Hanko's own SDK (@teamhanko/passkeys-sdk)", () => {
  let sesame: TestApp;
  let tenantId: string;
  let apiKey: string;
  let hanko: Tenant;

  beforeAll(async () => {
    sesame = await startTestApp({ KEY_ENCRYPTION_SECRET });
    const created = await createTenant(
      sesame.db,
      sesame.config,
      { name: 'Shop', origins: [APP_ORIGIN] },
      'test',
    );
    tenantId = created.tenant.id;
    apiKey = created.apiKey;
    hanko = hankoTenant({ baseUrl: `${sesame.baseUrl}/passkey-api/`, apiKey, tenantId });
  });

  afterAll(() => sesame.stop());

  async function call(
    path: string,
    options: { key?: string; body?: unknown; method?: string } = {},
  ): Promise<ApiResponse> {
    const response = await fetch(`${sesame.baseUrl}/passkey-api/${tenantId}${path}`, {
      method: options.method ?? 'POST',
      headers: {
        ...(options.body !== undefined && { 'content-type': 'application/json' }),
        ...(options.key && { apikey: options.key }),
      },
      ...(options.body !== undefined && { body: JSON.stringify(options.body) }),
    });
    const text = await response.text();
    return { status: response.status, json: text ? JSON.parse(text) : undefined };
  }

  /** Verifies a token as the app's backend does, with the JWKS the SDK fetches. */
  async function claimsOf(token: string) {
    const jwks = await hanko.jwks();
    const { payload } = await jose.jwtVerify(token, jose.createLocalJWKSet(jwks as jose.JSONWebKeySet), {
      audience: 'shop.example',
      algorithms: ['RS256'],
    });
    return payload;
  }

  /** A security key registered as the user's second factor through the SDK. */
  async function registerSecurityKey(
    userId: string,
    key: SoftAuthenticator,
  ): Promise<{ token: string; credential: RegistrationResponseJSON }> {
    const { publicKey } = await hanko
      .user(userId)
      .mfa.registration.initialize({ username: `${userId}@shop` });
    const credential = await key.createCredential(publicKey as SdkCredential, APP_ORIGIN);
    const { token } = await hanko.user(userId).mfa.registration.finalize(credential as SdkCredential);
    return { token: token!, credential };
  }

  /** A normal passkey, through the SDK's registration calls. */
  async function registerPasskey(
    userId: string,
    phone: SoftAuthenticator,
  ): Promise<RegistrationResponseJSON> {
    const { publicKey } = await hanko.registration.initialize({ userId, username: `${userId}@shop` });
    const credential = await phone.createCredential(publicKey as SdkCredential, APP_ORIGIN);
    await hanko.registration.finalize(credential as SdkCredential);
    return credential;
  }

  async function mfaLoginOptions(userId: string) {
    return (await hanko.user(userId).mfa.login.initialize()).publicKey as SdkCredential;
  }

  async function credentialRow(id: string) {
    return sesame.db
      .selectFrom('passkey_tenant_credentials')
      .select(['counter', 'last_used_at', 'is_mfa', 'suspected_clone_at'])
      .where('tenant_id', '=', tenantId)
      .where('id', '=', id)
      .executeTakeFirstOrThrow();
  }

  it("registers a security key with Hanko's MFA defaults and lists it with is_mfa: true", async () => {
    const { publicKey } = await hanko.user('ann').mfa.registration.initialize({
      username: 'ann@shop',
      displayName: 'Ann',
    });
    expect(publicKey).toMatchObject({
      rp: { id: 'shop.example', name: 'Shop' },
      user: { id: Buffer.from('ann').toString('base64url'), name: 'ann@shop', displayName: 'Ann' },
      attestation: 'direct',
      authenticatorSelection: {
        authenticatorAttachment: 'cross-platform',
        residentKey: 'discouraged',
        requireResidentKey: false,
        userVerification: 'preferred',
      },
      excludeCredentials: [],
    });
    const key = new SoftAuthenticator();
    const credential = await key.createCredential(publicKey as SdkCredential, APP_ORIGIN);
    const { token } = await hanko.user('ann').mfa.registration.finalize(credential as SdkCredential);
    expect(await claimsOf(token!)).toMatchObject({ sub: 'ann', aud: ['shop.example'], cred: credential.id });

    // Its all-zero AAGUID names no product: it is named as Hanko names any such credential.
    const listed = await hanko.user('ann').credentials();
    expect(listed).toEqual([
      expect.objectContaining({
        id: credential.id,
        name: `cred-${credential.id}`,
        is_mfa: true,
        attestation_type: 'none',
      }),
    ]);

    // A second registration of the same key as a second factor is excluded.
    const again = await hanko.user('ann').mfa.registration.initialize({ username: 'ann@shop' });
    expect(again.publicKey?.excludeCredentials).toEqual([expect.objectContaining({ id: credential.id })]);
  });

  it('names a security key whose AAGUID names a product after that product, and one whose AAGUID is unknown cred-<id>', async () => {
    const named = await registerSecurityKey(
      'abe',
      new SoftAuthenticator({ aaguid: 'ea9b8d66-4d01-1d21-3ce4-b6b48cb575d4' }),
    );
    const unknown = await registerSecurityKey(
      'abe',
      new SoftAuthenticator({ aaguid: 'deadbeef-0000-4000-8000-00000000beef' }),
    );
    const names = Object.fromEntries(
      (await hanko.user('abe').credentials()).map((listed) => [listed.id, listed.name]),
    );
    expect(names).toEqual({
      [named.credential.id]: 'Google Password Manager',
      [unknown.credential.id]: `cred-${unknown.credential.id}`,
    });
  });

  it('signs in with the second factor, offering it without transports, and records its use', async () => {
    const key = new SoftAuthenticator();
    const { credential } = await registerSecurityKey('ben', key);
    const options = await mfaLoginOptions('ben');
    expect(options).toMatchObject({ rpId: 'shop.example', userVerification: 'preferred' });
    expect(options.allowCredentials).toEqual([{ id: credential.id, type: 'public-key' }]);

    const assertion = await key.getAssertion(options, APP_ORIGIN);
    const { token } = await hanko.user('ben').mfa.login.finalize(assertion as SdkCredential);
    expect(await claimsOf(token!)).toMatchObject({ sub: 'ben', cred: credential.id });
    expect(await credentialRow(credential.id)).toMatchObject({
      is_mfa: true,
      last_used_at: expect.any(Date),
    });
    expect(Number((await credentialRow(credential.id)).counter)).toBe(1);
    // The tenant's audit log has each step, under Hanko's names, for the user.
    const audit = await call('/audit_logs?actor_user_id=ben&per_page=100', { key: apiKey, method: 'GET' });
    expect(audit.status).toBe(200);
    expect((audit.json as { type: string }[]).map((entry) => entry.type).sort()).toEqual([
      'mfa_authentication_final_succeeded',
      'mfa_authentication_init_succeeded',
      'mfa_registration_final_succeeded',
      'mfa_registration_init_succeeded',
    ]);
  });

  it('takes a second factor that did not verify the person (user verification is only preferred)', async () => {
    const key = new SoftAuthenticator();
    const { publicKey } = await hanko.user('cat').mfa.registration.initialize({ username: 'cat@shop' });
    const credential = await key.createCredential(publicKey as SdkCredential, APP_ORIGIN, {
      userVerified: false,
    });
    await hanko.user('cat').mfa.registration.finalize(credential as SdkCredential);
    const assertion = await key.getAssertion(await mfaLoginOptions('cat'), APP_ORIGIN, {
      userVerified: false,
    });
    const { token } = await hanko.user('cat').mfa.login.finalize(assertion as SdkCredential);
    expect((await claimsOf(token!)).cred).toBe(credential.id);
    // The normal passkey registration still insists on it.
    const passkey = await hanko.registration.initialize({ userId: 'cat', username: 'cat@shop' });
    const unverified = await new SoftAuthenticator().createCredential(
      passkey.publicKey as SdkCredential,
      APP_ORIGIN,
      {
        userVerified: false,
      },
    );
    const refused = await call('/registration/finalize', { body: unverified });
    expect(refused.status).toBeGreaterThanOrEqual(400);
    expect(refused.status).toBeLessThan(500);
  });

  it('never lets a security key sign in as a passkey', async () => {
    const key = new SoftAuthenticator();
    const phone = new SoftAuthenticator();
    const { credential: mfaKey } = await registerSecurityKey('dan', key);
    // With only a security key, a login naming the user has no passkey to offer: refused,
    // where an empty allowCredentials would have let the browser offer any passkey.
    expect(await call('/login/initialize', { key: apiKey, body: { user_id: 'dan' } })).toEqual({
      status: 400,
      json: { title: 'user has no suitable credentials for this operation', details: '', status: 400 },
    });
    const passkey = await registerPasskey('dan', phone);

    // By user id, only the passkey is offered.
    const byId = await call('/login/initialize', { key: apiKey, body: { user_id: 'dan' } });
    expect(byId.status).toBe(200);
    expect(byId.json.publicKey.allowCredentials.map((c: { id: string }) => c.id)).toEqual([passkey.id]);

    // Discoverable: the key answers, and Sesame refuses it as Hanko does (401).
    const before = await credentialRow(mfaKey.id);
    const discoverable = (await hanko.login.initialize()).publicKey as SdkCredential;
    const refused = await call('/login/finalize', { body: await key.getAssertion(discoverable, APP_ORIGIN) });
    expect(refused).toMatchObject({ status: 401, json: { status: 401 } });
    await expect(
      hanko.login.finalize((await key.getAssertion(discoverable, APP_ORIGIN)) as SdkCredential),
    ).rejects.toThrow();
    expect(await credentialRow(mfaKey.id)).toEqual(before);

    // Named and answered with the key anyway (the app's page lists it itself): refused too.
    const named = await key.getAssertion(byId.json.publicKey, APP_ORIGIN, { credentialId: mfaKey.id });
    expect((await call('/login/finalize', { body: named })).status).toBe(401);

    // The passkey still signs in normally.
    const ok = await hanko.login.finalize(
      (await phone.getAssertion(
        (
          await hanko.login.initialize()
        ).publicKey as SdkCredential,
        APP_ORIGIN,
      )) as SdkCredential,
    );
    expect((await claimsOf(ok.token!)).cred).toBe(passkey.id);
  });

  it("lets the user's passkey answer an MFA login too, as Hanko's server does", async () => {
    const key = new SoftAuthenticator();
    const phone = new SoftAuthenticator();
    const { credential: mfaKey } = await registerSecurityKey('eve', key);
    const passkey = await registerPasskey('eve', phone);
    const options = await mfaLoginOptions('eve');
    expect(options.allowCredentials.map((c: { id: string }) => c.id).sort()).toEqual(
      [mfaKey.id, passkey.id].sort(),
    );
    const { token } = await hanko
      .user('eve')
      .mfa.login.finalize((await phone.getAssertion(options, APP_ORIGIN)) as SdkCredential);
    expect(await claimsOf(token!)).toMatchObject({ sub: 'eve', cred: passkey.id });
  });

  it('refuses a replayed MFA login or registration, and a challenge of another ceremony', async () => {
    const key = new SoftAuthenticator();
    const { credential } = await registerSecurityKey('fay', key);
    const assertion = await key.getAssertion(await mfaLoginOptions('fay'), APP_ORIGIN);
    expect((await call('/mfa/login/finalize', { key: apiKey, body: assertion })).status).toBe(200);
    // In Hanko's words, as its login service answers an unknown or used challenge.
    const replay = await call('/mfa/login/finalize', { key: apiKey, body: assertion });
    expect(replay).toEqual({
      status: 401,
      json: {
        title: 'failed to get session data',
        details: 'received challenge does not match with any stored one',
        status: 401,
      },
    });
    await expect(hanko.user('fay').mfa.login.finalize(assertion as SdkCredential)).rejects.toThrow();

    // The registration response a second time: its challenge is gone (Hanko: 400).
    const second = new SoftAuthenticator();
    const { publicKey } = await hanko.user('fay').mfa.registration.initialize({ username: 'fay@shop' });
    const created = await second.createCredential(publicKey as SdkCredential, APP_ORIGIN);
    expect((await call('/mfa/registration/finalize', { key: apiKey, body: created })).status).toBe(200);
    expect(await call('/mfa/registration/finalize', { key: apiKey, body: created })).toEqual({
      status: 400,
      json: { title: 'received challenge does not match with any stored one', details: '', status: 400 },
    });

    // A passkey login challenge does not finish an MFA login, nor the reverse.
    const passkeyChallenge = (await hanko.login.initialize()).publicKey as SdkCredential;
    const crossed = await key.getAssertion(
      { ...passkeyChallenge, allowCredentials: [{ id: credential.id, type: 'public-key' }] },
      APP_ORIGIN,
    );
    expect(await call('/mfa/login/finalize', { key: apiKey, body: crossed })).toMatchObject({
      status: 401,
      json: { title: 'failed to get session data' },
    });
    const mfaChallenge = await key.getAssertion(await mfaLoginOptions('fay'), APP_ORIGIN);
    const reverse = await call('/login/finalize', { body: mfaChallenge });
    expect(reverse.status).toBeGreaterThanOrEqual(400);
    expect(reverse.status).toBeLessThan(500);
    // A passkey registration challenge does not finish an MFA registration.
    const passkeyRegistration = await hanko.registration.initialize({ userId: 'fay', username: 'fay@shop' });
    const viaMfa = await new SoftAuthenticator().createCredential(
      passkeyRegistration.publicKey as SdkCredential,
      APP_ORIGIN,
    );
    expect((await call('/mfa/registration/finalize', { key: apiKey, body: viaMfa })).status).toBe(400);
    // Each refusal is in the audit log as a failed step, with why.
    const failed = await call('/audit_logs?type=mfa_authentication_final_failed&per_page=100', {
      key: apiKey,
      method: 'GET',
    });
    expect(failed.json).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          error: 'failed to get session data: received challenge does not match with any stored one',
        }),
      ]),
    );
    expect((failed.json as unknown[]).length).toBeGreaterThanOrEqual(2);
    const refusedRegistrations = await call('/audit_logs?type=mfa_registration_final_failed&per_page=100', {
      key: apiKey,
      method: 'GET',
    });
    expect((refusedRegistrations.json as unknown[]).length).toBeGreaterThanOrEqual(2);
  });

  it("refuses another user's security key at the MFA login", async () => {
    const gusKey = new SoftAuthenticator();
    const halKey = new SoftAuthenticator();
    await registerSecurityKey('gus', gusKey);
    const { credential: halCredential } = await registerSecurityKey('hal', halKey);
    const forGus = await mfaLoginOptions('gus');
    const halAnswers = await halKey.getAssertion({ ...forGus, allowCredentials: [] }, APP_ORIGIN);
    expect(halAnswers.id).toBe(halCredential.id);
    expect(await call('/mfa/login/finalize', { key: apiKey, body: halAnswers })).toMatchObject({
      status: 401,
      json: { title: 'failed to validate assertion', details: expect.any(String), status: 401 },
    });
  });

  it('blocks a second factor whose counter did not increase on a good signature, as the passkey login does', async () => {
    const key = new SoftAuthenticator();
    const { credential } = await registerSecurityKey('kim', key);
    const first = await key.getAssertion(await mfaLoginOptions('kim'), APP_ORIGIN);
    expect((await call('/mfa/login/finalize', { key: apiKey, body: first })).status).toBe(200);
    const blocked = {
      status: 401,
      json: {
        title: 'failed to validate assertion',
        details: 'This passkey has been blocked. Sign in with another passkey or recover your account.',
      },
    };
    for (const signCount of [1, 1000]) {
      const cloned = await key.getAssertion(await mfaLoginOptions('kim'), APP_ORIGIN, { signCount });
      expect(await call('/mfa/login/finalize', { key: apiKey, body: cloned })).toMatchObject(blocked);
    }
    const row = await credentialRow(credential.id);
    expect(Number(row.counter)).toBe(1);
    expect(row.suspected_clone_at).toBeInstanceOf(Date);
  });

  it("answers bodies that are no credential in Hanko's words", async () => {
    expect(await call('/mfa/login/finalize', { key: apiKey, body: { id: 7 } })).toMatchObject({
      status: 400,
      json: { title: 'unable to finish login', details: expect.any(String), status: 400 },
    });
    expect(await call('/mfa/registration/finalize', { key: apiKey, body: { id: 7 } })).toMatchObject({
      status: 400,
      json: { title: 'unable to parse credential creation response', status: 400 },
    });
  });

  it('answers bad MFA login requests as Hanko does: 400 without user_id, 404 unknown user, 400 without credentials', async () => {
    // A body that breaks a rule is Hanko's "unable to validate request", as at the other initialize calls.
    for (const [path, body] of [
      ['/mfa/login/initialize', {}],
      ['/mfa/registration/initialize', { user_id: 'x' }],
    ] as const) {
      expect(await call(path, { key: apiKey, body })).toMatchObject({
        status: 400,
        json: { title: 'unable to validate request' },
      });
    }
    expect((await call('/mfa/login/initialize', { key: apiKey, body: { user_id: '' } })).status).toBe(400);
    expect((await call('/mfa/login/initialize', { key: apiKey, body: { user_id: 7 } })).status).toBe(400);
    expect(await call('/mfa/login/initialize', { key: apiKey, body: { user_id: 'nobody' } })).toEqual({
      status: 404,
      json: { title: 'user not found', details: '', status: 404 },
    });
    // A user the app started registering but who never finished has no credentials.
    await hanko.user('ivy').mfa.registration.initialize({ username: 'ivy@shop' });
    expect(await call('/mfa/login/initialize', { key: apiKey, body: { user_id: 'ivy' } })).toEqual({
      status: 400,
      json: { title: 'user has no suitable credentials for this operation', details: '', status: 400 },
    });
    await expect(hanko.user('nobody').mfa.login.initialize()).rejects.toThrow(/404/);
  });

  it('requires the API key on every MFA call', async () => {
    const keyless = hankoTenant({ baseUrl: `${sesame.baseUrl}/passkey-api`, apiKey: 'spk_wrong', tenantId });
    await expect(keyless.user('ann').mfa.registration.initialize({ username: 'ann@shop' })).rejects.toThrow(
      /401/,
    );
    await expect(keyless.user('ann').mfa.login.initialize()).rejects.toThrow(/401/);
    for (const path of [
      '/mfa/registration/initialize',
      '/mfa/registration/finalize',
      '/mfa/login/initialize',
      '/mfa/login/finalize',
    ]) {
      expect((await call(path, { body: { user_id: 'ann', username: 'ann@shop' } })).status).toBe(401);
    }
    // Nothing is registered for a user a keyless call names.
    expect(
      await call('/mfa/registration/initialize', { body: { user_id: 'zed', username: 'zed' } }),
    ).toMatchObject({
      status: 401,
    });
    const users = await sesame.db
      .selectFrom('passkey_tenant_users')
      .select('user_id')
      .where('tenant_id', '=', tenantId)
      .where('user_id', '=', 'zed')
      .execute();
    expect(users).toEqual([]);
  });
});
