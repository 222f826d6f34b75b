import { randomUUID } from 'node:crypto';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { sql } from 'kysely';
import { resendWelcomeMail } from '../../src/accounts/emailVerification.js';
import { createOneTimeLink } from '../../src/accounts/oneTimeLinks.js';
import { createApiKey } from '../../src/admin/apiKeys.js';
import { isSealed } from '../../src/crypto.js';
import { mailOutboxQueries } from '../../src/db/queries/mailOutbox.js';
import { usersQueries } from '../../src/db/queries/users.js';
import { createLogger } from '../../src/logger.js';
import { sealMailBodies } from '../../src/mail/outbox.js';
import { asPage } from '../support/browser.js';
import {
  linkIn,
  type MailServer,
  startAppWithMail,
  startMailServer,
  TEST_MAIL_TIMING,
} from '../support/mailServer.js';
import { Person } from '../support/oidcFlow.js';
import { cliJsonOn } from '../support/sesameProcess.js';
import { startTestApp, type TestApp } from '../support/testApp.js';

const SECRET = 'a key-encryption secret of 32+ characters';
const A_MAIL = {
  template: 'recovery',
  subject: 'Your recovery link for Acme',
  text: 'Hello\nhttp://localhost/link/a',
  html: '<p><a href="http://localhost/link/a">Create a passkey</a></p>',
};

type WithMail = Awaited<ReturnType<typeof startAppWithMail>>;

/** A person signed up through /admin and made an admin. */
async function signUpAdmin(sesame: TestApp, email: string): Promise<Person> {
  const person = new Person(sesame.baseUrl);
  await person.browser.follow(await person.signUp(asPage(await person.browser.follow('/admin')), email));
  const user = (await usersQueries.findByEmail(sesame.db, email))!;
  await usersQueries.update(sesame.db, user.id, { isAdmin: true });
  return person;
}

/** Waits until `check` holds for the mail to `address`, failing after 20 s. */
async function mailRowTo(
  sesame: TestApp,
  address: string,
  check: (row: MailRow) => boolean,
): Promise<MailRow> {
  const until = Date.now() + 20_000;
  for (;;) {
    const row = await sesame.db
      .selectFrom('mail_outbox')
      .selectAll()
      .where('to_address', '=', address)
      .executeTakeFirst();
    if (row && check(row)) return row;
    if (Date.now() > until)
      throw new Error(`the mail to ${address} did not get there: ${JSON.stringify(row)}`);
    await sleep(50);
  }
}
type MailRow = {
  text_body: string | null;
  html_body: string | null;
  subject: string;
  attempts: number;
} & Record<string, unknown>;

describe('mail bodies at rest with KEY_ENCRYPTION_SECRET', () => {
  let withMail: WithMail;
  let apiKey: string;

  beforeAll(async () => {
    withMail = await startAppWithMail({ KEY_ENCRYPTION_SECRET: SECRET });
    apiKey = (await createApiKey(withMail.sesame.db, 'tests', 'test')).key;
  });
  afterAll(() => withMail?.stop());

  const invite = (email: string) =>
    fetch(`${withMail.sesame.baseUrl}/api/admin/users/invite`, {
      method: 'POST',
      headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ email }),
    });

  it('keeps a queued mail’s link out of the database, and the mail arrives intact', async () => {
    const { sesame, mail } = withMail;
    // The mail server is away, so the mail waits in the outbox.
    await mail.stop();
    const response = await invite('sealed@example.com');
    expect(response.status).toBe(201);
    const { url } = (await response.json()) as { url: string };
    const token = url.split('/').at(-1)!;

    const queued = await mailRowTo(sesame, 'sealed@example.com', (row) => row.attempts >= 1);
    expect(isSealed(queued.text_body!)).toBe(true);
    expect(isSealed(queued.html_body!)).toBe(true);
    // Nothing of the row holds the link or its token; the subject names only the issuer.
    expect(JSON.stringify(queued)).not.toContain(token);
    expect(queued.subject).toBe('You are invited to Acme');

    await mail.start();
    const [received] = await mail.waitFor('sealed@example.com');
    expect(linkIn(received!)).toBe(url);
    expect(received!.html).toContain(`href="${url}"`);
    expect(received!.subject).toBe('You are invited to Acme');
    const sent = await mailRowTo(sesame, 'sealed@example.com', (row) => row.sent_at !== null);
    expect(sent.text_body).toBeNull();
    expect(sent.html_body).toBeNull();
  });

  it('seals the mail `sesame users invite` queues, with the same secret (the CLI has the same config)', async () => {
    const { sesame, mail } = withMail;
    await mail.stop();
    const out = await cliJsonOn<{ url: string; emailed: boolean }>(sesame, [
      'users',
      'invite',
      '--email',
      'cli-sealed@example.com',
    ]);
    expect(out.emailed).toBe(true);
    const queued = await mailRowTo(sesame, 'cli-sealed@example.com', () => true);
    expect(isSealed(queued.text_body!)).toBe(true);
    expect(JSON.stringify(queued)).not.toContain(out.url.split('/').at(-1)!);
    await mail.start();
    const [received] = await mail.waitFor('cli-sealed@example.com');
    expect(linkIn(received!)).toBe(out.url);
  });

  it('still sends a mail queued in plain text before the secret was set', async () => {
    const { sesame, mail } = withMail;
    // The row as Sesame wrote it without a secret.
    await mailOutboxQueries.enqueue(sesame.db, {
      template: 'invite',
      to: 'before-secret@example.com',
      subject: 'You are invited to Acme',
      text: 'Hello\nhttp://localhost/link/plain',
      html: '<p><a href="http://localhost/link/plain">Create a passkey</a></p>',
    });
    const [received] = await mail.waitFor('before-secret@example.com');
    expect(received!.text).toContain('http://localhost/link/plain');
    expect(received!.html).toContain('href="http://localhost/link/plain"');
  });

  it('does not send a mail sealed with another secret: it is retried with an error that says why', async () => {
    const { sesame, mail } = withMail;
    await mailOutboxQueries.enqueue(
      sesame.db,
      sealMailBodies(
        {
          template: 'invite',
          to: 'other-secret@example.com',
          subject: 'You are invited to Acme',
          text: 'text',
          html: '<p>html</p>',
        },
        'another secret of at least 32 characters',
      ),
    );
    const row = await mailRowTo(sesame, 'other-secret@example.com', (r) => r.last_error !== null);
    expect(row.last_error).toBe(
      'the mail was encrypted with another KEY_ENCRYPTION_SECRET than this instance has',
    );
    expect(row.next_attempt_at).not.toBeNull();
    expect(mail.to('other-secret@example.com')).toHaveLength(0);
  });

  it('gives up at once a mail whose bodies were sealed for another mail, naming both rows', async () => {
    const { sesame, mail } = withMail;
    // Another mail's sealed bodies (say, one to an attacker's address) copied into this row.
    const elsewhere = sealMailBodies({ ...A_MAIL, to: 'attacker@example.com' }, SECRET);
    const id = randomUUID();
    await mailOutboxQueries.enqueue(sesame.db, {
      ...A_MAIL,
      id,
      to: 'moved-body@example.com',
      text: elsewhere.text,
      html: elsewhere.html,
    });
    const row = await mailRowTo(sesame, 'moved-body@example.com', (r) => r.last_error !== null);
    expect(row.last_error).toBe(
      `mail_outbox:${id}:text_body holds a value sealed for mail_outbox:${elsewhere.id}:text_body: a sealed value opens only where it was written`,
    );
    expect(row).toMatchObject({ attempts: 1, next_attempt_at: null, text_body: null, html_body: null });
    expect(mail.to('moved-body@example.com')).toHaveLength(0);
  });
});

describe('each mail goes out once', () => {
  let mail: MailServer;
  let sesame: TestApp;
  const logLines: string[] = [];
  /** The Message-ID of every message the server read, accepted or refused. */
  const offered: { to: string; messageId: string | undefined }[] = [];
  /** Recipients the server answers "try again later" for, as a server that is down does. */
  const unreachable = new Set<string>();

  beforeAll(async () => {
    let refusedOnce = false;
    mail = await startMailServer({
      refuseMessage: (got) => {
        offered.push({ to: got.envelopeTo[0]!, messageId: got.parsed.messageId });
        if (unreachable.has(got.envelopeTo[0]!)) return '421 4.3.2 Service not available';
        if (got.envelopeTo[0] !== 'twice@example.com' || refusedOnce) return undefined;
        refusedOnce = true;
        return '451 4.3.0 Try again later';
      },
    });
    sesame = await startTestApp(
      { SMTP_URL: mail.url, MAIL_FROM: 'Acme <signin@acme.test>' },
      { mailTiming: TEST_MAIL_TIMING, log: createLogger('debug', (line) => logLines.push(line)) },
    );
  });
  afterAll(async () => {
    await sesame?.stop();
    await mail?.stop();
  });

  const invite = (email: string) => createOneTimeLink(sesame.db, sesame.config, { email, actor: 'test' });

  it('gives a mail one Message-ID at all its attempts, so that a copy can be told apart', async () => {
    await invite('twice@example.com');
    await mail.waitFor('twice@example.com');
    const row = await mailRowTo(sesame, 'twice@example.com', (r) => r.sent_at !== null);
    expect(row.attempts).toBe(2);
    expect(offered.filter((o) => o.to === 'twice@example.com').map((o) => o.messageId)).toEqual([
      `<${row.id}@acme.test>`,
      `<${row.id}@acme.test>`,
    ]);
  });

  it('does not send a mail again when recording that it went fails for a moment', async () => {
    // The database refuses the first two "sent" records of this mail, as after a blip.
    await sql`create sequence sent_blips`.execute(sesame.db);
    await sql`
      create function refuse_sent() returns trigger language plpgsql as $$
      begin
        if new.to_address = 'blip@example.com' and new.sent_at is not null and nextval('sent_blips') <= 2 then
          raise exception 'the database went away for a moment';
        end if;
        return new;
      end $$`.execute(sesame.db);
    await sql`
      create trigger refuse_sent before update on mail_outbox
      for each row execute function refuse_sent()`.execute(sesame.db);
    await invite('blip@example.com');
    const row = await mailRowTo(sesame, 'blip@example.com', (r) => r.sent_at !== null);
    // Let any copy that was going to arrive arrive.
    await sleep(1_500);
    expect(mail.to('blip@example.com')).toHaveLength(1);
    expect(row).toMatchObject({ attempts: 1, last_error: null, text_body: null });
    expect(
      logLines.filter((line) => line.includes('mail sent, recording it failed: trying again')),
    ).toHaveLength(2);
  });

  it('gives up a mail whose link expired, was used or replaced while the server was down, instead of sending a dead link', async () => {
    /** Queues a link mail that the server refuses until the link is dead, then lets it through. */
    async function whileDown(email: string, kill: () => Promise<unknown>) {
      unreachable.add(email);
      await invite(email);
      const { id } = await mailRowTo(sesame, email, (r) => r.last_error !== null);
      await kill();
      unreachable.delete(email);
      for (const until = Date.now() + 20_000; Date.now() < until; await sleep(50)) {
        const row = await sesame.db
          .selectFrom('mail_outbox')
          .selectAll()
          .where('id', '=', id as string)
          .executeTakeFirstOrThrow();
        if (row.next_attempt_at === null) return row;
      }
      throw new Error(`the mail to ${email} was never done`);
    }
    const expire = (email: string) =>
      sesame.db
        .updateTable('one_time_tokens')
        .set({ expires_at: new Date(Date.now() - 1000) })
        .where('email', '=', email)
        .execute();

    const expired = await whileDown('expired-link@example.com', () => expire('expired-link@example.com'));
    expect(expired).toMatchObject({ sent_at: null, text_body: null, html_body: null });
    expect(expired.last_error).toBe('not sent: its link expired (or was cancelled) before it could go');
    // Another link for the address cancels the first: its mail goes no more either.
    const replaced = await whileDown('replaced-link@example.com', () => invite('replaced-link@example.com'));
    expect(replaced.last_error).toBe('not sent: its link expired (or was cancelled) before it could go');
    const used = await whileDown('used-link@example.com', () =>
      sesame.db
        .updateTable('one_time_tokens')
        .set({ used_at: new Date() })
        .where('email', '=', 'used-link@example.com')
        .execute(),
    );
    expect(used.last_error).toBe('not sent: its link was already used');

    await sleep(1_000);
    expect(mail.to('expired-link@example.com')).toHaveLength(0);
    expect(mail.to('used-link@example.com')).toHaveLength(0);
    // The newer link's mail is the one that arrives.
    expect(mail.to('replaced-link@example.com')).toHaveLength(1);
    const audit = await sesame.db
      .selectFrom('audit_events')
      .select(['target', 'details'])
      .where('action', '=', 'mail.give_up')
      .execute();
    expect(
      Object.fromEntries(audit.map((a) => [a.target, (a.details as { reason?: string }).reason])),
    ).toMatchObject({
      'expired-link@example.com': 'link_expired',
      'replaced-link@example.com': 'link_expired',
      'used-link@example.com': 'link_used',
    });
    // Counted apart from mails the server failed to take.
    const { key } = await createApiKey(sesame.db, 'prometheus', 'test', 'metrics');
    const metrics = await (
      await fetch(`${sesame.baseUrl}/metrics`, { headers: { authorization: `Bearer ${key}` } })
    ).text();
    expect(metrics).toMatch(/sesame_mail_deliveries_total\{template="invite",result="link_gone"\} 3/);
    // (Of invites: the metrics are this process's, and a recovery mail was given up above.)
    expect(metrics).not.toMatch(/template="invite",result="given_up"/);
    expect(logLines.filter((line) => line.includes('mail given up'))).toHaveLength(0);
  });

  it('gives up a mail with a new confirmation link that a newer one replaced', async () => {
    const user = await usersQueries.insert(sesame.db, { email: 'welcome-twice@example.com', name: null });
    unreachable.add(user.email);
    await resendWelcomeMail(sesame.db, sesame.config, user);
    await mailRowTo(sesame, user.email, (r) => r.last_error !== null);
    await resendWelcomeMail(sesame.db, sesame.config, user);
    unreachable.delete(user.email);
    await mail.waitFor(user.email);
    await sleep(1_000);
    const rows = await sesame.db
      .selectFrom('mail_outbox')
      .select(['last_error', 'sent_at'])
      .where('to_address', '=', user.email)
      .orderBy('created_at')
      .execute();
    expect(rows).toMatchObject([
      { last_error: 'not sent: its link was replaced by a newer one', sent_at: null },
      { last_error: null },
    ]);
    expect(rows[1]!.sent_at).not.toBeNull();
    expect(mail.to(user.email)).toHaveLength(1);
  });

  it('cuts off a send that outlasts its deadline, before its claim could run out', async () => {
    // Each answer comes in time for nodemailer's per-step timeouts; the whole send does not.
    const slow = await startMailServer({ replyAfterMs: 800 });
    const impatient = await startTestApp(
      { SMTP_URL: slow.url, MAIL_FROM: 'signin@acme.test' },
      { mailTiming: { ...TEST_MAIL_TIMING, timeoutMs: 2_000, leaseMs: 3_000 } },
    );
    try {
      await createOneTimeLink(impatient.db, impatient.config, { email: 'slow@example.com', actor: 'test' });
      const row = await mailRowTo(impatient, 'slow@example.com', (r) => r.last_error !== null);
      expect(row.last_error).toBe('the mail server took longer than 2 s: the send was cut off');
      expect(row.next_attempt_at).not.toBeNull();
      expect(slow.received).toHaveLength(0);
    } finally {
      await impatient.stop();
      await slow.stop();
    }
  });
});

/**
 * A bare SMTP server on a loopback port that answers each RCPT TO with `rcptReply(address)`
 * byte for byte (smtp-server cleans its replies; a server elsewhere need not), and takes
 * everything else.
 */
async function startRawMailServer(rcptReply: (address: string) => string) {
  const server = net.createServer((socket) => {
    socket.write('220 raw.test ESMTP\r\n');
    let buffered = '';
    socket.on('data', (chunk) => {
      buffered += chunk.toString('utf8');
      for (let end = buffered.indexOf('\r\n'); end !== -1; end = buffered.indexOf('\r\n')) {
        const line = buffered.slice(0, end);
        buffered = buffered.slice(end + 2);
        const rcpt = /^RCPT TO:<([^>]*)>/i.exec(line);
        if (/^EHLO/i.test(line)) socket.write('250-raw.test\r\n250 OK\r\n');
        else if (rcpt) socket.write(`${rcptReply(rcpt[1]!)}\r\n`);
        else if (/^QUIT/i.test(line)) socket.end('221 bye\r\n');
        else socket.write('250 OK\r\n');
      }
    });
    socket.on('error', () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `smtp://127.0.0.1:${port}`,
    stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

describe('a mail server that answers oddly', () => {
  it('records a refusal whose reply holds a NUL character, which Postgres stores nowhere: retried with backoff, or given up', async () => {
    // The reply is in the error, the outbox row and the activity log; a NUL made both writes
    // fail, and the mail was claimed again at each lease's end, never backed off or given up.
    const odd = await startRawMailServer((address) =>
      address.startsWith('later@') ? '450 4.2.0 busy\u0000now' : '550 5.1.1 no\u0000such user',
    );
    const app = await startTestApp(
      { SMTP_URL: odd.url, MAIL_FROM: 'signin@acme.test' },
      { mailTiming: TEST_MAIL_TIMING },
    );
    try {
      await createOneTimeLink(app.db, app.config, { email: 'later@example.com', actor: 'test' });
      await createOneTimeLink(app.db, app.config, { email: 'gone@example.com', actor: 'test' });
      const later = await mailRowTo(
        app,
        'later@example.com',
        (row) => row.attempts >= 2 && row.last_error !== null,
      );
      expect(later.last_error).toMatch(/450 4\.2\.0 busy\\u0000now$/);
      expect(later.next_attempt_at).not.toBeNull();
      const gone = await mailRowTo(app, 'gone@example.com', (row) => row.next_attempt_at === null);
      expect(gone.last_error).toMatch(/550 5\.1\.1 no\\u0000such user$/);
      expect(gone.text_body).toBeNull();
      const logged = await app.db
        .selectFrom('audit_events')
        .select(['action', 'target'])
        .where('action', 'in', ['mail.retry', 'mail.give_up'])
        .orderBy('action')
        .execute();
      expect(logged).toEqual([
        { action: 'mail.give_up', target: 'gone@example.com' },
        { action: 'mail.retry', target: 'later@example.com' },
      ]);
    } finally {
      await app.stop();
      await odd.stop();
    }
  });
});

describe('a mail server whose refusal quotes the link of the mail', () => {
  it('keeps the link’s token out of the outbox row, the activity log and the log line, and keeps the reply’s code and words', async () => {
    // Some servers name the URL that made them refuse a message; the reply was the error
    // as it came, which an admin or anyone with the logs could then follow.
    const tokens: string[] = [];
    const mail = await startMailServer({
      refuseMessage: (got) => {
        const link = linkIn(got);
        const token = link.split('/').at(-1)!;
        tokens.push(token);
        return got.envelopeTo[0]!.startsWith('later@')
          ? `550 5.7.1 message rejected, URL ${link}/verify listed`
          : `554 5.7.1 spam: token ${token} blocked`;
      },
    });
    const logLines: string[] = [];
    const app = await startTestApp(
      { SMTP_URL: mail.url, MAIL_FROM: 'signin@acme.test' },
      { mailTiming: TEST_MAIL_TIMING, log: createLogger('debug', (line) => logLines.push(line)) },
    );
    try {
      await createOneTimeLink(app.db, app.config, { email: 'later@example.com', actor: 'test' });
      await createOneTimeLink(app.db, app.config, { email: 'gone@example.com', actor: 'test' });
      const later = await mailRowTo(app, 'later@example.com', (row) => row.last_error !== null);
      const gone = await mailRowTo(app, 'gone@example.com', (row) => row.next_attempt_at === null);
      const audit = await app.db
        .selectFrom('audit_events')
        .select(['action', 'details'])
        .where('action', 'in', ['mail.retry', 'mail.give_up'])
        .orderBy('action')
        .execute();
      const logged = logLines.filter((line) => /mail not sent, will retry|mail given up/.test(line));
      expect(tokens.length).toBeGreaterThanOrEqual(2);
      expect(audit.map((entry) => entry.action)).toEqual(['mail.give_up', 'mail.retry']);
      expect(logged.length).toBeGreaterThanOrEqual(2);
      const stored = JSON.stringify([later.last_error, gone.last_error, audit, logged]);
      for (const token of tokens) expect(stored).not.toContain(token);
      expect(later.last_error).toMatch(
        /550 5\.7\.1 message rejected, URL http\S+\/link\/\[redacted\]\/verify listed$/,
      );
      expect(gone.last_error).toMatch(/554 5\.7\.1 spam: token \[redacted\] blocked$/);
      expect(audit.map((entry) => entry.details.error)).toEqual([gone.last_error, later.last_error]);
      expect(logged.join('\n')).toContain('550 5.7.1 message rejected, URL ');
      expect(logged.join('\n')).toContain('554 5.7.1 spam: token [redacted] blocked');
    } finally {
      await app.stop();
      await mail.stop();
    }
  });
});

describe('the mail outbox for admins (/admin/mail and GET /api/admin/mail)', () => {
  let withMail: WithMail;
  let sesame: TestApp;
  let admin: Person;
  let apiKey: string;
  const TOKEN = 'T0kenThatMustNeverShowOnAnyAdminPageOrApiAnswer';
  const hourAgo = (hours: number) => new Date(Date.now() - hours * 3_600_000);

  beforeAll(async () => {
    withMail = await startAppWithMail();
    sesame = withMail.sesame;
    admin = await signUpAdmin(sesame, 'mail-admin@example.com');
    // Signing up mailed a welcome: the list holds it too.
    await mailRowTo(sesame, 'mail-admin@example.com', (row) => row.sent_at !== null);
    apiKey = (await createApiKey(sesame.db, 'tests', 'test')).key;
    // One mail of each state, as the worker leaves them; next attempts in the future, so
    // the worker leaves these rows alone. Each body holds a "link".
    const body = { text_body: `link /link/${TOKEN}`, html_body: `<a href="/link/${TOKEN}">x</a>` };
    await sesame.db
      .insertInto('mail_outbox')
      .values([
        {
          template: 'invite',
          to_address: 'queued@example.com',
          subject: 'Queued',
          ...body,
          next_attempt_at: new Date(Date.now() + 3_600_000),
          created_at: hourAgo(1),
        },
        {
          template: 'recovery',
          to_address: 'retrying@example.com',
          subject: 'Retrying',
          ...body,
          attempts: 3,
          last_error: 'connect ECONNREFUSED 127.0.0.1:25',
          next_attempt_at: new Date('2099-01-01T00:00:00Z'),
          created_at: hourAgo(2),
        },
        {
          template: 'notice',
          to_address: 'given-up@example.com',
          subject: 'Given up',
          attempts: 30,
          last_error: '550 mailbox unavailable',
          next_attempt_at: null,
          created_at: hourAgo(30),
        },
        {
          template: 'welcome',
          to_address: 'sent@example.com',
          subject: 'Sent',
          attempts: 1,
          next_attempt_at: null,
          sent_at: hourAgo(3),
          created_at: hourAgo(3),
        },
      ])
      .execute();
  });
  afterAll(() => withMail?.stop());

  const api = (query: string) =>
    fetch(`${sesame.baseUrl}/api/admin/mail${query}`, { headers: { authorization: `Bearer ${apiKey}` } });

  it('lists each mail with its status, newest first, and never a body or link', async () => {
    // A real invite, sent by the worker: the newest.
    const invited = await fetch(`${sesame.baseUrl}/api/admin/users/invite`, {
      method: 'POST',
      headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ email: 'fresh@example.com' }),
    });
    const { url } = (await invited.json()) as { url: string };
    await withMail.mail.waitFor('fresh@example.com');
    await mailRowTo(sesame, 'fresh@example.com', (row) => row.sent_at !== null);

    const response = await api('');
    expect(response.status).toBe(200);
    expect(response.headers.get('cache-control')).toBe('no-store');
    const text = await response.text();
    expect(text).not.toContain(TOKEN);
    expect(text).not.toContain(url.split('/').at(-1)!);
    const mails = JSON.parse(text) as Record<string, unknown>[];
    expect(mails.map((m) => [m.to, m.status])).toEqual([
      ['fresh@example.com', 'sent'],
      ['mail-admin@example.com', 'sent'],
      ['queued@example.com', 'queued'],
      ['retrying@example.com', 'retrying'],
      ['sent@example.com', 'sent'],
      ['given-up@example.com', 'given_up'],
    ]);
    expect(mails[3]).toMatchObject({
      template: 'recovery',
      attempts: 3,
      next_attempt_at: '2099-01-01T00:00:00.000Z',
      last_error: 'connect ECONNREFUSED 127.0.0.1:25',
      sent_at: null,
    });
    expect(mails[5]).toMatchObject({
      attempts: 30,
      last_error: '550 mailbox unavailable',
      next_attempt_at: null,
    });
    expect(Object.keys(mails[0]!).sort()).toEqual(
      [
        'attempts',
        'id',
        'last_error',
        'next_attempt_at',
        'queued_at',
        'sent_at',
        'status',
        'subject',
        'template',
        'to',
      ].sort(),
    );

    const page = await admin.browser.request('/admin/mail');
    expect(page.status).toBe(200);
    expect(page.headers.get('cache-control')).toBe('no-store');
    expect(page.text).not.toContain(TOKEN);
    expect(page.text).not.toContain(url.split('/').at(-1)!);
    expect(page.text).not.toContain('Mail is not configured');
    const rows = [...page.text.matchAll(/<th scope="row">([^<]+)<\/th>/g)].map((m) => m[1]);
    expect(rows).toEqual([
      'fresh@example.com',
      'mail-admin@example.com',
      'queued@example.com',
      'retrying@example.com',
      'sent@example.com',
      'given-up@example.com',
    ]);
    expect(page.text).toContain(
      'Retrying: 3 attempts, next at <time datetime="2099-01-01T00:00:00.000Z">2099-01-01 00:00:00</time>',
    );
    expect(page.text).toContain('Given up after 30 attempts');
    expect(page.text).toContain('<code>550 mailbox unavailable</code>');
    expect(page.text).toContain('href="/admin/mail" aria-current="page">Mail</a>');
  });

  it('narrows the list to mails not yet sent, given up or sent', async () => {
    const to = async (query: string) =>
      ((await (await api(query)).json()) as { to: string }[]).map((m) => m.to);
    expect(await to('?state=unsent')).toEqual(['queued@example.com', 'retrying@example.com']);
    expect(await to('?state=given_up')).toEqual(['given-up@example.com']);
    expect(await to('?state=sent')).toEqual([
      'fresh@example.com',
      'mail-admin@example.com',
      'sent@example.com',
    ]);
    const page = await admin.browser.request('/admin/mail?state=given_up');
    expect(page.status).toBe(200);
    expect([...page.text.matchAll(/<th scope="row">([^<]+)<\/th>/g)].map((m) => m[1])).toEqual([
      'given-up@example.com',
    ]);
    expect(page.text).toContain('href="/admin/mail?state=given_up" aria-current="page">Given up</a>');
  });

  it('pages through every mail, newest first, once each, even when mails were queued in the same instant', async () => {
    const same = new Date(Date.now() - 10 * 3_600_000);
    await sesame.db
      .insertInto('mail_outbox')
      .values(
        Array.from({ length: 55 }, (_, i) => ({
          template: 'notice',
          to_address: `tie-${i}@example.com`,
          subject: 'Tie',
          next_attempt_at: null,
          sent_at: same,
          created_at: same,
        })),
      )
      .execute();
    const all = ((await (await api('?limit=500')).json()) as { id: string }[]).map((m) => m.id);
    expect(all).toHaveLength(61);
    const seen: string[] = [];
    let next: string | undefined = '/api/admin/mail?limit=7';
    while (next) {
      const response: Response = await fetch(`${sesame.baseUrl}${next}`, {
        headers: { authorization: `Bearer ${apiKey}` },
      });
      expect(response.status).toBe(200);
      seen.push(...((await response.json()) as { id: string }[]).map((m) => m.id));
      next = /^<([^>]+)>; rel="next"$/.exec(response.headers.get('link') ?? '')?.[1];
    }
    expect(seen).toEqual(all);

    // The page shows 50 and links the other 8 sent, keeping the filter.
    const first = await admin.browser.request('/admin/mail?state=sent');
    expect([...first.text.matchAll(/<th scope="row">/g)]).toHaveLength(50);
    const link = /<a href="([^"]+)" rel="next">Next page<\/a>/.exec(first.text)![1]!.replaceAll('&amp;', '&');
    expect(link).toMatch(/^\/admin\/mail\?state=sent&after=[0-9a-f-]{36}$/);
    const second = await admin.browser.request(link);
    expect([...second.text.matchAll(/<th scope="row">/g)]).toHaveLength(8);
    expect(second.text).toContain('First page');
    expect(second.text).not.toContain('rel="next"');
  });

  it('refuses a bad state, cursor or limit with a 400 that names it', async () => {
    for (const [query, field] of [
      ['?state=bogus', 'state'],
      ['?state=sent&state=unsent', 'state'],
      ['?state=', 'state'],
      ['?after=not-an-id', 'after'],
      ["?after=1'%20or%201=1--", 'after'],
      ['?limit=0', 'limit'],
      ['?limit=501', 'limit'],
      ['?limit=abc', 'limit'],
    ]) {
      const response = await api(query!);
      expect(response.status).toBe(400);
      const body = (await response.json()) as { fields: Record<string, string> };
      expect(Object.keys(body.fields)).toEqual([field]);
      const page = await admin.browser.request(`/admin/mail${query}`);
      expect(page.status).toBe(query!.startsWith('?limit') ? 200 : 400);
    }
    // A cursor naming no mail (say, one cleaned up since) is an empty page, not an error.
    const gone = await api('?after=00000000-0000-4000-8000-000000000000');
    expect(gone.status).toBe(200);
    expect(await gone.json()).toEqual([]);
  });

  it('is for admins only: a person who is not one gets 403, a request without a key 401', async () => {
    const someone = new Person(sesame.baseUrl);
    await someone.browser.follow(
      await someone.signUp(asPage(await someone.browser.follow('/admin')), 'not-admin@example.com'),
    );
    const page = asPage(await someone.browser.follow('/admin/mail'));
    expect(page.status).toBe(403);
    expect(page.text).not.toContain('queued@example.com');
    expect((await fetch(`${sesame.baseUrl}/api/admin/mail`)).status).toBe(401);
  });
});

describe('the mail page without SMTP_URL', () => {
  let sesame: TestApp;
  beforeAll(async () => {
    sesame = await startTestApp();
  });
  afterAll(() => sesame?.stop());

  it('says that mail is not configured', async () => {
    const admin = await signUpAdmin(sesame, 'no-mail-admin@example.com');
    const page = await admin.browser.request('/admin/mail');
    expect(page.status).toBe(200);
    expect(page.text).toContain('Mail is not configured');
    expect(page.text).toContain('No mails here.');
  });
});
