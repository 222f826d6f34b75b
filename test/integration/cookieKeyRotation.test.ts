import { createHmac } from 'node:crypto';
import Keygrip from 'keygrip';
import { cookieNames } from '../../src/cookieNames.js';
import { openAtRest, sealAtRest } from '../../src/crypto.js';
import { createClient } from '../../src/oidc/clients.js';
import {
  COOKIE_KEY_ACTIVATION_SECONDS,
  COOKIE_KEY_GRACE_SECONDS,
  loadCookieKeys,
  removeExpiredCookieKeys,
} from '../../src/oidc/cookieKeys.js';
import { sealContext } from '../../src/sealContext.js';
import {
  createTestApiKeys,
  expectRefusedPosts,
  latestAuditEvent,
  postToAdminApi,
  type TestApiKeys,
} from '../support/adminApiCall.js';
import { waitUntil } from '../support/eventually.js';
import { beginLogin, discoverRp, finishLogin, Person, type TestRp } from '../support/oidcFlow.js';
import { linesOf, type ProcessResult, runCliOn } from '../support/sesameProcess.js';
import { startTestApp, type TestApp } from '../support/testApp.js';
import { onPostgres } from '../support/testDatabase.js';

const REDIRECT_URI = 'http://127.0.0.1:8931/callback';

type StoredEntry = string | { key: string; retired_at: string } | { key: string; activates_at: string };

/** What the `cookie_keys` row is sealed for. */
const COOKIE_KEYS_ROW = sealContext.appSecret('cookie_keys');

const keyOf = (entry: StoredEntry | undefined) => (typeof entry === 'string' ? entry : entry!.key);
const past = () => new Date(Date.now() - 1_000).toISOString();

/** The `cookie_keys` row as stored (opened when sealed). */
async function storedEntries(app: TestApp): Promise<StoredEntry[]> {
  const row = await app.db
    .selectFrom('app_secrets')
    .select('value')
    .where('name', '=', 'cookie_keys')
    .executeTakeFirstOrThrow();
  return JSON.parse(openAtRest(row.value, app.config, COOKIE_KEYS_ROW));
}

/** Writes the `cookie_keys` row, as an older Sesame or the passing of time would have left it. */
async function storeEntries(app: TestApp, entries: StoredEntry[]): Promise<void> {
  await app.db
    .updateTable('app_secrets')
    .set({ value: sealAtRest(JSON.stringify(entries), app.config.keyEncryptionSecret, COOKIE_KEYS_ROW) })
    .where('name', '=', 'cookie_keys')
    .execute();
}

const signature = (key: string, name: string, value: string) => new Keygrip([key]).sign(`${name}=${value}`);

/**
 * Whether `app` signs a new cookie with `key`: the account pages' sign-in sets one (its
 * return path) for a browser that has none.
 */
async function signsNewCookiesWith(app: TestApp, key: string): Promise<boolean> {
  const response = await fetch(`${app.baseUrl}/account/login`, { redirect: 'manual' });
  const cookies = new Map(
    response.headers.getSetCookie().map((line) => {
      const [pair] = line.split(';');
      const eq = pair!.indexOf('=');
      return [pair!.slice(0, eq), pair!.slice(eq + 1)] as const;
    }),
  );
  const [name, value] = [...cookies].find(([cookie]) => !cookie.endsWith('.sig'))!;
  return cookies.get(`${name}.sig`) === signature(key, name, value);
}

describe('rotating the cookie key (`sesame keys rotate-cookie-key`)', () => {
  let sesame: TestApp;
  /** A second instance on the same database (Postgres only: the embedded one has one owner). */
  let other: TestApp | undefined;
  let rp: TestRp;
  let person: Person;
  const instances = () => [sesame, other].filter((app) => app !== undefined);

  beforeAll(async () => {
    sesame = await startTestApp();
    if (onPostgres) {
      const { DATABASE_URL, DATABASE_DIRECT_URL } = sesame.env;
      other = await startTestApp({ DATABASE_URL: DATABASE_URL!, DATABASE_DIRECT_URL: DATABASE_DIRECT_URL! });
    }
    const created = await createClient(sesame.db, { name: 'Notes', redirect_uris: [REDIRECT_URI] }, 'test');
    rp = await discoverRp(
      sesame.baseUrl,
      { client_id: created.client.client_id, client_secret: created.client_secret! },
      REDIRECT_URI,
    );
    person = new Person(sesame.baseUrl);
    const pending = await beginLogin(rp);
    const next = await person.signUp(await person.open(pending.url), 'cookie@example.com');
    await finishLogin(rp, pending, await person.continueToApp(next, REDIRECT_URI));
  });

  afterAll(async () => {
    await other?.stop();
    await sesame.stop();
  });

  /** The person's Sesame session as the browser holds it, and whether its signature outlives the browser session. */
  async function sessionCookie(): Promise<{ value: string; sig: string; sigPersists: boolean }> {
    const cookies = await person.browser.jar.getCookies(`${sesame.baseUrl}/account`);
    const find = (name: string) => cookies.find((cookie) => cookie.key === name)!;
    const { session } = cookieNames(sesame.config);
    const sig = find(`${session}.sig`);
    return { value: find(session).value, sig: sig.value, sigPersists: sig.expires instanceof Date };
  }

  /**
   * Whether `app` takes the person's session cookie signed anew with `key` (as another instance
   * would), in a new browser holding only that cookie. A new one each time: an instance that
   * does not know the key yet deletes the signature it cannot verify (as the `cookies` package
   * does), so a browser that asked once holds no signature any more, and never would be taken.
   */
  async function takesSessionSignedBy(app: TestApp, key: string, value: string): Promise<boolean> {
    const { browser } = person.inNewBrowser();
    const { session } = cookieNames(sesame.config);
    await browser.jar.setCookie(`${session}=${value}; Path=/`, sesame.baseUrl);
    await browser.jar.setCookie(`${session}.sig=${signature(key, session, value)}; Path=/`, sesame.baseUrl);
    return (await browser.request(`${app.baseUrl}/account`)).status === 200;
  }

  /** Whether `app` shows the person their account (else it sends them to sign in). */
  async function signedInAt(app: TestApp): Promise<boolean> {
    const status = (await person.browser.request(`${app.baseUrl}/account`)).status;
    if (status !== 200 && status !== 302) throw new Error(`/account answered ${status}`);
    return status === 200;
  }

  const currentKey = async () => (await loadCookieKeys(sesame.db, sesame.config)).keys[0]!;

  /** The form token of the account page, and whether `key` made it (signed double-submit, csrf.ts). */
  async function formToken(key: string): Promise<{ token: string; madeWith: boolean }> {
    const token = (await person.browser.request('/account')).csrf();
    const cookies = await person.browser.jar.getCookies(`${sesame.baseUrl}/account`);
    const cookie = cookies.find((c) => c.key === cookieNames(sesame.config).csrf)!.value;
    return { token, madeWith: token === createHmac('sha256', key).update(cookie).digest('base64url') };
  }

  /** A form post of the account page (asking for a step-up's passkey options): 200, or 403 for a bad form token. */
  const postForm = async (token: string) =>
    (await person.browser.postJson('/account/step-up/options', token, {})).status;

  async function rotate(...flags: string[]): Promise<ProcessResult> {
    return runCliOn(sesame, ['keys', 'rotate-cookie-key', ...flags]);
  }

  it('keeps everyone signed in on every instance: the old key verifies, the new one signs', async () => {
    const oldKey = await currentKey();
    const session = await sessionCookie();
    expect(session.sig).toBe(signature(oldKey, cookieNames(sesame.config).session, session.value));
    for (const app of instances()) expect(await signedInAt(app)).toBe(true);
    const before = await formToken(oldKey);
    expect(before.madeWith).toBe(true);

    const result = await rotate('--json');
    expect(result).toMatchObject({ code: 0, stderr: '' });
    const rotated = JSON.parse(result.stdout);
    expect(rotated).toEqual({
      signs_from: expect.any(String),
      previous_keys: 1,
      previous_keys_verify_until: expect.any(String),
      removed_keys: 0,
    });
    const activation = Date.parse(rotated.signs_from) - Date.now();
    expect(Math.abs(activation - COOKIE_KEY_ACTIVATION_SECONDS * 1000)).toBeLessThan(10_000);
    const graceLeft = Date.parse(rotated.previous_keys_verify_until) - Date.parse(rotated.signs_from);
    expect(graceLeft).toBe(COOKIE_KEY_GRACE_SECONDS * 1000);
    expect(COOKIE_KEY_GRACE_SECONDS).toBeGreaterThan(14 * 24 * 3600);

    const [fresh, replaced] = await storedEntries(sesame);
    const newKey = keyOf(fresh);
    expect(newKey).not.toBe(oldKey);
    expect(fresh).toEqual({ key: newKey, activates_at: rotated.signs_from });
    expect(replaced).toEqual({ key: oldKey, retired_at: rotated.signs_from });
    // Until it signs, every instance knows the new key: a cookie another instance signed anew
    // with it (where the change was heard first) is taken, while the old key still signs.
    expect(await currentKey()).toBe(oldKey);
    for (const app of instances()) {
      await waitUntil(() => takesSessionSignedBy(app, newKey, session.value), 15_000);
      expect(await signsNewCookiesWith(app, oldKey)).toBe(true);
    }

    // A minute later (here: its activation moved to now) every instance signs with the new key,
    // with no restart.
    await storeEntries(sesame, [
      { key: newKey, activates_at: past() },
      { key: oldKey, retired_at: past() },
    ]);
    for (const app of instances()) await waitUntil(() => signsNewCookiesWith(app, newKey), 3_000);

    // The browser, holding the session cookie the old key signed, is still signed in; reading
    // it did not sign it again as a cookie that ends with the browser session.
    expect(session.sigPersists).toBe(true);
    for (const app of instances()) expect(await signedInAt(app)).toBe(true);
    expect(await sessionCookie()).toEqual(session);
    // A form loaded before the rotation still posts; a page loaded now has a token of the new key.
    expect(await postForm(before.token)).toBe(200);
    expect((await formToken(newKey)).madeWith).toBe(true);

    // Signing in to an app uses the session at the provider, which signs its cookie anew.
    const pending = await beginLogin(rp);
    await finishLogin(rp, pending, await person.continueToApp(pending.url, REDIRECT_URI));
    const renewed = await sessionCookie();
    expect(renewed.sig).toBe(signature(newKey, cookieNames(sesame.config).session, renewed.value));

    const event = await sesame.db
      .selectFrom('audit_events')
      .selectAll()
      .where('action', '=', 'cookie_keys.rotate')
      .executeTakeFirstOrThrow();
    expect(event.actor).toMatch(/^cli:/);
    expect(event.details).toEqual({
      previous_keys: 1,
      previous_keys_verify_until: rotated.previous_keys_verify_until,
      removed_keys: 0,
    });
  }, 60_000);

  it('signs everyone out of Sesame on every instance with --revoke-previous, and says so', async () => {
    for (const app of instances()) expect(await signedInAt(app)).toBe(true);

    const result = await rotate('--revoke-previous');
    expect(result).toMatchObject({ code: 0, stderr: '' });
    expect(linesOf(result.stdout)).toEqual([
      expect.stringMatching(/^New cookie key: it signs from now on\./),
      expect.stringMatching(
        /^Revoked 2 earlier cookie keys: everyone is signed out of Sesame and sign-ins in progress start again\./,
      ),
    ]);
    const revokedAt = Date.now();
    expect(await storedEntries(sesame)).toEqual([await currentKey()]);
    for (const app of instances()) await waitUntil(async () => !(await signedInAt(app)), 2_500);
    expect(Date.now() - revokedAt).toBeLessThan(2_500);

    // Signing in again works, and is signed by the new key.
    const pending = await beginLogin(rp);
    const next = await person.signIn(await person.open(pending.url));
    await finishLogin(rp, pending, await person.continueToApp(next, REDIRECT_URI));
    for (const app of instances()) expect(await signedInAt(app)).toBe(true);
    const session = await sessionCookie();
    expect(session.sig).toBe(
      signature(await currentKey(), cookieNames(sesame.config).session, session.value),
    );
    const form = await formToken(await currentKey());
    expect(form.madeWith).toBe(true);
    expect(await postForm(form.token)).toBe(200);

    const event = await sesame.db
      .selectFrom('audit_events')
      .selectAll()
      .where('action', '=', 'cookie_keys.revoke')
      .executeTakeFirstOrThrow();
    expect(event.details).toEqual({ previous_keys: 0, previous_keys_verify_until: null, removed_keys: 2 });
  }, 60_000);

  it('stops verifying a replaced key when its grace ends, with no restart, and the cleanup deletes it', async () => {
    const signedBy = await currentKey();
    expect((await rotate('--json')).code).toBe(0);
    const [fresh, replaced] = await storedEntries(sesame);
    const newKey = { key: keyOf(fresh), activates_at: past() };
    expect(replaced).toEqual({ key: signedBy, retired_at: expect.any(String) });
    for (const app of instances()) expect(await signedInAt(app)).toBe(true);

    // Its grace ends three seconds from now: a change that announces itself, then nothing more.
    const retiredAt = new Date(Date.now() - (COOKIE_KEY_GRACE_SECONDS - 3) * 1000).toISOString();
    await storeEntries(sesame, [newKey, { key: signedBy, retired_at: retiredAt }]);
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    for (const app of instances()) expect(await signedInAt(app)).toBe(true);
    for (const app of instances()) await waitUntil(async () => !(await signedInAt(app)), 6_000);

    expect(await removeExpiredCookieKeys(sesame.db, sesame.config)).toBe(1);
    expect(await storedEntries(sesame)).toEqual([newKey]);
    expect(await removeExpiredCookieKeys(sesame.db, sesame.config)).toBe(0);
  }, 60_000);

  it('deletes a key past its grace at the next rotation, and keeps the one it replaces', async () => {
    const current = await currentKey();
    const long = new Date(Date.now() - (COOKIE_KEY_GRACE_SECONDS + 60) * 1000).toISOString();
    await storeEntries(sesame, [current, { key: 'an old key past its grace', retired_at: long }]);
    const result = await rotate('--json');
    expect(result).toMatchObject({ code: 0, stderr: '' });
    expect(JSON.parse(result.stdout)).toMatchObject({ previous_keys: 1, removed_keys: 1 });
    expect(await storedEntries(sesame)).toEqual([
      { key: expect.any(String), activates_at: expect.any(String) },
      { key: current, retired_at: expect.any(String) },
    ]);
  }, 30_000);

  it('refuses arguments it does not take, in one line, and changes no key', async () => {
    const before = await storedEntries(sesame);
    for (const args of [['--activate-in', '0'], ['everyone'], ['--revoke-previous', '--bogus']]) {
      const result = await rotate(...args);
      expect(result.code).toBe(1);
      expect(result.stdout).toBe('');
      expect(linesOf(result.stderr)).toEqual([
        expect.stringMatching(/^sesame: (unknown option|too many arguments)/),
      ]);
    }
    expect(await storedEntries(sesame)).toEqual(before);
  }, 30_000);

  describe('over the admin API (`POST /api/admin/keys/rotate-cookie-key`)', () => {
    let keys: TestApiKeys;

    beforeAll(async () => {
      keys = await createTestApiKeys(sesame);
    });

    const rotateOverApi = (json?: unknown) =>
      postToAdminApi(sesame, keys.admin, '/keys/rotate-cookie-key', { json });

    /** Signs the person, signed out of Sesame, in to the app again. */
    async function signInAgain(): Promise<void> {
      const pending = await beginLogin(rp);
      const next = await person.signIn(await person.open(pending.url));
      await finishLogin(rp, pending, await person.continueToApp(next, REDIRECT_URI));
    }

    const latestAudit = (action: string) => latestAuditEvent(sesame, action);

    it('adds a key that verifies at once and signs after its minute, as the CLI does, keeping everyone signed in', async () => {
      // One key, as after a first start, and the person signed in with it.
      const oldKey = await currentKey();
      await storeEntries(sesame, [oldKey]);
      await signInAgain();
      const session = await sessionCookie();
      expect(session.sig).toBe(signature(oldKey, cookieNames(sesame.config).session, session.value));

      const answer = await rotateOverApi();
      expect(answer.status).toBe(200);
      expect(answer.headers.get('cache-control')).toBe('no-store');
      expect(answer.json).toEqual({
        signs_from: expect.any(String),
        previous_keys: 1,
        previous_keys_verify_until: expect.any(String),
        removed_keys: 0,
      });
      const activation = Date.parse(answer.json.signs_from) - Date.now();
      expect(Math.abs(activation - COOKIE_KEY_ACTIVATION_SECONDS * 1000)).toBeLessThan(10_000);
      const [fresh, replaced] = await storedEntries(sesame);
      const newKey = keyOf(fresh);
      expect(fresh).toEqual({ key: newKey, activates_at: answer.json.signs_from });
      expect(replaced).toEqual({ key: oldKey, retired_at: answer.json.signs_from });

      // Every instance takes a cookie signed with the new key at once; the old key still signs.
      for (const app of instances()) {
        await waitUntil(() => takesSessionSignedBy(app, newKey, session.value), 15_000);
        expect(await signsNewCookiesWith(app, oldKey)).toBe(true);
      }

      // Its minute passed (here: its activation moved to now), every instance signs with it.
      await storeEntries(sesame, [
        { key: newKey, activates_at: past() },
        { key: oldKey, retired_at: past() },
      ]);
      for (const app of instances()) await waitUntil(() => signsNewCookiesWith(app, newKey), 3_000);
      for (const app of instances()) expect(await signedInAt(app)).toBe(true);
      // Signing in to an app uses the session at the provider, which signs its cookie anew.
      const pending = await beginLogin(rp);
      await finishLogin(rp, pending, await person.continueToApp(pending.url, REDIRECT_URI));
      const renewed = await sessionCookie();
      expect(renewed.sig).toBe(signature(newKey, cookieNames(sesame.config).session, renewed.value));

      const event = await latestAudit('cookie_keys.rotate');
      expect(event.actor).toBe(`api-key:${keys.adminId}`);
      expect(event.details).toEqual({
        previous_keys: 1,
        previous_keys_verify_until: answer.json.previous_keys_verify_until,
        removed_keys: 0,
        ip: '127.0.0.1',
      });
    }, 60_000);

    it('with revoke_previous, signs with the new key at once and signs everyone out on every instance', async () => {
      for (const app of instances()) expect(await signedInAt(app)).toBe(true);

      const answer = await rotateOverApi({ revoke_previous: true });
      expect(answer.status).toBe(200);
      expect(answer.json).toEqual({
        signs_from: expect.any(String),
        previous_keys: 0,
        previous_keys_verify_until: null,
        removed_keys: 2,
      });
      expect(Math.abs(Date.parse(answer.json.signs_from) - Date.now())).toBeLessThan(10_000);
      const newKey = await currentKey();
      expect(await storedEntries(sesame)).toEqual([newKey]);
      for (const app of instances()) await waitUntil(async () => !(await signedInAt(app)), 2_500);
      for (const app of instances()) expect(await signsNewCookiesWith(app, newKey)).toBe(true);

      await signInAgain();
      const session = await sessionCookie();
      expect(session.sig).toBe(signature(newKey, cookieNames(sesame.config).session, session.value));
      const event = await latestAudit('cookie_keys.revoke');
      expect(event.actor).toBe(`api-key:${keys.adminId}`);
      expect(event.details).toEqual({
        previous_keys: 0,
        previous_keys_verify_until: null,
        removed_keys: 2,
        ip: '127.0.0.1',
      });
    }, 60_000);

    it('refuses bad input with 400, and a key without the admin scope with 403, changing no key', async () => {
      const before = await storedEntries(sesame);
      const auditCount = async () =>
        (await sesame.db.selectFrom('audit_events').select('id').execute()).length;
      const events = await auditCount();

      await expectRefusedPosts(
        sesame,
        keys,
        '/keys/rotate-cookie-key',
        [
          [{ revoke_previous: 'true' }, 'revoke_previous'],
          [{ revoke_previous: 1 }, 'revoke_previous'],
          [{ revoke_previous: null }, 'revoke_previous'],
          [{ activate_in: 0 }, 'body'],
          [{ revoke_previous: true, everyone: true }, 'body'],
          [['revoke_previous'], 'body'],
        ],
        { revoke_previous: true },
      );

      expect(await storedEntries(sesame)).toEqual(before);
      expect(await auditCount()).toBe(events);
      for (const app of instances()) expect(await signedInAt(app)).toBe(true);
    }, 30_000);
  });
});

describe('an install whose cookie keys were stored before they could be rotated', () => {
  let sesame: TestApp;
  const legacyKey = 'a cookie key an earlier Sesame made, 43 chars';

  beforeAll(async () => {
    sesame = await startTestApp();
    // What every Sesame before rotation stored: a list of plain keys.
    await storeEntries(sesame, [legacyKey]);
    await sesame.restart();
  });

  afterAll(() => sesame.stop());

  it('signs with the stored key, keeps it verifying through a rotation, and stores it as replaced', async () => {
    expect(await loadCookieKeys(sesame.db, sesame.config)).toEqual({ keys: [legacyKey] });
    expect(await signsNewCookiesWith(sesame, legacyKey)).toBe(true);
    const person = new Person(sesame.baseUrl);
    const next = await person.signUp(
      await person.open(`${sesame.baseUrl}/account/login`),
      'legacy@example.com',
    );
    await person.browser.follow(next);
    expect((await person.browser.request('/account')).status).toBe(200);

    const result = await runCliOn(sesame, ['keys', 'rotate-cookie-key']);
    expect(result).toMatchObject({ code: 0, stderr: '' });
    expect(linesOf(result.stdout)[1]).toMatch(
      /^Earlier keys still verify until \S+, so nobody is signed out\.$/,
    );
    const [fresh, replaced] = await storedEntries(sesame);
    expect(replaced).toEqual({ key: legacyKey, retired_at: expect.any(String) });
    // Its minute of only verifying, passed.
    await storeEntries(sesame, [
      { key: keyOf(fresh), activates_at: past() },
      { key: legacyKey, retired_at: past() },
    ]);
    await waitUntil(() => signsNewCookiesWith(sesame, keyOf(fresh)), 3_000);
    expect((await person.browser.request('/account')).status).toBe(200);
  }, 60_000);
});
