import type { Transporter } from 'nodemailer';
import type { Config, MailConfig } from '../config.js';
import { openAtRest, sealAtRest } from '../crypto.js';
import type { Db } from '../db/connect.js';
import { auditQueries } from '../db/queries/audit.js';
import { type ClaimedMail, mailOutboxQueries, type NewMail } from '../db/queries/mailOutbox.js';
import type { Locale } from '../i18n/locales.js';
import type { Logger } from '../logger.js';
import { mailDeliveries } from '../metrics.js';
import { type OutboxTiming, OutboxWorker } from '../outboxWorker.js';
import { isPlainEmailAddress } from '../text.js';
import { composeMail, type MailData, type MailTemplate } from './compose.js';

/**
 * A mail server that is down for a while gets the mails once it is back; the first waits
 * are short, since a one-time link is wanted now, and they grow so that a dead server costs
 * a few dozen attempts per mail. A mail still unsent after a day is given up: its link has
 * most likely expired by then.
 */
export const MAIL_TIMING: OutboxTiming = {
  pollMs: 2_000,
  backoffMs: [5_000, 15_000, 60_000, 300_000, 1_800_000],
  giveUpAfterMs: 24 * 3_600_000,
  leaseMs: 120_000,
  // nodemailer's connection, greeting and socket timeouts; a whole send stays well within the lease.
  timeoutMs: 20_000,
};

/** The mail outboxes running in this process, woken when a request here queued a mail. */
const running = new Set<OutboxWorker<ClaimedMail>>();

/** Wakes this process's mail outboxes: call once the transaction that queued mail committed. */
export function wakeMailOutboxes(): void {
  for (const outbox of running) outbox.wake();
}

/**
 * Queues one mail in `trx` (the transaction that decided to send it), written in `locale`
 * (see mailLocale), when mail is configured; once that committed, wake the outbox (wakeMailOutboxes). The mail holds the
 * only other copy of a link's token, so the row's bodies are sealed with KEY_ENCRYPTION_SECRET
 * when it is set (see sealMailBodies) and emptied once the mail is done.
 * @returns whether a mail was queued (false without SMTP_URL).
 */
export async function queueMail<T extends MailTemplate>(
  trx: Db,
  config: Config,
  template: T,
  to: string,
  data: MailData[T],
  locale: Locale,
): Promise<boolean> {
  if (!config.mail) return false;
  const mail = composeMail(config, template, to, data, locale);
  await mailOutboxQueries.enqueue(trx, sealMailBodies(mail, config.keyEncryptionSecret));
  return true;
}

/**
 * Encrypts a mail's bodies at rest (AES-256-GCM, see sealAtRest) when a key-encryption
 * secret is set: they hold a one-time link, a bearer secret, until the mail is sent. The
 * subject, recipient and template stay readable (the subject names only the issuer and
 * the kind of mail), for the outbox's admin page. Without a secret they stay as they are.
 */
export function sealMailBodies(mail: NewMail, secret: string | undefined): NewMail {
  return { ...mail, text: sealAtRest(mail.text, secret), html: sealAtRest(mail.html, secret) };
}

/**
 * The bodies of a claimed mail as the worker sends them: sealed ones opened with the secret,
 * ones queued before the secret was set as they are.
 * @throws when a body is sealed and the secret is unset or another (the message says so).
 */
export function openMailBodies(
  mail: { text_body: string; html_body: string },
  secret: string | undefined,
): { text: string; html: string } {
  try {
    return { text: openAtRest(mail.text_body, secret), html: openAtRest(mail.html_body, secret) };
  } catch {
    throw new Error(
      secret
        ? 'the mail was encrypted with another KEY_ENCRYPTION_SECRET than this instance has'
        : 'the mail is encrypted, but KEY_ENCRYPTION_SECRET is not set on this instance',
    );
  }
}

/**
 * A nodemailer SMTP transport for the configured server. nodemailer is loaded here, not at
 * start: a Sesame without mail never loads it, and one with mail answers sooner after a start.
 */
export async function smtpTransport(mail: MailConfig, timeoutMs: number): Promise<Transporter> {
  const { default: nodemailer } = await import('nodemailer');
  return nodemailer.createTransport({
    host: mail.host,
    port: mail.port,
    secure: mail.secure,
    auth: mail.auth,
    // A connection per mail: nothing stays open to a server that may go away between mails.
    connectionTimeout: timeoutMs,
    greetingTimeout: timeoutMs,
    socketTimeout: timeoutMs,
    // nodemailer logs nothing unless asked: a mail's body (a link) never reaches a log.
    logger: false,
  });
}

/**
 * Sends the mails of `mail_outbox` by SMTP. A failed attempt is retried with backoff; the
 * first failure of a mail and a mail given up are in the activity log (audit events) and
 * counted in /metrics. Several instances on one database share the rows (see claimDue).
 */
export class MailOutbox extends OutboxWorker<ClaimedMail> {
  protected readonly name = 'mail outbox';
  readonly #transport: Promise<Transporter>;

  constructor(
    private readonly db: Db,
    private readonly mail: MailConfig,
    /** KEY_ENCRYPTION_SECRET, to open bodies sealed when they were queued. */
    private readonly keyEncryptionSecret: string | undefined,
    log: Logger,
    timing: Partial<OutboxTiming> = {},
  ) {
    const full = { ...MAIL_TIMING, ...timing };
    super(log, running, full);
    this.#transport = smtpTransport(mail, full.timeoutMs);
  }

  override async stop(): Promise<void> {
    await super.stop();
    (await this.#transport).close();
  }

  protected claim(limit: number, leaseSeconds: number): Promise<ClaimedMail[]> {
    return mailOutboxQueries.claimDue(this.db, limit, leaseSeconds);
  }

  protected async attempt(mail: ClaimedMail): Promise<void> {
    if (mail.text_body === null || mail.html_body === null) {
      return this.#giveUp(mail, 'the mail has no body');
    }
    // Addresses are checked where they are typed; one stored before that rule could be a
    // display name or a list, which the mail library would send to someone else.
    if (!isPlainEmailAddress(mail.to_address)) {
      return this.#giveUp(mail, 'the address is not one plain email address');
    }
    let error: string;
    try {
      // Opened just before the send, and kept nowhere else: a failure is retried like any other.
      const { text, html } = openMailBodies(
        { text_body: mail.text_body, html_body: mail.html_body },
        this.keyEncryptionSecret,
      );
      await (await this.#transport).sendMail({
        from: this.mail.from,
        to: mail.to_address,
        subject: mail.subject,
        text,
        html,
      });
      await mailOutboxQueries.markSent(this.db, mail.id);
      mailDeliveries.inc({ template: mail.template, result: 'sent' });
      return;
    } catch (failure) {
      error = (failure as Error).message;
      // The server refused the recipient or the message for good (RFC 5321 §4.2.1: 550 no
      // such mailbox, 552 too large, 553 bad address, 554 refused; 501, a syntax error, in
      // answer to the recipient): the same mail would be refused again, hourly for a day.
      // Other failures (4xx, a lost connection, 530/535 authentication, a 501 to another
      // command: what the operator fixes) are tried again.
      const { responseCode: code, command } = failure as { responseCode?: unknown; command?: unknown };
      if (
        typeof code === 'number' &&
        ((code >= 550 && code <= 554) || (code === 501 && command === 'RCPT TO'))
      )
        return this.#giveUp(mail, error);
    }
    const retryAt = this.retryAt(mail);
    if (!retryAt) return this.#giveUp(mail, error);
    await mailOutboxQueries.markFailed(this.db, mail.id, error, retryAt);
    // One entry per mail, at its first failure: admins see that mail is stuck without a flood.
    if (mail.attempts === 1) {
      await auditQueries.record(this.db, 'system', 'mail.retry', mail.to_address, this.#details(mail, error));
    }
    mailDeliveries.inc({ template: mail.template, result: 'retry' });
    this.log.warn('mail not sent, will retry', {
      mail: mail.id,
      template: mail.template,
      attempts: mail.attempts,
      error,
    });
  }

  #details(mail: ClaimedMail, error: string) {
    return { mail: mail.id, template: mail.template, attempts: mail.attempts, error };
  }

  async #giveUp(mail: ClaimedMail, error: string): Promise<void> {
    // One transaction: nobody sees the mail given up without its entry in the activity log.
    await this.db.transaction().execute(async (trx) => {
      await mailOutboxQueries.markFailed(trx, mail.id, error, null);
      await auditQueries.record(trx, 'system', 'mail.give_up', mail.to_address, this.#details(mail, error));
    });
    mailDeliveries.inc({ template: mail.template, result: 'given_up' });
    this.log.warn('mail given up', {
      mail: mail.id,
      template: mail.template,
      attempts: mail.attempts,
      error,
    });
  }
}
