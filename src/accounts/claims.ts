import type { Account, FindAccount } from 'oidc-provider';
import type { Db } from '../db/connect.js';
import { usersQueries } from '../db/queries/users.js';
import type { RowCaches } from '../oidc/rowCaches.js';

/** Which claims each scope releases (OIDC Core §5.4). */
export const CLAIMS_BY_SCOPE = {
  // amr rides with openid so every ID token says how the person signed in (a passkey with UV).
  openid: ['sub', 'amr'],
  email: ['email', 'email_verified'],
  profile: ['name'],
} as const;

/**
 * oidc-provider's account lookup, through the change-notified user cache (the resume, token
 * and userinfo steps of every login each ask). A disabled or deleted user is no account at
 * all, so their sessions, userinfo and refresh tokens stop working at once.
 */
export function createFindAccount(db: Db, caches: Pick<RowCaches, 'users'>): FindAccount {
  return async (_ctx, sub): Promise<Account | undefined> => {
    const user = await caches.users.find(sub, () => usersQueries.findById(db, sub));
    if (!user || user.disabled_at) return undefined;
    return {
      accountId: user.id,
      async claims() {
        return {
          sub: user.id,
          email: user.email,
          email_verified: user.email_verified,
          ...(user.name ? { name: user.name } : {}),
        };
      },
    };
  };
}
