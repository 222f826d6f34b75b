import type {
  AuthenticationResponseJSON,
  PublicKeyCredentialCreationOptionsJSON,
  PublicKeyCredentialRequestOptionsJSON,
  RegistrationResponseJSON,
} from '@simplewebauthn/server';
import { tenant as hankoTenant } from '@teamhanko/passkeys-sdk';
import * as jose from 'jose';
import { createTenant } from '../../src/passkeyApi/tenants.js';
import { SoftAuthenticator } from '../support/softAuthenticator.js';
import { startTestApp, type TestApp } from '../support/testApp.js';

const APP_ORIGIN = 'https://app.example';

interface TestTenant {
  id: string;
  apiKey: string;
}

interface ApiResponse {
  status: number;
  headers: Headers;
  // biome-ignore lint/suspicious/noExplicitAny: response bodies are checked field by field
  json: any;
}

// The SDK's request bodies are typed from Hanko's OpenAPI spec; the software authenticator's
// JSON is the same data, typed by SimpleWebAuthn.
// biome-ignore lint/suspicious/noExplicitAny: see above
const asSdkBody = (value: RegistrationResponseJSON | AuthenticationResponseJSON): any => value;

describe("Hanko's passkey SDK (@teamhanko/passkeys-sdk 0.2.1) against Sesame", () => {
  let sesame: TestApp;

  beforeAll(async () => {
    sesame = await startTestApp();
  });

  afterAll(() => sesame.stop());

  async function makeTenant(name: string): Promise<TestTenant> {
    const { tenant, apiKey } = await createTenant(
      sesame.db,
      sesame.config,
      { name, origins: [APP_ORIGIN] },
      'test',
    );
    return { id: tenant.id, apiKey };
  }

  /** Calls `${ISSUER}/passkey-api/{tenant}{path}` over HTTP. */
  async function call(
    tenant: TestTenant,
    path: string,
    options: { method?: string; key?: string; body?: unknown; headers?: Record<string, string> } = {},
  ): Promise<ApiResponse> {
    const response = await fetch(`${sesame.baseUrl}/passkey-api/${tenant.id}${path}`, {
      method: options.method ?? (options.body === undefined ? 'GET' : 'POST'),
      headers: {
        ...(options.body !== undefined && { 'content-type': 'application/json' }),
        ...(options.key && { apikey: options.key }),
        ...options.headers,
      },
      ...(options.body !== undefined && { body: JSON.stringify(options.body) }),
    });
    const text = await response.text();
    return { status: response.status, headers: response.headers, json: text ? JSON.parse(text) : undefined };
  }

  /** Verifies a token as Hanko's next-auth provider does: the tenant's JWKS, URL built with `new URL`. */
  async function verifyAsNextAuthProvider(tenantId: string, baseUrl: string, token: string) {
    const jwks = jose.createRemoteJWKSet(new URL(`${tenantId}/.well-known/jwks.json`, baseUrl));
    return (await jose.jwtVerify(token, jwks)).payload;
  }

  describe('every SDK call, with the base URL written three ways', () => {
    const forms = [
      ['…/passkey-api/ (documented, trailing slash)', (base: string) => `${base}/passkey-api/`],
      ['…/passkey-api (no trailing slash)', (base: string) => `${base}/passkey-api`],
      ["the server's root, Hanko's own layout", (base: string) => base],
    ] as const;

    it.each(forms)('registers, signs in, lists, removes and publishes keys with %s', async (_, baseUrlOf) => {
      const app = await makeTenant('SDK app');
      const baseUrl = baseUrlOf(sesame.baseUrl);
      const passkeyApi = hankoTenant({ tenantId: app.id, apiKey: app.apiKey, baseUrl });
      const phone = new SoftAuthenticator();

      // A user with no passkeys yet: the "manage passkeys" page lists none (Hanko: 200 []).
      expect(await passkeyApi.user('ada').credentials()).toEqual([]);

      const creation = await passkeyApi.registration.initialize({
        userId: 'ada',
        username: 'ada@app.example',
      });
      const credential = await phone.createCredential(
        creation.publicKey as unknown as PublicKeyCredentialCreationOptionsJSON,
        APP_ORIGIN,
      );
      const registered = await passkeyApi.registration.finalize(asSdkBody(credential));
      expect(
        await verifyAsNextAuthProvider(app.id, `${sesame.baseUrl}/passkey-api/`, registered.token!),
      ).toMatchObject({
        sub: 'ada',
        cred: credential.id,
      });

      const request = await passkeyApi.login.initialize();
      const assertion = await phone.getAssertion(
        request.publicKey as unknown as PublicKeyCredentialRequestOptionsJSON,
        APP_ORIGIN,
      );
      const signedIn = await passkeyApi.login.finalize(asSdkBody(assertion));
      const jwks = await passkeyApi.jwks();
      const { payload } = await jose.jwtVerify(
        signedIn.token!,
        jose.createLocalJWKSet(jwks as jose.JSONWebKeySet),
      );
      expect(payload).toMatchObject({ sub: 'ada', aud: ['app.example'], cred: credential.id });

      const listed = await passkeyApi.user('ada').credentials();
      expect(listed).toEqual([
        expect.objectContaining({
          id: credential.id,
          user_id: 'ada',
          is_mfa: false,
          last_used_at: expect.any(String),
        }),
      ]);

      await passkeyApi.credential(credential.id).remove();
      expect(await passkeyApi.user('ada').credentials()).toEqual([]);
      await expect(passkeyApi.credential(credential.id).remove()).rejects.toThrow(/404/);
    });

    it.each([
      ['with', `/passkey-api/`],
      ['without', `/passkey-api`],
    ])(
      "signs in the way Hanko's next-auth provider builds its URLs, base URL %s the trailing slash",
      async (_, suffix) => {
        const app = await makeTenant('next-auth app');
        const baseUrl = `${sesame.baseUrl}${suffix}`;
        const phone = new SoftAuthenticator();
        const passkeyApi = hankoTenant({ tenantId: app.id, apiKey: app.apiKey, baseUrl });
        const creation = await passkeyApi.registration.initialize({ userId: 'bo', username: 'bo' });
        await passkeyApi.registration.finalize(
          asSdkBody(
            await phone.createCredential(
              creation.publicKey as unknown as PublicKeyCredentialCreationOptionsJSON,
              APP_ORIGIN,
            ),
          ),
        );

        // apiClientFirstLogin: both calls with `new URL(`${tenantId}/login/...`, baseUrl)`, no key.
        const headers = { 'Content-Type': 'application/json' };
        const options = await fetch(new URL(`${app.id}/login/initialize`, baseUrl), {
          method: 'POST',
          headers,
        }).then((res) => res.json());
        const assertion = await phone.getAssertion(options.publicKey, APP_ORIGIN);
        const { token } = await fetch(new URL(`${app.id}/login/finalize`, baseUrl), {
          method: 'POST',
          headers,
          body: JSON.stringify(assertion),
        }).then((res) => res.json());
        // The provider's authorize(): JWKS from `new URL(`${tenantId}/.well-known/jwks.json`, baseUrl)`.
        expect((await verifyAsNextAuthProvider(app.id, baseUrl, token)).sub).toBe('bo');
      },
    );
  });

  describe('the calls the SDK does not make, over HTTP', () => {
    let app: TestTenant;
    let other: TestTenant;
    const phones = new Map<string, SoftAuthenticator>();
    /** Credential ids in the order they were registered. */
    const registered: string[] = [];

    async function register(tenant: TestTenant, userId: string, authenticator = new SoftAuthenticator()) {
      const init = await call(tenant, '/registration/initialize', {
        key: tenant.apiKey,
        body: { user_id: userId, username: userId },
      });
      const credential = await authenticator.createCredential(init.json.publicKey, APP_ORIGIN);
      const finalize = await call(tenant, '/registration/finalize', { body: credential });
      expect(finalize.status).toBe(200);
      return credential;
    }

    beforeAll(async () => {
      app = await makeTenant('Paged app');
      other = await makeTenant('Other app');
      for (const userId of ['u1', 'u2', 'u1', 'u3', 'u2']) {
        const phone = new SoftAuthenticator();
        phones.set(userId, phone);
        registered.push((await register(app, userId, phone)).id);
        // created_at orders the list: keep the five apart.
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      await register(other, 'u1');
    });

    it("lists all of the tenant's passkeys newest first, 20 a page, with Link and X-Total-Count as Hanko", async () => {
      const all = await call(app, '/credentials', { key: app.apiKey });
      expect(all.status).toBe(200);
      expect(all.json.map((c: { id: string }) => c.id)).toEqual([...registered].reverse());
      expect(all.headers.get('x-total-count')).toBe('5');
      const base = `${sesame.baseUrl}/passkey-api/${app.id}/credentials`;
      expect(all.headers.get('link')).toBe(`<${base}?page=1&per_page=20>; rel="first"`);

      const first = await call(app, '/credentials?per_page=2', { key: app.apiKey });
      expect(first.json.map((c: { id: string }) => c.id)).toEqual([registered[4], registered[3]]);
      expect(first.headers.get('link')).toBe(
        `<${base}?page=3&per_page=2>; rel="last",<${base}?page=2&per_page=2>; rel="next"`,
      );
      const middle = await call(app, '/credentials?per_page=2&page=2&order=asc', { key: app.apiKey });
      expect(middle.json.map((c: { id: string }) => c.id)).toEqual([registered[2], registered[3]]);
      expect(middle.headers.get('link')).toBe(
        [
          `<${base}?order=asc&page=1&per_page=2>; rel="first"`,
          `<${base}?order=asc&page=3&per_page=2>; rel="last"`,
          `<${base}?order=asc&page=3&per_page=2>; rel="next"`,
          `<${base}?order=asc&page=1&per_page=2>; rel="prev"`,
        ].join(','),
      );
      const u1 = await call(app, '/credentials?user_id=u1', { key: app.apiKey });
      expect(u1.json.map((c: { id: string }) => c.id)).toEqual([registered[2], registered[0]]);
      expect(u1.headers.get('x-total-count')).toBe('2');
      // Page 0 and per_page 0 read as "not given", as Hanko's handler reads them.
      const zero = await call(app, '/credentials?page=0&per_page=0', { key: app.apiKey });
      expect(zero.json).toHaveLength(5);
    });

    it("reads the list queries as Hanko's binding does: empty order is the default, refusals in its words", async () => {
      // Hanko's ListCredentialsDto is `omitempty,oneof=desc asc`: `order=` lists newest first.
      const empty = await call(app, '/credentials?order=&user_id=u1', { key: app.apiKey });
      expect(empty.status).toBe(200);
      expect(empty.json.map((c: { id: string }) => c.id)).toEqual([registered[2], registered[0]]);

      // A parameter given twice counts once, the first, as echo binds it.
      const twice = await call(app, '/credentials?user_id=u1&user_id=u2&per_page=1&per_page=50', {
        key: app.apiKey,
      });
      expect(twice.status).toBe(200);
      expect(twice.json.map((c: { id: string }) => c.id)).toEqual([registered[2]]);
      expect(twice.headers.get('x-total-count')).toBe('2');
      const auditTwice = await call(
        app,
        '/audit_logs?per_page=1&per_page=50&actor_user_id=u1&actor_user_id=u2',
        {
          key: app.apiKey,
        },
      );
      expect(auditTwice.status).toBe(200);
      expect(auditTwice.json).toEqual([expect.objectContaining({ actor_user_id: 'u1' })]);

      // A name not given exactly is found ignoring case, as echo binds it: not read as no filter.
      const shouted = await call(app, '/credentials?USER_ID=u1&Order=asc', { key: app.apiKey });
      expect(shouted.status).toBe(200);
      expect(shouted.json.map((c: { id: string }) => c.id)).toEqual([registered[0], registered[2]]);

      // A value the binding cannot read is "unable to process request", a broken rule
      // "unable to validate request"; the audit log handler says "unable to list audit logs".
      for (const query of ['page=abc', 'per_page=1.5', 'page=1e3', 'page=%205', 'per_page=0x10']) {
        expect(await call(app, `/credentials?${query}`, { key: app.apiKey })).toMatchObject({
          status: 400,
          json: { title: 'unable to process request', status: 400 },
        });
      }
      expect(await call(app, '/credentials?order=sideways', { key: app.apiKey })).toMatchObject({
        status: 400,
        json: { title: 'unable to validate request', status: 400 },
      });
      for (const query of ['page=abc', 'start_time=yesterday']) {
        expect(await call(app, `/audit_logs?${query}`, { key: app.apiKey })).toMatchObject({
          status: 400,
          json: { title: 'unable to list audit logs', details: expect.any(String), status: 400 },
        });
      }
    });

    it('shows one passkey by id, only to its tenant', async () => {
      const shown = await call(app, `/credentials/${registered[0]}`, { key: app.apiKey });
      expect(shown.status).toBe(200);
      expect(Object.keys(shown.json)).toEqual([
        'id',
        'name',
        'public_key',
        'attestation_type',
        'aaguid',
        'last_used_at',
        'created_at',
        'transports',
        'backup_eligible',
        'backup_state',
        'is_mfa',
        'user_id',
      ]);
      expect(shown.json).toMatchObject({ id: registered[0], user_id: 'u1', is_mfa: false });
      expect(shown.json.last_used_at).toBe(shown.json.created_at);
      expect(await call(other, `/credentials/${registered[0]}`, { key: other.apiKey })).toMatchObject({
        status: 404,
        json: { title: `credential with id '${registered[0]}' not found`, details: '', status: 404 },
      });
      expect((await call(app, `/credentials/${registered[0]}`)).status).toBe(401);
    });

    it("answers errors in Hanko's words: title the message, details the cause", async () => {
      expect(await call(app, '/credentials', { key: 'spk_wrong' })).toMatchObject({
        status: 401,
        json: { title: 'The api key is invalid', details: expect.any(String), status: 401 },
      });
      expect(await call(app, '/login/initialize', { body: { user_id: 'u1' } })).toMatchObject({
        status: 401,
        json: { title: 'api key is missing', status: 401 },
      });
      expect(
        await call(app, '/login/initialize', { key: app.apiKey, body: { user_id: 'nobody' } }),
      ).toMatchObject({
        status: 404,
        json: { title: 'user not found', status: 404 },
      });
      expect(
        await call({ ...app, id: '00000000-0000-4000-8000-000000000000' }, '/.well-known/jwks.json'),
      ).toMatchObject({ status: 404, json: { title: 'tenant not found', details: '', status: 404 } });
      expect(
        await call(app, '/registration/initialize', { key: app.apiKey, body: { user_id: 'x' } }),
      ).toMatchObject({
        status: 400,
        json: {
          title: 'unable to validate request',
          details: expect.stringContaining('username'),
          status: 400,
        },
      });
      // A member of the wrong JSON type fails Hanko's binding, before any rule is checked.
      // Anywhere in the body: a missing member found first does not hide it.
      for (const body of [
        { user_id: 5, username: 'x' },
        { user_id: 'x', username: ['x'] },
        [],
        { username: 5 },
        { user_id: '', username: 'a', display_name: 5 },
        { user_id: 'u1', USERNAME: 5 },
      ]) {
        expect(await call(app, '/registration/initialize', { key: app.apiKey, body })).toMatchObject({
          status: 400,
          json: { title: 'unable to process request', status: 400 },
        });
      }
      expect(
        await call(app, '/login/initialize', { key: app.apiKey, body: { user_id: { id: 'u1' } } }),
      ).toMatchObject({ status: 400, json: { title: 'unable to process request' } });
      // A member's name in another case is the member, as Go's encoding/json reads it.
      const shouted = await call(app, '/registration/initialize', {
        key: app.apiKey,
        body: { User_ID: 'u9', Username: 'nine@app.example', DISPLAY_NAME: 'Nine' },
      });
      expect(shouted.status).toBe(200);
      expect(shouted.json.publicKey.user).toMatchObject({ name: 'nine@app.example', displayName: 'Nine' });
      expect(
        await call(app, '/registration/initialize', {
          key: app.apiKey,
          body: { user_id: null, username: 'x' },
        }),
      ).toMatchObject({ status: 400, json: { title: 'unable to validate request' } });

      // login/finalize: 401 for a challenge Sesame never issued and for a bad signature.
      const phone = phones.get('u3')!;
      const options = (await call(app, '/login/initialize', { body: {} })).json.publicKey;
      const forged = await phone.getAssertion({ ...options, challenge: 'bm90LWlzc3VlZA' }, APP_ORIGIN);
      expect(await call(app, '/login/finalize', { body: forged })).toMatchObject({
        status: 401,
        json: {
          title: 'failed to get session data',
          details: 'received challenge does not match with any stored one',
          status: 401,
        },
      });
      const badSignature = await phone.getAssertion(options, APP_ORIGIN, { badSignature: true });
      expect(await call(app, '/login/finalize', { body: badSignature })).toMatchObject({
        status: 401,
        json: { title: 'failed to validate assertion', status: 401 },
      });
    });

    it('answers 422 for a registration without user verification, and stores nothing', async () => {
      const init = await call(app, '/registration/initialize', {
        key: app.apiKey,
        body: { user_id: 'safari', username: 'safari' },
      });
      const credential = await new SoftAuthenticator().createCredential(init.json.publicKey, APP_ORIGIN, {
        userVerified: false,
      });
      const refused = await call(app, '/registration/finalize', { body: credential });
      expect(refused).toMatchObject({
        status: 422,
        json: {
          title: expect.stringMatching(/^failed to validate attestation: .*User verification/),
          status: 422,
        },
      });
      expect((await call(app, '/credentials?user_id=safari', { key: app.apiKey })).json).toEqual([]);
      // Any other fault stays 400.
      const again = await call(app, '/registration/initialize', {
        key: app.apiKey,
        body: { user_id: 'safari', username: 'safari' },
      });
      const elsewhere = await new SoftAuthenticator().createCredential(again.json.publicKey, APP_ORIGIN, {
        userVerified: false,
        origin: 'https://evil.example',
      });
      expect(await call(app, '/registration/finalize', { body: elsewhere })).toMatchObject({
        status: 400,
        json: { title: 'failed to validate attestation' },
      });
    });

    it('accepts JSON null for userHandle and authenticatorAttachment, as @github/webauthn-json sends them', async () => {
      const init = await call(app, '/registration/initialize', {
        key: app.apiKey,
        body: { user_id: 'nulls', username: 'nulls' },
      });
      const phone = new SoftAuthenticator();
      const credential = await phone.createCredential(init.json.publicKey, APP_ORIGIN);
      const withNulls = {
        ...credential,
        authenticatorAttachment: null,
        clientExtensionResults: null,
        response: { ...credential.response, transports: null },
      };
      expect((await call(app, '/registration/finalize', { body: withNulls })).status).toBe(200);

      // Login naming the user: the user handle may be null, as the browser reports it.
      const byId = await call(app, '/login/initialize', { key: app.apiKey, body: { user_id: 'nulls' } });
      // As Hanko: no transports in allowCredentials.
      expect(byId.json.publicKey.allowCredentials).toEqual([{ id: credential.id, type: 'public-key' }]);
      const assertion = await phone.getAssertion(byId.json.publicKey, APP_ORIGIN);
      const nullHandle = {
        ...assertion,
        authenticatorAttachment: null,
        response: { ...assertion.response, userHandle: null },
      };
      const signedIn = await call(app, '/login/finalize', { body: nullHandle });
      expect(signedIn.status).toBe(200);
      expect(jose.decodeJwt(signedIn.json.token).sub).toBe('nulls');

      // Usernameless, the handle is what names the user: null there is refused (401, as Hanko).
      const discoverable = await call(app, '/login/initialize', { body: {} });
      const anonymous = await phone.getAssertion(discoverable.json.publicKey, APP_ORIGIN);
      expect(
        await call(app, '/login/finalize', {
          body: { ...anonymous, response: { ...anonymous.response, userHandle: null } },
        }),
      ).toMatchObject({ status: 401 });
    });

    it('publishes the JWKS with use, alg and kid, cached ten minutes as Hanko', async () => {
      const jwks = await call(app, '/.well-known/jwks.json');
      expect(jwks.headers.get('cache-control')).toBe('max-age=600');
      expect(jwks.json.keys).toEqual([
        { kty: 'RSA', n: expect.any(String), e: 'AQAB', kid: expect.any(String), alg: 'RS256', use: 'sig' },
      ]);
    });

    it("keeps an audit log of the tenant's ceremonies and credential changes, filtered as Hanko's", async () => {
      const phone = phones.get('u3')!;
      const refusedOptions = (await call(app, '/login/initialize', { body: {} })).json.publicKey;
      const refused = await phone.getAssertion(refusedOptions, APP_ORIGIN, { badSignature: true });
      expect((await call(app, '/login/finalize', { body: refused })).status).toBe(401);
      const options = (
        await call(app, '/login/initialize', { body: {}, headers: { 'x-request-id': 'req-42' } })
      ).json.publicKey;
      const signedIn = await call(app, '/login/finalize', {
        body: await phone.getAssertion(options, APP_ORIGIN),
        headers: { 'user-agent': 'audit-test' },
      });
      expect(signedIn.status).toBe(200);
      expect(signedIn.headers.get('x-request-id')).toMatch(/^[A-Za-z0-9_-]{16,}$/);
      const renamed = await call(app, `/credentials/${registered[3]}`, {
        method: 'PATCH',
        key: app.apiKey,
        body: { name: 'Laptop' },
      });
      expect(renamed.status).toBe(204);

      const page = await call(app, '/audit_logs?per_page=3', { key: app.apiKey });
      expect(page.status).toBe(200);
      expect(page.json.map((e: { type: string }) => e.type)).toEqual([
        'webauthn_credential_updated',
        'webauthn_authentication_final_succeeded',
        'webauthn_authentication_init_succeeded',
      ]);
      expect(page.json[0]).toEqual({
        id: expect.any(String),
        type: 'webauthn_credential_updated',
        meta_http_request_id: expect.any(String),
        meta_source_ip: '127.0.0.1',
        meta_user_agent: expect.any(String),
        actor_user_id: 'u3',
        created_at: expect.any(String),
        updated_at: expect.any(String),
        tenant_id: app.id,
        transaction_id: null,
      });
      expect(page.json[1]).toMatchObject({ actor_user_id: 'u3', meta_user_agent: 'audit-test' });
      expect(page.json[2]).toMatchObject({ meta_http_request_id: 'req-42' });
      expect(page.json[2].actor_user_id).toBeUndefined();
      const total = Number(page.headers.get('x-total-count'));
      expect(total).toBeGreaterThan(10);
      expect(page.headers.get('link')).toContain('rel="next"');

      const types = ['webauthn_registration_final_succeeded', 'webauthn_authentication_final_failed'];
      const byType = await call(app, `/audit_logs?type=${types[0]}&type=${types[1]}&per_page=100`, {
        key: app.apiKey,
      });
      // Five registrations in beforeAll (more when the other tests ran); the refusal above.
      expect(byType.json.filter((e: { type: string }) => e.type === types[0]).length).toBeGreaterThanOrEqual(
        5,
      );
      expect(byType.json.every((e: { type: string }) => types.includes(e.type))).toBe(true);
      const failed = byType.json.find((e: { type: string }) => e.type === types[1]);
      expect(failed).toMatchObject({
        actor_user_id: 'u3',
        error: expect.stringMatching(/^failed to validate assertion/),
      });

      const byActor = await call(app, '/audit_logs?actor_user_id=u2&per_page=100', { key: app.apiKey });
      expect(byActor.json.length).toBeGreaterThan(0);
      expect(byActor.json.every((e: { actor_user_id: string }) => e.actor_user_id.includes('u2'))).toBe(true);
      const byQuery = await call(app, '/audit_logs?q=127.0.0&per_page=1', { key: app.apiKey });
      expect(byQuery.headers.get('x-total-count')).toBe(String(total));
      expect(
        (await call(app, '/audit_logs?meta_source_ip=10.9.9.9', { key: app.apiKey })).headers.get(
          'x-total-count',
        ),
      ).toBe('0');

      const future = new Date(Date.now() + 60_000).toISOString();
      const past = new Date(Date.now() - 3_600_000).toISOString();
      const window = await call(
        app,
        `/audit_logs?start_time=${encodeURIComponent(past)}&end_time=${encodeURIComponent(future)}`,
        { key: app.apiKey },
      );
      expect(window.headers.get('x-total-count')).toBe(String(total));
      const later = await call(app, `/audit_logs?start_time=${encodeURIComponent(future)}`, {
        key: app.apiKey,
      });
      expect(later.json).toEqual([]);
      expect((await call(app, '/audit_logs?start_time=yesterday', { key: app.apiKey })).status).toBe(400);

      // Only this tenant's entries, and only with its key.
      const others = await call(other, '/audit_logs?per_page=100', { key: other.apiKey });
      expect(others.json.every((e: { tenant_id: string }) => e.tenant_id === other.id)).toBe(true);
      expect(others.json.map((e: { type: string }) => e.type).sort()).toEqual([
        'webauthn_registration_final_succeeded',
        'webauthn_registration_init_succeeded',
      ]);
      expect((await call(app, '/audit_logs', { key: other.apiKey })).status).toBe(401);
    });
  });
});
