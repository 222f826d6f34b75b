import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { createOneTimeLink } from '../../src/accounts/oneTimeLinks.js';
import { issueSetupLink } from '../../src/accounts/setupLink.js';
import { createGroup } from '../../src/admin/groups.js';
import { cookieNames } from '../../src/cookieNames.js';
import { usersQueries } from '../../src/db/queries/users.js';
import { createClient, DEVICE_CODE_GRANT, updateClient } from '../../src/oidc/clients.js';
import { VIEWS_DIR } from '../../src/paths.js';
import { asPage, type PageResponse } from '../support/browser.js';
import { startAppWithMail } from '../support/mailServer.js';
import { Person, stepUp } from '../support/oidcFlow.js';
import { linkPath, useLink } from '../support/oneTimeLinkFlow.js';
import { startTestApp, type TestApp } from '../support/testApp.js';

const APP_CALLBACK = 'https://app.example/callback';

/** The directives of a Content-Security-Policy header, each with its sources. */
function directives(header: string | null): Record<string, string[]> {
  expect(header).toBeTruthy();
  return Object.fromEntries(
    header!
      .split(';')
      .map((part) => part.trim().split(/\s+/))
      .filter(([name]) => name)
      .map(([name, ...sources]) => [name!, sources]),
  );
}

/** A page Sesame serves to people: strict CSP, framing refused, and nothing inline that could run. */
function expectStrictPage(page: PageResponse) {
  expect({ url: page.url, type: page.headers.get('content-type') }).toEqual({
    url: page.url,
    type: expect.stringMatching(/^text\/html/),
  });
  const csp = directives(page.headers.get('content-security-policy'));
  expect(csp).toMatchObject({
    'default-src': ["'none'"],
    'script-src': ["'self'"],
    'style-src': ["'self'"],
    'img-src': ["'self'", 'data:'],
    'connect-src': ["'self'"],
    'base-uri': ["'none'"],
    'frame-ancestors': ["'none'"],
  });
  // No directive loosens the policy: nothing inline or eval'd may run, by any exception.
  expect(Object.values(csp).flat().join(' ')).not.toMatch(/'unsafe-|'nonce-|'sha\d+-|'strict-dynamic'|\*/);
  expect(page.headers.get('x-frame-options')).toBe('DENY');
  expect(page.headers.get('x-content-type-options')).toBe('nosniff');
  // Nothing inline: every script is a file, no event-handler or style attributes, no javascript: URLs.
  expect(page.text).not.toMatch(/<script(?![^>]*\ssrc=)[^>]*>/i);
  expect(page.text).not.toMatch(/<[^>]+\son[a-z]+\s*=/i);
  expect(page.text).not.toMatch(/<[^>]+\sstyle\s*=/i);
  expect(page.text).not.toMatch(/javascript:/i);
}

/** An authorization request as an app sends it (PKCE S256), without openid-client's discovery. */
function authorizationUrl(sesame: TestApp, clientId: string, scope = 'openid email') {
  const verifier = randomBytes(32).toString('base64url');
  const url = new URL('/auth', sesame.baseUrl);
  url.search = new URLSearchParams({
    client_id: clientId,
    response_type: 'code',
    redirect_uri: APP_CALLBACK,
    scope,
    state: randomBytes(8).toString('hex'),
    code_challenge: createHash('sha256').update(verifier).digest('base64url'),
    code_challenge_method: 'S256',
  }).toString();
  return url.toString();
}

/** What a page holding a form token has: Sesame's CSRF field or meta tag, or the provider's xsrf field. */
const FORM_TOKEN = /name="(_csrf|xsrf|csrf-token)"/;

const uidOf = (page: PageResponse) => /\/interaction\/([^/?#]+)/.exec(page.url)![1]!;

/** The views that are whole pages (partials start with "_"; the layout wraps the others). */
function pageViews(dir = VIEWS_DIR, prefix = ''): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    if (entry.isDirectory()) return pageViews(path.join(dir, entry.name), `${prefix}${entry.name}/`);
    const name = entry.name.replace(/\.eta$/, '');
    // views/mail/ holds the mails' bodies, not pages a browser loads.
    if (prefix === 'mail/') return [];
    return name.startsWith('_') || name === 'layout' ? [] : [`${prefix}${name}`];
  });
}

describe('every HTML page has a strict Content-Security-Policy and no inline script', () => {
  let sesame: TestApp;
  let person: Person;
  let clientId: string;
  const seen = new Map<string, PageResponse>();

  beforeAll(async () => {
    sesame = await startTestApp();
    ({
      client: { client_id: clientId },
    } = await createClient(sesame.db, { name: 'Notes', redirect_uris: [APP_CALLBACK] }, 'test'));
    person = new Person(sesame.baseUrl);
  });

  afterAll(() => sesame.stop());

  /** Records the page as the rendering of `view`, after checking it shows what that view shows. */
  function saw(view: string, page: PageResponse, marker: string | RegExp) {
    expect(page.text).toMatch(marker);
    seen.set(view, page);
    return page;
  }

  it('renders each view once, strictly', async () => {
    const login = saw(
      'login',
      await person.open(authorizationUrl(sesame, clientId)),
      'Sign in with a passkey',
    );
    const uid = uidOf(login);
    saw('signup', await person.browser.request(`/interaction/${uid}/signup`), 'Create account');
    const consent = saw(
      'consent',
      asPage(await person.browser.follow(await person.signUp(login, 'csp@example.com'))),
      '>Allow<',
    );
    await person.browser.request(`/interaction/${uidOf(consent)}/consent`, {
      form: { _csrf: consent.csrf(), decision: 'allow' },
    });
    saw(
      'error',
      await person.browser.request(`/interaction/${randomBytes(16).toString('base64url')}`),
      'expired',
    );
    saw('account', await person.browser.request('/account'), 'Your account');
    saw('admin/forbidden', await person.browser.request('/admin/clients'), 'Administrators only');
    const setup = (await issueSetupLink(sesame.db, sesame.config))!;
    saw(
      'setup',
      await new Person(sesame.baseUrl).browser.request(new URL(setup.url).pathname),
      'Create a passkey',
    );

    const user = (await usersQueries.findByEmail(sesame.db, 'csp@example.com'))!;
    await usersQueries.update(sesame.db, user.id, { isAdmin: true });
    saw('admin/clients', await person.browser.request('/admin/clients'), 'Register a client');
    const newClient = saw(
      'admin/client-new',
      await person.browser.request('/admin/clients/new'),
      'Client type',
    );
    // Minting a secret or key, like issuing a link, needs a recent passkey step-up.
    expect((await stepUp(person, newClient.csrf())).status).toBe(200);
    const secret = saw(
      'admin/client-secret',
      await person.browser.request('/admin/clients', {
        form: {
          _csrf: newClient.csrf(),
          _once: newClient.field('_once'),
          name: 'Wiki',
          redirect_uris: APP_CALLBACK,
          type: 'confidential',
        },
      }),
      'id="client-secret"',
    );
    const wikiId = /id="client-id">([^<]+)</.exec(secret.text)![1]!;
    saw('admin/client', await person.browser.request(`/admin/clients/${wikiId}`), 'Rotate secret');
    saw('admin/confirm', await person.browser.request(`/admin/clients/${wikiId}/delete`), 'Delete client');
    const users = saw('admin/users', await person.browser.request('/admin/users'), 'Invite someone');
    saw('admin/audit', await person.browser.request('/admin/audit'), 'Activity');
    saw('admin/mail', await person.browser.request('/admin/mail'), 'Mail is not configured');
    const apiKeys = saw('admin/api-keys', await person.browser.request('/admin/api-keys'), 'Create API key');
    saw(
      'admin/api-key-created',
      await person.browser.request('/admin/api-keys', {
        form: { _csrf: apiKeys.csrf(), _once: apiKeys.field('_once'), name: 'terraform' },
      }),
      'id="api-key"',
    );
    // The same form sent again creates no second key.
    saw(
      'admin/form-spent',
      await person.browser.request('/admin/api-keys', {
        form: { _csrf: apiKeys.csrf(), _once: apiKeys.field('_once'), name: 'terraform' },
      }),
      'API key already created',
    );
    saw('admin/passkey-tenants', await person.browser.request('/admin/passkey-tenants'), 'Passkey API');
    const newTenant = saw(
      'admin/passkey-tenant-new',
      await person.browser.request('/admin/passkey-tenants/new'),
      'Register app',
    );
    const tenantKey = saw(
      'admin/passkey-tenant-key',
      await person.browser.request('/admin/passkey-tenants', {
        form: {
          _csrf: newTenant.csrf(),
          _once: newTenant.field('_once'),
          name: 'Shop',
          origins: 'https://shop.example.com',
        },
      }),
      'id="tenant-id"',
    );
    const tenantId = /id="tenant-id"[^>]*>([^<]+)</.exec(tenantKey.text)![1]!;
    saw('admin/passkey-tenant', await person.browser.request(`/admin/passkey-tenants/${tenantId}`), 'Shop');
    saw(
      'admin/passkey-tenant-rotate-key',
      await person.browser.request(`/admin/passkey-tenants/${tenantId}/rotate-key`),
      'Rotate the API key',
    );
    saw(
      'admin/passkey-tenant-signing-key',
      await person.browser.request(`/admin/passkey-tenants/${tenantId}/rotate-signing-key`),
      'signing key',
    );
    const issued = saw(
      'admin/link',
      await person.browser.request('/admin/users/invite', {
        form: { _csrf: users.csrf(), email: 'invitee@example.com' },
      }),
      'id="one-time-link"',
    );
    const link = /id="one-time-link"[^>]*>([^<]+)</.exec(issued.text)![1]!;
    saw('link', await new Person(sesame.baseUrl).browser.request(linkPath(link)), 'Create a passkey');

    const group = await createGroup(sesame.db, 'Finance', 'test');
    saw('admin/groups', await person.browser.request('/admin/groups'), 'Create a group');
    saw('admin/group', await person.browser.request(`/admin/groups/${group.id}`), 'Members');
    saw('admin/resources', await person.browser.request('/admin/resources'), 'Register an API');
    saw('admin/branding', await person.browser.request('/admin/branding'), 'Save branding');
    saw('admin/refused', await person.browser.request('/admin/clients/no-such-client'), 'Go to the clients');
    // An app only Finance may use: the person, not a member, is turned away.
    const { client: ledger } = await createClient(
      sesame.db,
      { name: 'Ledger', redirect_uris: [APP_CALLBACK] },
      'test',
    );
    await updateClient(sesame.db, ledger.client_id, { allowed_groups: ['Finance'] }, 'test');
    saw('no-access', await person.open(authorizationUrl(sesame, ledger.client_id)), 'access to Ledger');

    // The device flow's pages (RFC 8628): the code form, its check, and the end.
    const { client: tv } = await createClient(
      sesame.db,
      { name: 'TV', public: true, first_party: true, grant_types: [DEVICE_CODE_GRANT] },
      'test',
    );
    const started = (await (
      await fetch(`${sesame.baseUrl}/device/auth`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ client_id: tv.client_id, scope: 'openid' }).toString(),
      })
    ).json()) as { user_code: string };
    const xsrfOf = (page: PageResponse) => /name="xsrf" value="([^"]+)"/.exec(page.text)![1]!;
    // verification_uri_complete: the code page filled in, which posts the code with the form token.
    const complete = await person.browser.request(`/device?user_code=${started.user_code}`);
    expect(xsrfOf(complete)).toBeTruthy();
    expect(complete.headers.get('cache-control')).toBe('no-store');
    expect(complete.text).toContain(`value="${started.user_code}"`);
    expectStrictPage(complete);
    const codeForm = saw('device', await person.browser.request('/device'), 'Enter the code');
    const check = saw(
      'device-confirm',
      await person.browser.request('/device', {
        form: { xsrf: xsrfOf(codeForm), user_code: started.user_code },
      }),
      started.user_code,
    );
    // A device's approval always asks on the consent page (a first-party app's too); then the end.
    const confirmed = await person.browser.request('/device', {
      form: { xsrf: xsrfOf(check), user_code: started.user_code, confirm: 'yes' },
    });
    const deviceConsent = asPage(await person.browser.follow(confirmed.location()!));
    const allowed = await person.browser.request(`/interaction/${uidOf(deviceConsent)}/consent`, {
      form: { _csrf: deviceConsent.csrf(), decision: 'allow' },
    });
    saw('device-done', asPage(await person.browser.follow(allowed.location()!)), 'Your device is signed in');

    // The provider's own pages: sign-out confirmation, and the page after it.
    const logout = saw('logout', await person.browser.request('/session/end'), 'Sign out?');
    const form = /<form[^>]*action="([^"]+)"[^>]*>[\s\S]*?name="xsrf" value="([^"]+)"/.exec(logout.text)!;
    const done = await person.browser.request(form[1]!, { form: { xsrf: form[2]!, logout: 'yes' } });
    saw('logged-out', asPage(await person.browser.follow(done.location()!)), 'You are signed out');
    // Signed out, an end-session request has nothing to confirm: its page submits itself.
    saw('auto-submit', await person.browser.request('/session/end'), '<h1>Signing out</h1>');
  });

  it('renders the pages that mail brings, strictly', async () => {
    const withMail = await startAppWithMail({ SIGNUP: 'open-verified' });
    try {
      const { client } = await createClient(
        withMail.sesame.db,
        { name: 'Notes', redirect_uris: [APP_CALLBACK] },
        'test',
      );
      const someone = new Person(withMail.sesame.baseUrl);
      const login = await someone.open(authorizationUrl(withMail.sesame, client.client_id));
      saw('recover', await someone.browser.request('/recover'), 'Send me a link');
      const next = await someone.signUp(login, 'mail-csp@example.com');
      saw('verify-email', asPage(await someone.browser.follow(next)), 'Confirm your email address');
      const [welcome] = await withMail.mail.waitFor('mail-csp@example.com');
      const link = /https?:\/\/\S+\/verify\/[A-Za-z0-9_-]{43}/.exec(welcome!.text)![0];
      saw('email-verified', await someone.browser.request(link), 'Email address confirmed');
    } finally {
      await withMail.stop();
    }
  });

  it('saw every page view, each with a strict policy', () => {
    expect([...seen.keys()].sort()).toEqual(pageViews().sort());
    for (const page of seen.values()) expectStrictPage(page);
  });

  it("keeps the forms of the account, admin, one-time link, setup and recovery pages on Sesame (form-action 'self'), not a sign-in's", () => {
    const stayHere = /^\/(?:account|admin|link|setup|recover)(?:\/|$)/;
    const closed = [...seen].filter(([, page]) => stayHere.test(new URL(page.url).pathname));
    expect(closed.map(([view]) => view)).toEqual(
      expect.arrayContaining(['account', 'admin/clients', 'admin/confirm', 'link', 'setup', 'recover']),
    );
    for (const [view, page] of seen) {
      const formAction = directives(page.headers.get('content-security-policy'))['form-action'];
      const expected = stayHere.test(new URL(page.url).pathname) ? ["'self'"] : undefined;
      expect({ view, formAction }).toEqual({ view, formAction: expected });
    }
    // The consent form's POST ends in a redirect to the app: its page must not close form-action.
    expect(seen.get('consent')).toBeDefined();
  });

  it('lets no cache keep a page that holds a form token', () => {
    const withToken = [...seen].filter(([, page]) => FORM_TOKEN.test(page.text));
    expect(withToken.map(([view]) => view)).toEqual(expect.arrayContaining(['signup', 'login', 'device']));
    for (const [view, page] of withToken)
      expect({ view, cache: page.headers.get('cache-control') }).toEqual({ view, cache: 'no-store' });
  });

  it('lets the consent page show an app’s https logo_uri, from that origin only', async () => {
    const { client } = await createClient(
      sesame.db,
      { name: 'Gallery', redirect_uris: [APP_CALLBACK], logo_uri: 'https://cdn.example.com/gallery.png' },
      'test',
    );
    const visitor = new Person(sesame.baseUrl);
    const login = await visitor.open(authorizationUrl(sesame, client.client_id));
    expect(directives(login.headers.get('content-security-policy'))['img-src']).toEqual(["'self'", 'data:']);
    const consent = asPage(await visitor.browser.follow(await visitor.signUp(login, 'logo@example.com')));
    expect(consent.text).toContain(
      '<img class="client-logo" src="https://cdn.example.com/gallery.png" alt="Gallery" referrerpolicy="no-referrer">',
    );
    const csp = directives(consent.headers.get('content-security-policy'));
    expect(csp['img-src']).toEqual(["'self'", 'data:', 'https://cdn.example.com']);
    expect(csp).toMatchObject({
      'default-src': ["'none'"],
      'script-src': ["'self'"],
      'style-src': ["'self'"],
    });
  });

  it('refuses a logo_uri whose host would widen the CSP or add a directive, and shows no logo for one stored before', async () => {
    for (const logo of [
      'https://*;sandbox/x.png',
      'https://*/x.png',
      "https://a'b.example/x.png",
      'http://cdn.example.com/x.png',
    ]) {
      await expect(
        createClient(sesame.db, { name: 'Odd', redirect_uris: [APP_CALLBACK], logo_uri: logo }, 'test'),
      ).rejects.toThrow(/logo_uri/);
    }
    const { client } = await createClient(sesame.db, { name: 'Odd', redirect_uris: [APP_CALLBACK] }, 'test');
    await sesame.db
      .updateTable('clients')
      .set({ logo_uri: 'https://*;sandbox/x.png' })
      .where('client_id', '=', client.client_id)
      .execute();
    const visitor = new Person(sesame.baseUrl);
    const login = await visitor.open(authorizationUrl(sesame, client.client_id));
    const consent = asPage(await visitor.browser.follow(await visitor.signUp(login, 'oddlogo@example.com')));
    expect(consent.text).toContain('>Allow<');
    expect(consent.text).not.toContain('client-logo');
    expect(directives(consent.headers.get('content-security-policy'))['img-src']).toEqual([
      "'self'",
      'data:',
    ]);
    expect(consent.headers.get('content-security-policy')).not.toContain('sandbox');
  });

  it('serves error pages the same way: the provider’s, a bad link’s, an unknown path’s', async () => {
    const visitor = new Person(sesame.baseUrl);
    const pages = [
      await visitor.browser.request('/auth?client_id=nobody&response_type=code&scope=openid'),
      await visitor.browser.request(`/link/${randomBytes(32).toString('base64url')}`),
      await visitor.browser.request('/account/callback?state=x'),
      await visitor.browser.request('/no/such/page'),
    ];
    for (const page of pages) {
      expect(page.status).toBeGreaterThanOrEqual(400);
      if (page.headers.get('content-type')?.startsWith('text/html')) expectStrictPage(page);
      else expect(page.headers.get('content-security-policy')).toBeTruthy();
    }
  });
});

/** Set-Cookie flags, by cookie name: HttpOnly, SameSite, Secure, Path and Domain. */
function cookieFlags(headers: string[]) {
  return headers.map((header) => {
    const [pair, ...attributes] = header.split(';').map((part) => part.trim());
    const names = attributes.map((a) => a.split('=')[0]!.toLowerCase());
    const attribute = (name: string) =>
      attributes.find((a) => a.toLowerCase().startsWith(`${name}=`))?.slice(name.length + 1);
    return {
      name: pair!.split('=')[0]!,
      httpOnly: names.includes('httponly'),
      sameSite: attribute('samesite')?.toLowerCase(),
      secure: names.includes('secure'),
      path: attribute('path'),
      domain: attribute('domain'),
    };
  });
}

describe('cookies are HttpOnly and SameSite=Lax, and Secure when ISSUER is https', () => {
  /**
   * Signs a person up through an app (consent too), opens /account, picks a language, uses a
   * one-time link, and signs out: every cookie Sesame sets. The browser's cookie jar keeps the
   * name-prefix rules as browsers do, so a prefixed cookie set without its attributes would be
   * dropped, and the visit would not get through.
   */
  async function cookiesOfAFullVisit(sesame: TestApp, person: Person): Promise<string[]> {
    const {
      client: { client_id },
    } = await createClient(sesame.db, { name: 'Notes', redirect_uris: [APP_CALLBACK] }, 'test');
    const login = await person.open(authorizationUrl(sesame, client_id));
    const callback = await person.continueToApp(
      await person.signUp(login, `c${randomBytes(4).toString('hex')}@example.com`),
      APP_CALLBACK,
    );
    expect(new URL(callback).searchParams.get('code')).toBeTruthy();
    const account = asPage(await person.browser.follow('/account/login?return_to=/account'));
    expect(account.text).toContain('Your account');
    const chosen = await person.browser.request('/account/language', {
      form: { _csrf: account.csrf(), locale: 'en' },
    });
    expect(chosen.status).toBe(303);
    const { url } = await createOneTimeLink(sesame.db, sesame.config, {
      email: `l${randomBytes(4).toString('hex')}@example.com`,
      actor: 'test',
    });
    expect((await useLink(person, url)).status).toBe(200);
    // "Lost your passkey?" (mail is configured): its answer page names the address by a cookie.
    const recover = await person.browser.request('/recover');
    const asked = await person.browser.request('/recover', {
      form: { _csrf: recover.csrf(), email: `r${randomBytes(4).toString('hex')}@example.com` },
    });
    expect(asked.status).toBe(303);
    expect((await person.browser.request(asked.location()!)).text).toContain('Check your mail');
    const signOut = await person.browser.request('/account/logout', {
      form: { _csrf: (await person.browser.request('/account')).csrf() },
    });
    expect(signOut.status).toBe(302);
    // The confirmation, told by its cookie that the person chose to sign out, submits itself (and spends that cookie).
    const confirmation = await person.browser.request(signOut.location()!);
    expect(confirmation.text).toContain('/static/js/logout.js');
    return person.browser.setCookieHeaders;
  }

  /** Every cookie of cookieNames.ts, and the session's signature. */
  const expectedCookies = (sesame: TestApp) => {
    const names = Object.values(cookieNames(sesame.config));
    return [...names, `${cookieNames(sesame.config).session}.sig`];
  };

  it('over http (a local start): HttpOnly and SameSite=Lax on every cookie, whose names have no prefix', async () => {
    const { sesame, stop } = await startAppWithMail();
    try {
      const flags = cookieFlags(await cookiesOfAFullVisit(sesame, new Person(sesame.baseUrl)));
      expect(flags.map((f) => f.name)).toEqual(expect.arrayContaining(expectedCookies(sesame)));
      for (const cookie of flags) {
        expect(cookie).toEqual({ ...cookie, httpOnly: true, sameSite: 'lax', domain: undefined });
        // A browser refuses a prefixed cookie that is not Secure.
        expect(cookie.name).not.toMatch(/^__(?:Host|Secure)-/i);
      }
    } finally {
      await stop();
    }
  });

  it.each([
    ['a TLS proxy', { TRUST_PROXY: 'true' }],
    // A proxy on the same machine that the operator did not name: pages with a form answered 500.
    ['a TLS proxy that TRUST_PROXY does not name', {}],
  ])(
    'with an https ISSUER behind %s: Secure as well, on every cookie, each named with a prefix that makes browsers hold it to that',
    async (_name, env) => {
      const { sesame, stop } = await startAppWithMail({ ISSUER: 'https://sesame.test', ...env });
      try {
        const person = new Person(sesame.baseUrl, undefined, { connectTo: sesame.listenUrl });
        const flags = cookieFlags(await cookiesOfAFullVisit(sesame, person));
        expect(flags.map((f) => f.name)).toEqual(expect.arrayContaining(expectedCookies(sesame)));
        for (const cookie of flags) {
          expect(cookie).toEqual({
            ...cookie,
            httpOnly: true,
            sameSite: 'lax',
            secure: true,
            domain: undefined,
          });
          // __Host-: Path=/ and no Domain, or a browser drops it (RFC 6265bis §4.1.3.2); __Secure-
          // for the provider's interaction cookies, which live on their interaction's path.
          if (cookie.name.startsWith('__Host-')) expect(cookie).toEqual({ ...cookie, path: '/' });
          else expect(cookie.name).toMatch(/^__Secure-/);
        }
      } finally {
        await stop();
      }
    },
  );
});
