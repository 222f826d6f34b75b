import { sql } from 'kysely';
import type { Page } from 'playwright-core';
import { interactionBinding, storedId } from '../../src/oidc/storedIds.js';
import { browserScenario, type Device } from '../support/browserScenario.js';
import {
  copyCredentials,
  describeBrowser,
  openWithAutofillWaiting,
  type PasskeyRequest,
  waitForPasskeyRequests,
} from '../support/chromium.js';

describeBrowser('passkey sign-up and sign-in in Chromium', () => {
  // No step of a passkey flow on this machine takes seconds; a stuck one should fail fast.
  const scenario = browserScenario({ stepTimeout: 8_000, app: true });
  const device = () => scenario.device();
  /** Grace signs up on her laptop in the first test; later tests sign her in on other devices. */
  let graceSub: string;
  /**
   * The device that used Grace's passkey last. A copy must come from it: the virtual
   * authenticator counts signatures, and a copy with an older count is refused as a clone
   * (WebAuthn L3 §6.1.1). Real synced passkeys report no counter.
   */
  let graceDevice: Device;

  const count = (mediation: string, outcome?: string) => (requests: PasskeyRequest[]) =>
    requests.filter((r) => r.mediation === mediation && (!outcome || r.outcome === outcome)).length;
  const settled = (requests: PasskeyRequest[]) => requests.every((r) => r.outcome !== 'pending');

  /** Another device with Grace's passkey synced to it; it becomes the one that used it last. */
  async function deviceWithGracesPasskey() {
    const passkeys = await device();
    const copied = await copyCredentials(
      graceDevice.cdp,
      graceDevice.authenticatorId,
      passkeys.cdp,
      passkeys.authenticatorId,
    );
    expect(copied).toBe(1);
    graceDevice = passkeys;
    return passkeys;
  }

  /** Ends the sign-in `uid` half an hour later, as far as Sesame is concerned. */
  async function expireInteraction(uid: string) {
    await scenario.sesame.db
      .updateTable('oidc_models')
      .set({ expires_at: sql<Date>`now() - interval '1 minute'` })
      .where('model', '=', 'Interaction')
      .where('id', '=', storedId('Interaction', uid))
      .execute();
  }

  const signInButton = (page: Page) => page.getByRole('button', { name: 'Sign in with a passkey' });
  const textOf = (page: Page, selector: string) => page.locator(selector).textContent();

  /** Waits for the page's status box (role=alert) to show, and returns its message. */
  async function alertText(page: Page): Promise<string> {
    const alert = page.getByRole('alert');
    await alert.waitFor({ state: 'visible' });
    return (await alert.textContent()) ?? '';
  }

  it('signs a new person up with a passkey, asks consent, and the app verifies the tokens', async () => {
    graceDevice = await device();
    const { page } = graceDevice;
    await page.goto(scenario.app.loginUrl);
    await signInButton(page).waitFor();
    await page.screenshot({ path: '/tmp/sesame-login.png' });

    await page.getByRole('link', { name: 'Create an account' }).click();
    await page.getByLabel('Email').fill('grace@example.com');
    await page.getByLabel('Name').fill('Grace Hopper');
    await page.screenshot({ path: '/tmp/sesame-signup.png' });
    await page.getByRole('button', { name: 'Create account' }).click();

    await page.getByRole('button', { name: 'Allow' }).waitFor();
    await page.screenshot({ path: '/tmp/sesame-consent.png' });
    await page.getByRole('button', { name: 'Allow' }).click();

    await page.waitForURL((url) => url.href.startsWith(scenario.app.redirectUri));
    const signIn = scenario.app.lastSignIn!;
    graceSub = signIn.claims.sub;
    expect(signIn.claims.email).toBe('grace@example.com');
    expect(signIn.userinfo).toMatchObject({
      sub: signIn.claims.sub,
      email: 'grace@example.com',
      name: 'Grace Hopper',
    });
    expect(await textOf(page, '#sub')).toBe(signIn.claims.sub);
    expect(await textOf(page, '#email')).toBe('grace@example.com');
    expect(signIn.claims.amr).toEqual(expect.arrayContaining(['user', 'mfa']));
  });

  it('signs in on a second device with "Sign in with a passkey", aborting the waiting autofill request', async () => {
    const phone = await deviceWithGracesPasskey();
    const { page, requests } = phone;
    // The autofill request waits, as it does until a person picks from the list.
    await openWithAutofillWaiting(phone, scenario.app.loginUrl, {
      retryUrl: `${scenario.app.loginUrl}?prompt=login`,
      requests,
    });

    await signInButton(page).click();
    await scenario.reachApp(page);
    expect(scenario.app.lastSignIn!.claims.sub).toBe(graceSub);
    expect(await textOf(page, '#sub')).toBe(graceSub);
    // The button aborted the waiting autofill request and ran its own (modal) one.
    expect(requests.map(({ mediation, outcome }) => ({ mediation, outcome }))).toEqual([
      { mediation: 'conditional', outcome: 'AbortError' },
      { mediation: 'optional', outcome: 'resolved' },
    ]);
  });

  it('signs in through passkey autofill when the person picks their passkey there', async () => {
    const tablet = await deviceWithGracesPasskey();
    const { page, requests } = tablet;
    const optionsAsked: string[] = [];
    page.on('request', (request) => {
      if (request.url().includes('/login/options')) optionsAsked.push(request.url());
    });
    await page.goto(scenario.app.loginUrl);
    // The virtual authenticator answers the autofill request at once, as a person's pick would.
    await scenario.reachApp(page);
    // With the options the login page came with: no request for them.
    expect(optionsAsked).toEqual([]);
    expect(scenario.app.lastSignIn!.claims.sub).toBe(graceSub);
    expect(requests.map(({ mediation, outcome }) => ({ mediation, outcome }))).toEqual([
      { mediation: 'conditional', outcome: 'resolved' },
    ]);
  });

  /**
   * Opens the login page on a device with Grace's passkey, its autofill request waiting on a
   * clock the test moves (the context's: page.clock), and records the page's requests for
   * new options. Presence is back on: a request made from now on is answered at once.
   */
  async function loginPageLeftOpen() {
    const laptop = await deviceWithGracesPasskey();
    const optionsAsked: string[] = [];
    laptop.page.on('request', (request) => {
      if (request.url().includes('/login/options')) optionsAsked.push(request.url());
    });
    await laptop.page.clock.install();
    await openWithAutofillWaiting(laptop, scenario.app.loginUrl, {
      retryUrl: `${scenario.app.loginUrl}?prompt=login`,
      requests: laptop.requests,
    });
    const uid = /\/interaction\/([^/?#]+)/.exec(laptop.page.url())![1]!;
    return { ...laptop, optionsAsked, uid };
  }

  it('renews a waiting autofill request before its challenge ends, so a passkey picked later still signs in', async () => {
    const { page, requests, optionsAsked, uid } = await loginPageLeftOpen();
    // Four minutes on, the page's request still waits with the options it came with.
    await page.clock.fastForward('04:00');
    await page.waitForTimeout(300);
    expect(optionsAsked).toEqual([]);
    expect(requests.map(({ outcome }) => outcome)).toEqual(['pending']);
    // Then the challenge it came with ends, as far as Sesame is concerned.
    const ended = await scenario.sesame.db
      .updateTable('webauthn_challenges')
      .set({ expires_at: sql<Date>`now() - interval '1 second'` })
      .where('purpose', '=', 'login')
      .where('binding', '=', interactionBinding(uid))
      .executeTakeFirst();
    expect(ended.numUpdatedRows).toBe(1n);

    // Shortly before it ends on the page's clock, the page cancels the request and makes it
    // again with new options; the authenticator answers that one, as the person's pick.
    await page.clock.fastForward('00:31');
    await waitForPasskeyRequests(requests, (r) => count('conditional')(r) === 2);
    await scenario.reachApp(page);
    expect(scenario.app.lastSignIn!.claims.sub).toBe(graceSub);
    expect(optionsAsked).toHaveLength(1);
    expect(requests.map(({ mediation, outcome }) => ({ mediation, outcome }))).toEqual([
      { mediation: 'conditional', outcome: 'AbortError' },
      { mediation: 'conditional', outcome: 'resolved' },
    ]);
  });

  it('asks again later, quietly, when a renewal could not get new options, and signs in with them', async () => {
    const { page, requests, optionsAsked } = await loginPageLeftOpen();
    // The laptop slept: its network is not back when the renewal asks for options.
    await page.context().setOffline(true);
    await page.clock.fastForward('04:31');
    await waitForPasskeyRequests(requests, (r) => r.length === 1 && r[0]!.outcome === 'AbortError');
    await page.waitForTimeout(300);
    expect(optionsAsked).toHaveLength(1);
    // Nobody asked for anything: nothing is shown.
    expect(await page.getByRole('alert').isVisible()).toBe(false);
    // Back online, the next try gets them, and the person's pick signs in.
    await page.context().setOffline(false);
    await page.clock.fastForward('00:31');
    await waitForPasskeyRequests(requests, (r) => count('conditional')(r) === 2);
    await scenario.reachApp(page);
    expect(scenario.app.lastSignIn!.claims.sub).toBe(graceSub);
    expect(optionsAsked).toHaveLength(2);
  });

  it("shows the expired sign-in's page, once, when the autofill request is renewed after the sign-in expired", async () => {
    const { page, requests, optionsAsked, uid } = await loginPageLeftOpen();
    await expireInteraction(uid);

    await page.clock.fastForward('04:31');
    // The new options are refused: the page reloads into the expired sign-in's page, which
    // links back to the app and offers no autofill, so nothing more is asked.
    const back = page.getByRole('link', { name: 'Back to Notes' });
    await back.waitFor();
    expect(await page.locator('main').textContent()).toContain('This sign-in has expired');
    await page.clock.fastForward('10:00');
    await page.waitForTimeout(300);
    expect(optionsAsked).toHaveLength(1);
    expect(requests.map(({ mediation, outcome }) => ({ mediation, outcome }))).toEqual([
      { mediation: 'conditional', outcome: 'AbortError' },
    ]);
  });

  it('shows why a passkey request failed and lets the person try again', async () => {
    const phone = await device();
    const { page, cdp, authenticatorId, requests } = phone;

    // Sign-up: the biometric check fails, the page says so, and the next attempt works.
    await page.goto(scenario.app.loginUrl);
    await page.getByRole('link', { name: 'Create an account' }).click();
    await page.getByLabel('Email').fill('linus@example.com');
    await cdp.send('WebAuthn.setUserVerified', { authenticatorId, isUserVerified: false });
    // From the keyboard: the button has the focus and Enter presses it.
    await page.getByRole('button', { name: 'Create account' }).focus();
    await page.keyboard.press('Enter');
    expect(await alertText(page)).toContain('cancelled or timed out');
    expect(await page.getByRole('button', { name: 'Create account' }).isEnabled()).toBe(true);
    // The button, disabled while the request ran, has the focus again (not the page's body),
    // so Enter tries again.
    await page.waitForFunction(() => document.activeElement?.matches('#signup-form button[type=submit]'));
    await cdp.send('WebAuthn.setUserVerified', { authenticatorId, isUserVerified: true });
    await page.keyboard.press('Enter');
    await scenario.reachApp(page);
    const linus = scenario.app.lastSignIn!.claims;
    expect(linus.email).toBe('linus@example.com');
    expect(linus.sub).not.toBe(graceSub);

    // Sign-in (prompt=login): the check fails, then works.
    await openWithAutofillWaiting(phone, `${scenario.app.loginUrl}?prompt=login`, { requests });
    await cdp.send('WebAuthn.setUserVerified', { authenticatorId, isUserVerified: false });
    await signInButton(page).click();
    expect(await alertText(page)).toContain('cancelled or timed out');
    expect(await signInButton(page).isEnabled()).toBe(true);
    // A double click on the button after the error: the message's box keeps its place while
    // the attempt runs, so the second click lands on the button too, not on the link below.
    await waitForPasskeyRequests(requests, (r) => count('conditional')(r) === 2);
    const loginPage = page.url();
    await signInButton(page).dblclick();
    expect(await alertText(page)).toContain('cancelled or timed out');
    expect(page.url()).toBe(loginPage);
    // The page offers autofill again; let that request start before the person retries.
    await waitForPasskeyRequests(requests, (r) => count('conditional')(r) === 3);
    await cdp.send('WebAuthn.setUserVerified', { authenticatorId, isUserVerified: true });
    await signInButton(page).click();
    await scenario.reachApp(page);
    expect(scenario.app.lastSignIn!.claims.sub).toBe(linus.sub);
  });

  it('sends a person whose sign-in expired on the open page back to the app, from the passkey button', async () => {
    const phone = await deviceWithGracesPasskey();
    const { page, requests } = phone;
    await openWithAutofillWaiting(phone, scenario.app.loginUrl, { requests });
    await expireInteraction(/\/interaction\/([^/?#]+)/.exec(page.url())![1]!);

    await signInButton(page).click();
    // The page reloads into the expired sign-in's page, which links back to the app's site.
    const back = page.getByRole('link', { name: 'Back to Notes' });
    await back.waitFor();
    expect(await page.locator('main').textContent()).toContain('This sign-in has expired');
    expect(await back.getAttribute('href')).toBe(`${new URL(scenario.app.redirectUri).origin}/`);
  });

  it('sends a person who comes Back from the app to the finished sign-in back to the app', async () => {
    const { page } = await deviceWithGracesPasskey();
    await page.goto(scenario.app.loginUrl);
    const loginPage = page.url();
    await scenario.reachApp(page);
    // Back to the login page: its sign-in is over, and the page links back to the app's site.
    await page.goBack();
    expect(page.url()).toBe(loginPage);
    const back = page.getByRole('link', { name: 'Back to Notes' });
    await back.waitFor();
    expect(await page.locator('main').textContent()).toContain('This sign-in has expired');
    expect(await back.getAttribute('href')).toBe(`${new URL(scenario.app.redirectUri).origin}/`);
  });

  it('tells a person whose device lost the passkey that it failed, then signs in once it is back', async () => {
    const phone = await deviceWithGracesPasskey();
    const { page, cdp, authenticatorId, requests } = phone;
    const { credentials } = await cdp.send('WebAuthn.getCredentials', { authenticatorId });
    await cdp.send('WebAuthn.clearCredentials', { authenticatorId });

    await page.goto(scenario.app.loginUrl);
    await waitForPasskeyRequests(requests, (r) => count('conditional')(r) === 1 && settled(r));
    // Autofill with nothing to offer is not an error the person needs to see.
    expect(await page.getByRole('alert').isVisible()).toBe(false);
    await signInButton(page).click();
    expect(await alertText(page)).toContain('try again');
    // The autofill request the page offers again has nothing to offer either.
    await waitForPasskeyRequests(requests, (r) => count('conditional')(r) === 2 && settled(r));
    expect(requests.map(({ mediation, outcome }) => ({ mediation, outcome }))).toEqual([
      { mediation: 'conditional', outcome: 'NotAllowedError' },
      { mediation: 'optional', outcome: 'NotAllowedError' },
      { mediation: 'conditional', outcome: 'NotAllowedError' },
    ]);

    for (const credential of credentials) {
      await cdp.send('WebAuthn.addCredential', { authenticatorId, credential });
    }
    await signInButton(page).click();
    await scenario.reachApp(page);
    expect(scenario.app.lastSignIn!.claims.sub).toBe(graceSub);
  });
});
