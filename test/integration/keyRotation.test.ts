import * as jose from 'jose';
import { createClient } from '../../src/oidc/clients.js';
import { rotateSigningKeys } from '../../src/oidc/keys.js';
import { beginLogin, discoverRp, finishLogin, Person, type TestRp } from '../support/oidcFlow.js';
import { startTestApp, type TestApp } from '../support/testApp.js';

const REDIRECT_URI = 'http://127.0.0.1:8921/callback';
/** Long enough to log in once more before the new keys take over, even on a busy machine. */
const ACTIVATE_IN_SECONDS = 8;

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

  const discoverApp = () =>
    discoverRp(sesame.baseUrl, { client_id: clientId, client_secret: clientSecret }, REDIRECT_URI);

  beforeAll(async () => {
    sesame = await startTestApp();
    const created = await createClient(sesame.db, { name: 'Notes', redirect_uris: [REDIRECT_URI] }, 'test');
    clientId = created.client.client_id;
    clientSecret = created.client_secret!;
    rp = await discoverApp();
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

  /** A login by `app`; openid-client checks the ID token's signature against its cached JWKS. */
  async function idToken(app: TestRp = rp): Promise<{ token: string; kid: string }> {
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

    // An app that fetches the JWKS in the meantime (here: a new one) caches the new keys
    // before any token is signed with them. Its first login still gets the old key.
    const refreshedApp = await discoverApp();
    const meantime = await idToken(refreshedApp);
    expect(Date.now()).toBeLessThan(activatesAt.getTime());
    expect(meantime.kid).toBe(beforeRotation.kid);

    // After the activation the same app, without refetching, verifies tokens of the new key.
    await waitUntil(
      async () => newKids.includes((await idToken(refreshedApp)).kid),
      (ACTIVATE_IN_SECONDS + 5) * 1000,
    );
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

  it('switches at once with no delay (the provider is rebuilt; sessions live in the database)', async () => {
    const { kids } = await rotateSigningKeys(sesame.db, sesame.config, 'test', { activateInSeconds: 0 });
    await waitUntil(async () => (await publishedKids()).some((kid) => kids.includes(kid)), 5_000);
    // The person's session survives the switch: a new app (with a fresh JWKS) signs them in without a prompt.
    const app = await discoverApp();
    await waitUntil(async () => kids.includes((await idToken(app)).kid), 5_000);
  });
});
