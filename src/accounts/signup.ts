import type { Config } from '../config.js';
import type { Db } from '../db/connect.js';
import { auditQueries } from '../db/queries/audit.js';
import { credentialsQueries } from '../db/queries/credentials.js';
import { usersQueries } from '../db/queries/users.js';
import type { User } from '../db/schema.js';
import { conflict } from '../http/errors.js';
import type { Locale } from '../i18n/locales.js';
import { wakeMailOutboxes } from '../mail/outbox.js';
import type { VerifiedRegistration } from '../webauthn/registration.js';
import { queueWelcomeMail } from './emailVerification.js';
import { namedPasskey } from './passkeys.js';

export async function emailTaken(db: Db, email: string): Promise<boolean> {
  return (await usersQueries.findByEmail(db, email)) !== undefined;
}

/**
 * Creates the account and its first passkey in one transaction: either both exist or
 * neither does, and with mail set queues the welcome mail whose link verifies the address.
 * Returns undefined when the email was taken meanwhile. `beforeCreating` runs in that
 * transaction once the email and the passkey are found free: what it throws creates nothing,
 * and what it writes commits with the account or not at all.
 */
export async function createAccountWithPasskey(
  db: Db,
  config: Config,
  input: {
    userId: string;
    email: string;
    name: string | null;
    isAdmin?: boolean;
    credential: VerifiedRegistration['credential'];
    /** The sign-up page's language: the welcome mail's, the passkey's name's, and kept as the account's. */
    locale?: Locale;
  },
  beforeCreating?: (trx: Db) => Promise<void>,
): Promise<User | undefined> {
  try {
    let welcomed = false;
    const created = await db.transaction().execute(async (trx) => {
      if (await usersQueries.findByEmail(trx, input.email)) return undefined;
      // A passkey already registered (to anyone) is said to be one, not taken for a taken email.
      if (await credentialsQueries.findById(trx, input.credential.id)) {
        throw conflict('This passkey is already registered.').localized('errors.passkeyAlreadyRegistered');
      }
      await beforeCreating?.(trx);
      const user = await usersQueries.insert(trx, {
        id: input.userId,
        email: input.email,
        name: input.name,
        isAdmin: input.isAdmin ?? false,
        // Self sign-up only claims the address: a one-time link sent there verifies it.
        emailVerified: false,
        signupLocale: input.locale,
      });
      await credentialsQueries.insert(trx, {
        ...namedPasskey(input.credential, input.locale ?? config.defaultLocale),
        userId: user.id,
      });
      await auditQueries.record(trx, `user:${user.id}`, 'user.signup', user.id, {
        credential: input.credential.id,
      });
      welcomed = await queueWelcomeMail(trx, config, user, input.locale);
      return user;
    });
    if (welcomed) wakeMailOutboxes();
    return created;
  } catch (error) {
    // Two sign-ups raced for one email: the unique index let only one through.
    if ((error as { code?: string }).code === '23505') return undefined;
    throw error;
  }
}
