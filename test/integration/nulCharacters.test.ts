import { createApiKey } from '../../src/admin/apiKeys.js';
import { createClient } from '../../src/oidc/clients.js';
import { createTenant } from '../../src/passkeyApi/tenants.js';
import { countRows } from '../support/countRows.js';
import { startTestApp, type TestApp } from '../support/testApp.js';

/**
 * Postgres cannot store U+0000 in text or jsonb. Input carrying one is the caller's mistake:
 * it gets a 4xx in the shape of the endpoint it hit, never a 500, and stores nothing.
 */
describe('input with NUL characters', () => {
  let sesame: TestApp;

  beforeAll(async () => {
    sesame = await startTestApp({ KEY_ENCRYPTION_SECRET: 'nul-test-key-encryption-secret-0123456789abcdef' });
  });

  afterAll(() => sesame.stop());

  const count = (table: 'oidc_models' | 'clients' | 'passkey_tenant_users') => countRows(sesame.db, table);

  it('in an authorization request: the app gets invalid_request at its redirect URI, no interaction is stored', async () => {
    const { client } = await createClient(
      sesame.db,
      { name: 'Web', redirect_uris: ['https://app.example/cb'] },
      'test',
    );
    const before = await count('oidc_models');
    for (const parameter of ['state=a%00b', 'nonce=%00', 'login_hint=x%00y']) {
      const url = new URL('/auth', sesame.baseUrl);
      url.search = new URLSearchParams({
        client_id: client.client_id,
        response_type: 'code',
        scope: 'openid',
        redirect_uri: 'https://app.example/cb',
        code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
        code_challenge_method: 'S256',
      }).toString();
      const response = await fetch(`${url}&${parameter}`, { redirect: 'manual' });
      expect(response.status).toBe(303);
      const location = new URL(response.headers.get('location')!);
      expect(`${location.origin}${location.pathname}`).toBe('https://app.example/cb');
      expect(location.searchParams.get('error')).toBe('invalid_request');
    }
    expect(await count('oidc_models')).toBe(before);
  });

  it('in the admin API: 400 with a JSON error, no client created', async () => {
    const { key } = await createApiKey(sesame.db, 'nul test', 'test');
    const before = await count('clients');
    const response = await fetch(`${sesame.baseUrl}/api/admin/clients`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'Notes\u0000', redirect_uris: ['https://notes.example/cb'] }),
    });
    expect(response.status).toBe(400);
    expect(await response.json()).toMatchObject({ error: 'invalid_request' });
    expect(await count('clients')).toBe(before);
  });

  it('in the passkey API: 400 in the Hanko error shape, no user created', async () => {
    const { tenant, apiKey } = await createTenant(
      sesame.db,
      sesame.config,
      { name: 'Notes', origins: ['https://app.example'] },
      'test',
    );
    const response = await fetch(`${sesame.baseUrl}/passkey-api/${tenant.id}/registration/initialize`, {
      method: 'POST',
      headers: { apikey: apiKey, 'content-type': 'application/json' },
      body: JSON.stringify({ user_id: 'u-1', username: 'ada\u0000' }),
    });
    expect(response.status).toBe(400);
    // Hanko's title for a body that breaks a rule (it was the status text, "Bad Request", before).
    // A NUL is a control character, which a name refuses (src/text.ts): the field is named.
    expect(await response.json()).toEqual({
      title: 'unable to validate request',
      details: 'username: must not contain control characters',
      status: 400,
    });
    expect(await count('passkey_tenant_users')).toBe(0);
  });
});
