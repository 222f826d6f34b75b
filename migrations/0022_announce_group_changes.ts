import { type Kysely, sql } from 'kysely';

/**
 * Changes to groups, memberships and clients' allowed groups are announced like clients'
 * (migration 0004), so servers can keep who is in which group, and which groups each client
 * admits, in process: every login asks both twice or more. Keys: a group by id (a rename or
 * a claim changes what its members' tokens say), a membership by user, an allowed group by
 * client. Deleting a group cascades to both tables, whose own triggers announce it.
 */
const ANNOUNCED = [
  { table: 'groups', key: 'id' },
  { table: 'group_members', key: 'user_id' },
  { table: 'client_allowed_groups', key: 'client_id' },
] as const;

export async function up(db: Kysely<unknown>): Promise<void> {
  for (const { table, key } of ANNOUNCED) {
    await sql`
      create trigger ${sql.id(`${table}_announce_change`)}
      after insert or update or delete on ${sql.table(table)}
      for each row execute function sesame_announce_row_change(${sql.lit(key)})`.execute(db);
  }
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const { table } of ANNOUNCED) {
    await sql`drop trigger if exists ${sql.id(`${table}_announce_change`)} on ${sql.table(table)}`.execute(
      db,
    );
  }
}
