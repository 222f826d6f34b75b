import type { Context, Next } from 'koa';
import type { GroupCache } from '../../oidc/groupCache.js';

/**
 * A guard for the admin routers: any change an admin makes (a group, a membership, a claim,
 * a client's allowed groups) may change who may use which client and what their tokens
 * say, so after each one this instance forgets its group facts at once. Other instances
 * hear the row notices (migration 0022); admin changes are rare, forgetting all is cheap.
 */
export function forgetGroupsAfterChanges(groups: GroupCache) {
  return async function forgetGroups(ctx: Context, next: Next) {
    try {
      await next();
    } finally {
      if (ctx.method !== 'GET' && ctx.method !== 'HEAD') groups.forgetAll();
    }
  };
}
