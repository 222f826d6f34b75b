import type { Transaction } from 'kysely';
import type { Db } from '../db/connect.js';
import { apiKeysQueries } from '../db/queries/apiKeys.js';
import { auditQueries } from '../db/queries/audit.js';
import { oneTimeTokensQueries } from '../db/queries/oneTimeTokens.js';
import { usersQueries } from '../db/queries/users.js';
import type { Database, User } from '../db/schema.js';
import { inTransaction } from '../db/transactions.js';
import { forbidden, HttpError } from '../http/errors.js';
import { admittedSignIn } from '../requestContext.js';
import { sessionEnded, signInEnded } from './signInEnded.js';

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

/** The refusals of {@link assertAdminAuthority} to someone who is no administrator (any longer). */
const authorityLost = new WeakSet<object>();
const lost = <E extends object>(error: E): E => {
  authorityLost.add(error);
  return error;
};

/**
 * Whether `error` refused an admin page's request because its sender's administration or
 * sign-in ended while it was under way: such a person is no administrator now, and their
 * answer is no admin page (adminRefusals.ts).
 */
export const isAdminAuthorityLost = (error: unknown): boolean =>
  typeof error === 'object' && error !== null && authorityLost.has(error);

/**
 * Refuses when `actor` has lost the authority it acted on since its request was admitted:
 * an administrator's account (`user:<id>`) whose sign-in the request was admitted with has
 * ended meanwhile (403; see {@link signInEnded} and {@link sessionEnded}), or that is no
 * longer an administrator who can sign in (403), or an admin API key (`api-key:<id>`) that
 * was revoked, or whose creator is no longer such an administrator (401, as the key itself
 * now gets). Other actors (the CLI, the system, a person's self-service) have no admin
 * authority to lose and pass.
 * Run it under the administrators lock.
 */
async function assertAdminAuthority(trx: Db, actor: string): Promise<void> {
  if (actor.startsWith('user:')) {
    const account = await administratorAccount(trx, actor);
    const signIn = admittedSignIn();
    if (
      signIn?.userId === account.id &&
      (signInEnded(account.row, signIn) || (await sessionEnded(trx, signIn)))
    ) {
      throw lost(
        forbidden('Your sign-in to Sesame has ended meanwhile. Sign in again.').localized(
          'errors.signInEndedMeanwhile',
        ),
      );
    }
    if (!isActiveAdministrator(account.row)) throw lost(forbidden('You are no longer an administrator'));
  } else if (actor.startsWith('api-key:')) {
    const key = await apiKeysQueries.findById(trx, actor.slice('api-key:'.length));
    const live =
      key?.scope === 'admin' &&
      !key.revoked_at &&
      (!key.created_by?.startsWith('user:') ||
        isActiveAdministrator((await administratorAccount(trx, key.created_by)).row));
    if (!live)
      throw new HttpError(
        401,
        'invalid_token',
        'The API key was revoked, or whoever created it is no longer an administrator',
      );
  }
}

/**
 * The account of `issuer` (`user:<id>`), its row held shared until the transaction ends. A
 * takeover of the account (confirmEmailOwner) holds it for update (under the administrators
 * lock when the account is an administrator's, see redeemOneTimeLink), deletes it and
 * withdraws its handouts; "sign out everywhere" and a recovery update it (sessions_ended_at).
 * The read waits for them and finds what they left, so nothing lands after them.
 */
async function administratorAccount(trx: Db, issuer: string): Promise<{ id: string; row: User | undefined }> {
  const id = issuer.slice('user:'.length);
  return { id, row: await usersQueries.findById(trx, id, 'share') };
}

/** Whether the account is an administrator who can sign in. */
const isActiveAdministrator = (account: User | undefined) => !!account?.is_admin && !account.disabled_at;

/**
 * Runs an admin change: `work` in the caller's transaction when `db` is one, else in a new
 * one. For an administrator (`user:<id>`) or an admin API key (`api-key:<id>`) it runs under
 * the administrators lock (usersQueries.lockAdministrators) and once
 * {@link assertAdminAuthority} found that `actor` still holds the authority its request was
 * admitted with. A request is admitted before its body is read, and a body may take up to
 * the request timeout to arrive; meanwhile another admin may demote the caller or revoke
 * their key, which withdraws what they handed out, or the admin may end the sign-in a
 * stolen session's request was admitted with (sign out everywhere, a recovery, or a sign-out
 * of that browser). The demotion, the disable, the deletion and the revocation take the lock
 * whoever makes them (the CLI too: see {@link withAdministrationChange}), as does the takeover
 * of an administrator's unproven account (redeemOneTimeLink); ending sign-ins updates the
 * account's row the check holds shared, and a sign-out deletes the session's row it holds
 * shared, so the two run one after the other, and nothing the caller does lands after its
 * authority ended. Other actors (the CLI, the system, a person's self-service, as in "Lost
 * your passkey?") have no authority to lose and do not wait for the lock. Every service that
 * changes something on an admin's behalf (users, links, clients, groups, claims, API keys,
 * resources, passkey API apps, signing and cookie keys, branding) opens its transaction with
 * this.
 */
export function withAdminAuthority<T>(
  db: Db,
  actor: string,
  work: (trx: Transaction<Database>) => Promise<T>,
): Promise<T> {
  return inTransaction(db, async (trx) => {
    if (actsAsAdministrator(actor)) await holdAdministration(trx, actor);
    return work(trx);
  });
}

/** Takes the administrators lock, then checks that `actor` still holds its authority. */
async function holdAdministration(trx: Db, actor: string): Promise<void> {
  await usersQueries.lockAdministrators(trx);
  await assertAdminAuthority(trx, actor);
}

/** Whether `actor` acts on an administrator's authority, which it may lose: an admin's account or an admin API key. */
const actsAsAdministrator = (actor: string) => actor.startsWith('user:') || actor.startsWith('api-key:');

/**
 * {@link withAdminAuthority} for a change that ends someone's admin authority or may leave
 * Sesame without an administrator (demote, disable, delete, revoke an admin API key): under
 * the administrators lock whoever makes it, so admin writes in flight land before it or are
 * refused, and two such changes cannot both pass the last-administrator check.
 */
export function withAdministrationChange<T>(
  db: Db,
  actor: string,
  work: (trx: Transaction<Database>) => Promise<T>,
): Promise<T> {
  return inTransaction(db, async (trx) => {
    await holdAdministration(trx, actor);
    return work(trx);
  });
}
