import { randomBytes } from 'node:crypto';
import * as oidc from 'openid-client';
import { createApiKey } from '../../src/admin/apiKeys.js';
import { clientsQueries } from '../../src/db/queries/clients.js';
import { usersQueries } from '../../src/db/queries/users.js';
import { asPage } from '../support/browser.js';
import { discoverRp, finishLogin, Person, stepUp, type TestRp } from '../support/oidcFlow.js';
import { cliJsonOn } from '../support/sesameProcess.js';
import { startTestApp, type TestApp } from '../support/testApp.js';

const REDIRECT_URI = 'http://127.0.0.1:8914/callback';

/**
 * Pushed Authorization Requests (RFC 9126): the app sends its authorization parameters to
 * the PAR endpoint over a back channel and the browser carries only a `request_uri`. A
 * client registered with `--require-par` may sign people in no other way (RFC 9126 §6).
 */
describe('pushed authorization requests', () => {
  let sesame: TestApp;
  let key: string;

  beforeAll(async () => {
    sesame = await startTestApp();
    key = (await createApiKey(sesame.db, 'tests', 'test')).key;
  });

  afterAll(() => sesame.stop());

  async function api(method: string, path: string, body: unknown) {
    const response = await fetch(`${sesame.baseUrl}/api/admin${path}`, {
      method,
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    const text = await response.text();
    // biome-ignore lint/suspicious/noExplicitAny: answers are checked field by field.
    return { status: response.status, json: (): any => JSON.parse(text) };
  }

  /** Starts a login as the app does; with `par`, through the PAR endpoint (openid-client pushes the parameters). */
  async function beginLogin(rp: TestRp, par: boolean) {
    const verifier = oidc.randomPKCECodeVerifier();
    const params = {
      redirect_uri: rp.redirectUri,
      scope: 'openid email',
      code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      state: oidc.randomState(),
      nonce: oidc.randomNonce(),
    };
    const url = par
      ? await oidc.buildAuthorizationUrlWithPAR(rp.config, params)
      : oidc.buildAuthorizationUrl(rp.config, params);
    return { url: url.toString(), verifier, state: params.state, nonce: params.nonce };
  }

  /** Signs a new person in at the app and returns the verified tokens. */
  async function signInWith(rp: TestRp, par: boolean) {
    const pending = await beginLogin(rp, par);
    const person = new Person(sesame.baseUrl);
    const next = await person.signUp(
      await person.open(pending.url),
      `p${randomBytes(4).toString('hex')}@example.com`,
    );
    return finishLogin(rp, pending, await person.continueToApp(next, REDIRECT_URI));
  }

  /** Where Sesame sends the browser for a plain (not pushed) authorization request of this app. */
  async function plainRequestAnswer(rp: TestRp) {
    const pending = await beginLogin(rp, false);
    const answer = await fetch(pending.url, { redirect: 'manual' });
    return {
      status: answer.status,
      location: new URL(answer.headers.get('location') ?? '/', sesame.baseUrl),
    };
  }

  it('advertises the PAR endpoint in discovery, without requiring it of every client', async () => {
    const discovery = (await (
      await fetch(`${sesame.baseUrl}/.well-known/openid-configuration`)
    ).json()) as Record<string, unknown>;
    expect(discovery.pushed_authorization_request_endpoint).toBe(`${sesame.baseUrl}/request`);
    expect(discovery.require_pushed_authorization_requests).toBeUndefined();
  });

  it('signs a person in through PAR (buildAuthorizationUrlWithPAR), for a confidential and a public app', async () => {
    const confidential = await cliJsonOn<{ client_id: string; client_secret: string }>(sesame, [
      'clients',
      'create',
      '--name',
      'Ledger',
      '--redirect-uri',
      REDIRECT_URI,
      '--require-par',
    ]);
    const rp = await discoverRp(sesame.baseUrl, confidential, REDIRECT_URI);
    const pending = await beginLogin(rp, true);
    // The browser carries only the client_id and the request_uri the push returned.
    expect([...new URL(pending.url).searchParams.keys()].sort()).toEqual(['client_id', 'request_uri']);
    const tokens = await signInWith(rp, true);
    expect(tokens.claims()!.email).toMatch(/@example\.com$/);

    const pub = await cliJsonOn<{ client_id: string }>(sesame, [
      'clients',
      'create',
      '--name',
      'Ledger SPA',
      '--redirect-uri',
      REDIRECT_URI,
      '--public',
      '--require-par',
    ]);
    const spa = await discoverRp(sesame.baseUrl, pub, REDIRECT_URI);
    expect((await signInWith(spa, true)).access_token).toEqual(expect.any(String));
  }, 60_000);

  it('refuses a plain authorization request of a --require-par client, and accepts it once the flag is cleared', async () => {
    const created = await cliJsonOn<{ client_id: string; client_secret: string }>(sesame, [
      'clients',
      'create',
      '--name',
      'Vault',
      '--redirect-uri',
      REDIRECT_URI,
      '--require-par',
    ]);
    const shown = await cliJsonOn<{ require_pushed_authorization_requests: boolean }>(sesame, [
      'clients',
      'show',
      created.client_id,
    ]);
    expect(shown.require_pushed_authorization_requests).toBe(true);
    const rp = await discoverRp(sesame.baseUrl, created, REDIRECT_URI);

    const refused = await plainRequestAnswer(rp);
    expect(refused.status).toBe(303);
    expect(refused.location.href.startsWith(REDIRECT_URI)).toBe(true);
    expect(refused.location.searchParams.get('error')).toBe('invalid_request');
    expect(refused.location.searchParams.get('error_description')).toMatch(/pushed authorization request/i);
    expect(refused.location.searchParams.has('code')).toBe(false);

    await cliJsonOn(sesame, ['clients', 'update', created.client_id, '--no-require-par']);
    // The server's cached client hears of the change a moment after the command's commit.
    let accepted = await plainRequestAnswer(rp);
    for (let attempt = 0; attempt < 50 && accepted.location.searchParams.has('error'); attempt++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      accepted = await plainRequestAnswer(rp);
    }
    expect(accepted.location.pathname).toMatch(/^\/interaction\//);

    await cliJsonOn(sesame, ['clients', 'update', created.client_id, '--require-par']);
    expect(
      (await clientsQueries.find(sesame.db, created.client_id))!.require_pushed_authorization_requests,
    ).toBe(true);
  });

  it('sets the flag through the admin API, and refuses a value that is not a boolean', async () => {
    const created = await api('POST', '/clients', { name: 'Mail', redirect_uris: [REDIRECT_URI] });
    expect(created.status).toBe(201);
    expect(created.json().require_pushed_authorization_requests).toBe(false);
    const id = created.json().client_id;
    for (const value of ['yes', 1, null]) {
      const refused = await api('PATCH', `/clients/${id}`, { require_pushed_authorization_requests: value });
      expect(refused.status).toBe(400);
      expect(refused.json().fields).toHaveProperty('require_pushed_authorization_requests');
    }
    const bad = await api('POST', '/clients', {
      name: 'Mail 2',
      redirect_uris: [REDIRECT_URI],
      require_pushed_authorization_requests: 'true',
    });
    expect(bad.status).toBe(400);
    expect((await clientsQueries.find(sesame.db, id))!.require_pushed_authorization_requests).toBe(false);

    const updated = await api('PATCH', `/clients/${id}`, { require_pushed_authorization_requests: true });
    expect(updated.status).toBe(200);
    expect(updated.json().require_pushed_authorization_requests).toBe(true);
    const rp = await discoverRp(
      sesame.baseUrl,
      { client_id: id, client_secret: created.json().client_secret },
      REDIRECT_URI,
    );
    expect((await plainRequestAnswer(rp)).location.searchParams.get('error')).toBe('invalid_request');
  });

  it('lets an admin require PAR, and set a back-channel logout URI, from the client page', async () => {
    const admin = new Person(sesame.baseUrl);
    const next = await admin.signUp(asPage(await admin.browser.follow('/admin')), 'root@example.com');
    await admin.browser.follow(next);
    const row = await usersQueries.findByEmail(sesame.db, 'root@example.com');
    await usersQueries.update(sesame.db, row!.id, { isAdmin: true });

    const created = await api('POST', '/clients', { name: 'Wiki', redirect_uris: [REDIRECT_URI] });
    const id = created.json().client_id as string;
    const page = await admin.browser.request(`/admin/clients/${id}`);
    expect(page.text).toContain('name="require_par"');
    expect((await stepUp(admin, page.csrf())).status).toBe(200);
    const refused = await admin.browser.request(`/admin/clients/${id}`, {
      form: {
        _csrf: page.csrf(),
        name: 'Wiki',
        redirect_uris: REDIRECT_URI,
        backchannel_logout_uri: 'ftp://x',
      },
    });
    expect(refused.status).toBe(400);
    expect(refused.text).toContain('id="backchannel_logout_uri-error"');
    const saved = await admin.browser.request(`/admin/clients/${id}`, {
      form: {
        _csrf: page.csrf(),
        name: 'Wiki',
        redirect_uris: REDIRECT_URI,
        require_par: 'on',
        backchannel_logout_uri: 'https://wiki.example/bc',
      },
    });
    expect(saved.status).toBe(302);
    expect(await clientsQueries.find(sesame.db, id)).toMatchObject({
      require_pushed_authorization_requests: true,
      backchannel_logout_uri: 'https://wiki.example/bc',
    });
    const after = await admin.browser.request(`/admin/clients/${id}`);
    expect(after.text).toMatch(/name="require_par" checked/);
  }, 60_000);
});
