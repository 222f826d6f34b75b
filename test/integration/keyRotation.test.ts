import * as jose from 'jose';
import { createClient } from '../../src/oidc/clients.js';
import { rotateSigningKeys } from '../../src/oidc/keys.js';
import { beginLogin, discoverRp, finishLogin, Person, type TestRp } from '../support/oidcFlow.js';
import { startTestApp, type TestApp } from '../support/testApp.js';

const REDIRECT_URI = 'http://127.0.0.1:8921/callback';
/** Long enough to log in once more before the new keys take over, even on a busy machine. */
const ACTIVATE_IN_SECONDS = 6;

async function waitUntil(check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`not true within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe('rotating the signing keys while the server runs', () => {
  let sesame: TestApp;
  let rp: TestRp;
  let person: Person;
  let clientId: string;
  let clientSecret: string;

  beforeAll(async () => {
    sesame = await startTestApp();
    const created = await createClient(sesame.db, { name: 'Notes', redirect_uris: [REDIRECT_URI] }, 'test');
    clientId = created.client.client_id;
    clientSecret = created.client_secret!;
    rp = await discoverRp(
      sesame.baseUrl,
      { client_id: clientId, client_secret: created.client_secret! },
      REDIRECT_URI,
    );
    person = new Person(sesame.baseUrl);
    const pending = await beginLogin(rp);
    const next = await person.signUp(await person.open(pending.url), 'ada@example.com');
    await finishLogin(rp, pending, await person.continueToApp(next, REDIRECT_URI));
  });

  afterAll(() => sesame.stop());

  async function publishedKids(): Promise<string[]> {
    const { keys } = (await (await fetch(`${sesame.baseUrl}/jwks`)).json()) as { keys: { kid: string }[] };
    return keys.map((key) => key.kid);
  }

  /**
   * Signs in at an app that has just fetched the JWKS (a fresh configuration), as every app
   * has once its cache expired: the RP checks the ID token's signature, and openid-client
   * keeps a JWKS for up to five minutes, refetching for an unknown kid only after 60 s.
   * The activation delays here are seconds; real ones (an hour by default) outlast that.
   */
  async function idToken(): Promise<{ token: string; kid: string }> {
    const app = await discoverRp(
      sesame.baseUrl,
      { client_id: clientId, client_secret: clientSecret },
      REDIRECT_URI,
    );
    const pending = await beginLogin(app);
    const tokens = await finishLogin(app, pending, await person.continueToApp(pending.url, REDIRECT_URI));
    return { token: tokens.id_token!, kid: jose.decodeProtectedHeader(tokens.id_token!).kid! };
  }

  it('publishes the new keys at once, signs with the old ones until the new ones activate, then switches', async () => {
    const oldKids = await publishedKids();
    const beforeRotation = await idToken();
    expect(oldKids).toContain(beforeRotation.kid);

    const { kids: newKids, activatesAt } = await rotateSigningKeys(sesame.db, sesame.config, 'test', {
      activateInSeconds: ACTIVATE_IN_SECONDS,
    });
    // No restart: the row change notice makes the running server publish them.
    await waitUntil(async () => (await publishedKids()).length === 4, 5_000);
    expect((await publishedKids()).sort()).toEqual([...oldKids, ...newKids].sort());

    // Apps that refetch their JWKS now hold the new keys before any token is signed with them.
    if (Date.now() < activatesAt.getTime() - 1_000) {
      expect((await idToken()).kid).toBe(beforeRotation.kid);
    }

    await waitUntil(async () => newKids.includes((await idToken()).kid), (ACTIVATE_IN_SECONDS + 5) * 1000);
    expect(Date.now()).toBeGreaterThanOrEqual(activatesAt.getTime());

    // What the old key signed still verifies against what is published now.
    const jwks = jose.createRemoteJWKSet(new URL(`${sesame.baseUrl}/jwks`));
    const { payload } = await jose.jwtVerify(beforeRotation.token, jwks, {
      issuer: sesame.baseUrl,
      audience: clientId,
    });
    expect(payload.email).toBe('ada@example.com');
    expect((await publishedKids()).sort()).toEqual([...oldKids, ...newKids].sort());
  }, 30_000);

  it('keeps serving sign-ins across the switch (the provider is rebuilt, sessions live in the database)', async () => {
    const { kids } = await rotateSigningKeys(sesame.db, sesame.config, 'test', { activateInSeconds: 0 });
    await waitUntil(async () => kids.includes((await idToken()).kid), 5_000);
  });
});
