import { randomBytes } from 'node:crypto';
import * as oidc from 'openid-client';
import { createClient } from '../../src/oidc/clients.js';
import { storedId } from '../../src/oidc/storedIds.js';
import { beginLogin, discoverRp, finishLogin, Person, type TestRp } from '../support/oidcFlow.js';
import { ageModel, DAY } from '../support/signInAge.js';
import { startTestApp, type TestApp } from '../support/testApp.js';

const REDIRECT_URI = 'http://127.0.0.1:8915/callback';
/** A browser app's: http on localhost makes a web client, where a loopback IP makes a native one. */
const WEB_REDIRECT_URI = 'http://localhost:8915/callback';

/**
 * RFC 9700 §4.14.2: a public client's refresh token is not bound to a sender, so it rotates
 * on every use, and presenting one that was already rotated — the mark of a stolen copy —
 * revokes the whole grant: the attacker's and the app's tokens alike.
 */
describe('refresh token rotation', () => {
  let sesame: TestApp;
  let spa: TestRp;
  let browserApp: TestRp;
  let server: TestRp;

  beforeAll(async () => {
    sesame = await startTestApp();
    const pub = await createClient(
      sesame.db,
      { name: 'SPA', redirect_uris: [REDIRECT_URI], public: true },
      'test',
    );
    spa = await discoverRp(sesame.baseUrl, { client_id: pub.client.client_id }, REDIRECT_URI);
    const web = await createClient(
      sesame.db,
      { name: 'Browser app', redirect_uris: [WEB_REDIRECT_URI], public: true },
      'test',
    );
    expect(web.client.application_type).toBe('web');
    expect(pub.client.application_type).toBe('native');
    browserApp = await discoverRp(sesame.baseUrl, { client_id: web.client.client_id }, WEB_REDIRECT_URI);
    const conf = await createClient(sesame.db, { name: 'Server app', redirect_uris: [REDIRECT_URI] }, 'test');
    server = await discoverRp(
      sesame.baseUrl,
      { client_id: conf.client.client_id, client_secret: conf.client_secret! },
      REDIRECT_URI,
    );
  });

  afterAll(() => sesame.stop());

  /** A new person signs in to the app with offline_access; returns the tokens the app got. */
  async function signIn(rp: TestRp) {
    const person = new Person(sesame.baseUrl);
    const pending = await beginLogin(rp, 'openid offline_access', { prompt: 'consent' });
    const next = await person.signUp(
      await person.open(pending.url),
      `rt${randomBytes(4).toString('hex')}@example.com`,
    );
    return finishLogin(rp, pending, await person.continueToApp(next, rp.redirectUri));
  }

  /** Sends a refresh as the public app does, without openid-client, to see every answer as it is. */
  async function refresh(refreshToken: string, app = spa) {
    const response = await fetch(new URL('/token', sesame.baseUrl), {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'refresh_token',
        refresh_token: refreshToken,
        client_id: app.config.clientMetadata().client_id,
      }),
    });
    return { status: response.status, json: (await response.json()) as Record<string, string> };
  }

  /** Introspects `token` as `app` authenticates (a public app sends its client_id alone). */
  async function introspect(token: string, app = server): Promise<{ active: boolean; exp?: number }> {
    return oidc.tokenIntrospection(app.config, token);
  }

  const isActive = async (token: string, app = spa) => (await introspect(token, app)).active;

  /** Moves a refresh token's issue and expiry `days` into the past, as if it had been issued that long ago. */
  const ageRefreshToken = (token: string, days: number) =>
    ageModel(sesame, 'RefreshToken', storedId('RefreshToken', token), days);

  it('gives a public client a new refresh token on every use (openid-client refreshTokenGrant)', async () => {
    const first = await signIn(spa);
    const second = await oidc.refreshTokenGrant(spa.config, first.refresh_token!);
    const third = await oidc.refreshTokenGrant(spa.config, second.refresh_token!);
    const issued = [first.refresh_token, second.refresh_token, third.refresh_token];
    expect(new Set(issued).size).toBe(3);
    expect(await isActive(first.refresh_token!)).toBe(false);
    expect(await isActive(second.refresh_token!)).toBe(false);
    expect(await isActive(third.refresh_token!)).toBe(true);
    expect(await isActive(third.access_token)).toBe(true);
  }, 60_000);

  it('revokes the whole grant when a rotated refresh token is presented again', async () => {
    const first = await signIn(spa);
    const rotated = await refresh(first.refresh_token!);
    expect(rotated.status).toBe(200);
    const { access_token: liveAccess, refresh_token: liveRefresh } = rotated.json;
    expect(await isActive(liveRefresh!)).toBe(true);

    // Someone replays the first refresh token (a stolen copy).
    const replay = await refresh(first.refresh_token!);
    expect(replay.status).toBe(400);
    expect(replay.json.error).toBe('invalid_grant');

    // Everything issued under the grant is gone, the app's own current tokens included.
    expect(await isActive(liveRefresh!)).toBe(false);
    expect(await isActive(liveAccess!)).toBe(false);
    expect(await isActive(first.access_token)).toBe(false);
    const afterwards = await refresh(liveRefresh!);
    expect(afterwards.status).toBe(400);
    expect(afterwards.json.error).toBe('invalid_grant');
  }, 60_000);

  it('lets exactly one of two parallel uses of a refresh token win, and revokes the grant', async () => {
    for (let round = 0; round < 4; round++) {
      const first = await signIn(spa);
      const answers = await Promise.all([refresh(first.refresh_token!), refresh(first.refresh_token!)]);
      const winners = answers.filter((answer) => answer.status === 200);
      expect(winners).toHaveLength(1);
      const loser = answers.find((answer) => answer.status !== 200)!;
      expect([loser.status, loser.json.error]).toEqual([400, 'invalid_grant']);
      expect(await isActive(winners[0]!.json.refresh_token!)).toBe(false);
      expect(await isActive(winners[0]!.json.access_token!)).toBe(false);
    }
  }, 120_000);

  it('keeps a confidential client’s refresh token early in its life: it authenticates every refresh', async () => {
    const first = await signIn(server);
    const again = await oidc.refreshTokenGrant(server.config, first.refresh_token!);
    expect(again.refresh_token).toBe(first.refresh_token);
    const once_more = await oidc.refreshTokenGrant(server.config, first.refresh_token!);
    expect(await isActive(once_more.access_token, server)).toBe(true);
  }, 60_000);

  it('refuses a refresh token of another client, and an unknown one, without touching the grant', async () => {
    const first = await signIn(spa);
    const stranger = await oidc
      .refreshTokenGrant(server.config, first.refresh_token!)
      .catch((error: oidc.ResponseBodyError) => error);
    expect(stranger).toMatchObject({ error: 'invalid_grant' });
    expect((await refresh('not-a-refresh-token')).json.error).toBe('invalid_grant');
    expect(await isActive(first.refresh_token!)).toBe(true);
    expect((await refresh(first.refresh_token!)).status).toBe(200);
  }, 60_000);

  it('gives a browser app’s rotated refresh token only what was left of the one it replaces', async () => {
    const first = await signIn(browserApp);
    const issued = (await introspect(first.refresh_token!, browserApp)).exp!;
    const now = Math.floor(Date.now() / 1000);
    expect(issued).toBeGreaterThanOrEqual(now + 30 * DAY - 5);

    // Refreshed every day for 29 days: the token in hand was issued 29 days ago.
    await ageRefreshToken(first.refresh_token!, 29);
    const rotated = await refresh(first.refresh_token!, browserApp);
    expect(rotated.status).toBe(200);
    const second = rotated.json.refresh_token!;
    expect(second).not.toBe(first.refresh_token);
    // It expires when the first one would have, a day from now, not 30 days from now (give or
    // take the second that may pass between reading the old token's rest and issuing the new).
    const expiresWithFirst = async (token: string) =>
      Math.abs((await introspect(token, browserApp)).exp! - (issued - 29 * DAY)) <= 1;
    expect(await expiresWithFirst(second)).toBe(true);

    const again = await refresh(second, browserApp);
    expect(again.status).toBe(200);
    expect(await expiresWithFirst(again.json.refresh_token!)).toBe(true);
  }, 60_000);

  it('gives a native app’s rotated refresh token a full 30 days, as oidc-provider does', async () => {
    const first = await signIn(spa);
    await ageRefreshToken(first.refresh_token!, 29);
    const rotated = await refresh(first.refresh_token!);
    expect(rotated.status).toBe(200);
    const now = Math.floor(Date.now() / 1000);
    expect((await introspect(rotated.json.refresh_token!, spa)).exp).toBeGreaterThanOrEqual(
      now + 30 * DAY - 5,
    );
  }, 60_000);

  it('describes a refresh token only to the app it was issued to: to any other client it is inactive', async () => {
    const other = await createClient(
      sesame.db,
      // An API that checks the tokens apps send it: marked so, it may introspect other apps' access tokens.
      { name: 'Resource server', grant_types: ['client_credentials'], introspect_tokens: true },
      'test',
    );
    const resourceServer = await discoverRp(
      sesame.baseUrl,
      { client_id: other.client.client_id, client_secret: other.client_secret! },
      REDIRECT_URI,
    );
    for (const app of [spa, server]) {
      const tokens = await signIn(app);
      expect(await introspect(tokens.refresh_token!, resourceServer)).toEqual({ active: false });
      // Its access token is still described to a resource server, and the refresh token to its app.
      expect(await introspect(tokens.access_token, resourceServer)).toMatchObject({ active: true });
      expect(await introspect(tokens.refresh_token!, app)).toMatchObject({
        active: true,
        sub: tokens.claims()!.sub,
        client_id: app.config.clientMetadata().client_id,
      });
    }
    // An app's refresh token, to a confidential app that signs people in too.
    const first = await signIn(spa);
    expect(await introspect(first.refresh_token!, server)).toEqual({ active: false });
  }, 60_000);
});
