import type { Config } from '../config.js';
import type { Db } from '../db/connect.js';
import { auditQueries } from '../db/queries/audit.js';
import { rateLimitHitsQueries } from '../db/queries/rateLimitHits.js';
import type { User } from '../db/schema.js';
import type { Locale } from '../i18n/locales.js';
import type { Logger } from '../logger.js';
import { type MailData, mailLocale } from './compose.js';
import { queueMail, wakeMailOutboxes } from './outbox.js';

/** What a security notice tells the account's owner (views/mail/notice.*.eta word each one). */
export type SecurityNotice =
  | 'passkey_added'
  | 'passkey_removed'
  | 'passkey_blocked'
  | 'recovery_used'
  | 'admin_granted';

/**
 * Security notices an account whose address nobody proved gets in an hour, at most: the hour
 * starts with its first notice. Anyone may sign up with someone else's address and add, rename
 * and delete passkeys over and over; without a cap each change mailed that address. A proven
 * address gets every notice (whoever makes the changes holds its owner's sign-in, and the
 * owner should hear of each), and so does any address for the notices only its owner can
 * answer ({@link NEVER_HELD_BACK}). The count is in the database (rate_limit_hits), so it holds
 * across instances; the notices past it are not mailed, and each is recorded in the audit
 * log (`mail.notice_held_back`).
 */
export const SECURITY_NOTICES_PER_HOUR = 5;
const SECURITY_NOTICE_WINDOW_SECONDS = 3_600;

/**
 * Notices never held back: a recovery link used and administration given (neither can be set
 * off by whoever signed up with the address). A passkey blocked as a copy can be: an
 * authenticator says its own counter, so it counts like the other passkey notices.
 */
const NEVER_HELD_BACK: ReadonlySet<SecurityNotice> = new Set(['recovery_used', 'admin_granted']);

type NoticeUser = Pick<User, 'id' | 'email' | 'email_verified' | 'locale' | 'signup_locale'>;

type NoticeOptions = {
  passkeyName?: string | null;
  locale?: Locale;
  /** For a recovery: the passkeys the account had before, removed with the link's use or kept. */
  otherPasskeys?: MailData['notice']['otherPasskeys'];
};

/**
 * Queues a security notice to the account's owner in `trx`, so that it goes if and only if
 * the change it tells of commits; false without mail, or when an account whose address
 * nobody proved had its {@link SECURITY_NOTICES_PER_HOUR} this hour (then the audit log says
 * one was held back).
 * The outbox is woken by the caller once it committed ({@link wakeMailOutboxes}). A passkey's
 * name, which its holder chooses, is told only to an address someone proved: to another, the
 * mail would carry the text of whoever signed up with it.
 */
export async function queueSecurityNotice(
  trx: Db,
  config: Config,
  user: NoticeUser,
  notice: SecurityNotice,
  options: NoticeOptions = {},
): Promise<boolean> {
  if (!config.mail) return false;
  if (!user.email_verified && !NEVER_HELD_BACK.has(notice)) {
    const { hits } = await rateLimitHitsQueries.hit(
      trx,
      `security-notice:${user.id}`,
      SECURITY_NOTICE_WINDOW_SECONDS,
    );
    if (hits > SECURITY_NOTICES_PER_HOUR) {
      await auditQueries.record(trx, 'system', 'mail.notice_held_back', user.id, { notice });
      return false;
    }
  }
  return queueMail(
    trx,
    config,
    'notice',
    user.email,
    {
      notice,
      email: user.email,
      passkeyName: user.email_verified ? (options.passkeyName ?? null) : null,
      at: new Date(),
      accountUrl: `${config.issuer}/account`,
      otherPasskeys: options.otherPasskeys ?? null,
    },
    mailLocale(config, user, options.locale),
  );
}

/**
 * Mails the account's owner that something changed its security: a passkey added or
 * removed, a recovery link used, administration granted. Sent after the change committed,
 * so a notice never tells of a change that did not happen; nothing without mail, or past an
 * unproven address's {@link SECURITY_NOTICES_PER_HOUR} (see queueSecurityNotice). A failure
 * to queue is logged and does not undo the change. `locale` is the language of the
 * person's request that made the change, when they made it themselves (see mailLocale).
 * `otherPasskeys`, for a recovery, says how many of the account's passkeys went with it, or
 * still sign in (then the mail says to remove one that was on a lost device).
 */
export async function sendSecurityNotice(
  db: Db,
  config: Config,
  log: Pick<Logger, 'warn'> | undefined,
  user: NoticeUser,
  notice: SecurityNotice,
  options: NoticeOptions = {},
): Promise<void> {
  if (!config.mail) return;
  try {
    await queueSecurityNotice(db, config, user, notice, options);
    wakeMailOutboxes();
  } catch (error) {
    log?.warn('security notice not queued', { user: user.id, notice, error: (error as Error).message });
  }
}
