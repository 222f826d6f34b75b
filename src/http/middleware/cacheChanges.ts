import type { Context, Next } from 'koa';

/** A cache this instance can empty at once. */
interface Forgetful {
  forgetAll(): void;
}

/**
 * A guard for routers whose changes reach cached facts: an admin's (a group, a membership, a
 * claim, a client's allowed groups, a client or user whose tokens go) or a person's own on
 * their account page (an app's access revoked, every session ended). After each change this
 * instance forgets those caches at once; other instances hear the row notices (migrations
 * 0022 and 0023). Such changes are rare, and forgetting all is cheap.
 */
export function forgetCachesAfterChanges(...caches: Forgetful[]) {
  return async function forgetCaches(ctx: Context, next: Next) {
    try {
      await next();
    } finally {
      if (ctx.method !== 'GET' && ctx.method !== 'HEAD') for (const cache of caches) cache.forgetAll();
    }
  };
}
