import { randomBytes } from 'node:crypto';
import Keygrip from 'keygrip';
import { sql } from 'kysely';
import * as oidc from 'openid-client';
import { cookieNames } from '../../src/cookieNames.js';
import { createClient, updateClient } from '../../src/oidc/clients.js';
import { loadCookieKeys } from '../../src/oidc/cookieKeys.js';
import { storedId } from '../../src/oidc/storedIds.js';
import { asPage, type PageResponse, stoppedAt } from '../support/browser.js';
import { noticesHeard } from '../support/noticesHeard.js';
import { beginLogin, discoverRp, finishLogin, Person, type TestRp } from '../support/oidcFlow.js';
import { ageSignIn, DAY } from '../support/signInAge.js';
import { SoftAuthenticator } from '../support/softAuthenticator.js';
import { startTestApp, type TestApp } from '../support/testApp.js';

const REDIRECT_URI = 'http://127.0.0.1:8902/callback';
const LOGGED_OUT_URI = 'http://127.0.0.1:8902/bye';

const uidOf = (url: string) => /\/interaction\/([^/?#]+)/.exec(url)?.[1];

describe('sessions, consent and tokens after a passkey sign-in', () => {
  let sesame: TestApp;
  let rp: TestRp;

  async function registerRp(extra: Record<string, unknown> = {}): Promise<TestRp> {
    const { client, client_secret } = await createClient(
      sesame.db,
      { name: 'Notes', redirect_uris: [REDIRECT_URI], post_logout_redirect_uris: [LOGGED_OUT_URI], ...extra },
      'test',
    );
    return discoverRp(sesame.baseUrl, { client_id: client.client_id, client_secret }, REDIRECT_URI);
  }

  beforeAll(async () => {
    sesame = await startTestApp();
    rp = await registerRp();
  });

  afterAll(() => sesame.stop());

  const newEmail = () => `s${randomBytes(4).toString('hex')}@example.com`;

  /** Signs a new person up at `app` (pressing Allow if asked) and redeems the code. */
  async function signUpAt(app: TestRp, scope?: string, extra?: Record<string, string>) {
    const person = new Person(sesame.baseUrl);
    const pending = await beginLogin(app, scope, extra);
    const next = await person.signUp(await person.open(pending.url), newEmail());
    const tokens = await finishLogin(app, pending, await person.continueToApp(next, REDIRECT_URI));
    return { person, tokens };
  }

  it('reads a session cookie only with its signature, as keygrip made it before an upgrade', async () => {
    const { person } = await signUpAt(rp);
    const { jar } = person.browser;
    expect((await person.browser.request('/account')).status).toBe(200);
    const cookieOf = async (name: string) =>
      (await jar.getCookies(`${sesame.baseUrl}/account`)).find((c) => c.key === name)!;
    const name = cookieNames(sesame.config).session;
    const session = await cookieOf(name);
    const signature = await cookieOf(`${name}.sig`);
    const setSignature = (value: string) =>
      jar.setCookie(`${name}.sig=${value}; Path=/; HttpOnly`, sesame.baseUrl);

    // One character off: no session, so the account page sends the browser to sign in.
    const last = signature.value.at(-1) === 'A' ? 'B' : 'A';
    await setSignature(`${signature.value.slice(0, -1)}${last}`);
    expect((await person.browser.request('/account')).status).toBe(302);

    // Signed as keygrip signs (HMAC-SHA1 of "name=value", base64url) under the stored keys.
    const { keys } = await loadCookieKeys(sesame.db, sesame.config);
    await setSignature(new Keygrip(keys).sign(`${name}=${session.value}`));
    expect((await person.browser.request('/account')).status).toBe(200);
  });

  /** Presses "Sign out" on the provider's logout confirmation page; returns where the browser is sent. */
  async function confirmSignOut(person: Person, confirm: PageResponse): Promise<URL> {
    expect(confirm.status).toBe(200);
    expect(confirm.text).toContain('Sign out?');
    const form = /<form[^>]*action="([^"]+)"[^>]*>[\s\S]*?name="xsrf" value="([^"]+)"/.exec(confirm.text);
    expect(form).not.toBeNull();
    const posted = await person.browser.request(form![1]!, { form: { xsrf: form![2]!, logout: 'yes' } });
    return new URL(posted.location()!);
  }

  /** The stored sessions the account is signed in to. */
  const sessionsOf = (sub: string) =>
    sesame.db
      .selectFrom('oidc_models')
      .select('payload')
      .where('model', '=', 'Session')
      .where(sql<string>`payload->>'accountId'`, '=', sub)
      .execute();

  /** The stored sessions the account is signed in to, with when each one ends (seconds since the epoch). */
  const storedSessionsOf = async (sub: string) =>
    (
      await sesame.db
        .selectFrom('oidc_models')
        .select(['payload', 'expires_at'])
        .where('model', '=', 'Session')
        .where(sql<string>`payload->>'accountId'`, '=', sub)
        .execute()
    ).map((row) => ({
      loginTs: (row.payload as { loginTs: number }).loginTs,
      endsAt: Math.floor(row.expires_at!.getTime() / 1000),
    }));

  const atApp = (u: string) => u.startsWith(REDIRECT_URI);

  it('asks for the passkey again 30 days after the sign-in, however recently the session was used', async () => {
    const { person, tokens } = await signUpAt(rp);
    const sub = tokens.claims()!.sub;
    await ageSignIn(sesame, sub, 31);

    // A silent sign-in gets login_required, an ordinary one the login page.
    const silent = await beginLogin(rp, 'openid', { prompt: 'none' });
    const refused = new URL(stoppedAt(await person.browser.follow(silent.url, atApp)));
    expect(refused.searchParams.get('error')).toBe('login_required');
    expect(refused.searchParams.get('code')).toBeNull();
    const pending = await beginLogin(rp);
    const loginPage = await person.open(pending.url);
    expect(uidOf(loginPage.url)).toBeDefined();
    expect(loginPage.text).toContain('Sign in with a passkey');
    // Sesame's own pages count the session as ended too.
    const account = await person.browser.request('/account');
    expect(account.status).toBe(302);
    expect(account.location()).toBe(`${sesame.baseUrl}/account/login?return_to=%2Faccount`);

    // The passkey starts the 30 days again.
    const before = Math.floor(Date.now() / 1000);
    const callback = stoppedAt(await person.browser.follow(await person.signIn(loginPage), atApp));
    const again = await finishLogin(rp, pending, callback);
    expect(again.claims()!.sub).toBe(sub);
    expect(again.claims()!.auth_time).toBeGreaterThanOrEqual(before - 1);
    expect((await person.browser.request('/account')).status).toBe(200);
  });

  it('signs in silently while the sign-in is younger than 30 days, and keeps the session no longer', async () => {
    for (const days of [13, 20]) {
      const { person, tokens } = await signUpAt(rp);
      const sub = tokens.claims()!.sub;
      await ageSignIn(sesame, sub, days);

      const silent = await beginLogin(rp, 'openid', { prompt: 'none' });
      const again = await finishLogin(rp, silent, stoppedAt(await person.browser.follow(silent.url, atApp)));
      expect(again.claims()!.auth_time).toBe(tokens.claims()!.auth_time! - days * DAY);
      expect((await person.browser.request('/account')).status).toBe(200);

      // Used just now, the session lasts 14 days from now, but no longer than 30 days after the
      // sign-in and half an hour (a sign-in under way then still reaches the passkey prompt).
      const now = Math.floor(Date.now() / 1000);
      const [session] = await storedSessionsOf(sub);
      const limit = Math.min(now + 14 * DAY, session!.loginTs + 30 * DAY + 30 * 60);
      expect(Math.abs(session!.endsAt - limit)).toBeLessThanOrEqual(2);
    }
  });

  it('puts auth_time, amr and the session id in the ID token', async () => {
    const before = Math.floor(Date.now() / 1000);
    const { tokens } = await signUpAt(rp);
    const claims = tokens.claims()!;
    // Every app's ID tokens name the session, not only those of apps with a back-channel
    // logout URI: discovery says backchannel_logout_session_supported (Back-Channel Logout 1.0 §2.1).
    expect(claims.sid).toEqual(expect.any(String));
    expect(claims.auth_time).toBeGreaterThanOrEqual(before - 1);
    expect(claims.auth_time).toBeLessThanOrEqual(Math.floor(Date.now() / 1000) + 1);
    // A passkey with user verification: a key, user presence, multi-factor (RFC 8176).
    expect(claims.amr).toEqual(['pop', 'user', 'mfa']);
  });

  it('says a key was proved (pop), never that it was hardware (hwk) or software (swk): no attestation says which', async () => {
    const deviceBound = new SoftAuthenticator();
    const synced = new SoftAuthenticator({ backupEligible: true, backupState: true });
    for (const authenticator of [deviceBound, synced]) {
      const newcomer = new Person(sesame.baseUrl, authenticator);
      const pending = await beginLogin(rp);
      const next = await newcomer.signUp(await newcomer.open(pending.url), newEmail());
      const signedUp = await finishLogin(rp, pending, await newcomer.continueToApp(next, REDIRECT_URI));
      expect(signedUp.claims()!.amr).toEqual(['pop', 'user', 'mfa']);

      // The same passkey in another browser: a sign-in says no more than the sign-up did.
      const elsewhere = new Person(sesame.baseUrl, authenticator);
      const again = await beginLogin(rp);
      const page = await elsewhere.open(again.url);
      const signedIn = await finishLogin(
        rp,
        again,
        await elsewhere.continueToApp(await elsewhere.signIn(page), REDIRECT_URI),
      );
      expect(signedIn.claims()!.amr).toEqual(['pop', 'user', 'mfa']);
    }
  });

  it('issues a refresh token for offline_access with prompt=consent, and the refresh token works', async () => {
    const { tokens } = await signUpAt(rp, 'openid email offline_access', { prompt: 'consent' });
    expect(tokens.refresh_token).toEqual(expect.any(String));
    const sub = tokens.claims()!.sub;

    const refreshed = await oidc.refreshTokenGrant(rp.config, tokens.refresh_token!);
    expect(refreshed.access_token).not.toBe(tokens.access_token);
    expect(refreshed.claims()!.sub).toBe(sub);
    expect(refreshed.claims()!.sid).toBe(tokens.claims()!.sid);
    const userinfo = await oidc.fetchUserInfo(rp.config, refreshed.access_token, sub);
    expect(userinfo.sub).toBe(sub);
  });

  it('issues no refresh token when offline_access was not asked for', async () => {
    const { tokens } = await signUpAt(rp, 'openid email');
    expect(tokens.refresh_token).toBeUndefined();
  });

  it('ends the session on RP-initiated logout, and the next authorization shows the login page', async () => {
    const { person, tokens } = await signUpAt(rp);

    // Still signed in: a second authorization request goes straight back to the app.
    const silent = await beginLogin(rp);
    stoppedAt(await person.browser.follow(silent.url, (u) => u.startsWith(REDIRECT_URI)));

    const endSession = oidc.buildEndSessionUrl(rp.config, {
      id_token_hint: tokens.id_token!,
      post_logout_redirect_uri: LOGGED_OUT_URI,
      state: 'bye-state',
    });
    const confirm = await person.browser.request(endSession.toString());
    const location = await confirmSignOut(person, confirm);
    expect(`${location.origin}${location.pathname}`).toBe(LOGGED_OUT_URI);
    expect(location.searchParams.get('state')).toBe('bye-state');
    expect(await sessionsOf(tokens.claims()!.sub)).toEqual([]);

    const again = await person.open((await beginLogin(rp)).url);
    expect(uidOf(again.url)).toBeDefined();
    expect(again.text).toContain('Sign in with a passkey');
  });

  it('takes an RP-initiated logout sent as a form POST: the person confirms with their session, and it ends', async () => {
    const { person, tokens } = await signUpAt(rp);
    const endSession = oidc.buildEndSessionUrl(rp.config, {
      id_token_hint: tokens.id_token!,
      post_logout_redirect_uri: LOGGED_OUT_URI,
      state: 'posted-bye',
    });
    const posted = await person.browser.request(`${endSession.origin}${endSession.pathname}`, {
      form: Object.fromEntries(endSession.searchParams),
    });
    expect(posted.status).toBe(303);
    expect(posted.location()).toBe(endSession.toString());

    const location = await confirmSignOut(person, await person.browser.request(posted.location()!));
    expect(`${location.origin}${location.pathname}`).toBe(LOGGED_OUT_URI);
    expect(location.searchParams.get('state')).toBe('posted-bye');
    expect(await sessionsOf(tokens.claims()!.sub)).toEqual([]);
  });

  it('answers a sign-out page that outlived its form with where the person stands, not a bad link', async () => {
    /** Opens the app's sign-out page; returns its form's address and token. */
    async function signOutPage(person: Person, idToken: string) {
      const endSession = oidc.buildEndSessionUrl(rp.config, {
        id_token_hint: idToken,
        post_logout_redirect_uri: LOGGED_OUT_URI,
      });
      const confirm = await person.browser.request(endSession.toString());
      const form = /<form[^>]*action="([^"]+)"[^>]*>[\s\S]*?name="xsrf" value="([^"]+)"/.exec(confirm.text)!;
      return { action: form[1]!, xsrf: form[2]! };
    }
    const send = (person: Person, form: { action: string; xsrf: string }) =>
      person.browser.request(form.action, { form: { xsrf: form.xsrf, logout: 'yes' } });

    // A newer sign-out page (another tab) replaced the form: the person is still signed in.
    const { person, tokens } = await signUpAt(rp);
    const older = await signOutPage(person, tokens.id_token!);
    await signOutPage(person, tokens.id_token!);
    const replaced = await send(person, older);
    expect(replaced.status).toBe(400);
    expect(replaced.text).toContain('This sign-out page has expired, and you are still signed in.');
    expect(replaced.text).not.toContain('could not find logout details');
    expect(await sessionsOf(tokens.claims()!.sub)).toHaveLength(1);

    // The same form posted by another site (SameSite=Lax sends no cookie with it): nothing says
    // whether this browser is signed in, so the page does not claim it is signed out.
    const crossSite = await person.inNewBrowser().browser.request(older.action, {
      form: { xsrf: older.xsrf, logout: 'yes' },
      headers: { origin: 'https://elsewhere.example' },
    });
    expect(crossSite.status).toBe(400);
    expect(crossSite.text).toContain('This sign-out page has expired. To sign out');
    expect(crossSite.text).not.toContain('You are signed out');
    expect(await sessionsOf(tokens.claims()!.sub)).toHaveLength(1);

    // The session ended while the page was open: the person is signed out, and is told so.
    const left = await signOutPage(person, tokens.id_token!);
    await sesame.db
      .updateTable('oidc_models')
      .set({ expires_at: sql<Date>`now() - interval '1 second'` })
      .where('model', '=', 'Session')
      .where(sql<string>`payload->>'accountId'`, '=', tokens.claims()!.sub)
      .execute();
    expect(await noticesHeard(sesame)).toBe(true);
    const ended = await send(person, left);
    expect(ended.status).toBe(200);
    expect(ended.text).toContain('You are signed out');

    // Signed out in another tab, which cleared the session cookie: this tab's page says so too.
    const again = await signUpAt(rp);
    const tabA = await signOutPage(again.person, again.tokens.id_token!);
    const tabB = await signOutPage(again.person, again.tokens.id_token!);
    expect((await send(again.person, tabB)).status).toBe(303);
    const afterOtherTab = await send(again.person, tabA);
    expect(afterOtherTab.status).toBe(200);
    expect(afterOtherTab.text).toContain('You are signed out');
  });

  it("signs the browser's person out on Sesame's page before another person's sign-in there goes on", async () => {
    const { person: first, tokens } = await signUpAt(rp);
    const { person: second, tokens: secondTokens } = await signUpAt(rp);
    // In the first person's browser (German), the second signs in with their passkey.
    first.browser.headers['accept-language'] = 'de';
    const pending = await beginLogin(rp, 'openid', { prompt: 'login' });
    const login = await first.open(pending.url);
    const uid = uidOf(login.url)!;
    const options = await first.browser.postJson(`/interaction/${uid}/login/options`, login.csrf(), {});
    const assertion = await second.authenticator.getAssertion(options.json(), first.browser.origin);
    const verified = await first.browser.postJson(
      `/interaction/${uid}/login/verify`,
      login.csrf(),
      assertion,
    );
    expect(verified.status).toBe(200);

    const signOut = await first.browser.request(verified.json<{ redirect: string }>().redirect);
    expect(signOut.status).toBe(200);
    expect(signOut.text).toContain('<html lang="de">');
    expect(signOut.text).toContain('<h1>Abmeldung</h1>');
    expect(signOut.headers.get('content-security-policy')).not.toContain('sha256-');
    expect(signOut.text).toContain('<script type="module" src="/static/js/autoSubmit.js"></script>');
    expect(signOut.text).not.toMatch(/<script(?![^>]*\ssrc=)/);
    const form = /<form method="post" action="([^"]+)" data-submits-itself>([\s\S]*?)<\/form>/.exec(
      signOut.text,
    )!;
    expect(form[1]).toBe(`${sesame.baseUrl}/session/end/confirm`);
    const fields = Object.fromEntries(
      [...form[2]!.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)">/g)].map(([, n, v]) => [
        n!,
        v!,
      ]),
    );
    expect(fields).toEqual({ xsrf: expect.any(String), logout: 'yes' });

    // Its form ends the first person's session and goes on to the second's sign-in at the app.
    const ended = await first.browser.request(form[1]!, { form: fields });
    expect(ended.status).toBe(303);
    const callback = stoppedAt(
      await first.browser.follow(ended.location()!, (u) => u.startsWith(REDIRECT_URI)),
    );
    const signedIn = await finishLogin(rp, pending, callback);
    expect(signedIn.claims()!.sub).toBe(secondTokens.claims()!.sub);
    expect(await sessionsOf(tokens.claims()!.sub)).toEqual([]);
  });

  it("says that sign-out in the app's ui_locales, which the browser's language gives way to", async () => {
    const { person: first } = await signUpAt(rp);
    const { person: second } = await signUpAt(rp);
    first.browser.headers['accept-language'] = 'de';
    const pending = await beginLogin(rp, 'openid', { prompt: 'login', ui_locales: 'es' });
    const login = await first.open(pending.url);
    expect(login.text).toContain('<html lang="es">');
    const uid = uidOf(login.url)!;
    const options = await first.browser.postJson(`/interaction/${uid}/login/options`, login.csrf(), {});
    const assertion = await second.authenticator.getAssertion(options.json(), first.browser.origin);
    const verified = await first.browser.postJson(
      `/interaction/${uid}/login/verify`,
      login.csrf(),
      assertion,
    );
    const signOut = await first.browser.request(verified.json<{ redirect: string }>().redirect);
    expect(signOut.status).toBe(200);
    expect(signOut.text).toContain('<html lang="es">');
    expect(signOut.text).toContain('<input type="hidden" name="ui_locales" value="es">');
  });

  it('lets a first-party app skip the consent page', async () => {
    const firstParty = await registerRp({ first_party: true });
    const person = new Person(sesame.baseUrl);
    const pending = await beginLogin(firstParty);
    const next = await person.signUp(await person.open(pending.url), newEmail());
    // Straight from the passkey to the app's callback, no page in between.
    const callback = stoppedAt(await person.browser.follow(next, (u) => u.startsWith(REDIRECT_URI)));
    const tokens = await finishLogin(firstParty, pending, callback);
    expect(tokens.claims()!.email).toEqual(expect.stringContaining('@example.com'));
  });

  it('gives a first-party app what it asks for later in the same session, without a consent page', async () => {
    const firstParty = await registerRp({ first_party: true });
    const person = new Person(sesame.baseUrl);
    const first = await beginLogin(firstParty, 'openid');
    const next = await person.signUp(await person.open(first.url), newEmail());
    await finishLogin(
      firstParty,
      first,
      stoppedAt(await person.browser.follow(next, (u) => u.startsWith(REDIRECT_URI))),
    );
    // The session's grant holds only openid; it was the answer to this request, with the
    // consent page (or consent_required under prompt=none) for an app that never shows one.
    for (const extra of [{ prompt: 'none' }, {}] as Record<string, string>[]) {
      const more = await beginLogin(firstParty, 'openid email', extra);
      const callback = stoppedAt(await person.browser.follow(more.url, (u) => u.startsWith(REDIRECT_URI)));
      expect(new URL(callback).searchParams.get('error')).toBeNull();
      const tokens = await finishLogin(firstParty, more, callback);
      expect(tokens.claims()!.email).toEqual(expect.stringContaining('@example.com'));
    }
  });

  it('returns access_denied to the app when the person presses Deny', async () => {
    const person = new Person(sesame.baseUrl);
    const pending = await beginLogin(rp);
    const next = await person.signUp(await person.open(pending.url), newEmail());
    const callback = await person.continueToApp(next, REDIRECT_URI, 'deny');

    const params = new URL(callback).searchParams;
    expect(params.get('error')).toBe('access_denied');
    expect(params.get('code')).toBeNull();
    expect(params.get('state')).toBe(pending.state);
    await expect(finishLogin(rp, pending, callback)).rejects.toMatchObject({ error: 'access_denied' });
  });

  it('remembers an allowed grant: the next sign-in goes to the app without asking again', async () => {
    const { person, tokens } = await signUpAt(rp);
    // prompt=login: the person proves their passkey again, but consent is not asked again.
    const pending = await beginLogin(rp, undefined, { prompt: 'login' });
    const loginPage = await person.open(pending.url);
    expect(loginPage.text).toContain('Sign in with a passkey');
    const next = await person.signIn(loginPage);
    const callback = stoppedAt(await person.browser.follow(next, (u) => u.startsWith(REDIRECT_URI)));
    const again = await finishLogin(rp, pending, callback);
    expect(again.claims()!.sub).toBe(tokens.claims()!.sub);
  });

  it('asks for consent again when the app asks for more than was allowed', async () => {
    const { person } = await signUpAt(rp, 'openid');
    const pending = await beginLogin(rp, 'openid email');
    const page = await person.open(pending.url);
    expect(page.text).toContain('>Allow<');
    expect(page.text).toContain('See your email address');
  });

  describe('consent given in one browser', () => {
    const grantsOf = async (accountId: string, clientId: string) =>
      sesame.db
        .selectFrom('oidc_models')
        .select('id')
        .where('model', '=', 'Grant')
        .where(sql<string>`payload->>'accountId'`, '=', accountId)
        .where(sql<string>`payload->>'clientId'`, '=', clientId)
        .execute();

    /** Signs the person in at `app` in their current browser; returns where Sesame sends them after the passkey. */
    async function signInAgain(person: Person, scope: string) {
      const pending = await beginLogin(rp, scope);
      const loginPage = await person.open(pending.url);
      expect(loginPage.text).toContain('Sign in with a passkey');
      return { pending, after: await person.browser.follow(await person.signIn(loginPage), atApp) };
    }

    it('is not asked again in another browser, which gets a copy of the grant', async () => {
      const { person, tokens } = await signUpAt(rp, 'openid email');
      const sub = tokens.claims()!.sub;
      const clientId = rp.config.clientMetadata().client_id;
      expect(await grantsOf(sub, clientId)).toHaveLength(1);

      const laptop = person.inNewBrowser();
      const { pending, after } = await signInAgain(laptop, 'openid email');
      // No consent page: straight from the passkey to the app.
      const again = await finishLogin(rp, pending, stoppedAt(after));
      expect(again.claims()).toMatchObject({ sub, email: expect.stringContaining('@example.com') });
      expect(await grantsOf(sub, clientId)).toHaveLength(2);

      // Signing out there revokes only that browser's grant: the first browser's tokens still work.
      const endSession = oidc.buildEndSessionUrl(rp.config, {
        id_token_hint: again.id_token!,
        post_logout_redirect_uri: LOGGED_OUT_URI,
      });
      const confirm = await laptop.browser.request(endSession.toString());
      const form = /<form[^>]*action="([^"]+)"[^>]*>[\s\S]*?name="xsrf" value="([^"]+)"/.exec(confirm.text)!;
      await laptop.browser.request(form[1]!, { form: { xsrf: form[2]!, logout: 'yes' } });
      expect(await grantsOf(sub, clientId)).toHaveLength(1);
      expect((await oidc.fetchUserInfo(rp.config, tokens.access_token, sub)).sub).toBe(sub);
    });

    it('is asked again in another browser for scopes it did not cover', async () => {
      const { person } = await signUpAt(rp, 'openid');
      const { after } = await signInAgain(person.inNewBrowser(), 'openid email');
      expect('stoppedAt' in after).toBe(false);
      const page = after as Awaited<ReturnType<Person['open']>>;
      expect(page.text).toContain('>Allow<');
      expect(page.text).toContain('See your email address');
    });

    it('is asked again in a new browser once the person revoked the app', async () => {
      const { person, tokens } = await signUpAt(rp, 'openid email');
      const clientId = rp.config.clientMetadata().client_id;
      const account = await person.browser.request('/account');
      const revoked = await person.browser.request(`/account/apps/${clientId}/revoke`, {
        form: { _csrf: account.csrf() },
      });
      expect(revoked.status).toBe(303);
      expect(await grantsOf(tokens.claims()!.sub, clientId)).toHaveLength(0);

      const { after } = await signInAgain(person.inNewBrowser(), 'openid email');
      expect('stoppedAt' in after).toBe(false);
      expect((after as Awaited<ReturnType<Person['open']>>).text).toContain('>Allow<');
    });
  });

  it('shows a clear error page, not a stack trace, for an unknown interaction', async () => {
    const person = new Person(sesame.baseUrl);
    const page = await person.browser.request(`/interaction/${randomBytes(16).toString('base64url')}`);
    expect(page.status).toBe(400);
    expect(page.headers.get('content-type')).toMatch(/text\/html/);
    expect(page.text).toContain('This sign-in has expired');
    expect(page.text).not.toMatch(/\n\s+at |Error:/);
  });

  /** Ends the sign-in `uid` a second ago, as its half hour running out does. */
  const endSignIn = (uid: string) =>
    sesame.db
      .updateTable('oidc_models')
      .set({ expires_at: sql<Date>`now() - interval '1 second'` })
      .where('model', '=', 'Interaction')
      .where('id', '=', storedId('Interaction', uid))
      .execute();

  it('shows a clear error page for an expired interaction, and its ceremonies are refused', async () => {
    const person = new Person(sesame.baseUrl);
    const loginPage = await person.open((await beginLogin(rp)).url);
    const uid = uidOf(loginPage.url)!;
    await endSignIn(uid);

    const page = await person.browser.request(`/interaction/${uid}`);
    expect(page.status).toBe(400);
    expect(page.text).toContain('This sign-in has expired');
    expect(page.text).not.toMatch(/\n\s+at |Error:/);
    // Sesame still knows the app: the page links to its site, the origin of its redirect URI.
    expect(page.text).toContain('<a href="http://127.0.0.1:8902/">Back to Notes</a>');
    const options = await person.browser.postJson(`/interaction/${uid}/login/options`, loginPage.csrf(), {});
    expect(options.status).toBe(400);
    expect(options.json().error).toBe('interaction_expired');
  });

  it('says a sign-in expired, with the way back to its app, when the return to the app comes after its end', async () => {
    const { person } = await signUpAt(rp);
    const again = await beginLogin(rp, 'openid', { prompt: 'login' });
    const loginPage = await person.open(again.url);
    const uid = uidOf(loginPage.url)!;
    // The passkey is accepted as the sign-in's half hour ends: its return to the app comes after.
    const resume = await person.signIn(loginPage);
    expect(resume).toBe(`${sesame.baseUrl}/auth/${uid}`);
    await endSignIn(uid);
    const expectExpiredPage = (page: PageResponse) => {
      expect(page.status).toBe(400);
      expect(page.text).toContain('This sign-in has expired');
      expect(page.text).toContain('<a href="http://127.0.0.1:8902/">Back to Notes</a>');
      expect(page.text).not.toContain('interaction session not found');
    };
    // A browser whose clock is behind still sends the sign-in's cookie, which ends with it.
    expectExpiredPage(await person.browser.request(resume));
    const resumeCookie = cookieNames(sesame.config).resume;
    await person.browser.jar.setCookie(
      `${resumeCookie}=; Path=/auth/${uid}; Expires=Thu, 01 Jan 1970 00:00:00 GMT`,
      `${sesame.baseUrl}/auth/${uid}`,
    );
    await person.browser.jar.setCookie(
      `${resumeCookie}.sig=; Path=/auth/${uid}; Expires=Thu, 01 Jan 1970 00:00:00 GMT`,
      `${sesame.baseUrl}/auth/${uid}`,
    );
    expectExpiredPage(await person.browser.request(resume));
  });

  /** The way back an expired sign-in's page offers, as [address, words]; undefined when it offers none. */
  function wayBackOn(page: PageResponse) {
    expect(page.status).toBe(400);
    expect(page.text).toContain('This sign-in has expired');
    return /<p><a href="([^"]*)">([^<]*)<\/a><\/p>/.exec(page.text)?.slice(1);
  }

  it("links an expired sign-in back to its app only while the sign-in is kept and the app's URI registered", async () => {
    /** Opens a sign-in at `app` (Sesame's account page without one); returns its uid. */
    async function openSignIn(app?: TestRp) {
      const person = new Person(sesame.baseUrl);
      const page = app
        ? await person.open((await beginLogin(app)).url)
        : asPage(await person.browser.follow('/account'));
      return uidOf(page.url)!;
    }
    /** Moves the sign-in's end `minutes` into the past; returns the way back its page links to. */
    async function wayBack(uid: string, minutes: number) {
      await sesame.db
        .updateTable('oidc_models')
        .set({ expires_at: sql<Date>`now() - make_interval(mins => ${minutes})` })
        .where('model', '=', 'Interaction')
        .where('id', '=', storedId('Interaction', uid))
        .execute();
      // The browser's interaction cookie ends with the sign-in: only the address is left.
      return wayBackOn(await new Person(sesame.baseUrl).browser.request(`/interaction/${uid}`));
    }

    expect(await wayBack(await openSignIn(rp), 1)).toEqual(['http://127.0.0.1:8902/', 'Back to Notes']);
    // Past the time it is kept (the cleanup's to delete), nothing says which app it was.
    expect(await wayBack(await openSignIn(rp), 31)).toBeUndefined();
    // Sesame's own account page is its own way back.
    expect(await wayBack(await openSignIn(), 1)).toEqual(['/account', 'Go to your account']);

    // An app that no longer has the sign-in's redirect URI gets no link to it.
    const moving = await registerRp({ name: 'Moving' });
    const uid = await openSignIn(moving);
    await updateClient(
      sesame.db,
      moving.config.clientMetadata().client_id,
      { redirect_uris: ['https://moved.example/callback'] },
      'test',
    );
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(await wayBack(uid, 1)).toBeUndefined();
  });

  /** The way back to the test app. */
  const notes = ['http://127.0.0.1:8902/', 'Back to Notes'];

  /**
   * Signs a new person up at the test app through its login page and consent page, pressing
   * Allow on a first tab of the consent page; returns the browser, both sign-ins' uids, and
   * the consent form a second tab would send.
   */
  async function signUpThroughConsent(beforeAllow?: (person: Person, loginUid: string) => Promise<void>) {
    const person = new Person(sesame.baseUrl);
    const pending = await beginLogin(rp);
    const loginPage = await person.open(pending.url);
    const loginUid = uidOf(loginPage.url)!;
    const consent = asPage(await person.browser.follow(await person.signUp(loginPage, newEmail())));
    expect(consent.text).toContain('>Allow<');
    await beforeAllow?.(person, loginUid);
    const allow = { form: { _csrf: consent.csrf(), decision: 'allow' } };
    const consentUid = uidOf(consent.url)!;
    const allowed = await person.browser.request(`/interaction/${consentUid}/consent`, allow);
    await finishLogin(rp, pending, stoppedAt(await person.browser.follow(allowed.location()!, atApp)));
    return { person, loginUid, consentUid, allow };
  }

  it('links the pages of a finished sign-in, come Back to or sent again, to its app', async () => {
    // Back from the consent page to the login page and the sign-up page: that sign-in is gone.
    const { person, loginUid, consentUid, allow } = await signUpThroughConsent(async (at, uid) => {
      expect(wayBackOn(await at.browser.request(`/interaction/${uid}`))).toEqual(notes);
      expect(wayBackOn(await at.browser.request(`/interaction/${uid}/signup`))).toEqual(notes);
    });
    // Back from the app to the consent page.
    expect(wayBackOn(await person.browser.request(`/interaction/${consentUid}`))).toEqual(notes);
    // The Allow of a second tab of the consent page, after the first one's.
    const second = await person.browser.request(`/interaction/${consentUid}/consent`, allow);
    expect(wayBackOn(second)).toEqual(notes);
    // One cookie for every sign-in's pages, the last return's: the login page, two steps Back,
    // is told it expired, without the link (a cookie per sign-in would pile up in the browser).
    const held = await person.browser.jar.getCookies(`${sesame.baseUrl}/interaction/${loginUid}`);
    const finished = held.filter((c) => c.key.startsWith(cookieNames(sesame.config).finishedSignIn));
    expect(finished.map((c) => c.path)).toEqual(['/interaction', '/interaction']);
    expect(wayBackOn(await person.browser.request(`/interaction/${loginUid}`))).toBeUndefined();
    // The page's script asks for JSON: it is told the sign-in expired, and reloads the page.
    const options = await person.browser.postJson(
      `/interaction/${loginUid}/login/options`,
      allow.form._csrf,
      {},
    );
    expect(options.status).toBe(400);
    expect(options.json().error).toBe('interaction_expired');
  });

  it("links a finished sign-in's pages to its app only by this browser's signed cookie for that sign-in", async () => {
    const { person, consentUid: finishedUid } = await signUpThroughConsent();
    const name = cookieNames(sesame.config).finishedSignIn;
    const at = (uid: string) => `${sesame.baseUrl}/interaction/${uid}`;
    const held = await person.browser.jar.getCookies(at(finishedUid));
    const cookie = held.find((c) => c.key === name)!.value;
    const signature = held.find((c) => c.key === `${name}.sig`)!.value;
    // The app and the origin of its redirect URI, not the URI itself: the return's response
    // carries that already, in its Location.
    const [, , client, origin] = cookie.split('.');
    expect(Buffer.from(client!, 'base64url').toString()).toBe(rp.config.clientMetadata().client_id);
    expect(Buffer.from(origin!, 'base64url').toString()).toBe('http://127.0.0.1:8902');
    // The browser drops it a day later: a day's sign-ins leave no pile of cookies behind.
    const expires = held.find((c) => c.key === name)!.expires as Date;
    expect(expires.getTime() - Date.now()).toBeGreaterThan(86_000_000);
    expect(expires.getTime() - Date.now()).toBeLessThanOrEqual(86_400_000);
    /** The way back the page of the sign-in `uid` offers a new browser holding `value` and `sig` there. */
    async function wayBackWith(uid: string, value: string, sig?: string) {
      const browser = new Person(sesame.baseUrl).browser;
      await browser.jar.setCookie(`${name}=${value}; Path=/interaction/${uid}; HttpOnly`, at(uid));
      if (sig !== undefined)
        await browser.jar.setCookie(`${name}.sig=${sig}; Path=/interaction/${uid}; HttpOnly`, at(uid));
      return wayBackOn(await browser.request(`/interaction/${uid}`));
    }

    expect(await wayBackWith(finishedUid, cookie, signature)).toEqual(notes);
    // Without the cookie, or with it unsigned or its signature one character off: no link.
    expect(
      wayBackOn(await new Person(sesame.baseUrl).browser.request(`/interaction/${finishedUid}`)),
    ).toBeUndefined();
    expect(await wayBackWith(finishedUid, cookie)).toBeUndefined();
    const last = signature.at(-1) === 'A' ? 'B' : 'A';
    expect(await wayBackWith(finishedUid, cookie, `${signature.slice(0, -1)}${last}`)).toBeUndefined();
    // The cookie of this sign-in, put on the path of another: it names this one, not that.
    expect(await wayBackWith(randomBytes(16).toString('base64url'), cookie, signature)).toBeUndefined();

    // Signed as Sesame signs, it links only within the half hour after the sign-in finished.
    const { keys } = await loadCookieKeys(sesame.db, sesame.config);
    const [uid, , ...app] = cookie.split('.');
    const finishedAgo = (minutes: number) => {
      const value = [uid, (Date.now() - minutes * 60_000).toString(36), ...app].join('.');
      return [value, new Keygrip(keys).sign(`${name}=${value}`)] as const;
    };
    expect(await wayBackWith(finishedUid, ...finishedAgo(29))).toEqual(notes);
    expect(await wayBackWith(finishedUid, ...finishedAgo(31))).toBeUndefined();

    // The app's site is linked only while the app has a redirect URI there: moved to another
    // site since, it gets no link to the old one; with one there again among others, it does.
    const clientId = rp.config.clientMetadata().client_id;
    const redirectTo = async (uris: string[]) => {
      await updateClient(sesame.db, clientId, { redirect_uris: uris }, 'test');
      // Every instance hears of the change (here: this one's client cache).
      await new Promise((resolve) => setTimeout(resolve, 300));
    };
    try {
      await redirectTo(['https://moved.example/callback']);
      expect(await wayBackWith(finishedUid, cookie, signature)).toBeUndefined();
      await redirectTo(['https://moved.example/callback', `${REDIRECT_URI}/elsewhere`]);
      expect(await wayBackWith(finishedUid, cookie, signature)).toEqual(notes);
    } finally {
      await redirectTo([REDIRECT_URI]);
    }
  });
});
