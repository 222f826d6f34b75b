import { randomBytes } from 'node:crypto';
import { createApiKey } from '../../src/admin/apiKeys.js';
import { auditQueries } from '../../src/db/queries/audit.js';
import { clientsQueries } from '../../src/db/queries/clients.js';
import { createClient } from '../../src/oidc/clients.js';
import { createResource } from '../../src/oidc/resources.js';
import { beginLogin, discoverRp, finishLogin, Person, type TestRp } from '../support/oidcFlow.js';
import { startTestApp, type TestApp } from '../support/testApp.js';

const REDIRECT_URI = 'http://127.0.0.1:8917/callback';
const API = 'https://api.introspection.example';

interface Credentials {
  client_id: string;
  client_secret: string;
}

/**
 * Who may introspect whose tokens (RFC 7662 §4): a client its own; another app's access tokens
 * only a client marked as checking tokens (`introspect_tokens`, an API registered as a
 * client); another app's refresh tokens nobody. An app that is no API learns nothing of
 * another app's sign-ins: not whose they are, not their session, scope or times.
 */
describe('introspection of another app’s tokens', () => {
  let sesame: TestApp;
  let key: string;
  let appA: Credentials;
  let rpA: TestRp;
  /** Another confidential app, not marked: introspects its own tokens only. */
  let appB: Credentials;
  /** An API marked as checking tokens. */
  let checker: Credentials;
  /** What app A got for a person: an opaque access token and refresh token, and a JWT for the API. */
  let tokensOfA: { opaque: string; refresh: string; jwt: string; sub: string };

  const created = async (input: Record<string, unknown>): Promise<Credentials> => {
    const { client, client_secret } = await createClient(sesame.db, input, 'test');
    return { client_id: client.client_id, client_secret: client_secret! };
  };

  beforeAll(async () => {
    sesame = await startTestApp();
    key = (await createApiKey(sesame.db, 'tests', 'test')).key;
    await createResource(sesame.db, { identifier: API, name: 'Checked API', scopes: ['read'] }, 'test');
    appA = await created({ name: 'App A', redirect_uris: [REDIRECT_URI] });
    appB = await created({ name: 'App B', redirect_uris: [REDIRECT_URI] });
    checker = await created({ name: 'API', grant_types: ['client_credentials'], introspect_tokens: true });
    rpA = await discoverRp(sesame.baseUrl, appA, REDIRECT_URI);

    const person = new Person(sesame.baseUrl);
    const first = await beginLogin(rpA, 'openid offline_access', { prompt: 'consent' });
    const next = await person.signUp(
      await person.open(first.url),
      `i${randomBytes(4).toString('hex')}@example.com`,
    );
    const opaque = await finishLogin(rpA, first, await person.continueToApp(next, REDIRECT_URI));
    const forApi = await beginLogin(rpA, 'openid read', { resource: API });
    const jwt = await finishLogin(rpA, forApi, await person.continueToApp(forApi.url, REDIRECT_URI));
    expect(jwt.access_token.split('.')).toHaveLength(3);
    expect(opaque.access_token.split('.')).toHaveLength(1);
    tokensOfA = {
      opaque: opaque.access_token,
      refresh: opaque.refresh_token!,
      jwt: jwt.access_token,
      sub: opaque.claims()!.sub,
    };
  }, 60_000);

  afterAll(() => sesame.stop());

  async function introspect(token: string, as: Credentials) {
    const response = await fetch(new URL('/token/introspection', sesame.baseUrl), {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        authorization: `Basic ${Buffer.from(`${as.client_id}:${as.client_secret}`).toString('base64')}`,
      },
      body: new URLSearchParams({ token }),
    });
    expect(response.status).toBe(200);
    return (await response.json()) as { active: boolean } & Record<string, unknown>;
  }

  async function clientCredentialsToken(as: Credentials): Promise<string> {
    const response = await fetch(new URL('/token', sesame.baseUrl), {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        authorization: `Basic ${Buffer.from(`${as.client_id}:${as.client_secret}`).toString('base64')}`,
      },
      body: 'grant_type=client_credentials',
    });
    expect(response.status).toBe(200);
    return ((await response.json()) as { access_token: string }).access_token;
  }

  async function api(method: string, path: string, body?: unknown, rawBody?: string) {
    const response = await fetch(`${sesame.baseUrl}/api/admin${path}`, {
      method,
      headers: {
        authorization: `Bearer ${key}`,
        ...((body !== undefined || rawBody !== undefined) && { 'content-type': 'application/json' }),
      },
      body: rawBody ?? (body === undefined ? undefined : JSON.stringify(body)),
    });
    // biome-ignore lint/suspicious/noExplicitAny: answers are checked field by field.
    return { status: response.status, json: (await response.json().catch(() => undefined)) as any };
  }

  it('tells an app that checks no tokens nothing of another app’s access token, opaque or JWT', async () => {
    expect(await introspect(tokensOfA.opaque, appB)).toEqual({ active: false });
    expect(await introspect(tokensOfA.jwt, appB)).toEqual({ active: false });
    // Its own tokens it still introspects, and app A its own.
    expect(await introspect(await clientCredentialsToken(appB), appB)).toMatchObject({
      active: true,
      client_id: appB.client_id,
    });
    expect(await introspect(tokensOfA.opaque, appA)).toMatchObject({
      active: true,
      sub: tokensOfA.sub,
      client_id: appA.client_id,
    });
    expect(await introspect(tokensOfA.jwt, appA)).toMatchObject({
      active: true,
      sub: tokensOfA.sub,
      client_id: appA.client_id,
      aud: API,
    });
  });

  it('describes another app’s access tokens to a client marked as checking tokens, and its refresh tokens to nobody but the app', async () => {
    expect(await introspect(tokensOfA.opaque, checker)).toMatchObject({
      active: true,
      sub: tokensOfA.sub,
      client_id: appA.client_id,
    });
    expect(await introspect(tokensOfA.jwt, checker)).toMatchObject({
      active: true,
      sub: tokensOfA.sub,
      client_id: appA.client_id,
      aud: API,
    });
    expect(await introspect(tokensOfA.refresh, checker)).toEqual({ active: false });
    expect(await introspect(tokensOfA.refresh, appB)).toEqual({ active: false });
    expect(await introspect(tokensOfA.refresh, appA)).toMatchObject({
      active: true,
      sub: tokensOfA.sub,
      client_id: appA.client_id,
    });
  });

  it('sets and clears the mark through the admin API, which takes effect at once', async () => {
    const set = await api('PATCH', `/clients/${appB.client_id}`, { introspect_tokens: true });
    expect(set.status).toBe(200);
    expect(set.json).toMatchObject({ client_id: appB.client_id, introspect_tokens: true });
    expect((await api('GET', `/clients/${appB.client_id}`)).json.introspect_tokens).toBe(true);
    expect(await introspect(tokensOfA.opaque, appB)).toMatchObject({ active: true, sub: tokensOfA.sub });
    expect(await introspect(tokensOfA.jwt, appB)).toMatchObject({ active: true, sub: tokensOfA.sub });

    const cleared = await api('PATCH', `/clients/${appB.client_id}`, { introspect_tokens: false });
    expect(cleared.status).toBe(200);
    expect(cleared.json.introspect_tokens).toBe(false);
    expect(await introspect(tokensOfA.opaque, appB)).toEqual({ active: false });
    expect(await introspect(tokensOfA.jwt, appB)).toEqual({ active: false });
    // The activity log tells granting the mark from taking it back.
    const updates = (await auditQueries.recent(sesame.db, 50))
      .filter((entry) => entry.action === 'client.update' && entry.target === appB.client_id)
      .map((entry) => entry.details);
    expect(updates.slice(0, 2)).toEqual([
      expect.objectContaining({ fields: ['introspect_tokens'], introspect_tokens: false }),
      expect.objectContaining({ fields: ['introspect_tokens'], introspect_tokens: true }),
    ]);

    // A new client is not marked unless asked; the API says so in its answer and its list.
    const fresh = await api('POST', '/clients', { name: 'Fresh', redirect_uris: [REDIRECT_URI] });
    expect(fresh.status).toBe(201);
    expect(fresh.json.introspect_tokens).toBe(false);
    const marked = await api('POST', '/clients', {
      name: 'Checker 2',
      grant_types: ['client_credentials'],
      introspect_tokens: true,
    });
    expect(marked.status).toBe(201);
    expect(marked.json.introspect_tokens).toBe(true);
    const listed = (await api('GET', '/clients')).json as Array<{
      client_id: string;
      introspect_tokens: boolean;
    }>;
    expect(listed.find((c) => c.client_id === marked.json.client_id)?.introspect_tokens).toBe(true);
    expect(listed.find((c) => c.client_id === appB.client_id)?.introspect_tokens).toBe(false);
  });

  it('refuses the mark on a public client, and a value that is not a boolean, changing nothing', async () => {
    const count = async () => (await clientsQueries.list(sesame.db)).length;
    const before = await count();
    const publicCreate = await api('POST', '/clients', {
      name: 'SPA',
      redirect_uris: [REDIRECT_URI],
      public: true,
      introspect_tokens: true,
    });
    expect(publicCreate.status).toBe(400);
    expect(JSON.stringify(publicCreate.json)).toMatch(/public client cannot introspect/);
    expect(await count()).toBe(before);

    const spa = await createClient(
      sesame.db,
      { name: 'SPA', redirect_uris: [REDIRECT_URI], public: true },
      'test',
    );
    expect(spa.client.introspect_tokens).toBe(false);
    const publicPatch = await api('PATCH', `/clients/${spa.client.client_id}`, { introspect_tokens: true });
    expect(publicPatch.status).toBe(400);
    expect(JSON.stringify(publicPatch.json)).toMatch(/public client cannot introspect/);
    expect((await clientsQueries.find(sesame.db, spa.client.client_id))!.introspect_tokens).toBe(false);
    // Clearing it on a public client asks for what already holds.
    expect(
      (await api('PATCH', `/clients/${spa.client.client_id}`, { introspect_tokens: false })).status,
    ).toBe(200);
    // The database refuses it too.
    await expect(
      sesame.db
        .updateTable('clients')
        .set({ introspect_tokens: true })
        .where('client_id', '=', spa.client.client_id)
        .execute(),
    ).rejects.toThrow(/clients_public_never_introspects/);

    const row = await clientsQueries.find(sesame.db, appB.client_id);
    for (const value of ['yes', 'true', 1, null, [], {}]) {
      const patched = await api('PATCH', `/clients/${appB.client_id}`, {
        introspect_tokens: value,
        name: 'Renamed',
      });
      expect([value, patched.status]).toEqual([value, 400]);
      const posted = await api('POST', '/clients', {
        name: 'Odd',
        redirect_uris: [REDIRECT_URI],
        introspect_tokens: value,
      });
      expect([value, posted.status]).toEqual([value, 400]);
    }
    expect(await clientsQueries.find(sesame.db, appB.client_id)).toEqual(row);
    expect(await count()).toBe(before + 1);
    expect(await introspect(tokensOfA.opaque, appB)).toEqual({ active: false });
  });
});
