import { announceSetupLink, issueSetupLink } from '../../src/accounts/setupLink.js';
import { sha256Hex } from '../../src/crypto.js';
import { usersQueries } from '../../src/db/queries/users.js';
import { createLogger } from '../../src/logger.js';
import { asPage, type PageResponse } from '../support/browser.js';
import { countRows } from '../support/countRows.js';
import { startAppWithMail } from '../support/mailServer.js';
import { Person } from '../support/oidcFlow.js';
import { firstRunApp, setupPath } from '../support/setupLinks.js';
import type { TestApp } from '../support/testApp.js';

describe('the first-run setup link (ISSUER/setup/<token>)', () => {
  const firstRun = firstRunApp();
  const { newLink } = firstRun;
  let sesame: TestApp;
  beforeEach(() => {
    sesame = firstRun.sesame();
  });

  /** Starts the passkey ceremony on the setup page; returns the page's CSRF token and the options answer. */
  async function startSetup(person: Person, url: string, body: Record<string, unknown>) {
    const page = await person.browser.request(setupPath(url));
    expect(page.status).toBe(200);
    const csrf = page.csrf();
    const options = await person.browser.postJson(`${setupPath(url)}/options`, csrf, body);
    return { csrf, options };
  }

  async function finishSetup(person: Person, url: string, csrf: string, options: PageResponse) {
    const credential = await person.authenticator.createCredential(options.json(), person.browser.origin);
    return person.browser.postJson(`${setupPath(url)}/verify`, csrf, credential);
  }

  /** Uses the setup page as its script does: email, name, a new passkey. */
  async function useSetupLink(person: Person, url: string, email: string, name?: string) {
    const { csrf, options } = await startSetup(person, url, { email, ...(name && { name }) });
    if (options.status !== 200) return options;
    return finishSetup(person, url, csrf, options);
  }

  it.each(['info', 'error', 'silent'] as const)(
    'logs one JSON line with the link while no administrator exists (at LOG_LEVEL=%s), and stores only its hash',
    async (level) => {
      const lines: string[] = [];
      const url = await announceSetupLink(
        sesame.db,
        sesame.config,
        createLogger(level, (line) => lines.push(line)),
      );
      expect(url).toMatch(new RegExp(`^${sesame.baseUrl}/setup/[A-Za-z0-9_-]{43}$`));
      expect(lines).toHaveLength(1);
      expect(JSON.parse(lines[0]!)).toMatchObject({
        level: 'warn',
        msg: 'no administrator yet: open this link to create one',
        setup_url: url,
      });
      const token = url!.split('/').at(-1)!;
      const rows = await sesame.db.selectFrom('setup_links').selectAll().execute();
      expect(rows).toHaveLength(1);
      expect(rows[0]!.token_hash).toBe(sha256Hex(token));
      expect(JSON.stringify(rows)).not.toContain(token);
    },
  );

  it('logs nothing and removes leftover links once an administrator exists', async () => {
    await newLink();
    await usersQueries.insert(sesame.db, { email: 'boss@example.com', name: null, isAdmin: true });
    const lines: string[] = [];
    expect(
      await announceSetupLink(
        sesame.db,
        sesame.config,
        createLogger('info', (line) => lines.push(line)),
      ),
    ).toBeUndefined();
    expect(lines).toEqual([]);
    expect(await countRows(sesame.db, 'setup_links')).toBe(0);
  });

  it('shows Email, Name and "Create a passkey", with no inline script and a noscript note', async () => {
    const page = await new Person(sesame.baseUrl).browser.request(setupPath(await newLink()));
    expect(page.status).toBe(200);
    expect(page.headers.get('cache-control')).toBe('no-store');
    expect(page.text).toMatch(/<label for="email">Email<\/label>/);
    expect(page.text).toMatch(/<label for="name">Name/);
    expect(page.text).toMatch(/<button[^>]*>Create a passkey<\/button>/);
    expect(page.text).toMatch(/<noscript>[^<]*<p[^>]*>Passkeys need JavaScript/);
    expect(page.text).not.toMatch(/<script(?![^>]*\bsrc=)/);
  });

  it('creates an administrator with the passkey, signs them in and sends them to /admin', async () => {
    const url = await newLink();
    const person = new Person(sesame.baseUrl);
    const verify = await useSetupLink(person, url, 'founder@example.com', 'Ada Founder');
    expect(verify.status).toBe(200);
    expect(verify.json()).toEqual({ redirect: '/admin' });

    const user = (await usersQueries.findByEmail(sesame.db, 'founder@example.com'))!;
    // Typed, not proven: the address is not marked verified.
    expect(user).toMatchObject({ name: 'Ada Founder', is_admin: true, email_verified: false });
    expect(await countRows(sesame.db, 'credentials')).toBe(1);
    expect(await countRows(sesame.db, 'setup_links')).toBe(0);
    const audit = await sesame.db
      .selectFrom('audit_events')
      .selectAll()
      .where('action', '=', 'setup.link.use')
      .where('target', '=', user.id)
      .execute();
    expect(audit).toHaveLength(1);

    const admin = await person.browser.request('/admin/users');
    expect(admin.status).toBe(200);
    expect(admin.text).toContain('founder@example.com');
  });

  it('mails the first administrator the welcome link that verifies the address, as at any sign-up', async () => {
    const withMail = await startAppWithMail({ SIGNUP: 'open-verified' });
    try {
      const url = (await issueSetupLink(withMail.sesame.db, withMail.sesame.config))!.url;
      const person = new Person(withMail.sesame.baseUrl);
      expect((await useSetupLink(person, url, 'first@example.com')).status).toBe(200);
      const [welcome] = await withMail.mail.waitFor('first@example.com');
      const link = /https?:\/\/\S+\/verify\/[A-Za-z0-9_-]{43}/.exec(welcome!.text)![0];
      expect((await person.browser.request(new URL(link).pathname)).status).toBe(200);
      const admin = await usersQueries.findByEmail(withMail.sesame.db, 'first@example.com');
      expect(admin).toMatchObject({ is_admin: true, email_verified: true });
    } finally {
      await withMail.stop();
    }
  });

  it('works once: the same link afterwards says an administrator exists and changes nothing', async () => {
    const url = await newLink();
    expect((await useSetupLink(new Person(sesame.baseUrl), url, 'first@example.com')).status).toBe(200);

    const again = await new Person(sesame.baseUrl).browser.request(setupPath(url));
    expect(again.status).toBe(410);
    expect(again.text).toContain('Sesame already has an administrator');
    expect(await countRows(sesame.db, 'users')).toBe(1);
  });

  it('dies when an administrator appears another way, even with its passkey prompt already open', async () => {
    const url = await newLink();
    const person = new Person(sesame.baseUrl);
    const { csrf, options } = await startSetup(person, url, { email: 'late@example.com' });
    expect(options.status).toBe(200);
    await usersQueries.insert(sesame.db, { email: 'promoted@example.com', name: null, isAdmin: true });

    const verify = await finishSetup(person, url, csrf, options);
    expect(verify.status).toBe(410);
    expect(verify.json()).toMatchObject({ error: 'admin_exists' });
    expect(await usersQueries.findByEmail(sesame.db, 'late@example.com')).toBeUndefined();
    expect((await person.browser.request(setupPath(url))).status).toBe(410);
  });

  it('keeps only the newest link: a new start makes the older one invalid', async () => {
    const older = await newLink();
    const newer = await newLink();
    expect((await new Person(sesame.baseUrl).browser.request(setupPath(older))).status).toBe(404);
    expect((await new Person(sesame.baseUrl).browser.request(setupPath(newer))).status).toBe(200);
  });

  it('refuses an expired link, a malformed token and an unknown one', async () => {
    const url = await newLink();
    await sesame.db
      .updateTable('setup_links')
      .set({ expires_at: new Date(Date.now() - 1000) })
      .execute();
    const browser = new Person(sesame.baseUrl).browser;
    expect((await browser.request(setupPath(url))).status).toBe(410);
    expect((await browser.request('/setup/short')).status).toBe(404);
    expect((await browser.request(`/setup/${'A'.repeat(43)}`)).status).toBe(404);
  });

  it('refuses an email that already has an account before the passkey prompt, and writes nothing', async () => {
    await usersQueries.insert(sesame.db, { email: 'taken@example.com', name: null });
    const url = await newLink();
    const challenges = await countRows(sesame.db, 'webauthn_challenges');
    const { options } = await startSetup(new Person(sesame.baseUrl), url, { email: 'TAKEN@example.com' });
    expect(options.status).toBe(409);
    expect(options.json()).toMatchObject({ error: 'account_exists' });
    // Not "promote it": the account may be a stranger's sign-up with that address.
    expect(options.json().error_description).toContain('`npx sesame users invite --email EMAIL --admin`');
    expect(options.json().error_description).not.toContain('users promote');
    // Its owner can prove it with its passkey instead, on this page.
    expect(options.json().error_description).toContain('"Sign in with a passkey" below');
    expect(await countRows(sesame.db, 'webauthn_challenges')).toBe(challenges);
    expect((await usersQueries.findByEmail(sesame.db, 'taken@example.com'))!.is_admin).toBe(false);
    // The link still works for another address.
    expect((await useSetupLink(new Person(sesame.baseUrl), url, 'other@example.com')).status).toBe(200);
  });

  it('tells someone who signed up while no administrator exists where the setup link is, never the link itself', async () => {
    const url = await newLink();
    const person = new Person(sesame.baseUrl);
    const next = await person.signUp(asPage(await person.browser.follow('/admin')), 'op@example.com');
    const refused = asPage(await person.browser.follow(next));
    expect(refused.status).toBe(403);
    expect(refused.text).toContain('Sesame has no administrator who can sign in');
    expect(refused.text).toContain('no administrator yet: open this link to create one');
    expect(refused.text).toContain('<code>setup_url</code>');
    expect(refused.text).toContain('docker compose logs sesame | grep setup_url');
    expect(refused.text).toContain('npx sesame users invite --email op@example.com --admin');
    expect(refused.text).not.toContain('ask an administrator');
    // Anyone may sign up: the page names where the link is and never shows it.
    expect(refused.text).not.toContain(url.split('/').at(-1)!);
    expect(refused.text).not.toContain('/setup/');

    // Once an administrator exists, the same person is told to ask one.
    expect((await useSetupLink(new Person(sesame.baseUrl), url, 'founder@example.com')).status).toBe(200);
    const later = asPage(await person.browser.follow('/admin'));
    expect(later.status).toBe(403);
    expect(later.text).toContain('which is not an administrator. If it should be, ask an administrator');
    expect(later.text).not.toContain('setup_url');
    expect(later.text).not.toContain('users invite');
  });

  it("says an email has an account in the page's language, in error_description and in fields", async () => {
    await usersQueries.insert(sesame.db, { email: 'pris@example.com', name: null });
    const person = new Person(sesame.baseUrl);
    person.browser.headers['accept-language'] = 'fr';
    const { options } = await startSetup(person, await newLink(), { email: 'pris@example.com' });
    expect(options.status).toBe(409);
    const { error_description, fields } = options.json();
    expect(error_description).toMatch(/^Utilisez une autre adresse e-mail ici/);
    expect(fields).toEqual({ email: error_description });
  });

  it('refuses a bad email with a 400 and a POST without the page CSRF token with a 403', async () => {
    const url = await newLink();
    const person = new Person(sesame.baseUrl);
    const { options } = await startSetup(person, url, { email: 'not-an-email' });
    expect(options.status).toBe(400);
    const forged = await person.browser.postJson(`${setupPath(url)}/options`, 'forged', {
      email: 'x@example.com',
    });
    expect(forged.status).toBe(403);
  });

  it('makes exactly one administrator when two people race, even with two live links', async () => {
    const first = await newLink();
    // A second live link, as two instances starting at once could leave behind.
    const second = await newLink();
    await sesame.db
      .insertInto('setup_links')
      .values({
        token_hash: sha256Hex(first.split('/').at(-1)!),
        expires_at: new Date(Date.now() + 3600_000),
      })
      .execute();
    const people = [new Person(sesame.baseUrl), new Person(sesame.baseUrl), new Person(sesame.baseUrl)];
    const urls = [first, second, first];
    const started = await Promise.all(
      people.map((person, i) => startSetup(person, urls[i]!, { email: `racer${i}@example.com` })),
    );
    const results = await Promise.all(
      people.map((person, i) => finishSetup(person, urls[i]!, started[i]!.csrf, started[i]!.options)),
    );
    expect(results.map((r) => r.status).filter((s) => s === 200)).toHaveLength(1);
    for (const result of results.filter((r) => r.status !== 200)) expect(result.status).toBeLessThan(500);
    expect(await usersQueries.countActiveAdmins(sesame.db)).toBe(1);
    expect(await countRows(sesame.db, 'users')).toBe(1);
  });

  it('keeps setup links and invitation links apart', async () => {
    const url = await newLink();
    const token = url.split('/').at(-1)!;
    expect((await new Person(sesame.baseUrl).browser.request(`/link/${token}`)).status).toBe(404);
  });
});
