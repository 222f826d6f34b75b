import { randomBytes } from 'node:crypto';
import { decodeJwt, decodeProtectedHeader, importJWK, SignJWT } from 'jose';
import { sql } from 'kysely';
import * as oidc from 'openid-client';
import { APPROVED_ON_DEVICE } from '../../src/db/queries/oidcModels.js';
import { DEVICE_CODE_GRANT } from '../../src/oidc/clients.js';
import { createResource } from '../../src/oidc/resources.js';
import { asPage } from '../support/browser.js';
import {
  approveDevice,
  beginLogin,
  confirmDeviceCode,
  discoverRp,
  finishLogin,
  Person,
  signInDevice,
  signOutFromApp,
  stepUp,
  type TestRp,
} from '../support/oidcFlow.js';
import { cliJsonOn } from '../support/sesameProcess.js';
import { SoftAuthenticator } from '../support/softAuthenticator.js';
import { startTestApp, type TestApp } from '../support/testApp.js';

const REDIRECT_URI = 'http://127.0.0.1:8917/callback';
const LOGGED_OUT_URI = 'http://127.0.0.1:8917/logged-out';
/** An API whose access tokens are JWTs (RFC 9068), which name no stored token. */
const API = 'https://api.example';
/** The claim a person's JWT access token names its grant by (introspection.ts, GRANT_ID_CLAIM). */
const GRANT_ID = 'grant_id';

/** What an app holds of one sign-in: its access token and the refresh token it last got. */
interface Held {
  accessToken: string;
  refreshToken: string;
}

/**
 * A device's sign-in (RFC 8628) to an app that also signs people in in browsers is its own:
 * the account page lists it apart ("<app> on a device"), revokes it alone, and the app's
 * browser sign-in is revoked and signed out without it; "Sign out everywhere" and deleting a
 * passkey end both.
 */
describe("a device's sign-in to an app that also signs in in browsers", () => {
  let sesame: TestApp;
  let app: TestRp;
  let clientId: string;

  beforeAll(async () => {
    sesame = await startTestApp();
    const created = await cliJsonOn<{ client_id: string; client_secret: string }>(sesame, [
      'clients',
      'create',
      '--name',
      'Both Ways',
      '--redirect-uri',
      REDIRECT_URI,
      '--post-logout-redirect-uri',
      LOGGED_OUT_URI,
      '--grant-type',
      'authorization_code',
      '--grant-type',
      'refresh_token',
      '--grant-type',
      DEVICE_CODE_GRANT,
    ]);
    clientId = created.client_id;
    app = await discoverRp(sesame.baseUrl, created, REDIRECT_URI);
    await createResource(sesame.db, { identifier: API, scopes: ['read'] }, 'test');
  });

  afterAll(() => sesame?.stop());

  /** Signs up a new person in a browser and signs them in to the app there. */
  async function signInByBrowser(
    scope: string,
    extra: Record<string, string> = {},
  ): Promise<{ person: Person; held: Held; idToken: string; sub: string }> {
    const person = new Person(sesame.baseUrl);
    const pending = await beginLogin(app, scope, { prompt: 'consent', ...extra });
    const page = await person.open(pending.url);
    const next = await person.signUp(page, `d${randomBytes(4).toString('hex')}@example.com`);
    const tokens = await finishLogin(app, pending, await person.continueToApp(next, REDIRECT_URI));
    return {
      person,
      held: { accessToken: tokens.access_token, refreshToken: tokens.refresh_token ?? '' },
      idToken: tokens.id_token!,
      sub: tokens.claims()!.sub,
    };
  }

  /** A device of the app, approved in the person's browser. */
  async function deviceOf(
    person: Person,
    scope = 'openid email offline_access',
    extra: Record<string, string> = {},
  ): Promise<Held> {
    const tokens = await signInDevice(person, app.config, scope, extra);
    return { accessToken: tokens.access_token, refreshToken: tokens.refresh_token ?? '' };
  }

  /** The JWT access token as Sesame signed it before its tokens named their grant ({@link GRANT_ID}). */
  async function withoutGrantId(token: string): Promise<string> {
    const header = decodeProtectedHeader(token);
    const { [GRANT_ID]: _grantId, ...claims } = decodeJwt(token);
    const key = await sesame.db
      .selectFrom('signing_keys')
      .select('private_jwk')
      .where('kid', '=', header.kid!)
      .executeTakeFirstOrThrow();
    return new SignJWT(claims)
      .setProtectedHeader({ alg: header.alg!, kid: header.kid, typ: 'at+jwt' })
      .sign(await importJWK(JSON.parse(key.private_jwk), header.alg));
  }

  const active = async (held: Held) => (await oidc.tokenIntrospection(app.config, held.accessToken)).active;

  /** Refreshes as the app does: the new refresh token, or the error the token endpoint gave. */
  async function refresh(held: Held): Promise<'ok' | string> {
    try {
      const tokens = await oidc.refreshTokenGrant(app.config, held.refreshToken);
      held.accessToken = tokens.access_token;
      held.refreshToken = tokens.refresh_token ?? held.refreshToken;
      return 'ok';
    } catch (error) {
      return String((error as { error?: unknown }).error);
    }
  }

  async function accountPage(person: Person) {
    return asPage(await person.browser.request('/account'));
  }

  /** The account page's revoke forms of the app's device entries, in order. */
  function deviceRevokeActions(page: { text: string }): string[] {
    const actions = page.text.matchAll(/action="(\/account\/apps\/[^/"]+\/devices\/[^/"]+\/revoke)"/g);
    return [...actions].map((match) => match[1]!);
  }

  it('lists each device apart from the browser, and revokes each alone', async () => {
    const { person, held: browser } = await signInByBrowser('openid email offline_access');
    const tv = await deviceOf(person);
    const box = await deviceOf(person);
    expect(browser.refreshToken).toBeTruthy();
    expect(tv.refreshToken).toBeTruthy();

    const page = await accountPage(person);
    expect(page.text).toContain('<strong id="app-');
    expect(page.text.match(/Both Ways on a device/g)).toHaveLength(2);
    expect(page.text).toMatch(/approved /);
    expect(page.text).toContain('Devices you signed in to it with a code are listed on their own');
    const [tvAction, boxAction] = deviceRevokeActions(page);
    expect(boxAction).toBeDefined();
    expect(tvAction).not.toBe(boxAction);

    // Which device is which: revoking one ends the tokens of exactly one of them.
    const revokedTv = await person.browser.request(tvAction!, { form: { _csrf: page.csrf() } });
    expect(revokedTv.status).toBe(303);
    const [tvGone, boxGone] = [!(await active(tv)), !(await active(box))];
    expect(tvGone !== boxGone).toBe(true);
    const [revoked, kept] = tvGone ? [tv, box] : [box, tv];
    expect(await refresh(revoked)).toBe('invalid_grant');
    expect(await refresh(kept)).toBe('ok');
    expect(await active(browser)).toBe(true);
    expect(await refresh(browser)).toBe('ok');

    // The app's browser sign-in: the device left keeps going, and is still listed.
    const after = await accountPage(person);
    expect(deviceRevokeActions(after)).toHaveLength(1);
    const revokedBrowser = await person.browser.request(`/account/apps/${clientId}/revoke`, {
      form: { _csrf: after.csrf() },
    });
    expect(revokedBrowser.status).toBe(303);
    expect(await active(browser)).toBe(false);
    expect(await refresh(browser)).toBe('invalid_grant');
    expect(await active(kept)).toBe(true);
    expect(await refresh(kept)).toBe('ok');
    const last = await accountPage(person);
    expect(last.text).toContain('Both Ways on a device');
    expect(last.text).not.toContain('<strong id="app-');

    // A device entry revoked already, or another person's, is not found; nothing changes.
    const again = await person.browser.request(tvAction!, { form: { _csrf: last.csrf() } });
    expect(again.status).toBe(404);
    const malformed = await person.browser.request(`/account/apps/${clientId}/devices/a%20b/revoke`, {
      form: { _csrf: last.csrf() },
    });
    expect(malformed.status).toBe(400);
    expect(await refresh(kept)).toBe('ok');
  }, 60_000);

  it('keeps the device signed in when the browser signs out, and the browser when the device is revoked', async () => {
    const { person, held: browser, idToken } = await signInByBrowser('openid email offline_access');
    const tv = await deviceOf(person);
    const page = await accountPage(person);
    const [tvAction] = deviceRevokeActions(page);
    await person.browser.request(tvAction!, { form: { _csrf: page.csrf() } });
    expect(await refresh(tv)).toBe('invalid_grant');
    expect(await refresh(browser)).toBe('ok');

    // A new device, then the browser signs out of Sesame: the device's sign-in is not the browser's.
    const next = await deviceOf(person);
    const signedOut = await signOutFromApp(person, app, idToken, LOGGED_OUT_URI);
    expect(signedOut.location()).toContain(LOGGED_OUT_URI);
    expect(await active(next)).toBe(true);
    expect(await refresh(next)).toBe('ok');
  }, 60_000);

  it("ends the browser's JWT access token at the app's Revoke, and keeps the device's, each by the grant it names", async () => {
    const { person, held: browser } = await signInByBrowser('openid read', { resource: API });
    const tv = await deviceOf(person, 'openid read', { resource: API });
    const issuedBefore = { ...browser, accessToken: await withoutGrantId(browser.accessToken) };
    expect([await active(browser), await active(tv)]).toEqual([true, true]);

    const page = await accountPage(person);
    const revoked = await person.browser.request(`/account/apps/${clientId}/revoke`, {
      form: { _csrf: page.csrf() },
    });
    expect(revoked.status).toBe(303);
    expect(await oidc.tokenIntrospection(app.config, browser.accessToken)).toEqual({ active: false });
    expect(await active(tv)).toBe(true);
    const grantOf = (held: Held) => decodeJwt(held.accessToken)[GRANT_ID];
    expect(grantOf(browser)).toEqual(expect.any(String));
    expect(grantOf(tv)).toEqual(expect.any(String));
    expect(grantOf(tv)).not.toBe(grantOf(browser));

    // A token from before tokens named their grant stands while any grant of the app does.
    expect(await active(issuedBefore)).toBe(true);
    const after = await accountPage(person);
    await person.browser.request(deviceRevokeActions(after)[0]!, { form: { _csrf: after.csrf() } });
    expect([await active(tv), await active(issuedBefore)]).toEqual([false, false]);
  }, 60_000);

  it("asks for permission again after the app's Revoke: a device's consent is not copied into a browser or another device", async () => {
    const { person } = await signInByBrowser('openid email');
    const tv = await deviceOf(person, 'openid email');
    const page = await accountPage(person);
    expect(page.text).toContain('it will ask for your permission again next time');
    const revoked = await person.browser.request(`/account/apps/${clientId}/revoke`, {
      form: { _csrf: page.csrf() },
    });
    expect(revoked.status).toBe(303);
    expect(await active(tv)).toBe(true);

    // The same browser, silently (prompt=none): the app must ask, so it is told consent_required.
    const silent = await beginLogin(app, 'openid email', { prompt: 'none' });
    const answer = await person.browser.follow(silent.url, (url) => url.startsWith(REDIRECT_URI));
    expect('stoppedAt' in answer && new URL(answer.stoppedAt).searchParams.get('error')).toBe(
      'consent_required',
    );

    // A new browser: the consent page, not a code for the app.
    const elsewhere = person.inNewBrowser();
    const login = await beginLogin(app, 'openid email');
    const signedIn = await elsewhere.signIn(await elsewhere.open(login.url));
    const asked = asPage(await elsewhere.browser.follow(signedIn, (url) => url.startsWith(REDIRECT_URI)));
    expect(asked.text).toContain('>Allow<');

    // Another device: the consent page too.
    const box = await oidc.initiateDeviceAuthorization(app.config, { scope: 'openid email' });
    expect((await confirmDeviceCode(person, box.user_code)).text).toContain('>Allow<');

    // Allowed again in a browser, that consent is copied into the person's next browser as
    // before; a device's approval still asks (RFC 8628 §5.4: it copies no consent at all).
    expect(await elsewhere.continueToApp(asked.url, REDIRECT_URI)).toMatch(/[?&]code=/);
    const third = person.inNewBrowser();
    const thirdLogin = await beginLogin(app, 'openid email');
    const thirdSignedIn = await third.signIn(await third.open(thirdLogin.url));
    const copied = await third.browser.follow(thirdSignedIn, (url) => url.startsWith(REDIRECT_URI));
    expect('stoppedAt' in copied && copied.stoppedAt).toMatch(/[?&]code=/);
    const radio = await oidc.initiateDeviceAuthorization(app.config, { scope: 'openid email' });
    expect((await confirmDeviceCode(elsewhere, radio.user_code)).text).toContain('>Allow<');
  }, 60_000);

  it("refuses a device whose grant the app's Revoke ended during its approval: the grant is not stored again", async () => {
    const { person, sub } = await signInByBrowser('openid email');
    // The app's Revoke, done between the provider's load of the approval's grant and its mark
    // as the device's: the grant goes when the approved device code is stored (its revoke
    // before then found the grant unmarked, a browser's, and left no device code to delete).
    await sql`
      create function test_revoke_during_approval() returns trigger language plpgsql as $$
      begin
        if new.model = 'DeviceCode' and new.payload ? 'accountId' then
          delete from oidc_models where model = 'Grant' and id = new.grant_id;
        end if;
        return null;
      end $$`.execute(sesame.db);
    await sql`
      create trigger test_revoke_during_approval after insert or update on oidc_models
      for each row execute function test_revoke_during_approval()`.execute(sesame.db);
    let started: oidc.DeviceAuthorizationResponse;
    let done: { status: number; text: string };
    try {
      started = await oidc.initiateDeviceAuthorization(app.config, { scope: 'openid email offline_access' });
      done = await approveDevice(person, started.user_code);
    } finally {
      await sql`drop trigger test_revoke_during_approval on oidc_models`.execute(sesame.db);
      await sql`drop function test_revoke_during_approval()`.execute(sesame.db);
    }
    const polled = await oidc
      .pollDeviceAuthorizationGrant(app.config, { ...started, interval: 0.01 })
      .catch((error: unknown) => error);
    expect(polled).toMatchObject({ error: 'access_denied' });
    const grants = await sql<{ n: number }>`
      select count(*)::int as n from oidc_models
      where model = 'Grant' and payload->>'accountId' = ${sub} and payload ? ${APPROVED_ON_DEVICE}::text`.execute(
      sesame.db,
    );
    expect(grants.rows[0]!.n).toBe(0);
    expect((await accountPage(person)).text).not.toContain('Both Ways on a device');
    expect(done.status).toBe(409);
    expect(done.text).toContain('so the device was not signed in');
  }, 60_000);

  it('signs out on "Sign out everywhere" a device approved before device grants were marked', async () => {
    const { person, held: browser, sub } = await signInByBrowser('openid email offline_access');
    const tv = await deviceOf(person);
    // As Sesame stored a device's grant before it marked them: no APPROVED_ON_DEVICE.
    const unmarked = await sql`
      update oidc_models set payload = payload - ${APPROVED_ON_DEVICE}::text
      where model = 'Grant' and payload->>'accountId' = ${sub} and payload ? ${APPROVED_ON_DEVICE}::text`.execute(
      sesame.db,
    );
    expect(unmarked.numAffectedRows).toBe(1n);
    const page = await accountPage(person);
    const done = await person.browser.request('/account/sign-out-everywhere', {
      form: { _csrf: page.csrf() },
    });
    expect(done.status).toBe(303);
    expect(await active(tv)).toBe(false);
    expect(await refresh(tv)).toBe('invalid_grant');
    // The app keeps what it was given in the browser (its refresh token), as before.
    expect(await refresh(browser)).toBe('ok');
  }, 60_000);

  it('ends the browser sign-in and the devices on "Sign out everywhere"', async () => {
    const { person, held: browser } = await signInByBrowser('openid email');
    const tv = await deviceOf(person);
    const page = await accountPage(person);
    expect(page.text).toContain('signs out the devices you approved with a code');
    const done = await person.browser.request('/account/sign-out-everywhere', {
      form: { _csrf: page.csrf() },
    });
    expect(done.status).toBe(303);
    expect(await active(browser)).toBe(false);
    expect(await active(tv)).toBe(false);
    expect(await refresh(tv)).toBe('invalid_grant');
  }, 60_000);

  it("signs out the devices when a passkey is deleted, as a device the passkey approved may be an intruder's", async () => {
    const { person, held: browser } = await signInByBrowser('openid email offline_access');
    // A second passkey, added on the account page, approves a TV; the person then deletes it.
    const csrf = (await accountPage(person)).csrf();
    expect((await stepUp(person, csrf)).status).toBe(200);
    const options = await person.browser.postJson('/account/passkeys/options', csrf, {});
    const rogue = await new SoftAuthenticator().createCredential(options.json(), person.browser.origin);
    expect((await person.browser.postJson('/account/passkeys/verify', csrf, rogue)).status).toBe(200);
    const tv = await deviceOf(person);
    expect(await refresh(tv)).toBe('ok');
    const deleted = await person.browser.postJson(`/account/passkeys/${rogue.id}/delete`, csrf, {});
    expect(deleted.status).toBe(200);
    expect(await active(tv)).toBe(false);
    expect(await refresh(tv)).toBe('invalid_grant');
    expect((await accountPage(person)).text).not.toContain('Both Ways on a device');
    // The app keeps what it was given in the browser (its refresh token), as on "Sign out everywhere".
    expect(await refresh(browser)).toBe('ok');
  }, 60_000);
});
