import type { Browser } from 'playwright-core';
import { addGroupMember, createGroup } from '../../src/admin/groups.js';
import { createClient, updateClient } from '../../src/oidc/clients.js';
import {
  describeBrowser,
  launchBrowser,
  newPasskeyContext,
  type PasskeyContext,
  watchPageProblems,
} from '../support/chromium.js';
import { type RpServer, startRpServer } from '../support/rpServer.js';
import { startTestApp, type TestApp } from '../support/testApp.js';

const STEP_TIMEOUT = 8_000;

describeBrowser('an app only some groups may use, in Chromium', () => {
  let sesame: TestApp;
  let app: RpServer;
  let browser: Browser;
  let passkeys: PasskeyContext;
  const problems: string[][] = [];

  beforeAll(async () => {
    [sesame, browser] = await Promise.all([startTestApp(), launchBrowser()]);
    await createGroup(sesame.db, 'finance', 'test');
    app = await startRpServer(
      sesame.baseUrl,
      async ({ redirectUri }) => {
        const { client, client_secret } = await createClient(
          sesame.db,
          { name: 'Notes', redirect_uris: [redirectUri] },
          'test',
        );
        await updateClient(sesame.db, client.client_id, { allowed_groups: ['finance'] }, 'test');
        return { client_id: client.client_id, client_secret };
      },
      { scope: 'openid email groups' },
    );
    passkeys = await newPasskeyContext(browser);
    passkeys.page.setDefaultTimeout(STEP_TIMEOUT);
    problems.push(watchPageProblems(passkeys.page));
  });

  afterAll(async () => {
    await passkeys?.context.close();
    await browser?.close();
    await app?.close();
    await sesame?.stop();
  });

  afterEach(() => {
    // Every page ran under Sesame's strict CSP without a violation or an uncaught script error.
    expect(problems.flat()).toEqual([]);
  });

  it('tells a person outside the groups they have no access, and the app gets access_denied', async () => {
    const { page } = passkeys;
    await page.goto(app.loginUrl);
    await page.getByRole('link', { name: 'Create an account' }).click();
    await page.getByLabel('Email').fill('mallory@example.com');
    await page.getByRole('button', { name: 'Create account' }).click();

    await page.getByRole('heading', { name: "You don't have access to Notes" }).waitFor();
    await page.screenshot({ path: '/tmp/sesame-no-access.png' });
    await page.getByRole('button', { name: 'Back to Notes' }).click();
    await page.waitForURL((url) => url.href.startsWith(app.redirectUri));
    expect(new URL(page.url()).searchParams.get('error')).toBe('access_denied');
    expect(app.lastSignIn).toBeUndefined();
  });

  it('lets the same person in once an admin adds them to the group', async () => {
    await addGroupMember(sesame.db, 'finance', 'mallory@example.com', 'test');
    const { page } = passkeys;
    await page.goto(app.loginUrl);
    await page.getByRole('button', { name: 'Allow' }).click();
    await page.waitForURL((url) => url.href.startsWith(app.redirectUri));
    expect(app.lastSignIn!.claims.groups).toEqual(['finance']);
  });
});
