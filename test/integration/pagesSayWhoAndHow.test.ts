import { createOneTimeLink } from '../../src/accounts/oneTimeLinks.js';
import { issueSetupLink } from '../../src/accounts/setupLink.js';
import { createClient, deleteClient } from '../../src/oidc/clients.js';
import { asPage, type PageResponse } from '../support/browser.js';
import { waitUntil } from '../support/eventually.js';
import { beginLogin, discoverRp, Person, type TestRp } from '../support/oidcFlow.js';
import { onboard } from '../support/oneTimeLinkFlow.js';
import { startTestApp, type TestApp } from '../support/testApp.js';

const REDIRECT_URI = 'http://127.0.0.1:8902/callback';
const NOSCRIPT = /<noscript><p class="status" role="alert">Passkeys need JavaScript\. [^<]*<\/p><\/noscript>/;

/** The form on a page that posts to `action`, with its CSRF field. */
const formPostingTo = (page: PageResponse, action: string) =>
  new RegExp(
    `<form method="post" action="${action}"[^>]*>\\s*<input type="hidden" name="_csrf" value="${page.csrf()}">`,
  );

/** The sign-in page's link to its sign-up. */
const signupPathOn = (login: PageResponse) => /href="(\/interaction\/[^/"]+\/signup)"/.exec(login.text)![1]!;

describe('pages say who is signed in and what a field does', () => {
  let sesame: TestApp;
  let rp: TestRp;
  let member: Person;

  beforeAll(async () => {
    sesame = await startTestApp();
    const { client, client_secret } = await createClient(
      sesame.db,
      { name: 'Wiki', redirect_uris: [REDIRECT_URI] },
      'test',
    );
    rp = await discoverRp(sesame.baseUrl, { client_id: client.client_id, client_secret }, REDIRECT_URI);
    ({ person: member } = await onboard(sesame, 'member@example.com'));
  });

  afterAll(() => sesame.stop());

  it('answers a signed-in non-admin at /admin with a 403 page naming the account, with sign-out and a way back', async () => {
    const page = asPage(await member.browser.follow('/admin'));
    expect(page.status).toBe(403);
    expect(page.text).toContain('This page is for Sesame administrators.');
    expect(page.text).toContain('You are signed in as <strong>member@example.com</strong>');
    expect(page.text).not.toContain('Something went wrong');
    expect(page.text).toMatch(formPostingTo(page, '/account/logout'));
    expect(page.text).toMatch(/<button type="submit"[^>]*>Sign out<\/button>/);
    expect(page.text).toMatch(/<a class="button" href="\/account">Go to your account<\/a>/);

    // The sign-out it offers works: it ends the session at the provider.
    const signOut = await member.browser.request('/account/logout', { form: { _csrf: page.csrf() } });
    expect(signOut.status).toBe(302);
    expect(signOut.location()).toMatch(new RegExp(`^${sesame.baseUrl}/session/end\\?`));

    // A script still gets the JSON error.
    const json = await onboard(sesame, 'script@example.com');
    const api = await json.person.browser.request('/admin/users', {
      headers: { accept: 'application/json' },
    });
    expect(api.status).toBe(403);
    expect(api.json()).toMatchObject({ error: 'forbidden' });
  });

  it('shows on the consent page which account is signed in, with a way to sign out', async () => {
    const { person } = await onboard(sesame, 'consent@example.com');
    const consent = asPage(await person.browser.follow((await beginLogin(rp)).url));
    expect(consent.text).toContain('>Allow<');
    expect(consent.text).toContain('Signed in as <strong>consent@example.com</strong>');
    expect(consent.text).toMatch(formPostingTo(consent, '/account/logout'));
    expect(consent.text).toMatch(/Not you\? <button type="submit" class="link">Sign out<\/button>/);
  });

  it('begins the consent question with a capital where no app name stands first, in every language', async () => {
    const { person } = await onboard(sesame, 'nameless@example.com');
    // An app deleted while its consent page is open has no name left to show.
    const leads: Array<[string, string | undefined]> = [];
    for (const language of ['en', 'de', 'fr', 'es']) {
      const { client, client_secret } = await createClient(
        sesame.db,
        { name: 'Short-lived', redirect_uris: [REDIRECT_URI] },
        'test',
      );
      const app = await discoverRp(
        sesame.baseUrl,
        { client_id: client.client_id, client_secret },
        REDIRECT_URI,
      );
      const consent = asPage(
        await person.browser.follow((await beginLogin(app, 'openid', { ui_locales: language })).url),
      );
      expect(consent.text).toContain('<p class="lead"><strong>Short-lived</strong>');
      expect(await deleteClient(sesame.db, client.client_id, 'test')).toBe(true);
      let lead: string | undefined;
      await waitUntil(async () => {
        const again = await person.browser.request(new URL(consent.url).pathname);
        lead = /<p class="lead">(.*?)<\/p>/.exec(again.text)?.[1];
        return lead !== undefined && !lead.includes('Short-lived');
      }, 5_000);
      leads.push([language, lead]);
    }
    expect(leads).toEqual([
      ['en', 'The application would like to:'],
      ['de', 'Die App möchte:'],
      ['fr', 'L’application souhaite :'],
      ['es', 'La aplicación quiere:'],
    ]);
    // An app with a name still begins the sentence.
    const named = asPage(
      await person.browser.follow((await beginLogin(rp, 'openid', { ui_locales: 'de' })).url),
    );
    expect(named.text).toContain('<p class="lead"><strong>Wiki</strong> möchte:</p>');
  });

  it("calls Sesame's own account pages 'your account' at sign-in, in the person's language, and names no app at sign-out", async () => {
    for (const [language, lead, signupLead] of [
      [
        'en',
        'to continue to <strong>your account</strong>',
        'on <strong>Sesame</strong>. Your device will create a passkey',
      ],
      [
        'de',
        'um <strong>Ihr Konto</strong> zu nutzen',
        'bei <strong>Sesame</strong>. Ihr Gerät erstellt einen Passkey',
      ],
      [
        'fr',
        'vers <strong>votre compte</strong>',
        'sur <strong>Sesame</strong>. Votre appareil va créer une clé d’accès',
      ],
      [
        'es',
        '<strong>su cuenta</strong>',
        'en <strong>Sesame</strong>. Su dispositivo creará una llave de acceso',
      ],
    ] as const) {
      const visitor = new Person(sesame.baseUrl);
      visitor.browser.headers['accept-language'] = language;
      const login = asPage(await visitor.browser.follow('/account'));
      expect(login.text).toContain(lead);
      expect(login.text).not.toContain('Sesame account');
      // Creating an account "for your account" says nothing: the sign-up names where the account is.
      const signup = asPage(await visitor.browser.follow(signupPathOn(login)));
      expect(signup.text).toContain(`<p class="lead">${signupLead}`);
      expect(signup.text).not.toMatch(/<strong>(your account|Ihr Konto|votre compte|su cuenta)<\/strong>/);
    }
    // An app's sign-up still names the app.
    const stranger = new Person(sesame.baseUrl);
    const forApp = asPage(await stranger.browser.follow((await beginLogin(rp)).url));
    expect(asPage(await stranger.browser.follow(signupPathOn(forApp))).text).toContain(
      '<p class="lead">for <strong>Wiki</strong>.',
    );
    const page = asPage(await member.browser.follow('/account'));
    const signOut = await member.browser.request('/account/logout', { form: { _csrf: page.csrf() } });
    const confirm = asPage(await member.browser.follow(signOut.location()!));
    expect(confirm.text).toContain('Sign out?');
    expect(confirm.text).not.toContain('Sesame account');
    expect(confirm.text).not.toContain('and return to');
  });

  it('labels the sign-in field by what it does, keeps passkey autofill, and says JavaScript is needed', async () => {
    const login = asPage(await new Person(sesame.baseUrl).browser.follow((await beginLogin(rp)).url));
    expect(login.text).toContain('<label for="username">Choose a saved passkey</label>');
    expect(login.text).toMatch(
      /<input id="username"[^>]*autocomplete="username webauthn"[^>]*placeholder="Click here to see your passkeys for this site"/,
    );
    expect(login.text).not.toContain('>Email</label>');
    expect(login.text).toMatch(/<button[^>]*>Sign in with a passkey<\/button>/);
    expect(login.text).toMatch(NOSCRIPT);
  });

  it('tells people without JavaScript that passkeys need it, on every passkey page and the admin pages', async () => {
    const visitor = new Person(sesame.baseUrl);
    const login = asPage(await visitor.browser.follow((await beginLogin(rp)).url));
    const uid = /\/interaction\/([^/?#]+)/.exec(login.url)![1];
    const invite = await createOneTimeLink(sesame.db, sesame.config, {
      email: 'new@example.com',
      actor: 'test',
    });
    const setup = (await issueSetupLink(sesame.db, sesame.config))!;
    const pages = {
      signup: await visitor.browser.request(`/interaction/${uid}/signup`),
      link: await visitor.browser.request(new URL(invite.url).pathname),
      setup: await visitor.browser.request(new URL(setup.url).pathname),
      account: await (await onboard(sesame, 'account@example.com')).person.browser.request('/account'),
      // Most admin changes ask for a passkey first (a form sent without JavaScript changes nothing).
      admin: await (await onboard(sesame, 'admin@example.com', { admin: true })).person.browser.request(
        '/admin/clients/new',
      ),
    };
    for (const [name, page] of Object.entries(pages)) {
      expect({ name, status: page.status }).toEqual({ name, status: 200 });
      expect({ name, noscript: NOSCRIPT.test(page.text) }).toEqual({ name, noscript: true });
    }
  });
});
