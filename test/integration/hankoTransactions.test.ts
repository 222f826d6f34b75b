import { createHash } from 'node:crypto';
import type {
  AuthenticationResponseJSON,
  PublicKeyCredentialRequestOptionsJSON,
  RegistrationResponseJSON,
} from '@simplewebauthn/server';
import * as jose from 'jose';
import { createTenant } from '../../src/passkeyApi/tenants.js';
import { SoftAuthenticator } from '../support/softAuthenticator.js';
import { startTestApp, type TestApp } from '../support/testApp.js';

const APP_ORIGIN = 'https://bank.example';
const KEY_ENCRYPTION_SECRET = 'hanko-transactions-test-key-encryption-secret-0123';

interface TestTenant {
  id: string;
  apiKey: string;
}

interface ApiResponse {
  status: number;
  // biome-ignore lint/suspicious/noExplicitAny: response bodies are checked field by field
  json: any;
}

describe("Hanko's transaction calls: a passkey signs a payment, and the token names it", () => {
  let sesame: TestApp;
  let bank: TestTenant;
  let otherBank: TestTenant;

  beforeAll(async () => {
    sesame = await startTestApp({ KEY_ENCRYPTION_SECRET });
    for (const name of ['Bank', 'Other bank']) {
      const { tenant, apiKey } = await createTenant(
        sesame.db,
        sesame.config,
        { name, origins: [APP_ORIGIN] },
        'test',
      );
      if (name === 'Bank') bank = { id: tenant.id, apiKey };
      else otherBank = { id: tenant.id, apiKey };
    }
  });

  afterAll(() => sesame.stop());

  async function call(
    tenant: TestTenant,
    path: string,
    options: { key?: string | null; body?: unknown; method?: string } = {},
  ): Promise<ApiResponse> {
    const key = options.key === undefined ? tenant.apiKey : options.key;
    const response = await fetch(`${sesame.baseUrl}/passkey-api/${tenant.id}${path}`, {
      method: options.method ?? 'POST',
      headers: {
        ...(options.body !== undefined && { 'content-type': 'application/json' }),
        ...(key && { apikey: key }),
      },
      ...(options.body !== undefined && { body: JSON.stringify(options.body) }),
    });
    const text = await response.text();
    return { status: response.status, json: text ? JSON.parse(text) : undefined };
  }

  async function registerPasskey(
    tenant: TestTenant,
    userId: string,
    phone: SoftAuthenticator,
    kind: 'registration' | 'mfa/registration' = 'registration',
  ): Promise<RegistrationResponseJSON> {
    const init = await call(tenant, `/${kind}/initialize`, { body: { user_id: userId, username: userId } });
    expect(init.status).toBe(200);
    const credential = await phone.createCredential(init.json.publicKey, APP_ORIGIN);
    expect((await call(tenant, `/${kind}/finalize`, { body: credential })).status).toBe(200);
    return credential;
  }

  async function initialize(
    tenant: TestTenant,
    body: Record<string, unknown>,
  ): Promise<ApiResponse & { options: PublicKeyCredentialRequestOptionsJSON }> {
    const response = await call(tenant, '/transaction/initialize', { body });
    return { ...response, options: response.json?.publicKey };
  }

  /** `transaction/initialize` with the data written as given, for JSON that JSON.stringify does not write. */
  async function initializeWithDataText(
    tenant: TestTenant,
    userId: string,
    transactionId: string,
    dataText: string,
  ): Promise<ApiResponse> {
    const response = await fetch(`${sesame.baseUrl}/passkey-api/${tenant.id}/transaction/initialize`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', apikey: tenant.apiKey },
      body: `{"user_id":${JSON.stringify(userId)},"transaction_id":${JSON.stringify(transactionId)},"transaction_data":${dataText}}`,
    });
    return { status: response.status, json: await response.json() };
  }

  const finalize = (tenant: TestTenant, assertion: AuthenticationResponseJSON) =>
    call(tenant, '/transaction/finalize', { body: assertion });

  async function claimsOf(tenant: TestTenant, token: string) {
    const jwks = await call(tenant, '/.well-known/jwks.json', { method: 'GET', key: null });
    const { payload } = await jose.jwtVerify(token, jose.createLocalJWKSet(jwks.json), {
      audience: 'bank.example',
      algorithms: ['RS256'],
    });
    return payload;
  }

  async function transactionRows(tenant: TestTenant) {
    return sesame.db
      .selectFrom('passkey_tenant_transactions')
      .select(['user_id', 'identifier', 'data'])
      .where('tenant_id', '=', tenant.id)
      .orderBy('created_at')
      .execute();
  }

  it("signs a transaction whose challenge commits to its id and data, and puts the id in the token's trans claim", async () => {
    const phone = new SoftAuthenticator();
    const passkey = await registerPasskey(bank, 'alice', phone);
    const data = { to: '<Bob & co>', currency: 'EUR', amount: 42 };
    const init = await initialize(bank, {
      user_id: 'alice',
      transaction_id: 'pay-1',
      transaction_data: data,
    });
    expect(init.status).toBe(200);
    expect(init.options).toMatchObject({ rpId: 'bank.example', userVerification: 'required' });
    expect(init.options.allowCredentials).toEqual([{ id: passkey.id, type: 'public-key' }]);
    // 32 random bytes, then SHA-256(id || data as Go's json.Marshal writes it: keys sorted, <>& escaped).
    const goJson = '{"amount":42,"currency":"EUR","to":"\\u003cBob \\u0026 co\\u003e"}';
    const challenge = Buffer.from(init.options.challenge, 'base64url');
    expect(challenge).toHaveLength(64);
    expect(challenge.subarray(32)).toEqual(createHash('sha256').update(`pay-1${goJson}`).digest());

    const signed = await finalize(bank, await phone.getAssertion(init.options, APP_ORIGIN));
    expect(signed.status).toBe(200);
    const claims = await claimsOf(bank, signed.json.token);
    expect(claims).toMatchObject({ sub: 'alice', aud: ['bank.example'], cred: passkey.id, trans: 'pay-1' });
    expect(claims.exp! - claims.iat!).toBe(300);
    // Both steps are in the tenant's audit log, with the user and the app's transaction id.
    const audit = await call(
      bank,
      '/audit_logs?type=webauthn_transaction_init_succeeded&type=webauthn_transaction_final_succeeded',
      {
        method: 'GET',
      },
    );
    expect(audit.json).toEqual([
      expect.objectContaining({
        type: 'webauthn_transaction_final_succeeded',
        actor_user_id: 'alice',
        transaction_id: 'pay-1',
      }),
      expect.objectContaining({
        type: 'webauthn_transaction_init_succeeded',
        actor_user_id: 'alice',
        transaction_id: 'pay-1',
      }),
    ]);

    const listed = await call(bank, '/transaction/alice', { method: 'GET' });
    expect(listed).toMatchObject({ status: 200 });
    expect(listed.json).toEqual([
      {
        id: expect.stringMatching(/^[0-9a-f-]{36}$/),
        identifier: 'pay-1',
        data: goJson,
        created_at: expect.any(String),
        updated_at: expect.any(String),
      },
    ]);
    // A user with none, known or not, has an empty list.
    expect(await call(bank, '/transaction/nobody', { method: 'GET' })).toMatchObject({
      status: 200,
      json: [],
    });
  });

  it("writes the data's object keys in Go's order, by their UTF-8 bytes, so an app can recompute the text", async () => {
    await registerPasskey(bank, 'olga', new SoftAuthenticator());
    // UTF-16 order would put the emoji (a surrogate pair, D83D…) before the fullwidth sign (FF01).
    const data = { '\u{1F600}': 2, '\uFF01': 1, nested: { é: 1, z: 0 } };
    const goJson = '{"nested":{"z":0,"é":1},"\uFF01":1,"\u{1F600}":2}';
    const init = await initialize(bank, {
      user_id: 'olga',
      transaction_id: 'olga-1',
      transaction_data: data,
    });
    expect(init.status).toBe(200);
    expect(Buffer.from(init.options.challenge, 'base64url').subarray(32)).toEqual(
      createHash('sha256').update(`olga-1${goJson}`).digest(),
    );
    const listed = await call(bank, '/transaction/olga', { method: 'GET' });
    expect(listed.json).toEqual([expect.objectContaining({ identifier: 'olga-1', data: goJson })]);
  });

  it('writes a negative zero in the data as Go does, -0, where JSON.stringify writes 0', async () => {
    await registerPasskey(bank, 'pavel', new SoftAuthenticator());
    const init = await initializeWithDataText(bank, 'pavel', 'pavel-1', '{"a":[-0,0.0,-0.0,-0e3,1]}');
    expect(init.status).toBe(200);
    const goJson = '{"a":[-0,0,-0,-0,1]}';
    expect(Buffer.from(init.json.publicKey.challenge, 'base64url').subarray(32)).toEqual(
      createHash('sha256').update(`pavel-1${goJson}`).digest(),
    );
    const listed = await call(bank, '/transaction/pavel', { method: 'GET' });
    expect(listed.json).toEqual([expect.objectContaining({ identifier: 'pavel-1', data: goJson })]);
  });

  it('answers 404 for an unknown user, 409 for a used id, 400 for a user without passkeys, recording nothing', async () => {
    const phone = new SoftAuthenticator();
    await registerPasskey(bank, 'bob', phone);
    const before = await transactionRows(bank);

    expect(
      await initialize(bank, { user_id: 'nobody', transaction_id: 't-404', transaction_data: { a: 1 } }),
    ).toEqual({ status: 404, json: { title: 'unable to find user', details: '', status: 404 } });

    expect(
      (await initialize(bank, { user_id: 'bob', transaction_id: 'bob-1', transaction_data: { a: 1 } }))
        .status,
    ).toBe(200);
    // The same id again, for this user or another of the tenant's, even before it was signed.
    expect(
      await initialize(bank, { user_id: 'bob', transaction_id: 'bob-1', transaction_data: { a: 2 } }),
    ).toMatchObject({ status: 409, json: { status: 409, title: 'transaction already exists' } });
    expect(await initialize(bank, { user_id: 'bob', transaction_id: 'bob-2' })).toMatchObject({
      status: 400,
      json: { title: 'unable to validate request' },
    });
    await registerPasskey(bank, 'carl', new SoftAuthenticator());
    expect(
      (await initialize(bank, { user_id: 'carl', transaction_id: 'bob-1', transaction_data: { a: 1 } }))
        .status,
    ).toBe(409);
    // Another tenant has its own ids.
    await registerPasskey(otherBank, 'bob', new SoftAuthenticator());
    expect(
      (await initialize(otherBank, { user_id: 'bob', transaction_id: 'bob-1', transaction_data: { a: 1 } }))
        .status,
    ).toBe(200);

    // A user the app started registering who has no passkey yet; one with only a security key.
    await call(bank, '/registration/initialize', { body: { user_id: 'dora', username: 'dora' } });
    expect(
      await initialize(bank, { user_id: 'dora', transaction_id: 't-dora', transaction_data: { a: 1 } }),
    ).toMatchObject({
      status: 400,
      json: { title: 'user has no suitable credentials for this operation', details: '', status: 400 },
    });
    await registerPasskey(bank, 'ella', new SoftAuthenticator(), 'mfa/registration');
    expect(
      (await initialize(bank, { user_id: 'ella', transaction_id: 't-ella', transaction_data: { a: 1 } }))
        .status,
    ).toBe(400);

    expect(await transactionRows(bank)).toEqual([
      ...before,
      { user_id: 'bob', identifier: 'bob-1', data: '{"a":1}' },
    ]);
  });

  it('refuses a transaction id over 128 characters and transaction data that is missing, with 400', async () => {
    await registerPasskey(bank, 'finn', new SoftAuthenticator());
    const base = { user_id: 'finn', transaction_data: { amount: 1 } };
    expect((await initialize(bank, { ...base, transaction_id: 'x'.repeat(129) })).status).toBe(400);
    expect((await initialize(bank, { ...base, transaction_id: 'é'.repeat(129) })).status).toBe(400);
    expect((await initialize(bank, { ...base, transaction_id: '' })).status).toBe(400);
    expect((await initialize(bank, { ...base, transaction_id: 5 })).status).toBe(400);
    for (const transaction_data of [undefined, null, '', 0, false]) {
      const refused = await initialize(bank, {
        user_id: 'finn',
        transaction_id: 'finn-bad',
        transaction_data,
      });
      expect(refused).toMatchObject({ status: 400, json: { status: 400 } });
    }
    // Postgres stores no NUL character: an id with one is refused (the data keeps it escaped, as JSON text).
    expect((await initialize(bank, { ...base, transaction_id: 'finn\u0000' })).status).toBe(400);
    expect((await initialize(bank, { user_id: 'finn', transaction_data: { a: 1 } })).status).toBe(400);
    expect((await initialize(bank, { transaction_id: 'finn-x', transaction_data: { a: 1 } })).status).toBe(
      400,
    );
    expect(await transactionRows(bank)).not.toContainEqual(expect.objectContaining({ user_id: 'finn' }));

    // 128 characters (of any script) is the limit, and any data Hanko takes — even a bare list — is data.
    expect((await initialize(bank, { ...base, transaction_id: 'é'.repeat(128) })).status).toBe(200);
    expect(
      (await initialize(bank, { ...base, transaction_id: 'finn-list', transaction_data: [] })).status,
    ).toBe(200);
    expect(
      (await initialize(bank, { ...base, transaction_id: 'finn-text', transaction_data: 'pay 5' })).status,
    ).toBe(200);
  });

  it('keeps a refused initialize whose transaction id holds NUL in the audit log, without the NUL', async () => {
    await registerPasskey(bank, 'quinn', new SoftAuthenticator());
    const refused = await initialize(bank, {
      user_id: 'quinn',
      transaction_id: 'quinn\u0000nul',
      transaction_data: { a: 1 },
    });
    expect(refused).toMatchObject({ status: 400, json: { status: 400 } });
    const audit = await call(bank, '/audit_logs?type=webauthn_transaction_init_failed&actor_user_id=quinn', {
      method: 'GET',
    });
    expect(audit.json).toEqual([
      expect.objectContaining({
        type: 'webauthn_transaction_init_failed',
        actor_user_id: 'quinn',
        transaction_id: 'quinnnul',
        error: expect.stringContaining('NUL'),
      }),
    ]);
    expect(await transactionRows(bank)).not.toContainEqual(expect.objectContaining({ user_id: 'quinn' }));
  });

  it('refuses a replayed signature, a login challenge, a security key and a bad signature with 401', async () => {
    const phone = new SoftAuthenticator();
    const key = new SoftAuthenticator();
    const passkey = await registerPasskey(bank, 'gina', phone);
    const mfaKey = await registerPasskey(bank, 'gina', key, 'mfa/registration');

    const init = await initialize(bank, {
      user_id: 'gina',
      transaction_id: 'gina-1',
      transaction_data: { a: 1 },
    });
    const assertion = await phone.getAssertion(init.options, APP_ORIGIN);
    expect((await finalize(bank, assertion)).status).toBe(200);
    expect(await finalize(bank, assertion)).toEqual({
      status: 401,
      json: {
        title: 'failed to get session data',
        details: 'received challenge does not match with any stored one',
        status: 401,
      },
    });
    const refused = await call(bank, '/audit_logs?type=webauthn_transaction_final_failed', { method: 'GET' });
    expect(refused.json).toEqual([
      expect.objectContaining({ type: 'webauthn_transaction_final_failed', error: expect.any(String) }),
    ]);

    // A login challenge signed by the same passkey is no transaction.
    const login = await call(bank, '/login/initialize', { body: {}, key: null });
    expect((await finalize(bank, await phone.getAssertion(login.json.publicKey, APP_ORIGIN))).status).toBe(
      401,
    );
    // And a transaction challenge is no login.
    const second = await initialize(bank, {
      user_id: 'gina',
      transaction_id: 'gina-2',
      transaction_data: { a: 2 },
    });
    const asLogin = await call(bank, '/login/finalize', {
      body: await phone.getAssertion(second.options, APP_ORIGIN),
      key: null,
    });
    expect(asLogin.status).toBeGreaterThanOrEqual(400);
    expect(asLogin.status).toBeLessThan(500);

    // The security key is not offered, and refused if it answers anyway.
    const third = await initialize(bank, {
      user_id: 'gina',
      transaction_id: 'gina-3',
      transaction_data: { a: 3 },
    });
    expect(third.options.allowCredentials?.map((c) => c.id)).toEqual([passkey.id]);
    const byKey = await key.getAssertion(third.options, APP_ORIGIN, { credentialId: mfaKey.id });
    expect(await finalize(bank, byKey)).toMatchObject({
      status: 401,
      json: { title: 'failed to validate assertion', details: expect.any(String), status: 401 },
    });
    // A body that is no assertion, in Hanko's words for this call.
    expect(await call(bank, '/transaction/finalize', { body: { id: 7 } })).toMatchObject({
      status: 400,
      json: { title: 'unable to finish transaction', status: 400 },
    });

    // Another user's passkey, a bad signature, and a passkey without user verification.
    const hugo = new SoftAuthenticator();
    await registerPasskey(bank, 'hugo', hugo);
    const fourth = await initialize(bank, {
      user_id: 'gina',
      transaction_id: 'gina-4',
      transaction_data: { a: 4 },
    });
    expect(
      (await finalize(bank, await hugo.getAssertion({ ...fourth.options, allowCredentials: [] }, APP_ORIGIN)))
        .status,
    ).toBe(401);
    const fifth = await initialize(bank, {
      user_id: 'gina',
      transaction_id: 'gina-5',
      transaction_data: { a: 5 },
    });
    expect(
      (await finalize(bank, await phone.getAssertion(fifth.options, APP_ORIGIN, { badSignature: true })))
        .status,
    ).toBe(401);
    const sixth = await initialize(bank, {
      user_id: 'gina',
      transaction_id: 'gina-6',
      transaction_data: { a: 6 },
    });
    expect(
      (await finalize(bank, await phone.getAssertion(sixth.options, APP_ORIGIN, { userVerified: false })))
        .status,
    ).toBe(401);
    // A transaction of another tenant cannot be finished here.
    await registerPasskey(otherBank, 'gina', phone);
    const elsewhere = await initialize(otherBank, {
      user_id: 'gina',
      transaction_id: 'gina-x',
      transaction_data: { a: 1 },
    });
    expect((await finalize(bank, await phone.getAssertion(elsewhere.options, APP_ORIGIN))).status).toBe(401);
  });

  it('takes transaction data nested as deep as Go reads it, and refuses deeper data with 400 naming the limit', async () => {
    await registerPasskey(bank, 'nina', new SoftAuthenticator());
    const initializeNested = async (transactionId: string, depth: number) => {
      const data = `${'['.repeat(depth)}1${']'.repeat(depth)}`;
      // Sent as text: JSON.stringify itself gives up on data this deep.
      return { ...(await initializeWithDataText(bank, 'nina', transactionId, data)), data };
    };
    // Go's decoder reads 10,000 levels in a body; the request object is the first of them.
    const deepest = await initializeNested('nina-deepest', 9999);
    expect(deepest.status).toBe(200);
    const challenge = Buffer.from(deepest.json.publicKey.challenge, 'base64url');
    expect(challenge.subarray(32)).toEqual(
      createHash('sha256').update(`nina-deepest${deepest.data}`).digest(),
    );
    const refused = await initializeNested('nina-deeper', 10_000);
    expect(refused).toMatchObject({
      status: 400,
      json: { status: 400, details: expect.stringContaining('more than 9999 levels deep') },
    });
    expect(
      (await transactionRows(bank)).filter((t) => t.user_id === 'nina').map((t) => t.identifier),
    ).toEqual(['nina-deepest']);
  });

  it('lets one of two concurrent requests with the same id win', async () => {
    await registerPasskey(bank, 'ivan', new SoftAuthenticator());
    const body = { user_id: 'ivan', transaction_id: 'ivan-race', transaction_data: { a: 1 } };
    const statuses = (await Promise.all([initialize(bank, body), initialize(bank, body)])).map(
      (r) => r.status,
    );
    expect(statuses.sort()).toEqual([200, 409]);
  });

  it('requires the API key on every transaction call', async () => {
    for (const key of [null, 'spk_wrong', otherBank.apiKey]) {
      expect((await call(bank, '/transaction/initialize', { key, body: {} })).status).toBe(401);
      expect((await call(bank, '/transaction/finalize', { key, body: {} })).status).toBe(401);
      expect((await call(bank, '/transaction/alice', { key, method: 'GET' })).status).toBe(401);
    }
    // A user id no user can have (over WebAuthn's 64 bytes) is a bad request.
    expect(await call(bank, `/transaction/${'u'.repeat(65)}`, { method: 'GET' })).toEqual({
      status: 400,
      json: { title: 'invalid user id', details: 'user_id: must be at most 64 bytes', status: 400 },
    });
  });
});
