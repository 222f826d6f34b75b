import { createHash, randomBytes } from 'node:crypto';
import * as oidc from 'openid-client';
import { createClient } from '../../src/oidc/clients.js';
import { OPENID_SCOPE_REQUIRED } from '../../src/oidc/restatedErrors.js';
import { beginLogin, discoverRp, finishLogin, Person, type TestRp } from '../support/oidcFlow.js';
import { startTestApp, type TestApp } from '../support/testApp.js';

const REDIRECT_URI = 'http://127.0.0.1:8910/callback';

const basic = (id: string, secret: string) =>
  `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;

describe('authorization and token endpoint rules', () => {
  let sesame: TestApp;
  let client: { client_id: string; client_secret: string };
  let publicClientId: string;
  let rp: TestRp;

  beforeAll(async () => {
    sesame = await startTestApp();
    const created = await createClient(sesame.db, { name: 'Notes', redirect_uris: [REDIRECT_URI] }, 'test');
    client = { client_id: created.client.client_id, client_secret: created.client_secret! };
    const spa = await createClient(
      sesame.db,
      { name: 'SPA', redirect_uris: [REDIRECT_URI], public: true },
      'test',
    );
    publicClientId = spa.client.client_id;
    rp = await discoverRp(sesame.baseUrl, client, REDIRECT_URI);
  });

  afterAll(() => sesame.stop());

  /** Counts stored tokens and codes, to show a refused request issued nothing. */
  const issuedCount = async () =>
    Number(
      (
        await sesame.db
          .selectFrom('oidc_models')
          .select((eb) => eb.fn.countAll().as('n'))
          .where('model', 'in', ['AccessToken', 'RefreshToken', 'AuthorizationCode', 'ClientCredentials'])
          .executeTakeFirstOrThrow()
      ).n,
    );

  /** GETs /auth with these parameters without following the redirect. */
  async function authorize(params: Record<string, string>) {
    const url = new URL('/auth', sesame.baseUrl);
    for (const [key, value] of Object.entries(params)) url.searchParams.set(key, value);
    const response = await fetch(url, { redirect: 'manual' });
    const location = response.headers.get('location');
    return { status: response.status, location: location ? new URL(location, sesame.baseUrl) : undefined };
  }

  const baseParams = (clientId: string) => ({
    client_id: clientId,
    redirect_uri: REDIRECT_URI,
    response_type: 'code',
    scope: 'openid',
    state: 'st4te',
  });

  const verifier = randomBytes(32).toString('base64url');
  const s256 = createHash('sha256').update(verifier).digest('base64url');

  describe('PKCE', () => {
    it.each([
      ['a confidential client', () => client.client_id],
      ['a public client', () => publicClientId],
    ])(
      'is required: %s without code_challenge gets an error back at its redirect URI, not a login page',
      async (_kind, clientId) => {
        const { status, location } = await authorize(baseParams(clientId()));
        expect(status).toBe(303);
        expect(location?.origin + location!.pathname).toBe(REDIRECT_URI);
        expect(location?.searchParams.get('error')).toBe('invalid_request');
        expect(location?.searchParams.get('error_description')).toMatch(/PKCE/);
        expect(location?.searchParams.get('state')).toBe('st4te');
      },
    );

    it('refuses code_challenge_method=plain', async () => {
      const { status, location } = await authorize({
        ...baseParams(client.client_id),
        code_challenge: verifier,
        code_challenge_method: 'plain',
      });
      expect(status).toBe(303);
      expect(location?.origin + location!.pathname).toBe(REDIRECT_URI);
      expect(location?.searchParams.get('error')).toBe('invalid_request');
      expect(location?.searchParams.get('error_description')).toMatch(/code_challenge_method/);
    });

    it('sends a request with an S256 challenge on to the sign-in page', async () => {
      const { status, location } = await authorize({
        ...baseParams(client.client_id),
        code_challenge: s256,
        code_challenge_method: 'S256',
      });
      expect(status).toBe(303);
      expect(location?.pathname).toMatch(/^\/interaction\//);
    });

    it('shows an error page, never a redirect, when the redirect URI is not registered', async () => {
      const response = await fetch(
        `${sesame.baseUrl}/auth?${new URLSearchParams({
          ...baseParams(client.client_id),
          redirect_uri: 'https://evil.example/cb',
          code_challenge: s256,
          code_challenge_method: 'S256',
        })}`,
        { redirect: 'manual' },
      );
      expect(response.status).toBe(400);
      expect(response.headers.get('location')).toBeNull();
      expect(response.headers.get('content-type')).toMatch(/^text\/html/);
    });

    it('shows an error page, never a redirect, when the request leaves the redirect URI out (OIDC Core §3.1.2.1)', async () => {
      // The client registered one URI; the provider's default would have taken that one.
      const { redirect_uri: _left, ...params } = baseParams(client.client_id);
      const before = await issuedCount();
      const response = await fetch(
        `${sesame.baseUrl}/auth?${new URLSearchParams({ ...params, code_challenge: s256, code_challenge_method: 'S256' })}`,
        { redirect: 'manual' },
      );
      expect(response.status).toBe(400);
      expect(response.headers.get('location')).toBeNull();
      expect(await response.text()).toContain('redirect_uri');
      expect(await issuedCount()).toBe(before);
    });

    it('refuses to redeem a code with the wrong code verifier', async () => {
      const person = new Person(sesame.baseUrl);
      const pending = await beginLogin(rp);
      const loginPage = await person.open(pending.url);
      const callback = await person.continueToApp(
        await person.signUp(loginPage, 'pkce@example.com'),
        REDIRECT_URI,
      );
      const code = new URL(callback).searchParams.get('code')!;
      const response = await fetch(`${sesame.baseUrl}/token`, {
        method: 'POST',
        headers: {
          authorization: basic(client.client_id, client.client_secret),
          'content-type': 'application/x-www-form-urlencoded',
        },
        body: new URLSearchParams({
          grant_type: 'authorization_code',
          code,
          redirect_uri: REDIRECT_URI,
          code_verifier: randomBytes(32).toString('base64url'),
        }),
      });
      expect(response.status).toBe(400);
      expect(await response.json()).toMatchObject({ error: 'invalid_grant' });
    });
  });

  describe('refresh tokens', () => {
    it('are issued for offline_access with prompt=consent, and refresh to new working tokens', async () => {
      const person = new Person(sesame.baseUrl);
      const pending = await beginLogin(rp, 'openid email offline_access', { prompt: 'consent' });
      const loginPage = await person.open(pending.url);
      const callback = await person.continueToApp(
        await person.signUp(loginPage, 'offline@example.com'),
        REDIRECT_URI,
      );
      const tokens = await finishLogin(rp, pending, callback);
      expect(tokens.refresh_token).toEqual(expect.any(String));
      expect(tokens.scope?.split(' ')).toEqual(expect.arrayContaining(['openid', 'offline_access']));
      const sub = tokens.claims()!.sub;

      const refreshed = await oidc.refreshTokenGrant(rp.config, tokens.refresh_token!);
      expect(refreshed.access_token).not.toBe(tokens.access_token);
      expect(refreshed.claims()?.sub).toBe(sub);
      const userinfo = await oidc.fetchUserInfo(rp.config, refreshed.access_token, sub);
      expect(userinfo).toMatchObject({ sub, email: 'offline@example.com' });
    });

    it('are not issued without offline_access', async () => {
      const person = new Person(sesame.baseUrl);
      const pending = await beginLogin(rp, 'openid email');
      const loginPage = await person.open(pending.url);
      const callback = await person.continueToApp(
        await person.signUp(loginPage, 'online@example.com'),
        REDIRECT_URI,
      );
      const tokens = await finishLogin(rp, pending, callback);
      expect(tokens.access_token).toEqual(expect.any(String));
      expect(tokens.refresh_token).toBeUndefined();
    });
  });

  describe('the token endpoint refuses bad requests with a 4xx JSON error and issues nothing', () => {
    const post = (body: string, headers: Record<string, string>) =>
      fetch(`${sesame.baseUrl}/token`, { method: 'POST', headers, body });

    it.each([
      [
        'an unknown client',
        () => basic('no-such-client', 'whatever'),
        'application/x-www-form-urlencoded',
        'grant_type=client_credentials',
        401,
        'invalid_client',
      ],
      [
        'a wrong secret',
        () => basic(client.client_id, 'not-the-secret'),
        'application/x-www-form-urlencoded',
        'grant_type=client_credentials',
        401,
        'invalid_client',
      ],
      [
        'a malformed form body',
        () => basic(client.client_id, client.client_secret),
        'application/x-www-form-urlencoded',
        '%%%&&==%E0%A4%A',
        400,
        'invalid_request',
      ],
      [
        'a JSON body',
        () => basic(client.client_id, client.client_secret),
        'application/json',
        '{"grant_type":"client_credentials"}',
        400,
        'invalid_request',
      ],
      [
        'broken JSON',
        () => basic(client.client_id, client.client_secret),
        'application/json',
        '{"grant_type":',
        400,
        'invalid_request',
      ],
      [
        'no grant type',
        () => basic(client.client_id, client.client_secret),
        'application/x-www-form-urlencoded',
        'scope=openid',
        400,
        'invalid_request',
      ],
      [
        'an unknown grant type',
        () => basic(client.client_id, client.client_secret),
        'application/x-www-form-urlencoded',
        'grant_type=password&username=a&password=b',
        400,
        'unsupported_grant_type',
      ],
      [
        'a code that was never issued',
        () => basic(client.client_id, client.client_secret),
        'application/x-www-form-urlencoded',
        `grant_type=authorization_code&code=nope&redirect_uri=${encodeURIComponent(REDIRECT_URI)}&code_verifier=${'a'.repeat(43)}`,
        400,
        'invalid_grant',
      ],
    ])('for %s', async (_case, authorization, contentType, body, status, error) => {
      const before = await issuedCount();
      const response = await post(body, { authorization: authorization(), 'content-type': contentType });
      expect(response.status).toBe(status);
      expect(response.headers.get('content-type')).toMatch(/^application\/json/);
      expect(await response.json()).toMatchObject({ error, error_description: expect.any(String) });
      expect(await issuedCount()).toBe(before);
    });

    it('for a body far larger than any token request', async () => {
      const before = await issuedCount();
      const response = await post(`grant_type=client_credentials&pad=${'a'.repeat(200_000)}`, {
        authorization: basic(client.client_id, client.client_secret),
        'content-type': 'application/x-www-form-urlencoded',
      });
      expect(response.status).toBeGreaterThanOrEqual(400);
      expect(response.status).toBeLessThan(500);
      expect(response.headers.get('content-type')).toMatch(/^application\/json/);
      expect(await response.json()).toMatchObject({ error: expect.any(String) });
      expect(await issuedCount()).toBe(before);
    });

    it('for a client asking for a grant type it is not registered for, with unauthorized_client (RFC 6749 §5.2)', async () => {
      const { client: web, client_secret } = await createClient(
        sesame.db,
        { name: 'Web only', redirect_uris: [REDIRECT_URI], grant_types: ['authorization_code'] },
        'test',
      );
      const before = await issuedCount();
      const response = await post('grant_type=client_credentials', {
        authorization: basic(web.client_id, client_secret!),
        'content-type': 'application/x-www-form-urlencoded',
      });
      expect(response.status).toBe(400);
      expect(await response.json()).toEqual({
        error: 'unauthorized_client',
        error_description: 'requested grant type is not allowed for this client',
      });
      expect(await issuedCount()).toBe(before);
    });

    it('for a public client asking for client_credentials', async () => {
      const response = await post(`grant_type=client_credentials&client_id=${publicClientId}`, {
        'content-type': 'application/x-www-form-urlencoded',
      });
      expect(response.status).toBeGreaterThanOrEqual(400);
      expect(response.status).toBeLessThan(500);
      expect(await response.json()).toMatchObject({
        error: expect.stringMatching(/^(invalid|unauthorized)_/),
      });
    });
  });

  it('sends a request without the openid scope back to the app with words that say Sesame requires it', async () => {
    const refused = await authorize({
      ...baseParams(client.client_id),
      scope: 'email',
      code_challenge: s256,
      code_challenge_method: 'S256',
    });
    expect(refused.status).toBe(303);
    expect(`${refused.location!.origin}${refused.location!.pathname}`).toBe(REDIRECT_URI);
    expect(Object.fromEntries(refused.location!.searchParams)).toMatchObject({
      error: 'invalid_request',
      error_description: OPENID_SCOPE_REQUIRED,
      state: 'st4te',
    });
  });

  describe("client_credentials and a person's scopes", () => {
    it.each([
      ['openid', undefined],
      ['offline_access', undefined],
      ['email', undefined],
      ['profile', undefined],
      ['groups', undefined],
      ['openid email profile groups offline_access', undefined],
    ])('leaves %s out of the token (no person consented)', async (scope, granted) => {
      const response = await fetch(`${sesame.baseUrl}/token`, {
        method: 'POST',
        headers: {
          authorization: basic(client.client_id, client.client_secret),
          'content-type': 'application/x-www-form-urlencoded',
        },
        body: new URLSearchParams({ grant_type: 'client_credentials', scope }).toString(),
      });
      expect(response.status).toBe(200);
      const body = (await response.json()) as { access_token: string; scope?: string };
      expect(body.scope).toBe(granted);
      const introspected = await fetch(`${sesame.baseUrl}/token/introspection`, {
        method: 'POST',
        headers: {
          authorization: basic(client.client_id, client.client_secret),
          'content-type': 'application/x-www-form-urlencoded',
        },
        body: new URLSearchParams({ token: body.access_token }).toString(),
      });
      const described = (await introspected.json()) as { active: boolean; scope?: string };
      expect(described.active).toBe(true);
      expect(described.scope).toBeUndefined();
    });
  });

  describe('the revocation endpoint (RFC 7009)', () => {
    /** A client_credentials access token of a new confidential client, with that client's Basic authorization. */
    async function tokenOfNewClient(name: string) {
      const created = await createClient(sesame.db, { name, redirect_uris: [REDIRECT_URI] }, 'test');
      const authorization = basic(created.client.client_id, created.client_secret!);
      const issued = await fetch(`${sesame.baseUrl}/token`, {
        method: 'POST',
        headers: { authorization, 'content-type': 'application/x-www-form-urlencoded' },
        body: 'grant_type=client_credentials',
      });
      const { access_token } = (await issued.json()) as { access_token: string };
      return { token: access_token, authorization };
    }
    const call = (endpoint: string, authorization: string, token: string) =>
      fetch(`${sesame.baseUrl}/token/${endpoint}`, {
        method: 'POST',
        headers: { authorization, 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ token }).toString(),
      });

    it("refuses a client's revocation of another client's token with unauthorized_client, and the token stays active", async () => {
      const mine = await tokenOfNewClient('Revoker');
      const theirs = await tokenOfNewClient('Holder');
      const refused = await call('revocation', mine.authorization, theirs.token);
      expect(refused.status).toBe(400);
      expect(await refused.json()).toEqual({
        error: 'unauthorized_client',
        error_description: 'the token was not issued to this client, which may revoke only its own',
      });
      expect(await (await call('introspection', theirs.authorization, theirs.token)).json()).toMatchObject({
        active: true,
      });

      // Its own token it revokes; an unknown one gets the 200 RFC 7009 §2.2 asks for.
      expect((await call('revocation', theirs.authorization, theirs.token)).status).toBe(200);
      expect(await (await call('introspection', theirs.authorization, theirs.token)).json()).toEqual({
        active: false,
      });
      expect((await call('revocation', mine.authorization, 'no-such-token')).status).toBe(200);
    });
  });

  describe('CORS at the token endpoint', () => {
    async function tokenRequestFrom(origin: string, clientId: string) {
      return fetch(`${sesame.baseUrl}/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', origin },
        body: new URLSearchParams({
          grant_type: 'refresh_token',
          refresh_token: 'unknown',
          client_id: clientId,
        }),
      });
    }

    it('never allows "Origin: null", not even for a native app whose redirect URI has that origin', async () => {
      const nativeRedirect = 'com.example.notes:/oauth/callback';
      expect(new URL(nativeRedirect).origin).toBe('null');
      const { client: native } = await createClient(
        sesame.db,
        { name: 'Notes for iOS', redirect_uris: [nativeRedirect], public: true },
        'test',
      );
      const refused = await tokenRequestFrom('null', native.client_id);
      expect(refused.headers.get('access-control-allow-origin')).toBeNull();
      expect(refused.status).toBe(400);
      expect(await refused.json()).toMatchObject({ error: 'invalid_request' });
    });

    it("allows a browser app's own origin, the origin of its redirect URI", async () => {
      const allowed = await tokenRequestFrom('http://127.0.0.1:8910', publicClientId);
      expect(allowed.headers.get('access-control-allow-origin')).toBe('http://127.0.0.1:8910');
      const other = await tokenRequestFrom('https://evil.example', publicClientId);
      expect(other.headers.get('access-control-allow-origin')).toBeNull();
    });
  });

  describe('the test apps (openid-client as test/support configures it)', () => {
    /** An RP whose token responses pass through `tamper` on their way in, as a network attacker's would. */
    async function rpWithTamperedTokenResponses(tamper: (idToken: string) => string): Promise<TestRp> {
      const tampered = await discoverRp(sesame.baseUrl, client, REDIRECT_URI);
      tampered.config[oidc.customFetch] = async (url, options) => {
        const response = await fetch(url, options as RequestInit);
        if (new URL(url).pathname !== '/token') return response;
        const body = (await response.json()) as { id_token?: string };
        const changed = body.id_token ? { ...body, id_token: tamper(body.id_token) } : body;
        return new Response(JSON.stringify(changed), {
          status: response.status,
          headers: { 'content-type': 'application/json' },
        });
      };
      return tampered;
    }

    async function signInAt(app: TestRp, email: string) {
      const person = new Person(sesame.baseUrl);
      const pending = await beginLogin(app);
      const callback = await person.continueToApp(
        await person.signUp(await person.open(pending.url), email),
        REDIRECT_URI,
      );
      return finishLogin(app, pending, callback);
    }

    it('refuses an ID token whose claims were changed after Sesame signed it', async () => {
      const forged = await rpWithTamperedTokenResponses((idToken) => {
        const [header, payload, signature] = idToken.split('.');
        const claims = JSON.parse(Buffer.from(payload!, 'base64url').toString());
        const changed = Buffer.from(JSON.stringify({ ...claims, email: 'root@example.com' })).toString(
          'base64url',
        );
        return `${header}.${changed}.${signature}`;
      });
      const refusal = await signInAt(forged, 'forged@example.com').then(
        () => undefined,
        (error: Error) => error,
      );
      expect(refusal).toBeInstanceOf(Error);
      expect(String((refusal?.cause as Error | undefined)?.message)).toMatch(
        /signature verification failed/i,
      );
    });

    it('accepts the same ID token untouched, so the refusal above is the signature check', async () => {
      const untouched = await rpWithTamperedTokenResponses((idToken) => idToken);
      const tokens = await signInAt(untouched, 'untouched@example.com');
      expect(tokens.claims()!.email).toBe('untouched@example.com');
    });
  });
});
