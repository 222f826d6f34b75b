import { createClient } from '../../src/oidc/clients.js';
import { storedId } from '../../src/oidc/storedIds.js';
import { asPage } from '../support/browser.js';
import { beginLogin, discoverRp, finishLogin, Person, type TestRp } from '../support/oidcFlow.js';
import { startTestApp, type TestApp } from '../support/testApp.js';

const REDIRECT_URI = 'http://127.0.0.1:8903/callback';

/**
 * Revoking a grant removes the codes and tokens issued under it, not the sign-in a person is
 * in the middle of, whose interaction names that grant as the one it may reuse. Found by
 * probing a running server (2026-12-06): switching accounts with prompt=login (oidc-provider
 * ends the first account's session, which revokes its grant) deleted the interaction, and
 * the return answered 500; an app revoking its token while the person was on the consent
 * page made their Allow fail.
 */
describe('a grant revoked while a sign-in that names it is in progress', () => {
  let sesame: TestApp;
  let rp: TestRp;
  let clientId: string;
  let clientSecret: string;

  beforeAll(async () => {
    sesame = await startTestApp();
    const { client, client_secret } = await createClient(
      sesame.db,
      {
        name: 'Notes',
        redirect_uris: [REDIRECT_URI],
        grant_types: ['authorization_code', 'refresh_token'],
      },
      'test',
    );
    clientId = client.client_id;
    clientSecret = client_secret!;
    rp = await discoverRp(sesame.baseUrl, { client_id: clientId, client_secret: clientSecret }, REDIRECT_URI);
  }, 120_000);

  afterAll(() => sesame.stop());

  /** A person signed up and signed in to the app once (consent given), with the tokens it got. */
  async function signedInPerson(email: string) {
    const person = new Person(sesame.baseUrl);
    const pending = await beginLogin(rp, 'openid email');
    const next = await person.signUp(await person.open(pending.url), email);
    const tokens = await finishLogin(rp, pending, await person.continueToApp(next, REDIRECT_URI));
    return { person, tokens };
  }

  const interactionStored = async (uid: string) =>
    (await sesame.db
      .selectFrom('oidc_models')
      .select('id')
      .where('model', '=', 'Interaction')
      .where('id', '=', storedId('Interaction', uid))
      .executeTakeFirst()) !== undefined;

  it('lets a person switch accounts with prompt=login: the first session ends, the second account gets the code', async () => {
    const { person, tokens: first } = await signedInPerson('first@example.com');
    const pending = await beginLogin(rp, 'openid email', { prompt: 'login' });
    const prompt = await person.open(pending.url);
    const uid = new URL(prompt.url).pathname.split('/').pop()!;
    const resume = await person.signUp(prompt, 'second@example.com');

    // The provider asks the browser to end the first account's session first: an auto-submitted form.
    const confirm = await person.browser.request(resume);
    expect(confirm.status).toBe(200);
    const action = /<form[^>]*action="([^"]+)"/.exec(confirm.text)![1]!;
    const fields = Object.fromEntries(
      [...confirm.text.matchAll(/<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"/g)].map((m) => [m[1]!, m[2]!]),
    );
    const ended = await person.browser.request(new URL(action, sesame.baseUrl).toString(), { form: fields });
    expect(ended.status).toBe(303);
    expect(await interactionStored(uid)).toBe(true);

    // The second account consents to the app as anyone new does, and the app gets its code.
    const callback = await person.continueToApp(ended.location()!, REDIRECT_URI);
    const second = await finishLogin(rp, pending, callback);
    expect(second.claims()!.sub).not.toBe(first.claims()!.sub);
    expect(second.claims()!.email).toBe('second@example.com');
  });

  it('keeps the consent page working when the app revokes its token meanwhile, and the revoked token stays revoked', async () => {
    const { person, tokens } = await signedInPerson('consent@example.com');
    const pending = await beginLogin(rp, 'openid email profile');
    const page = asPage(await person.browser.follow(pending.url));
    expect(page.text).toContain('>Allow<');
    // It shows the signed-in account's email: no cache keeps it.
    expect(page.headers.get('cache-control')).toBe('no-store');

    const revoked = await fetch(`${sesame.baseUrl}/token/revocation`, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        authorization: `Basic ${Buffer.from(`${clientId}:${clientSecret}`).toString('base64')}`,
      },
      body: new URLSearchParams({ token: tokens.refresh_token ?? tokens.access_token }).toString(),
    });
    expect(revoked.status).toBe(200);

    const callback = await person.continueToApp(page.url, REDIRECT_URI);
    const again = await finishLogin(rp, pending, callback);
    expect(again.claims()!.email).toBe('consent@example.com');
    const introspected = await fetch(`${sesame.baseUrl}/token/introspection`, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        authorization: `Basic ${Buffer.from(`${clientId}:${clientSecret}`).toString('base64')}`,
      },
      body: new URLSearchParams({ token: tokens.access_token }).toString(),
    });
    expect(await introspected.json()).toEqual({ active: false });
  });

  it('answers a return whose interaction is gone with the page for a sign-in that is no longer valid, not a 500', async () => {
    const person = new Person(sesame.baseUrl);
    const pending = await beginLogin(rp, 'openid email');
    const prompt = await person.open(pending.url);
    const uid = new URL(prompt.url).pathname.split('/').pop()!;
    const resume = await person.signUp(prompt, 'gone@example.com');
    // Ended elsewhere: another instance, or the same return loaded twice at once.
    await sesame.db
      .deleteFrom('oidc_models')
      .where('model', '=', 'Interaction')
      .where('id', '=', storedId('Interaction', uid))
      .execute();
    const refused = await person.browser.request(resume);
    expect(refused.status).toBe(400);
    expect(refused.location()).toBeUndefined();
    expect(refused.text).toContain('This sign-in has expired or was already completed');
  });
});
