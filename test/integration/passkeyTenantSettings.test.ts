import type {
  PublicKeyCredentialCreationOptionsJSON,
  PublicKeyCredentialRequestOptionsJSON,
} from '@simplewebauthn/server';
import { createApiKey } from '../../src/admin/apiKeys.js';
import { auditQueries } from '../../src/db/queries/audit.js';
import { passkeyTenantsQueries } from '../../src/db/queries/passkeyTenants.js';
import { usersQueries } from '../../src/db/queries/users.js';
import { createTenant } from '../../src/passkeyApi/tenants.js';
import { asPage } from '../support/browser.js';
import { Person, stepUp } from '../support/oidcFlow.js';
import { cliJsonOn, linesOf, runCliOn } from '../support/sesameProcess.js';
import { SoftAuthenticator } from '../support/softAuthenticator.js';
import { startSecondInstance, startTestApp, type TestApp } from '../support/testApp.js';
import { onPostgres } from '../support/testDatabase.js';

const APP_ORIGIN = 'https://app.example';
/** An Android app's origin: the unpadded base64url SHA-256 of its signing certificate. */
const ANDROID_ORIGIN = 'android:apk-key-hash:-sYXRdwJA3hvue3mKpYrOZ9zSPC7b4mbgzJmdZEDO5w';
const CLI_TIMEOUT_MS = 60_000;

interface Reply {
  status: number;
  // biome-ignore lint/suspicious/noExplicitAny: response bodies are checked field by field
  json: any;
}

describe("a passkey API tenant's WebAuthn settings", () => {
  let sesame: TestApp;
  let adminKey: string;
  let userCounter = 0;

  beforeAll(async () => {
    sesame = await startTestApp();
    adminKey = (await createApiKey(sesame.db, 'tests', 'test')).key;
  });

  afterAll(() => sesame.stop());

  async function newTenant(name = 'Notes') {
    const { tenant, apiKey } = await createTenant(
      sesame.db,
      sesame.config,
      { name, origins: [APP_ORIGIN] },
      'test',
    );
    return { id: tenant.id, apiKey };
  }
  type Tenant = Awaited<ReturnType<typeof newTenant>>;

  const settingsOf = async (tenantId: string) =>
    (await passkeyTenantsQueries.findById(sesame.db, tenantId))!.settings;

  async function call(tenant: Tenant, path: string, body: unknown, withKey = true): Promise<Reply> {
    const response = await fetch(`${sesame.baseUrl}/passkey-api/${tenant.id}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(withKey && { apikey: tenant.apiKey }) },
      body: JSON.stringify(body),
    });
    const text = await response.text();
    return { status: response.status, json: text ? JSON.parse(text) : undefined };
  }

  async function adminApi(method: string, path: string, body?: string, contentType = 'application/json') {
    const response = await fetch(`${sesame.baseUrl}/api/admin${path}`, {
      method,
      headers: {
        authorization: `Bearer ${adminKey}`,
        ...(body !== undefined && { 'content-type': contentType }),
      },
      body,
    });
    const text = await response.text();
    return { status: response.status, json: text ? JSON.parse(text) : undefined };
  }

  /** `sesame passkey-api update ID ...flags --json`, its answer parsed. */
  const updateByCli = (tenantId: string, ...flags: string[]) =>
    cliJsonOn(sesame, ['passkey-api', 'update', tenantId, ...flags]);

  const nextUser = () => {
    userCounter += 1;
    return { user_id: `user-${userCounter}`, username: `user${userCounter}@app.example` };
  };

  async function registrationOptions(
    tenant: Tenant,
    user: { user_id: string; username: string },
    mfa = false,
  ) {
    const init = await call(tenant, `${mfa ? '/mfa' : ''}/registration/initialize`, user);
    expect(init.status).toBe(200);
    return init.json.publicKey as PublicKeyCredentialCreationOptionsJSON;
  }

  async function loginOptions(tenant: Tenant, userId: string, mfa = false) {
    const init = await call(tenant, `${mfa ? '/mfa' : ''}/login/initialize`, { user_id: userId });
    expect(init.status).toBe(200);
    return init.json.publicKey as PublicKeyCredentialRequestOptionsJSON;
  }

  /** Registers a passkey (or second factor) with or without the UV flag; returns the finalize answer. */
  async function register(
    tenant: Tenant,
    authenticator: SoftAuthenticator,
    userVerified: boolean,
    mfa = false,
  ) {
    const user = nextUser();
    const options = await registrationOptions(tenant, user, mfa);
    const credential = await authenticator.createCredential(options, APP_ORIGIN, { userVerified });
    const finalize = await call(tenant, `${mfa ? '/mfa' : ''}/registration/finalize`, credential, mfa);
    return { user, finalize };
  }

  async function login(
    tenant: Tenant,
    authenticator: SoftAuthenticator,
    userId: string,
    userVerified: boolean,
    mfa = false,
  ) {
    const options = await loginOptions(tenant, userId, mfa);
    const assertion = await authenticator.getAssertion(options, APP_ORIGIN, { userVerified });
    return call(tenant, `${mfa ? '/mfa' : ''}/login/finalize`, assertion, mfa);
  }

  it("keeps today's options for a tenant nobody changed", async () => {
    const tenant = await newTenant();
    const user = nextUser();
    const passkey = await registrationOptions(tenant, user);
    expect(passkey.timeout).toBe(300_000);
    expect(passkey.attestation).toBe('none');
    expect(passkey.authenticatorSelection).toMatchObject({
      residentKey: 'required',
      userVerification: 'required',
    });
    expect(passkey.authenticatorSelection).not.toHaveProperty('authenticatorAttachment');
    const mfa = await registrationOptions(tenant, nextUser(), true);
    expect(mfa.timeout).toBe(300_000);
    expect(mfa.attestation).toBe('direct');
    expect(mfa.authenticatorSelection).toMatchObject({
      authenticatorAttachment: 'cross-platform',
      residentKey: 'discouraged',
      userVerification: 'preferred',
    });
    const authenticator = new SoftAuthenticator();
    expect((await register(tenant, authenticator, true)).finalize.status).toBe(200);
  });

  it(
    'is changed by `sesame passkey-api update`, audited, and the next options carry the settings',
    async () => {
      const tenant = await newTenant();
      const updated = await updateByCli(
        tenant.id,
        '--user-verification',
        'preferred',
        '--attachment',
        'platform',
        '--resident-key',
        'preferred',
        '--attestation',
        'indirect',
        '--timeout',
        '120000',
        '--mfa-user-verification',
        'required',
        '--mfa-attachment',
        'none',
        '--mfa-timeout',
        '60000',
      );
      expect(updated).toMatchObject({
        tenant_id: tenant.id,
        webauthn: {
          user_verification: 'preferred',
          attachment: 'platform',
          resident_key_requirement: 'preferred',
          attestation_preference: 'indirect',
          timeout: 120_000,
        },
        mfa: {
          user_verification: 'required',
          attachment: 'none',
          resident_key_requirement: 'discouraged',
          attestation_preference: 'direct',
          timeout: 60_000,
        },
      });

      const passkey = await registrationOptions(tenant, nextUser());
      expect(passkey.timeout).toBe(120_000);
      expect(passkey.attestation).toBe('indirect');
      expect(passkey.authenticatorSelection).toMatchObject({
        authenticatorAttachment: 'platform',
        residentKey: 'preferred',
        userVerification: 'preferred',
      });
      const mfa = await registrationOptions(tenant, nextUser(), true);
      expect(mfa.timeout).toBe(60_000);
      expect(mfa.authenticatorSelection).toMatchObject({
        residentKey: 'discouraged',
        userVerification: 'required',
      });
      expect(mfa.authenticatorSelection).not.toHaveProperty('authenticatorAttachment');

      const authenticator = new SoftAuthenticator();
      const { user } = await register(tenant, authenticator, true);
      // Asked for `indirect`, the authenticator answered with no attestation: the passkey
      // records the statement's format, as Hanko does, not the tenant's preference.
      const stored = await sesame.db
        .selectFrom('passkey_tenant_credentials')
        .select('attestation_type')
        .where('tenant_id', '=', tenant.id)
        .where('user_id', '=', user.user_id)
        .executeTakeFirstOrThrow();
      expect(stored.attestation_type).toBe('none');
      const request = await loginOptions(tenant, user.user_id);
      expect(request.timeout).toBe(120_000);
      expect(request.userVerification).toBe('preferred');

      const audit = await auditQueries.recent(sesame.db, 20);
      expect(audit).toEqual(
        expect.arrayContaining([
          expect.objectContaining({
            action: 'passkey_tenant.update_settings',
            target: tenant.id,
            actor: expect.stringMatching(/^cli/),
          }),
        ]),
      );
    },
    CLI_TIMEOUT_MS,
  );

  it(
    'refuses a bad CLI value in one line naming the flag, and changes nothing',
    async () => {
      const tenant = await newTenant();
      const before = await settingsOf(tenant.id);
      for (const [args, flag] of [
        [['--timeout', '5000'], '--timeout'],
        [['--timeout', 'soon'], '--timeout'],
        [['--mfa-timeout', '600001'], '--mfa-timeout'],
        [['--attachment', 'usb'], '--attachment'],
        [['--user-verification', 'always'], '--user-verification'],
        [['--mfa-attestation', 'full'], '--mfa-attestation'],
        [['--resident-key', 'yes'], '--resident-key'],
        [[], '--help'],
      ] as const) {
        const result = await runCliOn(sesame, ['passkey-api', 'update', tenant.id, ...args, '--json']);
        expect(result.code).not.toBe(0);
        expect(linesOf(result.stderr)).toHaveLength(1);
        expect(result.stderr).toContain(flag);
        expect(result.stdout).toBe('');
      }
      const unknown = await runCliOn(sesame, [
        'passkey-api',
        'update',
        '00000000-0000-0000-0000-000000000000',
        '--timeout',
        '60000',
      ]);
      expect(unknown.code).not.toBe(0);
      expect(unknown.stderr).toContain('no passkey API tenant');
      expect(await settingsOf(tenant.id)).toEqual(before);
    },
    CLI_TIMEOUT_MS * 2,
  );

  it('is changed by PATCH /api/admin/passkey-tenants/{id}; what the body leaves out stays', async () => {
    const tenant = await newTenant();
    const patched = await adminApi(
      'PATCH',
      `/passkey-tenants/${tenant.id}`,
      JSON.stringify({
        webauthn: { user_verification: 'discouraged', timeout: 90_000 },
        mfa: { attestation_preference: 'none' },
      }),
    );
    expect(patched.status).toBe(200);
    expect(patched.json.webauthn).toEqual({
      user_verification: 'discouraged',
      attachment: 'none',
      resident_key_requirement: 'required',
      attestation_preference: 'none',
      timeout: 90_000,
    });
    expect(patched.json.mfa).toMatchObject({
      attestation_preference: 'none',
      user_verification: 'preferred',
    });
    expect((await adminApi('GET', `/passkey-tenants/${tenant.id}`)).json.webauthn.user_verification).toBe(
      'discouraged',
    );
    const options = await registrationOptions(tenant, nextUser());
    expect(options.timeout).toBe(90_000);
    expect(options.authenticatorSelection?.userVerification).toBe('discouraged');
    const audit = await auditQueries.recent(sesame.db, 20);
    const entry = audit.find((e) => e.action === 'passkey_tenant.update_settings' && e.target === tenant.id);
    expect(entry).toMatchObject({ actor: expect.stringMatching(/^api-key:/) });
    expect(JSON.stringify(entry)).toContain('discouraged');
  });

  it('refuses bad settings over the admin API with a 4xx naming the field, and changes nothing', async () => {
    const tenant = await newTenant();
    const before = await settingsOf(tenant.id);
    const path = `/passkey-tenants/${tenant.id}`;
    for (const [body, field] of [
      [{ webauthn: { timeout: 9_999 } }, 'webauthn.timeout'],
      [{ webauthn: { timeout: 600_001 } }, 'webauthn.timeout'],
      [{ webauthn: { timeout: 30_000.5 } }, 'webauthn.timeout'],
      [{ webauthn: { timeout: '60000' } }, 'webauthn.timeout'],
      [{ webauthn: { user_verification: 'always' } }, 'webauthn.user_verification'],
      [{ mfa: { attachment: 'usb' } }, 'mfa.attachment'],
      [{ mfa: { resident_key_requirement: null } }, 'mfa.resident_key_requirement'],
      [{ webauthn: { attestation_preference: 'full', timeout: 60_000 } }, 'webauthn.attestation_preference'],
      [{ webauthn: { rp_id: 'evil.example' } }, 'webauthn'],
      [{ webauthn: [] }, 'webauthn'],
    ] as const) {
      const refused = await adminApi('PATCH', path, JSON.stringify(body));
      expect(refused.status).toBe(400);
      expect(refused.json).toMatchObject({
        error: 'invalid_request',
        error_description: expect.stringContaining(field),
      });
      expect(refused.json.fields).toHaveProperty([field]);
    }
    for (const body of ['{}', '{"rp_id":"app.example"}', '{"webauthn":{}}', '{not json', '[]', 'null']) {
      const refused = await adminApi('PATCH', path, body);
      expect(refused.status).toBe(400);
    }
    // An unknown setting is named as one, not called a wrong type.
    for (const [body, key] of [
      [{ rp_id: 'evil.example' }, 'rp_id'],
      [{ webauthn: { timeout: 30_000 }, foo: 1 }, 'foo'],
      [{ webauthn: { foo: 1 } }, 'foo'],
    ] as const) {
      const refused = await adminApi('PATCH', path, JSON.stringify(body));
      expect(refused.status).toBe(400);
      expect(refused.json.error_description).toContain(`Unrecognized key: "${key}"`);
      expect(refused.json.error_description).not.toContain('must be an object');
    }
    expect((await adminApi('PATCH', path, 'webauthn=1', 'text/plain')).status).toBe(415);
    const unknown = await adminApi(
      'PATCH',
      '/passkey-tenants/00000000-0000-0000-0000-000000000000',
      JSON.stringify({ webauthn: { timeout: 60_000 } }),
    );
    expect(unknown.status).toBe(404);
    expect(await settingsOf(tenant.id)).toEqual(before);
  });

  describe('name and origins', () => {
    const tenantRow = async (tenantId: string) => passkeyTenantsQueries.findById(sesame.db, tenantId);

    /**
     * The finalize statuses of a registration reported from `origin`, and of a login reported
     * from it with a passkey registered at `registeredAt`.
     */
    async function ceremoniesAt(tenant: Tenant, origin: string, registeredAt = 'https://m.app.example') {
      const authenticator = new SoftAuthenticator();
      const creation = await registrationOptions(tenant, nextUser());
      const credential = await authenticator.createCredential(creation, origin);
      const registered = (await call(tenant, '/registration/finalize', credential, false)).status;
      const known = nextUser();
      const knownCreation = await registrationOptions(tenant, known);
      const knownCredential = await authenticator.createCredential(knownCreation, registeredAt);
      expect((await call(tenant, '/registration/finalize', knownCredential, false)).status).toBe(200);
      const assertion = await authenticator.getAssertion(await loginOptions(tenant, known.user_id), origin);
      const signedIn = (await call(tenant, '/login/finalize', assertion, false)).status;
      return { registered, signedIn };
    }

    const preflight = async (tenant: Tenant, origin: string, base = sesame.baseUrl) =>
      (
        await fetch(`${base}/passkey-api/${tenant.id}/login/finalize`, {
          method: 'OPTIONS',
          headers: { origin, 'access-control-request-method': 'POST' },
        })
      ).status;

    it('are replaced by PATCH, checked as at creation and audited; the next ceremonies and CORS use them', async () => {
      const tenant = await newTenant();
      const patched = await adminApi(
        'PATCH',
        `/passkey-tenants/${tenant.id}`,
        JSON.stringify({ name: ' Notes 2 ', origins: ['https://M.app.example/', ANDROID_ORIGIN] }),
      );
      expect(patched.status).toBe(200);
      expect(patched.json).toMatchObject({
        name: 'Notes 2',
        rp_id: 'app.example',
        origins: ['https://m.app.example', ANDROID_ORIGIN],
        webauthn: { user_verification: 'required' },
      });
      expect((await adminApi('GET', `/passkey-tenants/${tenant.id}`)).json.origins).toEqual([
        'https://m.app.example',
        ANDROID_ORIGIN,
      ]);
      const options = await registrationOptions(tenant, nextUser());
      expect(options.rp).toEqual({ id: 'app.example', name: 'Notes 2' });

      expect(await ceremoniesAt(tenant, 'https://m.app.example')).toEqual({ registered: 200, signedIn: 200 });
      expect(await ceremoniesAt(tenant, ANDROID_ORIGIN)).toEqual({ registered: 200, signedIn: 200 });
      // The origin the list no longer holds is refused.
      expect(await ceremoniesAt(tenant, APP_ORIGIN)).toEqual({ registered: 400, signedIn: 401 });
      expect(await preflight(tenant, 'https://m.app.example')).toBe(204);
      expect(await preflight(tenant, APP_ORIGIN)).toBe(403);

      const audit = await auditQueries.recent(sesame.db, 50);
      const entry = audit.find(
        (e) => e.action === 'passkey_tenant.update_settings' && e.target === tenant.id,
      );
      expect(entry).toMatchObject({ actor: expect.stringMatching(/^api-key:/) });
      expect(JSON.stringify(entry)).toContain('https://m.app.example');
      expect(JSON.stringify(entry)).toContain('Notes 2');
    });

    it('refuses bad names and origins over the admin API with a 400 naming the field, and changes nothing', async () => {
      const tenant = await newTenant();
      const before = await tenantRow(tenant.id);
      for (const [body, field, message] of [
        [{ origins: ['https://other.example'] }, 'origins', /not on the app's RP ID app\.example/],
        [{ origins: [APP_ORIGIN, 'https://app.example.evil.com'] }, 'origins', /RP ID/],
        [{ origins: [] }, 'origins', /at least one origin/],
        [{ origins: ['http://app.example'] }, 'origins', /must use https/],
        [{ origins: ['https://app.example/login'] }, 'origins', /without a path/],
        [{ origins: [`${ANDROID_ORIGIN}=`] }, 'origins', /base64url/],
        [{ origins: 'https://app.example' }, 'origins', /array/],
        [{ origins: [APP_ORIGIN], name: '' }, 'name', /1 to 64/],
        [{ name: 'Bell\u0007' }, 'name', /control/],
        [{ name: 7 }, 'name', /string/],
      ] as const) {
        const refused = await adminApi('PATCH', `/passkey-tenants/${tenant.id}`, JSON.stringify(body));
        expect(refused.status).toBe(400);
        expect(refused.json.fields).toHaveProperty([field]);
        expect(refused.json.error_description).toMatch(message);
      }
      const unknown = await adminApi(
        'PATCH',
        '/passkey-tenants/00000000-0000-0000-0000-000000000000',
        JSON.stringify({ origins: [APP_ORIGIN] }),
      );
      expect(unknown.status).toBe(404);
      expect(await tenantRow(tenant.id)).toEqual(before);
    });

    it(
      'are replaced by `sesame passkey-api update --origin`, and a bad one is refused in one line naming the flag',
      async () => {
        const tenant = await newTenant();
        const updated = await updateByCli(
          tenant.id,
          '--name',
          'Notes mobile',
          '--origin',
          'https://m.app.example',
          '--origin',
          ANDROID_ORIGIN,
        );
        expect(updated).toMatchObject({
          tenant_id: tenant.id,
          name: 'Notes mobile',
          origins: ['https://m.app.example', ANDROID_ORIGIN],
        });
        const before = await tenantRow(tenant.id);
        for (const [args, flag, message] of [
          [['--origin', 'https://other.example'], '--origin', /RP ID/],
          [['--origin', 'ftp://app.example'], '--origin', /https/],
          [['--name', ' '], '--name', /1 to 64/],
        ] as const) {
          const result = await runCliOn(sesame, ['passkey-api', 'update', tenant.id, ...args, '--json']);
          expect(result.code).not.toBe(0);
          expect(result.stdout).toBe('');
          expect(linesOf(result.stderr)).toHaveLength(1);
          expect(result.stderr).toContain(`${flag}: `);
          expect(result.stderr).toMatch(message);
        }
        expect(await tenantRow(tenant.id)).toEqual(before);
        const audit = await auditQueries.recent(sesame.db, 50);
        expect(
          audit.find((e) => e.action === 'passkey_tenant.update_settings' && e.target === tenant.id),
        ).toMatchObject({ actor: expect.stringMatching(/^cli/) });
      },
      CLI_TIMEOUT_MS * 2,
    );

    (onPostgres ? it : it.skip)('hold on another instance at its next request', async () => {
      const tenant = await newTenant();
      const other = await startSecondInstance(sesame);
      try {
        // The other instance has served the tenant before the change.
        expect(await preflight(tenant, APP_ORIGIN, other.url)).toBe(204);
        const patch = { origins: ['https://m.app.example'] };
        expect((await adminApi('PATCH', `/passkey-tenants/${tenant.id}`, JSON.stringify(patch))).status).toBe(
          200,
        );
        expect(await preflight(tenant, APP_ORIGIN, other.url)).toBe(403);
        expect(await preflight(tenant, 'https://m.app.example', other.url)).toBe(204);
      } finally {
        await other.stop();
      }
    });
  });

  describe('user verification', () => {
    it('refuses a registration (422) and a login (401) without UV when the tenant requires it', async () => {
      const tenant = await newTenant();
      const authenticator = new SoftAuthenticator();
      const unverified = await register(tenant, authenticator, false);
      expect(unverified.finalize.status).toBe(422);
      const { user, finalize } = await register(tenant, authenticator, true);
      expect(finalize.status).toBe(200);
      expect((await login(tenant, authenticator, user.user_id, false)).status).toBe(401);
      expect((await login(tenant, authenticator, user.user_id, true)).status).toBe(200);
    });

    it.each(['preferred', 'discouraged'] as const)(
      'accepts a registration and a login without UV when it is %s',
      async (uv) => {
        const tenant = await newTenant();
        expect(
          (
            await adminApi(
              'PATCH',
              `/passkey-tenants/${tenant.id}`,
              JSON.stringify({ webauthn: { user_verification: uv } }),
            )
          ).status,
        ).toBe(200);
        const authenticator = new SoftAuthenticator();
        const { user, finalize } = await register(tenant, authenticator, false);
        expect(finalize.status).toBe(200);
        expect(finalize.json.token).toEqual(expect.any(String));
        expect((await login(tenant, authenticator, user.user_id, false)).status).toBe(200);
        expect((await login(tenant, authenticator, user.user_id, true)).status).toBe(200);
      },
    );

    it("signs a transaction under the tenant's passkey settings, as Hanko does", async () => {
      const tenant = await newTenant();
      const authenticator = new SoftAuthenticator();
      const { user, finalize } = await register(tenant, authenticator, true);
      expect(finalize.status).toBe(200);
      const sign = async (transactionId: string, userVerified: boolean) => {
        const init = await call(tenant, '/transaction/initialize', {
          user_id: user.user_id,
          transaction_id: transactionId,
          transaction_data: { amount: 10 },
        });
        expect(init.status).toBe(200);
        const options = init.json.publicKey as PublicKeyCredentialRequestOptionsJSON;
        const assertion = await authenticator.getAssertion(options, APP_ORIGIN, { userVerified });
        return { options, finalize: await call(tenant, '/transaction/finalize', assertion) };
      };
      expect((await sign('t-1', false)).finalize.status).toBe(401);
      const patch = { webauthn: { user_verification: 'preferred', timeout: 45_000 } };
      expect((await adminApi('PATCH', `/passkey-tenants/${tenant.id}`, JSON.stringify(patch))).status).toBe(
        200,
      );
      const signed = await sign('t-2', false);
      expect(signed.options).toMatchObject({ userVerification: 'preferred', timeout: 45_000 });
      expect(signed.finalize.status).toBe(200);
    });

    it('refuses a second factor without UV only when the MFA settings require it', async () => {
      const tenant = await newTenant();
      const key = new SoftAuthenticator();
      // Hanko's MFA default, `preferred`: a key that does not verify the person is fine.
      const { user, finalize } = await register(tenant, key, false, true);
      expect(finalize.status).toBe(200);
      expect((await login(tenant, key, user.user_id, false, true)).status).toBe(200);

      expect(
        (
          await adminApi(
            'PATCH',
            `/passkey-tenants/${tenant.id}`,
            JSON.stringify({ mfa: { user_verification: 'required' } }),
          )
        ).status,
      ).toBe(200);
      expect((await login(tenant, key, user.user_id, false, true)).status).toBe(401);
      expect((await login(tenant, key, user.user_id, true, true)).status).toBe(200);
      const refused = await register(tenant, new SoftAuthenticator(), false, true);
      expect(refused.finalize.status).toBeGreaterThanOrEqual(400);
      expect(refused.finalize.status).toBeLessThan(500);
      expect((await register(tenant, new SoftAuthenticator(), true, true)).finalize.status).toBe(200);
    });
  });

  describe('on the admin page', () => {
    let admin: Person;

    beforeAll(async () => {
      admin = new Person(sesame.baseUrl);
      const loginPage = asPage(await admin.browser.follow('/admin'));
      // Signing up through /account/login ends at /admin, signed in.
      await admin.browser.follow(await admin.signUp(loginPage, 'root@example.com'));
      const user = await usersQueries.findByEmail(sesame.db, 'root@example.com');
      await usersQueries.update(sesame.db, user!.id, { isAdmin: true });
    });

    it('shows the settings and saves them after a passkey step-up, audited', async () => {
      const tenant = await newTenant('Shop');
      const page = await admin.browser.request(`/admin/passkey-tenants/${tenant.id}`);
      expect(page.status).toBe(200);
      expect(page.text).toMatch(
        new RegExp(
          `<form method="post" action="/admin/passkey-tenants/${tenant.id}/settings"[^>]*data-step-up>`,
        ),
      );
      expect(page.text).toMatch(/<option value="required" selected>required<\/option>/);
      expect(page.text).toContain('value="300000"');

      const form = {
        _csrf: page.csrf(),
        webauthn_user_verification: 'preferred',
        webauthn_attachment: 'cross-platform',
        webauthn_resident_key_requirement: 'discouraged',
        webauthn_attestation_preference: 'direct',
        webauthn_timeout: '60000',
        mfa_user_verification: 'discouraged',
        mfa_attachment: 'platform',
        mfa_resident_key_requirement: 'preferred',
        mfa_attestation_preference: 'enterprise',
        mfa_timeout: '30000',
      };
      const before = await settingsOf(tenant.id);
      // Without a step-up (signing up counted as one) nothing is saved.
      await sesame.db.deleteFrom('step_ups').execute();
      const refused = await admin.browser.request(`/admin/passkey-tenants/${tenant.id}/settings`, { form });
      expect(refused.status).toBe(403);
      expect(await settingsOf(tenant.id)).toEqual(before);

      expect((await stepUp(admin, page.csrf())).status).toBe(200);
      const saved = await admin.browser.request(`/admin/passkey-tenants/${tenant.id}/settings`, { form });
      expect(saved.status).toBe(302);
      expect(saved.headers.get('location')).toBe(
        `/admin/passkey-tenants/${tenant.id}?done=tenant-settings-saved`,
      );
      expect(await settingsOf(tenant.id)).toEqual({
        webauthn: {
          userVerification: 'preferred',
          attachment: 'cross-platform',
          residentKey: 'discouraged',
          attestation: 'direct',
          timeoutMs: 60_000,
        },
        mfa: {
          userVerification: 'discouraged',
          attachment: 'platform',
          residentKey: 'preferred',
          attestation: 'enterprise',
          timeoutMs: 30_000,
        },
      });
      const shown = await admin.browser.request(
        `/admin/passkey-tenants/${tenant.id}?done=tenant-settings-saved`,
      );
      expect(shown.text).toContain('WebAuthn settings were saved');
      expect(shown.text).toContain('value="60000"');
      const audit = await auditQueries.recent(sesame.db, 20);
      expect(audit).toEqual(
        expect.arrayContaining([
          expect.objectContaining({
            action: 'passkey_tenant.update_settings',
            target: tenant.id,
            actor: `user:${(await usersQueries.findByEmail(sesame.db, 'root@example.com'))!.id}`,
          }),
        ]),
      );
      const options = await registrationOptions(tenant, nextUser());
      expect(options.authenticatorSelection).toMatchObject({ authenticatorAttachment: 'cross-platform' });
    });

    it('renames the app and replaces its origins after a passkey step-up; a bad origin is named (400)', async () => {
      const tenant = await newTenant('Shop');
      const page = await admin.browser.request(`/admin/passkey-tenants/${tenant.id}`);
      expect(page.text).toMatch(
        new RegExp(
          `<form method="post" action="/admin/passkey-tenants/${tenant.id}/origins"[^>]*data-step-up>`,
        ),
      );
      expect(page.text).toMatch(
        /<textarea id="origins" name="origins"[^>]*>https:\/\/app\.example<\/textarea>/,
      );
      const before = await passkeyTenantsQueries.findById(sesame.db, tenant.id);
      const form = {
        _csrf: page.csrf(),
        name: 'Shop 2',
        origins: `https://shop.app.example\r\n${ANDROID_ORIGIN}\r\n`,
      };
      await sesame.db.deleteFrom('step_ups').execute();
      const unconfirmed = await admin.browser.request(`/admin/passkey-tenants/${tenant.id}/origins`, {
        form,
      });
      expect(unconfirmed.status).toBe(403);
      expect(await passkeyTenantsQueries.findById(sesame.db, tenant.id)).toEqual(before);

      expect((await stepUp(admin, page.csrf())).status).toBe(200);
      const outside = await admin.browser.request(`/admin/passkey-tenants/${tenant.id}/origins`, {
        form: { ...form, origins: 'https://shop.example' },
      });
      expect(outside.status).toBe(400);
      expect(outside.text).toContain('id="origins-error"');
      expect(outside.text).toContain('nothing was saved');
      expect(await passkeyTenantsQueries.findById(sesame.db, tenant.id)).toEqual(before);

      const saved = await admin.browser.request(`/admin/passkey-tenants/${tenant.id}/origins`, { form });
      expect(saved.status).toBe(302);
      expect(saved.headers.get('location')).toBe(
        `/admin/passkey-tenants/${tenant.id}?done=tenant-origins-saved`,
      );
      expect(await passkeyTenantsQueries.findById(sesame.db, tenant.id)).toMatchObject({
        name: 'Shop 2',
        rpId: 'app.example',
        origins: ['https://shop.app.example', ANDROID_ORIGIN],
        settings: before!.settings,
      });
      const shown = await admin.browser.request(
        `/admin/passkey-tenants/${tenant.id}?done=tenant-origins-saved`,
      );
      expect(shown.text).toContain('name and origins were saved');
    });

    it('shows the form again with the bad field named (400) and saves nothing', async () => {
      const tenant = await newTenant('Bad input');
      const page = await admin.browser.request(`/admin/passkey-tenants/${tenant.id}`);
      expect((await stepUp(admin, page.csrf())).status).toBe(200);
      const before = await settingsOf(tenant.id);
      for (const [field, value] of [
        ['webauthn_timeout', '1000'],
        ['webauthn_timeout', 'soon'],
        ['mfa_timeout', ''],
        ['webauthn_user_verification', 'always'],
        ['mfa_attachment', 'usb'],
      ] as const) {
        const refused = await admin.browser.request(`/admin/passkey-tenants/${tenant.id}/settings`, {
          form: { _csrf: page.csrf(), webauthn_timeout: '60000', [field]: value },
        });
        expect(refused.status).toBe(400);
        expect(refused.text).toContain(`id="${field}-error"`);
        expect(refused.text).toContain('nothing was saved');
      }
      expect(await settingsOf(tenant.id)).toEqual(before);
    });
  });
});
