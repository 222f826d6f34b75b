import { createHash, randomBytes } from 'node:crypto';
import type { Locator, Page } from 'playwright-core';
import { createClient } from '../../src/oidc/clients.js';
import { closeWithin } from '../support/boundedClose.js';
import { browserScenario } from '../support/browserScenario.js';
import { describeBrowser } from '../support/chromium.js';
import { startCallbackPage } from '../support/rpServer.js';

const STEP_TIMEOUT = 15_000;
/** More Tab presses than any page has stops: a control never reached fails the test instead of looping. */
const MAX_TABS = 40;

/**
 * Presses Tab (Shift+Tab with `backwards`) until `target` has the focus, and checks that the
 * focus can be seen: the focused control draws an outline.
 */
async function tabTo(page: Page, target: Locator, options: { backwards?: boolean } = {}) {
  for (let presses = 0; presses < MAX_TABS; presses++) {
    if (await target.evaluate((element) => element === document.activeElement)) {
      const outline = await target.evaluate((element) => {
        const style = getComputedStyle(element);
        return { style: style.outlineStyle, width: Number.parseFloat(style.outlineWidth) };
      });
      expect(outline.style).not.toBe('none');
      expect(outline.width).toBeGreaterThanOrEqual(2);
      return;
    }
    await page.keyboard.press(options.backwards ? 'Shift+Tab' : 'Tab');
  }
  throw new Error(`${MAX_TABS} presses of Tab never reached ${target}`);
}

describeBrowser('the keyboard alone: sign-up, consent and the account page', () => {
  const scenario = browserScenario({ stepTimeout: STEP_TIMEOUT });
  let clientId: string;
  let appCallback: Awaited<ReturnType<typeof startCallbackPage>>;

  beforeAll(async () => {
    appCallback = await startCallbackPage();
    ({
      client: { client_id: clientId },
    } = await createClient(scenario.sesame.db, { name: 'Notes', redirect_uris: [appCallback.url] }, 'test'));
  });

  afterAll(() => closeWithin('app callback close', () => appCallback?.close()));

  it('signs up with a passkey, allows the app, renames the passkey, names the account and signs out, without a mouse', async () => {
    const { sesame } = scenario;
    const { page } = await scenario.device();
    const authorize = new URL('/auth', sesame.baseUrl);
    authorize.search = new URLSearchParams({
      client_id: clientId,
      response_type: 'code',
      redirect_uri: appCallback.url,
      scope: 'openid email',
      state: randomBytes(8).toString('hex'),
      code_challenge: createHash('sha256').update(randomBytes(32).toString('base64url')).digest('base64url'),
      code_challenge_method: 'S256',
    }).toString();

    // Sign-in page: to "Create an account".
    await page.goto(authorize.toString());
    await tabTo(page, page.getByRole('link', { name: 'Create an account' }));
    await page.keyboard.press('Enter');

    // Sign-up: the email, then the button; the passkey comes from the platform authenticator.
    // A malformed address is refused, and the keyboard is back in the field, marked invalid
    // and described by the message; once the address is right, the marks go.
    const email = page.getByLabel('Email');
    await email.waitFor();
    await tabTo(page, email);
    await page.keyboard.type('keys@');
    await tabTo(page, page.getByRole('button', { name: 'Create account' }));
    await page.keyboard.press('Enter');
    await page.getByRole('alert').filter({ hasText: 'valid email address' }).waitFor();
    await expectFocused(email);
    expect(await email.getAttribute('aria-invalid')).toBe('true');
    expect(await email.getAttribute('aria-describedby')).toBe('status');
    await page.keyboard.press('ControlOrMeta+A');
    await page.keyboard.type('keys@example.com');
    await tabTo(page, page.getByRole('button', { name: 'Create account' }));
    await page.keyboard.press('Enter');

    // Consent: past Allow to Deny, back to Allow with Shift+Tab, and Space presses it.
    const allow = page.getByRole('button', { name: 'Allow' });
    await allow.waitFor();
    await tabTo(page, page.getByRole('button', { name: 'Deny' }));
    await tabTo(page, allow, { backwards: true });
    await page.keyboard.press('Space');
    await page.waitForURL((url) => url.href.startsWith(appCallback.url));

    // The account page: rename the passkey. Its form opens with the focus in the new name.
    await page.goto(`${sesame.baseUrl}/account`);
    await tabTo(page, page.getByRole('button', { name: 'Rename' }));
    await page.keyboard.press('Enter');
    const newName = page.getByLabel('New name');
    await expectFocused(newName);
    await page.keyboard.press('ControlOrMeta+A');
    await page.keyboard.type('Keyboard laptop');
    await page.keyboard.press('Enter');
    await page.getByRole('alert').filter({ hasText: 'renamed' }).waitFor();

    // The profile's name, saved with Enter on its button.
    await page.reload();
    await tabTo(page, page.getByRole('textbox', { name: 'Name', exact: true }));
    await page.keyboard.type('Kay Board');
    await tabTo(page, page.getByRole('button', { name: 'Save name' }));
    await page.keyboard.press('Enter');
    await expectEventually(async () => {
      const user = await sesame.db
        .selectFrom('users')
        .select('name')
        .where('email', '=', 'keys@example.com')
        .executeTakeFirst();
      return user?.name === 'Kay Board';
    });
    const credential = await sesame.db
      .selectFrom('credentials')
      .innerJoin('users', 'users.id', 'credentials.user_id')
      .select('credentials.name')
      .where('users.email', '=', 'keys@example.com')
      .executeTakeFirstOrThrow();
    expect(credential.name).toBe('Keyboard laptop');

    // Sign out, from the account page's own button.
    await page.reload();
    await tabTo(page, page.getByRole('button', { name: 'Sign out', exact: true }).first());
    await page.keyboard.press('Enter');
    // One press: the provider's confirmation submits itself, and the signed-out person is
    // asked to sign in again at the account page's address (where this virtual authenticator,
    // always present, answers the page's passkey autofill and signs straight back in).
    await page.waitForURL((url) => url.pathname.startsWith('/interaction/'));
  }, 120_000);
});

async function expectFocused(target: Locator) {
  await target.waitFor();
  expect(await target.evaluate((element) => element === document.activeElement)).toBe(true);
}

async function expectEventually(check: () => Promise<boolean>) {
  const deadline = Date.now() + STEP_TIMEOUT;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('the change never arrived');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
