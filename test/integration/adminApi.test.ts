import fs from 'node:fs';
import { gzipSync } from 'node:zlib';
import { parse as parseYaml } from 'yaml';
import { createApiKey, revokeApiKey } from '../../src/admin/apiKeys.js';
import { sha256Hex } from '../../src/crypto.js';
import { auditQueries } from '../../src/db/queries/audit.js';
import { clientsQueries } from '../../src/db/queries/clients.js';
import { oidcModelsQueries } from '../../src/db/queries/oidcModels.js';
import { passkeyTenantsQueries } from '../../src/db/queries/passkeyTenants.js';
import { usersQueries } from '../../src/db/queries/users.js';
import { beginLogin, discoverRp, finishLogin, Person } from '../support/oidcFlow.js';
import { startTestApp, type TestApp } from '../support/testApp.js';

const APP_URI = 'https://notes.example.com/callback';

/** The keys of an OpenAPI path item that are operations. */
const HTTP_METHODS = new Set(['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace']);

describe('the admin REST API', () => {
  let sesame: TestApp;
  let key: string;
  let keyId: string;

  beforeAll(async () => {
    sesame = await startTestApp();
    const created = await createApiKey(sesame.db, 'tests', 'test');
    key = created.key;
    keyId = created.apiKey.id;
  });

  afterAll(() => sesame.stop());

  /** Calls the API; `auth` is the bearer key (null: no Authorization header at all). */
  async function api(
    method: string,
    path: string,
    options: { auth?: string | null; json?: unknown; body?: BodyInit; headers?: Record<string, string> } = {},
  ) {
    const headers: Record<string, string> = { ...options.headers };
    const auth = options.auth === undefined ? key : options.auth;
    if (auth !== null) headers.authorization = `Bearer ${auth}`;
    let body = options.body;
    if (options.json !== undefined) {
      body = JSON.stringify(options.json);
      headers['content-type'] = 'application/json';
    }
    const response = await fetch(`${sesame.baseUrl}/api/admin${path}`, { method, headers, body });
    const text = await response.text();
    return {
      status: response.status,
      headers: response.headers,
      text,
      // biome-ignore lint/suspicious/noExplicitAny: test responses are checked field by field.
      json: (): any => JSON.parse(text),
    };
  }

  const clientCount = async () => (await clientsQueries.list(sesame.db)).length;

  it('refuses a request without an Authorization header with 401, a JSON error and WWW-Authenticate: Bearer', async () => {
    const response = await api('GET', '/clients', { auth: null });
    expect(response.status).toBe(401);
    expect(response.headers.get('www-authenticate')).toMatch(/^Bearer\b/);
    expect(response.json()).toMatchObject({ error: 'unauthorized', error_description: expect.any(String) });
  });

  it('refuses an unauthenticated write with 401 before reading its body, malformed or huge', async () => {
    const before = await clientCount();
    const malformed = await api('POST', '/clients', {
      auth: null,
      body: '{"name":',
      headers: { 'content-type': 'application/json' },
    });
    expect(malformed.status).toBe(401);
    const huge = await api('POST', '/clients', {
      auth: null,
      body: JSON.stringify({ name: 'x'.repeat(200_000) }),
      headers: { 'content-type': 'application/json' },
    });
    expect(huge.status).toBe(401);
    expect(await clientCount()).toBe(before);
  });

  it('refuses an unknown key, a malformed header and a revoked key with 401 invalid_token', async () => {
    const unknown = await api('GET', '/clients', { auth: `ssk_${'A'.repeat(43)}` });
    expect(unknown.status).toBe(401);
    expect(unknown.headers.get('www-authenticate')).toContain('error="invalid_token"');
    expect(unknown.json().error).toBe('invalid_token');

    const basic = await api('GET', '/clients', { auth: null, headers: { authorization: `Basic ${key}` } });
    expect(basic.status).toBe(401);

    const doomed = await createApiKey(sesame.db, 'doomed', 'test');
    expect((await api('GET', '/clients', { auth: doomed.key })).status).toBe(200);
    await revokeApiKey(sesame.db, doomed.apiKey.id, 'test');
    const revoked = await api('GET', '/clients', { auth: doomed.key });
    expect(revoked.status).toBe(401);
    expect(revoked.json().error).toBe('invalid_token');
  });

  /** Every route of the admin API, read from its router, with each parameter `value`. */
  const adminApiRoutes = (value: string) =>
    sesame.app.routers
      .flatMap((router) => router.stack)
      .filter((layer) => typeof layer.path === 'string' && layer.path.startsWith('/api/admin/'))
      .flatMap((layer) =>
        // A catch-all (router.all) is walked with the methods a script would use.
        (layer.methods.length > 5 ? ['GET', 'POST'] : layer.methods.filter((m) => m !== 'HEAD')).map(
          (method) => ({
            method,
            path: (layer.path as string)
              .slice('/api/admin'.length)
              .replace(/\{\*\w+\}/g, 'anything')
              .replace(/:\w+/g, value),
          }),
        ),
      );

  it('is described whole by docs/openapi.yaml, which parses: every route and method, no more', () => {
    const document = parseYaml(
      fs.readFileSync(new URL('../../docs/openapi.yaml', import.meta.url), 'utf8'),
    ) as {
      paths: Record<string, Record<string, { responses: Record<string, Record<string, unknown>> }>>;
    };
    const described = Object.entries(document.paths).flatMap(([path, operations]) =>
      Object.keys(operations)
        .filter((key) => HTTP_METHODS.has(key))
        .map((method) => `${method.toUpperCase()} ${path.replace(/\{\w+\}/g, '{}')}`),
    );
    const served = adminApiRoutes('{}')
      .filter((route) => !route.path.includes('anything'))
      .map((route) => `${route.method} ${route.path}`);
    expect([...new Set(described)].sort()).toEqual([...new Set(served)].sort());
    // A comma or ": " in an unquoted description makes YAML keys no Response object has.
    for (const operations of Object.values(document.paths))
      for (const [method, operation] of Object.entries(operations))
        for (const response of HTTP_METHODS.has(method) ? Object.values(operation.responses) : [])
          for (const key of Object.keys(response))
            expect(['description', 'content', 'headers', 'links', '$ref']).toContain(key);
  });

  describe('a key of scope metrics', () => {
    let metricsKey: string;

    beforeAll(async () => {
      metricsKey = (await createApiKey(sesame.db, 'prometheus', 'test', 'metrics')).key;
    });

    it('is refused at every admin API route with 403 insufficient_scope naming its scope, and changes nothing', async () => {
      const person = await usersQueries.insert(sesame.db, {
        email: 'scraped@example.com',
        name: null,
        emailVerified: true,
      });
      const client = await api('POST', '/clients', { json: { name: 'Kept', redirect_uris: [APP_URI] } });
      const snapshot = async () => ({
        clients: await clientsQueries.list(sesame.db),
        person: await usersQueries.findById(sesame.db, person.id),
        audit: await auditQueries.recent(sesame.db, 1000),
      });
      const before = await snapshot();

      const routes = adminApiRoutes(person.id);
      expect(routes).toEqual(
        expect.arrayContaining([
          { method: 'GET', path: '/clients' },
          { method: 'POST', path: '/clients' },
          { method: 'POST', path: `/users/${person.id}/promote` },
          { method: 'DELETE', path: `/users/${person.id}` },
        ]),
      );
      const answers = [];
      for (const { method, path } of routes) {
        const json =
          method === 'GET' || method === 'DELETE' ? undefined : { name: 'Sneaky', redirect_uris: [APP_URI] };
        const response = await api(method, path, { auth: metricsKey, json });
        answers.push({ method, path, status: response.status, body: response.json() });
        expect(response.headers.get('www-authenticate')).toBe(
          'Bearer realm="sesame", error="insufficient_scope", scope="admin"',
        );
      }
      for (const answer of answers) {
        expect(answer).toEqual({
          method: answer.method,
          path: answer.path,
          status: 403,
          body: {
            error: 'insufficient_scope',
            error_description: expect.stringMatching(
              /^This API key's scope is metrics \(GET \/metrics only\)/,
            ),
          },
        });
      }
      const deleted = await api('DELETE', `/clients/${client.json().client_id}`, { auth: metricsKey });
      expect(deleted.status).toBe(403);
      expect(await snapshot()).toEqual(before);
    });
  });

  it('creates, lists, reads, updates, rotates and deletes a client, auditing each change as the key', async () => {
    const created = await api('POST', '/clients', {
      json: {
        name: 'Notes',
        redirect_uris: [APP_URI],
        post_logout_redirect_uris: ['https://notes.example.com/'],
      },
    });
    expect(created.status).toBe(201);
    expect(created.headers.get('cache-control')).toBe('no-store');
    const { client_id, client_secret } = created.json();
    expect(created.json()).toMatchObject({ name: 'Notes', public: false, redirect_uris: [APP_URI] });
    expect(client_secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
    // Only the hash is stored.
    expect((await clientsQueries.find(sesame.db, client_id))!.secret_hash).toBe(sha256Hex(client_secret));

    const list = await api('GET', '/clients');
    expect(list.status).toBe(200);
    expect(list.json().map((c: { client_id: string }) => c.client_id)).toContain(client_id);
    expect(list.text).not.toContain(client_secret);
    expect(list.text).not.toContain('secret');

    const read = await api('GET', `/clients/${client_id}`);
    expect(read.json()).toMatchObject({ client_id, name: 'Notes' });

    const updated = await api('PATCH', `/clients/${client_id}`, {
      json: { name: 'Notes 2', redirect_uris: ['https://notes.example.com/cb2'] },
    });
    expect(updated.status).toBe(200);
    expect(updated.json()).toMatchObject({
      name: 'Notes 2',
      redirect_uris: ['https://notes.example.com/cb2'],
    });

    const rotated = await api('POST', `/clients/${client_id}/rotate-secret`);
    expect(rotated.status).toBe(200);
    expect(rotated.json().client_secret).not.toBe(client_secret);
    expect((await clientsQueries.find(sesame.db, client_id))!.secret_hash).toBe(
      sha256Hex(rotated.json().client_secret),
    );

    const deleted = await api('DELETE', `/clients/${client_id}`);
    expect(deleted.status).toBe(204);
    expect(await clientsQueries.find(sesame.db, client_id)).toBeUndefined();
    expect((await api('GET', `/clients/${client_id}`)).status).toBe(404);
    expect((await api('DELETE', `/clients/${client_id}`)).status).toBe(404);

    const actions = (await auditQueries.recent(sesame.db, 50))
      .filter((e) => e.target === client_id)
      .map((e) => [e.actor, e.action]);
    expect(actions).toEqual(
      expect.arrayContaining([
        [`api-key:${keyId}`, 'client.create'],
        [`api-key:${keyId}`, 'client.update'],
        [`api-key:${keyId}`, 'client.rotate_secret'],
        [`api-key:${keyId}`, 'client.delete'],
      ]),
    );
  });

  it('refuses invalid redirect URIs with 400 naming the field, and stores nothing', async () => {
    const before = await clientCount();
    for (const uri of [
      'http://evil.example.com/cb',
      'javascript:alert(1)',
      'https://a.example.com/cb#x',
      '/callback',
      'myapp:/callback',
    ]) {
      const response = await api('POST', '/clients', { json: { name: 'Bad', redirect_uris: [uri] } });
      expect(response.status).toBe(400);
      expect(response.json()).toMatchObject({
        error: 'invalid_request',
        error_description: expect.stringContaining('redirect_uris'),
        fields: { redirect_uris: expect.any(String) },
      });
    }
    const wrongType = await api('POST', '/clients', {
      json: { name: 'Bad', redirect_uris: 'https://x.example' },
    });
    expect(wrongType.status).toBe(400);
    expect(wrongType.json().fields).toHaveProperty('redirect_uris');
    const unknownField = await api('POST', '/clients', {
      json: { name: 'Bad', redirect_uris: [APP_URI], client_secret: 'mine' },
    });
    expect(unknownField.status).toBe(400);
    expect(await clientCount()).toBe(before);

    const { client_id } = (
      await api('POST', '/clients', { json: { name: 'Ok', redirect_uris: [APP_URI] } })
    ).json();
    const patch = await api('PATCH', `/clients/${client_id}`, {
      json: { redirect_uris: ['ftp://x.example/'] },
    });
    expect(patch.status).toBe(400);
    expect(patch.json().fields).toHaveProperty('redirect_uris');
    expect((await api('GET', `/clients/${client_id}`)).json().redirect_uris).toEqual([APP_URI]);
  });

  it('answers malformed JSON with 400, an oversized body with 413 and a form body with 415, changing nothing', async () => {
    const before = await clientCount();
    const malformed = await api('POST', '/clients', {
      body: '{"name": "x", ',
      headers: { 'content-type': 'application/json' },
    });
    expect(malformed.status).toBe(400);
    expect(malformed.json().error).toBe('invalid_request');

    const scalar = await api('POST', '/clients', {
      body: '"just a string"',
      headers: { 'content-type': 'application/json' },
    });
    expect(scalar.status).toBe(400);

    const oversized = await api('POST', '/clients', {
      json: { name: 'Big', redirect_uris: [APP_URI], padding: 'x'.repeat(200_000) },
    });
    expect(oversized.status).toBe(413);
    expect(oversized.json().error).toBe('payload_too_large');

    const form = await api('POST', '/clients', {
      body: 'name=Form&redirect_uris=https://a.example.com/cb',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    expect(form.status).toBe(415);
    expect(await clientCount()).toBe(before);
  });

  it('answers a body its Content-Encoding does not decode with 400, and a coding it does not know with 415 naming it', async () => {
    const before = {
      clients: await clientCount(),
      tenants: (await passkeyTenantsQueries.list(sesame.db)).length,
    };
    const tenant = JSON.stringify({ name: 'Zipped', origins: ['https://zipped.example.com'] });
    for (const encoding of ['gzip', 'deflate', 'br']) {
      for (const path of ['/clients', '/passkey-tenants']) {
        const garbled = await api('POST', path, {
          body: 'garbage',
          headers: { 'content-type': 'application/json', 'content-encoding': encoding },
        });
        expect({ encoding, path, status: garbled.status }).toEqual({ encoding, path, status: 400 });
        expect(garbled.json()).toMatchObject({ error: 'invalid_request' });
      }
    }
    const unknown = await api('POST', '/passkey-tenants', {
      body: tenant,
      headers: { 'content-type': 'application/json', 'content-encoding': 'foo' },
    });
    expect(unknown.status).toBe(415);
    expect(unknown.json().error_description).toMatch(/Content-Encoding "foo" is not supported/);
    expect({
      clients: await clientCount(),
      tenants: (await passkeyTenantsQueries.list(sesame.db)).length,
    }).toEqual(before);
    // A body that is what its encoding says is read as any other, whatever the coding's case
    // (content codings are case-insensitive, RFC 9110 §8.4.1).
    for (const encoding of ['gzip', 'GZip']) {
      const zipped = await api('POST', '/passkey-tenants', {
        body: new Uint8Array(gzipSync(tenant)),
        headers: { 'content-type': 'application/json', 'content-encoding': encoding },
      });
      expect({ encoding, status: zipped.status }).toEqual({ encoding, status: 201 });
      await api('DELETE', `/passkey-tenants/${zipped.json().tenant_id}`);
    }
  });

  it('answers an unknown endpoint under /api/admin with a JSON 404', async () => {
    const response = await api('GET', '/nothing-here');
    expect(response.status).toBe(404);
    expect(response.json().error).toBe('not_found');
  });

  it('lists, disables, enables and deletes users, and disabling revokes their sessions and tokens', async () => {
    const user = await usersQueries.insert(sesame.db, { email: 'bob@example.com', name: 'Bob' });
    await oidcModelsQueries.upsert(sesame.db, 'Session', 'sess-bob', { accountId: user.id }, 3600);
    await oidcModelsQueries.upsert(
      sesame.db,
      'Grant',
      'grant-bob',
      { accountId: user.id, clientId: 'c' },
      3600,
    );
    await oidcModelsQueries.upsert(
      sesame.db,
      'AccessToken',
      'at-bob',
      { grantId: 'grant-bob', clientId: 'c' },
      3600,
    );
    await oidcModelsQueries.upsert(sesame.db, 'ClientCredentials', 'cc-other', { clientId: 'c' }, 3600);

    const list = await api('GET', '/users');
    expect(list.json()).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ id: user.id, email: 'bob@example.com', disabled: false }),
      ]),
    );

    const disabled = await api('POST', `/users/${user.id}/disable`);
    expect(disabled.status).toBe(200);
    expect(disabled.json()).toMatchObject({ id: user.id, disabled: true });
    expect((await usersQueries.findById(sesame.db, user.id))!.disabled_at).not.toBeNull();
    for (const [model, id] of [
      ['Session', 'sess-bob'],
      ['Grant', 'grant-bob'],
      ['AccessToken', 'at-bob'],
    ] as const) {
      expect(await oidcModelsQueries.find(sesame.db, model, id)).toBeUndefined();
    }
    // Tokens that belong to nobody (client credentials) are untouched.
    expect(await oidcModelsQueries.find(sesame.db, 'ClientCredentials', 'cc-other')).toBeDefined();

    const enabled = await api('POST', `/users/${user.id}/enable`);
    expect(enabled.json()).toMatchObject({ disabled: false });

    expect((await api('POST', '/users/00000000-0000-0000-0000-000000000000/disable')).status).toBe(404);
    expect((await api('POST', '/users/not-a-uuid/disable')).status).toBe(404);

    expect((await api('DELETE', `/users/${user.id}`)).status).toBe(204);
    expect(await usersQueries.findById(sesame.db, user.id)).toBeUndefined();
    const actions = (await auditQueries.recent(sesame.db, 50))
      .filter((e) => e.target === user.id)
      .map((e) => e.action);
    expect(actions).toEqual(expect.arrayContaining(['user.disable', 'user.enable', 'user.delete']));
  });

  /** Follows the `Link: <...>; rel="next"` headers from `first` to the last page: each page's items, and all of them. */
  async function everyPage<T>(first: string): Promise<{ pages: T[][]; items: T[] }> {
    const pages: T[][] = [];
    for (let path: string | undefined = first; path; ) {
      const page = await api('GET', path);
      expect(page.status).toBe(200);
      pages.push(page.json() as T[]);
      const link = page.headers.get('link');
      path = link === null ? undefined : link.match(/^<\/api\/admin(\/[^>]+)>; rel="next"$/)![1];
    }
    return { pages, items: pages.flat() };
  }

  it('pages through users in email order with a Link header, searches them, and refuses a bad page size', async () => {
    const emails = [
      'Pager-G@example.com',
      'pager-a@example.com',
      'pager-c@example.com',
      'pager-b@example.com',
    ];
    for (const email of emails) await usersQueries.insert(sesame.db, { email, name: null });
    await usersQueries.insert(sesame.db, { email: 'someone-else@example.com', name: 'Pager Fan' });
    const expected = [...emails.map((e) => e.toLowerCase()), 'someone-else@example.com'].sort();

    const { pages, items } = await everyPage<{ email: string }>('/users?q=PAGER&limit=2');
    for (const page of pages) expect(page.length).toBeLessThanOrEqual(2);
    const seen = items.map((u) => u.email.toLowerCase());
    // Five matches (four by email, one by name), two a page: three pages, none repeated.
    expect(pages).toHaveLength(3);
    expect(seen).toEqual(expected);

    // LIKE's wildcards are plain characters in a search.
    expect((await api('GET', '/users?q=%25')).json()).toEqual([]);
    expect((await api('GET', '/users?q=pager_a')).json()).toEqual([]);

    for (const bad of ['limit=0', 'limit=501', 'limit=2.5', 'limit=lots', 'q=a&q=b']) {
      const refused = await api('GET', `/users?${bad}`);
      expect(refused.status).toBe(400);
      expect(Object.keys(refused.json().fields)).toEqual([bad.split('=')[0]]);
    }
    // The activity log's page size is checked the same way.
    const audit = await api('GET', '/audit-events?limit=0');
    expect(audit.status).toBe(400);
    expect(audit.json().error_description).toBe('limit: must be a whole number from 1 to 500');
  });

  it('pages through the audit events, older ones after the newest 500, with a Link header that keeps the filters', async () => {
    for (let i = 0; i < 7; i += 1)
      await auditQueries.record(sesame.db, 'user:api-pager', 'user.rename', `api-page-${i}`);
    await auditQueries.record(sesame.db, 'user:api-someone-else', 'user.rename', 'api-page-other');
    const { pages, items } = await everyPage<{ target: string }>(
      '/audit-events?actor=user:api-pager&limit=3',
    );
    const seen = items.map((event) => event.target);
    // Seven events of that actor, three a page: three pages, newest first, none repeated or skipped.
    expect(pages).toHaveLength(3);
    expect(seen).toEqual([6, 5, 4, 3, 2, 1, 0].map((i) => `api-page-${i}`));

    for (const bad of ['before=0', 'before=abc', 'before=99999999999999999999', 'before=1&before=2']) {
      const refused = await api('GET', `/audit-events?${bad}`);
      expect({ bad, status: refused.status }).toEqual({ bad, status: 400 });
      expect(Object.keys(refused.json().fields)).toEqual(['before']);
    }
  });

  it('filters the audit events by action, actor and target, and refuses an over-long filter with 400', async () => {
    await auditQueries.record(sesame.db, 'user:api-filter-victim', 'user.taken_over', 'api-filter-target');
    for (let i = 0; i < 60; i += 1)
      await auditQueries.record(sesame.db, 'user:api-flooder', 'user.rename', `api-flood-${i}`);
    const events = async (query: string) => {
      const answer = await api('GET', `/audit-events?${query}`);
      expect({ query, status: answer.status }).toEqual({ query, status: 200 });
      return (answer.json() as { actor: string; action: string; target: string }[]).map(
        ({ actor, action, target }) => `${actor} ${action} ${target}`,
      );
    };
    expect(await events('limit=50')).not.toContain(
      'user:api-filter-victim user.taken_over api-filter-target',
    );
    expect(await events('action=user.taken_over')).toEqual([
      'user:api-filter-victim user.taken_over api-filter-target',
    ]);
    expect(await events('actor=user:api-filter-victim')).toEqual([
      'user:api-filter-victim user.taken_over api-filter-target',
    ]);
    expect(await events('target=api-filter-target')).toEqual([
      'user:api-filter-victim user.taken_over api-filter-target',
    ]);
    expect(await events('actor=user:api-flooder&limit=3')).toEqual(
      [59, 58, 57].map((i) => `user:api-flooder user.rename api-flood-${i}`),
    );
    expect((await events('action=user.&limit=500')).length).toBeGreaterThanOrEqual(61);

    const refused = await api('GET', `/audit-events?action=${'a'.repeat(101)}`);
    expect(refused.status).toBe(400);
    expect(refused.json().error_description).toBe('action: must be at most 100 characters');
    await sesame.db
      .deleteFrom('audit_events')
      .where('actor', 'in', ['user:api-flooder', 'user:api-filter-victim'])
      .execute();
  });

  it('invites someone with a one-time link, and refuses a bad email with 400', async () => {
    const invited = await api('POST', '/users/invite', { json: { email: 'carol@example.com', admin: true } });
    expect(invited.status).toBe(201);
    const { url, expires_at } = invited.json();
    expect(url.startsWith(`${sesame.baseUrl}/`)).toBe(true);
    expect(new Date(expires_at).getTime()).toBeGreaterThan(Date.now());

    // An API for programs answers in English whatever language its caller asks for.
    const bad = await api('POST', '/users/invite', {
      json: { email: 'not-an-email' },
      headers: { 'accept-language': 'de' },
    });
    expect(bad.status).toBe(400);
    expect(bad.json()).toMatchObject({
      error_description: 'email: Enter a valid email address',
      fields: { email: 'Enter a valid email address' },
    });
  });

  it('registers a public client whose sign-in completes with code + PKCE and no secret', async () => {
    const redirectUri = 'http://127.0.0.1:8931/callback';
    const created = await api('POST', '/clients', {
      json: { name: 'Single-page app', redirect_uris: [redirectUri], public: true },
    });
    expect(created.status).toBe(201);
    expect(created.json().client_secret).toBeUndefined();
    const rp = await discoverRp(sesame.baseUrl, { client_id: created.json().client_id }, redirectUri);

    const person = new Person(sesame.baseUrl);
    const pending = await beginLogin(rp);
    const next = await person.signUp(await person.open(pending.url), 'dora@example.com');
    const tokens = await finishLogin(rp, pending, await person.continueToApp(next, redirectUri));
    expect(tokens.claims()).toMatchObject({ email: 'dora@example.com', aud: created.json().client_id });
  });
  describe('passkey API tenants', () => {
    const tenantCount = async () => (await passkeyTenantsQueries.list(sesame.db)).length;

    /** Whether the passkey API itself takes this key for the tenant (401 when it does not). */
    async function passkeyApiAccepts(tenantId: string, apiKey: string) {
      const response = await fetch(`${sesame.baseUrl}/passkey-api/${tenantId}/credentials?user_id=u1`, {
        headers: { apikey: apiKey },
      });
      return response.status !== 401;
    }

    it('refuses every tenant endpoint without an API key, and creates nothing', async () => {
      const before = await tenantCount();
      for (const [method, path] of [
        ['GET', '/passkey-tenants'],
        ['POST', '/passkey-tenants'],
        ['GET', '/passkey-tenants/00000000-0000-0000-0000-000000000000'],
        ['POST', '/passkey-tenants/00000000-0000-0000-0000-000000000000/rotate-key'],
        ['PATCH', '/passkey-tenants/00000000-0000-0000-0000-000000000000'],
        ['DELETE', '/passkey-tenants/00000000-0000-0000-0000-000000000000'],
      ] as const) {
        const response = await api(method, path, {
          auth: null,
          ...(method === 'POST' && { json: { name: 'Sneaky', origins: ['https://app.example.com'] } }),
        });
        expect(response.status).toBe(401);
        expect(response.json().error).toBe('unauthorized');
      }
      expect(await tenantCount()).toBe(before);
    });

    it('creates a tenant with its API key shown once, lists, shows, rotates and deletes it, auditing each change', async () => {
      const created = await api('POST', '/passkey-tenants', {
        json: {
          name: 'Notes',
          origins: ['https://notes.example.com', 'https://www.notes.example.com/'],
          rp_id: 'notes.example.com',
        },
      });
      expect(created.status).toBe(201);
      expect(created.headers.get('cache-control')).toBe('no-store');
      const { tenant_id, api_key } = created.json();
      expect(created.headers.get('location')).toBe(`/api/admin/passkey-tenants/${tenant_id}`);
      expect(created.json()).toEqual({
        tenant_id: expect.stringMatching(/^[0-9a-f-]{36}$/),
        name: 'Notes',
        rp_id: 'notes.example.com',
        origins: ['https://notes.example.com', 'https://www.notes.example.com'],
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
        api_key: expect.stringMatching(/^spk_[A-Za-z0-9_-]{43}$/),
      });
      expect((await passkeyTenantsQueries.findById(sesame.db, tenant_id))!.apiKeyHash).toBe(
        sha256Hex(api_key),
      );
      expect(await passkeyApiAccepts(tenant_id, api_key)).toBe(true);

      const list = await api('GET', '/passkey-tenants');
      expect(list.status).toBe(200);
      expect(list.json()).toEqual(
        expect.arrayContaining([expect.objectContaining({ tenant_id, name: 'Notes' })]),
      );
      expect(list.text).not.toContain(api_key);
      expect(list.text).not.toContain(sha256Hex(api_key));

      const shown = await api('GET', `/passkey-tenants/${tenant_id}`);
      expect(shown.status).toBe(200);
      expect(shown.json()).toMatchObject({ tenant_id, rp_id: 'notes.example.com' });
      expect(shown.json()).not.toHaveProperty('api_key');

      const rotated = await api('POST', `/passkey-tenants/${tenant_id}/rotate-key`);
      expect(rotated.status).toBe(200);
      expect(rotated.json()).toEqual({
        tenant_id,
        api_key: expect.stringMatching(/^spk_/),
        previous_key_expires_at: null,
      });
      expect(rotated.json().api_key).not.toBe(api_key);
      expect(await passkeyApiAccepts(tenant_id, api_key)).toBe(false);
      expect(await passkeyApiAccepts(tenant_id, rotated.json().api_key)).toBe(true);

      expect((await api('DELETE', `/passkey-tenants/${tenant_id}`)).status).toBe(204);
      expect(await passkeyTenantsQueries.findById(sesame.db, tenant_id)).toBeUndefined();
      for (const [method, path] of [
        ['GET', `/passkey-tenants/${tenant_id}`],
        ['POST', `/passkey-tenants/${tenant_id}/rotate-key`],
        ['DELETE', `/passkey-tenants/${tenant_id}`],
        ['GET', '/passkey-tenants/not-a-uuid'],
      ] as const) {
        const missing = await api(method, path);
        expect(missing.status).toBe(404);
        expect(missing.json().error).toBe('not_found');
      }

      const actions = (await auditQueries.recent(sesame.db, 50))
        .filter((e) => e.target === tenant_id)
        .map((e) => [e.actor, e.action]);
      expect(actions).toEqual([
        [`api-key:${keyId}`, 'passkey_tenant.delete'],
        [`api-key:${keyId}`, 'passkey_tenant.rotate_key'],
        [`api-key:${keyId}`, 'passkey_tenant.create'],
      ]);
    });

    it.each([
      [{ name: 'Bad', origins: ['http://app.example.com'] }, 'origins', /must use https/],
      [{ name: 'Bad', origins: ['https://app.example.com/login'] }, 'origins', /without a path/],
      [{ name: 'Bad', origins: ['not a url'] }, 'origins', /not an absolute URL/],
      [{ name: 'Bad', origins: [] }, 'origins', /at least one origin/],
      [{ name: 'Bad' }, 'origins', /is required/],
      [{ name: 'Bad', origins: 'https://app.example.com' }, 'origins', /must be an array/],
      [
        { name: 'Bad', origins: ['https://app.example.com'], rp_id: 'other.example' },
        'rp_id',
        /not a registrable suffix/,
      ],
      [{ name: 'Bad', origins: ['https://app.example.com'], rp_id: 'com' }, 'rp_id', /top-level/],
      [{ name: '   ', origins: ['https://app.example.com'] }, 'name', /1 to 64 characters/],
      [{ origins: ['https://app.example.com'] }, 'name', /is required/],
    ])('refuses %j with 400 naming %s, and stores nothing', async (body, field, message) => {
      const before = await tenantCount();
      const response = await api('POST', '/passkey-tenants', { json: body });
      expect(response.status).toBe(400);
      expect(response.json()).toEqual({
        error: 'invalid_request',
        error_description: expect.stringMatching(new RegExp(`^${field}: `)),
        fields: { [field]: expect.stringMatching(message) },
      });
      expect(await tenantCount()).toBe(before);
    });

    it("refuses a field it does not know, such as an API key of the caller's choosing", async () => {
      const response = await api('POST', '/passkey-tenants', {
        json: { name: 'Mine', origins: ['https://app.example.com'], api_key: `spk_${'a'.repeat(43)}` },
      });
      expect(response.status).toBe(400);
      expect(response.json().error).toBe('invalid_request');
    });
  });
});
