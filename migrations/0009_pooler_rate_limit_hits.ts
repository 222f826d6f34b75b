import { type Kysely, sql } from 'kysely';

/**
 * Rate-limit counters every instance shares: one row per limited key (a client IP, a
 * client_id whose authentication keeps failing) with its hits in the current window.
 * Counted in process memory, N instances behind a load balancer would grant N times the
 * limit. Unlogged: the counters are worth nothing after a crash, and skipping the WAL keeps
 * the extra write per limited request cheap.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    create unlogged table rate_limit_hits (
      key text primary key,
      hits integer not null,
      expires_at timestamptz not null
    )`.execute(db);
  await db.schema
    .createIndex('rate_limit_hits_expires_at')
    .on('rate_limit_hits')
    .column('expires_at')
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('rate_limit_hits').execute();
}
