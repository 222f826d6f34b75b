import { createOneTimeLink } from '../../src/accounts/oneTimeLinks.js';
import { contentSecurityPolicy } from '../../src/http/middleware/securityHeaders.js';
import { SUPPORTED_LOCALES } from '../../src/i18n/locales.js';
import { createClient, DEVICE_CODE_GRANT } from '../../src/oidc/clients.js';
import { asPage, type PageResponse } from '../support/browser.js';
import { beginLogin, discoverRp, finishLogin, Person, type TestRp } from '../support/oidcFlow.js';
import { onboard } from '../support/oneTimeLinkFlow.js';
import { startTestApp, type TestApp } from '../support/testApp.js';

const REDIRECT_URI = 'http://127.0.0.1:8903/callback';

/** The messages the page hands its script (the <meta name="messages"> the layout writes). */
function scriptMessages(page: PageResponse): Record<string, string> {
  const match = /<meta name="messages" content="([^"]*)">/.exec(page.text);
  if (!match) throw new Error('no messages on the page');
  const entities: Record<string, string> = { quot: '"', '#39': "'", lt: '<', gt: '>', amp: '&' };
  const json = match[1]!.replace(/&(quot|#39|lt|gt|amp);/g, (_, name: string) => entities[name]!);
  return JSON.parse(json) as Record<string, string>;
}

const langOf = (page: PageResponse) => /<html lang="([^"]+)">/.exec(page.text)?.[1];

const HTML_ENTITIES: Record<string, string> = { quot: '"', '#39': "'", lt: '<', gt: '>', amp: '&' };
const unescapeHtml = (text: string) =>
  text.replace(/&(quot|#39|lt|gt|amp);/g, (_, name: string) => HTML_ENTITIES[name]!);

/**
 * The form of a page that submits itself (views/auto-submit.eta, the device page with a code
 * from a link): Sesame's layout and brand, its script file and no inline one, and the strict
 * CSP, which the provider's own such pages loosened with their inline script's hash.
 */
function selfSubmittingForm(page: PageResponse): { action: string; fields: Record<string, string> } {
  expect(page.headers.get('content-type')).toMatch(/^text\/html/);
  expect(page.headers.get('content-security-policy')).toBe(contentSecurityPolicy());
  expect(page.text).toContain('<link rel="stylesheet" href="/brand.css');
  expect(page.text).toContain('<script type="module" src="/static/js/autoSubmit.js"></script>');
  expect(page.text).not.toMatch(/<script(?![^>]*\ssrc=)/);
  const form = /<form method="post" action="([^"]+)" data-submits-itself>([\s\S]*?)<\/form>/.exec(page.text);
  if (!form) throw new Error(`no self-submitting form on ${page.url}: ${page.text.slice(0, 400)}`);
  // A browser without scripts shows the form's button.
  expect(form[2]).toMatch(/<button type="submit" class="primary">[^<]+<\/button>/);
  const fields = [
    ...form[2]!.matchAll(/<input (?:type="hidden" )?(?:id="[^"]*" )?name="([^"]+)"[^>]*? value="([^"]*)"/g),
  ];
  return {
    action: unescapeHtml(form[1]!),
    fields: Object.fromEntries(fields.map(([, name, value]) => [name!, unescapeHtml(value!)])),
  };
}

describe('pages in the person language', () => {
  let sesame: TestApp;
  let rp: TestRp;

  beforeAll(async () => {
    // Spanish by default: a page without Accept-Language shows that DEFAULT_LOCALE counts.
    sesame = await startTestApp({ DEFAULT_LOCALE: 'es' });
    const { client, client_secret } = await createClient(
      sesame.db,
      { name: 'Wiki', redirect_uris: [REDIRECT_URI] },
      'test',
    );
    rp = await discoverRp(sesame.baseUrl, { client_id: client.client_id, client_secret }, REDIRECT_URI);
  });

  afterAll(() => sesame.stop());

  /** A new browser whose Accept-Language is `accept` (none when empty). */
  function visitor(accept: string): Person {
    const person = new Person(sesame.baseUrl);
    if (accept) person.browser.headers['accept-language'] = accept;
    return person;
  }

  it('shows the sign-in and sign-up pages in German for Accept-Language de-AT, and says so in headers', async () => {
    const person = visitor('de-AT,de;q=0.9,en;q=0.5');
    const login = await person.open((await beginLogin(rp)).url);
    expect(login.status).toBe(200);
    expect(langOf(login)).toBe('de');
    expect(login.headers.get('content-language')).toBe('de');
    // The language follows the browser's remembered choice too (the sesame.lang cookie).
    expect(login.headers.get('vary')).toMatch(/accept-language/i);
    expect(login.headers.get('vary')).toMatch(/cookie/i);
    expect(login.text).toContain('>Mit Passkey anmelden</button>');
    expect(login.text).toContain('um <strong>Wiki</strong> zu nutzen');
    expect(login.text).toContain('>Konto erstellen</a>');
    expect(scriptMessages(login).cancelled).toMatch(/^Die Passkey-Anfrage wurde abgebrochen/);

    const signupPath = /href="(\/interaction\/[^"]+\/signup)"/.exec(login.text)![1]!;
    const signup = await person.browser.request(signupPath);
    expect(langOf(signup)).toBe('de');
    expect(signup.text).toContain('<label for="email">E-Mail</label>');
    expect(signup.text).toContain('>Konto erstellen</button>');
  });

  it('lets the app ui_locales win over Accept-Language, on the pages and in their messages', async () => {
    const person = visitor('de');
    const login = await person.open((await beginLogin(rp, 'openid', { ui_locales: 'ja fr-CA' })).url);
    expect(langOf(login)).toBe('fr');
    expect(login.text).toContain('>Se connecter avec une clé d’accès</button>');

    // A message the server sends the page's script is French too.
    await onboard(sesame, 'taken@example.com');
    const uid = /\/interaction\/([^/?#]+)/.exec(login.url)![1]!;
    const taken = await person.browser.postJson(`/interaction/${uid}/signup/options`, login.csrf(), {
      email: 'taken@example.com',
    });
    expect(taken.status).toBe(409);
    expect(taken.json().error_description).toMatch(/^Un compte existe déjà avec cette adresse e-mail/);
    expect(taken.headers.get('content-language')).toBe('fr');
  });

  it('falls back to DEFAULT_LOCALE without Accept-Language or for languages it does not speak', async () => {
    for (const accept of ['', 'ja, zh;q=0.5', '*']) {
      const login = await visitor(accept).open((await beginLogin(rp)).url);
      expect({ accept, lang: langOf(login) }).toEqual({ accept, lang: 'es' });
      expect(login.text).toContain('>Iniciar sesión con una llave de acceso</button>');
    }
  });

  it('keeps the English accessible names for English', async () => {
    const login = await visitor('en-GB').open((await beginLogin(rp)).url);
    expect(langOf(login)).toBe('en');
    expect(login.text).toContain('>Sign in with a passkey</button>');
    expect(login.text).toContain('>Create an account</a>');
  });

  it('renders error and link-problem pages in the language asked for', async () => {
    const missing = await visitor('fr').browser.request('/no/such/page');
    expect(missing.status).toBe(404);
    expect(langOf(missing)).toBe('fr');
    expect(missing.text).toContain('<h1>Page introuvable</h1>');
    expect(missing.text).toContain('Il n’y a aucune page à cette adresse.');
    // No Cache-Control says not to keep it: a shared cache must tell browsers apart by what chose its language.
    expect(missing.headers.get('cache-control')).toBeNull();
    expect(
      missing.headers
        .get('vary')
        ?.split(/\s*,\s*/)
        .sort(),
    ).toEqual(['Accept-Language', 'Cookie']);

    const badLink = await visitor('de').browser.request(`/link/${'A'.repeat(43)}`);
    expect(badLink.status).toBe(404);
    expect(badLink.text).toContain('<h1>Dieser Link ist ungültig</h1>');
  });

  it('renders a one-time link page with its expiry date in the language asked for', async () => {
    const { url } = await createOneTimeLink(sesame.db, sesame.config, {
      email: 'new@example.com',
      actor: 'test',
    });
    const page = await visitor('de').browser.request(new URL(url).pathname);
    expect(page.status).toBe(200);
    expect(page.text).toContain('<h1>Konto einrichten</h1>');
    expect(page.text).toMatch(
      /läuft am <time datetime="[^"]+">\d+\. \w+\.? \d{4}, \d{2}:\d{2} UTC<\/time> ab/,
    );
  });

  it("stores the language chosen on the account page and uses it for that person's pages", async () => {
    const { person, userId } = await onboard(sesame, 'chooser@example.com');
    person.browser.headers['accept-language'] = 'de';
    const before = await person.browser.request('/account');
    expect(langOf(before)).toBe('de');
    expect(before.text).toContain('<h1>Ihr Konto</h1>');
    for (const locale of SUPPORTED_LOCALES)
      expect(before.text).toContain(`<option value="${locale}" lang="${locale}"`);

    const saved = await person.browser.request('/account/language', {
      form: { _csrf: before.csrf(), locale: 'fr' },
    });
    expect(saved.status).toBe(303);
    expect(saved.location()).toMatch(/\/account$/);
    const row = await sesame.db
      .selectFrom('users')
      .select('locale')
      .where('id', '=', userId)
      .executeTakeFirstOrThrow();
    expect(row.locale).toBe('fr');

    const after = await person.browser.request('/account');
    expect(langOf(after)).toBe('fr');
    expect(after.text).toContain('<h1>Votre compte</h1>');
    expect(after.text).toContain('<option value="fr" lang="fr" selected>Français</option>');

    // The choice also names the language of the sign-in pages this person sees while signed in.
    const again = await person.open((await beginLogin(rp, 'openid email')).url);
    expect(langOf(again)).toBe('fr');
    expect(again.text).toContain('>Autoriser</button>');

    // So does the device flow's code page (it followed the browser alone).
    const device = await person.browser.request('/device');
    expect(langOf(device)).toBe('fr');
    expect(device.text).toContain('<h1>Se connecter sur un appareil</h1>');

    // The provider's own sign-out page follows the choice too.
    const signOut = await person.browser.request('/account/logout', { form: { _csrf: after.csrf() } });
    const confirm = await person.browser.request(signOut.location()!);
    expect(langOf(confirm)).toBe('fr');
    expect(confirm.text).toContain('<h1>Se déconnecter ?</h1>');
    expect(confirm.text).toContain('>Rester connecté</button>');

    // Back to "as my browser asks".
    const reset = await person.browser.request('/account/language', {
      form: { _csrf: after.csrf(), locale: '' },
    });
    expect(reset.status).toBe(303);
    expect(langOf(await person.browser.request('/account'))).toBe('de');
  });

  it("renders the device flow's code page in the language asked for", async () => {
    const page = await visitor('es-MX').browser.request('/device');
    expect(page.status).toBe(200);
    expect(langOf(page)).toBe('es');
    expect(page.text).toContain('<h1>Iniciar sesión en un dispositivo</h1>');
    expect(page.text).toContain('<label for="user_code">Código</label>');
  });

  it("answers an app's form_post on Sesame's page, in the language of ui_locales or the browser", async () => {
    // An error goes back to the app the same way: prompt=none finds no one signed in.
    const refusal = await beginLogin(rp, 'openid', { response_mode: 'form_post', prompt: 'none' });
    const refused = await visitor('de').browser.request(refusal.url);
    expect(refused.status).toBe(400);
    expect(langOf(refused)).toBe('de');
    expect(refused.text).toContain('<h1>Zurück in Wiki</h1>');
    expect(selfSubmittingForm(refused)).toEqual({
      action: REDIRECT_URI,
      fields: {
        error: 'login_required',
        error_description: expect.any(String),
        state: refusal.state,
        iss: sesame.baseUrl,
      },
    });

    const person = visitor('de');
    const pending = await beginLogin(rp, 'openid', { response_mode: 'form_post', ui_locales: 'fr' });
    const consent = asPage(
      await person.browser.follow(await person.signUp(await person.open(pending.url), 'poste@example.com')),
    );
    const uid = /\/interaction\/([^/?#]+)/.exec(consent.url)![1]!;
    const allowed = await person.browser.request(`/interaction/${uid}/consent`, {
      form: { _csrf: consent.csrf(), decision: 'allow' },
    });
    const answer = asPage(await person.browser.follow(allowed.location()!));
    expect(answer.status).toBe(200);
    expect(langOf(answer)).toBe('fr');
    expect(answer.text).toContain('<h1>Retour à Wiki</h1>');
    const { action, fields } = selfSubmittingForm(answer);
    expect(action).toBe(REDIRECT_URI);
    expect(fields).toEqual({ code: expect.any(String), state: pending.state, iss: sesame.baseUrl });
    // The code the page posts is the app's to redeem.
    const tokens = await finishLogin(rp, pending, `${REDIRECT_URI}?${new URLSearchParams(fields)}`);
    expect(tokens.claims()!.email).toBeUndefined();
    expect(tokens.access_token).toEqual(expect.any(String));
  });

  it("ends a sign-out without a session on Sesame's page, in the language of ui_locales, the remembered choice or the browser", async () => {
    const stranger = visitor('de');
    const page = await stranger.browser.request('/session/end?ui_locales=fr');
    expect(page.status).toBe(200);
    expect(langOf(page)).toBe('fr');
    expect(page.text).toContain('<h1>Déconnexion</h1>');
    const { action, fields } = selfSubmittingForm(page);
    expect(action).toBe(`${sesame.baseUrl}/session/end/confirm`);
    expect(fields).toEqual({ xsrf: expect.any(String), logout: 'yes', ui_locales: 'fr' });
    const ended = await stranger.browser.request(action, { form: fields });
    expect(ended.status).toBe(303);
    const done = await stranger.browser.request(ended.location()!);
    expect(langOf(done)).toBe('fr');
    expect(done.text).toContain('<h1>Vous êtes déconnecté</h1>');

    const german = await visitor('de').browser.request('/session/end');
    expect(langOf(german)).toBe('de');
    expect(selfSubmittingForm(german).fields).toEqual({ xsrf: expect.any(String), logout: 'yes' });

    // Signed out, the browser still speaks the language its person chose, over Accept-Language.
    const { person } = await chooser('sessionless@example.com', 'es');
    const confirm = await person.browser.request('/session/end');
    const xsrf = /name="xsrf" value="([^"]+)"/.exec(confirm.text)![1]!;
    await person.browser.request('/session/end/confirm', { form: { xsrf, logout: 'yes' } });
    const again = await person.browser.request('/session/end');
    expect(langOf(again)).toBe('es');
    expect(again.text).toContain('<h1>Cerrando sesión</h1>');
    selfSubmittingForm(again);
  });

  it('refuses a bad language choice with a clear 4xx and changes nothing', async () => {
    const { person, userId } = await onboard(sesame, 'refused@example.com');
    person.browser.headers['accept-language'] = 'en';
    const page = await person.browser.request('/account');
    const csrf = page.csrf();
    const locale = async () =>
      (
        await sesame.db
          .selectFrom('users')
          .select('locale')
          .where('id', '=', userId)
          .executeTakeFirstOrThrow()
      ).locale;

    const unknown = await person.browser.request('/account/language', {
      form: { _csrf: csrf, locale: 'klingon' },
    });
    expect(unknown.status).toBe(400);
    expect(unknown.text).toContain('Choose one of the languages offered.');
    for (const body of [
      { locale: 5 },
      { locale: ['de'] },
      { locale: 'de-AT' },
      {},
      { locale: 'x'.repeat(10_000) },
    ]) {
      const refused = await person.browser.postJson('/account/language', csrf, body);
      expect({ body, status: refused.status }).toEqual({ body, status: 400 });
      expect(refused.json()).toMatchObject({ error: 'invalid_request' });
    }
    const malformed = await person.browser.request('/account/language', {
      body: '{"locale":',
      headers: { 'content-type': 'application/json', 'x-csrf-token': csrf, accept: 'application/json' },
    });
    expect(malformed.status).toBe(400);
    const noCsrf = await person.browser.request('/account/language', { form: { locale: 'de' } });
    expect(noCsrf.status).toBe(403);
    const foreign = await person.browser.request('/account/language', {
      form: { _csrf: csrf, locale: 'de' },
      headers: { origin: 'https://evil.example' },
    });
    expect(foreign.status).toBe(403);
    const signedOut = await visitor('en').browser.request('/account/language', {
      json: { locale: 'de' },
      headers: { accept: 'application/json' },
    });
    expect(signedOut.status).toBe(401);
    expect(await locale()).toBeNull();
  });

  it("words the account page's refusals in the person's language, and keeps English as it was", async () => {
    const { person } = await onboard(sesame, 'refusals@example.com');
    person.browser.headers['accept-language'] = 'de';
    const csrf = (await person.browser.request('/account')).csrf();

    const long = await person.browser.postJson('/account/profile', csrf, { name: 'x'.repeat(101) });
    expect(long.status).toBe(400);
    expect(long.headers.get('content-language')).toBe('de');
    expect(long.json()).toEqual({
      error: 'invalid_request',
      error_description: 'Der Name darf höchstens 100 Zeichen lang sein',
      fields: { name: 'Der Name darf höchstens 100 Zeichen lang sein' },
    });
    const wrongType = await person.browser.postJson('/account/profile', csrf, { name: 5 });
    expect(wrongType.status).toBe(400);
    expect(wrongType.json<{ fields: { name: string } }>().fields.name).toMatch(/^Ungültige Eingabe/);
    const renamed = await person.browser.postJson(`/account/passkeys/${'x'.repeat(40)}/rename`, csrf, {
      name: 'y'.repeat(200),
    });
    expect(renamed.json()).toMatchObject({
      fields: { name: expect.stringMatching(/^Der Name des Passkeys darf höchstens \d+ Zeichen lang sein$/) },
    });
    const malformedId = await person.browser.postJson('/account/passkeys/not*an*id/rename', csrf, {
      name: 'Laptop',
    });
    expect(malformedId.status).toBe(400);
    expect(malformedId.json()).toMatchObject({
      error_description:
        'Die Anfrage ist fehlerhaft. Laden Sie die Seite neu und versuchen Sie es noch einmal.',
    });
    const malformedJson = await person.browser.request('/account/profile', {
      body: '{"name":',
      headers: { 'content-type': 'application/json', 'x-csrf-token': csrf, accept: 'application/json' },
    });
    expect(malformedJson.status).toBe(400);
    expect(malformedJson.json<{ error_description: string }>().error_description).toMatch(
      /^Die Anfrage ist fehlerhaft/,
    );

    person.browser.headers['accept-language'] = 'en';
    const english = await person.browser.postJson('/account/profile', csrf, { name: 'x'.repeat(101) });
    expect(english.json()).toMatchObject({
      error_description: 'Name must be at most 100 characters',
      fields: { name: 'Name must be at most 100 characters' },
    });
    const englishType = await person.browser.postJson('/account/profile', csrf, { name: 5 });
    expect(englishType.json<{ error_description: string }>().error_description).toMatch(
      /^name: Invalid input/,
    );
  });

  it('words sign-up and lost-passkey refusals in the language asked for', async () => {
    const person = visitor('fr');
    const login = await person.open((await beginLogin(rp)).url);
    const uid = /\/interaction\/([^/?#]+)/.exec(login.url)![1]!;
    const invalid = await person.browser.postJson(`/interaction/${uid}/signup/options`, login.csrf(), {
      email: 'not-an-address',
    });
    expect(invalid.status).toBe(400);
    expect(invalid.json()).toMatchObject({
      error_description: 'Saisissez une adresse e-mail valide',
      fields: { email: 'Saisissez une adresse e-mail valide' },
    });
    const longName = await person.browser.postJson(`/interaction/${uid}/signup/options`, login.csrf(), {
      email: 'ok@example.com',
      name: 'n'.repeat(101),
    });
    expect(longName.json()).toMatchObject({
      error_description: 'Le nom doit comporter au maximum 100 caractères',
    });
  });

  /** A signed-in person of a German browser who chose `choice` on their account page. */
  async function chooser(email: string, choice: string) {
    const { person } = await onboard(sesame, email);
    person.browser.headers['accept-language'] = 'de';
    const account = await person.browser.request('/account');
    const saved = await person.browser.request('/account/language', {
      form: { _csrf: account.csrf(), locale: choice },
    });
    expect(saved.status).toBe(303);
    return { person, csrf: account.csrf() };
  }

  it('speaks the chosen language on every page of that browser, and on another once the person signs in there', async () => {
    const { person, csrf } = await chooser('everywhere@example.com', 'fr');
    const pages = [
      '/no/such/page',
      '/recover',
      `/link/${'A'.repeat(43)}`,
      '/interaction/gone',
      `/setup/${'A'.repeat(43)}`,
      '/auth?client_id=nope',
      '/account/callback?error=x',
    ];
    const languages = async (browser: Person) => {
      const seen: Record<string, string | undefined> = {};
      for (const path of pages) seen[path] = langOf(await browser.browser.request(path));
      return seen;
    };
    const all = (lang: string) => Object.fromEntries(pages.map((path) => [path, lang]));
    expect(await languages(person)).toEqual(all('fr'));

    // Another browser speaks its own language until the person signs in there.
    const laptop = person.inNewBrowser();
    laptop.browser.headers['accept-language'] = 'de';
    const login = await laptop.open((await beginLogin(rp)).url);
    expect(langOf(login)).toBe('de');
    await laptop.signIn(login);
    expect(await languages(laptop)).toEqual(all('fr'));

    // Back to "as my browser asks": this browser forgets the choice, and the laptop when the
    // person next signs in there (whoever signs in, the browser keeps their choice or none).
    await person.browser.request('/account/language', { form: { _csrf: csrf, locale: '' } });
    expect(await languages(person)).toEqual(all('de'));
    expect(langOf(await laptop.browser.request('/no/such/page'))).toBe('fr');
    await laptop.signIn(await laptop.open((await beginLogin(rp, 'openid', { prompt: 'login' })).url));
    expect(await languages(laptop)).toEqual(all('de'));
  });

  it("answers a sign-in page's script in the page's language, the app's ui_locales over the chosen one", async () => {
    const { person } = await chooser('scripted@example.com', 'de');
    person.browser.headers['accept-language'] = 'es';
    const login = await person.open(
      (await beginLogin(rp, 'openid', { ui_locales: 'fr', prompt: 'login' })).url,
    );
    expect(langOf(login)).toBe('fr');
    // As src/client/api.ts calls: the page's language as Accept-Language. The refusals come
    // before the server reads the sign-in's ui_locales, and the chosen German must not win.
    const uid = /\/interaction\/([^/?#]+)/.exec(login.url)![1]!;
    const script = (csrf: string) => ({
      'x-csrf-token': csrf,
      accept: 'application/json',
      'accept-language': 'fr',
    });
    const invalid = await person.browser.request(`/interaction/${uid}/signup/options`, {
      json: { email: 'greta@localhost' },
      headers: script(login.csrf()),
    });
    expect(invalid.status).toBe(400);
    expect(invalid.json()).toMatchObject({ fields: { email: 'Saisissez une adresse e-mail valide' } });
    const forged = await person.browser.request(`/interaction/${uid}/login/verify`, {
      json: {},
      headers: script('not-the-token'),
    });
    expect(forged.status).toBe(403);
    expect(forged.headers.get('content-language')).toBe('fr');
  });

  it("carries the end-session request's ui_locales to the signed-out page, and a sign-in page's to its sign-out", async () => {
    const { person } = await chooser('leaving@example.com', '');
    const confirm = await person.browser.request('/session/end?ui_locales=fr');
    expect(langOf(confirm)).toBe('fr');
    const form = /<form[^>]*action="([^"]+)"[^>]*>[\s\S]*?name="xsrf" value="([^"]+)"/.exec(confirm.text)!;
    const language = /<input type="hidden" name="ui_locales" value="([^"]+)" form="op.logoutForm">/.exec(
      confirm.text,
    );
    expect(language?.[1]).toBe('fr');
    const ended = await person.browser.request(form[1]!, {
      form: { xsrf: form[2]!, logout: 'yes', ui_locales: language![1]! },
    });
    expect(ended.status).toBe(303);
    const done = await person.browser.request(ended.location()!);
    expect(langOf(done)).toBe('fr');
    expect(done.text).toContain('<h1>Vous êtes déconnecté</h1>');

    // The consent page's "Sign out" says the page's language, which ui_locales chose.
    const again = person.inNewBrowser();
    again.browser.headers['accept-language'] = 'de';
    const login = await again.open((await beginLogin(rp, 'openid email', { ui_locales: 'fr' })).url);
    const consent = asPage(await again.browser.follow(await again.signIn(login)));
    expect(langOf(consent)).toBe('fr');
    const signOutForm = /<form method="post" action="\/account\/logout"[\s\S]*?<\/form>/.exec(
      consent.text,
    )![0];
    expect(signOutForm).toContain('<input type="hidden" name="ui_locales" value="fr">');
    const signOut = await again.browser.request('/account/logout', {
      form: { _csrf: consent.csrf(), ui_locales: 'fr' },
    });
    const signOutPage = await again.browser.request(signOut.location()!);
    expect(langOf(signOutPage)).toBe('fr');
  });

  it("shows the device flow's confirmation in the language the device asked for", async () => {
    const { client } = await createClient(
      sesame.db,
      { name: 'Kiosk', public: true, grant_types: [DEVICE_CODE_GRANT] },
      'test',
    );
    const started = await fetch(`${sesame.baseUrl}/device/auth`, {
      method: 'POST',
      body: new URLSearchParams({ client_id: client.client_id, scope: 'openid', ui_locales: 'fr' }),
    });
    const { user_code: userCode, verification_uri_complete: complete } = (await started.json()) as {
      user_code: string;
      verification_uri_complete: string;
    };
    // The link with the code is Sesame's code page, filled in and sent on by its script.
    const linked = await visitor('es').browser.request(complete);
    expect(linked.status).toBe(200);
    expect(langOf(linked)).toBe('es');
    expect(linked.text).toContain('<h1>Iniciar sesión en un dispositivo</h1>');
    const { action, fields } = selfSubmittingForm(linked);
    expect(action).toBe(`${sesame.baseUrl}/device`);
    expect(fields).toEqual({ xsrf: expect.any(String), user_code: userCode });

    const person = visitor('de');
    const form = await person.browser.request('/device');
    expect(langOf(form)).toBe('de');
    const xsrf = /name="xsrf" value="([^"]+)"/.exec(form.text)![1]!;
    const confirm = await person.browser.request('/device', { form: { xsrf, user_code: userCode } });
    expect(confirm.status).toBe(200);
    expect(confirm.text).toContain(userCode);
    expect(langOf(confirm)).toBe('fr');
  });
});
