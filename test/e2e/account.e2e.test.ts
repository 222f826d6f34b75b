import type { Locator, Page } from 'playwright-core';
import { browserScenario } from '../support/browserScenario.js';
import { describeBrowser, openWithAutofillWaiting } from '../support/chromium.js';
import { cliJsonOn } from '../support/sesameProcess.js';

describeBrowser('one-time links and the account page in Chromium', () => {
  const scenario = browserScenario({ stepTimeout: 10_000, env: { SIGNUP: 'invite' }, app: true });
  const device = () => scenario.device();

  const passkeyItems = (page: Page) => page.locator('li.passkey');

  /** Checks that `target` has the keyboard focus. */
  const expectFocused = async (target: Locator) =>
    expect(await target.evaluate((element) => element === document.activeElement)).toBe(true);

  /** `sesame users invite --email <email> --json`, the built command on this server's database. */
  const invite = (email: string) =>
    cliJsonOn<{ url: string }>(scenario.sesame, ['users', 'invite', '--email', email]);

  it('onboards through an invite link with "Create a passkey", then the passkey signs in to an app', async () => {
    // The link an operator makes with the real command: `sesame users invite --email ... --json`.
    const { url } = await invite('ada@example.com');
    expect(url.startsWith(`${scenario.sesame.baseUrl}/`)).toBe(true);
    const device1 = await device();
    const { page } = device1;
    await page.goto(url);
    await page.getByRole('img', { name: 'QR code that opens this link' }).waitFor({ state: 'attached' });
    await page.getByLabel('Name').fill('Ada Lovelace');
    await page.screenshot({ path: '/tmp/sesame-link.png', fullPage: true });
    // A passkey prompt that fails (user verification refused) says so and leaves the focus on
    // the button, which was disabled meanwhile, to try again from the keyboard.
    const create = page.getByRole('button', { name: 'Create a passkey' });
    await device1.cdp.send('WebAuthn.setUserVerified', {
      authenticatorId: device1.authenticatorId,
      isUserVerified: false,
    });
    await create.click();
    await page.getByRole('alert').filter({ hasText: 'cancelled or timed out' }).waitFor();
    await expectFocused(create);
    await device1.cdp.send('WebAuthn.setUserVerified', {
      authenticatorId: device1.authenticatorId,
      isUserVerified: true,
    });
    await create.click();

    // Signed in straight away: the account page shows the new passkey.
    await page.waitForURL(`${scenario.sesame.baseUrl}/account`);
    await page.getByRole('heading', { name: 'Your account' }).waitFor();
    expect(await page.locator('#profile-email').textContent()).toBe('ada@example.com');
    expect(await passkeyItems(page).count()).toBe(1);

    // The link is used up.
    const again = await page.goto(url);
    expect(again?.status()).toBe(410);

    // An app's sign-in (prompt=login forces the login step): sign-up is not offered, the passkey signs in.
    // Presence off while the page loads: its passkey autofill request waits, as for a person
    // who has not picked from the list, and the button press below is what signs in.
    await openWithAutofillWaiting(device1, `${scenario.app.loginUrl}?prompt=login`);
    expect(await page.getByRole('link', { name: 'Create an account' }).count()).toBe(0);
    expect(await page.getByRole('button', { name: 'Create an account' }).count()).toBe(0);
    await page.getByRole('button', { name: 'Sign in with a passkey' }).click();
    await page.getByRole('button', { name: 'Allow' }).click();
    await page.waitForURL((u) => u.href.startsWith(scenario.app.redirectUri));
    const user = await scenario.sesame.db
      .selectFrom('users')
      .select(['id', 'name'])
      .where('email', '=', 'ada@example.com')
      .executeTakeFirstOrThrow();
    expect(user.name).toBe('Ada Lovelace');
    expect(await page.locator('#sub').textContent()).toBe(user.id);
    expect(await page.locator('#email').textContent()).toBe('ada@example.com');
  });

  it('renames, refuses to delete the last passkey, and deletes one after an automatic passkey confirmation', async () => {
    const email = 'lin@example.com';
    const laptop = await device();
    const link = await invite(email);
    await laptop.page.goto(link.url);
    await laptop.page.getByRole('button', { name: 'Create a passkey' }).click();
    await laptop.page.waitForURL(`${scenario.sesame.baseUrl}/account`);
    const { page } = laptop;

    // Rename the only passkey.
    const item = passkeyItems(page).first();
    await item.getByRole('button', { name: 'Rename' }).click();
    await item.getByLabel('New name').fill('Work laptop');
    await item.getByRole('button', { name: 'Save' }).click();
    await page.getByRole('alert').filter({ hasText: 'renamed' }).waitFor();
    expect(await item.locator('.passkey-name').textContent()).toBe('Work laptop');
    // The form closed with the focus in it: the focus goes back to the button that opened it.
    await expectFocused(item.getByRole('button', { name: 'Rename' }));

    // The last passkey cannot be deleted.
    page.on('dialog', (dialog) => dialog.accept());
    await item.getByRole('button', { name: 'Delete' }).click();
    await page.getByRole('alert').filter({ hasText: 'only passkey' }).waitFor();
    // The button was disabled while the request ran, which dropped the focus: it comes back
    // to the button, so the keyboard goes on from where the person was.
    await expectFocused(item.getByRole('button', { name: 'Delete' }));

    // A recovery link adds a second passkey from a phone.
    const phone = await device();
    // For an existing account the same command makes a link that adds a passkey to it.
    const recovery = await invite(email);
    await phone.page.goto(recovery.url);
    // The laptop is not lost: its passkey stays.
    await phone.page.getByLabel('Remove my other passkeys').uncheck();
    await phone.page.getByRole('button', { name: 'Create a passkey' }).click();
    await phone.page.waitForURL(`${scenario.sesame.baseUrl}/account`);

    // Like every link that adds a passkey to an account, it signed the account out elsewhere
    // (a lost device keeps nothing): the laptop signs in again with its passkey.
    await openWithAutofillWaiting(laptop, `${scenario.sesame.baseUrl}/account`);
    await page.getByRole('button', { name: 'Sign in with a passkey' }).click();
    await page.waitForURL(`${scenario.sesame.baseUrl}/account`);

    // On the laptop, delete the phone's passkey: the page asks for a passkey confirmation, then deletes.
    expect(await passkeyItems(page).count()).toBe(2);
    expect(await page.locator('#passkey-count').textContent()).toBe('You have 2 passkeys.');
    await page.screenshot({ path: '/tmp/sesame-account.png', fullPage: true });
    await passkeyItems(page).nth(1).getByRole('button', { name: 'Delete' }).click();
    await page.getByRole('alert').filter({ hasText: 'was deleted' }).waitFor();
    expect(await passkeyItems(page).count()).toBe(1);
    expect(await page.locator('#passkey-count').textContent()).toBe('You have 1 passkey.');
    // The deleted passkey's button went with it; the focus goes to "Add a passkey".
    await expectFocused(page.getByRole('button', { name: 'Add a passkey' }));
    const remaining = await scenario.sesame.db
      .selectFrom('credentials')
      .innerJoin('users', 'users.id', 'credentials.user_id')
      .select('credentials.name')
      .where('users.email', '=', email)
      .execute();
    expect(remaining).toEqual([{ name: 'Work laptop' }]);
  });
  it('revoking an app in a second tab after the first revoked it says so and links back to the account', async () => {
    const email = 'kay@example.com';
    const laptop = await device();
    const { page, context } = laptop;
    await page.goto((await invite(email)).url);
    await page.getByRole('button', { name: 'Create a passkey' }).click();
    await page.waitForURL(`${scenario.sesame.baseUrl}/account`);
    await page.goto(scenario.app.loginUrl);
    await scenario.reachApp(page);

    // Two tabs on the account page; the first revokes the app.
    await page.goto(`${scenario.sesame.baseUrl}/account`);
    const other = await context.newPage();
    await other.goto(`${scenario.sesame.baseUrl}/account`);
    await page.getByRole('button', { name: 'Revoke' }).click();
    await page.getByText('No app has signed you in yet.').waitFor();

    // The second tab's Revoke, for an app no longer connected, is refused with words that say
    // why, under no "Page not found" (the page is there), with a way back to the account.
    const refused = other.waitForResponse((response) => response.url().endsWith('/revoke'));
    await other.getByRole('button', { name: 'Revoke' }).click();
    expect((await refused).status()).toBe(404);
    await other.getByText('This app is not connected to your account.').waitFor();
    expect(await other.getByRole('heading', { level: 1 }).textContent()).toBe('Something went wrong');
    await other.getByRole('link', { name: 'Go to your account' }).click();
    await other.waitForURL(`${scenario.sesame.baseUrl}/account`);
    await other.getByRole('heading', { name: 'Your account' }).waitFor();
  });
});
