import type { Db } from '../db/connect.js';
import { auditQueries } from '../db/queries/audit.js';
import { usersQueries } from '../db/queries/users.js';
import type { User } from '../db/schema.js';
import { notFound } from '../http/errors.js';
import type { Locale } from '../i18n/locales.js';

/** The account, or 404: the signed-in account may have been deleted meanwhile. */
async function existingUser(db: Db, userId: string): Promise<User> {
  const user = await usersQueries.findById(db, userId);
  if (!user) throw notFound('No such account.').localized('errors.noSuchAccount');
  return user;
}

/**
 * Changes the person's display name (validated at the edge: up to 100 characters), or removes
 * it (null). The name it is already changes nothing and records nothing: a script posting it
 * over and over would otherwise fill the audit log.
 */
export async function updateProfileName(db: Db, userId: string, name: string | null): Promise<User> {
  const current = await existingUser(db, userId);
  if (current.name === name) return current;
  const user = await usersQueries.update(db, userId, { name });
  if (!user) throw notFound('No such account.').localized('errors.noSuchAccount');
  await auditQueries.record(db, `user:${userId}`, 'user.rename', userId);
  return user;
}

/**
 * Stores the language the person chose for Sesame's pages (validated at the edge); null: per
 * request. The language it is already changes nothing and records nothing, as for the name.
 */
export async function updateProfileLocale(db: Db, userId: string, locale: Locale | null): Promise<User> {
  const current = await existingUser(db, userId);
  if (current.locale === locale) return current;
  const user = await usersQueries.setLocale(db, userId, locale);
  if (!user) throw notFound('No such account.').localized('errors.noSuchAccount');
  await auditQueries.record(db, `user:${userId}`, 'user.locale', userId);
  return user;
}
