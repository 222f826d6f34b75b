import { type Kysely, sql } from 'kysely';

/** Tables whose rows servers cache, with the column that identifies a row. */
const ANNOUNCED = [
  { table: 'clients', key: 'client_id' },
  { table: 'users', key: 'id' },
] as const;

/**
 * Every committed change to a client or a user is announced on the `sesame_row_changes`
 * channel as `<table>:<key>`. Servers cache those rows on their hot path (every token and
 * userinfo request reads its client and account) and drop an entry when its notice arrives,
 * so a rotated secret, a deleted client or a disabled user stops working on every instance
 * at once, whoever made the change (admin pages, API, or the CLI in another process).
 * Postgres delivers notifications only after commit: a rolled-back change says nothing.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    create function sesame_announce_row_change() returns trigger language plpgsql as $$
    begin
      perform pg_notify(
        'sesame_row_changes',
        tg_table_name || ':' || ((case when tg_op = 'DELETE' then to_jsonb(old) else to_jsonb(new) end) ->> tg_argv[0])
      );
      return null;
    end
    $$`.execute(db);
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
  await sql`drop function if exists sesame_announce_row_change()`.execute(db);
}
