import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import * as oidc from 'openid-client';
import { createApiKey } from '../../src/admin/apiKeys.js';
import { recentAuditEvents } from '../../src/admin/audit.js';
import { openDatabase } from '../../src/db/connect.js';
import { backchannelDeliveriesQueries } from '../../src/db/queries/backchannelDeliveries.js';
import { clientsQueries } from '../../src/db/queries/clients.js';
import { createLogger } from '../../src/logger.js';
import { metricsRegistry } from '../../src/metrics.js';
import { BackchannelOutbox, wakeBackchannelOutboxes } from '../../src/oidc/backchannelOutbox.js';
import { createClient, DEVICE_CODE_GRANT } from '../../src/oidc/clients.js';
import {
  beginLogin,
  discoverRp,
  finishLogin,
  Person,
  signInDevice,
  signOutFromApp,
  type TestRp,
} from '../support/oidcFlow.js';
import { cliJsonOn, linesOf, runCliOn } from '../support/sesameProcess.js';
import { startTestApp, type TestApp } from '../support/testApp.js';

const REDIRECT_URI = 'http://127.0.0.1:8916/callback';
const LOGGED_OUT_URI = 'http://127.0.0.1:8916/logged-out';

/** One POST an app's back-channel logout endpoint received, and the status it answered. */
interface Received {
  token: string;
  query: string;
  status: number;
  /** When it arrived, in seconds since the epoch (as a JWT's iat). */
  at: number;
}

/**
 * An app's back-channel logout endpoint: records each POST and answers 200, or 500 while
 * `failures` is above zero (each failure counts it down), or `status` when set.
 */
async function startLogoutEndpoint() {
  const received: Received[] = [];
  const endpoint = { received, failures: 0, status: undefined as number | undefined, delayMs: 0, url: '' };
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => {
      body += chunk.toString('utf8');
    });
    req.on('end', async () => {
      const failing = endpoint.failures > 0;
      if (failing) endpoint.failures -= 1;
      const status = endpoint.status ?? (failing ? 500 : 200);
      if (req.method === 'POST' && req.headers['content-type'] === 'application/x-www-form-urlencoded') {
        const token = new URLSearchParams(body).get('logout_token') ?? '';
        received.push({ token, query: new URL(req.url!, 'http://x').search, status, at: Date.now() / 1000 });
      }
      if (endpoint.delayMs) await sleep(endpoint.delayMs);
      res.writeHead(status).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  endpoint.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/backchannel-logout`;
  return {
    endpoint,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Waits until `done` holds (the outbox posts in the background), failing after `ms`. */
async function waitFor(done: () => boolean | Promise<boolean>, ms = 15_000): Promise<void> {
  const until = Date.now() + ms;
  while (!(await done())) {
    if (Date.now() > until) throw new Error('timed out waiting for a back-channel logout delivery');
    await sleep(50);
  }
}

/** Short waits between attempts, so retries happen within a test. */
const TEST_TIMING = { pollMs: 200, backoffMs: [300] };

/**
 * OpenID Connect Back-Channel Logout 1.0: when a person signs out at Sesame (RP-initiated
 * logout), every app of that session that registered a `backchannel_logout_uri` gets a
 * logout token it verifies with the JWKS alone.
 */
describe('back-channel logout', () => {
  let sesame: TestApp;
  let logout: Awaited<ReturnType<typeof startLogoutEndpoint>>;
  let key: string;
  const endpoints: Awaited<ReturnType<typeof startLogoutEndpoint>>[] = [];

  beforeAll(async () => {
    sesame = await startTestApp({}, { backchannelTiming: TEST_TIMING });
    logout = await startLogoutEndpoint();
    endpoints.push(logout);
    key = (await createApiKey(sesame.db, 'tests', 'test')).key;
  });

  afterAll(async () => {
    await sesame.stop();
    for (const endpoint of endpoints) await endpoint.close();
  });

  /** An endpoint of its own for one test, so that what it receives is that test's. */
  async function newEndpoint() {
    const started = await startLogoutEndpoint();
    endpoints.push(started);
    return started.endpoint;
  }

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
  function signOut(person: Person, rp: TestRp, idToken: string) {
    return signOutFromApp(person, rp, idToken, LOGGED_OUT_URI);
  }

  /**
   * What the app does with a logout token (Back-Channel Logout 1.0 §2.6): verifies its
   * signature with the JWKS, issuer, audience and `typ`, the logout event, and that it has
   * a `sub` or `sid` and no `nonce`.
   */
  async function verifyLogoutToken(token: string, rp: TestRp) {
    // Some tests verify dozens of tokens at once, each fetching the JWKS: jose's 5 s default
    // timed out on a machine at load 15 (CI beside other work).
    const jwks = createRemoteJWKSet(new URL('/jwks', sesame.baseUrl), { timeoutDuration: 30_000 });
    const { payload, protectedHeader } = await jwtVerify(token, jwks, {
      issuer: sesame.baseUrl,
      audience: rp.config.clientMetadata().client_id,
      typ: 'logout+jwt',
    });
    expect(protectedHeader.kid).toEqual(expect.any(String));
    expect(payload.events).toEqual({ 'http://schemas.openid.net/event/backchannel-logout': {} });
    expect(payload.nonce).toBeUndefined();
    expect(payload.jti).toEqual(expect.any(String));
    expect(payload.iat).toEqual(expect.any(Number));
    expect(payload.sub ?? payload.sid).toEqual(expect.any(String));
    return payload;
  }

  const clientIdOf = (rp: TestRp) => rp.config.clientMetadata().client_id;

  type Delivery = Awaited<ReturnType<typeof backchannelDeliveriesQueries.listForClient>>[number];

  /** The client's first outbox row once `settled` holds for it (by default: delivery recorded). */
  async function settledRow(
    clientId: string,
    settled: (row: Delivery) => boolean = (row) => row.delivered_at != null,
  ): Promise<Delivery> {
    let first: Delivery | undefined;
    await waitFor(async () => {
      [first] = await backchannelDeliveriesQueries.listForClient(sesame.db, clientId);
      return first !== undefined && settled(first);
    });
    return first!;
  }

  it('advertises back-channel logout with sessions in discovery', async () => {
    const discovery = (await (
      await fetch(`${sesame.baseUrl}/.well-known/openid-configuration`)
    ).json()) as Record<string, unknown>;
    expect(discovery.backchannel_logout_supported).toBe(true);
    expect(discovery.backchannel_logout_session_supported).toBe(true);
  });

  it('posts a logout token to every app of the session on RP-initiated logout; the app verifies it with the JWKS', async () => {
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

    await waitFor(() => logout.endpoint.received.length === 2);
    const byQuery = new Map(logout.endpoint.received.map((r) => [r.query, r.token]));
    for (const [rp, token, idTokenClaims] of [
      [notes, byQuery.get('')!, notesTokens.claims()!],
      [wiki, byQuery.get('?app=wiki')!, wikiTokens.claims()!],
    ] as const) {
      const payload = await verifyLogoutToken(token, rp);
      expect(payload).toMatchObject({ sub: idTokenClaims.sub, sid: idTokenClaims.sid });
    }
    // Each delivery is a row of the outbox, done once delivered. The endpoint has answered before
    // the sender records it, so the row is waited for.
    const row = await settledRow(clientIdOf(notes));
    expect(row).toMatchObject({ attempts: 1, next_attempt_at: null, last_error: null });
    expect(row!.delivered_at).toBeInstanceOf(Date);
  }, 90_000);

  it('signs the person out at once and retries an endpoint that fails twice until it answers 200', async () => {
    const endpoint = await newEndpoint();
    endpoint.failures = 2;
    const app = await registerApp('Flaky', ['--backchannel-logout-uri', endpoint.url]);
    const person = new Person(sesame.baseUrl);
    const tokens = await signIn(person, app, true);
    const done = await signOut(person, app, tokens.id_token!);
    expect(done.location()).toMatch(new RegExp(`^${LOGGED_OUT_URI}`));
    // Signed out: the next authorization asks for a passkey again.
    const again = await beginLogin(app, 'openid');
    expect((await person.open(again.url)).text).toContain('Sign in with a passkey');

    await waitFor(() => endpoint.received.length === 3);
    expect(endpoint.received.map((r) => r.status)).toEqual([500, 500, 200]);
    // Every attempt posts a token signed for it: the first attempt's expires two minutes after
    // it was signed, and an app back after that refused it on every retry. Each is the same
    // logout, of the same session, with a jti of its own.
    const payloads = [];
    for (const received of endpoint.received) {
      const payload = await verifyLogoutToken(received.token, app);
      expect(payload.iat).toBeGreaterThanOrEqual(Math.floor(received.at) - 1);
      expect(payload.exp).toBeGreaterThan(received.at);
      payloads.push(payload);
    }
    expect(new Set(payloads.map((payload) => payload.jti)).size).toBe(3);
    expect(new Set(payloads.map((payload) => payload.sid))).toEqual(new Set([tokens.claims()!.sid]));
    const row = await settledRow(clientIdOf(app));
    expect(row).toMatchObject({ attempts: 3, next_attempt_at: null, last_error: null });
    await sleep(500);
    expect(endpoint.received).toHaveLength(3);
  }, 60_000);

  it('tells the apps of every session when the person signs out everywhere', async () => {
    const endpoint = await newEndpoint();
    const app = await registerApp('Everywhere', ['--backchannel-logout-uri', endpoint.url]);
    const person = new Person(sesame.baseUrl);
    const first = await signIn(person, app, true);
    const elsewhere = person.inNewBrowser();
    const pending = await beginLogin(app, 'openid email');
    const next = await elsewhere.signIn(await elsewhere.open(pending.url));
    const second = await finishLogin(app, pending, await elsewhere.continueToApp(next, REDIRECT_URI));
    expect(second.claims()!.sid).not.toBe(first.claims()!.sid);

    const csrf = (await person.browser.request('/account')).csrf();
    const done = await person.browser.request('/account/sign-out-everywhere', { form: { _csrf: csrf } });
    expect(done.status).toBe(303);

    await waitFor(() => endpoint.received.length === 2);
    const payloads = await Promise.all(endpoint.received.map((r) => verifyLogoutToken(r.token, app)));
    expect(payloads.map((p) => p.sid).sort()).toEqual([first.claims()!.sid, second.claims()!.sid].sort());
    for (const payload of payloads) expect(payload.sub).toBe(first.claims()!.sub);
  }, 90_000);

  it('tells an app the person disconnects on the account page, whose next sign-in then has a new sid', async () => {
    const endpoint = await newEndpoint();
    const app = await registerApp('Disconnect', ['--backchannel-logout-uri', endpoint.url]);
    const other = await newEndpoint();
    const bystander = await registerApp('Bystander', ['--backchannel-logout-uri', other.url]);
    const person = new Person(sesame.baseUrl);
    const first = await signIn(person, app, true);
    await signIn(person, bystander, false);

    const revoked = await person.browser.postJson(
      `/account/apps/${clientIdOf(app)}/revoke`,
      (await person.browser.request('/account')).csrf(),
      {},
    );
    expect(revoked.status).toBe(200);
    await waitFor(() => endpoint.received.length === 1);
    const payload = await verifyLogoutToken(endpoint.received[0]!.token, app);
    expect(payload).toMatchObject({ sub: first.claims()!.sub, sid: first.claims()!.sid });

    const again = await signIn(person, app, false);
    expect(again.claims()!.sid).not.toBe(first.claims()!.sid);
    await sleep(500);
    expect(endpoint.received).toHaveLength(1);
    expect(other.received).toHaveLength(0);
  }, 60_000);

  /** An app with its own endpoint that signs people in in browsers and on devices (RFC 8628). */
  async function registerBothWays(name: string) {
    const endpoint = await newEndpoint();
    const app = await registerApp(name, [
      '--backchannel-logout-uri',
      endpoint.url,
      '--grant-type',
      'authorization_code',
      '--grant-type',
      'refresh_token',
      '--grant-type',
      DEVICE_CODE_GRANT,
    ]);
    return { endpoint, app };
  }

  /** Whom the logout tokens queued for an app name, in order. */
  async function queuedFor(rp: TestRp) {
    const rows = await backchannelDeliveriesQueries.listForClient(sesame.db, clientIdOf(rp));
    return rows.map((row) => ({ sub: row.sub, sid: row.sid }));
  }

  it("names no session in the device's tokens of an app that also signs in in browsers: its browser sign-out ends the browser's sign-in only", async () => {
    const { endpoint, app } = await registerBothWays('Both ways');
    const person = new Person(sesame.baseUrl);
    const browserTokens = await signIn(person, app, true);
    const deviceTokens = await signInDevice(person, app.config);
    // The browser's sign-in names its session; the device's, approved in that browser, none.
    expect(browserTokens.claims()!.sid).toEqual(expect.any(String));
    expect(deviceTokens.claims()!.sid).toBeUndefined();
    // The browser signs out: the app is told of that session, and the device goes on.
    await signOut(person, app, browserTokens.id_token!);
    await waitFor(() => endpoint.received.length === 1);
    const payload = await verifyLogoutToken(endpoint.received[0]!.token, {
      config: app.config,
      redirectUri: '',
    });
    expect(payload.sid).toBe(browserTokens.claims()!.sid);
    const sub = deviceTokens.claims()!.sub;
    expect(await oidc.fetchUserInfo(app.config, deviceTokens.access_token, sub)).toMatchObject({ sub });
  }, 60_000);

  it("tells an app of a device's revoke by sub alone when it was the app's last grant, never by a browser session's sid", async () => {
    const { app } = await registerBothWays('Both ways, devices revoked');
    const person = new Person(sesame.baseUrl);
    const pending = await beginLogin(app, 'openid email offline_access', { prompt: 'consent' });
    const next = await person.signUp(
      await person.open(pending.url),
      `b${randomBytes(4).toString('hex')}@example.com`,
    );
    const browser = await finishLogin(app, pending, await person.continueToApp(next, REDIRECT_URI));
    const sub = browser.claims()!.sub;
    await signInDevice(person, app.config);
    await signInDevice(person, app.config);
    const deviceRevokes = (text: string) =>
      [...text.matchAll(/action="(\/account\/apps\/[^/"]+\/devices\/[^/"]+\/revoke)"/g)].map((m) => m[1]!);
    const revokeFirstDevice = async () => {
      const page = await person.browser.request('/account');
      const [action] = deviceRevokes(page.text);
      expect((await person.browser.request(action!, { form: { _csrf: page.csrf() } })).status).toBe(303);
    };

    // One device of two: the browser's sign-in and the other device stay, so the app is not told.
    await revokeFirstDevice();
    expect(await queuedFor(app)).toEqual([]);
    // The app drops its browser refresh token (RFC 7009): that grant goes, while the browser
    // session still names the app, with its sid. The last device's revoke ends the person's
    // last sign-in at the app: it is told by sub alone, not of that browser session.
    await oidc.tokenRevocation(app.config, browser.refresh_token!);
    await revokeFirstDevice();
    expect(await queuedFor(app)).toEqual([{ sub, sid: null }]);
  }, 60_000);

  it.each<[string, (person: Person, sub: string) => Promise<number>]>([
    [
      'the person signs out everywhere',
      async (person) => {
        const csrf = (await person.browser.request('/account')).csrf();
        return (await person.browser.request('/account/sign-out-everywhere', { form: { _csrf: csrf } }))
          .status;
      },
    ],
    [
      'an admin disables the person',
      async (_person, sub) =>
        (
          await fetch(`${sesame.baseUrl}/api/admin/users/${sub}/disable`, {
            method: 'POST',
            headers: { authorization: `Bearer ${key}` },
          })
        ).status,
    ],
  ])(
    'tells an app of its device too when %s, by sub alone beside the sid',
    async (what, endEverything) => {
      const { app } = await registerBothWays(`Both ways, ${what}`);
      const person = new Person(sesame.baseUrl);
      const browser = await signIn(person, app, true);
      await signInDevice(person, app.config);
      const { sub } = browser.claims()!;
      expect([200, 303]).toContain(await endEverything(person, sub));
      const sid = String(browser.claims()!.sid);
      const bySid = (a: { sid: string | null }, b: { sid: string | null }) =>
        String(a.sid).localeCompare(String(b.sid));
      expect((await queuedFor(app)).sort(bySid)).toEqual(
        [
          { sub, sid },
          { sub, sid: null },
        ].sort(bySid),
      );
    },
    60_000,
  );

  it('does not tell a device app that the browser which approved it signed out: the device stays signed in, and is told by sub when its sign-in ends', async () => {
    const webEndpoint = await newEndpoint();
    const tvEndpoint = await newEndpoint();
    const web = await registerApp('Web', ['--backchannel-logout-uri', webEndpoint.url]);
    const { client } = await createClient(
      sesame.db,
      { name: 'TV', public: true, grant_types: [DEVICE_CODE_GRANT], backchannel_logout_uri: tvEndpoint.url },
      'test',
    );
    const tv = await oidc.discovery(new URL(sesame.baseUrl), client.client_id, undefined, oidc.None(), {
      execute: [oidc.allowInsecureRequests, oidc.enableNonRepudiationChecks],
    });
    const person = new Person(sesame.baseUrl);
    const webTokens = await signIn(person, web, true);
    const tvTokens = await signInDevice(person, tv);
    const sub = tvTokens.claims()!.sub;
    expect(sub).toBe(webTokens.claims()!.sub);
    // The device's sign-in belongs to no browser session, so its ID token names none.
    expect(tvTokens.claims()!.sid).toBeUndefined();

    // The sign-out queues its logout tokens before it answers.
    await signOut(person, web, webTokens.id_token!);
    expect(await backchannelDeliveriesQueries.listForClient(sesame.db, clientIdOf(web))).toHaveLength(1);
    expect(await backchannelDeliveriesQueries.listForClient(sesame.db, client.client_id)).toEqual([]);
    expect(await oidc.fetchUserInfo(tv, tvTokens.access_token, sub)).toMatchObject({ sub });

    // Disabled by an admin, the person's tokens end everywhere: the device is told, by sub alone.
    const disabled = await fetch(`${sesame.baseUrl}/api/admin/users/${sub}/disable`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}` },
    });
    expect(disabled.status).toBe(200);
    await waitFor(() => tvEndpoint.received.length === 1);
    const payload = await verifyLogoutToken(tvEndpoint.received[0]!.token, {
      config: tv,
      redirectUri: '',
    });
    expect(payload.sub).toBe(sub);
    expect(payload.sid).toBeUndefined();
  }, 60_000);

  it('tells the apps when an admin disables the person', async () => {
    const endpoint = await newEndpoint();
    const app = await registerApp('Disable', ['--backchannel-logout-uri', endpoint.url]);
    const person = new Person(sesame.baseUrl);
    const tokens = await signIn(person, app, true);
    const disabled = await fetch(`${sesame.baseUrl}/api/admin/users/${tokens.claims()!.sub}/disable`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}` },
    });
    expect(disabled.status).toBe(200);

    await waitFor(() => endpoint.received.length === 1);
    const payload = await verifyLogoutToken(endpoint.received[0]!.token, app);
    expect(payload).toMatchObject({ sub: tokens.claims()!.sub, sid: tokens.claims()!.sid });
  }, 60_000);

  it('tells an app by sub alone when an admin deletes a person whose sessions already ended', async () => {
    const endpoint = await newEndpoint();
    const app = await registerApp('Delete', ['--backchannel-logout-uri', endpoint.url]);
    const person = new Person(sesame.baseUrl);
    const tokens = await signIn(person, app, true);
    const csrf = (await person.browser.request('/account')).csrf();
    await person.browser.request('/account/sign-out-everywhere', { form: { _csrf: csrf } });
    await waitFor(() => endpoint.received.length === 1);

    // Deleted with the CLI: a process with no signing keys queues it, the server signs and posts it.
    const deleted = await runCliOn(sesame, ['users', 'delete', tokens.claims()!.sub, '--yes', '--json']);
    expect(deleted.code).toBe(0);
    await waitFor(() => endpoint.received.length === 2);
    const payload = await verifyLogoutToken(endpoint.received[1]!.token, app);
    expect(payload.sub).toBe(tokens.claims()!.sub);
    expect(payload.sid).toBeUndefined();
  }, 60_000);

  it('registers no app as requiring a sid in its logout tokens (§2.2), as those above name the person by sub alone', async () => {
    const browserOnly = await registerApp('Browser only', [
      '--backchannel-logout-uri',
      (await newEndpoint()).url,
    ]);
    const { app: bothWays } = await registerBothWays('Both ways, as registered');
    for (const rp of [browserOnly, bothWays]) {
      const client = await sesame.app.provider.Client.find(clientIdOf(rp));
      expect(client?.metadata()).toMatchObject({
        backchannel_logout_uri: expect.any(String),
        backchannel_logout_session_required: false,
      });
    }
  });

  it('delivers after a restart what was still pending', async () => {
    const endpoint = await newEndpoint();
    endpoint.status = 503;
    const app = await registerApp('Restart', ['--backchannel-logout-uri', endpoint.url]);
    const person = new Person(sesame.baseUrl);
    const tokens = await signIn(person, app, true);
    await signOut(person, app, tokens.id_token!);
    await waitFor(() => endpoint.received.length >= 1);

    await sesame.whileStopped(async () => {
      endpoint.status = undefined;
    });
    await waitFor(() => endpoint.received.at(-1)?.status === 200);
    const delivered = endpoint.received.at(-1)!;
    expect((await verifyLogoutToken(delivered.token, app)).sid).toBe(tokens.claims()!.sid);
  }, 90_000);

  it('gives a delivery up after a day of failures, keeps its error, and audits it', async () => {
    const endpoint = await newEndpoint();
    endpoint.status = 500;
    const app = await registerApp('Gone', ['--backchannel-logout-uri', endpoint.url]);
    const clientId = clientIdOf(app);
    await sesame.db
      .insertInto('backchannel_deliveries')
      .values({
        client_id: clientId,
        uri: endpoint.url,
        sub: 'someone',
        sid: 'a-sid',
        created_at: new Date(Date.now() - 86_400_000),
      })
      .execute();
    wakeBackchannelOutboxes();
    const row = await settledRow(clientId, (r) => r.attempts > 0 && r.next_attempt_at === null);
    expect(row).toMatchObject({ attempts: 1, delivered_at: null });
    expect(row!.last_error).toMatch(/500/);
    const events = await recentAuditEvents(sesame.db, 20);
    expect(events.find((e) => e.action === 'backchannel.give_up' && e.target === clientId)).toMatchObject({
      actor: 'system',
      details: { uri: endpoint.url, attempts: 1 },
    });
    const metrics = await metricsRegistry.getSingleMetricAsString(
      'sesame_backchannel_logout_deliveries_total',
    );
    expect(metrics).toMatch(/sesame_backchannel_logout_deliveries_total\{result="given_up"\} [1-9]/);
  }, 60_000);

  it('keeps why a delivery could not connect, not only "fetch failed"', async () => {
    const endpoint = await newEndpoint();
    const app = await registerApp('Closed', ['--backchannel-logout-uri', endpoint.url]);
    const clientId = clientIdOf(app);
    // A port nothing listens on: bound and closed again.
    const closed = http.createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    await sesame.db
      .insertInto('backchannel_deliveries')
      .values({ client_id: clientId, uri: `http://127.0.0.1:${port}/bc`, sub: 'someone', sid: 'closed-sid' })
      .execute();
    wakeBackchannelOutboxes();
    const row = await settledRow(clientId, (r) => r.last_error !== null);
    expect(row!.last_error).toBe(`fetch failed: connect ECONNREFUSED 127.0.0.1:${port}`);
  }, 60_000);

  it('keeps the logout token out of the error it records when the failure quotes it', async () => {
    const endpoint = await newEndpoint();
    const app = await registerApp('Quoting', ['--backchannel-logout-uri', endpoint.url]);
    const clientId = clientIdOf(app);
    // A failure whose words quote what was posted, as a proxy's or library's may: the app
    // side is a stand-in, since fetch's own messages do not.
    const realFetch = globalThis.fetch;
    const posted: string[] = [];
    globalThis.fetch = async (input, init) => {
      if (String(input) !== endpoint.url) return realFetch(input, init);
      const token = new URLSearchParams(String(init?.body)).get('logout_token')!;
      posted.push(token);
      throw new TypeError('fetch failed', { cause: new Error(`proxy refused body logout_token=${token}`) });
    };
    try {
      await sesame.db
        .insertInto('backchannel_deliveries')
        .values({ client_id: clientId, uri: endpoint.url, sub: 'someone', sid: 'quoted-sid' })
        .execute();
      wakeBackchannelOutboxes();
      const row = await settledRow(clientId, (r) => r.last_error !== null);
      expect(posted[0]).toMatch(/^eyJ/);
      expect(row!.last_error).toBe('fetch failed: proxy refused body logout_token=[redacted]');
    } finally {
      globalThis.fetch = realFetch;
    }
  }, 60_000);

  it('two workers on one database post each delivery once', async () => {
    const endpoint = await newEndpoint();
    endpoint.delayMs = 30;
    const app = await registerApp('Crowd', ['--backchannel-logout-uri', endpoint.url]);
    const clientId = clientIdOf(app);
    // A second instance: its own pool on Postgres; the embedded database has one connection.
    const second = sesame.config.databaseUrl ? await openDatabase(sesame.config, { poolSize: 5 }) : undefined;
    const quiet = createLogger('silent');
    const workers = [
      new BackchannelOutbox(second?.db ?? sesame.db, () => sesame.app.provider, quiet, TEST_TIMING),
      new BackchannelOutbox(sesame.db, () => sesame.app.provider, quiet, TEST_TIMING),
    ];
    try {
      for (const worker of workers) worker.start();
      const sids = Array.from({ length: 60 }, (_, n) => `sid-${n}`);
      await backchannelDeliveriesQueries.enqueue(
        sesame.db,
        sids.map((sid) => ({ clientId, uri: endpoint.url, sub: 'crowd', sid })),
      );
      wakeBackchannelOutboxes();
      await waitFor(() => endpoint.received.length >= sids.length, 30_000);
      await sleep(1_000);
      const received = await Promise.all(endpoint.received.map((r) => verifyLogoutToken(r.token, app)));
      expect(received.map((p) => p.sid).sort()).toEqual([...sids].sort());
      const rows = await backchannelDeliveriesQueries.listForClient(sesame.db, clientId);
      expect(rows.every((r) => r.attempts === 1 && r.delivered_at !== null)).toBe(true);
    } finally {
      for (const worker of workers) await worker.stop();
      await second?.close();
    }
  }, 60_000);

  it('sweeps deliveries done for a month and keeps those still to send', async () => {
    const clientId = `sweep-${randomBytes(4).toString('hex')}`;
    const monthAgo = new Date(Date.now() - 31 * 86_400_000);
    const row = { client_id: clientId, uri: 'https://sweep.example/bc', sub: 's', created_at: monthAgo };
    await sesame.db
      .insertInto('backchannel_deliveries')
      .values([
        { ...row, sid: 'delivered', next_attempt_at: null, delivered_at: monthAgo },
        { ...row, sid: 'given-up', next_attempt_at: null, last_error: 'down' },
        { ...row, sid: 'pending', next_attempt_at: new Date(Date.now() + 3_600_000) },
        { ...row, sid: 'recent', next_attempt_at: null, created_at: new Date() },
      ])
      .execute();
    expect(await backchannelDeliveriesQueries.deleteDoneBefore(sesame.db, 30)).toBe(2);
    const left = await backchannelDeliveriesQueries.listForClient(sesame.db, clientId);
    expect(left.map((r) => r.sid).sort()).toEqual(['pending', 'recent']);
  });

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

    for (const uri of [
      'http://mail.example/logout',
      'https://mail.example/logout#x',
      'logout',
      // fetch refuses to connect to it (a "bad port"), so no delivery could ever leave.
      'http://127.0.0.1:6000/logout',
    ]) {
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
