import type { Browser, Page } from 'playwright-core';
import { createClient } from '../../src/oidc/clients.js';
import {
  describeBrowser,
  launchBrowser,
  newPasskeyContext,
  type PasskeyContext,
  watchPageProblems,
} from '../support/chromium.js';
import { linkIn, type MailServer, startMailServer } from '../support/mailServer.js';
import { type RpServer, startRpServer } from '../support/rpServer.js';
import { startTestApp, type TestApp } from '../support/testApp.js';

/** No step of a passkey flow on this machine takes seconds; a stuck one should fail fast. */
const STEP_TIMEOUT = 8_000;

describeBrowser('"Lost your passkey?" in Chromium, with a real SMTP server', () => {
  let mail: MailServer;
  let sesame: TestApp;
  let app: RpServer;
  let browser: Browser;
  const contexts: PasskeyContext[] = [];
  const problems: string[][] = [];

  beforeAll(async () => {
    mail = await startMailServer();
    [sesame, browser] = await Promise.all([
      startTestApp(
        { SMTP_URL: mail.url, MAIL_FROM: 'Notes sign-in <signin@notes.test>' },
        { mailTiming: { pollMs: 200, backoffMs: [300] } },
      ),
      launchBrowser(),
    ]);
    app = await startRpServer(sesame.baseUrl, async ({ redirectUri, postLogoutRedirectUri }) => {
      const { client, client_secret } = await createClient(
        sesame.db,
        { name: 'Notes', redirect_uris: [redirectUri], post_logout_redirect_uris: [postLogoutRedirectUri] },
        'test',
      );
      return { client_id: client.client_id, client_secret };
    });
  });

  afterAll(async () => {
    for (const { context } of contexts) await context.close();
    await browser?.close();
    await app?.close();
    await sesame?.stop();
    await mail?.stop();
  });

  afterEach(() => {
    // Every page ran under Sesame's strict CSP without a violation or an uncaught script error.
    expect(problems.flat()).toEqual([]);
  });

  async function device(): Promise<PasskeyContext> {
    const passkeys = await newPasskeyContext(browser);
    passkeys.page.setDefaultTimeout(STEP_TIMEOUT);
    problems.push(watchPageProblems(passkeys.page));
    contexts.push(passkeys);
    return passkeys;
  }

  /** Follows the flow to the app's callback, pressing Allow if this browser session has not consented yet. */
  async function reachApp(page: Page): Promise<void> {
    const atApp = (url: URL) => url.href.startsWith(app.redirectUri);
    const allow = page.getByRole('button', { name: 'Allow' });
    await Promise.race([page.waitForURL(atApp), allow.waitFor()]);
    if (!atApp(new URL(page.url()))) {
      await allow.click();
      await page.waitForURL(atApp);
    }
  }

  it('follows a mailed link to a new passkey on a new device, which then signs in to the app', async () => {
    // Margaret signs up on her laptop, which she then loses.
    const laptop = await device();
    await laptop.page.goto(app.loginUrl);
    await laptop.page.getByRole('link', { name: 'Create an account' }).click();
    await laptop.page.getByLabel('Email').fill('margaret@example.com');
    await laptop.page.getByRole('button', { name: 'Create account' }).click();
    await reachApp(laptop.page);
    const sub = app.lastSignIn!.claims.sub;

    // On a new phone, with no passkey, she asks for a link.
    const phone = await device();
    const { page } = phone;
    await page.goto(app.loginUrl);
    await page.getByRole('link', { name: 'Lost your passkey?' }).click();
    await page.getByLabel('Email').fill('margaret@example.com');
    await page.getByRole('button', { name: 'Send me a link' }).click();
    await page.getByRole('heading', { name: 'Check your mail' }).waitFor();
    await page.screenshot({ path: '/tmp/sesame-recover-sent.png' });

    // Her sign-up earlier brought a welcome mail; the recovery link is the second.
    const received = (await mail.waitFor('margaret@example.com', 2)).at(-1);
    expect(received!.subject).toBe('Add a passkey to your Sesame account');
    await page.goto(linkIn(received!));
    await page.getByRole('button', { name: 'Create a passkey' }).click();
    await page.waitForURL(`${sesame.baseUrl}/account`);

    // The new passkey signs her in to the app (prompt=login: a sign-in, not the session the link made).
    // The virtual authenticator answers the page's autofill request at once, as her pick would.
    await page.goto(`${app.loginUrl}?prompt=login`);
    await reachApp(page);
    expect(app.lastSignIn!.claims.sub).toBe(sub);
    expect(app.lastSignIn!.claims.email).toBe('margaret@example.com');
    // The mailed link worked once.
    await page.goto(linkIn(received!));
    await page.getByRole('heading', { name: 'This link was already used' }).waitFor();
  });
});
