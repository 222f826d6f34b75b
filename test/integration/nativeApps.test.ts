import { auditQueries } from '../../src/db/queries/audit.js';
import { createClient, updateClient } from '../../src/oidc/clients.js';
import { beginLogin, discoverRp, finishLogin, Person } from '../support/oidcFlow.js';
import { startTestApp, type TestApp } from '../support/testApp.js';

/** A private-use scheme redirect, as a mobile or desktop app registers it (RFC 8252 §7.1). */
const NATIVE_URI = 'com.example.notes:/oauth/callback';

describe('native apps with a custom-scheme redirect URI', () => {
  let sesame: TestApp;

  beforeAll(async () => {
    sesame = await startTestApp();
  });

  afterAll(() => sesame.stop());

  it('registers a public client with a custom scheme as a native app', async () => {
    const { client, client_secret } = await createClient(
      sesame.db,
      { name: 'Notes for iOS', redirect_uris: [NATIVE_URI], public: true },
      'test',
    );
    expect(client_secret).toBeUndefined();
    expect(client).toMatchObject({ public: true, application_type: 'native', redirect_uris: [NATIVE_URI] });
  });

  it('completes authorization code + PKCE back to the custom scheme, with no secret', async () => {
    const { client } = await createClient(
      sesame.db,
      { name: 'Notes for Android', redirect_uris: [NATIVE_URI], public: true },
      'test',
    );
    const rp = await discoverRp(sesame.baseUrl, { client_id: client.client_id }, NATIVE_URI);
    const person = new Person(sesame.baseUrl);
    const pending = await beginLogin(rp, 'openid email offline_access', { prompt: 'consent' });
    const next = await person.signUp(await person.open(pending.url), 'nina@example.com');
    const callback = await person.continueToApp(next, NATIVE_URI);
    expect(callback.startsWith(`${NATIVE_URI}?`)).toBe(true);

    const tokens = await finishLogin(rp, pending, callback);
    expect(tokens.claims()).toMatchObject({ email: 'nina@example.com', aud: client.client_id });
    expect(tokens.refresh_token).toEqual(expect.any(String));
  });

  it('refuses an authorization request for a custom scheme the app did not register', async () => {
    const { client } = await createClient(
      sesame.db,
      { name: 'Notes for macOS', redirect_uris: [NATIVE_URI], public: true },
      'test',
    );
    const rp = await discoverRp(sesame.baseUrl, { client_id: client.client_id }, 'com.example.evil:/cb');
    const pending = await beginLogin(rp);
    const response = await fetch(pending.url, { redirect: 'manual' });
    expect(response.status).toBe(400);
    expect(response.headers.get('location')).toBeNull();
    expect(await response.text()).toContain('redirect_uri');
  });

  it('keeps a stored client valid for the provider when an update adds https://localhost', async () => {
    const { client } = await createClient(
      sesame.db,
      { name: 'Desktop', redirect_uris: [NATIVE_URI], public: true },
      'test',
    );
    await expect(
      updateClient(
        sesame.db,
        client.client_id,
        { redirect_uris: [NATIVE_URI, 'https://localhost/cb'] },
        'test',
      ),
    ).rejects.toMatchObject({
      fields: { redirect_uris: expect.stringContaining('a native app reaches localhost over http') },
    });
    const updated = await updateClient(
      sesame.db,
      client.client_id,
      { redirect_uris: [NATIVE_URI, 'http://127.0.0.1/cb'] },
      'test',
    );
    expect(updated).toMatchObject({ application_type: 'native' });
    const actions = (await auditQueries.recent(sesame.db, 50))
      .filter((event) => event.target === client.client_id)
      .map((event) => event.action);
    expect(actions).toEqual(['client.update', 'client.create']);
  });
});

describe('desktop and command-line apps on the loopback interface (RFC 8252 §7.3)', () => {
  let sesame: TestApp;
  const REGISTERED = 'http://127.0.0.1/callback';

  beforeAll(async () => {
    sesame = await startTestApp();
  });

  afterAll(() => sesame.stop());

  it('lets a public client whose URIs are all loopback http come back on whatever port it listens on', async () => {
    const { client } = await createClient(
      sesame.db,
      { name: 'notes-cli', redirect_uris: [REGISTERED], public: true },
      'test',
    );
    expect(client.application_type).toBe('native');
    const listening = 'http://127.0.0.1:49213/callback';
    const rp = await discoverRp(sesame.baseUrl, { client_id: client.client_id }, listening);
    const person = new Person(sesame.baseUrl);
    const pending = await beginLogin(rp, 'openid email', { prompt: 'consent' });
    const next = await person.signUp(await person.open(pending.url), 'cli@example.com');
    const callback = await person.continueToApp(next, listening);
    expect(callback.startsWith(`${listening}?`)).toBe(true);
    const tokens = await finishLogin(rp, pending, callback);
    expect(tokens.claims()).toMatchObject({ email: 'cli@example.com', aud: client.client_id });
  });

  it('still matches path and host exactly, and keeps web clients to the exact port', async () => {
    const { client: cli } = await createClient(
      sesame.db,
      { name: 'notes-cli 2', redirect_uris: [REGISTERED], public: true },
      'test',
    );
    // Web apps in development: public, but on localhost (not a loopback IP), or with an https URI too.
    const { client: spa } = await createClient(
      sesame.db,
      { name: 'Notes SPA', redirect_uris: ['http://localhost:5173/cb'], public: true },
      'test',
    );
    const { client: mixed } = await createClient(
      sesame.db,
      {
        name: 'Notes mixed',
        redirect_uris: ['http://127.0.0.1:5173/cb', 'https://notes.example/cb'],
        public: true,
      },
      'test',
    );
    const { client: server } = await createClient(
      sesame.db,
      { name: 'Notes dev server', redirect_uris: ['http://127.0.0.1:8080/cb'] },
      'test',
    );
    expect([spa.application_type, mixed.application_type, server.application_type]).toEqual([
      'web',
      'web',
      'web',
    ]);
    const refused = [
      [cli.client_id, 'http://127.0.0.1:49213/other'],
      [cli.client_id, 'http://localhost:49213/callback'],
      [spa.client_id, 'http://localhost:5174/cb'],
      [mixed.client_id, 'http://127.0.0.1:5174/cb'],
      [server.client_id, 'http://127.0.0.1:9090/cb'],
    ];
    for (const [clientId, redirectUri] of refused) {
      const rp = await discoverRp(sesame.baseUrl, { client_id: clientId! }, redirectUri!);
      const response = await fetch((await beginLogin(rp)).url, { redirect: 'manual' });
      expect(response.status).toBe(400);
      expect(response.headers.get('location')).toBeNull();
    }
  });

  /** What Sesame answers an authorization request of `clientId` that names `redirectUri`. */
  async function authorize(clientId: string, redirectUri: string) {
    const rp = await discoverRp(sesame.baseUrl, { client_id: clientId }, redirectUri);
    const response = await fetch((await beginLogin(rp)).url, { redirect: 'manual' });
    return { status: response.status, location: response.headers.get('location') };
  }

  it('matches http://localhost exactly even for a native app: any port only for 127.0.0.1 and [::1]', async () => {
    const { client } = await createClient(
      sesame.db,
      {
        name: 'Notes desktop',
        redirect_uris: ['com.example.app:/cb', 'http://localhost:3001/cb', 'http://127.0.0.1:3001/cb'],
        post_logout_redirect_uris: ['http://localhost:3001/bye'],
        public: true,
      },
      'test',
    );
    expect(client.application_type).toBe('native');
    for (const other of ['http://localhost:9999/cb', 'http://localhost/cb', 'http://LOCALHOST:3001/cb']) {
      expect(await authorize(client.client_id, other)).toEqual({ status: 400, location: null });
    }
    for (const allowed of ['http://localhost:3001/cb', 'http://127.0.0.1:9999/cb', 'com.example.app:/cb']) {
      const answer = await authorize(client.client_id, allowed);
      expect(answer.location).toMatch(/\/interaction\//);
    }
    // Nor does sign-out send anyone to another localhost port.
    const logout = (uri: string) =>
      fetch(
        `${sesame.baseUrl}/session/end?${new URLSearchParams({ client_id: client.client_id, post_logout_redirect_uri: uri })}`,
        { redirect: 'manual' },
      );
    expect((await logout('http://localhost:9999/bye')).status).toBe(400);
    expect((await logout('http://localhost:3001/bye')).status).toBe(200);
  });
});
