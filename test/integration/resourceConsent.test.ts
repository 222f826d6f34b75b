import { randomBytes } from 'node:crypto';
import { decodeJwt } from 'jose';
import { createClient } from '../../src/oidc/clients.js';
import { createResource } from '../../src/oidc/resources.js';
import { asPage, type PageResponse, stoppedAt } from '../support/browser.js';
import { countAuthorizationCodes } from '../support/countRows.js';
import {
  beginLogin,
  discoverRp,
  finishLogin,
  type PendingLogin,
  Person,
  type TestRp,
} from '../support/oidcFlow.js';
import { startTestApp, type TestApp } from '../support/testApp.js';

const REDIRECT_URI = 'http://127.0.0.1:8914/callback';
/** An API without scopes: a token for it is all or nothing. */
const HR = 'https://hr.example';
const PAYROLL = 'https://payroll.example';

const atApp = (url: string) => url.startsWith(REDIRECT_URI);

/**
 * An app names APIs with `resource=` (RFC 8707); the token it gets for one carries the
 * person's `sub`. A person consents to each API an app would use for them, as to its scopes:
 * the consent page names it, `prompt=none` cannot skip it, and declining grants nothing.
 */
describe('a person consents to each API an app would use for them', () => {
  let sesame: TestApp;
  let rp: TestRp;
  let firstParty: TestRp;

  beforeAll(async () => {
    sesame = await startTestApp();
    await createResource(sesame.db, { identifier: HR, name: 'HR <records> & co' }, 'test');
    await createResource(sesame.db, { identifier: PAYROLL, name: 'Payroll', scopes: ['pay'] }, 'test');
    const rpFor = async (firstPartyClient: boolean) => {
      const { client, client_secret } = await createClient(
        sesame.db,
        { name: 'Some app', redirect_uris: [REDIRECT_URI], first_party: firstPartyClient },
        'test',
      );
      return discoverRp(
        sesame.baseUrl,
        { client_id: client.client_id, client_secret: client_secret! },
        REDIRECT_URI,
      );
    };
    rp = await rpFor(false);
    firstParty = await rpFor(true);
  });

  afterAll(() => sesame.stop());

  /** A new person signs up through the app's request; returns the page or callback that follows. */
  async function signUp(person: Person, app: TestRp, scope: string, extra: Record<string, string> = {}) {
    const pending = await beginLogin(app, scope, extra);
    const next = await person.signUp(
      await person.open(pending.url),
      `c${randomBytes(4).toString('hex')}@example.com`,
    );
    return { pending, after: await person.browser.follow(next, atApp) };
  }

  /** Signs a new person up at the app for `openid` alone, allowing it: the app then holds a grant. */
  async function personWithGrant() {
    const person = new Person(sesame.baseUrl);
    const { pending, after } = await signUp(person, rp, 'openid');
    await finishLogin(rp, pending, await person.continueToApp(asPage(after).url, REDIRECT_URI));
    return person;
  }

  /** The app asks again in the person's browser; returns where the browser stops. */
  async function ask(person: Person, app: TestRp, scope: string, extra: Record<string, string>) {
    const pending = await beginLogin(app, scope, extra);
    return { pending, after: await person.browser.follow(pending.url, atApp) };
  }

  /** The callback of a request asked with prompt=none, as a URL. */
  async function askSilently(person: Person, app: TestRp, scope: string, resource: string) {
    const { pending, after } = await ask(person, app, scope, { resource, prompt: 'none' });
    return { pending, callback: new URL(stoppedAt(after)) };
  }

  /** The access token the app redeems the callback's code for, as the API reads it. */
  async function accessTokenFor(app: TestRp, pending: PendingLogin, callback: string | URL) {
    const tokens = await finishLogin(app, pending, callback.toString());
    return { sub: tokens.claims()!.sub, payload: decodeJwt(tokens.access_token) };
  }

  /** The consent page's list of what the app would get, as the person reads it. */
  const consentList = (page: PageResponse) =>
    /<ul class="scopes">([\s\S]*?)<\/ul>/.exec(page.text)?.[1] ?? '';

  it('names the API on the first sign-in’s consent page, then gives its token with prompt=none', async () => {
    const person = new Person(sesame.baseUrl);
    const { pending, after } = await signUp(person, rp, 'openid', { resource: HR });
    const page = asPage(after);
    expect(consentList(page)).toContain('Know who you are');
    // The name an admin gave the API, escaped as every value on a page.
    expect(consentList(page)).toContain('<li>Use HR &lt;records&gt; &amp; co for you</li>');
    const first = await accessTokenFor(rp, pending, await person.continueToApp(page.url, REDIRECT_URI));
    expect(first.payload).toMatchObject({ aud: HR, sub: first.sub });

    const silent = await askSilently(person, rp, 'openid', HR);
    expect(silent.callback.searchParams.get('error')).toBeNull();
    expect((await accessTokenFor(rp, silent.pending, silent.callback)).payload).toMatchObject({ aud: HR });
  }, 60_000);

  it('answers prompt=none for an API the app’s grant does not cover with consent_required, storing no code', async () => {
    const person = await personWithGrant();
    const before = await countAuthorizationCodes(sesame.db);
    for (const [scope, resource] of [
      ['openid', HR],
      ['openid', PAYROLL],
      ['openid pay', PAYROLL],
    ] as const) {
      const { callback } = await askSilently(person, rp, scope, resource);
      expect([resource, scope, callback.searchParams.get('error')]).toEqual([
        resource,
        scope,
        'consent_required',
      ]);
      expect(callback.searchParams.get('code')).toBeNull();
    }
    expect(await countAuthorizationCodes(sesame.db)).toBe(before);
  }, 60_000);

  it('asks once for a new API, naming it with the scopes asked for, and is silent for it afterwards', async () => {
    const person = await personWithGrant();
    const { pending, after } = await ask(person, rp, 'openid pay', { resource: PAYROLL });
    const page = asPage(after);
    expect(consentList(page)).toContain('<li>Use Payroll for you: pay</li>');
    // The API's scope is listed with it, not again as a permission on its own.
    expect(consentList(page)).not.toContain('&quot;pay&quot;');
    const consented = await accessTokenFor(rp, pending, await person.continueToApp(page.url, REDIRECT_URI));
    expect(consented.payload).toMatchObject({ aud: PAYROLL, scope: 'pay', sub: consented.sub });

    for (const scope of ['openid pay', 'openid']) {
      const silent = await askSilently(person, rp, scope, PAYROLL);
      expect([scope, silent.callback.searchParams.get('error')]).toEqual([scope, null]);
      expect((await accessTokenFor(rp, silent.pending, silent.callback)).payload).toMatchObject({
        aud: PAYROLL,
      });
    }
  }, 60_000);

  it('names the API in the person’s language', async () => {
    const person = new Person(sesame.baseUrl);
    person.browser.headers['accept-language'] = 'de';
    const { after } = await signUp(person, rp, 'openid pay', { resource: PAYROLL });
    expect(consentList(asPage(after))).toContain('<li>Payroll für Sie nutzen: pay</li>');
  }, 60_000);

  it('gives no code and grants nothing when the person declines an API', async () => {
    const person = await personWithGrant();
    const before = await countAuthorizationCodes(sesame.db);
    const { after } = await ask(person, rp, 'openid', { resource: HR });
    const callback = new URL(await person.continueToApp(asPage(after).url, REDIRECT_URI, 'deny'));
    expect(callback.searchParams.get('error')).toBe('access_denied');
    expect(callback.searchParams.get('code')).toBeNull();
    expect(await countAuthorizationCodes(sesame.db)).toBe(before);
    // Declining recorded nothing: the app still cannot get a token for the API silently.
    expect((await askSilently(person, rp, 'openid', HR)).callback.searchParams.get('error')).toBe(
      'consent_required',
    );
  }, 60_000);

  it('still gives a first-party app an API’s token without a consent page, an API without scopes too', async () => {
    const person = new Person(sesame.baseUrl);
    const { pending, after } = await signUp(person, firstParty, 'openid', { resource: HR });
    expect((await accessTokenFor(firstParty, pending, stoppedAt(after))).payload).toMatchObject({ aud: HR });
    for (const [scope, resource] of [
      ['openid', HR],
      ['openid', PAYROLL],
      ['openid pay', PAYROLL],
    ] as const) {
      const silent = await askSilently(person, firstParty, scope, resource);
      expect([resource, scope, silent.callback.searchParams.get('error')]).toEqual([resource, scope, null]);
      expect((await accessTokenFor(firstParty, silent.pending, silent.callback)).payload).toMatchObject({
        aud: resource,
      });
    }
  }, 60_000);
});
