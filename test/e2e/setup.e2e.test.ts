import { createOneTimeLink } from '../../src/accounts/oneTimeLinks.js';
import { announceSetupLink, issueSetupLink } from '../../src/accounts/setupLink.js';
import { usersQueries } from '../../src/db/queries/users.js';
import { createLogger } from '../../src/logger.js';
import { browserScenario } from '../support/browserScenario.js';
import { describeBrowser } from '../support/chromium.js';

describeBrowser('the first run in Chromium: the setup link makes the first administrator', () => {
  // A fresh database: no administrator yet.
  const scenario = browserScenario({ stepTimeout: 10_000 });
  const logLines: string[] = [];

  it('creates the admin passkey from the link in the log, lands on /admin, and the link then stops working', async () => {
    const { sesame } = scenario;
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

    const passkeys = await scenario.device();
    const { page } = passkeys;
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
    const again = await page.goto(setupUrl);
    expect(again!.status()).toBe(410);
    await page.getByRole('heading', { name: 'Sesame already has an administrator' }).waitFor();
  });
});

describeBrowser(
  'the first run in Chromium: the setup link makes an existing account the first administrator',
  () => {
    const scenario = browserScenario({ stepTimeout: 10_000 });

    it("signs in with the account's passkey on the setup page, lands on /admin, and the account is the administrator", async () => {
      const { sesame } = scenario;
      // An account from before the first administrator: an invite used in this browser.
      const invite = await createOneTimeLink(sesame.db, sesame.config, {
        email: 'owner@example.com',
        actor: 'test',
      });
      const setupUrl = (await issueSetupLink(sesame.db, sesame.config))!.url;
      const passkeys = await scenario.device();
      const { page } = passkeys;
      await page.goto(invite.url);
      await page.getByRole('button', { name: 'Create a passkey' }).click();
      await page.waitForURL((url) => !url.pathname.startsWith('/link/'));

      await page.goto(setupUrl);
      await page.getByRole('heading', { name: 'Create the first administrator' }).waitFor();
      await page.getByRole('button', { name: 'Sign in with a passkey' }).click();
      await page.waitForURL((url) => url.pathname.startsWith('/admin'));
      await page.getByRole('heading', { name: 'Clients' }).waitFor();
      const { credentials } = await passkeys.cdp.send('WebAuthn.getCredentials', {
        authenticatorId: passkeys.authenticatorId,
      });
      expect(credentials).toHaveLength(1);
      expect(await usersQueries.findByEmail(sesame.db, 'owner@example.com')).toMatchObject({
        is_admin: true,
      });
      expect((await page.goto(setupUrl))!.status()).toBe(410);
    });
  },
);
