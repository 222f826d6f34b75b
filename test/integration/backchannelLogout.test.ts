import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import * as oidc from 'openid-client';
import { createApiKey } from '../../src/admin/apiKeys.js';
import { clientsQueries } from '../../src/db/queries/clients.js';
import type { PageResponse } from '../support/browser.js';
import { beginLogin, discoverRp, finishLogin, Person, type TestRp } from '../support/oidcFlow.js';
import { cliJsonOn, linesOf, runCliOn } from '../support/sesameProcess.js';
import { startTestApp, type TestApp } from '../support/testApp.js';

const REDIRECT_URI = 'http://127.0.0.1:8916/callback';
const LOGGED_OUT_URI = 'http://127.0.0.1:8916/logged-out';

/** An app's back-channel logout endpoint: records each POST body and answers with `status`. */
async function startLogoutEndpoint() {
  const received: URLSearchParams[] = [];
  const endpoint = { received, status: 200, url: '' };
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => {
      body += chunk.toString('utf8');
    });
    req.on('end', () => {
      if (req.method === 'POST') received.push(new URLSearchParams(body));
      res.writeHead(endpoint.status).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  endpoint.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/backchannel-logout`;
  return { endpoint, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

/**
 * OpenID Connect Back-Channel Logout 1.0: when a person signs out at Sesame (RP-initiated
 * logout), every app of that session that registered a `backchannel_logout_uri` gets a
 * logout token it verifies with the JWKS alone.
 */
describe('back-channel logout', () => {
  let sesame: TestApp;
  let logout: Awaited<ReturnType<typeof startLogoutEndpoint>>;
  let key: string;

  beforeAll(async () => {
    sesame = await startTestApp();
    logout = await startLogoutEndpoint();
    key = (await createApiKey(sesame.db, 'tests', 'test')).key;
  });

  afterAll(async () => {
    await logout.close();
    await sesame.stop();
  });

  async function registerApp(name: string, extra: string[] = []) {
    const created = await cliJsonOn<{ client_id: string; client_secret: string }>(sesame, [
      'clients',
      'create',
      '--name',
      name,
      '--redirect-uri',
      REDIRECT_URI,
      '--post-logout-redirect-uri',
      LOGGED_OUT_URI,
      ...extra,
    ]);
    return discoverRp(sesame.baseUrl, created, REDIRECT_URI);
  }

  async function signIn(person: Person, rp: TestRp, signUp: boolean) {
    const pending = await beginLogin(rp, 'openid email', { prompt: 'consent' });
    const page = await person.open(pending.url);
    const next = signUp
      ? await person.signUp(page, `b${randomBytes(4).toString('hex')}@example.com`)
      : page.url;
    return finishLogin(rp, pending, await person.continueToApp(next, REDIRECT_URI));
  }

  /** RP-initiated logout from `rp`, pressing "Sign out" on Sesame's page. */
  async function signOut(person: Person, rp: TestRp, idToken: string) {
    const url = oidc.buildEndSessionUrl(rp.config, {
      id_token_hint: idToken,
      post_logout_redirect_uri: LOGGED_OUT_URI,
    });
    const confirm: PageResponse = await person.browser.request(url.toString());
    const form = /<form[^>]*action="([^"]+)"[^>]*>[\s\S]*?name="xsrf" value="([^"]+)"/.exec(confirm.text)!;
    return person.browser.request(form[1]!, { form: { xsrf: form[2]!, logout: 'yes' } });
  }

  it('advertises back-channel logout with sessions in discovery', async () => {
    const discovery = (await (
      await fetch(`${sesame.baseUrl}/.well-known/openid-configuration`)
    ).json()) as Record<string, unknown>;
    expect(discovery.backchannel_logout_supported).toBe(true);
    expect(discovery.backchannel_logout_session_supported).toBe(true);
  });

  it('posts a logout token to every app of the session on RP-initiated logout; the app verifies it with the JWKS', async () => {
    logout.endpoint.received.length = 0;
    const notes = await registerApp('Notes', ['--backchannel-logout-uri', logout.endpoint.url]);
    const wiki = await registerApp('Wiki', ['--backchannel-logout-uri', `${logout.endpoint.url}?app=wiki`]);
    const silent = await registerApp('Silent');
    const person = new Person(sesame.baseUrl);
    const notesTokens = await signIn(person, notes, true);
    const wikiTokens = await signIn(person, wiki, false);
    await signIn(person, silent, false);
    const notesSid = notesTokens.claims()!.sid;
    expect(notesSid).toEqual(expect.any(String));

    const done = await signOut(person, notes, notesTokens.id_token!);
    expect(done.location()).toMatch(new RegExp(`^${LOGGED_OUT_URI}`));

    const tokens = logout.endpoint.received.map((body) => body.get('logout_token')!);
    expect(tokens).toHaveLength(2);
    const jwks = createRemoteJWKSet(new URL('/jwks', sesame.baseUrl));
    const verified = await Promise.all(
      tokens.map((token) => jwtVerify(token, jwks, { issuer: sesame.baseUrl, typ: 'logout+jwt' })),
    );
    const byAudience = new Map(verified.map(({ payload }) => [payload.aud, payload]));
    const forNotes = byAudience.get(notes.config.clientMetadata().client_id)!;
    const forWiki = byAudience.get(wiki.config.clientMetadata().client_id)!;
    for (const [payload, idTokenClaims] of [
      [forNotes, notesTokens.claims()!],
      [forWiki, wikiTokens.claims()!],
    ] as const) {
      expect(payload).toMatchObject({
        sub: idTokenClaims.sub,
        sid: idTokenClaims.sid,
        events: { 'http://schemas.openid.net/event/backchannel-logout': {} },
      });
      expect(payload.nonce).toBeUndefined();
      expect(payload.jti).toEqual(expect.any(String));
      expect(payload.iat).toEqual(expect.any(Number));
    }
    expect(decodeProtectedHeader(tokens[0]!).kid).toEqual(expect.any(String));
  }, 90_000);

  it('signs the person out even when an app’s endpoint fails', async () => {
    logout.endpoint.received.length = 0;
    logout.endpoint.status = 500;
    try {
      const app = await registerApp('Flaky', ['--backchannel-logout-uri', logout.endpoint.url]);
      const person = new Person(sesame.baseUrl);
      const tokens = await signIn(person, app, true);
      const done = await signOut(person, app, tokens.id_token!);
      expect(done.location()).toMatch(new RegExp(`^${LOGGED_OUT_URI}`));
      expect(logout.endpoint.received).toHaveLength(1);
      // Signed out: the next authorization asks for a passkey again.
      const again = await beginLogin(app, 'openid');
      expect((await person.open(again.url)).text).toContain('Sign in with a passkey');
    } finally {
      logout.endpoint.status = 200;
    }
  }, 60_000);

  it('sets and clears the URI with the CLI and the API, and refuses a bad one naming the field', async () => {
    const app = await registerApp('Mail');
    const id = app.config.clientMetadata().client_id;
    const set = await cliJsonOn<{ backchannel_logout_uri: string }>(sesame, [
      'clients',
      'update',
      id,
      '--backchannel-logout-uri',
      'https://mail.example/logout',
    ]);
    expect(set.backchannel_logout_uri).toBe('https://mail.example/logout');
    const cleared = await cliJsonOn<{ backchannel_logout_uri: null }>(sesame, [
      'clients',
      'update',
      id,
      '--no-backchannel-logout-uri',
    ]);
    expect(cleared.backchannel_logout_uri).toBeNull();

    for (const uri of ['http://mail.example/logout', 'https://mail.example/logout#x', 'logout']) {
      const refused = await runCliOn(sesame, [
        'clients',
        'update',
        id,
        '--backchannel-logout-uri',
        uri,
        '--json',
      ]);
      expect(refused.code).not.toBe(0);
      expect(linesOf(refused.stderr)).toEqual([expect.stringMatching(/^sesame: --backchannel-logout-uri: /)]);
    }

    const api = (body: unknown) =>
      fetch(`${sesame.baseUrl}/api/admin/clients/${id}`, {
        method: 'PATCH',
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
    for (const value of [42, ['https://mail.example/logout'], 'ftp://mail.example/logout']) {
      const refused = await api({ backchannel_logout_uri: value });
      expect(refused.status).toBe(400);
      expect(((await refused.json()) as { fields: object }).fields).toHaveProperty('backchannel_logout_uri');
    }
    expect((await clientsQueries.find(sesame.db, id))!.backchannel_logout_uri).toBeNull();
    const ok = await api({ backchannel_logout_uri: 'https://mail.example/bc' });
    expect(ok.status).toBe(200);
    expect((await clientsQueries.find(sesame.db, id))!.backchannel_logout_uri).toBe(
      'https://mail.example/bc',
    );
  });
});
