import type { Config } from '../config.js';
import type { Db } from '../db/connect.js';
import { usersQueries } from '../db/queries/users.js';
import type { Locale } from '../i18n/locales.js';
import type { Logger } from '../logger.js';
import { createOneTimeLink, SELF_SERVICE_ACTOR } from './oneTimeLinks.js';

/**
 * "Lost your passkey?": mails a short-lived recovery link to `email` when an enabled account
 * has that address (in its owner's language, else in `locale`), and does nothing otherwise. The caller answers the same whatever the
 * address and does not wait for this (see the route), so neither the answer nor its timing
 * says whether the account exists. Using the link ends every other sign-in of the account
 * (see redeemOneTimeLink). It replaces only the earlier self-service links for the address:
 * a link an admin issued keeps working, whoever posts the address.
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
  await createOneTimeLink(db, config, {
    email: user.email,
    purpose: 'recovery',
    actor: SELF_SERVICE_ACTOR,
    selfService: true,
    locale,
  });
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
