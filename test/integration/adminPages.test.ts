import { sha256Hex } from '../../src/crypto.js';
import { apiKeysQueries } from '../../src/db/queries/apiKeys.js';
import { auditQueries } from '../../src/db/queries/audit.js';
import { clientsQueries } from '../../src/db/queries/clients.js';
import { groupsQueries } from '../../src/db/queries/groups.js';
import { oidcModelsQueries } from '../../src/db/queries/oidcModels.js';
import { passkeyTenantsQueries } from '../../src/db/queries/passkeyTenants.js';
import { usersQueries } from '../../src/db/queries/users.js';
import { asPage, type PageResponse } from '../support/browser.js';
import { countRows } from '../support/countRows.js';
import { Person, stepUp } from '../support/oidcFlow.js';
import { autofocusedField } from '../support/refusedFields.js';
import { ageSignIn } from '../support/signInAge.js';
import { startTestApp, type TestApp } from '../support/testApp.js';

const APP_URI = 'https://wiki.example.com/callback';

/** The text of the element with this id on a page (a secret, a link). */
function elementText(page: PageResponse, id: string): string {
  const match = new RegExp(`id="${id}"[^>]*>([^<]+)<`).exec(page.text);
  if (!match) throw new Error(`no #${id} on ${page.url} (${page.status}): ${page.text.slice(0, 400)}`);
  return match[1]!.trim();
}

/** One column of each row of the activity page's table (0 when, 1 who, 2 what, 3 target). */
function auditColumn(page: PageResponse, column: number): string[] {
  return [...page.text.matchAll(/<tr>\s*<td><time[\s\S]*?<\/tr>/g)].map(([row]) =>
    [...row.matchAll(/<td>([\s\S]*?)<\/td>/g)][column]![1]!.replace(/<\/?code>/g, ''),
  );
}

/** Where the activity page's "Older events" link goes, if it has one. */
const olderEventsLink = (page: PageResponse) =>
  /<a href="([^"]+)" rel="next">Older events<\/a>/.exec(page.text)?.[1]?.replaceAll('&amp;', '&');

describe('the admin pages', () => {
  let sesame: TestApp;
  let admin: Person;
  let adminId: string;
  let someone: Person;
  let someoneId: string;

  /** Signs a new person up through Sesame's own sign-in (/account/login) and returns where they land at /admin. */
  async function signUpForAdmin(email: string) {
    const person = new Person(sesame.baseUrl);
    const loginPage = asPage(await person.browser.follow('/admin'));
    const next = await person.signUp(loginPage, email);
    const landing = asPage(await person.browser.follow(next));
    const user = await usersQueries.findByEmail(sesame.db, email);
    return { person, landing, userId: user!.id };
  }

  beforeAll(async () => {
    sesame = await startTestApp();
    ({ person: admin, userId: adminId } = await signUpForAdmin('root@example.com'));
    await usersQueries.update(sesame.db, adminId, { isAdmin: true });
    let landing: PageResponse;
    ({ person: someone, userId: someoneId, landing } = await signUpForAdmin('someone@example.com'));
    expect(landing.status).toBe(403);
  });

  afterAll(() => sesame.stop());

  const clientCount = async () => (await clientsQueries.list(sesame.db)).length;

  /** The admin confirms with their passkey, as the page's script asks before a form marked data-step-up posts. */
  async function confirmWithPasskey(page: PageResponse) {
    expect((await stepUp(admin, page.csrf())).status).toBe(200);
  }

  /** Moves the admin's step-ups six minutes into the past: five minutes later they no longer count. */
  async function ageStepUps() {
    await sesame.db
      .updateTable('step_ups')
      .set({ verified_at: new Date(Date.now() - 6 * 60 * 1000) })
      .where('user_id', '=', adminId)
      .execute();
  }

  /** The answer to a form POST that needs a step-up the session does not have: the same 403 page for every one. */
  function expectStepUpRequired(refused: PageResponse) {
    expect(refused.status).toBe(403);
    expect(refused.headers.get('content-type')).toContain('text/html');
    // Without the page's script (which asks for the passkey first) this is where the form ends:
    // it says why, in the admin pages' layout with a link on.
    expect(refused.text).toContain('confirm with your passkey first. Open the page again');
    expect(refused.text).toContain('Passkeys need JavaScript');
    expect(refused.text).toContain('aria-label="Administration"');
    expect(refused.text).toMatch(/<a href="\/admin\/[a-z-]+">Go to /);
  }

  it('sends a signed-out visitor to the passkey sign-in and back to /admin', async () => {
    const visitor = new Person(sesame.baseUrl);
    const response = await visitor.browser.request('/admin/clients');
    expect(response.status).toBe(302);
    expect(response.location()).toBe(`${sesame.baseUrl}/account/login?return_to=%2Fadmin%2Fclients`);
  });

  it('refuses a signed-in person who is not an admin with a 403 page', async () => {
    for (const path of [
      '/admin',
      '/admin/clients',
      '/admin/users',
      '/admin/passkey-tenants',
      '/admin/passkey-tenants/new',
      '/admin/api-keys',
      '/admin/audit',
    ]) {
      const page = asPage(await someone.browser.follow(path));
      expect(page.status).toBe(403);
      expect(page.headers.get('content-type')).toContain('text/html');
      expect(page.text).toContain('administrators');
    }
    for (const [path, form] of [
      ['/admin/clients', { name: 'Sneaky', redirect_uris: APP_URI }],
      ['/admin/passkey-tenants', { name: 'Sneaky', origins: 'https://app.example.com' }],
      ['/admin/api-keys', { name: 'Sneaky' }],
    ] as const) {
      const post = await someone.browser.request(path, { form });
      expect(post.status).toBe(403);
    }
    expect(await passkeyTenantsQueries.list(sesame.db)).toEqual([]);
    expect(await apiKeysQueries.list(sesame.db)).toEqual([]);
  });

  it('answers a form posted after the session ended with a page that links to sign in again and back', async () => {
    const { person, userId } = await signUpForAdmin('late@example.com');
    await usersQueries.update(sesame.db, userId, { isAdmin: true });
    const formPage = asPage(await person.browser.follow('/admin/groups?q=night'));
    expect(formPage.status).toBe(200);
    // The admin left the page open past the 30 days of their sign-in.
    await ageSignIn(sesame, userId, 31);
    const groups = (await groupsQueries.list(sesame.db)).length;
    const post = (referer?: string) =>
      person.browser.request('/admin/groups', {
        form: { _csrf: formPage.csrf(), name: 'Late shift' },
        headers: referer ? { referer } : {},
      });

    const ended = await post(`${sesame.baseUrl}/admin/groups?q=night`);
    expect(ended.status).toBe(401);
    expect(ended.headers.get('content-type')).toContain('text/html');
    expect(ended.text).toContain('Your session has ended');
    expect(ended.text).toContain(
      '<a href="/account/login?return_to=%2Fadmin%2Fgroups%3Fq%3Dnight">Sign in again</a>',
    );
    // Without this site's page as the Referer, the link leads back to the admin pages' home.
    for (const referer of [
      undefined,
      'https://elsewhere.example/admin/groups',
      `${sesame.baseUrl}//evil.example`,
    ]) {
      const page = await post(referer);
      expect(page.status).toBe(401);
      expect(page.text).toContain('<a href="/account/login?return_to=%2Fadmin">Sign in again</a>');
    }
    expect((await groupsQueries.list(sesame.db)).length).toBe(groups);

    // The link asks for the passkey and comes back to the form's page.
    const loginPage = asPage(
      await person.browser.follow('/account/login?return_to=%2Fadmin%2Fgroups%3Fq%3Dnight'),
    );
    expect(loginPage.text).toContain('Sign in with a passkey');
    const back = asPage(await person.browser.follow(await person.signIn(loginPage)));
    expect(back.status).toBe(200);
    expect(new URL(back.url).pathname + new URL(back.url).search).toBe('/admin/groups?q=night');
  });

  it("leaves the server's caches alone for a POST it refuses, and empties them after an admin's change", async () => {
    // Which groups may use each app is kept in memory. These tests change no app's groups, so
    // only a change made through these pages forgets it (as it does the token cache): each
    // forgetting costs every later sign-in and token check a database read.
    const rules = sesame.app.caches.groups.clientRules;
    const before = rules.generation;
    const noSuchUser = '/admin/users/00000000-0000-0000-0000-000000000000/disable';
    const someonesToken = (await someone.browser.request('/admin/users')).csrf();
    const csrf = (await admin.browser.request('/admin/users')).csrf();
    const refused = [
      // A person who is not an admin, with a CSRF token of their own or none.
      await someone.browser.request(noSuchUser, { form: { _csrf: someonesToken } }),
      await someone.browser.request(noSuchUser, { form: {} }),
      // An admin without the CSRF token, and one for a user who does not exist.
      await admin.browser.request(noSuchUser, { form: {} }),
      await admin.browser.request(noSuchUser, { form: { _csrf: csrf } }),
    ];
    expect(refused.map((response) => response.status)).toEqual([403, 403, 403, 404]);
    expect(rules.generation).toBe(before);

    const created = await admin.browser.request('/admin/groups', {
      form: { _csrf: csrf, name: 'Night shift' },
    });
    expect(created.status).toBe(302);
    expect(rules.generation).toBeGreaterThan(before);
  });

  it('lets an admin register a client and shows its secret once; only the hash is stored', async () => {
    const list = asPage(await admin.browser.follow('/admin'));
    expect(list.status).toBe(200);
    expect(list.url).toBe(`${sesame.baseUrl}/admin/clients`);
    expect(list.text).toContain('class="card wide"');
    expect(list.text).toContain('Register a client');

    const form = await admin.browser.request('/admin/clients/new');
    expect(form.status).toBe(200);
    await confirmWithPasskey(form);
    const created = await admin.browser.request('/admin/clients', {
      form: {
        _csrf: form.csrf(),
        _once: form.field('_once'),
        name: 'Wiki',
        redirect_uris: `${APP_URI}\r\n\r\nhttp://localhost:4000/callback\r\n`,
        post_logout_redirect_uris: 'https://wiki.example.com/',
        type: 'confidential',
        first_party: 'on',
      },
    });
    expect(created.status).toBe(200);
    expect(created.headers.get('cache-control')).toBe('no-store');
    const clientId = elementText(created, 'client-id');
    const secret = elementText(created, 'client-secret');
    expect(secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(created.text).toContain('script type="module" src="/static/js/admin.js"');

    const row = await clientsQueries.find(sesame.db, clientId);
    expect(row).toMatchObject({
      name: 'Wiki',
      is_public: false,
      first_party: true,
      secret_hash: sha256Hex(secret),
    });
    expect(row!.redirect_uris).toEqual([APP_URI, 'http://localhost:4000/callback']);
    expect(JSON.stringify(row)).not.toContain(secret);

    const after = await admin.browser.request('/admin/clients');
    expect(after.text).toContain('Wiki');
    expect(after.text).toContain(clientId);
    expect(after.text).not.toContain(secret);
    const detail = await admin.browser.request(`/admin/clients/${clientId}`);
    expect(detail.status).toBe(200);
    expect(detail.text).not.toContain(secret);

    const audit = await auditQueries.recent(sesame.db, 10);
    expect(audit).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ actor: `user:${adminId}`, action: 'client.create', target: clientId }),
      ]),
    );
  });

  it("marks a client as checking other apps' tokens from its form, clears it, and refuses it for a public client", async () => {
    const form = await admin.browser.request('/admin/clients/new');
    expect(form.text).toContain('name="introspect_tokens"');
    await confirmWithPasskey(form);
    const created = await admin.browser.request('/admin/clients', {
      form: {
        _csrf: form.csrf(),
        _once: form.field('_once'),
        name: 'Ledger API',
        redirect_uris: APP_URI,
        type: 'confidential',
        introspect_tokens: 'on',
      },
    });
    expect(created.status).toBe(200);
    const clientId = elementText(created, 'client-id');
    expect((await clientsQueries.find(sesame.db, clientId))!.introspect_tokens).toBe(true);
    const detail = await admin.browser.request(`/admin/clients/${clientId}`);
    expect(detail.text).toMatch(/name="introspect_tokens" checked/);
    expect((await admin.browser.request('/admin/clients')).text).toContain('checks tokens');

    // The form posts every field: without the box, the mark is cleared.
    await confirmWithPasskey(detail);
    const edited = await admin.browser.request(`/admin/clients/${clientId}`, {
      form: { _csrf: detail.csrf(), name: 'Ledger API', redirect_uris: APP_URI },
    });
    expect(edited.status).toBe(302);
    expect((await clientsQueries.find(sesame.db, clientId))!.introspect_tokens).toBe(false);
    expect((await admin.browser.request(`/admin/clients/${clientId}`)).text).not.toMatch(
      /name="introspect_tokens" checked/,
    );

    const count = async () => (await clientsQueries.list(sesame.db)).length;
    const before = await count();
    const again = await admin.browser.request('/admin/clients/new');
    await confirmWithPasskey(again);
    const refused = await admin.browser.request('/admin/clients', {
      form: {
        _csrf: again.csrf(),
        _once: again.field('_once'),
        name: 'Ledger SPA',
        redirect_uris: APP_URI,
        type: 'public',
        introspect_tokens: 'on',
      },
    });
    expect(refused.status).toBe(400);
    expect(refused.text).toMatch(
      /id="introspect_tokens-error"[^>]*>a public client cannot introspect other apps(&#39;|')/,
    );
    expect(await count()).toBe(before);
  });

  it('shows the form again with the field named when a redirect URI is invalid, and stores nothing', async () => {
    const before = await clientCount();
    const form = await admin.browser.request('/admin/clients/new');
    await confirmWithPasskey(form);
    const response = await admin.browser.request('/admin/clients', {
      form: {
        _csrf: form.csrf(),
        _once: form.field('_once'),
        name: 'Evil',
        redirect_uris: 'http://evil.example.com/cb',
        type: 'public',
      },
    });
    expect(response.status).toBe(400);
    expect(response.text).toContain('id="redirect_uris-error"');
    expect(response.text).toContain('must use https');
    // The keyboard is on the refused field, which names its error for screen readers.
    expect(autofocusedField(response.text)).toEqual({
      id: 'redirect_uris',
      invalid: true,
      describedBy: 'redirect_uris-error',
    });
    // With two refused fields, on the first.
    const both = await admin.browser.request('/admin/clients', {
      form: {
        _csrf: response.csrf(),
        _once: response.field('_once'),
        name: ' ',
        redirect_uris: 'http://evil.example.com/cb',
        type: 'public',
      },
    });
    expect(both.status).toBe(400);
    expect(both.text).toMatch(
      /<input id="name"[^>]* aria-invalid="true" aria-describedby="name-error" autofocus>/,
    );
    expect(both.text).toMatch(
      /<textarea id="redirect_uris"[^>]* aria-invalid="true" aria-describedby="redirect_uris-error">/,
    );
    expect(autofocusedField(both.text)?.id).toBe('name');
    // The admin's input is kept, escaped, and so is the form's token: nothing spent it.
    expect(response.text).toContain('http://evil.example.com/cb</textarea>');
    expect(response.field('_once')).toBe(form.field('_once'));
    expect(await clientCount()).toBe(before);
  });

  it('refuses a form POST without the CSRF token, or from another origin, with 403 and changes nothing', async () => {
    const before = await clientCount();
    const page = await admin.browser.request('/admin/clients/new');
    // With a fresh step-up, so each refusal below is the CSRF check's.
    await confirmWithPasskey(page);
    const noToken = await admin.browser.request('/admin/clients', {
      form: { name: 'NoToken', redirect_uris: APP_URI },
    });
    expect(noToken.status).toBe(403);
    expect(noToken.text).toContain('did not come from this site');
    const foreign = await admin.browser.request('/admin/clients', {
      form: { _csrf: page.csrf(), name: 'Foreign', redirect_uris: APP_URI },
      headers: { origin: 'https://evil.example.com' },
    });
    expect(foreign.status).toBe(403);
    expect(foreign.text).toContain('Cross-origin request refused');
    const wrongToken = await admin.browser.request('/admin/clients', {
      form: { _csrf: `${page.csrf().slice(0, -2)}xx`, name: 'Wrong', redirect_uris: APP_URI },
    });
    expect(wrongToken.status).toBe(403);
    expect(wrongToken.text).toContain('did not come from this site');
    expect(await clientCount()).toBe(before);

    const victim = (await clientsQueries.list(sesame.db))[0]!;
    const deleteWithout = await admin.browser.request(`/admin/clients/${victim.client_id}/delete`, {
      form: {},
    });
    expect(deleteWithout.status).toBe(403);
    expect(deleteWithout.text).toContain('did not come from this site');
    expect(await clientsQueries.find(sesame.db, victim.client_id)).toBeDefined();
  });

  it('edits a client, rotates its secret (shown once) and deletes it after confirmation', async () => {
    const form = await admin.browser.request('/admin/clients/new');
    await confirmWithPasskey(form);
    const created = await admin.browser.request('/admin/clients', {
      form: {
        _csrf: form.csrf(),
        _once: form.field('_once'),
        name: 'Blog',
        redirect_uris: APP_URI,
        type: 'confidential',
      },
    });
    const clientId = elementText(created, 'client-id');
    const firstSecret = elementText(created, 'client-secret');

    const detail = await admin.browser.request(`/admin/clients/${clientId}`);
    const saved = await admin.browser.request(`/admin/clients/${clientId}`, {
      form: { _csrf: detail.csrf(), name: 'Blog 2', redirect_uris: 'https://blog.example.com/cb' },
    });
    expect(saved.status).toBe(302);
    expect(saved.location()).toBe(`${sesame.baseUrl}/admin/clients/${clientId}?done=client-updated`);
    expect(await clientsQueries.find(sesame.db, clientId)).toMatchObject({
      name: 'Blog 2',
      redirect_uris: ['https://blog.example.com/cb'],
    });

    const rotation = await admin.browser.request(`/admin/clients/${clientId}/rotate-secret`);
    const rotated = await admin.browser.request(`/admin/clients/${clientId}/rotate-secret`, {
      form: { _csrf: rotation.csrf(), _once: rotation.field('_once') },
    });
    expect(rotated.status).toBe(200);
    const newSecret = elementText(rotated, 'client-secret');
    expect(newSecret).not.toBe(firstSecret);
    expect((await clientsQueries.find(sesame.db, clientId))!.secret_hash).toBe(sha256Hex(newSecret));

    const confirm = await admin.browser.request(`/admin/clients/${clientId}/delete`);
    expect(confirm.status).toBe(200);
    expect(confirm.text).toContain('Delete client');
    expect(await clientsQueries.find(sesame.db, clientId)).toBeDefined();
    const deleted = await admin.browser.request(`/admin/clients/${clientId}/delete`, {
      form: { _csrf: confirm.csrf() },
    });
    expect(deleted.status).toBe(302);
    expect(await clientsQueries.find(sesame.db, clientId)).toBeUndefined();
  });

  it('registers a device app (device code grant) with the checkbox, and turns the grant off again', async () => {
    const form = await admin.browser.request('/admin/clients/new');
    await confirmWithPasskey(form);
    const created = await admin.browser.request('/admin/clients', {
      form: {
        _csrf: form.csrf(),
        _once: form.field('_once'),
        name: 'TV',
        redirect_uris: '',
        type: 'public',
        device_flow: 'on',
      },
    });
    expect(created.status).toBe(200);
    const clientId = elementText(created, 'client-id');
    const deviceGrant = 'urn:ietf:params:oauth:grant-type:device_code';
    // No redirect URI: the app signs people in through the device flow only.
    expect((await clientsQueries.find(sesame.db, clientId))!.grant_types).toEqual([
      'refresh_token',
      deviceGrant,
    ]);
    const detail = await admin.browser.request(`/admin/clients/${clientId}`);
    expect(detail.text).toMatch(/name="device_flow" checked/);
    const saved = await admin.browser.request(`/admin/clients/${clientId}`, {
      form: { _csrf: detail.csrf(), name: 'TV', redirect_uris: APP_URI },
    });
    expect(saved.status).toBe(302);
    // With a redirect URI and the box unticked, it is an app people sign in to in a browser.
    expect((await clientsQueries.find(sesame.db, clientId))!.grant_types).toEqual([
      'authorization_code',
      'refresh_token',
    ]);
  });

  it('disables and enables a user, ending their sessions, and issues a one-time link shown on the page', async () => {
    const users = await admin.browser.request('/admin/users');
    expect(users.status).toBe(200);
    expect(users.text).toContain('someone@example.com');
    expect(users.text).toContain(`aria-label="Disable someone@example.com"`);
    // An admin cannot disable themselves from the page.
    expect(users.text).not.toContain('aria-label="Disable root@example.com"');
    // Disabling only takes access away: it needs no step-up.
    expect(users.text).not.toMatch(
      new RegExp(`action="/admin/users/${someoneId}/disable"[^>]*data-step-up>`),
    );
    await sesame.db.deleteFrom('step_ups').where('user_id', '=', adminId).execute();

    const disabled = await admin.browser.request(`/admin/users/${someoneId}/disable`, {
      form: { _csrf: users.csrf() },
    });
    expect(disabled.status).toBe(302);
    expect((await usersQueries.findById(sesame.db, someoneId))!.disabled_at).not.toBeNull();
    expect(await oidcModelsQueries.grantIdsWhere(sesame.db, 'Session', 'accountId', someoneId)).toEqual([]);
    // Their browser is no longer signed in.
    const locked = await someone.browser.request('/admin/clients');
    expect(locked.status).toBe(302);

    // Enabling gives them their way in back, as a one-time link would: the page's script asks
    // for a step-up first, and without one they stay disabled.
    const disabledPage = await admin.browser.request('/admin/users');
    expect(disabledPage.text).toMatch(
      new RegExp(`action="/admin/users/${someoneId}/enable"[^>]*data-step-up>`),
    );
    const enable = () =>
      admin.browser.request(`/admin/users/${someoneId}/enable`, { form: { _csrf: users.csrf() } });
    expectStepUpRequired(await enable());
    expect((await usersQueries.findById(sesame.db, someoneId))!.disabled_at).not.toBeNull();
    await confirmWithPasskey(users);
    expect((await enable()).status).toBe(302);
    expect((await usersQueries.findById(sesame.db, someoneId))!.disabled_at).toBeNull();

    const link = await admin.browser.request(`/admin/users/${someoneId}/link`, {
      form: { _csrf: users.csrf() },
    });
    expect(link.status).toBe(200);
    expect(elementText(link, 'one-time-link').startsWith(`${sesame.baseUrl}/`)).toBe(true);

    const self = await admin.browser.request(`/admin/users/${adminId}/disable`, {
      form: { _csrf: users.csrf() },
    });
    expect(self.status).toBe(400);
    expect((await usersQueries.findById(sesame.db, adminId))!.disabled_at).toBeNull();
  });

  it('disables an administrator only after a passkey step-up from the last five minutes, as demoting one needs', async () => {
    const deputy = await usersQueries.insert(sesame.db, {
      email: 'deputy@example.com',
      name: null,
      isAdmin: true,
    });
    await sesame.db.deleteFrom('step_ups').where('user_id', '=', adminId).execute();
    const users = await admin.browser.request('/admin/users');
    // The page's script asks for the step-up before this form posts; a plain user's disable form it leaves alone.
    expect(users.text).toMatch(new RegExp(`action="/admin/users/${deputy.id}/disable"[^>]*data-step-up>`));
    expect(users.text).not.toMatch(
      new RegExp(`action="/admin/users/${someoneId}/disable"[^>]*data-step-up>`),
    );
    const disable = () =>
      admin.browser.request(`/admin/users/${deputy.id}/disable`, { form: { _csrf: users.csrf() } });
    const state = async () => ({
      deputy: await usersQueries.findById(sesame.db, deputy.id),
      audit: await auditQueries.recent(sesame.db, 1000),
    });
    const before = await state();
    expectStepUpRequired(await disable());
    await confirmWithPasskey(users);
    await ageStepUps();
    expectStepUpRequired(await disable());
    expect(await state()).toEqual(before);

    await confirmWithPasskey(users);
    expect((await disable()).status).toBe(302);
    expect((await usersQueries.findById(sesame.db, deputy.id))!.disabled_at).not.toBeNull();
    await usersQueries.delete(sesame.db, deputy.id);
  });

  it('invites a new person with a one-time link, and deletes a user after confirmation', async () => {
    const users = await admin.browser.request('/admin/users');
    expect((await stepUp(admin, users.csrf())).status).toBe(200);
    const bad = await admin.browser.request('/admin/users/invite', {
      form: { _csrf: users.csrf(), email: 'not-an-email' },
    });
    expect(bad.status).toBe(400);
    expect(bad.text).toContain('id="invite-email-error"');
    expect(autofocusedField(bad.text)).toEqual({
      id: 'invite-email',
      invalid: true,
      describedBy: 'invite-email-error',
    });

    const invite = await admin.browser.request('/admin/users/invite', {
      form: { _csrf: users.csrf(), email: 'newbie@example.com', admin: 'on' },
    });
    expect(invite.status).toBe(200);
    const url = elementText(invite, 'one-time-link');
    expect(url.startsWith(`${sesame.baseUrl}/`)).toBe(true);
    expect((await admin.browser.request('/admin/users')).text).not.toContain(url);

    const victim = await usersQueries.insert(sesame.db, { email: 'leaving@example.com', name: null });
    const confirm = await admin.browser.request(`/admin/users/${victim.id}/delete`);
    expect(confirm.status).toBe(200);
    const deleted = await admin.browser.request(`/admin/users/${victim.id}/delete`, {
      form: { _csrf: confirm.csrf() },
    });
    expect(deleted.status).toBe(302);
    expect(await usersQueries.findById(sesame.db, victim.id)).toBeUndefined();
  });

  it('shows users 50 a page in email order, and finds them by email or name', async () => {
    // Emails that sort after everyone else's in this file. The 50th, where the first page ends
    // and the next starts after, is as long as an address gets (over 200 characters).
    const longest = `zz-bulk-49-${'a'.repeat(50)}@${'b'.repeat(63)}.${'c'.repeat(63)}.example.com`;
    for (let i = 0; i < 53; i += 1) {
      const n = String(i).padStart(2, '0');
      await usersQueries.insert(sesame.db, {
        email: i === 49 ? longest : `zz-bulk-${n}@example.com`,
        name: i === 7 ? 'Ada Bulkington' : null,
      });
    }
    const rows = (page: PageResponse) =>
      [...page.text.matchAll(/<th scope="row">([^<]+)<\/th>/g)].map((m) => m[1]);

    const first = await admin.browser.request('/admin/users?q=BULK');
    expect(first.status).toBe(200);
    expect(first.text).toMatch(/<form method="get" action="\/admin\/users" role="search"/);
    expect(first.text).toContain('value="BULK"');
    expect(rows(first)).toHaveLength(50);
    expect(rows(first)[0]).toBe('zz-bulk-00@example.com');
    expect(rows(first)[49]).toBe(longest);
    const next = first.text
      .match(/<a href="([^"]+)" rel="next">Next page<\/a>/)![1]!
      .replaceAll('&amp;', '&');
    const second = await admin.browser.request(next);
    expect(rows(second)).toEqual([
      'zz-bulk-50@example.com',
      'zz-bulk-51@example.com',
      'zz-bulk-52@example.com',
    ]);
    expect(second.text).toContain('First page');
    expect(second.text).not.toContain('rel="next"');

    // By name, and a search that finds nobody says so.
    expect(rows(await admin.browser.request('/admin/users?q=bulkington'))).toEqual([
      'zz-bulk-07@example.com',
    ]);
    const none = await admin.browser.request('/admin/users?q=nobody-by-this-name');
    expect(none.text).toContain('No users match “nobody-by-this-name”.');
    // The other tests' users come first in email order; these would push them off page one.
    await sesame.db.deleteFrom('users').where('email', 'like', 'zz-bulk-%').execute();
  });

  it('issues no one-time link or invite without a passkey step-up from the last five minutes', async () => {
    const linkCount = () => countRows(sesame.db, 'one_time_tokens');
    await sesame.db.deleteFrom('step_ups').where('user_id', '=', adminId).execute();
    const users = await admin.browser.request('/admin/users');
    // The forms that issue links ask the page's script for a step-up before they post.
    expect(users.text).toMatch(/<form method="post" action="\/admin\/users\/invite"[^>]*data-step-up>/);
    expect(users.text).toMatch(new RegExp(`action="/admin/users/${someoneId}/link"[^>]*data-step-up>`));
    const before = await linkCount();
    const issue = () =>
      Promise.all([
        admin.browser.request('/admin/users/invite', {
          form: { _csrf: users.csrf(), email: 'stepup-invite@example.com' },
        }),
        admin.browser.request(`/admin/users/${someoneId}/link`, { form: { _csrf: users.csrf() } }),
      ]);

    for (const refused of await issue()) {
      expectStepUpRequired(refused);
      expect(refused.text).not.toContain('id="one-time-link"');
    }
    const status = await admin.browser.postJson('/account/step-up/status', users.csrf(), {});
    expect({ status: status.status, error: status.json().error }).toEqual({
      status: 403,
      error: 'step_up_required',
    });
    expect(await linkCount()).toBe(before);

    // A step-up from another admin's session does not count for this one.
    const other = await signUpForAdmin('other-admin@example.com');
    await usersQueries.update(sesame.db, other.userId, { isAdmin: true });
    expect(
      (await stepUp(other.person, (await other.person.browser.request('/admin/users')).csrf())).status,
    ).toBe(200);
    expect((await issue()).map((r) => r.status)).toEqual([403, 403]);

    expect((await stepUp(admin, users.csrf())).status).toBe(200);
    expect((await admin.browser.postJson('/account/step-up/status', users.csrf(), {})).status).toBe(200);
    expect((await issue()).map((r) => r.status)).toEqual([200, 200]);
    expect(await linkCount()).toBe(before + 2);

    // Five minutes later it no longer counts.
    await ageStepUps();
    expect((await issue()).map((r) => r.status)).toEqual([403, 403]);
    expect(await linkCount()).toBe(before + 2);
    // Other admin actions need no step-up.
    const disabled = await admin.browser.request(`/admin/users/${someoneId}/disable`, {
      form: { _csrf: users.csrf() },
    });
    expect(disabled.status).toBe(302);
    await confirmWithPasskey(users);
    const enabled = await admin.browser.request(`/admin/users/${someoneId}/enable`, {
      form: { _csrf: users.csrf() },
    });
    expect(enabled.status).toBe(302);
  });

  it('mints no client secret, admin API key or passkey API key without a passkey step-up from the last five minutes', async () => {
    // A confidential client and a passkey API app to rotate, made with a step-up.
    const clientForm = await admin.browser.request('/admin/clients/new');
    await confirmWithPasskey(clientForm);
    const client = await admin.browser.request('/admin/clients', {
      form: {
        _csrf: clientForm.csrf(),
        _once: clientForm.field('_once'),
        name: 'Vault',
        redirect_uris: APP_URI,
        type: 'confidential',
      },
    });
    const clientId = elementText(client, 'client-id');
    const tenantForm = await admin.browser.request('/admin/passkey-tenants/new');
    const tenant = await admin.browser.request('/admin/passkey-tenants', {
      form: {
        _csrf: tenantForm.csrf(),
        _once: tenantForm.field('_once'),
        name: 'Vault',
        origins: 'https://vault.example.com',
      },
    });
    const tenantId = elementText(tenant, 'tenant-id');

    await sesame.db.deleteFrom('step_ups').where('user_id', '=', adminId).execute();
    // The forms that mint a credential ask the page's script for a step-up before they post.
    const pages = {
      newClient: await admin.browser.request('/admin/clients/new'),
      rotateSecret: await admin.browser.request(`/admin/clients/${clientId}/rotate-secret`),
      apiKeys: await admin.browser.request('/admin/api-keys'),
      newTenant: await admin.browser.request('/admin/passkey-tenants/new'),
      rotateKey: await admin.browser.request(`/admin/passkey-tenants/${tenantId}/rotate-key`),
    };
    expect(pages.newClient.text).toMatch(/<form method="post" action="\/admin\/clients"[^>]*data-step-up>/);
    expect(pages.rotateSecret.text).toMatch(
      new RegExp(`action="/admin/clients/${clientId}/rotate-secret"[^>]*data-step-up>`),
    );
    expect(pages.apiKeys.text).toMatch(/<form method="post" action="\/admin\/api-keys"[^>]*data-step-up>/);
    expect(pages.newTenant.text).toMatch(
      /<form method="post" action="\/admin\/passkey-tenants"[^>]*data-step-up>/,
    );
    expect(pages.rotateKey.text).toMatch(
      new RegExp(`action="/admin/passkey-tenants/${tenantId}/rotate-key"[^>]*data-step-up>`),
    );
    for (const page of Object.values(pages)) expect(page.text).toContain('id="status"');

    const csrf = pages.newClient.csrf();
    const once = (page: PageResponse) => ({ _csrf: csrf, _once: page.field('_once') });
    const mint = () =>
      Promise.all([
        admin.browser.request('/admin/clients', {
          form: { ...once(pages.newClient), name: 'Minted', redirect_uris: APP_URI, type: 'confidential' },
        }),
        admin.browser.request(`/admin/clients/${clientId}/rotate-secret`, { form: once(pages.rotateSecret) }),
        admin.browser.request('/admin/api-keys', { form: { ...once(pages.apiKeys), name: 'minted' } }),
        admin.browser.request('/admin/passkey-tenants', {
          form: { ...once(pages.newTenant), name: 'Minted', origins: 'https://minted.example.com' },
        }),
        admin.browser.request(`/admin/passkey-tenants/${tenantId}/rotate-key`, {
          form: once(pages.rotateKey),
        }),
      ]);
    const credentialState = async () => ({
      clients: await clientsQueries.list(sesame.db),
      apiKeys: await apiKeysQueries.list(sesame.db),
      tenants: await passkeyTenantsQueries.list(sesame.db),
      audit: await auditQueries.recent(sesame.db, 1000),
    });
    const expectRefused = (responses: PageResponse[]) => {
      expect(responses.map((r) => r.status)).toEqual([403, 403, 403, 403, 403]);
      for (const refused of responses) {
        // The same answer as a one-time link without a step-up.
        expectStepUpRequired(refused);
        expect(refused.text).not.toMatch(/id="(client-secret|api-key)"/);
      }
    };

    const before = await credentialState();
    expectRefused(await mint());
    expect(await credentialState()).toEqual(before);

    await confirmWithPasskey(pages.newClient);
    const minted = await mint();
    expect(minted.map((r) => r.status)).toEqual([200, 200, 200, 200, 200]);
    const [newClient, rotatedClient, apiKey, newTenant, rotatedTenant] = minted;
    expect((await clientsQueries.find(sesame.db, elementText(newClient, 'client-id')))!.secret_hash).toBe(
      sha256Hex(elementText(newClient, 'client-secret')),
    );
    expect((await clientsQueries.find(sesame.db, clientId))!.secret_hash).toBe(
      sha256Hex(elementText(rotatedClient, 'client-secret')),
    );
    expect((await apiKeysQueries.list(sesame.db)).map((k) => k.key_hash)).toContain(
      sha256Hex(elementText(apiKey, 'api-key')),
    );
    expect(
      (await passkeyTenantsQueries.findById(sesame.db, elementText(newTenant, 'tenant-id')))!.apiKeyHash,
    ).toBe(sha256Hex(elementText(newTenant, 'api-key')));
    expect((await passkeyTenantsQueries.findById(sesame.db, tenantId))!.apiKeyHash).toBe(
      sha256Hex(elementText(rotatedTenant, 'api-key')),
    );

    // Five minutes later it no longer counts.
    await ageStepUps();
    const afterMinting = await credentialState();
    expectRefused(await mint());
    expect(await credentialState()).toEqual(afterMinting);
  });

  it('changes where sign-ins go, or deletes a client or a user, only after a passkey step-up from the last five minutes', async () => {
    const form = await admin.browser.request('/admin/clients/new');
    await confirmWithPasskey(form);
    const created = await admin.browser.request('/admin/clients', {
      form: {
        _csrf: form.csrf(),
        _once: form.field('_once'),
        name: 'Ledger',
        redirect_uris: APP_URI,
        type: 'public',
      },
    });
    const clientId = elementText(created, 'client-id');
    const victim = await usersQueries.insert(sesame.db, { email: 'goner@example.com', name: null });

    await sesame.db.deleteFrom('step_ups').where('user_id', '=', adminId).execute();
    // The edit form and both confirmation pages ask the page's script for a step-up first.
    const pages = {
      client: await admin.browser.request(`/admin/clients/${clientId}`),
      deleteClient: await admin.browser.request(`/admin/clients/${clientId}/delete`),
      deleteUser: await admin.browser.request(`/admin/users/${victim.id}/delete`),
    };
    expect(pages.client.text).toMatch(new RegExp(`action="/admin/clients/${clientId}"[^>]*data-step-up>`));
    expect(pages.deleteClient.text).toMatch(
      new RegExp(`action="/admin/clients/${clientId}/delete"[^>]*data-step-up>`),
    );
    expect(pages.deleteUser.text).toMatch(
      new RegExp(`action="/admin/users/${victim.id}/delete"[^>]*data-step-up>`),
    );
    for (const page of Object.values(pages)) expect(page.text).toContain('id="status"');

    const csrf = pages.client.csrf();
    const edit = () =>
      admin.browser.request(`/admin/clients/${clientId}`, {
        form: {
          _csrf: csrf,
          name: 'Ledger',
          redirect_uris: 'https://attacker.example/cb',
          first_party: 'on',
        },
      });
    const deleteClient = () =>
      admin.browser.request(`/admin/clients/${clientId}/delete`, { form: { _csrf: csrf } });
    const deleteUser = () =>
      admin.browser.request(`/admin/users/${victim.id}/delete`, { form: { _csrf: csrf } });
    const state = async () => ({
      client: await clientsQueries.find(sesame.db, clientId),
      user: await usersQueries.findById(sesame.db, victim.id),
      audit: await auditQueries.recent(sesame.db, 1000),
    });

    const before = await state();
    expect(before.client!.redirect_uris).toEqual([APP_URI]);
    const expectAllRefused = async () => {
      for (const refused of [await edit(), await deleteClient(), await deleteUser()]) {
        expectStepUpRequired(refused);
      }
      expect(await state()).toEqual(before);
    };
    await expectAllRefused();
    // A step-up older than five minutes does not count either.
    await confirmWithPasskey(pages.client);
    await ageStepUps();
    await expectAllRefused();

    await confirmWithPasskey(pages.client);
    expect((await edit()).status).toBe(302);
    expect(await clientsQueries.find(sesame.db, clientId)).toMatchObject({
      redirect_uris: ['https://attacker.example/cb'],
      first_party: true,
    });
    expect((await deleteClient()).status).toBe(302);
    expect(await clientsQueries.find(sesame.db, clientId)).toBeUndefined();
    expect((await deleteUser()).status).toBe(302);
    expect(await usersQueries.findById(sesame.db, victim.id)).toBeUndefined();
    const { audit } = await state();
    expect(
      audit.slice(0, audit.length - before.audit.length).map(({ action, target }) => ({ action, target })),
    ).toEqual([
      { action: 'user.delete', target: victim.id },
      { action: 'client.delete', target: clientId },
      { action: 'client.update', target: clientId },
    ]);
  });

  describe('passkey API apps', () => {
    const tenantCount = async () => (await passkeyTenantsQueries.list(sesame.db)).length;

    it('registers an app and shows its API key once; only the hash is stored', async () => {
      const list = await admin.browser.request('/admin/passkey-tenants');
      expect(list.status).toBe(200);
      expect(list.text).toContain('href="/admin/passkey-tenants/new"');
      expect(list.text).toContain('aria-current="page">Passkey API<');

      const form = await admin.browser.request('/admin/passkey-tenants/new');
      expect(form.status).toBe(200);
      await confirmWithPasskey(form);
      const created = await admin.browser.request('/admin/passkey-tenants', {
        form: {
          _csrf: form.csrf(),
          _once: form.field('_once'),
          name: 'Shop',
          origins: 'https://shop.example.com\r\n\r\nhttps://www.shop.example.com/\r\n',
          rp_id: 'shop.example.com',
        },
      });
      expect(created.status).toBe(200);
      expect(created.headers.get('cache-control')).toBe('no-store');
      const tenantId = elementText(created, 'tenant-id');
      const apiKey = elementText(created, 'api-key');
      expect(apiKey).toMatch(/^spk_[A-Za-z0-9_-]{43}$/);
      expect(elementText(created, 'base-url')).toBe(`${sesame.baseUrl}/passkey-api/${tenantId}`);

      const stored = await passkeyTenantsQueries.findById(sesame.db, tenantId);
      expect(stored).toMatchObject({
        name: 'Shop',
        rpId: 'shop.example.com',
        origins: ['https://shop.example.com', 'https://www.shop.example.com'],
        apiKeyHash: sha256Hex(apiKey),
      });

      for (const path of ['/admin/passkey-tenants', `/admin/passkey-tenants/${tenantId}`]) {
        const page = await admin.browser.request(path);
        expect(page.status).toBe(200);
        expect(page.text).toContain('Shop');
        expect(page.text).toContain(tenantId);
        expect(page.text).not.toContain(apiKey);
      }
      const audit = await auditQueries.recent(sesame.db, 10);
      expect(audit).toEqual(
        expect.arrayContaining([
          expect.objectContaining({
            actor: `user:${adminId}`,
            action: 'passkey_tenant.create',
            target: tenantId,
          }),
        ]),
      );
    });

    it('shows the form again with the field named when an origin or the RP ID is wrong, and stores nothing', async () => {
      const before = await tenantCount();
      const form = await admin.browser.request('/admin/passkey-tenants/new');
      await confirmWithPasskey(form);
      const insecure = await admin.browser.request('/admin/passkey-tenants', {
        form: {
          _csrf: form.csrf(),
          _once: form.field('_once'),
          name: 'Evil',
          origins: 'http://evil.example.com',
        },
      });
      expect(insecure.status).toBe(400);
      expect(insecure.text).toContain('id="origins-error"');
      expect(autofocusedField(insecure.text)).toEqual({
        id: 'origins',
        invalid: true,
        describedBy: 'origins-error',
      });
      expect(insecure.text).toContain('must use https');
      expect(insecure.text).toContain('http://evil.example.com</textarea>');

      const wrongRpId = await admin.browser.request('/admin/passkey-tenants', {
        form: {
          _csrf: insecure.csrf(),
          _once: insecure.field('_once'),
          name: 'Evil',
          origins: 'https://app.example.com',
          rp_id: 'other.example',
        },
      });
      expect(wrongRpId.status).toBe(400);
      expect(wrongRpId.text).toContain('id="rp_id-error"');
      expect(autofocusedField(wrongRpId.text)).toEqual({
        id: 'rp_id',
        invalid: true,
        describedBy: 'rp_id-error',
      });
      expect(wrongRpId.text).toContain('value="other.example"');

      const noToken = await admin.browser.request('/admin/passkey-tenants', {
        form: { name: 'NoToken', origins: 'https://app.example.com' },
      });
      expect(noToken.status).toBe(403);
      expect(noToken.text).toContain('did not come from this site');
      expect(await tenantCount()).toBe(before);
    });

    it('rotates the API key (shown once) and deletes the app after confirmation', async () => {
      const form = await admin.browser.request('/admin/passkey-tenants/new');
      await confirmWithPasskey(form);
      const created = await admin.browser.request('/admin/passkey-tenants', {
        form: {
          _csrf: form.csrf(),
          _once: form.field('_once'),
          name: 'Forum',
          origins: 'https://forum.example.com',
        },
      });
      const tenantId = elementText(created, 'tenant-id');
      const firstKey = elementText(created, 'api-key');

      const rotation = await admin.browser.request(`/admin/passkey-tenants/${tenantId}/rotate-key`);
      const rotateWithout = await admin.browser.request(`/admin/passkey-tenants/${tenantId}/rotate-key`, {
        form: { _once: rotation.field('_once') },
      });
      expect(rotateWithout.status).toBe(403);
      expect(rotateWithout.text).toContain('did not come from this site');
      const rotated = await admin.browser.request(`/admin/passkey-tenants/${tenantId}/rotate-key`, {
        form: { _csrf: rotation.csrf(), _once: rotation.field('_once') },
      });
      expect(rotated.status).toBe(200);
      const newKey = elementText(rotated, 'api-key');
      expect(newKey).not.toBe(firstKey);
      expect(rotated.text).toContain('The old key no longer works.');
      expect((await passkeyTenantsQueries.findById(sesame.db, tenantId))!.apiKeyHash).toBe(sha256Hex(newKey));

      const confirm = await admin.browser.request(`/admin/passkey-tenants/${tenantId}/delete`);
      expect(confirm.status).toBe(200);
      expect(confirm.text).toContain('Delete app');
      expect(await passkeyTenantsQueries.findById(sesame.db, tenantId)).toBeDefined();
      expect(confirm.text).toMatch(
        new RegExp(`action="/admin/passkey-tenants/${tenantId}/delete"[^>]*data-step-up>`),
      );
      const deleteApp = () =>
        admin.browser.request(`/admin/passkey-tenants/${tenantId}/delete`, {
          form: { _csrf: confirm.csrf() },
        });
      // Deleting cannot be undone: without a recent step-up it is refused and nothing changes.
      await sesame.db.deleteFrom('step_ups').where('user_id', '=', adminId).execute();
      expectStepUpRequired(await deleteApp());
      expect(await passkeyTenantsQueries.findById(sesame.db, tenantId)).toBeDefined();
      await confirmWithPasskey(confirm);
      const deleted = await deleteApp();
      expect(deleted.status).toBe(302);
      expect(deleted.location()).toBe(`${sesame.baseUrl}/admin/passkey-tenants?done=tenant-deleted`);
      expect(await passkeyTenantsQueries.findById(sesame.db, tenantId)).toBeUndefined();
      expect((await admin.browser.request(`/admin/passkey-tenants/${tenantId}`)).status).toBe(404);
    });
  });

  describe('admin API keys', () => {
    const adminApi = (key: string) =>
      fetch(`${sesame.baseUrl}/api/admin/clients`, { headers: { authorization: `Bearer ${key}` } });

    it('creates a key shown once that opens the admin API, and lists it without the key', async () => {
      const list = await admin.browser.request('/admin/api-keys');
      expect(list.status).toBe(200);
      await confirmWithPasskey(list);
      const created = await admin.browser.request('/admin/api-keys', {
        form: { _csrf: list.csrf(), _once: list.field('_once'), name: 'terraform' },
      });
      expect(created.status).toBe(200);
      expect(created.headers.get('cache-control')).toBe('no-store');
      const key = elementText(created, 'api-key');
      expect(key).toMatch(/^ssk_[A-Za-z0-9_-]{43}$/);
      expect((await adminApi(key)).status).toBe(200);

      const after = await admin.browser.request('/admin/api-keys');
      expect(after.text).toContain('terraform');
      expect(after.text).not.toContain(key);
      expect(after.text).toContain('aria-label="Revoke terraform"');
      const row = (await apiKeysQueries.list(sesame.db)).find((k) => k.name === 'terraform');
      expect(row).toMatchObject({ name: 'terraform', key_hash: sha256Hex(key), revoked_at: null });
    });

    it('creates a key of scope metrics that opens /metrics and not the admin API, and lists its scope', async () => {
      const list = await admin.browser.request('/admin/api-keys');
      expect(list.text).toContain('name="scope" value="metrics"');
      await confirmWithPasskey(list);
      const created = await admin.browser.request('/admin/api-keys', {
        form: { _csrf: list.csrf(), _once: list.field('_once'), name: 'scraper', scope: 'metrics' },
      });
      expect(created.status).toBe(200);
      const key = elementText(created, 'api-key');
      const metrics = await fetch(`${sesame.baseUrl}/metrics`, {
        headers: { authorization: `Bearer ${key}` },
      });
      expect(metrics.status).toBe(200);
      expect((await adminApi(key)).status).toBe(403);
      const row = (await apiKeysQueries.list(sesame.db)).find((k) => k.name === 'scraper');
      expect(row).toMatchObject({ scope: 'metrics' });
      expect((await admin.browser.request('/admin/api-keys')).text).toMatch(
        /<th scope="row">scraper<\/th>\s*<td><code>[^<]*<\/code><\/td>\s*<td>metrics<\/td>/,
      );

      const before = (await apiKeysQueries.list(sesame.db)).length;
      const again = await admin.browser.request('/admin/api-keys');
      const odd = await admin.browser.request('/admin/api-keys', {
        form: { _csrf: again.csrf(), _once: again.field('_once'), name: 'odd', scope: 'root' },
      });
      expect(odd.status).toBe(400);
      expect(odd.text).toContain('id="api-key-scope-error"');
      expect((await apiKeysQueries.list(sesame.db)).length).toBe(before);
    });

    it('refuses an empty name with the field named, and a form without the CSRF token', async () => {
      const before = (await apiKeysQueries.list(sesame.db)).length;
      const list = await admin.browser.request('/admin/api-keys');
      await confirmWithPasskey(list);
      const empty = await admin.browser.request('/admin/api-keys', {
        form: { _csrf: list.csrf(), _once: list.field('_once'), name: '  ' },
      });
      expect(empty.status).toBe(400);
      expect(empty.text).toContain('id="api-key-name-error"');
      expect(autofocusedField(empty.text)).toEqual({
        id: 'api-key-name',
        invalid: true,
        describedBy: 'api-key-name-error',
      });
      const noToken = await admin.browser.request('/admin/api-keys', { form: { name: 'sneaky' } });
      expect(noToken.status).toBe(403);
      expect(noToken.text).toContain('did not come from this site');
      // A form larger than the pages take: the body parser's refusal, in the admin layout too.
      const tooLarge = await admin.browser.request('/admin/api-keys', {
        form: { _csrf: list.csrf(), _once: list.field('_once'), name: 'x'.repeat(40_000) },
      });
      expect(tooLarge.status).toBe(413);
      expect(tooLarge.text).toContain('The request body is too large');
      expect(tooLarge.text).toContain('aria-label="Administration"');
      expect((await apiKeysQueries.list(sesame.db)).length).toBe(before);
    });

    it('revokes a key after confirmation; the admin API refuses it from then on', async () => {
      const list = await admin.browser.request('/admin/api-keys');
      await confirmWithPasskey(list);
      const created = await admin.browser.request('/admin/api-keys', {
        form: { _csrf: list.csrf(), _once: list.field('_once'), name: 'ci' },
      });
      const key = elementText(created, 'api-key');
      const row = (await apiKeysQueries.list(sesame.db)).find((k) => k.name === 'ci')!;

      const confirm = await admin.browser.request(`/admin/api-keys/${row.id}/revoke`);
      expect(confirm.status).toBe(200);
      expect(confirm.text).toContain('Revoke API key');
      const without = await admin.browser.request(`/admin/api-keys/${row.id}/revoke`, { form: {} });
      expect(without.status).toBe(403);
      expect((await adminApi(key)).status).toBe(200);

      const revoked = await admin.browser.request(`/admin/api-keys/${row.id}/revoke`, {
        form: { _csrf: confirm.csrf() },
      });
      expect(revoked.status).toBe(302);
      expect(revoked.location()).toBe(`${sesame.baseUrl}/admin/api-keys?done=api-key-revoked`);
      expect((await adminApi(key)).status).toBe(401);
      const page = await admin.browser.request(revoked.location()!);
      expect(page.text).toContain('The API key was revoked');
      expect(page.text).not.toContain('aria-label="Revoke ci"');
      expect((await admin.browser.request('/admin/api-keys/not-a-uuid/revoke')).status).toBe(404);

      const audit = await auditQueries.recent(sesame.db, 10);
      expect(audit).toEqual(
        expect.arrayContaining([
          expect.objectContaining({ actor: `user:${adminId}`, action: 'api_key.create', target: row.id }),
          expect.objectContaining({ actor: `user:${adminId}`, action: 'api_key.revoke', target: row.id }),
        ]),
      );
    });
  });

  describe('forms that mint a secret', () => {
    /** How many audit events of `action` (on `target`, when given) there are: one per secret minted. */
    const audited = async (action: string, target?: string) =>
      (await auditQueries.recent(sesame.db, 10_000)).filter(
        (event) => event.action === action && (target === undefined || event.target === target),
      ).length;

    /** The answer to a form sent again: it says the work was done, and shows no secret. */
    function expectAlreadyDone(again: PageResponse, heading: string) {
      expect(again.status).toBe(409);
      expect(again.headers.get('content-type')).toContain('text/html');
      expect(again.text).toContain(`<h1>${heading}</h1>`);
      expect(again.text).toContain('shown once');
      expect(again.text).not.toMatch(/id="(client-secret|api-key)"/);
      expect(again.text).not.toMatch(/(ssk|spk)_[A-Za-z0-9_-]{43}/);
    }

    /** Registers a confidential client through its form, with a fresh step-up; returns its id. */
    async function registerClient(name: string) {
      const form = await admin.browser.request('/admin/clients/new');
      await confirmWithPasskey(form);
      const created = await admin.browser.request('/admin/clients', {
        form: { _csrf: form.csrf(), _once: form.field('_once'), name, redirect_uris: APP_URI },
      });
      return elementText(created, 'client-id');
    }

    /** Registers a passkey API app through its form; returns its id. */
    async function registerTenant(name: string) {
      const form = await admin.browser.request('/admin/passkey-tenants/new');
      await confirmWithPasskey(form);
      const created = await admin.browser.request('/admin/passkey-tenants', {
        form: { _csrf: form.csrf(), _once: form.field('_once'), name, origins: 'https://once.example.com' },
      });
      return elementText(created, 'tenant-id');
    }

    it('asks before it rotates a client secret or an app key: the buttons lead to a confirmation page, and only its POST rotates', async () => {
      const clientId = await registerClient('Confirmed');
      const tenantId = await registerTenant('Confirmed');
      const hashes = async () => ({
        client: (await clientsQueries.find(sesame.db, clientId))!.secret_hash,
        tenant: (await passkeyTenantsQueries.findById(sesame.db, tenantId))!.apiKeyHash,
      });
      const before = await hashes();

      for (const [settings, rotate, button, warning] of [
        [
          `/admin/clients/${clientId}`,
          `/admin/clients/${clientId}/rotate-secret`,
          'Rotate secret',
          'The old secret stops working at once: the app cannot sign anyone in or get tokens until its configuration has the new one.',
        ],
        [
          `/admin/passkey-tenants/${tenantId}`,
          `/admin/passkey-tenants/${tenantId}/rotate-key`,
          'Rotate API key',
          // At once is the default choice; the others keep the old key working a while.
          'cannot call the passkey API until it has the new key',
        ],
      ] as const) {
        // The settings page has no form that rotates: a link to the confirmation.
        const page = await admin.browser.request(settings);
        expect(page.text).not.toContain(`action="${rotate}"`);
        expect(page.text).toContain(`href="${rotate}">${button}…</a>`);
        const confirm = await admin.browser.request(rotate);
        expect(confirm.status).toBe(200);
        expect(confirm.text).toContain('Rotate the ');
        expect(confirm.text).toContain(warning.replaceAll("'", '&#39;'));
        expect(confirm.text).toMatch(new RegExp(`<form method="post" action="${rotate}"[^>]*data-step-up>`));
        expect(confirm.text).toContain(`>${button}</button>`);
      }
      expect(await hashes()).toEqual(before);
      // A public client has no secret to rotate: no confirmation either.
      const publicForm = await admin.browser.request('/admin/clients/new');
      const publicClient = await admin.browser.request('/admin/clients', {
        form: {
          _csrf: publicForm.csrf(),
          _once: publicForm.field('_once'),
          name: 'Public',
          redirect_uris: APP_URI,
          type: 'public',
        },
      });
      const publicId = elementText(publicClient, 'client-id');
      expect((await admin.browser.request(`/admin/clients/${publicId}/rotate-secret`)).status).toBe(400);
    });

    it('rotates a client secret once however often its confirmation is sent: a repeat says so and mints nothing', async () => {
      const clientId = await registerClient('Reloaded');
      const confirm = await admin.browser.request(`/admin/clients/${clientId}/rotate-secret`);
      const send = () =>
        admin.browser.request(`/admin/clients/${clientId}/rotate-secret`, {
          form: { _csrf: confirm.csrf(), _once: confirm.field('_once') },
        });
      const rotated = await send();
      expect(rotated.status).toBe(200);
      const secret = elementText(rotated, 'client-secret');

      // A reload of the new secret's page sends the same form again.
      const again = await send();
      expectAlreadyDone(again, 'Secret already rotated');
      expect(again.text).toContain('rotate the secret again');
      expect(again.text).toContain(`href="/admin/clients/${clientId}"`);
      expect((await clientsQueries.find(sesame.db, clientId))!.secret_hash).toBe(sha256Hex(secret));
      expect(await audited('client.rotate_secret', clientId)).toBe(1);

      // A double click: two sends at once, one rotation.
      const next = await admin.browser.request(`/admin/clients/${clientId}/rotate-secret`);
      const both = await Promise.all(
        [1, 2].map(() =>
          admin.browser.request(`/admin/clients/${clientId}/rotate-secret`, {
            form: { _csrf: next.csrf(), _once: next.field('_once') },
          }),
        ),
      );
      expect(both.map((answer) => answer.status).sort()).toEqual([200, 409]);
      const winner = both.find((answer) => answer.status === 200)!;
      expect((await clientsQueries.find(sesame.db, clientId))!.secret_hash).toBe(
        sha256Hex(elementText(winner, 'client-secret')),
      );
      expect(await audited('client.rotate_secret', clientId)).toBe(2);
    });

    it("rotates a passkey API app's key once however often its confirmation is sent", async () => {
      const tenantId = await registerTenant('Reloaded');
      const confirm = await admin.browser.request(`/admin/passkey-tenants/${tenantId}/rotate-key`);
      const send = () =>
        admin.browser.request(`/admin/passkey-tenants/${tenantId}/rotate-key`, {
          form: { _csrf: confirm.csrf(), _once: confirm.field('_once') },
        });
      const rotated = await send();
      expect(rotated.status).toBe(200);
      const apiKey = elementText(rotated, 'api-key');
      const again = await send();
      expectAlreadyDone(again, 'API key already rotated');
      expect(again.text).toContain('rotate the key again');
      expect((await passkeyTenantsQueries.findById(sesame.db, tenantId))!.apiKeyHash).toBe(sha256Hex(apiKey));
      expect(await audited('passkey_tenant.rotate_key', tenantId)).toBe(1);
    });

    it('registers one client, one passkey API app and one API key per form, however often it is sent', async () => {
      const clientForm = await admin.browser.request('/admin/clients/new');
      const tenantForm = await admin.browser.request('/admin/passkey-tenants/new');
      const keyForm = await admin.browser.request('/admin/api-keys');
      await confirmWithPasskey(clientForm);
      const sends = {
        client: () =>
          admin.browser.request('/admin/clients', {
            form: {
              _csrf: clientForm.csrf(),
              _once: clientForm.field('_once'),
              name: 'Twice',
              redirect_uris: APP_URI,
            },
          }),
        tenant: () =>
          admin.browser.request('/admin/passkey-tenants', {
            form: {
              _csrf: tenantForm.csrf(),
              _once: tenantForm.field('_once'),
              name: 'Twice',
              origins: 'https://twice.example.com',
            },
          }),
        apiKey: () =>
          admin.browser.request('/admin/api-keys', {
            form: { _csrf: keyForm.csrf(), _once: keyForm.field('_once'), name: 'twice' },
          }),
      };
      const counts = async () => ({
        clients: await countRows(sesame.db, 'clients'),
        tenants: await countRows(sesame.db, 'passkey_tenants'),
        apiKeys: await countRows(sesame.db, 'api_keys'),
      });
      const before = await counts();
      for (const send of Object.values(sends)) expect((await send()).status).toBe(200);
      const after = await counts();
      expect(after).toEqual({
        clients: before.clients + 1,
        tenants: before.tenants + 1,
        apiKeys: before.apiKeys + 1,
      });

      expectAlreadyDone(await sends.client(), 'Client already registered');
      expectAlreadyDone(await sends.tenant(), 'App already registered');
      const key = await sends.apiKey();
      expectAlreadyDone(key, 'API key already created');
      expect(key.text).toContain('revoke that key and create another');
      expect(await counts()).toEqual(after);
      expect((await clientsQueries.list(sesame.db)).filter((client) => client.name === 'Twice')).toHaveLength(
        1,
      );
    });

    it('does nothing, with 400, for a form token that is missing, expired, of another form or of another sign-in', async () => {
      const clientId = await registerClient('Guarded');
      const otherId = await registerClient('Other');
      const hash = async (id: string) => (await clientsQueries.find(sesame.db, id))!.secret_hash;
      const before = {
        guarded: await hash(clientId),
        other: await hash(otherId),
        clients: await clientCount(),
      };
      const confirm = await admin.browser.request(`/admin/clients/${clientId}/rotate-secret`);
      const token = confirm.field('_once');
      // Only the token's hash is stored, bound to this sign-in and this client's rotation.
      const stored = await sesame.db
        .selectFrom('admin_form_tokens')
        .selectAll()
        .where('token_hash', '=', sha256Hex(token))
        .executeTakeFirstOrThrow();
      expect(stored).toMatchObject({
        user_id: adminId,
        action: `client.rotate_secret:${clientId}`,
        spent_at: null,
      });
      expect(
        JSON.stringify(await sesame.db.selectFrom('admin_form_tokens').selectAll().execute()),
      ).not.toContain(token);

      const expectExpired = (answer: PageResponse, formPath: string) => {
        expect(answer.status).toBe(400);
        expect(answer.text).toContain('This form has expired');
        expect(answer.text).toContain(`href="${formPath}"`);
        expect(answer.text).not.toContain('id="client-secret"');
      };
      const csrf = confirm.csrf();
      expectExpired(
        await admin.browser.request(`/admin/clients/${clientId}/rotate-secret`, { form: { _csrf: csrf } }),
        `/admin/clients/${clientId}/rotate-secret`,
      );
      expectExpired(
        await admin.browser.request(`/admin/clients/${clientId}/rotate-secret`, {
          form: { _csrf: csrf, _once: 'x'.repeat(43) },
        }),
        `/admin/clients/${clientId}/rotate-secret`,
      );
      // The token rotates this client's secret, not another's, and registers no client.
      expectExpired(
        await admin.browser.request(`/admin/clients/${otherId}/rotate-secret`, {
          form: { _csrf: csrf, _once: token },
        }),
        `/admin/clients/${otherId}/rotate-secret`,
      );
      expectExpired(
        await admin.browser.request('/admin/clients', {
          form: { _csrf: csrf, _once: token, name: 'Smuggled', redirect_uris: APP_URI },
        }),
        '/admin/clients/new',
      );

      // Another administrator's sign-in cannot spend it.
      const { person: deputy, userId: deputyId } = await signUpForAdmin('deputy@example.com');
      await usersQueries.update(sesame.db, deputyId, { isAdmin: true });
      const deputyPage = await deputy.browser.request('/admin/clients');
      expect((await stepUp(deputy, deputyPage.csrf())).status).toBe(200);
      expectExpired(
        await deputy.browser.request(`/admin/clients/${clientId}/rotate-secret`, {
          form: { _csrf: deputyPage.csrf(), _once: token },
        }),
        `/admin/clients/${clientId}/rotate-secret`,
      );

      // An hour later the form has expired.
      await sesame.db
        .updateTable('admin_form_tokens')
        .set({ expires_at: new Date(Date.now() - 1000) })
        .where('token_hash', '=', sha256Hex(token))
        .execute();
      expectExpired(
        await admin.browser.request(`/admin/clients/${clientId}/rotate-secret`, {
          form: { _csrf: csrf, _once: token },
        }),
        `/admin/clients/${clientId}/rotate-secret`,
      );
      expect({
        guarded: await hash(clientId),
        other: await hash(otherId),
        clients: await clientCount(),
      }).toEqual(before);
      expect(await audited('client.rotate_secret', clientId)).toBe(0);
    });
  });

  it('shows the notice a redirect names, and none for a name it does not know, an inherited one included', async () => {
    const notice = (page: PageResponse) =>
      /<p class="status ok" role="status">([^<]*)<\/p>/.exec(page.text)?.[1];
    const named = await admin.browser.request('/admin/users?done=user-enabled');
    expect(notice(named)).toBe('The user can sign in again.');
    for (const name of ['constructor', 'toString', 'hasOwnProperty', '__proto__', 'no-such-notice']) {
      const page = await admin.browser.request(`/admin/users?done=${name}`);
      expect({ name, status: page.status, notice: notice(page) }).toEqual({
        name,
        status: 200,
        notice: undefined,
      });
      expect(page.text).not.toContain('[native code]');
    }
  });

  it('lists recent audit events', async () => {
    const page = await admin.browser.request('/admin/audit');
    expect(page.status).toBe(200);
    expect(page.text).toContain('client.create');
    expect(page.text).toContain(`user:${adminId}`);
  });

  it('shows the activity 100 events a page, newest first, with a link to older events down to the first', async () => {
    for (let i = 0; i < 150; i += 1) await auditQueries.record(sesame.db, 'cli', 'test.bulk', `bulk-${i}`);
    const total = (await auditQueries.recent(sesame.db, 100_000)).length;
    const targets = (page: PageResponse) => auditColumn(page, 3);
    const olderLink = olderEventsLink;

    const pages: PageResponse[] = [await admin.browser.request('/admin/audit')];
    expect(pages[0]!.text).not.toContain('Newest events');
    // An event recorded while the admin reads is on no older page: each starts below the last one shown.
    await auditQueries.record(sesame.db, 'cli', 'test.bulk', 'bulk-later');
    for (let next = olderLink(pages[0]!); next; next = olderLink(pages.at(-1)!)) {
      expect(next).toMatch(/^\/admin\/audit\?before=\d+$/);
      pages.push(await admin.browser.request(next));
      expect(pages.at(-1)!.text).toContain('<a href="/admin/audit">Newest events</a>');
    }
    expect(pages.map((page) => page.status)).toEqual(pages.map(() => 200));
    expect(pages.map((page) => targets(page).length)).toEqual(
      Array.from({ length: Math.ceil(total / 100) }, (_, i) => Math.min(100, total - i * 100)),
    );
    const shown = pages.flatMap(targets);
    expect(shown.filter((target) => target.startsWith('bulk-'))).toEqual(
      Array.from({ length: 150 }, (_, i) => `bulk-${149 - i}`),
    );

    for (const before of ['abc', '0', '-1', '9223372036854775808', '1e5']) {
      const refused = await admin.browser.request(`/admin/audit?before=${before}`);
      expect({ before, status: refused.status }).toEqual({ before, status: 400 });
    }
    await sesame.db.deleteFrom('audit_events').where('action', '=', 'test.bulk').execute();
  });

  it('filters the activity by action (a name, or its start up to a dot), actor and target, page by page', async () => {
    // A security event, then a flood that pushes it off the first page of the whole log.
    await auditQueries.record(sesame.db, 'user:filter-victim', 'user.taken_over', 'filter-victim-target');
    for (let i = 0; i < 150; i += 1)
      await auditQueries.record(sesame.db, 'user:flooder', 'user.rename', `flood-${i}`);
    const request = async (query: string) => {
      const page = await admin.browser.request(`/admin/audit?${query}`);
      expect({ query, status: page.status }).toEqual({ query, status: 200 });
      return page;
    };
    const whole = await request('');
    expect(auditColumn(whole, 2)).not.toContain('user.taken_over');
    // Empty fields, as the form sends them, filter nothing.
    expect(auditColumn(await request('action=&actor=&target='), 3)).toEqual(auditColumn(whole, 3));

    const takenOver = await request('action=user.taken_over');
    expect(auditColumn(takenOver, 2)).toEqual(['user.taken_over']);
    expect(takenOver.text).not.toContain('flood-');
    expect(takenOver.text).toContain('value="user.taken_over"');
    expect(olderEventsLink(takenOver)).toBeUndefined();
    expect(auditColumn(await request('actor=user:filter-victim'), 3)).toEqual(['filter-victim-target']);
    expect(auditColumn(await request('target=filter-victim-target&actor=user:filter-victim'), 2)).toEqual([
      'user.taken_over',
    ]);
    expect(auditColumn(await request('target=filter-victim-target&actor=user:flooder'), 2)).toEqual([]);
    // LIKE's wildcards in a prefix match themselves: `use_.` is not `user.`.
    expect(auditColumn(await request('action=use_.'), 2)).toEqual([]);

    // The actor's flood, 100 a page; the older page keeps the filter.
    const flooder = await request('actor=user%3Aflooder');
    expect(auditColumn(flooder, 1)).toEqual(Array.from({ length: 100 }, () => 'user:flooder'));
    const older = olderEventsLink(flooder)!;
    expect(older).toMatch(/^\/admin\/audit\?actor=user%3Aflooder&before=\d+$/);
    const second = await request(older.split('?')[1]!);
    expect(auditColumn(second, 3)).toEqual(Array.from({ length: 50 }, (_, i) => `flood-${49 - i}`));
    expect(second.text).toContain('<a href="/admin/audit?actor=user%3Aflooder">Newest events</a>');

    // A prefix: every `user.` action, the taken-over account on the second page.
    const users = [await request('action=user.')];
    for (let next = olderEventsLink(users.at(-1)!); next; next = olderEventsLink(users.at(-1)!)) {
      expect(next).toMatch(/^\/admin\/audit\?action=user\.&before=\d+$/);
      users.push(await request(next.split('?')[1]!));
    }
    const actions = users.flatMap((page) => auditColumn(page, 2));
    expect(actions.every((action) => action.startsWith('user.'))).toBe(true);
    expect(actions.filter((action) => action === 'user.taken_over')).toHaveLength(1);

    for (const bad of [
      `action=${'a'.repeat(101)}`,
      `actor=${'a'.repeat(201)}`,
      `target=${'a'.repeat(501)}`,
      'action=%25',
      'action=user..rename',
      'action=.user',
      'actor=user%3A%20x',
      'target=a%00b',
      'action=user.rename&action=user.delete',
    ]) {
      const refused = await admin.browser.request(`/admin/audit?${bad}`);
      expect({ bad, status: refused.status }).toEqual({ bad, status: 400 });
    }
    await sesame.db
      .deleteFrom('audit_events')
      .where('actor', 'in', ['user:flooder', 'user:filter-victim'])
      .execute();
  });
});
