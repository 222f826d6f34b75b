import http from 'node:http';
import { gzipSync } from 'node:zlib';
import { createOneTimeLink } from '../../src/accounts/oneTimeLinks.js';
import { createApiKey } from '../../src/admin/apiKeys.js';
import { cookieNames } from '../../src/cookieNames.js';
import { createClient } from '../../src/oidc/clients.js';
import { createTenant } from '../../src/passkeyApi/tenants.js';
import { asPage } from '../support/browser.js';
import { countRows } from '../support/countRows.js';
import { Person } from '../support/oidcFlow.js';
import { rawRequest } from '../support/rawRequest.js';
import { startTestApp, type TestApp } from '../support/testApp.js';

/**
 * Input an outside fuzz run found answered with 500s: a NUL inside the provider's own
 * endpoints, lone UTF-16 surrogates in JSON, CR/LF in return_to, unknown methods on the
 * passkey API, and refused requests that stored sessions. Each gets a 4xx (or the
 * endpoint's usual answer) and writes nothing.
 */
describe('odd input', () => {
  let sesame: TestApp;
  let client: { client_id: string };
  let clientSecret: string;
  let tenant: { id: string };
  let tenantKey: string;
  let apiKey: string;

  beforeAll(async () => {
    sesame = await startTestApp();
    let secret: string | undefined;
    ({ client, client_secret: secret } = await createClient(
      sesame.db,
      {
        name: 'Web',
        redirect_uris: ['https://app.example/cb'],
        grant_types: ['client_credentials', 'authorization_code'],
      },
      'test',
    ));
    clientSecret = secret!;
    ({ tenant, apiKey: tenantKey } = await createTenant(
      sesame.db,
      sesame.config,
      { name: 'Notes', origins: ['https://app.example'] },
      'test',
    ));
    ({ key: apiKey } = await createApiKey(sesame.db, 'odd input', 'test'));
  }, 120_000);

  afterAll(() => sesame.stop());

  /** Every table's row count, so a test can show a refused request stored nothing anywhere. */
  async function allRows() {
    const tables = [
      'users',
      'credentials',
      'webauthn_challenges',
      'oidc_models',
      'clients',
      'one_time_tokens',
      'api_keys',
      'audit_events',
      'passkey_tenant_users',
      'passkey_tenant_credentials',
    ] as const;
    return Object.fromEntries(await Promise.all(tables.map(async (t) => [t, await countRows(sesame.db, t)])));
  }

  const form = (fields: Record<string, string>, headers: Record<string, string> = {}) => ({
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body: new URLSearchParams(fields).toString(),
  });
  const basic = () => `Basic ${Buffer.from(`${client.client_id}:${clientSecret}`).toString('base64')}`;

  describe('a NUL byte in a parameter the provider looks up', () => {
    const cases: [string, string, RequestInit | undefined][] = [
      [
        'an authorization request naming client_id=%00',
        '/auth?client_id=%00&response_type=code&scope=openid',
        undefined,
      ],
      [
        'a token request from client_id=%00',
        '/token',
        form({ client_id: '\u0000', grant_type: 'client_credentials' }),
      ],
      [
        'an introspection from client_id=%00',
        '/token/introspection',
        form({ client_id: '\u0000', token: 'x' }),
      ],
      ['a revocation from client_id=%00', '/token/revocation', form({ client_id: '\u0000', token: 'x' })],
      [
        'a pushed authorization request from client_id=%00',
        '/request',
        form({ client_id: '\u0000', response_type: 'code' }),
      ],
      ['a logout naming client_id=%00', '/session/end?client_id=%00', undefined],
      ['a userinfo request with access_token=%00', '/me', form({ access_token: '\u0000' })],
    ];

    it.each(cases)('refuses %s with a 4xx and stores nothing', async (_name, path, init) => {
      const before = await allRows();
      const response = await fetch(`${sesame.baseUrl}${path}`, { ...init, redirect: 'manual' });
      expect(response.status).toBeGreaterThanOrEqual(400);
      expect(response.status).toBeLessThan(500);
      expect(await allRows()).toEqual(before);
    });

    it('refuses an introspection or revocation of token=%00 by a real client as it would an unknown token', async () => {
      const introspection = await fetch(
        `${sesame.baseUrl}/token/introspection`,
        form({ token: 'a\u0000b' }, { authorization: basic() }),
      );
      expect(introspection.status).toBe(200);
      expect(await introspection.json()).toEqual({ active: false });
      const revocation = await fetch(
        `${sesame.baseUrl}/token/revocation`,
        form({ token: 'a\u0000b' }, { authorization: basic() }),
      );
      expect(revocation.status).toBe(200);
    });
  });

  describe('a lone UTF-16 surrogate in a JSON body', () => {
    it('is refused at sign-up with a 400 naming the field, and no challenge is stored', async () => {
      const person = new Person(sesame.baseUrl);
      const prompt = asPage(await person.browser.follow('/account/login'));
      const uid = /\/interaction\/([^/?#]+)/.exec(prompt.url)![1]!;
      const before = await allRows();
      const response = await person.browser.postJson(`/interaction/${uid}/signup/options`, prompt.csrf(), {
        email: 'ada@example.com',
        name: 'Ada \ud800',
      });
      expect(response.status).toBe(400);
      expect(response.json()).toMatchObject({
        error: 'invalid_request',
        fields: { name: expect.any(String) },
      });
      expect(await allRows()).toEqual(before);
    });

    it('is refused on a one-time link page', async () => {
      const link = await createOneTimeLink(sesame.db, sesame.config, {
        email: 'bob@example.com',
        actor: 'test',
      });
      const person = new Person(sesame.baseUrl);
      const page = await person.browser.request(link.url);
      const before = await allRows();
      const response = await person.browser.postJson(`${new URL(link.url).pathname}/options`, page.csrf(), {
        name: '\udfffBob',
      });
      expect(response.status).toBe(400);
      expect(response.json()).toMatchObject({ fields: { name: expect.any(String) } });
      expect(await allRows()).toEqual(before);
    });

    it('is refused by the passkey API, registration and login, in its error shape, and no user is created', async () => {
      const before = await allRows();
      for (const [path, body] of [
        ['registration/initialize', { user_id: 'u-1', username: 'ada', display_name: 'Ada \ud800' }],
        ['registration/initialize', { user_id: 'u-\ud800', username: 'ada' }],
        ['login/initialize', { user_id: '\ud800' }],
      ] as const) {
        const response = await fetch(`${sesame.baseUrl}/passkey-api/${tenant.id}/${path}`, {
          method: 'POST',
          headers: { apikey: tenantKey, 'content-type': 'application/json' },
          body: JSON.stringify(body),
        });
        expect(response.status).toBe(400);
        // Hanko's title for a body it cannot read (it was the status text, "Bad Request", before).
        expect(await response.json()).toMatchObject({ title: 'unable to process request', status: 400 });
      }
      expect(await allRows()).toEqual(before);
    });

    it('is refused by the admin API when creating a client or a passkey tenant', async () => {
      const before = await allRows();
      for (const [path, body] of [
        ['clients', { name: '\ud800', redirect_uris: ['https://notes.example/cb'] }],
        ['passkey-tenants', { name: 'Notes', origins: ['https://notes.example', '\udc00'] }],
      ] as const) {
        const response = await fetch(`${sesame.baseUrl}/api/admin/${path}`, {
          method: 'POST',
          headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
          body: JSON.stringify(body),
        });
        expect(response.status).toBe(400);
        expect(await response.json()).toMatchObject({ error: 'invalid_request' });
      }
      expect(await allRows()).toEqual(before);
    });
  });

  it('sends a return_to with CR/LF, or too long for the cookie it rides in, back to /account instead of failing', async () => {
    // A browser drops a cookie over 4 kB, and with it the state the sign-in is checked against.
    const tooLong = `/admin/users?q=${'a'.repeat(5000)}`;
    for (const returnTo of ['/admin%0D%0ASet-Cookie:%20x=1', '/a%0Ab', '/%E6%97%A5%E6%9C%AC', tooLong]) {
      const response = await fetch(`${sesame.baseUrl}/account/login?return_to=${returnTo}`, {
        redirect: 'manual',
      });
      expect(response.status).toBe(302);
      expect(new URL(response.headers.get('location')!).pathname).toBe('/auth');
      const cookie = response.headers
        .getSetCookie()
        .find((c) => c.startsWith(`${cookieNames(sesame.config).returnTo}=`))!;
      expect(decodeURIComponent(cookie.split(';')[0]!)).toMatch(/\|\/account$/);
    }
  });

  it('signs in and returns to a return_to that holds a `;` (a cookie value cannot) or a `|`, instead of a 500', async () => {
    const person = new Person(sesame.baseUrl);
    const returnTo = '/account?q=a;b|c';
    const login = asPage(
      await person.browser.follow(`/account/login?return_to=${encodeURIComponent(returnTo)}`),
    );
    const next = await person.signUp(login, 'semicolon@example.com');
    const landed = await person.browser.follow(next, (url) => new URL(url).searchParams.has('q'));
    expect(landed).toEqual({ stoppedAt: `${sesame.baseUrl}/account?q=a%3Bb|c` });
    expect(new URL((landed as { stoppedAt: string }).stoppedAt).searchParams.get('q')).toBe('a;b|c');
  });

  it('refuses a body its Content-Encoding does not decode with 400, before any check, and reads one it does', async () => {
    const before = await allRows();
    for (const encoding of ['gzip', 'deflate', 'br']) {
      for (const path of ['/interaction/abc/login/options', '/account/logout', '/link/abc/options']) {
        const response = await fetch(`${sesame.baseUrl}${path}`, {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            'content-encoding': encoding,
            accept: 'application/json',
          },
          body: '{"a":1}',
        });
        expect({ encoding, path, status: response.status }).toEqual({ encoding, path, status: 400 });
        expect(await response.json()).toMatchObject({ error: 'invalid_request' });
      }
    }
    // A body that is what its encoding says goes on to the route's checks (here: no CSRF token).
    const zipped = await fetch(`${sesame.baseUrl}/account/logout`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'content-encoding': 'gzip', accept: 'application/json' },
      body: gzipSync('{"a":1}'),
    });
    expect(zipped.status).toBe(403);
    expect(await allRows()).toEqual(before);
  });

  it('answers a method the passkey API does not use with 405 and a body that says so', async () => {
    for (const [method, tenantId] of [
      ['TRACE', tenant.id],
      ['PROPFIND', tenant.id],
      ['COPY', 'no-such-tenant'],
    ] as const) {
      const response = await rawRequest(`${sesame.listenUrl}/passkey-api/${tenantId}/login/initialize`, {
        method,
      });
      expect(response.status).toBe(405);
      expect(response.headers.allow).toContain('POST');
      expect(JSON.parse(response.text)).toMatchObject({ status: 405, title: 'Method Not Allowed' });
    }
  });

  it('stores no session for refused requests that carry the cookie of an ended session', async () => {
    const person = new Person(sesame.baseUrl);
    const next = await person.signUp(
      asPage(await person.browser.follow('/account/login')),
      'carol@example.com',
    );
    await person.browser.follow(next);
    // The session ends (signed out everywhere, expired): its row is gone, the cookie stays.
    await sesame.db.deleteFrom('oidc_models').where('model', '=', 'Session').execute();
    const sessions = () =>
      sesame.db
        .selectFrom('oidc_models')
        .select((eb) => eb.fn.countAll<string>().as('n'))
        .where('model', '=', 'Session')
        .executeTakeFirstOrThrow()
        .then((row) => Number(row.n));
    for (let i = 0; i < 3; i++) {
      for (const path of [
        '/auth?client_id=nobody',
        `/auth?client_id=${client.client_id}&response_type=bogus`,
        '/session/end?client_id=nobody',
      ]) {
        const response = await person.browser.request(path);
        expect(response.status).toBeGreaterThanOrEqual(300);
      }
    }
    expect(await sessions()).toBe(0);
  });

  describe('a body longer than the 56 kB oidc-provider reads', () => {
    const LIMIT = 56 * 1024;
    /** A form of exactly `bytes` bytes: `fields`, then a padding field. */
    const formOf = (bytes: number, fields: Record<string, string>) => {
      const head = `${new URLSearchParams(fields).toString()}&padding=`;
      return head + 'a'.repeat(bytes - head.length);
    };

    it.each([
      ['a token request', '/token'],
      ['an introspection', '/token/introspection'],
      ['a revocation', '/token/revocation'],
      ['a userinfo request', '/me'],
    ])("is refused as %s with 413 in the provider's error shape, and stores nothing", async (_name, path) => {
      const before = await allRows();
      const response = await rawRequest(`${sesame.baseUrl}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic() },
        body: formOf(LIMIT + 1, {
          grant_type: 'client_credentials',
          token: 'x',
          client_id: client.client_id,
        }),
      });
      expect(response.status).toBe(413);
      expect(response.headers['content-type']).toMatch(/^application\/json/);
      expect(JSON.parse(response.text)).toEqual({
        error: 'invalid_request',
        error_description: 'The request body is larger than the 56 kB this endpoint reads',
      });
      expect(response.headers['content-security-policy']).toContain("default-src 'none'");
      expect(await allRows()).toEqual(before);
    });

    it('is refused as a form posted to the authorization endpoint with a page that says so', async () => {
      const before = await allRows();
      const response = await rawRequest(`${sesame.baseUrl}/auth`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'text/html' },
        body: formOf(LIMIT + 1, { client_id: client.client_id, response_type: 'code', scope: 'openid' }),
      });
      expect(response.status).toBe(413);
      expect(response.headers['content-type']).toMatch(/^text\/html/);
      expect(response.text).toContain('This request is too large.');
      expect(await allRows()).toEqual(before);
    });

    it('is read as before at exactly the limit: a token request of 56 kB gets its token', async () => {
      const response = await rawRequest(`${sesame.baseUrl}/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic() },
        body: formOf(LIMIT, { grant_type: 'client_credentials' }),
      });
      expect(response.status).toBe(200);
      expect(JSON.parse(response.text)).toMatchObject({ token_type: 'Bearer' });
    });

    it('keeps the connection serving the next request after a refusal', async () => {
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      try {
        const send = (body: string) =>
          rawRequest(`${sesame.baseUrl}/token`, {
            method: 'POST',
            agent,
            headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic() },
            body,
          });
        expect((await send(formOf(LIMIT + 1, { grant_type: 'client_credentials' }))).status).toBe(413);
        expect((await send('grant_type=client_credentials')).status).toBe(200);
      } finally {
        agent.destroy();
      }
    });
  });

  describe('an authorization request over 8 kB, which the provider would store whole for anyone', () => {
    const LIMIT = 8 * 1024;
    const authorization = (state: string) => ({
      client_id: client.client_id,
      response_type: 'code',
      scope: 'openid',
      redirect_uri: 'https://app.example/cb',
      code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
      code_challenge_method: 'S256',
      state,
    });
    /** A `state` that makes the request's form exactly `bytes` long. */
    const stateFor = (bytes: number) =>
      'a'.repeat(bytes - new URLSearchParams(authorization('')).toString().length);

    it.each([
      ['a pushed authorization request', '/request'],
      ["a device's authorization request", '/device/auth'],
    ])("is refused as %s with 413 in the provider's error shape, and stores nothing", async (_name, path) => {
      const before = await allRows();
      const response = await rawRequest(`${sesame.baseUrl}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic() },
        body: new URLSearchParams(authorization(stateFor(LIMIT + 1))).toString(),
      });
      expect(response.status).toBe(413);
      expect(JSON.parse(response.text)).toEqual({
        error: 'invalid_request',
        error_description: 'The authorization request is larger than the 8 kB it may be',
      });
      expect(await allRows()).toEqual(before);
    });

    const AUTHORIZATION_LENGTH_REQUIRED =
      'An authorization request must say its length (Content-Length): a body without one is not read';
    it.each([
      ['a pushed authorization request', '/request', AUTHORIZATION_LENGTH_REQUIRED],
      ["a device's authorization request", '/device/auth', AUTHORIZATION_LENGTH_REQUIRED],
      ['a form POST to /auth', '/auth', AUTHORIZATION_LENGTH_REQUIRED],
      [
        'a form POST to /session/end',
        '/session/end',
        'A logout request must say its length (Content-Length): a body without one is not read',
      ],
    ])(
      'is refused as %s sent in chunks without a length, with 411, and stores nothing',
      async (_name, path, description) => {
        const before = await allRows();
        const response = await new Promise<{ status: number; connection?: string; text: string }>(
          (resolve, reject) => {
            const request = http.request(`${sesame.baseUrl}${path}`, {
              method: 'POST',
              headers: {
                'content-type': 'application/x-www-form-urlencoded',
                authorization: basic(),
                accept: 'application/json',
              },
            });
            request.on('response', (answer) => {
              let text = '';
              answer.on('data', (chunk: Buffer) => {
                text += chunk;
              });
              answer.on('end', () =>
                resolve({ status: answer.statusCode!, connection: answer.headers.connection, text }),
              );
            });
            request.on('error', reject);
            // No Content-Length: node:http sends the body chunked, here one 20 kB request in 4 kB chunks.
            const body = new URLSearchParams(authorization(stateFor(20 * 1024))).toString();
            for (let at = 0; at < body.length; at += 4096) request.write(body.slice(at, at + 4096));
            request.end();
          },
        );
        expect(response.status).toBe(411);
        expect(response.connection).toBe('close');
        expect(JSON.parse(response.text)).toEqual({
          error: 'invalid_request',
          error_description: description,
        });
        expect(await allRows()).toEqual(before);
      },
    );

    it('is refused at /auth with 414 and a page that says so, and stores nothing', async () => {
      const before = await allRows();
      const query = new URLSearchParams(authorization(stateFor(LIMIT + 1))).toString();
      const response = await rawRequest(`${sesame.baseUrl}/auth?${query}`, {
        headers: { accept: 'text/html' },
      });
      expect(response.status).toBe(414);
      expect(response.text).toContain('This request is too large.');
      expect(await allRows()).toEqual(before);
    });

    it('is refused as a logout at /session/end with 414 and a page that says so, and stores no session', async () => {
      // The provider keeps a logout's `state` in the session it stores for the visitor, for 30 minutes.
      const logoutFor = (bytes: number) => {
        const head = new URLSearchParams({ client_id: client.client_id, state: '' }).toString();
        return `${head}${'a'.repeat(bytes - head.length)}`;
      };
      const before = await allRows();
      const refused = await rawRequest(`${sesame.baseUrl}/session/end?${logoutFor(LIMIT + 1)}`, {
        headers: { accept: 'text/html' },
      });
      expect(refused.status).toBe(414);
      expect(refused.text).toContain('This request is too large.');
      expect(await allRows()).toEqual(before);
      const taken = await rawRequest(`${sesame.baseUrl}/session/end?${logoutFor(LIMIT)}`);
      expect(taken.status).toBe(200);
    });

    it("does not count a logout's id_token_hint: an ID token with many claims can be over 8 kB by itself", async () => {
      // Not a valid ID token: the provider, not the size, refuses it; an app's real one is taken.
      const hint = 'e30.'.padEnd(LIMIT + 100, 'a');
      const logout = new URLSearchParams({ client_id: client.client_id, id_token_hint: hint, state: 's' });
      const asked = await rawRequest(`${sesame.baseUrl}/session/end?${logout}`, {
        headers: { accept: 'text/html' },
      });
      expect(asked.status).toBe(400);
      expect(asked.text).not.toContain('This request is too large.');
      const posted = await rawRequest(`${sesame.baseUrl}/session/end`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: logout.toString(),
      });
      expect(posted.status).toBe(303);
      expect(posted.headers.location).toBe(`${sesame.baseUrl}/session/end?${logout}`);
      // The rest of the logout is still held to the limit, the hint beside it or not.
      const withState = new URLSearchParams({ id_token_hint: 'e30.a', state: 'a'.repeat(LIMIT) });
      expect((await rawRequest(`${sesame.baseUrl}/session/end?${withState}`)).status).toBe(414);
    });

    it('is refused as a form POST to /auth with 413 and a page that says so, and stores nothing', async () => {
      const before = await allRows();
      const response = await rawRequest(`${sesame.baseUrl}/auth`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'text/html' },
        body: new URLSearchParams(authorization(stateFor(LIMIT + 1))).toString(),
      });
      expect(response.status).toBe(413);
      expect(response.text).toContain('This request is too large.');
      expect(await allRows()).toEqual(before);
    });

    it('is taken at exactly 8 kB as a form POST to /auth: sent on as the same GET', async () => {
      const body = new URLSearchParams(authorization(stateFor(LIMIT))).toString();
      const posted = await rawRequest(`${sesame.baseUrl}/auth`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body,
      });
      expect(posted.status).toBe(303);
      expect(posted.headers.location).toBe(`${sesame.baseUrl}/auth?${body}`);
      const browser = await rawRequest(posted.headers.location!);
      expect(browser.status).toBe(303);
      expect(browser.headers.location).toMatch(/\/interaction\//);
    });

    it('is taken at exactly 8 kB, pushed or in the query string', async () => {
      const query = new URLSearchParams(authorization(stateFor(LIMIT))).toString();
      expect(query.length).toBe(LIMIT);
      const browser = await rawRequest(`${sesame.baseUrl}/auth?${query}`);
      expect(browser.status).toBe(303);
      expect(browser.headers.location).toMatch(/\/interaction\//);
      const pushed = await rawRequest(`${sesame.baseUrl}/request`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic() },
        body: query,
      });
      expect(pushed.status).toBe(201);
    });
  });
  describe('a form POST to /auth or /session/end, which Sesame sends on as a GET', () => {
    const post = (path: string, body: string, headers: Record<string, string> = {}) =>
      rawRequest(`${sesame.baseUrl}${path}`, {
        method: 'POST',
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          accept: 'application/json',
          ...headers,
        },
        body,
      });

    it.each(['/auth', '/session/end'])(
      'answers %s with 303 to the same path with the body as the query string, and stores nothing',
      async (path) => {
        const before = await allRows();
        const response = await post(path, 'client_id=nobody&state=a+b%2Fc&ui_locales=de', {
          'content-type': 'application/x-www-form-urlencoded; charset=UTF-8',
        });
        expect(response.status).toBe(303);
        expect(response.headers.location).toBe(
          `${sesame.baseUrl}${path}?client_id=nobody&state=a+b%2Fc&ui_locales=de`,
        );
        expect(response.headers['cache-control']).toBe('no-store');
        expect(await allRows()).toEqual(before);
      },
    );

    it('writes a body that a query string cannot hold as it is percent-encoded, with the same parameters', async () => {
      const response = await post('/auth', 'client_id=nobody&state=caf\u00e9 <x>"');
      expect(response.status).toBe(303);
      const location = new URL(response.headers.location!);
      expect(location.search).not.toMatch(/[ <>"\u00e9]/);
      expect([...location.searchParams]).toEqual([
        ['client_id', 'nobody'],
        ['state', 'caf\u00e9 <x>"'],
      ]);
    });

    it('refuses a body that is not a form with 415, and a POST with a query string too with 400, storing nothing', async () => {
      const before = await allRows();
      const json = await post('/auth', '{"client_id":"nobody"}', { 'content-type': 'application/json' });
      expect(json.status).toBe(415);
      expect(JSON.parse(json.text)).toEqual({
        error: 'unsupported_media_type',
        error_description:
          'A POST to /auth must be an uncompressed form (Content-Type: application/x-www-form-urlencoded)',
      });
      const zipped = await post('/session/end', 'client_id=nobody', { 'content-encoding': 'gzip' });
      expect(zipped.status).toBe(415);
      const both = await post('/auth?client_id=nobody', 'response_type=code');
      expect(both.status).toBe(400);
      expect(JSON.parse(both.text)).toEqual({
        error: 'invalid_request',
        error_description:
          'A POST to /auth carries its parameters in the form body only; this one has a query string too',
      });
      // A person's browser gets a page that names the problem for the app's developer.
      const page = await post('/session/end?x=1', 'client_id=nobody', { accept: 'text/html' });
      expect(page.status).toBe(400);
      expect(page.text).toContain('A POST to /session/end carries its parameters in the form body only');
      expect(await allRows()).toEqual(before);
    });

    it('leaves a repeated parameter to the provider, which refuses it as it does in a GET', async () => {
      const posted = await post(
        '/auth',
        `client_id=${client.client_id}&client_id=${client.client_id}&response_type=code`,
      );
      expect(posted.status).toBe(303);
      const followed = await rawRequest(posted.headers.location!);
      expect(followed.status).toBe(400);
      expect(followed.text).toContain('&#39;client_id&#39; parameter must not be provided twice');
    });
  });
});
