import type { Config } from '../config.js';
import type { Db } from '../db/connect.js';
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

type NoticeOptions = {
  passkeyName?: string | null;
  locale?: Locale;
  /** For a recovery: the passkeys the account had before, removed with the link's use or kept. */
  otherPasskeys?: MailData['notice']['otherPasskeys'];
};

/**
 * Queues a security notice to the account's owner in `trx`, so that it goes if and only if
 * the change it tells of commits; false without mail. The outbox is woken by the caller once
 * it committed ({@link wakeMailOutboxes}).
 */
export function queueSecurityNotice(
  trx: Db,
  config: Config,
  user: Pick<User, 'email' | 'locale' | 'signup_locale'>,
  notice: SecurityNotice,
  options: NoticeOptions = {},
): Promise<boolean> {
  return queueMail(
    trx,
    config,
    'notice',
    user.email,
    {
      notice,
      email: user.email,
      passkeyName: options.passkeyName ?? null,
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
 * so a notice never tells of a change that did not happen; nothing without mail. A failure
 * to queue is logged and does not undo the change. `locale` is the language of the
 * person's request that made the change, when they made it themselves (see mailLocale).
 * `otherPasskeys`, for a recovery, says how many of the account's passkeys went with it, or
 * still sign in (then the mail says to remove one that was on a lost device).
 */
export async function sendSecurityNotice(
  db: Db,
  config: Config,
  log: Pick<Logger, 'warn'> | undefined,
  user: Pick<User, 'id' | 'email' | 'locale' | 'signup_locale'>,
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
