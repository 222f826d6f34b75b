import type { Config } from '../config.js';
import type { Db } from '../db/connect.js';
import { auditQueries } from '../db/queries/audit.js';
import { usersQueries } from '../db/queries/users.js';
import type { User } from '../db/schema.js';
import type { Locale } from '../i18n/locales.js';
import type { Logger } from '../logger.js';
import { mailLocale } from '../mail/compose.js';
import { queueMail, wakeMailOutboxes } from '../mail/outbox.js';
import { createOneTimeLink, SELF_SERVICE_ACTOR } from './oneTimeLinks.js';

/**
 * The command that makes a recovery link for an existing account on the server (`users invite`
 * without `--admin`; see src/cli/users.ts), as the notice to an administrator names it. The
 * address is single-quoted for a POSIX shell: a plain address may hold `` ` ``, `$` or `|`,
 * and an operator pastes the line as it is.
 */
export const recoveryLinkCommand = (email: string) =>
  `sesame users invite --email '${email.replaceAll("'", "'\\''")}'`;

/**
 * "Lost your passkey?": mails a short-lived recovery link to `email` when an enabled account
 * has that address (in its owner's language, else in `locale`), and does nothing otherwise. The caller answers the same whatever the
 * address and does not wait for this (see the route), so neither the answer nor its timing
 * says whether the account exists. Using the link ends every other sign-in of the account
 * (see redeemOneTimeLink). It replaces only the earlier self-service links for the address:
 * a link an admin issued keeps working, whoever posts the address.
 *
 * An administrator is never recovered this way: whoever reads their mailbox would become
 * them. Their address gets no link but a notice (see {@link sendAdminRecoveryNotice}), bounded
 * by the same limits as the link's mail (the route counts the request before either).
 */
export async function requestSelfRecovery(
  db: Db,
  config: Config,
  email: string,
  locale?: Locale,
): Promise<void> {
  if (!config.selfRecovery) return;
  const user = await usersQueries.findByEmail(db, email);
  if (!user || user.disabled_at) return;
  if (user.is_admin) {
    await sendAdminRecoveryNotice(db, config, user, locale);
    return;
  }
  try {
    await createOneTimeLink(db, config, {
      email: user.email,
      purpose: 'recovery',
      actor: SELF_SERVICE_ACTOR,
      selfService: true,
      locale,
    });
  } catch (error) {
    // Made an administrator since the lookup above: createOneTimeLink refused it under the
    // account row's lock, and the notice goes instead.
    const now = await usersQueries.findByEmail(db, email);
    if (!now?.is_admin || now.disabled_at) throw error;
    await sendAdminRecoveryNotice(db, config, now, locale);
  }
}

/**
 * Tells an administrator that someone asked "Lost your passkey?" for their address, that no
 * link was made (administrators are recovered only by another administrator or the CLI), and
 * how to get one: queued with its audit entry, `link.recovery.refused`, in one transaction.
 */
async function sendAdminRecoveryNotice(db: Db, config: Config, user: User, locale?: Locale): Promise<void> {
  const emailed = await db.transaction().execute(async (trx) => {
    const queued = await queueMail(
      trx,
      config,
      'adminRecovery',
      user.email,
      {
        email: user.email,
        adminUrl: `${config.issuer}/admin/users`,
        command: recoveryLinkCommand(user.email),
      },
      mailLocale(config, user, locale),
    );
    await auditQueries.record(trx, SELF_SERVICE_ACTOR, 'link.recovery.refused', user.id, {
      email: user.email,
      reason: 'administrator',
      notice: queued,
    });
    return queued;
  });
  if (emailed) wakeMailOutboxes();
}

/** Starts {@link requestSelfRecovery} without waiting for it; a failure is logged (never the link). */
export function requestSelfRecoveryInBackground(
  db: Db,
  config: Config,
  log: Logger,
  email: string,
  locale?: Locale,
): void {
  requestSelfRecovery(db, config, email, locale).catch((error: unknown) => {
    log.warn('self-service recovery failed', { error: (error as Error).message });
  });
}
