import { setTimeout as sleep } from 'node:timers/promises';
import { jest } from '@jest/globals';
import { createOneTimeLink, SELF_SERVICE_ACTOR } from '../../src/accounts/oneTimeLinks.js';
import { issueRecoveryLink, promoteUser } from '../../src/admin/users.js';
import { usersQueries } from '../../src/db/queries/users.js';
import { BrowserSession, type PageResponse } from '../support/browser.js';
import { countRows } from '../support/countRows.js';
import { linkIn, type MailServer, startAppWithMail } from '../support/mailServer.js';
import { Person } from '../support/oidcFlow.js';
import { linkPath, onboard, prepareLinkUse, useLink } from '../support/oneTimeLinkFlow.js';
import { autofocusedField } from '../support/refusedFields.js';
import { meanwhileAtLock } from '../support/rowLocks.js';
import { startTestApp, type TestApp } from '../support/testApp.js';
import { onPostgres } from '../support/testDatabase.js';

/** The sign-in page of Sesame's own account app (an OIDC login prompt). */
async function signInPage(sesame: TestApp): Promise<string> {
  const browser = new BrowserSession(sesame.baseUrl);
  const page = await browser.follow('/account');
  return 'text' in page ? page.text : '';
}

/** Posts the /recover form for `email` as a browser does; returns the POST's response. */
async function postForLink(sesame: TestApp, email: string, browser = new BrowserSession(sesame.baseUrl)) {
  const form = await browser.request('/recover');
  expect(form.status).toBe(200);
  return browser.request('/recover', { form: { _csrf: form.csrf(), email } });
}

/**
 * Asks for a recovery link as the /recover form does; returns the answer page, which the
 * POST redirects to (or the POST's own answer, when it refused).
 */
async function askForLink(sesame: TestApp, email: string, browser = new BrowserSession(sesame.baseUrl)) {
  const posted = await postForLink(sesame, email, browser);
  if (posted.status !== 303) return posted;
  expect(posted.location()).toBe(`${sesame.baseUrl}/recover/sent`);
  return browser.request(posted.location()!);
}

/** The answer's main text, without what differs by request (the token, the address). */
const answerText = (text: string, email: string) =>
  text.replace(/<meta name="csrf-token"[^>]*>/, '').replaceAll(email, 'EMAIL');

describe('"Lost your passkey?" with mail configured', () => {
  let mail: MailServer;
  let sesame: TestApp;
  let stop: () => Promise<void>;

  beforeAll(async () => {
    ({ mail, sesame, stop } = await startAppWithMail());
  });

  afterAll(() => stop?.());

  it('links "Lost your passkey?" from the sign-in page to a page with "Email" and "Send me a link"', async () => {
    expect(await signInPage(sesame)).toContain('<a href="/recover">Lost your passkey?</a>');
    const page = await new BrowserSession(sesame.baseUrl).request('/recover');
    expect(page.status).toBe(200);
    expect(page.text).toContain('<label for="email">Email</label>');
    expect(page.text).toMatch(/<button type="submit"[^>]*>Send me a link<\/button>/);
  });

  it('answers the same for an unknown address, mails a 30-minute link to a known one, and ends the other sign-ins when it is used', async () => {
    const { person: owner } = await onboard(sesame, 'owner@example.com');
    // The owner is signed in on the device they are about to lose.
    expect((await owner.browser.request('/account')).status).toBe(200);

    const known = await askForLink(sesame, 'owner@example.com');
    const unknown = await askForLink(sesame, 'nobody@example.com');
    expect(known.status).toBe(200);
    expect(unknown.status).toBe(200);
    expect(answerText(known.text, 'owner@example.com')).toBe(answerText(unknown.text, 'nobody@example.com'));
    expect(known.text).toContain('Check your mail');

    // The first mail is the invite onboard() used; the second, the recovery link.
    const received = (await mail.waitFor('owner@example.com', 2))[1];
    expect(received!.subject).toBe('Add a passkey to your Acme account');
    expect(received!.text).toContain('Someone asked for a link');
    const url = linkIn(received!);
    const link = await sesame.db
      .selectFrom('one_time_tokens')
      .selectAll()
      .where('email', '=', 'owner@example.com')
      .where('created_by', '=', 'self-service')
      .executeTakeFirstOrThrow();
    expect(link.expires_at.getTime() - link.created_at.getTime()).toBeLessThanOrEqual(30 * 60 * 1000 + 5_000);
    await sleep(500);
    expect(mail.to('nobody@example.com')).toHaveLength(0);

    // On a new device, the mailed link makes a new passkey and signs the person in.
    const newDevice = new Person(sesame.baseUrl);
    expect((await useLink(newDevice, url)).status).toBe(200);
    expect((await newDevice.browser.request('/account')).status).toBe(200);
    // The lost device is signed out; the link is used up.
    expect((await owner.browser.request('/account')).status).not.toBe(200);
    expect((await useLink(new Person(sesame.baseUrl), url)).status).toBe(410);
    const user = await usersQueries.findByEmail(sesame.db, 'owner@example.com');
    expect(await countRows(sesame.db, 'credentials')).toBeGreaterThanOrEqual(2);
    const audit = await sesame.db
      .selectFrom('audit_events')
      .select('action')
      .where('target', '=', user!.id)
      .execute();
    expect(audit.map((a) => a.action)).toEqual(
      expect.arrayContaining(['link.recovery.create', 'link.recovery.use', 'user.signed_out_everywhere']),
    );
  });

  it('answers the form with a 303 to a page that sends nothing: reloading it mails no second link, and the first one works', async () => {
    await usersQueries.insert(sesame.db, { email: 'reload@example.com', name: null });
    const browser = new BrowserSession(sesame.baseUrl);
    const known = await postForLink(sesame, 'reload@example.com', browser);
    const stranger = new BrowserSession(sesame.baseUrl);
    const unknown = await postForLink(sesame, 'nobody-reload@example.com', stranger);
    // The same redirect, and the same cookie, whether the address has an account or not.
    for (const posted of [known, unknown]) {
      expect(posted.status).toBe(303);
      expect(posted.location()).toBe(`${sesame.baseUrl}/recover/sent`);
      expect(posted.text).not.toContain('reload@example.com');
    }
    const cookieNamesSet = (b: BrowserSession) =>
      b.setCookieHeaders.map((header) => header.split('=')[0]).sort();
    expect(cookieNamesSet(browser)).toEqual(cookieNamesSet(stranger));

    // The answer page, loaded three times (a reload, Back to it): the same page each time.
    const pages = [];
    for (let i = 0; i < 3; i += 1) pages.push(await browser.request('/recover/sent'));
    for (const page of pages) {
      expect(page.status).toBe(200);
      expect(page.text).toContain('<h1>Check your mail</h1>');
      expect(page.text).toContain('reload@example.com');
    }
    const strangers = await stranger.request('/recover/sent');
    expect(answerText(strangers.text, 'nobody-reload@example.com')).toBe(
      answerText(pages[0]!.text, 'reload@example.com'),
    );

    // One mail, one link, and it works.
    const [received] = await mail.waitFor('reload@example.com', 1);
    await sleep(800);
    expect(mail.to('reload@example.com')).toHaveLength(1);
    const links = await sesame.db
      .selectFrom('one_time_tokens')
      .select('id')
      .where('email', '=', 'reload@example.com')
      .execute();
    expect(links).toHaveLength(1);
    const opened = await new BrowserSession(sesame.baseUrl).request(linkPath(linkIn(received!)));
    expect(opened.status).toBe(200);
    expect(opened.text).toContain('Create a passkey');

    // A browser that asked for nothing (or forged what it asked for) is sent to the form.
    const nobody = new BrowserSession(sesame.baseUrl);
    const bare = await nobody.request('/recover/sent');
    expect(bare.status).toBe(303);
    expect(bare.location()).toBe(`${sesame.baseUrl}/recover`);
    await nobody.jar.setCookie(
      `sesame.recover=${Buffer.from('reload@example.com').toString('base64url')}; Path=/`,
      sesame.baseUrl,
    );
    const forged = await nobody.request('/recover/sent');
    expect(forged.status).toBe(303);
    expect(forged.text).not.toContain('reload@example.com');

    // The asking browser's cookies, copied into another that has an anti-forgery cookie of its
    // own: they name nothing there.
    const other = new BrowserSession(sesame.baseUrl);
    await other.request('/recover');
    for (const cookie of await browser.jar.getCookies(sesame.baseUrl))
      if (cookie.key.startsWith('sesame.recover'))
        await other.jar.setCookie(cookie.toString(), sesame.baseUrl);
    const copied = await other.request('/recover/sent');
    expect(copied.status).toBe(303);
    expect(copied.text).not.toContain('reload@example.com');

    // A session cookie: its half hour is the server's to judge, not a device clock's, which
    // may run fast enough to drop it at once.
    const sentCookie = browser.setCookieHeaders.find((header) => header.startsWith('sesame.recover='));
    expect(sentCookie).toBeDefined();
    expect(sentCookie).not.toMatch(/expires=|max-age=/i);
    // Half an hour on, as long as the link works, the server tells nothing more.
    const halfAnHourOn = Date.now() + 30 * 60 * 1000 + 1000;
    const clock = jest.spyOn(Date, 'now').mockReturnValue(halfAnHourOn);
    try {
      const late = await browser.request('/recover/sent');
      expect(late.status).toBe(303);
      expect(late.location()).toBe(`${sesame.baseUrl}/recover`);
    } finally {
      clock.mockRestore();
    }
    expect((await browser.request('/recover/sent')).status).toBe(200);
  });

  it('mails nothing for a disabled account, and the same answer', async () => {
    const user = await usersQueries.insert(sesame.db, { email: 'off@example.com', name: null });
    await usersQueries.update(sesame.db, user.id, { disabledAt: new Date() });
    const answer = await askForLink(sesame, 'off@example.com');
    expect(answer.status).toBe(200);
    expect(answer.text).toContain('Check your mail');
    await sleep(800);
    expect(mail.to('off@example.com')).toHaveLength(0);
  });

  it('keeps the link an admin handed out working when someone asks for a link for the address; asking again replaces only the earlier self-service link', async () => {
    await usersQueries.insert(sesame.db, { email: 'handed@example.com', name: null });
    const handedOut = await issueRecoveryLink(sesame.db, sesame.config, 'handed@example.com', 'cli:test');
    // The admin's link was mailed too (SMTP_URL is set): the first mail.
    await mail.waitFor('handed@example.com', 1);

    // Anyone may post the address to "Lost your passkey?", twice.
    await askForLink(sesame, 'handed@example.com');
    const first = linkIn((await mail.waitFor('handed@example.com', 2))[1]!);
    await askForLink(sesame, 'handed@example.com');
    const second = linkIn((await mail.waitFor('handed@example.com', 3))[2]!);

    const opened = async (url: string) =>
      (await new BrowserSession(sesame.baseUrl).request(linkPath(url))).status;
    expect(await opened(handedOut!.url)).toBe(200);
    expect(await opened(first)).toBe(410);
    expect(await opened(second)).toBe(200);
    expect((await useLink(new Person(sesame.baseUrl), handedOut!.url)).status).toBe(200);
  });

  it('sends a person whose own link expired or was used back to "Lost your passkey?", and one of an admin\'s link to an administrator', async () => {
    await usersQueries.insert(sesame.db, { email: 'late@example.com', name: null });
    await askForLink(sesame, 'late@example.com');
    const mailed = linkIn((await mail.waitFor('late@example.com', 1))[0]!);
    await sesame.db
      .updateTable('one_time_tokens')
      .set({ expires_at: new Date(Date.now() - 60_000) })
      .where('email', '=', 'late@example.com')
      .execute();
    const expired = await new BrowserSession(sesame.baseUrl).request(linkPath(mailed));
    expect(expired.status).toBe(410);
    expect(expired.text).toContain('This link has expired');
    expect(expired.text).toContain('<a href="/recover">Ask for a new link</a>');
    expect(expired.text).not.toContain('administrator');

    await askForLink(sesame, 'late@example.com');
    const next = linkIn((await mail.waitFor('late@example.com', 2))[1]!);
    expect((await useLink(new Person(sesame.baseUrl), next)).status).toBe(200);
    const used = await new BrowserSession(sesame.baseUrl).request(linkPath(next));
    expect(used.status).toBe(410);
    expect(used.text).toContain('This link was already used');
    expect(used.text).toContain('<a href="/recover">Ask for a new link</a>');

    // A link an administrator gave is theirs to give again.
    const handedOut = await issueRecoveryLink(sesame.db, sesame.config, 'late@example.com', 'cli:test');
    await sesame.db
      .updateTable('one_time_tokens')
      .set({ expires_at: new Date(Date.now() - 60_000) })
      .where('created_by', '=', 'cli:test')
      .where('email', '=', 'late@example.com')
      .execute();
    const theirs = await new BrowserSession(sesame.baseUrl).request(linkPath(handedOut!.url));
    expect(theirs.status).toBe(410);
    expect(theirs.text).toContain('Ask an administrator for a new link.');
    expect(theirs.text).not.toContain('href="/recover"');
  });

  it("speaks German for Accept-Language: de, and mails in the language the account chose, else the request's", async () => {
    const browser = new BrowserSession(sesame.baseUrl);
    browser.headers['accept-language'] = 'de';
    const form = await browser.request('/recover');
    expect(form.headers.get('content-language')).toBe('de');
    expect(form.text).toContain('<h1>Passkey verloren?</h1>');
    expect(form.text).toContain('<label for="email">E-Mail</label>');
    expect(form.text).toContain('Ihres Kontos bei Acme');

    const french = await usersQueries.insert(sesame.db, { email: 'francais@example.com', name: null });
    await usersQueries.setLocale(sesame.db, french.id, 'fr');
    await usersQueries.insert(sesame.db, { email: 'deutsch@example.com', name: null });
    for (const email of ['francais@example.com', 'deutsch@example.com']) {
      const sent = await askForLink(sesame, email, browser);
      expect(sent.text).toContain('<h1>Sehen Sie in Ihr Postfach</h1>');
    }

    const [fr] = await mail.waitFor('francais@example.com');
    expect(fr!.subject).toBe('Ajoutez une clé d’accès à votre compte Acme');
    expect(fr!.text).toContain(
      'Quelqu’un a demandé un lien pour ajouter une clé d’accès au compte Acme de francais@example.com.',
    );
    expect(fr!.html).toContain('<html lang="fr">');
    expect(fr!.html).toContain('<strong>francais@example.com</strong>');
    linkIn(fr!);
    const [de] = await mail.waitFor('deutsch@example.com');
    expect(de!.subject).toBe('Fügen Sie Ihrem Konto bei Acme einen Passkey hinzu');
  });

  it('refuses bad input with a clear 4xx and queues nothing', async () => {
    const before = await countRows(sesame.db, 'mail_outbox');
    const browser = new BrowserSession(sesame.baseUrl);
    const form = await browser.request('/recover');
    const bad = await browser.request('/recover', { form: { _csrf: form.csrf(), email: 'not-an-address' } });
    expect(bad.status).toBe(400);
    expect(bad.text).toContain('id="email-error"');
    expect(bad.text).toContain('Enter a valid email address');
    expect(autofocusedField(bad.text)).toEqual({ id: 'email', invalid: true, describedBy: 'email-error' });
    expect(autofocusedField(form.text)).toBeUndefined();
    const long = await browser.request('/recover', {
      form: { _csrf: form.csrf(), email: `${'a'.repeat(5000)}@example.com` },
    });
    expect(long.status).toBe(400);
    const noCsrf = await browser.request('/recover', { form: { email: 'owner@example.com' } });
    expect(noCsrf.status).toBe(403);
    const foreign = await browser.request('/recover', {
      form: { _csrf: form.csrf(), email: 'owner@example.com' },
      headers: { origin: 'https://evil.example' },
    });
    expect(foreign.status).toBe(403);
    const json = await browser.request('/recover', {
      body: '{"email":',
      headers: { 'content-type': 'application/json' },
    });
    expect(json.status).toBeGreaterThanOrEqual(400);
    expect(json.status).toBeLessThan(500);
    await sleep(300);
    expect(await countRows(sesame.db, 'mail_outbox')).toBe(before);
  });
});

describe('"Lost your passkey?" for an administrator', () => {
  let mail: MailServer;
  let sesame: TestApp;
  let stop: () => Promise<void>;

  beforeAll(async () => {
    ({ mail, sesame, stop } = await startAppWithMail());
  });

  afterAll(() => stop?.());

  /** The one-time links made for `email`. */
  const linksFor = (email: string) =>
    sesame.db.selectFrom('one_time_tokens').selectAll().where('email', '=', email).execute();

  /** The audit entries about the account `userId`: action and details. */
  const auditOf = (userId: string) =>
    sesame.db
      .selectFrom('audit_events')
      .select(['actor', 'action', 'details'])
      .where('target', '=', userId)
      .orderBy('id')
      .execute();

  it("makes no link for an administrator's address but mails a notice that says how to get back in, and answers as for anyone", async () => {
    const admin = await usersQueries.insert(sesame.db, {
      email: 'boss@example.com',
      name: null,
      isAdmin: true,
      emailVerified: true,
    });
    await usersQueries.insert(sesame.db, { email: 'staff@example.com', name: null, emailVerified: true });

    // The same redirect and cookies for the three addresses, and the same answer page.
    const posts = [];
    const answers = [];
    for (const email of ['boss@example.com', 'staff@example.com', 'nobody-boss@example.com']) {
      const browser = new BrowserSession(sesame.baseUrl);
      const posted = await postForLink(sesame, email, browser);
      expect(posted.status).toBe(303);
      expect(posted.location()).toBe(`${sesame.baseUrl}/recover/sent`);
      posts.push(browser.setCookieHeaders.map((header) => header.split('=')[0]).sort());
      const answer = await browser.request(posted.location()!);
      expect(answer.status).toBe(200);
      answers.push(answerText(answer.text, email));
    }
    expect(posts[0]).toEqual(posts[1]);
    expect(posts[0]).toEqual(posts[2]);
    expect(answers[0]).toContain('Check your mail');
    expect(answers[0]).toBe(answers[1]);
    expect(answers[0]).toBe(answers[2]);

    // The administrator gets a notice, with no link in it; the other account its link.
    const [notice] = await mail.waitFor('boss@example.com');
    expect(notice!.subject).toBe('Administrators of Acme are not recovered by mail');
    expect(notice!.text).toContain(
      'Someone asked for a link to add a passkey to the Acme account of boss@example.com.',
    );
    expect(notice!.text).toContain('no link was sent');
    expect(notice!.text).toContain('another administrator can give you a recovery link: Admin → Users');
    expect(notice!.text).toContain(`${sesame.baseUrl}/admin/users`);
    expect(notice!.text).toContain("sesame users invite --email 'boss@example.com'");
    expect(notice!.html).toContain('<code>sesame users invite --email &#39;boss@example.com&#39;</code>');
    expect(() => linkIn(notice!)).toThrow();
    linkIn((await mail.waitFor('staff@example.com'))[0]!);
    await sleep(300);
    expect(await linksFor('boss@example.com')).toHaveLength(0);
    expect(mail.to('boss@example.com')).toHaveLength(1);
    expect(mail.to('nobody-boss@example.com')).toHaveLength(0);

    // The audit log says what happened where a link would have been made.
    const audit = await auditOf(admin.id);
    expect(audit).toEqual([
      {
        actor: 'self-service',
        action: 'link.recovery.refused',
        details: expect.objectContaining({
          email: 'boss@example.com',
          reason: 'administrator',
          notice: true,
        }),
      },
    ]);
    // Still an administrator, with nothing else changed.
    expect((await usersQueries.findById(sesame.db, admin.id))!.is_admin).toBe(true);

    // Made an administrator between the lookup and the link: no self-service link either.
    await expect(
      createOneTimeLink(sesame.db, sesame.config, {
        email: 'boss@example.com',
        purpose: 'recovery',
        actor: SELF_SERVICE_ACTOR,
        selfService: true,
      }),
    ).rejects.toMatchObject({ status: 409 });
    expect(await linksFor('boss@example.com')).toHaveLength(0);
  });

  it("writes the notice in the administrator's language, else the request's", async () => {
    const german = await usersQueries.insert(sesame.db, {
      email: 'chefin@example.com',
      name: null,
      isAdmin: true,
      emailVerified: true,
    });
    await usersQueries.setLocale(sesame.db, german.id, 'de');
    await usersQueries.insert(sesame.db, { email: 'patron@example.com', name: null, isAdmin: true });
    const french = new BrowserSession(sesame.baseUrl);
    french.headers['accept-language'] = 'fr';
    for (const email of ['chefin@example.com', 'patron@example.com']) await askForLink(sesame, email, french);

    const [de] = await mail.waitFor('chefin@example.com');
    expect(de!.subject).toBe('Administratoren von Acme werden nicht per E-Mail wiederhergestellt');
    expect(de!.text).toContain("sesame users invite --email 'chefin@example.com'");
    expect(de!.html).toContain('<html lang="de">');
    const [fr] = await mail.waitFor('patron@example.com');
    expect(fr!.subject).toBe('Les administrateurs de Acme ne sont pas récupérés par e-mail');
    expect(fr!.text).toContain("sesame users invite --email 'patron@example.com'");
    expect(await linksFor('chefin@example.com')).toHaveLength(0);
    expect(await linksFor('patron@example.com')).toHaveLength(0);
  });

  it('refuses a self-service link mailed before the account was made an administrator, and changes nothing', async () => {
    const { person: owner, userId } = await onboard(sesame, 'rising@example.com');
    await askForLink(sesame, 'rising@example.com');
    const url = linkIn((await mail.waitFor('rising@example.com', 2))[1]!);
    // Whoever reads the mailbox opens the link and starts a passkey before the promotion...
    const reader = new Person(sesame.baseUrl);
    const pending = await prepareLinkUse(reader, url);
    expect(typeof pending).toBe('function');
    await promoteUser(sesame.db, sesame.config, 'rising@example.com', 'cli:test');
    const passkeysBefore = await sesame.db
      .selectFrom('credentials')
      .select('id')
      .where('user_id', '=', userId)
      .execute();

    // ...and posts it after: refused.
    const used = await (pending as () => Promise<PageResponse>)();
    expect(used.status).toBe(403);
    expect(used.json()).toMatchObject({ error: 'admin_self_recovery' });
    // Opened now, the link says so at once, and points nowhere near "Lost your passkey?".
    const opened = await new BrowserSession(sesame.baseUrl).request(linkPath(url));
    expect(opened.status).toBe(403);
    expect(opened.text).toContain('This link does not recover an administrator');
    expect(opened.text).not.toContain('href="/recover"');
    const again = await useLink(new Person(sesame.baseUrl), url, undefined, { removeOtherPasskeys: true });
    expect(again.status).toBe(403);

    // Nothing changed: the link is unused, the passkeys and the sign-in are the owner's.
    const [link] = await linksFor('rising@example.com').then((links) =>
      links.filter((row) => row.created_by === 'self-service'),
    );
    expect(link!.used_at).toBeNull();
    const passkeysAfter = await sesame.db
      .selectFrom('credentials')
      .select('id')
      .where('user_id', '=', userId)
      .execute();
    expect(passkeysAfter).toEqual(passkeysBefore);
    expect((await usersQueries.findById(sesame.db, userId))!.is_admin).toBe(true);
    expect((await owner.browser.request('/account')).status).toBe(200);
    expect((await auditOf(userId)).map((entry) => entry.action)).not.toContain('link.recovery.use');
  });

  // Postgres only: the row lock it waits at holds PGlite's one connection (rowLocks.ts).
  (onPostgres ? it : it.skip)(
    'refuses a self-service link when the account is made an administrator while its passkey is being stored',
    async () => {
      const { userId } = await onboard(sesame, 'midway@example.com');
      await askForLink(sesame, 'midway@example.com');
      const url = linkIn((await mail.waitFor('midway@example.com', 2))[1]!);
      const pending = await prepareLinkUse(new Person(sesame.baseUrl), url);
      expect(typeof pending).toBe('function');
      const passkeys = () =>
        sesame.db.selectFrom('credentials').select('id').where('user_id', '=', userId).execute();
      const before = await passkeys();

      // The promotion holds the account's row: the link's use has found the link usable and waits
      // for the account, then finds an administrator.
      const used = await meanwhileAtLock(
        sesame.db,
        (trx) => trx.updateTable('users').set({ is_admin: true }).where('id', '=', userId).execute(),
        () => (pending as () => Promise<PageResponse>)(),
        async () => {},
      );
      expect(used.status).toBe(403);
      expect(used.json()).toMatchObject({ error: 'admin_self_recovery' });
      expect(await passkeys()).toEqual(before);
      const links = await linksFor('midway@example.com');
      expect(links.find((row) => row.created_by === 'self-service')!.used_at).toBeNull();
    },
  );

  it("keeps an administrator's and the CLI's recovery links for an administrator working", async () => {
    const other = await usersQueries.insert(sesame.db, {
      email: 'other-admin@example.com',
      name: null,
      isAdmin: true,
      emailVerified: true,
    });
    const { userId } = await onboard(sesame, 'chief@example.com', { admin: true });
    for (const actor of [`user:${other.id}`, 'cli:test']) {
      const handed = await issueRecoveryLink(sesame.db, sesame.config, 'chief@example.com', actor);
      const person = new Person(sesame.baseUrl);
      expect((await useLink(person, handed!.url)).status).toBe(200);
      expect((await person.browser.request('/account')).status).toBe(200);
    }
    expect((await usersQueries.findById(sesame.db, userId))!.is_admin).toBe(true);
  });
});

describe('"Lost your passkey?" limits', () => {
  let mail: MailServer;
  let sesame: TestApp;
  let stop: () => Promise<void>;

  beforeAll(async () => {
    // Behind a proxy, as in production: X-Forwarded-For names the client, when a test sets it.
    ({ mail, sesame, stop } = await startAppWithMail({ RATE_LIMIT_PER_MINUTE: '600', TRUST_PROXY: 'true' }));
  });

  afterAll(() => stop?.());

  /** A browser whose requests come from client address `ip`. */
  const from = (ip: string) => {
    const browser = new BrowserSession(sesame.baseUrl);
    browser.headers['x-forwarded-for'] = ip;
    return browser;
  };

  /** The recovery mails queued for `email`, oldest first. */
  const queuedFor = (email: string) =>
    sesame.db
      .selectFrom('mail_outbox')
      .select(['id', 'sent_at'])
      .where('to_address', '=', email)
      .orderBy('created_at')
      .orderBy('id')
      .execute();

  /** Waits until `count` mails are queued for `email` (the answer does not wait for them). */
  async function waitForQueued(email: string, count: number) {
    for (const until = Date.now() + 20_000; (await queuedFor(email)).length < count && Date.now() < until; )
      await sleep(50);
    expect(await queuedFor(email)).toHaveLength(count);
  }

  it('limits requests per address from one client IP (3 in 15 minutes) and per client IP (10)', async () => {
    await usersQueries.insert(sesame.db, { email: 'target@example.com', name: null });
    const statuses: number[] = [];
    for (let i = 0; i < 4; i += 1) statuses.push((await askForLink(sesame, 'Target@example.com')).status);
    expect(statuses).toEqual([200, 200, 200, 429]);
    // Three links were mailed; each cancelled the one before, whose mail goes only if it went
    // before that (the outbox gives up a mail whose link was cancelled): the newest arrives.
    // The answer does not wait for the link (the same answer, as soon, for any address).
    await waitForQueued('target@example.com', 3);
    await mail.waitFor('target@example.com', 1);
    for (let i = 0; i < 6; i += 1) expect((await askForLink(sesame, `n${i}@example.com`)).status).toBe(200);
    expect((await askForLink(sesame, 'n7@example.com')).status).toBe(429);
    await sleep(500);
    expect(await queuedFor('target@example.com')).toHaveLength(3);
  });

  it('counts an address per requester: a stranger who posts it until refused does not keep its owner from a link', async () => {
    await usersQueries.insert(sesame.db, { email: 'victim@example.com', name: null });
    // The stranger, on one IPv6 /64, asks for the owner's address and for one with no account.
    const stranger = (host: number) => from(`2001:db8:bad:1::${host}`);
    const statuses: number[] = [];
    for (let i = 0; i < 4; i += 1)
      statuses.push((await askForLink(sesame, 'victim@example.com', stranger(i + 1))).status);
    expect(statuses).toEqual([200, 200, 200, 429]);
    const refused = await askForLink(sesame, 'Victim@example.com', stranger(9));
    expect(refused.status).toBe(429);
    for (let i = 0; i < 3; i += 1) await askForLink(sesame, 'no-account@example.com', stranger(1));
    const refusedUnknown = await askForLink(sesame, 'no-account@example.com', stranger(1));
    // The refusal says the same for an address with an account and one without, and sends nothing.
    expect(refusedUnknown.status).toBe(429);
    expect(answerText(refused.text, 'Victim@example.com')).toBe(
      answerText(refusedUnknown.text, 'no-account@example.com'),
    );
    expect(refused.text).toContain('Too many requests. Try again in 15 minutes.');
    await waitForQueued('victim@example.com', 3);
    await sleep(300);
    expect(await queuedFor('victim@example.com')).toHaveLength(3);

    // The owner, from another network, asks and gets a link that works.
    const owner = await askForLink(sesame, 'victim@example.com', from('2001:db8:600d:2::1'));
    expect(owner.status).toBe(200);
    expect(owner.text).toContain('Check your mail');
    await waitForQueued('victim@example.com', 4);
    for (
      const until = Date.now() + 20_000;
      !(await queuedFor('victim@example.com'))[3]!.sent_at && Date.now() < until;
    )
      await sleep(50);
    expect((await queuedFor('victim@example.com'))[3]!.sent_at).not.toBeNull();
    const received = mail.to('victim@example.com').at(-1)!;
    expect(received.subject).toBe('Add a passkey to your Acme account');
    expect((await useLink(new Person(sesame.baseUrl), linkIn(received))).status).toBe(200);
  });

  it("does not count a requester's refused requests against the address's cap from everyone", async () => {
    await usersQueries.insert(sesame.db, { email: 'patient@example.com', name: null });
    // Two strangers each post the owner's address as often as their per-IP limit lets them:
    // 3 accepted each, 7 refused each by their own count, none of those 14 charged to the cap.
    for (const stranger of ['198.51.100.1', '198.51.100.2']) {
      const statuses: number[] = [];
      for (let i = 0; i < 10; i += 1)
        statuses.push((await postForLink(sesame, 'patient@example.com', from(stranger))).status);
      expect(statuses).toEqual([303, 303, 303, ...Array(7).fill(429)]);
    }
    // Checked in the other order, the 20 would be used up by now and the owner refused.
    expect((await postForLink(sesame, 'patient@example.com', from('198.51.100.3'))).status).toBe(303);
    await waitForQueued('patient@example.com', 7);
  });

  it("limits requests for an administrator's address as for anyone's: the notices are bounded as the links are", async () => {
    await usersQueries.insert(sesame.db, { email: 'admin-target@example.com', name: null, isAdmin: true });
    const statuses: number[] = [];
    for (let i = 0; i < 4; i += 1)
      statuses.push((await askForLink(sesame, 'admin-target@example.com', from('203.0.113.7'))).status);
    expect(statuses).toEqual([200, 200, 200, 429]);
    await waitForQueued('admin-target@example.com', 3);
    await sleep(300);
    expect(await queuedFor('admin-target@example.com')).toHaveLength(3);
    const links = await sesame.db
      .selectFrom('one_time_tokens')
      .select('id')
      .where('email', '=', 'admin-target@example.com')
      .execute();
    expect(links).toHaveLength(0);
  });

  it('still caps the mail to one address from many requesters together: 20 an hour', async () => {
    await usersQueries.insert(sesame.db, { email: 'crowd@example.com', name: null });
    const statuses: number[] = [];
    for (let requester = 1; requester <= 7; requester += 1)
      for (let i = 0; i < 3; i += 1)
        statuses.push((await postForLink(sesame, 'crowd@example.com', from(`192.0.2.${requester}`))).status);
    expect(statuses).toEqual([...Array(20).fill(303), 429]);
    // Anyone else is refused too, for up to the hour, and nothing more is queued.
    const late = await postForLink(sesame, 'crowd@example.com', from('192.0.2.99'));
    expect(late.status).toBe(429);
    expect(Number(late.headers.get('retry-after'))).toBeGreaterThan(15 * 60);
    expect(Number(late.headers.get('retry-after'))).toBeLessThanOrEqual(60 * 60);
    await waitForQueued('crowd@example.com', 20);
    await sleep(300);
    expect(await queuedFor('crowd@example.com')).toHaveLength(20);
  });
});

describe('"Lost your passkey?" turned off', () => {
  it('is neither linked nor served with SELF_RECOVERY=off, nor without SMTP_URL', async () => {
    for (const env of [
      { SMTP_URL: 'smtp://127.0.0.1:9', MAIL_FROM: 'a@acme.test', SELF_RECOVERY: 'off' },
      {} as Record<string, string>,
    ]) {
      const sesame = await startTestApp(env);
      try {
        const page = await signInPage(sesame);
        expect(page).toContain('Sign in with a passkey');
        expect(page).not.toContain('Lost your passkey?');
        const browser = new BrowserSession(sesame.baseUrl);
        expect((await browser.request('/recover')).status).toBe(404);
        expect((await browser.request('/recover', { form: { email: 'a@example.com' } })).status).toBe(404);
        expect((await browser.request('/recover/sent')).status).toBe(404);
      } finally {
        await sesame.stop();
      }
    }
  });
});
