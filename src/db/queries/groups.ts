import { sql } from 'kysely';
import type { Db } from '../connect.js';
import type { GroupRow } from '../schema.js';

/**
 * The key of the transaction-level advisory lock that every change to which groups an app
 * admits takes first: setting an app's allowed groups and deleting a group. Refusing to delete
 * an app's only allowed group ("it would then admit everyone") is a check followed by a write,
 * race-free only when such changes run one at a time: under READ COMMITTED two deletes of an
 * app's two groups would each still see the other one, and a delete would cascade away the
 * row an update had just made the only one. One lock for all apps, so no two changes can take
 * locks in opposite orders; these are rare admin actions. Any fixed 64-bit number works.
 */
const ALLOWED_GROUPS_LOCK = 5_810_274_396_662_017;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** A group with how many members it has, as admins list them. */
export type GroupWithCount = GroupRow & { member_count: number };

/** A group as its members' tokens show it. */
export interface UserGroup {
  id: string;
  name: string;
  claims: Record<string, unknown>;
}

export const groupsQueries = {
  async insert(db: Db, name: string): Promise<GroupRow | undefined> {
    return db
      .insertInto('groups')
      .values({ name })
      .onConflict((oc) => oc.expression(sql`lower(name)`).doNothing())
      .returningAll()
      .executeTakeFirst();
  },

  /** By id, or else by name regardless of case: whichever the admin typed. */
  async findByIdOrName(db: Db, idOrName: string): Promise<GroupRow | undefined> {
    if (UUID.test(idOrName)) {
      const byId = await db.selectFrom('groups').selectAll().where('id', '=', idOrName).executeTakeFirst();
      if (byId) return byId;
    }
    return db
      .selectFrom('groups')
      .selectAll()
      .where(sql<string>`lower(name)`, '=', sql<string>`lower(${idOrName})`)
      .executeTakeFirst();
  },

  async list(db: Db): Promise<GroupWithCount[]> {
    return db
      .selectFrom('groups')
      .selectAll('groups')
      .select((eb) =>
        eb
          .selectFrom('group_members')
          .select((inner) => inner.fn.countAll<string>().as('n'))
          .whereRef('group_members.group_id', '=', 'groups.id')
          .as('member_count'),
      )
      .orderBy(sql`lower(name)`)
      .execute()
      .then((rows) => rows.map((row) => ({ ...row, member_count: Number(row.member_count ?? 0) })));
  },

  /** Renames; 'taken' when another group already has the name, undefined when there is no such group. */
  async rename(db: Db, id: string, name: string): Promise<GroupRow | undefined | 'taken'> {
    const clash = await db
      .selectFrom('groups')
      .select('id')
      .where(sql<string>`lower(name)`, '=', sql<string>`lower(${name})`)
      .where('id', '<>', id)
      .executeTakeFirst();
    if (clash) return 'taken';
    try {
      return await db
        .updateTable('groups')
        .set({ name, updated_at: sql<Date>`now()` })
        .where('id', '=', id)
        .returningAll()
        .executeTakeFirst();
    } catch (error) {
      // Another rename or create took the name between the check and the update.
      if ((error as { code?: string }).code === '23505') return 'taken';
      throw error;
    }
  },

  async setClaims(db: Db, id: string, claims: Record<string, unknown>): Promise<GroupRow | undefined> {
    return db
      .updateTable('groups')
      .set({ claims: JSON.stringify(claims), updated_at: sql<Date>`now()` })
      .where('id', '=', id)
      .returningAll()
      .executeTakeFirst();
  },

  async delete(db: Db, id: string): Promise<boolean> {
    const result = await db.deleteFrom('groups').where('id', '=', id).executeTakeFirst();
    return result.numDeletedRows > 0n;
  },

  /** Adds a member; false when they already were one. */
  async addMember(db: Db, groupId: string, userId: string): Promise<boolean> {
    const result = await db
      .insertInto('group_members')
      .values({ group_id: groupId, user_id: userId })
      .onConflict((oc) => oc.columns(['group_id', 'user_id']).doNothing())
      .executeTakeFirst();
    return Number(result.numInsertedOrUpdatedRows ?? 0n) > 0;
  },

  async removeMember(db: Db, groupId: string, userId: string): Promise<boolean> {
    const result = await db
      .deleteFrom('group_members')
      .where('group_id', '=', groupId)
      .where('user_id', '=', userId)
      .executeTakeFirst();
    return result.numDeletedRows > 0n;
  },

  async members(
    db: Db,
    groupId: string,
  ): Promise<Array<{ id: string; email: string; name: string | null; email_verified: boolean }>> {
    return db
      .selectFrom('group_members')
      .innerJoin('users', 'users.id', 'group_members.user_id')
      .select(['users.id', 'users.email', 'users.name', 'users.email_verified'])
      .where('group_members.group_id', '=', groupId)
      .orderBy(sql`lower(users.email)`)
      .execute();
  },

  /**
   * The groups a user is in, by name, with their claims (through GroupCache on the hot path).
   * With `hold`, their rows are held `for key share` until the transaction ends, so none is
   * deleted meanwhile (a rename or a claim change still goes ahead); a group being deleted is
   * waited for, and is then left out.
   */
  async ofUser(db: Db, userId: string, { hold = false } = {}): Promise<UserGroup[]> {
    return db
      .selectFrom('group_members')
      .innerJoin('groups', 'groups.id', 'group_members.group_id')
      .select(['groups.id', 'groups.name', 'groups.claims'])
      .where('group_members.user_id', '=', userId)
      .orderBy(sql`lower(groups.name)`)
      .$if(hold, (query) => query.forKeyShare('groups'))
      .execute();
  },

  /** The groups allowed to use a client (none: everyone may). */
  async allowedForClient(db: Db, clientId: string): Promise<Array<{ id: string; name: string }>> {
    return db
      .selectFrom('client_allowed_groups')
      .innerJoin('groups', 'groups.id', 'client_allowed_groups.group_id')
      .select(['groups.id', 'groups.name'])
      .where('client_allowed_groups.client_id', '=', clientId)
      .orderBy(sql`lower(groups.name)`)
      .execute();
  },

  /** The ids of the groups allowed to use a client (none: everyone may). */
  async allowedIdsForClient(db: Db, clientId: string): Promise<string[]> {
    const rows = await db
      .selectFrom('client_allowed_groups')
      .select('group_id')
      .where('client_id', '=', clientId)
      .execute();
    return rows.map((row) => row.group_id);
  },

  /** Every client's allowed group names, by client id (clients without any are absent). */
  async allowedForAllClients(db: Db): Promise<Map<string, string[]>> {
    const rows = await db
      .selectFrom('client_allowed_groups')
      .innerJoin('groups', 'groups.id', 'client_allowed_groups.group_id')
      .select(['client_allowed_groups.client_id', 'groups.name'])
      .orderBy(sql`lower(groups.name)`)
      .execute();
    const byClient = new Map<string, string[]>();
    for (const row of rows) byClient.set(row.client_id, [...(byClient.get(row.client_id) ?? []), row.name]);
    return byClient;
  },

  /**
   * Waits until no other transaction changes which groups any app admits, and holds that until
   * this transaction ends. Call it first, before reading the groups to check or write.
   */
  async lockAllowedGroups(db: Db): Promise<void> {
    await sql`select pg_advisory_xact_lock(${sql.lit(ALLOWED_GROUPS_LOCK)})`.execute(db);
  },

  /** Replaces a client's allowed groups; in a transaction that took {@link lockAllowedGroups}. */
  async setAllowedForClient(db: Db, clientId: string, groupIds: string[]): Promise<void> {
    await db.deleteFrom('client_allowed_groups').where('client_id', '=', clientId).execute();
    if (groupIds.length === 0) return;
    await db
      .insertInto('client_allowed_groups')
      .values(groupIds.map((group_id) => ({ client_id: clientId, group_id })))
      .execute();
  },

  /**
   * The clients whose only allowed group is `groupId` (without it they would admit everyone),
   * by id; in a transaction that took {@link lockAllowedGroups}, so the answer holds until it ends.
   */
  async clientsAllowingOnly(db: Db, groupId: string): Promise<{ client_id: string; name: string }[]> {
    return db
      .selectFrom('client_allowed_groups')
      .innerJoin('clients', 'clients.client_id', 'client_allowed_groups.client_id')
      .select(['clients.client_id', 'clients.name'])
      .groupBy(['clients.client_id', 'clients.name'])
      .having(sql<boolean>`count(*) = 1 and bool_and(client_allowed_groups.group_id = ${groupId})`)
      .orderBy('clients.client_id')
      .execute();
  },

  /**
   * Whether a user may use a client: the client restricts nothing, or the user is in one of
   * its allowed groups. One round trip, on every authorization request.
   */
  async mayUseClient(db: Db, clientId: string, userId: string): Promise<boolean> {
    const row = await db
      .selectNoFrom((eb) => [
        eb
          .not(
            eb.exists(
              eb.selectFrom('client_allowed_groups').select(sql`1`.as('x')).where('client_id', '=', clientId),
            ),
          )
          .as('open'),
        eb
          .exists(
            eb
              .selectFrom('client_allowed_groups')
              .innerJoin('group_members', 'group_members.group_id', 'client_allowed_groups.group_id')
              .select(sql`1`.as('x'))
              .where('client_allowed_groups.client_id', '=', clientId)
              .where('group_members.user_id', '=', userId),
          )
          .as('member'),
      ])
      .executeTakeFirstOrThrow();
    return Boolean(row.open) || Boolean(row.member);
  },
};
