import { setTimeout as sleep } from 'node:timers/promises';
import { createApiKey } from '../../src/admin/apiKeys.js';
import { isSealed, sealAtRest } from '../../src/crypto.js';
import { mailOutboxQueries } from '../../src/db/queries/mailOutbox.js';
import { linkIn, startAppWithMail } from '../support/mailServer.js';
import { cliJsonOn } from '../support/sesameProcess.js';
import type { TestApp } from '../support/testApp.js';

const SECRET = 'a key-encryption secret of 32+ characters';

type WithMail = Awaited<ReturnType<typeof startAppWithMail>>;

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
    await mailOutboxQueries.enqueue(sesame.db, {
      template: 'invite',
      to: 'other-secret@example.com',
      subject: 'You are invited to Acme',
      text: sealAtRest('text', 'another secret of at least 32 characters'),
      html: sealAtRest('<p>html</p>', 'another secret of at least 32 characters'),
    });
    const row = await mailRowTo(sesame, 'other-secret@example.com', (r) => r.last_error !== null);
    expect(row.last_error).toBe(
      'the mail was encrypted with another KEY_ENCRYPTION_SECRET than this instance has',
    );
    expect(row.next_attempt_at).not.toBeNull();
    expect(mail.to('other-secret@example.com')).toHaveLength(0);
  });
});
