import type { Transporter } from 'nodemailer';
import type { Config, MailConfig } from '../config.js';
import type { Db } from '../db/connect.js';
import { auditQueries } from '../db/queries/audit.js';
import { type ClaimedMail, mailOutboxQueries } from '../db/queries/mailOutbox.js';
import type { Locale } from '../i18n/locales.js';
import type { Logger } from '../logger.js';
import { mailDeliveries } from '../metrics.js';
import { type OutboxTiming, OutboxWorker } from '../outboxWorker.js';
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
 * only other copy of a link's token, so the row's bodies are emptied once it is done.
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
  await mailOutboxQueries.enqueue(trx, composeMail(config, template, to, data, locale));
  return true;
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
    let error: string;
    try {
      await (await this.#transport).sendMail({
        from: this.mail.from,
        to: mail.to_address,
        subject: mail.subject,
        text: mail.text_body,
        html: mail.html_body,
      });
      await mailOutboxQueries.markSent(this.db, mail.id);
      mailDeliveries.inc({ template: mail.template, result: 'sent' });
      return;
    } catch (failure) {
      error = (failure as Error).message;
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
    await mailOutboxQueries.markFailed(this.db, mail.id, error, null);
    await auditQueries.record(this.db, 'system', 'mail.give_up', mail.to_address, this.#details(mail, error));
    mailDeliveries.inc({ template: mail.template, result: 'given_up' });
    this.log.warn('mail given up', {
      mail: mail.id,
      template: mail.template,
      attempts: mail.attempts,
      error,
    });
  }
}
