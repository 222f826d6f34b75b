import { setTimeout as sleep } from 'node:timers/promises';
import { createOneTimeLink } from '../../src/accounts/oneTimeLinks.js';
import { createApiKey } from '../../src/admin/apiKeys.js';
import { configFrom } from '../../src/config.js';
import { createLogger } from '../../src/logger.js';
import { metricsRegistry } from '../../src/metrics.js';
import { asPage } from '../support/browser.js';
import { countRows } from '../support/countRows.js';
import { linkIn, type MailServer, startAppWithMail, startMailServer } from '../support/mailServer.js';
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
      requireTLS: false,
      auth: { user: 'me@x', pass: 'p/w' },
      from: { name: '', address: 'a@b.c' },
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

  it('reads MAIL_FROM as a name and an address, whatever marks the name holds, and refuses an address mail would read as another', () => {
    const sender = (MAIL_FROM: string) =>
      configFrom({ ...base, SMTP_URL: 'smtp://127.0.0.1:25', MAIL_FROM }).mail!.from;
    expect(sender(' signin@acme.test ')).toEqual({ name: '', address: 'signin@acme.test' });
    expect(sender('Acme: sign-in (EU) <signin@acme.test>')).toEqual({
      name: 'Acme: sign-in (EU)',
      address: 'signin@acme.test',
    });
    expect(sender('"Acme, \\"Inc.\\"" <signin@acme.test>')).toEqual({
      name: 'Acme, "Inc."',
      address: 'signin@acme.test',
    });
    expect(sender('noreply@localhost')).toEqual({ name: '', address: 'noreply@localhost' });
    // Each is read by mail libraries as a list, a comment or a quoted address: another sender.
    for (const MAIL_FROM of [
      'a,b@acme.test',
      'Acme <a;b@acme.test>',
      '(x)signin@acme.test',
      '"a b"@acme.test',
    ])
      expect(() => sender(MAIL_FROM)).toThrow(/^MAIL_FROM must be an address/);
  });

  it('requires STARTTLS of an smtp:// server on another machine unless ?starttls=optional, and of none on this one unless ?starttls=required', () => {
    const requireTLS = (SMTP_URL: string, env: Record<string, string> = {}) =>
      configFrom({ ...base, SMTP_URL, MAIL_FROM: 'a@b.c', ...env }).mail!.requireTLS;
    expect(requireTLS('smtp://user:pass@mail.example.com:587')).toBe(true);
    expect(requireTLS('smtp://mail.example.com', { SMTP_USER: 'u', SMTP_PASSWORD: 'p' })).toBe(true);
    // Without a login too: every mail holds a one-time link.
    expect(requireTLS('smtp://relay.internal:25')).toBe(true);
    expect(requireTLS('smtp://user:pass@relay.internal:25?starttls=optional')).toBe(false);
    for (const local of ['smtp://127.0.0.1:1025', 'smtp://localhost:25', 'smtp://u:p@[::1]:25'])
      expect(requireTLS(local)).toBe(false);
    expect(requireTLS('smtp://127.0.0.1:1025?starttls=required')).toBe(true);
    // smtps:// is TLS from the first byte.
    expect(requireTLS('smtps://user:pass@mail.example.com')).toBe(false);
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
    // Port 0 made nodemailer use 465; a port past 65535 was called a bad URL.
    for (const [SMTP_URL, port] of [
      ['smtps://mail.example.com:0', '0'],
      ['smtp://mail.example.com:99999', '99999'],
      ['smtp://user:pass@[::1]:70000', '70000'],
    ])
      expect(fails({ SMTP_URL: SMTP_URL!, MAIL_FROM: 'a@b.c' })).toThrow(
        `SMTP_URL's port must be 1-65535 (got ${port})`,
      );
    // A setting nodemailer knows, or any other, is refused rather than silently ignored.
    for (const SMTP_URL of [
      'smtp://u:p@mail.example.com:587?requireTLS=true',
      'smtp://m.example?starttls=optional&x=1',
    ])
      expect(fails({ SMTP_URL, MAIL_FROM: 'a@b.c' })).toThrow(
        /^SMTP_URL takes one setting after "\?", starttls=required or starttls=optional \(got \?/,
      );
    expect(fails({ SMTP_URL: 'smtp://m.example?starttls=off', MAIL_FROM: 'a@b.c' })).toThrow(
      `SMTP_URL's starttls must be "required" or "optional" (got "off")`,
    );
    expect(fails({ SMTP_URL: 'smtps://m.example?starttls=required', MAIL_FROM: 'a@b.c' })).toThrow(
      /^SMTP_URL's starttls is for smtp:\/\//,
    );
    // A line break would end the From header and start one of its own.
    for (const MAIL_FROM of ['a@b.c\r\nBcc: someone@else.example', 'Acme\n <a@b.c>'])
      expect(fails({ SMTP_URL: 'smtp://m.example.com', MAIL_FROM })).toThrow(
        'MAIL_FROM must not contain control characters',
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

  it('gives a mail up at once only when the server refuses its recipient or message for good, and retries a refusal of Sesame as a whole', async () => {
    const refusals: Record<string, number | string> = {
      gone: 550,
      bad: 501,
      nobody: '554 5.1.1 No such user',
      later: 450,
      // A full mailbox is temporary whatever its code (RFC 5321 §4.5.3.1.10).
      full: '552 5.2.2 Mailbox full',
      // The answer to a wrong login: the operator fixes it, and the mail must still go.
      relay: '554 5.7.1 Relay access denied',
      relaying: '550 Relaying not permitted',
    };
    let refuseSesame = true;
    const picky = await startMailServer({
      refuseConnection: () => (refuseSesame ? '554 5.7.1 Access denied' : undefined),
      refuseRecipient: (address) => refusals[address.split('@')[0]!],
      refuseMessage: (mail) => {
        if (mail.envelopeTo[0]!.startsWith('huge@')) return '552 5.3.4 Message too big';
        // A full mailbox said at the end of DATA, as a server that delivers there does.
        if (mail.envelopeTo[0]!.startsWith('stuffed@')) return '552 5.2.2 Mailbox full';
        return undefined;
      },
    });
    const quiet = await startTestApp(
      { SMTP_URL: `smtp://127.0.0.1:${picky.port}`, MAIL_FROM: 'a@acme.test' },
      { mailTiming: TEST_TIMING },
    );
    const invite = (email: string) => createOneTimeLink(quiet.db, quiet.config, { email, actor: 'test' });
    const rowOf = (to: string) =>
      quiet.db.selectFrom('mail_outbox').selectAll().where('to_address', '=', to).executeTakeFirstOrThrow();
    const until = Date.now() + 30_000;
    const waitFor = async (to: string, check: (row: Awaited<ReturnType<typeof rowOf>>) => boolean) => {
      while (!check(await rowOf(to)) && Date.now() < until) await sleep(100);
      return rowOf(to);
    };
    try {
      // Refused at the greeting: retried, and sent once the server takes Sesame again.
      await invite('turned-away@example.com');
      const refused = await waitFor('turned-away@example.com', (row) => row.attempts >= 2);
      expect(refused).toMatchObject({ attempts: 2, sent_at: null });
      expect(refused.next_attempt_at).not.toBeNull();
      expect(refused.last_error).toMatch(/554 5\.7\.1 Access denied/);
      refuseSesame = false;
      await picky.waitFor('turned-away@example.com');

      for (const name of [...Object.keys(refusals), 'huge', 'stuffed']) await invite(`${name}@example.com`);
      for (const [name, code] of [
        ['gone', /550/],
        ['bad', /501/],
        ['nobody', /554 5\.1\.1/],
        ['huge', /552 5\.3\.4/],
      ] as const) {
        const given = await waitFor(`${name}@example.com`, (row) => row.next_attempt_at === null);
        expect(given).toMatchObject({ next_attempt_at: null, attempts: 1, text_body: null });
        expect(given.last_error).toMatch(code);
      }
      for (const name of ['later', 'full', 'stuffed', 'relay', 'relaying']) {
        const retried = await waitFor(`${name}@example.com`, (row) => row.attempts >= 2);
        expect(retried.attempts).toBeGreaterThanOrEqual(2);
        expect(retried.next_attempt_at).not.toBeNull();
      }
      const gaveUp = await quiet.db
        .selectFrom('audit_events')
        .select('target')
        .where('action', '=', 'mail.give_up')
        .execute();
      expect(gaveUp.map((row) => row.target).sort()).toEqual([
        'bad@example.com',
        'gone@example.com',
        'huge@example.com',
        'nobody@example.com',
      ]);
    } finally {
      await quiet.stop();
      await picky.stop();
    }
  });

  it('requires STARTTLS when SMTP_URL says so: a server without it gets no login and no mail', async () => {
    const plain = await startMailServer({ auth: { user: 'sesame', pass: 's3cret' } });
    const strict = await startTestApp(
      {
        SMTP_URL: `smtp://sesame:s3cret@127.0.0.1:${plain.port}?starttls=required`,
        MAIL_FROM: 'a@acme.test',
      },
      { mailTiming: TEST_TIMING },
    );
    try {
      await createOneTimeLink(strict.db, strict.config, { email: 'in-clear@example.com', actor: 'test' });
      const until = Date.now() + 20_000;
      const row = () => strict.db.selectFrom('mail_outbox').selectAll().executeTakeFirstOrThrow();
      while ((await row()).attempts < 2 && Date.now() < until) await sleep(100);
      expect((await row()).last_error).toMatch(/STARTTLS/);
      // Retried: the operator may yet turn STARTTLS on.
      expect((await row()).next_attempt_at).not.toBeNull();
      expect(plain.logins).toEqual([]);
      expect(plain.received).toEqual([]);
    } finally {
      await strict.stop();
      await plain.stop();
    }
  });

  it('sends an internationalized domain in the envelope as punycode, which needs no SMTPUTF8', async () => {
    await createOneTimeLink(sesame.db, sesame.config, { email: 'reader@bücher.example', actor: 'test' });
    const [got] = await mail.waitFor('reader@', 1);
    expect(mail.commands.filter((line) => line.includes('reader@'))).toEqual([
      'RCPT TO:<reader@xn--bcher-kva.example>',
    ]);
    // The header as sent (mailparser too shows the domain in Unicode).
    expect(got!.parsed.headerLines.find((header) => header.key === 'to')?.line).toBe(
      'To: reader@xn--bcher-kva.example',
    );
  });

  it('marks each mail as sent by a machine, so that out-of-office replies are not sent back', async () => {
    await createOneTimeLink(sesame.db, sesame.config, { email: 'away@example.com', actor: 'test' });
    const [got] = await mail.waitFor('away@', 1);
    expect(got!.parsed.headers.get('auto-submitted')).toBe('auto-generated');
    expect(got!.parsed.headers.get('x-auto-response-suppress')).toBe('All');
  });

  it("sends from MAIL_FROM's name and address as written, whatever marks the name holds", async () => {
    // Handed the whole string, the mail library read `Acme: …` as a group, the parenthesis as
    // an unclosed comment (a mail with no From header and an empty envelope sender).
    for (const name of ['Acme: sign-in', 'Acme (EU']) {
      const named = await startAppWithMail({ MAIL_FROM: `${name} <signin@acme.test>` });
      try {
        await createOneTimeLink(named.sesame.db, named.sesame.config, {
          email: 'from@example.com',
          actor: 'test',
        });
        const [got] = await named.mail.waitFor('from@example.com');
        expect(named.mail.commands.filter((line) => line.startsWith('MAIL FROM'))).toEqual([
          expect.stringMatching(/^MAIL FROM:<signin@acme\.test>/),
        ]);
        expect(got!.parsed.from?.value).toEqual([{ name, address: 'signin@acme.test' }]);
      } finally {
        await named.stop();
      }
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
