import type { Db } from '../db/connect.js';
import { auditQueries } from '../db/queries/audit.js';
import { challengesQueries } from '../db/queries/challenges.js';
import { credentialsQueries } from '../db/queries/credentials.js';
import { oidcModelsQueries } from '../db/queries/oidcModels.js';
import { stepUpsQueries } from '../db/queries/stepUps.js';
import { usersQueries } from '../db/queries/users.js';
import type { User } from '../db/schema.js';
import type { Locale } from '../i18n/locales.js';
import { withdrawAdminHandouts } from './adminAuthority.js';
import { queueAccountLogouts } from './backchannelLogout.js';
import { revokeAccountSignIns } from './revocation.js';

/**
 * Records that the person at hand receives mail at the account's address: they hold a
 * one-time link that was sent there (an invite or a recovery link). Call it in the
 * transaction that stores their new passkey, with `user` read there with the `update` lock
 * (usersQueries.findById): adding a passkey takes the `share` lock, so none the earlier
 * holder adds meanwhile can be stored after the passkeys are removed here.
 *
 * Until then the address was only claimed: open sign-up lets anyone type any email. So when
 * it was not verified yet, whoever created the account may not be its owner (someone can
 * sign up with a colleague's address before the colleague's invite arrives), and everything
 * they hold goes: every passkey, session, grant and token, and the name they chose (the
 * owner's, given on the link page, replaces it); apps they signed in to get a back-channel
 * logout. The owner then takes over an account nobody else can still use. An account
 * already verified keeps its passkeys: a recovery link adds one. After a takeover, once
 * committed, wake the back-channel outbox and pass `takenOverAt` to untilAfterRevocation
 * before signing the owner in.
 *
 * @param owner.grantAdmin an invite for an administrator makes the account it takes over one.
 * @param owner.locale the language of the owner's page: the account is theirs from now on.
 */
export async function confirmEmailOwner(
  trx: Db,
  user: User,
  owner: { name: string | null; grantAdmin: boolean; locale: Locale },
): Promise<{ user: User; takenOverAt?: Date }> {
  if (user.email_verified) return { user };
  const removedPasskeys = await credentialsQueries.deleteAllForUser(trx, user.id);
  // For good: a request of the earlier holder still in flight must not save its session back.
  const takenOverAt = await revokeAccountSignIns(trx, user.id, { tokens: true });
  // Apps the earlier holder signed in to are told too (wake the outbox once committed).
  await queueAccountLogouts(trx, user.id, { grants: true });
  const revoked = await oidcModelsQueries.destroyByAccountId(trx, user.id);
  // A step-up the earlier holder made, or a ceremony they started, must not count for the owner.
  await stepUpsQueries.deleteForUser(trx, user.id);
  await challengesQueries.deleteForUser(trx, user.id);
  // Someone made the earlier holder an administrator: the keys and links they handed out go too.
  if (user.is_admin) await withdrawAdminHandouts(trx, user.id, `user:${user.id}`);
  const updated = await usersQueries.update(trx, user.id, {
    emailVerified: true,
    name: owner.name,
    ...(owner.grantAdmin && { isAdmin: true }),
    signupLocale: owner.locale,
  });
  await auditQueries.record(trx, `user:${user.id}`, 'user.email_verified', user.id, {
    removed_passkeys: removedPasskeys,
    revoked,
  });
  return { user: updated!, takenOverAt };
}
