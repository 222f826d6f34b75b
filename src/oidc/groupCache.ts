import type { Db } from '../db/connect.js';
import { groupsQueries, type UserGroup } from '../db/queries/groups.js';
import { RowCache, type RowChangeListener } from '../db/rowCache.js';
import { mustReadFresh } from './newerThanCache.js';

/**
 * Who is in which group and which groups each client admits, kept in process: every login
 * asks whether the person may use the client (at the resume, the token and the userinfo
 * step) and reads their groups for the tokens. Kept in step by the row notices of migration
 * 0022 like the other row caches, and read through while those are not arriving (behind a
 * transaction pooler): then one query answers, as before the cache.
 *
 * This object is the listener for the `groups` table: a renamed group, a changed claim or a
 * deleted group changes what every member's tokens say, so it forgets every membership.
 */
export class GroupCache implements RowChangeListener {
  /** A user's groups with their names and claims, by user id (listener for `group_members`). */
  readonly memberships = new RowCache<UserGroup[]>(10_000);
  /** The ids of the groups a client admits, none when it admits everyone, by client id (listener for `client_allowed_groups`). */
  readonly clientRules = new RowCache<string[]>(1_000);

  constructor(private readonly db: Db) {}

  /**
   * The groups `userId` is in, ordered by name. Read from the database, not from memory, once
   * in a request that brought in something newer than memory (newerThanCache.ts), as is the
   * client's rule below.
   */
  async ofUser(userId: string): Promise<UserGroup[]> {
    return (await this.memberships.find(
      userId,
      () => groupsQueries.ofUser(this.db, userId),
      mustReadFresh(`Groups:${userId}`),
    ))!;
  }

  /** Whether `userId` may use `clientId`: it admits everyone, or the user is in one of its groups. */
  async mayUseClient(clientId: string, userId: string): Promise<boolean> {
    if (!this.clientRules.live || !this.memberships.live) {
      return groupsQueries.mayUseClient(this.db, clientId, userId);
    }
    const allowed = (await this.clientRules.find(
      clientId,
      () => groupsQueries.allowedIdsForClient(this.db, clientId),
      mustReadFresh(`ClientGroups:${clientId}`),
    ))!;
    if (allowed.length === 0) return true;
    const groups = await this.ofUser(userId);
    return groups.some((group) => allowed.includes(group.id));
  }

  /** An admin changed something here: this instance forgets at once, without waiting for the notice. */
  forgetAll(): void {
    this.memberships.invalidateAll();
    this.clientRules.invalidateAll();
  }

  invalidate(): void {
    this.memberships.invalidateAll();
  }

  // The two caches go live and dark through their own tables' listeners.
  goLive(): void {}
  goDark(): void {}
}
