import { type Browser, chromium } from 'playwright-core';
import { createOneTimeLink } from '../../src/accounts/oneTimeLinks.js';
import { CHROMIUM_ARGS, CHROMIUM_PATH, describeBrowser, newPasskeyContext } from '../support/chromium.js';
import { closeBrowser } from '../support/chromiumLifecycle.js';
import { startTestApp, type TestApp } from '../support/testApp.js';

/** A host name that is not localhost: browsers offer passkeys there only over https. */
const HOST = 'sesame.test';
const STEP_TIMEOUT = 10_000;
const INSECURE =
  /^Passkeys work only over https \(or on localhost\), and this page was opened at http:\/\/sesame\.test:\d+: whoever runs this site must serve it over https\.$/;

// Sesame starts with an http ISSUER off localhost (one warn line at start). Its pages must then
// say why no passkey can work, not "Something went wrong with the passkey. You can try again."
describeBrowser('pages served over http on a host other than localhost, in Chromium', () => {
  let sesame: TestApp;
  let browser: Browser;

  beforeAll(async () => {
    sesame = await startTestApp({}, { issuerHost: HOST });
    browser = await chromium.launch({
      executablePath: CHROMIUM_PATH,
      args: [...CHROMIUM_ARGS, `--host-resolver-rules=MAP ${HOST} 127.0.0.1`],
      headless: true,
    });
  });

  afterAll(async () => {
    await closeBrowser(browser);
    await sesame.stop();
  });

  it("say, on a one-time link's Create a passkey, that passkeys need https, naming the address", async () => {
    const { url } = await createOneTimeLink(sesame.db, sesame.config, {
      email: 'ada@example.com',
      actor: 'test',
    });
    expect(url.startsWith(`http://${HOST}:`)).toBe(true);
    const { page } = await newPasskeyContext(browser);
    page.setDefaultTimeout(STEP_TIMEOUT);
    await page.goto(url);
    await page.getByRole('button', { name: 'Create a passkey' }).click();
    await page.getByRole('alert').filter({ hasText: INSECURE }).waitFor();
  });

  it('say so on the sign-in page as it opens, not that the browser lacks passkeys', async () => {
    const { page } = await newPasskeyContext(browser);
    page.setDefaultTimeout(STEP_TIMEOUT);
    await page.goto(`${sesame.baseUrl}/account/login`);
    await page.getByRole('alert').filter({ hasText: INSECURE }).waitFor();
  });
});
