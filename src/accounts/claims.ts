import type { Account, FindAccount } from 'oidc-provider';
import type { Db } from '../db/connect.js';
import { cachedUser } from '../oidc/newerThanCache.js';
import type { RowCaches } from '../oidc/rowCaches.js';
import { mergeCustomClaims } from './customClaims.js';

/** Which claims each scope releases (OIDC Core §5.4); `groups` is Sesame's own. */
export const CLAIMS_BY_SCOPE = {
  // amr rides with openid so every ID token says how the person signed in (a passkey with UV).
  openid: ['sub', 'amr'],
  email: ['email', 'email_verified'],
  profile: ['name'],
  groups: ['groups'],
} as const;

/**
 * Where an account's admin-set claims ride inside the object claims() returns: a symbol, so
 * oidc-provider's scope filter (which knows only the names configured above) neither drops
 * nor copies them; the provider's Claims.result adds them back (see releaseCustomClaims).
 */
export const CUSTOM_CLAIMS = Symbol('sesame.customClaims');

/**
 * oidc-provider's account lookup, through the change-notified user cache (the resume, token
 * and userinfo steps of every login each ask). A disabled or deleted user is no account at
 * all, so their sessions, userinfo and refresh tokens stop working at once.
 * With a token (code, refresh or access token) the client's allowed groups are checked too.
 * Groups and group claims come from the change-notified group cache, and only when the scope
 * asks for them: membership changes show in the next token or userinfo answer.
 */
export function createFindAccount(db: Db, caches: Pick<RowCaches, 'users' | 'groups'>): FindAccount {
  return async (_ctx, sub, token): Promise<Account | undefined> => {
    const user = await cachedUser(caches.users, db, sub);
    if (!user || user.disabled_at) return undefined;
    // Redeeming a code or refresh token, or calling userinfo (a token is given): someone no
    // longer in a group the client admits is no account for it, so nothing more is issued.
    const clientId = (token as { clientId?: unknown } | undefined)?.clientId;
    if (typeof clientId === 'string' && !(await caches.groups.mayUseClient(clientId, user.id)))
      return undefined;
    return {
      accountId: user.id,
      async claims(_use, scope) {
        const scopes = new Set(String(scope ?? '').split(' '));
        const wantsGroups = scopes.has('groups');
        const wantsProfile = scopes.has('profile');
        const groups = wantsGroups || wantsProfile ? await caches.groups.ofUser(user.id) : [];
        const custom = wantsProfile
          ? mergeCustomClaims(
              user.claims ?? {},
              groups.map((group) => group.claims),
            )
          : {};
        return {
          sub: user.id,
          email: user.email,
          email_verified: user.email_verified,
          ...(user.name ? { name: user.name } : {}),
          ...(wantsGroups && { groups: groups.map((group) => group.name) }),
          ...(Object.keys(custom).length > 0 && { [CUSTOM_CLAIMS]: custom }),
        };
      },
    };
  };
}
