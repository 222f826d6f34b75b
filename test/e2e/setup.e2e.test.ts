import type { Browser } from 'playwright-core';
import { announceSetupLink } from '../../src/accounts/setupLink.js';
import { usersQueries } from '../../src/db/queries/users.js';
import { createLogger } from '../../src/logger.js';
import {
  describeBrowser,
  launchBrowser,
  newPasskeyContext,
  type PasskeyContext,
  watchPageProblems,
} from '../support/chromium.js';
import { startTestApp, type TestApp } from '../support/testApp.js';

const STEP_TIMEOUT = 10_000;

describeBrowser('the first run in Chromium: the setup link makes the first administrator', () => {
  let sesame: TestApp;
  let browser: Browser;
  let passkeys: PasskeyContext;
  const logLines: string[] = [];

  beforeAll(async () => {
    // A fresh database: no administrator yet.
    [sesame, browser] = await Promise.all([startTestApp(), launchBrowser()]);
    passkeys = await newPasskeyContext(browser);
    passkeys.page.setDefaultTimeout(STEP_TIMEOUT);
  });

  afterAll(async () => {
    await passkeys?.context.close();
    await browser?.close();
    await sesame?.stop();
  });

  it('creates the admin passkey from the link in the log, lands on /admin, and the link then stops working', async () => {
    // What src/main.ts does once the server listens; the line is read as an operator reads the log.
    await announceSetupLink(
      sesame.db,
      sesame.config,
      createLogger('info', (line) => logLines.push(line)),
    );
    const announced = logLines
      .map((line) => JSON.parse(line) as Record<string, string>)
      .find((entry) => entry.msg === 'no administrator yet: open this link to create one');
    expect(announced?.setup_url).toMatch(new RegExp(`^${sesame.baseUrl}/setup/[A-Za-z0-9_-]{43}$`));
    const setupUrl = announced!.setup_url!;

    const { page } = passkeys;
    const problems = watchPageProblems(page);
    await page.goto(setupUrl);
    await page.getByRole('heading', { name: 'Create the first administrator' }).waitFor();
    await page.getByLabel('Email').fill('founder@example.com');
    await page.getByLabel('Name').fill('Ada Founder');
    await page.screenshot({ path: '/tmp/sesame-setup.png', fullPage: true });
    await page.getByRole('button', { name: 'Create a passkey' }).click();

    await page.waitForURL((url) => url.pathname.startsWith('/admin'));
    await page.getByRole('heading', { name: 'Clients' }).waitFor();
    const { credentials } = await passkeys.cdp.send('WebAuthn.getCredentials', {
      authenticatorId: passkeys.authenticatorId,
    });
    expect(credentials).toHaveLength(1);
    expect(await usersQueries.findByEmail(sesame.db, 'founder@example.com')).toMatchObject({
      name: 'Ada Founder',
      is_admin: true,
    });
    // Every page ran under the strict CSP without a violation or a script error.
    expect(problems).toEqual([]);

    const again = await page.goto(setupUrl);
    expect(again!.status()).toBe(410);
    await page.getByRole('heading', { name: 'Sesame already has an administrator' }).waitFor();
  });
});
