import type { Db } from '../db/connect.js';
import { apiKeysQueries } from '../db/queries/apiKeys.js';
import { auditQueries } from '../db/queries/audit.js';
import { oneTimeTokensQueries } from '../db/queries/oneTimeTokens.js';
import { usersQueries } from '../db/queries/users.js';
import { forbidden } from '../http/errors.js';

/** What an administrator had handed out and lost with their administration. */
export interface WithdrawnHandouts {
  /** The ids of the admin API keys they created that were active until now. */
  apiKeys: string[];
  /** How many unused one-time links they (or those keys) issued were cancelled. */
  links: number;
}

/**
 * Takes back what an administrator handed out on their own authority when they lose it
 * (demoted, disabled, deleted, or their account taken over by the owner of its address):
 * the admin API keys they created are revoked, and the one-time links they or any of their
 * keys issued and nobody used yet are cancelled. A link is a way into an account (an admin
 * invite makes an administrator; a recovery link adds a passkey to someone's account), so
 * none outlives the authority that issued it; the admin who remains issues new ones.
 * Keys and links made with the CLI (`cli:<name>`) have no admin behind them and stay.
 * Run it in the transaction that changes the account.
 */
export async function withdrawAdminHandouts(
  trx: Db,
  userId: string,
  actor: string,
): Promise<WithdrawnHandouts> {
  const issuer = `user:${userId}`;
  const keyIds = await apiKeysQueries.idsCreatedBy(trx, issuer);
  const revoked = await apiKeysQueries.revokeCreatedBy(trx, issuer);
  const links = await oneTimeTokensQueries.invalidateUnusedCreatedBy(trx, [
    issuer,
    ...keyIds.map((id) => `api-key:${id}`),
  ]);
  const apiKeys = revoked.map((key) => key.id);
  if (apiKeys.length > 0 || links > 0) {
    await auditQueries.record(trx, actor, 'user.admin_handouts_withdrawn', userId, {
      api_keys: apiKeys,
      links,
    });
  }
  return { apiKeys, links };
}

/**
 * Refuses (403) when `actor` is an administrator's account (`user:<id>`) that is no longer an
 * administrator who can sign in. Run it in the transaction that hands something out: it takes
 * the administrators lock (usersQueries.lockAdministrators) first, so a request that passed
 * the admin check just before the admin was demoted or disabled cannot then create what that
 * change just withdrew. Other actors (the CLI, an API key) pass without either.
 */
export async function assertStillAdministrator(trx: Db, actor: string): Promise<void> {
  if (!actor.startsWith('user:')) return;
  await usersQueries.lockAdministrators(trx);
  const user = await usersQueries.findById(trx, actor.slice('user:'.length));
  if (!user?.is_admin || user.disabled_at) throw forbidden('You are no longer an administrator');
}
