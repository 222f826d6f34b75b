import { sql } from 'kysely';
import type { Db } from '../connect.js';

/** The logs that are kept a number of days (AUDIT_LOG_DAYS, PASSKEY_AUDIT_LOG_DAYS); each has an index on created_at. */
export type KeptForDays = 'audit_events' | 'passkey_tenant_audit_logs';

/**
 * Deletes the rows of `table` older than `days`, `batchSize` rows a statement, so a first
 * sweep of a large log holds no long transaction and another instance sweeping at the same
 * time skips the rows this one holds. Returns how many went.
 */
export async function deleteOlderThan(db: Db, table: KeptForDays, days: number, batchSize = 5_000) {
  let total = 0;
  for (;;) {
    const result = await sql`
      delete from ${sql.table(table)} where id in (
        select id from ${sql.table(table)}
        where created_at < now() - make_interval(days => ${days})
        limit ${batchSize} for update skip locked
      )`.execute(db);
    const removed = Number(result.numAffectedRows ?? 0);
    total += removed;
    if (removed < batchSize) return total;
  }
}

/** The tables of links and tokens that end at `expires_at` and are kept some days after. */
export type KeptAfterExpiry = 'one_time_tokens' | 'email_verifications' | 'admin_form_tokens';

/** Deletes the rows of `table`, used or not, that expired more than `days` ago; returns how many went. */
export async function deleteExpiredBefore(db: Db, table: KeptAfterExpiry, days: number): Promise<number> {
  const result = await db
    .deleteFrom(table)
    .where('expires_at', '<', sql<Date>`now() - make_interval(days => ${days})`)
    .executeTakeFirst();
  return Number(result.numDeletedRows);
}
