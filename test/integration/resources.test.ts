import { randomBytes } from 'node:crypto';
import {
  createRemoteJWKSet,
  decodeJwt,
  decodeProtectedHeader,
  generateKeyPair,
  jwtVerify,
  SignJWT,
} from 'jose';
import * as oidc from 'openid-client';
import { revokeConnectedApp, signOutEverywhere } from '../../src/accounts/connectedApps.js';
import { createApiKey } from '../../src/admin/apiKeys.js';
import { disableUser } from '../../src/admin/users.js';
import { auditQueries } from '../../src/db/queries/audit.js';
import { resourcesQueries } from '../../src/db/queries/resources.js';
import { usersQueries } from '../../src/db/queries/users.js';
import { createClient } from '../../src/oidc/clients.js';
import { asPage, stoppedAt } from '../support/browser.js';
import {
  beginLogin,
  discoverRp,
  finishLogin,
  Person,
  signOutFromApp,
  stepUp,
  type TestRp,
} from '../support/oidcFlow.js';
import { autofocusedField } from '../support/refusedFields.js';
import { cliJsonOn, linesOf, runCliOn } from '../support/sesameProcess.js';
import { startTestApp, type TestApp } from '../support/testApp.js';

const REDIRECT_URI = 'http://127.0.0.1:8913/callback';
const API = 'https://api.example';

/**
 * APIs as resources (RFC 8707): an app that names a registered API with `resource=` gets an
 * RFC 9068 JWT access token for it, which the API verifies with the JWKS alone. Without a
 * resource, access tokens stay opaque and introspection answers for them.
 */
describe('APIs registered as resources get JWT access tokens', () => {
  let sesame: TestApp;
  let key: string;
  let confidential: { client_id: string; client_secret: string };
  let rp: TestRp;
  let service: oidc.Configuration;

  beforeAll(async () => {
    sesame = await startTestApp();
    key = (await createApiKey(sesame.db, 'tests', 'test')).key;
    const created = await createClient(sesame.db, { name: 'Notes', redirect_uris: [REDIRECT_URI] }, 'test');
    confidential = { client_id: created.client.client_id, client_secret: created.client_secret! };
    rp = await discoverRp(sesame.baseUrl, confidential, REDIRECT_URI);
    service = rp.config;
  });

  afterAll(() => sesame.stop());

  async function api(method: string, path: string, body?: unknown, rawBody?: string) {
    const response = await fetch(`${sesame.baseUrl}/api/admin${path}`, {
      method,
      headers: {
        authorization: `Bearer ${key}`,
        ...((body !== undefined || rawBody !== undefined) && { 'content-type': 'application/json' }),
      },
      body: rawBody ?? (body === undefined ? undefined : JSON.stringify(body)),
    });
    const text = await response.text();
    // biome-ignore lint/suspicious/noExplicitAny: answers are checked field by field.
    return { status: response.status, json: (): any => JSON.parse(text) };
  }

  /** What an API does with a bearer token: verify it with Sesame's published keys, nothing else. */
  async function verifyAsApi(token: string, audience = API) {
    const jwks = createRemoteJWKSet(new URL('/jwks', sesame.baseUrl));
    return jwtVerify(token, jwks, { issuer: sesame.baseUrl, audience, typ: 'at+jwt' });
  }

  /** RFC 7662: a 200 for any token, and what it says of it. A public client sends only its id. */
  async function introspect(
    token: string,
    client: { client_id: string; client_secret?: string } = confidential,
  ) {
    const response = await fetch(new URL('/token/introspection', sesame.baseUrl), {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        ...(client.client_secret && {
          authorization: `Basic ${Buffer.from(`${client.client_id}:${client.client_secret}`).toString('base64')}`,
        }),
      },
      body: new URLSearchParams({ token, ...(!client.client_secret && { client_id: client.client_id }) }),
    });
    expect(response.status).toBe(200);
    return (await response.json()) as { active: boolean } & Record<string, unknown>;
  }

  async function signIn(scope: string, extra: Record<string, string>) {
    const person = new Person(sesame.baseUrl);
    const pending = await beginLogin(rp, scope, { prompt: 'consent', ...extra });
    const next = await person.signUp(
      await person.open(pending.url),
      `r${randomBytes(4).toString('hex')}@example.com`,
    );
    return { pending, callback: await person.continueToApp(next, REDIRECT_URI) };
  }

  it('registers an API with the CLI, lists it, and refuses a second one with the same identifier', async () => {
    const created = await cliJsonOn<{ id: string; identifier: string; scopes: string[] }>(sesame, [
      'resources',
      'create',
      '--identifier',
      API,
      '--scope',
      'read',
      '--scope',
      'write',
      '--name',
      'Example API',
    ]);
    expect(created).toMatchObject({ identifier: API, name: 'Example API', scopes: ['read', 'write'] });
    const listed = await cliJsonOn<Array<{ id: string }>>(sesame, ['resources', 'list']);
    expect(listed.map((r) => r.id)).toEqual([created.id]);
    const again = await runCliOn(sesame, ['resources', 'create', '--identifier', API, '--json']);
    expect(again.code).not.toBe(0);
    expect(again.stdout).toBe('');
    expect(linesOf(again.stderr)).toEqual([`sesame: --identifier: ${API} is already registered`]);
    const bad = await runCliOn(sesame, ['resources', 'create', '--identifier', 'api.example', '--json']);
    expect(linesOf(bad.stderr)).toEqual([
      expect.stringMatching(/^sesame: --identifier: must be an absolute URI/),
    ]);
    const oidcScope = await runCliOn(sesame, [
      'resources',
      'create',
      '--identifier',
      'https://b.example',
      '--scope',
      'openid',
    ]);
    expect(linesOf(oidcScope.stderr)).toEqual([
      expect.stringMatching(/^sesame: --scope: must not be openid/),
    ]);
    // groups is Sesame's too: a token for an API declaring it also gave the app the person's groups.
    const groupsScope = await runCliOn(sesame, [
      'resources',
      'create',
      '--identifier',
      'https://c.example',
      '--scope',
      'groups',
    ]);
    expect(linesOf(groupsScope.stderr)).toEqual([
      'sesame: --scope: must not be openid, offline_access, email, profile or groups (Sesame’s own scopes)',
    ]);
    expect(await auditQueries.recent(sesame.db, 10)).toEqual(
      expect.arrayContaining([expect.objectContaining({ action: 'resource.create', target: created.id })]),
    );
  });

  it('issues a client_credentials token for the API as an RFC 9068 JWT that the JWKS alone verifies', async () => {
    await cliJsonOn(sesame, ['resources', 'allow-client', API, confidential.client_id]);
    const tokens = await oidc.clientCredentialsGrant(service, { resource: API, scope: 'read' });
    const { payload, protectedHeader } = await verifyAsApi(tokens.access_token);
    expect(protectedHeader.typ).toBe('at+jwt');
    expect(payload).toMatchObject({
      iss: sesame.baseUrl,
      aud: API,
      scope: 'read',
      client_id: confidential.client_id,
      sub: confidential.client_id,
    });
    expect(payload.exp! - payload.iat!).toBe(3600);
    expect(payload.jti).toEqual(expect.any(String));
    // Another API must not accept it.
    await expect(verifyAsApi(tokens.access_token, 'https://other.example')).rejects.toThrow(/aud/);
  });

  it('only grants the API’s own scopes: others asked for are left out', async () => {
    const tokens = await oidc.clientCredentialsGrant(service, { resource: API, scope: 'read write admin' });
    const { payload } = await verifyAsApi(tokens.access_token);
    expect(String(payload.scope).split(' ').sort()).toEqual(['read', 'write']);
  });

  it('gives a client_credentials token only to a client the API allows, with only the scopes allowed to it', async () => {
    const created = await createClient(
      sesame.db,
      { name: 'Worker', redirect_uris: [], grant_types: ['client_credentials'] },
      'test',
    );
    const worker = { client_id: created.client.client_id, client_secret: created.client_secret! };
    const workerConfig = (await discoverRp(sesame.baseUrl, worker, REDIRECT_URI)).config;
    const grant = (scope: string) => oidc.clientCredentialsGrant(workerConfig, { resource: API, scope });
    const scopeOf = async (scope: string) =>
      (await verifyAsApi((await grant(scope)).access_token)).payload.scope;

    // No person consents to a machine's token: a client the API does not list gets none.
    await expect(grant('read')).rejects.toMatchObject({ error: 'invalid_target' });
    // Without a resource it still gets its opaque token, for Sesame's own endpoints.
    await oidc.clientCredentialsGrant(workerConfig, {});

    const allowed = await cliJsonOn<{ machine_clients: Record<string, string[]> }>(sesame, [
      'resources',
      'allow-client',
      API,
      worker.client_id,
      '--scope',
      'read',
    ]);
    expect(allowed.machine_clients[worker.client_id]).toEqual(['read']);
    // The CLI's change reaches the server by the row's notice, a moment after its commit.
    let granted: unknown;
    for (let attempt = 0; attempt < 50 && granted === undefined; attempt++) {
      granted = await scopeOf('read write').catch(
        () => new Promise((r) => setTimeout(() => r(undefined), 100)),
      );
    }
    expect(granted).toBe('read');

    // The admin API: all the API's scopes when none are named, then none at all.
    const resource = (await api('GET', '/resources'))
      .json()
      .find((r: { identifier: string }) => r.identifier === API);
    const put = await api('PUT', `/resources/${resource.id}/clients/${worker.client_id}`, {});
    expect(put.status).toBe(200);
    expect(put.json().machine_clients[worker.client_id]).toEqual(['read', 'write']);
    expect(
      String(await scopeOf('read write'))
        .split(' ')
        .sort(),
    ).toEqual(['read', 'write']);
    const removed = await api('DELETE', `/resources/${resource.id}/clients/${worker.client_id}`);
    expect(removed.status).toBe(200);
    expect(removed.json().machine_clients).not.toHaveProperty(worker.client_id);
    await expect(grant('read')).rejects.toMatchObject({ error: 'invalid_target' });

    // Refused, changing nothing: an unknown client, a client without the grant, a scope the API lacks.
    const before = await resourcesQueries.findByIdentifier(sesame.db, API);
    const bad = await runCliOn(sesame, ['resources', 'allow-client', API, 'no-such-client']);
    expect(linesOf(bad.stderr)).toEqual(['sesame: there is no client no-such-client']);
    const notMachine = await runCliOn(sesame, [
      'resources',
      'allow-client',
      API,
      (
        await createClient(
          sesame.db,
          { name: 'Web', redirect_uris: [REDIRECT_URI], grant_types: ['authorization_code'] },
          'test',
        )
      ).client.client_id,
    ]);
    expect(notMachine.stderr).toMatch(/does not use client_credentials/);
    const badScope = await runCliOn(sesame, [
      'resources',
      'allow-client',
      API,
      worker.client_id,
      '--scope',
      'admin',
    ]);
    expect(linesOf(badScope.stderr)).toEqual(['sesame: --scope: the API has no scope admin']);
    for (const body of [{ scopes: 'read' }, { scopes: [1] }, { other: true }]) {
      expect((await api('PUT', `/resources/${resource.id}/clients/${worker.client_id}`, body)).status).toBe(
        400,
      );
    }
    expect((await api('PUT', `/resources/${resource.id}/clients/nobody`, {})).status).toBe(400);
    expect(
      (await api('PUT', `/resources/00000000-0000-0000-0000-000000000000/clients/${worker.client_id}`, {}))
        .status,
    ).toBe(404);
    expect(await resourcesQueries.findByIdentifier(sesame.db, API)).toEqual(before);
    expect((await auditQueries.recent(sesame.db, 20)).map((e) => e.action)).toEqual(
      expect.arrayContaining(['resource.allow_client', 'resource.deny_client']),
    );
  });

  it('issues the signed-in person’s token for the API in the authorization code flow', async () => {
    const { pending, callback } = await signIn('openid email read', { resource: API });
    const tokens = await finishLogin(rp, pending, callback);
    const { payload } = await verifyAsApi(tokens.access_token);
    const sub = tokens.claims()!.sub;
    expect(payload).toMatchObject({ aud: API, sub, client_id: confidential.client_id, scope: 'read' });
    expect(decodeProtectedHeader(tokens.access_token).kid).toEqual(expect.any(String));
  }, 60_000);

  it('describes the API’s JWT access tokens at introspection (RFC 7662) instead of unsupported_token_type', async () => {
    const { pending, callback } = await signIn('openid offline_access read', { resource: API });
    const tokens = await finishLogin(rp, pending, callback);
    const { payload } = await verifyAsApi(tokens.access_token);
    expect(await introspect(tokens.access_token)).toEqual({
      active: true,
      token_type: 'Bearer',
      iss: sesame.baseUrl,
      aud: API,
      sub: tokens.claims()!.sub,
      client_id: confidential.client_id,
      scope: 'read',
      exp: payload.exp,
      iat: payload.iat,
      jti: payload.jti,
      // The grant the token was issued under, by which introspection ends it.
      grant_id: expect.any(String),
    });
    // The JWT a refresh gives, answered as it is sent: "Bearer", as every grant says it (RFC 6750 §4).
    const refreshed = await fetch(new URL('/token', sesame.baseUrl), {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        authorization: `Basic ${Buffer.from(`${confidential.client_id}:${confidential.client_secret}`).toString('base64')}`,
      },
      body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: tokens.refresh_token! }),
    });
    const again = (await refreshed.json()) as { access_token: string; token_type: string };
    expect([refreshed.status, again.token_type]).toEqual([200, 'Bearer']);
    expect(await introspect(again.access_token)).toMatchObject({
      active: true,
      aud: API,
      token_type: 'Bearer',
    });
    const machine = await oidc.clientCredentialsGrant(service, { resource: API, scope: 'read' });
    expect(await introspect(machine.access_token)).toMatchObject({
      active: true,
      sub: confidential.client_id,
      client_id: confidential.client_id,
      aud: API,
    });
  }, 60_000);

  it('calls inactive a JWT that is not Sesame’s access token, or that its app or account lost since', async () => {
    const { pending, callback } = await signIn('openid read', { resource: API });
    const tokens = await finishLogin(rp, pending, callback);
    const sub = tokens.claims()!.sub;
    const [header, body, signature] = tokens.access_token.split('.');
    const otherKey = (await generateKeyPair('ES256')).privateKey;
    const notSesames = [
      // Another signature, or another body under Sesame's signature.
      `${header}.${body}.${signature!.slice(0, -4)}AAAA`,
      `${header}.${Buffer.from(JSON.stringify({ ...decodeJwt(tokens.access_token), scope: 'write' })).toString('base64url')}.${signature}`,
      // Signed by Sesame, but an ID token, not an access token.
      tokens.id_token!,
      // An access token in every claim, signed by someone else's key.
      await new SignJWT({ ...decodeJwt(tokens.access_token) })
        .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt' })
        .sign(otherKey),
    ];
    for (const token of notSesames) expect(await introspect(token)).toEqual({ active: false });

    // A public app may introspect only its own tokens.
    const spa = await createClient(
      sesame.db,
      { name: 'SPA', redirect_uris: [REDIRECT_URI], public: true },
      'test',
    );
    expect(await introspect(tokens.access_token, { client_id: spa.client.client_id })).toEqual({
      active: false,
    });
    expect((await introspect(tokens.access_token)).active).toBe(true);

    // The person disconnects the app on their account page.
    await revokeConnectedApp(sesame.db, sub, confidential.client_id);
    // As the account page's route does: this instance forgets at once, not when the notices
    // arrive (which a loaded machine delayed past the next request: CI saw the token active).
    sesame.app.caches.models.forgetAll();
    expect(await introspect(tokens.access_token)).toEqual({ active: false });

    // Another person's token, until an admin disables the account.
    const second = await signIn('openid read', { resource: API });
    const theirs = await finishLogin(rp, second.pending, second.callback);
    expect((await introspect(theirs.access_token)).active).toBe(true);
    await disableUser(sesame.db, theirs.claims()!.sub, 'test');
    expect(await introspect(theirs.access_token)).toEqual({ active: false });
  }, 60_000);

  describe('a JWT access token issued without offline_access ends with its browser session, as an opaque one does', () => {
    const POST_LOGOUT = 'http://127.0.0.1:8913/signed-out';
    let app: { client_id: string; client_secret: string };
    let appRp: TestRp;

    beforeAll(async () => {
      const created = await createClient(
        sesame.db,
        { name: 'Planner', redirect_uris: [REDIRECT_URI], post_logout_redirect_uris: [POST_LOGOUT] },
        'test',
      );
      app = { client_id: created.client.client_id, client_secret: created.client_secret! };
      appRp = await discoverRp(sesame.baseUrl, app, REDIRECT_URI);
    });

    /**
     * One browser sign-in: the app asks for offline_access first, so its grant holds it (and
     * outlives the session for the refresh token), then for the API without it, then for an
     * opaque token without it.
     */
    async function signInThrice() {
      const person = new Person(sesame.baseUrl);
      const first = await beginLogin(appRp, 'openid offline_access', { prompt: 'consent' });
      const next = await person.signUp(
        await person.open(first.url),
        `s${randomBytes(4).toString('hex')}@example.com`,
      );
      const offline = await finishLogin(appRp, first, await person.continueToApp(next, REDIRECT_URI));
      const forApi = await beginLogin(appRp, 'openid read', { resource: API });
      const jwt = await finishLogin(appRp, forApi, await person.continueToApp(forApi.url, REDIRECT_URI));
      const plain = await beginLogin(appRp, 'openid');
      const opaque = await finishLogin(appRp, plain, await person.continueToApp(plain.url, REDIRECT_URI));
      expect(jwt.access_token.split('.')).toHaveLength(3);
      // Active while the session lasts.
      expect(await introspect(jwt.access_token, app)).toMatchObject({ active: true, aud: API });
      expect((await introspect(opaque.access_token, app)).active).toBe(true);
      return { person, sub: offline.claims()!.sub, offline, jwt, opaque };
    }

    it('on "Sign out everywhere"', async () => {
      const { sub, jwt, opaque } = await signInThrice();
      await signOutEverywhere(sesame.db, sub);
      expect(await introspect(opaque.access_token, app)).toEqual({ active: false });
      expect(await introspect(jwt.access_token, app)).toEqual({ active: false });
    }, 60_000);

    it('on the app’s sign-out (RP-initiated logout), the grant with offline_access kept', async () => {
      const { person, offline, jwt, opaque } = await signInThrice();
      await signOutFromApp(person, appRp, opaque.id_token!, POST_LOGOUT);
      expect(await introspect(opaque.access_token, app)).toEqual({ active: false });
      expect(await introspect(jwt.access_token, app)).toEqual({ active: false });
      // The grant outlives the session: its refresh token still works.
      const refreshed = await oidc.refreshTokenGrant(appRp.config, offline.refresh_token!);
      expect((await introspect(refreshed.access_token, app)).active).toBe(true);
    }, 60_000);
  });

  it('gives a first-party app the API’s token without a consent page', async () => {
    const created = await createClient(
      sesame.db,
      { name: 'Console', redirect_uris: [REDIRECT_URI], first_party: true },
      'test',
    );
    const own = await discoverRp(
      sesame.baseUrl,
      { client_id: created.client.client_id, client_secret: created.client_secret! },
      REDIRECT_URI,
    );
    const person = new Person(sesame.baseUrl);
    const pending = await beginLogin(own, 'openid write', { resource: API });
    const next = await person.signUp(
      await person.open(pending.url),
      `f${randomBytes(4).toString('hex')}@example.com`,
    );
    const callback = stoppedAt(await person.browser.follow(next, (u) => u.startsWith(REDIRECT_URI)));
    const tokens = await finishLogin(own, pending, callback);
    expect((await verifyAsApi(tokens.access_token)).payload).toMatchObject({ aud: API, scope: 'write' });
  }, 60_000);

  it('keeps opaque access tokens, and introspection, when no resource is named', async () => {
    const { pending, callback } = await signIn('openid email', {});
    const tokens = await finishLogin(rp, pending, callback);
    expect(tokens.access_token.split('.')).toHaveLength(1);
    expect((await introspect(tokens.access_token)).active).toBe(true);
    const userinfo = await oidc.fetchUserInfo(rp.config, tokens.access_token, tokens.claims()!.sub);
    expect(userinfo.email).toMatch(/@example\.com$/);
    const plain = await oidc.clientCredentialsGrant(service, {});
    expect(plain.access_token.split('.')).toHaveLength(1);
  }, 60_000);

  it('refuses an unknown resource with invalid_target, at the token endpoint and at authorization', async () => {
    await expect(
      oidc.clientCredentialsGrant(service, { resource: 'https://unknown.example' }),
    ).rejects.toMatchObject({
      error: 'invalid_target',
    });
    await expect(oidc.clientCredentialsGrant(service, { resource: 'not a uri' })).rejects.toMatchObject({
      error: 'invalid_target',
    });
    const pending = await beginLogin(rp, 'openid', { resource: 'https://unknown.example' });
    const answer = await fetch(pending.url, { redirect: 'manual' });
    const location = new URL(answer.headers.get('location')!);
    expect(location.href.startsWith(REDIRECT_URI)).toBe(true);
    expect(location.searchParams.get('error')).toBe('invalid_target');
  });

  it('manages APIs through the admin API and refuses bad input with a 400 naming the field, changing nothing', async () => {
    const before = (await resourcesQueries.list(sesame.db)).length;
    const bad = [
      { identifier: 42 },
      { scopes: ['read'] },
      { identifier: 'https://c.example', scopes: 'read' },
      { identifier: 'https://c.example', scopes: [1] },
      { identifier: 'https://c.example', scopes: ['a b'] },
      { identifier: 'https://c.example#frag' },
      { identifier: 'http://c.example' },
      { identifier: 'https://c.example', name: '' },
      { identifier: 'https://c.example', extra: true },
      { identifier: API },
    ];
    for (const body of bad) {
      const answer = await api('POST', '/resources', body);
      expect([answer.status, body]).toEqual([400, body]);
      expect(answer.json()).toMatchObject({ error: 'invalid_request', fields: expect.any(Object) });
    }
    expect((await api('POST', '/resources', undefined, '{"identifier":')).status).toBe(400);
    expect((await api('POST', '/resources', undefined, '[]')).status).toBe(400);
    expect((await resourcesQueries.list(sesame.db)).length).toBe(before);

    const created = await api('POST', '/resources', {
      identifier: 'https://c.example/v1',
      scopes: ['c:read'],
    });
    expect(created.status).toBe(201);
    const { id } = created.json();
    expect(created.json()).toMatchObject({
      identifier: 'https://c.example/v1',
      name: 'https://c.example/v1',
    });
    expect((await api('GET', `/resources/${id}`)).json()).toMatchObject({ id, scopes: ['c:read'] });
    expect((await api('GET', '/resources')).json()).toHaveLength(before + 1);
    expect((await api('PUT', `/resources/${id}/clients/${confidential.client_id}`, {})).status).toBe(200);
    const issued = await oidc.clientCredentialsGrant(service, {
      resource: 'https://c.example/v1',
      scope: 'c:read',
    });
    expect((await verifyAsApi(issued.access_token, 'https://c.example/v1')).payload.scope).toBe('c:read');

    expect((await api('DELETE', `/resources/${id}`)).status).toBe(204);
    expect((await api('GET', `/resources/${id}`)).status).toBe(404);
    expect((await api('DELETE', `/resources/${id}`)).status).toBe(404);
    expect((await api('GET', '/resources/not-a-uuid')).status).toBe(404);
    // Deleted: the cached entry went with it, and new tokens are refused.
    await expect(
      oidc.clientCredentialsGrant(service, { resource: 'https://c.example/v1' }),
    ).rejects.toMatchObject({ error: 'invalid_target' });
  });

  it('stops issuing tokens for an API deleted with the CLI (the server’s cache hears of it)', async () => {
    await cliJsonOn(sesame, ['resources', 'create', '--identifier', 'https://d.example']);
    await cliJsonOn(sesame, ['resources', 'allow-client', 'https://d.example', confidential.client_id]);
    let issued: unknown;
    for (let attempt = 0; attempt < 50 && !issued; attempt++) {
      issued = await oidc
        .clientCredentialsGrant(service, { resource: 'https://d.example' })
        .catch(() => new Promise((resolve) => setTimeout(() => resolve(undefined), 100)));
    }
    expect(issued).toBeTruthy();
    await cliJsonOn(sesame, ['resources', 'delete', 'https://d.example', '--yes']);
    // The change notice reaches the server a moment after the command's commit.
    let refusal: unknown;
    for (let attempt = 0; attempt < 50 && !refusal; attempt++) {
      refusal = await oidc.clientCredentialsGrant(service, { resource: 'https://d.example' }).then(
        () => new Promise((resolve) => setTimeout(() => resolve(undefined), 100)),
        (error: unknown) => error,
      );
    }
    expect(refusal).toMatchObject({ error: 'invalid_target' });
  });

  it('lets an admin register an API on /admin/resources and delete it after a passkey step-up', async () => {
    const admin = new Person(sesame.baseUrl);
    const next = await admin.signUp(asPage(await admin.browser.follow('/admin')), 'root@example.com');
    await admin.browser.follow(next);
    const adminRow = await usersQueries.findByEmail(sesame.db, 'root@example.com');
    await usersQueries.update(sesame.db, adminRow!.id, { isAdmin: true });

    const list = await admin.browser.request('/admin/resources');
    expect(list.status).toBe(200);
    expect(list.text).toContain('Register API');
    // Each API lists the clients it gives client_credentials tokens to, with their scopes.
    expect(list.text).toContain(`<li><code>${confidential.client_id}</code> read write</li>`);
    const before = (await resourcesQueries.list(sesame.db)).length;
    const refused = await admin.browser.request('/admin/resources', {
      form: { _csrf: list.csrf(), identifier: 'ftp://e.example', scopes: 'read' },
    });
    expect(refused.status).toBe(400);
    expect(refused.text).toContain('id="resource-identifier-error"');
    expect(autofocusedField(refused.text)).toEqual({
      id: 'resource-identifier',
      invalid: true,
      describedBy: 'resource-identifier-error',
    });
    expect((await resourcesQueries.list(sesame.db)).length).toBe(before);

    const created = await admin.browser.request('/admin/resources', {
      form: {
        _csrf: list.csrf(),
        identifier: 'https://e.example',
        name: 'Billing',
        scopes: 'bill:read  bill:write',
      },
    });
    expect(created.status).toBe(302);
    const row = await resourcesQueries.findByIdentifier(sesame.db, 'https://e.example');
    expect(row).toMatchObject({ name: 'Billing', scopes: ['bill:read', 'bill:write'] });
    expect((await admin.browser.request('/admin/resources')).text).toContain('aria-label="Delete Billing"');

    const confirm = await admin.browser.request(`/admin/resources/${row!.id}/delete`);
    expect(confirm.status).toBe(200);
    const withoutStepUp = await admin.browser.request(`/admin/resources/${row!.id}/delete`, {
      form: { _csrf: confirm.csrf() },
    });
    expect(withoutStepUp.status).toBe(403);
    expect(await resourcesQueries.findByIdentifier(sesame.db, 'https://e.example')).toBeDefined();
    expect((await stepUp(admin, confirm.csrf())).status).toBe(200);
    const deleted = await admin.browser.request(`/admin/resources/${row!.id}/delete`, {
      form: { _csrf: confirm.csrf() },
    });
    expect(deleted.status).toBe(302);
    expect(await resourcesQueries.findByIdentifier(sesame.db, 'https://e.example')).toBeUndefined();
  }, 60_000);
});
