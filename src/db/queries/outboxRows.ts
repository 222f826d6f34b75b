import { sql } from 'kysely';
import type { Db } from '../connect.js';

/** The outbox tables: rows with attempts, next_attempt_at (null once done) and created_at. */
type OutboxTable = 'backchannel_deliveries' | 'mail_outbox';

/**
 * Claims up to `limit` due rows of an outbox for this instance: each is locked (SKIP LOCKED,
 * so instances never wait on or take each other's) and pushed `leaseSeconds` into the future
 * in one statement, so no other instance picks it up while this one works on it. Nothing is
 * held across the attempt: a pooler in transaction mode gets its connection back at once.
 */
export function claimDueRows<Row>(
  db: Db,
  table: OutboxTable,
  columns: readonly string[],
  limit: number,
  leaseSeconds: number,
): Promise<Row[]> {
  return db.transaction().execute(async (trx) => {
    const { rows } = await sql<Row>`
      update ${sql.table(table)}
      set attempts = attempts + 1, next_attempt_at = now() + make_interval(secs => ${leaseSeconds})
      where id in (
        select id from ${sql.table(table)}
        where next_attempt_at <= now()
        order by next_attempt_at
        limit ${limit}
        for update skip locked)
      returning ${sql.join(columns.map((column) => sql.ref(column)))}`.execute(trx);
    return rows;
  });
}

/** Removes an outbox's rows done (delivered or given up) for longer than `days`. */
export async function deleteDoneRowsBefore(db: Db, table: OutboxTable, days: number): Promise<number> {
  const result = await db
    .deleteFrom(table)
    .where('next_attempt_at', 'is', null)
    .where('created_at', '<', sql<Date>`now() - make_interval(days => ${days})`)
    .executeTakeFirst();
  return Number(result.numDeletedRows);
}
