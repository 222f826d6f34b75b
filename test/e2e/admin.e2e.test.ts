import type { Page } from 'playwright-core';
import { createGroup } from '../../src/admin/groups.js';
import { sha256Hex } from '../../src/crypto.js';
import { clientsQueries } from '../../src/db/queries/clients.js';
import { groupsQueries } from '../../src/db/queries/groups.js';
import { passkeyTenantsQueries } from '../../src/db/queries/passkeyTenants.js';
import { usersQueries } from '../../src/db/queries/users.js';
import { browserScenario } from '../support/browserScenario.js';
import { describeBrowser, type PasskeyRequest } from '../support/chromium.js';
import { cliJsonOn } from '../support/sesameProcess.js';
import { ageSignIn } from '../support/signInAge.js';

describeBrowser('the admin pages in Chromium', () => {
  const scenario = browserScenario({ stepTimeout: 10_000 });
  const device = () => scenario.device();

  /**
   * Makes an invitation link with the built command (`sesame users invite`), opens it and
   * creates the account's passkey; Sesame signs the person in.
   */
  async function acceptInvite(page: Page, email: string, admin: boolean) {
    const link = await cliJsonOn<{ url: string }>(scenario.sesame, [
      'users',
      'invite',
      '--email',
      email,
      ...(admin ? ['--admin'] : []),
    ]);
    await page.goto(link.url);
    await page.getByRole('button', { name: 'Create a passkey' }).click();
    // An administrator's invite opens the admin pages, as the setup link does.
    await page.waitForURL((url) => url.pathname === (admin ? '/admin/clients' : '/account'));
  }

  /** Moves the person's step-ups six minutes into the past, as if they had left the page open. */
  async function ageStepUps(email: string) {
    const user = (await usersQueries.findByEmail(scenario.sesame.db, email))!;
    await scenario.sesame.db
      .updateTable('step_ups')
      .set({ verified_at: new Date(Date.now() - 6 * 60 * 1000) })
      .where('user_id', '=', user.id)
      .execute();
  }

  const outcomes = (requests: PasskeyRequest[]) =>
    requests.map(({ mediation, outcome }) => ({ mediation, outcome }));

  it('lets an invited admin sign in with a passkey, register a client at /admin and see its secret once', async () => {
    const { context, page, requests } = await device();
    await context.grantPermissions(['clipboard-read', 'clipboard-write'], {
      origin: scenario.sesame.baseUrl,
    });
    await acceptInvite(page, 'ops@example.com', true);
    expect((await usersQueries.findByEmail(scenario.sesame.db, 'ops@example.com'))!.is_admin).toBe(true);

    await page.goto(`${scenario.sesame.baseUrl}/admin`);
    await page.getByRole('heading', { name: 'Clients' }).waitFor();
    await page.getByRole('link', { name: 'Register a client' }).click();
    await page.getByLabel('Name').fill('Grafana');
    await page
      .getByRole('textbox', { name: /^Redirect URIs/ })
      .fill('https://grafana.example.com/login/generic_oauth');
    await page.getByRole('radio', { name: /^Confidential/ }).check();
    await page.screenshot({ path: '/tmp/sesame-admin-new-client.png', fullPage: true });
    await page.getByRole('button', { name: 'Register client' }).click();

    await page.getByRole('heading', { name: /Registered/ }).waitFor();
    // The page's script asked for the admin's passkey (the virtual authenticator answers) before it posted.
    expect(outcomes(requests)).toEqual([{ mediation: 'optional', outcome: 'resolved' }]);
    const clientId = (await page.locator('#client-id').textContent())!.trim();
    const secret = (await page.locator('#client-secret').textContent())!.trim();
    expect(secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
    await page.screenshot({ path: '/tmp/sesame-admin-secret.png', fullPage: true });

    // The copy button puts the secret on the clipboard (src/client/admin.ts, no inline script).
    await page.getByRole('button', { name: 'Copy secret' }).click();
    await page.getByRole('status').filter({ hasText: 'Copied' }).waitFor();
    expect(await page.evaluate(() => navigator.clipboard.readText())).toBe(secret);

    expect((await clientsQueries.find(scenario.sesame.db, clientId))!.secret_hash).toBe(sha256Hex(secret));

    // Back to the filled-in form and "Register client" again: told it was done, no second client.
    await page.goBack();
    await page.getByRole('button', { name: 'Register client' }).click();
    await page.getByRole('heading', { name: 'Client already registered' }).waitFor();
    const named = await scenario.sesame.db
      .selectFrom('clients')
      .select('client_id')
      .where('name', '=', 'Grafana')
      .execute();
    expect(named).toHaveLength(1);

    // Shown once: neither the list nor the client's page, nor a reload of them, shows it again.
    await page.goto(`${scenario.sesame.baseUrl}/admin/clients`);
    expect(await page.getByRole('link', { name: 'Grafana' }).count()).toBe(1);
    expect(await page.content()).not.toContain(secret);
    await page.getByRole('link', { name: 'Grafana' }).click();
    await page.getByRole('heading', { name: 'Grafana' }).waitFor();
    expect(await page.content()).not.toContain(secret);
    await page.screenshot({ path: '/tmp/sesame-admin-client.png', fullPage: true });

    await page.goto(`${scenario.sesame.baseUrl}/admin/users`);
    await page.getByRole('rowheader', { name: 'ops@example.com' }).waitFor();
    await page.screenshot({ path: '/tmp/sesame-admin-users.png', fullPage: true });

    // A passkey API app: registered from the nav, its API key shown once with a copy button.
    await page.getByRole('link', { name: 'Passkey API' }).click();
    await page.getByRole('link', { name: 'Register an app' }).click();
    await page.getByLabel('Name').fill('Shop');
    await page.getByRole('textbox', { name: /^Origins/ }).fill('https://shop.example.com');
    await page.getByRole('button', { name: 'Register app' }).click();
    await page.getByRole('heading', { name: /Registered/ }).waitFor();
    const apiKey = (await page.locator('#api-key').textContent())!.trim();
    expect(apiKey).toMatch(/^spk_/);
    await page.getByRole('button', { name: 'Copy API key' }).click();
    expect(await page.evaluate(() => navigator.clipboard.readText())).toBe(apiKey);
    await page.screenshot({ path: '/tmp/sesame-admin-passkey-app.png', fullPage: true });

    // An admin API key, created and then revoked after the confirmation page.
    await page.getByRole('link', { name: 'API keys' }).click();
    await page.getByLabel('Name').fill('terraform');
    await page.getByRole('button', { name: 'Create API key' }).click();
    expect((await page.locator('#api-key').textContent())!.trim()).toMatch(/^ssk_/);
    await page.getByRole('link', { name: 'Back to API keys' }).click();
    await page.getByRole('link', { name: 'Revoke terraform' }).click();
    await page.getByRole('button', { name: 'Revoke API key' }).click();
    await page.getByRole('status').filter({ hasText: 'was revoked' }).waitFor();
    await page.screenshot({ path: '/tmp/sesame-admin-api-keys.png', fullPage: true });
    // The app and the API key came within five minutes of the passkey prompt: no second one.
    expect(requests).toHaveLength(1);
  });

  it('asks for the passkey again after five minutes before it rotates a secret or a key, and mints nothing when it fails', async () => {
    const { page, cdp, authenticatorId, requests } = await device();
    await acceptInvite(page, 'keys@example.com', true);

    await page.goto(`${scenario.sesame.baseUrl}/admin/clients/new`);
    await page.getByLabel('Name').fill('Wiki');
    await page.getByRole('textbox', { name: /^Redirect URIs/ }).fill('https://wiki.example.com/callback');
    await page.getByRole('button', { name: 'Register client' }).click();
    await page.getByRole('heading', { name: 'Registered “Wiki”' }).waitFor();
    const clientId = (await page.locator('#client-id').textContent())!.trim();
    const firstHash = (await clientsQueries.find(scenario.sesame.db, clientId))!.secret_hash;
    expect(requests).toHaveLength(1);

    // The admin comes back to an open page later; the passkey check fails the first time.
    await ageStepUps('keys@example.com');
    await page.getByRole('link', { name: "Continue to the client's settings" }).click();
    // Rotating asks first, on a page that says what it breaks; that page alone prompts nothing.
    await page.getByRole('link', { name: 'Rotate secret…' }).click();
    await page.getByRole('heading', { name: 'Rotate the secret of “Wiki”?' }).waitFor();
    await page.getByText('The old secret stops working at once').waitFor();
    expect(requests).toHaveLength(1);
    await cdp.send('WebAuthn.setUserVerified', { authenticatorId, isUserVerified: false });
    await page.getByRole('button', { name: 'Rotate secret' }).click();
    await page.getByRole('alert').filter({ hasText: 'cancelled or timed out' }).waitFor();
    expect(await page.getByRole('button', { name: 'Rotate secret' }).isEnabled()).toBe(true);
    // The keyboard focus is back on the button, not thrown to the top of the page.
    expect(await page.evaluate(() => document.activeElement?.textContent)).toBe('Rotate secret');
    expect((await clientsQueries.find(scenario.sesame.db, clientId))!.secret_hash).toBe(firstHash);

    await cdp.send('WebAuthn.setUserVerified', { authenticatorId, isUserVerified: true });
    await page.getByRole('button', { name: 'Rotate secret' }).click();
    await page.getByRole('heading', { name: 'New secret for “Wiki”' }).waitFor();
    const secret = (await page.locator('#client-secret').textContent())!.trim();
    expect((await clientsQueries.find(scenario.sesame.db, clientId))!.secret_hash).toBe(sha256Hex(secret));
    // Reloading the new secret's page sends the confirmation again: it rotates nothing.
    await page.reload();
    await page.getByRole('heading', { name: 'Secret already rotated' }).waitFor();
    expect(await page.content()).not.toContain(secret);
    expect((await clientsQueries.find(scenario.sesame.db, clientId))!.secret_hash).toBe(sha256Hex(secret));
    expect(outcomes(requests)).toEqual([
      { mediation: 'optional', outcome: 'resolved' },
      { mediation: 'optional', outcome: 'NotAllowedError' },
      { mediation: 'optional', outcome: 'resolved' },
    ]);

    // Registering a passkey API app right after needs no new prompt; rotating its key later does.
    await page.goto(`${scenario.sesame.baseUrl}/admin/passkey-tenants/new`);
    await page.getByLabel('Name').fill('Forum');
    await page.getByRole('textbox', { name: /^Origins/ }).fill('https://forum.example.com');
    await page.getByRole('button', { name: 'Register app' }).click();
    await page.getByRole('heading', { name: 'Registered “Forum”' }).waitFor();
    const tenantId = (await page.locator('#tenant-id').textContent())!.trim();
    expect(requests).toHaveLength(3);

    await ageStepUps('keys@example.com');
    await page.goto(`${scenario.sesame.baseUrl}/admin/passkey-tenants/${tenantId}`);
    await page.getByRole('link', { name: 'Rotate API key…' }).click();
    await page.getByText('The old key stops working at once').waitFor();
    await page.getByRole('button', { name: 'Rotate API key' }).click();
    await page.getByRole('heading', { name: 'New API key for “Forum”' }).waitFor();
    const apiKey = (await page.locator('#api-key').textContent())!.trim();
    expect((await passkeyTenantsQueries.findById(scenario.sesame.db, tenantId))!.apiKeyHash).toBe(
      sha256Hex(apiKey),
    );
    expect(requests).toHaveLength(4);
    expect(requests[3]!.outcome).toBe('resolved');

    // Changing where the client's sign-ins go asks again; deleting it right after does not.
    await ageStepUps('keys@example.com');
    await page.goto(`${scenario.sesame.baseUrl}/admin/clients/${clientId}`);
    await page.getByRole('textbox', { name: /^Redirect URIs/ }).fill('https://wiki.example.com/new-callback');
    await page.getByRole('button', { name: 'Save changes' }).click();
    await page.waitForURL(/done=client-updated/);
    expect((await clientsQueries.find(scenario.sesame.db, clientId))!.redirect_uris).toEqual([
      'https://wiki.example.com/new-callback',
    ]);
    expect(requests).toHaveLength(5);
    await page.getByRole('link', { name: 'Delete client…' }).click();
    await page.getByRole('button', { name: 'Delete client' }).click();
    await page.waitForURL(/done=client-deleted/);
    expect(await clientsQueries.find(scenario.sesame.db, clientId)).toBeUndefined();
    expect(outcomes(requests).slice(4)).toEqual([{ mediation: 'optional', outcome: 'resolved' }]);
  });

  it('asks an admin to confirm with their passkey before it shows an invitation link, then not again', async () => {
    const { page, requests } = await device();
    await acceptInvite(page, 'lead@example.com', true);

    await page.goto(`${scenario.sesame.baseUrl}/admin/users`);
    await page.getByLabel('Email').fill('newcomer@example.com');
    await page.getByRole('button', { name: 'Create invitation link' }).click();
    // The page's script asked for a passkey (the virtual authenticator answers), then posted the form.
    await page.getByRole('heading', { name: 'One-time link for newcomer@example.com' }).waitFor();
    const link = (await page.locator('#one-time-link').textContent())!.trim();
    expect(link.startsWith(`${scenario.sesame.baseUrl}/link/`)).toBe(true);
    expect(requests.map(({ mediation, outcome }) => ({ mediation, outcome }))).toEqual([
      { mediation: 'optional', outcome: 'resolved' },
    ]);

    // Within five minutes the next link needs no second prompt.
    await page.goto(`${scenario.sesame.baseUrl}/admin/users`);
    await page.getByRole('button', { name: 'Issue a one-time link for ops@example.com' }).click();
    await page.getByRole('heading', { name: 'One-time link for ops@example.com' }).waitFor();
    expect(requests).toHaveLength(1);
  });

  it('says the session ended, with a link to sign in again and back, when it ended while a form was open', async () => {
    const { page, requests } = await device();
    await acceptInvite(page, 'late@example.com', true);
    await page.goto(`${scenario.sesame.baseUrl}/admin/users`);
    // The admin left the page open past the 30 days of their sign-in.
    const admin = (await usersQueries.findByEmail(scenario.sesame.db, 'late@example.com'))!;
    await ageSignIn(scenario.sesame, admin.id, 31);

    await page.getByLabel('Email').fill('latecomer@example.com');
    await page.getByRole('button', { name: 'Create invitation link' }).click();
    const alert = page
      .getByRole('alert')
      .filter({ hasText: 'You were signed out while this page was open.' });
    await alert.waitFor();
    expect(requests).toHaveLength(0);
    expect(await page.getByRole('button', { name: 'Create invitation link' }).isEnabled()).toBe(true);

    // The link signs in with the passkey (autofill answers at once here) and comes back to the page.
    await alert.getByRole('link', { name: 'Sign in again' }).click();
    await page.waitForURL((url) => url.pathname === '/admin/users');
    await page.getByRole('button', { name: 'Create invitation link' }).waitFor();
    expect(requests.map(({ mediation }) => mediation)).toContain('conditional');
  });

  it('asks an admin to confirm with their passkey on the confirmation page before it deletes a user', async () => {
    const { page, requests } = await device();
    await acceptInvite(page, 'people@example.com', true);
    const leaver = await usersQueries.insert(scenario.sesame.db, { email: 'leaver@example.com', name: null });

    await page.goto(`${scenario.sesame.baseUrl}/admin/users`);
    await page.getByRole('link', { name: 'Delete leaver@example.com' }).click();
    await page.getByRole('heading', { name: 'Delete leaver@example.com?' }).waitFor();
    await page.getByText('You will be asked to confirm with your passkey.').waitFor();
    expect(requests).toHaveLength(0);
    await page.getByRole('button', { name: 'Delete user' }).click();
    await page.waitForURL(/done=user-deleted/);
    expect(await usersQueries.findById(scenario.sesame.db, leaver.id)).toBeUndefined();
    expect(outcomes(requests)).toEqual([{ mediation: 'optional', outcome: 'resolved' }]);
  });

  it('answers a form sent from a tab left open after another tab deleted its user with what happened and a way back', async () => {
    const { context, page } = await device();
    await acceptInvite(page, 'tabs@example.com', true);
    const leaver = await usersQueries.insert(scenario.sesame.db, { email: 'gone@example.com', name: null });
    // A second tab shows the users; the first deletes one of them.
    const stale = await context.newPage();
    await stale.goto(`${scenario.sesame.baseUrl}/admin/users`);
    await page.goto(`${scenario.sesame.baseUrl}/admin/users/${leaver.id}/delete`);
    await page.getByRole('button', { name: 'Delete user' }).click();
    await page.waitForURL(/done=user-deleted/);

    // Disable in the tab left open: said in the admin pages' words, with the menu and a link back.
    await stale.getByRole('button', { name: 'Disable gone@example.com' }).click();
    await stale.getByRole('heading', { name: 'Nothing was changed' }).waitFor();
    await stale.getByRole('alert').filter({ hasText: 'There is no user with this id.' }).waitFor();
    await stale.getByRole('navigation', { name: 'Administration' }).waitFor();
    await stale.getByRole('link', { name: 'Go to the users' }).click();
    await stale.getByRole('heading', { name: 'Users' }).waitFor();
    expect(await stale.getByRole('rowheader', { name: 'gone@example.com' }).count()).toBe(0);
    await stale.close();
  });

  it('shows the group created, not a name already taken, for a double click on "Create group"', async () => {
    const { page } = await device();
    await acceptInvite(page, 'clicks@example.com', true);
    await page.goto(`${scenario.sesame.baseUrl}/admin/groups`);
    await page.getByLabel(/^Name/).fill('kitchen');
    // Two presses 30 ms apart, as a double click sends them: the second's answer was shown,
    // a 409 saying a group of that name already existed (the first had just created it).
    await page.getByRole('button', { name: 'Create group' }).evaluate((button: HTMLButtonElement) => {
      button.click();
      setTimeout(() => button.click(), 30);
    });
    await page.getByRole('status').filter({ hasText: 'The group was created.' }).waitFor();
    await page.getByRole('heading', { name: 'kitchen' }).waitFor();
    expect(await groupsQueries.findByIdOrName(scenario.sesame.db, 'kitchen')).toBeDefined();
  });

  it('asks an admin to confirm with their passkey before it adds someone to a group or enables a disabled user', async () => {
    const { page, requests } = await device();
    await acceptInvite(page, 'groups@example.com', true);
    const { db } = scenario.sesame;
    const group = await createGroup(db, 'payroll', 'test');
    const paused = await usersQueries.insert(db, {
      email: 'paused@example.com',
      name: null,
      // Proved, so no --unverified confirmation is asked for (groups.test.ts covers that).
      emailVerified: true,
    });
    await usersQueries.update(db, paused.id, { disabledAt: new Date() });

    await page.goto(`${scenario.sesame.baseUrl}/admin/groups/${group.id}`);
    await page.getByLabel('Email or user ID').fill('paused@example.com');
    await page.getByRole('button', { name: 'Add member' }).click();
    // The page's script asked for a passkey (the virtual authenticator answers), then posted the form.
    await page.waitForURL(/done=member-added/);
    expect((await groupsQueries.members(db, group.id)).map((member) => member.email)).toEqual([
      'paused@example.com',
    ]);
    expect(outcomes(requests)).toEqual([{ mediation: 'optional', outcome: 'resolved' }]);

    // Five minutes later, enabling asks again.
    await ageStepUps('groups@example.com');
    await page.goto(`${scenario.sesame.baseUrl}/admin/users`);
    await page.getByRole('button', { name: 'Enable paused@example.com' }).click();
    await page.waitForURL(/done=user-enabled/);
    expect((await usersQueries.findById(db, paused.id))!.disabled_at).toBeNull();
    expect(requests).toHaveLength(2);
  });

  it('answers a signed-in person who is not an admin with 403 at /admin', async () => {
    const { page } = await device();
    await acceptInvite(page, 'staff@example.com', false);
    const response = await page.goto(`${scenario.sesame.baseUrl}/admin`);
    expect(response!.status()).toBe(403);
    await page.getByText('This page is for Sesame administrators.').waitFor();
  });
});
