import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import axe, { type AxeResults } from 'axe-core';
import type { Browser, Page } from 'playwright-core';
import { createOneTimeLink } from '../../src/accounts/oneTimeLinks.js';
import { issueSetupLink } from '../../src/accounts/setupLink.js';
import { createGroup } from '../../src/admin/groups.js';
import { SUPPORTED_LOCALES } from '../../src/i18n/locales.js';
import { createClient, DEVICE_CODE_GRANT, updateClient } from '../../src/oidc/clients.js';
import { closeWithin, SESAME_STOP_MS } from '../support/boundedClose.js';
import { describeBrowser, newPasskeyContext, watchPageProblems } from '../support/chromium.js';
import { closeBrowser, launchBrowser } from '../support/chromiumLifecycle.js';
import { type MailServer, startMailServer, TEST_MAIL_TIMING } from '../support/mailServer.js';
import { startCallbackPage } from '../support/rpServer.js';
import { startTestApp, type TestApp } from '../support/testApp.js';
import { onPostgres } from '../support/testDatabase.js';

/** Every language the pages come in (a new language in src/i18n/locales.ts is checked here too). */
const LOCALES = SUPPORTED_LOCALES;
type ColorScheme = 'light' | 'dark';

/**
 * The walks: every language in the light scheme, and the dark scheme in the first language.
 * The dark scheme changes colours only (public/css/sesame.css and the brand's stylesheet set
 * custom properties under `prefers-color-scheme: dark`), and the same colours meet in every
 * language; a walk costs ~10 s alone, and the suite's time counts.
 */
const WALKS: ReadonlyArray<readonly [string, ColorScheme]> = [
  ...LOCALES.map((locale) => [locale, 'light'] as const),
  [LOCALES[0], 'dark'],
];

/** axe-core's two worst impacts: each such violation keeps someone from using the page. */
const BLOCKING_IMPACTS = ['serious', 'critical'];

/** No step takes seconds; a stuck one should fail fast. The whole walk takes ~10 s alone, ~25 s on a loaded machine. */
const STEP_TIMEOUT = 15_000;
const APP_LOGO = 'https://cdn.example/notes.png';
const PNG = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII=',
  'base64',
);

/** An authorization request as an app sends it (PKCE S256), in the person's language. */
function authorizationUrl(sesame: TestApp, clientId: string, redirectUri: string, locale: string): string {
  const url = new URL('/auth', sesame.baseUrl);
  url.search = new URLSearchParams({
    client_id: clientId,
    response_type: 'code',
    redirect_uri: redirectUri,
    scope: 'openid email',
    state: randomBytes(8).toString('hex'),
    code_challenge: createHash('sha256').update(randomBytes(32).toString('base64url')).digest('base64url'),
    code_challenge_method: 'S256',
    ui_locales: locale,
  }).toString();
  return url.toString();
}

/**
 * Pages are the same whatever database stores the accounts: the walks run on the embedded
 * database's run of the suite, not again on Postgres.
 */
const describePages = onPostgres ? describe.skip : describeBrowser;

describePages('axe-core finds no serious or critical violation on any page a person sees', () => {
  let sesame: TestApp;
  let browser: Browser;
  let logoDir: string;
  let appCallback: Awaited<ReturnType<typeof startCallbackPage>>;
  let mail: MailServer;
  let notes: string;
  let ledger: string;
  let tv: string;

  beforeAll(async () => {
    logoDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sesame-axe-'));
    fs.writeFileSync(path.join(logoDir, 'logo.png'), PNG);
    // A brand of its own, so its accent, and the dark variant computed from it, are checked too.
    // With mail, and sign-up for verified addresses: the pages mail brings are walked too.
    mail = await startMailServer();
    [sesame, browser, appCallback] = await Promise.all([
      startTestApp(
        {
          BRAND_NAME: 'Acme',
          BRAND_ACCENT: '#0b5394',
          BRAND_LOGO: path.join(logoDir, 'logo.png'),
          SMTP_URL: mail.url,
          MAIL_FROM: 'signin@acme.test',
          SIGNUP: 'open-verified',
        },
        { mailTiming: TEST_MAIL_TIMING },
      ),
      launchBrowser(),
      startCallbackPage(),
    ]);
    ({
      client: { client_id: notes },
    } = await createClient(
      sesame.db,
      { name: 'Notes', redirect_uris: [appCallback.url], logo_uri: APP_LOGO },
      'test',
    ));
    ({
      client: { client_id: ledger },
    } = await createClient(sesame.db, { name: 'Ledger', redirect_uris: [appCallback.url] }, 'test'));
    await createGroup(sesame.db, 'Finance', 'test');
    await updateClient(sesame.db, ledger, { allowed_groups: ['Finance'] }, 'test');
    ({
      client: { client_id: tv },
    } = await createClient(
      sesame.db,
      { name: 'TV', public: true, first_party: true, grant_types: [DEVICE_CODE_GRANT] },
      'test',
    ));
  });

  afterAll(async () => {
    await closeBrowser(browser);
    await closeWithin('Sesame stop', () => sesame?.stop(), { ms: SESAME_STOP_MS });
    await closeWithin('app callback close', () => appCallback?.close());
    await closeWithin('mail server stop', () => mail?.stop());
    fs.rmSync(logoDir, { recursive: true, force: true });
  });

  /**
   * A person's browser in this language and colour scheme, with a passkey authenticator.
   * The app's callback and logo are answered here: they live on hosts that do not exist.
   */
  async function personIn(locale: string, colorScheme: ColorScheme) {
    const passkeys = await newPasskeyContext(browser);
    const { page, context } = passkeys;
    page.setDefaultTimeout(STEP_TIMEOUT);
    await context.setExtraHTTPHeaders({ 'accept-language': locale });
    // axe-core itself comes with every document, as the page loads: @axe-core/playwright
    // parses its 650 kB twice per check and finishes each run in a new tab (~1 s per page
    // against ~0.1 s here; the walk 24 s -> 10 s alone).
    await context.addInitScript(axe.source);
    await page.emulateMedia({ colorScheme });
    await context.route(APP_LOGO, (route) => route.fulfill({ body: PNG, contentType: 'image/png' }));
    const problems = watchPageProblems(page);
    return { page, problems };
  }

  /** The page's serious and critical violations, one line each, named by the page. */
  async function blockingViolations(page: Page, name: string): Promise<string[]> {
    const results: AxeResults = await page.evaluate(`axe.run(document, { resultTypes: ['violations'] })`);
    return results.violations
      .filter((violation) => BLOCKING_IMPACTS.includes(violation.impact ?? ''))
      .map(
        (violation) =>
          `${name}: ${violation.id} (${violation.impact}) ${violation.help} at ${violation.nodes
            .map((node) => node.target.join(' '))
            .join(', ')}`,
      );
  }

  describe.each(WALKS)('in %s, %s mode', (locale, colorScheme) => {
    // Pages are found by URL and markup, not by their English names, so every language runs the same steps.
    it('sign-in, sign-up, address confirmation, consent, no access, account, devices, links, setup, lost passkey, errors and sign-out', async () => {
      const { page, problems } = await personIn(locale, colorScheme);
      const violations: string[] = [];
      /** Waits for the page to show `selector`, then runs axe on it. */
      const check = async (name: string, selector: string) => {
        await page.locator(selector).first().waitFor();
        // Each page says which language it is in: screen readers pick their voice by it.
        expect({ page: name, lang: await page.locator('html').getAttribute('lang') }).toEqual({
          page: name,
          lang: locale,
        });
        violations.push(...(await blockingViolations(page, name)));
      };

      await page.goto(authorizationUrl(sesame, notes, appCallback.url, locale));
      await check('sign-in', '#login-form');
      await page.locator('a[href$="/signup"]').click();
      await check('sign-up', '#signup-form');
      const email = `axe-${colorScheme}-${locale}@example.com`;
      await page.locator('#email').fill(email);
      await page.locator('#signup-form button[type=submit]').click();
      await check('confirm your address', 'form[action$="/verify-email/resend"]');
      const [welcome] = await mail.waitFor(email);
      await page.goto(/https?:\/\/\S+\/verify\/[A-Za-z0-9_-]{43}/.exec(welcome!.text)![0]);
      await check('address confirmed', 'a[href="/account"]');
      await page.goto(authorizationUrl(sesame, notes, appCallback.url, locale));
      await check('consent', 'button[value=allow]');
      await page.locator('button[value=allow]').click();
      await page.waitForURL((url) => url.href.startsWith(appCallback.url));

      await page.goto(authorizationUrl(sesame, ledger, appCallback.url, locale));
      await check('no access', 'h1:has-text("Ledger")');

      await page.goto(`${sesame.baseUrl}/account`);
      await check('account', '#add-passkey');

      const started = (await (
        await fetch(`${sesame.baseUrl}/device/auth`, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: new URLSearchParams({ client_id: tv, scope: 'openid' }).toString(),
        })
      ).json()) as { user_code: string };
      await page.goto(`${sesame.baseUrl}/device`);
      await check('device code', '#user_code');
      await page.locator('#user_code').fill(started.user_code);
      await page.locator('#user_code').press('Enter');
      await check('device confirm', 'button[name=confirm]');
      await page.locator('button[name=confirm]').click();
      await page.waitForLoadState();
      await check('device done', 'h1');

      const invite = await createOneTimeLink(sesame.db, sesame.config, {
        email: `invited-${colorScheme}-${locale}@example.com`,
        actor: 'test',
      });
      await page.goto(invite.url);
      await check('invite link', 'main button');

      // While no administrator exists, each setup link opens the setup page.
      const setup = await issueSetupLink(sesame.db, sesame.config);
      await page.goto(setup!.url);
      await check('setup', 'main button');

      await page.goto(`${sesame.baseUrl}/interaction/${randomBytes(16).toString('base64url')}`);
      await check('error', 'h1');

      await page.goto(`${sesame.baseUrl}/recover`);
      await check('lost passkey', '#email');
      await page.locator('#email').fill(email);
      await page.locator('main button[type=submit]').click();
      await check('lost passkey, sent', '[role=status]');

      await page.goto(`${sesame.baseUrl}/session/end`);
      await check('sign-out', 'button[name=logout]');
      await page.locator('button[name=logout]').click();
      await page.waitForURL((url) => !url.pathname.startsWith('/session/end/confirm'));
      await check('signed out', 'h1');

      expect(violations).toEqual([]);
      expect(problems).toEqual([]);
    }, 240_000);
  });
});
