import type { Db } from '../db/connect.js';
import { auditQueries } from '../db/queries/audit.js';
import { challengesQueries } from '../db/queries/challenges.js';
import { credentialsQueries } from '../db/queries/credentials.js';
import { groupsQueries } from '../db/queries/groups.js';
import { oidcModelsQueries } from '../db/queries/oidcModels.js';
import { oneTimeTokensQueries } from '../db/queries/oneTimeTokens.js';
import { usersQueries } from '../db/queries/users.js';
import type { User } from '../db/schema.js';
import type { Locale } from '../i18n/locales.js';
import { withdrawAdminHandouts } from './adminAuthority.js';
import { queueAccountLogouts } from './backchannelLogout.js';

/**
 * Records that the person at hand receives mail at the account's address: they hold a
 * one-time link that was sent there (an invite or a recovery link). Call it in the
 * transaction that stores their new passkey, with `user` read there with the `update` lock
 * (usersQueries.findById): adding a passkey takes the `share` lock, so none the earlier
 * holder adds meanwhile can be stored after the account is gone.
 *
 * Until then the address was only claimed: open sign-up lets anyone type any email. So when
 * it was not verified yet, whoever created the account may not be its owner (someone can
 * sign up with a colleague's address before the colleague's invite arrives). That account
 * ends for good: every passkey, session, grant and token goes, apps it signed in to get a
 * back-channel logout, and its row is deleted. The owner gets a new account, `newId`, so a
 * new `sub`: an app that keys on `sub` (OIDC Core §5.7) never hands them what the earlier
 * holder set up there (a local password, an API token). Nothing the earlier holder chose
 * carries over (the name is the owner's, given on the link page); what an administrator gave
 * the address does: administration, group memberships and custom claims. Since an
 * administrator gives those to an unverified account only when they say they know it is one
 * (`--unverified`, see promoteUser, addGroupMember, changeUserClaim), they go to whoever proves
 * the address. An account already verified stays as it is: a recovery link adds a passkey.
 * After a takeover (`takenOverFrom` names the deleted account), once committed, wake the
 * back-channel outbox.
 *
 * @param owner.newId the owner's new account id: the user handle of the passkey they registered.
 * @param owner.grantAdmin an invite for an administrator makes the account it takes over one.
 * @param owner.locale the language of the owner's page: the account is theirs from now on.
 */
export async function confirmEmailOwner(
  trx: Db,
  user: User,
  owner: { newId: string; name: string | null; grantAdmin: boolean; locale: Locale },
): Promise<{ user: User; takenOverFrom?: string }> {
  if (user.email_verified) return { user };
  const removedPasskeys = await credentialsQueries.deleteAllForUser(trx, user.id);
  // Apps the earlier holder signed in to are told (wake the outbox once committed).
  await queueAccountLogouts(trx, user.id, { grants: true });
  const revoked = await oidcModelsQueries.destroyByAccountId(trx, user.id);
  // Someone made the earlier holder an administrator: the keys and links they handed out go too.
  if (user.is_admin) await withdrawAdminHandouts(trx, user.id, `user:${user.id}`);
  // A ceremony the earlier holder started must not count for anyone (its rows name no account).
  await challengesQueries.deleteForUser(trx, user.id);
  // The groups before their memberships, as a group's delete takes them: held until the new
  // account is in them, else the delete, holding its group, would wait for the membership that
  // goes with the account below, and the new account's membership for the group.
  const groups = await groupsQueries.ofUser(trx, user.id, { hold: true });
  // The link being used (a recovery link names the account) still reads as used afterwards.
  const usedLinks = await oneTimeTokensQueries.detachUsedFromUser(trx, user.id);
  // Its step-ups, ceremonies, welcome links and unused links go with the row (on delete cascade).
  await usersQueries.delete(trx, user.id);
  const created = await usersQueries.insert(trx, {
    id: owner.newId,
    email: user.email,
    name: owner.name,
    isAdmin: user.is_admin || owner.grantAdmin,
    emailVerified: true,
    signupLocale: owner.locale,
    claims: user.claims ?? {},
  });
  for (const group of groups) await groupsQueries.addMember(trx, group.id, created.id);
  await oneTimeTokensQueries.attachToUser(trx, usedLinks, created.id);
  await auditQueries.record(trx, `user:${created.id}`, 'user.taken_over', created.id, {
    previous_user: user.id,
    email: user.email,
    removed_passkeys: removedPasskeys,
    revoked,
    admin: created.is_admin,
    groups: groups.map((group) => group.name),
    claims: Object.keys(created.claims ?? {}),
  });
  return { user: created, takenOverFrom: user.id };
}
