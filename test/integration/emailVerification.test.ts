import { configFrom } from '../../src/config.js';
import { usersQueries } from '../../src/db/queries/users.js';
import { createClient } from '../../src/oidc/clients.js';
import { asPage } from '../support/browser.js';
import { countRows } from '../support/countRows.js';
import { type MailServer, type ReceivedMail, startAppWithMail } from '../support/mailServer.js';
import { beginLogin, discoverRp, finishLogin, Person, type TestRp } from '../support/oidcFlow.js';
import type { TestApp } from '../support/testApp.js';

const REDIRECT_URI = 'http://127.0.0.1:8931/callback';

/** The verification link in a welcome mail. */
function verifyLinkIn(mail: ReceivedMail): string {
  const link = /https?:\/\/\S+\/verify\/[A-Za-z0-9_-]{43}/.exec(mail.text)?.[0];
  if (!link) throw new Error(`no verification link in "${mail.subject}"`);
  return new URL(link).pathname;
}

async function startWithMail(signup: string) {
  const { mail, sesame } = await startAppWithMail({ SIGNUP: signup });
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
    // The older link stopped working; the new one verifies.
    expect((await person.browser.request(verifyLinkIn(mails[0]!))).status).toBe(404);
    expect((await person.browser.request(verifyLinkIn(mails[1]!))).status).toBe(200);

    const again = await beginLogin(rp, 'openid email');
    const tokens = await finishLogin(rp, again, await person.continueToApp(again.url, REDIRECT_URI));
    expect(tokens.claims()).toMatchObject({ email: 'grace@example.com', email_verified: true });
  });
});
