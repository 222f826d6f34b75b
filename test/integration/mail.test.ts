import { setTimeout as sleep } from 'node:timers/promises';
import { createApiKey } from '../../src/admin/apiKeys.js';
import { configFrom } from '../../src/config.js';
import { createLogger } from '../../src/logger.js';
import { metricsRegistry } from '../../src/metrics.js';
import { asPage } from '../support/browser.js';
import { countRows } from '../support/countRows.js';
import { linkIn, type MailServer, startMailServer } from '../support/mailServer.js';
import { Person, stepUp } from '../support/oidcFlow.js';
import { linkPath, useLink } from '../support/oneTimeLinkFlow.js';
import { cliJsonOn } from '../support/sesameProcess.js';
import { startTestApp, type TestApp } from '../support/testApp.js';

/** Short waits between attempts, so retries happen within a test. */
const TEST_TIMING = { pollMs: 200, backoffMs: [300], timeoutMs: 5_000 };

/** The value of one series of sesame_mail_deliveries_total. */
async function deliveries(template: string, result: string): Promise<number> {
  const metric = await metricsRegistry.getSingleMetric('sesame_mail_deliveries_total')!.get();
  return metric.values.find((v) => v.labels.template === template && v.labels.result === result)?.value ?? 0;
}

describe('mail settings', () => {
  const base = { ISSUER: 'http://localhost:3000' };
  const fails = (env: Record<string, string>) => () => configFrom({ ...base, ...env });

  it('reads SMTP_URL with its user and password, or SMTP_USER and SMTP_PASSWORD over them', () => {
    const mail = configFrom({
      ...base,
      SMTP_URL: 'smtps://me%40x:p%2Fw@mail.example.com',
      MAIL_FROM: 'a@b.c',
    }).mail!;
    expect(mail).toEqual({
      host: 'mail.example.com',
      port: 465,
      secure: true,
      auth: { user: 'me@x', pass: 'p/w' },
      from: 'a@b.c',
    });
    const other = configFrom({
      ...base,
      SMTP_URL: 'smtp://mail.example.com:2525',
      SMTP_USER: 'u',
      SMTP_PASSWORD: 'p',
      MAIL_FROM: 'Sesame <sesame@example.com>',
    }).mail!;
    expect(other).toMatchObject({ port: 2525, secure: false, auth: { user: 'u', pass: 'p' } });
    expect(configFrom(base).mail).toBeUndefined();
    expect(configFrom(base).selfRecovery).toBe(false);
  });

  it('refuses to start on a bad value with one line naming the variable', () => {
    expect(fails({ SMTP_URL: 'http://mail.example.com', MAIL_FROM: 'a@b.c' })).toThrow(
      'SMTP_URL must be an smtp:// or smtps:// URL',
    );
    expect(fails({ SMTP_URL: 'not a url', MAIL_FROM: 'a@b.c' })).toThrow(/^SMTP_URL/);
    // A password with a bare %, as typed: "URI malformed" named no variable.
    for (const SMTP_URL of ['smtp://user:50%off@mail.example', 'smtp://%ZZ@mail.example'])
      expect(fails({ SMTP_URL, MAIL_FROM: 'a@b.c' })).toThrow(
        /^SMTP_URL's user name or password is not percent-encoded: write % as %25/,
      );
    expect(fails({ SMTP_URL: 'smtp://mail.example.com' })).toThrow(/^MAIL_FROM must be set/);
    expect(fails({ MAIL_FROM: 'a@b.c' })).toThrow(/^MAIL_FROM is set but SMTP_URL is not/);
    expect(fails({ SMTP_URL: 'smtp://m.example.com', MAIL_FROM: 'nobody' })).toThrow(
      /^MAIL_FROM must be an address/,
    );
    expect(fails({ SMTP_URL: 'smtp://m.example.com', MAIL_FROM: 'a@b.c', SELF_RECOVERY: 'maybe' })).toThrow(
      /^SELF_RECOVERY must be "on" or "off"/,
    );
  });
});

describe('invites and recovery links by mail', () => {
  let mail: MailServer;
  let sesame: TestApp;
  let apiKey: string;
  const logLines: string[] = [];

  beforeAll(async () => {
    mail = await startMailServer({ auth: { user: 'sesame', pass: 's3cret' } });
    sesame = await startTestApp(
      {
        SMTP_URL: `smtp://sesame:s3cret@127.0.0.1:${mail.port}`,
        MAIL_FROM: 'Acme Sign-in <signin@acme.test>',
        RP_NAME: 'Acme',
      },
      { mailTiming: TEST_TIMING, log: createLogger('debug', (line) => logLines.push(line)) },
    );
    apiKey = (await createApiKey(sesame.db, 'tests', 'test')).key;
  });

  afterAll(async () => {
    await sesame?.stop();
    await mail?.stop();
  });

  const api = (path: string, body: string) =>
    fetch(`${sesame.baseUrl}/api/admin${path}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
      body,
    });

  it('mails the invite `sesame users invite --json` prints, which adds "emailed": true', async () => {
    const out = await cliJsonOn<{ url: string; expires_at: string; emailed: boolean }>(sesame, [
      'users',
      'invite',
      '--email',
      'cli-invite@example.com',
      '--admin',
      '--json',
    ]);
    expect(out.emailed).toBe(true);
    const [received] = await mail.waitFor('cli-invite@example.com');
    expect(received!.from).toBe('"Acme Sign-in" <signin@acme.test>');
    expect(received!.subject).toBe('You are invited to Acme');
    expect(received!.text).toContain('as an administrator');
    expect(linkIn(received!)).toBe(out.url);
    // The HTML part has the same link, as a button and as text.
    expect(received!.html).toContain(`href="${out.url}"`);
    expect(received!.html).toContain('Create a passkey');
    // The mailed link works: whoever receives it creates the account with a passkey.
    const person = new Person(sesame.baseUrl);
    expect((await useLink(person, linkIn(received!))).status).toBe(200);
  });

  it('mails the invite the admin API issues, and the answer says "emailed": true', async () => {
    const response = await api('/users/invite', JSON.stringify({ email: 'api-invite@example.com' }));
    expect(response.status).toBe(201);
    const body = (await response.json()) as { url: string; emailed: boolean };
    expect(body.emailed).toBe(true);
    const [received] = await mail.waitFor('api-invite@example.com');
    expect(linkIn(received!)).toBe(body.url);
    expect(received!.text).not.toContain('administrator');
  });

  it('queues no mail for an invite the API refuses (malformed JSON, wrong types, unknown fields, a bad address)', async () => {
    const before = await countRows(sesame.db, 'mail_outbox');
    for (const body of [
      '{"email":',
      JSON.stringify({ email: 42 }),
      JSON.stringify({ email: 'x@example.com', admin: 'yes' }),
      JSON.stringify({ email: 'x@example.com', cc: 'y@example.com' }),
      JSON.stringify({ email: 'not-an-address' }),
      JSON.stringify({ email: `${'a'.repeat(300)}@example.com` }),
    ]) {
      const response = await api('/users/invite', body);
      expect(response.status).toBe(400);
    }
    expect(await countRows(sesame.db, 'mail_outbox')).toBe(before);
  });

  it('mails invites and recovery links from the admin pages, and the page says it was mailed', async () => {
    const admin = new Person(sesame.baseUrl);
    const loginPage = asPage(await admin.browser.follow('/admin'));
    await admin.browser.follow(await admin.signUp(loginPage, 'pages-admin@example.com'));
    await sesame.db
      .updateTable('users')
      .set({ is_admin: true })
      .where('email', '=', 'pages-admin@example.com')
      .execute();
    const users = await admin.browser.request('/admin/users');
    expect((await stepUp(admin, users.csrf())).status).toBe(200);

    const invite = await admin.browser.request('/admin/users/invite', {
      form: { _csrf: users.csrf(), email: 'page-invite@example.com' },
    });
    expect(invite.status).toBe(200);
    expect(invite.text).toContain('The link was mailed to page-invite@example.com');
    const [invited] = await mail.waitFor('page-invite@example.com');
    expect(invite.text).toContain(linkIn(invited!));

    const someone = await sesame.db
      .selectFrom('users')
      .select('id')
      .where('email', '=', 'cli-invite@example.com')
      .executeTakeFirstOrThrow();
    const recovery = await admin.browser.request(`/admin/users/${someone.id}/link`, {
      form: { _csrf: users.csrf() },
    });
    expect(recovery.status).toBe(200);
    expect(recovery.text).toContain('The link was mailed to cli-invite@example.com');
    const mails = await mail.waitFor('cli-invite@example.com', 2);
    const recoveryMail = mails[1]!;
    expect(recoveryMail.subject).toBe('Add a passkey to your Acme account');
    expect(recoveryMail.text).toContain('An administrator of Acme sent you a link');
    expect(recovery.text).toContain(linkIn(recoveryMail));
    expect((await fetch(`${sesame.baseUrl}${linkPath(linkIn(recoveryMail))}`)).status).toBe(200);
  });

  it('loses no mail while the SMTP server is down during a burst of invites, and sends none twice', async () => {
    await mail.stop();
    const retriesBefore = await deliveries('invite', 'retry');
    const emails = Array.from({ length: 12 }, (_, i) => `burst-${i}@example.com`);
    const answers = await Promise.all(emails.map((email) => api('/users/invite', JSON.stringify({ email }))));
    // No request waited for the mail server.
    expect(answers.map((a) => a.status)).toEqual(emails.map(() => 201));
    const urls = await Promise.all(answers.map(async (a) => ((await a.json()) as { url: string }).url));

    // Failed attempts are counted and in the activity log, once per mail. Under load the
    // worker reaches the mails at different times: wait for every one, not for a total.
    const retriedMails = () =>
      sesame.db
        .selectFrom('audit_events')
        .select(['target', 'details'])
        .where('action', '=', 'mail.retry')
        .execute();
    const everyMailRetried = async () => {
      const targets = new Set((await retriedMails()).map((e) => e.target));
      return emails.every((email) => targets.has(email));
    };
    const until = Date.now() + 30_000;
    while (
      ((await deliveries('invite', 'retry')) - retriesBefore < emails.length * 2 ||
        !(await everyMailRetried())) &&
      Date.now() < until
    ) {
      await sleep(100);
    }
    expect((await deliveries('invite', 'retry')) - retriesBefore).toBeGreaterThanOrEqual(emails.length * 2);
    const retried = await retriedMails();
    for (const email of emails) expect(retried.filter((e) => e.target === email)).toHaveLength(1);
    expect(mail.received.filter((m) => m.to.startsWith('burst-'))).toHaveLength(0);

    await mail.start();
    for (const email of emails) await mail.waitFor(email, 1, 30_000);
    // Let any duplicate that was going to arrive arrive.
    await sleep(1_500);
    for (const [i, email] of emails.entries()) {
      const got = mail.to(email);
      expect(got).toHaveLength(1);
      expect(linkIn(got[0]!)).toBe(urls[i]);
    }
    const rows = await sesame.db
      .selectFrom('mail_outbox')
      .selectAll()
      .where('to_address', 'like', 'burst-%')
      .execute();
    expect(rows).toHaveLength(emails.length);
    for (const row of rows) {
      expect(row.sent_at).not.toBeNull();
      expect(row.next_attempt_at).toBeNull();
      expect(row.attempts).toBeGreaterThan(1);
      // Sent: the copy of the link is gone from the database.
      expect(row.text_body).toBeNull();
      expect(row.html_body).toBeNull();
    }
  });

  it('gives a mail up after its time, in the activity log, and keeps no copy of its link', async () => {
    const quiet = await startTestApp(
      { SMTP_URL: 'smtp://127.0.0.1:9', MAIL_FROM: 'a@acme.test' },
      { mailTiming: { ...TEST_TIMING, giveUpAfterMs: 500 } },
    );
    try {
      const out = await cliJsonOn<{ emailed: boolean }>(quiet, [
        'users',
        'invite',
        '--email',
        'nowhere@example.com',
        '--json',
      ]);
      expect(out.emailed).toBe(true);
      const until = Date.now() + 20_000;
      let row: { next_attempt_at: Date | null; text_body: string | null } | undefined;
      do {
        await sleep(100);
        row = await quiet.db.selectFrom('mail_outbox').selectAll().executeTakeFirst();
      } while ((!row || row.next_attempt_at !== null) && Date.now() < until);
      expect(row?.next_attempt_at).toBeNull();
      expect(row?.text_body).toBeNull();
      const gaveUp = await quiet.db
        .selectFrom('audit_events')
        .select(['target', 'details'])
        .where('action', '=', 'mail.give_up')
        .execute();
      expect(gaveUp).toHaveLength(1);
      expect(gaveUp[0]!.target).toBe('nowhere@example.com');
    } finally {
      await quiet.stop();
    }
  });

  it('gives a mail up at once when the server refuses its recipient for good (5xx), and retries one refused for now (4xx)', async () => {
    const refusals: Record<string, number> = { gone: 550, bad: 501, later: 450 };
    const picky = await startMailServer({
      refuseRecipient: (address) => refusals[address.split('@')[0]!],
    });
    const quiet = await startTestApp(
      { SMTP_URL: `smtp://127.0.0.1:${picky.port}`, MAIL_FROM: 'a@acme.test' },
      { mailTiming: TEST_TIMING },
    );
    try {
      for (const email of ['gone@example.com', 'bad@example.com', 'later@example.com'])
        await cliJsonOn(quiet, ['users', 'invite', '--email', email, '--json']);
      const rowOf = (to: string) =>
        quiet.db.selectFrom('mail_outbox').selectAll().where('to_address', '=', to).executeTakeFirstOrThrow();
      const until = Date.now() + 20_000;
      for (const [to, code] of [
        ['gone@example.com', /550/],
        ['bad@example.com', /501/],
      ] as const) {
        while ((await rowOf(to)).next_attempt_at !== null && Date.now() < until) await sleep(100);
        const given = await rowOf(to);
        expect(given).toMatchObject({ next_attempt_at: null, attempts: 1, text_body: null });
        expect(given.last_error).toMatch(code);
      }
      while ((await rowOf('later@example.com')).attempts < 2 && Date.now() < until) await sleep(100);
      expect((await rowOf('later@example.com')).next_attempt_at).not.toBeNull();
      const gaveUp = await quiet.db
        .selectFrom('audit_events')
        .select('target')
        .where('action', '=', 'mail.give_up')
        .execute();
      expect(gaveUp.map((row) => row.target).sort()).toEqual(['bad@example.com', 'gone@example.com']);
    } finally {
      await quiet.stop();
      await picky.stop();
    }
  });

  it('never writes a link or its token to the log', async () => {
    const log = logLines.join('\n');
    expect(log).toContain('mail not sent, will retry');
    expect(log).not.toMatch(/\/link\/[A-Za-z0-9_-]{43}/);
    // Every token a mail carried (invite, recovery and welcome links) is absent from the log.
    const tokens = mail.received.flatMap((m) => [
      ...m.text.matchAll(/\/(?:link|verify)\/([A-Za-z0-9_-]{43})/g),
    ]);
    expect(tokens.length).toBeGreaterThanOrEqual(mail.received.length);
    for (const [, token] of tokens) expect(log).not.toContain(token!);
  });
});

describe('without SMTP_URL', () => {
  let sesame: TestApp;
  beforeAll(async () => {
    sesame = await startTestApp();
  });
  afterAll(() => sesame.stop());

  it('prints the invite link only, as before, and queues no mail', async () => {
    const out = await cliJsonOn<Record<string, unknown>>(sesame, [
      'users',
      'invite',
      '--email',
      'plain@example.com',
      '--json',
    ]);
    expect(Object.keys(out).sort()).toEqual(['expires_at', 'url']);
    expect(await countRows(sesame.db, 'mail_outbox')).toBe(0);
  });
});
