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
 *
 * Only an answer below 400 is a change: a refused request changed nothing. Give this guard
 * after the ones that refuse (who may ask, the CSRF check) all the same, so no request they
 * refuse reaches it: forgetting for those let anyone signed in make every later token check
 * read the database again. A change that committed before an error (a 500) is still
 * forgotten here once its row notice arrives, as on every other instance.
 */
export function forgetCachesAfterChanges(...caches: Forgetful[]) {
  return async function forgetCaches(ctx: Context, next: Next) {
    await next();
    if (ctx.method === 'GET' || ctx.method === 'HEAD' || ctx.status >= 400) return;
    for (const cache of caches) cache.forgetAll();
  };
}
