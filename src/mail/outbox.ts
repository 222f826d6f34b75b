import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Transporter } from 'nodemailer';
import type { Config, MailConfig } from '../config.js';
import { type AtRestSecrets, openAtRest, SealedElsewhereError, sealAtRest } from '../crypto.js';
import type { Db } from '../db/connect.js';
import { auditQueries } from '../db/queries/audit.js';
import { emailVerificationsQueries } from '../db/queries/emailVerifications.js';
import { type ClaimedMail, mailOutboxQueries, type NewMail } from '../db/queries/mailOutbox.js';
import { oneTimeTokensQueries } from '../db/queries/oneTimeTokens.js';
import type { Locale } from '../i18n/locales.js';
import { type Logger, redactText } from '../logger.js';
import { mailDeliveries } from '../metrics.js';
import { type OutboxTiming, OutboxWorker } from '../outboxWorker.js';
import { sealContext } from '../sealContext.js';
import { isPlainEmailAddress, printable } from '../text.js';
import { composeMail, type MailData, type MailTemplate } from './compose.js';
import { messageIdFor } from './messageId.js';
import { isRefusedForGood } from './refusals.js';

/**
 * A mail server that is down for a while gets the mails once it is back; the first waits
 * are short, since a one-time link is wanted now, and they grow so that a dead server costs
 * a few dozen attempts per mail. A mail still unsent after a day is given up; one whose
 * one-time link expired, was used or replaced meanwhile is given up at its next attempt.
 */
export const MAIL_TIMING: OutboxTiming = {
  pollMs: 2_000,
  backoffMs: [5_000, 15_000, 60_000, 300_000, 1_800_000],
  giveUpAfterMs: 24 * 3_600_000,
  // A claimed mail is this instance's for two minutes. Its send is cut off after one (a
  // server that answers each line just in time would otherwise outlast the lease, and
  // another instance would send the mail again); the rest is for recording that it went.
  leaseMs: 120_000,
  timeoutMs: 60_000,
};

/** nodemailer's connection, greeting and socket timeouts: a server silent this long is gone. */
const SMTP_STEP_TIMEOUT_MS = 20_000;

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
 * when it is set (see sealMailBodies) and emptied once the mail is done. `linkHash`, the
 * stored hash of the one-time link in the mail, lets the outbox give the mail up once that
 * link cannot be used (see linkGone).
 * @returns whether a mail was queued (false without SMTP_URL).
 */
export async function queueMail<T extends MailTemplate>(
  trx: Db,
  config: Config,
  template: T,
  to: string,
  data: MailData[T],
  locale: Locale,
  linkHash?: string,
): Promise<boolean> {
  if (!config.mail) return false;
  const mail = composeMail(config, template, to, data, locale);
  await mailOutboxQueries.enqueue(trx, { ...sealMailBodies(mail, config.keyEncryptionSecret), linkHash });
  return true;
}

/** Why a mail's one-time link can no longer be used: the audit entry's `reason`, and its words. */
interface LinkGone {
  reason: 'link_used' | 'link_expired' | 'link_replaced';
  error: string;
}

/**
 * Whether the one-time link of a mail still to send can no longer be used: the mail would
 * deliver a dead link (a self-service recovery link lives 30 minutes, while a mail is retried
 * for a day). Welcome and confirmation mails' links are in email_verifications, whose row a
 * newer link replaces; invites and recovery links in one_time_tokens, where a cancelled one is
 * expired.
 */
async function linkGone(db: Db, template: string, linkHash: string): Promise<LinkGone | undefined> {
  const link =
    template === 'welcome' || template === 'confirmation'
      ? await emailVerificationsQueries.findByHash(db, linkHash)
      : await oneTimeTokensQueries.findByHash(db, linkHash);
  if (!link) return { reason: 'link_replaced', error: 'not sent: its link was replaced by a newer one' };
  if (link.used_at) return { reason: 'link_used', error: 'not sent: its link was already used' };
  if (link.expires_at.getTime() <= Date.now()) {
    return {
      reason: 'link_expired',
      error: 'not sent: its link expired (or was cancelled) before it could go',
    };
  }
  return undefined;
}

/**
 * Encrypts a mail's bodies at rest (AES-256-GCM, see sealAtRest) when a key-encryption
 * secret is set: they hold a one-time link, a bearer secret, until the mail is sent. The
 * subject, recipient and template stay readable (the subject names only the issuer and
 * the kind of mail), for the outbox's admin page. Without a secret they stay as they are.
 * Each body is bound to its column of the mail's row, whose id is drawn here for that.
 */
export function sealMailBodies(mail: NewMail, secret: string | undefined): NewMail & { id: string } {
  const id = mail.id ?? randomUUID();
  return {
    ...mail,
    id,
    text: sealAtRest(mail.text, secret, sealContext.mailBody(id, 'text_body')),
    html: sealAtRest(mail.html, secret, sealContext.mailBody(id, 'html_body')),
  };
}

/**
 * The bodies of a claimed mail as the worker sends them: sealed ones opened with the secret
 * (or the one it replaces, KEY_ENCRYPTION_SECRET_PREVIOUS), ones queued before the secret was
 * set as they are.
 * @throws when a body is sealed and the secret is unset or another (the message says so);
 * SealedElsewhereError for a body sealed for another mail or column.
 */
export function openMailBodies(
  mail: { id: string; text_body: string; html_body: string },
  secrets: AtRestSecrets,
): { text: string; html: string } {
  try {
    return {
      text: openAtRest(mail.text_body, secrets, sealContext.mailBody(mail.id, 'text_body')),
      html: openAtRest(mail.html_body, secrets, sealContext.mailBody(mail.id, 'html_body')),
    };
  } catch (error) {
    if (error instanceof SealedElsewhereError) throw error;
    throw new Error(
      secrets.keyEncryptionSecret
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
  const stepTimeoutMs = Math.min(SMTP_STEP_TIMEOUT_MS, timeoutMs);
  return nodemailer.createTransport({
    host: mail.host,
    port: mail.port,
    secure: mail.secure,
    requireTLS: mail.requireTLS,
    auth: mail.auth,
    // A connection per mail: nothing stays open to a server that may go away between mails.
    connectionTimeout: stepTimeoutMs,
    greetingTimeout: stepTimeoutMs,
    socketTimeout: stepTimeoutMs,
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
    /** KEY_ENCRYPTION_SECRET (and the one it replaces), to open bodies sealed when they were queued. */
    private readonly secrets: AtRestSecrets,
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
    const claimedAt = Date.now();
    if (mail.text_body === null || mail.html_body === null) {
      return this.#giveUp(mail, 'the mail has no body');
    }
    // Given up, not sent: nothing the mail server did, and a dead link helps nobody.
    const gone = mail.link_hash ? await linkGone(this.db, mail.template, mail.link_hash) : undefined;
    if (gone) return this.#giveUp(mail, gone.error, gone.reason);
    // Addresses are checked where they are typed; one stored before that rule could be a
    // display name or a list, which the mail library would send to someone else.
    if (!isPlainEmailAddress(mail.to_address)) {
      return this.#giveUp(mail, 'the address is not one plain email address');
    }
    try {
      // Opened just before the send, and kept nowhere else: a failure is retried like any other.
      const { text, html } = openMailBodies(
        { id: mail.id, text_body: mail.text_body, html_body: mail.html_body },
        this.secrets,
      );
      await (await this.#transport).sendMail({
        // The name and address apart: the library quotes the name, whatever it holds. A copy,
        // as the library writes to the object it is given (and the config is frozen).
        from: { ...this.mail.from },
        // An internationalized domain goes out as punycode (nodemailer does that when the
        // local part is ASCII), so no server needs SMTPUTF8 for it.
        to: mail.to_address,
        subject: mail.subject,
        text,
        html,
        messageId: messageIdFor(mail.id, this.mail.from.address),
        // Sent by a machine, not a person (RFC 3834; Exchange reads its own header): vacation
        // and out-of-office replies are not sent back to MAIL_FROM.
        headers: { 'Auto-Submitted': 'auto-generated', 'X-Auto-Response-Suppress': 'All' },
        // The whole send, whatever each step takes, ends (its connection closed) well
        // before the lease does: no other instance claims a mail still being sent.
        signal: AbortSignal.timeout(this.timing.timeoutMs),
      });
    } catch (failure) {
      // The message quotes the server's reply as it came: its control characters as escapes,
      // since Postgres stores no NUL (the row and its audit entry were then never written, and
      // the mail was tried again at each lease's end, for ever) and a terminal obeys the rest.
      // Any secret in it is cut out first: a server that refuses a message may quote its link,
      // and this text goes to the log, the outbox row and the activity log.
      const error =
        (failure as Error).name === 'AbortError'
          ? `the mail server took longer than ${this.timing.timeoutMs / 1000} s: the send was cut off`
          : printable(redactText((failure as Error).message), true);
      // A body sealed for another row opens on no instance, however often it is tried.
      return this.#failed(mail, error, failure instanceof SealedElsewhereError || isRefusedForGood(failure));
    }
    mailDeliveries.inc({ template: mail.template, result: 'sent' });
    await this.#recordSent(mail, claimedAt);
  }

  /**
   * Records that the server took the mail. A failure to record it (the database away for a
   * moment) is not a failed send, which would send the mail again: it is tried again
   * until the lease ends, by when another instance may claim the mail and send a copy
   * (with the same Message-ID, see messageIdFor).
   */
  async #recordSent(mail: ClaimedMail, claimedAt: number): Promise<void> {
    const fields = { mail: mail.id, template: mail.template, attempts: mail.attempts };
    for (let waitMs = 500; ; waitMs = Math.min(waitMs * 2, 10_000)) {
      try {
        if (!(await mailOutboxQueries.markSent(this.db, mail.id, mail.attempts))) {
          this.log.warn('mail sent, but another attempt had claimed it meanwhile', fields);
        }
        return;
      } catch (failure) {
        const error = (failure as Error).message;
        if (Date.now() + waitMs > claimedAt + this.timing.leaseMs) {
          this.log.error('mail sent, but not recorded as sent: it may be sent again', { ...fields, error });
          return;
        }
        this.log.warn('mail sent, recording it failed: trying again', { ...fields, error });
        await sleep(waitMs);
      }
    }
  }

  /** Records a failed attempt: the mail is retried with backoff, or given up (for good, or after its time). */
  async #failed(mail: ClaimedMail, error: string, forGood: boolean): Promise<void> {
    const retryAt = forGood ? undefined : this.retryAt(mail);
    if (!retryAt) return this.#giveUp(mail, error);
    if (!(await mailOutboxQueries.markFailed(this.db, mail.id, mail.attempts, error, retryAt))) return;
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

  /**
   * Gives the mail up for good. `linkReason` says it was not sent because its one-time link
   * can no longer be used: not a failure of the mail server, so counted apart from those.
   */
  async #giveUp(mail: ClaimedMail, error: string, linkReason?: LinkGone['reason']): Promise<void> {
    const details = { ...this.#details(mail, error), ...(linkReason && { reason: linkReason }) };
    // One transaction: nobody sees the mail given up without its entry in the activity log.
    const held = await this.db.transaction().execute(async (trx) => {
      if (!(await mailOutboxQueries.markFailed(trx, mail.id, mail.attempts, error, null))) return false;
      await auditQueries.record(trx, 'system', 'mail.give_up', mail.to_address, details);
      return true;
    });
    // Another instance claimed the mail meanwhile: its attempt decides.
    if (!held) return;
    mailDeliveries.inc({ template: mail.template, result: linkReason ? 'link_gone' : 'given_up' });
    const fields = { mail: mail.id, template: mail.template, attempts: mail.attempts, error };
    if (linkReason) this.log.info('mail not sent: its link can no longer be used', fields);
    else this.log.warn('mail given up', fields);
  }
}
