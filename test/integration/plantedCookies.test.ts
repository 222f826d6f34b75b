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

describe("a session cookie planted by another site does not sign a browser in as the planter's account", () => {
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
