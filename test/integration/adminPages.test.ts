import { sha256Hex } from '../../src/crypto.js';
import { auditQueries } from '../../src/db/queries/audit.js';
import { clientsQueries } from '../../src/db/queries/clients.js';
import { oidcModelsQueries } from '../../src/db/queries/oidcModels.js';
import { usersQueries } from '../../src/db/queries/users.js';
import { asPage, type PageResponse } from '../support/browser.js';
import { Person, stepUp } from '../support/oidcFlow.js';
import { startTestApp, type TestApp } from '../support/testApp.js';

const APP_URI = 'https://wiki.example.com/callback';

/** The text of the element with this id on a page (a secret, a link). */
function elementText(page: PageResponse, id: string): string {
  const match = new RegExp(`id="${id}"[^>]*>([^<]+)<`).exec(page.text);
  if (!match) throw new Error(`no #${id} on ${page.url} (${page.status}): ${page.text.slice(0, 400)}`);
  return match[1]!.trim();
}

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

  it('sends a signed-out visitor to the passkey sign-in and back to /admin', async () => {
    const visitor = new Person(sesame.baseUrl);
    const response = await visitor.browser.request('/admin/clients');
    expect(response.status).toBe(302);
    expect(response.location()).toBe(`${sesame.baseUrl}/account/login?return_to=%2Fadmin%2Fclients`);
  });

  it('refuses a signed-in person who is not an admin with a 403 page', async () => {
    for (const path of ['/admin', '/admin/clients', '/admin/users', '/admin/audit']) {
      const page = asPage(await someone.browser.follow(path));
      expect(page.status).toBe(403);
      expect(page.headers.get('content-type')).toContain('text/html');
      expect(page.text).toContain('administrators');
    }
    const post = await someone.browser.request('/admin/clients', {
      form: { name: 'Sneaky', redirect_uris: APP_URI },
    });
    expect(post.status).toBe(403);
  });

  it('lets an admin register a client and shows its secret once; only the hash is stored', async () => {
    const list = asPage(await admin.browser.follow('/admin'));
    expect(list.status).toBe(200);
    expect(list.url).toBe(`${sesame.baseUrl}/admin/clients`);
    expect(list.text).toContain('class="card wide"');
    expect(list.text).toContain('Register a client');

    const form = await admin.browser.request('/admin/clients/new');
    expect(form.status).toBe(200);
    const created = await admin.browser.request('/admin/clients', {
      form: {
        _csrf: form.csrf(),
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

  it('shows the form again with the field named when a redirect URI is invalid, and stores nothing', async () => {
    const before = await clientCount();
    const form = await admin.browser.request('/admin/clients/new');
    const response = await admin.browser.request('/admin/clients', {
      form: { _csrf: form.csrf(), name: 'Evil', redirect_uris: 'http://evil.example.com/cb', type: 'public' },
    });
    expect(response.status).toBe(400);
    expect(response.text).toContain('id="redirect_uris-error"');
    expect(response.text).toContain('must use https');
    // The admin's input is kept, escaped.
    expect(response.text).toContain('http://evil.example.com/cb</textarea>');
    expect(await clientCount()).toBe(before);
  });

  it('refuses a form POST without the CSRF token, or from another origin, with 403 and changes nothing', async () => {
    const before = await clientCount();
    const noToken = await admin.browser.request('/admin/clients', {
      form: { name: 'NoToken', redirect_uris: APP_URI },
    });
    expect(noToken.status).toBe(403);
    const page = await admin.browser.request('/admin/clients/new');
    const foreign = await admin.browser.request('/admin/clients', {
      form: { _csrf: page.csrf(), name: 'Foreign', redirect_uris: APP_URI },
      headers: { origin: 'https://evil.example.com' },
    });
    expect(foreign.status).toBe(403);
    const wrongToken = await admin.browser.request('/admin/clients', {
      form: { _csrf: `${page.csrf().slice(0, -2)}xx`, name: 'Wrong', redirect_uris: APP_URI },
    });
    expect(wrongToken.status).toBe(403);
    expect(await clientCount()).toBe(before);

    const victim = (await clientsQueries.list(sesame.db))[0]!;
    const deleteWithout = await admin.browser.request(`/admin/clients/${victim.client_id}/delete`, {
      form: {},
    });
    expect(deleteWithout.status).toBe(403);
    expect(await clientsQueries.find(sesame.db, victim.client_id)).toBeDefined();
  });

  it('edits a client, rotates its secret (shown once) and deletes it after confirmation', async () => {
    const form = await admin.browser.request('/admin/clients/new');
    const created = await admin.browser.request('/admin/clients', {
      form: { _csrf: form.csrf(), name: 'Blog', redirect_uris: APP_URI, type: 'confidential' },
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

    const rotated = await admin.browser.request(`/admin/clients/${clientId}/rotate-secret`, {
      form: { _csrf: detail.csrf() },
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

  it('disables and enables a user, ending their sessions, and issues a one-time link shown on the page', async () => {
    const users = await admin.browser.request('/admin/users');
    expect(users.status).toBe(200);
    expect(users.text).toContain('someone@example.com');
    expect(users.text).toContain(`aria-label="Disable someone@example.com"`);
    // An admin cannot disable themselves from the page.
    expect(users.text).not.toContain('aria-label="Disable root@example.com"');

    const disabled = await admin.browser.request(`/admin/users/${someoneId}/disable`, {
      form: { _csrf: users.csrf() },
    });
    expect(disabled.status).toBe(302);
    expect((await usersQueries.findById(sesame.db, someoneId))!.disabled_at).not.toBeNull();
    expect(await oidcModelsQueries.grantIdsWhere(sesame.db, 'Session', 'accountId', someoneId)).toEqual([]);
    // Their browser is no longer signed in.
    const locked = await someone.browser.request('/admin/clients');
    expect(locked.status).toBe(302);

    const enabled = await admin.browser.request(`/admin/users/${someoneId}/enable`, {
      form: { _csrf: users.csrf() },
    });
    expect(enabled.status).toBe(302);
    expect((await usersQueries.findById(sesame.db, someoneId))!.disabled_at).toBeNull();

    expect((await stepUp(admin, users.csrf())).status).toBe(200);
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

  it('invites a new person with a one-time link, and deletes a user after confirmation', async () => {
    const users = await admin.browser.request('/admin/users');
    expect((await stepUp(admin, users.csrf())).status).toBe(200);
    const bad = await admin.browser.request('/admin/users/invite', {
      form: { _csrf: users.csrf(), email: 'not-an-email' },
    });
    expect(bad.status).toBe(400);
    expect(bad.text).toContain('id="invite-email-error"');

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

  it('issues no one-time link or invite without a passkey step-up from the last five minutes', async () => {
    const linkCount = async () =>
      Number(
        (
          await sesame.db
            .selectFrom('one_time_tokens')
            .select((eb) => eb.fn.countAll<string>().as('n'))
            .executeTakeFirstOrThrow()
        ).n,
      );
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
      expect(refused.status).toBe(403);
      expect(refused.text).toContain('Confirm with one of your passkeys');
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
    await sesame.db
      .updateTable('step_ups')
      .set({ verified_at: new Date(Date.now() - 6 * 60 * 1000) })
      .where('user_id', '=', adminId)
      .execute();
    expect((await issue()).map((r) => r.status)).toEqual([403, 403]);
    expect(await linkCount()).toBe(before + 2);
    // Other admin actions need no step-up.
    const disabled = await admin.browser.request(`/admin/users/${someoneId}/disable`, {
      form: { _csrf: users.csrf() },
    });
    expect(disabled.status).toBe(302);
    await admin.browser.request(`/admin/users/${someoneId}/enable`, { form: { _csrf: users.csrf() } });
  });

  it('lists recent audit events', async () => {
    const page = await admin.browser.request('/admin/audit');
    expect(page.status).toBe(200);
    expect(page.text).toContain('client.create');
    expect(page.text).toContain(`user:${adminId}`);
  });
});
