import * as jose from 'jose';
import * as oidc from 'openid-client';
import { configFrom } from '../../src/config.js';
import { openDatabase } from '../../src/db/connect.js';
import { createClient } from '../../src/oidc/clients.js';
import { ensureSigningKeys, rotateSigningKeys } from '../../src/oidc/keys.js';
import { beginLogin, discoverRp, finishLogin, Person, type TestRp } from '../support/oidcFlow.js';
import { startTestApp, type TestApp } from '../support/testApp.js';
import { createTestDatabase } from '../support/testDatabase.js';

const REDIRECT_URI = 'http://127.0.0.1:8920/callback';

const basic = (id: string, secret: string) =>
  `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;

describe('stopping and starting again on the same database', () => {
  let sesame: TestApp;
  let client: { client_id: string; client_secret: string };
  let rp: TestRp;
  let person: Person;

  beforeAll(async () => {
    sesame = await startTestApp();
    const created = await createClient(sesame.db, { name: 'Notes', redirect_uris: [REDIRECT_URI] }, 'test');
    client = { client_id: created.client.client_id, client_secret: created.client_secret! };
    rp = await discoverRp(sesame.baseUrl, client, REDIRECT_URI);
    person = new Person(sesame.baseUrl);
  });

  afterAll(() => sesame.stop());

  async function publishedKids(): Promise<string[]> {
    const response = await fetch(`${sesame.baseUrl}/jwks`);
    const { keys } = (await response.json()) as { keys: Array<{ kid: string }> };
    return keys.map((k) => k.kid).sort();
  }

  async function introspect(token: string) {
    const response = await fetch(`${sesame.baseUrl}/token/introspection`, {
      method: 'POST',
      headers: {
        authorization: basic(client.client_id, client.client_secret),
        'content-type': 'application/x-www-form-urlencoded',
      },
      body: new URLSearchParams({ token }),
    });
    expect(response.status).toBe(200);
    return (await response.json()) as Record<string, unknown>;
  }

  /** A login by the person's browser when its session is still good: no prompt, straight back to the app. */
  async function loginWithExistingSession(app: TestRp = rp) {
    const pending = await beginLogin(app);
    const callback = await person.continueToApp(pending.url, REDIRECT_URI);
    return finishLogin(app, pending, callback);
  }

  /** Verifies an ID token against the JWKS the server publishes now (fetched afresh). */
  function verifyAgainstPublishedJwks(idToken: string) {
    const jwks = jose.createRemoteJWKSet(new URL(`${sesame.baseUrl}/jwks`));
    return jose.jwtVerify(idToken, jwks, { issuer: sesame.baseUrl, audience: client.client_id });
  }

  describe('after a restart', () => {
    let before: Awaited<ReturnType<typeof finishLogin>>;
    let sub: string;
    let kidsBefore: string[];

    beforeAll(async () => {
      // A signed-in person with tokens, then the restart.
      const pending = await beginLogin(rp);
      const loginPage = await person.open(pending.url);
      const next = await person.signUp(loginPage, 'grace@example.com');
      before = await finishLogin(rp, pending, await person.continueToApp(next, REDIRECT_URI));
      sub = before.claims()!.sub;
      kidsBefore = await publishedKids();
      await sesame.restart();
    });

    it('publishes the same key ids, so nothing an app cached is invalidated', async () => {
      expect(kidsBefore).toHaveLength(2);
      expect(await publishedKids()).toEqual(kidsBefore);
    });

    it('still finds an access token issued before the restart active', async () => {
      expect(await introspect(before.access_token)).toMatchObject({
        active: true,
        sub,
        client_id: client.client_id,
      });
      expect((await oidc.fetchUserInfo(rp.config, before.access_token, sub)).sub).toBe(sub);
    });

    it('keeps the browser signed in: the session cookie still works because the cookie keys persisted', async () => {
      // No sign-in page: straight back to the app with the same person.
      const again = await loginWithExistingSession();
      expect(again.claims()!.sub).toBe(sub);
      expect(again.claims()!.auth_time).toBe(before.claims()!.auth_time);
    });

    describe('after rotating the signing keys and restarting', () => {
      let newKids: string[];

      beforeAll(async () => {
        // What `sesame keys rotate --activate-in 0` does (a key thought exposed: the new ones sign at once).
        ({ kids: newKids } = await rotateSigningKeys(sesame.db, sesame.config, 'test', {
          activateInSeconds: 0,
        }));
        await sesame.restart();
      });

      it('publishes both the old and the new keys', async () => {
        expect(newKids).toHaveLength(2);
        expect(await publishedKids()).toEqual([...kidsBefore, ...newKids].sort());
      });

      it('still verifies an ID token signed by the old key against the published JWKS', async () => {
        const oldKid = jose.decodeProtectedHeader(before.id_token!).kid!;
        expect(kidsBefore).toContain(oldKid);
        const { payload } = await verifyAgainstPublishedJwks(before.id_token!);
        expect(payload.sub).toBe(sub);
      });

      it('signs new ID tokens with the new key of the same algorithm', async () => {
        const oldHeader = jose.decodeProtectedHeader(before.id_token!);
        // Keys that sign at once reach an app only when it refetches the JWKS (openid-client
        // does after a minute); this app starts afresh. `keyRotation.test.ts` covers the default.
        const tokens = await loginWithExistingSession(await discoverRp(sesame.baseUrl, client, REDIRECT_URI));
        const header = jose.decodeProtectedHeader(tokens.id_token!);
        expect(newKids).toContain(header.kid);
        expect(kidsBefore).not.toContain(header.kid);
        expect(header.alg).toBe(oldHeader.alg);
        expect((await verifyAgainstPublishedJwks(tokens.id_token!)).payload.sub).toBe(sub);
      });

      it('still accepts the access token issued before both restarts', async () => {
        expect(await introspect(before.access_token)).toMatchObject({ active: true, sub });
      });
    });
  });

  it('keeps a client_credentials token active across a restart', async () => {
    const issued = await fetch(`${sesame.baseUrl}/token`, {
      method: 'POST',
      headers: {
        authorization: basic(client.client_id, client.client_secret),
        'content-type': 'application/x-www-form-urlencoded',
      },
      body: new URLSearchParams({ grant_type: 'client_credentials' }),
    });
    expect(issued.status).toBe(200);
    const { access_token } = (await issued.json()) as { access_token: string };

    await sesame.restart();

    expect(await introspect(access_token)).toMatchObject({ active: true, client_id: client.client_id });
  });
});

describe('signing keys on a database shared by several instances', () => {
  it('gives instances that start together on an empty database one key per algorithm', async () => {
    const testDb = await createTestDatabase();
    const database = await openDatabase(configFrom(testDb.env), { poolSize: 4 });
    try {
      const config = { keyEncryptionSecret: undefined, keyEncryptionSecretPrevious: undefined };
      const created = await Promise.all([
        ensureSigningKeys(database.db, config),
        ensureSigningKeys(database.db, config),
        ensureSigningKeys(database.db, config),
      ]);
      expect(created.flat()).toHaveLength(2);
      const rows = await database.db.selectFrom('signing_keys').select(['kid', 'alg']).execute();
      expect(rows.map((r) => r.alg).sort()).toEqual(['ES256', 'RS256']);
      // A later start creates nothing.
      expect(await ensureSigningKeys(database.db, config)).toEqual([]);
    } finally {
      await database.close();
      await testDb.drop();
    }
  });
});
