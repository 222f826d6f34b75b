import { addGroupMember, createGroup } from '../../src/admin/groups.js';
import { createClient, updateClient } from '../../src/oidc/clients.js';
import { browserScenario, type Device } from '../support/browserScenario.js';
import { describeBrowser } from '../support/chromium.js';
import { eventually } from '../support/eventually.js';

describeBrowser('an app only some groups may use, in Chromium', () => {
  const scenario = browserScenario({
    stepTimeout: 8_000,
    app: {
      scope: 'openid email groups',
      async register(sesame, { redirectUri }) {
        await createGroup(sesame.db, 'finance', 'test');
        const { client, client_secret } = await createClient(
          sesame.db,
          { name: 'Notes', redirect_uris: [redirectUri] },
          'test',
        );
        await updateClient(sesame.db, client.client_id, { allowed_groups: ['finance'] }, 'test');
        return { client_id: client.client_id, client_secret };
      },
    },
  });
  /** Mallory's one browser, in both tests. */
  let passkeys: Device;

  beforeAll(async () => {
    passkeys = await scenario.device();
  });

  it('tells a person outside the groups they have no access, and the app gets access_denied', async () => {
    const { page } = passkeys;
    await page.goto(scenario.app.loginUrl);
    await page.getByRole('link', { name: 'Create an account' }).click();
    await page.getByLabel('Email').fill('mallory@example.com');
    await page.getByRole('button', { name: 'Create account' }).click();

    await page.getByRole('heading', { name: "You don't have access to Notes" }).waitFor();
    await page.screenshot({ path: '/tmp/sesame-no-access.png' });
    await page.getByRole('button', { name: 'Back to Notes' }).click();
    await page.waitForURL((url) => url.href.startsWith(scenario.app.redirectUri));
    expect(new URL(page.url()).searchParams.get('error')).toBe('access_denied');
    expect(scenario.app.lastSignIn).toBeUndefined();
  });

  it('lets the same person in once an admin adds them to the group', async () => {
    // She signed up herself (her address unproven): the admin says they know whose account it is.
    await addGroupMember(scenario.sesame.db, 'finance', 'mallory@example.com', 'test', { unverified: true });
    const { page } = passkeys;
    // Written straight to the database, the membership reaches the server by its row notice a
    // moment after the commit: until then the app still sends her to the no-access page.
    const allow = page.getByRole('button', { name: 'Allow' });
    const offeredConsent = async () => {
      await page.goto(scenario.app.loginUrl);
      return allow.isVisible();
    };
    expect(await eventually(offeredConsent)).toBe(true);
    await allow.click();
    await page.waitForURL((url) => url.href.startsWith(scenario.app.redirectUri));
    expect(scenario.app.lastSignIn!.claims.groups).toEqual(['finance']);
  });
});
