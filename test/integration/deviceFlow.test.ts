import { sql } from 'kysely';
import * as oidc from 'openid-client';
import { cookieNames } from '../../src/cookieNames.js';
import { createClient, DEVICE_CODE_GRANT, updateClient } from '../../src/oidc/clients.js';
import { OPENID_SCOPE_REQUIRED } from '../../src/oidc/restatedErrors.js';
import { storedId } from '../../src/oidc/storedIds.js';
import { asPage, type PageResponse } from '../support/browser.js';
import { countRows } from '../support/countRows.js';
import { noticesHeard } from '../support/noticesHeard.js';
import { Person } from '../support/oidcFlow.js';
import { autofocusedField } from '../support/refusedFields.js';
import { cliJsonOn } from '../support/sesameProcess.js';
import { type SecondInstance, startSecondInstance, startTestApp, type TestApp } from '../support/testApp.js';
import { onPostgres } from '../support/testDatabase.js';

/** One poll of the token endpoint for a device code, as a device sends it: the status and the error, if any. */
async function pollToken(baseUrl: string, clientId: string, deviceCode: string) {
  const response = await fetch(`${baseUrl}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: DEVICE_CODE_GRANT,
      device_code: deviceCode,
      client_id: clientId,
    }),
  });
  return { status: response.status, error: ((await response.json()) as { error?: string }).error };
}
const pending = { status: 400, error: 'authorization_pending' };

/**
 * Moves the stamp of a device code's last poll `seconds` into the past, as if the device had
 * waited that long since it (the database's clock judges polls; the test need not wait).
 */
async function lastPolledAgo(sesame: TestApp, deviceCode: string, seconds: number): Promise<void> {
  await sql`
    update oidc_models set payload = jsonb_set(payload, '{polledAt}',
      to_jsonb(extract(epoch from now())::double precision - ${seconds}::double precision))
    where model = 'DeviceCode' and id = ${deviceCode}`.execute(sesame.db);
}
const slowDown = { status: 400, error: 'slow_down' };

/**
 * The device authorization grant (RFC 8628), driven as a TV app built on openid-client would
 * drive it, while a person at a computer signs in with a passkey at ISSUER/device.
 */
describe('sign-in on a device without a browser', () => {
  let sesame: TestApp;
  let tv: oidc.Configuration;

  beforeAll(async () => {
    sesame = await startTestApp();
    const { client } = await createClient(
      sesame.db,
      { name: 'Living Room TV', public: true, grant_types: [DEVICE_CODE_GRANT, 'refresh_token'] },
      'test',
    );
    tv = await discover(client.client_id);
  });

  afterAll(() => sesame?.stop());

  const discover = (clientId: string) =>
    oidc.discovery(new URL(sesame.baseUrl), clientId, undefined, oidc.None(), {
      execute: [oidc.allowInsecureRequests, oidc.enableNonRepudiationChecks],
    });

  /**
   * Polls as the device does, every 200 ms rather than the 5 s Sesame asks, so the test stays
   * quick: Sesame answers the second poll of a pending code `slow_down`, and openid-client then
   * waits 5 s more, so tests that need no pending poll poll once the person is done.
   */
  const poll = (config: oidc.Configuration, started: oidc.DeviceAuthorizationResponse) =>
    oidc.pollDeviceAuthorizationGrant(config, { ...started, interval: 0.2 }).catch((error: unknown) => {
      // What the token endpoint said, for the test's expectations and for a failure's message.
      const { error: code, error_description: description } = error as Record<string, unknown>;
      throw Object.assign(new Error(`device poll refused: ${String(code)}: ${String(description)}`), {
        error: code,
        error_description: description,
      });
    });

  /** The code page's form posted with `fields`, as the person's browser does. */
  function postCode(person: Person, page: PageResponse, fields: Record<string, string>) {
    const xsrf = /name="xsrf" value="([^"]+)"/.exec(page.text)?.[1];
    if (!xsrf) throw new Error(`no device form on ${page.url}: ${page.text.slice(0, 300)}`);
    return person.browser.request('/device', { form: { xsrf, ...fields } });
  }

  /** The code's confirmation page, asking to sign the TV in. */
  function expectConfirmPage(page: PageResponse): PageResponse {
    expect(page.status).toBe(200);
    expect(page.text).toContain('Living Room TV');
    return page;
  }

  /** Types the code at ISSUER/device and confirms it; returns where Sesame sends the browser. */
  async function enterCode(person: Person, userCode: string): Promise<string> {
    const form = asPage(await person.browser.follow('/device'));
    expect(form.text).toContain('Enter the code');
    const confirm = await postCode(person, form, { user_code: userCode });
    expect(confirm.status).toBe(200);
    expect(confirm.text).toContain('Living Room TV');
    expect(confirm.text).toContain(userCode);
    // Each page holds its form's token: no cache keeps one.
    expect([form, confirm].map((page) => page.headers.get('cache-control'))).toEqual([
      'no-store',
      'no-store',
    ]);
    const next = await postCode(person, confirm, { user_code: userCode, confirm: 'yes' });
    const location = next.location();
    if (!location)
      throw new Error(`confirming the code did not redirect: ${next.status} ${next.text.slice(0, 300)}`);
    return location;
  }

  /** Follows to the consent page, answers it, and returns the page the flow ends on. */
  async function consent(person: Person, url: string, decision: 'allow' | 'deny'): Promise<PageResponse> {
    const page = asPage(await person.browser.follow(url));
    expect(page.text).toContain('>Allow<');
    const uid = /\/interaction\/([^/?#]+)/.exec(page.url)![1]!;
    const posted = await person.browser.request(`/interaction/${uid}/consent`, {
      form: { _csrf: page.csrf(), decision },
    });
    return asPage(await person.browser.follow(posted.location()!));
  }

  it('advertises the device authorization endpoint', async () => {
    const discovery = await (await fetch(`${sesame.baseUrl}/.well-known/openid-configuration`)).json();
    expect(discovery.device_authorization_endpoint).toBe(`${sesame.baseUrl}/device/auth`);
    expect(discovery.grant_types_supported).toContain(DEVICE_CODE_GRANT);
  });

  it('signs the device in once the person types its code, signs in with a passkey and allows it', async () => {
    const started = await oidc.initiateDeviceAuthorization(tv, {
      scope: 'openid email profile offline_access',
    });
    expect(started.verification_uri).toBe(`${sesame.baseUrl}/device`);
    expect(started.user_code).toMatch(/^[A-Z]{4}-[A-Z]{4}$/);
    const tokens = poll(tv, started);

    const person = new Person(sesame.baseUrl);
    const loginPage = asPage(await person.browser.follow(await enterCode(person, started.user_code)));
    expect(loginPage.text).toContain('Sign in with a passkey');
    const afterSignUp = await person.signUp(loginPage, 'tv-owner@example.com', 'Tove');
    const done = await consent(person, afterSignUp, 'allow');
    expect(done.text).toContain('Your device is signed in');
    expect(done.text).toContain('Living Room TV');

    const answer = await tokens;
    const claims = answer.claims()!;
    expect(claims).toMatchObject({ email: 'tv-owner@example.com', aud: tv.clientMetadata().client_id });
    expect(answer.refresh_token).toBeTruthy();
    const userinfo = await oidc.fetchUserInfo(tv, answer.access_token, claims.sub);
    expect(userinfo).toMatchObject({ sub: claims.sub, email: 'tv-owner@example.com', name: 'Tove' });

    // The code is used up: typed again, it signs nothing in.
    const form = asPage(await person.browser.follow('/device'));
    const again = await postCode(person, form, { user_code: started.user_code });
    expect(again.status).toBe(400);
    expect(again.text).toContain('already used');
  });

  it('takes a signed-in person from verification_uri_complete to the code check, then asks for consent though they allowed the app before', async () => {
    // The device polls once the person is done: polls of a pending code meet the interval (below).
    const person = new Person(sesame.baseUrl);
    const first = await oidc.initiateDeviceAuthorization(tv, { scope: 'openid email' });
    const loginPage = asPage(await person.browser.follow(await enterCode(person, first.user_code)));
    await consent(person, await person.signUp(loginPage, 'second-tv@example.com'), 'allow');
    await poll(tv, first);

    const second = await oidc.initiateDeviceAuthorization(tv, { scope: 'openid email' });
    // The complete URI carries the code; the page posts it back (the provider's anti-forgery step).
    // It is Sesame's code page with the code filled in, sent on by its script file (the strict
    // CSP allows no inline one), its Continue button there for a browser without scripts.
    const landing = asPage(await person.browser.follow(second.verification_uri_complete!));
    expect(landing.status).toBe(200);
    expect(landing.text).toContain('<h1>Sign in on a device</h1>');
    expect(landing.text).toMatch(/<form method="post" action="[^"]+\/device" data-submits-itself>/);
    expect(landing.text).toContain(`value="${second.user_code}">`);
    expect(landing.text).toContain('<script type="module" src="/static/js/autoSubmit.js"></script>');
    expect(landing.text).not.toMatch(/<script(?![^>]*\ssrc=)/);
    expect(landing.headers.get('content-security-policy')).not.toContain('sha256-');
    const confirm = await postCode(person, landing, { user_code: second.user_code });
    expect(confirm.text).toContain('Living Room TV');
    const next = await postCode(person, confirm, { user_code: second.user_code, confirm: 'yes' });
    // RFC 8628 §5.4: the link may be someone else's code, sent to the person to sign in their
    // device. Signed in and the app allowed before, the person still sees the consent page,
    // which names the app and what it asks for; the device gets nothing until they allow it.
    expect(next.text).not.toContain('Your device is signed in');
    const asked = asPage(await person.browser.follow(next.location()!));
    expect(asked.text).toContain('>Allow<');
    expect(asked.text).toContain('Living Room TV');
    expect(asked.text).toContain('second-tv@example.com');
    const clientId = tv.clientMetadata().client_id;
    expect(await pollToken(sesame.baseUrl, clientId, second.device_code)).toEqual(pending);
    const uid = /\/interaction\/([^/?#]+)/.exec(asked.url)![1]!;
    const posted = await person.browser.request(`/interaction/${uid}/consent`, {
      form: { _csrf: asked.csrf(), decision: 'allow' },
    });
    const done = asPage(await person.browser.follow(posted.location()!));
    expect(done.text).toContain('Your device is signed in');
    expect((await poll(tv, second)).claims()!.email).toBe('second-tv@example.com');
  });

  it('tells a device that polls a pending code sooner than the interval to slow down; an approved code is answered at once', async () => {
    const started = await oidc.initiateDeviceAuthorization(tv, { scope: 'openid email' });
    expect(started.interval).toBe(5);
    const pollOnce = () => pollToken(sesame.baseUrl, tv.clientMetadata().client_id, started.device_code);
    expect(await pollOnce()).toEqual(pending);
    const hurried = await Promise.all(Array.from({ length: 5 }, pollOnce));
    expect(hurried).toEqual(Array.from({ length: 5 }, () => slowDown));
    // Each slow_down added 5 s to the interval (5 + 5 × 5 = 30 s): 10 s after the last poll,
    // twice the first interval, is too soon and adds 5 s more; 35 s less a second's slack
    // for the network's delays is on time.
    await lastPolledAgo(sesame, started.device_code, 10);
    expect(await pollOnce()).toEqual(slowDown);
    await lastPolledAgo(sesame, started.device_code, 34.5);
    expect(await pollOnce()).toEqual(pending);
    expect(await pollOnce()).toEqual(slowDown);

    const person = new Person(sesame.baseUrl);
    const loginPage = asPage(await person.browser.follow(await enterCode(person, started.user_code)));
    await consent(person, await person.signUp(loginPage, 'hurried-tv@example.com'), 'allow');
    expect((await pollOnce()).status).toBe(200);
  }, 30_000);

  it('holds a device to its interval grown by slow_down (RFC 8628 §3.5), not to the first one', async () => {
    const started = await oidc.initiateDeviceAuthorization(tv, { scope: 'openid' });
    const pollOnce = () => pollToken(sesame.baseUrl, tv.clientMetadata().client_id, started.device_code);
    expect(await pollOnce()).toEqual(pending);
    expect(await pollOnce()).toEqual(slowDown);
    // 10 s now: a poll 6 s after the last (on time for the first 5 s) is too soon, and grows
    // it again (15 s); so is one 12 s after (20 s).
    await lastPolledAgo(sesame, started.device_code, 6);
    expect(await pollOnce()).toEqual(slowDown);
    await lastPolledAgo(sesame, started.device_code, 12);
    expect(await pollOnce()).toEqual(slowDown);
    // 20 s, a second's slack: 19 s after the last poll is on time, and the interval stays.
    await lastPolledAgo(sesame, started.device_code, 19);
    expect(await pollOnce()).toEqual(pending);
    await lastPolledAgo(sesame, started.device_code, 19.5);
    expect(await pollOnce()).toEqual(pending);
    // Real time, not a stamp moved back: the grown interval holds against an immediate poll.
    expect(await pollOnce()).toEqual(slowDown);
  });

  it('keeps the interval slow_down grew when the person confirms the code', async () => {
    const started = await oidc.initiateDeviceAuthorization(tv, { scope: 'openid' });
    const pollOnce = () => pollToken(sesame.baseUrl, tv.clientMetadata().client_id, started.device_code);
    expect(await pollOnce()).toEqual(pending);
    expect(await pollOnce()).toEqual(slowDown);
    // The provider saves the code again when the person confirms it (still to sign in): the
    // interval stays 10 s, and a poll 6 s after the last is still too soon.
    await enterCode(new Person(sesame.baseUrl), started.user_code);
    await lastPolledAgo(sesame, started.device_code, 6);
    expect(await pollOnce()).toEqual(slowDown);
    await lastPolledAgo(sesame, started.device_code, 14.5);
    expect(await pollOnce()).toEqual(pending);
  });

  it('asks for the code again, not to start over on the device, when the code page outlived its form', async () => {
    const started = await oidc.initiateDeviceAuthorization(tv, { scope: 'openid' });
    const person = new Person(sesame.baseUrl);
    const form = asPage(await person.browser.follow('/device'));
    // The form's token lives in the visitor's session, which ends half an hour after the visit.
    const session = (await person.browser.jar.getCookies(sesame.baseUrl)).find(
      (cookie) => cookie.key === cookieNames(sesame.config).session,
    )!;
    await sesame.db
      .updateTable('oidc_models')
      .set({ expires_at: sql<Date>`now() - interval '1 second'` })
      .where('model', '=', 'Session')
      .where('id', '=', storedId('Session', session.value))
      .execute();
    expect(await noticesHeard(sesame)).toBe(true);
    const stale = await postCode(person, form, { user_code: started.user_code });
    expect(stale.status).toBe(400);
    expect(stale.text).toContain('This page had expired. Enter the code your device shows again.');
    expect(stale.text).not.toContain('Start again on your device');
    // The device's code is as it was: typed again in the page now shown, it goes on.
    expectConfirmPage(await postCode(person, stale, { user_code: started.user_code }));
  });

  it('keeps the form of each /device tab of one browser working, whichever was opened last', async () => {
    const started = await oidc.initiateDeviceAuthorization(tv, { scope: 'openid' });
    const person = new Person(sesame.baseUrl);
    const first = asPage(await person.browser.follow('/device'));
    const second = asPage(await person.browser.follow('/device'));
    // The second tab's code was mistyped: its page comes again, and the first tab's form still works.
    const mistyped = await postCode(person, second, { user_code: 'BCDF-GHJK' });
    expect(mistyped.status).toBe(400);
    expect(mistyped.text).toContain('That code is not valid');
    const confirm = expectConfirmPage(await postCode(person, first, { user_code: started.user_code }));
    // And the mistyped tab's form as well, up to the confirmation of a code.
    expectConfirmPage(await postCode(person, mistyped, { user_code: started.user_code }));
    expect((await postCode(person, confirm, { user_code: started.user_code, confirm: 'yes' })).status).toBe(
      303,
    );
  });

  it('tells the person a wrong or empty code is not valid, and changes nothing', async () => {
    const person = new Person(sesame.baseUrl);
    const form = asPage(await person.browser.follow('/device'));
    const before = await countRows(sesame.db, 'oidc_models');
    const wrong = await postCode(person, form, { user_code: 'BCDF-GHJK' });
    expect(wrong.status).toBe(400);
    expect(wrong.text).toContain('That code is not valid');
    // The keyboard is back in the code field, which its problem describes; the first view's field has the focus too.
    const refusedCode = { id: 'user_code', invalid: true, describedBy: 'user-code-problem' };
    expect(autofocusedField(wrong.text)).toEqual(refusedCode);
    expect(autofocusedField(form.text)).toEqual({ id: 'user_code', invalid: false, describedBy: undefined });
    const empty = await postCode(person, wrong, { user_code: '' });
    expect(empty.status).toBe(400);
    expect(empty.text).toContain('Enter the code');
    expect(autofocusedField(empty.text)).toEqual(refusedCode);
    // Without the form's anti-forgery token the post is refused.
    const forged = await person.browser.request('/device', {
      form: { xsrf: 'forged', user_code: 'BCDF-GHJK' },
    });
    expect(forged.status).toBe(400);
    // A link's code that could be no code (too long, or given twice) is not filled in: the page asks for one.
    for (const query of [`user_code=${'B'.repeat(40)}`, 'user_code=BCDF-GHJK&user_code=LMNP-QRST']) {
      const linked = await person.browser.request(`/device?${query}`);
      expect({ query, status: linked.status }).toEqual({ query, status: 200 });
      expect(linked.text).toContain('<h1>Sign in on a device</h1>');
      expect(linked.text).not.toContain('data-submits-itself');
      expect(linked.text).not.toContain('BCDF');
    }
    expect(await countRows(sesame.db, 'oidc_models')).toBe(before);
  });

  /** Moves a device code's end `minutes` into the past, as if its ten minutes had run out then. */
  async function expireDeviceCode(deviceCode: string, minutes: number) {
    await sql`
      update oidc_models set expires_at = now() - make_interval(mins => ${minutes}),
        payload = jsonb_set(payload, '{exp}', to_jsonb(extract(epoch from now())::bigint - ${minutes * 60}))
      where model = 'DeviceCode' and id = ${deviceCode}`.execute(sesame.db);
  }

  it('tells a device whose code expired expired_token, and the person typing it that it expired', async () => {
    const started = await oidc.initiateDeviceAuthorization(tv, { scope: 'openid' });
    const clientId = tv.clientMetadata().client_id;
    await expireDeviceCode(started.device_code, 1);
    // RFC 8628 §3.5: the device stops polling and may start again, not "invalid_grant".
    expect(await pollToken(sesame.baseUrl, clientId, started.device_code)).toEqual({
      status: 400,
      error: 'expired_token',
    });
    const person = new Person(sesame.baseUrl);
    const form = asPage(await person.browser.follow('/device'));
    const before = await countRows(sesame.db, 'oidc_models');
    const typed = await postCode(person, form, { user_code: started.user_code });
    expect(typed.status).toBe(400);
    expect(typed.text).toContain('That code has expired');
    // Cancelling it changes nothing either: an expired code is only said to be expired.
    const cancelled = await postCode(person, typed, { user_code: started.user_code, abort: 'yes' });
    expect(cancelled.text).toContain('That code has expired');
    expect(await countRows(sesame.db, 'oidc_models')).toBe(before);
    expect(await pollToken(sesame.baseUrl, clientId, started.device_code)).toMatchObject({
      error: 'expired_token',
    });

    // Long after its end (the cleanup's to delete) it is a code like any unknown one.
    await expireDeviceCode(started.device_code, 30);
    expect(await pollToken(sesame.baseUrl, clientId, started.device_code)).toEqual({
      status: 400,
      error: 'invalid_grant',
    });
    const late = await postCode(person, cancelled, { user_code: started.user_code });
    expect(late.text).toContain('That code is not valid');
  });

  it("sends a device's expired or finished sign-in to its device and /device for a new code, not back to an app", async () => {
    /** The words and the way on of an expired sign-in's page. */
    function expiredPage(page: PageResponse) {
      expect(page.status).toBe(400);
      expect(page.text).toContain('This sign-in has expired or was already completed.');
      expect(page.text).toContain('Start again on your device to get a new code, then enter it here.');
      expect(page.text).not.toContain('the app you came from');
      return /<p><a href="([^"]*)">([^<]*)<\/a><\/p>/.exec(page.text)?.slice(1);
    }
    const enterACode = ['/device', 'Enter a code'];

    // Expired: the sign-in's half hour ran out while its login page was open.
    const expiring = await oidc.initiateDeviceAuthorization(tv, { scope: 'openid' });
    const person = new Person(sesame.baseUrl);
    const loginPage = asPage(await person.browser.follow(await enterCode(person, expiring.user_code)));
    const uid = /\/interaction\/([^/?#]+)/.exec(loginPage.url)![1]!;
    await sesame.db
      .updateTable('oidc_models')
      .set({ expires_at: sql<Date>`now() - interval '1 second'` })
      .where('model', '=', 'Interaction')
      .where('id', '=', storedId('Interaction', uid))
      .execute();
    expect(expiredPage(await person.browser.request(`/interaction/${uid}`))).toEqual(enterACode);
    // Without the browser's cookies too (the interaction cookie ends with the sign-in).
    expect(expiredPage(await new Person(sesame.baseUrl).browser.request(`/interaction/${uid}`))).toEqual(
      enterACode,
    );
    // In the person's language.
    const german = await person.browser.request(`/interaction/${uid}`, {
      headers: { 'accept-language': 'de' },
    });
    expect(german.text).toContain('Beginnen Sie auf Ihrem Gerät von vorn, um einen neuen Code zu erhalten');
    expect(german.text).toContain('<a href="/device">Code eingeben</a>');

    /**
     * A device's sign-in, signed up as `email` and decided (`decision`) at its consent page,
     * whose answer says `answered`; then Back to that consent page, whose sign-in is gone.
     */
    async function backToConsentAfter(email: string, decision: 'allow' | 'deny', answered: string) {
      const started = await oidc.initiateDeviceAuthorization(tv, { scope: 'openid' });
      const person = new Person(sesame.baseUrl);
      const login = asPage(await person.browser.follow(await enterCode(person, started.user_code)));
      const consentPage = asPage(await person.browser.follow(await person.signUp(login, email)));
      const consentUid = /\/interaction\/([^/?#]+)/.exec(consentPage.url)![1]!;
      const decided = await person.browser.request(`/interaction/${consentUid}/consent`, {
        form: { _csrf: consentPage.csrf(), decision },
      });
      expect(asPage(await person.browser.follow(decided.location()!)).text).toContain(answered);
      return { started, back: await person.browser.request(`/interaction/${consentUid}`) };
    }

    // Finished: Back from the device-done page to the consent page.
    const finished = await backToConsentAfter(
      'finished-on-device@example.com',
      'allow',
      'Your device is signed in',
    );
    expect(expiredPage(finished.back)).toEqual(enterACode);
    await poll(tv, finished.started);

    // Denied: Back from the "Sign-in cancelled" page to the consent page.
    const denied = await backToConsentAfter('denied-on-device@example.com', 'deny', 'Sign-in cancelled');
    expect(expiredPage(denied.back)).toEqual(enterACode);
  });

  it('answers a stale or made-up resume address with the code page, not an error', async () => {
    const person = new Person(sesame.baseUrl);
    for (const path of ['/device/made-up', '/device/auth']) {
      const page = await person.browser.request(path);
      expect(page.status).toBe(400);
      expect(page.text).toContain('Enter the code');
    }
  });

  it('gives the device access_denied when the person cancels at the code or denies consent', async () => {
    const person = new Person(sesame.baseUrl);
    const cancelled = await oidc.initiateDeviceAuthorization(tv, { scope: 'openid' });
    const form = asPage(await person.browser.follow('/device'));
    const confirm = await postCode(person, form, { user_code: cancelled.user_code });
    const aborted = await postCode(person, confirm, { user_code: cancelled.user_code, abort: 'yes' });
    expect(aborted.text).toContain('Sign-in cancelled');
    expect(await poll(tv, cancelled).catch((error: unknown) => error)).toMatchObject({
      error: 'access_denied',
    });

    const denied = await oidc.initiateDeviceAuthorization(tv, { scope: 'openid' });
    const loginPage = asPage(await person.browser.follow(await enterCode(person, denied.user_code)));
    const page = await consent(person, await person.signUp(loginPage, 'denier@example.com'), 'deny');
    expect(page.text).toContain('Sign-in cancelled');
    expect(await poll(tv, denied).catch((error: unknown) => error)).toMatchObject({ error: 'access_denied' });
  });

  it('registers a device app from the CLI without a redirect URI', async () => {
    const created = await cliJsonOn<{ client_id: string }>(sesame, [
      'clients',
      'create',
      '--name',
      'Terminal',
      '--public',
      '--grant-type',
      DEVICE_CODE_GRANT,
      '--json',
    ]);
    const started = await oidc.initiateDeviceAuthorization(await discover(created.client_id), {
      scope: 'openid',
    });
    expect(started.user_code).toMatch(/^[A-Z]{4}-[A-Z]{4}$/);
  });

  it('refuses a request without the openid scope, in words that say Sesame requires it', async () => {
    await expect(oidc.initiateDeviceAuthorization(tv, { scope: 'email' })).rejects.toMatchObject({
      error: 'invalid_request',
      error_description: OPENID_SCOPE_REQUIRED,
    });
  });

  it('refuses a client not registered for the device grant, and one that loses it', async () => {
    // RFC 8628 §3.2 takes its error codes from RFC 6749 §5.2: a client not allowed the grant
    // type is unauthorized_client (oidc-provider says invalid_request).
    const notAllowed = {
      error: 'unauthorized_client',
      error_description: `${DEVICE_CODE_GRANT} is not allowed for this client`,
    };
    const { client: web } = await createClient(
      sesame.db,
      { name: 'Web', public: true, redirect_uris: ['https://web.example/cb'] },
      'test',
    );
    await expect(
      oidc.initiateDeviceAuthorization(await discover(web.client_id), { scope: 'openid' }),
    ).rejects.toMatchObject(notAllowed);

    const { client: tv2 } = await createClient(
      sesame.db,
      { name: 'Old TV', public: true, grant_types: [DEVICE_CODE_GRANT] },
      'test',
    );
    const config = await discover(tv2.client_id);
    await oidc.initiateDeviceAuthorization(config, { scope: 'openid' });
    await updateClient(sesame.db, tv2.client_id, { grant_types: ['refresh_token'] }, 'test');
    // The change reaches the server's client cache by the database's change notification.
    let refused: unknown;
    for (let i = 0; i < 50 && !refused; i++) {
      refused = await oidc.initiateDeviceAuthorization(config, { scope: 'openid' }).then(
        () => new Promise((resolve) => setTimeout(() => resolve(undefined), 100)),
        (error: unknown) => error,
      );
    }
    expect(refused).toMatchObject(notAllowed);
  });
});

/**
 * RFC 8628 §5.4: the confirmation says where and when the device asked for its code, and
 * warns when that was from another network than the browser's: a code someone sent the
 * person (in a verification_uri_complete link, say) is the remote phishing the RFC warns of.
 * Behind a trusted proxy (TRUST_PROXY), each address is the one the proxy wrote.
 */
describe("the code's confirmation tells where the device asked from", () => {
  let sesame: TestApp;
  let clientId: string;

  beforeAll(async () => {
    sesame = await startTestApp({ TRUST_PROXY: 'true' });
    const { client } = await createClient(
      sesame.db,
      { name: 'Hall TV', public: true, grant_types: [DEVICE_CODE_GRANT] },
      'test',
    );
    clientId = client.client_id;
  });

  afterAll(() => sesame?.stop());

  /** A device's request for a code, through the proxy from `address` (else straight from the test's loopback address). */
  async function codeFrom(address?: string) {
    const response = await fetch(`${sesame.baseUrl}/device/auth`, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        ...(address && { 'x-forwarded-for': address }),
      },
      body: new URLSearchParams({ client_id: clientId, scope: 'openid' }),
    });
    return (await response.json()) as { device_code: string; user_code: string };
  }

  /** The confirmation the person's browser gets for `userCode`, through the proxy from `address` if given. */
  async function confirmationOf(userCode: string, address?: string): Promise<PageResponse> {
    const person = new Person(sesame.baseUrl);
    if (address) person.browser.headers['x-forwarded-for'] = address;
    const form = asPage(await person.browser.follow('/device'));
    const xsrf = /name="xsrf" value="([^"]+)"/.exec(form.text)![1]!;
    const page = asPage(await person.browser.request('/device', { form: { xsrf, user_code: userCode } }));
    expect(page.status).toBe(200);
    expect(page.text).toContain('Sign in to Hall TV?');
    return page;
  }

  const warning = 'This device is on another network than this browser.';

  it('warns that a device which asked from another network is not in front of the person, and says when it asked', async () => {
    const started = await codeFrom('203.0.113.7');
    // Asked three minutes ago, as if the person had taken that long to open the link.
    await sql`
      update oidc_models set payload = jsonb_set(payload, '{iat}', to_jsonb((payload->>'iat')::bigint - 185))
      where model = 'DeviceCode' and id = ${started.device_code}`.execute(sesame.db);
    const page = await confirmationOf(started.user_code);
    expect(page.text).toContain('Requested 3 minutes ago from IP address 203.0.113.7.');
    expect(page.text).toContain(`<p class="status" role="alert">${warning}`);
    expect(page.headers.get('content-security-policy')).not.toContain('unsafe-inline');
    expect(page.text).not.toMatch(/<script(?![^>]*\ssrc=)/);
  });

  it('does not warn when the device asked from the network of the browser', async () => {
    const started = await codeFrom();
    const page = await confirmationOf(started.user_code);
    expect(page.text).toContain('Requested less than a minute ago from IP address 127.0.0.1.');
    expect(page.text).not.toContain(warning);
    // Both through the proxy, from one address: the browser's is the proxy's word too.
    const proxied = await codeFrom('198.51.100.4');
    const same = await confirmationOf(proxied.user_code, '198.51.100.4');
    expect(same.text).toContain('from IP address 198.51.100.4.');
    expect(same.text).not.toContain(warning);
  });
});

describe('typing device codes is rate-limited', () => {
  let sesame: TestApp;
  afterAll(() => sesame?.stop());

  it('answers 429 after 30 codes in 15 minutes from one address', async () => {
    sesame = await startTestApp({ RATE_LIMIT_PER_MINUTE: '600' });
    const person = new Person(sesame.baseUrl);
    const form = asPage(await person.browser.follow('/device'));
    const xsrf = /name="xsrf" value="([^"]+)"/.exec(form.text)![1]!;
    const statuses: number[] = [];
    for (let i = 0; i < 31; i++) {
      const response = await person.browser.request('/device', { form: { xsrf, user_code: 'BCDF-GHJK' } });
      statuses.push(response.status);
    }
    expect(statuses.slice(0, 30).every((status) => status === 400)).toBe(true);
    expect(statuses[30]).toBe(429);
  });
});

(onPostgres ? describe : describe.skip)('device polling on two instances of one database', () => {
  let sesame: TestApp;
  let other: SecondInstance;
  afterAll(async () => {
    await other?.stop();
    await sesame?.stop();
  });

  it('tells a device that polls each instance in turn to slow down: the last poll is counted in the database', async () => {
    sesame = await startTestApp();
    other = await startSecondInstance(sesame);
    const { client } = await createClient(
      sesame.db,
      { name: 'Hall TV', public: true, grant_types: [DEVICE_CODE_GRANT] },
      'test',
    );
    const authorization = await fetch(`${sesame.listenUrl}/device/auth`, {
      method: 'POST',
      body: new URLSearchParams({ client_id: client.client_id, scope: 'openid' }),
    });
    const { device_code: deviceCode } = (await authorization.json()) as { device_code: string };
    expect(await pollToken(sesame.listenUrl, client.client_id, deviceCode)).toEqual(pending);
    expect(await pollToken(other.url, client.client_id, deviceCode)).toEqual(slowDown);
    expect(await pollToken(sesame.listenUrl, client.client_id, deviceCode)).toEqual(slowDown);
    // The interval that slow_down grew (to 15 s) is the database's too: 6 s is too soon on either.
    await lastPolledAgo(sesame, deviceCode, 6);
    expect(await pollToken(other.url, client.client_id, deviceCode)).toEqual(slowDown);
    await lastPolledAgo(sesame, deviceCode, 19.5);
    expect(await pollToken(sesame.listenUrl, client.client_id, deviceCode)).toEqual(pending);
  });
});
