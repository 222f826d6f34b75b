import { setTimeout as sleep } from 'node:timers/promises';
import { sql } from 'kysely';
import { resendWelcomeMail, verifyEmailWithLink } from '../../src/accounts/emailVerification.js';
import { configFrom } from '../../src/config.js';
import { sha256Hex } from '../../src/crypto.js';
import { emailVerificationsQueries } from '../../src/db/queries/emailVerifications.js';
import { usersQueries } from '../../src/db/queries/users.js';
import { WELCOME_RESENDS_PER_ADDRESS } from '../../src/http/middleware/rateLimit.js';
import { createClient } from '../../src/oidc/clients.js';
import { asPage } from '../support/browser.js';
import { countRows } from '../support/countRows.js';
import { type MailServer, type ReceivedMail, startAppWithMail } from '../support/mailServer.js';
import { beginLogin, discoverRp, finishLogin, Person, type TestRp } from '../support/oidcFlow.js';
import { holdRow, untilWaitingForLocks } from '../support/rowLocks.js';
import { startTestApp, type TestApp } from '../support/testApp.js';
import { onPostgres } from '../support/testDatabase.js';

const REDIRECT_URI = 'http://127.0.0.1:8931/callback';

/** The verification link in a welcome mail. */
function verifyLinkIn(mail: ReceivedMail): string {
  const link = /https?:\/\/\S+\/verify\/[A-Za-z0-9_-]{43}/.exec(mail.text)?.[0];
  if (!link) throw new Error(`no verification link in "${mail.subject}"`);
  return new URL(link).pathname;
}

async function startWithMail(signup: string, env: Record<string, string> = {}) {
  const { mail, sesame } = await startAppWithMail({ SIGNUP: signup, ...env });
  const { client, client_secret } = await createClient(
    sesame.db,
    { name: 'Wiki', redirect_uris: [REDIRECT_URI] },
    'test',
  );
  const rp = await discoverRp(sesame.baseUrl, { client_id: client.client_id, client_secret }, REDIRECT_URI);
  return { mail, sesame, rp };
}

describe('the welcome mail of open sign-up (SIGNUP=open)', () => {
  let mail: MailServer;
  let sesame: TestApp;
  let rp: TestRp;

  beforeAll(async () => {
    ({ mail, sesame, rp } = await startWithMail('open'));
  });

  afterAll(async () => {
    await sesame?.stop();
    await mail?.stop();
  });

  it('mails a link that sets email_verified: true when the account opens it in its own signed-in browser', async () => {
    const person = new Person(sesame.baseUrl);
    const pending = await beginLogin(rp, 'openid email');
    const next = await person.signUp(await person.open(pending.url), 'ada@example.com');
    const first = await finishLogin(rp, pending, await person.continueToApp(next, REDIRECT_URI));
    expect(first.claims()).toMatchObject({ email: 'ada@example.com', email_verified: false });

    const [welcome] = await mail.waitFor('ada@example.com');
    expect(welcome!.subject).toBe('Welcome to Acme: confirm your email address');
    expect(welcome!.text).not.toContain('Apps let you in');
    expect(welcome!.html).toContain('Confirm my email address');
    const path = verifyLinkIn(welcome!);

    // Someone else's signed-in browser verifies nothing; a browser signed in to no account is sent to sign in.
    const stranger = new Person(sesame.baseUrl);
    const strangerPending = await beginLogin(rp, 'openid');
    await stranger.continueToApp(
      await stranger.signUp(await stranger.open(strangerPending.url), 'stranger@example.com'),
      REDIRECT_URI,
    );
    const foreign = await stranger.browser.request(path);
    expect(foreign.status).toBe(403);
    expect(foreign.text).toContain('This link is for another account');
    const anonymous = await new Person(sesame.baseUrl).browser.request(path);
    expect(anonymous.status).toBe(302);
    expect(anonymous.location()).toContain('/account/login?return_to=');
    expect((await usersQueries.findByEmail(sesame.db, 'ada@example.com'))!.email_verified).toBe(false);

    const verified = await person.browser.request(path);
    expect(verified.status).toBe(200);
    expect(verified.text).toContain('Email address confirmed');
    expect((await usersQueries.findByEmail(sesame.db, 'ada@example.com'))!.email_verified).toBe(true);
    expect((await person.browser.request(path)).status).toBe(410);

    const again = await beginLogin(rp, 'openid email');
    const tokens = await finishLogin(
      rp,
      again,
      await person.continueToApp(
        await person.signIn(await person.open(`${again.url}&prompt=login`)),
        REDIRECT_URI,
      ),
    );
    expect(tokens.claims()).toMatchObject({ email: 'ada@example.com', email_verified: true });
  });

  it('refuses a malformed or unknown token with 404, changing nothing', async () => {
    const person = new Person(sesame.baseUrl);
    const pending = await beginLogin(rp, 'openid');
    await person.continueToApp(
      await person.signUp(await person.open(pending.url), 'bad@example.com'),
      REDIRECT_URI,
    );
    const audit = await countRows(sesame.db, 'audit_events');
    for (const token of ['short', 'A'.repeat(43), `${'A'.repeat(43)}x`, '%00'.repeat(20)]) {
      expect((await person.browser.request(`/verify/${token}`)).status).toBe(404);
    }
    expect(await countRows(sesame.db, 'audit_events')).toBe(audit);
  });

  it("writes the welcome mail and the link's pages in the sign-up's language", async () => {
    const person = new Person(sesame.baseUrl);
    person.browser.headers['accept-language'] = 'de';
    const pending = await beginLogin(rp, 'openid');
    const consent = await person.signUp(await person.open(pending.url), 'grete@example.com');
    // The test's steps to the app read English pages; the mail was queued at sign-up.
    delete person.browser.headers['accept-language'];
    await person.continueToApp(consent, REDIRECT_URI);
    person.browser.headers['accept-language'] = 'de';
    const [welcome] = await mail.waitFor('grete@example.com');
    expect(welcome!.subject).toBe('Willkommen bei Acme: Bestätigen Sie Ihre E-Mail-Adresse');
    expect(welcome!.html).toContain('Meine E-Mail-Adresse bestätigen');
    const path = verifyLinkIn(welcome!);

    const invalid = await person.browser.request(`/verify/${'A'.repeat(43)}`);
    expect(invalid.status).toBe(404);
    expect(invalid.text).toContain('Dieser Link ist ungültig');
    expect(invalid.text).toContain('Zu Ihrem Konto');
    const verified = await person.browser.request(path);
    expect(verified.status).toBe(200);
    expect(verified.text).toContain('<h1>E-Mail-Adresse bestätigt</h1>');
  });
});

describe('a new link from the account page, for an address whose link expired', () => {
  let mail: MailServer;
  let sesame: TestApp;
  let rp: TestRp;

  beforeAll(async () => {
    // The limits count: the new link is limited per address like the sign-in's "Send the link again".
    ({ mail, sesame, rp } = await startWithMail('open', { RATE_LIMIT_PER_MINUTE: '1000' }));
  });

  afterAll(async () => {
    await sesame?.stop();
    await mail?.stop();
  });

  /** A person who signed up for the app with `email`, and the path of their welcome link. */
  async function signedUp(email: string) {
    const person = new Person(sesame.baseUrl);
    const pending = await beginLogin(rp, 'openid email');
    await person.continueToApp(await person.signUp(await person.open(pending.url), email), REDIRECT_URI);
    const [welcome] = await mail.waitFor(email);
    return { person, path: verifyLinkIn(welcome!) };
  }

  it('sweeps links a month past their end, used or not, and keeps the others', async () => {
    const user = await usersQueries.insert(sesame.db, { email: 'swept@example.com', name: null });
    const day = 86_400_000;
    const link = (tag: string, endedDaysAgo: number, used: boolean) => ({
      user_id: user.id,
      email: user.email,
      token_hash: sha256Hex(`swept-${tag}`),
      expires_at: new Date(Date.now() - endedDaysAgo * day),
      used_at: used ? new Date(Date.now() - (endedDaysAgo + 1) * day) : null,
    });
    await sesame.db
      .insertInto('email_verifications')
      .values([
        link('old', 31, false),
        link('old-used', 40, true),
        link('recent', 29, true),
        link('live', -1, false),
      ])
      .execute();
    expect(await emailVerificationsQueries.deleteExpiredBefore(sesame.db, 30)).toBe(2);
    const left = await sesame.db
      .selectFrom('email_verifications')
      .select('token_hash')
      .where('user_id', '=', user.id)
      .execute();
    expect(left.map((row) => row.token_hash).sort()).toEqual(
      [sha256Hex('swept-recent'), sha256Hex('swept-live')].sort(),
    );
  });

  it("says where to get one on the expired link, and sends it from the account page to the account's own address", async () => {
    const { person, path } = await signedUp('late@example.com');
    await sesame.db
      .updateTable('email_verifications')
      .set({ expires_at: new Date(Date.now() - 60_000) })
      .where('email', '=', 'late@example.com')
      .execute();
    const expired = await person.browser.request(path);
    expect(expired.status).toBe(410);
    expect(expired.text).toContain('Go to your account and choose &quot;Send a new link&quot;.');
    expect(expired.text).toContain('<a href="/account">Go to your account</a>');

    const account = asPage(await person.browser.follow('/account'));
    expect(account.text).toContain('Your email address is not confirmed yet');
    expect(account.text).toContain('<form method="post" action="/account/verify-email">');
    const sent = await person.browser.request('/account/verify-email', { form: { _csrf: account.csrf() } });
    expect(sent.status).toBe(303);
    expect(new URL(sent.location()!).pathname + new URL(sent.location()!).search).toBe(
      '/account?verification=sent',
    );
    const after = asPage(await person.browser.follow(sent.location()!));
    expect(after.text).toContain('We sent a new link to late@example.com');

    // A mail of its own, which asks to confirm the address and does not welcome the person again.
    const mails = await mail.waitFor('late@example.com', 2);
    expect(mails[1]!.subject).toBe('Confirm your email address for Acme');
    expect(mails[1]!.text).toContain(
      'You asked for a new link to confirm that late@example.com is the address of your Acme account.',
    );
    expect(mails[1]!.html).toContain('<strong>late@example.com</strong> is the address of your Acme account');
    expect(mails[1]!.html).toContain('Confirm my email address');
    for (const part of [mails[1]!.subject, mails[1]!.text, mails[1]!.html])
      expect(part).not.toMatch(/welcome|is ready/i);
    expect((await person.browser.request(verifyLinkIn(mails[1]!))).status).toBe(200);
    expect((await usersQueries.findByEmail(sesame.db, 'late@example.com'))!.email_verified).toBe(true);

    // Confirmed: the page offers no link any more, and asking anyway sends none.
    const confirmed = asPage(await person.browser.follow('/account'));
    expect(confirmed.text).not.toContain('/account/verify-email');
    const again = await person.browser.request('/account/verify-email', {
      form: { _csrf: confirmed.csrf() },
      headers: { accept: 'application/json' },
    });
    expect(again.status).toBe(409);
    expect(again.json()).toMatchObject({ error: 'conflict' });
    // Without a sign-in or the form's token nothing is sent either.
    const anonymous = await new Person(sesame.baseUrl).browser.request('/account/verify-email', {
      form: { _csrf: 'x' },
    });
    expect(anonymous.status).toBeGreaterThanOrEqual(300);
    expect(anonymous.status).toBeLessThan(500);
    await sleep(500);
    expect(mail.to('late@example.com')).toHaveLength(2);
  });

  // Postgres only: the embedded database serves one connection, so the row held here would stop everything.
  (onPostgres ? it : it.skip)(
    'uses the welcome link and sends a new one at once, one after the other, without a deadlock',
    async () => {
      const { path } = await signedUp('both@example.com');
      const account = (await usersQueries.findByEmail(sesame.db, 'both@example.com'))!;

      // The link's use waits for the account's row; the new link behind it, never holding the
      // older link the use needs next.
      const release = await holdRow(sesame.db, sql`select id from users where id = ${account.id} for update`);
      const verified = verifyEmailWithLink(sesame.db, path.split('/').at(-1)!, account);
      await untilWaitingForLocks(sesame.db, 1);
      const resent = resendWelcomeMail(sesame.db, sesame.config, account);
      await untilWaitingForLocks(sesame.db, 2);
      await release();

      expect(await verified).toMatchObject({ id: account.id, email_verified: true });
      await resent;
      const links = await sesame.db
        .selectFrom('email_verifications')
        .select('used_at')
        .where('user_id', '=', account.id)
        .orderBy('created_at')
        .execute();
      expect(links).toEqual([{ used_at: expect.any(Date) }, { used_at: null }]);
    },
  );

  it('sends no more than a few new links per address', async () => {
    const { person } = await signedUp('eager@example.com');
    const account = asPage(await person.browser.follow('/account'));
    const statuses: number[] = [];
    for (let i = 0; i <= WELCOME_RESENDS_PER_ADDRESS.points; i++) {
      const sent = await person.browser.request('/account/verify-email', { form: { _csrf: account.csrf() } });
      statuses.push(sent.status);
    }
    expect(statuses).toEqual([...Array(WELCOME_RESENDS_PER_ADDRESS.points).fill(303), 429]);
    // Each new link replaces the one before, whose mail goes only if it went already: the newest arrives.
    const queued = () =>
      sesame.db
        .selectFrom('mail_outbox')
        .select(['sent_at', 'next_attempt_at'])
        .where('to_address', '=', 'eager@example.com')
        .orderBy('created_at')
        .execute();
    expect(await queued()).toHaveLength(1 + WELCOME_RESENDS_PER_ADDRESS.points);
    while ((await queued()).some((row) => row.next_attempt_at !== null)) await sleep(50);
    expect((await queued()).at(-1)!.sent_at).not.toBeNull();
    const newest = mail.to('eager@example.com').at(-1)!;
    expect((await person.browser.request(verifyLinkIn(newest))).status).toBe(200);
  });

  it('without mail, says how else the address gets confirmed, and sends nothing', async () => {
    const plain = await startTestApp();
    try {
      const person = new Person(plain.baseUrl);
      const page = asPage(await person.browser.follow('/account'));
      const account = asPage(
        await person.signUp(page, 'nomail@example.com').then((next) => person.browser.follow(next)),
      );
      expect(account.text).toContain('Your email address is not confirmed yet');
      expect(account.text).toContain('Ask an administrator for a recovery link');
      expect(account.text).not.toContain('action="/account/verify-email"');
      const refused = await person.browser.request('/account/verify-email', {
        form: { _csrf: account.csrf() },
        headers: { accept: 'application/json' },
      });
      expect(refused.status).toBe(409);
      expect(refused.json()).toMatchObject({ error: 'mail_not_configured' });
    } finally {
      await plain.stop();
    }
  });
});

describe('SIGNUP=open-verified', () => {
  let mail: MailServer;
  let sesame: TestApp;
  let rp: TestRp;

  beforeAll(async () => {
    ({ mail, sesame, rp } = await startWithMail('open-verified'));
  });

  afterAll(async () => {
    await sesame?.stop();
    await mail?.stop();
  });

  it('needs mail', () => {
    expect(() => configFrom({ SIGNUP: 'open-verified' })).toThrow(/^SIGNUP=open-verified needs SMTP_URL/);
    expect(() => configFrom({ SIGNUP: 'closed' })).toThrow(/^SIGNUP must be/);
  });

  it('lets an account into apps only once its address is verified, and can send the link again', async () => {
    const person = new Person(sesame.baseUrl);
    const pending = await beginLogin(rp, 'openid email');
    const next = await person.signUp(await person.open(pending.url), 'grace@example.com');
    const page = asPage(await person.browser.follow(next));
    expect(page.status).toBe(403);
    expect(page.text).toContain('Confirm your email address');
    const [welcome] = await mail.waitFor('grace@example.com');
    expect(welcome!.text).toContain('Apps let you in once you have confirmed it.');

    // Sesame's own account pages still let the person in.
    expect(asPage(await person.browser.follow('/account')).status).toBe(200);

    const uid = /action="\/interaction\/([^/]+)\/verify-email\/resend"/.exec(page.text)![1];
    const resent = await person.browser.request(`/interaction/${uid}/verify-email/resend`, {
      form: { _csrf: page.csrf() },
    });
    expect(resent.status).toBe(403);
    expect(resent.text).toContain('We sent a new link to grace@example.com');
    const mails = await mail.waitFor('grace@example.com', 2);
    expect(mails[1]!.subject).toBe('Confirm your email address for Acme');
    expect(mails[1]!.text).toContain('Apps let you in once you have confirmed it.');
    // The older link stopped working; the new one verifies.
    expect((await person.browser.request(verifyLinkIn(mails[0]!))).status).toBe(404);
    expect((await person.browser.request(verifyLinkIn(mails[1]!))).status).toBe(200);

    const again = await beginLogin(rp, 'openid email');
    const tokens = await finishLogin(rp, again, await person.continueToApp(again.url, REDIRECT_URI));
    expect(tokens.claims()).toMatchObject({ email: 'grace@example.com', email_verified: true });
  });
});
