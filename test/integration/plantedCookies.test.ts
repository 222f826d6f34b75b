import { randomBytes } from 'node:crypto';
import { asPage } from '../support/browser.js';
import { Person } from '../support/oidcFlow.js';
import { startTestApp, type TestApp } from '../support/testApp.js';

const ISSUER = 'https://id.sesame.test';

/**
 * Someone who may set cookies for Sesame's host without being Sesame: the browser's cookie
 * jar (tough-cookie, which keeps the name-prefix rules as browsers do) is told the cookie
 * comes from `origin` with these attributes.
 */
const planters = [
  // blog.sesame.test beside id.sesame.test may set cookies for all of sesame.test.
  ['a sibling subdomain', 'https://blog.sesame.test/', 'Domain=sesame.test; Path=/account; Secure'],
  // An answer over plain http, before the browser learned HSTS.
  ['a network attacker on plain http', 'http://id.sesame.test/account', 'Path=/account'],
] as const;

let sesame: TestApp;

beforeAll(async () => {
  sesame = await startTestApp({ ISSUER, TRUST_PROXY: 'true' });
});

afterAll(() => sesame.stop());

/** A new person, signed up through the account pages, whose /account shows their email. */
async function signedUp(): Promise<{ person: Person; email: string }> {
  const person = new Person(sesame.baseUrl, undefined, { connectTo: sesame.listenUrl });
  const email = `p${randomBytes(4).toString('hex')}@example.com`;
  const login = asPage(await person.browser.follow('/account/login?return_to=/account'));
  const account = asPage(await person.browser.follow(await person.signUp(login, email)));
  expect(account.text).toContain(email);
  return { person, email };
}

describe("a session cookie planted by another site does not sign a browser in as the planter's account", () => {
  it.each(planters)('planted by %s', async (_who, origin, attributes) => {
    const victim = await signedUp();
    const attacker = await signedUp();
    // The attacker's own cookies, signatures too, copied into the victim's browser on a longer
    // path: a browser sends those first, before the victim's own.
    const theirs = await attacker.person.browser.jar.getCookies(`${ISSUER}/account`);
    expect(theirs.length).toBeGreaterThan(0);
    for (const cookie of theirs) {
      await victim.person.browser.jar.setCookie(`${cookie.key}=${cookie.value}; ${attributes}`, origin, {
        ignoreError: true,
      });
    }

    const account = await victim.person.browser.request('/account');
    expect(account.status).toBe(200);
    expect(account.text).toContain(victim.email);
    expect(account.text).not.toContain(attacker.email);
  });
});

/** Where a sign-out mark may be planted from, beside the planters of a session cookie. */
const markPlanters = [
  ['a sibling subdomain', 'https://blog.sesame.test/', 'Domain=sesame.test; Path=/session/end; Secure'],
  ['a network attacker on plain http', 'http://id.sesame.test/session/end', 'Path=/session/end'],
  // As if the browser took the pair as Sesame's own: the mark names another browser.
  ['Sesame itself, in another browser', `${ISSUER}/`, 'Path=/; Secure'],
] as const;

describe("a sign-out mark planted by another site does not make the account page's sign-out submit itself", () => {
  const autoSubmits = (page: { text: string }) => page.text.includes('/static/js/logout.js');
  const SIGN_OUT_PAGE = '/session/end?client_id=sesame-account';

  it.each(markPlanters)('planted by %s', async (_who, origin, attributes) => {
    const { person: victim } = await signedUp();
    const { person: attacker } = await signedUp();
    // Anyone gets a mark, signature and all, from the account page's Sign out with their own form token.
    const marked = await attacker.browser.request('/account/logout', {
      form: { _csrf: (await attacker.browser.request('/account')).csrf() },
    });
    expect(marked.status).toBe(302);
    const mark = (await attacker.browser.jar.getCookies(`${ISSUER}${SIGN_OUT_PAGE}`)).filter((cookie) =>
      cookie.key.includes('signout'),
    );
    expect(mark).toHaveLength(2);
    for (const cookie of mark) {
      await victim.browser.jar.setCookie(
        `${cookie.key}=${cookie.value}; ${attributes}; Max-Age=3600`,
        origin,
        {
          ignoreError: true,
        },
      );
    }

    // Each visit of the victim to the sign-out page asks them.
    for (const _ of [1, 2]) {
      const page = await victim.browser.request(SIGN_OUT_PAGE);
      expect(page.status).toBe(200);
      expect(page.text).toContain('id="op.logoutForm"');
      expect(autoSubmits(page)).toBe(false);
    }
    expect((await victim.browser.request('/account')).status).toBe(200);
    // The victim's own Sign out still takes one click.
    const own = await victim.browser.request('/account/logout', {
      form: { _csrf: (await victim.browser.request('/account')).csrf() },
    });
    expect(autoSubmits(await victim.browser.request(own.location()!))).toBe(true);
  });
});
