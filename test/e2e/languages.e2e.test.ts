import type { Page } from 'playwright-core';
import { createClient, DEVICE_CODE_GRANT } from '../../src/oidc/clients.js';
import { browserScenario, type Device } from '../support/browserScenario.js';
import { describeBrowser } from '../support/chromium.js';

describeBrowser('pages in the language of the browser, the app and the account in Chromium', () => {
  const scenario = browserScenario({ stepTimeout: 10_000, app: true });
  /** A German-speaking browser that signs up in the first test and picks French later. */
  let laptop: Device;

  /**
   * A browser profile whose language is `language`: its requests carry `Accept-Language:
   * <language>` unless a page's script says otherwise (extraHTTPHeaders would override the script's).
   */
  const device = (language: string) => scenario.device({ locale: language });

  const langOf = (page: Page) => page.locator('html').getAttribute('lang');
  const atApp = (url: URL) => url.href.startsWith(scenario.app.redirectUri);

  it('shows the sign-in and sign-up pages in German for Accept-Language: de, script messages included', async () => {
    laptop = await device('de');
    const { page, cdp, authenticatorId } = laptop;
    await page.goto(scenario.app.loginUrl);
    await page.getByRole('button', { name: 'Mit Passkey anmelden' }).waitFor();
    expect(await langOf(page)).toBe('de');
    expect(await page.title()).toContain('Anmelden');

    await page.getByRole('link', { name: 'Konto erstellen' }).click();
    await page.getByRole('heading', { name: 'Konto erstellen' }).waitFor();
    expect(await langOf(page)).toBe('de');
    await page.getByLabel('E-Mail').fill('greta@example.com');
    await page.getByLabel('Name').fill('Greta');

    // A refused passkey prompt is explained by the page's script, in German.
    await cdp.send('WebAuthn.setUserVerified', { authenticatorId, isUserVerified: false });
    await page.getByRole('button', { name: 'Konto erstellen' }).click();
    const alert = page.getByRole('alert');
    await alert.waitFor({ state: 'visible' });
    expect(await alert.textContent()).toContain('Die Passkey-Anfrage wurde abgebrochen oder ist abgelaufen');
    await cdp.send('WebAuthn.setUserVerified', { authenticatorId, isUserVerified: true });

    await page.getByRole('button', { name: 'Konto erstellen' }).click();
    await page.getByRole('button', { name: 'Erlauben' }).click();
    await page.waitForURL(atApp);
    expect(scenario.app.lastSignIn!.claims.email).toBe('greta@example.com');
  });

  it('follows the app ui_locales=fr over Accept-Language: de', async () => {
    const { page } = await device('de');
    await page.goto(`${scenario.app.loginUrl}?ui_locales=fr`);
    await page.getByRole('button', { name: 'Se connecter avec une clé d’accès' }).waitFor();
    expect(await langOf(page)).toBe('fr');
    await page.getByRole('link', { name: 'Créer un compte' }).click();
    await page.getByRole('button', { name: 'Créer le compte' }).waitFor();
    expect(await page.getByLabel('Adresse e-mail').isVisible()).toBe(true);

    // The page's script is answered in French too, even where the server refuses before it
    // reads the sign-in (the browser's form check lets an address without a dot pass).
    await page.getByLabel('Adresse e-mail').fill('greta@localhost');
    await page.getByRole('button', { name: 'Créer le compte' }).click();
    const alert = page.getByRole('alert');
    await alert.waitFor({ state: 'visible' });
    expect(await alert.textContent()).toBe('Saisissez une adresse e-mail valide');
  });

  it('keeps the language chosen on the account page for the next visits and the next sign-in', async () => {
    const { page, context } = laptop;
    await page.goto(`${scenario.sesame.baseUrl}/account`);
    await page.getByRole('heading', { name: 'Ihr Konto' }).waitFor();
    await page.getByLabel('Sprache der Seiten von Sesame').selectOption('fr');
    await page.getByRole('button', { name: 'Sprache speichern' }).click();
    await page.getByRole('heading', { name: 'Votre compte' }).waitFor();
    expect(await langOf(page)).toBe('fr');

    // Another visit, still with Accept-Language: de.
    await page.goto(`${scenario.sesame.baseUrl}/account`);
    await page.getByRole('button', { name: 'Ajouter une clé d’accès' }).waitFor();

    // Signed out, then in again (the virtual authenticator answers passkey autofill at once):
    // the next visit is in French.
    await context.clearCookies();
    await page.goto(scenario.app.loginUrl);
    await page.waitForURL(atApp);
    await page.goto(`${scenario.sesame.baseUrl}/account`);
    await page.getByRole('heading', { name: 'Votre compte' }).waitFor();
    expect(await langOf(page)).toBe('fr');
  });

  it('goes on by itself from the pages that submit themselves, in the language asked for, under the strict CSP', async () => {
    const { page } = await device('fr');
    // A sign-out with no session: Sesame's page submits itself, to the signed-out page.
    await page.goto(`${scenario.sesame.baseUrl}/session/end`);
    await page.getByRole('heading', { name: 'Vous êtes déconnecté' }).waitFor();
    expect(await langOf(page)).toBe('fr');

    // A device code's link (verification_uri_complete): its code goes on to the confirmation.
    const { client } = await createClient(
      scenario.sesame.db,
      { name: 'Kiosk', public: true, grant_types: [DEVICE_CODE_GRANT] },
      'test',
    );
    const started = await fetch(`${scenario.sesame.baseUrl}/device/auth`, {
      method: 'POST',
      body: new URLSearchParams({ client_id: client.client_id, scope: 'openid' }),
    });
    const { verification_uri_complete: complete } = (await started.json()) as {
      verification_uri_complete: string;
    };
    await page.goto(complete);
    await page.getByRole('heading', { name: 'Se connecter à Kiosk ?' }).waitFor();
    expect(await langOf(page)).toBe('fr');
  });
});
