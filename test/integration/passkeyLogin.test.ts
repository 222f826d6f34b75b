import * as jose from 'jose';
import { sql } from 'kysely';
import * as oidc from 'openid-client';
import { createClient } from '../../src/oidc/clients.js';
import { interactionBinding, storedId } from '../../src/oidc/storedIds.js';
import { asPage, stoppedAt } from '../support/browser.js';
import { beginLogin, discoverRp, finishLogin, Person, type TestRp } from '../support/oidcFlow.js';
import { passkeyOptionsIn } from '../support/pageOptions.js';
import { startTestApp, type TestApp } from '../support/testApp.js';

const REDIRECT_URI = 'http://127.0.0.1:8900/callback';

describe('passkey sign-up and sign-in as the OIDC login step', () => {
  let sesame: TestApp;
  let rp: TestRp;

  beforeAll(async () => {
    sesame = await startTestApp();
    const { client, client_secret } = await createClient(
      sesame.db,
      {
        name: 'Notes',
        redirect_uris: [REDIRECT_URI],
        post_logout_redirect_uris: ['http://127.0.0.1:8900/bye'],
      },
      'test',
    );
    rp = await discoverRp(sesame.baseUrl, { client_id: client.client_id, client_secret }, REDIRECT_URI);
  });

  afterAll(() => sesame.stop());

  it('signs a new person up with a passkey, asks consent, and issues a verified ID token and userinfo', async () => {
    const person = new Person(sesame.baseUrl);
    const pending = await beginLogin(rp);
    const loginPage = await person.open(pending.url);
    expect(loginPage.text).toContain('Sign in with a passkey');
    expect(loginPage.text).toContain('autocomplete="username webauthn"');
    expect(loginPage.text).toContain('Create an account');

    const next = await person.signUp(loginPage, 'ada@example.com', 'Ada Lovelace');
    const callback = await person.continueToApp(next, REDIRECT_URI);
    const tokens = await finishLogin(rp, pending, callback);

    const claims = tokens.claims()!;
    expect(claims.iss).toBe(sesame.baseUrl);
    expect(claims.email).toBe('ada@example.com');
    expect(claims.name).toBe('Ada Lovelace');
    expect(claims.amr).toEqual(expect.arrayContaining(['user', 'mfa']));
    expect(typeof claims.auth_time).toBe('number');

    // The ID token verifies against the published JWKS, independent of openid-client.
    const jwks = jose.createRemoteJWKSet(new URL(`${sesame.baseUrl}/jwks`));
    const { payload } = await jose.jwtVerify(tokens.id_token!, jwks, {
      issuer: sesame.baseUrl,
      audience: rp.config.clientMetadata().client_id,
    });
    expect(payload.sub).toBe(claims.sub);

    const userinfo = await oidc.fetchUserInfo(rp.config, tokens.access_token, claims.sub);
    expect(userinfo).toMatchObject({ sub: claims.sub, email: 'ada@example.com', name: 'Ada Lovelace' });

    // A new browser session with the same passkey signs in and gets the same sub, without a second consent.
    const again = person.inNewBrowser();
    const pending2 = await beginLogin(rp);
    const loginPage2 = await again.open(pending2.url);
    const callback2 = await again.continueToApp(await again.signIn(loginPage2), REDIRECT_URI);
    const tokens2 = await finishLogin(rp, pending2, callback2);
    expect(tokens2.claims()!.sub).toBe(claims.sub);
  });

  it('signs a person in from an authorization request the app sent as a form POST (OIDC Core §3.1.2.1)', async () => {
    const person = new Person(sesame.baseUrl);
    const pending = await beginLogin(rp);
    const url = new URL(pending.url);
    // As an app's auto-submitted form sends it: the parameters in the body, none in the URL.
    const posted = await person.browser.request(`${url.origin}${url.pathname}`, {
      form: Object.fromEntries(url.searchParams),
      headers: { origin: 'https://notes.example' },
    });
    expect(posted.status).toBe(303);
    expect(posted.location()).toBe(pending.url);

    const loginPage = await person.open(posted.location()!);
    expect(loginPage.text).toContain('Sign in with a passkey');
    const next = await person.signUp(loginPage, 'poster@example.com');
    const tokens = await finishLogin(rp, pending, await person.continueToApp(next, REDIRECT_URI));
    expect(tokens.claims()).toMatchObject({ email: 'poster@example.com', nonce: pending.nonce });

    // Signed in now, the next POSTed request goes back to the app without a login page.
    const again = await beginLogin(rp);
    const againUrl = new URL(again.url);
    const repost = await person.browser.request(`${againUrl.origin}${againUrl.pathname}`, {
      form: Object.fromEntries(againUrl.searchParams),
    });
    expect(
      stoppedAt(await person.browser.follow(repost.location()!, (u) => u.startsWith(REDIRECT_URI))),
    ).toMatch(/[?&]code=/);
  });

  describe('the login page of an authorization request this instance stored (freshSignIns.ts)', () => {
    /** The challenges stored for an interaction, oldest first. */
    const challengesFor = (uid: string) =>
      sesame.db
        .selectFrom('webauthn_challenges')
        .select(['challenge', 'purpose'])
        .where('binding', '=', interactionBinding(uid))
        .orderBy('expires_at')
        .execute();

    /** An authorization request, followed up to (not into) its login page. */
    async function authorize(person: Person) {
      const pending = await beginLogin(rp);
      const pageUrl = stoppedAt(
        await person.browser.follow(pending.url, (url) => url.includes('/interaction/')),
      );
      const uid = /\/interaction\/([^/?#]+)/.exec(pageUrl)![1]!;
      return { pending, pageUrl, uid };
    }

    /** A person who has signed up through an app, and the `sub` the app knows them by. */
    async function signedUp(email: string) {
      const person = new Person(sesame.baseUrl);
      const signup = await authorize(person);
      const callback = await person.continueToApp(
        await person.signUp(asPage(await person.browser.follow(signup.pageUrl)), email),
        REDIRECT_URI,
      );
      return { person, sub: (await finishLogin(rp, signup.pending, callback)).claims()!.sub };
    }

    it('is first shown without reading the interaction, with the challenge stored beside it', async () => {
      const person = new Person(sesame.baseUrl);
      const { pageUrl, uid } = await authorize(person);
      const stored = await challengesFor(uid);
      expect(stored).toEqual([{ challenge: expect.any(String), purpose: 'login' }]);

      // The stored interaction goes, as if another instance had finished this sign-in: the
      // first view still shows the page (it reads nothing), with the stored challenge.
      await sesame.db
        .deleteFrom('oidc_models')
        .where('model', '=', 'Interaction')
        .where('id', '=', storedId('Interaction', uid))
        .execute();
      const first = await person.browser.request(pageUrl);
      expect(first.status).toBe(200);
      expect(first.text).toContain('Sign in with a passkey');
      expect(passkeyOptionsIn(first.text)?.challenge).toBe(stored[0]!.challenge);
      // Once: the next view reads the interaction, which is gone.
      const second = await person.browser.request(pageUrl);
      expect(second.status).toBe(400);
      expect(passkeyOptionsIn(second.text)).toBeUndefined();
    });

    it("signs in with the first view's options; a later view brings and stores a challenge of its own", async () => {
      const { person, sub } = await signedUp('grace@example.com');

      for (const view of ['first', 'again'] as const) {
        const visit = person.inNewBrowser();
        const { pending, pageUrl, uid } = await authorize(visit);
        let page = asPage(await visit.browser.follow(pageUrl));
        if (view === 'again') page = asPage(await visit.browser.follow(pageUrl));
        const options = passkeyOptionsIn(page.text)!;
        const stored = (await challengesFor(uid)).map((c) => c.challenge);
        expect(stored).toHaveLength(view === 'first' ? 1 : 2);
        expect(stored.at(-1)).toBe(options.challenge);

        const callback = await visit.continueToApp(await visit.signInWithAutofill(page), REDIRECT_URI);
        expect((await finishLogin(rp, pending, callback)).claims()!.sub).toBe(sub);
        // The challenge the sign-in answered is used up; the other view's stays until it expires.
        expect((await challengesFor(uid)).map((c) => c.challenge)).toEqual(stored.slice(0, -1));
      }
    });

    it('returns to the app from the interaction stored with the sign-in, only while it is still stored so, else sends the browser to load it again', async () => {
      const { person, sub } = await signedUp('hopper@example.com');
      const codes = async () =>
        Number(
          (
            await sesame.db
              .selectFrom('oidc_models')
              .select((eb) => eb.fn.countAll().as('n'))
              .where('model', '=', 'AuthorizationCode')
              .executeTakeFirstOrThrow()
          ).n,
        );

      const visit = person.inNewBrowser();
      const { pending, pageUrl, uid } = await authorize(visit);
      const resumeUrl = await visit.signInWithAutofill(asPage(await visit.browser.follow(pageUrl)));
      // The stored interaction changes behind this instance's back, as another instance could
      // change it: the return read from memory must not issue a code from its older copy.
      await sesame.db
        .updateTable('oidc_models')
        .set({ payload: sql`payload || '{"changedElsewhere": true}'::jsonb` })
        .where('model', '=', 'Interaction')
        .where('id', '=', storedId('Interaction', uid))
        .execute();
      const before = await codes();
      const refused = await visit.browser.request(resumeUrl);
      expect(refused.status).toBe(303);
      expect(refused.location()).toBe(resumeUrl);
      expect(refused.headers.getSetCookie()).toEqual([]);
      expect(await codes()).toBe(before);

      // Loading it again, as the browser is sent to, reads the interaction as stored, and signs in.
      const callback = await visit.continueToApp(resumeUrl, REDIRECT_URI);
      expect((await finishLogin(rp, pending, callback)).claims()!.sub).toBe(sub);
    });
  });
});
