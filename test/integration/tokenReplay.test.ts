import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import { cookieNames } from '../../src/cookieNames.js';
import { createClient } from '../../src/oidc/clients.js';
import { storedId } from '../../src/oidc/storedIds.js';
import { leftOfGrant, useCodeElsewhere } from '../support/codesUsedElsewhere.js';
import { beginLogin, discoverRp, type PendingLogin, Person, type TestRp } from '../support/oidcFlow.js';
import { startTestApp, type TestApp } from '../support/testApp.js';

const REDIRECT_URI = 'http://127.0.0.1:8912/callback';

const basic = (id: string, secret: string) =>
  `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;

/**
 * Codes and rotated refresh tokens are single-use even under concurrency (RFC 6749 §4.1.2,
 * RFC 9700 §4.2.4, §4.14.2): of concurrent redemptions exactly one succeeds, and the reuse
 * revokes what the winner got. And nothing stored is a bearer: a dump of oidc_models
 * holds no code, access token, refresh token or session id.
 */
describe('single-use codes and refresh tokens, and tokens stored only as hashes', () => {
  let sesame: TestApp;
  let confidential: { client_id: string; client_secret: string };
  let rp: TestRp;
  let spa: TestRp;

  beforeAll(async () => {
    sesame = await startTestApp();
    const created = await createClient(sesame.db, { name: 'Notes', redirect_uris: [REDIRECT_URI] }, 'test');
    confidential = { client_id: created.client.client_id, client_secret: created.client_secret! };
    rp = await discoverRp(sesame.baseUrl, confidential, REDIRECT_URI);
    const pub = await createClient(
      sesame.db,
      { name: 'SPA', redirect_uris: [REDIRECT_URI], public: true },
      'test',
    );
    spa = await discoverRp(sesame.baseUrl, { client_id: pub.client.client_id }, REDIRECT_URI);
  });

  afterAll(() => sesame.stop());

  /** Signs a new person up at the app and returns the code the app receives, unredeemed. */
  async function codeFor(app: TestRp, scope = 'openid email') {
    const person = new Person(sesame.baseUrl);
    const pending = await beginLogin(app, scope, { prompt: 'consent' });
    const next = await person.signUp(
      await person.open(pending.url),
      `t${randomBytes(4).toString('hex')}@example.com`,
    );
    const callback = new URL(await person.continueToApp(next, REDIRECT_URI));
    return { person, pending, code: callback.searchParams.get('code')! };
  }

  async function token(body: Record<string, string>, client?: { client_id: string; client_secret: string }) {
    const response = await fetch(new URL('/token', sesame.baseUrl), {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        ...(client && { authorization: basic(client.client_id, client.client_secret) }),
      },
      body: new URLSearchParams(body),
    });
    return { status: response.status, json: (await response.json()) as Record<string, string> };
  }

  const redeem = (pending: PendingLogin, code: string) =>
    token(
      { grant_type: 'authorization_code', code, redirect_uri: REDIRECT_URI, code_verifier: pending.verifier },
      confidential,
    );

  async function isActive(value: string): Promise<boolean> {
    const response = await fetch(new URL('/token/introspection', sesame.baseUrl), {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        authorization: basic(confidential.client_id, confidential.client_secret),
      },
      body: new URLSearchParams({ token: value }),
    });
    return ((await response.json()) as { active: boolean }).active;
  }

  it('redeems a code once when three requests race with it, and the reuse revokes the tokens it issued', async () => {
    for (let round = 0; round < 5; round++) {
      const { pending, code } = await codeFor(rp, 'openid email offline_access');
      const answers = await Promise.all([1, 2, 3].map(() => redeem(pending, code)));
      const winners = answers.filter((a) => a.status === 200);
      expect(winners).toHaveLength(1);
      for (const loser of answers.filter((a) => a.status !== 200)) {
        expect(loser.status).toBe(400);
        expect(loser.json.error).toBe('invalid_grant');
      }
      const { access_token, refresh_token } = winners[0]!.json;
      expect(await isActive(access_token!)).toBe(false);
      expect(await isActive(refresh_token!)).toBe(false);
    }
  }, 120_000);

  it('still redeems a code used once', async () => {
    const { pending, code } = await codeFor(rp);
    const answer = await redeem(pending, code);
    expect(answer.status).toBe(200);
    expect(await isActive(answer.json.access_token!)).toBe(true);
    expect((await redeem(pending, code)).status).toBe(400);
    expect(await isActive(answer.json.access_token!)).toBe(false);
  });

  it('uses a code up when its redemption fails after the code was consumed (a resource it was not issued for)', async () => {
    const { pending, code } = await codeFor(rp);
    const wrong = await token(
      {
        grant_type: 'authorization_code',
        code,
        redirect_uri: REDIRECT_URI,
        code_verifier: pending.verifier,
        resource: 'https://unknown.example',
      },
      confidential,
    );
    expect({ status: wrong.status, error: wrong.json.error }).toEqual({
      status: 400,
      error: 'invalid_target',
    });
    const again = await redeem(pending, code);
    expect({ status: again.status, error: again.json.error }).toEqual({
      status: 400,
      error: 'invalid_grant',
    });
  });

  it('refuses a code used elsewhere that this instance still holds as unused, and revokes its grant, whatever else the request got wrong', async () => {
    for (const more of [{}, { resource: 'https://unknown.example' }] as Record<string, string>[]) {
      const { pending, code } = await codeFor(rp);
      // Redeemed at another instance: codes are not announced, so this one still holds it unused.
      const grantId = await useCodeElsewhere(sesame.db, storedId('AuthorizationCode', code));
      const answer = await token(
        {
          grant_type: 'authorization_code',
          code,
          redirect_uri: REDIRECT_URI,
          code_verifier: pending.verifier,
          ...more,
        },
        confidential,
      );
      expect(answer.status).toBe(400);
      expect(answer.json.error).toBe('resource' in more ? 'invalid_target' : 'invalid_grant');
      expect(await leftOfGrant(sesame.db, grantId)).toEqual([]);
    }
  });

  it('consumes a code and stores the tokens it gives in one statement: when storing fails, neither happened', async () => {
    const { pending, code } = await codeFor(rp, 'openid email offline_access');
    const codeRow = () =>
      sesame.db
        .selectFrom('oidc_models')
        .select('consumed_at')
        .where('model', '=', 'AuthorizationCode')
        .where('id', '=', storedId('AuthorizationCode', code))
        .executeTakeFirstOrThrow();
    const tokens = async () =>
      Number(
        (
          await sesame.db
            .selectFrom('oidc_models')
            .select(sql<string>`count(*)`.as('n'))
            .where('model', 'in', ['AccessToken', 'RefreshToken'])
            .executeTakeFirstOrThrow()
        ).n,
      );
    const before = await tokens();
    await sql`create function refuse_refresh_tokens() returns trigger language plpgsql as $$
      begin raise exception 'refused for the test'; end $$`.execute(sesame.db);
    await sql`create trigger refuse_refresh_tokens before insert on oidc_models for each row
      when (new.model = 'RefreshToken') execute function refuse_refresh_tokens()`.execute(sesame.db);
    try {
      const failed = await redeem(pending, code);
      expect({ status: failed.status, error: failed.json.error }).toEqual({
        status: 500,
        error: 'server_error',
      });
    } finally {
      await sql`drop trigger refuse_refresh_tokens on oidc_models`.execute(sesame.db);
      await sql`drop function refuse_refresh_tokens()`.execute(sesame.db);
    }
    expect(await tokens()).toBe(before);
    expect((await codeRow()).consumed_at).toBeNull();
    // Nothing happened: the app may redeem the code again, once.
    const answer = await redeem(pending, code);
    expect(answer.status).toBe(200);
    expect(await isActive(answer.json.access_token!)).toBe(true);
    expect(await isActive(answer.json.refresh_token!)).toBe(true);
    expect((await redeem(pending, code)).status).toBe(400);
  });

  it('rotates a public client’s refresh token once when three refreshes race, and the reuse revokes the grant', async () => {
    for (let round = 0; round < 3; round++) {
      const { pending, code } = await codeFor(spa, 'openid offline_access');
      const clientId = spa.config.clientMetadata().client_id;
      const first = await token({
        grant_type: 'authorization_code',
        code,
        redirect_uri: REDIRECT_URI,
        code_verifier: pending.verifier,
        client_id: clientId,
      });
      expect(first.status).toBe(200);
      const refresh = first.json.refresh_token!;
      const answers = await Promise.all(
        [1, 2, 3].map(() =>
          token({ grant_type: 'refresh_token', refresh_token: refresh, client_id: clientId }),
        ),
      );
      const winners = answers.filter((a) => a.status === 200);
      expect(winners).toHaveLength(1);
      expect(answers.filter((a) => a.status === 400 && a.json.error === 'invalid_grant')).toHaveLength(2);
      // The rotated refresh token the winner got belongs to the revoked grant.
      const rotated = await token({
        grant_type: 'refresh_token',
        refresh_token: winners[0]!.json.refresh_token!,
        client_id: clientId,
      });
      expect(rotated.status).toBe(400);
    }
  }, 120_000);

  it('stores no code, access token, refresh token or session id: neither as an id nor in a payload', async () => {
    const { person, pending, code } = await codeFor(rp, 'openid email offline_access');
    const storedCode = await sesame.db
      .selectFrom('oidc_models')
      .select(sql<number>`count(*)`.as('n'))
      .where(sql<boolean>`position(${code} in id || payload::text) > 0`)
      .executeTakeFirstOrThrow();
    expect(Number(storedCode.n)).toBe(0);

    const answer = await redeem(pending, code);
    expect(answer.status).toBe(200);
    const { access_token, refresh_token } = answer.json;
    const sessionCookie = (await person.browser.jar.getCookies(`${sesame.baseUrl}/`)).find(
      (c) => c.key === cookieNames(sesame.config).session,
    );
    const bearers = [code, access_token!, refresh_token!, sessionCookie!.value];
    const rows = await sesame.db.selectFrom('oidc_models').select(['model', 'id', 'payload']).execute();
    expect(rows.length).toBeGreaterThan(0);
    for (const row of rows) {
      const text = row.id + JSON.stringify(row.payload);
      for (const bearer of bearers) expect(text).not.toContain(bearer);
    }
    // And yet everything works from the values the client and the browser hold.
    expect(await isActive(access_token!)).toBe(true);
    expect(await isActive(refresh_token!)).toBe(true);
    expect((await person.browser.request('/account')).status).toBe(200);
  });
});
