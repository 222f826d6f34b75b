import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import * as oidc from 'openid-client';
import { createOneTimeLink } from '../../src/accounts/oneTimeLinks.js';
import { disableUser, enableUser } from '../../src/admin/users.js';
import { createClient } from '../../src/oidc/clients.js';
import { eventually } from '../support/eventually.js';
import { beginLogin, discoverRp, finishLogin, Person, stepUp, type TestRp } from '../support/oidcFlow.js';
import { onboard, useLink } from '../support/oneTimeLinkFlow.js';
import { startTestApp, type TestApp } from '../support/testApp.js';

const REDIRECT_URI = 'http://127.0.0.1:8911/callback';
const TRIALS = 20;

/**
 * Revocation is for good. A thief holding a copy of someone's session cookie keeps asking
 * /auth?prompt=none from three loops at once, so requests that loaded the session are
 * always in flight — and each one saves the session when it ends. Whatever the timing,
 * once the owner signs out everywhere (or an admin disables the account, or the email's
 * owner takes an unproven account over), the copied cookie signs nobody in.
 */
describe('revoked sign-ins stay revoked while requests with the stolen cookie are in flight', () => {
  let sesame: TestApp;
  let clientId: string;
  let rp: TestRp;

  beforeAll(async () => {
    sesame = await startTestApp({ SIGNUP: 'open' });
    // First party, so prompt=none answers with a code while the session lives (no consent step).
    const { client, client_secret } = await createClient(
      sesame.db,
      { name: 'Dashboard', redirect_uris: [REDIRECT_URI], first_party: true },
      'test',
    );
    clientId = client.client_id;
    rp = await discoverRp(sesame.baseUrl, { client_id: clientId, client_secret }, REDIRECT_URI);
  });

  afterAll(() => sesame.stop());

  const newEmail = () => `r${randomBytes(4).toString('hex')}@example.com`;

  /** The Cookie header a thief copied from the person's browser. */
  async function stolenCookie(person: Person): Promise<string> {
    return person.browser.jar.getCookieString(`${sesame.baseUrl}/auth`);
  }

  const verifier = oidc.randomPKCECodeVerifier();

  /** A silent sign-in with the cookie: 'signed-in' when it gets a code, 'signed-out' when login_required. */
  async function silentSignIn(cookie: string): Promise<'signed-in' | 'signed-out' | string> {
    const url = new URL('/auth', sesame.baseUrl);
    url.search = new URLSearchParams({
      client_id: clientId,
      redirect_uri: REDIRECT_URI,
      response_type: 'code',
      scope: 'openid',
      prompt: 'none',
      code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
    }).toString();
    const response = await fetch(url, { headers: { cookie }, redirect: 'manual' });
    const location = new URL(response.headers.get('location') ?? '/', sesame.baseUrl);
    if (location.searchParams.has('code')) return 'signed-in';
    if (location.searchParams.get('error') === 'login_required') return 'signed-out';
    return `${response.status} ${location}`;
  }

  /** Three loops of silent sign-ins with the stolen cookie; stop() ends them. */
  function pollWith(cookie: string) {
    let running = true;
    let signedIn = 0;
    const loops = [1, 2, 3].map(async () => {
      while (running) if ((await silentSignIn(cookie)) === 'signed-in') signedIn += 1;
    });
    return {
      async stop() {
        // Keep polling a little past the revocation: late saves land in this window.
        await sleep(150);
        running = false;
        await Promise.all(loops);
        return signedIn;
      },
    };
  }

  /** Whether the cookie still signs anyone in: at /auth and on the account page. */
  async function survives(cookie: string): Promise<boolean> {
    const silent = await silentSignIn(cookie);
    const account = await fetch(new URL('/account', sesame.baseUrl), {
      headers: { cookie },
      redirect: 'manual',
    });
    if (silent !== 'signed-in' && silent !== 'signed-out') throw new Error(`unexpected answer: ${silent}`);
    return silent === 'signed-in' || account.status === 200;
  }

  it(`signing out everywhere ends a stolen session for good (${TRIALS} races, no survivor)`, async () => {
    let survivors = 0;
    for (let trial = 0; trial < TRIALS; trial++) {
      const { person } = await onboard(sesame, newEmail());
      const cookie = await stolenCookie(person);
      expect(await silentSignIn(cookie)).toBe('signed-in');

      const thief = pollWith(cookie);
      await sleep(20 + (trial % 5) * 10);
      const csrf = (await person.browser.request('/account')).csrf();
      const done = await person.browser.request('/account/sign-out-everywhere', { form: { _csrf: csrf } });
      expect(done.status).toBe(303);
      expect(await thief.stop()).toBeGreaterThan(0);

      if (await survives(cookie)) survivors += 1;
    }
    expect(survivors).toBe(0);
  }, 240_000);

  it('the owner can sign in again at once after signing out everywhere', async () => {
    const { person } = await onboard(sesame, newEmail());
    const csrf = (await person.browser.request('/account')).csrf();
    await person.browser.request('/account/sign-out-everywhere', { form: { _csrf: csrf } });
    const browser = person.inNewBrowser();
    const pending = await beginLogin(rp, 'openid');
    const next = await browser.signIn(await browser.open(pending.url));
    const tokens = await finishLogin(rp, pending, await browser.continueToApp(next, REDIRECT_URI));
    expect(tokens.access_token).toEqual(expect.any(String));
    expect((await browser.browser.request('/account')).status).toBe(200);
  });

  it('disabling an account ends a stolen session for good, even once it is enabled again (5 races)', async () => {
    for (let trial = 0; trial < 5; trial++) {
      const { person, userId } = await onboard(sesame, newEmail());
      const cookie = await stolenCookie(person);
      const thief = pollWith(cookie);
      await sleep(30);
      await disableUser(sesame.db, userId, 'test');
      await thief.stop();
      await enableUser(sesame.db, userId, 'test');
      expect(await survives(cookie)).toBe(false);
      // The person signs in again with their passkey. The server hears of the enabling, made
      // straight on the database, by its change notice a moment after the commit: until then a
      // sign-in ends at its return to /auth/:uid (the account still read as disabled), as
      // rowCaches.test.ts and groups.test.ts wait for such changes too.
      const signsInAgain = async () => {
        const browser = person.inNewBrowser();
        const pending = await beginLogin(rp, 'openid');
        const next = await browser.signIn(await browser.open(pending.url));
        let callback: string;
        try {
          callback = await browser.continueToApp(next, REDIRECT_URI);
        } catch (error) {
          if (String(error).includes(`not an interaction page: ${sesame.baseUrl}/auth/`)) return false;
          throw error;
        }
        await finishLogin(rp, pending, callback);
        return true;
      };
      expect(await eventually(signsInAgain)).toBe(true);
    }
  }, 120_000);

  it('the email owner taking over an unproven account ends its claimant’s sessions, step-ups and ceremonies (5 races)', async () => {
    for (let trial = 0; trial < 5; trial++) {
      const email = newEmail();
      // Someone signs up with an address that is not theirs, and proves a passkey (a step-up).
      const claimant = new Person(sesame.baseUrl);
      const pending = await beginLogin(rp, 'openid');
      await claimant.continueToApp(
        await claimant.signUp(await claimant.open(pending.url), email),
        REDIRECT_URI,
      );
      const csrf = (await claimant.browser.request('/account')).csrf();
      expect((await stepUp(claimant, csrf)).status).toBe(200);
      const user = await sesame.db
        .selectFrom('users')
        .select('id')
        .where('email', '=', email)
        .executeTakeFirstOrThrow();
      // A ceremony of theirs is pending (adding a passkey).
      expect((await claimant.browser.postJson('/account/passkeys/options', csrf, {})).status).toBe(200);
      const cookie = await stolenCookie(claimant);

      const thief = pollWith(cookie);
      await sleep(30);
      const { url } = await createOneTimeLink(sesame.db, sesame.config, { email, actor: 'test' });
      const owner = new Person(sesame.baseUrl);
      expect((await useLink(owner, url, 'Owner')).status).toBe(200);
      await thief.stop();

      expect(await survives(cookie)).toBe(false);
      expect((await owner.browser.request('/account')).status).toBe(200);
      const left = async (table: 'step_ups' | 'webauthn_challenges') =>
        (await sesame.db.selectFrom(table).select('user_id').where('user_id', '=', user.id).execute()).length;
      expect(await left('step_ups')).toBe(0);
      expect(await left('webauthn_challenges')).toBe(0);
    }
  }, 120_000);
});
