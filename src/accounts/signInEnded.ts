import type { Db } from '../db/connect.js';
import { type ModelPayload, oidcModelsQueries } from '../db/queries/oidcModels.js';
import type { User } from '../db/schema.js';
import { isRevoked } from '../oidc/revocation.js';
import type { AdmittedSignIn } from '../requestContext.js';

/**
 * A request is admitted on its head (requireSignIn) and makes its change once its body is
 * in, up to the request timeout later. A change that acts on the sign-in it was admitted with
 * (an admin's, a passkey's addition or deletion) checks in its transaction, with these two,
 * that the sign-in still holds: a stolen session's request must not land after its owner
 * ended that sign-in.
 */

/**
 * Whether the sign-in a request was admitted with has ended since: the account is gone or
 * disabled, or its sign-ins were ended after that one proved a passkey ("sign out
 * everywhere", a recovery; src/oidc/revocation.ts). A step-up route checks its step-up once
 * the body is in, just before or after this; ending the sign-ins deletes the step-ups in the
 * same transaction, so a step-up that ended in between is refused with its sign-in.
 * `account` is the account's row, read (and held) in the change's transaction.
 */
export const signInEnded = (account: User | undefined, signIn: Pick<AdmittedSignIn, 'loginTs'>) =>
  !account || !!account.disabled_at || isRevoked('Session', { loginTs: signIn.loginTs }, account);

/**
 * Whether the browser session the request was admitted with was signed out since (the
 * account page's "Sign out", an app's logout that ends the Sesame session: the provider
 * deletes it; it expired), or holds another account's sign-in now. A sign-out sets nothing on
 * the account, so {@link signInEnded} cannot see it. A newer passkey proof in the same browser
 * session (an app's prompt=login in another tab) ends nothing: the browser is still the
 * person's. Read from the database, never a cache (another instance may have signed it out),
 * after the account's row: every change that holds an account takes its row first and then
 * deletes its sessions (a recovery, a disable), so the two never wait for each other in
 * opposite orders; the account's passkeys come after both. The session's row is held (FOR
 * KEY SHARE): a sign-out committed before is seen, and one under way waits until this change
 * committed, while the provider's own saves of the session do not wait. The provider stores
 * a session under a new id as it resumes a sign-in (deleting the old row in the same
 * statement): a read that waited for that finds the old row gone and not yet the new one, so
 * a miss is read once more.
 */
export async function sessionEnded(trx: Db, signIn: AdmittedSignIn): Promise<boolean> {
  const holds = (session: ModelPayload | undefined) =>
    session?.accountId === signIn.userId &&
    (session.loginTs === signIn.loginTs ||
      (typeof session.loginTs === 'number' &&
        signIn.loginTs !== undefined &&
        session.loginTs > signIn.loginTs));
  if (holds(await oidcModelsQueries.holdSession(trx, signIn.sessionUid))) return false;
  return !holds(await oidcModelsQueries.holdSession(trx, signIn.sessionUid));
}
